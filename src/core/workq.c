/*
 * workq.c - the work queue: pool threads for blocking jobs, completions back
 * on the submitting worker. API and shutdown contract in mtserver.h.
 *
 *   submitter (any thread)             pool thread
 *   S1 enqueue the job (wfcq, wait-free) W1 sem_wait: a job (or stop) is there
 *   S2 sem_post                          W2 dequeue (liburcu's dequeue lock:
 *                                           pool threads are many consumers)
 *                                        W3 run work, post done to the worker
 *
 * Every S2 follows its S1, so when a pool thread's sem_wait returns there is
 * at least one job in the queue for it (or the pool is stopping). A job may
 * be dequeued by a different thread than the one whose sem_wait its post
 * satisfied; the count still matches, job for job.
 *
 * `outstanding` counts jobs submitted whose `done` has not run yet. Only the
 * submitter increments it (before S1) and only `done`'s trampoline decrements
 * it, on a worker; mts_workq_free() waits for it to reach zero.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include <urcu/wfcqueue.h>

#include "core.h"
#include "log.h"
#include "tsan.h"

struct job {
	struct cds_wfcq_node node;	/* in q->head/tail until a pool thread takes it */
	mts_job_fn work;
	mts_done_fn done;
	void *arg;
	unsigned worker;
	int cancelled;
	struct mts_workq *q;
};

struct mts_workq {
	struct mts_server *srv;
	struct cds_wfcq_head head;	/* with liburcu's dequeue lock: many consumers */
	struct cds_wfcq_tail tail;
	sem_t ready;			/* one post per job, and one per thread at stop */
	atomic_bool stopping;		/* set once by mts_workq_free() */
	atomic_uint outstanding;	/* submitted, done not yet run */
	unsigned n_threads;
	pthread_t *threads;
};

/* On the job's worker: the job's last step. */
static void run_done(struct event_base *base, void *arg)
{
	struct job *j = arg;
	struct mts_workq *q = j->q;

	j->done(base, j->arg, j->cancelled);
	free(j);
	atomic_fetch_sub_explicit(&q->outstanding, 1, memory_order_release);
}

static void finish(struct job *j)
{
	/* Retry only on memory exhaustion; the worker exists (checked at submit). */
	while (mts_post(j->q->srv, j->worker, run_done, j) == -ENOMEM)
		usleep(1000);
}

static void *pool_main(void *arg)
{
	struct mts_workq *q = arg;
	struct cds_wfcq_node *node;
	struct job *j;

	log_set_thread_tag("pool");
	for (;;) {
		while (sem_wait(&q->ready) == -1)
			;	/* EINTR */
		if (atomic_load_explicit(&q->stopping, memory_order_acquire))
			return NULL;
		node = cds_wfcq_dequeue_blocking(&q->head, &q->tail);
		if (node == NULL)
			continue;	/* cannot happen: each post follows its enqueue */
		j = caa_container_of(node, struct job, node);
		TSAN_ACQUIRE(j);	/* pairs with TSAN_RELEASE in mts_workq_submit */
		j->work(j->arg);
		finish(j);
	}
}

int mts_workq_new(struct mts_workq **out, struct mts_server *s, unsigned threads)
{
	struct mts_workq *q;

	if (threads == 0)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->srv = s;
	cds_wfcq_init(&q->head, &q->tail);
	if (sem_init(&q->ready, 0, 0) == -1) {
		free(q);
		return -errno;
	}
	q->threads = calloc(threads, sizeof(*q->threads));
	if (q->threads == NULL) {
		mts_workq_free(q);
		return -ENOMEM;
	}
	for (; q->n_threads < threads; q->n_threads++) {
		int rc = pthread_create(&q->threads[q->n_threads], NULL, pool_main, q);
		if (rc != 0) {
			mts_workq_free(q);
			return -rc;
		}
	}
	*out = q;
	return 0;
}

int mts_workq_submit(struct mts_workq *q, unsigned worker, mts_job_fn work,
		     mts_done_fn done, void *arg)
{
	struct job *j;

	if (worker >= mts_worker_count(q->srv) || work == NULL || done == NULL)
		return -EINVAL;
	if (atomic_load_explicit(&q->stopping, memory_order_acquire))
		return -ESHUTDOWN;
	j = malloc(sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	*j = (struct job){ .work = work, .done = done, .arg = arg, .worker = worker, .q = q };
	cds_wfcq_node_init(&j->node);
	atomic_fetch_add_explicit(&q->outstanding, 1, memory_order_relaxed);
	TSAN_RELEASE(j);
	cds_wfcq_enqueue(&q->head, &q->tail, &j->node);		/* S1 */
	sem_post(&q->ready);					/* S2 */
	return 0;
}

void mts_workq_free(struct mts_workq *q)
{
	struct cds_wfcq_node *node;

	if (q == NULL)
		return;
	/* Stop the pool: threads finish their current job, then see `stopping`. */
	atomic_store_explicit(&q->stopping, true, memory_order_release);
	for (unsigned i = 0; i < q->n_threads; i++)
		sem_post(&q->ready);
	for (unsigned i = 0; i < q->n_threads; i++)
		pthread_join(q->threads[i], NULL);
	/* What no thread started is cancelled; its done still runs, on its worker. */
	while ((node = cds_wfcq_dequeue_blocking(&q->head, &q->tail)) != NULL) {
		struct job *j = caa_container_of(node, struct job, node);
		TSAN_ACQUIRE(j);
		j->cancelled = 1;
		finish(j);
	}
	/* Every done has run (or runs now): then nothing refers to q. */
	while (atomic_load_explicit(&q->outstanding, memory_order_acquire) != 0)
		usleep(1000);
	cds_wfcq_destroy(&q->head, &q->tail);
	sem_destroy(&q->ready);
	free(q->threads);
	free(q);
}
