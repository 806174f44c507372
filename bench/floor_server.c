/*
 * floor_server.c - the reference echo server echo-bench compares echoserver
 * against: the least a multithreaded epoll echo server can do. Not installed,
 * not a product.
 *
 * One thread per --threads, each with its own SO_REUSEPORT listening socket
 * and its own epoll set (the kernel spreads connections over them); per
 * readable event one read() into a thread buffer and one write() of what was
 * read. Only what a write() leaves over is kept, with reading paused until it
 * is flushed, so that large messages are echoed correctly.
 *
 * With -u, UDP instead (RFC 862's datagram echo): one SO_REUSEPORT UDP
 * socket per thread, and a loop of recvmmsg() (blocking for the first
 * datagram, then taking what is there, up to -b BATCH, default 32) and one
 * sendmmsg() of them all back: no event loop, no guard, no copy. The least
 * a UDP echo can do; echoserver --udp's figures are set against it.
 *
 *   floor-server [-u [-b BATCH]] [-l ADDR] [-p PORT] [-t THREADS]
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct pending {		/* what a write() left over */
	size_t len, off;
	char data[];
};

struct fconn {
	int fd;
	struct pending *out;
};

static struct sockaddr_in addr = { .sin_family = AF_INET };
static volatile sig_atomic_t stopping;

static int listen_socket(void)
{
	const int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == -1 || listen(fd, 1024) == -1) {
		perror("floor-server: listen");
		exit(1);
	}
	return fd;
}

static void drop(int ep, struct fconn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c);
}

static void *serve(void *arg)
{
	static _Thread_local char buf[65536];
	struct epoll_event evs[256], ev;
	int lfd = *(int *)arg, ep = epoll_create1(EPOLL_CLOEXEC);
	const int one = 1;

	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	while (!stopping) {
		int k = epoll_wait(ep, evs, 256, 200);

		for (int e = 0; e < k; e++) {
			struct fconn *c = evs[e].data.ptr;
			ssize_t n, w;

			if (c == NULL) {	/* the listener */
				int fd;
				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
					c = calloc(1, sizeof(*c));
					c->fd = fd;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (c->out != NULL) {	/* writable again: flush, then read again */
				w = write(c->fd, c->out->data + c->out->off, c->out->len - c->out->off);
				if (w < 0 && errno != EAGAIN) {
					drop(ep, c);
					continue;
				}
				if (w > 0)
					c->out->off += (size_t)w;
				if (c->out->off == c->out->len) {
					free(c->out);
					c->out = NULL;
					ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
				continue;
			}
			n = read(c->fd, buf, sizeof(buf));
			if (n <= 0) {
				if (n == 0 || errno != EAGAIN)
					drop(ep, c);
				continue;
			}
			w = write(c->fd, buf, (size_t)n);
			if (w == n)
				continue;
			if (w < 0 && errno != EAGAIN) {
				drop(ep, c);
				continue;
			}
			if (w < 0)
				w = 0;
			c->out = malloc(sizeof(*c->out) + (size_t)(n - w));
			c->out->len = (size_t)(n - w);
			c->out->off = 0;
			memcpy(c->out->data, buf + w, (size_t)(n - w));
			ev = (struct epoll_event){ .events = EPOLLOUT, .data.ptr = c };
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
	}
	return NULL;
}

/* ---- UDP ------------------------------------------------------------- */

#define MAX_BATCH 1024
#define SLOT 65536
static unsigned batch = 32;

static int udp_socket(void)
{
	const int one = 1;
	const struct timeval tick = { .tv_usec = 200000 };	/* to see `stopping` */
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick)) == -1 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == -1) {
		perror("floor-server: udp");
		exit(1);
	}
	return fd;
}

static void *serve_udp(void *arg)
{
	int fd = *(int *)arg;
	struct mmsghdr *m = calloc(batch, sizeof(*m));
	struct iovec *iov = calloc(batch, sizeof(*iov));
	struct sockaddr_storage *peer = calloc(batch, sizeof(*peer));
	char *data = malloc((size_t)batch * SLOT);

	if (m == NULL || iov == NULL || peer == NULL || data == NULL) {
		fprintf(stderr, "floor-server: out of memory\n");
		exit(1);
	}
	while (!stopping) {
		int n;

		for (unsigned i = 0; i < batch; i++) {
			iov[i] = (struct iovec){ .iov_base = data + (size_t)i * SLOT, .iov_len = SLOT };
			m[i].msg_hdr = (struct msghdr){ .msg_name = &peer[i],
							.msg_namelen = sizeof(peer[i]),
							.msg_iov = &iov[i], .msg_iovlen = 1 };
		}
		n = recvmmsg(fd, m, batch, MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue;	/* the tick, or a signal */
		for (int i = 0; i < n; i++)
			iov[i].iov_len = m[i].msg_len;
		for (int sent = 0, k; sent < n; sent += k > 0 ? k : 1)
			k = sendmmsg(fd, m + sent, (unsigned)(n - sent), 0);
	}
	return NULL;
}

static void on_signal(int sig)
{
	stopping = 1;
}

int main(int argc, char **argv)
{
	pthread_t th[64];
	int lfd[64], threads = 1, ch;
	bool udp = false;
	struct rlimit rl;
	socklen_t len = sizeof(addr);

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons(5556);
	while ((ch = getopt(argc, argv, "ub:l:p:t:")) != -1) {
		switch (ch) {
		case 'u': udp = true; break;
		case 'b':
			batch = (unsigned)atoi(optarg);
			if (batch < 1 || batch > MAX_BATCH) {
				fprintf(stderr, "floor-server: -b takes 1..%d\n", MAX_BATCH);
				return 2;
			}
			break;
		case 'l':
			if (inet_pton(AF_INET, optarg, &addr.sin_addr) != 1) {
				fprintf(stderr, "floor-server: -l takes an IPv4 address\n");
				return 2;
			}
			break;
		case 'p': addr.sin_port = htons((uint16_t)atoi(optarg)); break;
		case 't': threads = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: floor-server [-u [-b BATCH]] [-l ADDR] [-p PORT] "
				"[-t THREADS]\n");
			return 2;
		}
	}
	if (threads < 1 || threads > 64) {
		fprintf(stderr, "floor-server: -t takes 1..64\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	lfd[0] = udp ? udp_socket() : listen_socket();
	getsockname(lfd[0], (struct sockaddr *)&addr, &len);	/* port 0: the one bound */
	for (int t = 1; t < threads; t++)
		lfd[t] = udp ? udp_socket() : listen_socket();
	printf("floor-server: %slistening on %s:%u\n", udp ? "UDP, " : "",
	       inet_ntoa(addr.sin_addr), ntohs(addr.sin_port));
	fflush(stdout);
	for (int t = 0; t < threads; t++)
		pthread_create(&th[t], NULL, udp ? serve_udp : serve, &lfd[t]);
	for (int t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	return 0;
}
