/*
 * listen.c - the listening sockets. Contract in listen.h.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "listen.h"
#include "log.h"

static int add_listener(struct listen_set *set, int fd)
{
	struct listener *l, *grown;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	grown = realloc(set->l, (set->n + 1) * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	set->l = grown;
	l = &set->l[set->n++];
	*l = (struct listener){ .fd = fd };
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		addr_format((struct sockaddr *)&ss, len, l->name, sizeof(l->name));
	return 0;
}

/* An address to listen on, and the --listen argument it came from. */
struct candidate {
	struct sockaddr_storage ss;
	socklen_t len;
	const char *host;
	bool implicit;			/* of the default: none was given */
};

/* The same address, port aside (every listener gets the same port). */
static bool same_address(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
	       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

/* A wildcard and another address of its family would collide on one
 * port: true, with *why naming both. */
static bool overlap(const struct candidate *c, int n, char *why, size_t why_len)
{
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			const struct sockaddr *wild = (const struct sockaddr *)&c[i].ss;
			const struct sockaddr *other = (const struct sockaddr *)&c[j].ss;

			if (i != j && addr_is_wildcard(wild) && other->sa_family == wild->sa_family) {
				char a[80], b[80];

				addr_format(wild, c[i].len, a, sizeof(a));
				addr_format(other, c[j].len, b, sizeof(b));
				snprintf(why, why_len, "listen addresses overlap: %s (from '%s') already "
					 "covers %s (from '%s'); give one of them", a, c[i].host, b,
					 c[j].host);
				return true;
			}
		}
	return false;
}

/*
 * Resolves every --listen address. The same address twice (given twice, or
 * by a name and a literal, such as localhost and 127.0.0.1) is kept once; a
 * wildcard and another address of its family would collide on one port, so
 * that is refused as a conflict in the configuration (-EINVAL), naming both.
 * Returns the number of candidates, or a negative errno.
 */
static int resolve_all(const struct mts_config *cfg, struct candidate **out, char *why,
		       size_t why_len)
{
	/* Loopback, whatever /etc/hosts says "localhost" is: an echo server
	 * must not reach past this host unless asked to (README.md). */
	static const char *const default_hosts[] = { "127.0.0.1", "::1" };
	const char *const *hosts = cfg->n_listen ? cfg->listen : default_hosts;
	size_t n_hosts = cfg->n_listen ? cfg->n_listen : 2;
	/*
	 * A name given is resolved to the families this host has configured
	 * (AI_ADDRCONFIG), and each of its addresses must then be listened
	 * on. The default's are taken as they are: one that this host cannot
	 * bind is skipped, and named (listen_open()).
	 */
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | (cfg->n_listen ? AI_ADDRCONFIG : 0),
	};
	struct candidate *c = NULL, *grown;
	int n = 0;

	for (size_t h = 0; h < n_hosts; h++) {
		struct addrinfo *res, *ai;
		int gai;

		gai = getaddrinfo(hosts[h], cfg->port, &hints, &res);
		if (gai == EAI_ADDRFAMILY || gai == EAI_NONAME) {
			/* AI_ADDRCONFIG can hide loopback-only families: ask again. */
			struct addrinfo plain = hints;
			plain.ai_flags = AI_PASSIVE;
			gai = getaddrinfo(hosts[h], cfg->port, &plain, &res);
		}
		if (gai != 0) {
			snprintf(why, why_len, "cannot resolve %s port %s: %s", hosts[h], cfg->port,
				 gai_strerror(gai));
			free(c);
			return -EINVAL;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			bool dup = false;

			if (ai->ai_addrlen > sizeof(struct sockaddr_storage))
				continue;
			for (int i = 0; i < n && !dup; i++)
				dup = same_address((struct sockaddr *)&c[i].ss, ai->ai_addr);
			if (dup)
				continue;	/* given twice: listen once */
			grown = realloc(c, (size_t)(n + 1) * sizeof(*c));
			if (grown == NULL) {
				freeaddrinfo(res);
				free(c);
				snprintf(why, why_len, "out of memory");
				return -ENOMEM;
			}
			c = grown;
			memset(&c[n], 0, sizeof(c[n]));
			memcpy(&c[n].ss, ai->ai_addr, ai->ai_addrlen);
			c[n].len = ai->ai_addrlen;
			c[n].host = hosts[h];
			c[n].implicit = cfg->n_listen == 0;
			n++;
		}
		freeaddrinfo(res);
	}
	if (overlap(c, n, why, why_len)) {
		free(c);
		return -EINVAL;
	}
	*out = c;
	return n;
}

int listen_adopt(int fd, const char *what, char *why, size_t why_len)
{
	int type = 0, listening = 0, fl;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(type), sslen = sizeof(ss);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 || type != SOCK_STREAM ||
	    (len = sizeof(listening),
	     getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1) ||
	    !listening) {
		snprintf(why, why_len, "inherited descriptor %d (%s) is not a listening stream "
			 "socket", fd, what);
		return -EINVAL;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 && ss.ss_family != AF_UNIX)) {
		snprintf(why, why_len, "inherited descriptor %d (%s) is not an IPv4, IPv6 or "
			 "Unix socket", fd, what);
		return -EINVAL;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		int err = errno;	/* before snprintf, which may change it */

		snprintf(why, why_len, "inherited descriptor %d (%s): %s", fd, what,
			 strerror(err));
		return -err;
	}
	return 0;
}

/* An inherited datagram socket: IPv4 or IPv6, made non-blocking and
 * close-on-exec, and asked for each datagram's destination (udp.c). */
static int adopt_datagram(int fd, const char *what, char *why, size_t why_len)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fl, rc;

	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
		snprintf(why, why_len, "inherited descriptor %d (%s) is a datagram socket, but "
			 "not an IPv4 or IPv6 one", fd, what);
		return -EINVAL;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 ||
	    (rc = addr_ask_destination(fd, (struct sockaddr *)&ss)) < 0) {
		int err = errno;

		snprintf(why, why_len, "inherited descriptor %d (%s): %s", fd, what,
			 strerror(err));
		return -err;
	}
	return rc;
}

/* An inherited descriptor (socket activation), listen_fds[i]: a stream
 * socket is served by the workers, named and counted (--max-conns-per-ip,
 * iplimit.h) by its family; a datagram one goes to dgram, for UDP. */
static int adopt_inherited(struct listen_set *set, struct listen_set *dgram, int fd, size_t i,
			   char *why, size_t why_len)
{
	char what[48];	/* "listen_fds[" + 20 digits + "]" */
	int rc, type = 0;
	socklen_t len = sizeof(type);

	snprintf(what, sizeof(what), "listen_fds[%zu]", i);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_DGRAM) {
		if ((rc = adopt_datagram(fd, what, why, why_len)) < 0)
			return rc;
		set = dgram;
	} else if ((rc = listen_adopt(fd, what, why, why_len)) < 0) {
		return rc;
	}
	if (add_listener(set, fd) < 0) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* A candidate as "192.0.2.1:5555", or "192.0.2.7:5555 (example.org)"
 * when it came from a name rather than from the address itself. */
static void describe(const struct candidate *c, char *buf, size_t len)
{
	unsigned char any[sizeof(struct in6_addr)];
	char addr[80];

	addr_format((const struct sockaddr *)&c->ss, c->len, addr, sizeof(addr));
	if (inet_pton(AF_INET, c->host, any) == 1 || inet_pton(AF_INET6, c->host, any) == 1)
		snprintf(buf, len, "%s", addr);
	else
		snprintf(buf, len, "%s (%s)", addr, c->host);
}

/*
 * An address the program named must be listened on, or nothing starts:
 * serving on the others without a word would leave it unnoticed. One
 * exception: where none was named, the default is 127.0.0.1 and ::1, and
 * a host without IPv6 (or IPv4) cannot bind one of them; that one is
 * skipped, with an info line naming it, as long as the other is left.
 */
static bool skippable(const struct candidate *c, int err)
{
	return c->implicit && (err == EADDRNOTAVAIL || err == EAFNOSUPPORT);
}

/*
 * Listens on every resolved address, `copies` times. With port 0, the first
 * socket's ephemeral port is reused for the others, so that the default
 * gives one port on both families (and the reuseport copies share it).
 */
int listen_open(struct listen_set *set, struct listen_set *dgram, const struct mts_config *cfg,
		unsigned copies, bool reuseport, char *why, size_t why_len)
{
	struct candidate *c = NULL;
	int n, chosen_port = -1, rc = 0;

	*set = (struct listen_set){ .copies = copies };
	*dgram = (struct listen_set){ .copies = 1 };
	if (cfg->n_listen_fds > 0) {
		set->copies = 1;
		for (size_t i = 0; i < cfg->n_listen_fds && rc == 0; i++)
			rc = adopt_inherited(set, dgram, cfg->listen_fds[i], i, why, why_len);
		if (rc < 0) {	/* the program's descriptors: not ours to close */
			free(set->l);
			free(dgram->l);
			*set = (struct listen_set){ .copies = 1 };
			*dgram = (struct listen_set){ .copies = 1 };
		}
		return rc;
	}
	if ((n = resolve_all(cfg, &c, why, why_len)) < 0)
		return n;
	for (int i = 0; i < n && rc == 0; i++) {
		struct sockaddr *sa = (struct sockaddr *)&c[i].ss;
		char name[160];

		for (unsigned k = 0; k < copies && rc == 0; k++) {
			int fd;

			if (chosen_port >= 0)
				addr_set_port(sa, (unsigned short)chosen_port);
			fd = addr_listen(sa, c[i].len, cfg->backlog, reuseport);
			if (fd < 0) {
				describe(&c[i], name, sizeof(name));
				/* Skipped whole, or not at all: its first copy decides. */
				if (k == 0 && skippable(&c[i], -fd) && (set->n > 0 || i + 1 < n)) {
					log_info("not listening on %s, an address of the default: %s",
						 name, strerror(-fd));
					break;
				}
				snprintf(why, why_len, "cannot listen on %s: %s", name,
					 fd == -EADDRINUSE ? "address already in use" : strerror(-fd));
				rc = fd;
			} else if ((rc = add_listener(set, fd)) < 0) {
				close(fd);
				snprintf(why, why_len, "out of memory");
			} else if (chosen_port < 0 && strcmp(cfg->port, "0") == 0) {
				chosen_port = addr_bound_port(fd);
			}
		}
	}
	free(c);
	if (rc == 0 && set->n == 0) {	/* resolved to nothing we can hold */
		snprintf(why, why_len, "no address to listen on");
		rc = -EADDRNOTAVAIL;
	}
	if (rc < 0)
		listen_close(set);
	return rc;
}

int listen_open_udp(struct listen_set *udp, const struct listen_set *tcp, unsigned copies,
		    char *why, size_t why_len)
{
	int rc = 0;

	*udp = (struct listen_set){ .copies = copies };
	for (size_t a = 0; a < listen_addresses(tcp) && rc == 0; a++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (getsockname(tcp->l[a * tcp->copies].fd, (struct sockaddr *)&ss, &len) == -1) {
			rc = -errno;
			snprintf(why, why_len, "cannot name %s: %s", tcp->l[a * tcp->copies].name,
				 strerror(-rc));
			break;
		}
		if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
			continue;	/* a Unix socket: no UDP there */
		for (unsigned k = 0; k < copies && rc == 0; k++) {
			int fd = addr_datagram((struct sockaddr *)&ss, len);

			if (fd < 0) {
				rc = fd;
				snprintf(why, why_len, "cannot serve UDP on %s: %s",
					 tcp->l[a * tcp->copies].name,
					 fd == -EADDRINUSE ? "address already in use" : strerror(-fd));
			} else if ((rc = add_listener(udp, fd)) < 0) {
				close(fd);
				snprintf(why, why_len, "out of memory");
			}
		}
	}
	if (rc < 0)
		listen_close(udp);
	return rc;
}

void listen_close(struct listen_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		close(set->l[i].fd);
	free(set->l);
	set->l = NULL;
	set->n = 0;
}
