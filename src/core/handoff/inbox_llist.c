/*
 * inbox_llist.c - the Linux kernel's llist pattern on liburcu's wait-free
 * stack (cds_wfs): producers push, the consumer takes the whole stack in one
 * exchange and reverses it, because a stack hands back the newest first and
 * the inbox promises posting order per producer. A push learns whether the
 * stack was empty, and only that push signals.
 *
 * THE STEPS
 *
 *   producer (inbox_post)                  consumer (next(), inbox.c's C3)
 *   P1a exchange the stack's head with     C1  drain the wake-up fd (inbox.c)
 *       its node                           C3  hand out the ready list; when
 *   P1b store the old head as its next         it is empty: finish reversing
 *   P2  if the old head was the end            the chain taken last, or take
 *       (the stack was empty): signal          the whole stack (S: exchange
 *                                              the head with the end) and
 *                                              reverse that
 *
 * Note the order inside the push: the exchange comes first, the link second
 * (liburcu's cds_wfs_push), so a chain just taken can hold a node whose
 * next is not written yet. Reversing walks from the newest node down, and
 * stops there (WOULDBLOCK); the walk resumes in a later round from that node.
 *
 * WHY NO WAKE-UP IS LOST
 *
 * P1a and S are exchanges of one location, so "found empty" is exact: a push
 * that finds the end follows the S that left it (or the initial state), and
 * signals; every push between two S finds a node and does not. A round takes
 * the stack (S) whenever its ready list and its walk are both exhausted, so
 * a round ends without re-arming only after an S that found the stack empty,
 * and that S follows the round's drain (C1). A push P that does not signal
 * is behind a push Q that did, with no S between them; Q's signal is drained
 * by a round that then runs S after it (or ends by budget or WOULDBLOCK,
 * re-arming), and that S, or an earlier one, takes P with Q.
 *
 * An S taken while an earlier chain is half reversed would put newer nodes
 * beside older ones, so a round takes the stack only once the walk is done.
 * That is also why the walk's resumption, and the S after it, happen in
 * next() and not in a separate collect step: a round whose drain ate the
 * signal of a push made while a walk was pending must still take that push
 * before it ends.
 *
 * WOULDBLOCK: A PRODUCER BETWEEN P1a AND P1b
 *
 * The walk meets a node whose next is NULL. Which producer is it? Only the
 * oldest node of a chain found the stack empty, and the walk cannot tell
 * whether the node it is stuck on is the oldest until the link is written.
 * So this variant cannot do what wfcq and vyukov do (end the round without a
 * re-arm when the stuck producer will signal): it always re-arms, and a
 * producer preempted between its two steps costs a consumer that comes back
 * once per pass of its loop until that producer runs again. Measured in the
 * WOULDBLOCK statistics (handoff-bench's many mode).
 *
 * MEMORY ORDERING
 *
 * liburcu 0.13's push is a uatomic_xchg (a full barrier before and after)
 * then a plain shared store of the link; S is an exchange, and the walk
 * loads each next with a dependency barrier. The message's contents are
 * published by the exchange's barrier before P1a, and reached through the
 * head the consumer's S returned and the links after it. The reversal then
 * rewrites each node's next: once the walk has read a node's link, no
 * producer writes that node again, so the consumer owns the field.
 *
 * THE COST OF THE REVERSAL
 *
 * One extra pass over the batch, touching each node's link once more (a
 * cache miss per node when the batch is larger than the cache). handoff-
 * bench's burst mode reports it as consumer CPU per message, beside wfcq,
 * whose splice needs no reversal.
 */
#include <config.h>

#include "inbox_llist.h"
#include "tsan.h"

#define LLIST(ib) ((struct inbox_llist *)(ib))

static int llist_init(struct inbox *ib)
{
	struct inbox_llist *q = LLIST(ib);

	__cds_wfs_init(&q->stack);
	q->ready = q->ready_last = NULL;
	q->walk = q->rev = q->rev_last = NULL;
	return 0;
}

static int llist_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	cds_wfs_node_init(&msg->snode);
	TSAN_RELEASE(msg);	/* pairs with TSAN_ACQUIRE in llist_reverse */
	/* P1a, P1b. liburcu returns 0 when the stack WAS empty: that push
	 * signals. */
	return cds_wfs_push(&LLIST(ib)->stack, &msg->snode) == 0 ? INBOX_SIGNAL : INBOX_RIDE;
}


/*
 * Reverses the pending chain onto `rev`, newest node first. Returns false if
 * a link is not written yet (the walk stays where it is), true when the
 * chain is done and appended, oldest first, to the ready list.
 */
static bool llist_reverse(struct inbox_llist *q)
{
	struct cds_wfs_node *node = q->walk, *next;

	while (node != NULL) {
		next = cds_wfs_next_nonblocking(node);	/* NULL at the end */
		if (next == CDS_WFS_WOULDBLOCK) {
			q->walk = node;
			return false;
		}
		/* Ours now: its producer is done with it. (TSan cannot see the
		 * link's store and load, made inside liburcu: tell it.) */
		TSAN_ACQUIRE(caa_container_of(node, struct inbox_msg, snode));
		node->next = q->rev;
		if (q->rev == NULL)
			q->rev_last = node;	/* the newest: last in posting order */
		q->rev = node;
		node = next;
	}
	q->walk = NULL;
	if (q->rev != NULL) {
		if (q->ready == NULL)
			q->ready = q->rev;
		else
			q->ready_last->next = q->rev;
		q->ready_last = q->rev_last;
		q->rev = q->rev_last = NULL;
	}
	return true;
}

static struct inbox_msg *llist_next(struct inbox *ib)
{
	struct inbox_llist *q = LLIST(ib);
	struct cds_wfs_node *node;

	if (q->ready == NULL) {
		if (q->walk == NULL) {	/* S: the whole stack, newest first */
			struct cds_wfs_head *top = __cds_wfs_pop_all(&q->stack);

			q->walk = top != NULL ? cds_wfs_first(top) : NULL;	/* NULL: empty */
		}
		if (!llist_reverse(q))
			return INBOX_WOULDBLOCK;	/* cannot tell: re-arm */
		if (q->ready == NULL)
			return NULL;
	}
	node = q->ready;
	q->ready = node->next;
	return caa_container_of(node, struct inbox_msg, snode);
}

static struct inbox_msg *llist_leftover(struct inbox *ib)
{
	/* No producer is left, so every link is written: no WOULDBLOCK. */
	return llist_next(ib);
}


const struct inbox_ops inbox_llist_ops = {
	.name = "llist",
	.size = sizeof(struct inbox_llist),
	.wakeup = WAKEUP_EVENTFD,
	.init = llist_init,
	.enqueue = llist_enqueue,
	.next = llist_next,
	.leftover = llist_leftover,
};
