/*
 * test_chat.c - examples/chatserver over loopback ($CHATSERVER): every line
 * reaches every other client whatever worker it is on, in order, and never
 * the sender; an over-long line is refused to its sender and nobody else sees
 * any of it; a client that stops reading is disconnected once its queue is
 * full while everyone else gets every line; SIGTERM exits 0. And what hostile
 * clients found: a flood of empty lines with many slow readers keeps the
 * server's memory within the bound the man page gives; one slow reader
 * costs the others at most --max-lag, is cut, and is told why.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define N 6

struct peer {
	int fd;
	unsigned id;
	char buf[1 << 16];
	size_t have;
};

static struct peer peers[N];

/* The next line from p (without '\n') within ms, or NULL. */
static const char *next_line(struct peer *p, int ms)
{
	static char line[1 << 16];
	uint64_t deadline = now_ms() + (uint64_t)ms;

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->have);
		if (nl != NULL) {
			size_t len = (size_t)(nl - p->buf);
			memcpy(line, p->buf, len);
			line[len] = '\0';
			memmove(p->buf, nl + 1, p->have - len - 1);
			p->have -= len + 1;
			return line;
		}
		if (p->have == sizeof(p->buf))
			return NULL;
		uint64_t now = now_ms();
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		/* Poll at least once, even with no time left (ms == 0). */
		if (poll(&pfd, 1, now < deadline ? (int)(deadline - now) : 0) <= 0) {
			if (now_ms() >= deadline)
				return NULL;
			continue;
		}
		ssize_t n = recv(p->fd, p->buf + p->have, sizeof(p->buf) - p->have, 0);
		if (n <= 0)
			return NULL;
		p->have += (size_t)n;
	}
}

static bool everyone_but(int sender, const char *want)
{
	for (int i = 0; i < N; i++) {
		const char *l;
		if (i == sender)
			continue;
		l = next_line(&peers[i], 3000);
		if (l == NULL || strcmp(l, want) != 0) {
			diag("client %d got '%s', wanted '%s'", i, l ? l : "(nothing)", want);
			return false;
		}
	}
	return true;
}

static void test_slow_receiver(struct srv *s)
{
	enum { LINES = 40000 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->port) };
	int slow = socket(AF_INET, SOCK_STREAM, 0), small = 4096, fast = 1, sender = 0;
	unsigned sent = 0, got = 0, next_seq = 0, order_errors = 0;
	char line[128], *p;
	size_t line_len = 0, line_off = 0;
	uint64_t deadline = now_ms() + 60000;
	char drain[65536];
	ssize_t n;
	bool slow_gone = false;
#ifndef SANITIZED
	long rss0 = srv_rss_kb(s), rss1;
#endif

	/* A client with a tiny receive buffer that never reads. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (connect(slow, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		bail("connect");
	usleep(200000);
	fcntl(peers[sender].fd, F_SETFL, O_NONBLOCK);
	/* Client 0 sends LINES numbered lines; client 1 must get them all, in order. */
	while (got < LINES && now_ms() < deadline) {
		struct pollfd pfd[2] = { { .fd = peers[sender].fd, .events = sent < LINES ? POLLOUT : 0 },
					 { .fd = peers[fast].fd, .events = POLLIN } };
		poll(pfd, 2, 100);
		while (sent < LINES) {
			if (line_off == line_len) {
				line_len = (size_t)snprintf(line, sizeof(line), "%08u %090u\n", sent, 0u);
				line_off = 0;
			}
			n = send(peers[sender].fd, line + line_off, line_len - line_off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			line_off += (size_t)n;
			if (line_off == line_len)
				sent++;
		}
		const char *l;
		while ((l = next_line(&peers[fast], 0)) != NULL) {
			p = strchr(l, ':');
			if (p == NULL || (unsigned)atoi(p + 2) != next_seq) {
				if (order_errors++ == 0)
					diag("client 1, line %u: '%.60s'", next_seq, l);
			}
			next_seq++;
			got++;
		}
	}
#ifndef SANITIZED
	rss1 = srv_rss_kb(s);
#endif
	ok(got == LINES && order_errors == 0,
	   "while one client stops reading, another gets all %d lines in order (%u, %u out of order)",
	   LINES, got, order_errors);
	/* The slow one: drain what reached it; it ends with the notice and EOF. */
	fcntl(slow, F_SETFL, 0);
	{
		struct timeval tv = { 5, 0 };
		setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	while ((n = recv(slow, drain, sizeof(drain), 0)) > 0)
		;
	slow_gone = n == 0 || (n == -1 && errno == ECONNRESET);
	ok(slow_gone, "the client that did not read was disconnected (--stall 1)");
#ifdef SANITIZED
	skip("server memory stays bounded: RSS is not meaningful under sanitizers");
#else
	ok(rss1 - rss0 < 16 * 1024, "server memory stays bounded (+%ld kB for ~4 MB of chat)",
	   rss1 - rss0);
#endif
	close(slow);
	fcntl(peers[sender].fd, F_SETFL, 0);
}

/* ---- hostile clients ---------------------------------------------------- */

static int connect_rcvbuf(int port, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (fd == -1 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		bail("connect");
	return fd;
}

/*
 * The man page's bound on what the server holds beyond an empty server
 * (doc/chatserver.1): workers x (max-queue + 32 KiB), plus, per client
 * sending, (workers + 1) x (max-queue / 2 + 240 KiB) + 20 KiB + max-line,
 * plus 2 KiB per client. Measured as RSS, with 4 MiB for the allocator.
 */
static __attribute__((unused)) long bound_kb(unsigned workers, unsigned clients,
					    unsigned senders)
{
	const long q = 256, line = 4;	/* defaults, in KiB */

	return (long)workers * (q + 32) + (long)senders * ((workers + 1) * (q / 2 + 240) + 20 + line) +
	       (long)clients * 2 + 4096;
}

/*
 * Many slow readers (4 KiB receive buffers, 10 bytes read every 100 ms)
 * and one client sending empty lines as fast as the server takes them.
 * When every queued line cost each reader a 1 KiB buffer chain (libevent's
 * smallest) and the bound counted text, this took the server from 2.4 MB
 * to 2.2 GB in 12 s with 100 readers (after the kernel's socket buffers
 * had filled, about 8 s in).
 */
static __attribute__((unused)) void test_flood_memory(const char *chat, unsigned readers,
						      int seconds)
{
	const char *args[] = { "-t", "2", NULL };
	static char nl[65536], sink[65536];
	struct srv s;
	int *r = calloc(readers, sizeof(int)), flooder;
	long rss0, rss, most = 0, bound = bound_kb(2, readers + 1, 1);
	uint64_t end, next_read = 0, sent = 0;
	unsigned gone = 0;

	setenv("ECHOSERVER", chat, 1);
	if (srv_start(&s, false, args) != 0)
		bail("cannot start chatserver");
	for (unsigned i = 0; i < readers; i++)
		r[i] = connect_rcvbuf(s.port, 4096);
	flooder = connect_rcvbuf(s.port, 0);
	fcntl(flooder, F_SETFL, O_NONBLOCK);
	memset(nl, '\n', sizeof(nl));
	usleep(300000);
	rss0 = srv_rss_kb(&s);
	for (end = now_ms() + (uint64_t)seconds * 1000; now_ms() < end && most < 4 * bound;) {
		struct pollfd p = { .fd = flooder, .events = POLLOUT };
		ssize_t n = send(flooder, nl, sizeof(nl), MSG_NOSIGNAL);

		if (n > 0)
			sent += (uint64_t)n;
		else
			poll(&p, 1, 20);
		while (recv(flooder, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		if (now_ms() >= next_read) {
			for (unsigned i = 0; i < readers; i++)
				(void)!recv(r[i], sink, 10, MSG_DONTWAIT);
			rss = srv_rss_kb(&s) - rss0;
			if (rss > most)
				most = rss;
			next_read = now_ms() + 100;
		}
	}
	for (unsigned i = 0; i < readers; i++) {
		ssize_t n;

		while ((n = recv(r[i], sink, sizeof(sink), MSG_DONTWAIT)) > 0)
			;
		gone += n == 0;
		close(r[i]);
	}
	ok(most <= bound, "%u slow readers and an empty-line flood for %d s: the server grew by "
	   "%ld kB at most, within the bound of %ld kB (%.0f MB of lines sent, %u readers cut)",
	   readers, seconds, most, bound, sent / 1e6, gone);
	close(flooder);
	srv_stop(&s, SIGTERM, 20000);
	unlink(s.err_path);
	free(r);
}

struct flow {
	int port, fd;
	atomic_bool stop;
	atomic_uint_fast64_t lines;
};

/* A reader that reads as fast as it can, counting lines. */
static void *fast_main(void *arg)
{
	struct flow *f = arg;
	static char buf[1 << 16];

	while (!atomic_load(&f->stop)) {
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		if ((n = recv(f->fd, buf, sizeof(buf), 0)) <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n')
				atomic_fetch_add_explicit(&f->lines, 1, memory_order_relaxed);
	}
	return NULL;
}

/* A sender of 32-byte lines, as fast as the server takes them. */
static void *sender_main(void *arg)
{
	struct flow *f = arg;
	static char buf[65536], sink[4096];
	int fd = connect_rcvbuf(f->port, 0);

	for (size_t i = 0; i < sizeof(buf); i += 32)
		memcpy(buf + i, "0123456789abcdefghijklmnopqrstu\n", 32);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (!atomic_load(&f->stop)) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) < 0)
			poll(&p, 1, 20);
		while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
	}
	close(fd);
	return NULL;
}

/* Lines per second the fast reader got while a sender flooded for ms. */
static double phase(struct flow *fast, int port, int slow, uint64_t ms)
{
	struct flow snd = { .port = port };
	char buf[200];
	pthread_t t;
	uint64_t t0, lines0;

	pthread_create(&t, NULL, sender_main, &snd);
	lines0 = atomic_load(&fast->lines);
	t0 = now_ms();
	while (now_ms() - t0 < ms) {
		if (slow >= 0)
			(void)!recv(slow, buf, sizeof(buf), MSG_DONTWAIT);	/* 2 KB/s */
		usleep(100000);
	}
	double rate = (atomic_load(&fast->lines) - lines0) * 1000.0 / (double)(now_ms() - t0);
	atomic_store(&snd.stop, true);
	pthread_join(t, NULL);
	return rate;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * One slow reader costs the others at most --max-lag, once. A fast reader's
 * rate while a sender floods, in phases of 1.5 s: alone, then with a 2 KB/s
 * reader (a new one each time), alternately, A B A B ... A (five B). Each B
 * against the mean of the A on either side; the median of the five ratios
 * must be at least one half: interleaving and the median keep a shared machine's
 * noise out (this machine moves a phase's rate by 3x under load). With
 * --max-lag 100 the slow reader costs a B phase about 0.3 s (the lag and a
 * sweep). When senders waited for the slowest reader, the fast one got 0.1%
 * of its rate for as long as the slow one stayed. After its phase each slow
 * reader drains what reached it, and finds why it was cut, then EOF.
 */
/* Reads a cut-off reader to its end: 1 if it was told why, then got EOF. */
static int told_then_eof(int fd, char *all)
{
	struct timeval tv = { 5, 0 };
	char buf[65536];
	size_t have = 0;
	ssize_t n;
	uint64_t end = now_ms() + 5000;	/* a reader never cut would read forever */

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0 && now_ms() < end) {
		size_t keep = (size_t)n < (4u << 20) - have ? (size_t)n : (4u << 20) - have;

		memcpy(all + have, buf, keep);
		have += keep;
	}
	close(fd);
	return n == 0 && memmem(all, have, "* disconnected: send queue exceeded", 35) != NULL;
}

static void test_slow_reader(const char *chat)
{
	enum { PAIRS = 5 };
	const char *args[] = { "-t", "2", "--max-lag", "100", NULL };
	struct flow fast = { 0 };
	struct srv s;
	pthread_t t;
	double alone[PAIRS + 1], with[PAIRS], ratio[PAIRS];
	int slow[PAIRS], told = 0;
	char *all = malloc(4 << 20);

	setenv("ECHOSERVER", chat, 1);
	if (srv_start(&s, false, args) != 0)
		bail("cannot start chatserver");
	fast.port = s.port;
	fast.fd = connect_rcvbuf(s.port, 0);
	pthread_create(&t, NULL, fast_main, &fast);
	usleep(200000);
	alone[0] = phase(&fast, s.port, -1, 1500);
	for (int i = 0; i < PAIRS; i++) {
		slow[i] = connect_rcvbuf(s.port, 4096);
		usleep(100000);
		with[i] = phase(&fast, s.port, slow[i], 1500);
		/* At once: a notice left unread for --stall (10 s) is dropped
		 * with the connection. */
		told += told_then_eof(slow[i], all);
		alone[i + 1] = phase(&fast, s.port, -1, 1500);
		ratio[i] = with[i] / ((alone[i] + alone[i + 1]) / 2);
		diag("a fast reader: %.0f lines/s with a 2 KB/s reader, %.0f and %.0f alone: %.2f",
		     with[i], alone[i], alone[i + 1], ratio[i]);
	}
	qsort(ratio, PAIRS, sizeof(ratio[0]), cmp_double);
	ok(ratio[PAIRS / 2] >= 0.5,
	   "a fast reader keeps %.0f%% of its rate while a 2 KB/s reader is present (median "
	   "of %d interleaved pairs; at least half is required)", 100 * ratio[PAIRS / 2], PAIRS);
	ok(told == PAIRS, "each slow reader is told why it was cut off, then gets EOF (%d of %d)",
	   told, PAIRS);
	atomic_store(&fast.stop, true);
	pthread_join(t, NULL);
	close(fast.fd);
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
	free(all);
}

/*
 * SIGTERM in the middle of a flood: batches are on their way to workers
 * that stop before they get to them. Each posted call ends in one of ran or
 * cancelled (mtserver.h), so the cancelled deliveries release their batches
 * and senders. Under ASan, LeakSanitizer turns a leak into a non-zero exit
 * status; it reported the batches and the senders before calls could be
 * cancelled.
 */
static void test_stop_mid_flood(const char *chat)
{
	const char *args[] = { "-t", "3", NULL };
	static char lines[65536], sink[65536];
	struct srv s;
	int readers[4], flooders[2], rc;
	uint64_t end;

	setenv("ECHOSERVER", chat, 1);
	if (srv_start(&s, false, args) != 0)
		bail("cannot start chatserver");
	for (size_t i = 0; i < sizeof(lines); i += 16)
		memcpy(lines + i, "0123456789abcde\n", 16);
	for (int i = 0; i < 4; i++) {
		readers[i] = connect_rcvbuf(s.port, 0);
		fcntl(readers[i], F_SETFL, O_NONBLOCK);
	}
	for (int i = 0; i < 2; i++) {
		flooders[i] = connect_rcvbuf(s.port, 0);
		fcntl(flooders[i], F_SETFL, O_NONBLOCK);
	}
	for (end = now_ms() + 500; now_ms() < end;) {
		for (int i = 0; i < 2; i++) {
			(void)!send(flooders[i], lines, sizeof(lines), MSG_NOSIGNAL);
			while (recv(flooders[i], sink, sizeof(sink), 0) > 0)
				;
		}
		for (int i = 0; i < 4; i++)
			while (recv(readers[i], sink, sizeof(sink), 0) > 0)
				;
	}
	rc = srv_stop(&s, SIGTERM, 20000);
	ok(rc == 0, "SIGTERM in the middle of a flood: exits 0 (%d; under ASan, no leak)", rc);
	if (rc != 0)
		diag("server log: %s", s.err_path);
	else
		unlink(s.err_path);
	for (int i = 0; i < 4; i++)
		close(readers[i]);
	for (int i = 0; i < 2; i++)
		close(flooders[i]);
}

/*
 * A client that sends only over-long lines and reads nothing: each line
 * earns an error notice, but once its socket is full what waits for it is
 * bounded (about 1 KiB, then one "too many errors"), not a notice per line
 * (27,000 lines here: about 950 KB held for a client that reads nothing).
 */
static void test_error_notices(const char *chat)
{
	const char *args[] = { "--max-line", "8", NULL };
	enum { LINES = 27000 };
	static char lines[LINES * 11], got[4 << 20];
	size_t have = 0;
	ssize_t n;
	int fd, notices = 0;
	struct srv s;

	setenv("ECHOSERVER", chat, 1);
	if (srv_start(&s, false, args) != 0)
		bail("cannot start chatserver");
	fd = connect_rcvbuf(s.port, 4096);
	for (size_t i = 0; i < LINES; i++)
		memcpy(lines + i * 11, "0123456789\n", 11);	/* over --max-line 8 */
	send_all(fd, lines, sizeof(lines));
	usleep(500000);
	while (have < sizeof(got) - 1 &&
	       (n = recv_wait(fd, got + have, sizeof(got) - 1 - have, 500)) > 0)
		have += (size_t)n;
	got[have] = '\0';
	for (const char *p = got; (p = strstr(p, "line too long")) != NULL; p++)
		notices++;
	ok(notices >= 1 && notices < LINES / 2 && strstr(got, "too many errors") != NULL,
	   "%d over-long lines, none read meanwhile: %d notices reach the client, then "
	   "'too many errors'", LINES, notices);
	close(fd);
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
}

/*
 * Small things: a --max-line that does not fit in --max-queue is refused
 * (a reader would be cut off by one long line); SIGHUP is the graceful stop;
 * the library's log lines name this program, not echoserver.
 */
static void test_small_things(const char *chat)
{
	const char *too_long[] = { "--max-line", "65536", "--max-queue", "65536", NULL };
	char out[4096];
	struct srv s;
	int rc;

	setenv("ECHOSERVER", chat, 1);
	rc = run_capture(too_long, out, sizeof(out), 5000);
	ok(rc == 2 && strstr(out, "--max-line") != NULL && strstr(out, "--max-queue") != NULL,
	   "--max-line 65536 --max-queue 65536: exit %d, naming both", rc);
	signal(SIGHUP, SIG_DFL);	/* not inherited as ignored (nohup) */
	if (srv_start(&s, false, NULL) != 0)
		bail("cannot start chatserver");
	rc = srv_stop(&s, SIGHUP, 10000);
	ok(rc == 0, "SIGHUP: a graceful stop, exit %d", rc);
	ok(srv_stderr_has(&s, "chatserver[main]") && !srv_stderr_has(&s, "echoserver["),
	   "its log lines say chatserver[main], never echoserver[");
	unlink(s.err_path);

	/* Started with SIGHUP ignored (nohup), it keeps ignoring it. */
	signal(SIGHUP, SIG_IGN);
	rc = srv_start(&s, false, NULL);
	signal(SIGHUP, SIG_DFL);
	if (rc != 0)
		bail("cannot start chatserver");
	kill(s.pid, SIGHUP);
	usleep(200000);
	ok(srv_alive(&s), "started with SIGHUP ignored (nohup): SIGHUP is still ignored");
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
}

int main(void)
{
	const char *args[] = { "-t", "3", "--max-line", "1000", "--max-queue", "65536", "--stall", "1", NULL };
	const char *chat = getenv("CHATSERVER");
	char want[1200];
	struct srv s;
	int greeted = 0;

	tap_watchdog(300);
	tap_on_watchdog(harness_kill_children);
	signal(SIGPIPE, SIG_IGN);
	if (chat == NULL)
		bail("CHATSERVER is not set (make check sets it)");
	setenv("ECHOSERVER", chat, 1);	/* the harness starts $ECHOSERVER */
	tap_plan(15 + 5);
	if (srv_start(&s, false, args) != 0)
		bail("cannot start chatserver");
	ok(strstr(s.banner, "chatserver: listening on 127.0.0.1:") != NULL,
	   "prints 'chatserver: listening on 127.0.0.1:%d'", s.port);

	for (int i = 0; i < N; i++) {
		const char *l;
		peers[i].fd = tcp_connect(s.port);
		l = next_line(&peers[i], 3000);
		if (l != NULL && sscanf(l, "* you are #%u", &peers[i].id) == 1)
			greeted++;
	}
	ok(greeted == N, "%d clients connected and were told their ids", greeted);

	send_all(peers[0].fd, "hello\n", 6);
	snprintf(want, sizeof(want), "#%u: hello", peers[0].id);
	ok(everyone_but(0, want), "a line reaches every other client, on every worker");
	ok(next_line(&peers[0], 300) == NULL, "and not its sender");

	/* Pieces, CR LF, several lines in one write. */
	send_all(peers[2].fd, "a\nb\r\nc", 6);
	usleep(50000);
	send_all(peers[2].fd, "d\n", 2);
	{
		bool all = true;
		const char *parts[] = { "a", "b", "cd" };
		for (int k = 0; k < 3; k++) {
			snprintf(want, sizeof(want), "#%u: %s", peers[2].id, parts[k]);
			all = all && everyone_but(2, want);
		}
		ok(all, "lines split across writes, several per write, CR LF: all in order");
	}

	/* 5000 bytes without a newline, limit 1000. */
	{
		static char big[5001];
		const char *l;
		memset(big, 'x', 5000);
		send_all(peers[3].fd, big, 5000);
		send_all(peers[3].fd, "\nafter\n", 7);
		l = next_line(&peers[3], 3000);
		snprintf(want, sizeof(want), "#%u: after", peers[3].id);
		ok(l != NULL && strstr(l, "line too long") != NULL && everyone_but(3, want),
		   "an over-long line: its sender is told, nobody sees any of it, the next line flows");
	}

	test_slow_receiver(&s);
	ok(srv_stop(&s, SIGTERM, 10000) == 0, "SIGTERM: exits 0");
	for (int i = 0; i < N; i++)
		close(peers[i].fd);
	unlink(s.err_path);

#ifdef SANITIZED
	skip("memory under an empty-line flood: RSS is not meaningful under sanitizers");
	skip("the same with 300 readers: RSS is not meaningful under sanitizers");
#else
	test_flood_memory(chat, 100, 12);
	test_flood_memory(chat, 300, 6);
#endif
	test_slow_reader(chat);
	test_stop_mid_flood(chat);
	test_small_things(chat);
	test_error_notices(chat);
	return tap_done();
}
