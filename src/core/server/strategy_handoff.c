/*
 * strategy_handoff.c - the "handoff" accept strategy (strategy.h): the
 * main thread accepts on every listening socket and posts each connection
 * to a worker it picks (round robin, or the least loaded), through the
 * worker's inbox. The design this project is about.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "server.h"
#include "strategy.h"

struct handoff {
	struct accept_unit unit;	/* on the main thread's base */
	bool ready;			/* unit initialised */
	unsigned next_rr;		/* round-robin cursor: main thread only */
};

static struct handoff *state(const struct mts_server *s)
{
	return s->accept_state;
}

/* The worker for the next connection. */
static struct conn_home *pick_home(struct mts_server *s)
{
	struct handoff *h = state(s);
	unsigned start = h->next_rr++ % s->n_workers;
	struct conn_home *best = &s->homes[start];

	if (s->cfg.balance == MTS_BALANCE_LEAST) {
		/* Start the scan at the round-robin cursor so ties rotate. */
		unsigned best_live = atomic_load_explicit(&best->live, memory_order_relaxed);
		for (unsigned k = 1; k < s->n_workers; k++) {
			struct conn_home *c = &s->homes[(start + k) % s->n_workers];
			unsigned live = atomic_load_explicit(&c->live, memory_order_relaxed);
			if (live < best_live) {
				best = c;
				best_live = live;
			}
		}
	}
	return best;
}

static void deliver(struct accept_unit *u, int fd, struct ip_entry *ip)
{
	struct mts_server *s = u->arg;
	struct mts_conn *c = conn_new(&s->sh, fd, ip);

	if (c != NULL)
		conn_post(pick_home(s), c);
}

static int start(struct mts_server *s)
{
	struct handoff *h = calloc(1, sizeof(*h));
	int *fds = calloc(s->ls.n ? s->ls.n : 1, sizeof(*fds));
	int rc;

	s->accept_state = h;
	if (h == NULL || fds == NULL) {
		free(fds);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->ls.n; i++)
		fds[i] = s->ls.l[i].fd;
	rc = accept_unit_init(&h->unit, s->base, fds, s->ls.n, &s->accept_sh, deliver, s);
	h->ready = true;
	free(fds);
	return rc;
}

/* Any thread: the main thread's unit is the one that paused. */
static void slot_freed(struct mts_server *s)
{
	control_wake(&s->control, WAKE_SLOT_FREED);
}

static void resume_main(struct mts_server *s)
{
	if (state(s) != NULL && state(s)->ready)
		accept_unit_resume(&state(s)->unit);
}

static void stop_main(struct mts_server *s)
{
	if (state(s) != NULL && state(s)->ready)
		accept_unit_stop(&state(s)->unit);
}

/* The workers accept nothing themselves. */
static void stop_worker(struct mts_server *s, unsigned i)
{
	(void)s;
	(void)i;
}

static void unit_stats(const struct mts_server *s, unsigned i, uint64_t *wakeups,
		       uint64_t *empty)
{
	(void)s;
	(void)i;
	*wakeups = *empty = 0;
}

static void destroy(struct mts_server *s)
{
	if (state(s) != NULL && state(s)->ready)
		accept_unit_destroy(&state(s)->unit);
	free(s->accept_state);
	s->accept_state = NULL;
}

const struct accept_strategy accept_handoff = {
	.name = "handoff",
	.socket_per_worker = false,
	.picks_worker = true,
	.start = start,
	.slot_freed = slot_freed,
	.resume_main = resume_main,
	.stop_main = stop_main,
	.stop_worker = stop_worker,
	.unit_stats = unit_stats,
	.destroy = destroy,
};
