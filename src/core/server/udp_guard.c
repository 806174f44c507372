/*
 * udp_guard.c - the loop and rate guards of UDP echo. Contract in
 * udp_guard.h.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/random.h>

#include "iplimit.h"
#include "udp_guard.h"

/*
 * Source ports never answered, in two groups.
 *
 * Services that answer any datagram, so that two of them (or one and this
 * server) would bounce a datagram for ever: inetd's built-in simple
 * services. NetBSD's inetd refuses exactly echo 7, discard 9, daytime 13,
 * chargen 19 and time 37 as sources (usr.sbin/inetd/inetd.c, bad_ports[]
 * and port_good_dg()); we add qotd 17 (RFC 865), which answers any
 * datagram too, and port 0, which no socket sends from (NetBSD's list ends
 * at its 0, so it never refuses it). FreeBSD's check_loop() refuses only
 * the ports of the built-ins it serves itself; OpenBSD's dg_badinput()
 * refuses every port below 1024 and 2049 (NFS).
 *
 * Services whose answer to one small datagram is larger, the reflectors of
 * amplification attacks, to which an answer of ours would be a request:
 * the list QUIC servers refuse before they answer a datagram of no known
 * connection (msquic, src/core/binding.c, QuicBindingDropBlockedSourcePorts;
 * picoquic, picoquic/port_blocking.c; RFC 9308, section 8.1): DNS 53,
 * portmapper 111, NTP 123, NetBIOS 137 and 138, SNMP 161, CLDAP 389, IKE
 * 500, RIP 520, SSDP 1900, mDNS 5353, memcached 11211.
 *
 * Why not OpenBSD's "below 1024": it is the stricter rule, and a fine one;
 * a list says what each refusal is for, and leaves the ports no service
 * answers on to the clients that may use them. doc/API.md has the list.
 */
static const uint16_t refused_ports[] = {
	0, 7, 9, 13, 17, 19, 37, 53, 111, 123, 137, 138, 161, 389, 500, 520, 1900, 5353,
	11211,
};

bool udp_guard_refused_port(uint16_t port)
{
	for (size_t i = 0; i < sizeof(refused_ports) / sizeof(refused_ports[0]); i++)
		if (refused_ports[i] == port)
			return true;
	return false;
}

uint16_t udp_guard_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

bool udp_guard_refused_source(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uint32_t a = ntohl(in->sin_addr.s_addr);

		return udp_guard_refused_port(ntohs(in->sin_port)) || IN_MULTICAST(a) ||
		       a == INADDR_BROADCAST || a == INADDR_ANY;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const struct in6_addr *a = &in6->sin6_addr;

		if (udp_guard_refused_port(ntohs(in6->sin6_port)) || IN6_IS_ADDR_MULTICAST(a) ||
		    IN6_IS_ADDR_UNSPECIFIED(a))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			uint32_t v4 = (uint32_t)a->s6_addr[12] << 24 | (uint32_t)a->s6_addr[13] << 16 |
				      (uint32_t)a->s6_addr[14] << 8 | a->s6_addr[15];

			return IN_MULTICAST(v4) || v4 == INADDR_BROADCAST || v4 == INADDR_ANY;
		}
		return false;
	}
	return true;		/* no family we answer */
}

/* ---- the rate ----------------------------------------------------------- */

int udp_rate_init(struct udp_rate *r, unsigned rate)
{
	/* Rounded up: never more than rate per second. */
	*r = (struct udp_rate){ .interval_ns = (1000000000ull + rate - 1) / rate };
	r->tolerance_ns = (uint64_t)(rate - 1) * r->interval_ns;
	/* Not blocking: early in boot (socket activation) the pool may not be
	 * ready; a weaker seed then only makes collisions guessable. */
	if (getrandom(&r->seed, sizeof(r->seed), GRND_NONBLOCK) != sizeof(r->seed))
		r->seed = (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ull;	/* weaker */
	r->due = calloc(UDP_RATE_BUCKETS, sizeof(*r->due));
	return r->due != NULL ? 0 : -ENOMEM;
}

void udp_rate_destroy(struct udp_rate *r)
{
	free((void *)r->due);
	r->due = NULL;
}

/* splitmix64's finaliser over the key and the seed: every bit of the key
 * moves every bit of the result, and the seed is unknown outside. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

bool udp_rate_allow(struct udp_rate *r, const struct sockaddr *sa, uint64_t now_ns)
{
	/* A burst of one second's worth: rate datagrams at one instant. */
	const uint64_t tolerance = r->tolerance_ns;
	struct iplimit_key k;
	_Atomic uint64_t *due;
	uint64_t was, at;

	if (iplimit_key_of(-1, sa, &k) < 0)
		return false;
	due = &r->due[mix(k.key ^ mix(r->seed ^ k.family)) % UDP_RATE_BUCKETS];
	/* Relaxed: the word orders nothing but itself; the CAS makes each
	 * allowed datagram move it once. */
	was = atomic_load_explicit(due, memory_order_relaxed);
	do {
		at = was > now_ns ? was : now_ns;
		if (at - now_ns > tolerance)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(due, &was, at + r->interval_ns,
							memory_order_relaxed,
							memory_order_relaxed));
	return true;
}
