/*
 * server.c - the server's lifecycle (build, run, stop, free), what the
 * main thread's control channel asks it to do, and the public entry points
 * that the layers below implement (mts_post, mts_workq_*, mts_log). The
 * configuration's rules are config.c's; how connections reach workers is
 * the accept strategy's (strategy.h); socket activation is activation.c's,
 * the descriptor budget fd_budget.c's, what the service manager is told
 * notify.c's, and the sockets (listening and UDP) server_sockets.c's.
 *
 * Layers (doc/ARCHITECTURE.md): this file is the top of the core. It calls
 * down into the executor (workers, tasks) and the handoff layer (retrier,
 * wake-up); they call back up only through function pointers given here
 * (the executor's on_stop hook, the tasks' run and cancel, the connection
 * limit's on_slot_freed).
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "fd_budget.h"
#include "server.h"

/* ---- the control channel ----------------------------------------------- */

/* The control channel's handler, on the main thread. */
static void on_control(unsigned reasons, void *arg)
{
	struct mts_server *s = arg;

	if (reasons & WAKE_STATS)
		stats_log(s);
	if (reasons & WAKE_SLOT_FREED)
		s->strategy->resume_main(s);
	if (reasons & WAKE_STOP) {
		s->strategy->stop_main(s);
		event_base_loopbreak(s->base);
	}
}

void mts_stop(struct mts_server *s)
{
	control_wake(&s->control, WAKE_STOP);
}

void mts_request_stats(struct mts_server *s)
{
	control_wake(&s->control, WAKE_STATS);
}

/* The connection limit's callback: any thread, once per max -> max - 1. */
static void on_slot_freed(void *arg)
{
	struct mts_server *s = arg;

	s->strategy->slot_freed(s);
}

/* The executor's on_start hook, on worker `i` before it serves anything:
 * the protocol's per-worker state. */
static void on_worker_start(unsigned i, void *arg)
{
	struct mts_server *s = arg;
	struct conn_home *h = &s->homes[i];

	if (s->sh.handler.worker_init == NULL)
		return;
	atomic_store_explicit(&h->state, s->sh.handler.worker_init(i, h->base,
								  s->sh.handler.arg),
			      memory_order_release);	/* mts_worker_state() acquires */
	h->state_made = true;
}

void *mts_worker_state(const struct mts_server *s, unsigned worker)
{
	if (worker >= s->n_workers)
		return NULL;
	return atomic_load_explicit(&s->homes[worker].state, memory_order_acquire);
}

/* mts_free(): the workers joined, every connection closed. */
static void release_worker_states(struct mts_server *s)
{
	for (unsigned i = 0; s->homes != NULL && i < s->n_workers; i++) {
		struct conn_home *h = &s->homes[i];

		if (h->state_made && s->sh.handler.worker_fini != NULL)
			s->sh.handler.worker_fini(i, atomic_load(&h->state), s->sh.handler.arg);
		h->state_made = false;
	}
}

/* The executor's on_stop hook, on worker `i`: stop accepting, then finish
 * the connections (the worker leaves when they are gone). */
static void on_worker_stop(unsigned i, void *arg)
{
	struct mts_server *s = arg;

	s->strategy->stop_worker(s, i);
	if (s->udp_homes != NULL)
		udp_home_stop(&s->udp_homes[i]);
	conn_home_stop(&s->homes[i]);
}

static int start_accepting(struct mts_server *s)
{
	accept_shared_init(&s->accept_sh, &s->limit, s->iplimit, s->cfg.max_conns_per_ip,
			   s->sh.proxy != NULL);
	s->accept_ready = true;
	return s->strategy->start(s);
}

/* ---- building and freeing ---------------------------------------------- */

static int set_up(struct mts_server *s, const struct mts_config *cfg,
		  const struct inbox_spec *inbox, const struct mts_handler *handler, char *why,
		  size_t why_len)
{
	struct fd_budget budget;
	struct exec_config ecfg = {
		.threads = cfg->threads,
		.inbox = *inbox,
		.inbox_budget = cfg->inbox_budget,
		.on_stop = on_worker_stop,
		.on_start = on_worker_start,
		.arg = s,
		.after_first = fd_budget_check,
		.after_first_arg = &budget,
	};
	int rc;

	snprintf(why, why_len, "out of memory");
	if (cfg->max_conns_per_ip > 0 && (rc = iplimit_new(&s->iplimit, cfg->max_conns_per_ip)) < 0)
		return rc;
	s->limit = (struct connlimit){ .max = cfg->max_conns, .on_slot_freed = on_slot_freed,
				       .arg = s };
	if ((rc = retrier_new(&s->retrier)) < 0)
		return rc;
	if ((rc = server_open_sockets(s, cfg, why, why_len)) < 0)
		return rc;

	/* The main thread's base: the control channel (and what the strategy
	 * puts there). */
	snprintf(why, why_len, "cannot set up the control channel");
	if ((s->base = event_base_new()) == NULL)
		return -ENOMEM;
	if ((rc = control_init(&s->control, s->base, s->retrier, on_control, s)) < 0)
		return rc;
	if ((rc = metrics_new(&s->metrics, s, cfg, why, why_len)) < 0)
		return rc;

	ecfg.retrier = s->retrier;
	fd_budget_begin(&budget, cfg->threads);
	if ((rc = exec_new(&s->ex, &ecfg, why, why_len)) < 0)
		return rc;

	snprintf(why, why_len, "cannot set up the workers");
	s->sh = (struct conn_shared){
		.handler = *handler,
		.linger_ms = cfg->linger_ms,
		.linger_bytes = cfg->linger_bytes,
		.grace_ms = cfg->shutdown_grace_ms,
		.idle_timeout_s = cfg->idle_timeout_s,
		.limit = &s->limit,
		.iplimit = s->iplimit,
		.ex = s->ex,
	};
	if (cfg->proxy_protocol) {
		s->proxy = (struct proxy_conf){ .timeout_ms = cfg->proxy_timeout_ms,
						.accept = &s->accept_sh };
		if ((rc = cidr_list_parse(&s->proxy.from, cfg->proxy_from, why, why_len)) < 0)
			return rc;
		s->sh.proxy = &s->proxy;
		s->sh.before_open = proxy_wait_begin;
	}
	if ((s->homes = calloc(cfg->threads, sizeof(*s->homes))) == NULL)
		return -ENOMEM;
	s->n_workers = cfg->threads;	/* mts_free() copes with homes never set up */
	for (unsigned i = 0; i < s->n_workers; i++)
		if ((rc = conn_home_init(&s->homes[i], &s->sh, i, exec_base(s->ex, i))) < 0)
			return rc;
	if ((rc = server_start_udp(s, cfg, handler, why, why_len)) < 0)
		return rc;
	snprintf(why, why_len, "cannot set up accepting");
	return start_accepting(s);
}

int mts_new(struct mts_server **out, const struct mts_config *in,
	    const struct mts_handler *handler, char *why, size_t why_len)
{
	const struct accept_strategy *strategy;
	struct inbox_spec inbox;
	struct mts_config cfg;
	struct mts_server *s;
	int rc;

	if ((rc = server_check_config(in, handler, &cfg, &strategy, &inbox, why, why_len)) < 0)
		return rc;
	log_route_libevent();
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	s->cfg = cfg;
	s->cfg.listen = NULL;		/* only needed while opening the listeners */
	s->cfg.listen_fds = NULL;
	s->cfg.metrics_listen = NULL;	/* only needed while metrics_new() opens it */
	s->strategy = strategy;
	if ((rc = set_up(s, &cfg, &inbox, handler, why, why_len)) < 0) {
		mts_free(s);
		return rc;
	}
	/* Taken over now: the endpoint serves on its own duplicate. */
	if (cfg.metrics_fd > 0)
		close(cfg.metrics_fd);
	*out = s;
	return 0;
}

size_t mts_listener_count(const struct mts_server *s)
{
	return listen_addresses(&s->ls);
}

const char *mts_metrics_name(const struct mts_server *s, size_t i)
{
	return metrics_name(s->metrics, i);
}

const char *mts_listener_name(const struct mts_server *s, size_t i)
{
	return i < listen_addresses(&s->ls) ? s->ls.l[i * s->ls.copies].name : NULL;
}

/* "serving on 127.0.0.1:5555 [::1]:5555 with 4 workers", for READY=1. */
static void ready_status(const struct mts_server *s, char *buf, size_t len)
{
	size_t at = (size_t)snprintf(buf, len, "serving on");

	for (size_t i = 0; i < mts_listener_count(s) && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, " %s", mts_listener_name(s, i));
	if (at < len)
		snprintf(buf + at, len - at, " with %u worker%s", s->n_workers,
			 s->n_workers == 1 ? "" : "s");
}

int mts_run(struct mts_server *s)
{
	char status[256];
	int rc = exec_start(s->ex);

	if (rc < 0) {
		log_error("cannot start the workers: %s", strerror(-rc));
	} else {
		/* Ready: the sockets listen (since mts_new) and every worker
		 * has started; from here on a connection is served. */
		ready_status(s, status, sizeof(status));
		notify_ready(&s->notify, s->base, status);
		/* The control channel (and what the strategy put on the main
		 * thread's base) until mts_stop(). */
		event_base_dispatch(s->base);
		notify_stopping(&s->notify);	/* the graceful stop begins */
		log_info("stopping: no longer accepting; finishing connections");
	}
	metrics_stop(s->metrics);	/* its loop has stopped: refuse, not hang */
	/* "stop" reaches each worker behind what was posted before; a worker
	 * that accepts for itself stops that first (on_worker_stop). */
	exec_stop(s->ex);
	workq_workers_stopped(&s->workqs);	/* no done can run from here */
	accept_shared_finish(&s->accept_sh);	/* no unit runs any more */
	return rc;
}

void mts_free(struct mts_server *s)
{
	if (s == NULL)
		return;
	if (s->ex != NULL && exec_on_worker(s->ex)) {
		log_error("mts_free() called on one of the server's workers: it would wait for "
			  "that worker to stop; call it from another thread");
		abort();
	}
	if (s->ex != NULL) {
		exec_stop(s->ex);	/* no-op after mts_run() */
		workq_workers_stopped(&s->workqs);
	}
	/* The workers are joined, the main loop is done: stop every accept
	 * unit and close the listening sockets now, so that while the rest is
	 * torn down (a pool job may take long) new connections are refused,
	 * not completed by the kernel into a backlog nobody reads. The units
	 * themselves go later, with the strategy's state (destroy). */
	s->strategy->stop_main(s);
	for (unsigned i = 0; i < s->n_workers; i++) {
		s->strategy->stop_worker(s, i);
		if (s->udp_homes != NULL)
			udp_home_stop(&s->udp_homes[i]);
	}
	listen_close(&s->ls);
	listen_close(&s->uls);
	metrics_free(s->metrics);	/* its connections too: the loop is done */
	s->metrics = NULL;
	if (s->accept_ready)
		pthread_mutex_destroy(&s->accept_sh.log_lock);
	/* No pool thread posts any more (a pool the program left running, or
	 * one that a mts_workq_free() elsewhere is stopping, would post into
	 * the close below)... */
	workq_stop_all(&s->workqs);
	/* ... and every task still queued is cancelled now (connections are
	 * released, calls and dones get cancelled = 1); no more posts. */
	if (s->ex != NULL)
		exec_close(s->ex);
	/* After the close: a cancelled connection frees its slot, and the
	 * strategy's slot_freed may still touch its state. */
	s->strategy->destroy(s);
	/* After the close (cancelled dones touch a queue), and once no thread
	 * is inside mts_workq_free(). */
	workq_free_all(&s->workqs);
	for (unsigned i = 0; s->homes != NULL && i < s->n_workers; i++)
		conn_home_destroy(&s->homes[i]);
	for (unsigned i = 0; s->udp_homes != NULL && i < s->n_workers; i++)
		udp_home_destroy(&s->udp_homes[i]);
	free(s->udp_homes);
	udp_rate_destroy(&s->udp.rate);
	/* Every connection closed (on_close ran), the bases still here. */
	release_worker_states(s);
	exec_free(s->ex);		/* the workers' bases, after everything on them */
	free(s->homes);
	iplimit_free(s->iplimit);	/* every connection has released its entry */
	cidr_list_free(&s->proxy.from);
	signals_release(s);		/* no handler reaches s; before the control channel */
	notify_destroy(&s->notify);	/* its pings ran on s->base */
	control_destroy(&s->control);	/* before the retrier it is registered with */
	retrier_free(s->retrier);	/* nothing is left to kick it */
	if (s->base != NULL)
		event_base_free(s->base);
	free(s);
}

/* ---- what the layers below implement ----------------------------------- */

unsigned mts_worker_count(const struct mts_server *s)
{
	return s->n_workers;
}

int mts_post(struct mts_server *s, unsigned worker, mts_call_fn fn, void *arg)
{
	return exec_post_call(s->ex, worker, fn, arg);
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

int mts_workq_new(struct mts_workq **out, struct mts_server *s, unsigned threads)
{
	return workq_new(out, s->ex, &s->workqs, threads);
}

int mts_workq_submit(struct mts_workq *q, unsigned worker, mts_job_fn work,
		     mts_done_fn done, void *arg)
{
	return workq_submit(q, worker, work, done, arg);
}

void mts_workq_free(struct mts_workq *q)
{
	workq_free(q);
}

void mts_before_fork(void)
{
	inbox_before_fork();
}

void mts_after_fork_parent(void)
{
	inbox_after_fork_parent();
}

void mts_after_fork_child(void)
{
	signals_after_fork_child();
	notify_after_fork_child();
	inbox_after_fork_child();
}

/* The levels are the same numbers as log.h's. */
void mts_log_set_level(enum mts_log_level level)
{
	log_set_level((enum log_level)level);
}

void mts_log(enum mts_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg((enum log_level)level, fmt, ap);
	va_end(ap);
}

/* The program's handler, which log.c reaches through log_to_program (its
 * own type takes log.h's levels). Set while no thread logs, as log.c's. */
static mts_log_fn program_log_fn;

static void log_to_program(enum log_level level, const char *msg, void *arg)
{
	program_log_fn((enum mts_log_level)level, msg, arg);
}

void mts_log_set_handler(mts_log_fn fn, void *arg)
{
	program_log_fn = fn;
	log_set_handler(fn != NULL ? log_to_program : NULL, arg);
}
