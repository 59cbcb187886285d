/* SPDX-License-Identifier: MIT */
/*
 * test_races.c - misuse and races on the public surface.
 *
 * Threads subscribe and unsubscribe, open and close readers, and commit
 * jobs in loops while yet another thread closes the bus at a random
 * moment.  No crash, no hang, no leak (ASan), no race (TSan), and every
 * call returns a status its contract documents.  A "keeper" subscriber
 * holds the bus's memory (litebus.h: handles keep the bus alive), so calls
 * that start after close are defined and must say ECLOSED.
 *
 * Misbehaving callbacks are covered in test_writer.c: a done-callback may
 * submit (supported), exec or close from the writer thread is refused with
 * EDEADLK, and a long job only delays the jobs behind it.
 */
#include "fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define ROUNDS 12

struct race {
	litebus *bus;
	struct fx_barrier *start;
	unsigned seed;
	uint64_t calls;
	char bad[160]; /* first undocumented status seen */
};

static void
race_bad(struct race *r, const char *call, int rc)
{
	if (r->bad[0] == '\0')
		snprintf(r->bad, sizeof r->bad, "%s returned %s (%d): %s", call,
			 litebus_errname(rc), rc, litebus_last_errmsg());
}

static void *
producer_main(void *p)
{
	struct race *r = p;

	fx_barrier_wait(r->start);
	for (;;) {
		int rc = rand_r(&r->seed) % 2
			     ? litebus_exec(r->bus, fx_emit_one_job, NULL)
			     : litebus_submit(r->bus, fx_emit_one_job, NULL, NULL,
					      NULL);
		r->calls++;
		if (rc == LITEBUS_ECLOSED)
			break;
		if (rc != LITEBUS_OK)
			race_bad(r, "exec/submit", rc);
	}
	return NULL;
}

static void *
sub_churn_main(void *p)
{
	struct race *r = p;
	litebus_event ev;

	fx_barrier_wait(r->start);
	for (;;) {
		litebus_sub *s;
		int rc = litebus_subscribe(r->bus, LITEBUS_COMPLETION, &s);
		r->calls++;
		if (rc == LITEBUS_ECLOSED)
			break;
		if (rc != LITEBUS_OK) {
			race_bad(r, "subscribe", rc);
			break;
		}
		if (rand_r(&r->seed) % 2 && litebus_sub_fd(s) < 0)
			race_bad(r, "sub_fd", -1);
		for (int i = 0; i < 4; i++) {
			rc = litebus_recv(s, &ev, (int)(rand_r(&r->seed) % 2));
			if (rc != LITEBUS_OK && rc != LITEBUS_LAGGED &&
			    rc != LITEBUS_TIMEOUT && rc != LITEBUS_CLOSED)
				race_bad(r, "recv", rc);
		}
		litebus_unsubscribe(s);
	}
	return NULL;
}

static void *
reader_churn_main(void *p)
{
	struct race *r = p;
	litebus_row row;

	fx_barrier_wait(r->start);
	for (;;) {
		litebus_reader *rd;
		int64_t after = rand_r(&r->seed) % 2 ? LITEBUS_FROM_START
						     : LITEBUS_FROM_NOW;
		int rc = litebus_reader_open(r->bus, LITEBUS_COMPLETION, after,
					     NULL, &rd);
		r->calls++;
		if (rc == LITEBUS_ECLOSED)
			break;
		if (rc != LITEBUS_OK) {
			race_bad(r, "reader_open", rc);
			break;
		}
		int64_t last = 0;
		for (int i = 0; i < 8; i++) {
			rc = litebus_reader_next(rd, &row, 1);
			if (rc == LITEBUS_OK) {
				if (row.event_id <= last)
					race_bad(r, "reader order", rc);
				last = row.event_id;
			} else if (rc != LITEBUS_TIMEOUT &&
				   rc != LITEBUS_CLOSED) {
				race_bad(r, "reader_next", rc);
			}
		}
		litebus_reader_close(rd);
	}
	return NULL;
}

static void *
closer_main(void *p)
{
	struct race *r = p;
	struct timespec ts = {0, (long)(rand_r(&r->seed) % 20) * 1000000L};

	fx_barrier_wait(r->start);
	nanosleep(&ts, NULL); /* a random moment, not synchronization */
	int rc = litebus_close(r->bus);
	if (rc != LITEBUS_OK)
		race_bad(r, "close", rc);
	return NULL;
}

static void
close_during_churn_returns_documented_statuses_only(void **state)
{
	struct bus_fixture *f = *state;
	void *(*roles[])(void *) = {producer_main,     producer_main,
				    sub_churn_main,    sub_churn_main,
				    reader_churn_main, reader_churn_main,
				    closer_main};
	enum { N = sizeof roles / sizeof roles[0] };
	uint64_t total_calls = 0;

	for (int round = 0; round < ROUNDS; round++) {
		struct race r[N];
		pthread_t t[N];
		struct fx_barrier start;
		litebus_sub *keeper;

		if (round > 0)
			fx_open(f);
		assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION,
						   &keeper),
				 LITEBUS_OK);
		fx_barrier_init(&start, N);
		for (int i = 0; i < N; i++) {
			r[i] = (struct race){f->bus, &start,
					     (unsigned)(round * 31 + i), 0,
					     ""};
			assert_int_equal(
			    pthread_create(&t[i], NULL, roles[i], &r[i]), 0);
		}
		for (int i = 0; i < N; i++) {
			pthread_join(t[i], NULL);
			if (r[i].bad[0] != '\0')
				fail_msg("round %d thread %d: %s", round, i,
					 r[i].bad);
			total_calls += r[i].calls;
		}
		/* The keeper drains what was committed, then CLOSED. */
		litebus_event ev;
		int rc;
		uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
		while ((rc = litebus_recv(keeper, &ev, 100)) != LITEBUS_CLOSED) {
			assert_true(rc == LITEBUS_OK || rc == LITEBUS_LAGGED);
			if (fx_now_ms() > deadline)
				fail_msg("keeper never saw CLOSED");
		}
		litebus_unsubscribe(keeper); /* frees the bus */
		f->bus = NULL;
		fx_barrier_destroy(&start);
	}
	print_message("races: %d rounds, %llu calls\n", ROUNDS,
		      (unsigned long long)total_calls);
}

/* The same on an in-memory database: a reader opened while the bus closes
 * still finds the database (the bus keeps it alive). */
static int
memory_bus(void **state)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	litebus_options_init(&f->opts);
	f->opts.ring_capacity = 8;
	assert_int_equal(litebus_open(&f->opts, &f->bus), LITEBUS_OK);
	*state = f;
	return 0;
}

static void
close_during_churn_on_an_in_memory_database(void **state)
{
	struct bus_fixture *f = *state;

	for (int round = 0; round < ROUNDS / 2; round++) {
		struct race r[3];
		pthread_t t[3];
		struct fx_barrier start;
		litebus_sub *keeper;
		void *(*roles[3])(void *) = {producer_main, reader_churn_main,
					     closer_main};

		if (round > 0)
			assert_int_equal(litebus_open(&f->opts, &f->bus),
					 LITEBUS_OK);
		assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION,
						   &keeper),
				 LITEBUS_OK);
		fx_barrier_init(&start, 3);
		for (int i = 0; i < 3; i++) {
			r[i] = (struct race){f->bus, &start,
					     (unsigned)(round * 7 + i), 0, ""};
			assert_int_equal(
			    pthread_create(&t[i], NULL, roles[i], &r[i]), 0);
		}
		for (int i = 0; i < 3; i++) {
			pthread_join(t[i], NULL);
			if (r[i].bad[0] != '\0')
				fail_msg("round %d thread %d: %s", round, i,
					 r[i].bad);
		}
		litebus_unsubscribe(keeper);
		f->bus = NULL;
		fx_barrier_destroy(&start);
	}
}

/* Without a keeper: calls already in progress when the last close runs
 * keep the bus alive until they return (bus.c, B1).  The writer is held
 * inside a job while execs queue behind it and close begins, so every exec
 * has certainly started before close returns; ASan checks that none of
 * them touches freed memory, whichever of them frees the bus. */
struct inflight {
	litebus *bus;
	struct fx_barrier *hold;
	int rc;
};

static int
inflight_hold_job(litebus_tx *tx, void *arg)
{
	struct fx_barrier *hold = arg;

	(void)tx;
	fx_barrier_wait(hold); /* the writer is busy */
	fx_barrier_wait(hold); /* released: close has begun */
	return 0;
}

static void *
inflight_exec_main(void *p)
{
	struct inflight *a = p;

	a->rc = litebus_exec(a->bus, fx_emit_one_job, NULL);
	return NULL;
}

static void *
inflight_close_main(void *p)
{
	struct inflight *a = p;

	a->rc = litebus_close(a->bus);
	return NULL;
}

static void
execs_in_progress_at_the_last_close_complete_without_a_keeper(void **state)
{
	enum { EXECS = 6 };
	litebus_options o;

	(void)state;
	litebus_options_init(&o);
	o.ring_capacity = 8;
	for (int round = 0; round < 50; round++) {
		struct fx_barrier hold;
		struct inflight ex[EXECS], cl;
		pthread_t t[EXECS], tc;
		litebus *bus;

		assert_int_equal(litebus_open(&o, &bus), LITEBUS_OK);
		fx_barrier_init(&hold, 2);
		assert_int_equal(litebus_submit(bus, inflight_hold_job, &hold,
						NULL, NULL),
				 LITEBUS_OK);
		fx_barrier_wait(&hold); /* the writer is inside the job */
		for (int i = 0; i < EXECS; i++) {
			ex[i] = (struct inflight){bus, NULL, -99};
			assert_int_equal(pthread_create(&t[i], NULL,
							inflight_exec_main,
							&ex[i]),
					 0);
		}
		/* Every exec is queued before close begins (and close then
		 * waits for the writer, which is still held). */
		uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
		litebus_stats st;
		do {
			assert_int_equal(litebus_stats_get(bus, &st),
					 LITEBUS_OK);
			if (fx_now_ms() > deadline)
				fail_msg("the execs never queued");
		} while (st.queued < EXECS);
		cl = (struct inflight){bus, NULL, -99};
		assert_int_equal(
		    pthread_create(&tc, NULL, inflight_close_main, &cl), 0);
		fx_barrier_wait(&hold); /* let the writer go */
		pthread_join(tc, NULL);
		assert_int_equal(cl.rc, LITEBUS_OK);
		for (int i = 0; i < EXECS; i++) {
			pthread_join(t[i], NULL);
			/* Queued before close began: each one ran. */
			if (ex[i].rc != 0)
				fail_msg("round %d exec %d returned %s", round,
					 i, litebus_errname(ex[i].rc));
		}
		fx_barrier_destroy(&hold);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(close_during_churn_returns_documented_statuses_only),
	    FX_TEST_WITH(close_during_churn_on_an_in_memory_database, memory_bus),
	    cmocka_unit_test(
		execs_in_progress_at_the_last_close_complete_without_a_keeper),
	};

	return cmocka_run_group_tests_name("races", tests, NULL, NULL);
}
