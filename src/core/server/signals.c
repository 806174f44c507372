/*
 * signals.c - mts_handle_signals(): the signals every server program
 * handles the same way, watched by the main thread's event_base (libevent
 * turns a signal into an event of that loop, so the callbacks below are
 * ordinary code on the main thread, not signal handlers).
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>

#include <event2/event.h>

#include "server.h"

/* What mts_stop() and mts_request_stats() do, through the control channel. */
static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct mts_server *s = arg;

	(void)sig;
	(void)what;
	control_wake(&s->control, WAKE_STOP);
}

static void on_stats_signal(evutil_socket_t sig, short what, void *arg)
{
	struct mts_server *s = arg;

	(void)sig;
	(void)what;
	control_wake(&s->control, WAKE_STATS);
}

/* Was sig ignored when the program started (nohup ignores SIGHUP)? */
static bool ignored(int sig)
{
	struct sigaction old;

	return sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN;
}

int mts_handle_signals(struct mts_server *s)
{
	static const struct {
		int sig;
		event_callback_fn fn;
	} handled[SERVER_SIGNALS] = {
		{ SIGINT, on_stop_signal },
		{ SIGTERM, on_stop_signal },
		{ SIGHUP, on_stop_signal },	/* a closed terminal: stop, flushing echo */
		{ SIGUSR1, on_stats_signal },
	};
	struct sigaction sa = { .sa_handler = SIG_IGN };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		return -errno;
	for (unsigned i = 0; i < SERVER_SIGNALS; i++) {
		if (s->signals[i] != NULL || (handled[i].sig == SIGHUP && ignored(SIGHUP)))
			continue;
		s->signals[i] = evsignal_new(s->base, handled[i].sig, handled[i].fn, s);
		if (s->signals[i] == NULL || event_add(s->signals[i], NULL) == -1)
			return -ENOMEM;
	}
	return 0;
}

/* mts_free(): the signals go back to what they were before. */
void signals_release(struct mts_server *s)
{
	for (unsigned i = 0; i < SERVER_SIGNALS; i++)
		if (s->signals[i] != NULL) {
			event_free(s->signals[i]);
			s->signals[i] = NULL;
		}
}
