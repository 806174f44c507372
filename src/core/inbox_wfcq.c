/*
 * inbox_wfcq.c - the wait-free variant: a liburcu concurrent queue, a
 * wake-up only when the queue was empty, the whole queue taken at once.
 *
 * WHY NO WAKE-UP IS LOST
 *
 * The steps (inbox.c runs them in this order):
 *   P1  was_empty = enqueue(msg)          C1  drain the wake-up fd
 *   P2  if (was_empty) signal the fd      C2  splice the whole shared queue
 *                                             into the private batch
 *                                         C3  handle the batch
 *
 * Claim: after every post, the consumer runs C2 at least once more.
 *
 * Every enqueue (P1) and every splice (C2) swaps the shared queue's tail
 * atomically, so all P1s and C2s fall in one total order. Take a post P
 * whose message no splice has taken yet, and let S be the last splice before
 * P1 (if any), and D the drain just before S.
 *  - If P1 found the queue empty, P signals in P2, after P1, which is after
 *    S (S emptied the queue P1 saw empty), which is after D. A signal after
 *    the last drain leaves the fd readable: the loop will run C1..C3 again,
 *    and that splice sees P's message.
 *  - If P1 found it non-empty, some post Q between S and P found it empty,
 *    and Q signals after its own P1, hence after D: the same reasoning.
 *    P's message rides along. That is notify elision.
 * The argument needs D before S: C1 before C2. Drain after the splice
 * instead and a post landing between the two is lost: its P1 sees the queue
 * the splice just emptied, the late drain eats its signal, and every later
 * post sees a non-empty queue and elides its own signal. Nothing wakes the
 * consumer again.
 *
 * MEMORY ORDERING
 *
 * cds_wfcq_enqueue() issues a full barrier before it publishes the node
 * (liburcu: "Issues a full memory barrier before enqueue"), so what the
 * poster wrote into the message is visible to whoever dequeues it; splice
 * and dequeue read the links in dependency order ("content written into the
 * node before enqueue is guaranteed to be consistent"). P1 and P2 are an
 * atomic exchange and a write() system call; C1 and C2 are a read() system
 * call and atomic exchanges. Exchanges are full barriers on every
 * architecture liburcu supports, and the kernel orders the eventfd read and
 * write, so neither side can move its second step before its first. The
 * model in doc/ checks the step ordering; the barriers make it the real one.
 *
 * WOULDBLOCK
 *
 * An enqueue is two stores: swap the tail, then link the old tail to the new
 * node. Between them the consumer sees the queue's head unlinked but the
 * tail moved. The non-blocking splice and dequeue report CDS_WFCQ_WOULDBLOCK
 * there; inbox.c then ends the round and re-arms. The producer in the gap
 * has not signalled yet, or has, so nothing is lost by leaving.
 */
#include <config.h>

#include <stdlib.h>

#include "inbox_impl.h"

#include "tsan.h"

struct inbox_wfcq {
	struct inbox common;
	/* Swapped by every producer and by the consumer's splice. */
	_Alignas(CACHE_LINE) struct cds_wfcq_tail tail;
	/* Cleared by the splice; the post that finds the queue empty links the
	 * first node here. The private batch below is the consumer's alone. */
	_Alignas(CACHE_LINE) struct __cds_wfcq_head head;
	struct __cds_wfcq_head batch_head;
	struct cds_wfcq_tail batch_tail;
};

#define WFCQ(ib) ((struct inbox_wfcq *)(ib))

static int wfcq_init(struct inbox *ib)
{
	__cds_wfcq_init(&WFCQ(ib)->head, &WFCQ(ib)->tail);
	__cds_wfcq_init(&WFCQ(ib)->batch_head, &WFCQ(ib)->batch_tail);
	return 0;
}

static bool wfcq_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	cds_wfcq_node_init(&msg->node);
	TSAN_RELEASE(msg);	/* pairs with TSAN_ACQUIRE in wfcq_next/wfcq_leftover */
	/* liburcu returns false when the queue WAS empty: that post signals. */
	return !cds_wfcq_enqueue(&WFCQ(ib)->head, &WFCQ(ib)->tail, &msg->node);
}

static bool wfcq_collect(struct inbox *ib, unsigned long signals)
{
	struct inbox_wfcq *q = WFCQ(ib);

	/* Appends behind leftovers of an earlier round: order is kept. */
	return __cds_wfcq_splice_nonblocking(&q->batch_head, &q->batch_tail,
					     &q->head, &q->tail) != CDS_WFCQ_RET_WOULDBLOCK;
}

static struct inbox_msg *wfcq_next(struct inbox *ib)
{
	struct inbox_wfcq *q = WFCQ(ib);
	struct cds_wfcq_node *node;

	node = __cds_wfcq_dequeue_nonblocking(&q->batch_head, &q->batch_tail);
	if (node == CDS_WFCQ_WOULDBLOCK)
		return INBOX_WOULDBLOCK;	/* a link inside the batch is not set yet */
	if (node == NULL)
		return NULL;
	TSAN_ACQUIRE(caa_container_of(node, struct inbox_msg, node));
	return caa_container_of(node, struct inbox_msg, node);
}

static struct inbox_msg *wfcq_leftover(struct inbox *ib)
{
	struct inbox_wfcq *q = WFCQ(ib);
	struct cds_wfcq_node *node;

	/* No producer is left, so every enqueue is complete and the blocking
	 * calls cannot wait. */
	__cds_wfcq_splice_blocking(&q->batch_head, &q->batch_tail, &q->head, &q->tail);
	node = __cds_wfcq_dequeue_blocking(&q->batch_head, &q->batch_tail);
	if (node == NULL)
		return NULL;
	TSAN_ACQUIRE(caa_container_of(node, struct inbox_msg, node));
	return caa_container_of(node, struct inbox_msg, node);
}

static void wfcq_fini(struct inbox *ib)
{
}

const struct inbox_ops inbox_wfcq_ops = {
	.size = sizeof(struct inbox_wfcq),
	.wakeup = WAKEUP_EVENTFD,
	.init = wfcq_init,
	.enqueue = wfcq_enqueue,
	.collect = wfcq_collect,
	.next = wfcq_next,
	.leftover = wfcq_leftover,
	.fini = wfcq_fini,
};
