/*
 * inbox_harness.c - see inbox_harness.h.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "inbox_harness.h"
#include "inbox_llist.h"
#include "inbox_spin.h"
#include "inbox_vyukov.h"
#include "inbox_wfcq.h"
#include "tap.h"
#include "tsan.h"

#if defined(SANITIZED)
#define SLOWDOWN 5	/* sanitizer builds: every bound five times longer */
#else
#define SLOWDOWN 1
#endif

const struct inbox_ops *real_ops(struct inbox *ib)
{
	return ((const struct wrapped *)ib->ops)->real;
}

/* The variant's own ops, whether the test wrapped them or not (every ops
 * table a test makes is a struct wrapped). */
static const struct inbox_ops *variant_of(struct inbox *ib)
{
	const struct inbox_ops *v;

	for (unsigned i = 0; (v = inbox_variant_at(i)) != NULL; i++)
		if (ib->ops == v)
			return ib->ops;
	return real_ops(ib);
}

const struct inbox_ops *wrap(struct wrapped *w, const struct inbox_ops *real)
{
	w->real = real;
	w->ops = *real;
	return &w->ops;
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool wait_until(bool (*done)(void *), void *arg, uint64_t ms, const char *what)
{
	uint64_t end = now_ms() + ms * SLOWDOWN;

	tap_waiting(what);
	while (!done(arg)) {
		if (now_ms() > end) {
			diag("gave up after %llu ms waiting for: %s",
			     (unsigned long long)(ms * SLOWDOWN), what);
			return false;
		}
		usleep(1000);
	}
	return true;
}

/* ---- the consumer --------------------------------------------------------- */

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
		 * that only this thread could drain would hang it for good). A
		 * bounded variant refuses what does not fit (this thread cannot
		 * make room): the refused message is ours still, and its struct
		 * is used for the next try. */
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

/* The tick only checks `quit`. It must not touch the inbox: a periodic
 * drain would hide a lost wake-up. */
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

int new_inbox(struct inbox **out, const struct inbox_ops *ops, struct event_base *base,
	      inbox_handler_fn handler, void *arg, unsigned budget)
{
	struct inbox_spec spec;

	inbox_spec_default(&spec, ops);	/* any ops, wrapped or not */
	return inbox_new(out, &spec, base, handler, arg, budget);
}

void consumer_init_ops(struct consumer *c, const struct inbox_ops *ops, unsigned budget)
{
	struct timeval tv = { 0, 20000 };

	memset(c, 0, sizeof(*c));
	c->base = event_base_new();
	if (c->base == NULL ||
	    new_inbox(&c->inbox, ops, c->base, on_msg, c, budget) < 0)
		bail("cannot create the inbox");
	c->tick = event_new(c->base, -1, EV_PERSIST, on_tick, c);
	event_add(c->tick, &tv);
}

void consumer_start(struct consumer *c)
{
	if (pthread_create(&c->thread, NULL, consumer_main, c) != 0)
		bail("pthread_create");
}

void consumer_stop(struct consumer *c)
{
	atomic_store(&c->quit, true);
	tap_waiting("the consumer thread to leave its loop");
	pthread_join(c->thread, NULL);
}

static void count_disposed(struct inbox_msg *msg, void *arg)
{
	(*(uint64_t *)arg)++;
}

uint64_t consumer_free(struct consumer *c)
{
	uint64_t disposed = 0;

	inbox_free(c->inbox, count_disposed, &disposed);
	event_free(c->tick);
	event_base_free(c->base);
	return disposed;
}

uint64_t handled(const struct consumer *c)
{
	return atomic_load_explicit(&c->handled, memory_order_acquire);
}

struct inbox_stats stats(const struct consumer *c)
{
	struct inbox_stats st;

	inbox_get_stats(c->inbox, &st);
	return st;
}

/* ---- many producers ----------------------------------------------------- */

struct producer {
	struct consumer *c;
	const struct run_shape *shape;
	struct tmsg *msgs;
	uint32_t id, count;
	atomic_uint_fast64_t posted;
	pthread_t thread;
};

/* Every 2048 posts of a jittered producer: until the consumer has handled
 * all that every producer has posted (or the run is abandoned). */
static void catch_up(struct producer *p)
{
	struct consumer *c = p->c;

	while (handled(c) < atomic_load_explicit(&c->posted, memory_order_relaxed) &&
	       !atomic_load_explicit(&c->give_up, memory_order_relaxed))
		usleep(100);
}

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	struct consumer *c = p->c;
	unsigned seed = p->id * 7919u + 1;
	bool jitter = p->shape != NULL && p->shape->jitter;

	for (uint32_t i = 0; i < p->count; i++) {
		p->msgs[i].producer = p->id;
		p->msgs[i].seq = i + 1;
		while (inbox_post(c->inbox, &p->msgs[i].m) == -ENOBUFS) {
			/* A full ring: wait for room, unless the run is over. */
			if (atomic_load_explicit(&c->give_up, memory_order_relaxed))
				return NULL;
			sched_yield();
		}
		atomic_store_explicit(&p->posted, i + 1, memory_order_relaxed);
		if (jitter) {
			unsigned r = rand_r(&seed);

			atomic_fetch_add_explicit(&c->posted, 1, memory_order_relaxed);
			if ((r & 1023) == 0)
				sched_yield();
			for (volatile unsigned k = 0; k < (r >> 16) % 512; k++)
				;
			if ((i & 2047) == 2047)
				catch_up(p);
		}
		if (atomic_load_explicit(&c->give_up, memory_order_relaxed))
			return NULL;
	}
	return NULL;
}

bool asleep_with_work(struct consumer *c, uint64_t posted)
{
	struct pollfd p = { .fd = wakeup_fd(&c->inbox->wake), .events = POLLIN };
	uint64_t rounds = stats(c).rounds;

	usleep(200000);
	return handled(c) < posted && poll(&p, 1, 0) == 0 && stats(c).rounds == rounds;
}

void run_ops(const struct inbox_ops *ops, unsigned np, uint32_t count,
	     const struct run_shape *shape, unsigned budget, uint64_t stall_ms,
	     struct run_result *r)
{
	struct consumer c;
	struct producer p[MAX_PRODUCERS];
	uint64_t total = (uint64_t)np * count, last_handled = 0, last_change;

	memset(r, 0, sizeof(*r));
	stall_ms *= SLOWDOWN;
	consumer_init_ops(&c, ops, budget);
	consumer_start(&c);
	for (unsigned i = 0; i < np; i++) {
		p[i] = (struct producer){ .c = &c, .shape = shape, .id = i, .count = count };
		p[i].msgs = calloc(count, sizeof(struct tmsg));
		if (p[i].msgs == NULL)
			bail("out of memory");
		pthread_create(&p[i].thread, NULL, producer_main, &p[i]);
	}
	tap_waiting("the consumer to handle every message of a run (stall detection)");
	last_change = now_ms();
	for (;;) {
		uint64_t h = handled(&c), t = now_ms(), posted = 0;

		for (unsigned i = 0; i < np; i++)
			posted += atomic_load_explicit(&p[i].posted, memory_order_relaxed);
		if (h == total)
			break;
		/* Progress, or nothing to do (the producers are between posts). */
		if (h != last_handled || h == posted) {
			last_handled = h;
			last_change = t;
		} else if (t - last_change > stall_ms) {
			r->stalled = true;
			atomic_store(&c.give_up, true);
			break;
		}
		usleep(1000);
	}
	tap_waiting("the producers to finish");
	for (unsigned i = 0; i < np; i++)
		pthread_join(p[i].thread, NULL);
	if (r->stalled) {
		r->lost_wakeup = asleep_with_work(&c, total);
		diag("a run stalled: %llu of %llu handled, the consumer %s",
		     (unsigned long long)handled(&c), (unsigned long long)total,
		     r->lost_wakeup ? "asleep with messages queued (a lost wake-up)" :
				      "not provably asleep");
	}
	consumer_stop(&c);
	r->stats = stats(&c);
	r->handled = handled(&c);
	r->order_errors = c.order_errors;
	r->posted = total;
	r->disposed = consumer_free(&c);
	for (unsigned i = 0; i < np; i++)
		free(p[i].msgs);
}

/* ---- a producer caught between its two stores, on purpose --------------- */

static bool is_vyukov(struct inbox *ib)
{
	return variant_of(ib) == &inbox_vyukov_ops;
}

/* llist's push: the same two steps, on the stack's head (cds_wfs_push()). */
static bool is_llist(struct inbox *ib)
{
	return variant_of(ib) == &inbox_llist_ops;
}

void *half_enqueue(struct inbox *ib, struct tmsg *m)
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

void finish_enqueue(struct inbox *ib, void *old_tail, struct tmsg *m)
{
	if (is_vyukov(ib)) {
		vyukov_link(old_tail, &m->m);
	} else if (is_llist(ib)) {
		TSAN_RELEASE(&m->m);	/* before the link the consumer will read */
		__atomic_store_n(&m->m.snode.next, old_tail, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(&((struct cds_wfcq_node *)old_tail)->next, &m->m.node,
				 __ATOMIC_RELEASE);
	}
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
	       st.wouldblock_batch >= w->wouldblock_batch;
}

/* The round counted in rounds `from` on has ended (a round counts itself
 * last, inbox.c): waits up to 5 s; false if none ended. A WOULDBLOCK is
 * counted inside its round, so "rounds while caught" must start after this,
 * or that very round would count as one more. */
struct rounds_from {
	struct consumer *c;
	uint64_t from;
};

static bool rounds_past(void *arg)
{
	struct rounds_from *r = arg;

	return stats(r->c).rounds > r->from;
}

static bool round_ended(struct consumer *c, uint64_t from)
{
	struct rounds_from r = { .c = c, .from = from };

	return wait_until(rounds_past, &r, 5000, "the end of the round that met the WOULDBLOCK");
}

bool caught_in_splice(const struct inbox_ops *ops, uint64_t *rounds_while_caught)
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
	before = stats(&c).rounds;
	wakeup_signal(&c.inbox->wake);
	if (!wait_until(reached, &w, 5000, "a round that meets the caught producer") ||
	    !round_ended(&c, before))
		bail("the round never reported the WOULDBLOCK");
	before = stats(&c).rounds;	/* from the end of the round that met it */
	usleep(50000);
	*rounds_while_caught = stats(&c).rounds - before;
	finish_enqueue(c.inbox, old, &m);	/* P1b */
	wakeup_signal(&c.inbox->wake);		/* P2: it found the queue empty */
	w = (struct want){ .c = &c, .handled = 1 };
	ok = wait_until(reached, &w, 5000, "the caught producer's message, after its signal");
	consumer_stop(&c);
	consumer_free(&c);
	return ok;
}

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
	before = stats(&c).rounds;
	consumer_start(&c);
	if (!wait_until(reached, &w, 5000, "a round that meets the producer caught behind m0") ||
	    !round_ended(&c, before)) {
		/* The round hid the WOULDBLOCK: it neither re-armed nor counted
		 * it. m1's producer finishes; nothing should be stuck. */
		finish_enqueue(c.inbox, old, &m[1]);
		consumer_stop(&c);
		consumer_free(&c);
		*rounds_while_caught = 0;
		return false;
	}
	before = stats(&c).rounds;	/* from the end of the round that met it */
	usleep(50000);
	*rounds_while_caught = stats(&c).rounds - before;
	finish_enqueue(c.inbox, old, &m[1]);	/* P1b */
	if (signals)
		wakeup_signal(&c.inbox->wake);	/* P2 */
	w = (struct want){ .c = &c, .handled = 2 };
	ok = wait_until(reached, &w, 5000, "m0 and m1, once m1's producer finished") &&
	     c.order_errors == 0;	/* m0, then m1 */
	consumer_stop(&c);
	consumer_free(&c);
	return ok;
}

bool caught_in_batch(const struct inbox_ops *ops)
{
	uint64_t rounds;

	return caught_behind(ops, false, &rounds);
}

bool caught_in_dequeue(const struct inbox_ops *ops, uint64_t *rounds_while_caught)
{
	return caught_behind(ops, true, rounds_while_caught);
}

/* ---- a post placed inside the round -------------------------------------- */

/*
 * The message the wrapped op posts, once, from the consumer's thread; set
 * before the consumer thread starts, so pthread_create orders it.
 */
static struct tmsg *armed_post;
static enum handshake_point armed_point;

static void post_armed(struct inbox *ib)
{
	struct tmsg *m = armed_post;

	if (m != NULL) {
		armed_post = NULL;
		inbox_post(ib, &m->m);
	}
}

bool collect_then_post(struct inbox *ib)
{
	bool ok = real_ops(ib)->collect == NULL || real_ops(ib)->collect(ib);

	post_armed(ib);
	return ok;
}

/* m0 before the loop runs; the wrapped op posts m1 once, at its point. */
static bool post_during_round(const struct inbox_ops *ops, bool *asleep)
{
	struct consumer c;
	struct tmsg m[2] = { { .producer = 0, .seq = 1 }, { .producer = 0, .seq = 2 } };
	struct want w = { .c = &c, .handled = 2 };
	bool ok;

	consumer_init_ops(&c, ops, 64);
	inbox_post(c.inbox, &m[0].m);
	armed_post = &m[1];
	consumer_start(&c);
	ok = wait_until(reached, &w, 2000, "m1, posted inside the round");
	*asleep = !ok && asleep_with_work(&c, 2);
	consumer_stop(&c);
	consumer_free(&c);
	armed_post = NULL;
	return ok;
}

bool posted_after_collect(const struct inbox_ops *ops, bool *asleep)
{
	return post_during_round(ops, asleep);
}

static bool spin_asleep_flag(struct inbox *ib)
{
	return atomic_load(&((struct inbox_spin *)ib)->sleeping) == 1;
}

/*
 * spin-then-block's steps, reached through its queue's ops, which its
 * handshake calls (inbox_spin.h): BEFORE_D2 posts when the round's next()
 * first finds nothing, so before the handshake begins; BEFORE_D3 posts at
 * the first collect that runs with the flag set, D3's own.
 */
static struct inbox_msg *next_then_post(struct inbox *ib)
{
	struct inbox_msg *m = real_ops(ib)->next(ib);

	if (m == NULL && armed_point == BEFORE_D2)
		post_armed(ib);
	return m;
}

static bool flag_set_then_post(struct inbox *ib)
{
	if (armed_point == BEFORE_D3 && spin_asleep_flag(ib))
		post_armed(ib);
	return real_ops(ib)->collect(ib);
}

bool posted_in_handshake(const struct inbox_ops *ops, enum handshake_point where,
			 bool *asleep)
{
	static struct wrapped hooked;

	wrap(&hooked, ops);
	hooked.ops.next = next_then_post;
	hooked.ops.collect = flag_set_then_post;
	armed_point = where;
	return post_during_round(&hooked.ops, asleep);
}

bool spin_asleep(struct consumer *c)
{
	return spin_asleep_flag(c->inbox);
}

/* ---- what the inbox tests share --------------------------------------- */

/* Every post signals, or only the one that found the queue empty. */
bool elides(const struct inbox_ops *v)
{
	return !v->every_post_signals;
}

/* May refuse a post (-ENOBUFS) when full. */
bool bounded(const struct inbox_ops *v)
{
	return v->bounded;
}

void consumer_init(struct consumer *c, const struct inbox_ops *v, unsigned budget)
{
	consumer_init_ops(c, v, budget);
}

void run(const struct inbox_ops *v, unsigned np, uint32_t count, bool jitter,
		unsigned budget, struct run_result *r)
{
	struct run_shape shape = { .jitter = jitter };

	run_ops(v, np, count, &shape, budget, 10000, r);
}

/* The library's variant of that name (a test that names one needs it). */
const struct inbox_ops *variant(const char *name)
{
	const struct inbox_ops *v = inbox_variant_find(name);

	if (v == NULL) {
		fprintf(stderr, "no variant '%s' in the library\n", name);
		bail("a variant this test names is missing");
	}
	return v;
}

/* v's ops, wrapped, with its one option's default set to `value` (the
 * ring's size, spin-then-block's polling time): new_inbox() then
 * gives the inbox that value. */
const struct inbox_ops *with_option(struct wrapped *w, struct inbox_option *o,
					   const struct inbox_ops *v, unsigned long value)
{
	wrap(w, v);
	*o = v->options[0];
	o->def = value;
	w->ops.options = o;
	return &w->ops;
}

bool handled_at_least(void *arg)
{
	struct count_of *w = arg;

	return handled(w->c) >= w->want;
}

bool chosen(const struct inbox_ops *v)
{
	const char *list = getenv("INBOX_VARIANTS"), *name = inbox_variant_name(v), *p;
	size_t len = strlen(name);

	if (list == NULL)
		return true;
	for (p = strstr(list, name); p != NULL; p = strstr(p + 1, name))
		if ((p == list || p[-1] == ' ') && (p[len] == '\0' || p[len] == ' '))
			return true;
	return false;
}

void dispose_in_order(struct inbox_msg *msg, void *arg)
{
	struct disposed *d = arg;
	struct tmsg *t = (struct tmsg *)msg;

	d->in_order = d->in_order && t->seq == d->next;
	d->next = t->seq + 1;
	d->count++;
}

void free_by_hand(struct consumer *c, inbox_handler_fn dispose, void *arg)
{
	inbox_free(c->inbox, dispose, arg);
	event_free(c->tick);
	event_base_free(c->base);
}
