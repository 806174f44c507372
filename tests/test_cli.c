/*
 * test_cli.c - the command line and the process: help, version, bad
 * arguments (exit 2, naming the problem), address in use (exit 1), the
 * "listening on" lines, signals, the raised descriptor limit, and what
 * starts each log line (a priority under the journal, else the time).
 */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	   strstr(text, "<4>echoserver[main] warning: accept: refused a connection") &&
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
	tap_plan((int)(sizeof(bad) / sizeof(bad[0])) + 3 + 3 + 2 + 2 + 4 + 3 + 1 + 2 + 4);
	test_bad_args();
	test_help_version();
	test_lists();
	test_too_long();
	test_address_in_use();
	test_listen_lines();
	test_listen_conflicts();
	test_descriptor_budget();
	test_sighup();
	test_log_lines();
	return tap_done();
}
