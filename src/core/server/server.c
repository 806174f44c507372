/*
 * server.c - the server's lifecycle (build, run, stop, free), the accept
 * strategies, the control channel, and the public entry points that the
 * layers below implement (mts_post, mts_workq_*, mts_log).
 *
 * Layers (doc/ARCHITECTURE.md): this file is the top of the core. It calls
 * down into the executor (workers, tasks) and the handoff layer (retrier,
 * wake-up); they call back up only through function pointers given here
 * (the executor's on_stop hook, the tasks' run and cancel, the connection
 * limit's on_slot_freed).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "server.h"

static const char *const strategy_names[ACCEPT_N_STRATEGIES] = {
	[ACCEPT_HANDOFF] = "handoff",
	[ACCEPT_REUSEPORT] = "reuseport",
	[ACCEPT_SHARED] = "shared",
};

const char *mts_dispatch_name(unsigned i)
{
	return i < INBOX_N_VARIANTS ? inbox_variant_name((enum inbox_variant)i) : NULL;
}

const char *mts_accept_name(unsigned i)
{
	return i < ACCEPT_N_STRATEGIES ? strategy_names[i] : NULL;
}

/* The string fields' defaults: mts_config_defaults() fills them in, and
 * check_config() reads a NULL as them. */
#define DEFAULT_PORT "5555"
#define DEFAULT_DISPATCH "wfcq"
#define DEFAULT_ACCEPT "handoff"

void mts_config_defaults(struct mts_config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	*cfg = (struct mts_config){
		.port = DEFAULT_PORT,
		.threads = cpus > 0 ? (unsigned)cpus : 1,
		.backlog = 1024,
		.shutdown_grace_ms = 2000,
		.linger_ms = 2000,
		.linger_bytes = 16u << 20,
		.inbox_budget = 64,
		.balance = MTS_BALANCE_RR,
		.dispatch = DEFAULT_DISPATCH,
		.accept = DEFAULT_ACCEPT,
		.spin_us = 10,
	};
}

/* ---- socket activation ------------------------------------------------- */

/*
 * systemd's protocol (sd_listen_fds(3)): LISTEN_PID names the process the
 * descriptors are for, LISTEN_FDS how many there are, starting at 3. Read
 * directly: a library for two variables is not worth its dependency.
 */
#define LISTEN_FDS_START 3

int mts_inherited_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	char *end;
	unsigned long p, n;

	if (pid == NULL || fds == NULL)
		return 0;
	p = strtoul(pid, &end, 10);
	if (*pid == '\0' || *end != '\0' || p != (unsigned long)getpid())
		return 0;	/* meant for another process */
	n = strtoul(fds, &end, 10);
	unsetenv("LISTEN_PID");	/* not for our children */
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (*fds == '\0' || *end != '\0' || n > 1024)
		return -EINVAL;
	return (int)n;
}

/* ---- the descriptor budget --------------------------------------------- */

/*
 * Descriptors open in this process now, or -1 if /proc cannot say (the
 * budget check below is skipped then).
 */
static long open_descriptors(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own */
}

/* Left free after the workers: the first connections, and the program's own. */
#define FD_RESERVE 16

/*
 * The descriptor budget, checked once worker 0 exists (the executor's
 * after_first hook): what it took is what every other worker will take (an
 * event_base holds its backend's fd and libevent's signal socketpair; an
 * inbox holds its eventfd or pipe), so the rest must fit under
 * RLIMIT_NOFILE with FD_RESERVE to spare. Failing here, with numbers,
 * beats failing inside libevent ("evsig_init_: socketpair: Too many open
 * files") halfway through the workers.
 */
struct fd_budget {
	unsigned threads;
	long before;
};

static int check_fd_budget(void *arg, char *why, size_t why_len)
{
	const struct fd_budget *b = arg;
	struct rlimit rl;
	long now = open_descriptors(), each = now - b->before, need, fit;

	if (b->before < 0 || now < 0 || each <= 0 || getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    rl.rlim_cur == RLIM_INFINITY)
		return 0;
	need = now + each * (long)(b->threads - 1) + FD_RESERVE;
	if (need <= (long)rl.rlim_cur)
		return 0;
	fit = ((long)rl.rlim_cur - FD_RESERVE - b->before) / each;
	snprintf(why, why_len, "not enough file descriptors: %u worker threads take %ld "
		 "(%ld each), %ld are open already and %d are kept for connections, but the "
		 "limit is %lu; raise it (ulimit -n %ld) or use at most %ld threads",
		 b->threads, each * (long)b->threads, each, b->before, FD_RESERVE,
		 (unsigned long)rl.rlim_cur, need, fit > 0 ? fit : 0);
	return -EMFILE;
}

/* ---- the control channel ----------------------------------------------- */

static void control_signal(struct mts_server *s)
{
	if (wakeup_signal(&s->wake) < 0) {
		/* Owed: the retrier sends it (async-signal-safe: a store, a sem_post). */
		atomic_store_explicit(&s->wake_owed, true, memory_order_release);
		if (s->retrier != NULL)
			retrier_kick(s->retrier);
	}
}

/* The retrier's side of the control channel's debt. */
static int control_retry(void *arg)
{
	struct mts_server *s = arg;

	if (!atomic_exchange_explicit(&s->wake_owed, false, memory_order_acquire))
		return 0;
	if (wakeup_signal(&s->wake) < 0) {
		atomic_store_explicit(&s->wake_owed, true, memory_order_release);
		return -EAGAIN;
	}
	return 0;
}

static void control_wake(struct mts_server *s, unsigned reason)
{
	/* Set the reason, then signal: the main thread drains, then takes. */
	atomic_fetch_or_explicit(&s->reasons, reason, memory_order_release);
	control_signal(s);
}

static void stop_accepting(struct mts_server *s)
{
	if (s->main_unit_ready)
		accept_unit_stop(&s->main_unit);
}

static void on_control(evutil_socket_t fd, short what, void *arg)
{
	struct mts_server *s = arg;
	unsigned reasons;

	wakeup_drain(&s->wake, NULL);		/* first, as in inbox.c */
	reasons = atomic_exchange_explicit(&s->reasons, 0, memory_order_acquire);

	if (reasons & WAKE_STATS)
		stats_log(s);
	if ((reasons & WAKE_SLOT_FREED) && s->main_unit_ready)
		accept_unit_resume(&s->main_unit);
	if (reasons & WAKE_STOP) {
		stop_accepting(s);
		event_base_loopbreak(s->base);
	}
}

void mts_stop(struct mts_server *s)
{
	control_wake(s, WAKE_STOP);
}

void mts_request_stats(struct mts_server *s)
{
	control_wake(s, WAKE_STATS);
}

/* ---- accept strategies ------------------------------------------------- */

/* handoff: the worker for the next connection. */
static struct conn_home *pick_home(struct mts_server *s)
{
	unsigned start = s->next_rr++ % s->n_workers;
	struct conn_home *best = &s->homes[start];

	if (s->cfg.balance == MTS_BALANCE_LEAST) {
		/* Start the scan at the round-robin cursor so ties rotate. */
		unsigned best_live = atomic_load_explicit(&best->live, memory_order_relaxed);
		for (unsigned k = 1; k < s->n_workers; k++) {
			struct conn_home *h = &s->homes[(start + k) % s->n_workers];
			unsigned live = atomic_load_explicit(&h->live, memory_order_relaxed);
			if (live < best_live) {
				best = h;
				best_live = live;
			}
		}
	}
	return best;
}

/* handoff: the main thread's unit posts each connection to a worker. */
static void deliver_handoff(struct accept_unit *u, int fd, struct ip_entry *ip)
{
	struct mts_server *s = u->arg;
	struct mts_conn *c = conn_new(&s->sh, fd, ip);

	if (c != NULL)
		conn_post(pick_home(s), c);
}

/* reuseport, shared: the worker that accepted serves it, no handoff. */
static void deliver_here(struct accept_unit *u, int fd, struct ip_entry *ip)
{
	struct worker_accept *wa = u->arg;
	struct mts_conn *c = conn_new(&wa->srv->sh, fd, ip);

	if (c != NULL)
		conn_adopt(&wa->srv->homes[wa->id], c);
}

static void resume_run(struct exec_task *t, struct event_base *base, unsigned worker)
{
	struct worker_accept *wa = caa_container_of(t, struct worker_accept, resume);

	/*
	 * Cleared first, so that a slot that frees from here on posts again.
	 * An exchange, not a store: a release that found the flag set (and so
	 * did not post) did its decrement of the count, then its exchange
	 * (release); this exchange reads that value (acquire), so the check of
	 * the count in accept_unit_resume() sees the decrement. A plain store
	 * would read nothing and order nothing.
	 */
	(void)atomic_exchange_explicit(&wa->resume_posted, false, memory_order_acq_rel);
	accept_unit_resume(&wa->unit);
}

static void resume_cancel(struct exec_task *t)
{
	struct worker_accept *wa = caa_container_of(t, struct worker_accept, resume);

	atomic_store_explicit(&wa->resume_posted, false, memory_order_relaxed);
}

/* The connection limit's callback: any thread, once per max -> max - 1. */
static void on_slot_freed(void *arg)
{
	struct mts_server *s = arg;

	if (s->accept == ACCEPT_HANDOFF) {
		control_wake(s, WAKE_SLOT_FREED);
		return;
	}
	/* Any worker's unit may be the one paused: tell each, once. */
	for (unsigned i = 0; i < s->n_workers; i++) {
		struct worker_accept *wa = &s->waccept[i];

		/*
		 * Release: the decrement that called us comes before (resume_run).
		 * The resume must arrive (a paused unit hears of no other slot
		 * until the count is back at max), so a full ring keeps it for
		 * the retrier rather than refusing it; resume_posted stays set
		 * until it runs or is cancelled. Only a closed executor refuses.
		 */
		if (!atomic_exchange_explicit(&wa->resume_posted, true, memory_order_acq_rel))
			if (exec_post_deferred(s->ex, i, &wa->resume) < 0)
				atomic_store_explicit(&wa->resume_posted, false,
						      memory_order_relaxed);
	}
}

/* The executor's on_stop hook, on worker `i`: stop accepting, then finish
 * the connections (the worker leaves when they are gone). */
static void on_worker_stop(unsigned i, void *arg)
{
	struct mts_server *s = arg;

	if (s->waccept != NULL && s->waccept[i].ready)
		accept_unit_stop(&s->waccept[i].unit);
	conn_home_stop(&s->homes[i]);
}

static int start_accepting(struct mts_server *s)
{
	size_t n_addr = listen_addresses(&s->ls);
	int *fds = calloc(s->ls.n ? s->ls.n : 1, sizeof(*fds));
	int rc = 0;

	accept_shared_init(&s->accept_sh, &s->limit, s->iplimit, s->cfg.max_conns_per_ip);
	s->accept_ready = true;
	if (fds == NULL)
		return -ENOMEM;
	if (s->accept == ACCEPT_HANDOFF) {
		for (size_t i = 0; i < s->ls.n; i++)
			fds[i] = s->ls.l[i].fd;
		rc = accept_unit_init(&s->main_unit, s->base, fds, s->ls.n, &s->accept_sh,
				      deliver_handoff, s);
		s->main_unit_ready = true;
		free(fds);
		return rc;
	}
	s->waccept = calloc(s->n_workers, sizeof(*s->waccept));
	if (s->waccept == NULL) {
		free(fds);
		return -ENOMEM;
	}
	for (unsigned w = 0; w < s->n_workers && rc == 0; w++) {
		struct worker_accept *wa = &s->waccept[w];

		/* reuseport: copy w of every address; shared: every socket. */
		for (size_t a = 0; a < n_addr; a++)
			fds[a] = s->ls.l[a * s->ls.copies +
					 (s->accept == ACCEPT_REUSEPORT ? w : 0)].fd;
		wa->srv = s;
		wa->id = w;
		wa->resume = (struct exec_task){ .run = resume_run, .cancel = resume_cancel };
		/* The worker's base, before its thread runs: no lock needed. */
		rc = accept_unit_init(&wa->unit, exec_base(s->ex, w), fds, n_addr, &s->accept_sh,
				      deliver_here, wa);
		wa->ready = true;
	}
	free(fds);
	return rc;
}

/* ---- building and freeing ---------------------------------------------- */

static int strategy_from_name(const char *name)
{
	for (int i = 0; i < ACCEPT_N_STRATEGIES; i++)
		if (strcmp(strategy_names[i], name) == 0)
			return i;
	return -1;
}

/* The public limit is the handoff layer's. */
_Static_assert(MTS_RING_SIZE_MAX == INBOX_RING_MAX, "MTS_RING_SIZE_MAX is INBOX_RING_MAX");

/* Writes *why and returns -EINVAL: every refusal of check_config(). */
__attribute__((format(printf, 3, 4)))
static int invalid(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "1.5 GiB" or "512.0 MiB", for the memory check's message. */
static void format_size(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= (1ull << 30))
		snprintf(buf, len, "%.1f GiB", (double)bytes / (1ull << 30));
	else
		snprintf(buf, len, "%.1f MiB", (double)bytes / (1ull << 20));
}

/* This machine's physical memory in bytes, or 0 if sysconf cannot say. */
static uint64_t physical_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

	return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/*
 * The rings must fit: each worker's ring can reach ring_size slots of a
 * pointer each, touched as messages pass (inbox_ring.c). Rings that could
 * never fit in physical memory are refused before anything is allocated;
 * the total is at most 2^32 x 2^24 x 8 bytes, which fits in 64 bits.
 */
static int check_ring_memory(const struct mts_config *cfg, char *why, size_t why_len)
{
	uint64_t need = (uint64_t)cfg->threads * cfg->ring_size * sizeof(void *);
	uint64_t have = physical_memory();
	char need_s[32], have_s[32];

	if (have == 0 || need <= have)
		return 0;
	format_size(need, need_s, sizeof(need_s));
	format_size(have, have_s, sizeof(have_s));
	return invalid(why, why_len, "rings too large: %u threads x ring_size %u x %zu bytes "
		       "= %s, more than this machine's memory (%s); use fewer threads or a "
		       "smaller ring_size", cfg->threads, cfg->ring_size, sizeof(void *),
		       need_s, have_s);
}

/* A port given by number: 0..65535. A name is for getaddrinfo() to judge. */
static bool port_out_of_range(const char *port)
{
	unsigned long n;

	if (port[strspn(port, "0123456789")] != '\0')
		return false;
	errno = 0;
	n = strtoul(port, NULL, 10);
	return errno == ERANGE || n > 65535;
}

/*
 * The configuration mts_new() works from: `in` with its defaults filled in
 * (a NULL string, ring_size 0), every field checked by the rule written
 * above struct mts_config (mtserver.h), and the handler's callbacks.
 * Returns 0, or -EINVAL with *why naming the field. The only place that
 * judges a configuration: everything after it may trust *cfg.
 */
static int check_config(const struct mts_config *in, const struct mts_handler *handler,
			struct mts_config *cfg, char *why, size_t why_len)
{
	int accept;

	if (in == NULL)
		return invalid(why, why_len, "cfg is NULL (mts_config_defaults() fills one in)");
	if (handler == NULL)
		return invalid(why, why_len, "handler is NULL");
	if (handler->on_open == NULL || handler->on_shutdown == NULL || handler->on_close == NULL)
		return invalid(why, why_len, "handler's %s is NULL: the core calls all three",
			       handler->on_open == NULL ? "on_open" :
			       handler->on_shutdown == NULL ? "on_shutdown" : "on_close");

	/* A NULL string, or ring_size 0, means its default. */
	*cfg = *in;
	if (cfg->port == NULL)
		cfg->port = DEFAULT_PORT;
	if (cfg->dispatch == NULL)
		cfg->dispatch = DEFAULT_DISPATCH;
	if (cfg->accept == NULL)
		cfg->accept = DEFAULT_ACCEPT;
	if (cfg->ring_size == 0)
		cfg->ring_size = INBOX_RING_DEFAULT;

	/* A pointer agrees with its count. */
	if (cfg->n_listen > 0 && cfg->listen == NULL)
		return invalid(why, why_len, "listen is NULL but n_listen is %zu", cfg->n_listen);
	for (size_t i = 0; i < cfg->n_listen; i++) {
		if (cfg->listen[i] == NULL)
			return invalid(why, why_len, "listen[%zu] is NULL (n_listen is %zu)", i,
				       cfg->n_listen);
		if (cfg->listen[i][0] == '\0')
			return invalid(why, why_len, "listen[%zu] is an empty string", i);
	}
	if (cfg->n_listen_fds > 0 && cfg->listen_fds == NULL)
		return invalid(why, why_len, "listen_fds is NULL but n_listen_fds is %zu",
			       cfg->n_listen_fds);
	for (size_t i = 0; i < cfg->n_listen_fds; i++)
		if (cfg->listen_fds[i] < 0)
			return invalid(why, why_len, "listen_fds[%zu] is %d, not a descriptor", i,
				       cfg->listen_fds[i]);

	/* Strings name something that exists. */
	if (cfg->port[0] == '\0')
		return invalid(why, why_len, "port is an empty string (NULL means \"%s\")",
			       DEFAULT_PORT);
	if (port_out_of_range(cfg->port))
		return invalid(why, why_len, "port %s is out of range (0..65535)", cfg->port);
	if (inbox_variant_from_name(cfg->dispatch) < 0)
		return invalid(why, why_len, "unknown dispatch variant '%s'", cfg->dispatch);
	if ((accept = strategy_from_name(cfg->accept)) < 0)
		return invalid(why, why_len, "unknown accept strategy '%s'", cfg->accept);

	/* Numbers are in their ranges. */
	if (cfg->threads < 1)
		return invalid(why, why_len, "threads is 0: a server needs at least one worker");
	if (cfg->backlog < 1)
		return invalid(why, why_len, "backlog is %d: it must be at least 1", cfg->backlog);
	if (cfg->inbox_budget < 1)
		return invalid(why, why_len, "inbox_budget is 0: a worker must handle at least "
			       "one message per loop turn");
	if (cfg->balance != MTS_BALANCE_RR && cfg->balance != MTS_BALANCE_LEAST)
		return invalid(why, why_len, "balance is %d: neither MTS_BALANCE_RR nor "
			       "MTS_BALANCE_LEAST", (int)cfg->balance);
	if (cfg->ring_size > MTS_RING_SIZE_MAX || (cfg->ring_size & (cfg->ring_size - 1)) != 0)
		return invalid(why, why_len, "ring_size %u is not a power of two up to %u",
			       cfg->ring_size, MTS_RING_SIZE_MAX);
	if (cfg->spin_us > MTS_SPIN_US_MAX)
		return invalid(why, why_len, "spin_us %u is above %u: a polling worker serves "
			       "nothing else", cfg->spin_us, MTS_SPIN_US_MAX);

	/* Fields that must agree with each other, or with the machine. */
	if (accept != ACCEPT_HANDOFF && cfg->balance == MTS_BALANCE_LEAST)
		return invalid(why, why_len, "balance 'least' needs accept 'handoff': with '%s' "
			       "the kernel picks the worker", cfg->accept);
	if (accept == ACCEPT_REUSEPORT && cfg->n_listen_fds > 0)
		return invalid(why, why_len, "accept 'reuseport' opens a socket per worker, so it "
			       "cannot use inherited sockets (listen_fds); use 'handoff' or "
			       "'shared'");
	if (inbox_variant_from_name(cfg->dispatch) == INBOX_RING)
		return check_ring_memory(cfg, why, why_len);
	return 0;
}

static int set_up(struct mts_server *s, const struct mts_config *cfg,
		  const struct mts_handler *handler, char *why, size_t why_len)
{
	struct fd_budget budget = { .threads = cfg->threads };
	struct exec_config ecfg = {
		.threads = cfg->threads,
		.variant = (enum inbox_variant)inbox_variant_from_name(cfg->dispatch),
		.inbox_budget = cfg->inbox_budget,
		.spin_us = cfg->spin_us,
		.inbox_capacity = cfg->ring_size,
		.on_stop = on_worker_stop,
		.arg = s,
		.after_first = check_fd_budget,
		.after_first_arg = &budget,
	};
	int rc;

	snprintf(why, why_len, "out of memory");
	if (cfg->max_conns_per_ip > 0 && (rc = iplimit_new(&s->iplimit, cfg->max_conns_per_ip)) < 0)
		return rc;
	s->limit = (struct connlimit){ .max = cfg->max_conns, .on_slot_freed = on_slot_freed,
				       .arg = s };
	if ((rc = retrier_new(&s->retrier)) < 0)
		return rc;
	if ((rc = listen_open(&s->ls, cfg, s->accept == ACCEPT_REUSEPORT ? cfg->threads : 1,
			      s->accept == ACCEPT_REUSEPORT, why, why_len)) < 0)
		return rc;

	/* The main thread's base: the control channel, and the handoff unit. */
	snprintf(why, why_len, "cannot set up the control channel");
	if ((s->base = event_base_new()) == NULL)
		return -ENOMEM;
	if ((rc = wakeup_init(&s->wake, WAKEUP_EVENTFD)) < 0)
		return rc;
	if ((rc = retrier_add(s->retrier, control_retry, s)) < 0)
		return rc;
	s->wake_registered = true;
	s->wake_ev = event_new(s->base, wakeup_fd(&s->wake), EV_READ | EV_PERSIST, on_control, s);
	if (s->wake_ev == NULL || event_add(s->wake_ev, NULL) == -1)
		return -ENOMEM;

	ecfg.retrier = s->retrier;
	budget.before = open_descriptors();
	if ((rc = exec_new(&s->ex, &ecfg, why, why_len)) < 0)
		return rc;

	snprintf(why, why_len, "cannot set up the workers");
	s->sh = (struct conn_shared){
		.handler = *handler,
		.linger_ms = cfg->linger_ms,
		.linger_bytes = cfg->linger_bytes,
		.grace_ms = cfg->shutdown_grace_ms,
		.idle_timeout_s = cfg->idle_timeout_s,
		.limit = &s->limit,
		.iplimit = s->iplimit,
		.ex = s->ex,
	};
	if ((s->homes = calloc(cfg->threads, sizeof(*s->homes))) == NULL)
		return -ENOMEM;
	s->n_workers = cfg->threads;	/* mts_free() copes with homes never set up */
	for (unsigned i = 0; i < s->n_workers; i++)
		if ((rc = conn_home_init(&s->homes[i], &s->sh, i, exec_base(s->ex, i))) < 0)
			return rc;
	snprintf(why, why_len, "cannot set up accepting");
	return start_accepting(s);
}

int mts_new(struct mts_server **out, const struct mts_config *in,
	    const struct mts_handler *handler, char *why, size_t why_len)
{
	struct mts_config cfg;
	struct mts_server *s;
	int rc;

	if ((rc = check_config(in, handler, &cfg, why, why_len)) < 0)
		return rc;
	log_route_libevent();
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	s->cfg = cfg;
	s->cfg.listen = NULL;		/* only needed while opening the listeners */
	s->cfg.listen_fds = NULL;
	s->accept = (enum accept_strategy)strategy_from_name(cfg.accept);
	s->wake.read_fd = s->wake.write_fd = -1;
	if ((rc = set_up(s, &cfg, handler, why, why_len)) < 0) {
		mts_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

size_t mts_listener_count(const struct mts_server *s)
{
	return listen_addresses(&s->ls);
}

const char *mts_listener_name(const struct mts_server *s, size_t i)
{
	return i < listen_addresses(&s->ls) ? s->ls.l[i * s->ls.copies].name : NULL;
}

int mts_run(struct mts_server *s)
{
	int rc = exec_start(s->ex);

	if (rc < 0) {
		log_error("cannot start the workers: %s", strerror(-rc));
	} else {
		/* The control channel (and, for handoff, accepting) until mts_stop(). */
		event_base_dispatch(s->base);
		log_info("stopping: no longer accepting; finishing connections");
	}
	/* "stop" reaches each worker behind what was posted before; with
	 * reuseport and shared, the worker stops its own accepting then. */
	exec_stop(s->ex);
	workq_workers_stopped(&s->workqs);	/* no done can run from here */
	accept_shared_finish(&s->accept_sh);	/* no unit runs any more */
	return rc;
}

void mts_free(struct mts_server *s)
{
	if (s == NULL)
		return;
	if (s->ex != NULL && exec_on_worker(s->ex)) {
		log_error("mts_free() called on one of the server's workers: it would wait for "
			  "that worker to stop; call it from another thread");
		abort();
	}
	if (s->ex != NULL) {
		exec_stop(s->ex);	/* no-op after mts_run() */
		workq_workers_stopped(&s->workqs);
	}
	/* The workers are joined: every unit's thread is done with it. */
	if (s->main_unit_ready)
		accept_unit_destroy(&s->main_unit);
	for (unsigned i = 0; s->waccept != NULL && i < s->n_workers; i++)
		if (s->waccept[i].ready)
			accept_unit_destroy(&s->waccept[i].unit);
	if (s->accept_ready)
		pthread_mutex_destroy(&s->accept_sh.log_lock);
	listen_close(&s->ls);		/* nothing new is accepted from here */
	/* No pool thread posts any more (a pool the program left running, or
	 * one that a mts_workq_free() elsewhere is stopping, would post into
	 * the close below)... */
	workq_stop_all(&s->workqs);
	/* ... and every task still queued is cancelled now (connections are
	 * released, calls and dones get cancelled = 1); no more posts. */
	if (s->ex != NULL)
		exec_close(s->ex);
	/* After the close (cancelled dones touch a queue), and once no thread
	 * is inside mts_workq_free(). */
	workq_free_all(&s->workqs);
	for (unsigned i = 0; s->homes != NULL && i < s->n_workers; i++)
		conn_home_destroy(&s->homes[i]);
	exec_free(s->ex);		/* the workers' bases, after everything on them */
	free(s->homes);
	free(s->waccept);
	iplimit_free(s->iplimit);	/* every connection has released its entry */
	if (s->wake_registered)
		retrier_remove(s->retrier, control_retry, s);
	retrier_free(s->retrier);	/* nothing is left to kick it */
	if (s->wake_ev != NULL)
		event_free(s->wake_ev);
	wakeup_close(&s->wake);
	if (s->base != NULL)
		event_base_free(s->base);
	free(s);
}

/* ---- what the layers below implement ----------------------------------- */

unsigned mts_worker_count(const struct mts_server *s)
{
	return s->n_workers;
}

int mts_post(struct mts_server *s, unsigned worker, mts_call_fn fn, void *arg)
{
	return exec_post_call(s->ex, worker, fn, arg);
}

int mts_post_all(struct mts_server *s, mts_call_fn fn, void *arg)
{
	for (unsigned i = 0; i < s->n_workers; i++) {
		int rc = mts_post(s, i, fn, arg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int mts_workq_new(struct mts_workq **out, struct mts_server *s, unsigned threads)
{
	return workq_new(out, s->ex, &s->workqs, threads);
}

int mts_workq_submit(struct mts_workq *q, unsigned worker, mts_job_fn work,
		     mts_done_fn done, void *arg)
{
	return workq_submit(q, worker, work, done, arg);
}

void mts_workq_free(struct mts_workq *q)
{
	workq_free(q);
}

void mts_before_fork(void)
{
	inbox_before_fork();
}

void mts_after_fork_parent(void)
{
	inbox_after_fork_parent();
}

void mts_after_fork_child(void)
{
	inbox_after_fork_child();
}

/* The levels are the same numbers as log.h's. */
void mts_log_set_level(enum mts_log_level level)
{
	log_set_level((enum log_level)level);
}

void mts_log(enum mts_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg((enum log_level)level, fmt, ap);
	va_end(ap);
}
