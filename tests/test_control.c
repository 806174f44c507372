/*
 * test_control.c - the main thread's control channel (control.h), from
 * inside the core. An event_base with a control channel runs on a thread of
 * its own (the "main thread" of control.h); the test wakes it from another:
 *
 *   - a control_wake() reaches the handler, on the loop's thread, with its
 *     reason;
 *   - a wake-up that comes between the drain and the take is not lost
 *     (fault-injection builds): the loop's thread, woken for reason A, is
 *     held at a gate after its drain and before its take; the test wakes it
 *     for reason B and lets it go. B's bit and B's signal both come after
 *     the drain, so B is handled, taken with A or in the next round (its
 *     signal left the fd readable). Taken before the drain, A's round would
 *     drain B's signal away, and B would wait for a wake-up nobody sends.
 */
#include <config.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include <event2/event.h>

#include "control.h"
#include "fault.h"
#include "retry.h"
#include "tap.h"

#if defined(SANITIZED)
#define SLOWDOWN 5
#else
#define SLOWDOWN 1
#endif

enum {
	REASON_A = 1u << 0,
	REASON_B = 1u << 1,
	REASON_STOP = 1u << 2,	/* the handler ends the loop */
};

/* Every reason the handler was given, or'ed: written by the loop's thread
 * (release), read by the test's (acquire), which clears it between checks
 * while no wake-up is in flight. */
static atomic_uint seen;
static atomic_bool off_loop;		/* the handler ran on another thread */
static _Thread_local bool on_loop;	/* set by the loop's thread only */

static void on_control(unsigned reasons, void *arg)
{
	struct event_base *base = arg;

	if (!on_loop)
		atomic_store(&off_loop, true);
	atomic_fetch_or_explicit(&seen, reasons, memory_order_release);
	if (reasons & REASON_STOP)
		event_base_loopbreak(base);
}

/* The event_base's thread, from here until the handler ends the loop. */
static void *loop_main(void *arg)
{
	on_loop = true;
	event_base_dispatch(arg);
	return NULL;
}

static bool wait_seen(unsigned want, unsigned ms, const char *what)
{
	tap_waiting(what);
	for (unsigned i = 0; i < ms * SLOWDOWN; i++) {
		if ((atomic_load_explicit(&seen, memory_order_acquire) & want) == want)
			return true;
		usleep(1000);
	}
	diag("gave up waiting for %s: the handler saw %#x of %#x", what,
	     atomic_load(&seen), want);
	return false;
}

#ifdef FAULT_INJECTION
/* A wakes the loop, which stops between its drain and its take; B comes then. */
static void test_wake_between_drain_and_take(struct control *c)
{
	bool handled;

	atomic_store(&seen, 0);
	fault_gate_close(GATE_CONTROL_TAKE);
	control_wake(c, REASON_A);
	tap_waiting("the loop's thread to reach the gate between its drain and its take");
	for (unsigned i = 0; i < 5000 * SLOWDOWN && fault_gate_waiting(GATE_CONTROL_TAKE) == 0; i++)
		usleep(1000);
	if (fault_gate_waiting(GATE_CONTROL_TAKE) == 0)
		bail("the loop's thread never reached the gate after its drain");
	control_wake(c, REASON_B);
	fault_gate_open(GATE_CONTROL_TAKE);
	handled = wait_seen(REASON_A | REASON_B, 2000,
			    "reason B, woken while the loop was held between drain and take");
	ok(handled, "a control_wake() while the main thread is between its drain and its take "
	   "is handled, with no other wake-up (the handler saw %#x; A is %#x, B is %#x)",
	   atomic_load(&seen), REASON_A, REASON_B);
}
#endif

int main(void)
{
	struct event_base *base;
	struct retrier *r;
	struct control c;
	pthread_t loop;
	bool handled;

	tap_watchdog(60);
	tap_plan(2);
	/* The base is built here, then belongs to the loop's thread from its
	 * start to its join; after the join it is this thread's, to free. */
	if (retrier_new(&r) < 0 || (base = event_base_new()) == NULL)
		bail("cannot start the retrier or make an event_base");
	if (control_init(&c, base, r, on_control, base) < 0)
		bail("control_init failed");
	pthread_create(&loop, NULL, loop_main, base);

	control_wake(&c, REASON_A);
	handled = wait_seen(REASON_A, 5000, "reason A");
	ok(handled && !atomic_load(&off_loop),
	   "a control_wake() from another thread reaches the handler, on the loop's thread, "
	   "with its reason (the handler saw %#x)", atomic_load(&seen));

#ifdef FAULT_INJECTION
	test_wake_between_drain_and_take(&c);
#else
	skip("a wake-up between the drain and the take is not lost: needs "
	     "--enable-fault-injection");
#endif

	control_wake(&c, REASON_STOP);
	tap_waiting("the loop to end on REASON_STOP");
	pthread_join(loop, NULL);	/* the watchdog ends a loop that never does */
	control_destroy(&c);
	event_base_free(base);
	retrier_free(r);
	return tap_done();
}
