/*
 * deferred.h - the messages that must arrive: a worker's list of the ones
 * its full inbox refused, posted again, oldest first, as room frees.
 *
 * Who may call what:
 *   deferred_init, deferred_destroy   the owner, alone
 *   deferred_post                     any thread (a poster to the worker)
 *   deferred_flush                    any thread: the worker after it took
 *                                     a message, the retrier
 *   deferred_any                      any thread (a cheap, relaxed look)
 *   deferred_drain                    the owner, once nothing posts or
 *                                     flushes any more (exec_close)
 */
#ifndef MTS_DEFERRED_H
#define MTS_DEFERRED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "inbox.h"

struct deferred {
	pthread_mutex_t lock;
	/* Oldest first, linked through their msg.node.next (a message the
	 * inbox refused is linked nowhere else). Under `lock`; `n` counts them
	 * for the lock-free emptiness test (deferred.c). */
	struct cds_wfcq_node *head, **tail;
	atomic_uint n;
};

void deferred_init(struct deferred *d);
void deferred_destroy(struct deferred *d);
/* Posts msg to ib, or keeps it if ib refuses it or messages are kept
 * already (they go first). True when kept: kick the retrier then. */
bool deferred_post(struct deferred *d, struct inbox *ib, struct inbox_msg *msg);
/* Posts what is kept, oldest first, until ib refuses one: 0 when nothing
 * is left, -EAGAIN when some is. */
int deferred_flush(struct deferred *d, struct inbox *ib);
/* Is anything kept? Relaxed: a hint for whether to flush. */
static inline bool deferred_any(struct deferred *d)
{
	return atomic_load_explicit(&d->n, memory_order_relaxed) != 0;
}
/* Every kept message, oldest first, to fn; the list is empty after. */
void deferred_drain(struct deferred *d, void (*fn)(struct inbox_msg *msg, void *arg),
		    void *arg);

#endif
