/* SPDX-License-Identifier: MIT */
/*
 * ring.c - one channel's broadcast ring.
 *
 * The writer thread appends records whose transaction has committed; any
 * number of subscribers read them, each at its own cursor (which lives in
 * the subscriber, never here, so readers never write a shared line).  The
 * writer never reads subscriber state and never waits: a full ring
 * overwrites its oldest slot.  A subscriber that finds its slot overwritten
 * has been lapped and recovers (subscriber.c); readers then read the
 * outbox (reader.c).
 *
 * Each slot is a seqlock: the writer marks it busy, writes the words, then
 * stamps it with the position.  A reader copies the words between two
 * loads of the stamp and keeps the copy only if both equal the position it
 * wanted.  The copy goes through relaxed atomic words, so the race with the
 * writer is a legal one and ThreadSanitizer has nothing to report.
 *
 * Threads: lb_ring_publish() on the writer thread only; everything else
 * from any thread.
 *
 * Invariants
 *   R1  A record enters a ring only after its COMMIT succeeded (writer.c).
 *   R2  Ring positions are 1, 2, 3, ... without gaps, one per published
 *       record; position p lives in slot (p & mask).
 *   R3  head is the largest position whose slot is completely written; a
 *       slot at position p <= head holds p, LB_STAMP_BUSY, or a position
 *       p + k * capacity (k >= 1) - never anything smaller than p.
 */
#include "ring.h"

#include "role.h"

#include <stdlib.h>
#include <string.h>

#define LB_STAMP_BUSY UINT64_MAX

int
lb_ring_init(struct lb_ring *r, uint32_t capacity)
{
	size_t len = (size_t)capacity * sizeof(struct lb_slot);

	assert(capacity >= 2 && (capacity & (capacity - 1)) == 0);
	/* aligned_alloc wants a multiple of the alignment. */
	len = (len + LB_CACHELINE - 1) & ~(size_t)(LB_CACHELINE - 1);
	r->slots = aligned_alloc(LB_CACHELINE, len);
	if (r->slots == NULL)
		return -1;
	r->mask = capacity - 1;
	r->capacity = capacity;
	for (uint64_t i = 0; i < capacity; i++) {
		/* Position 0 is never published, so stamp 0 never matches. */
		atomic_init(&r->slots[i].stamp, 0);
		for (size_t w = 0; w < LB_REC_WORDS; w++)
			atomic_init(&r->slots[i].words[w], 0);
	}
	atomic_init(&r->head, 0);
	return 0;
}

void
lb_ring_fini(struct lb_ring *r)
{
	free(r->slots);
	r->slots = NULL;
}

uint64_t
lb_ring_publish(struct lb_ring *r, const struct lb_rec *rec)
{
	uint64_t w[LB_REC_WORDS];
	/* Only this thread writes head: a relaxed load of our own store. */
	uint64_t pos = atomic_load_explicit(&r->head, memory_order_relaxed) + 1;
	struct lb_slot *s = &r->slots[pos & r->mask];

	LB_ASSERT_ON_WRITER_THREAD();
	memcpy(w, rec, sizeof w);
	/* Mark the slot busy before changing its payload.  The fence orders
	 * this store before the payload stores: a reader that sees any new
	 * word also sees stamp != its position on its re-check in
	 * lb_ring_read(). */
	atomic_store_explicit(&s->stamp, LB_STAMP_BUSY, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < LB_REC_WORDS; i++)
		atomic_store_explicit(&s->words[i], w[i], memory_order_relaxed);
	/* Pairs with the acquire load of s->stamp in lb_ring_read(). */
	atomic_store_explicit(&s->stamp, pos, memory_order_release);
	/* R3.  Pairs with the acquire load in lb_ring_head(). */
	atomic_store_explicit(&r->head, pos, memory_order_release);
	return pos;
}

uint64_t
lb_ring_head(const struct lb_ring *r)
{
	/* Pairs with the release store of head in lb_ring_publish(). */
	return atomic_load_explicit(&r->head, memory_order_acquire);
}

bool
lb_ring_read(const struct lb_ring *r, uint64_t pos, struct lb_rec *rec)
{
	const struct lb_slot *s = &r->slots[pos & r->mask];
	uint64_t w[LB_REC_WORDS];

	/* Pairs with the release store of the stamp in lb_ring_publish(): if
	 * we see pos, we see the words written before it. */
	if (atomic_load_explicit(&s->stamp, memory_order_acquire) != pos)
		return false;
	for (size_t i = 0; i < LB_REC_WORDS; i++)
		w[i] = atomic_load_explicit(&s->words[i], memory_order_relaxed);
	/* Orders the word loads before the re-check of the stamp; pairs with
	 * the release fence in lb_ring_publish(): if any word we loaded was
	 * written by a later publish into this slot, the re-check sees that
	 * publish's BUSY mark (or its stamp) instead of pos. */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->stamp, memory_order_relaxed) != pos)
		return false;
	memcpy(rec, w, sizeof w);
	return true;
}
