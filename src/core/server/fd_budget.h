/*
 * fd_budget.h - will the workers' descriptors fit under RLIMIT_NOFILE?
 *
 * Checked once worker 0 exists (the executor's after_first hook): what it
 * took is what every other worker will take (an event_base holds its
 * backend's fd and libevent's signal socketpair; an inbox holds its
 * eventfd or pipe), so the rest must fit with FD_BUDGET_RESERVE to spare.
 * Failing here, with numbers, beats failing inside libevent
 * ("evsig_init_: socketpair: Too many open files") halfway through the
 * workers.
 */
#ifndef MTS_FD_BUDGET_H
#define MTS_FD_BUDGET_H

#include <stddef.h>

/* Left free after the workers: the first connections, and the program's own. */
#define FD_BUDGET_RESERVE 16

struct fd_budget {
	unsigned threads;
	long before;		/* open before the first worker; -1: unknown */
};

/* Before the first worker is made: counts what is open now. */
void fd_budget_begin(struct fd_budget *b, unsigned threads);
/* The executor's after_first hook (arg: the struct fd_budget). 0 if the
 * rest fit (or /proc cannot say), else -EMFILE with *why saying what to
 * change. */
int fd_budget_check(void *arg, char *why, size_t why_len);

#endif
