/*
 * hb_producer.c - handoff-bench's producer side: lanes and their flow
 * control, the stamp, and each mode's way of posting.
 */
#include <config.h>

#include "handoff_bench.h"


/* The slots of a lane in `mode`: --inflight, or the mode's default. */
unsigned lane_size(int mode)
{
	if (opt.inflight != 0)
		return opt.inflight;
	return mode == M_FLOOD ? FLOOD_INFLIGHT : INFLIGHT_DEFAULT;
}

/* `kind`: of every message the lane carries. nap_ns: lane_pause(). */
void lane_setup(struct lane *l, unsigned size, int kind, uint64_t nap_ns)
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
void lane_pause(const struct lane *l, void (*relax)(void))
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
void wait_slot(struct lane *l, unsigned wk)
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
void idle_post(struct bproducer *p, unsigned wk, int v, int cpu)
{
	uint64_t t0 = self_cpu_ns(), t1;

	stamp_and_post(p, wk, v, 0, cpu);
	t1 = self_cpu_ns();
	p->post_ns += t1 - t0 > clock_cost_ns ? t1 - t0 - clock_cost_ns : 0;
}

void rate_post(struct bproducer *p, unsigned wk, int v, uint64_t due)
{
	uint64_t t0 = clock_now_ns();

	stamp_and_post(p, wk, v, due, -1);
	p->post_ns += clock_now_ns() - t0;
}

void wait_handled(struct lane *l, unsigned wk)
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
void produce(struct bproducer *p, int v, int mode, double rate, uint64_t deadline)
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

struct many_mode many;		/* handoff_bench.h */

void *producer_main(void *arg)
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

