/*
 * test_udp_guard.c - the UDP guards (udp_guard.h) on their own, with a
 * clock the test turns by hand: the source ports refused and the ones
 * not, the addresses no host sends from, and the rate: a burst of exactly
 * one second's worth, then one datagram per interval, per source address
 * whatever its port, with an IPv6 /64 counted as one source and an
 * IPv4-mapped address as its IPv4.
 */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "tap.h"
#include "udp_guard.h"

static struct sockaddr_storage addr(const char *ip, int port)
{
	struct sockaddr_storage ss = { 0 };

	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, ip, &in6->sin6_addr);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &in->sin_addr);
	}
	return ss;
}

static bool refused(const char *ip, int port)
{
	struct sockaddr_storage ss = addr(ip, port);

	return udp_guard_refused_source((struct sockaddr *)&ss);
}

/* How many of n datagrams from ip, all at time t, rate r allows. Each
 * from a source port of its own: the rate is the address's, whatever port
 * a sender uses. */
static unsigned allowed(struct udp_rate *r, const char *ip, unsigned n, uint64_t t)
{
	unsigned yes = 0;

	for (unsigned i = 0; i < n; i++) {
		struct sockaddr_storage ss = addr(ip, 40000 + (int)i);

		yes += udp_rate_allow(r, (struct sockaddr *)&ss, t);
	}
	return yes;
}

int main(void)
{
	static const int guarded[] = { 0, 7, 9, 13, 17, 19, 37, 53, 111, 123, 137, 138, 161,
				       389, 500, 520, 1900, 5353, 11211 };
	static const int open_ports[] = { 1, 8, 22, 1024, 5555, 32768, 60999, 65535 };
	const uint64_t t0 = 1000000000000ull, second = 1000000000ull;
	struct udp_rate r;
	bool all = true;
	unsigned n;

	tap_plan(9);
	for (size_t i = 0; i < sizeof(guarded) / sizeof(guarded[0]); i++)
		all = all && refused("192.0.2.1", guarded[i]) && refused("2001:db8::1", guarded[i]);
	ok(all, "every guarded source port is refused, IPv4 and IPv6");
	all = true;
	for (size_t i = 0; i < sizeof(open_ports) / sizeof(open_ports[0]); i++)
		all = all && !refused("192.0.2.1", open_ports[i]) &&
		      !refused("2001:db8::1", open_ports[i]);
	ok(all, "ports no answering service has are not (1, 8, 22, 1024, 5555, 32768, 60999, "
	   "65535)");
	ok(refused("224.0.0.1", 5000) && refused("255.255.255.255", 5000) &&
	   refused("0.0.0.0", 5000) && refused("ff02::1", 5000) && refused("::", 5000) &&
	   refused("::ffff:224.0.0.1", 5000) && refused("::ffff:192.0.2.1", 7),
	   "multicast, broadcast and unspecified sources are refused, mapped ones too");
	ok(!refused("127.0.0.1", 5000) && !refused("::1", 5000) &&
	   !refused("::ffff:192.0.2.1", 5000), "loopback and mapped unicast sources are not");

	if (udp_rate_init(&r, 100) != 0)
		bail("udp_rate_init");
	r.seed = 1;	/* a seed the test knows: these addresses share no bucket */
	n = allowed(&r, "192.0.2.1", 150, t0);
	ok(n == 100, "rate 100: of 150 at one instant, the burst of one second's worth, 100, "
	   "is allowed (%u)", n);
	n = allowed(&r, "192.0.2.1", 5, t0 + second / 100);
	{
		unsigned later = allowed(&r, "192.0.2.1", 150, t0 + 2 * second);

		ok(n == 1 && later == 100, "10 ms later, one more (%u); a second later, 100 "
		   "again (%u)", n, later);
	}
	n = allowed(&r, "192.0.2.2", 150, t0);
	ok(n == 100, "another address has its own rate (%u)", n);
	n = allowed(&r, "2001:db8:1:2::1", 60, t0) + allowed(&r, "2001:db8:1:2:ffff::9", 60, t0);
	ok(n == 100 && allowed(&r, "2001:db8:1:3::1", 150, t0) == 100,
	   "IPv6: two addresses of one /64 share one rate (%u of 120), the next /64 has its "
	   "own", n);
	n = allowed(&r, "::ffff:192.0.2.9", 60, t0) + allowed(&r, "192.0.2.9", 60, t0);
	ok(n == 100, "an IPv4-mapped address counts as its IPv4 address (%u of 120)", n);
	udp_rate_destroy(&r);
	return tap_done();
}
