/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - the status codes (lib/errors.c): one message and one
 * name per code, the per-thread error text and SQLite code, and the
 * run-time version number and string.
 */
#include "fixture.h"

#include <limits.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The single list, expanded once more here. */
struct code {
	int value;
	const char *name;
	const char *msg;
};

static const struct code codes[] = {
#define CODE_(name, value, msg) {value, #name, msg},
    LITEBUS_ERRORS(CODE_)
#undef CODE_
};

#define NCODES (sizeof codes / sizeof codes[0])

/* Fill `path` with 8 KiB that no SQLite header starts with. */
static void
write_junk_file(const char *path)
{
	unsigned char junk[8192];
	FILE *fp;

	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(i * 131u + 7u);
	memcpy(junk, "definitely not SQLite", 21);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(junk, 1, sizeof junk, fp), sizeof junk);
	assert_int_equal(fclose(fp), 0);
}

/* litebus_strerror(): "a fixed English description of a status code ...
 * never NULL". */
static void
every_code_has_a_distinct_non_empty_message(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		const char *m = litebus_strerror(codes[i].value);
		assert_non_null(m);
		if (m[0] == '\0')
			fail_msg("%s has an empty message", codes[i].name);
		assert_string_equal(m, codes[i].msg);
		assert_string_not_equal(m, "unknown status");
		for (size_t j = 0; j < i; j++)
			if (strcmp(m, litebus_strerror(codes[j].value)) == 0)
				fail_msg("%s and %s share the message '%s'",
					 codes[i].name, codes[j].name, m);
	}
}

/* litebus_errname(): "the code's name without prefix ("EINVAL",
 * "OK")". */
static void
every_code_has_its_own_name(void **state)
{
	(void)state;
	assert_string_equal(litebus_errname(LITEBUS_OK), "OK");
	assert_string_equal(litebus_errname(LITEBUS_EINVAL), "EINVAL");
	for (size_t i = 0; i < NCODES; i++) {
		const char *n = litebus_errname(codes[i].value);
		assert_non_null(n);
		assert_string_equal(n, codes[i].name);
		assert_string_not_equal(n, "?");
		for (size_t j = 0; j < i; j++)
			if (strcmp(n, litebus_errname(codes[j].value)) == 0)
				fail_msg("two codes are named %s", n);
	}
}

/* "LITEBUS_OK (0), a positive status when a call has more than one normal
 * outcome (LITEBUS_LAGGED, LITEBUS_TIMEOUT, LITEBUS_CLOSED,
 * LITEBUS_EXPIRED), or a negative LITEBUS_E* error", and no two codes
 * share a value. */
static bool
is_positive_status(const char *name)
{
	static const char *const positive[] = {"LAGGED", "TIMEOUT", "CLOSED",
					       "EXPIRED"};

	for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
		if (strcmp(name, positive[i]) == 0)
			return true;
	return false;
}

static void
codes_have_distinct_values_with_errors_negative_and_statuses_not(void **state)
{
	(void)state;
	assert_int_equal(LITEBUS_OK, 0);
	for (size_t i = 0; i < NCODES; i++) {
		bool is_error = codes[i].name[0] == 'E' &&
				!is_positive_status(codes[i].name);
		bool is_status = is_positive_status(codes[i].name);

		if (is_error != (codes[i].value < 0) ||
		    is_status != (codes[i].value > 0))
			fail_msg("%s has value %d", codes[i].name,
				 codes[i].value);
		for (size_t j = 0; j < i; j++)
			if (codes[i].value == codes[j].value)
				fail_msg("%s and %s share value %d",
					 codes[i].name, codes[j].name,
					 codes[i].value);
	}
}

/* "'unknown status' for values that are not litebus codes, such as a
 * job's own return value"; errname gives "?". */
static void
unknown_values_give_unknown_status_and_a_question_mark(void **state)
{
	static const int unknown[] = {5, 100, -999, -1000, INT_MIN, INT_MAX};

	(void)state;
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		for (size_t j = 0; j < NCODES; j++)
			assert_int_not_equal(unknown[i], codes[j].value);
		assert_string_equal(litebus_strerror(unknown[i]),
				    "unknown status");
		assert_string_equal(litebus_errname(unknown[i]), "?");
	}
}

/* litebus_version_number(): "LITEBUS_VERSION_NUMBER of the library
 * actually loaded, to compare with the header". */
static void
the_run_time_version_matches_the_header(void **state)
{
	(void)state;
	assert_int_equal(litebus_version_number(), LITEBUS_VERSION_NUMBER);
	assert_int_equal(LITEBUS_VERSION_NUMBER,
			 LITEBUS_VERSION_MAJOR * 10000 +
			     LITEBUS_VERSION_MINOR * 100 +
			     LITEBUS_VERSION_PATCH);
}

/* litebus_version_string(): "the version of the library actually loaded as
 * "MAJOR.MINOR.PATCH" ... made of the same numbers as
 * litebus_version_number()". */
static void
the_version_string_is_the_header_numbers_joined_by_dots(void **state)
{
	char expected[64];
	int n;
	int major = -1, minor = -1, patch = -1;
	char end;

	(void)state;
	n = snprintf(expected, sizeof expected, "%d.%d.%d",
		     LITEBUS_VERSION_MAJOR, LITEBUS_VERSION_MINOR,
		     LITEBUS_VERSION_PATCH);
	assert_true(n > 0 && (size_t)n < sizeof expected);
	assert_non_null(litebus_version_string());
	assert_string_equal(litebus_version_string(), expected);
	assert_string_equal(LITEBUS_VERSION_STRING, expected);
	/* Static: the same pointer every time. */
	assert_ptr_equal(litebus_version_string(), litebus_version_string());

	/* And it agrees with the run-time number. */
	assert_int_equal(sscanf(litebus_version_string(), "%d.%d.%d%c", &major,
				&minor, &patch, &end),
			 3);
	assert_int_equal(major * 10000 + minor * 100 + patch,
			 litebus_version_number());
}

/* ------------------------------------------------------------------ */
/* Per-thread error state                                               */

struct thread_view {
	struct fx_barrier *step;
	bool cause_error;
	/* What the thread saw, read by the main thread after join. */
	char first_msg[256];
	int first_code;
	char last_msg[256];
	int rc;
};

static void *
thread_view_main(void *p)
{
	struct thread_view *v = p;

	snprintf(v->first_msg, sizeof v->first_msg, "%s",
		 litebus_last_errmsg());
	v->first_code = litebus_last_sqlite_code();
	fx_barrier_wait(v->step); /* 1: the main thread has its error */
	if (v->cause_error)
		v->rc = litebus_channel_id(NULL, "completion");
	fx_barrier_wait(v->step); /* 2: this thread has its error */
	fx_barrier_wait(v->step); /* 3: the main thread looked */
	snprintf(v->last_msg, sizeof v->last_msg, "%s", litebus_last_errmsg());
	return NULL;
}

/* litebus_last_errmsg(): "never NULL ("" if the thread saw no error
 * yet)". */
static void
a_thread_that_saw_no_error_has_an_empty_message_and_no_sqlite_code(void **state)
{
	struct fx_barrier step;
	struct thread_view v = {0};
	pthread_t t;

	(void)state;
	v.step = &step;
	fx_barrier_init(&step, 2);
	assert_int_equal(pthread_create(&t, NULL, thread_view_main, &v), 0);
	for (int i = 0; i < 3; i++)
		fx_barrier_wait(&step);
	pthread_join(t, NULL);
	fx_barrier_destroy(&step);
	assert_string_equal(v.first_msg, "");
	assert_int_equal(v.first_code, 0);
	assert_string_equal(v.last_msg, "");
}

/* "what went wrong in the last litebus call on this thread that returned
 * a negative status". */
static void
the_message_describes_the_last_error_on_this_thread(void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub;
	char first[256];

	assert_int_equal(litebus_subscribe(f->bus, 99, &sub),
			 LITEBUS_ENOCHANNEL);
	assert_non_null(litebus_last_errmsg());
	assert_non_null(strstr(litebus_last_errmsg(), "99"));
	snprintf(first, sizeof first, "%s", litebus_last_errmsg());
	assert_int_equal(litebus_channel_id(f->bus, "no_such_channel"),
			 LITEBUS_ENOCHANNEL);
	assert_non_null(strstr(litebus_last_errmsg(), "no_such_channel"));
	assert_string_not_equal(litebus_last_errmsg(), first);
	assert_int_equal(litebus_last_sqlite_code(), 0);
}

/* "Thread-safety: any thread (per-thread state)": an error on one thread
 * is not seen on another, in either direction. */
static void
an_error_on_one_thread_is_not_seen_on_another(void **state)
{
	struct fx_barrier step;
	struct thread_view v = {0};
	pthread_t t;
	char mine[256];

	(void)state;
	v.step = &step;
	v.cause_error = true;
	fx_barrier_init(&step, 2);
	assert_int_equal(pthread_create(&t, NULL, thread_view_main, &v), 0);
	assert_int_equal(litebus_stats_get(NULL, NULL), LITEBUS_EINVAL);
	snprintf(mine, sizeof mine, "%s", litebus_last_errmsg());
	assert_string_not_equal(mine, "");
	fx_barrier_wait(&step); /* 1 */
	fx_barrier_wait(&step); /* 2: the thread failed its own call */
	assert_string_equal(litebus_last_errmsg(), mine);
	fx_barrier_wait(&step); /* 3 */
	pthread_join(t, NULL);
	fx_barrier_destroy(&step);
	/* The thread did not see ours, before or after its own error... */
	assert_string_equal(v.first_msg, "");
	assert_int_equal(v.rc, LITEBUS_EINVAL);
	/* ...and saw its own, not ours. */
	assert_string_not_equal(v.last_msg, "");
	assert_string_not_equal(v.last_msg, mine);
}

/* litebus_last_sqlite_code(): "SQLite's extended result code behind the
 * last negative status"; litebus_open(): "ENOTDB (not SQLite, corrupt)". */
static void
opening_a_file_that_is_not_a_database_is_enotdb_with_sqlite_notadb(void **state)
{
	struct bus_fixture *f = *state; /* a temporary directory, no bus */
	static char sentinel;

	write_junk_file(f->path);
	f->opts.path = f->path;
	f->bus = (litebus *)(void *)&sentinel; /* must be reset to NULL */
	assert_int_equal(litebus_open(&f->opts, &f->bus), LITEBUS_ENOTDB);
	assert_null(f->bus);
	assert_int_equal(litebus_last_sqlite_code(), SQLITE_NOTADB);
	assert_string_not_equal(litebus_last_errmsg(), "");
}

/* "... or 0 if SQLite was not involved": the code describes the last
 * error only, not an older one. */
static void
the_sqlite_code_is_zero_after_an_error_sqlite_did_not_cause(void **state)
{
	struct bus_fixture *f = *state;

	write_junk_file(f->path);
	f->opts.path = f->path;
	assert_int_equal(litebus_open(&f->opts, &f->bus), LITEBUS_ENOTDB);
	assert_int_not_equal(litebus_last_sqlite_code(), 0);
	assert_int_equal(litebus_exec(NULL, NULL, NULL), LITEBUS_EINVAL);
	assert_int_equal(litebus_last_sqlite_code(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_code_has_a_distinct_non_empty_message),
	    cmocka_unit_test(every_code_has_its_own_name),
	    cmocka_unit_test(
		codes_have_distinct_values_with_errors_negative_and_statuses_not),
	    cmocka_unit_test(
		unknown_values_give_unknown_status_and_a_question_mark),
	    cmocka_unit_test(the_run_time_version_matches_the_header),
	    cmocka_unit_test(
		the_version_string_is_the_header_numbers_joined_by_dots),
	    cmocka_unit_test(
		a_thread_that_saw_no_error_has_an_empty_message_and_no_sqlite_code),
	    FX_TEST_TINY(the_message_describes_the_last_error_on_this_thread),
	    cmocka_unit_test(an_error_on_one_thread_is_not_seen_on_another),
	    FX_TEST_TMPDIR(opening_a_file_that_is_not_a_database_is_enotdb_with_sqlite_notadb),
	    FX_TEST_TMPDIR(the_sqlite_code_is_zero_after_an_error_sqlite_did_not_cause),
	};

	return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
