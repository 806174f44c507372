/*
 * control.h - the main thread's control channel: any thread, or a signal
 * handler, asks the main thread to do something (stop, log statistics,
 * resume accepting) by setting a reason bit and signalling one wake-up
 * that the main thread's event_base watches.
 *
 * Who may call what:
 *   control_init, control_destroy   the owner, while nobody else uses it
 *   control_wake                    any thread; async-signal-safe
 *   the handler                     the main thread, from its event_base
 *
 * No request is lost. control_wake() sets its bit before it signals (both
 * release); the main thread drains the wake-up before it exchanges the
 * bits with 0 (acquire). A bit set after that exchange comes with a signal
 * sent after the drain, which leaves the fd readable for the next round:
 * the drain-then-take order of inbox.c, for the same reason. A signal that
 * fails is owed (owed.h) and sent again by the retrier.
 */
#ifndef MTS_CONTROL_H
#define MTS_CONTROL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "owed.h"
#include "retry.h"
#include "wakeup.h"

struct event;
struct event_base;

/* Called on the main thread with the reasons taken in one round (never 0). */
typedef void (*control_fn)(unsigned reasons, void *arg);

struct control {
	struct wakeup wake;
	struct event *ev;
	atomic_uint reasons;
	struct owed owed;		/* signals that failed, for the retrier */
	struct retrier *retrier;
	bool initialised;		/* by control_init: destroy has work */
	bool registered;		/* with the retrier */
	control_fn fn;
	void *arg;
};

/* Watches the channel on base; fn(reasons, arg) handles what arrives.
 * Returns 0 or a negative errno (c can be destroyed either way). */
int control_init(struct control *c, struct event_base *base, struct retrier *r,
		 control_fn fn, void *arg);
/* Sets `reason` (a bit) and wakes the main thread. */
void control_wake(struct control *c, unsigned reason);
/* Once no thread can call control_wake() any more. Does nothing to a
 * zeroed struct that control_init() never saw. */
void control_destroy(struct control *c);

#endif
