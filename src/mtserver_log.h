/*
 * mtserver_log.h - the library's logger, for programs to share: a part of
 * the public API, included by mtserver.h (include that).
 */
#ifndef MTSERVER_LOG_H
#define MTSERVER_LOG_H

/*
 * The core's logger, for the application to share: "prog[tag] level:
 * message" lines tagged with the thread ("main", "w0", ...), on stderr in
 * one write each (lines from threads never interleave). mts_new() also
 * routes libevent's own warnings into it ("libevent: ..."). Each line
 * begins with what stderr's reader needs: when stderr is the journal
 * (JOURNAL_STREAM, set by systemd, names it), the syslog priority "<3>"
 * error, "<4>" warning, "<6>" info, "<7>" debug, for `journalctl -p`;
 * otherwise the local time, RFC 3339 with milliseconds and the offset from
 * UTC ("2026-12-08T14:03:07.123+01:00 "). Which of the two is decided once,
 * at the process's first line on stderr.
 *
 * mts_log_set_level: before mts_new(); lines below the level are dropped.
 * mts_log: any thread.
 */
enum mts_log_level {
	MTS_LOG_ERROR = 0,
	MTS_LOG_WARN,
	MTS_LOG_INFO,
	MTS_LOG_DEBUG,
};

void mts_log_set_level(enum mts_log_level level);
void mts_log(enum mts_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Takes the log lines instead of stderr (as libevent's
 * event_set_log_callback() does): fn(level, msg, arg) for each line the
 * level lets through (the library's, libevent's, mts_log()'s), and for the
 * statistics mts_request_stats() asks for, at MTS_LOG_INFO. msg is the
 * message alone: no time, priority, program, thread or level; no newline;
 * at most 1023 bytes (longer ones are cut); valid until fn returns.
 *
 * fn runs on the thread that logs: the main thread, any worker, a work
 * queue's pool thread, the server's retrier, or a thread of the program;
 * so it may run on several threads at once, and must be safe for that. It
 * must not call back into the library (mts_log() would call it again),
 * and should not block: the worker that logs waits for it.
 *
 * NULL restores the default, stderr. Call it while no other thread may
 * log: before mts_new(), or after mts_free().
 */
typedef void (*mts_log_fn)(enum mts_log_level level, const char *msg, void *arg);
void mts_log_set_handler(mts_log_fn fn, void *arg);

#endif
