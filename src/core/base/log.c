/*
 * log.c - leveled, thread-tagged logging to stderr.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include <event2/event.h>

#include "log.h"

/* Written by main() before threads start, read by every thread: relaxed is enough. */
static atomic_int log_level = LOG_INFO;
static _Thread_local const char *thread_tag = "main";

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

static void log_line(const char *level_name, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	/* The library names the program that runs it, never one of its own
	 * (glibc sets the name from argv[0] before main). */
	n = snprintf(line, sizeof(line), "%.64s[%.32s] %s: ", program_invocation_short_name,
		     thread_tag, level_name);	/* < 128: argv[0] can be anything */
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* One call per line: stdio locks the stream, so lines never interleave. */
	fprintf(stderr, "%s\n", line);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	if (level <= log_get_level())
		log_line(names[level], fmt, ap);
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
	log_line("stats", fmt, ap);
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
