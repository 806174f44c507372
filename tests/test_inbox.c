/*
 * test_inbox.c - the inbox alone: a real event_base on a consumer thread,
 * producers on other threads.
 *
 * Built three times (Makefile.am), each linking the real inbox from
 * libmtcore; what differs is how the test wraps a variant's operations
 * (inbox_new_with_ops(), inbox_impl.h), never the inbox itself:
 *   test_inbox         the variants as they are: delivery, order, elision,
 *                      the budget, both WOULDBLOCK paths on purpose, posting
 *                      from the consumer's own thread, and (fault-injection
 *                      builds) wake-up debts paid exactly once
 *   test_inbox_delay   producers delayed or preempted at random between
 *                      enqueue (P1) and signal (P2)
 *   test_inbox_broken  broken twins, each of which a test of test_inbox must
 *                      catch: the wfcq round with the wake-up fd drained
 *                      after the splice, or with no re-arm after a
 *                      WOULDBLOCK inside the batch; vyukov with no re-arm
 *                      when stuck on a message node; llist with no re-arm
 *                      when a link in its chain is not written; the ring
 *                      round without its end-of-round re-arm; and
 *                      spin-then-block without its fences, run and
 *                      reported (the model refutes it)
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "fault.h"
#include "inbox_llist.h"
#include "inbox_spin.h"
#include "inbox_vyukov.h"
#include "inbox_wfcq.h"
#include "tsan.h"
#include "tap.h"

#define MAX_PRODUCERS 8

/* Helpers that not every one of the three builds uses. */
#define SHARED static __attribute__((unused))

/* WOULDBLOCKs that broken twin 2 hid from the round (and its statistics). */
static atomic_uint hidden_wouldblocks;

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

struct producer {
	struct consumer *c;
	struct tmsg *msgs;
	uint32_t id, count;
	bool jitter;			/* random pauses, so the queue often drains */
	atomic_uint_fast64_t posted;
	pthread_t thread;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Calls done(arg) every millisecond until it is true or `ms` have passed. */
static bool wait_until(bool (*done)(void *), void *arg, uint64_t ms)
{
	uint64_t end = now_ms() + ms;

	while (!done(arg)) {
		if (now_ms() > end)
			return false;
		usleep(1000);
	}
	return true;
}

static void on_msg(struct inbox_msg *msg, void *arg)
{
	struct consumer *c = arg;
	struct tmsg *t = (struct tmsg *)msg;

	if (t->seq != c->last[t->producer] + 1)
		c->order_errors++;
	c->last[t->producer] = t->seq;
	/* Release, and acquire in handled(): a test that reuses a message
	 * once it was handled then writes it after the handler's reads. */
	atomic_store_explicit(&c->handled,
		atomic_load_explicit(&c->handled, memory_order_relaxed) + 1,
		memory_order_release);
	if (t == c->self_seed) {
		/* From the consumer's own thread: must never block (a full pipe
		 * that only this thread could drain would hang it for good). */
		/* A bounded variant refuses what does not fit (this thread
		 * cannot make room): the refused message is ours still, and
		 * its struct is used for the next try. */
		uint32_t n = 0;
		for (uint32_t i = 0; i < c->self_count; i++) {
			c->self_msgs[n] = (struct tmsg){ .producer = 1, .seq = n + 1 };
			if (inbox_post(c->inbox, &c->self_msgs[n].m) == -ENOBUFS)
				atomic_fetch_add(&c->self_refused, 1);
			else
				n++;
		}
	}
}

/*
 * The tick only checks `quit`. It must not touch the inbox: a periodic drain
 * would hide a lost wake-up.
 */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct consumer *c = arg;

	if (atomic_load(&c->quit))
		event_base_loopbreak(c->base);
}

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;

	event_base_dispatch(c->base);
	return NULL;
}

/* ---- wrapped variants --------------------------------------------------- */

/* A variant's ops with some replaced; `real` is the variant's own. */
struct wrapped {
	struct inbox_ops ops;
	const struct inbox_ops *real;
};

SHARED const struct inbox_ops *real_ops(struct inbox *ib)
{
	return ((const struct wrapped *)ib->ops)->real;
}

#if defined(TEST_DELAY)
/*
 * After P1, before P2: usually a short spin, sometimes a yield, now and then
 * a real sleep, so that other producers and the consumer run in the gap.
 */
static int delayed_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	static _Thread_local unsigned seed;
	int must_signal = real_ops(ib)->enqueue(ib, msg);
	unsigned r;

	if (seed == 0)
		seed = (unsigned)(uintptr_t)&seed | 1;
	r = rand_r(&seed);
	if ((r & 4095) == 0)
		usleep(200);
	else if ((r & 63) == 0)
		sched_yield();
	else
		for (volatile unsigned k = 0; k < (r >> 20) % 256; k++)
			;
	return must_signal;
}
#endif

/*
 * Armed by posted_after_collect(): posted once, from the consumer's thread,
 * right after the next collect (the splice): exactly where a producer that
 * finds the queue just emptied posts and sends its signal. Set before the
 * consumer thread starts, so pthread_create orders it.
 */
static struct tmsg *post_after_collect;

static void after_collect(struct inbox *ib)
{
	struct tmsg *m = post_after_collect;

	if (m != NULL) {
		post_after_collect = NULL;
		inbox_post(ib, &m->m);
	}
}

SHARED bool collect_then_post(struct inbox *ib)
{
	bool ok = real_ops(ib)->collect == NULL || real_ops(ib)->collect(ib);

	after_collect(ib);
	return ok;
}

/*
 * spin-then-block's handshake with a post placed in it, from the consumer's
 * own thread: before D2 (the producer reads the flag as 0 and does not
 * signal: only D3 can find the message) or between F_c and D3 (it reads 1
 * and signals, and D3 finds the message as well). handshake_skip_d3 makes
 * the broken twin that leaves D3 out.
 */
enum { BEFORE_D2, BEFORE_D3 };
static struct tmsg *handshake_post;
static int handshake_where;
static bool handshake_skip_d3;

static void post_in_handshake(struct inbox *ib, int where)
{
	struct tmsg *m = handshake_post;

	if (m != NULL && handshake_where == where) {
		handshake_post = NULL;
		inbox_post(ib, &m->m);
	}
}

SHARED struct inbox_msg *handshake_then_post(struct inbox *ib, bool first)
{
	struct inbox_msg *m;

	if (!first)
		return INBOX_WOULDBLOCK;
	if ((m = spin_poll(ib)) != NULL)
		return m;
	post_in_handshake(ib, BEFORE_D2);
	spin_announce(ib, true);
	post_in_handshake(ib, BEFORE_D3);
	return handshake_skip_d3 ? NULL : spin_recheck(ib);
}


#if defined(TEST_BROKEN)
/* Broken twin 1: the round drains first as it should, and then again after
 * the splice. The second drain is the bug: it eats the signal of a post
 * that found the queue the splice had just emptied (after_collect() puts
 * such a post there on purpose; the stress test waits for one). */
static bool drain_after_splice(struct inbox *ib)
{
	bool ok = real_ops(ib)->collect == NULL || real_ops(ib)->collect(ib);

	after_collect(ib);
	wakeup_drain(&ib->wake, NULL);
	return ok;
}

/* Broken twin 2: a WOULDBLOCK inside the batch looks like its end, so the
 * round does not re-arm. */
static struct inbox_msg *no_rearm_next(struct inbox *ib)
{
	struct inbox_msg *m = real_ops(ib)->next(ib);

	if (m != INBOX_WOULDBLOCK)
		return m;
	atomic_fetch_add(&hidden_wouldblocks, 1);
	return NULL;
}
#endif

static struct wrapped wrapped[INBOX_N_VARIANTS];

/* The variant as this build tests it. */
static const struct inbox_ops *test_ops(enum inbox_variant v)
{
	struct wrapped *w = &wrapped[v];

	if (w->real == NULL) {
		w->real = inbox_variant_ops(v);
		w->ops = *w->real;
#if defined(TEST_DELAY)
		w->ops.enqueue = delayed_enqueue;
#endif
	}
	return &w->ops;
}

#if defined(TEST_BROKEN)
enum broken { DRAIN_AFTER_SPLICE, NO_REARM_IN_BATCH, VYUKOV_NO_REARM, LLIST_NO_REARM,
	      SPIN_NO_FENCES, SPIN_NO_RECHECK };

/* Broken twin: spin-then-block's handshake without its two fences, the
 * very same code (inbox_spin.h) with fences=false. */
static int nofence_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	(void)inbox_wfcq_enqueue(ib, msg);
	return spin_must_signal(ib, false) ? INBOX_SIGNAL : INBOX_RIDE;
}

static struct inbox_msg *nofence_before_sleep(struct inbox *ib, bool first)
{
	return spin_before_sleep(ib, first, false);
}

static struct wrapped broken_twins[6];

static const struct inbox_ops *broken_ops(enum broken b)
{
	struct wrapped *w = &broken_twins[b];

	w->real = b == VYUKOV_NO_REARM ? &inbox_vyukov_ops :
		  b == LLIST_NO_REARM ? &inbox_llist_ops :
		  b == SPIN_NO_FENCES || b == SPIN_NO_RECHECK ? &inbox_spin_ops :
		  &inbox_wfcq_ops;
	w->ops = *w->real;
	if (b == SPIN_NO_FENCES) {
		w->ops.enqueue = nofence_enqueue;
		w->ops.before_sleep = nofence_before_sleep;
	} else if (b == SPIN_NO_RECHECK) {
		w->ops.before_sleep = handshake_then_post;
		handshake_skip_d3 = true;
	} else if (b == DRAIN_AFTER_SPLICE)
		w->ops.collect = drain_after_splice;
	else
		w->ops.next = no_rearm_next;
	return &w->ops;
}
#endif

static void consumer_init_ops(struct consumer *c, const struct inbox_ops *ops, unsigned budget)
{
	struct timeval tv = { 0, 20000 };

	memset(c, 0, sizeof(*c));
	c->base = event_base_new();
	if (c->base == NULL ||
	    inbox_new_with_ops(&c->inbox, ops, c->base, on_msg, c, budget) < 0)
		bail("cannot create the inbox");
	c->tick = event_new(c->base, -1, EV_PERSIST, on_tick, c);
	event_add(c->tick, &tv);
}

SHARED void consumer_init(struct consumer *c, enum inbox_variant v, unsigned budget)
{
	consumer_init_ops(c, test_ops(v), budget);
}

static void consumer_start(struct consumer *c)
{
	if (pthread_create(&c->thread, NULL, consumer_main, c) != 0)
		bail("pthread_create");
}

static void consumer_stop(struct consumer *c)
{
	atomic_store(&c->quit, true);
	pthread_join(c->thread, NULL);
}

static void count_disposed(struct inbox_msg *msg, void *arg)
{
	(*(uint64_t *)arg)++;
}

static uint64_t consumer_free(struct consumer *c)
{
	uint64_t disposed = 0;

	inbox_free(c->inbox, count_disposed, &disposed);
	event_free(c->tick);
	event_base_free(c->base);
	return disposed;
}

static uint64_t handled(const struct consumer *c)
{
	return atomic_load_explicit(&c->handled, memory_order_acquire);
}

static struct inbox_stats stats(const struct consumer *c)
{
	struct inbox_stats st;

	inbox_get_stats(c->inbox, &st);
	return st;
}

/* ---- many producers ----------------------------------------------------- */

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	unsigned seed = p->id * 7919u + 1;

	for (uint32_t i = 0; i < p->count; i++) {
		p->msgs[i].producer = p->id;
		p->msgs[i].seq = i + 1;
		while (inbox_post(p->c->inbox, &p->msgs[i].m) == -ENOBUFS)
			sched_yield();	/* a full ring: wait for room */
		atomic_store_explicit(&p->posted, i + 1, memory_order_relaxed);
		if (p->jitter) {
			unsigned r = rand_r(&seed);

			atomic_fetch_add_explicit(&p->c->posted, 1, memory_order_relaxed);
			/* Mostly short spins; now and then give the CPU away;
			 * and every 2048 posts, wait (at most 200 ms) for the
			 * consumer to catch up with every producer, so that it
			 * drains the queue, sleeps and must be woken again,
			 * however slow it is (a sanitizer build, lfq's
			 * allocations): without that, a slow consumer never
			 * sleeps and the stress tests nothing. */
			if ((r & 1023) == 0)
				sched_yield();
			for (volatile unsigned k = 0; k < (r >> 16) % 512; k++)
				;
			for (unsigned w = 0; (i & 2047) == 2047 && w < 2000 &&
			     handled(p->c) < atomic_load_explicit(&p->c->posted,
								  memory_order_relaxed); w++)
				usleep(100);
		}
	}
	return NULL;
}

struct run_result {
	uint64_t handled, disposed, posted;
	uint64_t order_errors;
	uint64_t longest_stall_ms;
	bool stalled;		/* no progress for stall_ms with work posted */
	bool lost_wakeup;	/* ... and the consumer provably asleep on it */
	struct inbox_stats stats;
};

/*
 * A stall that is a lost wake-up: messages are queued, the wake-up fd is not
 * readable, and no round runs any more (none is re-armed). Checked over
 * 200 ms, so that a consumer that is only slow is not mistaken for one
 * that sleeps for good.
 */
static bool asleep_with_work(struct consumer *c, uint64_t posted)
{
	struct pollfd p = { .fd = wakeup_fd(&c->inbox->wake), .events = POLLIN };
	uint64_t rounds = stats(c).rounds;

	usleep(200000);
	return handled(c) < posted && poll(&p, 1, 0) == 0 && stats(c).rounds == rounds;
}

/*
 * Runs `np` producers of `count` messages each against one consumer.
 * A stall is: messages posted but not handled, and no progress, for
 * `stall_ms`. Then the run is abandoned (the leftovers are disposed).
 */
static void run_ops(const struct inbox_ops *ops, unsigned np, uint32_t count, bool jitter,
		    unsigned budget, uint64_t stall_ms, struct run_result *r)
{
	struct consumer c;
	struct producer p[MAX_PRODUCERS];
	uint64_t total = (uint64_t)np * count, last_handled = 0, last_change, posted = 0;

	memset(r, 0, sizeof(*r));
	consumer_init_ops(&c, ops, budget);
	consumer_start(&c);
	for (unsigned i = 0; i < np; i++) {
		p[i] = (struct producer){ .c = &c, .id = i, .count = count, .jitter = jitter };
		p[i].msgs = calloc(count, sizeof(struct tmsg));
		if (p[i].msgs == NULL)
			bail("out of memory");
		pthread_create(&p[i].thread, NULL, producer_main, &p[i]);
	}
	last_change = now_ms();
	for (;;) {
		uint64_t h = handled(&c), t = now_ms();

		posted = 0;
		for (unsigned i = 0; i < np; i++)
			posted += atomic_load_explicit(&p[i].posted, memory_order_relaxed);
		if (h == total)
			break;
		if (h != last_handled || h == posted) {
			if (t - last_change > r->longest_stall_ms && h != last_handled)
				r->longest_stall_ms = t - last_change;
			last_handled = h;
			last_change = t;
		} else if (t - last_change > stall_ms) {
			r->stalled = true;
			break;
		}
		usleep(1000);
	}
	for (unsigned i = 0; i < np; i++)
		pthread_join(p[i].thread, NULL);
	if (r->stalled)
		r->lost_wakeup = asleep_with_work(&c, total);
	consumer_stop(&c);
	r->stats = stats(&c);
	r->handled = handled(&c);
	r->order_errors = c.order_errors;
	r->posted = total;
	r->disposed = consumer_free(&c);
	for (unsigned i = 0; i < np; i++)
		free(p[i].msgs);
}

SHARED void run(enum inbox_variant v, unsigned np, uint32_t count, bool jitter,
		unsigned budget, uint64_t stall_ms, struct run_result *r)
{
	run_ops(test_ops(v), np, count, jitter, budget, stall_ms, r);
}

/* ---- a producer caught between its two stores, on purpose --------------- */

/*
 * The test plays the producer: P1a (exchange the tail) now, P1b (link the
 * old tail to the node) when it chooses. These are the two steps of the
 * variant's enqueue (wfcq: cds_wfcq_enqueue(), vyukov: inbox_vyukov.h), in
 * their order; the real enqueue does them back to back, and only a
 * preemption opens the gap the test holds open here. Returns the old tail,
 * which is the queue's head node (wfcq) or its stub (vyukov) when no
 * message was queued.
 */
static bool is_vyukov(struct inbox *ib)
{
	return real_ops(ib) == &inbox_vyukov_ops;
}

/* llist's push: the same two steps, on the stack's head (cds_wfs_push()). */
static bool is_llist(struct inbox *ib)
{
	return real_ops(ib) == &inbox_llist_ops;
}

SHARED void *half_enqueue(struct inbox *ib, struct tmsg *m)
{
	struct inbox_wfcq *q = (struct inbox_wfcq *)ib;

	if (is_vyukov(ib))
		return vyukov_swap_tail((struct inbox_vyukov *)ib, &m->m);
	if (is_llist(ib)) {
		cds_wfs_node_init(&m->m.snode);
		TSAN_RELEASE(&m->m);
		return __atomic_exchange_n(&((struct inbox_llist *)ib)->stack.head,
					   (struct cds_wfs_head *)&m->m.snode, __ATOMIC_SEQ_CST);
	}
	cds_wfcq_node_init(&m->m.node);
	TSAN_RELEASE(&m->m);
	return __atomic_exchange_n(&q->tail.p, &m->m.node, __ATOMIC_SEQ_CST);
}

SHARED void finish_enqueue(struct inbox *ib, void *old_tail, struct tmsg *m)
{
	if (is_vyukov(ib))
		vyukov_link(old_tail, &m->m);
	else if (is_llist(ib)) {
		TSAN_RELEASE(&m->m);	/* before the link the consumer will read */
		__atomic_store_n(&m->m.snode.next, old_tail, __ATOMIC_RELEASE);
	}
	else
		__atomic_store_n(&((struct cds_wfcq_node *)old_tail)->next, &m->m.node,
				 __ATOMIC_RELEASE);
}

/* The node a post finds as the tail when no message is queued. */
static void *empty_tail(struct inbox *ib)
{
	if (is_vyukov(ib))
		return &((struct inbox_vyukov *)ib)->stub;
	return &((struct inbox_wfcq *)ib)->head.node;
}

/* The node a post finds as the tail behind message m. */
static void *tail_of(struct inbox *ib, struct tmsg *m)
{
	if (is_vyukov(ib))
		return &m->m;
	return is_llist(ib) ? (void *)&m->m.snode : (void *)&m->m.node;
}

struct want {
	struct consumer *c;
	uint64_t handled, wouldblock, wouldblock_batch;
};

static bool reached(void *arg)
{
	struct want *w = arg;
	struct inbox_stats st = stats(w->c);

	return handled(w->c) >= w->handled && st.wouldblock >= w->wouldblock &&
	       st.wouldblock_batch + atomic_load(&hidden_wouldblocks) >= w->wouldblock_batch;
}

/*
 * WOULDBLOCK in the splice. The caught producer found the queue empty, so
 * it owes the signal: the round must just end (a re-arm would spin while the
 * producer is away), and the producer's own signal brings the message.
 * Returns whether the message was handled after the producer finished.
 */
SHARED bool caught_in_splice(const struct inbox_ops *ops, uint64_t *rounds_while_caught)
{
	struct consumer c;
	struct tmsg m = { .producer = 0, .seq = 1 };
	void *old;
	struct want w = { .c = &c, .wouldblock = 1 };
	uint64_t before;
	bool ok;

	consumer_init_ops(&c, ops, 64);
	consumer_start(&c);
	old = half_enqueue(c.inbox, &m);
	if (old != empty_tail(c.inbox))
		bail("half_enqueue: the queue was not empty");
	/* A wake-up from earlier (its message long taken) runs a round now. */
	wakeup_signal(&c.inbox->wake);
	if (!wait_until(reached, &w, 5000))
		bail("the splice never reported WOULDBLOCK");
	before = stats(&c).rounds;
	usleep(50000);
	*rounds_while_caught = stats(&c).rounds - before;
	finish_enqueue(c.inbox, old, &m);	/* P1b */
	wakeup_signal(&c.inbox->wake);		/* P2: it found the queue empty */
	w = (struct want){ .c = &c, .handled = 1 };
	ok = wait_until(reached, &w, 5000);
	consumer_stop(&c);
	consumer_free(&c);
	return ok;
}

/*
 * m0 is queued before the loop runs; the round handles it, and the test's
 * wrapped op posts m1 at the point `*arm` stands for (the wrapper takes it
 * from there, once). Returns whether both were handled; *asleep says
 * whether the consumer was left asleep with m1 queued.
 */
SHARED bool post_during_round(const struct inbox_ops *ops, struct tmsg **arm, bool *asleep)
{
	struct consumer c;
	struct tmsg m[2] = { { .producer = 0, .seq = 1 }, { .producer = 0, .seq = 2 } };
	struct want w = { .c = &c, .handled = 2 };
	bool ok;

	consumer_init_ops(&c, ops, 64);
	inbox_post(c.inbox, &m[0].m);
	*arm = &m[1];
	consumer_start(&c);
	ok = wait_until(reached, &w, 2000);
	*asleep = !ok && asleep_with_work(&c, 2);
	consumer_stop(&c);
	consumer_free(&c);
	*arm = NULL;
	return ok;
}

/*
 * A post that lands right after the collect, deterministically: the round
 * collects m0, and m1 is posted at once (after_collect()). m1 found the
 * queue empty and signalled; that signal must survive the rest of the
 * round and bring m1.
 */
SHARED bool posted_after_collect(const struct inbox_ops *ops, bool *asleep)
{
	return post_during_round(ops, &post_after_collect, asleep);
}

/* The same, with m1 posted inside spin-then-block's handshake, at `where`. */
SHARED bool posted_in_handshake(const struct inbox_ops *ops, int where, bool *asleep)
{
	handshake_where = where;
	return post_during_round(ops, &handshake_post, asleep);
}

/*
 * m0 is posted normally (it signals); m1's producer is caught after
 * exchanging the tail, so the consumer cannot take even m0 (it needs m0's
 * link to move on). Waits until a round has met that WOULDBLOCK, counts the
 * rounds of the next 50 ms, then lets the producer link m1, and signal too
 * if `signals`. Returns whether both were handled within 5 s.
 *
 * wfcq: the splice takes m0..m1 into the batch. m1's producer found the
 * queue non-empty and will not signal: only the round's re-arm brings the
 * two (caught_in_batch).
 *
 * wfcq-always: the dequeue from the shared queue meets it. Every post of
 * this variant signals, m1's too once it has linked: the round must end
 * without a re-arm (which would only spin), and m1's own signal brings both.
 */
static bool caught_behind(const struct inbox_ops *ops, bool signals, uint64_t *rounds_while_caught)
{
	struct consumer c;
	struct tmsg m[2] = { { .producer = 0, .seq = 1 }, { .producer = 0, .seq = 2 } };
	void *old;
	struct want w = { .c = &c, .wouldblock_batch = 1 };
	uint64_t before;
	bool ok;

	consumer_init_ops(&c, ops, 64);
	inbox_post(c.inbox, &m[0].m);
	old = half_enqueue(c.inbox, &m[1]);
	if (old != tail_of(c.inbox, &m[0]))
		bail("half_enqueue: m0 is not the tail");
	consumer_start(&c);
	if (!wait_until(reached, &w, 5000))
		bail("no round reported the WOULDBLOCK");
	before = stats(&c).rounds;
	usleep(50000);
	*rounds_while_caught = stats(&c).rounds - before;
	finish_enqueue(c.inbox, old, &m[1]);	/* P1b */
	if (signals)
		wakeup_signal(&c.inbox->wake);	/* P2 */
	w = (struct want){ .c = &c, .handled = 2 };
	ok = wait_until(reached, &w, 5000) && c.order_errors == 0;	/* m0, then m1 */
	consumer_stop(&c);
	consumer_free(&c);
	return ok;
}

SHARED bool caught_in_batch(const struct inbox_ops *ops)
{
	uint64_t rounds;

	return caught_behind(ops, false, &rounds);
}

SHARED bool caught_in_dequeue(const struct inbox_ops *ops, uint64_t *rounds_while_caught)
{
	return caught_behind(ops, true, rounds_while_caught);
}

/* ---- spin-then-block: the sleeping handshake ----------------------------- */

static bool spin_asleep(struct consumer *c)
{
	return atomic_load(&((struct inbox_spin *)c->inbox)->sleeping) == 1;
}

struct pingpong {
	uint64_t rounds;	/* messages posted, one at a time */
	uint64_t slow;		/* not handled within the busy wait */
	uint64_t late;		/* handled only after a second look */
	uint64_t lost;		/* never handled: the consumer slept on it */
};

/*
 * One message at a time, posted as soon as the previous one was handled
 * (the producer busy-waits for that, up to 2 ms):
 * the consumer (spin 0) is then usually inside its handshake, which is
 * where a missing fence loses the wake-up. A message not handled within
 * 20 ms, with the consumer asleep and nothing to read on the fd, is looked
 * at again for up to a second: handled then, it was only late (the
 * consumer was off its CPU); still not, the wake-up was lost, and the test
 * signals the fd itself to go on. At most `max` messages or `ms`
 * milliseconds, or five losses.
 */
SHARED void spin_pingpong(const struct inbox_ops *ops, uint64_t max, uint64_t ms,
			  struct pingpong *r)
{
	struct consumer c;
	struct tmsg m[2];
	uint64_t end = now_ms() + ms;

	memset(r, 0, sizeof(*r));
	consumer_init_ops(&c, ops, 64);
	consumer_start(&c);
	while (r->rounds < max && now_ms() < end && r->lost < 5) {
		struct tmsg *t = &m[r->rounds % 2];
		uint64_t want = r->rounds + 1, until = spin_now_ns() + 2000000;
		struct pollfd p = { .fd = wakeup_fd(&c.inbox->wake), .events = POLLIN };

		*t = (struct tmsg){ .producer = 0, .seq = (uint32_t)want };
		inbox_post(c.inbox, &t->m);
		r->rounds++;
		while (handled(&c) < want && spin_now_ns() < until)
			;	/* post again the moment it was handled ... */
		/* ... or a few dozen nanoseconds later, so that the post sweeps
		 * across the consumer's handshake. */
		for (volatile unsigned k = 0; k < ((uint32_t)r->rounds * 2654435761u) >> 26; k++)
			;
		if (handled(&c) >= want)
			continue;
		r->slow++;
		usleep(20000);
		if (handled(&c) >= want || !spin_asleep(&c) || poll(&p, 1, 0) != 0) {
			struct want w = { .c = &c, .handled = want };

			if (!wait_until(reached, &w, 5000))
				bail("the consumer stopped with a wake-up pending");
			continue;
		}
		{
			struct want w = { .c = &c, .handled = want };

			if (wait_until(reached, &w, 1000)) {
				r->late++;
				continue;
			}
		}
		r->lost++;
		wakeup_signal(&c.inbox->wake);
		{
			struct want w = { .c = &c, .handled = want };

			if (!wait_until(reached, &w, 5000))
				bail("a signal did not bring the lost message");
		}
	}
	consumer_stop(&c);
	consumer_free(&c);
}

#if defined(TEST_DELAY)
int main(void)
{
	struct run_result r;

	tap_plan(2 * INBOX_N_VARIANTS);
	for (int v = 0; v < INBOX_N_VARIANTS; v++) {
		const char *name = inbox_variant_name((enum inbox_variant)v);

		/* Four producers, 2 million messages. A lost wake-up is a stall
		 * for good; 5 s without progress is generous on a loaded machine. */
		run((enum inbox_variant)v, 4, 500000, true, 64, 5000, &r);
		ok(!r.stalled && r.handled == r.posted && r.disposed == 0,
		   "%s: producers delayed between enqueue and signal: %llu of %llu delivered "
		   "(longest pause %llu ms)", name, (unsigned long long)r.handled,
		   (unsigned long long)r.posted, (unsigned long long)r.longest_stall_ms);
		ok(r.order_errors == 0, "%s: each exactly once, in order per producer", name);
	}
	return tap_done();
}
#elif defined(TEST_BROKEN)
int main(void)
{
	struct run_result r;
	bool caught = false;

	bool asleep = false;

	tap_plan(6);
	/*
	 * The assertion is the deterministic one: the post placed right after
	 * the splice, as test_inbox places it for every real variant. The
	 * stress rounds that follow need one unlucky interleaving, which a
	 * given machine may never produce: they are reported, not asserted.
	 */
	ok(!posted_after_collect(broken_ops(DRAIN_AFTER_SPLICE), &asleep) && asleep,
	   "drain after splice: a post right after the splice is never handled, "
	   "the consumer sleeps with it queued");
	for (int round = 0; round < 3 && !caught; round++) {
		run_ops(broken_ops(DRAIN_AFTER_SPLICE), 2, 200000, true, 64, 1000, &r);
		caught = r.stalled && r.lost_wakeup;
		diag("stress round %d: handled %llu of %llu, stalled: %s, consumer asleep "
		     "with work: %s", round, (unsigned long long)r.handled,
		     (unsigned long long)r.posted, r.stalled ? "yes" : "no",
		     r.lost_wakeup ? "yes" : "no");
	}
	diag("drain after splice: the stress test %s the lost wake-up on this machine",
	     caught ? "also found" : "did not find");
	ok(!caught_in_batch(broken_ops(NO_REARM_IN_BATCH)),
	   "no re-arm after a WOULDBLOCK inside the batch: the rest of the batch is never handled");
	ok(!caught_in_batch(broken_ops(VYUKOV_NO_REARM)),
	   "vyukov without the re-arm when stuck on a message node: neither message is ever "
	   "handled");
	ok(!caught_in_batch(broken_ops(LLIST_NO_REARM)),
	   "llist without the re-arm when a link is not written: the chain is never handled");
	/* The ring without end_round: m1, posted after the round read the
	 * count, found it above zero and did not signal; nothing re-arms. */
	{
		static struct wrapped ring_no_end;

		ring_no_end.real = &inbox_ring_ops;
		ring_no_end.ops = inbox_ring_ops;
		ring_no_end.ops.collect = collect_then_post;
		ring_no_end.ops.end_round = NULL;
		asleep = false;
		ok(!posted_after_collect(&ring_no_end.ops, &asleep) && asleep,
		   "ring without the end-of-round re-arm: a post counted after the round read "
		   "the count is never handled, the consumer sleeps with it queued");
	}
	ok(!posted_in_handshake(broken_ops(SPIN_NO_RECHECK), BEFORE_D2, &asleep) && asleep,
	   "spin-then-block without the last look (D3): a post made before the flag was set "
	   "is never handled, the consumer sleeps with it queued");
	/*
	 * spin-then-block without its fences: the store-buffering reordering
	 * that x86 allows. Whether this machine shows it within the bound is
	 * a matter of timing, so the figure is reported, not asserted; the
	 * model's refutation (tests/test_model.sh) is the assertion.
	 */
	{
		struct pingpong pp;

		spin_pingpong(broken_ops(SPIN_NO_FENCES), 2000000, 3000, &pp);
		diag("spin-then-block without fences: %llu lost wake-ups in %llu handshakes "
		     "(%llu more only late, %llu slow); the model refutes this twin either way",
		     (unsigned long long)pp.lost, (unsigned long long)pp.rounds,
		     (unsigned long long)pp.late, (unsigned long long)pp.slow);
	}
	return tap_done();
}
#else
/* Every post signals, or only the one that found the queue empty. */
static bool elides(enum inbox_variant v)
{
	return !inbox_variant_ops(v)->every_post_signals;
}

/* May refuse a post (-ENOBUFS) when full. */
static bool bounded(enum inbox_variant v)
{
	return v == INBOX_RING;
}

/* Messages posted before the loop runs: one wake-up, handled within budget. */
static void test_elision_and_budget(enum inbox_variant v)
{
	const char *name = inbox_variant_name(v);
	struct consumer c;
	struct tmsg *m = calloc(1000, sizeof(*m));
	struct inbox_stats st;

	consumer_init(&c, v, 16);
	for (uint32_t i = 0; i < 1000; i++) {
		m[i] = (struct tmsg){ .producer = 0, .seq = i + 1 };
		inbox_post(c.inbox, &m[i].m);
	}
	consumer_start(&c);
	while (handled(&c) < 1000)
		usleep(1000);
	consumer_stop(&c);
	st = stats(&c);
	ok(st.wakeups == 1 && st.wakeups_saved == 999,
	   "%s: 1000 posts into a sleeping inbox make one wake-up (got %llu, %llu saved)",
	   name, (unsigned long long)st.wakeups, (unsigned long long)st.wakeups_saved);
	ok(st.largest_batch == 16 && st.rounds >= 1000 / 16,
	   "%s: a round handles at most the budget (largest %llu, %llu rounds)",
	   name, (unsigned long long)st.largest_batch, (unsigned long long)st.rounds);
	ok(c.order_errors == 0, "%s: in posting order across rounds", name);
	consumer_free(&c);
	free(m);
}

static void test_wouldblock(void)
{
	uint64_t rounds;
	bool ok_splice = caught_in_splice(test_ops(INBOX_WFCQ), &rounds);

	ok(rounds <= 1,
	   "wfcq, WOULDBLOCK in the splice: the round ends, no re-arm while the producer "
	   "is away (%llu rounds in 50 ms)", (unsigned long long)rounds);
	ok(ok_splice, "wfcq, WOULDBLOCK in the splice: the producer's own signal brings its message");
	ok(caught_in_batch(test_ops(INBOX_WFCQ)),
	   "wfcq, WOULDBLOCK inside the batch: the round re-arms, and the rest of the batch "
	   "is handled with no signal");
	ok_splice = caught_in_splice(test_ops(INBOX_WFCQ_ALWAYS), &rounds);
	ok(ok_splice && rounds == 0,
	   "wfcq-always, WOULDBLOCK on the first node (head.next not yet written): no re-arm "
	   "(%llu rounds in 50 ms), and the producer's own signal brings it",
	   (unsigned long long)rounds);
	ok_splice = caught_in_dequeue(test_ops(INBOX_WFCQ_ALWAYS), &rounds);
	ok(rounds == 0,
	   "wfcq-always, WOULDBLOCK in the dequeue: no re-arm while the producer is away "
	   "(%llu rounds in 50 ms)", (unsigned long long)rounds);
	ok(ok_splice, "wfcq-always, WOULDBLOCK in the dequeue: the producer's own signal "
	   "brings both messages");

	/* vyukov tells its two WOULDBLOCKs apart by the node it is stuck on. */
	ok_splice = caught_in_splice(test_ops(INBOX_VYUKOV), &rounds);
	ok(ok_splice && rounds <= 1,
	   "vyukov, stuck on the stub (the producer found no message): no re-arm while it is "
	   "away (%llu rounds in 50 ms), and its own signal brings the message",
	   (unsigned long long)rounds);
	ok(caught_in_batch(test_ops(INBOX_VYUKOV)),
	   "vyukov, stuck on a message node (the producer found a message, will not signal): "
	   "the round re-arms, and both are handled with no signal");
	/* llist cannot tell which producer it is stuck on: it always re-arms. */
	ok(caught_in_batch(test_ops(INBOX_LLIST)),
	   "llist, a link not written in the chain taken: the round re-arms, and the walk "
	   "resumes there, in order, with no signal");
}

/*
 * spin-then-block. A producer caught between its two steps while the
 * consumer runs its handshake: the consumer sleeps (no spinning on it), and
 * the producer, finishing, finds the flag set and signals. Then a consumer
 * that polls: a message posted while it polls costs no wake-up at all.
 * Then the ping-pong stress: no wake-up lost.
 */
static void test_spin(void)
{
	static struct wrapped hooked;
	struct consumer c;
	struct tmsg first = { .producer = 0, .seq = 1 }, m = { .producer = 0, .seq = 2 };
	struct tmsg many[1000];
	struct want w = { .c = &c, .handled = 1 };
	struct pingpong pp;
	uint64_t rounds;
	bool must = false, asleep = false;
	void *old;

	/* One post and its handling first, so that the flag has been 0 and
	 * only the consumer's handshake can have set it again. */
	consumer_init(&c, INBOX_SPIN, 64);
	consumer_start(&c);
	inbox_post(c.inbox, &first.m);
	if (!wait_until(reached, &w, 5000))
		bail("spin-then-block: the first message was not handled");
	w = (struct want){ .c = &c, .wouldblock = 1 };
	old = half_enqueue(c.inbox, &m);		/* P1a */
	wakeup_signal(&c.inbox->wake);			/* a round meets it */
	if (!wait_until(reached, &w, 5000))
		bail("spin-then-block: no round met the WOULDBLOCK");
	rounds = stats(&c).rounds;
	usleep(50000);
	rounds = stats(&c).rounds - rounds;
	ok(spin_asleep(&c) && rounds <= 1,
	   "spin-then-block, a producer between its steps at the handshake: the consumer "
	   "sleeps (flag set, %llu rounds in 50 ms)", (unsigned long long)rounds);
	finish_enqueue(c.inbox, old, &m);		/* P1b */
	must = spin_must_signal(c.inbox, true);		/* F_p, P2 */
	if (must)
		wakeup_signal(&c.inbox->wake);
	w = (struct want){ .c = &c, .handled = 2 };
	ok(must && wait_until(reached, &w, 5000) && c.order_errors == 0,
	   "... and that producer finds the flag set, signals, and its message is handled");
	consumer_stop(&c);
	consumer_free(&c);

	/* A post inside the handshake, before the flag is set (it does not
	 * signal: only the last look finds it) and after (it signals). */
	hooked.real = &inbox_spin_ops;
	hooked.ops = inbox_spin_ops;
	hooked.ops.before_sleep = handshake_then_post;
	ok(posted_in_handshake(&hooked.ops, BEFORE_D2, &asleep),
	   "spin-then-block, a post just before the flag is set: no signal, and the last "
	   "look finds it%s", asleep ? " (the consumer sleeps with it queued)" : "");
	ok(posted_in_handshake(&hooked.ops, BEFORE_D3, &asleep),
	   "spin-then-block, a post just after the flag is set: it is handled%s",
	   asleep ? " (the consumer sleeps with it queued)" : "");

	/* Polling for up to 1 s: a ping-pong of 1000 messages, each posted as
	 * soon as the last was handled, never finds the consumer asleep. */
	consumer_init(&c, INBOX_SPIN, 64);
	inbox_set_spin_us(c.inbox, 1000000);
	consumer_start(&c);
	w = (struct want){ .c = &c, .handled = 1 };
	many[0] = (struct tmsg){ .producer = 0, .seq = 1 };
	inbox_post(c.inbox, &many[0].m);		/* wakes it: the one signal */
	wait_until(reached, &w, 5000);
	for (uint32_t i = 1; i < 1000; i++) {
		many[i] = (struct tmsg){ .producer = 0, .seq = i + 1 };
		inbox_post(c.inbox, &many[i].m);
		w.handled = i + 1;
		if (!wait_until(reached, &w, 5000))
			bail("spin-then-block: a message was not handled");
	}
	ok(stats(&c).writes == 1 && c.order_errors == 0,
	   "spin-then-block polling: 1000 messages, one wake-up write in all (%llu)",
	   (unsigned long long)stats(&c).writes);
	consumer_stop(&c);
	consumer_free(&c);

	/* The stress, reported: the posts above are where the handshake can
	 * go wrong, placed deterministically; this one only samples. */
	spin_pingpong(test_ops(INBOX_SPIN), 200000, 2000, &pp);
	diag("spin-then-block ping-pong: %llu lost in %llu (%llu late, %llu slow)",
	     (unsigned long long)pp.lost, (unsigned long long)pp.rounds,
	     (unsigned long long)pp.late, (unsigned long long)pp.slow);
}

/* What is still queued at inbox_free() goes to the dispose callback, in
 * posting order: what a round left in the batch (the budget stopped it),
 * then what was posted after. */
struct disposed {
	uint32_t next;		/* the seq expected next */
	uint32_t count;
	bool in_order;
};

static void dispose_in_order(struct inbox_msg *msg, void *arg)
{
	struct disposed *d = arg;
	struct tmsg *t = (struct tmsg *)msg;

	d->in_order = d->in_order && t->seq == d->next;
	d->next = t->seq + 1;
	d->count++;
}

static void test_free_disposes(enum inbox_variant v)
{
	struct consumer c;
	struct tmsg m[15];
	struct disposed d = { .next = 5, .in_order = true };

	consumer_init(&c, v, 4);
	for (uint32_t i = 0; i < 10; i++) {
		m[i] = (struct tmsg){ .producer = 0, .seq = i + 1 };
		inbox_post(c.inbox, &m[i].m);
	}
	/* One pass of the loop, on this thread: one round, which takes the
	 * first 4 and (wfcq, mutex-elide) leaves 6 in its batch. */
	event_base_loop(c.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	for (uint32_t i = 10; i < 15; i++) {
		m[i] = (struct tmsg){ .producer = 0, .seq = i + 1 };
		inbox_post(c.inbox, &m[i].m);
	}
	inbox_free(c.inbox, dispose_in_order, &d);
	event_free(c.tick);
	event_base_free(c.base);
	ok(handled(&c) == 4 && d.count == 11 && d.in_order,
	   "%s: after a round that took 4 of 10 (budget) and 5 more posts, inbox_free "
	   "passes the other 11 to dispose, in posting order (%u, %s)", inbox_variant_name(v),
	   d.count, d.in_order ? "in order" : "OUT OF ORDER");
}

static bool all_self_posts(void *arg)
{
	struct consumer *c = arg;

	return handled(c) == 1 + (uint64_t)c->self_count - atomic_load(&c->self_refused);
}

/*
 * The consumer posts 200,000 messages to its own inbox from its handler:
 * more than a pipe holds (65,536 one-byte signals). A post that waited for
 * room would wait for itself forever.
 */
static void test_self_post(enum inbox_variant v)
{
	struct consumer c;
	struct tmsg seed = { .producer = 0, .seq = 1 };
	uint64_t t0;

	consumer_init(&c, v, 64);
	c.self_count = 200000;
	c.self_msgs = calloc(c.self_count, sizeof(*c.self_msgs));
	c.self_seed = &seed;
	consumer_start(&c);
	t0 = now_ms();
	inbox_post(c.inbox, &seed.m);
	if (!wait_until(all_self_posts, &c, 60000)) {
		ok(0, "%s: the consumer posts 200000 messages to itself: stuck after %llu",
		   inbox_variant_name(v), (unsigned long long)handled(&c));
		bail("the consumer thread is blocked for good");
	}
	/* Only a bounded variant may refuse, and what it refused is counted
	 * by the poster and by the inbox: refused + handled == attempted. */
	ok(c.order_errors == 0 &&
	   (atomic_load(&c.self_refused) == 0 || bounded(v)) &&
	   stats(&c).refused == atomic_load(&c.self_refused),
	   "%s: the consumer posts 200000 messages to itself: all handled or refused "
	   "(%u refused), in order, in %llu ms (%llu signals found the fd full)",
	   inbox_variant_name(v), atomic_load(&c.self_refused),
	   (unsigned long long)(now_ms() - t0), (unsigned long long)stats(&c).full);
	consumer_stop(&c);
	consumer_free(&c);
	free(c.self_msgs);
}

/* The ring with `cap` slots, as tests make it (inbox_impl.h). */
static const struct inbox_ops *tiny_ring(unsigned cap)
{
	static struct wrapped w[2];
	struct wrapped *t = &w[cap == 2 ? 0 : 1];

	t->real = &inbox_ring_ops;
	t->ops = inbox_ring_ops;
	t->ops.capacity = cap;
	return &t->ops;
}

/*
 * A ring of 4, driven by hand on this thread: a post beyond the capacity is
 * refused and leaves the message alone; a round makes room; everything
 * queued is handled in posting order; what is left goes to dispose.
 */
static void test_tiny_ring(void)
{
	struct consumer c;
	struct tmsg m[13], before;
	struct disposed d = { .next = 9, .in_order = true };
	int rc5, rc10;
	bool accepted = true;

	consumer_init_ops(&c, tiny_ring(4), 64);
	for (uint32_t i = 0; i < 13; i++)
		m[i] = (struct tmsg){ .producer = 0, .seq = i + 1 };
	for (uint32_t i = 0; i < 4; i++)
		accepted = accepted && inbox_post(c.inbox, &m[i].m) == 0;
	before = m[4];
	rc5 = inbox_post(c.inbox, &m[4].m);
	ok(accepted && rc5 == -ENOBUFS && memcmp(&before, &m[4], sizeof(before)) == 0 &&
	   stats(&c).refused == 1,
	   "ring of 4: 4 posts queued; the 5th returns -ENOBUFS (got %d), its message untouched, "
	   "counted as refused", rc5);
	event_base_loop(c.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);	/* one round */
	accepted = handled(&c) == 4;
	for (uint32_t i = 4; i < 8; i++)
		accepted = accepted && inbox_post(c.inbox, &m[i].m) == 0;
	rc10 = inbox_post(c.inbox, &m[8].m);
	ok(accepted && rc10 == -ENOBUFS,
	   "ring of 4: after a round took the 4, posting works again (4 more queued, then "
	   "refused again: %d)", rc10);
	event_base_loop(c.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	ok(handled(&c) == 8 && c.order_errors == 0 && stats(&c).wakeups == 2,
	   "ring of 4: the 8 queued were handled once each, in posting order (%llu, "
	   "%llu wake-ups)", (unsigned long long)handled(&c),
	   (unsigned long long)stats(&c).wakeups);
	for (uint32_t i = 8; i < 12; i++)
		inbox_post(c.inbox, &m[i].m);
	inbox_free(c.inbox, dispose_in_order, &d);
	event_free(c.tick);
	event_base_free(c.base);
	ok(d.count == 4 && d.in_order,
	   "ring of 4: inbox_free passes the 4 still queued to dispose, in order (%u)", d.count);
}

/* Four producers against a ring of 2, each waiting for room when refused. */
static void test_tiny_ring_stress(void)
{
	struct run_result r;

	run_ops(tiny_ring(2), 4, 100000, true, 64, 5000, &r);
	ok(!r.stalled && r.handled == r.posted && r.order_errors == 0 && r.disposed == 0,
	   "ring of 2, four jittery producers retrying on -ENOBUFS: %llu of %llu, FIFO, no "
	   "stall (%llu refusals, %llu wake-ups, %llu WOULDBLOCK)",
	   (unsigned long long)r.handled, (unsigned long long)r.posted,
	   (unsigned long long)r.stats.refused, (unsigned long long)r.stats.wakeups,
	   (unsigned long long)r.stats.wouldblock);
}

#ifdef FAULT_INJECTION
struct retrier {
	struct inbox *inbox;
	atomic_bool *stop;
	pthread_t thread;
};

static void *retrier_main(void *arg)
{
	struct retrier *r = arg;

	while (!atomic_load(r->stop))
		inbox_retry_wakeups(r->inbox);
	return NULL;
}

static bool signals_counted(void *arg)
{
	struct consumer *c = arg;
	struct inbox_stats st = stats(c);

	return st.wakeups + st.full >= st.handled;
}

/*
 * Every third wake-up write fails, and three threads retry the debts at the
 * same time as two producers post. Each post of a mutex variant owes one
 * signal, so the signals that reach the fd (drained, or found it full) must
 * equal the messages: a retry that sent twice for one debt shows as more.
 */
static void test_retry_exactly_once(enum inbox_variant v)
{
	struct consumer c;
	struct producer p[2];
	struct retrier rt[3];
	atomic_bool stop = false;
	const uint32_t count = 50000;
	struct inbox_stats st;
	struct want w;
	bool counted = !elides(v);	/* the others signal only on empty */

	consumer_init(&c, v, 64);
	consumer_start(&c);
	fault_arm(FAULT_WAKEUP_WRITE, 3);
	for (unsigned i = 0; i < 3; i++) {
		rt[i] = (struct retrier){ .inbox = c.inbox, .stop = &stop };
		pthread_create(&rt[i].thread, NULL, retrier_main, &rt[i]);
	}
	for (unsigned i = 0; i < 2; i++) {
		p[i] = (struct producer){ .c = &c, .id = i, .count = count };
		p[i].msgs = calloc(count, sizeof(struct tmsg));
		pthread_create(&p[i].thread, NULL, producer_main, &p[i]);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(p[i].thread, NULL);
	/* Retry until nothing is owed; then no thread sends any more. */
	for (int i = 0; i < 10000 && stats(&c).owed != 0; i++)
		usleep(1000);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < 3; i++)
		pthread_join(rt[i].thread, NULL);
	fault_arm(FAULT_WAKEUP_WRITE, 0);
	while (inbox_retry_wakeups(c.inbox) < 0)
		;
	w = (struct want){ .c = &c, .handled = 2 * count };
	ok(wait_until(reached, &w, 10000) && c.order_errors == 0,
	   "%s: every third wake-up fails, 3 threads retry: all %u messages handled, in order",
	   inbox_variant_name(v), 2 * count);
	if (counted) {
		wait_until(signals_counted, &c, 5000);
		usleep(50000);	/* any extra signal, sent late, is drained now */
		st = stats(&c);
		ok(st.wakeups + st.full == 2 * count && st.owed == 0,
		   "%s: signals sent == signals owed (%llu drained + %llu found the fd full, "
		   "for %u posts)", inbox_variant_name(v), (unsigned long long)st.wakeups,
		   (unsigned long long)st.full, 2 * count);
	}
	consumer_stop(&c);
	consumer_free(&c);
	for (unsigned i = 0; i < 2; i++)
		free(p[i].msgs);
}
#endif

/* The variant's own round, with a post placed right after its collect. */
static void test_post_after_collect(enum inbox_variant v)
{
	static struct wrapped hooked[INBOX_N_VARIANTS];
	bool asleep = false;

	hooked[v].real = inbox_variant_ops(v);
	hooked[v].ops = *hooked[v].real;
	hooked[v].ops.collect = collect_then_post;
	/* Variants with no collect step have no splice to post behind: for
	 * them this is a post made during the round, and says less. */
	ok(posted_after_collect(&hooked[v].ops, &asleep),
	   hooked[v].real->collect != NULL ?
	   "%s: a post right after the collect is handled: its signal outlives the round%s" :
	   "%s: a post made during a round is handled (no collect step to post behind)%s",
	   inbox_variant_name(v), asleep ? " (the consumer sleeps with it queued)" : "");
}

static void test_variant(enum inbox_variant v)
{
	const char *name = inbox_variant_name(v);
	struct run_result r;

	test_free_disposes(v);
	test_post_after_collect(v);

	run(v, 1, 200000, false, 64, 5000, &r);
	ok(r.handled == r.posted && r.order_errors == 0,
	   "%s: one producer: %llu of %llu delivered, FIFO", name,
	   (unsigned long long)r.handled, (unsigned long long)r.posted);

	run(v, 4, 500000, false, 256, 5000, &r);
	ok(!r.stalled && r.handled == r.posted && r.disposed == 0,
	   "%s: four producers, 2M messages: all delivered (%llu)", name,
	   (unsigned long long)r.handled);
	ok(r.order_errors == 0, "%s: FIFO per producer, no duplicates", name);
	diag("%s 4x500k: %llu wake-ups, %llu found the fd full, largest batch %llu, "
	     "%llu WOULDBLOCK rounds (%llu in the batch)", name,
	     (unsigned long long)r.stats.wakeups, (unsigned long long)r.stats.full,
	     (unsigned long long)r.stats.largest_batch, (unsigned long long)r.stats.wouldblock,
	     (unsigned long long)r.stats.wouldblock_batch);
	if (elides(v))
		ok(r.stats.wakeups_saved > 0 && r.stats.wakeups < r.posted / 2,
		   "%s: notify elision under load (%llu wake-ups for %llu messages)",
		   name, (unsigned long long)r.stats.wakeups, (unsigned long long)r.posted);
	else
		ok(r.stats.wakeups + r.stats.full == r.posted,
		   "%s: one signal per post (%llu drained + %llu found the fd full, for %llu)",
		   name, (unsigned long long)r.stats.wakeups, (unsigned long long)r.stats.full,
		   (unsigned long long)r.posted);

	/* Producers that pause at random: the queue drains to empty often,
	 * which is where a wake-up can be lost. */
	for (int round = 0; round < 2; round++) {
		run(v, 2, 200000, true, 64, 5000, &r);
		ok(!r.stalled && r.handled == r.posted && r.order_errors == 0 && r.disposed == 0,
		   "%s: lost-wake-up stress round %d: %llu of %llu, no stall (longest pause %llu ms)",
		   name, round, (unsigned long long)r.handled, (unsigned long long)r.posted,
		   (unsigned long long)r.longest_stall_ms);
	}
	/* Not vacuous: the consumer drained the queue, slept and was woken
	 * again, many times. The producers' catch-up waits (producer_main)
	 * make that happen about every 2048 posts however slow the consumer
	 * is: before them, lfq under TSan woke once in a whole run. */
	if (elides(v))
		ok(r.stats.wakeups > 10, "%s: the jittered run really slept and woke (%llu wake-ups)",
		   name, (unsigned long long)r.stats.wakeups);

	test_self_post(v);
#ifdef FAULT_INJECTION
	test_retry_exactly_once(v);
#else
	skip("%s: wake-up debts paid exactly once: needs --enable-fault-injection", name);
	if (!elides(v))
		skip("%s: signals sent == signals owed: needs --enable-fault-injection", name);
#endif
}

int main(void)
{
	/* Per variant 11: the eliding ones check elision twice, the others
	 * count signals twice (under load, and with failing writes). */
	int eliding = 0;

	for (int v = 0; v < INBOX_N_VARIANTS; v++)
		eliding += elides((enum inbox_variant)v);
	tap_plan(eliding * 3 + 9 + 5 + 5 + INBOX_N_VARIANTS * 11);
	for (int v = 0; v < INBOX_N_VARIANTS; v++)
		if (elides((enum inbox_variant)v))
			test_elision_and_budget((enum inbox_variant)v);
	test_wouldblock();
	test_tiny_ring();
	test_tiny_ring_stress();
	test_spin();
	for (int v = 0; v < INBOX_N_VARIANTS; v++)
		test_variant((enum inbox_variant)v);
	return tap_done();
}
#endif
