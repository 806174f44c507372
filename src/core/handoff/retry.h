/*
 * retry.h - the one place where failed wake-ups are sent again.
 *
 * A wake-up (an eventfd or pipe write) can fail for reasons other than a
 * full fd. The message it stood for is queued already and cannot be taken
 * back, so the wake-up becomes a debt of the object that failed to send it
 * (an inbox; the server's control channel), and somebody must pay it later.
 * That somebody is a retrier: one thread that sleeps until an object kicks
 * it, then calls every registered object's retry function, 1 ms after the
 * kick, then 2, 4, ... ms, clamped at 100 ms, until all of them report
 * their debt paid, and sleeps again.
 *
 * A debt may also be a message that must arrive but that a full inbox
 * refused: the object that kept it registers a function that posts it
 * again. The retrier treats both kinds alike.
 *
 * The retrier knows nothing about what it retries: an object registers a
 * function and an argument, and the function sends what is owed (each unit
 * exactly once, however the object counts it) and returns 0 when nothing
 * more is owed, or a negative errno.
 *
 * Who may call what:
 *   retrier_new, retrier_free   the owner; free once nothing can kick it
 *   retrier_add, retrier_remove any thread but the retrier's own; remove
 *                               returns only once the retrier no longer
 *                               calls that function, so the object may be
 *                               freed right after
 *   retrier_kick                any thread, concurrently; async-signal-safe
 *                               (sem_post), never waits
 */
#ifndef MTS_RETRY_H
#define MTS_RETRY_H

struct retrier;

/* The back-off: an episode's first pass comes RETRY_MIN_MS after the kick
 * that began it, each further pass twice as long after the last, at most
 * RETRY_MAX_MS. */
#define RETRY_MIN_MS 1
#define RETRY_MAX_MS 100

/* Returns 0 when the object owes nothing more, or a negative errno. */
typedef int (*retry_fn)(void *arg);

/* Starts the retrier's thread. Returns 0 or a negative errno. */
int retrier_new(struct retrier **out);
void retrier_free(struct retrier *r);

int retrier_add(struct retrier *r, retry_fn fn, void *arg);
void retrier_remove(struct retrier *r, retry_fn fn, void *arg);

/* Something owes a wake-up: retry soon. */
void retrier_kick(struct retrier *r);

#endif
