/* SPDX-License-Identifier: MIT */
/*
 * test_consumer_crash.c - durable consumers across SIGKILL.
 *
 * Each round forks a child that opens the database fresh (the parent has
 * no bus open at the fork: header, "fork()"), opens a consumer, and
 * consumes: it reports every row it is given on a pipe before it acts on
 * it, and now and then commits a new event of its own.  The parent kills
 * it with SIGKILL after a random number of reports, reads the stored
 * position with a plain SQLite connection, and checks:
 *
 *   at least once (litebus_consumer_ack, flushed at random points):
 *     - the position is at least the last id the child reported flushed,
 *       and no further than the last row it was given (nothing skipped);
 *     - the next round's first row is the first committed row after that
 *       position (the resume point is the last durable ack);
 *     - at the end every committed row was delivered at least once.
 *   exactly-once effects (litebus_consumer_ack_tx in the effect's job):
 *     - the application table holds each committed event's effect
 *       exactly once, after the last round drains the channel.
 *
 * LITEBUS_CONSUMER_CRASH_ROUNDS sets the rounds per mode (default 6).
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
#define PRELOAD 3000
#define MAX_ID 100000

/* One report on the pipe (well under PIPE_BUF: atomic). */
struct report {
	int64_t kind; /* 'R' row given, 'F' flushed up to id, 'D' drained */
	int64_t id;
};

static int
rounds(void)
{
	const char *s = getenv("LITEBUS_CONSUMER_CRASH_ROUNDS");
	int n = s != NULL ? atoi(s) : 0;

	return n > 0 ? n : 6;
}

struct apply {
	litebus_consumer *c;
	int64_t event_id;
};

/* The effect and the position, in one transaction. */
static int
apply_job(litebus_tx *tx, void *arg)
{
	struct apply *a = arg;
	char sql[100];

	snprintf(sql, sizeof sql, "INSERT INTO effects VALUES(%lld)",
		 (long long)a->event_id);
	if (sqlite3_exec(litebus_tx_db(tx), sql, NULL, NULL, NULL) != SQLITE_OK)
		return JOB_FAILED;
	return litebus_consumer_ack_tx(tx, a->c, a->event_id);
}

static void
child_report(int fd, int64_t kind, int64_t id)
{
	struct report r = {kind, id};

	if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
		_exit(4);
}

/* The child: consume "name" until killed. */
static void
child_main(const char *path, const char *name, bool exactly_once, int fd,
	   unsigned seed)
{
	litebus_options o;
	litebus *bus;
	litebus_consumer *c;
	litebus_row row;
	unsigned n = 0, flush_every = 1 + (unsigned)(rand_r(&seed) % 40);

	litebus_options_init(&o);
	o.path = path;
	if (litebus_open(&o, &bus) != LITEBUS_OK)
		_exit(2);
	if (litebus_consumer_open(bus, CH, name, LITEBUS_FROM_START, NULL,
				  &c) != LITEBUS_OK)
		_exit(3);
	for (;;) {
		int rc = litebus_consumer_next(c, &row, 0);

		if (rc == LITEBUS_TIMEOUT) {
			child_report(fd, 'D', 0);
			for (;;)
				pause();
		}
		if (rc != LITEBUS_OK)
			_exit(5);
		child_report(fd, 'R', row.event_id);
		if (exactly_once) {
			struct apply a = {c, row.event_id};
			if (litebus_exec(bus, apply_job, &a) != 0)
				_exit(6);
		} else {
			if (litebus_consumer_ack(c, row.event_id) != LITEBUS_OK)
				_exit(7);
			if (++n % flush_every == 0) {
				if (litebus_consumer_flush(c) != LITEBUS_OK)
					_exit(8);
				child_report(fd, 'F', row.event_id);
				flush_every =
				    1 + (unsigned)(rand_r(&seed) % 40);
			}
		}
		if (rand_r(&seed) % 64 == 0 && fx_commit_one(bus, CH) <= 0)
			_exit(9);
	}
}

struct round {
	int64_t first, last; /* rows given: first and last (0: none) */
	int64_t flushed;     /* last 'F' (0: none) */
	bool drained;
};

static void
take_report(struct round *r, const struct report *rep, unsigned char *delivered)
{
	if (rep->kind == 'R') {
		assert_true(rep->id > r->last); /* in order */
		assert_true(rep->id > 0 && rep->id < MAX_ID);
		if (r->first == 0)
			r->first = rep->id;
		r->last = rep->id;
		delivered[rep->id] = 1;
	} else if (rep->kind == 'F') {
		r->flushed = rep->id;
	} else {
		r->drained = true;
	}
}

/* Run one child, kill it after `kill_after` reports (or once it drained),
 * and mark what it was given in delivered[]. */
static struct round
run_child(struct bus_fixture *f, const char *name, bool exactly_once,
	  int kill_after, unsigned seed, unsigned char *delivered)
{
	struct round r = {0, 0, 0, false};
	int fds[2], status, seen = 0;
	uint64_t deadline = fx_now_ms() + 60000;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_main(f->path, name, exactly_once, fds[1], seed);
	}
	close(fds[1]);
	while (seen < kill_after && !r.drained) {
		struct pollfd p = {fds[0], POLLIN, 0};
		struct report rep;

		if (fx_now_ms() > deadline)
			fail_msg("child %d reported nothing for a minute",
				 (int)pid);
		if (poll(&p, 1, 1000) <= 0)
			continue;
		if (read(fds[0], &rep, sizeof rep) != (ssize_t)sizeof rep) {
			int st;
			waitpid(pid, &st, 0);
			fail_msg("child died on its own: status %d", st);
		}
		seen++;
		take_report(&r, &rep, delivered);
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	/* What the child wrote before it died counts too: it may have acted
	 * on those rows. */
	for (;;) {
		struct report rep;
		ssize_t n = read(fds[0], &rep, sizeof rep);

		if (n == 0)
			break;
		assert_int_equal(n, (ssize_t)sizeof rep);
		take_report(&r, &rep, delivered);
	}
	close(fds[0]);
	return r;
}

static int64_t
position_of(const char *path, const char *name)
{
	char sql[200];

	snprintf(sql, sizeof sql,
		 "SELECT position FROM litebus_consumer WHERE name = '%s'",
		 name);
	return fx_sql_int_at(path, sql);
}

static int64_t
first_after(const char *path, int64_t position)
{
	char sql[200];

	snprintf(sql, sizeof sql,
		 "SELECT coalesce(min(event_id), 0) FROM "
		 "litebus_outbox_completion WHERE event_id > %lld",
		 (long long)position);
	return fx_sql_int_at(path, sql);
}

/* Preload the channel and the application table; leave no bus open. */
static void
preload(struct bus_fixture *f)
{
	fx_open(f);
	assert_int_equal(fx_exec_sql(f->bus, "CREATE TABLE IF NOT EXISTS "
					     "effects(event_id INTEGER NOT NULL)"),
			 0);
	for (int i = 0; i < PRELOAD; i += 500)
		commit_batch(f->bus, CH, 500, NULL);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
}

/* Drain the rest in this process, as the final run. */
static void
drain(struct bus_fixture *f, const char *name, bool exactly_once,
      unsigned char *delivered)
{
	litebus_consumer *c;
	litebus_row row;
	int rc;

	fx_open(f);
	assert_int_equal(litebus_consumer_open(f->bus, CH, name,
					       LITEBUS_FROM_START, NULL, &c),
			 LITEBUS_OK);
	while ((rc = litebus_consumer_next(c, &row, 0)) == LITEBUS_OK) {
		delivered[row.event_id] = 1;
		if (exactly_once) {
			struct apply a = {c, row.event_id};
			assert_int_equal(litebus_exec(f->bus, apply_job, &a),
					 0);
		} else {
			assert_int_equal(litebus_consumer_ack(c, row.event_id),
					 LITEBUS_OK);
		}
	}
	assert_int_equal(rc, LITEBUS_TIMEOUT);
	litebus_consumer_close(c);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
}

/* Every committed id of the channel has delivered[id] set. */
static int64_t
check_all_delivered(const char *path, const unsigned char *delivered)
{
	sqlite3 *db = fx_sql_open(path, SQLITE_OPEN_READONLY);
	sqlite3_stmt *st;
	int64_t n = 0;

	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT event_id FROM "
					    "litebus_outbox_completion",
					    -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (!delivered[id])
			fail_msg("committed event %lld was never delivered",
				 (long long)id);
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Contract: "at least once: process the row, then litebus_consumer_ack()
 * ... A crash between the effect and the durable ack redelivers the
 * row."; "A new open resumes right after the last *durably* acknowledged
 * event_id". */
static void
after_sigkill_ack_redelivers_from_the_last_durable_ack_and_skips_nothing(
    void **state)
{
	struct bus_fixture *f = *state;
	unsigned char *delivered = calloc(MAX_ID, 1);
	unsigned seed = (unsigned)fx_mono_ns();
	int64_t pos = 0;

	assert_non_null(delivered);
	print_message("seed %u\n", seed);
	preload(f);
	for (int i = 0; i < rounds(); i++) {
		int64_t expect_first = first_after(f->path, pos);
		int kill_after = 20 + (int)(rand_r(&seed) % 600);
		struct round r = run_child(f, "alo", false, kill_after,
					   (unsigned)rand_r(&seed), delivered);
		int64_t now = position_of(f->path, "alo");

		if (r.first != 0)
			assert_int_equal(r.first, expect_first);
		assert_true(now >= pos);
		assert_true(now >= r.flushed);
		assert_true(now <= (r.last > pos ? r.last : pos));
		print_message("round %d: given %lld..%lld, flushed %lld, "
			      "durable %lld\n",
			      i, (long long)r.first, (long long)r.last,
			      (long long)r.flushed, (long long)now);
		pos = now;
	}
	drain(f, "alo", false, delivered);
	assert_true(check_all_delivered(f->path, delivered) >= PRELOAD);
	free(delivered);
}

/* Contract: "exactly-once effects: write the row's effects in a job and
 * move the position in the same transaction with
 * litebus_consumer_ack_tx().  Either both commit or neither does." */
static void
after_sigkill_ack_tx_leaves_each_effect_exactly_once(void **state)
{
	struct bus_fixture *f = *state;
	unsigned char *delivered = calloc(MAX_ID, 1);
	unsigned seed = (unsigned)fx_mono_ns();
	int64_t committed;

	assert_non_null(delivered);
	print_message("seed %u\n", seed);
	preload(f);
	for (int i = 0; i < rounds(); i++) {
		int kill_after = 20 + (int)(rand_r(&seed) % 600);
		struct round r = run_child(f, "eo", true, kill_after,
					   (unsigned)rand_r(&seed), delivered);
		int64_t now = position_of(f->path, "eo");

		/* The position is the last effect's event. */
		assert_int_equal(
		    now, fx_sql_int_at(f->path, "SELECT coalesce(max("
						"event_id), 0) FROM effects"));
		(void)r;
	}
	drain(f, "eo", true, delivered);
	committed = check_all_delivered(f->path, delivered);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT count(*) FROM effects"),
			 committed);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT count(DISTINCT "
						"event_id) FROM effects"),
			 committed);
	assert_int_equal(
	    fx_sql_int_at(f->path,
			  "SELECT count(*) FROM effects WHERE event_id NOT IN "
			  "(SELECT event_id FROM litebus_outbox_completion)"),
	    0);
	free(delivered);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(
		after_sigkill_ack_redelivers_from_the_last_durable_ack_and_skips_nothing),
	    FX_TEST_TMPDIR(
		after_sigkill_ack_tx_leaves_each_effect_exactly_once),
	};

	return cmocka_run_group_tests_name("consumer_crash", tests, NULL, NULL);
}
