/* SPDX-License-Identifier: MIT */
/*
 * test_writer.c - the writer thread: jobs, group commit, publish after
 * commit, completion, misuse from and around jobs.
 */
#include "fixture.h"

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

/* One completion event with partition key 7; its id to *arg. */
static int
job_emit(litebus_tx *tx, void *arg)
{
	struct fx_emit e = {
	    .channel = LITEBUS_COMPLETION, .partition_key = 7, .ids = arg};

	return fx_emit_job(tx, &e);
}

/* Contract, litebus_exec(): "wait until its transaction has committed and
 * its events are published." */
static void
exec_returns_after_commit_and_publish(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	litebus_event ev;
	int64_t id = 0;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_exec(f->bus, job_emit, &id), 0);
	assert_true(id > 0);
	/* Published before exec returned: a poll finds it. */
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_OK);
	assert_int_equal(ev.event_id, id);
	assert_int_equal(ev.partition_key, 7);
	assert_int_equal(ev.channel, LITEBUS_COMPLETION);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
	litebus_unsubscribe(sub);
}

/* Contract: "returning non-zero rolls the job back and that value reaches
 * the submitter"; a rolled-back job publishes nothing. */
static void
rolled_back_job_publishes_nothing(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	litebus_event ev;
	int64_t id = 0;
	struct fx_emit fail = {.channel = LITEBUS_COMPLETION,
			       .partition_key = 1,
			       .ids = &id,
			       .fail = true};

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_exec(f->bus, fx_emit_job, &fail), JOB_FAILED);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
	litebus_unsubscribe(sub);
}

/* A failed job's ids are handed out again, so committed ids stay dense
 * and increasing. */
static void
ids_of_a_rolled_back_job_are_reused_by_the_next_commit(void **state)
{
	struct bus_fixture *f = *state;
	int64_t a = 0, b = 0, c = 0;
	struct fx_emit fail = {.channel = LITEBUS_COMPLETION,
			       .partition_key = 1,
			       .ids = &b,
			       .fail = true};

	assert_int_equal(litebus_exec(f->bus, job_emit, &a), 0);
	assert_int_equal(litebus_exec(f->bus, fx_emit_job, &fail), JOB_FAILED);
	assert_int_equal(litebus_exec(f->bus, job_emit, &c), 0);
	assert_int_equal(b, a + 1);
	assert_int_equal(c, a + 1);
}

/* Group commit: one failing job in a batch is rolled back alone. */
struct batch_job {
	int fail;
	int64_t id;
	int status;
	int done_calls;
	int calls;	 /* writer thread; read after the last exec returned */
	const char *sql; /* run this instead of emitting, if set */
};

static int
batch_job_fn(litebus_tx *tx, void *arg)
{
	struct batch_job *j = arg;
	struct fx_emit e = {.channel = LITEBUS_COMPLETION,
			    .partition_key = j->fail ? -1 : 1,
			    .ids = &j->id,
			    .fail = j->fail != 0};

	j->calls++;
	if (j->sql != NULL)
		return fx_sql_job(tx, (void *)j->sql);
	return fx_emit_job(tx, &e);
}

static void
batch_job_done(int status, void *arg)
{
	struct batch_job *j = arg;

	j->status = status;
	j->done_calls++;
}

/* Submit jobs[0, n) while a blocker holds the writer, so that they form
 * one batch, then exec one more job behind them: when it returns, they
 * are all done. */
static void
run_held_batch(struct bus_fixture *f, struct batch_job *jobs, int n)
{
	struct fx_barrier b;
	struct fx_exec blocker;
	pthread_t t;

	fx_barrier_init(&b, 2);
	blocker = (struct fx_exec){f->bus, fx_block_job, &b, -1};
	assert_int_equal(pthread_create(&t, NULL, fx_exec_main, &blocker), 0);
	fx_barrier_wait(&b); /* the writer is inside fx_block_job */
	for (int i = 0; i < n; i++) {
		jobs[i].status = -99;
		assert_int_equal(litebus_submit(f->bus, batch_job_fn, &jobs[i],
						batch_job_done, &jobs[i]),
				 LITEBUS_OK);
	}
	fx_barrier_wait(&b); /* release: the n jobs form the next batch */
	pthread_join(t, NULL);
	assert_int_equal(blocker.rc, 0);
	/* exec queues behind the n, so when it returns they are done. */
	assert_int_equal(litebus_exec(f->bus, job_emit, &(int64_t){0}), 0);
	fx_barrier_destroy(&b);
}

static void
one_failing_job_in_a_batch_rolls_back_alone(void **state)
{
	struct bus_fixture *f = *state;
	struct batch_job jobs[9] = {{0}};
	litebus_sub *sub;
	litebus_event ev;
	litebus_stats st0, st1;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_stats_get(f->bus, &st0), LITEBUS_OK);
	for (int i = 0; i < 9; i++)
		jobs[i].fail = i == 4;
	run_held_batch(f, jobs, 9);

	assert_int_equal(litebus_stats_get(f->bus, &st1), LITEBUS_OK);
	/* `jobs` counts runs: the blocker, jobs 0-4 without savepoints
	 * (writer.c, W9), 0-3 again and 5-8 with them, the last exec (in
	 * that transaction or its own): group commit ran them in at most 4
	 * transactions, 2 or 3 of which committed. */
	assert_int_equal(st1.jobs - st0.jobs, 15);
	assert_in_range(st1.batches - st0.batches, 3, 4);
	assert_in_range(st1.commits - st0.commits, 2, 3);
	for (int i = 0; i < 9; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_int_equal(jobs[i].status, i == 4 ? JOB_FAILED : 0);
	}
	/* Eight events of the batch, in queue order, then the last exec. */
	for (int i = 0; i < 9; i++) {
		if (i == 4)
			continue;
		assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(ev.event_id, jobs[i].id);
		assert_int_equal(ev.partition_key, 1);
	}
	assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	assert_int_equal(fx_count_rows(f->path, "completion"), 9);
	litebus_unsubscribe(sub);
}

/* Contract: "A job may be *called* more than once, and commits at most
 * once.  When a job fails (it returns non-zero, ...) ... the jobs of its
 * batch that ran before it and had succeeded may be run again in a new
 * transaction." */
static void
mates_of_a_failing_job_may_be_called_again_but_commit_once(void **state)
{
	struct bus_fixture *f = *state;
	struct batch_job jobs[9] = {{0}};

	for (int i = 0; i < 9; i++)
		jobs[i].fail = i == 4;
	run_held_batch(f, jobs, 9);
	/* A fresh bus runs its first batches without savepoints (W9): the
	 * failure of job 4 abandons the transaction, 0-3 run again. */
	for (int i = 0; i < 9; i++) {
		assert_int_equal(jobs[i].calls, i < 4 ? 2 : 1);
		assert_int_equal(jobs[i].done_calls, 1);
		assert_int_equal(jobs[i].status, i == 4 ? JOB_FAILED : 0);
		if (i > 0 && i != 4 && i != 5)
			assert_int_equal(jobs[i].id, jobs[i - 1].id + 1);
	}
	assert_int_equal(jobs[5].id, jobs[3].id + 1);
	/* One row each for the 8 and the last exec: nothing twice. */
	assert_int_equal(fx_count_rows(f->path, "completion"), 9);
}

/* writer.c, W9: after a failure, the next batches give each job its own
 * savepoint, so a failing job no longer makes its mates run again. */
static void
after_a_failure_the_next_batch_calls_each_job_once(void **state)
{
	struct bus_fixture *f = *state;
	struct batch_job first[3] = {{0}}, next[9] = {{0}};

	first[1].fail = 1;
	run_held_batch(f, first, 3);
	assert_int_equal(first[0].calls, 2);
	for (int i = 0; i < 9; i++)
		next[i].fail = i == 4;
	run_held_batch(f, next, 9);
	for (int i = 0; i < 9; i++) {
		assert_int_equal(next[i].calls, 1);
		assert_int_equal(next[i].status, i == 4 ? JOB_FAILED : 0);
	}
	assert_int_equal(fx_count_rows(f->path, "completion"), 2 + 1 + 8 + 1);
}

/* Contract: "its own SAVEPOINTs with ROLLBACK TO and RELEASE" are
 * allowed; one left open goes with the batch's COMMIT (writer.c, W9),
 * the work inside it included. */
static void
a_savepoint_a_job_leaves_open_commits_with_its_batch(void **state)
{
	struct bus_fixture *f = *state;
	struct batch_job jobs[3] = {{0}};

	assert_int_equal(fx_exec_sql(f->bus, "CREATE TABLE app(x)"), 0);
	jobs[0].sql = "SAVEPOINT mine; INSERT INTO app VALUES (1)";
	jobs[2].sql = "INSERT INTO app VALUES (2)";
	run_held_batch(f, jobs, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(jobs[i].status, 0);
		assert_int_equal(jobs[i].calls, 1);
	}
	assert_true(jobs[1].id > 0);
	assert_int_equal(fx_count_rows(f->path, "completion"), 2);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT count(*) FROM app"), 2);
}

/* Contract: exec "EDEADLK on the writer thread (a job or a callback
 * calling exec)". */
static int
job_calls_exec(litebus_tx *tx, void *arg)
{
	litebus *bus = arg;

	(void)tx;
	return litebus_exec(bus, job_emit, &(int64_t){0});
}

static void
exec_from_inside_a_job_is_refused_with_edeadlk(void **state)
{
	struct bus_fixture *f = *state;

	assert_int_equal(litebus_exec(f->bus, job_calls_exec, f->bus),
			 LITEBUS_EDEADLK);
	/* The bus still works. */
	assert_int_equal(litebus_exec(f->bus, job_emit, &(int64_t){0}), 0);
}

static int
job_calls_close(litebus_tx *tx, void *arg)
{
	(void)tx;
	return litebus_close(arg);
}

static void
close_from_inside_a_job_is_refused_with_edeadlk(void **state)
{
	struct bus_fixture *f = *state;

	assert_int_equal(litebus_exec(f->bus, job_calls_close, f->bus),
			 LITEBUS_EDEADLK);
	assert_int_equal(litebus_exec(f->bus, job_emit, &(int64_t){0}), 0);
}

/* A done-callback may submit further jobs; exec from it is refused. */
struct chain {
	litebus *bus;
	int exec_rc;
	int submit_rc;
	int second_done;
	int64_t id;
};

static void
chain_second_done(int status, void *arg)
{
	struct chain *c = arg;

	assert_int_equal(status, 0);
	c->second_done++;
}

static void
chain_first_done(int status, void *arg)
{
	struct chain *c = arg;

	assert_int_equal(status, 0);
	c->exec_rc = litebus_exec(c->bus, job_emit, &c->id);
	c->submit_rc =
	    litebus_submit(c->bus, job_emit, &c->id, chain_second_done, c);
}

static void
done_callback_may_submit_but_not_exec(void **state)
{
	struct bus_fixture *f = *state;
	struct chain c = {f->bus, 1, 1, 0, 0};
	int64_t id;

	assert_int_equal(
	    litebus_submit(f->bus, job_emit, &id, chain_first_done, &c),
	    LITEBUS_OK);
	/* Two more round trips: both chained jobs have completed. */
	assert_int_equal(litebus_exec(f->bus, job_emit, &id), 0);
	assert_int_equal(litebus_exec(f->bus, job_emit, &id), 0);
	assert_int_equal(c.exec_rc, LITEBUS_EDEADLK);
	assert_int_equal(c.submit_rc, LITEBUS_OK);
	assert_int_equal(c.second_done, 1);
}

/* Contract, litebus_emit(): "EMISUSE (outside a job ...)". */
static litebus_tx *saved_tx;

static int
job_saves_tx(litebus_tx *tx, void *arg)
{
	(void)arg;
	saved_tx = tx;
	assert_non_null(litebus_tx_db(tx));
	return 0;
}

static void
emit_outside_a_job_is_misuse(void **state)
{
	struct bus_fixture *f = *state;
	litebus_record rec = {0};

	rec.event_type = "success";
	assert_int_equal(litebus_exec(f->bus, job_saves_tx, NULL), 0);
	assert_int_equal(litebus_emit(saved_tx, LITEBUS_COMPLETION, &rec, NULL),
			 LITEBUS_EMISUSE);
	assert_null(litebus_tx_db(saved_tx));
	assert_int_equal(litebus_emit(NULL, LITEBUS_COMPLETION, &rec, NULL),
			 LITEBUS_EINVAL);
}

/* Contract: "EEVENTTYPE (type not allowed on a built-in channel)", and
 * bad records are EINVAL; nothing is appended. */
struct emit_case {
	int channel;
	litebus_record rec;
	int want;
};

static int
job_emit_case(litebus_tx *tx, void *arg)
{
	struct emit_case *c = arg;

	return litebus_emit(tx, c->channel, &c->rec, NULL);
}

static void
emit_rejects_bad_records_and_unknown_types(void **state)
{
	struct bus_fixture *f = *state;
	struct emit_case cases[] = {
	    {LITEBUS_COMPLETION, {.event_type = "renewed"}, LITEBUS_EEVENTTYPE},
	    {LITEBUS_LEASE_HISTORY,
	     {.event_type = "success"},
	     LITEBUS_EEVENTTYPE},
	    {LITEBUS_OPERATOR_EVENT,
	     {.event_type = "bogus"},
	     LITEBUS_EEVENTTYPE},
	    {LITEBUS_COMPLETION, {.event_type = NULL}, LITEBUS_EINVAL},
	    {LITEBUS_SIGNAL_DELIVERY, {.event_type = ""}, LITEBUS_EINVAL},
	    {LITEBUS_STREAM_FRAME,
	     {.event_type = "x", .subject_len = 3},
	     LITEBUS_EINVAL},
	    {LITEBUS_STREAM_FRAME,
	     {.event_type = "x", .payload_len = 3},
	     LITEBUS_EINVAL},
	    {99, {.event_type = "x"}, LITEBUS_ENOCHANNEL},
	    {-1, {.event_type = "x"}, LITEBUS_ENOCHANNEL},
	    {LITEBUS_SIGNAL_DELIVERY, {.event_type = "anything"}, LITEBUS_OK},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = litebus_exec(f->bus, job_emit_case, &cases[i]);
		if (rc != cases[i].want)
			fail_msg("case %zu: got %s, want %s (%s)", i,
				 litebus_errname(rc),
				 litebus_errname(cases[i].want),
				 litebus_last_errmsg());
	}
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
	assert_int_equal(fx_count_rows(f->path, "signal_delivery"), 1);
	assert_int_equal(litebus_exec(NULL, job_emit, NULL), LITEBUS_EINVAL);
	assert_int_equal(litebus_exec(f->bus, NULL, NULL), LITEBUS_EINVAL);
	assert_int_equal(litebus_submit(f->bus, NULL, NULL, NULL, NULL),
			 LITEBUS_EINVAL);
}

/* A job may not end litebus's transaction or write the outbox directly:
 * the authorizer refuses, and the batch is unharmed. */
static int
job_tries_commit(litebus_tx *tx, void *arg)
{
	int *rc = arg;
	sqlite3 *db = litebus_tx_db(tx);

	rc[0] = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	rc[1] = sqlite3_exec(db, "RELEASE litebus_job", NULL, NULL, NULL);
	rc[2] =
	    sqlite3_exec(db,
			 "INSERT INTO litebus_outbox_completion VALUES"
			 "(999, 0, NULL, 'success', NULL, NULL, NULL, 0, 0)",
			 NULL, NULL, NULL);
	rc[3] = sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS mine(x)", NULL,
			     NULL, NULL);
	rc[4] =
	    sqlite3_exec(db, "INSERT INTO mine VALUES(1)", NULL, NULL, NULL);
	return fx_emit_job(tx, &(struct fx_emit){.channel = LITEBUS_COMPLETION,
						 .partition_key = 3});
}

static void
a_job_cannot_end_the_transaction_or_forge_outbox_rows(void **state)
{
	struct bus_fixture *f = *state;
	int rc[5];

	int st = litebus_exec(f->bus, job_tries_commit, rc);
	if (st != 0)
		fail_msg("exec: %s: %s", litebus_errname(st),
			 litebus_last_errmsg());
	assert_int_equal(rc[0], SQLITE_AUTH);
	assert_int_equal(rc[1], SQLITE_AUTH);
	assert_int_equal(rc[2], SQLITE_AUTH);
	assert_int_equal(rc[3], SQLITE_OK);
	assert_int_equal(rc[4], SQLITE_OK);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
}

/* Contract, litebus_close(): queued jobs still run; later ones get
 * ECLOSED; a subscriber outliving the bus reports CLOSED. */
static int
slow_job(litebus_tx *tx, void *arg)
{
	struct fx_barrier *b = arg;

	(void)tx;
	fx_barrier_wait(b);
	return 0;
}

/* Counts its runs; writer thread only, read after close joined it. */
static int
job_noop(litebus_tx *tx, void *arg)
{
	(void)tx;
	(*(int *)arg)++;
	return 0;
}

struct close_arg {
	litebus *bus;
	int rc;
};

static void *
close_thread(void *p)
{
	struct close_arg *a = p;

	a->rc = litebus_close(a->bus);
	return NULL;
}

static void
close_runs_queued_jobs_and_refuses_new_ones(void **state)
{
	struct bus_fixture *f = *state;
	struct batch_job jobs[5] = {{0}};
	struct fx_barrier b;
	struct close_arg ca = {f->bus, -1};
	pthread_t t;
	litebus_sub *sub;
	litebus_event ev;
	int got = 0, accepted = 0;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	fx_barrier_init(&b, 2);
	assert_int_equal(litebus_submit(f->bus, slow_job, &b, NULL, NULL),
			 LITEBUS_OK);
	for (int i = 0; i < 5; i++)
		assert_int_equal(litebus_submit(f->bus, batch_job_fn, &jobs[i],
						batch_job_done, &jobs[i]),
				 LITEBUS_OK);
	assert_int_equal(pthread_create(&t, NULL, close_thread, &ca), 0);
	/* Wait (bounded) until close has begun refusing jobs. */
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
	int rc;
	/* Probe with jobs that emit nothing, so however many are accepted
	 * before close begins, the ring holds the five events. */
	while ((rc = litebus_submit(f->bus, job_noop, &got, NULL, NULL)) ==
	       LITEBUS_OK) {
		if (fx_now_ms() > deadline)
			fail_msg("close never began refusing jobs");
		accepted++; /* accepted before close began: must run */
	}
	assert_int_equal(rc, LITEBUS_ECLOSED);
	fx_barrier_wait(&b); /* let the slow job finish */
	pthread_join(t, NULL);
	assert_int_equal(ca.rc, LITEBUS_OK);
	f->bus = NULL; /* closed */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_int_equal(jobs[i].status, 0);
	}
	assert_int_equal(got, accepted); /* W3: every accepted job ran */
	for (int i = 0; i < 5; i++)
		assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS),
				 LITEBUS_OK);
	assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_CLOSED);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_CLOSED);
	litebus_unsubscribe(sub);
	fx_barrier_destroy(&b);
}

/* An application trigger is held to the job's rules: it may not write the
 * outbox for the job, and no trigger may be put on litebus's tables. */
static int
job_plants_triggers(litebus_tx *tx, void *arg)
{
	int *rc = arg;
	sqlite3 *db = litebus_tx_db(tx);

	rc[0] = sqlite3_exec(db,
			     "CREATE TABLE t(x);"
			     "CREATE TRIGGER forge AFTER INSERT ON t BEGIN "
			     "INSERT INTO litebus_outbox_completion VALUES"
			     "(999, 0, NULL, 'success', NULL, NULL, NULL, 0, "
			     "0); END;",
			     NULL, NULL, NULL);
	rc[1] = sqlite3_exec(db, "INSERT INTO t VALUES(1)", NULL, NULL, NULL);
	rc[2] = sqlite3_exec(db,
			     "CREATE TRIGGER spy AFTER INSERT ON "
			     "litebus_outbox_completion BEGIN SELECT 1; END;",
			     NULL, NULL, NULL);
	return 0;
}

static void
an_application_trigger_cannot_write_the_outbox(void **state)
{
	struct bus_fixture *f = *state;
	int rc[3];

	assert_int_equal(litebus_exec(f->bus, job_plants_triggers, rc), 0);
	assert_int_equal(rc[0], SQLITE_OK);   /* a trigger on its own table */
	assert_int_equal(rc[1], SQLITE_AUTH); /* that would forge a row */
	assert_int_equal(rc[2], SQLITE_AUTH); /* on litebus's table */
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
}

/* A subscriber keeps the bus's memory: calls after close answer ECLOSED. */
static void
calls_after_close_answer_eclosed_while_a_handle_lives(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub, *sub2;
	litebus *bus = f->bus;

	assert_int_equal(litebus_subscribe(bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	f->bus = NULL;
	assert_int_equal(litebus_exec(bus, job_emit, NULL), LITEBUS_ECLOSED);
	assert_int_equal(litebus_submit(bus, job_emit, NULL, NULL, NULL),
			 LITEBUS_ECLOSED);
	assert_int_equal(litebus_subscribe(bus, LITEBUS_COMPLETION, &sub2),
			 LITEBUS_ECLOSED);
	assert_null(sub2);
	litebus_unsubscribe(sub);
}

/* Another connection holding the write lock: the batch waits up to the
 * busy timeout, then fails with EBUSY; nothing of it is committed, and the
 * bus works once the lock is released. */
static void
a_foreign_write_lock_fails_the_batch_with_ebusy_then_heals(void **state)
{
	struct bus_fixture *f = *state;
	sqlite3 *other;
	litebus_stats st;
	int64_t id = 0;

	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->opts.busy_timeout_ms = 100;
	fx_open(f);
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(litebus_exec(f->bus, job_emit, &id), LITEBUS_EBUSY);
	assert_non_null(strstr(litebus_last_errmsg(), "locked"));
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(litebus_exec(f->bus, job_emit, &id), 0);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
	assert_int_equal(litebus_stats_get(f->bus, &st), LITEBUS_OK);
	assert_true(st.busy_retries > 0);
	sqlite3_close(other);
}

/* Rows written by another connection are seen: ids stay above them. */
static void
ids_stay_above_rows_committed_by_another_connection(void **state)
{
	struct bus_fixture *f = *state;
	sqlite3 *other;
	int64_t id = 0;

	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(other,
			 "INSERT INTO litebus_outbox_completion VALUES"
			 "(500, 0, NULL, 'success', NULL, NULL, NULL, 0, 0)",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(other);
	assert_int_equal(litebus_exec(f->bus, job_emit, &id), 0);
	assert_int_equal(id, 501);
}

/* event_id order is commit order: several producers, one subscriber. */
struct producer {
	litebus *bus;
	struct fx_barrier *start;
	int count;
	int64_t *ids;
};

static void *
producer_thread(void *p)
{
	struct producer *a = p;

	fx_barrier_wait(a->start);
	for (int i = 0; i < a->count; i++)
		assert_int_equal(litebus_exec(a->bus, job_emit, &a->ids[i]), 0);
	return NULL;
}

static void
event_ids_follow_commit_order_across_producers(void **state)
{
	struct bus_fixture *f = *state;
	enum { P = 4, N = 300 };
	static int64_t ids[P][N];
	struct producer prod[P];
	pthread_t t[P];
	struct fx_barrier start;
	litebus_reader *r;
	litebus_row row;
	int64_t last = 0;

	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	fx_barrier_init(&start, P);
	for (int p = 0; p < P; p++) {
		prod[p] = (struct producer){f->bus, &start, N, ids[p]};
		assert_int_equal(
		    pthread_create(&t[p], NULL, producer_thread, &prod[p]), 0);
	}
	for (int p = 0; p < P; p++)
		pthread_join(t[p], NULL);
	/* Each producer's own ids increase (its jobs commit in order)... */
	for (int p = 0; p < P; p++)
		for (int i = 1; i < N; i++)
			assert_true(ids[p][i] > ids[p][i - 1]);
	/* ...and the table holds exactly 1..P*N, read back in order, with
	 * committed_at never going backwards. */
	int64_t last_ms = 0;
	for (int i = 0; i < P * N; i++) {
		assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(row.event_id, last + 1);
		assert_true(row.committed_at_ms >= last_ms);
		last = row.event_id;
		last_ms = row.committed_at_ms;
	}
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	litebus_reader_close(r);
	fx_barrier_destroy(&start);
}

/* A job whose transaction SQLite rolls back underneath it (SQLITE_FULL,
 * IOERR, NOMEM or INTERRUPT on a write statement end the whole
 * transaction).  The progress handler interrupts one statement: a
 * deterministic stand-in for a full disk. */
static int
interrupt_now(void *arg)
{
	(void)arg;
	return 1;
}

/* Run a write statement that SQLite interrupts: the batch's transaction
 * is rolled back by SQLite itself (documented for SQLITE_INTERRUPT on a
 * write statement inside an explicit transaction). */
static int premise_ok = 1; /* set on the writer, read after exec/done */

static void
lose_the_transaction(sqlite3 *db)
{
	sqlite3_progress_handler(db, 1, interrupt_now, NULL);
	int rc = sqlite3_exec(db,
			      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
			      "SELECT x + 1 FROM c LIMIT 100) "
			      "INSERT INTO t SELECT x FROM c",
			      NULL, NULL, NULL);
	sqlite3_progress_handler(db, 0, NULL, NULL);
	/* The premise: the batch's transaction is gone.  (No cmocka assert
	 * here: this runs on the writer thread.) */
	if ((rc & 0xff) != SQLITE_INTERRUPT || !sqlite3_get_autocommit(db))
		premise_ok = 0;
}

static int
lt_job_create_table(litebus_tx *tx, void *arg)
{
	(void)arg;
	return sqlite3_exec(litebus_tx_db(tx), "CREATE TABLE t(x)", NULL, NULL,
			    NULL) == SQLITE_OK
		   ? 0
		   : JOB_FAILED;
}

struct lost_then_emit {
	int emit_rc;
	int64_t id;
};

/* The job meets a failed statement (as it would on a full disk), goes on
 * as the contract allows, and emits a "failed" event. */
static int
job_lose_tx_then_emit(litebus_tx *tx, void *arg)
{
	struct lost_then_emit *s = arg;

	lose_the_transaction(litebus_tx_db(tx));
	s->emit_rc = fx_emit_one_job(tx, &s->id);
	return 0;
}

/* Contract, litebus_exec(): a batch error returns "with nothing of the job
 * committed or published"; litebus_emit(): "After an error nothing was
 * appended; the job may go on".  W4: next_id is restored to the first id
 * not committed. */
static void
emit_after_sqlite_rolled_back_the_transaction_commits_nothing(void **state)
{
	struct bus_fixture *f = *state;
	struct lost_then_emit s = {0, 0};
	int64_t id = 0;
	int rc;

	assert_int_equal(litebus_exec(f->bus, lt_job_create_table, NULL), 0);
	rc = litebus_exec(f->bus, job_lose_tx_then_emit, &s);
	assert_true(premise_ok);
	assert_true(rc < 0);
	int64_t rows = fx_count_rows(f->path, "completion");
	/* And later jobs can still emit (the id was not left taken). */
	rc = litebus_exec(f->bus, job_emit, &id);
	print_message("emit after the loss: %s; rows after the failed job: "
		      "%lld; next exec: %s (%s)\n",
		      litebus_errname(s.emit_rc), (long long)rows,
		      litebus_errname(rc), rc < 0 ? litebus_last_errmsg() : "");
	assert_int_equal(rows, 0);
	assert_int_equal(rc, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(litebus_exec(f->bus, job_emit, &id), 0);
	assert_true(s.emit_rc != LITEBUS_OK);
}

/* ---------------------------------------------------------------- */

struct lt_gate {
	sem_t started, release;
};

static int
lt_job_gate(litebus_tx *tx, void *arg)
{
	struct lt_gate *g = arg;

	(void)tx;
	sem_post(&g->started);
	while (sem_wait(&g->release) != 0)
		;
	return 0;
}

static int
job_lose_tx_and_fail(litebus_tx *tx, void *arg)
{
	(void)arg;
	lose_the_transaction(litebus_tx_db(tx));
	return JOB_FAILED; /* its own code, for its own submitter */
}

struct lt_done_rec {
	sem_t done;
	int status;
};

static void
lt_on_done(int status, void *arg)
{
	struct lt_done_rec *d = arg;

	d->status = status;
	sem_post(&d->done);
}

/* Contract, "What a job may do": "A job may be *called* more than once,
 * and commits at most once.  When a statement of one job makes SQLite
 * roll back the whole transaction ..., that job fails with its own
 * status, and the jobs of its batch that ran before it and had succeeded
 * are run again in a new transaction."  A committed its savepoint, then B
 * (same batch) lost the transaction: A runs again, commits once, and B
 * keeps its own value. */
struct rerun_arg {
	int calls;
	int64_t id;
};

static int
job_emit_counting(litebus_tx *tx, void *arg)
{
	struct rerun_arg *r = arg;

	r->calls++;
	return fx_emit_one_job(tx, &r->id);
}

static void
batch_mate_of_a_job_that_lost_the_transaction_runs_again_and_commits_once(
    void **state)
{
	struct bus_fixture *f = *state;
	struct lt_gate g;
	struct lt_done_rec a, b;
	struct rerun_arg ra = {0, 0};
	litebus_reader *r;
	litebus_row row;

	assert_int_equal(litebus_exec(f->bus, lt_job_create_table, NULL), 0);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	sem_init(&g.started, 0, 0);
	sem_init(&g.release, 0, 0);
	sem_init(&a.done, 0, 0);
	sem_init(&b.done, 0, 0);
	/* Hold the writer so that A and B queue up and share one batch. */
	assert_int_equal(litebus_submit(f->bus, lt_job_gate, &g, NULL, NULL),
			 LITEBUS_OK);
	sem_wait(&g.started);
	assert_int_equal(
	    litebus_submit(f->bus, job_emit_counting, &ra, lt_on_done, &a),
	    LITEBUS_OK);
	assert_int_equal(
	    litebus_submit(f->bus, job_lose_tx_and_fail, NULL, lt_on_done, &b),
	    LITEBUS_OK);
	sem_post(&g.release);
	sem_wait(&a.done);
	sem_wait(&b.done);
	assert_true(premise_ok);
	assert_int_equal(b.status, JOB_FAILED);
	assert_int_equal(a.status, 0);
	assert_int_equal(ra.calls, 2); /* called twice, committed once */
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(row.event_id, ra.id);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	litebus_reader_close(r);
}

/* litebus_tx_db() from another thread: NULL, and no data race. */
static _Atomic(litebus_tx *) leaked_tx;
static atomic_int td_stop;

static int
job_leak_tx(litebus_tx *tx, void *arg)
{
	(void)arg;
	/* Release/acquire: the tx pointer itself is handed over cleanly. */
	atomic_store_explicit(&leaked_tx, tx, memory_order_release);
	return 0;
}

static void *
prober_main(void *arg)
{
	litebus_tx *tx = atomic_load_explicit(&leaked_tx, memory_order_acquire);
	long *non_null = arg;

	while (!atomic_load_explicit(&td_stop, memory_order_relaxed))
		if (litebus_tx_db(tx) != NULL)
			(*non_null)++;
	return NULL;
}

static void
tx_db_on_another_thread_returns_null_without_a_race(void **state)
{
	struct bus_fixture *f = *state;
	pthread_t t;
	long non_null = 0;

	assert_int_equal(litebus_exec(f->bus, job_leak_tx, NULL), 0);
	assert_int_equal(pthread_create(&t, NULL, prober_main, &non_null), 0);
	/* The writer flips tx->active around every job meanwhile. */
	for (int i = 0; i < 2000; i++)
		assert_int_equal(litebus_exec(f->bus, fx_noop_job, NULL), 0);
	atomic_store_explicit(&td_stop, 1, memory_order_relaxed);
	pthread_join(t, NULL);
	assert_int_equal(non_null, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(exec_returns_after_commit_and_publish),
	    FX_TEST_TINY(rolled_back_job_publishes_nothing),
	    FX_TEST_TINY(
		ids_of_a_rolled_back_job_are_reused_by_the_next_commit),
	    FX_TEST_DEFAULT(one_failing_job_in_a_batch_rolls_back_alone),
	    FX_TEST_DEFAULT(
		mates_of_a_failing_job_may_be_called_again_but_commit_once),
	    FX_TEST_DEFAULT(after_a_failure_the_next_batch_calls_each_job_once),
	    FX_TEST_DEFAULT(
		a_savepoint_a_job_leaves_open_commits_with_its_batch),
	    FX_TEST_TINY(exec_from_inside_a_job_is_refused_with_edeadlk),
	    FX_TEST_TINY(close_from_inside_a_job_is_refused_with_edeadlk),
	    FX_TEST_TINY(done_callback_may_submit_but_not_exec),
	    FX_TEST_TINY(emit_outside_a_job_is_misuse),
	    FX_TEST_TINY(emit_rejects_bad_records_and_unknown_types),
	    FX_TEST_TINY(a_job_cannot_end_the_transaction_or_forge_outbox_rows),
	    FX_TEST_TINY(an_application_trigger_cannot_write_the_outbox),
	    FX_TEST_DEFAULT(close_runs_queued_jobs_and_refuses_new_ones),
	    FX_TEST_TINY(calls_after_close_answer_eclosed_while_a_handle_lives),
	    FX_TEST_TINY(
		a_foreign_write_lock_fails_the_batch_with_ebusy_then_heals),
	    FX_TEST_TINY(ids_stay_above_rows_committed_by_another_connection),
	    FX_TEST_TINY(event_ids_follow_commit_order_across_producers),
	    FX_TEST_TINY(
		emit_after_sqlite_rolled_back_the_transaction_commits_nothing),
	    FX_TEST_TINY(
		batch_mate_of_a_job_that_lost_the_transaction_runs_again_and_commits_once),
	    FX_TEST_TINY(tx_db_on_another_thread_returns_null_without_a_race),
	};

	return cmocka_run_group_tests_name("writer", tests, NULL, NULL);
}
