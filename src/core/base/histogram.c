/*
 * histogram.c - see histogram.h.
 */
#include <config.h>

#include <string.h>

#include "counter.h"
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

/* The largest value bucket i holds. */
static uint64_t top_of(unsigned i)
{
	unsigned e, sub;
	uint64_t width;

	if (i < HIST_SUB)
		return i;
	e = (i - HIST_SUB) / HIST_SUB + HIST_SUB_BITS;
	sub = (i - HIST_SUB) % HIST_SUB;
	width = 1ull << (e - HIST_SUB_BITS);
	return (1ull << e) + sub * width + (width - 1);
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

void hist_reset(struct histogram *h)
{
	memset(h, 0, sizeof(*h));
}

void hist_record(struct histogram *h, uint64_t value)
{
	atomic_uint_fast64_t *b = &h->bucket[bucket_of(value)];

	counter_add(b, 1);
	counter_add(&h->count, 1);
	counter_add(&h->sum, value);
	if (value > counter_get(&h->max))
		counter_set(&h->max, value);
}

void hist_merge(struct histogram *dst, const struct histogram *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		counter_add(&dst->bucket[i], counter_get(&src->bucket[i]));
	counter_add(&dst->count, counter_get(&src->count));
	counter_add(&dst->sum, counter_get(&src->sum));
	if (counter_get(&src->max) > counter_get(&dst->max))
		counter_set(&dst->max, counter_get(&src->max));
}

uint64_t hist_count(const struct histogram *h)
{
	return counter_get(&h->count);
}

uint64_t hist_max(const struct histogram *h)
{
	return counter_get(&h->max);
}

uint64_t hist_sum(const struct histogram *h)
{
	return counter_get(&h->sum);
}

void hist_cumulative(const struct histogram *h, const uint64_t *bounds, size_t n,
		     uint64_t *at_most, uint64_t *total)
{
	uint64_t seen = 0;
	size_t j = 0;

	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		/* Bucket i is the first with values above bounds[j]: what was
		 * seen before it is the count at most bounds[j]. */
		while (j < n && top_of(i) > bounds[j])
			at_most[j++] = seen;
		seen += counter_get(&h->bucket[i]);
	}
	while (j < n)
		at_most[j++] = seen;
	*total = seen;
}

uint64_t hist_quantile(const struct histogram *h, double q)
{
	uint64_t total = 0, seen = 0, rank, v;

	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		total += counter_get(&h->bucket[i]);
	if (total == 0)
		return 0;
	rank = (uint64_t)(q * (double)total + 0.5);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += counter_get(&h->bucket[i]);
		if (seen >= rank) {
			v = value_of(i);
			/* Never report more than the largest value seen. */
			return v > counter_get(&h->max) ? counter_get(&h->max) : v;
		}
	}
	return counter_get(&h->max);
}
