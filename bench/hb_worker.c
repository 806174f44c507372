/*
 * hb_worker.c - handoff-bench's worker side: the loop, the handler that
 * records each message's latency, the floors' worker, setup and teardown.
 */
#include <config.h>

#include "handoff_bench.h"


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
void on_echo(evutil_socket_t fd, short what, void *arg)
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

int cpu_for(unsigned k)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	return opt.pin ? (int)(k % (unsigned)(ncpu > 0 ? ncpu : 1)) : -1;
}

/* echo_fd: flood mode's socket, echoed on this worker's loop (registered
 * here, before the thread runs the loop); -1: none. */
void worker_setup(struct bworker *w, int v, unsigned id, unsigned nprod, int echo_fd)
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

void worker_teardown(struct bworker *w, int v)
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
void worker_counts(struct bworker *w, int v, struct inbox_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (v == v_floor_eventfd) {
		st->writes = producers[0].lane[w->id].floor_writes;	/* main's own count */
		st->reads = atomic_load_explicit(&w->floor_reads, memory_order_relaxed);
	} else if (!is_floor(v)) {
		inbox_get_stats(w->inbox, st);
	}
}

