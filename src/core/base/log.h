/*
 * log.h - the one logger of the program.
 *
 * A line is "program[tag] level: message", where program is the running
 * program's name (never the library's) and tag names the thread ("main",
 * "w0", "w1", ...), so that interleaved lines from several threads can be
 * told apart. libevent's own warnings are routed here too
 * (log_route_libevent()).
 *
 * Where it goes: to the program's handler if it set one (log_set_handler(),
 * which gets the message alone); else to stderr, in one write, starting
 * with what the reader of stderr needs to sort it:
 *
 *   - the journal (systemd's JOURNAL_STREAM names stderr's device and
 *     inode, systemd.exec(5)): the syslog priority, "<3>" error, "<4>"
 *     warning, "<6>" info, "<7>" debug (sd-daemon(3)), so that
 *     `journalctl -p` can filter; the journal adds the time itself;
 *   - anything else (a terminal, a file, a pipe): the local time in RFC
 *     3339 form with milliseconds and the offset from UTC,
 *     "2026-12-08T14:03:07.123+01:00 ", which sorts as text within one
 *     offset and says which instant it is wherever it is read.
 *
 * Which of the two is decided once, at the first line a process writes to
 * stderr: a program that moves its stderr later keeps that decision.
 *
 * Thread safety: log_set_level() and log_set_handler() are called while no
 * other thread logs (by main() before any thread starts, or after they
 * stopped); everything else may be called from any thread.
 */
#ifndef MTS_LOG_H
#define MTS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Names the calling thread in its log lines; the string must outlive it. */
void log_set_thread_tag(const char *tag);

/*
 * Where the lines go instead of stderr: fn(level, message, arg), on the
 * thread that logs (so on several at once), for each line the level lets
 * through, and for reports at LOG_INFO. The message has no prefix, no
 * newline, and at most LOG_MAX_MESSAGE bytes. NULL: stderr again.
 */
#define LOG_MAX_MESSAGE 1023
typedef void (*log_handler_fn)(enum log_level level, const char *msg, void *arg);
void log_set_handler(log_handler_fn fn, void *arg);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* A report the user asked for (SIGUSR1): printed whatever the level, as
 * "stats" on stderr, at info priority in the journal and to the handler. */
void log_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sends libevent's internal warnings and errors through log_msg(). */
void log_route_libevent(void);

/*
 * A line that an event can repeat at any rate (a refused connection, a pause
 * at the connection limit) is logged at most once per interval; the events
 * in between are counted, and the next line says how many there were. One
 * per kind of event, owned by one thread.
 */
struct log_limit {
	uint64_t last_ms;	/* when a line was last allowed; 0: never */
	unsigned skipped;	/* events since then that were not logged */
};

/*
 * Called once per event: true if this one may be logged now (then *skipped
 * is how many were not, since the last line), false if it is only counted.
 */
bool log_limit_allow(struct log_limit *l, uint64_t now_ms, unsigned interval_ms,
		     unsigned *skipped);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
