/*
 * log.h - the one logger of the program.
 *
 * Every line goes to stderr as "echoserver[tag] level: message", where tag
 * names the thread ("main", "w0", "w1", ...), so that interleaved lines from
 * several threads can be told apart. libevent's own warnings are routed here
 * too (log_route_libevent()).
 *
 * Thread safety: log_set_level() is called once by main() before any thread
 * starts; everything else may be called from any thread.
 */
#ifndef ECHOSERVER_LOG_H
#define ECHOSERVER_LOG_H

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

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A report the user asked for (SIGUSR1): printed whatever the level. */
void log_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sends libevent's internal warnings and errors through log_msg(). */
void log_route_libevent(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
