/* SPDX-License-Identifier: MIT */
/*
 * jobs.h - the job, the job queue, and the hand-off between the threads
 * that call litebus_exec/litebus_submit and the writer thread.
 */
#ifndef LB_JOBS_H
#define LB_JOBS_H

#include "arch.h"
#include "errors.h"
#include "litebus.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One job on its way to the writer and back (J1-J3, in jobs.c). */
struct lb_job {
	/* Immutable once queued. */
	litebus_job_fn fn;
	void *arg;
	litebus_done_fn done; /* submit only */
	void *done_arg;
	bool is_exec;
	struct lb_job *next; /* under the queue's lock while queued */
	bool settled;	     /* writer.c, W6; writer thread only */
	/* The result, written by the writer (lb_job_set_status) before
	 * lb_job_complete() hands the job back. */
	int status;
	int sqlite_code;
	char errmsg[LB_ERRMSG_MAX];
	/* exec only: the futex word of the hand-back (J2). */
	_Atomic uint32_t state;
	/* exec only: the queue it was pushed to, for lb_job_wait's spin
	 * (J4); set by lb_jobq_push, read by the caller's own thread. */
	struct lb_jobq *q;
};

/* The queue.  Every field but the immutable ones is under `lock`. */
struct lb_jobq {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the writer waits here (monotonic clock) */
	struct lb_job *head, *tail;
	uint32_t queued;
	bool closing;  /* J1 */
	bool sleeping; /* the writer waits on cond */
	/* Immutable after lb_jobq_init(). */
	uint32_t max_queue;
	_Atomic uint64_t *gauge; /* mirror of `queued` (litebus_stats) */
	uint32_t max_spinners;	 /* exec callers that may spin at once */
	bool writer_spins;	 /* more than one CPU: the writer may spin */

	/* Spinning (J4).  Hints only: no other field is read because of
	 * them, so every access is relaxed. */
	/* Bumped under `lock` by every push and by close; the writer's spin
	 * polls it without the lock.  Its own cache line: producers write
	 * it while the writer reads it. */
	alignas(LB_CACHELINE) _Atomic uint32_t pushes;
	/* exec callers spinning now, and how long one may spin (ns). */
	alignas(LB_CACHELINE) _Atomic uint32_t spinners;
	_Atomic uint32_t exec_spin_ns;
	/* J5: when the run queue was last sampled (monotonic ns), and the
	 * smoothed score of "more runnable threads than CPUs" (>= 32: do
	 * not spin).  Any spinner, relaxed. */
	_Atomic uint64_t load_sampled_at;
	_Atomic uint32_t load_score;
	unsigned ncpu; /* immutable */
	/* Writer thread only: how long it spins before sleeping (ns). */
	uint32_t writer_spin_ns;
};

/* Set up an empty queue holding at most max_queue jobs; `gauge` (borrowed
 * for the queue's life) mirrors its length.  OK, or ENOMEM with the
 * thread's error set. */
int lb_jobq_init(struct lb_jobq *q, uint32_t max_queue,
		 _Atomic uint64_t *gauge);
void lb_jobq_fini(struct lb_jobq *q);

/* J5 (jobs.c): the runnable-thread count in a line of /proc/loadavg
 * ("0.79 1.21 1.55 1/79 1956" gives 1); 0 if the line has none.  Any
 * thread; pure. */
unsigned lb_jobs_parse_running(const char *loadavg);

/* Any thread: queue j (the queue borrows it until it is completed).
 * Returns OK; ECLOSED once lb_jobq_close() was called (J1); EAGAIN when
 * max_queue jobs are queued.  Refused, the caller still owns j.
 * Blocking: the queue's lock only. */
int lb_jobq_push(struct lb_jobq *q, struct lb_job *j);

/* Any thread but the writer: refuse new jobs from now on (J1), and wake
 * the writer so that it drains what is queued and sees the close. */
void lb_jobq_close(struct lb_jobq *q);

/* What lb_jobq_take() found. */
enum lb_take {
	LB_TAKE_JOBS,	/* *n >= 1 jobs taken, in queue order */
	LB_TAKE_IDLE,	/* idle_ms passed with the queue empty */
	LB_TAKE_CLOSED, /* closed, and nothing is left */
};

/* Writer thread: wait until a job is queued or the queue is closed, and
 * take up to `max` jobs, in queue order, into batch[].  With idle_ms >= 0,
 * return LB_TAKE_IDLE instead once the queue has stayed empty that long.
 * Blocking: until then. */
enum lb_take lb_jobq_take(struct lb_jobq *q, struct lb_job **batch, size_t max,
			  int idle_ms, size_t *n);

/* The caller of litebus_exec: a job on its own stack. */
void lb_job_init_exec(struct lb_job *j, litebus_job_fn fn, void *arg);
/* The caller of litebus_submit: a job on the heap, or NULL (out of
 * memory).  The queue frees it once it is completed; if the push is
 * refused, the caller frees it with lb_job_free(). */
struct lb_job *lb_job_new_submit(litebus_job_fn fn, void *arg,
				 litebus_done_fn done, void *done_arg);
void lb_job_free(struct lb_job *j);

/* The caller of litebus_exec, after a successful push: wait until the
 * writer completes j (J2), then return its status with the thread's
 * error restored to the job's.  Not on the writer thread (it would wait
 * for itself).  Blocking: until the job has committed or failed. */
int lb_job_wait(struct lb_job *j);

/* Writer thread: record j's result: `status`, and with `with_detail` the
 * thread's current error code and text (for status < 0). */
void lb_job_set_status(struct lb_job *j, int status, bool with_detail);
/* Writer thread: hand j back, exactly once (J3): wake its exec caller,
 * or call its done-callback and free it.  j may not be touched
 * afterwards. */
void lb_job_complete(struct lb_job *j);

#endif
