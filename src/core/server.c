/*
 * server.c - the server's lifecycle: build, run, stop, free.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "core.h"
#include "counter.h"
#include "log.h"

const char *mts_dispatch_name(unsigned i)
{
	return i < INBOX_N_VARIANTS ? inbox_variant_name((enum inbox_variant)i) : NULL;
}

void mts_config_defaults(struct mts_config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	*cfg = (struct mts_config){
		.port = "5555",
		.threads = cpus > 0 ? (unsigned)cpus : 1,
		.backlog = 1024,
		.shutdown_grace_ms = 2000,
		.linger_ms = 2000,
		.linger_bytes = 16u << 20,
		.inbox_budget = 64,
		.balance = MTS_BALANCE_RR,
		.dispatch = "wfcq",
	};
}

/*
 * Descriptors open in this process now, or -1 if /proc cannot say (the
 * budget check below is skipped then).
 */
static long open_descriptors(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own */
}

/* Left free after the workers: the first connections, and the program's own. */
#define FD_RESERVE 16

/*
 * The descriptor budget, checked once worker 0 exists: what it took is what
 * every other worker will take (an event_base holds its backend's fd and
 * libevent's signal socketpair; an inbox holds its eventfd or pipe), so
 * the rest must fit under RLIMIT_NOFILE with FD_RESERVE to spare. Failing
 * here, with numbers, beats failing inside libevent ("evsig_init_:
 * socketpair: Too many open files") halfway through the workers.
 */
static int check_fd_budget(unsigned threads, long before, char *why, size_t why_len)
{
	struct rlimit rl;
	long now = open_descriptors(), each = now - before, need, fit;

	if (before < 0 || now < 0 || each <= 0 || getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    rl.rlim_cur == RLIM_INFINITY)
		return 0;
	need = now + each * (long)(threads - 1) + FD_RESERVE;
	if (need <= (long)rl.rlim_cur)
		return 0;
	fit = ((long)rl.rlim_cur - FD_RESERVE - before) / each;
	snprintf(why, why_len, "not enough file descriptors: %u worker threads take %ld "
		 "(%ld each), %ld are open already and %d are kept for connections, but the "
		 "limit is %lu; raise it (ulimit -n %ld) or use at most %ld threads",
		 threads, each * (long)threads, each, before, FD_RESERVE,
		 (unsigned long)rl.rlim_cur, need, fit > 0 ? fit : 0);
	return -EMFILE;
}

int mts_new(struct mts_server **out, const struct mts_config *cfg,
	       const struct mts_handler *handler, char *why, size_t why_len)
{
	struct mts_server *s;
	int rc;

	snprintf(why, why_len, "out of memory");
	if (cfg->threads < 1) {
		snprintf(why, why_len, "invalid configuration");
		return -EINVAL;
	}
	if (inbox_variant_from_name(cfg->dispatch) < 0) {
		snprintf(why, why_len, "unknown dispatch variant '%s'", cfg->dispatch);
		return -EINVAL;
	}
	log_route_libevent();
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->cfg = *cfg;
	s->variant = (enum inbox_variant)inbox_variant_from_name(cfg->dispatch);
	s->handler = *handler;
	s->wake.read_fd = s->wake.write_fd = -1;
	s->cfg.listen = NULL;	/* only needed while opening the listeners */

	if (cfg->max_conns_per_ip > 0 && (rc = iplimit_new(&s->iplimit, cfg->max_conns_per_ip)) < 0)
		goto fail;
	/* The acceptor's base: main thread only, like each worker's is its own. */
	s->base = event_base_new();
	if (s->base == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	s->cfg.listen = cfg->listen;
	rc = acceptor_open(s, why, why_len);
	s->cfg.listen = NULL;
	if (rc < 0)
		goto fail;
	snprintf(why, why_len, "cannot set up the acceptor");
	if ((rc = acceptor_start(s)) < 0)
		goto fail;

	snprintf(why, why_len, "cannot set up the workers");
	s->workers = calloc(cfg->threads, sizeof(*s->workers));
	if (s->workers == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	s->n_workers = cfg->threads;	/* mts_free() copes with workers never set up */
	for (unsigned i = 0; i < s->n_workers; i++) {
		long before = i == 0 ? open_descriptors() : 0;

		if ((rc = worker_init(&s->workers[i], s, i)) < 0)
			goto fail;
		if (i == 0 && (rc = check_fd_budget(cfg->threads, before, why, why_len)) < 0)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	mts_free(s);
	return rc;
}

size_t mts_listener_count(const struct mts_server *s)
{
	return s->n_listeners;
}

const char *mts_listener_name(const struct mts_server *s, size_t i)
{
	return i < s->n_listeners ? s->listeners[i].name : NULL;
}

static void stop_workers(struct mts_server *s)
{
	/* "stop" travels the same path as work: behind everything posted before. */
	for (unsigned i = 0; i < s->n_workers; i++)
		if (s->workers[i].started)
			worker_post_stop(&s->workers[i]);
	for (unsigned i = 0; i < s->n_workers; i++)
		worker_join(&s->workers[i]);
}

int mts_run(struct mts_server *s)
{
	int rc = 0;

	for (unsigned i = 0; i < s->n_workers; i++) {
		if ((rc = worker_start(&s->workers[i])) < 0) {
			log_error("cannot start worker %u: %s", i, strerror(-rc));
			break;
		}
	}
	if (rc == 0) {
		/* Accept until mts_stop() breaks the loop (acceptor.c, on_wake). */
		event_base_dispatch(s->base);
		log_info("stopping: no longer accepting; finishing connections");
	}
	stop_workers(s);
	return rc;
}

unsigned mts_worker_count(const struct mts_server *s)
{
	return s->n_workers;
}

int mts_post(struct mts_server *s, unsigned worker, mts_call_fn fn, void *arg)
{
	struct call *call;

	if (worker >= s->n_workers || fn == NULL)
		return -EINVAL;
	if (atomic_load_explicit(&s->closed, memory_order_acquire))
		return -ESHUTDOWN;
	call = malloc(sizeof(*call));
	if (call == NULL)
		return -ENOMEM;
	call->msg.kind = MSG_CALL;
	call->fn = fn;
	call->arg = arg;
	/* From here the call is the worker's. A failed wake-up is owed, and
	 * the acceptor (the one thread that retries) is asked to send it. */
	if (inbox_post(s->workers[worker].inbox, &call->msg) < 0)
		acceptor_rewake_later(s);
	return 0;
}

int mts_post_all(struct mts_server *s, mts_call_fn fn, void *arg)
{
	for (unsigned i = 0; i < s->n_workers; i++) {
		int rc = mts_post(s, i, fn, arg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int mts_worker_stats(const struct mts_server *s, unsigned worker,
			struct mts_worker_stats *out)
{
	const struct worker *w;
	struct inbox_stats ist;

	if (worker >= s->n_workers)
		return -EINVAL;
	w = &s->workers[worker];
	inbox_get_stats(w->inbox, &ist);
	*out = (struct mts_worker_stats){
		.live = atomic_load_explicit(&w->live, memory_order_relaxed),
		.accepted = counter_get(&w->stats.accepted),
		.bytes_in = counter_get(&w->stats.bytes_in),
		.bytes_out = counter_get(&w->stats.bytes_out),
		.wakeups = ist.wakeups,
		.wakeups_saved = ist.elided,
		.largest_batch = ist.largest_batch,
		.rounds = ist.rounds,
		.wouldblock = ist.wouldblock,
		.handoff_p50_ns = hist_quantile(&w->handoff_ns, 0.50),
		.handoff_p90_ns = hist_quantile(&w->handoff_ns, 0.90),
		.handoff_p99_ns = hist_quantile(&w->handoff_ns, 0.99),
		.handoff_max_ns = hist_max(&w->handoff_ns),
	};
	return 0;
}

void mts_stop(struct mts_server *s)
{
	acceptor_wake(s, WAKE_STOP);
}

void mts_request_stats(struct mts_server *s)
{
	acceptor_wake(s, WAKE_STATS);
}

void mts_free(struct mts_server *s)
{
	if (s == NULL)
		return;
	stop_workers(s);	/* no-op after mts_run() */
	/* Listeners first: nothing new is accepted while the workers go. */
	acceptor_close(s);
	/* No pool thread posts any more (a pool the program left running
	 * would post into the drain below)... */
	workq_stop_all(s);
	/* ... and every call still queued is cancelled now, and may post no more. */
	atomic_store_explicit(&s->closed, true, memory_order_release);
	for (unsigned i = 0; i < s->n_workers; i++)
		worker_drain(&s->workers[i]);
	workq_free_all(s);	/* after the drain: cancelled dones may touch a queue */
	for (unsigned i = 0; i < s->n_workers; i++)
		worker_destroy(&s->workers[i]);
	iplimit_free(s->iplimit);	/* every connection has released its entry */
	free(s->workers);
	wakeup_close(&s->wake);
	if (s->base != NULL)
		event_base_free(s->base);
	free(s);
}
