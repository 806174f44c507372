/*
 * udp.c - a worker's UDP service. Contract in udp.h.
 *
 * THE BATCH
 *
 * UDP_BATCH is 32: one recvmmsg() then costs a system call per 32
 * datagrams under load (the cost that matters at small sizes), and a
 * batch answers its first datagram at most 31 datagrams' handling later.
 * Larger batches save little more (the call's fixed cost is already
 * spread thin) and hold more memory; QUIC stacks pick sizes of the same
 * order (quinn-udp 32, msquic 53). A slot holds udp_max bytes, so a
 * worker reserves 32 x udp_max (2 MiB at 65535) of address space, of
 * which only what datagrams write becomes memory: small datagrams touch a
 * page per slot.
 *
 * UDP_ROUNDS batches per readiness, then the loop's other events (the
 * worker's TCP connections, its inbox) have their turn; the socket is
 * still readable, so its event comes back in the next turn of the loop.
 *
 * THE ANSWER'S SOURCE
 *
 * A socket bound to a wildcard address (0.0.0.0, ::) receives datagrams
 * sent to any of the host's addresses; answered without more, a reply
 * leaves from whichever address the route picks, and the client, which
 * expects it from the address it wrote to, drops it. So a wildcard socket
 * asks for each datagram's destination (IP_PKTINFO, IPV6_RECVPKTINFO) and
 * the answer names it as its source. A socket bound to one address asks
 * for nothing (addr_ask_destination): the kernel answers from that
 * address, and no control message costs either side anything.
 */
#include <config.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "counter.h"
#include "histogram.h"
#include "log.h"
#include "udp.h"

#define UDP_BATCH 32
#define UDP_ROUNDS 4

/* Room for the control messages asked for: on a dual-stack IPv6 socket an
 * IPv4 datagram brings both IP_PKTINFO and IPV6_PKTINFO. */
union udp_ctl {
	char buf[CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(struct in6_pktinfo))];
	struct cmsghdr align;
};

struct udp_batch {
	struct mmsghdr in[UDP_BATCH], out[UDP_BATCH];
	struct iovec iov[UDP_BATCH], out_iov[UDP_BATCH];
	struct sockaddr_storage peer[UDP_BATCH];
	union udp_ctl ctl[UDP_BATCH], out_ctl[UDP_BATCH];
	unsigned char *data;		/* UDP_BATCH slots of sh->max bytes */
};

/*
 * The answer's control message: from the destination the datagram was
 * sent to (its IP_PKTINFO or IPV6_PKTINFO), the source the answer leaves
 * from. Sets msg's control to out (or to none when the datagram had none).
 */
static void answer_from(const struct msghdr *in, struct msghdr *msg, union udp_ctl *out)
{
	struct cmsghdr *c;

	msg->msg_control = NULL;
	msg->msg_controllen = 0;
	for (c = CMSG_FIRSTHDR(in); c != NULL; c = CMSG_NXTHDR((struct msghdr *)in, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			pi.ipi_spec_dst = pi.ipi_addr;	/* leave from where it came to */
			pi.ipi_ifindex = 0;		/* and let the route choose the way */
			memset(out, 0, sizeof(*out));
			out->align = (struct cmsghdr){ .cmsg_level = IPPROTO_IP,
						       .cmsg_type = IP_PKTINFO,
						       .cmsg_len = CMSG_LEN(sizeof(pi)) };
			memcpy(CMSG_DATA(&out->align), &pi, sizeof(pi));
			msg->msg_control = out->buf;
			msg->msg_controllen = CMSG_SPACE(sizeof(pi));
			return;
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			/* As IPv4's: the route chooses the way, but a link-local
			 * address means nothing without its interface. */
			if (!IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
				pi.ipi6_ifindex = 0;
			memset(out, 0, sizeof(*out));
			out->align = (struct cmsghdr){ .cmsg_level = IPPROTO_IPV6,
						       .cmsg_type = IPV6_PKTINFO,
						       .cmsg_len = CMSG_LEN(sizeof(pi)) };
			memcpy(CMSG_DATA(&out->align), &pi, sizeof(pi));
			msg->msg_control = out->buf;
			msg->msg_controllen = CMSG_SPACE(sizeof(pi));
			return;
		}
	}
}

/*
 * Was the datagram sent to a broadcast or multicast address (seen only on
 * a wildcard socket, which asked where each datagram went)? Then it is not
 * answered: an answer to every host that heard a broadcast is the
 * "fraggle" amplifier, and no answer can leave from such an address
 * anyway. IPv4 tells a broadcast by the header's destination (ipi_addr)
 * differing from the local address it reached (ipi_spec_dst).
 */
static bool to_many(const struct msghdr *in)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(in); c != NULL;
	     c = CMSG_NXTHDR((struct msghdr *)in, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			return pi.ipi_addr.s_addr != pi.ipi_spec_dst.s_addr ||
			       IN_MULTICAST(ntohl(pi.ipi_addr.s_addr));
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			return IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr);
		}
	}
	return false;
}

/* Gets the batch's buffers ready for recvmmsg(). */
static void arm(struct udp_home *u)
{
	struct udp_batch *b = u->b;

	for (unsigned i = 0; i < UDP_BATCH; i++) {
		b->iov[i] = (struct iovec){ .iov_base = b->data + i * u->sh->max,
					    .iov_len = u->sh->max };
		b->in[i].msg_hdr = (struct msghdr){
			.msg_name = &b->peer[i], .msg_namelen = sizeof(b->peer[i]),
			.msg_iov = &b->iov[i], .msg_iovlen = 1,
			.msg_control = b->ctl[i].buf, .msg_controllen = sizeof(b->ctl[i]),
		};
		b->in[i].msg_len = 0;
	}
}

/*
 * Datagram i of the batch: answered (true, its answer's length in *len)
 * or counted as a drop (false). A drop by the handler's choice is in no
 * count but `received`.
 */
static bool take(struct udp_home *u, const struct udp_sock *so, unsigned i, uint64_t now_ns,
		 size_t *len)
{
	struct udp_batch *b = u->b;
	const struct sockaddr *peer = (const struct sockaddr *)&b->peer[i];

	if (b->in[i].msg_hdr.msg_flags & MSG_TRUNC) {
		counter_add(&u->dropped[MTS_UDP_TRUNCATED], 1);	/* never answered cut */
		return false;
	}
	/* The loop guard, and this socket's own port: another server like
	 * this one, on the same port, would answer our answer for ever (as
	 * FreeBSD inetd's check_loop() refuses its own services' ports). */
	if (udp_guard_refused_source(peer) || udp_guard_port(peer) == so->port) {
		counter_add(&u->dropped[MTS_UDP_SOURCE], 1);
		return false;
	}
	if (to_many(&b->in[i].msg_hdr)) {
		counter_add(&u->dropped[MTS_UDP_DESTINATION], 1);
		return false;
	}
	if (u->sh->rate_on && !udp_rate_allow(&u->sh->rate, peer, now_ns)) {
		counter_add(&u->dropped[MTS_UDP_RATE], 1);
		return false;
	}
	struct mts_datagram d = { .data = b->iov[i].iov_base, .len = b->in[i].msg_len,
				  .cap = u->sh->max, .peer = peer,
				  .peer_len = b->in[i].msg_hdr.msg_namelen, .worker = u->id };

	/* data is the slot itself (const: the answer is sent from there). */
	if (u->sh->on_datagram(&d, atomic_load_explicit(u->state, memory_order_relaxed),
			       u->sh->arg) <= 0)
		return false;
	*len = d.len <= u->sh->max ? d.len : u->sh->max;
	return true;
}

/* Sends out[0..n): what the socket will not take now is dropped. */
static void send_all(struct udp_home *u, int fd, unsigned n)
{
	unsigned sent = 0;

	while (sent < n) {
		int r = sendmmsg(fd, u->b->out + sent, n - sent, MSG_DONTWAIT);

		if (r > 0) {
			counter_add(&u->answered, (uint64_t)r);
			sent += (unsigned)r;
		} else if (r == -1 && errno == EINTR) {
			continue;
		} else if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			/* Full: the rest would fail as this one did. */
			counter_add(&u->dropped[MTS_UDP_SEND], n - sent);
			return;
		} else {
			/* This one alone (a route, a firewall): the next may go. */
			log_debug("udp: cannot answer: %s", strerror(errno));
			counter_add(&u->dropped[MTS_UDP_SEND], 1);
			sent++;
		}
	}
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	const struct udp_sock *so = arg;
	struct udp_home *u = so->u;
	struct udp_batch *b = u->b;

	(void)what;
	for (int round = 0; round < UDP_ROUNDS; round++) {
		unsigned n_out = 0;
		uint64_t now_ns;
		int n;

		arm(u);
		n = recvmmsg(fd, b->in, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_debug("udp: cannot read: %s", strerror(errno));
			return;
		}
		now_ns = clock_now_ns();
		for (int i = 0; i < n; i++) {
			size_t len;

			if (!take(u, so, (unsigned)i, now_ns, &len))
				continue;
			b->out_iov[n_out] = (struct iovec){ .iov_base = b->iov[i].iov_base,
							    .iov_len = len };
			b->out[n_out].msg_hdr = (struct msghdr){
				.msg_name = &b->peer[i], .msg_namelen = b->in[i].msg_hdr.msg_namelen,
				.msg_iov = &b->out_iov[n_out], .msg_iovlen = 1,
			};
			answer_from(&b->in[i].msg_hdr, &b->out[n_out].msg_hdr, &b->out_ctl[n_out]);
			n_out++;
		}
		send_all(u, fd, n_out);
		/* Counted once handled. One writer, this worker, after its
		 * sendmmsg() returned (on loopback the answers are then in their
		 * receivers' sockets) and after the drops' counts; a reader
		 * (SIGUSR1, the metrics) loads it relaxed, so a figure it sees
		 * was stored after those, in time: what tests/test_udp relies on
		 * to read answers without waiting. Not an ordering for memory:
		 * nothing is read through it. */
		counter_add(&u->received, (uint64_t)n);
		if (n < UDP_BATCH)
			return;		/* read dry */
	}
}

int udp_home_init(struct udp_home *u, struct udp_shared *sh, unsigned id,
		  struct event_base *base, const int *fds, size_t n, _Atomic(void *) *state)
{
	*u = (struct udp_home){ .sh = sh, .id = id, .state = state };
	if ((u->b = calloc(1, sizeof(*u->b))) == NULL ||
	    (u->b->data = malloc(UDP_BATCH * sh->max)) == NULL ||
	    (u->socks = calloc(n ? n : 1, sizeof(*u->socks))) == NULL)
		return -ENOMEM;
	u->n = n;
	for (size_t i = 0; i < n; i++) {
		struct udp_sock *so = &u->socks[i];
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		so->u = u;
		if (getsockname(fds[i], (struct sockaddr *)&ss, &len) == 0)
			so->port = udp_guard_port((struct sockaddr *)&ss);
		so->ev = event_new(base, fds[i], EV_READ | EV_PERSIST, on_readable, so);
		if (so->ev == NULL || event_add(so->ev, NULL) != 0)
			return -ENOMEM;
	}
	return 0;
}

void udp_home_stop(struct udp_home *u)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->socks[i].ev != NULL)
			event_del(u->socks[i].ev);
}

void udp_home_destroy(struct udp_home *u)
{
	for (size_t i = 0; u->socks != NULL && i < u->n; i++)
		if (u->socks[i].ev != NULL)
			event_free(u->socks[i].ev);
	free(u->socks);
	if (u->b != NULL)
		free(u->b->data);
	free(u->b);
	*u = (struct udp_home){ 0 };
}
