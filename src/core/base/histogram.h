/*
 * histogram.h - a log-bucketed latency histogram: values below 128 are exact;
 * above, each power of two is split into 128 buckets, so a reported value is
 * within 1/256 (0.4%) of the true one. Fixed size (59 KiB), no allocation
 * while recording, values up to 2^64-1.
 *
 * One writer (the thread that records), any number of readers: buckets are
 * relaxed atomics, so a reader sees each bucket whole but the set of buckets
 * only approximately while recording goes on.
 *
 * Not HdrHistogram: its C library has no Debian package, and this contract
 * (a writer that never allocates or locks, readers on other threads) is
 * all the server needs (doc/ARCHITECTURE.md, "Written here").
 */
#ifndef MTS_HISTOGRAM_H
#define MTS_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_SUB)

struct histogram {
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t max;
	atomic_uint_fast64_t sum;	/* of the values recorded (wraps after 2^64) */
	atomic_uint_fast64_t bucket[HIST_BUCKETS];
};

void hist_reset(struct histogram *h);
/* The single writer only. */
void hist_record(struct histogram *h, uint64_t value);
/* Adds src into dst; dst's writer only (or nobody recording). */
void hist_merge(struct histogram *dst, const struct histogram *src);
uint64_t hist_count(const struct histogram *h);
uint64_t hist_max(const struct histogram *h);
uint64_t hist_sum(const struct histogram *h);
/*
 * Cumulative counts at the ascending bounds[0..n): at_most[i] counts the
 * values recorded in buckets that hold nothing above bounds[i], and
 * *total every value. Each bucket is read once, so the figures agree with
 * each other (at_most[] never decreases, and never passes *total) even
 * while the writer records. A bound that is not a bucket's top leaves
 * the bucket it cuts to the next bound: a value less than one bucket's
 * width below the bound (at most 1/128 of it) may be counted above it,
 * never the reverse.
 */
void hist_cumulative(const struct histogram *h, const uint64_t *bounds, size_t n,
		     uint64_t *at_most, uint64_t *total);
/* The value at quantile q (0 < q <= 1), e.g. 0.999; 0 when empty. */
uint64_t hist_quantile(const struct histogram *h, double q);

/* CLOCK_MONOTONIC in nanoseconds: what every latency here is measured in. */
static inline uint64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
