/*
 * test_notify.c - readiness notification (src/core/server/notify.c): the
 * test plays the service manager. It binds an AF_UNIX datagram socket,
 * points NOTIFY_SOCKET at it, asks the kernel for each sender's pid
 * (SO_PASSCRED), and checks what echoserver says, and when:
 *
 *   - READY=1 first, from the server itself, once its port accepts and
 *     echoes; with READY=1 held up by a full queue (the send waits, as
 *     sd_notify's does), the server already listens and its workers
 *     already echo (--accept shared: they accept for themselves);
 *   - STOPPING=1 as SIGTERM's graceful stop begins, while a client still
 *     holds the server up, then nothing more;
 *   - an abstract socket ("@name") works; one that nobody bound, or a path
 *     where no socket is, costs a warning, never the service;
 *   - WATCHDOG=1 every half of WATCHDOG_USEC, unless WATCHDOG_PID names
 *     another process;
 *   - and the library in this process: a server run by a program that
 *     embeds it says READY=1 and STOPPING=1 too, nothing with NOTIFY_SOCKET
 *     unset, nothing in a child of fork() that called the fork hooks.
 *
 * Every wait is bounded and fails with a message; loopback only.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mtserver.h"
#include "tap.h"

#if defined(SANITIZED)
#define SLOWDOWN 5
#else
#define SLOWDOWN 1
#endif
#define WAIT_MS (10000 * SLOWDOWN)

/* ---- the service manager's side ---------------------------------------- */

struct manager {
	int fd;
	char path[108];		/* the file; "" for an abstract socket */
};

/* Binds a datagram socket (abstract: a name in Linux's abstract
 * namespace) and points NOTIFY_SOCKET at it. */
static void manager_open(struct manager *m, bool abstract)
{
	static unsigned serial;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char name[108];
	socklen_t len;
	int on = 1;

	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (m->fd == -1 || setsockopt(m->fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == -1)
		bail("cannot make the manager's socket");
	if (abstract) {
		snprintf(name, sizeof(name), "@mtserver-test-notify-%d-%u", (int)getpid(), serial++);
		memcpy(sa.sun_path, name, strlen(name));
		sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
		m->path[0] = '\0';
	} else {
		snprintf(name, sizeof(name), "/tmp/mtserver-test-notify-%d-%u", (int)getpid(),
			 serial++);
		unlink(name);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
		len = sizeof(sa);
		snprintf(m->path, sizeof(m->path), "%s", name);
	}
	if (bind(m->fd, (struct sockaddr *)&sa, len) == -1)
		bail("cannot bind the manager's socket");
	setenv("NOTIFY_SOCKET", name, 1);
}

static void manager_close(struct manager *m)
{
	close(m->fd);
	if (m->path[0] != '\0')
		unlink(m->path);
	unsetenv("NOTIFY_SOCKET");
}

/* The next message, NUL-terminated in buf, and its sender's pid: its
 * length, or -1 if none came within ms (0: only one already queued). */
static int manager_recv(struct manager *m, char *buf, size_t len, pid_t *from, int ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
	struct pollfd p = { .fd = m->fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return -1;
	n = recvmsg(m->fd, &msg, MSG_DONTWAIT);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	*from = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cred;

			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
			*from = cred.pid;
		}
	return (int)n;
}

/* Is `line` one of the lines of msg? */
static bool has_line(const char *msg, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = msg; p != NULL; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

/* The next message that is not a watchdog ping (those are counted into
 * *pings when pings is not NULL); -1 if none came within ms. */
static int manager_next(struct manager *m, char *buf, size_t len, pid_t *from, int ms,
			unsigned *pings)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	int n;

	for (;;) {
		int left = (int)(deadline > now_ms() ? deadline - now_ms() : 0);

		if ((n = manager_recv(m, buf, len, from, left)) < 0 || !has_line(buf, "WATCHDOG=1"))
			return n;
		if (pings != NULL)
			(*pings)++;
	}
}

/* msg on one line, for a TAP line: its newlines shown as " | ". */
static const char *flat(const char *msg)
{
	static char buf[4][512];
	static unsigned next;
	char *out = buf[next++ % 4];
	size_t o = 0;

	for (const char *p = msg; *p != '\0' && o + 4 < sizeof(buf[0]); p++)
		if (*p == '\n') {
			memcpy(out + o, " | ", 3);
			o += 3;
		} else {
			out[o++] = *p;
		}
	out[o] = '\0';
	return out;
}

/* How many messages are queued now (and drops them). */
static unsigned manager_drain(struct manager *m)
{
	char buf[512];
	unsigned n = 0;
	pid_t from;

	while (manager_recv(m, buf, sizeof(buf), &from, 0) >= 0)
		n++;
	return n;
}

/* ---- helpers ------------------------------------------------------------- */

/* One line through the server and back, within the socket's time-outs. */
static bool echoes(int port)
{
	char got[6];
	int fd = tcp_connect(port);
	bool same = fd >= 0 && send_all(fd, "hello\n", 6) == 0 && recv_all(fd, got, 6) == 0 &&
		    memcmp(got, "hello\n", 6) == 0;

	if (fd >= 0)
		close(fd);
	return same;
}

/* ---- echoserver ------------------------------------------------------------ */

/* READY=1 first, once the port echoes; STOPPING=1 as the stop begins, while
 * a client still holds the server up; nothing after it. */
static void test_ready_then_stopping(void)
{
	const char *args[] = { "-t", "2", "--grace", "30", NULL };
	struct manager m;
	struct srv s;
	char msg[512], port[16];
	pid_t from;
	int n, fd, status;
	bool alive;

	manager_open(&m, false);
	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	snprintf(port, sizeof(port), ":%d", s.port);
	tap_waiting("READY=1 from the server");
	n = manager_next(&m, msg, sizeof(msg), &from, WAIT_MS, NULL);
	ok(n > 0 && has_line(msg, "READY=1") && from == s.pid && strstr(msg, "STATUS=") &&
	   strstr(msg, port) != NULL,
	   "READY=1 is the first message, from the server itself, with a STATUS= naming its "
	   "port %d (got '%s' from pid %d, server %d)", s.port, n > 0 ? flat(msg) : "nothing",
	   (int)from, (int)s.pid);
	ok(echoes(s.port), "right after READY=1 the port accepts and echoes");

	/* A client that has not closed holds the graceful stop (its lingering
	 * close waits for it, up to --grace 30): STOPPING=1 must come before. */
	fd = tcp_connect(s.port);
	ok(fd >= 0 && send_all(fd, "x", 1) == 0 && recv_all(fd, msg, 1) == 0,
	   "a client connects and is echoed before SIGTERM");
	kill(s.pid, SIGTERM);
	tap_waiting("STOPPING=1 after SIGTERM");
	n = manager_next(&m, msg, sizeof(msg), &from, WAIT_MS, NULL);
	alive = srv_alive(&s);
	ok(n > 0 && has_line(msg, "STOPPING=1") && from == s.pid && alive,
	   "SIGTERM: STOPPING=1 is the next message, from the server, while a client still "
	   "holds it up (got '%s'; server %s)", n > 0 ? flat(msg) : "nothing",
	   alive ? "running" : "gone");
	tap_waiting("the server's FIN, then its exit");
	recv_wait(fd, msg, sizeof(msg), WAIT_MS);
	close(fd);
	status = srv_stop(&s, 0, WAIT_MS);	/* no second signal: it ends by itself */
	n = (int)manager_drain(&m);
	ok(status == 0 && n == 0,
	   "the server exits 0 once its client closes, and says nothing after STOPPING=1 "
	   "(status %d, %d more messages)", status, n);
	unlink(s.err_path);
	manager_close(&m);
}

/*
 * The kernel queues net.unix.max_dgram_qlen datagrams per socket (and a
 * sender's own buffer holds only so many): fill the queue from fresh
 * sockets until one cannot send even one datagram. Returns how many.
 */
static unsigned fill_queue(struct manager *m, int *fillers, unsigned max_fillers,
			   unsigned *used)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned sent = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->path);
	for (*used = 0; *used < max_fillers; (*used)++) {
		unsigned before = sent;
		int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		fillers[*used] = fd;
		while (sendto(fd, "FILLER=1", 8, MSG_DONTWAIT, (struct sockaddr *)&sa,
			      sizeof(sa)) == 8)
			sent++;
		if (sent == before) {
			(*used)++;
			break;	/* a fresh socket could not send: the queue is full */
		}
	}
	return sent;
}

/*
 * With READY=1 held up (its send waits for room), the server already
 * listens, and its workers already accept and echo: READY=1 is said after
 * both, never before. (--accept shared: the workers accept for
 * themselves, so an echo needs nothing from the thread that waits.)
 */
static void test_ready_waits_for_room(void)
{
	const char *args[] = { "-t", "2", "--accept", "shared", NULL };
	int fillers[64];
	unsigned filled, used, queued = 0;
	struct manager m;
	struct srv s;
	char msg[512];
	pid_t from;
	int r = -1, st = -1, status = -1;
	bool started, echoed;

	manager_open(&m, false);
	filled = fill_queue(&m, fillers, 64, &used);
	if (used == 64)
		bail("cannot fill the notification queue");
	started = srv_start(&s, false, args) == 0;
	tap_waiting("an echo while READY=1 waits for room");
	echoed = started && echoes(s.port);
	ok(started && echoed,
	   "with the manager's queue full (%u datagrams: READY=1 cannot be sent yet), the "
	   "server prints its address, and its workers accept and echo (%s)", filled,
	   !started ? "it did not start" : echoed ? "echoed" : "no echo");
	if (started) {
		tap_waiting("READY=1 once the queue has room");
		while ((r = manager_recv(&m, msg, sizeof(msg), &from, WAIT_MS)) > 0 &&
		       has_line(msg, "FILLER=1"))
			queued++;
		kill(s.pid, SIGTERM);
		if (r > 0 && has_line(msg, "READY=1")) {
			tap_waiting("STOPPING=1 after the held READY=1");
			st = manager_next(&m, msg, sizeof(msg), &from, WAIT_MS, NULL);
		}
		status = srv_stop(&s, SIGTERM, WAIT_MS);
		unlink(s.err_path);
	}
	ok(r > 0 && queued == filled && st > 0 && has_line(msg, "STOPPING=1") && status == 0,
	   "as the queue drains, READY=1 arrives behind the %u datagrams before it (%u read), "
	   "then STOPPING=1 on SIGTERM; exit %d", filled, queued, status);
	for (unsigned i = 0; i < used; i++)
		close(fillers[i]);
	manager_close(&m);
}

/* STOPPING=1 after READY=1 on an abstract socket too. */
static void test_abstract(void)
{
	const char *args[] = { "-t", "1", NULL };
	struct manager m;
	struct srv s;
	char ready[512], stopping[512];
	pid_t from;
	int r, st, status;

	manager_open(&m, true);
	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	tap_waiting("READY=1 on an abstract socket");
	r = manager_next(&m, ready, sizeof(ready), &from, WAIT_MS, NULL);
	kill(s.pid, SIGTERM);
	tap_waiting("STOPPING=1 on an abstract socket");
	st = manager_next(&m, stopping, sizeof(stopping), &from, WAIT_MS, NULL);
	status = srv_stop(&s, SIGTERM, WAIT_MS);
	ok(r > 0 && has_line(ready, "READY=1") && st > 0 && has_line(stopping, "STOPPING=1") &&
	   status == 0,
	   "NOTIFY_SOCKET=%s (abstract): READY=1, then STOPPING=1 on SIGTERM, exit %d",
	   getenv("NOTIFY_SOCKET"), status);
	unlink(s.err_path);
	manager_close(&m);
}

/* NOTIFY_SOCKET naming nothing: a warning, and the server serves. */
static void test_unreachable(const char *where, const char *what)
{
	const char *args[] = { "-t", "1", NULL };
	struct srv s;
	bool echoed, warned;
	int status;

	setenv("NOTIFY_SOCKET", where, 1);
	if (srv_start(&s, false, args) != 0) {
		ok(0, "NOTIFY_SOCKET=%s (%s): echoserver starts", where, what);
		unsetenv("NOTIFY_SOCKET");
		return;
	}
	echoed = echoes(s.port);
	status = srv_stop(&s, SIGTERM, WAIT_MS);
	warned = srv_stderr_has(&s, "cannot tell the service manager READY=1");
	ok(echoed && status == 0 && warned,
	   "NOTIFY_SOCKET=%s (%s): the server echoes, warns that READY=1 could not be sent "
	   "(%s), and exits %d", where, what, warned ? "warned" : "no warning", status);
	unlink(s.err_path);
	unsetenv("NOTIFY_SOCKET");
}

/* WATCHDOG_USEC: pings every half interval, between READY=1 and
 * STOPPING=1; none when WATCHDOG_PID names another process. */
static void test_watchdog(bool mine)
{
	const char *args[] = { "-t", "1", NULL };
	unsigned pings = 0;
	struct manager m;
	struct srv s;
	char msg[512];
	pid_t from;
	int r, st = -1, status;
	bool logged;

	manager_open(&m, false);
	setenv("WATCHDOG_USEC", mine ? "100000" : "2000", 1);
	if (!mine)
		setenv("WATCHDOG_PID", "1", 1);	/* init: never the server */
	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	tap_waiting("READY=1 before the watchdog's pings");
	r = manager_next(&m, msg, sizeof(msg), &from, WAIT_MS, &pings);
	if (r > 0 && has_line(msg, "READY=1")) {
		if (mine) {
			tap_waiting("three watchdog pings");
			while (pings < 3 && manager_recv(&m, msg, sizeof(msg), &from, WAIT_MS) > 0)
				pings += has_line(msg, "WATCHDOG=1");
		} else {
			/* Twenty connections, each accepted on the main loop,
			 * where a ping every millisecond would be due. */
			for (int i = 0; i < 20; i++)
				echoes(s.port);
		}
		kill(s.pid, SIGTERM);
		tap_waiting("STOPPING=1 after the pings");
		st = manager_next(&m, msg, sizeof(msg), &from, WAIT_MS, &pings);
	}
	status = srv_stop(&s, SIGTERM, WAIT_MS);
	logged = srv_stderr_has(&s, mine ? "watchdog: WATCHDOG=1 every 50 ms" : "watchdog:");
	if (mine)
		ok(r > 0 && pings >= 3 && st > 0 && has_line(msg, "STOPPING=1") && logged &&
		   status == 0,
		   "WATCHDOG_USEC=100000: READY=1, then WATCHDOG=1 pings (%u seen; the log says "
		   "every 50 ms: %s), then STOPPING=1", pings, logged ? "yes" : "no");
	else
		ok(r > 0 && pings == 0 && st > 0 && has_line(msg, "STOPPING=1") && !logged &&
		   status == 0,
		   "WATCHDOG_PID naming another process: no pings (%u seen), no watchdog in the "
		   "log, READY=1 and STOPPING=1 as usual", pings);
	unlink(s.err_path);
	manager_close(&m);
}

/* ---- the library in this process ------------------------------------------ */

static int refuse(struct mts_conn *c, void *arg) { return -ECONNABORTED; }
static void nothing(struct mts_conn *c, void *arg) { }

static void *run_main(void *arg)
{
	return (void *)(intptr_t)mts_run(arg);
}

/* A server of one worker on 127.0.0.1, port 0: run, then stopped once
 * `m` has its READY=1 (m NULL: at once). True if it ran and stopped. */
static bool run_server(struct manager *m, char *ready, size_t len)
{
	const char *listen[] = { "127.0.0.1" };
	struct mts_handler h = { .on_open = refuse, .on_shutdown = nothing, .on_close = nothing };
	struct mts_config cfg;
	struct mts_server *s;
	pthread_t runner;
	void *rc;
	char why[256];
	pid_t from;

	mts_config_defaults(&cfg);
	cfg.listen = listen;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = 1;
	if (mts_new(&s, &cfg, &h, why, sizeof(why)) != 0)
		return false;
	pthread_create(&runner, NULL, run_main, s);
	if (m != NULL) {
		tap_waiting("READY=1 from a server in this process");
		if (manager_next(m, ready, len, &from, WAIT_MS, NULL) < 0)
			snprintf(ready, len, "nothing");
	}
	mts_stop(s);
	pthread_join(runner, &rc);
	mts_free(s);
	return rc == NULL;
}

/* A child of fork(), with the hooks, runs a server and says nothing. Run
 * first, while this process has no thread to fork. */
static void test_fork_child_silent(void)
{
	struct manager m;
	int status = -1, waited = 0;
	unsigned said;
	pid_t pid;

	manager_open(&m, false);
	mts_before_fork();
	pid = fork();
	if (pid == 0) {
		mts_after_fork_child();
		_exit(run_server(NULL, NULL, 0) ? 0 : 1);
	}
	mts_after_fork_parent();
	if (pid < 0)
		bail("fork");
	tap_waiting("the child of fork() to run its server");
	while (waitpid(pid, &status, WNOHANG) == 0 && waited++ < WAIT_MS)
		usleep(1000);
	if (waited >= WAIT_MS) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	said = manager_drain(&m);	/* its sends, had there been any, are queued */
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && said == 0,
	   "a child of fork() that called mts_after_fork_child() runs a server and tells the "
	   "manager nothing (status %d, %u messages)", status, said);
	manager_close(&m);
}

/* Embedded: READY=1 and STOPPING=1 when NOTIFY_SOCKET is set, from this
 * process; nothing when it is not. */
static void test_library(void)
{
	struct manager m;
	char ready[512], stopping[512];
	pid_t from = 0;
	unsigned said;
	bool ran;
	int st;

	manager_open(&m, false);
	ran = run_server(&m, ready, sizeof(ready));
	st = manager_next(&m, stopping, sizeof(stopping), &from, 0, NULL);
	ok(ran && has_line(ready, "READY=1") && st > 0 && has_line(stopping, "STOPPING=1") &&
	   from == getpid(),
	   "a program's own server says READY=1 from mts_run(), STOPPING=1 after mts_stop() "
	   "(got '%s', then '%s')", flat(ready), st > 0 ? flat(stopping) : "nothing");

	unsetenv("NOTIFY_SOCKET");	/* the socket stays bound: would it hear anything? */
	ran = run_server(NULL, NULL, 0);
	said = manager_drain(&m);
	ok(ran && said == 0, "with NOTIFY_SOCKET unset, a whole run says nothing (%u messages)",
	   said);
	manager_close(&m);
}

int main(void)
{
	tap_watchdog(180);
	tap_on_watchdog(harness_kill_children);
	mts_log_set_level(MTS_LOG_WARN);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	tap_plan(1 + 5 + 2 + 1 + 2 + 2 + 2);
	test_fork_child_silent();
	test_ready_then_stopping();
	test_ready_waits_for_room();
	test_abstract();
	test_unreachable("/nonexistent/mtserver-notify", "a path where no socket is");
	test_unreachable("@mtserver-test-notify-nobody", "an abstract name nobody bound");
	test_watchdog(true);
	test_watchdog(false);
	test_library();
	return tap_done();
}
