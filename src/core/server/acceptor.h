/*
 * acceptor.h - an accept loop: the listening sockets one event loop watches,
 * and what it does when accepting is not possible.
 *
 * One unit per accepting loop: with --accept handoff, one on the main
 * thread, which delivers each connection to a worker; with reuseport, one
 * per worker on its own sockets; with shared, one per worker on the same
 * sockets. What a unit does with a new connection is its `deliver`.
 *
 * Accept errors, by severity:
 *   EAGAIN                     the backlog is empty: done for this round
 *   EINTR, ECONNABORTED,
 *   EPROTO, ENETDOWN ...       that one connection is gone: try the next
 *   EMFILE, ENFILE, ENOBUFS,
 *   ENOMEM                     out of a resource: pause accepting, retry
 *                              after 10 ms, doubling up to 1 s (the socket
 *                              stays readable, so not pausing would spin)
 *
 * --max-conns: no accept without a slot. A unit takes a slot (connlimit.h)
 * before each accept4(); the connection it brings owns the slot, and when
 * it brings none the slot is given back (a release like any other, which
 * may call on_slot_freed). So the server never holds more accepted sockets
 * than --max-conns, whoever accepts, and nothing accepted ever waits
 * unserved. A unit that finds no slot stops listening (new connections
 * wait in the kernel's backlog) and resumes when told that a slot freed
 * (accept_unit_resume(), which the server arranges from the limit's
 * on_slot_freed). Why no resume is lost and why giving slots back cannot
 * make the units spin: acceptor.c, above on_accept().
 *
 * Everything here runs on the unit's thread (the thread of `base`); the
 * counters are read by any thread.
 */
#ifndef MTS_ACCEPTOR_H
#define MTS_ACCEPTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "connlimit.h"
#include "iplimit.h"
#include "log.h"

#include <pthread.h>

struct event;
struct event_base;
struct accept_unit;

/*
 * What every unit of one server shares. The rate-limited log lines are
 * the server's, not each unit's: a pause is the server's when the first
 * unit pauses (with a unit per worker, the others usually follow within
 * the same episode), and one such pause and its resume are logged per
 * interval. The lock guards `paused` and the two log_limits (taken only on
 * those rare paths); `paused` is also read without it (SIGUSR1, the
 * metrics), hence atomic, a relaxed load of a figure that may be stale.
 */
struct accept_shared {
	struct connlimit *limit;
	struct iplimit *iplimit;	/* or NULL */
	unsigned max_per_ip;		/* for the log */
	bool source_after_header;	/* --proxy-protocol: the worker counts
					 * a connection once its header is read */
	pthread_mutex_t log_lock;
	atomic_uint paused;		/* units paused at --max-conns now */
	struct log_limit pause_log;	/* server pauses: no unit paused -> one */
	struct log_limit refused_log;	/* max_per_ip refusals */

	/* Events every unit counts, read by any thread (the metrics). Several
	 * units may write: relaxed fetch-adds, on these rare paths only. */
	atomic_uint_fast64_t refused_per_ip;	/* closed at once: max_per_ip */
	atomic_uint_fast64_t pauses_full;	/* unit pauses at --max-conns */
	atomic_uint_fast64_t pauses_resources;	/* back-off episodes (EMFILE...) */
};

/* Sets up sh (limit and iplimit must outlive it). */
void accept_shared_init(struct accept_shared *sh, struct connlimit *limit,
			struct iplimit *iplimit, unsigned max_per_ip, bool source_after_header);
/*
 * Counts connection fd against its source, peer (the address accept4()
 * gave, or the one its PROXY header carried; a Unix socket's counts by the
 * peer's uid). 0 with *ip set (NULL when nothing is counted: no
 * max_conns_per_ip); or a negative errno, and, when the source is at its
 * limit (-EBUSY), the refusal counted and logged: the caller closes fd.
 * Any thread: the count is iplimit's, under its one mutex.
 */
int accept_count_source(struct accept_shared *sh, int fd, const struct sockaddr *peer,
			struct ip_entry **ip);
/* At stop, once no unit runs: what the rate limits held back since their
 * last lines; then releases sh. */
void accept_shared_finish(struct accept_shared *sh);

/* Gets fd (a slot taken, its address counted as ip, or ip NULL). */
typedef void (*accept_deliver_fn)(struct accept_unit *u, int fd, struct ip_entry *ip);

struct accept_unit {
	/* Set by accept_unit_init(). */
	struct event_base *base;
	struct accept_shared *sh;
	accept_deliver_fn deliver;
	void *arg;			/* the deliverer's */
	struct event **evs;		/* one per listening fd */
	size_t n;

	/* The unit's thread only. */
	struct event *backoff_ev;	/* EMFILE/ENFILE pause */
	unsigned backoff_ms;		/* 0: not in an episode */
	bool paused_full;		/* found no slot: at --max-conns */
	bool stopping;
	/* At --max-conns under churn a unit pauses and resumes once per
	 * connection: one pause and its resume are logged per interval. */
	bool pause_logged;		/* this pause's line was printed */
	uint64_t paused_at_ms;

	/* Written by the unit's thread, read by any (counter.h): the thundering
	 * herd with --accept shared shows as wake-ups that found nothing. */
	atomic_uint_fast64_t wakeups;	/* readable events handled */
	atomic_uint_fast64_t empty;	/* ... whose first accept found nothing */
};

/*
 * Watches fds[0..n) on base (before base's thread runs it, or on it).
 * Listening starts at once. Returns 0 or -ENOMEM.
 */
int accept_unit_init(struct accept_unit *u, struct event_base *base, const int *fds,
		     size_t n, struct accept_shared *sh, accept_deliver_fn deliver, void *arg);
/* A slot may have freed: listen again if paused at the limit (and the
 * count is below it now; if not, the next release from the limit calls
 * on_slot_freed again). */
void accept_unit_resume(struct accept_unit *u);
/* Stops accepting for good. */
void accept_unit_stop(struct accept_unit *u);
/* After the unit's thread is done with it; does not close the fds. */
void accept_unit_destroy(struct accept_unit *u);

#endif
