/* SPDX-License-Identifier: MIT */
/*
 * test_checkpoint.c - lib/checkpoint.c: WAL checkpoints off the commit
 * path, in both modes, and the calls that must be no-ops.
 *
 * Covered elsewhere, not repeated here: the WAL bound under load, with
 * litebus's readers and with other connections' read transactions
 * shorter than busy_timeout_ms, a held or failed RESTART and its retry,
 * and lb_ckpt_rehook() detecting a replaced WAL hook
 * (tests/reliability/test_wal_bound.c); a job that replaces the WAL hook
 * failing with EMISUSE (tests/reliability/test_job_isolation.c); the WAL
 * file removed by the last close (tests/reliability/test_foreign_files.c).
 */
#include "checkpoint.h" /* internal: the NULL no-ops */
#include "fixture.h"
#include "role.h"

#include <sched.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

/* Small enough that a few 4 KB rows cross it. */
#define CKPT_PAGES 4

static uint64_t
checkpoints_of(litebus *bus)
{
	litebus_stats st;

	assert_int_equal(litebus_stats_get(bus, &st), LITEBUS_OK);
	return st.checkpoints;
}

static void
reopen_with_mode(struct bus_fixture *f, int mode)
{
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	fx_remove_dir(f);
	fx_make_dir(f);
	f->opts.checkpoint_mode = mode;
	f->opts.checkpoint_pages = CKPT_PAGES;
	fx_open(f);
}

/* Commit `jobs` jobs of one 4 KB event each (more than one page each). */
static void
commit_big_rows(litebus *bus, int jobs)
{
	static const unsigned char payload[4000];
	struct fx_emit e = {.channel = LITEBUS_COMPLETION,
			    .payload = payload,
			    .payload_len = sizeof payload};

	for (int i = 0; i < jobs; i++)
		fx_commit(bus, &e);
}

/* litebus_options.checkpoint_mode: "LITEBUS_CHECKPOINT_BACKGROUND
 * (default): a litebus thread with its own connection copies the WAL back
 * (PASSIVE checkpoints) once a commit leaves it with checkpoint_pages
 * pages"; litebus_stats.checkpoints counts them. */
static void
background_mode_copies_the_wal_into_the_database_on_its_own_thread(
    void **state)
{
	struct bus_fixture *f = *state;
	int64_t db_len;
	uint64_t deadline;

	reopen_with_mode(f, LITEBUS_CHECKPOINT_BACKGROUND);
	db_len = fx_file_len(f->path);
	assert_int_equal(checkpoints_of(f->bus), 0);

	commit_big_rows(f->bus, 4 * CKPT_PAGES);
	deadline = fx_now_ms() + FX_WAIT_MS;
	while (checkpoints_of(f->bus) == 0 && fx_now_ms() < deadline)
		sched_yield();
	if (checkpoints_of(f->bus) == 0)
		fail_msg("no background checkpoint within %d ms after %d "
			 "commits of a page or more",
			 FX_WAIT_MS, 4 * CKPT_PAGES);
	/* The pages reached the database file while the bus is open. */
	assert_true(fx_file_len(f->path) > db_len);
	assert_int_equal(fx_count_rows(f->path, "completion"),
			 4 * CKPT_PAGES);
}

/* litebus_options.checkpoint_mode: "LITEBUS_CHECKPOINT_INLINE: SQLite's
 * auto-checkpoint, inside the commit that crosses checkpoint_pages" - so
 * the database file has grown by the time exec returns, and no background
 * checkpoint is counted. */
static void
inline_mode_copies_the_wal_inside_the_commit_that_crosses_the_threshold(
    void **state)
{
	struct bus_fixture *f = *state;
	int64_t db_len;

	reopen_with_mode(f, LITEBUS_CHECKPOINT_INLINE);
	db_len = fx_file_len(f->path);

	commit_big_rows(f->bus, 2 * CKPT_PAGES);
	assert_true(fx_file_len(f->path) > db_len);
	assert_int_equal(checkpoints_of(f->bus), 0);
	assert_int_equal(fx_count_rows(f->path, "completion"),
			 2 * CKPT_PAGES);
}

/* The WAL restarts: with either mode, the WAL file stays at a small
 * multiple of checkpoint_pages however many rows are committed (a WAL
 * that never restarted would hold all 64 rows, 64 pages and more). */
static void
the_wal_restarts_instead_of_growing_with_every_commit(void **state)
{
	static const int modes[] = {LITEBUS_CHECKPOINT_BACKGROUND,
				    LITEBUS_CHECKPOINT_INLINE};
	struct bus_fixture *f = *state;

	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		char wal[320];
		int64_t page, bound;

		reopen_with_mode(f, modes[m]);
		snprintf(wal, sizeof wal, "%s-wal", f->path);
		page = fx_sql_int_at(f->path, "PRAGMA page_size");
		/* LITEBUS_WAL_BOUND_FACTOR x checkpoint_pages frames plus one
		 * batch's transaction (a 4 KB row: two pages and the
		 * index), and the WAL header. */
		bound = (LITEBUS_WAL_BOUND_FACTOR * CKPT_PAGES + 4) *
			    (page + 24) +
			32;
		for (int i = 0; i < 16; i++) {
			commit_big_rows(f->bus, 4);
			if (fx_file_len(wal) > bound)
				fail_msg("mode %d: the WAL is %lld bytes after "
					 "%d commits, bound %lld",
					 modes[m], (long long)fx_file_len(wal),
					 4 * (i + 1), (long long)bound);
		}
	}
}

/* checkpoint.h: "NULL is a no-op" (lb_ckpt_stop, lb_ckpt_finish), "Always
 * false ... for NULL" (lb_ckpt_finish_due), and lb_ckpt_rehook with
 * ck == NULL (an in-memory database) "removes any hook and returns
 * true". */
static void
null_checkpointer_calls_are_no_ops_and_rehook_removes_any_hook(
    void **state)
{
	struct bus_fixture *f = *state;
	sqlite3 *db;
	int calls = 0;

	/* This thread plays the writer, which owns the connection (role.h). */
	lb_role_set_writer(f);
	lb_ckpt_stop(NULL, NULL);
	assert_false(lb_ckpt_finish_due(NULL));
	assert_false(lb_ckpt_finish(NULL, NULL, false));
	assert_false(lb_ckpt_finish(NULL, NULL, true));

	db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	fx_sql_run(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x)");
	sqlite3_wal_hook(db, fx_counting_wal_hook, &calls);
	fx_sql_run(db, "INSERT INTO t VALUES(1)");
	assert_int_equal(calls, 1);
	assert_true(lb_ckpt_rehook(NULL, db));
	fx_sql_run(db, "INSERT INTO t VALUES(2)");
	assert_int_equal(calls, 1);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	lb_role_set_writer(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_DEFAULT(background_mode_copies_the_wal_into_the_database_on_its_own_thread),
	    FX_TEST_DEFAULT(inline_mode_copies_the_wal_inside_the_commit_that_crosses_the_threshold),
	    FX_TEST_DEFAULT(the_wal_restarts_instead_of_growing_with_every_commit),
	    FX_TEST_TMPDIR(null_checkpointer_calls_are_no_ops_and_rehook_removes_any_hook),
	};

	return cmocka_run_group_tests_name("checkpoint", tests, NULL, NULL);
}
