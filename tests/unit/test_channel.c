/*
 * test_channel.c - channels (lib/channel.c): name and event-type
 * validation, and the wake-ups of those waiting on a channel (C3, C4).
 *
 * The wait tests drive a bare struct lb_channel: the test's main thread
 * plays the writer (the only thread that publishes), helper threads sleep
 * in lb_channel_wait().
 */
#include "channel.h"
#include "fixture.h"

#include <poll.h>
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

/* Rounds of the lost-wake-up race (well under a second in every build). */
#define PING_PONG_ROUNDS 20000u

/* Deadlines are on fx_mono_ns()'s clock, as lb_channel_wait() wants. */
static uint64_t
deadline_in_ms(uint64_t ms)
{
	return fx_mono_ns() + ms * 1000000u;
}

/* ------------------------------------------------------------------ */
/* Names                                                                */

/* litebus_options.channels: "A name is 1..LITEBUS_CHANNEL_NAME_MAX of
 * [A-Za-z0-9_], must not start with a digit". */
static void
names_of_letters_digits_and_underscores_are_valid(void **state)
{
	static const char *const good[] = {
	    "a",  "Z",	    "_",	  "orders",   "Orders_2",
	    "_9", "a1b2c3", "snake_case", "ALL_CAPS", "x_0123456789",
	};

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (!lb_channel_name_ok(good[i]))
			fail_msg("'%s' should be a valid channel name",
				 good[i]);
}

static void
a_name_of_exactly_the_maximum_length_is_valid(void **state)
{
	char name[LITEBUS_CHANNEL_NAME_MAX + 1];

	(void)state;
	memset(name, 'n', LITEBUS_CHANNEL_NAME_MAX);
	name[LITEBUS_CHANNEL_NAME_MAX] = '\0';
	assert_true(lb_channel_name_ok(name));
}

static void
a_name_one_byte_over_the_maximum_length_is_invalid(void **state)
{
	char name[LITEBUS_CHANNEL_NAME_MAX + 2];

	(void)state;
	memset(name, 'n', LITEBUS_CHANNEL_NAME_MAX + 1);
	name[LITEBUS_CHANNEL_NAME_MAX + 1] = '\0';
	assert_false(lb_channel_name_ok(name));
}

static void
an_empty_or_null_name_is_invalid(void **state)
{
	(void)state;
	assert_false(lb_channel_name_ok(NULL));
	assert_false(lb_channel_name_ok(""));
}

static void
a_name_starting_with_a_digit_is_invalid(void **state)
{
	static const char *const bad[] = {"0", "9", "1abc", "2_x", "42"};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (lb_channel_name_ok(bad[i]))
			fail_msg("'%s' starts with a digit", bad[i]);
}

/* Names become part of SQL table names: nothing outside [A-Za-z0-9_]
 * passes, wherever it appears. */
static void
a_name_with_any_other_character_is_invalid(void **state)
{
	static const char *const bad[] = {
	    "a-b", "a b", " a",	 "a ",		"a.b",	"a/b",	"a\"b", "a'b",
	    "a;b", "a]b", "a`b", "caf\xc3\xa9", "a\tb", "a\nb", "a$",	"a\x7f",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (lb_channel_name_ok(bad[i]))
			fail_msg("'%s' (case %zu) should be invalid", bad[i],
				 i);
}

static void
every_builtin_channel_name_is_a_valid_name(void **state)
{
	(void)state;
	for (int id = 0; id < LITEBUS_BUILTIN_CHANNELS; id++) {
		const char *name = lb_channel_builtin_name(id);
		assert_non_null(name);
		if (!lb_channel_name_ok(name))
			fail_msg("built-in channel %d has invalid name '%s'",
				 id, name);
	}
}

/* ------------------------------------------------------------------ */
/* Event types                                                          */

static struct lb_channel *
channel_new(int id)
{
	struct lb_channel *ch =
	    aligned_alloc(LB_CACHELINE, (sizeof *ch + LB_CACHELINE - 1) &
					    ~(size_t)(LB_CACHELINE - 1));
	const char *name = id < LITEBUS_BUILTIN_CHANNELS
			       ? lb_channel_builtin_name(id)
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

/* Types that no restricted built-in channel lists, and near-misses. */
static const char *const foreign_types[] = {
    "event",   "Success",  "success ", " success", "succes", "successful",
    "acquire", "ACQUIRED", "replay",   "priority", "x",
};

/* Checks that channel `id` accepts exactly `types` among every listed
 * type of every built-in channel, plus the foreign ones. */
static void
check_channel_accepts_exactly(int id, const char *const *types)
{
	struct lb_channel *ch = channel_new(id);

	for (const char *const *t = types; *t != NULL; t++)
		if (!lb_channel_type_ok(ch, *t))
			fail_msg("channel %s refuses its own type '%s'",
				 ch->name, *t);
	for (int other = 0; other < LITEBUS_BUILTIN_CHANNELS; other++) {
		const char *const *ot = lb_channel_builtin_types(other);
		for (; ot != NULL && *ot != NULL; ot++) {
			bool listed = false;
			for (const char *const *t = types; *t != NULL; t++)
				listed = listed || strcmp(*t, *ot) == 0;
			if (!listed && lb_channel_type_ok(ch, *ot))
				fail_msg("channel %s accepts '%s'", ch->name,
					 *ot);
		}
	}
	for (size_t i = 0; i < sizeof foreign_types / sizeof foreign_types[0];
	     i++)
		if (lb_channel_type_ok(ch, foreign_types[i]))
			fail_msg("channel %s accepts '%s'", ch->name,
				 foreign_types[i]);
	channel_free(ch);
}

/* litebus.h: LITEBUS_LEASE_HISTORY "acquired renewed reclaimed revoked". */
static void
lease_history_accepts_exactly_its_four_event_types(void **state)
{
	static const char *const types[] = {"acquired", "renewed", "reclaimed",
					    "revoked", NULL};

	(void)state;
	check_channel_accepts_exactly(LITEBUS_LEASE_HISTORY, types);
}

/* LITEBUS_COMPLETION "success failed cancelled expired skipped". */
static void
completion_accepts_exactly_its_five_event_types(void **state)
{
	static const char *const types[] = {"success", "failed",  "cancelled",
					    "expired", "skipped", NULL};

	(void)state;
	check_channel_accepts_exactly(LITEBUS_COMPLETION, types);
}

/* LITEBUS_OPERATOR_EVENT "priority_changed replayed
 * flow_cancel_requested". */
static void
operator_event_accepts_exactly_its_three_event_types(void **state)
{
	static const char *const types[] = {"priority_changed", "replayed",
					    "flow_cancel_requested", NULL};

	(void)state;
	check_channel_accepts_exactly(LITEBUS_OPERATOR_EVENT, types);
}

/* LITEBUS_SIGNAL_DELIVERY and LITEBUS_STREAM_FRAME: "any non-empty event
 * type"; so does every channel declared in the options. */
static void
unrestricted_channels_accept_any_non_empty_type(void **state)
{
	static const int ids[] = {LITEBUS_SIGNAL_DELIVERY, LITEBUS_STREAM_FRAME,
				  LITEBUS_BUILTIN_CHANNELS};
	static const char *const types[] = {"x", "success", "acquired",
					    "anything at all", "\xc3\xa9"};

	(void)state;
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		struct lb_channel *ch = channel_new(ids[i]);
		for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
			if (!lb_channel_type_ok(ch, types[t]))
				fail_msg("channel %s refuses '%s'", ch->name,
					 types[t]);
		channel_free(ch);
	}
	assert_null(lb_channel_builtin_types(LITEBUS_SIGNAL_DELIVERY));
	assert_null(lb_channel_builtin_types(LITEBUS_STREAM_FRAME));
}

/* litebus_emit(): "EINVAL (NULL rec or event_type, empty event_type" on
 * every channel. */
static void
no_channel_accepts_an_empty_or_null_type(void **state)
{
	(void)state;
	for (int id = 0; id <= LITEBUS_BUILTIN_CHANNELS; id++) {
		struct lb_channel *ch = channel_new(id);
		assert_false(lb_channel_type_ok(ch, NULL));
		assert_false(lb_channel_type_ok(ch, ""));
		channel_free(ch);
	}
}

static void
builtin_types_are_null_for_ids_outside_the_builtin_range(void **state)
{
	(void)state;
	assert_null(lb_channel_builtin_types(-1));
	assert_null(lb_channel_builtin_types(LITEBUS_BUILTIN_CHANNELS));
	assert_null(lb_channel_builtin_types(LITEBUS_MAX_CHANNELS));
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

static void
publish_one(struct lb_channel *ch)
{
	struct lb_rec rec;

	memset(&rec, 0, sizeof rec);
	rec.event_id = lb_channel_published_id(ch) + 1;
	lb_channel_publish(ch, &rec);
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
		lb_channel_wait(w->ch, w->pos, w->deadline_ns);
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

	publish_one(ch);
	publish_one(ch);
	t0 = fx_mono_ns();
	/* The deadline is far away: returning at all means it did not
	 * sleep until it. */
	lb_channel_wait(ch, 2, t0 + (uint64_t)FX_WAIT_MS * 1000000u);
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
		lb_channel_wait(ch, 1, deadline);
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
	publish_one(ch);
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
	lb_channel_wait(ch, 1, UINT64_MAX); /* no deadline at all */
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
			lb_channel_wait(pp->ch, pos, deadline);
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
		publish_one(ch);
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

static bool
fd_is_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	assert_true(poll(&p, 1, 0) >= 0);
	return (p.revents & POLLIN) != 0;
}

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
	assert_true(fd_is_readable(w.fd));
	lb_channel_fd_arm(ch, &w, 1);
	assert_false(fd_is_readable(w.fd));
	publish_one(ch);
	assert_false(fd_is_readable(w.fd)); /* wake comes per batch */
	lb_channel_wake(ch);
	assert_true(fd_is_readable(w.fd));
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
	publish_one(ch);
	lb_channel_fd_arm(ch, &w, 1);
	assert_true(fd_is_readable(w.fd));
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
	lb_channel_fd_arm(ch, &armed, 1);
	assert_false(fd_is_readable(armed.fd));
	lb_channel_close(ch);
	assert_true(fd_is_readable(armed.fd));
	assert_true(fd_is_readable(idle.fd));
	/* Arming after close leaves it readable: CLOSED is waiting. */
	lb_channel_fd_arm(ch, &idle, 1);
	assert_true(fd_is_readable(idle.fd));
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
	    cmocka_unit_test(names_of_letters_digits_and_underscores_are_valid),
	    cmocka_unit_test(a_name_of_exactly_the_maximum_length_is_valid),
	    cmocka_unit_test(
		a_name_one_byte_over_the_maximum_length_is_invalid),
	    cmocka_unit_test(an_empty_or_null_name_is_invalid),
	    cmocka_unit_test(a_name_starting_with_a_digit_is_invalid),
	    cmocka_unit_test(a_name_with_any_other_character_is_invalid),
	    cmocka_unit_test(every_builtin_channel_name_is_a_valid_name),
	    cmocka_unit_test(
		lease_history_accepts_exactly_its_four_event_types),
	    cmocka_unit_test(completion_accepts_exactly_its_five_event_types),
	    cmocka_unit_test(
		operator_event_accepts_exactly_its_three_event_types),
	    cmocka_unit_test(unrestricted_channels_accept_any_non_empty_type),
	    cmocka_unit_test(no_channel_accepts_an_empty_or_null_type),
	    cmocka_unit_test(
		builtin_types_are_null_for_ids_outside_the_builtin_range),
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

	return cmocka_run_group_tests_name("channel", tests, NULL, NULL);
}
