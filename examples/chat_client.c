/*
 * chat_client.c - one client, on its worker: its input cut into lines and
 * broadcast, its output (its notices, then the room's log from its place
 * in it), its events, and its close (chatserver.c tells the design).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "chat.h"

static atomic_uint next_id = 1;

static void on_event(evutil_socket_t fd, short what, void *arg);

/* Is there anything to send: notices, or log text it has not had yet? */
static bool has_output(const struct client *cl)
{
	if (evbuffer_get_length(cl->notes) > 0)
		return true;
	if (!cl->attached)
		return false;
	if (cl->state == DRAINING)
		return cl->reader.pos < cl->close_at;
	return chat_reader_backlog(&room_of(cl)->log, &cl->reader) > 0;
}

/* Arms exactly the events this state needs; closes once all is said. */
void rearm(struct client *cl)
{
	short want = cl->state == OPEN && !cl->held && !atomic_load(&cl->snd->paused) ?
		     EV_READ : 0;

	if (has_output(cl)) {
		want |= EV_WRITE;
		if (cl->stuck_since_ms == 0)
			cl->stuck_since_ms = now_ms();
	} else {
		cl->stuck_since_ms = 0;
		if (cl->state == NOTIFYING) {
			mts_conn_finish(cl->conn);	/* said and flushed: linger */
			return;
		}
	}
	if (want == cl->waiting)
		return;
	if (cl->waiting)
		event_del(&cl->ev);
	cl->waiting = want;
	if (want == 0)
		return;				/* paused, nothing to send */
	event_assign(&cl->ev, mts_conn_base(cl->conn), mts_conn_fd(cl->conn),
		     want | EV_PERSIST, on_event, cl);
	event_add(&cl->ev, NULL);
}

void say(struct client *cl, const char *text)
{
	evbuffer_add(cl->notes, text, strlen(text));
}

/*
 * The notices a client's own input causes ("line too long") are bounded: a
 * client that sends over-long lines and reads nothing would otherwise grow
 * its notes by one notice per line. Past NOTES_MAX they are dropped (one
 * says so); the server's last words (why it is cut off, shutting down) go
 * through say() and are never dropped.
 */
#define NOTES_MAX 1024

static void complain(struct client *cl, const char *text)
{
	size_t have = evbuffer_get_length(cl->notes);

	if (have < NOTES_MAX)
		say(cl, text);
	else if (!cl->notes_full) {
		say(cl, "* error: too many errors unread, the next ones are not sent\n");
		cl->notes_full = true;
	}
}

/* Leaves the log: nothing it has not had yet is kept for it any more. */
void detach(struct client *cl)
{
	if (cl->attached) {
		chat_reader_detach(&room_of(cl)->log, &cl->reader);
		update_congestion(room_of(cl));
	}
	cl->attached = false;
}

/* Disconnects a reader that fell too far behind: it hears why, then goes. */
void cut(struct client *cl, uint64_t backlog)
{
	char why[160];

	detach(cl);
	snprintf(why, sizeof(why), "* disconnected: send queue exceeded (%" PRIu64
		 " bytes waiting, the limit is %zu): you are reading too slowly\n",
		 backlog, limits.max_queue);
	say(cl, why);
	cl->state = NOTIFYING;
	rearm(cl);
}

/* The most text one batch carries: a batch never fills a queue alone. */
static size_t batch_max(void)
{
	return limits.max_queue / 4 < 64 * 1024 ? limits.max_queue / 4 : 64 * 1024;
}

/*
 * Sends the complete lines of cl->in, in batches, refusing over-long ones.
 * Returns false if the client must go.
 */
static bool take_lines(struct client *cl)
{
	char prefix[24];
	size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "#%u: ", cl->id);

	for (;;) {
		struct evbuffer_ptr eol = evbuffer_search_eol(cl->in, NULL, NULL, EVBUFFER_EOL_LF);
		struct evbuffer_ptr from;
		size_t lines = 0, bytes = 0;

		if (cl->discarding) {		/* the rest of an over-long line */
			if (eol.pos < 0) {
				evbuffer_drain(cl->in, evbuffer_get_length(cl->in));
				return true;
			}
			evbuffer_drain(cl->in, (size_t)eol.pos + 1);
			cl->discarding = false;
			continue;
		}
		if (eol.pos < 0) {		/* only a partial line is left */
			if (evbuffer_get_length(cl->in) > limits.max_line) {
				complain(cl, "* error: line too long, discarded\n");
				cl->discarding = true;
				evbuffer_drain(cl->in, evbuffer_get_length(cl->in));
			}
			return true;
		}
		if ((size_t)eol.pos > limits.max_line) {
			complain(cl, "* error: line too long, discarded\n");
			evbuffer_drain(cl->in, (size_t)eol.pos + 1);
			continue;
		}
		/* The lines that fit, one after the other, up to a batch's size. */
		do {
			lines++;
			bytes = (size_t)eol.pos + 1;
			if (evbuffer_ptr_set(cl->in, &from, bytes, EVBUFFER_PTR_SET) < 0)
				break;
			eol = evbuffer_search_eol(cl->in, &from, NULL, EVBUFFER_EOL_LF);
		} while (eol.pos >= 0 && (size_t)eol.pos - bytes <= limits.max_line &&
			 (size_t)eol.pos + 1 + (lines + 1) * plen <= batch_max());
		if (!broadcast(cl, lines, bytes))
			return false;
	}
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	struct client *cl = arg;
	struct room *room = room_of(cl);
	ssize_t n;

	if (what & EV_WRITE) {
		bool moved = false;

		if (evbuffer_get_length(cl->notes) > 0) {
			n = evbuffer_write(cl->notes, fd);
			if (n == -1 && errno != EAGAIN && errno != EINTR)
				goto gone;
			moved = n > 0;
			if (evbuffer_get_length(cl->notes) == 0)
				cl->notes_full = false;
		}
		if (evbuffer_get_length(cl->notes) == 0 && cl->attached) {
			uint64_t limit = cl->state == DRAINING ? cl->close_at : UINT64_MAX;

			n = chat_reader_send(&room->log, &cl->reader, fd, limit);
			if (n == -1 && errno != EAGAIN)
				goto gone;
			moved = moved || n > 0;
			if (cl->state == DRAINING && cl->reader.pos >= cl->close_at) {
				detach(cl);
				say(cl, "* server shutting down\n");
				cl->state = NOTIFYING;
			}
		}
		if (moved)
			cl->stuck_since_ms = 0;		/* moving again */
		if (cl->attached &&
		    chat_reader_backlog(&room->log, &cl->reader) <= limits.max_queue / 2)
			cl->behind_since_ms = 0;	/* caught up: a new episode later */
		update_congestion(room);
	}
	if ((what & EV_READ) && cl->state == OPEN && !hold_if_congested(cl)) {
		n = evbuffer_read(cl->in, fd, READ_MAX);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			goto gone;
		if (n > 0 && !take_lines(cl))
			goto gone;
		pause_if_flooding(cl);
	}
	rearm(cl);
	return;
gone:
	mts_conn_close(cl->conn);	/* the client left, or its socket failed */
}

int chat_on_open(struct mts_conn *c, void *arg)
{
	struct client *cl = mts_conn_data(c);
	struct room *room = mts_conn_worker_state(c);
	int sndbuf = (int)(limits.max_queue / 4);
	char hello[64];

	/*
	 * The kernel's send buffer is part of a client's queue too, and grows
	 * to megabytes on its own: then a client that stops reading looks up to
	 * date for megabytes, and a notice sits behind them. Capped here (the
	 * kernel doubles the value), a client's whole queue is about
	 * 1.5 x --max-queue.
	 */
	if (room == NULL)
		return -ENOMEM;		/* its worker has no room: worker_init failed */
	(void)setsockopt(mts_conn_fd(c), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	cl->conn = c;
	cl->id = atomic_fetch_add(&next_id, 1);
	cl->in = evbuffer_new();
	cl->notes = evbuffer_new();
	cl->snd = calloc(1, sizeof(*cl->snd));
	if (cl->in == NULL || cl->notes == NULL || cl->snd == NULL) {
		if (cl->in) evbuffer_free(cl->in);
		if (cl->notes) evbuffer_free(cl->notes);
		free(cl->snd);
		return -ENOMEM;
	}
	atomic_init(&cl->snd->refs, 1);
	cl->snd->worker = mts_conn_worker(c);
	cl->snd->client = cl;
	chat_reader_attach(&room->log, &cl->reader);
	cl->attached = true;
	TAILQ_INSERT_TAIL(&room->clients, cl, link);
	snprintf(hello, sizeof(hello), "* you are #%u\n", cl->id);
	say(cl, hello);
	rearm(cl);
	return 0;
}

/* Stopping: it gets the lines already in the log, then a notice, then goes. */
void chat_on_shutdown(struct mts_conn *c, void *arg)
{
	struct client *cl = mts_conn_data(c);

	if (cl->state != OPEN)
		return;		/* already on its way out */
	if (cl->attached) {
		cl->close_at = room_of(cl)->log.head;
		cl->state = DRAINING;
	} else {
		say(cl, "* server shutting down\n");
		cl->state = NOTIFYING;
	}
	rearm(cl);
}

void chat_on_close(struct mts_conn *c, void *arg)
{
	struct client *cl = mts_conn_data(c);

	TAILQ_REMOVE(&room_of(cl)->clients, cl, link);
	if (cl->waiting)
		event_del(&cl->ev);
	detach(cl);
	evbuffer_free(cl->in);
	evbuffer_free(cl->notes);
	cl->snd->client = NULL;
	sender_unref(cl->snd);
}
