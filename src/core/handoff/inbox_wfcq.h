/*
 * inbox_wfcq.h - the wfcq variant's queue, private to inbox_wfcq.c and to
 * tests/test_inbox.c, which stops a producer between its two stores by doing
 * them itself (to make both kinds of WOULDBLOCK happen on purpose).
 */
#ifndef MTS_INBOX_WFCQ_H
#define MTS_INBOX_WFCQ_H

#include <urcu/wfcqueue.h>

#include "inbox_impl.h"

struct inbox_wfcq {
	struct inbox common;
	/* Exchanged by every enqueue and by every splice that takes nodes. */
	_Alignas(CACHE_LINE) struct cds_wfcq_tail tail;
	/* head.node.next: set by the post that found the queue empty (its
	 * second store), taken and cleared by the splice. */
	_Alignas(CACHE_LINE) struct __cds_wfcq_head head;
	/* The private batch: the consumer's alone, but for the links that
	 * producers caught between their two stores have yet to write. */
	struct __cds_wfcq_head batch_head;
	struct cds_wfcq_tail batch_tail;
};

/* The queue's operations, for inbox_spin.c, which runs the same queue
 * with another wake-up strategy. */
int inbox_wfcq_init(struct inbox *ib);
int inbox_wfcq_enqueue(struct inbox *ib, struct inbox_msg *msg);
bool inbox_wfcq_collect(struct inbox *ib);
struct inbox_msg *inbox_wfcq_next(struct inbox *ib);
struct inbox_msg *inbox_wfcq_leftover(struct inbox *ib);

#endif
