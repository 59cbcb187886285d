/* SPDX-License-Identifier: MIT */
/*
 * writer.c - the writer thread: job queue in, transactions, publish.
 *
 * Every job of a bus runs here, on one thread that owns the only write
 * connection, so writes need no locks of their own.  The thread takes every
 * job waiting (up to max_batch) into one transaction, and one COMMIT (one
 * fsync under full durability) serves the whole batch.  A failing job must
 * roll back alone.  Jobs first run without savepoints (W9): a savepoint
 * pair per job, with the page copies SQLite makes for it, was 15-20% of
 * the CPU per event.  If a job fails, the transaction is rolled back, the
 * job settles as failed, and its batch mates run again in a new
 * transaction, each inside its own SAVEPOINT, as they do for the next
 * WRITER_SP_BATCHES batches.  Only after COMMIT
 * returns are the batch's events published to the rings, in commit order;
 * then the jobs are completed in queue order.
 *
 * event_ids are handed out here (last_id[]: the largest id handed out or
 * known per channel), above every id the table has ever held (outbox.c),
 * so id order is commit order by construction.  If another connection
 * committed since our last batch (PRAGMA data_version), last_id[] is
 * reloaded from the tables.
 *
 * What is published is derived from the database, not from bookkeeping
 * kept beside the transaction: after the batch's last job, still inside
 * the transaction, the writer reads back the rows the batch added to each
 * channel (writer_collect) and, once COMMIT has returned, publishes
 * exactly those.  A job's own ROLLBACK TO, a DELETE of a row it just
 * emitted, or a trigger added behind litebus's back can therefore never
 * make the rings carry an id that did not commit.
 *
 * The writer is wired by the lb_writer_config its owner hands it (bus.c)
 * and never reads its owner's struct.  Jobs reach it through the job queue
 * (jobs.c), from litebus_exec/litebus_submit (bus.c) on callers' threads.
 *
 * Threads: lb_writer_start, lb_writer_stop and lb_writer_free on the
 * owner's thread (litebus_open, the last litebus_close); everything else,
 * litebus_tx_db and litebus_emit included, on the writer thread, which
 * LB_ASSERT_ON_WRITER checks (and role.h for the modules it calls).
 * lb_writer_is_current from any thread.
 *
 * Invariants
 *   W1  A record reaches a ring only if its row was read back from the
 *       table inside the batch's transaction and that transaction's
 *       COMMIT returned SQLITE_OK (R1); and before the job is completed:
 *       when litebus_exec returns 0, a subscriber can already see the
 *       events.
 *   W2  Jobs commit, publish and complete in queue order; event_ids of a
 *       channel increase in that order (with gaps where ids were handed
 *       out and then undone inside a job).
 *   W3  A job is completed exactly once (J3, jobs.c): exec wakes, or
 *       done() is called.
 *       A job accepted by exec/submit is always run, even during close.
 *   W4  Every id handed out in a batch is above batch_last_id[], which is
 *       at least every id committed or published on the channel: the
 *       tables' largest id and high-water mark when loaded, and never
 *       below the channel's committed_id (C5), whatever another
 *       connection did to the tables since.  When a
 *       job rolls back, last_id[] returns to its value before the job;
 *       when the transaction is lost, to batch_last_id[].  Ids handed out
 *       and undone were never published (W1), so handing them out again
 *       repeats nothing; no published id is ever handed out again.
 *   W5  (Now J1, in jobs.c: once the queue is closed no job enters it,
 *       and every job queued before is run.)
 *   W6  A job is run until it settles and commits at most once: when a
 *       statement of job k makes SQLite roll back the whole transaction,
 *       job k settles as failed and the unsettled jobs (those before k
 *       that had succeeded, and those after it) run in a new
 *       transaction, each in its own savepoint (W9).  Each such loss
 *       settles one job, so a batch of n jobs runs at most n
 *       transactions of that kind (and one more after a failure
 *       without savepoints, W9).
 *   W8  commit_seq is odd exactly from right before a batch's COMMIT
 *       until its committed ids are stored (C5) or the COMMIT failed.
 *       The watcher (watcher.c, X3) uses it to tell this writer's rows
 *       from other connections': seen even after it read a snapshot, the
 *       committed ids loaded next cover every row of ours in it.
 *   W9  A job runs without a savepoint of its own only in its batch's
 *       first transaction, and only when no job has failed that way in
 *       the last WRITER_SP_BATCHES batches.  A failure there settles that
 *       job and abandons the transaction (W4's ids with it): its batch
 *       mates that had succeeded are called again (the header's "may be
 *       called more than once"), never committed twice, and the rest of
 *       the batch and the next WRITER_SP_BATCHES batches run with a
 *       savepoint per job, so a stream of failing jobs costs at most one
 *       re-run per WRITER_SP_BATCHES + 1 batches.  The batch's COMMIT
 *       releases any savepoint a job left open.
 */
#include "writer.h"

#include "catalog.h"
#include "checkpoint.h"
#include "errors.h"
#include "fork.h"
#include "jobs.h"
#include "role.h"
#include "rowcache.h"
#include "wait.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct litebus_tx {
	struct lb_writer *w;
	bool active; /* true only while a job's fn runs */
};

/* One committed row on its way to a ring (W1), and to the channel's row
 * cache (rowcache.c) when img_words is not 0: its image is
 * stage[img_off .. img_off + img_words). */
struct lb_pub {
	int channel;
	uint32_t img_words;
	size_t img_off;
	struct lb_rec rec;
};

struct lb_writer {
	struct lb_writer_config cfg; /* immutable */
	pthread_t thread;	     /* immutable once started */

	/* Writer thread only (after start). */
	struct lb_outbox ob;
	struct lb_ckpt *ckpt; /* NULL: in-memory */
	struct litebus_tx tx;
	int64_t last_id[LITEBUS_MAX_CHANNELS];	     /* W4 */
	int64_t batch_last_id[LITEBUS_MAX_CHANNELS]; /* W4 */
	int64_t batch_ms;
	struct lb_pub *pub; /* the batch's rows read back (W1) */
	size_t npub, cap_pub;
	uint64_t *stage; /* their row images (struct lb_pub) */
	size_t nstage, cap_stage;
	int collect_channel; /* writer_collect -> writer_collect_one */
	/* The collected channel's row cache, or NULL (lb_channel_rows). */
	struct lb_rowcache *collect_rows;
	struct lb_job **batch;
	bool touched[LITEBUS_MAX_CHANNELS];
	/* Why the batch's transaction was lost (writer_run_job returned
	 * RUN_LOST): a litebus status, with the thread's error text set. */
	int lost_status;
	/* W9: batches still to run with a savepoint per job. */
	uint32_t sp_batches;
};

/* W9: after a job failed in a transaction without savepoints, this many
 * batches run with a savepoint per job before the writer tries again
 * without: re-running a failed batch's mates costs at most about one
 * batch, spread over this many. */
#define WRITER_SP_BATCHES 16u

#ifdef NDEBUG
#define LB_ASSERT_ON_WRITER(w) ((void)(w))
#else
#define LB_ASSERT_ON_WRITER(w)                                                 \
	assert(pthread_equal(pthread_self(), (w)->thread))
#endif

bool
lb_writer_is_current(const struct litebus *owner)
{
	return lb_role_writer() == (const void *)owner;
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

static void
writer_backoff(uint64_t *sleep_ns)
{
	struct timespec ts = {0, (long)*sleep_ns};

	nanosleep(&ts, NULL);
	if (*sleep_ns < 8000000u)
		*sleep_ns *= 2;
}

/* Run `step` (BEGIN or COMMIT: a raw SQLite code), retrying SQLITE_BUSY
 * and SQLITE_LOCKED with backoff for up to busy_timeout_ms.  Returns a
 * litebus status. */
static int
writer_retry(struct lb_writer *w, int (*step)(struct lb_outbox *),
	     const char *what)
{
	uint64_t deadline = 0, sleep_ns = 50000;
	int src; /* SQLite result code (outbox.h) */

	LB_ASSERT_ON_WRITER(w);
	for (;;) {
		src = step(&w->ob);
		if (src == SQLITE_OK)
			return LITEBUS_OK;
		if ((src & 0xff) != SQLITE_BUSY &&
		    (src & 0xff) != SQLITE_LOCKED)
			return lb_err_sqlite(w->ob.db, src, what);
		if (deadline == 0)
			deadline =
			    lb_mono_ns() +
			    (uint64_t)w->cfg.opts->busy_timeout_ms * 1000000u;
		if (lb_mono_ns() >= deadline) {
			lb_err_sqlite(w->ob.db, src, what);
			return lb_err_set(LITEBUS_EBUSY,
					  "%s: the database stayed locked by "
					  "another connection for %u ms",
					  what, w->cfg.opts->busy_timeout_ms);
		}
		lb_stat_add_w(&w->cfg.stats->busy_retries, 1);
		writer_backoff(&sleep_ns);
	}
}

/* W4: reload from the tables, but never below what this bus committed:
 * another connection may have deleted those rows and lowered the
 * high-water mark, and a published id handed out again would reach
 * subscribers twice and never reach a reader whose cursor is past it.
 * (committed_id is written by this thread only, writer_publish.) */
static int
writer_reload_ids(struct lb_writer *w)
{
	for (int i = 0; i < w->cfg.nchannels; i++) {
		int64_t committed = lb_channel_committed_id(w->cfg.channels[i]);
		int rc = lb_outbox_load_last_id(&w->ob, i, &w->last_id[i]);

		if (rc != LITEBUS_OK)
			return rc;
		if (w->last_id[i] < committed)
			w->last_id[i] = committed;
	}
	return LITEBUS_OK;
}

static int
writer_begin(struct lb_writer *w)
{
	bool changed;
	int rc;

	LB_ASSERT_ON_WRITER(w);
	/* A ROLLBACK that failed earlier (writer_abandon) left the
	 * transaction open: end it first, or BEGIN would fail forever. */
	if (!sqlite3_get_autocommit(w->ob.db)) {
		int src = lb_outbox_rollback(&w->ob);

		if (src != SQLITE_OK)
			return lb_err_sqlite(w->ob.db, src,
					     "rolling back a transaction left "
					     "open by a failed rollback");
	}
	rc = writer_retry(w, lb_outbox_begin, "beginning a transaction");
	if (rc != LITEBUS_OK)
		return rc;
	/* We hold the write lock now: no other connection can commit until
	 * we do, so the ids loaded here stay valid for the batch (W4). */
	rc = lb_outbox_changed_elsewhere(&w->ob, &changed);
	if (rc == LITEBUS_OK && changed)
		rc = writer_reload_ids(w);
	if (rc != LITEBUS_OK) {
		/* Not reloaded: make the next batch try again.  A failed
		 * rollback is retried by the next writer_begin. */
		w->ob.last_data_version = -1;
		(void)lb_outbox_rollback(&w->ob);
	}
	return rc;
}

/* The batch's transaction is gone or must go: roll back whatever is left
 * of it, give back the ids it handed out (nothing of it was published,
 * W4), and make the next batch reload its ids from the tables, whatever
 * happened. */
static void
writer_abandon(struct lb_writer *w)
{
	LB_ASSERT_ON_WRITER(w);

	/* If it fails, the transaction stays open and the next
	 * writer_begin rolls it back before anything else. */
	(void)lb_outbox_rollback(&w->ob);
	memcpy(w->last_id, w->batch_last_id, sizeof w->last_id);
	w->ob.last_data_version = -1;
}

/* Why the transaction was lost, as a litebus status with the thread's
 * error text set: never a job's private return value, since other jobs
 * of the batch may get it. */
static int
writer_lost_status(struct lb_writer *w, int sqlite_rc, const char *what)
{
	if (sqlite_rc == SQLITE_OK || sqlite_rc == SQLITE_ROW ||
	    sqlite_rc == SQLITE_DONE)
		sqlite_rc = SQLITE_ABORT;
	return lb_err_sqlite(w->ob.db, sqlite_rc, what);
}

/* A job settles once its fate is final: it failed (its own return value,
 * or an error of litebus's), or its transaction committed. */
static void
writer_settle(struct lb_job *j, int status, bool with_detail)
{
	lb_job_set_status(j, status, with_detail);
	j->settled = true;
}

/* What running one job did to the batch's transaction. */
enum run_result {
	RUN_OK,		  /* the transaction lives on (the job may have failed
			     alone and been rolled back to its savepoint) */
	RUN_LOST_BY_JOB,  /* a statement of the job made SQLite roll back
			     the whole transaction; the job is settled */
	RUN_FAILED_NO_SP, /* W9: the job failed without a savepoint of its
			     own; it is settled, and the transaction must be
			     abandoned */
	RUN_LOST	  /* litebus's own savepoint statements failed and the
			     transaction is gone; w->lost_status says why */
};

/* Run one job, inside its own savepoint if with_sp (W9). */
static enum run_result
writer_run_job(struct lb_writer *w, struct lb_job *j, bool with_sp)
{
	const int n = w->cfg.nchannels;
	int64_t job_last_id[LITEBUS_MAX_CHANNELS];
	int src;    /* SQLite result code (outbox.h) */
	int jr;	    /* the job's status: its return value, or litebus's */
	int misuse; /* litebus status */

	LB_ASSERT_ON_WRITER(w);
	lb_stat_add_w(&w->cfg.stats->jobs, 1);
	memcpy(job_last_id, w->last_id, (size_t)n * sizeof job_last_id[0]);
	src = with_sp ? lb_outbox_savepoint(&w->ob) : SQLITE_OK;
	if (src != SQLITE_OK) {
		writer_settle(
		    j,
		    lb_err_sqlite(w->ob.db, src, "opening a job's savepoint"),
		    true);
		if (sqlite3_get_autocommit(w->ob.db)) {
			w->lost_status = writer_lost_status(
			    w, src, "opening a job's savepoint");
			return RUN_LOST;
		}
		return RUN_OK;
	}
	lb_err_clear();
	w->tx.active = true;
	lb_outbox_job_begin(&w->ob);
	jr = j->fn(&w->tx, j->arg);
	w->ob.in_job = false;
	w->tx.active = false;
	/* The job's own failure first, with the text of a litebus error it
	 * met (the thread's error was cleared before the job). */
	if (jr != 0)
		lb_job_set_status(j, jr, jr < 0 && lb_err_msg()[0] != '\0');
	/* Before anything else runs on the connection: reset what the job
	 * left running and put back the state it may have changed. */
	misuse = lb_outbox_after_job(&w->ob);
	if (!lb_ckpt_rehook(w->ckpt, w->ob.db) && misuse == LITEBUS_OK)
		misuse = lb_err_set(LITEBUS_EMISUSE,
				    "the job replaced litebus's WAL hook; it "
				    "was put back and the job rolled back");
	if (lb_outbox_job_lost(&w->ob)) {
		/* A statement of the job failed and SQLite ended the whole
		 * transaction; the commit hook kept anything the job ran
		 * afterwards from committing on its own (outbox.c).  The job
		 * fails; its batch mates are innocent and run again (W6). */
		int code = sqlite3_extended_errcode(w->ob.db);

		if (jr != 0)
			j->settled = true;
		else
			writer_settle(
			    j,
			    writer_lost_status(w, code,
					       "a statement of this job made "
					       "SQLite roll back the batch's "
					       "transaction"),
			    true);
		return RUN_LOST_BY_JOB;
	}
	if (jr == 0 && misuse != LITEBUS_OK) {
		jr = misuse;
		lb_job_set_status(j, jr, true);
	}
	if (!with_sp) {
		if (jr == 0) {
			lb_job_set_status(j, 0, false); /* settles at COMMIT */
			return RUN_OK;
		}
		/* W9: it cannot roll back alone; the transaction goes, and
		 * with it the ids it handed out (writer_abandon, W4). */
		j->settled = true;
		return RUN_FAILED_NO_SP;
	}
	if (jr == 0) {
		src = lb_outbox_release(&w->ob);
		if (src == SQLITE_OK) {
			lb_job_set_status(j, 0, false); /* settles at COMMIT */
			return RUN_OK;
		}
		jr =
		    lb_err_sqlite(w->ob.db, src, "releasing a job's savepoint");
		lb_job_set_status(j, jr, true);
	}
	j->settled = true;
	/* The job rolls back alone; its ids are handed out again (W4). */
	memcpy(w->last_id, job_last_id, (size_t)n * sizeof job_last_id[0]);
	if (sqlite3_get_autocommit(w->ob.db)) {
		w->lost_status =
		    writer_lost_status(w, src, "releasing a job's savepoint");
		return RUN_LOST;
	}
	src = lb_outbox_rollback_to(&w->ob);
	if (src != SQLITE_OK) {
		w->lost_status =
		    writer_lost_status(w, src, "rolling a job back");
		return RUN_LOST;
	}
	return RUN_OK;
}

/* Settle every unsettled job of jobs[0, n) with `status` (the thread's
 * error text describes it). */
static void
writer_fail_unsettled(struct lb_job **jobs, size_t n, int status)
{
	for (size_t i = 0; i < n; i++)
		if (!jobs[i]->settled)
			writer_settle(jobs[i], status, true);
}

/* Room for `words` more words of row images; false if out of memory (the
 * row is then published without its image: readers take it from the
 * table). */
static bool
writer_stage_room(struct lb_writer *w, size_t words)
{
	size_t cap;
	uint64_t *p;

	if (w->cap_stage - w->nstage >= words)
		return true;
	cap = w->cap_stage != 0 ? w->cap_stage : 4096;
	while (cap - w->nstage < words)
		cap *= 2;
	p = realloc(w->stage, cap * sizeof *p);
	if (p == NULL)
		return false;
	w->stage = p;
	w->cap_stage = cap;
	return true;
}

static int
writer_collect_one(void *arg, const struct lb_rec *rec,
		   const struct lb_outbox_row *row)
{
	struct lb_writer *w = arg;
	struct lb_pub *pub;
	size_t words;

	if (w->npub == w->cap_pub) {
		size_t cap = w->cap_pub * 2;
		struct lb_pub *p = realloc(w->pub, cap * sizeof *p);

		if (p == NULL)
			return lb_err_set(LITEBUS_ENOMEM,
					  "reading back the batch's rows: out "
					  "of memory");
		w->pub = p;
		w->cap_pub = cap;
	}
	pub = &w->pub[w->npub++];
	pub->channel = w->collect_channel;
	pub->rec = *rec;
	pub->img_words = 0;
	/* The row as the table holds it inside this transaction (W1): what
	 * COMMIT makes durable, so what a reader may take from memory. */
	if (w->collect_rows != NULL &&
	    (words = lb_rowcache_image_words(w->collect_rows, row)) != 0 &&
	    writer_stage_room(w, words)) {
		pub->img_off = w->nstage;
		pub->img_words = (uint32_t)words;
		lb_rowcache_encode(row, &w->stage[w->nstage]);
		w->nstage += words;
	}
	return LITEBUS_OK;
}

/* W1: inside the transaction, after the batch's last job, read back the
 * rows this batch added to each channel it handed ids out on.  These -
 * not a list kept beside the transaction, which a job's own ROLLBACK TO,
 * a DELETE or a trigger could falsify - are what COMMIT makes durable and
 * what gets published.  We hold the write lock, and ids above
 * batch_last_id are this batch's only (W4), so the range is exact. */
static int
writer_collect(struct lb_writer *w)
{
	LB_ASSERT_ON_WRITER(w);

	w->npub = 0;
	w->nstage = 0;
	for (int c = 0; c < w->cfg.nchannels; c++) {
		int rc;

		if (w->last_id[c] == w->batch_last_id[c])
			continue;
		w->collect_channel = c;
		w->collect_rows = lb_channel_rows(w->cfg.channels[c]);
		rc = lb_outbox_readback(&w->ob, c, w->cfg.channels[c]->name,
					w->batch_last_id[c] + 1,
					writer_collect_one, w);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return LITEBUS_OK;
}

/* W8: one step of commit_seq: to odd right before COMMIT, back to even
 * once the committed ids are stored (or the COMMIT failed).  seq_cst: the
 * odd value is ordered before COMMIT makes the rows visible (SQLite
 * publishes a commit in the -shm behind a full memory barrier,
 * sqlite3OsShmBarrier), so a watcher that read those rows and then loads
 * commit_seq sees it odd - or even and the committed ids stored (release
 * of the even step, after the stores). */
static void
writer_commit_seq(struct lb_writer *w)
{
	atomic_fetch_add_explicit(w->cfg.commit_seq, 1, memory_order_seq_cst);
}

static void
writer_publish(struct lb_writer *w)
{
	const struct lb_writer_config *cfg = &w->cfg;

	LB_ASSERT_ON_WRITER(w);
	/* W1: COMMIT has returned; the rows are durable (to the degree the
	 * durability option promises) and may reach the rings.  First say
	 * how far each channel is committed (C5), then publish. */
	for (size_t i = 0; i < w->npub; i++)
		w->touched[w->pub[i].channel] = true;
	for (int c = 0; c < cfg->nchannels; c++)
		if (w->touched[c])
			lb_channel_set_committed(cfg->channels[c],
						 w->last_id[c]);
	writer_commit_seq(w); /* W8: the commit is over */
	for (size_t i = 0; i < w->npub; i++) {
		const struct lb_pub *p = &w->pub[i];

		/* C7: the row's image, if staged, goes in before its record. */
		lb_channel_publish_row(cfg->channels[p->channel], &p->rec,
				       p->img_words != 0 ? &w->stage[p->img_off]
							 : NULL,
				       p->img_words);
	}
	for (int c = 0; c < cfg->nchannels; c++) {
		if (w->touched[c]) {
			lb_channel_wake(cfg->channels[c]);
			w->touched[c] = false;
		}
	}
	lb_stat_add_w(&cfg->stats->events, w->npub);
	w->npub = 0;
	w->nstage = 0;
}

/* The batch-size histogram (stats.h): one observation per transaction
 * begun, as `batches` counts them, of the jobs run in it, as `jobs`
 * counts them (so its sum is `jobs`, re-runs included, W6, W9). */
static void
writer_record_batch(struct lb_writer *w, uint64_t ran)
{
	LB_ASSERT_ON_WRITER(w);
	lb_hist_add_w(w->cfg.stats->batch_jobs, LB_HIST_BATCH_N,
		      &w->cfg.stats->batch_jobs_sum, lb_hist_batch_bound, ran);
}

/* Run jobs [0, n) in as few transactions as their fates allow, then
 * complete them all in queue order (W2, W3). */
static void
writer_run_batch(struct lb_writer *w, struct lb_job **jobs, size_t n)
{
	const struct lb_writer_config *cfg = &w->cfg;
	size_t first = 0;
	/* W9: the first transaction without savepoints unless a job failed
	 * lately; any later one of this batch with them. */
	bool with_sp = w->sp_batches > 0;
	int rc;

	LB_ASSERT_ON_WRITER(w);
	if (w->sp_batches > 0)
		w->sp_batches--;
	for (size_t i = 0; i < n; i++)
		jobs[i]->settled = false;
	while (first < n) {
		enum run_result r = RUN_OK;
		size_t end = n;
		uint64_t ran = 0;
		bool sp = with_sp;

		while (first < n && jobs[first]->settled)
			first++;
		if (first == n)
			break;
		lb_stat_add_w(&cfg->stats->batches, 1);
		w->batch_ms = lb_wall_ms();
		rc = writer_begin(w);
		if (rc != LITEBUS_OK) {
			writer_record_batch(w, 0);
			writer_fail_unsettled(jobs + first, n - first, rc);
			break;
		}
		memcpy(w->batch_last_id, w->last_id, sizeof w->last_id);
		with_sp = true;
		for (size_t i = first; i < n; i++) {
			if (jobs[i]->settled)
				continue;
			ran++;
			r = writer_run_job(w, jobs[i], sp);
			if (r != RUN_OK) {
				end = i + 1;
				break;
			}
		}
		writer_record_batch(w, ran);
		if (r == RUN_FAILED_NO_SP) {
			/* W9: the culprit is settled; the jobs before it that
			 * had succeeded run again, with the jobs after it,
			 * each in its own savepoint from now on. */
			writer_abandon(w);
			w->sp_batches = WRITER_SP_BATCHES;
			continue;
		}
		if (r == RUN_LOST_BY_JOB) {
			/* W6: the culprit is settled; the jobs before it that
			 * had succeeded run again in a new transaction, with
			 * the jobs after it. */
			writer_abandon(w);
			continue;
		}
		if (r == RUN_LOST) {
			writer_abandon(w);
			writer_fail_unsettled(jobs + first, end - first,
					      w->lost_status);
			first = end;
			continue;
		}
		rc = writer_collect(w);
		if (rc == LITEBUS_OK) {
			uint64_t t0 = lb_mono_ns();

			writer_commit_seq(w); /* W8: odd */
			rc = writer_retry(w, lb_outbox_commit, "committing");
			if (rc == LITEBUS_OK)
				lb_hist_add_w(
				    cfg->stats->commit_ns, LB_HIST_COMMIT_N,
				    &cfg->stats->commit_ns_sum,
				    lb_hist_commit_bound_ns, lb_mono_ns() - t0);
			else
				writer_commit_seq(w); /* W8: even again */
		}
		if (rc != LITEBUS_OK) {
			writer_abandon(w);
			writer_fail_unsettled(jobs + first, end - first, rc);
			first = end;
			continue;
		}
		lb_stat_add_w(&cfg->stats->commits, 1);
		writer_publish(w);
		for (size_t i = first; i < end; i++)
			if (!jobs[i]->settled)
				writer_settle(jobs[i], 0, false);
		first = end;
		/* The WAL bound holds after every COMMIT, before the next
		 * BEGIN: here if this batch needs another transaction, else
		 * once its jobs are completed (below). */
		if (first < n)
			(void)lb_ckpt_finish(w->ckpt, w->ob.db, false);
	}
	/* Every status first (a done-callback may make litebus calls that
	 * replace this thread's error text), then the completions. */
	for (size_t i = 0; i < n; i++) {
		assert(jobs[i]->settled);
		if (jobs[i]->status != 0)
			lb_stat_add_w(&cfg->stats->jobs_failed, 1);
		lb_job_complete(jobs[i]);
	}
	(void)lb_ckpt_finish(w->ckpt, w->ob.db, false);
}

/* B5 (bus.c): SQLite does not checkpoint on close a database file that
 * was renamed or unlinked while open (SQLITE_FCNTL_HAS_MOVED): the commits
 * would stay in a -wal named after the old path, where the file no longer
 * is, and reopening it by its new name would miss them (and hand their
 * ids out again).  So copy them into the file ourselves, and empty that
 * -wal, before the connections close.  Waits for readers up to
 * busy_timeout_ms; if it still fails, SQLite's own rules apply. */
static void
writer_checkpoint_if_moved(struct lb_writer *w)
{
	int moved = 0, rc;

	LB_ASSERT_ON_WRITER(w);
	if (w->cfg.dbn->is_memory ||
	    sqlite3_file_control(w->ob.db, "main", SQLITE_FCNTL_HAS_MOVED,
				 &moved) != SQLITE_OK ||
	    !moved)
		return;
	rc = sqlite3_busy_timeout(w->ob.db, (int)w->cfg.opts->busy_timeout_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_wal_checkpoint_v2(
		    w->ob.db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	/* Nobody to report to (close returns OK); the stats say it. */
	if (rc != SQLITE_OK)
		lb_stat_add(&w->cfg.stats->ckpt_errors, 1);
	(void)sqlite3_busy_timeout(w->ob.db, 0);
}

static void *
writer_main(void *arg)
{
	struct lb_writer *w = arg;
	uint32_t max_batch = w->cfg.opts->max_batch;

	lb_role_set_writer(w->cfg.owner);
	for (;;) {
		/* While a finishing checkpoint is due, wait for jobs only
		 * LB_CKPT_IDLE_MS (checkpoint.c). */
		int idle_ms =
		    lb_ckpt_finish_due(w->ckpt) ? LB_CKPT_IDLE_MS : -1;
		size_t n;
		enum lb_take t =
		    lb_jobq_take(w->cfg.jobs, w->batch, max_batch, idle_ms, &n);

		if (t == LB_TAKE_CLOSED)
			break;
		if (t == LB_TAKE_IDLE) {
			/* No job for LB_CKPT_IDLE_MS: let the WAL restart
			 * while nobody waits.  Jobs queue meanwhile. */
			lb_ckpt_finish(w->ckpt, w->ob.db, true);
			continue;
		}
		/* Bounds the WAL after each of its commits (checkpoint.c). */
		writer_run_batch(w, w->batch, n);
	}
	/* C2: everything queued has committed and been published.  The
	 * channels close first, so that subscribe and reader_open refuse
	 * with ECLOSED from here on. */
	for (int c = 0; c < w->cfg.nchannels; c++)
		lb_channel_close(w->cfg.channels[c]);
	writer_checkpoint_if_moved(w);
	lb_ckpt_stop(w->ckpt, w->ob.db);
	w->ckpt = NULL;
	lb_outbox_close(&w->ob);
	lb_role_set_writer(NULL);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */

int
lb_writer_start(const struct lb_writer_config *cfg, struct lb_writer **out)
{
	struct lb_writer *w = calloc(1, sizeof *w);
	struct lb_chan_spec chans[LITEBUS_MAX_CHANNELS];
	int rc;

	*out = NULL;
	if (w == NULL)
		return lb_err_set(LITEBUS_ENOMEM, "allocating the writer");
	w->cfg = *cfg;
	w->tx.w = w;
	for (int c = 0; c < cfg->nchannels; c++) {
		chans[c].name = cfg->channels[c]->name;
		chans[c].types = cfg->channels[c]->event_types;
	}
	/* Opened in place: the connection's authorizer keeps &w->ob. */
	rc = lb_outbox_open(&w->ob, cfg->dbn, cfg->opts->durability, chans,
			    cfg->nchannels, cfg->opts->adopt != 0);
	if (rc != LITEBUS_OK) {
		free(w);
		return rc;
	}
	/* In-memory databases have no WAL and need no checkpoints.  Both
	 * modes: checkpoint.c keeps the WAL bound. */
	if (!cfg->dbn->is_memory) {
		rc = lb_ckpt_start(cfg->dbn, w->ob.db, cfg->opts, cfg->stats,
				   &w->ckpt);
		if (rc != LITEBUS_OK)
			goto fail;
	}
	rc = lb_outbox_save_state(&w->ob);
	if (rc != LITEBUS_OK)
		goto fail;
	w->cap_pub = 64;
	w->pub = malloc(w->cap_pub * sizeof *w->pub);
	w->batch = malloc(cfg->opts->max_batch * sizeof *w->batch);
	if (w->pub == NULL || w->batch == NULL) {
		rc = lb_err_set(LITEBUS_ENOMEM, "allocating the writer");
		goto fail;
	}
	rc = writer_reload_ids(w);
	if (rc != LITEBUS_OK)
		goto fail;
	/* "From now" means after the newest committed id. */
	for (int c = 0; c < cfg->nchannels; c++)
		lb_channel_start(cfg->channels[c], w->last_id[c]);
	rc = pthread_create(&w->thread, NULL, writer_main, w);
	if (rc != 0) {
		rc = lb_err_set(rc == EAGAIN ? LITEBUS_ENOMEM : LITEBUS_EINVAL,
				"starting the writer thread: %s", strerror(rc));
		goto fail;
	}
	*out = w;
	return LITEBUS_OK;
fail:
	lb_ckpt_stop(w->ckpt, w->ob.db);
	lb_outbox_close(&w->ob);
	free(w->pub);
	free(w->batch);
	free(w);
	return rc;
}

void
lb_writer_stop(struct lb_writer *w)
{
	if (w == NULL) /* a read-only bus has none */
		return;
	LB_ASSERT_NOT_WRITER_OF(w->cfg.owner); /* it joins that thread */
	lb_jobq_close(w->cfg.jobs);
	pthread_join(w->thread, NULL);
}

void
lb_writer_free(struct lb_writer *w)
{
	if (w == NULL)
		return;
	free(w->pub);
	free(w->stage);
	free(w->batch);
	free(w);
}

/* ------------------------------------------------------------------ */
/* Public: inside a job                                                */

static bool
writer_tx_usable(const litebus_tx *tx)
{
	/* The thread first: tx->active is the writer's own plain field,
	 * which only the writer thread may read.  (tx->w and w->cfg never
	 * change.) */
	return lb_writer_is_current(tx->w->cfg.owner) && tx->active &&
	       !lb_fork_is_inherited(tx->w->cfg.fork_gen);
}

struct lb_outbox *
lb_writer_tx_outbox(litebus_tx *tx, const struct litebus *owner,
		    const char *call)
{
	if (tx == NULL) {
		lb_err_set(LITEBUS_EINVAL, "%s: NULL tx", call);
		return NULL;
	}
	if (lb_fork_is_inherited(tx->w->cfg.fork_gen)) {
		lb_fork_err(call);
		return NULL;
	}
	if (!writer_tx_usable(tx)) {
		lb_err_set(LITEBUS_EMISUSE,
			   "%s: called outside a job or off the writer thread",
			   call);
		return NULL;
	}
	if (owner != NULL && tx->w->cfg.owner != owner) {
		lb_err_set(LITEBUS_EMISUSE,
			   "%s: the job runs on another bus than the handle's",
			   call);
		return NULL;
	}
	if (lb_outbox_job_lost(&tx->w->ob)) {
		lb_err_set(
		    LITEBUS_ESQLITE,
		    "%s: an earlier statement of this job failed and "
		    "SQLite rolled back the batch's transaction; the job "
		    "will fail",
		    call);
		return NULL;
	}
	return &tx->w->ob;
}

int64_t
lb_writer_tx_now_ms(litebus_tx *tx)
{
	LB_ASSERT_ON_WRITER(tx->w);
	return tx->w->batch_ms;
}

sqlite3 *
litebus_tx_db(litebus_tx *tx)
{
	if (tx == NULL || !writer_tx_usable(tx))
		return NULL;
	return tx->w->ob.db;
}

int
litebus_emit(litebus_tx *tx, int channel, const litebus_record *rec,
	     int64_t *event_id)
{
	struct lb_writer *w;
	struct lb_channel *ch;
	int64_t occurred;
	int rc;

	if (tx == NULL)
		return lb_err_set(LITEBUS_EINVAL, "litebus_emit: NULL tx");
	if (lb_fork_is_inherited(
		tx->w->cfg.fork_gen)) /* F1: a job that forked */
		return lb_fork_err("litebus_emit");
	if (!writer_tx_usable(tx))
		return lb_err_set(LITEBUS_EMISUSE,
				  "litebus_emit: called outside a job or off "
				  "the writer thread");
	w = tx->w;
	LB_ASSERT_ON_WRITER(w);
	ch = channel >= 0 && channel < w->cfg.nchannels
		 ? w->cfg.channels[channel]
		 : NULL;
	if (ch == NULL)
		return lb_err_set(LITEBUS_ENOCHANNEL,
				  "litebus_emit: no channel %d", channel);
	if (rec == NULL || rec->event_type == NULL ||
	    rec->event_type[0] == '\0')
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_emit: a record with an event_type "
				  "is required");
	if ((rec->subject == NULL && rec->subject_len != 0) ||
	    (rec->payload == NULL && rec->payload_len != 0))
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_emit: NULL subject or payload with "
				  "a non-zero length");
	if (!lb_catalog_type_ok(ch->event_types, rec->event_type))
		return lb_err_set(LITEBUS_EEVENTTYPE,
				  "litebus_emit: event type '%s' is not "
				  "allowed on channel %s",
				  rec->event_type, ch->name);
	if (lb_outbox_job_lost(&w->ob))
		return lb_err_set(LITEBUS_ESQLITE,
				  "litebus_emit: an earlier statement of this "
				  "job failed and SQLite rolled back the "
				  "batch's transaction; the job will fail");
	/* Values from the file are not trusted to leave room (W4). */
	if (w->last_id[channel] == INT64_MAX)
		return lb_err_set(LITEBUS_ENOSPC,
				  "litebus_emit: the event_ids of channel %s "
				  "are exhausted (the largest ever committed "
				  "is %lld)",
				  ch->name, (long long)INT64_MAX);
	occurred =
	    rec->occurred_at_ms != 0 ? rec->occurred_at_ms : lb_wall_ms();
	rc = lb_outbox_append(&w->ob, channel, w->last_id[channel] + 1, rec,
			      occurred, w->batch_ms);
	if (rc != LITEBUS_OK)
		return rc;
	w->last_id[channel]++;
	if (event_id != NULL)
		*event_id = w->last_id[channel];
	return LITEBUS_OK;
}
