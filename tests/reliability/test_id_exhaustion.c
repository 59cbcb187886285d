/* SPDX-License-Identifier: MIT */
/*
 * test_id_exhaustion.c - event_ids and high-water marks read from the
 * file, at and beyond the end of int64_t.
 *
 * Issue 7, class 11 ("Ids and counters read from the file"): "Any
 * arithmetic on values that come from the database (ids, high-water
 * marks, counts) must be checked for exhaustion and refuse with a clear
 * error rather than wrap or misbehave."  The file is made hostile with a
 * plain SQLite connection: the largest committed id moved to just below
 * INT64_MAX, the high-water mark set to INT64_MAX, to text, to a real, to
 * a negative number - with the bus closed, and while it is open.
 *
 * The contract (include/litebus.h, litebus_emit): the event_id is "larger
 * than every event_id ever committed or published on this channel, even
 * deleted ones"; "ENOSPC (... the channel's event_ids are exhausted: the
 * next would exceed INT64_MAX)"; "After an error nothing was appended;
 * the job may go on".  litebus_open: "ESCHEMA (... litebus_* objects ...
 * of another shape)"; "On failure *out is NULL".
 *
 * Run under UBSan: a wrapped id is signed overflow, reported at once.
 */
#include "fixture.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MSG_MAX 512
/* What a job returns to roll itself back (not a litebus status). */
/* An event_id emit must leave alone when it fails. */
#define ID_UNTOUCHED (-77)

/* ------------------------------------------------------------------ */
/* The file, through a plain connection                                */

/* The single value `sql` returns, as text (NULL -> "NULL"). */
static void
plain_text(const char *path, const char *sql, char *out, size_t len)
{
	sqlite3 *db = fx_sql_open(path, SQLITE_OPEN_READWRITE);
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, len, "%s",
		 sqlite3_column_type(st, 0) == SQLITE_NULL
		     ? "NULL"
		     : (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void
set_largest_id(const char *path, int64_t id)
{
	char sql[200];

	snprintf(sql, sizeof sql,
		 "UPDATE main.litebus_outbox_completion SET event_id = %lld",
		 (long long)id);
	fx_sql_run_at(path, sql);
}

static void
set_high_water(const char *path, const char *value)
{
	char sql[200];

	snprintf(sql, sizeof sql,
		 "UPDATE main.litebus_channel SET high_water = %s "
		 "WHERE name = 'completion'",
		 value);
	fx_sql_run_at(path, sql);
}

static void
reopen(struct bus_fixture *f)
{
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	fx_open(f);
}

/* ------------------------------------------------------------------ */
/* Jobs                                                                */

#define MAX_EMITS 4

struct emit_job {
	int channel;
	int count;
	int ret; /* what the job returns */
	int rc[MAX_EMITS];
	int64_t id[MAX_EMITS];
	char msg[MAX_EMITS][MSG_MAX];
};

/* Emit `count` events on `channel`, recording each status, id and error
 * text; go on after errors (the job decides), then return `ret`. */
static int
emit_job_fn(litebus_tx *tx, void *arg)
{
	struct emit_job *j = arg;

	for (int i = 0; i < j->count; i++) {
		litebus_record rec = {0};

		rec.partition_key = i;
		rec.event_type = fx_event_type(j->channel);
		rec.payload = &i;
		rec.payload_len = sizeof i;
		j->id[i] = ID_UNTOUCHED;
		j->rc[i] = litebus_emit(tx, j->channel, &rec, &j->id[i]);
		snprintf(j->msg[i], sizeof j->msg[i], "%s",
			 j->rc[i] != LITEBUS_OK ? litebus_last_errmsg() : "");
	}
	return j->ret;
}

/* One job with one emit on `channel`; returns the event_id, or fails. */
static int64_t
emit_one(struct bus_fixture *f, int channel)
{
	struct emit_job j = {channel, 1, 0, {0}, {0}, {{0}}};

	assert_int_equal(litebus_exec(f->bus, emit_job_fn, &j), 0);
	if (j.rc[0] != LITEBUS_OK)
		fail_msg("emit on channel %d: %s: %s", channel,
			 litebus_errname(j.rc[0]), j.msg[0]);
	return j.id[0];
}

/* One job whose one emit on completion must be refused with ENOSPC, with
 * a message that names the channel; the job returns 0 and exec too. */
static void
emit_refused_with_enospc(struct bus_fixture *f)
{
	struct emit_job j = {LITEBUS_COMPLETION, 1, 0, {0}, {0}, {{0}}};

	assert_int_equal(litebus_exec(f->bus, emit_job_fn, &j), 0);
	if (j.rc[0] != LITEBUS_ENOSPC)
		fail_msg("emit past INT64_MAX returned %s (id %lld)",
			 litebus_errname(j.rc[0]), (long long)j.id[0]);
	assert_int_equal(j.id[0], ID_UNTOUCHED);
	if (strstr(j.msg[0], "completion") == NULL)
		fail_msg("ENOSPC should name the channel: \"%s\"", j.msg[0]);
}

/* The file's largest committed id on completion becomes `largest`: one
 * event committed, the bus closed, the row's id moved with a plain
 * connection, the bus reopened. */
static void
near_max_file(struct bus_fixture *f, int64_t largest)
{
	emit_one(f, LITEBUS_COMPLETION);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	set_largest_id(f->path, largest);
	fx_open(f);
}

/* Read every row `r` delivers now; their ids into ids[], the count. */
static int
read_all(litebus_reader *r, int64_t *ids, int max)
{
	litebus_row row;
	int n = 0, rc;

	while ((rc = litebus_reader_next(r, &row, 0)) == LITEBUS_OK) {
		if (n == max)
			fail_msg("reader delivered more than %d rows", max);
		ids[n++] = row.event_id;
	}
	assert_int_equal(rc, LITEBUS_TIMEOUT);
	return n;
}

/* ------------------------------------------------------------------ */
/* The end of the id space                                             */

/* Contract, litebus_emit(): ids are "larger than every event_id ever
 * committed"; "ENOSPC (... the channel's event_ids are exhausted: the
 * next would exceed INT64_MAX) ... After an error nothing was appended;
 * the job may go on".  From INT64_MAX-2 in the file: INT64_MAX-1, then
 * INT64_MAX, then ENOSPC naming the channel, and the refusing job still
 * commits (with nothing of the refused event). */
static void
the_last_ids_are_handed_out_in_order_then_emit_refuses_with_enospc(void **state)
{
	struct bus_fixture *f = *state;

	near_max_file(f, INT64_MAX - 2);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX - 1);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX);
	emit_refused_with_enospc(f);
	emit_refused_with_enospc(f);
	assert_int_equal(fx_count_rows(f->path, "completion"), 3);
	assert_true(fx_sql_int_at(f->path,
			      "SELECT max(event_id) FROM "
			      "litebus_outbox_completion") == INT64_MAX);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT min(event_id) FROM "
					    "litebus_outbox_completion"),
			 INT64_MAX - 2);
}

/* Contract, litebus_emit(): as above, inside one job: the job gets
 * INT64_MAX-1 and INT64_MAX, then ENOSPC, returns 0, and the two commit;
 * the message names the channel and the limit. */
static void
one_job_gets_the_last_ids_then_enospc_and_commits_what_it_got(void **state)
{
	struct bus_fixture *f = *state;
	struct emit_job j = {LITEBUS_COMPLETION, 3, 0, {0}, {0}, {{0}}};

	near_max_file(f, INT64_MAX - 2);
	assert_int_equal(litebus_exec(f->bus, emit_job_fn, &j), 0);
	assert_int_equal(j.rc[0], LITEBUS_OK);
	assert_true(j.id[0] == INT64_MAX - 1);
	assert_int_equal(j.rc[1], LITEBUS_OK);
	assert_true(j.id[1] == INT64_MAX);
	assert_int_equal(j.rc[2], LITEBUS_ENOSPC);
	assert_int_equal(j.id[2], ID_UNTOUCHED);
	if (strstr(j.msg[2], "completion") == NULL ||
	    !fx_msg_has_number(j.msg[2], INT64_MAX))
		fail_msg("ENOSPC should name the channel and INT64_MAX: \"%s\"",
			 j.msg[2]);
	assert_int_equal(fx_count_rows(f->path, "completion"), 3);
}

/* Contract, litebus_emit(): "After an error nothing was appended" and
 * (header, "What a job may do") "Event ids that are handed out and then
 * undone leave gaps" - or are handed out again: INT64_MAX, handed out to
 * a job that rolls back, goes to the next job; only then is the channel
 * exhausted. */
static void
int64_max_handed_out_to_a_failing_job_is_handed_out_again(void **state)
{
	struct bus_fixture *f = *state;
	struct emit_job failing = {
	    LITEBUS_COMPLETION, 1, JOB_FAILED, {0}, {0}, {{0}}};
	litebus_sub *sub;
	litebus_event ev;

	near_max_file(f, INT64_MAX - 1);
	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_exec(f->bus, emit_job_fn, &failing),
			 JOB_FAILED);
	assert_int_equal(failing.rc[0], LITEBUS_OK);
	assert_true(failing.id[0] == INT64_MAX);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);

	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX);
	assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_true(ev.event_id == INT64_MAX);
	emit_refused_with_enospc(f);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	assert_int_equal(fx_count_rows(f->path, "completion"), 2);
	litebus_unsubscribe(sub);
}

/* Contract, litebus_reader_next(): every committed row "exactly once, in
 * event_id order"; litebus_reader_cursor(): "Reopening with this value
 * resumes with no gap and no duplicate".  Up to INT64_MAX, without
 * wrapping: from the start, from now, and reopened from INT64_MAX-1 and
 * from INT64_MAX. */
static void
readers_deliver_every_id_up_to_int64_max_exactly_once(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *from_start, *from_now, *again;
	int64_t ids[8];
	litebus_row row;

	near_max_file(f, INT64_MAX - 2);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL,
					     &from_start),
			 LITEBUS_OK);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_NOW, NULL, &from_now),
			 LITEBUS_OK);
	assert_true(litebus_reader_cursor(from_now) == INT64_MAX - 2);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX - 1);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX);
	emit_refused_with_enospc(f);

	assert_int_equal(read_all(from_start, ids, 8), 3);
	assert_true(ids[0] == INT64_MAX - 2);
	assert_true(ids[1] == INT64_MAX - 1);
	assert_true(ids[2] == INT64_MAX);
	assert_true(litebus_reader_cursor(from_start) == INT64_MAX);

	assert_int_equal(read_all(from_now, ids, 8), 2);
	assert_true(ids[0] == INT64_MAX - 1);
	assert_true(ids[1] == INT64_MAX);
	assert_true(litebus_reader_cursor(from_now) == INT64_MAX);

	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     INT64_MAX - 1, NULL, &again),
			 LITEBUS_OK);
	assert_int_equal(read_all(again, ids, 8), 1);
	assert_true(ids[0] == INT64_MAX);
	litebus_reader_close(again);

	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     INT64_MAX, NULL, &again),
			 LITEBUS_OK);
	assert_int_equal(litebus_reader_next(again, &row, 0), LITEBUS_TIMEOUT);
	assert_true(litebus_reader_cursor(again) == INT64_MAX);
	litebus_reader_close(again);

	/* Nothing more, after close either: CLOSED, not a wrapped row. */
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	assert_int_equal(litebus_reader_next(from_start, &row, FX_WAIT_MS),
			 LITEBUS_CLOSED);
	assert_int_equal(litebus_reader_next(from_now, &row, FX_WAIT_MS),
			 LITEBUS_CLOSED);
	litebus_reader_close(from_start);
	litebus_reader_close(from_now);
}

/* Contract, litebus_recv(): "OK *ev is the next event in commit order".
 * A subscriber sees INT64_MAX-1 and INT64_MAX, and nothing for the
 * refused emit. */
static void
subscribers_see_the_ids_up_to_int64_max(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	litebus_event ev;

	near_max_file(f, INT64_MAX - 2);
	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX - 1);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX);
	emit_refused_with_enospc(f);
	assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_true(ev.event_id == INT64_MAX - 1);
	assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_true(ev.event_id == INT64_MAX);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	litebus_unsubscribe(sub);
}

struct mixed_job {
	int completion_rc;
	int64_t lease_id, signal_id;
};

static int
mixed_job_fn(litebus_tx *tx, void *arg)
{
	struct mixed_job *j = arg;
	litebus_record rec = {0};
	int rc;

	rec.event_type = "success";
	j->completion_rc = litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL);
	rec.event_type = "acquired";
	rc = litebus_emit(tx, LITEBUS_LEASE_HISTORY, &rec, &j->lease_id);
	if (rc != LITEBUS_OK)
		return rc;
	rec.event_type = "signal";
	return litebus_emit(tx, LITEBUS_SIGNAL_DELIVERY, &rec, &j->signal_id);
}

/* Contract, litebus_emit(): ENOSPC when "the channel's event_ids are
 * exhausted" - that channel's only.  In the job that is refused on the
 * exhausted channel, events on two other channels commit, with their own
 * next ids. */
static void
other_channels_hand_out_ids_while_one_is_exhausted(void **state)
{
	struct bus_fixture *f = *state;
	struct mixed_job j = {0, 0, 0};
	int64_t lease_before = emit_one(f, LITEBUS_LEASE_HISTORY);

	near_max_file(f, INT64_MAX);
	assert_int_equal(litebus_exec(f->bus, mixed_job_fn, &j), 0);
	assert_int_equal(j.completion_rc, LITEBUS_ENOSPC);
	assert_int_equal(j.lease_id, lease_before + 1);
	assert_int_equal(j.signal_id, 1);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
	assert_int_equal(fx_count_rows(f->path, "lease_history"), 2);
	assert_int_equal(fx_count_rows(f->path, "signal_delivery"), 1);
}

/* Contract, litebus_emit(): ids larger than "every event_id ever
 * committed"; exhaustion is the file's, not the open's: after close and
 * reopen the channel still refuses, and still holds INT64_MAX. */
static void
an_exhausted_channel_still_refuses_after_close_and_reopen(void **state)
{
	struct bus_fixture *f = *state;

	near_max_file(f, INT64_MAX - 1);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX);
	emit_refused_with_enospc(f);
	reopen(f);
	emit_refused_with_enospc(f);
	reopen(f);
	emit_refused_with_enospc(f);
	assert_int_equal(fx_count_rows(f->path, "completion"), 2);
}

/* Contract, litebus_emit(): ids larger than every id ever committed,
 * "even deleted ones"; ENOSPC when "the next would exceed INT64_MAX".
 * The deletion high-water mark at INT64_MAX with an empty table: the
 * next emit is refused; a FROM_NOW reader starts after INT64_MAX and a
 * FROM_START reader finds nothing. */
static void
a_high_water_mark_at_int64_max_with_an_empty_table_refuses_the_next_emit(
    void **state)
{
	struct bus_fixture *f = *state;
	char sql[100];
	litebus_reader *from_start, *from_now;
	litebus_row row;

	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	snprintf(sql, sizeof sql, "%lld", (long long)INT64_MAX);
	set_high_water(f->path, sql);
	fx_open(f);
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL,
					     &from_start),
			 LITEBUS_OK);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_NOW, NULL, &from_now),
			 LITEBUS_OK);
	emit_refused_with_enospc(f);
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
	assert_int_equal(litebus_reader_next(from_start, &row, 0),
			 LITEBUS_TIMEOUT);
	assert_int_equal(litebus_reader_next(from_now, &row, 0),
			 LITEBUS_TIMEOUT);
	assert_true(litebus_reader_cursor(from_now) == INT64_MAX);
	litebus_reader_close(from_start);
	litebus_reader_close(from_now);
	/* Other channels are untouched by the mark. */
	assert_int_equal(emit_one(f, LITEBUS_LEASE_HISTORY), 1);
}

/* Contract, litebus_emit(): as above, with a mark of INT64_MAX-1: exactly
 * one more id, INT64_MAX, then ENOSPC. */
static void
a_high_water_mark_one_below_int64_max_leaves_exactly_one_id(void **state)
{
	struct bus_fixture *f = *state;
	char sql[100];

	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	snprintf(sql, sizeof sql, "%lld", (long long)(INT64_MAX - 1));
	set_high_water(f->path, sql);
	fx_open(f);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX);
	emit_refused_with_enospc(f);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
}

/* ------------------------------------------------------------------ */
/* The file changed by another connection while the bus is open        */

/* Contract, litebus_emit(): ids larger than every id "ever committed"
 * (by any connection).  Another connection moves the largest id to
 * INT64_MAX-2 while the bus is open: the bus continues from it and is
 * exhausted two ids later. */
static void
ids_moved_near_int64_max_by_another_connection_are_continued_from(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	litebus_event ev;

	emit_one(f, LITEBUS_COMPLETION);
	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	set_largest_id(f->path, INT64_MAX - 2);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX - 1);
	assert_true(emit_one(f, LITEBUS_COMPLETION) == INT64_MAX);
	emit_refused_with_enospc(f);
	assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_true(ev.event_id == INT64_MAX - 1);
	assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_true(ev.event_id == INT64_MAX);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	litebus_unsubscribe(sub);
}

/* Contract, litebus_emit(): as above, for the deletion high-water mark
 * raised to INT64_MAX by another connection while the bus is open. */
static void
a_high_water_mark_raised_to_int64_max_while_open_refuses_the_next_emit(
    void **state)
{
	struct bus_fixture *f = *state;
	char sql[100];

	emit_one(f, LITEBUS_COMPLETION);
	snprintf(sql, sizeof sql, "%lld", (long long)INT64_MAX);
	set_high_water(f->path, sql);
	emit_refused_with_enospc(f);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
	assert_int_equal(emit_one(f, LITEBUS_LEASE_HISTORY), 1);
}

/* Contract, litebus_emit(): the id is "larger than every event_id ever
 * committed or published on this channel, even deleted ones".  Another
 * connection deletes every row and lowers the mark back to 0 (as a
 * connection that turned triggers off could): the file no longer knows
 * ids 1..3, but this bus published them, and must not hand them out
 * again - a subscriber would see an id twice, and a reader whose cursor
 * is past it would never see the new row. */
static void
a_mark_lowered_by_another_connection_never_makes_a_published_id_reused(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;
	int64_t ids[4], last = 0;

	for (int i = 0; i < 3; i++)
		last = emit_one(f, LITEBUS_COMPLETION);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	assert_int_equal(read_all(r, ids, 4), 3);
	fx_sql_run_at(f->path, "DELETE FROM main.litebus_outbox_completion;"
			    "UPDATE main.litebus_channel SET high_water = 0 "
			    "WHERE name = 'completion';");
	ids[0] = emit_one(f, LITEBUS_COMPLETION);
	if (ids[0] <= last)
		fail_msg("emit handed out id %lld again (ids up to %lld were "
			 "published)",
			 (long long)ids[0], (long long)last);
	assert_int_equal(read_all(r, ids + 1, 3), 1);
	assert_int_equal(ids[1], ids[0]);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* Marks that are not ids                                              */

/* What the bus must do with a hostile high-water mark: refuse it with
 * ESCHEMA - at open, or (when it changes while open) on the next job -
 * and commit nothing, never continue from a wrapped or invented id. */
static const struct {
	const char *value; /* SQL */
	const char *what;
} bad_marks[] = {
    {"'abc'", "text"},
    {"x'0102'", "a blob"},
    {"2.5", "a real between the ids"},
    {"1e300", "a real beyond int64"},
    {"9.3e18", "a real just beyond INT64_MAX"},
    {"-5", "negative"},
    {"-9223372036854775808", "INT64_MIN"},
};

/* The completion table of the file holds rows 1..5 (so that a mark below
 * the largest id is tested too) and the mark `value`. */
static void
file_with_mark(struct bus_fixture *f, const char *value)
{
	for (int i = 0; i < 5; i++)
		emit_one(f, LITEBUS_COMPLETION);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	set_high_water(f->path, value);
}

/* Contract, litebus_open(): "ESCHEMA (a newer litebus schema, or
 * litebus_* objects that litebus did not create or of another shape)";
 * "On failure *out is NULL".  A high-water mark that is not a
 * non-negative integer is refused at open, for each kind of bad value,
 * and the file keeps its rows and the mark as they were (nothing
 * committed, nothing "repaired" into an id). */
static void
a_high_water_mark_that_is_not_an_id_is_refused_at_open(void **state)
{
	struct bus_fixture *f = *state;

	for (size_t i = 0; i < sizeof bad_marks / sizeof bad_marks[0]; i++) {
		char before[64], after[64];
		litebus *bus = NULL;
		int rc;

		if (i > 0) {
			fx_remove_dir(f);
			fx_make_dir(f);
			fx_open(f);
		}
		file_with_mark(f, bad_marks[i].value);
		plain_text(f->path,
			   "SELECT quote(high_water) FROM litebus_channel "
			   "WHERE name = 'completion'",
			   before, sizeof before);
		f->opts.path = f->path;
		rc = litebus_open(&f->opts, &bus);
		if (rc != LITEBUS_ESCHEMA) {
			if (rc == LITEBUS_OK) {
				litebus_close(bus);
			}
			fail_msg("a high-water mark that is %s (%s): open "
				 "returned %s: %s",
				 bad_marks[i].what, bad_marks[i].value,
				 litebus_errname(rc), litebus_last_errmsg());
		}
		assert_null(bus);
		if (strstr(litebus_last_errmsg(), "high-water") == NULL)
			fail_msg("ESCHEMA should say what is wrong: \"%s\"",
				 litebus_last_errmsg());
		assert_int_equal(fx_count_rows(f->path, "completion"), 5);
		plain_text(f->path,
			   "SELECT quote(high_water) FROM litebus_channel "
			   "WHERE name = 'completion'",
			   after, sizeof after);
		assert_string_equal(before, after);
	}
}

/* Contract, litebus_exec(): "the batch's error ... with nothing of the
 * job committed or published".  A mark made hostile by another
 * connection while the bus is open, for each kind of bad value: the next
 * jobs fail with ESCHEMA and commit nothing, on every channel; once the
 * mark is an id again, jobs commit and continue above it. */
static void
a_mark_made_hostile_while_open_fails_the_next_jobs_with_eschema(void **state)
{
	struct bus_fixture *f = *state;
	struct emit_job j = {LITEBUS_LEASE_HISTORY, 1, 0, {0}, {0}, {{0}}};
	int64_t lease = 0, completion = emit_one(f, LITEBUS_COMPLETION);
	litebus_sub *sub;
	litebus_event ev;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_LEASE_HISTORY, &sub),
			 LITEBUS_OK);
	for (size_t i = 0; i < sizeof bad_marks / sizeof bad_marks[0]; i++) {
		char mark[32];

		set_high_water(f->path, bad_marks[i].value);
		for (int k = 0; k < 2; k++) {
			int rc = litebus_exec(f->bus, emit_job_fn, &j);

			if (rc != LITEBUS_ESCHEMA)
				fail_msg("a mark that is %s (%s), set while "
					 "open: exec returned %s",
					 bad_marks[i].what, bad_marks[i].value,
					 litebus_errname(rc));
			if (strstr(litebus_last_errmsg(), "high-water") == NULL)
				fail_msg("ESCHEMA should say what is wrong: "
					 "\"%s\"",
					 litebus_last_errmsg());
		}
		assert_int_equal(fx_count_rows(f->path, "lease_history"),
				 lease);
		assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);

		/* An id again, above the largest: continued from. */
		snprintf(mark, sizeof mark, "%lld", (long long)completion + 40);
		set_high_water(f->path, mark);
		assert_int_equal(emit_one(f, LITEBUS_COMPLETION),
				 completion + 41);
		completion += 41;
		assert_int_equal(emit_one(f, LITEBUS_LEASE_HISTORY), ++lease);
		assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(ev.event_id, lease);
	}
	litebus_unsubscribe(sub);
}

/* ------------------------------------------------------------------ */
/* Reader cursors                                                      */

/* Contract, litebus_reader_open(): a cursor "strictly after
 * after_event_id (> 0)"; litebus_reader_next(): TIMEOUT "if nothing
 * arrived".  A reader after INT64_MAX opens, and times out - before and
 * after events are committed (they are all below its cursor). */
static void
a_reader_after_int64_max_opens_and_times_out(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;
	litebus_row row;

	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     INT64_MAX, NULL, &r),
			 LITEBUS_OK);
	assert_true(litebus_reader_cursor(r) == INT64_MAX);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	commit_events(f->bus, LITEBUS_COMPLETION, 20, NULL); /* laps it */
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	assert_true(litebus_reader_cursor(r) == INT64_MAX);
	litebus_reader_close(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(the_last_ids_are_handed_out_in_order_then_emit_refuses_with_enospc),
	    FX_TEST_TINY(one_job_gets_the_last_ids_then_enospc_and_commits_what_it_got),
	    FX_TEST_TINY(int64_max_handed_out_to_a_failing_job_is_handed_out_again),
	    FX_TEST_TINY(readers_deliver_every_id_up_to_int64_max_exactly_once),
	    FX_TEST_TINY(subscribers_see_the_ids_up_to_int64_max),
	    FX_TEST_TINY(other_channels_hand_out_ids_while_one_is_exhausted),
	    FX_TEST_TINY(an_exhausted_channel_still_refuses_after_close_and_reopen),
	    FX_TEST_TINY(a_high_water_mark_at_int64_max_with_an_empty_table_refuses_the_next_emit),
	    FX_TEST_TINY(a_high_water_mark_one_below_int64_max_leaves_exactly_one_id),
	    FX_TEST_TINY(ids_moved_near_int64_max_by_another_connection_are_continued_from),
	    FX_TEST_TINY(a_high_water_mark_raised_to_int64_max_while_open_refuses_the_next_emit),
	    FX_TEST_TINY(a_mark_lowered_by_another_connection_never_makes_a_published_id_reused),
	    FX_TEST_TINY(a_high_water_mark_that_is_not_an_id_is_refused_at_open),
	    FX_TEST_TINY(a_mark_made_hostile_while_open_fails_the_next_jobs_with_eschema),
	    FX_TEST_TINY(a_reader_after_int64_max_opens_and_times_out),
	};

	return cmocka_run_group_tests_name("id_exhaustion", tests, NULL, NULL);
}
