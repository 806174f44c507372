/*
 * test_retry.c - the retrier's back-off (retry.h) does not depend on the
 * wall clock. This program stands in front of clock_gettime() (the core is
 * linked into it statically, so the retrier's calls reach the version
 * below) and shows the retrier a wall clock one hour ahead of the real one,
 * as if the clock were stepped back by an hour just after the retrier read
 * it. A debtor that owes once must be paid within milliseconds: on the
 * monotonic clock the back-off is unaffected; computed on the wall clock,
 * the first retry would come an hour later.
 *
 * In fault-injection builds, the back-off itself, as the sequence of waits
 * the retrier chose (NOTE_RETRY_WAIT, fault.h), never as durations: a first
 * episode long enough to reach the clamp, then a second one, which must
 * start at RETRY_MIN_MS again (SKIP without).
 */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "retry.h"
#include "tap.h"

#if defined(SANITIZED)
#define SLOWDOWN 5
#else
#define SLOWDOWN 1
#endif

int clock_gettime(clockid_t clk, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	int rc;

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "clock_gettime");
	rc = real(clk, ts);
	if (rc == 0 && clk == CLOCK_REALTIME)
		ts->tv_sec += 3600;	/* the wall clock, one hour off */
	return rc;
}

static atomic_uint calls;

/* Owes on its first call, pays on the second. */
static int debtor(void *arg)
{
	return atomic_fetch_add(&calls, 1) == 0 ? -EAGAIN : 0;
}

#ifdef FAULT_INJECTION
/* Failures left: the debtor owes while this is positive, one fewer at each
 * pass. Only the retrier's thread calls it; the test sets it while the
 * retrier sleeps between episodes. */
static atomic_uint fails_left;

static int failing_debtor(void *arg)
{
	unsigned left = atomic_load(&fails_left);

	if (left == 0)
		return 0;
	atomic_store(&fails_left, left - 1);
	return -EAGAIN;
}

/* Waits until NOTE_RETRY_WAIT has `want` values, and copies them to out. */
static bool wait_notes(unsigned want, unsigned *out, const char *what)
{
	unsigned n = 0;

	tap_waiting(what);
	for (unsigned i = 0; i < 10000 * SLOWDOWN; i++) {
		n = fault_notes(NOTE_RETRY_WAIT, out, want);
		if (n >= want)
			return true;
		usleep(1000);
	}
	diag("gave up waiting for %s: %u of %u waits noted", what, n, want);
	return false;
}

/* Writes w[from..to) to buf, as "0 1 2 ...". */
static const char *waits(char *buf, size_t size, const unsigned *w, unsigned from, unsigned to)
{
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned i = from; i < to && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%u", i > from ? " " : "", w[i]);
	return buf;
}

static bool same(const unsigned *a, const unsigned *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/*
 * The back-off restarts with each episode. The notes are the waits the
 * retrier chose, in order: 0 for its sleep until a kick, then the ms before
 * each pass. The first episode fails until the wait is clamped (a count of
 * passes, computed from RETRY_MIN_MS and RETRY_MAX_MS), and pays after a
 * wait of RETRY_MAX_MS; the second owes twice, and must wait RETRY_MIN_MS,
 * twice that, four times that, as if the first had never been.
 */
static void test_backoff_per_episode(void)
{
	enum { SECOND_FAILS = 2 };
	struct retrier *r;
	unsigned want[FAULT_NOTES_KEPT], got[FAULT_NOTES_KEPT], n = 0, first_end;
	unsigned first_fails = 0, base, ms;
	bool first_done, second_done = false;
	char want_s[256], got_s[256];

	/* The retrier of the check before has been joined: its waits are all
	 * noted, and this retrier's come after them. */
	base = fault_notes(NOTE_RETRY_WAIT, NULL, 0);
	want[n++] = 0;				/* asleep until the first kick */
	for (ms = RETRY_MIN_MS;; ms = ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : ms * 2) {
		want[n++] = ms;
		if (ms == RETRY_MAX_MS)
			break;			/* the pass after this wait pays */
		first_fails++;
	}
	want[n++] = 0;				/* asleep again */
	first_end = n;
	for (ms = RETRY_MIN_MS; n - first_end <= SECOND_FAILS; ms *= 2)
		want[n++] = ms;
	want[n++] = 0;
	if (base + n > FAULT_NOTES_KEPT)
		bail("more waits noted than a note keeps");

	if (retrier_new(&r) < 0 || retrier_add(r, failing_debtor, NULL) < 0)
		bail("cannot start the retrier");
	atomic_store(&fails_left, first_fails);
	retrier_kick(r);
	/* Once the retrier has noted its sleep, a kick wakes it for a new
	 * episode (one during an episode's wait would be taken by that wait). */
	first_done = wait_notes(base + first_end, got, "the first episode, to the clamp");
	ok(first_done && same(got + base, want, first_end),
	   "a debt that fails %u passes: the retrier waits %s (ms; 0: until a kick), "
	   "want %s", first_fails, waits(got_s, sizeof(got_s), got, base, base + first_end),
	   waits(want_s, sizeof(want_s), want, 0, first_end));
	if (first_done) {
		atomic_store(&fails_left, SECOND_FAILS);
		retrier_kick(r);
		second_done = wait_notes(base + n, got, "the second episode");
	}
	ok(second_done && same(got + base + first_end, want + first_end, n - first_end),
	   "the next episode backs off from %u ms again: it waits %s, want %s",
	   RETRY_MIN_MS, second_done ? waits(got_s, sizeof(got_s), got, base + first_end,
						 base + n) : "(not reached)",
	   waits(want_s, sizeof(want_s), want, first_end, n));
	retrier_remove(r, failing_debtor, NULL);
	retrier_free(r);
}
#endif

int main(void)
{
	struct retrier *r;
	int waited = 0;

	tap_watchdog(60);
	tap_plan(3);
	if (retrier_new(&r) < 0 || retrier_add(r, debtor, NULL) < 0)
		bail("cannot start the retrier");
	retrier_kick(r);
	tap_waiting("the retrier's first two passes");
	for (; waited < 5000 && atomic_load(&calls) < 2; waited++)
		usleep(1000);
	ok(atomic_load(&calls) >= 2,
	   "with the wall clock an hour off, a debt is retried after its back-off of 1 ms "
	   "and paid in the second pass (%u passes, within %d ms)", atomic_load(&calls), waited);
	retrier_remove(r, debtor, NULL);
	retrier_free(r);
#ifdef FAULT_INJECTION
	test_backoff_per_episode();
#else
	skip("a long episode's back-off, as the waits noted: needs --enable-fault-injection");
	skip("the next episode backs off from the start again: needs --enable-fault-injection");
#endif
	return tap_done();
}
