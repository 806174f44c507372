/*
 * handoff_bench.c - what does handing a message to another thread's event
 * loop cost? A producer thread (the acceptor's role) posts to W worker
 * threads, each running a real libevent event_base with the variant's inbox,
 * the same code the server uses (src/core/handoff/inbox.h). Each message carries the
 * time taken just before it was posted; the worker's handler records the
 * difference in a log-bucketed histogram (within 0.4%).
 *
 * Variants: wfcq, mutex-eventfd, mutex-pipe (the inbox variants) and
 * floor-eventfd, a reference with no queue at all: the producer stores the
 * time in one shared slot and writes an eventfd; the worker reads it. It can
 * carry one message at a time, so it runs in idle mode only.
 *
 * Modes:
 *   idle   one message at a time; the next only after the previous one was
 *          handled and a gap (--gap-us) let the worker fall asleep again:
 *          the cost of waking a sleeping loop
 *   burst  as fast as the producer can post (at most --inflight unhandled
 *          per worker): throughput, and queueing delay under load
 *   rate   a fixed offered rate (--rate), open loop: each message is stamped
 *          with the time it was due, not the time it was sent, so a slow
 *          handoff cannot hide by delaying the producer
 *
 * With no --variant and no --mode it runs every variant in every mode,
 * interleaved (A B C A B C ...), --repeat times, and then prints the median
 * of each figure over the repetitions.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli/cli.h"
#include "histogram.h"
#include "inbox.h"
#include "wakeup.h"

#define MAX_WORKERS 64
#define MAX_RUNS 64

/*
 * The variants measured: every inbox variant, numbered as inbox.h numbers
 * them (so a new one is measured without a change here), then the floor.
 */
enum variant { V_FLOOR = INBOX_N_VARIANTS, N_VARIANTS };
enum mode { M_IDLE, M_BURST, M_RATE, N_MODES };

static const char *variant_names[N_VARIANTS];	/* filled by main() from inbox.h */
static const char *const mode_names[N_MODES] = { "idle", "burst", "rate" };

struct options {
	double seconds;
	unsigned workers;
	unsigned repeat;
	unsigned inflight;
	double rate;
	unsigned gap_us;
	bool pin, csv;
	int variant;		/* -1: all */
	int mode;		/* -1: all */
};

enum { MSG_DATA = 1, MSG_QUIT };

struct bench_msg {
	struct inbox_msg m;
	uint64_t stamp_ns;	/* written by the producer before posting */
};

struct bworker {
	unsigned id;
	int cpu;			/* -1: not pinned */
	pthread_t thread;
	struct event_base *base;	/* the worker thread's alone once it runs */
	struct inbox *inbox;		/* queue variants */
	struct wakeup floor_wake;	/* floor-eventfd */
	struct event *floor_ev;
	atomic_uint_fast64_t floor_stamp;	/* producer -> worker, release/acquire */
	uint64_t floor_signals;		/* worker only */
	bool floor_quit;		/* worker only: set when the quit stamp arrives */
	struct histogram hist;		/* worker writes; main reads after join */
	/*
	 * Messages handled: the worker stores it (release) after it is done with
	 * the message; the producer loads it (acquire) before reusing the slot.
	 */
	_Alignas(64) atomic_uint_fast64_t handled;
	_Alignas(64) struct bench_msg *ring;	/* producer only from here */
	uint64_t posted;
	struct bench_msg quit_msg;
};

struct result {
	enum variant variant;
	enum mode mode;
	unsigned workers;
	uint64_t messages;
	double seconds;
	double msgs_per_s;
	uint64_t p50, p90, p99, p999, max;
	double wakeups_per_msg;
	uint64_t wouldblock;
};

static struct options opt = {
	.seconds = 1.0, .workers = 1, .repeat = 3, .inflight = 4096,
	.rate = 100000, .gap_us = 20, .variant = -1, .mode = -1,
};

static void pin_to(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		fprintf(stderr, "handoff-bench: cannot pin to CPU %d\n", cpu);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ---- the worker side ------------------------------------------------ */

static inline void handled_one(struct bworker *w)
{
	atomic_store_explicit(&w->handled,
		atomic_load_explicit(&w->handled, memory_order_relaxed) + 1,
		memory_order_release);
}

static void on_msg(struct inbox_msg *msg, void *arg)
{
	struct bworker *w = arg;
	struct bench_msg *bm = (struct bench_msg *)msg;

	if (msg->kind == MSG_QUIT) {
		event_base_loopbreak(w->base);
		return;
	}
	hist_record(&w->hist, clock_now_ns() - bm->stamp_ns);
	handled_one(w);
}

static void on_floor(evutil_socket_t fd, short what, void *arg)
{
	struct bworker *w = arg;
	uint64_t stamp;

	w->floor_signals += wakeup_drain(&w->floor_wake, NULL);
	stamp = atomic_load_explicit(&w->floor_stamp, memory_order_acquire);
	if (stamp == UINT64_MAX) {
		event_base_loopbreak(w->base);
		return;
	}
	hist_record(&w->hist, clock_now_ns() - stamp);
	handled_one(w);
}

static void *worker_main(void *arg)
{
	struct bworker *w = arg;

	pin_to(w->cpu);
	event_base_dispatch(w->base);
	return NULL;
}

static void worker_setup(struct bworker *w, enum variant v, unsigned id)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->cpu = opt.pin ? (int)((1 + id) % (unsigned)(ncpu > 0 ? ncpu : 1)) : -1;
	hist_reset(&w->hist);
	/* Created here, run only by the worker thread from worker_main() on. */
	w->base = event_base_new();
	if (w->base == NULL)
		cli_die("cannot create an event_base");
	if (v == V_FLOOR) {
		if (wakeup_init(&w->floor_wake, WAKEUP_EVENTFD) < 0)
			cli_die("cannot create an eventfd");
		w->floor_ev = event_new(w->base, wakeup_fd(&w->floor_wake), EV_READ | EV_PERSIST,
					on_floor, w);
		if (w->floor_ev == NULL || event_add(w->floor_ev, NULL) == -1)
			cli_die("cannot register the eventfd");
	} else if (inbox_new(&w->inbox, (enum inbox_variant)v, w->base, on_msg, w, 64) < 0) {
		cli_die("cannot create an inbox");
	}
	w->ring = calloc(opt.inflight, sizeof(*w->ring));
	if (w->ring == NULL)
		cli_die("out of memory");
	for (unsigned i = 0; i < opt.inflight; i++)
		w->ring[i].m.kind = MSG_DATA;
	w->quit_msg.m.kind = MSG_QUIT;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		cli_die("cannot start a worker thread");
}

static void worker_teardown(struct bworker *w, enum variant v, struct inbox_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (v == V_FLOOR) {
		atomic_store_explicit(&w->floor_stamp, UINT64_MAX, memory_order_release);
		wakeup_signal(&w->floor_wake);
	} else {
		inbox_post(w->inbox, &w->quit_msg.m);
	}
	pthread_join(w->thread, NULL);
	if (v == V_FLOOR) {
		st->wakeups = w->floor_signals;
		event_free(w->floor_ev);
		wakeup_close(&w->floor_wake);
	} else {
		inbox_get_stats(w->inbox, st);
		inbox_free(w->inbox, NULL, NULL);
	}
	event_base_free(w->base);
	free(w->ring);
}

/* ---- the producer side ---------------------------------------------- */

static inline uint64_t handled_of(struct bworker *w)
{
	return atomic_load_explicit(&w->handled, memory_order_acquire);
}

/* One message to worker w, stamped `stamp`; waits for a free slot. */
static void post_one(struct bworker *w, enum variant v, uint64_t stamp)
{
	struct bench_msg *m;

	while (w->posted - handled_of(w) >= opt.inflight)
		cpu_relax();
	if (v == V_FLOOR) {
		atomic_store_explicit(&w->floor_stamp, stamp, memory_order_release);
		wakeup_signal(&w->floor_wake);
	} else {
		m = &w->ring[w->posted % opt.inflight];
		m->stamp_ns = stamp;
		inbox_post(w->inbox, &m->m);
	}
	w->posted++;
}

static void wait_handled(struct bworker *w)
{
	uint64_t give_up = clock_now_ns() + 10000000000ull;

	while (handled_of(w) != w->posted) {
		cpu_relax();
		if (clock_now_ns() > give_up)
			cli_die("worker %u stalled: %llu of %llu messages handled (a lost wake-up?)",
			    w->id, (unsigned long long)handled_of(w), (unsigned long long)w->posted);
	}
}

static void spin_until(uint64_t t)
{
	while (clock_now_ns() < t)
		cpu_relax();
}

static void run_one(enum variant v, enum mode mode, struct result *r)
{
	static struct bworker workers[MAX_WORKERS];
	static struct histogram all;
	unsigned nw = opt.workers;
	uint64_t start, deadline, end, i = 0, total = 0, wakeups = 0, wouldblock = 0;
	uint64_t interval = (uint64_t)(1e9 / opt.rate);

	for (unsigned k = 0; k < nw; k++)
		worker_setup(&workers[k], v, k);
	pin_to(opt.pin ? 0 : -1);
	/* Everyone is in its loop once one message each has gone through. */
	for (unsigned k = 0; k < nw; k++) {
		post_one(&workers[k], v, clock_now_ns());
		wait_handled(&workers[k]);
		hist_reset(&workers[k].hist);
	}

	start = clock_now_ns();
	deadline = start + (uint64_t)(opt.seconds * 1e9);
	switch (mode) {
	case M_IDLE:
		for (uint64_t now = start; now < deadline; now = clock_now_ns(), i++) {
			struct bworker *w = &workers[i % nw];
			post_one(w, v, clock_now_ns());
			wait_handled(w);
			spin_until(clock_now_ns() + opt.gap_us * 1000ull);
		}
		break;
	case M_BURST:
		for (;; i++) {
			if ((i & 63) == 0 && clock_now_ns() >= deadline)
				break;
			post_one(&workers[i % nw], v, clock_now_ns());
		}
		break;
	case M_RATE:
		for (uint64_t due = start; due < deadline; due += interval, i++) {
			spin_until(due);
			post_one(&workers[i % nw], v, due);
		}
		break;
	default:
		break;
	}
	for (unsigned k = 0; k < nw; k++)
		wait_handled(&workers[k]);
	end = clock_now_ns();

	hist_reset(&all);
	for (unsigned k = 0; k < nw; k++) {
		struct inbox_stats st;

		total += workers[k].posted - 1;		/* less the start-up message */
		worker_teardown(&workers[k], v, &st);
		hist_merge(&all, &workers[k].hist);
		/* The start-up and the quit message each found the worker idle
		 * and cost exactly one wake-up, in every variant. */
		wakeups += st.wakeups >= 2 ? st.wakeups - 2 : 0;
		wouldblock += st.wouldblock;
	}
	*r = (struct result){
		.variant = v, .mode = mode, .workers = nw, .messages = total,
		.seconds = (double)(end - start) / 1e9,
		.p50 = hist_quantile(&all, 0.50), .p90 = hist_quantile(&all, 0.90),
		.p99 = hist_quantile(&all, 0.99), .p999 = hist_quantile(&all, 0.999),
		.max = hist_max(&all), .wouldblock = wouldblock,
	};
	r->msgs_per_s = r->seconds > 0 ? (double)total / r->seconds : 0;
	r->wakeups_per_msg = total ? (double)wakeups / (double)total : 0;
}

/* ---- output ----------------------------------------------------------- */

static void print_header(void)
{
	if (opt.csv)
		printf("variant,mode,workers,messages,seconds,msgs_per_s,p50_ns,p90_ns,p99_ns,"
		       "p999_ns,max_ns,wakeups_per_msg,wouldblock,run\n");
	else
		printf("%-14s %-6s %3s %10s %12s %8s %8s %8s %9s %10s %9s  %s\n", "variant", "mode",
		       "W", "messages", "msgs/s", "p50 ns", "p90 ns", "p99 ns", "p99.9 ns",
		       "max ns", "wake/msg", "run");
	fflush(stdout);
}

static void print_result(const struct result *r, const char *run)
{
	if (opt.csv)
		printf("%s,%s,%u,%llu,%.3f,%.0f,%llu,%llu,%llu,%llu,%llu,%.4f,%llu,%s\n",
		       variant_names[r->variant], mode_names[r->mode], r->workers,
		       (unsigned long long)r->messages, r->seconds, r->msgs_per_s,
		       (unsigned long long)r->p50, (unsigned long long)r->p90,
		       (unsigned long long)r->p99, (unsigned long long)r->p999,
		       (unsigned long long)r->max, r->wakeups_per_msg,
		       (unsigned long long)r->wouldblock, run);
	else
		printf("%-14s %-6s %3u %10llu %12.0f %8llu %8llu %8llu %9llu %10llu %9.4f  %s\n",
		       variant_names[r->variant], mode_names[r->mode], r->workers,
		       (unsigned long long)r->messages, r->msgs_per_s,
		       (unsigned long long)r->p50, (unsigned long long)r->p90,
		       (unsigned long long)r->p99, (unsigned long long)r->p999,
		       (unsigned long long)r->max, r->wakeups_per_msg, run);
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Each figure's median over the repetitions, figure by figure. */
static double median_of(const struct result *rs, unsigned n, size_t off, bool is_u64)
{
	double v[MAX_RUNS];

	for (unsigned i = 0; i < n; i++) {
		const char *p = (const char *)&rs[i] + off;
		v[i] = is_u64 ? (double)*(const uint64_t *)p : *(const double *)p;
	}
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_medians(const struct result *rs, unsigned n)
{
	struct result m = rs[0];

#define MED_U64(f) m.f = (uint64_t)median_of(rs, n, offsetof(struct result, f), true)
#define MED_DBL(f) m.f = median_of(rs, n, offsetof(struct result, f), false)
	MED_U64(messages); MED_U64(p50); MED_U64(p90); MED_U64(p99); MED_U64(p999);
	MED_U64(max); MED_U64(wouldblock);
	MED_DBL(seconds); MED_DBL(msgs_per_s); MED_DBL(wakeups_per_msg);
#undef MED_U64
#undef MED_DBL
	print_result(&m, "median");
}

/* ---- command line ----------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
"Usage: handoff-bench [OPTION]...\n"
"Measures the cost of handing a message to another thread's libevent loop.\n"
"\n"
"  --variant NAME   wfcq, mutex-eventfd, mutex-pipe, floor-eventfd (default: all)\n"
"  --mode NAME      idle, burst, rate (default: all)\n"
"  --seconds S      length of each run (default 1)\n"
"  --workers N      worker threads (default 1)\n"
"  --repeat N       runs of each combination, interleaved (default 3)\n"
"  --rate R         messages per second offered in rate mode (default 100000)\n"
"  --gap-us N       idle mode: pause between messages (default 20)\n"
"  --inflight N     at most N unhandled messages per worker (default 4096)\n"
"  --pin            pin the producer to CPU 0, worker i to CPU i+1 (mod CPUs)\n"
"  --csv            machine-readable output\n"
"  -h, --help       this help\n"
"\n"
"Latency is from just before the post to the worker's handler (rate mode:\n"
"from when the message was due). floor-eventfd has no queue and runs in idle\n"
"mode only. With --repeat > 1 each combination ends with a 'median' row.\n");
}

static int pick(const char *what, const char *arg, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(arg, names[i]) == 0)
			return i;
	if (strcmp(arg, "all") == 0)
		return -1;
	cli_bad(what, arg);
}

static void parse(int argc, char **argv)
{
	enum { O_VARIANT = 256, O_MODE, O_SECONDS, O_WORKERS, O_REPEAT, O_RATE, O_GAP,
	       O_INFLIGHT, O_PIN, O_CSV };
	static const struct option longopts[] = {
		{ "variant", required_argument, NULL, O_VARIANT },
		{ "mode", required_argument, NULL, O_MODE },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "repeat", required_argument, NULL, O_REPEAT },
		{ "rate", required_argument, NULL, O_RATE },
		{ "gap-us", required_argument, NULL, O_GAP },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "pin", no_argument, NULL, O_PIN },
		{ "csv", no_argument, NULL, O_CSV },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case O_VARIANT: opt.variant = pick("--variant", optarg, variant_names, N_VARIANTS); break;
		case O_MODE: opt.mode = pick("--mode", optarg, mode_names, N_MODES); break;
		case O_SECONDS: opt.seconds = cli_double("--seconds", optarg, 0.01, 3600); break;
		case O_WORKERS: opt.workers = (unsigned)cli_ulong("--workers", optarg, 1, MAX_WORKERS); break;
		case O_REPEAT: opt.repeat = (unsigned)cli_ulong("--repeat", optarg, 1, MAX_RUNS); break;
		case O_RATE: opt.rate = cli_double("--rate", optarg, 1, 1e9); break;
		case O_GAP: opt.gap_us = (unsigned)cli_ulong("--gap-us", optarg, 0, 1000000); break;
		case O_INFLIGHT: opt.inflight = (unsigned)cli_ulong("--inflight", optarg, 1, 1 << 24); break;
		case O_PIN: opt.pin = true; break;
		case O_CSV: opt.csv = true; break;
		case 'h': usage(stdout); exit(0);
		case ':': cli_bad("option (needs a value)", argv[optind - 1]);
		default: cli_bad("option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		cli_bad("argument", argv[optind]);
	if (opt.variant == V_FLOOR && opt.mode != -1 && opt.mode != M_IDLE)
		cli_bad("--mode for floor-eventfd (idle only)", mode_names[opt.mode]);
}

static void describe_machine(void)
{
	struct utsname u;
	char model[256] = "?", line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "model name : %255[^\n]", model) == 1)
			break;
	if (f != NULL)
		fclose(f);
	uname(&u);
	fprintf(stderr, "# %s, %ld CPUs online, %s %s; libevent %s; %s%.2f s per run, %u worker(s)\n",
		model, sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, event_get_version(),
		opt.pin ? "pinned, " : "", opt.seconds, opt.workers);
}

int main(int argc, char **argv)
{
	static struct result results[N_VARIANTS][N_MODES][MAX_RUNS];

	cli_set_prog("handoff-bench");
	for (int v = 0; v < INBOX_N_VARIANTS; v++)
		variant_names[v] = inbox_variant_name((enum inbox_variant)v);
	variant_names[V_FLOOR] = "floor-eventfd";
	parse(argc, argv);
	describe_machine();
	print_header();
	for (unsigned rep = 0; rep < opt.repeat; rep++) {
		for (int m = 0; m < N_MODES; m++) {
			if (opt.mode >= 0 && m != opt.mode)
				continue;
			for (int v = 0; v < N_VARIANTS; v++) {
				char run[16];

				if ((opt.variant >= 0 && v != opt.variant) ||
				    (v == V_FLOOR && m != M_IDLE))
					continue;
				run_one((enum variant)v, (enum mode)m, &results[v][m][rep]);
				snprintf(run, sizeof(run), "%u", rep + 1);
				print_result(&results[v][m][rep], run);
			}
		}
	}
	if (opt.repeat > 1)
		for (int m = 0; m < N_MODES; m++)
			for (int v = 0; v < N_VARIANTS; v++)
				if ((opt.mode < 0 || m == opt.mode) &&
				    (opt.variant < 0 || v == opt.variant) &&
				    !(v == V_FLOOR && m != M_IDLE))
					print_medians(results[v][m], opt.repeat);
	return 0;
}
