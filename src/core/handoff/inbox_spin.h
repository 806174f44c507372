/*
 * inbox_spin.h - the steps of the spin-then-block wake-up strategy, for
 * inbox_spin.c and for the tests that run them one by one
 * (tests/test_spin_litmus.c runs the handshake's two halves against each
 * other with no system call in between). inbox_spin.c argues the protocol.
 */
#ifndef MTS_INBOX_SPIN_H
#define MTS_INBOX_SPIN_H

#include <time.h>

#include <urcu/arch.h>

#include "inbox_wfcq.h"

struct inbox_spin {
	struct inbox_wfcq q;	/* the queue: wfcq's, operated by its ops */
	uint64_t spin_ns;	/* how long to poll: option "us", set before init */
	/*
	 * 1 while the consumer sleeps (or is about to) in its loop's poll;
	 * 0 while it is awake and will look at the queue again without a
	 * signal. Set to 1 by the consumer only, back to 0 by the consumer or
	 * by the one producer whose exchange finds it 1 (that one signals).
	 * Read by every post: a line of its own.
	 */
	_Alignas(CACHE_LINE) atomic_int sleeping;
};

/*
 * GCC refuses atomic_thread_fence() under TSan by default (-Wtsan): TSan
 * does not model fences, it treats them as no-ops. The fences still run,
 * and nothing TSan needs depends on them: the flag is an atomic (no data
 * race to report), and what the handler reads is ordered for TSan by
 * wfcq's annotations (tsan.h).
 */
#if defined(__SANITIZE_THREAD__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
#endif

/* Producer, after its enqueue (P1): must it signal? F_p, P2. */
static inline bool spin_must_signal(struct inbox *ib)
{
	struct inbox_spin *s = (struct inbox_spin *)ib;

	/* F_p: the enqueue's link before the load of the flag. */
	atomic_thread_fence(memory_order_seq_cst);
	/* Relaxed: the fences order what must be ordered; the exchange lets
	 * exactly one producer per sleep send the wake-up. */
	return atomic_load_explicit(&s->sleeping, memory_order_relaxed) == 1 &&
	       atomic_exchange_explicit(&s->sleeping, 0, memory_order_relaxed) == 1;
}

/* Consumer: the next message if there is one now; WOULDBLOCK counts as
 * none (see inbox_spin.c for why that is safe at the handshake). Through
 * the queue's ops (wfcq's collect and next), so that a test can place a
 * post at either step. */
static inline struct inbox_msg *spin_try_take(struct inbox *ib)
{
	struct inbox_msg *m;

	(void)ib->ops->collect(ib);
	m = ib->ops->next(ib);
	return m == INBOX_WOULDBLOCK || m == INBOX_WOULDBLOCK_SIGNAL_DUE ? NULL : m;
}

static inline uint64_t spin_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * D1: poll the queue for up to the polling time. Returns a message found,
 * or NULL when the time is up.
 */
static inline struct inbox_msg *spin_poll(struct inbox *ib)
{
	uint64_t spin_ns = ((struct inbox_spin *)ib)->spin_ns;
	uint64_t deadline = spin_ns ? spin_now_ns() + spin_ns : 0;
	struct inbox_msg *m;

	while (deadline != 0) {
		if ((m = spin_try_take(ib)) != NULL)
			return m;
		if (spin_now_ns() >= deadline)
			break;
		caa_cpu_relax();
	}
	return NULL;
}

/* D2, F_c: say that the consumer is about to sleep. */
static inline void spin_announce(struct inbox *ib)
{
	atomic_store_explicit(&((struct inbox_spin *)ib)->sleeping, 1, memory_order_relaxed);
	/* F_c: the flag before the queue's loads. */
	atomic_thread_fence(memory_order_seq_cst);
}

/* D3: one more look. Returns a message (the consumer is awake again), or
 * NULL: it may sleep. */
static inline struct inbox_msg *spin_recheck(struct inbox *ib)
{
	struct inbox_msg *m = spin_try_take(ib);

	if (m != NULL)
		atomic_store_explicit(&((struct inbox_spin *)ib)->sleeping, 0, memory_order_relaxed);
	return m;
}

/*
 * Consumer, when the round has found nothing more. The round's first dry
 * spell: D1, then the handshake; returns a message found (the consumer
 * stays awake and goes on), or NULL: it may sleep. A later dry spell in the
 * same round (D1 found something, and the queue ran dry again) does not
 * poll again: it returns INBOX_WOULDBLOCK, and the round re-arms with the
 * flag still 0, so the worker's loop polls its other descriptors before the
 * next round polls the queue. A round thus polls at most once, and the
 * sockets wait for at most two rounds, and so two polling times
 * (inbox_spin.c).
 */
static inline struct inbox_msg *spin_before_sleep(struct inbox *ib, bool first)
{
	struct inbox_msg *m;

	if (!first)
		return INBOX_WOULDBLOCK;
	if ((m = spin_poll(ib)) != NULL)		/* D1 */
		return m;
	spin_announce(ib);				/* D2, F_c */
	return spin_recheck(ib);			/* D3 */
}

#if defined(__SANITIZE_THREAD__)
#pragma GCC diagnostic pop
#endif

#endif
