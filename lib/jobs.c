/* SPDX-License-Identifier: MIT */
/*
 * jobs.c - the job, the job queue, and the hand-off between callers and
 * the writer thread.
 *
 * litebus_exec and litebus_submit (bus.c) build a job and push it here
 * from any thread; the writer takes jobs in queue order (writer.c) and
 * hands each back once its fate is known.  An exec'd job lives on its
 * caller's stack, and the caller waits for it: it spins briefly, since a
 * small batch often commits within microseconds, then sleeps on the job's
 * own futex word, so the writer makes a wake-up system call only for a
 * caller that actually sleeps.  A submitted job lives on the heap and is
 * handed back through its done-callback on the writer thread.
 *
 * Threads: lb_jobq_push, lb_jobq_close, lb_job_init_exec,
 * lb_job_new_submit and lb_job_wait on callers' threads (never the
 * writer, for lb_job_wait); lb_jobq_take, lb_job_set_status and
 * lb_job_complete on the writer thread.
 *
 * Invariants
 *   J1  `closing` only goes from false to true, under `lock`; once set,
 *       no job enters the queue, and the writer takes every job queued
 *       before it (LB_TAKE_CLOSED only for an empty queue).
 *   J2  An exec'd job's state goes PENDING -> (SLEEPING ->) DONE.  DONE is
 *       stored by the writer only (release exchange), after the result;
 *       SLEEPING by the caller only (CAS from PENDING), before it sleeps.
 *       The writer wakes the futex if and only if it replaced SLEEPING, so
 *       a caller that announced its sleep is always woken, and one that
 *       did not never costs a system call.
 *   J3  A job is completed exactly once, after its result is final: exec
 *       wakes, or done() is called and the job freed.
 */
#include "jobs.h"

#include "arch.h"
#include "role.h"
#include "wait.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An exec'd job's state word (J2). */
enum { JOB_PENDING = 0, JOB_SLEEPING = 1, JOB_DONE = 2 };

/* How long an exec caller spins before it sleeps: a batch of a few jobs
 * under normal durability often completes within this, and a futex sleep
 * plus wake-up costs more. */
#define JOB_SPINS 64

/* ------------------------------------------------------------------ */
/* The queue                                                           */

int
lb_jobq_init(struct lb_jobq *q, uint32_t max_queue, _Atomic uint64_t *gauge)
{
	pthread_condattr_t ca;
	int rc;

	memset(q, 0, sizeof *q);
	q->max_queue = max_queue;
	q->gauge = gauge;
	rc = pthread_mutex_init(&q->lock, NULL);
	if (rc != 0)
		return lb_err_set(LITEBUS_ENOMEM,
				  "initializing the job queue's lock: %s",
				  strerror(rc));
	/* Idle timeouts (lb_jobq_take) are measured on the monotonic
	 * clock. */
	rc = pthread_condattr_init(&ca);
	if (rc == 0) {
		rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		if (rc == 0)
			rc = pthread_cond_init(&q->cond, &ca);
		(void)pthread_condattr_destroy(&ca);
	}
	if (rc != 0) {
		(void)pthread_mutex_destroy(&q->lock);
		return lb_err_set(LITEBUS_ENOMEM,
				  "initializing the job queue's condition "
				  "variable: %s",
				  strerror(rc));
	}
	return LITEBUS_OK;
}

void
lb_jobq_fini(struct lb_jobq *q)
{
	assert(q->head == NULL);
	(void)pthread_cond_destroy(&q->cond);
	(void)pthread_mutex_destroy(&q->lock);
}

/* Under lock.  Relaxed: a gauge for litebus_stats_get, no ordering. */
static void
jobq_gauge(struct lb_jobq *q)
{
	atomic_store_explicit(q->gauge, q->queued, memory_order_relaxed);
}

int
lb_jobq_push(struct lb_jobq *q, struct lb_job *j)
{
	pthread_mutex_lock(&q->lock);
	if (q->closing) { /* J1 */
		pthread_mutex_unlock(&q->lock);
		return lb_err_set(LITEBUS_ECLOSED, "the bus is closing");
	}
	if (q->queued >= q->max_queue) {
		uint32_t queued = q->queued;

		pthread_mutex_unlock(&q->lock);
		return lb_err_set(LITEBUS_EAGAIN,
				  "%u jobs are already queued (max_queue)",
				  queued);
	}
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->queued++;
	jobq_gauge(q);
	if (q->sleeping)
		pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return LITEBUS_OK;
}

void
lb_jobq_close(struct lb_jobq *q)
{
	pthread_mutex_lock(&q->lock);
	q->closing = true; /* J1 */
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Under lock: wait on cond, at most idle_ms (< 0: no limit).  True if the
 * wait timed out. */
static bool
jobq_wait(struct lb_jobq *q, int idle_ms)
{
	struct timespec ts;

	if (idle_ms < 0) {
		pthread_cond_wait(&q->cond, &q->lock);
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)idle_ms * 1000000L;
	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_cond_timedwait(&q->cond, &q->lock, &ts) == ETIMEDOUT;
}

enum lb_take
lb_jobq_take(struct lb_jobq *q, struct lb_job **batch, size_t max, int idle_ms,
	     size_t *n)
{
	enum lb_take r = LB_TAKE_JOBS;

	LB_ASSERT_ON_WRITER_THREAD();
	*n = 0;
	pthread_mutex_lock(&q->lock);
	while (q->head == NULL && !q->closing) {
		bool timed_out;

		q->sleeping = true;
		timed_out = jobq_wait(q, idle_ms);
		q->sleeping = false;
		if (timed_out && q->head == NULL && !q->closing) {
			r = LB_TAKE_IDLE;
			break;
		}
	}
	if (r == LB_TAKE_JOBS && q->head == NULL)
		r = LB_TAKE_CLOSED; /* J1: closing, and nothing is left */
	while (q->head != NULL && *n < max) {
		batch[(*n)++] = q->head;
		q->head = q->head->next;
		q->queued--;
	}
	if (q->head == NULL)
		q->tail = NULL;
	jobq_gauge(q);
	pthread_mutex_unlock(&q->lock);
	return r;
}

/* ------------------------------------------------------------------ */
/* Jobs                                                                */

void
lb_job_init_exec(struct lb_job *j, litebus_job_fn fn, void *arg)
{
	memset(j, 0, sizeof *j);
	j->fn = fn;
	j->arg = arg;
	j->is_exec = true;
	atomic_init(&j->state, JOB_PENDING);
}

struct lb_job *
lb_job_new_submit(litebus_job_fn fn, void *arg, litebus_done_fn done,
		  void *done_arg)
{
	struct lb_job *j = malloc(sizeof *j);

	if (j == NULL)
		return NULL;
	j->fn = fn;
	j->arg = arg;
	j->done = done;
	j->done_arg = done_arg;
	j->is_exec = false;
	j->next = NULL;
	j->settled = false;
	j->status = 0;
	j->sqlite_code = 0;
	j->errmsg[0] = '\0';
	atomic_init(&j->state, JOB_PENDING);
	return j;
}

void
lb_job_free(struct lb_job *j)
{
	free(j);
}

int
lb_job_wait(struct lb_job *j)
{
	uint32_t st;

	for (int i = 0; i < JOB_SPINS; i++) {
		/* Pairs with the release exchange in lb_job_complete(). */
		if (atomic_load_explicit(&j->state, memory_order_acquire) ==
		    JOB_DONE)
			goto done;
		lb_cpu_relax();
	}
	for (;;) {
		st = JOB_PENDING;
		/* J2.  The acquire on failure pairs with lb_job_complete()'s
		 * release when the state is already DONE (C11 wants the
		 * success order at least as strong; announcing that we will
		 * sleep needs no ordering of its own). */
		if (!atomic_compare_exchange_strong_explicit(
			&j->state, &st, JOB_SLEEPING, memory_order_acquire,
			memory_order_acquire) &&
		    st == JOB_DONE)
			break;
		lb_futex_wait(&j->state, JOB_SLEEPING, UINT64_MAX);
		/* Pairs with the release exchange in lb_job_complete(). */
		if (atomic_load_explicit(&j->state, memory_order_acquire) ==
		    JOB_DONE)
			break;
	}
done:
	if (j->status < 0)
		lb_err_restore(j->status, j->sqlite_code, j->errmsg);
	return j->status;
}

void
lb_job_set_status(struct lb_job *j, int status, bool with_detail)
{
	LB_ASSERT_ON_WRITER_THREAD();

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

void
lb_job_complete(struct lb_job *j)
{
	LB_ASSERT_ON_WRITER_THREAD();

	if (j->is_exec) {
		/* J2, J3.  Release pairs with the acquire loads in
		 * lb_job_wait(): status and errmsg are visible once DONE is.
		 * After this store the job (on the exec caller's stack) may
		 * vanish; the wake below only uses its address, which the
		 * kernel hashes without touching the memory. */
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
