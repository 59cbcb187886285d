/* SPDX-License-Identifier: MIT */
/*
 * test_abi.c - the ABI policy (lib/abi.c): a program built against an
 * older litebus.h, whose structs are shorter, and one built against a
 * newer litebus.h, whose structs are longer.
 *
 * The "old binary" is this program's frozen copy of an older header's
 * layouts below (each struct without its last field or fields), calling
 * the _sized entry points exactly as that header's macros would have:
 * with sizeof of the frozen struct.  Every such struct ends where an
 * unreadable, unwritable page begins (guarded()), so a single byte read
 * or written past its size kills the test with SIGSEGV.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "fixture.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* The frozen older layouts                                            */

typedef struct old_retention {
	const char *channel;
	int64_t max_age_ms;
	int64_t max_rows;
	/* no `hard` */
} old_retention;

typedef struct old_options {
	const char *path;
	uint32_t ring_capacity;
	int durability;
	uint32_t max_batch;
	const char *const *channels;
	uint32_t busy_timeout_ms;
	uint32_t max_queue;
	uint32_t reader_batch;
	int checkpoint_mode;
	uint32_t checkpoint_pages;
	int adopt;
	const old_retention *retention;
	uint32_t prune_batch_rows;
	uint32_t prune_interval_ms;
	/* no read_only, watch, watch_interval_ms */
} old_options;

/* litebus_options as the header had it before reader_inline_bytes: it
 * ended at watch_interval_ms, with 4 bytes of tail padding on LP64. */
typedef struct watch_options {
	const char *path;
	uint32_t ring_capacity;
	int durability;
	uint32_t max_batch;
	const char *const *channels;
	uint32_t busy_timeout_ms;
	uint32_t max_queue;
	uint32_t reader_batch;
	int checkpoint_mode;
	uint32_t checkpoint_pages;
	int adopt;
	const old_retention *retention;
	uint32_t prune_batch_rows;
	uint32_t prune_interval_ms;
	int read_only;
	int watch;
	uint32_t watch_interval_ms;
	/* no reader_inline_bytes */
} watch_options;

typedef struct old_record {
	int64_t partition_key;
	const void *subject;
	size_t subject_len;
	const char *event_type;
	const char *ns;
	const char *instance_tag;
	const void *payload;
	size_t payload_len;
	/* no occurred_at_ms */
} old_record;

typedef struct old_event {
	int64_t event_id;
	int64_t partition_key;
	int channel;
	uint32_t subject_len;
	int64_t committed_at_ms;
	/* no subject_prefix */
} old_event;

typedef struct old_filter {
	int64_t partition_key;
	int any_partition;
	const char *ns;
	/* no instance_tag */
} old_filter;

typedef struct old_row {
	int64_t event_id, partition_key;
	const void *subject;
	size_t subject_len;
	const char *event_type, *ns, *instance_tag;
	const void *payload;
	size_t payload_len;
	int64_t occurred_at_ms;
	/* no committed_at_ms */
} old_row;

typedef struct old_stats {
	uint64_t batches, commits, jobs, jobs_failed, events, busy_retries,
	    sub_lags, sub_skipped, reader_lags, checkpoints;
	/* no queued */
} old_stats;

typedef struct old_two_counters {
	uint64_t first,
	    second; /* sub: received, lags; reader: delivered, lags */
		    /* no third counter (skipped / queries) */
} old_two_counters;

typedef struct old_consumer_info {
	char name[LITEBUS_CONSUMER_NAME_MAX + 1];
	int channel;
	int64_t position;
	int64_t head;
	int64_t lag;
	int64_t acked_at_ms;
	/* no `open` */
} old_consumer_info;

/* Each frozen struct is a true prefix of today's, and shorter. */
#define PREFIX_OF(old, cur, last)                                              \
	_Static_assert(offsetof(old, last) == offsetof(cur, last) &&           \
			   sizeof(old) < sizeof(cur),                          \
		       #old " is a shorter prefix of " #cur)
PREFIX_OF(old_options, litebus_options, prune_interval_ms);
PREFIX_OF(watch_options, litebus_options, watch_interval_ms);
PREFIX_OF(old_retention, litebus_retention, max_rows);
PREFIX_OF(old_record, litebus_record, payload_len);
PREFIX_OF(old_event, litebus_event, committed_at_ms);
PREFIX_OF(old_filter, litebus_filter, ns);
PREFIX_OF(old_row, litebus_row, occurred_at_ms);
PREFIX_OF(old_stats, litebus_stats, checkpoints);
PREFIX_OF(old_consumer_info, litebus_consumer_info, acked_at_ms);
_Static_assert(sizeof(old_two_counters) < sizeof(litebus_sub_stats) &&
		   sizeof(old_two_counters) < sizeof(litebus_reader_stats),
	       "two counters are a shorter prefix of the per-handle stats");

/* ------------------------------------------------------------------ */
/* Guarded memory                                                      */

/* `size` bytes whose end is the start of a PROT_NONE page: the whole
 * mapping is 0 but for the caller's writes.  Freed with unguard(). */
static void *
guarded(size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = (size + page - 1) / page * page;
	unsigned char *base;

	assert_true(size % 8 == 0); /* keeps the struct aligned */
	base = mmap(NULL, span + page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(base != MAP_FAILED);
	assert_int_equal(mprotect(base + span, page, PROT_NONE), 0);
	return base + span - size;
}

static void
unguard(void *p, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = (size + page - 1) / page * page;
	unsigned char *base = (unsigned char *)p + size - span;

	assert_int_equal(munmap(base, span + page), 0);
}

#define GUARDED(type) ((type *)guarded(sizeof(type)))
#define UNGUARD(p) unguard((p), sizeof *(p))

/* The options of a test bus, as the old binary would pass them. */
static old_options *
old_options_for(const char *path)
{
	old_options *o = GUARDED(old_options);

	litebus_options_init_sized((litebus_options *)o, sizeof *o);
	o->path = path;
	o->ring_capacity = 8;
	return o;
}

static litebus *
old_open(const old_options *o)
{
	litebus *bus = NULL;
	int rc = litebus_open_sized((const litebus_options *)o, sizeof *o,
				    sizeof(old_retention), &bus);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_open_sized: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
	return bus;
}

/* ------------------------------------------------------------------ */
/* An older binary                                                     */

/* Header, ABI policy: "From an older header, fields the struct lacks
 * take their defaults (litebus_options_init()'s ...)" and "The library
 * never reads or writes a byte beyond that size". */
static void
older_options_are_filled_and_read_up_to_their_size_and_lack_only_defaults(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_options want;
	old_options *o = GUARDED(old_options);

	litebus_options_init(&want);
	litebus_options_init_sized((litebus_options *)o, sizeof *o);
	assert_memory_equal(o, &want, sizeof *o);
	o->path = f->path;

	/* read_only, which the old struct lacks, is 0: the bus writes. */
	f->bus = old_open(o);
	fx_commit_one(f->bus, LITEBUS_COMPLETION);
	UNGUARD(o);
}

/* Header, ABI policy: "Later fields are added whole, never into what was
 * padding".  A program built before reader_inline_bytes passes a struct
 * whose tail padding holds garbage: the bus opens, and the option it
 * lacks takes its default (192: rows come from memory), not the garbage
 * (0xffffffff would be EINVAL). */
static void
an_older_programs_tail_padding_is_never_read_as_a_field(void **state)
{
	struct bus_fixture *f = *state;
	watch_options *o = GUARDED(watch_options);
	size_t end = offsetof(watch_options, watch_interval_ms) +
		     sizeof o->watch_interval_ms;
	litebus_reader_stats st;
	litebus_reader *r;
	litebus *bus = NULL;

	assert_true(end < sizeof *o); /* there is tail padding */
	litebus_options_init_sized((litebus_options *)o, sizeof *o);
	memset((unsigned char *)o + end, 0xff, sizeof *o - end);
	o->path = f->path;
	assert_int_equal(litebus_open_sized((const litebus_options *)o,
					    sizeof *o,
					    sizeof(litebus_retention), &bus),
			 LITEBUS_OK);
	r = fx_reader_open(bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	fx_expect_row(r, fx_commit_one(bus, LITEBUS_COMPLETION));
	assert_int_equal(litebus_reader_stats_get(r, &st), LITEBUS_OK);
	assert_int_equal(st.memory_rows, 1);
	litebus_reader_close(r);
	litebus_close(bus);
	UNGUARD(o);
}

/* Header, ABI policy: "for arrays (the retention list, ...) the entries
 * are that size apart"; litebus_retention: "ended by an entry whose
 * channel is NULL". */
static void
an_older_retention_list_is_read_entry_by_entry_at_its_own_stride(void **state)
{
	struct bus_fixture *f = *state;
	old_options *o = old_options_for(f->path);
	old_retention *list = guarded(2 * sizeof(old_retention));
	int64_t head = 0, oldest = 0;
	uint64_t deadline;

	list[0].channel = "completion";
	list[0].max_rows = 2;
	list[1].channel = NULL; /* ends at the guard page */
	o->retention = list;
	o->prune_interval_ms = 1;
	f->bus = old_open(o);
	commit_events(f->bus, LITEBUS_COMPLETION, 6, NULL);

	/* "keep the newest max_rows event_ids": 5 and 6 stay. */
	deadline = fx_now_ms() + FX_WAIT_MS;
	do {
		assert_int_equal(litebus_channel_head(f->bus,
						      LITEBUS_COMPLETION, &head,
						      &oldest),
				 LITEBUS_OK);
	} while (oldest != 5 && fx_now_ms() < deadline);
	assert_int_equal(head, 6);
	assert_int_equal(oldest, 5);
	unguard(list, 2 * sizeof(old_retention));
	UNGUARD(o);
}

struct old_emit {
	const old_record *rec;
	int64_t id;
	int rc;
};

static int
old_emit_job(litebus_tx *tx, void *arg)
{
	struct old_emit *e = arg;

	e->rc = litebus_emit_sized(tx, LITEBUS_COMPLETION,
				   (const litebus_record *)e->rec,
				   sizeof *e->rec, &e->id);
	return e->rc;
}

/* Header, ABI policy: "0 for every other struct - a field added later
 * means 'as before' when it is 0": a record without occurred_at_ms is
 * stamped now; a filter without instance_tag matches any tag. */
static void
an_older_record_and_filter_are_read_up_to_their_size(void **state)
{
	struct bus_fixture *f = *state;
	old_record *rec = GUARDED(old_record);
	old_filter *flt = GUARDED(old_filter);
	struct old_emit e = {rec, 0, 0};
	litebus_reader *r = NULL;
	litebus_row row;
	int64_t before = fx_wall_ms();

	flt->any_partition = 1;
	flt->ns = "a";
	assert_int_equal(litebus_reader_open_sized(
			     f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			     (const litebus_filter *)flt, sizeof *flt, &r),
			 LITEBUS_OK);

	rec->event_type = "success";
	rec->ns = "b";
	rec->instance_tag = "t";
	assert_int_equal(litebus_exec(f->bus, old_emit_job, &e), LITEBUS_OK);
	rec->ns = "a";
	assert_int_equal(litebus_exec(f->bus, old_emit_job, &e), LITEBUS_OK);

	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(row.event_id, e.id);
	assert_string_equal(row.ns, "a");
	assert_string_equal(row.instance_tag, "t");
	assert_true(row.occurred_at_ms >= before);
	litebus_reader_close(r);
	UNGUARD(flt);
	UNGUARD(rec);
}

/* Header, ABI policy: "results the struct has no room for are not
 * written", for every struct the library fills in. */
static void
results_go_into_older_structs_up_to_their_size_and_not_a_byte_more(void **state)
{
	struct bus_fixture *f = *state;
	old_event *ev = GUARDED(old_event);
	old_row *row = GUARDED(old_row);
	old_stats *st = GUARDED(old_stats);
	old_two_counters *ss = GUARDED(old_two_counters);
	old_two_counters *rs = GUARDED(old_two_counters);
	litebus_sub *sub = NULL;
	litebus_reader *r = NULL;
	litebus_stats full;
	int64_t id;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	id = fx_commit_one(f->bus, LITEBUS_COMPLETION);

	assert_int_equal(litebus_recv_sized(sub, (litebus_event *)ev,
					    sizeof *ev, FX_WAIT_MS),
			 LITEBUS_OK);
	assert_int_equal(ev->event_id, id);
	assert_int_equal(ev->channel, LITEBUS_COMPLETION);
	assert_true(ev->committed_at_ms > 0);

	assert_int_equal(litebus_reader_next_sized(r, (litebus_row *)row,
						   sizeof *row, FX_WAIT_MS),
			 LITEBUS_OK);
	assert_int_equal(row->event_id, id);
	assert_string_equal(row->event_type, "success");
	assert_true(row->occurred_at_ms > 0);

	assert_int_equal(
	    litebus_stats_get_sized(f->bus, (litebus_stats *)st, sizeof *st),
	    LITEBUS_OK);
	assert_int_equal(litebus_stats_get(f->bus, &full), LITEBUS_OK);
	assert_int_equal(st->commits, full.commits);
	assert_int_equal(st->events, full.events);

	assert_int_equal(litebus_sub_stats_get_sized(
			     sub, (litebus_sub_stats *)ss, sizeof *ss),
			 LITEBUS_OK);
	assert_int_equal(ss->first, 1); /* received */
	assert_int_equal(litebus_reader_stats_get_sized(
			     r, (litebus_reader_stats *)rs, sizeof *rs),
			 LITEBUS_OK);
	assert_int_equal(rs->first, 1); /* delivered */

	litebus_reader_close(r);
	litebus_unsubscribe(sub);
	UNGUARD(rs);
	UNGUARD(ss);
	UNGUARD(st);
	UNGUARD(row);
	UNGUARD(ev);
}

/* Header, ABI policy: "for arrays (..., litebus_consumer_list's out[])
 * the entries are that size apart"; consumers' rows and info too. */
static void
consumer_rows_info_and_lists_go_into_older_structs_at_their_size(void **state)
{
	struct bus_fixture *f = *state;
	const char *names[3] = {"a", "b", "c"};
	litebus_consumer *c[3];
	old_consumer_info *list = guarded(3 * sizeof(old_consumer_info));
	old_consumer_info *info = GUARDED(old_consumer_info);
	old_row *row = GUARDED(old_row);
	size_t count = 0;
	int64_t id;

	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    litebus_consumer_open(f->bus, LITEBUS_COMPLETION, names[i],
					  LITEBUS_FROM_START, NULL, &c[i]),
		    LITEBUS_OK);
	id = fx_commit_one(f->bus, LITEBUS_COMPLETION);
	assert_int_equal(litebus_consumer_next_sized(c[1], (litebus_row *)row,
						     sizeof *row, FX_WAIT_MS),
			 LITEBUS_OK);
	assert_int_equal(row->event_id, id);
	assert_int_equal(litebus_consumer_ack(c[1], id), LITEBUS_OK);
	assert_int_equal(litebus_consumer_flush(c[1]), LITEBUS_OK);

	assert_int_equal(litebus_consumer_stats_get_sized(
			     c[1], (litebus_consumer_info *)info, sizeof *info),
			 LITEBUS_OK);
	assert_string_equal(info->name, "b");
	assert_int_equal(info->position, id);
	assert_int_equal(info->lag, 0);

	assert_int_equal(
	    litebus_consumer_list_sized(f->bus, LITEBUS_COMPLETION,
					(litebus_consumer_info *)list, 3,
					sizeof *list, &count),
	    LITEBUS_OK);
	assert_int_equal(count, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(list[i].name, names[i]);
		assert_int_equal(list[i].channel, LITEBUS_COMPLETION);
		assert_int_equal(list[i].position, i == 1 ? id : 0);
		assert_int_equal(list[i].head, id);
	}
	/* Fewer slots than consumers: count is still the total. */
	memset(list, 0, 3 * sizeof *list);
	assert_int_equal(
	    litebus_consumer_list_sized(f->bus, LITEBUS_COMPLETION,
					(litebus_consumer_info *)(list + 2), 1,
					sizeof *list, &count),
	    LITEBUS_OK);
	assert_int_equal(count, 3);
	assert_string_equal(list[2].name, "a");
	assert_string_equal(list[1].name, "");

	for (int i = 0; i < 3; i++)
		litebus_consumer_close(c[i]);
	UNGUARD(row);
	UNGUARD(info);
	unguard(list, 3 * sizeof(old_consumer_info));
}

/* ------------------------------------------------------------------ */
/* A newer binary                                                      */

struct newer_options {
	litebus_options o;
	uint64_t future_field;
};

struct newer_stats {
	litebus_stats st;
	uint64_t future_counter;
};

/* Header, ABI policy: "From a newer header on an older library, bytes
 * the library does not know must be 0 in what the program passes in, or
 * the call fails with LITEBUS_EINVAL (an option is never silently
 * ignored), and are set to 0 in what it fills in." */
static void
a_newer_struct_must_leave_unknown_input_zero_and_gets_unknown_output_zeroed(
    void **state)
{
	struct bus_fixture *f = *state;
	struct newer_options *o = GUARDED(struct newer_options);
	struct newer_stats *st = GUARDED(struct newer_stats);
	litebus *bus = NULL;

	memset(o, 0xab, sizeof *o);
	litebus_options_init_sized(&o->o, sizeof *o);
	assert_int_equal(o->future_field, 0);
	assert_int_equal(o->o.ring_capacity, 4096);
	o->o.path = f->path;

	o->future_field = 1;
	assert_int_equal(litebus_open_sized(&o->o, sizeof *o,
					    sizeof(litebus_retention), &bus),
			 LITEBUS_EINVAL);
	assert_null(bus);
	assert_non_null(strstr(litebus_last_errmsg(), "newer litebus"));

	o->future_field = 0;
	assert_int_equal(litebus_open_sized(&o->o, sizeof *o,
					    sizeof(litebus_retention), &bus),
			 LITEBUS_OK);
	f->bus = bus;
	fx_commit_one(bus, LITEBUS_COMPLETION);

	memset(st, 0xab, sizeof *st);
	assert_int_equal(litebus_stats_get_sized(bus, &st->st, sizeof *st),
			 LITEBUS_OK);
	assert_int_equal(st->st.commits, 1);
	assert_int_equal(st->future_counter, 0);
	UNGUARD(st);
	UNGUARD(o);
}

/* Header, ABI policy: "A size smaller than the struct's first field is
 * EINVAL." */
static void
a_size_smaller_than_the_first_field_is_einval(void **state)
{
	struct bus_fixture *f = *state;
	litebus_options o;
	litebus_stats st;
	litebus *bus = NULL;

	litebus_options_init(&o);
	o.path = f->path;
	assert_int_equal(
	    litebus_open_sized(&o, 4, sizeof(litebus_retention), &bus),
	    LITEBUS_EINVAL);
	assert_null(bus);
	assert_int_equal(
	    litebus_open_sized(&o, sizeof o, 0, &bus),
	    LITEBUS_OK); /* no retention list: its size is unused */
	f->bus = bus;
	assert_int_equal(litebus_stats_get_sized(bus, &st, 0), LITEBUS_EINVAL);
	assert_int_equal(litebus_stats_get_sized(bus, &st, 7), LITEBUS_EINVAL);
	assert_int_equal(litebus_stats_get_sized(bus, &st, 8), LITEBUS_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(
		older_options_are_filled_and_read_up_to_their_size_and_lack_only_defaults),
	    FX_TEST_TMPDIR(
		an_older_retention_list_is_read_entry_by_entry_at_its_own_stride),
	    FX_TEST_TMPDIR(
		an_older_programs_tail_padding_is_never_read_as_a_field),
	    FX_TEST_TINY(an_older_record_and_filter_are_read_up_to_their_size),
	    FX_TEST_TINY(
		results_go_into_older_structs_up_to_their_size_and_not_a_byte_more),
	    FX_TEST_TINY(
		consumer_rows_info_and_lists_go_into_older_structs_at_their_size),
	    FX_TEST_TMPDIR(
		a_newer_struct_must_leave_unknown_input_zero_and_gets_unknown_output_zeroed),
	    FX_TEST_TMPDIR(a_size_smaller_than_the_first_field_is_einval),
	};

	return cmocka_run_group_tests_name("abi", tests, NULL, NULL);
}
