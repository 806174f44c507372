/*
 * handoff_bench.h - what handoff-bench's files share: its options, the
 * variants and modes, a worker, a producer, a lane between them, a run's
 * result, and the functions one file gives another. handoff_bench.c says
 * what the bench measures and how; each file says which part it is.
 */
#ifndef HANDOFF_BENCH_H
#define HANDOFF_BENCH_H

#include <errno.h>
#include <getopt.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli/cli.h"
#include "histogram.h"
#include "inbox.h"
#include "wakeup.h"

#define MAX_WORKERS 16
#define MAX_PRODUCERS 16
#define MAX_RUNS 64
#define MAX_RATES 16
#define SUSTAINED 0.95		/* sweep: achieved / offered to go on */

/* Every inbox variant, from the library's table (a new one is measured
 * without a change here), then the two floors; filled by main(). */
#define MAX_VARIANTS 32
extern int n_queues, n_variants, v_floor_eventfd, v_floor_spin;
extern const struct inbox_ops *variant_ops[MAX_VARIANTS];	/* NULL: a floor */
extern const char *variant_names[MAX_VARIANTS];
/* The ones the two-by-two and the summaries name. */
extern int v_wfcq, v_wfcq_always, v_mutex_eventfd, v_mutex_elide, v_spin;

enum mode { M_IDLE, M_BURST, M_RATE, M_SWEEP, M_MANY, M_SPIN, M_FLOOD, N_MODES };
static const char *const mode_names[N_MODES] = { "idle", "burst", "rate", "sweep", "many",
						 "spin", "flood" };
/* spin mode: spin-then-block in idle mode with each of these polling times. */
static const unsigned spin_budgets[] = { 0, 1, 10, 100 };
#define N_SPIN (sizeof(spin_budgets) / sizeof(spin_budgets[0]))
static const double sweep_rates[] = { 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7 };
#define N_SWEEP (sizeof(sweep_rates) / sizeof(sweep_rates[0]))

static inline bool is_floor(int v)
{
	return v == v_floor_eventfd || v == v_floor_spin;
}

/* A lane's slots, unless --inflight says otherwise. Flood mode keeps as
 * many calls waiting as tests/test_budget does. */
#define INFLIGHT_DEFAULT 4096
#define FLOOD_INFLIGHT 20000
/* Flood mode's producer sleeps this long between looks while it waits for
 * the worker (lane_pause()), as test_budget's flooder does. Half of its
 * 20,000 calls of 2 us keep the worker busy for 20 ms: it wakes about 200
 * times per wait, and refills long before the inbox runs dry. */
#define FLOOD_NAP_NS 100000

struct options {
	double seconds, warmup;
	unsigned workers, producers, repeat, gap_us, spin_us;
	unsigned inflight;	/* 0: the mode's own (lane_size()) */
	unsigned budget;	/* messages an inbox hands over per round */
	unsigned call_ns;	/* flood mode: how long each call keeps the worker */
	double rate;
	double max_spread;	/* a paired ratio whose max / min exceeds it is marked */
	unsigned long seed;
	bool pin, csv, perf;
	bool wide;		/* the tables with every column, not 100 columns wide */
	const char *csv_file;	/* the CSV there, the tables on stdout */
	bool variant[MAX_VARIANTS];	/* which to run */
	bool mode[N_MODES];
};

/* MSG_DATA carries a stamp; MSG_CALL is flood mode's posted call. */
enum { MSG_DATA = 1, MSG_CALL, MSG_QUIT };

/*
 * One producer's path to one worker: a ring of message slots, and the count
 * of them the worker has handled. The worker stores `handled` (release)
 * after it is done with a message; the producer loads it (acquire) only
 * when its own copy, `seen`, says that the ring is full.
 */
struct lane {
	_Alignas(64) atomic_uint_fast64_t handled;	/* the worker's */
	_Alignas(64) struct bench_msg *ring;		/* the producer's from here */
	unsigned size;		/* slots in `ring`: the most unhandled at once */
	uint64_t nap_ns;	/* how a wait for the worker passes: see lane_pause() */
	uint64_t posted, seen;
	uint64_t wait_ns;	/* CPU time spent waiting for a free slot */
	uint64_t floor_writes;	/* floor-eventfd: write() calls made */
};

struct bench_msg {
	struct inbox_msg m;
	uint64_t stamp_ns;	/* written by the producer before posting */
	struct lane *lane;
	int cpu;		/* the producer's CPU, idle mode only (else -1) */
};

struct bworker {
	unsigned id;
	int cpu;			/* pinned to; -1: not pinned */
	pthread_t thread;
	atomic_int tid;			/* for /proc and perf */
	struct event_base *base;	/* the worker thread's alone once it runs */
	struct inbox *inbox;		/* queue variants */
	struct wakeup floor_wake;	/* floor-eventfd */
	struct event *floor_ev;
	/* Reads of the eventfd: the worker adds, main reads while the worker
	 * may be draining (the add comes before the worker's acquire of the
	 * slot, so nothing else orders the two). */
	atomic_uint_fast64_t floor_reads;
	/* The floors' slot: producer -> worker, release/acquire. 0: empty. */
	_Alignas(64) atomic_uint_fast64_t slot;
	atomic_int slot_cpu;
	_Alignas(64) struct histogram hist;	/* worker writes; main reads when quiet */
	uint64_t same_cpu, cpu_known;	/* worker only: messages handled on the producer's CPU */
	/* flood: calls run so far. The worker writes it; the pinger reads it
	 * at any time (relaxed: flood_ping() says why that is enough), main
	 * in its snapshots. */
	atomic_uint_fast64_t calls;
	/* flood: `calls` when the worker read the pinger's byte, stored before
	 * the echo goes back. The worker writes it, the pinger reads it. */
	atomic_uint_fast64_t calls_at_read;
	struct event *echo_ev;		/* flood: the worker's end of the socket pair */
	struct bench_msg quit_msg;
};

struct bproducer {
	unsigned id;
	int cpu;
	pthread_t thread;
	atomic_int tid;
	struct lane lane[MAX_WORKERS];
	struct histogram lag;		/* rate modes: post time - due time */
	uint64_t post_ns;		/* idle, rate modes: time inside the posts */
};

/* Thread figures read from outside the thread. */
struct tsnap {
	uint64_t cpu_ns, vcsw, ivcsw, misses;
};

struct result {
	int variant, mode;
	unsigned rep, order, workers, producers;
	double offered, seconds, msgs_per_s;
	uint64_t messages;
	uint64_t p50, p90, p99, p999, max;
	uint64_t lag_p99, lag_max;
	double prod_cpu_ns, cons_cpu_ns;	/* per message */
	double writes, reads;			/* wake-up fd system calls per message */
	double cons_vcsw, cons_ivcsw, prod_vcsw, prod_ivcsw;	/* per message */
	double wouldblock;			/* WOULDBLOCK rounds per message */
	uint64_t wouldblock_n;
	uint64_t refused_n;			/* posts a full ring refused (retried) */
	double same_cpu;			/* idle: fraction on the producer's CPU; -1 */
	double prod_misses, cons_misses;	/* per message; -1: unavailable */
	int spin_us;				/* spin-then-block's; -1: other */
	bool sustained;
	unsigned budget;			/* the inbox's; 0: a floor, no inbox */
	/* flood mode only (-1 elsewhere): the calls' length, the round trips
	 * measured, the most calls run while a byte waited to be read, calls
	 * per round over the budget (1: every round was full), and the round
	 * trip's p50 before the flood began. p50 ... max are the round trip's;
	 * messages and msgs_per_s count the calls. */
	double call_ns, round_trips, ahead_max, round_fill, bare_p50;
};

/* A run's counters, taken before and after it (hb_run.c). */
struct snapshot {
	struct tsnap prod[MAX_PRODUCERS], cons[MAX_WORKERS];
	uint64_t writes, reads, wouldblock, refused, handled;
	uint64_t rounds, taken;		/* the inbox's rounds, and messages they handed over */
	uint64_t post_ns, wait_ns[MAX_PRODUCERS];
	int prod_perf[MAX_PRODUCERS], cons_perf[MAX_WORKERS];
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* many mode: each producer thread runs a warm-up and a measured phase; the
 * main thread (hb_run.c) snapshots between them (hb_producer.c). */
struct many_mode {
	int v;
	uint64_t warm_end, end;
	pthread_barrier_t warm_done, go, done, release;
};
extern struct many_mode many;

/* The CSV's first line (hb_report.c writes the rows). */
#define CSV_HEADER "variant,mode,workers,producers,rep,order,seed,pinned,offered_per_s," \
	"messages,seconds,msgs_per_s,sustained,p50_ns,p90_ns,p99_ns,p999_ns,max_ns," \
	"lag_p99_ns,lag_max_ns,prod_cpu_ns,cons_cpu_ns,writes_per_msg,reads_per_msg," \
	"prod_vcsw_per_msg,prod_ivcsw_per_msg,cons_vcsw_per_msg,cons_ivcsw_per_msg," \
	"wouldblock,wouldblock_per_msg,same_cpu,prod_misses_per_msg,cons_misses_per_msg," \
	"refused,spin_us,budget,call_ns,round_trips,calls_ahead_max,round_fill,bare_p50_ns"

extern const char *perf_unavailable;	/* why --perf gives no figures */
extern struct options opt;
extern unsigned run_spin_us;		/* spin-then-block's, in the run being set up */
extern struct bworker workers[MAX_WORKERS];
extern struct bproducer producers[MAX_PRODUCERS];
extern uint64_t clock_cost_ns;		/* one CLOCK_THREAD_CPUTIME_ID read */
extern FILE *csv_out;			/* where CSV rows go, or NULL */

/* hb_util.c */
extern uint64_t rng_state;

/* hb_report.c */
extern struct result results[N_MODES][MAX_VARIANTS][MAX_RUNS];
extern bool have[N_MODES][MAX_VARIANTS][MAX_RUNS];
extern struct result sweep_res[MAX_VARIANTS][MAX_RUNS][N_SWEEP];
extern struct result spin_res[N_SPIN][MAX_RUNS];
extern bool sweep_have[MAX_VARIANTS][MAX_RUNS][N_SWEEP];

/* hb_util.c */
void pin_to(int cpu);
int my_tid(void);
uint64_t thread_cpu_ns(pthread_t t);
uint64_t self_cpu_ns(void);
void calibrate_clock(void);
void ctx_switches(int tid, uint64_t *vol, uint64_t *invol);
int perf_open(int tid);
uint64_t perf_read(int fd);
void shuffle(int *a, unsigned n);

/* hb_worker.c */
void on_echo(evutil_socket_t fd, short what, void *arg);
int cpu_for(unsigned k);
void worker_setup(struct bworker *w, int v, unsigned id, unsigned nprod, int echo_fd);
void worker_teardown(struct bworker *w, int v);
void worker_counts(struct bworker *w, int v, struct inbox_stats *st);

/* hb_producer.c */
unsigned lane_size(int mode);
void lane_setup(struct lane *l, unsigned size, int kind, uint64_t nap_ns);
void lane_pause(const struct lane *l, void (*relax)(void));
void wait_slot(struct lane *l, unsigned wk);
void idle_post(struct bproducer *p, unsigned wk, int v, int cpu);
void rate_post(struct bproducer *p, unsigned wk, int v, uint64_t due);
void wait_handled(struct lane *l, unsigned wk);
void produce(struct bproducer *p, int v, int mode, double rate, uint64_t deadline);
void *producer_main(void *arg);

/* hb_run.c */
void take_snapshot(struct snapshot *s, int v, unsigned nw, unsigned np, bool open_perf);
double per(double x, uint64_t n);
void run_setup(int v, int mode, unsigned nw, unsigned np, int echo_fd);
void run_teardown(int v, int mode, unsigned nw, unsigned np);
void summarise(struct result *r, int v, int mode, double rate, unsigned nw, unsigned np,
		      const struct snapshot *s0, const struct snapshot *s1, uint64_t start,
		      uint64_t end, const struct histogram *lat, const struct histogram *lag);
void run_one(int v, int mode, double rate, unsigned rep, unsigned order,
		    struct result *r);

/* hb_flood.c */
void flood_run(int v, struct result *r);

/* hb_report.c */
const char *fig(char *buf, size_t n, int prec, double x);
void print_csv(const struct result *r);
unsigned paired(int m, int a, int b, bool tput, double *out);
void print_table(int m);
void print_factorial(int m, bool tput);
void print_sweep(void);
void print_spin(void);
void print_flood(void);
void print_mode_legend(void);
void print_factorial_legend(void);

#endif
