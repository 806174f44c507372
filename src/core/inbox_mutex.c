/*
 * inbox_mutex.c - the two lock-based variants the wfcq inbox is measured
 * against. Both keep a mutex-protected FIFO list and signal once per message:
 *
 *   mutex-eventfd  as memcached >= 1.6: an eventfd write per message; the
 *                  consumer reads the counter and pops at most that many
 *   mutex-pipe     as classic memcached and this project's starting design:
 *                  one byte per message on a pipe
 *
 * Each pop takes the lock, as memcached's queue pop does. No wake-up can be
 * lost: every message is signalled by its own post, after it is in the list,
 * so a drained count never exceeds what the list holds; and no signal is
 * dropped (a full pipe makes the poster wait, as a blocking pipe write does),
 * so the count never falls short of it either.
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
	unsigned long owed;			/* consumer only: signals not yet popped */
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
	return true;			/* one signal per message */
}

static bool mutex_collect(struct inbox *ib, unsigned long signals)
{
	MUTEXQ(ib)->owed += signals;
	return true;
}

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

	if (q->owed == 0)
		return NULL;
	pthread_mutex_lock(&q->lock);
	n = pop(q);
	pthread_mutex_unlock(&q->lock);
	if (n == NULL)
		return NULL;	/* cannot happen: each signal follows its enqueue */
	q->owed--;
	return caa_container_of(n, struct inbox_msg, node);
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
	.counted = true,			\
	.init = mutex_init,			\
	.enqueue = mutex_enqueue,		\
	.collect = mutex_collect,		\
	.next = mutex_next,			\
	.leftover = mutex_leftover,		\
	.fini = mutex_fini,			\
}

const struct inbox_ops inbox_mutex_eventfd_ops = MUTEX_OPS(WAKEUP_EVENTFD);
const struct inbox_ops inbox_mutex_pipe_ops = MUTEX_OPS(WAKEUP_PIPE);
