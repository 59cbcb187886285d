/* SPDX-License-Identifier: MIT */
/*
 * test_catalog.c - the built-in channels as data (lib/catalog.c): channel
 * name rules and the event types each channel accepts.
 */
#include "catalog.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

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
		if (!lb_catalog_name_ok(good[i]))
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
	assert_true(lb_catalog_name_ok(name));
}

static void
a_name_one_byte_over_the_maximum_length_is_invalid(void **state)
{
	char name[LITEBUS_CHANNEL_NAME_MAX + 2];

	(void)state;
	memset(name, 'n', LITEBUS_CHANNEL_NAME_MAX + 1);
	name[LITEBUS_CHANNEL_NAME_MAX + 1] = '\0';
	assert_false(lb_catalog_name_ok(name));
}

static void
an_empty_or_null_name_is_invalid(void **state)
{
	(void)state;
	assert_false(lb_catalog_name_ok(NULL));
	assert_false(lb_catalog_name_ok(""));
}

static void
a_name_starting_with_a_digit_is_invalid(void **state)
{
	static const char *const bad[] = {"0", "9", "1abc", "2_x", "42"};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (lb_catalog_name_ok(bad[i]))
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
		if (lb_catalog_name_ok(bad[i]))
			fail_msg("'%s' (case %zu) should be invalid", bad[i],
				 i);
}

static void
every_builtin_channel_name_is_a_valid_name(void **state)
{
	(void)state;
	for (int id = 0; id < LITEBUS_BUILTIN_CHANNELS; id++) {
		const char *name = lb_catalog_builtin_name(id);
		assert_non_null(name);
		if (!lb_catalog_name_ok(name))
			fail_msg("built-in channel %d has invalid name '%s'",
				 id, name);
	}
}

/* ------------------------------------------------------------------ */
/* Event types                                                          */

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
	const char *const *mine = lb_catalog_builtin_types(id);
	const char *name = lb_catalog_builtin_name(id);

	for (const char *const *t = types; *t != NULL; t++)
		if (!lb_catalog_type_ok(mine, *t))
			fail_msg("channel %s refuses its own type '%s'", name,
				 *t);
	for (int other = 0; other < LITEBUS_BUILTIN_CHANNELS; other++) {
		const char *const *ot = lb_catalog_builtin_types(other);
		for (; ot != NULL && *ot != NULL; ot++) {
			bool listed = false;
			for (const char *const *t = types; *t != NULL; t++)
				listed = listed || strcmp(*t, *ot) == 0;
			if (!listed && lb_catalog_type_ok(mine, *ot))
				fail_msg("channel %s accepts '%s'", name, *ot);
		}
	}
	for (size_t i = 0; i < sizeof foreign_types / sizeof foreign_types[0];
	     i++)
		if (lb_catalog_type_ok(mine, foreign_types[i]))
			fail_msg("channel %s accepts '%s'", name,
				 foreign_types[i]);
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
		const char *const *mine = lb_catalog_builtin_types(ids[i]);
		for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
			if (!lb_catalog_type_ok(mine, types[t]))
				fail_msg("channel %d refuses '%s'", ids[i],
					 types[t]);
	}
	assert_null(lb_catalog_builtin_types(LITEBUS_SIGNAL_DELIVERY));
	assert_null(lb_catalog_builtin_types(LITEBUS_STREAM_FRAME));
}

/* litebus_emit(): "EINVAL (NULL rec or event_type, empty event_type" on
 * every channel. */
static void
no_channel_accepts_an_empty_or_null_type(void **state)
{
	(void)state;
	for (int id = 0; id <= LITEBUS_BUILTIN_CHANNELS; id++) {
		const char *const *mine = lb_catalog_builtin_types(id);
		assert_false(lb_catalog_type_ok(mine, NULL));
		assert_false(lb_catalog_type_ok(mine, ""));
	}
}

static void
builtin_types_are_null_for_ids_outside_the_builtin_range(void **state)
{
	(void)state;
	assert_null(lb_catalog_builtin_types(-1));
	assert_null(lb_catalog_builtin_types(LITEBUS_BUILTIN_CHANNELS));
	assert_null(lb_catalog_builtin_types(LITEBUS_MAX_CHANNELS));
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
	};

	return cmocka_run_group_tests_name("catalog", tests, NULL, NULL);
}
