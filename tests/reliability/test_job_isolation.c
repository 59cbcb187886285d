/* SPDX-License-Identifier: MIT */
/*
 * test_job_isolation.c - issue 7, class 3: one job cannot hurt its batch
 * mates or the bus, whatever SQL or SQLite C API it uses on
 * litebus_tx_db().
 *
 * Contract (litebus.h, "What a job may do on litebus_tx_db()"): refused
 * statements fail to prepare with SQLITE_AUTH; statements left in
 * progress are reset when the job returns; limits, the busy handler and
 * hooks are put back; a job that replaced litebus's commit or WAL hook,
 * or turned off defensive mode or triggers, fails with EMISUSE and rolls
 * back; "A job may be *called* more than once, and commits at most once"
 * when a batch mate makes SQLite roll back the whole transaction.
 *
 * Batches are made deterministic with a gate job that holds the writer
 * while the jobs under test queue up behind it.
 */
#include "fixture.h"

#include <setjmp.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_JOBS 8

/* ---------------------------------------------------------------- */
/* Helpers                                                           */

struct gate {
	sem_t started, release;
};

static int
job_gate(litebus_tx *tx, void *arg)
{
	struct gate *g = arg;

	(void)tx;
	sem_post(&g->started);
	while (sem_wait(&g->release) != 0)
		;
	return 0;
}

struct done {
	sem_t sem;
	int status;
};

static void
on_done(int status, void *arg)
{
	struct done *d = arg;

	d->status = status;
	sem_post(&d->sem);
}

static void
wait_done(struct done *d)
{
	while (sem_wait(&d->sem) != 0)
		;
}

/* A job that emits one completion event and counts its calls. */
struct emitter {
	int calls;
	int64_t id;
};

static int
job_emit_counting(litebus_tx *tx, void *arg)
{
	struct emitter *e = arg;

	e->calls++;
	return fx_emit_one_job(tx, &e->id);
}

/* Run jobs[0..n) as one batch (behind a gate) with done-callbacks. */
struct batch {
	litebus_job_fn fn[MAX_JOBS];
	void *arg[MAX_JOBS];
	struct done done[MAX_JOBS];
	int n;
};

static void
run_batch(litebus *bus, struct batch *b)
{
	struct gate g;

	sem_init(&g.started, 0, 0);
	sem_init(&g.release, 0, 0);
	assert_int_equal(litebus_submit(bus, job_gate, &g, NULL, NULL),
			 LITEBUS_OK);
	while (sem_wait(&g.started) != 0)
		;
	for (int i = 0; i < b->n; i++) {
		sem_init(&b->done[i].sem, 0, 0);
		assert_int_equal(litebus_submit(bus, b->fn[i], b->arg[i],
						on_done, &b->done[i]),
				 LITEBUS_OK);
	}
	sem_post(&g.release);
	for (int i = 0; i < b->n; i++)
		wait_done(&b->done[i]);
	sem_destroy(&g.started);
	sem_destroy(&g.release);
}

static int
exec_sql(litebus *bus, const char *sql)
{
	return fx_exec_sql(bus, sql);
}

static void
setup_table(litebus *bus)
{
	assert_int_equal(exec_sql(bus,
				      "CREATE TABLE IF NOT EXISTS t(x UNIQUE);"
				      "CREATE TABLE IF NOT EXISTS log(x)"),
			 0);
}

/* Count rows of one of the application's tables through another
 * connection. */
static int64_t
count_sql(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* ---------------------------------------------------------------- */
/* Statements left in progress                                        */

struct leave_running {
	const char *sql;
	sqlite3_stmt *st; /* finalized by the test after the batch */
};

static int
job_step_once_and_leave(litebus_tx *tx, void *arg)
{
	struct leave_running *l = arg;
	sqlite3 *db = litebus_tx_db(tx);

	if (sqlite3_prepare_v2(db, l->sql, -1, &l->st, NULL) != SQLITE_OK)
		return JOB_FAILED;
	return sqlite3_step(l->st) == SQLITE_ROW ? 0 : JOB_FAILED;
}

/* The input (a): INSERT ... RETURNING stepped once and never
 * reset.  The job's row and its batch mates all commit; nothing fails
 * with EBUSY.  Also an UPDATE ... RETURNING and a plain SELECT. */
static void
a_statement_left_running_by_a_job_is_reset_and_its_batch_commits(
    void **state)
{
	struct bus_fixture *f = *state;
	static const char *const sqls[] = {
	    "INSERT INTO log(x) VALUES(1), (2) RETURNING x",
	    "UPDATE log SET x = x + 10 RETURNING x",
	    "SELECT x FROM log",
	    "SELECT event_id FROM litebus_outbox_completion",
	};

	setup_table(f->bus);
	for (size_t i = 0; i < sizeof sqls / sizeof sqls[0]; i++) {
		struct leave_running l = {sqls[i], NULL};
		struct emitter before = {0, 0}, after = {0, 0};
		struct batch b = {
		    .fn = {job_emit_counting, job_step_once_and_leave,
			   job_emit_counting},
		    .arg = {&before, &l, &after},
		    .n = 3};
		int64_t rows = fx_count_rows(f->path, "completion");

		run_batch(f->bus, &b);
		for (int k = 0; k < 3; k++)
			if (b.done[k].status != 0)
				fail_msg("%s: job %d got %s", sqls[i], k,
					 litebus_errname(b.done[k].status));
		sqlite3_finalize(l.st);
		assert_int_equal(fx_count_rows(f->path, "completion"),
				 rows + 2);
	}
	/* The INSERT ... RETURNING stepped once kept its whole effect. */
	assert_int_equal(count_sql(f->path, "SELECT count(*) FROM log"), 2);
}

/* ---------------------------------------------------------------- */
/* A job that makes SQLite roll back the whole transaction            */

static const char *const rollback_sqls[] = {
    /* The input (b). */
    "INSERT OR ROLLBACK INTO t(x) VALUES(1)",
    /* A trigger of the application's that raises ROLLBACK. */
    "INSERT INTO log(x) VALUES(-1)",
    /* A constraint whose conflict clause is ROLLBACK, in an UPDATE. */
    "UPDATE OR ROLLBACK t SET x = 1 WHERE x = 2",
};

static int
job_rollback_everything(litebus_tx *tx, void *arg)
{
	(void)sqlite3_exec(litebus_tx_db(tx), arg, NULL, NULL, NULL);
	return 0; /* returns 0 although SQLite rolled everything back */
}

/* Jobs A, B, C in one batch; B's statement rolls the whole transaction
 * back.  A and C commit (A was called twice), B fails with a litebus
 * status, and each committed event reaches a reader once. */
static void
innocent_batch_mates_of_a_job_that_rolled_back_everything_commit(
    void **state)
{
	struct bus_fixture *f = *state;

	setup_table(f->bus);
	assert_int_equal(
	    exec_sql(f->bus,
			 "INSERT INTO t(x) VALUES(1), (2);"
			 "CREATE TRIGGER no_negatives BEFORE INSERT ON log "
			 "WHEN NEW.x < 0 BEGIN SELECT RAISE(ROLLBACK, "
			 "'negative'); END"),
	    0);
	for (size_t i = 0; i < sizeof rollback_sqls / sizeof rollback_sqls[0];
	     i++) {
		struct emitter a = {0, 0}, c = {0, 0};
		struct batch b = {
		    .fn = {job_emit_counting, job_rollback_everything,
			   job_emit_counting},
		    .arg = {&a, (void *)rollback_sqls[i], &c},
		    .n = 3};
		int64_t rows = fx_count_rows(f->path, "completion");
		litebus_reader *r;
		litebus_row row;

		assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
						     LITEBUS_FROM_NOW, NULL,
						     &r),
				 LITEBUS_OK);
		run_batch(f->bus, &b);
		if (b.done[0].status != 0 || b.done[2].status != 0)
			fail_msg("%s: A got %s, C got %s", rollback_sqls[i],
				 litebus_errname(b.done[0].status),
				 litebus_errname(b.done[2].status));
		assert_true(b.done[1].status < 0);
		assert_string_not_equal(litebus_errname(b.done[1].status),
					"?");
		assert_int_equal(a.calls, 2);
		assert_int_equal(c.calls, 1);
		assert_int_equal(fx_count_rows(f->path, "completion"),
				 rows + 2);
		assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(row.event_id, a.id);
		assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(row.event_id, c.id);
		assert_int_equal(litebus_reader_next(r, &row, 0),
				 LITEBUS_TIMEOUT);
		litebus_reader_close(r);
	}
}

/* The culprit keeps its own return value when it returns non-zero. */
static int
job_rollback_and_fail(litebus_tx *tx, void *arg)
{
	(void)sqlite3_exec(litebus_tx_db(tx), arg, NULL, NULL, NULL);
	return JOB_FAILED;
}

static void
a_job_that_rolled_back_everything_keeps_its_own_return_value(void **state)
{
	struct bus_fixture *f = *state;
	struct emitter a = {0, 0};
	struct batch b = {.fn = {job_emit_counting, job_rollback_and_fail},
			  .arg = {&a, (void *)rollback_sqls[0]},
			  .n = 2};

	setup_table(f->bus);
	assert_int_equal(exec_sql(f->bus,
				      "INSERT INTO t(x) VALUES(1)"),
			 0);
	run_batch(f->bus, &b);
	assert_int_equal(b.done[0].status, 0);
	assert_int_equal(b.done[1].status, JOB_FAILED);
}

/* Every job of a batch rolls the transaction back: each fails alone, and
 * the writer still ends (W6: each loss settles one job). */
static void
a_batch_where_every_job_rolls_back_everything_ends(void **state)
{
	struct bus_fixture *f = *state;
	struct batch b = {.n = MAX_JOBS};

	setup_table(f->bus);
	assert_int_equal(exec_sql(f->bus,
				      "INSERT INTO t(x) VALUES(1)"),
			 0);
	for (int i = 0; i < MAX_JOBS; i++) {
		b.fn[i] = job_rollback_everything;
		b.arg[i] = (void *)rollback_sqls[0];
	}
	run_batch(f->bus, &b);
	for (int i = 0; i < MAX_JOBS; i++)
		assert_true(b.done[i].status < 0);
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
}

/* ---------------------------------------------------------------- */
/* Statements the authorizer refuses                                  */

/* Contract: "Refused (the statement fails to prepare with SQLITE_AUTH, so
 * the job sees an error and decides)". */
static const char *const refused[] = {
    "BEGIN", "COMMIT", "ROLLBACK", "END", "SAVEPOINT litebus_x",
    "RELEASE litebus_job", "ATTACH ':memory:' AS other", "DETACH main",
    "PRAGMA synchronous=OFF", "PRAGMA main.synchronous=0",
    "PRAGMA journal_mode=DELETE", "PRAGMA journal_mode=OFF",
    "PRAGMA locking_mode=EXCLUSIVE", "PRAGMA query_only=1",
    "PRAGMA foreign_keys=ON", "PRAGMA trusted_schema=1",
    "PRAGMA wal_autocheckpoint=0", "PRAGMA application_id=7",
    "PRAGMA schema_version=9", "PRAGMA writable_schema=1",
    "PRAGMA cell_size_check=1", "PRAGMA recursive_triggers=1",
    "PRAGMA ignore_check_constraints=1", "PRAGMA busy_timeout=1",
    "PRAGMA journal_size_limit=0", "PRAGMA mmap_size=0",
    "PRAGMA cache_size=1", "PRAGMA wal_checkpoint",
    "PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA temp_store=MEMORY",
    "PRAGMA defer_foreign_keys=1", "PRAGMA case_sensitive_like=1",
    ("INSERT INTO litebus_outbox_completion(event_id, partition_key, "
     "event_type, occurred_at_ms, committed_at_ms) VALUES(99, 0, "
     "'success', 0, 0)"),
    "UPDATE litebus_outbox_completion SET partition_key = 1",
    "UPDATE litebus_channel SET high_water = 0",
    "DELETE FROM litebus_channel", "DELETE FROM litebus_meta",
    "INSERT INTO litebus_meta VALUES('x', 1)",
    "CREATE TABLE litebus_mine(x)", "CREATE TABLE LITEBUS_Mine(x)",
    "CREATE TEMP TABLE litebus_outbox_completion(x)",
    "CREATE TEMP VIEW litebus_outbox_completion AS SELECT 1",
    "CREATE VIEW litebus_v AS SELECT 1",
    "CREATE INDEX mine ON litebus_outbox_completion(event_type)",
    "CREATE UNIQUE INDEX mine2 ON litebus_outbox_completion(partition_key)",
    ("CREATE TRIGGER mine AFTER INSERT ON litebus_outbox_completion BEGIN "
    "SELECT 1; END"),
    ("CREATE TEMP TRIGGER mine AFTER INSERT ON main.litebus_outbox_completion "
    "BEGIN SELECT 1; END"),
    "CREATE TRIGGER litebus_t AFTER INSERT ON log BEGIN SELECT 1; END",
    "DROP TABLE litebus_meta", "DROP INDEX litebus_outbox_completion_partition",
    "DROP TRIGGER litebus_outbox_completion_hw",
    "ALTER TABLE litebus_outbox_completion ADD COLUMN z",
    "ALTER TABLE litebus_outbox_completion RENAME TO x",
};

struct refused_run {
	int rc[sizeof refused / sizeof refused[0]];
	int emit_rc;
};

static int
job_try_refused(litebus_tx *tx, void *arg)
{
	struct refused_run *r = arg;
	sqlite3 *db = litebus_tx_db(tx);

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		r->rc[i] = sqlite3_exec(db, refused[i], NULL, NULL, NULL);
	r->emit_rc = fx_emit_one_job(tx, NULL);
	return 0;
}

static void
statements_that_would_break_the_bus_are_refused_and_the_job_goes_on(
    void **state)
{
	struct bus_fixture *f = *state;
	struct refused_run r;

	setup_table(f->bus);
	memset(&r, 0, sizeof r);
	assert_int_equal(litebus_exec(f->bus, job_try_refused, &r), 0);
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		if (r.rc[i] != SQLITE_AUTH)
			fail_msg("'%s' returned %d, wanted SQLITE_AUTH",
				 refused[i], r.rc[i]);
	assert_int_equal(r.emit_rc, LITEBUS_OK);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
	/* Durability and the journal mode are what litebus set. */
	assert_int_equal(count_sql(f->path, "SELECT count(*) FROM "
					    "pragma_journal_mode WHERE "
					    "journal_mode = 'wal'"),
			 1);
}

/* Contract: "Allowed: read anything; write, create, alter and drop the
 * application's own tables ...; its own SAVEPOINTs ...; PRAGMA
 * user_version and every PRAGMA that only reads". */
static const char *const allowed[] = {
    "CREATE TABLE mine(a, b)", "CREATE INDEX mine_a ON mine(a)",
    "CREATE VIEW mine_v AS SELECT a FROM mine",
    ("CREATE TRIGGER mine_t AFTER INSERT ON mine BEGIN INSERT INTO log "
    "VALUES(NEW.a); END"),
    "INSERT INTO mine VALUES(1, 2)", "ALTER TABLE mine ADD COLUMN c",
    "CREATE TEMP TABLE scratch(x)", "SAVEPOINT mine_sp",
    "RELEASE mine_sp", "PRAGMA user_version=42", "PRAGMA user_version",
    "PRAGMA synchronous", "PRAGMA journal_mode", "PRAGMA table_info(mine)",
    "PRAGMA index_list(mine)", "PRAGMA foreign_key_check",
    "PRAGMA integrity_check", "PRAGMA quick_check(10)",
    "SELECT * FROM pragma_table_info('litebus_outbox_completion')",
    "SELECT count(*) FROM litebus_outbox_completion",
    "SELECT * FROM litebus_meta", "DROP VIEW mine_v", "DROP TABLE mine",
};

static int
job_try_allowed(litebus_tx *tx, void *arg)
{
	int *rc = arg;
	sqlite3 *db = litebus_tx_db(tx);

	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
		rc[i] = sqlite3_exec(db, allowed[i], NULL, NULL, NULL);
	return 0;
}

static void
the_applications_own_sql_and_read_only_pragmas_are_allowed(void **state)
{
	struct bus_fixture *f = *state;
	int rc[sizeof allowed / sizeof allowed[0]];

	setup_table(f->bus);
	assert_int_equal(litebus_exec(f->bus, job_try_allowed, rc), 0);
	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
		if (rc[i] != SQLITE_OK)
			fail_msg("'%s' returned %d", allowed[i], rc[i]);
	assert_int_equal(count_sql(f->path, "PRAGMA user_version"), 42);
}

/* ---------------------------------------------------------------- */
/* Connection state changed through the C API                        */

static int
job_lower_limit_and_busy(litebus_tx *tx, void *arg)
{
	sqlite3 *db = litebus_tx_db(tx);

	(void)arg;
	(void)sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 10);
	(void)sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 50);
	(void)sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, 1);
	(void)sqlite3_busy_timeout(db, 60000);
	return 0;
}

static int
job_read_limits(litebus_tx *tx, void *arg)
{
	int *lim = arg;
	sqlite3 *db = litebus_tx_db(tx);

	lim[0] = sqlite3_limit(db, SQLITE_LIMIT_LENGTH, -1);
	lim[1] = sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, -1);
	lim[2] = sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
	return 0;
}

/* Contract: "Put back when the job returns: ... limits set with
 * sqlite3_limit(); the busy handler". */
static void
limits_a_job_lowers_are_put_back_for_the_next_job(void **state)
{
	struct bus_fixture *f = *state;
	int before[3], after[3];

	assert_int_equal(litebus_exec(f->bus, job_read_limits, before), 0);
	assert_int_equal(litebus_exec(f->bus, job_lower_limit_and_busy, NULL),
			 0);
	assert_int_equal(litebus_exec(f->bus, job_read_limits, after), 0);
	assert_memory_equal(before, after, sizeof before);
	/* And the next job can still emit (its SQL fits again). */
	commit_events(f->bus, LITEBUS_COMPLETION, 3, NULL);
	assert_int_equal(fx_count_rows(f->path, "completion"), 3);
}

static int hook_calls; /* writer thread only; read after exec returns */

static void
counting_update_hook(void *arg, int op, const char *db, const char *table,
		     sqlite3_int64 rowid)
{
	(void)arg;
	(void)op;
	(void)db;
	(void)table;
	(void)rowid;
	hook_calls++;
}

static int
counting_progress(void *arg)
{
	(void)arg;
	hook_calls++;
	return 1; /* would interrupt every later statement */
}

static void
counting_rollback_hook(void *arg)
{
	(void)arg;
	hook_calls++;
}

static int
job_install_hooks(litebus_tx *tx, void *arg)
{
	sqlite3 *db = litebus_tx_db(tx);

	(void)arg;
	(void)sqlite3_update_hook(db, counting_update_hook, NULL);
	sqlite3_progress_handler(db, 1, counting_progress, NULL);
	hook_calls = 0;
	return 0;
}

/* Contract: "Put back ...: the busy handler, the progress handler and
 * trace callbacks; the ... update ... hooks": later jobs do not call
 * what an earlier job installed (it might be gone). */
static void
hooks_a_job_installs_do_not_reach_later_jobs(void **state)
{
	struct bus_fixture *f = *state;

	assert_int_equal(litebus_exec(f->bus, job_install_hooks, NULL), 0);
	commit_events(f->bus, LITEBUS_COMPLETION, 3, NULL);
	assert_int_equal(exec_sql(f->bus,
				      "CREATE TABLE h(x); INSERT INTO h "
				      "VALUES(1); DROP TABLE h"),
			 0);
	assert_int_equal(hook_calls, 0);
	assert_int_equal(fx_count_rows(f->path, "completion"), 3);
}

static int
noop_commit_hook(void *arg)
{
	(void)arg;
	return 0;
}

static void
noop_wal_hook_unused(void)
{
}

static int
noop_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)arg;
	(void)db;
	(void)name;
	(void)frames;
	noop_wal_hook_unused();
	return SQLITE_OK;
}

enum tamper {
	T_ROLLBACK_HOOK,
	T_FKEY,
	T_LEGACY_ALTER,
	T_COMMIT_HOOK,
	T_COMMIT_HOOK_NULL,
	T_WAL_HOOK,
	T_WAL_AUTOCHECKPOINT,
	T_DEFENSIVE,
	T_TRUSTED_SCHEMA,
	T_TRIGGERS,
	T_WRITABLE_SCHEMA,
	T_NTAMPER
};

static int
job_tamper(litebus_tx *tx, void *arg)
{
	enum tamper t = *(enum tamper *)arg;
	sqlite3 *db = litebus_tx_db(tx);

	if (fx_emit_one_job(tx, NULL) != LITEBUS_OK)
		return JOB_FAILED;
	switch (t) {
	case T_ROLLBACK_HOOK:
		/* litebus's rollback hook tells it the transaction was lost. */
		(void)sqlite3_rollback_hook(db, counting_rollback_hook, NULL);
		break;
	case T_FKEY:
		/* A deferred violation would fail every batch mate's COMMIT. */
		(void)sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, 1,
					(int *)NULL);
		break;
	case T_LEGACY_ALTER:
		(void)sqlite3_db_config(db, SQLITE_DBCONFIG_LEGACY_ALTER_TABLE,
					1, (int *)NULL);
		break;
	case T_COMMIT_HOOK:
		(void)sqlite3_commit_hook(db, noop_commit_hook, NULL);
		break;
	case T_COMMIT_HOOK_NULL:
		(void)sqlite3_commit_hook(db, NULL, NULL);
		break;
	case T_WAL_HOOK:
		(void)sqlite3_wal_hook(db, noop_wal_hook, NULL);
		break;
	case T_WAL_AUTOCHECKPOINT:
		(void)sqlite3_wal_autocheckpoint(db, 0);
		break;
	case T_DEFENSIVE:
		(void)sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 0,
					(int *)NULL);
		break;
	case T_TRUSTED_SCHEMA:
		(void)sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 1,
					(int *)NULL);
		break;
	case T_TRIGGERS:
		/* Then a deletion would not raise the high-water mark. */
		(void)sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0,
					(int *)NULL);
		(void)sqlite3_exec(db,
				   "DELETE FROM litebus_outbox_completion "
				   "WHERE event_id = (SELECT max(event_id) "
				   "FROM litebus_outbox_completion)",
				   NULL, NULL, NULL);
		break;
	case T_WRITABLE_SCHEMA:
		(void)sqlite3_db_config(db, SQLITE_DBCONFIG_WRITABLE_SCHEMA, 1,
					(int *)NULL);
		break;
	case T_NTAMPER:
		break;
	}
	return 0;
}

/* Contract: "A job that replaced litebus's commit or WAL hook fails with
 * LITEBUS_EMISUSE and is rolled back" - likewise for the connection
 * flags the guarantees rest on.  The next job finds everything back. */
static void
a_job_that_disarms_a_guarantee_fails_with_emisuse_and_rolls_back(
    void **state)
{
	struct bus_fixture *f = *state;

	for (enum tamper t = 0; t < T_NTAMPER; t++) {
		int64_t before = fx_count_rows(f->path, "completion");
		int64_t ids[1];
		int rc = litebus_exec(f->bus, job_tamper, &t);

		if (rc != LITEBUS_EMISUSE)
			fail_msg("tamper %d: exec returned %s", (int)t,
				 litebus_errname(rc));
		assert_true(strstr(litebus_last_errmsg(), "put back") != NULL);
		assert_int_equal(fx_count_rows(f->path, "completion"), before);
		/* Everything is back: a normal job commits and publishes. */
		commit_events(f->bus, LITEBUS_COMPLETION, 1, ids);
		assert_int_equal(fx_count_rows(f->path, "completion"),
				 before + 1);
	}
}

/* ---------------------------------------------------------------- */
/* Found by attacking the contract (issue 7, class 3 variants)       */

static int
job_rollback_then_own_transaction(litebus_tx *tx, void *arg)
{
	sqlite3 *db = litebus_tx_db(tx);
	int *rc = arg;

	(void)sqlite3_exec(db, "INSERT OR ROLLBACK INTO t(x) VALUES(1)", NULL,
			   NULL, NULL);
	/* Outside a transaction, SAVEPOINT would open a new one. */
	rc[0] = sqlite3_exec(db, "SAVEPOINT mysp", NULL, NULL, NULL);
	rc[1] = sqlite3_exec(db, "INSERT INTO log(x) VALUES(99)", NULL, NULL,
			     NULL);
	rc[2] = sqlite3_exec(db, "RELEASE mysp", NULL, NULL, NULL);
	return 0;
}

/* A job that follows SQLite's rollback of the whole transaction with a
 * transaction of its own cannot hide the loss: it fails, writes nothing,
 * and its batch mate runs again and commits. */
static void
a_job_cannot_hide_a_lost_transaction_behind_one_of_its_own(void **state)
{
	struct bus_fixture *f = *state;
	struct emitter a = {0, 0};
	int rc[3] = {0, 0, 0};
	struct batch b = {.fn = {job_emit_counting,
				 job_rollback_then_own_transaction},
			  .arg = {&a, rc},
			  .n = 2};

	setup_table(f->bus);
	assert_int_equal(exec_sql(f->bus, "INSERT INTO t(x) VALUES(1)"), 0);
	run_batch(f->bus, &b);
	assert_int_equal(b.done[0].status, 0);
	assert_true(b.done[1].status < 0);
	assert_int_equal(rc[0], SQLITE_AUTH);
	assert_int_equal(a.calls, 2);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
	assert_int_equal(count_sql(f->path, "SELECT count(*) FROM log WHERE "
					    "x = 99"),
			 0);
}

static void
raising_function(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	sqlite3_result_error(ctx, "overridden", -1);
}

static void
lying_function(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	sqlite3_result_int64(ctx, 4242);
}

static void
lying_function_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
}

static void
lying_function_final(sqlite3_context *ctx)
{
	sqlite3_result_int64(ctx, 0);
}

static int
job_override_builtins(litebus_tx *tx, void *arg)
{
	sqlite3 *db = litebus_tx_db(tx);
	static const char *const names[] = {"length", "substr", "lower",
					    "coalesce", "typeof", "quote"};

	(void)arg;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		for (int n = 1; n <= 3; n++)
			if (sqlite3_create_function(db, names[i], n, SQLITE_UTF8,
						    NULL, raising_function, NULL,
						    NULL) != SQLITE_OK)
				return JOB_FAILED;
	if (sqlite3_create_function(db, "max", 1, SQLITE_UTF8, NULL, NULL,
				    lying_function_step, lying_function_final)
	    != SQLITE_OK)
		return JOB_FAILED;
	return sqlite3_create_function(db, "max", 2, SQLITE_UTF8, NULL,
				       lying_function, NULL, NULL) == SQLITE_OK
		   ? 0
		   : JOB_FAILED;
}

/* Contract: a job may register "SQL functions and collations (they stay
 * for the life of the bus)".  Functions named like SQLite's own change
 * nothing litebus computes: what is published, the ids and the subject
 * seen by subscribers stay the rows' own. */
static void
functions_a_job_registers_do_not_change_what_litebus_computes(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	litebus_event ev;
	int64_t ids[3];
	sqlite3 *db;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_exec(f->bus, job_override_builtins, NULL), 0);
	commit_events(f->bus, LITEBUS_COMPLETION, 2, ids);
	/* Another connection commits, so the writer reloads its ids. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE other(x)", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, ids + 2);
	assert_int_equal(ids[1], ids[0] + 1);
	assert_int_equal(ids[2], ids[1] + 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_OK);
		assert_int_equal(ev.event_id, ids[i]);
	}
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	litebus_unsubscribe(sub);
}

/* The authorizer cannot see RENAME TO's new name: a job that moves its
 * table into litebus's namespace fails with EMISUSE, its savepoint undoes
 * the rename, and the file still opens. */
static void
a_rename_into_litebus_s_namespace_fails_the_job_and_is_undone(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const renames[] = {
	    "CREATE TABLE zz(a); ALTER TABLE zz RENAME TO litebus_zzz",
	    ("CREATE TABLE zz(a); CREATE TRIGGER zz_t AFTER INSERT ON zz BEGIN "
	    "SELECT 1; END; ALTER TABLE zz RENAME TO LITEBUS_Q"),
	    ("CREATE TEMP TABLE zz(a); ALTER TABLE temp.zz RENAME TO "
	    "litebus_channel"),
	};

	for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++) {
		int rc = exec_sql(f->bus, renames[i]);

		if (rc != LITEBUS_EMISUSE)
			fail_msg("%s: exec returned %s", renames[i],
				 litebus_errname(rc));
	}
	assert_int_equal(count_sql(f->path, "SELECT count(*) FROM "
					    "sqlite_schema WHERE name = 'zz' "
					    "OR name LIKE 'litebus\\_z%' "
					    "ESCAPE '\\'"),
			 0);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	fx_open(f);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_DEFAULT(a_statement_left_running_by_a_job_is_reset_and_its_batch_commits),
	    FX_TEST_DEFAULT(innocent_batch_mates_of_a_job_that_rolled_back_everything_commit),
	    FX_TEST_DEFAULT(a_job_that_rolled_back_everything_keeps_its_own_return_value),
	    FX_TEST_DEFAULT(a_batch_where_every_job_rolls_back_everything_ends),
	    FX_TEST_DEFAULT(statements_that_would_break_the_bus_are_refused_and_the_job_goes_on),
	    FX_TEST_DEFAULT(the_applications_own_sql_and_read_only_pragmas_are_allowed),
	    FX_TEST_DEFAULT(limits_a_job_lowers_are_put_back_for_the_next_job),
	    FX_TEST_DEFAULT(hooks_a_job_installs_do_not_reach_later_jobs),
	    FX_TEST_DEFAULT(a_job_that_disarms_a_guarantee_fails_with_emisuse_and_rolls_back),
	    FX_TEST_DEFAULT(a_job_cannot_hide_a_lost_transaction_behind_one_of_its_own),
	    FX_TEST_DEFAULT(functions_a_job_registers_do_not_change_what_litebus_computes),
	    FX_TEST_DEFAULT(a_rename_into_litebus_s_namespace_fails_the_job_and_is_undone),
	};

	return cmocka_run_group_tests_name("job isolation", tests, NULL, NULL);
}
