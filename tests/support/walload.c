/* SPDX-License-Identifier: MIT */
/*
 * walload.c - the WAL-load harness (walload.h): producers, readers,
 * scanners and the -wal monitor, and the checks a load ends with.
 */
#define _XOPEN_SOURCE 700 /* sem_timedwait */
#include "walload.h"

#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

/* Defaults: a second or two with a small checkpoint_pages. */
#define LOAD_MS 1500u
#define PAYLOAD_LEN 4096u
#define MAX_PAYLOAD WAL_LOAD_MAX_PAYLOAD
#define MAX_THREADS WAL_LOAD_MAX_THREADS
/* Jobs a submitting producer keeps in flight. */
#define SUBMIT_INFLIGHT 2048u
/* The lagging reader stays this many events behind (8-slot rings). */
#define LAG_EVENTS 64u

static unsigned char payload[MAX_PAYLOAD];

/* ------------------------------------------------------------------ */
/* The bound                                                           */

/*
 * Most pages one transaction of `events` events of `payload_len` bytes
 * can add to the WAL.  A transaction writes each page it changed once,
 * so this counts pages, generously: per event, its overflow chain
 * (payload_len / (page_size - 4) + 1 pages, the last partly used), one
 * leaf of the table and one of its partition index (as if every row
 * filled a leaf of its own); per transaction, the interior pages of both
 * B-trees with a split at every level (2 trees x 4 levels x 2) and page 1.
 */
static uint64_t
wal_batch_pages(uint64_t events, size_t payload_len, uint32_t page_size)
{
	uint64_t per_event = payload_len / (page_size - 4u) + 1u + 2u;

	return events * per_event + 2u * 4u * 2u + 1u;
}

static uint64_t
wal_bound_bytes(uint32_t checkpoint_pages, uint64_t batch_pages,
		uint32_t page_size)
{
	return ((uint64_t)LITEBUS_WAL_BOUND_FACTOR * checkpoint_pages +
		batch_pages) *
		   ((uint64_t)page_size + 24u) +
	       32u;
}

uint32_t
wal_page_size(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_true(n >= 512 && n <= 65536);
	return (uint32_t)n;
}

/* ------------------------------------------------------------------ */
/* The load                                                            */

void
wal_load_fail(struct wal_load *l, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&l->lock);
	if (l->failure[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(l->failure, sizeof l->failure, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&l->lock);
	atomic_store_explicit(&l->stop_load, true, memory_order_relaxed);
}

bool
wal_load_stopped(struct wal_load *l)
{
	/* Relaxed: a flag polled in a loop; the joins order the rest. */
	return atomic_load_explicit(&l->stop_load, memory_order_relaxed);
}

int64_t
wal_load_len(struct wal_load *l)
{
	struct stat sb;

	if (stat(l->wal_path, &sb) == 0)
		return (int64_t)sb.st_size;
	if (errno != ENOENT)
		wal_load_fail(l, "stat(%s): %s", l->wal_path, strerror(errno));
	return 0;
}

static void
wal_sample(struct wal_load *l)
{
	/* Pairs with the release store of phase in the test. */
	int ph = atomic_load_explicit(&l->phase, memory_order_acquire);
	int64_t len = wal_load_len(l);
	int64_t old =
	    atomic_load_explicit(&l->wal_max[ph], memory_order_relaxed);

	/* Relaxed: a running maximum, read after the monitor is joined. */
	while (len > old && !atomic_compare_exchange_weak_explicit(
				&l->wal_max[ph], &old, len,
				memory_order_relaxed, memory_order_relaxed))
		;
	atomic_fetch_add_explicit(&l->samples, 1, memory_order_relaxed);
	/* The bound is broken many times over: stop before the disk fills
	 * (the test fails on wal_max). */
	if ((uint64_t)len > 8u * l->bound + (64u << 20))
		atomic_store_explicit(&l->stop_load, true,
				      memory_order_relaxed);
}

static void *
monitor_main(void *arg)
{
	struct wal_load *l = arg;

	while (!atomic_load_explicit(&l->stop_monitor, memory_order_relaxed)) {
		struct timespec ts = {0, 1000000L};

		wal_sample(l);
		nanosleep(&ts, NULL); /* the sampling period, not sync */
	}
	return NULL;
}

static int
emit_job(litebus_tx *tx, void *arg)
{
	struct wal_load *l = arg;
	litebus_record rec = {0};

	rec.partition_key = 1;
	rec.event_type = "success";
	rec.payload = payload;
	rec.payload_len = l->payload_len;
	return litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL);
}

static void
submit_done(int status, void *arg)
{
	struct wal_load *l = arg;

	if (status != 0)
		wal_load_fail(l, "submitted job failed: %s (%s)",
			  litebus_errname(status), litebus_last_errmsg());
	else
		atomic_fetch_add_explicit(&l->committed, 1,
					  memory_order_relaxed);
	if (sem_post(&l->inflight) != 0)
		wal_load_fail(l, "sem_post: %s", strerror(errno));
}

static bool
inflight_take(struct wal_load *l)
{
	struct timespec ts;

	ts = fx_realtime_in(FX_WAIT_MS);
	while (sem_timedwait(&l->inflight, &ts) != 0) {
		if (errno == EINTR)
			continue;
		wal_load_fail(l, "no submitted job completed within %d ms: %s",
			  FX_WAIT_MS, strerror(errno));
		return false;
	}
	return true;
}

static void *
producer_main(void *arg)
{
	struct wal_producer_arg *pa = arg;
	struct wal_load *l = pa->l;

	fx_barrier_wait(pa->start);
	while (!wal_load_stopped(l)) {
		int rc;

		if (l->submit) {
			if (!inflight_take(l))
				break;
			rc = litebus_submit(l->f->bus, emit_job, l, submit_done,
					    l);
			if (rc != LITEBUS_OK) {
				wal_load_fail(l, "litebus_submit: %s (%s)",
					  litebus_errname(rc),
					  litebus_last_errmsg());
				break;
			}
			continue;
		}
		rc = litebus_exec(l->f->bus, emit_job, l);
		if (rc != 0) {
			wal_load_fail(l, "litebus_exec: %s (%s)",
				  litebus_errname(rc), litebus_last_errmsg());
			break;
		}
		atomic_fetch_add_explicit(&l->committed, 1,
					  memory_order_relaxed);
	}
	return NULL;
}

/* Wait until the producers are LAG_EVENTS past `delivered`, or the load
 * ended.  Polls: the lag is the point, not a hand-off. */
static void
reader_lag(struct wal_load *l, uint64_t delivered)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	while (!wal_load_stopped(l) &&
	       atomic_load_explicit(&l->committed, memory_order_relaxed) <
		   delivered + LAG_EVENTS) {
		if (fx_now_ms() > deadline) {
			wal_load_fail(l, "producers made no progress for %d ms",
				  FX_WAIT_MS);
			return;
		}
		sched_yield();
	}
}

/* Every committed row, in order: ids are 1, 2, 3, ... (one channel, no
 * job fails).  Runs until the bus has closed. */
static void *
reader_main(void *arg)
{
	struct wal_reader_arg *ra = arg;
	struct wal_load *l = ra->l;
	uint64_t n = 0;

	for (;;) {
		litebus_row row;
		int rc;

		if (ra->lagging)
			reader_lag(l, n);
		rc = litebus_reader_next(ra->r, &row, -1);
		if (rc == LITEBUS_CLOSED)
			break;
		if (rc != LITEBUS_OK) {
			wal_load_fail(l, "reader %d: %s (%s)", ra->index,
				  litebus_errname(rc), litebus_last_errmsg());
			break;
		}
		if (row.event_id != (int64_t)n + 1 ||
		    row.payload_len != l->payload_len) {
			wal_load_fail(l, "reader %d: row %lld after %llu rows",
				  ra->index, (long long)row.event_id,
				  (unsigned long long)n);
			break;
		}
		n++;
	}
	l->delivered[ra->index] = n;
	if (ra->lagging) {
		litebus_reader_stats st;
		if (litebus_reader_stats_get(ra->r, &st) == LITEBUS_OK)
			l->lagging_lags = st.lags;
	}
	return NULL;
}

/* Another application's connection reading the whole table again and
 * again: each scan is a read transaction far shorter than the default
 * busy_timeout_ms. */
static void *
scanner_main(void *arg)
{
	struct wal_load *l = arg;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_open_v2(l->f->path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db, FX_WAIT_MS);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db,
					"SELECT count(*), sum(length(payload)) "
					"FROM litebus_outbox_completion",
					-1, &st, NULL);
	while (rc == SQLITE_OK && !wal_load_stopped(l)) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			rc = sqlite3_reset(st);
	}
	if (rc != SQLITE_OK)
		wal_load_fail(l, "scanner: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return NULL;
}

void
wal_load_init(struct wal_load *l, struct bus_fixture *f)
{
	memset(l, 0, sizeof *l);
	l->f = f;
	l->producers = 1;
	l->payload_len = PAYLOAD_LEN;
	l->load_ms = LOAD_MS;
	l->grace_ms = FX_WAIT_MS;
	l->target_bounds = 4;
	pthread_mutex_init(&l->lock, NULL);
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (unsigned char)(i * 131u + 7u);
}

void
wal_load_bound(struct wal_load *l)
{
	uint64_t batch_events =
	    l->submit ? l->f->opts.max_batch : (uint64_t)l->producers;

	snprintf(l->wal_path, sizeof l->wal_path, "%s-wal", l->f->path);
	l->page_size = wal_page_size(l->f->path);
	l->batch_pages =
	    wal_batch_pages(batch_events, l->payload_len, l->page_size);
	l->bound = wal_bound_bytes(l->f->opts.checkpoint_pages, l->batch_pages,
				   l->page_size);
}

void
wal_load_start(struct wal_load *l, struct wal_threads *t)
{
	assert_true(l->producers >= 1 && l->producers <= MAX_THREADS);
	assert_true(l->readers <= MAX_THREADS && l->scanners <= MAX_THREADS);
	assert_true(l->payload_len <= MAX_PAYLOAD);
	assert_int_equal(sem_init(&l->inflight, 0, SUBMIT_INFLIGHT), 0);
	t->nread = l->readers + (l->lagging_reader ? 1 : 0);
	for (int i = 0; i < t->nread; i++) {
		struct wal_reader_arg *ra = &t->ra[i];
		ra->l = l;
		ra->index = i;
		ra->lagging = i == l->readers;
		assert_int_equal(
		    litebus_reader_open(l->f->bus, LITEBUS_COMPLETION,
					LITEBUS_FROM_START, NULL, &ra->r),
		    LITEBUS_OK);
		assert_int_equal(
		    pthread_create(&t->read[i], NULL, reader_main, ra), 0);
	}
	for (int i = 0; i < l->scanners; i++)
		assert_int_equal(
		    pthread_create(&t->scan[i], NULL, scanner_main, l), 0);
	assert_int_equal(pthread_create(&t->monitor, NULL, monitor_main, l), 0);
	fx_barrier_init(&t->start, (unsigned)l->producers + 1u);
	t->pa.l = l;
	t->pa.start = &t->start;
	for (int i = 0; i < l->producers; i++)
		assert_int_equal(
		    pthread_create(&t->prod[i], NULL, producer_main, &t->pa),
		    0);
	fx_barrier_wait(&t->start);
}

/* Bytes the load must write to prove anything: the bound filled
 * several times over. */
static uint64_t
wal_load_target(const struct wal_load *l)
{
	return (uint64_t)l->target_bounds * l->bound;
}

/* Bytes the load has written, at least: the payloads committed; with
 * count_commit_pages also at least one page per commit (counted while the
 * bus is open, then as wal_load_finish() found it). */
static uint64_t
wal_load_written(struct wal_load *l)
{
	uint64_t payloads =
	    atomic_load_explicit(&l->committed, memory_order_relaxed) *
	    l->payload_len;
	uint64_t commits = l->commits_at_close;
	litebus_stats st;

	if (!l->count_commit_pages)
		return payloads;
	if (l->f->bus != NULL && litebus_stats_get(l->f->bus, &st) == LITEBUS_OK)
		commits = st.commits;
	return payloads > commits * l->page_size ? payloads
						 : commits * l->page_size;
}

/* Let the load run for at least `ms`, and until it has written
 * wal_load_target() bytes (sanitizer builds are slower), unless a thread
 * stopped it; at most grace_ms more. */
static void
wal_load_wait(struct wal_load *l, uint64_t ms)
{
	uint64_t start = fx_now_ms();

	while (!wal_load_stopped(l) &&
	       fx_now_ms() < start + ms + l->grace_ms) {
		struct timespec ts = {0, 5 * 1000000L};
		if (fx_now_ms() >= start + ms &&
		    wal_load_written(l) >= wal_load_target(l))
			break;
		nanosleep(&ts, NULL); /* the test's duration, not sync */
	}
}

void
wal_load_finish(struct wal_load *l, struct wal_threads *t)
{
	atomic_store_explicit(&l->stop_load, true, memory_order_relaxed);
	for (int i = 0; i < l->producers; i++)
		assert_int_equal(pthread_join(t->prod[i], NULL), 0);
	wal_sample(l); /* the last sample, with the bus still open */
	atomic_store_explicit(&l->stop_monitor, true, memory_order_relaxed);
	assert_int_equal(pthread_join(t->monitor, NULL), 0);
	if (l->count_commit_pages) {
		litebus_stats st;
		if (litebus_stats_get(l->f->bus, &st) == LITEBUS_OK)
			l->commits_at_close = st.commits;
	}
	assert_int_equal(litebus_close(l->f->bus), LITEBUS_OK);
	l->f->bus = NULL;
	for (int i = 0; i < l->scanners; i++)
		assert_int_equal(pthread_join(t->scan[i], NULL), 0);
	for (int i = 0; i < t->nread; i++) {
		assert_int_equal(pthread_join(t->read[i], NULL), 0);
		litebus_reader_close(t->ra[i].r);
	}
	assert_int_equal(sem_destroy(&l->inflight), 0);
	if (l->failure[0] != '\0')
		fail_msg("%s", l->failure);
}

void
wal_load_check(struct wal_load *l, int phase, const char *what)
{
	int64_t max =
	    atomic_load_explicit(&l->wal_max[phase], memory_order_relaxed);
	uint64_t committed =
	    atomic_load_explicit(&l->committed, memory_order_relaxed);
	uint64_t samples =
	    atomic_load_explicit(&l->samples, memory_order_relaxed);
	uint64_t written = wal_load_written(l);

	print_message("%s: %llu events of %zu bytes, -wal max %lld bytes, "
		      "bound %llu (batch %llu pages), %llu bytes written at "
		      "least, %llu samples\n",
		      what, (unsigned long long)committed, l->payload_len,
		      (long long)max, (unsigned long long)l->bound,
		      (unsigned long long)l->batch_pages,
		      (unsigned long long)written,
		      (unsigned long long)samples);
	for (int i = 0; i < l->readers + (l->lagging_reader ? 1 : 0); i++)
		if (l->delivered[i] != committed)
			fail_msg("reader %d delivered %llu of %llu events", i,
				 (unsigned long long)l->delivered[i],
				 (unsigned long long)committed);
	if (l->lagging_reader && l->lagging_lags == 0)
		fail_msg("the lagging reader was never lapped");
	/* The load must have filled the bound several times over, or the
	 * test proves nothing. */
	if (written < wal_load_target(l)) {
		if (l->count_commit_pages)
			fail_msg("the load wrote only %llu bytes to the WAL",
				 (unsigned long long)written);
		fail_msg("the load committed only %llu bytes of payload, less "
			 "than %u x the bound (%llu bytes)",
			 (unsigned long long)written, l->target_bounds,
			 (unsigned long long)l->bound);
	}
	if (max < 0 || (uint64_t)max > l->bound)
		fail_msg("the -wal file reached %lld bytes; the bound is %llu "
			 "(%u x %u pages + %llu pages of one batch, page size "
			 "%u)",
			 (long long)max, (unsigned long long)l->bound,
			 LITEBUS_WAL_BOUND_FACTOR, l->f->opts.checkpoint_pages,
			 (unsigned long long)l->batch_pages, l->page_size);
}

void
wal_load_run(struct wal_load *l, const char *what)
{
	struct wal_threads t;

	memset(&t, 0, sizeof t);
	wal_load_bound(l);
	wal_load_start(l, &t);
	wal_load_wait(l, l->load_ms);
	wal_load_finish(l, &t);
	wal_load_check(l, 0, what);
	pthread_mutex_destroy(&l->lock);
}

