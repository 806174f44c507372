/*
 * inbox_wfcq.c - the wait-free variant: a liburcu concurrent queue, a
 * wake-up only when the queue was empty, the whole queue taken at once.
 * This comment is the argument's one home; doc/HANDOFF.md tells the story
 * and points here, and model/handoff.pml checks it.
 *
 * Also wfcq-always, the same queue without the elision, for the factorial
 * comparison (doc/HANDOFF.md): every post signals, and the consumer
 * dequeues one message at a time from the shared queue, as mutex-eventfd
 * pops. Its argument is at the end of this comment.
 *
 * THE STEPS (inbox.c runs them in this order)
 *
 *   producer (inbox_post)                  consumer (the round, inbox.c)
 *   P1a exchange the tail with its node    C1  drain the wake-up fd
 *   P1b link the old tail to its node      C2  splice: S1 exchange head.next
 *   P2  if the old tail was the head:          with NULL; if it held a node,
 *       signal the fd (on failure: owe it)     S2 exchange the tail with the
 *                                              head, and take head.next .. tail
 *                                          C3  dequeue the batch, up to budget
 *
 * P1a and S2 are atomic read-modify-writes of one location, the tail, so
 * they fall in one order, and each reads the value the one before it wrote.
 * A post "finds the queue empty" when its P1a reads the head node: the
 * initial tail, or what the last S2 wrote. A splice that finds nothing
 * (head.next is NULL and the tail is the head: liburcu tests that with
 * plain loads first, then with the S1 exchange) or reports WOULDBLOCK
 * (head.next is NULL, the tail has moved) does no S2: it changes nothing.
 *
 * WHY NO WAKE-UP IS LOST
 *
 * Claim: every posted message is handled, provided each owed signal is sent
 * in the end (inbox_retry_wakeups()) and each producer finishes its P1b.
 *
 * Take a post P. Let S be the last S2 before P's P1a in the tail's order (or
 * the queue's initialisation), and Q the first post after S: Q found the
 * queue empty, so Q signals, with signal q, after its P1a and P1b (if its
 * write fails, q is the retrier's signal, which also follows Q's link: the
 * debt's release and acquire, inbox.c). Every post from Q up to P is taken
 * by the first S2 after Q's P1a, so it is enough that such an S2 happens.
 *
 * q makes the fd readable, so a round runs whose drain D comes after q in
 * the eventfd's order (the kernel serialises writes and reads of one fd
 * under its lock). Its C2 comes after D, so its loads of head.next read
 * Q's link, or a later value, which only a splice that already took Q's
 * node can have left there. Either way an S2 after Q's P1a happens, by this
 * splice or that one. Once in the batch, a message is handed out: a round
 * that stops before the batch's end (budget spent, or WOULDBLOCK below)
 * re-arms itself, so the next round goes on where it stopped. []
 *
 * The order C1 before C2 is what the argument used. Drain after the splice
 * and a post landing between the two is lost: its P1a finds the queue the
 * splice just emptied, the late drain eats its signal, and every later post
 * finds the queue non-empty and elides its own. The model refutes it, and
 * test_inbox kills it (tests/mutants/drain-after-collect.mutant: a post
 * placed right after the splice is never handled).
 *
 * WOULDBLOCK: A PRODUCER BETWEEN P1a AND P1b
 *
 * In the splice (head.next is NULL, the tail has moved): the producer
 * caught there is Q, the one that found the queue empty, and it has not
 * signalled yet: had q come before this round's drain, its link would be
 * visible to this splice. So q is still to come and will wake the loop. The
 * round goes on with whatever an earlier round left in the batch, but this
 * WOULDBLOCK does not re-arm it: that would only spin while Q is off its
 * CPU.
 *
 * In the batch (a node's next is NULL though the batch's tail is further
 * on): the producer caught there found the queue non-empty and will not
 * signal. Nothing else will wake the loop for the rest of the batch, so the
 * round must re-arm itself (inbox.c). The model refutes the round without
 * this re-arm.
 *
 * MEMORY ORDERING: WHAT THE PROTOCOL NEEDS, WHAT LIBURCU GIVES
 *
 * Needed:
 *  - What the poster wrote into the message is visible to the handler: P1b
 *    is the store that publishes the node, so it must be a release (of the
 *    message's contents), and the consumer's loads through the link must be
 *    ordered after it (consume: an address dependency suffices).
 *  - "Found empty" must be exact: P1a and S2 are read-modify-writes of the
 *    tail, so a post that reads a splice's value is ordered after it.
 *  - P1b before P2, and C1 before C2: a write() and a read() of the eventfd
 *    take the same kernel lock, whose release and acquire order the link
 *    store before the signal and the signal before the splice's loads.
 * Given by liburcu 0.13 (Debian 12): uatomic_xchg() implies a full barrier
 * before and after it (doc/uatomic-api.md), so P1a orders the message's
 * contents and P1b; the dequeue and splice load the links with a dependency
 * barrier. In liburcu 0.15 the enqueue's exchange is seq_cst, P1b a release
 * store, and the full barrier before the enqueue (cds_wfcq_enqueue() still
 * documents it) is emitted only while the configure option legacy-mb is on,
 * as it is by default. The protocol needs none of the extra barrier.
 *
 * WFCQ-ALWAYS: EVERY POST SIGNALS, ONE DEQUEUE PER MESSAGE
 *
 * Each post signals after its own P1b, so a round drains a signal that
 * follows the link of the message it stands for; the round's dequeues
 * follow the drain and find that message, unless an earlier round took it
 * (the mutex variants' argument, inbox_mutex.c). A dequeue that meets a
 * producer between P1a and P1b (WOULDBLOCK: the link to the next node is
 * not written yet) ends the round without a re-arm: that producer still
 * signals after its P1b, and so does every producer behind it, each after
 * its own link; the last of those signals comes after the last link, and
 * the round it wakes finds the chain whole. The model checks it ("wfcq
 * signalling every post").
 *
 * Contrast liburcu's own call_rcu thread: it keeps its "sleeping" flag in
 * user memory (a futex word), so each side must store, then fence, then
 * load the other side's variable (the store-buffering shape), with a full
 * barrier on both sides. Here the "sleeping" state lives inside the kernel
 * (the eventfd's counter, read by epoll under the fd's lock), so the only
 * user-space atomic the wake-up decision needs is the exchange of the tail.
 */
#include <config.h>

#include <stdlib.h>

#include "inbox_wfcq.h"
#include "tsan.h"

#define WFCQ(ib) ((struct inbox_wfcq *)(ib))

int inbox_wfcq_init(struct inbox *ib)
{
	__cds_wfcq_init(&WFCQ(ib)->head, &WFCQ(ib)->tail);
	__cds_wfcq_init(&WFCQ(ib)->batch_head, &WFCQ(ib)->batch_tail);
	return 0;
}

int inbox_wfcq_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	cds_wfcq_node_init(&msg->node);
	TSAN_RELEASE(msg);	/* pairs with TSAN_ACQUIRE in inbox_wfcq_next/inbox_wfcq_leftover */
	/* P1a, P1b. liburcu returns false when the queue WAS empty: that post
	 * signals. */
	return cds_wfcq_enqueue(&WFCQ(ib)->head, &WFCQ(ib)->tail, &msg->node) ?
	       INBOX_RIDE : INBOX_SIGNAL;
}

bool inbox_wfcq_collect(struct inbox *ib)
{
	struct inbox_wfcq *q = WFCQ(ib);

	/* C2. Appends behind what an earlier round left: order is kept. */
	return __cds_wfcq_splice_nonblocking(&q->batch_head, &q->batch_tail,
					     &q->head, &q->tail) != CDS_WFCQ_RET_WOULDBLOCK;
}

struct inbox_msg *inbox_wfcq_next(struct inbox *ib)
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

struct inbox_msg *inbox_wfcq_leftover(struct inbox *ib)
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

/* wfcq-always: P1a, P1b; every post signals. */
static int always_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	cds_wfcq_node_init(&msg->node);
	TSAN_RELEASE(msg);	/* pairs with TSAN_ACQUIRE in always_next/inbox_wfcq_leftover */
	cds_wfcq_enqueue(&WFCQ(ib)->head, &WFCQ(ib)->tail, &msg->node);
	return INBOX_SIGNAL;
}

static struct inbox_msg *always_next(struct inbox *ib)
{
	struct inbox_wfcq *q = WFCQ(ib);
	struct cds_wfcq_node *node;

	/* One consumer: the dequeue's mutual exclusion (inbox.h). */
	node = __cds_wfcq_dequeue_nonblocking(&q->head, &q->tail);
	if (node == CDS_WFCQ_WOULDBLOCK)
		return INBOX_WOULDBLOCK_SIGNAL_DUE;	/* it signals after its link */
	if (node == NULL)
		return NULL;
	TSAN_ACQUIRE(caa_container_of(node, struct inbox_msg, node));
	return caa_container_of(node, struct inbox_msg, node);
}

const struct inbox_ops inbox_wfcq_ops = {
	.name = "wfcq",
	.size = sizeof(struct inbox_wfcq),
	.wakeup = WAKEUP_EVENTFD,
	.init = inbox_wfcq_init,
	.enqueue = inbox_wfcq_enqueue,
	.collect = inbox_wfcq_collect,
	.next = inbox_wfcq_next,
	.leftover = inbox_wfcq_leftover,
};

const struct inbox_ops inbox_wfcq_always_ops = {
	.name = "wfcq-always",
	.size = sizeof(struct inbox_wfcq),
	.wakeup = WAKEUP_EVENTFD,
	.every_post_signals = true,
	.init = inbox_wfcq_init,
	.enqueue = always_enqueue,
	.next = always_next,
	.leftover = inbox_wfcq_leftover,
};
