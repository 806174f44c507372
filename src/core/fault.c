/*
 * fault.c - see fault.h. Only built with --enable-fault-injection.
 */
#include <config.h>

#ifdef FAULT_INJECTION
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

static const char *const names[FAULT_N_POINTS] = {
	[FAULT_CONN_ALLOC] = "conn_alloc",
	[FAULT_WAKEUP_WRITE] = "wakeup_write",
};
static unsigned every[FAULT_N_POINTS];		/* written once, under `once` */
static atomic_uint passes[FAULT_N_POINTS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void parse(void)
{
	const char *spec = getenv("ECHOSERVER_FAULTS");

	for (int p = 0; spec != NULL && p < FAULT_N_POINTS; p++) {
		const char *at = strstr(spec, names[p]);
		size_t len = strlen(names[p]);

		if (at != NULL && at[len] == '=')
			every[p] = (unsigned)strtoul(at + len + 1, NULL, 10);
	}
}

bool fault_hit(enum fault_point p)
{
	pthread_once(&once, parse);
	if (every[p] == 0)
		return false;
	return (atomic_fetch_add(&passes[p], 1) + 1) % every[p] == 0;
}
#endif
