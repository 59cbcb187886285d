/* SPDX-License-Identifier: MIT */
/*
 * record.h - the ring record: what the writer publishes per committed row,
 * and the filter hints a reader checks without touching SQLite.
 *
 * outbox.c makes records from rows as the table holds them (writer.c, W1);
 * ring.c copies them into slots; subscriber.c and reader.c read them.  Plain
 * data: no ring, no wake-up.
 */
#ifndef LB_RECORD_H
#define LB_RECORD_H

#include "litebus.h"

#include <assert.h>
#include <stdint.h>

#define LB_REC_SUBJECT_PREFIX 16

/* The OutboxEvent and what lets a reader filter without SQLite: 56 bytes,
 * 7 words. */
struct lb_rec {
	int64_t event_id;
	int64_t partition_key;
	int64_t committed_at_ms;
	uint32_t ns_hash;  /* lb_rec_hash(namespace), 0 for none */
	uint32_t tag_hash; /* lb_rec_hash(instance_tag), 0 for none */
	uint32_t subject_len;
	uint32_t reserved;
	unsigned char subject_prefix[LB_REC_SUBJECT_PREFIX];
};

#define LB_REC_WORDS (sizeof(struct lb_rec) / sizeof(uint64_t))
static_assert(sizeof(struct lb_rec) % sizeof(uint64_t) == 0,
	      "a ring record is copied as whole 64-bit words");
/* litebus_event.subject_prefix is copied from the record as it is. */
static_assert(LB_REC_SUBJECT_PREFIX == LITEBUS_SUBJECT_PREFIX,
	      "the record carries exactly the public subject prefix");

/* A 32-bit hash of a string for the filter hints (FNV-1a): never 0 for a
 * string, 0 for NULL.  Equal hashes prove nothing; the reader's query
 * decides. */
static inline uint32_t
lb_rec_hash(const char *s)
{
	uint32_t h = 2166136261u;

	if (s == NULL)
		return 0;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h | 1u;
}

#endif
