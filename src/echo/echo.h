/*
 * echo.h - the RFC 862 echo protocol, as a handler for the core (mtserver.h).
 *
 * Every byte received is sent back, in order, unchanged; nothing a client
 * sends is interpreted. Per connection, the server holds at most about
 * `high_watermark` bytes of pending output: past it, reading from that client
 * stops until its output drains below `low_watermark`.
 */
#ifndef ECHOSERVER_ECHO_H
#define ECHOSERVER_ECHO_H

#include <stddef.h>

#include "mtserver.h"

struct echo_config {
	size_t high_watermark;	/* stop reading at this much pending output */
	size_t low_watermark;	/* resume reading below this */
};

#define ECHO_DEFAULT_HIGH_WATERMARK (256 * 1024)
#define ECHO_DEFAULT_LOW_WATERMARK (64 * 1024)

/* Fills *h with the echo handler; cfg must outlive the server. */
void echo_handler(struct mts_handler *h, const struct echo_config *cfg);

#endif
