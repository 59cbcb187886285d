/*
 * writer.c - the writer thread: job queue in, transactions, publish.
 *
 * Every job of a bus runs here, on one thread that owns the only write
 * connection, so writes need no locks of their own.  The thread takes every
 * job waiting (up to max_batch) into one transaction, each job inside its
 * own SAVEPOINT: a failing job is rolled back alone, and one COMMIT (one
 * fsync under full durability) serves the whole batch.  Only after COMMIT
 * returns are the batch's events published to the rings, in commit order;
 * then the jobs are completed in queue order.
 *
 * event_ids are handed out here (next_id[]), above every id the table has
 * ever held (outbox.c), so id order is commit order by construction.  Ids
 * of rolled-back work die with it and are handed out again: no reader ever
 * saw them.  If another connection committed since our last batch
 * (PRAGMA data_version), next_id[] is reloaded from the tables.
 *
 * Threads: litebus_exec/litebus_submit from any thread (they queue under
 * `lock`); the rest on the writer thread, which LB_ASSERT_ON_WRITER checks.
 *
 * Invariants
 *   W1  A job's events reach a ring only after the COMMIT of its batch
 *       returned SQLITE_OK (R1), and before the job is completed: when
 *       litebus_exec returns 0, a subscriber can already see the events.
 *   W2  Jobs commit, publish and complete in queue order; event_ids of a
 *       channel increase in that order.
 *   W3  A job is completed exactly once: exec wakes, or done() is called.
 *       A job accepted by exec/submit is always run, even during close.
 *   W4  On any failure, next_id[] is restored to the first id not
 *       committed, and pending[] holds only events of jobs that will
 *       commit with the batch.
 *   W5  `closing` only goes from false to true, under `lock`; once set,
 *       no job enters the queue.
 */
#include "writer.h"

#include "bus.h"
#include "checkpoint.h"
#include "errors.h"
#include "wait.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An exec'd job's state word (futex). */
enum { JOB_PENDING = 0, JOB_SLEEPING = 1, JOB_DONE = 2 };

struct lb_job {
	litebus_job_fn fn;
	void *arg;
	litebus_done_fn done; /* submit only */
	void *done_arg;
	struct lb_job *next;
	bool is_exec;
	/* Results, written by the writer before `state` is released. */
	int status;
	int sqlite_code;
	char errmsg[LB_ERRMSG_MAX];
	/* exec only.  Written by the writer (release exchange to DONE) and
	 * the exec caller (CAS to SLEEPING); see writer_complete(). */
	_Atomic uint32_t state;
};

struct litebus_tx {
	struct lb_writer *w;
	bool active; /* true only while a job's fn runs */
};

/* One emitted event waiting for its COMMIT. */
struct lb_pending {
	int channel;
	struct lb_rec rec;
};

struct lb_writer {
	struct litebus *bus; /* immutable */
	pthread_t thread;    /* immutable once started */

	/* The queue.  All fields under `lock`. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lb_job *head, *tail;
	uint32_t queued;
	bool closing;  /* W5 */
	bool sleeping; /* the writer waits on cond */

	/* Writer thread only (after start). */
	struct lb_outbox ob;
	struct lb_ckpt *ckpt; /* NULL: in-memory, or inline checkpoints */
	struct litebus_tx tx;
	int64_t next_id[LITEBUS_MAX_CHANNELS];
	int64_t batch_next_id[LITEBUS_MAX_CHANNELS];
	int64_t batch_ms;
	struct lb_pending *pending;
	size_t npending, cap_pending;
	struct lb_job **batch;
	bool touched[LITEBUS_MAX_CHANNELS];
	/* Why the batch's transaction was lost (writer_run_job returned
	 * false): a litebus status, with the thread's error text set. */
	int lost_status;
};

/* The bus whose writer is the calling thread, if any. */
static _Thread_local const struct litebus *tls_writer_bus;

#ifdef NDEBUG
#define LB_ASSERT_ON_WRITER(w) ((void)(w))
#else
#define LB_ASSERT_ON_WRITER(w)                                                 \
	assert(pthread_equal(pthread_self(), (w)->thread))
#endif

bool
lb_writer_is_current(const struct litebus *bus)
{
	return tls_writer_bus == bus;
}

/* ------------------------------------------------------------------ */
/* Completing jobs                                                     */

static void
writer_complete(struct lb_writer *w, struct lb_job *j)
{
	(void)w;
	if (j->is_exec) {
		/* W3.  Release pairs with the acquire loads in litebus_exec:
		 * status and errmsg are visible once DONE is.  After this
		 * store the job (on the exec caller's stack) may vanish; the
		 * wake below only uses its address, which the kernel hashes
		 * without touching the memory. */
		uint32_t old = atomic_exchange_explicit(&j->state, JOB_DONE,
							memory_order_acq_rel);
		if (old == JOB_SLEEPING)
			lb_futex_wake_all(&j->state);
		return;
	}
	/* Inside done(), litebus_last_errmsg() describes this job. */
	lb_err_restore(j->status, j->sqlite_code, j->errmsg);
	if (j->done != NULL)
		j->done(j->status, j->done_arg);
	free(j);
}

/* Record a failure for job j (status < 0 with the thread's error text, or
 * the job's own return value). */
static void
writer_set_status(struct lb_job *j, int status, bool with_detail)
{
	j->status = status;
	if (with_detail && status < 0) {
		j->sqlite_code = lb_err_code();
		memcpy(j->errmsg, lb_err_msg(), sizeof j->errmsg);
		j->errmsg[sizeof j->errmsg - 1] = '\0';
	} else {
		j->sqlite_code = 0;
		j->errmsg[0] = '\0';
	}
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

/* Run `step` (BEGIN or COMMIT), retrying SQLITE_BUSY/LOCKED with backoff
 * for up to busy_timeout_ms.  Returns a litebus status. */
static int
writer_retry(struct lb_writer *w, int (*step)(struct lb_outbox *),
	     const char *what)
{
	uint64_t deadline = 0, sleep_ns = 50000;
	int rc;

	for (;;) {
		rc = step(&w->ob);
		if (rc == SQLITE_OK)
			return LITEBUS_OK;
		if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
			return lb_err_sqlite(w->ob.db, rc, what);
		if (deadline == 0)
			deadline = lb_mono_ns() +
				   (uint64_t)w->bus->opts.busy_timeout_ms *
				       1000000u;
		if (lb_mono_ns() >= deadline) {
			lb_err_sqlite(w->ob.db, rc, what);
			return lb_err_set(LITEBUS_EBUSY,
					  "%s: the database stayed locked by "
					  "another connection for %u ms",
					  what, w->bus->opts.busy_timeout_ms);
		}
		lb_stat_add_w(&w->bus->stats.busy_retries, 1);
		writer_backoff(&sleep_ns);
	}
}

static int
writer_reload_ids(struct lb_writer *w)
{
	for (int i = 0; i < w->bus->nchannels; i++) {
		int rc = lb_outbox_load_next_id(&w->ob, i, &w->next_id[i]);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return LITEBUS_OK;
}

static int
writer_begin(struct lb_writer *w)
{
	bool changed;
	int rc;

	rc = writer_retry(w, lb_outbox_begin, "beginning a transaction");
	if (rc != LITEBUS_OK)
		return rc;
	/* We hold the write lock now: no other connection can commit until
	 * we do, so the ids loaded here stay valid for the batch. */
	rc = lb_outbox_changed_elsewhere(&w->ob, &changed);
	if (rc == LITEBUS_OK && changed)
		rc = writer_reload_ids(w);
	if (rc != LITEBUS_OK) {
		/* Not reloaded: make the next batch try again. */
		w->ob.last_data_version = -1;
		lb_outbox_rollback(&w->ob);
	}
	return rc;
}

/* Give back the ids of pending[from..] (W4). */
static void
writer_drop_pending(struct lb_writer *w, size_t from)
{
	while (w->npending > from) {
		struct lb_pending *p = &w->pending[--w->npending];
		w->next_id[p->channel] = p->rec.event_id;
	}
}

/* The batch's transaction is gone: SQLite rolled it back (an I/O error,
 * a full disk, no memory, an interrupt), or our savepoint statements
 * failed.  Record why as a litebus status (never a job's private return
 * value: the other jobs of the batch get it), and make the next batch
 * reload its ids from the tables, whatever happened. */
static bool
writer_lose(struct lb_writer *w, int sqlite_rc, const char *what)
{
	if (sqlite_rc == SQLITE_OK || sqlite_rc == SQLITE_ROW ||
	    sqlite_rc == SQLITE_DONE)
		sqlite_rc = SQLITE_ABORT;
	w->lost_status = lb_err_sqlite(w->ob.db, sqlite_rc, what);
	w->ob.last_data_version = -1;
	return false;
}

/* Run one job inside its savepoint.  Returns false if the batch's
 * transaction is gone (see writer_lose): the caller fails the batch. */
static bool
writer_run_job(struct lb_writer *w, struct lb_job *j)
{
	size_t start = w->npending;
	int rc, jr;

	LB_ASSERT_ON_WRITER(w);
	lb_stat_add_w(&w->bus->stats.jobs, 1);
	rc = lb_outbox_savepoint(&w->ob);
	if (rc != SQLITE_OK) {
		writer_set_status(j, lb_err_sqlite(w->ob.db, rc,
						   "opening a job's savepoint"),
				  true);
		if (sqlite3_get_autocommit(w->ob.db))
			return writer_lose(w, rc, "opening a job's savepoint");
		return true;
	}
	lb_err_clear();
	w->tx.active = true;
	w->ob.in_job = true;
	jr = j->fn(&w->tx, j->arg);
	w->ob.in_job = false;
	w->tx.active = false;
	if (sqlite3_get_autocommit(w->ob.db)) {
		/* A statement of the job failed and SQLite ended the whole
		 * transaction; the commit hook kept anything the job ran
		 * afterwards from committing on its own (outbox.c). */
		int code = sqlite3_extended_errcode(w->ob.db);
		writer_drop_pending(w, start);
		writer_lose(w, code,
			    "a statement failed and SQLite rolled back the "
			    "batch's transaction");
		writer_set_status(j, jr != 0 ? jr : w->lost_status,
				  jr == 0 || jr < 0);
		return false;
	}
	if (jr == 0) {
		rc = lb_outbox_release(&w->ob);
		if (rc == SQLITE_OK) {
			writer_set_status(j, 0, false);
			return true;
		}
		jr = lb_err_sqlite(w->ob.db, rc, "releasing a job's savepoint");
		writer_set_status(j, jr, true);
	} else {
		/* The job's own value; keep the text of a litebus error it
		 * met (the thread's error was cleared before the job). */
		writer_set_status(j, jr, jr < 0 && lb_err_msg()[0] != '\0');
	}
	writer_drop_pending(w, start);
	if (sqlite3_get_autocommit(w->ob.db))
		return writer_lose(w, rc, "releasing a job's savepoint");
	rc = lb_outbox_rollback_to(&w->ob);
	if (rc != SQLITE_OK)
		return writer_lose(w, rc, "rolling a job back");
	return true;
}

/* Fail jobs [0, n) that would have committed, after the transaction was
 * lost or COMMIT failed.  The thread's error text describes why. */
static void
writer_fail_batch(struct lb_writer *w, struct lb_job **jobs, size_t n,
		  int status)
{
	lb_outbox_rollback(&w->ob);
	memcpy(w->next_id, w->batch_next_id, sizeof w->next_id);
	w->npending = 0;
	for (size_t i = 0; i < n; i++)
		if (jobs[i]->status == 0)
			writer_set_status(jobs[i], status, true);
}

static void
writer_publish(struct lb_writer *w)
{
	struct litebus *bus = w->bus;

	LB_ASSERT_ON_WRITER(w);
	/* W1: COMMIT has returned; the events are durable (to the degree
	 * the durability option promises) and may reach the rings. */
	for (size_t i = 0; i < w->npending; i++) {
		const struct lb_pending *p = &w->pending[i];
		lb_channel_publish(bus->channels[p->channel], &p->rec);
		w->touched[p->channel] = true;
	}
	for (int c = 0; c < bus->nchannels; c++) {
		if (w->touched[c]) {
			lb_channel_wake(bus->channels[c]);
			w->touched[c] = false;
		}
	}
	lb_stat_add_w(&bus->stats.events, w->npending);
	w->npending = 0;
}

/* Run jobs [0, n) as one batch and complete them all (W3). */
static void
writer_run_batch(struct lb_writer *w, struct lb_job **jobs, size_t n)
{
	struct litebus *bus = w->bus;
	size_t done = 0;
	int rc;

	LB_ASSERT_ON_WRITER(w);
	while (done < n) {
		size_t first = done;
		bool lost = false;

		lb_stat_add_w(&bus->stats.batches, 1);
		w->batch_ms = lb_wall_ms();
		rc = writer_begin(w);
		if (rc != LITEBUS_OK) {
			/* Every status first: a done-callback may make litebus
			 * calls that replace this thread's error text. */
			for (size_t i = first; i < n; i++)
				writer_set_status(jobs[i], rc, true);
			for (size_t i = first; i < n; i++) {
				lb_stat_add_w(&bus->stats.jobs_failed, 1);
				writer_complete(w, jobs[i]);
			}
			return;
		}
		memcpy(w->batch_next_id, w->next_id, sizeof w->next_id);
		w->npending = 0;
		while (done < n && !lost)
			lost = !writer_run_job(w, jobs[done++]);
		if (lost) {
			/* The whole transaction is gone: every job of it that
			 * would have committed fails with the cause (the
			 * thread's error text, set by writer_lose); the jobs
			 * not yet run get a fresh transaction. */
			writer_fail_batch(w, jobs + first, done - first,
					  w->lost_status);
		} else {
			rc = writer_retry(w, lb_outbox_commit, "committing");
			if (rc != LITEBUS_OK)
				writer_fail_batch(w, jobs + first, done - first,
						  rc);
			else {
				lb_stat_add_w(&bus->stats.commits, 1);
				writer_publish(w);
			}
		}
		for (size_t i = first; i < done; i++) {
			if (jobs[i]->status != 0)
				lb_stat_add_w(&bus->stats.jobs_failed, 1);
			writer_complete(w, jobs[i]);
		}
	}
}

/* Wait on the queue (under w->lock).  Returns true if the wait ended
 * because the queue stayed empty for LB_CKPT_IDLE_MS while a finishing
 * checkpoint was due. */
static bool
writer_idle_wait(struct lb_writer *w)
{
	struct timespec ts;

	if (!lb_ckpt_finish_due(w->ckpt)) {
		pthread_cond_wait(&w->cond, &w->lock);
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += LB_CKPT_IDLE_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT &&
	       w->head == NULL && !w->closing;
}

static void *
writer_main(void *arg)
{
	struct lb_writer *w = arg;
	uint32_t max_batch = w->bus->opts.max_batch;

	tls_writer_bus = w->bus;
	for (;;) {
		size_t n = 0;

		pthread_mutex_lock(&w->lock);
		while (w->head == NULL && !w->closing) {
			w->sleeping = true;
			if (writer_idle_wait(w)) {
				/* No job for LB_CKPT_IDLE_MS: let the WAL
				 * restart while nobody waits (checkpoint.c).
				 * Jobs queue meanwhile. */
				pthread_mutex_unlock(&w->lock);
				lb_ckpt_finish(w->ckpt, w->ob.db, true);
				pthread_mutex_lock(&w->lock);
			}
			w->sleeping = false;
		}
		if (w->head == NULL) { /* closing, and nothing left */
			pthread_mutex_unlock(&w->lock);
			break;
		}
		while (w->head != NULL && n < max_batch) {
			w->batch[n++] = w->head;
			w->head = w->head->next;
			w->queued--;
		}
		/* Relaxed: a gauge for litebus_stats_get, no ordering. */
		atomic_store_explicit(&w->bus->stats.queued, w->queued,
				      memory_order_relaxed);
		if (w->head == NULL)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		writer_run_batch(w, w->batch, n);
		/* Under unbroken load, bound the WAL (checkpoint.c). */
		lb_ckpt_finish(w->ckpt, w->ob.db, false);
	}
	/* C2: everything queued has committed and been published.  The
	 * channels close first, so that subscribe and reader_open refuse
	 * with ECLOSED from here on. */
	for (int c = 0; c < w->bus->nchannels; c++)
		lb_channel_close(w->bus->channels[c]);
	lb_ckpt_stop(w->ckpt, w->ob.db);
	w->ckpt = NULL;
	lb_outbox_close(&w->ob);
	tls_writer_bus = NULL;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */

int
lb_writer_start(struct litebus *bus, struct lb_writer **out)
{
	struct lb_writer *w = calloc(1, sizeof *w);
	int rc;

	*out = NULL;
	if (w == NULL)
		return lb_err_set(LITEBUS_ENOMEM, "allocating the writer");
	w->bus = bus;
	w->tx.w = w;
	/* Opened in place: the connection's authorizer keeps &w->ob. */
	rc = lb_outbox_open(&w->ob, &bus->dbn, bus->opts.durability,
			    bus->channels, bus->nchannels);
	if (rc != LITEBUS_OK) {
		free(w);
		return rc;
	}
	/* In-memory databases have no WAL and need no checkpoints.  Both
	 * modes: checkpoint.c keeps the WAL bound. */
	if (!bus->dbn.is_memory) {
		rc = lb_ckpt_start(&bus->dbn, w->ob.db, &bus->opts,
				   &bus->stats, &w->ckpt);
		if (rc != LITEBUS_OK)
			goto fail;
	}
	w->cap_pending = 64;
	w->pending = malloc(w->cap_pending * sizeof *w->pending);
	w->batch = malloc(bus->opts.max_batch * sizeof *w->batch);
	if (w->pending == NULL || w->batch == NULL) {
		rc = lb_err_set(LITEBUS_ENOMEM, "allocating the writer");
		goto fail;
	}
	rc = writer_reload_ids(w);
	if (rc != LITEBUS_OK)
		goto fail;
	/* "From now" means after the newest committed id.  Relaxed: the
	 * thread that will read these is created below, or learns of the bus
	 * through litebus_open's return (both synchronize). */
	for (int c = 0; c < bus->nchannels; c++) {
		atomic_store_explicit(&bus->channels[c]->published_id,
				      w->next_id[c] - 1, memory_order_relaxed);
		atomic_store_explicit(&bus->channels[c]->committed_id,
				      w->next_id[c] - 1, memory_order_relaxed);
	}
	pthread_mutex_init(&w->lock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		/* Idle timeouts are measured on the monotonic clock. */
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&w->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	rc = pthread_create(&w->thread, NULL, writer_main, w);
	if (rc != 0) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		rc = lb_err_set(rc == EAGAIN ? LITEBUS_ENOMEM : LITEBUS_EINVAL,
				"starting the writer thread: %s", strerror(rc));
		goto fail;
	}
	*out = w;
	return LITEBUS_OK;
fail:
	lb_ckpt_stop(w->ckpt, w->ob.db);
	lb_outbox_close(&w->ob);
	free(w->pending);
	free(w->batch);
	free(w);
	return rc;
}

void
lb_writer_stop(struct lb_writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->closing = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
}

void
lb_writer_free(struct lb_writer *w)
{
	if (w == NULL)
		return;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w->pending);
	free(w->batch);
	free(w);
}

/* ------------------------------------------------------------------ */
/* Public: queueing jobs                                               */

/* Queue j, or refuse it (W5).  Any thread. */
static int
writer_enqueue(struct lb_writer *w, struct lb_job *j)
{
	pthread_mutex_lock(&w->lock);
	if (w->closing) {
		pthread_mutex_unlock(&w->lock);
		return lb_err_set(LITEBUS_ECLOSED, "the bus is closing");
	}
	if (w->queued >= w->bus->opts.max_queue) {
		pthread_mutex_unlock(&w->lock);
		return lb_err_set(LITEBUS_EAGAIN,
				  "%u jobs are already queued (max_queue)",
				  w->queued);
	}
	j->next = NULL;
	if (w->tail != NULL)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	w->queued++;
	/* Relaxed: a gauge for litebus_stats_get, no ordering. */
	atomic_store_explicit(&w->bus->stats.queued, w->queued,
			      memory_order_relaxed);
	if (w->sleeping)
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return LITEBUS_OK;
}

int
litebus_exec(litebus *bus, litebus_job_fn fn, void *arg)
{
	struct lb_job j;
	uint32_t st;
	int rc;

	if (bus == NULL || fn == NULL)
		return lb_err_set(LITEBUS_EINVAL, "litebus_exec: NULL %s",
				  bus == NULL ? "bus" : "job function");
	if (lb_writer_is_current(bus))
		return lb_err_set(LITEBUS_EDEADLK,
				  "litebus_exec called on the bus's writer "
				  "thread (from a job or a done-callback); "
				  "use litebus_submit");
	memset(&j, 0, sizeof j);
	j.fn = fn;
	j.arg = arg;
	j.is_exec = true;
	atomic_init(&j.state, JOB_PENDING);
	lb_bus_ref(bus); /* B1: a call in progress keeps the bus */
	rc = writer_enqueue(bus->writer, &j);
	if (rc != LITEBUS_OK) {
		lb_bus_unref(bus);
		return rc;
	}
	/* Spin briefly: a small batch often commits within microseconds
	 * under normal durability, and a futex sleep costs more. */
	for (int i = 0; i < 64; i++) {
		/* Pairs with the release exchange in writer_complete(). */
		if (atomic_load_explicit(&j.state, memory_order_acquire) ==
		    JOB_DONE)
			goto done;
		lb_cpu_relax();
	}
	for (;;) {
		st = JOB_PENDING;
		/* The acquire on failure pairs with writer_complete()'s
		 * release when the state is already DONE (C11 wants the
		 * success order at least as strong; announcing that we will
		 * sleep needs no ordering of its own). */
		if (!atomic_compare_exchange_strong_explicit(
			&j.state, &st, JOB_SLEEPING, memory_order_acquire,
			memory_order_acquire) &&
		    st == JOB_DONE)
			break;
		lb_futex_wait(&j.state, JOB_SLEEPING, UINT64_MAX);
		if (atomic_load_explicit(&j.state, memory_order_acquire) ==
		    JOB_DONE)
			break;
	}
done:
	lb_bus_unref(bus);
	if (j.status < 0)
		lb_err_restore(j.status, j.sqlite_code, j.errmsg);
	return j.status;
}

int
litebus_submit(litebus *bus, litebus_job_fn fn, void *arg,
	       litebus_done_fn done, void *done_arg)
{
	struct lb_job *j;
	int rc;

	if (bus == NULL || fn == NULL)
		return lb_err_set(LITEBUS_EINVAL, "litebus_submit: NULL %s",
				  bus == NULL ? "bus" : "job function");
	j = malloc(sizeof *j);
	if (j == NULL)
		return lb_err_set(LITEBUS_ENOMEM, "allocating a job");
	j->fn = fn;
	j->arg = arg;
	j->done = done;
	j->done_arg = done_arg;
	j->is_exec = false;
	j->status = 0;
	j->sqlite_code = 0;
	j->errmsg[0] = '\0';
	atomic_init(&j->state, JOB_PENDING);
	lb_bus_ref(bus); /* B1: a call in progress keeps the bus */
	rc = writer_enqueue(bus->writer, j);
	lb_bus_unref(bus);
	if (rc != LITEBUS_OK)
		free(j);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Public: inside a job                                                */

static bool
writer_tx_usable(const litebus_tx *tx)
{
	/* The thread first: tx->active is the writer's own plain field,
	 * which only the writer thread may read.  (tx->w and w->bus never
	 * change.) */
	return lb_writer_is_current(tx->w->bus) && tx->active;
}

sqlite3 *
litebus_tx_db(litebus_tx *tx)
{
	if (tx == NULL || !writer_tx_usable(tx))
		return NULL;
	return tx->w->ob.db;
}

static int
writer_reserve_pending(struct lb_writer *w)
{
	struct lb_pending *p;
	size_t cap;

	if (w->npending < w->cap_pending)
		return LITEBUS_OK;
	cap = w->cap_pending * 2;
	p = realloc(w->pending, cap * sizeof *p);
	if (p == NULL)
		return lb_err_set(LITEBUS_ENOMEM, "litebus_emit: out of memory");
	w->pending = p;
	w->cap_pending = cap;
	return LITEBUS_OK;
}

int
litebus_emit(litebus_tx *tx, int channel, const litebus_record *rec,
	     int64_t *event_id)
{
	struct lb_writer *w;
	struct lb_channel *ch;
	struct lb_pending *p;
	int64_t occurred;
	int rc;

	if (tx == NULL)
		return lb_err_set(LITEBUS_EINVAL, "litebus_emit: NULL tx");
	if (!writer_tx_usable(tx))
		return lb_err_set(LITEBUS_EMISUSE,
				  "litebus_emit: called outside a job or off "
				  "the writer thread");
	w = tx->w;
	LB_ASSERT_ON_WRITER(w);
	ch = lb_bus_channel(w->bus, channel);
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
	if (!lb_channel_type_ok(ch, rec->event_type))
		return lb_err_set(LITEBUS_EEVENTTYPE,
				  "litebus_emit: event type '%s' is not "
				  "allowed on channel %s",
				  rec->event_type, ch->name);
	if (sqlite3_get_autocommit(w->ob.db))
		return lb_err_set(LITEBUS_ESQLITE,
				  "litebus_emit: an earlier statement of this "
				  "job failed and SQLite rolled back the "
				  "batch's transaction; the job will fail");
	rc = writer_reserve_pending(w);
	if (rc != LITEBUS_OK)
		return rc;
	occurred = rec->occurred_at_ms != 0 ? rec->occurred_at_ms : lb_wall_ms();
	rc = lb_outbox_append(&w->ob, channel, w->next_id[channel], rec,
			      occurred, w->batch_ms);
	if (rc != LITEBUS_OK)
		return rc;

	p = &w->pending[w->npending++];
	memset(p, 0, sizeof *p);
	p->channel = channel;
	p->rec.event_id = w->next_id[channel]++;
	p->rec.partition_key = rec->partition_key;
	p->rec.committed_at_ms = w->batch_ms;
	p->rec.ns_hash = lb_ring_hash(rec->ns);
	p->rec.tag_hash = lb_ring_hash(rec->instance_tag);
	p->rec.subject_len = rec->subject_len > UINT32_MAX
				 ? UINT32_MAX
				 : (uint32_t)rec->subject_len;
	if (rec->subject_len > 0)
		memcpy(p->rec.subject_prefix, rec->subject,
		       rec->subject_len < sizeof p->rec.subject_prefix
			   ? rec->subject_len
			   : sizeof p->rec.subject_prefix);
	if (event_id != NULL)
		*event_id = p->rec.event_id;
	return LITEBUS_OK;
}
