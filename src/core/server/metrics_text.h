/*
 * metrics_text.h - the server's statistics as Prometheus text (format
 * 0.0.4): the body of a GET /metrics. metrics_text.c says how the figures
 * are read without disturbing the workers.
 */
#ifndef MTS_METRICS_TEXT_H
#define MTS_METRICS_TEXT_H

#include <stdint.h>

struct evbuffer;
struct mts_server;

/* "# HELP" and "# TYPE" of one metric family. */
void metrics_family(struct evbuffer *b, const char *name, const char *type, const char *help);

/*
 * Appends every family of s to b: per-worker counters and the handoff
 * histogram, the server's own, the process's. saved_seen (one per worker,
 * zeroed at first, kept by the caller between scrapes) makes the derived
 * wake-ups-saved figure never go back. 0, or -ENOMEM (b may then hold a
 * part of the text).
 */
int metrics_text(struct evbuffer *b, const struct mts_server *s, uint64_t *saved_seen);

#endif
