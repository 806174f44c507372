/*
 * fault.h - test-only fault injection at named points.
 *
 * Compiled in only with ./configure --enable-fault-injection; in every other
 * build fault_hit() is the constant false and the points cost nothing.
 * With it, the environment variable ECHOSERVER_FAULTS arms the points, e.g.
 *
 *   ECHOSERVER_FAULTS="conn_alloc=5,wakeup_write=3"
 *
 * makes every 5th connection allocation and every 3rd wake-up write fail.
 * (Failures inside libevent, such as evbuffer_new() in the echo protocol,
 * are injected from outside by tests/fault_shim.c, an LD_PRELOAD library.)
 * tests/test_faults.c uses both.
 */
#ifndef ECHOSERVER_FAULT_H
#define ECHOSERVER_FAULT_H

#include <stdbool.h>

enum fault_point {
	FAULT_CONN_ALLOC,	/* acceptor: the struct mts_conn for a new connection */
	FAULT_WAKEUP_WRITE,	/* inbox: the eventfd/pipe write that wakes a worker */
	FAULT_N_POINTS
};

#ifdef FAULT_INJECTION
/* Any thread. True when this pass through point p must fail. */
bool fault_hit(enum fault_point p);
#else
static inline bool fault_hit(enum fault_point p)
{
	(void)p;
	return false;
}
#endif

#endif
