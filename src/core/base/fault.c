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
static atomic_uint every[FAULT_N_POINTS];	/* 0: the point never fails */
static atomic_uint passes[FAULT_N_POINTS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void parse(void)
{
	const char *spec = getenv("MTS_FAULTS");

	for (int p = 0; spec != NULL && p < FAULT_N_POINTS; p++) {
		const char *at = strstr(spec, names[p]);
		size_t len = strlen(names[p]);

		if (at != NULL && at[len] == '=')
			atomic_store(&every[p], (unsigned)strtoul(at + len + 1, NULL, 10));
	}
}

bool fault_hit(enum fault_point p)
{
	unsigned n;

	pthread_once(&once, parse);
	n = atomic_load(&every[p]);
	if (n == 0)
		return false;
	return (atomic_fetch_add(&passes[p], 1) + 1) % n == 0;
}

void fault_arm(enum fault_point p, unsigned n)
{
	pthread_once(&once, parse);	/* so that the environment cannot undo it */
	atomic_store(&every[p], n);
}

static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	bool closed;
	unsigned waiting;
	unsigned passes;	/* closed: threads fault_gate_open_one() lets by */
	/* Set by the first close, never cleared: until then a pass takes no
	 * lock, so a gate no test holds adds no ordering between the threads
	 * that pass it (a mutex would, and hide from TSan a missing one). */
	atomic_bool used;
} gates[GATE_N] = {
	[0 ... GATE_N - 1] = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0 },
};

void fault_gate(enum fault_gate g)
{
	if (!atomic_load_explicit(&gates[g].used, memory_order_acquire))
		return;
	pthread_mutex_lock(&gates[g].lock);
	if (gates[g].closed) {
		gates[g].waiting++;
		pthread_cond_broadcast(&gates[g].changed);
		while (gates[g].closed && gates[g].passes == 0)
			pthread_cond_wait(&gates[g].changed, &gates[g].lock);
		if (gates[g].closed)
			gates[g].passes--;	/* this thread is the one let by */
		gates[g].waiting--;
	}
	pthread_mutex_unlock(&gates[g].lock);
}

void fault_gate_close(enum fault_gate g)
{
	atomic_store_explicit(&gates[g].used, true, memory_order_release);
	pthread_mutex_lock(&gates[g].lock);
	gates[g].closed = true;
	gates[g].passes = 0;
	pthread_mutex_unlock(&gates[g].lock);
}

unsigned fault_gate_waiting(enum fault_gate g)
{
	unsigned n;

	pthread_mutex_lock(&gates[g].lock);
	n = gates[g].waiting;
	pthread_mutex_unlock(&gates[g].lock);
	return n;
}

void fault_gate_open(enum fault_gate g)
{
	pthread_mutex_lock(&gates[g].lock);
	gates[g].closed = false;
	gates[g].passes = 0;
	pthread_cond_broadcast(&gates[g].changed);
	pthread_mutex_unlock(&gates[g].lock);
}

void fault_gate_open_one(enum fault_gate g)
{
	pthread_mutex_lock(&gates[g].lock);
	if (gates[g].closed) {
		gates[g].passes++;
		pthread_cond_broadcast(&gates[g].changed);	/* the first to wake takes it */
	}
	pthread_mutex_unlock(&gates[g].lock);
}

/* A note's values: the first FAULT_NOTES_KEPT in kept[], and the count of all
 * of them. The lock orders each value before a reader that sees the count
 * include it. */
static struct {
	pthread_mutex_t lock;
	unsigned kept[FAULT_NOTES_KEPT];
	unsigned count;
} notes[NOTE_N] = {
	[0 ... NOTE_N - 1] = { .lock = PTHREAD_MUTEX_INITIALIZER },
};

void fault_note(enum fault_note n, unsigned v)
{
	pthread_mutex_lock(&notes[n].lock);
	if (notes[n].count < FAULT_NOTES_KEPT)
		notes[n].kept[notes[n].count] = v;
	notes[n].count++;
	pthread_mutex_unlock(&notes[n].lock);
}

unsigned fault_notes(enum fault_note n, unsigned *out, unsigned max)
{
	unsigned count;

	pthread_mutex_lock(&notes[n].lock);
	count = notes[n].count;
	for (unsigned i = 0; i < max && i < count && i < FAULT_NOTES_KEPT; i++)
		out[i] = notes[n].kept[i];
	pthread_mutex_unlock(&notes[n].lock);
	return count;
}

#endif
