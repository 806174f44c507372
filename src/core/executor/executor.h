/*
 * executor.h - worker threads that run tasks posted to them.
 *
 * An executor owns N worker threads. Each runs its own event_base and
 * receives tasks through its own inbox (handoff layer): any thread may post
 * a task to any worker, and the task runs on that worker's thread, in
 * order behind what was posted to it before. The executor knows nothing of
 * sockets or connections: the server layer above posts tasks that adopt
 * connections, and a protocol's code may post its own.
 *
 * THE ONE GUARANTEE: every task that exec_post() accepted (returned 0) ends
 * in exactly one of two calls, `run` (on its worker, with the worker's
 * base) or `cancel` (at exec_close(), on the closing thread, for tasks whose
 * worker had stopped before it got to them). So whatever a task holds is
 * released in one of the two, and nothing posted can leak at shutdown. A
 * task exec_post() refused (any negative return, -ENOBUFS included: the
 * worker's ring is full) was never accepted: neither is called, and it is
 * the caller's still, to post again or to release.
 *
 * Lifecycle, on the thread that owns the executor:
 *   exec_new     workers prepared (bases, inboxes), threads not started;
 *                tasks may be posted already (they run once it starts)
 *   exec_start   threads started
 *   exec_stop    "stop" posted to every worker, behind what was posted
 *                before; each calls the on_stop hook and leaves its loop
 *                when the hook says so (exec_leave()); then joined. A stop
 *                that a full ring refuses is kept and posted again (as
 *                exec_post_or_defer() does; it then arrives behind what got
 *                in meanwhile): stopping never waits for room, and never
 *                fails
 *   exec_close   posting is refused from now on (-ESHUTDOWN); once the
 *                posts already under way are done, every task still queued
 *                is cancelled
 *   exec_free    everything released
 *
 * A failed wake-up never blocks or fails a post: the inboxes hand their
 * debts to the retrier given at exec_new() (retry.h). The same retrier is
 * the net under what exec_post_or_defer() keeps for lack of room.
 */
#ifndef MTS_EXECUTOR_H
#define MTS_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "inbox.h"

struct event_base;
struct executor;
struct retrier;

/* A task: embedded in whatever object the poster hands over. */
struct exec_task {
	struct inbox_msg msg;		/* the executor's, from post to run/cancel */
	/* On the worker's thread. The task is the callee's from here. */
	void (*run)(struct exec_task *t, struct event_base *base, unsigned worker);
	/* Instead of run, at exec_close(), on the closing thread. */
	void (*cancel)(struct exec_task *t);
};

/* A plain function as a task: runs with cancelled 0, or is cancelled with
 * base NULL and cancelled 1 (the shape of mts_call_fn). */
typedef void (*exec_call_fn)(struct event_base *base, void *arg, int cancelled);

struct exec_config {
	unsigned threads;
	struct inbox_spec inbox;	/* each worker's inbox: variant and options */
	unsigned inbox_budget;
	/* Pays the inboxes' wake-up debts, and posts deferred tasks again. */
	struct retrier *retrier;
	/*
	 * On worker `worker`'s thread when "stop" reaches it. The worker leaves
	 * its loop once exec_leave() is called (from the hook itself, or later
	 * on that thread). NULL: it leaves at once.
	 */
	void (*on_stop)(unsigned worker, void *arg);
	/* On worker `worker`'s thread before its loop runs anything; or NULL. */
	void (*on_start)(unsigned worker, void *arg);
	void *arg;
	/*
	 * Once worker 0 is made, before the others (NULL: none): a nonzero
	 * return stops exec_new() with that error and *why. The server checks
	 * its descriptor budget here, from what one worker took.
	 */
	int (*after_first)(void *arg, char *why, size_t why_len);
	void *after_first_arg;
};

/* Returns 0 or a negative errno; *why says what failed. */
int exec_new(struct executor **out, const struct exec_config *cfg, char *why, size_t why_len);
unsigned exec_workers(const struct executor *ex);
/* Worker i's event_base: its thread's alone once exec_start() ran. */
struct event_base *exec_base(const struct executor *ex, unsigned i);
/* "w3": the worker's log tag. */
const char *exec_tag(const struct executor *ex, unsigned i);
void exec_inbox_stats(const struct executor *ex, unsigned i, struct inbox_stats *st);

/* Returns 0, or the negative errno of the first worker that could not start
 * (the ones started before it are stopped by exec_stop()). */
int exec_start(struct executor *ex);
void exec_stop(struct executor *ex);
/* Worker `i`'s thread: leave the loop (the stop is complete). */
void exec_leave(struct executor *ex, unsigned i);
/* Whether the calling thread is one of ex's workers: the layers above
 * refuse calls that would wait for the calling worker itself. */
bool exec_on_worker(const struct executor *ex);
void exec_close(struct executor *ex);
void exec_free(struct executor *ex);

/*
 * Any thread, from exec_new() until exec_free() (a post that races
 * exec_close() is either refused with -ESHUTDOWN or ends in run or cancel:
 * executor.c, "CLOSING AGAINST POSTERS"). Returns 0: the task will end in
 * run or cancel, once; -EINVAL: no such worker; -ESHUTDOWN: exec_close() has
 * begun; -ENOBUFS: the worker's inbox had no room (a full ring, or lfq out
 * of memory for its node). On an error the task was not accepted: neither
 * run nor cancel will be called, and the caller keeps it. Never waits (not
 * for room either: a worker may post to itself). Allocates nothing itself;
 * the inbox variant may (lfq: a node per post, with malloc()).
 */
int exec_post(struct executor *ex, unsigned worker, struct exec_task *t);

/*
 * exec_post() for a task that has no caller able to handle a refusal (a
 * completion coming back from a thread pool): a task a full ring refuses is
 * kept, in order, and posted again as soon as the worker frees a slot (by
 * the worker itself, as it takes a message; the retrier is the net under
 * it: executor.c). Returns 0 (the task ends in run or cancel, once, as with
 * exec_post()), -EINVAL or -ESHUTDOWN (not accepted). Never waits for the
 * worker or for room; while something is kept it takes the worker's
 * defer_lock, which its holder keeps for a post or two. Tasks posted this
 * way by one thread
 * run in their order; a plain exec_post() may overtake the ones kept.
 */
int exec_post_or_defer(struct executor *ex, unsigned worker, struct exec_task *t);

/* exec_post() of a plain function; also -ENOMEM (it allocates the task).
 * On any error it frees what it allocated and fn is not called. */
int exec_post_call(struct executor *ex, unsigned worker, exec_call_fn fn, void *arg);

#endif
