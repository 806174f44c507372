/*
 * test_valgrind.c - the server under valgrind through connect, echo, a
 * connection with pending output, an idle one, and SIGTERM: it must exit 0
 * with no memory errors, no leaks and no descriptor left open.
 * Skipped when valgrind is not installed.
 */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static char text[1 << 20];

static void slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f != NULL) {
		n = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
	}
	text[n] = '\0';
}

static int occurrences(const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

int main(void)
{
	char log[64] = "/tmp/echoserver-vg-XXXXXX", wrapper[256], in[64];
	const char *args[] = { "-t", "2", "--idle-timeout", "30", NULL };
	static char big[1 << 20];
	struct srv s;
	int fd, a, b, rc;

	tap_watchdog(300);
	tap_on_watchdog(harness_kill_children);
#ifdef SANITIZED
	printf("1..0 # SKIP valgrind cannot run a sanitizer build\n");
	return 0;
#endif
	if (system("valgrind --version >/dev/null 2>&1") != 0) {
		printf("1..0 # SKIP valgrind is not installed\n");
		return 0;
	}
	tap_plan(5);
	fd = mkstemp(log);
	close(fd);
	snprintf(wrapper, sizeof(wrapper),
		 "valgrind --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all "
		 "--track-fds=yes --error-exitcode=9 --log-file=%s", log);
	setenv("ECHOSERVER_WRAPPER", wrapper, 1);
	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver under valgrind");

	a = tcp_connect(s.port);
	ok(a != -1 && send_all(a, "under valgrind", 14) == 0 && recv_all(a, in, 14) == 0 &&
	   memcmp(in, "under valgrind", 14) == 0, "echo works under valgrind");
	/* b sends 1 MiB and reads nothing: output is pending at shutdown. */
	b = tcp_connect(s.port);
	send(b, big, sizeof(big) / 2, MSG_NOSIGNAL);
	usleep(500000);
	rc = srv_stop(&s, SIGTERM, 30000);
	ok(rc == 0, "SIGTERM with an idle and a backed-up connection: exit %d", rc);
	slurp(log);
	ok(occurrences("ERROR SUMMARY: 0 errors") == 1, "no memory errors");
	ok(occurrences("All heap blocks were freed") == 1, "no leaks: every heap block freed");
	/* The one non-standard descriptor open at exit is valgrind's own log. */
	{
		char own[96];
		snprintf(own, sizeof(own), "Open file descriptor 3: %s", log);
		ok(occurrences("Open file descriptor") == 1 && occurrences(own) == 1,
		   "no descriptor left open but stdio and valgrind's log");
	}
	if (tap_failed)
		diag("valgrind log kept in %s", log);
	else
		unlink(log);
	close(a);
	close(b);
	unlink(s.err_path);
	return tap_done();
}
