/*
 * notify.h - telling the service manager how the server is doing
 * (systemd's Type=notify, sd_notify(3)): READY=1, STOPPING=1, WATCHDOG=1.
 * notify.c says why the protocol is written here, who speaks, and what a
 * send may wait for.
 *
 * Who may call what: all of it on the thread that runs mts_run() (the
 * watchdog's timer is on that thread's base), but notify_after_fork_child,
 * which runs in a child of fork() before it starts any thread.
 */
#ifndef MTS_NOTIFY_H
#define MTS_NOTIFY_H

#include <stdbool.h>

#include "log.h"

struct event;
struct event_base;

struct notify {
	bool ready;			/* READY=1 was sent: STOPPING=1 follows it */
	struct event *watchdog;		/* WATCHDOG=1 every half interval; NULL: none */
	struct log_limit ping_failed;	/* a failing ping is logged once a minute */
};

/*
 * The server serves (its sockets listen, its workers are started): sends
 * READY=1 and the one-line `status`, and, if the manager asked for pings
 * (WATCHDOG_USEC), starts them on `base`. A failure is logged.
 */
void notify_ready(struct notify *n, struct event_base *base, const char *status);
/* The graceful stop begins: STOPPING=1 (once, and only after READY=1); the
 * pings end. A failure is logged. */
void notify_stopping(struct notify *n);
/* mts_free(): before the base the pings ran on is freed. */
void notify_destroy(struct notify *n);
/* mts_after_fork_child(): this process sends nothing from now on. */
void notify_after_fork_child(void);

#endif
