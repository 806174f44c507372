/*
 * owed.h - a wake-up owed: the one way this project keeps a signal that
 * failed (an inbox's, the control channel's) until the retrier sends it.
 *
 * A signal stands for work queued already, which cannot be taken back, so
 * a signal that failed is counted as owed, and the retrier (retry.h) is
 * kicked to pay it: owed_pay() sends one signal per unit owed.
 *
 * Exactly as many signals as were owed, never more, however many threads
 * pay at once: a payer claims one unit (a compare-and-swap from n to n - 1)
 * before it sends, and gives the unit back if the send fails. A unit is
 * counted after the work it stands for was queued, with release; the claim
 * acquires: so the signal a payer sends comes after that work, and a
 * reader it wakes finds it (the argument of inbox_wfcq.c, whose P2 the
 * payer's signal then is).
 *
 * The kick comes after the count (retry.c: a kick that found nothing owed
 * would let the retrier sleep past the debt).
 *
 * Who may call what: any thread, concurrently; owed_incur is
 * async-signal-safe (an atomic add and a sem_post).
 */
#ifndef MTS_OWED_H
#define MTS_OWED_H

#include <stdatomic.h>

#include "retry.h"

struct owed {
	atomic_uint n;
};

/* Sends one signal: 0, or a negative errno (the unit stays owed). */
typedef int (*owed_send_fn)(void *arg);

/* A signal failed: owe it, then kick r (if not NULL) to pay it. */
static inline void owed_incur(struct owed *o, struct retrier *r)
{
	atomic_fetch_add_explicit(&o->n, 1, memory_order_release);
	if (r != NULL)
		retrier_kick(r);
}

/* Sends what is owed; 0 once nothing is, or the error of a send that failed. */
static inline int owed_pay(struct owed *o, owed_send_fn send, void *arg)
{
	unsigned n = atomic_load_explicit(&o->n, memory_order_relaxed);
	int rc;

	while (n > 0) {
		/* Claim one unit before sending; on failure n is reloaded. */
		if (!atomic_compare_exchange_weak_explicit(&o->n, &n, n - 1,
							   memory_order_acquire,
							   memory_order_relaxed))
			continue;
		if ((rc = send(arg)) < 0) {
			/* Not sent: the unit is owed again, for a later retry. */
			atomic_fetch_add_explicit(&o->n, 1, memory_order_release);
			return rc;
		}
		n = atomic_load_explicit(&o->n, memory_order_relaxed);
	}
	return 0;
}

/* For statistics: how many are owed now. */
static inline unsigned owed_count(const struct owed *o)
{
	return atomic_load_explicit(&o->n, memory_order_relaxed);
}

#endif
