/* SPDX-License-Identifier: MIT */
/*
 * test_channel.c - channels (lib/channel.c): the wake-ups of those
 * waiting on a channel (C3, C4).  Names and event types: test_catalog.c.
 *
 * The wait tests drive a bare struct lb_channel: the test's main thread
 * plays the writer (the only thread that publishes), helper threads sleep
 * in lb_channel_wait().
 */
#include "catalog.h"
#include "channel.h"
#include "fixture.h"
#include "role.h"

#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

/* Identity of the writer role the test threads claim (role.h). */
static const char test_writer_role;

/* Rounds of the lost-wake-up race (well under a second in every build). */
#define PING_PONG_ROUNDS 20000u

/* Deadlines are on fx_mono_ns()'s clock, as lb_channel_wait() wants. */
static uint64_t
deadline_in_ms(uint64_t ms)
{
	return fx_mono_ns() + ms * 1000000u;
}

/* ------------------------------------------------------------------ */
/* Channels                                                             */

static struct lb_channel *
channel_new(int id)
{
	struct lb_channel *ch =
	    aligned_alloc(LB_CACHELINE, (sizeof *ch + LB_CACHELINE - 1) &
					    ~(size_t)(LB_CACHELINE - 1));
	const char *name = id < LITEBUS_BUILTIN_CHANNELS
			       ? lb_catalog_builtin_name(id)
			       : "custom";

	assert_non_null(ch);
	assert_int_equal(lb_channel_init(ch, id, name, 8, 0), 0);
	return ch;
}

static void
channel_free(struct lb_channel *ch)
{
	lb_channel_fini(ch);
	free(ch);
}

/* A channel checks emits against its catalog entry (catalog.c): the
 * built-in channels' lists, none for a declared channel. */
static void
a_channel_takes_its_event_types_from_the_catalog(void **state)
{
	(void)state;
	for (int id = 0; id <= LITEBUS_BUILTIN_CHANNELS; id++) {
		struct lb_channel *ch = channel_new(id);

		assert_ptr_equal(ch->event_types, lb_catalog_builtin_types(id));
		channel_free(ch);
	}
}

/* ------------------------------------------------------------------ */
/* Waiting and waking                                                   */

static int
channel_setup(void **state)
{
	*state = channel_new(LITEBUS_COMPLETION);
	return 0;
}

static int
channel_teardown(void **state)
{
	channel_free(*state);
	return 0;
}

struct waiter {
	struct lb_channel *ch;
	struct fx_barrier *start;
	uint64_t pos;
	uint64_t deadline_ns;
	/* Results, read by the main thread after join. */
	bool reached; /* head >= pos when it stopped waiting */
	bool closed;  /* the channel was closed when it stopped */
	bool in_time; /* it stopped before its deadline */
	_Atomic int finished;
};

/* Wait the way subscriber.c does: re-check after every return. */
static void *
waiter_main(void *p)
{
	struct waiter *w = p;

	fx_barrier_wait(w->start);
	while (lb_ring_head(&w->ch->ring) < w->pos &&
	       !lb_channel_is_closed(w->ch) && fx_mono_ns() < w->deadline_ns)
		lb_channel_wait(w->ch, w->pos, INT64_MAX, w->deadline_ns);
	w->in_time = fx_mono_ns() < w->deadline_ns;
	w->reached = lb_ring_head(&w->ch->ring) >= w->pos;
	w->closed = lb_channel_is_closed(w->ch);
	atomic_store_explicit(&w->finished, 1, memory_order_release);
	return NULL;
}

/* Bounded wait until `sleepers` threads have entered lb_channel_wait()
 * (they may be just before the futex call: C3 covers that window too).
 * Fails the test at the deadline; yields instead of sleeping. */
static void
wait_until_sleeping(struct lb_channel *ch, unsigned sleepers)
{
	uint64_t deadline = deadline_in_ms(FX_WAIT_MS);

	while (atomic_load_explicit(&ch->sleepers, memory_order_relaxed) <
	       sleepers) {
		if (fx_mono_ns() > deadline)
			fail_msg("no thread went to sleep on the channel "
				 "within %d ms",
				 FX_WAIT_MS);
		sched_yield();
	}
}

static void
start_waiters(struct lb_channel *ch, struct fx_barrier *start, struct waiter *w,
	      pthread_t *t, unsigned n, uint64_t pos)
{
	fx_barrier_init(start, n + 1);
	for (unsigned i = 0; i < n; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].ch = ch;
		w[i].start = start;
		w[i].pos = pos;
		w[i].deadline_ns = deadline_in_ms(FX_WAIT_MS);
		atomic_init(&w[i].finished, 0);
		assert_int_equal(
		    pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
	}
	fx_barrier_wait(start);
}

static void
join_waiters(struct fx_barrier *start, struct waiter *w, pthread_t *t,
	     unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	fx_barrier_destroy(start);
	for (unsigned i = 0; i < n; i++)
		if (!w[i].in_time)
			fail_msg("waiter %u was not woken before its %d ms "
				 "deadline",
				 i, FX_WAIT_MS);
}

/* lb_channel_wait(): "sleep until the ring's head reaches `pos` ..." -
 * nothing to sleep for when it already has. */
static void
wait_returns_at_once_when_the_position_is_already_published(void **state)
{
	struct lb_channel *ch = *state;
	uint64_t t0;

	fx_channel_publish_one(ch);
	fx_channel_publish_one(ch);
	t0 = fx_mono_ns();
	/* The deadline is far away: returning at all means it did not
	 * sleep until it. */
	lb_channel_wait(ch, 2, INT64_MAX, t0 + (uint64_t)FX_WAIT_MS * 1000000u);
	assert_true(fx_mono_ns() - t0 < (uint64_t)FX_WAIT_MS * 1000000u);
	assert_int_equal(atomic_load(&ch->sleepers), 0);
}

/* "... or the deadline passes." */
static void
wait_returns_by_its_deadline_when_nothing_is_published(void **state)
{
	struct lb_channel *ch = *state;
	uint64_t deadline = deadline_in_ms(20);

	/* May return early (callers re-check): loop as they do. */
	while (fx_mono_ns() < deadline)
		lb_channel_wait(ch, 1, INT64_MAX, deadline);
	assert_int_equal(lb_ring_head(&ch->ring), 0);
	assert_int_equal(atomic_load(&ch->sleepers), 0);
}

/* lb_channel_wake(): "after a batch's records are published, wake
 * whoever sleeps on the channel". */
static void
sleeping_waiters_are_woken_by_publish_and_wake_from_another_thread(void **state)
{
	struct lb_channel *ch = *state;
	struct fx_barrier start;
	struct waiter w[3];
	pthread_t t[3];

	start_waiters(ch, &start, w, t, 3, 1);
	wait_until_sleeping(ch, 3);
	fx_channel_publish_one(ch);
	lb_channel_wake(ch);
	join_waiters(&start, w, t, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(w[i].reached);
		assert_false(w[i].closed);
	}
}

/* lb_channel_close(): "mark closed and wake all" - even those waiting for
 * a position that will never come. */
static void
sleeping_waiters_are_woken_by_close(void **state)
{
	struct lb_channel *ch = *state;
	struct fx_barrier start;
	struct waiter w[2];
	pthread_t t[2];

	start_waiters(ch, &start, w, t, 2, 1);
	wait_until_sleeping(ch, 2);
	lb_channel_close(ch);
	join_waiters(&start, w, t, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_true(w[i].closed);
		assert_false(w[i].reached);
	}
}

static void
wait_returns_at_once_on_a_closed_channel(void **state)
{
	struct lb_channel *ch = *state;
	uint64_t t0;

	lb_channel_close(ch);
	assert_true(lb_channel_is_closed(ch));
	t0 = fx_mono_ns();
	lb_channel_wait(ch, 1, INT64_MAX, UINT64_MAX); /* no deadline at all */
	assert_true(fx_mono_ns() - t0 < (uint64_t)FX_WAIT_MS * 1000000u);
}

/* C3, "No lost wake-up": the publisher and the sleeper race on every
 * round (the publish lands anywhere between the sleeper's check and its
 * sleep).  A lost wake-up would leave the sleeper waiting for its
 * deadline, which fails the test. */
struct ping_pong {
	struct lb_channel *ch;
	struct fx_barrier *start;
	_Atomic uint64_t acked;
	bool late; /* a round reached its deadline */
	uint64_t late_round;
};

static void *
ping_pong_sleeper(void *p)
{
	struct ping_pong *pp = p;

	fx_barrier_wait(pp->start);
	for (uint64_t pos = 1; pos <= PING_PONG_ROUNDS; pos++) {
		uint64_t deadline = deadline_in_ms(FX_WAIT_MS);

		while (lb_ring_head(&pp->ch->ring) < pos &&
		       fx_mono_ns() < deadline)
			lb_channel_wait(pp->ch, pos, INT64_MAX, deadline);
		/* Only a wake-up that never came lets the deadline pass. */
		if (fx_mono_ns() >= deadline) {
			pp->late = true;
			pp->late_round = pos;
			atomic_store_explicit(&pp->acked, PING_PONG_ROUNDS,
					      memory_order_release);
			return NULL;
		}
		atomic_store_explicit(&pp->acked, pos, memory_order_release);
	}
	return NULL;
}

static void
no_wake_up_is_lost_when_publish_races_with_a_sleeper(void **state)
{
	struct lb_channel *ch = *state;
	struct fx_barrier start;
	struct ping_pong pp;
	pthread_t t;
	uint32_t jitter = 1;

	memset(&pp, 0, sizeof pp);
	pp.ch = ch;
	pp.start = &start;
	atomic_init(&pp.acked, 0);
	fx_barrier_init(&start, 2);
	assert_int_equal(pthread_create(&t, NULL, ping_pong_sleeper, &pp), 0);
	fx_barrier_wait(&start);
	for (uint64_t pos = 1; pos <= PING_PONG_ROUNDS; pos++) {
		/* A varying head start, so that the publish lands anywhere
		 * from before the sleeper's check to well into its sleep. */
		jitter = jitter * 1103515245u + 12345u;
		for (uint32_t spin = (jitter >> 16) % 1024u; spin > 0; spin--)
			lb_cpu_relax();
		fx_channel_publish_one(ch);
		lb_channel_wake(ch);
		/* The sleeper acknowledges each round before the next, so
		 * every round starts with it about to sleep.  Bounded by its
		 * own deadline. */
		while (atomic_load_explicit(&pp.acked, memory_order_acquire) <
		       pos)
			sched_yield();
		if (pp.late)
			break;
	}
	pthread_join(t, NULL);
	fx_barrier_destroy(&start);
	if (pp.late)
		fail_msg("round %llu: the sleeper was never woken",
			 (unsigned long long)pp.late_round);
}

/* ------------------------------------------------------------------ */
/* fd waiters (C4)                                                      */

static void
fd_waiter_init(struct lb_fd_waiter *w)
{
	memset(w, 0, sizeof *w);
	atomic_init(&w->armed, 0);
	w->fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(w->fd >= 0);
}

/* lb_channel_fd_arm(): "drain the eventfd, then arm"; the writer owes an
 * armed waiter one write at the next publish. */
static void
an_armed_fd_turns_readable_at_the_next_publish_and_wake(void **state)
{
	struct lb_channel *ch = *state;
	struct lb_fd_waiter w;

	fd_waiter_init(&w);
	lb_channel_fd_register(ch, &w);
	assert_true(fx_fd_readable(w.fd, 0));
	lb_channel_fd_arm(ch, &w, 1, INT64_MAX);
	assert_false(fx_fd_readable(w.fd, 0));
	fx_channel_publish_one(ch);
	assert_false(fx_fd_readable(w.fd, 0)); /* wake comes per batch */
	lb_channel_wake(ch);
	assert_true(fx_fd_readable(w.fd, 0));
	assert_int_equal(atomic_load(&w.armed), 0);
	assert_int_equal(atomic_load(&ch->armed_fds), 0);
	lb_channel_fd_unregister(ch, &w);
	close(w.fd);
}

/* "... then re-check; if the ring reached `pos` or the channel closed in
 * between, make the fd readable again." */
static void
arming_for_a_position_already_published_leaves_the_fd_readable(void **state)
{
	struct lb_channel *ch = *state;
	struct lb_fd_waiter w;

	fd_waiter_init(&w);
	lb_channel_fd_register(ch, &w);
	fx_channel_publish_one(ch);
	lb_channel_fd_arm(ch, &w, 1, INT64_MAX);
	assert_true(fx_fd_readable(w.fd, 0));
	assert_int_equal(atomic_load(&ch->armed_fds), 0);
	lb_channel_fd_unregister(ch, &w);
	close(w.fd);
}

/* lb_channel_close(): "wake all" - armed or not, every fd turns
 * readable. */
static void
close_makes_every_registered_fd_readable(void **state)
{
	struct lb_channel *ch = *state;
	struct lb_fd_waiter armed, idle;

	fd_waiter_init(&armed);
	fd_waiter_init(&idle);
	lb_channel_fd_register(ch, &armed);
	lb_channel_fd_register(ch, &idle);
	lb_channel_fd_arm(ch, &armed, 1, INT64_MAX);
	assert_false(fx_fd_readable(armed.fd, 0));
	lb_channel_close(ch);
	assert_true(fx_fd_readable(armed.fd, 0));
	assert_true(fx_fd_readable(idle.fd, 0));
	/* Arming after close leaves it readable: CLOSED is waiting. */
	lb_channel_fd_arm(ch, &idle, 1, INT64_MAX);
	assert_true(fx_fd_readable(idle.fd, 0));
	lb_channel_fd_unregister(ch, &armed);
	lb_channel_fd_unregister(ch, &idle);
	assert_int_equal(atomic_load(&ch->armed_fds), 0);
	close(armed.fd);
	close(idle.fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_channel_takes_its_event_types_from_the_catalog),
	    cmocka_unit_test_setup_teardown(
		wait_returns_at_once_when_the_position_is_already_published,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		wait_returns_by_its_deadline_when_nothing_is_published,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		sleeping_waiters_are_woken_by_publish_and_wake_from_another_thread,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(sleeping_waiters_are_woken_by_close,
					    channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		wait_returns_at_once_on_a_closed_channel, channel_setup,
		channel_teardown),
	    cmocka_unit_test_setup_teardown(
		no_wake_up_is_lost_when_publish_races_with_a_sleeper,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		an_armed_fd_turns_readable_at_the_next_publish_and_wake,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		arming_for_a_position_already_published_leaves_the_fd_readable,
		channel_setup, channel_teardown),
	    cmocka_unit_test_setup_teardown(
		close_makes_every_registered_fd_readable, channel_setup,
		channel_teardown),
	};

	/* The tests play the writer of these bare rings and channels: the
	 * main thread publishes (role.h). */
	lb_role_set_writer(&test_writer_role);

	return cmocka_run_group_tests_name("channel", tests, NULL, NULL);
}
