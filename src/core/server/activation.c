/*
 * activation.c - socket activation: the listening sockets a service
 * manager passed (mts_inherited_fds(), mtserver.h).
 *
 * systemd's protocol (sd_listen_fds(3)): LISTEN_PID names the process the
 * descriptors are for, LISTEN_FDS how many there are, starting at 3. Read
 * directly: a library for two variables is not worth its dependency.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "mtserver.h"

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
