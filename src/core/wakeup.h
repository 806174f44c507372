/*
 * wakeup.h - a counter one thread can signal and another can poll: an eventfd,
 * or a pipe where eventfd does not exist (configure decides, USE_EVENTFD).
 *
 * The reading side (wakeup_fd()) is what an event loop registers for EV_READ.
 * It is readable exactly while at least one wakeup_signal() has happened
 * since the last wakeup_drain().
 *
 * Who may call what:
 *   wakeup_init, wakeup_close   the owner, while no other thread uses it
 *   wakeup_signal               any thread, concurrently
 *   wakeup_drain                the single reader
 *
 * Ordering: signal and drain are system calls on one kernel object; a signal
 * that returns before a drain starts is seen by that drain, and a signal that
 * starts after a drain has returned leaves the fd readable again. The lost
 * wake-up argument in inbox.c relies on exactly this and on nothing more.
 */
#ifndef ECHOSERVER_WAKEUP_H
#define ECHOSERVER_WAKEUP_H

struct wakeup {
	int read_fd;	/* eventfd, or the read end of the pipe */
	int write_fd;	/* same eventfd, or the write end of the pipe */
};

/* Returns 0 or a negative errno. Both fds are non-blocking and close-on-exec. */
int wakeup_init(struct wakeup *wk);
void wakeup_close(struct wakeup *wk);

static inline int wakeup_fd(const struct wakeup *wk)
{
	return wk->read_fd;
}

/*
 * Makes the fd readable. Returns 0, or a negative errno on a failure that
 * means the reader will not be woken (never -EAGAIN: a full eventfd counter or
 * pipe is already readable, so that signal is not needed).
 */
int wakeup_signal(struct wakeup *wk);

/* Consumes every pending signal; returns how many were seen (pipe: bytes). */
unsigned long wakeup_drain(struct wakeup *wk);

#endif
