/*
 * test_log.c - the logger of mtserver.h, through the public API: each line
 * on stderr begins with its syslog priority when stderr is the journal
 * (JOURNAL_STREAM names it), and with the local time in RFC 3339 form
 * otherwise (JOURNAL_STREAM unset, malformed, or naming another file);
 * lines from threads never interleave; a handler set with
 * mts_log_set_handler() gets each line's level and bare message instead of
 * stderr, from whichever thread logs (the library's own lines, libevent's,
 * the statistics), and NULL gives stderr back.
 *
 * Which form stderr gets is decided once per process, so each case that
 * depends on it runs in a child of its own, with stderr on a file.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/util.h>

#include "mtserver.h"
#include "tap.h"

static char log_path[] = "/tmp/test_log-XXXXXX";

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Points stderr at a fresh, empty log_path. */
static void stderr_to_file(void)
{
	int fd = open(log_path, O_WRONLY | O_TRUNC);

	if (fd == -1 || dup2(fd, 2) == -1)
		bail("cannot point stderr at the log file");
	close(fd);
}

/* log_path's content, in a buffer the next call overwrites. */
static const char *log_text(void)
{
	static char buf[1 << 23];
	FILE *f = fopen(log_path, "r");
	size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f != NULL)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Runs fn in a child whose stderr is log_path; true if it exited 0. */
static bool in_child(void (*fn)(const void *), const void *arg)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		stderr_to_file();
		fn(arg);
		_exit(0);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

/* ---- the journal's priorities ------------------------------------------ */

/* JOURNAL_STREAM as systemd sets it for stderr; `shift` added to the inode
 * names another file. */
static void set_journal_stream(long shift)
{
	struct stat st;
	char v[64];

	if (fstat(2, &st) == -1)
		_exit(100);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + (unsigned long long)shift);
	setenv("JOURNAL_STREAM", v, 1);
}

static void log_each_level(void)
{
	mts_log_set_level(MTS_LOG_DEBUG);
	mts_log(MTS_LOG_ERROR, "an error");
	mts_log(MTS_LOG_WARN, "a warning");
	mts_log(MTS_LOG_INFO, "some news");
	mts_log(MTS_LOG_DEBUG, "a detail");
}

static void journal_child(const void *env)
{
	if (strcmp(env, "match") == 0)
		set_journal_stream(0);
	else if (strcmp(env, "other") == 0)
		set_journal_stream(1);
	else if (strcmp(env, "unset") == 0)
		unsetenv("JOURNAL_STREAM");
	else
		setenv("JOURNAL_STREAM", env, 1);
	log_each_level();
}

/* "2026-12-08T14:03:07.123+01:00 " at s: its instant in ms since the epoch
 * and its offset in minutes; false if s does not start with one. */
static bool parse_stamp(const char *s, long long *ms, int *offset_min)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec, milli, oh, om, n = 0;
	char sign;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c%2d:%2d %n", &y, &mo, &d, &h, &mi, &sec,
		   &milli, &sign, &oh, &om, &n) != 10 || n != 30 || (sign != '+' && sign != '-'))
		return false;
	/* The fixed widths above accept fewer digits: the length says all. */
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*offset_min = (sign == '-' ? -1 : 1) * (oh * 60 + om);
	*ms = ((long long)timegm(&tm) - *offset_min * 60) * 1000 + milli;
	return true;
}

static void test_journal(void)
{
	char want[512];
	const char *p = program_invocation_short_name;
	bool stamped = true;
	const char *text = "";

	snprintf(want, sizeof(want),
		 "<3>%s[main] error: an error\n<4>%s[main] warning: a warning\n"
		 "<6>%s[main] info: some news\n<7>%s[main] debug: a detail\n", p, p, p, p);
	ok(in_child(journal_child, "match") && strcmp(text = log_text(), want) == 0,
	   "JOURNAL_STREAM names stderr: each line starts with its priority, "
	   "<3> error, <4> warning, <6> info, <7> debug, and no time");
	if (strcmp(text, want) != 0)
		diag("got:\n%s", text);

	for (const char *const *env = (const char *const[]){ "other", "unset", "12:", "x:1",
							       NULL };
	     *env != NULL; env++) {
		long long ms;
		int off, lines = 0;

		in_child(journal_child, *env);
		text = log_text();
		for (const char *l = text; *l != '\0'; l = strchr(l, '\n') + 1) {
			stamped = stamped && parse_stamp(l, &ms, &off) && l[30] != '<' &&
				  strchr(l, '\n') != NULL;
			lines++;
		}
		stamped = stamped && lines == 4;
		if (!stamped) {
			diag("JOURNAL_STREAM %s: got:\n%s", *env, text);
			break;
		}
	}
	ok(stamped, "JOURNAL_STREAM naming another file, unset or malformed: every line "
	   "starts with a time, none with a priority");
}

/* ---- the time stamp ----------------------------------------------------- */

static void stamp_child(const void *tz)
{
	long long before, after;

	setenv("TZ", tz, 1);
	tzset();
	unsetenv("JOURNAL_STREAM");
	before = wall_ms();
	mts_log(MTS_LOG_INFO, "before %lld", before);
	after = wall_ms();
	mts_log(MTS_LOG_INFO, "after %lld", after);
}

/*
 * In three time zones, east, west and on UTC: the stamp is local time with
 * that zone's offset, and the instant it names lies between the wall clock
 * read just before the line and just after it (both in whole ms, as the
 * stamp is). What this checks is which instant a stamp names, not how
 * long anything took.
 */
static void test_stamp(void)
{
	static const struct {
		const char *tz;
		int offset_min;
		const char *text;
	} zones[] = {
		{ "XST-5:30", 330, "+05:30" },
		{ "YST8", -480, "-08:00" },
		{ "UTC0", 0, "+00:00" },
	};

	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		long long ms = 0, before = 0, after = 0;
		int off = -1;
		const char *text;
		bool good;

		good = in_child(stamp_child, zones[i].tz);
		text = log_text();
		good = good && parse_stamp(text, &ms, &off) &&
		       sscanf(strstr(text, "before ") + 7, "%lld", &before) == 1 &&
		       strstr(text, "after ") != NULL &&
		       sscanf(strstr(text, "after ") + 6, "%lld", &after) == 1;
		ok(good && off == zones[i].offset_min && strncmp(text + 23, zones[i].text, 6) == 0 &&
		   before <= ms && ms <= after,
		   "TZ=%s: 'YYYY-MM-DDTHH:MM:SS.mmm%s ', the local time of the line (%lld ms, "
		   "between %lld and %lld)", zones[i].tz, zones[i].text, ms, before, after);
		if (!good)
			diag("got: %s", text);
	}
}

/* ---- one write per line ------------------------------------------------- */

#define WRITERS 4
#define LINES 5000

static void *writer(void *arg)
{
	unsigned id = (unsigned)(size_t)arg;
	char pad[201];

	memset(pad, 'a' + (int)id, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (unsigned i = 0; i < LINES; i++)
		mts_log(MTS_LOG_INFO, "writer %u line %u %s", id, i, pad);
	return NULL;
}

static void interleave_child(const void *unused)
{
	pthread_t t[WRITERS];

	(void)unused;
	unsetenv("JOURNAL_STREAM");
	for (size_t i = 0; i < WRITERS; i++)
		if (pthread_create(&t[i], NULL, writer, (void *)i) != 0)
			_exit(101);
	for (size_t i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
}

/* Each writer's lines whole and in its order, whatever the others do. */
static void test_interleave(void)
{
	unsigned next[WRITERS] = { 0 };
	const char *text, *l, *eol;
	char tail[64], pad[201];
	long long ms;
	int off, whole = 0, bad = 0;

	ok(in_child(interleave_child, NULL), "%d threads logged %d lines each", WRITERS, LINES);
	text = log_text();
	for (l = text; *l != '\0' && (eol = strchr(l, '\n')) != NULL; l = eol + 1) {
		unsigned id, i;
		const char *m = strstr(l, "] info: writer ");

		if (m == NULL || m > eol || !parse_stamp(l, &ms, &off) ||
		    sscanf(m, "] info: writer %u line %u %63s", &id, &i, tail) != 3 ||
		    id >= WRITERS || i != next[id]) {
			bad++;
			continue;
		}
		memset(pad, 'a' + (int)id, sizeof(pad) - 1);
		pad[sizeof(pad) - 1] = '\0';
		if (eol - m < 200 || memcmp(eol - 200, pad, 200) != 0 || eol[-201] != ' ') {
			bad++;
			continue;
		}
		next[id]++;
		whole++;
	}
	ok(whole == WRITERS * LINES && bad == 0 && *l == '\0',
	   "every line whole and in its writer's order (%d of %d, %d broken)", whole,
	   WRITERS * LINES, bad);
}

/* ---- the handler -------------------------------------------------------- */

#define MAX_GOT 64

struct got {
	pthread_mutex_t lock;
	unsigned n;
	struct {
		enum mts_log_level level;
		char msg[256];
		bool main_thread;
	} line[MAX_GOT];
};

static pthread_t main_thread;
static size_t long_len;		/* the length of the last message, whole */

static void record(enum mts_log_level level, const char *msg, void *arg)
{
	struct got *g = arg;

	pthread_mutex_lock(&g->lock);
	long_len = strlen(msg);
	if (g->n < MAX_GOT) {
		g->line[g->n].level = level;
		snprintf(g->line[g->n].msg, sizeof(g->line[g->n].msg), "%s", msg);
		g->line[g->n].main_thread = pthread_equal(pthread_self(), main_thread);
		g->n++;
	}
	pthread_mutex_unlock(&g->lock);
}

/* The first line that starts with `prefix`, or -1. */
static int find(struct got *g, const char *prefix)
{
	for (unsigned i = 0; i < g->n; i++)
		if (strncmp(g->line[i].msg, prefix, strlen(prefix)) == 0)
			return (int)i;
	return -1;
}

static int nop_open(struct mts_conn *c, void *arg)
{
	(void)c, (void)arg;
	return 0;
}

static void nop_conn(struct mts_conn *c, void *arg)
{
	(void)arg;
	mts_conn_close(c);
}

static void nop_close(struct mts_conn *c, void *arg)
{
	(void)c, (void)arg;
}

static struct mts_server *srv;
static unsigned calls_done;	/* under the handler's lock */

/* On each worker: a line from that thread; the last one asks for the
 * statistics, then stops the server. */
static void worker_logs(struct event_base *base, void *arg, int cancelled)
{
	struct got *g = arg;
	bool last;

	(void)base;
	if (cancelled)
		return;
	mts_log(MTS_LOG_WARN, "from a worker");
	pthread_mutex_lock(&g->lock);
	last = ++calls_done == mts_worker_count(srv);
	pthread_mutex_unlock(&g->lock);
	if (last) {
		mts_request_stats(srv);
		mts_stop(srv);
	}
}

static void test_handler(void)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const char *const listen[] = { "127.0.0.1" };
	static struct got g = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mts_handler h = { .on_open = nop_open, .on_shutdown = nop_conn,
				 .on_close = nop_close };
	struct mts_config cfg;
	char why[256];
	bool each = true, main_only = true;
	int i, from = 0, stats = 0;

	main_thread = pthread_self();
	unsetenv("JOURNAL_STREAM");
	stderr_to_file();
	mts_log_set_handler(record, &g);
	mts_log_set_level(MTS_LOG_DEBUG);
	for (int l = MTS_LOG_ERROR; l <= MTS_LOG_DEBUG; l++)
		mts_log((enum mts_log_level)l, "level %s", names[l]);
	for (int l = MTS_LOG_ERROR; l <= MTS_LOG_DEBUG; l++)
		each = each && (unsigned)l < g.n && g.line[l].level == (enum mts_log_level)l &&
		       strncmp(g.line[l].msg, "level ", 6) == 0 &&
		       strcmp(g.line[l].msg + 6, names[l]) == 0;
	ok(each && g.n == 4, "a handler gets each level and the bare message (%u lines)", g.n);

	g.n = 0;
	mts_log(MTS_LOG_INFO, "%0*d", 2000, 7);	/* 2000 characters */
	ok(g.n == 1 && strlen(g.line[0].msg) == 255 && long_len == 1023,
	   "a message of 2000 characters reaches it cut to 1023 bytes (%zu)", long_len);

	g.n = 0;
	mts_log_set_level(MTS_LOG_WARN);
	mts_log(MTS_LOG_INFO, "dropped");
	mts_log(MTS_LOG_DEBUG, "dropped");
	mts_log(MTS_LOG_WARN, "kept");
	ok(g.n == 1 && strcmp(g.line[0].msg, "kept") == 0,
	   "at level warning it gets warnings, not info or debug");

	/* The library's own lines: libevent's, routed by mts_new(); a worker's;
	 * the statistics, whatever the level. */
	g.n = 0;
	mts_config_defaults(&cfg);
	cfg.listen = listen;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = 2;
	if (mts_new(&srv, &cfg, &h, why, sizeof(why)) < 0)
		bail(why);
	evutil_make_socket_nonblocking(-1);	/* libevent warns: fcntl(-1, ...) */
	i = find(&g, "libevent: fcntl(-1");
	ok(i >= 0 && g.line[i].level == MTS_LOG_WARN,
	   "libevent's warning reaches it through mts_new()'s routing, as a warning");
	for (unsigned w = 0; w < mts_worker_count(srv); w++)
		if (mts_post(srv, w, worker_logs, &g) < 0)
			bail("mts_post");
	tap_waiting("mts_run() until the workers logged and stopped it");
	if (mts_run(srv) < 0)
		bail("mts_run");
	mts_free(srv);
	each = true;
	for (unsigned k = 0; k < g.n; k++) {
		if (strcmp(g.line[k].msg, "from a worker") == 0) {
			from++;
			each = each && !g.line[k].main_thread && g.line[k].level == MTS_LOG_WARN;
		}
		if (strstr(g.line[k].msg, ": live ") != NULL) {
			stats++;
			main_only = main_only && g.line[k].main_thread &&
				    g.line[k].level == MTS_LOG_INFO;
		}
	}
	ok(each && from == 2, "the workers' lines reach it on the workers' threads (%d)", from);
	ok(stats == 2 && main_only,
	   "the statistics reach it at info, though the level is warning (%d lines)", stats);
	ok(log_text()[0] == '\0', "nothing reached stderr while it was set");

	mts_log_set_handler(NULL, NULL);
	g.n = 0;
	mts_log(MTS_LOG_ERROR, "back on stderr");
	ok(g.n == 0 && strstr(log_text(), "[main] error: back on stderr\n") != NULL,
	   "NULL restores stderr");
}

int main(void)
{
	int fd;

	tap_watchdog(60);
	if ((fd = mkstemp(log_path)) == -1)
		bail("mkstemp");
	close(fd);
	tap_plan(2 + 3 + 2 + 8);
	test_journal();
	test_stamp();
	test_interleave();
	test_handler();
	unlink(log_path);
	return tap_done();
}
