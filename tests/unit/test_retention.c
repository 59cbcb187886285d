/* SPDX-License-Identifier: MIT */
/*
 * test_retention.c - lib/retention.c: retention options, the pruner
 * (max_age_ms, max_rows, hard and soft against durable consumers'
 * positions), litebus_prune, chunking, pruned_through,
 * litebus_channel_head, and the migration of a schema version 1 file.
 */
#include "fixture.h"

#include "bus.h" /* the internal prune counters (stats.h) */

#include <sched.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* Open f->bus on f->path with the defaults and these changes. */
static void
open_with(struct bus_fixture *f, const litebus_retention *policies,
	  uint32_t batch_rows, uint32_t interval_ms)
{
	litebus_options_init(&f->opts);
	f->opts.ring_capacity = 8;
	f->opts.retention = policies;
	if (batch_rows != 0)
		f->opts.prune_batch_rows = batch_rows;
	if (interval_ms != 0)
		f->opts.prune_interval_ms = interval_ms;
	fx_open(f);
}

static void
close_bus(struct bus_fixture *f)
{
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
}

static void
head_of(litebus *bus, int channel, int64_t *head, int64_t *oldest)
{
	int rc = litebus_channel_head(bus, channel, head, oldest);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_channel_head: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
}

static uint64_t
stat_of(litebus *bus, _Atomic uint64_t *counter)
{
	(void)bus;
	return atomic_load_explicit(counter, memory_order_relaxed);
}

/* Wait (bounded) until the pruner brought the channel's oldest row to
 * `oldest`; fail if it goes past it or never gets there. */
static void
wait_for_oldest(litebus *bus, int channel, int64_t oldest)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
	int64_t h, o;

	for (;;) {
		head_of(bus, channel, &h, &o);
		if (o == oldest)
			return;
		if (o > oldest)
			fail_msg("pruned too far: oldest %lld, expected %lld",
				 (long long)o, (long long)oldest);
		if (fx_now_ms() > deadline)
			fail_msg("the pruner did not bring oldest to %lld "
				 "(it is %lld)",
				 (long long)oldest, (long long)o);
		sched_yield();
	}
}

/* Wait (bounded) until the pruner has made `passes` more passes: what
 * it would prune by then, it has pruned. */
static void
wait_for_passes(litebus *bus, uint64_t passes)
{
	uint64_t want = stat_of(bus, &bus->stats.prune_passes) + passes;
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;

	while (stat_of(bus, &bus->stats.prune_passes) < want) {
		if (fx_now_ms() > deadline)
			fail_msg("the pruner made no pass in %d ms",
				 FX_WAIT_MS);
		sched_yield();
	}
}

static int64_t
pruned_through(const char *path, const char *key)
{
	char sql[160];

	snprintf(sql, sizeof sql,
		 "SELECT coalesce((SELECT pruned_through FROM litebus_pruned "
		 "WHERE name = '%s'), 0)",
		 key);
	return fx_sql_int_at(path, sql);
}

static void
expect_open_einval(struct bus_fixture *f, const char *needle)
{
	litebus *bus = NULL;
	int rc;

	f->opts.path = f->path;
	rc = litebus_open(&f->opts, &bus);
	assert_int_equal(rc, LITEBUS_EINVAL);
	assert_null(bus);
	if (strstr(litebus_last_errmsg(), needle) == NULL)
		fail_msg("message '%s' does not mention '%s'",
			 litebus_last_errmsg(), needle);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

/* Header: "Most rows one pruning transaction deletes (1..1000000) ...
 * Default 1000." and "How often retention is applied ... Default 1000." */
static void
options_init_sets_the_retention_defaults(void **state)
{
	litebus_options o;

	(void)state;
	memset(&o, 0xff, sizeof o);
	litebus_options_init(&o);
	assert_null(o.retention);
	assert_int_equal(o.prune_batch_rows, 1000);
	assert_int_equal(o.prune_interval_ms, 1000);
}

/* Header: litebus_open returns "EINVAL (bad option or channel name)". */
static void
open_refuses_bad_retention_options_with_einval(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const channels[] = {"Orders", NULL};
	litebus_retention unknown[] = {{.channel = "nosuch", .max_rows = 1},
				       {0}};
	litebus_retention neg_age[] = {
	    {.channel = "completion", .max_age_ms = -1}, {0}};
	litebus_retention neg_rows[] = {{.channel = "orders", .max_rows = -5},
					{0}};
	litebus_retention twice[] = {{.channel = "orders", .max_rows = 1},
				     {.channel = "ORDERS", .max_age_ms = 1},
				     {0}};

	litebus_options_init(&f->opts);
	f->opts.channels = channels;
	f->opts.retention = unknown;
	expect_open_einval(f, "nosuch");
	f->opts.retention = neg_age;
	expect_open_einval(f, "max_age_ms -1");
	f->opts.retention = neg_rows;
	expect_open_einval(f, "max_rows -5");
	f->opts.retention = twice;
	expect_open_einval(f, "two retention policies");
	f->opts.retention = NULL;
	f->opts.prune_batch_rows = 0;
	expect_open_einval(f, "prune_batch_rows");
	f->opts.prune_batch_rows = 1000001;
	expect_open_einval(f, "prune_batch_rows");
	f->opts.prune_batch_rows = 1000;
	f->opts.prune_interval_ms = 0;
	expect_open_einval(f, "prune_interval_ms");
	/* Nothing was created by the refused opens. */
	assert_int_equal(fx_file_len(f->path), 0);
}

/* ------------------------------------------------------------------ */
/* The pruner                                                          */

/* Header: "A row is pruned when it is ... outside the newest max_rows
 * event_ids"; the policies are "Copied by litebus_open()". */
static void
max_rows_keeps_the_newest_rows(void **state)
{
	struct bus_fixture *f = *state;
	litebus_retention policy[] = {{.channel = "completion", .max_rows = 10},
				      {0}};
	int64_t h, o;

	open_with(f, policy, 0, 1);
	policy[0].max_rows = 1; /* copied: this changes nothing */
	commit_batch(f->bus, LITEBUS_COMPLETION, 50, NULL);
	wait_for_oldest(f->bus, LITEBUS_COMPLETION, 41);
	wait_for_passes(f->bus, 3);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 50);
	assert_int_equal(o, 41);
	assert_int_equal(fx_count_rows(f->path, "completion"), 10);
	assert_int_equal(pruned_through(f->path, "completion"), 40);
	/* Channels without a policy keep everything. */
	commit_batch(f->bus, LITEBUS_STREAM_FRAME, 30, NULL);
	wait_for_passes(f->bus, 2);
	assert_int_equal(fx_count_rows(f->path, "stream_frame"), 30);
}

/* Header: "A row is pruned when it is older than max_age_ms (by
 * committed_at_ms)"; "Pruning only ever removes a prefix of the
 * channel". */
static void
max_age_prunes_the_old_prefix_only(void **state)
{
	struct bus_fixture *f = *state;
	litebus_retention policy[] = {
	    {.channel = "completion", .max_age_ms = 3600 * 1000}, {0}};

	open_with(f, NULL, 0, 0);
	commit_batch(f->bus, LITEBUS_COMPLETION, 10, NULL);
	close_bus(f);
	/* Rows 1-3 and 5-6 were committed two hours ago, row 4 just now:
	 * only 1-3 are an old prefix. */
	fx_sql_run_at(f->path,
		      "UPDATE litebus_outbox_completion SET committed_at_ms = "
		      "committed_at_ms - 7200000 WHERE event_id IN "
		      "(1, 2, 3, 5, 6)");
	open_with(f, policy, 0, 1);
	wait_for_oldest(f->bus, LITEBUS_COMPLETION, 4);
	wait_for_passes(f->bus, 3);
	assert_int_equal(fx_count_rows(f->path, "completion"), 7);
	assert_int_equal(pruned_through(f->path, "completion"), 3);
	/* Once row 4 is old too, 4-6 go. */
	close_bus(f);
	fx_sql_run_at(f->path,
		      "UPDATE litebus_outbox_completion SET committed_at_ms = "
		      "committed_at_ms - 7200000 WHERE event_id = 4");
	open_with(f, policy, 0, 1);
	wait_for_oldest(f->bus, LITEBUS_COMPLETION, 7);
}

/* Header: "never a row that a durable consumer of the channel has not
 * acknowledged, unless `hard` is set: then the limits win". */
static void
soft_retention_stops_at_a_consumer_and_hard_does_not(void **state)
{
	struct bus_fixture *f = *state;
	litebus_retention soft[] = {{.channel = "completion", .max_rows = 2},
				    {0}};
	litebus_retention hard[] = {
	    {.channel = "completion", .max_rows = 2, .hard = 1}, {0}};

	open_with(f, NULL, 0, 0);
	commit_batch(f->bus, LITEBUS_COMPLETION, 20, NULL);
	close_bus(f);
	/* A consumer that acknowledged up to 5 (consumer.c is another
	 * module: its row is written as it would be). */
	fx_sql_run_at(f->path,
		      "INSERT INTO litebus_consumer(channel, name, position, "
		      "acked_at_ms) VALUES('completion', 'slow', 5, 0), "
		      "('completion', 'fast', 15, 0), ('stream_frame', 'x', "
		      "0, 0)");
	open_with(f, soft, 0, 1);
	wait_for_oldest(f->bus, LITEBUS_COMPLETION, 6);
	wait_for_passes(f->bus, 3);
	assert_int_equal(fx_count_rows(f->path, "completion"), 15);
	/* The consumer moves on: so does retention. */
	fx_sql_run_at(f->path, "UPDATE litebus_consumer SET position = 12 "
			       "WHERE name = 'slow'");
	wait_for_oldest(f->bus, LITEBUS_COMPLETION, 13);
	close_bus(f);
	open_with(f, hard, 0, 1);
	wait_for_oldest(f->bus, LITEBUS_COMPLETION, 19);
}

/* Header, litebus_prune: "never past a durable consumer's acknowledged
 * position: rows a consumer still needs stay, and the call prunes what
 * it may". */
static void
prune_deletes_below_before_event_id_but_not_past_a_consumer(void **state)
{
	struct bus_fixture *f = *state;
	int64_t h, o;

	open_with(f, NULL, 0, 0);
	commit_batch(f->bus, LITEBUS_COMPLETION, 20, NULL);
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 1),
			 LITEBUS_OK);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(o, 1);
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 4),
			 LITEBUS_OK);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(o, 4);
	assert_int_equal(pruned_through(f->path, "completion"), 3);

	fx_sql_run_at(f->path,
		      "INSERT INTO litebus_consumer(channel, name, position, "
		      "acked_at_ms) VALUES('completion', 'c', 8, 0)");
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 16),
			 LITEBUS_OK);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(o, 9);
	assert_int_equal(pruned_through(f->path, "completion"), 8);
	fx_sql_run_at(f->path, "DELETE FROM litebus_consumer");
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 16),
			 LITEBUS_OK);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(o, 16);
	assert_int_equal(h, 20);
	/* Beyond the head: everything goes, and ids are not reused. */
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 1000),
			 LITEBUS_OK);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 20);
	assert_int_equal(o, 0); /* no row retained */
	assert_int_equal(pruned_through(f->path, "completion"), 20);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 21);
	/* Forward only: a smaller bound changes nothing. */
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 5),
			 LITEBUS_OK);
	assert_int_equal(pruned_through(f->path, "completion"), 20);
}

/* Header: "deletes the channel's oldest rows in transactions of at most
 * prune_batch_rows rows each". */
static void
a_backlog_is_pruned_in_chunks_of_prune_batch_rows(void **state)
{
	struct bus_fixture *f = *state;
	litebus_stats before, after;
	uint64_t chunks, rows;

	open_with(f, NULL, 10, 0);
	for (int i = 0; i < 5; i++)
		commit_batch(f->bus, LITEBUS_COMPLETION, 19, NULL); /* 95 */
	chunks = stat_of(f->bus, &f->bus->stats.prune_chunks);
	rows = stat_of(f->bus, &f->bus->stats.pruned_rows);
	assert_int_equal(litebus_stats_get(f->bus, &before), LITEBUS_OK);
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 96),
			 LITEBUS_OK);
	assert_int_equal(litebus_stats_get(f->bus, &after), LITEBUS_OK);
	/* ceil(95 / 10) transactions, no more. */
	assert_int_equal(stat_of(f->bus, &f->bus->stats.prune_chunks) - chunks,
			 10);
	assert_int_equal(stat_of(f->bus, &f->bus->stats.pruned_rows) - rows,
			 95);
	assert_int_equal(after.commits - before.commits, 10);
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
}

/* Header: retention "rows ... queued behind the application's jobs like
 * any job", on a custom channel spelt in another case. */
static void
a_policy_names_a_custom_channel_ignoring_case(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const channels[] = {"Orders", NULL};
	litebus_retention policy[] = {{.channel = "orders", .max_rows = 3},
				      {0}};
	int id;

	litebus_options_init(&f->opts);
	f->opts.channels = channels;
	f->opts.retention = policy;
	f->opts.prune_interval_ms = 1;
	fx_open(f);
	id = litebus_channel_id(f->bus, "Orders");
	assert_true(id >= 0);
	commit_batch(f->bus, id, 12, NULL);
	wait_for_oldest(f->bus, id, 10);
	assert_int_equal(pruned_through(f->path, "orders"), 9);
}

/* litebus_channel_head: "*head is the channel's high-water mark" - also
 * when the bus spells the channel in another case than the file does
 * (the mark's row keeps the file's spelling, O4). */
static void
channel_head_finds_the_mark_of_a_channel_spelled_in_another_case(
    void **state)
{
	struct bus_fixture *f = *state;
	static const char *const upper[] = {"Orders", NULL};
	static const char *const lower[] = {"orders", NULL};
	int64_t h = -1, o = -1;
	int id;

	litebus_options_init(&f->opts);
	f->opts.channels = upper;
	fx_open(f);
	id = litebus_channel_id(f->bus, "Orders");
	assert_true(id >= 0);
	commit_batch(f->bus, id, 5, NULL);
	assert_int_equal(fx_exec_sql(f->bus, "DELETE FROM litebus_outbox_Orders"),
			 0);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->opts.channels = lower;
	fx_open(f);
	id = litebus_channel_id(f->bus, "orders");
	assert_true(id >= 0);
	head_of(f->bus, id, &h, &o);
	assert_int_equal(h, 5);
	assert_int_equal(o, 0);
}

/* P4: the pruner is stopped by close, whatever it is doing; and errors
 * of litebus_prune. */
static void
prune_refuses_misuse(void **state)
{
	struct bus_fixture *f = *state;
	litebus *bus;

	open_with(f, NULL, 0, 0);
	assert_int_equal(litebus_prune(NULL, 0, 5), LITEBUS_EINVAL);
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 0),
			 LITEBUS_EINVAL);
	assert_int_equal(litebus_prune(f->bus, 99, 5), LITEBUS_ENOCHANNEL);
	bus = f->bus;
	close_bus(f);
	assert_int_equal(litebus_prune(bus, LITEBUS_COMPLETION, 5),
			 LITEBUS_ECLOSED);
}

static int
job_prune(litebus_tx *tx, void *arg)
{
	(void)tx;
	return litebus_prune(arg, LITEBUS_COMPLETION, 5);
}

/* Header: "EDEADLK (on the writer thread)". */
static void
prune_on_the_writer_thread_is_edeadlk(void **state)
{
	struct bus_fixture *f = *state;

	open_with(f, NULL, 0, 0);
	assert_int_equal(litebus_exec(f->bus, job_prune, f->bus),
			 LITEBUS_EDEADLK);
}

/* P4: a close while the pruner works through a large backlog returns
 * promptly (it waits for one chunk at most), and nothing is lost. */
static void
close_stops_a_busy_pruner(void **state)
{
	struct bus_fixture *f = *state;
	litebus_retention policy[] = {{.channel = "completion", .max_rows = 1},
				      {0}};

	open_with(f, NULL, 0, 0);
	for (int i = 0; i < 20; i++)
		commit_batch(f->bus, LITEBUS_COMPLETION, 500, NULL);
	close_bus(f);
	open_with(f, policy, 1, 1);
	wait_for_passes(f->bus, 1);
	close_bus(f);
	/* The newest row survives whatever the pruner did. */
	assert_int_equal(fx_sql_int_at(f->path, "SELECT max(event_id) FROM "
						"litebus_outbox_completion"),
			 10000);
}

/* ------------------------------------------------------------------ */
/* litebus_channel_head                                                */

/* Header: "A channel that never committed anything gives 0 and 0; one
 * whose every row was pruned gives head > 0 and oldest 0." */
static void
channel_head_gives_the_range_the_database_holds(void **state)
{
	struct bus_fixture *f = *state;
	int64_t h = -1, o = -1;

	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 0);
	assert_int_equal(o, 0);
	commit_batch(f->bus, LITEBUS_COMPLETION, 7, NULL);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 7);
	assert_int_equal(o, 1);
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 3),
			 LITEBUS_OK);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 7);
	assert_int_equal(o, 3);
	assert_int_equal(litebus_prune(f->bus, LITEBUS_COMPLETION, 8),
			 LITEBUS_OK);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 7);
	assert_int_equal(o, 0);
	/* Other channels are their own. */
	head_of(f->bus, LITEBUS_STREAM_FRAME, &h, &o);
	assert_int_equal(h, 0);
	assert_int_equal(o, 0);
}

/* Header: "the newest event_id committed on the channel (by this bus or
 * any other connection to the file; deleted rows count)". */
static void
channel_head_sees_other_connections_and_deleted_rows(void **state)
{
	struct bus_fixture *f = *state;
	int64_t h, o;

	commit_batch(f->bus, LITEBUS_COMPLETION, 3, NULL);
	fx_sql_run_at(f->path,
		      "INSERT INTO litebus_outbox_completion(event_id, "
		      "partition_key, event_type, occurred_at_ms, "
		      "committed_at_ms) VALUES(9, 0, 'success', 0, 0)");
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 9);
	assert_int_equal(o, 1);
	fx_sql_run_at(f->path, "DELETE FROM litebus_outbox_completion "
			       "WHERE event_id >= 3");
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 9);
	assert_int_equal(o, 1);
}

/* Header: *head is the high-water mark, "including ids whose rows were
 * ... deleted by the job that emitted them"; "*oldest is ... 0 when no
 * row is" - also when head is INT64_MAX, where head + 1 does not exist
 * (found by an attack: oldest wrapped to INT64_MIN). */
static int
emit_two_and_delete_them(litebus_tx *tx, void *arg)
{
	int rc = fx_emit_job(tx, &(struct fx_emit){
				     .channel = LITEBUS_COMPLETION,
				     .count = 2,
				 });

	(void)arg;
	if (rc != 0)
		return rc;
	return fx_sql_job(
	    tx, (void *)(uintptr_t) "DELETE FROM litebus_outbox_completion");
}

static void
channel_head_counts_undone_ids_and_never_overflows_at_int64_max(void **state)
{
	struct bus_fixture *f = *state;
	litebus_consumer *c;
	int64_t h = -1, o = -1;

	/* An emit whose row the job deleted: the id is spent. */
	assert_int_equal(litebus_exec(f->bus, emit_two_and_delete_them, NULL),
			 0);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 2);
	assert_int_equal(o, 0);
	/* A consumer passes ids that carry no row by acking its cursor. */
	assert_int_equal(litebus_consumer_open(f->bus, LITEBUS_COMPLETION,
					       "gaps", LITEBUS_FROM_START, NULL,
					       &c),
			 LITEBUS_OK);
	{
		litebus_row row;
		litebus_consumer_info info;

		assert_int_equal(litebus_consumer_next(c, &row, 0),
				 LITEBUS_TIMEOUT);
		assert_int_equal(litebus_consumer_cursor(c), 2);
		assert_int_equal(litebus_consumer_ack(c, 2), LITEBUS_OK);
		assert_int_equal(litebus_consumer_flush(c), LITEBUS_OK);
		assert_int_equal(litebus_consumer_stats_get(c, &info),
				 LITEBUS_OK);
		assert_int_equal(info.lag, 0);
	}
	litebus_consumer_close(c);

	/* The channel's ids end at INT64_MAX, and every row is gone. */
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	fx_sql_run_at(f->path, "UPDATE main.litebus_channel SET high_water = "
			       "9223372036854775805 WHERE name = 'completion'");
	fx_open(f);
	assert_int_equal(litebus_exec(f->bus, emit_two_and_delete_them, NULL),
			 0);
	head_of(f->bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, INT64_MAX);
	assert_int_equal(o, 0);
}

/* Header: "Returns OK; EINVAL (NULL), ENOCHANNEL, ECLOSED". */
static void
channel_head_refuses_misuse(void **state)
{
	struct bus_fixture *f = *state;
	int64_t h = 5, o = 5;
	litebus *bus = f->bus;

	assert_int_equal(litebus_channel_head(NULL, 0, &h, &o), LITEBUS_EINVAL);
	assert_int_equal(litebus_channel_head(bus, 0, NULL, &o),
			 LITEBUS_EINVAL);
	assert_int_equal(litebus_channel_head(bus, 99, &h, &o),
			 LITEBUS_ENOCHANNEL);
	close_bus(f);
	assert_int_equal(litebus_channel_head(bus, 0, &h, &o), LITEBUS_ECLOSED);
}

/* In memory too (memvfs locks instead of WAL). */
static void
channel_head_and_prune_work_in_memory(void **state)
{
	litebus *bus;
	int64_t h, o;

	(void)state;
	assert_int_equal(litebus_open(NULL, &bus), LITEBUS_OK);
	commit_batch(bus, LITEBUS_COMPLETION, 5, NULL);
	assert_int_equal(litebus_prune(bus, LITEBUS_COMPLETION, 3), LITEBUS_OK);
	head_of(bus, LITEBUS_COMPLETION, &h, &o);
	assert_int_equal(h, 5);
	assert_int_equal(o, 3);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* ------------------------------------------------------------------ */
/* Migration from schema version 1 (tests/data/README.md)              */

static void
copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out;
	char buf[8192];
	size_t n;

	if (in == NULL)
		fail_msg("cannot open %s", from);
	out = fopen(to, "wb");
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	assert_int_equal(fclose(in), 0);
	assert_int_equal(fclose(out), 0);
}

static void
v1_fixture_path(char *out, size_t len)
{
	/* CMake compiles sources by absolute path. */
	const char *me = __FILE__;
	const char *slash = strrchr(me, '/');

	assert_non_null(slash);
	snprintf(out, len, "%.*s/../data/schema_v1.db", (int)(slash - me), me);
}

static void
expect_v1_row(litebus_reader *r, int64_t id)
{
	litebus_row row;
	char want[16];

	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(row.event_id, id);
	assert_int_equal(row.partition_key, id);
	snprintf(want, sizeof want, "s%lld", (long long)id);
	assert_int_equal(row.subject_len, strlen(want));
	assert_memory_equal(row.subject, want, strlen(want));
	snprintf(want, sizeof want, "p%lld", (long long)id);
	assert_int_equal(row.payload_len, strlen(want));
	assert_memory_equal(row.payload, want, strlen(want));
}

/* Issue 9: "existing files made by the current release migrate in place
 * on open (inside one transaction, nothing lost)". */
static void
a_version_1_file_migrates_in_place_and_loses_nothing(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const channels[] = {"orders", NULL};
	static const int64_t orders_ids[] = {1, 3, 4};
	char src[512];
	litebus_reader *r;
	int orders;

	v1_fixture_path(src, sizeof src);
	copy_file(src, f->path);
	assert_int_equal(fx_sql_int_at(f->path,
				       "SELECT value FROM litebus_meta "
				       "WHERE key = 'schema_version'"),
			 1);
	litebus_options_init(&f->opts);
	f->opts.channels = channels;
	fx_open(f);
	assert_int_equal(fx_sql_int_at(f->path,
				       "SELECT value FROM litebus_meta "
				       "WHERE key = 'schema_version'"),
			 2);
	assert_int_equal(
	    fx_sql_int_at(f->path, "SELECT count(*) FROM sqlite_schema "
				   "WHERE type = 'table' AND name IN "
				   "('litebus_consumer', 'litebus_pruned')"),
	    2);
	orders = litebus_channel_id(f->bus, "orders");
	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			   NULL);
	for (int64_t id = 1; id <= 5; id++)
		expect_v1_row(r, id);
	fx_expect_no_row(r);
	litebus_reader_close(r);
	r = fx_reader_open(f->bus, LITEBUS_STREAM_FRAME, LITEBUS_FROM_START,
			   NULL);
	for (int64_t id = 1; id <= 3; id++)
		expect_v1_row(r, id);
	fx_expect_no_row(r);
	litebus_reader_close(r);
	r = fx_reader_open(f->bus, orders, LITEBUS_FROM_START, NULL);
	for (int i = 0; i < 3; i++)
		expect_v1_row(r, orders_ids[i]);
	fx_expect_no_row(r);
	litebus_reader_close(r);
	/* New events continue the ids. */
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 6);
	assert_int_equal(fx_commit_one(f->bus, orders), 5);
	/* The new tables work: pruning records its prefix. */
	assert_int_equal(litebus_prune(f->bus, orders, 4), LITEBUS_OK);
	assert_int_equal(pruned_through(f->path, "orders"), 3);
}

static unsigned char *
read_all(const char *path, size_t *len)
{
	FILE *in = fopen(path, "rb");
	unsigned char *buf;
	long n;

	assert_non_null(in);
	assert_int_equal(fseek(in, 0, SEEK_END), 0);
	n = ftell(in);
	assert_true(n > 0);
	assert_int_equal(fseek(in, 0, SEEK_SET), 0);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, in), (size_t)n);
	assert_int_equal(fclose(in), 0);
	*len = (size_t)n;
	return buf;
}

/* O2/O6: "a file whose litebus objects are not exactly litebus's
 * (ESCHEMA)" - a version 1 file with a planted table of a version 2
 * name is refused, not migrated, and left unchanged. */
static void
a_version_1_file_with_a_planted_consumer_table_is_refused(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const channels[] = {"orders", NULL};
	unsigned char *before, *after;
	size_t len_before, len_after;
	char src[512];
	litebus *bus = NULL;

	v1_fixture_path(src, sizeof src);
	copy_file(src, f->path);
	fx_sql_run_at(f->path, "CREATE TABLE litebus_consumer(x)");
	before = read_all(f->path, &len_before);
	litebus_options_init(&f->opts);
	f->opts.channels = channels;
	f->opts.path = f->path;
	assert_int_equal(litebus_open(&f->opts, &bus), LITEBUS_ESCHEMA);
	assert_null(bus);
	if (strstr(litebus_last_errmsg(), "litebus_consumer") == NULL)
		fail_msg("message '%s' does not name the table",
			 litebus_last_errmsg());
	after = read_all(f->path, &len_after);
	assert_int_equal(len_after, len_before);
	assert_memory_equal(after, before, len_before);
	free(before);
	free(after);
	assert_int_equal(fx_sql_int_at(f->path,
				       "SELECT value FROM litebus_meta "
				       "WHERE key = 'schema_version'"),
			 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(options_init_sets_the_retention_defaults),
	    FX_TEST_TMPDIR(open_refuses_bad_retention_options_with_einval),
	    FX_TEST_TMPDIR(max_rows_keeps_the_newest_rows),
	    FX_TEST_TMPDIR(max_age_prunes_the_old_prefix_only),
	    FX_TEST_TMPDIR(
		soft_retention_stops_at_a_consumer_and_hard_does_not),
	    FX_TEST_TMPDIR(
		prune_deletes_below_before_event_id_but_not_past_a_consumer),
	    FX_TEST_TMPDIR(a_backlog_is_pruned_in_chunks_of_prune_batch_rows),
	    FX_TEST_TMPDIR(a_policy_names_a_custom_channel_ignoring_case),
	    FX_TEST_TMPDIR(
		channel_head_finds_the_mark_of_a_channel_spelled_in_another_case),
	    FX_TEST_TMPDIR(prune_refuses_misuse),
	    FX_TEST_TMPDIR(prune_on_the_writer_thread_is_edeadlk),
	    FX_TEST_TMPDIR(close_stops_a_busy_pruner),
	    FX_TEST_TINY(channel_head_gives_the_range_the_database_holds),
	    FX_TEST_TINY(
		channel_head_counts_undone_ids_and_never_overflows_at_int64_max),
	    FX_TEST_TINY(channel_head_sees_other_connections_and_deleted_rows),
	    FX_TEST_TINY(channel_head_refuses_misuse),
	    cmocka_unit_test(channel_head_and_prune_work_in_memory),
	    FX_TEST_TMPDIR(
		a_version_1_file_migrates_in_place_and_loses_nothing),
	    FX_TEST_TMPDIR(
		a_version_1_file_with_a_planted_consumer_table_is_refused),
	};

	return cmocka_run_group_tests_name("retention", tests, NULL, NULL);
}
