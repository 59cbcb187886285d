/* SPDX-License-Identifier: MIT */
/*
 * powercut.c - see powercut.h.
 *
 * Invariants of the harness (what makes a failure mean a broken promise)
 *   C1  Every job writes one txlog row (seq INTEGER PRIMARY KEY, so seqs
 *       are handed out densely in execution order, which with one writer
 *       is commit order): kind 1 = producer job `ref`, 2 = the
 *       exactly-once consumer applying event `ref`, 3 = the end job.
 *   C2  A producer job's events carry payload "g<ref>.<i>": which job an
 *       outbox row belongs to is read from the row itself.
 *   C3  Marks (powervfs_mark) are taken after the promise they stand for
 *       was made to the caller: after exec returned 0, inside done(0),
 *       after flush returned OK, after the reader returned the row.
 *
 * Threads: the recorded run has producer, reader and consumer threads;
 * everything they record is read by the main thread after joining them.
 * The sweep runs on the main thread.
 */
#define _XOPEN_SOURCE 700
#include "powercut.h"

#include "fixture.h"
#include "powervfs.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define PC_CHANNELS 3 /* COMPLETION, SIGNAL_DELIVERY, orders */
#define PC_MAX_EVENTS 3

static const char *const pc_extra_channels[] = {"orders", NULL};
static const char *const pc_chan_names[PC_CHANNELS] = {
    "completion", "signal_delivery", "orders"};

struct pc_job {
	int g;			 /* global job number */
	int n;			 /* events */
	int chan[PC_MAX_EVENTS]; /* index into pc_chan_names */
	bool fail, savepoint;
	size_t ack_mark; /* SIZE_MAX: not acknowledged */
	int status;	 /* exec's or done's */
	struct pc_run *run;
};

struct pc_mark {
	int64_t id;
	size_t mark;
};

struct pc_row {
	int64_t id, pkey;
	char type[24], subject[24], payload[24];
	int job; /* -1: not a producer job's (the end job) */
};

struct pc_run {
	litebus *bus;
	int chan_id[PC_CHANNELS];
	int njobs;
	struct pc_job *jobs;
	uint64_t seed;
	/* The reader's cursors, the at-least-once consumer's flushed
	 * positions, the exactly-once consumer's committed acks (C3). */
	struct pc_mark *rmarks, *fmarks, *emarks;
	size_t nrmarks, nfmarks, nemarks, capmarks;
};

/* The final (uncut) state, and one cut's. */
struct pc_state {
	int64_t *txkind, *txref; /* by seq - 1 */
	size_t ntx;
	struct pc_row *rows[PC_CHANNELS];
	size_t nrows[PC_CHANNELS];
	int64_t *applied;
	size_t napplied;
	int64_t pos_alo, pos_eo, high_water[PC_CHANNELS];
};

static uint64_t
pc_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int pc_sql(sqlite3 *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
pc_sql(sqlite3 *db, const char *fmt, ...)
{
	char sql[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* ---------------------------------------------------------------- */
/* The recorded run                                                  */

static int
pc_job_fn(litebus_tx *tx, void *arg)
{
	struct pc_job *j = arg;
	sqlite3 *db = litebus_tx_db(tx);
	char payload[24], subject[24];
	int rc;

	if (pc_sql(db, "INSERT INTO txlog(kind, ref) VALUES(1, %d)", j->g) !=
	    SQLITE_OK)
		return JOB_FAILED - 1;
	snprintf(subject, sizeof subject, "s%d", j->g);
	for (int i = 0; i < j->n; i++) {
		litebus_record rec = {0};
		int c = j->chan[i];

		snprintf(payload, sizeof payload, "g%d.%d", j->g, i);
		rec.partition_key = j->g;
		rec.subject = subject;
		rec.subject_len = strlen(subject);
		rec.event_type = c == 0 ? "success" : "sig";
		rec.payload = payload;
		rec.payload_len = strlen(payload);
		rec.occurred_at_ms = 1000 + j->g;
		rc = litebus_emit(tx, j->run->chan_id[c], &rec, NULL);
		if (rc != LITEBUS_OK)
			return rc;
		if (j->savepoint && i == 0) {
			/* An emit undone by the job's own savepoint: never
			 * published, never in any image. */
			if (pc_sql(db, "SAVEPOINT mine") != SQLITE_OK)
				return JOB_FAILED - 2;
			rec.payload = "undone";
			rec.payload_len = 6;
			rc = litebus_emit(tx, j->run->chan_id[c], &rec, NULL);
			if (rc != LITEBUS_OK)
				return rc;
			if (pc_sql(db, "ROLLBACK TO mine") != SQLITE_OK ||
			    pc_sql(db, "RELEASE mine") != SQLITE_OK)
				return JOB_FAILED - 3;
		}
	}
	return j->fail ? JOB_FAILED : 0;
}

static void
pc_job_done(int status, void *arg)
{
	struct pc_job *j = arg;

	j->status = status;
	if (status == 0)
		j->ack_mark = powervfs_mark(); /* C3 */
}

struct pc_producer {
	struct pc_run *run;
	int p, jobs;
	struct fx_barrier *start;
};

static void *
pc_producer_main(void *arg)
{
	struct pc_producer *pp = arg;
	struct pc_run *run = pp->run;

	fx_barrier_wait(pp->start);
	for (int k = 0; k < pp->jobs; k++) {
		struct pc_job *j = &run->jobs[pp->p * pp->jobs + k];

		if (k % 2 == 0) {
			j->status = litebus_exec(run->bus, pc_job_fn, j);
			if (j->status == 0)
				j->ack_mark = powervfs_mark(); /* C3 */
		} else {
			int rc = litebus_submit(run->bus, pc_job_fn, j,
						pc_job_done, j);
			if (rc != LITEBUS_OK)
				j->status = rc;
		}
	}
	return NULL;
}

static void
pc_add_mark(struct pc_mark **m, size_t *n, int64_t id)
{
	/* Each thread has its own array; capacity is fixed at the start. */
	(*m)[(*n)++] = (struct pc_mark){id, powervfs_mark()};
}

static bool
pc_is_end(const litebus_row *row)
{
	return row->payload_len == 3 && memcmp(row->payload, "end", 3) == 0;
}

static void *
pc_reader_main(void *arg)
{
	struct pc_run *run = arg;
	litebus_reader *r =
	    fx_reader_open(run->bus, run->chan_id[0], LITEBUS_FROM_START, NULL);
	litebus_row row;
	uint64_t deadline = fx_now_ms() + 60000;

	for (;;) {
		int rc = litebus_reader_next(r, &row, 100);
		if (rc == LITEBUS_TIMEOUT && fx_now_ms() < deadline)
			continue;
		if (rc != LITEBUS_OK)
			fail_msg("reader: %s", litebus_errname(rc));
		if (row.event_id % 3 == 0 || pc_is_end(&row))
			pc_add_mark(&run->rmarks, &run->nrmarks,
				    litebus_reader_cursor(r));
		if (pc_is_end(&row))
			break;
	}
	litebus_reader_close(r);
	return NULL;
}

static void *
pc_alo_main(void *arg)
{
	struct pc_run *run = arg;
	litebus_consumer *c;
	litebus_row row;
	uint64_t deadline = fx_now_ms() + 60000;
	int n = 0;

	assert_int_equal(litebus_consumer_open(run->bus, run->chan_id[0], "alo",
					       LITEBUS_FROM_START, NULL, &c),
			 LITEBUS_OK);
	for (;;) {
		int rc = litebus_consumer_next(c, &row, 100);
		if (rc == LITEBUS_TIMEOUT && fx_now_ms() < deadline)
			continue;
		if (rc != LITEBUS_OK)
			fail_msg("consumer alo: %s", litebus_errname(rc));
		assert_int_equal(litebus_consumer_ack(c, row.event_id),
				 LITEBUS_OK);
		if (++n % 4 == 0 || pc_is_end(&row)) {
			assert_int_equal(litebus_consumer_flush(c), LITEBUS_OK);
			pc_add_mark(&run->fmarks, &run->nfmarks, row.event_id);
		}
		if (pc_is_end(&row))
			break;
	}
	litebus_consumer_close(c);
	return NULL;
}

struct pc_apply {
	litebus_consumer *c;
	int64_t id;
};

static int
pc_apply_fn(litebus_tx *tx, void *arg)
{
	struct pc_apply *a = arg;
	sqlite3 *db = litebus_tx_db(tx);

	if (pc_sql(db, "INSERT INTO applied(event_id) VALUES(%" PRId64 ")",
		   a->id) != SQLITE_OK ||
	    pc_sql(db, "INSERT INTO txlog(kind, ref) VALUES(2, %" PRId64 ")",
		   a->id) != SQLITE_OK)
		return JOB_FAILED;
	return litebus_consumer_ack_tx(tx, a->c, a->id);
}

static void *
pc_eo_main(void *arg)
{
	struct pc_run *run = arg;
	litebus_consumer *c;
	litebus_row row;
	uint64_t deadline = fx_now_ms() + 60000;

	assert_int_equal(litebus_consumer_open(run->bus, run->chan_id[2], "eo",
					       LITEBUS_FROM_START, NULL, &c),
			 LITEBUS_OK);
	for (;;) {
		int rc = litebus_consumer_next(c, &row, 100);
		if (rc == LITEBUS_TIMEOUT && fx_now_ms() < deadline)
			continue;
		if (rc != LITEBUS_OK)
			fail_msg("consumer eo: %s", litebus_errname(rc));
		struct pc_apply a = {c, row.event_id};
		assert_int_equal(litebus_exec(run->bus, pc_apply_fn, &a), 0);
		pc_add_mark(&run->emarks, &run->nemarks, row.event_id);
		if (pc_is_end(&row))
			break;
	}
	litebus_consumer_close(c);
	return NULL;
}

static int
pc_end_fn(litebus_tx *tx, void *arg)
{
	struct pc_run *run = arg;
	litebus_record rec = {0};
	int rc;

	if (pc_sql(litebus_tx_db(tx), "INSERT INTO txlog(kind, ref) "
				      "VALUES(3, 0)") != SQLITE_OK)
		return JOB_FAILED;
	rec.event_type = "success";
	rec.payload = "end";
	rec.payload_len = 3;
	rc = litebus_emit(tx, run->chan_id[0], &rec, NULL);
	if (rc == LITEBUS_OK) {
		rec.event_type = "sig";
		rc = litebus_emit(tx, run->chan_id[2], &rec, NULL);
	}
	return rc;
}

static void
pc_options(litebus_options *o, const struct powercut_config *cfg,
	   const char *path)
{
	fx_options_tiny(o);
	o->path = path;
	o->durability = cfg->durability;
	o->checkpoint_mode = cfg->checkpoint_mode;
	o->checkpoint_pages = 8;
	o->channels = pc_extra_channels;
}

static litebus *
pc_open(const struct powercut_config *cfg, const char *path, int *chan_id)
{
	litebus_options o;
	litebus *bus;
	int rc;

	pc_options(&o, cfg, path);
	rc = litebus_open(&o, &bus);
	if (rc != LITEBUS_OK)
		fail_msg("litebus_open(%s): %s: %s", path, litebus_errname(rc),
			 litebus_last_errmsg());
	for (int c = 0; c < PC_CHANNELS; c++) {
		chan_id[c] = litebus_channel_id(bus, pc_chan_names[c]);
		assert_true(chan_id[c] >= 0);
	}
	return bus;
}

static void
pc_record(const struct powercut_config *cfg, const char *path,
	  struct pc_run *run)
{
	int threads = cfg->producers;
	pthread_t prod[16], reader, alo, eo;
	struct pc_producer pp[16];
	struct fx_barrier start;
	uint64_t s = cfg->seed;

	assert_true(threads >= 1 && threads <= 16);
	/* Setup, not recorded: the application's tables. */
	run->bus = pc_open(cfg, path, run->chan_id);
	assert_int_equal(fx_exec_sql(run->bus,
				     "CREATE TABLE txlog(seq INTEGER PRIMARY "
				     "KEY, kind INTEGER NOT NULL, ref INTEGER "
				     "NOT NULL);"
				     "CREATE TABLE applied(event_id INTEGER "
				     "PRIMARY KEY);"),
			 0);
	assert_int_equal(litebus_close(run->bus), LITEBUS_OK);

	run->njobs = threads * cfg->jobs;
	run->jobs = calloc((size_t)run->njobs, sizeof *run->jobs);
	assert_non_null(run->jobs);
	for (int g = 0; g < run->njobs; g++) {
		struct pc_job *j = &run->jobs[g];
		uint64_t r = pc_rand(&s);

		j->g = g;
		j->run = run;
		j->n = 1 + (int)(r % PC_MAX_EVENTS);
		for (int i = 0; i < j->n; i++)
			j->chan[i] = (int)((r >> (8 + 4 * i)) % PC_CHANNELS);
		j->fail = (r >> 24) % 8 == 0;
		j->savepoint = (r >> 28) % 6 == 0;
		j->ack_mark = SIZE_MAX;
		j->status = 1;
	}
	run->capmarks = (size_t)run->njobs * PC_MAX_EVENTS + 8;
	run->rmarks = calloc(run->capmarks, sizeof *run->rmarks);
	run->fmarks = calloc(run->capmarks, sizeof *run->fmarks);
	run->emarks = calloc(run->capmarks, sizeof *run->emarks);
	assert_true(run->rmarks && run->fmarks && run->emarks);

	powervfs_record_start(path);
	run->bus = pc_open(cfg, path, run->chan_id);
	fx_barrier_init(&start, (unsigned)threads);
	assert_int_equal(pthread_create(&reader, NULL, pc_reader_main, run), 0);
	assert_int_equal(pthread_create(&alo, NULL, pc_alo_main, run), 0);
	assert_int_equal(pthread_create(&eo, NULL, pc_eo_main, run), 0);
	for (int p = 0; p < threads; p++) {
		pp[p] = (struct pc_producer){run, p, cfg->jobs, &start};
		assert_int_equal(
		    pthread_create(&prod[p], NULL, pc_producer_main, &pp[p]),
		    0);
	}
	for (int p = 0; p < threads; p++)
		assert_int_equal(pthread_join(prod[p], NULL), 0);
	assert_int_equal(litebus_exec(run->bus, pc_end_fn, run), 0);
	assert_int_equal(pthread_join(reader, NULL), 0);
	assert_int_equal(pthread_join(alo, NULL), 0);
	assert_int_equal(pthread_join(eo, NULL), 0);
	assert_int_equal(litebus_close(run->bus), LITEBUS_OK);
	powervfs_record_stop();
	fx_barrier_destroy(&start);

	for (int g = 0; g < run->njobs; g++) {
		struct pc_job *j = &run->jobs[g];
		if (j->status != (j->fail ? JOB_FAILED : 0))
			fail_msg("job %d returned %d (fail=%d)", g, j->status,
				 j->fail);
	}
}

/* ---------------------------------------------------------------- */
/* Reading a state                                                   */

static void
pc_state_free(struct pc_state *st)
{
	free(st->txkind);
	free(st->txref);
	for (int c = 0; c < PC_CHANNELS; c++)
		free(st->rows[c]);
	free(st->applied);
	memset(st, 0, sizeof *st);
}

static void
pc_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (t == NULL) {
		snprintf(dst, cap, "(null)");
		return;
	}
	if ((size_t)n >= cap)
		n = (int)cap - 1;
	memcpy(dst, t, (size_t)n);
	dst[n] = '\0';
}

static sqlite3_stmt *
pc_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	return st;
}

static void
pc_done(sqlite3 *db, sqlite3_stmt *st, int rc)
{
	if (rc != SQLITE_DONE)
		fail_msg("reading: %s", sqlite3_errmsg(db));
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
}

/* Read the state through a read-only connection (the bus may be open). */
static void
pc_state_read(const char *path, struct pc_state *st, const char *what)
{
	sqlite3 *db = fx_sql_open(path, SQLITE_OPEN_READONLY);
	sqlite3_stmt *q;
	size_t cap;
	int rc;

	memset(st, 0, sizeof *st);
	q = pc_prepare(db, "PRAGMA integrity_check");
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(q, 0), "ok") != 0)
		fail_msg("%s: integrity_check: %s", what,
			 rc == SQLITE_ROW
			     ? (const char *)sqlite3_column_text(q, 0)
			     : sqlite3_errmsg(db));
	assert_int_equal(sqlite3_finalize(q), SQLITE_OK);

	cap = (size_t)fx_sql_int(db, "SELECT count(*) FROM txlog") + 1;
	st->txkind = calloc(cap, sizeof(int64_t));
	st->txref = calloc(cap, sizeof(int64_t));
	q = pc_prepare(db, "SELECT seq, kind, ref FROM txlog ORDER BY seq");
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (sqlite3_column_int64(q, 0) != (int64_t)st->ntx + 1)
			fail_msg("%s: txlog seq %lld after %zu rows", what,
				 (long long)sqlite3_column_int64(q, 0),
				 st->ntx);
		st->txkind[st->ntx] = sqlite3_column_int64(q, 1);
		st->txref[st->ntx++] = sqlite3_column_int64(q, 2);
	}
	pc_done(db, q, rc);

	for (int c = 0; c < PC_CHANNELS; c++) {
		char sql[256];

		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM litebus_outbox_%s",
			 pc_chan_names[c]);
		cap = (size_t)fx_sql_int(db, sql) + 1;
		st->rows[c] = calloc(cap, sizeof(struct pc_row));
		snprintf(sql, sizeof sql,
			 "SELECT event_id, partition_key, event_type, "
			 "subject, payload FROM litebus_outbox_%s ORDER BY "
			 "event_id",
			 pc_chan_names[c]);
		q = pc_prepare(db, sql);
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			struct pc_row *r = &st->rows[c][st->nrows[c]++];
			r->id = sqlite3_column_int64(q, 0);
			r->pkey = sqlite3_column_int64(q, 1);
			pc_text(r->type, sizeof r->type, q, 2);
			pc_text(r->subject, sizeof r->subject, q, 3);
			pc_text(r->payload, sizeof r->payload, q, 4);
			r->job = -1;
			if (r->payload[0] == 'g')
				r->job = atoi(r->payload + 1);
		}
		pc_done(db, q, rc);
		snprintf(sql, sizeof sql,
			 "SELECT high_water FROM litebus_channel WHERE "
			 "name = '%s'",
			 pc_chan_names[c]);
		st->high_water[c] = fx_sql_int(db, sql);
	}

	cap = (size_t)fx_sql_int(db, "SELECT count(*) FROM applied") + 1;
	st->applied = calloc(cap, sizeof(int64_t));
	q = pc_prepare(db, "SELECT event_id FROM applied ORDER BY event_id");
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		st->applied[st->napplied++] = sqlite3_column_int64(q, 0);
	pc_done(db, q, rc);
	st->pos_alo = fx_sql_int(db, "SELECT coalesce(max(position), 0) FROM "
				     "litebus_consumer WHERE name = 'alo'");
	st->pos_eo = fx_sql_int(db, "SELECT coalesce(max(position), 0) FROM "
				    "litebus_consumer WHERE name = 'eo'");
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* ---------------------------------------------------------------- */
/* The checks of one cut                                             */

struct pc_cut {
	size_t at;
	enum powervfs_cut kind;
	enum powervfs_shm shm;
	uint64_t seed;
};

#define PC_FAIL(cut, ...)                                                      \
	do {                                                                   \
		char pc_msg_[400];                                             \
		snprintf(pc_msg_, sizeof pc_msg_, __VA_ARGS__);                \
		fail_msg("power cut at trace position %zu (%s, shm %s, "       \
			 "seed %" PRIu64 "): %s",                              \
			 (cut)->at, powervfs_cut_name((cut)->kind),            \
			 powervfs_shm_name((cut)->shm), (cut)->seed, pc_msg_); \
	} while (0)

static const struct pc_row *
pc_find(const struct pc_state *st, int c, int64_t id)
{
	size_t lo = 0, hi = st->nrows[c];

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (st->rows[c][mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < st->nrows[c] && st->rows[c][lo].id == id ? &st->rows[c][lo]
							     : NULL;
}

/* Read every row of channel c through a litebus reader after `after`;
 * they must be exactly img's rows with ids above it, in order. */
static void
pc_check_reader(const struct pc_cut *cut, litebus *bus, int chan_id, int c,
		const struct pc_state *img, int64_t after)
{
	litebus_reader *r = NULL;
	litebus_row row;
	size_t i = 0;
	int rc;

	rc = litebus_reader_open(bus, chan_id, after, NULL, &r);
	if (rc != LITEBUS_OK)
		PC_FAIL(cut, "reader_open(%s, %lld): %s", pc_chan_names[c],
			(long long)after, litebus_errname(rc));
	while (i < img->nrows[c] && img->rows[c][i].id <= after)
		i++;
	while ((rc = litebus_reader_next(r, &row, 0)) == LITEBUS_OK) {
		if (i >= img->nrows[c] || row.event_id != img->rows[c][i].id)
			PC_FAIL(cut,
				"reader of %s from %lld: got id %lld, the "
				"table's next is %lld",
				pc_chan_names[c], (long long)after,
				(long long)row.event_id,
				i < img->nrows[c]
				    ? (long long)img->rows[c][i].id
				    : -1LL);
		i++;
	}
	if (rc != LITEBUS_TIMEOUT || i != img->nrows[c])
		PC_FAIL(cut,
			"reader of %s from %lld stopped with %s after %zu "
			"of %zu rows",
			pc_chan_names[c], (long long)after, litebus_errname(rc),
			i, img->nrows[c]);
	litebus_reader_close(r);
}

/* A reopened consumer resumes right after its position. */
static void
pc_check_consumer(const struct pc_cut *cut, litebus *bus, int chan_id, int c,
		  const char *name, const struct pc_state *img, int64_t pos)
{
	litebus_consumer *k = NULL;
	litebus_row row;
	int64_t want = -1;
	int rc;

	for (size_t i = 0; i < img->nrows[c]; i++)
		if (img->rows[c][i].id > pos) {
			want = img->rows[c][i].id;
			break;
		}
	rc = litebus_consumer_open(bus, chan_id, name, LITEBUS_FROM_START, NULL,
				   &k);
	if (rc != LITEBUS_OK)
		PC_FAIL(cut, "consumer_open(%s): %s: %s", name,
			litebus_errname(rc), litebus_last_errmsg());
	rc = litebus_consumer_next(k, &row, 0);
	if (want < 0 ? rc != LITEBUS_TIMEOUT
		     : rc != LITEBUS_OK || row.event_id != want)
		PC_FAIL(cut,
			"consumer %s at %lld resumed with %s id %lld, "
			"want %lld",
			name, (long long)pos, litebus_errname(rc),
			rc == LITEBUS_OK ? (long long)row.event_id : -1LL,
			(long long)want);
	litebus_consumer_close(k);
}

static int
pc_new_job_fn(litebus_tx *tx, void *arg)
{
	int64_t *ids = arg;
	const int *chan_id = (const int *)(ids + PC_CHANNELS);

	for (int c = 0; c < PC_CHANNELS; c++) {
		litebus_record rec = {0};
		rec.event_type = c == 0 ? "success" : "sig";
		int rc = litebus_emit(tx, chan_id[c], &rec, &ids[c]);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

static void
pc_check_cut(const struct powercut_config *cfg, const struct pc_cut *cut,
	     const char *path, const struct pc_run *run,
	     const struct pc_state *fin, bool full_check,
	     struct powercut_result *res)
{
	struct pc_state img;
	litebus_options o;
	litebus *bus = NULL;
	int chan_id[PC_CHANNELS];
	int rc;
	size_t k;
	int64_t eo_pos = 0;
	bool *alive;

	/* The bus opens on whatever the cut left: never corrupt. */
	pc_options(&o, cfg, path);
	rc = litebus_open(&o, &bus);
	if (rc != LITEBUS_OK)
		PC_FAIL(cut, "litebus_open: %s: %s", litebus_errname(rc),
			litebus_last_errmsg());
	for (int c = 0; c < PC_CHANNELS; c++)
		chan_id[c] = litebus_channel_id(bus, pc_chan_names[c]);
	char what[200];
	snprintf(what, sizeof what,
		 "power cut at trace position %zu (%s, shm %s, seed %" PRIu64
		 ")",
		 cut->at, powervfs_cut_name(cut->kind),
		 powervfs_shm_name(cut->shm), cut->seed);
	pc_state_read(path, &img, what);

	/* C1: the surviving commits are a prefix of the commit order. */
	if (img.ntx > fin->ntx)
		PC_FAIL(cut, "%zu txlog rows survive of %zu", img.ntx,
			fin->ntx);
	for (k = 0; k < img.ntx; k++)
		if (img.txkind[k] != fin->txkind[k] ||
		    img.txref[k] != fin->txref[k])
			PC_FAIL(cut,
				"txlog seq %zu is (%lld, %lld), the run "
				"committed (%lld, %lld) there",
				k + 1, (long long)img.txkind[k],
				(long long)img.txref[k],
				(long long)fin->txkind[k],
				(long long)fin->txref[k]);
	alive = calloc((size_t)run->njobs + 1, sizeof *alive);
	assert_non_null(alive);
	for (k = 0; k < img.ntx; k++) {
		if (img.txkind[k] == 1)
			alive[img.txref[k]] = true;
		if (img.txkind[k] == 2)
			eo_pos = img.txref[k];
	}
	bool end_alive = false;
	for (k = 0; k < img.ntx; k++)
		end_alive |= img.txkind[k] == 3;
	for (int g = 0; g < run->njobs; g++)
		if (run->jobs[g].ack_mark <= cut->at && !alive[g]) {
			res->lost_jobs++;
			break;
		}

	/* Rows: exactly the events of the surviving jobs, as committed. */
	for (int c = 0; c < PC_CHANNELS; c++) {
		size_t want = 0;
		for (size_t i = 0; i < fin->nrows[c]; i++) {
			const struct pc_row *f = &fin->rows[c][i];
			bool live = f->job >= 0 ? alive[f->job] : end_alive;
			const struct pc_row *g = pc_find(&img, c, f->id);

			if (live && g == NULL)
				PC_FAIL(cut,
					"%s id %lld (%s) of a surviving "
					"commit is missing",
					pc_chan_names[c], (long long)f->id,
					f->payload);
			if (live)
				want++;
			if (g != NULL &&
			    (g->pkey != f->pkey || strcmp(g->type, f->type) ||
			     strcmp(g->subject, f->subject) ||
			     strcmp(g->payload, f->payload)))
				PC_FAIL(cut,
					"%s id %lld is '%s', committed "
					"as '%s'",
					pc_chan_names[c], (long long)f->id,
					g->payload, f->payload);
		}
		for (size_t i = 0; i < img.nrows[c]; i++) {
			const struct pc_row *g = &img.rows[c][i];
			if (pc_find(fin, c, g->id) == NULL)
				PC_FAIL(cut,
					"%s id %lld ('%s') was never "
					"committed",
					pc_chan_names[c], (long long)g->id,
					g->payload);
			if (g->job >= 0 && !alive[g->job])
				PC_FAIL(cut,
					"%s id %lld ('%s') survives "
					"without its job's commit",
					pc_chan_names[c], (long long)g->id,
					g->payload);
		}
		if (img.nrows[c] != want)
			PC_FAIL(cut,
				"%s has %zu rows; the surviving commits "
				"made %zu",
				pc_chan_names[c], img.nrows[c], want);
	}

	/* Consumers: positions within the surviving data; exactly once. */
	if (img.pos_eo != eo_pos)
		PC_FAIL(cut,
			"exactly-once consumer at %lld, its last surviving "
			"commit acknowledged %lld",
			(long long)img.pos_eo, (long long)eo_pos);
	k = 0;
	for (size_t i = 0; i < img.ntx; i++)
		if (img.txkind[i] == 2) {
			if (k >= img.napplied || img.applied[k] != img.txref[i])
				PC_FAIL(cut, "applied rows do not match the "
					     "consumer's surviving commits");
			k++;
		}
	if (k != img.napplied)
		PC_FAIL(cut, "%zu applied rows, %zu surviving commits",
			img.napplied, k);
	if (img.pos_alo > (img.nrows[0] ? img.rows[0][img.nrows[0] - 1].id : 0))
		PC_FAIL(cut,
			"at-least-once consumer at %lld, past the newest "
			"surviving row",
			(long long)img.pos_alo);
	if (img.pos_eo > (img.nrows[2] ? img.rows[2][img.nrows[2] - 1].id : 0))
		PC_FAIL(cut,
			"exactly-once consumer at %lld, past the newest "
			"surviving row",
			(long long)img.pos_eo);

	if (cfg->durability == LITEBUS_DURABILITY_FULL) {
		/* Nothing acknowledged is lost. */
		for (int g = 0; g < run->njobs; g++)
			if (run->jobs[g].ack_mark <= cut->at && !alive[g])
				PC_FAIL(cut,
					"job %d was acknowledged at "
					"position %zu and is lost",
					g, run->jobs[g].ack_mark);
		for (size_t i = 0; i < run->nfmarks; i++)
			if (run->fmarks[i].mark <= cut->at &&
			    img.pos_alo < run->fmarks[i].id)
				PC_FAIL(cut,
					"consumer alo flushed %lld at "
					"position %zu, holds %lld",
					(long long)run->fmarks[i].id,
					run->fmarks[i].mark,
					(long long)img.pos_alo);
		for (size_t i = 0; i < run->nemarks; i++)
			if (run->emarks[i].mark <= cut->at &&
			    img.pos_eo < run->emarks[i].id)
				PC_FAIL(cut,
					"consumer eo committed %lld at "
					"position %zu, holds %lld",
					(long long)run->emarks[i].id,
					run->emarks[i].mark,
					(long long)img.pos_eo);
		int64_t cursor = -1;
		for (size_t i = 0; i < run->nrmarks; i++)
			if (run->rmarks[i].mark <= cut->at)
				cursor = run->rmarks[i].id;
		if (cursor > 0) {
			for (size_t i = 0; i < fin->nrows[0]; i++)
				if (fin->rows[0][i].id <= cursor &&
				    pc_find(&img, 0, fin->rows[0][i].id) ==
					NULL)
					PC_FAIL(cut,
						"id %lld, below the "
						"reader's cursor %lld, is "
						"lost",
						(long long)fin->rows[0][i].id,
						(long long)cursor);
			pc_check_reader(cut, bus, chan_id[0], 0, &img, cursor);
		}
	}

	if (full_check) {
		/* The bus reads what survived and goes on. */
		for (int c = 0; c < PC_CHANNELS; c++)
			pc_check_reader(cut, bus, chan_id[c], c, &img,
					LITEBUS_FROM_START);
		pc_check_consumer(cut, bus, chan_id[0], 0, "alo", &img,
				  img.pos_alo);
		pc_check_consumer(cut, bus, chan_id[2], 2, "eo", &img,
				  img.pos_eo);
		int64_t ids[PC_CHANNELS + 2];
		memcpy(ids + PC_CHANNELS, chan_id, sizeof chan_id);
		rc = litebus_exec(bus, pc_new_job_fn, ids);
		if (rc != 0)
			PC_FAIL(cut, "a new job after the cut: %s: %s",
				litebus_errname(rc), litebus_last_errmsg());
		for (int c = 0; c < PC_CHANNELS; c++)
			if (img.nrows[c] > 0 &&
			    ids[c] <= img.rows[c][img.nrows[c] - 1].id)
				PC_FAIL(cut, "new %s id %lld not above %lld",
					pc_chan_names[c], (long long)ids[c],
					(long long)img.rows[c][img.nrows[c] - 1]
					    .id);
	}
	rc = litebus_close(bus);
	if (rc != LITEBUS_OK)
		PC_FAIL(cut, "litebus_close: %s", litebus_errname(rc));
	free(alive);
	pc_state_free(&img);
}

/* ---------------------------------------------------------------- */

static int
pc_cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

void
powercut_run(const struct powercut_config *cfg, struct powercut_result *res)
{
	struct bus_fixture f = {0};
	struct pc_run run = {0};
	struct pc_state fin;
	struct powervfs_replay *rp;
	char run_path[320], cut_path[320];
	size_t len, ncuts, *at;
	uint64_t s = cfg->seed ^ 0x5bd1e995ull;

	memset(res, 0, sizeof *res);
	powervfs_install();
	/* The images never need a disk: on tmpfs, the fsyncs of the
	 * checks cost nothing (the recorded run's fsyncs are modelled, not
	 * needed either). */
	if (access("/dev/shm", W_OK) == 0) {
		snprintf(f.dir, sizeof f.dir, "/dev/shm/litebus-power-XXXXXX");
		assert_non_null(mkdtemp(f.dir));
	} else {
		fx_make_dir(&f);
	}
	snprintf(run_path, sizeof run_path, "%s/run.db", f.dir);
	snprintf(cut_path, sizeof cut_path, "%s/cut.db", f.dir);
	run.seed = cfg->seed;
	pc_record(cfg, run_path, &run);
	pc_state_read(run_path, &fin, "the run's final state");
	for (size_t k = 0; k < fin.ntx; k++)
		if (fin.txkind[k] == 1)
			res->committed++;

	len = powervfs_trace_len();
	res->trace_len = len;
	res->syncs = powervfs_trace_syncs();
	ncuts = cfg->cuts ? cfg->cuts : (len + 1) * POWERVFS_CUT_KINDS;
	at = calloc(ncuts, sizeof *at);
	assert_non_null(at);
	for (size_t i = 0; i < ncuts; i++)
		at[i] = cfg->cuts ? (size_t)(pc_rand(&s) % (len + 1))
				  : i / POWERVFS_CUT_KINDS;
	qsort(at, ncuts, sizeof *at, pc_cmp_size);
	/* The last cut is the end of the run, with nothing pending. */
	at[ncuts - 1] = len;

	rp = powervfs_replay_new();
	assert_non_null(rp);
	for (size_t i = 0; i < ncuts; i++) {
		struct pc_cut cut;
		struct powervfs_cut_info info;

		cut.at = at[i];
		cut.kind =
		    cfg->cuts
			? (enum powervfs_cut)(pc_rand(&s) % POWERVFS_CUT_KINDS)
			: (enum powervfs_cut)(i % POWERVFS_CUT_KINDS);
		cut.shm = (enum powervfs_shm)(pc_rand(&s) % POWERVFS_SHM_KINDS);
		cut.seed = pc_rand(&s);
		if (powervfs_replay_image(rp, cut.at, cut.kind, cut.shm,
					  cut.seed, cut_path, &info) != 0)
			fail_msg("writing the image of cut %zu: %s", i,
				 strerror(errno));
		if (info.torn_files > 0)
			res->torn++;
		pc_check_cut(cfg, &cut, cut_path, &run, &fin,
			     i % 4 == 0 || i == ncuts - 1, res);
		res->cuts++;
	}
	powervfs_replay_free(rp);
	free(at);
	pc_state_free(&fin);
	free(run.jobs);
	free(run.rmarks);
	free(run.fmarks);
	free(run.emarks);
	fx_remove_dir(&f);
}
