/*
 * fault_shim.c - an LD_PRELOAD library for tests/test_faults: makes every
 * Nth evbuffer_new() fail (N from FAULT_EVBUFFER_EVERY), so that a
 * protocol's output-buffer allocation fails without any hook in its code.
 * echoserver calls evbuffer_new() only for a connection's pending output.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>

struct evbuffer;
struct evbuffer *evbuffer_new(void);

static atomic_uint calls;

struct evbuffer *evbuffer_new(void)
{
	static struct evbuffer *(*real)(void);
	const char *every = getenv("FAULT_EVBUFFER_EVERY");
	unsigned n = every ? (unsigned)strtoul(every, NULL, 10) : 0;

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "evbuffer_new");
	if (n > 0 && (atomic_fetch_add(&calls, 1) + 1) % n == 0)
		return NULL;
	return real();
}
