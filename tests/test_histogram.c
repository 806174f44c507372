/*
 * test_histogram.c - the latency histogram: relative error within 1% over
 * the whole range, quantiles of a known distribution, merge, max; the sum
 * and the cumulative counts that a Prometheus histogram is made of.
 */
#include <config.h>

#include <stdlib.h>

#include "histogram.h"
#include "tap.h"

static struct histogram h, other;

static double abs_d(double x)	/* no libm just for this */
{
	return x < 0 ? -x : x;
}

int main(void)
{
	double worst = 0;
	uint64_t v;
	tap_watchdog(30);

	tap_plan(10);
	/* One value at a time: the reported median is that value, within 1%. */
	for (v = 1; v < (1ull << 62); v = v + v / 97 + 1) {
		double err;

		hist_reset(&h);
		hist_record(&h, v);
		err = abs_d((double)hist_quantile(&h, 0.5) / (double)v - 1.0);
		if (err > worst)
			worst = err;
	}
	ok(worst <= 0.01, "relative error <= 1%% from 1 to 2^62 (worst %.4f%%)", worst * 100);

	hist_reset(&h);
	for (v = 1; v <= 100000; v++)
		hist_record(&h, v * 10);	/* uniform 10 ns .. 1 ms */
	ok(hist_count(&h) == 100000 && hist_max(&h) == 1000000, "count and max are exact");
	ok(hist_sum(&h) == 10ull * 100000 * 100001 / 2, "the sum is exact (%llu)",
	   (unsigned long long)hist_sum(&h));
	{
		/* 1023 is a bucket's top (512..1023 in steps of 4); 1000 and
		 * 2500 are not (996..999, 1000..1003; 2496..2511). */
		const uint64_t bounds[] = { 0, 9, 10, 1000, 1023, 2500, 1000000, 2000000 };
		uint64_t at[8], total;

		hist_cumulative(&h, bounds, 8, at, &total);
		ok(at[0] == 0 && at[1] == 0 && at[2] == 1 && at[4] == 102 && at[7] == 100000 &&
		   total == 100000,
		   "cumulative counts: exact at a bucket's top (<= 10 ns: %llu, <= 1023 ns: %llu, "
		   "<= 2 ms: %llu of %llu)", (unsigned long long)at[2],
		   (unsigned long long)at[4], (unsigned long long)at[7],
		   (unsigned long long)total);
		/* Inside a bucket: never a value above the bound; those less
		 * than a bucket's width below it (here 4096 ns, 0.4%) may wait
		 * for the next bound. */
		ok(at[3] == 99 && at[5] == 249 && at[6] <= 100000 && at[6] >= 99600,
		   "a bound inside a bucket: nothing above it counted, nothing more than 0.4%% "
		   "below it missed (<= 1000 ns: %llu, <= 2500 ns: %llu, <= 1 ms: %llu)",
		   (unsigned long long)at[3], (unsigned long long)at[5], (unsigned long long)at[6]);
	}
	ok(abs_d(hist_quantile(&h, 0.5) / 500000.0 - 1) < 0.01, "p50 of a uniform 0..1 ms is 0.5 ms (%llu)",
	   (unsigned long long)hist_quantile(&h, 0.5));
	ok(abs_d(hist_quantile(&h, 0.999) / 999000.0 - 1) < 0.01, "p99.9 is 0.999 ms (%llu)",
	   (unsigned long long)hist_quantile(&h, 0.999));

	hist_reset(&other);
	for (v = 0; v < 100000; v++)
		hist_record(&other, 5000000);	/* 5 ms, as many again */
	hist_merge(&h, &other);
	ok(hist_count(&h) == 200000 && hist_max(&h) == 5000000, "merge adds counts and keeps the max");
	ok(hist_sum(&h) == 10ull * 100000 * 100001 / 2 + 100000ull * 5000000, "merge adds the sums");
	ok(abs_d(hist_quantile(&h, 0.75) / 5000000.0 - 1) < 0.01 &&
	   hist_quantile(&h, 0.25) < 1000000, "quantiles of the merged distribution (p25 %llu, p75 %llu)",
	   (unsigned long long)hist_quantile(&h, 0.25), (unsigned long long)hist_quantile(&h, 0.75));
	return tap_done();
}
