/*
 * echo_bench.c - a load generator for echo servers.
 *
 * N connections spread over T client threads, each thread an epoll loop.
 * Every byte a connection sends is a function of the connection's seed and
 * the byte's offset in the stream, so every echoed byte is checked (--verify,
 * on by default) without keeping copies: a wrong, missing, reordered or
 * extra byte is an error.
 *
 * Modes:
 *   pingpong  one message in flight per connection
 *   pipeline  --depth messages in flight per connection
 *   stream    bulk, full duplex: keep 256 KiB in flight; MiB/s
 *   churn     a new connection per request: connect, send, receive, close
 *   idle      each connection echoes one message, then stays open and quiet
 *             until the end (for measuring what an idle connection costs)
 *
 * --rate R makes it open loop: R messages/s in total, each stamped with the
 * time it was due; a late reply cannot delay the next request's clock, so
 * latency is not hidden by coordinated omission.
 *
 * --udp: datagrams instead (echo_bench_udp.c): --connections flows, closed
 * loop with --depth in flight each, or open loop at --rate; every answer
 * checked, loss counted.
 *
 * Exit status: 0 if every message came back intact, 1 on any error
 * (mismatch, reset, early EOF, connect failure, a reply missing at the end),
 * 2 for bad arguments.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "counter.h"
#include "echo_bench_udp.h"
#include "histogram.h"

#define MAX_THREADS 64
#define MAX_DEPTH 1024
#define STREAM_WINDOW (256 * 1024)
#define CONNS_PER_SOURCE 25000	/* of the ~28k ephemeral ports per source address */
#define DRAIN_NS 3000000000ull	/* after the run: how long replies may take */

enum mode { M_PINGPONG, M_PIPELINE, M_STREAM, M_CHURN, M_IDLE, N_MODES };
static const char *const mode_names[] = { "pingpong", "pipeline", "stream", "churn", "idle" };

static struct {
	const char *host, *port;
	unsigned conns, threads, depth;
	size_t size, size_max;		/* size_max > size: random sizes in between */
	double seconds, rate;
	enum mode mode;
	bool verify, csv, quiet;
	unsigned proxy;			/* 0, or the PROXY header's version (1, 2) */
	bool udp;
	const char *source;		/* --udp: the flows' address */
} opt = {
	.host = "127.0.0.1", .port = "5555", .conns = 1, .threads = 1, .depth = 1,
	.size = 64, .seconds = 5, .mode = M_PINGPONG, .verify = true,
};

static struct sockaddr_storage server_addr;
static socklen_t server_len;

struct bconn {
	int fd;
	uint32_t index;			/* in the whole run: picks the source address */
	uint8_t seed;			/* what its bytes are made of */
	bool connecting;
	bool out_armed;			/* EPOLLOUT requested */
	uint64_t issued;		/* messages issued */
	uint64_t issued_bytes;		/* their total size: where the last one ends */
	uint64_t completed;		/* messages fully echoed */
	uint64_t sent, recvd;		/* stream offsets, bytes */
	uint64_t next_due;		/* --rate: when the next message is due */
	uint64_t started;		/* churn: when this connection's request began */
	uint64_t *stamp;		/* --depth entries: message i's at i % depth */
	uint64_t *end;			/* --depth entries: stream offset where message i ends */
};

struct client {
	pthread_t thread;
	unsigned id;
	struct bconn *conns;
	uint64_t *stamps;		/* n * depth, carved up among conns */
	uint64_t *ends;			/* likewise */
	unsigned n;
	int ep;
	struct histogram hist;		/* this thread's latencies, ns */
	/* Written by this thread only, read by main for the progress line
	 * and the totals: counters in the sense of core/counter.h. */
	atomic_uint_fast64_t messages, bytes, errors, connect_errors;
	uint64_t lost;			/* replies still missing at the end */
};

static struct client clients[MAX_THREADS];
static uint64_t run_start, run_deadline;
static atomic_bool all_connected_flag;
/* Every client thread adds to it: a read-modify-write, not counter_add(). */
static atomic_uint connected_count;

/* The byte at stream offset k of a connection with this seed. */
static inline uint8_t pattern(uint8_t seed, uint64_t k)
{
	return (uint8_t)((k ^ (k >> 8) ^ (k >> 16)) * 167u + seed);
}

/* ---- connections --------------------------------------------------- */

static int open_conn(struct client *cl, struct bconn *c)
{
	const int one = 1;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	int fd;

	fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Past ~28k connections one source address runs out of ports: spread
	 * them over 127.0.0.1, 127.0.0.2, ... (loopback only). */
	if (server_addr.ss_family == AF_INET && opt.conns > CONNS_PER_SOURCE &&
	    (ntohl(((struct sockaddr_in *)&server_addr)->sin_addr.s_addr) >> 24) == 127) {
		struct sockaddr_in src = { .sin_family = AF_INET };
		src.sin_addr.s_addr = htonl(0x7f000001u + c->index / CONNS_PER_SOURCE);
#ifdef IP_BIND_ADDRESS_NO_PORT
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
			int err = errno;
			close(fd);
			return -err;
		}
	}
	if (connect(fd, (struct sockaddr *)&server_addr, server_len) == -1 && errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		return -err;
	}
	c->fd = fd;
	c->connecting = true;
	c->out_armed = true;
	c->sent = c->recvd = c->issued = c->completed = c->issued_bytes = 0;
	if (epoll_ctl(cl->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
		close(fd);
		c->fd = -1;
		return -errno;
	}
	return 0;
}

static void close_conn(struct client *cl, struct bconn *c)
{
	if (c->fd < 0)
		return;
	epoll_ctl(cl->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
}

static void set_out(struct client *cl, struct bconn *c, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };

	if (c->out_armed == on)
		return;
	c->out_armed = on;
	epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/*
 * --proxy 1|2: what a balancer sends first (HAProxy's send-proxy,
 * send-proxy-v2), for a server run with --proxy-protocol; each connection
 * claims its own client address, 198.51.100.0/24 and its index as the port.
 * Sent whole on a connection just made: its send buffer is empty.
 */
static int send_proxy_header(const struct bconn *c)
{
	static const unsigned char sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
					       0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
	unsigned char b[64];
	size_t n;
	unsigned port = 1024 + c->index % 60000;

	if (opt.proxy == 1) {
		n = (size_t)snprintf((char *)b, sizeof(b), "PROXY TCP4 198.51.100.%u 127.0.0.1 %u "
				     "5555\r\n", c->index % 256, port);
	} else {
		memcpy(b, sig, 12);
		b[12] = 0x21;
		b[13] = 0x11;
		b[14] = 0;
		b[15] = 12;
		b[16] = 198, b[17] = 51, b[18] = 100, b[19] = (unsigned char)(c->index % 256);
		b[20] = 127, b[21] = 0, b[22] = 0, b[23] = 1;
		b[24] = (unsigned char)(port >> 8), b[25] = (unsigned char)port;
		b[26] = 0x15, b[27] = 0xb3;
		n = 28;
	}
	return send(c->fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* ---- traffic --------------------------------------------------------- */

static uint64_t target_bytes(const struct bconn *c)
{
	if (opt.mode == M_STREAM)
		return c->recvd + STREAM_WINDOW;
	return c->issued_bytes;
}

/* Message i's size: fixed, or drawn from [size, size_max] by (seed, i). */
static size_t message_size(const struct bconn *c, uint64_t i)
{
	uint64_t h;

	if (opt.size_max <= opt.size)
		return opt.size;
	h = (i + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)c->seed * 0xbf58476d1ce4e5b9ull;
	h ^= h >> 31;
	return opt.size + (size_t)(h % (opt.size_max - opt.size + 1));
}

/* Issues the messages that may go now: returns how many. */
static unsigned issue(struct bconn *c, uint64_t now, bool running)
{
	unsigned n = 0;

	if (!running || opt.mode == M_STREAM)
		return 0;
	if (opt.mode == M_IDLE && c->issued > 0)
		return 0;
	while (c->issued - c->completed < opt.depth) {
		uint64_t stamp = now;
		if (opt.rate > 0) {
			if (c->next_due > now)
				break;
			stamp = c->next_due;	/* when it was due, not when it went */
			c->next_due += (uint64_t)(1e9 * opt.conns / opt.rate);
		}
		c->stamp[c->issued % opt.depth] = opt.mode == M_CHURN ? c->started : stamp;
		c->issued_bytes += message_size(c, c->issued);
		c->end[c->issued % opt.depth] = c->issued_bytes;
		c->issued++;
		n++;
		if (opt.mode == M_CHURN || opt.mode == M_IDLE)
			break;			/* one request per connection */
	}
	return n;
}

/* Writes what may be written. Returns 0 or -1 (error: close). */
static int pump_out(struct client *cl, struct bconn *c, uint8_t *buf, size_t cap)
{
	uint64_t target = target_bytes(c);

	while (c->sent < target) {
		size_t len = target - c->sent < cap ? (size_t)(target - c->sent) : cap;
		ssize_t w;

		for (size_t i = 0; i < len; i++)
			buf[i] = pattern(c->seed, c->sent + i);
		w = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (w > 0) {
			c->sent += (uint64_t)w;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	set_out(cl, c, c->sent < target);
	return 0;
}

/* Reads and checks. Returns 0, or -1 (error: close). */
static int pump_in(struct client *cl, struct bconn *c, uint8_t *buf, size_t cap, uint64_t now)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf, cap, 0);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;	/* reset, or EOF before everything came back */
		if (c->recvd + (uint64_t)n > c->sent)
			return -1;	/* more than we sent */
		if (opt.verify)
			for (ssize_t i = 0; i < n; i++)
				if (buf[i] != pattern(c->seed, c->recvd + (uint64_t)i))
					return -1;
		c->recvd += (uint64_t)n;
		counter_add(&cl->bytes, (uint64_t)n);
		if (opt.mode == M_STREAM) {
			uint64_t done = c->recvd / opt.size;
			if (done > c->completed) {
				counter_add(&cl->messages, done - c->completed);
				c->completed = done;
			}
			continue;
		}
		while (c->completed < c->issued && c->recvd >= c->end[c->completed % opt.depth]) {
			hist_record(&cl->hist, now - c->stamp[c->completed % opt.depth]);
			c->completed++;
			counter_add(&cl->messages, 1);
		}
		if ((size_t)n < cap)
			return 0;
	}
}

static void fail(struct client *cl, struct bconn *c)
{
	counter_add(&cl->errors, 1);
	close_conn(cl, c);
}

/*
 * Waits for events, at most until `until` (ns, CLOCK_MONOTONIC), with
 * nanosecond precision where the kernel has epoll_pwait2: in open-loop mode
 * a millisecond of oversleep would show up as latency.
 */
static int wait_events(int ep, struct epoll_event *evs, int max, uint64_t until)
{
	uint64_t now = clock_now_ns(), d = until > now ? until - now : 0;
#ifdef HAVE_EPOLL_PWAIT2
	struct timespec ts = { .tv_sec = (time_t)(d / 1000000000u), .tv_nsec = (long)(d % 1000000000u) };
	int k = epoll_pwait2(ep, evs, max, &ts, NULL);

	if (k != -1 || errno != ENOSYS)
		return k;
#endif
	return epoll_wait(ep, evs, max, (int)((d + 999999) / 1000000));
}

/* --rate: the earliest time a connection of this thread may issue. */
static uint64_t next_due(const struct client *cl, uint64_t fallback)
{
	uint64_t t = fallback;

	for (unsigned i = 0; i < cl->n; i++) {
		const struct bconn *c = &cl->conns[i];
		if (c->fd >= 0 && !c->connecting && c->issued - c->completed < opt.depth &&
		    c->next_due < t)
			t = c->next_due;
	}
	return t;
}

/* Each client thread's scratch for what it sends and what it reads back. */
static _Thread_local uint8_t io_buf[65536];

/*
 * Before the clock starts: opens every connection of this thread (not in
 * churn mode, which opens them when it starts). One that cannot be opened
 * is a connect error; running out of descriptors is also said out loud.
 */
static void open_all(struct client *cl)
{
	for (unsigned i = 0; i < cl->n; i++) {
		struct bconn *c = &cl->conns[i];
		int rc;

		c->started = clock_now_ns();
		rc = open_conn(cl, c);
		if (rc < 0) {
			counter_add(&cl->connect_errors, 1);
			if (rc == -EMFILE || rc == -ENFILE)
				fprintf(stderr, "echo-bench: out of file descriptors at connection %u\n",
					c->index);
		}
	}
}

/*
 * The clock has started: staggers the connections' first due times over
 * one period of --rate (each connection's period is conns / rate seconds),
 * opens churn's connections, and sends the first messages of the others.
 */
static void start_run(struct client *cl, uint64_t now)
{
	for (unsigned i = 0; i < cl->n; i++) {
		struct bconn *c = &cl->conns[i];

		c->next_due = run_start + (uint64_t)(1e9 * i * opt.threads / (opt.rate > 0 ? opt.rate : 1));
		if (opt.mode == M_CHURN) {
			c->started = now;
			if (open_conn(cl, c) < 0)
				counter_add(&cl->connect_errors, 1);
			continue;
		}
		if (c->fd >= 0 && !c->connecting) {
			issue(c, now, true);
			if (pump_out(cl, c, io_buf, sizeof(io_buf)) < 0)
				fail(cl, c);
		}
	}
}

/*
 * The replies connection c still waits for. A closed connection waits for
 * none (it failed, and that was counted, or churn was done with it), and
 * neither does stream mode, which keeps a window in flight, not messages.
 */
static uint64_t replies_missing(const struct bconn *c)
{
	if (c->fd < 0 || opt.mode == M_STREAM || c->completed >= c->issued)
		return 0;
	return c->issued - c->completed;
}

static bool replies_pending(const struct client *cl)
{
	for (unsigned i = 0; i < cl->n; i++)
		if (replies_missing(&cl->conns[i]) > 0)
			return true;
	return false;
}

/*
 * One epoll event on connection c: finishes a connect, reads and checks
 * what came back, and sends what may go. `go`: the run is on (the clock
 * started and the deadline is ahead), so new messages may be issued.
 */
static void on_event(struct client *cl, struct bconn *c, uint32_t events, bool go,
		     uint64_t now)
{
	if (c->fd < 0)
		return;
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
			counter_add(&cl->connect_errors, 1);
			close_conn(cl, c);
			return;
		}
		c->connecting = false;
		if (opt.proxy != 0 && send_proxy_header(c) < 0) {
			counter_add(&cl->connect_errors, 1);
			close_conn(cl, c);
			return;
		}
		atomic_fetch_add(&connected_count, 1);
		if (!go)
			set_out(cl, c, false);
		else
			issue(c, now, go);
	}
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
	    pump_in(cl, c, io_buf, sizeof(io_buf), now) < 0) {
		fail(cl, c);
		return;
	}
	if (opt.mode == M_CHURN && c->completed == 1) {
		/* Request done: close and start the next one. */
		close_conn(cl, c);
		if (go) {
			c->started = clock_now_ns();
			if (open_conn(cl, c) < 0)
				counter_add(&cl->connect_errors, 1);
		}
		return;
	}
	issue(c, now, go);
	if (pump_out(cl, c, io_buf, sizeof(io_buf)) < 0)
		fail(cl, c);
}

/* --rate: issues and sends the messages that have come due since. */
static void issue_due(struct client *cl, uint64_t now)
{
	for (unsigned i = 0; i < cl->n; i++) {
		struct bconn *c = &cl->conns[i];
		if (c->fd >= 0 && !c->connecting && issue(c, now, true) > 0 &&
		    pump_out(cl, c, io_buf, sizeof(io_buf)) < 0)
			fail(cl, c);
	}
}

/*
 * The send/receive loop: waits for the clock to start (main starts it once
 * every connection is up or has failed, after 30 s at most), runs until the
 * deadline, then stops issuing and waits for the replies in flight, for
 * DRAIN_NS at most.
 */
static void run(struct client *cl)
{
	struct epoll_event evs[256];
	bool running = false;

	for (;;) {
		uint64_t now = clock_now_ns();
		uint64_t until = now + (running ? 100000000u : 1000000u);
		bool go;
		int k;

		if (!running && atomic_load(&all_connected_flag)) {
			running = true;
			start_run(cl, now);
		}
		/* Past the deadline: done once nothing is in flight, or DRAIN_NS later. */
		if (running && now >= run_deadline &&
		    (opt.mode == M_STREAM || !replies_pending(cl) || now >= run_deadline + DRAIN_NS))
			return;
		if (running && now < run_deadline && opt.rate > 0)
			until = next_due(cl, now + 1000000u);
		else if (running && now >= run_deadline)
			until = now + 1000000u;
		k = wait_events(cl->ep, evs, 256, until);
		now = clock_now_ns();
		go = running && now < run_deadline;
		for (int e = 0; e < k; e++)
			on_event(cl, evs[e].data.ptr, evs[e].events, go, now);
		if (opt.rate > 0 && go)
			issue_due(cl, now);
	}
}

/* After the loop: counts the replies that never came, closes everything. */
static void finish(struct client *cl)
{
	for (unsigned i = 0; i < cl->n; i++) {
		struct bconn *c = &cl->conns[i];
		cl->lost += replies_missing(c);
		close_conn(cl, c);
	}
}

/* A client thread: its share of the connections, from open to result. */
static void *client_main(void *arg)
{
	struct client *cl = arg;

	cl->ep = epoll_create1(EPOLL_CLOEXEC);
	/* Churn opens its connections when the clock starts; the others first. */
	if (opt.mode != M_CHURN)
		open_all(cl);
	run(cl);
	finish(cl);
	close(cl->ep);
	return NULL;
}

/* ---- set-up ----------------------------------------------------------- */

static void resolve(void)
{
	struct addrinfo hints = { .ai_socktype = opt.udp ? SOCK_DGRAM : SOCK_STREAM }, *res;
	int rc = getaddrinfo(opt.host, opt.port, &hints, &res);

	if (rc != 0)
		cli_die("cannot resolve %s port %s: %s", opt.host, opt.port, gai_strerror(rc));
	memcpy(&server_addr, res->ai_addr, res->ai_addrlen);
	server_len = res->ai_addrlen;
	freeaddrinfo(res);
}

static void check_fd_limit(void)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)opt.conns + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;	/* as far as allowed */
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need)
		cli_die("%u connections need about %llu file descriptors; the limit is %llu "
		    "(raise the hard limit, e.g. ulimit -Hn, or use fewer connections)",
		    opt.conns, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

static void usage(FILE *out)
{
	fprintf(out,
"Usage: echo-bench [OPTION]...\n"
"Drives an echo server and checks every byte it sends back.\n"
"\n"
"  -H, --host HOST        server address (default 127.0.0.1)\n"
"  -p, --port PORT        server port (default 5555)\n"
"  -c, --connections N    connections (default 1)\n"
"  -T, --threads N        client threads (default 1)\n"
"  -m, --mode MODE        pingpong, pipeline, stream, churn, idle (default pingpong)\n"
"  -s, --size BYTES       message size (default 64)\n"
"  -S, --size-max BYTES   random message sizes from --size to this\n"
"  -d, --depth N          pipeline: messages in flight per connection (default 1)\n"
"  -t, --seconds S        duration (default 5)\n"
"  -r, --rate R           open loop: R messages/s in total (default: closed loop)\n"
"      --proxy 1|2        begin each connection with a PROXY header of that\n"
"                         version (for echoserver --proxy-protocol)\n"
"      --udp              UDP datagrams (echoserver --udp): --connections flows,\n"
"                         each with --depth in flight, or --rate in all; every\n"
"                         answer checked, loss counted (not an error);\n"
"                         --size 16..65507\n"
"      --source ADDR      --udp: send from this address (the server's\n"
"                         per-source rate counts it apart)\n"
"      --no-verify        do not check the echoed bytes\n"
"      --csv              one CSV line (with a header line)\n"
"  -q, --quiet            no progress line\n"
"  -V, --version          print the version and exit\n"
"  -h, --help             this help\n"
"\n"
"Exit status 0 if every message came back intact; 1 on any error.\n");
}

static void parse(int argc, char **argv)
{
	enum { O_NOVERIFY = 256, O_CSV, O_PROXY, O_UDP, O_SOURCE };
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "connections", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 'T' },
		{ "mode", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },
		{ "size-max", required_argument, NULL, 'S' },
		{ "depth", required_argument, NULL, 'd' },
		{ "seconds", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "no-verify", no_argument, NULL, O_NOVERIFY },
		{ "proxy", required_argument, NULL, O_PROXY },
		{ "udp", no_argument, NULL, O_UDP },
		{ "source", required_argument, NULL, O_SOURCE },
		{ "csv", no_argument, NULL, O_CSV },
		{ "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":H:p:c:T:m:s:S:d:t:r:qVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': opt.host = optarg; break;
		case 'p': cli_ulong("--port", optarg, 1, 65535); opt.port = optarg; break;
		case 'c': opt.conns = (unsigned)cli_ulong("--connections", optarg, 1, 1000000); break;
		case 'T': opt.threads = (unsigned)cli_ulong("--threads", optarg, 1, MAX_THREADS); break;
		case 'm':
			for (ch = 0; ch < N_MODES && strcmp(optarg, mode_names[ch]) != 0; ch++)
				;
			if (ch == N_MODES)
				cli_bad("--mode", optarg);
			opt.mode = (enum mode)ch;
			break;
		case 's': opt.size = (size_t)cli_ulong("--size", optarg, 1, 64 << 20); break;
		case 'S': opt.size_max = (size_t)cli_ulong("--size-max", optarg, 1, 64 << 20); break;
		case 'd': opt.depth = (unsigned)cli_ulong("--depth", optarg, 1, MAX_DEPTH); break;
		case 't': opt.seconds = cli_double("--seconds", optarg, 0.1, 86400); break;
		case 'r': opt.rate = cli_double("--rate", optarg, 1, 1e9); break;
		case O_NOVERIFY: opt.verify = false; break;
		case O_PROXY: opt.proxy = (unsigned)cli_ulong("--proxy", optarg, 1, 2); break;
		case O_UDP: opt.udp = true; break;
		case O_SOURCE: opt.source = optarg; break;
		case O_CSV: opt.csv = true; break;
		case 'q': opt.quiet = true; break;
		case 'V': printf("echo-bench (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		case ':': cli_bad("option (needs a value)", argv[optind - 1]);
		default: cli_bad("option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		cli_bad("argument", argv[optind]);
	if (opt.source != NULL && !opt.udp)
		cli_usage_error("--source goes with --udp");
	if (opt.udp && (opt.mode != M_PINGPONG || opt.proxy || opt.size_max))
		cli_usage_error("--udp takes none of --mode, --proxy, --size-max: a datagram "
				"is its own message");
	if (opt.mode != M_PIPELINE && !opt.udp)
		opt.depth = 1;
	if (opt.threads > opt.conns)
		opt.threads = opt.conns;
}

static void totals(uint64_t *msgs, uint64_t *bytes, uint64_t *errs, uint64_t *cerrs)
{
	*msgs = *bytes = *errs = *cerrs = 0;
	for (unsigned t = 0; t < opt.threads; t++) {
		*msgs += counter_get(&clients[t].messages);
		*bytes += counter_get(&clients[t].bytes);
		*errs += counter_get(&clients[t].errors);
		*cerrs += counter_get(&clients[t].connect_errors);
	}
}

/* --udp: the run, and its figures in the same form as the others'. */
static int main_udp(void)
{
	struct udp_bench_cfg cfg = {
		.to = (struct sockaddr *)&server_addr, .to_len = server_len, .source = opt.source,
		.flows = opt.conns, .threads = opt.threads, .depth = opt.depth,
		.size = opt.size, .seconds = opt.seconds, .rate = opt.rate, .verify = opt.verify,
	};
	static struct udp_bench_result r;
	const struct histogram *h = &r.hist;
	double secs = opt.seconds;

	udp_bench_run(&cfg, &r);
	if (opt.csv) {
		printf("mode,connections,threads,size,size_max,depth,rate,seconds,messages,"
		       "msgs_per_s,mib_per_s,p50_us,p99_us,p999_us,max_us,errors,connect_errors,"
		       "lost\n");
		printf("udp,%u,%u,%zu,%zu,%u,%.0f,%.2f,%llu,%.0f,%.2f,%.1f,%.1f,%.1f,%.1f,%llu,0,"
		       "%llu\n", opt.conns, opt.threads, opt.size, opt.size, opt.depth, opt.rate,
		       secs, (unsigned long long)r.answered, r.answered / secs,
		       r.answered * (double)opt.size / secs / 1048576.0,
		       hist_quantile(h, 0.5) / 1e3, hist_quantile(h, 0.99) / 1e3,
		       hist_quantile(h, 0.999) / 1e3, hist_max(h) / 1e3,
		       (unsigned long long)r.errors, (unsigned long long)r.lost);
	} else {
		printf("udp: %u flows, %u threads, %zu-byte datagrams, %s%s\n", opt.conns,
		       opt.threads, opt.size, opt.rate > 0 ? "open loop" : "closed loop",
		       opt.verify ? ", verified" : "");
		printf("  %llu answered in %.2f s: %.0f datagrams/s, %.2f MiB/s echoed\n",
		       (unsigned long long)r.answered, secs, r.answered / secs,
		       r.answered * (double)opt.size / secs / 1048576.0);
		printf("  latency us: p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
		       hist_quantile(h, 0.5) / 1e3, hist_quantile(h, 0.99) / 1e3,
		       hist_quantile(h, 0.999) / 1e3, hist_max(h) / 1e3);
		printf("  sent %llu, lost %llu (%.3f%%), errors %llu\n",
		       (unsigned long long)r.sent, (unsigned long long)r.lost,
		       r.sent ? 100.0 * (double)r.lost / (double)r.sent : 0.0,
		       (unsigned long long)r.errors);
	}
	return r.errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct histogram all;
	uint64_t msgs, bytes, errs, cerrs, lost = 0, waited, end;
	double secs;
	size_t size_max;
	unsigned idx = 0;

	signal(SIGPIPE, SIG_IGN);
	cli_set_prog("echo-bench");
	parse(argc, argv);
	resolve();
	check_fd_limit();
	if (opt.udp)
		return main_udp();

	for (unsigned t = 0; t < opt.threads; t++) {
		struct client *cl = &clients[t];
		cl->id = t;
		cl->n = opt.conns / opt.threads + (t < opt.conns % opt.threads);
		cl->conns = calloc(cl->n, sizeof(*cl->conns));
		cl->stamps = calloc((size_t)cl->n * opt.depth, sizeof(*cl->stamps));
		cl->ends = calloc((size_t)cl->n * opt.depth, sizeof(*cl->ends));
		if (cl->conns == NULL || cl->stamps == NULL || cl->ends == NULL)
			cli_die("out of memory for %u connections", cl->n);
		hist_reset(&cl->hist);
		for (unsigned i = 0; i < cl->n; i++) {
			cl->conns[i].fd = -1;
			cl->conns[i].stamp = &cl->stamps[(size_t)i * opt.depth];
			cl->conns[i].end = &cl->ends[(size_t)i * opt.depth];
			cl->conns[i].index = idx;
			cl->conns[i].seed = (uint8_t)(idx * 37u + 11u);
			idx++;
		}
	}
	for (unsigned t = 0; t < opt.threads; t++)
		if (pthread_create(&clients[t].thread, NULL, client_main, &clients[t]) != 0)
			cli_die("cannot start client thread %u", t);

	/* Start the clock once every connection is up (or failed), at most 30 s. */
	for (waited = 0; waited < 30000; waited += 10) {
		totals(&msgs, &bytes, &errs, &cerrs);
		if (opt.mode == M_CHURN ||
		    atomic_load(&connected_count) + cerrs + errs >= opt.conns)
			break;
		usleep(10000);
	}
	run_start = clock_now_ns();
	run_deadline = run_start + (uint64_t)(opt.seconds * 1e9);
	atomic_store(&all_connected_flag, true);

	if (!opt.quiet && opt.seconds > 3) {
		uint64_t last = 0;
		for (unsigned s = 1; clock_now_ns() + 1000000000ull <= run_deadline + 1000000; s++) {
			usleep(1000000);
			totals(&msgs, &bytes, &errs, &cerrs);
			fprintf(stderr, "[%us] %llu msgs/s, errors %llu, connect errors %llu\n", s,
				(unsigned long long)(msgs - last), (unsigned long long)errs,
				(unsigned long long)cerrs);
			last = msgs;
		}
	}
	for (unsigned t = 0; t < opt.threads; t++)
		pthread_join(clients[t].thread, NULL);
	end = clock_now_ns();
	(void)end;

	hist_reset(&all);
	for (unsigned t = 0; t < opt.threads; t++) {
		hist_merge(&all, &clients[t].hist);
		lost += clients[t].lost;
		free(clients[t].conns);
		free(clients[t].stamps);
		free(clients[t].ends);
	}
	totals(&msgs, &bytes, &errs, &cerrs);
	secs = opt.seconds;
	size_max = opt.size_max > opt.size ? opt.size_max : opt.size;
	if (opt.csv) {
		/* size..size_max: the message sizes (equal when they are fixed). */
		printf("mode,connections,threads,size,size_max,depth,rate,seconds,messages,"
		       "msgs_per_s,mib_per_s,p50_us,p99_us,p999_us,max_us,errors,connect_errors,"
		       "lost\n");
		printf("%s,%u,%u,%zu,%zu,%u,%.0f,%.2f,%llu,%.0f,%.2f,%.1f,%.1f,%.1f,%.1f,%llu,%llu,"
		       "%llu\n", mode_names[opt.mode], opt.conns, opt.threads, opt.size,
		       size_max, opt.depth, opt.rate,
		       secs, (unsigned long long)msgs, msgs / secs, bytes / secs / 1048576.0,
		       hist_quantile(&all, 0.5) / 1e3, hist_quantile(&all, 0.99) / 1e3,
		       hist_quantile(&all, 0.999) / 1e3, hist_max(&all) / 1e3,
		       (unsigned long long)errs, (unsigned long long)cerrs, (unsigned long long)lost);
	} else {
		if (size_max > opt.size)
			printf("%s: %u connections, %u threads, messages of %zu to %zu bytes "
			       "(random)%s\n", mode_names[opt.mode], opt.conns, opt.threads,
			       opt.size, size_max, opt.verify ? ", verified" : "");
		else
			printf("%s: %u connections, %u threads, %zu-byte messages%s\n",
			       mode_names[opt.mode], opt.conns, opt.threads, opt.size,
			       opt.verify ? ", verified" : "");
		printf("  %llu messages in %.2f s: %.0f msgs/s, %.2f MiB/s echoed\n",
		       (unsigned long long)msgs, secs, msgs / secs, bytes / secs / 1048576.0);
		if (opt.mode != M_STREAM)
			printf("  latency us: p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
			       hist_quantile(&all, 0.5) / 1e3, hist_quantile(&all, 0.99) / 1e3,
			       hist_quantile(&all, 0.999) / 1e3, hist_max(&all) / 1e3);
		printf("  errors %llu, connect errors %llu, replies missing %llu\n",
		       (unsigned long long)errs, (unsigned long long)cerrs, (unsigned long long)lost);
	}
	return errs || cerrs || lost ? 1 : 0;
}
