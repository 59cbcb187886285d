/* SPDX-License-Identifier: MIT */
/*
 * test_memory_ddl.c - an in-memory bus under jobs that run DDL, and the
 * readers' waits for other connections' locks (reader.c, D6).
 *
 * The fault: an in-memory database was one shared-cache database, whose
 * table locks fail at once with SQLITE_LOCKED (extended code 262) instead
 * of waiting.  With one reader looping in litebus_reader_next() and jobs
 * running "CREATE TABLE t(x); DROP TABLE t", 1-6% of the jobs failed with
 * "database table is locked: sqlite_master", and the reader returned
 * EBUSY at once thousands of times, even with timeout -1.  An in-memory
 * database is now a memdb store (bus.c): its locks are file-like, a
 * conflict is SQLITE_BUSY, and both sides wait it out.
 *
 * Also here: what the reader does with each value it reads from the table
 * (a NULL from SQLite where there is data is an allocation failure, never
 * a NULL delivered as the data), and readers retrying a lock that a
 * fault-injecting VFS refuses once.
 */
#include "faultvfs.h"
#include "fixture.h"

#include "bus.h" /* the in-memory database's name */

#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* SQLite's allocations on one thread, failing at the Nth               */

static sqlite3_mem_methods sq_real;
static _Thread_local bool sq_armed;
static _Thread_local uint64_t sq_count, sq_fail_at;

static bool
sq_fails(void)
{
	return sq_armed && ++sq_count == sq_fail_at;
}

static void *
sq_malloc(int n)
{
	return sq_fails() ? NULL : sq_real.xMalloc(n);
}

static void *
sq_realloc(void *p, int n)
{
	return sq_fails() ? NULL : sq_real.xRealloc(p, n);
}

/* Before anything else touches SQLite: our allocator, no lookaside (so
 * that every allocation of a connection reaches it), then the fault VFS
 * as the default for file databases. */
static void
sq_install(void)
{
	sqlite3_mem_methods m;

	if (sqlite3_shutdown() != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_real) != SQLITE_OK)
		abort();
	m = sq_real;
	m.xMalloc = sq_malloc;
	m.xRealloc = sq_realloc;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0) != SQLITE_OK ||
	    sqlite3_initialize() != SQLITE_OK)
		abort();
	faultvfs_install();
}

/* ------------------------------------------------------------------ */
/* Fixtures and helpers                                                */

/* An in-memory bus whose busy timeout is short: what a reader does once
 * it runs out is seen quickly. */
static int
memory_bus_with_short_busy_timeout(void **state)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	litebus_options_init(&f->opts);
	f->opts.busy_timeout_ms = 50;
	assert_int_equal(litebus_open(&f->opts, &f->bus), LITEBUS_OK);
	*state = f;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The workload                                                */

enum { PRODUCERS = 2, JOBS_EACH = 500 };

/* DDL of the job's own, then one event (so that readers query). */
static const char *const ddl[] = {
    "CREATE TABLE t(x); DROP TABLE t",
    "CREATE TABLE IF NOT EXISTS app(x); CREATE INDEX app_x ON app(x); "
    "DROP INDEX app_x",
    "CREATE VIEW v AS SELECT 1; DROP VIEW v",
    "CREATE TABLE IF NOT EXISTS app(x); CREATE TRIGGER app_t AFTER INSERT "
    "ON app BEGIN SELECT 1; END; DROP TRIGGER app_t",
    "CREATE TABLE u(x); ALTER TABLE u ADD COLUMN y; ALTER TABLE u RENAME "
    "TO w; DROP TABLE w",
};

struct ddl_job {
	int which; /* index into ddl[]; < 0: only "CREATE TABLE t..." */
	int sqlite_rc;
	char errmsg[160];
};

static int
job_ddl_and_emit(litebus_tx *tx, void *arg)
{
	struct ddl_job *j = arg;
	sqlite3 *db = litebus_tx_db(tx);
	int rc = sqlite3_exec(db, ddl[j->which < 0 ? 0 : j->which], NULL, NULL,
			      NULL);

	if (rc != SQLITE_OK) {
		j->sqlite_rc = sqlite3_extended_errcode(db);
		snprintf(j->errmsg, sizeof j->errmsg, "%s", sqlite3_errmsg(db));
		return JOB_FAILED;
	}
	return fx_emit_one_job(tx, NULL);
}

struct producer {
	litebus *bus;
	bool all_ddl;
	int failed, first_rc, first_sqlite_rc;
	char first_msg[160];
};

static void *
producer_main(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < JOBS_EACH; i++) {
		struct ddl_job j = {
		    .which = p->all_ddl ? i % (int)(sizeof ddl / sizeof ddl[0])
					: -1};
		int rc = litebus_exec(p->bus, job_ddl_and_emit, &j);

		if (rc != 0 && p->failed++ == 0) {
			p->first_rc = rc;
			p->first_sqlite_rc = j.sqlite_rc;
			snprintf(p->first_msg, sizeof p->first_msg, "%s",
				 j.errmsg);
		}
	}
	return NULL;
}

/* A reader looping in litebus_reader_next() until CLOSED. */
struct looper {
	litebus *bus;
	int timeout_ms;
	int delivered, ebusy, other_rc;
	int64_t last;
	bool out_of_order;
	char ebusy_msg[256];
};

static void *
looper_main(void *arg)
{
	struct looper *l = arg;
	litebus_reader *r;
	litebus_row row;
	int rc;

	rc = litebus_reader_open(l->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
				 NULL, &r);
	if (rc != LITEBUS_OK) {
		l->other_rc = rc;
		return NULL;
	}
	for (;;) {
		rc = litebus_reader_next(r, &row, l->timeout_ms);
		if (rc == LITEBUS_OK) {
			if (row.event_id <= l->last)
				l->out_of_order = true;
			l->last = row.event_id;
			l->delivered++;
		} else if (rc == LITEBUS_EBUSY) {
			if (l->ebusy++ == 0)
				snprintf(l->ebusy_msg, sizeof l->ebusy_msg,
					 "%s", litebus_last_errmsg());
		} else if (rc == LITEBUS_CLOSED) {
			break;
		} else if (rc != LITEBUS_TIMEOUT) {
			l->other_rc = rc;
			break;
		}
	}
	litebus_reader_close(r);
	return NULL;
}

/* A thread that opens and closes FROM_NOW readers while the jobs run:
 * opening reads the schema and the table's head, which DDL locks too. */
struct opener {
	litebus *bus;
	_Atomic bool stop;
	int opened, failed, first_rc;
	char first_msg[256];
};

static void *
opener_main(void *arg)
{
	struct opener *o = arg;

	while (!atomic_load(&o->stop)) {
		litebus_reader *r;
		int rc = litebus_reader_open(o->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_NOW, NULL, &r);

		if (rc == LITEBUS_OK) {
			o->opened++;
			litebus_reader_close(r);
		} else if (o->failed++ == 0) {
			o->first_rc = rc;
			snprintf(o->first_msg, sizeof o->first_msg, "%s",
				 litebus_last_errmsg());
		}
	}
	return NULL;
}

/*
 * PRODUCERS threads run JOBS_EACH jobs each; readers loop with timeouts
 * -1, 0 and 5 ms; another thread opens readers.  Then the bus closes and
 * the readers drain.  Zero failed jobs, zero EBUSY, every event delivered
 * in order to every reader.
 */
static void
run_ddl_workload(struct bus_fixture *f, bool all_ddl)
{
	const int timeouts[] = {-1, 0, 5};
	enum { LOOPERS = sizeof timeouts / sizeof timeouts[0] };
	struct producer p[PRODUCERS];
	struct looper l[LOOPERS];
	struct opener o = {.bus = f->bus};
	pthread_t pt[PRODUCERS], lt[LOOPERS], ot;

	atomic_init(&o.stop, false);
	for (int i = 0; i < LOOPERS; i++) {
		memset(&l[i], 0, sizeof l[i]);
		l[i].bus = f->bus;
		l[i].timeout_ms = timeouts[i];
		assert_int_equal(
		    pthread_create(&lt[i], NULL, looper_main, &l[i]), 0);
	}
	assert_int_equal(pthread_create(&ot, NULL, opener_main, &o), 0);
	for (int i = 0; i < PRODUCERS; i++) {
		memset(&p[i], 0, sizeof p[i]);
		p[i].bus = f->bus;
		p[i].all_ddl = all_ddl;
		assert_int_equal(
		    pthread_create(&pt[i], NULL, producer_main, &p[i]), 0);
	}
	for (int i = 0; i < PRODUCERS; i++)
		assert_int_equal(pthread_join(pt[i], NULL), 0);
	atomic_store(&o.stop, true);
	assert_int_equal(pthread_join(ot, NULL), 0);
	/* litebus_close(): "every subscriber and reader then drains what
	 * was committed and reports LITEBUS_CLOSED". */
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	for (int i = 0; i < LOOPERS; i++)
		assert_int_equal(pthread_join(lt[i], NULL), 0);

	for (int i = 0; i < PRODUCERS; i++)
		if (p[i].failed != 0)
			fail_msg("producer %d: %d of %d jobs failed; the first "
				 "with %s, sqlite %d: %s",
				 i, p[i].failed, JOBS_EACH,
				 litebus_errname(p[i].first_rc),
				 p[i].first_sqlite_rc, p[i].first_msg);
	for (int i = 0; i < LOOPERS; i++) {
		if (l[i].other_rc != 0)
			fail_msg("reader with timeout %d: %s", timeouts[i],
				 litebus_errname(l[i].other_rc));
		if (l[i].ebusy != 0)
			fail_msg("reader with timeout %d: EBUSY %d times; the "
				 "first: %s",
				 timeouts[i], l[i].ebusy, l[i].ebusy_msg);
		if (l[i].out_of_order)
			fail_msg("reader with timeout %d: rows out of order",
				 timeouts[i]);
		if (l[i].delivered != PRODUCERS * JOBS_EACH)
			fail_msg("reader with timeout %d: %d rows of %d",
				 timeouts[i], l[i].delivered,
				 PRODUCERS * JOBS_EACH);
	}
	if (o.failed != 0)
		fail_msg("litebus_reader_open failed %d times (%d opened); the "
			 "first: %s: %s",
			 o.failed, o.opened, litebus_errname(o.first_rc),
			 o.first_msg);
}

/* The input: path NULL, readers looping in litebus_reader_next(),
 * jobs running "CREATE TABLE t(x); DROP TABLE t".
 * litebus_reader_next(): "EBUSY (another connection kept the table locked
 * for busy_timeout_ms, or for timeout_ms if that is longer; with -1 the
 * reader keeps retrying ...)" - jobs this short never come near it. */
static void
in_memory_jobs_creating_and_dropping_a_table_never_fail_beside_readers(
    void **state)
{
	run_ddl_workload(*state, false);
}

/* Every kind of DDL on the job's own objects: indexes, views, triggers,
 * ALTER TABLE (litebus.h: "write, create, alter and drop the
 * application's own tables, indexes, views and triggers"). */
static void
in_memory_jobs_running_every_kind_of_ddl_never_fail_beside_readers(void **state)
{
	run_ddl_workload(*state, true);
}

/* The same on a file database (WAL: readers never block the writer). */
static void
file_jobs_running_ddl_never_fail_beside_readers(void **state)
{
	run_ddl_workload(*state, true);
}

/* ------------------------------------------------------------------ */
/* A reader waiting for another connection's lock (in memory)          */

/* A connection of the test's own to the in-memory database, holding its
 * exclusive lock (BEGIN EXCLUSIVE) until released: readers are refused
 * meanwhile, as by any lock holder.  release_at_ns != 0 lets a thread of
 * its own commit at that time, while the test's thread is blocked in the
 * call under test. */
struct holder {
	sqlite3 *db;
	_Atomic uint64_t release_at_ns;
	pthread_t thread;
	bool has_thread;
	int commit_rc;
};

static void
holder_lock(struct bus_fixture *f, struct holder *h)
{
	memset(h, 0, sizeof *h);
	atomic_init(&h->release_at_ns, 0);
	if (sqlite3_open_v2(f->bus->dbn.name, &h->db,
			    SQLITE_OPEN_READWRITE | f->bus->dbn.extra_flags,
			    NULL) != SQLITE_OK)
		fail_msg("opening %s: %s", f->bus->dbn.name,
			 sqlite3_errmsg(h->db));
	/* Waits for readers in the middle of a read, if any. */
	assert_int_equal(sqlite3_busy_timeout(h->db, FX_WAIT_MS), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(h->db, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
	    SQLITE_OK);
}

static void *
holder_main(void *arg)
{
	struct holder *h = arg;
	uint64_t deadline = fx_mono_ns() + 60000000000u;

	while (fx_mono_ns() < atomic_load(&h->release_at_ns) &&
	       fx_mono_ns() < deadline)
		sched_yield();
	h->commit_rc = sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
	return NULL;
}

/* Commit from a thread of its own once `ms` have passed from now. */
static void
holder_release_in(struct holder *h, uint64_t ms)
{
	atomic_store(&h->release_at_ns, fx_mono_ns() + ms * 1000000u);
	assert_int_equal(pthread_create(&h->thread, NULL, holder_main, h), 0);
	h->has_thread = true;
}

static void
holder_unlock(struct holder *h)
{
	if (h->has_thread) {
		assert_int_equal(pthread_join(h->thread, NULL), 0);
		assert_int_equal(h->commit_rc, SQLITE_OK);
	} else {
		assert_int_equal(
		    sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	}
	assert_int_equal(sqlite3_close(h->db), SQLITE_OK);
}

/* "EBUSY (another connection kept the table locked for busy_timeout_ms
 * ...; the cursor is unchanged and the call may be retried)": a reader
 * that must read the table while another connection holds the in-memory
 * database's lock waits busy_timeout_ms (50 here), then gives up; the
 * retry after the lock is gone delivers every row. */
static void
in_memory_reader_gives_up_after_busy_timeout_with_its_cursor_unchanged(
    void **state)
{
	struct bus_fixture *f = *state; /* busy_timeout_ms 50 */
	struct holder h;
	litebus_reader *r;
	litebus_row row;
	int64_t ids[3];
	uint64_t t0, waited_ns;
	int rc;

	commit_events(f->bus, LITEBUS_COMPLETION, 3, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	holder_lock(f, &h);
	t0 = fx_mono_ns();
	rc = litebus_reader_next(r, &row, 0);
	waited_ns = fx_mono_ns() - t0;
	if (rc != LITEBUS_EBUSY)
		fail_msg("reader_next while the database is locked: %s",
			 litebus_errname(rc));
	assert_true(waited_ns >= 50000000u);
	assert_int_equal(litebus_last_sqlite_code() & 0xff, SQLITE_BUSY);
	assert_int_equal(litebus_reader_cursor(r), 0);
	holder_unlock(&h);
	for (int i = 0; i < 3; i++)
		fx_expect_row(r, ids[i]);
	litebus_reader_close(r);
}

/* "... or for timeout_ms if that is longer": a reader with a timeout of
 * 10 s outwaits a lock held for 200 ms, four times its busy_timeout_ms. */
static void
in_memory_reader_waits_for_its_timeout_when_longer_than_busy_timeout(
    void **state)
{
	struct bus_fixture *f = *state; /* busy_timeout_ms 50 */
	struct holder h;
	litebus_reader *r;
	int64_t ids[2];
	uint64_t t0;

	commit_events(f->bus, LITEBUS_COMPLETION, 2, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	holder_lock(f, &h);
	t0 = fx_mono_ns();
	holder_release_in(&h, 200);
	fx_expect_row(r, ids[0]); /* timeout FX_WAIT_MS */
	assert_true(fx_mono_ns() - t0 >= 200000000u);
	fx_expect_row(r, ids[1]);
	holder_unlock(&h);
	litebus_reader_close(r);
}

/* "with -1 the reader keeps retrying". */
static void
in_memory_reader_with_minus_one_keeps_retrying_past_busy_timeout(void **state)
{
	struct bus_fixture *f = *state; /* busy_timeout_ms 50 */
	struct holder h;
	litebus_reader *r;
	litebus_row row;
	int64_t ids[2];
	uint64_t t0;

	commit_events(f->bus, LITEBUS_COMPLETION, 2, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	holder_lock(f, &h);
	t0 = fx_mono_ns();
	holder_release_in(&h, 300);
	assert_int_equal(litebus_reader_next(r, &row, -1), LITEBUS_OK);
	assert_int_equal(row.event_id, ids[0]);
	assert_true(fx_mono_ns() - t0 >= 300000000u);
	holder_unlock(&h);
	litebus_reader_close(r);
}

/* litebus_reader_open(): "EBUSY (its read connection could not open or
 * read)" only after busy_timeout_ms: an open while the database is locked
 * for less than that waits and succeeds, after every committed row. */
static void
in_memory_reader_open_waits_out_a_held_lock(void **state)
{
	struct bus_fixture *f = *state; /* default busy_timeout_ms, 5000 */
	struct holder h;
	litebus_reader *r;
	int64_t ids[2], next;
	uint64_t t0;

	commit_events(f->bus, LITEBUS_COMPLETION, 2, ids);
	holder_lock(f, &h);
	t0 = fx_mono_ns();
	holder_release_in(&h, 100);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	assert_true(fx_mono_ns() - t0 >= 100000000u);
	assert_int_equal(litebus_reader_cursor(r), ids[1]);
	holder_unlock(&h);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, &next);
	fx_expect_row(r, next);
	litebus_reader_close(r);
}

/* ... and fails with EBUSY once busy_timeout_ms has passed. */
static void
in_memory_reader_open_fails_with_ebusy_after_busy_timeout(void **state)
{
	struct bus_fixture *f = *state; /* busy_timeout_ms 50 */
	struct holder h;
	litebus_reader *r = NULL;
	uint64_t t0;
	int rc;

	holder_lock(f, &h);
	t0 = fx_mono_ns();
	rc = litebus_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW,
				 NULL, &r);
	assert_int_equal(rc, LITEBUS_EBUSY);
	assert_null(r);
	assert_true(fx_mono_ns() - t0 >= 50000000u);
	holder_unlock(&h);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	litebus_reader_close(r);
}

/* reader.c, D6: "On the writer thread nothing is waited for".  A
 * done-callback (on the writer, outside any transaction) reads while
 * another connection holds the lock: EBUSY at once, not after
 * busy_timeout_ms (60 s here), cursor unchanged. */
struct on_writer_read {
	litebus_reader *reader;
	_Atomic int step; /* 1: callback running, 2: locked, 3: read done */
	int rc;
	uint64_t elapsed_ns;
	int64_t cursor;
	bool timed_out;
};

static bool
wait_step(_Atomic int *step, int want)
{
	uint64_t deadline = fx_mono_ns() + 60000000000u;

	while (atomic_load(step) < want)
		if (fx_mono_ns() > deadline)
			return false;
		else
			sched_yield();
	return true;
}

static void
done_read_while_locked(int status, void *arg)
{
	struct on_writer_read *w = arg;
	litebus_row row;
	uint64_t t0;

	(void)status;
	atomic_store(&w->step, 1);
	if (!wait_step(&w->step, 2)) {
		w->timed_out = true;
		return;
	}
	t0 = fx_mono_ns();
	w->rc = litebus_reader_next(w->reader, &row, 0);
	w->elapsed_ns = fx_mono_ns() - t0;
	w->cursor = litebus_reader_cursor(w->reader);
	atomic_store(&w->step, 3);
}

static void
a_reader_on_the_writer_thread_never_waits_for_a_lock(void **state)
{
	struct bus_fixture *f = *state;
	struct on_writer_read w = {0};
	struct holder h;
	int64_t ids[2];

	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->opts.busy_timeout_ms = 60000; /* a wait would be noticed */
	assert_int_equal(litebus_open(&f->opts, &f->bus), LITEBUS_OK);
	commit_events(f->bus, LITEBUS_COMPLETION, 2, ids);
	w.reader = fx_reader_open(f->bus, LITEBUS_COMPLETION,
				  LITEBUS_FROM_START, NULL);
	atomic_init(&w.step, 0);
	assert_int_equal(litebus_submit(f->bus, fx_noop_job, NULL,
					done_read_while_locked, &w),
			 LITEBUS_OK);
	assert_true(wait_step(&w.step, 1));
	holder_lock(f, &h);
	atomic_store(&w.step, 2);
	assert_true(wait_step(&w.step, 3));
	holder_unlock(&h);
	assert_false(w.timed_out);
	if (w.rc != LITEBUS_EBUSY)
		fail_msg("reader_next(0) in a done-callback while the database "
			 "is locked: %s",
			 litebus_errname(w.rc));
	assert_true(w.elapsed_ns < 10000000000u); /* far below 60 s */
	assert_int_equal(w.cursor, 0);
	fx_expect_row(w.reader, ids[0]);
	fx_expect_row(w.reader, ids[1]);
	litebus_reader_close(w.reader);
}

/* ------------------------------------------------------------------ */
/* Readers beside a running job (in memory)                            */

/* A job that emits rows, then waits (its transaction open) until the
 * test has looked, then rolls back. */
struct open_job {
	_Atomic int step; /* 1: rows written, 2: the test has looked */
	bool timed_out;
};

static int
job_emit_then_wait(litebus_tx *tx, void *arg)
{
	struct open_job *j = arg;
	struct fx_emit twenty = {
	    .channel = LITEBUS_COMPLETION, .count = 20, .event_type = "failed"};

	if (fx_emit_job(tx, &twenty) != LITEBUS_OK)
		return -1;
	atomic_store(&j->step, 1);
	if (!wait_step(&j->step, 2))
		j->timed_out = true;
	return JOB_FAILED;
}

/* memvfs.c: "a reader sees committed transactions only, and waits only
 * for a COMMIT, never for a job": while a job holds its transaction with
 * rows written, readers open, catch up on what is committed with timeout
 * 0, and see none of the job's rows; after the job rolls back they never
 * do. */
static void
in_memory_readers_catch_up_while_a_job_holds_its_transaction(void **state)
{
	struct bus_fixture *f = *state; /* default busy_timeout_ms, 5000 */
	struct open_job j = {0};
	litebus_reader *r, *late;
	litebus_row row;
	int64_t ids[5], next;
	uint64_t t0;

	commit_events(f->bus, LITEBUS_COMPLETION, 5, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	atomic_init(&j.step, 0);
	assert_int_equal(
	    litebus_submit(f->bus, job_emit_then_wait, &j, NULL, NULL),
	    LITEBUS_OK);
	assert_true(wait_step(&j.step, 1));
	t0 = fx_mono_ns();
	late =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	assert_int_equal(litebus_reader_cursor(late), ids[4]);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_OK);
		assert_int_equal(row.event_id, ids[i]);
	}
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	/* Nothing waited for the job (far below busy_timeout_ms). */
	assert_true(fx_mono_ns() - t0 < 2000000000u);
	atomic_store(&j.step, 2);
	assert_int_equal(litebus_exec(f->bus, fx_noop_job, NULL), 0);
	assert_false(j.timed_out);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, &next);
	fx_expect_row(r, next);
	fx_expect_row(late, next);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	litebus_reader_close(late);
	litebus_reader_close(r);
}

/* A job whose transaction outgrows the writer's page cache (a few MB):
 * its spill holds the exclusive lock until COMMIT, and readers looping
 * meanwhile wait it out and then get every row, no EBUSY. */
static int
job_big_rows(litebus_tx *tx, void *arg)
{
	static unsigned char payload[4096];
	struct fx_emit big = {.channel = LITEBUS_COMPLETION,
			      .count = 2000, /* 8 MB */
			      .payload = payload,
			      .payload_len = sizeof payload};

	(void)arg;
	return fx_emit_job(tx, &big) == LITEBUS_OK ? 0 : JOB_FAILED;
}

static void
in_memory_readers_wait_out_a_job_that_spills_its_cache(void **state)
{
	struct bus_fixture *f = *state;
	struct looper l[2];
	pthread_t t[2];

	for (int i = 0; i < 2; i++) {
		memset(&l[i], 0, sizeof l[i]);
		l[i].bus = f->bus;
		l[i].timeout_ms = i == 0 ? -1 : 0;
		assert_int_equal(
		    pthread_create(&t[i], NULL, looper_main, &l[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		commit_events(f->bus, LITEBUS_COMPLETION, 10, NULL);
		assert_int_equal(litebus_exec(f->bus, job_big_rows, NULL), 0);
	}
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(l[i].other_rc, 0);
		if (l[i].ebusy != 0)
			fail_msg("reader %d: EBUSY %d times: %s", i, l[i].ebusy,
				 l[i].ebusy_msg);
		assert_false(l[i].out_of_order);
		assert_int_equal(l[i].delivered, 3 * (10 + 2000));
	}
}

/* The writer's COMMIT waits for a reader in the middle of a read (the
 * commit needs the exclusive lock): many readers reading while jobs
 * commit fail no job (writer.c retries BUSY at COMMIT). */
static void
in_memory_commits_wait_for_readers_in_the_middle_of_a_read(void **state)
{
	struct bus_fixture *f = *state;
	enum { READERS = 3, EVENTS = 3000 };
	struct looper l[READERS];
	pthread_t t[READERS];

	for (int i = 0; i < READERS; i++) {
		memset(&l[i], 0, sizeof l[i]);
		l[i].bus = f->bus;
		l[i].timeout_ms = i == 0 ? -1 : 0;
		assert_int_equal(
		    pthread_create(&t[i], NULL, looper_main, &l[i]), 0);
	}
	for (int i = 0; i < EVENTS; i += 10)
		commit_batch(f->bus, LITEBUS_COMPLETION, 10, NULL);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	for (int i = 0; i < READERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(l[i].other_rc, 0);
		assert_int_equal(l[i].ebusy, 0);
		assert_false(l[i].out_of_order);
		assert_int_equal(l[i].delivered, EVENTS);
	}
}

/* ------------------------------------------------------------------ */
/* A lock refused once, anywhere in a read (file database)             */

/* The fault VFS refuses the Nth lock call with SQLITE_BUSY: wherever it
 * lands in a catch-up over several pages, the reader retries (D6) and
 * delivers every row once, in order, without EBUSY. */
static void
a_lock_refused_once_anywhere_in_a_catch_up_is_retried(void **state)
{
	struct bus_fixture *f = *state;
	const enum fault_kind kinds[] = {FAULT_LOCK, FAULT_SHMLOCK};
	int64_t ids[10];

	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->opts.reader_batch = 3;
	fx_open(f);
	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids);
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		for (uint64_t n = 1;; n++) {
			litebus_reader *r;
			litebus_row row;
			uint64_t fired;
			int rc;

			faultvfs_reset();
			faultvfs_arm(kinds[k], n, SQLITE_BUSY);
			rc = litebus_reader_open(f->bus, LITEBUS_COMPLETION,
						 LITEBUS_FROM_START, NULL, &r);
			if (rc != LITEBUS_OK)
				fail_msg("%s #%llu: reader_open: %s: %s",
					 faultvfs_kind_name(kinds[k]),
					 (unsigned long long)n,
					 litebus_errname(rc),
					 litebus_last_errmsg());
			for (int i = 0; i < 10; i++) {
				rc = litebus_reader_next(r, &row, 0);
				if (rc != LITEBUS_OK || row.event_id != ids[i])
					fail_msg("%s #%llu: row %d: %s (%lld)",
						 faultvfs_kind_name(kinds[k]),
						 (unsigned long long)n, i,
						 litebus_errname(rc),
						 (long long)row.event_id);
			}
			assert_int_equal(litebus_reader_next(r, &row, 0),
					 LITEBUS_TIMEOUT);
			fired = faultvfs_fired();
			faultvfs_disarm();
			litebus_reader_close(r);
			if (fired == 0)
				break; /* past the last lock call */
		}
	}
	faultvfs_reset();
}

/* ------------------------------------------------------------------ */
/* Reading values: allocation failures are never data                  */

/* Rows whose values SQLite must convert (allocating) when the reader
 * asks for them as bytes or text: integers in BLOB columns, a zeroblob,
 * an integer namespace.  Written by a plain connection, as another
 * process would. */
static void
insert_rows_needing_conversion(struct bus_fixture *f)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_busy_timeout(db, FX_WAIT_MS), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
			 "INSERT INTO litebus_outbox_completion(event_id, "
			 "partition_key, subject, event_type, namespace, "
			 "instance_tag, payload, occurred_at_ms, "
			 "committed_at_ms) VALUES "
			 "(1, 1, 12345, 'success', 7, 'tag', 67890, 1, 1), "
			 "(2, 2, x'00ff', 'failed', NULL, NULL, "
			 "zeroblob(1000), 2, 2)",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static bool
row_is_exact(const litebus_row *row)
{
	static const unsigned char zeros[1000];

	if (row->event_id == 1)
		return row->subject != NULL && row->subject_len == 5 &&
		       memcmp(row->subject, "12345", 5) == 0 &&
		       strcmp(row->event_type, "success") == 0 &&
		       row->ns != NULL && strcmp(row->ns, "7") == 0 &&
		       row->instance_tag != NULL &&
		       strcmp(row->instance_tag, "tag") == 0 &&
		       row->payload != NULL && row->payload_len == 5 &&
		       memcmp(row->payload, "67890", 5) == 0;
	if (row->event_id == 3) /* commit_events()'s row */
		return row->subject != NULL && row->subject_len == 7 &&
		       memcmp(row->subject, "subject", 7) == 0 &&
		       row->payload != NULL && row->payload_len == sizeof(int);
	return row->event_id == 2 && row->subject != NULL &&
	       row->subject_len == 2 &&
	       memcmp(row->subject, "\x00\xff", 2) == 0 &&
	       strcmp(row->event_type, "failed") == 0 && row->ns == NULL &&
	       row->instance_tag == NULL && row->payload != NULL &&
	       row->payload_len == 1000 &&
	       memcmp(row->payload, zeros, 1000) == 0;
}

/* "ENOMEM" of litebus_reader_next(), never data in its place: SQLite's
 * Nth allocation on the reader's thread fails, for every N that the
 * catch-up makes, some of them inside sqlite3_column_blob/text.  Each
 * call delivers the exact row or fails with a negative status and leaves
 * the cursor where it was; the retry then delivers the exact row.  (SQLite
 * also fails the statement's next step after such a failure; the reader
 * does not rely on stepping again.) */
static void
an_allocation_failure_while_reading_a_row_is_never_delivered_as_data(
    void **state)
{
	struct bus_fixture *f = *state;
	int fired_somewhere = 0;

	insert_rows_needing_conversion(f);
	/* One row of litebus's own after them. */
	commit_events(f->bus, LITEBUS_COMPLETION, 1, NULL);
	for (uint64_t n = 1;; n++) {
		litebus_reader *r = fx_reader_open(f->bus, LITEBUS_COMPLETION,
						   LITEBUS_FROM_START, NULL);
		litebus_row row;
		int64_t expect = 1;
		bool fired = false;

		while (expect <= 3) {
			int64_t before = litebus_reader_cursor(r);
			int rc;

			sq_count = 0;
			sq_fail_at = n;
			sq_armed = !fired;
			rc = litebus_reader_next(r, &row, 0);
			sq_armed = false;
			if (sq_count >= n && !fired) {
				fired = true;
				fired_somewhere++;
			}
			if (rc == LITEBUS_OK) {
				if (row.event_id != expect ||
				    !row_is_exact(&row))
					fail_msg("allocation #%llu failed: row "
						 "%lld delivered with wrong or "
						 "NULL data",
						 (unsigned long long)n,
						 (long long)row.event_id);
				expect++;
			} else if (rc < 0) {
				assert_int_equal(litebus_reader_cursor(r),
						 before);
			} else {
				fail_msg("allocation #%llu: %s before row %lld",
					 (unsigned long long)n,
					 litebus_errname(rc),
					 (long long)expect);
			}
		}
		assert_int_equal(litebus_reader_next(r, &row, 0),
				 LITEBUS_TIMEOUT);
		litebus_reader_close(r);
		if (!fired)
			break; /* N is past the last allocation */
	}
	assert_true(fired_somewhere > 0);
}

/* A job large enough to spill SQLite's page cache, holding its
 * transaction open until the test lets it go. */
struct big_job {
	sem_t emitted, release, done;
	int status;
};

static int
job_big_then_hold(litebus_tx *tx, void *arg)
{
	struct big_job *b = arg;
	static unsigned char payload[4096];
	struct fx_emit big = {.channel = LITEBUS_COMPLETION,
			      .count = 1000,
			      .payload = payload,
			      .payload_len = sizeof payload};

	if (fx_emit_job(tx, &big) != LITEBUS_OK)
		return JOB_FAILED;
	sem_post(&b->emitted);
	while (sem_wait(&b->release) != 0)
		;
	return 0;
}

static void
big_job_done(int status, void *arg)
{
	struct big_job *b = arg;

	b->status = status;
	sem_post(&b->done);
}

/* Contract, litebus_reader_next(): "0 never waits for a commit".  Found by
 * an attack: in memory, a job that outgrew the page cache took the
 * database's EXCLUSIVE lock mid-transaction, and a lapped reader's
 * next(0) waited for the job to commit (or failed with EBUSY after
 * busy_timeout_ms).  The job here holds its transaction until the reader
 * has read everything committed before it. */
static void
a_lapped_in_memory_reader_never_waits_for_a_large_running_job(void **state)
{
	litebus_options o;
	litebus *bus;
	litebus_reader *r;
	litebus_row row;
	struct big_job b;
	int64_t ids[20];
	int rc, got = 0;

	(void)state;
	litebus_options_init(&o);
	o.ring_capacity = 8;
	o.busy_timeout_ms = 50; /* a wait would end in EBUSY quickly */
	assert_int_equal(litebus_open(&o, &bus), LITEBUS_OK);
	assert_int_equal(litebus_reader_open(bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	commit_events(bus, LITEBUS_COMPLETION, 20, ids); /* laps the reader */
	sem_init(&b.emitted, 0, 0);
	sem_init(&b.release, 0, 0);
	sem_init(&b.done, 0, 0);
	assert_int_equal(
	    litebus_submit(bus, job_big_then_hold, &b, big_job_done, &b),
	    LITEBUS_OK);
	while (sem_wait(&b.emitted) != 0)
		;
	while ((rc = litebus_reader_next(r, &row, 0)) == LITEBUS_OK) {
		assert_true(got < 20);
		assert_int_equal(row.event_id, ids[got]);
		got++;
	}
	sem_post(&b.release);
	if (rc != LITEBUS_TIMEOUT)
		fail_msg("reader_next(0) beside a running job: %s: %s",
			 litebus_errname(rc), litebus_last_errmsg());
	assert_int_equal(got, 20);
	while (sem_wait(&b.done) != 0)
		;
	assert_int_equal(b.status, 0);
	litebus_reader_close(r);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_WITH(in_memory_jobs_creating_and_dropping_a_table_never_fail_beside_readers, bus_in_memory),
	    FX_TEST_WITH(in_memory_jobs_running_every_kind_of_ddl_never_fail_beside_readers, bus_in_memory),
	    FX_TEST_DEFAULT(file_jobs_running_ddl_never_fail_beside_readers),
	    FX_TEST_WITH(in_memory_reader_gives_up_after_busy_timeout_with_its_cursor_unchanged, memory_bus_with_short_busy_timeout),
	    FX_TEST_WITH(in_memory_reader_waits_for_its_timeout_when_longer_than_busy_timeout, memory_bus_with_short_busy_timeout),
	    FX_TEST_WITH(in_memory_reader_with_minus_one_keeps_retrying_past_busy_timeout, memory_bus_with_short_busy_timeout),
	    FX_TEST_WITH(in_memory_reader_open_waits_out_a_held_lock, bus_in_memory),
	    FX_TEST_WITH(in_memory_reader_open_fails_with_ebusy_after_busy_timeout, memory_bus_with_short_busy_timeout),
	    FX_TEST_WITH(a_reader_on_the_writer_thread_never_waits_for_a_lock, bus_in_memory),
	    FX_TEST_WITH(in_memory_readers_catch_up_while_a_job_holds_its_transaction, bus_in_memory),
	    FX_TEST_WITH(in_memory_readers_wait_out_a_job_that_spills_its_cache, bus_in_memory),
	    FX_TEST_WITH(in_memory_commits_wait_for_readers_in_the_middle_of_a_read, bus_in_memory),
	    FX_TEST_DEFAULT(a_lock_refused_once_anywhere_in_a_catch_up_is_retried),
	    cmocka_unit_test(
		a_lapped_in_memory_reader_never_waits_for_a_large_running_job),
	    FX_TEST_DEFAULT(an_allocation_failure_while_reading_a_row_is_never_delivered_as_data),
	};

	sq_install();
	return cmocka_run_group_tests_name("memory_ddl", tests, NULL, NULL);
}
