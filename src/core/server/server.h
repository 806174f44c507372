/*
 * server.h - struct mts_server: what the server layer puts together from
 * the layers below (the executor's workers, the connection homes, the
 * accept units, the listening sockets) and the main thread's control
 * channel. For server.c and stats.c; protocols see only mtserver.h.
 */
#ifndef MTS_SERVER_H
#define MTS_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "acceptor.h"
#include "conn.h"
#include "connlimit.h"
#include "executor.h"
#include "iplimit.h"
#include "listen.h"
#include "mtserver.h"
#include "retry.h"
#include "wakeup.h"
#include "workq.h"

enum accept_strategy {
	ACCEPT_HANDOFF = 0,	/* the main thread accepts and posts to a worker */
	ACCEPT_REUSEPORT,	/* each worker accepts on its own SO_REUSEPORT sockets */
	ACCEPT_SHARED,		/* each worker accepts on the one set of sockets */
	ACCEPT_N_STRATEGIES
};

/* Reasons for waking the main thread (bits of control.reasons). */
enum control_reason {
	WAKE_STOP = 1u << 0,
	WAKE_STATS = 1u << 1,
	WAKE_SLOT_FREED = 1u << 2,	/* handoff: the main unit may resume */
};

/* A worker's own accept unit (reuseport, shared) and the task that tells
 * it, on its thread, that a slot freed. */
struct worker_accept {
	struct accept_unit unit;
	struct exec_task resume;
	/* Resume is in the inbox: post it once. Set by on_slot_freed (any
	 * thread), cleared by resume_run on the worker; both exchanges, and
	 * resume_run says why. */
	atomic_bool resume_posted;
	struct mts_server *srv;
	unsigned id;
	bool ready;			/* unit initialised */
};

struct mts_server {
	struct mts_config cfg;		/* cfg.listen and listen_fds: NULL after mts_new */
	enum accept_strategy accept;
	struct retrier *retrier;	/* pays every failed wake-up (retry.h) */
	struct executor *ex;
	struct listen_set ls;

	/* What connections share, and where they live. */
	struct connlimit limit;
	struct iplimit *iplimit;
	struct conn_shared sh;
	struct conn_home *homes;	/* one per worker */
	unsigned n_workers;

	struct accept_shared accept_sh;	/* what every accept unit shares */
	bool accept_ready;		/* accept_sh initialised */

	/* Main thread. */
	struct event_base *base;
	struct accept_unit main_unit;	/* handoff only */
	bool main_unit_ready;
	unsigned next_rr;		/* handoff: round-robin cursor */
	struct worker_accept *waccept;	/* reuseport, shared: one per worker */

	/*
	 * The control channel: any thread (or a signal handler) sets a reason
	 * bit and signals `wake`; the main thread drains `wake` before it
	 * exchanges the bits with 0 (the drain-then-take order of inbox.c, for
	 * the same reason). A signal that fails is owed (`wake_owed`) and sent
	 * again by the retrier, like an inbox's.
	 */
	struct wakeup wake;
	struct event *wake_ev;
	atomic_uint reasons;
	atomic_bool wake_owed;
	bool wake_registered;		/* with the retrier */

	struct workq_list workqs;	/* every work queue made for this server */
};

/* stats.c */
void stats_log(const struct mts_server *s);

#endif
