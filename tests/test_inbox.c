/*
 * test_inbox.c - the inbox's contract, every variant: a real event_base on
 * a consumer thread, producers on other threads (inbox_harness.h). Delivery
 * and order under one, two and four producers, the lost-wake-up stress,
 * notify elision and the per-round budget, a post placed right after the
 * round's collect, posting from the consumer's own thread, what a post
 * allocates, and what inbox_free() disposes.
 *
 * Each check is written to fail when a step of a variant's protocol is
 * wrong, and tests/mutants/ holds the wrong versions that must make it
 * fail (make check-mutants). The inbox's other concerns have files of
 * their own: test_inbox_wouldblock (producers held between their two
 * stores), test_inbox_spin (spin-then-block's handshake), test_inbox_ring
 * (the bounded ring's refusals and the reuse of its slots),
 * test_inbox_retry (wake-up debts paid exactly once), test_inbox_delay
 * (every variant with producers delayed between their steps).
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

/* What is still queued at inbox_free() goes to the dispose callback, in
 * posting order: what a round left in the batch (the budget stopped it),
 * then what was posted after. */
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
	/* How many wake-ups elision saves here is the scheduler's business (a
	 * consumer that keeps up finds the queue empty at every post): a
	 * figure, not a check. test_elision_and_budget() checks elision where
	 * it is deterministic; here, no more signals than posts. */
	if (elides(v))
		ok(r.stats.wakeups + r.stats.full <= r.posted,
		   "%s: at most one signal per post (%llu drained + %llu found the fd full, "
		   "for %llu; %llu rode along)", name, (unsigned long long)r.stats.wakeups,
		   (unsigned long long)r.stats.full, (unsigned long long)r.posted,
		   (unsigned long long)r.stats.wakeups_saved);
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
}

int main(void)
{
	const struct inbox_ops *v;

	bool fits = true;

	tap_watchdog(300);
	for (unsigned i = 0; (v = inbox_variant_at(i)) != NULL; i++)
		fits = fits && v->n_options <= INBOX_MAX_OPTIONS && v->name != NULL;
	ok(fits, "every variant in the table has a name and at most INBOX_MAX_OPTIONS (%d) "
	   "options", INBOX_MAX_OPTIONS);
	for (unsigned i = 0; (v = inbox_variant_at(i)) != NULL; i++)
		if (elides(v) && chosen(v))
			test_elision_and_budget(v);
	for (unsigned i = 0; (v = inbox_variant_at(i)) != NULL; i++)
		if (chosen(v))
			test_variant(v);
	tap_plan(tap_count);	/* a plan at the end: the count is what ran */
	return tap_done();
}
