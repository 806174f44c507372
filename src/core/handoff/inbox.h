/*
 * inbox.h - a worker's mailbox: many threads post messages, one event loop
 * receives them. The one interface behind which the handoff variants sit;
 * the server, the tests and handoff-bench all use it.
 *
 * A message is a struct inbox_msg embedded in a larger object owned by the
 * poster (a new connection, a stop request, ...). Posting gives it to the
 * inbox; the inbox gives it to the handler, on the consumer's thread, in
 * posting order per producer. What `kind` means is the owner's business.
 *
 * Variants (doc/HANDOFF.md compares them):
 *   wfcq           liburcu wait-free queue; the wake-up fd is written only by
 *                  the post that found the queue empty; the consumer takes
 *                  the whole queue in one splice (inbox_wfcq.c)
 *   mutex-eventfd  mutex-protected list, one eventfd write per post; the
 *                  consumer pops one message per lock (memcached 1.6)
 *   mutex-pipe     the same with one byte per post on a pipe (classic
 *                  memcached, and this project's starting design)
 *   mutex-elide    the mutex list with wfcq's protocol: only the post that
 *                  found the list empty signals; the consumer takes the
 *                  whole list under one lock (inbox_mutex.c)
 *   wfcq-always    the wfcq queue with mutex-eventfd's protocol: every post
 *                  signals; the consumer dequeues one message at a time
 *                  (inbox_wfcq.c)
 *   vyukov         a queue of wfcq's family written here with C11 atomics
 *                  (Vyukov's intrusive MPSC queue with a stub node); the
 *                  post that found no message signals; the consumer takes
 *                  one node at a time from the shared list (inbox_vyukov.c)
 *   llist          liburcu's wait-free stack: the post that found it empty
 *                  signals; the consumer takes the whole stack at once and
 *                  reverses it into posting order, the Linux kernel's llist
 *                  pattern (inbox_llist.c)
 *   ring           a bounded ring of pointers (fixed memory, no link in the
 *                  message) with wfcq's elision, decided by a count of
 *                  messages not yet taken; the one variant that can refuse
 *                  a post: when its ring is full (inbox_ring.c)
 *   lfq            liburcu's RCU lock-free queue (Michael and Scott's): a
 *                  node allocated per post and freed only after an RCU
 *                  grace period; the ring's elision by a count; refuses a
 *                  post when it cannot allocate its node (inbox_lfq.c)
 *   spin-then-block  wfcq's queue; the consumer polls it for a while before
 *                  it sleeps, says so in a flag, and a post signals only
 *                  when it finds that flag set (inbox_spin.c)
 * mutex-elide and wfcq-always complete a two-by-two design with wfcq and
 * mutex-eventfd (queue: lock or lock-free; signal: every post, or only on
 * empty with the whole batch taken), so handoff-bench can say what each
 * factor buys (doc/HANDOFF.md); vyukov, llist, ring, lfq and
 * spin-then-block are the catalogue of other patterns.
 *
 * Synchronization table. "-": may run concurrently with no further care;
 * "X": must not run concurrently (the caller ensures it).
 *
 *                            [1] [2] [3] [4] [5]
 *   [1] inbox_post            -   -   -   -   X
 *   [2] inbox_retry_wakeups   -   -   -   -   X
 *   [3] (handler runs)        -   -   X   -   X
 *   [4] inbox_get_stats       -   -   -   -   X
 *   [5] inbox_new/free        X   X   X   X   X
 *
 * Which thread may call what:
 *   inbox_new        before the consumer thread starts running `base`, or on
 *                    that thread
 *   inbox_post,      any thread, any number of them at once, the consumer's
 *   inbox_retry_wakeups  own thread included; neither waits for the consumer
 *                    or for room in the wake-up fd or the queue (the mutex
 *                    variants take their lock, nothing more; a full ring
 *                    refuses the post instead of waiting for room; lfq
 *                    calls malloc(), and a thread's first lfq post
 *                    registers it with liburcu, under a lock that a grace
 *                    period in progress holds: inbox_lfq.c)
 *   the handler      runs only on the thread running `base`: the single
 *                    consumer. liburcu's splice and dequeue need mutual
 *                    exclusion, and the ring's slots have one reader; we
 *                    get it by doing all of them on one thread.
 *   inbox_set_retrier before any post, on the thread that made the inbox
 *   inbox_free       the consumer thread (or any, once it has stopped), once
 *                    no producer can post again
 *   inbox_get_stats  any thread; values are approximate while traffic flows
 */
#ifndef MTS_INBOX_H
#define MTS_INBOX_H

#include <stdint.h>

#include <urcu/wfcqueue.h>
#include <urcu/wfstack.h>

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct inbox;
struct inbox_ops;		/* a variant: inbox_impl.h */

/*
 * The variants, in one table (inbox.c); everything else (the server, the
 * programs, the tests, the benches) learns the list from it. i = 0, 1, ...
 * until NULL; the first is the default.
 */
const struct inbox_ops *inbox_variant_at(unsigned i);
/* The variant of that name, or NULL. */
const struct inbox_ops *inbox_variant_find(const char *name);
/* "wfcq", "mutex-eventfd", ..., "spin-then-block". */
const char *inbox_variant_name(const struct inbox_ops *v);

/* What a variant is, for programs and tests that treat them alike. */
struct inbox_traits {
	bool elides;		/* a post may ride along on another's signal */
	bool bounded;		/* a post may find it full (-ENOBUFS) */
	bool allocates;		/* a post allocates (and may be refused) */
	bool needs_rcu;		/* uses liburcu's RCU (fork: inbox_before_fork) */
};
void inbox_variant_traits(const struct inbox_ops *v, struct inbox_traits *out);

/*
 * A variant's settings: each a whole number in a range, written after the
 * variant's name as "NAME:KEY=VALUE[,KEY=VALUE]" (ring:size=1024,
 * spin-then-block:us=0). A variant declares its own (inbox_impl.h);
 * INBOX_MAX_OPTIONS is the most any declares.
 */
#define INBOX_MAX_OPTIONS 2

struct inbox_option {
	const char *key;
	unsigned long min, max, def;
	bool power_of_two;
	const char *what;	/* one line, for help and messages */
};

/* A variant with a value for each of its options. */
struct inbox_spec {
	const struct inbox_ops *ops;
	unsigned long opt[INBOX_MAX_OPTIONS];	/* in the order of its options */
};

/* v with its defaults. */
void inbox_spec_default(struct inbox_spec *spec, const struct inbox_ops *v);
/*
 * "NAME" or "NAME:KEY=VALUE[,KEY=VALUE]": the named variant, its options
 * set, the rest at their defaults. 0, or -EINVAL with *why naming what is
 * wrong (an unknown variant or key, a value out of range).
 */
int inbox_spec_parse(struct inbox_spec *spec, const char *text, char *why, size_t why_len);
/* One option, by key, from its text: 0 or -EINVAL with *why. */
int inbox_spec_set(struct inbox_spec *spec, const char *key, const char *value, char *why,
		   size_t why_len);
/* The variant's options (*n of them), to list or document them. */
const struct inbox_option *inbox_variant_options(const struct inbox_ops *v, unsigned *n);
/* The most memory one inbox of this spec may come to hold for messages
 * beyond its own struct (ring: its slots), in bytes; 0 for the others. */
uint64_t inbox_spec_memory(const struct inbox_spec *spec);

struct inbox_msg {
	/* The link; owned by the inbox from post to handler. Each list
	 * variant uses one member, always the same; ring keeps a pointer in a
	 * slot instead and leaves all of them alone. A message the inbox
	 * refused was never the inbox's: its link is the poster's again. */
	union {
		struct cds_wfcq_node node;	/* wfcq (its node), the mutex
						 * variants (node.next) */
		struct cds_wfs_node snode;	/* llist (liburcu's stack) */
		_Atomic(struct inbox_msg *) next;	/* vyukov (C11 atomics) */
	};
	int kind;		/* meaning is the poster's and handler's */
};

/* Called on the consumer thread for each message; it owns the message then. */
typedef void (*inbox_handler_fn)(struct inbox_msg *msg, void *arg);

/*
 * Statistics, counted by the consumer (so posting pays for none of them),
 * but for `writes`, `full` and `owed`, which only a post that signals
 * touches (beside a system call that costs far more), and `refused`, which
 * only a refused post touches. `wakeups_saved` (the
 * API's name too) is handled - wakeups - full: exact once traffic stops.
 */
struct inbox_stats {
	uint64_t handled;	/* messages given to the handler */
	uint64_t wakeups;	/* signals drained (eventfd adds or pipe bytes) */
	uint64_t wakeups_saved;	/* messages that rode along on another's wake-up */
	uint64_t full;		/* signals not written: the fd was full, so readable */
	uint64_t writes;	/* write() calls on the wake-up fd, whatever their
				 * result (posts and retries) */
	uint64_t rounds;	/* handler rounds (wake-ups plus re-arms) */
	uint64_t reads;		/* read() calls on the wake-up fd (a round makes
				 * one on an eventfd, two or more on a pipe) */
	uint64_t largest_batch;	/* most messages handled in one round */
	uint64_t wouldblock;	/* WOULDBLOCKs met (a producer mid-enqueue) ... */
	uint64_t wouldblock_batch; /* ... of them in next() (whether the round
				    * re-arms depends on the kind: inbox_impl.h);
				    * the rest were met in wfcq's splice */
	uint64_t owed;		/* signals owed now (failed, not yet retried) */
	uint64_t refused;	/* posts refused (-ENOBUFS): the ring was full,
				 * or lfq had no memory for the node; counted
				 * by the refused poster */
};

/*
 * Creates an inbox whose messages are handled on the thread that runs
 * `base`, at most `budget` per round. A round that stops with work left
 * comes back on its own, but only after the loop has polled its other
 * descriptors: one busy inbox cannot starve the connections on the same
 * loop (inbox.c). Returns 0 and sets *out, or a negative errno.
 */
int inbox_new(struct inbox **out, const struct inbox_spec *spec, struct event_base *base,
	      inbox_handler_fn handler, void *arg, unsigned budget);

/*
 * Posts msg. Everything the poster wrote into the message object before the
 * call is visible to the handler. Never waits for the consumer, for room in
 * the fd or for room in the queue, so the consumer itself may post.
 * Allocates nothing, but for lfq's node (one malloc() per post). Returns:
 *   0          queued, and the consumer will be woken for it
 *   -ENOBUFS   NOT queued: no room (ring: full; lfq: no memory for the
 *              post's node). The message
 *              is the caller's still, untouched; the inbox keeps no trace
 *              of it (nothing owed). The caller may post it again once the
 *              consumer has taken some (from another thread; the consumer
 *              itself must not wait for that), or give up on it.
 *   any other negative errno
 *              queued all the same, but the wake-up could not be sent (a
 *              queued message cannot be taken back: wfcq has no "unpost"):
 *              the inbox owes the wake-up, which someone must send later
 *              with inbox_retry_wakeups(). A full wake-up fd is not a
 *              failure: it is readable, so the consumer is woken anyway.
 * So -ENOBUFS is the one return after which the message is not the inbox's;
 * no variant ever returns it for a failed wake-up. The unbounded variants
 * never refuse.
 */
int inbox_post(struct inbox *ib, struct inbox_msg *msg);

/*
 * Sends the wake-ups that earlier posts owe, each exactly once however many
 * threads retry at the same time. Any thread; never waits. Returns 0 when
 * this call found nothing more owed, or a negative errno (the unit it could
 * not send is owed again: retry later).
 */
int inbox_retry_wakeups(struct inbox *ib);

/*
 * Hands the inbox's debt to a retrier (retry.h): from now on a post whose
 * wake-up fails kicks it, and it calls inbox_retry_wakeups() until the debt
 * is paid, so no poster has to retry on its own (inbox_post still returns
 * the error, for statistics and logs). Call it before anything is posted,
 * on the thread that made the inbox; inbox_free() unregisters. Returns 0 or
 * -ENOMEM.
 */
struct retrier;
int inbox_set_retrier(struct inbox *ib, struct retrier *r);

/*
 * Frees the inbox. Messages still queued are passed to `dispose` (if not NULL)
 * so their owner can release them: nothing is leaked.
 */
void inbox_free(struct inbox *ib, inbox_handler_fn dispose, void *arg);

void inbox_get_stats(const struct inbox *ib, struct inbox_stats *st);

/*
 * fork() without exec, in a process that may use lfq in the child: call
 * inbox_before_fork() just before fork(), then inbox_after_fork_parent()
 * in the parent and inbox_after_fork_child() in the child (inbox_lfq.c,
 * FORK). Harmless, and cheap, for the other variants.
 */
void inbox_before_fork(void);
void inbox_after_fork_parent(void);
void inbox_after_fork_child(void);

#endif
