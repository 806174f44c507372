/*
 * notify.c - readiness, stop and watchdog notification to a service
 * manager (notify.h).
 *
 * THE PROTOCOL, WRITTEN HERE
 *
 * One datagram per message, "KEY=VALUE" lines, sent to the AF_UNIX socket
 * that NOTIFY_SOCKET names: a path, or, when it begins with '@', a name in
 * Linux's abstract namespace, the '@' standing for the NUL byte such a name
 * begins with (sd_notify(3), NOTES). That paragraph is the whole protocol,
 * and systemd lists it among the interfaces others may implement on their
 * own (its "Interface Portability and Stability" chart). libsystemd's
 * sd_notify() would do the same from an 825 KiB shared library (Debian 12's
 * libsystemd0), at the cost of a build dependency (libsystemd-dev, which
 * has no static archive for static programs), a Requires.private for every
 * program built on this library, and a library that exists only where
 * systemd does. What it adds besides, the sender's credentials
 * (SCM_CREDENTIALS), the kernel attaches anyway when the receiving socket
 * asks for them with SO_PASSCRED, as systemd's does.
 *
 * WHO SPEAKS
 *
 * The process the manager started, when NOTIFY_SOCKET is set: it is read
 * at each message, so a program that embeds the library and wants it quiet
 * unsets it before mts_run(). A child of fork() that called
 * mts_after_fork_child() says nothing: the manager takes messages from the
 * main process only (NotifyAccess=main, the default for Type=notify; a
 * child's are refused with a warning in the journal), and where it takes
 * them from all (NotifyAccess=all) one child's READY=1 or STOPPING=1 would
 * speak for the whole service. Nor is MAINPID= sent: the manager knows
 * the process it started, and that is the one sending.
 *
 * WHAT A SEND MAY WAIT FOR
 *
 * The socket blocks, as sd_notify()'s does: while the manager's queue is
 * full (net.unix.max_dgram_qlen datagrams), a send waits for room. Dropping
 * READY=1 instead would leave the service "activating" until the manager's
 * start time-out killed it; and systemd reads its socket from its own event
 * loop, so a full queue is a moment, not a state. tests/test_notify holds
 * READY=1 up that way and finds the server listening and echoing meanwhile.
 * A send that fails (no such socket, no permission) is logged, and the
 * server serves on: the manager's view of the service is not worth the
 * service.
 *
 * THE WATCHDOG
 *
 * When the manager sets WATCHDOG_USEC (WatchdogSec=), and WATCHDOG_PID, if
 * set, names this process (sd_watchdog_enabled(3): otherwise they were
 * meant for a process further up), WATCHDOG=1 goes every half of that
 * interval, as sd_watchdog_enabled(3) advises, from a timer on the loop of
 * the thread in mts_run(). What a ping proves is that this loop turns: the
 * control channel (stop, statistics, a freed slot) and, with accept
 * "handoff", the acceptor. A worker stuck inside a callback is not seen:
 * proving every worker's loop would take a call posted to each of them
 * per ping, and an answer from all before the next.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "notify.h"

/* Set in a child of fork() before it starts any thread; read by threads it
 * starts later (pthread_create() orders the two), or by itself. */
static bool silenced;

void notify_after_fork_child(void)
{
	silenced = true;
}

/*
 * One datagram to the manager. 0 if it was sent, or if there is nobody to
 * send it to (NOTIFY_SOCKET unset, or this process silenced); else a
 * negative errno.
 */
static int notify_send(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len, want = strlen(state);
	socklen_t sa_len;
	ssize_t sent;
	int fd, rc = 0;

	if (name == NULL || silenced)
		return 0;
	len = strlen(name);
	if (len < 2 || (name[0] != '/' && name[0] != '@'))
		return -EAFNOSUPPORT;	/* systemd's own "vsock:" included */
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@') {
		/* An abstract name is every byte of the length given, NUL
		 * first and none at the end: a terminator would be part of
		 * the name, and name a socket nobody bound. */
		sa.sun_path[0] = '\0';
		sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	do
		sent = sendto(fd, state, want, MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
	while (sent == -1 && errno == EINTR);
	if (sent == -1)
		rc = -errno;
	else if ((size_t)sent != want)
		rc = -EMSGSIZE;		/* a datagram goes whole or not at all */
	close(fd);
	return rc;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct notify *n = arg;
	struct timespec now;
	unsigned skipped;
	int rc = notify_send("WATCHDOG=1");

	(void)fd;
	(void)what;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (rc < 0 && log_limit_allow(&n->ping_failed,
				      (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000,
				      60000, &skipped))
		log_warn("cannot send the service manager's watchdog ping: %s (%u more failed "
			 "since the last line)", strerror(-rc), skipped);
}

/* The watchdog's interval in microseconds if the manager asked for pings
 * from this process, else 0. */
static uint64_t watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long u, p;
	char *end;

	if (usec == NULL || getenv("NOTIFY_SOCKET") == NULL || silenced)
		return 0;
	if (pid != NULL) {
		errno = 0;
		p = strtoull(pid, &end, 10);
		if (*pid == '\0' || *end != '\0' || errno != 0 || p != (unsigned long long)getpid())
			return 0;	/* meant for another process */
	}
	errno = 0;
	u = strtoull(usec, &end, 10);
	if (*usec == '\0' || *end != '\0' || errno != 0 || u == 0) {
		log_warn("ignoring a malformed WATCHDOG_USEC '%s'", usec);
		return 0;
	}
	return u;
}

static void start_watchdog(struct notify *n, struct event_base *base)
{
	uint64_t usec = watchdog_usec() / 2;
	struct timeval every = { .tv_sec = (time_t)(usec / 1000000),
				 .tv_usec = (suseconds_t)(usec % 1000000) };

	if (usec == 0)
		return;
	n->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, n);
	if (n->watchdog == NULL || event_add(n->watchdog, &every) == -1) {
		log_warn("cannot start the watchdog's pings: out of memory");
		notify_destroy(n);
		return;
	}
	log_info("watchdog: WATCHDOG=1 every %" PRIu64 " ms", usec / 1000);
}

void notify_ready(struct notify *n, struct event_base *base, const char *status)
{
	char msg[512];
	int rc;

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	if ((rc = notify_send(msg)) < 0)
		log_warn("cannot tell the service manager READY=1 (NOTIFY_SOCKET=%s): %s",
			 getenv("NOTIFY_SOCKET"), strerror(-rc));
	n->ready = true;	/* failed or not: what is said next follows it */
	start_watchdog(n, base);
}

void notify_stopping(struct notify *n)
{
	int rc;

	if (!n->ready)
		return;
	n->ready = false;
	if (n->watchdog != NULL)
		event_del(n->watchdog);
	rc = notify_send("STOPPING=1\nSTATUS=stopping: finishing connections");
	if (rc < 0)
		log_warn("cannot tell the service manager STOPPING=1 (NOTIFY_SOCKET=%s): %s",
			 getenv("NOTIFY_SOCKET"), strerror(-rc));
}

void notify_destroy(struct notify *n)
{
	if (n->watchdog != NULL)
		event_free(n->watchdog);
	n->watchdog = NULL;
}
