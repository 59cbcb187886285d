/* SPDX-License-Identifier: MIT */
/*
 * test_bus.c - litebus_open/close: options, channels, one bus per file,
 * in-memory buses, statistics, handles that outlive the bus.
 */
#include "fixture.h"

#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* The bus accepts a job and delivers its event to a new reader. */
static void
assert_bus_works(litebus *bus)
{
	litebus_reader *r;
	litebus_row row;

	assert_int_equal(litebus_reader_open(bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_NOW, NULL, &r),
			 LITEBUS_OK);
	assert_int_equal(litebus_exec(bus, fx_emit_job, NULL), 0);
	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	litebus_reader_close(r);
}

/* Open with `o`, expecting EINVAL, a NULL handle and an error message. */
static void
assert_open_einval(const litebus_options *o, const char *msg_part)
{
	litebus *bus = (litebus *)&bus;
	int rc = litebus_open(o, &bus);

	if (rc != LITEBUS_EINVAL)
		fail_msg("litebus_open: %s, want EINVAL", litebus_errname(rc));
	assert_null(bus);
	assert_true(litebus_last_errmsg()[0] != '\0');
	if (msg_part != NULL && strstr(litebus_last_errmsg(), msg_part) == NULL)
		fail_msg("message \"%s\" does not mention \"%s\"",
			 litebus_last_errmsg(), msg_part);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

/* Contract, litebus_options: the documented defaults. */
static void
options_init_fills_in_the_documented_defaults(void **state)
{
	litebus_options o;

	(void)state;
	memset(&o, 0xa5, sizeof o);
	litebus_options_init(&o);
	assert_null(o.path);
	assert_int_equal(o.ring_capacity, 4096);
	assert_int_equal(o.durability, LITEBUS_DURABILITY_NORMAL);
	assert_int_equal(o.max_batch, 256);
	assert_null(o.channels);
	assert_int_equal(o.busy_timeout_ms, 5000);
	assert_int_equal(o.max_queue, 1048576);
	assert_int_equal(o.reader_batch, 256);
#ifdef LITEBUS_CHECKPOINT_BACKGROUND /* the checkpoint options, if built */
	assert_int_equal(o.checkpoint_mode, LITEBUS_CHECKPOINT_BACKGROUND);
	assert_int_equal(o.checkpoint_pages, 1000);
#endif
}

/* Contract, litebus_options.ring_capacity: "a power of two in
 * [LITEBUS_RING_MIN, LITEBUS_RING_MAX]". */
static void
ring_capacity_must_be_a_power_of_two_between_the_bounds(void **state)
{
	static const uint32_t bad[] = {0,    1,	   2,	4,
				       7,    9,	   12,	100,
				       4095, 4097, LITEBUS_RING_MAX + 1,
				       LITEBUS_RING_MAX * 2,
				       1u << 31,   UINT32_MAX};
	static const uint32_t good[] = {LITEBUS_RING_MIN, 16, 1024};
	litebus_options o;

	(void)state;
	litebus_options_init(&o);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o.ring_capacity = bad[i];
		assert_open_einval(&o, "ring_capacity");
	}
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		litebus *bus;
		o.ring_capacity = good[i];
		assert_int_equal(litebus_open(&o, &bus), LITEBUS_OK);
		assert_bus_works(bus);
		assert_int_equal(litebus_close(bus), LITEBUS_OK);
	}
}

/* Contract, litebus_options: durability NORMAL or FULL; max_batch >= 1;
 * reader_batch in 1..65536. */
static void
bad_durability_max_batch_or_reader_batch_is_einval(void **state)
{
	litebus_options o;
	litebus *bus;

	(void)state;
	litebus_options_init(&o);
	o.durability = 2;
	assert_open_einval(&o, "durability");
	o.durability = -1;
	assert_open_einval(&o, "durability");
	litebus_options_init(&o);
	o.max_batch = 0;
	assert_open_einval(&o, "max_batch");
	litebus_options_init(&o);
	o.reader_batch = 0;
	assert_open_einval(&o, "reader_batch");
	o.reader_batch = 65537;
	assert_open_einval(&o, "reader_batch");

	/* The edges that are allowed. */
	litebus_options_init(&o);
	o.durability = LITEBUS_DURABILITY_FULL;
	o.max_batch = 1;
	o.reader_batch = 65536;
	assert_int_equal(litebus_open(&o, &bus), LITEBUS_OK);
	assert_bus_works(bus);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* Contract, litebus_options.channels: "A name is 1..LITEBUS_CHANNEL_NAME_MAX
 * of [A-Za-z0-9_], must not start with a digit and must differ from every
 * other channel name."  litebus_open: "EINVAL (bad option or channel
 * name)"; litebus_last_errmsg() says what was wrong. */
static void
invalid_channel_names_are_einval_with_a_message(void **state)
{
	static const char too_long[] =
	    "a234567890123456789012345678901234567890123456789"; /* 49 */
	static const char *const bad[] = {"",	 "1abc", "a-b", "a b",
					  "a.b", "x\"y", "\xc3\xa4",
					  "tab\t", too_long};
	litebus_options o;

	(void)state;
	assert_int_equal(strlen(too_long), LITEBUS_CHANNEL_NAME_MAX + 1);
	litebus_options_init(&o);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *const list[] = {"fine", bad[i], NULL};
		o.channels = list;
		assert_open_einval(&o, bad[i][0] != '\0' ? bad[i] : "invalid");
	}
	{
		const char *const list[] = {"orders", "audit", "orders", NULL};
		o.channels = list;
		assert_open_einval(&o, "orders");
	}
	{
		const char *const list[] = {"completion", NULL};
		o.channels = list;
		assert_open_einval(&o, "completion");
	}
}

/* Outbox tables are named after their channels, and SQLite compares table
 * names ignoring case: names differing only in case would share a table,
 * so they are duplicates too. */
static void
channel_names_differing_only_in_case_are_duplicates(void **state)
{
	litebus_options o;

	(void)state;
	litebus_options_init(&o);
	{
		const char *const list[] = {"orders", "ORDERS", NULL};
		o.channels = list;
		assert_open_einval(&o, "ORDERS");
	}
	{
		const char *const list[] = {"Completion", NULL};
		o.channels = list;
		assert_open_einval(&o, "Completion");
	}
}

/* The longest name, and as many channels as LITEBUS_MAX_CHANNELS allows;
 * one more is refused. */
static void
the_longest_name_and_the_most_channels_are_accepted(void **state)
{
	enum { EXTRA = LITEBUS_MAX_CHANNELS - LITEBUS_BUILTIN_CHANNELS };
	static char names[EXTRA + 1][LITEBUS_CHANNEL_NAME_MAX + 1];
	const char *list[EXTRA + 2];
	litebus_options o;
	litebus *bus;

	(void)state;
	for (int i = 0; i <= EXTRA; i++) {
		memset(names[i], 'x', LITEBUS_CHANNEL_NAME_MAX);
		snprintf(names[i], sizeof names[i], "c%02d", i);
		names[i][3] = 'x';
		names[i][LITEBUS_CHANNEL_NAME_MAX] = '\0';
		list[i] = names[i];
	}
	list[EXTRA] = NULL;
	litebus_options_init(&o);
	o.ring_capacity = LITEBUS_RING_MIN;
	o.channels = list;
	assert_int_equal(litebus_open(&o, &bus), LITEBUS_OK);
	assert_int_equal(litebus_channel_count(bus), LITEBUS_MAX_CHANNELS);
	assert_string_equal(litebus_channel_name(bus, LITEBUS_MAX_CHANNELS - 1),
			    names[EXTRA - 1]);
	assert_int_equal(strlen(litebus_channel_name(bus, LITEBUS_MAX_CHANNELS -
								1)),
			 LITEBUS_CHANNEL_NAME_MAX);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);

	list[EXTRA] = names[EXTRA];
	list[EXTRA + 1] = NULL;
	assert_open_einval(&o, NULL);
}

/* Contract: "Channels declared in litebus_options.channels get ids
 * LITEBUS_BUILTIN_CHANNELS, ... in order." */
static void
custom_channels_get_ids_after_the_built_in_ones_in_order(void **state)
{
	static const char *const builtin[] = {"lease_history", "completion",
					      "signal_delivery",
					      "stream_frame", "operator_event"};
	static const char *const list[] = {"orders", "audit_log", NULL};
	litebus_options o;
	litebus *bus;

	(void)state;
	litebus_options_init(&o);
	o.channels = list;
	assert_int_equal(litebus_open(&o, &bus), LITEBUS_OK);
	assert_int_equal(litebus_channel_count(bus),
			 LITEBUS_BUILTIN_CHANNELS + 2);
	for (int i = 0; i < LITEBUS_BUILTIN_CHANNELS; i++) {
		assert_string_equal(litebus_channel_name(bus, i), builtin[i]);
		assert_int_equal(litebus_channel_id(bus, builtin[i]), i);
	}
	assert_int_equal(litebus_channel_id(bus, "orders"), 5);
	assert_int_equal(litebus_channel_id(bus, "audit_log"), 6);
	assert_string_equal(litebus_channel_name(bus, 5), "orders");
	assert_string_equal(litebus_channel_name(bus, 6), "audit_log");
	assert_null(litebus_channel_name(bus, 7));
	assert_null(litebus_channel_name(bus, -1));
	assert_null(litebus_channel_name(NULL, 0));
	assert_int_equal(litebus_channel_count(NULL), LITEBUS_EINVAL);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* Contract, litebus_channel_id(): "EINVAL (NULL argument) or
 * ENOCHANNEL". */
static void
an_unknown_channel_name_is_enochannel(void **state)
{
	litebus *bus;

	(void)state;
	assert_int_equal(litebus_open(NULL, &bus), LITEBUS_OK);
	assert_int_equal(litebus_channel_id(bus, "nope"), LITEBUS_ENOCHANNEL);
	assert_non_null(strstr(litebus_last_errmsg(), "nope"));
	assert_int_equal(litebus_channel_id(bus, ""), LITEBUS_ENOCHANNEL);
	/* Names are matched exactly. */
	assert_int_equal(litebus_channel_id(bus, "COMPLETION"),
			 LITEBUS_ENOCHANNEL);
	assert_int_equal(litebus_channel_id(bus, NULL), LITEBUS_EINVAL);
	assert_int_equal(litebus_channel_id(NULL, "completion"),
			 LITEBUS_EINVAL);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* Contract: "litebus_open copies everything it keeps from *o." */
static void
open_keeps_its_own_copy_of_the_channel_names(void **state)
{
	char name[16];
	const char *list[] = {name, NULL};
	litebus_options o;
	litebus *bus;

	(void)state;
	strcpy(name, "orders");
	litebus_options_init(&o);
	o.channels = list;
	assert_int_equal(litebus_open(&o, &bus), LITEBUS_OK);
	strcpy(name, "zzzzzz");
	list[0] = NULL;
	assert_string_equal(litebus_channel_name(bus, 5), "orders");
	assert_int_equal(litebus_channel_id(bus, "orders"), 5);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* Contract, litebus_open(): "EINVAL", "ECANTOPEN"; *out is NULL. */
static void
open_refuses_a_null_handle_an_empty_path_and_a_missing_directory(
    void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	char path[400];
	litebus_options o;
	litebus *bus = (litebus *)&bus;

	litebus_options_init(&o);
	assert_int_equal(litebus_open(&o, NULL), LITEBUS_EINVAL);
	o.path = "";
	assert_open_einval(&o, NULL);
	snprintf(path, sizeof path, "%s/missing/test.db", f->dir);
	o.path = path;
	assert_int_equal(litebus_open(&o, &bus), LITEBUS_ECANTOPEN);
	assert_null(bus);
	assert_true(litebus_last_errmsg()[0] != '\0');
}

/* ------------------------------------------------------------------ */
/* One bus per file                                                    */

/* Contract: "Opening the same file again in the same process returns the
 * same handle with its reference count raised; each open is paired with
 * one litebus_close()." */
static void
opening_the_same_file_twice_returns_the_same_bus(void **state)
{
	struct bus_fixture *f = *state;
	litebus *again = fx_open_path(f->path, &f->opts);

	assert_ptr_equal(again, f->bus);
	assert_int_equal(litebus_close(again), LITEBUS_OK);
	assert_bus_works(f->bus); /* one open is left */
}

static void
the_bus_keeps_working_until_its_last_close(void **state)
{
	struct bus_fixture *f = *state;
	litebus *b2 = fx_open_path(f->path, &f->opts);
	litebus *b3 = fx_open_path(f->path, &f->opts);
	litebus_sub *sub;
	litebus_event ev;

	assert_ptr_equal(b2, f->bus);
	assert_ptr_equal(b3, f->bus);
	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	assert_int_equal(litebus_close(b2), LITEBUS_OK);
	assert_bus_works(b3);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_OK);

	assert_int_equal(litebus_close(b3), LITEBUS_OK); /* the last */
	f->bus = NULL;
	assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_CLOSED);
	assert_int_equal(litebus_exec(b3, fx_emit_job, NULL), LITEBUS_ECLOSED);
	litebus_unsubscribe(sub);
}

/* Contract: "the same file (after canonicalizing the path)". */
static void
another_spelling_of_the_same_path_returns_the_same_bus(void **state)
{
	struct bus_fixture *f = *state;
	const char *base = strrchr(f->dir, '/') + 1;
	char paths[6][600], link_file[400], link_dir[400];
	litebus *b[6];

	snprintf(link_file, sizeof link_file, "%s/link.db", f->dir);
	assert_int_equal(symlink("test.db", link_file), 0);
	snprintf(link_dir, sizeof link_dir, "%s/here", f->dir);
	assert_int_equal(symlink(".", link_dir), 0);
	snprintf(paths[0], sizeof paths[0], "%s/./test.db", f->dir);
	snprintf(paths[1], sizeof paths[1], "%s//test.db", f->dir);
	snprintf(paths[2], sizeof paths[2], "%s/../%s/test.db", f->dir, base);
	snprintf(paths[3], sizeof paths[3], "%s", link_file);
	snprintf(paths[4], sizeof paths[4], "%s/test.db", link_dir);
	snprintf(paths[5], sizeof paths[5], "%s/here/./here//test.db",
		 f->dir);
	for (int i = 0; i < 6; i++) {
		b[i] = fx_open_path(paths[i], &f->opts);
		if (b[i] != f->bus)
			fail_msg("%s opened another bus", paths[i]);
	}
	for (int i = 0; i < 6; i++)
		assert_int_equal(litebus_close(b[i]), LITEBUS_OK);
	assert_bus_works(f->bus);
}

/* The same holds for a file that does not exist yet. */
static void
a_new_file_opened_through_a_symlinked_directory_is_one_bus(void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	char via_link[600], direct[400], link_dir[400];
	litebus *a, *b;

	snprintf(link_dir, sizeof link_dir, "%s/here", f->dir);
	assert_int_equal(symlink(".", link_dir), 0);
	snprintf(via_link, sizeof via_link, "%s/new.db", link_dir);
	snprintf(direct, sizeof direct, "%s/new.db", f->dir);
	a = fx_open_path(via_link, &f->opts);
	b = fx_open_path(direct, &f->opts);
	assert_ptr_equal(a, b);
	assert_int_equal(litebus_close(b), LITEBUS_OK);
	assert_bus_works(a);
	assert_int_equal(litebus_close(a), LITEBUS_OK);
}

/* A relative path names the same file as its absolute spelling. */
static void
a_relative_and_an_absolute_path_to_one_file_are_one_bus(void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	char cwd[4096];
	litebus *a, *b;

	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(f->dir), 0);
	a = fx_open_path("test.db", &f->opts);
	b = fx_open_path("./test.db", &f->opts);
	assert_int_equal(chdir(cwd), 0);
	assert_ptr_equal(a, b);
	assert_ptr_equal(fx_open_path(f->path, &f->opts), a);
	assert_int_equal(litebus_close(a), LITEBUS_OK);
	assert_int_equal(litebus_close(a), LITEBUS_OK);
	assert_bus_works(a); /* opened from another directory, still here */
	assert_int_equal(litebus_close(a), LITEBUS_OK);
}

/* A symlink to a file that does not exist yet: the first open creates the
 * file through it, and every later open of either name finds that bus. */
static void
a_new_file_created_through_a_dangling_symlink_is_one_bus(void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	char link_path[400], real_path[400];
	litebus *a, *b, *c;

	snprintf(link_path, sizeof link_path, "%s/link.db", f->dir);
	snprintf(real_path, sizeof real_path, "%s/real.db", f->dir);
	assert_int_equal(symlink("real.db", link_path), 0);
	a = fx_open_path(link_path, &f->opts);
	b = fx_open_path(link_path, &f->opts);
	c = fx_open_path(real_path, &f->opts);
	assert_ptr_equal(a, b);
	assert_ptr_equal(a, c);
	assert_int_equal(litebus_close(c), LITEBUS_OK);
	assert_int_equal(litebus_close(b), LITEBUS_OK);
	assert_bus_works(a);
	assert_int_equal(litebus_close(a), LITEBUS_OK);
}

/* Contract: "the options of this call must then name only channels the
 * open bus has (EINVAL otherwise) and are otherwise ignored." */
static void
a_second_open_asking_for_a_channel_the_bus_lacks_is_einval(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const first[] = {"orders", "audit", NULL};
	static const char *const subset[] = {"audit", NULL};
	static const char *const more[] = {"audit", "billing", NULL};
	litebus_options o;
	litebus *again;

	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->opts.channels = first;
	fx_open(f);

	o = f->opts;
	o.channels = more;
	assert_open_einval(&o, "billing");

	o.channels = subset;
	o.ring_capacity = 64; /* ignored */
	again = fx_open_path(f->path, &o);
	assert_ptr_equal(again, f->bus);
	assert_int_equal(litebus_channel_count(again),
			 LITEBUS_BUILTIN_CHANNELS + 2);
	assert_int_equal(litebus_close(again), LITEBUS_OK);
	o.channels = NULL;
	again = fx_open_path(f->path, &o);
	assert_ptr_equal(again, f->bus);
	assert_int_equal(litebus_close(again), LITEBUS_OK);
	assert_bus_works(f->bus);
}

/* Threads opening one file at once end up sharing one bus. */
struct opener {
	const litebus_options *o;
	struct fx_barrier *start;
	litebus *bus;
	int rc;
};

static void *
opener_main(void *p)
{
	struct opener *a = p;

	fx_barrier_wait(a->start);
	a->rc = litebus_open(a->o, &a->bus);
	return NULL;
}

static void
concurrent_opens_of_one_file_share_one_bus(void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	enum { T = 4 };
	struct fx_barrier start;
	struct opener op[T];
	pthread_t t[T];

	f->opts.path = f->path;
	fx_barrier_init(&start, T);
	for (int i = 0; i < T; i++) {
		op[i] = (struct opener){&f->opts, &start, NULL, -99};
		assert_int_equal(pthread_create(&t[i], NULL, opener_main, &op[i]),
				 0);
	}
	for (int i = 0; i < T; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < T; i++) {
		assert_int_equal(op[i].rc, LITEBUS_OK);
		assert_ptr_equal(op[i].bus, op[0].bus);
	}
	assert_bus_works(op[0].bus);
	for (int i = 0; i < T; i++)
		assert_int_equal(litebus_close(op[i].bus), LITEBUS_OK);
	fx_barrier_destroy(&start);
}

/* After the last close, opening the file again gives a new, working bus
 * over the same data. */
static void
reopening_after_the_last_close_gives_a_working_bus_on_the_same_data(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r;
	litebus_row row;
	int64_t ids[3];

	commit_events(f->bus, LITEBUS_COMPLETION, 3, ids);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	fx_open(f);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(row.event_id, ids[i]);
	}
	litebus_reader_close(r);
	assert_bus_works(f->bus);
}

/* Contract: "OK for NULL (no-op)". */
static void
closing_null_is_a_no_op(void **state)
{
	(void)state;
	assert_int_equal(litebus_close(NULL), LITEBUS_OK);
}

/* ------------------------------------------------------------------ */
/* In-memory buses                                                     */

/* Contract: "o == NULL means defaults (an in-memory database)". */
static void
open_with_null_options_gives_a_working_in_memory_bus(void **state)
{
	litebus *bus = NULL;

	(void)state;
	assert_int_equal(litebus_open(NULL, &bus), LITEBUS_OK);
	assert_non_null(bus);
	assert_int_equal(litebus_channel_count(bus), LITEBUS_BUILTIN_CHANNELS);
	assert_bus_works(bus);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* Contract: "In-memory databases are never shared." */
static void
two_in_memory_opens_are_different_buses(void **state)
{
	litebus_options o;
	litebus *a, *b, *c;
	litebus_reader *ra, *rb;
	litebus_row row;

	(void)state;
	litebus_options_init(&o);
	assert_int_equal(litebus_open(&o, &a), LITEBUS_OK);
	assert_int_equal(litebus_open(&o, &b), LITEBUS_OK);
	o.path = ":memory:";
	assert_int_equal(litebus_open(&o, &c), LITEBUS_OK);
	assert_ptr_not_equal(a, b);
	assert_ptr_not_equal(a, c);
	assert_ptr_not_equal(b, c);

	assert_int_equal(litebus_exec(a, fx_emit_job, NULL), 0);
	assert_int_equal(litebus_reader_open(a, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &ra),
			 LITEBUS_OK);
	assert_int_equal(litebus_reader_open(b, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &rb),
			 LITEBUS_OK);
	assert_int_equal(litebus_reader_next(ra, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(litebus_reader_next(rb, &row, 0), LITEBUS_TIMEOUT);
	litebus_reader_close(ra);
	litebus_reader_close(rb);
	assert_bus_works(c);
	assert_int_equal(litebus_close(a), LITEBUS_OK);
	assert_int_equal(litebus_close(b), LITEBUS_OK);
	assert_int_equal(litebus_close(c), LITEBUS_OK);
}

/* ------------------------------------------------------------------ */
/* Statistics                                                          */

struct counted {
	_Atomic int done;
};

static void
count_done(int status, void *arg)
{
	struct counted *c = arg;

	(void)status;
	atomic_fetch_add_explicit(&c->done, 1, memory_order_release);
}

static int
job_wait_twice(litebus_tx *tx, void *arg)
{
	(void)tx;
	fx_barrier_wait(arg);
	fx_barrier_wait(arg);
	return 0;
}

/* Contract, litebus_stats: batches "transactions the writer began",
 * commits "transactions committed", jobs "jobs run (committed or not)",
 * jobs_failed "jobs rolled back or failed with their batch", events
 * "events committed and published". */
static void
stats_count_batches_commits_jobs_failures_and_events(void **state)
{
	struct bus_fixture *f = *state;
	litebus_stats s0, s1, s2, s3;
	struct fx_barrier b;
	struct counted c;
	struct fx_emit three = {.channel = LITEBUS_COMPLETION, .count = 3};
	struct fx_emit two_then_fail = {
	    .channel = LITEBUS_COMPLETION, .count = 2, .fail = true};
	struct fx_emit one_then_fail = {.channel = LITEBUS_COMPLETION,
					.fail = true};

	assert_int_equal(litebus_stats_get(f->bus, &s0), LITEBUS_OK);
	assert_int_equal(s0.batches, 0);
	assert_int_equal(s0.commits, 0);
	assert_int_equal(s0.jobs, 0);
	assert_int_equal(s0.jobs_failed, 0);
	assert_int_equal(s0.events, 0);

	/* One job, three events. */
	assert_int_equal(litebus_exec(f->bus, fx_emit_job, &three), 0);
	assert_int_equal(litebus_stats_get(f->bus, &s1), LITEBUS_OK);
	assert_int_equal(s1.batches, 1);
	assert_int_equal(s1.commits, 1);
	assert_int_equal(s1.jobs, 1);
	assert_int_equal(s1.jobs_failed, 0);
	assert_int_equal(s1.events, 3);

	/* A job that rolls back: run and failed, no event. */
	assert_int_equal(litebus_exec(f->bus, fx_emit_job, &two_then_fail),
			 JOB_FAILED);
	assert_int_equal(litebus_stats_get(f->bus, &s2), LITEBUS_OK);
	assert_int_equal(s2.batches, 2);
	assert_true(s2.commits <= s2.batches);
	assert_int_equal(s2.jobs, 2);
	assert_int_equal(s2.jobs_failed, 1);
	assert_int_equal(s2.events, 3);

	/* Group commit: four jobs queued behind a busy writer share one
	 * transaction; the failing one is counted alone. */
	fx_barrier_init(&b, 2);
	atomic_init(&c.done, 0);
	assert_int_equal(litebus_submit(f->bus, job_wait_twice, &b, count_done,
					&c),
			 LITEBUS_OK);
	fx_barrier_wait(&b); /* the writer is inside job_wait_twice */
	for (int i = 0; i < 4; i++)
		assert_int_equal(litebus_submit(f->bus, fx_emit_job,
						i == 2 ? &one_then_fail : NULL,
						count_done, &c),
				 LITEBUS_OK);
	fx_barrier_wait(&b);
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
	while (atomic_load_explicit(&c.done, memory_order_acquire) < 5) {
		if (fx_now_ms() > deadline)
			fail_msg("the submitted jobs did not complete");
		sched_yield();
	}
	assert_int_equal(litebus_stats_get(f->bus, &s3), LITEBUS_OK);
	assert_int_equal(s3.batches, s2.batches + 2);
	assert_int_equal(s3.commits, s2.commits + 2);
	assert_int_equal(s3.jobs, s2.jobs + 5);
	assert_int_equal(s3.jobs_failed, s2.jobs_failed + 1);
	assert_int_equal(s3.events, s2.events + 3);
	assert_int_equal(litebus_stats_get(NULL, &s3), LITEBUS_EINVAL);
	assert_int_equal(litebus_stats_get(f->bus, NULL), LITEBUS_EINVAL);
	fx_barrier_destroy(&b);
}

/* A batch that cannot begin (another connection holds the write lock)
 * fails its job: counted as failed, nothing committed or published. */
static void
a_batch_that_fails_counts_its_job_as_failed_and_commits_nothing(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_stats s0, s1;
	sqlite3 *other;

	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->opts.busy_timeout_ms = 50;
	fx_open(f);
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(litebus_stats_get(f->bus, &s0), LITEBUS_OK);
	assert_int_equal(litebus_exec(f->bus, fx_emit_job, NULL), LITEBUS_EBUSY);
	assert_int_equal(litebus_stats_get(f->bus, &s1), LITEBUS_OK);
	assert_int_equal(s1.batches, s0.batches + 1);
	assert_int_equal(s1.commits, s0.commits);
	assert_int_equal(s1.jobs_failed, s0.jobs_failed + 1);
	assert_int_equal(s1.events, s0.events);
	assert_true(s1.busy_retries > s0.busy_retries);
	assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(other);
}

/* Contract, litebus_stats: sub_lags "LAGGED returned, all subscribers",
 * sub_skipped "events skipped by those lags", reader_lags "times a reader
 * fell back to the table". */
static void
lags_of_subscribers_and_readers_are_counted_on_the_bus(void **state)
{
	struct bus_fixture *f = *state; /* 8-slot rings */
	litebus_sub *sub;
	litebus_reader *r;
	litebus_event ev;
	litebus_row row;
	litebus_stats st;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_NOW, NULL, &r),
			 LITEBUS_OK);
	commit_events(f->bus, LITEBUS_COMPLETION, 40, NULL);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_LAGGED);
	for (int i = 0; i < 40; i++)
		assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
				 LITEBUS_OK);
	assert_int_equal(litebus_stats_get(f->bus, &st), LITEBUS_OK);
	assert_int_equal(st.sub_lags, 1);
	assert_int_equal(st.sub_skipped, litebus_sub_skipped(sub));
	assert_true(st.sub_skipped > 0);
	assert_true(st.reader_lags >= 1);
	assert_int_equal(st.events, 40);
	litebus_unsubscribe(sub);
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* Handles that outlive the bus                                        */

/* Contract (litebus.h): a sub or reader "keeps the bus's memory alive: it
 * may outlive litebus_close(), keeps returning what was committed, then
 * LITEBUS_CLOSED, and must still be closed". */
static void
a_subscriber_and_a_reader_outliving_close_drain_then_report_closed(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub_stats ss;
	litebus_reader_stats rs;
	litebus_sub *sub;
	litebus_reader *r;
	litebus_event ev;
	litebus_row row;
	int64_t ids[3];
	int sfd, rfd;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	sfd = litebus_sub_fd(sub);
	rfd = litebus_reader_fd(r);
	assert_true(sfd >= 0 && rfd >= 0);
	commit_events(f->bus, LITEBUS_COMPLETION, 3, ids);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(litebus_recv(sub, &ev, FX_WAIT_MS), LITEBUS_OK);
		assert_int_equal(ev.event_id, ids[i]);
		assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(row.event_id, ids[i]);
	}
	assert_int_equal(litebus_recv(sub, &ev, -1), LITEBUS_CLOSED);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_CLOSED);
	assert_int_equal(litebus_reader_next(r, &row, -1), LITEBUS_CLOSED);
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_CLOSED);
	assert_true(fx_fd_readable(sfd, 0));
	assert_true(fx_fd_readable(rfd, 0));
	assert_int_equal(litebus_sub_stats_get(sub, &ss), LITEBUS_OK);
	assert_int_equal(ss.received, 3);
	assert_int_equal(litebus_reader_stats_get(r, &rs), LITEBUS_OK);
	assert_int_equal(rs.delivered, 3);
	assert_int_equal(litebus_reader_cursor(r), ids[2]);
	/* Either may be freed first; the last one frees the bus. */
	litebus_unsubscribe(sub);
	litebus_reader_close(r);
}

/* Contract, litebus_options.channels: a valid name "must differ from
 * every other channel name"; channel "x" owns the index
 * litebus_outbox_x_partition, so "x_partition" next to "x" (built-in or
 * declared, any case) is refused with EINVAL and the file untouched. */
static void
a_channel_named_like_another_channels_index_is_einval(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const pairs[][3] = {
	    {"x", "x_partition", NULL},
	    {"X_PARTITION", "x", NULL},
	    {"completion_partition", NULL, NULL},
	    {"Lease_History_Partition", NULL, NULL},
	};
	struct stat st;

	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		litebus *bus = NULL;
		int rc;

		f->opts.path = f->path;
		f->opts.channels = pairs[i];
		rc = litebus_open(&f->opts, &bus);
		if (rc != LITEBUS_EINVAL)
			fail_msg("%s/%s: open returned %s", pairs[i][0],
				 pairs[i][1] != NULL ? pairs[i][1] : "-",
				 litebus_errname(rc));
		assert_non_null(strstr(litebus_last_errmsg(), "_partition"));
		assert_int_equal(stat(f->path, &st), -1);
	}
	/* A name that only ends like an index is fine on its own. */
	{
		static const char *const ok[] = {"orders_partition", NULL};
		litebus *bus = NULL;

		f->opts.channels = ok;
		assert_int_equal(litebus_open(&f->opts, &bus), LITEBUS_OK);
		assert_int_equal(litebus_close(bus), LITEBUS_OK);
	}
	f->opts.channels = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(options_init_fills_in_the_documented_defaults),
	    cmocka_unit_test(
		ring_capacity_must_be_a_power_of_two_between_the_bounds),
	    cmocka_unit_test(
		bad_durability_max_batch_or_reader_batch_is_einval),
	    cmocka_unit_test(invalid_channel_names_are_einval_with_a_message),
	    cmocka_unit_test(
		channel_names_differing_only_in_case_are_duplicates),
	    cmocka_unit_test(the_longest_name_and_the_most_channels_are_accepted),
	    cmocka_unit_test(
		custom_channels_get_ids_after_the_built_in_ones_in_order),
	    cmocka_unit_test(an_unknown_channel_name_is_enochannel),
	    cmocka_unit_test(open_keeps_its_own_copy_of_the_channel_names),
	    FX_TEST_TMPDIR(open_refuses_a_null_handle_an_empty_path_and_a_missing_directory),
	    FX_TEST_TINY(opening_the_same_file_twice_returns_the_same_bus),
	    FX_TEST_TINY(the_bus_keeps_working_until_its_last_close),
	    FX_TEST_TINY(another_spelling_of_the_same_path_returns_the_same_bus),
	    FX_TEST_TMPDIR(a_new_file_opened_through_a_symlinked_directory_is_one_bus),
	    FX_TEST_TMPDIR(a_relative_and_an_absolute_path_to_one_file_are_one_bus),
	    FX_TEST_TMPDIR(a_new_file_created_through_a_dangling_symlink_is_one_bus),
	    FX_TEST_TINY(a_second_open_asking_for_a_channel_the_bus_lacks_is_einval),
	    FX_TEST_TMPDIR(concurrent_opens_of_one_file_share_one_bus),
	    FX_TEST_TINY(reopening_after_the_last_close_gives_a_working_bus_on_the_same_data),
	    cmocka_unit_test(closing_null_is_a_no_op),
	    cmocka_unit_test(
		open_with_null_options_gives_a_working_in_memory_bus),
	    cmocka_unit_test(two_in_memory_opens_are_different_buses),
	    FX_TEST_TINY(stats_count_batches_commits_jobs_failures_and_events),
	    FX_TEST_TINY(a_batch_that_fails_counts_its_job_as_failed_and_commits_nothing),
	    FX_TEST_TINY(lags_of_subscribers_and_readers_are_counted_on_the_bus),
	    FX_TEST_TMPDIR(a_channel_named_like_another_channels_index_is_einval),
	    FX_TEST_TINY(a_subscriber_and_a_reader_outliving_close_drain_then_report_closed),
	};

	return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
