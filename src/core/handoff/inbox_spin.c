/*
 * inbox_spin.c - spin-then-block: wfcq's queue with a different wake-up
 * strategy. When a round finds nothing more, the consumer polls the queue
 * for up to its option "us" microseconds (spin-then-block:us=N) before it
 * sleeps in its loop's poll, and while it is awake no producer writes the
 * eventfd. That needs the consumer to say when it sleeps, in user memory:
 * the `sleeping` flag.
 *
 * THE STEPS
 *
 *   producer (inbox_post)                  consumer (the round, inbox.c)
 *   P1  enqueue (wfcq's P1a, P1b)          C1..C3 as ever, then, when the
 *   F_p full fence                             queue gives nothing more:
 *   P2  load the flag; if it is 1,         D1  poll the queue until the
 *       exchange it with 0, and if the         polling time is up (found:
 *       exchange returned 1, signal            go on; dry again in this
 *                                              round: re-arm, flag still 0)
 *       exchange returned 1, signal        D2  store 1 in the flag
 *                                          F_c full fence
 *                                          D3  look at the queue once more:
 *                                              found: store 0, go on;
 *                                              nothing: sleep (return to
 *                                              the loop's poll)
 *
 * WHY NO WAKE-UP IS LOST: THE STORE-BUFFERING SHAPE
 *
 * Each side stores (the producer its link, the consumer its flag), fences,
 * then loads the other side's variable. The two full fences fall in one
 * total order. If F_p comes first, everything before it (the link) is
 * visible to loads after F_c: D3 finds the message. If F_c comes first,
 * the flag's 1 is visible to P2: the producer signals (exactly one does,
 * by the exchange), and the signal wakes the sleeping loop. Either way the
 * message is taken. Leave out either fence and both loads may read the old
 * values: on x86 a store waits in the store buffer while a later load to
 * another address goes ahead (x86-TSO allows exactly this reordering, and
 * no other), so the producer reads 0 while the consumer reads an empty
 * queue, and the consumer sleeps with the message queued. The model
 * (model/handoff.pml, -DSPIN) keeps store buffers and refutes that twin;
 * tests/test_spin_litmus runs the two halves of this very code against
 * each other, with no system call between them, and fails if any trial
 * loses the message (the mutants without either fence must fail it).
 *
 * D3 meeting a producer between its two steps (a WOULDBLOCK, whether in
 * wfcq's splice or inside its batch) is "nothing": D3 did not see that
 * producer's link, so by the argument above (the link is before F_p) F_c
 * came first, and that producer will read the 1 and signal. So the
 * consumer sleeps, and spins on nothing, whoever is preempted.
 *
 * While the flag is 0 the consumer has promised to look again without a
 * signal: it is inside a round, or a round of its has re-armed (the budget
 * was spent: the re-arm timer brings it back). Every round ends either so,
 * or through D2..D3. The flag starts at 1: before the loop runs, posts
 * must signal.
 *
 * Contrast the eventfd-only variants: their "sleeping" state lives in the
 * kernel (the eventfd's counter, read by epoll under the fd's lock), so
 * their wake-up decision needs no fence in user space. liburcu's call_rcu
 * thread uses this same shape with a futex word. Here it buys a consumer
 * that can take a message without any system call while it spins, at the
 * price of the CPU time it spins (handoff-bench --spin-us shows both).
 *
 * A polling consumer serves nothing else on its loop. A round polls at
 * most once, for at most the polling time (microseconds; the default is
 * 10): when its queue runs dry a second time, the round re-arms with the
 * flag still 0 (the consumer is still awake: the re-arm is the promised
 * look) and the next round, after the loop has polled its descriptors,
 * polls again. So a trickle of messages keeps the worker awake without a
 * single eventfd write. Its sockets wait for at most two rounds (inbox.c),
 * so for at most two polling times on top of two budgets: a socket that
 * turns readable while a round polls waits for the rest of that poll, and
 * the next pass may run the inbox's round, with its own poll, before the
 * socket's callback.
 */
#include <config.h>

#include "inbox_spin.h"

/* Its one option: "us", how long a consumer polls (spin-then-block:us=0). */
static const struct inbox_option spin_options[] = {
	{ .key = "us", .min = 0, .max = 100000, .def = 10,
	  .what = "microseconds a worker polls its inbox before it sleeps; 0: it does "
		  "not poll, and a polling worker serves nothing else" },
};

static void spin_configure(struct inbox *ib, const unsigned long *opt)
{
	((struct inbox_spin *)ib)->spin_ns = (uint64_t)opt[0] * 1000;
}

static int spin_init(struct inbox *ib)
{
	atomic_init(&((struct inbox_spin *)ib)->sleeping, 1);
	return inbox_wfcq_init(ib);
}

static int spin_enqueue(struct inbox *ib, struct inbox_msg *msg)
{
	(void)inbox_wfcq_enqueue(ib, msg);	/* P1: "found empty" is not used */
	return spin_must_signal(ib) ? INBOX_SIGNAL : INBOX_RIDE;	/* F_p, P2 */
}

const struct inbox_ops inbox_spin_ops = {
	.name = "spin-then-block",
	.options = spin_options,
	.n_options = 1,
	.configure = spin_configure,
	.size = sizeof(struct inbox_spin),
	.wakeup = WAKEUP_EVENTFD,
	.init = spin_init,
	.enqueue = spin_enqueue,
	.collect = inbox_wfcq_collect,
	.next = inbox_wfcq_next,
	.leftover = inbox_wfcq_leftover,
	.before_sleep = spin_before_sleep,	/* D1, D2, F_c, D3 */
};
