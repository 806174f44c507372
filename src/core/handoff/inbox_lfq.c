/*
 * inbox_lfq.c - liburcu's RCU lock-free queue (cds_lfq, the Michael-Scott
 * queue): the one pattern here whose memory cannot be reused as soon as the
 * consumer has taken it. Producers and the consumer both read nodes that
 * another thread may be unlinking (an enqueue follows the tail, which can
 * lag behind a node the consumer just dequeued), so a dequeued node is
 * freed only after an RCU grace period, once every read-side section that
 * might still hold it has ended. Notify elision by a count, as the ring's
 * (inbox_count.h; inbox_ring.c argues it).
 *
 * THE STEPS
 *
 *   producer (inbox_post)                  consumer (the round, inbox.c)
 *   A   allocate a node for the message    C1  drain the wake-up fd
 *       (none: refuse, -ENOBUFS)           C2  k = count
 *   P1  in a read-side section: link the   C3  up to k times, in a read-side
 *       node behind the tail (CAS), then       section: dequeue (CAS the
 *       swing the tail (CAS)                   head); then hand the node to
 *   R3  n = fetch_add(count, 1)                call_rcu(), which frees it
 *   P2  if n == 0: signal the fd               after a grace period
 *                                          C4  subtract what C3 took;
 *                                              re-arm if count is left
 *
 * WHY THE GRACE PERIOD: THE CLASSIC BUG
 *
 * A producer reads the tail (node X), is preempted, and the consumer
 * dequeues X (cds_lfq hands back the old head, which may still be the
 * tail a producer read, or the node a lagging tail points to). Freed at
 * once, X's memory is reused; the producer wakes and runs its CAS on
 * X->next: it writes into whatever X's memory has become. That is the use
 * after free that garbage-collected languages never see and C must
 * prevent: here, the producer's read-side section (rcu_read_lock() around
 * the enqueue) delays the free, because call_rcu() runs the free only
 * after every section that began before it has ended.
 * Both halves are needed: the grace period (call_rcu() in lfq_take()) and
 * the sections it waits for (every enqueue and every dequeue inside
 * rcu_read_lock()). tests/test_lfq_grace.c stops a producer right there
 * and reads the node under ASan or valgrind after the consumer took it
 * (freed at once, that read is reported: tests/mutants/lfq-free-at-once),
 * and checks that each of the variant's enqueues and dequeues runs inside a
 * read-side section (tests/mutants/lfq-no-read-side-*).
 *
 * WHY NO WAKE-UP IS LOST
 *
 * The count's argument (inbox_ring.c) needs one thing of the queue: a
 * message is visible to the consumer's dequeue once its post has counted
 * it. P1 links the node with a CAS before R3, which is a release; C2's
 * load of count is an acquire, and each dequeue runs after it: it sees
 * every node whose post's increment C2 read. (cds_lfq is linearizable: a
 * dequeue after a completed enqueue finds that node or a later one.) The
 * consumer takes at most k nodes, so count never goes below zero, and no
 * WOULDBLOCK exists: the queue is lock-free, a dequeue either takes a node
 * or finds the queue empty, never a half-linked one.
 *
 * THE COST
 *
 * A malloc() and a free() per message, a call_rcu() per message (a
 * lock-free enqueue onto the call_rcu thread's queue, and that thread's
 * wake-ups), and, each time the consumer empties the queue, a dummy node
 * that liburcu itself allocates (and, on allocation failure, aborts:
 * liburcu's choice, not ours). handoff-bench shows what that costs beside
 * the intrusive queues. (liburcu also allocates the queue's first dummy in
 * cds_lfq_init_rcu(), and aborts if that fails too.)
 *
 * Which threads: any thread may post (the bullet-proof flavour registers a
 * thread at its first read-side section; that first post takes liburcu's
 * registry lock, which a grace period also holds, so a thread's first post
 * may wait for a grace period in progress: the one wait in any post, once
 * per thread). inbox_free() waits for every pending free (rcu_barrier()),
 * so nothing is left to LeakSanitizer.
 *
 * FORK
 *
 * The frees run on liburcu's call_rcu thread, which a child made by fork()
 * does not have: an lfq inbox freed in such a child would wait in
 * rcu_barrier() for ever. liburcu's own fork hooks repair that (and the
 * bullet-proof flavour's registry); inbox_before_fork() and the two after
 * it call them, and the program calls those around its fork()
 * (mts_before_fork() in mtserver.h). They are not registered with
 * pthread_atfork(): liburcu advises against it when call_rcu callbacks
 * call the allocator, as lfq_free_node() does.
 */
#include <config.h>

#include <errno.h>

#include "inbox_lfq.h"
#include "log.h"

#define LFQ(ib) ((struct inbox_lfq *)(ib))

static int lfq_init(struct inbox *ib)
{
	cds_lfq_init_rcu(&LFQ(ib)->q, call_rcu);
	count_init(&LFQ(ib)->elide);
	return 0;
}

static int lfq_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	struct lfq_node *n = malloc(sizeof(*n));

	if (n == NULL)
		return -ENOBUFS;	/* A: nothing queued, the message is the poster's */
	cds_lfq_node_init_rcu(&n->node);
	n->msg = msg;
	TSAN_RELEASE(n);	/* liburcu's stores are not instrumented */
	rcu_read_lock();	/* P1 */
	cds_lfq_enqueue_rcu(&LFQ(ib)->q, &n->node);
	rcu_read_unlock();
	return count_post(&LFQ(ib)->elide);	/* R3 */
}

static bool lfq_collect(struct inbox *ib)
{
	count_collect(&LFQ(ib)->elide);		/* C2 */
	return true;
}

static struct inbox_msg *lfq_next(struct inbox *ib)
{
	struct inbox_lfq *l = LFQ(ib);
	struct inbox_msg *msg;

	if (!count_may_take(&l->elide))
		return NULL;
	msg = lfq_take(l);		/* C3 */
	if (msg != NULL)
		count_took(&l->elide);
	return msg;
}

static bool lfq_end_round(struct inbox *ib)
{
	return count_end_round(&LFQ(ib)->elide);	/* C4 */
}

static struct inbox_msg *lfq_leftover(struct inbox *ib)
{
	return lfq_take(LFQ(ib));		/* no producer is left */
}

static void lfq_fini(struct inbox *ib)
{
	/* Empty now (leftover() took everything): frees the last dummy. Then
	 * wait for the deferred frees, ours and liburcu's dummies'. */
	if (cds_lfq_destroy_rcu(&LFQ(ib)->q) != 0)
		log_error("lfq: the queue was not empty at its end: nodes leaked");
	rcu_barrier();
}

/* Before fork(): pause the call_rcu threads, then take the registry's
 * locks; after it, the reverse, in each process. */
void inbox_before_fork(void)
{
	call_rcu_before_fork();
	rcu_bp_before_fork();
}

void inbox_after_fork_parent(void)
{
	rcu_bp_after_fork_parent();
	call_rcu_after_fork_parent();
}

void inbox_after_fork_child(void)
{
	rcu_bp_after_fork_child();
	call_rcu_after_fork_child();	/* the child's own call_rcu thread */
}

const struct inbox_ops inbox_lfq_ops = {
	.name = "lfq",
	.allocates = true,
	.needs_rcu = true,
	.size = sizeof(struct inbox_lfq),
	.wakeup = WAKEUP_EVENTFD,
	.init = lfq_init,
	.enqueue = lfq_enqueue,
	.collect = lfq_collect,
	.next = lfq_next,
	.end_round = lfq_end_round,
	.leftover = lfq_leftover,
	.fini = lfq_fini,
};
