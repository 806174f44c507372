/*
 * test_echo.c - the real ./echoserver over loopback: correctness under many
 * connections, half-close, resets, clients that never read, in-band "quit",
 * shutdown under load, idle timeout and the connection limit.
 *
 * make check runs it once per dispatch variant (VARIANT.dispatch) and once
 * per other accept strategy (STRATEGY.accept). What goes through the inbox
 * (every connection handed to a worker, the statistics of the wake-ups,
 * the stop and the flush behind it) runs for each; what depends only on
 * the accepting side and the connections (idle memory, the idle timeout,
 * the limits, running out of descriptors) runs for the default variant and
 * for each accept strategy, not again for every variant.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "harness.h"
#include "inbox.h"
#include "tap.h"

/* ---- many connections at once, each verified byte for byte ----------- */

struct mconn {
	int fd;
	unsigned char *data;
	size_t len, sent, recvd;
	bool done, bad;
};

struct mresult {
	unsigned done, mismatched, failed;
};

static int nb_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static void finish(int ep, struct mconn *m)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, m->fd, NULL);
	close(m->fd);
	m->done = true;
}

/*
 * Opens n connections; each sends a random payload of 1..max_len bytes
 * (full duplex) and checks the echo. Bounded by `seconds`.
 */
static void many(int port, unsigned n, size_t max_len, uint64_t seed, int seconds,
		 struct mresult *r)
{
	struct mconn *m = calloc(n, sizeof(*m));
	struct epoll_event evs[256];
	unsigned char buf[65536];
	uint64_t deadline = now_ms() + (uint64_t)seconds * 1000;
	unsigned left = n;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	memset(r, 0, sizeof(*r));
	for (unsigned i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = i };

		m[i].len = max_len > 1 ? 1 + (size_t)(seed % max_len) : 1;
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		m[i].data = malloc(m[i].len);
		fill_random(m[i].data, m[i].len, &seed);
		m[i].fd = nb_connect(port);
		if (m[i].fd == -1 || epoll_ctl(ep, EPOLL_CTL_ADD, m[i].fd, &ev) == -1) {
			m[i].done = m[i].bad = true;
			r->failed++;
			left--;
		}
	}
	while (left > 0 && now_ms() < deadline) {
		int k = epoll_wait(ep, evs, 256, 100);

		for (int e = 0; e < k; e++) {
			struct mconn *c = &m[evs[e].data.u32];
			ssize_t got;

			if (c->done)
				continue;
			if ((evs[e].events & EPOLLOUT) && c->sent < c->len) {
				ssize_t w = send(c->fd, c->data + c->sent, c->len - c->sent, MSG_NOSIGNAL);
				if (w > 0)
					c->sent += (size_t)w;
				else if (w == -1 && errno != EAGAIN && errno != EINTR) {
					c->bad = true;
					r->failed++;
					finish(ep, c);
					left--;
					continue;
				}
				if (c->sent == c->len) {
					struct epoll_event ev = { .events = EPOLLIN,
								  .data.u32 = evs[e].data.u32 };
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (!(evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				continue;
			got = recv(c->fd, buf, sizeof(buf), 0);
			if (got == -1 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0 || c->recvd + (size_t)got > c->len) {
				c->bad = true;
				r->failed++;
				finish(ep, c);
				left--;
				continue;
			}
			if (memcmp(buf, c->data + c->recvd, (size_t)got) != 0) {
				c->bad = true;
				r->mismatched++;
				finish(ep, c);
				left--;
				continue;
			}
			c->recvd += (size_t)got;
			if (c->recvd == c->len) {
				r->done++;
				finish(ep, c);
				left--;
			}
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (!m[i].done)
			close(m[i].fd);
		free(m[i].data);
	}
	close(ep);
	free(m);
}

/* ---- single-connection checks ----------------------------------------- */

static bool echo_ok(int port, const char *what)
{
	char in[64];
	size_t len = strlen(what);
	int fd = tcp_connect(port);
	bool good;

	if (fd == -1)
		return false;
	good = send_all(fd, what, len) == 0 && recv_all(fd, in, len) == 0 &&
	       memcmp(in, what, len) == 0;
	close(fd);
	return good;
}

static void test_half_close(int port)
{
	size_t len = 200000;
	unsigned char *out = malloc(len), *in = malloc(len + 1);
	uint64_t seed = 42;
	int fd = tcp_connect(port);
	bool sent;

	fill_random(out, len, &seed);
	sent = fd != -1 && send_all(fd, out, len) == 0 && shutdown(fd, SHUT_WR) == 0;
	ok(sent && recv_all(fd, in, len) == 0 && memcmp(in, out, len) == 0,
	   "half-close: all 200000 bytes sent before FIN are echoed");
	ok(sent && recv_wait(fd, in, 1, 20000) == 0, "half-close: then the server closes (EOF)");
	close(fd);
	free(out);
	free(in);
}

static void test_reset(int port)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	size_t len = 1 << 20;
	unsigned char *out = malloc(len);
	uint64_t seed = 7;
	int keep = tcp_connect(port);
	int fd;

	fill_random(out, len, &seed);
	for (int i = 0; i < 20; i++) {
		fd = tcp_connect(port);
		if (fd == -1)
			break;
		send(fd, out, len / 4, MSG_NOSIGNAL);	/* mid-echo ... */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);				/* ... and RST */
	}
	free(out);
	ok(keep != -1 && send_all(keep, "still", 5) == 0, "RST storm: another connection is untouched");
	{
		char in[5];
		ok(recv_all(keep, in, 5) == 0 && memcmp(in, "still", 5) == 0,
		   "RST storm: and it still gets its echo");
	}
	close(keep);
}

static void test_quit(struct srv *s)
{
	int a = tcp_connect(s->port);
	char in[16];

	ok(a != -1 && send_all(a, "quit\r\n", 6) == 0 && recv_all(a, in, 6) == 0 &&
	   memcmp(in, "quit\r\n", 6) == 0, "\"quit\" is echoed like any other bytes");
	ok(send_all(a, "more", 4) == 0 && recv_all(a, in, 4) == 0 && memcmp(in, "more", 4) == 0,
	   "the connection that sent \"quit\" stays open");
	ok(echo_ok(s->port, "others") && srv_alive(s), "other clients are still served");
	close(a);
}

/*
 * A client that sends and never reads: the server must stop reading from it
 * at the high watermark instead of buffering without bound. With `pause`,
 * the server is stopped (SIGSTOP) for 1.5 s once the client has begun to
 * read back, as a loaded machine may leave it off its CPU: the client must
 * go on waiting for the bytes it is owed (it once gave up after a second
 * without data, and failed on a busy machine).
 */
static void test_never_reads(struct srv *s, bool pause)
{
	const size_t cap = 256u << 20, chunk = 65536;
	unsigned char *out = malloc(chunk), *in = malloc(chunk);
	long rss0 = srv_rss_kb(s), rss1;
	uint64_t seed = 99, vseed = 99, stuck_since = 0, deadline = now_ms() + 20000;
	size_t sent = 0, got = 0, pos = 0;
	int fd = tcp_connect(s->port);
	bool verified = true;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	fill_random(out, chunk, &seed);
	/* Send until the connection has been stuck (EAGAIN) for a full second. */
	while (sent < cap && now_ms() < deadline) {
		ssize_t w = send(fd, out + (sent % chunk), chunk - (sent % chunk), MSG_NOSIGNAL);
		if (w > 0) {
			if ((sent + (size_t)w) % chunk == 0) {
				fill_random(out, chunk, &seed);
			}
			sent += (size_t)w;
			stuck_since = 0;
		} else if (stuck_since == 0) {
			stuck_since = now_ms();
		} else if (now_ms() - stuck_since > 1000) {
			break;
		} else {
			usleep(1000);
		}
	}
	rss1 = srv_rss_kb(s);
	diag("never-reading client: %zu bytes accepted before backpressure; server RSS %ld -> %ld kB",
	     sent, rss0, rss1);
	ok(sent < cap && stuck_since != 0, "a client that never reads is stopped by backpressure");
#ifdef SANITIZED
	skip("server memory stays bounded: RSS is not meaningful under sanitizers");
#else
	ok(rss1 - rss0 < 8 * 1024, "server memory stays bounded (+%ld kB)", rss1 - rss0);
#endif
	ok(echo_ok(s->port, "meanwhile"), "other clients are served meanwhile");

	/* Now read it all back: the server resumes and every byte is right.
	 * The client waits for the bytes it is owed, however slowly they come
	 * (a loaded machine may leave either side off its CPU for a while):
	 * only an end of the connection, or the overall bound, stops it. */
	fill_random(out, chunk, &vseed);
	tap_waiting("the never-reading client's bytes, once it reads");
	deadline = now_ms() + 120000;
	while (got < sent && now_ms() < deadline) {
		ssize_t n = recv_wait(fd, in, chunk, 1000);
		if (n == -2 || (n == -1 && (errno == EAGAIN || errno == EINTR)))
			continue;	/* nothing yet */
		if (n <= 0)
			break;		/* EOF or an error: the server ended it */
		if (pause && got == 0) {
			kill(s->pid, SIGSTOP);
			usleep(1500000);
			kill(s->pid, SIGCONT);
		}
		for (ssize_t i = 0; i < n; i++) {
			if (in[i] != out[pos])
				verified = false;
			if (++pos == chunk) {
				fill_random(out, chunk, &vseed);
				pos = 0;
			}
		}
		got += (size_t)n;
	}
	ok(got == sent && verified, "once it reads, all %zu bytes come back intact (%zu)", sent, got);
	close(fd);
	free(out);
	free(in);
}

/* Idle connections that echoed once: what each costs the server. */
static void test_idle_memory(struct srv *s)
{
	enum { N = 4000 };
	static int fds[N];
	long rss0, rss1;
	unsigned opened = 0, echoed = 0;
	char c;

	usleep(200000);
	rss0 = srv_rss_kb(s);
	for (unsigned i = 0; i < N; i++) {
		fds[i] = tcp_connect(s->port);
		if (fds[i] == -1)
			break;
		opened++;
		if (send_all(fds[i], "x", 1) == 0 && recv_all(fds[i], &c, 1) == 0)
			echoed++;
	}
	usleep(200000);
	rss1 = srv_rss_kb(s);
	diag("%u idle connections: server RSS %ld -> %ld kB, %.0f bytes each",
	     opened, rss0, rss1, (rss1 - rss0) * 1024.0 / (opened ? opened : 1));
	ok(opened == N && echoed == N, "%u connections opened and echoed once", echoed);
	/* The target (512 B) is checked by the benchmark; this catches a regression
	 * to per-connection buffers (a bufferevent design costs 1-2 KiB). */
#ifdef SANITIZED
	skip("idle connections cost < 1 KiB each: not measurable under sanitizers");
#else
	ok((rss1 - rss0) * 1024 < (long)N * 1024, "idle connections cost < 1 KiB each");
#endif
	for (unsigned i = 0; i < opened; i++)
		close(fds[i]);
}

/* Stats show every worker took connections, through the chosen variant. */
/* The variants whose posts signal only when they must: the library's
 * table says which (inbox.h). */
static bool eliding(const char *variant)
{
	const struct inbox_ops *v = inbox_variant_find(variant);
	struct inbox_traits t = { .elides = false };

	if (v != NULL)
		inbox_variant_traits(v, &t);
	return t.elides;
}

static void test_spread(struct srv *s, unsigned workers, const char *variant,
			const char *accept)
{
	char needle[32];
	bool all = true;

	kill(s->pid, SIGUSR1);
	usleep(300000);
	for (unsigned i = 0; i < workers; i++) {
		snprintf(needle, sizeof(needle), "w%u: live", i);
		all = all && srv_stderr_has(s, needle);
	}
	ok(all && !srv_stderr_has(s, "accepted 0 "),
	   "SIGUSR1 reports each of the %u workers, and every one took connections", workers);
	/* Without a handoff a worker adopts what it accepted at once: the
	 * latency is real only for handoff (elsewhere it may read 0.0). */
	ok(srv_stderr_count(s, "handoff_us p50 ") == (int)workers &&
	   (strcmp(accept, "handoff") != 0 || !srv_stderr_has(s, "handoff_us p50 0.0 ")),
	   "and each worker's accept-to-worker latency percentiles");
	/*
	 * The eliding variants never send more wake-ups than messages (how
	 * many they save depends on timing: a diagnostic); the others send
	 * exactly one per message and never save any.
	 */
	if (eliding(variant)) {
		unsigned long long accepted, sent, saved, total_saved = 0;
		bool bounded = true;
		char line[1024];
		FILE *f = fopen(s->err_path, "r");
		int seen = 0;

		while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
			const char *p = strstr(line, ": live ");
			if (p == NULL || sscanf(p, ": live %*u accepted %llu bytes_in %*u bytes_out %*u "
					     "wakeups_sent %llu wakeups_saved %llu",
					     &accepted, &sent, &saved) != 3)
				continue;
			seen++;
			total_saved += saved;
			bounded = bounded && sent <= accepted;
		}
		if (f != NULL)
			fclose(f);
		diag("%s: %llu wake-ups saved by elision across workers", variant, total_saved);
		ok(seen == (int)workers && bounded,
		   "%s: no worker got more wake-ups than connections", variant);
	} else
		ok(srv_stderr_count(s, "wakeups_saved 0 ") == (int)workers,
		   "%s: no worker saved a wake-up", variant);
}

/* ---- shutdown under load ---------------------------------------------- */

struct loader {
	int port;
	atomic_bool stop;
	unsigned conns;
	size_t max_len;
};

static void *load_main(void *arg)
{
	struct loader *l = arg;
	struct mresult r;

	while (!atomic_load(&l->stop))
		many(l->port, l->conns, l->max_len, 1234, 2, &r);
	return NULL;
}

/*
 * "stop" arrives while thousands of connections are mid-echo (2000 with up
 * to 64 KiB in flight each) and a storm of short connections (batches of
 * 200 one-byte connections) keeps coming.
 */
static void test_sigterm_under_load(void)
{
	struct srv s;
	struct loader bulk = { .conns = 2000, .max_len = 65536 };
	struct loader storm = { .conns = 200, .max_len = 1 };
	pthread_t t1, t2;
	const char *args[] = { "-t", "4", NULL };
	uint64_t t0;
	int rc;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	bulk.port = storm.port = s.port;
	pthread_create(&t1, NULL, load_main, &bulk);
	pthread_create(&t2, NULL, load_main, &storm);
	usleep(700000);
	t0 = now_ms();
	rc = srv_stop(&s, SIGTERM, 15000);
	ok(rc == 0, "SIGTERM with 2000 connections mid-echo and a connection storm: exit %d "
	   "after %llu ms", rc, (unsigned long long)(now_ms() - t0));
	atomic_store(&bulk.stop, true);
	atomic_store(&storm.stop, true);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	unlink(s.err_path);
}

/*
 * SIGTERM with echo in flight. Clients send megabytes without reading (the
 * server reads until each one's pending echo reaches the high watermark and
 * the socket buffers fill), then the server gets SIGTERM, then they read.
 * Each must get every byte the server echoed, intact, and then EOF: the
 * server flushes, shuts down its write side and reads until the client
 * closes (mts_conn_finish). A plain close with input still unread makes the
 * kernel send a reset, and the reset destroys what the client had not read.
 */
static uint8_t pattern(unsigned client, size_t i)
{
	return (uint8_t)(i * 131 + i / 251 + client * 37);
}

static void test_sigterm_flushes(void)
{
	enum { CLIENTS = 5, MAX_SEND = 16 << 20 };
	const char *args[] = { "-t", "2", "--grace", "30", NULL };
	static uint8_t chunk[65536], in[65536];
	size_t sent[CLIENTS] = { 0 }, got[CLIENTS] = { 0 };
	int fds[CLIENTS], eofs = 0, resets = 0, bad = 0, rc;
	uint64_t total_sent = 0, total_got = 0;
	struct srv s;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	for (int c = 0; c < CLIENTS; c++) {
		struct timeval tv = { 10, 0 };

		fds[c] = tcp_connect(s.port);
		setsockopt(fds[c], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		fcntl(fds[c], F_SETFL, O_NONBLOCK);
	}
	/* Send until nothing more goes in for 300 ms (everything is full). */
	for (uint64_t quiet_since = now_ms(); now_ms() - quiet_since < 300;) {
		for (int c = 0; c < CLIENTS; c++) {
			ssize_t n;

			if (sent[c] >= MAX_SEND)
				continue;
			for (size_t i = 0; i < sizeof(chunk); i++)
				chunk[i] = pattern((unsigned)c, sent[c] + i);
			n = send(fds[c], chunk, sizeof(chunk), MSG_NOSIGNAL);
			if (n > 0) {
				sent[c] += (size_t)n;
				quiet_since = now_ms();
			}
		}
		usleep(1000);
	}
	kill(s.pid, SIGTERM);
	for (int c = 0; c < CLIENTS; c++) {
		ssize_t n;

		fcntl(fds[c], F_SETFL, 0);
		while ((n = recv(fds[c], in, sizeof(in), 0)) > 0) {
			for (ssize_t i = 0; i < n; i++)
				if (in[i] != pattern((unsigned)c, got[c] + (size_t)i))
					bad++;
			got[c] += (size_t)n;
		}
		if (n == 0)
			eofs++;
		else if (errno == ECONNRESET)
			resets++;
		total_sent += sent[c];
		total_got += got[c];
		close(fds[c]);
	}
	rc = srv_stop(&s, SIGTERM, 35000);
	ok(eofs == CLIENTS && bad == 0,
	   "SIGTERM with %d clients that sent %.1f MB without reading: each gets its "
	   "echo intact (%.1f MB, %d bytes wrong) and then EOF (%d EOF, %d reset)",
	   CLIENTS, total_sent / 1e6, total_got / 1e6, bad, eofs, resets);
	ok(rc == 0, "... and the server exits 0 (%d)", rc);
	unlink(s.err_path);
}

/* ---- idle timeout ---------------------------------------------------- */

/*
 * An idle connection is closed, an active one is not. How late the server's
 * timer fires is the machine's business, so the idle one is given as long
 * as it takes (the bound is only against a server that never closes it);
 * the active one sends every 100 ms against a 2 s timeout, so only a
 * client held off its CPU for nearly 2 s would look idle.
 */
static void test_idle_timeout(void)
{
	struct srv s;
	const char *args[] = { "-t", "2", "--idle-timeout", "2", NULL };
	int idle, busy;
	char c;
	bool busy_ok = true;
	ssize_t r = -2;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	idle = tcp_connect(s.port);
	busy = tcp_connect(s.port);
	tap_waiting("the idle connection to be closed, the busy one kept");
	for (int i = 0; i < 300 && r == -2; i++) {	/* at most 30 s */
		busy_ok = busy_ok && send_all(busy, "b", 1) == 0 && recv_all(busy, &c, 1) == 0;
		r = recv_wait(idle, &c, 1, 100);
	}
	ok(r == 0, "--idle-timeout 2: an idle connection is closed (recv %zd)", r);
	ok(busy_ok && send_all(busy, "b", 1) == 0 && recv_all(busy, &c, 1) == 0,
	   "--idle-timeout 2: an active connection stays open");
	close(idle);
	close(busy);
	ok(srv_stop(&s, SIGTERM, 5000) == 0, "idle-timeout server exits 0");
	unlink(s.err_path);
}

/* ---- connections per source address ----------------------------------- */

static bool echoes(int fd)
{
	char c;

	return fd != -1 && send_all(fd, "x", 1) == 0 && recv_all(fd, &c, 1) == 0 && c == 'x';
}

/*
 * --max-conns 4 with slow clients from one address used to hold every slot:
 * a client from another address waited in the backlog for as long as they
 * stayed. With --max-conns-per-ip 2, one address gets two slots; its third
 * connection is closed at once, another address is served, and a slot freed
 * is a slot again. A storm of refused connections is logged in one line.
 */
static void test_max_conns_per_ip(void)
{
	const char *args[] = { "-t", "2", "--max-conns", "4", "--max-conns-per-ip", "2", NULL };
	struct srv s;
	int a[3], b, c, d, refused = 0, lines;
	bool served;
	uint64_t t0 = now_ms();
	ssize_t r;
	char x;

	if (srv_start(&s, false, args) != 0) {
		for (int i = 0; i < 6; i++)
			ok(0, "echoserver --max-conns-per-ip 2 does not start");
		return;
	}
	a[0] = tcp_connect_from(s.port, "127.0.0.2");
	a[1] = tcp_connect_from(s.port, "127.0.0.2");
	ok(echoes(a[0]) && echoes(a[1]), "--max-conns-per-ip 2: two connections from 127.0.0.2 echo");
	a[2] = tcp_connect_from(s.port, "127.0.0.2");
	r = a[2] == -1 ? -3 : recv_wait(a[2], &x, 1, 20000);
	ok(r == 0 || r == -1, "the third from 127.0.0.2 is closed at once (recv %zd)", r);
	b = tcp_connect_from(s.port, "127.0.0.3");
	ok(echoes(b), "a connection from 127.0.0.3 is served (--max-conns 4 still has room)");
	close(a[0]);
	/* The worker releases the slot when it sees the close: until then a
	 * new one is refused. Retried for up to 20 s, not slept on once. */
	for (uint64_t end = now_ms() + 20000;;) {
		c = tcp_connect_from(s.port, "127.0.0.2");
		if ((served = echoes(c)) || now_ms() > end)
			break;
		if (c != -1)
			close(c);
		c = -1;
		usleep(20000);
	}
	ok(served, "once one of 127.0.0.2's connections ends, it may open another");
	/* Each refusal gives its --max-conns slot back: were one kept, the
	 * next connection would wait in the backlog, unrefused, and the first
	 * such wait (20 s at most) ends the storm. */
	for (int i = 0; i < 200; i++) {
		int fd = tcp_connect_from(s.port, "127.0.0.2");

		r = fd == -1 ? -3 : recv_wait(fd, &x, 1, 20000);
		if (r == 0 || r == -1)	/* EOF or reset, not a timeout (-2) */
			refused++;
		if (fd != -1)
			close(fd);
		if (r == -2)
			break;
	}
	lines = srv_stderr_count(&s, "refused a connection");
	d = tcp_connect_from(s.port, "127.0.0.4");
	ok(refused == 200 && lines >= 1 && lines <= 2 + (int)((now_ms() - t0) / 10000) && echoes(d),
	   "200 more from 127.0.0.2 are refused (%d), in %d log line(s); then 127.0.0.4 takes the "
	   "last of the 4 slots (no refusal kept one)", refused, lines);
	if (d != -1)
		close(d);
	close(a[1]);
	close(a[2]);
	close(b);
	close(c);
	ok(srv_stop(&s, SIGTERM, 5000) == 0, "--max-conns-per-ip server exits 0");
	unlink(s.err_path);
}

/* ---- connection limit ------------------------------------------------ */

static void test_max_conns(void)
{
	struct srv s;
	const char *args[] = { "-t", "2", "--max-conns", "2", NULL };
	int a, b, c, d;
	char x;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	a = tcp_connect(s.port);
	b = tcp_connect(s.port);
	ok(send_all(a, "a", 1) == 0 && recv_all(a, &x, 1) == 0 &&
	   send_all(b, "b", 1) == 0 && recv_all(b, &x, 1) == 0, "max-conns 2: two clients served");
	c = tcp_connect(s.port);	/* completes in the kernel backlog */
	send_all(c, "c", 1);
	ok(recv_wait(c, &x, 1, 700) == -2, "max-conns 2: a third waits");
	ok(send_all(a, "A", 1) == 0 && recv_all(a, &x, 1) == 0 && x == 'A',
	   "max-conns 2: existing connections keep working at the limit");
	close(a);
	ok(recv_wait(c, &x, 1, 20000) == 1 && x == 'c', "max-conns 2: a freed slot serves the third");
	d = tcp_connect(s.port);
	send_all(d, "d", 1);
	ok(recv_wait(d, &x, 1, 700) == -2, "max-conns 2: full again, a fourth waits");
	close(b);
	ok(recv_wait(d, &x, 1, 20000) == 1 && x == 'd', "max-conns 2: and is served when a slot frees");
	close(c);
	close(d);
	ok(srv_stop(&s, SIGTERM, 5000) == 0, "max-conns server exits 0");
	unlink(s.err_path);
}

/*
 * A churn at the limit pauses and resumes the acceptor once per connection;
 * the log says so once per 10 s, with counts (it was two lines for every
 * connection: 17,209 lines in 3 s).
 */
static void test_limit_churn(void)
{
	struct srv s;
	const char *args[] = { "-t", "2", "--max-conns", "4", NULL };
	enum { HELD = 3, CHURN = 300 };
	int held[HELD], served = 0, pausing, resuming;
	unsigned more = 0;
	uint64_t t0 = now_ms(), secs;
	char x;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	for (int i = 0; i < HELD; i++)
		held[i] = tcp_connect(s.port);
	for (int i = 0; i < CHURN; i++) {
		int fd = tcp_connect(s.port);

		if (fd != -1 && send_all(fd, "c", 1) == 0 && recv_wait(fd, &x, 1, 20000) == 1)
			served++;
		if (fd != -1)
			close(fd);
	}
	for (int i = 0; i < HELD; i++)
		close(held[i]);
	srv_stop(&s, SIGTERM, 5000);
	secs = (now_ms() - t0) / 1000;
	pausing = srv_stderr_count(&s, "pausing");
	resuming = srv_stderr_count(&s, "resuming");
	/* A churned connection takes the last slot and pauses the acceptor,
	 * unless its close is seen first (often, under sanitizers): at most one
	 * pause each, logged or counted; what was only counted is reported at
	 * the stop. */
	srv_stderr_number_after(&s, "paused at the connection limit ", &more);
	ok(served == CHURN && pausing >= 1 && pausing <= 1 + (int)(secs / 10) &&
	   resuming <= pausing && more >= 1 && (unsigned)pausing + more <= CHURN,
	   "--max-conns 4, %d connections churning through the last slot: all served, %d "
	   "'pausing' and %d 'resuming' lines in %llu s, and %u more pauses reported at the "
	   "stop", served, pausing, resuming, (unsigned long long)secs, more);
	unlink(s.err_path);
}

/* ---- out of file descriptors ---------------------------------------- */

static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL)
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
	fclose(f);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void test_fd_exhaustion(void)
{
	enum { N = 80 };
	struct srv s;
	const char *args[] = { "-t", "2", NULL };
	struct rlimit rl = { 48, 48 };
	int fds[N], served = 0, waiting = 0, late = 0;
	bool was_served[N];
	double cpu0, cpu1;
	char x;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	ok(prlimit(s.pid, RLIMIT_NOFILE, &rl, NULL) == 0, "server's descriptor limit lowered to 48");
	for (int i = 0; i < N; i++) {
		fds[i] = tcp_connect(s.port);	/* the kernel completes them all */
		send_all(fds[i], "e", 1);
	}
	/*
	 * Which are served: every echo that comes, until one has come and
	 * then none for 500 ms (bounded at 20 s). A late echo counted as
	 * "waiting" is harmless: it is read, and counted, once the served
	 * ones are freed below.
	 */
	memset(was_served, 0, sizeof(was_served));
	tap_waiting("the first echoes with the server out of descriptors");
	for (uint64_t end = now_ms() + 20000, quiet = now_ms(); now_ms() < end;) {
		struct pollfd p[N];

		for (int i = 0; i < N; i++)
			p[i] = (struct pollfd){ .fd = was_served[i] ? -1 : fds[i], .events = POLLIN };
		if (poll(p, N, 100) > 0)
			for (int i = 0; i < N; i++)
				if ((p[i].revents & POLLIN) && recv(fds[i], &x, 1, 0) == 1) {
					was_served[i] = true;
					served++;
					quiet = now_ms();
				}
		if (served > 0 && now_ms() - quiet > 500)
			break;
	}
	waiting = N - served;
	cpu0 = cpu_seconds(s.pid);
	usleep(1500000);
	cpu1 = cpu_seconds(s.pid);
	diag("out of descriptors: %d served, %d waiting; %.2f s CPU in 1.5 s", served, waiting,
	     cpu1 - cpu0);
	ok(served > 0 && waiting > 0, "some connections are served, the rest wait");
	ok(cpu1 - cpu0 < 0.15, "it does not spin while out of descriptors (%.2f s CPU)", cpu1 - cpu0);
	ok(srv_stderr_has(&s, "pausing new connections"), "the pause is logged");
	/* Free every served connection: the waiting ones must now be served. */
	for (int i = 0; i < N; i++)
		if (was_served[i])
			close(fds[i]);
	for (int i = 0; i < N; i++) {
		if (was_served[i])
			continue;
		if (recv_wait(fds[i], &x, 1, 20000) == 1)
			late++;
		close(fds[i]);
	}
	ok(late == waiting, "once descriptors free up, the waiting ones are served (%d of %d)",
	   late, waiting);
	ok(srv_stop(&s, SIGTERM, 5000) == 0, "and it still exits 0");
	unlink(s.err_path);
}

/*
 * What to run comes from the first argument, a file named VARIANT.dispatch
 * or STRATEGY.accept (how make check runs this once per dispatch variant and
 * once per accept strategy), or from $DISPATCH and $ACCEPT. Sets the
 * server's extra arguments; returns the dispatch variant.
 */
static const char *pick_variant(int argc, char **argv, const char **accept)
{
	static char name[64];
	const char *base, *env = getenv("DISPATCH");
	char *dot;

	*accept = getenv("ACCEPT") != NULL ? getenv("ACCEPT") : "handoff";
	if (argc < 2)
		return env != NULL ? env : "wfcq";
	base = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
	snprintf(name, sizeof(name), "%s", base);
	if ((dot = strstr(name, ".accept")) != NULL) {
		*dot = '\0';
		*accept = name;
		return "wfcq";
	}
	if ((dot = strstr(name, ".dispatch")) != NULL)
		*dot = '\0';
	return name;
}

int main(int argc, char **argv)
{
	struct srv s;
	struct mresult r;
	const char *args[] = { "-t", "4", NULL };
	const char *accept;
	const char *variant = pick_variant(argc, argv, &accept);
	/* The checks that do not depend on the queue: once per strategy. */
	bool all = strcmp(variant, "wfcq") == 0 || strcmp(accept, "handoff") != 0;

	tap_watchdog(300);
	tap_on_watchdog(harness_kill_children);
	signal(SIGPIPE, SIG_IGN);
	harness_extra_args[0] = "--dispatch";
	harness_extra_args[1] = variant;
	harness_extra_args[2] = "--accept";
	harness_extra_args[3] = accept;
	tap_plan(all ? 48 : 23);
	diag("dispatch variant: %s, accept strategy: %s%s", variant, accept,
	     all ? "" : " (the checks that do not depend on the variant ran with wfcq)");
	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	diag("echoserver pid %d on 127.0.0.1:%d", (int)s.pid, s.port);

	ok(echo_ok(s.port, "hello, world\n"), "a line is echoed");
	if (all)
		test_idle_memory(&s);

	many(s.port, 2000, 32768, 1, 60, &r);
	ok(r.done == 2000 && r.mismatched == 0 && r.failed == 0,
	   "2000 concurrent connections, random payloads: %u verified, %u mismatched, %u failed",
	   r.done, r.mismatched, r.failed);
	many(s.port, 1, 16u << 20, (16u << 20) - 1, 60, &r);
	ok(r.done == 1 && r.mismatched == 0, "one connection, 16 MiB full duplex, verified");
	test_spread(&s, 4, variant, accept);
	test_half_close(s.port);
	test_reset(s.port);
	test_quit(&s);
	test_never_reads(&s, all);
	ok(srv_alive(&s), "the server survived all of it");
	ok(srv_stop(&s, SIGTERM, 10000) == 0, "SIGTERM: exits 0");
	ok(!srv_stderr_has(&s, "warning") && !srv_stderr_has(&s, "error"),
	   "no warnings or errors logged");
	if (getenv("KEEP_LOGS") == NULL)
		unlink(s.err_path);
	else
		diag("server log kept in %s", s.err_path);

	test_sigterm_under_load();
	test_sigterm_flushes();
	if (!all)
		return tap_done();
	test_idle_timeout();
	test_max_conns();
	test_limit_churn();
	test_max_conns_per_ip();
	test_fd_exhaustion();
	return tap_done();
}
