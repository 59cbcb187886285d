/* SPDX-License-Identifier: MIT */
/*
 * test_cross_process.c - readers that see every commit on the file, and
 * read-only buses (litebus.h, "Commits made elsewhere", "Read-only
 * buses").
 *
 * The writers of the cross-process tests are this program run again with
 * --writer (fork and exec: a fresh process image, as another service
 * would be; a forked child of a process that has the file open could not
 * open it, header "fork()").  A writer commits jobs of 1..3 numbered
 * events on COMPLETION (every seventh job fails on purpose after emitting,
 * so its events never commit), pausing 0..400 us between jobs, until it
 * has run the number of jobs it was given, or is killed.  The truth is the
 * table itself, read at the end with a plain SQLite connection.
 */
#include "fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

FX_TSAN_ALLOW_FORK();

#define CH LITEBUS_COMPLETION
#define MAX_ROWS 200000

static char self_path[4096];

static void
fx_sleep_ms_(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000};

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* ------------------------------------------------------------------ */
/* The writer process                                                  */

static int
writer_main(const char *path, int jobs, unsigned seed)
{
	litebus_options o;
	litebus *bus;
	int rc;

	litebus_options_init(&o);
	o.path = path;
	o.max_batch = 4;
	rc = litebus_open(&o, &bus);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "writer: open: %s\n", litebus_last_errmsg());
		return 1;
	}
	for (int i = 0; i < jobs; i++) {
		struct fx_emit e = {.channel = CH,
				    .count = 1 + (int)(rand_r(&seed) % 3),
				    .numbered = true,
				    .partition_key = i * 4,
				    .fail = i % 7 == 6};
		struct timespec ts = {0, (long)(rand_r(&seed) % 400) * 1000};

		rc = litebus_exec(bus, fx_emit_job, &e);
		if (rc != LITEBUS_OK && rc != JOB_FAILED) {
			fprintf(stderr, "writer: exec: %s\n",
				litebus_last_errmsg());
			return 1;
		}
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	return litebus_close(bus) == LITEBUS_OK ? 0 : 1;
}

static pid_t
spawn_writer(const char *path, int jobs, unsigned seed)
{
	char njobs[32], nseed[32];
	pid_t pid;

	snprintf(njobs, sizeof njobs, "%d", jobs);
	snprintf(nseed, sizeof nseed, "%u", seed);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(self_path, self_path, "--writer", path, njobs, nseed,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int
wait_exit(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		assert_int_equal(errno, EINTR);
	return st;
}

/* Open `path` with `o` (read_only or not), retrying while the writer
 * process has not created it yet. */
static litebus *
open_when_ready(const char *path, litebus_options *o)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
	litebus *bus = NULL;
	int rc;

	o->path = path;
	for (;;) {
		rc = litebus_open(o, &bus);
		if (rc == LITEBUS_OK)
			return bus;
		if (fx_now_ms() > deadline)
			fail_msg("open: %s", litebus_last_errmsg());
		fx_sleep_ms_(2);
	}
}

/* ------------------------------------------------------------------ */
/* Following                                                           */

enum follow_kind { F_READER, F_FILTERED, F_CONSUMER };

struct follower {
	enum follow_kind kind;
	litebus_reader *r;
	litebus_consumer *c;
	int64_t *got;
	size_t n;
	bool dup_or_disorder;
};

static int
follower_next(struct follower *f, int timeout_ms)
{
	litebus_row row;
	int rc = f->kind == F_CONSUMER
		     ? litebus_consumer_next(f->c, &row, timeout_ms)
		     : litebus_reader_next(f->r, &row, timeout_ms);

	if (rc != LITEBUS_OK)
		return rc;
	if (f->n > 0 && row.event_id <= f->got[f->n - 1])
		f->dup_or_disorder = true;
	if (f->n < MAX_ROWS)
		f->got[f->n++] = row.event_id;
	if (f->kind == F_CONSUMER)
		assert_int_equal(litebus_consumer_ack(f->c, row.event_id),
				 LITEBUS_OK);
	return rc;
}

/* The committed rows of the channel, from the table; for the filtered
 * follower only namespace "ns1" (odd partition keys: fx_emit numbered). */
static size_t
truth(const char *path, bool filtered, int64_t *ids)
{
	char sql[200];
	sqlite3 *db = fx_sql_open(path, SQLITE_OPEN_READONLY);
	sqlite3_stmt *st;
	size_t n = 0;

	snprintf(sql, sizeof sql,
		 "SELECT event_id FROM litebus_outbox_completion %s "
		 "ORDER BY event_id",
		 filtered ? "WHERE namespace = 'ns1'" : "");
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && n < MAX_ROWS)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void
follower_open(litebus *bus, struct follower *f, enum follow_kind kind)
{
	litebus_filter flt = {.any_partition = 1, .ns = "ns1"};

	memset(f, 0, sizeof *f);
	f->kind = kind;
	f->got = malloc(MAX_ROWS * sizeof *f->got);
	assert_non_null(f->got);
	if (kind == F_CONSUMER)
		assert_int_equal(litebus_consumer_open(bus, CH, "follower",
						       LITEBUS_FROM_START, NULL,
						       &f->c),
				 LITEBUS_OK);
	else
		assert_int_equal(litebus_reader_open(
				     bus, CH, LITEBUS_FROM_START,
				     kind == F_FILTERED ? &flt : NULL, &f->r),
				 LITEBUS_OK);
}

static void
follower_close(struct follower *f)
{
	litebus_reader_close(f->r);
	litebus_consumer_close(f->c);
	free(f->got);
}

/* Read on until every follower holds what the table holds: without a
 * commit by this process, only the watcher can tell them.  Fails after
 * FX_WAIT_MS. */
static void
drain_and_compare(const char *path, struct follower *fs, int nf)
{
	int64_t *want = malloc(MAX_ROWS * sizeof *want);
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	assert_non_null(want);
	for (int i = 0; i < nf; i++) {
		struct follower *f = &fs[i];
		size_t n = truth(path, f->kind == F_FILTERED, want);

		while (f->n < n && fx_now_ms() < deadline) {
			int rc = follower_next(f, 100);

			if (rc != LITEBUS_OK && rc != LITEBUS_TIMEOUT)
				fail_msg("follower %d: %s", i,
					 litebus_errname(rc));
		}
		if (f->dup_or_disorder)
			fail_msg("follower %d: a row twice or out of order", i);
		if (f->n != n)
			fail_msg("follower %d: %zu of the %zu committed rows "
				 "within %d ms of the writer's last commit",
				 i, f->n, n, FX_WAIT_MS);
		assert_memory_equal(f->got, want, n * sizeof *want);
		/* Nothing beyond what the table holds. */
		assert_int_equal(follower_next(f, 0), LITEBUS_TIMEOUT);
	}
	free(want);
}

/* Follow while a writer runs, is killed, and a second one runs to its
 * end.  `o` says how this process opens the file. */
static void
follow_across_a_kill(struct bus_fixture *fx, litebus_options *o,
		     const enum follow_kind *kinds, int nf)
{
	struct follower fs[4];
	litebus *bus;
	pid_t pid;
	int st;

	assert_true(nf <= 4);
	pid = spawn_writer(fx->path, 1000000, 1u);
	bus = open_when_ready(fx->path, o);
	for (int i = 0; i < nf; i++)
		follower_open(bus, &fs[i], kinds[i]);
	/* Follow live until the first follower holds a few hundred rows,
	 * then kill the writer wherever it is. */
	{
		uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

		while (fs[0].n < 300) {
			for (int i = 0; i < nf; i++)
				while (follower_next(&fs[i], 0) == LITEBUS_OK)
					;
			if (fs[0].n >= 300)
				break;
			if (fx_now_ms() > deadline)
				fail_msg(
				    "only %zu rows from the writer process "
				    "within %d ms",
				    fs[0].n, FX_WAIT_MS);
			(void)follower_next(&fs[0], 200);
		}
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	st = wait_exit(pid);
	assert_true(WIFSIGNALED(st));
	/* A new writer process on the same file, to its end. */
	pid = spawn_writer(fx->path, 400, 2u);
	st = wait_exit(pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	drain_and_compare(fx->path, fs, nf);
	for (int i = 0; i < nf; i++)
		follower_close(&fs[i]);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* "Readers and durable consumers deliver every committed row of their
 * channel, whoever committed it: this bus, or any other connection to
 * the same file - another process's bus" - here a read-only bus
 * following a writer process that is killed and restarted. */
static void
a_read_only_bus_follows_another_process_across_its_kill_and_restart(
    void **state)
{
	struct bus_fixture *f = *state;
	const enum follow_kind kinds[] = {F_READER, F_FILTERED};
	litebus_options o;

	litebus_options_init(&o);
	o.read_only = 1;
	follow_across_a_kill(f, &o, kinds, 2);
}

/* The same with LITEBUS_WATCH_POLL: "polls PRAGMA data_version every
 * watch_interval_ms". */
static void
a_polling_watcher_follows_another_process_as_well(void **state)
{
	struct bus_fixture *f = *state;
	const enum follow_kind kinds[] = {F_READER, F_FILTERED};
	litebus_options o;

	litebus_options_init(&o);
	o.read_only = 1;
	o.watch = LITEBUS_WATCH_POLL;
	o.watch_interval_ms = 5;
	follow_across_a_kill(f, &o, kinds, 2);
}

/* A read-write bus is a follower too: a reader and a durable consumer
 * of a second service that writes to the same file. */
static void
a_read_write_bus_and_its_consumer_follow_another_process(void **state)
{
	struct bus_fixture *f = *state;
	const enum follow_kind kinds[] = {F_READER, F_CONSUMER};
	litebus_options o;

	litebus_options_init(&o);
	follow_across_a_kill(f, &o, kinds, 2);
}

/* ------------------------------------------------------------------ */
/* Two buses of one process on one file                                */

/* A read-only and a read-write bus of the same file in one process are
 * two buses; the read-only one's readers see the other's commits
 * through its watcher.  And LITEBUS_WATCH_OFF: "Rows committed elsewhere
 * are still delivered, exactly once and in order, but only once this bus
 * publishes something on the channel or the reader is reopened." */
static void
readers_of_a_read_only_bus_see_a_read_write_bus_of_the_same_process(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_options o;
	litebus *rw, *ro, *off;
	litebus_reader *r, *roff;
	int64_t ids[3];

	rw = fx_open_path(f->path, NULL);
	litebus_options_init(&o);
	o.read_only = 1;
	ro = fx_open_path(f->path, &o);
	assert_ptr_not_equal(ro, rw);
	r = fx_reader_open(ro, CH, LITEBUS_FROM_NOW, NULL);
	commit_events(rw, CH, 3, ids);
	for (int i = 0; i < 3; i++) {
		litebus_row row;

		assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(row.event_id, ids[i]);
	}
	fx_expect_no_row(r);
	litebus_reader_close(r);
	assert_int_equal(litebus_close(ro), LITEBUS_OK);
	/* No watcher: the rows are there, but nothing tells this reader. */
	o.watch = LITEBUS_WATCH_OFF;
	off = fx_open_path(f->path, &o);
	roff = fx_reader_open(off, CH, LITEBUS_FROM_NOW, NULL);
	commit_events(rw, CH, 3, ids);
	{
		litebus_row row;

		assert_int_equal(litebus_reader_next(roff, &row, 200),
				 LITEBUS_TIMEOUT);
		litebus_reader_close(roff);
		roff = fx_reader_open(off, CH, ids[0] - 1, NULL);
		for (int i = 0; i < 3; i++)
			fx_expect_row(roff, ids[i]);
	}
	litebus_reader_close(roff);
	assert_int_equal(litebus_close(off), LITEBUS_OK);
	assert_int_equal(litebus_close(rw), LITEBUS_OK);
}

/* A reader's fd turns readable for rows another connection commits (the
 * watcher writes it: C6), and stays unreadable after TIMEOUT otherwise. */
static void
a_reader_fd_turns_readable_for_rows_committed_elsewhere(void **state)
{
	struct bus_fixture *f = *state;
	litebus_options o;
	litebus *rw, *ro;
	litebus_reader *r;
	litebus_row row;
	int fd;

	rw = fx_open_path(f->path, NULL);
	litebus_options_init(&o);
	o.read_only = 1;
	ro = fx_open_path(f->path, &o);
	r = fx_reader_open(ro, CH, LITEBUS_FROM_NOW, NULL);
	fd = litebus_reader_fd(r);
	assert_true(fd >= 0);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	assert_false(fx_fd_readable(fd, 100));
	fx_commit_one(rw, CH);
	assert_true(fx_fd_readable(fd, FX_WAIT_MS));
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_OK);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	assert_false(fx_fd_readable(fd, 100));
	litebus_reader_close(r);
	assert_int_equal(litebus_close(ro), LITEBUS_OK);
	assert_int_equal(litebus_close(rw), LITEBUS_OK);
}

/* ------------------------------------------------------------------ */
/* Read-only buses                                                     */

static void
make_litebus_file(const char *path, const char *const *channels)
{
	litebus_options o;
	litebus *bus;

	fx_options_tiny(&o);
	o.channels = channels;
	bus = fx_open_path(path, &o);
	for (int c = 0; c < litebus_channel_count(bus); c++)
		fx_commit_one(bus, c);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

static int
open_ro(const char *path, const char *const *channels, litebus **bus)
{
	litebus_options o;

	litebus_options_init(&o);
	o.path = path;
	o.read_only = 1;
	o.channels = channels;
	return litebus_open(&o, bus);
}

/* "The file must exist ... a missing file is ECANTOPEN"; "anything else
 * as for a read-write open" (EFOREIGN for a database that is not
 * litebus's); neither is created nor changed. */
static void
a_read_only_open_refuses_missing_and_foreign_files_and_creates_nothing(
    void **state)
{
	struct bus_fixture *f = *state;
	char other[400];
	litebus *bus = (litebus *)1;
	struct stat st;

	assert_int_equal(open_ro(f->path, NULL, &bus), LITEBUS_ECANTOPEN);
	assert_null(bus);
	assert_int_equal(stat(f->path, &st), -1);
	snprintf(other, sizeof other, "%s/app.db", f->dir);
	fx_sql_run_at(other, "CREATE TABLE t(x); INSERT INTO t VALUES(1)");
	assert_int_equal(open_ro(other, NULL, &bus), LITEBUS_EFOREIGN);
	assert_int_equal(fx_sql_int_at(other, "SELECT count(*) FROM "
					      "sqlite_schema"),
			 1);
	snprintf(other, sizeof other, "%s/empty.db", f->dir);
	fx_sql_run_at(other, "PRAGMA user_version = 0");
	assert_int_equal(open_ro(other, NULL, &bus), LITEBUS_EFOREIGN);
}

/* "an older one is ESCHEMA until a read-write open has migrated it". */
static void
a_read_only_open_refuses_an_unmigrated_older_schema(void **state)
{
	struct bus_fixture *f = *state;
	char src[4096], cmd[9000];
	/* CMake compiles sources by absolute path. */
	const char *slash = strrchr(__FILE__, '/');
	litebus *bus;

	snprintf(src, sizeof src, "%.*s/../data/schema_v1.db",
		 (int)(slash - __FILE__), __FILE__);
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, f->path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(open_ro(f->path, NULL, &bus), LITEBUS_ESCHEMA);
	assert_non_null(strstr(litebus_last_errmsg(), "read-write"));
	assert_int_equal(fx_sql_int_at(f->path,
				       "SELECT value FROM litebus_meta "
				       "WHERE key = 'schema_version'"),
			 1);
	/* Migrated by a read-write open, it opens read-only. */
	bus = fx_open_path(f->path, NULL);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	assert_int_equal(open_ro(f->path, NULL, &bus), LITEBUS_OK);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* "The bus has every channel the file holds: the built-in ones (ids as
 * usual), then those named in options.channels (in that order; each must
 * exist in the file: ENOCHANNEL otherwise), then the file's others in
 * order of their names." */
static void
a_read_only_bus_has_every_channel_of_the_file_in_a_documented_order(
    void **state)
{
	struct bus_fixture *f = *state;
	const char *const made[] = {"zeta", "Alpha", "mid", NULL};
	const char *const want[] = {"MID", NULL};
	const char *const missing[] = {"nope", NULL};
	const char *const order[] = {"mid", "Alpha", "zeta"};
	litebus *bus;
	int64_t head, oldest;

	make_litebus_file(f->path, made);
	assert_int_equal(open_ro(f->path, missing, &bus), LITEBUS_ENOCHANNEL);
	assert_int_equal(open_ro(f->path, want, &bus), LITEBUS_OK);
	assert_int_equal(litebus_channel_count(bus),
			 LITEBUS_BUILTIN_CHANNELS + 3);
	assert_string_equal(litebus_channel_name(bus, CH), "completion");
	for (int i = 0; i < 3; i++)
		assert_string_equal(
		    litebus_channel_name(bus, LITEBUS_BUILTIN_CHANNELS + i),
		    order[i]);
	/* Its readers and the channel head work. */
	for (int c = 0; c < litebus_channel_count(bus); c++) {
		litebus_reader *r = fx_reader_open(bus, c, 0, NULL);

		assert_int_equal(litebus_channel_head(bus, c, &head, &oldest),
				 LITEBUS_OK);
		assert_int_equal(head, 1);
		fx_expect_row(r, 1);
		fx_expect_no_row(r);
		litebus_reader_close(r);
	}
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

static int
noop_job(litebus_tx *tx, void *arg)
{
	(void)tx;
	(void)arg;
	return 0;
}

/* "A bus holds at most LITEBUS_MAX_CHANNELS: of a file with more (several
 * read-write opens may each declare others), the ones beyond are left out
 * unless options.channels names them." */
static void
a_read_only_bus_of_a_file_with_more_channels_than_a_bus_holds(void **state)
{
	struct bus_fixture *f = *state;
	enum { PER_OPEN = LITEBUS_MAX_CHANNELS - LITEBUS_BUILTIN_CHANNELS };
	char names[2][PER_OPEN][16];
	const char *list[PER_OPEN + 1];
	const char *const last[] = {"b58", NULL};
	litebus_options o;
	litebus *bus;

	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < PER_OPEN; i++) {
			snprintf(names[k][i], sizeof names[k][i], "%c%02d",
				 k == 0 ? 'a' : 'b', i);
			list[i] = names[k][i];
		}
		list[PER_OPEN] = NULL;
		fx_options_tiny(&o);
		o.channels = list;
		bus = fx_open_path(f->path, &o);
		assert_int_equal(litebus_close(bus), LITEBUS_OK);
	}
	/* The file holds 5 + 2 x 59 channels. */
	assert_int_equal(open_ro(f->path, NULL, &bus), LITEBUS_OK);
	assert_int_equal(litebus_channel_count(bus), LITEBUS_MAX_CHANNELS);
	assert_string_equal(litebus_channel_name(bus, LITEBUS_BUILTIN_CHANNELS),
			    "a00");
	assert_int_equal(litebus_channel_id(bus, "b58"), LITEBUS_ENOCHANNEL);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	assert_int_equal(open_ro(f->path, last, &bus), LITEBUS_OK);
	assert_int_equal(litebus_channel_count(bus), LITEBUS_MAX_CHANNELS);
	assert_int_equal(litebus_channel_id(bus, "b58"),
			 LITEBUS_BUILTIN_CHANNELS);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* "litebus_exec(), litebus_submit(), litebus_prune(), litebus_subscribe()
 * (nothing is ever published), litebus_consumer_open() (positions are
 * writes) and litebus_consumer_delete() return LITEBUS_EREADONLY", and
 * "the bus never writes to the file". */
static void
a_read_only_bus_refuses_every_write_and_leaves_the_file_unchanged(void **state)
{
	struct bus_fixture *f = *state;
	litebus *bus;
	litebus_sub *sub = NULL;
	litebus_consumer *c = NULL;
	litebus_stats st;
	size_t count = 9;
	struct stat before, after;
	int64_t len = 0;
	char *db = NULL;

	make_litebus_file(f->path, NULL);
	{
		FILE *fp = fopen(f->path, "rb");

		assert_non_null(fp);
		len = fx_file_len(f->path);
		db = malloc((size_t)len);
		assert_int_equal(fread(db, 1, (size_t)len, fp), (size_t)len);
		fclose(fp);
	}
	assert_int_equal(stat(f->path, &before), 0);
	assert_int_equal(open_ro(f->path, NULL, &bus), LITEBUS_OK);
	assert_int_equal(litebus_exec(bus, noop_job, NULL), LITEBUS_EREADONLY);
	assert_int_equal(litebus_submit(bus, noop_job, NULL, NULL, NULL),
			 LITEBUS_EREADONLY);
	assert_int_equal(litebus_prune(bus, CH, 2), LITEBUS_EREADONLY);
	assert_int_equal(litebus_subscribe(bus, CH, &sub), LITEBUS_EREADONLY);
	assert_null(sub);
	assert_int_equal(litebus_consumer_open(bus, CH, "c", 0, NULL, &c),
			 LITEBUS_EREADONLY);
	assert_null(c);
	assert_int_equal(litebus_consumer_delete(bus, CH, "c"),
			 LITEBUS_EREADONLY);
	assert_non_null(strstr(litebus_last_errmsg(), "read-only"));
	assert_int_equal(litebus_consumer_list(bus, -1, NULL, 0, &count),
			 LITEBUS_OK);
	assert_int_equal(count, 0);
	assert_int_equal(litebus_stats_get(bus, &st), LITEBUS_OK);
	assert_int_equal(st.commits, 0);
	{
		litebus_reader *r = fx_reader_open(bus, CH, 0, NULL);

		fx_expect_row(r, 1);
		litebus_reader_close(r);
	}
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	assert_int_equal(stat(f->path, &after), 0);
	assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	assert_int_equal(fx_file_len(f->path), len);
	{
		FILE *fp = fopen(f->path, "rb");
		char *now = malloc((size_t)len);

		assert_non_null(fp);
		assert_int_equal(fread(now, 1, (size_t)len, fp), (size_t)len);
		fclose(fp);
		assert_memory_equal(now, db, (size_t)len);
		free(now);
	}
	free(db);
}

/* Read-only buses of one file share one handle, like read-write ones;
 * an in-memory database cannot be opened read-only. */
static void
read_only_opens_of_one_file_share_a_handle(void **state)
{
	struct bus_fixture *f = *state;
	litebus *a, *b;
	litebus_options o;

	make_litebus_file(f->path, NULL);
	assert_int_equal(open_ro(f->path, NULL, &a), LITEBUS_OK);
	assert_int_equal(open_ro(f->path, NULL, &b), LITEBUS_OK);
	assert_ptr_equal(a, b);
	assert_int_equal(litebus_close(b), LITEBUS_OK);
	assert_int_equal(litebus_close(a), LITEBUS_OK);
	litebus_options_init(&o);
	o.read_only = 1;
	assert_int_equal(litebus_open(&o, &a), LITEBUS_EINVAL);
	o.path = f->path;
	o.watch = 7;
	assert_int_equal(litebus_open(&o, &a), LITEBUS_EINVAL);
	o.watch = LITEBUS_WATCH_POLL;
	o.watch_interval_ms = 0;
	assert_int_equal(litebus_open(&o, &a), LITEBUS_EINVAL);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(
		a_read_only_bus_follows_another_process_across_its_kill_and_restart),
	    FX_TEST_TMPDIR(a_polling_watcher_follows_another_process_as_well),
	    FX_TEST_TMPDIR(
		a_read_write_bus_and_its_consumer_follow_another_process),
	    FX_TEST_TMPDIR(
		readers_of_a_read_only_bus_see_a_read_write_bus_of_the_same_process),
	    FX_TEST_TMPDIR(
		a_reader_fd_turns_readable_for_rows_committed_elsewhere),
	    FX_TEST_TMPDIR(
		a_read_only_open_refuses_missing_and_foreign_files_and_creates_nothing),
	    FX_TEST_TMPDIR(a_read_only_open_refuses_an_unmigrated_older_schema),
	    FX_TEST_TMPDIR(
		a_read_only_bus_has_every_channel_of_the_file_in_a_documented_order),
	    FX_TEST_TMPDIR(
		a_read_only_bus_of_a_file_with_more_channels_than_a_bus_holds),
	    FX_TEST_TMPDIR(
		a_read_only_bus_refuses_every_write_and_leaves_the_file_unchanged),
	    FX_TEST_TMPDIR(read_only_opens_of_one_file_share_a_handle),
	};
	ssize_t n;

	if (argc == 5 && strcmp(argv[1], "--writer") == 0)
		return writer_main(argv[2], atoi(argv[3]),
				   (unsigned)strtoul(argv[4], NULL, 10));
	n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	if (n <= 0)
		return 1;
	self_path[n] = '\0';
	return cmocka_run_group_tests(tests, NULL, NULL);
}
