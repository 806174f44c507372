/*
 * fault.h - test-only fault injection at named points.
 *
 * Compiled in only with ./configure --enable-fault-injection; in every other
 * build these are empty inlines and the points cost nothing.
 *
 * Failure points: fault_hit(p) says whether this pass through p must fail.
 * The environment variable MTS_FAULTS arms them, e.g.
 *
 *   MTS_FAULTS="conn_alloc=5,wakeup_write=3"
 *
 * makes every 5th connection allocation and every 3rd wake-up write fail;
 * a test inside the process may call fault_arm() instead. (Failures inside
 * libevent, such as evbuffer_new() in the echo protocol, are injected from
 * outside by tests/fault_shim.c, an LD_PRELOAD library.) tests/test_faults.c
 * and tests/test_inbox.c use them.
 *
 * Gates: fault_gate(g) is a place where a test can hold threads, to open a
 * race window as wide as it likes (tests/test_workq.c, test_executor.c,
 * test_control.c and test_resume_window.c; each gate below says where it
 * sits, and each test says which race it widens). A gate does nothing
 * until a test closes it.
 *
 * Notes: fault_note(n, v) records a value the code chose, so that a test can
 * read as a sequence what would otherwise show only as a duration, which no
 * test may measure (the retrier notes each wait it chooses; tests/test_retry.c
 * reads its back-off from them). A note changes nothing the code does.
 */
#ifndef MTS_FAULT_H
#define MTS_FAULT_H

#include <stdbool.h>

enum fault_point {
	FAULT_CONN_ALLOC,	/* acceptor: the struct mts_conn for a new connection */
	FAULT_WAKEUP_WRITE,	/* inbox: the eventfd/pipe write that wakes a worker */
	FAULT_N_POINTS
};

enum fault_gate {
	GATE_WORKQ_SUBMIT,	/* mts_workq_submit(), past its check of `stopping` */
	GATE_EXEC_POST,		/* exec_post(), past its check of `closed` */
	GATE_EXEC_REFILL,	/* a kept message, about to be posted (executor.c) */
	GATE_EXEC_CLOSE,	/* exec_close(), between its store of `closed` and its wait */
	GATE_CONTROL_TAKE,	/* control.c's handler, drained, before it takes the reasons */
	/* reuseport and shared: a worker's resume task (strategy_workers.c),
	 * as it starts, before it clears resume_posted ... */
	GATE_RESUME_ENTER,
	/* ... and once it cleared it, before it looks at the count */
	GATE_RESUME_LOOK,
	GATE_N
};

enum fault_note {
	NOTE_RETRY_WAIT,	/* retry.c: each wait of a retrier, in ms (0: until a kick) */
	NOTE_N
};

/* A note keeps its first FAULT_NOTES_KEPT values and only counts the rest, so
 * a long-running server of a fault-injection build keeps a bounded record. */
#define FAULT_NOTES_KEPT 64

#ifdef FAULT_INJECTION
/* Any thread. True when this pass through point p must fail. */
bool fault_hit(enum fault_point p);
/* Tests: from now on every `every`-th pass through p fails (0: none). */
void fault_arm(enum fault_point p, unsigned every);

/* Any thread: waits here while a test holds gate g closed. */
void fault_gate(enum fault_gate g);
/* Tests: close g (threads that reach it wait), count the waiters, open it. */
void fault_gate_close(enum fault_gate g);
unsigned fault_gate_waiting(enum fault_gate g);
void fault_gate_open(enum fault_gate g);

/* Any thread: records v as note n's next value. */
void fault_note(enum fault_note n, unsigned v);
/* Tests: copies the first values of note n, at most max, to out, in the order
 * they were recorded; returns how many were recorded in all (kept or not).
 * A note is process-wide: its values are those of every thread that passes
 * it, so a test reads one whose writers it knows. */
unsigned fault_notes(enum fault_note n, unsigned *out, unsigned max);
/* Tests: let one thread through closed gate g (one of those waiting, or the
 * next to come if none is); it stays closed for the others. Which of
 * several waiters goes is not said: a test that cares tells them apart by
 * what the one let through does. */
void fault_gate_open_one(enum fault_gate g);
#else
static inline bool fault_hit(enum fault_point p)
{
	(void)p;
	return false;
}

static inline void fault_gate(enum fault_gate g)
{
	(void)g;
}

static inline void fault_note(enum fault_note n, unsigned v)
{
	(void)n;
	(void)v;
}
#endif

#endif
