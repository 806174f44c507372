/*
 * inbox_harness.h - what the inbox tests share: a consumer thread running a
 * real event_base with one inbox, producer threads, and the ways to hold a
 * producer or a post at a chosen point of the protocol. The tests link the
 * real inbox from libmtcore; they wrap a variant's operations (struct
 * wrapped) only to place a post or a pause at a step, never to change what
 * the variant does. Every wait here is bounded and fails with a message.
 *
 *   test_inbox            each variant: delivery, order, elision, the budget,
 *                         posts inside the round, what free disposes
 *   test_inbox_wouldblock the WOULDBLOCK paths: producers held between steps
 *   test_inbox_spin       spin-then-block's handshake, step by step
 *   test_inbox_ring       the bounded ring, tiny, by hand and under stress
 *   test_inbox_retry      wake-up debts paid exactly once (fault injection)
 *   test_inbox_delay      producers delayed between enqueue and signal
 *   test_spin_litmus      spin-then-block's handshake, without system calls
 */
#ifndef ECHOSERVER_INBOX_HARNESS_H
#define ECHOSERVER_INBOX_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "inbox_impl.h"

#define MAX_PRODUCERS 8

struct tmsg {
	struct inbox_msg m;
	uint32_t producer;
	uint32_t seq;		/* 1, 2, 3 ... per producer */
};

struct consumer {
	struct event_base *base;
	struct inbox *inbox;
	struct event *tick;
	pthread_t thread;
	atomic_bool quit;		/* main -> consumer: leave the loop */
	atomic_bool give_up;		/* main -> producers: the run is abandoned */
	atomic_uint_fast64_t handled;	/* consumer -> main: progress */
	atomic_uint_fast64_t posted;	/* jittered producers: posts, all of them */
	uint32_t last[MAX_PRODUCERS];	/* consumer thread only */
	uint64_t order_errors;		/* consumer thread only; read after join */
	/* Set by a test: on_msg posts this many more messages to the same
	 * inbox from the consumer's own thread, when it sees `self_seed`. */
	struct tmsg *self_seed, *self_msgs;
	uint32_t self_count;
	atomic_uint self_refused;	/* of them, refused: a full ring */
};

/* A variant's ops with some replaced; `real` is the variant's own. */
struct wrapped {
	struct inbox_ops ops;
	const struct inbox_ops *real;
};

/* The ops a wrapped table wraps (ib's ops must be a struct wrapped). */
const struct inbox_ops *real_ops(struct inbox *ib);
/* w's ops: the real ones of `real`, to be changed by the caller. */
const struct inbox_ops *wrap(struct wrapped *w, const struct inbox_ops *real);

uint64_t now_ms(void);
/* Calls done(arg) every millisecond until it is true, or fails after `ms`
 * (five times that in sanitizer builds); names the wait for the watchdog. */
bool wait_until(bool (*done)(void *), void *arg, uint64_t ms, const char *what);

/* inbox_new() with ops (a variant's, or a test's wrapping of them) at its
 * options' defaults. */
int new_inbox(struct inbox **out, const struct inbox_ops *ops, struct event_base *base,
	      inbox_handler_fn handler, void *arg, unsigned budget);
void consumer_init_ops(struct consumer *c, const struct inbox_ops *ops, unsigned budget);
void consumer_start(struct consumer *c);
void consumer_stop(struct consumer *c);
/* Frees the inbox; returns how many messages it passed to dispose. */
uint64_t consumer_free(struct consumer *c);
uint64_t handled(const struct consumer *c);
struct inbox_stats stats(const struct consumer *c);

/* ---- many producers ----------------------------------------------------- */

struct run_result {
	uint64_t handled, disposed, posted;
	uint64_t order_errors;
	bool stalled;		/* no progress for the stall bound, with work posted */
	bool lost_wakeup;	/* ... and the consumer provably asleep on it */
	struct inbox_stats stats;
};

/* The producers' extra behaviour, beyond posting as fast as they can. */
struct run_shape {
	/*
	 * Random short pauses, and every 2048 posts a wait until the consumer
	 * has handled everything posted so far: then the queue is empty and
	 * the next post must wake the consumer (a wake-up that can be lost),
	 * at least once per 2048 posts, however fast or slow the consumer is.
	 */
	bool jitter;
};

/*
 * Runs `np` producers of `count` messages each against one consumer, the
 * variant given as its ops. A stall (messages posted and not handled, no
 * progress for `stall_ms`, scaled in sanitizer builds) abandons the run:
 * the producers give up, and the leftovers are disposed.
 */
void run_ops(const struct inbox_ops *ops, unsigned np, uint32_t count,
	     const struct run_shape *shape, unsigned budget, uint64_t stall_ms,
	     struct run_result *r);

/*
 * A stall that is a lost wake-up: messages queued, the wake-up fd not
 * readable, and no round running for 200 ms (none re-armed).
 */
bool asleep_with_work(struct consumer *c, uint64_t posted);

/* ---- a producer caught between its two stores, on purpose --------------- */

/*
 * The test plays the producer of wfcq, vyukov or llist: P1a (exchange the
 * tail, or the stack's head) now, P1b (the link) when it chooses; the real
 * enqueue does them back to back, and only a preemption opens the gap the
 * test holds open. half_enqueue returns the old tail.
 */
void *half_enqueue(struct inbox *ib, struct tmsg *m);
void finish_enqueue(struct inbox *ib, void *old_tail, struct tmsg *m);

/*
 * WOULDBLOCK where the caught producer found the queue empty (wfcq's
 * splice, vyukov's stub): the round must end without a re-arm, and the
 * producer's own signal brings the message. Returns whether it was handled
 * after the producer finished; *rounds_while_caught counts the rounds run
 * in the 50 ms the producer was held.
 */
bool caught_in_splice(const struct inbox_ops *ops, uint64_t *rounds_while_caught);
/*
 * m0 posted, m1's producer caught behind it: the round meets the WOULDBLOCK
 * inside what it took. caught_in_batch: m1's producer does not signal (it
 * found the queue holding m0), so only the round's re-arm brings the two.
 * caught_in_dequeue: it does signal (wfcq-always), and the round must not
 * spin. Both check that m0 comes before m1.
 */
bool caught_in_batch(const struct inbox_ops *ops);
bool caught_in_dequeue(const struct inbox_ops *ops, uint64_t *rounds_while_caught);

/* ---- a post placed inside the round -------------------------------------- */

/*
 * The variant's own collect (if any), then one post from the consumer's
 * thread, right after it: where a producer that finds the queue just
 * emptied posts and sends its signal.
 */
bool collect_then_post(struct inbox *ib);
/*
 * m0 is queued before the loop runs; the round handles it, and m1 is posted
 * right after the round's collect (collect_then_post in the ops). Returns
 * whether both were handled; *asleep says whether the consumer was left
 * asleep with m1 queued.
 */
bool posted_after_collect(const struct inbox_ops *ops, bool *asleep);

/* spin-then-block's handshake with a post placed in it, from the
 * consumer's own thread: before D2 (that producer reads the flag as 0 and
 * does not signal: only D3 can find the message) or between F_c and D3 (it
 * reads 1 and signals). */
enum handshake_point { BEFORE_D2, BEFORE_D3 };
struct inbox_msg *handshake_then_post(struct inbox *ib, bool first);
bool posted_in_handshake(const struct inbox_ops *ops, enum handshake_point where,
			 bool *asleep);

bool spin_asleep(struct consumer *c);


/* ---- what the inbox tests share --------------------------------------- */

/* Every post signals (false), or only the one that found the queue empty. */
bool elides(const struct inbox_ops *v);
/* May refuse a post (-ENOBUFS) when full. */
bool bounded(const struct inbox_ops *v);
void consumer_init(struct consumer *c, const struct inbox_ops *v, unsigned budget);
/* run_ops() with jitter or not, 10 s without progress a stall. */
void run(const struct inbox_ops *v, unsigned np, uint32_t count, bool jitter,
	 unsigned budget, struct run_result *r);
/* The library's variant of that name (a test that names one needs it:
 * bails out if it is missing). */
const struct inbox_ops *variant(const char *name);
/* v's ops, wrapped in w, with its one option's default set to `value` (o
 * holds the option): new_inbox() then gives the inbox that value. */
const struct inbox_ops *with_option(struct wrapped *w, struct inbox_option *o,
				    const struct inbox_ops *v, unsigned long value);
/* For wait_until(): has consumer c handled `want` messages? */
struct count_of {
	struct consumer *c;
	uint64_t want;
};
bool handled_at_least(void *arg);
/*
 * INBOX_VARIANTS="vyukov ring" runs only those variants' checks, in the
 * tests that check every variant: for a developer at work on one, and for
 * a mutant of one (tests/mutants/). make check sets nothing: every variant.
 */
bool chosen(const struct inbox_ops *v);

/* What inbox_free() hands to dispose_in_order(): tmsgs of one producer,
 * checked to come in sequence from `next` on. */
struct disposed {
	uint32_t next;		/* the seq expected next */
	uint32_t count;
	bool in_order;
};
void dispose_in_order(struct inbox_msg *msg, void *arg);
/* Stops nothing (c's loop never ran, or stopped): frees c's inbox, giving
 * what it still holds to dispose(arg), and c's base. */
void free_by_hand(struct consumer *c, inbox_handler_fn dispose, void *arg);

#endif
