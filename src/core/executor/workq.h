/*
 * workq.h - the work queue behind mts_workq_* (mtserver.h has the contract
 * that programs see; the server layer forwards to these).
 *
 * A queue posts each job's completion to a worker of an executor, as an
 * executor task carried inside the job. The queues made for one server are
 * kept on a workq_list, which stops and frees the ones the program left.
 */
#ifndef MTS_WORKQ_H
#define MTS_WORKQ_H

#include <stdatomic.h>

#include "executor.h"

struct mts_workq;
typedef void (*workq_job_fn)(void *arg);

struct workq_list {
	_Atomic(struct mts_workq *) head;
	/* Set once the executor's workers have left their loops: no done can
	 * run any more, only be cancelled (workq.c, "FREE AGAINST STOP"). */
	atomic_bool workers_stopped;
};

int workq_new(struct mts_workq **out, struct executor *ex, struct workq_list *list,
	      unsigned threads);
int workq_submit(struct mts_workq *q, unsigned worker, workq_job_fn work,
		 exec_call_fn done, void *arg);
void workq_free(struct mts_workq *q);

/* Once the executor's workers are joined (exec_stop()): wakes any
 * workq_free() waiting for dones that can no longer run. */
void workq_workers_stopped(struct workq_list *list);
/* Before exec_close(): stops the pools of queues never freed, and cancels
 * their jobs not started (each still ends in one done); waits for a pool
 * another thread is stopping. */
void workq_stop_all(struct workq_list *list);
/* After exec_close(): frees every queue on the list, once no thread is
 * inside workq_free() for it. */
void workq_free_all(struct workq_list *list);

#endif
