/*
 * listen.h - the listening sockets: resolved from the configuration and
 * opened, or inherited from systemd socket activation.
 *
 * A listen set holds `copies` sockets per address, at l[a * copies + k]:
 * one per address for --accept handoff and shared, one per address and
 * worker for reuseport (SO_REUSEPORT; worker k accepts on copy k). Names
 * are those of copy 0 of each address.
 *
 * Main thread only, before the workers start and after they stop.
 */
#ifndef MTS_LISTEN_H
#define MTS_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "mtserver.h"

struct listener {
	int fd;
	char name[128];			/* "127.0.0.1:5555", "[::1]:5555", a
					 * Unix socket's path or "@name" */
};

struct listen_set {
	struct listener *l;
	size_t n;			/* addresses * copies */
	unsigned copies;
};

/*
 * cfg is the one mts_new() checked and filled in (config.c, server_check_config):
 * port is set, listen and listen_fds agree with their counts.
 *
 * Opens cfg's addresses (cfg->listen, cfg->port, cfg->backlog), `copies`
 * sockets each, with SO_REUSEPORT if reuseport; or, when cfg->n_listen_fds
 * is set, takes those descriptors (copies must be 1): the stream ones into
 * set, the datagram ones (IPv4, IPv6) into dgram, which is otherwise left
 * empty. Returns 0 or a
 * negative errno with *why saying what failed; -EINVAL for a configuration
 * that cannot work (an unresolvable name, overlapping addresses, an
 * inherited descriptor that is not a listening stream socket).
 */
int listen_open(struct listen_set *set, struct listen_set *dgram, const struct mts_config *cfg,
		unsigned copies, bool reuseport, char *why, size_t why_len);
/*
 * UDP on the addresses of tcp (its IPv4 and IPv6 ones, on the port each is
 * bound to), `copies` SO_REUSEPORT sockets each (addr_datagram). 0 or a
 * negative errno with *why naming the address.
 */
int listen_open_udp(struct listen_set *udp, const struct listen_set *tcp, unsigned copies,
		    char *why, size_t why_len);
void listen_close(struct listen_set *set);
/*
 * An inherited descriptor must be a listening stream socket, IPv4, IPv6 or
 * Unix (the families the server can name and count): checks fd, and makes
 * it non-blocking and close-on-exec like the server's own. 0, or a
 * negative errno with *why naming fd as `what` ("listen_fds[0]").
 */
int listen_adopt(int fd, const char *what, char *why, size_t why_len);

static inline size_t listen_addresses(const struct listen_set *set)
{
	return set->copies ? set->n / set->copies : 0;
}

#endif
