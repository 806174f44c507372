/*
 * inbox_ring.c - the bounded variant: a ring of pointers to messages, a
 * wake-up only when a count of waiting messages was zero, and a refusal
 * when the ring is full. Bounded memory (the slots are allocated once, and
 * become resident as messages pass through them: ring_init), and nothing
 * inside the message: a slot holds its address. The one variant
 * whose inbox_post() can return -ENOBUFS (inbox.h). model/handoff.pml
 * checks the argument below (-DRING) and refutes its broken twins.
 *
 * The fields, each 64-bit so that no index ever wraps round to one in use
 * (no ABA: at a billion posts a second, 584 years):
 *   slots[cap]  pointers, NULL when free; cap a power of two, so the slot
 *               of index i is slots[i & (cap - 1)]
 *   prod_pos    the next index to claim; producers only
 *   cons_pos    the next index to take; written by the consumer, read by
 *               producers to see the room
 *   count       messages published and counted (R3) and not yet subtracted
 *               by the consumer: the elision's "was it empty?"
 * Each of the three shared words sits on its own cache line. The count's
 * code is in inbox_count.h, which lfq shares (inbox_lfq.c).
 *
 * THE STEPS
 *
 *   producer (inbox_post)                  consumer (the round, inbox.c)
 *   R1  claim index i: CAS prod_pos from   C1  drain the wake-up fd
 *       i to i + 1, refused while          C2  k = count (collect)
 *       i - cons_pos >= cap (FULL: return  C3  take slots in order from
 *       -ENOBUFS, nothing changed)             cons_pos, at most k and at
 *   R2  store the message's address in         most the budget: load the
 *       slots[i & (cap - 1)]                   slot (NULL: WOULDBLOCK),
 *   R3  n = fetch_add(count, 1)                store NULL in it, cons_pos
 *   P2  if n == 0: signal the fd (on           + 1 (next)
 *       failure: owe it, inbox.c)          C4  left = count - taken, by a
 *                                              fetch_sub of what C3 took;
 *                                              left > 0: re-arm (end_round)
 *
 * "Taken" messages never outnumber counted ones: C3 takes at most k, k was
 * count's value at C2, and between C2 and C4 only producers change count,
 * and only upwards; so C4's subtraction never goes below zero, though a
 * slot C3 takes may belong to a producer that has not counted it yet (its
 * R3 then adds 1 for a message already gone, which stands in for a message
 * counted earlier and still in the ring: count never exceeds the messages
 * in the ring, since each producer does R2 before R3).
 *
 * WHY NO WAKE-UP IS LOST
 *
 * The invariant: whenever count > 0, a round is pending: a signal not yet
 * drained (or owed, and so the retrier's to send), a re-arm armed, or a
 * round running that will re-arm or that will read count at C2 after the
 * increment in question.
 *
 *  - count leaves 0 only by an R3 that read 0: that post signals, after
 *    its R2 and R3 (a failed write is owed, and the retrier's signal also
 *    follows R3: the debt's release and acquire, inbox.c). Until a drain
 *    takes it, that signal is the pending round.
 *  - A round that drains such a signal (C1) ends with C4, after the drain:
 *    the signal's write and the drain's read take the eventfd's lock in the
 *    kernel, so R3 happens before C4, and C4 reads R3's value or a later
 *    one in count's order. C4 subtracts what the round took and re-arms if
 *    count is still above zero, so the invariant passes to the re-arm; if
 *    C4 leaves zero, the invariant holds trivially, and the next R3 reads 0
 *    and signals (fetch_sub and fetch_add are read-modify-writes of one
 *    word: the R3 after C4 in count's order reads C4's value or a later
 *    one, and a later one is above zero only through an R3 that read 0).
 *  - A round that took nothing (k was 0, or WOULDBLOCK at once) reads
 *    count at C4 instead of subtracting: it re-arms if it sees count above
 *    zero, so a WOULDBLOCK (k >= 1, count >= k) always re-arms.
 *
 * Delivery: every post that was not refused does R3 in the end (each
 * producer finishes its post), so once producers are quiet count equals
 * the messages in the ring. While it is above zero a round keeps coming;
 * each takes at least one message unless its first slot is NULL, which is
 * a producer between R1 and R2 that will finish. And the budget: a round
 * that stops at the budget left count above zero (it took fewer than k),
 * so C4 re-arms it, as inbox.c's own budget rule does too.
 *
 * The order the argument uses is C1 before C4: the drain must come before
 * the round's last look at count. Drain after C4 and a post that found
 * count at zero after C4 signals into that drain, and nothing re-arms for
 * it (the model refutes that twin, -DBROKEN_DRAIN_LAST). inbox.c drains
 * first in every round (C1 before C2), which is more than the ring needs
 * (a drain between C2 and C4 still verifies: C4 re-arms for whatever was
 * counted meanwhile) but lets C2's k include the messages the drained
 * signal stood for, so the round takes them instead of re-arming for them.
 * Without C4's re-arm, a post that counted itself after C2 while count was
 * above zero waits for ever: test_inbox places one there, which kills that
 * mutant (tests/mutants/ring-no-end-rearm.mutant), and the model refutes
 * that twin too (-DBROKEN_NO_END_REARM).
 *
 * WOULDBLOCK: A NULL SLOT BEFORE k ARE TAKEN
 *
 * k said at least one more message is counted, but the slot at cons_pos is
 * NULL: its producer claimed the index (R1) and has not stored (R2), or
 * stored and was not yet seen (not counted yet: the counted ones are seen,
 * below). Either way it will store and count; slots behind it may hold
 * counted messages, but the consumer takes in order and must wait for it.
 * Its R3 will find count above zero (k >= 1 counted messages are still in
 * it) and will not signal, so the round must re-arm: C4 sees count >= k > 0
 * and asks for it, and next() reports INBOX_WOULDBLOCK (not the
 * SIGNAL_DUE kind), on which inbox.c re-arms too. As with wfcq's
 * WOULDBLOCK inside the batch, rounds
 * come once per pass of the loop until that producer runs again.
 *
 * FULL
 *
 * R1 refuses when the ring holds cap claimed-and-not-taken indices. The
 * check and the claim are one CAS: cons_pos is read before the CAS, and it
 * only grows, so at the CAS the ring holds at most what the check saw: a
 * claim never overruns a slot the consumer has not freed. A refused post
 * changes nothing the consumer or another producer can see: the message is
 * the caller's, and no signal is owed. The refusal is counted (inbox.c).
 *
 * MEMORY ORDERING (C11, the weakest orders that hold the argument)
 *
 *  - R2 store: release; C3's load of the slot: acquire. They publish what
 *    the poster wrote into the message: the handler reads it through the
 *    address the acquire load returned. Without them the handler could
 *    read the message's fields from before the post.
 *  - C3's store of NULL: relaxed; then cons_pos + 1: release; R1's load of
 *    cons_pos: acquire. The pair orders the consumer's use of slot j (its
 *    load, and its NULL) before the R2 of the producer that claims index
 *    j + cap, the next to use that slot: that producer could claim only
 *    after reading this cons_pos. Without it, the NULL could land after the
 *    new message's address (erasing it), or the consumer's load could see
 *    the new message in place of the old one.
 *  - R1's CAS of prod_pos: relaxed, both on success and on failure. It only
 *    hands out distinct indices; the consumer never reads prod_pos (it
 *    learns of messages from count and the slots), so the claim publishes
 *    nothing.
 *  - R3's fetch_add: release; C2's load of count: acquire. A fetch_add
 *    continues the release sequence of every earlier one, so C2 reading
 *    count synchronises with every R3 before it in count's order, and the
 *    k slots of those producers are visible: a NULL slot then really is a
 *    producer that has not counted. Nothing else depends on it (a NULL
 *    that is only not yet visible makes the same re-arm), but without it a
 *    WOULDBLOCK could name a producer that finished long ago.
 *  - C4's fetch_sub: relaxed. What the argument needs is that it is a
 *    read-modify-write of count: the R3 after it in count's order reads its
 *    result or later. It publishes nothing (the room is cons_pos's job).
 *    C4's load, when nothing was taken: relaxed; coherence keeps it at or
 *    above k (read-read, with C2) and at or above the increment of any
 *    post whose signal the round drained (write-read: that R3 happens
 *    before it, through the fd).
 *  - P2 after R3, and C1 before C2 and C4: a write() and a read() of one
 *    eventfd take its lock in the kernel, which orders them as a release
 *    and an acquire (wakeup.h), as in inbox_wfcq.c.
 * The consumer's private fields (the position it reads from, k, what the
 * round took) are plain: the single consumer thread alone touches them.
 *
 * TSan sees every step above (C11 atomics, and the fd's write and read),
 * so no annotation is needed.
 */
#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "inbox_count.h"

struct inbox_ring {
	struct inbox common;
	/* Written once by init(); read by producers and the consumer. */
	_Alignas(CACHE_LINE) _Atomic(struct inbox_msg *) *slots;
	uint64_t cap;
	uint64_t mask;			/* cap - 1 */
	/* R1: producers only. */
	_Alignas(CACHE_LINE) _Atomic uint64_t prod_pos;
	/* Written by the consumer (release), read by producers (acquire). */
	_Alignas(CACHE_LINE) _Atomic uint64_t cons_pos;
	/* count (R3 adds, C4 subtracts), and the round's k and what it took. */
	struct count_elision elide;
	/* The consumer's alone. */
	_Alignas(CACHE_LINE) uint64_t head;	/* == cons_pos: its own copy */
};

#define RING(ib) ((struct inbox_ring *)(ib))

_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2 &&
	       sizeof(_Atomic(struct inbox_msg *)) == sizeof(struct inbox_msg *),
	       "calloc's zeros are NULL slots only if an atomic pointer is a plain one");

/* Its one option: "size", the slots (ring:size=1024). */
#define RING_DEFAULT 4096
#define RING_MAX (1ul << 24)	/* 128 MiB of slots per worker */

static const struct inbox_option ring_options[] = {
	{ .key = "size", .min = 1, .max = RING_MAX, .def = RING_DEFAULT, .power_of_two = true,
	  .what = "messages each inbox holds at once; a post to a full ring is refused" },
};

static void ring_configure(struct inbox *ib, const unsigned long *opt)
{
	RING(ib)->cap = opt[0];
}

/* A slot is a pointer, touched as messages pass: in the end all are. */
static uint64_t ring_memory(const unsigned long *opt)
{
	return (uint64_t)opt[0] * sizeof(_Atomic(struct inbox_msg *));
}

static int ring_init(struct inbox *ib)
{
	struct inbox_ring *r = RING(ib);
	uint64_t cap = r->cap ? r->cap : RING_DEFAULT;	/* set by ring_configure() */

	if (cap > RING_MAX || (cap & (cap - 1)) != 0)
		return -EINVAL;
	/*
	 * calloc, not malloc and atomic_init() on each slot, which would write
	 * every page and make the whole ring resident at once (128 MiB per
	 * worker at RING_MAX, however little traffic comes). A large
	 * calloc is fresh zero pages from mmap, and zero pages cost nothing
	 * until written: slots are touched as messages pass, in index order,
	 * so a ring's memory grows to its full size once cap messages have
	 * gone through it, and stays. All-zero bytes are a NULL slot here: a
	 * null pointer is all-zero bits on every ABI this builds for, and an
	 * _Atomic pointer that is always lock-free, with a plain pointer's
	 * size (the assertion above this function), is a plain pointer in
	 * memory, with no lock hidden beside it; so calloc's zeros are what
	 * atomic_init(slot, NULL) would store.
	 */
	r->slots = calloc(cap, sizeof(*r->slots));
	if (r->slots == NULL)
		return -ENOMEM;
	r->cap = cap;
	r->mask = cap - 1;
	atomic_init(&r->prod_pos, 0);
	atomic_init(&r->cons_pos, 0);
	count_init(&r->elide);
	return 0;
}

static int ring_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	struct inbox_ring *r = RING(ib);
	uint64_t i = atomic_load_explicit(&r->prod_pos, memory_order_relaxed);

	do {	/* R1. Signed: a stale i may lag a cons_pos that moved on. */
		uint64_t c = atomic_load_explicit(&r->cons_pos, memory_order_acquire);

		if ((int64_t)(i - c) >= (int64_t)r->cap)
			return -ENOBUFS;	/* full: nothing changed */
	} while (!atomic_compare_exchange_weak_explicit(&r->prod_pos, &i, i + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	/* R2: publishes the message (pairs with the acquire in ring_next). */
	atomic_store_explicit(&r->slots[i & r->mask], msg, memory_order_release);
	/* R3: only the post that found nothing counted signals. */
	return count_post(&r->elide);
}

/* C2: how many counted messages this round may take. */
static bool ring_collect(struct inbox *ib)
{
	count_collect(&RING(ib)->elide);
	return true;
}

/* C3, one slot. */
static struct inbox_msg *ring_next(struct inbox *ib)
{
	struct inbox_ring *r = RING(ib);
	_Atomic(struct inbox_msg *) *slot;
	struct inbox_msg *msg;

	if (!count_may_take(&r->elide))
		return NULL;		/* the rest, if any, was not counted yet */
	slot = &r->slots[r->head & r->mask];
	msg = atomic_load_explicit(slot, memory_order_acquire);
	if (msg == NULL)
		return INBOX_WOULDBLOCK;	/* a producer between R1 and R2 */
	atomic_store_explicit(slot, NULL, memory_order_relaxed);
	/* The room: orders the load and the NULL before the next lap's R2. */
	atomic_store_explicit(&r->cons_pos, ++r->head, memory_order_release);
	count_took(&r->elide);
	return msg;
}

/* C4: true when counted messages are left, whose posts did not signal. */
static bool ring_end_round(struct inbox *ib)
{
	return count_end_round(&RING(ib)->elide);
}

/* No producer is left: every claimed slot is stored. */
static struct inbox_msg *ring_leftover(struct inbox *ib)
{
	struct inbox_ring *r = RING(ib);
	uint64_t end = atomic_load_explicit(&r->prod_pos, memory_order_relaxed);

	while (r->head != end) {
		_Atomic(struct inbox_msg *) *slot = &r->slots[r->head++ & r->mask];
		struct inbox_msg *msg = atomic_load_explicit(slot, memory_order_acquire);

		atomic_store_explicit(slot, NULL, memory_order_relaxed);
		atomic_store_explicit(&r->cons_pos, r->head, memory_order_relaxed);
		if (msg != NULL)
			return msg;
	}
	return NULL;
}

static void ring_fini(struct inbox *ib)
{
	free(RING(ib)->slots);
}

const struct inbox_ops inbox_ring_ops = {
	.name = "ring",
	.bounded = true,
	.options = ring_options,
	.n_options = 1,
	.memory = ring_memory,
	.configure = ring_configure,
	.size = sizeof(struct inbox_ring),
	.wakeup = WAKEUP_EVENTFD,
	.init = ring_init,
	.enqueue = ring_enqueue,
	.collect = ring_collect,
	.next = ring_next,
	.end_round = ring_end_round,
	.leftover = ring_leftover,
	.fini = ring_fini,
};
