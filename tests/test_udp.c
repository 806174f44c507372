/*
 * test_udp.c - UDP echo (--udp), through ./echoserver over loopback:
 *
 * - every payload comes back whole, from the address and port it was sent
 *   to (with a wildcard bind too): 0, 1, 1472 and 65507 bytes over IPv4 (empty, one byte, the most
 *   one Ethernet frame carries, the most UDP carries), 0, 1, 1452 and
 *   65527 over IPv6; under 1, 2 and 4 workers;
 * - no loss at a modest rate: 20 senders, 100 datagrams each, 8 in flight;
 * - the guards drop, and count, exactly what they should: guarded source
 *   ports (port 0 through a raw socket, 7, 19, 53, 123, 11211 bound as
 *   root; skipped when not root), --udp-max, --udp-rate per source while
 *   another source is answered, with SIGUSR1's counts adding up;
 * - a flood from one source does not stop another being answered;
 * - SIGTERM while datagrams flow: exit 0.
 * Every wait is bounded; nothing here times the machine (the rate check
 * allows what the rate allows over the time the test took).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

/* A UDP socket bound to src:sport (sport 0: any), or -1 (errno kept). */
static int udp_socket(int family, const char *src, int sport)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1, err;

	if (fd == -1)
		return -1;
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)sport);
		inet_pton(AF_INET, src, &in->sin_addr);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)sport);
		inet_pton(AF_INET6, src, &in6->sin6_addr);
		len = sizeof(*in6);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static void to_server(int family, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, "127.0.0.1", &in->sin_addr);
		*len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, "::1", &in6->sin6_addr);
		*len = sizeof(*in6);
	}
}

static int send_to(int fd, int family, int port, const void *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len;

	to_server(family, port, &ss, &len);
	return sendto(fd, buf, n, 0, (struct sockaddr *)&ss, len) == (ssize_t)n ? 0 : -1;
}

/* One datagram within ms: its length, its sender in *from; -2 on time-out. */
static ssize_t recv_dgram(int fd, void *buf, size_t cap, int ms, struct sockaddr_storage *from)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	socklen_t len = sizeof(*from);

	if (poll(&p, 1, ms) <= 0)
		return -2;
	return recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)from, &len);
}

static bool from_server(const struct sockaddr_storage *from, int family, int port)
{
	struct sockaddr_storage want;
	socklen_t len;

	to_server(family, port, &want, &len);
	if (from->ss_family != family)
		return false;
	if (family == AF_INET)
		return memcmp(&((struct sockaddr_in *)from)->sin_addr,
			      &((struct sockaddr_in *)&want)->sin_addr, 4) == 0 &&
		       ((struct sockaddr_in *)from)->sin_port == htons((uint16_t)port);
	return memcmp(&((struct sockaddr_in6 *)from)->sin6_addr,
		      &((struct sockaddr_in6 *)&want)->sin6_addr, 16) == 0 &&
	       ((struct sockaddr_in6 *)from)->sin6_port == htons((uint16_t)port);
}

/* ---- SIGUSR1's counts ------------------------------------------------------ */

struct udp_counts {
	unsigned long long received, answered, truncated, source, destination, rate, send;
};

/* The sum over the workers of the last report's "udp" lines; asks for a
 * report. False if none came within 5 s. */
static bool report(const struct srv *s, unsigned workers, struct udp_counts *c)
{
	static const char needle[] = ": udp received ";
	int before = srv_stderr_count(s, needle);
	uint64_t deadline = now_ms() + 5000;
	const char *t, *p;
	int seen = 0;

	kill(s->pid, SIGUSR1);
	while (srv_stderr_count(s, needle) < before + (int)workers && now_ms() < deadline)
		usleep(10000);
	if (srv_stderr_count(s, needle) < before + (int)workers || (t = srv_stderr_text(s)) == NULL)
		return false;
	*c = (struct udp_counts){ 0 };
	for (p = t; (p = strstr(p, needle)) != NULL; p++) {
		struct udp_counts one;

		if (seen++ < before)
			continue;
		if (sscanf(p, ": udp received %llu answered %llu; dropped: truncated %llu "
			   "source %llu destination %llu rate %llu send %llu", &one.received,
			   &one.answered, &one.truncated, &one.source, &one.destination, &one.rate,
			   &one.send) != 7)
			return false;
		c->received += one.received;
		c->answered += one.answered;
		c->truncated += one.truncated;
		c->source += one.source;
		c->destination += one.destination;
		c->rate += one.rate;
		c->send += one.send;
	}
	return true;
}

/* Reports until `received` reaches want (the server has read them all),
 * bounded by 10 s. */
static bool report_when_read(const struct srv *s, unsigned workers, unsigned long long want,
			     struct udp_counts *c)
{
	uint64_t deadline = now_ms() + 10000;

	while (report(s, workers, c) && c->received < want && now_ms() < deadline)
		usleep(50000);
	return c->received >= want;
}

/* ---- every size, both families ------------------------------------------- */

/* Sends n random bytes, up to `tries` times (UDP may lose one), each
 * waiting up to ms for the answer: true when it came back whole, from the
 * server's address. */
static bool try_round_trip(int fd, int family, int port, size_t n, uint64_t *seed, int tries,
			   int ms)
{
	static unsigned char out[65536], in[65536];
	struct sockaddr_storage from;
	ssize_t got;

	fill_random(out, n, seed);
	while (tries-- > 0) {
		uint64_t deadline = now_ms() + (uint64_t)ms;

		if (send_to(fd, family, port, out, n) != 0)
			return false;
		/* An answer to an earlier try, late, is not this one's: read on. */
		while (now_ms() < deadline &&
		       (got = recv_dgram(fd, in, sizeof(in), (int)(deadline - now_ms()) + 1,
					 &from)) >= 0)
			if ((size_t)got == n && memcmp(in, out, n) == 0)
				return from_server(&from, family, port);
	}
	return false;
}

static bool round_trip(int fd, int family, int port, size_t n, uint64_t *seed)
{
	return try_round_trip(fd, family, port, n, seed, 3, 2000);
}

static void sizes(unsigned workers)
{
	static const size_t v4[] = { 0, 1, 1472, 65507 }, v6[] = { 0, 1, 1452, 65527 };
	char t[8];
	const char *args[] = { "--udp", "-t", t, "-l", "127.0.0.1", "-l", "::1", "-p", "0", NULL };
	uint64_t seed = workers;
	bool ok4 = true, ok6 = true, have6;
	struct srv s;
	int fd;

	snprintf(t, sizeof(t), "%u", workers);
	if (srv_start(&s, true, args) != 0)
		bail("cannot start echoserver --udp");
	fd = udp_socket(AF_INET, "127.0.0.1", 0);
	for (size_t i = 0; i < 4; i++)
		ok4 = ok4 && round_trip(fd, AF_INET, s.port, v4[i], &seed);
	close(fd);
	ok(ok4, "-t %u: datagrams of 0, 1, 1472 and 65507 bytes over IPv4 come back whole, "
	   "from the address and port they were sent to", workers);
	have6 = strstr(s.banner, "[::1]") != NULL;
	fd = have6 ? udp_socket(AF_INET6, "::1", 0) : -1;
	for (size_t i = 0; fd != -1 && i < 4; i++)
		ok6 = ok6 && round_trip(fd, AF_INET6, s.port, v6[i], &seed);
	if (fd != -1)
		close(fd);
	if (have6)
		ok(ok6, "-t %u: 0, 1, 1452 and 65527 bytes over IPv6, whole", workers);
	else
		skip("-t %u: no IPv6 on this host", workers);
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
}

/*
 * Bound to the wildcard, the server answers from the address each datagram
 * was sent to: a client connected to 127.0.0.2 (whose kernel drops a
 * datagram from any other address) gets its answer. Without IP_PKTINFO
 * the answer would leave from 127.0.0.1, the route's choice. Only
 * loopback traffic: the wildcard socket lives for this check alone.
 */
static void answers_from_destination(void)
{
	const char *args[] = { "--udp", "-t", "1", "-l", "0.0.0.0", "-p", "0", NULL };
	struct sockaddr_in to = { .sin_family = AF_INET };
	char b[8];
	struct srv s;
	int fd;

	if (srv_start(&s, true, args) != 0)
		bail("cannot start echoserver --udp -l 0.0.0.0");
	fd = udp_socket(AF_INET, "127.0.0.1", 0);
	to.sin_port = htons((uint16_t)s.port);
	inet_pton(AF_INET, "127.0.0.2", &to.sin_addr);
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0 || send(fd, "where", 5, 0) != 5)
		bail("cannot send to 127.0.0.2");
	ok(recv_wait(fd, b, sizeof(b), 2000) == 5 && memcmp(b, "where", 5) == 0,
	   "-l 0.0.0.0: a datagram sent to 127.0.0.2 is answered from 127.0.0.2 (a client "
	   "connected there gets it)");
	close(fd);
	/* To the loopback network's broadcast address: not answered (an
	 * answer to every host that heard it would be an amplifier). And
	 * from the server's own port: not answered (two such servers would
	 * answer each other for ever). */
	{
		struct sockaddr_in bc = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s.port) };
		int on = 1, own = udp_socket(AF_INET, "127.0.0.5", s.port);
		struct udp_counts c;
		unsigned answered = 0;

		fd = udp_socket(AF_INET, "127.0.0.1", 0);
		setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof(on));
		inet_pton(AF_INET, "127.255.255.255", &bc.sin_addr);
		if (sendto(fd, "all", 3, 0, (struct sockaddr *)&bc, sizeof(bc)) != 3 || own == -1 ||
		    send_to(own, AF_INET, s.port, "loop", 4) != 0)
			bail("cannot send to 127.255.255.255, or from the server's port");
		if (!report_when_read(&s, 1, 3, &c))
			bail("the server never read the datagrams");
		answered += recv_wait(fd, b, sizeof(b), 0) > 0;
		answered += recv_wait(own, b, sizeof(b), 0) > 0;
		ok(c.destination == 1 && c.source == 1 && c.answered == 1 && answered == 0,
		   "one sent to 127.255.255.255 and one from the server's own port %d: neither "
		   "answered (%u), counted as destination (%llu) and source (%llu)", s.port,
		   answered, c.destination, c.source);
		close(fd);
		close(own);
	}
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
}

/* Without --udp, no UDP: a connected socket's datagram to the port meets
 * the kernel's "port unreachable" (ECONNREFUSED at once, no wait). */
static void off_by_default(void)
{
	struct sockaddr_storage to;
	socklen_t len;
	struct srv s;
	char b[4];
	int fd, err = 0;

	if (srv_start(&s, false, NULL) != 0)
		bail("cannot start echoserver");
	fd = udp_socket(AF_INET, "127.0.0.1", 0);
	to_server(AF_INET, s.port, &to, &len);
	if (connect(fd, (struct sockaddr *)&to, len) != 0 || send(fd, "hi", 2, 0) != 2)
		bail("cannot send a datagram");
	if (recv_wait(fd, b, sizeof(b), 2000) == -1)
		err = errno;
	ok(err == ECONNREFUSED, "without --udp, no UDP: a datagram to the port is refused by "
	   "the kernel, no socket being there (%s)", strerror(err));
	close(fd);
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
}

/* ---- no loss at a modest rate -------------------------------------------- */

enum { SENDERS = 20, EACH = 100, WINDOW = 8 };

/* Sender i's datagram k: its number and a pattern, 64 bytes. */
static void payload(unsigned i, unsigned k, unsigned char *b)
{
	for (unsigned j = 0; j < 64; j++)
		b[j] = (unsigned char)(i * 31 + k * 7 + j);
	memcpy(b, &k, sizeof(k));
}

static void no_loss(void)
{
	const char *args[] = { "--udp", "--udp-rate", "0", "-t", "2", NULL };
	unsigned sent[SENDERS] = { 0 }, got[SENDERS] = { 0 }, bad = 0, total = 0;
	unsigned char b[64], want[64];
	int fd[SENDERS];
	uint64_t deadline;
	struct srv s;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver --udp");
	for (unsigned i = 0; i < SENDERS; i++)
		if ((fd[i] = udp_socket(AF_INET, "127.0.0.1", 0)) == -1)
			bail("cannot open a UDP socket");
	tap_waiting("20 senders, 100 datagrams each");
	for (deadline = now_ms() + 30000; total < SENDERS * EACH && now_ms() < deadline;) {
		for (unsigned i = 0; i < SENDERS; i++) {
			struct sockaddr_storage from;
			unsigned k;

			while (sent[i] < EACH && sent[i] - got[i] < WINDOW) {
				payload(i, sent[i], b);
				if (send_to(fd[i], AF_INET, s.port, b, sizeof(b)) != 0)
					break;
				sent[i]++;
			}
			if (recv_dgram(fd[i], b, sizeof(b), 1, &from) != (ssize_t)sizeof(b))
				continue;
			memcpy(&k, b, sizeof(k));
			payload(i, k, want);
			bad += k != got[i] || memcmp(b, want, sizeof(b)) != 0;
			got[i]++;
			total++;
		}
	}
	ok(total == SENDERS * EACH && bad == 0, "-t 2: 20 senders, 100 datagrams each, 8 in "
	   "flight: all %u answered (%u), in order and intact (%u not)", SENDERS * EACH, total,
	   bad);
	for (unsigned i = 0; i < SENDERS; i++)
		close(fd[i]);
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
}

/* ---- the guards ---------------------------------------------------------- */

/* A UDP datagram from source port 0 (which no socket sends from), built by
 * hand on a raw socket: -1 if this process may not open one. */
static int send_from_port_zero(int port)
{
	struct {
		struct udphdr h;
		char data[4];
	} d = { .h = { .source = 0, .dest = htons((uint16_t)port), .len = htons(sizeof(d)),
		       .check = 0 }, .data = "zero" };
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP), rc;

	if (fd == -1)
		return -1;
	to_server(AF_INET, port, &ss, &len);
	rc = sendto(fd, &d, sizeof(d), 0, (struct sockaddr *)&ss, len) == sizeof(d) ? 0 : -1;
	close(fd);
	return rc;
}

static void guards(void)
{
	static const int ports[] = { 7, 19, 53, 123, 11211 };
	const char *args[] = { "--udp", "--udp-max", "100", "-t", "2", NULL };
	unsigned guarded = 0, answered_guarded = 0, n_fd = 0, back = 0;
	int guard_fd[8];
	bool extra;
	ssize_t n;
	struct udp_counts c;
	unsigned char b[128] = { 0 };
	struct sockaddr_storage from;
	int fd, plain, cap;
	struct srv s;
	bool root;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver --udp --udp-max 100");
	/* Guarded ports: binding them takes root (or CAP_NET_BIND_SERVICE). */
	fd = udp_socket(AF_INET, "127.0.0.1", ports[0]);
	root = fd != -1;
	if (fd != -1)
		close(fd);
	for (size_t i = 0; root && i < sizeof(ports) / sizeof(ports[0]); i++) {
		if ((fd = udp_socket(AF_INET, "127.0.0.1", ports[i])) == -1)
			continue;	/* in use here: not sent, not counted */
		if (send_to(fd, AF_INET, s.port, "loop", 4) == 0) {
			guard_fd[n_fd++] = fd;	/* read once the server has */
			guarded++;
		} else {
			close(fd);
		}
	}
	if (root && send_from_port_zero(s.port) == 0)
		guarded++;
	/* Then what passes: 100 bytes (--udp-max) and one past it. */
	plain = udp_socket(AF_INET, "127.0.0.1", 0);
	for (cap = 99; cap <= 101; cap++)
		send_to(plain, AF_INET, s.port, b, (size_t)cap);
	while (back < 2 && (n = recv_dgram(plain, b, sizeof(b), 2000, &from)) >= 0)
		back += n == 99 || n == 100;
	if (!report_when_read(&s, 2, guarded + 3, &c))
		bail("the server never read the datagrams");
	/* All read and handled: an answer to any of them was sent before its
	 * batch was counted, so it is there to read now, or never. */
	for (unsigned i = 0; i < n_fd; i++) {
		answered_guarded += recv_dgram(guard_fd[i], b, sizeof(b), 0, &from) >= 0;
		close(guard_fd[i]);
	}
	extra = recv_dgram(plain, b, sizeof(b), 0, &from) >= 0;	/* the 101's, if any */
	close(plain);
	ok(back == 2 && !extra, "--udp-max 100: 99 and 100 bytes are answered (%u), 101 is not "
	   "(%s)", back, extra ? "it was" : "not");
	ok(c.truncated == 1 && c.answered == 2, "... and counted: truncated %llu (1), answered "
	   "%llu (2)", c.truncated, c.answered);
	if (root)
		ok(guarded >= 5 && answered_guarded == 0 && c.source == guarded,
		   "from source ports 0, 7, 19, 53, 123 and 11211: none answered (%u), each "
		   "counted as a guarded source (%llu of %u sent)", answered_guarded, c.source,
		   guarded);
	else
		skip("guarded source ports: binding them takes root");
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
}

/*
 * --udp-rate 10: 100 datagrams at once from 127.0.0.1 get at most the
 * burst (10) plus 10 per second the test took; the rest are counted as
 * rate drops; and 127.0.0.2, meanwhile, is answered in full: the limit is
 * per source.
 */
static void rate(void)
{
	const char *args[] = { "--udp", "--udp-rate", "10", "-t", "2", NULL };
	unsigned answered_a = 0, answered_b = 0, allowed;
	unsigned char b[16] = "rate";
	struct sockaddr_storage from;
	uint64_t start, seed = 3;
	struct udp_counts c;
	struct srv s;
	int a, other;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver --udp --udp-rate 10");
	a = udp_socket(AF_INET, "127.0.0.1", 0);
	other = udp_socket(AF_INET, "127.0.0.2", 0);
	start = now_ms();
	for (int i = 0; i < 100; i++)
		send_to(a, AF_INET, s.port, b, sizeof(b));
	for (int i = 0; i < 10; i++)
		answered_b += round_trip(other, AF_INET, s.port, 16, &seed) ? 1 : 0;
	if (!report_when_read(&s, 2, 100 + answered_b, &c))
		bail("the server never read the datagrams");
	while (recv_dgram(a, b, sizeof(b), 0, &from) >= 0)	/* all sent by now */
		answered_a++;
	allowed = 10 + (unsigned)((now_ms() - start) * 10 / 1000) + 1;
	ok(answered_a >= 10 && answered_a <= allowed, "--udp-rate 10: of 100 datagrams sent at "
	   "once, %u answered (the burst, 10, to %u over the time taken)", answered_a, allowed);
	ok(answered_b == 10, "meanwhile another source is answered in full (%u of 10)",
	   answered_b);
	ok(c.received == 100 + answered_b && c.rate == 100 - answered_a &&
	   c.answered == answered_a + answered_b, "and it adds up: received %llu, rate drops "
	   "%llu (%u), answered %llu", c.received, c.rate, 100 - answered_a, c.answered);
	close(a);
	close(other);
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
}

/* ---- a flood, and a stop in the middle of one ------------------------------ */

static void flood_and_stop(void)
{
	const char *args[] = { "--udp", "-t", "2", NULL };
	unsigned char b[512] = { 0 };
	unsigned served = 0;
	uint64_t seed = 7;
	struct srv s;
	int flood, probe, status;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver --udp");
	flood = udp_socket(AF_INET, "127.0.0.1", 0);
	probe = udp_socket(AF_INET, "127.0.0.3", 0);
	tap_waiting("a flood from one source, a probe from another");
	for (int i = 0; i < 100; i++) {
		for (int k = 0; k < 100; k++)	/* the flood, never read */
			send_to(flood, AF_INET, s.port, b, sizeof(b));
		/* A larger burst overflows the socket's receive buffer in the
		 * kernel, which then drops whatever arrives, the probe's too,
		 * whatever the server does; should that happen, the probe asks
		 * again, as a UDP client must. */
		served += try_round_trip(probe, AF_INET, s.port, 64, &seed, 40, 50);
	}
	ok(served == 100, "10000 datagrams from one source (rate-limited, and never read by "
	   "their sender) do not stop another source being answered: %u of 100", served);
	for (int k = 0; k < 2000; k++)
		send_to(flood, AF_INET, s.port, b, sizeof(b));
	status = srv_stop(&s, SIGTERM, 10000);
	ok(status == 0 && !srv_stderr_has(&s, "error") && !srv_stderr_has(&s, "warning"),
	   "SIGTERM with datagrams in flight: exit 0 (%d), nothing logged as an error", status);
	close(flood);
	close(probe);
	unlink(s.err_path);
}

int main(void)
{
	static const unsigned workers[] = { 1, 2, 4 };

	tap_watchdog(240);
	tap_on_watchdog(harness_kill_children);
	signal(SIGPIPE, SIG_IGN);
	tap_plan(6 + 2 + 1 + 1 + 3 + 3 + 2);
	for (size_t i = 0; i < 3; i++)
		sizes(workers[i]);
	answers_from_destination();
	off_by_default();
	no_loss();
	guards();
	rate();
	flood_and_stop();
	return tap_done();
}
