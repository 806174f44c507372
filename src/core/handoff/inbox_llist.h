/*
 * inbox_llist.h - the llist variant's state, private to inbox_llist.c and to
 * tests/test_inbox.c, which stops a producer between the two steps of its
 * push by doing them itself.
 */
#ifndef MTS_INBOX_LLIST_H
#define MTS_INBOX_LLIST_H

#include <urcu/wfstack.h>

#include "inbox_impl.h"

struct inbox_llist {
	struct inbox common;
	/* Exchanged by every push and every take. */
	_Alignas(CACHE_LINE) struct __cds_wfs_stack stack;
	/* The consumer's alone. ready: oldest first, linked through
	 * snode.next, NULL-terminated. */
	_Alignas(CACHE_LINE) struct cds_wfs_node *ready, *ready_last;
	/* A chain being reversed: the next node to read (newest first), or
	 * NULL when no walk is pending; and what is reversed so far. */
	struct cds_wfs_node *walk;
	struct cds_wfs_node *rev, *rev_last;
};

#endif
