/*
 * iplimit.h - connections per source address (--max-conns-per-ip).
 *
 * IPv4 addresses count one by one. IPv6 addresses count by /64 prefix: one
 * host usually holds a whole /64 and can pick any address in it, so counting
 * single addresses would let one host take as many slots as it likes. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as its IPv4 address.
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

#include <sys/socket.h>

struct iplimit;
struct ip_entry;

/* Returns 0 or -ENOMEM; max >= 1. */
int iplimit_new(struct iplimit **out, unsigned max);
/* Every admitted connection must have been released. */
void iplimit_free(struct iplimit *l);

/*
 * Counts a connection from `sa` against its address. Returns 0 and sets
 * *entry (to pass to iplimit_release), -EBUSY when the address is at its
 * limit (nothing counted), or -ENOMEM.
 */
int iplimit_admit(struct iplimit *l, const struct sockaddr *sa, struct ip_entry **entry);
void iplimit_release(struct iplimit *l, struct ip_entry *entry);

#endif
