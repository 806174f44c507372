/*
 * metrics.h - the server's statistics over HTTP, for Prometheus
 * (mts_config.metrics_listen / metrics_fd; metrics.c says what is served
 * and how a scrape stays out of the workers' way).
 *
 * Main thread only: the endpoint lives on the main thread's base, made by
 * mts_new() and freed by mts_free().
 */
#ifndef MTS_METRICS_H
#define MTS_METRICS_H

#include <stddef.h>

struct mts_config;
struct mts_server;
struct metrics;

/* At most this many scrape connections at once; more are closed at once. */
#define METRICS_MAX_CONNS 8
/* A request must arrive whole within this many seconds of the connection
 * (or of the previous answer on it); an idle connection is closed then too. */
#define METRICS_DEADLINE_S 10

/*
 * Serves GET /metrics of s on s's main base, on a duplicate of
 * cfg->metrics_fd (a listening socket; the caller's descriptor is left
 * alone) or else on the addresses cfg->metrics_listen names. 0 with *out
 * NULL when neither is set; 0 with *out set; or a negative errno with
 * *why naming the address and the reason.
 */
int metrics_new(struct metrics **out, struct mts_server *s, const struct mts_config *cfg,
		char *why, size_t why_len);
/* The main loop has stopped (mts_run() returns): closes the listening
 * sockets and shuts down the scrape connections, so that a scraper is
 * refused rather than left waiting. NULL is fine. */
void metrics_stop(struct metrics *m);
/* Closes the listening sockets and every scrape connection. NULL is fine. */
void metrics_free(struct metrics *m);
/* "127.0.0.1:9100" of listening socket i, or NULL past the last (or
 * after metrics_stop()). */
const char *metrics_name(const struct metrics *m, size_t i);

#endif
