/*
 * addr.c - socket addresses: named for people, given a port, opened for
 * listening. Contract in addr.h.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"

/* A Unix socket's name: its path; "@name" in the abstract namespace
 * (Linux: a leading NUL, and no NUL at the end); or none (a client). The
 * length, not a NUL, says where the name ends. */
static void format_unix(const struct sockaddr_un *un, socklen_t salen, char *buf, size_t len)
{
	size_t n = salen > offsetof(struct sockaddr_un, sun_path) ?
		   salen - offsetof(struct sockaddr_un, sun_path) : 0;

	if (n > sizeof(un->sun_path))
		n = sizeof(un->sun_path);
	if (n == 0)
		snprintf(buf, len, "(an unnamed Unix socket)");
	else if (un->sun_path[0] == '\0')
		snprintf(buf, len, "@%.*s", (int)(n - 1), un->sun_path + 1);
	else
		snprintf(buf, len, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
}

void addr_format(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	switch (sa->sa_family) {
	case AF_INET6: {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
		break;
	}
	case AF_INET: {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
		break;
	}
	case AF_UNIX:
		format_unix((const struct sockaddr_un *)sa, salen, buf, len);
		break;
	default:
		snprintf(buf, len, "(a socket of address family %d)", sa->sa_family);
	}
}

void addr_set_port(struct sockaddr *sa, unsigned short port)
{
	if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)sa)->sin_port = htons(port);
}

int addr_bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -errno;
	return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					: ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A non-blocking, close-on-exec socket of `type` bound to sa: the fd, or a
 * negative errno. */
static int bound_socket(const struct sockaddr *sa, socklen_t len, int type, bool reuseport)
{
	const int one = 1;
	int fd, err;

	fd = socket(sa->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
		goto fail;
	/* So that 127.0.0.1 and ::1 can share a port without colliding. */
	if (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, sa, len) == -1)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	return -err;
}

int addr_listen(const struct sockaddr *sa, socklen_t len, int backlog, bool reuseport)
{
	int fd = bound_socket(sa, len, SOCK_STREAM, reuseport), err;

	if (fd < 0 || listen(fd, backlog) == 0)
		return fd;
	err = errno;
	close(fd);
	return -err;
}

bool addr_is_wildcard(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return sa->sa_family == AF_INET &&
	       ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
}

int addr_ask_destination(int fd, const struct sockaddr *bound)
{
	const int one = 1;
	int rc;

	if (!addr_is_wildcard(bound))
		return 0;	/* one address: the kernel answers from it */
	rc = bound->sa_family == AF_INET6
	     ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one))
	     : setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	/* A dual-stack IPv6 socket (socket activation's "ListenDatagram=7")
	 * also receives IPv4, whose destination comes as IP_PKTINFO. */
	if (rc == 0 && bound->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	return rc == 0 ? 0 : -errno;
}

int addr_datagram(const struct sockaddr *sa, socklen_t len)
{
	int fd = bound_socket(sa, len, SOCK_DGRAM, true), rc;

	if (fd >= 0 && (rc = addr_ask_destination(fd, sa)) < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int addr_split_host_port(const char *spec, char *buf, size_t len, const char **host,
			 const char **port)
{
	char *colon;

	if (strlen(spec) >= len)
		return -EINVAL;
	strcpy(buf, spec);
	if ((colon = strrchr(buf, ':')) == NULL || colon == buf || colon[1] == '\0')
		return -EINVAL;
	*colon = '\0';
	*port = colon + 1;
	*host = buf;
	if (buf[0] == '[') {
		if (colon[-1] != ']')
			return -EINVAL;
		colon[-1] = '\0';
		*host = buf + 1;
	} else if (strchr(buf, ':') != NULL) {
		return -EINVAL;		/* an IPv6 literal needs its brackets */
	}
	return **host != '\0' ? 0 : -EINVAL;
}
