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

/*
 * Resolves every --listen address and listens on each result. With port 0,
 * the first socket's ephemeral port is reused for the others, so that
 * "localhost" gives one port on both families.
 */
int acceptor_open(struct mts_server *s, char *why, size_t why_len)
{
	static const char *const default_hosts[] = { "localhost" };
	const char *const *hosts = s->cfg.n_listen ? s->cfg.listen : default_hosts;
	size_t n_hosts = s->cfg.n_listen ? s->cfg.n_listen : 1;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_ADDRCONFIG,
	};
	int chosen_port = -1;

	for (size_t h = 0; h < n_hosts; h++) {
		struct addrinfo *res, *ai;
		int gai, rc;

		gai = getaddrinfo(hosts[h], s->cfg.port, &hints, &res);
		if (gai == EAI_ADDRFAMILY || gai == EAI_NONAME) {
			/* AI_ADDRCONFIG can hide loopback-only families: ask again. */
			struct addrinfo plain = hints;
			plain.ai_flags = AI_PASSIVE;
			gai = getaddrinfo(hosts[h], s->cfg.port, &plain, &res);
		}
		if (gai != 0) {
			snprintf(why, why_len, "cannot resolve %s: %s", hosts[h], gai_strerror(gai));
			return -EINVAL;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			char name[80];
			int fd;

			if (chosen_port >= 0)
				set_port(ai->ai_addr, (unsigned short)chosen_port);
			fd = listen_on(ai->ai_addr, ai->ai_addrlen, s->cfg.backlog);
			if (fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT) {
				/* e.g. ::1 on a host without IPv6: skip that family. */
				continue;
			}
			if (fd < 0) {
				format_addr(ai->ai_addr, name, sizeof(name));
				snprintf(why, why_len, "cannot listen on %s: %s", name,
					 fd == -EADDRINUSE ? "address already in use" : strerror(-fd));
				freeaddrinfo(res);
				return fd;
			}
			if ((rc = add_listener(s, fd)) < 0) {
				close(fd);
				freeaddrinfo(res);
				snprintf(why, why_len, "out of memory");
				return rc;
			}
			if (chosen_port < 0 && strcmp(s->cfg.port, "0") == 0)
				chosen_port = bound_port(fd);
		}
		freeaddrinfo(res);
	}
	if (s->n_listeners == 0) {
		snprintf(why, why_len, "no address to listen on");
		return -EADDRNOTAVAIL;
	}
	return 0;
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

static void hand_off(struct mts_server *s, int fd)
{
	struct worker *w = pick_worker(s);
	struct mts_conn *c;
	int rc;

	c = fault_hit(FAULT_CONN_ALLOC) ? NULL : calloc(1, sizeof(*c) + s->handler.data_size);
	if (c == NULL) {
		/* That connection is lost, not the server. */
		log_warn("accept: out of memory for a connection; closing it");
		close(fd);
		return;
	}
	c->msg.kind = MSG_NEW_CONN;
	c->fd = fd;
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
				log_info("accept: %u connections, the limit; pausing", s->cfg.max_conns);
			s->paused_full = true;
			update_listening(s);
			return;
		}
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
		hand_off(s, fd);
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
	if ((reasons & WAKE_SLOT_FREED) && s->paused_full && !at_limit(s)) {
		s->paused_full = false;
		log_info("accept: below the connection limit; resuming");
		update_listening(s);
	}
	if (reasons & WAKE_STOP) {
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
