/*
 * inbox.h - a worker's mailbox: many threads post messages, one event loop
 * receives them.
 *
 * A message is a struct inbox_msg embedded in a larger object owned by the
 * poster (a new connection, a stop request, ...). Posting gives it to the
 * inbox; the inbox gives it to the handler, on the consumer's thread, in
 * posting order per producer. What `kind` means is the owner's business.
 *
 * Implementation (inbox.c): a liburcu wait-free concurrent queue (cds_wfcq)
 * plus a wake-up fd (eventfd, or a pipe) registered in the consumer's
 * event_base. A producer signals the fd only when its enqueue found the queue
 * empty; everything posted before the consumer runs rides along in the same
 * wake-up. The consumer takes the whole queue at once and never blocks.
 *
 * Synchronization table. "-": may run concurrently with no further care;
 * "X": must not run concurrently (the caller ensures it).
 *
 *                         [1] [2] [3] [4]
 *   [1] inbox_post         -   -   -   X
 *   [2] (handler runs)     -   X   X   X
 *   [3] inbox_get_stats    -   -   -   X
 *   [4] inbox_new/free     X   X   X   X
 *
 * Which thread may call what:
 *   inbox_new         the consumer thread, or before the consumer thread
 *                     starts (its event_base must not be running elsewhere)
 *   inbox_post        any thread, any number of them at once
 *   the handler       only ever runs on the thread running the event_base
 *                     (the single consumer: liburcu's splice and dequeue need
 *                     mutual exclusion, and we get it by having one thread
 *                     do all of them, without a lock)
 *   inbox_free        the consumer thread, once no producer can post again
 *   inbox_get_stats   any thread (approximate while traffic flows)
 */
#ifndef ECHOSERVER_INBOX_H
#define ECHOSERVER_INBOX_H

#include <stdint.h>

#include <urcu/wfcqueue.h>

struct event_base;
struct inbox;

struct inbox_msg {
	struct cds_wfcq_node node;	/* owned by the inbox from post to handler */
	int kind;			/* meaning is the poster's and handler's */
};

/*
 * Called on the consumer thread for each message, in posting order per
 * producer. It owns the message from then on (it may free it).
 */
typedef void (*inbox_handler_fn)(struct inbox_msg *msg, void *arg);

struct inbox_stats {
	uint64_t posted;	/* messages posted */
	uint64_t wakeups;	/* wake-up fd writes (posts that found the queue empty) */
	uint64_t elided;	/* posts that rode along on a pending wake-up */
	uint64_t batches;	/* handler rounds (wake-ups plus re-arms) */
	uint64_t largest_batch;	/* most messages handled in one round */
	uint64_t wouldblock;	/* rounds cut short by a producer caught mid-enqueue */
};

/*
 * Creates an inbox whose messages are handled on the thread that runs `base`,
 * at most `budget` per round (the loop re-arms itself for the rest, so one
 * busy inbox cannot starve the connections on the same loop).
 * Returns 0 and sets *out, or a negative errno.
 */
int inbox_new(struct inbox **out, struct event_base *base,
	      inbox_handler_fn handler, void *arg, unsigned budget);

/*
 * Posts msg. Wait-free apart from the wake-up system call, which only the
 * first post into an empty queue makes. Implies a full memory barrier before
 * the message becomes visible: everything the poster wrote into the message
 * object is visible to the handler.
 * Returns 0; or a negative errno when the wake-up could not be sent: the
 * message is queued all the same (a queued message cannot be taken back) and
 * the next post retries the wake-up.
 */
int inbox_post(struct inbox *ib, struct inbox_msg *msg);

/*
 * Frees the inbox. Messages still queued are passed to `dispose` (if not NULL)
 * so that their owner can release them: nothing is leaked.
 */
void inbox_free(struct inbox *ib, inbox_handler_fn dispose, void *arg);

void inbox_get_stats(const struct inbox *ib, struct inbox_stats *st);

#endif
