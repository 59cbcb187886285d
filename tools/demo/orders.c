/* SPDX-License-Identifier: MIT */
/*
 * orders.c - the workload: the job of one order (a row in `orders` and
 * events on four channels, in one transaction; every DEMO_ABORT_EVERY-th
 * fails after emitting), and the producer threads that exec or submit
 * them.  Each committed job's event ids go to the oracle of their
 * channel, in the log of the thread that learned them.
 */
#include "demo.h"

#include <assert.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Jobs                                                                */

/* Runs on the writer thread, inside the bus's transaction: creates the
 * application's table if this database does not have it yet. */
int
setup_job(litebus_tx *tx, void *arg)
{
	struct order_job *j = arg;
	sqlite3 *db = litebus_tx_db(tx);
	int rc;

	rc = sqlite3_exec(db,
			  "CREATE TABLE IF NOT EXISTS orders("
			  "run INTEGER NOT NULL, order_no INTEGER NOT NULL, "
			  "producer INTEGER NOT NULL, item TEXT NOT NULL, "
			  "qty INTEGER NOT NULL, PRIMARY KEY(run, order_no))",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(j->sqlerr, sizeof j->sqlerr, "%s", sqlite3_errmsg(db));
		return DEMO_JOB_SQLERR;
	}
	return 0;
}

static int
order_insert(sqlite3 *db, struct order_job *j)
{
	static const char *const items[] = {"widget", "gadget", "gizmo",
					    "doohickey"};
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db,
				"INSERT INTO orders(run, order_no, producer, "
				"item, qty) VALUES(?1, ?2, ?3, ?4, ?5)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, j->d->run_id);
		sqlite3_bind_int64(st, 2, j->order_no);
		sqlite3_bind_int(st, 3, j->producer);
		sqlite3_bind_text(st, 4, items[j->order_no % 4], -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, 1 + j->order_no % 5);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		snprintf(j->sqlerr, sizeof j->sqlerr, "inserting order: %s",
			 sqlite3_errmsg(db));
		rc = DEMO_JOB_SQLERR;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Emit one event and remember its id.  Returns a litebus status. */
static int
order_emit(litebus_tx *tx, struct order_job *j, int ch, const char *type,
	   litebus_record *rec)
{
	int64_t id;
	int rc;

	assert(j->nemits < DEMO_EMITS_MAX);
	rec->event_type = type;
	rc = litebus_emit(tx, j->d->chan[ch].id, rec, &id);
	if (rc == LITEBUS_OK) {
		j->emits[j->nemits].ch = ch;
		j->emits[j->nemits].id = id;
		j->nemits++;
	}
	return rc;
}

/*
 * The job of one order, on the writer thread.  Returns 0 to commit,
 * DEMO_JOB_ABORTED for a doomed order (after it wrote and emitted
 * everything: the bus rolls all of it back), DEMO_JOB_SQLERR, or the
 * litebus status of a failed emit.
 */
static int
order_job_run(litebus_tx *tx, void *arg)
{
	struct order_job *j = arg;
	char subject[32], payload[96];
	litebus_record rec;
	int rc;

	j->nemits = 0;
	rc = order_insert(litebus_tx_db(tx), j);
	if (rc != SQLITE_OK)
		return rc;
	snprintf(subject, sizeof subject, "order-%" PRId64, j->order_no);
	snprintf(payload, sizeof payload,
		 "{\"order\":%" PRId64 ",\"producer\":%d}", j->order_no,
		 j->producer);
	memset(&rec, 0, sizeof rec);
	/* Events of a doomed order carry a negative key, so any consumer
	 * can tell if one ever escaped its rollback. */
	rec.partition_key = j->doomed ? -j->order_no : j->order_no;
	rec.subject = subject;
	rec.subject_len = strlen(subject);
	rec.payload = payload;
	rec.payload_len = strlen(payload);
	rec.ns = "shop";

	rc = order_emit(tx, j, CH_LEASE, "acquired", &rec);
	if (rc == LITEBUS_OK && j->order_no % 3 == 0)
		rc = order_emit(tx, j, CH_LEASE, "renewed", &rec);
	if (rc == LITEBUS_OK)
		rc = order_emit(tx, j, CH_COMPLETION,
				j->order_no % 7 == 0 ? "failed" : "success",
				&rec);
	if (rc == LITEBUS_OK && j->order_no % 16 == 0)
		rc = order_emit(tx, j, CH_OPERATOR, "priority_changed", &rec);
	if (rc == LITEBUS_OK)
		rc = order_emit(tx, j, CH_AUDIT, "order_placed", &rec);
	if (rc != LITEBUS_OK)
		return rc;
	return j->doomed ? DEMO_JOB_ABORTED : 0;
}

/*
 * Account for a job whose fate is settled: `status` is what litebus_exec
 * returned or what the done-callback received.  A committed job's ids
 * are recorded in the oracles' `log`, the calling thread's.
 * litebus_last_errmsg() must describe `status` (true after litebus_exec
 * and inside a done-callback).  Any thread.
 */
static void
order_finish(struct order_job *j, int status, int log)
{
	struct demo *d = j->d;

	if (status == 0) {
		for (size_t i = 0; i < j->nemits; i++)
			oracle_commit(d->oracle[j->emits[i].ch], log,
				      j->emits[i].id,
				      (uint64_t)j->order_no);
		atomic_fetch_add_explicit(&d->jobs_ok, 1, memory_order_relaxed);
	} else if (status == DEMO_JOB_ABORTED) {
		atomic_fetch_add_explicit(&d->jobs_aborted, 1,
					  memory_order_relaxed);
	} else if (status == DEMO_JOB_SQLERR) {
		demo_error(d, "order %" PRId64 ": %s", j->order_no, j->sqlerr);
	} else {
		demo_error(d, "order %" PRId64 ": %s: %s", j->order_no,
			   litebus_errname(status), litebus_last_errmsg());
	}
}

/* The done-callback of a submitted order, on the writer thread.  Takes
 * ownership of the job (allocated by produce_submit). */
static void
order_job_done(int status, void *arg)
{
	struct order_job *j = arg;
	struct demo *d = j->d;

	order_finish(j, status, d->o.producers); /* the writer's log */
	free(j);
	pthread_mutex_lock(&d->lock);
	if (--d->inflight == 0)
		pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

void
order_job_init(struct order_job *j, struct demo *d, int producer,
	       int64_t order_no)
{
	memset(j, 0, sizeof *j);
	j->d = d;
	j->producer = producer;
	j->order_no = order_no;
	j->doomed = order_no % DEMO_ABORT_EVERY == 0;
}

/* ------------------------------------------------------------------ */
/* Producers                                                           */

static void
produce_exec(struct demo *d, int producer, int64_t order_no)
{
	struct order_job j;

	order_job_init(&j, d, producer, order_no);
	order_finish(&j, litebus_exec(d->bus, order_job_run, &j), producer);
}

/* Submit an order if fewer than DEMO_INFLIGHT_MAX are in flight.
 * Returns false if it did not (the caller then uses exec). */
static bool
produce_submit(struct demo *d, int producer, int64_t order_no)
{
	struct order_job *j;
	int rc;

	pthread_mutex_lock(&d->lock);
	if (d->inflight >= DEMO_INFLIGHT_MAX) {
		pthread_mutex_unlock(&d->lock);
		return false;
	}
	d->inflight++;
	pthread_mutex_unlock(&d->lock);

	j = malloc(sizeof *j);
	if (j == NULL) {
		demo_error(d, "out of memory allocating a job");
		rc = LITEBUS_ENOMEM;
	} else {
		order_job_init(j, d, producer, order_no);
		/* On success the bus borrows j until order_job_done, which
		 * frees it. */
		rc =
		    litebus_submit(d->bus, order_job_run, j, order_job_done, j);
		if (rc != LITEBUS_OK) {
			demo_error(d, "litebus_submit: %s: %s",
				   litebus_errname(rc), litebus_last_errmsg());
			free(j);
		}
	}
	if (rc != LITEBUS_OK) {
		pthread_mutex_lock(&d->lock);
		if (--d->inflight == 0)
			pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
	return true;
}

/* Odd orders are submitted, even ones executed, until asked to stop. */
void *
producer_main(void *arg)
{
	const struct producer_arg *pa = arg;
	struct demo *d = pa->d;

	while (!demo_stopping(d)) {
		int64_t order_no =
		    1 + atomic_fetch_add_explicit(&d->next_order, 1,
						  memory_order_relaxed);

		if (order_no % 2 == 0 ||
		    !produce_submit(d, pa->index, order_no))
			produce_exec(d, pa->index, order_no);
	}
	return NULL;
}
