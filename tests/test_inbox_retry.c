/*
 * test_inbox_retry.c - wake-up debts (owed.h), every variant: every third
 * wake-up write fails, three threads pay the debts while two producers
 * post, and the signals that reach the fd are exactly the ones owed
 * (fault-injection builds; SKIP without).
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
	for (int i = 0; i < 1000 && inbox_retry_wakeups(c.inbox) < 0; i++)
		;	/* with no fault armed, the first pays all */
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

int main(void)
{
	const struct inbox_ops *v;

	tap_watchdog(300);
	for (unsigned i = 0; (v = inbox_variant_at(i)) != NULL; i++) {
		if (!chosen(v))
			continue;
#ifdef FAULT_INJECTION
		test_retry_exactly_once(v);
#else
		skip("%s: wake-up debts paid exactly once: needs --enable-fault-injection",
		     inbox_variant_name(v));
		if (!elides(v))
			skip("%s: signals sent == signals owed: needs --enable-fault-injection",
			     inbox_variant_name(v));
#endif
	}
	tap_plan(tap_count);
	return tap_done();
}
