/*
 * conn.c - connections on their worker. Contract in conn.h and, for the
 * mts_conn_* functions, in mtserver.h.
 */
#include <config.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "conn.h"
#include "counter.h"
#include "fault.h"
#include "log.h"

#define SCRATCH_LEN (64 * 1024)

/* ---- the protocol's view ---------------------------------------------- */

void *mts_conn_data(struct mts_conn *c) { return c->data; }
unsigned mts_conn_worker(const struct mts_conn *c) { return c->home->id; }
void *mts_conn_worker_state(const struct mts_conn *c)
{
	return atomic_load_explicit(&c->home->state, memory_order_relaxed);	/* its own */
}
int mts_conn_fd(const struct mts_conn *c) { return c->fd; }
struct event_base *mts_conn_base(const struct mts_conn *c) { return c->home->base; }
const struct timeval *mts_conn_idle_timeout(const struct mts_conn *c) { return c->home->idle_tv; }

void *mts_conn_scratch(const struct mts_conn *c, size_t *len)
{
	*len = c->home->scratch_len;
	return c->home->scratch;
}

void mts_conn_count_io(struct mts_conn *c, size_t bytes_in, size_t bytes_out)
{
	if (bytes_in)
		counter_add(&c->home->bytes_in, bytes_in);
	if (bytes_out)
		counter_add(&c->home->bytes_out, bytes_out);
}

/* ---- birth and death ---------------------------------------------------- */

struct mts_conn *conn_new(const struct conn_shared *sh, int fd, struct ip_entry *ip)
{
	struct mts_conn *c;

	c = fault_hit(FAULT_CONN_ALLOC) ? NULL : calloc(1, sizeof(*c) + sh->handler.data_size);
	if (c == NULL) {
		/* That connection is lost, not the server. */
		log_warn("accept: out of memory for a connection; closing it");
		close(fd);
		if (ip != NULL)
			iplimit_release(sh->iplimit, ip);
		connlimit_release(sh->limit);
		return NULL;
	}
	c->fd = fd;
	c->ip = ip;
	c->accepted_ns = clock_now_ns();
	return c;
}

void conn_release(const struct conn_shared *sh, struct mts_conn *c)
{
	close(c->fd);
	if (c->ip != NULL)
		iplimit_release(sh->iplimit, c->ip);
	if (c->home != NULL)
		atomic_fetch_sub_explicit(&c->home->live, 1, memory_order_relaxed);
	connlimit_release(sh->limit);	/* may wake a paused accept side */
	free(c);
}

static void attach(struct conn_home *h, struct mts_conn *c)
{
	c->home = h;
	atomic_fetch_add_explicit(&h->live, 1, memory_order_relaxed);
}

static void conn_task_run(struct exec_task *t, struct event_base *base, unsigned worker)
{
	struct mts_conn *c = caa_container_of(t, struct mts_conn, task);

	conn_adopt(c->home, c);
}

/* The executor stopped before the worker took it: closed, never served. */
static void conn_task_cancel(struct exec_task *t)
{
	struct mts_conn *c = caa_container_of(t, struct mts_conn, task);

	conn_release(c->home->sh, c);
}

#define REFUSED_LOG_MS 10000

void conn_post(struct conn_home *h, struct mts_conn *c)
{
	unsigned skipped;
	int rc;

	attach(h, c);
	c->task = (struct exec_task){ .run = conn_task_run, .cancel = conn_task_cancel };
	/* From here on the connection is the worker's, unless refused. */
	rc = exec_post(h->sh->ex, h->id, &c->task);
	if (rc == 0)
		return;		/* do not touch c */
	/* Refused: c was never the worker's, so this thread ends it. */
	conn_release(h->sh, c);
	if (rc != -ENOBUFS)
		return;		/* -ESHUTDOWN: only once the server is closing */
	counter_add(&h->refused, 1);
	if (log_limit_allow(&h->refused_log, clock_now_ns() / 1000000, REFUSED_LOG_MS, &skipped))
		log_warn("worker %u: its inbox is full; a new connection was closed (%u more "
			 "since the last such line)", h->id, skipped);
}

void conn_adopt(struct conn_home *h, struct mts_conn *c)
{
	if (c->home == NULL)
		attach(h, c);
	counter_add(&h->accepted, 1);
	hist_record(&h->handoff_ns, clock_now_ns() - c->accepted_ns);
	if (h->stopping) {	/* accepted before the stop, arrived after it */
		conn_release(h->sh, c);
		return;
	}
	TAILQ_INSERT_TAIL(&h->conns, c, link);
	if (h->sh->before_open != NULL)
		h->sh->before_open(h, c);	/* opens it once its header is in */
	else
		conn_open(c);
}

void conn_open(struct mts_conn *c)
{
	struct conn_home *h = c->home;
	const int one = 1;
	int rc;

	/*
	 * Without TCP_NODELAY a small reply waits for the peer's delayed ACK
	 * (about 40 ms on Linux) whenever a previous segment is unacknowledged.
	 * Done here, on the worker, so that a single accepting thread does one
	 * system call less per connection. Fails harmlessly on non-TCP.
	 */
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rc = h->sh->handler.on_open(c, h->sh->handler.arg);
	if (rc < 0) {
		log_debug("connection refused by the protocol: %s", strerror(-rc));
		TAILQ_REMOVE(&h->conns, c, link);
		conn_release(h->sh, c);
	}
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

void conn_end(struct mts_conn *c)
{
	struct conn_home *h = c->home;

	TAILQ_REMOVE(&h->conns, c, link);
	if (c->proxy_ev != NULL)
		event_free(c->proxy_ev);
	if (c->linger != NULL) {
		if (c->linger->ev != NULL)
			event_free(c->linger->ev);
		free(c->linger);
	}
	conn_release(h->sh, c);
	if (h->stopping && TAILQ_EMPTY(&h->conns))
		exec_leave(h->sh->ex, h->id);
}

void mts_conn_close(struct mts_conn *c)
{
	const struct conn_shared *sh = c->home->sh;

	sh->handler.on_close(c, sh->handler.arg);
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
	struct conn_home *h = c->home;
	ssize_t n;

	if (what & EV_TIMEOUT)
		goto end;			/* linger_ms is up */
	for (int i = 0; i < LINGER_READS; i++) {
		n = read(fd, h->scratch, h->scratch_len);
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
	struct conn_home *h = c->home;
	const struct conn_shared *sh = h->sh;

	sh->handler.on_close(c, sh->handler.arg);
	/* From here the connection is the core's alone. */
	if (sh->linger_ms == 0 || sh->linger_bytes == 0 || shutdown(c->fd, SHUT_WR) == -1)
		goto now;		/* ENOTCONN: the peer is gone already */
	c->linger = calloc(1, sizeof(*c->linger));
	if (c->linger == NULL)
		goto now;
	c->linger->left = sh->linger_bytes;
	c->linger->deadline_ns = clock_now_ns() + (uint64_t)sh->linger_ms * 1000000u;
	c->linger->ev = event_new(h->base, c->fd, EV_READ, conn_on_linger, c);
	if (c->linger->ev != NULL && linger_wait(c))
		return;
now:
	conn_end(c);
}

/* Ends a connection whatever its state (the grace period is over). */
static void conn_abort(struct mts_conn *c)
{
	if (c->linger != NULL || c->proxy_ev != NULL)
		conn_end(c);	/* no protocol to tell */
	else
		mts_conn_close(c);
}

/* ---- stopping -------------------------------------------------------- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct conn_home *h = arg;
	struct mts_conn *c;

	/* Grace is over: whatever is still pending is dropped. The last
	 * conn_end() makes the worker leave. */
	while ((c = TAILQ_FIRST(&h->conns)) != NULL)
		conn_abort(c);
}

void conn_home_stop(struct conn_home *h)
{
	struct mts_conn *c, *next;
	struct timeval grace = {
		.tv_sec = h->sh->grace_ms / 1000,
		.tv_usec = (h->sh->grace_ms % 1000) * 1000,
	};

	h->stopping = true;
	if (TAILQ_EMPTY(&h->conns)) {
		exec_leave(h->sh->ex, h->id);
		return;
	}
	/* on_shutdown may close the connection at once: iterate safely. A
	 * lingering connection has no protocol to tell: it ends on its own.
	 * One still waiting for its PROXY header has sent nothing to answer:
	 * it ends now. */
	for (c = TAILQ_FIRST(&h->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->proxy_ev != NULL)
			conn_end(c);
		else if (c->linger == NULL)
			h->sh->handler.on_shutdown(c, h->sh->handler.arg);
	}
	if (TAILQ_EMPTY(&h->conns))
		return;		/* the last conn_end() made the worker leave */
	h->deadline = evtimer_new(h->base, on_deadline, h);
	if (h->deadline == NULL || evtimer_add(h->deadline, &grace) == -1)
		on_deadline(-1, 0, h);
}

/* ---- the home -------------------------------------------------------- */

int conn_home_init(struct conn_home *h, const struct conn_shared *sh, unsigned id,
		   struct event_base *base)
{
	struct timeval idle;

	h->sh = sh;
	h->id = id;
	h->base = base;
	TAILQ_INIT(&h->conns);
	if (sh->idle_timeout_s > 0) {
		/* Every connection shares one duration: O(1) timeout queue. */
		idle = (struct timeval){ .tv_sec = sh->idle_timeout_s };
		h->idle_tv = event_base_init_common_timeout(base, &idle);
		if (h->idle_tv == NULL)
			return -ENOMEM;
	}
	h->scratch_len = SCRATCH_LEN;
	h->scratch = malloc(h->scratch_len);
	return h->scratch ? 0 : -ENOMEM;
}

/*
 * After the join: the worker left only once its list was empty (the last
 * conn_end(), or the deadline's aborts), so no connection is left here.
 */
void conn_home_destroy(struct conn_home *h)
{
	if (h->deadline != NULL)
		event_free(h->deadline);
	free(h->scratch);
}
