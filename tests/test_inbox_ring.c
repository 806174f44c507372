/*
 * test_inbox_ring.c - the bounded ring, tiny: a ring of 4 driven by hand (a
 * post beyond the capacity is refused and leaves the message alone; a round
 * makes room; order; what is left goes to dispose), and rings of 2 under
 * producers that never pause (the order between a slot's clearing and its
 * reuse).
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

int main(void)
{
	tap_watchdog(300);
	test_tiny_ring();
	test_tiny_ring_stress();
	tap_plan(6);
	return tap_done();
}
