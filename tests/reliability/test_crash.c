/* SPDX-License-Identifier: MIT */
/*
 * test_crash.c - crash recovery: a process killed with SIGKILL loses no
 * acknowledged event, and a reader resumes from its cursor with no gap and
 * no duplicate.
 *
 * Each round forks a child that opens the bus and commits jobs from three
 * threads; after each litebus_exec returns 0 the child writes the job's
 * event ids to a pipe (the acknowledgement).  The parent kills the child
 * at a random moment, reopens the database and checks:
 *   - every acknowledged event_id is in the outbox;
 *   - committed ids are 1..max without a gap (ids come from the single
 *     writer, and ids of work that never committed are handed out again);
 *   - each event's application row is there and vice versa (one
 *     transaction);
 *   - a reader reopened after the previous round's cursor returns exactly
 *     the new ids, in order.
 * Rounds alternate full and normal durability: after a *process* crash
 * both promise that nothing acknowledged is lost (the WAL is in the OS page
 * cache).  Power loss is not simulated here.
 *
 * LITEBUS_CRASH_ROUNDS sets the number of rounds (default 10; the stress
 * label runs 50).
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

#define CHILD_THREADS 3
#define MAX_IDS 2000000

struct child_job {
	int64_t ids[3];
	int n;
};

static int
child_job_fn(litebus_tx *tx, void *arg)
{
	struct child_job *j = arg;
	sqlite3 *db = litebus_tx_db(tx);
	char sql[128];

	for (int i = 0; i < j->n; i++) {
		litebus_record rec = {0};
		rec.partition_key = i;
		rec.event_type = "success";
		int rc = litebus_emit(tx, LITEBUS_COMPLETION, &rec, &j->ids[i]);
		if (rc != LITEBUS_OK)
			return rc;
		snprintf(sql, sizeof sql, "INSERT INTO app(event_id) VALUES(%lld)",
			 (long long)j->ids[i]);
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
			return -1000;
	}
	return 0;
}

struct child_ctx {
	litebus *bus;
	int fd;
	unsigned seed;
};

static void *
child_thread(void *p)
{
	struct child_ctx *c = p;

	for (;;) {
		struct child_job j = {{0}, 1 + (int)(rand_r(&c->seed) % 3)};
		if (litebus_exec(c->bus, child_job_fn, &j) != 0)
			_exit(3);
		/* One write per job, well under PIPE_BUF: atomic. */
		if (write(c->fd, j.ids, (size_t)j.n * sizeof j.ids[0]) < 0)
			_exit(4);
	}
	return NULL;
}

static void
child_main(const char *path, int durability, int fd, unsigned seed)
{
	litebus_options o;
	litebus *bus;
	pthread_t t[CHILD_THREADS];
	struct child_ctx ctx[CHILD_THREADS];

	litebus_options_init(&o);
	o.path = path;
	o.durability = durability;
	if (litebus_open(&o, &bus) != LITEBUS_OK)
		_exit(2);
	if (fx_exec_sql(bus, "CREATE TABLE IF NOT EXISTS app(event_id INTEGER "
			     "PRIMARY KEY)") != 0)
		_exit(2);
	/* Tell the parent we are running. */
	int64_t zero = 0;
	if (write(fd, &zero, sizeof zero) < 0)
		_exit(4);
	for (int i = 0; i < CHILD_THREADS; i++) {
		ctx[i] = (struct child_ctx){bus, fd, seed + (unsigned)i};
		if (pthread_create(&t[i], NULL, child_thread, &ctx[i]) != 0)
			_exit(5);
	}
	for (;;)
		pause();
}

/* Read acknowledged ids from fd until `ms` passed (or EOF). */
static void
read_acks(int fd, int64_t *acked, size_t *nacked, int ms, bool *started)
{
	uint64_t end = fx_now_ms() + (uint64_t)ms;
	static unsigned char buf[65536];
	static size_t have;

	for (;;) {
		int left = (int)(end > fx_now_ms() ? end - fx_now_ms() : 0);
		struct pollfd pfd = {fd, POLLIN, 0};
		if (ms >= 0 && left == 0)
			break;
		int pr = poll(&pfd, 1, ms >= 0 ? left : 0);
		if (pr <= 0)
			break;
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		size_t whole = have / sizeof(int64_t) * sizeof(int64_t);
		for (size_t off = 0; off < whole; off += sizeof(int64_t)) {
			int64_t id;
			memcpy(&id, buf + off, sizeof id);
			if (id == 0)
				*started = true;
			else if (*nacked < MAX_IDS)
				acked[(*nacked)++] = id;
		}
		memmove(buf, buf + whole, have - whole);
		have -= whole;
	}
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* All ids of the outbox, sorted, and whether app rows match them. */
static size_t
table_ids(const char *path, int64_t *ids, size_t cap, bool *app_matches)
{
	size_t n = fx_outbox_ids(path, "completion", ids, cap);
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(
			     db,
			     "SELECT (SELECT count(*) FROM app WHERE event_id "
			     "NOT IN (SELECT event_id FROM "
			     "litebus_outbox_completion)) + (SELECT count(*) "
			     "FROM litebus_outbox_completion WHERE event_id "
			     "NOT IN (SELECT event_id FROM app))",
			     -1, &st, NULL),
		     SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	*app_matches = sqlite3_column_int64(st, 0) == 0;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void
acknowledged_events_survive_sigkill_and_readers_resume_exactly(void **state)
{
	struct bus_fixture *f = *state;
	const char *env = getenv("LITEBUS_CRASH_ROUNDS");
	int rounds = env != NULL ? atoi(env) : 10;
	int64_t *acked = malloc(MAX_IDS * sizeof *acked);
	int64_t *ids = malloc(MAX_IDS * sizeof *ids);
	int64_t cursor = 0;
	unsigned seed = (unsigned)getpid();
	size_t total_acked = 0;

	assert_non_null(acked);
	assert_non_null(ids);
	for (int round = 0; round < rounds; round++) {
		int durability = round % 2 == 0 ? LITEBUS_DURABILITY_FULL
						: LITEBUS_DURABILITY_NORMAL;
		int fds[2];
		size_t nacked = 0;
		bool started = false, app_ok;
		int status;

		assert_int_equal(pipe(fds), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			child_main(f->path, durability, fds[1],
				   seed + (unsigned)round * 7u);
		}
		close(fds[1]);
		/* Wait (bounded) for the child to run, then let it commit
		 * for a random 10..100 ms before the kill. */
		uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
		while (!started && fx_now_ms() < deadline)
			read_acks(fds[0], acked, &nacked, 10, &started);
		if (!started) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("round %d: the child never started (status "
				 "%d)",
				 round, status);
		}
		read_acks(fds[0], acked, &nacked,
			  10 + (int)(rand_r(&seed) % 90), &started);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("round %d: child exited with %d instead of "
				 "being killed",
				 round, WEXITSTATUS(status));
		/* Acks written before death are still in the pipe. */
		read_acks(fds[0], acked, &nacked, -1, &started);
		close(fds[0]);
		total_acked += nacked;

		/* Every acknowledged id is committed; ids are dense. */
		size_t n = table_ids(f->path, ids, MAX_IDS, &app_ok);
		assert_true(app_ok);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(ids[i], (int64_t)i + 1);
		qsort(acked, nacked, sizeof *acked, cmp_i64);
		for (size_t i = 0; i < nacked; i++) {
			if (acked[i] > (int64_t)n)
				fail_msg("round %d (%s): acknowledged event %lld "
					 "lost (table has 1..%zu)",
					 round,
					 durability == LITEBUS_DURABILITY_FULL
					     ? "full"
					     : "normal",
					 (long long)acked[i], n);
			if (i > 0)
				assert_true(acked[i] != acked[i - 1]);
		}

		/* A reader resumes from the last cursor: exactly the new
		 * ids, in order. */
		litebus_reader *r;
		litebus_row row;
		int64_t expect = cursor + 1;
		fx_open(f);
		assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
						     cursor, NULL, &r),
				 LITEBUS_OK);
		while (litebus_reader_next(r, &row, 0) == LITEBUS_OK)
			assert_int_equal(row.event_id, expect++);
		assert_int_equal(expect - 1, (int64_t)n);
		cursor = litebus_reader_cursor(r);
		assert_int_equal(cursor, (int64_t)n);
		litebus_reader_close(r);
		assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
		f->bus = NULL;
	}
	print_message("crash: %d rounds, %zu acknowledged events, all found\n",
		      rounds, total_acked);
	free(acked);
	free(ids);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(acknowledged_events_survive_sigkill_and_readers_resume_exactly),
	};

	return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
