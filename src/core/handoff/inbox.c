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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "counter.h"
#include "fault.h"
#include "inbox_impl.h"
#include "owed.h"
#include "retry.h"

/*
 * THE VARIANTS: the one list. A variant is its own file (its struct
 * inbox_ops, with its name, traits and options) and a line here; the
 * first is the default.
 */
static const struct inbox_ops *const variants[] = {
	&inbox_wfcq_ops,
	&inbox_mutex_eventfd_ops,
	&inbox_mutex_pipe_ops,
	&inbox_mutex_elide_ops,
	&inbox_wfcq_always_ops,
	&inbox_vyukov_ops,
	&inbox_llist_ops,
	&inbox_ring_ops,
	&inbox_lfq_ops,
	&inbox_spin_ops,
};

#define N_VARIANTS (sizeof(variants) / sizeof(variants[0]))

const struct inbox_ops *inbox_variant_at(unsigned i)
{
	return i < N_VARIANTS ? variants[i] : NULL;
}

const struct inbox_ops *inbox_variant_find(const char *name)
{
	for (size_t i = 0; i < N_VARIANTS; i++)
		if (strcmp(variants[i]->name, name) == 0)
			return variants[i];
	return NULL;
}

const char *inbox_variant_name(const struct inbox_ops *v)
{
	return v->name;
}

void inbox_variant_traits(const struct inbox_ops *v, struct inbox_traits *out)
{
	*out = (struct inbox_traits){
		.elides = !v->every_post_signals,
		.bounded = v->bounded,
		.allocates = v->allocates,
		.needs_rcu = v->needs_rcu,
	};
}

const struct inbox_option *inbox_variant_options(const struct inbox_ops *v, unsigned *n)
{
	*n = v->n_options;
	return v->options;
}

/* ---- a variant's settings ---------------------------------------------- */

void inbox_spec_default(struct inbox_spec *spec, const struct inbox_ops *v)
{
	*spec = (struct inbox_spec){ .ops = v };
	for (unsigned k = 0; k < v->n_options && k < INBOX_MAX_OPTIONS; k++)
		spec->opt[k] = v->options[k].def;
}

/* The index of v's option `key`, or -1. A variant declares at most
 * INBOX_MAX_OPTIONS (test_inbox checks every one): the rest are ignored. */
static int find_option(const struct inbox_ops *v, const char *key)
{
	for (unsigned k = 0; k < v->n_options && k < INBOX_MAX_OPTIONS; k++)
		if (strcmp(v->options[k].key, key) == 0)
			return (int)k;
	return -1;
}

int inbox_spec_set(struct inbox_spec *spec, const char *key, const char *value, char *why,
		   size_t why_len)
{
	const struct inbox_ops *v = spec->ops;
	const struct inbox_option *o;
	unsigned long n;
	char *end;
	int k = find_option(v, key);
	char none[1];

	if (why == NULL || why_len == 0) {	/* nowhere to say why: say it nowhere */
		why = none;
		why_len = sizeof(none);
	}
	if (k >= 0) {
		o = &v->options[k];
		errno = 0;
		n = strtoul(value, &end, 10);
		if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno == ERANGE ||
		    n < o->min || n > o->max || (o->power_of_two && (n & (n - 1)) != 0)) {
			snprintf(why, why_len, "%s's %s is %s: it must be a %s from %lu to %lu "
				 "(%s)", v->name, key, value,
				 o->power_of_two ? "power of two" : "whole number", o->min,
				 o->max, o->what);
			return -EINVAL;
		}
		spec->opt[k] = n;
		return 0;
	}
	if (v->n_options == 0)
		snprintf(why, why_len, "%s takes no option ('%s' given)", v->name, key);
	else
		snprintf(why, why_len, "%s has no option '%s' (it has %s%s)", v->name, key,
			 v->options[0].key, v->n_options > 1 ? " and more" : "");
	for (size_t i = 0; i < N_VARIANTS; i++)	/* a hint: whose is it? */
		if (find_option(variants[i], key) >= 0) {
			size_t len = strlen(why);

			if (len < why_len)
				snprintf(why + len, why_len - len, "; '%s' is %s's", key,
					 variants[i]->name);
			break;
		}
	return -EINVAL;
}

int inbox_spec_parse(struct inbox_spec *spec, const char *text, char *why, size_t why_len)
{
	const char *colon = strchr(text, ':');
	size_t len = colon ? (size_t)(colon - text) : strlen(text);
	char name[64], item[64], *eq, none[1];
	const char *p, *next;
	const struct inbox_ops *v = NULL;
	unsigned given = 0;	/* a bit per option set: each at most once */
	int k;

	if (why == NULL || why_len == 0) {	/* nowhere to say why: say it nowhere */
		why = none;
		why_len = sizeof(none);
	}
	if (len < sizeof(name)) {
		memcpy(name, text, len);
		name[len] = '\0';
		v = inbox_variant_find(name);
	}
	if (v == NULL) {
		snprintf(why, why_len, "unknown dispatch variant '%.*s'", (int)len, text);
		return -EINVAL;
	}
	inbox_spec_default(spec, v);
	for (p = colon ? colon + 1 : NULL; p != NULL; p = next) {
		next = strchr(p, ',');
		len = next ? (size_t)(next - p) : strlen(p);
		if (next != NULL)
			next++;
		if (len >= sizeof(item) || len == 0) {
			snprintf(why, why_len, "%s: an empty or too long option in '%s'", v->name,
				 text);
			return -EINVAL;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if ((eq = strchr(item, '=')) == NULL) {
			snprintf(why, why_len, "%s: option '%s' has no value (KEY=VALUE)", v->name,
				 item);
			return -EINVAL;
		}
		*eq = '\0';
		if ((k = find_option(v, item)) >= 0 && (given & (1u << k)) != 0) {
			snprintf(why, why_len, "%s's %s is given twice in '%s'", v->name, item,
				 text);
			return -EINVAL;
		}
		if (inbox_spec_set(spec, item, eq + 1, why, why_len) < 0)
			return -EINVAL;
		given |= k >= 0 ? 1u << k : 0;
	}
	return 0;
}

uint64_t inbox_spec_memory(const struct inbox_spec *spec)
{
	return spec->ops->memory != NULL ? spec->ops->memory(spec->opt) : 0;
}

static void inbox_on_wakeup(evutil_socket_t fd, short what, void *arg);
static void inbox_on_again(evutil_socket_t fd, short what, void *arg);

int inbox_new(struct inbox **out, const struct inbox_spec *spec, struct event_base *base,
	      inbox_handler_fn handler, void *arg, unsigned budget)
{
	const struct inbox_ops *ops = spec->ops;
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
	ib->wake.read_fd = ib->wake.write_fd = -1;
	if (ops->configure != NULL)
		ops->configure(ib, spec->opt);
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
