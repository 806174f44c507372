/*
 * deferred.c - a worker's messages that must arrive (deferred.h).
 *
 * MESSAGES THAT MUST ARRIVE
 *
 * A worker's inbox may be a bounded ring, which refuses a post when it is
 * full (-ENOBUFS), and a post must never wait for room: a worker posting to
 * its own full inbox would wait for itself. Most posts hand the refusal to
 * their caller (exec_post). A few messages have no caller that could do
 * anything else but try again: the stop, a work queue's completion, the
 * accept side's resume. Those go through deferred_post(): a refused one
 * joins the worker's list, and the retrier (retry.h, the one thread that
 * pays what is owed) posts the list again, oldest first, until it is empty
 * (exec_retry in executor.c). No thread waits and none loops.
 *
 * Order: while a worker's list is not empty, every deferring post joins its
 * end instead of trying the inbox, so messages posted through this path by
 * one thread keep their order. The emptiness test is an atomic count, `n`,
 * so the common case takes no lock: whoever posts a deferred message
 * decrements it (release) only after the message is in the inbox, and a
 * poster that reads 0 (acquire) posts after it. A poster that reads 0
 * and is refused takes the lock and appends. Messages posted with plain
 * exec_post() may overtake deferred ones: those were refused back to their
 * caller, and kept no place.
 *
 * Who posts the list, oldest first, under the lock (deferred_flush):
 *   - the worker itself, each time it has taken a message from its inbox
 *     (on_msg): that freed a slot of its ring, so the list drains as fast
 *     as the worker frees room, with no thread woken and no back-off;
 *   - the retrier, kicked by the append, for the case the worker cannot
 *     see: a refusal that raced with the worker taking the ring's last
 *     messages, so that no message is left to take and make it look.
 * A full ring means a worker with messages to take, so the first path does
 * the work; the retrier, which backs off from 1 to 100 ms, is the net under
 * it.
 */
#include <config.h>

#include <errno.h>

#include "deferred.h"
#include "fault.h"

void deferred_init(struct deferred *d)
{
	pthread_mutex_init(&d->lock, NULL);
	d->head = NULL;
	d->tail = &d->head;
	atomic_init(&d->n, 0);
}

void deferred_destroy(struct deferred *d)
{
	pthread_mutex_destroy(&d->lock);
}

static void append(struct deferred *d, struct inbox_msg *msg)
{
	msg->node.next = NULL;
	*d->tail = &msg->node;
	d->tail = &msg->node.next;
	atomic_fetch_add_explicit(&d->n, 1, memory_order_relaxed);
}

bool deferred_post(struct deferred *d, struct inbox *ib, struct inbox_msg *msg)
{
	bool kept;

	/* Acquire: pairs with post_kept's decrement, after its post. */
	if (atomic_load_explicit(&d->n, memory_order_acquire) == 0 &&
	    inbox_post(ib, msg) != -ENOBUFS)
		return false;	/* queued (a failed wake-up is the inbox's debt) */
	pthread_mutex_lock(&d->lock);
	/* The list may have emptied meanwhile; then the inbox is tried again,
	 * so that a lone refused message does not wait for the retrier. */
	kept = d->head != NULL || inbox_post(ib, msg) == -ENOBUFS;
	if (kept)
		append(d, msg);
	pthread_mutex_unlock(&d->lock);
	return kept;
}

/* deferred_flush() under the lock. */
static int post_kept(struct deferred *d, struct inbox *ib)
{
	while (d->head != NULL) {
		struct cds_wfcq_node *node = d->head, *next = node->next;

		/* `next` is read first: once posted, the message is the
		 * worker's, which may run and free it at once. */
		fault_gate(GATE_EXEC_REFILL);	/* tests widen the window here */
		if (inbox_post(ib, caa_container_of(node, struct inbox_msg, node)) == -ENOBUFS)
			return -EAGAIN;		/* still full */
		d->head = next;
		if (next == NULL)
			d->tail = &d->head;
		/* Release: a poster that reads the new count posts after this. */
		atomic_fetch_sub_explicit(&d->n, 1, memory_order_release);
	}
	return 0;
}

int deferred_flush(struct deferred *d, struct inbox *ib)
{
	int rc;

	pthread_mutex_lock(&d->lock);
	rc = post_kept(d, ib);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void deferred_drain(struct deferred *d, void (*fn)(struct inbox_msg *msg, void *arg),
		    void *arg)
{
	struct cds_wfcq_node *node, *next;

	for (node = d->head; node != NULL; node = next) {
		next = node->next;
		fn(caa_container_of(node, struct inbox_msg, node), arg);
	}
	d->head = NULL;
	d->tail = &d->head;
	atomic_store_explicit(&d->n, 0, memory_order_relaxed);
}
