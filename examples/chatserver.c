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
 * The files: chat_client.c (a client's input and output), chat_room.c (a
 * worker's room, kept as the library's per-worker state, and the traffic
 * between rooms), chat_log.c (a room's log); this one runs the server.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"

struct chat_limits limits = {
	.max_line = 4096,
	.max_queue = 256 * 1024,
	.stall_s = 10,
	.max_lag_ms = 500,
};
struct mts_server *chat_server;

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void usage(FILE *out)
{
	fprintf(out,
"Usage: chatserver [OPTION]...\n"
"Every line a client sends goes to every other client, as \"#ID: line\".\n\n"
"  -p, --port N         TCP port (default 5555; 0 picks a free one)\n"
"  -l, --listen ADDR    address to listen on; repeatable (default 127.0.0.1, ::1)\n"
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
"SIGINT, SIGTERM and SIGHUP stop it gracefully; SIGUSR1 logs statistics.\n");
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

/* The command line into cfg and limits; exits 2 naming what is wrong. */
static void parse_args(int argc, char **argv, struct mts_config *cfg, const char **listen,
		       char *port, size_t port_len)
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
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":p:l:t:qh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			snprintf(port, port_len, "%lu", number("--port", optarg, 0, 65535));
			cfg->port = port;
			break;
		case 'l':
			if (cfg->n_listen == 16) {
				fprintf(stderr, "chatserver: too many --listen addresses\n");
				exit(2);
			}
			listen[cfg->n_listen++] = optarg;
			break;
		case 't': cfg->threads = (unsigned)number("--threads", optarg, 1, 1024); break;
		case O_MAX_LINE: limits.max_line = number("--max-line", optarg, 1, 1 << 20); break;
		case O_MAX_QUEUE:
			limits.max_queue = number("--max-queue", optarg, 1024, 1 << 30);
			break;
		case O_STALL: limits.stall_s = (unsigned)number("--stall", optarg, 1, 86400); break;
		case O_MAX_LAG:
			limits.max_lag_ms = (unsigned)number("--max-lag", optarg, 1, 3600000);
			break;
		case 'q': mts_log_set_level(MTS_LOG_ERROR); break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "chatserver: unknown option or missing value '%s'\n",
				argv[optind - 1]);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "chatserver: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	/* The longest line, with its "#ID: " and newline, must fit in a queue. */
	if (limits.max_line + 64 > limits.max_queue) {
		fprintf(stderr, "chatserver: --max-line %zu does not fit in --max-queue %zu "
			"(it must be at most --max-queue - 64)\n", limits.max_line,
			limits.max_queue);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	const char *listen[16];
	struct mts_config cfg;
	struct mts_handler h = {
		.data_size = sizeof(struct client),
		.on_open = chat_on_open,
		.on_shutdown = chat_on_shutdown,
		.on_close = chat_on_close,
		.worker_init = chat_room_new,	/* each worker's room */
		.worker_fini = chat_room_free,
	};
	char port[8], why[256];
	int rc;

	mts_config_defaults(&cfg);
	cfg.listen = listen;
	parse_args(argc, argv, &cfg, listen, port, sizeof(port));
	if ((rc = mts_new(&chat_server, &cfg, &h, why, sizeof(why))) < 0) {
		fprintf(stderr, "chatserver: %s\n", why);
		return rc == -EINVAL ? 2 : 1;	/* -EINVAL: the arguments conflict */
	}
	if ((rc = mts_handle_signals(chat_server)) < 0) {
		fprintf(stderr, "chatserver: cannot handle signals: %s\n", strerror(-rc));
		mts_free(chat_server);
		return 1;
	}
	for (size_t i = 0; i < mts_listener_count(chat_server); i++)
		printf("chatserver: listening on %s\n", mts_listener_name(chat_server, i));
	fflush(stdout);
	rc = mts_run(chat_server);
	mts_free(chat_server);		/* the rooms go last: chat_room_free */
	return rc < 0 ? 1 : 0;
}
