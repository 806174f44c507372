/*
 * test_post.c - the core used as a library: start a server with a do-nothing
 * protocol, post functions to its workers from several threads at once, and
 * check each runs exactly once, on its worker's own thread, in order per
 * poster; mts_post_all() reaches every worker; statistics read back.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtserver.h"
#include "tap.h"

#define WORKERS 3
#define POSTERS 4
#define CALLS 20000		/* per poster */

struct ran {
	atomic_uint_fast64_t count[WORKERS];
	pthread_t thread[WORKERS];	/* the thread a worker's calls ran on */
	atomic_bool wrong_thread;
	atomic_bool out_of_order;
	uint32_t last[WORKERS][POSTERS];	/* each written by one worker only */
	struct event_base *base[WORKERS];
};

static struct ran ran;
static struct mts_server *srv;

struct job {
	unsigned worker, poster;
	uint32_t seq;
};

static void on_call(struct event_base *base, void *arg)
{
	struct job *j = arg;

	/* The first call on a worker names its thread and base; the rest must match. */
	if (ran.base[j->worker] == NULL) {
		ran.base[j->worker] = base;
		ran.thread[j->worker] = pthread_self();
	} else if (ran.base[j->worker] != base ||
		   !pthread_equal(ran.thread[j->worker], pthread_self())) {
		atomic_store(&ran.wrong_thread, true);
	}
	if (j->seq != ran.last[j->worker][j->poster] + 1)
		atomic_store(&ran.out_of_order, true);
	ran.last[j->worker][j->poster] = j->seq;
	atomic_fetch_add(&ran.count[j->worker], 1);
	free(j);
}

static void *poster_main(void *arg)
{
	unsigned p = (unsigned)(uintptr_t)arg;
	uint32_t seq[WORKERS] = { 0 };

	for (unsigned i = 0; i < CALLS; i++) {
		struct job *j = malloc(sizeof(*j));
		j->worker = (i * 7 + p) % WORKERS;
		j->poster = p;
		j->seq = ++seq[j->worker];
		if (mts_post(srv, j->worker, on_call, j) != 0)
			free(j);
	}
	return NULL;
}

static atomic_uint all_hits;
static void on_all(struct event_base *base, void *arg)
{
	(void)base;
	(void)arg;
	atomic_fetch_add(&all_hits, 1);
}

/* The protocol: accept and close; this test is about posting. */
static int open_close(struct mts_conn *c, void *arg) { return -ECONNABORTED; }
static void nothing(struct mts_conn *c, void *arg) { }

static void *run_main(void *arg)
{
	return (void *)(intptr_t)mts_run(srv);
}

int main(void)
{
	const char *listen[] = { "127.0.0.1" };
	struct mts_handler h = { .on_open = open_close, .on_shutdown = nothing,
				  .on_close = nothing };
	struct mts_config cfg;
	struct mts_worker_stats st;
	pthread_t runner, posters[POSTERS];
	char why[256];
	uint64_t total = 0;
	void *rc;

	tap_plan(7);
	mts_config_defaults(&cfg);
	cfg.listen = listen;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = WORKERS;
	if (mts_new(&srv, &cfg, &h, why, sizeof(why)) != 0)
		bail(why);
	ok(mts_worker_count(srv) == WORKERS, "mts_worker_count");
	ok(mts_post(srv, WORKERS, on_all, NULL) == -EINVAL, "posting to a worker that does not exist: -EINVAL");
	pthread_create(&runner, NULL, run_main, NULL);

	for (unsigned p = 0; p < POSTERS; p++)
		pthread_create(&posters[p], NULL, poster_main, (void *)(uintptr_t)p);
	for (unsigned p = 0; p < POSTERS; p++)
		pthread_join(posters[p], NULL);
	ok(mts_post_all(srv, on_all, NULL) == 0, "mts_post_all");
	for (int i = 0; i < 500; i++) {
		total = 0;
		for (unsigned w = 0; w < WORKERS; w++)
			total += atomic_load(&ran.count[w]);
		if (total == (uint64_t)POSTERS * CALLS && atomic_load(&all_hits) == WORKERS)
			break;
		usleep(10000);
	}
	ok(total == (uint64_t)POSTERS * CALLS && !atomic_load(&ran.out_of_order),
	   "%d posters x %d calls from other threads: %llu ran, in order per poster",
	   POSTERS, CALLS, (unsigned long long)total);
	ok(!atomic_load(&ran.wrong_thread) && !pthread_equal(ran.thread[0], ran.thread[1]) &&
	   ran.base[0] != ran.base[1], "each call ran on its own worker's thread and event_base");
	ok(atomic_load(&all_hits) == WORKERS, "mts_post_all ran once on each worker");
	mts_worker_stats(srv, 0, &st);
	diag("worker 0: %llu wake-ups, %llu saved, largest batch %llu",
	     (unsigned long long)st.wakeups, (unsigned long long)st.wakeups_saved,
	     (unsigned long long)st.largest_batch);

	mts_stop(srv);
	pthread_join(runner, &rc);
	ok(rc == NULL, "mts_stop from another thread: mts_run returns 0");
	mts_free(srv);
	return tap_done();
}
