/* SPDX-License-Identifier: MIT */
/*
 * bench_idalloc - how should the writer allocate event_ids?
 *
 * Question: is INTEGER PRIMARY KEY AUTOINCREMENT (ids never reused, at the
 * cost of rewriting the sqlite_sequence page on every commit) slower than
 * ids handed out by the writer above a high-water mark kept by a DELETE
 * trigger (what litebus does, lib/outbox.c)?
 *
 * Both variants insert the same outbox rows (same columns, same index) in
 * WAL mode; one row per transaction, and 256 rows per transaction.  The
 * variants alternate within one run and each figure is the median of the
 * repetitions, printed as a ratio to AUTOINCREMENT measured in the same
 * run (these machines are shared; absolute figures drift).
 *
 * usage: bench_idalloc [rows] [reps]
 */
#define _XOPEN_SOURCE 700
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
check(int rc, sqlite3 *db, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
		exit(1);
	}
}

static const char *const schema[2] = {
    "CREATE TABLE o(event_id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "partition_key INTEGER NOT NULL, subject BLOB, event_type TEXT NOT NULL, "
    "namespace TEXT, instance_tag TEXT, payload BLOB, "
    "occurred_at_ms INTEGER NOT NULL, committed_at_ms INTEGER NOT NULL);"
    "CREATE INDEX o_p ON o(partition_key, event_id);",
    "CREATE TABLE hw(name TEXT PRIMARY KEY, high_water INTEGER NOT NULL) "
    "WITHOUT ROWID; INSERT INTO hw VALUES('o', 0);"
    "CREATE TABLE o(event_id INTEGER PRIMARY KEY, "
    "partition_key INTEGER NOT NULL, subject BLOB, event_type TEXT NOT NULL, "
    "namespace TEXT, instance_tag TEXT, payload BLOB, "
    "occurred_at_ms INTEGER NOT NULL, committed_at_ms INTEGER NOT NULL);"
    "CREATE INDEX o_p ON o(partition_key, event_id);"
    "CREATE TRIGGER o_hw AFTER DELETE ON o BEGIN UPDATE hw SET high_water = "
    "OLD.event_id WHERE name = 'o' AND high_water < OLD.event_id; END;",
};
static const char *const names[2] = {"autoincrement", "writer_high_water"};

/* Rows per second for `rows` rows, `per_tx` rows per transaction. */
static double
run(const char *dir, int variant, int rows, int per_tx, int rep)
{
	char path[512];
	sqlite3 *db;
	sqlite3_stmt *ins, *begin, *commit;
	double t0, t1;
	int64_t id = 0;

	snprintf(path, sizeof path, "%s/idalloc-%d-%d-%d.db", dir, variant,
		 per_tx, rep);
	check(sqlite3_open(path, &db), db, "open");
	check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA "
			       "synchronous=NORMAL",
			   NULL, NULL, NULL),
	      db, "pragma");
	check(sqlite3_exec(db, schema[variant], NULL, NULL, NULL), db,
	      "schema");
	check(sqlite3_prepare_v2(
		  db,
		  variant == 0
		      ? "INSERT INTO o(partition_key, subject, event_type, "
			"namespace, instance_tag, payload, occurred_at_ms, "
			"committed_at_ms) VALUES(?2, x'0102030405060708', "
			"'success', 'ns', NULL, x'00112233', 1, 2)"
		      : "INSERT INTO o(event_id, partition_key, subject, "
			"event_type, namespace, instance_tag, payload, "
			"occurred_at_ms, committed_at_ms) VALUES(?1, ?2, "
			"x'0102030405060708', 'success', 'ns', NULL, "
			"x'00112233', 1, 2)",
		  -1, &ins, NULL),
	      db, "prepare");
	check(sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL), db,
	      "begin");
	check(sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL), db,
	      "commit");
	t0 = now_s();
	for (int i = 0; i < rows; i += per_tx) {
		check(sqlite3_step(begin), db, "begin");
		sqlite3_reset(begin);
		for (int k = 0; k < per_tx; k++) {
			if (variant == 1)
				sqlite3_bind_int64(ins, 1, ++id);
			sqlite3_bind_int64(ins, 2, (i + k) % 64);
			check(sqlite3_step(ins), db, "insert");
			sqlite3_reset(ins);
		}
		check(sqlite3_step(commit), db, "commit");
		sqlite3_reset(commit);
	}
	t1 = now_s();
	sqlite3_finalize(ins);
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_close(db);
	return rows / (t1 - t0);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	int rows = argc > 1 ? atoi(argv[1]) : 20000;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	const int per_tx[2] = {1, 256};
	char dir[] = "/tmp/litebus-bench-XXXXXX";
	double *r[2];

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	r[0] = calloc((size_t)reps, sizeof(double));
	r[1] = calloc((size_t)reps, sizeof(double));
	for (int p = 0; p < 2; p++) {
		for (int rep = 0; rep < reps; rep++)
			for (int v = 0; v < 2; v++) /* alternate variants */
				r[v][rep] = run(dir, v, rows, per_tx[p], rep);
		qsort(r[0], (size_t)reps, sizeof(double), cmp_double);
		qsort(r[1], (size_t)reps, sizeof(double), cmp_double);
		for (int v = 0; v < 2; v++)
			printf("idalloc variant=%s rows_per_tx=%d rows=%d "
			       "median_rows_s=%.0f min=%.0f max=%.0f "
			       "ratio_vs_autoincrement=%.2f\n",
			       names[v], per_tx[p], rows, r[v][reps / 2],
			       r[v][0], r[v][reps - 1],
			       r[v][reps / 2] / r[0][reps / 2]);
	}
	/* Leave no files behind. */
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(r[0]);
	free(r[1]);
	return 0;
}
