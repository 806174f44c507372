/*
 * histogram.c - see histogram.h.
 */
#include <config.h>

#include <string.h>

#include "histogram.h"

static unsigned bucket_of(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);		/* 2^e <= v < 2^(e+1) */
	/* The 7 bits below the leading one pick the sub-bucket. */
	return HIST_SUB + (e - HIST_SUB_BITS) * HIST_SUB +
	       (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The middle of bucket i's range. */
static uint64_t value_of(unsigned i)
{
	unsigned e, sub;
	uint64_t low, width;

	if (i < HIST_SUB)
		return i;
	e = (i - HIST_SUB) / HIST_SUB + HIST_SUB_BITS;
	sub = (i - HIST_SUB) % HIST_SUB;
	width = 1ull << (e - HIST_SUB_BITS);
	low = (1ull << e) + sub * width;
	return low + width / 2;
}

static inline uint64_t get(const atomic_uint_fast64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static inline void put(atomic_uint_fast64_t *v, uint64_t x)
{
	atomic_store_explicit(v, x, memory_order_relaxed);
}

void hist_reset(struct histogram *h)
{
	memset(h, 0, sizeof(*h));
}

void hist_record(struct histogram *h, uint64_t value)
{
	atomic_uint_fast64_t *b = &h->bucket[bucket_of(value)];

	/* Single writer: load and store, not a locked read-modify-write. */
	put(b, get(b) + 1);
	put(&h->count, get(&h->count) + 1);
	if (value > get(&h->max))
		put(&h->max, value);
}

void hist_merge(struct histogram *dst, const struct histogram *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		put(&dst->bucket[i], get(&dst->bucket[i]) + get(&src->bucket[i]));
	put(&dst->count, get(&dst->count) + get(&src->count));
	if (get(&src->max) > get(&dst->max))
		put(&dst->max, get(&src->max));
}

uint64_t hist_count(const struct histogram *h)
{
	return get(&h->count);
}

uint64_t hist_max(const struct histogram *h)
{
	return get(&h->max);
}

uint64_t hist_quantile(const struct histogram *h, double q)
{
	uint64_t total = 0, seen = 0, rank, v;

	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		total += get(&h->bucket[i]);
	if (total == 0)
		return 0;
	rank = (uint64_t)(q * (double)total + 0.5);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += get(&h->bucket[i]);
		if (seen >= rank) {
			v = value_of(i);
			/* Never report more than the largest value seen. */
			return v > get(&h->max) ? get(&h->max) : v;
		}
	}
	return get(&h->max);
}
