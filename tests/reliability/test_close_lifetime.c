/* SPDX-License-Identifier: MIT */
/*
 * test_close_lifetime.c - a bus handle against litebus_close() (litebus.h,
 * the overlap table; bus.c, B1-B3), and calls from the writer thread that
 * would wait for the writer itself.
 *
 * Before issue 7 the bus was freed when its last reference went, so a
 * thread that entered litebus_exec and was preempted before it took its
 * reference could find the bus freed by a close that completed meanwhile
 * (heap-use-after-free under ASan), and so could any call that started
 * after the last close.  The header now promises: "A bus handle stays
 * valid memory for the life of the process, so every call on it made
 * during or after its last litebus_close() - even one that starts
 * afterwards - returns LITEBUS_ECLOSED (or, for litebus_channel_name(),
 * NULL)".  These tests hold it to that with no other handle keeping the
 * bus alive, under ASan and TSan.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "fixture.h"
#include "jobs.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void
assert_eclosed(int rc, const char *call)
{
	if (rc != LITEBUS_ECLOSED)
		fail_msg("%s after the last close: %s (%d), want ECLOSED", call,
			 litebus_errname(rc), rc);
	if (strstr(litebus_last_errmsg(), "closed") == NULL)
		fail_msg("%s: the message \"%s\" does not say closed", call,
			 litebus_last_errmsg());
}

/* Every call on a handle whose last close has returned. */
static void
assert_every_call_is_eclosed(litebus *bus)
{
	litebus_sub *sub = (litebus_sub *)&sub;
	litebus_reader *r = (litebus_reader *)&r;
	litebus_stats st;

	assert_eclosed(litebus_exec(bus, fx_emit_one_job, NULL), "exec");
	assert_eclosed(litebus_submit(bus, fx_emit_one_job, NULL, NULL, NULL),
		       "submit");
	assert_eclosed(litebus_subscribe(bus, LITEBUS_COMPLETION, &sub),
		       "subscribe");
	assert_null(sub);
	assert_eclosed(litebus_reader_open(bus, LITEBUS_COMPLETION,
					   LITEBUS_FROM_START, NULL, &r),
		       "reader_open");
	assert_null(r);
	assert_eclosed(litebus_stats_get(bus, &st), "stats_get");
	assert_eclosed(litebus_channel_id(bus, "completion"), "channel_id");
	assert_eclosed(litebus_channel_count(bus), "channel_count");
	assert_null(litebus_channel_name(bus, LITEBUS_COMPLETION));
	assert_eclosed(litebus_close(bus), "close");
	assert_eclosed(litebus_close(bus), "a third close");
}

/* ------------------------------------------------------------------ */
/* After the last close                                                */

/* Contract: "every call on it made during or after its last
 * litebus_close() - even one that starts afterwards - returns
 * LITEBUS_ECLOSED (or, for litebus_channel_name(), NULL)"; litebus_close:
 * "ECLOSED if every open of this handle was already closed".  Nothing
 * else holds the bus: its memory would be gone if it were freed. */
static void
every_call_on_a_file_bus_after_its_last_close_is_eclosed(void **state)
{
	struct bus_fixture *f = *state;
	litebus *bus = f->bus;

	commit_events(bus, LITEBUS_COMPLETION, 3, NULL);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	f->bus = NULL;
	assert_every_call_is_eclosed(bus);
}

static void
every_call_on_an_in_memory_bus_after_its_close_is_eclosed(void **state)
{
	litebus *bus = fx_open_path(NULL, NULL);

	(void)state;
	commit_events(bus, LITEBUS_COMPLETION, 3, NULL);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	assert_every_call_is_eclosed(bus);
}

/* The same while a subscriber and a reader keep the bus's memory: the
 * info calls say ECLOSED too, and the survivors drain and say CLOSED. */
static void
calls_after_the_last_close_are_eclosed_while_handles_keep_the_memory(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus *bus = f->bus;
	litebus_sub *sub;
	litebus_reader *r;
	litebus_event ev;
	litebus_row row;

	assert_int_equal(litebus_subscribe(bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_reader_open(bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_NOW, NULL, &r),
			 LITEBUS_OK);
	commit_events(bus, LITEBUS_COMPLETION, 1, NULL);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	f->bus = NULL;
	assert_every_call_is_eclosed(bus);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_OK);
	assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_CLOSED);
	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
			 LITEBUS_CLOSED);
	litebus_unsubscribe(sub);
	assert_every_call_is_eclosed(bus); /* a reader still holds it */
	litebus_reader_close(r);
	assert_every_call_is_eclosed(bus); /* now a tombstone */
}

/* "each open is paired with one litebus_close()": the close after the
 * last is ECLOSED and changes nothing of a new bus on the same file. */
static void
a_close_beyond_the_opens_is_eclosed_and_touches_no_new_bus(void **state)
{
	struct bus_fixture *f = *state;
	litebus *old = f->bus;
	litebus *again = fx_open_path(f->path, NULL);

	assert_ptr_equal(again, old);
	assert_int_equal(litebus_close(old), LITEBUS_OK);
	assert_int_equal(litebus_close(old), LITEBUS_OK); /* the last */
	f->bus = fx_open_path(f->path, NULL); /* a new bus on the same file */
	assert_ptr_not_equal(f->bus, old);
	assert_eclosed(litebus_close(old), "close");
	commit_events(f->bus, LITEBUS_COMPLETION, 1, NULL); /* still open */
}

/* ------------------------------------------------------------------ */
/* From the writer thread                                              */

static int
job_close(litebus_tx *tx, void *arg)
{
	(void)tx;
	return litebus_close(arg);
}

/* Contract: "From the writer thread, every call that would wait for the
 * writer itself returns LITEBUS_EDEADLK instead: ... the last
 * litebus_close()".  A close that is not the last waits for nothing. */
static void
a_job_may_close_an_open_of_its_bus_but_not_the_last_one(void **state)
{
	struct bus_fixture *f = *state;
	litebus *again = fx_open_path(f->path, NULL);

	assert_ptr_equal(again, f->bus);
	assert_int_equal(litebus_exec(f->bus, job_close, again), LITEBUS_OK);
	assert_int_equal(litebus_exec(f->bus, job_close, f->bus),
			 LITEBUS_EDEADLK);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, NULL);  /* still open */
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK); /* the last */
	assert_eclosed(litebus_close(f->bus), "close");
	f->bus = NULL;
}

struct reopen {
	const char *path;
	litebus *bus;
	int open_rc, close_rc;
};

static int
job_reopens_its_file(litebus_tx *tx, void *arg)
{
	struct reopen *r = arg;
	litebus_options o;

	(void)tx;
	litebus_options_init(&o);
	o.path = r->path;
	r->open_rc = litebus_open(&o, &r->bus);
	r->close_rc = r->open_rc == LITEBUS_OK ? litebus_close(r->bus) : 1;
	return 0;
}

/* While the bus is open, its writer may open its file (the same handle,
 * one more open) and close that open again: neither waits for anything. */
static void
a_job_may_open_its_own_file_and_close_that_open(void **state)
{
	struct bus_fixture *f = *state;
	struct reopen r = {f->path, NULL, 1, 1};

	assert_int_equal(litebus_exec(f->bus, job_reopens_its_file, &r), 0);
	assert_int_equal(r.open_rc, LITEBUS_OK);
	assert_ptr_equal(r.bus, f->bus);
	assert_int_equal(r.close_rc, LITEBUS_OK);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, NULL); /* still open */
}

struct done_close {
	litebus *bus;
	_Atomic int rc;
};

static void
done_close(int status, void *arg)
{
	struct done_close *d = arg;

	(void)status;
	atomic_store(&d->rc, litebus_close(d->bus));
}

static void
the_last_close_from_a_done_callback_is_edeadlk_in_memory_too(void **state)
{
	litebus *bus = fx_open_path(NULL, NULL);
	struct done_close d = {bus, 1};

	(void)state;
	assert_int_equal(
	    litebus_submit(bus, fx_emit_one_job, NULL, done_close, &d),
	    LITEBUS_OK);
	commit_events(bus, LITEBUS_COMPLETION, 1, NULL); /* after the done */
	assert_int_equal(atomic_load(&d.rc), LITEBUS_EDEADLK);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* A job that opens its own bus's file while the bus's last close is under
 * way: that close waits for this very writer. */
struct open_during_close {
	litebus *bus;
	const char *paths[2];
	int rc[2];
	bool saw_close;
};

static int
job_opens_during_close(litebus_tx *tx, void *arg)
{
	struct open_during_close *o = arg;
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
	litebus_stats st;

	(void)tx;
	/* The last close has begun once the handle refuses new calls. */
	while (litebus_stats_get(o->bus, &st) != LITEBUS_ECLOSED &&
	       fx_now_ms() < deadline)
		sched_yield();
	o->saw_close = litebus_stats_get(o->bus, &st) == LITEBUS_ECLOSED;
	for (int i = 0; i < 2; i++) {
		litebus_options opts;
		litebus *b;

		litebus_options_init(&opts);
		opts.path = o->paths[i];
		o->rc[i] = litebus_open(&opts, &b);
		if (o->rc[i] == LITEBUS_OK)
			litebus_close(b);
	}
	return 0;
}

/* Contract: "... litebus_open() of the bus's file while its last close is
 * under way" returns EDEADLK from the writer thread; by another name of
 * the file too. */
static void
a_job_opening_its_file_while_the_last_close_runs_is_edeadlk(void **state)
{
	struct bus_fixture *f = *state;
	char alias[400];
	struct open_during_close o = {f->bus, {f->path, alias}, {1, 1}, false};
	struct fx_closer c = {f->bus, 1};
	struct timespec until;
	pthread_t t;
	int rc;

	snprintf(alias, sizeof alias, "%s/alias.db", f->dir);
	assert_int_equal(link(f->path, alias), 0);
	assert_int_equal(
	    litebus_submit(f->bus, job_opens_during_close, &o, NULL, NULL),
	    LITEBUS_OK);
	assert_int_equal(pthread_create(&t, NULL, fx_closer_main, &c), 0);
	f->bus = NULL; /* the closer's now */
	until = fx_realtime_in(2 * FX_WAIT_MS);
	rc = pthread_timedjoin_np(t, NULL, &until);
	if (rc != 0) /* the close waits for a writer that waits for it */
		fail_msg("the close did not return: %s (deadlock)",
			 strerror(rc));
	assert_int_equal(c.rc, LITEBUS_OK);
	assert_true(o.saw_close);
	assert_int_equal(o.rc[0], LITEBUS_EDEADLK);
	assert_int_equal(o.rc[1], LITEBUS_EDEADLK);
	/* The file opens normally afterwards. */
	f->bus = fx_open_path(f->path, NULL);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, NULL);
}

/* ------------------------------------------------------------------ */
/* Races with close                                                    */

#define ROUNDS 24
#define WORKERS 5
#define CLOSED_CALLS 64 /* calls each worker makes after it saw ECLOSED */

struct worker {
	litebus *bus;
	struct fx_barrier *start;
	int kind;
	unsigned seed;
	_Atomic int inflight; /* submitted jobs whose done has not run */
	char bad[200];	      /* the first status the contract does not allow */
};

static void
worker_bad(struct worker *w, const char *call, int rc)
{
	if (w->bad[0] == '\0')
		snprintf(w->bad, sizeof w->bad, "%s returned %s (%d): %s", call,
			 litebus_errname(rc), rc, litebus_last_errmsg());
}

static void
worker_done(int status, void *arg)
{
	struct worker *w = arg;

	if (status != 0)
		worker_bad(w, "a submitted job", status);
	atomic_fetch_sub(&w->inflight, 1);
}

/* One call of this worker's kind: OK or ECLOSED, or worker_bad. */
static int
worker_call(struct worker *w)
{
	litebus_stats st;
	litebus_event ev;
	litebus_row row;
	litebus_sub *sub;
	litebus_reader *r;
	int rc;

	switch (w->kind) {
	case 0:
		rc = litebus_exec(w->bus, fx_emit_one_job, NULL);
		break;
	case 1: {
		/* Keep the queue short: the close runs every queued job. */
		uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

		while (atomic_load(&w->inflight) >= 32 &&
		       fx_now_ms() < deadline)
			sched_yield();
		atomic_fetch_add(&w->inflight, 1);
		rc = litebus_submit(w->bus, fx_emit_one_job, NULL, worker_done, w);
		if (rc != LITEBUS_OK)
			atomic_fetch_sub(&w->inflight, 1);
		break;
	}
	case 2:
		rc = litebus_subscribe(w->bus, LITEBUS_COMPLETION, &sub);
		if (rc != LITEBUS_OK)
			break;
		for (int i = 0; i < 3; i++) {
			int r2 = litebus_recv(sub, &ev, 0);
			if (r2 != LITEBUS_OK && r2 != LITEBUS_LAGGED &&
			    r2 != LITEBUS_TIMEOUT && r2 != LITEBUS_CLOSED)
				worker_bad(w, "recv", r2);
		}
		litebus_unsubscribe(sub);
		break;
	case 3:
		rc = litebus_reader_open(w->bus, LITEBUS_COMPLETION,
					 rand_r(&w->seed) % 2
					     ? LITEBUS_FROM_START
					     : LITEBUS_FROM_NOW,
					 NULL, &r);
		if (rc != LITEBUS_OK)
			break;
		for (int i = 0; i < 3; i++) {
			int r2 = litebus_reader_next(r, &row, 0);
			if (r2 != LITEBUS_OK && r2 != LITEBUS_TIMEOUT &&
			    r2 != LITEBUS_CLOSED)
				worker_bad(w, "reader_next", r2);
		}
		litebus_reader_close(r);
		break;
	default:
		rc = litebus_stats_get(w->bus, &st);
		if (rc == LITEBUS_OK) {
			int n = litebus_channel_count(w->bus);
			int id = litebus_channel_id(w->bus, "completion");

			if (n != LITEBUS_ECLOSED &&
			    n != LITEBUS_BUILTIN_CHANNELS)
				worker_bad(w, "channel_count", n);
			if (id != LITEBUS_ECLOSED && id != LITEBUS_COMPLETION)
				worker_bad(w, "channel_id", id);
			/* Not read: the name lives only as long as the
			 * bus, which the close running now ends. */
			(void)litebus_channel_name(w->bus, LITEBUS_COMPLETION);
		}
		break;
	}
	if (rc != LITEBUS_OK && rc != LITEBUS_ECLOSED)
		worker_bad(w,
			   w->kind == 0	  ? "exec"
			   : w->kind == 1 ? "submit"
			   : w->kind == 2 ? "subscribe"
			   : w->kind == 3 ? "reader_open"
					  : "stats_get",
			   rc);
	return rc;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int closed = 0;
	uint64_t deadline;

	fx_barrier_wait(w->start);
	deadline = fx_now_ms() + FX_WAIT_MS;
	/* Until well after the close: the last calls find a tombstone. */
	while (closed < CLOSED_CALLS && fx_now_ms() < deadline)
		if (worker_call(w) == LITEBUS_ECLOSED)
			closed++;
	if (closed < CLOSED_CALLS)
		worker_bad(w, "the worker never saw the close", 0);
	return NULL;
}

/* Contract, overlap table: exec/submit, subscribe, reader_open against
 * close are "C": OK, or ECLOSED if the close got there first; nothing
 * else, and no report from ASan or TSan, with no other handle keeping the
 * bus's memory. */
static void
calls_racing_the_last_close_return_ok_or_eclosed_and_nothing_else(void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */

	for (int round = 0; round < ROUNDS; round++) {
		struct fx_barrier start;
		struct worker w[WORKERS];
		pthread_t t[WORKERS];
		litebus *bus = fx_open_path(round % 2 ? f->path : NULL, NULL);

		fx_barrier_init(&start, WORKERS + 1);
		for (int i = 0; i < WORKERS; i++) {
			memset(&w[i], 0, sizeof w[i]);
			atomic_init(&w[i].inflight, 0);
			w[i].bus = bus;
			w[i].start = &start;
			w[i].kind = i;
			w[i].seed = (unsigned)(round * WORKERS + i);
			assert_int_equal(
			    pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
		}
		fx_barrier_wait(&start);
		/* Vary the moment of the close a little. */
		for (int i = 0; i < round % 4; i++)
			assert_int_equal(litebus_exec(bus, fx_emit_one_job, NULL),
					 0);
		assert_int_equal(litebus_close(bus), LITEBUS_OK);
		for (int i = 0; i < WORKERS; i++)
			assert_int_equal(pthread_join(t[i], NULL), 0);
		fx_barrier_destroy(&start);
		for (int i = 0; i < WORKERS; i++) {
			if (w[i].bad[0] != '\0')
				fail_msg("round %d: %s", round, w[i].bad);
			/* "done ... will be called exactly once ... even if
			 * the bus closes meanwhile". */
			assert_int_equal(atomic_load(&w[i].inflight), 0);
		}
		assert_eclosed(litebus_close(bus), "close");
	}
}

/* ------------------------------------------------------------------ */
/* Forced preemption (the link seam)                                   */

/*
 * The link seam (tests/CMakeLists.txt) parks a thread marked to park right
 * before the call takes its reference - the moment the issue describes -
 * until the test lets it go.  litebus_subscribe and litebus_reader_open
 * take it by calling lb_bus_tryref in bus.c from their own files, so
 * -Wl,--wrap=lb_bus_tryref catches them there.  litebus_exec and
 * litebus_submit sit beside lb_bus_tryref in bus.c, where --wrap cannot
 * reach (a call inside one object is not an undefined reference), so they
 * park in the last call they make before it: building the job
 * (lb_job_init_exec, lb_job_new_submit in jobs.c).  Without the flags the
 * __real_ symbols stay unresolved weak symbols (NULL) and the test is
 * skipped, saying so.
 */
bool __wrap_lb_bus_tryref(litebus *bus, const char *call);
extern bool __real_lb_bus_tryref(litebus *bus, const char *call)
    __attribute__((weak));
void __wrap_lb_job_init_exec(struct lb_job *j, litebus_job_fn fn, void *arg);
extern void __real_lb_job_init_exec(struct lb_job *j, litebus_job_fn fn,
				    void *arg) __attribute__((weak));
struct lb_job *__wrap_lb_job_new_submit(litebus_job_fn fn, void *arg,
					litebus_done_fn done, void *done_arg);
extern struct lb_job *__real_lb_job_new_submit(litebus_job_fn fn, void *arg,
					       litebus_done_fn done,
					       void *done_arg)
    __attribute__((weak));

static _Thread_local bool park_here;
static struct {
	_Atomic int parked;
	_Atomic int release;
} seam;

static void
seam_park(void)
{
	if (park_here) {
		uint64_t deadline = fx_now_ms() + 2 * FX_WAIT_MS;

		park_here = false;
		/* Pairs with the acquire loads in the test. */
		atomic_store_explicit(&seam.parked, 1, memory_order_release);
		while (!atomic_load_explicit(&seam.release,
					     memory_order_acquire) &&
		       fx_now_ms() < deadline)
			sched_yield();
	}
}

bool
__wrap_lb_bus_tryref(litebus *bus, const char *call)
{
	seam_park();
	return __real_lb_bus_tryref(bus, call);
}

void
__wrap_lb_job_init_exec(struct lb_job *j, litebus_job_fn fn, void *arg)
{
	seam_park();
	__real_lb_job_init_exec(j, fn, arg);
}

struct lb_job *
__wrap_lb_job_new_submit(litebus_job_fn fn, void *arg, litebus_done_fn done,
			 void *done_arg)
{
	seam_park();
	return __real_lb_job_new_submit(fn, arg, done, done_arg);
}

struct parked_call {
	litebus *bus;
	int kind;
	int rc;
};

static void *
parked_main(void *arg)
{
	struct parked_call *p = arg;
	litebus_sub *sub;
	litebus_reader *r;

	park_here = true;
	switch (p->kind) {
	case 0:
		p->rc = litebus_exec(p->bus, fx_emit_one_job, NULL);
		break;
	case 1:
		p->rc = litebus_submit(p->bus, fx_emit_one_job, NULL, NULL, NULL);
		break;
	case 2:
		p->rc = litebus_subscribe(p->bus, LITEBUS_COMPLETION, &sub);
		if (p->rc == LITEBUS_OK)
			litebus_unsubscribe(sub);
		break;
	default:
		p->rc = litebus_reader_open(p->bus, LITEBUS_COMPLETION,
					    LITEBUS_FROM_START, NULL, &r);
		if (p->rc == LITEBUS_OK)
			litebus_reader_close(r);
		break;
	}
	return NULL;
}

/* The failing input, made deterministic: a thread has entered the
 * call and is preempted before it takes its reference; the last close
 * runs to its end and the bus's memory is released; then the thread
 * resumes.  Contract: such a call "returns LITEBUS_ECLOSED". */
static void
a_call_preempted_before_its_reference_resumes_after_close_into_eclosed(
    void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	static const char *const names[] = {"exec", "submit", "subscribe",
					    "reader_open"};

	if (__real_lb_bus_tryref == NULL || __real_lb_job_init_exec == NULL ||
	    __real_lb_job_new_submit == NULL) {
		print_message("forced-preemption variant SKIPPED: link "
			      "test_close_lifetime with -Wl,--wrap=lb_bus_"
			      "tryref,--wrap=lb_job_init_exec,--wrap=lb_job_"
			      "new_submit\n");
		skip();
	}
	for (int kind = 0; kind < 4; kind++) {
		struct parked_call p = {NULL, kind, 1};
		uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
		pthread_t t;
		int rc;

		p.bus = fx_open_path(kind % 2 ? f->path : NULL, NULL);
		atomic_store(&seam.parked, 0);
		atomic_store(&seam.release, 0);
		assert_int_equal(pthread_create(&t, NULL, parked_main, &p), 0);
		while (
		    !atomic_load_explicit(&seam.parked, memory_order_acquire) &&
		    fx_now_ms() < deadline)
			sched_yield();
		rc = atomic_load(&seam.parked) ? litebus_close(p.bus) : -1;
		atomic_store_explicit(&seam.release, 1, memory_order_release);
		assert_int_equal(pthread_join(t, NULL), 0);
		if (rc != LITEBUS_OK)
			fail_msg("%s: the thread never parked, or close "
				 "failed (%d)",
				 names[kind], rc);
		if (p.rc != LITEBUS_ECLOSED)
			fail_msg("%s resumed after the close: %s, want "
				 "ECLOSED",
				 names[kind], litebus_errname(p.rc));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(every_call_on_a_file_bus_after_its_last_close_is_eclosed),
	    cmocka_unit_test(
		every_call_on_an_in_memory_bus_after_its_close_is_eclosed),
	    FX_TEST_TINY(calls_after_the_last_close_are_eclosed_while_handles_keep_the_memory),
	    FX_TEST_TINY(a_close_beyond_the_opens_is_eclosed_and_touches_no_new_bus),
	    FX_TEST_TINY(a_job_may_close_an_open_of_its_bus_but_not_the_last_one),
	    FX_TEST_TINY(a_job_may_open_its_own_file_and_close_that_open),
	    cmocka_unit_test(
		the_last_close_from_a_done_callback_is_edeadlk_in_memory_too),
	    FX_TEST_TINY(a_job_opening_its_file_while_the_last_close_runs_is_edeadlk),
	    FX_TEST_TMPDIR(calls_racing_the_last_close_return_ok_or_eclosed_and_nothing_else),
	    FX_TEST_TMPDIR(a_call_preempted_before_its_reference_resumes_after_close_into_eclosed),
	};

	return cmocka_run_group_tests_name("close_lifetime", tests, NULL, NULL);
}
