/*
 * test_cli.c - the command line and the process: help, version, bad
 * arguments (exit 2, naming the problem), address in use (exit 1), the
 * "listening on" lines, signals, the raised descriptor limit, and what
 * starts each log line (a priority under the journal, else the time).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mtserver.h"
#include "tap.h"

struct bad_case {
	const char *args[6];
	const char *must_mention;
};

static const struct bad_case bad[] = {
	{ { "--threads", "0" }, "--threads" },
	{ { "-t", "many" }, "--threads" },
	{ { "--port", "70000" }, "--port" },
	{ { "-p", "-1" }, "--port" },
	{ { "--backlog", "0" }, "--backlog" },
	{ { "--max-conns", "x" }, "--max-conns" },
	{ { "--idle-timeout", "1.5" }, "--idle-timeout" },
	{ { "--dispatch", "carrier-pigeon" }, "carrier-pigeon" },
	{ { "--balance", "random" }, "random" },
	{ { "--balance", "rr", "--accept", "reuseport" }, "balance" },
	{ { "--dispatch", "ring:size=3" }, "size" },
	{ { "--dispatch", "wfcq:size=64" }, "wfcq" },
	{ { "--dispatch", "ring:size=8", "--ring-size", "16" }, "twice" },
	{ { "--spin-us", "-5", "--dispatch", "spin-then-block" }, "--spin-us" },
	{ { "--spin-us", "10" }, "spin-then-block" },
	{ { "--dispatch", "ring", "--ring-size", "1000" }, "--ring-size" },
	{ { "--dispatch", "ring", "--ring-size", "0" }, "--ring-size" },
	{ { "--dispatch", "ring", "--ring-size", "33554432" }, "--ring-size" },
	{ { "--ring-size", "64" }, "--ring-size" },
	{ { "--no-such-flag" }, "--no-such-flag" },
	{ { "-Z" }, "-Z" },
	{ { "--port" }, "--port" },
	{ { "stray" }, "stray" },
	{ { "--low-watermark", "9000", "--high-watermark", "100" }, "--low-watermark" },
	{ { "--proxy-protocol", "--proxy-from", "10.0.0.0/33" }, "10.0.0.0/33" },
	{ { "--proxy-protocol", "--proxy-from", "10.0.0.0/8,balancer" }, "balancer" },
	{ { "--proxy-from", "" }, "--proxy-from" },
	{ { "--proxy-timeout", "0" }, "--proxy-timeout" },
	{ { "--proxy-timeout", "3601" }, "--proxy-timeout" },
	{ { "--udp-max", "0" }, "--udp-max" },
	{ { "--udp-max", "65536" }, "--udp-max" },
	{ { "--udp-rate", "-1" }, "--udp-rate" },
	{ { "--udp", "--udp-rate", "lots" }, "--udp-rate" },
};

static void test_bad_args(void)
{
	char out[4096];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = run_capture(bad[i].args, out, sizeof(out), 5000);
		char args[128] = "";

		for (size_t a = 0; a < 6 && bad[i].args[a] != NULL; a++)
			snprintf(args + strlen(args), sizeof(args) - strlen(args), "%s%s",
				 a ? " " : "", bad[i].args[a]);
		ok(rc == 2 && strstr(out, bad[i].must_mention) != NULL,
		   "bad arguments '%s': exit %d, message names '%s'", args, rc,
		   bad[i].must_mention);
	}
}

static void test_help_version(void)
{
	static const char *const opts[] = { "--port", "--listen", "--threads", "--backlog",
		"--max-conns", "--idle-timeout", "--dispatch", "--spin-us", "--ring-size", "--balance",
		"--verbose",
		"--quiet", "--version", "--help", "--list-dispatch", "--list-accept", NULL };
	const char *help[] = { "--help", NULL }, *version[] = { "-V", NULL };
	char out[8192];
	bool all = true;

	ok(run_capture(help, out, sizeof(out), 5000) == 0, "--help exits 0");
	for (const char *const *o = opts; *o != NULL; o++)
		all = all && strstr(out, *o) != NULL;
	ok(all, "--help lists every option");
	ok(run_capture(version, out, sizeof(out), 5000) == 0 && strstr(out, PACKAGE_VERSION),
	   "--version prints %s", PACKAGE_VERSION);
}

/* --list-dispatch and --list-accept print the library's lists, one name
 * per line, the default first (bench/run reads them): each option of a
 * variant on an indented line after it. */
static bool lists(const char *opt, const char *(*name)(unsigned))
{
	const char *args[] = { opt, NULL };
	char out[8192], *line, *save;
	unsigned i = 0;
	bool same = run_capture(args, out, sizeof(out), 5000) == 0;

	for (line = strtok_r(out, "\n", &save); same && line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char want[64];

		if (line[0] == ' ')
			continue;	/* an option of the variant above */
		snprintf(want, sizeof(want), "%s%s", name(i) ? name(i) : "(none)",
			 i == 0 ? " (default)" : "");
		same = strcmp(line, want) == 0;
		i++;
	}
	return same && name(i) == NULL;
}

static void test_lists(void)
{
	const char *args[] = { "--list-dispatch", NULL };
	char out[8192];

	ok(lists("--list-dispatch", mts_dispatch_name),
	   "--list-dispatch: exit 0, every variant mts_dispatch_name() names, in its order, "
	   "the first marked default");
	ok(run_capture(args, out, sizeof(out), 5000) == 0 && strstr(out, "\nring\n    size=4096 ") &&
	   strstr(out, "\nspin-then-block\n    us=10 "),
	   "--list-dispatch: a variant's options indented under it, with their defaults");
	ok(lists("--list-accept", mts_accept_name),
	   "--list-accept: exit 0, every strategy mts_accept_name() names, the first default");
}

/* What echoserver would have to cut short, it refuses. */
static void test_too_long(void)
{
	static char spec[400];
	const char *one[] = { "--dispatch", spec, NULL };
	const char *many[48];
	char out[4096];
	int rc;

	snprintf(spec, sizeof(spec), "ring:size=1");
	while (strlen(spec) + 8 < sizeof(spec))
		strcat(spec, ",size=1");
	rc = run_capture(one, out, sizeof(out), 5000);
	ok(rc == 2 && strstr(out, "too long") != NULL,
	   "--dispatch of %zu characters: exit %d (2 expected), refused as too long, not cut",
	   strlen(spec), rc);
	for (int i = 0; i < 46; i += 2) {
		many[i] = "--ring-size";
		many[i + 1] = "16";
	}
	many[46] = NULL;
	rc = run_capture(many, out, sizeof(out), 5000);
	ok(rc == 2 && strstr(out, "too many --ring-size") != NULL,
	   "23 times --ring-size: exit %d (2 expected), refused as too many, not cut", rc);
}

static void test_address_in_use(void)
{
	struct srv s;
	char port[16], out[4096];
	const char *args[] = { "-l", "127.0.0.1", "-p", port, NULL };
	int rc;

	if (srv_start(&s, false, NULL) != 0)
		bail("cannot start echoserver");
	snprintf(port, sizeof(port), "%d", s.port);
	rc = run_capture(args, out, sizeof(out), 5000);
	ok(rc == 1 && strstr(out, "address already in use") != NULL,
	   "a second server on the same port: exit %d, \"address already in use\"", rc);
	ok(srv_stop(&s, SIGINT, 5000) == 0, "SIGINT: exits 0");
	unlink(s.err_path);
}

static bool ipv6_loopback(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	bool yes = fd != -1 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

	if (fd != -1)
		close(fd);
	return yes;
}

static void test_listen_lines(void)
{
	struct srv s;
	const char *v4[] = { "-p", "0", NULL };
	const char *v6[] = { "-l", "::1", "-p", "0", NULL };
	char path[64], line[256];
	long soft = -1, hard = -2;
	FILE *f;

	/* Default: localhost; the port actually bound is printed. */
	if (srv_start(&s, true, v4) != 0)
		bail("cannot start echoserver");
	{
		char want[64];
		snprintf(want, sizeof(want), "echoserver: listening on 127.0.0.1:%d\n", s.port);
		ok(strncmp(s.banner, want, strlen(want)) == 0,
		   "by default it listens on localhost and prints '%.*s'",
		   (int)strlen(want) - 1, want);
	}

	/* The soft descriptor limit was raised to the hard one. */
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)s.pid);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "Max open files %ld %ld", &soft, &hard) == 2)
				break;
		fclose(f);
	}
	ok(soft == hard, "RLIMIT_NOFILE raised to the hard limit (%ld of %ld)", soft, hard);
	ok(srv_stop(&s, SIGTERM, 5000) == 0, "SIGTERM when idle: exits 0");
	unlink(s.err_path);

	if (!ipv6_loopback()) {
		ok(1, "# SKIP no IPv6 loopback here");
		return;
	}
	if (srv_start(&s, true, v6) != 0) {
		ok(0, "listen on ::1");
		return;
	}
	{
		char want[64];
		snprintf(want, sizeof(want), "echoserver: listening on [::1]:%d\n", s.port);
		ok(strcmp(s.banner, want) == 0, "an IPv6 listener is printed as [::1]:%d", s.port);
	}
	srv_stop(&s, SIGTERM, 5000);
	unlink(s.err_path);
}

/* A port that was free a moment ago (the tests below need a fixed one: with
 * port 0 every listener gets its own, and nothing could conflict). */
static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd != -1 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd != -1)
		close(fd);
	return port;
}

/* Everything the server printed on stdout within `ms` of its first line. */
static int listening_lines(struct srv *s, int ms)
{
	char buf[2048];
	size_t have = strlen(s->banner);
	uint64_t end = now_ms() + (uint64_t)ms;
	int n = 0;

	memcpy(buf, s->banner, have + 1);
	while (now_ms() < end && have < sizeof(buf) - 1) {
		struct pollfd p = { .fd = s->out_fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 50) <= 0)
			continue;
		r = read(s->out_fd, buf + have, sizeof(buf) - 1 - have);
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
	}
	for (char *at = buf; (at = strstr(at, "listening on ")) != NULL; at++)
		n++;
	return n;
}

/*
 * The same address twice is one listener; a wildcard and a specific address
 * on the same port conflict in the arguments themselves: exit 2, naming both
 * (it was exit 1, "address already in use", after binding the first).
 */
static void test_listen_conflicts(void)
{
	struct srv s;
	char port[16], out[4096];
	const char *dup[] = { "-l", "127.0.0.1", "-l", "127.0.0.1", "-p", port, NULL };
	const char *alias[] = { "-l", "localhost", "-l", "127.0.0.1", "-p", port, NULL };
	const char *wild[] = { "-l", "0.0.0.0", "-l", "127.0.0.1", "-p", port, NULL };
	int rc, lines, fd;

	snprintf(port, sizeof(port), "%d", free_port());
	rc = srv_start(&s, true, dup);
	lines = rc == 0 ? listening_lines(&s, 300) : 0;
	fd = rc == 0 ? tcp_connect(s.port) : -1;
	ok(rc == 0 && lines == 1 && fd != -1,
	   "-l 127.0.0.1 -l 127.0.0.1: one listener (%d 'listening on' lines), serving", lines);
	if (fd != -1)
		close(fd);
	if (rc == 0) {
		srv_stop(&s, SIGTERM, 5000);
		unlink(s.err_path);
	}

	rc = srv_start(&s, true, alias);
	fd = rc == 0 ? tcp_connect(s.port) : -1;
	ok(rc == 0 && fd != -1, "-l localhost -l 127.0.0.1: starts and serves");
	if (fd != -1)
		close(fd);
	if (rc == 0) {
		srv_stop(&s, SIGTERM, 5000);
		unlink(s.err_path);
	}

	rc = run_capture(wild, out, sizeof(out), 5000);
	ok(rc == 2 && strstr(out, "0.0.0.0") != NULL && strstr(out, "127.0.0.1") != NULL &&
	   strstr(out, "already in use") == NULL,
	   "-l 0.0.0.0 -l 127.0.0.1: exit %d, a conflict in the arguments naming both", rc);
}

/* Whether out says exit 1 with "cannot listen on <addr>: <reason>". */
static bool cannot_listen(int rc, const char *out, const char *addr, const char *reason)
{
	char want[160];

	snprintf(want, sizeof(want), "cannot listen on %s", addr);
	return rc == 1 && strstr(out, want) != NULL && strstr(out, reason) != NULL &&
	       strstr(out, "listening on ") == NULL;
}

/*
 * An address given with -l that cannot be listened on stops the server,
 * named with the reason, exit 1 (a start-up error): 192.0.2.1 (TEST-NET-1,
 * on no interface here: bind() fails with EADDRNOTAVAIL and nothing is
 * sent), alone or after one that works; a port in use on the second of two
 * addresses. It used to be skipped without a word. A name that does not
 * resolve is an argument error, exit 2, named: a label of 64 characters,
 * which the resolver refuses before it asks anyone (RFC 1035: at most 63).
 */
static void test_listen_errors(void)
{
	const char *both[] = { "-l", "127.0.0.1", "-l", "192.0.2.1", "-p", "0", NULL };
	const char *alone[] = { "-l", "192.0.2.1", "-p", "0", NULL };
	char port[16], second[32], out[4096], name[80];
	const char *in_use[] = { "-l", "127.0.0.1", "-l", "127.0.0.2", "-p", port, NULL };
	const char *unresolvable[] = { "-l", name, "-p", "0", NULL };
	const char *notavail = strerror(EADDRNOTAVAIL);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int rc, fd, p;

	rc = run_capture(both, out, sizeof(out), 5000);
	ok(cannot_listen(rc, out, "192.0.2.1:", notavail),
	   "-l 127.0.0.1 -l 192.0.2.1: exit %d (1 expected), naming 192.0.2.1 and '%s'", rc,
	   notavail);
	rc = run_capture(alone, out, sizeof(out), 5000);
	ok(cannot_listen(rc, out, "192.0.2.1:", notavail),
	   "-l 192.0.2.1: exit %d (1 expected), naming it and '%s'", rc, notavail);

	/* 127.0.0.2:p taken by a listening socket of ours. */
	p = free_port();
	sa.sin_port = htons((uint16_t)p);
	sa.sin_addr.s_addr = htonl(0x7f000002);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 1) == -1)
		bail("cannot listen on 127.0.0.2");
	snprintf(port, sizeof(port), "%d", p);
	snprintf(second, sizeof(second), "127.0.0.2:%d", p);
	rc = run_capture(in_use, out, sizeof(out), 5000);
	ok(cannot_listen(rc, out, second, "address already in use"),
	   "-l 127.0.0.1 -l 127.0.0.2 with 127.0.0.2:%d in use: exit %d (1 expected), naming it",
	   p, rc);
	close(fd);

	memset(name, 'a', 64);
	snprintf(name + 64, sizeof(name) - 64, ".invalid");
	rc = run_capture(unresolvable, out, sizeof(out), 5000);
	ok(rc == 2 && strstr(out, "cannot resolve") != NULL && strstr(out, name) != NULL,
	   "-l <a name that does not resolve>: exit %d (2 expected), naming it", rc);
	if (rc != 2 || strstr(out, name) == NULL)
		diag("it said: %s", out);
}

/*
 * In a child: a network namespace of its own whose loopback is up with
 * IPv4 alone, a host without IPv6. 0, or a negative errno where this
 * process may not make one (not root; some sandboxes).
 */
static int enter_host_without_ipv6(void)
{
	struct ifreq ifr = { .ifr_flags = 0 };
	int fd, rc = 0;

	if (unshare(CLONE_NEWNET) == -1)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || ioctl(fd, SIOCGIFFLAGS, &ifr) == -1)
		rc = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (rc == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) == -1)
		rc = -errno;
	if (fd != -1)
		close(fd);
	/* Where the kernel has no IPv6 at all, there is nothing to disable. */
	fd = open("/proc/sys/net/ipv6/conf/lo/disable_ipv6", O_WRONLY | O_CLOEXEC);
	if (rc == 0 && fd != -1 && write(fd, "1", 1) != 1)
		rc = -errno;
	if (fd != -1)
		close(fd);
	return rc;
}

/*
 * In the same child: /etc/hosts of its own (a private mount namespace),
 * where near.test is 127.0.0.1 and 192.0.2.1. 0 or a negative errno.
 */
static int enter_own_hosts(void)
{
	static const char hosts[] = "127.0.0.1 near.test\n192.0.2.1 near.test\n";
	char path[] = "/tmp/test_cli-hosts-XXXXXX";
	int fd = mkstemp(path), rc = 0;

	if (fd == -1 || write(fd, hosts, sizeof(hosts) - 1) != (ssize_t)sizeof(hosts) - 1 ||
	    unshare(CLONE_NEWNS) == -1 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
	    mount(path, "/etc/hosts", NULL, MS_BIND, NULL) == -1)
		rc = -errno;
	if (fd != -1)
		close(fd);
	unlink(path);		/* the bind mount holds it */
	return rc;
}

enum {
	NS_STARTS = 1,		/* the default starts, on 127.0.0.1 alone, and echoes */
	NS_SAYS = 2,		/* ... with an info line naming [::1] and why */
	NS_V6_NAMED = 4,	/* -l ::1: exit 1 naming it */
	NS_NAME_NAMED = 8,	/* -l near.test: exit 1 naming 192.0.2.1 and near.test */
	NS_NO_HOSTS = 32,	/* no mount namespace here */
	NS_NONE = 64,		/* no network namespace here */
};

/* The child's half of test_namespaces(): its findings as NS_* bits. */
static int namespace_child(void)
{
	const char *dflt[] = { "-p", "0", NULL }, *v6[] = { "-l", "::1", "-p", "0", NULL };
	const char *near[] = { "-l", "near.test", "-p", "0", NULL };
	char out[4096], want[96], c = 'x';
	int found = 0, rc, fd;
	struct srv s;

	alarm(60);	/* the parent's watchdog does not reach this process */
	if (enter_host_without_ipv6() < 0)
		return NS_NONE;
	if (srv_start(&s, true, dflt) == 0) {
		fd = tcp_connect(s.port);
		if (listening_lines(&s, 300) == 1 && strstr(s.banner, "on 127.0.0.1:") &&
		    fd != -1 && send_all(fd, &c, 1) == 0 && recv_all(fd, &c, 1) == 0)
			found |= NS_STARTS;
		snprintf(want, sizeof(want), "info: not listening on [::1]:%d, an address of the "
			 "default: ", s.port);
		if (srv_stderr_has(&s, want))
			found |= NS_SAYS;
		if (fd != -1)
			close(fd);
		srv_stop(&s, SIGTERM, 5000);
		unlink(s.err_path);
	}
	rc = run_capture(v6, out, sizeof(out), 5000);
	if (cannot_listen(rc, out, "[::1]:", strerror(EADDRNOTAVAIL)) ||
	    cannot_listen(rc, out, "[::1]:", strerror(EAFNOSUPPORT)))
		found |= NS_V6_NAMED;
	if (enter_own_hosts() < 0)
		return found | NS_NO_HOSTS;
	rc = run_capture(near, out, sizeof(out), 5000);
	if (cannot_listen(rc, out, "192.0.2.1:", strerror(EADDRNOTAVAIL)) &&
	    strstr(out, " (near.test): ") != NULL)
		found |= NS_NAME_NAMED;
	return found;
}

/*
 * On a host without IPv6, the default (127.0.0.1 and ::1) serves on
 * 127.0.0.1 and says in an info line that ::1 is skipped, and why; ::1
 * named with -l is an error, as any address named. A name stands for each
 * of its addresses: one that cannot be listened on is an error naming it
 * and the name. All in a child with namespaces of its own, where it may
 * make them.
 */
static void test_namespaces(void)
{
	int status = 0, found = 0;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(namespace_child());
	if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status))
		found = WEXITSTATUS(status);
	if (found == NS_NONE) {
		for (int i = 0; i < 4; i++)
			skip("cannot make a network namespace without IPv6 here (needs root)");
		return;
	}
	ok(found & NS_STARTS, "without IPv6, the default listens on 127.0.0.1 alone, and echoes");
	ok(found & NS_SAYS, "and an info line names [::1] and why it was skipped");
	ok(found & NS_V6_NAMED, "without IPv6, -l ::1: exit 1, naming [::1] and why");
	if (found & NS_NO_HOSTS)
		skip("cannot make a mount namespace for /etc/hosts here");
	else
		ok(found & NS_NAME_NAMED, "-l near.test, which is 127.0.0.1 and 192.0.2.1: exit 1, "
		   "naming 192.0.2.1 (near.test) and why");
}

/*
 * Under a descriptor limit of 256 (soft and hard: the server cannot raise
 * it), 200 workers do not fit. The budget is checked before the workers are
 * built, with the numbers and what to change; it was an exit from inside
 * libevent ("evsig_init_: socketpair: Too many open files").
 */
static void test_descriptor_budget(void)
{
	const char *many[] = { "-l", "127.0.0.1", "-p", "0", "-t", "200", NULL };
	char out[4096] = "";
	int pipefd[2], status, rc = -1;
	size_t have = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(pipefd) == -1)
		bail("pipe");
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = { 256, 256 };

		close(pipefd[0]);
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			_exit(100);
		rc = run_capture(many, out, sizeof(out), 10000);
		if (write(pipefd[1], out, strlen(out)) < 0)
			_exit(101);
		_exit(rc < 0 ? 102 : rc);
	}
	close(pipefd[1]);
	while (have < sizeof(out) - 1 &&
	       (n = read(pipefd[0], out + have, sizeof(out) - 1 - have)) > 0)
		have += (size_t)n;
	out[have] = '\0';
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
		rc = WEXITSTATUS(status);
	ok(rc == 1 && strstr(out, "not enough file descriptors") != NULL &&
	   strstr(out, "ulimit -n") != NULL && strstr(out, "at most") != NULL &&
	   strstr(out, "evsig") == NULL,
	   "ulimit -n 256, -t 200: exit %d, the descriptor budget is named with what to change",
	   rc);
	if (rc != 1 || strstr(out, "not enough") == NULL)
		diag("it said: %s", out);
}

/* Whether every line of text starts with a time stamp, RFC 3339 with ms
 * and an offset ("2026-12-08T14:03:07.123+01:00 "), and none with "<". */
static bool all_stamped(const char *text, int *lines)
{
	*lines = 0;
	for (const char *l = text; *l != '\0'; (*lines)++) {
		const char *eol = strchr(l, '\n');
		int n = 0;
		char sign = 0;

		if (sscanf(l, "%*4d-%*2d-%*2dT%*2d:%*2d:%*2d.%*3d%c%*2d:%*2d %n", &sign, &n) != 1 ||
		    n != 30 || (sign != '+' && sign != '-') || l[30] == '<' || eol == NULL)
			return false;
		l = eol + 1;
	}
	return *lines > 0;
}

/*
 * The server's log lines (doc/echoserver.1, LOGGING): under the journal
 * (JOURNAL_STREAM names its stderr) each starts with its syslog priority,
 * so journalctl -p can filter them: info <6>, a refused connection's
 * warning <4>. Otherwise (JOURNAL_STREAM unset, or naming stdout) each
 * starts with the time.
 */
static void test_log_lines(void)
{
	const char *args[] = { "-t", "1", "--max-conns-per-ip", "1", NULL };
	const char *text;
	struct srv s;
	bool prefixed = true;
	int fd[2], lines = 0;
	char c = 'j';

	harness_journal = HARNESS_JOURNAL_STDERR;
	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver");
	harness_journal = HARNESS_JOURNAL_NONE;
	fd[0] = tcp_connect(s.port);
	if (fd[0] == -1 || send_all(fd[0], &c, 1) != 0 || recv_all(fd[0], &c, 1) != 0)
		bail("no echo");
	fd[1] = tcp_connect(s.port);	/* over the limit: refused, a warning */
	tap_waiting("the refusal's warning");
	for (int i = 0; i < 500 && !srv_stderr_has(&s, "refused a connection"); i++)
		usleep(10000);
	ok(srv_stop(&s, SIGTERM, 5000) == 0, "under the journal: starts, serves, stops");
	text = srv_stderr_text(&s);
	for (const char *l = text; l != NULL && *l != '\0'; l = strchr(l, '\n') + 1) {
		prefixed = prefixed && l[0] == '<' && l[2] == '>' && strchr(l, '\n') != NULL;
		lines++;
	}
	ok(prefixed && lines >= 3 && strstr(text, "<6>echoserver[main] info: 1 worker threads") &&
	   strstr(text, "<4>echoserver[main] warning: accept: refused a connection from "
			"127.0.0.1, which has 1 already") &&
	   strstr(text, "<6>echoserver[main] info: stopped\n"),
	   "JOURNAL_STREAM names stderr: every line (%d) starts with its priority, "
	   "<6> info, <4> warning", lines);
	if (!prefixed)
		diag("it logged:\n%s", text);
	for (int i = 0; i < 2; i++)
		if (fd[i] != -1)
			close(fd[i]);
	unlink(s.err_path);

	for (int k = 0; k < 2; k++) {
		harness_journal = k == 0 ? HARNESS_JOURNAL_STDOUT : HARNESS_JOURNAL_NONE;
		if (srv_start(&s, false, NULL) != 0)
			bail("cannot start echoserver");
		harness_journal = HARNESS_JOURNAL_NONE;
		srv_stop(&s, SIGTERM, 5000);
		text = srv_stderr_text(&s);
		ok(text != NULL && all_stamped(text, &lines) && strstr(text, "info: stopped\n"),
		   "JOURNAL_STREAM %s: every line (%d) starts with the time",
		   k == 0 ? "naming stdout, not stderr" : "unset", lines);
		if (text != NULL && !all_stamped(text, &lines))
			diag("it logged:\n%s", text);
		unlink(s.err_path);
	}
}

/* A blocking connection to [::1]:port, or -1. */
static int tcp6_connect(int port)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT,
				   .sin6_port = htons((uint16_t)port) };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd != -1 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* --max-conns-per-ip counts IPv6 by /64, and its refusal names the /64. */
static void test_per_ip_v6(void)
{
	const char *args[] = { "-l", "::1", "-p", "0", "--max-conns-per-ip", "1", NULL };
	struct srv s;
	int fd[2];
	char c = 'v';

	if (!ipv6_loopback()) {
		skip("no IPv6 loopback here");
		return;
	}
	if (srv_start(&s, true, args) != 0)
		bail("cannot start echoserver on ::1");
	fd[0] = tcp6_connect(s.port);
	if (fd[0] == -1 || send_all(fd[0], &c, 1) != 0 || recv_all(fd[0], &c, 1) != 0)
		bail("no echo on ::1");
	fd[1] = tcp6_connect(s.port);
	tap_waiting("the refusal's warning");
	for (int i = 0; i < 500 && !srv_stderr_has(&s, "refused a connection"); i++)
		usleep(10000);
	ok(srv_stderr_has(&s, "refused a connection from [::]/64, which has 1 already"),
	   "--max-conns-per-ip 1 on ::1: the second connection is refused, naming its /64");
	for (int i = 0; i < 2; i++)
		if (fd[i] != -1)
			close(fd[i]);
	srv_stop(&s, SIGTERM, 5000);
	unlink(s.err_path);
}

/* SIGHUP (a closed terminal) is the graceful stop, not death by signal. */
static void test_sighup(void)
{
	struct srv s;
	int fd;
	char c = 'h';

	/* This test may itself run with SIGHUP ignored (under nohup), which
	 * the server would inherit and keep: start it with the default. */
	signal(SIGHUP, SIG_DFL);
	if (srv_start(&s, false, NULL) != 0)
		bail("cannot start echoserver");
	fd = tcp_connect(s.port);
	if (fd == -1 || send_all(fd, &c, 1) != 0 || recv_all(fd, &c, 1) != 0)
		bail("no echo");
	ok(srv_stop(&s, SIGHUP, 5000) == 0 && srv_stderr_has(&s, "stopped"),
	   "SIGHUP: a graceful stop, exit 0");
	close(fd);
	unlink(s.err_path);

	/* Started with SIGHUP ignored (nohup): it stays ignored. */
	signal(SIGHUP, SIG_IGN);
	if (srv_start(&s, false, NULL) != 0)
		bail("cannot start echoserver");
	signal(SIGHUP, SIG_DFL);
	kill(s.pid, SIGHUP);
	usleep(200000);
	fd = tcp_connect(s.port);
	ok(srv_alive(&s) && fd != -1 && send_all(fd, &c, 1) == 0 && recv_all(fd, &c, 1) == 0,
	   "started with SIGHUP ignored (nohup): SIGHUP is still ignored, the echo goes on");
	if (fd != -1)
		close(fd);
	srv_stop(&s, SIGTERM, 5000);
	unlink(s.err_path);
}

int main(void)
{
	struct rlimit rl;

	tap_watchdog(120);
	tap_on_watchdog(harness_kill_children);
	/* Start the servers with a lowered soft limit, to see it raised. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max > 1024) {
		rl.rlim_cur = 1024;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	tap_plan((int)(sizeof(bad) / sizeof(bad[0])) + 3 + 3 + 2 + 2 + 4 + 3 + 1 + 2 + 4 + 4 + 4 + 1);
	test_bad_args();
	test_help_version();
	test_lists();
	test_too_long();
	test_address_in_use();
	test_listen_lines();
	test_listen_conflicts();
	test_listen_errors();
	test_namespaces();
	test_descriptor_budget();
	test_sighup();
	test_log_lines();
	test_per_ip_v6();
	return tap_done();
}
