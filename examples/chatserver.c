/*
 * chatserver.c - a line-based broadcast server on libmtserver: every
 * complete line a client sends goes to every other connected client,
 * whichever worker it lives on, as "#ID: line".
 *
 * How a line travels: the sender's worker cuts it out of the sender's input,
 * wraps it in one reference-counted message, and mts_post()s it to every
 * worker; each worker appends it to the output of its own clients. So every
 * worker's inbox has many producers (all the other workers), which is what
 * the wait-free inbox is for. Each worker's list of clients is touched only
 * by that worker.
 *
 * Memory is bounded whatever clients do:
 *  - input: a line longer than --max-line is refused with a notice to its
 *    sender and discarded up to its newline; input never holds more;
 *  - backpressure: a line is shared, by reference, by every receiver's
 *    output buffer, and lives until the last receiver has sent it. Each
 *    sender counts the bytes of its lines still alive; past --max-queue / 2
 *    its worker stops reading from it, and the worker that frees the line
 *    that brings it under --max-queue / 4 posts "resume" to the sender's
 *    worker. So a slow reader slows the senders down instead of growing
 *    buffers, and one sender alone can never fill a reader's queue;
 *  - a client that does not read at all would stall the senders for good, so
 *    it is disconnected, releasing its lines, when its queue has not moved
 *    for --stall seconds (each worker sweeps its clients once a second; the
 *    sweepers are posted to the workers at start). As a last resort (many
 *    senders flooding at once), a queue past --max-queue is disconnected too,
 *    with a notice (an IRC server's "SendQ exceeded").
 *
 *   chatserver [-p PORT] [-l ADDR]... [-t THREADS] [--max-line N] [--max-queue N] [-q]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "mtserver.h"

/*
 * A sender's flow-control state. It outlives its client while lines of the
 * client are still on their way (refs: the client, and each such line).
 */
struct sender {
	atomic_uint refs;
	atomic_size_t alive;		/* bytes of its lines not yet sent to everyone */
	atomic_bool paused;		/* its worker stopped reading it; see below */
	unsigned worker;
	struct client *client;		/* NULL once closed; its worker only */
};

struct client {
	struct mts_conn *conn;
	struct sender *snd;
	struct event ev;
	short waiting;			/* EV_READ/EV_WRITE currently armed */
	unsigned id;
	struct evbuffer *in;		/* a partial line, at most max_line bytes */
	struct evbuffer *out;		/* queued output, at most max_queue bytes */
	bool discarding;		/* inside an over-long line: drop to its newline */
	uint64_t stuck_since_ms;	/* output pending and not moving since, or 0 */
	bool closing;			/* flush what is queued, then close */
	TAILQ_ENTRY(client) link;	/* in its worker's list; that worker only */
};

TAILQ_HEAD(client_list, client);

/*
 * A line on its way to every worker: one block holding the text and one slot
 * per worker (what is posted to that worker). Freed by the last worker done
 * with it; `refs` orders every worker's reads before the free.
 */
struct line;
struct slot {
	struct line *line;
	unsigned worker;
};
struct line {
	atomic_uint refs;		/* one per worker delivery, one per receiver */
	unsigned sender;
	struct sender *snd;
	size_t len;
	char *text;			/* "#ID: ...\n", after the slots */
	struct slot slots[];
};

static struct mts_server *server;
static struct client_list *lists;	/* one per worker, indexed by worker */
static atomic_uint next_id = 1;
static size_t max_line = 4096, max_queue = 256 * 1024;
static unsigned stall_s = 10;
static struct event **sweepers;		/* one per worker, on that worker's base */

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

static void rearm(struct client *cl)
{
	short want = cl->closing || atomic_load(&cl->snd->paused) ? 0 : EV_READ;

	if (evbuffer_get_length(cl->out) > 0) {
		want |= EV_WRITE;
		if (cl->stuck_since_ms == 0)
			cl->stuck_since_ms = now_ms();
	} else {
		cl->stuck_since_ms = 0;
	}
	if (want == cl->waiting)
		return;
	if (cl->waiting)
		event_del(&cl->ev);
	cl->waiting = want;
	if (want == 0) {
		if (cl->closing)
			mts_conn_close(cl->conn);	/* closing and flushed */
		return;				/* paused: nothing to wait for */
	}
	event_assign(&cl->ev, mts_conn_base(cl->conn), mts_conn_fd(cl->conn),
		     want | EV_PERSIST, on_event, cl);
	event_add(&cl->ev, NULL);
}

static void say(struct client *cl, const char *text)
{
	evbuffer_add(cl->out, text, strlen(text));
}

/* On the sender's worker: reading from it may go on. */
static void resume(struct event_base *base, void *arg)
{
	struct sender *snd = arg;

	if (snd->client != NULL)
		rearm(snd->client);
	sender_unref(snd);
}

/* Any worker: the last reference to a line is gone. */
static void release(struct line *ln)
{
	struct sender *snd = ln->snd;
	size_t before;

	if (atomic_fetch_sub_explicit(&ln->refs, 1, memory_order_acq_rel) != 1)
		return;
	before = atomic_fetch_sub(&snd->alive, ln->len);
	/*
	 * Paired with pause_if_flooding(): that side sets `paused` and then
	 * reads `alive`; this side lowers `alive` and then takes `paused`. Both
	 * sequentially consistent, so one of the two sees the other: a pause
	 * that races with the last release is always undone by someone.
	 */
	if (before - ln->len < max_queue / 4 && atomic_exchange(&snd->paused, false)) {
		atomic_fetch_add(&snd->refs, 1);
		if (mts_post(server, snd->worker, resume, snd) != 0)
			sender_unref(snd);
	}
	sender_unref(snd);
	free(ln);
}

/* evbuffer_add_reference's cleanup: a receiver is done with the line. */
static void line_sent(const void *data, size_t len, void *arg)
{
	release(arg);
}

/* On the sender's worker, after it queued lines. */
static void pause_if_flooding(struct client *cl)
{
	struct sender *snd = cl->snd;

	if (atomic_load(&snd->alive) <= max_queue / 2)
		return;
	atomic_store(&snd->paused, true);
	if (atomic_load(&snd->alive) < max_queue / 4)
		atomic_store(&snd->paused, false);	/* released meanwhile */
}

/* On each worker: hand the line to this worker's clients. */
static void deliver(struct event_base *base, void *arg)
{
	struct slot *slot = arg;
	struct line *ln = slot->line;
	struct client *cl, *next;

	for (cl = TAILQ_FIRST(&lists[slot->worker]); cl != NULL; cl = next) {
		next = TAILQ_NEXT(cl, link);
		if (cl->id == ln->sender || cl->closing)
			continue;
		if (evbuffer_get_length(cl->out) + ln->len > max_queue) {
			/* It does not read: bounded, so it goes. */
			say(cl, "* disconnected: send queue full (you are not reading)\n");
			cl->closing = true;
			rearm(cl);
			continue;
		}
		/* Shared, not copied: the line lives until every receiver sent it. */
		atomic_fetch_add(&ln->refs, 1);
		if (evbuffer_add_reference(cl->out, ln->text, ln->len, line_sent, ln) != 0)
			release(ln);
		rearm(cl);
	}
	release(ln);
}

/*
 * Sends the next `len` bytes of from->in, plus its newline, to everyone.
 * The bytes are copied once, straight into the shared line. Returns false
 * only when out of memory (the line is then dropped from the input).
 */
static bool broadcast(struct client *from, size_t len)
{
	unsigned n = mts_worker_count(server);
	size_t room = len + 32;
	struct line *ln = malloc(sizeof(*ln) + n * sizeof(struct slot) + room);
	int prefix;

	if (ln == NULL) {
		evbuffer_drain(from->in, len + 1);
		return false;
	}
	ln->sender = from->id;
	ln->snd = from->snd;
	atomic_fetch_add(&from->snd->refs, 1);
	ln->text = (char *)&ln->slots[n];
	prefix = snprintf(ln->text, room, "#%u: ", from->id);
	evbuffer_remove(from->in, ln->text + prefix, len + 1);	/* with its '\n' */
	ln->len = (size_t)prefix + len + 1;
	if (len > 0 && ln->text[ln->len - 2] == '\r') {		/* CR LF -> LF */
		ln->text[ln->len - 2] = '\n';
		ln->len--;
	}
	atomic_fetch_add(&from->snd->alive, ln->len);
	atomic_init(&ln->refs, n);
	for (unsigned w = 0; w < n; w++) {
		ln->slots[w] = (struct slot){ .line = ln, .worker = w };
		if (mts_post(server, w, deliver, &ln->slots[w]) != 0)
			release(ln);	/* that worker will not see it */
	}
	return true;
}

/* Cuts complete lines out of cl->in. Returns false if the client must go. */
static bool take_lines(struct client *cl)
{
	for (;;) {
		struct evbuffer_ptr eol = evbuffer_search_eol(cl->in, NULL, NULL, EVBUFFER_EOL_LF);
		size_t len;

		if (eol.pos < 0) {
			/* No newline yet: refuse to hold more than max_line. */
			if (evbuffer_get_length(cl->in) > max_line) {
				if (!cl->discarding)
					say(cl, "* error: line too long, discarded\n");
				cl->discarding = true;
				evbuffer_drain(cl->in, evbuffer_get_length(cl->in));
			}
			return true;
		}
		len = (size_t)eol.pos;
		if (cl->discarding || len > max_line) {
			if (!cl->discarding)
				say(cl, "* error: line too long, discarded\n");
			cl->discarding = false;
			evbuffer_drain(cl->in, len + 1);
			continue;
		}
		if (!broadcast(cl, len))
			return false;
	}
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	struct client *cl = arg;
	int n;

	if (what & EV_WRITE) {
		n = evbuffer_write(cl->out, fd);
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			mts_conn_close(cl->conn);
			return;
		}
		if (n > 0)
			cl->stuck_since_ms = 0;		/* moving again */
	}
	if ((what & EV_READ) && !cl->closing) {
		/* Read at most what could complete a line, so input stays bounded. */
		n = evbuffer_read(cl->in, fd, (int)(max_line + 1));
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			mts_conn_close(cl->conn);
			return;
		}
		if (n > 0 && !take_lines(cl)) {
			mts_conn_close(cl->conn);
			return;
		}
		pause_if_flooding(cl);
	}
	rearm(cl);
}

static int on_open(struct mts_conn *c, void *arg)
{
	struct client *cl = mts_conn_data(c);
	char hello[64];

	cl->conn = c;
	cl->id = atomic_fetch_add(&next_id, 1);
	cl->in = evbuffer_new();
	cl->out = evbuffer_new();
	cl->snd = calloc(1, sizeof(*cl->snd));
	if (cl->in == NULL || cl->out == NULL || cl->snd == NULL) {
		if (cl->in) evbuffer_free(cl->in);
		if (cl->out) evbuffer_free(cl->out);
		free(cl->snd);
		return -ENOMEM;
	}
	atomic_init(&cl->snd->refs, 1);
	cl->snd->worker = mts_conn_worker(c);
	cl->snd->client = cl;
	TAILQ_INSERT_TAIL(&lists[mts_conn_worker(c)], cl, link);
	snprintf(hello, sizeof(hello), "* you are #%u\n", cl->id);
	say(cl, hello);
	rearm(cl);
	return 0;
}

static void on_shutdown(struct mts_conn *c, void *arg)
{
	struct client *cl = mts_conn_data(c);

	say(cl, "* server shutting down\n");
	cl->closing = true;
	rearm(cl);
}

static void on_close(struct mts_conn *c, void *arg)
{
	struct client *cl = mts_conn_data(c);

	TAILQ_REMOVE(&lists[mts_conn_worker(c)], cl, link);
	if (cl->waiting)
		event_del(&cl->ev);
	evbuffer_free(cl->in);
	evbuffer_free(cl->out);		/* releases the lines it still referenced */
	cl->snd->client = NULL;
	sender_unref(cl->snd);
}

/* Once a second on each worker: disconnect clients whose output is stuck. */
static void sweep(evutil_socket_t fd, short what, void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;
	struct client *cl, *next;
	uint64_t now = now_ms();

	for (cl = TAILQ_FIRST(&lists[w]); cl != NULL; cl = next) {
		next = TAILQ_NEXT(cl, link);
		if (cl->stuck_since_ms != 0 && now - cl->stuck_since_ms > stall_s * 1000ull)
			mts_conn_close(cl->conn);	/* it cannot read a notice anyway */
	}
}

/* Posted to every worker at start: install its sweeper on its own base. */
static void start_sweeper(struct event_base *base, void *arg)
{
	static const struct timeval second = { 1, 0 };
	unsigned w = (unsigned)(uintptr_t)arg;

	sweepers[w] = event_new(base, -1, EV_PERSIST, sweep, arg);
	if (sweepers[w] != NULL)
		event_add(sweepers[w], &second);
}

static void on_signal(int sig)
{
	if (server != NULL)
		mts_stop(server);
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
"      --max-queue N    output a client may have queued (default 262144)\n"
"      --stall SECS     disconnect a client whose output has not moved that long\n"
"                       (default 10)\n"
"  -q, --quiet          only errors\n"
"  -h, --help           this help\n");
}

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
	enum { O_MAX_LINE = 256, O_MAX_QUEUE, O_STALL };
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-line", required_argument, NULL, O_MAX_LINE },
		{ "max-queue", required_argument, NULL, O_MAX_QUEUE },
		{ "stall", required_argument, NULL, O_STALL },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen[16];
	struct mts_config cfg;
	struct mts_handler h = { .data_size = sizeof(struct client), .on_open = on_open,
				 .on_shutdown = on_shutdown, .on_close = on_close };
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	char port[8], why[256];
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
	rc = mts_new(&server, &cfg, &h, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "chatserver: %s\n", why);
		return 1;
	}
	lists = calloc(mts_worker_count(server), sizeof(*lists));
	sweepers = calloc(mts_worker_count(server), sizeof(*sweepers));
	for (unsigned w = 0; lists != NULL && w < mts_worker_count(server); w++) {
		TAILQ_INIT(&lists[w]);
		/* Queued now, run by each worker as soon as its loop starts. */
		mts_post(server, w, start_sweeper, (void *)(uintptr_t)w);
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < mts_listener_count(server); i++)
		printf("chatserver: listening on %s\n", mts_listener_name(server, i));
	fflush(stdout);
	rc = lists != NULL && sweepers != NULL ? mts_run(server) : -ENOMEM;
	/* The workers are joined: their bases are this thread's until mts_free. */
	for (unsigned w = 0; sweepers != NULL && w < mts_worker_count(server); w++)
		if (sweepers[w] != NULL)
			event_free(sweepers[w]);
	mts_free(server);
	free(sweepers);
	free(lists);
	return rc < 0 ? 1 : 0;
}
