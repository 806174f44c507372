/*
 * counter.h - statistics counters with one writer and any number of readers.
 *
 * The writing thread adds with a relaxed load and a relaxed store: no locked
 * read-modify-write instruction on the hot path, which is correct only
 * because no other thread ever writes the counter. Readers load relaxed and
 * see some recent value: statistics order nothing else.
 */
#ifndef MTS_COUNTER_H
#define MTS_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

static inline void counter_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t counter_get(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static inline void counter_set(atomic_uint_fast64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

#endif
