/*
 * handoff.pml - the inbox of src/core/ as a Promela model for spin: the
 * round of inbox.c inside libevent's loop, with the wfcq queue of
 * inbox_wfcq.c or the mutex list of inbox_mutex.c, the wake-up fd, the
 * wake-up debt and its retriers, and one socket on the same loop.
 *
 * Claims (tests/test_model.sh checks each, and refutes each broken twin):
 *   safety    when the whole system comes to rest (no process can move:
 *             `timeout`), every item was handled (no wake-up was lost) and
 *             the signals that reached the fd equal the signals posts owed
 *             (none lost, none sent twice); and a readable socket waits for
 *             at most two inbox rounds (the one its poll missed and one
 *             ahead of it in the next pass)
 *   liveness  (with assertions off, pan -a -f -A: acceptance cycles under
 *             weak fairness) every item is eventually handled
 *             (ltl all_handled); and under an endless flood of posts the
 *             socket is always served again (ltl sock_served, with -DFLOOD)
 *
 * Builds:
 *   -DMUTEX            the mutex list: every post signals, the consumer pops
 *                      until the list is empty (default: wfcq)
 *   -DMUTEX -DELIDE    mutex-elide: the post that found the list empty
 *                      signals; the consumer takes the whole list at once
 *   -DALWAYS           wfcq-always: every post signals, the consumer
 *                      dequeues from the shared queue one item at a time,
 *                      and a WOULDBLOCK there does not re-arm the round
 *   -DVYUKOV           vyukov: the post that found the stub as the tail
 *                      signals; the consumer takes one node at a time from
 *                      the shared list, pushing the stub behind the last
 *                      node; stuck on the stub it ends the round, stuck on
 *                      a message node it re-arms (inbox_vyukov.c)
 *   -DLLIST            llist: the push that found the stack empty signals;
 *                      the consumer takes the whole stack and reverses it,
 *                      stopping at a link not written yet, and re-arms
 *                      (inbox_llist.c)
 *   -DRING             ring (inbox_ring.c): a bounded ring of RCAP slots
 *                      (default 2); a post claims an index (waiting while
 *                      the ring is full: a refused producer that tries
 *                      again), stores, then counts, and signals when the
 *                      count was 0; the round takes at most the count it
 *                      read, subtracts what it took and re-arms while the
 *                      count stays above 0 (end_round)
 *   -DSPIN             spin-then-block on wfcq's queue: a post signals only
 *                      when it finds the consumer's "sleeping" flag set
 *                      (and exchanges it to 0); the consumer, when a round
 *                      finds nothing more, sets the flag, fences, and looks
 *                      once more (inbox_spin.c). Stores go through x86-TSO
 *                      store buffers here: see STORE BUFFERS below
 *   -DCAP=n            the fd holds n signals (a pipe; a full one drops the
 *                      signal, which counts as delivered: it is readable)
 *   -DFLOOD            producers post forever (at most W items in flight)
 *   -DNPROD, -DNITEMS, -DBUDGET, -DFAILS (signal writes that may fail),
 *   -DNRETRY (retrier threads), -DNREQ (socket requests)
 * Broken twins:
 *   -DBROKEN_DRAIN_AFTER     the fd is drained after the splice
 *   -DBROKEN_NO_BATCH_REARM  no re-arm after a WOULDBLOCK inside the batch
 *   -DBROKEN_NO_YIELD        the round re-arms with event_active(): libevent
 *                            runs it again in the same pass, before it polls
 *   -DBROKEN_RETRY           the old retry: send, then pay with a weak CAS
 *   -DBROKEN_NO_DEL          a round does not delete a pending `again`, so
 *                            an fd and a timer in one pass make two rounds
 *   -DBROKEN_ALWAYS_ELIDE    (with -DALWAYS) the posts elide as wfcq's do,
 *                            but the round still skips the re-arm after a
 *                            WOULDBLOCK: the rule is only safe when every
 *                            post signals
 *   -DBROKEN_VYUKOV_NO_REARM  (with -DVYUKOV) no re-arm when stuck on a
 *                            message node
 *   -DBROKEN_VYUKOV_KEEP_LAST  (with -DVYUKOV) no stub push: the last
 *                            node waits until a later post links behind it
 *   -DBROKEN_LLIST_NO_REARM  (with -DLLIST) no re-arm when the reversal
 *                            stops at a link not written yet
 *   -DBROKEN_SPIN_NO_FENCE_P, -DBROKEN_SPIN_NO_FENCE_C  (with -DSPIN) the
 *                            producer's, or the consumer's, full fence left
 *                            out of the handshake
 *   -DBROKEN_SPIN_NO_RECHECK (with -DSPIN) no last look (D3) after the
 *                            flag is set
 *   -DBROKEN_NO_END_REARM    (with -DRING) no re-arm at the end of the round
 *                            for what is still counted
 *   -DBROKEN_DRAIN_LAST      (with -DRING) the fd is drained after the round's
 *                            last look at the count (C4), not before it.
 *                            (-DRING -DBROKEN_DRAIN_AFTER, a drain between C2
 *                            and C4, still holds: C4 re-arms for anything
 *                            counted meanwhile)
 *   -DBROKEN_COUNTED         (with -DMUTEX) the consumer pops only as many
 *                            messages as it drained signals, as memcached
 *                            does: wrong once a full pipe drops one (-DCAP)
 *
 * THE ABSTRACTION
 *
 * Items are numbered, modulo M, in the order their producers exchanged the
 * queue's tail. The batch (the consumer's private queue) holds the items
 * bstart .. qstart-1, the shared queue qstart .. tail-1; it is empty when
 * qstart == tail. linked[i] says that the link to item i is written: for
 * the shared queue's first item that is head.next. An enqueue is P1a (the
 * exchange: it found the queue empty when tail == qstart) then P1b (the
 * link), two steps. The splice is S1 (take head.next; WOULDBLOCK if it is
 * not written) then S2 (exchange the tail: take everything up to it), two
 * steps, so that a post in between joins the batch, as in liburcu. The
 * dequeue of item b needs b's own link to its successor, unless b is the
 * batch's last (then it resets the batch's tail instead), as in liburcu.
 * The fd is a counter of pending signals, capped at CAP. Memory ordering
 * is not modelled; inbox_wfcq.c argues it.
 *
 * VYUKOV numbers positions in the tail's order too, but the consumer's
 * stub takes positions as well (stub[i]); vh is the consumer's head, and
 * linked[i] is the link to position i (its predecessor's next). Position 0
 * is the initial stub. The consumer's loads (head's next, then the tail)
 * are separate steps, as in the C code.
 *
 * LLIST: a push is P1a (exchange the head: it found the stack empty when
 * no item was pushed since the last take) then P1b (its own next). The
 * take moves every pushed item (up to `tail`) into the consumer's chain
 * (bstart .. qstart-1 again, but walked newest first); the reversal walks
 * from qstart-1 down and needs each item's own link (linked[i]), except
 * the oldest, whose link is the end marker it read in P1a (written in P1b
 * all the same). Walked items wait in the reversed list until the chain is
 * done: only then do they become ready, oldest first.
 *
 * STORE BUFFERS (-DSPIN). The handshake is the store-buffering shape, which
 * sequential consistency would make correct with no fence at all; so this
 * build gives each side the x86 store buffer that breaks it. A producer's
 * link (P1b) and the consumer's store of 1 into the flag first sit in
 * their writer's buffer (pbuf[], cbuf) and reach memory at a time of the
 * `memory` process's choosing; loads by other processes read memory. A
 * full fence waits until its own buffer is empty, and so does every locked
 * read-modify-write (the exchanges of the tail, of head.next, of the flag),
 * as on x86. The other variants keep their sequentially consistent model.
 *
 * libevent's loop: a poll waits until the fd or the socket is readable or
 * the zero-timeout timer is pending (then it does not wait); it makes
 * active what it found, I/O events first in either order, then the expired
 * timer; the pass runs the active events, including any activated during
 * the pass (event_active() puts an event at the tail of the active queue),
 * and only then does the loop poll again.
 */

#ifndef NPROD
#define NPROD 2
#endif
#ifndef NITEMS
#define NITEMS 2
#endif
#define TOTAL (NPROD * NITEMS)
#ifndef BUDGET
#define BUDGET 1
#endif
#ifndef FAILS
#define FAILS 1
#endif
#ifndef NRETRY
#define NRETRY 1
#endif
#ifndef NREQ
#define NREQ 2
#endif
#ifndef CAP
#define CAP 255
#endif
#ifdef VYUKOV
#define M 16			/* positions wrap modulo M (stubs take some) */
#else
#define M 8			/* item numbers wrap modulo M */
#endif
#define W 3			/* FLOOD: at most W items in flight */
#define NEXT(x) (((x) + 1) % M)
#define INFLIGHT ((tail + M - bstart) % M)

/* The queues */
byte tail = 0;
byte qstart = 0;
byte bstart = 0;
bool linked[M];
byte mq = 0;			/* MUTEX: items in the list */
#ifndef RCAP
#define RCAP 2
#endif
/* RING: indices modulo M; ring's slots are filled[index % M] (fewer than
 * RCAP <= M apart are in use at once). */
byte ptail = 0;			/* prod_pos */
byte cons = 0;			/* cons_pos */
bool filled[M];			/* the slot holds its message (R2 done) */
byte rcount = 0;			/* count */
byte k = 0, taken = 0;		/* the consumer's: C2's count, C3's takes */
byte mb = 0;			/* ELIDE: items in the consumer's batch */
bool stub[M];			/* VYUKOV: position i holds the stub */
byte vh = 0;			/* VYUKOV: the consumer's head position */
byte walk = 0;			/* LLIST: items of the chain not yet walked */
bit sleeping = 1;		/* SPIN: the consumer's flag, in memory */
bool cbuf = false;		/* SPIN: the consumer's 1 into it, still buffered */
#define NONE 255
byte pbuf[NPROD];		/* SPIN: a producer's buffered link (its item), or NONE */
byte ready = 0;			/* LLIST: walked and released, oldest first */

/* The wake-up fd and the debt */
byte efd = 0;			/* signals pending in the fd */
byte owed = 0;			/* signals owed (the write failed) */
byte fails = FAILS;		/* write failures the environment may still inject */
byte must = 0;			/* signals that posts had to send */
byte sent = 0;			/* signals that reached the fd */
byte handled = 0;
byte credit = 0;		/* BROKEN_COUNTED: signals drained, not yet popped */

/* libevent */
bool timer = false;		/* `again` is pending (zero timeout) */
bool act_fd = false, act_sock = false, act_timer = false;
bool act_again = false;		/* BROKEN_NO_YIELD: activated from its own callback */

/* The socket */
bool sock = false;		/* readable, not yet served */
byte bypass = 0;		/* inbox rounds begun while it was readable */

/* A write to the fd that succeeded, or found it full (readable already). */
inline fd_signal()
{
	if
	:: efd < CAP -> efd++
	:: else -> skip
	fi;
#ifndef FLOOD
	sent++
#endif
}

proctype producer(byte me)
{
	byte i = 0, mine;
	bool must_signal;

end_p:
	do
#ifdef FLOOD
	:: true ->
#else
	:: i < NITEMS ->
#endif
#if defined(RING)
		/* R1: claim an index; a full ring refuses, and the producer
		 * tries again until there is room (for safety the same as
		 * waiting here: a refused post changes nothing) */
		d_step {
			(ptail + M - cons) % M < RCAP ->
			mine = ptail;
			ptail = NEXT(ptail)
		};
		/* R2: store the message in its slot */
		d_step { filled[mine] = true; mine = 0 };
		/* R3: count it; only the post that found 0 signals */
		d_step { must_signal = (rcount == 0); rcount++ };
#elif defined(MUTEX)
		/* lock, append, unlock: one step */
		d_step {
#ifdef FLOOD
			mq + mb < W ->
#endif
#ifdef ELIDE
			must_signal = (mq == 0);	/* found the list empty */
#else
			must_signal = true;
#endif
			mq++
		};
#else
		/* P1a: exchange the tail */
		d_step {
#ifdef FLOOD
			INFLIGHT < W ->
#endif
#ifdef SPIN
			pbuf[me] == NONE ->	/* a locked exchange drains the buffer */
#endif
			mine = tail;
#if defined(ALWAYS) && !defined(BROKEN_ALWAYS_ELIDE)
			must_signal = true;
#elif defined(VYUKOV)
			must_signal = stub[(tail + M - 1) % M];	/* found the stub */
			stub[mine] = false;
#elif defined(SPIN)
			must_signal = false;	/* the flag decides, below */
#else
			must_signal = (tail == qstart);	/* LLIST: nothing since the take */
#endif
			linked[mine] = false;
			tail = NEXT(tail)
		};
		/* P1b: link the old tail to the node */
#ifdef SPIN
		d_step { pbuf[me] = mine; mine = 0 };	/* into the store buffer */
#ifndef BROKEN_SPIN_NO_FENCE_P
		pbuf[me] == NONE;			/* F_p: wait until it is in memory */
#endif
		if					/* P2: load the flag ... */
		:: sleeping == 1 ->
			d_step {			/* ... exchange it (locked) */
				pbuf[me] == NONE ->
				if
				:: sleeping == 1 -> sleeping = 0; must_signal = true
				:: else -> skip
				fi
			}
		:: else -> skip
		fi;
#else
		d_step { linked[mine] = true; mine = 0 };
#endif
#endif
		/* P2: signal, or owe the signal if the write fails */
		if
		:: must_signal ->
			atomic {
				must_signal = false;
#ifndef FLOOD
				must++;
#endif
				if
				:: fails > 0 -> fails--; owed++
				:: true -> fd_signal()
				fi
			}
		:: else -> skip
		fi
#ifndef FLOOD
		; i++
	:: else -> break
#endif
	od
}

#ifdef SPIN
/* The store buffers drain, in their own time. */
inline flush(p)
{
	atomic { pbuf[p] != NONE -> linked[pbuf[p]] = true; pbuf[p] = NONE }
}

proctype memory()
{
end_m:
	do
	:: atomic { cbuf -> sleeping = 1; cbuf = false }
	:: flush(0)
	:: flush(1)
#if NPROD > 2
	:: flush(2)
#endif
	od
}
#endif

/* inbox_retry_wakeups(), in a loop, as the acceptor's timer runs it. */
proctype retrier()
{
	byte n;
	bool claimed;

end_r:
	do
	:: owed > 0 ->
#ifndef BROKEN_RETRY
		/* claim one unit first (another retrier may have taken it) */
		atomic {
			if
			:: owed > 0 -> owed--; claimed = true
			:: else -> skip
			fi
		};
		/* send; give the unit back if the send failed */
		if
		:: claimed ->
			atomic {
				claimed = false;
				if
				:: fails > 0 -> fails--; owed++
				:: true -> fd_signal()
				fi
			}
		:: else -> skip
		fi
#else
		n = owed;
		do
		:: n > 0 ->
			if
			:: atomic { fails > 0 -> fails-- }; break	/* send failed */
			:: atomic { fd_signal() }
			fi;
			/* weak CAS: may fail spuriously, and then reloads n */
			atomic {
				if
				:: owed == n -> owed = n - 1; n = n - 1
				:: true -> n = owed
				fi
			}
		:: n == 0 -> break
		od
#endif
	od
}

proctype client()
{
	byte r = 0;

end_cl:
	do
#ifdef FLOOD
	:: !sock -> sock = true
#else
	:: r < NREQ && !sock -> sock = true; r++
	:: r == NREQ -> break
#endif
	od
}

/* C2 */
inline collect()
{
#if defined(RING)
	d_step { k = rcount; taken = 0 }	/* how many counted this round may take */
#elif defined(MUTEX)
#ifdef ELIDE
	d_step { mb = mb + mq; mq = 0 }	/* lock, take the whole list, unlock */
#else
	skip	/* nothing to collect: next() pops the shared list */
#endif
#elif defined(ALWAYS) || defined(VYUKOV) || defined(LLIST)
	skip	/* nothing to collect: next() works on the shared structure */
#else
	if
	:: qstart == tail -> skip			/* empty */
	:: qstart != tail && !linked[qstart] -> skip	/* WOULDBLOCK: its producer owes a signal */
	:: qstart != tail && linked[qstart] ->		/* S1 took head.next */
#ifdef SPIN
		!cbuf;					/* (a locked exchange) */
#endif
		qstart = tail				/* S2 */
	fi
#endif
}

/* VYUKOV: head's next is written (the position after vh is taken and its
 * link stored). */
#define VNEXT (NEXT(vh) != tail && linked[NEXT(vh)])

/* vyukov_next() of inbox_vyukov.c, one load per step. */
inline vyukov_next()
{
	if
	:: stub[vh] ->
		if
		:: VNEXT -> vh = NEXT(vh)		/* skip the stub */
		:: !VNEXT ->
			if
			:: NEXT(vh) == tail -> skip	/* the tail is the stub: none */
			:: NEXT(vh) != tail -> wouldblock = true; due = true
			fi
		fi
	:: else -> skip
	fi;
	if
	:: got || wouldblock || stub[vh] -> skip	/* (stub: ended above) */
	:: !stub[vh] && VNEXT -> d_step { vh = NEXT(vh); got = true }
	:: !stub[vh] && !VNEXT ->
		if
		:: NEXT(vh) != tail -> wouldblock = true	/* stuck on a message */
#ifdef BROKEN_VYUKOV_KEEP_LAST
		:: NEXT(vh) == tail -> skip	/* none, until a successor links */
#else
		:: NEXT(vh) == tail ->
			/* the last node: push the stub behind it, then look again */
			d_step { sp = tail; stub[sp] = true; linked[sp] = false;
				 tail = NEXT(tail) };
			linked[sp] = true;
			if
			:: VNEXT -> d_step { vh = NEXT(vh); got = true; sp = 0 }
			:: !VNEXT -> wouldblock = true; sp = 0
			fi
#endif
		fi
	fi
}

/* llist_next() of inbox_llist.c: hand out a ready item; else walk the
 * chain (newest first); else take the whole stack. */
inline llist_next()
{
	if
	:: ready > 0 -> d_step { ready--; bstart = NEXT(bstart); got = true }
	:: ready == 0 && walk == 0 ->
		d_step { walk = (tail + M - qstart) % M; qstart = tail }	/* take */
	:: else -> skip
	fi;
	do
	:: got -> break
	:: !got && walk > 0 && linked[(bstart + walk - 1) % M] -> walk--
	:: !got && walk > 0 && !linked[(bstart + walk - 1) % M] ->
		wouldblock = true; break		/* cannot tell: re-arm */
	:: !got && walk == 0 ->
		d_step {
			ready = (qstart + M - bstart) % M;	/* the chain, oldest first */
			if
			:: ready > 0 -> ready--; bstart = NEXT(bstart); got = true
			:: else -> skip
			fi
		};
		break
	od
}

/* One message of the batch: got, or none (empty), or wouldblock. */
inline next()
{
	got = false;
	wouldblock = false;
	due = false;
#if defined(RING)
	if
	:: taken == k -> skip			/* the rest is not counted yet */
	:: taken < k && filled[cons] ->
		d_step { filled[cons] = false; cons = NEXT(cons); taken++ }; got = true
	:: taken < k && !filled[cons] -> wouldblock = true	/* between R1 and R2 */
	fi
#elif defined(MUTEX) && defined(ELIDE)
	d_step {
		if
		:: mb > 0 -> mb--; got = true		/* the batch: no lock */
		:: else -> skip
		fi
	}
#elif defined(MUTEX)
	d_step {
		if
#ifdef BROKEN_COUNTED
		:: mq > 0 && credit > 0 -> mq--; credit--; got = true
#else
		:: mq > 0 -> mq--; got = true
#endif
		:: else -> skip
		fi
	}
#elif defined(VYUKOV)
	vyukov_next()
#elif defined(LLIST)
	llist_next()
#elif defined(ALWAYS)
	/* liburcu's dequeue from the shared queue: head.next must be written
	 * (the first item's link), and then the item's own link to the next,
	 * unless it is the last (then the tail is moved back to the head). */
	if
	:: bstart == tail -> skip
	:: bstart != tail && linked[bstart] && (NEXT(bstart) == tail || linked[NEXT(bstart)]) ->
		d_step { bstart = NEXT(bstart); qstart = bstart }; got = true
	:: bstart != tail && !(linked[bstart] && (NEXT(bstart) == tail || linked[NEXT(bstart)])) ->
		wouldblock = true
	fi
#else
	if
	:: bstart == qstart -> skip
	:: bstart != qstart && (NEXT(bstart) == qstart || linked[NEXT(bstart)]) ->
		bstart = NEXT(bstart); got = true
	:: bstart != qstart && NEXT(bstart) != qstart && !linked[NEXT(bstart)] ->
		wouldblock = true
	fi
#endif
}

/* The round (inbox_round()). */
inline round()
{
	d_step {
#ifndef BROKEN_NO_DEL
		timer = false; act_timer = false;	/* event_del(again): one round per pass */
#endif
		if
		:: sock -> bypass++
		:: else -> skip
		fi;
		assert(bypass <= 2)
	};
#if !defined(BROKEN_DRAIN_AFTER) && !defined(BROKEN_DRAIN_LAST)
#ifdef BROKEN_COUNTED
	d_step { credit = credit + efd; efd = 0 };	/* C1, counting signals */
#else
	efd = 0;					/* C1 */
#endif
#endif
	collect();					/* C2 */
#ifdef BROKEN_DRAIN_AFTER
	efd = 0;
#endif
	n = 0;
	rearm = false;
	do						/* C3 */
	:: n == BUDGET -> rearm = true; break		/* perhaps more */
	:: n < BUDGET ->
		next();
		if
		:: got ->
#ifndef FLOOD
			handled++;
#endif
			n++
		:: wouldblock ->
#if defined(VYUKOV)
#ifndef BROKEN_VYUKOV_NO_REARM
			rearm = !due;		/* stuck on a message node */
#endif
#elif defined(LLIST)
#ifndef BROKEN_LLIST_NO_REARM
			rearm = true;
#endif
#elif !defined(BROKEN_NO_BATCH_REARM) && !defined(ALWAYS) && !defined(SPIN)
			rearm = true;				/* that producer will not signal */
#endif
			break
		:: !got && !wouldblock -> break
		fi
	od;
#ifdef SPIN
	/* Nothing more and no re-arm: the handshake (D2, F_c, D3; D1's
	 * polling is only more looks, and is left out). What D3 finds is
	 * handled and C3 goes on; when the queue runs dry a second time in
	 * the round, the round re-arms with the flag still 0. */
	if
	:: rearm -> skip
	:: !rearm ->
		cbuf = true;				/* D2: 1, into the store buffer */
#ifndef BROKEN_SPIN_NO_FENCE_C
		!cbuf;					/* F_c */
#endif
#ifndef BROKEN_SPIN_NO_RECHECK
		collect();				/* D3 */
		next();
#endif
		if
		:: got ->
			d_step { sleeping = 0; handled++; n++; got = false };
			do
			:: n == BUDGET -> rearm = true; break
			:: n < BUDGET ->
				next();
				if
				:: got -> handled++; n++
				:: else -> rearm = true; break	/* dry again */
				fi
			od
		:: else -> skip				/* sleep */
		fi
	fi;
#endif
	skip;	/* (a break may not jump into a d_step) */
#ifdef RING
	d_step {	/* C4, end_round: subtract what was taken */
		rcount = rcount - taken;
#ifndef BROKEN_NO_END_REARM
		if
		:: rcount > 0 -> rearm = true	/* counted posts that did not signal */
		:: else -> skip
		fi;
#endif
		taken = 0; k = 0
	};
#ifdef BROKEN_DRAIN_LAST
	efd = 0;
#endif
#endif
	d_step {
		if
		:: rearm ->
#ifdef BROKEN_NO_YIELD
			act_again = true			/* event_active(): this pass */
#else
			timer = true				/* evtimer_add(again, {0,0}) */
#endif
		:: else -> skip
		fi;
		n = 0; rearm = false; got = false; wouldblock = false; due = false
	}
}

proctype consumer()
{
	byte n, sp;
	bool rearm, got, wouldblock, due;

end_c:
	do
	:: atomic {
		(efd > 0 || timer || sock) ->		/* epoll_wait */
		act_fd = (efd > 0);
		act_sock = sock;
		act_timer = timer;			/* expired: zero timeout */
		timer = false
	   };
		/* The pass: I/O events in either order, then the timer, then
		 * whatever was activated during the pass. */
		do
		:: act_fd -> act_fd = false; round()
		:: act_sock -> d_step { act_sock = false; sock = false; bypass = 0 }
		:: !act_fd && !act_sock && act_timer -> act_timer = false; round()
		:: !act_fd && !act_sock && !act_timer && act_again -> act_again = false; round()
		:: !act_fd && !act_sock && !act_timer && !act_again -> break
		od
#ifndef FLOOD
	:: timeout ->
		/* Nothing can move: every producer is done, the consumer sleeps
		 * with nothing readable and no timer. Nothing may be left, and
		 * every owed signal was sent exactly once. */
		assert(handled == TOTAL);
		assert(sent == must);
		break
#endif
	od
}

init {
	atomic {
		byte p = 0;
#ifdef VYUKOV
		stub[0] = true; linked[0] = true; tail = 1;	/* the initial stub */
#endif
		do
		:: p < NPROD -> pbuf[p] = NONE; run producer(p); p++
		:: else -> break
		od;
#ifdef SPIN
		run memory();
#endif
		p = 0;
		do
		:: p < NRETRY -> run retrier(); p++
		:: else -> break
		od;
		run client();
		run consumer()
	}
}

ltl all_handled { <> (handled == TOTAL) }
ltl sock_served { [] (sock -> <> !sock) }
