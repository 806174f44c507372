/*
 * test_ring_memory.c - what dispatch "ring" costs in memory, through
 * echoserver itself (doc/echoserver.1, --ring-size):
 *
 *   - the ring's slots cost nothing until messages pass through them: two
 *     workers with rings of 16777216 slots (128 MiB each, were every slot
 *     written at start) start, echo, and stay far below that when idle;
 *   - rings that could never fit in this machine's memory are refused at
 *     start: exit status 2, with a message that says so.
 *
 * RSS means little under the sanitizers (their shadow memory and
 * allocators), so the first check is skipped there.
 */
#include <config.h>

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define RING "16777216"
#define RING_BYTES ((uint64_t)16777216 * sizeof(void *))	/* one worker's */
#define IDLE_RSS_MAX_KB (64 * 1024)	/* far below 2 x 128 MiB */
#define CONNS 20

/* One connection, one line echoed: a message through a worker's ring. */
static bool echoed(int port, const char *line)
{
	char buf[64];
	size_t len = strlen(line);
	int fd = tcp_connect(port);
	bool good = fd >= 0 && send_all(fd, line, len) == 0 && recv_all(fd, buf, len) == 0 &&
		    memcmp(buf, line, len) == 0;

	if (fd >= 0)
		close(fd);
	return good;
}

static void test_untouched_slots(void)
{
	const char *args[] = { "-t", "2", "--dispatch", "ring", "--ring-size", RING, NULL };
	struct srv s;
	bool all = true;
	long rss;

	tap_waiting("echoserver -t 2 --dispatch ring --ring-size " RING " to listen");
	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver -t 2 --dispatch ring --ring-size " RING);
	/* Both workers have started and taken connections through their rings. */
	tap_waiting("echoes through the rings");
	for (int i = 0; i < CONNS; i++)
		all = all && echoed(s.port, "through the ring\n");
	ok(all, "-t 2 --dispatch ring --ring-size " RING ": %d connections echoed", CONNS);
	rss = srv_rss_kb(&s);
	diag("idle RSS %ld kB with two rings of " RING " slots (%llu MiB each if all touched)",
	     rss, (unsigned long long)(RING_BYTES >> 20));
#ifdef SANITIZED
	skip("idle RSS far below the rings' full size: RSS is not meaningful under sanitizers");
#else
	ok(rss > 0 && rss < IDLE_RSS_MAX_KB, "idle RSS %ld kB < %d kB: untouched slots cost "
	   "nothing", rss, IDLE_RSS_MAX_KB);
#endif
	tap_waiting("echoserver to stop on SIGTERM");
	ok(srv_stop(&s, SIGTERM, 10000) == 0, "SIGTERM: exits 0");
	unlink(s.err_path);
}

static void test_refused(void)
{
	const char *args[] = { "-t", "1024", "--dispatch", "ring", "--ring-size", RING,
			       "-l", "127.0.0.1", "-p", "0", NULL };
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t memory = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
	char out[2048];
	int status;

	if (memory == 0 || 1024 * RING_BYTES <= memory) {
		skip("-t 1024 --ring-size " RING " (128 GiB) fits in this machine's memory "
		     "(%llu MiB), or sysconf cannot say", (unsigned long long)(memory >> 20));
		return;
	}
	tap_waiting("echoserver -t 1024 --dispatch ring --ring-size " RING " to exit");
	status = run_capture(args, out, sizeof(out), 10000);
	for (char *nl = out; (nl = strchr(nl, '\n')) != NULL;)
		*nl = ' ';	/* one TAP line */
	ok(status == 2 && strstr(out, "too large") != NULL &&
	   strstr(out, "128.0 GiB") != NULL && strstr(out, "memory") != NULL,
	   "-t 1024 --dispatch ring --ring-size " RING ": exit %d (2 expected), saying the "
	   "rings need 128 GiB, more than the machine's memory: %s", status, out);
}

int main(void)
{
	tap_watchdog(60);
	tap_on_watchdog(harness_kill_children);
	signal(SIGPIPE, SIG_IGN);
	tap_plan(4);
	test_untouched_slots();
	test_refused();
	return tap_done();
}
