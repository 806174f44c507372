/*
 * tap.h - the Test Anything Protocol, just enough for make check, and the
 * watchdog every test program arms. Header-only; every test program
 * includes it once.
 *
 * THE WATCHDOG
 *
 * A test never waits without a bound. Each wait has its own (a few seconds,
 * failing with a message); the watchdog is the bound on the whole program:
 * tap_watchdog(seconds) at the start of main(), and past that time the
 * program prints "not ok", naming the check it was waiting in (the last
 * tap_waiting() or ok()), kills the servers it started (tap_on_watchdog())
 * and exits 1, well before make check's own time-out (TEST_TIMEOUT in
 * Makefile.am) would end it without a word. Sanitizer builds run five times
 * longer.
 */
#ifndef ECHOSERVER_TAP_H
#define ECHOSERVER_TAP_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tap_count, tap_failed;
/* What the program is waiting for now: set by tap_waiting() and ok(). */
static const char *volatile tap_wait_what = "the first check";
static char tap_last_ok[160];
static unsigned tap_watchdog_seconds;
static void (*volatile tap_watchdog_hook)(void);

#define TAP_FN static __attribute__((unused))

TAP_FN void tap_plan(int n)
{
	printf("1..%d\n", n);
	fflush(stdout);
}

/* Names the wait that follows, for the watchdog's message (a literal, or a
 * string that lives until the next tap_waiting()). */
TAP_FN void tap_waiting(const char *what)
{
	tap_wait_what = what;
}

__attribute__((format(printf, 2, 3)))
TAP_FN int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	va_start(ap, fmt);
	vsnprintf(tap_last_ok, sizeof(tap_last_ok), fmt, ap);
	va_end(ap);
	tap_wait_what = "the check after the last result";
	if (!cond)
		tap_failed++;
	return cond;
}

/* A test that does not apply here: counts as passed, says why. */
__attribute__((format(printf, 1, 2)))
TAP_FN void skip(const char *fmt, ...)
{
	va_list ap;

	printf("ok %d # SKIP ", ++tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

__attribute__((format(printf, 1, 2)))
TAP_FN void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

TAP_FN __attribute__((noreturn)) void bail(const char *why)
{
	printf("Bail out! %s\n", why);
	fflush(stdout);
	exit(1);
}

TAP_FN int tap_done(void)
{
	return tap_failed ? 1 : 0;
}

/* ---- the watchdog ------------------------------------------------------ */

static void tap_put(const char *s)
{
	ssize_t r = write(1, s, strlen(s));

	(void)r;
}

static void tap_put_uint(unsigned long v)
{
	char buf[24], *p = buf + sizeof(buf) - 1;

	*p = '\0';
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	tap_put(p);
}

/* SIGALRM: only async-signal-safe calls (write, kill in the hook, _exit). */
static void tap_on_alarm(int sig)
{
	(void)sig;
	if (tap_watchdog_hook != NULL)
		tap_watchdog_hook();
	tap_put("not ok ");
	tap_put_uint((unsigned long)tap_count + 1);
	tap_put(" - watchdog: no result for ");
	tap_put_uint(tap_watchdog_seconds);
	tap_put(" s; waiting in: ");
	tap_put(tap_wait_what);
	if (tap_last_ok[0] != '\0') {
		tap_put(" (the last result was ");
		tap_put_uint((unsigned long)tap_count);
		tap_put(": ");
		tap_put(tap_last_ok);
		tap_put(")");
	}
	tap_put("\nBail out! the watchdog ended the test\n");
	_exit(1);
}

/*
 * Arms the watchdog: the program fails if it has not finished within
 * `seconds` (five times that in a sanitizer build). Call it first in
 * main(); child processes of a test that re-executes itself inherit
 * nothing (exec clears the alarm).
 */
TAP_FN void tap_watchdog(unsigned seconds)
{
	struct sigaction sa;

#if defined(SANITIZED)
	seconds *= 5;
#endif
	tap_watchdog_seconds = seconds;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tap_on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	alarm(seconds);
}

/* Called by the watchdog before it exits (async-signal-safe code only):
 * the harness kills the servers it started. */
TAP_FN void tap_on_watchdog(void (*fn)(void))
{
	tap_watchdog_hook = fn;
}

#endif
