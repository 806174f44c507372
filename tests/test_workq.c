/*
 * test_workq.c - the work queue (mts_workq): jobs run on pool threads, never
 * on a worker; each completion runs on the worker named at submission, with
 * its event_base; with one pool thread jobs start in submission order; and
 * freeing the queue with jobs still queued ends every job in exactly one
 * `done`, the unstarted ones cancelled.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "mtserver.h"
#include "tap.h"

#define WORKERS 2

static struct mts_server *srv;
static struct event_base *worker_base[WORKERS];
static pthread_t worker_thread[WORKERS];
static atomic_uint workers_known;

struct item {
	unsigned worker;
	unsigned seq;
	bool ran_on_worker;	/* written by the pool thread, read in done */
};

static atomic_uint done_count, cancelled_count, wrong_place, freed;
static atomic_uint next_start, out_of_order;

static void learn_worker(struct event_base *base, void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;

	worker_base[w] = base;
	worker_thread[w] = pthread_self();
	atomic_fetch_add(&workers_known, 1);
}

static void work(void *arg)
{
	struct item *it = arg;

	for (unsigned w = 0; w < WORKERS; w++)
		if (pthread_equal(pthread_self(), worker_thread[w]))
			it->ran_on_worker = true;
	/* FIFO check, meaningful with one pool thread. */
	if (atomic_fetch_add(&next_start, 1) != it->seq)
		atomic_fetch_add(&out_of_order, 1);
}

static void slow_work(void *arg)
{
	work(arg);
	usleep(2000);
}

static void done(struct event_base *base, void *arg, int cancelled)
{
	struct item *it = arg;

	if (base != worker_base[it->worker] ||
	    !pthread_equal(pthread_self(), worker_thread[it->worker]) || it->ran_on_worker)
		atomic_fetch_add(&wrong_place, 1);
	if (cancelled)
		atomic_fetch_add(&cancelled_count, 1);
	else
		atomic_fetch_add(&done_count, 1);
	free(it);
	atomic_fetch_add(&freed, 1);
}

static int refuse(struct mts_conn *c, void *arg) { return -ECONNABORTED; }
static void nothing(struct mts_conn *c, void *arg) { }
static void *run_main(void *arg) { return (void *)(intptr_t)mts_run(srv); }

static void submit_many(struct mts_workq *q, unsigned n, mts_job_fn fn)
{
	atomic_store(&next_start, 0);
	for (unsigned i = 0; i < n; i++) {
		struct item *it = calloc(1, sizeof(*it));
		it->worker = i % WORKERS;
		it->seq = i;
		if (mts_workq_submit(q, it->worker, fn, done, it) != 0)
			bail("mts_workq_submit failed");
	}
}

static void reset(void)
{
	atomic_store(&done_count, 0);
	atomic_store(&cancelled_count, 0);
	atomic_store(&wrong_place, 0);
	atomic_store(&freed, 0);
	atomic_store(&out_of_order, 0);
}

int main(void)
{
	const char *listen[] = { "127.0.0.1" };
	struct mts_handler h = { .on_open = refuse, .on_shutdown = nothing, .on_close = nothing };
	struct mts_config cfg;
	struct mts_workq *q;
	pthread_t runner;
	char why[256];

	tap_plan(8);
	mts_config_defaults(&cfg);
	cfg.listen = listen;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = WORKERS;
	if (mts_new(&srv, &cfg, &h, why, sizeof(why)) != 0)
		bail(why);
	pthread_create(&runner, NULL, run_main, NULL);
	for (unsigned w = 0; w < WORKERS; w++)
		mts_post(srv, w, learn_worker, (void *)(uintptr_t)w);
	while (atomic_load(&workers_known) < WORKERS)
		usleep(1000);

	/* Three pool threads, 3000 jobs. */
	ok(mts_workq_new(&q, srv, 3) == 0, "a pool of 3 threads");
	ok(mts_workq_submit(q, WORKERS, work, done, NULL) == -EINVAL, "no such worker: -EINVAL");
	reset();
	submit_many(q, 3000, work);
	for (int i = 0; i < 1000 && atomic_load(&done_count) < 3000; i++)
		usleep(5000);
	ok(atomic_load(&done_count) == 3000, "3000 jobs done (%u)", atomic_load(&done_count));
	ok(atomic_load(&wrong_place) == 0,
	   "work ran on pool threads; each done on its own worker's thread and base");
	mts_workq_free(q);

	/* One pool thread: jobs start in submission order. */
	mts_workq_new(&q, srv, 1);
	reset();
	submit_many(q, 2000, work);
	mts_workq_free(q);	/* waits for every done */
	ok(atomic_load(&out_of_order) == 0 && atomic_load(&freed) == 2000,
	   "one pool thread: 2000 jobs started in submission order");

	/* Free with jobs still queued: each ends in exactly one done. */
	mts_workq_new(&q, srv, 1);
	reset();
	submit_many(q, 200, slow_work);
	usleep(20000);
	mts_workq_free(q);
	ok(atomic_load(&done_count) + atomic_load(&cancelled_count) == 200 &&
	   atomic_load(&freed) == 200,
	   "freed with jobs queued: %u completed + %u cancelled = 200, each done once",
	   atomic_load(&done_count), atomic_load(&cancelled_count));
	ok(atomic_load(&done_count) > 0 && atomic_load(&cancelled_count) > 0,
	   "some had run, the rest were cancelled");
	ok(atomic_load(&wrong_place) == 0, "cancelled ones' done also ran on their worker");

	mts_stop(srv);
	pthread_join(runner, NULL);
	mts_free(srv);
	return tap_done();
}
