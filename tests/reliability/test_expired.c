/* SPDX-License-Identifier: MIT */
/*
 * test_expired.c - pruning while readers follow: every row each reader
 * was owed is either delivered or reported in a LITEBUS_EXPIRED range,
 * exactly once; nothing is skipped silently, nothing is delivered twice,
 * and no id that never committed is delivered (reader.c D7,
 * retention.c P1).
 */
#include "fixture.h"

#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define TOTAL_JOBS 600
#define MAX_PER_JOB 16
#define MAX_IDS (TOTAL_JOBS * MAX_PER_JOB + 1)

struct run {
	litebus *bus;
	struct fx_barrier start;
	/* What committed: written by the producer, read after the join
	 * (or after `done`, an acquire that pairs with its release). */
	unsigned char committed[MAX_IDS];
	unsigned char ns[MAX_IDS];  /* 0: "ns0", 1: "ns1" */
	_Atomic int64_t final_head; /* 0 until the producer is done */
};

struct follower {
	struct run *run;
	const char *name;
	const litebus_filter *filter;
	bool slow;
	bool late; /* opens once some rows were pruned */
	/* Results, read after the join. */
	unsigned char delivered[MAX_IDS];
	unsigned char expired[MAX_IDS];
	uint64_t expirations;
	char error[200];
};

/* Load shaping (a slow consumer), not synchronization. */
static void
pause_a_little(void)
{
	struct timespec ts = {0, 1000000};

	nanosleep(&ts, NULL);
}

static void *
producer_main(void *p)
{
	struct run *run = p;
	unsigned seed = 7;
	int64_t head = 0;

	fx_barrier_wait(&run->start);
	for (int j = 0; j < TOTAL_JOBS; j++) {
		int64_t ids[MAX_PER_JOB];
		struct fx_emit e = {
		    .channel = LITEBUS_COMPLETION,
		    .count =
			1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) %
				MAX_PER_JOB,
		    .numbered = true,
		    .partition_key = j,
		    .ids = ids,
		    .fail = j % 13 == 5, /* its ids are never committed */
		};
		int rc = litebus_exec(run->bus, fx_emit_job, &e);

		if (rc != (e.fail ? JOB_FAILED : 0)) {
			fprintf(stderr, "producer: %s %s\n",
				litebus_errname(rc), litebus_last_errmsg());
			abort();
		}
		for (int i = 0; i < e.count; i++) {
			if (!e.fail)
				run->committed[ids[i]] = 1;
			run->ns[ids[i]] = (unsigned char)((j + i) % 2);
			if (ids[i] > head)
				head = ids[i];
		}
	}
	/* Pairs with the acquire in follower_main. */
	atomic_store_explicit(&run->final_head, head, memory_order_release);
	return NULL;
}

static bool follower_fail(struct follower *fl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record the follower's first failure; returns false. */
static bool
follower_fail(struct follower *fl, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(fl->error, sizeof fl->error, "%s: %s", fl->name, what);
	return false;
}

static bool
follower_run(struct follower *fl)
{
	struct run *run = fl->run;
	uint64_t deadline = fx_now_ms() + 60000;
	litebus_reader *r = NULL;
	int64_t cursor = 0, n = 0;
	int rc;

	if (fl->late) {
		int64_t h, o = 0;

		while (o <= 1) {
			if (fx_now_ms() > deadline)
				return follower_fail(fl, "nothing was pruned");
			rc = litebus_channel_head(run->bus, LITEBUS_COMPLETION,
						  &h, &o);
			if (rc != LITEBUS_OK)
				return follower_fail(fl, "head: %s",
						     litebus_errname(rc));
			sched_yield();
		}
	}
	rc = litebus_reader_open(run->bus, LITEBUS_COMPLETION,
				 LITEBUS_FROM_START, fl->filter, &r);
	if (rc != LITEBUS_OK)
		return follower_fail(fl, "open: %s", litebus_errname(rc));
	for (;;) {
		litebus_row row;
		int64_t a, b;

		if (fx_now_ms() > deadline) {
			litebus_reader_close(r);
			return follower_fail(fl, "stuck at %lld",
					     (long long)cursor);
		}
		rc = litebus_reader_next(r, &row, 50);
		if (rc == LITEBUS_OK) {
			if (row.event_id <= cursor || row.event_id >= MAX_IDS) {
				litebus_reader_close(r);
				return follower_fail(
				    fl, "row %lld after cursor %lld",
				    (long long)row.event_id, (long long)cursor);
			}
			fl->delivered[row.event_id]++;
			cursor = row.event_id;
			if (fl->slow && ++n % 8 == 0)
				pause_a_little();
		} else if (rc == LITEBUS_EXPIRED) {
			assert_int_equal(litebus_reader_expired(r, &a, &b),
					 LITEBUS_OK);
			if (a != cursor + 1 || b < a || b >= MAX_IDS) {
				litebus_reader_close(r);
				return follower_fail(
				    fl,
				    "expired range starts at %lld, cursor "
				    "%lld",
				    (long long)a, (long long)cursor);
			}
			for (int64_t id = a; id <= b; id++)
				fl->expired[id]++;
			fl->expirations++;
			cursor = b;
		} else if (rc == LITEBUS_TIMEOUT) {
			/* Pairs with the release in producer_main. */
			int64_t head = atomic_load_explicit(
			    &run->final_head, memory_order_acquire);

			if (head != 0 && litebus_reader_cursor(r) >= head)
				break;
		} else {
			litebus_reader_close(r);
			return follower_fail(fl, "next: %s %s",
					     litebus_errname(rc),
					     litebus_last_errmsg());
		}
		/* The cursor may pass rows the filter rejects (or ids that
		 * never committed), never a row it returned or lost. */
		if (litebus_reader_cursor(r) < cursor ||
		    (rc == LITEBUS_EXPIRED &&
		     litebus_reader_cursor(r) != cursor)) {
			litebus_reader_close(r);
			return follower_fail(
			    fl, "cursor %lld, expected %lld",
			    (long long)litebus_reader_cursor(r),
			    (long long)cursor);
		}
		cursor = litebus_reader_cursor(r);
	}
	litebus_reader_close(r);
	return true;
}

static void *
follower_main(void *p)
{
	struct follower *fl = p;

	fx_barrier_wait(&fl->run->start);
	(void)follower_run(fl);
	return NULL;
}

/* Header, litebus_reader_next: "EXPIRED is returned once per loss, never
 * silently skipped"; litebus_retention: "Readers and consumers that had
 * not read a pruned row get LITEBUS_EXPIRED with the exact range of ids
 * ... nothing is skipped silently." */
static void
readers_following_a_pruned_channel_get_each_row_or_its_expiry_once(void **state)
{
	struct bus_fixture *f = *state;
	litebus_retention policy[] = {{.channel = "completion", .max_rows = 40},
				      {0}};
	static const litebus_filter even = {.any_partition = 1, .ns = "ns0"};
	struct run *run = calloc(1, sizeof *run);
	struct follower *fl = calloc(4, sizeof *fl);
	pthread_t pt, ft[4];
	uint64_t expirations = 0;
	int64_t head;

	assert_non_null(run);
	assert_non_null(fl);
	litebus_options_init(&f->opts);
	f->opts.ring_capacity = 8;
	f->opts.retention = policy;
	f->opts.prune_interval_ms = 1;
	f->opts.prune_batch_rows = 7;
	fx_open(f);
	run->bus = f->bus;
	fx_barrier_init(&run->start, 5);
	fl[0] = (struct follower){.run = run, .name = "fast"};
	fl[1] = (struct follower){.run = run, .name = "slow", .slow = true};
	fl[2] = (struct follower){.run = run, .name = "late", .late = true};
	fl[3] = (struct follower){
	    .run = run, .name = "filtered", .filter = &even, .slow = true};
	for (int i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&ft[i], NULL, follower_main, &fl[i]), 0);
	assert_int_equal(pthread_create(&pt, NULL, producer_main, run), 0);
	assert_int_equal(pthread_join(pt, NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(ft[i], NULL), 0);
	fx_barrier_destroy(&run->start);
	head = atomic_load_explicit(&run->final_head, memory_order_relaxed);

	for (int i = 0; i < 4; i++) {
		if (fl[i].error[0] != '\0')
			fail_msg("%s", fl[i].error);
		for (int64_t id = 1; id <= head; id++) {
			int d = fl[i].delivered[id], x = fl[i].expired[id];
			/* Event i of job j has namespace "ns<(j + i) % 2>". */
			bool match = fl[i].filter == NULL || run->ns[id] == 0;
			bool owed = run->committed[id] && match;

			if (d + x > 1)
				fail_msg("%s: id %lld delivered %d times and "
					 "expired %d times",
					 fl[i].name, (long long)id, d, x);
			if (d > 0 && !owed)
				fail_msg("%s: id %lld was delivered but never "
					 "committed or does not match",
					 fl[i].name, (long long)id);
			if (owed && d + x == 0)
				fail_msg("%s: id %lld was skipped silently",
					 fl[i].name, (long long)id);
		}
		expirations += fl[i].expirations;
		print_message("%s: %llu expirations\n", fl[i].name,
			      (unsigned long long)fl[i].expirations);
	}
	/* The late reader opened after rows were pruned: it was told. */
	assert_true(fl[2].expirations > 0);
	assert_true(expirations > 0);
	free(fl);
	free(run);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(
		readers_following_a_pruned_channel_get_each_row_or_its_expiry_once),
	};

	return cmocka_run_group_tests_name("expired", tests, NULL, NULL);
}
