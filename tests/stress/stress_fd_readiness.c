/* SPDX-License-Identifier: MIT */
/*
 * stress_fd_readiness.c - for LITEBUS_STRESS_SECONDS (default 20), several
 * threads commit trickles and bursts on two channels while subscribers
 * and readers, each in its own thread, run level-triggered poll or epoll
 * loops on their fds.  After every TIMEOUT, a readable fd must mean that
 * the next call returns something (channel.c, C4); every event must
 * arrive (no lost wake-up), in order.
 *
 * LITEBUS_STRESS_THREADS sets the committing threads (default 4).
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
#include <unistd.h>

#include <cmocka.h>

enum { CHANNELS = 2, OWNERS_PER_CHANNEL = 4, MAX_COMMITTERS = 16 };
static const int channel_ids[CHANNELS] = {LITEBUS_COMPLETION,
					  LITEBUS_SIGNAL_DELIVERY};

static int
env_int(const char *name, int def)
{
	const char *v = getenv(name);

	return v != NULL && atoi(v) > 0 ? atoi(v) : def;
}

/* ------------------------------------------------------------------ */
/* Committers                                                          */

struct committer {
	litebus *bus;
	unsigned seed;
	uint64_t until_ms;
	int64_t committed[CHANNELS]; /* events committed per channel */
	int failed_rc;
};

/* Trickles (0..1 ms apart) with an occasional burst of up to 50 events
 * in one job; pauses shape the load, they synchronize nothing. */
static void *
committer_main(void *arg)
{
	struct committer *c = arg;

	while (fx_now_ms() < c->until_ms) {
		int ci = rand_r(&c->seed) % CHANNELS;
		struct fx_emit a = {
		    .channel = channel_ids[ci],
		    .count = rand_r(&c->seed) % 20 == 0
				 ? 1 + rand_r(&c->seed) % 50
				 : 1};
		struct timespec ts = {0,
				      (long)(rand_r(&c->seed) % 1001) * 1000};
		int rc = litebus_exec(c->bus, fx_emit_job, &a);

		if (rc != 0) {
			c->failed_rc = rc;
			return NULL;
		}
		c->committed[ci] += a.count;
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Owners                                                              */

struct owner {
	litebus *bus;
	int channel;
	bool is_reader, use_epoll;
	litebus_sub *sub;
	litebus_reader *reader;
	/* Set by the test's thread once the committers are done. */
	_Atomic int64_t expect;
	/* Results. */
	int64_t seen; /* delivered, or received + skipped */
	uint64_t rounds, stale;
	int bad_rc;
	bool out_of_order;
};

/* Take with timeout 0.  OK and LAGGED both count as "something". */
static int
owner_take(struct owner *o, int64_t *last)
{
	int rc;

	if (o->is_reader) {
		litebus_row row = {0};

		rc = litebus_reader_next(o->reader, &row, 0);
		if (rc == LITEBUS_OK) {
			if (row.event_id <= *last)
				o->out_of_order = true;
			*last = row.event_id;
			o->seen++;
		}
	} else {
		litebus_event ev = {0};

		rc = litebus_recv(o->sub, &ev, 0);
		if (rc == LITEBUS_OK) {
			if (ev.event_id <= *last)
				o->out_of_order = true;
			*last = ev.event_id;
			o->seen++;
		} else if (rc == LITEBUS_LAGGED) {
			o->seen += (int64_t)litebus_sub_skipped(o->sub);
		}
	}
	return rc;
}

static void *
owner_main(void *arg)
{
	struct owner *o = arg;
	int fd = o->is_reader ? litebus_reader_fd(o->reader)
			      : litebus_sub_fd(o->sub);
	int ep = -1, rc;
	int64_t last = 0;
	uint64_t deadline = 0;

	if (fd < 0) {
		o->bad_rc = fd;
		return NULL;
	}
	/* ep stays -1 without epoll: fx_fd_wait() then polls. */
	if (o->use_epoll && (ep = fx_epoll_watch(fd)) < 0) {
		o->bad_rc = LITEBUS_EINVAL;
		return NULL;
	}
	for (;;) {
		int64_t expect = atomic_load(&o->expect);

		if (expect >= 0 && o->seen >= expect)
			break;
		if (expect >= 0 && deadline == 0)
			deadline = fx_now_ms() + 60000;
		if (deadline != 0 && fx_now_ms() > deadline)
			break; /* reported as missing events */
		/* A server's timer: wake every millisecond, readable or not. */
		(void)fx_fd_wait(fd, ep, 1);
		while ((rc = owner_take(o, &last)) == LITEBUS_OK ||
		       rc == LITEBUS_LAGGED)
			;
		if (rc != LITEBUS_TIMEOUT) {
			o->bad_rc = rc;
			break;
		}
		o->rounds++;
		if (fx_fd_wait(fd, ep, 0)) {
			rc = owner_take(o, &last);
			if (rc == LITEBUS_TIMEOUT)
				o->stale++;
			else if (rc != LITEBUS_OK && rc != LITEBUS_LAGGED)
				o->bad_rc = rc;
		}
	}
	if (ep >= 0)
		close(ep);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The run                                                             */

static void
fds_stay_truthful_under_trickles_and_bursts(void **state)
{
	struct bus_fixture *f = *state;
	int seconds = env_int("LITEBUS_STRESS_SECONDS", 20);
	int ncommit = env_int("LITEBUS_STRESS_THREADS", 4);
	struct committer c[MAX_COMMITTERS];
	struct owner o[CHANNELS * OWNERS_PER_CHANNEL];
	pthread_t ct[MAX_COMMITTERS], ot[CHANNELS * OWNERS_PER_CHANNEL];
	int64_t total[CHANNELS] = {0};
	uint64_t rounds = 0;

	if (ncommit > MAX_COMMITTERS)
		ncommit = MAX_COMMITTERS;
	memset(o, 0, sizeof o);
	for (int i = 0; i < CHANNELS * OWNERS_PER_CHANNEL; i++) {
		o[i].bus = f->bus;
		o[i].channel = channel_ids[i / OWNERS_PER_CHANNEL];
		o[i].is_reader = (i % OWNERS_PER_CHANNEL) >= 2;
		o[i].use_epoll = i % 2 == 1;
		atomic_init(&o[i].expect, -1);
		if (o[i].is_reader)
			assert_int_equal(
			    litebus_reader_open(f->bus, o[i].channel,
						LITEBUS_FROM_NOW, NULL,
						&o[i].reader),
			    LITEBUS_OK);
		else
			assert_int_equal(
			    litebus_subscribe(f->bus, o[i].channel, &o[i].sub),
			    LITEBUS_OK);
		assert_int_equal(
		    pthread_create(&ot[i], NULL, owner_main, &o[i]), 0);
	}
	for (int i = 0; i < ncommit; i++) {
		memset(&c[i], 0, sizeof c[i]);
		c[i].bus = f->bus;
		c[i].seed = 1000u + (unsigned)i;
		c[i].until_ms = fx_now_ms() + (uint64_t)seconds * 1000u;
		assert_int_equal(
		    pthread_create(&ct[i], NULL, committer_main, &c[i]), 0);
	}
	for (int i = 0; i < ncommit; i++) {
		assert_int_equal(pthread_join(ct[i], NULL), 0);
		if (c[i].failed_rc != 0)
			fail_msg("committer %d: %s", i,
				 litebus_errname(c[i].failed_rc));
		for (int k = 0; k < CHANNELS; k++)
			total[k] += c[i].committed[k];
	}
	for (int i = 0; i < CHANNELS * OWNERS_PER_CHANNEL; i++)
		atomic_store(&o[i].expect, total[i / OWNERS_PER_CHANNEL]);
	for (int i = 0; i < CHANNELS * OWNERS_PER_CHANNEL; i++) {
		const char *what = o[i].is_reader ? "reader" : "subscriber";
		const char *loop = o[i].use_epoll ? "epoll" : "poll";

		assert_int_equal(pthread_join(ot[i], NULL), 0);
		if (o[i].bad_rc != 0)
			fail_msg("%s %d (%s): unexpected %s", what, i, loop,
				 litebus_errname(o[i].bad_rc));
		if (o[i].out_of_order)
			fail_msg("%s %d (%s): out of order", what, i, loop);
		if (o[i].stale != 0)
			fail_msg("%s %d (%s): readable with nothing to read "
				 "after %llu of %llu TIMEOUTs",
				 what, i, loop, (unsigned long long)o[i].stale,
				 (unsigned long long)o[i].rounds);
		if (o[i].seen != total[i / OWNERS_PER_CHANNEL])
			fail_msg("%s %d (%s): %lld of %lld events", what, i,
				 loop, (long long)o[i].seen,
				 (long long)total[i / OWNERS_PER_CHANNEL]);
		rounds += o[i].rounds;
		if (o[i].is_reader)
			litebus_reader_close(o[i].reader);
		else
			litebus_unsubscribe(o[i].sub);
	}
	print_message("      %d s, %lld + %lld events, %llu rounds over %d "
		      "fds\n",
		      seconds, (long long)total[0], (long long)total[1],
		      (unsigned long long)rounds,
		      CHANNELS * OWNERS_PER_CHANNEL);
}

static int
bus_with_small_rings(void **state)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	fx_make_dir(f);
	litebus_options_init(&f->opts);
	f->opts.ring_capacity =
	    64; /* bursts lap the subscribers now and then */
	fx_open(f);
	*state = f;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		fds_stay_truthful_under_trickles_and_bursts,
		bus_with_small_rings, bus_teardown),
	};

	return cmocka_run_group_tests_name("stress_fd_readiness", tests, NULL,
					   NULL);
}
