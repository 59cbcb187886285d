/* SPDX-License-Identifier: MIT */
/*
 * test_fd_readiness.c - the pollable fds of subscribers and readers never
 * stay readable with nothing to read (channel.c, C4).
 *
 * The fault: between clearing a waiter's "armed" flag and writing its
 * eventfd, the writer could be overtaken by the owner, which read the new
 * record, found nothing more, drained and re-armed; the late write then
 * left the fd readable, and no later call drained it until the next
 * commit.  A level-triggered poll or epoll loop spun through every quiet
 * period.
 *
 * Two kinds of tests: the bad interleavings driven step by step on a bare
 * channel (the test's thread plays both the writer and the owner), and the
 * issue's workload end to end: a thread commits a trickle of events, the
 * owner runs a level-triggered poll (or epoll) loop, and after every
 * TIMEOUT a readable fd must mean that the next call returns something.
 */
#include "channel.h"
#include "fixture.h"
#include "role.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* Identity of the writer role the test threads claim (role.h). */
static const char test_writer_role;

/* Events per end-to-end run: one poll round or more each. */
#define TRICKLE_EVENTS 2000
/* The committer pauses 0 .. this many microseconds between commits. */
#define TRICKLE_MAX_PAUSE_US 1000

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* The eventfd's count, read (and so drained) directly. */
static uint64_t
fd_count(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
		return 0; /* EAGAIN: the count is 0 */
	return v;
}

static struct lb_channel *
channel_new(void)
{
	struct lb_channel *ch =
	    aligned_alloc(LB_CACHELINE, (sizeof *ch + LB_CACHELINE - 1) &
					    ~(size_t)(LB_CACHELINE - 1));

	assert_non_null(ch);
	assert_int_equal(
	    lb_channel_init(ch, LITEBUS_COMPLETION, "completion", 8, 0), 0);
	return ch;
}

static int
channel_setup(void **state)
{
	*state = channel_new();
	return 0;
}

static int
channel_teardown(void **state)
{
	struct lb_channel *ch = *state;

	lb_channel_fini(ch);
	free(ch);
	return 0;
}

/* The writer's side of one record: publish, then wake (once per batch). */
static void
waiter_open(struct lb_channel *ch, struct lb_fd_waiter *w)
{
	memset(w, 0, sizeof *w);
	atomic_init(&w->armed, 0);
	w->fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(w->fd >= 0);
	lb_channel_fd_register(ch, w);
}

static void
waiter_close(struct lb_channel *ch, struct lb_fd_waiter *w)
{
	lb_channel_fd_unregister(ch, w);
	assert_int_equal(close(w->fd), 0);
}

/* ------------------------------------------------------------------ */
/* The interleavings, step by step                                     */

/*
 * C4 (b): the writer publishes record 1 while the owner is armed for it;
 * before the writer's wake-up gets to the waiter, the owner reads record 1,
 * finds nothing more and re-arms for position 2.  The late wake-up must not
 * make the fd readable: nothing is left to read.
 * litebus_sub_fd(): "After litebus_recv() returned TIMEOUT, the fd is
 * readable only once something was published or the bus closed."
 */
static void
a_late_wake_up_for_a_record_already_read_leaves_the_fd_unreadable(void **state)
{
	struct lb_channel *ch = *state;
	struct lb_fd_waiter w;

	waiter_open(ch, &w);
	lb_channel_fd_arm(ch, &w, 1, INT64_MAX); /* recv found nothing at position 1 */
	assert_false(fx_fd_readable(w.fd, 0));
	fx_channel_publish_one(ch);	      /* the writer publishes position 1 */
	lb_channel_fd_arm(ch, &w, 2, INT64_MAX); /* the owner read it; nothing at 2 */
	lb_channel_wake(ch);	      /* the writer's wake-up comes late */
	if (fx_fd_readable(w.fd, 0))
		fail_msg("the fd is readable after the owner read everything "
			 "and re-armed: the late wake-up for position 1 was "
			 "written");
	/* And the next record still wakes it (no lost wake-up). */
	fx_channel_publish_one(ch);
	lb_channel_wake(ch);
	assert_true(fx_fd_readable(w.fd, 0));
	assert_int_equal(fd_count(w.fd), 1);
	waiter_close(ch, &w);
}

/* The same, with the owner re-arming several times before the late
 * wake-up: every idle call that finds nothing leaves the fd unreadable. */
static void
repeated_idle_calls_while_a_wake_up_is_late_leave_the_fd_unreadable(
    void **state)
{
	struct lb_channel *ch = *state;
	struct lb_fd_waiter w;

	waiter_open(ch, &w);
	lb_channel_fd_arm(ch, &w, 1, INT64_MAX);
	fx_channel_publish_one(ch);
	for (int i = 0; i < 3; i++) {
		lb_channel_fd_arm(ch, &w, 2, INT64_MAX);
		assert_false(fx_fd_readable(w.fd, 0));
	}
	lb_channel_wake(ch);
	assert_false(fx_fd_readable(w.fd, 0));
	assert_int_equal(atomic_load(&ch->armed_fds), 1); /* still owed */
	waiter_close(ch, &w);
	assert_int_equal(atomic_load(&ch->armed_fds), 0);
}

/* C4 (c): a record published between the owner's last look and its
 * arming is seen by the arming itself: the fd is readable at once, and
 * the writer's wake-up that follows does not write a second time (C4 d:
 * one write per arming). */
static void
a_record_published_just_before_arming_makes_the_fd_readable_once(void **state)
{
	struct lb_channel *ch = *state;
	struct lb_fd_waiter w;

	waiter_open(ch, &w);
	lb_channel_fd_arm(ch, &w, 1, INT64_MAX);
	fx_channel_publish_one(ch);
	lb_channel_fd_arm(ch, &w, 1, INT64_MAX); /* still nothing read at 1: re-armed */
	assert_true(fx_fd_readable(w.fd, 0));
	lb_channel_wake(ch);
	assert_int_equal(fd_count(w.fd), 1);
	assert_int_equal(atomic_load(&ch->armed_fds), 0);
	waiter_close(ch, &w);
}

/* A waiter armed for a later position than the writer has reached is not
 * written to, and stays armed until its position is published. */
static void
a_wake_up_below_the_armed_position_writes_nothing(void **state)
{
	struct lb_channel *ch = *state;
	struct lb_fd_waiter w;

	waiter_open(ch, &w);
	lb_channel_fd_arm(ch, &w, 3, INT64_MAX);
	fx_channel_publish_one(ch);
	lb_channel_wake(ch);
	fx_channel_publish_one(ch);
	lb_channel_wake(ch);
	assert_false(fx_fd_readable(w.fd, 0));
	fx_channel_publish_one(ch);
	lb_channel_wake(ch);
	assert_true(fx_fd_readable(w.fd, 0));
	assert_int_equal(fd_count(w.fd), 1);
	waiter_close(ch, &w);
}

/* Close writes to every fd, armed for whatever position. */
static void
close_makes_an_fd_armed_beyond_the_head_readable(void **state)
{
	struct lb_channel *ch = *state;
	struct lb_fd_waiter w;

	waiter_open(ch, &w);
	lb_channel_fd_arm(ch, &w, 5, INT64_MAX);
	assert_false(fx_fd_readable(w.fd, 0));
	lb_channel_close(ch);
	assert_true(fx_fd_readable(w.fd, 0));
	assert_int_equal(atomic_load(&ch->armed_fds), 0);
	waiter_close(ch, &w);
}

/* ------------------------------------------------------------------ */
/* End to end: a trickle of commits and a level-triggered loop         */

struct trickle {
	litebus *bus;
	int channel;
	int count;
	unsigned seed;
	/* Set by the committer if a commit failed (checked after join). */
	_Atomic int failed_rc;
};

/* Commits t->count events, one per job, pausing 0..1 ms between them:
 * the pauses shape the load (the trickle), they synchronize
 * nothing. */
static void *
trickle_main(void *arg)
{
	struct trickle *t = arg;
	struct fx_emit one = {.channel = t->channel};

	for (int i = 0; i < t->count; i++) {
		int rc = litebus_exec(t->bus, fx_emit_job, &one);
		unsigned pause_us =
		    (unsigned)rand_r(&t->seed) % (TRICKLE_MAX_PAUSE_US + 1);
		struct timespec ts = {0, (long)pause_us * 1000};

		if (rc != 0) {
			atomic_store(&t->failed_rc, rc);
			return NULL;
		}
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	return NULL;
}

/* A subscriber or a reader behind one interface. */
struct handle {
	litebus_sub *sub;
	litebus_reader *reader;
};

static int
handle_fd(struct handle *h)
{
	return h->sub != NULL ? litebus_sub_fd(h->sub)
			      : litebus_reader_fd(h->reader);
}

/* recv / reader_next with timeout 0; *id is the event's id on OK. */
static int
handle_take(struct handle *h, int64_t *id)
{
	int rc;

	if (h->sub != NULL) {
		litebus_event ev = {0};
		rc = litebus_recv(h->sub, &ev, 0);
		*id = ev.event_id;
	} else {
		litebus_row row = {0};
		rc = litebus_reader_next(h->reader, &row, 0);
		*id = row.event_id;
	}
	return rc;
}

enum loop_kind { LOOP_POLL, LOOP_EPOLL };

/* One owner: a thread running a level-triggered loop on its handle's fd.
 * Results are read by the test's thread after the join (cmocka's checks
 * run there only). */
struct owner {
	struct handle h;
	enum loop_kind kind;
	uint64_t deadline_ms;
	int received, rounds, stale;
	int bad_rc; /* a status no call should have returned, or 0 */
	bool out_of_order;
	bool quiet_readable; /* readable in the quiet period at the end */
};

static void
owner_got(struct owner *o, int64_t id, int64_t *last)
{
	if (id <= *last)
		o->out_of_order = true;
	*last = id;
	o->received++;
}

/*
 * The owner's loop.  On each wake-up: take until TIMEOUT.  Right after
 * each TIMEOUT, look at the fd without waiting: if it is readable, the
 * next call must return something (a record was published meanwhile).
 * A server's loop also wakes for its timers and other fds: a wake-up
 * every millisecond, readable or not, lets the owner run while the
 * writer is between deciding to wake it and writing its fd.
 */
static void *
owner_main(void *arg)
{
	struct owner *o = arg;
	int fd = handle_fd(&o->h), ep = -1, rc;
	int64_t last = 0, id;

	if (fd < 0) {
		o->bad_rc = fd;
		return NULL;
	}
	/* ep stays -1 for LOOP_POLL: fx_fd_wait() then polls. */
	if (o->kind == LOOP_EPOLL && (ep = fx_epoll_watch(fd)) < 0) {
		o->bad_rc = LITEBUS_EINVAL;
		return NULL;
	}
	while (o->received < TRICKLE_EVENTS && fx_now_ms() < o->deadline_ms) {
		(void)fx_fd_wait(fd, ep, 1);
		while ((rc = handle_take(&o->h, &id)) == LITEBUS_OK)
			owner_got(o, id, &last);
		if (rc != LITEBUS_TIMEOUT) {
			o->bad_rc = rc;
			break;
		}
		o->rounds++;
		if (fx_fd_wait(fd, ep, 0)) {
			rc = handle_take(&o->h, &id);
			if (rc == LITEBUS_TIMEOUT)
				o->stale++;
			else if (rc == LITEBUS_OK)
				owner_got(o, id, &last);
			else
				o->bad_rc = rc;
		}
	}
	/* The quiet period after the last commit: TIMEOUT, then unreadable,
	 * so an epoll server sleeps. */
	if (o->bad_rc == 0 && o->received == TRICKLE_EVENTS) {
		rc = handle_take(&o->h, &id);
		if (rc != LITEBUS_TIMEOUT)
			o->bad_rc = rc;
		o->quiet_readable = fx_fd_wait(fd, ep, 0);
	}
	if (ep >= 0)
		close(ep);
	return NULL;
}

enum { OWNERS = 4 };

/* OWNERS owners (half poll, half epoll) on one channel while a thread
 * commits a trickle of TRICKLE_EVENTS events. */
static void
run_owners_against_a_trickle(struct bus_fixture *f, struct owner *o)
{
	struct trickle t = {.bus = f->bus,
			    .channel = LITEBUS_COMPLETION,
			    .count = TRICKLE_EVENTS,
			    .seed = 12345u};
	pthread_t th, oth[OWNERS];
	int rounds = 0;

	atomic_init(&t.failed_rc, 0);
	for (int i = 0; i < OWNERS; i++) {
		o[i].kind = i % 2 == 0 ? LOOP_POLL : LOOP_EPOLL;
		o[i].deadline_ms = fx_now_ms() + 60000;
		assert_int_equal(
		    pthread_create(&oth[i], NULL, owner_main, &o[i]), 0);
	}
	assert_int_equal(pthread_create(&th, NULL, trickle_main, &t), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	for (int i = 0; i < OWNERS; i++)
		assert_int_equal(pthread_join(oth[i], NULL), 0);
	if (atomic_load(&t.failed_rc) != 0)
		fail_msg("the committer's exec failed: %s",
			 litebus_errname(atomic_load(&t.failed_rc)));
	for (int i = 0; i < OWNERS; i++) {
		const char *loop = o[i].kind == LOOP_POLL ? "poll" : "epoll";

		if (o[i].bad_rc != 0)
			fail_msg("owner %d (%s): unexpected %s", i, loop,
				 litebus_errname(o[i].bad_rc));
		if (o[i].received != TRICKLE_EVENTS)
			fail_msg("owner %d (%s): only %d of %d events arrived "
				 "within 60 s",
				 i, loop, o[i].received, TRICKLE_EVENTS);
		if (o[i].out_of_order)
			fail_msg("owner %d (%s): events out of order", i, loop);
		if (o[i].stale != 0)
			fail_msg("owner %d (%s): in %d of %d rounds the fd was "
				 "readable right after TIMEOUT and the next "
				 "call found nothing",
				 i, loop, o[i].stale, o[i].rounds);
		if (o[i].quiet_readable)
			fail_msg("owner %d (%s): the fd stayed readable after "
				 "the last TIMEOUT of the quiet period",
				 i, loop);
		rounds += o[i].rounds;
	}
	print_message("      %d rounds over %d fds, %d events each\n", rounds,
		      OWNERS, TRICKLE_EVENTS);
}

/* litebus_sub_fd(): "After litebus_recv() returned TIMEOUT, the fd is
 * readable only once something was published or the bus closed: an epoll
 * loop never spins on it through a quiet period." */
static void
subscriber_fds_in_poll_and_epoll_loops_are_never_readable_with_nothing_to_read(
    void **state)
{
	struct bus_fixture *f = *state;
	struct owner o[OWNERS];

	memset(o, 0, sizeof o);
	for (int i = 0; i < OWNERS; i++)
		assert_int_equal(
		    litebus_subscribe(f->bus, LITEBUS_COMPLETION, &o[i].h.sub),
		    LITEBUS_OK);
	run_owners_against_a_trickle(f, o);
	for (int i = 0; i < OWNERS; i++)
		litebus_unsubscribe(o[i].h.sub);
}

/* litebus_reader_fd(): "like litebus_sub_fd(): readable while rows (or
 * CLOSED) may be waiting; unreadable only after litebus_reader_next()
 * returned TIMEOUT." */
static void
reader_fds_in_poll_and_epoll_loops_are_never_readable_with_nothing_to_read(
    void **state)
{
	struct bus_fixture *f = *state;
	struct owner o[OWNERS];

	memset(o, 0, sizeof o);
	for (int i = 0; i < OWNERS; i++)
		assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
						     LITEBUS_FROM_NOW, NULL,
						     &o[i].h.reader),
				 LITEBUS_OK);
	run_owners_against_a_trickle(f, o);
	for (int i = 0; i < OWNERS; i++)
		litebus_reader_close(o[i].h.reader);
}

/* After TIMEOUT, commits on other channels leave the fd unreadable, and
 * a commit on its own channel makes it readable: the quiet period is
 * quiet only for this channel. */
static void
after_timeout_only_a_commit_on_the_channel_makes_the_fd_readable(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	litebus_event ev;
	int fd;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	fd = litebus_sub_fd(sub);
	assert_true(fd >= 0);
	assert_true(fx_fd_readable(fd, 0)); /* starts readable */
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	assert_false(fx_fd_readable(fd, 0));
	for (int i = 0; i < 5; i++) {
		commit_events(f->bus, LITEBUS_LEASE_HISTORY, 1, NULL);
		assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
		assert_false(fx_fd_readable(fd, 0));
	}
	commit_events(f->bus, LITEBUS_COMPLETION, 1, NULL);
	assert_true(fx_fd_readable(fd, 0));
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_OK);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);
	assert_false(fx_fd_readable(fd, 0));
	litebus_unsubscribe(sub);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		a_late_wake_up_for_a_record_already_read_leaves_the_fd_unreadable,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		repeated_idle_calls_while_a_wake_up_is_late_leave_the_fd_unreadable,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		a_record_published_just_before_arming_makes_the_fd_readable_once,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		a_wake_up_below_the_armed_position_writes_nothing,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		close_makes_an_fd_armed_beyond_the_head_readable, channel_setup,
		channel_teardown),
	    FX_TEST_DEFAULT(subscriber_fds_in_poll_and_epoll_loops_are_never_readable_with_nothing_to_read),
	    FX_TEST_DEFAULT(reader_fds_in_poll_and_epoll_loops_are_never_readable_with_nothing_to_read),
	    FX_TEST_DEFAULT(after_timeout_only_a_commit_on_the_channel_makes_the_fd_readable),
	};

	/* The tests play the writer of these bare rings and channels: the
	 * main thread publishes (role.h). */
	lb_role_set_writer(&test_writer_role);

	return cmocka_run_group_tests_name("fd_readiness", tests, NULL, NULL);
}
