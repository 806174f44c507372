/*
 * inbox.c - what every handoff variant shares: the wake-up fd and its event
 * in the consumer's loop, the budgeted handler round, statistics, teardown.
 * Contract in inbox.h; the queues are in inbox_wfcq.c and inbox_mutex.c.
 *
 * THE ROUND, and why its order matters
 *
 *   producer (inbox_post)                  consumer (inbox_on_wakeup)
 *   P1  enqueue; learn whether to signal   C1  drain the wake-up fd
 *   P2  if so, signal the fd               C2  collect what was posted
 *                                          C3  handle up to `budget`
 *
 * C1 comes before C2, always. For the mutex variants it only has to count
 * what it drained; for wfcq, where only the post that found the queue empty
 * signals, it is what makes notify elision safe. The argument is beside the
 * wfcq code, in inbox_wfcq.c. Built with INBOX_TEST_DRAIN_AFTER_SPLICE, this
 * file does C1 after C2 (the classic lost wake-up); only tests/test_inbox.c
 * builds it that way, to show that its stress test catches the bug.
 *
 * Re-arming (event_active) makes the round run again on the next loop turn
 * without a signal: after the budget is spent, and after a WOULDBLOCK (a
 * producer preempted between its two stores; liburcu's blocking calls would
 * spin, then sleep 10 ms, stalling every connection on this loop). It keeps
 * already-posted messages moving; it is never what prevents a lost wake-up.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "counter.h"
#include "fault.h"
#include "inbox_impl.h"

/*
 * Test builds only (tests/test_inbox_delay): a function the test defines,
 * called between a post's two steps, where it delays or preempts the
 * producer at random. The server never has it.
 */
#ifdef INBOX_TEST_HOOKS
void inbox_test_between_steps(void);
#define BETWEEN_STEPS() inbox_test_between_steps()
#else
#define BETWEEN_STEPS() ((void)0)
#endif

static const struct inbox_ops *const variants[INBOX_N_VARIANTS] = {
	[INBOX_WFCQ] = &inbox_wfcq_ops,
	[INBOX_MUTEX_EVENTFD] = &inbox_mutex_eventfd_ops,
	[INBOX_MUTEX_PIPE] = &inbox_mutex_pipe_ops,
};

static const char *const variant_names[INBOX_N_VARIANTS] = {
	[INBOX_WFCQ] = "wfcq",
	[INBOX_MUTEX_EVENTFD] = "mutex-eventfd",
	[INBOX_MUTEX_PIPE] = "mutex-pipe",
};

const char *inbox_variant_name(enum inbox_variant v)
{
	return (unsigned)v < INBOX_N_VARIANTS ? variant_names[v] : "?";
}

int inbox_variant_from_name(const char *name)
{
	for (int v = 0; v < INBOX_N_VARIANTS; v++)
		if (strcmp(variant_names[v], name) == 0)
			return v;
	return -1;
}

static void inbox_on_wakeup(evutil_socket_t fd, short what, void *arg);

int inbox_new(struct inbox **out, enum inbox_variant variant, struct event_base *base,
	      inbox_handler_fn handler, void *arg, unsigned budget)
{
	const struct inbox_ops *ops;
	struct inbox *ib;
	int rc;

	if ((unsigned)variant >= INBOX_N_VARIANTS)
		return -EINVAL;
	ops = variants[variant];
	/* Over-aligned (cache lines): calloc() only promises 16 bytes. */
	rc = posix_memalign((void **)&ib, CACHE_LINE, ops->size);
	if (rc != 0)
		return -rc;
	memset(ib, 0, ops->size);
	ib->ops = ops;
	ib->handler = handler;
	ib->arg = arg;
	ib->budget = budget ? budget : 1;
	ib->wake.read_fd = ib->wake.write_fd = -1;
	if ((rc = ops->init(ib)) < 0) {
		free(ib);
		return rc;
	}
	if ((rc = wakeup_init(&ib->wake, ops->wakeup)) < 0)
		goto fail;
	ib->ev = event_new(base, wakeup_fd(&ib->wake), EV_READ | EV_PERSIST, inbox_on_wakeup, ib);
	if (ib->ev == NULL || event_add(ib->ev, NULL) == -1) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = ib;
	return 0;
fail:
	if (ib->ev != NULL)
		event_free(ib->ev);
	wakeup_close(&ib->wake);
	ops->fini(ib);
	free(ib);
	return rc;
}

static int send_wakeup(struct inbox *ib)
{
	if (fault_hit(FAULT_WAKEUP_WRITE))
		return -EIO;
	return ib->ops->counted ? wakeup_signal_counted(&ib->wake) : wakeup_signal(&ib->wake);
}

int inbox_post(struct inbox *ib, struct inbox_msg *msg)
{
	int rc;

	/* P1 */
	if (!ib->ops->enqueue(ib, msg))
		return 0;	/* rides along on a wake-up already on its way */
	BETWEEN_STEPS();
	/* P2 */
	rc = send_wakeup(ib);
	if (rc < 0)
		atomic_fetch_add_explicit(&ib->unsent, 1, memory_order_relaxed);
	return rc;
}

int inbox_retry_wakeups(struct inbox *ib)
{
	unsigned owed = atomic_load_explicit(&ib->unsent, memory_order_relaxed);
	int rc;

	while (owed > 0) {
		if ((rc = send_wakeup(ib)) < 0)
			return rc;
		/* Only a successful send pays a debt; concurrent retries each
		 * pay their own, so the count never goes below zero. */
		if (atomic_compare_exchange_weak_explicit(&ib->unsent, &owed, owed - 1,
							  memory_order_relaxed,
							  memory_order_relaxed))
			owed--;
	}
	return 0;
}

/* Runs on the consumer thread only: the single-consumer rule of inbox.h. */
static void inbox_on_wakeup(evutil_socket_t fd, short what, void *arg)
{
	struct inbox *ib = arg;
	struct inbox_msg *msg;
	unsigned long signals = 0;
	uint64_t handled = 0;
	bool rearm = false;

#ifndef INBOX_TEST_DRAIN_AFTER_SPLICE
	signals = wakeup_drain(&ib->wake);		/* C1: always first */
	if (!ib->ops->collect(ib, signals))		/* C2 */
		rearm = true;				/* WOULDBLOCK */
#else
	/* The broken order, for wfcq only (the mutex variants would be
	 * credited nothing here and never pop). */
	if (!ib->ops->collect(ib, 0))
		rearm = true;
	signals = wakeup_drain(&ib->wake);
#endif
	while (handled < ib->budget) {			/* C3 */
		msg = ib->ops->next(ib);
		if (msg == NULL)
			break;
		if (msg == INBOX_WOULDBLOCK) {
			rearm = true;
			break;
		}
		ib->handler(msg, ib->arg);
		handled++;
	}
	if (rearm)
		counter_add(&ib->wouldblock, 1);
	if (handled == ib->budget)
		rearm = true;	/* perhaps more: let the connections run first */

	counter_add(&ib->wakeups, signals);
	counter_add(&ib->handled, handled);
	counter_add(&ib->rounds, 1);
	if (handled > counter_get(&ib->largest_batch))
		counter_set(&ib->largest_batch, handled);
	if (rearm)
		event_active(ib->ev, EV_READ, 0);
}

void inbox_free(struct inbox *ib, inbox_handler_fn dispose, void *arg)
{
	struct inbox_msg *msg;

	if (ib == NULL)
		return;
	event_free(ib->ev);
	while ((msg = ib->ops->leftover(ib)) != NULL)
		if (dispose != NULL)
			dispose(msg, arg);
	wakeup_close(&ib->wake);
	ib->ops->fini(ib);
	free(ib);
}

void inbox_get_stats(const struct inbox *ib, struct inbox_stats *st)
{
	st->handled = counter_get(&ib->handled);
	st->wakeups = counter_get(&ib->wakeups);
	st->elided = st->handled > st->wakeups ? st->handled - st->wakeups : 0;
	st->rounds = counter_get(&ib->rounds);
	st->largest_batch = counter_get(&ib->largest_batch);
	st->wouldblock = counter_get(&ib->wouldblock);
}
