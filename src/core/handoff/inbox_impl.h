/*
 * inbox_impl.h - what a handoff variant provides to inbox.c. Private to the
 * inbox files and to the tests that look inside: the rest of the program
 * sees only inbox.h.
 *
 * inbox.c owns everything the variants share (the wake-up fd, its event in
 * the consumer's loop, the budgeted round, the wake-up debt, statistics); a
 * variant owns only its queue. Each variant's struct begins with a struct
 * inbox.
 */
#ifndef MTS_INBOX_IMPL_H
#define MTS_INBOX_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "inbox.h"
#include "owed.h"
#include "wakeup.h"

#define CACHE_LINE 64

/*
 * next() found a producer between its two stores. Two kinds, because the
 * round must know whether that producer will still signal:
 *   INBOX_WOULDBLOCK             it will not (it found the queue holding
 *                                messages), or the variant cannot tell
 *                                (llist): the round re-arms itself
 *   INBOX_WOULDBLOCK_SIGNAL_DUE  it will (it found the queue empty, or every
 *                                post signals): the round just ends, and
 *                                that signal brings the rest
 */
#define INBOX_WOULDBLOCK ((struct inbox_msg *)-1)
#define INBOX_WOULDBLOCK_SIGNAL_DUE ((struct inbox_msg *)-2)

/* What enqueue() returns when it queued the message (or -ENOBUFS). */
#define INBOX_RIDE 0		/* a wake-up is on its way already */
#define INBOX_SIGNAL 1		/* this post must signal */

/*
 * A variant: its name, what it is, its options, and its operations. One
 * table of these (inbox.c) is the list of variants.
 */
struct inbox_ops {
	const char *name;		/* as --dispatch and handoff-bench name it */
	size_t size;			/* of the variant's struct */
	enum wakeup_kind wakeup;
	/* Every post signals (none elides). What the tests expect of the
	 * statistics depends on it; the round itself goes by next()'s two
	 * WOULDBLOCKs. */
	bool every_post_signals;
	bool bounded;			/* enqueue may refuse: full */
	bool allocates;			/* enqueue allocates: may refuse, no memory */
	bool needs_rcu;			/* liburcu's RCU: see inbox_lfq.c, FORK */
	/* Its settings (inbox.h), at most INBOX_MAX_OPTIONS; values reach
	 * configure() in this order. */
	const struct inbox_option *options;
	unsigned n_options;
	/* Optional: the most memory one inbox may come to hold beyond its
	 * struct, for these option values (ring: its slots). */
	uint64_t (*memory)(const unsigned long *opt);
	/* Optional: takes the option values, before init(). */
	void (*configure)(struct inbox *ib, const unsigned long *opt);
	/* Prepares the queue; 0 or a negative errno. */
	int (*init)(struct inbox *ib);
	/*
	 * Any thread. Enqueues, and returns INBOX_SIGNAL when this post must
	 * signal, INBOX_RIDE when it rides along on a wake-up already owed,
	 * or -ENOBUFS when the queue is full: nothing was enqueued and the
	 * message is the poster's still (ring when full, lfq when it cannot
	 * allocate its node; the others never refuse).
	 */
	int (*enqueue)(struct inbox *ib, struct inbox_msg *msg);
	/*
	 * Consumer, after the wake-up fd was drained (C1): make what was posted
	 * so far available to next() (C2). Returns false on WOULDBLOCK. NULL:
	 * nothing to collect, next() works on the shared structure itself.
	 */
	bool (*collect)(struct inbox *ib);
	/* Consumer: the next message, NULL if none now, or one of the two
	 * WOULDBLOCKs above. */
	struct inbox_msg *(*next)(struct inbox *ib);
	/*
	 * Optional. Consumer, at the end of every round, after the last
	 * next(): settle what the round took with the producers, and return
	 * true when work remains that no signal will announce, so the round
	 * must re-arm (ring: its elision counts messages, and the posts
	 * counted while the count was above zero did not signal). The
	 * variants whose re-arm rules inbox.c's head comment gives have none.
	 */
	bool (*end_round)(struct inbox *ib);
	/*
	 * Optional. Consumer, when a round that did not re-arm has found nothing more
	 * (NULL: it returns to the loop). spin-then-block polls
	 * and then runs its "sleeping" handshake here (inbox_spin.c): it
	 * returns a message it found, and the round goes on, or NULL, and the
	 * consumer may sleep, or INBOX_WOULDBLOCK: re-arm (a later call in the
	 * same round; `first` says which). A WOULDBLOCK from next() does not
	 * re-arm such a round: the handshake makes that producer signal.
	 */
	struct inbox_msg *(*before_sleep)(struct inbox *ib, bool first);
	/* Teardown, no producer left: every message still held, then NULL. */
	struct inbox_msg *(*leftover)(struct inbox *ib);
	void (*fini)(struct inbox *ib);	/* or NULL: nothing to undo */
};

struct inbox {
	/* Read by producers; written once, by inbox_new(). */
	const struct inbox_ops *ops;
	struct wakeup wake;
	/* The wake-up debt (owed.h): signals that posts had to send but could
	 * not (the write failed; a full fd is not a failure, see inbox.c). */
	struct owed owed;
	struct retrier *retrier;	/* kicked when a debt is recorded; or NULL */
	/* Signals that found the fd already full: no byte was added, and none
	 * was needed. Producers count it, on that rare path only. */
	atomic_uint_fast64_t full;
	/* write() calls made for signals, by posts and retries. */
	atomic_uint_fast64_t writes;
	/* Posts refused (-ENOBUFS), counted by the refused poster. */
	atomic_uint_fast64_t refused;

	/* Consumer thread only; statistics also read (relaxed) by any thread.
	 * On its own cache line, away from what producers read. */
	_Alignas(CACHE_LINE) struct event *ev;	/* the wake-up fd, EV_READ */
	struct event *again;			/* zero-timeout timer: the re-arm */
	inbox_handler_fn handler;
	void *arg;
	unsigned budget;
	atomic_uint_fast64_t handled;
	atomic_uint_fast64_t wakeups;
	atomic_uint_fast64_t reads;
	atomic_uint_fast64_t rounds;
	atomic_uint_fast64_t largest_batch;
	atomic_uint_fast64_t wouldblock;
	atomic_uint_fast64_t wouldblock_batch;
};


extern const struct inbox_ops inbox_wfcq_ops;
extern const struct inbox_ops inbox_mutex_eventfd_ops;
extern const struct inbox_ops inbox_mutex_pipe_ops;
extern const struct inbox_ops inbox_mutex_elide_ops;
extern const struct inbox_ops inbox_wfcq_always_ops;
extern const struct inbox_ops inbox_vyukov_ops;
extern const struct inbox_ops inbox_llist_ops;
extern const struct inbox_ops inbox_ring_ops;
extern const struct inbox_ops inbox_lfq_ops;
extern const struct inbox_ops inbox_spin_ops;

#endif
