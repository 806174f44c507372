/*
 * test_retry.c - the retrier's back-off (retry.h) does not depend on the
 * wall clock. This program stands in front of clock_gettime() (the core is
 * linked into it statically, so the retrier's calls reach the version
 * below) and shows the retrier a wall clock one hour ahead of the real one,
 * as if the clock were stepped back by an hour just after the retrier read
 * it. A debtor that owes once must be paid within milliseconds: on the
 * monotonic clock the back-off is unaffected; computed on the wall clock,
 * the first retry would come an hour later.
 */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "retry.h"
#include "tap.h"

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

int main(void)
{
	struct retrier *r;
	int waited = 0;

	tap_watchdog(60);
	tap_plan(1);
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
	return tap_done();
}
