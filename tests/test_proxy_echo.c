/*
 * test_proxy_echo.c - echoserver --proxy-protocol, through real sockets,
 * under every accept strategy: the header is never echoed and what follows
 * it is, byte for byte; --max-conns-per-ip counts the address the header
 * carries, exactly (a slot given back is usable again); every kind of bad
 * header closes its own connection, is counted by reason, and leaves a
 * connection opened before it echoing; a sender outside --proxy-from is
 * closed; a stop does not wait for a header that never comes.
 */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "mtserver.h"
#include "tap.h"

static const unsigned char sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				       0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

/* A v2 PROXY header for TCP over IPv4 from src:sport; its length. */
static size_t v2_header(unsigned char *b, const char *src, uint16_t sport)
{
	memcpy(b, sig, 12);
	b[12] = 0x21;
	b[13] = 0x11;
	b[14] = 0;
	b[15] = 12;
	inet_pton(AF_INET, src, b + 16);
	inet_pton(AF_INET, "127.0.0.1", b + 20);
	b[24] = (unsigned char)(sport >> 8);
	b[25] = (unsigned char)sport;
	b[26] = 0x15;
	b[27] = 0xb3;
	return 28;
}

/* A connection that sends hdr (len bytes) and then, in the same write,
 * tail; -1 if it cannot connect. */
static int open_with(int port, const void *hdr, size_t len, const char *tail)
{
	unsigned char b[2048];
	size_t tl = tail != NULL ? strlen(tail) : 0;
	int fd = tcp_connect(port);

	memcpy(b, hdr, len);
	if (tl > 0)
		memcpy(b + len, tail, tl);
	if (fd != -1 && send_all(fd, b, len + tl) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int open_v1(int port, const char *src, const char *tail)
{
	char line[128];

	snprintf(line, sizeof(line), "PROXY TCP4 %s 127.0.0.1 40000 5555\r\n", src);
	return open_with(port, line, strlen(line), tail);
}

/* The connection answers x with x. */
static bool echoes(int fd, char x)
{
	char c = 0;

	return fd != -1 && send_all(fd, &x, 1) == 0 && recv_wait(fd, &c, 1, 5000) == 1 && c == x;
}

/* The server closed it (EOF or reset) within ms, with nothing echoed. */
static bool closed(int fd, int ms)
{
	char c;
	ssize_t r = recv_wait(fd, &c, 1, ms);

	return r == 0 || r == -1;
}

/* The sum over the workers of the number after `needle` in the last
 * SIGUSR1 report (each worker's line once: the report is asked once). */
static unsigned reported(const struct srv *s, const char *needle)
{
	const char *t = srv_stderr_text(s), *p = t;
	unsigned sum = 0;

	while (p != NULL && (p = strstr(p, needle)) != NULL) {
		p += strlen(needle);
		sum += (unsigned)strtoul(p, NULL, 10);
	}
	return sum;
}

static void report(struct srv *s, unsigned workers)
{
	kill(s->pid, SIGUSR1);
	for (int i = 0; i < 100 && srv_stderr_count(s, "proxy headers v1") < (int)workers; i++)
		usleep(50000);
}

/* 256 KiB after a v1 header in the same write, and after a v2 header. */
static void byte_exact(struct srv *s, const char *accept)
{
	static unsigned char out[256 * 1024], in[sizeof(out)];
	unsigned char hdr[64];
	uint64_t seed = 7;
	int fd[2];
	bool same[2];

	for (int v = 0; v < 2; v++) {
		size_t n = v == 0 ? 0 : v2_header(hdr, "192.0.2.10", 1000);

		fill_random(out, sizeof(out), &seed);
		if (v == 0) {
			n = (size_t)snprintf((char *)hdr, sizeof(hdr),
					     "PROXY TCP4 192.0.2.9 127.0.0.1 1000 5555\r\n");
		}
		fd[v] = open_with(s->port, hdr, n, NULL);
		same[v] = fd[v] != -1 && send_all(fd[v], out, sizeof(out)) == 0 &&
			  recv_all(fd[v], in, sizeof(in)) == 0 && memcmp(in, out, sizeof(out)) == 0;
	}
	ok(same[0] && same[1], "%s: 256 KiB after a v1 header and after a v2 header come back "
	   "byte for byte, no header byte among them", accept);
	for (int v = 0; v < 2; v++)
		if (fd[v] != -1)
			close(fd[v]);
	fd[0] = open_v1(s->port, "192.0.2.11", "same segment\n");
	ok(fd[0] != -1 && recv_wait(fd[0], in, sizeof(in), 5000) == 13 &&
	   memcmp(in, "same segment\n", 13) == 0,
	   "%s: bytes in the header's own segment are echoed, and only they", accept);
	close(fd[0]);
}

/* --max-conns-per-ip 2 counts the header's address, not the socket's. */
static void per_source(struct srv *s, const char *accept)
{
	int many[5], same[3], again, open_one = -1;
	unsigned n_served = 0;
	bool all = true;
	char src[32];

	for (int i = 0; i < 5; i++) {
		snprintf(src, sizeof(src), "198.51.100.%d", i + 1);
		many[i] = open_v1(s->port, src, NULL);
		all = all && echoes(many[i], 'a');
	}
	ok(all, "%s: 5 clients with 5 addresses through one sender, limit 2: all 5 served",
	   accept);
	/* Three at once: which two are served is the workers' race; that it
	 * is two, and one is closed, is the count's exactness. */
	for (int i = 0; i < 3; i++)
		same[i] = open_v1(s->port, "203.0.113.7", NULL);
	for (int i = 0; i < 3; i++) {
		bool served = echoes(same[i], 'b');

		n_served += served;
		if (served)
			open_one = same[i];
	}
	ok(n_served == 2, "%s: three connections of 203.0.113.7 at once, limit 2: %u served, "
	   "the other closed", accept, n_served);
	close(open_one);
	again = -1;
	for (int i = 0; i < 250 && again == -1; i++) {	/* up to 5 s for the close */
		usleep(20000);
		again = open_v1(s->port, "203.0.113.7", NULL);
		if (!echoes(again, 'd')) {
			close(again);
			again = -1;
		}
	}
	ok(again != -1, "%s: once one of them closes, 203.0.113.7 may connect again", accept);
	close(again);
	for (int i = 0; i < 3; i++)
		if (same[i] != open_one)
			close(same[i]);
	for (int i = 0; i < 5; i++)
		close(many[i]);
}

/* Each bad header closes its own connection; an older one keeps echoing. */
static void bad_headers(struct srv *s, const char *accept, unsigned workers)
{
	unsigned char b[64];
	int keep = open_v1(s->port, "192.0.2.50", NULL), fd;
	unsigned n_closed = 0, n_tried = 0;
	size_t n;
	struct {
		const char *what;
		const char *bytes;
		size_t len;		/* 0: strlen */
	} bad[] = {
		{ "an HTTP request", "GET / HTTP/1.0\r\n\r\n", 0 },
		{ "a v1 line with no CRLF in 107 bytes",
		  "PROXY UNKNOWN aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
		{ "a port out of range", "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", 0 },
		{ "a truncated v1 line", "PROXY TCP4 1.2.3.4 5.6", 0 },
	};

	ok(echoes(keep, 'k'), "%s: a connection opened before the bad headers echoes", accept);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++, n_tried++) {
		fd = open_with(s->port, bad[i].bytes,
			       bad[i].len ? bad[i].len : strlen(bad[i].bytes), NULL);
		n_closed += fd != -1 && closed(fd, 5000);
		if (fd != -1)
			close(fd);
	}
	/* v2: wrong signature byte, truncated, oversized, length short of
	 * its family, wrong version. */
	for (int k = 0; k < 5; k++, n_tried++) {
		n = v2_header(b, "192.0.2.60", 1);
		if (k == 0)
			b[3] = 0x0b;
		if (k == 1)
			n = 20;
		if (k == 2)
			b[14] = 0x10;	/* 4096 + 12 bytes */
		if (k == 3)
			b[15] = 8;
		if (k == 4)
			b[12] = 0x11;
		fd = open_with(s->port, b, n, NULL);
		n_closed += fd != -1 && closed(fd, 5000);
		if (fd != -1)
			close(fd);
	}
	/* A byte at a time. */
	fd = tcp_connect(s->port);
	send_all(fd, "P", 1);
	usleep(100000);
	send_all(fd, "R", 1);
	n_closed += closed(fd, 5000);
	close(fd);
	n_tried++;
	ok(n_closed == n_tried, "%s: %u of %u bad headers (HTTP, no CRLF in 107, port 65536, "
	   "truncated v1 and v2, v2 signature, oversized, short, version 1, dribbled) closed",
	   accept, n_closed, n_tried);
	/* One that never finishes: --proxy-timeout 1. */
	fd = tcp_connect(s->port);
	tap_waiting("a header that never comes is closed at --proxy-timeout");
	ok(fd != -1 && closed(fd, 10000), "%s: a connection that sends nothing is closed at "
	   "--proxy-timeout", accept);
	close(fd);
	ok(echoes(keep, 'K'), "%s: ... and the older connection still echoes", accept);
	close(keep);
	report(s, workers);
	ok(reported(s, " invalid ") == 7 && reported(s, " partial ") == 3 &&
	   reported(s, " timeout ") == 1, "%s: counted by reason: invalid %u (7), partial %u (3), "
	   "timeout %u (1)", accept, reported(s, " invalid "), reported(s, " partial "),
	   reported(s, " timeout "));
}

static void one_strategy(const char *accept)
{
	const char *args[] = { "-t", "2", "--accept", accept, "--proxy-protocol",
			       "--max-conns-per-ip", "2", "--proxy-timeout", "1", NULL };
	struct srv s;
	unsigned char b[32];
	int fd;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver --proxy-protocol");
	byte_exact(&s, accept);
	per_source(&s, accept);
	/* LOCAL: the balancer's own health check, served as itself. */
	memcpy(b, sig, 12);
	b[12] = 0x20;
	b[13] = b[14] = b[15] = 0;
	fd = open_with(s.port, b, 16, NULL);
	ok(echoes(fd, 'h'), "%s: a v2 LOCAL header (a health check) is served", accept);
	close(fd);
	bad_headers(&s, accept, 2);
	ok(reported(&s, " local ") == 1 && reported(&s, "headers v1 ") >= 12 &&
	   reported(&s, " v2 ") >= 2, "%s: headers counted: v1 %u, v2 %u, LOCAL %u (1)", accept,
	   reported(&s, "headers v1 "), reported(&s, " v2 "), reported(&s, " local "));
	ok(srv_stop(&s, SIGTERM, 10000) == 0, "%s: SIGTERM: exit 0", accept);
	unlink(s.err_path);
}

int main(void)
{
	const char *from_args[] = { "--proxy-protocol", "--proxy-from", "10.0.0.0/8", "-t", "1",
				    NULL };
	const char *stop_args[] = { "--proxy-protocol", "--proxy-timeout", "3600", "--grace",
				    "3600", NULL };
	unsigned n = 0;
	struct srv s;
	int fd, served, dropped = 0, lines, allowed;
	uint64_t start_ms;

	tap_watchdog(240);
	tap_on_watchdog(harness_kill_children);
	signal(SIGPIPE, SIG_IGN);
	while (mts_accept_name(n) != NULL)
		n++;
	tap_plan((int)n * 13 + 5);
	for (unsigned i = 0; i < n; i++)
		one_strategy(mts_accept_name(i));

	/* A sender --proxy-from does not name. */
	if (srv_start(&s, false, from_args) != 0)
		bail("cannot start echoserver --proxy-from");
	start_ms = now_ms();	/* before the first drop, whose line counts below */
	fd = open_v1(s.port, "192.0.2.1", NULL);
	ok(fd != -1 && closed(fd, 5000), "--proxy-from 10.0.0.0/8: a header from 127.0.0.1 "
	   "is refused, its connection closed");
	close(fd);
	report(&s, 1);
	ok(reported(&s, "dropped: source ") == 1 && srv_stderr_has(&s, "not one --proxy-from"),
	   "... counted (source %u) and logged with its sender", reported(&s, "dropped: source "));
	/* Thirty more: each counted, but a worker logs such a drop at most
	 * once per 10 s (the log's bound, not the machine's speed: the
	 * allowance grows with the time the thirty took). */
	for (int i = 0; i < 30; i++) {
		fd = open_v1(s.port, "192.0.2.1", NULL);
		dropped += fd != -1 && closed(fd, 5000);
		close(fd);
	}
	lines = srv_stderr_count(&s, "closed a connection from");
	allowed = 1 + (int)((now_ms() - start_ms) / 10000);
	kill(s.pid, SIGUSR1);	/* a second report: `reported` sums both */
	for (int i = 0; i < 100 && srv_stderr_count(&s, "proxy headers v1") < 2; i++)
		usleep(50000);
	ok(dropped == 30 && reported(&s, "dropped: source ") == 1 + 31 && lines <= allowed,
	   "30 more from that sender: all closed (%d) and counted (source %u in the second report), "
	   "but logged %d times (at most %d: once per 10 s)", dropped,
	   reported(&s, "dropped: source ") - 1, lines, allowed);
	srv_stop(&s, SIGTERM, 5000);
	unlink(s.err_path);

	/* A stop does not wait for a header: with an hour for the header and
	 * an hour of grace, a connection that sends nothing must not hold
	 * the stop (the bound below is 10 s). */
	if (srv_start(&s, false, stop_args) != 0)
		bail("cannot start echoserver --proxy-timeout 3600");
	fd = tcp_connect(s.port);
	served = open_v1(s.port, "192.0.2.1", NULL);
	ok(echoes(served, 's'), "a server with an hour of --proxy-timeout and of --grace serves");
	close(served);		/* else its lingering close would wait the hour */
	tap_waiting("SIGTERM with a connection waiting for its header");
	ok(srv_stop(&s, SIGTERM, 10000) == 0, "SIGTERM with a connection waiting for its header: "
	   "exit 0 within 10 s, not after the hour");
	close(fd);
	unlink(s.err_path);
	return tap_done();
}
