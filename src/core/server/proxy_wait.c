/*
 * proxy_wait.c - a connection's PROXY header, read on its worker. Contract
 * in proxy_wait.h.
 *
 * The header is read without taking a byte that is not the header's: the
 * bytes are looked at with MSG_PEEK, parsed, and only the header's length
 * is then read off the socket. What the client sent after it stays in the
 * socket for the protocol's first read, so it is echoed as usual, however
 * it arrived (in the header's segment or later), and no buffer is handed
 * from here to the protocol.
 *
 * The header must be whole in the first bytes that arrive. The
 * specification asks a sender to send it at once (it is shorter than any
 * segment) and a receiver to reject a partial one; so one that dribbles in
 * is closed at its first byte, not held until it finishes. What is waited
 * for is that first arrival, up to timeout_ms from the accept: a
 * connection that sends nothing is closed then.
 *
 * Why max_conns_per_ip stays exact. With --proxy-protocol the acceptor
 * counts nothing (accept_shared.source_after_header); each connection is
 * counted here, once, against the address its header carried (or its
 * socket's own, for a LOCAL or UNSPEC header), through the same
 * accept_count_source() and the same iplimit table, whose one mutex orders
 * every admission and release on every thread. A connection refused here
 * holds no count; one admitted holds exactly one, in c->ip, released by
 * conn_release() on every path that ends it. Which thread accepted it
 * (any accept strategy), and where the listening socket came from (socket
 * activation), change nothing of that.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "acceptor.h"
#include "addr.h"
#include "conn.h"
#include "counter.h"
#include "log.h"
#include "proxy.h"
#include "proxy_wait.h"

#define DROP_LOG_MS 10000		/* one line per worker per 10 s at most */

static void drop(struct conn_home *h, struct mts_conn *c, enum mts_proxy_drop why,
		 const char *detail)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char name[128] = "?";
	unsigned skipped;

	counter_add(&h->proxy_drops[why], 1);
	if (log_limit_allow(&h->proxy_log, clock_now_ns() / 1000000, DROP_LOG_MS, &skipped)) {
		if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0)
			addr_format((struct sockaddr *)&ss, len, name, sizeof(name));
		log_warn("worker %u: closed a connection from %s: %s (%u more such since the "
			 "last line)", h->id, name, detail, skipped);
	}
	conn_end(c);
}

static void on_header(evutil_socket_t fd, short what, void *arg);

/* Nothing has arrived yet: wait for it, up to the rest of the timeout
 * (counted from the accept). */
static void wait_more(struct conn_home *h, struct mts_conn *c)
{
	const struct proxy_conf *p = h->sh->proxy;
	uint64_t waited_ms = (clock_now_ns() - c->accepted_ns) / 1000000;
	uint64_t left_ms = waited_ms < p->timeout_ms ? p->timeout_ms - waited_ms : 0;
	struct timeval tv = { .tv_sec = (time_t)(left_ms / 1000),
			      .tv_usec = (suseconds_t)(left_ms % 1000) * 1000 };

	if (c->proxy_ev == NULL)
		c->proxy_ev = event_new(h->base, c->fd, EV_READ, on_header, c);
	if (c->proxy_ev == NULL || event_add(c->proxy_ev, &tv) == -1) {
		log_warn("worker %u: cannot wait for a PROXY header; closing the connection",
			 h->id);
		conn_end(c);
	}
}

/* The header is in *hdr and consumed: count the source, then open. */
static void take(struct conn_home *h, struct mts_conn *c, const struct proxy_header *hdr,
		 const struct sockaddr *peer)
{
	const struct sockaddr *source = hdr->src_len > 0 ? (const struct sockaddr *)&hdr->src : peer;

	counter_add(&h->proxy_headers[hdr->version == 1 ? 0 : 1], 1);
	if (hdr->local)
		counter_add(&h->proxy_local, 1);
	if (c->proxy_ev != NULL) {
		event_free(c->proxy_ev);
		c->proxy_ev = NULL;
	}
	/* Refused (counted and logged there): ended here, fd and all. */
	if (accept_count_source(h->sh->proxy->accept, c->fd, source, &c->ip) < 0) {
		conn_end(c);
		return;
	}
	conn_open(c);
}

/* Looks at what has arrived: opens c, drops it, or waits. */
static void try_header(struct conn_home *h, struct mts_conn *c)
{
	struct sockaddr_storage peer;
	socklen_t peer_len = sizeof(peer);
	struct proxy_header hdr;
	ssize_t n;
	int rc;

	if (getpeername(c->fd, (struct sockaddr *)&peer, &peer_len) == -1) {
		/* ENOTCONN: reset before its header came. */
		drop(h, c, MTS_PROXY_PARTIAL, "it was reset before a PROXY header came");
		return;
	}
	if (!cidr_list_match(&h->sh->proxy->from, (struct sockaddr *)&peer)) {
		drop(h, c, MTS_PROXY_SOURCE, "its sender is not one --proxy-from allows");
		return;
	}
	do
		n = recv(c->fd, h->scratch, PROXY_MAX, MSG_PEEK);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		wait_more(h, c);
		return;
	}
	if (n <= 0) {
		drop(h, c, MTS_PROXY_PARTIAL, "it closed before a PROXY header came");
		return;
	}
	rc = proxy_parse((const unsigned char *)h->scratch, (size_t)n, &hdr);
	if (rc < 0) {
		drop(h, c, MTS_PROXY_INVALID, proxy_strerror(rc));
		return;
	}
	if (rc == 0) {
		drop(h, c, MTS_PROXY_PARTIAL, "a part of a PROXY header, not all of it at once");
		return;
	}
	/* The header's bytes are in the socket: this read takes them all. */
	if (recv(c->fd, h->scratch, hdr.len, 0) != (ssize_t)hdr.len) {
		conn_end(c);
		return;
	}
	take(h, c, &hdr, (struct sockaddr *)&peer);
}

static void on_header(evutil_socket_t fd, short what, void *arg)
{
	struct mts_conn *c = arg;

	(void)fd;
	if (what & EV_TIMEOUT)
		drop(c->home, c, MTS_PROXY_TIMEOUT, "no PROXY header in time (--proxy-timeout)");
	else
		try_header(c->home, c);
}

void proxy_wait_begin(struct conn_home *h, struct mts_conn *c)
{
	/* Handed off right after accept(): the header is usually there. */
	try_header(h, c);
}
