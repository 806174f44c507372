/*
 * strategy.h - the accept strategies: how a new connection reaches the
 * worker that serves it. One table of operations per strategy, chosen by
 * name once, in mts_new(); server.c calls it at each step of the server's
 * life and never asks which strategy it has.
 *
 * To add one: a file of its own that defines its `struct accept_strategy`,
 * and a line in the table in strategy.c (doc/ARCHITECTURE.md).
 *
 * When each operation runs, and on which thread:
 *   start        mts_new(), main thread: the workers' bases and homes
 *                exist, no worker runs yet (a unit may be put on a
 *                worker's base without a lock). Returns 0 or a negative
 *                errno; destroy is called either way.
 *   slot_freed   the connection limit's callback (connlimit.h): any
 *                thread, once per count from max to max - 1. Must make
 *                whichever unit paused at the limit look again.
 *   resume_main  the main thread, when slot_freed asked for it through the
 *                control channel (control_wake(&s->control, WAKE_SLOT_FREED)).
 *   stop_main    the main thread, at mts_stop(): no new connection from
 *                the main thread's units.
 *   stop_worker  on worker `i`, when it is told to stop: no new
 *                connection from its units (its connections finish after).
 *                Both stops are called again by mts_free() once the workers
 *                are joined (on its thread, the loops no longer running),
 *                before the listening sockets close: they must be
 *                idempotent, and safe on a unit whose start failed.
 *   unit_stats   any thread: worker i's accept counters (zeros if the
 *                worker has no unit of its own).
 *   destroy      mts_free(), once every worker has been joined.
 */
#ifndef MTS_STRATEGY_H
#define MTS_STRATEGY_H

#include <stdbool.h>
#include <stdint.h>

struct mts_server;

struct accept_strategy {
	const char *name;
	/* What the rest of the server must know about it. */
	bool socket_per_worker;	/* a SO_REUSEPORT copy of each listener per
				 * worker: no inherited sockets */
	bool picks_worker;	/* the server chooses each connection's worker
				 * (balance applies), not the kernel */

	int (*start)(struct mts_server *s);
	void (*slot_freed)(struct mts_server *s);
	void (*resume_main)(struct mts_server *s);
	void (*stop_main)(struct mts_server *s);
	void (*stop_worker)(struct mts_server *s, unsigned i);
	void (*unit_stats)(const struct mts_server *s, unsigned i, uint64_t *wakeups,
			   uint64_t *empty);
	void (*destroy)(struct mts_server *s);
};

/* The strategies (strategy_handoff.c, strategy_workers.c). */
extern const struct accept_strategy accept_handoff;
extern const struct accept_strategy accept_reuseport;
extern const struct accept_strategy accept_shared;

/* The table (strategy.c): the i-th strategy or NULL; one by name or NULL. */
const struct accept_strategy *accept_strategy_at(unsigned i);
const struct accept_strategy *accept_strategy_find(const char *name);

#endif
