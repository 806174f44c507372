/*
 * test_inbox.c - the inbox alone, every variant: a real event_base on a
 * consumer thread, producers on other threads (inbox_harness.h).
 *
 * Each check below is written to fail when a step of a variant's protocol
 * is wrong, and tests/mutants/ holds the wrong versions that must make it
 * fail (make check-mutants): delivery and order under four producers,
 * notify elision and the per-round budget, posts placed right after the
 * round's collect and inside spin-then-block's handshake, producers held
 * between their two stores (the WOULDBLOCK paths, where the round must
 * re-arm or must not), a ring of 2 under producers that never pause (the
 * order between a slot's clearing and its reuse), the ring's refusals,
 * posting from the consumer's own thread, what inbox_free() disposes, and
 * (fault-injection builds) wake-up debts paid exactly once.
 */
#include <config.h>

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "inbox_harness.h"
#include "inbox_spin.h"
#include "tap.h"

/* Every post signals, or only the one that found the queue empty. */
static bool elides(const struct inbox_ops *v)
{
	return !v->every_post_signals;
}

/* May refuse a post (-ENOBUFS) when full. */
static bool bounded(const struct inbox_ops *v)
{
	return v->bounded;
}

static void consumer_init(struct consumer *c, const struct inbox_ops *v, unsigned budget)
{
	consumer_init_ops(c, v, budget);
}

static void run(const struct inbox_ops *v, unsigned np, uint32_t count, bool jitter,
		unsigned budget, struct run_result *r)
{
	struct run_shape shape = { .jitter = jitter };

	run_ops(v, np, count, &shape, budget, 10000, r);
}

/* The library's variant of that name (a test that names one needs it). */
static const struct inbox_ops *variant(const char *name)
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
static const struct inbox_ops *with_option(struct wrapped *w, struct inbox_option *o,
					   const struct inbox_ops *v, unsigned long value)
{
	wrap(w, v);
	*o = v->options[0];
	o->def = value;
	w->ops.options = o;
	return &w->ops;
}

struct count_of {
	struct consumer *c;
	uint64_t want;
};

static bool handled_at_least(void *arg)
{
	struct count_of *w = arg;

	return handled(w->c) >= w->want;
}

/* Messages posted before the loop runs: one wake-up, handled within budget.
 * A round that did not re-arm after spending its budget would leave the
 * rest waiting for a signal that was drained already. */
static void test_elision_and_budget(const struct inbox_ops *v)
{
	const char *name = inbox_variant_name(v);
	struct consumer c;
	struct tmsg *m = calloc(1000, sizeof(*m));
	struct count_of w = { .c = &c, .want = 1000 };
	struct inbox_stats st;
	bool all;

	consumer_init(&c, v, 16);
	for (uint32_t i = 0; i < 1000; i++) {
		m[i] = (struct tmsg){ .producer = 0, .seq = i + 1 };
		inbox_post(c.inbox, &m[i].m);
	}
	consumer_start(&c);
	all = wait_until(handled_at_least, &w, 5000, "1000 messages posted before the loop ran");
	consumer_stop(&c);
	st = stats(&c);
	ok(all && st.wakeups == 1 && st.wakeups_saved == 999,
	   "%s: 1000 posts into a sleeping inbox make one wake-up, and all are handled "
	   "(%llu handled, %llu wake-ups, %llu saved)", name, (unsigned long long)handled(&c),
	   (unsigned long long)st.wakeups, (unsigned long long)st.wakeups_saved);
	ok(all && st.largest_batch == 16 && st.rounds >= 1000 / 16,
	   "%s: a round handles at most the budget, and re-arms for the rest (largest %llu, "
	   "%llu rounds)", name, (unsigned long long)st.largest_batch,
	   (unsigned long long)st.rounds);
	ok(c.order_errors == 0, "%s: in posting order across rounds", name);
	consumer_free(&c);
	free(m);
}

static void test_wouldblock(void)
{
	uint64_t rounds;
	bool ok_splice = caught_in_splice(variant("wfcq"), &rounds);

	ok(rounds <= 1,
	   "wfcq, WOULDBLOCK in the splice: the round ends, no re-arm while the producer "
	   "is away (%llu rounds in 50 ms)", (unsigned long long)rounds);
	ok(ok_splice, "wfcq, WOULDBLOCK in the splice: the producer's own signal brings its message");
	ok(caught_in_batch(variant("wfcq")),
	   "wfcq, WOULDBLOCK inside the batch: the round re-arms, and the rest of the batch "
	   "is handled with no signal");
	ok_splice = caught_in_splice(variant("wfcq-always"), &rounds);
	ok(ok_splice && rounds == 0,
	   "wfcq-always, WOULDBLOCK on the first node (head.next not yet written): no re-arm "
	   "(%llu rounds in 50 ms), and the producer's own signal brings it",
	   (unsigned long long)rounds);
	ok_splice = caught_in_dequeue(variant("wfcq-always"), &rounds);
	ok(rounds == 0,
	   "wfcq-always, WOULDBLOCK in the dequeue: no re-arm while the producer is away "
	   "(%llu rounds in 50 ms)", (unsigned long long)rounds);
	ok(ok_splice, "wfcq-always, WOULDBLOCK in the dequeue: the producer's own signal "
	   "brings both messages");

	/* vyukov tells its two WOULDBLOCKs apart by the node it is stuck on. */
	ok_splice = caught_in_splice(variant("vyukov"), &rounds);
	ok(ok_splice && rounds <= 1,
	   "vyukov, stuck on the stub (the producer found no message): no re-arm while it is "
	   "away (%llu rounds in 50 ms), and its own signal brings the message",
	   (unsigned long long)rounds);
	ok(caught_in_batch(variant("vyukov")),
	   "vyukov, stuck on a message node (the producer found a message, will not signal): "
	   "the round re-arms, and both are handled with no signal");
	/* llist cannot tell which producer it is stuck on: it always re-arms. */
	ok(caught_in_batch(variant("llist")),
	   "llist, a link not written in the chain taken: the round re-arms, and the walk "
	   "resumes there, in order, with no signal");
}

/*
 * spin-then-block. A producer caught between its two steps while the
 * consumer runs its handshake: the consumer sleeps (no spinning on it), and
 * the producer, finishing, finds the flag set and signals. Posts placed
 * inside the handshake. Then a consumer that polls: a message posted while
 * it polls costs no wake-up at all, and a round polls at most once.
 */
static void test_spin(void)
{
	static struct wrapped long_poll;
	static struct inbox_option long_us;
	const struct inbox_ops *ops = variant("spin-then-block");
	struct consumer c;
	struct tmsg first = { .producer = 0, .seq = 1 }, m = { .producer = 0, .seq = 2 };
	struct tmsg many[1000];
	struct count_of w = { .c = &c, .want = 1 };
	uint64_t rounds;
	bool must = false, asleep = false, all = true;
	void *old;

	/* One post and its handling first, so that the flag has been 0 and
	 * only the consumer's handshake can have set it again. */
	consumer_init(&c, ops, 64);
	consumer_start(&c);
	inbox_post(c.inbox, &first.m);
	if (!wait_until(handled_at_least, &w, 5000, "spin-then-block's first message"))
		bail("spin-then-block: the first message was not handled");
	old = half_enqueue(c.inbox, &m);		/* P1a */
	wakeup_signal(&c.inbox->wake);			/* a round meets it */
	rounds = stats(&c).rounds;
	for (int i = 0; i < 5000 && stats(&c).rounds == rounds; i++)
		usleep(1000);
	usleep(50000);
	rounds = stats(&c).rounds - rounds;
	ok(spin_asleep(&c) && rounds >= 1 && rounds <= 2,
	   "spin-then-block, a producer between its steps at the handshake: the consumer "
	   "sleeps (flag set, %llu rounds in 50 ms)", (unsigned long long)rounds);
	finish_enqueue(c.inbox, old, &m);		/* P1b */
	must = spin_must_signal(c.inbox);		/* F_p, P2 */
	if (must)
		wakeup_signal(&c.inbox->wake);
	w.want = 2;
	ok(must && wait_until(handled_at_least, &w, 5000, "the caught producer's message") &&
	   c.order_errors == 0,
	   "... and that producer finds the flag set, signals, and its message is handled");
	consumer_stop(&c);
	consumer_free(&c);

	ok(posted_in_handshake(ops, BEFORE_D2, &asleep),
	   "spin-then-block, a post just before the flag is set: no signal, and the last "
	   "look (D3) finds it%s", asleep ? " (the consumer sleeps with it queued)" : "");
	ok(posted_in_handshake(ops, BEFORE_D3, &asleep),
	   "spin-then-block, a post between the consumer's fence and its last look: it is "
	   "handled%s", asleep ? " (the consumer sleeps with it queued)" : "");

	/*
	 * Polling for up to 1 s: a ping-pong of 1000 messages, each posted as
	 * soon as the last was handled, never finds the consumer asleep (one
	 * write: the first post's). And the round polls once: after the
	 * message its poll found, the next dry spell ends the round, so the
	 * loop polls its descriptors at least every second message.
	 */
	consumer_init(&c, with_option(&long_poll, &long_us, variant("spin-then-block"), 1000000),
		      64);
	consumer_start(&c);
	for (uint32_t i = 0; i < 1000 && all; i++) {
		many[i] = (struct tmsg){ .producer = 0, .seq = i + 1 };
		inbox_post(c.inbox, &many[i].m);
		w.want = i + 1;
		all = wait_until(handled_at_least, &w, 5000, "a ping-pong message");
	}
	rounds = stats(&c).rounds;
	ok(all && stats(&c).writes == 1 && c.order_errors == 0,
	   "spin-then-block polling: 1000 messages, one wake-up write in all (%llu)",
	   (unsigned long long)stats(&c).writes);
	ok(all && rounds >= 500,
	   "spin-then-block polling: a round polls at most once, so 1000 ping-pong messages "
	   "take at least 500 rounds (%llu): the loop's other events run between them",
	   (unsigned long long)rounds);
	consumer_stop(&c);
	consumer_free(&c);
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

static void free_by_hand(struct consumer *c, inbox_handler_fn dispose, void *arg)
{
	inbox_free(c->inbox, dispose, arg);
	event_free(c->tick);
	event_base_free(c->base);
}

static void test_free_disposes(const struct inbox_ops *v)
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
	free_by_hand(&c, dispose_in_order, &d);
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
static void test_self_post(const struct inbox_ops *v)
{
	struct consumer c;
	struct tmsg seed = { .producer = 0, .seq = 1 };

	consumer_init(&c, v, 64);
	c.self_count = 200000;
	c.self_msgs = calloc(c.self_count, sizeof(*c.self_msgs));
	c.self_seed = &seed;
	consumer_start(&c);
	inbox_post(c.inbox, &seed.m);
	if (!wait_until(all_self_posts, &c, 60000, "the consumer's posts to itself")) {
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
	   "(%u refused), in order (%llu signals found the fd full)",
	   inbox_variant_name(v), atomic_load(&c.self_refused), (unsigned long long)stats(&c).full);
	consumer_stop(&c);
	consumer_free(&c);
	free(c.self_msgs);
}

/* The ring with `cap` slots, as tests make it (inbox_impl.h). */
static const struct inbox_ops *tiny_ring(unsigned cap)
{
	static struct wrapped w[2];
	struct wrapped *t = &w[cap == 2 ? 0 : 1];

	static struct inbox_option o[2];

	return with_option(t, &o[cap == 2 ? 0 : 1], &inbox_ring_ops, cap);
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
	free_by_hand(&c, dispose_in_order, &d);
	ok(d.count == 4 && d.in_order,
	   "ring of 4: inbox_free passes the 4 still queued to dispose, in order (%u)", d.count);
}

/*
 * A ring of 2 under producers that wait for room when refused. With jitter
 * (four producers) the ring often runs empty and must be woken; without it
 * (three producers posting back to back) a slot is claimed for its next lap
 * the moment the consumer gives it back, which is where the order between
 * clearing a slot and publishing the room (inbox_ring.c) decides whether a
 * new message is erased: erased, its slot stays empty for ever and the run
 * stalls.
 */
static void test_tiny_ring_stress(void)
{
	struct run_shape jitter = { .jitter = true }, tight = { .jitter = false };
	struct run_result r;

	run_ops(tiny_ring(2), 4, 100000, &jitter, 64, 10000, &r);
	ok(!r.stalled && r.handled == r.posted && r.order_errors == 0 && r.disposed == 0,
	   "ring of 2, four jittery producers retrying on -ENOBUFS: %llu of %llu handled, "
	   "FIFO, %s (%llu refusals, %llu wake-ups, %llu WOULDBLOCK)",
	   (unsigned long long)r.handled, (unsigned long long)r.posted,
	   r.stalled ? "STALLED" : "no stall",
	   (unsigned long long)r.stats.refused, (unsigned long long)r.stats.wakeups,
	   (unsigned long long)r.stats.wouldblock);
	run_ops(tiny_ring(2), 3, 200000, &tight, 64, 10000, &r);
	ok(!r.stalled && r.handled == r.posted && r.order_errors == 0 && r.disposed == 0,
	   "ring of 2, three producers back to back: %llu of %llu handled, FIFO, %s, no slot "
	   "lost (%llu refusals)", (unsigned long long)r.handled, (unsigned long long)r.posted,
	   r.stalled ? "STALLED" : "no stall", (unsigned long long)r.stats.refused);
}

#ifdef FAULT_INJECTION
struct retrier_thread {
	struct inbox *inbox;
	atomic_bool *stop;
	pthread_t thread;
};

static void *retrier_main(void *arg)
{
	struct retrier_thread *r = arg;

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

static bool nothing_owed(void *arg)
{
	return stats(arg).owed == 0;
}

struct poster {
	struct consumer *c;
	struct tmsg *msgs;
	uint32_t id, count;
	pthread_t thread;
};

static void *poster_main(void *arg)
{
	struct poster *p = arg;

	for (uint32_t i = 0; i < p->count; i++) {
		p->msgs[i] = (struct tmsg){ .producer = p->id, .seq = i + 1 };
		while (inbox_post(p->c->inbox, &p->msgs[i].m) == -ENOBUFS)
			sched_yield();
	}
	return NULL;
}

/*
 * Every third wake-up write fails, and three threads retry the debts at the
 * same time as two producers post. Each post of a signal-per-post variant
 * owes one signal, so the signals that reach the fd (drained, or found it
 * full) must equal the messages: a retry that sent twice for one debt shows
 * as more.
 */
static void test_retry_exactly_once(const struct inbox_ops *v)
{
	struct consumer c;
	struct poster p[2];
	struct retrier_thread rt[3];
	atomic_bool stop = false;
	const uint32_t count = 50000;
	struct count_of w = { .c = &c, .want = 2 * count };
	struct inbox_stats st;

	consumer_init(&c, v, 64);
	consumer_start(&c);
	fault_arm(FAULT_WAKEUP_WRITE, 3);
	for (unsigned i = 0; i < 3; i++) {
		rt[i] = (struct retrier_thread){ .inbox = c.inbox, .stop = &stop };
		pthread_create(&rt[i].thread, NULL, retrier_main, &rt[i]);
	}
	for (unsigned i = 0; i < 2; i++) {
		p[i] = (struct poster){ .c = &c, .id = i, .count = count };
		p[i].msgs = calloc(count, sizeof(struct tmsg));
		pthread_create(&p[i].thread, NULL, poster_main, &p[i]);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(p[i].thread, NULL);
	/* Retry until nothing is owed; then no thread sends any more. */
	wait_until(nothing_owed, &c, 10000, "the retrying threads to pay every debt");
	atomic_store(&stop, true);
	for (unsigned i = 0; i < 3; i++)
		pthread_join(rt[i].thread, NULL);
	fault_arm(FAULT_WAKEUP_WRITE, 0);
	while (inbox_retry_wakeups(c.inbox) < 0)
		;
	ok(wait_until(handled_at_least, &w, 10000, "every message, its wake-ups retried") &&
	   c.order_errors == 0,
	   "%s: every third wake-up fails, 3 threads retry: all %u messages handled, in order",
	   inbox_variant_name(v), 2 * count);
	if (!elides(v)) {
		wait_until(signals_counted, &c, 5000, "every signal sent to be drained");
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
static void test_post_after_collect(const struct inbox_ops *v)
{
	static struct wrapped hooked;	/* one variant at a time */
	bool asleep = false;

	wrap(&hooked, v);
	hooked.ops.collect = collect_then_post;
	/* Variants with no collect step have no splice to post behind: for
	 * them this is a post made during the round, and says less. */
	ok(posted_after_collect(&hooked.ops, &asleep),
	   hooked.real->collect != NULL ?
	   "%s: a post right after the collect is handled: its signal outlives the round%s" :
	   "%s: a post made during a round is handled (no collect step to post behind)%s",
	   inbox_variant_name(v), asleep ? " (the consumer sleeps with it queued)" : "");
}

/*
 * What a post allocates: inbox.h promises nothing but lfq's node (one per
 * post, freed after its grace period). 1000 posts into an inbox whose
 * consumer has not run must leave the heap as it was, for every other
 * variant. (Sanitizers replace malloc, and mallinfo2() with it.)
 */
static void test_post_allocates(const struct inbox_ops *v)
{
#if defined(SANITIZED)
	skip("%s: what a post allocates (the sanitizer's allocator hides it from mallinfo2)",
	     inbox_variant_name(v));
#else
	struct consumer c;
	struct tmsg *m = calloc(1000, sizeof(*m));
	size_t before, after;

	consumer_init(&c, v, 64);
	inbox_post(c.inbox, &m[0].m);	/* a first post may set up per-thread state */
	before = mallinfo2().uordblks;
	for (uint32_t i = 1; i < 1000; i++)
		if (inbox_post(c.inbox, &m[i].m) == -ENOBUFS)
			break;		/* the ring's 4096 slots suffice */
	after = mallinfo2().uordblks;
	if (v->allocates)
		ok(after > before,
		   "%s: each post allocates its node (%zu bytes in use after 999 posts, %zu "
		   "before)", inbox_variant_name(v), after, before);
	else
		ok(after == before, "%s: 999 posts allocate nothing (%zu bytes in use, %zu before)",
		   inbox_variant_name(v), after, before);
	free_by_hand(&c, NULL, NULL);
	free(m);
#endif
}

static void test_variant(const struct inbox_ops *v)
{
	const char *name = inbox_variant_name(v);
	struct run_result r;

	tap_waiting(name);
	test_free_disposes(v);
	test_post_after_collect(v);
	test_post_allocates(v);

	run(v, 1, 200000, false, 64, &r);
	ok(!r.stalled && r.handled == r.posted && r.order_errors == 0,
	   "%s: one producer: %llu of %llu delivered, FIFO", name,
	   (unsigned long long)r.handled, (unsigned long long)r.posted);

	run(v, 4, 250000, false, 256, &r);
	ok(!r.stalled && r.handled == r.posted && r.disposed == 0,
	   "%s: four producers, 1M messages: all delivered (%llu)", name,
	   (unsigned long long)r.handled);
	ok(r.order_errors == 0, "%s: FIFO per producer, no duplicates", name);
	diag("%s 4x250k: %llu wake-ups, %llu found the fd full, largest batch %llu, "
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

	/*
	 * Producers that pause at random and, every 2048 posts, wait until
	 * the consumer has handled everything: the queue is then empty, and
	 * the next post must wake a consumer that is asleep or about to be,
	 * which is where a wake-up can be lost. Whether the consumer had
	 * gone to sleep by then is the scheduler's business, so that count is
	 * a setup check: a run that woke it fewer than 10 times is run again
	 * (twice at most) before the check says the stress did what it is for.
	 */
	for (int round = 0; round < 2; round++) {
		run(v, 2, 200000, true, 64, &r);
		for (int again = 0; round == 1 && elides(v) && !r.stalled &&
		     r.stats.wakeups < 10 && again < 2; again++) {
			diag("%s: only %llu wake-ups in the stress; once more", name,
			     (unsigned long long)r.stats.wakeups);
			run(v, 2, 200000, true, 64, &r);
		}
		ok(!r.stalled && r.handled == r.posted && r.order_errors == 0 && r.disposed == 0,
		   "%s: lost-wake-up stress round %d: %llu of %llu handled, %s", name, round,
		   (unsigned long long)r.handled, (unsigned long long)r.posted,
		   r.stalled ? "STALLED" : "no stall");
	}
	if (elides(v))
		ok(r.stats.wakeups >= 10,
		   "%s: the stress emptied the queue and woke the consumer again and again "
		   "(%llu wake-ups)", name, (unsigned long long)r.stats.wakeups);

	test_self_post(v);
#ifdef FAULT_INJECTION
	test_retry_exactly_once(v);
#else
	skip("%s: wake-up debts paid exactly once: needs --enable-fault-injection", name);
	if (!elides(v))
		skip("%s: signals sent == signals owed: needs --enable-fault-injection", name);
#endif
}

/*
 * INBOX_VARIANTS="vyukov ring" runs only those variants' checks, besides
 * the ones every run makes (the WOULDBLOCKs, the tiny rings, the spin
 * handshake): for a developer at work on one, and for a mutant of one
 * (tests/mutants/). make check sets nothing: every variant.
 */
static bool chosen(const struct inbox_ops *v)
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

int main(void)
{
	tap_watchdog(300);
	const struct inbox_ops *v;

	for (unsigned i = 0; (v = inbox_variant_at(i)) != NULL; i++)
		if (elides(v) && chosen(v))
			test_elision_and_budget(v);
	test_wouldblock();
	test_tiny_ring();
	test_tiny_ring_stress();
	test_spin();
	for (unsigned i = 0; (v = inbox_variant_at(i)) != NULL; i++)
		if (chosen(v))
			test_variant(v);
	tap_plan(tap_count);	/* a plan at the end: the count is what ran */
	return tap_done();
}
