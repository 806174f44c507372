/*
 * server.h - struct mts_server: what the server layer puts together from
 * the layers below (the executor's workers, the connection homes, the
 * accept strategy and its state, the listening sockets) and the main
 * thread's control channel. For the server layer's own files; protocols
 * see only mtserver.h.
 */
#ifndef MTS_SERVER_H
#define MTS_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "acceptor.h"
#include "conn.h"
#include "connlimit.h"
#include "control.h"
#include "executor.h"
#include "iplimit.h"
#include "listen.h"
#include "metrics.h"
#include "mtserver.h"
#include "notify.h"
#include "retry.h"
#include "strategy.h"
#include "udp.h"
#include "wakeup.h"
#include "workq.h"

/* Reasons for waking the main thread (bits of control.reasons). */
enum control_reason {
	WAKE_STOP = 1u << 0,
	WAKE_STATS = 1u << 1,
	WAKE_SLOT_FREED = 1u << 2,	/* the strategy's resume_main (strategy.h) */
};

struct mts_server {
	struct mts_config cfg;		/* cfg.listen and listen_fds: NULL after mts_new */
	const struct accept_strategy *strategy;	/* strategy.h */
	void *accept_state;		/* the strategy's own, from start to destroy */
	struct retrier *retrier;	/* pays every failed wake-up (retry.h) */
	struct executor *ex;
	struct listen_set ls;
	struct listen_set uls;		/* UDP: copies per worker, or inherited */
	struct udp_shared udp;
	struct udp_home *udp_homes;	/* one per worker, or NULL: no UDP */

	/* What connections share, and where they live. */
	struct connlimit limit;
	struct iplimit *iplimit;
	struct conn_shared sh;
	struct proxy_conf proxy;	/* sh.proxy points here when it is on */
	struct conn_home *homes;	/* one per worker */
	unsigned n_workers;

	struct accept_shared accept_sh;	/* what every accept unit shares */
	bool accept_ready;		/* accept_sh initialised */

	/* Main thread: its base runs the control channel (and, with handoff,
	 * accepting) until mts_stop(). */
	struct event_base *base;
	struct control control;
	struct metrics *metrics;	/* GET /metrics on base, or NULL */
	struct notify notify;		/* the service manager's view (notify.h) */

	struct workq_list workqs;	/* every work queue made for this server */
};

/* config.c: fills *cfg from in (defaults for NULL strings) and judges it
 * by mtserver.h's rules; *strategy and *inbox are what it names. 0, or
 * -EINVAL with *why naming the field. */
int server_check_config(const struct mts_config *in, const struct mts_handler *handler,
			struct mts_config *cfg, const struct accept_strategy **strategy,
			struct inbox_spec *inbox, char *why, size_t why_len);

/* config.c: UDP's fields, once UDP is served (by cfg->udp, or by an
 * inherited datagram socket). 0, or -EINVAL with *why naming the field. */
int server_check_udp(const struct mts_config *cfg, const struct mts_handler *handler,
		     char *why, size_t why_len);

/* server_sockets.c: the listening and UDP sockets (before the workers are
 * set up), and UDP's readers on the workers (after the homes). 0, or a
 * negative errno with *why. */
int server_open_sockets(struct mts_server *s, const struct mts_config *cfg, char *why,
			size_t why_len);
int server_start_udp(struct mts_server *s, const struct mts_config *cfg,
		     const struct mts_handler *handler, char *why, size_t why_len);

/* signals.c: no signal handler reaches s any more (mts_free). */
void signals_release(struct mts_server *s);
void signals_after_fork_child(void);

/* stats.c: every counter of mts_worker_stats but the latency percentiles
 * (what a scrape needs, without reading the histogram four times);
 * worker < n_workers. */
void stats_counts(const struct mts_server *s, unsigned worker, struct mts_worker_stats *out);
void stats_log(const struct mts_server *s);

#endif
