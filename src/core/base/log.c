/*
 * log.c - leveled, thread-tagged logging: to stderr, in the form its
 * reader needs, or to the program's handler. Contract in log.h.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

/* Written by main() before threads start, read by every thread: relaxed is enough. */
static atomic_int log_level = LOG_INFO;
static _Thread_local const char *thread_tag = "main";

/* Written while no other thread logs (log.h), read by every line after. */
static log_handler_fn handler;
static void *handler_arg;

/* Each level's word in a line, and its syslog priority (sd-daemon.h's
 * SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG) for the journal. */
static const struct {
	const char *name;
	int priority;
} levels[] = {
	[LOG_ERROR] = { "error", 3 },
	[LOG_WARN] = { "warning", 4 },
	[LOG_INFO] = { "info", 6 },
	[LOG_DEBUG] = { "debug", 7 },
};

/* Whether stderr is the journal: decided once, by the first line. */
static pthread_once_t destination_once = PTHREAD_ONCE_INIT;
static bool to_journal;	/* written in the once, read after it */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * systemd.exec(5): a service whose stderr is connected to the journal gets
 * JOURNAL_STREAM="DEV:INODE" of that stream, both decimal; stderr is still
 * the journal only if fstat() of it gives the same two numbers (the
 * service may have been started with stdout alone there, or moved stderr).
 */
static void decide_destination(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (v == NULL || !is_digit(v[0]))
		return;
	dev = strtoull(v, &end, 10);
	if (*end != ':' || !is_digit(end[1]))
		return;
	ino = strtoull(end + 1, &end, 10);
	if (*end != '\0' || fstat(STDERR_FILENO, &st) == -1)
		return;
	to_journal = st.st_dev == dev && st.st_ino == ino;
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return atomic_load_explicit(&log_level, memory_order_relaxed);
}

void log_set_thread_tag(const char *tag)
{
	thread_tag = tag;
}

void log_set_handler(log_handler_fn fn, void *arg)
{
	handler = fn;
	handler_arg = arg;
}

/* "2026-12-08T14:03:07.123+01:00 " (RFC 3339, local time) into buf; its length. */
static int format_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	long off;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	off = tm.tm_gmtoff;	/* seconds east of UTC, summer time included */
	return (int)n + snprintf(buf + n, len - n, ".%03ld%c%02ld:%02ld ", ts.tv_nsec / 1000000,
				 off < 0 ? '-' : '+', labs(off) / 3600, labs(off) % 3600 / 60);
}

static void write_line(enum log_level level, const char *name, const char *msg)
{
	char line[LOG_MAX_MESSAGE + 256];
	int n;

	pthread_once(&destination_once, decide_destination);
	if (to_journal)
		n = snprintf(line, sizeof(line), "<%d>", levels[level].priority);
	else
		n = format_time(line, sizeof(line));
	/* The library names the program that runs it, never one of its own
	 * (glibc sets the name from argv[0] before main). The bounds keep the
	 * line within `line`: argv[0] can be anything. */
	snprintf(line + n, sizeof(line) - (size_t)n, "%.64s[%.32s] %s: %s\n",
		 program_invocation_short_name, thread_tag, name, msg);
	/*
	 * One call per line: stdio locks the stream, and stderr, unbuffered,
	 * hands the whole line to one write(2); so lines from threads never
	 * interleave, nor those of processes sharing a pipe (a line is shorter
	 * than PIPE_BUF).
	 */
	fputs(line, stderr);
}

static void emit(enum log_level level, const char *name, const char *fmt, va_list ap)
{
	char msg[LOG_MAX_MESSAGE + 1];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (handler != NULL)
		handler(level, msg, handler_arg);
	else
		write_line(level, name, msg);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	if (level <= log_get_level())
		emit(level, levels[level].name, fmt, ap);
}

bool log_limit_allow(struct log_limit *l, uint64_t now_ms, unsigned interval_ms,
		     unsigned *skipped)
{
	if (l->last_ms != 0 && now_ms - l->last_ms < interval_ms) {
		l->skipped++;
		return false;
	}
	*skipped = l->skipped;
	l->skipped = 0;
	l->last_ms = now_ms != 0 ? now_ms : 1;
	return true;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_report(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOG_INFO, "stats", fmt, ap);
	va_end(ap);
}

static void libevent_log_cb(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_DEBUG: log_debug("libevent: %s", msg); break;
	case EVENT_LOG_MSG:   log_info("libevent: %s", msg); break;
	case EVENT_LOG_WARN:  log_warn("libevent: %s", msg); break;
	default:              log_error("libevent: %s", msg); break;
	}
}

void log_route_libevent(void)
{
	event_set_log_callback(libevent_log_cb);
}
