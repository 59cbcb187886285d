/* SPDX-License-Identifier: MIT */
/*
 * baseline_naive.h - the naive bus: what a careful C programmer writes in
 * an afternoon.
 *
 * Producer threads share one SQLite connection behind a mutex and commit
 * one transaction per event (same table, same index as litebus), then,
 * still under the mutex so the ring's order is the commit order, push the
 * event into a mutex + condvar broadcast ring (baseline_ring.h, overwrite
 * oldest).  A subscriber takes ring records; a reader does the same but,
 * when the ring has lapped it, re-reads what it missed from the table with
 * its own connection, then goes back to the ring.
 *
 * Its readers deliver the ring's record (id, key, subject prefix), not
 * the whole row, which favours the naive bus over litebus's readers (they
 * read every row from the table).
 *
 * Threads: naive_publish from any thread; a subscriber or reader by one
 * thread at a time.
 */
#ifndef BENCH_BASELINE_NAIVE_H
#define BENCH_BASELINE_NAIVE_H

#include "baseline_ring.h"
#include "bench.h"

#include <pthread.h>
#include <sqlite3.h>

struct naive_bus {
	pthread_mutex_t lock; /* guards db and its statements */
	sqlite3 *db;
	sqlite3_stmt *begin, *insert, *commit;
	struct bring ring;
	char path[512];
};

/* What a naive reader or subscriber delivers. */
struct naive_event {
	int64_t event_id;
	uint64_t key;
	unsigned char subject[BENCH_SUBJECT_LEN];
	size_t subject_len;
	int64_t committed_at_ms;
};

enum { NAIVE_OK = 0, NAIVE_LAGGED = 1, NAIVE_TIMEOUT = 2, NAIVE_CLOSED = 3 };

/* Create the table in a fresh file; exits on SQLite errors. */
void naive_open(struct naive_bus *nb, const char *path, int durability,
		uint32_t ring_capacity);
/* Commit one event with this key in its own transaction, then publish it.
 * Returns its event_id.  Exits on SQLite errors. */
int64_t naive_publish(struct naive_bus *nb, uint64_t key);
/* No more events: subscribers and readers drain, then see CLOSED. */
void naive_close_ring(struct naive_bus *nb);
/* After every subscriber and reader is done. */
void naive_close(struct naive_bus *nb);

/* Raw subscriber: NAIVE_OK, NAIVE_LAGGED (sub.last_skipped lost),
 * NAIVE_TIMEOUT, NAIVE_CLOSED. */
struct naive_sub {
	struct bring_sub sub;
};
void naive_sub_open(struct naive_sub *s, struct naive_bus *nb);
int naive_sub_recv(struct naive_sub *s, struct naive_event *ev, int timeout_ms);

/* Reader: every committed event in order; NAIVE_OK, NAIVE_TIMEOUT,
 * NAIVE_CLOSED. */
#define NAIVE_READER_BATCH 256
struct naive_reader {
	struct bring_sub sub;
	sqlite3 *db;
	sqlite3_stmt *select;
	int64_t last_id;
	bool from_table; /* lapped: read the table until it has no more */
	struct naive_event buf[NAIVE_READER_BATCH];
	size_t count, next;
	uint64_t lags, queries;
};
void naive_reader_open(struct naive_reader *r, struct naive_bus *nb);
int naive_reader_next(struct naive_reader *r, struct naive_event *ev,
		      int timeout_ms);
void naive_reader_close(struct naive_reader *r);

/* ------------------------------------------------------------------ */
/* Ceilings (ceiling.c)                                                 */

/* One thread, a prepared INSERT, 1024 rows per transaction, same rows in
 * the same table and index, fresh file: rows committed per second. */
double ceiling_insert(int durability, uint64_t rows);
/* The plain catch-up loop on its own read-only connection: SELECT every
 * column WHERE event_id > ? ORDER BY event_id LIMIT 256, rebound after
 * each batch, until no row is left.  Returns rows/s; *count rows read,
 * *in_order false if ids did not increase by one from 1. */
double ceiling_select(const char *path, uint64_t *count, bool *in_order);

#endif
