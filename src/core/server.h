/*
 * server.h - the core's API: a multithreaded accept-and-dispatch server that
 * knows nothing about the protocol it serves.
 *
 * The main thread runs the acceptor (server_run()); N worker threads each run
 * their own event_base and serve any number of connections. A new connection
 * travels from the acceptor to a worker through that worker's inbox (see
 * inbox.h); from then on only that worker touches it.
 *
 * A protocol plugs in through a struct conn_handler. Its callbacks run on the
 * connection's worker thread, and may use that worker's event_base
 * (conn_base()) for the connection's events. A protocol keeps its
 * per-connection state in conn_data(c): `data_size` bytes, zeroed, allocated
 * with the connection in one block.
 */
#ifndef ECHOSERVER_SERVER_H
#define ECHOSERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

struct event_base;
struct server;
struct conn;

enum server_balance {
	SERVER_BALANCE_RR = 0,		/* round-robin */
	SERVER_BALANCE_LEAST,		/* fewest live connections */
};

struct server_config {
	const char *const *listen;	/* host names or literals; NULL: "localhost" */
	size_t n_listen;
	const char *port;		/* service; "0": ephemeral */
	unsigned threads;		/* workers, >= 1 */
	int backlog;
	unsigned max_conns;		/* 0: unlimited */
	unsigned idle_timeout_s;	/* 0: off */
	unsigned shutdown_grace_ms;	/* how long "stop" waits for pending output */
	unsigned inbox_budget;		/* messages handled per worker loop turn */
	enum server_balance balance;
	const char *dispatch;		/* handoff variant, see server_dispatch_name() */
};

/* Fills in the defaults documented in echoserver(1). */
void server_config_defaults(struct server_config *cfg);

/* The handoff variants server_new() accepts: i = 0, 1, ... until NULL. */
const char *server_dispatch_name(unsigned i);

struct conn_handler {
	size_t data_size;	/* bytes of protocol state per connection */
	/*
	 * The connection now belongs to this worker. Return 0, or a negative
	 * errno to have the core close it (on_close is not called then).
	 */
	int (*on_open)(struct conn *c, void *arg);
	/* The server is stopping: stop reading, flush, then conn_close(). */
	void (*on_shutdown)(struct conn *c, void *arg);
	/* Release what on_open acquired; the core then closes the fd. */
	void (*on_close)(struct conn *c, void *arg);
	void *arg;
};

/*
 * Opens the listening sockets and prepares the workers (not started yet).
 * Returns 0 or a negative errno; *why receives a static description of what
 * failed ("cannot listen on 127.0.0.1:5555"), for the caller's message.
 */
int server_new(struct server **out, const struct server_config *cfg,
	       const struct conn_handler *handler, char *why, size_t why_len);

/* The listening addresses, as "127.0.0.1:5555" or "[::1]:5555". */
size_t server_listener_count(const struct server *s);
const char *server_listener_name(const struct server *s, size_t i);

/*
 * Starts the workers, then accepts on the calling thread until server_stop():
 * then stops accepting, posts "stop" to every worker, joins them and returns
 * 0 (or a negative errno if the server could not start).
 */
int server_run(struct server *s);

/* Asks server_run() to finish. Async-signal-safe; any thread. */
void server_stop(struct server *s);

/* Asks the acceptor to log per-worker statistics. Async-signal-safe; any thread. */
void server_request_stats(struct server *s);

/* Frees everything; after server_run() returned, or instead of it. */
void server_free(struct server *s);

/* ---- running code on a worker ------------------------------------------ */

/* Runs on a worker's thread, with that worker's event_base. */
typedef void (*server_call_fn)(struct event_base *base, void *arg);

unsigned server_worker_count(const struct server *s);

/*
 * Runs fn(base, arg) on worker `worker`'s thread, through its inbox (the same
 * wait-free path as new connections, in order behind what was posted before).
 * Any thread, once server_run() has started the workers. Returns 0, -EINVAL
 * for a worker that does not exist, or -ENOMEM. A call posted while the
 * server is stopping may not run; it is freed, never leaked. Not
 * async-signal-safe (it allocates).
 */
int server_post(struct server *s, unsigned worker, server_call_fn fn, void *arg);

/* server_post() to every worker; returns 0 or the first error. */
int server_post_all(struct server *s, server_call_fn fn, void *arg);

/* What one worker has done so far; any thread, approximate while it runs. */
struct server_worker_stats {
	unsigned live;			/* connections now */
	uint64_t accepted;		/* connections taken on */
	uint64_t bytes_in, bytes_out;	/* as counted by the protocol */
	uint64_t wakeups;		/* inbox wake-ups received */
	uint64_t wakeups_saved;		/* messages that rode along on another's */
	uint64_t largest_batch;		/* most messages handled in one round */
	uint64_t rounds;		/* inbox rounds (wake-ups and re-arms) */
	uint64_t wouldblock;		/* rounds cut short by a producer mid-enqueue */
	uint64_t handoff_p50_ns;	/* accept-to-worker latency, percentiles */
	uint64_t handoff_p90_ns;
	uint64_t handoff_p99_ns;
	uint64_t handoff_max_ns;
};

int server_worker_stats(const struct server *s, unsigned worker,
			struct server_worker_stats *out);

/* For protocol code, on the connection's worker thread. */
void *conn_data(struct conn *c);
int conn_fd(const struct conn *c);
struct event_base *conn_base(const struct conn *c);
/* The idle timeout as a libevent common timeout, or NULL when off. */
const struct timeval *conn_idle_timeout(const struct conn *c);
/* A per-worker scratch buffer, free for use until the callback returns. */
void *conn_scratch(const struct conn *c, size_t *len);
void conn_count_io(struct conn *c, size_t bytes_in, size_t bytes_out);
/* Ends the connection: calls on_close, closes the fd, frees the conn. */
void conn_close(struct conn *c);

#endif
