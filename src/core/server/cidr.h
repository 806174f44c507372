/*
 * cidr.h - lists of address blocks ("127.0.0.0/8,::1,unix"): who may send
 * a PROXY header (--proxy-from). Parsed once by mts_new(), read-only after:
 * any thread may match against a list.
 */
#ifndef MTS_CIDR_H
#define MTS_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct cidr {
	sa_family_t family;		/* AF_INET, AF_INET6, or AF_UNIX ("unix") */
	unsigned char addr[16];		/* network order, host bits cleared */
	unsigned bits;			/* prefix length */
};

struct cidr_list {
	struct cidr *v;
	size_t n;
};

/*
 * Parses a comma-separated list of ADDRESS[/BITS] (IPv4 or IPv6 literals;
 * no BITS: the address alone) and the word "unix" (every peer of a Unix
 * socket: a process of this host). 0, or -EINVAL with *why naming the
 * entry, or -ENOMEM. Free it with cidr_list_free() either way.
 */
int cidr_list_parse(struct cidr_list *l, const char *text, char *why, size_t why_len);
/* Is sa (an IPv4-mapped IPv6 address counts as its IPv4 one) in l? */
bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);
void cidr_list_free(struct cidr_list *l);

#endif
