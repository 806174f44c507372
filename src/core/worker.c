/*
 * worker.c - the worker threads: each owns one event_base and every
 * connection handed to it, and receives new work through its inbox.
 */
#include <config.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core.h"
#include "counter.h"
#include "log.h"

#define SCRATCH_LEN (64 * 1024)

/* ---- connections ---------------------------------------------------- */

void *mts_conn_data(struct mts_conn *c) { return c->data; }
unsigned mts_conn_worker(const struct mts_conn *c) { return c->worker->id; }
int mts_conn_fd(const struct mts_conn *c) { return c->fd; }
struct event_base *mts_conn_base(const struct mts_conn *c) { return c->worker->base; }
const struct timeval *mts_conn_idle_timeout(const struct mts_conn *c) { return c->worker->idle_tv; }

void *mts_conn_scratch(const struct mts_conn *c, size_t *len)
{
	*len = c->worker->scratch_len;
	return c->worker->scratch;
}

void mts_conn_count_io(struct mts_conn *c, size_t bytes_in, size_t bytes_out)
{
	if (bytes_in)
		counter_add(&c->worker->stats.bytes_in, bytes_in);
	if (bytes_out)
		counter_add(&c->worker->stats.bytes_out, bytes_out);
}

/* Frees a connection that never reached the protocol (or already left it). */
static void conn_release(struct mts_conn *c)
{
	struct worker *w = c->worker;

	close(c->fd);
	if (c->ip != NULL)
		iplimit_release(w->srv->iplimit, c->ip);
	atomic_fetch_sub_explicit(&w->live, 1, memory_order_relaxed);
	acceptor_conn_ended(w->srv);
	free(c);
}

/*
 * A lingering close (mts_conn_finish()): the protocol has let go; the core
 * holds the fd with its write side shut down, reading and discarding until
 * the peer closes, the deadline passes, or `left` bytes have been thrown
 * away. The peer reads what was written before the shutdown, then EOF; when
 * it closes, our read sees EOF and the fd is closed with nothing unread in
 * it, so no reset is sent.
 */
struct lingering {
	struct event *ev;		/* EV_READ, re-added with the time left */
	uint64_t deadline_ns;
	size_t left;
};

#define LINGER_READS 16		/* reads per callback: other connections come first */

/* Leaves the worker's list and frees the connection. */
static void conn_end(struct mts_conn *c)
{
	struct worker *w = c->worker;

	TAILQ_REMOVE(&w->conns, c, link);
	if (c->linger != NULL) {
		if (c->linger->ev != NULL)
			event_free(c->linger->ev);
		free(c->linger);
	}
	conn_release(c);
	if (w->stopping && TAILQ_EMPTY(&w->conns))
		event_base_loopbreak(w->base);
}

void mts_conn_close(struct mts_conn *c)
{
	struct worker *w = c->worker;

	w->srv->handler.on_close(c, w->srv->handler.arg);
	conn_end(c);
}

/* Waits for more input or the deadline; false if the time is up already. */
static bool linger_wait(struct mts_conn *c)
{
	uint64_t now = clock_now_ns();
	uint64_t left_us;
	struct timeval tv;

	if (now >= c->linger->deadline_ns)
		return false;
	left_us = (c->linger->deadline_ns - now) / 1000 + 1;
	tv = (struct timeval){ .tv_sec = (time_t)(left_us / 1000000),
			       .tv_usec = (suseconds_t)(left_us % 1000000) };
	return event_add(c->linger->ev, &tv) == 0;
}

static void conn_on_linger(evutil_socket_t fd, short what, void *arg)
{
	struct mts_conn *c = arg;
	struct worker *w = c->worker;
	ssize_t n;

	if (what & EV_TIMEOUT)
		goto end;			/* linger_ms is up */
	for (int i = 0; i < LINGER_READS; i++) {
		n = read(fd, w->scratch, w->scratch_len);
		if (n > 0) {
			if ((size_t)n >= c->linger->left)
				goto end;	/* linger_bytes thrown away: enough */
			c->linger->left -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		goto end;			/* EOF: the peer closed; or an error */
	}
	if (linger_wait(c))
		return;
end:
	conn_end(c);
}

void mts_conn_finish(struct mts_conn *c)
{
	struct worker *w = c->worker;
	const struct mts_config *cfg = &w->srv->cfg;

	w->srv->handler.on_close(c, w->srv->handler.arg);
	/* From here the connection is the core's alone. */
	if (cfg->linger_ms == 0 || cfg->linger_bytes == 0 || shutdown(c->fd, SHUT_WR) == -1)
		goto now;		/* ENOTCONN: the peer is gone already */
	c->linger = calloc(1, sizeof(*c->linger));
	if (c->linger == NULL)
		goto now;
	c->linger->left = cfg->linger_bytes;
	c->linger->deadline_ns = clock_now_ns() + (uint64_t)cfg->linger_ms * 1000000u;
	c->linger->ev = event_new(w->base, c->fd, EV_READ, conn_on_linger, c);
	if (c->linger->ev != NULL && linger_wait(c))
		return;
now:
	conn_end(c);
}

/* Ends a connection whatever its state (the grace period is over). */
static void conn_abort(struct mts_conn *c)
{
	if (c->linger != NULL)
		conn_end(c);
	else
		mts_conn_close(c);
}

static void worker_take_conn(struct worker *w, struct mts_conn *c)
{
	const int one = 1;
	int rc;

	counter_add(&w->stats.accepted, 1);
	hist_record(&w->handoff_ns, clock_now_ns() - c->accepted_ns);
	if (w->stopping) {	/* cannot happen from the acceptor; be safe */
		conn_release(c);
		return;
	}
	/*
	 * Without TCP_NODELAY a small reply waits for the peer's delayed ACK
	 * (about 40 ms on Linux) whenever a previous segment is unacknowledged.
	 * Done here, not in the acceptor, so the single accepting thread does
	 * one system call less per connection. Fails harmlessly on non-TCP.
	 */
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	rc = w->srv->handler.on_open(c, w->srv->handler.arg);
	if (rc < 0) {
		log_debug("connection refused by the protocol: %s", strerror(-rc));
		TAILQ_REMOVE(&w->conns, c, link);
		conn_release(c);
	}
}

/* ---- stopping -------------------------------------------------------- */

static void worker_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct mts_conn *c;

	/* Grace is over: whatever is still pending is dropped. */
	while ((c = TAILQ_FIRST(&w->conns)) != NULL)
		conn_abort(c);
	event_base_loopbreak(w->base);
}

static void worker_begin_stop(struct worker *w)
{
	struct mts_conn *c, *next;
	struct timeval grace = {
		.tv_sec = w->srv->cfg.shutdown_grace_ms / 1000,
		.tv_usec = (w->srv->cfg.shutdown_grace_ms % 1000) * 1000,
	};

	w->stopping = true;
	if (TAILQ_EMPTY(&w->conns)) {
		event_base_loopbreak(w->base);
		return;
	}
	/* on_shutdown may close the connection at once: iterate safely. A
	 * lingering connection has no protocol to tell: it ends on its own. */
	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->linger == NULL)
			w->srv->handler.on_shutdown(c, w->srv->handler.arg);
	}
	if (TAILQ_EMPTY(&w->conns))
		return;		/* the last mts_conn_close() broke the loop */
	w->deadline = evtimer_new(w->base, worker_on_deadline, w);
	if (w->deadline == NULL || evtimer_add(w->deadline, &grace) == -1)
		worker_on_deadline(-1, 0, w);
}

/* ---- the inbox ------------------------------------------------------- */

static void worker_on_msg(struct inbox_msg *msg, void *arg)
{
	struct worker *w = arg;

	switch (msg->kind) {
	case MSG_NEW_CONN:
		worker_take_conn(w, caa_container_of(msg, struct mts_conn, msg));
		break;
	case MSG_STOP:
		worker_begin_stop(w);
		break;
	case MSG_CALL: {
		struct call *call = caa_container_of(msg, struct call, msg);
		call->fn(w->base, call->arg, 0);
		free(call);
		break;
	}
	default:
		log_error("unknown inbox message kind %d", msg->kind);
		break;
	}
}

/*
 * After the loop ended (mts_free): a connection that arrived too late is
 * closed; a call that never ran is cancelled, which is its other way to end.
 */
static void worker_dispose_msg(struct inbox_msg *msg, void *arg)
{
	if (msg->kind == MSG_NEW_CONN) {
		conn_release(caa_container_of(msg, struct mts_conn, msg));
	} else if (msg->kind == MSG_CALL) {
		struct call *call = caa_container_of(msg, struct call, msg);
		call->fn(NULL, call->arg, 1);
		free(call);
	}
}

/* ---- the thread ------------------------------------------------------ */

int worker_init(struct worker *w, struct mts_server *s, unsigned id)
{
	struct event_config *ecfg;
	struct timeval idle;
	int rc;

	w->srv = s;
	w->id = id;
	snprintf(w->tag, sizeof(w->tag), "w%u", id);
	TAILQ_INIT(&w->conns);
	w->stop_msg.kind = MSG_STOP;

	/*
	 * This event_base belongs to the worker thread alone: it is created here,
	 * before the thread starts, and from worker_start() on no other thread
	 * touches it. So libevent's locking is not needed, and not enabled.
	 */
	ecfg = event_config_new();
	if (ecfg == NULL)
		return -ENOMEM;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
	w->base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (w->base == NULL)
		return -ENOMEM;

	rc = inbox_new(&w->inbox, s->variant, w->base, worker_on_msg, w,
		       s->cfg.inbox_budget);
	if (rc < 0)
		return rc;
	if (s->cfg.idle_timeout_s > 0) {
		/* Every connection shares one duration: O(1) timeout queue. */
		idle = (struct timeval){ .tv_sec = s->cfg.idle_timeout_s };
		w->idle_tv = event_base_init_common_timeout(w->base, &idle);
		if (w->idle_tv == NULL)
			return -ENOMEM;
	}
	w->scratch_len = SCRATCH_LEN;
	w->scratch = malloc(w->scratch_len);
	return w->scratch ? 0 : -ENOMEM;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	log_set_thread_tag(w->tag);
	log_debug("worker started");
	/* Runs until the "stop" message has closed every connection. */
	event_base_dispatch(w->base);
	log_debug("worker leaving");
	return NULL;
}

int worker_start(struct worker *w)
{
	sigset_t all, old;
	int rc;

	/* Signals are the main thread's business: workers block them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	w->started = true;
	return 0;
}

void worker_post_stop(struct worker *w)
{
	int rc = inbox_post(w->inbox, &w->stop_msg);

	/*
	 * The main thread joins this worker next, so "stop" must arrive: retry
	 * the wake-up (every 1 ms, for at most 10 s) before giving up on it.
	 */
	for (int tries = 0; rc < 0 && tries < 10000; tries++) {
		usleep(1000);
		rc = inbox_retry_wakeups(w->inbox);
	}
	if (rc < 0)
		log_error("%s: cannot wake for stop: %s", w->tag, strerror(-rc));
}

void worker_join(struct worker *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = false;
}

void worker_drain(struct worker *w)
{
	if (w->inbox != NULL)
		inbox_free(w->inbox, worker_dispose_msg, w);
	w->inbox = NULL;
}

/* On the main thread, after worker_join(): the base is the main thread's again. */
void worker_destroy(struct worker *w)
{
	struct mts_conn *c;

	/* Only if the thread never ran: connections it still held. */
	while ((c = TAILQ_FIRST(&w->conns)) != NULL)
		conn_abort(c);
	worker_drain(w);
	if (w->deadline != NULL)
		event_free(w->deadline);
	if (w->base != NULL)
		event_base_free(w->base);
	free(w->scratch);
}
