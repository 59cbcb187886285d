/*
 * test_wal_bound.c - the WAL bound, measured on the -wal file under
 * unbroken load (checkpoint.c).
 *
 * Contract, litebus_options.checkpoint_mode: "The WAL bound, in both modes
 * and whatever the load: the -wal file stays below LITEBUS_WAL_BOUND_FACTOR
 * x checkpoint_pages pages plus the pages of one batch's transaction."
 *
 * Every test runs a load that never pauses (producers commit 4 KiB events
 * back to back) on a bus with a small checkpoint_pages, so that the WAL
 * reaches the bound many times within a second or two.  A monitor thread
 * stat()s the -wal file about every millisecond; the largest size it saw,
 * and a last sample taken after the load, must not exceed
 *
 *   (FACTOR x checkpoint_pages + pages of the largest batch)
 *       x (page_size + 24) + 32 bytes
 *
 * (a WAL frame is a 24-byte header and one page; the file starts with a
 * 32-byte header).  The pages of a batch are bounded from what the batch
 * held (wal_batch_pages).  Each test also checks that its load wrote
 * several bounds' worth of events, so that it cannot pass by writing too
 * little.
 *
 * The variants are the ways into the fault: no readers; live readers;
 * a reader that lags on purpose and reads from the table; external
 * connections scanning the table; submit with large batches; inline
 * checkpoints; full durability; and an external read transaction held
 * longer than busy_timeout_ms, which may hold the WAL beyond the bound
 * only while it lasts.
 */
#define _XOPEN_SOURCE 700 /* sem_timedwait */
#include "checkpoint.h"	  /* internal: the tests at the end */
#include "faultvfs.h"
#include "fixture.h"
#include "role.h"

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

/* Small, so that the bound (8 x 16 pages) is crossed every few ms. */
#define CKPT_PAGES 16u
#define LOAD_MS 1500u
#define PAYLOAD_LEN 4096u
#define MAX_PAYLOAD (160u * 1024u)
#define MAX_THREADS 8
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

static uint32_t
db_page_size(const char *path)
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

struct wal_load {
	/* Set by the test before wal_load_run(). */
	struct bus_fixture *f;
	int producers;
	bool submit;	     /* producers submit; otherwise exec */
	int readers;	     /* live readers, litebus_reader_next(-1) */
	bool lagging_reader; /* one more reader, LAG_EVENTS behind */
	int scanners;	     /* external connections scanning the table */
	size_t payload_len;
	uint64_t load_ms;

	/* Computed by wal_load_run(). */
	uint32_t page_size;
	uint64_t batch_pages; /* of the largest batch the load can make */
	uint64_t bound;	      /* bytes */
	char wal_path[320];

	/* Shared with the threads. */
	_Atomic bool stop_load;
	_Atomic bool stop_monitor;
	_Atomic uint64_t committed; /* events committed */
	/* Monitor phase: samples count toward wal_max[phase].  Acquire
	 * load in the monitor pairs with the release store in the test, so
	 * a sample read in phase 1 was taken after the switch. */
	_Atomic int phase;
	_Atomic int64_t wal_max[2];
	_Atomic uint64_t samples;
	sem_t inflight; /* submit: free slots */

	/* The first failure seen by a thread, reported by the test. */
	pthread_mutex_t lock;
	char failure[256];
	uint64_t lagging_lags; /* written by the lagging reader */
	uint64_t delivered[MAX_THREADS + 1];
};

static void load_fail(struct wal_load *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
load_fail(struct wal_load *l, const char *fmt, ...)
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

static bool
load_stopped(struct wal_load *l)
{
	/* Relaxed: a flag polled in a loop; the joins order the rest. */
	return atomic_load_explicit(&l->stop_load, memory_order_relaxed);
}

static int64_t
wal_len(struct wal_load *l)
{
	struct stat sb;

	if (stat(l->wal_path, &sb) == 0)
		return (int64_t)sb.st_size;
	if (errno != ENOENT)
		load_fail(l, "stat(%s): %s", l->wal_path, strerror(errno));
	return 0;
}

static void
wal_sample(struct wal_load *l)
{
	/* Pairs with the release store of phase in the test. */
	int ph = atomic_load_explicit(&l->phase, memory_order_acquire);
	int64_t len = wal_len(l);
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
		load_fail(l, "submitted job failed: %s (%s)",
			  litebus_errname(status), litebus_last_errmsg());
	else
		atomic_fetch_add_explicit(&l->committed, 1,
					  memory_order_relaxed);
	if (sem_post(&l->inflight) != 0)
		load_fail(l, "sem_post: %s", strerror(errno));
}

static bool
inflight_take(struct wal_load *l)
{
	struct timespec ts;

	ts = fx_realtime_in(FX_WAIT_MS);
	while (sem_timedwait(&l->inflight, &ts) != 0) {
		if (errno == EINTR)
			continue;
		load_fail(l, "no submitted job completed within %d ms: %s",
			  FX_WAIT_MS, strerror(errno));
		return false;
	}
	return true;
}

struct producer_arg {
	struct wal_load *l;
	struct fx_barrier *start;
};

static void *
producer_main(void *arg)
{
	struct producer_arg *pa = arg;
	struct wal_load *l = pa->l;

	fx_barrier_wait(pa->start);
	while (!load_stopped(l)) {
		int rc;

		if (l->submit) {
			if (!inflight_take(l))
				break;
			rc = litebus_submit(l->f->bus, emit_job, l, submit_done,
					    l);
			if (rc != LITEBUS_OK) {
				load_fail(l, "litebus_submit: %s (%s)",
					  litebus_errname(rc),
					  litebus_last_errmsg());
				break;
			}
			continue;
		}
		rc = litebus_exec(l->f->bus, emit_job, l);
		if (rc != 0) {
			load_fail(l, "litebus_exec: %s (%s)",
				  litebus_errname(rc), litebus_last_errmsg());
			break;
		}
		atomic_fetch_add_explicit(&l->committed, 1,
					  memory_order_relaxed);
	}
	return NULL;
}

struct reader_arg {
	struct wal_load *l;
	litebus_reader *r;
	bool lagging;
	int index;
};

/* Wait until the producers are LAG_EVENTS past `delivered`, or the load
 * ended.  Polls: the lag is the point, not a hand-off. */
static void
reader_lag(struct wal_load *l, uint64_t delivered)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	while (!load_stopped(l) &&
	       atomic_load_explicit(&l->committed, memory_order_relaxed) <
		   delivered + LAG_EVENTS) {
		if (fx_now_ms() > deadline) {
			load_fail(l, "producers made no progress for %d ms",
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
	struct reader_arg *ra = arg;
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
			load_fail(l, "reader %d: %s (%s)", ra->index,
				  litebus_errname(rc), litebus_last_errmsg());
			break;
		}
		if (row.event_id != (int64_t)n + 1 ||
		    row.payload_len != l->payload_len) {
			load_fail(l, "reader %d: row %lld after %llu rows",
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
	while (rc == SQLITE_OK && !load_stopped(l)) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			rc = sqlite3_reset(st);
	}
	if (rc != SQLITE_OK)
		load_fail(l, "scanner: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return NULL;
}

static void
wal_load_init(struct wal_load *l, struct bus_fixture *f)
{
	memset(l, 0, sizeof *l);
	l->f = f;
	l->producers = 1;
	l->payload_len = PAYLOAD_LEN;
	l->load_ms = LOAD_MS;
	pthread_mutex_init(&l->lock, NULL);
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (unsigned char)(i * 131u + 7u);
}

/* The bound for the load's largest possible batch: one job per
 * producer with exec (each waits for its own), max_batch with submit. */
static void
wal_load_bound(struct wal_load *l)
{
	uint64_t batch_events =
	    l->submit ? l->f->opts.max_batch : (uint64_t)l->producers;

	snprintf(l->wal_path, sizeof l->wal_path, "%s-wal", l->f->path);
	l->page_size = db_page_size(l->f->path);
	l->batch_pages =
	    wal_batch_pages(batch_events, l->payload_len, l->page_size);
	l->bound = wal_bound_bytes(l->f->opts.checkpoint_pages, l->batch_pages,
				   l->page_size);
}

struct wal_threads {
	pthread_t monitor, prod[MAX_THREADS], read[MAX_THREADS + 1],
	    scan[MAX_THREADS];
	struct producer_arg pa;
	struct reader_arg ra[MAX_THREADS + 1];
	int nread;
	struct fx_barrier start;
};

/* Open the readers, start every thread; the producers begin together. */
static void
wal_load_start(struct wal_load *l, struct wal_threads *t)
{
	assert_true(l->producers >= 1 && l->producers <= MAX_THREADS);
	assert_true(l->readers <= MAX_THREADS && l->scanners <= MAX_THREADS);
	assert_true(l->payload_len <= MAX_PAYLOAD);
	assert_int_equal(sem_init(&l->inflight, 0, SUBMIT_INFLIGHT), 0);
	t->nread = l->readers + (l->lagging_reader ? 1 : 0);
	for (int i = 0; i < t->nread; i++) {
		struct reader_arg *ra = &t->ra[i];
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

/* Payload bytes the load must commit to prove anything: the bound filled
 * several times over. */
static uint64_t
wal_load_target(const struct wal_load *l)
{
	return 4u * l->bound;
}

/* Let the load run for at least `ms`, and until it has committed
 * wal_load_target() bytes (sanitizer builds are slower), unless a thread
 * stopped it; at most FX_WAIT_MS more. */
static void
wal_load_wait(struct wal_load *l, uint64_t ms)
{
	uint64_t start = fx_now_ms();

	while (!load_stopped(l) && fx_now_ms() < start + ms + FX_WAIT_MS) {
		struct timespec ts = {0, 5 * 1000000L};
		if (fx_now_ms() >= start + ms &&
		    atomic_load_explicit(&l->committed, memory_order_relaxed) *
			    l->payload_len >=
			wal_load_target(l))
			break;
		nanosleep(&ts, NULL); /* the test's duration, not sync */
	}
}

/* Stop the producers, take the last sample, close the bus (every job
 * submitted has then completed), let the readers drain and join them. */
static void
wal_load_finish(struct wal_load *l, struct wal_threads *t)
{
	atomic_store_explicit(&l->stop_load, true, memory_order_relaxed);
	for (int i = 0; i < l->producers; i++)
		assert_int_equal(pthread_join(t->prod[i], NULL), 0);
	wal_sample(l); /* the last sample, with the bus still open */
	atomic_store_explicit(&l->stop_monitor, true, memory_order_relaxed);
	assert_int_equal(pthread_join(t->monitor, NULL), 0);
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

/* The checks every load ends with. */
static void
wal_load_check(struct wal_load *l, int phase, const char *what)
{
	int64_t max =
	    atomic_load_explicit(&l->wal_max[phase], memory_order_relaxed);
	uint64_t committed =
	    atomic_load_explicit(&l->committed, memory_order_relaxed);
	uint64_t samples =
	    atomic_load_explicit(&l->samples, memory_order_relaxed);

	print_message("%s: %llu events of %zu bytes, -wal max %lld bytes, "
		      "bound %llu (batch %llu pages), %llu samples\n",
		      what, (unsigned long long)committed, l->payload_len,
		      (long long)max, (unsigned long long)l->bound,
		      (unsigned long long)l->batch_pages,
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
	if (committed * l->payload_len < wal_load_target(l))
		fail_msg("the load committed only %llu bytes of payload, less "
			 "than 4 x the bound (%llu bytes)",
			 (unsigned long long)(committed * l->payload_len),
			 (unsigned long long)l->bound);
	if (max < 0 || (uint64_t)max > l->bound)
		fail_msg("the -wal file reached %lld bytes; the bound is %llu "
			 "(%u x %u pages + %llu pages of one batch, page size "
			 "%u)",
			 (long long)max, (unsigned long long)l->bound,
			 LITEBUS_WAL_BOUND_FACTOR, l->f->opts.checkpoint_pages,
			 (unsigned long long)l->batch_pages, l->page_size);
}

static void
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

/* A fresh directory; the test sets its options, then opens. */
static int
wal_setup(void **state)
{
	struct bus_fixture *f;

	tmpdir_setup(state);
	f = *state;
	f->opts.ring_capacity = 8;
	f->opts.checkpoint_pages = CKPT_PAGES;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The variants                                                        */

/* Contract: "whatever the load" - one producer that never pauses. */
static void
wal_stays_bounded_under_unbroken_exec_load(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	fx_open(f);
	wal_load_init(&l, f);
	wal_load_run(&l, "exec, no readers");
}

/* Contract: "whatever the load and the number of readers" (issue 7) -
 * "litebus's own readers keep their read transactions short and never
 * hold it off for long". */
static void
wal_stays_bounded_with_four_live_readers(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	fx_open(f);
	wal_load_init(&l, f);
	l.readers = 4;
	wal_load_run(&l, "exec, 4 live readers");
}

/* A reader lapped again and again (8-slot rings) reads what it missed
 * from the table: its catch-up queries are read transactions too, and
 * must not hold the WAL either. */
static void
wal_stays_bounded_with_a_reader_catching_up_from_the_table(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	fx_open(f);
	wal_load_init(&l, f);
	l.readers = 1;
	l.lagging_reader = true;
	wal_load_run(&l, "exec, 1 live + 1 lagging reader");
}

/* Contract: "Only a read transaction that another connection (not
 * litebus's) keeps open longer than busy_timeout_ms can hold the WAL
 * beyond it" - so scans shorter than that cannot. */
static void
wal_stays_bounded_with_external_scans_shorter_than_busy_timeout(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	fx_open(f);
	wal_load_init(&l, f);
	l.scanners = 2;
	wal_load_run(&l, "exec, 2 external scanners");
}

/* Contract: "plus the pages of one batch's transaction" - submit fills
 * batches of max_batch jobs. */
static void
wal_stays_bounded_with_submit_and_large_batches(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	f->opts.max_batch = 256;
	fx_open(f);
	wal_load_init(&l, f);
	l.submit = true;
	l.producers = 2;
	l.readers = 2;
	wal_load_run(&l, "submit, max_batch 256, 2 readers");
}

/* Contract: "The WAL bound, in both modes".  SQLite's inline PASSIVE
 * checkpoint cannot finish while readers hold the WAL, so the readers
 * here are the kinds that hold it most: one lapped, one external. */
static void
wal_stays_bounded_with_inline_checkpoints(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	f->opts.checkpoint_mode = LITEBUS_CHECKPOINT_INLINE;
	fx_open(f);
	wal_load_init(&l, f);
	l.readers = 1;
	l.lagging_reader = true;
	l.scanners = 1;
	wal_load_run(&l, "inline checkpoints, 1 live + 1 lagging reader, "
			 "1 external scanner");
}

/* Every commit and every checkpoint fsyncs under FULL durability: the
 * bound still holds. */
static void
wal_stays_bounded_with_full_durability(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;

	f->opts.durability = LITEBUS_DURABILITY_FULL;
	fx_open(f);
	wal_load_init(&l, f);
	l.readers = 2;
	wal_load_run(&l, "durability FULL, 2 readers");
}

/* Wait (with a deadline) until pred(l, arg) holds while the load runs.
 * On failure, records it and stops the load: the test then finishes the
 * load (joining every thread) and wal_load_finish() reports it. */
static bool
wal_wait_for(struct wal_load *l, bool (*pred)(struct wal_load *, uint64_t),
	     uint64_t arg, const char *what)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	while (!pred(l, arg)) {
		struct timespec ts = {0, 1000000L};
		if (load_stopped(l) || fx_now_ms() > deadline) {
			load_fail(l,
				  "%s: not within %d ms (%llu events "
				  "committed, -wal %lld bytes, bound %llu)",
				  what, FX_WAIT_MS,
				  (unsigned long long)atomic_load_explicit(
				      &l->committed, memory_order_relaxed),
				  (long long)wal_len(l),
				  (unsigned long long)l->bound);
			return false;
		}
		nanosleep(&ts, NULL); /* polling period of the wait */
	}
	return true;
}

static bool
wal_beyond(struct wal_load *l, uint64_t bytes)
{
	return (uint64_t)wal_len(l) > bytes;
}

static bool
wal_within(struct wal_load *l, uint64_t bytes)
{
	return (uint64_t)wal_len(l) <= bytes;
}

static bool
committed_reached(struct wal_load *l, uint64_t n)
{
	return atomic_load_explicit(&l->committed, memory_order_relaxed) >= n;
}

/* Contract: "Only a read transaction that another connection (not
 * litebus's) keeps open longer than busy_timeout_ms can hold the WAL
 * beyond it; the writer then goes on and retries after the next batch."
 * So jobs keep committing while it is held, and once it ends the bound
 * holds again ("the file is truncated back to the bound when the WAL
 * restarts"). */
static void
external_read_transaction_holds_the_wal_only_while_it_lasts(void **state)
{
	struct bus_fixture *f = *state;
	struct wal_load l;
	struct wal_threads t;
	sqlite3 *ext;
	sqlite3_stmt *st;
	uint64_t c0;

	/* Long enough that litebus's own readers, slowed down by a
	 * sanitizer, never hold a RESTART off that long (CI saw 20 ms fail
	 * under TSan); short enough that the held phase stays quick, since
	 * the writer waits once per checkpoint_pages of WAL while held. */
	f->opts.busy_timeout_ms = 250;
	fx_open(f);
	wal_load_init(&l, f);
	l.payload_len = 4 * PAYLOAD_LEN; /* cross the bound in fewer batches */
	memset(&t, 0, sizeof t);
	wal_load_bound(&l);

	/* An application's read transaction, held open. */
	assert_int_equal(
	    sqlite3_open_v2(f->path, &ext, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_exec(ext, "BEGIN", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(ext,
					    "SELECT count(*) FROM "
					    "litebus_outbox_completion",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_reset(st), SQLITE_OK);

	wal_load_start(&l, &t);
	/* The writer is not stuck behind the reader: the WAL passes the
	 * bound, and jobs go on committing past that. */
	if (wal_wait_for(&l, wal_beyond, l.bound,
			 "jobs commit past the bound while a reader holds "
			 "the WAL")) {
		c0 = atomic_load_explicit(&l.committed, memory_order_relaxed);
		wal_wait_for(&l, committed_reached, c0 + 20,
			     "jobs keep committing while a reader holds the "
			     "WAL");
	}
	/* The reader ends: the WAL restarts and the file is truncated. */
	assert_int_equal(sqlite3_exec(ext, "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	if (!load_stopped(&l) &&
	    wal_wait_for(&l, wal_within, l.bound,
			 "the -wal file comes back within the bound")) {
		/* From here on the bound holds again, for several bounds'
		 * worth of load.  Pairs with the acquire load in
		 * wal_sample(). */
		atomic_store_explicit(&l.phase, 1, memory_order_release);
		c0 = atomic_load_explicit(&l.committed, memory_order_relaxed);
		wal_wait_for(&l, committed_reached,
			     c0 + 8u * l.bound / l.payload_len,
			     "the load goes on after the reader ended");
	}
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	assert_int_equal(sqlite3_close(ext), SQLITE_OK);
	wal_load_finish(&l, &t);
	print_message("while held: -wal max %lld bytes\n",
		      (long long)atomic_load_explicit(&l.wal_max[0],
						      memory_order_relaxed));
	wal_load_check(&l, 1, "after the external reader ended");
	pthread_mutex_destroy(&l.lock);
}

/* ------------------------------------------------------------------ */
/* checkpoint.c on a connection of the test's own                      */

/* A WAL database with one table, the test's thread in the writer's role,
 * checkpoint.c in charge of its checkpoints. */
struct plain {
	sqlite3 *db;
	struct lb_dbname dbn;
	struct lb_stats stats;
	struct lb_ckpt *ck;
	litebus_options o;
};

static void
plain_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
}

static void
plain_open(struct bus_fixture *f, struct plain *p, int mode)
{
	memset(p, 0, sizeof *p);
	assert_int_equal(
	    sqlite3_open_v2(f->path, &p->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
	    SQLITE_OK);
	/* As litebus's writer connection (lb_outbox_harden). */
	assert_int_equal(sqlite3_extended_result_codes(p->db, 1), SQLITE_OK);
	plain_exec(p->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			  "CREATE TABLE t(x BLOB)");
	p->dbn.name = f->path;
	litebus_options_init(&p->o);
	p->o.checkpoint_mode = mode;
	p->o.checkpoint_pages = 4;
	p->o.busy_timeout_ms = 10;
	assert_int_equal(
	    lb_ckpt_start(&p->dbn, p->db, &p->o, &p->stats, &p->ck),
	    LITEBUS_OK);
	/* This thread commits on p->db and calls lb_ckpt_finish/rehook:
	 * it plays the writer (role.h) until plain_close. */
	lb_role_set_writer(p);
}

static void
plain_close(struct plain *p)
{
	lb_ckpt_stop(p->ck, p->db);
	lb_role_set_writer(NULL);
	assert_int_equal(sqlite3_close(p->db), SQLITE_OK);
}

static uint64_t
stat_of(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Contract: "the writer then goes on and retries once the WAL has grown by
 * another checkpoint_pages pages",
 * "the file is truncated back to the bound when the WAL restarts"; and
 * every checkpoint result is checked: a failure other than BUSY is
 * recorded, not lost. */
static void
a_held_or_failed_restart_is_retried_and_the_file_truncated_after(void **state)
{
	struct bus_fixture *f = *state;
	struct plain p;
	sqlite3 *reader;
	char wal[320];
	uint32_t page_size;
	int64_t limit, held_len;
	int commits = 0;

	faultvfs_install();
	faultvfs_reset();
	plain_open(f, &p, LITEBUS_CHECKPOINT_INLINE);
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	page_size = db_page_size(f->path);
	limit = (int64_t)LITEBUS_WAL_BOUND_FACTOR * p.o.checkpoint_pages *
		    ((int64_t)page_size + 24) +
		32;

	/* Another connection's read transaction holds the WAL. */
	assert_int_equal(
	    sqlite3_open_v2(f->path, &reader, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	plain_exec(reader, "BEGIN; SELECT count(*) FROM t");
	/* Commit until the bound asks for a RESTART: it waits
	 * busy_timeout_ms for the reader and gives up. */
	do {
		plain_exec(p.db, "INSERT INTO t VALUES(zeroblob(4000))");
		assert_true(++commits < 1000);
	} while (!lb_ckpt_finish(p.ck, p.db, false));
	assert_int_equal(stat_of(&p.stats.ckpt_held), 1);
	assert_int_equal(stat_of(&p.stats.ckpt_forced), 0);
	/* The writer goes on, and tries again once the WAL has grown by
	 * another checkpoint_pages pages - not after every batch, which
	 * would hold every batch for busy_timeout_ms. */
	for (int i = 0; i < 8; i++) {
		int n = 0;

		do {
			plain_exec(p.db,
				   "INSERT INTO t VALUES(zeroblob(4000))");
			assert_true(++n < 1000);
		} while (!lb_ckpt_finish(p.ck, p.db, false));
		assert_true(n > 1);
	}
	assert_int_equal(stat_of(&p.stats.ckpt_held), 9);
	held_len = fx_file_len(wal);
	assert_true(held_len > limit);

	/* The WAL grows by checkpoint_pages more while the reader holds
	 * it; the reader ends, and the next try fails for another reason
	 * (an error taking the checkpoint lock): it is recorded... */
	for (uint32_t i = 0; i < p.o.checkpoint_pages; i++)
		plain_exec(p.db, "INSERT INTO t VALUES(zeroblob(4000))");
	held_len = fx_file_len(wal);
	plain_exec(reader, "COMMIT");
	faultvfs_arm(FAULT_SHMLOCK, 1, SQLITE_IOERR_SHMLOCK);
	assert_true(lb_ckpt_finish(p.ck, p.db, false));
	faultvfs_disarm();
	assert_int_equal(faultvfs_fired(), 1);
	assert_int_equal(stat_of(&p.stats.ckpt_errors), 1);
	assert_int_equal(atomic_load_explicit(&p.stats.ckpt_last_error,
					      memory_order_relaxed),
			 SQLITE_IOERR_SHMLOCK);
	assert_int_equal(stat_of(&p.stats.ckpt_forced), 0);
	/* ... and, not being a reader's hold, retried after the next
	 * batch, which succeeds. */
	assert_true(lb_ckpt_finish(p.ck, p.db, false));
	assert_int_equal(stat_of(&p.stats.ckpt_forced), 1);
	assert_false(lb_ckpt_finish(p.ck, p.db, false));
	/* The next commit restarts the WAL and truncates the file. */
	assert_int_equal(fx_file_len(wal), held_len);
	plain_exec(p.db, "INSERT INTO t VALUES(zeroblob(4000))");
	assert_true(fx_file_len(wal) <= limit);
	assert_false(lb_ckpt_finish(p.ck, p.db, false));

	assert_int_equal(sqlite3_close(reader), SQLITE_OK);
	plain_close(&p);
}

/* Contract ("What a job may do"): "Put back when the job returns: ...
 * the commit, rollback, update and WAL hooks ... A job that replaced
 * litebus's commit or WAL hook fails" - lb_ckpt_rehook() tells the
 * writer, and puts litebus's WAL hook back, in both modes. */
static void
rehook_detects_a_replaced_wal_hook_and_puts_litebus_s_back(void **state)
{
	static const int modes[] = {LITEBUS_CHECKPOINT_BACKGROUND,
				    LITEBUS_CHECKPOINT_INLINE};
	struct bus_fixture *f = *state;

	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		struct plain p;
		int foreign_calls = 0;

		fx_remove_dir(f);
		fx_make_dir(f);
		plain_open(f, &p, modes[m]);
		assert_true(lb_ckpt_rehook(p.ck, p.db));

		sqlite3_wal_hook(p.db, fx_counting_wal_hook, &foreign_calls);
		plain_exec(p.db, "INSERT INTO t VALUES(1)");
		assert_int_equal(foreign_calls, 1);
		assert_false(lb_ckpt_rehook(p.ck, p.db));
		assert_true(lb_ckpt_rehook(p.ck, p.db));
		plain_exec(p.db, "INSERT INTO t VALUES(2)");
		assert_int_equal(foreign_calls, 1);

		/* sqlite3_wal_autocheckpoint() replaces the hook too. */
		assert_int_equal(sqlite3_wal_autocheckpoint(p.db, 100),
				 SQLITE_OK);
		assert_false(lb_ckpt_rehook(p.ck, p.db));
		assert_true(lb_ckpt_rehook(p.ck, p.db));
		plain_close(&p);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_WITH(wal_stays_bounded_under_unbroken_exec_load, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_four_live_readers, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_a_reader_catching_up_from_the_table, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_external_scans_shorter_than_busy_timeout, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_submit_and_large_batches, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_inline_checkpoints, wal_setup),
	    FX_TEST_WITH(wal_stays_bounded_with_full_durability, wal_setup),
	    FX_TEST_WITH(external_read_transaction_holds_the_wal_only_while_it_lasts, wal_setup),
	    FX_TEST_TMPDIR(a_held_or_failed_restart_is_retried_and_the_file_truncated_after),
	    FX_TEST_TMPDIR(rehook_detects_a_replaced_wal_hook_and_puts_litebus_s_back),
	};

	return cmocka_run_group_tests_name("wal_bound", tests, NULL, NULL);
}
