/*
 * inbox_mutex.c - the lock-based variants the wfcq inbox is measured
 * against. All keep a mutex-protected FIFO list:
 *
 *   mutex-eventfd  as memcached >= 1.6: an eventfd write per message; the
 *                  consumer pops one message per lock acquisition, as
 *                  memcached's queue pop does
 *   mutex-pipe     as classic memcached and this project's starting design:
 *                  one byte per message on a pipe, popped the same way
 *   mutex-elide    the wfcq variant's protocol with a lock instead of the
 *                  lock-free queue: only the post that finds the list empty
 *                  signals, and the consumer takes the whole list in one
 *                  lock acquisition. With mutex-eventfd and wfcq-always it
 *                  separates what elision buys from what the lock-free queue
 *                  buys (doc/HANDOFF.md, "The factorial")
 *
 * WHY NO WAKE-UP IS LOST: POPPING ONE PER LOCK (mutex-eventfd, mutex-pipe)
 *
 * Every post appends under the lock, then signals. The fd is readable after
 * that signal (written, or found full, which is readable too), so a round
 * runs whose drain (C1) follows the signal; its pops follow the drain and
 * find the message, unless an earlier round already took it. A signal is only
 * a wake-up: the consumer does not count signals to decide how many to pop
 * (memcached does, and so must never lose a byte: its pipe write blocks when
 * the pipe is full). Popping until the list is empty is what allows a full
 * pipe to drop a signal, so that a post never waits for room: a worker
 * posting to itself, or two workers posting to each other, would otherwise
 * deadlock on a full pipe. The model refutes the counting consumer with a
 * pipe that can be full. The cost of "one signal per post" is unchanged.
 *
 * WHY NO WAKE-UP IS LOST: SIGNALLING ON EMPTY (mutex-elide)
 *
 * inbox_wfcq.c's argument, with the lock in place of the tail's atomic
 * exchanges: the append and its "was the list empty?" (P1) are one critical
 * section, and so is the take of the whole list (C2). Critical sections of
 * one lock fall in one order, so "found empty" is exact: a post P that
 * finds the list non-empty follows some post Q that found it empty, with
 * no take between them. Q signals after its critical section; the round
 * that drains Q's signal (C1 before C2, as ever) takes the list after Q's
 * append, and so after P's, or an earlier take already had P. There is no
 * WOULDBLOCK (a post is never half done inside the lock), so the round
 * re-arms only when the budget leaves part of the batch. The model checks
 * it (tests/test_model.sh, "mutex-elide").
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>

#include "inbox_impl.h"

/* A singly linked FIFO list of the messages' nodes. */
struct list {
	struct cds_wfcq_node *first;
	struct cds_wfcq_node **last_next;	/* where to link the next one */
};

struct inbox_mutex {
	struct inbox common;
	_Alignas(CACHE_LINE) pthread_mutex_t lock;
	struct list shared;		/* under lock */
	/* mutex-elide: what the last take left (the budget). Consumer only. */
	_Alignas(CACHE_LINE) struct list batch;
};

static void list_init(struct list *l)
{
	l->first = NULL;
	l->last_next = &l->first;
}

static void list_append(struct list *l, struct cds_wfcq_node *n)
{
	n->next = NULL;
	*l->last_next = n;
	l->last_next = &n->next;
}

/* Moves all of `from` to the end of `to`, in order; `from` is left empty. */
static void list_take_all(struct list *to, struct list *from)
{
	if (from->first == NULL)
		return;
	*to->last_next = from->first;
	to->last_next = from->last_next;
	list_init(from);
}

static struct cds_wfcq_node *list_pop(struct list *l)
{
	struct cds_wfcq_node *n = l->first;

	if (n != NULL) {
		l->first = n->next;
		if (l->first == NULL)
			l->last_next = &l->first;
	}
	return n;
}

static struct inbox_msg *msg_of(struct cds_wfcq_node *n)
{
	return n ? caa_container_of(n, struct inbox_msg, node) : NULL;
}

#define MUTEXQ(ib) ((struct inbox_mutex *)(ib))

static int mutex_init(struct inbox *ib)
{
	struct inbox_mutex *q = MUTEXQ(ib);
	int rc = pthread_mutex_init(&q->lock, NULL);

	list_init(&q->shared);
	list_init(&q->batch);
	return -rc;
}

static int mutex_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	struct inbox_mutex *q = MUTEXQ(ib);

	pthread_mutex_lock(&q->lock);	/* the lock orders the message's contents */
	list_append(&q->shared, &msg->node);
	pthread_mutex_unlock(&q->lock);
	return INBOX_SIGNAL;		/* one signal per post */
}

/* P1 of mutex-elide: append, and learn whether the list was empty, in one
 * critical section. */
static int elide_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	struct inbox_mutex *q = MUTEXQ(ib);
	bool was_empty;

	pthread_mutex_lock(&q->lock);
	was_empty = q->shared.first == NULL;
	list_append(&q->shared, &msg->node);
	pthread_mutex_unlock(&q->lock);
	return was_empty ? INBOX_SIGNAL : INBOX_RIDE;	/* only that post signals */
}

static struct inbox_msg *mutex_next(struct inbox *ib)
{
	struct inbox_mutex *q = MUTEXQ(ib);
	struct cds_wfcq_node *n;

	pthread_mutex_lock(&q->lock);
	n = list_pop(&q->shared);
	pthread_mutex_unlock(&q->lock);
	return msg_of(n);
}

/* C2 of mutex-elide: the whole list, behind what the last round left. */
static bool elide_collect(struct inbox *ib)
{
	struct inbox_mutex *q = MUTEXQ(ib);

	pthread_mutex_lock(&q->lock);
	list_take_all(&q->batch, &q->shared);
	pthread_mutex_unlock(&q->lock);
	return true;
}

static struct inbox_msg *elide_next(struct inbox *ib)
{
	return msg_of(list_pop(&MUTEXQ(ib)->batch));	/* consumer only: no lock */
}

static struct inbox_msg *mutex_leftover(struct inbox *ib)
{
	struct inbox_mutex *q = MUTEXQ(ib);	/* no producer left */

	list_take_all(&q->batch, &q->shared);
	return msg_of(list_pop(&q->batch));
}

static void mutex_fini(struct inbox *ib)
{
	pthread_mutex_destroy(&MUTEXQ(ib)->lock);
}

/* The two popping variants differ only in what carries the signal. */
#define MUTEX_OPS(label, kind) {		\
	.name = (label),			\
	.size = sizeof(struct inbox_mutex),	\
	.wakeup = (kind),			\
	.every_post_signals = true,		\
	.init = mutex_init,			\
	.enqueue = mutex_enqueue,		\
	.next = mutex_next,			\
	.leftover = mutex_leftover,		\
	.fini = mutex_fini,			\
}

const struct inbox_ops inbox_mutex_eventfd_ops = MUTEX_OPS("mutex-eventfd", WAKEUP_EVENTFD);
const struct inbox_ops inbox_mutex_pipe_ops = MUTEX_OPS("mutex-pipe", WAKEUP_PIPE);

const struct inbox_ops inbox_mutex_elide_ops = {
	.name = "mutex-elide",
	.size = sizeof(struct inbox_mutex),
	.wakeup = WAKEUP_EVENTFD,
	.init = mutex_init,
	.enqueue = elide_enqueue,
	.collect = elide_collect,
	.next = elide_next,
	.leftover = mutex_leftover,
	.fini = mutex_fini,
};
