/*
 * hb_run.c - one measured run of handoff-bench: set up, warm up, measure,
 * take the counters before and after, summarise into a result.
 */
#include <config.h>

#include "handoff_bench.h"


void take_snapshot(struct snapshot *s, int v, unsigned nw, unsigned np, bool open_perf)
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

double per(double x, uint64_t n)
{
	return n ? x / (double)n : 0;
}

/* Workers and producers set up for the run, with their lanes. */
void run_setup(int v, int mode, unsigned nw, unsigned np, int echo_fd)
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

void run_teardown(int v, int mode, unsigned nw, unsigned np)
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
void summarise(struct result *r, int v, int mode, double rate, unsigned nw, unsigned np,
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


/* many mode: np producer threads, through their warm-up (hb_producer.c). */
static void start_many(int v, unsigned np)
{
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
}

void run_one(int v, int mode, double rate, unsigned rep, unsigned order,
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
		start_many(v, np);
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

