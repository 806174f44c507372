/*
 * test_cli.c - the command line and the process: help, version, bad
 * arguments (exit 2, naming the problem), address in use (exit 1), the
 * "listening on" lines, signals, and the raised descriptor limit.
 */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
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
		ok(rc == 2 && strstr(out, bad[i].must_mention) != NULL,
		   "bad arguments '%s %s': exit %d, message names '%s'", bad[i].args[0],
		   bad[i].args[1] ? bad[i].args[1] : "", rc, bad[i].must_mention);
	}
}

static void test_help_version(void)
{
	static const char *const opts[] = { "--port", "--listen", "--threads", "--backlog",
		"--max-conns", "--idle-timeout", "--dispatch", "--balance", "--verbose",
		"--quiet", "--version", "--help", NULL };
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

int main(void)
{
	struct rlimit rl;

	/* Start the servers with a lowered soft limit, to see it raised. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max > 1024) {
		rl.rlim_cur = 1024;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	tap_plan(14 + 3 + 2 + 4);
	test_bad_args();
	test_help_version();
	test_address_in_use();
	test_listen_lines();
	return tap_done();
}
