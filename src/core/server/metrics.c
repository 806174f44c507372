/*
 * metrics.c - GET /metrics: the server's statistics in Prometheus's text
 * exposition format (version 0.0.4; metrics_text.c writes it and says how
 * a scrape reads the workers' counters), served by libevent's own evhttp
 * on the main thread's base: no second HTTP stack and no thread of its own.
 *
 * The endpoint must not become a way to hurt the echo path. It runs on
 * the main thread, which with --accept handoff also accepts connections:
 * a scrape costs it about 0.2 ms of CPU with 2 workers (measured: see
 * doc/API.md, "Metrics"), most of it reading each worker's histogram
 * (7424 buckets) and /proc. Scrape connections hold descriptors the echo
 * path needs, so they are bounded (METRICS_MAX_CONNS; more are closed at
 * once) and so is their life: a request must arrive whole within
 * METRICS_DEADLINE_S of the connection or of the previous answer's last
 * byte (a slowloris that trickles a header byte by byte is cut there;
 * evhttp's own timeout only bounds each read). GET and HEAD are answered;
 * other methods evhttp knows get 405, ones it does not 501; headers are
 * capped at 8 KiB, a request body is refused (413), and paths other than
 * /metrics and / get 404. Once mts_run() returns (a graceful stop), the
 * listeners close and open scrape connections are shut down: a scraper
 * is refused, not left waiting for a loop that no longer runs.
 *
 * How the connections are counted: libevent 2.1's evhttp has no limit of
 * its own and tells nobody when it frees a connection. It does let us make
 * each connection's bufferevent (evhttp_set_bevcb()), so we keep a
 * reference to it. When evhttp is done it frees the bufferevent, which
 * clears all its callbacks (bufferevent_free() does that first) and
 * closes the socket (we did not ask for BEV_OPT_CLOSE_ON_FREE, so evhttp
 * closes it itself); our reference keeps the object alive until we see
 * the event callback gone and let it go. The event callback, not the read
 * one: while evhttp writes an answer it clears the read callback alone
 * (evhttp_write_buffer()); only an outgoing connection's reset clears the
 * event callback of a bufferevent evhttp keeps. A connection over the
 * limit or past its deadline is shut down (shutdown(2), not close: the
 * descriptor stays evhttp's), evhttp reads the end of the stream and frees
 * it. All of this runs on the main thread, so a bufferevent whose event
 * callback is still set is one evhttp still holds, and its descriptor is
 * still the connection's. Until we let a freed one go, its read event
 * stays registered for a descriptor number evhttp has closed: harmless,
 * because the only descriptors registered on this base after start are
 * evhttp's new connections, and new_scrape_conn() lets every freed one go
 * before evhttp registers the next.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "addr.h"
#include "histogram.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "metrics_text.h"
#include "server.h"

#define METRICS_MAX_LISTENERS 4		/* addresses one HOST may resolve to */

/* One scrape connection, from evhttp_set_bevcb() until evhttp frees it. */
struct scrape_conn {
	struct bufferevent *bev;	/* our reference keeps it until the sweep */
	uint64_t deadline_ms;		/* its request must be in by then */
	bool over_limit;		/* to be closed: METRICS_MAX_CONNS were open */
	bool shut;			/* shutdown() done; evhttp will free it */
};

struct metrics {
	struct mts_server *s;
	struct evhttp *http;
	struct event *sweep;		/* every second while connections exist */
	struct scrape_conn *conns;
	size_t n, cap;
	struct evhttp_bound_socket *bound[METRICS_MAX_LISTENERS];
	char names[METRICS_MAX_LISTENERS][64];
	size_t n_listeners;
	uint64_t *saved_seen;		/* per worker: the most wake-ups saved reported */
	/* The endpoint's own counts (main thread only). */
	uint64_t closed_limit, closed_deadline;
};

static uint64_t mono_ms(void)
{
	return clock_now_ns() / 1000000u;
}

/* ---- the scrape connections -------------------------------------------- */

static void arm_sweep(struct metrics *m)
{
	const struct timeval second = { 1, 0 };

	if (!evtimer_pending(m->sweep, NULL))
		evtimer_add(m->sweep, &second);
}

/* Lets go of the connections evhttp has freed (the header comment says
 * why a bufferevent whose event callback is still set is evhttp's). */
static void collect_freed(struct metrics *m)
{
	bufferevent_event_cb event_cb;

	for (size_t i = 0; i < m->n;) {
		bufferevent_getcb(m->conns[i].bev, NULL, NULL, &event_cb, NULL);
		if (event_cb == NULL) {
			bufferevent_decref(m->conns[i].bev);
			m->conns[i] = m->conns[--m->n];
		} else {
			i++;
		}
	}
}

/* Shuts down the connections over the limit or past their deadline;
 * evhttp reads the end of the stream and frees them. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct metrics *m = arg;
	uint64_t now = mono_ms();

	(void)fd;
	(void)what;
	collect_freed(m);
	for (size_t i = 0; i < m->n; i++) {
		struct scrape_conn *c = &m->conns[i];

		if (!c->shut && (c->over_limit || now >= c->deadline_ms)) {
			shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
			c->shut = true;
			if (c->over_limit)
				m->closed_limit++;
			else
				m->closed_deadline++;
		}
	}
	if (m->n > 0)
		arm_sweep(m);
}

/* evhttp's new connection: its bufferevent, which we keep a reference to. */
static struct bufferevent *new_scrape_conn(struct event_base *base, void *arg)
{
	struct metrics *m = arg;
	struct bufferevent *bev;
	size_t open = 0;

	/* Without BEV_OPT_CLOSE_ON_FREE evhttp closes the socket itself
	 * (evhttp_connection_free()), when it frees the bufferevent. */
	if ((bev = bufferevent_socket_new(base, -1, 0)) == NULL)
		return NULL;	/* evhttp tries its own, likely failing too */
	collect_freed(m);
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 2 * METRICS_MAX_CONNS;
		struct scrape_conn *c = realloc(m->conns, cap * sizeof(*c));

		if (c == NULL)
			return bev;	/* served, uncounted: only under ENOMEM */
		m->conns = c;
		m->cap = cap;
	}
	/* Open: not freed by evhttp, and not being closed by us. */
	for (size_t i = 0; i < m->n; i++)
		open += !m->conns[i].shut && !m->conns[i].over_limit;
	bufferevent_incref(bev);
	m->conns[m->n++] = (struct scrape_conn){
		.bev = bev,
		.deadline_ms = mono_ms() + METRICS_DEADLINE_S * 1000u,
		.over_limit = open >= METRICS_MAX_CONNS,
	};
	if (open >= METRICS_MAX_CONNS)
		event_active(m->sweep, EV_TIMEOUT, 0);	/* closed on this loop pass */
	else
		arm_sweep(m);
	return bev;
}

/* The last byte of an answer went out on req's connection (evhttp's
 * on_complete callback): its next request gets a new deadline. */
static void renew_deadline(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct bufferevent *bev =
		evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));

	for (size_t i = 0; i < m->n; i++)
		if (m->conns[i].bev == bev)
			m->conns[i].deadline_ms = mono_ms() + METRICS_DEADLINE_S * 1000u;
}

/* ---- the requests ------------------------------------------------------ */

static void send_text(struct evhttp_request *req, int code, const char *reason,
		      const char *content_type, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
	evhttp_send_reply(req, code, reason, body);
}

/* Only GET and HEAD read anything here: any other method gets 405 and
 * the methods that would work (RFC 9110, 15.5.6). false if it got that. */
static bool readable(struct evhttp_request *req)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)
		return true;
	struct evbuffer *body = evbuffer_new();

	/* Not evhttp_send_error(), which drops the headers set before it. */
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
	if (body != NULL)
		evbuffer_add_printf(body, "only GET and HEAD\n");
	send_text(req, 405, "Method Not Allowed", "text/plain; charset=utf-8", body);
	if (body != NULL)
		evbuffer_free(body);
	return false;
}

/* The endpoint's own counts. */
static void endpoint_families(struct evbuffer *b, const struct metrics *m)
{
	metrics_family(b, "mtserver_metrics_connections_closed_total", "counter",
		       "Scrape connections this endpoint closed: over its limit of open ones, or "
		       "a request not in by its deadline.");
	evbuffer_add_printf(b, "mtserver_metrics_connections_closed_total{reason=\"limit\"} %llu\n"
			    "mtserver_metrics_connections_closed_total{reason=\"deadline\"} %llu\n",
			    (unsigned long long)m->closed_limit,
			    (unsigned long long)m->closed_deadline);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evbuffer *body;

	evhttp_request_set_on_complete_cb(req, renew_deadline, m);
	if (!readable(req))
		return;
	body = evbuffer_new();
	if (body == NULL || metrics_text(body, m->s, m->saved_seen) < 0) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
	} else {
		endpoint_families(body, m);
		send_text(req, HTTP_OK, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
	}
	if (body != NULL)
		evbuffer_free(body);
}

/* "/" says where the metrics are; anything else is 404. */
static void on_other(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	bool root = path != NULL && strcmp(path, "/") == 0;
	struct evbuffer *body;

	evhttp_request_set_on_complete_cb(req, renew_deadline, arg);
	if (!readable(req))
		return;
	if ((body = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add_printf(body, "%s%s: Prometheus metrics at /metrics\n", root ? "" :
			    "not found; ", program_invocation_short_name);
	send_text(req, root ? HTTP_OK : HTTP_NOTFOUND, root ? "OK" : "Not Found",
		  "text/plain; charset=utf-8", body);
	evbuffer_free(body);
}

/* ---- listening --------------------------------------------------------- */

static void on_listen_again(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evconnlistener_enable(arg);
}


/*
 * accept() failed for lack of descriptors (or worse): left alone, the
 * listener would stay readable and the main loop spin, logging. Pause it
 * for a second. evhttp owns the listener, so this callback's argument is
 * the evhttp, not our struct: the pause is a one-shot event on the base,
 * which is safe because the base is never run again once metrics_free()
 * has freed the listener (mts_free() frees the base right after).
 */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	/* One line a minute at most, for every endpoint of the process (this
	 * callback cannot reach our struct; servers' main threads may race
	 * for it, and the loser stays quiet). */
	static _Atomic uint64_t last_line_ms;
	const struct timeval second = { 1, 0 };
	uint64_t now = mono_ms(), last = atomic_load_explicit(&last_line_ms, memory_order_relaxed);
	int err = EVUTIL_SOCKET_ERROR();

	(void)arg;
	if ((last == 0 || now - last >= 60000) &&
	    atomic_compare_exchange_strong_explicit(&last_line_ms, &last, now,
						    memory_order_relaxed, memory_order_relaxed))
		log_warn("metrics: accept: %s; pausing the metrics endpoint for a second (at "
			 "most one such line a minute)", strerror(err));
	if (event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, on_listen_again, l,
			    &second) == 0)
		evconnlistener_disable(l);
}

/* Hands the listening socket fd to evhttp (which then owns it). */
static int serve_on(struct metrics *m, int fd, char *why, size_t why_len)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char *name;

	if (m->n_listeners == METRICS_MAX_LISTENERS) {
		close(fd);
		snprintf(why, why_len, "metrics: more than %d addresses", METRICS_MAX_LISTENERS);
		return -EINVAL;
	}
	name = m->names[m->n_listeners];
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		addr_format((struct sockaddr *)&ss, len, name, sizeof(m->names[0]));
	else
		snprintf(name, sizeof(m->names[0]), "fd %d", fd);
	if ((bound = evhttp_accept_socket_with_handle(m->http, fd)) == NULL) {
		close(fd);
		snprintf(why, why_len, "metrics: cannot serve on %s", name);
		return -ENOMEM;
	}
	m->bound[m->n_listeners++] = bound;
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound), on_accept_error);
	log_info("metrics on http://%s/metrics", name);
	return 0;
}

/* Opens a listening socket on every address spec resolves to. */
static int listen_on(struct metrics *m, const char *spec, char *why, size_t why_len)
{
	const struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					.ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	const char *host, *port;
	char buf[256], name[64];
	int rc, fd, port0 = 0;

	if (addr_split_host_port(spec, buf, sizeof(buf), &host, &port) < 0) {
		snprintf(why, why_len, "metrics address '%s' is not HOST:PORT (an IPv6 literal "
			 "in brackets: [::1]:9100)", spec);
		return -EINVAL;
	}
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(why, why_len, "metrics address '%s': %s", spec, gai_strerror(rc));
		return -EINVAL;
	}
	rc = 0;
	for (ai = res; ai != NULL && rc == 0; ai = ai->ai_next) {
		/* Port 0 and a name of several addresses: the first picks the
		 * port, the others take the same. */
		if (ai != res && strcmp(port, "0") == 0 && port0 > 0)
			addr_set_port(ai->ai_addr, (unsigned short)port0);
		if ((fd = addr_listen(ai->ai_addr, ai->ai_addrlen, 16, false)) < 0) {
			rc = fd;
			addr_format(ai->ai_addr, ai->ai_addrlen, name, sizeof(name));
			snprintf(why, why_len, "metrics: cannot listen on %s (%s): %s", name, spec,
				 strerror(-rc));
		} else if (ai == res) {
			port0 = addr_bound_port(fd);
		}
		if (fd >= 0)
			rc = serve_on(m, fd, why, why_len);
	}
	freeaddrinfo(res);
	return rc;
}

int metrics_new(struct metrics **out, struct mts_server *s, const struct mts_config *cfg,
		char *why, size_t why_len)
{
	struct metrics *m;
	int rc, fd;

	*out = NULL;
	if (cfg->metrics_fd <= 0 && cfg->metrics_listen == NULL)
		return 0;
	snprintf(why, why_len, "metrics: out of memory");
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->saved_seen = calloc(cfg->threads, sizeof(*m->saved_seen))) == NULL ||
	    (m->http = evhttp_new(s->base)) == NULL ||
	    (m->sweep = evtimer_new(s->base, on_sweep, m)) == NULL ||
	    evhttp_set_cb(m->http, "/metrics", on_metrics, m) != 0) {
		metrics_free(m);
		return -ENOMEM;
	}
	*out = m;	/* from here metrics_free() closes what serve_on() took */
	m->s = s;
	/* Every method reaches the callbacks, which answer 405 where evhttp
	 * would say 501 (not implemented) of a method it knows. */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	/* evhttp's own timeout bounds each read and write; ours (the sweep)
	 * comes first for a request that does not come, so that what is
	 * closed is counted, and evhttp's is left for a client that stops
	 * reading its answer. */
	evhttp_set_timeout(m->http, 3 * METRICS_DEADLINE_S);
	evhttp_set_bevcb(m->http, new_scrape_conn, m);
	evhttp_set_gencb(m->http, on_other, m);
	if (cfg->metrics_fd <= 0)
		return listen_on(m, cfg->metrics_listen, why, why_len);
	if ((rc = listen_adopt(cfg->metrics_fd, "metrics_fd", why, why_len)) < 0)
		return rc;
	/* evhttp gets a duplicate: the caller's descriptor stays open if
	 * mts_new() fails after this, and mts_new() closes it on success. */
	if ((fd = fcntl(cfg->metrics_fd, F_DUPFD_CLOEXEC, 3)) == -1) {
		rc = -errno;
		snprintf(why, why_len, "metrics_fd %d: %s", cfg->metrics_fd, strerror(-rc));
		return rc;
	}
	return serve_on(m, fd, why, why_len);
}

void metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_listeners; i++)
		evhttp_del_accept_socket(m->http, m->bound[i]);	/* closes it */
	m->n_listeners = 0;
	collect_freed(m);
	for (size_t i = 0; i < m->n; i++)
		if (!m->conns[i].shut) {
			shutdown(bufferevent_getfd(m->conns[i].bev), SHUT_RDWR);
			m->conns[i].shut = true;
		}
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	/* evhttp_free() frees the connections it holds (closing their
	 * sockets) and its listeners; then our references go. */
	if (m->http != NULL)
		evhttp_free(m->http);
	for (size_t i = 0; i < m->n; i++)
		bufferevent_decref(m->conns[i].bev);
	free(m->conns);
	free(m->saved_seen);
	if (m->sweep != NULL)
		event_free(m->sweep);
	free(m);
}

const char *metrics_name(const struct metrics *m, size_t i)
{
	return m != NULL && i < m->n_listeners ? m->names[i] : NULL;
}
