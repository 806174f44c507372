/*
 * inbox_count.h - notify elision by a count, for queues whose enqueue
 * cannot tell whether the queue was empty (ring: a slot index says
 * nothing of the consumer; lfq: the Michael-Scott enqueue reports
 * nothing). Each post, once its message is in the queue, adds one to a
 * count, and only the post that found it zero signals; each round takes at
 * most what it read of the count and subtracts what it took, re-arming if
 * the count is still above zero. inbox_ring.c argues why no wake-up is
 * lost, for any queue in which a message is visible to the consumer once
 * its post has counted it; model/handoff.pml checks it (-DRING).
 */
#ifndef MTS_INBOX_COUNT_H
#define MTS_INBOX_COUNT_H

#include "inbox_impl.h"

struct count_elision {
	/* R3 adds, C4 subtracts. */
	_Alignas(CACHE_LINE) _Atomic uint64_t count;
	/* The consumer's alone. */
	_Alignas(CACHE_LINE) uint64_t avail;	/* k of this round (C2) */
	uint64_t taken;				/* taken this round (C3), for C4 */
};

static inline void count_init(struct count_elision *e)
{
	atomic_init(&e->count, 0);
	e->avail = e->taken = 0;
}

/* R3, after the message is in the queue: INBOX_SIGNAL or INBOX_RIDE. */
static inline int count_post(struct count_elision *e)
{
	if (atomic_fetch_add_explicit(&e->count, 1, memory_order_release) == 0)
		return INBOX_SIGNAL;
	return INBOX_RIDE;
}

/* C2: how many counted messages this round may take. */
static inline void count_collect(struct count_elision *e)
{
	e->avail = atomic_load_explicit(&e->count, memory_order_acquire);
	e->taken = 0;
}

/* C3: may the round take one more? */
static inline bool count_may_take(const struct count_elision *e)
{
	return e->taken < e->avail;
}

static inline void count_took(struct count_elision *e)
{
	e->taken++;
}

/* C4: true when counted messages are left whose posts did not signal. */
static inline bool count_end_round(struct count_elision *e)
{
	uint64_t taken = e->taken;

	e->taken = e->avail = 0;
	if (taken == 0)
		return atomic_load_explicit(&e->count, memory_order_relaxed) > 0;
	return atomic_fetch_sub_explicit(&e->count, taken, memory_order_relaxed) - taken > 0;
}

#endif
