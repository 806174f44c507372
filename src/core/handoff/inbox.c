/*
 * inbox.c - what every handoff variant shares: the wake-up fd and its event
 * in the consumer's loop, the budgeted round, the wake-up debt, statistics,
 * teardown. Contract in inbox.h; the queues are in inbox_wfcq.c,
 * inbox_mutex.c, inbox_vyukov.c, inbox_llist.c, inbox_ring.c and
 * inbox_lfq.c, the spin-then-block strategy in inbox_spin.c, and each
 * argues beside its code why no wake-up is lost.
 *
 * THE ROUND
 *
 *   producer (inbox_post)                  consumer (inbox_round)
 *   P1  enqueue; learn whether to signal   C1  drain the wake-up fd
 *   P2  if so, signal the fd               C2  collect what was posted
 *       (failed: owe it, see below)        C3  handle up to `budget`
 *
 * C1 comes before C2, in every round. The wfcq argument needs it: a signal
 * sent after a splice must not be eaten by that round's drain.
 *
 * ONE ROUND PER PASS OF THE LOOP
 *
 * A round that stops with work left (the budget is spent, or a link inside
 * wfcq's batch is not written yet) must come back without a signal, but
 * only after the loop has polled its other descriptors: the worker's
 * connections live on the same loop. libevent runs every active event of a
 * priority, including one made active again from its own callback, before
 * it polls, so event_active() here would run round after round and starve
 * the sockets for as long as posts keep coming (they did, for seconds, with
 * one thread posting slow calls). Instead the round adds `again`, a timer
 * with a zero timeout: libevent activates expired timers only after its next
 * poll (timeout_process() follows the backend's dispatch), and behind the
 * sockets that poll found ready. A round also deletes `again`, so that a
 * readable fd and an expired timer in one pass make one round, not two.
 * That matters when the first of them does not re-arm (when it does,
 * evtimer_add() on an expired timer takes it off the active queue anyway):
 * without the delete, a socket found readable in the next poll could wait
 * behind three rounds; the model refutes that twin.
 *
 * Chosen by measurement (doc/HANDOFF.md, "The budget"): with one worker
 * flooded by 2 us calls, a 1-byte echo client's round trip went from no
 * reply at all for 5 s (event_active) to a p50 of 0.155 ms with the timer,
 * against 0.29 ms for the two other ways that work: a limit of one callback
 * per pass (event_config_set_max_dispatch_interval(), which is also a
 * setting of the whole event_base, the worker's and not the inbox's) and
 * signalling our own fd (a write() per re-arm). The timer wins because
 * libevent queues expired timers behind the sockets that the same poll
 * found ready; with the other two the round often runs first. Burst
 * throughput (handoff-bench) was the same for all within noise. Event
 * priorities alone do not help: a re-activated event still runs again
 * within its own priority's pass.
 *
 * Which re-arms the argument needs (each variant's file has the reasons):
 * after the budget, yes (the signals for the rest were drained already);
 * after a WOULDBLOCK whose producer will not signal (INBOX_WOULDBLOCK:
 * wfcq inside its batch, vyukov stuck on a message node, llist, ring's
 * NULL slot), yes;
 * after one whose producer still owes its signal
 * (INBOX_WOULDBLOCK_SIGNAL_DUE: wfcq-always, vyukov stuck on its stub; and
 * wfcq's splice, which reports it through collect()), no: the round ends
 * (or goes on with what an earlier round left in the batch) instead of
 * spinning while that producer is off its CPU. spin-then-block re-arms
 * when its queue runs dry a second time in a round (it polls once per
 * round, inbox_spin.c), and never for a WOULDBLOCK: its handshake makes
 * that producer signal.
 *
 * A variant whose elision needs more than these rules has an end_round op,
 * called after the round's last next(), whose true asks for the re-arm too.
 * ring and lfq have one (inbox_count.h): it counts the messages posted and
 * not yet taken, a post signals when it finds the count at zero, and the round
 * subtracts what it took; what is left counted above zero was posted by
 * producers that did not signal, so the round re-arms for it. The rules
 * above still hold for the others, which have no end_round.
 *
 * A REFUSED POST
 *
 * A variant refuses a post when it has no room for it (ring: full; lfq:
 * no memory for the post's node): enqueue() returns -ENOBUFS having
 * changed nothing, and inbox_post() returns that
 * at once, sends no signal and owes none. Posting still never waits: a
 * worker that posted to its own full inbox and waited for room would wait
 * for itself. What to do with the message is the caller's (inbox.h).
 *
 * THE WAKE-UP DEBT
 *
 * A signal that cannot be written (any error but a full fd, which is
 * readable and so already a pending wake-up) is owed: the message stays
 * queued, `owed` counts the signal (owed.h: the helper the control channel
 * uses too), and inbox_retry_wakeups() sends it later; until then the
 * message waits. The inbox's retrier (retry.h, one thread for every inbox
 * of a server) is kicked after the debt is recorded and retries 1 ms
 * later, then backs off; no poster retries on its own. A retry claims one
 * unit before it sends and gives it back if the send fails, so concurrent
 * retriers send exactly as many signals as were owed, never more. The
 * count releases, and the claim acquires, the post's enqueue: the
 * retrier's signal then comes after the link it stands for, which is what
 * the wfcq argument assumes of every signal.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "counter.h"
#include "fault.h"
#include "inbox_impl.h"
#include "owed.h"
#include "retry.h"

static const struct inbox_ops *const variants[INBOX_N_VARIANTS] = {
	[INBOX_WFCQ] = &inbox_wfcq_ops,
	[INBOX_MUTEX_EVENTFD] = &inbox_mutex_eventfd_ops,
	[INBOX_MUTEX_PIPE] = &inbox_mutex_pipe_ops,
	[INBOX_MUTEX_ELIDE] = &inbox_mutex_elide_ops,
	[INBOX_WFCQ_ALWAYS] = &inbox_wfcq_always_ops,
	[INBOX_VYUKOV] = &inbox_vyukov_ops,
	[INBOX_LLIST] = &inbox_llist_ops,
	[INBOX_RING] = &inbox_ring_ops,
	[INBOX_LFQ] = &inbox_lfq_ops,
	[INBOX_SPIN] = &inbox_spin_ops,
};

static const char *const variant_names[INBOX_N_VARIANTS] = {
	[INBOX_WFCQ] = "wfcq",
	[INBOX_MUTEX_EVENTFD] = "mutex-eventfd",
	[INBOX_MUTEX_PIPE] = "mutex-pipe",
	[INBOX_MUTEX_ELIDE] = "mutex-elide",
	[INBOX_WFCQ_ALWAYS] = "wfcq-always",
	[INBOX_VYUKOV] = "vyukov",
	[INBOX_LLIST] = "llist",
	[INBOX_RING] = "ring",
	[INBOX_LFQ] = "lfq",
	[INBOX_SPIN] = "spin-then-block",
};

const char *inbox_variant_name(enum inbox_variant v)
{
	return (unsigned)v < INBOX_N_VARIANTS ? variant_names[v] : "?";
}

int inbox_variant_from_name(const char *name)
{
	for (int v = 0; v < INBOX_N_VARIANTS; v++)
		if (strcmp(variant_names[v], name) == 0)
			return v;
	return -1;
}

const struct inbox_ops *inbox_variant_ops(enum inbox_variant v)
{
	return (unsigned)v < INBOX_N_VARIANTS ? variants[v] : NULL;
}

static void inbox_on_wakeup(evutil_socket_t fd, short what, void *arg);
static void inbox_on_again(evutil_socket_t fd, short what, void *arg);

static int inbox_make(struct inbox **out, const struct inbox_ops *ops,
		      struct event_base *base, inbox_handler_fn handler, void *arg,
		      unsigned budget, unsigned capacity);

int inbox_new(struct inbox **out, enum inbox_variant variant, struct event_base *base,
	      inbox_handler_fn handler, void *arg, unsigned budget)
{
	return inbox_new_bounded(out, variant, base, handler, arg, budget, 0);
}

int inbox_new_bounded(struct inbox **out, enum inbox_variant variant,
		      struct event_base *base, inbox_handler_fn handler, void *arg,
		      unsigned budget, unsigned capacity)
{
	if ((unsigned)variant >= INBOX_N_VARIANTS)
		return -EINVAL;
	return inbox_make(out, variants[variant], base, handler, arg, budget, capacity);
}

int inbox_new_with_ops(struct inbox **out, const struct inbox_ops *ops,
		       struct event_base *base, inbox_handler_fn handler, void *arg,
		       unsigned budget)
{
	return inbox_make(out, ops, base, handler, arg, budget, 0);
}

/* capacity 0: the ops' own (which may be 0 too: the variant's default). */
static int inbox_make(struct inbox **out, const struct inbox_ops *ops,
		      struct event_base *base, inbox_handler_fn handler, void *arg,
		      unsigned budget, unsigned capacity)
{
	struct inbox *ib;
	int rc;

	/* Over-aligned (cache lines): calloc() only promises 16 bytes. */
	rc = posix_memalign((void **)&ib, CACHE_LINE, ops->size);
	if (rc != 0)
		return -rc;
	memset(ib, 0, ops->size);
	ib->ops = ops;
	ib->handler = handler;
	ib->arg = arg;
	ib->budget = budget ? budget : 1;
	ib->capacity = capacity ? capacity : ops->capacity;
	ib->wake.read_fd = ib->wake.write_fd = -1;
	if ((rc = ops->init(ib)) < 0) {
		free(ib);
		return rc;
	}
	if ((rc = wakeup_init(&ib->wake, ops->wakeup)) < 0)
		goto fail;
	rc = -ENOMEM;
	ib->ev = event_new(base, wakeup_fd(&ib->wake), EV_READ | EV_PERSIST, inbox_on_wakeup, ib);
	ib->again = evtimer_new(base, inbox_on_again, ib);
	if (ib->ev == NULL || ib->again == NULL || event_add(ib->ev, NULL) == -1)
		goto fail;
	*out = ib;
	return 0;
fail:
	if (ib->ev != NULL)
		event_free(ib->ev);
	if (ib->again != NULL)
		event_free(ib->again);
	wakeup_close(&ib->wake);
	if (ops->fini != NULL)
		ops->fini(ib);
	free(ib);
	return rc;
}

static int send_wakeup(struct inbox *ib)
{
	int rc;

	if (fault_hit(FAULT_WAKEUP_WRITE))
		return -EIO;
	atomic_fetch_add_explicit(&ib->writes, 1, memory_order_relaxed);
	rc = wakeup_signal(&ib->wake);
	if (rc == 1) {		/* full: a wake-up is pending already */
		atomic_fetch_add_explicit(&ib->full, 1, memory_order_relaxed);
		rc = 0;
	}
	/* -ENOBUFS means "not queued" to inbox_post()'s caller: a wake-up
	 * failure must never look like that. */
	return rc == -ENOBUFS ? -EIO : rc;
}

int inbox_post(struct inbox *ib, struct inbox_msg *msg)
{
	int rc = ib->ops->enqueue(ib, msg);	/* P1 */

	if (rc == -ENOBUFS) {	/* full: not queued, nothing owed */
		atomic_fetch_add_explicit(&ib->refused, 1, memory_order_relaxed);
		return rc;
	}
	if (rc == INBOX_RIDE)
		return 0;	/* rides along on a wake-up already on its way */
	rc = send_wakeup(ib);			/* P2 */
	if (rc < 0)	/* owed; release: the retrier's signal follows P1 */
		owed_incur(&ib->owed, ib->retrier);
	return rc;
}

static int send_owed(void *arg)
{
	return send_wakeup(arg);
}

int inbox_retry_wakeups(struct inbox *ib)
{
	return owed_pay(&ib->owed, send_owed, ib);
}

static int retry_adapter(void *arg)
{
	return inbox_retry_wakeups(arg);
}

int inbox_set_retrier(struct inbox *ib, struct retrier *r)
{
	int rc = retrier_add(r, retry_adapter, ib);

	if (rc == 0)
		ib->retrier = r;
	return rc;
}

/* Runs on the consumer thread only: the single-consumer rule of inbox.h. */
static void inbox_round(struct inbox *ib)
{
	static const struct timeval now = { 0, 0 };
	struct inbox_msg *msg;
	unsigned long signals;
	uint64_t handled = 0, reads = 0;
	unsigned dry_spells = 0;	/* before_sleep calls this round */
	bool rearm = false;

	event_del(ib->again);			/* one round per pass */
	signals = wakeup_drain(&ib->wake, &reads);	/* C1: always first */
	/* Counted before the handlers run: whoever learns from a handler that
	 * a message was handled then sees this round's drain counted too. */
	counter_add(&ib->wakeups, signals);
	counter_add(&ib->reads, reads);
	if (ib->ops->collect != NULL && !ib->ops->collect(ib))	/* C2 */
		counter_add(&ib->wouldblock, 1);	/* its producer owes a signal */
	while (handled < ib->budget) {		/* C3 */
		msg = ib->ops->next(ib);
		if (msg == INBOX_WOULDBLOCK || msg == INBOX_WOULDBLOCK_SIGNAL_DUE) {
			counter_add(&ib->wouldblock, 1);
			counter_add(&ib->wouldblock_batch, 1);
			/* Re-arm only for a producer that will not signal; a
			 * sleeping handshake makes it signal (inbox_spin.c). */
			if (msg == INBOX_WOULDBLOCK && ib->ops->before_sleep == NULL) {
				rearm = true;
				break;
			}
			msg = NULL;
		}
		/* Nothing more now: spin-then-block polls (once per round),
		 * then says that it sleeps, unless something came. */
		if (msg == NULL && ib->ops->before_sleep != NULL)
			msg = ib->ops->before_sleep(ib, !dry_spells++);
		if (msg == INBOX_WOULDBLOCK) {
			rearm = true;	/* polled already: after the loop's poll */
			break;
		}
		if (msg == NULL)
			break;
		ib->handler(msg, ib->arg);
		handled++;
	}
	if (handled == ib->budget)
		rearm = true;	/* perhaps more, and their signals are drained */
	if (ib->ops->end_round != NULL && ib->ops->end_round(ib))
		rearm = true;	/* ring: counted posts that did not signal */

	counter_add(&ib->handled, handled);
	counter_add(&ib->rounds, 1);
	if (handled > counter_get(&ib->largest_batch))
		counter_set(&ib->largest_batch, handled);
	if (rearm)
		evtimer_add(ib->again, &now);	/* after the next poll */
}

static void inbox_on_wakeup(evutil_socket_t fd, short what, void *arg)
{
	inbox_round(arg);
}

static void inbox_on_again(evutil_socket_t fd, short what, void *arg)
{
	inbox_round(arg);
}

void inbox_free(struct inbox *ib, inbox_handler_fn dispose, void *arg)
{
	struct inbox_msg *msg;

	if (ib == NULL)
		return;
	if (ib->retrier != NULL)	/* returns once the retrier lets go of it */
		retrier_remove(ib->retrier, retry_adapter, ib);
	event_free(ib->ev);
	event_free(ib->again);
	while ((msg = ib->ops->leftover(ib)) != NULL)
		if (dispose != NULL)
			dispose(msg, arg);
	wakeup_close(&ib->wake);
	if (ib->ops->fini != NULL)
		ib->ops->fini(ib);
	free(ib);
}

void inbox_set_spin_us(struct inbox *ib, unsigned us)
{
	ib->spin_ns = (uint64_t)us * 1000;
}

void inbox_get_stats(const struct inbox *ib, struct inbox_stats *st)
{
	st->handled = counter_get(&ib->handled);
	st->wakeups = counter_get(&ib->wakeups);
	st->full = atomic_load_explicit(&ib->full, memory_order_relaxed);
	st->writes = atomic_load_explicit(&ib->writes, memory_order_relaxed);
	/* A signal a full fd dropped was sent, in effect: not a ride-along. */
	st->wakeups_saved = st->handled > st->wakeups + st->full ?
		     st->handled - st->wakeups - st->full : 0;
	st->rounds = counter_get(&ib->rounds);
	st->reads = counter_get(&ib->reads);
	st->largest_batch = counter_get(&ib->largest_batch);
	st->wouldblock = counter_get(&ib->wouldblock);
	st->wouldblock_batch = counter_get(&ib->wouldblock_batch);
	st->owed = owed_count(&ib->owed);
	st->refused = atomic_load_explicit(&ib->refused, memory_order_relaxed);
}
