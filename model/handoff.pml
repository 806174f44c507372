/*
 * handoff.pml - the wfcq + eventfd handoff with notify elision, as a Promela
 * model for spin. It checks the two claims of src/core/inbox_wfcq.c:
 *
 *   safety    whenever the whole system comes to rest (no process can move:
 *             Promela's `timeout`), every enqueued item has been handled;
 *             i.e. no wake-up was lost
 *   liveness  every item is eventually handled (ltl `all_handled`, under
 *             weak fairness: a producer preempted between its two stores
 *             does get to run again)
 *
 * With -DBROKEN the consumer drains the eventfd after the splice instead of
 * before; spin must then find a run that violates the safety claim.
 * tests/test_model.sh checks both outcomes.
 *
 * The abstraction. Items are numbered in the order their producers swapped
 * the queue's tail (that order is the queue's order). For item i:
 *   tail        how many items have swapped the tail so far (P1, first store)
 *   linked[i]   its predecessor's link to it is set (P1, second store)
 *   qstart      the first item still in the shared queue; the queue holds
 *               items qstart .. tail-1, and is empty when qstart == tail
 * An enqueue finds the queue empty exactly when tail == qstart at its swap.
 * The splice is one atomic step (liburcu does two exchanges; a producer in
 * between joins the spliced batch, which the model allows by splicing
 * everything up to tail). The eventfd is a counter: signal adds one, drain
 * sets it to zero.
 */

#ifndef NPROD
#define NPROD 2
#endif
#ifndef NITEMS
#define NITEMS 2
#endif
#define TOTAL (NPROD * NITEMS)

byte tail = 0;
byte qstart = 0;
bool linked[TOTAL];
byte efd = 0;		/* the eventfd's counter */
bool rearm = false;	/* the round made itself active again (event_active) */
byte bstart = 0;	/* the consumer's private batch: bstart .. bend-1 */
byte bend = 0;
byte handled = 0;

proctype producer()
{
	byte i = 0, mine;
	bool was_empty;

	do
	:: i < NITEMS ->
		/* P1: cds_wfcq_enqueue: swap the tail ... */
		d_step { mine = tail; was_empty = (tail == qstart); tail++ };
		/* ... then link the old tail to the new node. */
		linked[mine] = true;
		/* P2: only the post that found the queue empty signals. */
		if
		:: was_empty -> efd++
		:: else -> skip
		fi;
		i++
	:: else -> break
	od
}

proctype consumer()
{
end_wait:
	do
	:: (efd > 0 || rearm) ->
		rearm = false;
#ifndef BROKEN
		efd = 0;			/* C1: drain first */
#endif
		atomic {			/* C2: splice the whole queue */
			if
			:: qstart == tail -> skip	/* empty */
			:: qstart < tail && !linked[qstart] ->
				rearm = true		/* WOULDBLOCK: retry next turn */
			:: qstart < tail && linked[qstart] ->
				bend = tail; qstart = tail
			fi
		}
#ifdef BROKEN
		efd = 0;			/* the broken order: drain after */
#endif
		do				/* C3: handle the batch */
		:: bstart < bend && linked[bstart] -> bstart++; handled++
		:: bstart < bend && !linked[bstart] -> rearm = true; break
		:: bstart == bend -> break
		od
	:: timeout ->
		/* Nothing can move any more: the producers are done and the
		 * consumer sleeps with no wake-up pending. Nothing may be left. */
		assert(handled == TOTAL);
		break
	od
}

init {
	atomic {
		byte p = 0;
		do
		:: p < NPROD -> run producer(); p++
		:: else -> break
		od;
		run consumer()
	}
}

ltl all_handled { <> (handled == TOTAL) }
