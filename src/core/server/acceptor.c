/*
 * acceptor.c - an accept loop (accept unit). Contract and error policy in
 * acceptor.h.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "acceptor.h"
#include "counter.h"
#include "histogram.h"

#define ACCEPT_BUDGET 64	/* accepts per readable event, then yield */
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000

/*
 * Lines that clients can make a unit repeat at any rate (a host that keeps
 * trying; a churn at the connection limit) are printed at most once per
 * LIMIT_LOG_MS, with how many were not (log_limit_allow()).
 */
#define LIMIT_LOG_MS 10000

static uint64_t now_ms(void)
{
	return clock_now_ns() / 1000000;
}

/* ---- pausing and resuming --------------------------------------------- */

/* Listening is on exactly when no reason to pause holds. */
static void update_listening(struct accept_unit *u)
{
	bool on = !u->stopping && !u->paused_full && u->backoff_ms == 0;

	for (size_t i = 0; i < u->n; i++) {
		if (on)
			event_add(u->evs[i], NULL);
		else
			event_del(u->evs[i]);
	}
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
	struct accept_unit *u = arg;

	/*
	 * Try again; keep backoff_ms as the episode's memory so a repeated
	 * failure doubles it. It is cleared after an accept succeeds.
	 */
	for (size_t i = 0; i < u->n && !u->stopping && !u->paused_full; i++)
		event_active(u->evs[i], EV_READ, 0);
}

/*
 * EMFILE, ENFILE and the like: pause accepting, 10 ms, doubling to 1 s.
 * A pause, not a debt (owed.h, retry.h): nothing was queued that a signal
 * must announce; the kernel keeps the connections in the backlog, and the
 * unit's own timer, on its own thread, simply looks again. The retrier
 * pays debts other threads left behind; this is one thread waiting for the
 * system to have room.
 */
static void start_backoff(struct accept_unit *u, int err)
{
	struct timeval tv;

	if (u->backoff_ms == 0) {
		atomic_fetch_add_explicit(&u->sh->pauses_resources, 1, memory_order_relaxed);
		log_warn("accept: %s; pausing new connections (will retry)", strerror(err));
		u->backoff_ms = BACKOFF_MIN_MS;
	} else if (u->backoff_ms < BACKOFF_MAX_MS) {
		u->backoff_ms *= 2;
		if (u->backoff_ms > BACKOFF_MAX_MS)
			u->backoff_ms = BACKOFF_MAX_MS;
	}
	update_listening(u);
	tv = (struct timeval){ .tv_sec = u->backoff_ms / 1000,
			       .tv_usec = (u->backoff_ms % 1000) * 1000 };
	evtimer_add(u->backoff_ev, &tv);
}

static void end_backoff(struct accept_unit *u)
{
	log_info("accept: resumed after running out of resources");
	u->backoff_ms = 0;
	update_listening(u);
}

/* At --max-conns: stop listening (the backlog holds newcomers). */
static void pause_full(struct accept_unit *u)
{
	unsigned skipped;

	if (u->paused_full)
		return;
	u->paused_full = true;
	u->paused_at_ms = now_ms();
	atomic_fetch_add_explicit(&u->sh->pauses_full, 1, memory_order_relaxed);
	pthread_mutex_lock(&u->sh->log_lock);
	/* Only the first unit to pause makes it the server's pause. */
	u->pause_logged = atomic_fetch_add_explicit(&u->sh->paused, 1,
						    memory_order_relaxed) == 0 &&
			  log_limit_allow(&u->sh->pause_log, u->paused_at_ms, LIMIT_LOG_MS,
					  &skipped);
	pthread_mutex_unlock(&u->sh->log_lock);
	if (u->pause_logged)
		log_info("accept: %u connections, the limit; pausing (%u more pauses since "
			 "the last such line)", u->sh->limit->max, skipped);
	update_listening(u);
}

/* A connection over max_per_ip (its caller closes it): counted, and named
 * in a line (at most one per LIMIT_LOG_MS). */
static void refuse(struct accept_shared *sh, const struct iplimit_key *k)
{
	unsigned skipped;
	char name[80];
	bool allowed;

	atomic_fetch_add_explicit(&sh->refused_per_ip, 1, memory_order_relaxed);
	pthread_mutex_lock(&sh->log_lock);
	allowed = log_limit_allow(&sh->refused_log, now_ms(), LIMIT_LOG_MS, &skipped);
	pthread_mutex_unlock(&sh->log_lock);
	if (!allowed)
		return;
	iplimit_key_format(k, name, sizeof(name));
	log_warn("accept: refused a connection from %s, which has %u already "
		 "(max_conns_per_ip); %u more refused since the last such line",
		 name, sh->max_per_ip, skipped);
}

int accept_count_source(struct accept_shared *sh, int fd, const struct sockaddr *peer,
			struct ip_entry **ip)
{
	struct iplimit_key k;
	int rc;

	*ip = NULL;
	if (sh->iplimit == NULL)
		return 0;
	if ((rc = iplimit_key_of(fd, peer, &k)) == 0 &&
	    (rc = iplimit_admit(sh->iplimit, &k, ip)) == 0)
		return 0;
	if (rc == -EBUSY)
		refuse(sh, &k);
	else
		log_warn("accept: cannot count a connection (max_conns_per_ip): %s; "
			 "closing it", strerror(-rc));
	return rc;
}

/* fd has its slot: count it against its address (or uid), then deliver it.
 * With the PROXY protocol the address is known only once the header is
 * read, on the worker: the count is taken there (proxy_wait.c). */
static void admit(struct accept_unit *u, int fd, const struct sockaddr *peer)
{
	struct ip_entry *ip = NULL;

	if (!u->sh->source_after_header && accept_count_source(u->sh, fd, peer, &ip) < 0) {
		close(fd);
		connlimit_release(u->sh->limit);
		return;
	}
	u->deliver(u, fd, ip);
}

/* ---- the loop --------------------------------------------------------- */

/*
 * No accept without a slot. Each round of the loop below reserves a slot
 * (connlimit_try_take) before accept4(), and the connection that accept4()
 * brings owns it from then on; when accept4() brings nothing (the backlog
 * is empty, an error) the slot is given back at once (connlimit_release).
 * A connection closes its socket before it gives its slot back, on every
 * path (conn_release(), conn_new(), admit()). So the accepted sockets never
 * outnumber the slots taken, which never pass --max-conns, however many
 * units accept; a unit that finds no slot pauses and leaves newcomers in
 * the kernel's backlog. Why that is sound:
 *
 * No resume is lost. A unit pauses only after a take failed, that is with
 * the count at max. The count can fall below max only by a release from
 * max to max - 1, and every release calls on_slot_freed on that transition,
 * a connection's end (conn_release) and a reservation given back here
 * alike; the callback resumes every paused unit (the strategy's slot_freed, strategy.h). A unit that is
 * resumed and finds the count at max again stays paused and waits for the
 * next such release, which comes after its look (connlimit.h).
 *
 * A given-back reservation cannot make the units spin. It resumes paused
 * units when it takes the count from max to max - 1, but a resume only
 * turns listening back on: it accepts nothing and takes no slot. A unit
 * runs this loop only when its socket is readable (a connection waits in
 * the backlog) or a back-off retry is due, and a round that finds nothing
 * ends the call. So every reservation given back was paid for by a
 * wake-up, and every wake-up by a connection that arrived (or a timer);
 * with the backlog empty the units go quiet, paused or listening.
 *
 * The herd with --accept shared stays the herd it was. A connection wakes
 * every listening unit, as before: one takes a slot and gets it; each of the
 * others either takes a slot and finds the backlog empty (one accept4 and
 * one release, the wake-up that accept_empty counts) or finds no slot, the
 * others' reservations having filled the count for a moment, and pauses
 * until a release resumes it. What the reservations add is at most one
 * release per such wake-up, and, when a release goes from max to max - 1,
 * one resume posted to each worker that has none pending (resume_posted):
 * bounded by the wake-ups the connection caused, never by a loop. At most
 * one reservation per unit is outstanding, so with n units at most n slots
 * are reserved and not yet filled at any moment.
 *
 * The back-off keeps working. accept4() failing with EMFILE or the like
 * gives its slot back like any failure, so a unit backing off holds no
 * slot and other units can use it; the retry takes a slot again.
 */
static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct accept_unit *u = arg;
	/* The peer's address is asked for only when it is counted here. */
	bool want_peer = u->sh->iplimit != NULL && !u->sh->source_after_header;

	counter_add(&u->wakeups, 1);
	for (int n = 0; n < ACCEPT_BUDGET; n++) {
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof(peer);
		int fd, err;

		if (!connlimit_try_take(u->sh->limit)) {
			pause_full(u);	/* leave newcomers in the backlog */
			return;
		}
		fd = accept4(lfd, want_peer ? (struct sockaddr *)&peer : NULL,
			     want_peer ? &peer_len : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			if (u->backoff_ms)
				end_backoff(u);
			admit(u, fd, (struct sockaddr *)&peer);	/* fd owns the slot now */
			continue;
		}
		err = errno;
		connlimit_release(u->sh->limit);	/* nothing came: give the slot back */
		switch (err) {
		case EAGAIN:
#if EAGAIN != EWOULDBLOCK
		case EWOULDBLOCK:
#endif
			if (n == 0)
				counter_add(&u->empty, 1);
			if (u->backoff_ms)
				end_backoff(u);
			return;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			start_backoff(u, err);
			return;
		default:
			/* ECONNABORTED, EINTR, EPROTO, network errors: next one. */
			log_debug("accept: %s", strerror(err));
			continue;
		}
	}
}

void accept_unit_resume(struct accept_unit *u)
{
	if (!u->paused_full || u->stopping)
		return;
	if (connlimit_full(u->sh->limit))
		return;		/* still full: the next release from max tells us */
	u->paused_full = false;
	pthread_mutex_lock(&u->sh->log_lock);
	atomic_fetch_sub_explicit(&u->sh->paused, 1, memory_order_relaxed);
	pthread_mutex_unlock(&u->sh->log_lock);
	if (u->pause_logged)
		log_info("accept: below the connection limit; resuming after %llu ms",
			 (unsigned long long)(now_ms() - u->paused_at_ms));
	u->pause_logged = false;
	update_listening(u);
	/*
	 * Paused inside a back-off episode (its retry found no slot), or its
	 * timer fired while paused (on_backoff does nothing then): no retry is
	 * pending, so it is made now; without it the unit would never listen
	 * again, since listening waits for the episode to end. After
	 * update_listening(), whose event_del() would cancel the activation.
	 */
	if (u->backoff_ms != 0 && !evtimer_pending(u->backoff_ev, NULL))
		on_backoff(-1, EV_TIMEOUT, u);
}

void accept_unit_stop(struct accept_unit *u)
{
	u->stopping = true;
	update_listening(u);
}

void accept_shared_init(struct accept_shared *sh, struct connlimit *limit,
			struct iplimit *iplimit, unsigned max_per_ip, bool source_after_header)
{
	*sh = (struct accept_shared){ .limit = limit, .iplimit = iplimit,
				      .max_per_ip = max_per_ip,
				      .source_after_header = source_after_header };
	pthread_mutex_init(&sh->log_lock, NULL);
}

void accept_shared_finish(struct accept_shared *sh)
{
	if (sh->pause_log.skipped != 0)
		log_info("accept: paused at the connection limit %u more times since the "
			 "last such line", sh->pause_log.skipped);
	if (sh->refused_log.skipped != 0)
		log_warn("accept: refused %u more connections (max_conns_per_ip) since the "
			 "last such line", sh->refused_log.skipped);
	sh->pause_log.skipped = sh->refused_log.skipped = 0;
}

int accept_unit_init(struct accept_unit *u, struct event_base *base, const int *fds,
		     size_t n, struct accept_shared *sh, accept_deliver_fn deliver, void *arg)
{
	*u = (struct accept_unit){ .base = base, .sh = sh, .deliver = deliver, .arg = arg };
	u->evs = calloc(n, sizeof(*u->evs));
	u->backoff_ev = evtimer_new(base, on_backoff, u);
	if (u->evs == NULL || u->backoff_ev == NULL)
		return -ENOMEM;
	for (; u->n < n; u->n++) {
		u->evs[u->n] = event_new(base, fds[u->n], EV_READ | EV_PERSIST, on_accept, u);
		if (u->evs[u->n] == NULL)
			return -ENOMEM;
	}
	update_listening(u);
	return 0;
}

void accept_unit_destroy(struct accept_unit *u)
{
	for (size_t i = 0; i < u->n; i++)
		event_free(u->evs[i]);
	free(u->evs);
	u->evs = NULL;
	u->n = 0;
	if (u->backoff_ev != NULL)
		event_free(u->backoff_ev);
	u->backoff_ev = NULL;
}
