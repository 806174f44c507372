/*
 * harness.c - see harness.h.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

const char *harness_extra_args[8];
enum harness_journal harness_journal;

/* The processes this test started and has not reaped: the watchdog kills
 * them (harness_kill_children), so that a test that fails does not leave
 * a server running behind it. */
#define MAX_CHILDREN 64
static volatile pid_t children[MAX_CHILDREN];

static void child_started(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == 0) {
			children[i] = pid;
			return;
		}
}

static void child_reaped(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

void harness_kill_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0)
			kill(children[i], SIGKILL);
}

static const char *server_path(void)
{
	const char *p = getenv("ECHOSERVER");
	return p != NULL ? p : "./echoserver";
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* In the child, on its own stdout and stderr: JOURNAL_STREAM as asked. */
static void set_journal_stream(void)
{
	struct stat st;
	char v[64];

	unsetenv("JOURNAL_STREAM");
	if (harness_journal == HARNESS_JOURNAL_NONE ||
	    fstat(harness_journal == HARNESS_JOURNAL_STDERR ? 2 : 1, &st) == -1)
		return;
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

static pid_t spawn(const char *const *args, bool raw, int out_fd, int err_fd)
{
	const char *argv[96];
	char wrapper[512];
	const char *w = getenv("ECHOSERVER_WRAPPER");
	int n = 0;
	pid_t pid;

	/* An optional command in front, e.g. "valgrind --leak-check=full". */
	if (w != NULL) {
		snprintf(wrapper, sizeof(wrapper), "%s", w);
		for (char *tok = strtok(wrapper, " "); tok != NULL && n < 32; tok = strtok(NULL, " "))
			argv[n++] = tok;
	}
	argv[n++] = server_path();
	if (!raw) {
		argv[n++] = "-l";
		argv[n++] = "127.0.0.1";
		argv[n++] = "-p";
		argv[n++] = "0";
		for (int i = 0; harness_extra_args[i] != NULL; i++)
			argv[n++] = harness_extra_args[i];
	}
	for (; args != NULL && *args != NULL && n < 94; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		dup2(out_fd, 1);
		dup2(err_fd, 2);
		set_journal_stream();
		/* The server starts with stdin/out/err only, so leaks are its own. */
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid > 0)
		child_started(pid);
	return pid;
}

int srv_start(struct srv *s, bool raw, const char *const *args)
{
	int pipefd[2], errfd;
	char buf[1024];
	size_t have = 0;
	uint64_t deadline = now_ms() + 30000;	/* valgrind starts slowly */

	memset(s, 0, sizeof(*s));
	strcpy(s->err_path, "/tmp/echoserver-test-XXXXXX");
	errfd = mkstemp(s->err_path);
	if (errfd == -1 || pipe(pipefd) == -1)
		return -1;
	s->pid = spawn(args, raw, pipefd[1], errfd);
	close(pipefd[1]);
	close(errfd);
	s->out_fd = pipefd[0];
	while (now_ms() < deadline && have < sizeof(buf) - 1) {
		struct pollfd p = { .fd = s->out_fd, .events = POLLIN };
		char *line;
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(s->out_fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;		/* exited before listening */
		have += (size_t)n;
		buf[have] = '\0';
		line = strstr(buf, "listening on ");
		if (line != NULL && strchr(line, '\n') != NULL) {
			char *colon;

			memcpy(s->banner, buf, have + 1);
			colon = strrchr(strtok(line, "\n"), ':');
			s->port = atoi(colon + 1);
			return s->port > 0 ? 0 : -1;
		}
	}
	srv_stop(s, SIGKILL, 1000);
	return -1;
}

bool srv_alive(struct srv *s)
{
	if (s->pid <= 0 || s->exited)
		return false;
	if (waitpid(s->pid, &s->status, WNOHANG) != s->pid)
		return true;
	s->exited = true;	/* reaped here: srv_stop() reports this status */
	child_reaped(s->pid);
	return false;
}

int srv_stop(struct srv *s, int sig, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int status;

	if (s->pid <= 0)
		return -1;
	if (s->exited) {
		status = s->status;
		goto reaped;
	}
	kill(s->pid, sig);
	for (;;) {
		pid_t r = waitpid(s->pid, &status, WNOHANG);
		if (r == s->pid)
			break;
		if (now_ms() > deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			status = -1;
			break;
		}
		usleep(10000);
	}
	child_reaped(s->pid);
reaped:
	s->pid = 0;
	s->exited = false;
	close(s->out_fd);
	if (status == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

long srv_rss_kb(const struct srv *s)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)s->pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

const char *srv_stderr_text(const struct srv *s)
{
	static char buf[1 << 20];
	size_t n;
	FILE *f = fopen(s->err_path, "r");

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

int srv_stderr_count(const struct srv *s, const char *needle)
{
	const char *buf = srv_stderr_text(s);
	int count = 0;

	for (const char *p = buf; p != NULL && (p = strstr(p, needle)) != NULL; p++)
		count++;
	return count;
}

bool srv_stderr_number_after(const struct srv *s, const char *needle, unsigned *value)
{
	const char *buf = srv_stderr_text(s), *p;
	char *end;

	if (buf == NULL || (p = strstr(buf, needle)) == NULL)
		return false;
	*value = (unsigned)strtoul(p + strlen(needle), &end, 10);
	return end != p + strlen(needle);
}

bool srv_stderr_has(const struct srv *s, const char *needle)
{
	return srv_stderr_count(s, needle) > 0;
}

int run_capture(const char *const *args, char *buf, size_t len, int timeout_ms)
{
	int pipefd[2], status;
	size_t have = 0;
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	pid_t pid;

	if (pipe(pipefd) == -1)
		return -1;
	pid = spawn(args, true, pipefd[1], pipefd[1]);
	close(pipefd[1]);
	while (now_ms() < deadline) {
		struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(pipefd[0], buf + have, len - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		if (have == len - 1)
			break;
	}
	buf[have] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			child_reaped(pid);
			return -1;
		}
		usleep(10000);
	}
	child_reaped(pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int tcp_connect_from(int port, const char *src)
{
	struct sockaddr_in from = { .sin_family = AF_INET };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if ((src != NULL && (inet_pton(AF_INET, src, &from.sin_addr) != 1 ||
			     bind(fd, (struct sockaddr *)&from, sizeof(from)) == -1)) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int tcp_connect(int port)
{
	return tcp_connect_from(port, NULL);
}

int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int recv_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t recv_wait(int fd, void *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, ms) <= 0)
		return -2;
	return recv(fd, buf, len, 0);
}

void fill_random(void *buf, size_t len, uint64_t *seed)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++) {
		/* xorshift64: fast, reproducible from the seed in the test's output */
		*seed ^= *seed << 13;
		*seed ^= *seed >> 7;
		*seed ^= *seed << 17;
		p[i] = (unsigned char)(*seed >> 24);
	}
}
