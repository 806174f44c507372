/*
 * echo_bench_udp.c - echo-bench --udp: UDP echo (RFC 862's datagram half).
 *
 * --connections flows, each a connected UDP socket of its own (its own
 * source port: the server's SO_REUSEPORT hash spreads flows, not
 * datagrams, over its workers), spread over --threads client threads, each
 * an epoll loop. A datagram carries its sequence number and the time it was
 * sent in its first 16 bytes, then bytes that are a function of the flow's
 * seed, the number and the offset: every answer is checked whole (a wrong
 * size or byte is an error), without keeping copies.
 *
 * Closed loop (the default): each flow keeps --depth datagrams in flight,
 * sending one for each answer. A flow that hears nothing for LOSS_NS
 * writes off what it has in flight and starts again, so that a lost
 * datagram cannot stall it; an answer that comes after all is counted
 * back in. Open loop (--rate R): R datagrams per second in all, each sent
 * when due whatever the answers do, so that latency is measured from when
 * a datagram was due, not from when the sender got round to it.
 *
 * Lost: sent and never answered by the end (DRAIN_NS after the run). UDP
 * may lose datagrams: loss is counted and reported, not an error.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "counter.h"
#include "echo_bench_udp.h"
#include "histogram.h"

#define HEADER 16			/* sequence number, time sent */
#define BATCH 32			/* datagrams per recvmmsg() and sendmmsg() */
#define LOSS_NS 200000000ull		/* closed loop: silence that writes off */
#define DRAIN_NS 1000000000ull		/* after the run: how long answers may take */

struct flow {
	int fd;
	uint8_t seed;
	uint64_t sent, got;		/* datagrams; got counts each answer once */
	uint64_t written_off;		/* closed loop: in flight, given up on */
	uint64_t written_below;		/* ... every number below this one */
	uint64_t last;			/* when it last sent or heard, ns */
	uint64_t next_due;		/* open loop */
};

struct uclient {
	pthread_t thread;
	const struct udp_bench_cfg *cfg;
	struct flow *flows;
	unsigned n;
	int ep;
	unsigned char *buf;		/* BATCH slots of cfg->size bytes */
	struct histogram hist;
	atomic_uint_fast64_t answered, errors;
	uint64_t sent, lost;
};

static uint64_t run_start, run_end;

static inline uint8_t pattern(uint8_t seed, uint64_t seq, size_t k)
{
	return (uint8_t)((seq * 131u + k) * 167u + seed);
}

static void fill(const struct flow *f, uint64_t seq, uint64_t now, unsigned char *b, size_t n)
{
	memcpy(b, &seq, 8);
	memcpy(b + 8, &now, 8);
	for (size_t k = HEADER; k < n; k++)
		b[k] = pattern(f->seed, seq, k);
}

/* Answer b (n bytes) on flow f: true if whole and expected; its number
 * and when it was sent. */
static bool check(const struct uclient *cl, const struct flow *f, const unsigned char *b,
		  size_t n, uint64_t *seq_out, uint64_t *sent_at)
{
	uint64_t seq;

	if (n != cl->cfg->size)
		return false;
	memcpy(&seq, b, 8);
	*seq_out = seq;
	memcpy(sent_at, b + 8, 8);
	if (seq >= f->sent)
		return false;
	for (size_t k = HEADER; cl->cfg->verify && k < n; k++)
		if (b[k] != pattern(f->seed, seq, k))
			return false;
	return true;
}

/* Sends k datagrams on f, in one sendmmsg() where it can: how many went. */
static unsigned send_some(struct uclient *cl, struct flow *f, unsigned k, uint64_t now)
{
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	unsigned done = 0;

	while (done < k) {
		unsigned b = k - done < BATCH ? k - done : BATCH;
		int r;

		for (unsigned i = 0; i < b; i++) {
			unsigned char *slot = cl->buf + (size_t)i * cl->cfg->size;

			fill(f, f->sent + i, now, slot, cl->cfg->size);
			iov[i] = (struct iovec){ .iov_base = slot, .iov_len = cl->cfg->size };
			m[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
		}
		r = sendmmsg(f->fd, m, b, MSG_DONTWAIT);
		if (r <= 0)
			break;	/* the socket's buffer is full: try again later */
		f->sent += (unsigned)r;
		done += (unsigned)r;
	}
	if (done > 0)
		f->last = now;
	cl->sent += done;
	return done;
}

static uint64_t in_flight(const struct flow *f)
{
	return f->sent - f->got - f->written_off;
}

/* Reads what f's socket holds; each answer checked and timed. */
static void receive(struct uclient *cl, struct flow *f, uint64_t now)
{
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	int r;

	do {
		for (unsigned i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ .iov_base = cl->buf + (size_t)i * cl->cfg->size,
						 .iov_len = cl->cfg->size };
			m[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
		}
		r = recvmmsg(f->fd, m, BATCH, MSG_DONTWAIT, NULL);
		for (int i = 0; i < r; i++) {
			uint64_t at, seq;

			if ((m[i].msg_hdr.msg_flags & MSG_TRUNC) ||
			    !check(cl, f, iov[i].iov_base, m[i].msg_len, &seq, &at)) {
				counter_add(&cl->errors, 1);
				continue;
			}
			/* One given up on comes after all: late, not lost, and
			 * not one of those in flight now. */
			if (seq < f->written_below && f->written_off > 0)
				f->written_off--;
			f->got++;
			f->last = now;
			if (now >= run_start && now <= run_end) {
				hist_record(&cl->hist, now > at ? now - at : 0);
				counter_add(&cl->answered, 1);
			}
		}
	} while (r == BATCH);
}

/* Closed loop: keep depth in flight; give up on a silent flow's. */
static void refill(struct uclient *cl, struct flow *f, uint64_t now)
{
	if (in_flight(f) > 0 && now - f->last > LOSS_NS) {
		f->written_off += in_flight(f);
		f->written_below = f->sent;
	}
	if (in_flight(f) < cl->cfg->depth)
		send_some(cl, f, cl->cfg->depth - (unsigned)in_flight(f), now);
}

/* Open loop: what is due, each stamped with when it was due. */
static uint64_t send_due(struct uclient *cl, struct flow *f, uint64_t now, uint64_t interval)
{
	while (f->next_due <= now) {
		if (send_some(cl, f, 1, f->next_due) == 0)
			break;
		f->next_due += interval;
	}
	return f->next_due;
}

static void *client_main(void *arg)
{
	struct uclient *cl = arg;
	const struct udp_bench_cfg *cfg = cl->cfg;
	uint64_t interval = cfg->rate > 0 ? (uint64_t)(1e9 * cfg->flows / cfg->rate) : 0;
	struct epoll_event evs[64];

	for (unsigned i = 0; i < cl->n; i++)
		cl->flows[i].next_due = run_start + interval * i / (cl->n ? cl->n : 1);
	for (;;) {
		uint64_t now = clock_now_ns(), wake = now + LOSS_NS;
		bool running = now < run_end;
		int k, ms;

		if (!running && now >= run_end + DRAIN_NS)
			break;
		for (unsigned i = 0; running && i < cl->n; i++) {
			uint64_t due;

			if (interval == 0) {
				refill(cl, &cl->flows[i], now);
			} else if ((due = send_due(cl, &cl->flows[i], now, interval)) < wake) {
				wake = due;
			}
		}
		if (!running) {
			bool waiting = false;

			for (unsigned i = 0; i < cl->n && !waiting; i++)
				waiting = cl->flows[i].sent > cl->flows[i].got;
			if (!waiting)
				break;
		}
		ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
		k = epoll_wait(cl->ep, evs, 64, ms);
		now = clock_now_ns();
		for (int e = 0; e < k; e++)
			receive(cl, evs[e].data.ptr, now);
	}
	for (unsigned i = 0; i < cl->n; i++)
		cl->lost += cl->flows[i].sent - cl->flows[i].got;
	return NULL;
}

/* --source: the flows' own address (a source the server counts apart,
 * for its per-source rate), port chosen by the kernel. */
static int bind_source(int fd, int family, const char *source)
{
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
	void *a = family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
				     : (void *)&((struct sockaddr_in *)&ss)->sin_addr;

	if (inet_pton(family, source, a) != 1) {
		errno = EINVAL;
		return -1;
	}
	return bind(fd, (struct sockaddr *)&ss, family == AF_INET6 ? sizeof(struct sockaddr_in6)
								    : sizeof(struct sockaddr_in));
}

static int open_flow(struct uclient *cl, struct flow *f, const struct sockaddr *to,
		     socklen_t to_len)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = f };

	f->fd = socket(to->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd == -1 ||
	    (cl->cfg->source != NULL && bind_source(f->fd, to->sa_family, cl->cfg->source) == -1) ||
	    connect(f->fd, to, to_len) == -1 ||
	    epoll_ctl(cl->ep, EPOLL_CTL_ADD, f->fd, &ev) == -1)
		return -errno;
	return 0;
}

int udp_bench_run(const struct udp_bench_cfg *cfg, struct udp_bench_result *res)
{
	static struct uclient cl[UDP_BENCH_MAX_THREADS];
	unsigned idx = 0;

	if (cfg->size < HEADER || cfg->size > 65507)
		cli_usage_error("--udp: --size must be from %d to 65507 (a datagram carries its "
				"number and time in its first %d bytes)", HEADER, HEADER);
	*res = (struct udp_bench_result){ 0 };
	run_start = clock_now_ns() + 100000000ull;	/* every thread ready by then */
	run_end = run_start + (uint64_t)(cfg->seconds * 1e9);
	for (unsigned t = 0; t < cfg->threads; t++) {
		struct uclient *c = &cl[t];

		*c = (struct uclient){ .cfg = cfg };
		c->n = cfg->flows / cfg->threads + (t < cfg->flows % cfg->threads);
		c->flows = calloc(c->n ? c->n : 1, sizeof(*c->flows));
		c->buf = malloc((size_t)BATCH * cfg->size);
		if ((c->ep = epoll_create1(EPOLL_CLOEXEC)) == -1 || c->flows == NULL ||
		    c->buf == NULL)
			cli_die("out of memory or descriptors for client thread %u", t);
		hist_reset(&c->hist);
		for (unsigned i = 0; i < c->n; i++, idx++) {
			c->flows[i].seed = (uint8_t)(idx * 37u + 11u);
			if (open_flow(c, &c->flows[i], cfg->to, cfg->to_len) < 0)
				cli_die("cannot open UDP flow %u: %s", idx, strerror(errno));
		}
	}
	for (unsigned t = 0; t < cfg->threads; t++)
		if (pthread_create(&cl[t].thread, NULL, client_main, &cl[t]) != 0)
			cli_die("cannot start client thread %u", t);
	hist_reset(&res->hist);
	for (unsigned t = 0; t < cfg->threads; t++) {
		pthread_join(cl[t].thread, NULL);
		hist_merge(&res->hist, &cl[t].hist);
		res->answered += counter_get(&cl[t].answered);
		res->errors += counter_get(&cl[t].errors);
		res->sent += cl[t].sent;
		res->lost += cl[t].lost;
		for (unsigned i = 0; i < cl[t].n; i++)
			close(cl[t].flows[i].fd);
		close(cl[t].ep);
		free(cl[t].flows);
		free(cl[t].buf);
	}
	return 0;
}
