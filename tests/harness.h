/*
 * harness.h - helpers for the integration tests: start ./echoserver on
 * 127.0.0.1 port 0, talk to it over loopback, stop it. Every wait is bounded.
 */
#ifndef ECHOSERVER_HARNESS_H
#define ECHOSERVER_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct srv {
	pid_t pid;
	int port;
	int out_fd;		/* the server's stdout */
	char err_path[64];	/* the server's stderr, in a temporary file */
	char banner[1024];	/* its stdout up to the first "listening on" line */
	bool exited;		/* reaped by srv_alive(), with this status: */
	int status;
};

/* Appended to every non-raw srv_start() (e.g. "--dispatch", "mutex-pipe"). */
extern const char *harness_extra_args[8];

/*
 * Whether the servers started next see their stderr as the journal
 * (systemd.exec(5)'s JOURNAL_STREAM, "DEV:INODE"): NONE (the default)
 * removes the variable, so that a test run by a systemd service does not
 * pass its own down; STDERR names the server's stderr, as systemd does
 * with StandardError=journal; STDOUT names its stdout, a journal that is
 * not stderr.
 */
enum harness_journal { HARNESS_JOURNAL_NONE, HARNESS_JOURNAL_STDERR, HARNESS_JOURNAL_STDOUT };
extern enum harness_journal harness_journal;

/* Starts $ECHOSERVER with the given arguments (NULL-terminated) plus
 * "-l 127.0.0.1 -p 0" unless `raw`. Returns 0 once it listens. */
int srv_start(struct srv *s, bool raw, const char *const *args);
/* Sends sig and waits up to timeout_ms; returns the exit status, or -1 if it
 * had to be killed (or died of a signal). */
int srv_stop(struct srv *s, int sig, int timeout_ms);
bool srv_alive(struct srv *s);
/* Kills every process the harness started and has not reaped; async-signal-
 * safe, for the watchdog (tap_on_watchdog(harness_kill_children)). */
void harness_kill_children(void);
long srv_rss_kb(const struct srv *s);
/* The server's stderr so far (its first MiB), NUL-terminated, in a buffer
 * the next call overwrites; NULL if it cannot be read. */
const char *srv_stderr_text(const struct srv *s);
/* Whether the server's stderr so far contains `needle`; how many times. */
bool srv_stderr_has(const struct srv *s, const char *needle);
int srv_stderr_count(const struct srv *s, const char *needle);
/* The number right after the first `needle` in its stderr, if there is one. */
bool srv_stderr_number_after(const struct srv *s, const char *needle, unsigned *value);

/* Runs $ECHOSERVER with args, collects stdout+stderr into buf, returns the
 * exit status (-1 on timeout or signal). */
int run_capture(const char *const *args, char *buf, size_t len, int timeout_ms);

int tcp_connect(int port);		/* blocking, with 5 s send/recv timeouts */
/* The same from loopback address src ("127.0.0.2"; NULL: any), -1 if it
 * cannot bind or connect. */
int tcp_connect_from(int port, const char *src);
int send_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes (0) or fails (-1) within the socket timeout. */
int recv_all(int fd, void *buf, size_t len);
/* Waits up to ms for readable; returns recv()'s result (0 = EOF), or -2 on timeout. */
ssize_t recv_wait(int fd, void *buf, size_t len, int ms);
void fill_random(void *buf, size_t len, uint64_t *seed);
uint64_t now_ms(void);

#endif
