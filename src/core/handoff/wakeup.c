/*
 * wakeup.c - eventfd or pipe. See wakeup.h for the contract.
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

static int pipe_init(struct wakeup *wk)
{
	int fds[2];

#ifdef HAVE_PIPE2
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return -errno;
#else
	if (pipe(fds) == -1)
		return -errno;
	for (int i = 0; i < 2; i++) {
		int fl = fcntl(fds[i], F_GETFL);
		if (fl == -1 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) == -1 ||
		    fcntl(fds[i], F_SETFD, FD_CLOEXEC) == -1) {
			int err = errno;
			close(fds[0]);
			close(fds[1]);
			return -err;
		}
	}
#endif
	wk->read_fd = fds[0];
	wk->write_fd = fds[1];
	wk->is_eventfd = false;
	return 0;
}

int wakeup_init(struct wakeup *wk, enum wakeup_kind kind)
{
#ifdef USE_EVENTFD
	if (kind == WAKEUP_EVENTFD) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		if (fd == -1)
			return -errno;
		wk->read_fd = wk->write_fd = fd;
		wk->is_eventfd = true;
		return 0;
	}
#endif
	return pipe_init(wk);
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
	/* An eventfd adds an 8-byte count; a pipe takes one byte, any value. */
	static const uint64_t one = 1;
	size_t len = wk->is_eventfd ? sizeof(one) : 1;

	for (;;) {
		if (write(wk->write_fd, &one, len) != -1)
			return 0;
		if (errno == EINTR)
			continue;
		/* Pipe full or counter saturated: readable already, so the
		 * reader is woken without this signal. */
		if (errno == EAGAIN)
			return 1;
		return -errno;
	}
}

unsigned long wakeup_drain(struct wakeup *wk, uint64_t *reads)
{
	unsigned long total = 0;
	uint64_t unused;

	if (reads == NULL)
		reads = &unused;
	if (wk->is_eventfd) {
		uint64_t count;

		/* One read returns the whole counter and resets it to zero. */
		while (++*reads, read(wk->read_fd, &count, sizeof(count)) == -1)
			if (errno != EINTR)
				return 0;	/* EAGAIN: nothing was pending */
		return (unsigned long)count;
	}
	for (;;) {
		char buf[512];
		ssize_t n = (++*reads, read(wk->read_fd, buf, sizeof(buf)));

		if (n > 0) {
			total += (unsigned long)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		return total;	/* EAGAIN: the pipe is empty */
	}
}
