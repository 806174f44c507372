/*
 * inbox_mutex.c - the two lock-based variants the wfcq inbox is measured
 * against. Both keep a mutex-protected FIFO list and signal once per post:
 *
 *   mutex-eventfd  as memcached >= 1.6: an eventfd write per message
 *   mutex-pipe     as classic memcached and this project's starting design:
 *                  one byte per message on a pipe
 *
 * The consumer pops one message per lock acquisition, as memcached's queue
 * pop does, until the list is empty or the round's budget is spent.
 *
 * WHY NO WAKE-UP IS LOST
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
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>

#include "inbox_impl.h"

struct inbox_mutex {
	struct inbox common;
	_Alignas(CACHE_LINE) pthread_mutex_t lock;
	struct cds_wfcq_node *first;		/* under lock */
	struct cds_wfcq_node **last_next;	/* under lock: where to link */
};

#define MUTEXQ(ib) ((struct inbox_mutex *)(ib))

static int mutex_init(struct inbox *ib)
{
	struct inbox_mutex *q = MUTEXQ(ib);
	int rc = pthread_mutex_init(&q->lock, NULL);

	q->first = NULL;
	q->last_next = &q->first;
	return -rc;
}

static bool mutex_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	struct inbox_mutex *q = MUTEXQ(ib);

	msg->node.next = NULL;
	pthread_mutex_lock(&q->lock);	/* the lock orders the message's contents */
	*q->last_next = &msg->node;
	q->last_next = &msg->node.next;
	pthread_mutex_unlock(&q->lock);
	return true;			/* one signal per post */
}

/* Nothing to collect: next() looks at the shared list itself. */
static bool mutex_collect(struct inbox *ib)
{
	return true;
}

/* Under the lock, or with no producer left. */
static struct cds_wfcq_node *pop(struct inbox_mutex *q)
{
	struct cds_wfcq_node *n = q->first;

	if (n != NULL) {
		q->first = n->next;
		if (q->first == NULL)
			q->last_next = &q->first;
	}
	return n;
}

static struct inbox_msg *mutex_next(struct inbox *ib)
{
	struct inbox_mutex *q = MUTEXQ(ib);
	struct cds_wfcq_node *n;

	pthread_mutex_lock(&q->lock);
	n = pop(q);
	pthread_mutex_unlock(&q->lock);
	return n ? caa_container_of(n, struct inbox_msg, node) : NULL;
}

static struct inbox_msg *mutex_leftover(struct inbox *ib)
{
	struct cds_wfcq_node *n = pop(MUTEXQ(ib));	/* no producer left */

	return n ? caa_container_of(n, struct inbox_msg, node) : NULL;
}

static void mutex_fini(struct inbox *ib)
{
	pthread_mutex_destroy(&MUTEXQ(ib)->lock);
}

/* The two variants differ only in what carries the signal. */
#define MUTEX_OPS(kind) {			\
	.size = sizeof(struct inbox_mutex),	\
	.wakeup = (kind),			\
	.init = mutex_init,			\
	.enqueue = mutex_enqueue,		\
	.collect = mutex_collect,		\
	.next = mutex_next,			\
	.leftover = mutex_leftover,		\
	.fini = mutex_fini,			\
}

const struct inbox_ops inbox_mutex_eventfd_ops = MUTEX_OPS(WAKEUP_EVENTFD);
const struct inbox_ops inbox_mutex_pipe_ops = MUTEX_OPS(WAKEUP_PIPE);
