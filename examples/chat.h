/*
 * chat.h - what the chat server's files share: a client and its sender
 * state, a worker's room, the batches between rooms, and the limits set on
 * the command line. chatserver.c tells the design and runs the server;
 * chat_client.c is one client's input and output; chat_room.c is a
 * worker's room and the traffic between rooms (broadcast, backpressure);
 * chat_log.c the log each room keeps.
 */
#ifndef CHAT_H
#define CHAT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

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

/* What each worker has (its state: mts_handler.worker_init makes it,
 * chat_room_new()); touched by that worker only, but for `congested`'s
 * count, which is shared. */
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

/* The command line's limits (chatserver.c), set before the server starts. */
struct chat_limits {
	size_t max_line, max_queue;
	unsigned stall_s, max_lag_ms;
};
extern struct chat_limits limits;
extern struct mts_server *chat_server;

uint64_t now_ms(void);

/* chat_client.c: a client, on its worker. */
int chat_on_open(struct mts_conn *c, void *arg);
void chat_on_shutdown(struct mts_conn *c, void *arg);
void chat_on_close(struct mts_conn *c, void *arg);
void rearm(struct client *cl);
void say(struct client *cl, const char *text);
void detach(struct client *cl);
void cut(struct client *cl, uint64_t backlog);

/* chat_room.c: a worker's room, and what travels between rooms. */
void *chat_room_new(unsigned worker, struct event_base *base, void *arg);
void chat_room_free(unsigned worker, void *state, void *arg);
struct room *room_of(const struct client *cl);
void sender_unref(struct sender *snd);
void update_congestion(struct room *room);
bool hold_if_congested(struct client *cl);
bool cut_if_lagging(struct client *cl, uint64_t now);
bool broadcast(struct client *from, size_t lines, size_t bytes);
void pause_if_flooding(struct client *cl);

#endif
