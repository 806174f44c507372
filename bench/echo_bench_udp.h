/*
 * echo_bench_udp.h - echo-bench --udp (echo_bench_udp.c says how).
 */
#ifndef ECHO_BENCH_UDP_H
#define ECHO_BENCH_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "histogram.h"

#define UDP_BENCH_MAX_THREADS 64

struct udp_bench_cfg {
	const struct sockaddr *to;	/* the server */
	socklen_t to_len;
	const char *source;		/* the flows' address, or NULL: any */
	unsigned flows, threads;	/* threads <= flows, <= the maximum */
	unsigned depth;			/* closed loop: in flight per flow */
	size_t size;			/* bytes per datagram, 16..65507 */
	double seconds;
	double rate;			/* 0: closed loop; else datagrams/s in all */
	bool verify;
};

struct udp_bench_result {
	uint64_t sent, answered, lost, errors;	/* answered: within the run */
	struct histogram hist;		/* latency of each answer, ns */
};

/* Runs the load; exits (cli_die, cli_usage_error) on what cannot run. */
int udp_bench_run(const struct udp_bench_cfg *cfg, struct udp_bench_result *res);

#endif
