/*
 * test_fork.c - a child of fork() (without exec) creates and frees a server
 * of its own with dispatch "lfq", after its parent used one: with the
 * fork hooks of mtserver.h (mts_before_fork() and the two after it) the
 * child's server works and its mts_free() returns. Without them, the
 * child's mts_free() would wait for ever in rcu_barrier() for the call_rcu
 * thread that stayed in the parent (inbox_lfq.c, FORK). Through the public
 * API only. Skipped under TSan, which does not follow a multithreaded
 * process across fork().
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtserver.h"
#include "tap.h"

#if defined(SANITIZED)
#define SLOWDOWN 5
#else
#define SLOWDOWN 1
#endif

static atomic_uint calls;

static void count_call(struct event_base *base, void *arg, int cancelled)
{
	if (!cancelled)
		atomic_fetch_add(&calls, 1);
}

static int refuse(struct mts_conn *c, void *arg) { return -ECONNABORTED; }
static void nothing(struct mts_conn *c, void *arg) { }

static void *run_main(void *arg)
{
	return (void *)(intptr_t)mts_run(arg);
}

/* An lfq server with one worker: 100 calls posted, run, then freed. */
static bool use_lfq_server(void)
{
	const char *listen[] = { "127.0.0.1" };
	struct mts_handler h = { .on_open = refuse, .on_shutdown = nothing, .on_close = nothing };
	struct mts_config cfg;
	struct mts_server *s;
	pthread_t runner;
	char why[256];
	unsigned before = atomic_load(&calls);

	mts_config_defaults(&cfg);
	cfg.listen = listen;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = 1;
	cfg.dispatch = "lfq";
	if (mts_new(&s, &cfg, &h, why, sizeof(why)) != 0)
		return false;
	pthread_create(&runner, NULL, run_main, s);
	for (int i = 0; i < 100; i++)
		if (mts_post(s, 0, count_call, NULL) != 0)
			return false;
	for (int i = 0; i < 5000 * SLOWDOWN && atomic_load(&calls) - before < 100; i++)
		usleep(1000);
	mts_stop(s);
	pthread_join(runner, NULL);
	mts_free(s);		/* rcu_barrier(): the call_rcu thread's frees */
	return atomic_load(&calls) - before == 100;
}

int main(void)
{
	pid_t pid;
	int status = 0, waited = 0;
	bool parent_ok;

	tap_watchdog(120);
	tap_plan(2);
#if defined(HAVE_TSAN)
	skip("an lfq server in a child of fork(): TSan does not follow a multithreaded fork");
	skip("the parent's server after the fork: TSan does not follow a multithreaded fork");
	return tap_done();
#endif
	/* The parent uses lfq first: liburcu's call_rcu thread exists now. */
	parent_ok = use_lfq_server();
	mts_before_fork();
	pid = fork();
	if (pid == 0) {
		mts_after_fork_child();
		_exit(use_lfq_server() ? 0 : 1);
	}
	mts_after_fork_parent();
	if (pid < 0)
		bail("fork");
	tap_waiting("the child's lfq server to be freed");
	while (waitpid(pid, &status, WNOHANG) == 0 && waited < 20000 * SLOWDOWN) {
		usleep(1000);
		waited++;
	}
	if (waited >= 20000 * SLOWDOWN) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		diag("the child did not finish in %d s: killed", 20 * SLOWDOWN);
	}
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "a child of fork(), with the fork hooks, runs an lfq server of its own and frees it "
	   "(status %d)", status);
	ok(parent_ok && use_lfq_server(),
	   "the parent's lfq servers work before and after the fork");
	return tap_done();
}
