/*
 * server_sockets.c - the server's sockets: the listening ones and UDP's
 * opened together (listen.c opens each), and UDP's readers put on the
 * workers (udp.c reads them). The server's lifecycle is server.c's.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/*
 * The sockets: the listening ones, and UDP's (cfg->udp: one per worker and
 * address, on the port TCP got; or the datagram sockets among those
 * inherited). With port 0 the port TCP was given may be held by another
 * program's UDP socket: then both are opened again, on another port.
 */
int server_open_sockets(struct mts_server *s, const struct mts_config *cfg, char *why,
			size_t why_len)
{
	bool per_worker = s->strategy->socket_per_worker;
	int rc;

	for (int tries = 0;; tries++) {
		if ((rc = listen_open(&s->ls, &s->uls, cfg, per_worker ? cfg->threads : 1,
				      per_worker, why, why_len)) < 0)
			return rc;
		if (cfg->n_listen_fds > 0 || !cfg->udp)
			break;
		rc = listen_open_udp(&s->uls, &s->ls, cfg->threads, why, why_len);
		if (rc != -EADDRINUSE || strcmp(cfg->port, "0") != 0 || tries == 7)
			return rc;
		listen_close(&s->ls);
	}
	if (cfg->udp && s->uls.n == 0) {
		snprintf(why, why_len, "udp is on, but no inherited socket is a datagram socket "
			 "(a socket unit's ListenDatagram=)");
		return -EINVAL;
	}
	return 0;
}

/*
 * UDP, when it is served: each worker's reader on its base. A worker
 * reads its own copy of each address; an inherited socket, which the
 * kernel cannot spread, is read by one worker (socket a by worker
 * a mod n): every worker waiting on it would wake for each datagram, and
 * all but one find nothing. After the homes (their state).
 */
int server_start_udp(struct mts_server *s, const struct mts_config *cfg,
		     const struct mts_handler *handler, char *why, size_t why_len)
{
	size_t n_addr = listen_addresses(&s->uls);
	int rc, *fds;

	if (s->uls.n == 0)
		return 0;
	if ((rc = server_check_udp(cfg, handler, why, why_len)) < 0)
		return rc;
	s->udp = (struct udp_shared){ .on_datagram = handler->on_datagram, .arg = handler->arg,
				      .max = cfg->udp_max, .rate_on = cfg->udp_rate > 0 };
	snprintf(why, why_len, "out of memory");
	if (s->udp.rate_on && (rc = udp_rate_init(&s->udp.rate, cfg->udp_rate)) < 0)
		return rc;
	if ((s->udp_homes = calloc(s->n_workers, sizeof(*s->udp_homes))) == NULL ||
	    (fds = calloc(n_addr, sizeof(*fds))) == NULL)
		return -ENOMEM;
	rc = 0;
	for (unsigned w = 0; w < s->n_workers && rc == 0; w++) {
		size_t n = 0;

		for (size_t a = 0; a < n_addr; a++)
			if (cfg->n_listen_fds == 0)	/* its own copy */
				fds[n++] = s->uls.l[a * s->uls.copies + w].fd;
			else if (a % s->n_workers == w)
				fds[n++] = s->uls.l[a].fd;
		rc = udp_home_init(&s->udp_homes[w], &s->udp, w, exec_base(s->ex, w), fds, n,
				   &s->homes[w].state);
	}
	free(fds);
	return rc;
}

const char *mts_udp_name(const struct mts_server *s, size_t i)
{
	return i < listen_addresses(&s->uls) ? s->uls.l[i * s->uls.copies].name : NULL;
}
