/*
 * hb_util.c - handoff-bench's small helpers: pinning, thread CPU clocks,
 * context switches, perf counters, the seeded shuffle.
 */
#include <config.h>

#include "handoff_bench.h"

uint64_t rng_state;


void pin_to(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		fprintf(stderr, "handoff-bench: cannot pin to CPU %d\n", cpu);
}

int my_tid(void)
{
	return (int)syscall(SYS_gettid);
}

uint64_t thread_cpu_ns(pthread_t t)
{
	clockid_t id;
	struct timespec ts;

	if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t self_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What one read of the thread CPU clock costs: subtracted from each
 * bracketed post. The median of many back-to-back pairs. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

void calibrate_clock(void)
{
	uint64_t d[1001];

	for (int i = 0; i < 1001; i++) {
		uint64_t t0 = self_cpu_ns();
		d[i] = self_cpu_ns() - t0;
	}
	qsort(d, 1001, sizeof(d[0]), cmp_u64);
	clock_cost_ns = d[500];
}

/* Voluntary and involuntary context switches of one thread of ours. */
void ctx_switches(int tid, uint64_t *vol, uint64_t *invol)
{
	char path[64], line[128];
	unsigned long long v;
	FILE *f;

	*vol = *invol = 0;
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
			*vol = v;
		else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
			*invol = v;
	}
	fclose(f);
}

/* --perf: a cache-miss counter on one thread, or -1 (perf_unavailable says
 * why, once). */
int perf_open(int tid)
{
	struct perf_event_attr a;
	int fd;

	if (!opt.perf || perf_unavailable != NULL)
		return -1;
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_HARDWARE;
	a.config = PERF_COUNT_HW_CACHE_MISSES;
	a.exclude_kernel = 1;	/* allowed at perf_event_paranoid 2, the default */
	a.exclude_hv = 1;
	fd = (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, 0);
	if (fd < 0)
		perf_unavailable = strerror(errno);
	return fd;
}

uint64_t perf_read(int fd)
{
	uint64_t v = 0;

	if (fd >= 0 && read(fd, &v, sizeof(v)) != sizeof(v))
		v = 0;
	return v;
}

/* A small seeded generator for the shuffle (xorshift64*). */

static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

void shuffle(int *a, unsigned n)
{
	for (unsigned i = n; i > 1; i--) {
		unsigned j = (unsigned)(rng_next() % i);
		int t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

