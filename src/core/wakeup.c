/*
 * wakeup.c - eventfd with a pipe fallback. See wakeup.h for the contract.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#ifdef USE_EVENTFD
#include <sys/eventfd.h>
#endif

#include "wakeup.h"

#ifndef USE_EVENTFD
static int set_flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return -errno;
	return 0;
}
#endif

int wakeup_init(struct wakeup *wk)
{
#ifdef USE_EVENTFD
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd == -1)
		return -errno;
	wk->read_fd = wk->write_fd = fd;
	return 0;
#else
	int fds[2], rc;

	if (pipe(fds) == -1)
		return -errno;
	if ((rc = set_flags(fds[0])) < 0 || (rc = set_flags(fds[1])) < 0) {
		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	wk->read_fd = fds[0];
	wk->write_fd = fds[1];
	return 0;
#endif
}

void wakeup_close(struct wakeup *wk)
{
	if (wk->write_fd != wk->read_fd && wk->write_fd >= 0)
		close(wk->write_fd);
	if (wk->read_fd >= 0)
		close(wk->read_fd);
	wk->read_fd = wk->write_fd = -1;
}

int wakeup_signal(struct wakeup *wk)
{
#ifdef USE_EVENTFD
	uint64_t one = 1;
	const void *buf = &one;
	size_t len = sizeof(one);
#else
	const char one = 1;
	const void *buf = &one;
	size_t len = 1;
#endif
	for (;;) {
		if (write(wk->write_fd, buf, len) != -1)
			return 0;
		if (errno == EINTR)
			continue;
		/* Counter saturated or pipe full: the reader is already woken. */
		if (errno == EAGAIN)
			return 0;
		return -errno;
	}
}

unsigned long wakeup_drain(struct wakeup *wk)
{
#ifdef USE_EVENTFD
	uint64_t count;

	/* One read returns the whole counter and resets it to zero. */
	while (read(wk->read_fd, &count, sizeof(count)) == -1) {
		if (errno != EINTR)
			return 0;	/* EAGAIN: nothing was pending */
	}
	return (unsigned long)count;
#else
	char buf[256];
	unsigned long total = 0;
	ssize_t n;

	for (;;) {
		n = read(wk->read_fd, buf, sizeof(buf));
		if (n > 0) {
			total += (unsigned long)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		return total;	/* EAGAIN: the pipe is empty */
	}
#endif
}
