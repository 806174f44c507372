/*
 * proxy.h - the PROXY protocol's header, versions 1 (text) and 2 (binary),
 * as a balancer such as HAProxy sends it at the start of a connection to
 * say whom the connection is for (HAProxy's doc/proxy-protocol.txt is the
 * specification). A parser only: no I/O, no state, any thread. The reading
 * of it, on the connection's worker, is proxy_wait.c's.
 *
 * What is accepted, exactly:
 *   v1  "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (dotted quads), the
 *       same with TCP6 (any form inet_pton(3) reads), or "PROXY UNKNOWN"
 *       followed by anything up to the CRLF; single spaces; ports decimal,
 *       0..65535, with no leading zero; the CRLF within 107 bytes, and no
 *       lone CR or LF before it.
 *   v2  the 12-byte signature, version 2, command LOCAL or PROXY, family
 *       UNSPEC, INET, INET6 or UNIX with transport UNSPEC, STREAM or DGRAM
 *       (only a stream over INET or INET6 gives an address; the others fall
 *       back to the socket's, as the specification allows), a length at least
 *       the family's address block (12, 36, 216) and at most
 *       PROXY_V2_MAX_LEN; what follows the addresses (TLVs) is skipped.
 * Anything else is refused, as soon as the bytes seen show it.
 */
#ifndef MTS_PROXY_H
#define MTS_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107		/* the longest v1 line, CRLF included */
#define PROXY_V2_MAX_LEN 1024		/* the most bytes after v2's 16 we take:
					 * HAProxy sends 12 (IPv4) or 36 (IPv6),
					 * plus any TLVs proxy-v2-options asks for */
#define PROXY_MAX (16 + PROXY_V2_MAX_LEN)	/* the longest header of either */

/* Why a header was refused. */
enum proxy_error {
	PROXY_ESIGNATURE = 1,	/* neither version's signature */
	PROXY_ETOOLONG,		/* v1: no CRLF in 107 bytes; v2: length over the cap */
	PROXY_ESYNTAX,		/* v1: not the grammar above */
	PROXY_EADDRESS,		/* v1: an address that is not one of its family */
	PROXY_EPORT,		/* v1: a port out of range or not a number */
	PROXY_EVERSION,		/* v2: a version other than 2 */
	PROXY_ECOMMAND,		/* v2: a command other than LOCAL or PROXY */
	PROXY_EFAMILY,		/* v2: an unknown family or transport */
	PROXY_ELENGTH,		/* v2: shorter than its family's addresses */
	PROXY_NERRORS
};

struct proxy_header {
	unsigned version;		/* 1 or 2 */
	size_t len;			/* bytes the header takes on the wire */
	/* The client's address when the header carries one (v1 TCP4, TCP6;
	 * v2 PROXY with INET or INET6). Otherwise (v1 UNKNOWN, v2 LOCAL, a v2
	 * UNSPEC or UNIX family) src_len is 0: the connection keeps the
	 * address of its own socket, as the specification says. */
	struct sockaddr_storage src;
	socklen_t src_len;
	bool local;			/* v2 LOCAL: the balancer's own (a health check) */
};

/*
 * Reads the first n bytes of a connection. Returns
 *   1  the header is whole: *h says what it holds, h->len <= n;
 *   0  not yet: the n bytes are a beginning of a header (a caller that will
 *      not wait for more treats this as a partial header);
 *  <0  -enum proxy_error: not a header, whatever follows.
 */
int proxy_parse(const unsigned char *buf, size_t n, struct proxy_header *h);
/* A few words for an error ("no CRLF within 107 bytes"). */
const char *proxy_strerror(int err);

#endif
