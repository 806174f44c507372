/*
 * test_inbox_spin.c - spin-then-block's handshake, step by step: a producer
 * held between its steps while the consumer sets its flag, posts just
 * before the flag is set and between the consumer's fence and its last
 * look, and the polling bound (a round polls at most once). The fences
 * themselves are test_spin_litmus's.
 */
#include <config.h>

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "inbox_harness.h"
#include "inbox_spin.h"
#include "tap.h"

/*
 * spin-then-block. A producer caught between its two steps while the
 * consumer runs its handshake: the consumer sleeps (no spinning on it), and
 * the producer, finishing, finds the flag set and signals. Posts placed
 * inside the handshake. Then a consumer that polls: a message posted while
 * it polls costs no wake-up at all, and a round polls at most once.
 */
/* The round that handled the first message has ended: its count of
 * rounds is the last thing a round writes (inbox.c). */
static bool one_round_ended(void *arg)
{
	return stats(arg).rounds >= 1;
}

static void test_spin(void)
{
	static struct wrapped long_poll;
	static struct inbox_option long_us;
	const struct inbox_ops *ops = variant("spin-then-block");
	struct consumer c;
	struct tmsg first = { .producer = 0, .seq = 1 }, m = { .producer = 0, .seq = 2 };
	struct tmsg many[1000];
	struct count_of w = { .c = &c, .want = 1 };
	uint64_t rounds;
	bool must = false, asleep = false, all = true;
	void *old;

	/* One post and its handling first, so that the flag has been 0 and
	 * only the consumer's handshake can have set it again. */
	consumer_init(&c, ops, 64);
	consumer_start(&c);
	inbox_post(c.inbox, &first.m);
	if (!wait_until(handled_at_least, &w, 5000, "spin-then-block's first message") ||
	    !wait_until(one_round_ended, &c, 5000, "the end of the first message's round"))
		bail("spin-then-block: the first message was not handled");
	/* The count before the signal: the round it starts may end before
	 * this thread looks again. */
	rounds = stats(&c).rounds;
	old = half_enqueue(c.inbox, &m);		/* P1a */
	wakeup_signal(&c.inbox->wake);			/* a round meets it */
	for (int i = 0; i < 5000 && stats(&c).rounds == rounds; i++)
		usleep(1000);
	usleep(50000);
	rounds = stats(&c).rounds - rounds;
	ok(spin_asleep(&c) && rounds >= 1 && rounds <= 2,
	   "spin-then-block, a producer between its steps at the handshake: the consumer "
	   "sleeps (flag set, %llu rounds in 50 ms)", (unsigned long long)rounds);
	finish_enqueue(c.inbox, old, &m);		/* P1b */
	must = spin_must_signal(c.inbox);		/* F_p, P2 */
	if (must)
		wakeup_signal(&c.inbox->wake);
	w.want = 2;
	ok(must && wait_until(handled_at_least, &w, 5000, "the caught producer's message") &&
	   c.order_errors == 0,
	   "... and that producer finds the flag set, signals, and its message is handled");
	consumer_stop(&c);
	consumer_free(&c);

	ok(posted_in_handshake(ops, BEFORE_D2, &asleep),
	   "spin-then-block, a post just before the flag is set: no signal, and the last "
	   "look (D3) finds it%s", asleep ? " (the consumer sleeps with it queued)" : "");
	ok(posted_in_handshake(ops, BEFORE_D3, &asleep),
	   "spin-then-block, a post between the consumer's fence and its last look: it is "
	   "handled%s", asleep ? " (the consumer sleeps with it queued)" : "");

	/*
	 * Polling for up to 1 s: a ping-pong of 1000 messages, each posted as
	 * soon as the last was handled, never finds the consumer asleep (one
	 * write: the first post's). And the round polls once: after the
	 * message its poll found, the next dry spell ends the round, so the
	 * loop polls its descriptors at least every second message.
	 */
	consumer_init(&c, with_option(&long_poll, &long_us, variant("spin-then-block"), 1000000),
		      64);
	consumer_start(&c);
	for (uint32_t i = 0; i < 1000 && all; i++) {
		many[i] = (struct tmsg){ .producer = 0, .seq = i + 1 };
		inbox_post(c.inbox, &many[i].m);
		w.want = i + 1;
		all = wait_until(handled_at_least, &w, 5000, "a ping-pong message");
	}
	rounds = stats(&c).rounds;
	ok(all && stats(&c).writes == 1 && c.order_errors == 0,
	   "spin-then-block polling: 1000 messages, one wake-up write in all (%llu)",
	   (unsigned long long)stats(&c).writes);
	ok(all && rounds >= 500,
	   "spin-then-block polling: a round polls at most once, so 1000 ping-pong messages "
	   "take at least 500 rounds (%llu): the loop's other events run between them",
	   (unsigned long long)rounds);
	consumer_stop(&c);
	consumer_free(&c);
}

int main(void)
{
	tap_watchdog(120);
	test_spin();
	tap_plan(6);
	return tap_done();
}
