/*
 * core.h - structures shared by the core's modules (acceptor.c, worker.c,
 * server.c). Not for protocol code: protocols see only mtserver.h.
 */
#ifndef ECHOSERVER_CORE_H
#define ECHOSERVER_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "histogram.h"
#include "inbox.h"
#include "iplimit.h"
#include "log.h"
#include "mtserver.h"
#include "wakeup.h"

enum core_msg_kind {
	MSG_NEW_CONN = 1,	/* a struct mts_conn: the worker now owns it and its fd */
	MSG_STOP,		/* the worker's own stop_msg: flush, close, leave the loop */
	MSG_CALL,		/* a struct call: run fn on the worker (or cancel it), free it */
};

/* mts_post(): a function to run on a worker's thread. */
struct call {
	struct inbox_msg msg;		/* MSG_CALL */
	mts_call_fn fn;
	void *arg;
};

struct worker;

/*
 * A connection. Allocated by the acceptor (with the protocol's state in the
 * same block) and posted to a worker; from the moment
 * inbox_post() is called, only that worker's thread touches it.
 */
struct mts_conn {
	struct inbox_msg msg;		/* MSG_NEW_CONN; first, for the handoff */
	int fd;
	struct worker *worker;
	uint64_t accepted_ns;		/* acceptor's clock at accept: handoff latency */
	TAILQ_ENTRY(mts_conn) link;		/* in worker->conns; worker thread only */
	struct lingering *linger;		/* after mts_conn_finish(): the protocol is gone */
	struct ip_entry *ip;			/* what it counts against, or NULL */
	_Alignas(max_align_t) unsigned char data[];	/* the protocol's, data_size bytes */
};

/*
 * Statistics of one worker. Written only by the worker thread, read by any
 * thread (SIGUSR1 reports, mts_worker_stats): single-writer counters,
 * counter.h.
 */
struct worker_stats {
	atomic_uint_fast64_t accepted;	/* connections this worker took on */
	atomic_uint_fast64_t bytes_in;
	atomic_uint_fast64_t bytes_out;
};

struct worker {
	struct mts_server *srv;
	unsigned id;
	char tag[16];			/* "w3": thread name and log tag */
	pthread_t thread;
	bool started;

	/* Created by mts_new() on the main thread before this worker's
	 * thread starts; from then on used only by the worker thread. */
	struct event_base *base;
	struct inbox *inbox;
	struct inbox_msg stop_msg;	/* preallocated: stopping cannot fail */
	const struct timeval *idle_tv;	/* common timeout, or NULL */
	char *scratch;
	size_t scratch_len;

	/* Worker thread only. */
	TAILQ_HEAD(, mts_conn) conns;
	bool stopping;
	struct event *deadline;		/* shutdown grace timer */

	/*
	 * Live connections handed to this worker: incremented by the acceptor
	 * at handoff, decremented by the worker at close; read by the acceptor
	 * for --balance least. Relaxed: a stale value only skews balancing.
	 */
	atomic_uint live;
	struct worker_stats stats;
	/* Accept-to-worker latency of each connection, recorded by the worker
	 * when it takes the connection; read by the acceptor for SIGUSR1. */
	struct histogram handoff_ns;
};

struct listener {
	int fd;
	struct event *ev;
	char name[64];			/* "127.0.0.1:5555" */
};

/* Reasons for waking the acceptor (bits of server->wake_reasons). */
enum acceptor_wake {
	WAKE_STOP = 1u << 0,
	WAKE_STATS = 1u << 1,
	WAKE_SLOT_FREED = 1u << 2,
	WAKE_REWAKE = 1u << 3,		/* a post from another thread owes a wake-up */
};

struct mts_server {
	struct mts_config cfg;
	struct mts_handler handler;
	enum inbox_variant variant;	/* from cfg.dispatch */

	/* Acceptor (main thread) state. */
	struct event_base *base;
	struct listener *listeners;
	size_t n_listeners;
	struct event *wake_ev;
	struct event *backoff_ev;	/* EMFILE/ENFILE pause */
	struct event *rewake_ev;	/* retries wake-ups that failed to send */
	unsigned rewake_ms;		/* 0: none owed */
	unsigned backoff_ms;		/* 0: not in an episode */
	bool paused_full;		/* at --max-conns */
	/* At --max-conns under churn the acceptor pauses and resumes once per
	 * connection: one pause and its resume are logged per interval. */
	struct log_limit pause_log;
	bool pause_logged;		/* this pause's line was printed */
	uint64_t paused_at_ms;
	struct log_limit refused_log;	/* max_conns_per_ip refusals */
	bool stopping;
	unsigned next_rr;

	/*
	 * Any thread (or a signal handler) sets a reason bit and then signals
	 * `wake`; the acceptor drains `wake` before it exchanges the bits with
	 * 0 (the same drain-then-take order as inbox.c, for the same reason).
	 */
	struct wakeup wake;
	atomic_uint wake_reasons;

	/*
	 * Live connections in the whole server, for --max-conns: incremented by
	 * the acceptor, decremented by workers. The decrement that takes it from
	 * max_conns to max_conns - 1 wakes the acceptor (WAKE_SLOT_FREED);
	 * see acceptor.c for why that is enough.
	 */
	atomic_uint live;
	/* max_conns_per_ip: admitted by the acceptor, released by workers. */
	struct iplimit *iplimit;

	struct worker *workers;
	unsigned n_workers;
	/* Set by mts_free() once the workers are joined: mts_post() refuses,
	 * so a cancelled call that posts cannot reach a freed inbox. */
	atomic_bool closed;

	/* Every work queue made for this server, stopped or not: mts_free()
	 * frees them. Pushed by mts_workq_new() (any thread). */
	_Atomic(struct mts_workq *) workqs;
};

/* acceptor.c */
int acceptor_open(struct mts_server *s, char *why, size_t why_len);
int acceptor_start(struct mts_server *s);
void acceptor_close(struct mts_server *s);
void acceptor_wake(struct mts_server *s, unsigned reason);
/* Worker side of --max-conns: a connection has ended. */
void acceptor_conn_ended(struct mts_server *s);
/* A post failed to wake its worker: have the acceptor retry (any thread). */
void acceptor_rewake_later(struct mts_server *s);

/* workq.c, for mts_free() once the workers are joined: stops the pools of
 * queues the program never freed (before posts are closed), then frees
 * every queue (after the inboxes are drained). */
void workq_stop_all(struct mts_server *s);
void workq_free_all(struct mts_server *s);

/* worker.c */
int worker_init(struct worker *w, struct mts_server *s, unsigned id);
int worker_start(struct worker *w);
void worker_post_stop(struct worker *w);
void worker_join(struct worker *w);
/* After the join: cancels what its inbox still holds (calls, connections). */
void worker_drain(struct worker *w);
void worker_destroy(struct worker *w);

#endif
