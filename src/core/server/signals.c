/*
 * signals.c - mts_handle_signals(): the signals every server program
 * handles the same way.
 *
 * The handlers do what mts_stop() and mts_request_stats() do: set a reason
 * bit and signal the control channel (control.c), both async-signal-safe.
 * They are plain sigaction() handlers, not libevent signal events, on
 * purpose: libevent gives a signal back its old action when its event is
 * freed, so a second SIGTERM arriving while the program finishes (after
 * mts_free(), before exit) would kill it by the default action, and a
 * graceful stop would end as a death by signal. Here the handlers stay
 * installed, and do nothing once their server is freed.
 *
 * Which server a handler reaches: `target`, set by mts_handle_signals()
 * and cleared by mts_free(), which must not free the server while a
 * handler, on some thread, is still using it. A handler announces itself
 * in `in_handler` before it loads `target`; mts_free() clears `target`,
 * then waits for `in_handler` to be 0. All four are seq_cst: in their one
 * order, a handler that loaded the server did so before the clear, so its
 * announcement came before the clear too, and the wait sees it.
 */
#include <config.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>

#include "server.h"

static _Atomic(struct mts_server *) target;
static atomic_int in_handler;

static void on_signal(int sig)
{
	int saved = errno;
	struct mts_server *s;

	atomic_fetch_add(&in_handler, 1);
	s = atomic_load(&target);
	if (s != NULL)
		control_wake(&s->control, sig == SIGUSR1 ? WAKE_STATS : WAKE_STOP);
	atomic_fetch_sub(&in_handler, 1);
	errno = saved;
}

/* Was sig ignored when the program started (nohup ignores SIGHUP)? */
static bool ignored(int sig)
{
	struct sigaction old;

	return sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN;
}

int mts_handle_signals(struct mts_server *s)
{
	static const int stops[] = { SIGINT, SIGTERM, SIGHUP };	/* HUP: a closed terminal */
	struct sigaction ign = { .sa_handler = SIG_IGN };
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	struct mts_server *none = NULL;

	int rc = 0;

	if (!atomic_compare_exchange_strong(&target, &none, s))
		return none == s ? 0 : -EBUSY;	/* one server per process */
	sigemptyset(&ign.sa_mask);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &ign, NULL) == -1)
		rc = -errno;
	for (unsigned i = 0; rc == 0 && i < sizeof(stops) / sizeof(stops[0]); i++)
		if (!(stops[i] == SIGHUP && ignored(SIGHUP)) && sigaction(stops[i], &sa, NULL) == -1)
			rc = -errno;
	if (rc == 0 && sigaction(SIGUSR1, &sa, NULL) == -1)
		rc = -errno;
	if (rc < 0)
		atomic_store(&target, NULL);	/* what was installed reaches nothing */
	return rc;
}

/* In a child of fork(): the parent's server is not this process's (its
 * threads stayed behind), and no handler is under way in this thread. */
void signals_after_fork_child(void)
{
	atomic_store(&target, NULL);
	atomic_store(&in_handler, 0);
}

/* mts_free(): no handler reaches s from here on. */
void signals_release(struct mts_server *s)
{
	struct mts_server *mine = s;

	if (!atomic_compare_exchange_strong(&target, &mine, NULL))
		return;		/* not the server the handlers reach */
	while (atomic_load(&in_handler) != 0)
		sched_yield();	/* a handler is a few instructions: short */
}
