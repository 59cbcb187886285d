/* SPDX-License-Identifier: MIT */
/*
 * rowcache.c - committed rows in memory for the readers at a channel's
 * head.
 *
 * Without it every reader fetches every row from SQLite with its own
 * connection, so 64 readers following the head ran 64 sets of queries for
 * rows the writer had read back a microsecond earlier (writer.c, W1).
 * With it the writer copies each row it publishes, as it read it back
 * inside the committing transaction, into the slot beside the ring record,
 * and a reader whose next id is exactly that record's takes the row from
 * there.  Anything else - a row too large, a slot already overwritten, a
 * lap, a gap in the ids, rows another connection committed - comes from
 * the table as before (reader.c, D9).
 *
 * Each slot is a seqlock over a variable number of words, like a ring slot
 * (ring.c): the writer marks it busy, writes the words, then stamps it
 * with the ring position; a reader copies the words between two loads of
 * the stamp and keeps the copy only if both equal the position it wants.
 * The copy goes through relaxed atomic words, so the race with the writer
 * is a legal one and ThreadSanitizer has nothing to report.  The writer
 * never waits for a reader: a reader that is too slow misses and reads the
 * table.
 *
 * Invariants
 *   RC1 A slot is stamped with position p only by lb_rowcache_put(p),
 *       which the writer calls after the COMMIT of the row's transaction
 *       returned and before it publishes the ring record at p (writer.c,
 *       W1; channel.c, C7).  So a reader that took record p from the ring
 *       and finds stamp p in the slot reads the row of that committed
 *       record, as the table held it at COMMIT.
 *   RC2 Positions are never reused (ring.c, R2), so a stamp equal to p
 *       cannot belong to another row; a slot holds p, a busy mark, a
 *       position p + k * slots (k >= 1) or an older one.  The cache may
 *       have fewer slots than the ring (LB_ROWCACHE_MAX_SLOTS): a record
 *       still on the ring may then have lost its row - a miss.
 *   RC3 Ordering: the busy mark is stored, then a release fence, then the
 *       words, then the stamp with release.  A reader loads the stamp with
 *       acquire, copies the words (relaxed), issues an acquire fence and
 *       loads the stamp again.  If it copied any word of a later write,
 *       the fences make the busy mark (or that later stamp) visible to its
 *       second load, which then differs from p: a torn copy is never kept.
 *       Lengths read from a torn header are bounded by img_words before
 *       they are used, so a torn copy cannot overrun dst either.
 */
#include "rowcache.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define RC_STAMP_BUSY UINT64_MAX

/* Header word 6's flags: which pointers are NULL. */
#define RC_SUBJECT_NULL 1u
#define RC_NS_NULL 2u
#define RC_TAG_NULL 4u
#define RC_PAYLOAD_NULL 8u

#define RC_WORDS_PER_LINE (LB_CACHELINE / sizeof(uint64_t))

static size_t
rc_words(size_t bytes)
{
	return (bytes + sizeof(uint64_t) - 1) / sizeof(uint64_t);
}

struct lb_rowcache *
lb_rowcache_create(uint32_t capacity, uint32_t inline_bytes)
{
	struct lb_rowcache *c;
	size_t stride, len;

	assert(capacity >= 2 && (capacity & (capacity - 1)) == 0);
	assert(inline_bytes >= 1 && inline_bytes <= 65536);
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->mask = capacity - 1u;
	c->inline_bytes = inline_bytes;
	c->img_words = (uint32_t)(LB_ROW_HDR_WORDS + rc_words(inline_bytes));
	/* The stamp and the image, in whole cache lines: no two slots share
	 * one, so a reader's copy never contends with the writer's next
	 * slot. */
	stride = 1u + c->img_words;
	stride = (stride + RC_WORDS_PER_LINE - 1) / RC_WORDS_PER_LINE *
		 RC_WORDS_PER_LINE;
	c->stride = (uint32_t)stride;
	len = (size_t)capacity * stride * sizeof(uint64_t);
	c->words = aligned_alloc(LB_CACHELINE, len);
	if (c->words == NULL) {
		free(c);
		return NULL;
	}
	/* Position 0 is never published (R2): stamp 0 never matches. */
	for (size_t i = 0; i < (size_t)capacity * stride; i++)
		atomic_init(&c->words[i], 0);
	return c;
}

void
lb_rowcache_free(struct lb_rowcache *c)
{
	if (c == NULL)
		return;
	free(c->words);
	free(c);
}

/* The variable part's bytes: subject, type + NUL, namespace + NUL and tag
 * + NUL when present, payload. */
static size_t
rc_var_bytes(const struct lb_outbox_row *row)
{
	return row->subject_len + row->event_type_len + 1 +
	       (row->ns != NULL ? row->ns_len + 1 : 0) +
	       (row->tag != NULL ? row->tag_len + 1 : 0) + row->payload_len;
}

size_t
lb_rowcache_image_words(const struct lb_rowcache *c,
			const struct lb_outbox_row *row)
{
	size_t var;

	/* Each length alone first: their sum must not wrap. */
	if (row->subject_len > c->inline_bytes ||
	    row->event_type_len > c->inline_bytes ||
	    row->ns_len > c->inline_bytes || row->tag_len > c->inline_bytes ||
	    row->payload_len > c->inline_bytes)
		return 0;
	var = rc_var_bytes(row);
	if (var > c->inline_bytes)
		return 0;
	return LB_ROW_HDR_WORDS + rc_words(var);
}

static unsigned char *
rc_put_bytes(unsigned char *p, const void *src, size_t len, bool nul)
{
	if (len > 0)
		memcpy(p, src, len);
	p += len;
	if (nul)
		*p++ = '\0';
	return p;
}

void
lb_rowcache_encode(const struct lb_outbox_row *row, uint64_t *img)
{
	size_t var = rc_var_bytes(row);
	uint32_t flags = (row->subject == NULL ? RC_SUBJECT_NULL : 0) |
			 (row->ns == NULL ? RC_NS_NULL : 0) |
			 (row->tag == NULL ? RC_TAG_NULL : 0) |
			 (row->payload == NULL ? RC_PAYLOAD_NULL : 0);
	unsigned char *p;

	img[0] = (uint64_t)row->event_id;
	img[1] = (uint64_t)row->partition_key;
	img[2] = (uint64_t)row->occurred_at_ms;
	img[3] = (uint64_t)row->committed_at_ms;
	img[4] = (uint64_t)row->subject_len | (uint64_t)row->event_type_len
						  << 32;
	img[5] = (uint64_t)row->ns_len | (uint64_t)row->tag_len << 32;
	img[6] = (uint64_t)row->payload_len | (uint64_t)flags << 32;
	/* Zero the last word first: the padding is part of the image. */
	if (var > 0)
		img[LB_ROW_HDR_WORDS + rc_words(var) - 1] = 0;
	p = (unsigned char *)&img[LB_ROW_HDR_WORDS];
	p = rc_put_bytes(p, row->subject, row->subject_len, false);
	p = rc_put_bytes(p, row->event_type, row->event_type_len, true);
	if (row->ns != NULL)
		p = rc_put_bytes(p, row->ns, row->ns_len, true);
	if (row->tag != NULL)
		p = rc_put_bytes(p, row->tag, row->tag_len, true);
	(void)rc_put_bytes(p, row->payload, row->payload_len, false);
}

void
lb_rowcache_put(struct lb_rowcache *c, uint64_t pos, const uint64_t *img,
		size_t nwords)
{
	_Atomic uint64_t *s = &c->words[(pos & c->mask) * c->stride];

	assert(nwords >= LB_ROW_HDR_WORDS && nwords <= c->img_words);
	/* RC3: the busy mark before any word of the new image. */
	atomic_store_explicit(&s[0], RC_STAMP_BUSY, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < nwords; i++)
		atomic_store_explicit(&s[1 + i], img[i], memory_order_relaxed);
	/* RC1, RC3: every word before the stamp. */
	atomic_store_explicit(&s[0], pos, memory_order_release);
}

/* Decode a copied image (RC3 passed) into *row.  False if it does not
 * describe a well-formed row of `event_id` - which a put never writes;
 * checked so that no length is trusted blindly. */
static bool
rc_decode(const struct lb_rowcache *c, const unsigned char *dst,
	  int64_t event_id, struct lb_outbox_row *row)
{
	uint64_t h[LB_ROW_HDR_WORDS];
	const unsigned char *p = dst + sizeof h;
	uint32_t flags;

	memcpy(h, dst, sizeof h);
	if ((int64_t)h[0] != event_id)
		return false;
	flags = (uint32_t)(h[6] >> 32);
	row->event_id = (int64_t)h[0];
	row->partition_key = (int64_t)h[1];
	row->occurred_at_ms = (int64_t)h[2];
	row->committed_at_ms = (int64_t)h[3];
	row->subject_len = (uint32_t)h[4];
	row->event_type_len = (uint32_t)(h[4] >> 32);
	row->ns_len = (uint32_t)h[5];
	row->tag_len = (uint32_t)(h[5] >> 32);
	row->payload_len = (uint32_t)h[6];
	/* Non-NULL pointers for the lengths' check below. */
	row->ns = (flags & RC_NS_NULL) != 0 ? NULL : "";
	row->tag = (flags & RC_TAG_NULL) != 0 ? NULL : "";
	if (lb_rowcache_image_words(c, row) == 0)
		return false;
	row->subject = (flags & RC_SUBJECT_NULL) != 0 ? NULL : p;
	p += row->subject_len;
	row->event_type = (const char *)p;
	p += row->event_type_len + 1;
	if (row->ns != NULL) {
		row->ns = (const char *)p;
		p += row->ns_len + 1;
	}
	if (row->tag != NULL) {
		row->tag = (const char *)p;
		p += row->tag_len + 1;
	}
	row->payload = (flags & RC_PAYLOAD_NULL) != 0 ? NULL : p;
	return true;
}

bool
lb_rowcache_has(const struct lb_rowcache *c, uint64_t pos)
{
	/* Relaxed: a hint that orders nothing; lb_rowcache_get decides. */
	return atomic_load_explicit(&c->words[(pos & c->mask) * c->stride],
				    memory_order_relaxed) == pos;
}

bool
lb_rowcache_get(const struct lb_rowcache *c, uint64_t pos, int64_t event_id,
		unsigned char *dst, struct lb_outbox_row *row)
{
	_Atomic uint64_t *s = &c->words[(pos & c->mask) * c->stride];
	size_t n, var;
	uint64_t w;

	/* RC3: acquire, so the words read below are at least this put's. */
	if (atomic_load_explicit(&s[0], memory_order_acquire) != pos)
		return false;
	for (size_t i = 0; i < LB_ROW_HDR_WORDS; i++) {
		w = atomic_load_explicit(&s[1 + i], memory_order_relaxed);
		memcpy(dst + i * sizeof w, &w, sizeof w);
	}
	/* The variable part's size from a header that may be torn: bounded
	 * before use (RC3). */
	memcpy(&w, dst + 4 * sizeof w, sizeof w);
	var = (size_t)(uint32_t)w + (size_t)(uint32_t)(w >> 32) + 1;
	memcpy(&w, dst + 5 * sizeof w, sizeof w);
	var += (size_t)(uint32_t)w + (size_t)(uint32_t)(w >> 32) + 2;
	memcpy(&w, dst + 6 * sizeof w, sizeof w);
	var += (size_t)(uint32_t)w;
	n = rc_words(var);
	if (n > c->img_words - LB_ROW_HDR_WORDS)
		n = c->img_words - LB_ROW_HDR_WORDS;
	for (size_t i = 0; i < n; i++) {
		w = atomic_load_explicit(&s[1 + LB_ROW_HDR_WORDS + i],
					 memory_order_relaxed);
		memcpy(dst + (LB_ROW_HDR_WORDS + i) * sizeof w, &w, sizeof w);
	}
	/* RC3: a copy that saw any word of a later put sees its busy mark
	 * (or its stamp) here. */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s[0], memory_order_relaxed) != pos)
		return false;
	return rc_decode(c, dst, event_id, row);
}
