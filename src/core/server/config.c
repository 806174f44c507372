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

#include "server.h"
#include "strategy.h"

const char *mts_dispatch_name(unsigned i)
{
	return i < INBOX_N_VARIANTS ? inbox_variant_name((enum inbox_variant)i) : NULL;
}

const char *mts_accept_name(unsigned i)
{
	const struct accept_strategy *st = accept_strategy_at(i);

	return st != NULL ? st->name : NULL;
}

/* The string fields' defaults: mts_config_defaults() fills them in, and
 * server_check_config() reads a NULL as them. */
#define DEFAULT_PORT "5555"
#define DEFAULT_DISPATCH "wfcq"
#define DEFAULT_ACCEPT "handoff"	/* accept_strategy_at(0) */

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

/* The public limit is the handoff layer's. */
_Static_assert(MTS_RING_SIZE_MAX == INBOX_RING_MAX, "MTS_RING_SIZE_MAX is INBOX_RING_MAX");

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
 * judges a configuration: everything after it may trust *cfg, and
 * *strategy is the one cfg->accept names.
 */
int server_check_config(const struct mts_config *in, const struct mts_handler *handler,
			struct mts_config *cfg, const struct accept_strategy **strategy,
			char *why, size_t why_len)
{
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
	if (!(*strategy)->picks_worker && cfg->balance == MTS_BALANCE_LEAST)
		return invalid(why, why_len, "balance 'least' needs accept 'handoff': with '%s' "
			       "the kernel picks the worker", cfg->accept);
	if ((*strategy)->socket_per_worker && cfg->n_listen_fds > 0)
		return invalid(why, why_len, "accept '%s' opens a socket per worker, so it "
			       "cannot use inherited sockets (listen_fds); use 'handoff' or "
			       "'shared'", cfg->accept);
	if (inbox_variant_from_name(cfg->dispatch) == INBOX_RING)
		return check_ring_memory(cfg, why, why_len);
	return 0;
}
