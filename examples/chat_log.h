/*
 * chat_log.h - one worker's log of broadcast text, sent by each reader at its
 * own pace. The text is stored once per worker, however many readers there
 * are; a reader is a position in it.
 *
 *   chunks   [oldest] -> ... -> [newest]    appended at the newest, freed at
 *                                            the oldest once no reader needs it
 *   readers  a position each (pos), and the chunk that holds it
 *
 * Positions count bytes since the log began. A reader's backlog is
 * head - pos: what was appended since it last sent. The log holds the
 * largest backlog plus at most one chunk, so a cap on every reader's backlog
 * (chatserver's --max-queue) caps the log, whatever the number of readers.
 *
 * A reader never gets its own lines back: the lines it appended are ranges it
 * skips (adjacent ones merge, so a client sending many lines in a row skips
 * them as one range).
 *
 * Thread: a log and its readers belong to one worker; nothing here is shared
 * with another thread.
 */
#ifndef CHAT_LOG_H
#define CHAT_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#define CHAT_LOG_CHUNK (16 * 1024)

struct chat_chunk;

struct chat_log {
	TAILQ_HEAD(chat_chunks_head, chat_chunk) chunks;	/* oldest first; never empty */
	uint64_t head;				/* position of the next byte appended */
	unsigned readers;
	size_t chunk_bytes;			/* allocated, for statistics */
};

struct chat_skip {
	uint64_t start, end;			/* the reader's own text: [start, end) */
};

struct chat_reader {
	uint64_t pos;				/* the next byte to send */
	struct chat_chunk *at;			/* the chunk holding pos (or the one it ends) */
	struct chat_skip *skips;		/* a ring of own ranges ahead of pos */
	unsigned n_skips, first_skip, cap_skips;
};

/* Returns 0 or -ENOMEM. */
int chat_log_init(struct chat_log *log);
/* Every reader must have been detached. */
void chat_log_fini(struct chat_log *log);

/* Appends a copy of text; returns its start position, or -ENOMEM (then
 * nothing was appended). */
int chat_log_append(struct chat_log *log, const char *text, size_t len, uint64_t *start);

/* A new reader starts at the head: it gets what is appended from now on. */
void chat_reader_attach(struct chat_log *log, struct chat_reader *r);
/* Lets go of everything the reader still held; frees its skips. */
void chat_reader_detach(struct chat_log *log, struct chat_reader *r);
/* The range [start, start + len) is r's own text: r will not send it. */
int chat_reader_skip(struct chat_reader *r, uint64_t start, size_t len);

/* The position of the oldest byte the log still holds (a chunk's start). */
uint64_t chat_log_oldest(const struct chat_log *log);

static inline uint64_t chat_reader_backlog(const struct chat_log *log,
					   const struct chat_reader *r)
{
	return log->head - r->pos;
}

/*
 * Writes what r has pending (up to `limit`, a position) to fd with writev():
 * returns the bytes written (0 when nothing was pending), or -1 with errno
 * (EAGAIN: the socket is full).
 */
ssize_t chat_reader_send(struct chat_log *log, struct chat_reader *r, int fd, uint64_t limit);

#endif
