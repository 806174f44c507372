/*
 * test_chat.c - examples/chatserver over loopback ($CHATSERVER): every line
 * reaches every other client whatever worker it is on, in order, and never
 * the sender; an over-long line is refused to its sender and nobody else sees
 * any of it; a client that stops reading is disconnected once its queue is
 * full while everyone else gets every line; SIGTERM exits 0.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

int main(void)
{
	const char *args[] = { "-t", "3", "--max-line", "1000", "--max-queue", "65536", "--stall", "1", NULL };
	const char *chat = getenv("CHATSERVER");
	char want[1200];
	struct srv s;
	int greeted = 0;

	signal(SIGPIPE, SIG_IGN);
	if (chat == NULL)
		bail("CHATSERVER is not set (make check sets it)");
	setenv("ECHOSERVER", chat, 1);	/* the harness starts $ECHOSERVER */
	tap_plan(10);
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
	return tap_done();
}
