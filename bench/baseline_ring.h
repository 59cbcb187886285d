/* SPDX-License-Identifier: MIT */
/*
 * baseline_ring.h - the ring baseline: a mutex + condition variable
 * broadcast ring with per-subscriber cursors and overwrite-oldest.
 *
 * What a careful C programmer writes first: one lock guards the slots and
 * the head; the publisher appends a batch under the lock and broadcasts if
 * anybody waits; a subscriber takes one record per call under the lock,
 * sleeping on the condition variable when it has read everything.  A
 * subscriber whose next record was overwritten is told how many it lost
 * and resumes at the oldest record still in the ring.
 *
 * The records have litebus's ring record size (56 bytes), so both rings
 * copy the same amount.  Used by the `ring` scenario and by the naive bus.
 */
#ifndef BENCH_BASELINE_RING_H
#define BENCH_BASELINE_RING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bring_rec {
	int64_t event_id;
	int64_t partition_key;
	int64_t committed_at_ms;
	uint32_t ns_hash, tag_hash, subject_len, reserved;
	unsigned char subject_prefix[16];
};

struct bring {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct bring_rec *slots; /* under lock */
	uint64_t mask, capacity; /* immutable */
	uint64_t head;		 /* last position written; under lock */
	unsigned waiters;	 /* under lock */
	bool closed;		 /* under lock */
};

/* A subscriber's cursor: the next position to read (starts at head + 1). */
struct bring_sub {
	struct bring *ring;
	uint64_t pos;
	uint64_t received, lags, skipped;
	uint64_t last_skipped;
};

enum bring_status { BRING_OK, BRING_LAGGED, BRING_CLOSED, BRING_TIMEOUT };

/* capacity: a power of two.  Returns 0, or -1 out of memory. */
int bring_init(struct bring *r, uint32_t capacity);
void bring_fini(struct bring *r);
/* Append n records in order (positions head+1 ..). */
void bring_publish(struct bring *r, const struct bring_rec *recs, size_t n);
/* No more records: wake every subscriber; recv drains, then CLOSED. */
void bring_close(struct bring *r);

void bring_sub_init(struct bring_sub *s, struct bring *r);
/* Next record; LAGGED (s->last_skipped lost, cursor moved to the oldest);
 * CLOSED once closed and drained; TIMEOUT if nothing came within
 * timeout_ms (< 0: wait forever). */
enum bring_status bring_recv(struct bring_sub *s, struct bring_rec *out,
			     int timeout_ms);

#endif
