/*
 * test_config.c - every field of struct mts_config, by the rule written
 * above the struct in mtserver.h, through the public API alone:
 *
 *   - a NULL string, n_listen 0 and a variant's option not given mean
 *     their defaults, and
 *     where the default shows through the API it is the one used: the
 *     listener's address and port, balance "least" accepted (so accept
 *     NULL is "handoff"), how many posts a default ring holds;
 *   - a pointer that disagrees with its count is -EINVAL;
 *   - a number outside its range is -EINVAL; a number whose every value
 *     has a meaning (0: off, unlimited) is accepted at both ends;
 *   - every -EINVAL comes with a non-empty why that names the field, and
 *     leaves the caller's descriptors open;
 *   - the dispatch string: an unknown variant or option, or a value out
 *     of its range, is refused naming it;
 *   - rings that could never fit in this machine's memory are refused;
 *   - an inherited socket is served if it listens, and is IPv4, IPv6 or
 *     Unix (named by its path, or "@name" when abstract); else refused.
 *
 * No server is run: mts_new() and mts_free() are the whole story of a
 * configuration. The sanitizer builds run it too: a NULL that the core
 * read instead of refusing is a crash there as here, and a refusal that
 * leaked what it had built is a leak report.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "mtserver.h"
#include "tap.h"

#define RING_DEFAULT 4096	/* "ring" without size= (mts_dispatch_options) */
#define RING_MAX 16777216	/* size= at most */
#define DEFAULT_PORT "5555"

/* ---- a protocol that is never called (no server runs) ------------------ */

static int conn_open(struct mts_conn *c, void *arg)
{
	return 0;
}

static void conn_shutdown(struct mts_conn *c, void *arg)
{
	mts_conn_close(c);
}

static void conn_close(struct mts_conn *c, void *arg)
{
}

static const struct mts_handler handler = {
	.on_open = conn_open,
	.on_shutdown = conn_shutdown,
	.on_close = conn_close,
};

static int answer(struct mts_datagram *d, void *state, void *arg)
{
	return 1;
}

/* The same, with UDP. */
static const struct mts_handler udp_handler = {
	.on_open = conn_open,
	.on_shutdown = conn_shutdown,
	.on_close = conn_close,
	.on_datagram = answer,
};

static const char *const loopback[] = { "127.0.0.1" };

/* The defaults, on 127.0.0.1 port 0 with one worker: cheap to build. */
static struct mts_config base(void)
{
	struct mts_config cfg;

	mts_config_defaults(&cfg);
	cfg.listen = loopback;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = 1;
	return cfg;
}

/* mts_new() must refuse: -EINVAL, with a why that contains `names`. */
static void refused(const struct mts_config *cfg, const struct mts_handler *h,
		    const char *names, const char *what)
{
	struct mts_server *s = NULL;
	char why[256] = "";
	int rc = mts_new(&s, cfg, h, why, sizeof(why));

	if (rc == 0)
		mts_free(s);
	ok(rc == -EINVAL && why[0] != '\0' && strstr(why, names) != NULL,
	   "%s: -EINVAL naming '%s' (rc %d, why \"%s\")", what, names, rc, why);
}

/* mts_new() must accept; returns the server (NULL if it did not). */
static struct mts_server *build(const struct mts_config *cfg, char *why, size_t why_len)
{
	struct mts_server *s = NULL;

	why[0] = '\0';
	if (mts_new(&s, cfg, &handler, why, why_len) < 0)
		return NULL;
	return s;
}

static void accepted(const struct mts_config *cfg, const char *what)
{
	char why[256];
	struct mts_server *s = build(cfg, why, sizeof(why));

	ok(s != NULL, "%s: accepted%s%s", what, s ? "" : ": ", s ? "" : why);
	mts_free(s);
}

/* ---- NULL and zero: the documented defaults ---------------------------- */

static atomic_uint n_ran, n_cancelled;

static void count_call(struct event_base *base, void *arg, int cancelled)
{
	atomic_fetch_add(cancelled ? &n_cancelled : &n_ran, 1);
}

/* Posts to worker 0 of a server that is not running (nothing is taken
 * out) until one is refused or `most` are in; returns how many went in. */
static unsigned fill(struct mts_server *s, unsigned most, int *last_rc)
{
	unsigned n = 0;

	*last_rc = 0;
	while (n < most && (*last_rc = mts_post(s, 0, count_call, NULL)) == 0)
		n++;
	return n;
}

static bool is_localhost_name(const char *name)
{
	return strncmp(name, "127.0.0.1:", 10) == 0 || strncmp(name, "[::1]:", 6) == 0;
}

static void test_defaults(void)
{
	struct mts_config cfg = base();
	const char *const one_null[] = { NULL };
	struct mts_server *s;
	char why[256];
	unsigned n;
	int rc;

	accepted(&cfg, "mts_config_defaults() on 127.0.0.1 port 0, one worker");

	/* n_listen 0: "localhost", and listen is not read. */
	cfg.listen = NULL;
	cfg.n_listen = 0;
	s = build(&cfg, why, sizeof(why));
	n = 0;
	for (size_t i = 0; s != NULL && i < mts_listener_count(s); i++)
		n += is_localhost_name(mts_listener_name(s, i));
	ok(s != NULL && n >= 1 && n == mts_listener_count(s),
	   "listen NULL, n_listen 0: listens on localhost (%u of %zu listeners)%s%s", n,
	   s ? mts_listener_count(s) : 0, s ? "" : ": ", s ? "" : why);
	mts_free(s);
	cfg.listen = one_null;
	accepted(&cfg, "listen {NULL}, n_listen 0: listen is not read");

	/* port NULL: 5555, or a refusal that says 5555 was the port tried. */
	cfg = base();
	cfg.port = NULL;
	{
		struct mts_server *t = NULL;

		why[0] = '\0';
		rc = mts_new(&t, &cfg, &handler, why, sizeof(why));
		ok((rc == 0 && strcmp(mts_listener_name(t, 0), "127.0.0.1:" DEFAULT_PORT) == 0) ||
		   (rc == -EADDRINUSE && strstr(why, "127.0.0.1:" DEFAULT_PORT) != NULL),
		   "port NULL: the default port " DEFAULT_PORT " (rc %d, %s)", rc,
		   rc == 0 ? mts_listener_name(t, 0) : why);
		if (rc == 0)
			mts_free(t);
	}

	/* accept NULL is "handoff": the one strategy balance "least" allows. */
	cfg = base();
	cfg.accept = NULL;
	cfg.balance = MTS_BALANCE_LEAST;
	accepted(&cfg, "accept NULL with balance least: NULL is handoff");

	/* dispatch NULL: an unbounded variant (wfcq) that takes what a
	 * default ring could not; every call is cancelled at mts_free(). */
	cfg = base();
	cfg.dispatch = NULL;
	atomic_store(&n_ran, 0);
	atomic_store(&n_cancelled, 0);
	s = build(&cfg, why, sizeof(why));
	n = s ? fill(s, 2 * RING_DEFAULT, &rc) : 0;
	mts_free(s);
	ok(s != NULL && n == 2 * RING_DEFAULT && atomic_load(&n_cancelled) == n &&
	   atomic_load(&n_ran) == 0,
	   "dispatch NULL: accepted, unbounded like wfcq (%u posts in, %u cancelled)%s%s", n,
	   atomic_load(&n_cancelled), s ? "" : ": ", s ? "" : why);

	/* "ring" with no size: the default ring, 4096 messages, then -ENOBUFS. */
	cfg = base();
	cfg.dispatch = "ring";
	atomic_store(&n_cancelled, 0);
	s = build(&cfg, why, sizeof(why));
	n = s ? fill(s, 2 * RING_DEFAULT, &rc) : 0;
	mts_free(s);
	ok(s != NULL && n == RING_DEFAULT && rc == -ENOBUFS &&
	   atomic_load(&n_cancelled) == n,
	   "ring with no size: a ring of %d (%u posts in, then rc %d)%s%s", RING_DEFAULT, n, rc,
	   s ? "" : ": ", s ? "" : why);
}

/* ---- pointers that disagree with their counts -------------------------- */

static void test_pointers(void)
{
	struct mts_config cfg = base();
	struct mts_handler h = handler;
	const char *const with_null[] = { "127.0.0.1", NULL };
	const char *const with_empty[] = { "" };
	const int negative[] = { -1 };

	refused(NULL, &handler, "cfg", "cfg NULL");
	refused(&cfg, NULL, "handler", "handler NULL");
	h.on_close = NULL;
	refused(&cfg, &h, "on_close", "handler's on_close NULL");

	cfg.listen = NULL;
	cfg.n_listen = 1;
	refused(&cfg, &handler, "n_listen", "listen NULL, n_listen 1");
	cfg.listen = with_null;
	cfg.n_listen = 2;
	refused(&cfg, &handler, "listen[1]", "listen {\"127.0.0.1\", NULL}, n_listen 2");
	cfg.listen = with_empty;
	cfg.n_listen = 1;
	refused(&cfg, &handler, "listen[0]", "listen {\"\"}");

	cfg = base();
	cfg.listen_fds = NULL;
	cfg.n_listen_fds = 1;
	refused(&cfg, &handler, "listen_fds", "listen_fds NULL, n_listen_fds 1");
	cfg.listen_fds = negative;
	refused(&cfg, &handler, "listen_fds[0]", "listen_fds {-1}");
}

/* ---- strings that name nothing ----------------------------------------- */

static void test_strings(void)
{
	struct mts_config cfg = base();

	cfg.port = "";
	refused(&cfg, &handler, "port", "port \"\"");
	cfg.port = "65536";
	refused(&cfg, &handler, "port", "port \"65536\"");
	cfg.port = "99999999999999999999999";
	refused(&cfg, &handler, "port", "port past ULONG_MAX");

	cfg = base();
	cfg.dispatch = "no-such-variant";
	refused(&cfg, &handler, "dispatch", "dispatch \"no-such-variant\"");
	cfg.dispatch = "";
	refused(&cfg, &handler, "dispatch", "dispatch \"\"");

	cfg = base();
	cfg.accept = "no-such-strategy";
	refused(&cfg, &handler, "accept", "accept \"no-such-strategy\"");
	cfg.accept = "";
	refused(&cfg, &handler, "accept", "accept \"\"");
}

/* ---- numbers ----------------------------------------------------------- */

static void test_numbers(void)
{
	struct mts_config cfg = base();

	cfg.threads = 0;
	refused(&cfg, &handler, "threads", "threads 0");

	cfg = base();
	cfg.backlog = 0;
	refused(&cfg, &handler, "backlog", "backlog 0");
	cfg.backlog = -1;
	refused(&cfg, &handler, "backlog", "backlog -1");
	cfg.backlog = 1;
	accepted(&cfg, "backlog 1");
	cfg.backlog = INT_MAX;
	accepted(&cfg, "backlog INT_MAX (the kernel caps it)");

	cfg = base();
	cfg.inbox_budget = 0;
	refused(&cfg, &handler, "inbox_budget", "inbox_budget 0");
	cfg.inbox_budget = UINT_MAX;
	accepted(&cfg, "inbox_budget UINT_MAX");

	cfg = base();
	cfg.balance = (enum mts_balance)3;
	refused(&cfg, &handler, "balance", "balance 3");
	cfg.balance = (enum mts_balance)-1;
	refused(&cfg, &handler, "balance", "balance -1");
	cfg.balance = MTS_BALANCE_LEAST;
	cfg.accept = "shared";
	refused(&cfg, &handler, "balance", "balance least with accept shared");
	cfg.balance = MTS_BALANCE_RR;
	cfg.accept = "reuseport";
	refused(&cfg, &handler, "balance", "balance rr (a choice made) with accept reuseport");
	cfg.balance = MTS_BALANCE_DEFAULT;
	accepted(&cfg, "balance MTS_BALANCE_DEFAULT with accept reuseport");

	/* The PROXY protocol's fields, read only when it is on. */
	cfg = base();
	cfg.proxy_protocol = 2;
	refused(&cfg, &handler, "proxy_protocol", "proxy_protocol 2");
	cfg.proxy_protocol = 1;
	cfg.proxy_timeout_ms = 0;
	refused(&cfg, &handler, "proxy_timeout_ms", "proxy_timeout_ms 0");
	cfg.proxy_timeout_ms = 3600001;
	refused(&cfg, &handler, "proxy_timeout_ms", "proxy_timeout_ms 3600001");
	cfg.proxy_timeout_ms = 3000;
	cfg.proxy_from = "192.0.2.0/24,nonsense";
	refused(&cfg, &handler, "nonsense", "proxy_from with an entry that is no address block");
	cfg.proxy_from = NULL;
	accepted(&cfg, "proxy_protocol 1, proxy_from NULL (this host)");
	cfg.proxy_protocol = 0;
	cfg.proxy_timeout_ms = 0;
	cfg.proxy_from = "nonsense";
	accepted(&cfg, "proxy_protocol 0: proxy_from and proxy_timeout_ms are not read");

	/* UDP's fields, read only when it is on; and its handler. */
	cfg = base();
	cfg.udp = 2;
	refused(&cfg, &udp_handler, "udp", "udp 2");
	cfg.udp = 1;
	refused(&cfg, &handler, "on_datagram", "udp 1 with a handler that has no on_datagram");
	cfg.udp_max = 0;
	refused(&cfg, &udp_handler, "udp_max", "udp_max 0");
	cfg.udp_max = 65536;
	refused(&cfg, &udp_handler, "udp_max", "udp_max 65536");
	cfg.udp = 0;
	accepted(&cfg, "udp 0: udp_max is not read, nor on_datagram needed");

	/* A variant's options: its own, in range, KEY=VALUE. */
	cfg = base();
	cfg.dispatch = "ring:size=3";
	refused(&cfg, &handler, "size", "dispatch ring:size=3");
	cfg.dispatch = "ring:size=33554432";
	refused(&cfg, &handler, "size", "dispatch ring:size=33554432 (twice the largest)");
	cfg.dispatch = "ring:size=0";
	refused(&cfg, &handler, "size", "dispatch ring:size=0");
	cfg.dispatch = "ring:size=";
	refused(&cfg, &handler, "size", "dispatch ring:size= (no value)");
	cfg.dispatch = "ring:size";
	refused(&cfg, &handler, "size", "dispatch ring:size (no '=')");
	cfg.dispatch = "ring:size=4x";
	refused(&cfg, &handler, "size", "dispatch ring:size=4x");
	cfg.dispatch = "ring:color=blue";
	refused(&cfg, &handler, "color", "dispatch ring:color=blue (no such option)");
	cfg.dispatch = "wfcq:size=4";
	refused(&cfg, &handler, "wfcq", "dispatch wfcq:size=4 (wfcq has no options)");
	cfg.dispatch = "ring:size=16777216";
	accepted(&cfg, "dispatch ring:size=16777216 (the largest), one worker");
	cfg.dispatch = "ring:size=1";
	accepted(&cfg, "dispatch ring:size=1");

	cfg = base();
	cfg.dispatch = "spin-then-block:us=100001";
	refused(&cfg, &handler, "us", "dispatch spin-then-block:us=100001");
	cfg.dispatch = "spin-then-block:us=-1";
	refused(&cfg, &handler, "us", "dispatch spin-then-block:us=-1");
	cfg.dispatch = "spin-then-block:us=100000";
	accepted(&cfg, "dispatch spin-then-block:us=100000 (the largest)");
	cfg.dispatch = "spin-then-block:us=0";
	accepted(&cfg, "dispatch spin-then-block:us=0 (no polling)");
	cfg.dispatch = "spin-then-block:us=5,us=7";
	refused(&cfg, &handler, "twice", "dispatch spin-then-block:us=5,us=7 (an option twice)");
	{
		char why[256] = "";

		ok(mts_dispatch_check(NULL, why, sizeof(why)) == 0 &&
		   mts_dispatch_check("ring:size=3", why, sizeof(why)) == -EINVAL &&
		   strstr(why, "size") != NULL,
		   "mts_dispatch_check: NULL is the default, as in mts_new; ring:size=3 is "
		   "-EINVAL naming size (\"%s\")", why);
	}

	/* Every value means something: 0 (off, unlimited, a plain close)
	 * and the largest are both accepted. */
	cfg = base();
	cfg.max_conns = cfg.max_conns_per_ip = cfg.idle_timeout_s = 0;
	cfg.shutdown_grace_ms = cfg.linger_ms = 0;
	cfg.linger_bytes = 0;
	accepted(&cfg, "max_conns, max_conns_per_ip, idle_timeout_s, shutdown_grace_ms, "
		 "linger_ms, linger_bytes all 0");
	cfg.max_conns = cfg.max_conns_per_ip = cfg.idle_timeout_s = UINT_MAX;
	cfg.shutdown_grace_ms = cfg.linger_ms = UINT_MAX;
	cfg.linger_bytes = SIZE_MAX;
	accepted(&cfg, "... all at their largest");
}

/* ---- rings that cannot fit --------------------------------------------- */

static void test_ring_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t memory = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
	uint64_t ring = (uint64_t)RING_MAX * sizeof(void *);
	struct mts_config cfg = base();
	char why[256] = "";
	struct mts_server *s = NULL;
	int rc;

	if (memory == 0 || memory / ring + 1 > UINT_MAX) {
		skip("rings too large for memory: sysconf cannot say how much there is");
		return;
	}
	/* One worker more than the machine's memory holds full rings for:
	 * refused before any worker is made (so this is cheap). */
	cfg.dispatch = "ring:size=16777216";
	cfg.threads = (unsigned)(memory / ring + 1);
	rc = mts_new(&s, &cfg, &handler, why, sizeof(why));
	if (rc == 0)
		mts_free(s);
	ok(rc == -EINVAL && strstr(why, "ring:size=16777216") != NULL && strstr(why, "threads") &&
	   strstr(why, "memory") != NULL,
	   "%u threads x ring:size=%d: -EINVAL, inboxes too large (why \"%s\")", cfg.threads,
	   RING_MAX, why);
}

/* ---- inherited sockets ------------------------------------------------- */

static int listening_socket(bool listening)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd == -1 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    (listening && listen(fd, 16) == -1))
		bail("cannot make a socket on 127.0.0.1");
	return fd;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static void test_listen_fds(void)
{
	struct mts_config cfg = base();
	int fd = listening_socket(false);
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char name[64], why[256];
	struct mts_server *s;

	/* Refused: the descriptor is the caller's still, and open. */
	cfg.listen_fds = &fd;
	cfg.n_listen_fds = 1;
	refused(&cfg, &handler, "listen_fds[0]", "listen_fds {a socket that does not listen}");
	ok(fd_open(fd), "... and the descriptor is left open");
	close(fd);

	fd = listening_socket(true);
	cfg.accept = "reuseport";
	refused(&cfg, &handler, "listen_fds", "listen_fds with accept reuseport");
	ok(fd_open(fd), "... and the descriptor is left open");

	cfg.accept = "handoff";
	getsockname(fd, (struct sockaddr *)&sa, &len);
	snprintf(name, sizeof(name), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	s = build(&cfg, why, sizeof(why));
	ok(s != NULL && mts_listener_count(s) == 1 && strcmp(mts_listener_name(s, 0), name) == 0,
	   "listen_fds {a listening socket}: serves on it, %s%s%s", name, s ? "" : ": ",
	   s ? "" : why);
	mts_free(s);
	ok(s == NULL || !fd_open(fd), "... and mts_free() closed it");
	if (s == NULL)
		close(fd);
}

/*
 * metrics_fd: refused (not listening, or with a configuration refused for
 * another field), the caller's descriptor is left open; served, it is
 * taken over (closed by mts_new(), whose endpoint has its own duplicate)
 * and named by mts_metrics_name().
 */
static void test_metrics_fd(void)
{
	struct mts_config cfg = base();
	int fd = listening_socket(false);
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char name[64], why[256];
	struct mts_server *s;

	cfg.metrics_fd = fd;
	refused(&cfg, &handler, "metrics_fd", "metrics_fd {a socket that does not listen}");
	ok(fd_open(fd), "... and the descriptor is left open");
	close(fd);

	fd = listening_socket(true);
	cfg.metrics_fd = fd;
	cfg.threads = 0;
	refused(&cfg, &handler, "threads", "threads 0, with a metrics_fd");
	ok(fd_open(fd), "... and the metrics descriptor is left open");
	cfg.threads = 1;
	getsockname(fd, (struct sockaddr *)&sa, &len);
	snprintf(name, sizeof(name), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	s = build(&cfg, why, sizeof(why));
	ok(s != NULL && mts_metrics_name(s, 0) != NULL && strcmp(mts_metrics_name(s, 0), name) == 0 &&
	   mts_metrics_name(s, 1) == NULL && !fd_open(fd),
	   "metrics_fd {a listening socket}: served (%s), and taken over%s%s",
	   s && mts_metrics_name(s, 0) ? mts_metrics_name(s, 0) : "no name", s ? "" : ": ",
	   s ? "" : why);
	mts_free(s);
	if (s == NULL && fd_open(fd))
		close(fd);
	cfg.metrics_fd = 0;
	cfg.metrics_listen = "127.0.0.1";
	refused(&cfg, &handler, "metrics", "metrics_listen without a port");
}

/* A listening Unix socket at `path` (a leading '@': in the abstract
 * namespace). */
static int unix_listener(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract: no NUL at the end either */
	if (fd == -1 || bind(fd, (struct sockaddr *)&sa,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) == -1 ||
	    listen(fd, 16) == -1)
		bail("cannot make a Unix socket");
	return fd;
}

/*
 * An inherited Unix socket (systemd's ListenStream=/run/NAME.sock) is
 * served, named by its path, or "@name" in the abstract namespace; a
 * socket of a family the server cannot name nor count (AF_VSOCK, where
 * this kernel has it) is refused, naming the descriptor.
 */
static void test_listen_fds_unix(void)
{
	struct mts_config cfg = base();
	char path[64], abstract[64], why[256];
	struct mts_server *s;
	int fd;

	snprintf(path, sizeof(path), "/tmp/test_config-%d.sock", (int)getpid());
	snprintf(abstract, sizeof(abstract), "@test_config-%d", (int)getpid());
	for (int i = 0; i < 2; i++) {
		const char *name = i == 0 ? path : abstract;

		fd = unix_listener(name);
		cfg.listen_fds = &fd;
		cfg.n_listen_fds = 1;
		s = build(&cfg, why, sizeof(why));
		ok(s != NULL && mts_listener_count(s) == 1 && strcmp(mts_listener_name(s, 0), name) == 0,
		   "listen_fds {a Unix socket%s}: serves on it, named '%s' ('%s')",
		   i ? " in the abstract namespace" : "", name, s ? mts_listener_name(s, 0) : why);
		mts_free(s);
		if (s == NULL)
			close(fd);
	}
	unlink(path);

	fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	{
		struct sockaddr_vm vm = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
					  .svm_port = VMADDR_PORT_ANY };

		if (fd == -1 || bind(fd, (struct sockaddr *)&vm, sizeof(vm)) == -1 ||
		    listen(fd, 1) == -1) {
			skip("no listening AF_VSOCK socket here");
		} else {
			cfg.listen_fds = &fd;
			refused(&cfg, &handler, "listen_fds[0]", "listen_fds {an AF_VSOCK socket}");
		}
	}
	if (fd != -1)
		close(fd);
}

int main(void)
{
	tap_watchdog(60);
	mts_log_set_level(MTS_LOG_ERROR);
	tap_plan(79);
	test_defaults();
	test_pointers();
	test_strings();
	test_numbers();
	test_ring_memory();
	test_listen_fds();
	test_listen_fds_unix();
	test_metrics_fd();
	return tap_done();
}
