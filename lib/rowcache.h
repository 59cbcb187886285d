/* SPDX-License-Identifier: MIT */
/*
 * rowcache.h - a channel's committed rows kept in memory for the readers
 * at its head (litebus_options.reader_inline_bytes).
 *
 * One slot per ring slot, up to LB_ROWCACHE_MAX_SLOTS: the row published
 * at ring position p lives in slot (p & mask), stamped with p, as its
 * ring record does.  The
 * writer fills a slot after COMMIT and before it publishes the ring record
 * at that position; a reader that took record p from the ring asks for
 * slot p and gets either the row as the writer read it back from the table
 * inside the committing transaction (writer.c, W1), or a miss.
 *
 * Threads: lb_rowcache_put on the writer thread only; the rest from any
 * thread.
 */
#ifndef LB_ROWCACHE_H
#define LB_ROWCACHE_H

#include "arch.h"
#include "outbox.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A row's image: LB_ROW_HDR_WORDS header words, then the subject, the
 * event type, namespace and instance tag with their NUL terminators (the
 * last two only when not NULL) and the payload, zero-padded to a whole
 * word.  Plain words, so a reader's copy needs no decoding beyond the
 * header. */
#define LB_ROW_HDR_WORDS 7u

/* The most slots a cache has, whatever the ring's capacity: a reader at
 * the head is within a batch or two of it, and a ring of 2^24 slots would
 * otherwise want 4 GiB of rows at the default size.  Rows of positions
 * further back are misses, read from the table. */
#define LB_ROWCACHE_MAX_SLOTS 65536u

struct lb_rowcache {
	/* Immutable after lb_rowcache_create(). */
	uint64_t mask;	       /* ring capacity - 1 */
	uint32_t inline_bytes; /* the option: largest variable part kept */
	uint32_t img_words;    /* most words an image takes */
	uint32_t stride;       /* words per slot: the stamp and an image,
				  rounded up to whole cache lines */
	/* capacity x stride words; slot i starts at words[i * stride] with
	 * its stamp (the ring position it holds, or a busy mark).  Written
	 * by the writer only (RC1..RC3, rowcache.c). */
	_Atomic uint64_t *words;
};

/* A cache for a ring of `capacity` slots (a power of two) keeping rows
 * whose variable part is at most `inline_bytes` (1..65536).  NULL if out
 * of memory.  Freed with lb_rowcache_free() once no thread can use it. */
struct lb_rowcache *lb_rowcache_create(uint32_t capacity,
				       uint32_t inline_bytes);
void lb_rowcache_free(struct lb_rowcache *c);

/* Words the image of `row` takes, or 0 if its variable part exceeds
 * c->inline_bytes (the row is then read from the table). */
size_t lb_rowcache_image_words(const struct lb_rowcache *c,
			       const struct lb_outbox_row *row);
/* Write the image of `row` into img[0 .. lb_rowcache_image_words()). */
void lb_rowcache_encode(const struct lb_outbox_row *row, uint64_t *img);

/* Writer thread: the row published at ring position `pos` (before that
 * record is published: RC1). */
void lb_rowcache_put(struct lb_rowcache *c, uint64_t pos, const uint64_t *img,
		     size_t nwords);

/* Any thread: does slot `pos` hold the row published at ring position
 * `pos` now?  A hint: the slot may be reused right after. */
bool lb_rowcache_has(const struct lb_rowcache *c, uint64_t pos);

/* Any thread: copy the image of the row at ring position `pos`, whose
 * record carried `event_id`, into dst (room for c->img_words words;
 * 8-byte aligned) and decode it into *row, whose pointers then point into
 * dst.  False on a miss: the slot holds another position (lapped,
 * overwritten, or the row was too large or published before the cache
 * existed); *row is then unset and dst garbage. */
bool lb_rowcache_get(const struct lb_rowcache *c, uint64_t pos,
		     int64_t event_id, unsigned char *dst,
		     struct lb_outbox_row *row);

#endif
