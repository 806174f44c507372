/*
 * metrics_text.c - the server's statistics in Prometheus's text exposition
 * format (version 0.0.4): what GET /metrics answers (metrics.c serves it).
 *
 * What a scrape reads, and why it does not disturb the workers. Every
 * figure is a counter.h counter or a relaxed atomic: most have one writer
 * (a worker's connection home and inbox count on the worker, an accept
 * unit on its thread), a few are relaxed fetch-adds of several (a refused
 * post, an accept pause). A scrape loads each with a relaxed load, as
 * SIGUSR1's line does (stats.c). No lock is taken and nothing is written
 * that a worker reads, so a worker never waits for a scrape, nor a scrape
 * for a worker. The price: the figures are not one snapshot. Each is some
 * value it had during the scrape, and each counter only grows, so
 * successive scrapes never see one go back; the one derived figure,
 * wake-ups saved (handled - wake-ups - full, three counters read at
 * different moments), could, so it is reported as the most it has been.
 * The handoff histogram is made consistent with itself: its buckets are
 * read once each (hist_cumulative()), and _count is their sum, not the
 * separately kept count, so the +Inf bucket equals _count and the buckets
 * never decrease, as Prometheus requires; _sum is read beside them and may
 * be a few values ahead or behind.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "counter.h"
#include "histogram.h"
#include "metrics_text.h"
#include "server.h"

/* "# HELP" and "# TYPE" of one metric family. */
void metrics_family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample of a per-worker family; label: "" or ",reason=\"x\"". */
static void per_worker(struct evbuffer *b, const char *name, const char *label, unsigned w,
		       uint64_t v)
{
	evbuffer_add_printf(b, "%s{worker=\"%u\"%s} %llu\n", name, w, label,
			    (unsigned long long)v);
}

/* The per-worker counters of struct mts_worker_stats, by field. Rows of
 * one family follow each other, told apart by their label (its help and
 * type are the first row's). */
static const struct {
	const char *name, *type, *help;
	size_t field;			/* offsetof a uint64_t in mts_worker_stats */
	const char *label;		/* NULL, or the row's extra label */
} worker_figures[] = {
#define FIELD(f) offsetof(struct mts_worker_stats, f), NULL
#define LABELED(f, l) offsetof(struct mts_worker_stats, f), l
	{ "mtserver_connections_accepted_total", "counter",
	  "Connections the worker took on.", FIELD(accepted) },
	{ "mtserver_received_bytes_total", "counter",
	  "Bytes received from clients, as the protocol counted them.", FIELD(bytes_in) },
	{ "mtserver_sent_bytes_total", "counter",
	  "Bytes sent to clients, as the protocol counted them.", FIELD(bytes_out) },
	{ "mtserver_inbox_wakeups_total", "counter",
	  "Wake-up signals the worker's inbox drained.", FIELD(wakeups) },
	{ "mtserver_inbox_handled_total", "counter",
	  "Inbox messages the worker handled (connections handed to it, calls).",
	  FIELD(handled) },
	{ "mtserver_inbox_wakeups_saved_total", "counter",
	  "Messages that rode along on another message's wake-up.", FIELD(wakeups_saved) },
	{ "mtserver_inbox_rounds_total", "counter",
	  "Inbox rounds: wake-ups plus re-arms.", FIELD(rounds) },
	{ "mtserver_inbox_wouldblock_total", "counter",
	  "Inbox rounds that met a producer in the middle of an enqueue.", FIELD(wouldblock) },
	{ "mtserver_inbox_refused_total", "counter",
	  "Posts the inbox refused: a full ring, or no memory for a node.", FIELD(refused) },
	{ "mtserver_inbox_largest_batch", "gauge",
	  "Most messages the inbox handled in one round.", FIELD(largest_batch) },
	{ "mtserver_accept_wakeups_total", "counter",
	  "Accept events the worker handled (accept reuseport or shared; else 0).",
	  FIELD(accept_wakeups) },
	{ "mtserver_accept_empty_total", "counter",
	  "Accept events that found no connection waiting (the thundering herd).",
	  FIELD(accept_empty) },
#define PROXY_HEADERS "mtserver_proxy_headers_total", "counter", \
	"PROXY protocol headers taken, by version."
	{ PROXY_HEADERS, LABELED(proxy_v1, "version=\"1\"") },
	{ PROXY_HEADERS, LABELED(proxy_v2, "version=\"2\"") },
	{ "mtserver_proxy_local_total", "counter",
	  "Of the v2 headers, LOCAL ones (a balancer's own connection: a health check).",
	  FIELD(proxy_local) },
#define PROXY_DROPPED "mtserver_proxy_dropped_total", "counter", \
	"Connections closed before the protocol saw them (--proxy-protocol): a " \
	"sender not allowed, not a header, a part of one, or none in time."
	{ PROXY_DROPPED, LABELED(proxy_dropped[MTS_PROXY_SOURCE], "reason=\"source\"") },
	{ PROXY_DROPPED, LABELED(proxy_dropped[MTS_PROXY_INVALID], "reason=\"invalid\"") },
	{ PROXY_DROPPED, LABELED(proxy_dropped[MTS_PROXY_PARTIAL], "reason=\"partial\"") },
	{ PROXY_DROPPED, LABELED(proxy_dropped[MTS_PROXY_TIMEOUT], "reason=\"timeout\"") },
	{ "mtserver_udp_received_total", "counter",
	  "UDP datagrams the worker read.", FIELD(udp_received) },
	{ "mtserver_udp_answered_total", "counter",
	  "UDP answers the worker sent.", FIELD(udp_answered) },
#define UDP_DROPPED "mtserver_udp_dropped_total", "counter", \
	"UDP datagrams not answered: larger than udp_max, a guarded source, sent to a " \
	"broadcast or multicast address, past udp_rate for their source, or not sent."
	{ UDP_DROPPED, LABELED(udp_dropped[MTS_UDP_TRUNCATED], "reason=\"truncated\"") },
	{ UDP_DROPPED, LABELED(udp_dropped[MTS_UDP_SOURCE], "reason=\"source\"") },
	{ UDP_DROPPED, LABELED(udp_dropped[MTS_UDP_DESTINATION], "reason=\"destination\"") },
	{ UDP_DROPPED, LABELED(udp_dropped[MTS_UDP_RATE], "reason=\"rate\"") },
	{ UDP_DROPPED, LABELED(udp_dropped[MTS_UDP_SEND], "reason=\"send\"") },
#undef UDP_DROPPED
#undef PROXY_DROPPED
#undef PROXY_HEADERS
#undef LABELED
#undef FIELD
};

/* Bucket bounds of the handoff histogram, in nanoseconds (1 us to 1 s). */
static const uint64_t handoff_bounds_ns[] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000,
	250000000, 500000000, 1000000000,
};
#define N_HANDOFF_BOUNDS (sizeof(handoff_bounds_ns) / sizeof(handoff_bounds_ns[0]))

static void handoff_histogram(struct evbuffer *b, const struct mts_server *s)
{
	uint64_t at[N_HANDOFF_BOUNDS], total;
	const char *n = "mtserver_handoff_latency_seconds";

	metrics_family(b, n, "histogram",
	       "From accept() to the worker taking the connection on (its handoff).");
	for (unsigned w = 0; w < s->n_workers; w++) {
		const struct histogram *h = &s->homes[w].handoff_ns;

		hist_cumulative(h, handoff_bounds_ns, N_HANDOFF_BOUNDS, at, &total);
		for (size_t i = 0; i < N_HANDOFF_BOUNDS; i++)
			evbuffer_add_printf(b, "%s_bucket{worker=\"%u\",le=\"%g\"} %llu\n", n, w,
					    (double)handoff_bounds_ns[i] / 1e9,
					    (unsigned long long)at[i]);
		evbuffer_add_printf(b, "%s_bucket{worker=\"%u\",le=\"+Inf\"} %llu\n", n, w,
				    (unsigned long long)total);
		evbuffer_add_printf(b, "%s_sum{worker=\"%u\"} %.9f\n", n, w,
				    (double)hist_sum(h) / 1e9);
		evbuffer_add_printf(b, "%s_count{worker=\"%u\"} %llu\n", n, w,
				    (unsigned long long)total);
	}
}

/* Every per-worker family, each with every worker's sample (the format
 * wants a family's samples together). -ENOMEM, or 0. */
static int worker_families(struct evbuffer *b, const struct mts_server *s, uint64_t *saved_seen)
{
	struct mts_worker_stats *st = calloc(s->n_workers, sizeof(*st));

	if (st == NULL)
		return -ENOMEM;
	for (unsigned w = 0; w < s->n_workers; w++) {
		stats_counts(s, w, &st[w]);
		/* Derived from three counters read apart (the header comment):
		 * never report less than before. */
		if (st[w].wakeups_saved < saved_seen[w])
			st[w].wakeups_saved = saved_seen[w];
		saved_seen[w] = st[w].wakeups_saved;
	}
	metrics_family(b, "mtserver_connections_open", "gauge", "Connections the worker serves now.");
	for (unsigned w = 0; w < s->n_workers; w++)
		per_worker(b, "mtserver_connections_open", "", w, st[w].live);
	for (size_t k = 0; k < sizeof(worker_figures) / sizeof(worker_figures[0]); k++) {
		const char *label = worker_figures[k].label;
		char extra[64];

		if (k == 0 || strcmp(worker_figures[k].name, worker_figures[k - 1].name) != 0)
			metrics_family(b, worker_figures[k].name, worker_figures[k].type,
				       worker_figures[k].help);
		snprintf(extra, sizeof(extra), "%s%s", label != NULL ? "," : "",
			 label != NULL ? label : "");
		for (unsigned w = 0; w < s->n_workers; w++) {
			uint64_t v;

			memcpy(&v, (const char *)&st[w] + worker_figures[k].field, sizeof(v));
			per_worker(b, worker_figures[k].name, extra, w, v);
		}
	}
	free(st);
	handoff_histogram(b, s);
	return 0;
}

/* What the accept units count together, and what the server is. */
static void server_families(struct evbuffer *b, const struct mts_server *s)
{
	uint64_t inbox_full = 0;

	for (unsigned w = 0; w < s->n_workers; w++)
		inbox_full += counter_get(&s->homes[w].refused);
	metrics_family(b, "mtserver_build_info", "gauge",
	       "The server's version and configuration, as labels; always 1.");
	evbuffer_add_printf(b, "mtserver_build_info{version=\"%s\",dispatch=\"%s\",accept=\"%s\","
			    "libevent=\"%s\"} 1\n", PACKAGE_VERSION, s->cfg.dispatch,
			    s->cfg.accept, event_get_version());
	metrics_family(b, "mtserver_workers", "gauge", "Worker threads.");
	evbuffer_add_printf(b, "mtserver_workers %u\n", s->n_workers);
	metrics_family(b, "mtserver_connections_refused_total", "counter",
	       "Connections closed at once: over max_conns_per_ip, or a full inbox.");
	evbuffer_add_printf(b, "mtserver_connections_refused_total{reason=\"per_ip\"} %llu\n"
			    "mtserver_connections_refused_total{reason=\"inbox_full\"} %llu\n",
			    (unsigned long long)atomic_load_explicit(&s->accept_sh.refused_per_ip,
								     memory_order_relaxed),
			    (unsigned long long)inbox_full);
	metrics_family(b, "mtserver_accept_pauses_total", "counter",
	       "Times an accept loop stopped accepting: at max_conns (newcomers wait in "
	       "the backlog), or out of descriptors or memory (it retries).");
	evbuffer_add_printf(b, "mtserver_accept_pauses_total{reason=\"max_conns\"} %llu\n"
			    "mtserver_accept_pauses_total{reason=\"resources\"} %llu\n",
			    (unsigned long long)atomic_load_explicit(&s->accept_sh.pauses_full,
								     memory_order_relaxed),
			    (unsigned long long)atomic_load_explicit(
				    &s->accept_sh.pauses_resources, memory_order_relaxed));
	metrics_family(b, "mtserver_accept_paused", "gauge",
	       "Accept loops paused at max_conns now (one per worker with reuseport or "
	       "shared, one with handoff).");
	evbuffer_add_printf(b, "mtserver_accept_paused %u\n",
			    atomic_load_explicit(&s->accept_sh.paused, memory_order_relaxed));
}

/* The number after `key` on the line of path that starts with it
 * ("btime " in /proc/stat, whose per-CPU lines come first: on a large
 * machine it is far into the file). */
static bool proc_line(const char *path, const char *key, unsigned long long *out)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strncmp(line, key, strlen(key)) == 0 &&
			sscanf(line + strlen(key), "%llu", out) == 1;
	fclose(f);
	return found;
}

/* Field n (1-based, as proc(5) counts) of a /proc/PID/stat-like file, or
 * of "size resident ..." in statm when it has no ')'. */
static bool proc_field(const char *path, unsigned n, unsigned long long *out)
{
	char buf[1024], *p;
	size_t len;
	unsigned field = 1;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return false;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	/* The command name (field 2) may hold spaces: count from the ')'
	 * that ends it. */
	if ((p = strrchr(buf, ')')) != NULL)
		field = 2;
	else
		p = buf - 1;
	for (; field < n; field++)
		if ((p = strchr(p + 1, ' ')) == NULL)
			return false;
	return sscanf(p + 1, "%llu", out) == 1;
}

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	if (d == NULL)
		return 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n > 3 ? n - 3 : 0;	/* less ".", ".." and this DIR's own */
}

/* The process collector's usual names, as Prometheus's client libraries
 * spell them, so existing dashboards work. Linux's /proc; a figure it
 * cannot give is left out. */
static void process_families(struct evbuffer *b)
{
	unsigned long long start_ticks, boot_s, rss_pages;
	long hz = sysconf(_SC_CLK_TCK);
	struct rusage ru;
	struct rlimit rl;

	if (hz > 0 && proc_field("/proc/self/stat", 22, &start_ticks) &&
	    proc_line("/proc/stat", "btime ", &boot_s)) {
		metrics_family(b, "process_start_time_seconds", "gauge",
		       "Start time of the process since the Unix epoch, in seconds.");
		evbuffer_add_printf(b, "process_start_time_seconds %.2f\n",
				    (double)boot_s + (double)start_ticks / (double)hz);
	}
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		metrics_family(b, "process_cpu_seconds_total", "counter",
		       "User and system CPU time spent, in seconds.");
		evbuffer_add_printf(b, "process_cpu_seconds_total %.6f\n",
				    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
					    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	}
	/* statm: "size resident ...", in pages. */
	if (proc_field("/proc/self/statm", 2, &rss_pages)) {
		metrics_family(b, "process_resident_memory_bytes", "gauge", "Resident memory, in bytes.");
		evbuffer_add_printf(b, "process_resident_memory_bytes %llu\n",
				    rss_pages * (unsigned long long)sysconf(_SC_PAGESIZE));
	}
	metrics_family(b, "process_open_fds", "gauge", "Open file descriptors.");
	evbuffer_add_printf(b, "process_open_fds %u\n", open_fds());
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		metrics_family(b, "process_max_fds", "gauge", "The limit on open file descriptors.");
		evbuffer_add_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
}


int metrics_text(struct evbuffer *b, const struct mts_server *s, uint64_t *saved_seen)
{
	if (worker_families(b, s, saved_seen) < 0)
		return -ENOMEM;
	server_families(b, s);
	process_families(b);
	return 0;
}
