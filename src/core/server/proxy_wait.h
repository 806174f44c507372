/*
 * proxy_wait.h - with --proxy-protocol, a connection's PROXY header is read
 * on its worker before the protocol hears of the connection: the sender
 * checked against --proxy-from, the header parsed (proxy.h), consumed and
 * never echoed, and the address it carries counted for max_conns_per_ip.
 *
 * Worker thread only (the connection's), but proxy_conf, set up by
 * mts_new() and read-only after.
 */
#ifndef MTS_PROXY_WAIT_H
#define MTS_PROXY_WAIT_H

#include "cidr.h"

struct accept_shared;
struct conn_home;
struct mts_conn;

struct proxy_conf {
	struct cidr_list from;		/* who may send a header */
	unsigned timeout_ms;		/* for the header, from the accept */
	struct accept_shared *accept;	/* counts the source (acceptor.h) */
};

/*
 * c (on h's list, its protocol not opened) waits for its header; it is
 * opened (conn_open()) once the header is read and its source counted,
 * or ended (conn_end()), counted in h by enum mts_proxy_drop (mtserver.h), otherwise.
 */
void proxy_wait_begin(struct conn_home *h, struct mts_conn *c);

#endif
