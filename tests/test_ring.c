/*
 * test_ring.c - dispatch "ring" with a tiny ring: what a full ring refuses,
 * and that nothing is lost or leaked when it does. Through the public API
 * (a server of two workers, ring_size 2), then through echoserver itself
 * (--dispatch ring --ring-size 2).
 *
 *   - a post to a full ring is refused (-ENOBUFS) and its function is not
 *     called; mts_worker_stats counts the refusal
 *   - posters that do not retry: ran + refused == attempted, in order
 *   - a work queue's completions must all arrive, whatever the ring says:
 *     every job ends in exactly one done
 *   - stopping while the rings are full still stops (the stop is posted
 *     again by the retrier), and every call posted runs or is cancelled
 *   - echoserver: a burst of connections, each echoed or closed at once;
 *     the closed ones are the ones counted as refused (SIGUSR1), and the
 *     server goes on serving
 * The sanitizer builds run it too (ASan reports a call that ended in
 * neither run nor cancel: each holds an allocation).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "mtserver.h"
#include "tap.h"

#define WORKERS 2
#define RING 2
#define POSTERS 3
#define ATTEMPTS 20000		/* per poster */
#define JOBS 2000
#define BURST 300		/* connections at once, against echoserver */

static struct mts_server *srv;

/* ---- every call ends once: ran or cancelled ---------------------------- */

static atomic_uint_fast64_t n_ran, n_cancelled;
static atomic_bool out_of_order;

struct call {
	unsigned poster;
	uint32_t seq;
};

static uint32_t last_seq[WORKERS][POSTERS + 1];	/* each row: one worker's */

static void tally(struct event_base *base, void *arg, int cancelled)
{
	struct call *c = arg;

	if (cancelled) {
		atomic_fetch_add(&n_cancelled, 1);
	} else {
		atomic_fetch_add(&n_ran, 1);
		if (c != NULL && c->poster < POSTERS) {
			/* Worker-private row: the worker this call ran on. */
			unsigned w = c->seq >> 24;
			uint32_t seq = c->seq & 0xffffff;

			if (seq <= last_seq[w][c->poster])
				atomic_store(&out_of_order, true);
			last_seq[w][c->poster] = seq;
		}
	}
	free(c);	/* ASan reports a leak if a call ends in neither */
}

struct poster {
	unsigned id;
	uint64_t posted, refused, attempted;
	pthread_t thread;
};

/* Posts without retrying: a refusal is counted, and the call is freed here. */
static void *poster_main(void *arg)
{
	struct poster *p = arg;
	uint32_t seq[WORKERS] = { 0 };

	for (unsigned i = 0; i < ATTEMPTS; i++) {
		unsigned w = (i + p->id) % WORKERS;
		struct call *c = malloc(sizeof(*c));
		int rc;

		c->poster = p->id;
		c->seq = ((uint32_t)w << 24) | ++seq[w];
		p->attempted++;
		rc = mts_post(srv, w, tally, c);
		if (rc == 0) {
			p->posted++;
			continue;
		}
		free(c);	/* refused: fn is not called, arg is ours */
		if (rc == -ENOBUFS)
			p->refused++;
		else
			break;
	}
	return NULL;
}

/* ---- the work queue ---------------------------------------------------- */

static atomic_uint_fast64_t jobs_done, jobs_cancelled, jobs_worked;

static void job_work(void *arg)
{
	atomic_fetch_add(&jobs_worked, 1);
}

static void job_done(struct event_base *base, void *arg, int cancelled)
{
	atomic_fetch_add(cancelled ? &jobs_cancelled : &jobs_done, 1);
	free(arg);
}

/* ---- a worker kept busy, so that its ring stays full ------------------- */

static atomic_uint_fast64_t holding;	/* workers inside hold_call() */
static atomic_bool let_go;

/* Keeps its worker until the test lets go. */
static void hold_call(struct event_base *base, void *arg, int cancelled)
{
	if (cancelled)
		return;
	atomic_fetch_add(&holding, 1);
	while (!atomic_load(&let_go))
		usleep(1000);
}

/* ---- the protocol: accept and close (posting is what is tested) -------- */

static int open_close(struct mts_conn *c, void *arg) { return -ECONNABORTED; }
static void nothing(struct mts_conn *c, void *arg) { }

static atomic_bool run_returned;

static void *run_main(void *arg)
{
	void *rc = (void *)(intptr_t)mts_run(srv);

	atomic_store(&run_returned, true);
	return rc;
}

static bool wait_for(atomic_uint_fast64_t *v, uint64_t want, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (atomic_load(v) >= want)
			return true;
		usleep(1000);
	}
	return false;
}

static void test_library(void)
{
	const char *listen[] = { "127.0.0.1" };
	struct mts_handler h = { .on_open = open_close, .on_shutdown = nothing,
				  .on_close = nothing };
	struct mts_config cfg;
	struct mts_worker_stats st;
	struct poster p[POSTERS];
	struct mts_workq *q;
	pthread_t runner;
	char why[256], dispatch[32];
	uint64_t posted = 0, refused = 0, attempted = 0, want, ran_before;
	uint64_t stop_posted = 0, stop_refused = 0, refused_at_stop[WORKERS];
	bool stops_refused;
	int rc, rcs[RING + 1];
	bool called_early;
	void *run_rc;

	mts_config_defaults(&cfg);
	cfg.listen = listen;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = WORKERS;
	cfg.dispatch = "ring:size=3";
	rc = mts_new(&srv, &cfg, &h, why, sizeof(why));
	ok(rc == -EINVAL && strstr(why, "power of two") != NULL,
	   "ring:size=3: mts_new refuses it (%d: %s)", rc, why);

	snprintf(dispatch, sizeof(dispatch), "ring:size=%d", RING);
	cfg.dispatch = dispatch;
	if (mts_new(&srv, &cfg, &h, why, sizeof(why)) != 0)
		bail(why);

	/* Before mts_run: nothing takes from the ring, so the third is refused. */
	for (int i = 0; i <= RING; i++)
		rcs[i] = mts_post(srv, 0, tally, NULL);
	called_early = atomic_load(&n_ran) + atomic_load(&n_cancelled) != 0;
	mts_worker_stats(srv, 0, &st);
	ok(rcs[0] == 0 && rcs[1] == 0 && rcs[RING] == -ENOBUFS && !called_early &&
	   st.refused == 1,
	   "ring of %d, worker not started: %d posts accepted, the next returns -ENOBUFS (%d) "
	   "and its function is not called; mts_worker_stats counts 1 refusal (%llu)", RING,
	   RING, rcs[RING], (unsigned long long)st.refused);

	pthread_create(&runner, NULL, run_main, NULL);
	ok(wait_for(&n_ran, RING, 5000), "once the worker runs, the %d queued calls run", RING);

	/* Posters that give up on a refusal. */
	for (unsigned i = 0; i < POSTERS; i++) {
		p[i] = (struct poster){ .id = i };
		pthread_create(&p[i].thread, NULL, poster_main, &p[i]);
	}
	for (unsigned i = 0; i < POSTERS; i++) {
		pthread_join(p[i].thread, NULL);
		posted += p[i].posted;
		refused += p[i].refused;
		attempted += p[i].attempted;
	}
	wait_for(&n_ran, RING + posted, 10000);
	ok(atomic_load(&n_ran) - RING == posted && posted + refused == attempted &&
	   attempted == (uint64_t)POSTERS * ATTEMPTS && !atomic_load(&out_of_order),
	   "%d posters, %d attempts each, no retry: %llu ran + %llu refused = %llu attempted; "
	   "in order per poster", POSTERS, ATTEMPTS,
	   (unsigned long long)(atomic_load(&n_ran) - RING), (unsigned long long)refused,
	   (unsigned long long)attempted);

	/* Completions that must arrive: the ring cannot refuse them back. */
	mts_worker_stats(srv, 0, &st);
	want = st.refused;
	if (mts_workq_new(&q, srv, 2) != 0)
		bail("mts_workq_new");
	for (unsigned i = 0; i < JOBS; i++)
		if (mts_workq_submit(q, 0, job_work, job_done, malloc(8)) != 0)
			bail("mts_workq_submit");
	wait_for(&jobs_done, JOBS, 10000);	/* free would cancel what is not started */
	mts_workq_free(q);	/* returns once every done has run */
	mts_worker_stats(srv, 0, &st);
	ok(atomic_load(&jobs_done) == JOBS && atomic_load(&jobs_cancelled) == 0 &&
	   atomic_load(&jobs_worked) == JOBS,
	   "%d jobs whose completions go to a ring of %d: each ended in one done (%llu done, "
	   "%llu cancelled; the ring refused %llu posts meanwhile, kept and posted again)",
	   JOBS, RING, (unsigned long long)atomic_load(&jobs_done),
	   (unsigned long long)atomic_load(&jobs_cancelled),
	   (unsigned long long)(st.refused - want));

	/* Stop while the rings are full: each worker is held in a call, and
	 * its ring is filled behind it; the workers are let go once the stop
	 * has been refused. */
	ran_before = atomic_load(&n_ran);
	for (unsigned w = 0; w < WORKERS; w++)
		while (mts_post(srv, w, hold_call, NULL) != 0)
			usleep(1000);
	if (!wait_for(&holding, WORKERS, 10000))
		bail("the workers never ran the call that holds them");
	for (unsigned w = 0; w < WORKERS; w++)
		for (int i = 0; i < 2 * RING; i++) {
			rc = mts_post(srv, w, tally, NULL);
			if (rc == 0)
				stop_posted++;
			else if (rc == -ENOBUFS)
				stop_refused++;
		}
	for (unsigned w = 0; w < WORKERS; w++) {
		mts_worker_stats(srv, w, &st);
		refused_at_stop[w] = st.refused;
	}
	mts_stop(srv);
	/* The control thread posts the stops: wait until both were refused. */
	tap_waiting("each worker's full ring to refuse its stop");
	for (int i = 0; i < 10000; i++) {
		stops_refused = true;
		for (unsigned w = 0; w < WORKERS; w++) {
			mts_worker_stats(srv, w, &st);
			stops_refused = stops_refused && st.refused > refused_at_stop[w];
		}
		if (stops_refused)
			break;
		usleep(1000);
	}
	atomic_store(&let_go, true);
	tap_waiting("mts_run() to return once the kept stops arrive");
	for (int i = 0; i < 20000 && !atomic_load(&run_returned); i++)
		usleep(1000);
	ok(atomic_load(&run_returned) && stop_refused > 0 && stops_refused,
	   "mts_stop while both rings are full (%llu more calls refused): each worker's ring "
	   "refused its stop, which was kept and posted again, and mts_run returns",
	   (unsigned long long)stop_refused);
	if (!atomic_load(&run_returned))
		bail("mts_run never returned: a stop was lost");
	pthread_join(runner, &run_rc);
	mts_free(srv);
	ok(run_rc == NULL && atomic_load(&n_ran) - ran_before + atomic_load(&n_cancelled) ==
	   stop_posted,
	   "the %llu calls queued at the stop: %llu ran + %llu cancelled",
	   (unsigned long long)stop_posted,
	   (unsigned long long)(atomic_load(&n_ran) - ran_before),
	   (unsigned long long)atomic_load(&n_cancelled));
}

/* ---- echoserver --dispatch ring --ring-size 2 -------------------------- */

static bool echoed(int port, const char *line)
{
	char buf[64];
	size_t len = strlen(line);
	int fd = tcp_connect(port);
	bool yes;

	if (fd < 0)
		return false;
	yes = send_all(fd, line, len) == 0 && recv_all(fd, buf, len) == 0 &&
	      memcmp(buf, line, len) == 0;
	close(fd);
	return yes;
}

/* The sum over the workers of `name N` in the last SIGUSR1 report. */
static bool stat_sum(const struct srv *s, const char *name, unsigned workers, uint64_t *sum)
{
	char line[2048], key[64];
	FILE *f = fopen(s->err_path, "r");
	unsigned found = 0;

	snprintf(key, sizeof(key), " %s ", name);
	*sum = 0;
	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *at = strstr(line, key);

		if (at != NULL && strstr(line, "wakeups_sent") != NULL) {
			*sum += strtoull(at + strlen(key), NULL, 10);
			found++;
		}
	}
	fclose(f);
	return found == workers;
}

static void test_echoserver(void)
{
	static int fds[BURST];
	const char *args[] = { "-t", "2", "--dispatch", "ring", "--ring-size", "2", NULL };
	struct srv s;
	unsigned echoed_n = 0, closed = 0, other = 0;
	uint64_t refused = 0;
	bool all = true, reported = false;

	if (srv_start(&s, false, args) != 0)
		bail("cannot start echoserver --dispatch ring --ring-size 2");
	for (int i = 0; i < 5; i++)
		all = all && echoed(s.port, "one at a time\n");
	ok(all, "echoserver --dispatch ring --ring-size 2: five connections one after "
	   "another, each echoed");

	/* A burst: the accepting thread can outrun two rings of two. */
	for (int i = 0; i < BURST; i++)
		fds[i] = tcp_connect(s.port);
	for (int i = 0; i < BURST; i++) {
		char buf[8];
		ssize_t n;

		if (fds[i] < 0 || send(fds[i], "x\n", 2, MSG_NOSIGNAL) == -1) {
			closed += fds[i] >= 0;	/* reset already */
			other += fds[i] < 0;
			continue;
		}
		n = recv_wait(fds[i], buf, 2, 5000);
		if (n == 2 && memcmp(buf, "x\n", 2) == 0)
			echoed_n++;
		else if (n == 0 || n == -1)
			closed++;	/* EOF, or a reset */
		else
			other++;
	}
	for (int i = 0; i < BURST; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	kill(s.pid, SIGUSR1);
	for (int i = 0; i < 200 && !reported; i++) {
		usleep(10000);
		reported = stat_sum(&s, "conns_refused", 2, &refused);
	}
	ok(reported && other == 0 && echoed_n + closed == BURST && closed == refused,
	   "a burst of %d connections: %u echoed, %u closed at once, and the server counted "
	   "%llu refused (SIGUSR1's conns_refused)", BURST, echoed_n, closed,
	   (unsigned long long)refused);
	ok(echoed(s.port, "still here\n") && srv_alive(&s), "after the burst, echo still works");
	ok(srv_stop(&s, SIGTERM, 10000) == 0, "SIGTERM: exits 0");
	unlink(s.err_path);
}

int main(void)
{
	tap_watchdog(300);
	tap_on_watchdog(harness_kill_children);
	signal(SIGPIPE, SIG_IGN);
	tap_plan(11);
	test_library();
	test_echoserver();
	return tap_done();
}
