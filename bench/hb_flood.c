/*
 * hb_flood.c - handoff-bench's flood mode: a socket's round trip on a loop
 * whose inbox is kept full of calls (tests/test_budget's scenario).
 */
#include <config.h>

#include "handoff_bench.h"


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

void flood_run(int v, struct result *r)
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

