/*
 * inbox_lfq.h - the lfq variant's queue, private to inbox_lfq.c and to
 * tests/test_lfq_grace.c, which plays a producer that still holds a node
 * the consumer has just taken.
 */
#ifndef MTS_INBOX_LFQ_H
#define MTS_INBOX_LFQ_H

#include <stdlib.h>

/* The bullet-proof flavour: a thread registers itself at its first
 * read-side section, so any thread may post (urcu-bp.h, liburcu). */
#include <urcu-bp.h>
#include <urcu/rculfqueue.h>

#include "inbox_count.h"
#include "tsan.h"

/* One per post: the queue's node cannot be the message's own link, because
 * the node outlives its dequeue by a grace period and the message does not
 * (its handler may free it at once). */
struct lfq_node {
	struct cds_lfq_node_rcu node;
	struct inbox_msg *msg;
	struct rcu_head rcu;		/* for call_rcu(): the deferred free */
};

struct inbox_lfq {
	struct inbox common;
	_Alignas(CACHE_LINE) struct cds_lfq_queue_rcu q;
	struct count_elision elide;
};

static void lfq_free_node(struct rcu_head *head)
{
	struct lfq_node *n = caa_container_of(head, struct lfq_node, rcu);

	TSAN_ACQUIRE(n);	/* pairs with the release before call_rcu() */
	free(n);
}

/*
 * Consumer: the next message, NULL if none, and the node it came in given
 * back after a grace period: a producer may still be reading it (freed at
 * once, its read would be a use after free: inbox_lfq.c).
 */
static inline struct inbox_msg *lfq_take(struct inbox_lfq *l)
{
	struct cds_lfq_node_rcu *qn;
	struct lfq_node *n;
	struct inbox_msg *msg;

	rcu_read_lock();
	qn = cds_lfq_dequeue_rcu(&l->q);
	rcu_read_unlock();
	if (qn == NULL)
		return NULL;
	n = caa_container_of(qn, struct lfq_node, node);
	TSAN_ACQUIRE(n);	/* pairs with the release in lfq_enqueue */
	msg = n->msg;
	TSAN_RELEASE(n);
	call_rcu(&n->rcu, lfq_free_node);	/* after every section that began before */
	return msg;
}

#endif
