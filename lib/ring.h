/* SPDX-License-Identifier: MIT */
/*
 * ring.h - one channel's broadcast ring: one writer, any number of readers.
 */
#ifndef LB_RING_H
#define LB_RING_H

#include "arch.h"
#include "record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lb_slot {
	/* The position whose record the slot holds, or LB_STAMP_BUSY while
	 * the writer rewrites it.  Written by the writer (release), read by
	 * readers (acquire) before and (relaxed, after a fence) after they
	 * copy the words. */
	_Atomic uint64_t stamp;
	_Atomic uint64_t words[LB_REC_WORDS];
};

/* A slot is one cache line: the stamp and the 7 words of a record, so a
 * reader's copy touches one line and no two slots share one. */
static_assert(sizeof(struct lb_slot) == LB_CACHELINE,
	      "a ring slot is exactly one cache line");

struct lb_ring {
	/* R3: the largest position whose slot is completely written.
	 * Written by the writer only (release); read by readers (acquire).
	 * Alone on its line: the writer stores it once per record and every
	 * reader polls it. */
	alignas(LB_CACHELINE) _Atomic uint64_t head;
	/* Immutable after lb_ring_init(). */
	alignas(LB_CACHELINE) struct lb_slot *slots;
	uint64_t mask;
	uint64_t capacity;
};

/* 0 on success, -1 if the slots could not be allocated.  capacity is a
 * power of two >= 2. */
int lb_ring_init(struct lb_ring *r, uint32_t capacity);
void lb_ring_fini(struct lb_ring *r);

/* Writer thread only.  Appends rec at position head+1 and returns it. */
uint64_t lb_ring_publish(struct lb_ring *r, const struct lb_rec *rec);

/* Any thread.  The newest fully written position (0: none yet).  Acquire:
 * every slot at or below it is visible to the caller. */
uint64_t lb_ring_head(const struct lb_ring *r);

/* Any thread.  Copy the record at position pos (1 <= pos <= head) into
 * *rec.  False means the slot no longer holds pos (the reader was lapped)
 * or is being overwritten: *rec is then garbage. */
bool lb_ring_read(const struct lb_ring *r, uint64_t pos, struct lb_rec *rec);

#endif
