/*
 * wakeup.h - a counter one thread can signal and another can poll: an
 * eventfd, or a pipe (where eventfd does not exist, or when asked for).
 *
 * The reading side (wakeup_fd()) is what an event loop registers for EV_READ.
 * It is readable exactly while at least one wakeup_signal() has happened
 * since the last wakeup_drain().
 *
 * Who may call what:
 *   wakeup_init, wakeup_close   the owner, while no other thread uses it
 *   wakeup_signal               any thread, concurrently; async-signal-safe
 *   wakeup_drain                the single reader
 *
 * Ordering: signal and drain are system calls on one kernel object; a signal
 * that returns before a drain starts is seen by that drain, and a signal that
 * starts after a drain has returned leaves the fd readable again. The lost
 * wake-up argument in inbox_wfcq.c relies on exactly this and nothing more.
 */
#ifndef MTS_WAKEUP_H
#define MTS_WAKEUP_H

#include <stdbool.h>
#include <stdint.h>

enum wakeup_kind {
	WAKEUP_EVENTFD,		/* an eventfd where the system has one, else a pipe */
	WAKEUP_PIPE,		/* always a pipe: one byte per signal */
};

struct wakeup {
	int read_fd;		/* eventfd, or the read end of the pipe */
	int write_fd;		/* same eventfd, or the write end of the pipe */
	bool is_eventfd;
};

/* Returns 0 or a negative errno. Both fds are non-blocking and close-on-exec. */
int wakeup_init(struct wakeup *wk, enum wakeup_kind kind);
void wakeup_close(struct wakeup *wk);

static inline int wakeup_fd(const struct wakeup *wk)
{
	return wk->read_fd;
}

/*
 * Makes the fd readable, and never blocks. Returns 0 when the signal was
 * written; 1 when the fd was already full (a pipe holding its 64 KiB, an
 * eventfd counter at its maximum): a full fd is readable, so a wake-up is
 * pending anyway; or a negative errno on a failure that means the reader
 * will not be woken.
 *
 * A signal is a wake-up, not a count the reader relies on: a full fd drops
 * it. Readers learn how much work waits from their queue, not from the
 * number of signals (the inboxes take or pop until their queue is empty).
 * That is what lets a signal never block, even on the reader's own thread:
 * a blocking write to a full pipe whose only reader is the writer itself
 * would wait forever.
 */
int wakeup_signal(struct wakeup *wk);

/*
 * Consumes every pending signal; returns how many there were (an eventfd's
 * counter is the number of signals; a pipe holds one byte per signal), for
 * statistics. Adds the read() calls it made to *reads, if not NULL.
 */
unsigned long wakeup_drain(struct wakeup *wk, uint64_t *reads);

#endif
