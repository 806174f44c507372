/*
 * mtserver.h - the public API of the core: a multithreaded accept-and-dispatch
 * server that knows nothing about the protocol it serves.
 *
 * N worker threads each run their own event_base and serve any number of
 * connections. How a connection reaches its worker is the accept strategy:
 * with "handoff" (the default) the main thread accepts (in mts_run()) and
 * passes each connection to a worker through that worker's inbox (a
 * wait-free queue and an eventfd; doc/HANDOFF.md); with "reuseport" and
 * "shared" every worker accepts for itself. Either way, from then on only
 * that worker touches the connection. doc/ARCHITECTURE.md shows the layers.
 *
 * A protocol plugs in through a struct mts_handler. Its callbacks run on the
 * connection's worker thread, and may use that worker's event_base
 * (mts_conn_base()) for the connection's events. A protocol keeps its
 * per-connection state in mts_conn_data(c): `data_size` bytes, zeroed, allocated
 * with the connection in one block.
 */
#ifndef MTSERVER_H
#define MTSERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "mtserver_log.h"

struct event_base;
struct mts_server;
struct mts_conn;

enum mts_balance {
	MTS_BALANCE_DEFAULT = 0,	/* round-robin where the server picks the
					 * worker; nothing where the kernel does */
	MTS_BALANCE_RR,			/* round-robin */
	MTS_BALANCE_LEAST,		/* fewest live connections */
};

/*
 * The defaults that mts_config_defaults() fills in are given after each field,
 * and each field's range before them. mts_new() checks every field by one
 * rule, in one place:
 *
 *   - A NULL string means its default: port "5555", dispatch "wfcq", accept
 *     "handoff". n_listen 0 means 127.0.0.1 and ::1 (listen is not read
 *     then; ::1 is skipped, with an info line, on a host without IPv6).
 *   - A pointer must agree with its count: listen NULL with n_listen > 0, a
 *     NULL or empty entry among the first n_listen, or listen_fds NULL with
 *     n_listen_fds > 0 is -EINVAL.
 *   - A number means what its comment says. Where 0 means "off", "unlimited"
 *     or "the default", the comment says so; a value outside the range
 *     given (0 included, where no meaning is given to it) is -EINVAL.
 *   - A refusal by this rule is -EINVAL with a *why that names the field
 *     ("threads is 0: ..."), given before anything is opened or allocated.
 *
 * The handler is checked too: it and its three callbacks must not be NULL.
 */
struct mts_config {
	const char *const *listen;	/* host names or literals, none NULL or "".
					 * NULL */
	size_t n_listen;		/* 0: 127.0.0.1 and ::1. 0 */
	const char *port;		/* service name or number, 0..65535; "0":
					 * ephemeral; NULL: "5555". "5555" */
	unsigned threads;		/* workers, >= 1 (more are bounded by the
					 * descriptor limit, -EMFILE, and with
					 * "ring" by memory, see dispatch). The
					 * number of online CPUs */
	int backlog;			/* >= 1 (the kernel caps it at
					 * net.core.somaxconn). 1024 */
	unsigned max_conns;		/* 0: unlimited; any value. 0 */
	unsigned max_conns_per_ip;	/* 0: unlimited; any value; IPv6 counts
					 * per /64, a Unix socket's clients per
					 * user id (SO_PEERCRED). 0 */
	unsigned idle_timeout_s;	/* 0: off; any value. 0 */
	unsigned shutdown_grace_ms;	/* how long "stop" waits for pending output;
					 * any value, 0: not at all. 2000 */
	unsigned linger_ms;		/* how long mts_conn_finish() waits for the
					 * peer; any value. 2000 */
	size_t linger_bytes;		/* ... and how much of its input it discards;
					 * any value. 0 in either: no lingering,
					 * a plain close. 16 MiB */
	unsigned inbox_budget;		/* messages handled per worker loop turn,
					 * >= 1. 64 */
	enum mts_balance balance;	/* one of the three; RR and LEAST (a
					 * choice made) with accept "handoff"
					 * only. MTS_BALANCE_DEFAULT */
	/*
	 * The handoff variant and its options: "NAME" or
	 * "NAME:KEY=VALUE[,KEY=VALUE]", NAME one of mts_dispatch_name(), each
	 * KEY one of that variant's (mts_dispatch_options()); an option not
	 * given has its default. For example "ring:size=1024" (a ring holds
	 * that many messages per worker, a power of two; a post to a full
	 * one is refused: mts_post returns -ENOBUFS, a new connection is
	 * closed) or "spin-then-block:us=0". Rings that could never fit in
	 * the machine's physical memory (threads x size x 8 bytes: slots are
	 * touched as traffic passes) are -EINVAL. NULL: "wfcq". "wfcq"
	 */
	const char *dispatch;
	const char *accept;		/* accept strategy, mts_accept_name();
					 * NULL: "handoff". "handoff" */
	/*
	 * Listening sockets the program already has (socket activation, see
	 * mts_inherited_fds()): used instead of listen/port, and closed by
	 * mts_free(). Each must be a listening stream socket, IPv4, IPv6 or
	 * Unix (else -EINVAL).
	 * Not with accept "reuseport". NULL, 0.
	 */
	const int *listen_fds;
	size_t n_listen_fds;
	/*
	 * Prometheus metrics over HTTP (GET /metrics), served on the main
	 * thread: "HOST:PORT" ("[::1]:9100" for an IPv6 literal; port 0:
	 * ephemeral, see mts_metrics_name()), or metrics_fd, a listening
	 * stream socket the program already has, which wins (taken over
	 * when mts_new() succeeds; left open when it fails, like
	 * listen_fds' on a refusal). doc/API.md lists what is served. NULL
	 * and 0 (fd 0 cannot be one): off.
	 */
	const char *metrics_listen;
	int metrics_fd;
	/*
	 * The PROXY protocol, versions 1 and 2 (what HAProxy's send-proxy and
	 * send-proxy-v2 send): with proxy_protocol 1, every connection must
	 * begin with a header, whole in its first bytes and within
	 * proxy_timeout_ms, from a sender proxy_from allows; the header is
	 * read and never reaches the handler, and the client address it
	 * carries is the one max_conns_per_ip counts (a LOCAL or UNKNOWN
	 * header: the socket's own). Any other connection is closed and
	 * counted (mts_worker_stats.proxy_dropped). proxy_from: a list of
	 * ADDRESS[/BITS] and "unix" (a Unix socket's peers), comma-separated;
	 * NULL: "127.0.0.0/8,::1,unix". Read only when proxy_protocol is 1.
	 */
	int proxy_protocol;		/* 0: off, 1: on. 0 */
	const char *proxy_from;		/* NULL */
	unsigned proxy_timeout_ms;	/* 1..3600000. 3000 */
	/*
	 * UDP: with udp 1, each IPv4 and IPv6 address is also served over UDP,
	 * same port, a SO_REUSEPORT socket per worker; datagrams go to the
	 * handler's on_datagram (needed then). Inherited datagram sockets
	 * (listen_fds, told apart by type) are served whatever udp says, one
	 * worker each. Never answered, counted: a datagram over udp_max bytes,
	 * from a guarded source (doc/API.md), past udp_rate/s from its source.
	 */
	int udp;			/* 0: off, 1: on. 0 */
	unsigned udp_max;		/* 1..65535. 65535 */
	unsigned udp_rate;		/* per source (IPv6: a /64), 0: no limit. 100 */
};

void mts_config_defaults(struct mts_config *cfg);

/* The handoff variants mts_new() accepts: i = 0, 1, ... until NULL. */
const char *mts_dispatch_name(unsigned i);
/*
 * Variant i's options, one per line, "KEY=DEFAULT  MIN..MAX  what it
 * sets", into buf (truncated to len, "" if it has none). Returns how many
 * it has, or -1 past the last variant.
 */
int mts_dispatch_options(unsigned i, char *buf, size_t len);
/* Is `dispatch` one mts_new() accepts (NULL: the default, as there)? 0,
 * or -EINVAL with *why saying why. */
int mts_dispatch_check(const char *dispatch, char *why, size_t why_len);

/*
 * The accept strategies, i = 0, 1, ... until NULL:
 *   handoff    the thread in mts_run() accepts, and posts each connection to
 *              a worker (round-robin, or the least loaded: `balance`)
 *   reuseport  each worker accepts on its own sockets (SO_REUSEPORT), no
 *              handoff; the kernel spreads connections by a hash
 *   shared     each worker accepts on the same sockets, no handoff; a new
 *              connection may wake several workers, of which one gets it
 *              (the thundering herd: mts_worker_stats counts the wake-ups
 *              that found nothing)
 */
const char *mts_accept_name(unsigned i);

/*
 * Socket activation (systemd's LISTEN_PID and LISTEN_FDS): the number of
 * listening descriptors this process inherited, which are 3, 4, ...; 0 if
 * none were passed to it, or -EINVAL if the variables are malformed. The
 * variables are removed, so that child processes do not see them.
 */
int mts_inherited_fds(void);

/* A datagram, for mts_handler.on_datagram. */
struct mts_datagram {
	void *const data;		/* what arrived; the answer, in place */
	size_t len;			/* its bytes (0 is a datagram too) */
	size_t cap;			/* bytes data may hold (mts_config.udp_max) */
	const struct sockaddr *peer;	/* its sender */
	socklen_t peer_len;
	unsigned worker;
};

struct mts_handler {
	size_t data_size;	/* bytes of protocol state per connection */
	/*
	 * The connection now belongs to this worker. Return 0, or a negative
	 * errno to have the core close it (on_close is not called then).
	 */
	int (*on_open)(struct mts_conn *c, void *arg);
	/* The server is stopping: stop reading, flush, then mts_conn_finish()
	 * (or mts_conn_close() when nothing can be in flight). */
	void (*on_shutdown)(struct mts_conn *c, void *arg);
	/* Release what on_open acquired; the core then closes the fd. */
	void (*on_close)(struct mts_conn *c, void *arg);
	void *arg;
	/*
	 * Per-worker state, both optional (NULL: none). worker_init runs on
	 * worker `worker`'s thread as it starts, before it serves any
	 * connection or posted call; what it returns is that worker's state,
	 * which the program owns and mts_worker_state() and
	 * mts_conn_worker_state() hand back (base is the worker's loop, for
	 * its own events). worker_fini runs in mts_free(), on that thread,
	 * once the worker has been joined and every connection it served has
	 * been closed (on_close ran): it releases what worker_init made, for
	 * each worker whose worker_init ran.
	 */
	void *(*worker_init)(unsigned worker, struct event_base *base, void *arg);
	void (*worker_fini)(unsigned worker, void *state, void *arg);
	/*
	 * UDP (mts_config.udp): datagram d arrived on worker d->worker's
	 * thread, which owns d until the call returns. Return 1 to answer
	 * its sender with d->data, d->len bytes (rewritten in place as the
	 * protocol likes, up to d->cap), 0 to send nothing. Optional unless
	 * UDP is served.
	 */
	int (*on_datagram)(struct mts_datagram *d, void *worker_state, void *arg);
};

/*
 * Opens the listening sockets and prepares the workers (not started yet).
 * Returns 0 or a negative errno; *why receives a description of what failed
 * ("cannot listen on 127.0.0.1:5555: address already in use"), for the
 * caller's message. -EINVAL means the configuration itself is wrong (a
 * field against the rule above struct mts_config, an unknown dispatch or
 * accept strategy, a balance chosen without "handoff", rings too large for
 * this machine's memory, a name that does not resolve, listen addresses
 * that overlap, an inherited descriptor that is not a listening socket);
 * other errors are the system refusing: an address given that cannot be
 * listened on (-EADDRNOTAVAIL, -EADDRINUSE, ...: each address given must
 * be, and *why names the one that was not), out of descriptors.
 */
int mts_new(struct mts_server **out, const struct mts_config *cfg,
	       const struct mts_handler *handler, char *why, size_t why_len);

/* The listening addresses, as "127.0.0.1:5555" or "[::1]:5555"; an
 * inherited Unix socket as its path, or "@name" in the abstract namespace.
 * mts_udp_name: UDP's, NULL past the last. */
size_t mts_listener_count(const struct mts_server *s);
const char *mts_listener_name(const struct mts_server *s, size_t i);
const char *mts_udp_name(const struct mts_server *s, size_t i);
/* The address of the metrics endpoint's socket i ("127.0.0.1:9100"), or
 * NULL past the last or when metrics are off. */
const char *mts_metrics_name(const struct mts_server *s, size_t i);

/*
 * Starts the workers, then runs the server's control loop on the calling
 * thread (and, with accept "handoff", accepts there) until mts_stop(): then
 * stops accepting, posts "stop" to every worker, joins them and returns 0
 * (or a negative errno if the server could not start).
 *
 * A service manager named by the environment (NOTIFY_SOCKET, systemd's
 * Type=notify; sd_notify(3)) is told READY=1 once the workers are started
 * (the sockets listen since mts_new()), STOPPING=1 as the loop ends, and,
 * if it asks (WATCHDOG_USEC, and WATCHDOG_PID naming this process),
 * WATCHDOG=1 every half of that interval while the loop runs. A send waits
 * while the manager's queue is full; one that fails is logged, and the
 * server runs on. NOTIFY_SOCKET is read at each message: unset it before
 * mts_run() for none. A child of fork() that called mts_after_fork_child()
 * sends none.
 */
int mts_run(struct mts_server *s);

/* Asks mts_run() to finish. Async-signal-safe; any thread. */
void mts_stop(struct mts_server *s);

/* Asks the main thread to log per-worker statistics. Async-signal-safe; any thread. */
void mts_request_stats(struct mts_server *s);

/*
 * What every server program does with signals: SIGINT, SIGTERM and SIGHUP
 * stop the server gracefully (mts_stop); SIGUSR1 logs the statistics
 * (mts_request_stats); SIGPIPE is ignored (a write to a closed socket is
 * an error, not a death). A SIGHUP that was ignored when this is called
 * (nohup) stays ignored. Call it after mts_new(), for one server per
 * process at a time (-EBUSY for a second). The handlers stay installed
 * after mts_free(), doing nothing: a stop signal that comes while the
 * program finishes does not kill it. 0 or a negative errno.
 */
int mts_handle_signals(struct mts_server *s);

/*
 * Frees everything; after mts_run() returned, or instead of it. Not on one
 * of the server's own workers (it would wait for that worker to stop: it
 * aborts with a message). With dispatch "lfq" it waits for liburcu's
 * deferred frees (rcu_barrier() of the urcu-bp flavour, which is
 * process-wide): a program that also uses urcu-bp must not call it inside
 * one of its own read-side sections, nor from a call_rcu() callback.
 *
 * What the caller must order: every other thread's last call into the
 * server (mts_post, mts_workq_submit, mts_stop, ...) returns before
 * mts_free() does, since the memory they use is freed then; join those
 * threads first. Within that, calls may overlap mts_free(): a post that
 * comes while mts_free() cancels what the inboxes hold is refused
 * (-ESHUTDOWN) or cancelled with the rest, never lost, and a thread already
 * inside mts_workq_free() is waited for (one that enters it after
 * mts_free() has begun is not: order it).
 */
void mts_free(struct mts_server *s);

/*
 * fork() without exec. A server's threads are not in the child: the child
 * must not use a server its parent made (let it create its own), and a
 * program that creates servers in a child of fork() (a daemon that forks
 * after it set up, a pre-forking server) calls mts_before_fork() just
 * before fork(), then mts_after_fork_parent() in the parent and
 * mts_after_fork_child() in the child. They repair what liburcu keeps for
 * the whole process (dispatch "lfq" frees its nodes on liburcu's call_rcu
 * thread, which the child lacks: without them, mts_free() of an "lfq"
 * server in the child waits for ever). Not registered with
 * pthread_atfork(): liburcu advises against it, since lfq's deferred frees
 * call the allocator. A program that execs after fork() needs none of this.
 * A child's servers tell the service manager nothing (mts_run()): speaking
 * for the service is the parent's part.
 */
void mts_before_fork(void);
void mts_after_fork_parent(void);
void mts_after_fork_child(void);

/* ---- running code on a worker ------------------------------------------ */

/*
 * A function posted to a worker. It runs exactly once: on the worker's
 * thread, with that worker's event_base and cancelled == 0; or, when the
 * server stops before the worker gets to it, at mts_free(), on the thread
 * that calls it, with base == NULL and cancelled == 1. Either way it is the
 * place to release what `arg` holds: a posted call cannot leak.
 */
typedef void (*mts_call_fn)(struct event_base *base, void *arg, int cancelled);

unsigned mts_worker_count(const struct mts_server *s);
/* Worker `worker`'s state (mts_handler.worker_init), or NULL before it
 * ran. Any thread, from mts_run() until mts_free(); what it points to is
 * the program's, and so is the care another thread takes with it. */
void *mts_worker_state(const struct mts_server *s, unsigned worker);

/*
 * Runs fn on worker `worker`'s thread, through its inbox (the same wait-free
 * path as new connections, in order behind what was posted before). Any
 * thread, from mts_new() on (what is posted before mts_run() runs when the
 * worker starts), that worker's own included: posting never waits for the
 * worker, nor for room in a pipe or a ring (with dispatch "lfq", a thread's
 * first post registers it with liburcu, under a lock a grace period in
 * progress may hold). Returns 0: fn will run or be
 * cancelled, once; or -EINVAL for a worker that does not exist, -ENOMEM,
 * -ENOBUFS when that worker's inbox has no room (dispatch "ring": it holds
 * its size's messages; "lfq": no memory for the call's node; try again
 * later, from a thread that is not that worker, or give up), or
 * -ESHUTDOWN once mts_free() is cancelling what the inboxes hold (after it
 * joined the workers; the cancelled calls, which run inside mts_free(),
 * get it too). On any error fn is not called at all: `arg` is still the
 * caller's. Not async-signal-safe (it allocates). A post from another
 * thread that overlaps mts_free() is refused or cancelled, never lost, but
 * must return before mts_free() does (see mts_free()).
 */
int mts_post(struct mts_server *s, unsigned worker, mts_call_fn fn, void *arg);

/* mts_post() to every worker; returns 0 or the first error (the workers
 * before it got the call, the ones after it did not). */
int mts_post_all(struct mts_server *s, mts_call_fn fn, void *arg);

/* ---- the work queue ------------------------------------------------------ */

/*
 * A pool of threads for jobs an event loop must not run itself (blocking
 * file I/O, DNS, CPU-heavy work). A job's `work` runs on a pool thread; its
 * `done` then runs on the worker named at submission, through that worker's
 * inbox, with the worker's event_base (or, like any posted call, cancelled
 * at mts_free() with base NULL if the server stopped first). Submitting
 * allocates the job's record (malloc(), which may take the allocator's
 * lock), then enqueues it wait-free and posts a semaphore; pool threads take
 * jobs in submission order.
 *
 * Shutdown: mts_workq_free() lets running jobs finish, cancels the ones not
 * started (their `done` runs with cancelled = true, on their worker), and
 * returns once every `done` has run, or, if the server's workers stop
 * first (mts_stop(), on any thread, even while mts_workq_free() waits),
 * once they have: the dones left are then cancelled at mts_free(), like any
 * posted call. Either way every job ends in exactly one `done` call, so
 * whatever `arg` holds can be released there. Call it from a thread that is
 * not one of the server's workers (it waits for the workers to run the
 * completions) nor one of the queue's own pool threads (it would wait for
 * itself): either aborts with a message. Best while the
 * server still runs, e.g. before mts_stop(). A submit that runs at the same
 * time, or later, is refused (-ESHUTDOWN) or, if it got in first, ends in
 * one `done` like any other. The queue's memory is released by mts_free()
 * of its server, which waits for a mts_workq_free() still under way, so `q`
 * stays valid until then.
 */
struct mts_workq;
typedef void (*mts_job_fn)(void *arg);
typedef void (*mts_done_fn)(struct event_base *base, void *arg, int cancelled);

/* Starts `threads` pool threads for server s. Returns 0 or a negative errno. */
int mts_workq_new(struct mts_workq **out, struct mts_server *s, unsigned threads);
/* Any thread. Returns 0, -EINVAL (no such worker), -ENOMEM or -ESHUTDOWN. */
int mts_workq_submit(struct mts_workq *q, unsigned worker, mts_job_fn work,
		     mts_done_fn done, void *arg);
void mts_workq_free(struct mts_workq *q);

/* The index of the worker a connection lives on (for mts_post, mts_workq). */
unsigned mts_conn_worker(const struct mts_conn *c);
/* Its worker's state (mts_handler.worker_init); on that worker. */
void *mts_conn_worker_state(const struct mts_conn *c);

/* Why proxy_protocol closed a connection before the handler saw it. */
enum mts_proxy_drop {
	MTS_PROXY_SOURCE,		/* its sender is not one proxy_from allows */
	MTS_PROXY_INVALID,		/* its first bytes are not a PROXY header */
	MTS_PROXY_PARTIAL,		/* they are a part of one, not all of it;
					 * or it closed, or was reset, before
					 * sending one */
	MTS_PROXY_TIMEOUT,		/* nothing came within proxy_timeout_ms */
	MTS_PROXY_DROPS
};

enum mts_udp_drop {			/* why a datagram that came was not answered */
	MTS_UDP_TRUNCATED,		/* over udp_max: an answer would be cut */
	MTS_UDP_SOURCE,			/* a guarded port or address, or our own port */
	MTS_UDP_DESTINATION,		/* sent to a broadcast or multicast address */
	MTS_UDP_RATE,			/* past udp_rate for its source */
	MTS_UDP_SEND,			/* not sent: no room, no route, a firewall */
	MTS_UDP_DROPS
};

/* What one worker has done so far; any thread, approximate while it runs. */
struct mts_worker_stats {
	unsigned live;			/* connections now */
	uint64_t accepted;		/* connections taken on */
	uint64_t bytes_in, bytes_out;	/* as counted by the protocol */
	uint64_t wakeups;		/* inbox wake-ups received */
	uint64_t wakeups_saved;		/* messages that rode along on another's */
	uint64_t largest_batch;		/* most messages handled in one round */
	uint64_t rounds;		/* inbox rounds (wake-ups and re-arms) */
	uint64_t wouldblock;		/* rounds cut short by a producer mid-enqueue */
	uint64_t refused;		/* posts the inbox refused (a full ring, lfq
					 * out of memory): mts_post's -ENOBUFS, ... */
	uint64_t conns_refused;		/* ... of them, new connections (closed) */
	uint64_t handoff_p50_ns;	/* accept-to-worker latency, percentiles */
	uint64_t handoff_p90_ns;
	uint64_t handoff_p99_ns;
	uint64_t handoff_max_ns;
	uint64_t accept_wakeups;	/* reuseport, shared: accept events handled */
	uint64_t accept_empty;		/* ... that found no connection (the herd) */
	uint64_t handled;		/* inbox messages handled (wakeups_saved is
					 * handled - wakeups - signals that found
					 * the fd full) */
	/* proxy_protocol: headers taken, by version; LOCAL ones among them
	 * (a balancer's health checks); connections closed before the
	 * handler saw them, by enum mts_proxy_drop. */
	uint64_t proxy_v1, proxy_v2, proxy_local;
	uint64_t proxy_dropped[MTS_PROXY_DROPS];
	/* UDP: datagrams read, answers sent, and those not answered by
	 * enum mts_udp_drop (the handler's own choice not to answer is in
	 * none: received - answered - the drops). */
	uint64_t udp_received, udp_answered;
	uint64_t udp_dropped[MTS_UDP_DROPS];
};

int mts_worker_stats(const struct mts_server *s, unsigned worker,
			struct mts_worker_stats *out);

/* For protocol code, on the connection's worker thread. */
void *mts_conn_data(struct mts_conn *c);
int mts_conn_fd(const struct mts_conn *c);
struct event_base *mts_conn_base(const struct mts_conn *c);
/* The idle timeout as a libevent common timeout, or NULL when off. */
const struct timeval *mts_conn_idle_timeout(const struct mts_conn *c);
/* A per-worker scratch buffer, free for use until the callback returns. */
void *mts_conn_scratch(const struct mts_conn *c, size_t *len);
void mts_conn_count_io(struct mts_conn *c, size_t bytes_in, size_t bytes_out);
/* Ends the connection: calls on_close, closes the fd, frees the conn. */
void mts_conn_close(struct mts_conn *c);

/*
 * Ends the connection from the server's side without losing what is in
 * flight (a lingering close): calls on_close, then shuts down the write side
 * (the peer reads everything already written, then EOF), reads and discards
 * what the peer still sends until it closes, for at most linger_ms and
 * linger_bytes, and only then closes the fd. Call it once the output you
 * mean to send is written, whenever the peer may still be sending: server
 * shutdown, an idle timeout, a protocol error. (Closing a socket that holds
 * unread input makes the kernel send a reset, and a reset makes the peer's
 * kernel drop what the peer had not read yet.) A stopping worker waits for
 * lingering connections too, up to shutdown_grace_ms.
 */
void mts_conn_finish(struct mts_conn *c);

#endif
