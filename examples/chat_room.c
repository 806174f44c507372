/*
 * chat_room.c - a worker's room (its clients, its log, its sweeper) and
 * what travels between rooms: batches of lines posted to every worker, the
 * senders' flow control, and the congestion that holds every sender while
 * a reader catches up (chatserver.c tells the design).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "chat.h"

/*
 * Rooms whose log is congested. A worker counts its own room in and out;
 * senders read it before they read input. The worker that takes it to zero
 * posts unhold() to every worker; see hold_if_congested() for why no
 * sender stays held.
 */
static atomic_uint congested_rooms;

void sender_unref(struct sender *snd)
{
	if (atomic_fetch_sub_explicit(&snd->refs, 1, memory_order_acq_rel) == 1)
		free(snd);
}

struct room *room_of(const struct client *cl)
{
	return mts_conn_worker_state(cl->conn);
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
	if (before - b->len < limits.max_queue / 4 && atomic_exchange(&snd->paused, false)) {
		atomic_fetch_add(&snd->refs, 1);
		if (mts_post(chat_server, snd->worker, resume, snd) != 0)
			sender_unref(snd);
	}
	sender_unref(snd);
	free(b);
}

/* On the sender's worker, after it posted batches. */
void pause_if_flooding(struct client *cl)
{
	struct sender *snd = cl->snd;

	if (atomic_load(&snd->on_way) <= limits.max_queue / 2)
		return;
	atomic_store(&snd->paused, true);
	if (atomic_load(&snd->on_way) < limits.max_queue / 4)
		atomic_store(&snd->paused, false);	/* released meanwhile */
}

/* On every worker, once no log is congested: read the held senders again. */
static void unhold(struct event_base *base, void *arg, int cancelled)
{
	struct room *room;
	struct client *cl;

	if (cancelled)
		return;		/* the clients are gone */
	room = mts_worker_state(chat_server, (unsigned)(uintptr_t)arg);	/* this one's */
	if (room == NULL)
		return;		/* no room here: worker_init ran out of memory */
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
void update_congestion(struct room *room)
{
	const struct chat_log *log = &room->log;
	uint64_t span = log->head - chat_log_oldest(log);

	if (!room->congested && span > limits.max_queue + CHAT_LOG_CHUNK) {
		room->congested = true;
		atomic_fetch_add(&congested_rooms, 1);
	} else if (room->congested && span <= limits.max_queue / 2 + CHAT_LOG_CHUNK) {
		room->congested = false;
		if (atomic_fetch_sub(&congested_rooms, 1) == 1)
			for (unsigned w = 0; w < mts_worker_count(chat_server); w++)
				mts_post(chat_server, w, unhold, (void *)(uintptr_t)w);
	}
}

/*
 * On a sender's worker, before it reads: wait while a log is congested.
 * No sender stays held: it is held on its own worker's thread, and unhold()
 * runs there too. If unhold() ran before, it came after the count reached
 * zero (the post orders it), so this load sees zero, or a later congestion,
 * which has its own unhold() to come. If it runs after, it lets this one go.
 */
bool hold_if_congested(struct client *cl)
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
bool cut_if_lagging(struct client *cl, uint64_t now)
{
	struct room *room = room_of(cl);
	uint64_t backlog = chat_reader_backlog(&room->log, &cl->reader);

	if (!room->congested || backlog <= limits.max_queue / 2) {
		cl->behind_since_ms = 0;
		return false;
	}
	if (cl->behind_since_ms == 0) {
		cl->behind_since_ms = now;
		cl->lags++;
	}
	if (now - cl->behind_since_ms > limits.max_lag_ms) {
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
	struct room *room = mts_worker_state(chat_server, slot->worker);	/* this one's */
	struct client *cl, *next;
	uint64_t start, now = now_ms();

	if (cancelled || room == NULL) {
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
bool broadcast(struct client *from, size_t lines, size_t bytes)
{
	unsigned n = mts_worker_count(chat_server);
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
		if (mts_post(chat_server, w, deliver, &b->slots[w]) != 0)
			release(b);	/* that worker will not see it */
	}
	return true;
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
		if (cl->stuck_since_ms != 0 && now - cl->stuck_since_ms > limits.stall_s * 1000ull)
			mts_conn_finish(cl->conn);	/* it cannot read a notice anyway */
		else if (cl->state == OPEN && cl->attached)
			cut_if_lagging(cl, now);
	}
}

/* mts_handler.worker_init, on each worker as it starts: its room, and the
 * sweeper on its own base. NULL if out of memory (its connections are
 * then refused: chat_on_open). */
void *chat_room_new(unsigned worker, struct event_base *base, void *arg)
{
	static const struct timeval fifth = { 0, 200000 };
	struct room *room = calloc(1, sizeof(*room));

	(void)arg;
	if (room == NULL || chat_log_init(&room->log) < 0) {
		free(room);
		mts_log(MTS_LOG_ERROR, "out of memory: worker %u has no room and refuses "
			"connections", worker);
		return NULL;
	}
	TAILQ_INIT(&room->clients);
	room->sweeper = event_new(base, -1, EV_PERSIST, sweep, room);
	if (room->sweeper != NULL)
		event_add(room->sweeper, &fifth);
	return room;
}

/* mts_handler.worker_fini, in mts_free(): every client is gone. */
void chat_room_free(unsigned worker, void *state, void *arg)
{
	struct room *room = state;

	(void)worker;
	(void)arg;
	if (room == NULL)
		return;
	if (room->sweeper != NULL)
		event_free(room->sweeper);
	chat_log_fini(&room->log);
	free(room);
}
