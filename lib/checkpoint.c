/*
 * checkpoint.c - WAL checkpoints off the commit path.
 *
 * SQLite's auto-checkpoint runs inside the COMMIT that pushes the WAL past
 * its threshold: one commit in a few hundred pays for copying the WAL back
 * into the database (milliseconds, with fsyncs), and that sets the tail
 * latency of every job in its batch.  Here the bulk of that copying runs
 * on a thread of its own, through its own connection, while the writer
 * goes on committing:
 *
 *  1. After each commit SQLite calls ckpt_wal_hook() on the writer thread
 *     with the WAL's size.  Past `pages` frames (and again after each
 *     further pages/2), it wakes the checkpointer, which runs a PASSIVE
 *     checkpoint: it copies what is committed and never waits for anyone.
 *  2. A WAL restarts from the top only when a write transaction begins
 *     while every frame has been copied back.  Under steady load the
 *     checkpointer never quite catches up with a writer that keeps
 *     appending, so the WAL would grow without bound (measured: 170 MB
 *     after 20k one-row commits).  So once the checkpointer is idle again,
 *     the writer copies the small remainder itself, between batches, once
 *     no job has arrived for LB_CKPT_IDLE_MS - or, if jobs never stop
 *     coming, once the WAL has reached LB_CKPT_FORCE_FACTOR times the
 *     threshold (lb_ckpt_finish).
 *     That keeps the WAL bounded.  The remainder is cheap to copy but a
 *     complete checkpoint still syncs the WAL and the database, which is
 *     why it waits for an idle gap rather than running after every
 *     batch (measured: running it whenever the queue was empty put the
 *     fsyncs back into the p99.9 of a closed-loop producer).
 *
 * bench/bench_checkpoint.c compares this with SQLite's inline checkpoint.
 *
 * Threads: the hook, lb_ckpt_finish_due and lb_ckpt_finish run on the
 * writer thread; ckpt_main on its own; lb_ckpt_start on litebus_open's
 * caller, lb_ckpt_stop on the writer thread as it exits (or on the opener
 * if open fails).
 *
 * Invariants
 *   K1  requested and completed count background runs; requested is
 *       written by the writer only, completed by the checkpointer only.
 *       completed == requested means the checkpointer is idle and has
 *       finished every run asked of it.
 *   K2  The writer state (frames, trigger_frames) is touched only on the
 *       writer thread.
 */
#include "checkpoint.h"

#include "errors.h"

#include <pthread.h>
#include <stdlib.h>

struct lb_ckpt {
	/* Immutable after start. */
	uint32_t pages;
	_Atomic uint64_t *count;
	pthread_t thread;

	/* K2: writer thread only. */
	uint32_t frames;	 /* WAL size after the last commit */
	uint32_t trigger_frames; /* WAL size at the last wake-up */

	/* K1.  requested: release store by the writer, acquire load by the
	 * checkpointer (under `lock` as well, for the condition wait).
	 * completed: release store by the checkpointer, acquire load by the
	 * writer in lb_ckpt_finish(): the copying it did happens before the
	 * writer decides that only a remainder is left. */
	_Atomic uint64_t requested;
	_Atomic uint64_t completed;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping; /* under lock */

	sqlite3 *db; /* checkpointer thread only (after start) */
};

/* SQLite's WAL hook: writer thread, right after a commit (K2). */
static int
ckpt_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct lb_ckpt *ck = arg;
	uint64_t req;

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
	if (atomic_load_explicit(&ck->completed, memory_order_acquire) != req)
		return SQLITE_OK; /* a run is under way; it will do */
	ck->trigger_frames = ck->frames;
	pthread_mutex_lock(&ck->lock);
	atomic_store_explicit(&ck->requested, req + 1, memory_order_release);
	pthread_cond_signal(&ck->cond);
	pthread_mutex_unlock(&ck->lock);
	return SQLITE_OK;
}

static void *
ckpt_main(void *arg)
{
	struct lb_ckpt *ck = arg;
	uint64_t done = 0;

	for (;;) {
		uint64_t want = done; /* assigned in the wait loop below */

		pthread_mutex_lock(&ck->lock);
		while (!ck->stopping &&
		       (want = atomic_load_explicit(&ck->requested,
						    memory_order_acquire)) ==
			   done)
			pthread_cond_wait(&ck->cond, &ck->lock);
		if (ck->stopping) {
			pthread_mutex_unlock(&ck->lock);
			break;
		}
		pthread_mutex_unlock(&ck->lock);
		/* Errors (BUSY while another checkpoint runs, I/O) are not
		 * fatal: the WAL stays longer; the next run or the writer's
		 * finish retries, and the last close checkpoints. */
		int log = -1, copied = -1;
		(void)sqlite3_wal_checkpoint_v2(ck->db, "main",
						SQLITE_CHECKPOINT_PASSIVE, &log,
						&copied);
		/* Count only runs that copied something: a no-op (log < 0)
		 * would otherwise look like progress. */
		if (copied > 0)
			atomic_fetch_add_explicit(ck->count, 1,
						  memory_order_relaxed);
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

	if (ck == NULL || ck->trigger_frames == 0 || ck->frames < ck->pages)
		return false;
	/* Relaxed: only this thread writes requested (K1). */
	req = atomic_load_explicit(&ck->requested, memory_order_relaxed);
	/* Pairs with the release store in ckpt_main(). */
	return atomic_load_explicit(&ck->completed, memory_order_acquire) ==
	       req;
}

bool
lb_ckpt_finish(struct lb_ckpt *ck, sqlite3 *wdb, bool idle)
{
	if (!lb_ckpt_finish_due(ck))
		return false;
	if (!idle && ck->frames < LB_CKPT_FORCE_FACTOR * ck->pages)
		return false;
	/* Between transactions, so this copies every committed frame (that
	 * no reader still needs) and the next BEGIN restarts the WAL. */
	(void)sqlite3_wal_checkpoint_v2(wdb, "main", SQLITE_CHECKPOINT_PASSIVE,
					NULL, NULL);
	ck->trigger_frames = 0;
	ck->frames = 0;
	return true;
}

int
lb_ckpt_start(const struct lb_dbname *dbn, sqlite3 *wdb, uint32_t pages,
	      _Atomic uint64_t *count, struct lb_ckpt **out)
{
	struct lb_ckpt *ck = calloc(1, sizeof *ck);
	int rc;

	*out = NULL;
	if (ck == NULL)
		return lb_err_set(LITEBUS_ENOMEM, "allocating the checkpointer");
	ck->pages = pages;
	ck->count = count;
	atomic_init(&ck->requested, 0);
	atomic_init(&ck->completed, 0);
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
		free(ck);
		return rc;
	}
	pthread_mutex_init(&ck->lock, NULL);
	pthread_cond_init(&ck->cond, NULL);
	rc = pthread_create(&ck->thread, NULL, ckpt_main, ck);
	if (rc != 0) {
		pthread_cond_destroy(&ck->cond);
		pthread_mutex_destroy(&ck->lock);
		sqlite3_close_v2(ck->db);
		free(ck);
		return lb_err_set(LITEBUS_ENOMEM,
				  "starting the checkpointer thread");
	}
	/* Replaces SQLite's inline auto-checkpoint (itself a WAL hook). */
	sqlite3_wal_hook(wdb, ckpt_wal_hook, ck);
	*out = ck;
	return LITEBUS_OK;
}

void
lb_ckpt_stop(struct lb_ckpt *ck, sqlite3 *wdb)
{
	if (ck == NULL)
		return;
	sqlite3_wal_hook(wdb, NULL, NULL);
	pthread_mutex_lock(&ck->lock);
	ck->stopping = true;
	pthread_cond_signal(&ck->cond);
	pthread_mutex_unlock(&ck->lock);
	pthread_join(ck->thread, NULL);
	pthread_cond_destroy(&ck->cond);
	pthread_mutex_destroy(&ck->lock);
	sqlite3_close_v2(ck->db);
	free(ck);
}

bool
lb_ckpt_rehook(struct lb_ckpt *ck, sqlite3 *wdb)
{
	if (ck == NULL)
		return true;
	/* sqlite3_wal_hook returns the argument of the hook it replaces: a
	 * job that installed its own (or called sqlite3_wal_autocheckpoint)
	 * shows up as a different one. */
	return sqlite3_wal_hook(wdb, ckpt_wal_hook, ck) == ck;
}
