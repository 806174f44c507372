/*
 * retry.c - the retrier: one thread that sends failed wake-ups again.
 * Contract in retry.h.
 *
 * NO KICK IS LOST
 *
 * An object that fails to send a wake-up first records the debt (its own
 * counter, with release), then kicks (sem_post). The retrier consumes kicks
 * (sem_wait, which acquires) before every pass over the registered objects.
 * A debt recorded before a pass is seen by that pass; one recorded after it
 * began comes with a kick that the pass has not consumed, so the semaphore
 * is still positive when the retrier goes back to sleep, and it wakes for
 * another pass at once. Kicks that arrive while an episode waits between
 * passes are consumed by that wait: the next pass covers their debts too.
 *
 * THE BACK-OFF
 *
 * A failing write usually means the system is short of something (memory,
 * descriptors), so passes are spaced 1, 2, 4 ... ms apart, clamped at
 * RETRY_MAX_MS: a debt is paid at most that long after the system recovers.
 * The back-off belongs to an episode: the next one starts at RETRY_MIN_MS
 * again, or one long episode would leave every later debt waiting
 * RETRY_MAX_MS for its first retry. Fault-injection builds note each wait
 * chosen (NOTE_RETRY_WAIT, fault.h), so that tests/test_retry.c checks the
 * back-off as a sequence of waits, not as durations.
 * Kicks during the wait do not shorten it (a stream of failing posts would
 * otherwise make the retrier spin). The wait is measured on CLOCK_MONOTONIC
 * (sem_clockwait()): on the wall clock, a clock stepped back by an hour
 * would stretch "1 ms" into an hour (tests/test_retry.c steps it). (GCC
 * 12's ThreadSanitizer intercepts sem_timedwait() but not sem_clockwait(),
 * so it sees no ordering through this wait; nothing here relies on one:
 * the debts are ordered by their own atomics.)
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "fault.h"
#include "log.h"
#include "retry.h"

/* A full ring under load can start an episode every few milliseconds: the
 * line that says one began is logged at most this often. */
#define EPISODE_LOG_MS 10000

struct debtor {
	retry_fn fn;
	void *arg;
};

struct retrier {
	pthread_t thread;
	sem_t kick;			/* posted by retrier_kick() and at stop */
	atomic_bool stopping;
	/* The registered objects. The lock is held by the thread during a
	 * pass, and by add/remove: never by a kick. */
	pthread_mutex_t lock;
	struct debtor *debtors;
	size_t n, cap;
	struct log_limit episode_log;	/* the retrier thread's */
};

#ifdef HAVE_SEM_CLOCKWAIT
#define WAIT_CLOCK CLOCK_MONOTONIC
#define sem_wait_until(sem, until) sem_clockwait((sem), CLOCK_MONOTONIC, (until))
#else
/* No sem_clockwait() (glibc before 2.30): the wall clock, and its steps. */
#define WAIT_CLOCK CLOCK_REALTIME
#define sem_wait_until(sem, until) sem_timedwait((sem), (until))
#endif

/* Waits for a kick; with ms > 0, until ms have passed whatever comes. */
static void wait_kick(struct retrier *r, unsigned ms)
{
	struct timespec until;

	fault_note(NOTE_RETRY_WAIT, ms);	/* the wait chosen, for the tests */
	if (ms == 0) {
		while (sem_wait(&r->kick) == -1)
			;	/* EINTR */
		return;
	}
	clock_gettime(WAIT_CLOCK, &until);
	until.tv_nsec += (long)ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	while (!atomic_load_explicit(&r->stopping, memory_order_acquire) &&
	       (sem_wait_until(&r->kick, &until) == 0 || errno == EINTR))
		;	/* a kick during the wait: its debt is in the next pass */
}

/* One pass: true when some object still owes. */
static bool pass(struct retrier *r)
{
	bool owed = false;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++)
		if (r->debtors[i].fn(r->debtors[i].arg) < 0)
			owed = true;
	pthread_mutex_unlock(&r->lock);
	return owed;
}

static void *retrier_main(void *arg)
{
	struct retrier *r = arg;

	log_set_thread_tag("retry");
	for (;;) {
		/* The back-off is the episode's: each starts again at
		 * RETRY_MIN_MS, however far the last one backed off. */
		unsigned ms = RETRY_MIN_MS, skipped;
		struct timespec now;
		bool logged;

		wait_kick(r, 0);
		if (atomic_load_explicit(&r->stopping, memory_order_acquire))
			return NULL;
		clock_gettime(CLOCK_MONOTONIC, &now);
		logged = log_limit_allow(&r->episode_log, (uint64_t)now.tv_sec * 1000 +
					 (uint64_t)now.tv_nsec / 1000000, EPISODE_LOG_MS, &skipped);
		if (logged)
			log_warn("a wake-up failed, or a full inbox refused a message that must "
				 "arrive; retrying until it is delivered (%u more such episodes "
				 "since the last such line)", skipped);
		for (;;) {
			wait_kick(r, ms);
			if (atomic_load_explicit(&r->stopping, memory_order_acquire))
				return NULL;
			if (!pass(r))
				break;
			ms = ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : ms * 2;
		}
		if (logged)
			log_info("owed wake-ups delivered");
	}
}

int retrier_new(struct retrier **out)
{
	struct retrier *r = calloc(1, sizeof(*r));
	sigset_t all, old;
	int rc;

	if (r == NULL)
		return -ENOMEM;
	if (sem_init(&r->kick, 0, 0) == -1) {
		rc = -errno;
		free(r);
		return rc;
	}
	pthread_mutex_init(&r->lock, NULL);
	/* Signals are the main thread's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = -pthread_create(&r->thread, NULL, retrier_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		pthread_mutex_destroy(&r->lock);
		sem_destroy(&r->kick);
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void retrier_free(struct retrier *r)
{
	if (r == NULL)
		return;
	atomic_store_explicit(&r->stopping, true, memory_order_release);
	sem_post(&r->kick);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->lock);
	sem_destroy(&r->kick);
	free(r->debtors);
	free(r);
}

int retrier_add(struct retrier *r, retry_fn fn, void *arg)
{
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 8;
		struct debtor *grown = realloc(r->debtors, cap * sizeof(*grown));

		if (grown == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		r->debtors = grown;
		r->cap = cap;
	}
	r->debtors[r->n++] = (struct debtor){ fn, arg };
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void retrier_remove(struct retrier *r, retry_fn fn, void *arg)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++)
		if (r->debtors[i].fn == fn && r->debtors[i].arg == arg) {
			r->debtors[i] = r->debtors[--r->n];
			break;
		}
	pthread_mutex_unlock(&r->lock);
}

void retrier_kick(struct retrier *r)
{
	sem_post(&r->kick);
}
