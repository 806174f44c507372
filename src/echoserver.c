/*
 * echoserver.c - the command line: parse options, set up the process
 * (signals, file-descriptor limit, logging), build the echo handler and the
 * core server, run it. The only place that exits (itself, or through the
 * command-line helpers of cli/cli.h).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "mtserver.h"
#include "cli/cli.h"
#include "echo/echo.h"
#include "usage.h"

#define MAX_LISTEN 16

/* Each connection is a descriptor: allow as many as the hard limit does. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		mts_log(MTS_LOG_WARN, "cannot raise the open-file limit: %s", strerror(errno));
}

/*
 * The library's own name for arg, from the list names(0), names(1), ...;
 * exits 2 with the list if arg is not one of them.
 */
static const char *pick_name(const char *opt, const char *arg, const char *(*names)(unsigned))
{
	char list[128] = "";
	const char *name;
	size_t len = 0;

	for (unsigned i = 0; (name = names(i)) != NULL; i++) {
		if (strcmp(name, arg) == 0)
			return name;
		len += (size_t)snprintf(list + len, len < sizeof(list) ? sizeof(list) - len : 0,
					"%s%s", i ? (names(i + 1) ? ", " : " or ") : "", name);
	}
	cli_usage_error("unknown %s '%s' (%s)", opt, arg, list);
	return NULL;
}

/* --list-dispatch: each variant, then its options, from the library. */
static void list_dispatch(void)
{
	char opts[512];
	const char *name;

	for (unsigned i = 0; (name = mts_dispatch_name(i)) != NULL; i++) {
		printf("%s%s\n", name, i == 0 ? " (default)" : "");
		if (mts_dispatch_options(i, opts, sizeof(opts)) > 0)
			for (char *line = strtok(opts, "\n"); line; line = strtok(NULL, "\n"))
				printf("    %s\n", line);
	}
}

static void list_accept(void)
{
	const char *name;

	for (unsigned i = 0; (name = mts_accept_name(i)) != NULL; i++)
		printf("%s%s\n", name, i == 0 ? " (default)" : "");
}

/*
 * --dispatch NAME[:OPTIONS], with what --ring-size and --spin-us add
 * (`extra`, "size=N,us=N", given as `flags`), as one string in buf, checked
 * by the library; exits 2 naming the flag if it is not one mts_new() takes.
 */
static const char *dispatch_spec(const char *dispatch, const char *extra, const char *flags,
				 char *buf, size_t len)
{
	char name[64], why[256];
	size_t n = strcspn(dispatch, ":");

	int w;

	if (n >= sizeof(name))
		cli_usage_error("unknown --dispatch '%.*s...' (--list-dispatch names them)", 32,
				dispatch);
	snprintf(name, sizeof(name), "%.*s", (int)n, dispatch);
	pick_name("--dispatch", name, mts_dispatch_name);
	if (extra[0] != '\0')
		w = snprintf(buf, len, "%s%s%s", dispatch, dispatch[n] == ':' ? "," : ":", extra);
	else
		w = snprintf(buf, len, "%s", dispatch);
	if (w < 0 || (size_t)w >= len)
		cli_usage_error("--dispatch and its options are too long (at most %zu characters)",
				len - 1);
	if (mts_dispatch_check(buf, why, sizeof(why)) < 0) {
		cli_usage_error("invalid --dispatch '%s'%s%s%s: %s", buf, flags[0] ? " (from " : "",
				flags, flags[0] ? ")" : "", why);
	}
	return buf;
}

enum {
	OPT_IDLE_TIMEOUT = 256,
	OPT_DISPATCH,
	OPT_ACCEPT,
	OPT_BALANCE,
	OPT_HIGH_WM,
	OPT_LOW_WM,
	OPT_GRACE,
	OPT_MAX_PER_IP,
	OPT_SPIN_US,
	OPT_RING_SIZE,
	OPT_LIST_DISPATCH,
	OPT_LIST_ACCEPT,
	OPT_METRICS_LISTEN,
	OPT_PROXY,
	OPT_PROXY_FROM,
	OPT_PROXY_TIMEOUT,
	OPT_UDP,
	OPT_UDP_MAX,
	OPT_UDP_RATE,
};

/* Everything the command line sets. */
struct args {
	struct mts_config cfg;
	struct echo_config echo;
	const char *listen[MAX_LISTEN];
	int inherited[MAX_LISTEN];
	const char *dispatch;
	char port[8], spec[256];
	char extra[128], flags[128];	/* --ring-size, --spin-us: dispatch options */
	bool port_given;
	int level;
};

/* The options that take a number (exits 2 naming the option if it is not
 * one in range); false if opt is not one of them. */
static bool number_option(int opt, const char *arg, struct args *a)
{
	switch (opt) {
	case 'p':
		snprintf(a->port, sizeof(a->port), "%lu", cli_ulong("--port", arg, 0, 65535));
		a->cfg.port = a->port;
		a->port_given = true;
		return true;
	case 't':
		a->cfg.threads = (unsigned)cli_ulong("--threads", arg, 1, 1024);
		return true;
	case 'b':
		a->cfg.backlog = (int)cli_ulong("--backlog", arg, 1, INT_MAX);
		return true;
	case 'c':
		a->cfg.max_conns = (unsigned)cli_ulong("--max-conns", arg, 1, UINT_MAX);
		return true;
	case OPT_IDLE_TIMEOUT:
		a->cfg.idle_timeout_s = (unsigned)cli_ulong("--idle-timeout", arg, 0, 86400 * 365);
		return true;
	case OPT_MAX_PER_IP:
		a->cfg.max_conns_per_ip = (unsigned)cli_ulong("--max-conns-per-ip", arg, 1, UINT_MAX);
		return true;
	case OPT_GRACE:
		a->cfg.shutdown_grace_ms = 1000 * (unsigned)cli_ulong("--grace", arg, 0, 3600);
		a->cfg.linger_ms = a->cfg.shutdown_grace_ms;
		return true;
	case OPT_PROXY_TIMEOUT:
		a->cfg.proxy_timeout_ms = 1000 * (unsigned)cli_ulong("--proxy-timeout", arg, 1, 3600);
		return true;
	case OPT_UDP_MAX:
		a->cfg.udp_max = (unsigned)cli_ulong("--udp-max", arg, 1, 65535);
		return true;
	case OPT_UDP_RATE:
		a->cfg.udp_rate = (unsigned)cli_ulong("--udp-rate", arg, 0, UINT_MAX);
		return true;
	case OPT_HIGH_WM:
		a->echo.high_watermark = cli_ulong("--high-watermark", arg, 1, 1ul << 30);
		return true;
	case OPT_LOW_WM:
		a->echo.low_watermark = cli_ulong("--low-watermark", arg, 0, 1ul << 30);
		return true;
	default:
		return false;
	}
}

/* --ring-size and --spin-us: aliases of a variant's options ("size", "us"). */
static void alias_option(const char *flag, const char *key, const char *arg, struct args *a)
{
	size_t e = strlen(a->extra), f = strlen(a->flags);
	int we = snprintf(a->extra + e, sizeof(a->extra) - e, "%s%s=%s", e ? "," : "", key, arg);
	int wf = snprintf(a->flags + f, sizeof(a->flags) - f, "%s%s %s", f ? " and " : "", flag,
			  arg);

	if (we < 0 || (size_t)we >= sizeof(a->extra) - e || wf < 0 ||
	    (size_t)wf >= sizeof(a->flags) - f)
		cli_usage_error("too many --ring-size and --spin-us values (%s)", flag);
}

/* The options that name something; exits (0) after --help and the lists. */
static void named_option(int opt, const char *arg, char **argv, struct args *a)
{
	switch (opt) {
	case 'l':
		if (a->cfg.n_listen == MAX_LISTEN)
			cli_usage_error("too many --listen addresses (at most %d)", MAX_LISTEN);
		if (arg[0] == '\0')
			cli_usage_error("empty address for --listen");
		a->listen[a->cfg.n_listen++] = arg;
		break;
	case OPT_DISPATCH:
		a->dispatch = arg;	/* checked once all options are read */
		break;
	case OPT_SPIN_US:
		alias_option("--spin-us", "us", arg, a);
		break;
	case OPT_RING_SIZE:
		alias_option("--ring-size", "size", arg, a);
		break;
	case OPT_METRICS_LISTEN:	/* mts_new() checks and opens it */
		if (arg[0] == '\0')
			cli_usage_error("empty address for --metrics-listen");
		a->cfg.metrics_listen = arg;
		break;
	case OPT_UDP:
		a->cfg.udp = 1;
		break;
	case OPT_PROXY:
		a->cfg.proxy_protocol = 1;
		break;
	case OPT_PROXY_FROM:		/* mts_new() checks it */
		if (arg[0] == '\0')
			cli_usage_error("empty list for --proxy-from");
		a->cfg.proxy_from = arg;
		break;
	case OPT_ACCEPT:
		a->cfg.accept = pick_name("--accept", arg, mts_accept_name);
		break;
	case OPT_BALANCE:	/* mts_new() says whether the strategy has a choice */
		if (strcmp(arg, "rr") == 0)
			a->cfg.balance = MTS_BALANCE_RR;
		else if (strcmp(arg, "least") == 0)
			a->cfg.balance = MTS_BALANCE_LEAST;
		else
			cli_usage_error("unknown --balance '%s' (rr or least)", arg);
		break;
	case 'v':
		if (a->level < MTS_LOG_DEBUG)
			a->level++;
		break;
	case 'q':
		a->level = MTS_LOG_ERROR;
		break;
	case 'V':
		printf("echoserver %s (libevent %s)\n", PACKAGE_VERSION, event_get_version());
		exit(0);
	case 'h':
		echoserver_usage(stdout);
		exit(0);
	case OPT_LIST_DISPATCH:
		list_dispatch();
		exit(0);
	case OPT_LIST_ACCEPT:
		list_accept();
		exit(0);
	case ':':
		cli_usage_error("option '%s' needs a value", argv[optind - 1]);
	default:
		/* optopt names a bad short option even inside "-vZ". */
		if (optopt != 0)
			cli_usage_error("unknown option '-%c'", optopt);
		cli_usage_error("unknown option '%s'", argv[optind - 1]);
	}
}

static void parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "backlog", required_argument, NULL, 'b' },
		{ "max-conns", required_argument, NULL, 'c' },
		{ "max-conns-per-ip", required_argument, NULL, OPT_MAX_PER_IP },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "dispatch", required_argument, NULL, OPT_DISPATCH },
		{ "spin-us", required_argument, NULL, OPT_SPIN_US },
		{ "ring-size", required_argument, NULL, OPT_RING_SIZE },
		{ "accept", required_argument, NULL, OPT_ACCEPT },
		{ "balance", required_argument, NULL, OPT_BALANCE },
		{ "high-watermark", required_argument, NULL, OPT_HIGH_WM },
		{ "low-watermark", required_argument, NULL, OPT_LOW_WM },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "list-dispatch", no_argument, NULL, OPT_LIST_DISPATCH },
		{ "list-accept", no_argument, NULL, OPT_LIST_ACCEPT },
		{ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN },
		{ "proxy-protocol", no_argument, NULL, OPT_PROXY },
		{ "proxy-from", required_argument, NULL, OPT_PROXY_FROM },
		{ "proxy-timeout", required_argument, NULL, OPT_PROXY_TIMEOUT },
		{ "udp", no_argument, NULL, OPT_UDP },
		{ "udp-max", required_argument, NULL, OPT_UDP_MAX },
		{ "udp-rate", required_argument, NULL, OPT_UDP_RATE },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	opterr = 0;	/* we print our own messages, naming the option */
	while ((opt = getopt_long(argc, argv, ":p:l:t:b:c:vqVh", longopts, NULL)) != -1)
		if (!number_option(opt, optarg, a))
			named_option(opt, optarg, argv, a);
	if (optind < argc)
		cli_usage_error("unexpected argument '%s'", argv[optind]);
	a->cfg.dispatch = dispatch_spec(a->dispatch, a->extra, a->flags, a->spec,
					sizeof(a->spec));
	if (a->echo.low_watermark > a->echo.high_watermark)
		cli_usage_error("--low-watermark must not exceed --high-watermark");
}

/*
 * Is inherited socket i named "metrics" (FileDescriptorName=metrics in the
 * socket unit)? names is LISTEN_FDNAMES, colon-separated, one per socket.
 */
static bool named_metrics(const char *names, int i)
{
	const char *p = names;

	for (int k = 0; p != NULL && k < i; k++)
		if ((p = strchr(p, ':')) != NULL)
			p++;
	return p != NULL && strncmp(p, "metrics", 7) == 0 && (p[7] == ':' || p[7] == '\0');
}

/* Socket activation: listen on what systemd (or systemd-socket-activate)
 * passed, instead of -l/-p, which then make no sense; a socket named
 * "metrics" serves the metrics instead (--metrics-listen cannot reach out
 * of a unit with PrivateNetwork=yes). */
static void take_inherited(struct args *a)
{
	const char *env = getenv("LISTEN_FDNAMES");
	char names[512];
	int n;

	snprintf(names, sizeof(names), "%s", env != NULL ? env : "");
	n = mts_inherited_fds();	/* which unsets LISTEN_FDNAMES */

	if (n < 0)
		cli_usage_error("malformed LISTEN_FDS from socket activation");
	if (n == 0)
		return;
	if (a->cfg.n_listen > 0 || a->port_given)
		cli_usage_error("-l and -p cannot be used with socket activation "
				"(%d listening sockets were passed in)", n);
	if (n > MAX_LISTEN)
		cli_usage_error("too many sockets from socket activation (at most %d)", MAX_LISTEN);
	for (int i = 0; i < n; i++) {
		if (!named_metrics(names, i)) {
			a->inherited[a->cfg.n_listen_fds++] = 3 + i;	/* from 3 on */
		} else if (a->cfg.metrics_fd > 0 || a->cfg.metrics_listen != NULL) {
			cli_usage_error("two metrics endpoints: --metrics-listen or a second "
					"socket named \"metrics\" from socket activation");
		} else {
			a->cfg.metrics_fd = 3 + i;
		}
	}
	if (a->cfg.n_listen_fds == 0)
		cli_usage_error("socket activation passed only the metrics socket: "
				"nothing to echo on");
	a->cfg.listen_fds = a->inherited;
}

int main(int argc, char **argv)
{
	static struct args a = {
		.echo = { .high_watermark = ECHO_DEFAULT_HIGH_WATERMARK,
			  .low_watermark = ECHO_DEFAULT_LOW_WATERMARK },
		.dispatch = "wfcq",
		.level = MTS_LOG_INFO,
	};
	struct mts_handler handler;
	struct mts_server *srv;
	char why[256];
	int rc;

	cli_set_prog("echoserver");
	mts_config_defaults(&a.cfg);
	a.cfg.listen = a.listen;
	parse_args(argc, argv, &a);
	take_inherited(&a);
	mts_log_set_level((enum mts_log_level)a.level);
	raise_nofile();

	echo_handler(&handler, &a.echo);
	if ((rc = mts_new(&srv, &a.cfg, &handler, why, sizeof(why))) < 0) {
		/* -EINVAL: the arguments do not make sense together (2), not the
		 * system refusing what they ask for (1). */
		if (rc == -EINVAL)
			cli_usage_error("%s", why);
		cli_die("%s", why);
	}
	if ((rc = mts_handle_signals(srv)) < 0) {
		mts_free(srv);
		cli_die("cannot handle signals: %s", strerror(-rc));
	}
	for (size_t i = 0; i < mts_listener_count(srv); i++)
		printf("echoserver: listening on %s\n", mts_listener_name(srv, i));
	for (size_t i = 0; mts_udp_name(srv, i) != NULL; i++)
		printf("echoserver: answering UDP on %s\n", mts_udp_name(srv, i));
	for (size_t i = 0; mts_metrics_name(srv, i) != NULL; i++) {
		const char *name = mts_metrics_name(srv, i);

		if (name[0] == '/' || name[0] == '@')	/* a Unix socket, inherited */
			printf("echoserver: metrics on unix socket %s, GET /metrics\n", name);
		else
			printf("echoserver: metrics on http://%s/metrics\n", name);
	}
	fflush(stdout);
	mts_log(MTS_LOG_INFO, "%u worker threads, accept %s, dispatch %s%s", a.cfg.threads,
		a.cfg.accept, a.cfg.dispatch, a.cfg.n_listen_fds > 0 ?
		", sockets from socket activation" : "");
	rc = mts_run(srv);
	mts_free(srv);
	if (rc < 0)
		cli_die("%s", strerror(-rc));
	mts_log(MTS_LOG_INFO, "stopped");
	return 0;
}
