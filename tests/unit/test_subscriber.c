/* SPDX-License-Identifier: MIT */
/*
 * test_subscriber.c - subscribers (lib/subscriber.c) through the public
 * API: what a subscriber sees, exact lag accounting with 8-slot rings
 * (S1-S3), timeouts, wake-ups by commit and by close, the eventfd, misuse,
 * and the counters.
 */
/* syscall(SYS_gettid) is a GNU/BSD interface. */
#define _DEFAULT_SOURCE

#include "fixture.h"
#include "subscriber.h"

#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define CH LITEBUS_COMPLETION
#define TINY_RING 8

/* A non-NULL handle value, to see that a failing call sets *out to NULL. */
static char sentinel;
#define NOT_NULL_SUB ((litebus_sub *)(void *)&sentinel)

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

static litebus_sub *
subscribe(litebus *bus, int channel)
{
	litebus_sub *sub = NULL;
	int rc = litebus_subscribe(bus, channel, &sub);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_subscribe: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
	assert_non_null(sub);
	return sub;
}

static void
expect_recv(litebus_sub *sub, int timeout_ms, int want, litebus_event *ev)
{
	int rc = litebus_recv(sub, ev, timeout_ms);

	if (rc != want)
		fail_msg("litebus_recv: got %s, want %s", litebus_errname(rc),
			 litebus_errname(want));
}

static void
expect_event(litebus_sub *sub, int64_t id)
{
	litebus_event ev;

	expect_recv(sub, FX_WAIT_MS, LITEBUS_OK, &ev);
	assert_int_equal(ev.event_id, id);
}

static int
sub_fd(litebus_sub *sub)
{
	int fd = litebus_sub_fd(sub);

	if (fd < 0)
		fail_msg("litebus_sub_fd: %s: %s", litebus_errname(fd),
			 litebus_last_errmsg());
	return fd;
}

/* Bounded wait, by yielding, until `flag` is set by another thread. */
static void
wait_for_flag(_Atomic int *flag, const char *what)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	while (atomic_load_explicit(flag, memory_order_acquire) == 0) {
		if (fx_now_ms() > deadline)
			fail_msg("%s: not within %d ms", what, FX_WAIT_MS);
		sched_yield();
	}
}

/* Bounded wait until `n` threads sleep (or are about to) on the
 * subscriber's channel, inside litebus_recv. */
static void
wait_until_sleeping(litebus_sub *sub, unsigned n)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	while (atomic_load_explicit(&sub->ch->sleepers, memory_order_relaxed) <
	       n) {
		if (fx_now_ms() > deadline)
			fail_msg("no recv went to sleep within %d ms",
				 FX_WAIT_MS);
		sched_yield();
	}
}

/* ------------------------------------------------------------------ */
/* What a subscriber sees                                               */

/* litebus_subscribe(): "It sees every event published after this call
 * returns, in commit order." */
static void
a_subscriber_sees_only_events_published_after_it_subscribed(void **state)
{
	struct bus_fixture *f = *state;
	int64_t before[3], after[3];
	litebus_sub *sub;
	litebus_event ev;

	commit_events(f->bus, CH, 3, before);
	sub = subscribe(f->bus, CH);
	commit_events(f->bus, CH, 3, after);
	for (int i = 0; i < 3; i++)
		expect_event(sub, after[i]);
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	litebus_unsubscribe(sub);
}

/* The event carries the record as committed: id, partition key, channel,
 * subject length and prefix, commit time. */
static int
emit_subjects_fn(litebus_tx *tx, void *arg)
{
	int64_t *ids = arg;
	litebus_record rec = {0};
	int rc;

	rec.partition_key = -42;
	rec.event_type = "failed";
	rec.subject = "short";
	rec.subject_len = 5;
	rc = litebus_emit(tx, CH, &rec, &ids[0]);
	if (rc != LITEBUS_OK)
		return rc;
	rec.partition_key = INT64_MAX;
	rec.subject = "a subject longer than sixteen bytes";
	rec.subject_len = strlen(rec.subject);
	return litebus_emit(tx, CH, &rec, &ids[1]);
}

static void
an_event_carries_its_key_channel_subject_prefix_and_commit_time(void **state)
{
	struct bus_fixture *f = *state;
	unsigned char want[LITEBUS_SUBJECT_PREFIX] = {0};
	int64_t ids[2], t0, t1;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_event ev;

	t0 = fx_wall_ms();
	assert_int_equal(litebus_exec(f->bus, emit_subjects_fn, ids), 0);
	t1 = fx_wall_ms();

	expect_recv(sub, 0, LITEBUS_OK, &ev);
	assert_int_equal(ev.event_id, ids[0]);
	assert_int_equal(ev.partition_key, -42);
	assert_int_equal(ev.channel, CH);
	assert_int_equal(ev.subject_len, 5);
	/* "the rest of the array is zero" */
	memcpy(want, "short", 5);
	assert_memory_equal(ev.subject_prefix, want, sizeof want);
	assert_true(ev.committed_at_ms >= t0 && ev.committed_at_ms <= t1);

	expect_recv(sub, 0, LITEBUS_OK, &ev);
	assert_int_equal(ev.event_id, ids[1]);
	assert_int_equal(ev.partition_key, INT64_MAX);
	assert_int_equal(ev.subject_len,
			 strlen("a subject longer than sixteen bytes"));
	assert_memory_equal(ev.subject_prefix, "a subject longer",
			    LITEBUS_SUBJECT_PREFIX);
	litebus_unsubscribe(sub);
}

/* Commit order is event_id order, whichever thread committed. */
struct producer {
	litebus *bus;
	struct fx_barrier *start;
	int jobs;
	int failed_rc;
};

static void *
producer_main(void *p)
{
	struct producer *pr = p;

	fx_barrier_wait(pr->start);
	for (int i = 0; i < pr->jobs; i++) {
		struct fx_emit j = {
		    .channel = CH, .count = 1 + i % 3, .numbered = true};
		int rc = litebus_exec(pr->bus, fx_emit_job, &j);
		if (rc != 0 && pr->failed_rc == 0)
			pr->failed_rc = rc;
	}
	return NULL;
}

static void
events_from_concurrent_producers_arrive_in_commit_order(void **state)
{
	struct bus_fixture *f = *state; /* 4096-slot rings: no lag */
	enum { P = 4, JOBS = 150 };
	struct producer pr[P];
	pthread_t t[P];
	struct fx_barrier start;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_event ev;
	int total = 0;

	fx_barrier_init(&start, P);
	for (int p = 0; p < P; p++) {
		pr[p] = (struct producer){f->bus, &start, JOBS, 0};
		assert_int_equal(
		    pthread_create(&t[p], NULL, producer_main, &pr[p]), 0);
	}
	for (int p = 0; p < P; p++) {
		pthread_join(t[p], NULL);
		assert_int_equal(pr[p].failed_rc, 0);
	}
	fx_barrier_destroy(&start);
	for (int i = 0; i < JOBS; i++)
		total += P * (1 + i % 3);
	/* A fresh database: ids 1, 2, 3, ... in commit order. */
	for (int i = 1; i <= total; i++)
		expect_event(sub, i);
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	litebus_unsubscribe(sub);
}

/* Cursors live in the subscriber: one reading does not move another. */
static void
each_subscriber_reads_at_its_own_cursor(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[4];
	litebus_sub *a = subscribe(f->bus, CH), *b = subscribe(f->bus, CH);
	litebus_event ev;

	commit_events(f->bus, CH, 4, ids);
	for (int i = 0; i < 4; i++)
		expect_event(a, ids[i]);
	expect_recv(a, 0, LITEBUS_TIMEOUT, &ev);
	for (int i = 0; i < 4; i++)
		expect_event(b, ids[i]);
	litebus_unsubscribe(a);
	litebus_unsubscribe(b);
}

/* A subscriber does not see other channels' events. */
static void
a_subscriber_sees_only_its_own_channel(void **state)
{
	struct bus_fixture *f = *state;
	int64_t id;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_event ev;

	commit_events(f->bus, LITEBUS_LEASE_HISTORY, 3, NULL);
	commit_events(f->bus, CH, 1, &id);
	expect_event(sub, id);
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	litebus_unsubscribe(sub);
}

/* ------------------------------------------------------------------ */
/* Lag accounting (8-slot rings)                                        */

/* A ring holds `capacity` records: being exactly one ring behind loses
 * nothing. */
static void
a_subscriber_a_whole_ring_behind_loses_nothing(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[TINY_RING];
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_event ev;

	commit_events(f->bus, CH, TINY_RING, ids);
	for (int i = 0; i < TINY_RING; i++)
		expect_event(sub, ids[i]);
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	assert_int_equal(litebus_sub_skipped(sub), 0);
	litebus_unsubscribe(sub);
}

/* One more than the ring holds: the oldest is overwritten, so the
 * subscriber lags and resumes half a ring behind the head (S3): head 9,
 * resume at 9 + 1 - 4 = 6, so positions 1..5 are skipped. */
static void
one_event_more_than_the_ring_holds_is_reported_as_lagged(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[TINY_RING + 1];
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_event ev;

	commit_events(f->bus, CH, TINY_RING + 1, ids);
	expect_recv(sub, 0, LITEBUS_LAGGED, &ev);
	assert_int_equal(litebus_sub_skipped(sub), 5);
	for (int i = 5; i < TINY_RING + 1; i++)
		expect_event(sub, ids[i]);
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	litebus_unsubscribe(sub);
}

/* litebus_recv(): "LAGGED ... litebus_sub_skipped() tells exactly how
 * many were skipped; the next call continues with the event right after
 * them, with half a ring of headroom."  100 commits, not read: head 100,
 * resume at 97 (S3), 96 skipped, then the newest 4 in order. */
static void
a_lapped_subscriber_gets_the_exact_skip_count_then_the_newest_half_ring(
    void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[100];
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_event ev;

	commit_events(f->bus, CH, 100, ids);
	expect_recv(sub, 0, LITEBUS_LAGGED, &ev);
	assert_int_equal(litebus_sub_skipped(sub), 96);
	for (int i = 96; i < 100; i++)
		expect_event(sub, ids[i]);
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	litebus_unsubscribe(sub);
}

/* "LAGGED ... *ev is untouched." */
static void
lagged_leaves_the_event_untouched(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_event ev, pattern;

	memset(&pattern, 0xa5, sizeof pattern);
	ev = pattern;
	commit_events(f->bus, CH, 2 * TINY_RING, NULL);
	expect_recv(sub, 0, LITEBUS_LAGGED, &ev);
	assert_memory_equal(&ev, &pattern, sizeof ev);
	litebus_unsubscribe(sub);
}

/* litebus_sub_skipped(): "how many events the last LAGGED skipped (0
 * before any lag)". */
static void
skipped_is_zero_before_any_lag_and_counts_only_the_last_lag(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_sub_stats st;
	litebus_event ev;

	assert_int_equal(litebus_sub_skipped(sub), 0);
	commit_events(f->bus, CH, 3, NULL);
	expect_recv(sub, 0, LITEBUS_OK, &ev);
	assert_int_equal(litebus_sub_skipped(sub), 0);

	/* pos 2, head 30: resume at 27, 25 skipped. */
	commit_events(f->bus, CH, 27, NULL);
	expect_recv(sub, 0, LITEBUS_LAGGED, &ev);
	assert_int_equal(litebus_sub_skipped(sub), 25);
	/* pos 27, head 40: resume at 37, 10 skipped. */
	commit_events(f->bus, CH, 10, NULL);
	expect_recv(sub, 0, LITEBUS_LAGGED, &ev);
	assert_int_equal(litebus_sub_skipped(sub), 10);
	/* An OK does not reset it: it describes the last LAGGED. */
	expect_recv(sub, 0, LITEBUS_OK, &ev);
	assert_int_equal(litebus_sub_skipped(sub), 10);
	assert_int_equal(litebus_sub_stats_get(sub, &st), LITEBUS_OK);
	assert_int_equal(st.skipped, 35);
	assert_int_equal(st.lags, 2);
	litebus_unsubscribe(sub);
}

/* S2: "received + skipped == pos - p0": the subscriber reads a little
 * after every burst and is lapped again and again; each event it gets is
 * exactly the one the skip counts predict. */
static void
received_plus_skipped_equals_published_for_a_subscriber_that_lags_repeatedly(
    void **state)
{
	struct bus_fixture *f = *state;
	enum { ROUNDS = 12, BURST = 20 };
	int64_t ids[ROUNDS * BURST];
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_sub_stats st;
	litebus_event ev;
	int k = 0, rc; /* k: index of the next event the subscriber owes */

	for (int r = 0; r < ROUNDS; r++) {
		struct fx_emit j = {.channel = CH,
				    .count = BURST,
				    .numbered = true,
				    .ids = &ids[r * BURST]};
		fx_commit(f->bus, &j);
		for (int i = 0; i < 3; i++) {
			rc = litebus_recv(sub, &ev, 0);
			if (rc == LITEBUS_OK) {
				assert_int_equal(ev.event_id, ids[k]);
				k++;
			} else {
				assert_int_equal(rc, LITEBUS_LAGGED);
				k += (int)litebus_sub_skipped(sub);
			}
		}
	}
	while ((rc = litebus_recv(sub, &ev, 0)) != LITEBUS_TIMEOUT) {
		if (rc == LITEBUS_OK) {
			assert_int_equal(ev.event_id, ids[k]);
			k++;
		} else {
			assert_int_equal(rc, LITEBUS_LAGGED);
			k += (int)litebus_sub_skipped(sub);
		}
	}
	assert_int_equal(k, ROUNDS * BURST);
	assert_int_equal(litebus_sub_stats_get(sub, &st), LITEBUS_OK);
	assert_int_equal(st.received + st.skipped, ROUNDS * BURST);
	assert_int_equal(st.lags, ROUNDS);
	litebus_unsubscribe(sub);
}

/* The same accounting while the writer races ahead of the reader: lapped
 * or not, mid-read or not, no event is counted twice or lost from the
 * count. */
enum { RACE_JOBS = 200 };

/* Jobs of 1 to 17 events: some fit in the 8-slot ring, some lap it. */
static int
race_job_size(int i)
{
	return 1 + (i * 7) % 17;
}

struct racing_producer {
	litebus *bus;
	struct fx_barrier *start;
	int64_t *ids;
	int failed_rc;
};

static void *
racing_producer_main(void *p)
{
	struct racing_producer *pr = p;
	int64_t *ids = pr->ids;

	fx_barrier_wait(pr->start);
	for (int i = 0; i < RACE_JOBS; i++) {
		struct fx_emit j = {.channel = CH,
				    .count = race_job_size(i),
				    .numbered = true,
				    .ids = ids};
		int rc = litebus_exec(pr->bus, fx_emit_job, &j);
		if (rc != 0) {
			pr->failed_rc = rc;
			break;
		}
		ids += j.count;
	}
	return NULL;
}

static void
received_plus_skipped_equals_published_while_the_writer_races_ahead(
    void **state)
{
	struct bus_fixture *f = *state;
	static int64_t ids[RACE_JOBS * 17], got[RACE_JOBS * 17];
	struct racing_producer pr;
	struct fx_barrier start;
	pthread_t t;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_sub_stats st;
	litebus_event ev;
	int k = 0, rc, lags = 0, total = 0;

	for (int i = 0; i < RACE_JOBS; i++)
		total += race_job_size(i);
	memset(got, 0, sizeof got);
	fx_barrier_init(&start, 2);
	pr = (struct racing_producer){f->bus, &start, ids, 0};
	assert_int_equal(pthread_create(&t, NULL, racing_producer_main, &pr),
			 0);
	fx_barrier_wait(&start);
	while (k < total) {
		rc = litebus_recv(sub, &ev, FX_WAIT_MS);
		if (rc == LITEBUS_OK) {
			got[k++] = ev.event_id;
		} else if (rc == LITEBUS_LAGGED) {
			lags++;
			k += (int)litebus_sub_skipped(sub);
			assert_true(k <= total);
		} else {
			fail_msg("recv: %s after %d of %d", litebus_errname(rc),
				 k, total);
		}
	}
	pthread_join(t, NULL);
	fx_barrier_destroy(&start);
	assert_int_equal(pr.failed_rc, 0);
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	assert_int_equal(k, total);
	/* Every event received is the one committed at its position. */
	for (int i = 0; i < total; i++)
		if (got[i] != 0 && got[i] != ids[i])
			fail_msg("position %d: received event %lld, committed "
				 "%lld",
				 i, (long long)got[i], (long long)ids[i]);
	assert_int_equal(litebus_sub_stats_get(sub, &st), LITEBUS_OK);
	assert_int_equal(st.received + st.skipped, total);
	assert_int_equal(st.lags, lags);
	litebus_unsubscribe(sub);
}

/* ------------------------------------------------------------------ */
/* Timeouts and wake-ups                                                */

/* "TIMEOUT nothing arrived within timeout_ms (0 polls ...)". */
static void
recv_with_timeout_zero_polls_and_returns_timeout(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_event ev;

	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	litebus_unsubscribe(sub);
}

static void
recv_with_a_positive_timeout_returns_timeout_when_nothing_arrives(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_event ev;
	uint64_t t0 = fx_now_ms();

	expect_recv(sub, 30, LITEBUS_TIMEOUT, &ev);
	/* Not before the timeout (a millisecond of clock truncation aside);
	 * how much later is up to the scheduler and is not checked. */
	assert_true(fx_now_ms() - t0 >= 29);
	litebus_unsubscribe(sub);
}

struct recv_thread {
	litebus_sub *sub;
	struct fx_barrier *start;
	int timeout_ms;
	int max_events; /* stop after this many OK */
	/* Results, read by the main thread once `finished` is set. */
	int rc;
	int received;
	int64_t ids[8];
	_Atomic int finished;
};

static void *
recv_thread_main(void *p)
{
	struct recv_thread *rt = p;
	litebus_event ev;

	fx_barrier_wait(rt->start);
	for (;;) {
		rt->rc = litebus_recv(rt->sub, &ev, rt->timeout_ms);
		if (rt->rc != LITEBUS_OK)
			break;
		if (rt->received < 8)
			rt->ids[rt->received] = ev.event_id;
		if (++rt->received == rt->max_events)
			break;
	}
	atomic_store_explicit(&rt->finished, 1, memory_order_release);
	return NULL;
}

static void
recv_thread_start(struct recv_thread *rt, pthread_t *t,
		  struct fx_barrier *start, litebus_sub *sub, int max_events)
{
	memset(rt, 0, sizeof *rt);
	rt->sub = sub;
	rt->start = start;
	rt->timeout_ms = -1;
	rt->max_events = max_events;
	rt->rc = 99;
	atomic_init(&rt->finished, 0);
	fx_barrier_init(start, 2);
	assert_int_equal(pthread_create(t, NULL, recv_thread_main, rt), 0);
	fx_barrier_wait(start);
}

/* "-1 waits forever", until the next commit. */
static void
a_recv_blocked_forever_is_woken_by_a_commit(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	struct fx_barrier start;
	struct recv_thread rt;
	pthread_t t;
	int64_t id;

	recv_thread_start(&rt, &t, &start, sub, 1);
	wait_until_sleeping(sub, 1);
	commit_events(f->bus, CH, 1, &id);
	wait_for_flag(&rt.finished, "the blocked recv returning");
	pthread_join(t, NULL);
	fx_barrier_destroy(&start);
	assert_int_equal(rt.rc, LITEBUS_OK);
	assert_int_equal(rt.ids[0], id);
	litebus_unsubscribe(sub);
}

/* "CLOSED the bus has closed and every event published was returned":
 * a recv blocked forever drains what the closing bus still commits, then
 * returns CLOSED. */
static void
a_recv_blocked_forever_is_woken_by_close_and_drains_first(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	struct fx_barrier start;
	struct recv_thread rt;
	pthread_t t;
	int64_t ids[3];
	struct fx_emit jobs[3];
	litebus_event ev;

	recv_thread_start(&rt, &t, &start, sub, -1);
	wait_until_sleeping(sub, 1);
	/* Queued before close: close runs and publishes them. */
	for (int i = 0; i < 3; i++) {
		jobs[i] = (struct fx_emit){
		    .channel = CH, .numbered = true, .ids = &ids[i]};
		assert_int_equal(
		    litebus_submit(f->bus, fx_emit_job, &jobs[i], NULL, NULL),
		    LITEBUS_OK);
	}
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL; /* the subscriber keeps its memory alive */
	wait_for_flag(&rt.finished, "the blocked recv returning CLOSED");
	pthread_join(t, NULL);
	fx_barrier_destroy(&start);
	assert_int_equal(rt.rc, LITEBUS_CLOSED);
	assert_int_equal(rt.received, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rt.ids[i], ids[i]);
	/* And it stays CLOSED. */
	expect_recv(sub, 0, LITEBUS_CLOSED, &ev);
	expect_recv(sub, -1, LITEBUS_CLOSED, &ev);
	litebus_unsubscribe(sub);
}

/* ------------------------------------------------------------------ */
/* The eventfd                                                          */

/* litebus_sub_fd(): "Created on the first call and owned by the
 * subscriber."  It starts readable: events may be waiting. */
static void
the_fd_is_the_same_on_every_call_and_starts_readable(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	int fd = sub_fd(sub);

	assert_int_equal(sub_fd(sub), fd);
	assert_true(fx_fd_readable(fd, 0));
	litebus_unsubscribe(sub);
}

/* "It is level-triggered in effect: it becomes unreadable only when a
 * litebus_recv() call finds nothing to return". */
static void
the_fd_stays_readable_until_a_recv_finds_nothing(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	int fd = sub_fd(sub);
	litebus_event ev;

	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	assert_false(fx_fd_readable(fd, 0));
	commit_events(f->bus, CH, 3, NULL);
	assert_true(fx_fd_readable(fd, 0));
	for (int i = 0; i < 3; i++) {
		expect_recv(sub, 0, LITEBUS_OK, &ev);
		/* Read some, or all: still readable until a recv says
		 * TIMEOUT. */
		assert_true(fx_fd_readable(fd, 0));
	}
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	assert_false(fx_fd_readable(fd, 0));
	/* Polling again changes nothing. */
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	assert_false(fx_fd_readable(fd, 0));
	litebus_unsubscribe(sub);
}

/* "... and readable again when an event is published." */
static void
the_fd_turns_readable_again_at_the_next_commit(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	int fd = sub_fd(sub);
	litebus_event ev;

	for (int round = 0; round < 3; round++) {
		expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
		assert_false(fx_fd_readable(fd, 0));
		commit_events(f->bus, CH, 1, NULL);
		assert_true(fx_fd_readable(fd, 0));
		expect_recv(sub, 0, LITEBUS_OK, &ev);
	}
	litebus_unsubscribe(sub);
}

/* A recv that waited and then timed out also finds nothing: the fd turns
 * unreadable, and the next commit makes it readable. */
static void
a_recv_that_waits_then_times_out_also_turns_the_fd_unreadable(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	int fd = sub_fd(sub);
	litebus_event ev;

	expect_recv(sub, 5, LITEBUS_TIMEOUT, &ev);
	assert_false(fx_fd_readable(fd, 0));
	commit_events(f->bus, CH, 1, NULL);
	assert_true(fx_fd_readable(fd, 0));
	litebus_unsubscribe(sub);
}

/* Events on other channels do not make the fd readable. */
static void
commits_on_other_channels_leave_the_fd_unreadable(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	int fd = sub_fd(sub);
	litebus_event ev;

	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	commit_events(f->bus, LITEBUS_LEASE_HISTORY, 2, NULL);
	assert_false(fx_fd_readable(fd, 0));
	litebus_unsubscribe(sub);
}

/* "readable while events (or the CLOSED status) may be waiting". */
static void
the_fd_turns_readable_when_the_bus_closes(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	int fd = sub_fd(sub);
	litebus_event ev;

	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev);
	assert_false(fx_fd_readable(fd, 0));
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	assert_true(fx_fd_readable(fd, 0));
	expect_recv(sub, 0, LITEBUS_CLOSED, &ev);
	/* CLOSED stays waiting: the fd stays readable. */
	assert_true(fx_fd_readable(fd, 0));
	litebus_unsubscribe(sub);
}

/* For event loops: a poll() sleeping on the fd in another thread wakes up
 * at the commit. */
struct poll_thread {
	int fd;
	struct fx_barrier *start;
	pid_t tid;
	_Atomic int tid_known;
	int nready;
	short revents;
};

static void *
poll_thread_main(void *p)
{
	struct poll_thread *pt = p;
	struct pollfd pfd = {.fd = pt->fd, .events = POLLIN};

	pt->tid = (pid_t)syscall(SYS_gettid);
	atomic_store_explicit(&pt->tid_known, 1, memory_order_release);
	fx_barrier_wait(pt->start);
	pt->nready = poll(&pfd, 1, FX_WAIT_MS);
	pt->revents = pfd.revents;
	return NULL;
}

/* Bounded wait until thread `tid` is blocked in poll() (or ppoll()), as
 * /proc reports it.  Without /proc, go on: the test then still checks the
 * result, only perhaps without the thread having slept. */
static void
wait_until_blocked_in_poll(pid_t tid)
{
	char path[64];
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
	for (;;) {
		FILE *fp = fopen(path, "r");
		long nr = -1;
		if (fp == NULL)
			return;
		if (fscanf(fp, "%ld", &nr) != 1)
			nr = -1;
		fclose(fp);
#ifdef SYS_poll
		if (nr == SYS_poll)
			return;
#endif
#ifdef SYS_ppoll
		if (nr == SYS_ppoll)
			return;
#endif
		if (fx_now_ms() > deadline)
			fail_msg("the thread never blocked in poll()");
		sched_yield();
	}
}

static void
a_poll_sleeping_on_the_fd_is_woken_by_a_commit(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	struct fx_barrier start;
	struct poll_thread pt;
	pthread_t t;
	litebus_event ev;
	int64_t id;

	memset(&pt, 0, sizeof pt);
	pt.fd = sub_fd(sub);
	pt.start = &start;
	atomic_init(&pt.tid_known, 0);
	expect_recv(sub, 0, LITEBUS_TIMEOUT, &ev); /* unreadable now */
	fx_barrier_init(&start, 2);
	assert_int_equal(pthread_create(&t, NULL, poll_thread_main, &pt), 0);
	fx_barrier_wait(&start);
	assert_int_equal(atomic_load(&pt.tid_known), 1);
	wait_until_blocked_in_poll(pt.tid);
	commit_events(f->bus, CH, 1, &id);
	pthread_join(t, NULL); /* bounded: poll's own FX_WAIT_MS timeout */
	fx_barrier_destroy(&start);
	assert_int_equal(pt.nready, 1);
	assert_true((pt.revents & POLLIN) != 0);
	expect_event(sub, id);
	litebus_unsubscribe(sub);
}

/* ------------------------------------------------------------------ */
/* Misuse                                                               */

/* litebus_subscribe(): "EINVAL" for NULL arguments; *out is NULL after a
 * failure. */
static void
subscribe_with_null_arguments_is_einval(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = NOT_NULL_SUB;

	assert_int_equal(litebus_subscribe(NULL, CH, &sub), LITEBUS_EINVAL);
	assert_null(sub);
	assert_string_not_equal(litebus_last_errmsg(), "");
	assert_int_equal(litebus_subscribe(f->bus, CH, NULL), LITEBUS_EINVAL);
}

static void
subscribe_to_an_unknown_channel_is_enochannel(void **state)
{
	struct bus_fixture *f = *state;
	static const int bad[] = {-1, LITEBUS_BUILTIN_CHANNELS,
				  LITEBUS_MAX_CHANNELS, 1000};
	litebus_sub *sub;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sub = NOT_NULL_SUB;
		assert_int_equal(litebus_subscribe(f->bus, bad[i], &sub),
				 LITEBUS_ENOCHANNEL);
		assert_null(sub);
	}
}

/* "ECLOSED (bus closed)"; a live handle keeps the bus's memory valid, so
 * the call is safe to make. */
static void
subscribe_after_close_is_eclosed(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *keep = subscribe(f->bus, CH), *sub = NOT_NULL_SUB;
	litebus *bus = f->bus;

	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	f->bus = NULL;
	assert_int_equal(litebus_subscribe(bus, CH, &sub), LITEBUS_ECLOSED);
	assert_null(sub);
	litebus_unsubscribe(keep);
}

/* Every call taking a subscriber refuses NULL with EINVAL (or, for the
 * calls that cannot fail, does nothing). */
static void
calls_with_a_null_subscriber_or_event_are_einval(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_sub_stats st;
	litebus_event ev;

	assert_int_equal(litebus_recv(NULL, &ev, 0), LITEBUS_EINVAL);
	assert_int_equal(litebus_recv(sub, NULL, 0), LITEBUS_EINVAL);
	assert_int_equal(litebus_sub_fd(NULL), LITEBUS_EINVAL);
	assert_int_equal(litebus_sub_stats_get(NULL, &st), LITEBUS_EINVAL);
	assert_int_equal(litebus_sub_stats_get(sub, NULL), LITEBUS_EINVAL);
	assert_int_equal(litebus_sub_skipped(NULL), 0);
	litebus_unsubscribe(NULL); /* "NULL is a no-op." */
	litebus_unsubscribe(sub);
}

/* ------------------------------------------------------------------ */
/* Counters                                                             */

/* litebus_sub_stats: received, lags, skipped. */
static void
sub_stats_count_received_events_lags_and_skipped_events(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = subscribe(f->bus, CH);
	litebus_sub_stats st;
	litebus_event ev;

	assert_int_equal(litebus_sub_stats_get(sub, &st), LITEBUS_OK);
	assert_int_equal(st.received, 0);
	assert_int_equal(st.lags, 0);
	assert_int_equal(st.skipped, 0);
	commit_events(f->bus, CH, 100, NULL);
	while (litebus_recv(sub, &ev, 0) != LITEBUS_TIMEOUT)
		;
	assert_int_equal(litebus_sub_stats_get(sub, &st), LITEBUS_OK);
	assert_int_equal(st.received, 4);
	assert_int_equal(st.lags, 1);
	assert_int_equal(st.skipped, 96);
	litebus_unsubscribe(sub);
}

/* litebus_stats: "sub_lags LAGGED returned, all subscribers; sub_skipped
 * events skipped by those lags". */
static void
bus_stats_add_up_the_lags_of_every_subscriber(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *a = subscribe(f->bus, CH);
	litebus_sub *b = subscribe(f->bus, LITEBUS_LEASE_HISTORY);
	litebus_stats st0, st1;
	litebus_event ev;

	assert_int_equal(litebus_stats_get(f->bus, &st0), LITEBUS_OK);
	commit_events(f->bus, CH, 100, NULL);			/* 96 lost */
	commit_events(f->bus, LITEBUS_LEASE_HISTORY, 20, NULL); /* 16 lost */
	while (litebus_recv(a, &ev, 0) != LITEBUS_TIMEOUT)
		;
	while (litebus_recv(b, &ev, 0) != LITEBUS_TIMEOUT)
		;
	assert_int_equal(litebus_stats_get(f->bus, &st1), LITEBUS_OK);
	assert_int_equal(st1.sub_lags - st0.sub_lags, 2);
	assert_int_equal(st1.sub_skipped - st0.sub_skipped, 96 + 16);
	assert_int_equal(st1.events - st0.events, 120);
	assert_int_equal(litebus_stats_get(NULL, &st1), LITEBUS_EINVAL);
	assert_int_equal(litebus_stats_get(f->bus, NULL), LITEBUS_EINVAL);
	litebus_unsubscribe(a);
	litebus_unsubscribe(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(a_subscriber_sees_only_events_published_after_it_subscribed),
	    FX_TEST_TINY(an_event_carries_its_key_channel_subject_prefix_and_commit_time),
	    FX_TEST_DEFAULT(events_from_concurrent_producers_arrive_in_commit_order),
	    FX_TEST_TINY(each_subscriber_reads_at_its_own_cursor),
	    FX_TEST_TINY(a_subscriber_sees_only_its_own_channel),
	    FX_TEST_TINY(a_subscriber_a_whole_ring_behind_loses_nothing),
	    FX_TEST_TINY(one_event_more_than_the_ring_holds_is_reported_as_lagged),
	    FX_TEST_TINY(a_lapped_subscriber_gets_the_exact_skip_count_then_the_newest_half_ring),
	    FX_TEST_TINY(lagged_leaves_the_event_untouched),
	    FX_TEST_TINY(skipped_is_zero_before_any_lag_and_counts_only_the_last_lag),
	    FX_TEST_TINY(received_plus_skipped_equals_published_for_a_subscriber_that_lags_repeatedly),
	    FX_TEST_TINY(received_plus_skipped_equals_published_while_the_writer_races_ahead),
	    FX_TEST_TINY(recv_with_timeout_zero_polls_and_returns_timeout),
	    FX_TEST_TINY(recv_with_a_positive_timeout_returns_timeout_when_nothing_arrives),
	    FX_TEST_TINY(a_recv_blocked_forever_is_woken_by_a_commit),
	    FX_TEST_TINY(a_recv_blocked_forever_is_woken_by_close_and_drains_first),
	    FX_TEST_TINY(the_fd_is_the_same_on_every_call_and_starts_readable),
	    FX_TEST_TINY(the_fd_stays_readable_until_a_recv_finds_nothing),
	    FX_TEST_TINY(the_fd_turns_readable_again_at_the_next_commit),
	    FX_TEST_TINY(a_recv_that_waits_then_times_out_also_turns_the_fd_unreadable),
	    FX_TEST_TINY(commits_on_other_channels_leave_the_fd_unreadable),
	    FX_TEST_TINY(the_fd_turns_readable_when_the_bus_closes),
	    FX_TEST_TINY(a_poll_sleeping_on_the_fd_is_woken_by_a_commit),
	    FX_TEST_TINY(subscribe_with_null_arguments_is_einval),
	    FX_TEST_TINY(subscribe_to_an_unknown_channel_is_enochannel),
	    FX_TEST_TINY(subscribe_after_close_is_eclosed),
	    FX_TEST_TINY(calls_with_a_null_subscriber_or_event_are_einval),
	    FX_TEST_TINY(sub_stats_count_received_events_lags_and_skipped_events),
	    FX_TEST_TINY(bus_stats_add_up_the_lags_of_every_subscriber),
	};

	return cmocka_run_group_tests_name("subscriber", tests, NULL, NULL);
}
