/*
 * addr.h - socket addresses: named for people, given a port, opened for
 * listening. Used by the listening sockets (listen.c) and the metrics
 * endpoint (metrics.c). Any thread; no state.
 */
#ifndef MTS_ADDR_H
#define MTS_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Formats an address of salen bytes as "1.2.3.4:5", "[::1]:5", or a Unix
 * socket's path ("@name" in the abstract namespace). */
void addr_format(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len);
/* Sets the port of an IPv4 or IPv6 address. */
void addr_set_port(struct sockaddr *sa, unsigned short port);
/* The port fd's IPv4 or IPv6 socket is bound to, or a negative errno. */
int addr_bound_port(int fd);
/*
 * One non-blocking, close-on-exec listening stream socket on sa (IPv6
 * ones IPV6_V6ONLY, so that 127.0.0.1 and ::1 can share a port): the fd,
 * or a negative errno. With reuseport, several sockets may bind the same
 * address and port (one per worker): the kernel spreads new connections
 * among them by a hash of the addresses.
 */
int addr_listen(const struct sockaddr *sa, socklen_t len, int backlog, bool reuseport);
/*
 * One non-blocking, close-on-exec UDP socket bound to sa, with
 * SO_REUSEPORT (one per worker, the kernel spreading sources among them)
 * and IPV6_V6ONLY like addr_listen's, that reports each datagram's
 * destination when it needs to (addr_ask_destination): the fd, or a
 * negative errno.
 */
int addr_datagram(const struct sockaddr *sa, socklen_t len);
/*
 * Datagram socket fd is bound to `bound`. When that is a wildcard (0.0.0.0,
 * ::), which receives what is sent to any of the host's addresses, asks
 * it to report where each datagram was sent (IP_PKTINFO,
 * IPV6_RECVPKTINFO), so that the answer can leave from there; bound to one
 * address, the kernel answers from it anyway, and asks nothing (no control
 * message per datagram). 0 or a negative errno.
 */
int addr_ask_destination(int fd, const struct sockaddr *bound);
/* 0.0.0.0 or :: (false for other families). */
bool addr_is_wildcard(const struct sockaddr *sa);
/*
 * Splits "HOST:PORT" ("[::1]:9100" for an IPv6 literal) into host and
 * port, in buf (len bytes). -EINVAL if it is not of that form.
 */
int addr_split_host_port(const char *spec, char *buf, size_t len, const char **host,
			 const char **port);

#endif
