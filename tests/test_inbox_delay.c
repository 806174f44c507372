/*
 * test_inbox_delay.c - every variant with its producers delayed or
 * preempted at random between enqueue (P1) and signal (P2): the window in
 * which a consumer's round can take a message whose signal is still to
 * come, or drain before it is sent. 1M messages from four producers per
 * variant: each exactly once, in order per producer.
 */
#include <config.h>

#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "inbox_harness.h"
#include "tap.h"

/* After P1, before P2: usually a short spin, sometimes a yield, now and
 * then a real sleep, so that other producers and the consumer run in the
 * gap. The variant's own enqueue, then the pause; inbox.c signals after. */
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

int main(void)
{
	static struct wrapped delayed;	/* one variant at a time */
	struct run_shape shape = { .jitter = true };
	struct run_result r;
	const struct inbox_ops *v;

	tap_watchdog(300);
	for (unsigned i = 0; (v = inbox_variant_at(i)) != NULL; i++) {
		const char *name = inbox_variant_name(v);

		wrap(&delayed, v);
		delayed.ops.enqueue = delayed_enqueue;
		/* A lost wake-up is a stall for good; 10 s without progress is
		 * generous on a loaded machine. */
		run_ops(&delayed.ops, 4, 250000, &shape, 64, 10000, &r);
		ok(!r.stalled && r.handled == r.posted && r.disposed == 0,
		   "%s: producers delayed between enqueue and signal: %llu of %llu delivered",
		   name, (unsigned long long)r.handled, (unsigned long long)r.posted);
		ok(r.order_errors == 0, "%s: each exactly once, in order per producer", name);
	}
	tap_plan(tap_count);	/* two per variant of the library's table */
	return tap_done();
}
