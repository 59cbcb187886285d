/* SPDX-License-Identifier: MIT */
/*
 * test_ring.c - one channel's broadcast ring (lib/ring.c): positions,
 * wrap-around, lap detection by the slot stamp, the filter hash, and the
 * seqlock copy under a concurrent writer (no torn read is ever accepted).
 */
#include "fixture.h"
#include "ring.h"
#include "role.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Identity of the writer role the test threads claim (role.h). */
static const char test_writer_role;

/* The torn-read stress publishes this many records.  Sanitizers slow every
 * atomic access down, so they get half as many (a ThreadSanitizer run of
 * this program then takes a few seconds). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define RING_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define RING_UNDER_SANITIZER 1
#endif
#endif
#ifdef RING_UNDER_SANITIZER
#define STRESS_RECORDS 1000000u
#else
#define STRESS_RECORDS 2000000u
#endif

#define STRESS_READERS 3
#define STRESS_RING 8u

/* Every word of the record for position pos is a different function of
 * pos, and each changes between pos and pos + k * capacity: a copy that
 * mixes two publishes into one slot cannot match any single position. */
static void
rec_for_pos(uint64_t pos, struct lb_rec *rec)
{
	uint64_t a = pos * 0x9E3779B97F4A7C15u;
	uint64_t b = (pos ^ 0xA5A5A5A5A5A5A5A5u) * 0xC2B2AE3D27D4EB4Fu;

	memset(rec, 0, sizeof *rec);
	rec->event_id = (int64_t)pos;
	rec->partition_key = (int64_t)(pos * 7919u);
	rec->committed_at_ms = -(int64_t)pos;
	rec->ns_hash = (uint32_t)(pos * 2654435761u);
	rec->tag_hash = (uint32_t)(pos ^ 0xDEADBEEFu);
	rec->subject_len = (uint32_t)(pos + 17u);
	rec->reserved = (uint32_t)((pos * 31u) ^ 0x5A5A5A5Au);
	memcpy(rec->subject_prefix, &a, sizeof a);
	memcpy(rec->subject_prefix + sizeof a, &b, sizeof b);
}

static bool
rec_is_for_pos(const struct lb_rec *rec, uint64_t pos)
{
	struct lb_rec want;

	rec_for_pos(pos, &want);
	return memcmp(rec, &want, sizeof want) == 0;
}

static int
ring_setup(void **state)
{
	struct lb_ring *r = aligned_alloc(LB_CACHELINE, sizeof *r);

	assert_non_null(r);
	assert_int_equal(lb_ring_init(r, 8), 0);
	*state = r;
	return 0;
}

static int
ring_teardown(void **state)
{
	struct lb_ring *r = *state;

	lb_ring_fini(r);
	free(r);
	return 0;
}

static void
publish_range(struct lb_ring *r, uint64_t first, uint64_t last)
{
	struct lb_rec rec;

	for (uint64_t p = first; p <= last; p++) {
		rec_for_pos(p, &rec);
		assert_int_equal(lb_ring_publish(r, &rec), p);
	}
}

/* ring.c, R2: "Ring positions are 1, 2, 3, ... without gaps, one per
 * published record." */
static void
a_fresh_ring_has_head_zero_and_publish_returns_positions_from_one(void **state)
{
	struct lb_ring *r = *state;
	struct lb_rec rec;

	assert_int_equal(lb_ring_head(r), 0);
	for (uint64_t p = 1; p <= 5; p++) {
		rec_for_pos(p, &rec);
		assert_int_equal(lb_ring_publish(r, &rec), p);
		assert_int_equal(lb_ring_head(r), p);
	}
}

/* ring.h, lb_ring_read(): "Copy the record at position pos
 * (1 <= pos <= head) into *rec." */
static void
reads_return_each_published_record_at_its_position(void **state)
{
	struct lb_ring *r = *state;
	struct lb_rec rec;

	publish_range(r, 1, 6);
	for (uint64_t p = 1; p <= 6; p++) {
		memset(&rec, 0xee, sizeof rec);
		assert_true(lb_ring_read(r, p, &rec));
		assert_true(rec_is_for_pos(&rec, p));
	}
}

/* Position 0 is never published, so its stamp never matches a later
 * position: nothing above head can be read from a fresh ring. */
static void
a_position_not_yet_published_cannot_be_read(void **state)
{
	struct lb_ring *r = *state;
	struct lb_rec rec;

	assert_false(lb_ring_read(r, 1, &rec));
	publish_range(r, 1, 3);
	assert_false(lb_ring_read(r, 4, &rec));
	assert_false(lb_ring_read(r, 8, &rec));
}

/* "A full ring overwrites its oldest slot": after 2.5 laps the ring holds
 * exactly the newest `capacity` positions, each in slot (p & mask). */
static void
the_ring_wraps_around_and_keeps_the_newest_capacity_records(void **state)
{
	struct lb_ring *r = *state;
	struct lb_rec rec;

	publish_range(r, 1, 20);
	assert_int_equal(lb_ring_head(r), 20);
	for (uint64_t p = 13; p <= 20; p++) {
		assert_true(lb_ring_read(r, p, &rec));
		assert_true(rec_is_for_pos(&rec, p));
	}
}

/* lb_ring_read(): "False means the slot no longer holds pos (the reader
 * was lapped)". */
static void
reading_an_overwritten_position_fails(void **state)
{
	struct lb_ring *r = *state;
	struct lb_rec rec;

	publish_range(r, 1, 20);
	for (uint64_t p = 1; p <= 12; p++)
		if (lb_ring_read(r, p, &rec))
			fail_msg("position %llu was overwritten but reads as "
				 "event_id %lld",
				 (unsigned long long)p,
				 (long long)rec.event_id);
}

/* The boundary: the slot of position p survives exactly until position
 * p + capacity is published. */
static void
a_position_survives_until_exactly_capacity_more_are_published(void **state)
{
	struct lb_ring *r = *state;
	struct lb_rec rec;

	publish_range(r, 1, 8);
	assert_true(lb_ring_read(r, 1, &rec));
	assert_true(rec_is_for_pos(&rec, 1));
	publish_range(r, 9, 9);
	assert_false(lb_ring_read(r, 1, &rec));
	assert_true(lb_ring_read(r, 2, &rec));
	assert_true(rec_is_for_pos(&rec, 2));
}

/* ring.h, lb_rec_hash(): "never 0 for a string, 0 for NULL". */
static void
hash_is_zero_for_null_and_never_zero_for_a_string(void **state)
{
	char s[32];

	(void)state;
	assert_int_equal(lb_rec_hash(NULL), 0);
	assert_int_not_equal(lb_rec_hash(""), 0);
	for (unsigned i = 0; i < 200000; i++) {
		snprintf(s, sizeof s, "ns%u", i);
		if (lb_rec_hash(s) == 0)
			fail_msg("lb_rec_hash(\"%s\") == 0", s);
		/* Single bytes, including every high-bit byte. */
		if (i < 256) {
			s[0] = (char)(i == 0 ? 1 : i);
			s[1] = '\0';
			if (lb_rec_hash(s) == 0)
				fail_msg("lb_rec_hash of byte %u == 0", i);
		}
	}
}

/* The hash is a function of the string's bytes: equal strings at
 * different addresses hash alike, and a filter can tell common names
 * apart. */
static void
hash_depends_only_on_the_bytes_of_the_string(void **state)
{
	char a[] = "tenant_a", b[] = "tenant_a";

	(void)state;
	assert_int_equal(lb_rec_hash(a), lb_rec_hash(b));
	assert_int_not_equal(lb_rec_hash("ns0"), lb_rec_hash("ns1"));
	assert_int_not_equal(lb_rec_hash("a"), lb_rec_hash("b"));
}

/* ------------------------------------------------------------------ */
/* Torn reads                                                           */

struct stress {
	struct lb_ring *ring;
	struct fx_barrier *start;
	_Atomic int done;
};

struct stress_reader {
	struct stress *s;
	unsigned seed;
	uint64_t reads_ok, reads_failed;
	/* The first inconsistent copy accepted by lb_ring_read, if any;
	 * checked by the main thread (cmocka asserts are not thread-safe). */
	bool torn;
	uint64_t torn_pos;
	struct lb_rec torn_rec;
};

static void *
stress_writer(void *p)
{
	struct stress *s = p;
	struct lb_rec rec;

	lb_role_set_writer(&test_writer_role); /* role.h */
	fx_barrier_wait(s->start);
	for (uint64_t pos = 1; pos <= STRESS_RECORDS; pos++) {
		rec_for_pos(pos, &rec);
		lb_ring_publish(s->ring, &rec);
	}
	atomic_store_explicit(&s->done, 1, memory_order_release);
	return NULL;
}

static void *
stress_reader_main(void *p)
{
	struct stress_reader *rd = p;
	struct stress *s = rd->s;
	uint64_t i = rd->seed;
	struct lb_rec rec;

	fx_barrier_wait(s->start);
	while (atomic_load_explicit(&s->done, memory_order_acquire) == 0) {
		uint64_t head = lb_ring_head(s->ring);
		/* Cycle over every slot, from the newest record to the one
		 * the writer overwrites next, where the races are. */
		uint64_t back = i++ % STRESS_RING;

		if (head <= back)
			continue;
		uint64_t pos = head - back;
		if (!lb_ring_read(s->ring, pos, &rec)) {
			rd->reads_failed++;
			continue;
		}
		rd->reads_ok++;
		if (!rec_is_for_pos(&rec, pos)) {
			rd->torn = true;
			rd->torn_pos = pos;
			rd->torn_rec = rec;
			break;
		}
	}
	return NULL;
}

/* ring.c: "A reader copies the words between two loads of the stamp and
 * keeps the copy only if both equal the position it wanted."  Every copy
 * that lb_ring_read accepts is the whole record of that one position. */
static void
concurrent_readers_never_accept_a_torn_record(void **state)
{
	struct lb_ring *r = *state;
	struct fx_barrier start;
	struct stress s;
	struct stress_reader rd[STRESS_READERS];
	pthread_t wt, rt[STRESS_READERS];
	uint64_t ok = 0, failed = 0;

	/* The fixture's ring has STRESS_RING slots. */
	assert_int_equal(r->capacity, STRESS_RING);
	s.ring = r;
	s.start = &start;
	atomic_init(&s.done, 0);
	fx_barrier_init(&start, STRESS_READERS + 1);
	for (unsigned i = 0; i < STRESS_READERS; i++) {
		memset(&rd[i], 0, sizeof rd[i]);
		rd[i].s = &s;
		rd[i].seed = i * 3u;
		assert_int_equal(
		    pthread_create(&rt[i], NULL, stress_reader_main, &rd[i]),
		    0);
	}
	assert_int_equal(pthread_create(&wt, NULL, stress_writer, &s), 0);
	pthread_join(wt, NULL);
	for (unsigned i = 0; i < STRESS_READERS; i++)
		pthread_join(rt[i], NULL);
	fx_barrier_destroy(&start);

	for (unsigned i = 0; i < STRESS_READERS; i++) {
		if (rd[i].torn)
			fail_msg("reader %u accepted a torn copy of position "
				 "%llu: event_id %lld partition_key %lld "
				 "committed_at_ms %lld subject_len %u",
				 i, (unsigned long long)rd[i].torn_pos,
				 (long long)rd[i].torn_rec.event_id,
				 (long long)rd[i].torn_rec.partition_key,
				 (long long)rd[i].torn_rec.committed_at_ms,
				 rd[i].torn_rec.subject_len);
		ok += rd[i].reads_ok;
		failed += rd[i].reads_failed;
	}
	assert_int_equal(lb_ring_head(r), STRESS_RECORDS);
	/* The check above means something only if reads succeeded. */
	assert_true(ok > 0);
	print_message("ring stress: records=%u readers=%d reads_ok=%llu "
		      "reads_failed=%llu\n",
		      STRESS_RECORDS, STRESS_READERS, (unsigned long long)ok,
		      (unsigned long long)failed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		a_fresh_ring_has_head_zero_and_publish_returns_positions_from_one,
		ring_setup, ring_teardown),
	    cmocka_unit_test_setup_teardown(
		reads_return_each_published_record_at_its_position, ring_setup,
		ring_teardown),
	    cmocka_unit_test_setup_teardown(
		a_position_not_yet_published_cannot_be_read, ring_setup,
		ring_teardown),
	    cmocka_unit_test_setup_teardown(
		the_ring_wraps_around_and_keeps_the_newest_capacity_records,
		ring_setup, ring_teardown),
	    cmocka_unit_test_setup_teardown(
		reading_an_overwritten_position_fails, ring_setup,
		ring_teardown),
	    cmocka_unit_test_setup_teardown(
		a_position_survives_until_exactly_capacity_more_are_published,
		ring_setup, ring_teardown),
	    cmocka_unit_test(hash_is_zero_for_null_and_never_zero_for_a_string),
	    cmocka_unit_test(hash_depends_only_on_the_bytes_of_the_string),
	    cmocka_unit_test_setup_teardown(
		concurrent_readers_never_accept_a_torn_record, ring_setup,
		ring_teardown),
	};

	/* The tests play the writer of these bare rings and channels: the
	 * main thread publishes (role.h). */
	lb_role_set_writer(&test_writer_role);

	return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
