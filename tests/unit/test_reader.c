/* SPDX-License-Identifier: MIT */
/*
 * test_reader.c - cursor-resume readers: where they start, exactly-once
 * delivery in event_id order through any lag, filters, row contents,
 * resume across reopen, close, in-memory databases, the fd, misuse.
 */
#include "fixture.h"

#include "bus.h" /* to see when a reader sleeps (channel sleepers) */

#include <sched.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

struct emit_spec {
	int channel;
	const litebus_record *recs;
	int count;
	int64_t *ids;
};

static int
job_emit_recs(litebus_tx *tx, void *arg)
{
	struct emit_spec *s = arg;

	for (int i = 0; i < s->count; i++) {
		int rc = litebus_emit(tx, s->channel, &s->recs[i],
				      s->ids != NULL ? &s->ids[i] : NULL);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

/* Commit recs[0..count) in one job; ids[] receives their event_ids. */
static void
emit_recs(litebus *bus, int channel, const litebus_record *recs, int count,
	  int64_t *ids)
{
	struct emit_spec s = {channel, recs, count, ids};
	int rc = litebus_exec(bus, job_emit_recs, &s);

	if (rc != 0)
		fail_msg("emit_recs: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
}

/* Commit `count` events as `count / per_job` jobs of `per_job` events. */
static void
commit_in_jobs(litebus *bus, int channel, int count, int per_job, int64_t *ids)
{
	for (int i = 0; i < count; i += per_job) {
		int n = count - i < per_job ? count - i : per_job;
		commit_batch(bus, channel, n, ids != NULL ? ids + i : NULL);
	}
}

/* Bounded wait until some thread sleeps on the channel's wake word. */
static void
wait_until_a_reader_sleeps(litebus *bus, int channel)
{
	struct lb_channel *ch = lb_bus_channel(bus, channel);
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	while (atomic_load_explicit(&ch->sleepers, memory_order_relaxed) == 0) {
		if (fx_now_ms() > deadline)
			fail_msg("no reader went to sleep on channel %d",
				 channel);
		sched_yield();
	}
}

/* ------------------------------------------------------------------ */
/* Where a reader starts                                               */

/* Contract, litebus_reader_open(): "tail `channel` from a cursor:
 * LITEBUS_FROM_START ..." */
static void
reader_from_start_delivers_every_committed_row_in_order(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[5];
	litebus_reader *r;

	commit_events(f->bus, LITEBUS_COMPLETION, 5, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	for (int i = 0; i < 5; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	assert_int_equal(litebus_reader_cursor(r), ids[4]);
	litebus_reader_close(r);
}

/* Contract: "strictly after after_event_id (> 0)". */
static void
reader_after_a_cursor_starts_strictly_after_it(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[10];
	litebus_reader *r;

	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, ids[3], NULL);
	assert_int_equal(litebus_reader_cursor(r), ids[3]);
	for (int i = 4; i < 10; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* A cursor beyond the newest row (say, saved from a database that has
 * since lost rows): the reader waits for rows past it. */
static void
reader_after_a_cursor_beyond_the_newest_row_delivers_only_rows_past_it(
    void **state)
{
	struct bus_fixture *f = *state; /* 8-slot rings */
	int64_t ids[13];
	litebus_reader *r;

	commit_events(f->bus, LITEBUS_COMPLETION, 3, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, 10, NULL);
	fx_expect_no_row(r);
	assert_int_equal(litebus_reader_cursor(r), 10);
	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids + 3);
	assert_int_equal(ids[12], 13);
	for (int64_t id = 11; id <= 13; id++)
		fx_expect_row(r, id);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* Contract: "LITEBUS_FROM_NOW (after the newest event committed when this
 * call returns)". */
static void
reader_from_now_sees_only_rows_committed_after_open(void **state)
{
	struct bus_fixture *f = *state;
	int64_t before[5], after[3];
	litebus_reader *r;

	commit_events(f->bus, LITEBUS_COMPLETION, 5, before);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	assert_int_equal(litebus_reader_cursor(r), before[4]);
	fx_expect_no_row(r);
	commit_events(f->bus, LITEBUS_COMPLETION, 3, after);
	for (int i = 0; i < 3; i++)
		fx_expect_row(r, after[i]);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* Exactly once, in order, whatever the lag                            */

/* Contract, litebus_reader_next(): "Being lapped by the ring is not an
 * error: the missed rows are read from the outbox, and no event is
 * skipped or repeated." */
static void
reader_that_does_not_read_while_thousands_commit_gets_each_row_once(
    void **state)
{
	struct bus_fixture *f = *state; /* 8-slot rings */
	enum { N = 3000 };
	static int64_t ids[N];
	litebus_reader_stats rs;
	litebus_stats st;
	litebus_reader *r;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	commit_in_jobs(f->bus, LITEBUS_COMPLETION, N / 2, 50, ids);
	commit_events(f->bus, LITEBUS_COMPLETION, N / 2, ids + N / 2);
	for (int i = 0; i < N; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	assert_int_equal(litebus_reader_cursor(r), ids[N - 1]);
	assert_int_equal(litebus_reader_stats_get(r, &rs), LITEBUS_OK);
	assert_int_equal(rs.delivered, N);
	assert_true(rs.lags > 0);
	assert_true(rs.queries > 0);
	assert_int_equal(litebus_stats_get(f->bus, &st), LITEBUS_OK);
	assert_true(st.reader_lags >= rs.lags);
	litebus_reader_close(r);
}

/* A reader that reads a few rows between bursts of commits is lapped
 * again and again, also while it still holds rows fetched from the table;
 * it still gets every row once, in order. */
static void
slow_reader_lapped_between_reads_gets_each_row_once_in_order(void **state)
{
	struct bus_fixture *f = *state; /* 8-slot rings */
	enum { ROUNDS = 60, PER_ROUND = 30, READ_PER_ROUND = 7 };
	static int64_t ids[ROUNDS * PER_ROUND];
	litebus_reader_stats rs;
	litebus_reader *r;
	int next = 0;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	for (int round = 0; round < ROUNDS; round++) {
		int64_t *chunk = ids + round * PER_ROUND;
		/* Half in one transaction, half in separate ones. */
		commit_batch(f->bus, LITEBUS_COMPLETION, PER_ROUND / 2, chunk);
		commit_events(f->bus, LITEBUS_COMPLETION, PER_ROUND / 2,
			      chunk + PER_ROUND / 2);
		for (int k = 0; k < READ_PER_ROUND; k++)
			fx_expect_row(r, ids[next++]);
	}
	while (next < ROUNDS * PER_ROUND)
		fx_expect_row(r, ids[next++]);
	fx_expect_no_row(r);
	assert_int_equal(litebus_reader_stats_get(r, &rs), LITEBUS_OK);
	assert_true(rs.lags > 0);
	litebus_reader_close(r);
}

/* A reader_batch of 3 makes catch-up page through the table three rows at
 * a time: pages join without a gap or an overlap. */
static void
catch_up_in_small_pages_joins_them_without_gap_or_overlap(void **state)
{
	struct bus_fixture *f = *state;
	enum { N = 100 };
	int64_t ids[N];
	litebus_reader_stats rs;
	litebus_reader *r;

	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->opts.reader_batch = 3;
	fx_open(f);
	commit_in_jobs(f->bus, LITEBUS_COMPLETION, N / 2, 7, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	commit_events(f->bus, LITEBUS_COMPLETION, N / 2, ids + N / 2);
	for (int i = 0; i < N; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	assert_int_equal(litebus_reader_stats_get(r, &rs), LITEBUS_OK);
	assert_true(rs.queries >= N / 3);
	litebus_reader_close(r);
}

/* A producer thread commits without pause while the reader opens
 * FROM_START and reads: catch-up from the table hands over to the ring
 * without losing or repeating an event. */
struct producer {
	litebus *bus;
	struct fx_barrier *opened; /* passed after `head_start` commits */
	int head_start;
	int count;
	int rc; /* first failure, 0 if none */
};

static void *
producer_main(void *p)
{
	struct producer *a = p;

	for (int i = 0; i < a->count; i++) {
		int64_t id;

		if (i == a->head_start)
			fx_barrier_wait(a->opened);
		if (a->rc == 0) {
			litebus_record rec = {0};
			struct emit_spec s = {LITEBUS_COMPLETION, &rec, 1, &id};
			rec.partition_key = i;
			rec.event_type = "success";
			a->rc = litebus_exec(a->bus, job_emit_recs, &s);
		}
	}
	if (a->head_start >= a->count)
		fx_barrier_wait(a->opened);
	return NULL;
}

static void
handoff_scenario(struct bus_fixture *f)
{
	enum { N = 3000, HEAD_START = 200 };
	struct fx_barrier opened;
	struct producer prod = {f->bus, &opened, HEAD_START, N, 0};
	litebus_reader *r;
	pthread_t t;

	fx_barrier_init(&opened, 2);
	assert_int_equal(pthread_create(&t, NULL, producer_main, &prod), 0);
	fx_barrier_wait(&opened); /* HEAD_START committed; more coming */
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	/* A fresh database: the ids are exactly 1..N. */
	for (int64_t id = 1; id <= N; id++) {
		litebus_row row;
		int rc = litebus_reader_next(r, &row, FX_WAIT_MS);
		if (rc != LITEBUS_OK)
			fail_msg("row %lld: %s: %s", (long long)id,
				 litebus_errname(rc), litebus_last_errmsg());
		if (row.event_id != id)
			fail_msg("expected row %lld, got %lld", (long long)id,
				 (long long)row.event_id);
		assert_int_equal(row.partition_key, id - 1);
	}
	pthread_join(t, NULL);
	assert_int_equal(prod.rc, 0);
	fx_expect_no_row(r);
	litebus_reader_close(r);
	fx_barrier_destroy(&opened);
}

static void
no_row_is_lost_between_catch_up_and_live_while_a_producer_commits(void **state)
{
	handoff_scenario(*state); /* default rings: the ring keeps up */
}

static void
no_row_is_lost_between_catch_up_and_live_with_a_lapping_producer(void **state)
{
	handoff_scenario(*state); /* 8-slot rings: laps during catch-up */
}

/* Contract, litebus_reader_cursor(): "Reopening with this value resumes
 * with no gap and no duplicate" - also after the bus itself was closed
 * and the file reopened. */
static void
reader_resumes_after_the_database_is_reopened_without_gap_or_duplicate(
    void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[15], saved;
	litebus_reader *r;

	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	for (int i = 0; i < 6; i++)
		fx_expect_row(r, ids[i]);
	saved = litebus_reader_cursor(r);
	assert_int_equal(saved, ids[5]);
	litebus_reader_close(r);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;

	fx_open(f);
	commit_events(f->bus, LITEBUS_COMPLETION, 5, ids + 10);
	assert_int_equal(ids[10], ids[9] + 1);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, saved, NULL);
	for (int i = 6; i < 15; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* Filters                                                             */

/* Event i of the filter scenarios: partition i % 3; namespace "alpha",
 * "beta" or none; instance tag "t1", "t2" or none.  Every PHASE-th event
 * (the last of each phase) matches none of the filters used below. */
enum { PHASE = 60 };

static const char *
pattern_ns(int i)
{
	if (i % PHASE == PHASE - 1)
		return "omega";
	return i % 5 == 0 ? NULL : i % 2 != 0 ? "alpha" : "beta";
}

static const char *
pattern_tag(int i)
{
	if (i % PHASE == PHASE - 1)
		return "t9";
	return i % 4 == 0 ? "t1" : i % 4 == 1 ? NULL : "t2";
}

static litebus_record
pattern_rec(int i)
{
	litebus_record rec = {0};

	rec.partition_key = i % PHASE == PHASE - 1 ? 99 : i % 3;
	rec.event_type = "success";
	rec.ns = pattern_ns(i);
	rec.instance_tag = pattern_tag(i);
	return rec;
}

static bool
str_eq_or_any(const char *want, const char *have)
{
	return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

static bool
pattern_matches(const litebus_filter *flt, int i)
{
	litebus_record rec = pattern_rec(i);

	if (!flt->any_partition && rec.partition_key != flt->partition_key)
		return false;
	return str_eq_or_any(flt->ns, rec.ns) &&
	       str_eq_or_any(flt->instance_tag, rec.instance_tag);
}

/*
 * Three phases, each checked against the pattern: rows committed before
 * open (catch-up from the table), rows committed one by one while the
 * reader does not read (the 8-slot ring laps it), and rows read live one
 * at a time, where a non-matching row is passed over by the ring alone.
 * The last event of each phase does not match, so the cursor can only
 * reach the newest id by counting filtered rows as passed.
 */
static void
filter_scenario(struct bus_fixture *f, const litebus_filter *flt)
{
	int64_t ids[3 * PHASE];
	litebus_reader *r;
	litebus_row row;
	int matched = 0;

	for (int i = 0; i < PHASE; i++) {
		litebus_record rec = pattern_rec(i);
		emit_recs(f->bus, LITEBUS_COMPLETION, &rec, 1, &ids[i]);
	}
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START, flt);
	for (int phase = 0; phase < 3; phase++) {
		int lo = phase * PHASE, hi = lo + PHASE;

		assert_false(pattern_matches(flt, hi - 1));
		if (phase == 1) {
			for (int i = lo; i < hi; i++) {
				litebus_record rec = pattern_rec(i);
				emit_recs(f->bus, LITEBUS_COMPLETION, &rec, 1,
					  &ids[i]);
			}
		}
		for (int i = lo; i < hi; i++) {
			if (phase == 2) {
				litebus_record rec = pattern_rec(i);
				emit_recs(f->bus, LITEBUS_COMPLETION, &rec, 1,
					  &ids[i]);
			}
			if (pattern_matches(flt, i)) {
				assert_int_equal(
				    litebus_reader_next(r, &row, FX_WAIT_MS),
				    LITEBUS_OK);
				assert_int_equal(row.event_id, ids[i]);
				assert_true(str_eq_or_any(flt->ns, row.ns));
				assert_true(str_eq_or_any(flt->instance_tag,
							  row.instance_tag));
				if (!flt->any_partition)
					assert_int_equal(row.partition_key,
							 flt->partition_key);
				matched++;
			} else if (phase == 2) {
				/* Contract, litebus_reader_cursor(): "rows that
				 * did not match the filter count as passed". */
				fx_expect_no_row(r);
				assert_int_equal(litebus_reader_cursor(r),
						 ids[i]);
			}
		}
		fx_expect_no_row(r);
		assert_int_equal(litebus_reader_cursor(r), ids[hi - 1]);
	}
	assert_true(matched > 0);
	assert_true(matched < 3 * PHASE);
	litebus_reader_close(r);
}

/* Contract, litebus_filter: "partition_key used when any_partition ==
 * 0"; only matching rows are delivered. */
static void
partition_filter_delivers_only_that_partition_and_passes_the_rest(void **state)
{
	litebus_filter flt = {.partition_key = 1, .any_partition = 0};

	filter_scenario(*state, &flt);
}

/* Contract, litebus_filter: "ns: NULL: any namespace". */
static void
namespace_filter_delivers_only_that_namespace_and_passes_the_rest(void **state)
{
	litebus_filter flt = {.any_partition = 1, .ns = "alpha"};

	filter_scenario(*state, &flt);
}

/* Contract, litebus_filter: "instance_tag: NULL: any tag". */
static void
instance_tag_filter_delivers_only_that_tag_and_passes_the_rest(void **state)
{
	litebus_filter flt = {.any_partition = 1, .instance_tag = "t2"};

	filter_scenario(*state, &flt);
}

/* Contract, litebus_reader_open(): "only rows matching every set field of
 * *f". */
static void
combined_filter_delivers_only_rows_matching_every_set_field(void **state)
{
	litebus_filter flt = {.partition_key = 2,
			      .any_partition = 0,
			      .ns = "beta",
			      .instance_tag = "t1"};

	filter_scenario(*state, &flt);
}

/* Contract, litebus_reader_open(): the filter is "copied". */
static void
reader_keeps_its_own_copy_of_the_filter(void **state)
{
	struct bus_fixture *f = *state;
	char ns[16], tag[16];
	litebus_filter flt = {
	    .any_partition = 1, .ns = ns, .instance_tag = tag};
	litebus_record rec = {
	    .event_type = "success", .ns = "alpha", .instance_tag = "t1"};
	litebus_reader *r;
	int64_t id;

	strcpy(ns, "alpha");
	strcpy(tag, "t1");
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, &flt);
	strcpy(ns, "gamma");
	strcpy(tag, "zz");
	flt.ns = NULL;
	emit_recs(f->bus, LITEBUS_COMPLETION, &rec, 1, &id);
	fx_expect_row(r, id);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* What a reader never delivers, and what a row carries                */

/* Contract (litebus.h): "A rolled-back job publishes nothing."  Its ids are
 * handed out again, so only the contents tell the rows apart. */
static struct fx_emit marked_then_fail = {.channel = LITEBUS_COMPLETION,
					  .count = 5,
					  .event_type = "failed",
					  .subject = "rolled-back",
					  .fail = true};

static void
rows_of_a_rolled_back_job_are_never_delivered(void **state)
{
	struct bus_fixture *f = *state; /* 8-slot rings */
	int64_t ids[40];
	litebus_reader *live, *lagging;
	litebus_row row;

	live =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	lagging =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	for (int i = 0; i < 40; i += 10) {
		assert_int_equal(
		    litebus_exec(f->bus, fx_emit_job, &marked_then_fail),
		    JOB_FAILED);
		commit_events(f->bus, LITEBUS_COMPLETION, 10, ids + i);
		for (int k = i; k < i + 10; k++) {
			assert_int_equal(
			    litebus_reader_next(live, &row, FX_WAIT_MS),
			    LITEBUS_OK);
			assert_int_equal(row.event_id, ids[k]);
			assert_string_equal(row.event_type, "success");
		}
		fx_expect_no_row(live);
	}
	assert_int_equal(litebus_exec(f->bus, fx_emit_job, &marked_then_fail),
			 JOB_FAILED);
	for (int k = 0; k < 40; k++) {
		assert_int_equal(litebus_reader_next(lagging, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(row.event_id, ids[k]);
		assert_string_equal(row.event_type, "success");
	}
	fx_expect_no_row(lagging);
	fx_expect_no_row(live);
	litebus_reader_close(live);
	litebus_reader_close(lagging);
}

/* Contract, litebus_row: every field as emitted; ns and tag may be NULL;
 * litebus_record: "occurred_at_ms ... 0 = now". */
static void
rows_carry_every_field_as_emitted(void **state)
{
	struct bus_fixture *f = *state;
	static unsigned char big[200000];
	unsigned char bytes[256];
	const unsigned char subject[] = {'s', 'u', 'b', 0, 'j', 0xff};
	const char long_subject[] = "a subject longer than the ring's prefix";
	litebus_record recs[3];
	int64_t ids[3], t0, t1;
	litebus_reader *r;
	litebus_row row;

	for (size_t i = 0; i < sizeof bytes; i++)
		bytes[i] = (unsigned char)i;
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7u);
	memset(recs, 0, sizeof recs);
	recs[0] = (litebus_record){.partition_key = -42,
				   .subject = subject,
				   .subject_len = sizeof subject,
				   .event_type = "order.created",
				   .ns = "billing",
				   .instance_tag = "v2",
				   .payload = bytes,
				   .payload_len = sizeof bytes,
				   .occurred_at_ms = 1234567890123};
	recs[1] =
	    (litebus_record){.partition_key = INT64_MAX, .event_type = "x"};
	recs[2] = (litebus_record){.partition_key = 0,
				   .subject = long_subject,
				   .subject_len = strlen(long_subject),
				   .event_type = "big",
				   .instance_tag = "only-tag",
				   .payload = big,
				   .payload_len = sizeof big,
				   .occurred_at_ms = -5};

	r = fx_reader_open(f->bus, LITEBUS_SIGNAL_DELIVERY, LITEBUS_FROM_NOW,
			   NULL);
	t0 = fx_wall_ms();
	emit_recs(f->bus, LITEBUS_SIGNAL_DELIVERY, recs, 3, ids);
	t1 = fx_wall_ms();

	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(row.event_id, ids[0]);
	assert_int_equal(row.partition_key, -42);
	assert_int_equal(row.subject_len, sizeof subject);
	assert_memory_equal(row.subject, subject, sizeof subject);
	assert_string_equal(row.event_type, "order.created");
	assert_string_equal(row.ns, "billing");
	assert_string_equal(row.instance_tag, "v2");
	assert_int_equal(row.payload_len, sizeof bytes);
	assert_memory_equal(row.payload, bytes, sizeof bytes);
	assert_int_equal(row.occurred_at_ms, 1234567890123);
	assert_in_range(row.committed_at_ms, t0, t1);
	int64_t committed = row.committed_at_ms;

	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(row.event_id, ids[1]);
	assert_true(row.partition_key == INT64_MAX);
	assert_null(row.subject);
	assert_int_equal(row.subject_len, 0);
	assert_string_equal(row.event_type, "x");
	assert_null(row.ns);
	assert_null(row.instance_tag);
	assert_null(row.payload);
	assert_int_equal(row.payload_len, 0);
	assert_in_range(row.occurred_at_ms, t0, t1); /* 0 = now */
	/* One transaction: one commit time. */
	assert_int_equal(row.committed_at_ms, committed);

	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(row.event_id, ids[2]);
	assert_int_equal(row.subject_len, strlen(long_subject));
	assert_memory_equal(row.subject, long_subject, strlen(long_subject));
	assert_string_equal(row.event_type, "big");
	assert_null(row.ns);
	assert_string_equal(row.instance_tag, "only-tag");
	assert_int_equal(row.payload_len, sizeof big);
	assert_memory_equal(row.payload, big, sizeof big);
	assert_int_equal(row.occurred_at_ms, -5);
	assert_int_equal(row.committed_at_ms, committed);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* Close                                                               */

struct blocked_reader {
	litebus_reader *r;
	int64_t got[64];
	_Atomic int count;
	int final_rc;
};

static void *
blocked_reader_main(void *p)
{
	struct blocked_reader *b = p;
	litebus_row row;
	int rc;

	while ((rc = litebus_reader_next(b->r, &row, -1)) == LITEBUS_OK) {
		int n = atomic_load_explicit(&b->count, memory_order_relaxed);
		if (n < 64)
			b->got[n] = row.event_id;
		atomic_store_explicit(&b->count, n + 1, memory_order_release);
	}
	b->final_rc = rc;
	return NULL;
}

/* Bounded wait until the reader thread has taken `n` rows. */
static void
wait_for_rows(struct blocked_reader *b, int n)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	while (atomic_load_explicit(&b->count, memory_order_acquire) < n) {
		if (fx_now_ms() > deadline)
			fail_msg("the reader thread did not get %d rows", n);
		sched_yield();
	}
}

/* Contract, litebus_close(): "the jobs already queued run and commit,
 * their events are published, ... and every subscriber and reader then
 * drains what was committed and reports LITEBUS_CLOSED." */
static void
close_wakes_a_reader_blocked_forever_with_closed_after_every_row(void **state)
{
	struct bus_fixture *f = *state;
	static const litebus_record rec = {.event_type = "success"};
	static struct emit_spec late = {LITEBUS_COMPLETION, &rec, 1, NULL};
	struct blocked_reader b = {0};
	pthread_t t;

	b.r =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	atomic_init(&b.count, 0);
	assert_int_equal(pthread_create(&t, NULL, blocked_reader_main, &b), 0);
	commit_events(f->bus, LITEBUS_COMPLETION, 20, NULL);
	wait_for_rows(&b, 20);
	/* It has everything and sleeps in next(-1). */
	wait_until_a_reader_sleeps(f->bus, LITEBUS_COMPLETION);
	/* Queued before close, so they still commit and reach the reader. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(
		    litebus_submit(f->bus, job_emit_recs, &late, NULL, NULL),
		    LITEBUS_OK);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	pthread_join(t, NULL);
	assert_int_equal(b.final_rc, LITEBUS_CLOSED);
	assert_int_equal(atomic_load(&b.count), 30);
	for (int i = 0; i < 30; i++)
		assert_int_equal(b.got[i], i + 1);
	/* Contract: "keeps returning what was committed, then CLOSED". */
	litebus_row row;
	assert_int_equal(litebus_reader_next(b.r, &row, 0), LITEBUS_CLOSED);
	litebus_reader_close(b.r);
}

/* A reader asleep in next(-1) is woken by one batch larger than its
 * ring: lapped while asleep, it still gets every row, in order. */
static void
a_sleeping_reader_lapped_by_one_big_batch_gets_every_row(void **state)
{
	struct bus_fixture *f = *state; /* 8-slot rings */
	struct blocked_reader b = {0};
	litebus_reader_stats rs;
	pthread_t t;

	b.r =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	atomic_init(&b.count, 0);
	assert_int_equal(pthread_create(&t, NULL, blocked_reader_main, &b), 0);
	wait_until_a_reader_sleeps(f->bus, LITEBUS_COMPLETION);
	commit_batch(f->bus, LITEBUS_COMPLETION, 50, NULL); /* ids 1..50 */
	wait_for_rows(&b, 50);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	pthread_join(t, NULL);
	assert_int_equal(b.final_rc, LITEBUS_CLOSED);
	assert_int_equal(atomic_load(&b.count), 50);
	for (int i = 0; i < 50; i++)
		assert_int_equal(b.got[i], i + 1);
	assert_int_equal(litebus_reader_stats_get(b.r, &rs), LITEBUS_OK);
	assert_true(rs.lags > 0);
	litebus_reader_close(b.r);
}

/* ------------------------------------------------------------------ */
/* In-memory databases                                                 */

static int
memory_bus_with_tiny_rings(void **state)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	litebus_options_init(&f->opts);
	f->opts.ring_capacity = 8;
	assert_null(f->opts.path);
	assert_int_equal(litebus_open(&f->opts, &f->bus), LITEBUS_OK);
	*state = f;
	return 0;
}

/* Contract, litebus_options.path: "NULL ... gives a private in-memory
 * database, shared by the bus and its readers and gone when the last of
 * them closes." */
static void
in_memory_reader_catches_up_after_lag_and_after_the_bus_closed(void **state)
{
	struct bus_fixture *f = *state; /* in memory, 8-slot rings */
	enum { N = 300, LATE = 50 };
	static int64_t ids[N + LATE];
	litebus_reader_stats rs;
	litebus_reader *r, *idle;
	litebus_row row;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	idle = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			      NULL);
	commit_in_jobs(f->bus, LITEBUS_COMPLETION, N / 2, 10, ids);
	commit_events(f->bus, LITEBUS_COMPLETION, N / 2, ids + N / 2);
	for (int i = 0; i < N; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	assert_int_equal(litebus_reader_stats_get(r, &rs), LITEBUS_OK);
	assert_true(rs.lags > 0);

	commit_events(f->bus, LITEBUS_COMPLETION, LATE, ids + N);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	/* The readers' connections keep the database alive. */
	for (int i = N; i < N + LATE; i++)
		fx_expect_row(r, ids[i]);
	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
			 LITEBUS_CLOSED);
	for (int i = 0; i < N + LATE; i++)
		fx_expect_row(idle, ids[i]);
	assert_int_equal(litebus_reader_next(idle, &row, FX_WAIT_MS),
			 LITEBUS_CLOSED);
	litebus_reader_close(r);
	litebus_reader_close(idle);
}

/* In memory, readers see the writer's pages uncommitted (outbox.c), but a
 * job still running must stay invisible: its rows lie above every
 * published id. */
static int
job_emit_and_wait(litebus_tx *tx, void *arg)
{
	struct fx_barrier *b = arg;
	struct fx_emit twenty = {.channel = LITEBUS_COMPLETION, .count = 20};

	if (fx_emit_job(tx, &twenty) != LITEBUS_OK)
		return -1;
	fx_barrier_wait(b); /* rows written, not committed */
	fx_barrier_wait(b); /* the test has looked */
	return JOB_FAILED;
}

static void
in_memory_reader_never_sees_the_rows_of_a_running_job(void **state)
{
	struct bus_fixture *f = *state; /* in memory, 8-slot rings */
	int64_t ids[20];
	struct fx_barrier b;
	litebus_reader *r;

	fx_barrier_init(&b, 2);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	commit_events(f->bus, LITEBUS_COMPLETION, 20, ids); /* laps r */
	assert_int_equal(
	    litebus_submit(f->bus, job_emit_and_wait, &b, NULL, NULL),
	    LITEBUS_OK);
	fx_barrier_wait(&b);
	for (int i = 0; i < 20; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	fx_barrier_wait(&b);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, ids);
	assert_int_equal(ids[0], 21); /* the rolled-back ids, reused */
	fx_expect_row(r, 21);
	fx_expect_no_row(r);
	litebus_reader_close(r);
	fx_barrier_destroy(&b);
}

/* A job may prune the outbox (litebus_tx_db + DELETE).  If it rolls back,
 * the rows were never gone: a reader catching up while the job runs must
 * still deliver every one of them. */
static int
job_delete_all_then_fail(litebus_tx *tx, void *arg)
{
	struct fx_barrier *b = arg;
	int rc = sqlite3_exec(litebus_tx_db(tx),
			      "DELETE FROM litebus_outbox_completion", NULL,
			      NULL, NULL);

	fx_barrier_wait(b); /* deleted, not committed */
	fx_barrier_wait(b); /* the test has read */
	return rc == SQLITE_OK ? JOB_FAILED : -1;
}

static void
rolled_back_delete_scenario(struct bus_fixture *f)
{
	int64_t ids[20];
	struct fx_barrier b;
	litebus_reader *r;
	litebus_row row;
	int got = 0, rc;

	fx_barrier_init(&b, 2);
	commit_events(f->bus, LITEBUS_COMPLETION, 20, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	assert_int_equal(
	    litebus_submit(f->bus, job_delete_all_then_fail, &b, NULL, NULL),
	    LITEBUS_OK);
	fx_barrier_wait(&b);
	/* Catch up while the DELETE is pending (whatever it returns). */
	rc = litebus_reader_next(r, &row, 0);
	if (rc == LITEBUS_OK) {
		assert_int_equal(row.event_id, ids[0]);
		got = 1;
	}
	fx_barrier_wait(&b);
	/* Queued behind the job: once it returns, the job is over (and
	 * has left the barrier, which may then be destroyed). */
	assert_int_equal(litebus_exec(f->bus, fx_noop_job, NULL), 0);
	for (int i = got; i < 20; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	if (f->path[0] != '\0') /* a file database */
		assert_int_equal(fx_count_rows(f->path, "completion"), 20);
	litebus_reader_close(r);
	fx_barrier_destroy(&b);
}

static void
reader_keeps_rows_whose_deletion_was_rolled_back(void **state)
{
	rolled_back_delete_scenario(*state);
}

/*
 * Readers of an in-memory bus read committed pages only (memvfs.c, M3),
 * like readers of a file: a DELETE that later rolls back never makes them
 * skip rows that come back.
 */
static void
in_memory_reader_keeps_rows_whose_deletion_was_rolled_back(void **state)
{
	struct bus_fixture *f = *state; /* in memory, 8-slot rings */

	rolled_back_delete_scenario(f);
}

static int
job_delete_first(litebus_tx *tx, void *arg)
{
	*(int *)arg =
	    sqlite3_exec(litebus_tx_db(tx),
			 "DELETE FROM litebus_outbox_completion WHERE "
			 "event_id = 1",
			 NULL, NULL, NULL);
	return 0;
}

/* Contract, litebus_job_fn: a job "may delete outbox rows (pruning)";
 * "Rows deleted before a reader reaches them are not delivered".  In
 * memory as on a file. */
static void
in_memory_bus_lets_a_job_prune_outbox_rows(void **state)
{
	struct bus_fixture *f = *state; /* in memory */
	litebus_reader *r;
	litebus_row row;
	int64_t ids[3];
	int rc = -1;

	commit_events(f->bus, LITEBUS_COMPLETION, 3, ids);
	assert_int_equal(litebus_exec(f->bus, job_delete_first, &rc), 0);
	assert_int_equal(rc, SQLITE_OK);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(row.event_id, ids[i]);
	}
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* Concurrency                                                         */

enum { CP = 4, CR = 4, CN = 1000 }; /* producers, readers, jobs each */

struct c_producer {
	litebus *bus;
	struct fx_barrier *start;
	int index;
	int rc;
};

static void *
c_producer_main(void *p)
{
	struct c_producer *a = p;

	fx_barrier_wait(a->start);
	for (int i = 0; i < CN && a->rc == 0; i++) {
		/* payload: which producer, and its sequence number */
		int32_t tag[2] = {a->index, i};
		litebus_record rec = {.partition_key = a->index,
				      .event_type = "success",
				      .payload = tag,
				      .payload_len = sizeof tag};
		struct emit_spec s = {LITEBUS_COMPLETION, &rec, 1, NULL};
		a->rc = litebus_exec(a->bus, job_emit_recs, &s);
	}
	return NULL;
}

struct c_reader {
	litebus_reader *r;
	struct fx_barrier *start;
	bool slow;
	char err[200];
};

static void *
c_reader_main(void *p)
{
	struct c_reader *a = p;
	int32_t next_seq[CP] = {0};
	litebus_row row;

	fx_barrier_wait(a->start);
	for (int64_t id = 1; id <= CP * CN; id++) {
		int32_t tag[2];
		int rc = litebus_reader_next(a->r, &row, FX_WAIT_MS);

		if (rc != LITEBUS_OK) {
			snprintf(a->err, sizeof a->err, "row %lld: %s",
				 (long long)id, litebus_errname(rc));
			return NULL;
		}
		if (row.event_id != id || row.payload_len != sizeof tag) {
			snprintf(a->err, sizeof a->err,
				 "expected row %lld, got %lld", (long long)id,
				 (long long)row.event_id);
			return NULL;
		}
		memcpy(tag, row.payload, sizeof tag);
		if (tag[0] < 0 || tag[0] >= CP || tag[1] != next_seq[tag[0]]) {
			snprintf(a->err, sizeof a->err,
				 "row %lld: producer %d seq %d out of order",
				 (long long)id, tag[0], tag[1]);
			return NULL;
		}
		next_seq[tag[0]]++;
		if (a->slow)
			for (int k = 0; k < 20; k++)
				sched_yield();
	}
	if (litebus_reader_next(a->r, &row, 0) != LITEBUS_TIMEOUT)
		snprintf(a->err, sizeof a->err, "a row beyond the last");
	return NULL;
}

static void
four_producers_and_four_readers_each_reader_sees_every_row_once_in_order(
    void **state)
{
	struct bus_fixture *f = *state; /* 8-slot rings */
	struct fx_barrier start;
	struct c_producer prod[CP];
	struct c_reader rd[CR];
	pthread_t pt[CP], rt[CR];

	fx_barrier_init(&start, CP + CR);
	for (int i = 0; i < CR; i++) {
		rd[i] = (struct c_reader){.start = &start, .slow = i == 0};
		rd[i].r = fx_reader_open(f->bus, LITEBUS_COMPLETION,
					 LITEBUS_FROM_START, NULL);
		assert_int_equal(
		    pthread_create(&rt[i], NULL, c_reader_main, &rd[i]), 0);
	}
	for (int i = 0; i < CP; i++) {
		prod[i] = (struct c_producer){f->bus, &start, i, 0};
		assert_int_equal(
		    pthread_create(&pt[i], NULL, c_producer_main, &prod[i]), 0);
	}
	for (int i = 0; i < CP; i++)
		pthread_join(pt[i], NULL);
	for (int i = 0; i < CR; i++)
		pthread_join(rt[i], NULL);
	for (int i = 0; i < CP; i++)
		assert_int_equal(prod[i].rc, 0);
	for (int i = 0; i < CR; i++) {
		if (rd[i].err[0] != '\0')
			fail_msg("reader %d%s: %s", i,
				 rd[i].slow ? " (slow)" : "", rd[i].err);
		litebus_reader_close(rd[i].r);
	}
	fx_barrier_destroy(&start);
}

/* ------------------------------------------------------------------ */
/* The file descriptor                                                 */

/* Contract, litebus_reader_fd(): "readable while rows (or CLOSED) may be
 * waiting; unreadable only after litebus_reader_next() returned
 * TIMEOUT." */
static void
reader_fd_is_level_triggered_like_the_subscriber_fd(void **state)
{
	struct bus_fixture *f = *state; /* 8-slot rings */
	litebus_reader *r;
	litebus_row row;
	int64_t ids[20];
	int fd;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	fd = litebus_reader_fd(r);
	assert_true(fd >= 0);
	assert_int_equal(litebus_reader_fd(r), fd); /* one fd per reader */
	assert_true(fx_fd_readable(fd, 0));	    /* starts readable */
	fx_expect_no_row(r);
	assert_false(fx_fd_readable(fd, 0));

	commit_events(f->bus, LITEBUS_COMPLETION, 2, ids);
	assert_true(fx_fd_readable(fd, FX_WAIT_MS));
	assert_true(fx_fd_readable(fd, 0)); /* level: still readable */
	fx_expect_row(r, ids[0]);
	assert_true(fx_fd_readable(fd, 0));
	fx_expect_row(r, ids[1]);
	assert_true(fx_fd_readable(fd, 0)); /* no TIMEOUT yet */
	fx_expect_no_row(r);
	assert_false(fx_fd_readable(fd, 0));

	/* Lapped while armed: readable, and every row is still there. */
	commit_events(f->bus, LITEBUS_COMPLETION, 20, ids);
	assert_true(fx_fd_readable(fd, FX_WAIT_MS));
	for (int i = 0; i < 20; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	assert_false(fx_fd_readable(fd, 0));

	/* Close makes it readable for the CLOSED status. */
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	assert_true(fx_fd_readable(fd, FX_WAIT_MS));
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_CLOSED);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* Misuse                                                              */

/* Contract: "EINVAL (NULL, after_event_id < -1)"; cursor "Returns -1 for
 * NULL"; close "NULL is a no-op". */
static void
reader_calls_with_null_or_a_bad_cursor_are_einval(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r = (litebus_reader *)&r, *ok;
	litebus_reader_stats rs;
	litebus_row row;

	assert_int_equal(
	    litebus_reader_open(NULL, LITEBUS_COMPLETION, 0, NULL, &r),
	    LITEBUS_EINVAL);
	assert_null(r);
	assert_int_equal(
	    litebus_reader_open(f->bus, LITEBUS_COMPLETION, 0, NULL, NULL),
	    LITEBUS_EINVAL);
	r = (litebus_reader *)&r;
	assert_int_equal(
	    litebus_reader_open(f->bus, LITEBUS_COMPLETION, -2, NULL, &r),
	    LITEBUS_EINVAL);
	assert_null(r);
	assert_non_null(strstr(litebus_last_errmsg(), "-1"));
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     INT64_MIN, NULL, &r),
			 LITEBUS_EINVAL);

	ok = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			    NULL);
	assert_int_equal(litebus_reader_next(NULL, &row, 0), LITEBUS_EINVAL);
	assert_int_equal(litebus_reader_next(ok, NULL, 0), LITEBUS_EINVAL);
	assert_int_equal(litebus_reader_fd(NULL), LITEBUS_EINVAL);
	assert_int_equal(litebus_reader_stats_get(NULL, &rs), LITEBUS_EINVAL);
	assert_int_equal(litebus_reader_stats_get(ok, NULL), LITEBUS_EINVAL);
	assert_int_equal(litebus_reader_cursor(NULL), -1);
	litebus_reader_close(NULL);
	/* The reader is unharmed. */
	fx_expect_no_row(ok);
	litebus_reader_close(ok);
}

/* Contract: "ENOCHANNEL". */
static void
reader_on_an_unknown_channel_is_enochannel(void **state)
{
	struct bus_fixture *f = *state;
	int bad[] = {-1, LITEBUS_BUILTIN_CHANNELS, LITEBUS_MAX_CHANNELS, 1000};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		litebus_reader *r = (litebus_reader *)&r;
		assert_int_equal(litebus_reader_open(f->bus, bad[i],
						     LITEBUS_FROM_START, NULL,
						     &r),
				 LITEBUS_ENOCHANNEL);
		assert_null(r);
	}
}

/* Contract: "ECLOSED"; a subscriber keeps the bus's memory alive. */
static void
reader_open_after_close_is_eclosed(void **state)
{
	struct bus_fixture *f = *state;
	litebus *bus = f->bus;
	litebus_sub *keep;
	litebus_reader *r = (litebus_reader *)&r;

	assert_int_equal(litebus_subscribe(bus, LITEBUS_COMPLETION, &keep),
			 LITEBUS_OK);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	f->bus = NULL;
	assert_int_equal(litebus_reader_open(bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_ECLOSED);
	assert_null(r);
	litebus_unsubscribe(keep);
}

/* D5: rows committed by another writer of the file (another process; a
 * plain connection stands in) never reach this ring; a filtered reader
 * must not let the ring prove their range empty. */
static int
job_emit_pk2(litebus_tx *tx, void *arg)
{
	struct fx_emit e = {
	    .channel = LITEBUS_COMPLETION, .partition_key = 2, .ids = arg};

	return fx_emit_job(tx, &e);
}

static void
filtered_reader_delivers_a_row_committed_by_another_writer(void **state)
{
	struct bus_fixture *f = *state;
	litebus_filter flt = {.partition_key = 1, .any_partition = 0};
	litebus_reader *r;
	litebus_row row;
	sqlite3 *other;
	int64_t id2 = 0;
	int rc;

	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, &flt, &r),
			 LITEBUS_OK);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);

	/* Another writer commits id 1, partition 1: it matches the filter. */
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	sqlite3_busy_timeout(other, 5000);
	assert_int_equal(
	    sqlite3_exec(other,
			 "INSERT INTO litebus_outbox_completion(event_id, "
			 "partition_key, event_type, occurred_at_ms, "
			 "committed_at_ms) VALUES(1, 1, 'success', 1, 1)",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(other);

	/* Our bus then commits id 2 (it reloaded next_id), partition 2. */
	assert_int_equal(litebus_exec(f->bus, job_emit_pk2, &id2), 0);
	assert_int_equal(id2, 2);

	rc = litebus_reader_next(r, &row, 1000);
	print_message("next: %s, cursor now %lld\n", litebus_errname(rc),
		      (long long)litebus_reader_cursor(r));
	assert_int_equal(rc, LITEBUS_OK);
	assert_int_equal(row.event_id, 1);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* LITEBUS_EXPIRED (reader.c, D7)                                       */

/* The next call must return EXPIRED with exactly [first, last]. */
static void
expect_expired(litebus_reader *r, int64_t first, int64_t last)
{
	litebus_row row;
	int64_t a = -1, b = -1;
	int rc;

	memset(&row, 0xab, sizeof row);
	rc = litebus_reader_next(r, &row, FX_WAIT_MS);
	if (rc != LITEBUS_EXPIRED)
		fail_msg("expected EXPIRED [%lld, %lld], got %s",
			 (long long)first, (long long)last,
			 litebus_errname(rc));
	/* "*row is untouched" */
	assert_int_equal(row.event_id, (int64_t)0xababababababababLL);
	assert_int_equal(litebus_reader_expired(r, &a, &b), LITEBUS_OK);
	if (a != first || b != last)
		fail_msg("expired [%lld, %lld], expected [%lld, %lld]",
			 (long long)a, (long long)b, (long long)first,
			 (long long)last);
	/* "the cursor moves to the end of that range" */
	assert_int_equal(litebus_reader_cursor(r), last);
}

static void
prune_before(litebus *bus, int channel, int64_t before)
{
	int rc = litebus_prune(bus, channel, before);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_prune: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
}

/* Header, litebus_reader_next: "Returns LITEBUS_EXPIRED when rows the
 * reader had not read yet were pruned ... litebus_reader_expired() gives
 * the exact range of event_ids lost, the cursor moves to the end of that
 * range, and the next call continues with the oldest retained row." */
static void
reader_far_behind_a_prune_gets_expired_with_the_exact_range_once(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;
	int64_t a = -1, b = -1;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	/* "Before any EXPIRED, 0 and 0." */
	assert_int_equal(litebus_reader_expired(r, &a, &b), LITEBUS_OK);
	assert_int_equal(a, 0);
	assert_int_equal(b, 0);
	commit_in_jobs(f->bus, LITEBUS_COMPLETION, 40, 10, NULL); /* laps */
	for (int64_t id = 1; id <= 5; id++)
		fx_expect_row(r, id);
	prune_before(f->bus, LITEBUS_COMPLETION, 31);
	/* 1..5 came from one page of (0, 40]: the reader had read rows
	 * 6..40 before they were pruned, and delivers them. */
	for (int64_t id = 6; id <= 40; id++)
		fx_expect_row(r, id);
	fx_expect_no_row(r);
	litebus_reader_close(r);

	/* A reader that had not fetched them yet loses them. */
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, 20, NULL);
	expect_expired(r, 21, 30);
	for (int64_t id = 31; id <= 40; id++)
		fx_expect_row(r, id);
	fx_expect_no_row(r);
	/* Once per loss. */
	assert_int_equal(litebus_reader_expired(r, &a, &b), LITEBUS_OK);
	assert_int_equal(a, 21);
	assert_int_equal(b, 30);
	litebus_reader_close(r);
}

/* Header: "a reader opened with a cursor below the oldest retained row
 * gets it on its first call." */
static void
reader_opened_below_the_oldest_row_gets_expired_first(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;

	commit_batch(f->bus, LITEBUS_COMPLETION, 20, NULL);
	prune_before(f->bus, LITEBUS_COMPLETION, 11);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	expect_expired(r, 1, 10);
	fx_expect_row(r, 11);
	litebus_reader_close(r);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, 3, NULL);
	expect_expired(r, 4, 10);
	fx_expect_row(r, 11);
	litebus_reader_close(r);
	/* At the edge: nothing lost. */
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, 10, NULL);
	fx_expect_row(r, 11);
	litebus_reader_close(r);
}

/* Everything pruned: the page is empty, the loss is still told. */
static void
reader_whose_every_row_was_pruned_gets_expired_then_waits(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	commit_batch(f->bus, LITEBUS_COMPLETION, 12, NULL);
	prune_before(f->bus, LITEBUS_COMPLETION, 100);
	expect_expired(r, 1, 12);
	fx_expect_no_row(r);
	assert_int_equal(litebus_reader_cursor(r), 12);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 13);
	fx_expect_row(r, 13);
	litebus_reader_close(r);
}

/* Header, litebus_reader_expired: "ids in it that ... did not match are
 * included". */
static void
filtered_reader_gets_expired_for_a_pruned_range(void **state)
{
	struct bus_fixture *f = *state;
	litebus_filter flt = {.any_partition = 0, .partition_key = 14};
	litebus_reader *r;

	/* Event i (0-based) has partition_key i: id 15 is partition 14. */
	commit_batch(f->bus, LITEBUS_COMPLETION, 20, NULL);
	prune_before(f->bus, LITEBUS_COMPLETION, 11);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   &flt);
	expect_expired(r, 1, 10);
	fx_expect_row(r, 15);
	fx_expect_no_row(r);
	assert_int_equal(litebus_reader_cursor(r), 20);
	litebus_reader_close(r);
	/* Pruned rows at or below the cursor are not a loss. */
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, 12, &flt);
	fx_expect_row(r, 15);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* A live filtered reader: the ring showed it rows it cannot match; their
 * pruning is no loss to it (D7: [cursor + 1, sql_from) is not asked). */
static void
live_filtered_reader_is_not_told_of_rows_it_could_not_match(void **state)
{
	struct bus_fixture *f = *state;
	litebus_filter flt = {.any_partition = 0, .partition_key = 7};
	struct fx_emit other = {
	    .channel = LITEBUS_COMPLETION, .count = 5, .partition_key = 100};
	struct fx_emit mine = {.channel = LITEBUS_COMPLETION,
			       .partition_key = 7};
	litebus_reader *r;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, &flt);
	fx_commit(f->bus, &other); /* ids 1-5, partition 100 */
	fx_commit(f->bus, &mine);  /* id 6, partition 7 */
	prune_before(f->bus, LITEBUS_COMPLETION, 6);
	fx_expect_row(r, 6);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* Header: "Rows a job deletes itself are not "pruned": readers do not see
 * them and are not told". */
static void
rows_a_job_deleted_are_not_reported_expired(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;

	commit_batch(f->bus, LITEBUS_COMPLETION, 10, NULL);
	fx_sql_run_at(f->path, "DELETE FROM litebus_outbox_completion WHERE "
			       "event_id BETWEEN 1 AND 4");
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	fx_expect_row(r, 5);
	litebus_reader_close(r);
	/* A prune below the cursor of a reader tells it nothing. */
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, 6, NULL);
	prune_before(f->bus, LITEBUS_COMPLETION, 7);
	fx_expect_row(r, 7);
	litebus_reader_close(r);
}

/* Header: "Returns OK, or EINVAL for NULL." */
static void
reader_expired_with_null_is_einval(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;
	int64_t a, b;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	assert_int_equal(litebus_reader_expired(NULL, &a, &b), LITEBUS_EINVAL);
	assert_int_equal(litebus_reader_expired(r, NULL, &b), LITEBUS_EINVAL);
	assert_int_equal(litebus_reader_expired(r, &a, NULL), LITEBUS_EINVAL);
	litebus_reader_close(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(reader_from_start_delivers_every_committed_row_in_order),
	    FX_TEST_TINY(reader_after_a_cursor_starts_strictly_after_it),
	    FX_TEST_TINY(reader_after_a_cursor_beyond_the_newest_row_delivers_only_rows_past_it),
	    FX_TEST_TINY(reader_from_now_sees_only_rows_committed_after_open),
	    FX_TEST_TINY(reader_that_does_not_read_while_thousands_commit_gets_each_row_once),
	    FX_TEST_TINY(slow_reader_lapped_between_reads_gets_each_row_once_in_order),
	    FX_TEST_TINY(catch_up_in_small_pages_joins_them_without_gap_or_overlap),
	    FX_TEST_DEFAULT(no_row_is_lost_between_catch_up_and_live_while_a_producer_commits),
	    FX_TEST_TINY(no_row_is_lost_between_catch_up_and_live_with_a_lapping_producer),
	    FX_TEST_TINY(reader_resumes_after_the_database_is_reopened_without_gap_or_duplicate),
	    FX_TEST_TINY(partition_filter_delivers_only_that_partition_and_passes_the_rest),
	    FX_TEST_TINY(namespace_filter_delivers_only_that_namespace_and_passes_the_rest),
	    FX_TEST_TINY(instance_tag_filter_delivers_only_that_tag_and_passes_the_rest),
	    FX_TEST_TINY(combined_filter_delivers_only_rows_matching_every_set_field),
	    FX_TEST_TINY(reader_keeps_its_own_copy_of_the_filter),
	    FX_TEST_TINY(rows_of_a_rolled_back_job_are_never_delivered),
	    FX_TEST_TINY(rows_carry_every_field_as_emitted),
	    FX_TEST_DEFAULT(close_wakes_a_reader_blocked_forever_with_closed_after_every_row),
	    FX_TEST_TINY(a_sleeping_reader_lapped_by_one_big_batch_gets_every_row),
	    FX_TEST_WITH(in_memory_reader_catches_up_after_lag_and_after_the_bus_closed, memory_bus_with_tiny_rings),
	    FX_TEST_WITH(in_memory_reader_never_sees_the_rows_of_a_running_job, memory_bus_with_tiny_rings),
	    FX_TEST_TINY(reader_keeps_rows_whose_deletion_was_rolled_back),
	    FX_TEST_WITH(in_memory_reader_keeps_rows_whose_deletion_was_rolled_back, memory_bus_with_tiny_rings),
	    FX_TEST_WITH(in_memory_bus_lets_a_job_prune_outbox_rows, memory_bus_with_tiny_rings),
	    FX_TEST_TINY(four_producers_and_four_readers_each_reader_sees_every_row_once_in_order),
	    FX_TEST_TINY(reader_fd_is_level_triggered_like_the_subscriber_fd),
	    FX_TEST_TINY(reader_calls_with_null_or_a_bad_cursor_are_einval),
	    FX_TEST_TINY(reader_on_an_unknown_channel_is_enochannel),
	    FX_TEST_TINY(reader_open_after_close_is_eclosed),
	    FX_TEST_TINY(filtered_reader_delivers_a_row_committed_by_another_writer),
	    FX_TEST_TINY(reader_far_behind_a_prune_gets_expired_with_the_exact_range_once),
	    FX_TEST_TINY(reader_opened_below_the_oldest_row_gets_expired_first),
	    FX_TEST_TINY(reader_whose_every_row_was_pruned_gets_expired_then_waits),
	    FX_TEST_TINY(filtered_reader_gets_expired_for_a_pruned_range),
	    FX_TEST_TINY(live_filtered_reader_is_not_told_of_rows_it_could_not_match),
	    FX_TEST_TINY(rows_a_job_deleted_are_not_reported_expired),
	    FX_TEST_TINY(reader_expired_with_null_is_einval),
	};

	return cmocka_run_group_tests_name("reader", tests, NULL, NULL);
}
