/*
 * acceptor.c - the listening sockets and the accept loop (main thread).
 *
 * The acceptor accepts, picks a worker, and posts the connection to that
 * worker's inbox. It never touches a connection after the post.
 *
 * Accept errors, by severity:
 *   EAGAIN                     the backlog is empty: done for this round
 *   EINTR, ECONNABORTED,
 *   EPROTO, ENETDOWN ...       that one connection is gone: try the next
 *   EMFILE, ENFILE, ENOBUFS,
 *   ENOMEM                     out of a resource: pause accepting, retry
 *                              after 10 ms, doubling up to 1 s (the socket
 *                              stays readable, so not pausing would spin)
 *
 * --max-conns: at the limit the acceptor stops listening (new connections
 * wait in the kernel backlog) and resumes when a slot frees. The worker whose
 * close takes the count from max to max - 1 wakes it. No wake-up is lost: the
 * acceptor pauses only after it saw live == max, and any close after that
 * point makes exactly that transition, after the pause, and wakes it.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core.h"
#include "fault.h"
#include "log.h"

#define ACCEPT_BUDGET 64	/* accepts per readable event, then yield */
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000
#define REWAKE_MIN_MS 1
#define REWAKE_MAX_MS 100

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		snprintf(buf, len, "[%s]:%u", host, port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
		snprintf(buf, len, "%s:%u", host, port);
	}
}

static void set_port(struct sockaddr *sa, unsigned short port)
{
	if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)sa)->sin_port = htons(port);
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -errno;
	return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					: ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* One listening socket for one address; returns the fd or a negative errno. */
static int listen_on(struct sockaddr *sa, socklen_t len, int backlog)
{
	const int one = 1;
	int fd, err;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	/* So that 127.0.0.1 and ::1 can share a port without colliding. */
	if (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, sa, len) == -1 || listen(fd, backlog) == -1)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	return -err;
}

static int add_listener(struct mts_server *s, int fd)
{
	struct listener *l, *grown;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	grown = realloc(s->listeners, (s->n_listeners + 1) * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	s->listeners = grown;
	l = &s->listeners[s->n_listeners++];
	*l = (struct listener){ .fd = fd };
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		format_addr((struct sockaddr *)&ss, l->name, sizeof(l->name));
	return 0;
}

/* An address to listen on, and the --listen argument it came from. */
struct candidate {
	struct sockaddr_storage ss;
	socklen_t len;
	const char *host;
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

/* 0.0.0.0 or :: (which, with IPV6_V6ONLY, covers IPv6 alone). */
static bool is_wildcard(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
}

/*
 * Resolves every --listen address. The same address twice (given twice, or
 * by a name and a literal, such as localhost and 127.0.0.1) is kept once; a
 * wildcard and another address of its family would collide on one port, so
 * that is refused as a conflict in the configuration (-EINVAL), naming both.
 * Returns the number of candidates, or a negative errno.
 */
static int resolve_all(struct mts_server *s, struct candidate **out, char *why, size_t why_len)
{
	static const char *const default_hosts[] = { "localhost" };
	const char *const *hosts = s->cfg.n_listen ? s->cfg.listen : default_hosts;
	size_t n_hosts = s->cfg.n_listen ? s->cfg.n_listen : 1;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_ADDRCONFIG,
	};
	struct candidate *c = NULL, *grown;
	int n = 0;

	for (size_t h = 0; h < n_hosts; h++) {
		struct addrinfo *res, *ai;
		int gai;

		gai = getaddrinfo(hosts[h], s->cfg.port, &hints, &res);
		if (gai == EAI_ADDRFAMILY || gai == EAI_NONAME) {
			/* AI_ADDRCONFIG can hide loopback-only families: ask again. */
			struct addrinfo plain = hints;
			plain.ai_flags = AI_PASSIVE;
			gai = getaddrinfo(hosts[h], s->cfg.port, &plain, &res);
		}
		if (gai != 0) {
			snprintf(why, why_len, "cannot resolve %s: %s", hosts[h], gai_strerror(gai));
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
			n++;
		}
		freeaddrinfo(res);
	}
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			const struct sockaddr *wild = (struct sockaddr *)&c[i].ss;
			const struct sockaddr *other = (struct sockaddr *)&c[j].ss;

			if (i != j && is_wildcard(wild) && other->sa_family == wild->sa_family) {
				char a[80], b[80];

				format_addr(wild, a, sizeof(a));
				format_addr(other, b, sizeof(b));
				snprintf(why, why_len, "listen addresses overlap: %s (from '%s') already "
					 "covers %s (from '%s'); give one of them", a, c[i].host, b,
					 c[j].host);
				free(c);
				return -EINVAL;
			}
		}
	*out = c;
	return n;
}

/*
 * Listens on every resolved --listen address. With port 0, the first
 * socket's ephemeral port is reused for the others, so that "localhost"
 * gives one port on both families.
 */
int acceptor_open(struct mts_server *s, char *why, size_t why_len)
{
	struct candidate *c = NULL;
	int n = resolve_all(s, &c, why, why_len), chosen_port = -1, rc = 0;

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		struct sockaddr *sa = (struct sockaddr *)&c[i].ss;
		char name[80];
		int fd;

		if (chosen_port >= 0)
			set_port(sa, (unsigned short)chosen_port);
		fd = listen_on(sa, c[i].len, s->cfg.backlog);
		if (fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT)
			continue;	/* e.g. ::1 on a host without IPv6: skip that family */
		if (fd < 0) {
			format_addr(sa, name, sizeof(name));
			snprintf(why, why_len, "cannot listen on %s: %s", name,
				 fd == -EADDRINUSE ? "address already in use" : strerror(-fd));
			rc = fd;
			break;
		}
		if ((rc = add_listener(s, fd)) < 0) {
			close(fd);
			snprintf(why, why_len, "out of memory");
			break;
		}
		if (chosen_port < 0 && strcmp(s->cfg.port, "0") == 0)
			chosen_port = bound_port(fd);
	}
	free(c);
	if (rc == 0 && s->n_listeners == 0) {
		snprintf(why, why_len, "no address to listen on");
		rc = -EADDRNOTAVAIL;
	}
	return rc;
}

/* ---- pausing and resuming --------------------------------------------- */

/* Listeners are armed exactly when no reason to pause holds. */
static void update_listening(struct mts_server *s)
{
	bool on = !s->stopping && !s->paused_full && s->backoff_ms == 0;

	for (size_t i = 0; i < s->n_listeners; i++) {
		if (on)
			event_add(s->listeners[i].ev, NULL);
		else
			event_del(s->listeners[i].ev);
	}
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
	struct mts_server *s = arg;

	/*
	 * Try again; keep backoff_ms as the episode's memory so a repeated
	 * failure doubles it. It is cleared after an accept succeeds.
	 */
	for (size_t i = 0; i < s->n_listeners && !s->stopping && !s->paused_full; i++)
		event_active(s->listeners[i].ev, EV_READ, 0);
}

static void start_backoff(struct mts_server *s, int err)
{
	struct timeval tv;

	if (s->backoff_ms == 0) {
		log_warn("accept: %s; pausing new connections (will retry)", strerror(err));
		s->backoff_ms = BACKOFF_MIN_MS;
	} else if (s->backoff_ms < BACKOFF_MAX_MS) {
		s->backoff_ms *= 2;
		if (s->backoff_ms > BACKOFF_MAX_MS)
			s->backoff_ms = BACKOFF_MAX_MS;
	}
	update_listening(s);
	tv = (struct timeval){ .tv_sec = s->backoff_ms / 1000,
			       .tv_usec = (s->backoff_ms % 1000) * 1000 };
	evtimer_add(s->backoff_ev, &tv);
}

static void end_backoff(struct mts_server *s)
{
	log_info("accept: resumed after running out of resources");
	s->backoff_ms = 0;
	update_listening(s);
}

/* ---- wake-ups that failed --------------------------------------------- */

/*
 * A post whose wake-up write failed leaves its message queued and the
 * inbox owing a wake-up (inbox.h). Without it the worker might never look:
 * later posts into a non-empty wfcq queue elide their own. So the acceptor
 * retries, 1 ms after the failure, doubling to 100 ms, until every worker's
 * debt is paid. The connection is delivered late, not lost.
 */
static void schedule_rewake(struct mts_server *s)
{
	struct timeval tv;

	if (s->rewake_ms == 0) {
		log_warn("a worker wake-up failed; retrying until it is delivered");
		s->rewake_ms = REWAKE_MIN_MS;
	} else if (s->rewake_ms < REWAKE_MAX_MS) {
		s->rewake_ms *= 2;
	}
	tv = (struct timeval){ .tv_sec = 0, .tv_usec = s->rewake_ms * 1000 };
	evtimer_add(s->rewake_ev, &tv);
}

void acceptor_rewake_later(struct mts_server *s)
{
	acceptor_wake(s, WAKE_REWAKE);
}

static void on_rewake(evutil_socket_t fd, short what, void *arg)
{
	struct mts_server *s = arg;
	bool owed = false;

	for (unsigned i = 0; i < s->n_workers; i++)
		if (inbox_retry_wakeups(s->workers[i].inbox) < 0)
			owed = true;
	if (owed) {
		schedule_rewake(s);
	} else {
		log_info("owed worker wake-ups delivered");
		s->rewake_ms = 0;
	}
}

/* ---- dispatch --------------------------------------------------------- */

static struct worker *pick_worker(struct mts_server *s)
{
	struct worker *best;
	unsigned start = s->next_rr++ % s->n_workers;

	best = &s->workers[start];
	if (s->cfg.balance == MTS_BALANCE_LEAST) {
		/* Start the scan at the round-robin cursor so ties rotate. */
		unsigned best_live = atomic_load_explicit(&best->live, memory_order_relaxed);
		for (unsigned k = 1; k < s->n_workers; k++) {
			struct worker *w = &s->workers[(start + k) % s->n_workers];
			unsigned live = atomic_load_explicit(&w->live, memory_order_relaxed);
			if (live < best_live) {
				best = w;
				best_live = live;
			}
		}
	}
	return best;
}

/*
 * Lines that clients can make the acceptor repeat at any rate (a host that
 * keeps trying; a churn at the connection limit) are printed at most once
 * per LIMIT_LOG_MS, with how many were not (log_limit_allow()).
 */
#define LIMIT_LOG_MS 10000

static uint64_t now_ms(void)
{
	return clock_now_ns() / 1000000;
}

/* A connection over max_conns_per_ip is closed at once. */
static void refuse(struct mts_server *s, int fd, const struct sockaddr *peer)
{
	unsigned skipped;
	char name[80];

	close(fd);
	if (!log_limit_allow(&s->refused_log, now_ms(), LIMIT_LOG_MS, &skipped))
		return;
	format_addr(peer, name, sizeof(name));
	log_warn("accept: refused a connection from %s, which has %u already "
		 "(max_conns_per_ip); %u more refused since the last such line",
		 name, s->cfg.max_conns_per_ip, skipped);
}

/* At --max-conns: stop listening (the backlog holds newcomers). */
static void pause_full(struct mts_server *s)
{
	unsigned skipped;

	s->paused_full = true;
	s->paused_at_ms = now_ms();
	s->pause_logged = log_limit_allow(&s->pause_log, s->paused_at_ms, LIMIT_LOG_MS,
					  &skipped);
	if (s->pause_logged)
		log_info("accept: %u connections, the limit; pausing (%u more pauses since "
			 "the last such line)", s->cfg.max_conns, skipped);
	update_listening(s);
}

/* At stop: what the rate limit held back since its last lines. */
static void log_skipped(struct mts_server *s)
{
	if (s->pause_log.skipped != 0)
		log_info("accept: paused at the connection limit %u more times since the "
			 "last such line", s->pause_log.skipped);
	if (s->refused_log.skipped != 0)
		log_warn("accept: refused %u more connections (max_conns_per_ip) since the "
			 "last such line", s->refused_log.skipped);
}

/* A slot freed: listen again. Logged only if its pause was. */
static void resume_below_limit(struct mts_server *s)
{
	s->paused_full = false;
	if (s->pause_logged)
		log_info("accept: below the connection limit; resuming after %llu ms",
			 (unsigned long long)(now_ms() - s->paused_at_ms));
	s->pause_logged = false;
	update_listening(s);
}

static void hand_off(struct mts_server *s, int fd, const struct sockaddr *peer)
{
	struct worker *w;
	struct ip_entry *ip = NULL;
	struct mts_conn *c;
	int rc;

	if (s->iplimit != NULL && (rc = iplimit_admit(s->iplimit, peer, &ip)) < 0) {
		if (rc == -EBUSY) {
			refuse(s, fd, peer);
		} else {
			log_warn("accept: out of memory counting a connection; closing it");
			close(fd);
		}
		return;
	}
	w = pick_worker(s);

	c = fault_hit(FAULT_CONN_ALLOC) ? NULL : calloc(1, sizeof(*c) + s->handler.data_size);
	if (c == NULL) {
		/* That connection is lost, not the server. */
		log_warn("accept: out of memory for a connection; closing it");
		close(fd);
		if (ip != NULL)
			iplimit_release(s->iplimit, ip);
		return;
	}
	c->msg.kind = MSG_NEW_CONN;
	c->fd = fd;
	c->ip = ip;
	c->accepted_ns = clock_now_ns();
	c->worker = w;
	atomic_fetch_add_explicit(&s->live, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->live, 1, memory_order_relaxed);
	/* From here on the connection is the worker's: do not touch c. */
	rc = inbox_post(w->inbox, &c->msg);
	if (rc < 0 && s->rewake_ms == 0) {
		log_debug("%s: wake-up failed: %s", w->tag, strerror(-rc));
		schedule_rewake(s);
	}
}

static bool at_limit(struct mts_server *s)
{
	return s->cfg.max_conns != 0 &&
	       atomic_load_explicit(&s->live, memory_order_relaxed) >= s->cfg.max_conns;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct mts_server *s = arg;

	for (int n = 0; n < ACCEPT_BUDGET; n++) {
		int fd;

		if (at_limit(s)) {
			if (!s->paused_full)
				pause_full(s);
			return;
		}
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof(peer);

		/* The peer's address is asked for only when it is counted. */
		fd = accept4(lfd, s->iplimit ? (struct sockaddr *)&peer : NULL,
			     s->iplimit ? &peer_len : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			switch (errno) {
			case EAGAIN:
#if EAGAIN != EWOULDBLOCK
			case EWOULDBLOCK:
#endif
				if (s->backoff_ms)
					end_backoff(s);
				return;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				start_backoff(s, errno);
				return;
			default:
				/* ECONNABORTED, EINTR, EPROTO, network errors: next one. */
				log_debug("accept: %s", strerror(errno));
				continue;
			}
		}
		if (s->backoff_ms)
			end_backoff(s);
		hand_off(s, fd, (struct sockaddr *)&peer);
	}
}

/* ---- wake-ups from other threads and signal handlers ------------------ */

void acceptor_wake(struct mts_server *s, unsigned reason)
{
	/* Set the reason, then signal: the acceptor drains, then takes reasons. */
	atomic_fetch_or_explicit(&s->wake_reasons, reason, memory_order_release);
	(void)wakeup_signal(&s->wake);
}

void acceptor_conn_ended(struct mts_server *s)
{
	if (atomic_fetch_sub_explicit(&s->live, 1, memory_order_relaxed) == s->cfg.max_conns &&
	    s->cfg.max_conns != 0)
		acceptor_wake(s, WAKE_SLOT_FREED);
}

static void log_stats(struct mts_server *s)
{
	struct mts_worker_stats st;

	for (unsigned i = 0; i < s->n_workers; i++) {
		mts_worker_stats(s, i, &st);
		log_report("%s: live %u accepted %llu bytes_in %llu bytes_out %llu "
			"wakeups_sent %llu wakeups_saved %llu largest_batch %llu "
			"rounds %llu wouldblock %llu; "
			"handoff_us p50 %.1f p90 %.1f p99 %.1f max %.1f, wakeups/conn %.3f",
			s->workers[i].tag, st.live, (unsigned long long)st.accepted,
			(unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
			(unsigned long long)st.wakeups, (unsigned long long)st.wakeups_saved,
			(unsigned long long)st.largest_batch, (unsigned long long)st.rounds,
			(unsigned long long)st.wouldblock,
			st.handoff_p50_ns / 1e3, st.handoff_p90_ns / 1e3,
			st.handoff_p99_ns / 1e3, st.handoff_max_ns / 1e3,
			st.accepted ? (double)st.wakeups / (double)st.accepted : 0.0);
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct mts_server *s = arg;
	unsigned reasons;

	wakeup_drain(&s->wake);		/* first, as in inbox.c */
	reasons = atomic_exchange_explicit(&s->wake_reasons, 0, memory_order_acquire);

	if (reasons & WAKE_STATS)
		log_stats(s);
	if ((reasons & WAKE_REWAKE) && s->rewake_ms == 0)
		schedule_rewake(s);
	if ((reasons & WAKE_SLOT_FREED) && s->paused_full && !at_limit(s))
		resume_below_limit(s);
	if (reasons & WAKE_STOP) {
		log_skipped(s);
		s->stopping = true;
		update_listening(s);
		event_base_loopbreak(s->base);
	}
}

int acceptor_start(struct mts_server *s)
{
	int rc = wakeup_init(&s->wake, WAKEUP_EVENTFD);

	if (rc < 0)
		return rc;
	s->wake_ev = event_new(s->base, wakeup_fd(&s->wake), EV_READ | EV_PERSIST, on_wake, s);
	s->backoff_ev = evtimer_new(s->base, on_backoff, s);
	s->rewake_ev = evtimer_new(s->base, on_rewake, s);
	if (s->wake_ev == NULL || s->backoff_ev == NULL || s->rewake_ev == NULL ||
	    event_add(s->wake_ev, NULL) == -1)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_listeners; i++) {
		s->listeners[i].ev = event_new(s->base, s->listeners[i].fd,
					       EV_READ | EV_PERSIST, on_accept, s);
		if (s->listeners[i].ev == NULL)
			return -ENOMEM;
	}
	update_listening(s);
	return 0;
}

void acceptor_close(struct mts_server *s)
{
	for (size_t i = 0; i < s->n_listeners; i++) {
		if (s->listeners[i].ev != NULL)
			event_free(s->listeners[i].ev);
		close(s->listeners[i].fd);
	}
	free(s->listeners);
	s->listeners = NULL;
	s->n_listeners = 0;
	if (s->wake_ev != NULL)
		event_free(s->wake_ev);
	if (s->backoff_ev != NULL)
		event_free(s->backoff_ev);
	if (s->rewake_ev != NULL)
		event_free(s->rewake_ev);
	s->wake_ev = s->backoff_ev = s->rewake_ev = NULL;
}
