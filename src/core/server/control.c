/*
 * control.c - the main thread's control channel (control.h).
 */
#include <config.h>

#include <errno.h>

#include <event2/event.h>

#include "control.h"
#include "fault.h"

/* A signal, or a debt the retrier pays: async-signal-safe (atomics, sem_post). */
static int send_signal(void *arg)
{
	struct control *c = arg;

	return wakeup_signal(&c->wake) < 0 ? -EAGAIN : 0;
}

static int pay(void *arg)
{
	struct control *c = arg;

	return owed_pay(&c->owed, send_signal, c);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;
	unsigned reasons;

	(void)fd;
	(void)what;
	wakeup_drain(&c->wake, NULL);		/* first: control.h says why */
	fault_gate(GATE_CONTROL_TAKE);		/* tests wake it while held here */
	reasons = atomic_exchange_explicit(&c->reasons, 0, memory_order_acquire);
	if (reasons != 0)
		c->fn(reasons, c->arg);
}

int control_init(struct control *c, struct event_base *base, struct retrier *r,
		 control_fn fn, void *arg)
{
	int rc;

	*c = (struct control){ .retrier = r, .fn = fn, .arg = arg, .initialised = true };
	c->wake.read_fd = c->wake.write_fd = -1;
	if ((rc = wakeup_init(&c->wake, WAKEUP_EVENTFD)) < 0)
		return rc;
	if ((rc = retrier_add(r, pay, c)) < 0)
		return rc;
	c->registered = true;
	c->ev = event_new(base, wakeup_fd(&c->wake), EV_READ | EV_PERSIST, on_wake, c);
	if (c->ev == NULL || event_add(c->ev, NULL) == -1)
		return -ENOMEM;
	return 0;
}

void control_wake(struct control *c, unsigned reason)
{
	/* The bit, then the signal: the main thread drains, then takes. */
	atomic_fetch_or_explicit(&c->reasons, reason, memory_order_release);
	if (send_signal(c) < 0)
		owed_incur(&c->owed, c->retrier);
}

void control_destroy(struct control *c)
{
	if (!c->initialised)
		return;
	if (c->registered)
		retrier_remove(c->retrier, pay, c);
	c->registered = false;
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = NULL;
	wakeup_close(&c->wake);
	c->initialised = false;
}
