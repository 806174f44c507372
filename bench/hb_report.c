/*
 * hb_report.c - handoff-bench's output: the CSV rows, and the tables
 * (per mode, the two-by-two, the sweep, spin, flood) with paired ratios.
 *
 * Every table fits in 100 columns unless --wide asks for every column, and
 * is followed by what makes its figures doubtful (a warning line: not
 * pinned; ratios whose repetitions disagree by more than --max-spread) and
 * by a legend of its abbreviations (after the last table of a kind).
 */
#include <config.h>

#include "handoff_bench.h"

struct result results[N_MODES][MAX_VARIANTS][MAX_RUNS];
bool have[N_MODES][MAX_VARIANTS][MAX_RUNS];
struct result sweep_res[MAX_VARIANTS][MAX_RUNS][N_SWEEP];
struct result spin_res[N_SPIN][MAX_RUNS];
bool sweep_have[MAX_VARIANTS][MAX_RUNS][N_SWEEP];


/* A figure with `prec` decimals, or "-" where it does not exist (-1). */
const char *fig(char *buf, size_t n, int prec, double x)
{
	if (x < 0)
		return "-";
	snprintf(buf, n, "%.*f", prec, x);
	return buf;
}

void print_csv(const struct result *r)
{
	char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32], i[32], j[32];

	fprintf(csv_out, "%s,%s,%u,%u,%u,%u,%lu,%d,%.0f,%llu,%.3f,%.0f,%d,%llu,%llu,%llu,%llu,%llu,"
	       "%llu,%llu,%.1f,%.1f,%.4f,%.4f,%.5f,%.5f,%.5f,%.5f,%llu,%.6f,%s,%s,%s,%llu,%s,"
	       "%s,%s,%s,%s,%s,%s\n",
	       variant_names[r->variant], mode_names[r->mode], r->workers, r->producers,
	       r->rep, r->order, opt.seed, opt.pin, r->offered,
	       (unsigned long long)r->messages, r->seconds, r->msgs_per_s, r->sustained,
	       (unsigned long long)r->p50, (unsigned long long)r->p90,
	       (unsigned long long)r->p99, (unsigned long long)r->p999,
	       (unsigned long long)r->max, (unsigned long long)r->lag_p99,
	       (unsigned long long)r->lag_max, r->prod_cpu_ns, r->cons_cpu_ns, r->writes,
	       r->reads, r->prod_vcsw, r->prod_ivcsw, r->cons_vcsw, r->cons_ivcsw,
	       (unsigned long long)r->wouldblock_n, r->wouldblock,
	       fig(a, sizeof(a), 3, r->same_cpu), fig(b, sizeof(b), 3, r->prod_misses),
	       fig(c, sizeof(c), 3, r->cons_misses), (unsigned long long)r->refused_n,
	       fig(d, sizeof(d), 0, r->spin_us),
	       fig(e, sizeof(e), 0, r->budget ? (double)r->budget : -1),
	       fig(f, sizeof(f), 0, r->call_ns), fig(g, sizeof(g), 0, r->round_trips),
	       fig(h, sizeof(h), 0, r->ahead_max), fig(i, sizeof(i), 3, r->round_fill),
	       fig(j, sizeof(j), 0, r->bare_p50));
	fflush(csv_out);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Ratios marked '!' in the table being printed: its warning counts them. */
static unsigned marked;

/*
 * median [min, max] of n paired ratios, into buf; marked '!' when the
 * largest is more than --max-spread times the smallest, where the
 * repetitions disagree too much for the median to stand for them.
 */
static const char *summary(char *buf, size_t len, double *v, unsigned n)
{
	bool wide;

	if (n == 0)
		return "-";
	qsort(v, n, sizeof(v[0]), cmp_double);
	if (n == 1) {
		snprintf(buf, len, "%.2f", v[0]);
		return buf;
	}
	wide = v[n - 1] > opt.max_spread * v[0];
	marked += wide;
	snprintf(buf, len, "%.2f [%.2f, %.2f]%s", n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2,
		 v[0], v[n - 1], wide ? "!" : "");
	return buf;
}

/* Under every table: what makes its figures doubtful, a line each. */
static void print_warnings(void)
{
	if (!opt.pin)
		printf("warning: not pinned (no --pin): threads ran where the scheduler put them, "
		       "so figures vary more\n");
	if (marked > 0)
		printf("warning: %u ratio%s marked ! spread over more than %gx (max / min): "
		       "quote no median alone\n", marked, marked == 1 ? "" : "s", opt.max_spread);
	marked = 0;
}

/* The ratio columns at the end of a row: the last one unpadded. */
static void print_ratios(const char *const *cells, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		printf(i + 1 < n ? "  %-23s" : "  %s", cells[i]);
	printf("\n");
}

/* Sorts n runs by p50 and returns the median one (the lower of the two
 * middle ones), or NULL: a row is one real run, never medians of several. */
static const struct result *median_of(const struct result **rs, unsigned n)
{
	for (unsigned i = 1; i < n; i++)	/* insertion sort by p50 */
		for (unsigned j = i; j > 0 && rs[j - 1]->p50 > rs[j]->p50; j--) {
			const struct result *t = rs[j];
			rs[j] = rs[j - 1];
			rs[j - 1] = t;
		}
	return n ? rs[(n - 1) / 2] : NULL;
}

/* Every run's result: [mode][variant][rep]; sweep keeps one per rate. */

/* The run whose p50 is the median of the variant's runs in mode m. */
static const struct result *median_run(int m, int v)
{
	const struct result *rs[MAX_RUNS];
	unsigned n = 0;

	for (unsigned k = 0; k < opt.repeat; k++)
		if (have[m][v][k])
			rs[n++] = &results[m][v][k];
	return median_of(rs, n);
}

/* Variant a's figure over b's in repetition k (msgs/s or p50); -1 if none. */
static double ratio_in(int m, unsigned k, int a, int b, bool tput)
{
	const struct result *x = &results[m][a][k], *y = &results[m][b][k];

	if (!have[m][a][k] || !have[m][b][k])
		return -1;
	if (tput)
		return y->msgs_per_s > 0 ? x->msgs_per_s / y->msgs_per_s : -1;
	return y->p50 > 0 ? (double)x->p50 / (double)y->p50 : -1;
}

/* Paired ratios of figure `f` (p50 or msgs/s), variant a over b, per rep. */
unsigned paired(int m, int a, int b, bool tput, double *out)
{
	unsigned n = 0;

	for (unsigned k = 0; k < opt.repeat; k++) {
		double r = ratio_in(m, k, a, b, tput);

		if (r > 0)
			out[n++] = r;
	}
	return n;
}

/*
 * One mode's table, a row per variant (the run with the median p50). The
 * default keeps the columns that say what a handoff costs and the ratio
 * the mode is about (throughput in burst and many, p50 elsewhere); --wide
 * adds max, lag99, rd/msg, cs/msg, wb, same and every ratio.
 */
void print_table(int m)
{
	bool tput = m == M_BURST || m == M_MANY;
	char s1[48], s2[48], s3[48];
	double v1[MAX_RUNS], v2[MAX_RUNS], v3[MAX_RUNS];	/* one per summary: one printf */

	printf("\n%s mode: the run with the median p50 of %u; ratios paired per repetition, "
	       "median [min, max]\n", mode_names[m], opt.repeat);
	if (opt.wide) {
		const char *head[] = { "p50 x wfcq", "msgs/s x wfcq", "p50 x floor-eventfd" };

		printf("%-15s %10s %8s %8s %9s %9s %9s %8s %8s %7s %7s %6s %5s", "variant",
		       "msgs/s", "p50 ns", "p99 ns", "max ns", "lag99 ns", "prod ns", "cons ns",
		       "wr/msg", "rd/msg", "cs/msg", "wb", "same");
		print_ratios(head, m == M_IDLE ? 3 : 2);
	} else {
		printf("%-15s %9s %8s %8s %8s %8s %7s  %s\n", "variant", "msgs/s", "p50 ns",
		       "p99 ns", "prod ns", "cons ns", "wr/msg", tput ? "msgs/s x wfcq" : "p50 x wfcq");
	}
	for (int vv = 0; vv < n_variants; vv++) {
		const struct result *r = median_run(m, vv);
		const char *cell[3];
		char a[32], lag[32];

		if (r == NULL)
			continue;
		cell[0] = summary(s1, sizeof(s1), v1, paired(m, vv, v_wfcq, false, v1));
		cell[1] = is_floor(vv) ? "-" : summary(s2, sizeof(s2), v2, paired(m, vv, v_wfcq, true, v2));
		cell[2] = m == M_IDLE ? summary(s3, sizeof(s3), v3, paired(m, vv, v_floor_eventfd, false, v3)) : "";
		if (!opt.wide) {
			printf("%-15s %9.0f %8llu %8llu %8.0f %8.0f %7.4f  %s\n", variant_names[vv],
			       r->msgs_per_s, (unsigned long long)r->p50, (unsigned long long)r->p99,
			       r->prod_cpu_ns, r->cons_cpu_ns, r->writes, cell[tput ? 1 : 0]);
			continue;
		}
		printf("%-15s %10.0f %8llu %8llu %9llu %9s %9.0f %8.0f %8.4f %7.3f %7.3f %6llu %5s",
		       variant_names[vv], r->msgs_per_s, (unsigned long long)r->p50,
		       (unsigned long long)r->p99, (unsigned long long)r->max,
		       fig(lag, sizeof(lag), 0, r->offered > 0 ? (double)r->lag_p99 : -1), r->prod_cpu_ns,
		       r->cons_cpu_ns, r->writes, r->reads, r->cons_vcsw + r->cons_ivcsw,
		       (unsigned long long)r->wouldblock_n, fig(a, sizeof(a), 2, r->same_cpu));
		print_ratios(cell, m == M_IDLE ? 3 : 2);
	}
	print_warnings();
}

/* Under the last of the mode tables: what their columns are. */
void print_mode_legend(void)
{
	printf("legend: msgs/s messages handled per second; p50, p99%s latency from stamp to handler\n"
	       "(ns); prod, cons CPU per message of the producer and the worker (ns); wr/msg wake-up\n"
	       "writes per message; x wfcq the variant's figure over wfcq's in the same repetition,\n"
	       "median [min, max] over the repetitions%s\n", opt.wide ? ", max" : "",
	       opt.wide ? "" : " (--wide: every column)");
	if (opt.wide)
		printf("lag99 how late the producer posted, p99 (rate mode); rd/msg wake-up reads per\n"
		       "message; cs/msg the worker's context switches per message; wb WOULDBLOCK\n"
		       "rounds; same the share of idle messages handled on the producer's CPU;\n"
		       "x floor-eventfd as x wfcq, against floor-eventfd\n");
}

/*
 * The two-by-two: what elision buys with each queue, what the lock-free
 * queue buys with each signalling rule, both together, and the interaction
 * (together / (elision with the lock x lock-free with every post): 1 when
 * the two factors multiply independently). Each ratio paired per repetition.
 */
void print_factorial(int m, bool tput)
{
	const struct { const char *what; int a, b; } rows[] = {
		{ "elision, with the lock       (mutex-elide / mutex-eventfd)",
		  v_mutex_elide, v_mutex_eventfd },
		{ "elision, lock-free           (wfcq / wfcq-always)", v_wfcq, v_wfcq_always },
		{ "lock-free, signal every post (wfcq-always / mutex-eventfd)",
		  v_wfcq_always, v_mutex_eventfd },
		{ "lock-free, with elision      (wfcq / mutex-elide)", v_wfcq, v_mutex_elide },
		{ "together                     (wfcq / mutex-eventfd)", v_wfcq, v_mutex_eventfd },
	};
	double v[MAX_RUNS];
	unsigned n = 0;
	char s[64];

	printf("\nfactorial, %s mode, %s (a ratio > 1 means the first is %s):\n", mode_names[m],
	       tput ? "msgs/s" : "p50 latency", tput ? "faster" : "slower");
	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		printf("  %-62s %s\n", rows[i].what,
		       summary(s, sizeof(s), v, paired(m, rows[i].a, rows[i].b, tput, v)));
	for (unsigned k = 0; k < opt.repeat; k++) {
		double t = ratio_in(m, k, v_wfcq, v_mutex_eventfd, tput);
		double e = ratio_in(m, k, v_mutex_elide, v_mutex_eventfd, tput);
		double l = ratio_in(m, k, v_wfcq_always, v_mutex_eventfd, tput);

		if (t > 0 && e > 0 && l > 0)
			v[n++] = t / (e * l);
	}
	printf("  %-62s %s\n", "interaction: together / (elision x lock-free), 1 = independent",
	       summary(s, sizeof(s), v, n));
	print_warnings();
}

/* Under the last two-by-two. */
void print_factorial_legend(void)
{
	printf("legend: each row is the first variant's figure over the second's, paired within a\n"
	       "repetition, median [min, max]; elision: signal only when the queue was empty;\n"
	       "lock-free: liburcu's wait-free queue instead of a mutex and a list\n");
}

/* The run with the median p50 of variant vv at sweep rate i, or NULL. */
static const struct result *sweep_median(int vv, unsigned i)
{
	const struct result *rs[MAX_RUNS];
	unsigned c = 0;

	for (unsigned k = 0; k < opt.repeat; k++)
		if (sweep_have[vv][k][i])
			rs[c++] = &sweep_res[vv][k][i];
	return median_of(rs, c);
}

/* A latency in us in at most six characters (a sweep cell). */
static const char *short_us(char *buf, size_t n, double us)
{
	if (us < 1)
		snprintf(buf, n, "%.2f", us);
	else if (us < 100)
		snprintf(buf, n, "%.1f", us);
	else if (us < 100000)
		snprintf(buf, n, "%.0f", us);
	else
		snprintf(buf, n, "%.0fms", us / 1e3);
	return buf;
}

/*
 * sweep: per variant, the run with the median p50 at each offered rate, up
 * to the first rate it could not sustain in that repetition; then its
 * highest sustained rate paired with wfcq's. The default shows p50 at the
 * rates any variant reached; --wide p50/p99 at every rate.
 */
void print_sweep(void)
{
	static const char *const rate_names[N_SWEEP] = { "10k", "30k", "100k", "300k", "1M",
							  "3M", "10M", "30M" };
	unsigned n_rates = 0;
	double v[MAX_RUNS];
	char s[64];

	for (int vv = 0; vv < n_variants; vv++)
		for (unsigned k = 0; k < opt.repeat; k++)
			for (unsigned i = 0; i < N_SWEEP; i++)
				if (sweep_have[vv][k][i] && i + 1 > n_rates)
					n_rates = i + 1;
	if (opt.wide)
		n_rates = N_SWEEP;
	printf("\nsweep: %s in us at each offered rate (the run with the median p50 of %u)\n%-15s",
	       opt.wide ? "p50 / p99" : "p50", opt.repeat, "variant");
	for (unsigned i = 0; i < n_rates; i++)
		printf(opt.wide ? " %16s" : " %6s", rate_names[i]);
	printf("  %s\n", opt.wide ? "highest sustained, msgs/s x wfcq" : "top x wfcq");
	for (int vv = 0; vv < n_variants; vv++) {
		bool any = false;
		unsigned n = 0;

		for (unsigned k = 0; k < opt.repeat; k++)
			any |= sweep_have[vv][k][0];
		if (!any)
			continue;
		printf("%-15s", variant_names[vv]);
		for (unsigned i = 0; i < n_rates; i++) {
			const struct result *r = sweep_median(vv, i);
			char cell[48], p50[16];

			if (r == NULL)
				cell[0] = '\0';
			else if (opt.wide)
				snprintf(cell, sizeof(cell), "%.1f/%.1f%s", r->p50 / 1e3, r->p99 / 1e3,
					 r->sustained ? "" : "x");
			else
				snprintf(cell, sizeof(cell), "%s%s", short_us(p50, sizeof(p50), r->p50 / 1e3),
					 r->sustained ? "" : "x");
			printf(opt.wide ? " %16s" : " %6s", cell);
		}
		/* The highest sustained offered rate, paired with wfcq's. */
		for (unsigned k = 0; k < opt.repeat; k++) {
			double mine = 0, ref = 0;

			for (unsigned i = 0; i < N_SWEEP; i++) {
				if (sweep_have[vv][k][i] && sweep_res[vv][k][i].sustained)
					mine = sweep_rates[i];
				if (sweep_have[v_wfcq][k][i] && sweep_res[v_wfcq][k][i].sustained)
					ref = sweep_rates[i];
			}
			if (mine > 0 && ref > 0)
				v[n++] = mine / ref;
		}
		printf("  %s\n", summary(s, sizeof(s), v, n));
	}
	print_warnings();
	printf("legend: x not sustained (achieved below %.0f%% of offered; the sweep stops there);\n"
	       "top x wfcq the highest rate sustained over wfcq's, paired, median [min, max]%s\n",
	       SUSTAINED * 100, opt.wide ? "" : "\n(--wide: p99 too, and every rate)");
}

/*
 * spin mode: spin-then-block in idle mode at each polling time, beside the
 * two floors of the same repetitions (idle mode): latency against the CPU
 * the worker spends per message, which is what polling buys and costs.
 */
void print_spin(void)
{
	printf("\nspin: spin-then-block's polling times, a message every %u us; the run with the "
	       "median p50 of %u\n%-18s %8s %8s %9s %8s %8s\n", opt.gap_us, opt.repeat,
	       "polling", "p50 ns", "p99 ns", "cons ns", "wr/msg", "cs/msg");
	for (unsigned i = 0; i < N_SPIN; i++) {
		const struct result *rs[MAX_RUNS], *r;
		unsigned c = 0;
		char name[32];

		for (unsigned k = 0; k < opt.repeat; k++)
			rs[c++] = &spin_res[i][k];
		r = median_of(rs, c);
		snprintf(name, sizeof(name), "%u us", spin_budgets[i]);
		printf("%-18s %8llu %8llu %9.0f %8.4f %8.3f\n", name, (unsigned long long)r->p50,
		       (unsigned long long)r->p99, r->cons_cpu_ns, r->writes,
		       r->cons_vcsw + r->cons_ivcsw);
	}
	for (int v = v_floor_eventfd; v <= v_floor_spin; v++) {
		const struct result *r = median_run(M_IDLE, v);

		if (r != NULL)
			printf("%-18s %8llu %8llu %9.0f %8.4f %8.3f\n", variant_names[v],
			       (unsigned long long)r->p50, (unsigned long long)r->p99, r->cons_cpu_ns,
			       r->writes, r->cons_vcsw + r->cons_ivcsw);
	}
	print_warnings();
	printf("legend: polling how long the worker polls before it sleeps (the floors: their idle\n"
	       "runs); cons ns the worker's CPU per message; wr/msg wake-up writes per message;\n"
	       "cs/msg the worker's context switches per message\n");
}

/*
 * flood: per variant, the run with the median round-trip p50: the round
 * trip's quantiles; the most calls that ran while a byte waited, beside
 * inbox.c's bound; the calls' rate. --wide adds p99.9, the bare round
 * trip, how full the rounds were (the flood was real where that is near 1)
 * and how many round trips were measured.
 */
void print_flood(void)
{
	double v[MAX_RUNS];
	char s[48];

	printf("\nflood mode: one worker's inbox flooded with %u ns calls (at most %u waiting, "
	       "budget %u),\na byte ping-ponged over a socket pair on the same loop; round trips "
	       "in us; the run with\nthe median p50 of %u\n", opt.call_ns, lane_size(M_FLOOD),
	       opt.budget, opt.repeat);
	if (opt.wide)
		printf("%-15s %9s %8s %8s %8s %8s %9s %6s %6s %5s %7s  %s\n", "variant", "calls/s",
		       "p50 us", "p99 us", "p99.9 us", "max us", "bare p50", "ahead", "bound", "fill",
		       "pings", "p50 x wfcq");
	else
		printf("%-15s %9s %8s %8s %8s %6s %6s  %s\n", "variant", "calls/s", "p50 us",
		       "p99 us", "max us", "ahead", "bound", "p50 x wfcq");
	for (int vv = 0; vv < n_variants; vv++) {
		const struct result *r = median_run(M_FLOOD, vv);
		double ahead = 0;	/* a bound holds in every run, or it does not hold */
		const char *ratio;

		if (r == NULL)
			continue;
		for (unsigned k = 0; k < opt.repeat; k++)
			if (have[M_FLOOD][vv][k] && results[M_FLOOD][vv][k].ahead_max > ahead)
				ahead = results[M_FLOOD][vv][k].ahead_max;
		ratio = summary(s, sizeof(s), v, paired(M_FLOOD, vv, v_wfcq, false, v));
		if (opt.wide)
			printf("%-15s %9.0f %8.1f %8.1f %8.1f %8.1f %9.1f %6.0f %6u %5.2f %7.0f  %s\n",
			       variant_names[vv], r->msgs_per_s, r->p50 / 1e3, r->p99 / 1e3,
			       r->p999 / 1e3, r->max / 1e3, r->bare_p50 / 1e3, ahead, 2 * r->budget,
			       r->round_fill, r->round_trips, ratio);
		else
			printf("%-15s %9.0f %8.1f %8.1f %8.1f %6.0f %6u  %s\n", variant_names[vv],
			       r->msgs_per_s, r->p50 / 1e3, r->p99 / 1e3, r->max / 1e3, ahead,
			       2 * r->budget, ratio);
	}
	print_warnings();
	printf("legend: calls/s flood calls run per second; p50, p99, max the byte's round trip;\n"
	       "ahead the most calls run between a send and the worker's read of the byte, over\n"
	       "all %u runs; bound two budgets (inbox.c); x wfcq paired, median [min, max]\n",
	       opt.repeat);
	if (opt.wide)
		printf("bare p50 the round trip before the flood; fill calls per round over the budget\n"
		       "(1: every round was full); pings round trips measured\n");
	else
		printf("(--wide: p99.9, the round trip before the flood, how full the rounds were)\n");
}
