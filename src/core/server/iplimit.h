/*
 * iplimit.h - connections per source address (--max-conns-per-ip).
 *
 * IPv4 addresses count one by one. IPv6 addresses count by /64 prefix: one
 * host usually holds a whole /64 and can pick any address in it, so counting
 * single addresses would let one host take as many slots as it likes. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as its IPv4 address.
 * On a Unix socket (socket activation) every client is on this host and
 * has no address: there a client counts as its user id, which the kernel
 * vouches for (SO_PEERCRED), so that one user cannot hold every slot, as
 * one host cannot over the network.
 *
 * What it protects against: one host (or one /64) holding every slot of
 * --max-conns, so that nobody else can connect. What it does not: many
 * hosts each staying under the limit (a botnet), and it counts every client
 * behind one NAT address as one host.
 *
 * Who may call what: iplimit_admit, any accepting thread; iplimit_release,
 * any thread (a worker, when the connection ends). One mutex guards the
 * table: it is taken once per accept and once per close, next to system
 * calls that cost more.
 */
#ifndef MTS_IPLIMIT_H
#define MTS_IPLIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct iplimit;
struct ip_entry;

/* What a connection counts under. */
struct iplimit_key {
	sa_family_t family;	/* AF_INET, AF_INET6 (a /64), AF_UNIX (a uid) */
	uint64_t key;		/* the address, the prefix or the uid */
};

/*
 * The key of connection fd, which accept4() gave with the peer's address
 * `peer`: 0, or a negative errno (SO_PEERCRED failed; -EAFNOSUPPORT for a
 * family other than the three). Any thread.
 */
int iplimit_key_of(int fd, const struct sockaddr *peer, struct iplimit_key *k);
/* A key for a log line: "192.0.2.1", "[2001:db8:0:1::]/64", "uid 1000". */
void iplimit_key_format(const struct iplimit_key *k, char *buf, size_t len);

/* Returns 0 or -ENOMEM; max >= 1. */
int iplimit_new(struct iplimit **out, unsigned max);
/* Every admitted connection must have been released. */
void iplimit_free(struct iplimit *l);

/*
 * Counts a connection against its key. Returns 0 and sets *entry (to pass
 * to iplimit_release), -EBUSY when the key is at its limit (nothing
 * counted), or -ENOMEM.
 */
int iplimit_admit(struct iplimit *l, const struct iplimit_key *k, struct ip_entry **entry);
void iplimit_release(struct iplimit *l, struct ip_entry *entry);

#endif
