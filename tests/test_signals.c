/*
 * test_signals.c - mts_handle_signals(), in-process, through the public
 * API: SIGTERM (and SIGINT, SIGHUP) make mts_run() return; SIGPIPE is
 * ignored while the server lives; a SIGHUP ignored before (nohup) stays
 * ignored; one server at a time has them; and a stop signal after
 * mts_free() does not kill the process (it would, by the default action,
 * if the handlers had been taken away: the check is that this test goes
 * on, to its plan's end).
 * (test_cli checks the same from outside, on echoserver.)
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtserver.h"
#include "tap.h"

static int on_open(struct mts_conn *c, void *arg) { return 0; }
static void on_shutdown(struct mts_conn *c, void *arg) { mts_conn_close(c); }
static void on_close(struct mts_conn *c, void *arg) { }

static void *run_main(void *arg)
{
	mts_run(arg);
	return NULL;
}

static void handler_of(int sig, void (**out)(int))
{
	struct sigaction sa;

	sigaction(sig, NULL, &sa);
	*out = sa.sa_handler;
}

/* In a child of fork(), the parent's server is not there: the child's own
 * server must be able to take the signals. */
static bool child_takes_signals(void)
{
	struct mts_handler h = { .on_open = on_open, .on_shutdown = on_shutdown,
				 .on_close = on_close };
	struct mts_config cfg;
	pid_t pid;
	int status;

	mts_before_fork();
	pid = fork();
	if (pid == 0) {
		struct mts_server *mine;
		char why[256];

		mts_after_fork_child();
		mts_config_defaults(&cfg);
		cfg.port = "0";
		cfg.threads = 1;
		if (mts_new(&mine, &cfg, &h, why, sizeof(why)) < 0)
			_exit(3);
		_exit(mts_handle_signals(mine) == 0 ? 0 : 4);
	}
	mts_after_fork_parent();
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

/* Stopped by `sig`, sent to the process: mts_run() returns. */
static void stops_on(int sig, const char *name)
{
	struct mts_handler h = { .on_open = on_open, .on_shutdown = on_shutdown,
				 .on_close = on_close };
	struct mts_config cfg;
	struct mts_server *s, *other;
	char why[256];
	pthread_t runner;
	void (*pipe_during)(int), (*hup_during)(int);

	if (sig != SIGHUP)
		signal(SIGHUP, SIG_IGN);	/* as under nohup */
	mts_config_defaults(&cfg);
	cfg.port = "0";
	cfg.threads = 2;
	if (mts_new(&s, &cfg, &h, why, sizeof(why)) < 0 ||
	    mts_new(&other, &cfg, &h, why, sizeof(why)) < 0)
		bail(why);
	if (mts_handle_signals(s) < 0)
		bail("mts_handle_signals failed");
	handler_of(SIGPIPE, &pipe_during);
	handler_of(SIGHUP, &hup_during);
	pthread_create(&runner, NULL, run_main, s);
	tap_waiting(name);
	kill(getpid(), sig);
	pthread_join(runner, NULL);	/* the watchdog ends a run that never returns */
	ok(true, "%s: mts_run() returned, a graceful stop", name);
	if (sig == SIGTERM) {
		ok(pipe_during == SIG_IGN, "SIGPIPE is ignored while the server lives");
		ok(hup_during == SIG_IGN, "a SIGHUP ignored before (nohup) stays ignored");
		ok(mts_handle_signals(other) == -EBUSY,
		   "a second server cannot take the signals while the first has them (-EBUSY)");
		ok(child_takes_signals(),
		   "a child of fork() (with the fork hooks) can give its own server the signals");
	}
	mts_free(s);
	mts_free(other);
	/* The program ends now; a late stop signal must not kill it. */
	kill(getpid(), sig);
	ok(true, "%s after mts_free(): the process goes on (the handler does nothing)", name);
	signal(SIGHUP, SIG_DFL);
}

int main(void)
{
	tap_watchdog(60);
	mts_log_set_level(MTS_LOG_ERROR);
	tap_plan(10);
	stops_on(SIGTERM, "SIGTERM");
	stops_on(SIGINT, "SIGINT");
	stops_on(SIGHUP, "SIGHUP");
	return tap_done();
}
