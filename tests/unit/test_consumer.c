/* SPDX-License-Identifier: MIT */
/*
 * test_consumer.c - durable consumers (lib/consumer.c): where a new and an
 * existing consumer start, resume after close at the last durable ack,
 * ack coalescing, ack_tx in the job's transaction, one handle per name
 * (in this process and in another), list, stats, delete, misuse, and the
 * README's consume-process-ack example.
 *
 * Crashes (SIGKILL between effect and ack) are in
 * tests/reliability/test_consumer_crash.c.
 */
#include "fixture.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define CH LITEBUS_COMPLETION

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static litebus_consumer *
cons_open(litebus *bus, int channel, const char *name, int64_t start)
{
	litebus_consumer *c = NULL;
	int rc = litebus_consumer_open(bus, channel, name, start, NULL, &c);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_consumer_open(%s): %s: %s", name,
			 litebus_errname(rc), litebus_last_errmsg());
	return c;
}

static void
expect_next(litebus_consumer *c, int64_t id)
{
	litebus_row row;
	int rc = litebus_consumer_next(c, &row, FX_WAIT_MS);

	if (rc != LITEBUS_OK)
		fail_msg("expected row %lld: %s: %s", (long long)id,
			 litebus_errname(rc), litebus_last_errmsg());
	assert_int_equal(row.event_id, id);
}

static void
expect_nothing(litebus_consumer *c)
{
	litebus_row row;

	assert_int_equal(litebus_consumer_next(c, &row, 0), LITEBUS_TIMEOUT);
}

static litebus_consumer_info
cons_info(litebus_consumer *c)
{
	litebus_consumer_info info;
	int rc = litebus_consumer_stats_get(c, &info);

	if (rc != LITEBUS_OK)
		fail_msg("stats_get: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
	return info;
}

/* The stored position as another connection reads it. */
static int64_t
stored_position(const char *path, const char *name)
{
	char sql[200];

	snprintf(sql, sizeof sql,
		 "SELECT coalesce((SELECT position FROM litebus_consumer WHERE "
		 "name = '%s'), -1)",
		 name);
	return fx_sql_int_at(path, sql);
}

static litebus_stats
stats_of(litebus *bus)
{
	litebus_stats st;

	assert_int_equal(litebus_stats_get(bus, &st), LITEBUS_OK);
	return st;
}

/* ------------------------------------------------------------------ */
/* Where a consumer starts                                             */

/* Contract: "If the name is new on this channel it is created, starting
 * at `start`: LITEBUS_FROM_START, ..." */
static void
a_new_consumer_from_start_gets_every_committed_row(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[20];
	litebus_consumer *c;

	commit_events(f->bus, CH, 20, ids);
	c = cons_open(f->bus, CH, "all", LITEBUS_FROM_START);
	for (int i = 0; i < 20; i++)
		expect_next(c, ids[i]);
	expect_nothing(c);
	assert_int_equal(litebus_consumer_cursor(c), ids[19]);
	litebus_consumer_close(c);
}

/* Contract: "LITEBUS_FROM_NOW (after the newest committed row) ...
 * otherwise `start` is ignored and delivery resumes right after the last
 * durably acknowledged event_id." */
static void
from_now_starts_after_the_newest_row_and_an_existing_name_ignores_start(
    void **state)
{
	struct bus_fixture *f = *state;
	int64_t old[5], fresh[3];
	litebus_consumer *c;

	commit_events(f->bus, CH, 5, old);
	c = cons_open(f->bus, CH, "tail", LITEBUS_FROM_NOW);
	assert_int_equal(cons_info(c).position, old[4]);
	commit_events(f->bus, CH, 3, fresh);
	expect_next(c, fresh[0]);
	expect_next(c, fresh[1]);
	assert_int_equal(litebus_consumer_ack(c, fresh[0]), LITEBUS_OK);
	assert_int_equal(litebus_consumer_flush(c), LITEBUS_OK);
	litebus_consumer_close(c);

	/* FROM_START is ignored now: resume after fresh[0]. */
	c = cons_open(f->bus, CH, "tail", LITEBUS_FROM_START);
	expect_next(c, fresh[1]);
	expect_next(c, fresh[2]);
	expect_nothing(c);
	litebus_consumer_close(c);

	/* So is FROM_NOW. */
	c = cons_open(f->bus, CH, "tail", LITEBUS_FROM_NOW);
	expect_next(c, fresh[1]);
	litebus_consumer_close(c);
}

/* Contract: "... or an event_id to start after". */
static void
a_new_consumer_may_start_after_a_given_event_id(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[6];
	litebus_consumer *c;

	commit_events(f->bus, CH, 6, ids);
	c = cons_open(f->bus, CH, "mid", ids[2]);
	assert_int_equal(cons_info(c).position, ids[2]);
	expect_next(c, ids[3]);
	litebus_consumer_close(c);
}

/* Contract: "A new open resumes right after the last *durably*
 * acknowledged event_id, so rows delivered but not yet acknowledged
 * durably are delivered again". */
static void
reopen_resumes_right_after_the_last_durable_ack(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[10];
	litebus_consumer *c;

	commit_events(f->bus, CH, 10, ids);
	c = cons_open(f->bus, CH, "r", LITEBUS_FROM_START);
	for (int i = 0; i < 7; i++)
		expect_next(c, ids[i]);
	assert_int_equal(litebus_consumer_ack(c, ids[4]), LITEBUS_OK);
	litebus_consumer_close(c); /* makes the ack durable */
	assert_int_equal(stored_position(f->path, "r"), ids[4]);

	c = cons_open(f->bus, CH, "r", LITEBUS_FROM_START);
	for (int i = 5; i < 10; i++) /* 5 and 6 again, nothing before */
		expect_next(c, ids[i]);
	expect_nothing(c);
	litebus_consumer_close(c);
}

/* The position survives closing and reopening the bus (it is in the
 * file, not in memory). */
static void
the_position_survives_reopening_the_database(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[4];
	litebus_consumer *c;

	commit_events(f->bus, CH, 4, ids);
	c = cons_open(f->bus, CH, "keep", LITEBUS_FROM_START);
	expect_next(c, ids[0]);
	expect_next(c, ids[1]);
	assert_int_equal(litebus_consumer_ack(c, ids[1]), LITEBUS_OK);
	litebus_consumer_close(c);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	fx_open(f);
	c = cons_open(f->bus, CH, "keep", LITEBUS_FROM_START);
	expect_next(c, ids[2]);
	litebus_consumer_close(c);
}

/* ------------------------------------------------------------------ */
/* Acks                                                                */

/* Contract: "event_id must not be beyond what this handle has passed
 * (litebus_consumer_cursor()); an id at or below the position
 * acknowledged so far changes nothing.  Returns ... EINVAL (NULL,
 * event_id beyond the cursor)". */
static void
ack_beyond_the_cursor_is_einval_and_below_the_position_changes_nothing(
    void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[3];
	litebus_consumer *c;

	commit_events(f->bus, CH, 3, ids);
	c = cons_open(f->bus, CH, "a", LITEBUS_FROM_START);
	assert_int_equal(litebus_consumer_ack(c, ids[0]), LITEBUS_EINVAL);
	expect_next(c, ids[0]);
	assert_int_equal(litebus_consumer_ack(c, ids[1]), LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_ack(c, 0), LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_ack(c, -5), LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_ack(NULL, 1), LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_ack(c, ids[0]), LITEBUS_OK);
	expect_next(c, ids[1]);
	assert_int_equal(litebus_consumer_ack(c, ids[1]), LITEBUS_OK);
	assert_int_equal(litebus_consumer_ack(c, ids[0]), LITEBUS_OK);
	assert_int_equal(litebus_consumer_flush(c), LITEBUS_OK);
	assert_int_equal(cons_info(c).position, ids[1]);
	litebus_consumer_close(c);
}

/* Contract: "a consumer that acks every row costs no transaction of its
 * own" (acks are coalesced: at most one ack job per consumer is queued,
 * and the writer's group commit shares its transaction). */
static void
acking_every_row_of_ten_thousand_costs_far_fewer_jobs_and_transactions(
    void **state)
{
	struct bus_fixture *f = *state;
	enum { N = 10000 };
	litebus_consumer *c;
	litebus_stats before, after;
	litebus_row row;

	commit_batch(f->bus, CH, N, NULL);
	c = cons_open(f->bus, CH, "every", LITEBUS_FROM_START);
	before = stats_of(f->bus);
	for (int i = 0; i < N; i++) {
		assert_int_equal(litebus_consumer_next(c, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(litebus_consumer_ack(c, row.event_id),
				 LITEBUS_OK);
	}
	assert_int_equal(litebus_consumer_flush(c), LITEBUS_OK);
	after = stats_of(f->bus);
	print_message("10000 acks + flush: %llu jobs, %llu transactions\n",
		      (unsigned long long)(after.jobs - before.jobs),
		      (unsigned long long)(after.commits - before.commits));
	assert_true(after.jobs - before.jobs < N / 10);
	assert_true(after.commits - before.commits < N / 10);
	assert_int_equal(cons_info(c).position, row.event_id);
	litebus_consumer_close(c);
}

/* Contract: "litebus_consumer_flush() waits for it." */
static void
flush_makes_every_ack_so_far_durable(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[3];
	litebus_consumer *c;

	commit_events(f->bus, CH, 3, ids);
	c = cons_open(f->bus, CH, "fl", LITEBUS_FROM_START);
	expect_next(c, ids[0]);
	expect_next(c, ids[1]);
	assert_int_equal(litebus_consumer_ack(c, ids[1]), LITEBUS_OK);
	assert_int_equal(litebus_consumer_flush(c), LITEBUS_OK);
	assert_int_equal(stored_position(f->path, "fl"), ids[1]);
	litebus_consumer_close(c);
}

struct apply {
	litebus_consumer *c;
	int64_t event_id;
	bool fail;
	int ack_rc;
};

static int
apply_job(litebus_tx *tx, void *arg)
{
	struct apply *a = arg;
	char sql[100];

	snprintf(sql, sizeof sql, "INSERT INTO effects VALUES(%lld)",
		 (long long)a->event_id);
	if (sqlite3_exec(litebus_tx_db(tx), sql, NULL, NULL, NULL) != SQLITE_OK)
		return JOB_FAILED;
	a->ack_rc = litebus_consumer_ack_tx(tx, a->c, a->event_id);
	if (a->ack_rc != LITEBUS_OK)
		return a->ack_rc;
	return a->fail ? JOB_FAILED : 0;
}

/* Contract: "litebus_consumer_ack_tx - inside a job: move the consumer's
 * position to event_id in the job's own transaction, so that it commits
 * if and only if the job commits." */
static void
ack_tx_commits_with_its_job_and_rolls_back_with_it(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[3];
	litebus_consumer *c;
	struct apply a;

	assert_int_equal(
	    fx_exec_sql(f->bus, "CREATE TABLE effects(event_id INTEGER)"), 0);
	commit_events(f->bus, CH, 3, ids);
	c = cons_open(f->bus, CH, "tx", LITEBUS_FROM_START);
	expect_next(c, ids[0]);
	a = (struct apply){c, ids[0], false, 0};
	assert_int_equal(litebus_exec(f->bus, apply_job, &a), 0);
	assert_int_equal(stored_position(f->path, "tx"), ids[0]);

	expect_next(c, ids[1]);
	a = (struct apply){c, ids[1], true, 0};
	assert_int_equal(litebus_exec(f->bus, apply_job, &a), JOB_FAILED);
	assert_int_equal(a.ack_rc, LITEBUS_OK);
	assert_int_equal(stored_position(f->path, "tx"), ids[0]);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT count(*) FROM effects"),
			 1);

	/* Beyond the cursor: EINVAL inside the job too. */
	a = (struct apply){c, ids[2], false, 0};
	assert_int_equal(litebus_exec(f->bus, apply_job, &a), LITEBUS_EINVAL);
	litebus_consumer_close(c);

	c = cons_open(f->bus, CH, "tx", LITEBUS_FROM_START);
	expect_next(c, ids[1]); /* the failed job's row comes again */
	litebus_consumer_close(c);
}

static int
ack_tx_job(litebus_tx *tx, void *arg)
{
	struct apply *a = arg;

	a->ack_rc = litebus_consumer_ack_tx(tx, a->c, a->event_id);
	return 0;
}

/* Contract: "Returns OK; EINVAL; EMISUSE (outside a job, or the consumer
 * belongs to another bus)". */
static void
ack_tx_outside_a_job_or_on_another_bus_is_refused(void **state)
{
	struct bus_fixture *f = *state;
	litebus_options o;
	litebus *other;
	litebus_consumer *c;
	struct apply a;
	int64_t id;

	id = fx_commit_one(f->bus, CH);
	c = cons_open(f->bus, CH, "mis", LITEBUS_FROM_START);
	expect_next(c, id);
	assert_int_equal(litebus_consumer_ack_tx(NULL, c, id), LITEBUS_EINVAL);

	litebus_options_init(&o);
	assert_int_equal(litebus_open(&o, &other), LITEBUS_OK); /* memory */
	a = (struct apply){c, id, false, 0};
	assert_int_equal(litebus_exec(other, ack_tx_job, &a), 0);
	assert_int_equal(a.ack_rc, LITEBUS_EMISUSE);
	assert_int_equal(litebus_close(other), LITEBUS_OK);
	assert_int_equal(stored_position(f->path, "mis"), 0);
	litebus_consumer_close(c);
}

/* ------------------------------------------------------------------ */
/* One handle per name                                                 */

/* Contract: "One live handle per (channel, name) per database file ...: a
 * second open returns LITEBUS_EINUSE until the first is closed". */
static void
a_second_open_in_the_same_process_is_einuse_until_the_first_closes(void **state)
{
	struct bus_fixture *f = *state;
	litebus_consumer *c, *d = NULL;
	litebus *again;

	c = cons_open(f->bus, CH, "one", LITEBUS_FROM_START);
	assert_int_equal(litebus_consumer_open(f->bus, CH, "one", 0, NULL, &d),
			 LITEBUS_EINUSE);
	assert_null(d);
	/* Through another open of the same file: the same bus, same name. */
	assert_int_equal(litebus_open(&f->opts, &again), LITEBUS_OK);
	assert_int_equal(litebus_consumer_open(again, CH, "one", 0, NULL, &d),
			 LITEBUS_EINUSE);
	assert_int_equal(litebus_close(again), LITEBUS_OK);
	/* Another name, or another channel, is another consumer. */
	d = cons_open(f->bus, CH, "two", LITEBUS_FROM_START);
	litebus_consumer_close(d);
	d = cons_open(f->bus, LITEBUS_SIGNAL_DELIVERY, "one",
		      LITEBUS_FROM_START);
	litebus_consumer_close(d);
	litebus_consumer_close(c);
	c = cons_open(f->bus, CH, "one", LITEBUS_FROM_START);
	litebus_consumer_close(c);
}

/* A child that opens the file fresh and holds consumer "held" until it
 * reads a byte (then exits without closing anything, or, with 'c',
 * after closing). */
static void
child_hold(const char *path, int ready_fd, int go_fd)
{
	litebus_options o;
	litebus *bus;
	litebus_consumer *c;
	char cmd = 0;

	litebus_options_init(&o);
	o.path = path;
	if (litebus_open(&o, &bus) != LITEBUS_OK ||
	    litebus_consumer_open(bus, CH, "held", 0, NULL, &c) != LITEBUS_OK)
		_exit(2);
	if (write(ready_fd, "r", 1) != 1)
		_exit(3);
	if (read(go_fd, &cmd, 1) != 1)
		_exit(4);
	if (cmd == 'c') {
		litebus_consumer_close(c);
		litebus_close(bus);
	}
	_exit(0);
}

static pid_t
spawn_holder(const char *path, int *go_fd)
{
	int ready[2], go[2];
	char b;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		child_hold(path, ready[1], go[0]);
	}
	close(ready[1]);
	close(go[0]);
	{
		struct pollfd p = {ready[0], POLLIN, 0};
		assert_int_equal(poll(&p, 1, FX_WAIT_MS), 1);
	}
	assert_int_equal(read(ready[0], &b, 1), 1);
	close(ready[0]);
	*go_fd = go[1];
	return pid;
}

static void
reap(pid_t pid, int want_status)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (want_status >= 0) {
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), want_status);
	}
}

/* Contract: "One live handle per (channel, name) per database file,
 * across every process on the machine: a second open returns
 * LITEBUS_EINUSE until the first is closed or its process has exited."
 * (The parent opens the file only after forking: fork() section.) */
static void
a_second_open_from_another_process_is_einuse_until_it_exits(void **state)
{
	struct bus_fixture *f = *state;
	litebus_consumer *c = NULL;
	litebus_consumer_info info;
	size_t n;
	int go;
	pid_t pid;

	/* Holder killed: taken over. */
	pid = spawn_holder(f->path, &go);
	fx_open(f);
	assert_int_equal(litebus_consumer_open(f->bus, CH, "held", 0, NULL, &c),
			 LITEBUS_EINUSE);
	{
		char want[32];
		snprintf(want, sizeof want, "process %d", (int)pid);
		assert_non_null(strstr(litebus_last_errmsg(), want));
	}
	assert_int_equal(litebus_consumer_list(f->bus, CH, &info, 1, &n),
			 LITEBUS_OK);
	assert_int_equal(n, 1);
	assert_true(info.open);
	assert_int_equal(litebus_consumer_delete(f->bus, CH, "held"),
			 LITEBUS_EINUSE);
	assert_int_equal(kill(pid, SIGKILL), 0);
	reap(pid, -1);
	close(go);
	assert_int_equal(litebus_consumer_list(f->bus, CH, &info, 1, &n),
			 LITEBUS_OK);
	assert_false(info.open);
	c = cons_open(f->bus, CH, "held", LITEBUS_FROM_START);
	litebus_consumer_close(c);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;

	/* Holder that closes cleanly: released. */
	pid = spawn_holder(f->path, &go);
	fx_open(f);
	assert_int_equal(litebus_consumer_open(f->bus, CH, "held", 0, NULL, &c),
			 LITEBUS_EINUSE);
	assert_int_equal(write(go, "c", 1), 1);
	reap(pid, 0);
	close(go);
	c = cons_open(f->bus, CH, "held", LITEBUS_FROM_START);
	litebus_consumer_close(c);
}

/* ------------------------------------------------------------------ */
/* list, stats, delete                                                 */

/* Contract: "per-consumer stats (position, lag = head - position, time of
 * last ack)"; list: "ordered by channel and name: up to `cap` of them
 * into out[] and the total in *count". */
static void
list_and_stats_give_position_head_and_lag(void **state)
{
	struct bus_fixture *f = *state;
	litebus_consumer_info all[4], info;
	litebus_consumer *a, *b, *z;
	int64_t ids[10], crash;
	int64_t t0 = fx_wall_ms();
	size_t n = 99;

	commit_events(f->bus, CH, 10, ids);
	crash = fx_commit_one(f->bus, LITEBUS_SIGNAL_DELIVERY);
	z = cons_open(f->bus, CH, "zeta", LITEBUS_FROM_START);
	a = cons_open(f->bus, CH, "alpha", LITEBUS_FROM_START);
	b = cons_open(f->bus, LITEBUS_SIGNAL_DELIVERY, "beta",
		      LITEBUS_FROM_START);
	for (int i = 0; i < 4; i++)
		expect_next(a, ids[i]);
	assert_int_equal(litebus_consumer_ack(a, ids[3]), LITEBUS_OK);
	assert_int_equal(litebus_consumer_flush(a), LITEBUS_OK);

	info = cons_info(a);
	assert_string_equal(info.name, "alpha");
	assert_int_equal(info.channel, CH);
	assert_int_equal(info.position, ids[3]);
	assert_int_equal(info.head, ids[9]);
	assert_int_equal(info.lag, ids[9] - ids[3]);
	assert_true(info.acked_at_ms >= t0 - 1000 &&
		    info.acked_at_ms <= fx_wall_ms() + 1000);
	assert_true(info.open);

	assert_int_equal(litebus_consumer_list(f->bus, -1, NULL, 0, &n),
			 LITEBUS_OK);
	assert_int_equal(n, 3);
	assert_int_equal(litebus_consumer_list(f->bus, -1, all, 4, &n),
			 LITEBUS_OK);
	assert_int_equal(n, 3);
	/* By channel id, then name. */
	assert_true(CH < LITEBUS_SIGNAL_DELIVERY);
	assert_string_equal(all[0].name, "alpha");
	assert_string_equal(all[1].name, "zeta");
	assert_string_equal(all[2].name, "beta");
	assert_int_equal(all[1].position, 0);
	assert_int_equal(all[1].lag, ids[9]);
	assert_int_equal(all[2].head, crash);
	assert_int_equal(litebus_consumer_list(f->bus, -1, all, 1, &n),
			 LITEBUS_OK);
	assert_int_equal(n, 3);
	assert_string_equal(all[0].name, "alpha");
	assert_int_equal(
	    litebus_consumer_list(f->bus, LITEBUS_SIGNAL_DELIVERY, all, 4, &n),
	    LITEBUS_OK);
	assert_int_equal(n, 1);
	assert_string_equal(all[0].name, "beta");
	assert_int_equal(litebus_consumer_list(f->bus, 999, all, 4, &n),
			 LITEBUS_ENOCHANNEL);
	litebus_consumer_close(a);
	litebus_consumer_close(b);
	litebus_consumer_close(z);
	assert_int_equal(litebus_consumer_list(f->bus, CH, all, 4, &n),
			 LITEBUS_OK);
	assert_int_equal(n, 2);
	assert_false(all[0].open);
	assert_false(all[1].open);
}

/* Contract: "litebus_consumer_delete - forget the durable consumer ...
 * EINVAL (no such consumer, or bad name); EINUSE (a handle is open on
 * it)". */
static void
a_deleted_consumer_starts_anew_and_an_open_one_cannot_be_deleted(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[5];
	litebus_consumer *c;
	size_t n;

	commit_events(f->bus, CH, 5, ids);
	c = cons_open(f->bus, CH, "d", LITEBUS_FROM_START);
	for (int i = 0; i < 3; i++)
		expect_next(c, ids[i]);
	assert_int_equal(litebus_consumer_ack(c, ids[2]), LITEBUS_OK);
	assert_int_equal(litebus_consumer_delete(f->bus, CH, "d"),
			 LITEBUS_EINUSE);
	litebus_consumer_close(c);
	assert_int_equal(litebus_consumer_delete(f->bus, CH, "d"), LITEBUS_OK);
	assert_int_equal(litebus_consumer_list(f->bus, CH, NULL, 0, &n),
			 LITEBUS_OK);
	assert_int_equal(n, 0);
	assert_int_equal(litebus_consumer_delete(f->bus, CH, "d"),
			 LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_delete(f->bus, 999, "d"),
			 LITEBUS_ENOCHANNEL);
	c = cons_open(f->bus, CH, "d", LITEBUS_FROM_START);
	expect_next(c, ids[0]);
	litebus_consumer_close(c);
}

/* ------------------------------------------------------------------ */
/* Misuse, close, in memory                                            */

/* Contract: "`name` is 1..LITEBUS_CONSUMER_NAME_MAX bytes of UTF-8 ...
 * Returns OK and *out; EINVAL (NULL, bad name, start < -1), ENOCHANNEL". */
static void
open_with_a_bad_argument_is_refused(void **state)
{
	struct bus_fixture *f = *state;
	char longname[LITEBUS_CONSUMER_NAME_MAX + 2];
	litebus_consumer *c = (litebus_consumer *)1;

	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_int_equal(litebus_consumer_open(f->bus, CH, "", 0, NULL, &c),
			 LITEBUS_EINVAL);
	assert_null(c);
	assert_int_equal(
	    litebus_consumer_open(f->bus, CH, longname, 0, NULL, &c),
	    LITEBUS_EINVAL);
	assert_int_equal(
	    litebus_consumer_open(f->bus, CH, "bad\xff", 0, NULL, &c),
	    LITEBUS_EINVAL);
	assert_int_equal(
	    litebus_consumer_open(f->bus, CH, "cut\xc3", 0, NULL, &c),
	    LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_open(f->bus, CH, "x", -2, NULL, &c),
			 LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_open(NULL, CH, "x", 0, NULL, &c),
			 LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_open(f->bus, CH, "x", 0, NULL, NULL),
			 LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_open(f->bus, 999, "x", 0, NULL, &c),
			 LITEBUS_ENOCHANNEL);
	/* A name of exactly the maximum, and UTF-8, are fine. */
	longname[LITEBUS_CONSUMER_NAME_MAX] = '\0';
	c = cons_open(f->bus, CH, longname, 0);
	litebus_consumer_close(c);
	c = cons_open(f->bus, CH, "caf\xc3\xa9", 0);
	litebus_consumer_close(c);
	litebus_consumer_close(NULL);
	assert_int_equal(litebus_consumer_next(NULL, NULL, 0), LITEBUS_EINVAL);
	assert_int_equal(litebus_consumer_cursor(NULL), -1);
	assert_int_equal(litebus_consumer_flush(NULL), LITEBUS_EINVAL);
}

struct writer_open {
	litebus *bus;
	int rc;
};

static int
open_on_writer_job(litebus_tx *tx, void *arg)
{
	struct writer_open *w = arg;
	litebus_consumer *c = NULL;

	(void)tx;
	w->rc = litebus_consumer_open(w->bus, CH, "w", 0, NULL, &c);
	return 0;
}

/* Contract: "EDEADLK (on the writer thread: creating the position is a
 * write)". */
static void
open_on_the_writer_thread_is_edeadlk(void **state)
{
	struct bus_fixture *f = *state;
	struct writer_open w = {f->bus, 0};

	assert_int_equal(litebus_exec(f->bus, open_on_writer_job, &w), 0);
	assert_int_equal(w.rc, LITEBUS_EDEADLK);
}

/* Contract: "ECLOSED (the bus is closed: the ack is not recorded)";
 * close: "Acks that could not be recorded (the bus closed first) are
 * lost: the rows are delivered again after reopening." */
static void
acks_after_the_bus_closed_are_eclosed_and_lost(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[3];
	litebus_consumer *c;

	commit_events(f->bus, CH, 3, ids);
	c = cons_open(f->bus, CH, "late", LITEBUS_FROM_START);
	expect_next(c, ids[0]);
	assert_int_equal(litebus_consumer_ack(c, ids[0]), LITEBUS_OK);
	assert_int_equal(litebus_consumer_flush(c), LITEBUS_OK);
	expect_next(c, ids[1]);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	assert_int_equal(litebus_consumer_ack(c, ids[1]), LITEBUS_ECLOSED);
	assert_int_equal(litebus_consumer_flush(c), LITEBUS_ECLOSED);
	/* Still readable, as a reader is. */
	expect_next(c, ids[2]);
	litebus_consumer_close(c);
	fx_open(f);
	/* The row still names this process; no handle here has it. */
	c = cons_open(f->bus, CH, "late", LITEBUS_FROM_START);
	expect_next(c, ids[1]);
	litebus_consumer_close(c);
}

static int
memory_bus(void **state)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	fx_make_dir(f);
	litebus_options_init(&f->opts);
	f->opts.ring_capacity = 8;
	assert_int_equal(litebus_open(&f->opts, &f->bus), LITEBUS_OK);
	*state = f;
	return 0;
}

static void
consumers_work_on_an_in_memory_bus(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[20];
	litebus_consumer *c, *d = NULL;

	commit_events(f->bus, CH, 20, ids);
	c = cons_open(f->bus, CH, "m", LITEBUS_FROM_START);
	assert_int_equal(litebus_consumer_open(f->bus, CH, "m", 0, NULL, &d),
			 LITEBUS_EINUSE);
	for (int i = 0; i < 15; i++)
		expect_next(c, ids[i]);
	assert_int_equal(litebus_consumer_ack(c, ids[9]), LITEBUS_OK);
	assert_int_equal(litebus_consumer_flush(c), LITEBUS_OK);
	{
		litebus_consumer_info info = cons_info(c);
		assert_int_equal(info.position, ids[9]);
		assert_int_equal(info.lag, ids[19] - ids[9]);
	}
	litebus_consumer_close(c);
	c = cons_open(f->bus, CH, "m", LITEBUS_FROM_START);
	expect_next(c, ids[10]);
	litebus_consumer_close(c);
}

/* ------------------------------------------------------------------ */
/* The README example ("Durable consumers"), compiled and run          */

/* --- begin README example --- */
struct work {
	litebus_consumer *c;
	const litebus_row *row;
};

static int
apply(litebus_tx *tx, void *arg)
{
	struct work *w = arg;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(litebus_tx_db(tx),
			       "INSERT INTO totals(k, n) VALUES(?1, 1) "
			       "ON CONFLICT(k) DO UPDATE SET n = n + 1",
			       -1, &st, NULL) != SQLITE_OK)
		return -1000;
	sqlite3_bind_int64(st, 1, w->row->partition_key);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1000;
	sqlite3_finalize(st);
	if (rc == 0) /* the position moves in the same transaction */
		rc = litebus_consumer_ack_tx(tx, w->c, w->row->event_id);
	return rc; /* non-zero rolls back the effect AND the ack */
}

static int
consume_all(litebus *bus)
{
	litebus_consumer *c;
	litebus_row row;
	int rc;

	rc = litebus_consumer_open(bus, LITEBUS_COMPLETION, "totals",
				   LITEBUS_FROM_START, NULL, &c);
	if (rc != LITEBUS_OK)
		return rc;
	while ((rc = litebus_consumer_next(c, &row, 0)) == LITEBUS_OK) {
		struct work w = {c, &row};
		rc = litebus_exec(bus, apply, &w); /* effect + position */
		if (rc != LITEBUS_OK)
			break;
	}
	litebus_consumer_close(c);
	return rc == LITEBUS_TIMEOUT ? LITEBUS_OK : rc;
}
/* --- end README example --- */

/* README, "Durable consumers": the consume-process-ack example. */
static void
the_readme_example_applies_each_event_once_across_runs(void **state)
{
	struct bus_fixture *f = *state;

	assert_int_equal(fx_exec_sql(f->bus, "CREATE TABLE totals(k INTEGER "
					     "PRIMARY KEY, n INTEGER NOT NULL)"),
			 0);
	commit_events(f->bus, CH, 10, NULL); /* partition_key = i */
	assert_int_equal(consume_all(f->bus), LITEBUS_OK);
	commit_events(f->bus, CH, 5, NULL);
	assert_int_equal(consume_all(f->bus), LITEBUS_OK); /* resumes */
	assert_int_equal(consume_all(f->bus), LITEBUS_OK); /* nothing new */
	assert_int_equal(fx_sql_int_at(f->path, "SELECT sum(n) FROM totals"),
			 15);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT n FROM totals "
						"WHERE k = 0"),
			 2);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT n FROM totals "
						"WHERE k = 9"),
			 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(a_new_consumer_from_start_gets_every_committed_row),
	    FX_TEST_TINY(
		from_now_starts_after_the_newest_row_and_an_existing_name_ignores_start),
	    FX_TEST_TINY(a_new_consumer_may_start_after_a_given_event_id),
	    FX_TEST_TINY(reopen_resumes_right_after_the_last_durable_ack),
	    FX_TEST_TINY(the_position_survives_reopening_the_database),
	    FX_TEST_TINY(
		ack_beyond_the_cursor_is_einval_and_below_the_position_changes_nothing),
	    FX_TEST_DEFAULT(
		acking_every_row_of_ten_thousand_costs_far_fewer_jobs_and_transactions),
	    FX_TEST_TINY(flush_makes_every_ack_so_far_durable),
	    FX_TEST_TINY(ack_tx_commits_with_its_job_and_rolls_back_with_it),
	    FX_TEST_TINY(ack_tx_outside_a_job_or_on_another_bus_is_refused),
	    FX_TEST_TINY(
		a_second_open_in_the_same_process_is_einuse_until_the_first_closes),
	    FX_TEST_TMPDIR(
		a_second_open_from_another_process_is_einuse_until_it_exits),
	    FX_TEST_TINY(list_and_stats_give_position_head_and_lag),
	    FX_TEST_TINY(
		a_deleted_consumer_starts_anew_and_an_open_one_cannot_be_deleted),
	    FX_TEST_TINY(open_with_a_bad_argument_is_refused),
	    FX_TEST_TINY(open_on_the_writer_thread_is_edeadlk),
	    FX_TEST_TINY(acks_after_the_bus_closed_are_eclosed_and_lost),
	    FX_TEST_WITH(consumers_work_on_an_in_memory_bus, memory_bus),
	    FX_TEST_TINY(
		the_readme_example_applies_each_event_once_across_runs),
	};

	return cmocka_run_group_tests_name("consumer", tests, NULL, NULL);
}
