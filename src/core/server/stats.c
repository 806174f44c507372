/*
 * stats.c - a worker's statistics, gathered in one place from the three
 * owners that count them: the connection home (connections, bytes,
 * accept-to-worker latency), the executor's inbox (wake-ups, batches) and,
 * with --accept reuseport or shared, the worker's own accept unit (the
 * herd: wake-ups that found nothing to accept). Each counter has one
 * writer; reading is relaxed and approximate while traffic flows.
 */
#include <config.h>

#include <errno.h>

#include "counter.h"
#include "log.h"
#include "server.h"

void stats_counts(const struct mts_server *s, unsigned worker, struct mts_worker_stats *out)
{
	const struct conn_home *h = &s->homes[worker];
	struct inbox_stats ist;

	exec_inbox_stats(s->ex, worker, &ist);
	*out = (struct mts_worker_stats){
		.live = atomic_load_explicit(&h->live, memory_order_relaxed),
		.accepted = counter_get(&h->accepted),
		.bytes_in = counter_get(&h->bytes_in),
		.bytes_out = counter_get(&h->bytes_out),
		.wakeups = ist.wakeups,
		.wakeups_saved = ist.wakeups_saved,
		.largest_batch = ist.largest_batch,
		.rounds = ist.rounds,
		.wouldblock = ist.wouldblock,
		.refused = ist.refused,
		.conns_refused = counter_get(&h->refused),
		.handled = ist.handled,
		.proxy_v1 = counter_get(&h->proxy_headers[0]),
		.proxy_v2 = counter_get(&h->proxy_headers[1]),
		.proxy_local = counter_get(&h->proxy_local),
	};
	for (unsigned k = 0; k < MTS_PROXY_DROPS; k++)
		out->proxy_dropped[k] = counter_get(&h->proxy_drops[k]);
	if (s->udp_homes != NULL) {
		const struct udp_home *u = &s->udp_homes[worker];

		out->udp_received = counter_get(&u->received);
		out->udp_answered = counter_get(&u->answered);
		for (unsigned k = 0; k < MTS_UDP_DROPS; k++)
			out->udp_dropped[k] = counter_get(&u->dropped[k]);
	}
	s->strategy->unit_stats(s, worker, &out->accept_wakeups, &out->accept_empty);
}

int mts_worker_stats(const struct mts_server *s, unsigned worker,
		     struct mts_worker_stats *out)
{
	const struct histogram *lat;

	if (worker >= s->n_workers)
		return -EINVAL;
	stats_counts(s, worker, out);
	lat = &s->homes[worker].handoff_ns;
	out->handoff_p50_ns = hist_quantile(lat, 0.50);
	out->handoff_p90_ns = hist_quantile(lat, 0.90);
	out->handoff_p99_ns = hist_quantile(lat, 0.99);
	out->handoff_max_ns = hist_max(lat);
	return 0;
}

/* SIGUSR1: one line per worker, then the accept side's, on the main thread. */
void stats_log(const struct mts_server *s)
{
	const struct accept_shared *ash = &s->accept_sh;
	struct mts_worker_stats st;

	for (unsigned i = 0; i < s->n_workers; i++) {
		mts_worker_stats(s, i, &st);
		log_report("%s: live %u accepted %llu bytes_in %llu bytes_out %llu "
			   "wakeups_sent %llu wakeups_saved %llu largest_batch %llu "
			   "rounds %llu wouldblock %llu refused %llu conns_refused %llu "
			   "accept_wakeups %llu accept_empty %llu; "
			   "handoff_us p50 %.1f p90 %.1f p99 %.1f max %.1f, wakeups/conn %.3f",
			   exec_tag(s->ex, i), st.live, (unsigned long long)st.accepted,
			   (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
			   (unsigned long long)st.wakeups, (unsigned long long)st.wakeups_saved,
			   (unsigned long long)st.largest_batch, (unsigned long long)st.rounds,
			   (unsigned long long)st.wouldblock, (unsigned long long)st.refused,
			   (unsigned long long)st.conns_refused,
			   (unsigned long long)st.accept_wakeups,
			   (unsigned long long)st.accept_empty,
			   st.handoff_p50_ns / 1e3, st.handoff_p90_ns / 1e3,
			   st.handoff_p99_ns / 1e3, st.handoff_max_ns / 1e3,
			   st.accepted ? (double)st.wakeups / (double)st.accepted : 0.0);
		if (s->sh.proxy != NULL)
			log_report("%s: proxy headers v1 %llu v2 %llu local %llu; dropped: "
				   "source %llu invalid %llu partial %llu timeout %llu",
				   exec_tag(s->ex, i), (unsigned long long)st.proxy_v1,
				   (unsigned long long)st.proxy_v2,
				   (unsigned long long)st.proxy_local,
				   (unsigned long long)st.proxy_dropped[MTS_PROXY_SOURCE],
				   (unsigned long long)st.proxy_dropped[MTS_PROXY_INVALID],
				   (unsigned long long)st.proxy_dropped[MTS_PROXY_PARTIAL],
				   (unsigned long long)st.proxy_dropped[MTS_PROXY_TIMEOUT]);
		if (s->udp_homes != NULL)
			log_report("%s: udp received %llu answered %llu; dropped: truncated %llu "
				   "source %llu destination %llu rate %llu send %llu",
				   exec_tag(s->ex, i), (unsigned long long)st.udp_received,
				   (unsigned long long)st.udp_answered,
				   (unsigned long long)st.udp_dropped[MTS_UDP_TRUNCATED],
				   (unsigned long long)st.udp_dropped[MTS_UDP_SOURCE],
				   (unsigned long long)st.udp_dropped[MTS_UDP_DESTINATION],
				   (unsigned long long)st.udp_dropped[MTS_UDP_RATE],
				   (unsigned long long)st.udp_dropped[MTS_UDP_SEND]);
	}
	log_report("accept: paused at max_conns now %u; pauses max_conns %llu resources %llu",
		   atomic_load_explicit(&ash->paused, memory_order_relaxed),
		   (unsigned long long)atomic_load_explicit(&ash->pauses_full,
							    memory_order_relaxed),
		   (unsigned long long)atomic_load_explicit(&ash->pauses_resources,
							    memory_order_relaxed));
}
