/*
 * config.c - struct mts_config: its defaults, and the rules mts_new()
 * checks before it builds anything (written above struct mts_config in
 * mtserver.h). The only place that judges a configuration.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cidr.h"
#include "server.h"
#include "strategy.h"

/* The string fields' defaults: mts_config_defaults() fills them in, and
 * server_check_config() reads a NULL as them. */
#define DEFAULT_PORT "5555"
#define DEFAULT_DISPATCH "wfcq"
#define DEFAULT_ACCEPT "handoff"	/* accept_strategy_at(0) */
#define DEFAULT_PROXY_FROM "127.0.0.0/8,::1,unix"
#define PROXY_TIMEOUT_MAX_MS 3600000u

const char *mts_dispatch_name(unsigned i)
{
	const struct inbox_ops *v = inbox_variant_at(i);

	return v != NULL ? inbox_variant_name(v) : NULL;
}

int mts_dispatch_options(unsigned i, char *buf, size_t len)
{
	const struct inbox_ops *v = inbox_variant_at(i);
	const struct inbox_option *o;
	unsigned n;
	size_t at = 0;

	if (v == NULL)
		return -1;
	o = inbox_variant_options(v, &n);
	if (len > 0)
		buf[0] = '\0';
	for (unsigned k = 0; k < n && at < len; k++) {
		int w = snprintf(buf + at, len - at, "%s=%lu  %lu..%lu%s  %s\n", o[k].key, o[k].def,
				 o[k].min, o[k].max, o[k].power_of_two ? ", a power of two" : "",
				 o[k].what);
		if (w < 0)
			break;
		at += (size_t)w;
	}
	return (int)n;
}

int mts_dispatch_check(const char *dispatch, char *why, size_t why_len)
{
	struct inbox_spec spec;

	return inbox_spec_parse(&spec, dispatch != NULL ? dispatch : DEFAULT_DISPATCH, why,
				why_len);
}

const char *mts_accept_name(unsigned i)
{
	const struct accept_strategy *st = accept_strategy_at(i);

	return st != NULL ? st->name : NULL;
}


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
		.balance = MTS_BALANCE_DEFAULT,
		.dispatch = DEFAULT_DISPATCH,
		.accept = DEFAULT_ACCEPT,
		.proxy_timeout_ms = 3000,
		.udp_max = 65535,
		.udp_rate = 100,
	};
}

/* Writes *why and returns -EINVAL: every refusal of server_check_config(). */
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
 * The inboxes must fit: a bounded variant's inbox can come to hold its
 * whole capacity (ring: a pointer per slot, touched as messages pass,
 * inbox_ring.c). Inboxes that could never fit in physical memory are
 * refused before anything is allocated; the total is at most 2^32 x 2^24 x
 * 8 bytes, which fits in 64 bits.
 */
static int check_inbox_memory(const struct mts_config *cfg, const struct inbox_spec *spec,
			      char *why, size_t why_len)
{
	uint64_t each = inbox_spec_memory(spec), need = (uint64_t)cfg->threads * each;
	uint64_t have = physical_memory();
	char need_s[32], have_s[32], each_s[32];

	if (have == 0 || need <= have)
		return 0;
	format_size(need, need_s, sizeof(need_s));
	format_size(have, have_s, sizeof(have_s));
	format_size(each, each_s, sizeof(each_s));
	return invalid(why, why_len, "inboxes too large: %u threads x %s each (dispatch %s) "
		       "= %s, more than this machine's memory (%s); use fewer threads or a "
		       "smaller size", cfg->threads, each_s, cfg->dispatch, need_s, have_s);
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

/* The PROXY protocol's fields, when it is on (cfg->proxy_from filled in). */
static int check_proxy(const struct mts_config *cfg, char *why, size_t why_len)
{
	struct cidr_list from;
	char what[200];
	int rc;

	if (cfg->proxy_protocol == 0)
		return 0;
	if (cfg->proxy_protocol != 1)
		return invalid(why, why_len, "proxy_protocol is %d: 0 (off) or 1 (on)",
			       cfg->proxy_protocol);
	if (cfg->proxy_timeout_ms < 1 || cfg->proxy_timeout_ms > PROXY_TIMEOUT_MAX_MS)
		return invalid(why, why_len, "proxy_timeout_ms is %u: it must be from 1 to %u",
			       cfg->proxy_timeout_ms, PROXY_TIMEOUT_MAX_MS);
	rc = cidr_list_parse(&from, cfg->proxy_from, what, sizeof(what));
	cidr_list_free(&from);
	if (rc == -EINVAL)
		return invalid(why, why_len, "proxy_from: %s", what);
	if (rc < 0)
		snprintf(why, why_len, "%s", what);
	return rc;
}

/* UDP's fields, once UDP is served: by udp, or by an inherited datagram
 * socket (which only set_up() sees: it calls this too). */
int server_check_udp(const struct mts_config *cfg, const struct mts_handler *handler,
		     char *why, size_t why_len)
{
	if (cfg->udp_max < 1 || cfg->udp_max > 65535)
		return invalid(why, why_len, "udp_max is %u: it must be from 1 to 65535",
			       cfg->udp_max);
	if (handler->on_datagram == NULL)
		return invalid(why, why_len, "UDP is served but the handler's on_datagram "
			       "is NULL");
	return 0;
}

/* udp is 0 or 1, and when it is 1, server_check_udp(). */
static int check_udp(const struct mts_config *cfg, const struct mts_handler *handler,
		     char *why, size_t why_len)
{
	if (cfg->udp != 0 && cfg->udp != 1)
		return invalid(why, why_len, "udp is %d: 0 (off) or 1 (on)", cfg->udp);
	return cfg->udp ? server_check_udp(cfg, handler, why, why_len) : 0;
}

/*
 * The configuration mts_new() works from: `in` with its defaults filled in
 * (a NULL string), every field checked by the rule written
 * above struct mts_config (mtserver.h), and the handler's callbacks.
 * Returns 0, or -EINVAL with *why naming the field. The only place that
 * judges a configuration: everything after it may trust *cfg, and
 * *strategy is the one cfg->accept names.
 */
int server_check_config(const struct mts_config *in, const struct mts_handler *handler,
			struct mts_config *cfg, const struct accept_strategy **strategy,
			struct inbox_spec *inbox, char *why, size_t why_len)
{
	int rc;

	if (in == NULL)
		return invalid(why, why_len, "cfg is NULL (mts_config_defaults() fills one in)");
	if (handler == NULL)
		return invalid(why, why_len, "handler is NULL");
	if (handler->on_open == NULL || handler->on_shutdown == NULL || handler->on_close == NULL)
		return invalid(why, why_len, "handler's %s is NULL: the core calls all three",
			       handler->on_open == NULL ? "on_open" :
			       handler->on_shutdown == NULL ? "on_shutdown" : "on_close");

	/* A NULL string means its default. */
	*cfg = *in;
	if (cfg->port == NULL)
		cfg->port = DEFAULT_PORT;
	if (cfg->dispatch == NULL)
		cfg->dispatch = DEFAULT_DISPATCH;
	if (cfg->accept == NULL)
		cfg->accept = DEFAULT_ACCEPT;
	if (cfg->proxy_from == NULL)
		cfg->proxy_from = DEFAULT_PROXY_FROM;

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
	if (inbox_spec_parse(inbox, cfg->dispatch, why, why_len) < 0)
		return -EINVAL;		/* *why names the variant or the option */
	if ((*strategy = accept_strategy_find(cfg->accept)) == NULL)
		return invalid(why, why_len, "unknown accept strategy '%s'", cfg->accept);

	/* Numbers are in their ranges. */
	if (cfg->threads < 1)
		return invalid(why, why_len, "threads is 0: a server needs at least one worker");
	if (cfg->backlog < 1)
		return invalid(why, why_len, "backlog is %d: it must be at least 1", cfg->backlog);
	if (cfg->inbox_budget < 1)
		return invalid(why, why_len, "inbox_budget is 0: a worker must handle at least "
			       "one message per loop turn");
	if (cfg->balance != MTS_BALANCE_DEFAULT && cfg->balance != MTS_BALANCE_RR &&
	    cfg->balance != MTS_BALANCE_LEAST)
		return invalid(why, why_len, "balance is %d: not MTS_BALANCE_DEFAULT, "
			       "MTS_BALANCE_RR or MTS_BALANCE_LEAST", (int)cfg->balance);
	if ((rc = check_proxy(cfg, why, why_len)) < 0)
		return rc;
	if ((rc = check_udp(cfg, handler, why, why_len)) < 0)
		return rc;

	/* Fields that must agree with each other, or with the machine. */
	if (!(*strategy)->picks_worker && cfg->balance != MTS_BALANCE_DEFAULT)
		return invalid(why, why_len, "balance '%s' needs accept 'handoff': with '%s' "
			       "the kernel picks the worker", cfg->balance == MTS_BALANCE_RR ?
			       "rr" : "least", cfg->accept);
	if ((*strategy)->socket_per_worker && cfg->n_listen_fds > 0)
		return invalid(why, why_len, "accept '%s' opens a socket per worker, so it "
			       "cannot use inherited sockets (listen_fds); use 'handoff' or "
			       "'shared'", cfg->accept);
	return check_inbox_memory(cfg, inbox, why, why_len);
}
