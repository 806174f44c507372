/*
 * test_max_conns.c - --max-conns counted from outside: for every accept
 * strategy, the real ./echoserver with many accepting loops and a small
 * limit, a churn of clients, and a sampler that counts the TCP sockets the
 * server holds. The count must never pass the limit, whoever accepts, and
 * every client must be served. Then the limit met inside an EMFILE back-off
 * (test_backoff_at_limit()).
 *
 * HOW THE SOCKETS ARE COUNTED
 *
 * Right after start-up the test notes the socket inodes among the server's
 * descriptors (/proc/PID/fd): its listening sockets and libevent's
 * socketpairs. After that the server gets sockets only by accepting, so a
 * sample counts the socket inodes that are not in that first set. A
 * connection still in the kernel's backlog has no descriptor in the
 * server, nor has one the server has closed: neither is counted.
 *
 * That they are the accepted TCP connections is checked before the churn,
 * with the server full: the test holds `limit` connections open (each
 * echoed, so accepted) and one more in the backlog, and a sample must count
 * `limit`, each of them an entry of /proc/net/tcp or tcp6 on the server's
 * port, not LISTEN, with that inode. During the churn the samples do not
 * read those tables: a read walks every TIME_WAIT entry that this churn
 * and any test running beside it leave there for a minute (at 40,000 of
 * them one read of /proc/net/tcp took 0.4 s), and samples that slow would
 * see connections long gone. A sample without them lists the descriptors
 * only: tens of microseconds.
 *
 * The listing is not a snapshot: connections close and open while it runs.
 * Can that make a correct server look over the limit? No. Linux gives a new
 * descriptor the lowest free number, and after start-up the server opens
 * none but accepted sockets. If at most `limit` of those exist at any
 * instant, each new one gets one of the `limit` lowest numbers that
 * start-up left free (one of them is free when it is created), and the
 * listing visits each number once: it can report at most `limit`. So a
 * count over the limit means that the server really held that many at once.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "mtserver.h"
#include "tap.h"

enum {
	LIMIT = 4,		/* -c: small, so that it is pressed all the time */
	THREADS = 8,		/* -t: with reuseport and shared, 8 accepting loops */
	CLIENTS = 24,		/* six times the limit: the backlog is never empty */
	ROUNDS = 250,		/* connections per client, at least */
	MIN_SAMPLES = 1000,	/* the clients go on until the sampler took these */
	CHURN_BOUND_MS = 60000,	/* the churn's bound (sanitizers: 5 times); then it fails */
	ECHO_WAIT_MS = 10000,	/* one client's bound for its echo */
	/*
	 * How long a client keeps its connection after the echo: the server
	 * stays full a while each time, so that a socket accepted over the
	 * limit stays over it long enough to be sampled.
	 */
	HOLD_US = 1000,
	MAX_INODES = 1024,
};

#if defined(SANITIZED)
#define CHURN_SCALE 5		/* as the watchdog (tap.h) */
#else
#define CHURN_SCALE 1
#endif


/* ---- counting the server's accepted sockets ---------------------------- */

struct inodes {
	unsigned long v[MAX_INODES];
	size_t n;
};

/* Where inode is in set; -1 if it is not. */
static long find(unsigned long inode, const struct inodes *set)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i] == inode)
			return (long)i;
	return -1;
}

/*
 * The socket inodes among pid's descriptors that are not in `before` (NULL:
 * all of them), into *out; how many.
 */
static size_t sockets_since(pid_t pid, const struct inodes *before, struct inodes *out)
{
	char path[64], link[64];
	struct dirent *e;
	unsigned long inode;
	DIR *d;

	out->n = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && out->n < MAX_INODES) {
		ssize_t len = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);

		if (len <= 0)
			continue;	/* ".", "..", or closed since */
		link[len] = '\0';
		if (sscanf(link, "socket:[%lu]", &inode) == 1 &&
		    (before == NULL || find(inode, before) < 0))
			out->v[out->n++] = inode;
	}
	closedir(d);
	return out->n;
}

#define TCP_LISTEN_STATE 0x0A	/* TCP_LISTEN, as /proc/net/tcp prints it */

/*
 * Marks in seen[] the members of `set` that a /proc/net/tcp table shows on
 * `port`, not listening. Marks, not counts: a table that changes while it
 * is read can show an entry twice.
 */
static void tcp_entries(const char *table, int port, const struct inodes *set, bool *seen)
{
	char line[512];
	FILE *f = fopen(table, "r");

	if (f == NULL)
		return;		/* no IPv6 here: nothing on it */
	while (fgets(line, sizeof(line), f) != NULL) {	/* the header fails the scan */
		unsigned lport, state;
		unsigned long inode;
		long i;

		/* sl: local rem st tx:rx tr:when retrnsmt uid timeout inode */
		if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x "
			   "%*x %*u %*u %lu", &lport, &state, &inode) != 3)
			continue;
		if ((int)lport == port && state != TCP_LISTEN_STATE && (i = find(inode, set)) >= 0)
			seen[i] = true;
	}
	fclose(f);
}

/* ---- the churn and the sampler ------------------------------------------ */

struct churn {
	const struct srv *srv;
	const struct inodes *start;	/* the server's sockets after start-up */
	uint64_t deadline_ms;
	atomic_bool stop;		/* set by main: the clients are done */
	atomic_uint clients_done;	/* clients past their ROUNDS */
	atomic_uint samples;
	/* The sampler's, read by main after the join. */
	unsigned max_seen, at_limit, over;
	/* Each client's, read by main after the join. */
	atomic_uint served, failed;
};

/* Connects, sends a byte, reads its echo, closes: true if echoed. */
static bool one_connection(int port, char byte)
{
	int fd = tcp_connect(port);
	char x = 0;
	bool echoed;

	if (fd == -1)
		return false;
	echoed = send_all(fd, &byte, 1) == 0 && recv_wait(fd, &x, 1, ECHO_WAIT_MS) == 1 &&
		 x == byte;
	usleep(HOLD_US);
	close(fd);
	return echoed;
}

/* A client: ROUNDS connections, then more until the sampler has enough
 * samples, each bounded; the whole churn ends at the deadline. */
static void *client_main(void *arg)
{
	struct churn *c = arg;
	unsigned done = 0;

	while (now_ms() < c->deadline_ms) {
		if (done == ROUNDS)
			atomic_fetch_add(&c->clients_done, 1);
		if (done >= ROUNDS && atomic_load(&c->samples) >= MIN_SAMPLES)
			break;
		if (one_connection(c->srv->port, (char)('a' + done % 26)))
			atomic_fetch_add(&c->served, 1);
		else
			atomic_fetch_add(&c->failed, 1);
		done++;
	}
	return NULL;
}

static void *sampler_main(void *arg)
{
	struct churn *c = arg;
	struct inodes *now = malloc(sizeof(*now));

	if (now == NULL)
		bail("out of memory");
	while (!atomic_load(&c->stop)) {
		size_t n = sockets_since(c->srv->pid, c->start, now);

		if (n > c->max_seen)
			c->max_seen = (unsigned)n;
		if (n == LIMIT)
			c->at_limit++;
		if (n > LIMIT)
			c->over++;
		atomic_fetch_add(&c->samples, 1);
	}
	free(now);
	return NULL;
}

/*
 * The counter itself, before the churn: `limit` connections echoed and held
 * open, and one more in the backlog. A sample must count exactly the held
 * ones, and each must be a TCP connection on the server's port.
 */
static void check_counter(const struct srv *s, const struct inodes *start,
			  const char *strategy)
{
	struct inodes *now = malloc(sizeof(*now));
	bool *seen = calloc(MAX_INODES, sizeof(*seen));
	int fds[LIMIT + 1];
	bool echoed = true;
	unsigned tcp = 0;
	size_t n;
	char x;

	if (now == NULL || seen == NULL)
		bail("out of memory");
	for (int i = 0; i <= LIMIT; i++) {
		fds[i] = tcp_connect(s->port);
		if (i < LIMIT)	/* echoed, so accepted */
			echoed = echoed && fds[i] != -1 && send_all(fds[i], "h", 1) == 0 &&
				 recv_all(fds[i], &x, 1) == 0;
	}
	n = sockets_since(s->pid, start, now);
	tcp_entries("/proc/net/tcp", s->port, now, seen);
	tcp_entries("/proc/net/tcp6", s->port, now, seen);
	for (size_t i = 0; i < n; i++)
		tcp += seen[i];
	ok(echoed && fds[LIMIT] != -1 && n == LIMIT && tcp == LIMIT,
	   "--accept %s: %d connections held open and one in the backlog: the server has "
	   "%zu sockets more than at start-up, %u of them TCP connections on its port",
	   strategy, LIMIT, n, tcp);
	for (int i = 0; i <= LIMIT; i++)
		if (fds[i] != -1)
			close(fds[i]);
	free(seen);
	free(now);
}

static void churn_one(const char *strategy)
{
	char threads[16], limit[16];
	const char *args[] = { "-t", threads, "-c", limit, NULL };
	pthread_t clients[CLIENTS], sampler;
	struct churn c = { 0 };
	struct inodes *start = malloc(sizeof(*start));
	struct srv s;
	unsigned started = 0;
	int rc;

	if (start == NULL)
		bail("out of memory");
	snprintf(threads, sizeof(threads), "%d", THREADS);
	snprintf(limit, sizeof(limit), "%d", LIMIT);
	harness_extra_args[0] = "--accept";
	harness_extra_args[1] = strategy;
	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	diag("--accept %s: echoserver pid %d on 127.0.0.1:%d, -t %d -c %d, %d clients",
	     strategy, (int)s.pid, s.port, THREADS, LIMIT, CLIENTS);
	sockets_since(s.pid, NULL, start);	/* no client yet */
	check_counter(&s, start, strategy);

	c.srv = &s;
	c.start = start;
	c.deadline_ms = now_ms() + (uint64_t)CHURN_BOUND_MS * CHURN_SCALE;
	if (pthread_create(&sampler, NULL, sampler_main, &c) != 0)
		bail("cannot start the sampler thread");
	for (; started < CLIENTS; started++)
		if (pthread_create(&clients[started], NULL, client_main, &c) != 0)
			break;
	tap_waiting("the churn's clients (each wait bounded by ECHO_WAIT_MS)");
	for (unsigned i = 0; i < started; i++)
		pthread_join(clients[i], NULL);
	atomic_store(&c.stop, true);
	tap_waiting("the sampler's last sample");
	pthread_join(sampler, NULL);

	ok(started == CLIENTS && atomic_load(&c.clients_done) == CLIENTS &&
	   atomic_load(&c.failed) == 0,
	   "--accept %s: %u clients churned at least %d connections each within %d s, every "
	   "one echoed (%u served, %u not)", strategy, started, ROUNDS,
	   CHURN_BOUND_MS * CHURN_SCALE / 1000, atomic_load(&c.served), atomic_load(&c.failed));
	ok(atomic_load(&c.samples) >= MIN_SAMPLES && c.max_seen <= LIMIT,
	   "--accept %s: never more than %d accepted sockets: at most %u in %u samples "
	   "(%u at the limit, %u over it)", strategy, LIMIT, c.max_seen,
	   atomic_load(&c.samples), c.at_limit, c.over);
	rc = srv_stop(&s, SIGTERM, 10000);
	ok(rc == 0 && !srv_stderr_has(&s, "warning") && !srv_stderr_has(&s, "error"),
	   "--accept %s: SIGTERM, exit status %d, no warnings or errors logged", strategy, rc);
	if (getenv("KEEP_LOGS") == NULL)
		unlink(s.err_path);
	else
		diag("server log kept in %s", s.err_path);
	free(start);
}

/* ---- the limit inside an EMFILE back-off ------------------------------- */

/*
 * The descriptor limit that leaves pid exactly `room` free numbers: the
 * limit bounds the numbers a new descriptor may take, and a new one takes
 * the lowest free number. With room 0 it is the lowest free number.
 */
static rlim_t limit_leaving(pid_t pid, unsigned room)
{
	enum { MAX_FD = 4096 };
	static bool open_fd[MAX_FD];
	char path[64];
	struct dirent *e;
	rlim_t limit = 0;
	DIR *d;

	memset(open_fd, 0, sizeof(open_fd));
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		bail("cannot list the server's descriptors");
	while ((e = readdir(d)) != NULL) {
		long fd = strtol(e->d_name, NULL, 10);

		if (e->d_name[0] != '.' && fd >= 0 && fd < MAX_FD)
			open_fd[fd] = true;
	}
	closedir(d);
	while (limit < MAX_FD && (room > 0 || open_fd[limit]))
		room -= !open_fd[limit++];
	return limit;
}

static void set_fd_limit(pid_t pid, rlim_t cur, rlim_t max)
{
	struct rlimit r = { .rlim_cur = cur, .rlim_max = max };

	if (prlimit(pid, RLIMIT_NOFILE, &r, NULL) != 0)
		bail("cannot set the server's descriptor limit");
}

/*
 * SIGUSR1's count of accept loops paused at --max-conns now, from the
 * report it asks for (bounded: -1 if none comes within 5 s).
 */
static int paused_now(const struct srv *s)
{
	static const char needle[] = "accept: paused at max_conns now ";
	int before = srv_stderr_count(s, needle);
	uint64_t deadline = now_ms() + 5000;
	const char *text, *p, *last = NULL;

	kill(s->pid, SIGUSR1);
	while (srv_stderr_count(s, needle) == before && now_ms() < deadline)
		usleep(10000);
	if ((text = srv_stderr_text(s)) == NULL)
		return -1;
	for (p = text; (p = strstr(p, needle)) != NULL; p++)
		last = p;
	return last != NULL && srv_stderr_count(s, needle) > before
	       ? atoi(last + sizeof(needle) - 1) : -1;
}

/*
 * --accept reuseport, two workers, -c 4. Three clients hold three slots;
 * then the server has no descriptor left, and clients wait on both
 * workers' sockets: both workers run out of descriptors and back off.
 * Then there is room for exactly one more descriptor: the first retry,
 * whichever worker's, takes the last slot and that descriptor; the other
 * worker's retry (at most BACKOFF_MAX_MS, 1 s, later) finds no slot, and
 * it pauses inside its back-off episode with no retry pending. SIGUSR1's
 * count says when both have paused: no clock decides it. The next free
 * slot must get that worker accepting again (its retry is made when it
 * resumes): every client is served in the end. Without that, it never
 * listened again and the clients on its socket waited for ever. Only
 * reuseport shows it: with shared the other worker serves them all, and
 * with handoff nobody else takes slots.
 */
static void test_backoff_at_limit(void)
{
	enum { N = 40, HELD = 3, WAIT_MS = 10000, DRAIN_MS = 20000 };
	const char *args[] = { "-t", "2", "-c", "4", NULL };	/* HELD + 1 */
	int fds[N], held[HELD], served = 0, backoffs = 0, echoed = 0, paused = -1;
	bool done[N] = { false };	/* echoed */
	struct rlimit old;
	uint64_t deadline;
	struct srv s;
	char x;

	harness_extra_args[0] = "--accept";
	harness_extra_args[1] = "reuseport";
	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	if (prlimit(s.pid, RLIMIT_NOFILE, NULL, &old) != 0)
		bail("cannot read the server's descriptor limit");
	for (int i = 0; i < HELD; i++) {
		held[i] = tcp_connect(s.port);
		if (held[i] == -1 || send_all(held[i], "h", 1) != 0 ||
		    recv_wait(held[i], &x, 1, WAIT_MS) != 1)
			bail("cannot get a connection echoed");
	}
	set_fd_limit(s.pid, limit_leaving(s.pid, 0), old.rlim_max);
	for (int i = 0; i < N; i++) {	/* the kernel's hash spreads them over both */
		fds[i] = tcp_connect(s.port);
		if (fds[i] == -1 || send_all(fds[i], "b", 1) != 0)
			bail("cannot connect");
	}
	tap_waiting("both workers backing off");
	for (deadline = now_ms() + WAIT_MS; now_ms() < deadline && backoffs < 2; usleep(10000))
		backoffs = srv_stderr_count(&s, "pausing new connections (will retry)");
	ok(backoffs >= 2, "reuseport, -c 4, 3 held, no descriptor left: both workers ran out "
	   "of descriptors and backed off (%d)", backoffs);

	set_fd_limit(s.pid, limit_leaving(s.pid, 1), old.rlim_max);
	tap_waiting("one retry taking the last slot, the other pausing");
	for (deadline = now_ms() + WAIT_MS; now_ms() < deadline && (echoed < 1 || paused != 2);
	     usleep(10000)) {
		for (int i = 0; i < N; i++)
			if (!done[i] && recv_wait(fds[i], &x, 1, 0) == 1) {
				done[i] = true;
				echoed++;
			}
		if (echoed >= 1)
			paused = paused_now(&s);
	}
	ok(echoed == 1 && paused == 2, "room for one descriptor: one retry took the last slot "
	   "(%d echoed), and the other found none: both workers paused (SIGUSR1: %d)",
	   echoed, paused);

	set_fd_limit(s.pid, old.rlim_cur, old.rlim_max);
	for (int i = 0; i < HELD; i++)
		close(held[i]);	/* frees three slots */
	tap_waiting("every client served, closing each once echoed");
	for (deadline = now_ms() + DRAIN_MS; now_ms() < deadline && served < N; usleep(10000))
		for (int i = 0; i < N; i++) {
			if (fds[i] == -1 || (!done[i] && recv_wait(fds[i], &x, 1, 0) != 1))
				continue;
			close(fds[i]);	/* frees its slot */
			fds[i] = -1;
			served++;
		}
	ok(served == N, "as slots freed, every client was served, on both workers' sockets "
	   "(%d of %d)", served, N);
	for (int i = 0; i < N; i++)
		if (fds[i] != -1)
			close(fds[i]);
	srv_stop(&s, SIGTERM, 10000);
	unlink(s.err_path);
}

int main(void)
{
	unsigned n_strategies = 0;

	tap_watchdog(300);
	tap_on_watchdog(harness_kill_children);
	signal(SIGPIPE, SIG_IGN);
	/* Per strategy: the counter, the churn, the count, the stop; then three. */
	while (mts_accept_name(n_strategies) != NULL)	/* the library's list */
		n_strategies++;
	tap_plan(4 * (int)n_strategies + 3);
	for (unsigned i = 0; i < n_strategies; i++)
		churn_one(mts_accept_name(i));
	test_backoff_at_limit();
	return tap_done();
}
