/*
 * udp_guard.h - what keeps UDP echo from being turned against others.
 *
 * A UDP source address is whatever the sender wrote: answering it sends
 * our reply to whoever that address names. Two guards bound what a forged
 * address can do.
 *
 * The loop guard (udp_guard_refused_source): no answer to a datagram that
 * no real client could have sent, or whose answer would go to a service
 * that answers unsolicited datagrams itself. Source port 0 is not a port a
 * socket can send from; echo, chargen, daytime and the like answer any
 * datagram, so a reply to one of them is answered again and the two
 * services bounce it for ever; DNS, NTP, SNMP and the like turn one
 * datagram into a larger reply, so a reply to them feeds an amplifier.
 * The list, and where it comes from, is in udp_guard.c. A multicast or
 * broadcast source is refused too: no host sends from one.
 *
 * The rate guard (struct udp_rate): at most `rate` datagrams per second
 * per source, IPv4 per address, IPv6 per /64 (the key of iplimit.h), with
 * a burst of one second's worth. A forged source can be made to receive no
 * more than that from us, however fast the forger sends. One table for all
 * workers: the kernel spreads a source's datagrams over the workers'
 * sockets by its port too, so a per-worker table would give a source that
 * uses many ports `rate` times the workers.
 *
 * How: GCRA (the generic cell rate algorithm, ATM's policer), one 64-bit
 * word per bucket holding the time the next datagram is due; a datagram
 * is allowed when that time is less than a second ahead, and then moves it
 * one interval later. A compare-and-swap per datagram, no lock. The table
 * has a fixed size (UDP_RATE_BUCKETS) and no keys: sources whose hashes
 * collide share a bucket (and its rate). The hash is keyed with a random
 * seed, so a sender cannot choose addresses that collide with a victim's.
 * The memory is bounded whatever the number of sources; the cost is that
 * an unlucky source may be limited with another.
 */
#ifndef MTS_UDP_GUARD_H
#define MTS_UDP_GUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* True when a datagram from sa must not be answered (the loop guard).
 * Any thread; no state. */
bool udp_guard_refused_source(const struct sockaddr *sa);
/* True when port is one of the guarded ports (port 0 included). */
bool udp_guard_refused_port(uint16_t port);
/* The port of an IPv4 or IPv6 address, host order (0 for others). */
uint16_t udp_guard_port(const struct sockaddr *sa);

#define UDP_RATE_BUCKETS 65536u	/* 512 KiB: bounded, whatever the sources */

struct udp_rate {
	uint64_t interval_ns;		/* 1 s / rate, rounded up */
	uint64_t tolerance_ns;		/* (rate - 1) intervals: the burst */
	uint64_t seed;			/* keys the hash */
	_Atomic uint64_t *due;		/* per bucket: when the next is due */
};

/* rate >= 1 datagrams per second per source. 0 or -ENOMEM. */
int udp_rate_init(struct udp_rate *r, unsigned rate);
void udp_rate_destroy(struct udp_rate *r);
/* Any thread: may a datagram from sa (IPv4 or IPv6), arriving at now_ns
 * (CLOCK_MONOTONIC), be answered? Counts it against its source if so. */
bool udp_rate_allow(struct udp_rate *r, const struct sockaddr *sa, uint64_t now_ns);

#endif
