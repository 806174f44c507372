/*
 * test_histogram.c - the latency histogram: relative error within 1% over
 * the whole range, quantiles of a known distribution, merge, max.
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

	tap_plan(6);
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
	ok(abs_d(hist_quantile(&h, 0.5) / 500000.0 - 1) < 0.01, "p50 of a uniform 0..1 ms is 0.5 ms (%llu)",
	   (unsigned long long)hist_quantile(&h, 0.5));
	ok(abs_d(hist_quantile(&h, 0.999) / 999000.0 - 1) < 0.01, "p99.9 is 0.999 ms (%llu)",
	   (unsigned long long)hist_quantile(&h, 0.999));

	hist_reset(&other);
	for (v = 0; v < 100000; v++)
		hist_record(&other, 5000000);	/* 5 ms, as many again */
	hist_merge(&h, &other);
	ok(hist_count(&h) == 200000 && hist_max(&h) == 5000000, "merge adds counts and keeps the max");
	ok(abs_d(hist_quantile(&h, 0.75) / 5000000.0 - 1) < 0.01 &&
	   hist_quantile(&h, 0.25) < 1000000, "quantiles of the merged distribution (p25 %llu, p75 %llu)",
	   (unsigned long long)hist_quantile(&h, 0.25), (unsigned long long)hist_quantile(&h, 0.75));
	return tap_done();
}
