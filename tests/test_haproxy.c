/*
 * test_haproxy.c - two echoservers with --proxy-protocol behind a real
 * HAProxy in TCP mode, as doc/DEPLOY.md deploys them, once with
 * send-proxy-v2 and once with send-proxy (v1), each server health-checked
 * by a line sent and expected back:
 * The HAProxy configuration is doc/DEPLOY.md's own, read from it.
 *   - both servers come up (their health checks arrive as v2 LOCAL or as
 *     v1 headers, and pass);
 *   - echo through the balancer is byte for byte, from clients bound to
 *     distinct loopback addresses (127.0.0.10, .11, ...);
 *   - --max-conns-per-ip counts each real client: five clients, limit 2,
 *     two connections each all served, a third from one of them closed;
 *   - (v2) a rolling restart under load: SIGTERM one server while eight
 *     clients ping-pong through the balancer, start it again: every client
 *     goes on to all its messages, every echo byte-exact, every cut a clean
 *     EOF between two messages (after which it reconnects and HAProxy sends
 *     it to the other server), and the restarted server serves again.
 * Skipped (not failed) where HAProxy is not installed; ./bootstrap installs
 * it, so CI runs it.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define N_CLIENTS 8
#define MESSAGES 300		/* per client in the rolling restart */
#define MSG 48

static int fe_port, one_port;	/* the balancer's frontends: both servers; server a alone */
static struct srv a, b;
static pid_t haproxy = -1;
static char cfg_path[64] = "/tmp/test_haproxy-XXXXXX";
static char log_path[64] = "/tmp/test_haproxy-log-XXXXXX";	/* its stderr */

/* A free loopback port (bound and released: a small race, only here). */
static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static bool echoes(int fd, char x)
{
	char c = 0;

	return fd != -1 && send_all(fd, &x, 1) == 0 && recv_wait(fd, &c, 1, 5000) == 1 && c == x;
}

/* Replaces every `from` in buf (of cap bytes) with `to`. */
static void replace_all(char *buf, size_t cap, const char *from, const char *to)
{
	char *p = buf;
	size_t fl = strlen(from), tl = strlen(to);

	while ((p = strstr(p, from)) != NULL) {
		if (strlen(buf) - fl + tl >= cap)
			bail("the HAProxy configuration grew too long");
		memmove(p + tl, p + fl, strlen(p + fl) + 1);
		memcpy(p, to, tl);
		p += tl;
	}
}

/*
 * The configuration doc/DEPLOY.md gives (its ```haproxy block), with this
 * test's ports for 5555, 5556 and 5557 and `send` (send-proxy-v2 or
 * send-proxy) for send-proxy-v2; and, for the per-client check, one more
 * frontend whose only server is a.
 */
static void write_config(const char *send)
{
	static char doc[16384], cfg[16384];
	const char *top = getenv("TOP_SRCDIR") != NULL ? getenv("TOP_SRCDIR") : ".";
	char path[512], port[3][32];
	char *start, *end;
	FILE *f;
	size_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/doc/DEPLOY.md", top);
	if ((f = fopen(path, "r")) == NULL)
		bail("cannot read doc/DEPLOY.md");
	n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = '\0';
	if ((start = strstr(doc, "```haproxy\n")) == NULL ||
	    (end = strstr(start + 11, "```")) == NULL)
		bail("doc/DEPLOY.md has no ```haproxy block");
	*end = '\0';
	snprintf(cfg, sizeof(cfg), "%s", start + 11);
	snprintf(port[0], sizeof(port[0]), "127.0.0.1:%d", fe_port);
	snprintf(port[1], sizeof(port[1]), "127.0.0.1:%d", a.port);
	snprintf(port[2], sizeof(port[2]), "127.0.0.1:%d", b.port);
	replace_all(cfg, sizeof(cfg), "127.0.0.1:5555", port[0]);
	replace_all(cfg, sizeof(cfg), "127.0.0.1:5556", port[1]);
	replace_all(cfg, sizeof(cfg), "127.0.0.1:5557", port[2]);
	replace_all(cfg, sizeof(cfg), "send-proxy-v2", send);
	fd = mkstemp(cfg_path);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL)
		bail("cannot write the HAProxy configuration");
	fprintf(f, "%s\nbackend echo_a\n    server a %s %s\n"
		"frontend a_alone\n    bind 127.0.0.1:%d\n    default_backend echo_a\n",
		cfg, port[1], send, one_port);
	fclose(f);
}

static void start_haproxy(void)
{
	const char *bin = getenv("HAPROXY") != NULL ? getenv("HAPROXY") : "haproxy";

	int log = mkstemp(log_path);

	if (log == -1)
		bail("cannot make a file for HAProxy's stderr");
	haproxy = fork();
	if (haproxy == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(log, 2);
		execlp(bin, bin, "-db", "-f", cfg_path, (char *)NULL);
		_exit(127);
	}
	close(log);
}

/* HAProxy's stderr so far contains `what`. */
static bool haproxy_said(const char *what)
{
	char buf[65536];
	FILE *f = fopen(log_path, "r");
	size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f != NULL)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, what) != NULL;
}

/* The watchdog's: nothing this test started outlives it. */
static void kill_all(void)
{
	if (haproxy > 0)
		kill(haproxy, SIGKILL);
	harness_kill_children();
}

static void stop_haproxy(void)
{
	if (haproxy > 0) {
		kill(haproxy, SIGTERM);
		waitpid(haproxy, NULL, 0);
	}
	haproxy = -1;
	unlink(cfg_path);
	unlink(log_path);
	strcpy(cfg_path, "/tmp/test_haproxy-XXXXXX");
	strcpy(log_path, "/tmp/test_haproxy-log-XXXXXX");
}

/* The number after needle in s's stderr, summed over every worker line of
 * the SIGUSR1 report asked for now. */
static unsigned report(struct srv *s, const char *needle, int workers)
{
	const char *t, *p;
	unsigned sum = 0;
	int before = srv_stderr_count(s, "proxy headers v1");

	kill(s->pid, SIGUSR1);
	for (int i = 0; i < 100 && srv_stderr_count(s, "proxy headers v1") < before + workers; i++)
		usleep(50000);
	t = srv_stderr_text(s);
	/* The last report: skip the lines of the earlier ones. */
	for (p = t; p != NULL && before > 0; before--)
		if ((p = strstr(p, "proxy headers v1")) != NULL)
			p = strchr(p, '\n');
	while (p != NULL && (p = strstr(p, needle)) != NULL) {
		p += strlen(needle);
		sum += (unsigned)strtoul(p, NULL, 10);
	}
	return sum;
}

/*
 * Both servers have had three health checks through their PROXY header
 * (needle: what the server counts a check as), and none failed: HAProxy
 * marks a server down after two failed checks in a row (fall 2) and says so
 * on its stderr before it sends the next, so after three checks a failing
 * server has a "DOWN" line. Bounded: 10 s.
 */
static bool checks_pass(const char *needle, unsigned *seen)
{
	for (int i = 0; i < 100; i++) {
		unsigned on_a = report(&a, needle, 2), on_b = report(&b, needle, 2);

		*seen = on_a < on_b ? on_a : on_b;
		if (*seen >= 3)
			return !haproxy_said("is DOWN");
		usleep(100000);
	}
	return false;
}

static void byte_exact(const char *send)
{
	static unsigned char out[N_CLIENTS][64 * 1024], in[64 * 1024];
	uint64_t seed = 42;
	int fd[N_CLIENTS], good = 0;
	char src[32];

	for (int i = 0; i < N_CLIENTS; i++) {
		snprintf(src, sizeof(src), "127.0.0.%d", 10 + i);
		fd[i] = tcp_connect_from(fe_port, src);
		fill_random(out[i], sizeof(out[i]), &seed);
	}
	for (int i = 0; i < N_CLIENTS; i++)
		good += fd[i] != -1 && send_all(fd[i], out[i], sizeof(out[i])) == 0 &&
			recv_all(fd[i], in, sizeof(in)) == 0 && memcmp(in, out[i], sizeof(in)) == 0;
	ok(good == N_CLIENTS, "%s: %d of %d clients (127.0.0.10 to .17) get their 64 KiB back "
	   "through HAProxy, byte for byte", send, good, N_CLIENTS);
	for (int i = 0; i < N_CLIENTS; i++)
		close(fd[i]);
}

/* Five clients, limit 2 on server a: each real client counts apart. */
static void per_client(const char *send)
{
	int fd[5][2], third;
	int served = 0;
	bool refused, named;
	char src[32];

	for (int i = 0; i < 5; i++) {
		snprintf(src, sizeof(src), "127.0.0.%d", 20 + i);
		for (int k = 0; k < 2; k++) {
			fd[i][k] = tcp_connect_from(one_port, src);
			served += echoes(fd[i][k], 'p');
		}
	}
	ok(served == 10, "%s: five clients through the balancer, two connections each, "
	   "--max-conns-per-ip 2: %d of 10 served",
	   send, served);
	third = tcp_connect_from(one_port, "127.0.0.20");
	refused = third != -1 && !echoes(third, 'q');
	/* The line follows the close the client saw: wait for it, 5 s at most. */
	for (int i = 0; i < 50 && !(named = srv_stderr_has(&a, "from 127.0.0.20,")); i++)
		usleep(100000);
	ok(refused && named, "%s: a third connection from 127.0.0.20 is closed (%s), and the log "
	   "names 127.0.0.20 (%s)", send, refused ? "yes" : "no", named ? "yes" : "no");
	close(third);
	for (int i = 0; i < 5; i++)
		for (int k = 0; k < 2; k++)
			close(fd[i][k]);
}

/* ---- the rolling restart ----------------------------------------------- */

struct client {
	pthread_t th;
	int id;
	/* Written by the client's thread, read by the main one as it goes. */
	atomic_uint done;		/* messages echoed */
	atomic_uint cuts;		/* clean EOFs between messages */
	atomic_uint bad;		/* a wrong byte, a partial echo, a reset */
	char why[120];
};

static atomic_bool restart_over;

static void *client_main(void *arg)
{
	struct client *c = arg;
	unsigned char out[MSG], in[MSG];
	uint64_t seed = 1000 + (uint64_t)c->id;
	bool fresh = true;		/* out is a new message, not one to send again */
	char src[32];
	int fd = -1;

	snprintf(src, sizeof(src), "127.0.0.%d", 40 + c->id);
	/* Until the restart is over: the stop always meets clients at work. */
	while ((c->done < MESSAGES || !atomic_load(&restart_over)) && c->bad == 0) {
		ssize_t n = 0, got = 0;

		if (fd == -1 && (fd = tcp_connect_from(fe_port, src)) == -1) {
			usleep(20000);		/* the balancer refused: try again */
			continue;
		}
		if (fresh)
			fill_random(out, sizeof(out), &seed);
		if (send_all(fd, out, sizeof(out)) < 0) {
			snprintf(c->why, sizeof(c->why), "send: %s", strerror(errno));
			c->bad++;
			break;
		}
		while (got < MSG && (n = recv_wait(fd, in + got, (size_t)(MSG - got), 10000)) > 0)
			got += n;
		fresh = got == MSG && memcmp(in, out, MSG) == 0;
		if (fresh) {
			c->done++;
		} else if (got == 0 && n == 0) {
			/* EOF before any of it, between two messages: a clean
			 * cut. The same message goes again, on a new
			 * connection. */
			c->cuts++;
			close(fd);
			fd = -1;
		} else {
			snprintf(c->why, sizeof(c->why), "message %u: %zd of %d bytes%s (%s)",
				 atomic_load(&c->done), got, MSG, got == MSG ? ", different" : "",
				 n < 0 ? strerror(errno) : "EOF");
			c->bad++;
		}
	}
	if (fd != -1)
		close(fd);
	return NULL;
}

static void rolling_restart(void)
{
	const char *again_args[] = { "-t", "2", "--proxy-protocol", "--max-conns-per-ip", "2",
				     "-p", NULL, NULL };
	struct client c[N_CLIENTS];
	char port[8];
	unsigned cuts = 0, bad = 0, done = 0, short_of = 0, before;
	int stopped, restarted;

	memset(c, 0, sizeof(c));
	for (int i = 0; i < N_CLIENTS; i++) {
		c[i].id = i;
		pthread_create(&c[i].th, NULL, client_main, &c[i]);
	}
	tap_waiting("the clients' first third of their messages");
	for (int i = 0; i < 600; i++) {
		unsigned least = MESSAGES;

		for (int k = 0; k < N_CLIENTS; k++)
			least = atomic_load(&c[k].done) < least ? atomic_load(&c[k].done) : least;
		if (least >= MESSAGES / 3)
			break;
		usleep(50000);
	}
	snprintf(port, sizeof(port), "%d", a.port);
	again_args[6] = port;
	tap_waiting("server a's graceful stop under load");
	stopped = srv_stop(&a, SIGTERM, 20000);
	unlink(a.err_path);
	restarted = srv_start(&a, false, again_args);
	atomic_store(&restart_over, true);
	tap_waiting("the clients' last messages");
	for (int i = 0; i < N_CLIENTS; i++) {
		pthread_join(c[i].th, NULL);
		done += atomic_load(&c[i].done);
		short_of += atomic_load(&c[i].done) < MESSAGES;
		cuts += atomic_load(&c[i].cuts);
		bad += atomic_load(&c[i].bad);
		if (c[i].bad)
			diag("client %d: %s", i, c[i].why);
	}
	ok(stopped == 0, "rolling restart: server a stops gracefully under load (exit %d)", stopped);
	ok(bad == 0 && short_of == 0,
	   "rolling restart: %u messages echoed byte for byte (each client at least %u), none cut "
	   "in the middle (%u bad)", done, MESSAGES, bad);
	ok(cuts > 0, "rolling restart: %u clients' connections to a ended in a clean EOF, and "
	   "they went on through the balancer (to b)", cuts);
	before = restarted == 0 ? report(&a, "accepted ", 2) : 0;
	for (int i = 0; i < 50 && restarted == 0 && report(&a, "accepted ", 2) <= before; i++) {
		int fd = tcp_connect_from(fe_port, "127.0.0.60");

		echoes(fd, 'r');
		close(fd);
		usleep(100000);
	}
	ok(restarted == 0 && report(&a, "accepted ", 2) > before,
	   "rolling restart: a, started again on its port, passes its check and serves again");
}

static void one_run(const char *send, bool restart)
{
	bool v2 = strcmp(send, "send-proxy-v2") == 0, up;
	unsigned checks;

	write_config(send);
	start_haproxy();
	tap_waiting("HAProxy's health checks of both servers");
	up = checks_pass(v2 ? " local " : "headers v1 ", &checks);
	ok(up, "%s: HAProxy's health checks reach both servers with a PROXY header (%s: %u "
	   "each, at least) and pass (no server marked down)", send, v2 ? "v2 LOCAL" : "v1",
	   checks);
	byte_exact(send);
	per_client(send);
	if (restart)
		rolling_restart();
	stop_haproxy();
}

int main(void)
{
	const char *args[] = { "-t", "2", "--proxy-protocol", "--max-conns-per-ip", "2", NULL };
	tap_watchdog(300);
	tap_on_watchdog(kill_all);
	signal(SIGPIPE, SIG_IGN);
	if (system("command -v ${HAPROXY:-haproxy} >/dev/null 2>&1") != 0) {
		tap_plan(1);
		skip("HAProxy is not installed (./bootstrap installs it)");
		return tap_done();
	}
	tap_plan(12);
	if (srv_start(&a, false, args) != 0 || srv_start(&b, false, args) != 0)
		bail("cannot start the two echoservers");
	fe_port = free_port();
	one_port = free_port();
	one_run("send-proxy-v2", true);
	one_run("send-proxy", false);
	srv_stop(&a, SIGTERM, 5000);
	srv_stop(&b, SIGTERM, 5000);
	unlink(a.err_path);
	unlink(b.err_path);
	return tap_done();
}
