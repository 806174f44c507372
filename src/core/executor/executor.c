/*
 * executor.c - worker threads, each with its own event_base and inbox, and
 * the tasks they run. Contract in executor.h.
 *
 * MESSAGES THAT MUST ARRIVE
 *
 * A worker's inbox may be a bounded ring, which refuses a post when it is
 * full, and a post must never wait for room. A few messages have no caller
 * that could do anything but try again (the stop, a work queue's
 * completion, the accept side's resume): exec_post_or_defer() keeps a
 * refused one in the worker's deferred list (deferred.c says how the list
 * keeps their order), which the worker posts again each time it takes a
 * message (on_msg: that freed a slot), and the retrier too, as the net
 * under it (exec_retry).
 *
 * CLOSING AGAINST POSTERS
 *
 * exec_close() frees the inboxes, so a post must either see `closed` and
 * be refused (-ESHUTDOWN) or be finished with the inbox before it is
 * freed. Checking `closed` and then posting is not enough: the closer can
 * set the flag and free the inbox while a poster sits between its check
 * and its post. So a poster first says it is there, in its worker's
 * `posting` count, then reads `closed`; the closer sets `closed`, then
 * waits until every `posting` is zero, as the work queue's submit and free
 * do (workq.c, "SUBMIT AGAINST FREE"). Each side stores, then loads the
 * other's variable: all four are seq_cst, so they fall in one total order,
 * and if the poster's load comes before the closer's store, its increment
 * came earlier still and the closer's load sees it and waits.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "deferred.h"
#include "executor.h"
#include "fault.h"
#include "log.h"
#include "retry.h"

enum msg_kind {
	MSG_TASK = 1,		/* a struct exec_task: run it */
	MSG_STOP,		/* the worker's own stop_msg */
};

struct exec_worker {
	struct executor *ex;
	unsigned id;
	char tag[16];			/* "w3": thread name and log tag */
	pthread_t thread;
	bool started;
	/* Made by exec_new() before the thread starts; from then on the
	 * worker thread's alone (until it is joined). */
	struct event_base *base;
	struct inbox *inbox;
	struct inbox_msg stop_msg;	/* preallocated: stopping cannot fail */
	struct deferred deferred;	/* refused messages that must arrive */
	/* Posters inside exec_post() or exec_post_or_defer() for this worker
	 * now: announced before they look at `closed` (CLOSING AGAINST
	 * POSTERS). A line of its own: every poster to this worker writes it. */
	_Alignas(64) atomic_uint posting;
};

struct executor {
	struct exec_config cfg;
	struct exec_worker *workers;
	unsigned n;
	/* Set by exec_close(): posts are refused from then on, so a cancelled
	 * task that posts cannot reach an inbox being drained. */
	atomic_bool closed;
	bool retrying;		/* exec_retry registered with the retrier */
};

/* exec_post_call()'s task. */
struct call {
	struct exec_task task;
	exec_call_fn fn;
	void *arg;
};

static void on_msg(struct inbox_msg *msg, void *arg)
{
	struct exec_worker *w = arg;

	if (msg->kind == MSG_STOP) {
		if (w->ex->cfg.on_stop != NULL)
			w->ex->cfg.on_stop(w->id, w->ex->cfg.arg);
		else
			exec_leave(w->ex, w->id);
	} else {
		struct exec_task *t = caa_container_of(msg, struct exec_task, msg);

		t->run(t, w->base, w->id);
	}
	/* Taking msg freed a slot: the oldest deferred message may have it
	 * (what does not fit waits for the next slot). */
	if (deferred_any(&w->deferred))
		(void)deferred_flush(&w->deferred, w->inbox);
}

/* exec_close(): a task that never ran is cancelled, its other way to end. */
static void on_leftover(struct inbox_msg *msg, void *arg)
{
	if (msg->kind == MSG_TASK) {
		struct exec_task *t = caa_container_of(msg, struct exec_task, msg);
		t->cancel(t);
	}
}

/* The retrier's side: every worker's list. 0 when all are empty. */
static int exec_retry(void *arg)
{
	struct executor *ex = arg;
	int rc = 0;

	for (unsigned i = 0; i < ex->n; i++) {
		struct exec_worker *w = &ex->workers[i];

		if (deferred_any(&w->deferred) && deferred_flush(&w->deferred, w->inbox) < 0)
			rc = -EAGAIN;	/* the next pass */
	}
	return rc;
}

static int worker_init(struct executor *ex, struct exec_worker *w, unsigned id)
{
	struct event_config *ecfg;
	int rc;

	w->ex = ex;
	w->id = id;
	snprintf(w->tag, sizeof(w->tag), "w%u", id);
	w->stop_msg.kind = MSG_STOP;
	deferred_init(&w->deferred);
	/*
	 * This event_base belongs to the worker thread alone: it is made here,
	 * before the thread starts, and from exec_start() on no other thread
	 * touches it. So libevent's locking is not needed, and not enabled.
	 */
	ecfg = event_config_new();
	if (ecfg == NULL)
		return -ENOMEM;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
	w->base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (w->base == NULL)
		return -ENOMEM;
	rc = inbox_new(&w->inbox, &ex->cfg.inbox, w->base, on_msg, w, ex->cfg.inbox_budget);
	if (rc == 0)
		rc = inbox_set_retrier(w->inbox, ex->cfg.retrier);
	return rc;
}

int exec_new(struct executor **out, const struct exec_config *cfg, char *why, size_t why_len)
{
	struct executor *ex;
	int rc;

	snprintf(why, why_len, "cannot set up the workers: out of memory");
	if (cfg->threads < 1 || cfg->retrier == NULL)
		return -EINVAL;
	ex = calloc(1, sizeof(*ex));
	if (ex == NULL)
		return -ENOMEM;
	ex->cfg = *cfg;
	/* Over-aligned (`posting` has a cache line of its own): calloc() only
	 * promises 16 bytes. */
	if (posix_memalign((void **)&ex->workers, _Alignof(struct exec_worker),
			   cfg->threads * sizeof(*ex->workers)) != 0) {
		free(ex);
		return -ENOMEM;
	}
	memset(ex->workers, 0, cfg->threads * sizeof(*ex->workers));
	ex->n = cfg->threads;	/* exec_free() copes with workers never set up */
	for (unsigned i = 0; i < ex->n; i++) {
		if ((rc = worker_init(ex, &ex->workers[i], i)) < 0) {
			snprintf(why, why_len, "cannot set up worker %u: %s", i, strerror(-rc));
			exec_free(ex);
			return rc;
		}
		if (i == 0 && cfg->after_first != NULL &&
		    (rc = cfg->after_first(cfg->after_first_arg, why, why_len)) < 0) {
			exec_free(ex);
			return rc;
		}
	}
	if ((rc = retrier_add(cfg->retrier, exec_retry, ex)) < 0) {
		exec_free(ex);
		return rc;
	}
	ex->retrying = true;
	*out = ex;
	return 0;
}

unsigned exec_workers(const struct executor *ex)
{
	return ex->n;
}

struct event_base *exec_base(const struct executor *ex, unsigned i)
{
	return ex->workers[i].base;
}

const char *exec_tag(const struct executor *ex, unsigned i)
{
	return ex->workers[i].tag;
}

void exec_inbox_stats(const struct executor *ex, unsigned i, struct inbox_stats *st)
{
	inbox_get_stats(ex->workers[i].inbox, st);
}

/* The executor whose worker this thread is (NULL: none): exec_on_worker(). */
static _Thread_local const struct executor *current_executor;

bool exec_on_worker(const struct executor *ex)
{
	return ex != NULL && current_executor == ex;
}

static void *worker_main(void *arg)
{
	struct exec_worker *w = arg;

	current_executor = w->ex;
	log_set_thread_tag(w->tag);
	log_debug("worker started");
	if (w->ex->cfg.on_start != NULL)
		w->ex->cfg.on_start(w->id, w->ex->cfg.arg);
	/* Runs until the "stop" message has made the worker leave. */
	event_base_dispatch(w->base);
	log_debug("worker leaving");
	return NULL;
}

int exec_start(struct executor *ex)
{
	sigset_t all, old;
	int rc = 0;

	/* Signals are the main thread's business: workers block them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < ex->n && rc == 0; i++) {
		struct exec_worker *w = &ex->workers[i];

		rc = -pthread_create(&w->thread, NULL, worker_main, w);
		w->started = rc == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

void exec_stop(struct executor *ex)
{
	/*
	 * "stop" travels the same path as tasks: behind everything posted
	 * before. Its wake-up cannot be lost: a failed one is the retrier's
	 * debt, and the join below waits for the worker however late it comes.
	 * Nor can the stop itself: a full ring's refusal makes it the
	 * retrier's to post again (deferred.c), and then it arrives behind
	 * what got in meanwhile.
	 */
	for (unsigned i = 0; i < ex->n; i++)
		if (ex->workers[i].started) {
			struct exec_worker *w = &ex->workers[i];

			if (deferred_post(&w->deferred, w->inbox, &w->stop_msg))
				retrier_kick(ex->cfg.retrier);	/* after the append */
		}
	for (unsigned i = 0; i < ex->n; i++)
		if (ex->workers[i].started) {
			pthread_join(ex->workers[i].thread, NULL);
			ex->workers[i].started = false;
		}
}

void exec_leave(struct executor *ex, unsigned i)
{
	event_base_loopbreak(ex->workers[i].base);
}

void exec_close(struct executor *ex)
{
	/* Announce first: a post that enters from here on is refused. Then
	 * wait for the posters that entered before they could see it
	 * (CLOSING AGAINST POSTERS); in the other order a poster could enter
	 * after the wait, read `closed` still false, and post into an inbox
	 * freed below (tests/test_executor.c holds the closer between the
	 * two). */
	atomic_store_explicit(&ex->closed, true, memory_order_seq_cst);
	fault_gate(GATE_EXEC_CLOSE);
	for (unsigned i = 0; i < ex->n; i++)
		while (atomic_load_explicit(&ex->workers[i].posting, memory_order_seq_cst) != 0)
			sched_yield();	/* a post never waits: this is short */
	/* Returns once the retrier no longer posts into the inboxes. */
	if (ex->retrying)
		retrier_remove(ex->cfg.retrier, exec_retry, ex);
	ex->retrying = false;
	for (unsigned i = 0; i < ex->n; i++) {
		struct exec_worker *w = &ex->workers[i];

		inbox_free(w->inbox, on_leftover, w);
		w->inbox = NULL;
		/* Deferred ones came after what the inbox held: cancelled next. */
		deferred_drain(&w->deferred, on_leftover, w);
	}
}

void exec_free(struct executor *ex)
{
	if (ex == NULL)
		return;
	exec_stop(ex);			/* no-op once stopped */
	if (!atomic_load_explicit(&ex->closed, memory_order_relaxed))
		exec_close(ex);
	for (unsigned i = 0; i < ex->n; i++) {
		if (ex->workers[i].base != NULL)
			event_base_free(ex->workers[i].base);
		if (ex->workers[i].ex != NULL)	/* worker_init() began */
			deferred_destroy(&ex->workers[i].deferred);
	}
	free(ex->workers);
	free(ex);
}

/*
 * The announce-then-check of CLOSING AGAINST POSTERS: true (and counted in
 * w->posting) when the executor is open; the caller posts, then calls
 * post_leave(). False when exec_close() has begun: refuse.
 */
static bool post_enter(struct executor *ex, struct exec_worker *w)
{
	atomic_fetch_add_explicit(&w->posting, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&ex->closed, memory_order_seq_cst)) {
		atomic_fetch_sub_explicit(&w->posting, 1, memory_order_release);
		return false;
	}
	fault_gate(GATE_EXEC_POST);	/* tests widen the window here */
	return true;
}

static void post_leave(struct exec_worker *w)
{
	/* Release: the post is done with the inbox before the closer, which
	 * reads 0 here, frees it. */
	atomic_fetch_sub_explicit(&w->posting, 1, memory_order_release);
}

int exec_post(struct executor *ex, unsigned worker, struct exec_task *t)
{
	struct exec_worker *w;
	int rc = 0;

	if (worker >= ex->n || t->run == NULL || t->cancel == NULL)
		return -EINVAL;
	w = &ex->workers[worker];
	if (!post_enter(ex, w))
		return -ESHUTDOWN;
	t->msg.kind = MSG_TASK;
	/* Refused (a full ring): the task was never the worker's, and is the
	 * caller's still. Otherwise it is the worker's from here; a failed
	 * wake-up is the retrier's to send (inbox_set_retrier in worker_init). */
	if (inbox_post(w->inbox, &t->msg) == -ENOBUFS)
		rc = -ENOBUFS;
	post_leave(w);
	return rc;
}

int exec_post_or_defer(struct executor *ex, unsigned worker, struct exec_task *t)
{
	struct exec_worker *w;

	if (worker >= ex->n || t->run == NULL || t->cancel == NULL)
		return -EINVAL;
	w = &ex->workers[worker];
	if (!post_enter(ex, w))
		return -ESHUTDOWN;
	t->msg.kind = MSG_TASK;
	if (deferred_post(&w->deferred, w->inbox, &t->msg))
		retrier_kick(ex->cfg.retrier);	/* after the append: retry.c */
	post_leave(w);
	return 0;
}

static void call_run(struct exec_task *t, struct event_base *base, unsigned worker)
{
	struct call *c = caa_container_of(t, struct call, task);

	c->fn(base, c->arg, 0);
	free(c);
}

static void call_cancel(struct exec_task *t)
{
	struct call *c = caa_container_of(t, struct call, task);

	c->fn(NULL, c->arg, 1);
	free(c);
}

int exec_post_call(struct executor *ex, unsigned worker, exec_call_fn fn, void *arg)
{
	struct call *c;
	int rc;

	if (worker >= ex->n || fn == NULL)
		return -EINVAL;
	if (atomic_load_explicit(&ex->closed, memory_order_acquire))
		return -ESHUTDOWN;
	c = malloc(sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	*c = (struct call){ .task = { .run = call_run, .cancel = call_cancel }, .fn = fn, .arg = arg };
	if ((rc = exec_post(ex, worker, &c->task)) < 0)
		free(c);
	return rc;
}
