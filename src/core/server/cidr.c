/*
 * cidr.c - lists of address blocks. Contract in cidr.h.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

/* Keeps the first `bits` bits of addr (of len bytes), clears the rest. */
static void mask(unsigned char *addr, size_t len, unsigned bits)
{
	for (size_t i = 0; i < len; i++) {
		unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * (unsigned)i : 0;

		addr[i] &= (unsigned char)(0xff00u >> keep);
	}
}

/* One entry, NUL-terminated (and cut up). */
static int parse_one(struct cidr *c, char *s)
{
	char *slash = strchr(s, '/'), *end;
	unsigned long bits;
	unsigned max;

	memset(c, 0, sizeof(*c));
	if (strcmp(s, "unix") == 0) {
		c->family = AF_UNIX;
		return 0;
	}
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, s, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, s, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	c->bits = max;
	if (slash != NULL) {
		errno = 0;
		bits = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno != 0 || bits > max)
			return -EINVAL;
		c->bits = (unsigned)bits;
	}
	mask(c->addr, max / 8, c->bits);
	return 0;
}

int cidr_list_parse(struct cidr_list *l, const char *text, char *why, size_t why_len)
{
	char *copy = strdup(text), *entry, *save = NULL;
	size_t cap = 1;

	*l = (struct cidr_list){ 0 };
	for (const char *p = text; *p != '\0'; p++)
		cap += *p == ',';
	if (copy == NULL || (l->v = calloc(cap, sizeof(*l->v))) == NULL) {
		free(copy);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	for (entry = strtok_r(copy, ",", &save); entry != NULL; entry = strtok_r(NULL, ",", &save)) {
		char shown[64];

		snprintf(shown, sizeof(shown), "%s", entry);
		if (parse_one(&l->v[l->n], entry) < 0) {
			snprintf(why, why_len, "'%s' is not an address block (ADDRESS[/BITS], "
				 "IPv4 or IPv6, or 'unix')", shown);
			free(copy);
			return -EINVAL;
		}
		l->n++;
	}
	free(copy);
	if (l->n == 0) {
		snprintf(why, why_len, "'%s' names no address block", text);
		return -EINVAL;
	}
	return 0;
}

/* Does the address (of its family's length) fall in block c? */
static bool in_block(const struct cidr *c, const unsigned char *addr)
{
	size_t len = c->family == AF_INET ? 4 : 16;
	unsigned char m[16];

	memcpy(m, addr, len);
	mask(m, len, c->bits);
	return memcmp(m, c->addr, len) == 0;
}

bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	/* An IPv4 peer, given as such or IPv4-mapped, is both a.b.c.d (for
	 * IPv4 blocks) and ::ffff:a.b.c.d (for IPv6 ones, ::/0 and
	 * ::ffff:0:0/96 among them). */
	unsigned char v4[4] = { 0 }, v6[16] = { 0 };
	bool is_v4 = sa->sa_family == AF_INET;

	if (is_v4) {
		memcpy(v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		v6[10] = v6[11] = 0xff;
		memcpy(v6 + 12, v4, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		memcpy(v6, a6, 16);
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			is_v4 = true;
			memcpy(v4, &a6->s6_addr[12], 4);
		}
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct cidr *c = &l->v[i];

		if (c->family == AF_UNIX ? sa->sa_family == AF_UNIX :
		    c->family == AF_INET ? is_v4 && in_block(c, v4) :
		    (sa->sa_family == AF_INET6 || is_v4) && in_block(c, v6))
			return true;
	}
	return false;
}

void cidr_list_free(struct cidr_list *l)
{
	free(l->v);
	*l = (struct cidr_list){ 0 };
}
