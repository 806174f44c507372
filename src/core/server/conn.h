/*
 * conn.h - connections on their worker: adoption, the protocol's callbacks,
 * lingering close, graceful stop. The struct mts_conn of mtserver.h.
 *
 * Each worker has a conn_home: the connections it holds and what they share
 * (scratch buffer, idle timeout, statistics). A home is touched only by its
 * worker's thread, but for the counters and `live`, read by any thread.
 *
 * A connection reaches its home in one of two ways: posted to the worker as
 * an executor task (conn_post(), --accept handoff), or adopted in place by
 * the worker that accepted it (conn_adopt(), --accept reuseport/shared).
 * Either way it ends in conn_release(), which gives back its slot in the
 * connection limit and its per-address count: a posted connection that the
 * executor cancels at shutdown is released the same way.
 */
#ifndef MTS_CONN_H
#define MTS_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "connlimit.h"
#include "executor.h"
#include "histogram.h"
#include "iplimit.h"
#include "log.h"
#include "mtserver.h"
#include "proxy_wait.h"

/* What every home of one server shares; set up by the server, read-only after. */
struct conn_shared {
	struct mts_handler handler;
	unsigned linger_ms;
	size_t linger_bytes;
	unsigned grace_ms;
	unsigned idle_timeout_s;
	struct connlimit *limit;
	struct iplimit *iplimit;	/* or NULL */
	struct executor *ex;
	const struct proxy_conf *proxy;	/* --proxy-protocol, or NULL */
	/* NULL, or what a connection on its home's list goes through before
	 * its protocol hears of it (proxy_wait_begin(): its PROXY header);
	 * it then calls conn_open(), or conn_end(). */
	void (*before_open)(struct conn_home *h, struct mts_conn *c);
};

struct mts_conn {
	struct exec_task task;		/* the handoff (conn_post) */
	int fd;
	struct conn_home *home;		/* set when posted or adopted */
	uint64_t accepted_ns;		/* clock at accept: accept-to-worker latency */
	TAILQ_ENTRY(mts_conn) link;	/* in home->conns; worker thread only */
	struct lingering *linger;	/* after mts_conn_finish(): the protocol is gone */
	struct ip_entry *ip;		/* what it counts against, or NULL */
	struct event *proxy_ev;		/* waiting for its PROXY header, or NULL */
	_Alignas(max_align_t) unsigned char data[];	/* the protocol's, data_size bytes */
};

struct conn_home {
	const struct conn_shared *sh;
	unsigned id;			/* the worker's index */
	struct event_base *base;
	const struct timeval *idle_tv;	/* common timeout, or NULL */
	char *scratch;
	size_t scratch_len;

	/* The protocol's per-worker state (mts_handler.worker_init): written
	 * by the worker before it serves anything, read by it and (atomic)
	 * by mts_worker_state() on any thread. */
	_Atomic(void *) state;
	bool state_made;		/* worker_init ran: worker_fini is owed;
					 * the worker writes it, mts_free() reads
					 * it after the join, which orders the two */

	/* Worker thread only. */
	TAILQ_HEAD(, mts_conn) conns;
	bool stopping;
	struct event *deadline;		/* shutdown grace timer */

	/*
	 * Written by conn_post()'s thread (the one accepting thread of
	 * --accept handoff), read by any thread (counter.h): connections this
	 * worker's full inbox refused, closed at once; and that thread's
	 * rate limit for the line it logs about them.
	 */
	atomic_uint_fast64_t refused;
	struct log_limit refused_log;

	/* Written by the worker, read by any thread (counter.h): statistics,
	 * and `live` for --balance least (a stale value only skews it). */
	atomic_uint live;
	atomic_uint_fast64_t accepted;
	atomic_uint_fast64_t bytes_in;
	atomic_uint_fast64_t bytes_out;
	struct histogram handoff_ns;	/* accept to adoption */
	/* --proxy-protocol (proxy_wait.c): headers taken, by version (v1,
	 * v2), LOCAL ones among them, connections dropped by reason; and the
	 * rate limit of the line a drop logs. */
	atomic_uint_fast64_t proxy_headers[2];
	atomic_uint_fast64_t proxy_local;
	atomic_uint_fast64_t proxy_drops[MTS_PROXY_DROPS];
	struct log_limit proxy_log;
};

/* On the owning thread before the worker starts. 0 or a negative errno. */
int conn_home_init(struct conn_home *h, const struct conn_shared *sh, unsigned id,
		   struct event_base *base);
/* After the worker is joined and its tasks are cancelled. */
void conn_home_destroy(struct conn_home *h);

/*
 * A new connection for fd (whose slot in sh->limit is taken, and whose
 * address `ip` is counted, or NULL). Returns NULL if out of memory, having
 * released the fd, the slot and the count.
 */
struct mts_conn *conn_new(const struct conn_shared *sh, int fd, struct ip_entry *ip);
/*
 * Hands c to home h's worker; c is the worker's from here. One thread per
 * home (the accepting thread). If the worker's inbox is a full ring, c is
 * closed at once instead (its slot and address count released), counted
 * in h->refused and logged at most once per 10 s: no other connection is
 * affected, and the client sees its connection closed, as at any overload.
 */
void conn_post(struct conn_home *h, struct mts_conn *c);
/* On h's worker thread: c lives here from now on. */
void conn_adopt(struct conn_home *h, struct mts_conn *c);
/* A connection that never reached a home's list: closes and frees it. */
void conn_release(const struct conn_shared *sh, struct mts_conn *c);
/* On its worker, c on its home's list: the protocol takes c on (on_open),
 * once its PROXY header, if any, is read. */
void conn_open(struct mts_conn *c);
/* On its worker: c leaves its home's list and is released (a protocol
 * that had it has been told, or never had it). */
void conn_end(struct mts_conn *c);

/* On h's worker, when "stop" arrives: tells the protocol, waits for the
 * connections to end (up to grace_ms), then has the worker leave. */
void conn_home_stop(struct conn_home *h);

#endif
