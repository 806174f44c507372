/*
 * udp.h - a worker's UDP service: its datagram sockets, read and answered
 * in batches on the worker's own event_base, with no handoff.
 *
 * Each worker reads its own SO_REUSEPORT socket per address; an inherited
 * datagram socket, which the kernel cannot spread, is read by one worker
 * (server_sockets.c). A readable socket is read with
 * recvmmsg() into UDP_BATCH slots of udp_max bytes each; every datagram
 * that passes the guards (udp_guard.h) goes to the protocol's on_datagram;
 * the answers go back with one sendmmsg(). An answer that cannot be sent
 * (EAGAIN, a full send buffer) is dropped and counted: UDP may lose it,
 * and queueing it would let a flood grow the server without bound.
 *
 * Who calls what: udp_home_init on the main thread before the worker runs
 * (its base is not yet running: no lock needed); udp_home_stop on the
 * worker (its stop); udp_home_destroy once the worker has been joined.
 * The counters: written by the worker, read by any thread (counter.h).
 */
#ifndef MTS_UDP_H
#define MTS_UDP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mtserver.h"
#include "udp_guard.h"

struct event;
struct event_base;
struct udp_batch;

/* What every worker's UDP service shares; read-only once set up, but for
 * the rate table's words. */
struct udp_shared {
	int (*on_datagram)(struct mts_datagram *d, void *worker_state, void *arg);
	void *arg;
	size_t max;			/* udp_max: each slot's bytes */
	struct udp_rate rate;		/* when rate_on */
	bool rate_on;
};

/* One socket a worker reads: its event's argument. */
struct udp_sock {
	struct udp_home *u;
	struct event *ev;
	uint16_t port;			/* it is bound to: never answered (a loop) */
};

struct udp_home {
	struct udp_shared *sh;
	unsigned id;			/* the worker */
	_Atomic(void *) *state;		/* the protocol's per-worker state */
	struct udp_sock *socks;		/* the sockets it reads */
	size_t n;
	struct udp_batch *b;		/* the worker's buffers */

	atomic_uint_fast64_t received, answered;
	atomic_uint_fast64_t dropped[MTS_UDP_DROPS];
};

/* Reads fds[0..n) on base for worker id. 0 or -ENOMEM. */
int udp_home_init(struct udp_home *u, struct udp_shared *sh, unsigned id,
		  struct event_base *base, const int *fds, size_t n, _Atomic(void *) *state);
void udp_home_stop(struct udp_home *u);
void udp_home_destroy(struct udp_home *u);

#endif
