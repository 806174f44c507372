/*
 * chat_log.c - see chat_log.h.
 *
 * Who holds a chunk. Each reader holds every chunk from the one its
 * position is in (`at`) to the newest: `holders` of a chunk counts the
 * readers whose `at` is that chunk or an older one. So a new chunk starts
 * with every reader as a holder; a reader that moves past a chunk lets go
 * of it; and the oldest chunk can be freed as soon as it has no holder
 * (no reader needs it, nor anything before it). A reader leaves a full
 * chunk only once the next one exists, so `at` is never NULL.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "chat_log.h"

#define SEND_IOVS 64		/* chunks per writev(): 1 MiB */

struct chat_chunk {
	TAILQ_ENTRY(chat_chunk) link;
	uint64_t start;			/* the position of data[0] */
	size_t used;
	unsigned holders;
	char data[CHAT_LOG_CHUNK];
};

static struct chat_chunk *chunk_new(uint64_t start, unsigned holders)
{
	struct chat_chunk *c = malloc(sizeof(*c));

	if (c != NULL)
		*c = (struct chat_chunk){ .start = start, .holders = holders };
	return c;
}

/* Frees old chunks that nobody holds; the newest always stays. */
static void trim(struct chat_log *log)
{
	struct chat_chunk *c;

	while ((c = TAILQ_FIRST(&log->chunks)) != TAILQ_LAST(&log->chunks, chat_chunks_head) &&
	       c->holders == 0) {
		TAILQ_REMOVE(&log->chunks, c, link);
		log->chunk_bytes -= sizeof(*c);
		free(c);
	}
}

int chat_log_init(struct chat_log *log)
{
	struct chat_chunk *c = chunk_new(0, 0);

	if (c == NULL)
		return -ENOMEM;
	*log = (struct chat_log){ .chunk_bytes = sizeof(*c) };
	TAILQ_INIT(&log->chunks);
	TAILQ_INSERT_TAIL(&log->chunks, c, link);
	return 0;
}

void chat_log_fini(struct chat_log *log)
{
	struct chat_chunk *c;

	while ((c = TAILQ_FIRST(&log->chunks)) != NULL) {
		TAILQ_REMOVE(&log->chunks, c, link);
		free(c);
	}
}

int chat_log_append(struct chat_log *log, const char *text, size_t len, uint64_t *start)
{
	struct chat_chunk *c = TAILQ_LAST(&log->chunks, chat_chunks_head), *fresh;
	TAILQ_HEAD(, chat_chunk) more = TAILQ_HEAD_INITIALIZER(more);
	size_t room = CHAT_LOG_CHUNK - c->used, n;
	uint64_t next = c->start + CHAT_LOG_CHUNK;

	/* All or nothing: the chunks the text needs first, then the copy. */
	for (size_t need = len > room ? len - room : 0; need > 0; need -= n) {
		n = need < CHAT_LOG_CHUNK ? need : CHAT_LOG_CHUNK;
		if ((fresh = chunk_new(next, log->readers)) == NULL) {
			while ((fresh = TAILQ_FIRST(&more)) != NULL) {
				TAILQ_REMOVE(&more, fresh, link);
				free(fresh);
			}
			return -ENOMEM;
		}
		TAILQ_INSERT_TAIL(&more, fresh, link);
		next += CHAT_LOG_CHUNK;
	}
	while ((fresh = TAILQ_FIRST(&more)) != NULL) {
		TAILQ_REMOVE(&more, fresh, link);
		TAILQ_INSERT_TAIL(&log->chunks, fresh, link);
		log->chunk_bytes += sizeof(*fresh);
	}
	*start = log->head;
	for (; len > 0; c = TAILQ_NEXT(c, link)) {
		n = CHAT_LOG_CHUNK - c->used < len ? CHAT_LOG_CHUNK - c->used : len;
		memcpy(c->data + c->used, text, n);
		c->used += n;
		text += n;
		len -= n;
		log->head += n;
	}
	trim(log);	/* with no reader, older chunks were held by nobody */
	return 0;
}

uint64_t chat_log_oldest(const struct chat_log *log)
{
	return TAILQ_FIRST(&log->chunks)->start;
}

void chat_reader_attach(struct chat_log *log, struct chat_reader *r)
{
	*r = (struct chat_reader){ .pos = log->head,
				   .at = TAILQ_LAST(&log->chunks, chat_chunks_head) };
	r->at->holders++;
	log->readers++;
}

void chat_reader_detach(struct chat_log *log, struct chat_reader *r)
{
	for (struct chat_chunk *c = r->at; c != NULL; c = TAILQ_NEXT(c, link))
		c->holders--;
	log->readers--;
	trim(log);
	free(r->skips);
	r->skips = NULL;
	r->at = NULL;
}

int chat_reader_skip(struct chat_reader *r, uint64_t start, size_t len)
{
	struct chat_skip *last;

	if (r->n_skips > 0) {
		last = &r->skips[(r->first_skip + r->n_skips - 1) % r->cap_skips];
		if (last->end == start) {	/* right after the previous one */
			last->end += len;
			return 0;
		}
	}
	if (r->n_skips == r->cap_skips) {
		unsigned cap = r->cap_skips ? 2 * r->cap_skips : 4;
		struct chat_skip *grown = malloc(cap * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		for (unsigned i = 0; i < r->n_skips; i++)
			grown[i] = r->skips[(r->first_skip + i) % r->cap_skips];
		free(r->skips);
		r->skips = grown;
		r->cap_skips = cap;
		r->first_skip = 0;
	}
	r->skips[(r->first_skip + r->n_skips++) % r->cap_skips] =
		(struct chat_skip){ .start = start, .end = start + len };
	return 0;
}

/* Moves r to position p, letting go of the chunks it has passed. */
static void advance(struct chat_log *log, struct chat_reader *r, uint64_t p)
{
	struct chat_chunk *next;

	r->pos = p;
	while (p >= r->at->start + CHAT_LOG_CHUNK && (next = TAILQ_NEXT(r->at, link)) != NULL) {
		r->at->holders--;
		r->at = next;
	}
	trim(log);
}

/* Passes the own ranges that begin at or before r's position. */
static void skip_own(struct chat_log *log, struct chat_reader *r)
{
	while (r->n_skips > 0 && r->skips[r->first_skip].start <= r->pos) {
		if (r->skips[r->first_skip].end > r->pos)
			advance(log, r, r->skips[r->first_skip].end);
		r->first_skip = (r->first_skip + 1) % r->cap_skips;
		r->n_skips--;
	}
}

ssize_t chat_reader_send(struct chat_log *log, struct chat_reader *r, int fd, uint64_t limit)
{
	struct iovec iov[SEND_IOVS];
	ssize_t total = 0, n;

	if (limit > log->head)
		limit = log->head;
	for (;;) {
		uint64_t end = limit, cur = r->pos;
		size_t want = 0;
		int cnt = 0;

		skip_own(log, r);
		cur = r->pos;
		if (cur >= limit)
			return total;
		if (r->n_skips > 0 && r->skips[r->first_skip].start < end)
			end = r->skips[r->first_skip].start;
		for (struct chat_chunk *c = r->at; c != NULL && cnt < SEND_IOVS && cur < end;
		     c = TAILQ_NEXT(c, link)) {
			uint64_t stop = c->start + c->used < end ? c->start + c->used : end;

			if (stop <= cur)
				continue;
			iov[cnt++] = (struct iovec){ .iov_base = c->data + (cur - c->start),
						     .iov_len = (size_t)(stop - cur) };
			want += (size_t)(stop - cur);
			cur = stop;
		}
		do
			n = writev(fd, iov, cnt);
		while (n == -1 && errno == EINTR);
		if (n == -1)
			return total > 0 && errno == EAGAIN ? total : -1;
		advance(log, r, r->pos + (uint64_t)n);
		total += n;
		if ((size_t)n < want)
			return total;	/* the socket is full */
	}
}
