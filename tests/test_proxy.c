/*
 * test_proxy.c - the PROXY header parser (proxy.h) and the address blocks
 * of --proxy-from (cidr.h), with no socket: every header HAProxy sends
 * taken, each kind of bad header refused with its own reason, every cut of
 * a good header "not yet" and never a wrong answer, and a million random
 * corruptions of good headers that never read past what they were given.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "proxy.h"
#include "tap.h"

static const unsigned char sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				       0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

/* A v2 header: ver_cmd, fam, then len bytes of body. */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *body,
		 size_t len)
{
	memcpy(out, sig, 12);
	out[12] = (unsigned char)ver_cmd;
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(len >> 8);
	out[15] = (unsigned char)len;
	if (len > 0)
		memcpy(out + 16, body, len);
	return 16 + len;
}

static int parse_s(const char *s, struct proxy_header *h)
{
	return proxy_parse((const unsigned char *)s, strlen(s), h);
}

/* src of h is addr:port? */
static int src_is(const struct proxy_header *h, const char *addr, unsigned port)
{
	char buf[INET6_ADDRSTRLEN];

	if (h->src_len == 0)
		return 0;
	if (h->src.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&h->src;

		inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
		return strcmp(buf, addr) == 0 && ntohs(s4->sin_port) == port;
	}
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&h->src;

	inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
	return strcmp(buf, addr) == 0 && ntohs(s6->sin6_port) == port;
}

static void good_headers(void)
{
	struct proxy_header h;
	unsigned char b[PROXY_MAX + 64], body[PROXY_V2_MAX_LEN] = { 0 };
	const char *l4 = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
	int rc;
	size_t n;

	rc = parse_s(l4, &h);
	ok(rc == 1 && h.version == 1 && h.len == strlen(l4) - 5 && src_is(&h, "192.0.2.1", 56324),
	   "v1 TCP4: taken, the client's address and port, the data after it not counted (len %zu)",
	   h.len);
	rc = parse_s("PROXY TCP6 2001:db8::1 ::1 65535 0\r\n", &h);
	ok(rc == 1 && h.version == 1 && src_is(&h, "2001:db8::1", 65535),
	   "v1 TCP6: taken (port 65535 and 0 are in range)");
	rc = parse_s("PROXY UNKNOWN\r\n", &h);
	ok(rc == 1 && h.len == 15 && h.src_len == 0, "v1 UNKNOWN: taken, no address (the socket's)");
	rc = parse_s("PROXY UNKNOWN ffff:f...f:ffff whatever 65535 65535\r\n", &h);
	ok(rc == 1 && h.src_len == 0, "v1 UNKNOWN with anything after it up to the CRLF: taken");

	memcpy(body, (unsigned char[]){ 10, 0, 0, 7, 10, 0, 0, 1, 0x30, 0x39, 0, 80 }, 12);
	n = v2(b, 0x21, 0x11, body, 12);
	rc = proxy_parse(b, n, &h);
	ok(rc == 1 && h.version == 2 && h.len == 28 && !h.local && src_is(&h, "10.0.0.7", 12345),
	   "v2 PROXY TCP over IPv4 (what send-proxy-v2 sends): 28 bytes, the client's address");
	memset(body, 0, sizeof(body));
	body[0] = 0x20, body[1] = 0x01, body[2] = 0x0d, body[3] = 0xb8, body[15] = 9;
	body[32] = 0x01, body[33] = 0xbb;
	n = v2(b, 0x21, 0x21, body, 36);
	rc = proxy_parse(b, n, &h);
	ok(rc == 1 && h.len == 52 && src_is(&h, "2001:db8::9", 443), "v2 PROXY TCP over IPv6");
	n = v2(b, 0x20, 0x00, NULL, 0);
	rc = proxy_parse(b, n, &h);
	ok(rc == 1 && h.local && h.src_len == 0 && h.len == 16,
	   "v2 LOCAL (a health check): taken, the socket's own address");
	n = v2(b, 0x20, 0x11, body, 12);
	rc = proxy_parse(b, n, &h);
	ok(rc == 1 && h.local && h.src_len == 0, "v2 LOCAL with addresses: they are ignored");
	n = v2(b, 0x21, 0x00, NULL, 0);
	rc = proxy_parse(b, n, &h);
	ok(rc == 1 && h.src_len == 0, "v2 PROXY UNSPEC: taken, the socket's own address");
	n = v2(b, 0x21, 0x31, body, 216);
	rc = proxy_parse(b, n, &h);
	ok(rc == 1 && h.src_len == 0 && h.len == 232, "v2 PROXY UNIX stream: taken, 232 bytes, "
	   "the socket's own address");
	n = v2(b, 0x21, 0x12, body, 12);
	rc = proxy_parse(b, n, &h);
	ok(rc == 1 && h.src_len == 0, "v2 UDP over IPv4: taken, falling back to the socket's "
	   "address (the specification's UNSPEC fallback)");
	/* TLVs: an AUTHORITY and a NOOP after the IPv4 addresses. */
	memcpy(body, (unsigned char[]){ 10, 0, 0, 7, 10, 0, 0, 1, 0x30, 0x39, 0, 80,
					0x02, 0, 4, 'e', 'c', 'h', 'o', 0x04, 0, 0 }, 22);
	n = v2(b, 0x21, 0x11, body, 22);
	memcpy(b + n, "after", 5);
	rc = proxy_parse(b, n + 5, &h);
	ok(rc == 1 && h.len == 38 && src_is(&h, "10.0.0.7", 12345),
	   "v2 with TLVs: skipped within the length (38 bytes), what follows is not the header's");
	n = v2(b, 0x21, 0x11, body, PROXY_V2_MAX_LEN);
	ok(proxy_parse(b, n, &h) == 1 && h.len == PROXY_MAX,
	   "v2 of the largest length taken (%d bytes)", PROXY_MAX);
}

static void bad_headers(void)
{
	static const struct {
		const char *line;
		int err;
		const char *what;
	} v1[] = {
		{ "GET / HTTP/1.1\r\n", PROXY_ESIGNATURE, "an HTTP request" },
		{ "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_ESIGNATURE, "lower case" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PROXY_ESYNTAX, "an LF without its CR" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", PROXY_ESYNTAX, "a CR without its LF" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n", PROXY_EPORT, "a port over 65535" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", PROXY_EPORT, "a negative port" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n", PROXY_EPORT, "a port of six digits" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n", PROXY_EPORT, "a leading zero" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", PROXY_EPORT, "a port of two zeros" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 1x 2\r\n", PROXY_EPORT, "a port not a number" },
		{ "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", PROXY_EADDRESS, "an IPv4 octet over 255" },
		{ "PROXY TCP4 ::1 5.6.7.8 1 2\r\n", PROXY_EADDRESS, "an IPv6 address as TCP4" },
		{ "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", PROXY_EADDRESS, "an IPv4 address as TCP6" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PROXY_ESYNTAX, "a field missing" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", PROXY_ESYNTAX, "a field too many" },
		{ "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", PROXY_ESYNTAX, "two spaces" },
		{ "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_ESYNTAX, "an unknown protocol" },
		{ "PROXY UNKNOWNX\r\n", PROXY_ESYNTAX, "UNKNOWN run into another word" },
		{ "PROXY \r\n", PROXY_ESYNTAX, "no protocol" },
	};
	struct proxy_header h;
	unsigned char b[PROXY_MAX + 64], body[256] = { 0 };
	char line[200];
	size_t n;
	int rc, rc2, all = 1;

	for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++) {
		rc = parse_s(v1[i].line, &h);
		if (rc != -v1[i].err) {
			diag("%s: %d, not %d (%s)", v1[i].what, rc, -v1[i].err, proxy_strerror(rc));
			all = 0;
		}
	}
	ok(all, "v1: %zu bad lines each refused for its own reason (signature, CR/LF, port, "
	   "address, fields)", sizeof(v1) / sizeof(v1[0]));
	memset(line, 'a', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	ok(proxy_parse((unsigned char *)line, 107, &h) == -PROXY_ETOOLONG &&
	   proxy_parse((unsigned char *)line, 106, &h) == 0,
	   "v1 without a CRLF in 107 bytes: refused at the 107th, not before");
	memcpy(line + 105, "\r\n", 2);
	ok(proxy_parse((unsigned char *)line, 107, &h) == 1 && h.len == 107,
	   "... and a line of exactly 107 bytes with its CRLF is taken");
	memcpy(line + 105, "a\r", 2);
	ok(proxy_parse((unsigned char *)line, 107, &h) == -PROXY_ETOOLONG,
	   "... a CR as the 107th byte leaves no room for the LF: refused");
	memcpy(line, "PROXY UNKNOWN\0\r\n", 16);
	ok(proxy_parse((unsigned char *)line, 16, &h) == -PROXY_ESYNTAX, "v1 with a NUL in it");

	n = v2(b, 0x11, 0x11, body, 12);
	ok(proxy_parse(b, n, &h) == -PROXY_EVERSION, "v2 signature with version 1: refused");
	n = v2(b, 0x22, 0x11, body, 12);
	ok(proxy_parse(b, n, &h) == -PROXY_ECOMMAND, "v2 with command 2: refused");
	n = v2(b, 0x21, 0x41, body, 12);
	rc = proxy_parse(b, n, &h);
	n = v2(b, 0x21, 0x13, body, 12);
	ok(rc == -PROXY_EFAMILY && proxy_parse(b, n, &h) == -PROXY_EFAMILY,
	   "v2 with family 4 or transport 3: refused");
	n = v2(b, 0x21, 0x11, body, 11);
	rc = proxy_parse(b, n, &h);
	n = v2(b, 0x21, 0x21, body, 12);
	rc2 = proxy_parse(b, n, &h);
	v2(b, 0x21, 0x31, body, 215);
	ok(rc == -PROXY_ELENGTH && rc2 == -PROXY_ELENGTH && proxy_parse(b, 16, &h) == -PROXY_ELENGTH,
	   "v2 PROXY whose length is shorter than its family's addresses (11 for IPv4, 12 for "
	   "IPv6, 215 for UNIX): refused, as soon as the 16 bytes are in");
	b[14] = (unsigned char)((PROXY_V2_MAX_LEN + 1) >> 8);
	b[15] = (unsigned char)(PROXY_V2_MAX_LEN + 1);
	ok(proxy_parse(b, 16, &h) == -PROXY_ETOOLONG,
	   "v2 longer than %d after its 16 bytes: refused at the 16th", PROXY_V2_MAX_LEN);
	memcpy(b, sig, 12);
	b[5] = 0x0a;
	ok(proxy_parse(b, 6, &h) == -PROXY_ESIGNATURE && proxy_parse(b, 5, &h) == 0,
	   "a wrong byte in v2's signature: refused at that byte, not before");
	ok(proxy_parse((const unsigned char *)"\x16\x03\x01", 3, &h) == -PROXY_ESIGNATURE,
	   "a TLS ClientHello: refused at its first byte");
}

/* Every cut of a good header is "not yet", never a verdict. */
static void cuts(void)
{
	unsigned char b[PROXY_MAX], body[64] = { 10, 0, 0, 7, 10, 0, 0, 1, 0, 1, 0, 2 };
	const char *lines[] = { "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
				"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n", "PROXY UNKNOWN\r\n" };
	struct proxy_header h;
	size_t n, bad = 0, tried = 0;

	for (size_t i = 0; i < 3; i++)
		for (size_t k = 0; k < strlen(lines[i]); k++, tried++)
			bad += proxy_parse((const unsigned char *)lines[i], k, &h) != 0;
	n = v2(b, 0x21, 0x11, body, 12);
	for (size_t k = 0; k < n; k++, tried++)
		bad += proxy_parse(b, k, &h) != 0;
	ok(bad == 0, "every cut of four good headers (%zu cuts) is 'not yet' (%zu were not)",
	   tried, bad);
}

/* Random corruptions: parsed from a buffer of exactly n bytes on the heap
 * (ASan and valgrind see a read past it); the verdict is consistent. */
static void corruptions(void)
{
	unsigned char good[PROXY_MAX], body[64] = { 10, 0, 0, 7, 10, 0, 0, 1, 0, 1, 0, 2 };
	const char *l1 = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nafter";
	struct proxy_header h;
	unsigned seed = 12345, inconsistent = 0, taken = 0, refused = 0;
	size_t n2 = v2(good, 0x21, 0x11, body, 12);

	for (unsigned t = 0; t < 200000; t++) {
		size_t n = t % 2 ? n2 + 5 : strlen(l1);
		unsigned char *b = malloc(n);
		int rc;

		memcpy(b, t % 2 ? good : (const unsigned char *)l1, n);
		for (unsigned k = 0, m = 1 + rand_r(&seed) % 4; k < m; k++)
			b[rand_r(&seed) % n] = (unsigned char)rand_r(&seed);
		n = (size_t)rand_r(&seed) % (n + 1);
		rc = proxy_parse(b, n, &h);
		if (rc == 1 && (h.len > n || h.len == 0 || (h.version != 1 && h.version != 2)))
			inconsistent++;
		taken += rc == 1;
		refused += rc < 0;
		free(b);
	}
	ok(inconsistent == 0, "200000 corrupted and cut headers: no verdict reads past its "
	   "bytes or says more than they hold (%u taken, %u refused)", taken, refused);
}

static void cidr(void)
{
	struct cidr_list l;
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	struct sockaddr un = { .sa_family = AF_UNIX };
	char why[200];
	int a, b, c, d, e, f;

	ok(cidr_list_parse(&l, "10.0.0.0/8,2001:db8::/32,192.0.2.7", why, sizeof(why)) == 0,
	   "--proxy-from 10.0.0.0/8,2001:db8::/32,192.0.2.7: parsed");
	inet_pton(AF_INET, "10.200.3.4", &s4.sin_addr);
	a = cidr_list_match(&l, (struct sockaddr *)&s4);
	inet_pton(AF_INET, "11.0.0.1", &s4.sin_addr);
	b = cidr_list_match(&l, (struct sockaddr *)&s4);
	inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr);
	c = cidr_list_match(&l, (struct sockaddr *)&s4);
	inet_pton(AF_INET6, "2001:db8:ffff::1", &s6.sin6_addr);
	d = cidr_list_match(&l, (struct sockaddr *)&s6);
	inet_pton(AF_INET6, "::ffff:10.1.1.1", &s6.sin6_addr);
	e = cidr_list_match(&l, (struct sockaddr *)&s6);
	f = cidr_list_match(&l, &un);
	ok(a && !b && c && d && e && !f, "in: 10.200.3.4, 192.0.2.7, 2001:db8:ffff::1, "
	   "::ffff:10.1.1.1 (as IPv4); out: 11.0.0.1 and a Unix peer (%d%d%d%d%d%d)",
	   a, b, c, d, e, f);
	cidr_list_free(&l);
	ok(cidr_list_parse(&l, "unix,127.0.0.1/32", why, sizeof(why)) == 0 &&
	   cidr_list_match(&l, &un), "'unix' admits a Unix socket's peer");
	cidr_list_free(&l);
	a = cidr_list_parse(&l, "10.0.0.0/33", why, sizeof(why)) == -EINVAL &&
	    strstr(why, "10.0.0.0/33") != NULL;
	cidr_list_free(&l);
	b = cidr_list_parse(&l, "10.0.0.0/8,bogus", why, sizeof(why)) == -EINVAL &&
	    strstr(why, "bogus") != NULL;
	cidr_list_free(&l);
	c = cidr_list_parse(&l, ",", why, sizeof(why)) == -EINVAL;
	cidr_list_free(&l);
	d = cidr_list_parse(&l, "::1/", why, sizeof(why)) == -EINVAL;
	cidr_list_free(&l);
	ok(a && b && c && d, "refused, naming the entry: /33 on IPv4, a word, an empty list, "
	   "a slash with no bits");
	ok(cidr_list_parse(&l, "0.0.0.0/0", why, sizeof(why)) == 0 &&
	   cidr_list_match(&l, (struct sockaddr *)&s4), "0.0.0.0/0 admits every IPv4 sender");
	cidr_list_free(&l);
	inet_pton(AF_INET, "10.1.2.3", &s4.sin_addr);
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
	cidr_list_parse(&l, "::ffff:10.0.0.0/104", why, sizeof(why));
	a = cidr_list_match(&l, (struct sockaddr *)&s4) && cidr_list_match(&l, (struct sockaddr *)&s6);
	cidr_list_free(&l);
	cidr_list_parse(&l, "::/0", why, sizeof(why));
	b = cidr_list_match(&l, (struct sockaddr *)&s4);
	cidr_list_free(&l);
	cidr_list_parse(&l, "2001:db8::/32", why, sizeof(why));
	c = !cidr_list_match(&l, (struct sockaddr *)&s4);
	cidr_list_free(&l);
	ok(a && b && c, "an IPv4 sender is also its IPv4-mapped IPv6 address: ::ffff:10.0.0.0/104 "
	   "and ::/0 admit 10.1.2.3, 2001:db8::/32 does not (%d%d%d)", a, b, c);
}

int main(void)
{
	tap_watchdog(60);
	tap_plan(33);
	good_headers();
	bad_headers();
	cuts();
	corruptions();
	cidr();
	return tap_done();
}
