/* SPDX-License-Identifier: MIT */
/*
 * test_wal_bound.c - the WAL bound, measured on the -wal file under
 * unbroken load (checkpoint.c).
 *
 * Contract, litebus_options.checkpoint_mode: "The WAL bound, in both modes
 * and whatever the load: the -wal file stays below LITEBUS_WAL_BOUND_FACTOR
 * x checkpoint_pages pages plus the pages of one batch's transaction."
 *
 * Every test runs a load that never pauses (producers commit 4 KiB events
 * back to back) on a bus with a small checkpoint_pages, so that the WAL
 * reaches the bound many times within a second or two.  A monitor thread
 * stat()s the -wal file about every millisecond; the largest size it saw,
 * and a last sample taken after the load, must not exceed
 *
 *   (FACTOR x checkpoint_pages + pages of the largest batch)
 *       x (page_size + 24) + 32 bytes
 *
 * (a WAL frame is a 24-byte header and one page; the file starts with a
 * 32-byte header).  The pages of a batch are bounded from what the batch
 * held (wal_batch_pages).  Each test also checks that its load wrote
 * several bounds' worth of events, so that it cannot pass by writing too
 * little.  (The load, the monitor and the checks: tests/support/walload.h.)
 *
 * The variants are the ways into the fault: no readers; live readers;
 * a reader that lags on purpose and reads from the table; external
 * connections scanning the table; submit with large batches; inline
 * checkpoints; full durability; and an external read transaction held
 * longer than busy_timeout_ms, which may hold the WAL beyond the bound
 * only while it lasts.
 */
#include "checkpoint.h"	  /* internal: the tests at the end */
#include "faultvfs.h"
#include "fixture.h"
#include "role.h"
#include "walload.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* Small, so that the bound (8 x 16 pages) is crossed every few ms. */
#define CKPT_PAGES 16u
/* The load's default payload (walload.h). */
#define PAYLOAD_LEN 4096u

/* A fresh directory; the test sets its options, then opens. */
static int
wal_setup(void **state)
{
	struct bus_fixture *f;

	tmpdir_setup(state);
	f = *state;
	f->opts.ring_capacity = 8;
	f->opts.checkpoint_pages = CKPT_PAGES;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The variants                                                        */

/* Contract: "whatever the load" - one producer that never pauses. */
static void
wal_stays_bounded_under_unbroken_exec_load(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	fx_open(f);
	wal_load_init(&l, f);
	wal_load_run(&l, "exec, no readers");
}

/* Contract: "whatever the load and the number of readers" (issue 7) -
 * "litebus's own readers keep their read transactions short and never
 * hold it off for long". */
static void
wal_stays_bounded_with_four_live_readers(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	fx_open(f);
	wal_load_init(&l, f);
	l.readers = 4;
	wal_load_run(&l, "exec, 4 live readers");
}

/* A reader lapped again and again (8-slot rings) reads what it missed
 * from the table: its catch-up queries are read transactions too, and
 * must not hold the WAL either. */
static void
wal_stays_bounded_with_a_reader_catching_up_from_the_table(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	fx_open(f);
	wal_load_init(&l, f);
	l.readers = 1;
	l.lagging_reader = true;
	wal_load_run(&l, "exec, 1 live + 1 lagging reader");
}

/* Contract: "Only a read transaction that another connection (not
 * litebus's) keeps open longer than busy_timeout_ms can hold the WAL
 * beyond it" - so scans shorter than that cannot. */
static void
wal_stays_bounded_with_external_scans_shorter_than_busy_timeout(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	fx_open(f);
	wal_load_init(&l, f);
	l.scanners = 2;
	wal_load_run(&l, "exec, 2 external scanners");
}

/* Contract: "plus the pages of one batch's transaction" - submit fills
 * batches of max_batch jobs. */
static void
wal_stays_bounded_with_submit_and_large_batches(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	f->opts.max_batch = 256;
	fx_open(f);
	wal_load_init(&l, f);
	l.submit = true;
	l.producers = 2;
	l.readers = 2;
	wal_load_run(&l, "submit, max_batch 256, 2 readers");
}

/* Contract: "The WAL bound, in both modes".  SQLite's inline PASSIVE
 * checkpoint cannot finish while readers hold the WAL, so the readers
 * here are the kinds that hold it most: one lapped, one external. */
static void
wal_stays_bounded_with_inline_checkpoints(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	f->opts.checkpoint_mode = LITEBUS_CHECKPOINT_INLINE;
	fx_open(f);
	wal_load_init(&l, f);
	l.readers = 1;
	l.lagging_reader = true;
	l.scanners = 1;
	wal_load_run(&l, "inline checkpoints, 1 live + 1 lagging reader, "
			 "1 external scanner");
}

/* Every commit and every checkpoint fsyncs under FULL durability: the
 * bound still holds. */
static void
wal_stays_bounded_with_full_durability(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	f->opts.durability = LITEBUS_DURABILITY_FULL;
	fx_open(f);
	wal_load_init(&l, f);
	l.readers = 2;
	wal_load_run(&l, "durability FULL, 2 readers");
}

/* Wait (with a deadline) until pred(l, arg) holds while the load runs.
 * On failure, records it and stops the load: the test then finishes the
 * load (joining every thread) and wal_load_finish() reports it. */
static bool
wal_wait_for(struct wal_load *l, bool (*pred)(struct wal_load *, uint64_t),
	     uint64_t arg, const char *what)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	while (!pred(l, arg)) {
		struct timespec ts = {0, 1000000L};
		if (wal_load_stopped(l) || fx_now_ms() > deadline) {
			wal_load_fail(l,
				  "%s: not within %d ms (%llu events "
				  "committed, -wal %lld bytes, bound %llu)",
				  what, FX_WAIT_MS,
				  (unsigned long long)atomic_load_explicit(
				      &l->committed, memory_order_relaxed),
				  (long long)wal_load_len(l),
				  (unsigned long long)l->bound);
			return false;
		}
		nanosleep(&ts, NULL); /* polling period of the wait */
	}
	return true;
}

static bool
wal_beyond(struct wal_load *l, uint64_t bytes)
{
	return (uint64_t)wal_load_len(l) > bytes;
}

static bool
wal_within(struct wal_load *l, uint64_t bytes)
{
	return (uint64_t)wal_load_len(l) <= bytes;
}

static bool
committed_reached(struct wal_load *l, uint64_t n)
{
	return atomic_load_explicit(&l->committed, memory_order_relaxed) >= n;
}

/* Contract: "Only a read transaction that another connection (not
 * litebus's) keeps open longer than busy_timeout_ms can hold the WAL
 * beyond it; the writer then goes on and retries after the next batch."
 * So jobs keep committing while it is held, and once it ends the bound
 * holds again ("the file is truncated back to the bound when the WAL
 * restarts"). */
static void
external_read_transaction_holds_the_wal_only_while_it_lasts(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;
	struct wal_threads t;
	sqlite3 *ext;
	sqlite3_stmt *st;
	uint64_t c0;

	/* Long enough that litebus's own readers, slowed down by a
	 * sanitizer, never hold a RESTART off that long (CI saw 20 ms fail
	 * under TSan); short enough that the held phase stays quick, since
	 * the writer waits once per checkpoint_pages of WAL while held. */
	f->opts.busy_timeout_ms = 250;
	fx_open(f);
	wal_load_init(&l, f);
	l.payload_len = 4 * PAYLOAD_LEN; /* cross the bound in fewer batches */
	memset(&t, 0, sizeof t);
	wal_load_bound(&l);

	/* An application's read transaction, held open. */
	assert_int_equal(
	    sqlite3_open_v2(f->path, &ext, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_exec(ext, "BEGIN", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(ext,
					    "SELECT count(*) FROM "
					    "litebus_outbox_completion",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_reset(st), SQLITE_OK);

	wal_load_start(&l, &t);
	/* The writer is not stuck behind the reader: the WAL passes the
	 * bound, and jobs go on committing past that. */
	if (wal_wait_for(&l, wal_beyond, l.bound,
			 "jobs commit past the bound while a reader holds "
			 "the WAL")) {
		c0 = atomic_load_explicit(&l.committed, memory_order_relaxed);
		wal_wait_for(&l, committed_reached, c0 + 20,
			     "jobs keep committing while a reader holds the "
			     "WAL");
	}
	/* The reader ends: the WAL restarts and the file is truncated. */
	assert_int_equal(sqlite3_exec(ext, "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	if (!wal_load_stopped(&l) &&
	    wal_wait_for(&l, wal_within, l.bound,
			 "the -wal file comes back within the bound")) {
		/* From here on the bound holds again, for several bounds'
		 * worth of load.  Pairs with the acquire load in
		 * wal_sample(). */
		atomic_store_explicit(&l.phase, 1, memory_order_release);
		c0 = atomic_load_explicit(&l.committed, memory_order_relaxed);
		wal_wait_for(&l, committed_reached,
			     c0 + 8u * l.bound / l.payload_len,
			     "the load goes on after the reader ended");
	}
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	assert_int_equal(sqlite3_close(ext), SQLITE_OK);
	wal_load_finish(&l, &t);
	print_message("while held: -wal max %lld bytes\n",
		      (long long)atomic_load_explicit(&l.wal_max[0],
						      memory_order_relaxed));
	wal_load_check(&l, 1, "after the external reader ended");
	pthread_mutex_destroy(&l.lock);
}

/* ------------------------------------------------------------------ */
/* checkpoint.c on a connection of the test's own                      */

/* A WAL database with one table, the test's thread in the writer's role,
 * checkpoint.c in charge of its checkpoints. */
struct plain {
	sqlite3 *db;
	struct lb_dbname dbn;
	struct lb_stats stats;
	struct lb_ckpt *ck;
	litebus_options o;
};

static void
plain_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
}

static void
plain_open(struct bus_fixture *f, struct plain *p, int mode)
{
	memset(p, 0, sizeof *p);
	assert_int_equal(
	    sqlite3_open_v2(f->path, &p->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
	    SQLITE_OK);
	/* As litebus's writer connection (lb_outbox_harden). */
	assert_int_equal(sqlite3_extended_result_codes(p->db, 1), SQLITE_OK);
	plain_exec(p->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			  "CREATE TABLE t(x BLOB)");
	p->dbn.name = f->path;
	litebus_options_init(&p->o);
	p->o.checkpoint_mode = mode;
	p->o.checkpoint_pages = 4;
	p->o.busy_timeout_ms = 10;
	assert_int_equal(
	    lb_ckpt_start(&p->dbn, p->db, &p->o, &p->stats, &p->ck),
	    LITEBUS_OK);
	/* This thread commits on p->db and calls lb_ckpt_finish/rehook:
	 * it plays the writer (role.h) until plain_close. */
	lb_role_set_writer(p);
}

static void
plain_close(struct plain *p)
{
	lb_ckpt_stop(p->ck, p->db);
	lb_role_set_writer(NULL);
	assert_int_equal(sqlite3_close(p->db), SQLITE_OK);
}

static uint64_t
stat_of(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Contract: "the writer then goes on and retries once the WAL has grown by
 * another checkpoint_pages pages",
 * "the file is truncated back to the bound when the WAL restarts"; and
 * every checkpoint result is checked: a failure other than BUSY is
 * recorded, not lost. */
static void
a_held_or_failed_restart_is_retried_and_the_file_truncated_after(void **state)
{
	struct bus_fixture *f = *state;
	struct plain p;
	sqlite3 *reader;
	char wal[320];
	uint32_t page_size;
	int64_t limit, held_len;
	int commits = 0;

	faultvfs_install();
	faultvfs_reset();
	plain_open(f, &p, LITEBUS_CHECKPOINT_INLINE);
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	page_size = wal_page_size(f->path);
	limit = (int64_t)LITEBUS_WAL_BOUND_FACTOR * p.o.checkpoint_pages *
		    ((int64_t)page_size + 24) +
		32;

	/* Another connection's read transaction holds the WAL. */
	assert_int_equal(
	    sqlite3_open_v2(f->path, &reader, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	plain_exec(reader, "BEGIN; SELECT count(*) FROM t");
	/* Commit until the bound asks for a RESTART: it waits
	 * busy_timeout_ms for the reader and gives up. */
	do {
		plain_exec(p.db, "INSERT INTO t VALUES(zeroblob(4000))");
		assert_true(++commits < 1000);
	} while (!lb_ckpt_finish(p.ck, p.db, false));
	assert_int_equal(stat_of(&p.stats.ckpt_held), 1);
	assert_int_equal(stat_of(&p.stats.ckpt_forced), 0);
	/* The writer goes on, and tries again once the WAL has grown by
	 * another checkpoint_pages pages - not after every batch, which
	 * would hold every batch for busy_timeout_ms. */
	for (int i = 0; i < 8; i++) {
		int n = 0;

		do {
			plain_exec(p.db,
				   "INSERT INTO t VALUES(zeroblob(4000))");
			assert_true(++n < 1000);
		} while (!lb_ckpt_finish(p.ck, p.db, false));
		assert_true(n > 1);
	}
	assert_int_equal(stat_of(&p.stats.ckpt_held), 9);
	held_len = fx_file_len(wal);
	assert_true(held_len > limit);

	/* The WAL grows by checkpoint_pages more while the reader holds
	 * it; the reader ends, and the next try fails for another reason
	 * (an error taking the checkpoint lock): it is recorded... */
	for (uint32_t i = 0; i < p.o.checkpoint_pages; i++)
		plain_exec(p.db, "INSERT INTO t VALUES(zeroblob(4000))");
	held_len = fx_file_len(wal);
	plain_exec(reader, "COMMIT");
	faultvfs_arm(FAULT_SHMLOCK, 1, SQLITE_IOERR_SHMLOCK);
	assert_true(lb_ckpt_finish(p.ck, p.db, false));
	faultvfs_disarm();
	assert_int_equal(faultvfs_fired(), 1);
	assert_int_equal(stat_of(&p.stats.ckpt_errors), 1);
	assert_int_equal(atomic_load_explicit(&p.stats.ckpt_last_error,
					      memory_order_relaxed),
			 SQLITE_IOERR_SHMLOCK);
	assert_int_equal(stat_of(&p.stats.ckpt_forced), 0);
	/* ... and, not being a reader's hold, retried after the next
	 * batch, which succeeds. */
	assert_true(lb_ckpt_finish(p.ck, p.db, false));
	assert_int_equal(stat_of(&p.stats.ckpt_forced), 1);
	assert_false(lb_ckpt_finish(p.ck, p.db, false));
	/* The next commit restarts the WAL and truncates the file. */
	assert_int_equal(fx_file_len(wal), held_len);
	plain_exec(p.db, "INSERT INTO t VALUES(zeroblob(4000))");
	assert_true(fx_file_len(wal) <= limit);
	assert_false(lb_ckpt_finish(p.ck, p.db, false));

	assert_int_equal(sqlite3_close(reader), SQLITE_OK);
	plain_close(&p);
}

/* Contract ("What a job may do"): "Put back when the job returns: ...
 * the commit, rollback, update and WAL hooks ... A job that replaced
 * litebus's commit or WAL hook fails" - lb_ckpt_rehook() tells the
 * writer, and puts litebus's WAL hook back, in both modes. */
static void
rehook_detects_a_replaced_wal_hook_and_puts_litebus_s_back(void **state)
{
	static const int modes[] = {LITEBUS_CHECKPOINT_BACKGROUND,
				    LITEBUS_CHECKPOINT_INLINE};
	struct bus_fixture *f = *state;

	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		struct plain p;
		int foreign_calls = 0;

		fx_remove_dir(f);
		fx_make_dir(f);
		plain_open(f, &p, modes[m]);
		assert_true(lb_ckpt_rehook(p.ck, p.db));

		sqlite3_wal_hook(p.db, fx_counting_wal_hook, &foreign_calls);
		plain_exec(p.db, "INSERT INTO t VALUES(1)");
		assert_int_equal(foreign_calls, 1);
		assert_false(lb_ckpt_rehook(p.ck, p.db));
		assert_true(lb_ckpt_rehook(p.ck, p.db));
		plain_exec(p.db, "INSERT INTO t VALUES(2)");
		assert_int_equal(foreign_calls, 1);

		/* sqlite3_wal_autocheckpoint() replaces the hook too. */
		assert_int_equal(sqlite3_wal_autocheckpoint(p.db, 100),
				 SQLITE_OK);
		assert_false(lb_ckpt_rehook(p.ck, p.db));
		assert_true(lb_ckpt_rehook(p.ck, p.db));
		plain_close(&p);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_WITH(wal_stays_bounded_under_unbroken_exec_load, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_four_live_readers, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_a_reader_catching_up_from_the_table, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_external_scans_shorter_than_busy_timeout, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_submit_and_large_batches, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_inline_checkpoints, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_full_durability, wal_setup),
	    FX_TEST_WITH(external_read_transaction_holds_the_wal_only_while_it_lasts, wal_setup),
	    FX_TEST_TMPDIR(a_held_or_failed_restart_is_retried_and_the_file_truncated_after),
	    FX_TEST_TMPDIR(rehook_detects_a_replaced_wal_hook_and_puts_litebus_s_back),
	};

	return cmocka_run_group_tests_name("wal_bound", tests, NULL, NULL);
}
