/*
 * test_spin_litmus.c - spin-then-block's "sleeping" handshake run as a
 * litmus test on the real code: the producer's half (enqueue, F_p, load the
 * flag: the variant's enqueue op) against the consumer's half (store the
 * flag, F_c, one last look at the queue: its before_sleep op with no
 * polling), on two CPUs, a million times, with no system
 * call anywhere in a trial. A trial loses the message when the producer
 * read the flag as 0 (so it does not signal) and the consumer's last look
 * found nothing (so it would sleep): the store-buffering outcome, which the
 * two full fences forbid (inbox_spin.c argues it; the model checks it).
 *
 * What it can witness. On x86 the one reordering the hardware performs is
 * a store held in the store buffer while a later load to another address
 * goes ahead (x86-TSO): exactly what each fence is there to prevent, so
 * without either fence this test loses messages on x86 within a fraction
 * of a second (the mutants tests/mutants/spin-no-fence-*.mutant must make
 * it fail). On Arm or POWER, whose loads and stores may also be reordered
 * with each other, the same test witnesses the same outcome, by whichever
 * reordering the machine takes; it cannot say which one it was. What it
 * cannot witness: anything on a machine with one CPU (no two halves run at
 * once: the test says SKIP), and, as any litmus test, an outcome the
 * machine did not happen to produce in the trials run: passing is evidence
 * for this machine and these trials, the argument and the model are the
 * proof.
 *
 * Each trial: the consumer thread resets the inbox (queue empty, flag 0:
 * awake) and releases both sides at once through a shared trial number
 * they spin on; each side waits a random few dozen cycles, so that the two
 * halves overlap at every alignment; then the consumer checks the outcome,
 * takes the message if its last look did not, and starts the next trial.
 */
#include <config.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <urcu/arch.h>

#include "inbox_spin.h"
#include "tap.h"

#define TRIALS 1000000
/* On a loaded machine the two sides seldom run at once and trials crawl:
 * the test stops after this long, with what it ran (reported). */
#define MAX_MS 20000

static struct inbox *ib;
static atomic_uint trial;		/* the trial both sides may start */
static atomic_bool last_trial;		/* the consumer stops early: no more */
static atomic_uint producer_done;	/* the last trial the producer finished */
static bool producer_signals[2];	/* per trial parity: the producer's P2 */
static struct inbox_msg msgs[2];
static int cpu_of[2];			/* consumer's, producer's: the first two allowed */

static void nothing(struct inbox_msg *msg, void *arg)
{
}

/* A few dozen pause cycles, different each trial. */
static void skew(unsigned *seed)
{
	for (unsigned n = rand_r(seed) % 64; n > 0; n--)
		caa_cpu_relax();
}

/*
 * Between trials, a side waits for the other: spinning, and yielding now
 * and then, so that a side whose peer is off its CPU (a loaded machine)
 * gives the CPU back instead of burning its time slice. The trial itself,
 * from the release to the last load, makes no system call.
 */
static void wait_for(atomic_uint *v, unsigned want)
{
	for (unsigned spins = 0; atomic_load_explicit(v, memory_order_acquire) != want; spins++) {
		if (spins % 1024 == 1023)
			sched_yield();
		else
			caa_cpu_relax();
	}
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *producer_main(void *arg)
{
	unsigned seed = 12345;

	pin(cpu_of[1]);
	for (unsigned t = 1; t <= TRIALS; t++) {
		wait_for(&trial, t);
		if (atomic_load_explicit(&last_trial, memory_order_acquire))
			break;
		skew(&seed);
		/* P1, F_p, P2: the variant's own enqueue. */
		producer_signals[t & 1] = ib->ops->enqueue(ib, &msgs[t & 1]) == INBOX_SIGNAL;
		atomic_store_explicit(&producer_done, t, memory_order_release);
	}
	return NULL;
}

int main(void)
{
	struct event_base *base;
	struct inbox_spin *s;
	struct inbox_spec spec;
	char why[256];
	pthread_t producer;
	unsigned seed = 777, lost = 0, signalled = 0, found = 0, ran = 0;
	struct timespec t0, t1;
	cpu_set_t allowed;
	long cpus = sched_getaffinity(0, sizeof(allowed), &allowed) == 0 ? CPU_COUNT(&allowed) : 1;

	tap_watchdog(120);
	tap_plan(1);
	if (cpus < 2) {
		skip("spin-then-block's handshake as a litmus test: needs two CPUs (%ld allowed)",
		     cpus);
		return tap_done();
	}
	for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
		if (CPU_ISSET(c, &allowed))
			cpu_of[k++] = c;
	base = event_base_new();
	/* us=0: before_sleep is the handshake alone, no polling. */
	if (base == NULL || inbox_spec_parse(&spec, "spin-then-block:us=0", why, sizeof(why)) < 0 ||
	    inbox_new(&ib, &spec, base, nothing, NULL, 64) < 0)
		bail("cannot create the inbox");
	s = (struct inbox_spin *)ib;
	pin(cpu_of[0]);
	pthread_create(&producer, NULL, producer_main, NULL);
	tap_waiting("the litmus trials");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned t = 1; t <= TRIALS; t++) {
		struct inbox_msg *m;

		if (t % 1024 == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >
			    MAX_MS) {
				atomic_store_explicit(&last_trial, true, memory_order_release);
				atomic_store_explicit(&trial, t, memory_order_release);
				break;
			}
		}

		/* Reset: the queue is empty (the last trial's message taken),
		 * and the consumer is awake. */
		atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
		atomic_store_explicit(&trial, t, memory_order_release);
		skew(&seed);
		/* D2, F_c, D3: the variant's own handshake, first dry spell. */
		m = ib->ops->before_sleep(ib, true);
		wait_for(&producer_done, t);
		if (m != NULL)
			found++;
		if (producer_signals[t & 1])
			signalled++;
		if (m == NULL && !producer_signals[t & 1])
			lost++;
		/* Take the message if the last look did not: the producer has
		 * finished, so nothing is half linked any more. */
		while (m == NULL) {
			ib->ops->collect(ib);
			m = ib->ops->next(ib);
			if (m == INBOX_WOULDBLOCK || m == INBOX_WOULDBLOCK_SIGNAL_DUE)
				m = NULL;
		}
		ran++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(producer, NULL);
	ok(lost == 0,
	   "spin-then-block's handshake, %u trials on two CPUs with no system call: no "
	   "message lost (lost %u; the producer signalled in %u, the last look found it in %u)",
	   ran, lost, signalled, found);
	diag("%u trials in %.0f ms%s", ran,
	     (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
	     ran < TRIALS ? " (stopped early: the machine is busy, fewer trials witness less)" : "");
	inbox_free(ib, NULL, NULL);
	event_base_free(base);
	return tap_done();
}
