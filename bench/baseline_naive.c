/* SPDX-License-Identifier: MIT */
/*
 * baseline_naive.c - the naive bus (see baseline_naive.h), and the naive
 * bus as a contender (contender.h).
 */
#include "baseline_naive.h"
#include "contender.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sqlite3_stmt *
naive_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;

	bench_sqlite_check(sqlite3_prepare_v2(db, sql, -1, &st, NULL), db, sql);
	return st;
}

void
naive_open(struct naive_bus *nb, const char *path, int durability,
	   uint32_t ring_capacity)
{
	memset(nb, 0, sizeof *nb);
	snprintf(nb->path, sizeof nb->path, "%s", path);
	nb->db = bench_sqlite_open(path, durability, true);
	nb->begin = naive_prepare(nb->db, "BEGIN IMMEDIATE");
	nb->insert = naive_prepare(nb->db, bench_insert_sql);
	nb->commit = naive_prepare(nb->db, "COMMIT");
	pthread_mutex_init(&nb->lock, NULL);
	if (bring_init(&nb->ring, ring_capacity) != 0) {
		fprintf(stderr, "litebus-bench: out of memory\n");
		exit(2);
	}
}

static void
naive_step(struct naive_bus *nb, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	bench_sqlite_check(rc, nb->db, what);
}

int64_t
naive_publish(struct naive_bus *nb, uint64_t key)
{
	unsigned char subject[BENCH_SUBJECT_LEN];
	struct bring_rec rec;
	int64_t now_ms = bench_wall_ms(), id;

	bench_subject(subject, key);
	pthread_mutex_lock(&nb->lock);
	naive_step(nb, nb->begin, "BEGIN");
	sqlite3_bind_int64(nb->insert, 1, (int64_t)key);
	sqlite3_bind_blob(nb->insert, 2, subject, BENCH_SUBJECT_LEN,
			  SQLITE_STATIC);
	sqlite3_bind_blob(nb->insert, 3, bench_payload, BENCH_PAYLOAD_LEN,
			  SQLITE_STATIC);
	sqlite3_bind_int64(nb->insert, 4, now_ms);
	sqlite3_bind_int64(nb->insert, 5, now_ms);
	naive_step(nb, nb->insert, "INSERT");
	id = sqlite3_last_insert_rowid(nb->db);
	naive_step(nb, nb->commit, "COMMIT");

	memset(&rec, 0, sizeof rec);
	rec.event_id = id;
	rec.partition_key = (int64_t)key;
	rec.committed_at_ms = now_ms;
	rec.subject_len = BENCH_SUBJECT_LEN;
	memcpy(rec.subject_prefix, subject, BENCH_SUBJECT_LEN);
	bring_publish(&nb->ring, &rec, 1);
	pthread_mutex_unlock(&nb->lock);
	return id;
}

void
naive_close_ring(struct naive_bus *nb)
{
	bring_close(&nb->ring);
}

void
naive_close(struct naive_bus *nb)
{
	sqlite3_finalize(nb->begin);
	sqlite3_finalize(nb->insert);
	sqlite3_finalize(nb->commit);
	sqlite3_close(nb->db);
	pthread_mutex_destroy(&nb->lock);
	bring_fini(&nb->ring);
}

static void
naive_event_from_rec(struct naive_event *ev, const struct bring_rec *rec)
{
	ev->event_id = rec->event_id;
	ev->key = (uint64_t)rec->partition_key;
	ev->subject_len = rec->subject_len;
	memcpy(ev->subject, rec->subject_prefix, BENCH_SUBJECT_LEN);
	ev->committed_at_ms = rec->committed_at_ms;
}

void
naive_sub_open(struct naive_sub *s, struct naive_bus *nb)
{
	bring_sub_init(&s->sub, &nb->ring);
}

int
naive_sub_recv(struct naive_sub *s, struct naive_event *ev, int timeout_ms)
{
	struct bring_rec rec;

	switch (bring_recv(&s->sub, &rec, timeout_ms)) {
	case BRING_OK:
		naive_event_from_rec(ev, &rec);
		return NAIVE_OK;
	case BRING_LAGGED:
		return NAIVE_LAGGED;
	case BRING_TIMEOUT:
		return NAIVE_TIMEOUT;
	case BRING_CLOSED:
		break;
	}
	return NAIVE_CLOSED;
}

void
naive_reader_open(struct naive_reader *r, struct naive_bus *nb)
{
	char sql[512];
	int rc;

	memset(r, 0, sizeof *r);
	bring_sub_init(&r->sub, &nb->ring);
	rc = sqlite3_open_v2(nb->path, &r->db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	bench_sqlite_check(rc, r->db, "open (naive reader)");
	sqlite3_busy_timeout(r->db, 5000);
	snprintf(sql, sizeof sql,
		 "SELECT event_id, partition_key, subject, committed_at_ms "
		 "FROM \"%s\" WHERE event_id > ?1 ORDER BY event_id LIMIT %d",
		 BENCH_TABLE, NAIVE_READER_BATCH);
	r->select = naive_prepare(r->db, sql);
}

/* Read the next batch after last_id from the table; 0 rows: caught up. */
static void
naive_reader_query(struct naive_reader *r)
{
	sqlite3_stmt *st = r->select;
	size_t n = 0;
	int rc;

	r->queries++;
	sqlite3_bind_int64(st, 1, r->last_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW &&
	       n < NAIVE_READER_BATCH) {
		struct naive_event *ev = &r->buf[n++];
		const void *subj = sqlite3_column_blob(st, 2);
		int len = sqlite3_column_bytes(st, 2);

		ev->event_id = sqlite3_column_int64(st, 0);
		ev->key = (uint64_t)sqlite3_column_int64(st, 1);
		ev->subject_len = len > 0 ? (size_t)len : 0;
		memset(ev->subject, 0, sizeof ev->subject);
		if (subj != NULL)
			memcpy(ev->subject, subj,
			       ev->subject_len < BENCH_SUBJECT_LEN
				   ? ev->subject_len
				   : BENCH_SUBJECT_LEN);
		ev->committed_at_ms = sqlite3_column_int64(st, 3);
	}
	sqlite3_reset(st);
	bench_sqlite_check(rc, r->db, "naive reader SELECT");
	r->count = n;
	r->next = 0;
	if (n == 0)
		r->from_table = false;
}

int
naive_reader_next(struct naive_reader *r, struct naive_event *ev,
		  int timeout_ms)
{
	struct bring_rec rec;

	for (;;) {
		if (r->next < r->count) {
			*ev = r->buf[r->next++];
			r->last_id = ev->event_id;
			return NAIVE_OK;
		}
		if (r->from_table) {
			naive_reader_query(r);
			continue;
		}
		switch (bring_recv(&r->sub, &rec, timeout_ms)) {
		case BRING_OK:
			if (rec.event_id <= r->last_id)
				continue; /* already read from the table */
			naive_event_from_rec(ev, &rec);
			r->last_id = ev->event_id;
			return NAIVE_OK;
		case BRING_LAGGED:
			r->lags++;
			r->from_table = true;
			continue;
		case BRING_TIMEOUT:
			return NAIVE_TIMEOUT;
		case BRING_CLOSED:
			return NAIVE_CLOSED;
		}
	}
}

void
naive_reader_close(struct naive_reader *r)
{
	sqlite3_finalize(r->select);
	sqlite3_close(r->db);
	r->select = NULL;
	r->db = NULL;
}

/* ------------------------------------------------------------------ */
/* The naive bus as a contender (contender.h)                          */

struct naive_consumer {
	bool is_reader;
	struct naive_reader reader; /* a reader, or */
	struct naive_sub sub;	    /* a subscriber */
	struct naive_event ev;	    /* the last event, for its subject */
};

static void *
naive_c_open(const char *path, int durability, uint32_t ring_capacity)
{
	struct naive_bus *nb = malloc(sizeof *nb);

	if (nb == NULL) {
		fprintf(stderr, "litebus-bench: out of memory\n");
		exit(2);
	}
	naive_open(nb, path, durability, ring_capacity);
	return nb;
}

static int
naive_c_exec(void *bus, uint64_t key)
{
	naive_publish(bus, key);
	return 0;
}

/* The naive bus has no asynchronous submit: the event is committed and
 * published in the caller's thread, and acknowledged before returning. */
static int
naive_c_submit(void *bus, uint64_t key, void (*done)(int, void *), void *arg)
{
	naive_publish(bus, key);
	done(0, arg);
	return LITEBUS_OK;
}

static void *
naive_c_attach(void *bus, enum contender_kind kind)
{
	struct naive_consumer *c;

	if (kind == CONTENDER_IDLE)
		return NULL; /* an unread naive cursor costs nothing */
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		fprintf(stderr, "litebus-bench: out of memory\n");
		exit(2);
	}
	c->is_reader = kind == CONTENDER_READER;
	if (c->is_reader)
		naive_reader_open(&c->reader, bus);
	else
		naive_sub_open(&c->sub, bus);
	return c;
}

/* NAIVE_* and LITEBUS_* agree on OK, LAGGED, TIMEOUT and CLOSED. */
static int
naive_c_next(void *consumer, struct contender_delivery *d, int timeout_ms)
{
	struct naive_consumer *c = consumer;
	int rc = c->is_reader
		     ? naive_reader_next(&c->reader, &c->ev, timeout_ms)
		     : naive_sub_recv(&c->sub, &c->ev, timeout_ms);

	if (rc == NAIVE_OK) {
		d->event_id = c->ev.event_id;
		d->key = c->ev.key;
		d->subject = c->ev.subject;
		d->subject_len = c->ev.subject_len;
	} else if (rc == NAIVE_LAGGED) {
		d->skipped = c->sub.sub.last_skipped;
	}
	return rc;
}

/* Its readers take ring records, never rows from memory in litebus's
 * sense: nothing to count. */
static uint64_t
naive_c_reader_memory_rows(const void *consumer)
{
	(void)consumer;
	return 0;
}

static uint64_t
naive_c_reader_lags(const void *consumer)
{
	const struct naive_consumer *c = consumer;

	return c->is_reader ? c->reader.lags : 0;
}

static bool
naive_c_sub_stats(const void *consumer, uint64_t *received, uint64_t *skipped)
{
	(void)consumer;
	(void)received;
	(void)skipped;
	return false;
}

static void
naive_c_detach(void *consumer)
{
	struct naive_consumer *c = consumer;

	if (c == NULL)
		return;
	if (c->is_reader)
		naive_reader_close(&c->reader);
	free(c);
}

static bool
naive_c_stats(void *bus, litebus_stats *st)
{
	(void)bus;
	(void)st;
	return false;
}

static void
naive_c_end(void *bus)
{
	naive_close_ring(bus);
}

static void
naive_c_close(void *bus)
{
	naive_close(bus);
	free(bus);
}

const struct contender contender_naive = {
    .name = "naive",
    .open = naive_c_open,
    .exec = naive_c_exec,
    .submit = naive_c_submit,
    .attach = naive_c_attach,
    .next = naive_c_next,
    .reader_lags = naive_c_reader_lags,
    .reader_memory_rows = naive_c_reader_memory_rows,
    .sub_stats = naive_c_sub_stats,
    .detach = naive_c_detach,
    .stats = naive_c_stats,
    .end = naive_c_end,
    .close = naive_c_close,
};
