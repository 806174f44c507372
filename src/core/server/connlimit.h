/*
 * connlimit.h - the live-connection count behind --max-conns, shared by
 * pointer between whoever accepts (the acceptor thread, or every worker
 * with --accept reuseport/shared) and the workers that close connections.
 *
 * A slot is taken before the accept that may fill it, and released when
 * its connection ends, on any thread, or at once if the accept brought no
 * connection (acceptor.c). The release that takes the count from max to
 * max - 1 calls on_slot_freed, once per such transition, whatever the slot
 * held: the accept side paused when it saw the count at max, and wants to
 * hear of the first slot that frees.
 *
 * The count never passes max, however many threads accept: a take is a
 * compare-and-swap from a value below max (connlimit_try_take). So an
 * accepting thread that found no room, and paused, hears of the next slot:
 * the count is max then, and it can fall below max only by a release from
 * max to max - 1, which calls on_slot_freed after the failed take (the
 * callback wakes the accept side, which looks again). Relaxed is enough
 * for the count: one variable, and the callback's own wake-up orders the
 * rest.
 */
#ifndef MTS_CONNLIMIT_H
#define MTS_CONNLIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct connlimit {
	atomic_uint live;
	unsigned max;				/* 0: unlimited */
	void (*on_slot_freed)(void *arg);	/* any thread; may be NULL */
	void *arg;
};

static inline bool connlimit_full(const struct connlimit *cl)
{
	return cl->max != 0 &&
	       atomic_load_explicit(&cl->live, memory_order_relaxed) >= cl->max;
}

/* Takes a slot; false (nothing taken) at the limit. */
static inline bool connlimit_try_take(struct connlimit *cl)
{
	unsigned live = atomic_load_explicit(&cl->live, memory_order_relaxed);

	do {
		if (cl->max != 0 && live >= cl->max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&cl->live, &live, live + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	return true;
}

/* Gives a slot back; calls on_slot_freed on the way from max to max - 1. */
static inline void connlimit_release(struct connlimit *cl)
{
	unsigned was = atomic_fetch_sub_explicit(&cl->live, 1, memory_order_relaxed);

	if (cl->max != 0 && was == cl->max && cl->on_slot_freed != NULL)
		cl->on_slot_freed(cl->arg);
}

static inline unsigned connlimit_live(const struct connlimit *cl)
{
	return atomic_load_explicit(&cl->live, memory_order_relaxed);
}

#endif
