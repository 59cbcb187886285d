/* SPDX-License-Identifier: MIT */
/*
 * jobs.c - the job, the job queue, and the hand-off between callers and
 * the writer thread.
 *
 * litebus_exec and litebus_submit (bus.c) build a job and push it here
 * from any thread; the writer takes jobs in queue order (writer.c) and
 * hands each back once its fate is known.  An exec'd job lives on its
 * caller's stack, and the caller waits for it: it spins while the writer
 * is likely to finish soon, then sleeps on the job's own futex word, so
 * the writer makes a wake-up system call only for a caller that actually
 * sleeps.  A submitted job lives on the heap and is handed back through
 * its done-callback on the writer thread.
 *
 * Why spin (J4): with one job in flight, litebus_exec is two hand-offs
 * between sleeping threads (caller -> writer -> caller), and on the
 * 2-core machine of bench/README a futex wake-up of a parked thread costs
 * 10-25 us, more than the one-row transaction between them.  So both
 * sides spin for a while before they park: the writer after a batch,
 * watching for the next push, and an exec caller, watching its job.  Each
 * spins only as long as the waits it has recently seen were short (a
 * budget that doubles toward what it saw and halves when a spin was in
 * vain), so a bus with sparse or no traffic, or under full durability
 * where the fsync dominates, does not spin at all, and at most
 * max_spinners callers (the CPUs but one) spin at once, leaving the
 * writer a CPU.
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
 *   J4  Spinning is bounded and never needed for correctness: a spin
 *       only reads hints (pushes, a job's state) and ends by at most
 *       JOB_SPIN_MAX_NS; then the caller or the writer takes the same
 *       sleeping path (J2, cond) it would have taken without it.  The
 *       writer spins only right after a batch or a wake-up that found
 *       jobs, so an idle bus costs one spin after its last job and
 *       nothing after that.
 *   J5  Spinning only while a CPU is free for it.  Nobody spins while
 *       the machine has more runnable threads than CPUs + 1 (the kernel's
 *       count, the fourth field of /proc/loadavg, sampled at most every
 *       JOB_LOAD_EVERY_NS and smoothed over about four samples): a spinner
 *       would then hold a CPU that the thread it waits for, or another
 *       process, needs.  The sample is a hint: read wrongly, or not at
 *       all (no /proc), it only spins more or less, J4 bounding it.
 */
#include "jobs.h"

#include "arch.h"
#include "role.h"
#include "wait.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* An exec'd job's state word (J2). */
enum { JOB_PENDING = 0, JOB_SLEEPING = 1, JOB_DONE = 2 };

/* J4: the longest spin, on either side.  Above it a futex sleep and
 * wake-up costs less than the CPU the spin burns.  First set to 50 us
 * from runs on the loaded 2-core machine (/tmp driver: one bus, P
 * producers calling litebus_exec for 1 s, 3 runs each, watch off): P=1
 * 11-17k exec/s with 50 us, as without spinning (13-17k); 8-11k with 200
 * us - because on a loaded machine the spinner took the CPU the writer
 * needed, which J5 now detects.  (May be set at build time to measure.) */
#ifndef JOB_SPIN_MAX_NS
#define JOB_SPIN_MAX_NS 200000u
#endif
/* J5.  Why 200 us, and why J5: on the 2-core KVM machine of bench/README,
 * quiet, a futex wake-up of a thread on an idle CPU costs the waker about
 * 50 us of CPU (the IPI of a halted vCPU: try_to_wake_up and
 * finish_task_switch were 45% of an exec P=1 profile), so a one-row
 * exec's transaction (40-60 us there) was never spun for with a 50 us
 * ceiling (the budget is twice the wait).  litebus-bench --only
 * mode=exec,S=0,dur=normal commit, 2 runs each, 2026-11-30, quiet:
 *   50 us:  P=1 7.3-7.5k ev/s (x_naive 0.21-0.24), 111-114 us CPU/event;
 *           P=8 34-35k (1.19-1.28)
 *   100 us: P=1 10-16k (0.36-0.46), 71-88 us;   P=8 34-46k (1.12-1.60)
 *   200 us: P=1 28-29k (0.83-1.00), 58 us;      P=8 40-42k (1.29-1.59)
 * With two CPU hogs running beside it, 200 us without J5 collapsed P=1 to
 * 1.4-3.5k ev/s (50 us: 8.4-9.8k): the spinner held a CPU the writer
 * needed.  A first J5 that judged each spin by its thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID against the wall clock) turned spinning off on
 * the quiet machine too (P=1 11-13k): the writer is often woken onto the
 * spinner's own CPU, and the spinner's yield then hands it over, which
 * is cheap and looks like contention.  The run queue tells them apart. */
#define JOB_LOAD_EVERY_NS 2000000u /* 2 ms */

/* A caller's first spin, before it has seen any wait. */
#define JOB_SPIN_INIT_NS 20000u
/* Spins re-read the clock every this many pauses, and yield the CPU
 * every JOB_SPIN_YIELD_EVERY: on a busy machine the thread spun for may be
 * waiting for this very CPU, and a spin that keeps it out only delays
 * what it waits for (measured: without the yield, exec P=1 on the loaded
 * 2-core machine fell to 5k/s, a third of no spinning at all). */
#define JOB_SPIN_CLOCK_EVERY 16
#define JOB_SPIN_YIELD_EVERY 64

/* J4: the next budget after a wait of wait_ns: twice the wait (the next
 * one is as likely to be a little longer as shorter) if it was short
 * enough to spin for, else half the budget, so a run of long waits turns
 * spinning off; 0 below a microsecond. */
static uint32_t
job_spin_adapt(uint32_t budget, uint64_t wait_ns)
{
	uint64_t b;

	if (wait_ns <= JOB_SPIN_MAX_NS / 2)
		b = wait_ns * 2 > budget ? wait_ns * 2 : budget;
	else
		b = budget / 2;
	if (b > JOB_SPIN_MAX_NS)
		b = JOB_SPIN_MAX_NS;
	return b < 1000 ? 0 : (uint32_t)b;
}

unsigned
lb_jobs_parse_running(const char *loadavg)
{
	const char *p = strchr(loadavg, '/');
	unsigned running = 0;

	/* "0.79 1.21 1.55 1/79 1956": the number right before the slash. */
	if (p == NULL)
		return 0;
	while (p > loadavg && p[-1] >= '0' && p[-1] <= '9')
		p--;
	while (*p >= '0' && *p <= '9' && running < 1000000u)
		running = running * 10u + (unsigned)(*p++ - '0');
	return running;
}

/* J5: the kernel's count of runnable threads now, or 0 if it cannot be
 * read. */
static unsigned
job_nr_running(void)
{
	char buf[128];
	ssize_t n;
	int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	(void)close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return lb_jobs_parse_running(buf);
}

/* J5: may a thread spin now?  Whoever finds the last sample older than
 * JOB_LOAD_EVERY_NS takes a new one (one thread at a time: the
 * compare-and-exchange); everyone else reads the smoothed score.  All
 * relaxed: hints that order nothing. */
static bool
jobq_cpu_free(struct lb_jobq *q, uint64_t now)
{
	uint64_t last =
	    atomic_load_explicit(&q->load_sampled_at, memory_order_relaxed);

	if (now - last >= JOB_LOAD_EVERY_NS &&
	    atomic_compare_exchange_strong_explicit(&q->load_sampled_at, &last,
						    now, memory_order_relaxed,
						    memory_order_relaxed)) {
		unsigned running = job_nr_running();
		uint32_t score =
		    atomic_load_explicit(&q->load_score, memory_order_relaxed);

		/* An average over about four samples, and one runnable
		 * thread beyond the CPUs allowed (the bus's own
		 * checkpointer, a kworker): with "> ncpu" the quiet
		 * machine's P=1 exec ran at 18-22k/s, with "> ncpu + 1"
		 * 28-30k (spinning always: 23-31k), and two CPU hogs still
		 * turn it off (8.1-8.7k/s, as with the 50 us ceiling). */
		score = score * 3 / 4 + (running > q->ncpu + 1 ? 64u : 0u);
		atomic_store_explicit(&q->load_score, score,
				      memory_order_relaxed);
	}
	return atomic_load_explicit(&q->load_score, memory_order_relaxed) < 32;
}

/* ------------------------------------------------------------------ */
/* The queue                                                           */

int
lb_jobq_init(struct lb_jobq *q, uint32_t max_queue, _Atomic uint64_t *gauge)
{
	pthread_condattr_t ca;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int rc;

	memset(q, 0, sizeof *q);
	q->max_queue = max_queue;
	q->gauge = gauge;
	/* J4: spinning on one CPU only delays the thread spun for. */
	q->max_spinners = ncpu > 1 ? (uint32_t)(ncpu - 1) : 0;
	q->writer_spins = ncpu > 1;
	atomic_init(&q->pushes, 0);
	atomic_init(&q->spinners, 0);
	atomic_init(&q->exec_spin_ns, ncpu > 1 ? JOB_SPIN_INIT_NS : 0);
	atomic_init(&q->load_sampled_at, 0);
	atomic_init(&q->load_score, 0);
	q->ncpu = ncpu > 0 ? (unsigned)ncpu : 1u;
	q->writer_spin_ns = 0;
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

/* Under lock: tell a spinning writer that something changed (J4).
 * Relaxed: a hint; the writer takes the lock before it reads the queue,
 * and the lock orders everything. */
static void
jobq_poke(struct lb_jobq *q)
{
	atomic_fetch_add_explicit(&q->pushes, 1, memory_order_relaxed);
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
	j->q = q;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->queued++;
	jobq_gauge(q);
	jobq_poke(q);
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
	jobq_poke(q);
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

/* Writer thread, without the lock (J4): spin up to writer_spin_ns for a
 * push or a close after `seen`, and adapt the budget to what happened. */
static void
jobq_writer_spin(struct lb_jobq *q, uint32_t seen)
{
	uint64_t t0 = lb_mono_ns(), now = t0;
	uint64_t deadline = t0 + q->writer_spin_ns;
	bool pushed = false;

	if (!jobq_cpu_free(q, t0))
		return; /* J5 */
	for (unsigned i = 1;; i++) {
		/* Relaxed: a hint (jobq_poke). */
		if (atomic_load_explicit(&q->pushes, memory_order_relaxed) !=
		    seen) {
			pushed = true;
			break;
		}
		lb_cpu_relax();
		if (i % JOB_SPIN_YIELD_EVERY == 0)
			(void)sched_yield(); /* cannot fail on Linux */
		if (i % JOB_SPIN_CLOCK_EVERY == 0) {
			now = lb_mono_ns();
			if (now >= deadline)
				break;
		}
	}
	now = lb_mono_ns();
	q->writer_spin_ns =
	    job_spin_adapt(q->writer_spin_ns, pushed ? now - t0 : UINT64_MAX);
}

enum lb_take
lb_jobq_take(struct lb_jobq *q, struct lb_job **batch, size_t max, int idle_ms,
	     size_t *n)
{
	enum lb_take r = LB_TAKE_JOBS;
	/* J4: spin once per take, and only with a budget. */
	bool spun = !q->writer_spins || q->writer_spin_ns == 0;
	uint64_t slept_ns = 0; /* when it went to sleep, if it did */

	LB_ASSERT_ON_WRITER_THREAD();
	*n = 0;
	pthread_mutex_lock(&q->lock);
	while (q->head == NULL && !q->closing) {
		bool timed_out;

		if (!spun) {
			/* Read under the lock: any push after this one
			 * changes it (jobq_poke). */
			uint32_t seen = atomic_load_explicit(
			    &q->pushes, memory_order_relaxed);

			spun = true;
			pthread_mutex_unlock(&q->lock);
			jobq_writer_spin(q, seen);
			pthread_mutex_lock(&q->lock);
			continue;
		}
		q->sleeping = true;
		if (slept_ns == 0 && q->writer_spins)
			slept_ns = lb_mono_ns();
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
	/* J4: a job that came soon after the writer went to sleep teaches
	 * it to spin that long; a long sleep or an idle timeout unteaches
	 * it. */
	if (slept_ns != 0)
		q->writer_spin_ns = job_spin_adapt(
		    q->writer_spin_ns,
		    r == LB_TAKE_JOBS ? lb_mono_ns() - slept_ns : UINT64_MAX);
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

/* J4: spin up to the queue's budget for j to be DONE, if fewer than
 * max_spinners callers spin already.  True if it is. */
static bool
job_spin(struct lb_job *j, uint64_t t0)
{
	struct lb_jobq *q = j->q;
	/* Relaxed: a heuristic; a stale budget only spins more or less. */
	uint32_t budget =
	    atomic_load_explicit(&q->exec_spin_ns, memory_order_relaxed);
	uint64_t deadline = t0 + budget;
	bool done = false;

	if (budget == 0 || !jobq_cpu_free(q, t0)) /* J5 */
		return false;
	/* Relaxed: a count of spinners, read and written by no one else's
	 * logic; a momentary excess only costs CPU. */
	if (atomic_fetch_add_explicit(&q->spinners, 1, memory_order_relaxed) >=
	    q->max_spinners) {
		atomic_fetch_sub_explicit(&q->spinners, 1,
					  memory_order_relaxed);
		return false;
	}
	for (unsigned i = 1;; i++) {
		/* Pairs with the release exchange in lb_job_complete(). */
		if (atomic_load_explicit(&j->state, memory_order_acquire) ==
		    JOB_DONE) {
			done = true;
			break;
		}
		lb_cpu_relax();
		if (i % JOB_SPIN_YIELD_EVERY == 0)
			(void)sched_yield(); /* cannot fail on Linux */
		if (i % JOB_SPIN_CLOCK_EVERY == 0 && lb_mono_ns() >= deadline)
			break;
	}
	atomic_fetch_sub_explicit(&q->spinners, 1, memory_order_relaxed);
	return done;
}

int
lb_job_wait(struct lb_job *j)
{
	struct lb_jobq *q = j->q;
	uint64_t t0 = lb_mono_ns();
	uint32_t st;

	if (job_spin(j, t0))
		goto done;
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
	/* J4: learn from this wait.  Relaxed, and racing callers may each
	 * store their own estimate: any of them is a fair budget.  Not with
	 * one CPU (max_spinners 0): the budget stays 0 there. */
	if (q->max_spinners > 0)
		atomic_store_explicit(
		    &q->exec_spin_ns,
		    job_spin_adapt(atomic_load_explicit(&q->exec_spin_ns,
							memory_order_relaxed),
				   lb_mono_ns() - t0),
		    memory_order_relaxed);
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
