/*
 * strategy_workers.c - the "reuseport" and "shared" accept strategies
 * (strategy.h): every worker accepts for itself, on its own base, and
 * serves what it accepted; no handoff. They differ only in the sockets a
 * worker watches: with reuseport a SO_REUSEPORT copy of each listener of
 * its own (the kernel spreads connections over the copies), with shared
 * the one set of listeners every worker watches (a thundering herd: the
 * accept counters show it).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "counter.h"
#include "fault.h"
#include "server.h"
#include "strategy.h"

/* A worker's accept unit, and the task that tells it, on its thread, that
 * a slot freed. */
struct worker_accept {
	struct accept_unit unit;
	struct exec_task resume;
	/* Resume is in the inbox: post it once. Set by slot_freed (any
	 * thread), cleared by resume_run on the worker; both exchanges, and
	 * resume_run says why. */
	atomic_bool resume_posted;
	struct mts_server *srv;
	unsigned id;
	bool ready;			/* unit initialised */
};

static struct worker_accept *units(const struct mts_server *s)
{
	return s->accept_state;
}

/* The worker that accepted serves it. */
static void deliver_here(struct accept_unit *u, int fd, struct ip_entry *ip)
{
	struct worker_accept *wa = u->arg;
	struct mts_conn *c = conn_new(&wa->srv->sh, fd, ip);

	if (c != NULL)
		conn_adopt(&wa->srv->homes[wa->id], c);
}

static void resume_run(struct exec_task *t, struct event_base *base, unsigned worker)
{
	struct worker_accept *wa = caa_container_of(t, struct worker_accept, resume);

	(void)base;
	(void)worker;
	fault_gate(GATE_RESUME_ENTER);	/* tests hold a worker's resume here */
	/*
	 * Cleared first, so that a slot that frees from here on posts again.
	 * An exchange, not a store: a release that found the flag set (and so
	 * did not post) did its decrement of the count, then its exchange
	 * (release); this exchange reads that value (acquire), so the check of
	 * the count in accept_unit_resume() sees the decrement. A plain store
	 * would read nothing and order nothing. Looking first and clearing
	 * after loses a slot that frees in between: the look saw the count at
	 * max, the release found the flag still set and posted nothing, and
	 * the unit stays paused with a slot free (tests/test_resume_window.c
	 * frees one there).
	 */
	(void)atomic_exchange_explicit(&wa->resume_posted, false, memory_order_acq_rel);
	fault_gate(GATE_RESUME_LOOK);	/* tests widen the window here */
	accept_unit_resume(&wa->unit);
}

static void resume_cancel(struct exec_task *t)
{
	struct worker_accept *wa = caa_container_of(t, struct worker_accept, resume);

	atomic_store_explicit(&wa->resume_posted, false, memory_order_relaxed);
}

/* Which listening socket worker w watches for address a. */
typedef size_t (*socket_for_fn)(const struct listen_set *ls, unsigned w, size_t a);

static size_t own_copy(const struct listen_set *ls, unsigned w, size_t a)
{
	return a * ls->copies + w;
}

static size_t the_one(const struct listen_set *ls, unsigned w, size_t a)
{
	(void)w;
	return a * ls->copies;
}

static int start_with(struct mts_server *s, socket_for_fn socket_for)
{
	size_t n_addr = listen_addresses(&s->ls);
	int *fds = calloc(n_addr ? n_addr : 1, sizeof(*fds));
	struct worker_accept *was = calloc(s->n_workers, sizeof(*was));
	int rc = 0;

	s->accept_state = was;
	if (fds == NULL || was == NULL) {
		free(fds);
		return -ENOMEM;
	}
	for (unsigned w = 0; w < s->n_workers && rc == 0; w++) {
		struct worker_accept *wa = &was[w];

		for (size_t a = 0; a < n_addr; a++)
			fds[a] = s->ls.l[socket_for(&s->ls, w, a)].fd;
		wa->srv = s;
		wa->id = w;
		wa->resume = (struct exec_task){ .run = resume_run, .cancel = resume_cancel };
		/* The worker's base, before its thread runs: no lock needed. */
		rc = accept_unit_init(&wa->unit, exec_base(s->ex, w), fds, n_addr, &s->accept_sh,
				      deliver_here, wa);
		wa->ready = true;
	}
	free(fds);
	return rc;
}

static int start_reuseport(struct mts_server *s)
{
	return start_with(s, own_copy);
}

static int start_shared(struct mts_server *s)
{
	return start_with(s, the_one);
}

/* Any thread: any worker's unit may be the one paused; tell each, once. */
static void slot_freed(struct mts_server *s)
{
	for (unsigned i = 0; units(s) != NULL && i < s->n_workers; i++) {
		struct worker_accept *wa = &units(s)[i];

		/*
		 * Release: the decrement that called us comes before (resume_run).
		 * The resume must arrive (a paused unit hears of no other slot
		 * until the count is back at max), so a full ring keeps it for
		 * the retrier rather than refusing it; resume_posted stays set
		 * until it runs or is cancelled. Only a closed executor refuses.
		 */
		if (!atomic_exchange_explicit(&wa->resume_posted, true, memory_order_acq_rel))
			if (exec_post_or_defer(s->ex, i, &wa->resume) < 0)
				atomic_store_explicit(&wa->resume_posted, false,
						      memory_order_relaxed);
	}
}

/* The main thread accepts nothing. */
static void resume_main(struct mts_server *s)
{
	(void)s;
}

static void stop_main(struct mts_server *s)
{
	(void)s;
}

static void stop_worker(struct mts_server *s, unsigned i)
{
	if (units(s) != NULL && units(s)[i].ready)
		accept_unit_stop(&units(s)[i].unit);
}

static void unit_stats(const struct mts_server *s, unsigned i, uint64_t *wakeups,
		       uint64_t *empty)
{
	*wakeups = counter_get(&units(s)[i].unit.wakeups);
	*empty = counter_get(&units(s)[i].unit.empty);
}

static void destroy(struct mts_server *s)
{
	for (unsigned i = 0; units(s) != NULL && i < s->n_workers; i++)
		if (units(s)[i].ready)
			accept_unit_destroy(&units(s)[i].unit);
	free(s->accept_state);
	s->accept_state = NULL;
}

const struct accept_strategy accept_reuseport = {
	.name = "reuseport",
	.socket_per_worker = true,
	.picks_worker = false,
	.start = start_reuseport,
	.slot_freed = slot_freed,
	.resume_main = resume_main,
	.stop_main = stop_main,
	.stop_worker = stop_worker,
	.unit_stats = unit_stats,
	.destroy = destroy,
};

const struct accept_strategy accept_shared = {
	.name = "shared",
	.socket_per_worker = false,
	.picks_worker = false,
	.start = start_shared,
	.slot_freed = slot_freed,
	.resume_main = resume_main,
	.stop_main = stop_main,
	.stop_worker = stop_worker,
	.unit_stats = unit_stats,
	.destroy = destroy,
};
