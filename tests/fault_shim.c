/*
 * fault_shim.c - an LD_PRELOAD library for tests/test_faults: makes every
 * Nth evbuffer_new() fail (N from FAULT_EVBUFFER_EVERY), so that a
 * protocol's output-buffer allocation fails without any hook in its code.
 * echoserver calls evbuffer_new() only for a connection's pending output.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct evbuffer;
struct evbuffer *evbuffer_new(void);

static atomic_uint calls;
/* Set once, under `once`: workers may make their first call together. */
static struct evbuffer *(*real)(void);
static unsigned every;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	const char *e = getenv("FAULT_EVBUFFER_EVERY");

	every = e ? (unsigned)strtoul(e, NULL, 10) : 0;
	*(void **)&real = dlsym(RTLD_NEXT, "evbuffer_new");
}

struct evbuffer *evbuffer_new(void)
{
	pthread_once(&once, init);
	if (every > 0 && (atomic_fetch_add(&calls, 1) + 1) % every == 0)
		return NULL;
	return real();
}
