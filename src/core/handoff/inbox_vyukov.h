/*
 * inbox_vyukov.h - the vyukov variant's queue, private to inbox_vyukov.c and
 * to tests/test_inbox.c, which plays a producer's two steps itself (to stop
 * it between them on purpose). The real post runs them back to back.
 */
#ifndef MTS_INBOX_VYUKOV_H
#define MTS_INBOX_VYUKOV_H

#include "inbox_impl.h"

struct inbox_vyukov {
	struct inbox common;
	/* Exchanged by every push, the consumer's push of the stub included. */
	_Alignas(CACHE_LINE) _Atomic(struct inbox_msg *) tail;
	/* The consumer's alone: the oldest node not yet handed out (or the
	 * stub). And the stub itself, a node that carries no message: it
	 * stands in for "nothing queued", so the queue is never without a
	 * node and a push never has to test for empty. */
	_Alignas(CACHE_LINE) struct inbox_msg *head;
	struct inbox_msg stub;
};

/* P1a: make `n` the tail; returns the old tail (the stub: the queue held no
 * message). */
static inline struct inbox_msg *vyukov_swap_tail(struct inbox_vyukov *q, struct inbox_msg *n)
{
	/* Relaxed: nobody can see n before the release of the exchange. */
	atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
	/*
	 * acq_rel. Release: the producer that exchanges next reads n and
	 * writes n->next, after (in coherence order) the NULL just stored.
	 * Acquire: the same, the other way round: our P1b writes prev->next
	 * after prev's own producer stored its NULL there.
	 */
	return atomic_exchange_explicit(&q->tail, n, memory_order_acq_rel);
}

/* P1b: link the old tail to `n`: from here the consumer can reach n. */
static inline void vyukov_link(struct inbox_msg *prev, struct inbox_msg *n)
{
	/* Release: publishes what the poster wrote into the message (and n's
	 * NULL link); the consumer's acquire load of prev->next pairs with it. */
	atomic_store_explicit(&prev->next, n, memory_order_release);
}

#endif
