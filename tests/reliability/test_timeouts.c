/* SPDX-License-Identifier: MIT */
/*
 * test_timeouts.c - the one timeout rule of litebus_recv() and
 * litebus_reader_next(): below -1 is EINVAL, -1 waits forever, 0 never
 * waits for a commit, a positive value waits up to that many
 * milliseconds; and a wait on the writer thread of the handle's own bus
 * is EDEADLK (subscriber.c, S5).
 */
#include "fixture.h"

#include "bus.h" /* to see when a call sleeps (channel sleepers) */

#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* A thread that commits one event once the test's thread sleeps on the
 * channel, so that a call with timeout -1 (or a long one) has something
 * to wake for.  If that call has not returned FX_WAIT_MS later, it
 * commits again and says so: the first wake-up was lost. */
struct waker {
	litebus *bus;
	struct lb_channel *ch;
	_Atomic bool returned;
	bool committed;
	bool second_commit; /* the first wake-up was lost */
	int rc;
};

static void *
waker_main(void *arg)
{
	struct waker *w = arg;
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	/* Relaxed: a hint that the call went to sleep; committing earlier
	 * would only make the test pass without sleeping. */
	while (atomic_load_explicit(&w->ch->sleepers, memory_order_relaxed) ==
		   0 &&
	       fx_now_ms() < deadline)
		sched_yield();
	w->rc = litebus_exec(w->bus, fx_emit_one_job, NULL);
	w->committed = w->rc == 0;
	deadline = fx_now_ms() + FX_WAIT_MS;
	while (!atomic_load(&w->returned) && fx_now_ms() < deadline)
		sched_yield();
	if (!atomic_load(&w->returned)) {
		w->second_commit = true;
		(void)litebus_exec(w->bus, fx_emit_one_job, NULL);
	}
	return NULL;
}

static void
waker_start(struct waker *w, pthread_t *t, litebus *bus)
{
	memset(w, 0, sizeof *w);
	w->bus = bus;
	w->ch = bus->channels[LITEBUS_COMPLETION];
	atomic_init(&w->returned, false);
	assert_int_equal(pthread_create(t, NULL, waker_main, w), 0);
}

static void
waker_join(struct waker *w, pthread_t t)
{
	atomic_store(&w->returned, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (!w->committed)
		fail_msg("the waker's commit failed: %s",
			 litebus_errname(w->rc));
	if (w->second_commit)
		fail_msg("the call did not return within %d ms of the commit "
			 "it waited for",
			 FX_WAIT_MS);
}

/* ------------------------------------------------------------------ */
/* Below -1                                                            */

static const int below_minus_one[] = {-2, -3, -1000, INT_MIN};

/* litebus_recv(): "EINVAL   NULL argument, or timeout_ms below -1." -
 * at once, and the event waiting is still there afterwards. */
static void
recv_with_a_timeout_below_minus_one_is_einval_and_takes_nothing(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	litebus_event ev;
	int64_t id;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, &id);
	for (size_t i = 0; i < sizeof below_minus_one / sizeof(int); i++) {
		assert_int_equal(litebus_recv(sub, &ev, below_minus_one[i]),
				 LITEBUS_EINVAL);
		assert_non_null(strstr(litebus_last_errmsg(), "below -1"));
	}
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_OK);
	assert_int_equal(ev.event_id, id);
	/* Nothing waiting: still EINVAL, not a wait. */
	assert_int_equal(litebus_recv(sub, &ev, -2), LITEBUS_EINVAL);
	assert_int_equal(litebus_recv(sub, &ev, INT_MIN), LITEBUS_EINVAL);
	litebus_unsubscribe(sub);
}

/* litebus_reader_next(): "Errors: EINVAL (NULL, timeout_ms below -1)" -
 * the cursor does not move. */
static void
reader_next_with_a_timeout_below_minus_one_is_einval_and_keeps_the_cursor(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;
	litebus_row row;
	int64_t ids[2];

	commit_events(f->bus, LITEBUS_COMPLETION, 2, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	for (size_t i = 0; i < sizeof below_minus_one / sizeof(int); i++) {
		assert_int_equal(
		    litebus_reader_next(r, &row, below_minus_one[i]),
		    LITEBUS_EINVAL);
		assert_int_equal(litebus_reader_cursor(r), 0);
	}
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_OK);
	assert_int_equal(row.event_id, ids[0]);
	assert_int_equal(litebus_reader_next(r, &row, -2), LITEBUS_EINVAL);
	assert_int_equal(litebus_reader_cursor(r), ids[0]);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_OK);
	assert_int_equal(row.event_id, ids[1]);
	assert_int_equal(litebus_reader_next(r, &row, INT_MIN), LITEBUS_EINVAL);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* -1 and long waits                                                   */

/* litebus_recv(): "-1 waits forever" - until a commit from another
 * thread. */
static void
recv_with_minus_one_waits_for_a_commit_from_another_thread(void **state)
{
	struct bus_fixture *f = *state;
	struct waker w;
	litebus_sub *sub;
	litebus_event ev;
	pthread_t t;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	waker_start(&w, &t, f->bus);
	assert_int_equal(litebus_recv(sub, &ev, -1), LITEBUS_OK);
	waker_join(&w, t);
	assert_int_equal(ev.channel, LITEBUS_COMPLETION);
	litebus_unsubscribe(sub);
}

static void
reader_next_with_minus_one_waits_for_a_commit_from_another_thread(void **state)
{
	struct bus_fixture *f = *state;
	struct waker w;
	litebus_reader *r;
	litebus_row row;
	pthread_t t;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	waker_start(&w, &t, f->bus);
	assert_int_equal(litebus_reader_next(r, &row, -1), LITEBUS_OK);
	waker_join(&w, t);
	assert_string_equal(row.event_type, "success");
	litebus_reader_close(r);
}

/* The largest timeout is an ordinary wait too (no overflow of the
 * deadline). */
static void
int_max_waits_like_any_positive_timeout(void **state)
{
	struct bus_fixture *f = *state;
	struct waker w;
	litebus_sub *sub;
	litebus_reader *r;
	litebus_event ev;
	litebus_row row;
	pthread_t t;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	waker_start(&w, &t, f->bus);
	assert_int_equal(litebus_recv(sub, &ev, INT_MAX), LITEBUS_OK);
	waker_join(&w, t);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	waker_start(&w, &t, f->bus);
	assert_int_equal(litebus_reader_next(r, &row, INT_MAX), LITEBUS_OK);
	waker_join(&w, t);
	litebus_reader_close(r);
	litebus_unsubscribe(sub);
}

/* ------------------------------------------------------------------ */
/* 0 and 1                                                             */

/* litebus_recv(): "0 never waits". */
static void
recv_with_zero_returns_timeout_without_waiting(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	litebus_event ev;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	assert_int_equal(
	    atomic_load(&f->bus->channels[LITEBUS_COMPLETION]->sleepers), 0);
	litebus_unsubscribe(sub);
}

/* litebus_reader_next(): "0 never waits for a commit but may read up to
 * reader_batch rows from the table". */
static void
reader_next_with_zero_reads_the_table_but_never_waits_for_a_commit(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader_stats st;
	litebus_reader *r;
	litebus_row row;
	int64_t ids[10];

	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	/* The first call reads a page from the table: reader_batch rows. */
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_OK);
	assert_int_equal(row.event_id, ids[0]);
	assert_int_equal(litebus_reader_stats_get(r, &st), LITEBUS_OK);
	assert_int_equal(st.queries, 1);
	for (int i = 1; i < 10; i++) {
		assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_OK);
		assert_int_equal(row.event_id, ids[i]);
	}
	assert_int_equal(litebus_reader_stats_get(r, &st), LITEBUS_OK);
	assert_int_equal(st.queries, 1); /* 10 rows < one page of 256 */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(litebus_reader_next(r, &row, 0),
				 LITEBUS_TIMEOUT);
	assert_int_equal(
	    atomic_load(&f->bus->channels[LITEBUS_COMPLETION]->sleepers), 0);
	litebus_reader_close(r);
}

/* A reader_batch smaller than what is waiting: one call with timeout 0
 * reads one page, and each later call the next one. */
static void
reader_next_with_zero_reads_at_most_one_page_per_query(void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader_stats st;
	litebus_reader *r;
	litebus_row row;
	int64_t ids[10];

	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->opts.reader_batch = 4;
	fx_open(f);
	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_OK);
		assert_int_equal(row.event_id, ids[i]);
		assert_int_equal(litebus_reader_stats_get(r, &st), LITEBUS_OK);
		assert_int_equal(st.queries, (uint64_t)(i / 4 + 1));
	}
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	litebus_reader_close(r);
}

/* "a positive value waits up to that many milliseconds": 1 waits at
 * least 1 ms when nothing comes. */
static void
one_millisecond_waits_at_least_one_millisecond_then_times_out(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	litebus_reader *r;
	litebus_event ev;
	litebus_row row;
	uint64_t t0;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	for (int i = 0; i < 5; i++) {
		t0 = fx_mono_ns();
		assert_int_equal(litebus_recv(sub, &ev, 1), LITEBUS_TIMEOUT);
		assert_true(fx_mono_ns() - t0 >= 1000000u);
		t0 = fx_mono_ns();
		assert_int_equal(litebus_reader_next(r, &row, 1),
				 LITEBUS_TIMEOUT);
		assert_true(fx_mono_ns() - t0 >= 1000000u);
	}
	/* And returns what is there without waiting. */
	commit_events(f->bus, LITEBUS_COMPLETION, 1, NULL);
	assert_int_equal(litebus_recv(sub, &ev, 1), LITEBUS_OK);
	assert_int_equal(litebus_reader_next(r, &row, 1), LITEBUS_OK);
	litebus_reader_close(r);
	litebus_unsubscribe(sub);
}

/* ------------------------------------------------------------------ */
/* On the writer thread                                                */

/* What the calls returned on the writer thread. */
struct on_writer {
	litebus_sub *sub;
	litebus_reader *reader;
	litebus_sub *other_sub; /* of another bus */
	int64_t expect_id;	/* the event waiting for sub and reader */
	int recv_1, recv_minus_1, recv_int_max, recv_0, recv_0_again;
	int next_1, next_minus_1, next_0, next_0_again;
	int other_recv_1;
	int64_t recv_id, next_id, cursor_after_edeadlk;
	char msg[256];
};

static void
on_writer_calls(struct on_writer *w)
{
	litebus_event ev = {0};
	litebus_row row = {0};

	w->recv_1 = litebus_recv(w->sub, &ev, 1);
	snprintf(w->msg, sizeof w->msg, "%s", litebus_last_errmsg());
	w->recv_minus_1 = litebus_recv(w->sub, &ev, -1);
	w->recv_int_max = litebus_recv(w->sub, &ev, INT_MAX);
	w->recv_0 = litebus_recv(w->sub, &ev, 0);
	w->recv_id = ev.event_id;
	w->recv_0_again = litebus_recv(w->sub, &ev, 0);
	w->next_1 = litebus_reader_next(w->reader, &row, 1);
	w->next_minus_1 = litebus_reader_next(w->reader, &row, -1);
	w->cursor_after_edeadlk = litebus_reader_cursor(w->reader);
	w->next_0 = litebus_reader_next(w->reader, &row, 0);
	w->next_id = row.event_id;
	w->next_0_again = litebus_reader_next(w->reader, &row, 0);
	if (w->other_sub != NULL)
		w->other_recv_1 = litebus_recv(w->other_sub, &ev, 1);
}

static int
job_calls_on_writer(litebus_tx *tx, void *arg)
{
	(void)tx;
	on_writer_calls(arg);
	return 0;
}

static void
done_calls_on_writer(int status, void *arg)
{
	(void)status;
	on_writer_calls(arg);
}

static void
check_on_writer(const struct on_writer *w)
{
	if (w->recv_1 != LITEBUS_EDEADLK)
		fail_msg("recv(1) on the writer: %s",
			 litebus_errname(w->recv_1));
	assert_non_null(strstr(w->msg, "writer thread"));
	assert_int_equal(w->recv_minus_1, LITEBUS_EDEADLK);
	assert_int_equal(w->recv_int_max, LITEBUS_EDEADLK);
	/* "with 0 they work" */
	assert_int_equal(w->recv_0, LITEBUS_OK);
	assert_int_equal(w->recv_id, w->expect_id);
	assert_int_equal(w->recv_0_again, LITEBUS_TIMEOUT);
	assert_int_equal(w->next_1, LITEBUS_EDEADLK);
	assert_int_equal(w->next_minus_1, LITEBUS_EDEADLK);
	assert_int_equal(w->cursor_after_edeadlk, w->expect_id - 1);
	assert_int_equal(w->next_0, LITEBUS_OK);
	assert_int_equal(w->next_id, w->expect_id);
	assert_int_equal(w->next_0_again, LITEBUS_TIMEOUT);
}

static void
prepare_on_writer(struct bus_fixture *f, struct on_writer *w)
{
	memset(w, 0, sizeof *w);
	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &w->sub),
			 LITEBUS_OK);
	w->reader =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, &w->expect_id);
}

/* litebus.h, Threads and ownership: "From the writer thread, every call
 * that would wait for the writer itself returns LITEBUS_EDEADLK instead:
 * ... litebus_recv()/litebus_reader_next() with a timeout other than 0 on
 * a subscriber or reader of the same bus." - from inside a job. */
static void
waits_inside_a_job_are_edeadlk_and_timeout_zero_works(void **state)
{
	struct bus_fixture *f = *state;
	struct on_writer w;

	prepare_on_writer(f, &w);
	assert_int_equal(litebus_exec(f->bus, job_calls_on_writer, &w), 0);
	check_on_writer(&w);
	litebus_reader_close(w.reader);
	litebus_unsubscribe(w.sub);
}

/* The same from a done-callback. */
static void
waits_inside_a_done_callback_are_edeadlk_and_timeout_zero_works(void **state)
{
	struct bus_fixture *f = *state;
	struct on_writer w;

	prepare_on_writer(f, &w);
	assert_int_equal(
	    litebus_submit(f->bus, fx_noop_job, NULL, done_calls_on_writer, &w),
	    LITEBUS_OK);
	/* Queued behind it: once this returns, the callback has run. */
	assert_int_equal(litebus_exec(f->bus, fx_noop_job, NULL), 0);
	check_on_writer(&w);
	litebus_reader_close(w.reader);
	litebus_unsubscribe(w.sub);
}

/* "on a subscriber or reader of the same bus": a subscriber of another
 * bus may wait on this writer (litebus does not detect waits across
 * buses). */
static void
a_wait_on_another_buss_subscriber_is_allowed_on_the_writer(void **state)
{
	struct bus_fixture *f = *state;
	litebus_options o;
	litebus *other;
	struct on_writer w;

	litebus_options_init(&o); /* in memory */
	assert_int_equal(litebus_open(&o, &other), LITEBUS_OK);
	prepare_on_writer(f, &w);
	assert_int_equal(
	    litebus_subscribe(other, LITEBUS_COMPLETION, &w.other_sub),
	    LITEBUS_OK);
	assert_int_equal(litebus_exec(f->bus, job_calls_on_writer, &w), 0);
	check_on_writer(&w);
	assert_int_equal(w.other_recv_1, LITEBUS_TIMEOUT);
	litebus_unsubscribe(w.other_sub);
	litebus_reader_close(w.reader);
	litebus_unsubscribe(w.sub);
	assert_int_equal(litebus_close(other), LITEBUS_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_DEFAULT(recv_with_a_timeout_below_minus_one_is_einval_and_takes_nothing),
	    FX_TEST_DEFAULT(reader_next_with_a_timeout_below_minus_one_is_einval_and_keeps_the_cursor),
	    FX_TEST_DEFAULT(recv_with_minus_one_waits_for_a_commit_from_another_thread),
	    FX_TEST_DEFAULT(reader_next_with_minus_one_waits_for_a_commit_from_another_thread),
	    FX_TEST_DEFAULT(int_max_waits_like_any_positive_timeout),
	    FX_TEST_DEFAULT(recv_with_zero_returns_timeout_without_waiting),
	    FX_TEST_DEFAULT(reader_next_with_zero_reads_the_table_but_never_waits_for_a_commit),
	    FX_TEST_DEFAULT(reader_next_with_zero_reads_at_most_one_page_per_query),
	    FX_TEST_DEFAULT(one_millisecond_waits_at_least_one_millisecond_then_times_out),
	    FX_TEST_DEFAULT(waits_inside_a_job_are_edeadlk_and_timeout_zero_works),
	    FX_TEST_DEFAULT(waits_inside_a_done_callback_are_edeadlk_and_timeout_zero_works),
	    FX_TEST_DEFAULT(a_wait_on_another_buss_subscriber_is_allowed_on_the_writer),
	};

	return cmocka_run_group_tests_name("timeouts", tests, NULL, NULL);
}
