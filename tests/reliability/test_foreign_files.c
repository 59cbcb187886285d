/* SPDX-License-Identifier: MIT */
/*
 * test_foreign_files.c - which files litebus_open writes to, and which
 * litebus_* objects it accepts in them.
 *
 * A file is litebus's when PRAGMA application_id says so (or it is new, or
 * an earlier version of litebus made it); another application's file, or
 * the application's own database without litebus_options.adopt, is
 * refused with EFOREIGN.  In a file it accepts, every object named
 * litebus_* or on a litebus_* table must be exactly one litebus creates:
 * a planted trigger, view, index or a table of another shape is refused
 * with ESCHEMA.  Every refusal leaves the file's bytes as they were, and
 * makes no -wal, -shm or -journal beside it.
 *
 * The files are prepared with plain SQLite connections of the test's own.
 */
#include "fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* Another application's mark, negative as a signed 32-bit value. */
#define OTHER_APP_ID "-559038737" /* 0xDEADBEEF */

/* ------------------------------------------------------------------ */
/* The files on disk, before and after                                 */

struct side_file {
	bool exists;
	unsigned char *data;
	size_t len;
};

/* The database, its -wal and -journal byte for byte; the -shm only by
 * existence (reading a WAL database rebuilds its index there). */
struct snapshot {
	struct side_file db, wal, shm, journal;
};

static struct side_file
side_read(const char *path, bool bytes)
{
	struct side_file s = {false, NULL, 0};
	struct stat sb;
	FILE *fp;

	if (stat(path, &sb) != 0) {
		assert_int_equal(errno, ENOENT);
		return s;
	}
	s.exists = true;
	if (!bytes)
		return s;
	s.len = (size_t)sb.st_size;
	s.data = malloc(s.len + 1);
	assert_non_null(s.data);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(s.data, 1, s.len, fp), s.len);
	fclose(fp);
	return s;
}

static struct snapshot
snapshot_take(const char *path)
{
	char side[400];
	struct snapshot s;

	s.db = side_read(path, true);
	snprintf(side, sizeof side, "%s-wal", path);
	s.wal = side_read(side, true);
	snprintf(side, sizeof side, "%s-shm", path);
	s.shm = side_read(side, false);
	snprintf(side, sizeof side, "%s-journal", path);
	s.journal = side_read(side, true);
	return s;
}

static void
side_assert_same(const char *what, struct side_file a, struct side_file b)
{
	if (a.exists != b.exists)
		fail_msg("%s: %s before, %s after", what,
			 a.exists ? "there" : "absent",
			 b.exists ? "there" : "absent");
	if (a.len != b.len)
		fail_msg("%s: %zu bytes before, %zu after", what, a.len, b.len);
	if (a.len > 0 && memcmp(a.data, b.data, a.len) != 0)
		fail_msg("%s: its bytes changed", what);
}

static void
snapshot_free(struct snapshot *s)
{
	free(s->db.data);
	free(s->wal.data);
	free(s->journal.data);
}

static void
snapshot_assert_unchanged(const char *path, struct snapshot *before)
{
	struct snapshot after = snapshot_take(path);

	side_assert_same("the database file", before->db, after.db);
	side_assert_same("the -wal", before->wal, after.wal);
	side_assert_same("the -shm", before->shm, after.shm);
	side_assert_same("the -journal", before->journal, after.journal);
	snapshot_free(&after);
}

/* Contract, litebus_open(): "On failure *out is NULL and the file was not
 * modified beyond what SQLite does to open it."  Opens f->path with
 * f->opts; the open must fail with `want` and a message containing
 * `needle`. */
static void
open_is_refused_unchanged(struct bus_fixture *f, int want, const char *needle)
{
	struct snapshot before = snapshot_take(f->path);
	litebus *bus = (litebus *)&bus;
	int rc;

	f->opts.path = f->path;
	rc = litebus_open(&f->opts, &bus);
	if (rc != want)
		fail_msg("litebus_open: %s (%s), want %s", litebus_errname(rc),
			 litebus_last_errmsg(), litebus_errname(want));
	assert_null(bus);
	if (strstr(litebus_last_errmsg(), needle) == NULL)
		fail_msg("the message \"%s\" does not say \"%s\"",
			 litebus_last_errmsg(), needle);
	snapshot_assert_unchanged(f->path, &before);
	snapshot_free(&before);
}

static bool
path_exists(const char *path, const char *suffix)
{
	char p[400];
	struct stat sb;

	snprintf(p, sizeof p, "%s%s", path, suffix);
	return stat(p, &sb) == 0;
}

/* ------------------------------------------------------------------ */
/* litebus files                                                       */

static void
close_bus(struct bus_fixture *f)
{
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
}

/* A litebus file with three events on "completion", closed (its WAL
 * checkpointed and removed). */
static void
make_litebus_file(struct bus_fixture *f)
{
	fx_open(f);
	commit_events(f->bus, LITEBUS_COMPLETION, 3, NULL);
	close_bus(f);
	assert_false(path_exists(f->path, "-wal"));
}

static int64_t
application_id_of(const char *path)
{
	return fx_sql_int_at(path, "PRAGMA application_id");
}

/* An application's own database: a table with three rows, an index and
 * a trigger of its own. */
static void
make_application_db(const char *path)
{
	fx_sql_run_at(path, "CREATE TABLE mine(x INTEGER);"
			 "INSERT INTO mine VALUES (1), (2), (3);"
			 "CREATE TABLE mine_log(x INTEGER);"
			 "CREATE INDEX mine_x ON mine(x);"
			 "CREATE TRIGGER mine_logged AFTER INSERT ON mine "
			 "BEGIN INSERT INTO mine_log VALUES (NEW.x); END;");
}

/* ------------------------------------------------------------------ */
/* Whose file: PRAGMA application_id                                   */

/* Contract, litebus_open(): "EFOREIGN (another application's file ...)"
 * and "the file was not modified". */
static void
another_application_s_file_is_refused_with_eforeign_and_left_unchanged(
    void **state)
{
	struct bus_fixture *f = *state;

	make_application_db(f->path);
	fx_sql_run_at(f->path, "PRAGMA application_id = " OTHER_APP_ID);
	assert_false(path_exists(f->path, "-journal"));
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "0xDEADBEEF");
	assert_false(path_exists(f->path, "-wal"));
	assert_false(path_exists(f->path, "-shm"));
}

/* litebus_options.adopt: "A file whose application_id is another
 * application's is always refused." */
static void
another_application_s_file_is_refused_even_with_adopt(void **state)
{
	struct bus_fixture *f = *state;

	make_application_db(f->path);
	fx_sql_run_at(f->path, "PRAGMA application_id = " OTHER_APP_ID);
	f->opts.adopt = 1;
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "0xDEADBEEF");
}

/* Another application's mark on a file that holds nothing else yet. */
static void
another_application_s_empty_file_is_refused(void **state)
{
	struct bus_fixture *f = *state;

	fx_sql_run_at(f->path, "PRAGMA application_id = 42");
	assert_int_equal(application_id_of(f->path), 42);
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "0x0000002A");
}

/* Another application's mark on a file with litebus's whole schema: the
 * mark decides. */
static void
a_litebus_schema_in_a_file_marked_by_another_application_is_refused(
    void **state)
{
	struct bus_fixture *f = *state;

	make_litebus_file(f);
	fx_sql_run_at(f->path, "PRAGMA application_id = 42");
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "0x0000002A");
}

/* A WAL database has no -wal while closed; reading it makes one, and the
 * refusal must not leave it behind. */
static void
another_application_s_wal_file_is_refused_without_leaving_a_wal(
    void **state)
{
	struct bus_fixture *f = *state;

	fx_sql_run_at(f->path, "PRAGMA journal_mode = WAL;"
			    "PRAGMA application_id = " OTHER_APP_ID ";"
			    "CREATE TABLE theirs(x); "
			    "INSERT INTO theirs VALUES (1);");
	assert_false(path_exists(f->path, "-wal"));
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "0xDEADBEEF");
	assert_false(path_exists(f->path, "-wal"));
	assert_false(path_exists(f->path, "-shm"));
}

/* Another application's WAL holds commits not yet copied into the
 * database (it crashed, or keeps checkpoints off): the refusal must not
 * checkpoint them into the database file either. */
static void
another_application_s_uncheckpointed_wal_is_left_as_it_was(void **state)
{
	struct bus_fixture *f = *state;
	sqlite3 *db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);

	fx_sql_run(db, "PRAGMA journal_mode = WAL;"
		      "PRAGMA application_id = " OTHER_APP_ID ";"
		      "CREATE TABLE theirs(x); "
		      "INSERT INTO theirs VALUES (1);");
	assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
					   1, (int *)NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_true(path_exists(f->path, "-wal"));
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "0xDEADBEEF");
}

/* Contract, litebus_open(): "an existing database of the application's
 * own only with options.adopt"; litebus_options.adopt: "Default 0: such a
 * file is refused with LITEBUS_EFOREIGN and left unchanged." */
static void
the_application_s_own_database_is_refused_without_adopt(void **state)
{
	struct bus_fixture *f = *state;

	make_application_db(f->path);
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "adopt");
	assert_false(path_exists(f->path, "-wal"));
	assert_int_equal(application_id_of(f->path), 0);
}

/* litebus stores event types, namespaces and tags byte for byte; a
 * UTF-16 database would convert them.  Refused, even with adopt, even if
 * it is otherwise a litebus file, and left unchanged. */
static void
a_utf16_database_is_refused_even_with_adopt(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const encodings[] = {"UTF-16le", "UTF-16be"};

	for (size_t i = 0; i < 2; i++) {
		char sql[128];

		unlink(f->path);
		snprintf(sql, sizeof sql,
			 "PRAGMA encoding = '%s'; CREATE TABLE mine(x)",
			 encodings[i]);
		fx_sql_run_at(f->path, sql);
		f->opts.adopt = 1;
		open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "UTF-8");
		assert_int_equal(application_id_of(f->path), 0);
	}
	/* And a file marked as litebus's but in UTF-16. */
	unlink(f->path);
	fx_sql_run_at(f->path, "PRAGMA encoding = 'UTF-16le'; "
			    "CREATE TABLE mine(x); PRAGMA application_id = 1279415635");
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "UTF-16le");
}

static void
the_application_s_own_wal_database_is_refused_without_adopt(void **state)
{
	struct bus_fixture *f = *state;

	make_application_db(f->path);
	fx_sql_run_at(f->path, "PRAGMA journal_mode = WAL");
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "adopt");
	assert_false(path_exists(f->path, "-wal"));
	assert_false(path_exists(f->path, "-shm"));
}

/* litebus_options.adopt: "litebus_open() may add litebus's tables to an
 * existing SQLite database of the application's own ..., and then marks
 * it with LITEBUS_APPLICATION_ID." */
static void
the_application_s_own_database_is_adopted_with_adopt(void **state)
{
	struct bus_fixture *f = *state;

	make_application_db(f->path);
	f->opts.adopt = 1;
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 1);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 2);
	assert_int_equal(application_id_of(f->path), LITEBUS_APPLICATION_ID);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT sum(x) FROM mine"), 6);
	assert_int_equal(fx_count_rows(f->path, "completion"), 2);
	close_bus(f);

	/* Marked now: it opens without adopt. */
	f->opts.adopt = 0;
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 3);
}

/* Contract, litebus_open(): "every index, trigger or view on a litebus_*
 * table" must be litebus's - the application's own on its own tables are
 * none of litebus's business, and keep working. */
static void
the_application_s_index_and_trigger_on_its_own_tables_are_kept(void **state)
{
	struct bus_fixture *f = *state;

	make_application_db(f->path);
	f->opts.adopt = 1;
	fx_open(f);
	close_bus(f);
	f->opts.adopt = 0;
	fx_open(f);
	fx_sql_run_at(f->path, "INSERT INTO mine VALUES (4)");
	assert_int_equal(fx_sql_int_at(f->path, "SELECT sum(x) FROM mine_log"), 4);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT count(*) FROM "
					    "sqlite_schema WHERE name IN "
					    "('mine_x', 'mine_logged')"),
			 2);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 1);
}

/* "_" is a wildcard in LIKE: a name that only matches litebus_% under
 * LIKE is not a litebus name. */
static void
an_application_table_named_almost_like_litebus_is_not_litebus_s(
    void **state)
{
	struct bus_fixture *f = *state;

	fx_sql_run_at(f->path, "CREATE TABLE litebusXoutbox_completion(x);"
			    "CREATE TABLE litebus(x);"
			    "CREATE INDEX litebus1 ON litebus(x);");
	f->opts.adopt = 1;
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 1);
}

/* Contract, litebus_open(): "Which files it opens: a new or empty file". */
static void
a_new_file_is_marked_with_litebus_s_application_id(void **state)
{
	struct bus_fixture *f = *state;

	assert_false(path_exists(f->path, ""));
	fx_open(f);
	assert_int_equal(application_id_of(f->path), LITEBUS_APPLICATION_ID);
	assert_int_equal(application_id_of(f->path), 0x4C425553);
}

static void
a_zero_byte_file_is_opened_and_marked(void **state)
{
	struct bus_fixture *f = *state;
	FILE *fp = fopen(f->path, "wb");

	assert_non_null(fp);
	assert_int_equal(fclose(fp), 0);
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 1);
	assert_int_equal(application_id_of(f->path), LITEBUS_APPLICATION_ID);
}

static int
job_read_application_id(litebus_tx *tx, void *arg)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(litebus_tx_db(tx), "PRAGMA application_id", -1,
			       &st, NULL) != SQLITE_OK)
		return -1000;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*(int64_t *)arg = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1001;
}

/* LITEBUS_APPLICATION_ID: "PRAGMA application_id of every litebus
 * database file" - and of the in-memory one. */
static void
an_in_memory_database_is_marked_too(void **state)
{
	litebus *bus;
	int64_t id = 0;

	(void)state;
	assert_int_equal(litebus_open(NULL, &bus), LITEBUS_OK);
	assert_int_equal(litebus_exec(bus, job_read_application_id, &id), 0);
	assert_int_equal(id, LITEBUS_APPLICATION_ID);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

/* Contract, litebus_open(): "a litebus file (... or 0 with litebus's
 * schema from an older version, which is then marked)". */
static void
a_version_1_litebus_file_without_the_mark_is_opened_and_marked(
    void **state)
{
	struct bus_fixture *f = *state;

	make_litebus_file(f);
	fx_sql_run_at(f->path, "PRAGMA application_id = 0");
	assert_int_equal(application_id_of(f->path), 0);
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 4);
	assert_int_equal(application_id_of(f->path), LITEBUS_APPLICATION_ID);
}

/* The statements of the release before the application id (commit
 * a2e780e, lib/outbox.c), verbatim: what a file made by it stores. */
#define OLD_CHANNEL_SQL(name, check)                                           \
	"CREATE TABLE IF NOT EXISTS \"litebus_outbox_" name "\"("              \
	"event_id INTEGER PRIMARY KEY, "                                       \
	"partition_key INTEGER NOT NULL, "                                     \
	"subject BLOB, "                                                       \
	"event_type TEXT NOT NULL CHECK(" check "), "                          \
	"namespace TEXT, "                                                     \
	"instance_tag TEXT, "                                                  \
	"payload BLOB, "                                                       \
	"occurred_at_ms INTEGER NOT NULL, "                                    \
	"committed_at_ms INTEGER NOT NULL);"                                   \
	"CREATE INDEX IF NOT EXISTS \"litebus_outbox_" name "_partition\" "    \
	"ON \"litebus_outbox_" name "\"(partition_key, event_id);"             \
	"INSERT OR IGNORE INTO litebus_channel(name, high_water) "             \
	"VALUES('" name "', 0);"                                               \
	"CREATE TRIGGER IF NOT EXISTS \"litebus_outbox_" name "_hw\" "         \
	"AFTER DELETE ON \"litebus_outbox_" name "\" BEGIN "                   \
	"UPDATE litebus_channel SET high_water = OLD.event_id "                \
	"WHERE name = '" name "' AND high_water < OLD.event_id; END;"

/* One statement group per string (C compilers need not take longer
 * literals), run in order in one transaction. */
static const char *const old_release_sql[] = {
    "PRAGMA journal_mode = WAL;"
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS litebus_meta("
    "key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO litebus_meta(key, value) "
    "VALUES('schema_version', 1);"
    "CREATE TABLE IF NOT EXISTS litebus_channel("
    "name TEXT PRIMARY KEY, high_water INTEGER NOT NULL DEFAULT 0) "
    "WITHOUT ROWID;",
    OLD_CHANNEL_SQL("lease_history", "event_type IN ('acquired', 'renewed', "
				     "'reclaimed', 'revoked')"),
    OLD_CHANNEL_SQL("completion", "event_type IN ('success', 'failed', "
				  "'cancelled', 'expired', 'skipped')"),
    OLD_CHANNEL_SQL("signal_delivery", "event_type <> ''"),
    OLD_CHANNEL_SQL("stream_frame", "event_type <> ''"),
    OLD_CHANNEL_SQL("operator_event", "event_type IN ('priority_changed', "
				      "'replayed', 'flow_cancel_requested')"),
    OLD_CHANNEL_SQL("orders", "event_type <> ''"),
    "INSERT INTO litebus_outbox_completion VALUES"
    "(7, 0, NULL, 'success', NULL, NULL, NULL, 0, 0);"
    "COMMIT;",
};

/* The expected schema is what SQLite stores for litebus's statements:
 * a file the previous release made matches it, channel "orders" too,
 * although this bus does not open it. */
static void
a_file_made_by_the_previous_release_is_opened_and_marked(void **state)
{
	struct bus_fixture *f = *state;

	sqlite3 *db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);

	for (size_t i = 0; i < sizeof old_release_sql / sizeof old_release_sql[0];
	     i++)
		fx_sql_run(db, old_release_sql[i]);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(application_id_of(f->path), 0);
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 8);
	assert_int_equal(application_id_of(f->path), LITEBUS_APPLICATION_ID);
}

/* ------------------------------------------------------------------ */
/* Planted objects: ESCHEMA, the file unchanged                        */

/* Contract, litebus_open(): "Every object whose name starts with
 * "litebus_", and every index, trigger or view on a litebus_* table, must
 * be exactly what litebus creates", else "ESCHEMA (... litebus_* objects
 * that litebus did not create or of another shape)". */
static void
planted_is_refused(void **state, const char *plant, const char *needle)
{
	struct bus_fixture *f = *state;

	make_litebus_file(f);
	fx_sql_run_at(f->path, plant);
	open_is_refused_unchanged(f, LITEBUS_ESCHEMA, needle);
}

static void
a_trigger_that_ignores_litebus_s_insert_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE TRIGGER swallow BEFORE INSERT ON "
			   "litebus_outbox_completion BEGIN "
			   "SELECT RAISE(IGNORE); END",
			   "swallow");
}

static void
a_trigger_that_deletes_litebus_s_row_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE TRIGGER vanish AFTER INSERT ON "
			   "litebus_outbox_completion BEGIN DELETE FROM "
			   "litebus_outbox_completion WHERE event_id = "
			   "NEW.event_id; END",
			   "vanish");
}

static void
a_trigger_that_rewrites_litebus_s_row_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE TRIGGER rewrite AFTER INSERT ON "
			   "litebus_outbox_completion BEGIN UPDATE "
			   "litebus_outbox_completion SET payload = x'00' "
			   "WHERE event_id = NEW.event_id; END",
			   "rewrite");
}

static void
a_trigger_that_forges_rows_in_another_outbox_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE TRIGGER litebus_forge AFTER INSERT ON "
			   "litebus_outbox_completion BEGIN INSERT INTO "
			   "litebus_outbox_lease_history(event_id, "
			   "partition_key, event_type, occurred_at_ms, "
			   "committed_at_ms) VALUES(NEW.event_id + 1000, 0, "
			   "'acquired', 0, 0); END",
			   "litebus_forge");
}

/* A trigger named like litebus's, on the application's own table, that
 * writes an outbox. */
static void
a_litebus_named_trigger_on_an_application_table_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE TABLE mine(x);"
			   "CREATE TRIGGER litebus_from_mine AFTER INSERT ON "
			   "mine BEGIN INSERT INTO litebus_outbox_completion("
			   "event_id, partition_key, event_type, "
			   "occurred_at_ms, committed_at_ms) VALUES(1000, 0, "
			   "'success', 0, 0); END",
			   "litebus_from_mine");
}

static void
a_replaced_high_water_trigger_is_refused(void **state)
{
	planted_is_refused(state,
			   "DROP TRIGGER litebus_outbox_completion_hw;"
			   "CREATE TRIGGER litebus_outbox_completion_hw AFTER "
			   "DELETE ON litebus_outbox_completion BEGIN "
			   "SELECT 1; END",
			   "litebus_outbox_completion_hw");
}

static void
a_high_water_trigger_that_lowers_the_mark_is_refused(void **state)
{
	planted_is_refused(state,
			   "DROP TRIGGER litebus_outbox_completion_hw;"
			   "CREATE TRIGGER litebus_outbox_completion_hw AFTER "
			   "DELETE ON litebus_outbox_completion BEGIN "
			   "UPDATE litebus_channel SET high_water = 0 WHERE "
			   "name = 'completion'; END",
			   "litebus_outbox_completion_hw");
}

/* The high-water mark that keeps ids from being reused, frozen. */
static void
a_trigger_on_litebus_channel_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE TRIGGER freeze BEFORE UPDATE ON "
			   "litebus_channel BEGIN SELECT RAISE(IGNORE); END",
			   "freeze");
}

static void
a_trigger_on_litebus_meta_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE TRIGGER meta_watch AFTER UPDATE ON "
			   "litebus_meta BEGIN SELECT 1; END",
			   "meta_watch");
}

static void
a_view_named_like_an_outbox_table_with_instead_of_triggers_is_refused(
    void **state)
{
	planted_is_refused(
	    state,
	    "DROP TABLE litebus_outbox_signal_delivery;"
	    "CREATE VIEW litebus_outbox_signal_delivery AS SELECT * FROM "
	    "litebus_outbox_completion;"
	    "CREATE TRIGGER sink INSTEAD OF INSERT ON "
	    "litebus_outbox_signal_delivery BEGIN SELECT 1; END",
	    "litebus_outbox_signal_delivery");
}

static void
an_unknown_litebus_view_is_refused(void **state)
{
	planted_is_refused(state, "CREATE VIEW litebus_recent AS SELECT 1",
			   "litebus_recent");
}

static void
an_unknown_litebus_table_is_refused(void **state)
{
	planted_is_refused(state, "CREATE TABLE litebus_extra(x)",
			   "litebus_extra");
}

/* SQLite's names ignore case: so does the check. */
static void
an_unknown_litebus_table_in_capitals_is_refused(void **state)
{
	planted_is_refused(state, "CREATE TABLE LITEBUS_EXTRA(x)",
			   "LITEBUS_EXTRA");
}

/* litebus_outbox_<name> where <name> is no channel name (it starts with
 * a digit), with the shape of an outbox. */
static void
an_outbox_table_for_an_impossible_channel_name_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE TABLE \"litebus_outbox_9lives\"("
			   "event_id INTEGER PRIMARY KEY, partition_key "
			   "INTEGER NOT NULL, subject BLOB, event_type TEXT "
			   "NOT NULL CHECK(event_type <> ''), namespace TEXT, "
			   "instance_tag TEXT, payload BLOB, occurred_at_ms "
			   "INTEGER NOT NULL, committed_at_ms INTEGER NOT "
			   "NULL)",
			   "litebus_outbox_9lives");
}

static void
an_application_index_on_an_outbox_table_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE INDEX by_type ON "
			   "litebus_outbox_completion(event_type)",
			   "by_type");
}

/* A UNIQUE index turns a second event with the same key into a failed
 * (or, with OR REPLACE, a replacing) insert. */
static void
an_extra_unique_index_on_an_outbox_table_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE UNIQUE INDEX litebus_outbox_completion_key "
			   "ON litebus_outbox_completion(partition_key)",
			   "litebus_outbox_completion_key");
}

/* Channel "completion_partition"'s table takes the name of channel
 * "completion"'s index: both cannot be litebus's. */
static void
an_outbox_table_that_collides_with_another_channel_s_index_is_refused(
    void **state)
{
	planted_is_refused(
	    state,
	    "DROP INDEX litebus_outbox_completion_partition;"
	    "CREATE TABLE \"litebus_outbox_completion_partition\"("
	    "event_id INTEGER PRIMARY KEY, partition_key INTEGER NOT NULL, "
	    "subject BLOB, event_type TEXT NOT NULL CHECK(event_type <> ''), "
	    "namespace TEXT, instance_tag TEXT, payload BLOB, occurred_at_ms "
	    "INTEGER NOT NULL, committed_at_ms INTEGER NOT NULL);"
	    "INSERT INTO litebus_channel VALUES('completion_partition', 0);",
	    "litebus_outbox_completion_partition");
}

/* With writable_schema, an application table can be given an outbox
 * table's pages: every row written to it would be an event. */
static void
an_application_table_sharing_an_outbox_table_s_pages_is_refused(
    void **state)
{
	planted_is_refused(state,
			   "CREATE TABLE mine(a, b, c, d, e, f, g, h, i);"
			   "PRAGMA writable_schema = ON;"
			   "UPDATE sqlite_schema SET rootpage = (SELECT "
			   "rootpage FROM sqlite_schema WHERE name = "
			   "'litebus_outbox_completion') WHERE name = 'mine';",
			   "shares its pages with mine");
}

/* -- Outbox tables of another shape, each differing from litebus's in
 *    one way only: the rest (index, trigger) is rebuilt exactly. */

#define COMPLETION_CHECK                                                       \
	"CHECK(event_type IN ('success', 'failed', 'cancelled', 'expired', "    \
	"'skipped'))"

/* What litebus itself creates for "completion". */
static const char litebus_completion_table[] =
    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER PRIMARY "
    "KEY, partition_key INTEGER NOT NULL, subject BLOB, event_type TEXT NOT "
    "NULL " COMPLETION_CHECK ", namespace TEXT, instance_tag TEXT, payload "
    "BLOB, occurred_at_ms INTEGER NOT NULL, committed_at_ms INTEGER NOT "
    "NULL)";

static void
rebuild_completion_table(struct bus_fixture *f, const char *create)
{
	make_litebus_file(f);
	fx_sql_run_at(f->path, "DROP TABLE litebus_outbox_completion");
	fx_sql_run_at(f->path, create);
	fx_sql_run_at(f->path,
		   "CREATE INDEX \"litebus_outbox_completion_partition\" ON "
		   "\"litebus_outbox_completion\"(partition_key, event_id);"
		   "CREATE TRIGGER \"litebus_outbox_completion_hw\" AFTER "
		   "DELETE ON \"litebus_outbox_completion\" BEGIN UPDATE "
		   "litebus_channel SET high_water = OLD.event_id WHERE name "
		   "= 'completion' AND high_water < OLD.event_id; END;");
}

static void
table_of_another_shape_is_refused(void **state, const char *create)
{
	struct bus_fixture *f = *state;

	rebuild_completion_table(f, create);
	open_is_refused_unchanged(f, LITEBUS_ESCHEMA,
				  "litebus_outbox_completion");
}

/* The control for the variants below: rebuilt with litebus's own
 * statement, the table is accepted. */
static void
an_outbox_table_rebuilt_exactly_as_litebus_makes_it_is_accepted(
    void **state)
{
	struct bus_fixture *f = *state;

	rebuild_completion_table(f, litebus_completion_table);
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 1);
}

static void
an_outbox_table_with_another_column_order_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER "
	    "PRIMARY KEY, subject BLOB, partition_key INTEGER NOT NULL, "
	    "event_type TEXT NOT NULL " COMPLETION_CHECK ", namespace TEXT, "
	    "instance_tag TEXT, payload BLOB, occurred_at_ms INTEGER NOT NULL, "
	    "committed_at_ms INTEGER NOT NULL)");
}

static void
an_outbox_table_with_another_column_type_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER "
	    "PRIMARY KEY, partition_key TEXT NOT NULL, subject BLOB, "
	    "event_type TEXT NOT NULL " COMPLETION_CHECK ", namespace TEXT, "
	    "instance_tag TEXT, payload BLOB, occurred_at_ms INTEGER NOT NULL, "
	    "committed_at_ms INTEGER NOT NULL)");
}

/* INT PRIMARY KEY is not a rowid alias: event_id would be a column of
 * its own. */
static void
an_outbox_table_whose_event_id_is_int_primary_key_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INT PRIMARY "
	    "KEY, partition_key INTEGER NOT NULL, subject BLOB, event_type "
	    "TEXT NOT NULL " COMPLETION_CHECK ", namespace TEXT, instance_tag "
	    "TEXT, payload BLOB, occurred_at_ms INTEGER NOT NULL, "
	    "committed_at_ms INTEGER NOT NULL)");
}

/* INTEGER PRIMARY KEY DESC is not a rowid alias either. */
static void
an_outbox_table_whose_event_id_is_primary_key_desc_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER "
	    "PRIMARY KEY DESC, partition_key INTEGER NOT NULL, subject BLOB, "
	    "event_type TEXT NOT NULL " COMPLETION_CHECK ", namespace TEXT, "
	    "instance_tag TEXT, payload BLOB, occurred_at_ms INTEGER NOT NULL, "
	    "committed_at_ms INTEGER NOT NULL)");
}

static void
an_outbox_table_without_rowid_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER "
	    "PRIMARY KEY, partition_key INTEGER NOT NULL, subject BLOB, "
	    "event_type TEXT NOT NULL " COMPLETION_CHECK ", namespace TEXT, "
	    "instance_tag TEXT, payload BLOB, occurred_at_ms INTEGER NOT NULL, "
	    "committed_at_ms INTEGER NOT NULL) WITHOUT ROWID");
}

/* ON CONFLICT REPLACE: an insert with an existing id would replace the
 * committed row instead of failing. */
static void
an_outbox_table_with_on_conflict_replace_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER "
	    "PRIMARY KEY ON CONFLICT REPLACE, partition_key INTEGER NOT NULL, "
	    "subject BLOB, event_type TEXT NOT NULL " COMPLETION_CHECK ", "
	    "namespace TEXT, instance_tag TEXT, payload BLOB, occurred_at_ms "
	    "INTEGER NOT NULL, committed_at_ms INTEGER NOT NULL)");
}

static void
an_outbox_table_with_autoincrement_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER "
	    "PRIMARY KEY AUTOINCREMENT, partition_key INTEGER NOT NULL, "
	    "subject BLOB, event_type TEXT NOT NULL " COMPLETION_CHECK ", "
	    "namespace TEXT, instance_tag TEXT, payload BLOB, occurred_at_ms "
	    "INTEGER NOT NULL, committed_at_ms INTEGER NOT NULL)");
}

static void
an_outbox_table_with_a_unique_constraint_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER "
	    "PRIMARY KEY, partition_key INTEGER NOT NULL UNIQUE, subject BLOB, "
	    "event_type TEXT NOT NULL " COMPLETION_CHECK ", namespace TEXT, "
	    "instance_tag TEXT, payload BLOB, occurred_at_ms INTEGER NOT NULL, "
	    "committed_at_ms INTEGER NOT NULL)");
}

/* A built-in channel's event types are enforced by the table too. */
static void
an_outbox_table_without_the_event_type_check_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER "
	    "PRIMARY KEY, partition_key INTEGER NOT NULL, subject BLOB, "
	    "event_type TEXT NOT NULL, namespace TEXT, instance_tag TEXT, "
	    "payload BLOB, occurred_at_ms INTEGER NOT NULL, committed_at_ms "
	    "INTEGER NOT NULL)");
}

static void
an_outbox_table_with_an_extra_column_is_refused(void **state)
{
	table_of_another_shape_is_refused(
	    state,
	    "CREATE TABLE \"litebus_outbox_completion\"(event_id INTEGER "
	    "PRIMARY KEY, partition_key INTEGER NOT NULL, subject BLOB, "
	    "event_type TEXT NOT NULL " COMPLETION_CHECK ", namespace TEXT, "
	    "instance_tag TEXT, payload BLOB, occurred_at_ms INTEGER NOT NULL, "
	    "committed_at_ms INTEGER NOT NULL, extra INTEGER DEFAULT 0)");
}

/* A channel this bus does not open is checked all the same: its table is
 * in the file, and another bus will write it. */
static void
an_unopened_channel_s_table_of_another_shape_is_refused(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const channels[] = {"orders", NULL};

	f->opts.channels = channels;
	make_litebus_file(f);
	fx_sql_run_at(f->path,
		   "DROP TABLE litebus_outbox_orders;"
		   "CREATE TABLE litebus_outbox_orders(event_id INT PRIMARY "
		   "KEY, partition_key INTEGER NOT NULL, subject BLOB, "
		   "event_type TEXT NOT NULL, namespace TEXT, instance_tag "
		   "TEXT, payload BLOB, occurred_at_ms INTEGER NOT NULL, "
		   "committed_at_ms INTEGER NOT NULL)");
	f->opts.channels = NULL;
	open_is_refused_unchanged(f, LITEBUS_ESCHEMA, "litebus_outbox_orders");
}

/* ... and, as litebus made it, accepted. */
static void
an_unopened_channel_s_table_as_litebus_made_it_is_accepted(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const channels[] = {"orders", NULL};

	f->opts.channels = channels;
	make_litebus_file(f);
	f->opts.channels = NULL;
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION), 4);
}

/* A dropped high-water trigger means deletions went unrecorded, and a
 * dropped outbox table loses the ids it held: either could make a
 * published id come back, so the file is refused, unchanged. */
static void
a_dropped_high_water_trigger_is_refused(void **state)
{
	planted_is_refused(state, "DROP TRIGGER litebus_outbox_completion_hw",
			   "high-water trigger was dropped");
}

static void
a_dropped_outbox_table_is_refused(void **state)
{
	planted_is_refused(state, "DROP TABLE litebus_outbox_completion",
			   "was dropped");
}

/* -- litebus_meta and litebus_channel */

static void
a_high_water_mark_stored_as_text_is_refused(void **state)
{
	planted_is_refused(state,
			   "UPDATE litebus_channel SET high_water = 'lots' "
			   "WHERE name = 'completion'",
			   "completion");
}

static void
a_negative_high_water_mark_is_refused(void **state)
{
	planted_is_refused(state,
			   "UPDATE litebus_channel SET high_water = -5 "
			   "WHERE name = 'completion'",
			   "completion");
}

static void
a_fractional_high_water_mark_is_refused(void **state)
{
	planted_is_refused(state,
			   "UPDATE litebus_channel SET high_water = 2.5 "
			   "WHERE name = 'completion'",
			   "completion");
}

/* Without its row the channel's deletion mark is lost: ids of deleted
 * rows could come back. */
static void
an_outbox_table_without_its_channel_row_is_refused(void **state)
{
	planted_is_refused(state,
			   "DELETE FROM litebus_channel WHERE name = "
			   "'completion'",
			   "completion");
}

/* A huge mark is a valid mark: the ids go on above it. */
static void
a_huge_high_water_mark_is_accepted_and_ids_go_on_above_it(void **state)
{
	struct bus_fixture *f = *state;

	make_litebus_file(f);
	fx_sql_run_at(f->path, "UPDATE litebus_channel SET high_water = "
			    "4611686018427387904 WHERE name = 'completion'");
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, LITEBUS_COMPLETION),
			 INT64_C(4611686018427387905));
}

static void
a_schema_version_stored_as_text_is_refused(void **state)
{
	planted_is_refused(state,
			   "UPDATE litebus_meta SET value = 'one' "
			   "WHERE key = 'schema_version'",
			   "schema_version");
}

static void
a_fractional_schema_version_is_refused(void **state)
{
	planted_is_refused(state,
			   "UPDATE litebus_meta SET value = 1.5 "
			   "WHERE key = 'schema_version'",
			   "schema_version");
}

static void
a_schema_version_below_1_is_refused(void **state)
{
	planted_is_refused(state,
			   "UPDATE litebus_meta SET value = 0 "
			   "WHERE key = 'schema_version'",
			   "version 0");
}

static void
a_missing_schema_version_is_refused(void **state)
{
	planted_is_refused(state, "DELETE FROM litebus_meta",
			   "schema_version");
}

static void
a_litebus_meta_of_another_shape_is_refused(void **state)
{
	planted_is_refused(state,
			   "DROP TABLE litebus_meta;"
			   "CREATE TABLE litebus_meta(key TEXT PRIMARY KEY, "
			   "value INTEGER NOT NULL, note TEXT) WITHOUT ROWID;"
			   "INSERT INTO litebus_meta VALUES('schema_version', "
			   "1, NULL);",
			   "litebus_meta");
}

static void
a_litebus_channel_of_another_shape_is_refused(void **state)
{
	planted_is_refused(state,
			   "CREATE TABLE keep AS SELECT * FROM litebus_channel;"
			   "DROP TABLE litebus_channel;"
			   "CREATE TABLE litebus_channel(name TEXT PRIMARY KEY, "
			   "high_water INTEGER NOT NULL DEFAULT 0);"
			   "INSERT INTO litebus_channel SELECT * FROM keep;"
			   "DROP TABLE keep;",
			   "litebus_channel");
}

/* Recreating litebus_channel would reset every deletion mark to 0. */
static void
litebus_tables_without_litebus_channel_are_refused(void **state)
{
	planted_is_refused(state, "DROP TABLE litebus_channel",
			   "without litebus_channel");
}

static void
litebus_tables_without_litebus_meta_are_refused(void **state)
{
	planted_is_refused(state, "DROP TABLE litebus_meta",
			   "without litebus_meta");
}

/* Adopting is for a database without litebus objects: a litebus_* table
 * of the application's is refused, with adopt too. */
static void
an_adopted_database_with_a_litebus_table_of_its_own_is_refused(
    void **state)
{
	struct bus_fixture *f = *state;

	make_application_db(f->path);
	fx_sql_run_at(f->path, "CREATE TABLE litebus_outbox_completion(x)");
	open_is_refused_unchanged(f, LITEBUS_EFOREIGN, "adopt");
	f->opts.adopt = 1;
	open_is_refused_unchanged(f, LITEBUS_ESCHEMA,
				  "litebus_outbox_completion");
}

/* ------------------------------------------------------------------ */
/* Names: as the file spells them, and always in main                  */

/* SQLite's table names ignore case, litebus_channel's names do not: a
 * channel reopened as "ORDERS" is the same channel as "orders", with
 * the same deletion mark (litebus_emit: "larger than every event_id ever
 * committed ... on this channel, even deleted ones"). */
static void
a_channel_reopened_in_other_letter_case_keeps_its_high_water_mark(
    void **state)
{
	struct bus_fixture *f = *state;
	static const char *const lower[] = {"orders", NULL};
	static const char *const upper[] = {"ORDERS", NULL};
	int orders = LITEBUS_BUILTIN_CHANNELS;

	f->opts.channels = lower;
	fx_open(f);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(fx_commit_one(f->bus, orders), i);
	close_bus(f);
	fx_sql_run_at(f->path, "DELETE FROM litebus_outbox_orders");
	assert_int_equal(fx_sql_int_at(f->path, "SELECT high_water FROM "
					    "litebus_channel WHERE name = "
					    "'orders'"),
			 3);

	f->opts.channels = upper;
	fx_open(f);
	assert_int_equal(fx_commit_one(f->bus, orders), 4);
	assert_int_equal(fx_sql_int_at(f->path, "SELECT count(*) FROM "
					    "litebus_channel WHERE name = "
					    "'ORDERS'"),
			 0);
}

struct shadow_arg {
	int64_t id;
	int create_rc[2];
};

/* A job tries to make TEMP objects named like litebus's tables (TEMP
 * names come first for unqualified names), changes main's schema (which
 * makes SQLite compile litebus's statements again), then emits. */
static int
job_shadow_then_emit(litebus_tx *tx, void *arg)
{
	struct shadow_arg *a = arg;
	sqlite3 *db = litebus_tx_db(tx);
	litebus_record rec = {0};

	a->create_rc[0] = sqlite3_exec(
	    db,
	    "CREATE TEMP TABLE IF NOT EXISTS "
	    "litebus_outbox_completion(event_id INTEGER PRIMARY "
	    "KEY, partition_key, subject, event_type, namespace, "
	    "instance_tag, payload, occurred_at_ms, committed_at_ms)",
	    NULL, NULL, NULL);
	a->create_rc[1] = sqlite3_exec(db,
				       "CREATE TEMP VIEW IF NOT EXISTS "
				       "litebus_channel AS SELECT 'completion' "
				       "AS name, 0 AS high_water",
				       NULL, NULL, NULL);
	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS main.app_log(x);"
			 "INSERT INTO main.app_log VALUES (1);",
			 NULL, NULL, NULL) != SQLITE_OK)
		return -1000;
	rec.event_type = "success";
	return litebus_emit(tx, LITEBUS_COMPLETION, &rec, &a->id);
}

/* Contract, "What a job may do": creating anything named litebus_*,
 * temporary ones included, is refused; and litebus_emit() appends "to
 * `channel`'s outbox table" in main whatever the job made. */
static void
a_temp_table_named_like_an_outbox_is_refused_and_cannot_capture_rows(
    void **state)
{
	struct bus_fixture *f = *state;
	struct shadow_arg a1 = {0, {0, 0}}, a2 = {0, {0, 0}};
	litebus_reader *r;
	litebus_row row;

	fx_open(f);
	assert_int_equal(litebus_exec(f->bus, job_shadow_then_emit, &a1), 0);
	assert_int_equal(litebus_exec(f->bus, job_shadow_then_emit, &a2), 0);
	assert_int_equal(a1.create_rc[0], SQLITE_AUTH);
	assert_int_equal(a1.create_rc[1], SQLITE_AUTH);
	assert_int_equal(a1.id, 1);
	assert_int_equal(a2.id, 2);
	assert_int_equal(fx_count_rows(f->path, "completion"), 2);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	for (int64_t id = 1; id <= 2; id++) {
		assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(row.event_id, id);
	}
	assert_int_equal(litebus_reader_next(r, &row, 0), LITEBUS_TIMEOUT);
	litebus_reader_close(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(another_application_s_file_is_refused_with_eforeign_and_left_unchanged),
	    FX_TEST_TMPDIR(another_application_s_file_is_refused_even_with_adopt),
	    FX_TEST_TMPDIR(a_utf16_database_is_refused_even_with_adopt),
	    FX_TEST_TMPDIR(another_application_s_empty_file_is_refused),
	    FX_TEST_TMPDIR(a_litebus_schema_in_a_file_marked_by_another_application_is_refused),
	    FX_TEST_TMPDIR(another_application_s_wal_file_is_refused_without_leaving_a_wal),
	    FX_TEST_TMPDIR(another_application_s_uncheckpointed_wal_is_left_as_it_was),
	    FX_TEST_TMPDIR(the_application_s_own_database_is_refused_without_adopt),
	    FX_TEST_TMPDIR(the_application_s_own_wal_database_is_refused_without_adopt),
	    FX_TEST_TMPDIR(the_application_s_own_database_is_adopted_with_adopt),
	    FX_TEST_TMPDIR(the_application_s_index_and_trigger_on_its_own_tables_are_kept),
	    FX_TEST_TMPDIR(an_application_table_named_almost_like_litebus_is_not_litebus_s),
	    FX_TEST_TMPDIR(a_new_file_is_marked_with_litebus_s_application_id),
	    FX_TEST_TMPDIR(a_zero_byte_file_is_opened_and_marked),
	    FX_TEST_TMPDIR(an_in_memory_database_is_marked_too),
	    FX_TEST_TMPDIR(a_version_1_litebus_file_without_the_mark_is_opened_and_marked),
	    FX_TEST_TMPDIR(a_file_made_by_the_previous_release_is_opened_and_marked),
	    FX_TEST_TMPDIR(a_trigger_that_ignores_litebus_s_insert_is_refused),
	    FX_TEST_TMPDIR(a_trigger_that_deletes_litebus_s_row_is_refused),
	    FX_TEST_TMPDIR(a_trigger_that_rewrites_litebus_s_row_is_refused),
	    FX_TEST_TMPDIR(a_trigger_that_forges_rows_in_another_outbox_is_refused),
	    FX_TEST_TMPDIR(a_litebus_named_trigger_on_an_application_table_is_refused),
	    FX_TEST_TMPDIR(a_replaced_high_water_trigger_is_refused),
	    FX_TEST_TMPDIR(a_high_water_trigger_that_lowers_the_mark_is_refused),
	    FX_TEST_TMPDIR(a_trigger_on_litebus_channel_is_refused),
	    FX_TEST_TMPDIR(a_trigger_on_litebus_meta_is_refused),
	    FX_TEST_TMPDIR(a_view_named_like_an_outbox_table_with_instead_of_triggers_is_refused),
	    FX_TEST_TMPDIR(an_unknown_litebus_view_is_refused),
	    FX_TEST_TMPDIR(an_unknown_litebus_table_is_refused),
	    FX_TEST_TMPDIR(an_unknown_litebus_table_in_capitals_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_for_an_impossible_channel_name_is_refused),
	    FX_TEST_TMPDIR(an_application_index_on_an_outbox_table_is_refused),
	    FX_TEST_TMPDIR(an_extra_unique_index_on_an_outbox_table_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_that_collides_with_another_channel_s_index_is_refused),
	    FX_TEST_TMPDIR(an_application_table_sharing_an_outbox_table_s_pages_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_rebuilt_exactly_as_litebus_makes_it_is_accepted),
	    FX_TEST_TMPDIR(an_outbox_table_with_another_column_order_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_with_another_column_type_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_whose_event_id_is_int_primary_key_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_whose_event_id_is_primary_key_desc_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_without_rowid_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_with_on_conflict_replace_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_with_autoincrement_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_with_a_unique_constraint_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_without_the_event_type_check_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_with_an_extra_column_is_refused),
	    FX_TEST_TMPDIR(an_unopened_channel_s_table_of_another_shape_is_refused),
	    FX_TEST_TMPDIR(an_unopened_channel_s_table_as_litebus_made_it_is_accepted),
	    FX_TEST_TMPDIR(a_dropped_high_water_trigger_is_refused),
	    FX_TEST_TMPDIR(a_dropped_outbox_table_is_refused),
	    FX_TEST_TMPDIR(a_high_water_mark_stored_as_text_is_refused),
	    FX_TEST_TMPDIR(a_negative_high_water_mark_is_refused),
	    FX_TEST_TMPDIR(a_fractional_high_water_mark_is_refused),
	    FX_TEST_TMPDIR(an_outbox_table_without_its_channel_row_is_refused),
	    FX_TEST_TMPDIR(a_huge_high_water_mark_is_accepted_and_ids_go_on_above_it),
	    FX_TEST_TMPDIR(a_schema_version_stored_as_text_is_refused),
	    FX_TEST_TMPDIR(a_fractional_schema_version_is_refused),
	    FX_TEST_TMPDIR(a_schema_version_below_1_is_refused),
	    FX_TEST_TMPDIR(a_missing_schema_version_is_refused),
	    FX_TEST_TMPDIR(a_litebus_meta_of_another_shape_is_refused),
	    FX_TEST_TMPDIR(a_litebus_channel_of_another_shape_is_refused),
	    FX_TEST_TMPDIR(litebus_tables_without_litebus_channel_are_refused),
	    FX_TEST_TMPDIR(litebus_tables_without_litebus_meta_are_refused),
	    FX_TEST_TMPDIR(an_adopted_database_with_a_litebus_table_of_its_own_is_refused),
	    FX_TEST_TMPDIR(a_channel_reopened_in_other_letter_case_keeps_its_high_water_mark),
	    FX_TEST_TMPDIR(a_temp_table_named_like_an_outbox_is_refused_and_cannot_capture_rows),
	};

	return cmocka_run_group_tests_name("foreign_files", tests, NULL, NULL);
}
