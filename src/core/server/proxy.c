/*
 * proxy.c - the PROXY protocol's header. Contract in proxy.h.
 *
 * Every check looks only at bytes that are there: a header cut anywhere
 * is "not yet" (0) until the bytes seen show it cannot be one, and then
 * it is refused at once, so that a sender learns of its mistake early
 * (the specification asks for that) and a wrong first byte costs nothing.
 */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "proxy.h"

static const unsigned char v2_signature[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};
static const char v1_signature[] = "PROXY ";
#define V1_SIGNATURE_LEN (sizeof(v1_signature) - 1)

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* ---- version 1 ---------------------------------------------------------- */

/* A port: one to five digits, 0..65535, no leading zero (the
 * specification's words: "heading zeroes are not permitted"). */
static int v1_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -PROXY_EPORT;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -PROXY_EPORT;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -PROXY_EPORT;
	*port = (uint16_t)v;
	return 0;
}

/* "TCP4 src dst sport dport" or "TCP6 ...": exactly five fields, single
 * spaces. line is the header without "PROXY " and CRLF, and is cut up. */
static int v1_addresses(char *line, struct proxy_header *h)
{
	char *f[5];
	size_t n = 0;
	int family = strncmp(line, "TCP4", 4) == 0 ? AF_INET : AF_INET6;
	uint16_t sport, dport;
	unsigned char dst[sizeof(struct in6_addr)];
	int rc;

	/* Cut at the first four spaces; the fifth field must have none. */
	f[0] = line;
	for (n = 1; n < 5; n++) {
		char *space = strchr(f[n - 1], ' ');

		if (space == NULL)
			return -PROXY_ESYNTAX;	/* a field missing */
		*space = '\0';
		f[n] = space + 1;
	}
	if (strchr(f[4], ' ') != NULL)
		return -PROXY_ESYNTAX;		/* a field too many */
	for (size_t i = 0; i < 5; i++)
		if (f[i][0] == '\0')
			return -PROXY_ESYNTAX;	/* two spaces in a row */
	if ((rc = v1_port(f[3], &sport)) < 0 || (rc = v1_port(f[4], &dport)) < 0)
		return rc;
	memset(&h->src, 0, sizeof(h->src));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&h->src;

		if (inet_pton(AF_INET, f[1], &s4->sin_addr) != 1 ||
		    inet_pton(AF_INET, f[2], dst) != 1)
			return -PROXY_EADDRESS;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(sport);
		h->src_len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->src;

		if (inet_pton(AF_INET6, f[1], &s6->sin6_addr) != 1 ||
		    inet_pton(AF_INET6, f[2], dst) != 1)
			return -PROXY_EADDRESS;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(sport);
		h->src_len = sizeof(*s6);
	}
	return 1;
}

static int parse_v1(const unsigned char *buf, size_t n, struct proxy_header *h)
{
	char line[PROXY_V1_MAX + 1], *rest;
	size_t end = 0, seen = min_size(n, PROXY_V1_MAX);

	if (memcmp(buf, v1_signature, min_size(n, V1_SIGNATURE_LEN)) != 0)
		return -PROXY_ESIGNATURE;
	/* The CRLF, and no lone CR or LF before it. */
	for (size_t i = 0; i < seen && end == 0; i++) {
		if (buf[i] == '\n')
			return -PROXY_ESYNTAX;	/* an LF without its CR */
		if (buf[i] == '\r') {
			if (i + 1 == PROXY_V1_MAX)
				return -PROXY_ETOOLONG;	/* no room for the LF */
			if (i + 1 == n)
				return 0;		/* the LF may come */
			if (buf[i + 1] != '\n')
				return -PROXY_ESYNTAX;	/* a CR without its LF */
			end = i;
		}
	}
	if (end == 0)
		return n >= PROXY_V1_MAX ? -PROXY_ETOOLONG : 0;
	memcpy(line, buf, end);
	line[end] = '\0';
	if (strlen(line) != end)
		return -PROXY_ESYNTAX;		/* a NUL in the line */
	rest = line + V1_SIGNATURE_LEN;
	h->version = 1;
	h->len = end + 2;
	h->src_len = 0;
	h->local = false;
	/* UNKNOWN: anything up to the CRLF, to be ignored. */
	if (strncmp(rest, "UNKNOWN", 7) == 0 && (rest[7] == '\0' || rest[7] == ' '))
		return 1;
	if ((strncmp(rest, "TCP4 ", 5) != 0 && strncmp(rest, "TCP6 ", 5) != 0))
		return -PROXY_ESYNTAX;
	return v1_addresses(rest, h);
}

/* ---- version 2 ---------------------------------------------------------- */

/* The bytes of each family's addresses, by the high nibble of byte 14. */
static const size_t v2_address_len[] = { 0, 12, 36, 216 };

/* Bytes 13 and 14, as far as they are there. */
static int v2_fixed(const unsigned char *buf, size_t n)
{
	if (n > 12 && buf[12] >> 4 != 2)
		return -PROXY_EVERSION;
	if (n > 12 && (buf[12] & 0x0f) > 1)
		return -PROXY_ECOMMAND;
	if (n > 13 && (buf[13] >> 4 > 3 || (buf[13] & 0x0f) > 2))
		return -PROXY_EFAMILY;
	return 0;
}

static int parse_v2(const unsigned char *buf, size_t n, struct proxy_header *h)
{
	size_t len;
	unsigned family, transport;
	bool local;
	int rc;

	if (memcmp(buf, v2_signature, min_size(n, sizeof(v2_signature))) != 0)
		return -PROXY_ESIGNATURE;
	if ((rc = v2_fixed(buf, n)) < 0 || n < 16)
		return rc;
	local = (buf[12] & 0x0f) == 0;
	family = buf[13] >> 4;
	transport = buf[13] & 0x0f;
	len = (size_t)buf[14] << 8 | buf[15];
	if (len > PROXY_V2_MAX_LEN)
		return -PROXY_ETOOLONG;
	/* LOCAL ignores the family, so its length too (it may even be 0). */
	if (!local && len < v2_address_len[family])
		return -PROXY_ELENGTH;
	if (n < 16 + len)
		return 0;
	h->version = 2;
	h->len = 16 + len;
	h->local = local;
	h->src_len = 0;
	/* Addresses are used only for a stream over IPv4 or IPv6; UNSPEC,
	 * UNIX and a datagram fall back to the socket's own, as the
	 * specification allows. */
	if (local || transport != 1 || (family != 1 && family != 2))
		return 1;
	memset(&h->src, 0, sizeof(h->src));
	if (family == 1) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&h->src;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, buf + 16, 4);
		memcpy(&s4->sin_port, buf + 16 + 8, 2);
		h->src_len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->src;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, buf + 16, 16);
		memcpy(&s6->sin6_port, buf + 16 + 32, 2);
		h->src_len = sizeof(*s6);
	}
	return 1;
}

int proxy_parse(const unsigned char *buf, size_t n, struct proxy_header *h)
{
	if (n == 0)
		return 0;
	if (buf[0] == v1_signature[0])
		return parse_v1(buf, n, h);
	if (buf[0] == v2_signature[0])
		return parse_v2(buf, n, h);
	return -PROXY_ESIGNATURE;
}

const char *proxy_strerror(int err)
{
	static const char *const what[PROXY_NERRORS] = {
		[PROXY_ESIGNATURE] = "not a PROXY header (no signature of either version)",
		[PROXY_ETOOLONG] = "too long (v1: no CRLF within 107 bytes; v2: more than "
				   "1024 bytes after the first 16)",
		[PROXY_ESYNTAX] = "a v1 line not of the form 'PROXY TCP4|TCP6 SRC DST "
				  "SPORT DPORT' or 'PROXY UNKNOWN'",
		[PROXY_EADDRESS] = "a v1 address that is not one of its family",
		[PROXY_EPORT] = "a v1 port that is not a number from 0 to 65535",
		[PROXY_EVERSION] = "a v2 version other than 2",
		[PROXY_ECOMMAND] = "a v2 command other than LOCAL or PROXY",
		[PROXY_EFAMILY] = "an unknown v2 address family or transport",
		[PROXY_ELENGTH] = "a v2 length shorter than its family's addresses",
	};

	if (err < 0)
		err = -err;
	return err > 0 && err < PROXY_NERRORS ? what[err] : "unknown error";
}
