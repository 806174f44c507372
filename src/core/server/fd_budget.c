/*
 * fd_budget.c - the descriptor budget (fd_budget.h).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

#include "fd_budget.h"

/* Descriptors open in this process now, or -1 if /proc cannot say. */
static long open_descriptors(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own */
}

void fd_budget_begin(struct fd_budget *b, unsigned threads)
{
	b->threads = threads;
	b->before = open_descriptors();
}

int fd_budget_check(void *arg, char *why, size_t why_len)
{
	const struct fd_budget *b = arg;
	struct rlimit rl;
	long now = open_descriptors(), each = now - b->before, need, fit;

	if (b->before < 0 || now < 0 || each <= 0 || getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    rl.rlim_cur == RLIM_INFINITY)
		return 0;
	need = now + each * (long)(b->threads - 1) + FD_BUDGET_RESERVE;
	if (need <= (long)rl.rlim_cur)
		return 0;
	fit = ((long)rl.rlim_cur - FD_BUDGET_RESERVE - b->before) / each;
	snprintf(why, why_len, "not enough file descriptors: %u worker threads take %ld "
		 "(%ld each), %ld are open already and %d are kept for connections, but the "
		 "limit is %lu; raise it (ulimit -n %ld) or use at most %ld threads",
		 b->threads, each * (long)b->threads, each, b->before, FD_BUDGET_RESERVE,
		 (unsigned long)rl.rlim_cur, need, fit > 0 ? fit : 0);
	return -EMFILE;
}
