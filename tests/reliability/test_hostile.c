/* SPDX-License-Identifier: MIT */
/*
 * test_hostile.c - hostile database files: truncated, corrupted, or with
 * outbox tables of the wrong shape.  (Files of other applications and
 * planted litebus_* objects, one variant each: test_foreign_files.c.)  litebus either opens them and then
 * reads, writes and closes without crashing (ASan checks memory), or
 * refuses with a documented error and leaves the file's bytes unchanged.
 *
 * Every connection runs with SQLITE_DBCONFIG_DEFENSIVE and trusted_schema
 * off (lib/outbox.c), and litebus_open refuses litebus_* objects it did
 * not create: a trigger planted in the file never runs.
 */
#include "fixture.h"

#include <setjmp.h>
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

static unsigned char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *buf;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static void
spit(const char *path, const unsigned char *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	fclose(fp);
}

static void
remove_sidecars(const char *path)
{
	char p[600];

	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

static bool
documented_open_error(int rc)
{
	return rc == LITEBUS_ENOTDB || rc == LITEBUS_ESQLITE ||
	       rc == LITEBUS_ESCHEMA || rc == LITEBUS_EIO ||
	       rc == LITEBUS_ECANTOPEN || rc == LITEBUS_EREADONLY ||
	       rc == LITEBUS_EFOREIGN;
}

/* Open `path`; on failure the bytes must be as before; on success, read
 * everything, commit a job, close. */
static void
open_hostile(struct bus_fixture *f, const char *what)
{
	size_t before_len, after_len;
	unsigned char *before = slurp(f->path, &before_len), *after;
	litebus *bus;
	int rc;

	f->opts.path = f->path;
	rc = litebus_open(&f->opts, &bus);
	if (rc != LITEBUS_OK) {
		if (!documented_open_error(rc))
			fail_msg("%s: open returned %s: %s", what,
				 litebus_errname(rc), litebus_last_errmsg());
		after = slurp(f->path, &after_len);
		if (after_len != before_len ||
		    memcmp(before, after, before_len) != 0)
			fail_msg("%s: open failed (%s) but changed the file",
				 what, litebus_errname(rc));
		free(after);
		free(before);
		return;
	}
	for (int c = 0; c < LITEBUS_BUILTIN_CHANNELS; c++) {
		litebus_reader *r;
		litebus_row row;
		if (litebus_reader_open(bus, c, LITEBUS_FROM_START, NULL, &r) !=
		    LITEBUS_OK)
			continue;
		for (int i = 0; i < 100000; i++) {
			rc = litebus_reader_next(r, &row, 0);
			if (rc != LITEBUS_OK)
				break;
		}
		assert_true(rc == LITEBUS_TIMEOUT || rc < 0);
		litebus_reader_close(r);
	}
	rc = litebus_exec(bus, NULL, NULL); /* EINVAL, not a crash */
	assert_int_equal(rc, LITEBUS_EINVAL);
	rc = litebus_exec(bus, fx_emit_one_job, NULL);
	if (rc != 0 && !documented_open_error(rc) && rc != LITEBUS_EBUSY)
		fail_msg("%s: a job returned %s: %s", what, litebus_errname(rc),
			 litebus_last_errmsg());
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	free(before);
}

static void
make_litebus_db(struct bus_fixture *f, int events)
{
	fx_open(f);
	commit_batch(f->bus, LITEBUS_COMPLETION, events, NULL);
	commit_batch(f->bus, LITEBUS_LEASE_HISTORY, events / 2, NULL);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	remove_sidecars(f->path);
}

static void
truncated_databases_are_refused_untouched_or_read_safely(void **state)
{
	struct bus_fixture *f = *state;
	static const double fractions[] = {0.9, 0.5, 0.25, 0.1};
	static const size_t sizes[] = {4096, 1000, 100, 16};
	size_t len;
	unsigned char *good;
	char what[64];

	make_litebus_db(f, 3000);
	good = slurp(f->path, &len);
	for (size_t i = 0; i < sizeof fractions / sizeof fractions[0]; i++) {
		spit(f->path, good, (size_t)((double)len * fractions[i]));
		snprintf(what, sizeof what, "truncated to %.0f%%",
			 fractions[i] * 100);
		open_hostile(f, what);
		remove_sidecars(f->path);
	}
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		spit(f->path, good, sizes[i]);
		snprintf(what, sizeof what, "truncated to %zu bytes", sizes[i]);
		open_hostile(f, what);
		remove_sidecars(f->path);
	}
	free(good);
}

static void
corrupted_databases_are_refused_untouched_or_read_safely(void **state)
{
	struct bus_fixture *f = *state;
	size_t len;
	unsigned char *good, *bad;
	unsigned seed = 12345;
	char what[64];

	make_litebus_db(f, 3000);
	good = slurp(f->path, &len);
	bad = malloc(len);
	assert_non_null(bad);
	for (int round = 0; round < 40; round++) {
		memcpy(bad, good, len);
		/* Scribble over a few spans, sometimes in page 1. */
		for (int k = 0; k < 1 + round % 4; k++) {
			size_t off = round % 5 == 0
					 ? (size_t)(rand_r(&seed) % 100)
					 : (size_t)rand_r(&seed) % len;
			size_t n = 1 + (size_t)rand_r(&seed) % 64;
			for (size_t b = off; b < off + n && b < len; b++)
				bad[b] = (unsigned char)rand_r(&seed);
		}
		spit(f->path, bad, len);
		snprintf(what, sizeof what, "corruption round %d", round);
		open_hostile(f, what);
		remove_sidecars(f->path);
	}
	free(bad);
	free(good);
}

static void
exec_sql_file(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("setup SQL failed: %s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* Contract, litebus_open(): "ESCHEMA (... litebus_* objects that litebus
 * did not create or of another shape)". */
static void
an_outbox_table_of_the_wrong_shape_is_refused_untouched(void **state)
{
	struct bus_fixture *f = *state;
	int rc;

	make_litebus_db(f, 10);
	exec_sql_file(f->path,
		      "DROP TABLE litebus_outbox_completion;"
		      "CREATE TABLE litebus_outbox_completion(x);"
		      "INSERT INTO litebus_outbox_completion VALUES(1);");
	open_hostile(f, "wrong-shaped outbox");
	f->opts.path = f->path;
	rc = litebus_open(&f->opts, &f->bus);
	assert_int_equal(rc, LITEBUS_ESCHEMA);
	assert_non_null(strstr(litebus_last_errmsg(), "litebus_outbox"));
}

/* Contract, litebus_open(): "every index, trigger or view on a litebus_*
 * table, must be exactly what litebus creates".  A trigger planted in the
 * file is refused before any statement is compiled against it, and the
 * file is unchanged.  (One planted while the bus runs meets the
 * untrusted-schema setting instead: test_outbox.c,
 * a_planted_trigger_using_an_unsafe_function_does_not_run.) */
static void
a_planted_trigger_cannot_run_unsafe_functions(void **state)
{
	struct bus_fixture *f = *state;

	litebus *bus;

	make_litebus_db(f, 10);
	exec_sql_file(f->path,
		      "CREATE TRIGGER planted AFTER INSERT ON "
		      "litebus_outbox_completion BEGIN SELECT "
		      "load_extension('/nonexistent/evil.so'); END;");
	open_hostile(f, "planted trigger");
	f->opts.path = f->path;
	assert_int_equal(litebus_open(&f->opts, &bus), LITEBUS_ESCHEMA);
	assert_non_null(strstr(litebus_last_errmsg(), "planted"));
	assert_int_equal(fx_count_rows(f->path, "completion"), 10);
}

static int
open_status(const char *path)
{
	litebus_options o;
	litebus *bus;
	int rc;

	litebus_options_init(&o);
	o.path = path;
	rc = litebus_open(&o, &bus);
	if (rc == LITEBUS_OK)
		litebus_close(bus);
	return rc;
}

static void
a_read_only_directory_is_refused_clearly(void **state)
{
	struct bus_fixture *f = *state;
	char dir[300];
	int rc, status;

	snprintf(dir, sizeof dir, "%s/ro", f->dir);
	assert_int_equal(mkdir(dir, 0555), 0);
	assert_int_equal(chmod(f->dir, 0755), 0);
	snprintf(f->path, sizeof f->path, "%s/ro/test.db", f->dir);
	if (geteuid() != 0) {
		rc = open_status(f->path);
	} else {
		/* Root ignores permissions: try as nobody in a child. */
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(100);
			_exit(-open_status(f->path));
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_not_equal(WEXITSTATUS(status), 100);
		rc = -WEXITSTATUS(status);
	}
	if (rc != LITEBUS_ECANTOPEN && rc != LITEBUS_EREADONLY)
		fail_msg("open in a read-only directory returned %s",
			 litebus_errname(rc));
	chmod(dir, 0755);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(truncated_databases_are_refused_untouched_or_read_safely),
	    FX_TEST_TMPDIR(corrupted_databases_are_refused_untouched_or_read_safely),
	    FX_TEST_TMPDIR(an_outbox_table_of_the_wrong_shape_is_refused_untouched),
	    FX_TEST_TMPDIR(a_planted_trigger_cannot_run_unsafe_functions),
	    FX_TEST_TMPDIR(a_read_only_directory_is_refused_clearly),
	};

	return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}
