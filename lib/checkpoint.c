/* SPDX-License-Identifier: MIT */
/*
 * checkpoint.c - WAL checkpoints off the commit path, and the WAL bound.
 *
 * SQLite's auto-checkpoint runs inside the COMMIT that pushes the WAL past
 * its threshold: one commit in a few hundred pays for copying the WAL back
 * into the database (milliseconds, with fsyncs), and that sets the tail
 * latency of every job in its batch.  In background mode the bulk of that
 * copying runs on a thread of its own, through its own connection, while
 * the writer goes on committing:
 *
 *  1. After each commit SQLite calls ckpt_wal_hook() on the writer thread
 *     with the WAL's size.  Past `pages` frames (and again after each
 *     further pages/2), it wakes the checkpointer, which runs a PASSIVE
 *     checkpoint: it copies what is committed and never waits for anyone.
 *  2. A WAL restarts from the top only when a write transaction begins
 *     while every frame has been copied back and no reader still uses
 *     one.  Under steady load the checkpointer never quite catches up
 *     with a writer that keeps appending, so the WAL would grow without
 *     bound.  Once the checkpointer is idle again and no job has arrived
 *     for LB_CKPT_IDLE_MS, the writer copies the small remainder itself
 *     (PASSIVE, between batches), so that the next transaction restarts
 *     the WAL.  That idle gap is when it is cheapest; it is not a bound.
 *  3. The bound (litebus.h, checkpoint_mode): when a commit leaves the
 *     WAL at or above LITEBUS_WAL_BOUND_FACTOR x pages frames, the writer
 *     runs a RESTART checkpoint on its own connection before its next
 *     transaction, whatever the checkpointer is doing: it copies what is
 *     left and waits until no reader uses the WAL, so the next
 *     transaction restarts it.  Jobs wait in the queue meanwhile
 *     (back-pressure).  It waits at most busy_timeout_ms: for readers
 *     (through a busy handler set only for this call) and for another
 *     checkpoint holding the checkpoint lock (SQLite returns BUSY for
 *     that at once, without the handler, so we retry with backoff).  If
 *     the time runs out - only a read transaction of another connection
 *     can hold it that long - the writer goes on and tries again after
 *     the next batch.  journal_size_limit makes the first commit after a
 *     restart truncate the file back to the bound.
 *
 * In inline mode ckpt_inline_hook() replaces SQLite's auto-checkpoint
 * hook: the same PASSIVE checkpoint inside the commit at `pages` frames
 * (what sqlite3_wal_autocheckpoint() does), and the frame count that the
 * bound (3) needs, which SQLite's hook does not give out.
 *
 * Every checkpoint's result is checked: SQLITE_BUSY is expected (another
 * checkpoint runs, a reader is in the way); anything else is counted in
 * stats->ckpt_errors with its code in ckpt_last_error.  None of them fails
 * a job: the WAL stays longer, the next checkpoint retries, and the last
 * close checkpoints.
 *
 * bench/bench_checkpoint.c compares the two modes.
 *
 * Threads: the hooks, lb_ckpt_finish_due, lb_ckpt_finish and
 * lb_ckpt_rehook run on the writer thread; ckpt_main on its own;
 * lb_ckpt_start on litebus_open's caller, lb_ckpt_stop on the writer
 * thread as it exits (or on the opener if open fails).
 *
 * Invariants
 *   K1  requested and completed count background runs; requested is
 *       written by the writer only, completed by the checkpointer only.
 *       completed == requested means the checkpointer is idle and has
 *       finished every run asked of it.
 *   K2  The writer state (frames, trigger_frames, the busy deadline) is
 *       touched only on the writer thread.
 *   K3  frames is the WAL's size in frames after the writer's last
 *       commit, or 0 after a RESTART checkpoint succeeded since (the next
 *       transaction restarts the WAL).  After every commit that leaves
 *       frames >= bound_frames, lb_ckpt_finish(idle = false) runs a
 *       RESTART checkpoint before the writer begins another transaction
 *       - unless the last one was held off for busy_timeout_ms by other
 *       connections' readers: then not before frames has grown by
 *       another `pages` (retry_frames), so that readers that never let
 *       go slow the writer to one wait per `pages` of WAL, never to one
 *       batch per wait.
 *   K4  The writer's connection has no busy handler except during a
 *       RESTART checkpoint of lb_ckpt_finish (the writer retries its own
 *       BUSY results, writer.c).
 */
#include "checkpoint.h"

#include "errors.h"
#include "role.h"
#include "wait.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The RESTART checkpoint's waits.  SQLite reads each read mark once and
 * then waits in the busy handler for that mark's lock, even after the
 * readers moved the mark forward: readers that keep taking the same mark
 * back to back (each transaction short) can starve it (measured: 1.8 s
 * behind two connections scanning a table in a loop).  So the busy
 * handler waits only CKPT_BUSY_TRIES times per call (10, 20, 40, 80 us),
 * and the writer calls again, with backoff, until busy_timeout_ms: each
 * call reads the marks afresh (measured on plain SQLite 3.40: at most
 * 48 ms behind four such scanners on two cores). */
#define CKPT_BUSY_TRIES 4
#define CKPT_SLEEP_MIN_NS 10000u
#define CKPT_SLEEP_MAX_NS 1000000u

struct lb_ckpt {
	/* Immutable after start. */
	uint32_t pages;	       /* the threshold: checkpoint_pages */
	uint64_t bound_frames; /* LITEBUS_WAL_BOUND_FACTOR x pages */
	uint32_t busy_timeout_ms;
	struct lb_stats *stats;
	bool has_thread;
	pthread_t thread;

	/* K2: writer thread only. */
	uint32_t frames;	   /* K3 */
	uint64_t retry_frames;	   /* K3: 0, or after a held RESTART */
	uint32_t trigger_frames;   /* WAL size at the last wake-up */
	uint64_t busy_deadline_ns; /* of the RESTART checkpoint under way */

	/* K1.  requested: release store by the writer, acquire load by the
	 * checkpointer (under `lock` as well, for the condition wait).
	 * completed: release store by the checkpointer, acquire load by the
	 * writer in lb_ckpt_finish_due(): the copying it did happens before
	 * the writer decides that only a remainder is left. */
	_Atomic uint64_t requested;
	_Atomic uint64_t completed;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping; /* under lock */

	sqlite3 *db; /* checkpointer thread only (after start); NULL inline */
};

/* Record a checkpoint's result (any thread).  BUSY is expected: another
 * checkpoint holds the lock, or a reader still needs frames. */
static void
ckpt_note(struct lb_ckpt *ck, int rc)
{
	if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY)
		return;
	/* Relaxed: counters and a last value for diagnosis (stats.h). */
	atomic_store_explicit(&ck->stats->ckpt_last_error, rc,
			      memory_order_relaxed);
	lb_stat_add(&ck->stats->ckpt_errors, 1);
}

/* SQLite's WAL hook in background mode: writer thread, right after a
 * commit (K2). */
static int
ckpt_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct lb_ckpt *ck = arg;
	uint64_t req;

	LB_ASSERT_ON_WRITER_THREAD();
	(void)db;
	(void)name;
	ck->frames = (uint32_t)frames;
	if (ck->frames < ck->trigger_frames) /* the WAL restarted */
		ck->trigger_frames = 0;
	if (ck->frames < ck->pages ||
	    (ck->trigger_frames != 0 &&
	     ck->frames - ck->trigger_frames < ck->pages / 2))
		return SQLITE_OK;
	/* Relaxed: only this thread writes requested. */
	req = atomic_load_explicit(&ck->requested, memory_order_relaxed);
	/* Pairs with the release store in ckpt_main(). */
	if (atomic_load_explicit(&ck->completed, memory_order_acquire) != req)
		return SQLITE_OK; /* a run is under way; it will do */
	ck->trigger_frames = ck->frames;
	pthread_mutex_lock(&ck->lock);
	/* Pairs with the acquire load in ckpt_main(). */
	atomic_store_explicit(&ck->requested, req + 1, memory_order_release);
	pthread_cond_signal(&ck->cond);
	pthread_mutex_unlock(&ck->lock);
	return SQLITE_OK;
}

/* SQLite's WAL hook in inline mode: writer thread, right after a commit
 * (K2).  The checkpoint SQLite's own hook would run, and the frame count
 * for the bound. */
static int
ckpt_inline_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct lb_ckpt *ck = arg;

	LB_ASSERT_ON_WRITER_THREAD();
	ck->frames = (uint32_t)frames;
	if (ck->frames >= ck->pages)
		ckpt_note(ck,
			  sqlite3_wal_checkpoint_v2(
			      db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL));
	return SQLITE_OK;
}

static void *
ckpt_main(void *arg)
{
	struct lb_ckpt *ck = arg;
	uint64_t done = 0;

	for (;;) {
		uint64_t want = done; /* assigned in the wait loop below */
		int rc, log = -1, copied = -1;

		pthread_mutex_lock(&ck->lock);
		/* Pairs with the release store in ckpt_wal_hook(). */
		while (!ck->stopping &&
		       (want = atomic_load_explicit(
			    &ck->requested, memory_order_acquire)) == done)
			pthread_cond_wait(&ck->cond, &ck->lock);
		if (ck->stopping) {
			pthread_mutex_unlock(&ck->lock);
			break;
		}
		pthread_mutex_unlock(&ck->lock);
		/* BUSY while the writer's checkpoint (or another process's)
		 * runs: the WAL stays longer; the next run, the writer, or
		 * the last close copies it. */
		rc = sqlite3_wal_checkpoint_v2(
		    ck->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
		ckpt_note(ck, rc);
		/* Count only runs that copied something: a no-op (log < 0)
		 * would otherwise look like progress. */
		if (rc == SQLITE_OK && copied > 0)
			lb_stat_add(&ck->stats->checkpoints, 1);
		done = want;
		/* K1.  Pairs with the acquire loads on the writer. */
		atomic_store_explicit(&ck->completed, done,
				      memory_order_release);
	}
	return NULL;
}

bool
lb_ckpt_finish_due(struct lb_ckpt *ck)
{
	uint64_t req;

	LB_ASSERT_ON_WRITER_THREAD();
	if (ck == NULL || !ck->has_thread || ck->trigger_frames == 0 ||
	    ck->frames < ck->pages)
		return false;
	/* Relaxed: only this thread writes requested (K1). */
	req = atomic_load_explicit(&ck->requested, memory_order_relaxed);
	/* Pairs with the release store in ckpt_main(). */
	return atomic_load_explicit(&ck->completed, memory_order_acquire) ==
	       req;
}

/* Writer thread, during a RESTART checkpoint: sleep up to ns, not past
 * the deadline.  Returns false, without sleeping, once busy_timeout_ms
 * has passed. */
static bool
ckpt_sleep(const struct lb_ckpt *ck, uint64_t ns)
{
	uint64_t now = lb_mono_ns();
	struct timespec ts;

	if (now >= ck->busy_deadline_ns)
		return false;
	if (ns > ck->busy_deadline_ns - now)
		ns = ck->busy_deadline_ns - now;
	ts.tv_sec = (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	/* An interrupted sleep only makes the next try come sooner. */
	(void)nanosleep(&ts, NULL);
	return true;
}

/* The writer connection's busy handler during the RESTART checkpoint: a
 * reader still uses the WAL, or another connection writes.  A few short
 * waits, then back to ckpt_restart() for a fresh call. */
static int
ckpt_busy(void *arg, int count)
{
	if (count < 0 || count >= CKPT_BUSY_TRIES)
		return 0;
	return ckpt_sleep(arg, (uint64_t)CKPT_SLEEP_MIN_NS << count) ? 1 : 0;
}

/* Writer thread, no transaction open (K3): copy the whole WAL back and
 * wait until no reader uses it, so that the next transaction restarts
 * it.  Waits up to busy_timeout_ms. */
static bool
ckpt_restart(struct lb_ckpt *ck, sqlite3 *wdb)
{
	uint64_t sleep_ns = CKPT_SLEEP_MIN_NS;
	int rc, hrc;

	LB_ASSERT_ON_WRITER_THREAD();
	ck->busy_deadline_ns =
	    lb_mono_ns() + (uint64_t)ck->busy_timeout_ms * 1000000u;
	/* K4: only around this call. */
	hrc = sqlite3_busy_handler(wdb, ckpt_busy, ck);
	if (hrc != SQLITE_OK) {
		ckpt_note(ck, hrc);
		return false;
	}
	for (;;) {
		rc = sqlite3_wal_checkpoint_v2(
		    wdb, "main", SQLITE_CHECKPOINT_RESTART, NULL, NULL);
		if ((rc & 0xff) != SQLITE_BUSY || !ckpt_sleep(ck, sleep_ns))
			break;
		if (sleep_ns < CKPT_SLEEP_MAX_NS)
			sleep_ns *= 2;
	}
	hrc = sqlite3_busy_handler(wdb, NULL, NULL);
	if (hrc != SQLITE_OK)
		ckpt_note(ck, hrc);
	if (rc == SQLITE_OK) {
		/* K3: the next transaction starts the WAL over. */
		lb_stat_add_w(&ck->stats->ckpt_forced, 1);
		ck->frames = 0;
		ck->trigger_frames = 0;
		ck->retry_frames = 0;
		return true;
	}
	if ((rc & 0xff) == SQLITE_BUSY) {
		lb_stat_add_w(&ck->stats->ckpt_held, 1);
		ck->retry_frames = (uint64_t)ck->frames + ck->pages; /* K3 */
	} else {
		ckpt_note(ck, rc);
	}
	/* frames stays: the next commit's hook refreshes it and K3 makes
	 * the writer try again after that batch. */
	return true;
}

bool
lb_ckpt_finish(struct lb_ckpt *ck, sqlite3 *wdb, bool idle)
{
	int rc;

	LB_ASSERT_ON_WRITER_THREAD();
	if (ck == NULL)
		return false;
	if (!idle)
		return ck->frames >= ck->bound_frames &&
		       ck->frames >= ck->retry_frames && ckpt_restart(ck, wdb);
	if (!lb_ckpt_finish_due(ck))
		return false;
	/* Between transactions, so this copies every committed frame that
	 * no reader still needs, and the next BEGIN restarts the WAL if it
	 * copied them all.  Never waits: a job may arrive meanwhile. */
	rc = sqlite3_wal_checkpoint_v2(wdb, "main", SQLITE_CHECKPOINT_PASSIVE,
				       NULL, NULL);
	ckpt_note(ck, rc);
	/* Not due again until a commit crosses the threshold anew.  frames
	 * stays (K3): if this did not complete, the bound still knows. */
	ck->trigger_frames = 0;
	return true;
}

/* Put litebus's WAL hook on wdb (none for ck == NULL); true if it was
 * there already.  The thread that owns wdb. */
static bool
ckpt_hook(struct lb_ckpt *ck, sqlite3 *wdb)
{
	if (ck == NULL) {
		sqlite3_wal_hook(wdb, NULL, NULL);
		return true;
	}
	return sqlite3_wal_hook(
		   wdb, ck->has_thread ? ckpt_wal_hook : ckpt_inline_hook,
		   ck) == ck;
}

bool
lb_ckpt_rehook(struct lb_ckpt *ck, sqlite3 *wdb)
{
	LB_ASSERT_ON_WRITER_THREAD();
	return ckpt_hook(ck, wdb);
}

/* Read PRAGMA page_size from wdb and set journal_size_limit to the bound
 * in bytes: the first commit after the WAL restarts truncates the file
 * to it (SQLite keeps a restarted WAL's file at its largest size
 * otherwise). */
static int
ckpt_limit_size(struct lb_ckpt *ck, sqlite3 *wdb)
{
	sqlite3_stmt *st;
	int64_t page_size;
	char sql[64];
	int rc;

	rc = sqlite3_prepare_v2(wdb, "PRAGMA page_size", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(wdb, rc, "reading the page size");
	rc = sqlite3_step(st);
	page_size = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return lb_err_sqlite(wdb, rc, "reading the page size");
	/* A WAL frame is a 24-byte header and a page, after the file's
	 * 32-byte header.  At most 2^32 x 8 x 65560 bytes: no overflow. */
	snprintf(sql, sizeof sql, "PRAGMA journal_size_limit=%llu",
		 (unsigned long long)(ck->bound_frames *
					  ((uint64_t)page_size + 24u) +
				      32u));
	rc = sqlite3_exec(wdb, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(wdb, rc, "setting journal_size_limit");
	return LITEBUS_OK;
}

/* Background mode: the checkpointer's connection and thread. */
static int
ckpt_start_thread(struct lb_ckpt *ck, const struct lb_dbname *dbn)
{
	int rc;

	rc = sqlite3_open_v2(dbn->name, &ck->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
				 dbn->extra_flags,
			     NULL);
	if (rc == SQLITE_OK)
		rc = lb_outbox_harden(ck->db);
	/* A connection that has never read the database has not opened its
	 * WAL: SQLite would answer every checkpoint with SQLITE_OK and copy
	 * nothing.  One read opens it. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(ck->db, "SELECT 1 FROM sqlite_schema LIMIT 1",
				  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(ck->db, rc, "opening the checkpointer");
		sqlite3_close_v2(ck->db);
		ck->db = NULL;
		return rc;
	}
	pthread_mutex_init(&ck->lock, NULL);
	pthread_cond_init(&ck->cond, NULL);
	rc = pthread_create(&ck->thread, NULL, ckpt_main, ck);
	if (rc != 0) {
		pthread_cond_destroy(&ck->cond);
		pthread_mutex_destroy(&ck->lock);
		sqlite3_close_v2(ck->db);
		ck->db = NULL;
		return lb_err_set(LITEBUS_ENOMEM,
				  "starting the checkpointer thread");
	}
	ck->has_thread = true;
	return LITEBUS_OK;
}

int
lb_ckpt_start(const struct lb_dbname *dbn, sqlite3 *wdb,
	      const litebus_options *opts, struct lb_stats *stats,
	      struct lb_ckpt **out)
{
	struct lb_ckpt *ck = calloc(1, sizeof *ck);
	int rc;

	*out = NULL;
	if (ck == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "allocating the checkpointer");
	ck->pages = opts->checkpoint_pages;
	ck->bound_frames = (uint64_t)LITEBUS_WAL_BOUND_FACTOR * ck->pages;
	ck->busy_timeout_ms = opts->busy_timeout_ms;
	ck->stats = stats;
	atomic_init(&ck->requested, 0);
	atomic_init(&ck->completed, 0);
	rc = ckpt_limit_size(ck, wdb);
	if (rc == LITEBUS_OK &&
	    opts->checkpoint_mode == LITEBUS_CHECKPOINT_BACKGROUND)
		rc = ckpt_start_thread(ck, dbn);
	if (rc != LITEBUS_OK) {
		free(ck);
		return rc;
	}
	/* Replaces SQLite's inline auto-checkpoint (itself a WAL hook).  On
	 * the opener's thread: the writer thread does not exist yet. */
	(void)ckpt_hook(ck, wdb);
	*out = ck;
	return LITEBUS_OK;
}

void
lb_ckpt_stop(struct lb_ckpt *ck, sqlite3 *wdb)
{
	if (ck == NULL)
		return;
	sqlite3_wal_hook(wdb, NULL, NULL);
	if (ck->has_thread) {
		pthread_mutex_lock(&ck->lock);
		ck->stopping = true;
		pthread_cond_signal(&ck->cond);
		pthread_mutex_unlock(&ck->lock);
		pthread_join(ck->thread, NULL);
		pthread_cond_destroy(&ck->cond);
		pthread_mutex_destroy(&ck->lock);
		sqlite3_close_v2(ck->db);
	}
	free(ck);
}
