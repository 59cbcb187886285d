/* SPDX-License-Identifier: MIT */
/*
 * test_publish_what_commits.c - issue 7, class 1: what is published is
 * exactly what the COMMIT made durable.
 *
 * Contract (litebus.h, "What a job may do on litebus_tx_db()"): "What is
 * published is what commits.  Before COMMIT the writer reads the batch's
 * new outbox rows back from the tables and publishes exactly those, after
 * COMMIT.  An event whose row the job undoes (a ROLLBACK TO of its own
 * savepoint, a DELETE) is never published, and its event_id is never
 * handed out twice once published."
 *
 * Every way a row can be undone or altered behind litebus_emit()'s back
 * is tried: the job's own savepoints (flat, nested, partial), a DELETE of
 * the row it just emitted, triggers that another connection adds to an
 * outbox table after the bus opened (ignore, delete, rewrite, forge), and
 * a randomized mix.  After each, the subscriber's stream, a reader from
 * the start and the table read through a separate connection must hold the
 * same ids, each once, in increasing order.
 */
#include "fixture.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_IDS 4096
/* ---------------------------------------------------------------- */
/* A tiny job interpreter: SQL statements and emits, in order.        */

enum op_kind { OP_END, OP_SQL, OP_EMIT, OP_EMIT_ANY };

struct op {
	enum op_kind kind;
	const char *sql; /* OP_SQL */
};

struct script {
	const struct op *ops;
	int ret;	  /* what the job returns */
	int sql_rc[16];	  /* result of each OP_SQL, in order */
	int emit_rc[16];  /* result of each emit, in order */
	int64_t ids[16];  /* ids the emits returned */
	int nsql, nemit;
};

static int
job_script(litebus_tx *tx, void *arg)
{
	struct script *s = arg;
	sqlite3 *db = litebus_tx_db(tx);

	/* A job may be called more than once: start afresh each time. */
	s->nsql = s->nemit = 0;
	for (const struct op *op = s->ops; op->kind != OP_END; op++) {
		if (op->kind == OP_SQL) {
			s->sql_rc[s->nsql++] =
			    sqlite3_exec(db, op->sql, NULL, NULL, NULL);
		} else {
			litebus_record rec = {0};
			rec.event_type = "success";
			rec.partition_key = s->nemit;
			rec.subject = "subject";
			rec.subject_len = 7;
			s->emit_rc[s->nemit] = litebus_emit(
			    tx, LITEBUS_COMPLETION, &rec, &s->ids[s->nemit]);
			s->nemit++;
		}
	}
	return s->ret;
}

static void
run_script(litebus *bus, struct script *s, int want)
{
	int rc = litebus_exec(bus, job_script, s);

	if (rc != want)
		fail_msg("exec returned %d (%s), wanted %d: %s", rc,
			 litebus_errname(rc), want, litebus_last_errmsg());
}

/* ---------------------------------------------------------------- */
/* The three views that must agree.                                   */

static size_t
sub_ids(litebus_sub *sub, int64_t *ids)
{
	litebus_event ev;
	size_t n = 0;
	int rc;

	while ((rc = litebus_recv(sub, &ev, 0)) == LITEBUS_OK) {
		assert_true(n < MAX_IDS);
		ids[n++] = ev.event_id;
	}
	/* Default rings hold every event of these tests: no lag. */
	assert_int_equal(rc, LITEBUS_TIMEOUT);
	return n;
}

static size_t
reader_ids(litebus *bus, int64_t *ids)
{
	litebus_reader *r;
	litebus_row row;
	size_t n = 0;
	int rc;

	assert_int_equal(litebus_reader_open(bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	while ((rc = litebus_reader_next(r, &row, 0)) == LITEBUS_OK) {
		assert_true(n < MAX_IDS);
		ids[n++] = row.event_id;
	}
	assert_int_equal(rc, LITEBUS_TIMEOUT);
	litebus_reader_close(r);
	return n;
}

struct views {
	int64_t table[MAX_IDS], sub[MAX_IDS], reader[MAX_IDS];
	size_t ntable, nsub, nreader;
};

/* Nothing lost, duplicated or invented: the subscriber (attached before
 * the first job) received exactly the rows the table holds, and so does
 * a reader from the start, each once and in increasing order. */
static void
assert_views_agree(struct bus_fixture *f, litebus_sub *sub, struct views *v)
{
	v->ntable = fx_outbox_ids(f->path, "completion", v->table, MAX_IDS);
	v->nsub = sub_ids(sub, v->sub);
	v->nreader = reader_ids(f->bus, v->reader);
	for (size_t i = 1; i < v->ntable; i++)
		assert_true(v->table[i - 1] < v->table[i]);
	if (v->nsub != v->ntable) {
		for (size_t i = 0; i < v->nsub; i++)
			print_message("sub[%zu] = %lld\n", i,
				      (long long)v->sub[i]);
		fail_msg("the subscriber received %zu events, the table holds "
			 "%zu rows",
			 v->nsub, v->ntable);
	}
	assert_memory_equal(v->sub, v->table, v->ntable * sizeof v->table[0]);
	assert_int_equal(v->nreader, v->ntable);
	assert_memory_equal(v->reader, v->table,
			    v->ntable * sizeof v->table[0]);
}

/* Another connection commits something unrelated to the outbox: this is
 * what made the writer reload its ids, and re-issue an id it had already
 * published. */
static void
foreign_commit(const char *path)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TABLE IF NOT EXISTS other(x);"
				      "INSERT INTO other VALUES(1)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
}

static void
foreign_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	int rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, FX_WAIT_MS);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

static litebus_sub *
subscribe(struct bus_fixture *f)
{
	litebus_sub *sub;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	return sub;
}

/* ---------------------------------------------------------------- */

/* The input: SAVEPOINT s; emit; ROLLBACK TO s; RELEASE s; return
 * 0.  Nothing is published; after another connection commits, the next
 * emit's id is delivered once, by subscribers and readers alike. */
static void
an_emit_undone_by_the_jobs_own_savepoint_is_never_published(void **state)
{
	struct bus_fixture *f = *state;
	static const struct op undo[] = {{OP_SQL, "SAVEPOINT s"},
					 {OP_EMIT, NULL},
					 {OP_SQL, "ROLLBACK TO s"},
					 {OP_SQL, "RELEASE s"},
					 {OP_END, NULL}};
	static const struct op one[] = {{OP_EMIT, NULL}, {OP_END, NULL}};
	struct script s = {.ops = undo};
	struct script t = {.ops = one};
	litebus_sub *sub = subscribe(f);
	struct views v;

	run_script(f->bus, &s, 0);
	assert_int_equal(s.emit_rc[0], LITEBUS_OK);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 0);

	foreign_commit(f->path);
	run_script(f->bus, &t, 0);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 1);
	assert_int_equal(v.table[0], t.ids[0]);
	litebus_unsubscribe(sub);
}

/* Only the undone part of a job is left out: events before the savepoint
 * and after its rollback are published. */
static void
a_partial_rollback_publishes_the_rest_of_the_job(void **state)
{
	struct bus_fixture *f = *state;
	static const struct op ops[] = {
	    {OP_EMIT, NULL},	       {OP_SQL, "SAVEPOINT a"},
	    {OP_EMIT, NULL},	       {OP_EMIT, NULL},
	    {OP_SQL, "ROLLBACK TO a"}, {OP_EMIT, NULL},
	    {OP_SQL, "RELEASE a"},     {OP_END, NULL}};
	struct script s = {.ops = ops};
	litebus_sub *sub = subscribe(f);
	struct views v;

	run_script(f->bus, &s, 0);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 2);
	assert_int_equal(v.table[0], s.ids[0]);
	assert_int_equal(v.table[1], s.ids[3]);
	/* Ids only grow, gaps allowed. */
	assert_true(s.ids[3] > s.ids[0]);
	litebus_unsubscribe(sub);
}

/* Nested savepoints: an inner RELEASE does not make anything durable when
 * the outer savepoint rolls back. */
static void
a_released_inner_savepoint_inside_a_rolled_back_one_publishes_nothing(
    void **state)
{
	struct bus_fixture *f = *state;
	static const struct op ops[] = {
	    {OP_SQL, "SAVEPOINT outer_sp"}, {OP_SQL, "SAVEPOINT inner_sp"},
	    {OP_EMIT, NULL},		     {OP_SQL, "RELEASE inner_sp"},
	    {OP_EMIT, NULL},		     {OP_SQL, "ROLLBACK TO outer_sp"},
	    {OP_SQL, "RELEASE outer_sp"},   {OP_END, NULL}};
	struct script s = {.ops = ops};
	litebus_sub *sub = subscribe(f);
	struct views v;

	run_script(f->bus, &s, 0);
	for (int i = 0; i < s.nsql; i++)
		assert_int_equal(s.sql_rc[i], SQLITE_OK);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 0);
	litebus_unsubscribe(sub);
}

/* A job deletes the row it just emitted (pruning is allowed): nothing is
 * published, and the id is never handed out again (the high-water mark). */
static void
a_row_the_job_deletes_is_not_published_and_its_id_is_not_reused(void **state)
{
	struct bus_fixture *f = *state;
	static const struct op ops[] = {
	    {OP_EMIT, NULL},
	    {OP_SQL, "DELETE FROM litebus_outbox_completion WHERE event_id = "
		     "(SELECT max(event_id) FROM litebus_outbox_completion)"},
	    {OP_END, NULL}};
	static const struct op one[] = {{OP_EMIT, NULL}, {OP_END, NULL}};
	struct script s = {.ops = ops}, t = {.ops = one};
	litebus_sub *sub = subscribe(f);
	struct views v;

	run_script(f->bus, &s, 0);
	assert_int_equal(s.sql_rc[0], SQLITE_OK);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 0);
	foreign_commit(f->path);
	run_script(f->bus, &t, 0);
	assert_true(t.ids[0] > s.ids[0]);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 1);
	litebus_unsubscribe(sub);
}

/* The job emits, undoes it, and emits again in the same job: the second
 * id is larger, and only it is published. */
static void
an_emit_after_an_undone_one_gets_a_fresh_id(void **state)
{
	struct bus_fixture *f = *state;
	static const struct op ops[] = {
	    {OP_SQL, "SAVEPOINT s"}, {OP_EMIT, NULL},
	    {OP_SQL, "ROLLBACK TO s"}, {OP_EMIT, NULL},
	    {OP_SQL, "RELEASE s"},   {OP_END, NULL}};
	struct script s = {.ops = ops};
	litebus_sub *sub = subscribe(f);
	struct views v;

	run_script(f->bus, &s, 0);
	assert_true(s.ids[1] > s.ids[0]);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 1);
	assert_int_equal(v.table[0], s.ids[1]);
	litebus_unsubscribe(sub);
}

/* Another connection adds a trigger that ignores litebus's INSERT: emit
 * fails (the row was not stored), and nothing is published. */
static void
an_insert_a_foreign_trigger_ignores_fails_the_emit_and_publishes_nothing(
    void **state)
{
	struct bus_fixture *f = *state;
	static const struct op ops[] = {{OP_EMIT, NULL}, {OP_END, NULL}};
	struct script s = {.ops = ops};
	litebus_sub *sub = subscribe(f);
	struct views v;

	foreign_exec(f->path, "CREATE TRIGGER ignore_all BEFORE INSERT ON "
			      "litebus_outbox_completion BEGIN SELECT "
			      "RAISE(IGNORE); END");
	run_script(f->bus, &s, 0);
	assert_int_not_equal(s.emit_rc[0], LITEBUS_OK);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 0);
	foreign_exec(f->path, "DROP TRIGGER ignore_all");
	run_script(f->bus, &s, 0);
	assert_int_equal(s.emit_rc[0], LITEBUS_OK);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 1);
	litebus_unsubscribe(sub);
}

/* A foreign trigger that deletes the row right after litebus inserts it:
 * the row is gone at COMMIT, so nothing is published. */
static void
a_row_a_foreign_trigger_deletes_is_not_published(void **state)
{
	struct bus_fixture *f = *state;
	static const struct op ops[] = {{OP_EMIT, NULL}, {OP_END, NULL}};
	struct script s = {.ops = ops};
	litebus_sub *sub = subscribe(f);
	struct views v;

	foreign_exec(f->path,
		     "CREATE TRIGGER eat AFTER INSERT ON "
		     "litebus_outbox_completion BEGIN DELETE FROM "
		     "litebus_outbox_completion WHERE event_id = "
		     "NEW.event_id; END");
	run_script(f->bus, &s, 0);
	assert_views_agree(f, sub, &v);
	assert_int_equal(v.ntable, 0);
	litebus_unsubscribe(sub);
}

/* Foreign triggers that would rewrite the row or forge rows on another
 * channel are refused when litebus's INSERT fires them: the emit fails,
 * nothing is published on any channel. */
static void
a_foreign_trigger_cannot_rewrite_or_forge_outbox_rows(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const triggers[] = {
	    ("CREATE TRIGGER t AFTER INSERT ON litebus_outbox_completion BEGIN "
	    "UPDATE litebus_outbox_completion SET partition_key = 99 WHERE "
	    "event_id = NEW.event_id; END"),
	    ("CREATE TRIGGER t AFTER INSERT ON litebus_outbox_completion BEGIN "
	    "INSERT INTO litebus_outbox_signal_delivery(event_id, "
	    "partition_key, event_type, occurred_at_ms, committed_at_ms) "
	    "VALUES(NEW.event_id + 1000, 0, 'forged', 0, 0); END"),
	    ("CREATE TRIGGER t AFTER INSERT ON litebus_outbox_completion BEGIN "
	    "INSERT INTO litebus_outbox_completion(event_id, partition_key, "
	    "event_type, occurred_at_ms, committed_at_ms) VALUES("
	    "NEW.event_id + 1, 0, 'success', 0, 0); END"),
	    ("CREATE TRIGGER t AFTER INSERT ON litebus_outbox_completion BEGIN "
	    "UPDATE litebus_channel SET high_water = 0; END"),
	};
	static const struct op ops[] = {{OP_EMIT, NULL}, {OP_END, NULL}};
	litebus_sub *sub = subscribe(f);
	struct views v;

	for (size_t i = 0; i < sizeof triggers / sizeof triggers[0]; i++) {
		struct script s = {.ops = ops};

		foreign_exec(f->path, triggers[i]);
		run_script(f->bus, &s, 0);
		if (s.emit_rc[0] == LITEBUS_OK)
			fail_msg("trigger %zu: emit succeeded", i);
		foreign_exec(f->path, "DROP TRIGGER t");
		assert_views_agree(f, sub, &v);
		assert_int_equal(v.ntable, 0);
		assert_int_equal(fx_count_rows(f->path, "signal_delivery"), 0);
	}
	litebus_unsubscribe(sub);
}

/* A randomized mix of the above over many batches (fixed seed), with
 * foreign commits in between: the three views agree at the end, and no
 * id ever reached the subscriber twice. */
static int
job_random(litebus_tx *tx, void *arg)
{
	unsigned *seed = arg;
	sqlite3 *db = litebus_tx_db(tx);
	unsigned r = (unsigned)rand_r(seed);
	int n = (int)(r % 4);

	for (int i = 0; i < n; i++) {
		litebus_record rec = {0};
		unsigned k = (unsigned)rand_r(seed) % 6;

		rec.event_type = "success";
		rec.partition_key = i;
		if (k == 0 && sqlite3_exec(db, "SAVEPOINT r", NULL, NULL,
					   NULL) != SQLITE_OK)
			return JOB_FAILED;
		if (litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL) !=
		    LITEBUS_OK)
			return JOB_FAILED;
		if (k == 0 && sqlite3_exec(db, "ROLLBACK TO r; RELEASE r",
					   NULL, NULL, NULL) != SQLITE_OK)
			return JOB_FAILED;
		if (k == 1 &&
		    sqlite3_exec(db,
				 "DELETE FROM litebus_outbox_completion WHERE "
				 "event_id = (SELECT max(event_id) FROM "
				 "litebus_outbox_completion)",
				 NULL, NULL, NULL) != SQLITE_OK)
			return JOB_FAILED;
	}
	return (r >> 8) % 5 == 0 ? JOB_FAILED : 0;
}

static void
a_random_mix_of_undone_deleted_and_failed_emits_keeps_the_views_equal(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f);
	struct views *v = malloc(sizeof *v);
	unsigned seed = 7;

	assert_non_null(v);
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 40; i++) {
			int rc = litebus_submit(f->bus, job_random, &seed,
						NULL, NULL);
			assert_int_equal(rc, LITEBUS_OK);
		}
		/* exec queues behind every submit: when it returns, they
		 * have all settled.  The job fails on purpose now and then. */
		int rc = litebus_exec(f->bus, job_random, &seed);
		assert_true(rc == 0 || rc == JOB_FAILED);
		if (round % 3 == 0)
			foreign_commit(f->path);
	}
	assert_views_agree(f, sub, v);
	for (size_t i = 1; i < v->nsub; i++)
		assert_true(v->sub[i - 1] < v->sub[i]);
	free(v);
	litebus_unsubscribe(sub);
}

/* In-memory buses derive what they publish the same way. */
static int
job_memory_undo(litebus_tx *tx, void *arg)
{
	int64_t *ids = arg;
	sqlite3 *db = litebus_tx_db(tx);
	litebus_record rec = {0};

	rec.event_type = "success";
	if (sqlite3_exec(db, "SAVEPOINT m", NULL, NULL, NULL) != SQLITE_OK ||
	    litebus_emit(tx, LITEBUS_COMPLETION, &rec, &ids[0]) != LITEBUS_OK ||
	    sqlite3_exec(db, "ROLLBACK TO m; RELEASE m", NULL, NULL, NULL) !=
		SQLITE_OK ||
	    litebus_emit(tx, LITEBUS_COMPLETION, &rec, &ids[1]) != LITEBUS_OK)
		return JOB_FAILED;
	return 0;
}

static void
an_in_memory_bus_publishes_only_what_commits_too(void **state)
{
	litebus_options o;
	litebus *bus;
	litebus_sub *sub;
	litebus_event ev;
	int64_t ids[2];

	(void)state;
	litebus_options_init(&o);
	assert_int_equal(litebus_open(&o, &bus), LITEBUS_OK);
	assert_int_equal(litebus_subscribe(bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_exec(bus, job_memory_undo, ids), 0);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_OK);
	assert_int_equal(ev.event_id, ids[1]);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	litebus_unsubscribe(sub);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_DEFAULT(an_emit_undone_by_the_jobs_own_savepoint_is_never_published),
	    FX_TEST_DEFAULT(a_partial_rollback_publishes_the_rest_of_the_job),
	    FX_TEST_DEFAULT(a_released_inner_savepoint_inside_a_rolled_back_one_publishes_nothing),
	    FX_TEST_DEFAULT(a_row_the_job_deletes_is_not_published_and_its_id_is_not_reused),
	    FX_TEST_DEFAULT(an_emit_after_an_undone_one_gets_a_fresh_id),
	    FX_TEST_DEFAULT(an_insert_a_foreign_trigger_ignores_fails_the_emit_and_publishes_nothing),
	    FX_TEST_DEFAULT(a_row_a_foreign_trigger_deletes_is_not_published),
	    FX_TEST_DEFAULT(a_foreign_trigger_cannot_rewrite_or_forge_outbox_rows),
	    FX_TEST_DEFAULT(a_random_mix_of_undone_deleted_and_failed_emits_keeps_the_views_equal),
	    cmocka_unit_test(an_in_memory_bus_publishes_only_what_commits_too),
	};

	return cmocka_run_group_tests_name("publish what commits", tests, NULL,
					   NULL);
}
