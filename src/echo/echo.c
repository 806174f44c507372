/*
 * echo.c - the echo protocol on raw events, built to keep an idle connection
 * cheap and a busy one fast.
 *
 * Memory: an idle connection is the core's struct mts_conn followed by this
 * struct echo_conn (one struct event and a few fields): one block of about
 * 250 bytes, and nothing else.
 * Bytes are read into the worker's shared scratch buffer and written straight
 * back; only what the socket does not take at once is copied into a
 * per-connection evbuffer, which exists only while output is pending.
 *
 * State of a connection, and the events it waits for:
 *   out == NULL                      reading (EV_READ)
 *   out != NULL, below high          reading and writing (EV_READ|EV_WRITE)
 *   out != NULL, at/above high       writing only, until below low
 *   eof (client half-closed)         writing only; closed once out drains
 *   finishing (server stopping)      writing only; once out drains, a
 *                                    lingering close (mts_conn_finish()), so
 *                                    the client reads every byte echoed and
 *                                    then EOF, never a reset
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "echo/echo.h"

struct echo_conn {
	struct mts_conn *conn;		/* the core's side of this connection */
	struct event ev;		/* the socket, with the flags of `waiting` */
	struct evbuffer *out;		/* pending echo, or NULL */
	const struct echo_config *cfg;
	short waiting;			/* EV_READ and/or EV_WRITE currently armed */
	bool eof;			/* read no more: client sent FIN, or finishing */
	bool finishing;			/* the server ends it: linger when flushed */
	bool paused;			/* reading stopped by the high watermark */
};

static void echo_on_event(evutil_socket_t fd, short what, void *arg);

/* Arms exactly the events this state needs (see the table above). */
static int echo_rearm(struct echo_conn *ec)
{
	short want = 0;

	if (!ec->eof && !ec->paused)
		want |= EV_READ;
	if (ec->out != NULL)
		want |= EV_WRITE;
	if (want == ec->waiting)
		return 0;
	if (ec->waiting != 0)		/* assigned and pending: change its flags */
		event_del(&ec->ev);
	ec->waiting = want;
	if (want == 0)
		return 0;
	event_assign(&ec->ev, mts_conn_base(ec->conn), mts_conn_fd(ec->conn),
		     want | EV_PERSIST, echo_on_event, ec);
	return event_add(&ec->ev, mts_conn_idle_timeout(ec->conn)) == -1 ? -ENOMEM : 0;
}

/* Keeps `len` bytes the socket did not take. */
static int echo_queue(struct echo_conn *ec, const char *data, size_t len)
{
	if (ec->out == NULL && (ec->out = evbuffer_new()) == NULL)
		return -ENOMEM;	/* closes this connection only */
	if (evbuffer_add(ec->out, data, len) == -1)
		return -ENOMEM;
	if (evbuffer_get_length(ec->out) >= ec->cfg->high_watermark)
		ec->paused = true;
	return 0;
}

/* Writes pending output. Returns 0, or -1 when the connection must close. */
static int echo_flush(struct echo_conn *ec)
{
	int fd = mts_conn_fd(ec->conn);
	int n;

	while (evbuffer_get_length(ec->out) > 0) {
		n = evbuffer_write(ec->out, fd);
		if (n > 0) {
			mts_conn_count_io(ec->conn, 0, (size_t)n);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;	/* EPIPE, ECONNRESET: the client is gone */
	}
	if (evbuffer_get_length(ec->out) == 0) {
		evbuffer_free(ec->out);		/* idle again: give the memory back */
		ec->out = NULL;
	}
	if (ec->paused && (ec->out == NULL ||
			   evbuffer_get_length(ec->out) < ec->cfg->low_watermark))
		ec->paused = false;
	return 0;
}

/* One read, echoed at once. Returns 0, or -1 when the connection must close. */
static int echo_read(struct echo_conn *ec)
{
	int fd = mts_conn_fd(ec->conn);
	size_t cap;
	char *buf = mts_conn_scratch(ec->conn, &cap);
	ssize_t n, w = 0;

	do
		n = read(fd, buf, cap);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
	if (n == 0) {
		ec->eof = true;		/* half-close: flush, then close */
		return 0;
	}
	mts_conn_count_io(ec->conn, (size_t)n, 0);

	/* Order: older pending bytes go first, so append behind them. */
	if (ec->out == NULL) {
		do
			w = write(fd, buf, (size_t)n);
		while (w == -1 && errno == EINTR);
		if (w == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			w = 0;
		}
		mts_conn_count_io(ec->conn, 0, (size_t)w);
		if (w == n)
			return 0;
	}
	return echo_queue(ec, buf + w, (size_t)(n - w));
}

static void echo_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct echo_conn *ec = arg;

	if (what & EV_TIMEOUT) {
		/* Idle: the client may still send; what is pending is dropped. */
		mts_log(MTS_LOG_DEBUG, "closing idle connection fd %d", (int)fd);
		goto finish;
	}
	if ((what & EV_WRITE) && ec->out != NULL && echo_flush(ec) < 0)
		goto close;
	if ((what & EV_READ) && !ec->eof && !ec->paused && echo_read(ec) < 0)
		goto close;
	if (ec->finishing && ec->out == NULL)
		goto finish;	/* stopping, and everything read is echoed */
	if (ec->eof && ec->out == NULL)
		goto close;	/* everything echoed after the client's FIN */
	if (echo_rearm(ec) < 0)
		goto close;
	return;
close:
	mts_conn_close(ec->conn);
	return;
finish:
	mts_conn_finish(ec->conn);
}

static int echo_open(struct mts_conn *c, void *arg)
{
	struct echo_conn *ec = mts_conn_data(c);

	ec->conn = c;
	ec->cfg = arg;
	/* ec->ev is assigned by echo_rearm(); `waiting` starts at 0. */
	return echo_rearm(ec);
}

/*
 * Server stopping: stop reading; once the echo of what was read is flushed,
 * a lingering close (now, if nothing is pending).
 */
static void echo_shutdown(struct mts_conn *c, void *arg)
{
	struct echo_conn *ec = mts_conn_data(c);

	ec->eof = true;
	ec->finishing = true;
	if (ec->out == NULL || echo_rearm(ec) < 0)
		mts_conn_finish(c);
}

static void echo_close(struct mts_conn *c, void *arg)
{
	struct echo_conn *ec = mts_conn_data(c);

	if (ec->waiting)
		event_del(&ec->ev);
	if (ec->out != NULL)
		evbuffer_free(ec->out);
}

/* RFC 862 over UDP: "the data from it is sent back in an answering
 * datagram". The datagram already is its answer. */
static int echo_datagram(struct mts_datagram *d, void *worker_state, void *arg)
{
	(void)d;
	(void)worker_state;
	(void)arg;
	return 1;
}

void echo_handler(struct mts_handler *h, const struct echo_config *cfg)
{
	*h = (struct mts_handler){
		.data_size = sizeof(struct echo_conn),
		.on_open = echo_open,
		.on_shutdown = echo_shutdown,
		.on_close = echo_close,
		.on_datagram = echo_datagram,
		.arg = (void *)cfg,
	};
}
