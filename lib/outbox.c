/* SPDX-License-Identifier: MIT */
/*
 * outbox.c - schema, version, and the statements: append, range read.
 *
 * Every channel has its own table "litebus_outbox_<name>" of one shape.
 * event_id is an INTEGER PRIMARY KEY without AUTOINCREMENT: the writer
 * hands out ids itself (writer.c), above both the table's largest id and a
 * per-channel high-water mark that a trigger raises whenever rows are
 * deleted.  So an id is never reused, even after the newest rows are
 * pruned, and a commit does not pay for the sqlite_sequence page that
 * AUTOINCREMENT rewrites on every insert (bench/bench_idalloc.c measures
 * both).
 *
 * Channel names are validated (lb_catalog_name_ok: [A-Za-z0-9_]) before
 * they are ever placed in SQL, and are quoted as identifiers there.
 *
 * Which files litebus writes to (lb_outbox_open): a file is marked with
 * PRAGMA application_id LITEBUS_APPLICATION_ID.  A file of another
 * application, or one whose litebus objects litebus did not make, is
 * refused before anything is written to it; so is a database of the
 * application's own unless litebus_options.adopt says to add the schema.
 *
 * Invariants of the open path
 *   O1  Nothing is written to a file until, inside the schema
 *       transaction, it proved acceptable: application_id ours; or 0 and
 *       no schema objects (new), or litebus_meta (an earlier version of
 *       this library), or `adopt`.  The mark is set in that transaction,
 *       and WAL is switched on only after it committed.
 *   O2  Every main.sqlite_schema row named litebus_* or on a litebus_*
 *       table is exactly a row that litebus's own statements store (type,
 *       name, table and SQL text), as running them in a scratch in-memory
 *       database shows, for the open channels and for every other channel
 *       the file has a table for, and no other object shares its pages.
 *       Anything else is ESCHEMA.
 *   O3  litebus_meta's schema_version is the integer LB_SCHEMA_VERSION;
 *       every outbox table has its litebus_channel row, and every
 *       high_water is an integer >= 0.
 *   O4  A channel's SQL uses its name as the file spells it: SQLite's
 *       table names ignore case but litebus_channel's names do not, and
 *       the high-water trigger updates the row of the spelling that
 *       created it.
 *   O5  Every statement litebus runs names the schema "main": a TEMP
 *       object a job creates cannot shadow litebus's tables.  (Triggers
 *       in main resolve their names in main.)
 *   O6  A file of an older schema version (LB_SCHEMA_VERSION_OLDEST ..
 *       LB_SCHEMA_VERSION - 1) is migrated in the open transaction, after
 *       its objects passed O2 against the current schema (a version only
 *       adds tables, so an older file's objects are a subset): the new
 *       tables are created and the version recorded, or nothing is.
 *
 * Threads: lb_outbox_open/close and the writer statements run on the
 * thread that owns the writer connection (litebus_open's caller, then the
 * writer thread).  Reader connections belong to their reader.
 */
#include "outbox.h"

#include "catalog.h"
#include "errors.h"
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SQL_MAX 1024

/* The row format, in the order of the outbox table's columns: the range
 * query selects row_columns, and lb_outbox_range_row() decodes them by
 * these ordinals. */
static const char row_columns[] =
    "event_id, partition_key, subject, event_type, namespace, instance_tag, "
    "payload, occurred_at_ms, committed_at_ms";
enum {
	COL_EVENT_ID,
	COL_PARTITION_KEY,
	COL_SUBJECT,
	COL_EVENT_TYPE,
	COL_NAMESPACE,
	COL_INSTANCE_TAG,
	COL_PAYLOAD,
	COL_OCCURRED_AT_MS,
	COL_COMMITTED_AT_MS,
};

/* The range query's parameters (lb_outbox_prepare_range). */
enum {
	PARAM_AFTER = 1,
	PARAM_UPTO,
	PARAM_LIMIT,
	PARAM_PARTITION_KEY,
	PARAM_NAMESPACE,
	PARAM_INSTANCE_TAG,
};

int
lb_outbox_harden(sqlite3 *db)
{
	int rc;

	/* Defensive: no writes to sqlite_schema, no journal tricks, no
	 * direct shadow-table writes.  Untrusted schema: functions and
	 * virtual tables named in a view, trigger or CHECK of the file run
	 * only if they are innocuous, so a planted trigger cannot run code
	 * through our statements. */
	rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0,
				       (int *)NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_extended_result_codes(db, 1);
	return rc;
}

/* Writer connection commit hook: a COMMIT while a job runs can only be
 * SQLite's autocommit after it rolled the batch's transaction back under
 * the job (an I/O error, a full disk): turn it into a rollback, so that
 * nothing the job runs afterwards commits on its own (writer.c,
 * writer_run_job). */
static int
outbox_commit_hook(void *arg)
{
	const struct lb_outbox *ob = arg;

	return ob->in_job ? 1 : 0;
}

/* Is `name` (may be NULL) in litebus's namespace ("litebus_...", any
 * case)? */
static bool
outbox_is_ours(const char *name)
{
	return name != NULL && strncasecmp(name, "litebus_", 8) == 0;
}

/* Is `name` one of the tables only litebus's own statements write
 * (lb_outbox_own_step): consumer positions and pruned prefixes? */
static bool
outbox_is_own_state(const char *name)
{
	return strcasecmp(name, "litebus_consumer") == 0 ||
	       strcasecmp(name, "litebus_pruned") == 0;
}

/* Is `name` the name of a high-water trigger, litebus_outbox_<c>_hw? */
static bool
outbox_is_hw_trigger(const char *name)
{
	size_t n;

	if (name == NULL || strncasecmp(name, "litebus_outbox_", 15) != 0)
		return false;
	n = strlen(name);
	return n > 18 && strcasecmp(name + n - 3, "_hw") == 0;
}

static bool
outbox_name_in(const char *name, const char *const *list)
{
	for (const char *const *p = list; *p != NULL; p++)
		if (strcasecmp(name, *p) == 0)
			return true;
	return false;
}

/* PRAGMAs a job may run with an argument: they only read (or, for
 * user_version, write a transactional field of the application's).
 * Every other PRAGMA with an argument changes the connection or the file
 * (synchronous, journal_mode, query_only, trusted_schema, ...). */
static const char *const pragma_query_with_arg[] = {
    "table_info",      "table_xinfo", "table_list",	  "index_info",
    "index_xinfo",     "index_list",  "foreign_key_list", "foreign_key_check",
    "integrity_check", "quick_check", "user_version",	  NULL};
/* PRAGMAs without an argument that act rather than read. */
static const char *const pragma_action_no_arg[] = {"wal_checkpoint", "optimize",
						   NULL};

/* Writer connection authorizer (lb_outbox_job_rules in outbox.h; the
 * header's "What a job may do").  Inside a job it refuses what would
 * break the batch or a guarantee: ending or starting the transaction,
 * litebus's savepoints, ATTACH/DETACH, PRAGMAs that change the connection
 * or the file, writing litebus's tables except litebus_emit()'s own
 * INSERT, and creating, changing or dropping anything in litebus's
 * namespace or on its tables.  Deleting outbox rows (pruning) stays
 * allowed on file databases.  Outside jobs (litebus's own statements)
 * everything is allowed.  Runs at prepare time, on the writer thread -
 * also when a statement is re-prepared inside a job after a schema
 * change, and for the body of every trigger a statement fires (then
 * `trigger` names it). */
static int
outbox_authorize(void *arg, int action, const char *a1, const char *a2,
		 const char *dbname, const char *trigger)
{
	struct lb_outbox *ob = arg;

	(void)dbname;
	if (!ob->in_job)
		return SQLITE_OK;
	switch (action) {
	case SQLITE_CREATE_INDEX:
	case SQLITE_CREATE_TABLE:
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_CREATE_VIEW:
	case SQLITE_CREATE_VTABLE:
	case SQLITE_ALTER_TABLE:
		/* lb_outbox_after_job checks the namespace afterwards. */
		ob->job_ddl = true;
		break;
	default:
		break;
	}
	/* After SQLite rolled the whole transaction back under the job,
	 * nothing the job prepares may write or open a transaction of its
	 * own: only reads. */
	if (ob->txn_lost && action != SQLITE_READ && action != SQLITE_SELECT &&
	    action != SQLITE_FUNCTION)
		return SQLITE_DENY;
	switch (action) {
	case SQLITE_TRANSACTION:
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
		return SQLITE_DENY;
	case SQLITE_SAVEPOINT:
		/* a1 is the operation, a2 the savepoint's name. */
		return a2 != NULL && strncasecmp(a2, "litebus", 7) == 0
			   ? SQLITE_DENY
			   : SQLITE_OK;
	case SQLITE_PRAGMA:
		/* a1 is the pragma, a2 its argument or NULL. */
		if (a1 == NULL)
			return SQLITE_DENY;
		if (a2 == NULL)
			return outbox_name_in(a1, pragma_action_no_arg)
				   ? SQLITE_DENY
				   : SQLITE_OK;
		return outbox_name_in(a1, pragma_query_with_arg) ? SQLITE_OK
								 : SQLITE_DENY;
	case SQLITE_INSERT:
		/* Only litebus_emit()'s own INSERT, not a trigger it fires;
		 * and litebus's own statements (lb_outbox_own_step) on its
		 * consumer and pruning tables. */
		if (!outbox_is_ours(a1))
			return SQLITE_OK;
		if (ob->in_own && trigger == NULL && outbox_is_own_state(a1))
			return SQLITE_OK;
		return ob->in_emit && trigger == NULL &&
			       strncasecmp(a1, "litebus_outbox_", 15) == 0
			   ? SQLITE_OK
			   : SQLITE_DENY;
	case SQLITE_UPDATE:
		if (!outbox_is_ours(a1))
			return SQLITE_OK;
		if (ob->in_own && trigger == NULL && outbox_is_own_state(a1))
			return SQLITE_OK;
		/* The high-water triggers (litebus_outbox_<c>_hw, checked to
		 * be litebus's own when the file was opened) raise the mark
		 * in litebus_channel; nothing else updates litebus's tables. */
		return outbox_is_hw_trigger(trigger) &&
			       strcasecmp(a1, "litebus_channel") == 0
			   ? SQLITE_OK
			   : SQLITE_DENY;
	case SQLITE_DELETE:
		if (!outbox_is_ours(a1))
			return SQLITE_OK;
		if (ob->in_own && trigger == NULL && outbox_is_own_state(a1))
			return SQLITE_OK;
		/* Pruning outbox rows is allowed; readers see committed rows
		 * only (WAL, or memvfs.c's M3 in memory), so a DELETE that
		 * rolls back never makes them skip a row. */
		return strncasecmp(a1, "litebus_outbox_", 15) == 0
			   ? SQLITE_OK
			   : SQLITE_DENY;
	case SQLITE_CREATE_INDEX:
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_DROP_INDEX:
	case SQLITE_DROP_TEMP_INDEX:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_DROP_TEMP_TRIGGER:
	case SQLITE_CREATE_VTABLE:
	case SQLITE_DROP_VTABLE:
	case SQLITE_CREATE_TABLE:
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_VIEW:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_DROP_TABLE:
	case SQLITE_DROP_TEMP_TABLE:
	case SQLITE_DROP_VIEW:
	case SQLITE_DROP_TEMP_VIEW:
		/* a1 is the object; a2 its table (indexes, triggers), the
		 * module (virtual tables), or NULL.  A temporary object named
		 * like one of litebus's would shadow it for unqualified
		 * names; litebus's own statements say "main." anyway. */
		if (outbox_is_ours(a1))
			return SQLITE_DENY;
		if (action != SQLITE_CREATE_VTABLE &&
		    action != SQLITE_DROP_VTABLE && outbox_is_ours(a2))
			return SQLITE_DENY;
		return SQLITE_OK;
	case SQLITE_ALTER_TABLE:
		/* a1 is the database, a2 the table. */
		return outbox_is_ours(a2) ? SQLITE_DENY : SQLITE_OK;
	default:
		return SQLITE_OK;
	}
}

static int
outbox_exec(sqlite3 *db, const char *sql, const char *what)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, what);
	return LITEBUS_OK;
}

static int
outbox_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
				    NULL);

	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, "preparing a statement");
	return LITEBUS_OK;
}

/* Run a statement that returns no rows, leaving it reset. */
static int
outbox_step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ------------------------------------------------------------------ */
/* Opening: whose file is it, and is its schema exactly litebus's      */

/* What lb_outbox_open learns about the file inside its schema
 * transaction, before it writes anything (O1). */
struct outbox_file {
	const char *path;	 /* for messages */
	int64_t nobjects;	 /* rows of main.sqlite_schema */
	uint32_t application_id; /* PRAGMA application_id */
	bool has_meta;		 /* a table named litebus_meta */
	bool has_channel_table;	 /* a table named litebus_channel */
	int64_t version;	 /* litebus_meta's schema_version */
	char encoding[16];	 /* PRAGMA encoding: "UTF-8", "UTF-16le"... */
	/* Channel i's name as the file spells it.  SQLite's names ignore
	 * case, so a channel reopened as "Orders" uses the table, and must
	 * use the litebus_channel row, that "orders" created (O4). */
	char name[LITEBUS_MAX_CHANNELS][LITEBUS_CHANNEL_NAME_MAX + 1];
};

/* The tables every litebus file has.  Run on the file and on the scratch
 * database that gives the expected schema (O2): the text SQLite stores
 * for them starts at the table's name, so "IF NOT EXISTS main." is not
 * part of it and files made before the qualifier was added still match. */
static const char outbox_base_sql[] =
    "CREATE TABLE IF NOT EXISTS main.litebus_meta("
    "key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO main.litebus_meta(key, value) "
    "VALUES('schema_version', 2);"
    "CREATE TABLE IF NOT EXISTS main.litebus_channel("
    "name TEXT PRIMARY KEY, high_water INTEGER NOT NULL DEFAULT 0) "
    "WITHOUT ROWID;"
    /* Schema version 2: durable consumers (consumer.c) and the prefix of
     * each channel that retention pruned (retention.c, reader.c D7).
     * A channel is keyed by lb_outbox_state_key(): its name in lower
     * case, since channel names are unique ignoring case and the bus may
     * spell one differently from the file (O4). */
    "CREATE TABLE IF NOT EXISTS main.litebus_consumer("
    "channel TEXT NOT NULL, name TEXT NOT NULL, "
    "position INTEGER NOT NULL, acked_at_ms INTEGER NOT NULL, "
    "holder_pid INTEGER NOT NULL DEFAULT 0, "
    "holder_start INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY(channel, name)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS main.litebus_pruned("
    "name TEXT PRIMARY KEY, pruned_through INTEGER NOT NULL) "
    "WITHOUT ROWID;";

/* Migration from schema version 1 (litebus 0.1): the tables above were
 * added by outbox_base_sql in the same transaction; record the version.
 * Nothing else changed, so nothing is copied and nothing can be lost. */
static const char outbox_migrate_sql[] =
    "UPDATE main.litebus_meta SET value = 2 "
    "WHERE key = 'schema_version' AND value = 1;";

static void
outbox_type_check(char *buf, size_t len, const char *const *types)
{
	size_t n;

	if (types == NULL) {
		snprintf(buf, len, "event_type <> ''");
		return;
	}
	n = (size_t)snprintf(buf, len, "event_type IN (");
	for (const char *const *t = types; *t != NULL && n < len; t++)
		n += (size_t)snprintf(buf + n, len - n, "%s'%s'",
				      t == types ? "" : ", ", *t);
	if (n < len)
		snprintf(buf + n, len - n, ")");
}

/* The statements that create one channel's table, index, high-water row
 * and trigger, for `name` (valid: lb_catalog_name_ok) with the event-type
 * CHECK of `types` (catalog.h; NULL: any non-empty type).  Run on the file and
 * on the scratch database (O2).  The trigger's body cannot name a schema; a
 * trigger in main resolves its table names in main. */
static void
outbox_channel_sql(char *sql, size_t len, const char *name,
		   const char *const *types)
{
	char check[SQL_MAX / 2];
	int n;

	assert(lb_catalog_name_ok(name));
	outbox_type_check(check, sizeof check, types);
	n = snprintf(
	    sql, len,
	    "CREATE TABLE IF NOT EXISTS main.\"litebus_outbox_%s\"("
	    "event_id INTEGER PRIMARY KEY, "
	    "partition_key INTEGER NOT NULL, "
	    "subject BLOB, "
	    "event_type TEXT NOT NULL CHECK(%s), "
	    "namespace TEXT, "
	    "instance_tag TEXT, "
	    "payload BLOB, "
	    "occurred_at_ms INTEGER NOT NULL, "
	    "committed_at_ms INTEGER NOT NULL);"
	    "CREATE INDEX IF NOT EXISTS "
	    "main.\"litebus_outbox_%s_partition\" "
	    "ON \"litebus_outbox_%s\"(partition_key, event_id);"
	    "INSERT OR IGNORE INTO main.litebus_channel(name, "
	    "high_water) VALUES('%s', 0);"
	    /* Ids are never reused: deleting a row raises the mark. */
	    "CREATE TRIGGER IF NOT EXISTS main.\"litebus_outbox_%s_hw\" "
	    "AFTER DELETE ON \"litebus_outbox_%s\" BEGIN "
	    "UPDATE litebus_channel SET high_water = OLD.event_id "
	    "WHERE name = '%s' AND high_water < OLD.event_id; END;",
	    name, check, name, name, name, name, name, name);
	assert(n > 0 && (size_t)n < len);
	(void)n;
}

/* Column i of the current row as text for a message; "?" where SQLite
 * has none (NULL, or out of memory). */
static const char *
outbox_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s != NULL ? s : "?";
}

/* The first reads, inside the schema transaction.  The file's first page
 * is read here (or by BEGIN): a file that is not a database, or is
 * corrupt, fails before anything was written. */
static int
outbox_inspect(sqlite3 *db, struct outbox_file *f)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0;
	int rc;

	rc = sqlite3_prepare_v2(
	    db,
	    "SELECT count(*), "
	    "coalesce(sum(type = 'table' AND lower(name) = 'litebus_meta'), "
	    "0), "
	    "coalesce(sum(type = 'table' AND lower(name) = 'litebus_channel'), "
	    "0) FROM main.sqlite_schema",
	    -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			f->nobjects = sqlite3_column_int64(st, 0);
			f->has_meta = sqlite3_column_int64(st, 1) > 0;
			f->has_channel_table = sqlite3_column_int64(st, 2) > 0;
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(db, rc, "reading the database schema");
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(st);
	rc =
	    sqlite3_prepare_v2(db, "PRAGMA main.application_id", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			id = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(db, rc, "reading the application_id");
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(st);
	/* A signed 32-bit field in the header: keep its bits. */
	f->application_id = (uint32_t)(id & 0xffffffff);
	rc = sqlite3_prepare_v2(db, "PRAGMA main.encoding", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const unsigned char *t = sqlite3_column_text(st, 0);

			rc = t != NULL ? SQLITE_OK : SQLITE_NOMEM;
			if (t != NULL)
				snprintf(f->encoding, sizeof f->encoding, "%s",
					 (const char *)t);
		}
	}
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(db, rc, "reading the text encoding");
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(st);
	return LITEBUS_OK;
}

/* Strings (event types, namespaces, tags) are stored as the caller's
 * bytes only in a UTF-8 database; a UTF-16 one would convert them, and a
 * reader would get other bytes than were emitted. */
static int
outbox_check_encoding(const struct outbox_file *f)
{
	if (strcmp(f->encoding, "UTF-8") == 0)
		return LITEBUS_OK;
	return lb_err_set(LITEBUS_EFOREIGN,
			  "opening %s: the database's text encoding is %s; "
			  "litebus stores strings byte for byte and needs "
			  "UTF-8",
			  f->path, f->encoding);
}

/* O1: may litebus write to this file at all? */
static int
outbox_check_owner(const struct outbox_file *f, bool adopt)
{
	if (f->application_id == (uint32_t)LITEBUS_APPLICATION_ID)
		return outbox_check_encoding(f);
	if (f->application_id != 0)
		return lb_err_set(LITEBUS_EFOREIGN,
				  "opening %s: the file belongs to another "
				  "application (PRAGMA application_id 0x%08lX; "
				  "litebus's is 0x%08lX)",
				  f->path, (unsigned long)f->application_id,
				  (unsigned long)LITEBUS_APPLICATION_ID);
	/* 0: a new or empty file, one this library's earlier versions made
	 * (litebus_meta), or the application's own database. */
	if (f->nobjects == 0 || f->has_meta || adopt)
		return outbox_check_encoding(f);
	return lb_err_set(LITEBUS_EFOREIGN,
			  "opening %s: an existing database without litebus's "
			  "schema; set litebus_options.adopt to add litebus's "
			  "tables to it",
			  f->path);
}

/* The schema version in litebus_meta: exactly LB_SCHEMA_VERSION, or
 * ESCHEMA (newer, or not a value litebus wrote). */
static int
outbox_check_version(sqlite3 *db, struct outbox_file *f)
{
	sqlite3_stmt *st = NULL;
	int64_t version;
	int rc;

	if (!f->has_meta)
		return LITEBUS_OK;
	/* Read before the objects are compared (O2): a newer version may
	 * have other objects, and deserves the clearer message. */
	rc =
	    sqlite3_prepare_v2(db,
			       "SELECT typeof(value), value FROM "
			       "main.litebus_meta WHERE key = 'schema_version'",
			       -1, &st, NULL);
	if (rc != SQLITE_OK) {
		if ((rc & 0xff) == SQLITE_ERROR)
			return lb_err_set(LITEBUS_ESCHEMA,
					  "opening %s: table litebus_meta is "
					  "not litebus's: %s",
					  f->path, sqlite3_errmsg(db));
		return lb_err_sqlite(db, rc, "reading litebus_meta");
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(st);
		return lb_err_set(LITEBUS_ESCHEMA,
				  "opening %s: litebus_meta has no "
				  "schema_version",
				  f->path);
	}
	if (rc != SQLITE_ROW) {
		rc = lb_err_sqlite(db, rc, "reading litebus_meta");
		sqlite3_finalize(st);
		return rc;
	}
	if (strcmp(outbox_text(st, 0), "integer") != 0) {
		rc = lb_err_set(LITEBUS_ESCHEMA,
				"opening %s: litebus_meta's schema_version is "
				"%s, not an integer",
				f->path, outbox_text(st, 0));
		sqlite3_finalize(st);
		return rc;
	}
	version = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	if (version > LB_SCHEMA_VERSION)
		return lb_err_set(LITEBUS_ESCHEMA,
				  "opening %s: litebus schema version %lld is "
				  "newer than this library's %d",
				  f->path, (long long)version,
				  LB_SCHEMA_VERSION);
	if (version < LB_SCHEMA_VERSION_OLDEST)
		return lb_err_set(LITEBUS_ESCHEMA,
				  "opening %s: litebus schema version %lld is "
				  "not one litebus ever wrote",
				  f->path, (long long)version);
	f->version = version; /* older ones are migrated (O6) */
	return LITEBUS_OK;
}

/* Index of the open channel named `name` ignoring case, or -1. */
static int
outbox_find_channel(const struct lb_chan_spec *chans, int nchannels,
		    const char *name)
{
	for (int i = 0; i < nchannels; i++)
		if (strcasecmp(chans[i].name, name) == 0)
			return i;
	return -1;
}

/* The file's outbox tables whose names are valid channel names.  Pass 1
 * (scratch == NULL) spells the open channels as the file does (O4); pass
 * 2 creates every other one in `scratch`: not built in (every built-in
 * channel is open), so any non-empty event type.  A table of the file
 * whose objects collide with another channel's (channel "x" has an index
 * litebus_outbox_x_partition, which is also channel "x_partition"'s
 * table) is refused.  Any other litebus_outbox_* table is refused by the
 * comparison in outbox_check_objects. */
static int
outbox_file_channels(sqlite3 *db, struct outbox_file *f,
		     const struct lb_chan_spec *chans, int nchannels,
		     sqlite3 *scratch)
{
	char sql[SQL_MAX * 2];
	sqlite3_stmt *st = NULL;
	int rc, step = SQLITE_DONE;

	rc = sqlite3_prepare_v2(
	    db,
	    "SELECT substr(name, 16) FROM main.sqlite_schema "
	    "WHERE type = 'table' AND lower(substr(name, 1, "
	    "15)) = 'litebus_outbox_'",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, "reading the database schema");
	while (rc == LITEBUS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 0);
		int i;

		if (s == NULL || !lb_catalog_name_ok(s))
			continue;
		i = outbox_find_channel(chans, nchannels, s);
		if (scratch == NULL) {
			if (i >= 0)
				snprintf(f->name[i], sizeof f->name[i], "%s",
					 s);
			continue;
		}
		if (i >= 0)
			continue;
		/* Not open: not a built-in channel (those always are). */
		outbox_channel_sql(sql, sizeof sql, s, NULL);
		rc = sqlite3_exec(scratch, sql, NULL, NULL, NULL);
		if ((rc & 0xff) == SQLITE_ERROR)
			rc = lb_err_set(LITEBUS_ESCHEMA,
					"opening %s: table litebus_outbox_%s "
					"collides with another channel's "
					"objects: %s",
					f->path, s, sqlite3_errmsg(scratch));
		else if (rc != SQLITE_OK)
			rc = lb_err_sqlite(scratch, rc,
					   "building litebus's schema");
	}
	if (rc == LITEBUS_OK && step != SQLITE_DONE)
		rc = lb_err_sqlite(db, step, "reading the database schema");
	sqlite3_finalize(st);
	return rc;
}

/* Build, in the scratch connection, every object litebus would create
 * for the open channels (spelled as in the file, O4) and for the file's
 * other channels, and index them by name.  Open channels whose objects
 * collide are EINVAL. */
static int
outbox_build_expected(sqlite3 *db, sqlite3 *scratch, struct outbox_file *f,
		      const struct lb_chan_spec *chans, int nchannels)
{
	char sql[SQL_MAX * 2];
	int rc;

	rc = sqlite3_exec(scratch, outbox_base_sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(scratch, rc, "building litebus's schema");
	rc = outbox_file_channels(db, f, chans, nchannels, NULL);
	for (int i = 0; rc == LITEBUS_OK && i < nchannels; i++) {
		outbox_channel_sql(sql, sizeof sql, f->name[i], chans[i].types);
		rc = sqlite3_exec(scratch, sql, NULL, NULL, NULL);
		if ((rc & 0xff) == SQLITE_ERROR)
			rc = lb_err_set(LITEBUS_EINVAL,
					"channel %s: its tables collide with "
					"another channel's: %s",
					chans[i].name, sqlite3_errmsg(scratch));
		else if (rc != SQLITE_OK)
			rc = lb_err_sqlite(scratch, rc,
					   "building litebus's schema");
	}
	if (rc == LITEBUS_OK)
		rc = outbox_file_channels(db, f, chans, nchannels, scratch);
	if (rc != LITEBUS_OK)
		return rc;
	/* Looked up by name: a file may have many channels. */
	rc = sqlite3_exec(scratch,
			  "CREATE TEMP TABLE expected AS SELECT type, name, "
			  "tbl_name, sql FROM main.sqlite_schema; "
			  "CREATE INDEX temp.expected_name ON expected(name)",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(scratch, rc, "building litebus's schema");
	return LITEBUS_OK;
}

static bool
outbox_same_text(const unsigned char *a, const unsigned char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp((const char *)a, (const char *)b) == 0;
}

/* Refuse the object of the current row of `st` (type, name, tbl_name). */
static int
outbox_refuse_object(const struct outbox_file *f, sqlite3_stmt *st,
		     const char *why)
{
	const char *type = outbox_text(st, 0);
	const char *name = outbox_text(st, 1);
	const char *tbl = outbox_text(st, 2);

	if (strcmp(name, tbl) != 0)
		return lb_err_set(LITEBUS_ESCHEMA, "opening %s: %s %s on %s %s",
				  f->path, type, name, tbl, why);
	return lb_err_set(LITEBUS_ESCHEMA, "opening %s: %s %s %s", f->path,
			  type, name, why);
}

/* Is the file's object in the current row of `st` (type, name, tbl_name,
 * sql) exactly the one `lookup` (type, tbl_name, sql by name) expects? */
static int
outbox_compare_object(const struct outbox_file *f, sqlite3 *scratch,
		      sqlite3_stmt *st, sqlite3_stmt *lookup)
{
	int rc;

	rc = sqlite3_reset(lookup);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(lookup, 1,
				       (const char *)sqlite3_column_text(st, 1),
				       -1, SQLITE_TRANSIENT);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(lookup);
	if (rc == SQLITE_DONE)
		return outbox_refuse_object(f, st,
					    "was not created by litebus");
	if (rc != SQLITE_ROW)
		return lb_err_sqlite(scratch, rc, "comparing the schema");
	if (!outbox_same_text(sqlite3_column_text(st, 0),
			      sqlite3_column_text(lookup, 0)) ||
	    !outbox_same_text(sqlite3_column_text(st, 2),
			      sqlite3_column_text(lookup, 1)) ||
	    !outbox_same_text(sqlite3_column_text(st, 3),
			      sqlite3_column_text(lookup, 2)))
		return outbox_refuse_object(
		    f, st, "differs from litebus's definition");
	return LITEBUS_OK;
}

/* O2: no two objects of the file share a b-tree where one of them is
 * litebus's.  SQLite trusts sqlite_schema's root page numbers: a file
 * edited with writable_schema could give an application table the pages
 * of an outbox table, and every row written to it would be an event. */
static int
outbox_check_root_pages(sqlite3 *db, const struct outbox_file *f)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(
	    db,
	    "SELECT a.type, a.name, a.tbl_name, b.name FROM main.sqlite_schema "
	    "AS a JOIN main.sqlite_schema AS b ON b.rootpage = a.rootpage AND "
	    "b.rowid <> a.rowid WHERE a.rootpage > 0 AND "
	    "(lower(substr(a.name, 1, 8)) = 'litebus_' OR "
	    "lower(substr(a.tbl_name, 1, 8)) = 'litebus_') LIMIT 1",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, "reading the database schema");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		char why[LITEBUS_CHANNEL_NAME_MAX * 4];

		snprintf(why, sizeof why, "shares its pages with %s",
			 outbox_text(st, 3));
		rc = outbox_refuse_object(f, st, why);
	} else if (rc == SQLITE_DONE) {
		rc = LITEBUS_OK;
	} else {
		rc = lb_err_sqlite(db, rc, "reading the database schema");
	}
	sqlite3_finalize(st);
	return rc;
}

/* O2: every object of the file that is litebus's business (named
 * litebus_*, or on a litebus_* table; substr, not LIKE: "_" is a LIKE
 * wildcard) is exactly one litebus creates, for the open channels or for
 * the file's others. */
static int
outbox_check_objects(sqlite3 *db, struct outbox_file *f,
		     const struct lb_chan_spec *chans, int nchannels)
{
	sqlite3 *scratch = NULL;
	sqlite3_stmt *st = NULL, *lookup = NULL;
	int rc, step;

	for (int i = 0; i < nchannels; i++)
		snprintf(f->name[i], sizeof f->name[i], "%s", chans[i].name);
	rc = sqlite3_prepare_v2(db,
				"SELECT type, name, tbl_name, sql FROM "
				"main.sqlite_schema WHERE "
				"lower(substr(name, 1, 8)) = 'litebus_' OR "
				"lower(substr(tbl_name, 1, 8)) = 'litebus_'",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, "reading the database schema");
	if (!f->has_meta || !f->has_channel_table) {
		/* litebus creates all its tables in one transaction: without
		 * litebus_meta or litebus_channel, any litebus object is
		 * someone else's. */
		step = sqlite3_step(st);
		if (step == SQLITE_ROW)
			rc = outbox_refuse_object(
			    f, st,
			    f->has_meta ? "is in a file without litebus_channel"
					: "is in a file without litebus_meta");
		else if (step != SQLITE_DONE)
			rc = lb_err_sqlite(db, step,
					   "reading the database schema");
		sqlite3_finalize(st);
		return rc;
	}
	/* The expected text comes from SQLite itself, which stores a
	 * normalized form of each statement: litebus's own statements run
	 * in a private in-memory database give exactly the rows that a file
	 * litebus made has. */
	rc = sqlite3_open_v2(":memory:", &scratch,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK)
		rc = lb_err_sqlite(scratch, rc, "opening a scratch database");
	if (rc == LITEBUS_OK)
		rc = outbox_build_expected(db, scratch, f, chans, nchannels);
	if (rc == LITEBUS_OK) {
		rc = sqlite3_prepare_v2(scratch,
					"SELECT type, tbl_name, sql FROM "
					"temp.expected WHERE name = ?1",
					-1, &lookup, NULL);
		if (rc != SQLITE_OK)
			rc = lb_err_sqlite(scratch, rc,
					   "building litebus's schema");
	}
	while (rc == LITEBUS_OK) {
		step = sqlite3_step(st);
		if (step == SQLITE_DONE)
			break;
		if (step != SQLITE_ROW)
			rc = lb_err_sqlite(db, step,
					   "reading the database schema");
		else
			rc = outbox_compare_object(f, scratch, st, lookup);
	}
	sqlite3_finalize(lookup);
	sqlite3_finalize(st);
	sqlite3_close_v2(scratch);
	if (rc == LITEBUS_OK)
		rc = outbox_check_root_pages(db, f);
	return rc;
}

/* O3: the litebus_channel rows the writer reads its ids from: one per
 * outbox table, each high-water mark a non-negative integer.  (A huge
 * mark is fine here: the writer refuses ids beyond INT64_MAX.) */
static int
outbox_check_channel_rows(sqlite3 *db, const struct outbox_file *f)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (!f->has_channel_table)
		return LITEBUS_OK;
	rc = sqlite3_prepare_v2(
	    db,
	    "SELECT name, 'its high-water mark (high_water) is ' || "
	    "quote(high_water) || ', not a non-negative integer' FROM "
	    "main.litebus_channel WHERE "
	    "typeof(high_water) <> 'integer' OR high_water < 0 "
	    "UNION ALL "
	    "SELECT substr(m.name, 16), 'it has no row: its high-water mark is "
	    "lost' FROM main.sqlite_schema AS m WHERE m.type = 'table' AND "
	    "lower(substr(m.name, 1, 15)) = 'litebus_outbox_' AND NOT EXISTS "
	    "(SELECT 1 FROM main.litebus_channel AS c WHERE c.name = "
	    "substr(m.name, 16)) "
	    /* Dropped by another connection: the ids its rows held, and
	     * the deletions the trigger would have recorded, are lost, so
	     * continuing could hand a published id out again (W4). */
	    "UNION ALL "
	    "SELECT c.name, 'its table litebus_outbox_' || c.name || ' was "
	    "dropped, so its ids cannot be continued safely (delete its "
	    "litebus_channel row to start the channel over)' FROM "
	    "main.litebus_channel AS c WHERE NOT EXISTS (SELECT 1 FROM "
	    "main.sqlite_schema AS m WHERE m.type = 'table' AND lower(m.name) "
	    "= lower('litebus_outbox_' || c.name)) "
	    "UNION ALL "
	    "SELECT substr(m.name, 16), 'its high-water trigger was dropped, "
	    "so ids of rows deleted since then could be handed out again' "
	    "FROM main.sqlite_schema AS m WHERE m.type = 'table' AND "
	    "lower(substr(m.name, 1, 15)) = 'litebus_outbox_' AND NOT EXISTS "
	    "(SELECT 1 FROM main.sqlite_schema AS t WHERE t.type = 'trigger' "
	    "AND lower(t.name) = lower(m.name || '_hw')) LIMIT 1",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, "reading litebus_channel");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc =
		    lb_err_set(LITEBUS_ESCHEMA,
			       "opening %s: litebus_channel, channel %s: %s",
			       f->path, outbox_text(st, 0), outbox_text(st, 1));
	else if (rc == SQLITE_DONE)
		rc = LITEBUS_OK;
	else
		rc = lb_err_sqlite(db, rc, "reading litebus_channel");
	sqlite3_finalize(st);
	return rc;
}

static int outbox_prepare_all(struct lb_outbox *ob, const struct outbox_file *f,
			      int nchannels);

/* Check the file (O1, O2, O3), create what is missing, mark the file as
 * litebus's and prepare every statement, in one transaction: if anything
 * does not fit, the transaction rolls back having written nothing. */
static int
outbox_create_schema(struct lb_outbox *ob, struct outbox_file *f,
		     const struct lb_chan_spec *chans, int nchannels,
		     bool adopt)
{
	char sql[SQL_MAX * 2];
	sqlite3 *db = ob->db;
	int rc;

	rc = outbox_exec(db, "BEGIN IMMEDIATE", "beginning schema creation");
	if (rc != LITEBUS_OK)
		return rc;
	rc = outbox_inspect(db, f);
	if (rc == LITEBUS_OK)
		rc = outbox_check_owner(f, adopt);
	if (rc == LITEBUS_OK)
		rc = outbox_check_version(db, f);
	if (rc == LITEBUS_OK)
		rc = outbox_check_objects(db, f, chans, nchannels);
	if (rc == LITEBUS_OK)
		rc = outbox_check_channel_rows(db, f);
	/* The file is acceptable: from here on it is written. */
	if (rc == LITEBUS_OK)
		rc = outbox_exec(db, outbox_base_sql, "creating litebus_meta");
	if (rc == LITEBUS_OK && f->has_meta && f->version < LB_SCHEMA_VERSION)
		rc = outbox_exec(db, outbox_migrate_sql,
				 "migrating the litebus schema");
	for (int i = 0; rc == LITEBUS_OK && i < nchannels; i++) {
		char what[SQL_MAX / 4];

		outbox_channel_sql(sql, sizeof sql, f->name[i], chans[i].types);
		snprintf(what, sizeof what,
			 "creating or checking table litebus_outbox_%s",
			 f->name[i]);
		rc = outbox_exec(db, sql, what);
	}
	/* The application_id lives in the header page, which this
	 * transaction writes: the mark commits with the schema or not at
	 * all. */
	if (rc == LITEBUS_OK &&
	    f->application_id != (uint32_t)LITEBUS_APPLICATION_ID) {
		snprintf(sql, sizeof sql, "PRAGMA main.application_id = %d",
			 LITEBUS_APPLICATION_ID);
		rc = outbox_exec(db, sql, "setting the application_id");
	}
	if (rc == LITEBUS_OK)
		rc = outbox_prepare_all(ob, f, nchannels);
	if (rc == LITEBUS_OK)
		rc = outbox_exec(db, "COMMIT", "committing the schema");
	/* A failed ROLLBACK leaves nothing to do: closing the connection,
	 * which the caller does next, rolls back too. */
	if (rc != LITEBUS_OK && !sqlite3_get_autocommit(db))
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int
outbox_configure(sqlite3 *db, const struct lb_dbname *dbn, int durability)
{
	sqlite3_stmt *st;
	int rc;

	if (!dbn->is_memory) {
		rc = sqlite3_prepare_v2(db, "PRAGMA main.journal_mode=WAL", -1,
					&st, NULL);
		if (rc != SQLITE_OK)
			return lb_err_sqlite(db, rc, "switching to WAL");
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			sqlite3_finalize(st);
			return lb_err_sqlite(db, rc, "switching to WAL");
		}
		if (strcasecmp((const char *)sqlite3_column_text(st, 0),
			       "wal") != 0) {
			sqlite3_finalize(st);
			return lb_err_set(LITEBUS_EREADONLY,
					  "switching to WAL: the database "
					  "stayed in another journal mode (is "
					  "its directory writable?)");
		}
		sqlite3_finalize(st);
	} else {
		/* In memory, the journal is rollback-style (memvfs.c): a
		 * page-cache spill in the middle of a transaction would take
		 * EXCLUSIVE and hold every reader off until the job commits,
		 * so a reader's timeout 0 would wait for a commit.  The
		 * database is in memory anyway: keep dirty pages in the cache
		 * until COMMIT, which is then the only time readers wait. */
		rc = outbox_exec(db, "PRAGMA main.cache_spill=OFF",
				 "configuring the in-memory database");
		if (rc != LITEBUS_OK)
			return rc;
	}
	return outbox_exec(db,
			   durability == LITEBUS_DURABILITY_FULL
			       ? "PRAGMA main.synchronous=FULL"
			       : "PRAGMA main.synchronous=NORMAL",
			   "setting durability");
}

static int
outbox_prepare_all(struct lb_outbox *ob, const struct outbox_file *f,
		   int nchannels)
{
	char sql[SQL_MAX];
	int rc;

	rc = outbox_prepare(ob->db, "BEGIN IMMEDIATE", &ob->begin);
	if (rc == LITEBUS_OK)
		rc = outbox_prepare(ob->db, "COMMIT", &ob->commit);
	if (rc == LITEBUS_OK)
		rc = outbox_prepare(ob->db, "ROLLBACK", &ob->rollback);
	if (rc == LITEBUS_OK)
		rc = outbox_prepare(ob->db, "SAVEPOINT litebus_job",
				    &ob->sp_begin);
	if (rc == LITEBUS_OK)
		rc = outbox_prepare(ob->db, "RELEASE litebus_job",
				    &ob->sp_release);
	if (rc == LITEBUS_OK)
		rc = outbox_prepare(ob->db, "ROLLBACK TO litebus_job",
				    &ob->sp_rollback);
	if (rc == LITEBUS_OK)
		rc = outbox_prepare(ob->db, "PRAGMA main.data_version",
				    &ob->data_version);
	/* O4: the names as the file spells them; O5: in main. */
	for (int i = 0; rc == LITEBUS_OK && i < nchannels; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO main.\"litebus_outbox_%s\"(%s) "
			 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			 f->name[i], row_columns);
		rc = outbox_prepare(ob->db, sql, &ob->insert[i]);
		if (rc != LITEBUS_OK)
			break;
		/* Apart, so that lb_outbox_load_last_id can check each
		 * (a max() of the two would hide a bad mark below the
		 * largest id); the name is for its messages. */
		snprintf(sql, sizeof sql,
			 "SELECT (SELECT event_id FROM "
			 "main.\"litebus_outbox_%s\" ORDER BY event_id DESC "
			 "LIMIT 1), (SELECT high_water FROM "
			 "main.litebus_channel WHERE name = '%s'), '%s'",
			 f->name[i], f->name[i], f->name[i]);
		rc = outbox_prepare(ob->db, sql, &ob->next_id[i]);
	}
	return rc;
}

/* Did the file have a -wal beside it before this connection read it?
 * If so a failed open must not checkpoint it on close (that would write
 * the database file); if not, closing removes the one reading made. */
static bool
outbox_wal_existed(sqlite3 *db, const struct lb_dbname *dbn)
{
	const char *wal;

	if (dbn->is_memory)
		return false;
	wal = sqlite3_filename_wal(sqlite3_db_filename(db, "main"));
	if (wal == NULL || wal[0] == '\0')
		return false;
	/* Any answer but "no such file" counts as "there was one": not
	 * checkpointing is the side that leaves the file alone. */
	return access(wal, F_OK) == 0 || errno != ENOENT;
}

int
lb_outbox_open(struct lb_outbox *ob, const struct lb_dbname *dbn,
	       int durability, const struct lb_chan_spec *chans, int nchannels,
	       bool adopt)
{
	struct outbox_file file;
	bool wal_existed = false;
	int rc;

	memset(ob, 0, sizeof *ob);
	memset(&file, 0, sizeof file);
	file.path = dbn->name;
	ob->nchannels = nchannels;
	ob->is_memory = dbn->is_memory;
	rc = sqlite3_open_v2(dbn->name, &ob->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX | dbn->extra_flags,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(ob->db, rc, "opening the database");
		goto fail;
	}
	rc = lb_outbox_harden(ob->db);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(ob->db, rc, "configuring the connection");
		goto fail;
	}
	/* Open-time statements wait for other connections; afterwards the
	 * writer retries BUSY itself (writer.c) and this is reset to 0. */
	rc = sqlite3_busy_timeout(ob->db, 5000);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(ob->db, rc, "configuring the connection");
		goto fail;
	}
	if (sqlite3_db_readonly(ob->db, "main") == 1) {
		rc = lb_err_set(LITEBUS_EREADONLY,
				"opening %s: the file is read-only", dbn->name);
		goto fail;
	}
	/* sqlite3_open_v2 has not read the file yet. */
	wal_existed = outbox_wal_existed(ob->db, dbn);
	/* Installing an authorizer expires prepared statements, so it goes
	 * in before the statements are prepared. */
	rc = sqlite3_set_authorizer(ob->db, outbox_authorize, ob);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(ob->db, rc, "installing the authorizer");
		goto fail;
	}
	/* Returns the previous hook's argument: there was none. */
	(void)sqlite3_commit_hook(ob->db, outbox_commit_hook, ob);
	rc = outbox_create_schema(ob, &file, chans, nchannels, adopt);
	/* O1: WAL only once the file has proven to be ours: switching
	 * journal modes writes to the file. */
	if (rc == LITEBUS_OK)
		rc = outbox_configure(ob->db, dbn, durability);
	if (rc != LITEBUS_OK)
		goto fail;
	rc = sqlite3_busy_timeout(ob->db, 0);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(ob->db, rc, "configuring the connection");
		goto fail;
	}
	/* Prime data_version so that our own schema work does not count. */
	{
		bool changed;
		rc = lb_outbox_changed_elsewhere(ob, &changed);
	}
	if (rc != LITEBUS_OK)
		goto fail;
	return LITEBUS_OK;
fail:
	/* Leave a -wal that was there as it was.  If this fails the close
	 * checkpoints it, as SQLite does for any last connection. */
	if (wal_existed &&
	    sqlite3_db_config(ob->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
			      (int *)NULL) != SQLITE_OK)
		wal_existed = false;
	lb_outbox_close(ob);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Read-only buses                                                     */

/* Append the file's channels that are not yet in chans[0..*n-1] (every
 * outbox table with a valid channel name), ordered by name, until the bus
 * holds LITEBUS_MAX_CHANNELS. */
static int
outbox_readonly_others(sqlite3 *db, struct lb_chan_spec *chans,
		       char names[][LITEBUS_CHANNEL_NAME_MAX + 1], int *n)
{
	sqlite3_stmt *st = NULL;
	int rc, step;

	rc = sqlite3_prepare_v2(
	    db,
	    "SELECT substr(name, 16) FROM main.sqlite_schema "
	    "WHERE type = 'table' AND lower(substr(name, 1, "
	    "15)) = 'litebus_outbox_' ORDER BY lower(name)",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, "reading the database schema");
	rc = LITEBUS_OK;
	while (rc == LITEBUS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 0);

		/* Tables with other names are refused by the comparison
		 * (outbox_check_objects) that follows. */
		if (s == NULL || !lb_catalog_name_ok(s) ||
		    outbox_find_channel(chans, *n, s) >= 0)
			continue;
		/* A bus holds LITEBUS_MAX_CHANNELS channels; files made by
		 * several opens may hold more.  The rest stay unreachable
		 * unless named (litebus.h, "Read-only buses"). */
		if (*n == LITEBUS_MAX_CHANNELS) {
			step = SQLITE_DONE;
			break;
		}
		snprintf(names[*n], sizeof names[*n], "%s", s);
		chans[*n] =
		    (struct lb_chan_spec){.name = names[*n], .types = NULL};
		(*n)++;
	}
	if (rc == LITEBUS_OK && step != SQLITE_DONE)
		rc = lb_err_sqlite(db, step, "reading the database schema");
	sqlite3_finalize(st);
	return rc;
}

/* Inside the read transaction of lb_outbox_inspect_readonly. */
static int
outbox_inspect_readonly_txn(sqlite3 *db, struct outbox_file *f,
			    const char *const *want,
			    char names[][LITEBUS_CHANNEL_NAME_MAX + 1], int *n)
{
	struct lb_chan_spec chans[LITEBUS_MAX_CHANNELS];
	int rc;

	rc = outbox_inspect(db, f);
	if (rc != LITEBUS_OK)
		return rc;
	if (f->application_id != (uint32_t)LITEBUS_APPLICATION_ID) {
		if (f->application_id == 0 && f->has_meta)
			return lb_err_set(LITEBUS_ESCHEMA,
					  "opening %s read-only: the file was "
					  "made by an older litebus and is not "
					  "migrated yet; open it read-write "
					  "once",
					  f->path);
		if (f->application_id == 0)
			return lb_err_set(LITEBUS_EFOREIGN,
					  "opening %s read-only: not a litebus "
					  "database (%s)",
					  f->path,
					  f->nobjects == 0
					      ? "it is empty"
					      : "it has no litebus schema");
		return outbox_check_owner(f, false); /* EFOREIGN */
	}
	rc = outbox_check_encoding(f);
	if (rc == LITEBUS_OK && !f->has_meta)
		rc = lb_err_set(LITEBUS_ESCHEMA,
				"opening %s read-only: marked as litebus's "
				"but without litebus_meta",
				f->path);
	if (rc == LITEBUS_OK)
		rc = outbox_check_version(db, f);
	if (rc == LITEBUS_OK && f->version != LB_SCHEMA_VERSION)
		rc = lb_err_set(LITEBUS_ESCHEMA,
				"opening %s read-only: litebus schema version "
				"%lld is older than this library's %d; open "
				"it read-write once to migrate it",
				f->path, (long long)f->version,
				LB_SCHEMA_VERSION);
	if (rc != LITEBUS_OK)
		return rc;
	/* Pass 1 of outbox_file_channels gives each channel the file's
	 * spelling (O4); a wanted channel without a table gets none. */
	*n = 0;
	for (int i = 0; i < LITEBUS_BUILTIN_CHANNELS; i++, (*n)++) {
		snprintf(names[*n], sizeof names[*n], "%s",
			 lb_catalog_builtin_name(i));
		chans[*n] = (struct lb_chan_spec){
		    .name = names[*n], .types = lb_catalog_builtin_types(i)};
	}
	for (const char *const *w = want; w != NULL && *w != NULL; w++) {
		if (!lb_catalog_name_ok(*w))
			return lb_err_set(LITEBUS_EINVAL,
					  "litebus_open: invalid channel name "
					  "'%.64s'",
					  *w);
		if (outbox_find_channel(chans, *n, *w) >= 0)
			continue; /* built in, or named twice */
		if (*n == LITEBUS_MAX_CHANNELS)
			return lb_err_set(LITEBUS_EINVAL,
					  "litebus_open: more than %d "
					  "channels",
					  LITEBUS_MAX_CHANNELS);
		snprintf(names[*n], sizeof names[*n], "%s", *w);
		chans[*n] =
		    (struct lb_chan_spec){.name = names[*n], .types = NULL};
		(*n)++;
	}
	memset(f->name, 0, sizeof f->name);
	rc = outbox_file_channels(db, f, chans, *n, NULL);
	for (int i = 0; rc == LITEBUS_OK && i < *n; i++)
		if (f->name[i][0] == '\0')
			rc = i < LITEBUS_BUILTIN_CHANNELS
				 ? lb_err_set(LITEBUS_ESCHEMA,
					      "opening %s read-only: built-in "
					      "channel %s has no table",
					      f->path, chans[i].name)
				 : lb_err_set(LITEBUS_ENOCHANNEL,
					      "opening %s read-only: the file "
					      "has no channel '%s'",
					      f->path, chans[i].name);
	if (rc == LITEBUS_OK)
		rc = outbox_readonly_others(db, chans, names, n);
	/* O2 and O3, with every channel of the file open. */
	if (rc == LITEBUS_OK)
		rc = outbox_check_objects(db, f, chans, *n);
	if (rc == LITEBUS_OK)
		rc = outbox_check_channel_rows(db, f);
	for (int i = 0; rc == LITEBUS_OK && i < *n; i++)
		snprintf(names[i], sizeof names[i], "%s", f->name[i]);
	return rc;
}

int
lb_outbox_inspect_readonly(
    const struct lb_dbname *dbn, const char *const *want,
    char names[LITEBUS_MAX_CHANNELS][LITEBUS_CHANNEL_NAME_MAX + 1], int *n)
{
	struct outbox_file file;
	sqlite3 *db = NULL;
	int rc;

	memset(&file, 0, sizeof file);
	file.path = dbn->name;
	*n = 0;
	rc = sqlite3_open_v2(dbn->name, &db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
				 dbn->extra_flags,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(db, rc, "opening the database read-only");
		sqlite3_close_v2(db);
		return rc;
	}
	rc = lb_outbox_harden(db);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db, 5000);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(db, rc, "configuring the connection");
		sqlite3_close_v2(db);
		return rc;
	}
	/* One snapshot for every check. */
	rc = outbox_exec(db, "BEGIN", "beginning a read transaction");
	if (rc == LITEBUS_OK)
		rc = outbox_inspect_readonly_txn(db, &file, want, names, n);
	/* A read transaction: ending it cannot lose anything, and closing
	 * the connection ends it as well. */
	if (!sqlite3_get_autocommit(db))
		(void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close_v2(db);
	if (rc != LITEBUS_OK)
		*n = 0;
	return rc;
}

void
lb_outbox_close(struct lb_outbox *ob)
{
	sqlite3_stmt **fixed[] = {
	    &ob->begin,	     &ob->commit,      &ob->rollback,	 &ob->sp_begin,
	    &ob->sp_release, &ob->sp_rollback, &ob->data_version};

	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		sqlite3_finalize(*fixed[i]);
		*fixed[i] = NULL;
	}
	for (int i = 0; i < ob->nchannels; i++) {
		sqlite3_finalize(ob->insert[i]);
		sqlite3_finalize(ob->next_id[i]);
		sqlite3_finalize(ob->readback[i]);
		ob->insert[i] = ob->next_id[i] = ob->readback[i] = NULL;
		for (int k = 0; k < LB_OWN_CHAN_SQL_COUNT; k++) {
			sqlite3_finalize(ob->own_chan[k][i]);
			ob->own_chan[k][i] = NULL;
		}
	}
	for (int k = 0; k < LB_OWN_SQL_COUNT; k++) {
		sqlite3_finalize(ob->own[k]);
		ob->own[k] = NULL;
	}
	/* close_v2: a user statement left unfinalized by a job must not keep
	 * the connection (and the file lock) alive forever. */
	sqlite3_close_v2(ob->db);
	ob->db = NULL;
}

int
lb_outbox_load_last_id(struct lb_outbox *ob, int i, int64_t *last)
{
	sqlite3_stmt *st = ob->next_id[i];
	int rc = sqlite3_step(st);
	int64_t largest = 0, mark = 0;

	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return lb_err_sqlite(ob->db, rc,
				     "reading the largest event_id");
	}
	/* Values from the file are checked, not trusted (every id handed
	 * out is computed from them, writer.c W4).  The table's largest id
	 * is an INTEGER PRIMARY KEY, an integer or NULL (no rows); one below
	 * 0 (another program's row) lies below every id litebus hands out.
	 * The deletion high-water mark is only ever set by litebus's
	 * trigger to a deleted event_id: anything but a non-negative
	 * integer there (text, a blob, a real, a negative number) cannot be
	 * continued from, and a real or text mark below the largest id is
	 * refused too - nothing says which ids it stood for. */
	if (sqlite3_column_type(st, 0) == SQLITE_INTEGER)
		largest = sqlite3_column_int64(st, 0);
	if (sqlite3_column_type(st, 1) == SQLITE_INTEGER)
		mark = sqlite3_column_int64(st, 1);
	if ((sqlite3_column_type(st, 0) != SQLITE_INTEGER &&
	     sqlite3_column_type(st, 0) != SQLITE_NULL) ||
	    (sqlite3_column_type(st, 1) != SQLITE_INTEGER &&
	     sqlite3_column_type(st, 1) != SQLITE_NULL) ||
	    mark < 0) {
		const char *name = (const char *)sqlite3_column_text(st, 2);

		rc = lb_err_set(LITEBUS_ESCHEMA,
				"reading the largest event_id of channel %s: "
				"its high-water mark in litebus_channel (or "
				"its table) holds a value that is not a "
				"non-negative integer",
				name != NULL ? name : "?");
		sqlite3_reset(st);
		return rc;
	}
	*last = largest > mark ? largest : mark;
	sqlite3_reset(st);
	return LITEBUS_OK;
}

int
lb_outbox_changed_elsewhere(struct lb_outbox *ob, bool *changed)
{
	int rc = sqlite3_step(ob->data_version);
	int64_t v;

	if (rc != SQLITE_ROW) {
		sqlite3_reset(ob->data_version);
		return lb_err_sqlite(ob->db, rc, "reading data_version");
	}
	v = sqlite3_column_int64(ob->data_version, 0);
	sqlite3_reset(ob->data_version);
	*changed = v != ob->last_data_version;
	ob->last_data_version = v;
	return LITEBUS_OK;
}

/* These return the raw SQLite code: the writer decides between retrying
 * (BUSY) and failing, and records the error itself. */
int
lb_outbox_begin(struct lb_outbox *ob)
{
	return outbox_step(ob->begin);
}

int
lb_outbox_commit(struct lb_outbox *ob)
{
	return outbox_step(ob->commit);
}

int
lb_outbox_rollback(struct lb_outbox *ob)
{
	/* A failed COMMIT or a fatal error may already have ended the
	 * transaction; ROLLBACK then has nothing to do. */
	if (sqlite3_get_autocommit(ob->db))
		return SQLITE_OK;
	return outbox_step(ob->rollback);
}

int
lb_outbox_savepoint(struct lb_outbox *ob)
{
	return outbox_step(ob->sp_begin);
}

int
lb_outbox_release(struct lb_outbox *ob)
{
	return outbox_step(ob->sp_release);
}

int
lb_outbox_rollback_to(struct lb_outbox *ob)
{
	int rc = outbox_step(ob->sp_rollback);

	/* ROLLBACK TO keeps the savepoint open; release it too. */
	if (rc == SQLITE_OK)
		rc = outbox_step(ob->sp_release);
	return rc;
}

/* Most bytes SQLite's record adds to the fields of an outbox row: the
 * header (its size, and nine serial types of up to 5 bytes) and three
 * 8-byte integers (event_id is the rowid, not in the record). */
#define OUTBOX_RECORD_OVERHEAD (2 + 9 * 5 + 3 * 8)

/* ETOOBIG for one field: the message names it, its size and the limit
 * (the job may have lowered SQLITE_LIMIT_LENGTH: header, "What a job may
 * do"). */
static int
outbox_too_big(const char *field, uint64_t len, int limit)
{
	return lb_err_set(LITEBUS_ETOOBIG,
			  "litebus_emit: the %s is %llu bytes, over the "
			  "connection's length limit of %d bytes "
			  "(SQLITE_LIMIT_LENGTH)",
			  field, (unsigned long long)len, limit);
}

/* A failed sqlite3_bind_*: the value was not bound, so the row must not
 * be inserted (SQLite would store NULL in its place). */
static int
outbox_bind_failed(struct lb_outbox *ob, int rc, const char *field,
		   uint64_t len)
{
	if ((rc & 0xff) == SQLITE_TOOBIG)
		return outbox_too_big(
		    field, len, sqlite3_limit(ob->db, SQLITE_LIMIT_LENGTH, -1));
	return lb_err_sqlite(ob->db, rc, "litebus_emit: binding a value");
}

/* Bind a blob or NULL. */
static int
outbox_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t len)
{
	/* SQLITE_STATIC: rec is borrowed for the duration of the call, and
	 * the statement is reset and cleared before lb_outbox_append
	 * returns. */
	if (p == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_blob64(st, i, p, len, SQLITE_STATIC);
}

static int
outbox_bind_text(sqlite3_stmt *st, int i, const char *p)
{
	if (p == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text64(st, i, p, strlen(p), SQLITE_STATIC,
				   SQLITE_UTF8);
}

int
lb_outbox_append(struct lb_outbox *ob, int channel, int64_t event_id,
		 const litebus_record *rec, int64_t occurred_at_ms,
		 int64_t committed_at_ms)
{
	sqlite3_stmt *st = ob->insert[channel];
	int limit = sqlite3_limit(ob->db, SQLITE_LIMIT_LENGTH, -1);
	/* Named as the caller knows them: litebus_record's fields. */
	const struct {
		const char *field;
		uint64_t len;
	} sizes[] = {
	    {"subject", rec->subject_len},
	    {"payload", rec->payload_len},
	    {"event_type", strlen(rec->event_type)},
	    {"namespace (ns)", rec->ns != NULL ? strlen(rec->ns) : 0},
	    {"instance_tag",
	     rec->instance_tag != NULL ? strlen(rec->instance_tag) : 0},
	};
	int rc, step;

	/* Refuse an oversized field before anything reads it, with its name:
	 * SQLite's own SQLITE_TOOBIG would not say which. */
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		if (sizes[i].len > (uint64_t)limit)
			return outbox_too_big(sizes[i].field, sizes[i].len,
					      limit);
	/* Every bind is checked: an unbound parameter is NULL, and a row
	 * with a NULL where the caller gave data must never be stored. */
	rc = sqlite3_bind_int64(st, 1, event_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, rec->partition_key);
	if (rc == SQLITE_OK &&
	    (rc = outbox_bind_blob(st, 3, rec->subject, rec->subject_len)) !=
		SQLITE_OK) {
		rc = outbox_bind_failed(ob, rc, sizes[0].field, sizes[0].len);
		goto out;
	}
	if (rc == SQLITE_OK &&
	    (rc = outbox_bind_text(st, 4, rec->event_type)) != SQLITE_OK) {
		rc = outbox_bind_failed(ob, rc, sizes[2].field, sizes[2].len);
		goto out;
	}
	if (rc == SQLITE_OK &&
	    (rc = outbox_bind_text(st, 5, rec->ns)) != SQLITE_OK) {
		rc = outbox_bind_failed(ob, rc, sizes[3].field, sizes[3].len);
		goto out;
	}
	if (rc == SQLITE_OK &&
	    (rc = outbox_bind_text(st, 6, rec->instance_tag)) != SQLITE_OK) {
		rc = outbox_bind_failed(ob, rc, sizes[4].field, sizes[4].len);
		goto out;
	}
	if (rc == SQLITE_OK &&
	    (rc = outbox_bind_blob(st, 7, rec->payload, rec->payload_len)) !=
		SQLITE_OK) {
		rc = outbox_bind_failed(ob, rc, sizes[1].field, sizes[1].len);
		goto out;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 8, occurred_at_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 9, committed_at_ms);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(ob->db, rc, "litebus_emit: binding a value");
		goto out;
	}
	ob->in_emit = true;
	step = sqlite3_step(st);
	ob->in_emit = false;
	if (step != SQLITE_DONE) {
		uint64_t fields = 0;

		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
			fields += sizes[i].len;
		/* SQLITE_TOOBIG is the record when it can be: the fields
		 * plus at most OUTBOX_RECORD_OVERHEAD bytes.  Otherwise it
		 * is something else - e.g. the job lowered
		 * SQLITE_LIMIT_SQL_LENGTH and changed the schema, so our
		 * INSERT could not be prepared again (SQLite gives the same
		 * text for both) - and the row must not be blamed. */
		if ((step & 0xff) == SQLITE_TOOBIG &&
		    fields + OUTBOX_RECORD_OVERHEAD > (uint64_t)limit)
			rc = lb_err_set(
			    LITEBUS_ETOOBIG,
			    "litebus_emit: the row (subject %zu, "
			    "payload %zu bytes and the strings) is "
			    "larger than the connection's length "
			    "limit of %d bytes (SQLITE_LIMIT_LENGTH)",
			    rec->subject_len, rec->payload_len, limit);
		else if ((step & 0xff) == SQLITE_TOOBIG)
			rc = lb_err_set(LITEBUS_ETOOBIG,
					"litebus_emit: SQLite refused the "
					"INSERT (%s) although the row fits the "
					"length limit of %d bytes: another "
					"limit the job set with sqlite3_limit "
					"(SQLITE_LIMIT_SQL_LENGTH?) may keep "
					"it from being prepared again",
					sqlite3_errmsg(ob->db), limit);
		else
			rc = lb_err_sqlite(ob->db, step,
					   "appending to the outbox");
		goto out;
	}
	/* A BEFORE INSERT trigger that RAISE(IGNORE)s, or an INSTEAD OF
	 * trigger, reports DONE without storing the row.  (Such objects are
	 * refused when the file is opened, but another connection may add
	 * one later.) */
	if (sqlite3_changes64(ob->db) != 1) {
		rc = lb_err_set(LITEBUS_ESCHEMA,
				"litebus_emit: the row was not stored in "
				"the outbox table (a trigger added by another "
				"connection ignored it)");
		goto out;
	}
	rc = LITEBUS_OK;
out:
	/* Neither can fail on a statement that is not running; reset
	 * repeats the step's error code, already handled above. */
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	return rc;
}

int
lb_outbox_readback(struct lb_outbox *ob, int channel, const char *name,
		   int64_t from_id,
		   int (*fn)(void *, const struct lb_rec *,
			     const struct lb_outbox_row *),
		   void *arg)
{
	sqlite3_stmt *st = ob->readback[channel];
	int rc;

	if (st == NULL) {
		char sql[SQL_MAX];

		assert(lb_catalog_name_ok(name));
		/* No SQL function anywhere (W7 in writer.c): a job may
		 * register functions named like SQLite's own (length,
		 * substr, max, ...), and they would run here, outside the
		 * job, and change what is published.  Every column, in the
		 * order lb_outbox_range_row decodes: the row cache keeps the
		 * whole row (rowcache.c). */
		snprintf(sql, sizeof sql,
			 "SELECT %s FROM main.\"litebus_outbox_%s\" WHERE "
			 "event_id >= ?1 ORDER BY event_id",
			 row_columns, name);
		rc = outbox_prepare(ob->db, sql, &ob->readback[channel]);
		if (rc != LITEBUS_OK)
			return rc;
		st = ob->readback[channel];
	}
	rc = sqlite3_bind_int64(st, 1, from_id);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(ob->db, rc,
				     "reading back the batch's rows");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct lb_outbox_row row;
		struct lb_rec rec;
		int frc;

		if (sqlite3_column_type(st, COL_EVENT_ID) != SQLITE_INTEGER) {
			sqlite3_reset(st);
			return lb_err_set(
			    LITEBUS_ESCHEMA,
			    "reading back the batch's rows: a row "
			    "of litebus_outbox_%s is malformed",
			    name);
		}
		/* ENOMEM if SQLite could not convert a column: never a
		 * NULL in place of the data. */
		frc = lb_outbox_range_row(ob->db, st, &row);
		if (frc != LITEBUS_OK) {
			sqlite3_reset(st);
			return frc;
		}
		memset(&rec, 0, sizeof rec);
		rec.event_id = row.event_id;
		rec.partition_key = row.partition_key;
		rec.committed_at_ms = row.committed_at_ms;
		rec.subject_len = (uint32_t)row.subject_len;
		if (row.subject_len > 0)
			memcpy(rec.subject_prefix, row.subject,
			       row.subject_len < sizeof rec.subject_prefix
				   ? row.subject_len
				   : sizeof rec.subject_prefix);
		/* NULL text is "none" (hash 0). */
		rec.ns_hash = lb_rec_hash(row.ns);
		rec.tag_hash = lb_rec_hash(row.tag);
		frc = fn(arg, &rec, &row);
		if (frc != LITEBUS_OK) {
			sqlite3_reset(st);
			return frc;
		}
	}
	if (rc != SQLITE_DONE) {
		rc = lb_err_sqlite(ob->db, rc, "reading back the batch's rows");
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	return LITEBUS_OK;
}

/* Every boolean sqlite3_db_config() flag: a job that changes one fails
 * with EMISUSE and the flag is put back (header, "What a job may do").
 * Several decide guarantees (DEFENSIVE, TRUSTED_SCHEMA, ENABLE_TRIGGER:
 * the high-water triggers, ENABLE_FKEY: a deferred violation would fail
 * the COMMIT of every batch mate, WRITABLE_SCHEMA, RESET_DATABASE); the
 * others would silently change what later jobs' SQL means. */
static const struct {
	int op;
	const char *what;
} config_flags[LB_NCONFIG] = {
    {SQLITE_DBCONFIG_ENABLE_FKEY, "SQLITE_DBCONFIG_ENABLE_FKEY"},
    {SQLITE_DBCONFIG_ENABLE_TRIGGER, "SQLITE_DBCONFIG_ENABLE_TRIGGER"},
    {SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER,
     "SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER"},
    {SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
     "SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION"},
    {SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE"},
    {SQLITE_DBCONFIG_ENABLE_QPSG, "SQLITE_DBCONFIG_ENABLE_QPSG"},
    {SQLITE_DBCONFIG_TRIGGER_EQP, "SQLITE_DBCONFIG_TRIGGER_EQP"},
    {SQLITE_DBCONFIG_RESET_DATABASE, "SQLITE_DBCONFIG_RESET_DATABASE"},
    {SQLITE_DBCONFIG_DEFENSIVE, "SQLITE_DBCONFIG_DEFENSIVE"},
    {SQLITE_DBCONFIG_WRITABLE_SCHEMA, "SQLITE_DBCONFIG_WRITABLE_SCHEMA"},
    {SQLITE_DBCONFIG_LEGACY_ALTER_TABLE, "SQLITE_DBCONFIG_LEGACY_ALTER_TABLE"},
    {SQLITE_DBCONFIG_DQS_DML, "SQLITE_DBCONFIG_DQS_DML"},
    {SQLITE_DBCONFIG_DQS_DDL, "SQLITE_DBCONFIG_DQS_DDL"},
    {SQLITE_DBCONFIG_ENABLE_VIEW, "SQLITE_DBCONFIG_ENABLE_VIEW"},
    {SQLITE_DBCONFIG_LEGACY_FILE_FORMAT, "SQLITE_DBCONFIG_LEGACY_FILE_FORMAT"},
    {SQLITE_DBCONFIG_TRUSTED_SCHEMA, "SQLITE_DBCONFIG_TRUSTED_SCHEMA"},
};

/* Rollback hook of the writer connection: SQLite rolled back the whole
 * transaction (or the job's statement did), which a job may follow with
 * a SAVEPOINT that opens a new one - so "autocommit after the job" alone
 * would miss the loss.  ROLLBACK TO does not call it. */
static void
outbox_rollback_hook(void *arg)
{
	struct lb_outbox *ob = arg;

	if (ob->in_job)
		ob->txn_lost = true;
}

/* How many objects of main and temp are in litebus's namespace (named
 * litebus_*, or on a litebus_* table).  Compared in C: the query must
 * call no SQL function, which a job may have replaced. */
static int
outbox_count_ours(struct lb_outbox *ob, int64_t *count)
{
	static const char *const sql[] = {
	    "SELECT name, tbl_name FROM main.sqlite_schema",
	    "SELECT name, tbl_name FROM temp.sqlite_schema"};
	int64_t n = 0;

	for (size_t i = 0; i < 2; i++) {
		sqlite3_stmt *st;
		int rc = sqlite3_prepare_v2(ob->db, sql[i], -1, &st, NULL);

		if (rc != SQLITE_OK)
			return lb_err_sqlite(ob->db, rc,
					     "reading the schema after a job");
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			if (outbox_is_ours(
				(const char *)sqlite3_column_text(st, 0)) ||
			    outbox_is_ours(
				(const char *)sqlite3_column_text(st, 1)))
				n++;
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return lb_err_sqlite(ob->db, rc,
					     "reading the schema after a job");
	}
	*count = n;
	return LITEBUS_OK;
}

int
lb_outbox_save_state(struct lb_outbox *ob)
{
	int rc;

	for (int i = 0; i < LB_NLIMITS; i++)
		ob->limits[i] = sqlite3_limit(ob->db, i, -1);
	for (int i = 0; i < LB_NCONFIG; i++) {
		rc = sqlite3_db_config(ob->db, config_flags[i].op, -1,
				       &ob->config[i]);
		if (rc != SQLITE_OK)
			return lb_err_sqlite(ob->db, rc,
					     "reading the connection's "
					     "configuration");
	}
	/* Returns the previous hook's argument: there was none. */
	(void)sqlite3_rollback_hook(ob->db, outbox_rollback_hook, ob);
	return outbox_count_ours(ob, &ob->ours);
}

void
lb_outbox_job_begin(struct lb_outbox *ob)
{
	ob->txn_lost = false;
	ob->job_ddl = false;
	ob->in_job = true;
}

bool
lb_outbox_job_lost(const struct lb_outbox *ob)
{
	return ob->txn_lost || sqlite3_get_autocommit(ob->db);
}

int
lb_outbox_after_job(struct lb_outbox *ob)
{
	sqlite3 *db = ob->db;
	int status = LITEBUS_OK;
	void *prev;

	/* Statements the job left running would make our RELEASE fail
	 * ("SQL statements in progress") and fail the whole batch.  A write
	 * statement has done all its work by its first step (RETURNING
	 * included), so resetting keeps its effect.  Reset returns the
	 * statement's last error, which is the job's business. */
	for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st != NULL;
	     st = sqlite3_next_stmt(db, st))
		if (sqlite3_stmt_busy(st))
			(void)sqlite3_reset(st);
	/* Put back what the C API lets a job change and what only shapes
	 * later jobs: limits, the busy handler, hooks litebus does not use. */
	for (int i = 0; i < LB_NLIMITS; i++)
		if (sqlite3_limit(db, i, -1) != ob->limits[i])
			(void)sqlite3_limit(db, i, ob->limits[i]);
	(void)sqlite3_busy_handler(db, NULL, NULL);
	(void)sqlite3_update_hook(db, NULL, NULL);
	sqlite3_progress_handler(db, 0, NULL, NULL);
	(void)sqlite3_trace_v2(db, 0, NULL, NULL);
	(void)sqlite3_extended_result_codes(db, 1);
	/* What may already have broken a guarantee inside the job's own
	 * savepoint (a COMMIT that the hook would have turned into a
	 * rollback, a deletion the high-water trigger did not see, ...):
	 * put it back, and fail the job so that it rolls back. */
	prev = sqlite3_commit_hook(db, outbox_commit_hook, ob);
	if (prev != ob)
		status = lb_err_set(LITEBUS_EMISUSE,
				    "the job replaced litebus's commit hook "
				    "(sqlite3_commit_hook); it was put back "
				    "and the job rolled back");
	prev = sqlite3_rollback_hook(db, outbox_rollback_hook, ob);
	if (prev != ob)
		status = lb_err_set(LITEBUS_EMISUSE,
				    "the job replaced litebus's rollback hook "
				    "(sqlite3_rollback_hook); it was put back "
				    "and the job rolled back");
	for (int i = 0; i < LB_NCONFIG; i++) {
		int v = -1;

		if (sqlite3_db_config(db, config_flags[i].op, -1, &v) !=
			SQLITE_OK ||
		    v != ob->config[i]) {
			(void)sqlite3_db_config(db, config_flags[i].op,
						ob->config[i], (int *)NULL);
			status = lb_err_set(LITEBUS_EMISUSE,
					    "the job changed %s; it was put "
					    "back and the job rolled back",
					    config_flags[i].what);
		}
	}
	/* The authorizer cannot see the new name of ALTER TABLE ... RENAME
	 * TO: after a job that changed the schema, count what is in
	 * litebus's namespace; the job's savepoint undoes its DDL. */
	if (ob->job_ddl) {
		int64_t n;
		int rc = outbox_count_ours(ob, &n);

		if (rc != LITEBUS_OK)
			status = rc;
		else if (n != ob->ours)
			status = lb_err_set(LITEBUS_EMISUSE,
					    "the job moved an object into "
					    "litebus's namespace (litebus_*, "
					    "for example with ALTER TABLE ... "
					    "RENAME TO); the job rolled back");
	}
	return status;
}

int
lb_outbox_open_reader(const struct lb_dbname *dbn, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc;

	*out = NULL;
	/* No busy handler (SQLite's default): readers retry SQLITE_BUSY and
	 * SQLITE_LOCKED themselves, with their own backoff and deadline
	 * (reader.c, D6).  An in-memory database is a memdb store shared by
	 * name, locked like a rollback-journal file (bus.c, memvfs.c): like
	 * a WAL reader, this connection sees committed transactions only,
	 * so it needs no read_uncommitted. */
	rc = sqlite3_open_v2(dbn->name, &db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
				 dbn->extra_flags,
			     NULL);
	if (rc == SQLITE_OK)
		rc = lb_outbox_harden(db);
	if (rc != SQLITE_OK) {
		rc = lb_err_sqlite(db, rc, "opening a reader connection");
		sqlite3_close_v2(db);
		return rc;
	}
	*out = db;
	return LITEBUS_OK;
}

int
lb_outbox_prepare_range(sqlite3 *db, const char *channel_name,
			const struct lb_range *shape, sqlite3_stmt **out)
{
	char sql[SQL_MAX];

	static_assert(PARAM_AFTER == 1 && PARAM_UPTO == 2 && PARAM_LIMIT == 3 &&
			  PARAM_PARTITION_KEY == 4 && PARAM_NAMESPACE == 5 &&
			  PARAM_INSTANCE_TAG == 6,
		      "the parameter numbers below");
	/* main.: a reader's connection has no other schema, but the name
	 * should not depend on that. */
	snprintf(sql, sizeof sql,
		 "SELECT %s FROM main.\"litebus_outbox_%s\" "
		 "WHERE event_id > ?1 AND event_id <= ?2%s%s%s "
		 "ORDER BY event_id LIMIT ?3",
		 row_columns, channel_name,
		 shape->by_partition ? " AND partition_key = ?4" : "",
		 shape->ns != NULL ? " AND namespace = ?5" : "",
		 shape->tag != NULL ? " AND instance_tag = ?6" : "");
	return outbox_prepare(db, sql, out);
}

int
lb_outbox_bind_range(sqlite3 *db, sqlite3_stmt *st, const struct lb_range *q)
{
	int rc;

	rc = sqlite3_bind_int64(st, PARAM_AFTER, q->after);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, PARAM_UPTO, q->upto);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, PARAM_LIMIT, q->limit);
	if (rc == SQLITE_OK && q->by_partition)
		rc = sqlite3_bind_int64(st, PARAM_PARTITION_KEY,
					q->partition_key);
	if (rc == SQLITE_OK && q->ns != NULL)
		rc = sqlite3_bind_text(st, PARAM_NAMESPACE, q->ns, -1,
				       SQLITE_STATIC);
	if (rc == SQLITE_OK && q->tag != NULL)
		rc = sqlite3_bind_text(st, PARAM_INSTANCE_TAG, q->tag, -1,
				       SQLITE_STATIC);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc,
				     "litebus_reader_next: binding the range");
	return LITEBUS_OK;
}

/* Column i of the current row as bytes (a BLOB, or TEXT when `text`).
 * *p is NULL for SQL NULL; an empty value may also come back as NULL
 * (SQLite's rule for zero-length blobs), with *len 0.  A NULL pointer for
 * any other value means SQLite could not allocate the conversion: ENOMEM,
 * never a NULL delivered in place of the data. */
static int
outbox_column(sqlite3 *db, sqlite3_stmt *st, int i, bool text, const void **p,
	      size_t *len)
{
	int type = sqlite3_column_type(st, i);

	/* Per SQLite's rules, fetch the pointer first, then the length. */
	*p = text ? (const void *)sqlite3_column_text(st, i)
		  : sqlite3_column_blob(st, i);
	*len = (size_t)sqlite3_column_bytes(st, i);
	if (*p != NULL || type == SQLITE_NULL) {
		if (*p == NULL)
			*len = 0;
		return LITEBUS_OK;
	}
	if (*len != 0 || sqlite3_errcode(db) == SQLITE_NOMEM)
		return lb_err_sqlite(db, SQLITE_NOMEM,
				     "reading a column of the outbox");
	return LITEBUS_OK; /* an empty value */
}

int
lb_outbox_range_row(sqlite3 *db, sqlite3_stmt *st, struct lb_outbox_row *row)
{
	const void *p;
	int rc;

	/* Integer columns: no conversion of an integer (or of text) to an
	 * integer allocates, so these cannot fail. */
	row->event_id = sqlite3_column_int64(st, COL_EVENT_ID);
	row->partition_key = sqlite3_column_int64(st, COL_PARTITION_KEY);
	row->occurred_at_ms = sqlite3_column_int64(st, COL_OCCURRED_AT_MS);
	row->committed_at_ms = sqlite3_column_int64(st, COL_COMMITTED_AT_MS);

	rc = outbox_column(db, st, COL_SUBJECT, false, &row->subject,
			   &row->subject_len);
	if (rc == LITEBUS_OK)
		rc = outbox_column(db, st, COL_EVENT_TYPE, true, &p,
				   &row->event_type_len);
	if (rc == LITEBUS_OK) /* NOT NULL in the schema; "" if not */
		row->event_type = p != NULL ? p : "";
	if (rc == LITEBUS_OK)
		rc = outbox_column(db, st, COL_NAMESPACE, true, &p,
				   &row->ns_len);
	if (rc == LITEBUS_OK)
		row->ns = p;
	if (rc == LITEBUS_OK)
		rc = outbox_column(db, st, COL_INSTANCE_TAG, true, &p,
				   &row->tag_len);
	if (rc == LITEBUS_OK)
		row->tag = p;
	if (rc == LITEBUS_OK)
		rc = outbox_column(db, st, COL_PAYLOAD, false, &row->payload,
				   &row->payload_len);
	return rc;
}

/* One short read of a single integer: `sql` with `text` bound to ?1
 * (unless NULL); *out is the first column of the first row, or 0 if there
 * is none.  Finalizing ends the read transaction at once. */
static int
outbox_read_int(sqlite3 *db, const char *sql, const char *text, int64_t *out,
		const char *what)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = 0;
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && text != NULL)
		rc = sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, what);
	return LITEBUS_OK;
}

/* The same expression as the writer's next_id (above): the largest id
 * the table holds, or its deletion high-water mark if higher.  The mark's
 * row is spelled as the file spells the channel (O4), which may differ
 * from channel_name in case. */
static void
outbox_head_sql(char *sql, size_t len, const char *channel_name)
{
	snprintf(sql, len,
		 "SELECT max(coalesce((SELECT max(event_id) FROM "
		 "main.\"litebus_outbox_%s\"), 0), coalesce((SELECT "
		 "high_water FROM main.litebus_channel WHERE name = '%s' "
		 "COLLATE NOCASE), 0))",
		 channel_name, channel_name);
}

int
lb_outbox_read_head(sqlite3 *db, const char *channel_name, int64_t *head)
{
	char sql[SQL_MAX];

	outbox_head_sql(sql, sizeof sql, channel_name);
	return outbox_read_int(db, sql, NULL, head,
			       "reading the newest event_id");
}

int
lb_outbox_prepare_head(sqlite3 *db, const char *channel_name,
		       sqlite3_stmt **out)
{
	char sql[SQL_MAX];

	outbox_head_sql(sql, sizeof sql, channel_name);
	return outbox_prepare(db, sql, out);
}

int
lb_outbox_prepare_data_version(sqlite3 *db, sqlite3_stmt **out)
{
	return outbox_prepare(db, "PRAGMA main.data_version", out);
}

int
lb_outbox_step_int(sqlite3 *db, sqlite3_stmt *st, int64_t *out,
		   const char *what)
{
	int rc = sqlite3_step(st);

	*out = 0;
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	/* The step's error, if any, is the one to report; reset repeats
	 * it. */
	(void)sqlite3_reset(st);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, what);
	return LITEBUS_OK;
}

int
lb_outbox_read_schema_version(sqlite3 *db, int64_t *version)
{
	return outbox_read_int(db,
			       "SELECT value FROM main.litebus_meta "
			       "WHERE key = 'schema_version'",
			       NULL, version, "reading litebus_meta");
}

int
lb_outbox_read_begin(sqlite3 *db)
{
	return outbox_exec(db, "BEGIN", "beginning a read transaction");
}

int
lb_outbox_read_end(sqlite3 *db)
{
	return outbox_exec(db, "COMMIT", "ending a read transaction");
}

/* ------------------------------------------------------------------ */
/* litebus's own statements (schema version 2)                          */

/* Writer statements: no SQL function anywhere (writer.c, W7). */
static const char *const own_sql[LB_OWN_SQL_COUNT] = {
    [LB_SQL_CONSUMER_GET] =
	"SELECT position, holder_pid, holder_start FROM main.litebus_consumer "
	"WHERE channel = ?1 AND name = ?2",
    [LB_SQL_CONSUMER_INSERT] =
	"INSERT INTO main.litebus_consumer(channel, name, position, "
	"acked_at_ms, holder_pid, holder_start) "
	"VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [LB_SQL_CONSUMER_HOLD] =
	"UPDATE main.litebus_consumer SET holder_pid = ?3, holder_start = ?4 "
	"WHERE channel = ?1 AND name = ?2",
    [LB_SQL_CONSUMER_RELEASE] =
	"UPDATE main.litebus_consumer SET holder_pid = 0, holder_start = 0 "
	"WHERE channel = ?1 AND name = ?2 AND holder_pid = ?3 AND "
	"holder_start = ?4",
    [LB_SQL_CONSUMER_ACK] =
	"UPDATE main.litebus_consumer SET position = ?3, acked_at_ms = ?4 "
	"WHERE channel = ?1 AND name = ?2 AND position < ?3",
    [LB_SQL_CONSUMER_DELETE] =
	"DELETE FROM main.litebus_consumer WHERE channel = ?1 AND name = ?2",
    [LB_SQL_CONSUMER_FLOOR] =
	"SELECT position FROM main.litebus_consumer WHERE channel = ?1 "
	"ORDER BY position LIMIT 1",
    [LB_SQL_PRUNED_GET] =
	"SELECT pruned_through FROM main.litebus_pruned WHERE name = ?1",
    [LB_SQL_PRUNED_SET] =
	"INSERT INTO main.litebus_pruned(name, pruned_through) "
	"VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET "
	"pruned_through = excluded.pruned_through "
	"WHERE excluded.pruned_through > pruned_through",
};

/* Prepare with in_own set: the authorizer lets litebus's own statements
 * write its state tables even while a job runs (a statement SQLite
 * re-prepares after the job's DDL is authorized again then). */
static int
outbox_own_prepare(struct lb_outbox *ob, const char *sql, sqlite3_stmt **st)
{
	bool was = ob->in_own;
	int rc;

	ob->in_own = true;
	rc = outbox_prepare(ob->db, sql, st);
	ob->in_own = was;
	return rc;
}

int
lb_outbox_own(struct lb_outbox *ob, enum lb_own_sql which, sqlite3_stmt **st)
{
	int rc;

	assert(which >= 0 && which < LB_OWN_SQL_COUNT);
	if (ob->own[which] == NULL) {
		rc = outbox_own_prepare(ob, own_sql[which], &ob->own[which]);
		if (rc != LITEBUS_OK)
			return rc;
	}
	*st = ob->own[which];
	return LITEBUS_OK;
}

int
lb_outbox_own_chan(struct lb_outbox *ob, enum lb_own_chan_sql which,
		   int channel, const char *name, sqlite3_stmt **st)
{
	sqlite3_stmt **slot;
	char sql[SQL_MAX];
	int rc;

	assert(which >= 0 && which < LB_OWN_CHAN_SQL_COUNT);
	assert(channel >= 0 && channel < ob->nchannels);
	slot = &ob->own_chan[which][channel];
	if (*slot == NULL) {
		assert(lb_catalog_name_ok(name));
		if (which == LB_SQL_PRUNE_SCAN)
			snprintf(sql, sizeof sql,
				 "SELECT event_id, committed_at_ms FROM "
				 "main.\"litebus_outbox_%s\" ORDER BY event_id "
				 "LIMIT ?1",
				 name);
		else
			snprintf(sql, sizeof sql,
				 "DELETE FROM main.\"litebus_outbox_%s\" "
				 "WHERE event_id <= ?1",
				 name);
		rc = outbox_own_prepare(ob, sql, slot);
		if (rc != LITEBUS_OK)
			return rc;
	}
	*st = *slot;
	return LITEBUS_OK;
}

int
lb_outbox_own_step(struct lb_outbox *ob, sqlite3_stmt *st)
{
	bool was = ob->in_own;
	int src;

	ob->in_own = true;
	src = sqlite3_step(st);
	ob->in_own = was;
	return src;
}

void
lb_outbox_state_key(char out[LITEBUS_CHANNEL_NAME_MAX + 1], const char *name)
{
	size_t i = 0;

	for (; name[i] != '\0' && i < LITEBUS_CHANNEL_NAME_MAX; i++) {
		char c = name[i];

		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	out[i] = '\0';
}

int
lb_outbox_read_pruned(sqlite3 *db, const char *channel_name, int64_t *through)
{
	char key[LITEBUS_CHANNEL_NAME_MAX + 1];

	lb_outbox_state_key(key, channel_name);
	return outbox_read_int(db, own_sql[LB_SQL_PRUNED_GET], key, through,
			       "reading the pruned prefix");
}

int
lb_outbox_read_oldest(sqlite3 *db, const char *channel_name, int64_t *oldest)
{
	char sql[SQL_MAX];

	snprintf(sql, sizeof sql,
		 "SELECT event_id FROM main.\"litebus_outbox_%s\" "
		 "ORDER BY event_id LIMIT 1",
		 channel_name);
	return outbox_read_int(db, sql, NULL, oldest,
			       "reading the oldest event_id");
}

int
lb_outbox_prepare_consumers(sqlite3 *db, sqlite3_stmt **out)
{
	return outbox_prepare(
	    db,
	    "SELECT channel, name, position, acked_at_ms, holder_pid, "
	    "holder_start FROM main.litebus_consumer ORDER BY channel, name",
	    out);
}
