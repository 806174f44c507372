/*
 * inbox_vyukov.c - an intrusive MPSC queue written here with C11 atomics
 * (Dmitry Vyukov's design: a producer exchanges the tail, then links the old
 * tail to its node), a wake-up only when the queue held no message, and a
 * consumer that takes one node at a time. The same family as liburcu's
 * wfcq (inbox_wfcq.c): read that argument first; this one says where the
 * two differ. TSan checks this file with no annotations: every shared
 * access is a C11 atomic with the order it needs, said beside it.
 *
 * THE QUEUE
 *
 * A singly linked list from `head` (the consumer's) to `tail` (exchanged
 * by everyone), never empty of nodes: a stub node stands in for "no
 * message". A message node can be handed out only once its successor is
 * known (the consumer moves `head` to it), so the last message is handed
 * out by first pushing the stub behind it, as a producer would.
 *
 * THE STEPS
 *
 *   producer (inbox_post)                  consumer (next(), once per message)
 *   P1a exchange the tail with its node    C1  drain the wake-up fd (inbox.c)
 *   P1b link the old tail to its node      C3  if head is the stub: skip it,
 *   P2  if the old tail was the stub:          if anything is linked behind
 *       signal the fd (on failure: owe it)     hand out head when its next is
 *                                              set; if head is the last node,
 *                                              push the stub behind it first
 *
 * There is no C2: nothing is spliced, the consumer walks the shared list.
 *
 * WHY NO WAKE-UP IS LOST
 *
 * "Found the stub" is not exactly "found no message": when the consumer
 * pushes the stub behind the last message X, a post right after it finds
 * the stub while X is still about to be handed out. That post signals
 * anyway: a wake-up too many, never one too few. What matters is the other
 * direction: a post B that finds a message node X as the tail does not
 * signal, so the consumer must reach B without one.
 *
 * X was the tail at B's P1a, so the consumer's stub push behind X, if any,
 * comes later in the tail's order and reads B (or a later node), never X.
 * The consumer hands X out only when X's next is set (then it goes on to
 * B in the same round), or after that stub push, when it reads X's next
 * again and finds B's link, or NULL: B is between its steps. Every round
 * ends in one of four ways, and none leaves B behind:
 *   - the budget is spent: the round re-arms (inbox.c);
 *   - NULL: head is the stub, nothing linked behind it, and the tail is
 *     the stub: no message is queued at all;
 *   - stuck on a message node (its next is NULL, the tail has moved on):
 *     INBOX_WOULDBLOCK. Its producer found a message node, so it will not
 *     signal: the round re-arms and comes back for it (and for B);
 *   - stuck on the stub (the same, behind the stub): the producer caught
 *     there found the stub, so it signals after its link, and every node
 *     behind it (B's included) is reached after that signal's drain:
 *     INBOX_WOULDBLOCK_SIGNAL_DUE, no re-arm, no spinning while that
 *     producer is off its CPU.
 * Where wfcq tells its two WOULDBLOCKs apart by where it meets them (the
 * splice or the batch), this queue tells them apart by the node it is
 * stuck on. The round after a signal finds the link it stands for, as in
 * wfcq: P1b precedes P2, C1 precedes C3, and the eventfd's lock orders the
 * write and the read.
 *
 * MEMORY ORDERING (each atomic, weakest that is correct)
 *
 *  - P1a, the exchange of the tail: acq_rel (inbox_vyukov.h says why: the
 *    producer that links to a node writes its next after that node's own
 *    producer initialised it).
 *  - P1b, the link: release. It publishes the message's contents; the
 *    consumer's loads of next are acquire, so the handler sees them.
 *  - The consumer's loads of the tail: relaxed. Each only decides between
 *    "a producer is between its steps" and "head is the last node"; a stale
 *    "last node" leads to the stub push, whose exchange reads the newest
 *    tail anyway, and a stale "stub" means a producer that found the stub,
 *    which signals.
 *  - `head`: the consumer's alone, a plain variable.
 */
#include <config.h>

#include "inbox_vyukov.h"

#define VYUKOV(ib) ((struct inbox_vyukov *)(ib))

static int vyukov_init(struct inbox *ib)
{
	struct inbox_vyukov *q = VYUKOV(ib);

	atomic_init(&q->stub.next, NULL);
	atomic_init(&q->tail, &q->stub);
	q->head = &q->stub;
	return 0;
}

static int vyukov_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	struct inbox_vyukov *q = VYUKOV(ib);
	struct inbox_msg *prev = vyukov_swap_tail(q, msg);	/* P1a */

	vyukov_link(prev, msg);					/* P1b */
	return prev == &q->stub ? INBOX_SIGNAL : INBOX_RIDE;	/* P2 when it found the stub */
}


static struct inbox_msg *vyukov_next(struct inbox *ib)
{
	struct inbox_vyukov *q = VYUKOV(ib);
	struct inbox_msg *head = q->head;
	struct inbox_msg *next = atomic_load_explicit(&head->next, memory_order_acquire);

	if (head == &q->stub) {
		if (next == NULL) {
			if (atomic_load_explicit(&q->tail, memory_order_relaxed) == &q->stub)
				return NULL;			/* no message queued */
			return INBOX_WOULDBLOCK_SIGNAL_DUE;	/* stuck on the stub */
		}
		q->head = head = next;				/* skip the stub */
		next = atomic_load_explicit(&head->next, memory_order_acquire);
	}
	if (next == NULL) {
		if (atomic_load_explicit(&q->tail, memory_order_relaxed) != head)
			return INBOX_WOULDBLOCK;	/* stuck on a message node */
		/* head is the last node: the stub goes behind it. Its next is
		 * nobody else's now: it was linked past (skipped) before. */
		vyukov_link(vyukov_swap_tail(q, &q->stub), &q->stub);
		next = atomic_load_explicit(&head->next, memory_order_acquire);
		if (next == NULL)	/* a post came between: stuck on it */
			return INBOX_WOULDBLOCK;
	}
	q->head = next;
	return head;
}

static struct inbox_msg *vyukov_leftover(struct inbox *ib)
{
	/* No producer is left, so every link is written: no WOULDBLOCK. */
	return vyukov_next(ib);
}


const struct inbox_ops inbox_vyukov_ops = {
	.name = "vyukov",
	.size = sizeof(struct inbox_vyukov),
	.wakeup = WAKEUP_EVENTFD,
	.init = vyukov_init,
	.enqueue = vyukov_enqueue,
	.next = vyukov_next,
	.leftover = vyukov_leftover,
};
