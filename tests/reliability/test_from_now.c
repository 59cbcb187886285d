/* SPDX-License-Identifier: MIT */
/*
 * test_from_now.c - LITEBUS_FROM_NOW starts after what the database has
 * committed, not after what this process has published so far (reader.c,
 * D1); and readers stay exact when the ring's ids have gaps (D5).
 *
 * The fault: the cursor came from the channel's published id, which lags
 * a large batch while the writer publishes it record by record, and never
 * sees rows another connection committed.  A FROM_NOW reader opened in
 * that window delivered rows committed long before it was opened.
 */
#include "fixture.h"
#include "role.h"

#include "bus.h" /* the in-memory database's name, the channel's ids */

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { BIG_BATCH = 20000 };

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* A connection of the test's own to the bus's database: the file, or the
 * in-memory database by its internal name. */
static sqlite3 *
foreign_open(litebus *bus, int flags)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(bus->dbn.name, &db, flags | bus->dbn.extra_flags,
			    NULL) != SQLITE_OK)
		fail_msg("opening %s: %s", bus->dbn.name, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_busy_timeout(db, FX_WAIT_MS), SQLITE_OK);
	return db;
}

static int64_t
foreign_max_id(sqlite3 *db)
{
	sqlite3_stmt *st;
	int64_t max = -1;

	assert_int_equal(
	    sqlite3_prepare_v2(db,
			       "SELECT coalesce(max(event_id), 0) FROM "
			       "main.litebus_outbox_completion",
			       -1, &st, NULL),
	    SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		max = sqlite3_column_int64(st, 0);
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	assert_true(max >= 0);
	return max;
}

struct batch_thread {
	litebus *bus;
	int count;
	int rc;
};

static void *
batch_main(void *arg)
{
	struct batch_thread *b = arg;
	struct fx_emit e = {.channel = LITEBUS_COMPLETION, .count = b->count};

	b->rc = litebus_exec(b->bus, fx_emit_job, &e);
	return NULL;
}

/*
 * The race: one job emits BIG_BATCH events; a subscriber spinning
 * on the ring sees the first of them while the writer is still publishing
 * the rest, and at once opens a FROM_NOW reader, then reads
 * max(event_id) through a connection of its own.  Nothing up to that max
 * may be delivered: the next event committed is the first.  Several
 * rounds, as the writer publishes a batch in well under a millisecond.
 */
static void
big_batch_race_round(litebus *bus)
{
	struct batch_thread b = {.bus = bus, .count = BIG_BATCH};
	struct lb_channel *ch = bus->channels[LITEBUS_COMPLETION];
	sqlite3 *db = foreign_open(bus, SQLITE_OPEN_READONLY);
	uint64_t deadline = fx_now_ms() + 60000;
	int64_t first, max_after, published_at_open, next;
	litebus_sub *sub;
	litebus_reader *r;
	litebus_event ev;
	pthread_t t;
	int rc;

	assert_int_equal(litebus_subscribe(bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	first = lb_channel_published_id(ch) + 1;
	assert_int_equal(pthread_create(&t, NULL, batch_main, &b), 0);
	/* Spin rather than sleep: a sleeper is woken only after the whole
	 * batch is published.  LAGGED also says the batch is arriving. */
	while ((rc = litebus_recv(sub, &ev, 0)) == LITEBUS_TIMEOUT &&
	       fx_now_ms() < deadline)
		lb_cpu_relax();
	if (rc != LITEBUS_OK && rc != LITEBUS_LAGGED)
		fail_msg("waiting for the batch: %s", litebus_errname(rc));
	published_at_open = lb_channel_published_id(ch);
	r = fx_reader_open(bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	max_after = foreign_max_id(db);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(b.rc, 0);
	/* One transaction: committed whole before its first event was
	 * published. */
	assert_int_equal(max_after, first + BIG_BATCH - 1);
	print_message("      %lld of %lld published when the reader "
		      "opened\n",
		      (long long)published_at_open, (long long)max_after);
	/* litebus_reader_cursor(): "the event_id up to which every matching
	 * row has been returned" - everything committed counts as passed. */
	assert_int_equal(litebus_reader_cursor(r), max_after);
	commit_events(bus, LITEBUS_COMPLETION, 1, &next);
	assert_int_equal(next, max_after + 1);
	fx_expect_row(r, next);
	fx_expect_no_row(r);
	litebus_reader_close(r);
	litebus_unsubscribe(sub);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

enum { BIG_BATCH_ROUNDS = 6 };

static void
big_batch_race(litebus *bus)
{
	for (int i = 0; i < BIG_BATCH_ROUNDS; i++)
		big_batch_race_round(bus);
}

/* ------------------------------------------------------------------ */
/* While a large batch is being published                              */

/* litebus_reader_open(): "LITEBUS_FROM_NOW: after the newest event
 * committed on the channel, by any connection, before this call returns -
 * read from the table, not from what has been published so far". */
static void
from_now_opened_while_a_big_batch_is_published_skips_the_whole_batch(
    void **state)
{
	struct bus_fixture *f = *state; /* default rings: 4096 slots */

	big_batch_race(f->bus);
}

/* The same on an in-memory database. */
static void
in_memory_from_now_opened_while_a_big_batch_is_published_skips_the_batch(
    void **state)
{
	struct bus_fixture *f = *state;

	big_batch_race(f->bus);
}

/* ------------------------------------------------------------------ */
/* Rows this process never published                                   */

/* Commit rows 1..3 through a plain SQLite connection, as another process
 * would, while no litebus job runs. */
static void
foreign_insert_three(litebus *bus)
{
	sqlite3 *db = foreign_open(bus, SQLITE_OPEN_READWRITE);
	char *err = NULL;

	if (sqlite3_exec(db,
			 "INSERT INTO main.litebus_outbox_completion"
			 "(event_id, partition_key, event_type, "
			 "occurred_at_ms, committed_at_ms) VALUES "
			 "(1, 0, 'success', 1, 1), (2, 0, 'failed', 2, 2), "
			 "(3, 0, 'skipped', 3, 3)",
			 NULL, NULL, &err) != SQLITE_OK)
		fail_msg("foreign insert: %s", err);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* "by any connection": rows another connection committed before the
 * reader opened are not delivered by a FROM_NOW reader, and the next row
 * this bus commits is. */
static void
from_now_skips_rows_another_connection_committed_before_open(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;
	int64_t next;

	foreign_insert_three(f->bus);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	assert_int_equal(litebus_reader_cursor(r), 3);
	fx_expect_no_row(r);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, &next);
	assert_int_equal(next, 4);
	fx_expect_row(r, 4);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* D1: a reader reads the table's head when it opens, so a FROM_START
 * reader delivers rows another connection committed before it opened at
 * once, without waiting for this bus to publish on the channel. */
static void
from_start_delivers_rows_another_connection_committed_before_open(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;

	foreign_insert_three(f->bus);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	for (int64_t id = 1; id <= 3; id++)
		fx_expect_row(r, id);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* "... the table's newest event_id, or its deletion high-water mark if
 * higher": rows pruned before the reader opened still count as
 * committed before it. */

static void
from_now_starts_after_the_high_water_mark_of_pruned_rows(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;
	int64_t ids[5], next;

	commit_events(f->bus, LITEBUS_COMPLETION, 5, ids);
	assert_int_equal(
	    fx_exec_sql(f->bus, "DELETE FROM litebus_outbox_completion"), 0);
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	assert_int_equal(litebus_reader_cursor(r), ids[4]);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, &next);
	assert_int_equal(next, ids[4] + 1);
	fx_expect_row(r, next);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

/* channel.h, C5: "A reader asking 'what is committed now' takes
 * committed_id (or the table itself), never published_id".  White box:
 * a committed id above anything the table shows (as when the writer has
 * stored it right after COMMIT) is where FROM_NOW starts. */
static void
from_now_is_never_below_the_channels_committed_id(void **state)
{
	struct bus_fixture *f = *state;
	struct lb_channel *ch = f->bus->channels[LITEBUS_COMPLETION];
	litebus_reader *r;
	int64_t ids[3];

	commit_events(f->bus, LITEBUS_COMPLETION, 3, ids);
	/* No job runs: the writer does not touch committed_id now. */
	lb_role_set_writer(ch); /* plays the writer for one call (role.h) */
	lb_channel_set_committed(ch, ids[2] + 7);
	lb_role_set_writer(NULL);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	assert_int_equal(litebus_reader_cursor(r), ids[2] + 7);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* Gaps in the ring's ids (D5)                                         */

/* Every row of the channel, in order, as a separate connection reads it. */
static int
foreign_ids(litebus *bus, int64_t after, int64_t *ids, int cap)
{
	sqlite3 *db = foreign_open(bus, SQLITE_OPEN_READONLY);
	sqlite3_stmt *st;
	int n = 0;

	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT event_id FROM "
					    "main.litebus_outbox_completion "
					    "WHERE event_id > ?1 ORDER BY 1",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_bind_int64(st, 1, after), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && n < cap)
		ids[n++] = sqlite3_column_int64(st, 0);
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return n;
}

/* A job that rolls back to a savepoint of its own between emits, and
 * deletes one of its own rows: ids it handed out leave holes. */
static int
job_with_holes(litebus_tx *tx, void *arg)
{
	sqlite3 *db = litebus_tx_db(tx);
	litebus_record rec = {.event_type = "success"};
	int64_t id;

	(void)arg;
	if (litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL) != LITEBUS_OK ||
	    sqlite3_exec(db, "SAVEPOINT mine", NULL, NULL, NULL) != SQLITE_OK ||
	    litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL) != LITEBUS_OK ||
	    litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL) != LITEBUS_OK ||
	    sqlite3_exec(db, "ROLLBACK TO mine; RELEASE mine", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    litebus_emit(tx, LITEBUS_COMPLETION, &rec, &id) != LITEBUS_OK ||
	    litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL) != LITEBUS_OK)
		return -1000;
	{
		char sql[128];
		snprintf(sql, sizeof sql,
			 "DELETE FROM litebus_outbox_completion WHERE "
			 "event_id = %lld",
			 (long long)id);
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
			return -1001;
	}
	return litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL) == LITEBUS_OK
		   ? 0
		   : -1002;
}

/* litebus.h: "Event ids that are handed out and then undone leave gaps."
 * Readers opened before (FROM_NOW and FROM_START) deliver exactly the rows
 * the table holds, each once, in order. */
static void
holes_scenario(struct bus_fixture *f)
{
	int64_t want[64], start;
	litebus_reader *from_now, *from_start;
	int n;

	commit_events(f->bus, LITEBUS_COMPLETION, 2, NULL);
	from_now =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	from_start = fx_reader_open(f->bus, LITEBUS_COMPLETION,
				    LITEBUS_FROM_START, NULL);
	start = litebus_reader_cursor(from_now);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(litebus_exec(f->bus, job_with_holes, NULL), 0);
		commit_events(f->bus, LITEBUS_COMPLETION, 1, NULL);
	}
	n = foreign_ids(f->bus, start, want, 64);
	assert_int_equal(n, 5 * 4); /* 3 rows per job, and one commit */
	for (int i = 0; i < n; i++)
		fx_expect_row(from_now, want[i]);
	fx_expect_no_row(from_now);
	n = foreign_ids(f->bus, 0, want, 64);
	for (int i = 0; i < n; i++)
		fx_expect_row(from_start, want[i]);
	fx_expect_no_row(from_start);
	litebus_reader_close(from_now);
	litebus_reader_close(from_start);
}

static void
readers_deliver_exactly_the_committed_rows_around_holes_through_tiny_rings(
    void **state)
{
	holes_scenario(*state); /* 8 slots: lapped, and the table decides */
}

static void
readers_deliver_exactly_the_committed_rows_around_holes_through_large_rings(
    void **state)
{
	holes_scenario(*state); /* no lap: the ring's ids decide (D5) */
}

/* A row another connection commits after the reader opened, between two
 * of this bus's commits, is a hole in the ring's ids: the reader finds it
 * in the table once the bus publishes past it. */
static void
a_row_committed_by_another_connection_after_open_is_delivered_in_order(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	sqlite3 *db;
	int64_t a, c;

	commit_events(f->bus, LITEBUS_COMPLETION, 1, &a);
	db = foreign_open(f->bus, SQLITE_OPEN_READWRITE);
	{
		char sql[256];
		snprintf(sql, sizeof sql,
			 "INSERT INTO litebus_outbox_completion(event_id, "
			 "partition_key, event_type, occurred_at_ms, "
			 "committed_at_ms) VALUES(%lld, 0, 'failed', 1, 1)",
			 (long long)(a + 1));
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL),
				 SQLITE_OK);
	}
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, &c);
	assert_int_equal(c, a + 2);
	fx_expect_row(r, a);
	fx_expect_row(r, a + 1);
	fx_expect_row(r, c);
	fx_expect_no_row(r);
	litebus_reader_close(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_DEFAULT(from_now_opened_while_a_big_batch_is_published_skips_the_whole_batch),
	    FX_TEST_WITH(in_memory_from_now_opened_while_a_big_batch_is_published_skips_the_batch, bus_in_memory),
	    FX_TEST_DEFAULT(from_now_skips_rows_another_connection_committed_before_open),
	    FX_TEST_DEFAULT(from_start_delivers_rows_another_connection_committed_before_open),
	    FX_TEST_DEFAULT(from_now_starts_after_the_high_water_mark_of_pruned_rows),
	    FX_TEST_DEFAULT(from_now_is_never_below_the_channels_committed_id),
	    FX_TEST_TINY(readers_deliver_exactly_the_committed_rows_around_holes_through_tiny_rings),
	    FX_TEST_DEFAULT(readers_deliver_exactly_the_committed_rows_around_holes_through_large_rings),
	    FX_TEST_TINY(a_row_committed_by_another_connection_after_open_is_delivered_in_order),
	};

	return cmocka_run_group_tests_name("from_now", tests, NULL, NULL);
}
