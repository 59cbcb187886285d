/* SPDX-License-Identifier: MIT */
/*
 * ceiling.c - the physical limits on this machine, measured beside
 * litebus in the same run (see baseline_naive.h).
 *
 * ceiling_insert: one thread, no bus, a prepared INSERT of the same rows
 * into the same table and index, 1024 rows per transaction, event_ids
 * bound by the caller as litebus's writer does.  No design that writes
 * these rows to SQLite can beat it by much.
 *
 * ceiling_select: the plain catch-up loop that a litebus reader wraps.
 */
#include "baseline_naive.h"

#include <stdio.h>
#include <stdlib.h>

#define CEILING_ROWS_PER_TX 1024

double
ceiling_insert(int durability, uint64_t rows)
{
	char path[512];
	unsigned char subject[BENCH_SUBJECT_LEN];
	sqlite3 *db;
	sqlite3_stmt *begin, *insert, *commit;
	uint64_t t0, t1;
	int64_t count, lo, hi;

	bench_db_path(path, sizeof path, "ceiling");
	db = bench_sqlite_open(path, durability, true);
	bench_sqlite_check(
	    sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL), db,
	    "prepare");
	bench_sqlite_check(
	    sqlite3_prepare_v2(db, bench_insert_id_sql, -1, &insert, NULL), db,
	    "prepare");
	bench_sqlite_check(sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL),
			   db, "prepare");
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < rows;) {
		int64_t now_ms = bench_wall_ms();

		bench_sqlite_check(sqlite3_step(begin), db, "BEGIN");
		sqlite3_reset(begin);
		for (int k = 0; k < CEILING_ROWS_PER_TX && i < rows; k++, i++) {
			/* The key of producer i % 4, as with 4 producers. */
			uint64_t key = BENCH_KEY(i % 4, i / 4);

			bench_subject(subject, key);
			sqlite3_bind_int64(insert, 1, (int64_t)key);
			sqlite3_bind_blob(insert, 2, subject, BENCH_SUBJECT_LEN,
					  SQLITE_STATIC);
			sqlite3_bind_blob(insert, 3, bench_payload,
					  BENCH_PAYLOAD_LEN, SQLITE_STATIC);
			sqlite3_bind_int64(insert, 4, bench_wall_ms());
			sqlite3_bind_int64(insert, 5, now_ms);
			sqlite3_bind_int64(insert, 6, (int64_t)i + 1);
			bench_sqlite_check(sqlite3_step(insert), db, "INSERT");
			sqlite3_reset(insert);
		}
		bench_sqlite_check(sqlite3_step(commit), db, "COMMIT");
		sqlite3_reset(commit);
	}
	t1 = bench_now_ns();
	sqlite3_finalize(begin);
	sqlite3_finalize(insert);
	sqlite3_finalize(commit);
	sqlite3_close(db);
	bench_table_summary(path, &count, &lo, &hi);
	if (count != (int64_t)rows) {
		fprintf(stderr,
			"litebus-bench: ceiling wrote %lld rows of "
			"%llu\n",
			(long long)count, (unsigned long long)rows);
		exit(2);
	}
	bench_db_remove(path);
	return (double)rows / bench_secs(t1 - t0);
}

double
ceiling_select(const char *path, uint64_t *count, bool *in_order)
{
	char sql[512];
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	uint64_t t0, t1, n = 0, sum = 0;
	int64_t last = 0;
	int rc;

	*in_order = true;
	rc = sqlite3_open_v2(path, &db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	bench_sqlite_check(rc, db, "open (select ceiling)");
	sqlite3_busy_timeout(db, 5000);
	snprintf(sql, sizeof sql,
		 "SELECT %s FROM \"%s\" WHERE event_id > ?1 ORDER BY event_id "
		 "LIMIT 256",
		 bench_row_columns, BENCH_TABLE);
	bench_sqlite_check(sqlite3_prepare_v2(db, sql, -1, &st, NULL), db,
			   "prepare");
	t0 = bench_now_ns();
	for (;;) {
		uint64_t got = 0;

		sqlite3_bind_int64(st, 1, last);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t id = sqlite3_column_int64(st, 0);

			/* Fetch every column, as a consumer would. */
			sum += (uint64_t)sqlite3_column_int64(st, 1);
			(void)sqlite3_column_blob(st, 2);
			sum += (uint64_t)sqlite3_column_bytes(st, 2);
			(void)sqlite3_column_text(st, 3);
			sum += (uint64_t)sqlite3_column_bytes(st, 3);
			(void)sqlite3_column_text(st, 4);
			(void)sqlite3_column_text(st, 5);
			(void)sqlite3_column_blob(st, 6);
			sum += (uint64_t)sqlite3_column_bytes(st, 6);
			sum += (uint64_t)sqlite3_column_int64(st, 7);
			sum += (uint64_t)sqlite3_column_int64(st, 8);
			if (id != last + 1)
				*in_order = false;
			last = id;
			got++;
		}
		sqlite3_reset(st);
		bench_sqlite_check(rc, db, "SELECT");
		n += got;
		if (got == 0)
			break;
	}
	t1 = bench_now_ns();
	sqlite3_finalize(st);
	sqlite3_close(db);
	*count = n;
	/* Keep the column loads observable. */
	if (sum == 42)
		fputc(' ', stderr);
	return (double)n / bench_secs(t1 - t0);
}
