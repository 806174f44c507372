/*
 * chatserver.c - a line-based broadcast server on libmtserver: every
 * complete line a client sends goes to every other connected client,
 * whichever worker it lives on, as "#ID: line".
 *
 * How lines travel: the sender's worker cuts the complete lines of one read
 * out of the sender's input into one batch ("#ID: ..." each), and mts_post()s
 * it to every worker; each worker appends the batch to its own log
 * (chat_log.c), once, however many clients it has; each client sends from
 * that log at its own pace. So every worker's inbox has many producers (all
 * the workers), which is what the wait-free inbox is for. Each worker's
 * clients and log are touched only by that worker.
 *
 * Memory is bounded whatever clients do, and a slow reader costs itself,
 * not the others:
 *  - input: a line longer than --max-line is refused with a notice to its
 *    sender and discarded up to its newline; a client's input holds at most
 *    one read and a partial line;
 *  - a reader's send queue is its backlog in its worker's log, plus its
 *    notices, plus its socket's send buffer (capped at --max-queue / 2);
 *  - backpressure, bounded in time: a worker's log becomes "congested" when
 *    its slowest reader is more than --max-queue behind, and clears when
 *    none is more than --max-queue / 2 behind. While any log is congested,
 *    every sender waits (its worker does not read it), so a reader that was
 *    only slow for a moment (descheduled, say) catches up and loses nothing.
 *    A reader that holds a congested log back (more than --max-queue / 2
 *    behind) for --max-lag milliseconds is disconnected with a notice ("send
 *    queue exceeded") and its part of the log is freed: a slow reader holds
 *    the others back for --max-lag at most, once. (How far behind a reader
 *    is alone decides nothing: a round of the inbox appends up to a budget
 *    of batches before the loop writes to any socket, so a reader that keeps
 *    up can be far behind for a moment; time tells the two apart.)
 *  - senders are also paused by what is on its way: a batch counts against
 *    its sender from its post until every worker has appended it; past
 *    --max-queue / 2 of those bytes its worker stops reading it, until they
 *    fall under --max-queue / 4;
 *  - a client whose output has not moved for --stall seconds is
 *    disconnected (each worker sweeps its clients five times a second).
 * The resulting bound on memory is in the man page (doc/chatserver.1).
 *
 * Closing: a client the server disconnects (send queue exceeded, shutdown)
 * first gets what it is owed and a notice, then a lingering close
 * (mts_conn_finish()), so the notice is read, not destroyed by a reset.
 *
 *   chatserver [-p PORT] [-l ADDR]... [-t THREADS] [--max-line N]
 *              [--max-queue N] [--stall SECS] [-q]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "chat_log.h"
#include "mtserver.h"

#define READ_MAX (16 * 1024)	/* bytes read from a client per event */

/*
 * A sender's flow-control state. It outlives its client while batches of
 * the client are still on their way (refs: the client, and each batch).
 */
struct sender {
	atomic_uint refs;
	atomic_size_t on_way;		/* bytes of its batches not yet in every log */
	atomic_bool paused;		/* its worker stopped reading it; see below */
	unsigned worker;
	struct client *client;		/* NULL once closed; its worker only */
};

enum client_state {
	OPEN,
	DRAINING,		/* stopping: send the log up to `close_at`, then the notice */
	NOTIFYING,		/* send what is in `notes`, then a lingering close */
};

struct client {
	struct mts_conn *conn;
	struct sender *snd;
	struct event ev;
	short waiting;			/* EV_READ/EV_WRITE currently armed */
	unsigned id;
	enum client_state state;
	bool attached;			/* its reader is in the worker's log */
	bool discarding;		/* inside an over-long line: drop to its newline */
	struct chat_reader reader;	/* its place in its worker's log */
	uint64_t close_at;		/* DRAINING: the log position it stops at */
	struct evbuffer *in;		/* a partial line, at most max_line bytes */
	struct evbuffer *notes;		/* the server's own words, sent before the log */
	bool notes_full;		/* complain() stopped adding to notes */
	uint64_t stuck_since_ms;	/* output pending and not moving since, or 0 */
	uint64_t behind_since_ms;	/* holding the room back since, or 0 */
	unsigned lags;			/* times it began to hold the room back */
	bool held;			/* not read while a log is congested */
	TAILQ_ENTRY(client) link;	/* in its worker's list; that worker only */
};

TAILQ_HEAD(client_list, client);

/* What each worker has; index = worker, touched by that worker only. */
struct room {
	struct client_list clients;
	struct chat_log log;
	struct event *sweeper;
	bool congested;			/* counted in `congested_rooms` */
};

/*
 * One read's lines, on their way to every worker: the text, and one slot per
 * worker (what is posted to it). Freed by the last worker done with it;
 * `refs` orders every worker's reads before the free.
 */
struct batch;
struct slot {
	struct batch *batch;
	unsigned worker;
};
struct batch {
	atomic_uint refs;		/* one per worker delivery */
	struct sender *snd;
	size_t len;
	char *text;			/* after the slots */
	struct slot slots[];
};

static struct mts_server *server;
static struct room *rooms;
static atomic_uint next_id = 1;
static size_t max_line = 4096, max_queue = 256 * 1024;
static unsigned stall_s = 10, max_lag_ms = 500;
/*
 * Rooms whose log is congested. A worker counts its own room in and out;
 * senders read it before they read input. The worker that takes it to zero
 * posts unhold() to every worker; see hold_if_congested() for why no
 * sender stays held.
 */
static atomic_uint congested_rooms;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_event(evutil_socket_t fd, short what, void *arg);

static void sender_unref(struct sender *snd)
{
	if (atomic_fetch_sub_explicit(&snd->refs, 1, memory_order_acq_rel) == 1)
		free(snd);
}

static struct room *room_of(const struct client *cl)
{
	return &rooms[mts_conn_worker(cl->conn)];
}

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
static void rearm(struct client *cl)
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

static void say(struct client *cl, const char *text)
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

static void update_congestion(struct room *room);

/* Leaves the log: nothing it has not had yet is kept for it any more. */
static void detach(struct client *cl)
{
	if (cl->attached) {
		chat_reader_detach(&room_of(cl)->log, &cl->reader);
		update_congestion(room_of(cl));
	}
	cl->attached = false;
}

/* Disconnects a reader that fell too far behind: it hears why, then goes. */
static void cut(struct client *cl, uint64_t backlog)
{
	char why[160];

	detach(cl);
	snprintf(why, sizeof(why), "* disconnected: send queue exceeded (%" PRIu64
		 " bytes waiting, the limit is %zu): you are reading too slowly\n",
		 backlog, max_queue);
	say(cl, why);
	cl->state = NOTIFYING;
	rearm(cl);
}

/* On the sender's worker: reading from it may go on. */
static void resume(struct event_base *base, void *arg, int cancelled)
{
	struct sender *snd = arg;

	if (!cancelled && snd->client != NULL)
		rearm(snd->client);
	sender_unref(snd);
}

/* Any worker: one worker is done with the batch; the last one frees it. */
static void release(struct batch *b)
{
	struct sender *snd = b->snd;
	size_t before;

	if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return;
	before = atomic_fetch_sub(&snd->on_way, b->len);
	/*
	 * Paired with pause_if_flooding(): that side sets `paused` and then
	 * reads `on_way`; this side lowers `on_way` and then takes `paused`. Both
	 * sequentially consistent, so one of the two sees the other: a pause
	 * that races with the last release is always undone by someone.
	 */
	if (before - b->len < max_queue / 4 && atomic_exchange(&snd->paused, false)) {
		atomic_fetch_add(&snd->refs, 1);
		if (mts_post(server, snd->worker, resume, snd) != 0)
			sender_unref(snd);
	}
	sender_unref(snd);
	free(b);
}

/* On the sender's worker, after it posted batches. */
static void pause_if_flooding(struct client *cl)
{
	struct sender *snd = cl->snd;

	if (atomic_load(&snd->on_way) <= max_queue / 2)
		return;
	atomic_store(&snd->paused, true);
	if (atomic_load(&snd->on_way) < max_queue / 4)
		atomic_store(&snd->paused, false);	/* released meanwhile */
}

/* On every worker, once no log is congested: read the held senders again. */
static void unhold(struct event_base *base, void *arg, int cancelled)
{
	struct room *room = arg;
	struct client *cl;

	if (cancelled)
		return;		/* the clients are gone */
	TAILQ_FOREACH(cl, &room->clients, link)
		if (cl->held) {
			cl->held = false;
			rearm(cl);
		}
}

/*
 * Whether this worker's log holds more than a reader may lag: more than
 * --max-queue between its oldest chunk and its head (counted in whole
 * chunks, hence the chunk of slack), and back under --max-queue / 2.
 */
static void update_congestion(struct room *room)
{
	const struct chat_log *log = &room->log;
	uint64_t span = log->head - chat_log_oldest(log);

	if (!room->congested && span > max_queue + CHAT_LOG_CHUNK) {
		room->congested = true;
		atomic_fetch_add(&congested_rooms, 1);
	} else if (room->congested && span <= max_queue / 2 + CHAT_LOG_CHUNK) {
		room->congested = false;
		if (atomic_fetch_sub(&congested_rooms, 1) == 1)
			for (unsigned w = 0; w < mts_worker_count(server); w++)
				mts_post(server, w, unhold, &rooms[w]);
	}
}

/*
 * On a sender's worker, before it reads: wait while a log is congested.
 * No sender stays held: it is held on its own worker's thread, and unhold()
 * runs there too. If unhold() ran before, it came after the count reached
 * zero (the post orders it), so this load sees zero, or a later congestion,
 * which has its own unhold() to come. If it runs after, it lets this one go.
 */
static bool hold_if_congested(struct client *cl)
{
	cl->held = atomic_load(&congested_rooms) > 0;
	return cl->held;
}

/*
 * A reader that holds the room back too long is cut. It holds the room back
 * while the room is congested and it is more than --max-queue / 2 behind:
 * the room clears once no reader is (see update_congestion()), so either
 * they all catch up, or the ones that do not are cut within --max-lag (and
 * a sweep), and the room clears. Each time a reader begins to hold the room
 * back counts in `lags`, and its cut is logged with that count: a reader
 * that cannot catch up is cut in its first such episode, so it made the
 * senders wait once (the man page's promise; tests/test_chat reads the count).
 */
static bool cut_if_lagging(struct client *cl, uint64_t now)
{
	struct room *room = room_of(cl);
	uint64_t backlog = chat_reader_backlog(&room->log, &cl->reader);

	if (!room->congested || backlog <= max_queue / 2) {
		cl->behind_since_ms = 0;
		return false;
	}
	if (cl->behind_since_ms == 0) {
		cl->behind_since_ms = now;
		cl->lags++;
	}
	if (now - cl->behind_since_ms > max_lag_ms) {
		mts_log(MTS_LOG_INFO, "#%u disconnected: send queue exceeded (%" PRIu64
			" bytes waiting); the senders waited for it %u time%s, the last "
			"for %" PRIu64 " ms", cl->id, backlog, cl->lags, cl->lags == 1 ? "" : "s",
			now - cl->behind_since_ms);
		cut(cl, backlog);	/* frees its part of the log */
		return true;
	}
	return false;
}

/*
 * On each worker: append the batch to its log; wake or cut its clients.
 * Cancelled (the server stopped first), it only lets go of the batch.
 */
static void deliver(struct event_base *base, void *arg, int cancelled)
{
	struct slot *slot = arg;
	struct batch *b = slot->batch;
	struct room *room = &rooms[slot->worker];
	struct client *cl, *next;
	uint64_t start, now = now_ms();

	if (cancelled) {
		release(b);
		return;
	}

	if (chat_log_append(&room->log, b->text, b->len, &start) < 0) {
		mts_log(MTS_LOG_WARN, "out of memory: a batch of %zu bytes is lost on worker %u",
			b->len, slot->worker);
		release(b);
		return;
	}
	/* Its sender, if it lives here, must not get it back. */
	cl = slot->worker == b->snd->worker ? b->snd->client : NULL;
	if (cl != NULL && cl->attached && chat_reader_skip(&cl->reader, start, b->len) < 0)
		cut(cl, chat_reader_backlog(&room->log, &cl->reader));
	release(b);

	for (cl = TAILQ_FIRST(&room->clients); cl != NULL; cl = next) {
		next = TAILQ_NEXT(cl, link);
		if (cl->state != OPEN || !cl->attached)
			continue;
		if (!cut_if_lagging(cl, now) && !(cl->waiting & EV_WRITE))
			rearm(cl);
	}
	update_congestion(room);
}

/*
 * Cuts the complete lines out of from->in into one batch and sends it to
 * every worker. The text is copied once, into the batch. Returns false only
 * when out of memory (the lines are then dropped from the input).
 */
static bool broadcast(struct client *from, size_t lines, size_t bytes)
{
	unsigned n = mts_worker_count(server);
	char prefix[24];
	int plen = snprintf(prefix, sizeof(prefix), "#%u: ", from->id);
	size_t room = bytes + lines * (size_t)plen;
	struct batch *b = malloc(sizeof(*b) + n * sizeof(struct slot) + room);
	char *at;

	if (b == NULL) {
		evbuffer_drain(from->in, bytes);
		return false;
	}
	b->snd = from->snd;
	atomic_fetch_add(&from->snd->refs, 1);
	b->text = at = (char *)&b->slots[n];
	for (size_t i = 0; i < lines; i++) {
		struct evbuffer_ptr eol = evbuffer_search_eol(from->in, NULL, NULL, EVBUFFER_EOL_LF);
		size_t len = (size_t)eol.pos;

		memcpy(at, prefix, (size_t)plen);
		at += plen;
		evbuffer_remove(from->in, at, len + 1);		/* with its '\n' */
		if (len > 0 && at[len - 1] == '\r') {		/* CR LF -> LF */
			at[len - 1] = '\n';
			len--;
		}
		at += len + 1;
	}
	b->len = (size_t)(at - b->text);
	atomic_fetch_add(&from->snd->on_way, b->len);
	atomic_init(&b->refs, n);
	for (unsigned w = 0; w < n; w++) {
		b->slots[w] = (struct slot){ .batch = b, .worker = w };
		if (mts_post(server, w, deliver, &b->slots[w]) != 0)
			release(b);	/* that worker will not see it */
	}
	return true;
}

/* The most text one batch carries: a batch never fills a queue alone. */
static size_t batch_max(void)
{
	return max_queue / 4 < 64 * 1024 ? max_queue / 4 : 64 * 1024;
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
			if (evbuffer_get_length(cl->in) > max_line) {
				complain(cl, "* error: line too long, discarded\n");
				cl->discarding = true;
				evbuffer_drain(cl->in, evbuffer_get_length(cl->in));
			}
			return true;
		}
		if ((size_t)eol.pos > max_line) {
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
		} while (eol.pos >= 0 && (size_t)eol.pos - bytes <= max_line &&
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
		    chat_reader_backlog(&room->log, &cl->reader) <= max_queue / 2)
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

static int on_open(struct mts_conn *c, void *arg)
{
	struct client *cl = mts_conn_data(c);
	struct room *room = &rooms[mts_conn_worker(c)];
	int sndbuf = (int)(max_queue / 4);
	char hello[64];

	/*
	 * The kernel's send buffer is part of a client's queue too, and grows
	 * to megabytes on its own: then a client that stops reading looks up to
	 * date for megabytes, and a notice sits behind them. Capped here (the
	 * kernel doubles the value), a client's whole queue is about
	 * 1.5 x --max-queue.
	 */
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
static void on_shutdown(struct mts_conn *c, void *arg)
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

static void on_close(struct mts_conn *c, void *arg)
{
	struct client *cl = mts_conn_data(c);

	TAILQ_REMOVE(&rooms[mts_conn_worker(c)].clients, cl, link);
	if (cl->waiting)
		event_del(&cl->ev);
	detach(cl);
	evbuffer_free(cl->in);
	evbuffer_free(cl->notes);
	cl->snd->client = NULL;
	sender_unref(cl->snd);
}

/*
 * Five times a second on each worker: cut readers that hold the room back
 * (while senders wait, no batch arrives to check them), and disconnect
 * clients whose output is stuck.
 */
static void sweep(evutil_socket_t fd, short what, void *arg)
{
	struct room *room = arg;
	struct client *cl, *next;
	uint64_t now = now_ms();

	for (cl = TAILQ_FIRST(&room->clients); cl != NULL; cl = next) {
		next = TAILQ_NEXT(cl, link);
		if (cl->stuck_since_ms != 0 && now - cl->stuck_since_ms > stall_s * 1000ull)
			mts_conn_finish(cl->conn);	/* it cannot read a notice anyway */
		else if (cl->state == OPEN && cl->attached)
			cut_if_lagging(cl, now);
	}
}

/* Posted to every worker at start: its sweeper, on its own base. */
static void start_room(struct event_base *base, void *arg, int cancelled)
{
	static const struct timeval second = { 0, 200000 };
	struct room *room = arg;

	if (cancelled)
		return;		/* it never ran: no sweeper to make */

	room->sweeper = event_new(base, -1, EV_PERSIST, sweep, room);
	if (room->sweeper != NULL)
		event_add(room->sweeper, &second);
}

/* What the signal handlers stop: set while mts_run() runs, cleared before
 * mts_free() (a late signal must not reach a freed server). */
static struct mts_server *volatile running;

static void on_signal(int sig)
{
	if (running != NULL)
		mts_stop(running);
}

static void usage(FILE *out)
{
	fprintf(out,
"Usage: chatserver [OPTION]...\n"
"Every line a client sends goes to every other client, as \"#ID: line\".\n\n"
"  -p, --port N         TCP port (default 5555; 0 picks a free one)\n"
"  -l, --listen ADDR    address to listen on; repeatable (default localhost)\n"
"  -t, --threads N      worker threads (default: online CPUs)\n"
"      --max-line N     longest line accepted (default 4096)\n"
"      --max-queue N    how far behind a client may fall, in bytes, before the\n"
"                       others wait for it (default 262144; at least\n"
"                       --max-line + 64)\n"
"      --max-lag MS     how long the others wait for a client before it is\n"
"                       disconnected (default 500)\n"
"      --stall SECS     disconnect a client whose output has not moved that long\n"
"                       (default 10)\n"
"  -q, --quiet          only errors\n"
"  -h, --help           this help\n\n"
"SIGINT, SIGTERM and SIGHUP stop it gracefully.\n");
}

/*
 * A whole number in [min, max], or exit 2 naming the flag. The example is
 * built against the installed library and its public header alone
 * (tests/test_install.sh), so it does not share src/cli's parser.
 */
static unsigned long number(const char *opt, const char *arg, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);

	if (*arg == '\0' || *arg == '-' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "chatserver: invalid value '%s' for %s\n", arg, opt);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	enum { O_MAX_LINE = 256, O_MAX_QUEUE, O_STALL, O_MAX_LAG };
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-line", required_argument, NULL, O_MAX_LINE },
		{ "max-queue", required_argument, NULL, O_MAX_QUEUE },
		{ "stall", required_argument, NULL, O_STALL },
		{ "max-lag", required_argument, NULL, O_MAX_LAG },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen[16];
	struct mts_config cfg;
	struct mts_handler h = { .data_size = sizeof(struct client), .on_open = on_open,
				 .on_shutdown = on_shutdown, .on_close = on_close };
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART }, old_hup;
	char port[8], why[256];
	unsigned n;
	int opt, rc;

	mts_config_defaults(&cfg);
	cfg.listen = listen;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":p:l:t:qh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			snprintf(port, sizeof(port), "%lu", number("--port", optarg, 0, 65535));
			cfg.port = port;
			break;
		case 'l':
			if (cfg.n_listen == 16) {
				fprintf(stderr, "chatserver: too many --listen addresses\n");
				return 2;
			}
			listen[cfg.n_listen++] = optarg;
			break;
		case 't': cfg.threads = (unsigned)number("--threads", optarg, 1, 1024); break;
		case O_MAX_LINE: max_line = number("--max-line", optarg, 1, 1 << 20); break;
		case O_MAX_QUEUE: max_queue = number("--max-queue", optarg, 1024, 1 << 30); break;
		case O_STALL: stall_s = (unsigned)number("--stall", optarg, 1, 86400); break;
		case O_MAX_LAG: max_lag_ms = (unsigned)number("--max-lag", optarg, 1, 3600000); break;
		case 'q': mts_log_set_level(MTS_LOG_ERROR); break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "chatserver: unknown option or missing value '%s'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "chatserver: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	/* The longest line, with its "#ID: " and newline, must fit in a queue. */
	if (max_line + 64 > max_queue) {
		fprintf(stderr, "chatserver: --max-line %zu does not fit in --max-queue %zu "
			"(it must be at most --max-queue - 64)\n", max_line, max_queue);
		return 2;
	}
	rc = mts_new(&server, &cfg, &h, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "chatserver: %s\n", why);
		return rc == -EINVAL ? 2 : 1;	/* -EINVAL: the arguments conflict */
	}
	n = mts_worker_count(server);
	rooms = calloc(n, sizeof(*rooms));
	for (unsigned w = 0; rooms != NULL && w < n; w++) {
		TAILQ_INIT(&rooms[w].clients);
		if (chat_log_init(&rooms[w].log) < 0) {
			fprintf(stderr, "chatserver: out of memory\n");
			return 1;
		}
		/* Queued now, run by each worker as soon as its loop starts. */
		mts_post(server, w, start_room, &rooms[w]);
	}
	running = server;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* A closed terminal: the same graceful stop, unless the program was
	 * started with SIGHUP ignored (nohup), which it keeps. */
	if (sigaction(SIGHUP, NULL, &old_hup) == 0 && old_hup.sa_handler != SIG_IGN)
		sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < mts_listener_count(server); i++)
		printf("chatserver: listening on %s\n", mts_listener_name(server, i));
	fflush(stdout);
	rc = rooms != NULL ? mts_run(server) : -ENOMEM;
	/* The workers are joined: their bases are this thread's until mts_free. */
	for (unsigned w = 0; rooms != NULL && w < n; w++)
		if (rooms[w].sweeper != NULL)
			event_free(rooms[w].sweeper);
	running = NULL;
	mts_free(server);
	for (unsigned w = 0; rooms != NULL && w < n; w++)
		chat_log_fini(&rooms[w].log);
	free(rooms);
	return rc < 0 ? 1 : 0;
}
