/* SPDX-License-Identifier: MIT */
/*
 * test_outbox.c - the outbox schema and the database file, through the
 * public API and through a second, plain SQLite connection: event_ids are
 * never reused, files litebus must not touch are left alone, the tables
 * have their documented shape, and the connection settings protect the
 * writer from a planted schema.
 */
#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

struct file_bytes {
	unsigned char *data;
	size_t len;
};

static struct file_bytes
read_file(const char *path)
{
	struct file_bytes b = {NULL, 0};
	size_t cap = 0;
	FILE *fp = fopen(path, "rb");

	if (fp == NULL)
		fail_msg("fopen %s: %s", path, strerror(errno));
	for (;;) {
		if (b.len == cap) {
			cap = cap != 0 ? cap * 2 : 65536;
			b.data = realloc(b.data, cap);
			assert_non_null(b.data);
		}
		size_t n = fread(b.data + b.len, 1, cap - b.len, fp);
		if (n == 0)
			break;
		b.len += n;
	}
	fclose(fp);
	return b;
}

static void
assert_file_unchanged(const char *path, struct file_bytes before)
{
	struct file_bytes after = read_file(path);

	assert_int_equal(after.len, before.len);
	assert_memory_equal(after.data, before.data, before.len);
	free(after.data);
}

static bool
file_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

struct sql_job {
	const char *sql;
};

static int
job_run_sql(litebus_tx *tx, void *arg)
{
	const struct sql_job *j = arg;

	return sqlite3_exec(litebus_tx_db(tx), j->sql, NULL, NULL, NULL) ==
		       SQLITE_OK
		   ? 0
		   : -1000;
}

/* Run `sql` on the writer's connection inside a job, and commit it. */
static void
run_in_job(litebus *bus, const char *sql)
{
	struct sql_job j = {sql};
	int rc = litebus_exec(bus, job_run_sql, &j);

	if (rc != 0)
		fail_msg("%s: %d", sql, rc);
}

static void
close_bus(struct bus_fixture *f)
{
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
}

/* ------------------------------------------------------------------ */
/* event_id is never reused                                            */

/* Contract, litebus_emit(): the event_id is "larger than every event_id
 * ever committed on this channel, even deleted ones". */
static void
event_id_stays_above_rows_a_job_deleted(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[10];

	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids);
	run_in_job(f->bus, "DELETE FROM litebus_outbox_completion "
			   "WHERE event_id > 5");
	assert_int_equal(fx_count_rows(f->path, "completion"), 5);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), ids[9] + 1);
}

static void
event_id_stays_above_deleted_rows_after_a_reopen(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[10];

	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids);
	run_in_job(f->bus, "DELETE FROM litebus_outbox_completion "
			   "WHERE event_id > 5");
	close_bus(f);
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), ids[9] + 1);

	/* Every row gone: still no reuse. */
	run_in_job(f->bus, "DELETE FROM litebus_outbox_completion");
	close_bus(f);
	fx_open(f);
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), ids[9] + 2);
}

/* Rows another connection deletes raise the mark too (it is a trigger in
 * the file), and the writer notices the foreign commit. */
static void
event_id_stays_above_rows_another_connection_deleted(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[10];
	sqlite3 *db;

	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids);
	db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);
	fx_sql_run(db, "DELETE FROM litebus_outbox_completion "
		       "WHERE event_id > 5");
	sqlite3_close(db);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), ids[9] + 1);
}

/* ------------------------------------------------------------------ */
/* Files litebus must refuse, and leave alone                          */

/* Contract, litebus_open(): "ESCHEMA (a newer litebus schema).  On
 * failure *out is NULL and the file was not modified". */
static void
a_newer_schema_version_is_refused_and_the_file_is_unchanged(void **state)
{
	struct bus_fixture *f = *state;
	struct file_bytes before;
	litebus *bus = (litebus *)&bus;
	sqlite3 *db;

	commit_events(f->bus, LITEBUS_COMPLETION, 3, NULL);
	close_bus(f);
	db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);
	fx_sql_run(db, "UPDATE litebus_meta SET value = 99 "
		       "WHERE key = 'schema_version'");
	sqlite3_close(db); /* last connection: the WAL is checkpointed */
	before = read_file(f->path);

	f->opts.path = f->path;
	assert_int_equal(litebus_open(&f->opts, &bus), LITEBUS_ESCHEMA);
	assert_null(bus);
	assert_non_null(strstr(litebus_last_errmsg(), "99"));
	assert_file_unchanged(f->path, before);
	free(before.data);
}

/* Contract, litebus_open(): "ENOTDB (not SQLite, corrupt)". */
static void
a_file_that_is_not_sqlite_is_refused_with_enotdb_and_left_unchanged(
    void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	char line[64], side[320];
	struct file_bytes before;
	litebus *bus = (litebus *)&bus;
	FILE *fp;

	fp = fopen(f->path, "wb");
	assert_non_null(fp);
	for (int i = 0; i < 4096 / 32; i++) {
		snprintf(line, sizeof line, "not a database, line %10d\n", i);
		assert_int_equal(strlen(line), 32);
		assert_int_equal(fwrite(line, 1, 32, fp), 32);
	}
	assert_int_equal(fclose(fp), 0);
	before = read_file(f->path);
	assert_int_equal(before.len, 4096);

	f->opts.path = f->path;
	assert_int_equal(litebus_open(&f->opts, &bus), LITEBUS_ENOTDB);
	assert_null(bus);
	assert_file_unchanged(f->path, before);
	/* Nothing was begun, so no journal was left next to it either. */
	snprintf(side, sizeof side, "%s-wal", f->path);
	assert_false(file_exists(side));
	snprintf(side, sizeof side, "%s-journal", f->path);
	assert_false(file_exists(side));
	free(before.data);
}

/* Open f->path as an unprivileged user in a child process: root ignores
 * file permissions, so that is the only way a root test run can meet a
 * read-only file.  Returns the status, or 1 if the child could not drop
 * its privileges or reach the file (the caller skips). */
static int
open_as_nobody(struct bus_fixture *f)
{
	int wstatus;
	pid_t pid;

	assert_int_equal(chmod(f->dir, 0755), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		litebus *bus = NULL;
		int rc;

		/* Group first, while we still may.  nobody/nogroup. */
		if (setgid(65534) != 0 || setuid(65534) != 0 ||
		    access(f->path, R_OK) != 0)
			_exit(255);
		rc = litebus_open(&f->opts, &bus);
		_exit(rc <= 0 ? -rc : 254);
	}
	assert_int_equal(waitpid(pid, &wstatus, 0), pid);
	assert_true(WIFEXITED(wstatus));
	if (WEXITSTATUS(wstatus) == 255)
		return 1;
	return -WEXITSTATUS(wstatus);
}

/* Contract, litebus_open(): "EREADONLY".  As root, chmod does not stop
 * writes, so the open is made by a child that has dropped to the nobody
 * user; if it cannot (no CAP_SETUID, or the temporary directory is not
 * reachable for nobody), the test is skipped. */
static void
a_read_only_database_file_is_refused_with_ereadonly(void **state)
{
	struct bus_fixture *f = *state;
	struct file_bytes before;
	int rc;

	commit_events(f->bus, LITEBUS_COMPLETION, 3, NULL);
	close_bus(f);
	before = read_file(f->path);
	assert_int_equal(chmod(f->path, 0444), 0);
	f->opts.path = f->path;
	if (geteuid() != 0) {
		litebus *bus = (litebus *)&bus;
		rc = litebus_open(&f->opts, &bus);
		assert_null(bus);
	} else {
		rc = open_as_nobody(f);
		if (rc == 1) {
			free(before.data);
			skip();
		}
	}
	if (rc != LITEBUS_EREADONLY)
		fail_msg("got %s, want EREADONLY", litebus_errname(rc));
	assert_file_unchanged(f->path, before);
	free(before.data);
}

/* EREADONLY: "the database file or its directory is read-only" - a WAL
 * database needs its directory for the -wal and -shm files.  As above,
 * root runs the open as nobody, or skips. */
static void
a_database_in_a_read_only_directory_is_refused_with_ereadonly(void **state)
{
	struct bus_fixture *f = *state;
	struct file_bytes before;
	int rc;

	commit_events(f->bus, LITEBUS_COMPLETION, 3, NULL);
	close_bus(f);
	before = read_file(f->path);
	assert_int_equal(chmod(f->path, 0666), 0); /* the file is writable */
	f->opts.path = f->path;
	if (geteuid() != 0) {
		litebus *bus = (litebus *)&bus;
		assert_int_equal(chmod(f->dir, 0555), 0);
		rc = litebus_open(&f->opts, &bus);
		assert_int_equal(chmod(f->dir, 0755), 0);
		assert_null(bus);
	} else {
		rc = open_as_nobody(f); /* the directory stays root's */
		if (rc == 1) {
			free(before.data);
			skip();
		}
	}
	if (rc != LITEBUS_EREADONLY)
		fail_msg("got %s, want EREADONLY", litebus_errname(rc));
	assert_file_unchanged(f->path, before);
	free(before.data);
}

/* ------------------------------------------------------------------ */
/* The shape of the schema                                             */

static const char *const builtin_tables[] = {
    "litebus_outbox_lease_history", "litebus_outbox_completion",
    "litebus_outbox_signal_delivery", "litebus_outbox_stream_frame",
    "litebus_outbox_operator_event"};

struct column {
	const char *name, *type;
	int notnull, pk;
};

/* The columns of every outbox table, in order (outbox.c; one per field
 * of litebus_row). */
static const struct column outbox_columns[] = {
    {"event_id", "INTEGER", 0, 1},   {"partition_key", "INTEGER", 1, 0},
    {"subject", "BLOB", 0, 0},	     {"event_type", "TEXT", 1, 0},
    {"namespace", "TEXT", 0, 0},     {"instance_tag", "TEXT", 0, 0},
    {"payload", "BLOB", 0, 0},	     {"occurred_at_ms", "INTEGER", 1, 0},
    {"committed_at_ms", "INTEGER", 1, 0}};

static void
assert_outbox_columns(sqlite3 *db, const char *table)
{
	char sql[200];
	sqlite3_stmt *st;
	size_t n = 0;

	snprintf(sql, sizeof sql, "SELECT name, type, \"notnull\", pk "
				  "FROM pragma_table_info('%s') ORDER BY cid",
		 table);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const struct column *c = &outbox_columns[n];
		if (n >= sizeof outbox_columns / sizeof outbox_columns[0])
			fail_msg("%s: extra column %s", table,
				 sqlite3_column_text(st, 0));
		assert_string_equal(sqlite3_column_text(st, 0), c->name);
		assert_string_equal(sqlite3_column_text(st, 1), c->type);
		assert_int_equal(sqlite3_column_int(st, 2), c->notnull);
		assert_int_equal(sqlite3_column_int(st, 3), c->pk);
		n++;
	}
	sqlite3_finalize(st);
	if (n != sizeof outbox_columns / sizeof outbox_columns[0])
		fail_msg("%s has %zu columns", table, n);
}

/* An index on exactly (partition_key, event_id), in that order. */
static void
assert_partition_index(sqlite3 *db, const char *table)
{
	char sql[400];

	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM pragma_index_list('%s') AS l "
		 "WHERE (SELECT group_concat(name, ',') FROM "
		 "(SELECT name FROM pragma_index_info(l.name) ORDER BY seqno)) "
		 "= 'partition_key,event_id'",
		 table);
	if (fx_sql_int(db, sql) != 1)
		fail_msg("%s has no (partition_key, event_id) index", table);
}

static void
every_outbox_table_has_the_documented_columns(void **state)
{
	struct bus_fixture *f = *state;
	sqlite3 *db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);

	for (size_t i = 0; i < 5; i++)
		assert_outbox_columns(db, builtin_tables[i]);
	sqlite3_close(db);
}

/* The filter by partition (litebus_filter) reads this index. */
static void
every_outbox_table_has_a_partition_key_event_id_index(void **state)
{
	struct bus_fixture *f = *state;
	sqlite3 *db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);

	for (size_t i = 0; i < 5; i++)
		assert_partition_index(db, builtin_tables[i]);
	sqlite3_close(db);
}

/* Contract, litebus_open(): "switch it to WAL, create or migrate the
 * litebus schema". */
static void
open_records_the_schema_version_and_switches_the_file_to_wal(void **state)
{
	struct bus_fixture *f = *state;
	sqlite3 *db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);
	sqlite3_stmt *st;

	assert_int_equal(fx_sql_int(db, "SELECT value FROM litebus_meta WHERE "
				       "key = 'schema_version'"),
			 2);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st,
					    NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal(sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* The event types of the built-in channels are also enforced by the
 * table, against writers that bypass litebus. */
static void
check_constraint_rejects_a_bad_event_type_from_another_connection(
    void **state)
{
	struct bus_fixture *f = *state;
	static const struct {
		const char *table, *type;
		bool ok;
	} cases[] = {
	    {"completion", "renewed", false},
	    {"completion", "success", true},
	    {"lease_history", "success", false},
	    {"lease_history", "revoked", true},
	    {"operator_event", "bogus", false},
	    {"operator_event", "flow_cancel_requested", true},
	    {"signal_delivery", "", false},
	    {"signal_delivery", "anything", true},
	    {"stream_frame", "", false},
	};
	sqlite3 *db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char sql[300];
		int rc;

		snprintf(sql, sizeof sql,
			 "INSERT INTO litebus_outbox_%s(event_id, "
			 "partition_key, event_type, occurred_at_ms, "
			 "committed_at_ms) VALUES(%zu, 0, '%s', 0, 0)",
			 cases[i].table, 1000 + i, cases[i].type);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		if (cases[i].ok && rc != SQLITE_OK)
			fail_msg("%s: %s", sql, sqlite3_errmsg(db));
		if (!cases[i].ok &&
		    sqlite3_extended_errcode(db) != SQLITE_CONSTRAINT_CHECK)
			fail_msg("%s: rc %d, want a CHECK failure", sql, rc);
	}
	sqlite3_close(db);
}

/* Contract, litebus_options.channels: declared channels are real channels
 * with their own outbox; any non-empty event type goes. */
static void
custom_channels_get_their_own_outbox_tables(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const channels[] = {"orders", "Audit_Log2", NULL};
	static const char *const tables[] = {"litebus_outbox_orders",
					     "litebus_outbox_Audit_Log2"};
	sqlite3 *db;

	close_bus(f);
	f->opts.channels = channels;
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_BUILTIN_CHANNELS), 1);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_BUILTIN_CHANNELS + 1), 1);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_BUILTIN_CHANNELS + 1), 2);

	db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);
	for (size_t i = 0; i < 2; i++) {
		char sql[200];

		assert_outbox_columns(db, tables[i]);
		assert_partition_index(db, tables[i]);
		snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
		assert_int_equal(fx_sql_int(db, sql), (int64_t)i + 1);
		/* Only the empty type is refused. */
		snprintf(sql, sizeof sql,
			 "INSERT INTO %s(event_id, partition_key, event_type, "
			 "occurred_at_ms, committed_at_ms) "
			 "VALUES(100, 0, '', 0, 0)",
			 tables[i]);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL),
				 SQLITE_CONSTRAINT);
	}
	assert_int_equal(fx_sql_int(db, "SELECT count(*) FROM litebus_channel"),
			 LITEBUS_BUILTIN_CHANNELS + 2);
	assert_int_equal(fx_sql_int(db, "SELECT count(*) FROM "
				       "litebus_outbox_completion"),
			 0);
	sqlite3_close(db);
}

/* Reopening with one more channel adds its table and keeps the rows. */
static void
reopening_with_a_new_channel_adds_its_table_and_keeps_the_rows(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const channels[] = {"late_comer", NULL};
	int64_t ids[3];

	commit_events(f->bus, LITEBUS_COMPLETION, 3, ids);
	close_bus(f);
	f->opts.channels = channels;
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_BUILTIN_CHANNELS), 1);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), ids[2] + 1);
	assert_int_equal(fx_count_rows(f->path, "late_comer"), 1);
	assert_int_equal(fx_count_rows(f->path, "completion"), 4);
}

/* Contract, litebus_options.adopt: "litebus_open() may add litebus's
 * tables to an existing SQLite database of the application's own": its
 * tables are untouched. */
static void
an_existing_database_with_other_tables_is_adopted_intact(void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	fx_sql_run(db, "CREATE TABLE mine(x INTEGER); "
		       "INSERT INTO mine VALUES (1), (2), (3);");
	sqlite3_close(db);
	f->opts.adopt = 1;
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 1);
	db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);
	assert_int_equal(fx_sql_int(db, "SELECT sum(x) FROM mine"), 6);
	sqlite3_close(db);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
}

/* ------------------------------------------------------------------ */
/* Connection settings                                                 */

struct settings {
	int defensive, trusted_schema;
	int schema_write_rc;
};

static int
job_inspects_the_connection(litebus_tx *tx, void *arg)
{
	struct settings *s = arg;
	sqlite3 *db = litebus_tx_db(tx);

	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, -1, &s->defensive);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, -1,
			  &s->trusted_schema);
	sqlite3_exec(db, "PRAGMA writable_schema = ON", NULL, NULL, NULL);
	s->schema_write_rc =
	    sqlite3_exec(db,
			 "UPDATE sqlite_schema SET sql = sql "
			 "WHERE name = 'litebus_meta'",
			 NULL, NULL, NULL);
	sqlite3_exec(db, "PRAGMA writable_schema = OFF", NULL, NULL, NULL);
	return 0;
}

/* outbox.c: "Defensive: no writes to sqlite_schema ... Untrusted
 * schema". */
static void
the_writer_connection_is_defensive_and_does_not_trust_the_schema(
    void **state)
{
	struct bus_fixture *f = *state;
	struct settings s = {-1, -1, -1};

	assert_int_equal(litebus_exec(f->bus, job_inspects_the_connection, &s),
			 0);
	assert_int_equal(s.defensive, 1);
	assert_int_equal(s.trusted_schema, 0);
	assert_int_not_equal(s.schema_write_rc, SQLITE_OK);
	/* Still a working database. */
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 1);
}

/* A trigger planted in the file by someone else, calling something that
 * is not innocuous (a pragma table), must not run through our INSERT:
 * the emit fails and the trigger's work never happens. */
static void
a_planted_trigger_using_an_unsafe_function_does_not_run(void **state)
{
	struct bus_fixture *f = *state;
	sqlite3 *db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);
	int rc;

	fx_sql_run(db, "CREATE TABLE planted_log(v); "
		       "CREATE TRIGGER planted AFTER INSERT ON "
		       "litebus_outbox_completion BEGIN "
		       "INSERT INTO planted_log SELECT name FROM "
		       "pragma_database_list; END;");
	/* The trigger works for a connection that trusts the schema. */
	fx_sql_run(db, "INSERT INTO litebus_outbox_completion(event_id, "
		       "partition_key, event_type, occurred_at_ms, "
		       "committed_at_ms) VALUES(100, 0, 'success', 0, 0)");
	assert_true(fx_sql_int(db, "SELECT count(*) FROM planted_log") > 0);
	fx_sql_run(db, "DELETE FROM planted_log");

	rc = litebus_exec(f->bus, fx_emit_one_job, NULL);
	if (rc != LITEBUS_ESQLITE)
		fail_msg("emit through the planted trigger: %s, want ESQLITE",
			 litebus_errname(rc));
	assert_non_null(strstr(litebus_last_errmsg(), "unsafe"));
	assert_int_equal(fx_sql_int(db, "SELECT count(*) FROM planted_log"), 0);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);

	/* Once the trigger is gone, the bus goes on. */
	fx_sql_run(db, "DROP TRIGGER planted");
	sqlite3_close(db);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 101);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(event_id_stays_above_rows_a_job_deleted),
	    FX_TEST_TINY(event_id_stays_above_deleted_rows_after_a_reopen),
	    FX_TEST_TINY(event_id_stays_above_rows_another_connection_deleted),
	    FX_TEST_TINY(a_newer_schema_version_is_refused_and_the_file_is_unchanged),
	    FX_TEST_TMPDIR(a_file_that_is_not_sqlite_is_refused_with_enotdb_and_left_unchanged),
	    FX_TEST_TINY(a_read_only_database_file_is_refused_with_ereadonly),
	    FX_TEST_TINY(a_database_in_a_read_only_directory_is_refused_with_ereadonly),
	    FX_TEST_TINY(every_outbox_table_has_the_documented_columns),
	    FX_TEST_TINY(every_outbox_table_has_a_partition_key_event_id_index),
	    FX_TEST_TINY(open_records_the_schema_version_and_switches_the_file_to_wal),
	    FX_TEST_TINY(check_constraint_rejects_a_bad_event_type_from_another_connection),
	    FX_TEST_TINY(custom_channels_get_their_own_outbox_tables),
	    FX_TEST_TINY(reopening_with_a_new_channel_adds_its_table_and_keeps_the_rows),
	    FX_TEST_TMPDIR(an_existing_database_with_other_tables_is_adopted_intact),
	    FX_TEST_TINY(the_writer_connection_is_defensive_and_does_not_trust_the_schema),
	    FX_TEST_TINY(a_planted_trigger_using_an_unsafe_function_does_not_run),
	};

	return cmocka_run_group_tests_name("outbox", tests, NULL, NULL);
}
