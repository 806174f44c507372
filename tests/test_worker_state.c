/*
 * test_worker_state.c - the per-worker state of mtserver.h, through the
 * public API: worker_init runs once on each worker's own thread before
 * that worker serves a connection or a posted call (even one posted before
 * mts_run()); mts_worker_state() and mts_conn_worker_state() hand back
 * what it returned; worker_fini runs once per worker, in mts_free(), on
 * its caller's thread, after every connection's on_close.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "mtserver.h"
#include "tap.h"

#define WORKERS 3
#define CLIENTS 12

struct wstate {
	unsigned worker;
	pthread_t thread;		/* the worker's, as worker_init saw it */
};

static struct mts_server *srv;
static pthread_t main_thread;
static atomic_uint inits, finis, opens, live;
static atomic_bool init_wrong, open_wrong, call_wrong, fini_wrong;
static atomic_uint calls_ran;

static void *worker_init(unsigned worker, struct event_base *base, void *arg)
{
	struct wstate *w = calloc(1, sizeof(*w));

	if (w == NULL || base == NULL || arg != &inits || worker >= WORKERS ||
	    pthread_equal(pthread_self(), main_thread))
		atomic_store(&init_wrong, true);
	if (w != NULL) {
		w->worker = worker;
		w->thread = pthread_self();
	}
	atomic_fetch_add(&inits, 1);
	return w;
}

static void worker_fini(unsigned worker, void *state, void *arg)
{
	struct wstate *w = state;

	/* After every on_close, on mts_free()'s thread, with its own state. */
	if (w == NULL || w->worker != worker || atomic_load(&live) != 0 ||
	    !pthread_equal(pthread_self(), main_thread) || arg != &inits)
		atomic_store(&fini_wrong, true);
	atomic_fetch_add(&finis, 1);
	free(w);
}

/* A posted call: the worker's state is there already, on its thread. */
static void check_call(struct event_base *base, void *arg, int cancelled)
{
	unsigned worker = (unsigned)(uintptr_t)arg;
	struct wstate *w;

	if (cancelled)
		return;
	w = mts_worker_state(srv, worker);
	if (w == NULL || w->worker != worker || !pthread_equal(w->thread, pthread_self()))
		atomic_store(&call_wrong, true);
	atomic_fetch_add(&calls_ran, 1);
}

static int on_open(struct mts_conn *c, void *arg)
{
	struct wstate *w = mts_conn_worker_state(c);

	if (w == NULL || w->worker != mts_conn_worker(c) ||
	    !pthread_equal(w->thread, pthread_self()) ||
	    w != mts_worker_state(srv, mts_conn_worker(c)))
		atomic_store(&open_wrong, true);
	atomic_fetch_add(&live, 1);
	atomic_fetch_add(&opens, 1);
	return 0;
}

static void on_shutdown(struct mts_conn *c, void *arg)
{
	mts_conn_close(c);
}

static void on_close(struct mts_conn *c, void *arg)
{
	atomic_fetch_sub(&live, 1);
}

static void *run_main(void *arg)
{
	mts_run(srv);
	return NULL;
}

static bool opened_all(void)
{
	return atomic_load(&opens) == CLIENTS;
}

static bool ran_all(void)
{
	return atomic_load(&calls_ran) == WORKERS;
}

/* Waits up to ms for done(); false on time-out. */
static bool wait_for(bool (*done)(void), int ms)
{
	for (int i = 0; i < ms && !done(); i++)
		usleep(1000);
	return done();
}

static void test_state(void)
{
	static const char *const listen[] = { "127.0.0.1" };
	struct mts_handler h = { .on_open = on_open, .on_shutdown = on_shutdown,
				 .on_close = on_close, .arg = &inits,
				 .worker_init = worker_init, .worker_fini = worker_fini };
	struct mts_config cfg;
	const char *name;
	char why[256];
	int fds[CLIENTS], port;
	pthread_t runner;
	bool states = true, done;

	mts_config_defaults(&cfg);
	cfg.listen = listen;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = WORKERS;
	cfg.shutdown_grace_ms = 1000;
	if (mts_new(&srv, &cfg, &h, why, sizeof(why)) < 0)
		bail(why);
	ok(mts_worker_state(srv, 0) == NULL && atomic_load(&inits) == 0,
	   "before mts_run: no worker_init yet, mts_worker_state is NULL");
	for (unsigned w = 0; w < WORKERS; w++)	/* queued before any worker runs */
		if (mts_post(srv, w, check_call, (void *)(uintptr_t)w) != 0)
			bail("mts_post before mts_run");
	name = mts_listener_name(srv, 0);
	port = atoi(strrchr(name, ':') + 1);
	pthread_create(&runner, NULL, run_main, NULL);

	tap_waiting("the calls posted before mts_run() to run");
	done = wait_for(ran_all, 10000);
	ok(done && !atomic_load(&call_wrong),
	   "calls posted before mts_run run after their worker's worker_init, on its thread, "
	   "and find its state (%u ran)", atomic_load(&calls_ran));
	for (int i = 0; i < CLIENTS; i++)
		if ((fds[i] = tcp_connect(port)) < 0)
			bail("cannot connect to the server");
	tap_waiting("every connection to be opened");
	done = wait_for(opened_all, 10000);
	ok(done && !atomic_load(&open_wrong),
	   "%d connections: on_open finds its worker's state (mts_conn_worker_state, "
	   "mts_worker_state), made on that thread (%u opened)", CLIENTS,
	   atomic_load(&opens));
	ok(atomic_load(&inits) == WORKERS && !atomic_load(&init_wrong),
	   "worker_init ran once per worker (%u), each on a worker's thread with its base "
	   "and the handler's arg", atomic_load(&inits));
	for (unsigned w = 0; w < WORKERS; w++) {
		struct wstate *s = mts_worker_state(srv, w);

		states = states && s != NULL && s->worker == w;
	}
	ok(states && mts_worker_state(srv, WORKERS) == NULL,
	   "mts_worker_state from another thread: each worker's own; NULL past the last");

	mts_stop(srv);
	tap_waiting("mts_run() to return");
	pthread_join(runner, NULL);
	ok(atomic_load(&finis) == 0, "after mts_run: worker_fini not yet (it is mts_free's)");
	mts_free(srv);
	for (int i = 0; i < CLIENTS; i++)
		close(fds[i]);
	ok(atomic_load(&finis) == WORKERS && !atomic_load(&fini_wrong),
	   "mts_free: worker_fini once per worker (%u), after every on_close, on its caller's "
	   "thread, with that worker's state", atomic_load(&finis));
}

/* Without worker_init: no state, nothing called. */
static void test_none(void)
{
	struct mts_handler h = { .on_open = on_open, .on_shutdown = on_shutdown,
				 .on_close = on_close };
	struct mts_config cfg;
	char why[256];
	pthread_t runner;

	mts_config_defaults(&cfg);
	cfg.port = "0";
	cfg.threads = 2;
	if (mts_new(&srv, &cfg, &h, why, sizeof(why)) < 0)
		bail(why);
	pthread_create(&runner, NULL, run_main, NULL);
	mts_stop(srv);
	pthread_join(runner, NULL);
	ok(mts_worker_state(srv, 0) == NULL && mts_worker_state(srv, 1) == NULL,
	   "no worker_init: mts_worker_state is NULL for every worker");
	mts_free(srv);
}

int main(void)
{
	tap_watchdog(120);
	main_thread = pthread_self();
	tap_plan(8);
	test_state();
	test_none();
	return tap_done();
}
