/*
 * test_post.c - the core used as a library, once per dispatch variant: start
 * a server with a do-nothing protocol, post functions to its workers from
 * several threads at once, and check each runs exactly once, on its worker's
 * own thread, in order per poster; mts_post_all() reaches every worker.
 * Then posting never blocks: a worker posts 200,000 calls to itself, and two
 * workers post 200,000 each to the other at the same time (more than a
 * pipe's 65,536 one-byte signals: a post that waited for room would wait
 * for a thread that is itself posting). And stopped with thousands of calls
 * in flight, each posted call ends in exactly one of: ran, cancelled.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mtserver.h"
#include "tap.h"

#define WORKERS 3
#define POSTERS 4
#define CALLS 20000		/* per poster */

struct ran {
	atomic_uint_fast64_t count[WORKERS];
	pthread_t thread[WORKERS];	/* the thread a worker's calls ran on */
	atomic_bool wrong_thread;
	atomic_bool out_of_order;
	uint32_t last[WORKERS][POSTERS];	/* each written by one worker only */
	struct event_base *base[WORKERS];
};

static struct ran ran;
static struct mts_server *srv;

#define MANY 200000		/* calls posted by a worker, to itself or the other */
static atomic_uint_fast64_t many_ran[WORKERS];
/* Of the calls posted by a worker, those its target's full ring refused
 * (dispatch "ring": a worker cannot wait for room in its own inbox). */
static atomic_uint_fast64_t many_refused[WORKERS];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct job {
	unsigned worker, poster;
	uint32_t seq;
};

static void on_call(struct event_base *base, void *arg, int cancelled)
{
	struct job *j = arg;

	/* The first call on a worker names its thread and base; the rest must match. */
	if (ran.base[j->worker] == NULL) {
		ran.base[j->worker] = base;
		ran.thread[j->worker] = pthread_self();
	} else if (ran.base[j->worker] != base ||
		   !pthread_equal(ran.thread[j->worker], pthread_self())) {
		atomic_store(&ran.wrong_thread, true);
	}
	if (j->seq != ran.last[j->worker][j->poster] + 1)
		atomic_store(&ran.out_of_order, true);
	ran.last[j->worker][j->poster] = j->seq;
	atomic_fetch_add(&ran.count[j->worker], 1);
	free(j);
}

static void *poster_main(void *arg)
{
	unsigned p = (unsigned)(uintptr_t)arg;
	uint32_t seq[WORKERS] = { 0 };

	for (unsigned i = 0; i < CALLS; i++) {
		struct job *j = malloc(sizeof(*j));
		j->worker = (i * 7 + p) % WORKERS;
		j->poster = p;
		j->seq = ++seq[j->worker];
		int rc;
		/* A full ring refuses: this thread is not the worker, so it
		 * may wait for room. */
		while ((rc = mts_post(srv, j->worker, on_call, j)) == -ENOBUFS)
			sched_yield();
		if (rc != 0)
			free(j);
	}
	return NULL;
}

static atomic_uint all_hits;
static void on_all(struct event_base *base, void *arg, int cancelled)
{
	(void)base;
	(void)arg;
	atomic_fetch_add(&all_hits, 1);
}

static void count_many(struct event_base *base, void *arg, int cancelled)
{
	atomic_fetch_add(&many_ran[(uintptr_t)arg], 1);
}

/* Runs on a worker: posts MANY calls to worker `arg`, from this thread. */
static void post_many(struct event_base *base, void *arg, int cancelled)
{
	unsigned to = (unsigned)(uintptr_t)arg;

	for (unsigned i = 0; i < MANY; i++) {
		int rc = mts_post(srv, to, count_many, (void *)(uintptr_t)to);

		if (rc == -ENOBUFS)
			atomic_fetch_add(&many_refused[to], 1);
		else if (rc != 0)
			return;
	}
}

/* Waits up to 60 s for each worker in `want` to have run that many. */
static bool many_done(const uint64_t want[WORKERS])
{
	for (int i = 0; i < 6000; i++) {
		bool all = true;
		for (unsigned w = 0; w < WORKERS; w++)
			all = all && atomic_load(&many_ran[w]) + atomic_load(&many_refused[w]) >=
				     want[w];
		if (all)
			return true;
		usleep(10000);
	}
	return false;
}

/* Every posted call ends in exactly one of: ran, cancelled. */
static atomic_uint_fast64_t tally_ran, tally_cancelled, tally_posted;
static atomic_bool tally_wrong;

static void tally(struct event_base *base, void *arg, int cancelled)
{
	if (cancelled)
		atomic_fetch_add(&tally_cancelled, 1);
	else
		atomic_fetch_add(&tally_ran, 1);
	if ((base == NULL) != (cancelled != 0))
		atomic_store(&tally_wrong, true);
	free(arg);	/* ASan reports a leak if a call ends in neither */
}

static void *flood_main(void *arg)
{
	for (unsigned i = 0; i < 50000; i++) {
		void *owned = malloc(16);

		if (mts_post(srv, i % WORKERS, tally, owned) == 0)
			atomic_fetch_add(&tally_posted, 1);
		else
			free(owned);
	}
	return NULL;
}

/* The protocol: accept and close; this test is about posting. */
static int open_close(struct mts_conn *c, void *arg) { return -ECONNABORTED; }
static void nothing(struct mts_conn *c, void *arg) { }

static void *run_main(void *arg)
{
	return (void *)(intptr_t)mts_run(srv);
}

static void test_variant(const char *dispatch)
{
	const char *listen[] = { "127.0.0.1" };
	struct mts_handler h = { .on_open = open_close, .on_shutdown = nothing,
				  .on_close = nothing };
	struct mts_config cfg;
	struct mts_worker_stats st;
	pthread_t runner, posters[POSTERS];
	char why[256];
	uint64_t total = 0, want[WORKERS] = { 0 }, refused_before[2];
	uint64_t t0;
	void *rc;

	memset(&ran, 0, sizeof(ran));
	atomic_store(&all_hits, 0);
	for (unsigned w = 0; w < WORKERS; w++) {
		atomic_store(&many_ran[w], 0);
		atomic_store(&many_refused[w], 0);
	}
	mts_config_defaults(&cfg);
	cfg.listen = listen;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = WORKERS;
	cfg.dispatch = dispatch;
	if (mts_new(&srv, &cfg, &h, why, sizeof(why)) != 0)
		bail(why);
	ok(mts_worker_count(srv) == WORKERS, "%s: mts_worker_count", dispatch);
	ok(mts_post(srv, WORKERS, on_all, NULL) == -EINVAL,
	   "%s: posting to a worker that does not exist: -EINVAL", dispatch);
	pthread_create(&runner, NULL, run_main, NULL);

	for (unsigned p = 0; p < POSTERS; p++)
		pthread_create(&posters[p], NULL, poster_main, (void *)(uintptr_t)p);
	for (unsigned p = 0; p < POSTERS; p++)
		pthread_join(posters[p], NULL);
	ok(mts_post_all(srv, on_all, NULL) == 0, "%s: mts_post_all", dispatch);
	for (int i = 0; i < 500; i++) {
		total = 0;
		for (unsigned w = 0; w < WORKERS; w++)
			total += atomic_load(&ran.count[w]);
		if (total == (uint64_t)POSTERS * CALLS && atomic_load(&all_hits) == WORKERS)
			break;
		usleep(10000);
	}
	ok(total == (uint64_t)POSTERS * CALLS && !atomic_load(&ran.out_of_order),
	   "%s: %d posters x %d calls from other threads: %llu ran, in order per poster",
	   dispatch, POSTERS, CALLS, (unsigned long long)total);
	ok(!atomic_load(&ran.wrong_thread) && !pthread_equal(ran.thread[0], ran.thread[1]) &&
	   ran.base[0] != ran.base[1], "%s: each call ran on its own worker's thread and event_base",
	   dispatch);
	ok(atomic_load(&all_hits) == WORKERS, "%s: mts_post_all ran once on each worker", dispatch);

	/* A worker posts to itself. */
	t0 = now_ms();
	want[0] = MANY;
	mts_post(srv, 0, post_many, (void *)(uintptr_t)0);
	if (!many_done(want)) {
		ok(0, "%s: a worker posts %d calls to itself: stuck after %llu", dispatch, MANY,
		   (unsigned long long)atomic_load(&many_ran[0]));
		bail("a worker is blocked for good");
	}
	ok(atomic_load(&many_refused[0]) == 0 || strcmp(dispatch, "ring") == 0,
	   "%s: a worker posts %d calls to itself: all ran or were refused (%llu refused), "
	   "in %llu ms", dispatch, MANY, (unsigned long long)atomic_load(&many_refused[0]),
	   (unsigned long long)(now_ms() - t0));

	/* Two workers post to each other at the same time. */
	refused_before[0] = atomic_load(&many_refused[0]);
	refused_before[1] = atomic_load(&many_refused[1]);
	t0 = now_ms();
	want[0] = 2 * MANY;
	want[1] = MANY;
	mts_post(srv, 0, post_many, (void *)(uintptr_t)1);
	mts_post(srv, 1, post_many, (void *)(uintptr_t)0);
	if (!many_done(want)) {
		ok(0, "%s: two workers post %d calls each to the other: stuck with %llu and "
		   "%llu run (of %llu and %llu)", dispatch, MANY,
		   (unsigned long long)atomic_load(&many_ran[0]),
		   (unsigned long long)atomic_load(&many_ran[1]),
		   (unsigned long long)want[0], (unsigned long long)want[1]);
		bail("two workers are blocked for good");
	}
	ok(1, "%s: two workers post %d calls each to the other: all ran or were refused "
	   "(%llu, %llu refused), in %llu ms", dispatch, MANY,
	   (unsigned long long)(atomic_load(&many_refused[0]) - refused_before[0]),
	   (unsigned long long)(atomic_load(&many_refused[1]) - refused_before[1]),
	   (unsigned long long)(now_ms() - t0));

	mts_worker_stats(srv, 0, &st);
	diag("%s worker 0: %llu wake-ups, %llu saved, largest batch %llu", dispatch,
	     (unsigned long long)st.wakeups, (unsigned long long)st.wakeups_saved,
	     (unsigned long long)st.largest_batch);

	/* Stop while 50,000 calls are being posted, then post 1,000 more to
	 * workers that have left their loops: every one runs or is cancelled. */
	atomic_store(&tally_ran, 0);
	atomic_store(&tally_cancelled, 0);
	atomic_store(&tally_posted, 0);
	atomic_store(&tally_wrong, false);
	pthread_create(&posters[0], NULL, flood_main, NULL);
	usleep(1000);
	mts_stop(srv);
	pthread_join(runner, &rc);
	ok(rc == NULL, "%s: mts_stop from another thread: mts_run returns 0", dispatch);
	pthread_join(posters[0], NULL);
	for (unsigned i = 0; i < 1000; i++) {
		void *owned = malloc(16);

		if (mts_post(srv, i % WORKERS, tally, owned) == 0)
			atomic_fetch_add(&tally_posted, 1);
		else
			free(owned);
	}
	mts_free(srv);
	ok(atomic_load(&tally_ran) + atomic_load(&tally_cancelled) == atomic_load(&tally_posted) &&
	   atomic_load(&tally_cancelled) >= 1000 && !atomic_load(&tally_wrong),
	   "%s: stopped with calls in flight: %llu ran + %llu cancelled = %llu posted; a "
	   "cancelled call gets base NULL", dispatch,
	   (unsigned long long)atomic_load(&tally_ran),
	   (unsigned long long)atomic_load(&tally_cancelled),
	   (unsigned long long)atomic_load(&tally_posted));
}

int main(void)
{
	unsigned n = 0;
	tap_watchdog(300);

	while (mts_dispatch_name(n) != NULL)
		n++;
	tap_plan(10 * (int)n);
	for (unsigned i = 0; i < n; i++)
		test_variant(mts_dispatch_name(i));
	return tap_done();
}
