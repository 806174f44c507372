/*
 * handoff_bench.c - what does handing a message to another thread's event
 * loop cost, and where does the cost come from? Producer threads (the
 * acceptor's role) post to W worker threads, each running a real libevent
 * event_base with the variant's inbox: the code the server uses
 * (src/core/handoff/inbox.h). Every message carries a stamp; the worker's
 * handler records the difference in a log-bucketed histogram (within 0.4%).
 *
 * Variants: the inbox variants, numbered as inbox.h numbers them (wfcq,
 * mutex-eventfd, mutex-pipe, mutex-elide, wfcq-always: the last two make a
 * two-by-two design with the first two; then the catalogue's vyukov and
 * llist; and ring, bounded, whose refused posts wait for room: wait_room()),
 * and two floors with no queue, which carry one message at a time and so
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
 */
#include <config.h>

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
static int n_queues, n_variants, v_floor_eventfd, v_floor_spin;
static const struct inbox_ops *variant_ops[MAX_VARIANTS];	/* NULL: a floor */
/* The ones the two-by-two and the summaries name. */
static int v_wfcq, v_wfcq_always, v_mutex_eventfd, v_mutex_elide, v_spin;
enum mode { M_IDLE, M_BURST, M_RATE, M_SWEEP, M_MANY, M_SPIN, M_FLOOD, N_MODES };

static const char *variant_names[MAX_VARIANTS];
static const char *const mode_names[N_MODES] = { "idle", "burst", "rate", "sweep", "many",
						 "spin", "flood" };
/* spin mode: spin-then-block in idle mode with each of these polling times. */
static const unsigned spin_budgets[] = { 0, 1, 10, 100 };
#define N_SPIN (sizeof(spin_budgets) / sizeof(spin_budgets[0]))
static const double sweep_rates[] = { 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7 };
#define N_SWEEP (sizeof(sweep_rates) / sizeof(sweep_rates[0]))

static bool is_floor(int v)
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
	unsigned long seed;
	bool pin, csv, perf;
	const char *csv_file;	/* the CSV there, the tables on stdout */
	bool variant[MAX_VARIANTS];	/* which to run */
	bool mode[N_MODES];
};

static struct options opt = {
	.seconds = 1.0, .warmup = 0.2, .workers = 1, .producers = 4, .repeat = 3,
	.rate = 100000, .gap_us = 20, .seed = 1, .spin_us = 10, .budget = 64, .call_ns = 2000,
};

/* The polling time of spin-then-block in the run being set up. */
static unsigned run_spin_us;

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

static struct bworker workers[MAX_WORKERS];
static struct bproducer producers[MAX_PRODUCERS];
static uint64_t clock_cost_ns;		/* one CLOCK_THREAD_CPUTIME_ID read */
static const char *perf_unavailable;	/* why --perf gives no figures */
static FILE *csv_out;			/* where CSV rows go, or NULL */

/* ---- small helpers ---------------------------------------------------- */

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

static int my_tid(void)
{
	return (int)syscall(SYS_gettid);
}

static uint64_t thread_cpu_ns(pthread_t t)
{
	clockid_t id;
	struct timespec ts;

	if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t self_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What one read of the thread CPU clock costs: subtracted from each
 * bracketed post. The median of many back-to-back pairs. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void calibrate_clock(void)
{
	uint64_t d[1001];

	for (int i = 0; i < 1001; i++) {
		uint64_t t0 = self_cpu_ns();
		d[i] = self_cpu_ns() - t0;
	}
	qsort(d, 1001, sizeof(d[0]), cmp_u64);
	clock_cost_ns = d[500];
}

/* Voluntary and involuntary context switches of one thread of ours. */
static void ctx_switches(int tid, uint64_t *vol, uint64_t *invol)
{
	char path[64], line[128];
	unsigned long long v;
	FILE *f;

	*vol = *invol = 0;
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
			*vol = v;
		else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
			*invol = v;
	}
	fclose(f);
}

/* --perf: a cache-miss counter on one thread, or -1 (perf_unavailable says
 * why, once). */
static int perf_open(int tid)
{
	struct perf_event_attr a;
	int fd;

	if (!opt.perf || perf_unavailable != NULL)
		return -1;
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_HARDWARE;
	a.config = PERF_COUNT_HW_CACHE_MISSES;
	a.exclude_kernel = 1;	/* allowed at perf_event_paranoid 2, the default */
	a.exclude_hv = 1;
	fd = (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, 0);
	if (fd < 0)
		perf_unavailable = strerror(errno);
	return fd;
}

static uint64_t perf_read(int fd)
{
	uint64_t v = 0;

	if (fd >= 0 && read(fd, &v, sizeof(v)) != sizeof(v))
		v = 0;
	return v;
}

/* A small seeded generator for the shuffle (xorshift64*). */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void shuffle(int *a, unsigned n)
{
	for (unsigned i = n; i > 1; i--) {
		unsigned j = (unsigned)(rng_next() % i);
		int t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

/* ---- the worker side -------------------------------------------------- */

static inline void handled_one(atomic_uint_fast64_t *h)
{
	atomic_store_explicit(h, atomic_load_explicit(h, memory_order_relaxed) + 1,
			      memory_order_release);
}

static inline void record(struct bworker *w, uint64_t stamp, int cpu)
{
	hist_record(&w->hist, clock_now_ns() - stamp);
	if (cpu >= 0) {
		w->cpu_known++;
		w->same_cpu += sched_getcpu() == cpu;
	}
}

/* flood: a posted call that keeps the worker busy for --call-ns, as
 * tests/test_budget's do. Its stamp is not recorded: the figure of flood
 * mode is the socket's round trip, not how long the calls queue. */
static void flood_call(struct bworker *w)
{
	uint64_t t0 = clock_now_ns();

	while (clock_now_ns() - t0 < opt.call_ns)
		;
	atomic_store_explicit(&w->calls, atomic_load_explicit(&w->calls, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static void on_msg(struct inbox_msg *msg, void *arg)
{
	struct bworker *w = arg;
	struct bench_msg *bm = (struct bench_msg *)msg;

	if (msg->kind == MSG_QUIT) {
		event_base_loopbreak(w->base);
		return;
	}
	if (msg->kind == MSG_CALL)
		flood_call(w);
	else
		record(w, bm->stamp_ns, bm->cpu);
	handled_one(&bm->lane->handled);	/* last: the slot is free after it */
}

/*
 * flood: the pinger's byte is readable on the worker's end of the socket
 * pair. Note how many calls have run, then echo it. The pinger reads the
 * note only after its recv() of this echo has returned, and the echo is
 * sent after the note: that order is the kernel's (the byte itself), which
 * C11 cannot see, so the atomics need no more than relaxed (they are atomic
 * so that no read tears and a thread sanitizer sees no race).
 */
static void on_echo(evutil_socket_t fd, short what, void *arg)
{
	struct bworker *w = arg;
	char buf[16];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);

	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			event_del(w->echo_ev);	/* the pinger has gone: nothing to echo */
		return;
	}
	atomic_store_explicit(&w->calls_at_read,
			      atomic_load_explicit(&w->calls, memory_order_relaxed),
			      memory_order_relaxed);
	/* One byte at a time, into an empty buffer: never partial. */
	if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
		cli_die("flood: the worker cannot echo: %s", strerror(errno));
}

static void on_floor(evutil_socket_t fd, short what, void *arg)
{
	struct bworker *w = arg;
	uint64_t stamp, reads = 0;

	wakeup_drain(&w->floor_wake, &reads);
	atomic_fetch_add_explicit(&w->floor_reads, reads, memory_order_relaxed);
	stamp = atomic_exchange_explicit(&w->slot, 0, memory_order_acquire);
	if (stamp == UINT64_MAX) {
		event_base_loopbreak(w->base);
		return;
	}
	if (stamp == 0)
		return;
	record(w, stamp, atomic_load_explicit(&w->slot_cpu, memory_order_relaxed));
	handled_one(&producers[0].lane[w->id].handled);
}

static void *worker_main(void *arg)
{
	struct bworker *w = arg;

	atomic_store(&w->tid, my_tid());
	pin_to(w->cpu);
	event_base_dispatch(w->base);
	return NULL;
}

/* floor-spin: no loop at all; poll the slot's line until the quit stamp. */
static void *spinner_main(void *arg)
{
	struct bworker *w = arg;
	uint64_t stamp;

	atomic_store(&w->tid, my_tid());
	pin_to(w->cpu);
	for (;;) {
		stamp = atomic_load_explicit(&w->slot, memory_order_acquire);
		if (stamp == 0) {
			cpu_relax();
			continue;
		}
		if (stamp == UINT64_MAX)
			return NULL;
		atomic_store_explicit(&w->slot, 0, memory_order_relaxed);
		record(w, stamp, atomic_load_explicit(&w->slot_cpu, memory_order_relaxed));
		handled_one(&producers[0].lane[w->id].handled);
	}
}

static int cpu_for(unsigned k)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	return opt.pin ? (int)(k % (unsigned)(ncpu > 0 ? ncpu : 1)) : -1;
}

/* echo_fd: flood mode's socket, echoed on this worker's loop (registered
 * here, before the thread runs the loop); -1: none. */
static void worker_setup(struct bworker *w, int v, unsigned id, unsigned nprod, int echo_fd)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->cpu = cpu_for(nprod + id);	/* producers first, then the workers */
	hist_reset(&w->hist);
	if (v == v_floor_spin) {
		if (pthread_create(&w->thread, NULL, spinner_main, w) != 0)
			cli_die("cannot start a worker thread");
		return;
	}
	/* Created here, run only by the worker thread from worker_main() on. */
	if ((w->base = event_base_new()) == NULL)
		cli_die("cannot create an event_base");
	if (v == v_floor_eventfd) {
		if (wakeup_init(&w->floor_wake, WAKEUP_EVENTFD) < 0)
			cli_die("cannot create an eventfd");
		w->floor_ev = event_new(w->base, wakeup_fd(&w->floor_wake), EV_READ | EV_PERSIST,
					on_floor, w);
		if (w->floor_ev == NULL || event_add(w->floor_ev, NULL) == -1)
			cli_die("cannot register the eventfd");
	} else {
		struct inbox_spec spec;
		char us[24], why[256];

		inbox_spec_default(&spec, variant_ops[v]);
		snprintf(us, sizeof(us), "%u", run_spin_us);
		if (v == v_spin && inbox_spec_set(&spec, "us", us, why, sizeof(why)) < 0)
			cli_die("%s", why);
		if (inbox_new(&w->inbox, &spec, w->base, on_msg, w, opt.budget) < 0)
			cli_die("cannot create an inbox");
	}
	if (echo_fd >= 0) {
		w->echo_ev = event_new(w->base, echo_fd, EV_READ | EV_PERSIST, on_echo, w);
		if (w->echo_ev == NULL || event_add(w->echo_ev, NULL) == -1)
			cli_die("cannot register the flood's socket");
	}
	w->quit_msg.m.kind = MSG_QUIT;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		cli_die("cannot start a worker thread");
}

static void worker_teardown(struct bworker *w, int v)
{
	if (is_floor(v)) {
		atomic_store_explicit(&w->slot, UINT64_MAX, memory_order_release);
		if (v == v_floor_eventfd)
			wakeup_signal(&w->floor_wake);
	} else {
		while (inbox_post(w->inbox, &w->quit_msg.m) == -ENOBUFS)
			sched_yield();	/* a full ring: the worker is draining it */
	}
	pthread_join(w->thread, NULL);
	if (w->echo_ev != NULL)
		event_free(w->echo_ev);		/* before its base */
	if (v == v_floor_eventfd) {
		event_free(w->floor_ev);
		wakeup_close(&w->floor_wake);
	} else if (!is_floor(v)) {
		inbox_free(w->inbox, NULL, NULL);
	}
	if (w->base != NULL)
		event_base_free(w->base);
}

/* The inbox's counts so far; a floor has none but floor-eventfd's wake-up
 * fd system calls. */
static void worker_counts(struct bworker *w, int v, struct inbox_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (v == v_floor_eventfd) {
		st->writes = producers[0].lane[w->id].floor_writes;	/* main's own count */
		st->reads = atomic_load_explicit(&w->floor_reads, memory_order_relaxed);
	} else if (!is_floor(v)) {
		inbox_get_stats(w->inbox, st);
	}
}

/* ---- the producer side ------------------------------------------------ */

/* The slots of a lane in `mode`: --inflight, or the mode's default. */
static unsigned lane_size(int mode)
{
	if (opt.inflight != 0)
		return opt.inflight;
	return mode == M_FLOOD ? FLOOD_INFLIGHT : INFLIGHT_DEFAULT;
}

/* `kind`: of every message the lane carries. nap_ns: lane_pause(). */
static void lane_setup(struct lane *l, unsigned size, int kind, uint64_t nap_ns)
{
	memset(l, 0, sizeof(*l));
	l->size = size;
	l->nap_ns = nap_ns;
	if ((l->ring = calloc(size, sizeof(*l->ring))) == NULL)
		cli_die("out of memory");
	for (unsigned i = 0; i < size; i++) {
		l->ring[i].m.kind = kind;
		l->ring[i].lane = l;
	}
}

/*
 * One step of a wait for the worker (a free slot, room in a ring). Where
 * the producer has a CPU of its own and only the throughput counts (burst,
 * many), the step is `relax` (cpu_relax, or sched_yield), and the producer
 * posts again the moment there is room. In flood mode the producer shares
 * its CPU with the pinger, whose round trip is the figure, and waits for
 * thousands of calls of microseconds each: it sleeps, as test_budget's
 * flooder does, so that it does not keep the pinger off that CPU.
 */
static inline void lane_pause(const struct lane *l, void (*relax)(void))
{
	struct timespec ts = { 0, (long)l->nap_ns };

	if (l->nap_ns == 0)
		relax();
	else
		nanosleep(&ts, NULL);	/* woken early by a signal: one look more */
}

static void yield(void)
{
	sched_yield();
}

__attribute__((noreturn)) static void stalled(unsigned wk, const struct lane *l)
{
	cli_die("worker %u stalled: %llu of %llu messages handled (a lost wake-up?)",
		wk, (unsigned long long)l->seen, (unsigned long long)l->posted);
}

/*
 * Waits for a free slot: the shared count is read only when the ring looks
 * full by the producer's own copy. A full ring is waited on until half of it
 * is free, so waits are rare (one per inflight/2 messages at most) and each
 * can be timed with the thread's CPU clock: the CPU spent waiting is kept
 * apart, since it is not the cost of posting. A worker that stops handling
 * for 10 s is a stall (exit 1), as in wait_handled().
 */
static inline void wait_slot(struct lane *l, unsigned wk)
{
	uint64_t t0, cpu0;

	if (l->posted - l->seen < l->size)
		return;
	l->seen = atomic_load_explicit(&l->handled, memory_order_acquire);
	if (l->posted - l->seen < l->size)
		return;
	t0 = clock_now_ns();
	cpu0 = self_cpu_ns();
	for (;;) {
		lane_pause(l, cpu_relax);
		l->seen = atomic_load_explicit(&l->handled, memory_order_acquire);
		if (l->posted - l->seen <= l->size / 2)
			break;
		if (clock_now_ns() - t0 > 10000000000ull)
			stalled(wk, l);
	}
	l->wait_ns += self_cpu_ns() - cpu0;
}

/*
 * A ring (the bounded variant) holds fewer than all the producers' lanes
 * may have in flight (4096 each, and a ring of 4096 by default, shared by
 * every producer of that worker): a refused post waits for room and tries
 * again. The stamp stays the one taken before the first try, so the wait
 * counts in the message's latency, as a full queue would in a server; the
 * CPU spent waiting is kept apart, as in wait_slot(), and the refusals are
 * counted by the inbox (the CSV's `refused`).
 */
static void wait_room(struct bworker *w, struct bench_msg *m, struct lane *l, unsigned wk)
{
	uint64_t t0 = clock_now_ns(), cpu0 = self_cpu_ns();

	do {
		lane_pause(l, yield);	/* yield: the worker may share this CPU */
		if (clock_now_ns() - t0 > 10000000000ull)
			stalled(wk, l);
	} while (inbox_post(w->inbox, &m->m) == -ENOBUFS);
	l->wait_ns += self_cpu_ns() - cpu0;
}

/*
 * The one place latency is defined: a message is stamped here, once its
 * slot is free, with `due` if it has one (rate modes: open loop) or the time
 * now; the worker's handler subtracts the stamp from its own clock.
 */
static inline void stamp_and_post(struct bproducer *p, unsigned wk, int v, uint64_t due, int cpu)
{
	struct lane *l = &p->lane[wk];
	struct bworker *w = &workers[wk];
	uint64_t now;

	wait_slot(l, wk);
	now = clock_now_ns();
	if (due != 0)
		hist_record(&p->lag, now > due ? now - due : 0);
	if (is_floor(v)) {
		atomic_store_explicit(&w->slot_cpu, cpu, memory_order_relaxed);
		atomic_store_explicit(&w->slot, due ? due : now, memory_order_release);
		if (v == v_floor_eventfd) {
			wakeup_signal(&w->floor_wake);
			l->floor_writes++;
		}
	} else {
		struct bench_msg *m = &l->ring[l->posted % l->size];

		m->stamp_ns = due ? due : now;
		m->cpu = cpu;
		if (inbox_post(w->inbox, &m->m) == -ENOBUFS)
			wait_room(w, m, l, wk);
	}
	l->posted++;
}

/*
 * The producer's cost where it also waits (idle: for the worker and the gap;
 * rate: for the next due time), so its thread clock would count the waiting.
 * Idle mode brackets each post with the thread's CPU clock (less what a read
 * of that clock costs); rate modes post up to millions of times a second,
 * where that clock (a system call) would cost more than the post, so they
 * take the monotonic time inside the post instead: the same, unless the
 * thread is preempted inside the post.
 */
static inline void idle_post(struct bproducer *p, unsigned wk, int v, int cpu)
{
	uint64_t t0 = self_cpu_ns(), t1;

	stamp_and_post(p, wk, v, 0, cpu);
	t1 = self_cpu_ns();
	p->post_ns += t1 - t0 > clock_cost_ns ? t1 - t0 - clock_cost_ns : 0;
}

static inline void rate_post(struct bproducer *p, unsigned wk, int v, uint64_t due)
{
	uint64_t t0 = clock_now_ns();

	stamp_and_post(p, wk, v, due, -1);
	p->post_ns += clock_now_ns() - t0;
}

static void wait_handled(struct lane *l, unsigned wk)
{
	uint64_t give_up = clock_now_ns() + 10000000000ull;

	while ((l->seen = atomic_load_explicit(&l->handled, memory_order_acquire)) != l->posted) {
		cpu_relax();
		if (clock_now_ns() > give_up)
			stalled(wk, l);
	}
}

static void spin_until(uint64_t t)
{
	while (clock_now_ns() < t)
		cpu_relax();
}

/* The single producer's loop for one mode, until `deadline`. */
static void produce(struct bproducer *p, int v, int mode, double rate, uint64_t deadline)
{
	unsigned nw = mode == M_FLOOD ? 1 : opt.workers;	/* flood: one worker */
	uint64_t i = 0, interval = (uint64_t)(1e9 / rate);

	switch (mode) {
	case M_IDLE:
		for (uint64_t now = clock_now_ns(); now < deadline; now = clock_now_ns(), i++) {
			unsigned wk = (unsigned)(i % nw);

			idle_post(p, wk, v, sched_getcpu());
			wait_handled(&p->lane[wk], wk);
			spin_until(clock_now_ns() + opt.gap_us * 1000ull);
		}
		break;
	case M_BURST:
	case M_MANY:
	case M_FLOOD:	/* as burst; the lane's size and naps make it a flood */
		for (;; i++) {
			if ((i & 63) == 0 && clock_now_ns() >= deadline)
				break;
			stamp_and_post(p, (unsigned)(i % nw), v, 0, -1);
		}
		break;
	case M_RATE:
	case M_SWEEP:
		for (uint64_t due = clock_now_ns(); due < deadline; due += interval, i++) {
			spin_until(due);
			rate_post(p, (unsigned)(i % nw), v, due);
		}
		break;
	default:
		break;
	}
}

/* many mode: each producer thread runs a warm-up and a measured phase; the
 * main thread snapshots between them. */
static struct {
	int v;
	uint64_t warm_end, end;
	pthread_barrier_t warm_done, go, done, release;
} many;

static void *producer_main(void *arg)
{
	struct bproducer *p = arg;

	atomic_store(&p->tid, my_tid());
	pin_to(p->cpu);
	produce(p, many.v, M_MANY, 1, many.warm_end);
	for (unsigned k = 0; k < opt.workers; k++)
		wait_handled(&p->lane[k], k);
	pthread_barrier_wait(&many.warm_done);
	pthread_barrier_wait(&many.go);		/* main has taken its snapshot */
	produce(p, many.v, M_MANY, 1, many.end);
	for (unsigned k = 0; k < opt.workers; k++)
		wait_handled(&p->lane[k], k);
	pthread_barrier_wait(&many.done);
	pthread_barrier_wait(&many.release);	/* main has read our clocks */
	return NULL;
}

/* ---- one run ------------------------------------------------------------ */

struct snapshot {
	struct tsnap prod[MAX_PRODUCERS], cons[MAX_WORKERS];
	uint64_t writes, reads, wouldblock, refused, handled;
	uint64_t rounds, taken;		/* the inbox's rounds, and messages they handed over */
	uint64_t post_ns, wait_ns[MAX_PRODUCERS];
	int prod_perf[MAX_PRODUCERS], cons_perf[MAX_WORKERS];
};

static void take_snapshot(struct snapshot *s, int v, unsigned nw, unsigned np, bool open_perf)
{
	memset(s, 0, sizeof(*s));
	for (unsigned k = 0; k < nw; k++) {
		struct bworker *w = &workers[k];
		struct inbox_stats st;
		int tid = atomic_load(&w->tid);

		s->cons[k].cpu_ns = thread_cpu_ns(w->thread);
		ctx_switches(tid, &s->cons[k].vcsw, &s->cons[k].ivcsw);
		worker_counts(w, v, &st);
		s->writes += st.writes;
		s->reads += st.reads;
		s->wouldblock += st.wouldblock;
		s->refused += st.refused;
		s->rounds += st.rounds;
		s->taken += st.handled;
		/* stamped messages are recorded, flood's calls counted */
		s->handled += hist_count(&w->hist) +
			      atomic_load_explicit(&w->calls, memory_order_relaxed);
		s->cons_perf[k] = open_perf ? perf_open(tid) : -1;
	}
	for (unsigned j = 0; j < np; j++) {
		struct bproducer *p = &producers[j];
		int tid = atomic_load(&p->tid);

		s->prod[j].cpu_ns = thread_cpu_ns(p->thread);
		ctx_switches(tid, &s->prod[j].vcsw, &s->prod[j].ivcsw);
		s->post_ns += p->post_ns;
		for (unsigned k = 0; k < nw; k++)
			s->wait_ns[j] += p->lane[k].wait_ns;
		s->prod_perf[j] = open_perf ? perf_open(tid) : -1;
	}
}

static double per(double x, uint64_t n)
{
	return n ? x / (double)n : 0;
}

/* Workers and producers set up for the run, with their lanes. */
static void run_setup(int v, int mode, unsigned nw, unsigned np, int echo_fd)
{
	for (unsigned j = 0; j < np; j++) {
		struct bproducer *p = &producers[j];

		p->id = j;
		p->cpu = cpu_for(j);
		p->post_ns = 0;
		hist_reset(&p->lag);
		for (unsigned k = 0; k < nw; k++)
			lane_setup(&p->lane[k], lane_size(mode), mode == M_FLOOD ? MSG_CALL : MSG_DATA,
				   mode == M_FLOOD ? FLOOD_NAP_NS : 0);
	}
	for (unsigned k = 0; k < nw; k++)
		worker_setup(&workers[k], v, k, np, echo_fd);
	for (unsigned k = 0; k < nw; k++)
		while (atomic_load(&workers[k].tid) == 0)
			sched_yield();
}

static void run_teardown(int v, int mode, unsigned nw, unsigned np)
{
	for (unsigned k = 0; k < nw; k++)
		worker_teardown(&workers[k], v);
	for (unsigned j = 0; j < np; j++)
		for (unsigned k = 0; k < nw; k++)
			free(producers[j].lane[k].ring);
}

/*
 * The figures of one measured run, from the snapshots at its start and end
 * and its latency histogram `lat`: rates, costs per message, counts. The
 * mode's own figures are the caller's to add.
 */
static void summarise(struct result *r, int v, int mode, double rate, unsigned nw, unsigned np,
		      const struct snapshot *s0, const struct snapshot *s1, uint64_t start,
		      uint64_t end, const struct histogram *lat, const struct histogram *lag)
{
	uint64_t msgs = s1->handled - s0->handled, prod_misses = 0, cons_misses = 0;
	uint64_t same = 0, known = 0;
	double prod_cpu = 0, cons_cpu = 0, pv = 0, piv = 0, cv = 0, civ = 0;
	bool perf_ok = opt.perf && perf_unavailable == NULL;
	/* burst, many, flood: the producers' CPU less their waits for a slot
	 * (they post, or wait, nothing else); idle, rate: the time inside the
	 * posts (idle_post, rate_post). */
	bool busy_producer = mode == M_BURST || mode == M_MANY || mode == M_FLOOD;

	for (unsigned k = 0; k < nw; k++) {
		cons_cpu += (double)(s1->cons[k].cpu_ns - s0->cons[k].cpu_ns);
		cv += (double)(s1->cons[k].vcsw - s0->cons[k].vcsw);
		civ += (double)(s1->cons[k].ivcsw - s0->cons[k].ivcsw);
		cons_misses += perf_read(s0->cons_perf[k]);
		if (s0->cons_perf[k] >= 0)
			close(s0->cons_perf[k]);
		same += workers[k].same_cpu;
		known += workers[k].cpu_known;
	}
	if (!busy_producer)
		prod_cpu = (double)s1->post_ns;
	for (unsigned j = 0; j < np; j++) {
		/* less the time spent waiting for a free slot (wait_slot()) */
		double busy = (double)(s1->prod[j].cpu_ns - s0->prod[j].cpu_ns) -
			      (double)(s1->wait_ns[j] - s0->wait_ns[j]);

		if (busy_producer)
			prod_cpu += busy > 0 ? busy : 0;
		pv += (double)(s1->prod[j].vcsw - s0->prod[j].vcsw);
		piv += (double)(s1->prod[j].ivcsw - s0->prod[j].ivcsw);
		prod_misses += perf_read(s0->prod_perf[j]);
		if (s0->prod_perf[j] >= 0)
			close(s0->prod_perf[j]);
	}
	*r = (struct result){
		.variant = v, .mode = mode, .workers = nw,
		.producers = np, .offered = (mode == M_RATE || mode == M_SWEEP) ? rate : 0,
		.messages = msgs, .seconds = (double)(end - start) / 1e9,
		.p50 = hist_quantile(lat, 0.50), .p90 = hist_quantile(lat, 0.90),
		.p99 = hist_quantile(lat, 0.99), .p999 = hist_quantile(lat, 0.999),
		.max = hist_max(lat),
		.lag_p99 = hist_quantile(lag, 0.99), .lag_max = hist_max(lag),
		.prod_cpu_ns = per(prod_cpu, msgs),
		.cons_cpu_ns = per(cons_cpu, msgs),
		.writes = per((double)(s1->writes - s0->writes), msgs),
		.reads = per((double)(s1->reads - s0->reads), msgs),
		.cons_vcsw = per(cv, msgs), .cons_ivcsw = per(civ, msgs),
		.prod_vcsw = per(pv, msgs), .prod_ivcsw = per(piv, msgs),
		.wouldblock_n = s1->wouldblock - s0->wouldblock,
		.wouldblock = per((double)(s1->wouldblock - s0->wouldblock), msgs),
		.refused_n = s1->refused - s0->refused,
		.same_cpu = known ? (double)same / (double)known : -1,
		.prod_misses = perf_ok ? per((double)prod_misses, msgs) : -1,
		.cons_misses = perf_ok ? per((double)cons_misses, msgs) : -1,
		.spin_us = v == v_spin ? (int)run_spin_us : -1,
		.budget = is_floor(v) ? 0 : opt.budget,
		.call_ns = -1, .round_trips = -1, .ahead_max = -1, .round_fill = -1,
		.bare_p50 = -1,
	};
	r->msgs_per_s = r->seconds > 0 ? (double)msgs / r->seconds : 0;
	r->sustained = r->offered == 0 || r->msgs_per_s >= SUSTAINED * r->offered;
}

static void flood_run(int v, struct result *r);

static void run_one(int v, int mode, double rate, unsigned rep, unsigned order,
		    struct result *r)
{
	static struct histogram all, lag;
	unsigned nw = opt.workers, np = mode == M_MANY ? opt.producers : 1;
	struct snapshot s0, s1;
	uint64_t start, end;

	if (mode == M_FLOOD) {
		flood_run(v, r);
		r->rep = rep;
		r->order = order;
		return;
	}
	run_setup(v, mode, nw, np, -1);
	if (mode == M_MANY) {
		many.v = v;
		many.warm_end = clock_now_ns() + (uint64_t)(opt.warmup * 1e9);
		pthread_barrier_init(&many.warm_done, NULL, np + 1);
		pthread_barrier_init(&many.go, NULL, np + 1);
		pthread_barrier_init(&many.done, NULL, np + 1);
		pthread_barrier_init(&many.release, NULL, np + 1);
		for (unsigned j = 0; j < np; j++)
			if (pthread_create(&producers[j].thread, NULL, producer_main, &producers[j]) != 0)
				cli_die("cannot start a producer thread");
		pthread_barrier_wait(&many.warm_done);
	} else {
		struct bproducer *p = &producers[0];

		p->thread = pthread_self();
		atomic_store(&p->tid, my_tid());
		pin_to(p->cpu);
		/* The warm-up: the same mode, its figures discarded. */
		produce(p, v, mode, rate, clock_now_ns() + (uint64_t)(opt.warmup * 1e9));
		for (unsigned k = 0; k < nw; k++)
			wait_handled(&p->lane[k], k);
		p->post_ns = 0;
		hist_reset(&p->lag);
	}
	/* Everything is handled: the workers are quiet, their histograms too. */
	for (unsigned k = 0; k < nw; k++) {
		hist_reset(&workers[k].hist);
		workers[k].same_cpu = workers[k].cpu_known = 0;
	}
	take_snapshot(&s0, v, nw, np, true);

	start = clock_now_ns();
	if (mode == M_MANY) {
		many.end = start + (uint64_t)(opt.seconds * 1e9);
		pthread_barrier_wait(&many.go);
		pthread_barrier_wait(&many.done);	/* all posted and handled */
	} else {
		produce(&producers[0], v, mode, rate, start + (uint64_t)(opt.seconds * 1e9));
		for (unsigned k = 0; k < nw; k++)
			wait_handled(&producers[0].lane[k], k);
	}
	end = clock_now_ns();
	take_snapshot(&s1, v, nw, np, false);
	if (mode == M_MANY) {
		pthread_barrier_wait(&many.release);
		for (unsigned j = 0; j < np; j++)
			pthread_join(producers[j].thread, NULL);
	}

	hist_reset(&all);
	hist_reset(&lag);
	for (unsigned k = 0; k < nw; k++)
		hist_merge(&all, &workers[k].hist);
	for (unsigned j = 0; j < np; j++)
		hist_merge(&lag, &producers[j].lag);
	summarise(r, v, mode, rate, nw, np, &s0, &s1, start, end, &all, &lag);
	r->rep = rep;
	r->order = order;
	run_teardown(v, mode, nw, np);
	if (mode == M_MANY) {
		pthread_barrier_destroy(&many.warm_done);
		pthread_barrier_destroy(&many.go);
		pthread_barrier_destroy(&many.done);
		pthread_barrier_destroy(&many.release);
	}
}

/* ---- flood mode: a socket on a flooded loop ----------------------------- */

/*
 * tests/test_budget's scenario at the inbox level, with three threads:
 *
 *   producer (main)  keeps the worker's inbox flooded: as burst mode, but
 *                    with MSG_CALLs of --call-ns each, at most the lane's
 *                    size unhandled (FLOOD_INFLIGHT), and sleeping while it
 *                    waits (lane_pause())
 *   worker           one event_base: the inbox, at most --budget calls per
 *                    round, and on_echo() on its end of a socket pair
 *   pinger           sends one byte, waits for its echo, again, for the
 *                    whole run: the round trip goes into a histogram, and
 *                    the calls that ran between its send and the worker's
 *                    read of the byte into `ahead_max`
 *
 * inbox.c runs at most one round per pass of the loop, and a socket found
 * readable by a poll is served in the same pass: behind the rest of the
 * round that was running when the byte came, at most one more round runs,
 * so at most two budgets of calls run while the byte waits. That count is
 * structural (the scheduler cannot move it); the round trip is not: it
 * also counts every time a thread lost its CPU, which is why the round
 * trip is measured here and not asserted in a test.
 *
 * The socket is an AF_UNIX stream pair, not a loopback TCP connection: what
 * is measured is how long the loop leaves a readable descriptor waiting,
 * and the loop sees both kinds the same way (readable in epoll), while TCP
 * would add its own stack, per-segment softirq work and a listener to set
 * up to every round trip and to its spread. The bare round trip before the
 * flood (`bare_p50`) is that socket's cost with nothing posted.
 *
 * Pinning (--pin): the producer, the worker, then the pinger, on CPUs 0, 1,
 * 2 ... modulo the CPUs: on two, the pinger shares the producer's CPU (the
 * producer sleeps while the inbox is full) and the worker has its own.
 */
#define FLOOD_BARE_PINGS 1000		/* round trips before the flood ... */
#define FLOOD_BARE_MAX_NS 1000000000ull	/* ... or this long, whichever ends first */

enum flood_phase { FLOOD_BARE, FLOOD_WARM, FLOOD_MEASURE, FLOOD_STOP };

static struct flood {
	struct bworker *w;
	int fd;				/* the pinger's end (blocking) */
	int cpu;
	/* Which part of the run it is: where a round trip counts
	 * (pinger_main()). main writes it; the pinger reads it. Relaxed: it
	 * orders nothing, main reads the figures after joining the pinger. */
	atomic_int phase;
	struct flood_figures {
		struct histogram rtt;	/* the pinger's; main reads `count` while it runs */
		uint64_t ahead_max;	/* the pinger's; main's after the join */
	} fig[FLOOD_STOP];
} flood;

/* One round trip: how long it took, and how many calls ran ahead of it. */
static void flood_ping(struct flood *f, uint64_t *rtt, uint64_t *ahead)
{
	uint64_t t0 = clock_now_ns(), sent_at, read_at;
	ssize_t n;
	char c = 'x';

	while ((n = send(f->fd, &c, 1, MSG_NOSIGNAL)) == -1 && errno == EINTR)
		;
	if (n != 1)
		cli_die("flood: the pinger cannot send: %s", strerror(errno));
	/*
	 * Noted after the send, as test_budget does: a pinger preempted before
	 * its send would count calls that ran while no byte was waiting. A
	 * pinger preempted here counts too few (a worker that read the byte
	 * first gives a difference below 0, counted 0): the count can only
	 * err low. Relaxed loads of a counter only the worker writes: at
	 * worst a few calls old, which the tests' slack covers.
	 */
	sent_at = atomic_load_explicit(&f->w->calls, memory_order_relaxed);
	while ((n = recv(f->fd, &c, 1, 0)) == -1 && errno == EINTR)
		;
	if (n != 1)
		cli_die("flood: no echo from the worker for 10 s: its loop stopped serving "
			"its socket (%s)", n == 0 ? "closed" : strerror(errno));
	*rtt = clock_now_ns() - t0;
	read_at = atomic_load_explicit(&f->w->calls_at_read, memory_order_relaxed);
	*ahead = read_at > sent_at ? read_at - sent_at : 0;
}

static void *pinger_main(void *arg)
{
	struct flood *f = arg;
	struct flood_figures *fg;
	uint64_t rtt, ahead;
	int ph;

	pin_to(f->cpu);
	while (atomic_load_explicit(&f->phase, memory_order_relaxed) != FLOOD_STOP) {
		flood_ping(f, &rtt, &ahead);
		/* Counted in the phase it ended in: a byte sent in the warm-up
		 * and starved into the measured run is the run's (counted by
		 * its start, a starved socket would hide in the warm-up), and
		 * so is one that ended after the run. */
		ph = atomic_load_explicit(&f->phase, memory_order_relaxed);
		fg = &f->fig[ph == FLOOD_STOP ? FLOOD_MEASURE : ph];
		hist_record(&fg->rtt, rtt);
		if (ahead > fg->ahead_max)
			fg->ahead_max = ahead;
	}
	return NULL;
}

/* Waits until the pinger has measured the bare round trip, or long enough. */
static void flood_bare(struct flood *f)
{
	uint64_t give_up = clock_now_ns() + FLOOD_BARE_MAX_NS;
	struct timespec ms = { 0, 1000000 };

	while (hist_count(&f->fig[FLOOD_BARE].rtt) < FLOOD_BARE_PINGS && clock_now_ns() < give_up)
		nanosleep(&ms, NULL);
}

static void flood_run(int v, struct result *r)
{
	struct bproducer *p = &producers[0];
	struct timeval tmo = { .tv_sec = 10 };
	struct snapshot s0, s1;
	uint64_t start, end, rounds, taken;
	pthread_t pinger;
	int sv[2];

	/* [0] the pinger's, blocking, with a time-out that makes a starved
	 * socket an error; [1] the worker's, non-blocking, as a loop's are. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    evutil_make_socket_nonblocking(sv[1]) == -1 ||
	    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) == -1)
		cli_die("flood: cannot set up a socket pair: %s", strerror(errno));
	for (int i = 0; i < FLOOD_STOP; i++) {
		hist_reset(&flood.fig[i].rtt);
		flood.fig[i].ahead_max = 0;
	}
	run_setup(v, M_FLOOD, 1, 1, sv[1]);
	flood.w = &workers[0];
	flood.fd = sv[0];
	flood.cpu = cpu_for(2);
	atomic_store_explicit(&flood.phase, FLOOD_BARE, memory_order_relaxed);
	if (pthread_create(&pinger, NULL, pinger_main, &flood) != 0)
		cli_die("cannot start the pinger thread");
	flood_bare(&flood);

	p->thread = pthread_self();
	atomic_store(&p->tid, my_tid());
	pin_to(p->cpu);
	/* The warm-up fills the inbox, and it is not drained: the measured run
	 * starts flooded. */
	atomic_store_explicit(&flood.phase, FLOOD_WARM, memory_order_relaxed);
	produce(p, v, M_FLOOD, 1, clock_now_ns() + (uint64_t)(opt.warmup * 1e9));
	take_snapshot(&s0, v, 1, 1, true);
	start = clock_now_ns();
	atomic_store_explicit(&flood.phase, FLOOD_MEASURE, memory_order_relaxed);
	produce(p, v, M_FLOOD, 1, start + (uint64_t)(opt.seconds * 1e9));
	end = clock_now_ns();
	/* Before the drain: the calls that ran while the flood lasted. */
	take_snapshot(&s1, v, 1, 1, false);
	atomic_store_explicit(&flood.phase, FLOOD_STOP, memory_order_relaxed);
	pthread_join(pinger, NULL);
	wait_handled(&p->lane[0], 0);

	hist_reset(&p->lag);
	summarise(r, v, M_FLOOD, 1, 1, 1, &s0, &s1, start, end, &flood.fig[FLOOD_MEASURE].rtt,
		  &p->lag);
	/* Both counts from one read of the inbox's statistics, which a round
	 * updates together at its end: `calls`, read apart from them, could be
	 * a round ahead. */
	rounds = s1.rounds - s0.rounds;
	taken = s1.taken - s0.taken;
	r->call_ns = opt.call_ns;
	r->round_trips = (double)hist_count(&flood.fig[FLOOD_MEASURE].rtt);
	r->ahead_max = (double)flood.fig[FLOOD_MEASURE].ahead_max;
	r->round_fill = rounds ? (double)taken / ((double)rounds * opt.budget) : 0;
	r->bare_p50 = (double)hist_quantile(&flood.fig[FLOOD_BARE].rtt, 0.50);
	close(sv[0]);		/* the worker sees the end, and stops echoing */
	run_teardown(v, M_FLOOD, 1, 1);
	close(sv[1]);
}

/* ---- output ------------------------------------------------------------- */

#define CSV_HEADER "variant,mode,workers,producers,rep,order,seed,pinned,offered_per_s," \
	"messages,seconds,msgs_per_s,sustained,p50_ns,p90_ns,p99_ns,p999_ns,max_ns," \
	"lag_p99_ns,lag_max_ns,prod_cpu_ns,cons_cpu_ns,writes_per_msg,reads_per_msg," \
	"prod_vcsw_per_msg,prod_ivcsw_per_msg,cons_vcsw_per_msg,cons_ivcsw_per_msg," \
	"wouldblock,wouldblock_per_msg,same_cpu,prod_misses_per_msg,cons_misses_per_msg," \
	"refused,spin_us,budget,call_ns,round_trips,calls_ahead_max,round_fill,bare_p50_ns"

/* A figure with `prec` decimals, or "-" where it does not exist (-1). */
static const char *fig(char *buf, size_t n, int prec, double x)
{
	if (x < 0)
		return "-";
	snprintf(buf, n, "%.*f", prec, x);
	return buf;
}

static void print_csv(const struct result *r)
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

/* median [min, max] of n values, into buf. */
static const char *summary(char *buf, size_t len, double *v, unsigned n)
{
	if (n == 0)
		return "-";
	qsort(v, n, sizeof(v[0]), cmp_double);
	if (n == 1)
		snprintf(buf, len, "%.2f", v[0]);
	else
		snprintf(buf, len, "%.2f [%.2f, %.2f]", n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2,
			 v[0], v[n - 1]);
	return buf;
}

/* Every run's result: [mode][variant][rep]; sweep keeps one per rate. */
static struct result results[N_MODES][MAX_VARIANTS][MAX_RUNS];
static bool have[N_MODES][MAX_VARIANTS][MAX_RUNS];
static struct result sweep_res[MAX_VARIANTS][MAX_RUNS][N_SWEEP];
static struct result spin_res[N_SPIN][MAX_RUNS];
static bool sweep_have[MAX_VARIANTS][MAX_RUNS][N_SWEEP];

/* The run whose p50 is the median of the variant's runs (no row assembled
 * from different runs). */
static const struct result *median_run(int m, int v)
{
	const struct result *rs[MAX_RUNS];
	unsigned n = 0;

	for (unsigned k = 0; k < opt.repeat; k++)
		if (have[m][v][k])
			rs[n++] = &results[m][v][k];
	for (unsigned i = 1; i < n; i++)	/* insertion sort by p50 */
		for (unsigned j = i; j > 0 && rs[j - 1]->p50 > rs[j]->p50; j--) {
			const struct result *t = rs[j];
			rs[j] = rs[j - 1];
			rs[j - 1] = t;
		}
	return n ? rs[(n - 1) / 2] : NULL;
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
static unsigned paired(int m, int a, int b, bool tput, double *out)
{
	unsigned n = 0;

	for (unsigned k = 0; k < opt.repeat; k++) {
		double r = ratio_in(m, k, a, b, tput);

		if (r > 0)
			out[n++] = r;
	}
	return n;
}

static void print_table(int m)
{
	char s1[48], s2[48], s3[48];
	double v1[MAX_RUNS], v2[MAX_RUNS], v3[MAX_RUNS];	/* one per summary: one printf */

	printf("\n%s mode: the run with the median p50 of %u; ratios paired per repetition, "
	       "median [min, max]\n", mode_names[m], opt.repeat);
	printf("%-14s %10s %8s %8s %9s %9s %9s %8s %8s %7s %7s %6s %5s  %-22s %-22s %-22s\n",
	       "variant", "msgs/s", "p50 ns", "p99 ns", "max ns", "lag99 ns", "prod ns", "cons ns",
	       "wr/msg", "rd/msg", "cs/msg", "wb", "same", "p50 x wfcq", "msgs/s x wfcq",
	       m == M_IDLE ? "p50 x floor-eventfd" : "");
	for (int vv = 0; vv < n_variants; vv++) {
		const struct result *r = median_run(m, vv);
		char a[32], lag[32];

		if (r == NULL)
			continue;
		printf("%-14s %10.0f %8llu %8llu %9llu %9s %9.0f %8.0f %8.4f %7.3f %7.3f %6llu %5s  %-22s %-22s %-22s\n",
		       variant_names[vv], r->msgs_per_s, (unsigned long long)r->p50,
		       (unsigned long long)r->p99, (unsigned long long)r->max,
		       fig(lag, sizeof(lag), 0, r->offered > 0 ? (double)r->lag_p99 : -1), r->prod_cpu_ns,
		       r->cons_cpu_ns, r->writes, r->reads, r->cons_vcsw + r->cons_ivcsw,
		       (unsigned long long)r->wouldblock_n,
		       fig(a, sizeof(a), 2, r->same_cpu),
		       summary(s1, sizeof(s1), v1, paired(m, vv, v_wfcq, false, v1)),
		       is_floor(vv) ? "-" : summary(s2, sizeof(s2), v2, paired(m, vv, v_wfcq, true, v2)),
		       m == M_IDLE ? summary(s3, sizeof(s3), v3, paired(m, vv, v_floor_eventfd, false, v3)) : "");
	}
}

/*
 * The two-by-two: what elision buys with each queue, what the lock-free
 * queue buys with each signalling rule, both together, and the interaction
 * (together / (elision with the lock x lock-free with every post): 1 when
 * the two factors multiply independently). Each ratio paired per repetition.
 */
static void print_factorial(int m, bool tput)
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
}

/* sweep: per variant, the run with the median p50 at each offered rate, up
 * to the first rate it could not sustain in that repetition. */
static void print_sweep(void)
{
	double v[MAX_RUNS];
	char s[64];

	printf("\nsweep: p50 / p99 in us at each offered rate (the run with the median p50); "
	       "'x' = not sustained (achieved < %.0f%% of offered)\n%-14s", SUSTAINED * 100, "variant");
	for (unsigned i = 0; i < N_SWEEP; i++) {
		char head[32];

		snprintf(head, sizeof(head), "%.0fk", sweep_rates[i] / 1e3);
		printf(" %16s", head);
	}
	printf("  %s\n", "highest sustained, msgs/s x wfcq");
	for (int vv = 0; vv < n_variants; vv++) {
		bool any = false;
		unsigned n = 0;

		for (unsigned k = 0; k < opt.repeat; k++)
			any |= sweep_have[vv][k][0];
		if (!any)
			continue;
		printf("%-14s", variant_names[vv]);
		for (unsigned i = 0; i < N_SWEEP; i++) {
			const struct result *rs[MAX_RUNS];
			unsigned c = 0;

			for (unsigned k = 0; k < opt.repeat; k++)
				if (sweep_have[vv][k][i])
					rs[c++] = &sweep_res[vv][k][i];
			for (unsigned a = 1; a < c; a++)
				for (unsigned b = a; b > 0 && rs[b - 1]->p50 > rs[b]->p50; b--) {
					const struct result *t = rs[b];
					rs[b] = rs[b - 1];
					rs[b - 1] = t;
				}
			if (c == 0) {
				printf(" %16s", "");
			} else {
				const struct result *r = rs[(c - 1) / 2];
				char cell[48];

				snprintf(cell, sizeof(cell), "%.1f/%.1f%s", r->p50 / 1e3, r->p99 / 1e3,
					 r->sustained ? "" : "x");
				printf(" %16s", cell);
			}
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
}

/*
 * spin mode: spin-then-block in idle mode at each polling time, beside the
 * two floors of the same repetitions (idle mode): latency against the CPU
 * the worker spends per message, which is what polling buys and costs.
 */
static void print_spin(void)
{
	printf("\nspin: spin-then-block, one message at a time (a %u us gap), at each polling "
	       "time; the run with the median p50 of %u\n%-18s %8s %8s %9s %8s %8s\n", opt.gap_us,
	       opt.repeat, "polling", "p50 ns", "p99 ns", "cons ns", "wr/msg", "cs/msg");
	for (unsigned i = 0; i < N_SPIN; i++) {
		const struct result *rs[MAX_RUNS], *r;
		unsigned c = 0;
		char name[32];

		for (unsigned k = 0; k < opt.repeat; k++)
			rs[c++] = &spin_res[i][k];
		for (unsigned a = 1; a < c; a++)
			for (unsigned b = a; b > 0 && rs[b - 1]->p50 > rs[b]->p50; b--) {
				const struct result *t = rs[b];
				rs[b] = rs[b - 1];
				rs[b - 1] = t;
			}
		r = rs[(c - 1) / 2];
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
}

/*
 * flood: per variant, the run with the median round-trip p50: the round
 * trip's quantiles, beside the bare one; the most calls that ran while a
 * byte waited, beside inbox.c's bound; the calls' rate and how full the
 * rounds were (the flood was real where that is near 1).
 */
static void print_flood(void)
{
	double v[MAX_RUNS];
	char s[48];

	printf("\nflood mode: one worker's inbox flooded with %u ns calls (at most %u waiting, "
	       "budget %u), a byte ping-ponged\nover a socket pair on the same loop; round trips "
	       "in us; the run with the median p50 of %u\n", opt.call_ns, lane_size(M_FLOOD),
	       opt.budget, opt.repeat);
	printf("%-16s %9s %8s %8s %8s %8s %9s %6s %6s %5s %7s  %s\n", "variant", "calls/s",
	       "p50 us", "p99 us", "p99.9 us", "max us", "bare p50", "ahead", "bound", "fill",
	       "pings", "p50 x wfcq");
	for (int vv = 0; vv < n_variants; vv++) {
		const struct result *r = median_run(M_FLOOD, vv);
		double ahead = 0;	/* a bound holds in every run, or it does not hold */

		if (r == NULL)
			continue;
		for (unsigned k = 0; k < opt.repeat; k++)
			if (have[M_FLOOD][vv][k] && results[M_FLOOD][vv][k].ahead_max > ahead)
				ahead = results[M_FLOOD][vv][k].ahead_max;
		printf("%-16s %9.0f %8.1f %8.1f %8.1f %8.1f %9.1f %6.0f %6u %5.2f %7.0f  %s\n",
		       variant_names[vv], r->msgs_per_s, r->p50 / 1e3, r->p99 / 1e3, r->p999 / 1e3,
		       r->max / 1e3, r->bare_p50 / 1e3, ahead, 2 * r->budget, r->round_fill,
		       r->round_trips,
		       summary(s, sizeof(s), v, paired(M_FLOOD, vv, v_wfcq, false, v)));
	}
	printf("ahead: the most calls run between a send and the worker's read of the byte, "
	       "over all %u runs\n(bound: two budgets, inbox.c); fill: calls per round over "
	       "the budget\n", opt.repeat);
}

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
"  -h, --help       this help\n"
"\n"
"Latency runs from the message's stamp to the worker's handler: the stamp is\n"
"taken once the producer has a free slot, or is the due time in rate and\n"
"sweep modes. flood mode floods one worker with calls while a byte\n"
"ping-pongs over a socket pair on the same loop: its latency is that round\n"
"trip, and it counts the calls run while the byte waited (at most two\n"
"budgets). floor-eventfd and floor-spin carry one message at a time and\n"
"run in idle mode only. Ratios are paired within a repetition.\n");
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
	       O_BUDGET, O_CALL_NS };
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	for (int v = 0; v < n_variants; v++)
		opt.variant[v] = true;
	opt.mode[M_IDLE] = opt.mode[M_BURST] = opt.mode[M_RATE] = true;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
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

static void report(const struct result *r)
{
	if (csv_out != NULL)
		print_csv(r);
	if (opt.csv)
		return;
	if (r->mode == M_FLOOD) {
		fprintf(stderr, "  rep %u flood %-14s %10.0f calls/s  round trip p50 %7.1f us  "
			"p99 %8.1f us  ahead %.0f (bound %u)\n", r->rep, variant_names[r->variant],
			r->msgs_per_s, r->p50 / 1e3, r->p99 / 1e3, r->ahead_max, 2 * r->budget);
		return;
	}
	fprintf(stderr, "  rep %u %-5s %-14s %10.0f msgs/s  p50 %7llu ns  p99 %8llu ns%s\n",
		r->rep, mode_names[r->mode], variant_names[r->variant], r->msgs_per_s,
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

int main(int argc, char **argv)
{
	static const int plain_modes[] = { M_IDLE, M_BURST, M_RATE, M_MANY, M_FLOOD };
	int order[MAX_VARIANTS];

	cli_set_prog("handoff-bench");
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
	for (unsigned rep = 0; rep < opt.repeat; rep++) {
		bool stopped[MAX_VARIANTS] = { false };

		shuffle(order, n_variants);
		fprintf(stderr, "# repetition %u, order:", rep + 1);
		for (int i = 0; i < n_variants; i++)
			if (opt.variant[order[i]])
				fprintf(stderr, " %s", variant_names[order[i]]);
		fprintf(stderr, "\n");
		for (unsigned mi = 0; mi < sizeof(plain_modes) / sizeof(plain_modes[0]); mi++) {
			int m = plain_modes[mi];

			if (!opt.mode[m])
				continue;
			for (int i = 0; i < n_variants; i++) {
				int v = order[i];

				if (!opt.variant[v] || (is_floor(v) && m != M_IDLE))
					continue;
				run_one(v, m, opt.rate, rep + 1, (unsigned)i + 1, &results[m][v][rep]);
				have[m][v][rep] = true;
				report(&results[m][v][rep]);
			}
		}
		if (opt.mode[M_SPIN]) {
			/* The polling times in a shuffled order too. */
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
		if (!opt.mode[M_SWEEP])
			continue;
		for (unsigned ri = 0; ri < N_SWEEP; ri++)
			for (int i = 0; i < n_variants; i++) {
				int v = order[i];
				struct result *r = &sweep_res[v][rep][ri];

				if (!opt.variant[v] || is_floor(v) || stopped[v])
					continue;
				run_one(v, M_SWEEP, sweep_rates[ri], rep + 1, (unsigned)i + 1, r);
				sweep_have[v][rep][ri] = true;
				stopped[v] = !r->sustained;
				report(r);
			}
	}
	if (opt.perf && perf_unavailable != NULL)
		fprintf(stderr, "# --perf: cache misses unavailable here (perf_event_open: %s); "
			"those columns are '-'\n", perf_unavailable);
	if (csv_out != NULL && csv_out != stdout)
		fclose(csv_out);
	if (opt.csv)
		return 0;
	for (unsigned mi = 0; mi < sizeof(plain_modes) / sizeof(plain_modes[0]); mi++)
		if (opt.mode[plain_modes[mi]] && plain_modes[mi] != M_FLOOD)
			print_table(plain_modes[mi]);
	if (opt.mode[M_SWEEP])
		print_sweep();
	if (opt.mode[M_SPIN])
		print_spin();
	if (opt.mode[M_FLOOD])
		print_flood();
	for (int vv = 0; vv < n_queues; vv++)
		if (!opt.variant[vv])
			return 0;	/* the factorial needs all four */
	if (opt.mode[M_BURST])
		print_factorial(M_BURST, true);
	if (opt.mode[M_IDLE])
		print_factorial(M_IDLE, false);
	if (opt.mode[M_MANY])
		print_factorial(M_MANY, true);
	return 0;
}
