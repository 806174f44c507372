/*
 * test_inbox_wouldblock.c - producers caught between their two stores: the
 * WOULDBLOCK paths of wfcq's splice and batch, wfcq-always's dequeue,
 * vyukov's and llist's batch, where the round must re-arm, or must not
 * (inbox_impl.h: the two kinds of WOULDBLOCK).
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

static void test_wouldblock(void)
{
	uint64_t rounds;
	bool ok_splice = caught_in_splice(variant("wfcq"), &rounds);

	ok(rounds == 0,
	   "wfcq, WOULDBLOCK in the splice: the round ends, no re-arm while the producer "
	   "is away (%llu rounds in 50 ms)", (unsigned long long)rounds);
	ok(ok_splice, "wfcq, WOULDBLOCK in the splice: the producer's own signal brings its message");
	ok(caught_in_batch(variant("wfcq")),
	   "wfcq, WOULDBLOCK inside the batch: the round re-arms, and the rest of the batch "
	   "is handled with no signal");
	ok_splice = caught_in_splice(variant("wfcq-always"), &rounds);
	ok(ok_splice && rounds == 0,
	   "wfcq-always, WOULDBLOCK on the first node (head.next not yet written): no re-arm "
	   "(%llu rounds in 50 ms), and the producer's own signal brings it",
	   (unsigned long long)rounds);
	ok_splice = caught_in_dequeue(variant("wfcq-always"), &rounds);
	ok(rounds == 0,
	   "wfcq-always, WOULDBLOCK in the dequeue: no re-arm while the producer is away "
	   "(%llu rounds in 50 ms)", (unsigned long long)rounds);
	ok(ok_splice, "wfcq-always, WOULDBLOCK in the dequeue: the producer's own signal "
	   "brings both messages");

	/* vyukov tells its two WOULDBLOCKs apart by the node it is stuck on. */
	ok_splice = caught_in_splice(variant("vyukov"), &rounds);
	ok(ok_splice && rounds == 0,
	   "vyukov, stuck on the stub (the producer found no message): no re-arm while it is "
	   "away (%llu rounds in 50 ms), and its own signal brings the message",
	   (unsigned long long)rounds);
	ok(caught_in_batch(variant("vyukov")),
	   "vyukov, stuck on a message node (the producer found a message, will not signal): "
	   "the round re-arms, and both are handled with no signal");
	/* llist cannot tell which producer it is stuck on: it always re-arms. */
	ok(caught_in_batch(variant("llist")),
	   "llist, a link not written in the chain taken: the round re-arms, and the walk "
	   "resumes there, in order, with no signal");
}

int main(void)
{
	tap_watchdog(120);
	test_wouldblock();
	tap_plan(9);
	return tap_done();
}
