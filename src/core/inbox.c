/*
 * inbox.c - wait-free queue + eventfd handoff. Contract in inbox.h.
 *
 * THE PROTOCOL
 *
 *   producer (inbox_post)                 consumer (inbox_on_wakeup)
 *   P1  was_empty = enqueue(msg)          C1  drain the wake-up fd
 *   P2  if (was_empty) signal the fd      C2  splice the whole shared queue
 *                                             into the private batch
 *                                         C3  handle the batch
 *
 * WHY NO WAKE-UP IS LOST
 *
 * Claim: after every post, the consumer will run C2 at least once more.
 *
 * The shared queue's tail is swapped atomically by every enqueue (P1) and by
 * the splice (C2), so all P1s and C2s happen in one total order. Take a post
 * P whose message is not taken by any splice that has already started.
 *  - If P1 found the queue non-empty, an earlier post Q found it empty
 *    after the last splice, and Q's P2 (still to come, or done) signals the
 *    fd after that splice; every message enqueued in between rides on that
 *    single signal. That is notify elision.
 *  - If P1 found the queue empty, P itself signals in P2. The consumer's
 *    last C1 came before its last C2 (program order), and that C2 came before
 *    P1 (it emptied the queue P1 saw empty), which comes before P2. So the
 *    signal lands after the drain: the fd stays readable, and the loop runs
 *    C1..C3 again, whose splice sees P's message.
 * The argument needs C1 before C2. Drain after the splice instead and a post
 * that lands between the two is lost: its P1 sees the queue the splice just
 * emptied, its signal is eaten by the late drain, and every later post sees a
 * non-empty queue and elides its own. tests/test_inbox.c builds that broken
 * order (INBOX_TEST_DRAIN_AFTER_SPLICE) and checks that its stress test
 * catches the stall.
 *
 * MEMORY ORDERING
 *
 * cds_wfcq_enqueue() issues a full barrier before publishing the node, so the
 * message contents are visible to whoever dequeues it. The splice and the
 * dequeue read the links with the ordering liburcu documents ("content
 * written into the node before enqueue is guaranteed to be consistent").
 * Between P1 and P2, and between C1 and C2, there are system calls (write,
 * read) on the same kernel object and atomic exchanges (full barriers on every
 * architecture liburcu supports), so neither side can reorder its two steps.
 *
 * WOULDBLOCK
 *
 * An enqueue is two stores: swap the tail, then link the old tail to the new
 * node. A producer preempted between the two leaves a gap the consumer cannot
 * cross. liburcu's blocking calls would spin and then sleep 10 ms there;
 * that would stall every connection on this loop. We use the non-blocking
 * calls: on CDS_WFCQ_WOULDBLOCK the round ends and the event is made active
 * again, so the loop serves its connections and comes back on the next turn.
 * The producer that caused the gap is the one that signals (or has
 * signalled), so nothing is lost by leaving early.
 */
#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "inbox.h"
#include "wakeup.h"

#define CACHE_LINE 64

struct inbox {
	/*
	 * Producer side. `tail` is swapped by every inbox_post() and by the
	 * consumer's splice. The counters are written by producers (relaxed:
	 * they are statistics, ordered with nothing).
	 */
	_Alignas(CACHE_LINE) struct cds_wfcq_tail tail;
	atomic_uint_fast64_t posted;
	atomic_uint_fast64_t wakeups;
	/*
	 * Set by a producer whose wake-up write failed, cleared by the next
	 * producer that signals successfully: so the failure delays delivery
	 * until the next post instead of stranding the queue.
	 */
	atomic_bool resignal;

	/*
	 * Consumer side. The shared head is cleared by the splice (consumer);
	 * the one producer that finds the queue empty also stores into
	 * head.node.next. Everything below it is touched only by the consumer
	 * thread, except the statistics, which any thread may read (relaxed).
	 */
	_Alignas(CACHE_LINE) struct __cds_wfcq_head head;
	struct __cds_wfcq_head batch_head;	/* spliced, not yet handled */
	struct cds_wfcq_tail batch_tail;
	struct wakeup wake;
	struct event *ev;
	inbox_handler_fn handler;
	void *arg;
	unsigned budget;
	atomic_uint_fast64_t batches;
	atomic_uint_fast64_t largest_batch;
	atomic_uint_fast64_t wouldblock;
};

static void inbox_on_wakeup(evutil_socket_t fd, short what, void *arg);

int inbox_new(struct inbox **out, struct event_base *base,
	      inbox_handler_fn handler, void *arg, unsigned budget)
{
	struct inbox *ib;
	int rc;

	/* Over-aligned: calloc() only promises 16 bytes. */
	rc = posix_memalign((void **)&ib, CACHE_LINE, sizeof(*ib));
	if (rc != 0)
		return -rc;
	*ib = (struct inbox){ .handler = handler, .arg = arg,
			      .budget = budget ? budget : 1 };
	__cds_wfcq_init(&ib->head, &ib->tail);
	__cds_wfcq_init(&ib->batch_head, &ib->batch_tail);
	rc = wakeup_init(&ib->wake);
	if (rc < 0)
		goto fail;
	ib->ev = event_new(base, wakeup_fd(&ib->wake), EV_READ | EV_PERSIST,
			   inbox_on_wakeup, ib);
	if (ib->ev == NULL || event_add(ib->ev, NULL) == -1) {
		rc = -ENOMEM;
		goto fail_wake;
	}
	*out = ib;
	return 0;

fail_wake:
	if (ib->ev != NULL)
		event_free(ib->ev);
	wakeup_close(&ib->wake);
fail:
	free(ib);
	return rc;
}

int inbox_post(struct inbox *ib, struct inbox_msg *msg)
{
	bool was_empty;
	int rc;

	cds_wfcq_node_init(&msg->node);
	atomic_fetch_add_explicit(&ib->posted, 1, memory_order_relaxed);

	/* P1. liburcu returns false when the queue was empty (see STYLE.md). */
	was_empty = !cds_wfcq_enqueue(&ib->head, &ib->tail, &msg->node);

	/*
	 * P2. Only the post that found the queue empty signals; the rest ride
	 * along. `resignal` is a plain flag: a stale false only means the
	 * retry happens one post later, a stale true one extra write.
	 */
	if (!was_empty && !atomic_load_explicit(&ib->resignal, memory_order_relaxed))
		return 0;
	rc = wakeup_signal(&ib->wake);
	atomic_store_explicit(&ib->resignal, rc < 0, memory_order_relaxed);
	if (rc == 0)
		atomic_fetch_add_explicit(&ib->wakeups, 1, memory_order_relaxed);
	return rc;
}

static void note_batch(struct inbox *ib, uint64_t handled)
{
	/* Only this thread writes these; relaxed stores for concurrent readers. */
	atomic_store_explicit(&ib->batches,
		atomic_load_explicit(&ib->batches, memory_order_relaxed) + 1,
		memory_order_relaxed);
	if (handled > atomic_load_explicit(&ib->largest_batch, memory_order_relaxed))
		atomic_store_explicit(&ib->largest_batch, handled, memory_order_relaxed);
}

static void note_wouldblock(struct inbox *ib)
{
	atomic_store_explicit(&ib->wouldblock,
		atomic_load_explicit(&ib->wouldblock, memory_order_relaxed) + 1,
		memory_order_relaxed);
}

/* Runs on the consumer thread only: the single-consumer rule of inbox.h. */
static void inbox_on_wakeup(evutil_socket_t fd, short what, void *arg)
{
	struct inbox *ib = arg;
	struct cds_wfcq_node *node;
	enum cds_wfcq_ret ret;
	uint64_t handled = 0;
	bool rearm = false;

#ifndef INBOX_TEST_DRAIN_AFTER_SPLICE
	wakeup_drain(&ib->wake);		/* C1: before the splice, always */
#endif
	/* C2: take everything posted so far in one step. */
	ret = __cds_wfcq_splice_nonblocking(&ib->batch_head, &ib->batch_tail,
					    &ib->head, &ib->tail);
	if (ret == CDS_WFCQ_RET_WOULDBLOCK) {
		/* A producer is between its two stores: come back next turn. */
		note_wouldblock(ib);
		rearm = true;
	}
#ifdef INBOX_TEST_DRAIN_AFTER_SPLICE
	wakeup_drain(&ib->wake);		/* the broken order, for the test */
#endif

	/* C3: hand out the batch (including leftovers of an earlier round). */
	while (handled < ib->budget) {
		node = __cds_wfcq_dequeue_nonblocking(&ib->batch_head, &ib->batch_tail);
		if (node == NULL)
			break;
		if (node == CDS_WFCQ_WOULDBLOCK) {
			/* Gap inside the batch: same producer, same answer. */
			note_wouldblock(ib);
			rearm = true;
			break;
		}
		ib->handler(caa_container_of(node, struct inbox_msg, node), ib->arg);
		handled++;
	}
	if (handled == ib->budget && !cds_wfcq_empty(&ib->batch_head, &ib->batch_tail))
		rearm = true;	/* budget spent: let the connections run first */
	note_batch(ib, handled);

	/*
	 * Re-arming makes this callback run again on the next loop turn without
	 * a signal. It is never needed for correctness of wake-ups (see the
	 * argument above); it only keeps already-spliced messages moving.
	 */
	if (rearm)
		event_active(ib->ev, EV_READ, 0);
}

void inbox_free(struct inbox *ib, inbox_handler_fn dispose, void *arg)
{
	struct cds_wfcq_node *node;

	if (ib == NULL)
		return;
	event_free(ib->ev);
	/*
	 * No producer runs any more (caller's promise), so every enqueue is
	 * complete and the blocking calls cannot wait: use them to collect the
	 * leftovers.
	 */
	__cds_wfcq_splice_blocking(&ib->batch_head, &ib->batch_tail, &ib->head, &ib->tail);
	while ((node = __cds_wfcq_dequeue_blocking(&ib->batch_head, &ib->batch_tail)) != NULL) {
		if (dispose != NULL)
			dispose(caa_container_of(node, struct inbox_msg, node), arg);
	}
	wakeup_close(&ib->wake);
	free(ib);
}

void inbox_get_stats(const struct inbox *ib, struct inbox_stats *st)
{
	uint64_t posted = atomic_load_explicit(&ib->posted, memory_order_relaxed);
	uint64_t wakeups = atomic_load_explicit(&ib->wakeups, memory_order_relaxed);

	st->posted = posted;
	st->wakeups = wakeups;
	st->elided = posted > wakeups ? posted - wakeups : 0;
	st->batches = atomic_load_explicit(&ib->batches, memory_order_relaxed);
	st->largest_batch = atomic_load_explicit(&ib->largest_batch, memory_order_relaxed);
	st->wouldblock = atomic_load_explicit(&ib->wouldblock, memory_order_relaxed);
}
