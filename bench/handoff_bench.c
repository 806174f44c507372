/*
 * handoff_bench.c - what does handing a message to another thread's event
 * loop cost, and where does the cost come from? Producer threads (the
 * acceptor's role) post to W worker threads, each running a real libevent
 * event_base with the variant's inbox: the code the server uses
 * (src/core/handoff/inbox.h). Every message carries a stamp; the worker's
 * handler records the difference in a log-bucketed histogram (within 0.4%).
 *
 * Variants: every inbox variant the library's table has, in its order
 * (mts_dispatch_name(); a bounded one's refused posts wait for room:
 * wait_room()), and two floors with no queue, which carry one message at a time and so
 * run in idle mode only:
 *   floor-eventfd  the producer stores the stamp in one shared slot and
 *                  writes an eventfd registered in the worker's loop: the
 *                  kernel's cost of waking a sleeping loop
 *   floor-spin     the worker busy-polls the slot's cache line, no loop, no
 *                  system call: the hardware's cost of moving a line between
 *                  cores (it burns a whole CPU to get it)
 *
 * Modes:
 *   idle   one message at a time; the next only after the previous one was
 *          handled and a gap (--gap-us) let the worker fall asleep again
 *   burst  as fast as the producer can post (at most --inflight unhandled
 *          per worker): throughput, and queueing delay under load
 *   rate   a fixed offered rate (--rate), open loop: each message is stamped
 *          with the time it was due, so a slow handoff cannot hide by
 *          delaying the producer; the producer's lag is reported
 *   sweep  rate mode at 10k, 30k, 100k, 300k, 1M, ... messages/s, per
 *          variant up to the first rate it cannot sustain (achieved below
 *          95% of offered)
 *   many   --producers P threads post to all W workers as fast as they can
 *          (each to worker 0, 1, ... in turn): with P + W above the CPUs,
 *          where a preempted lock holder and a preempted wait-free producer
 *          differ most
 *   flood  what a flooded inbox costs a socket on the same loop
 *          (tests/test_budget's scenario): one worker, its inbox kept full
 *          of calls that busy-spin --call-ns each, and a byte ping-ponged
 *          over a socket pair that the same loop echoes. The latency is the
 *          byte's round trip; beside it, how many calls ran between its
 *          send and the worker's read of it, which inbox.c bounds by two
 *          budgets (flood_run())
 *
 * Method (doc/HANDOFF.md, "How the figures are made"):
 *   - Latency is defined once, in stamp_and_post(): from the stamp to the
 *     handler. The stamp is taken after the producer has a free slot (so
 *     burst mode does not count its own flow control), or is the due time
 *     (rate, sweep). (Flood mode's latency is another figure, a socket's
 *     round trip: flood_ping().)
 *   - Flow control reads the consumer's count only when the producer's own
 *     copy says the ring is full: not a shared cache line per post.
 *   - Each measured run follows a warm-up (--warmup seconds of the same
 *     mode, whose figures are discarded).
 *   - Each repetition runs the variants in a new order (a seeded shuffle,
 *     printed), and every ratio is paired: taken within one repetition, then
 *     summarised as median [min, max] over the repetitions.
 *   - Costs per message come from counters, not from timing: thread CPU
 *     clocks, wake-up writes and reads counted by the inbox, context
 *     switches from /proc/self/task/TID/status, and (--perf) cache misses
 *     from perf_event_open when the machine allows it.
 *
 * The files: this one (the command line, the order of the runs, the
 * report), hb_worker.c and hb_producer.c (the two sides of a handoff),
 * hb_run.c (one measured run), hb_flood.c (flood mode), hb_report.c (the
 * CSV and the tables), hb_util.c (clocks, counters, pinning), and
 * handoff_bench.h, what they share.
 */
#include <config.h>

#include "handoff_bench.h"

/* The state every file shares (handoff_bench.h). */
int n_queues, n_variants, v_floor_eventfd, v_floor_spin;
const struct inbox_ops *variant_ops[MAX_VARIANTS];
const char *variant_names[MAX_VARIANTS];
const char *perf_unavailable;
int v_wfcq, v_wfcq_always, v_mutex_eventfd, v_mutex_elide, v_spin;
struct options opt = {
	.seconds = 1.0, .warmup = 0.2, .workers = 1, .producers = 4, .repeat = 3,
	.rate = 100000, .gap_us = 20, .seed = 1, .spin_us = 10, .budget = 64, .call_ns = 2000,
	.max_spread = 3,
};
unsigned run_spin_us;
struct bworker workers[MAX_WORKERS];
struct bproducer producers[MAX_PRODUCERS];
uint64_t clock_cost_ns;		/* one CLOCK_THREAD_CPUTIME_ID read */
FILE *csv_out;			/* where CSV rows go, or NULL */
/* Progress: the measured runs made, and planned (plan_runs(); a sweep that
 * stops early takes its remaining rates off), so the last run is N of N. */
static unsigned runs_done, runs_planned;

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
"Usage: handoff-bench [OPTION]...\n"
"Measures the cost of handing a message to another thread's libevent loop.\n"
"\n"
"  --variant LIST   comma-separated: the library's variants (echoserver\n"
"                   --list-dispatch names them), floor-eventfd,\n"
"                   floor-spin, or all (default)\n"
"  --mode LIST      comma-separated: idle, burst, rate, sweep, many, spin,\n"
"                   flood, or all (default: idle,burst,rate)\n"
"  --seconds S      length of each measured run (default 1)\n"
"  --warmup S       the same mode before each run, not measured (default 0.2)\n"
"  --workers N      worker threads (default 1)\n"
"  --producers N    many mode: producer threads (default 4)\n"
"  --repeat N       repetitions, each in a new shuffled order (default 3)\n"
"  --seed N         seed of the shuffle (default 1; printed)\n"
"  --rate R         rate mode: messages per second offered (default 100000)\n"
"  --gap-us N       idle mode: pause between messages (default 20)\n"
"  --spin-us N      spin-then-block's polling time outside spin mode\n"
"                   (default 10; spin mode walks 0, 1, 10 and 100)\n"
"  --inflight N     at most N unhandled messages per producer and worker\n"
"                   (default 4096; flood mode 20000)\n"
"  --budget N       messages an inbox hands over per round (default 64)\n"
"  --call-ns N      flood mode: how long each posted call keeps the worker\n"
"                   busy (default 2000)\n"
"  --pin            pin producers to CPUs 0, 1, ... and the workers to the\n"
"                   next ones, then flood mode's pinger (modulo the CPUs)\n"
"  --perf           cache misses per message (perf_event_open), where allowed\n"
"  --csv            one row per run, every column (handoff-bench(1)), instead\n"
"                   of the tables\n"
"  --csv-file PATH  the rows to PATH, and the tables as well\n"
"  --wide           the tables with every column (default: 100 columns)\n"
"  --max-spread F   mark a paired ratio whose max is over F times its min,\n"
"                   and warn under its table (default 3)\n"
"  -V, --version    print the version and exit\n"
"  -h, --help       this help\n"
"\n"
"Latency runs from the message's stamp to the worker's handler: the stamp is\n"
"taken once the producer has a free slot, or is the due time in rate and\n"
"sweep modes. flood mode floods one worker with calls while a byte\n"
"ping-pongs over a socket pair on the same loop: its latency is that round\n"
"trip, and it counts the calls run while the byte waited (at most two\n"
"budgets). floor-eventfd and floor-spin carry one message at a time and\n"
"run in idle mode only. Ratios are paired within a repetition. Each run is\n"
"reported on standard error as it ends: \"run K of N\".\n");
}

/* A comma-separated list of names into flags; "all" sets every one. */
static void pick_list(const char *what, const char *arg, const char *const *names, int n,
		      bool *set)
{
	char buf[256], *save = NULL;

	if (strlen(arg) >= sizeof(buf))
		cli_bad(what, arg);
	strcpy(buf, arg);
	memset(set, 0, (size_t)n * sizeof(*set));
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		int i;

		if (strcmp(t, "all") == 0) {
			for (i = 0; i < n; i++)
				set[i] = true;
			continue;
		}
		for (i = 0; i < n && strcmp(t, names[i]) != 0; i++)
			;
		if (i == n)
			cli_bad(what, t);
		set[i] = true;
	}
}

static void parse(int argc, char **argv)
{
	enum { O_VARIANT = 256, O_MODE, O_SECONDS, O_WARMUP, O_WORKERS, O_PRODUCERS, O_REPEAT,
	       O_SEED, O_RATE, O_GAP, O_INFLIGHT, O_PIN, O_PERF, O_CSV, O_CSV_FILE, O_SPIN,
	       O_BUDGET, O_CALL_NS, O_WIDE, O_MAX_SPREAD };
	static const struct option longopts[] = {
		{ "variant", required_argument, NULL, O_VARIANT },
		{ "mode", required_argument, NULL, O_MODE },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "producers", required_argument, NULL, O_PRODUCERS },
		{ "repeat", required_argument, NULL, O_REPEAT },
		{ "seed", required_argument, NULL, O_SEED },
		{ "rate", required_argument, NULL, O_RATE },
		{ "gap-us", required_argument, NULL, O_GAP },
		{ "spin-us", required_argument, NULL, O_SPIN },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "budget", required_argument, NULL, O_BUDGET },
		{ "call-ns", required_argument, NULL, O_CALL_NS },
		{ "pin", no_argument, NULL, O_PIN },
		{ "perf", no_argument, NULL, O_PERF },
		{ "csv", no_argument, NULL, O_CSV },
		{ "csv-file", required_argument, NULL, O_CSV_FILE },
		{ "wide", no_argument, NULL, O_WIDE },
		{ "max-spread", required_argument, NULL, O_MAX_SPREAD },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	for (int v = 0; v < n_variants; v++)
		opt.variant[v] = true;
	opt.mode[M_IDLE] = opt.mode[M_BURST] = opt.mode[M_RATE] = true;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case O_VARIANT: pick_list("--variant", optarg, variant_names, n_variants, opt.variant); break;
		case O_MODE: pick_list("--mode", optarg, mode_names, N_MODES, opt.mode); break;
		case O_SECONDS: opt.seconds = cli_double("--seconds", optarg, 0.01, 3600); break;
		case O_WARMUP: opt.warmup = cli_double("--warmup", optarg, 0, 3600); break;
		case O_WORKERS: opt.workers = (unsigned)cli_ulong("--workers", optarg, 1, MAX_WORKERS); break;
		case O_PRODUCERS:
			opt.producers = (unsigned)cli_ulong("--producers", optarg, 1, MAX_PRODUCERS);
			break;
		case O_REPEAT: opt.repeat = (unsigned)cli_ulong("--repeat", optarg, 1, MAX_RUNS); break;
		case O_SEED: opt.seed = cli_ulong("--seed", optarg, 0, ~0ul); break;
		case O_RATE: opt.rate = cli_double("--rate", optarg, 1, 1e9); break;
		case O_GAP: opt.gap_us = (unsigned)cli_ulong("--gap-us", optarg, 0, 1000000); break;
		case O_SPIN: opt.spin_us = (unsigned)cli_ulong("--spin-us", optarg, 0, 100000); break;
		case O_INFLIGHT: opt.inflight = (unsigned)cli_ulong("--inflight", optarg, 1, 1 << 24); break;
		case O_BUDGET: opt.budget = (unsigned)cli_ulong("--budget", optarg, 1, 1 << 20); break;
		case O_CALL_NS:
			opt.call_ns = (unsigned)cli_ulong("--call-ns", optarg, 0, 1000000000);
			break;
		case O_PIN: opt.pin = true; break;
		case O_PERF: opt.perf = true; break;
		case O_CSV: opt.csv = true; break;
		case O_CSV_FILE: opt.csv_file = optarg; break;
		case O_WIDE: opt.wide = true; break;
		case O_MAX_SPREAD: opt.max_spread = cli_double("--max-spread", optarg, 1, 1e9); break;
		case 'V':
			printf("handoff-bench (%s) %s (libevent %s)\n", PACKAGE_NAME, PACKAGE_VERSION,
			       event_get_version());
			exit(0);
		case 'h': usage(stdout); exit(0);
		case ':': cli_bad("option (needs a value)", argv[optind - 1]);
		default: cli_bad("option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		cli_bad("argument", argv[optind]);
	/* Only floors, and no mode they can run in: a mistake, not a no-op. */
	if (!opt.mode[M_IDLE]) {
		bool queue = false;

		for (int v = 0; v < n_queues; v++)
			queue |= opt.variant[v];
		if (!queue)
			cli_usage_error("--variant %s runs in idle mode only; add --mode idle",
					opt.variant[v_floor_eventfd] ? "floor-eventfd" : "floor-spin");
	}
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
	fprintf(stderr, "# %s, %ld CPUs online, %s %s; libevent %s; %s%.2f s per run after "
		"%.2f s warm-up, %u worker(s), seed %lu\n", model, sysconf(_SC_NPROCESSORS_ONLN),
		u.sysname, u.release, event_get_version(), opt.pin ? "pinned, " : "not pinned, ",
		opt.seconds, opt.warmup, opt.workers, opt.seed);
}

/* A run has ended: its CSV row, and a line on standard error that says
 * how far the whole set has come (not with --csv, whose output is rows). */
static void report(const struct result *r)
{
	runs_done++;
	if (csv_out != NULL)
		print_csv(r);
	if (opt.csv)
		return;
	fprintf(stderr, "  run %u of %u, rep %u of %u: ", runs_done, runs_planned, r->rep,
		opt.repeat);
	if (r->mode == M_FLOOD) {
		fprintf(stderr, "flood %-15s %10.0f calls/s  round trip p50 %7.1f us  "
			"p99 %8.1f us  ahead %.0f (bound %u)\n", variant_names[r->variant],
			r->msgs_per_s, r->p50 / 1e3, r->p99 / 1e3, r->ahead_max, 2 * r->budget);
		return;
	}
	fprintf(stderr, "%-5s %-15s %10.0f msgs/s  p50 %7llu ns  p99 %8llu ns%s\n",
		mode_names[r->mode], variant_names[r->variant], r->msgs_per_s,
		(unsigned long long)r->p50, (unsigned long long)r->p99,
		r->sustained ? "" : "  (not sustained)");
}

/* The index of a variant the reports name; the library must have it. */
static int variant_index(const char *name)
{
	for (int v = 0; v < n_queues; v++)
		if (strcmp(variant_names[v], name) == 0)
			return v;
	cli_die("the library has no variant '%s', which the reports compare", name);
}

/* The modes whose runs are one variant at a rate (not spin or sweep). */
static const int plain_modes[] = { M_IDLE, M_BURST, M_RATE, M_MANY, M_FLOOD };
#define N_PLAIN (sizeof(plain_modes) / sizeof(plain_modes[0]))

/* The runs the options ask for: per repetition, each chosen variant in each
 * chosen plain mode (a floor in idle mode only), spin's polling times, and
 * sweep's every rate for each queue (until it stops: sweep_repetition()). */
static unsigned plan_runs(void)
{
	unsigned n = 0;

	for (int v = 0; v < n_variants; v++) {
		if (!opt.variant[v])
			continue;
		for (unsigned mi = 0; mi < N_PLAIN; mi++)
			n += opt.mode[plain_modes[mi]] && (!is_floor(v) || plain_modes[mi] == M_IDLE);
		if (opt.mode[M_SWEEP] && !is_floor(v))
			n += N_SWEEP;
	}
	if (opt.mode[M_SPIN])
		n += N_SPIN;
	return n * opt.repeat;
}

/* The library's variants, then the floors, and the ones the reports name. */
static void load_variants(void)
{
	for (n_queues = 0; n_queues < MAX_VARIANTS - 2 && inbox_variant_at((unsigned)n_queues);
	     n_queues++) {
		variant_ops[n_queues] = inbox_variant_at((unsigned)n_queues);
		variant_names[n_queues] = inbox_variant_name(variant_ops[n_queues]);
	}
	v_floor_eventfd = n_queues;
	v_floor_spin = n_queues + 1;
	n_variants = n_queues + 2;
	variant_names[v_floor_eventfd] = "floor-eventfd";
	variant_names[v_floor_spin] = "floor-spin";
	v_wfcq = variant_index("wfcq");
	v_wfcq_always = variant_index("wfcq-always");
	v_mutex_eventfd = variant_index("mutex-eventfd");
	v_mutex_elide = variant_index("mutex-elide");
	v_spin = variant_index("spin-then-block");
}

/* spin mode: spin-then-block at each polling time, in a shuffled order. */
static void spin_repetition(unsigned rep)
{
	int so[N_SPIN];

	for (unsigned i = 0; i < N_SPIN; i++)
		so[i] = (int)i;
	shuffle(so, N_SPIN);
	for (unsigned i = 0; i < N_SPIN; i++) {
		struct result *r = &spin_res[so[i]][rep];

		run_spin_us = spin_budgets[so[i]];
		run_one(v_spin, M_IDLE, opt.rate, rep + 1, i + 1, r);
		r->mode = M_SPIN;
		report(r);
	}
	run_spin_us = opt.spin_us;
}

/* sweep mode: every rate, each variant until the first it cannot sustain. */
static void sweep_repetition(unsigned rep, const int *order)
{
	bool stopped[MAX_VARIANTS] = { false };

	for (unsigned ri = 0; ri < N_SWEEP; ri++)
		for (int i = 0; i < n_variants; i++) {
			int v = order[i];
			struct result *r = &sweep_res[v][rep][ri];

			if (!opt.variant[v] || is_floor(v) || stopped[v])
				continue;
			run_one(v, M_SWEEP, sweep_rates[ri], rep + 1, (unsigned)i + 1, r);
			sweep_have[v][rep][ri] = true;
			stopped[v] = !r->sustained;
			if (stopped[v])	/* the rates above, planned, will not run */
				runs_planned -= (unsigned)(N_SWEEP - 1 - ri);
			report(r);
		}
}

/* One repetition: every chosen mode, the variants in a new order. */
static void repetition(unsigned rep, int *order)
{
	shuffle(order, (unsigned)n_variants);
	fprintf(stderr, "# repetition %u, order:", rep + 1);
	for (int i = 0; i < n_variants; i++)
		if (opt.variant[order[i]])
			fprintf(stderr, " %s", variant_names[order[i]]);
	fprintf(stderr, "\n");
	for (unsigned mi = 0; mi < N_PLAIN; mi++) {
		int m = plain_modes[mi];

		for (int i = 0; opt.mode[m] && i < n_variants; i++) {
			int v = order[i];

			if (!opt.variant[v] || (is_floor(v) && m != M_IDLE))
				continue;
			run_one(v, m, opt.rate, rep + 1, (unsigned)i + 1, &results[m][v][rep]);
			have[m][v][rep] = true;
			report(&results[m][v][rep]);
		}
	}
	if (opt.mode[M_SPIN])
		spin_repetition(rep);
	if (opt.mode[M_SWEEP])
		sweep_repetition(rep, order);
}

/* The tables, after every repetition. */
static void print_report(void)
{
	bool tables = false;

	for (unsigned mi = 0; mi < N_PLAIN; mi++)
		if (opt.mode[plain_modes[mi]] && plain_modes[mi] != M_FLOOD) {
			print_table(plain_modes[mi]);
			tables = true;
		}
	if (tables)
		print_mode_legend();
	if (opt.mode[M_SWEEP])
		print_sweep();
	if (opt.mode[M_SPIN])
		print_spin();
	if (opt.mode[M_FLOOD])
		print_flood();
	for (int vv = 0; vv < n_queues; vv++)
		if (!opt.variant[vv])
			return;		/* the factorial needs all four */
	if (opt.mode[M_BURST])
		print_factorial(M_BURST, true);
	if (opt.mode[M_IDLE])
		print_factorial(M_IDLE, false);
	if (opt.mode[M_MANY])
		print_factorial(M_MANY, true);
	if (opt.mode[M_BURST] || opt.mode[M_IDLE] || opt.mode[M_MANY])
		print_factorial_legend();
}

int main(int argc, char **argv)
{
	int order[MAX_VARIANTS];

	cli_set_prog("handoff-bench");
	load_variants();
	parse(argc, argv);
	describe_machine();
	calibrate_clock();
	rng_state = opt.seed * 0x9e3779b97f4a7c15ull + 1;
	if (opt.csv_file != NULL && (csv_out = fopen(opt.csv_file, "w")) == NULL)
		cli_die("cannot write %s: %s", opt.csv_file, strerror(errno));
	else if (opt.csv)
		csv_out = stdout;
	if (csv_out != NULL)
		fprintf(csv_out, "%s\n", CSV_HEADER);
	for (int v = 0; v < n_variants; v++)
		order[v] = v;
	run_spin_us = opt.spin_us;
	runs_planned = plan_runs();
	for (unsigned rep = 0; rep < opt.repeat; rep++)
		repetition(rep, order);
	if (opt.perf && perf_unavailable != NULL)
		fprintf(stderr, "# --perf: cache misses unavailable here (perf_event_open: %s); "
			"those columns are '-'\n", perf_unavailable);
	if (csv_out != NULL && csv_out != stdout)
		fclose(csv_out);
	if (!opt.csv)
		print_report();
	return 0;
}
