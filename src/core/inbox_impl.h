/*
 * inbox_impl.h - what a handoff variant provides to inbox.c. Private to the
 * inbox files: the rest of the program sees only inbox.h.
 *
 * inbox.c owns everything the variants share (the wake-up fd, its event in
 * the consumer's loop, the budgeted round, the statistics); a variant owns
 * only its queue. Each variant's struct begins with a struct inbox.
 */
#ifndef ECHOSERVER_INBOX_IMPL_H
#define ECHOSERVER_INBOX_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "inbox.h"
#include "wakeup.h"

#define CACHE_LINE 64

/* next() found a producer between its two stores: try again next round. */
#define INBOX_WOULDBLOCK ((struct inbox_msg *)-1)

struct inbox_ops {
	size_t size;			/* of the variant's struct */
	enum wakeup_kind wakeup;
	bool counted;			/* one signal per message, none may drop */
	/* Prepares the queue; 0 or a negative errno. */
	int (*init)(struct inbox *ib);
	/* Any thread. Enqueues; returns true when this post must signal. */
	bool (*enqueue)(struct inbox *ib, struct inbox_msg *msg);
	/*
	 * Consumer, after the wake-up fd was drained of `signals`: make what was
	 * posted so far available to next(). Returns false on WOULDBLOCK.
	 */
	bool (*collect)(struct inbox *ib, unsigned long signals);
	/* Consumer: the next message, NULL if none now, or INBOX_WOULDBLOCK. */
	struct inbox_msg *(*next)(struct inbox *ib);
	/* Teardown, no producer left: every message still held, then NULL. */
	struct inbox_msg *(*leftover)(struct inbox *ib);
	void (*fini)(struct inbox *ib);
};

struct inbox {
	/* Read by producers; written once, by inbox_new(). */
	const struct inbox_ops *ops;
	struct wakeup wake;
	/*
	 * Wake-ups that posts owed but could not send (the write failed).
	 * Incremented by such a post, decremented by inbox_retry_wakeups() for
	 * each one it sends. The message is queued all the same; until the owed
	 * signal goes out the consumer may not see it. A count, not a flag: the
	 * mutex variants pop one message per signal, so each one matters.
	 */
	atomic_uint unsent;

	/* Consumer thread only; statistics also read (relaxed) by any thread.
	 * On its own cache line, away from what producers read. */
	_Alignas(CACHE_LINE) struct event *ev;
	inbox_handler_fn handler;
	void *arg;
	unsigned budget;
	atomic_uint_fast64_t handled;
	atomic_uint_fast64_t wakeups;
	atomic_uint_fast64_t rounds;
	atomic_uint_fast64_t largest_batch;
	atomic_uint_fast64_t wouldblock;
};

extern const struct inbox_ops inbox_wfcq_ops;
extern const struct inbox_ops inbox_mutex_eventfd_ops;
extern const struct inbox_ops inbox_mutex_pipe_ops;

#endif
