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
 * Channel names are validated (lb_channel_name_ok: [A-Za-z0-9_]) before
 * they are ever placed in SQL, and are quoted as identifiers there.
 *
 * Threads: lb_outbox_open/close and the writer statements run on the
 * thread that owns the writer connection (litebus_open's caller, then the
 * writer thread).  Reader connections belong to their reader.
 */
#include "outbox.h"

#include "channel.h"
#include "errors.h"
#include "ring.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SQL_MAX 1024

static const char row_columns[] =
    "event_id, partition_key, subject, event_type, namespace, instance_tag, "
    "payload, occurred_at_ms, committed_at_ms";

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
	"table_info",	     "table_xinfo",	   "table_list",
	"index_info",	     "index_xinfo",	   "index_list",
	"foreign_key_list", "foreign_key_check", "integrity_check",
	"quick_check",	     "user_version",	   NULL};
/* PRAGMAs without an argument that act rather than read. */
static const char *const pragma_action_no_arg[] = {"wal_checkpoint",
						    "optimize", NULL};

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
	const struct lb_outbox *ob = arg;

	(void)dbname;
	if (!ob->in_job)
		return SQLITE_OK;
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
		/* Only litebus_emit()'s own INSERT, not a trigger it fires. */
		if (!outbox_is_ours(a1))
			return SQLITE_OK;
		return ob->in_emit && trigger == NULL &&
			       strncasecmp(a1, "litebus_outbox_", 15) == 0
			   ? SQLITE_OK
			   : SQLITE_DENY;
	case SQLITE_UPDATE:
		if (!outbox_is_ours(a1))
			return SQLITE_OK;
		/* The high-water triggers (litebus_outbox_<c>_hw, checked to
		 * be litebus's own when the file was opened) raise the mark
		 * in litebus_channel; nothing else updates litebus's tables. */
		return outbox_is_ours(trigger) &&
			       strcasecmp(a1, "litebus_channel") == 0
			   ? SQLITE_OK
			   : SQLITE_DENY;
	case SQLITE_DELETE:
		if (!outbox_is_ours(a1))
			return SQLITE_OK;
		/* Pruning outbox rows is allowed on file databases.  Readers
		 * of an in-memory database read uncommitted pages (outbox.c,
		 * lb_outbox_open_reader): they would see a DELETE that later
		 * rolls back and skip rows that then come back. */
		return strncasecmp(a1, "litebus_outbox_", 15) == 0 &&
			       !ob->is_memory
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

/* The schema version stored in the file: 0 if litebus never wrote it. */
static int
outbox_schema_version(sqlite3 *db, int64_t *version)
{
	sqlite3_stmt *st = NULL;
	int rc;
	bool has_meta;

	*version = 0;
	/* Reading sqlite_schema is the first access to the file: a file that
	 * is not a database fails here, before anything is written. */
	rc = sqlite3_prepare_v2(db,
				"SELECT count(*) FROM sqlite_schema WHERE "
				"type = 'table' AND name = 'litebus_meta'",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, "reading the database schema");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return lb_err_sqlite(db, rc, "reading the database schema");
	}
	has_meta = sqlite3_column_int64(st, 0) > 0;
	sqlite3_finalize(st);
	if (!has_meta)
		return LITEBUS_OK;
	rc = sqlite3_prepare_v2(db,
				"SELECT value FROM litebus_meta WHERE key = "
				"'schema_version'",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, "reading litebus_meta");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return lb_err_sqlite(db, rc, "reading litebus_meta");
	}
	sqlite3_finalize(st);
	return LITEBUS_OK;
}

static void
outbox_type_check(char *buf, size_t len, int channel_id)
{
	const char *const *types = lb_channel_builtin_types(channel_id);
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

static int
outbox_create_channel(sqlite3 *db, const struct lb_channel *ch)
{
	char sql[SQL_MAX * 2], check[SQL_MAX / 2];
	int rc;

	assert(lb_channel_name_ok(ch->name));
	outbox_type_check(check, sizeof check, ch->id);
	snprintf(sql, sizeof sql,
		 "CREATE TABLE IF NOT EXISTS \"litebus_outbox_%s\"("
		 "event_id INTEGER PRIMARY KEY, "
		 "partition_key INTEGER NOT NULL, "
		 "subject BLOB, "
		 "event_type TEXT NOT NULL CHECK(%s), "
		 "namespace TEXT, "
		 "instance_tag TEXT, "
		 "payload BLOB, "
		 "occurred_at_ms INTEGER NOT NULL, "
		 "committed_at_ms INTEGER NOT NULL);"
		 "CREATE INDEX IF NOT EXISTS \"litebus_outbox_%s_partition\" "
		 "ON \"litebus_outbox_%s\"(partition_key, event_id);"
		 "INSERT OR IGNORE INTO litebus_channel(name, high_water) "
		 "VALUES('%s', 0);"
		 /* Ids are never reused: deleting a row raises the mark. */
		 "CREATE TRIGGER IF NOT EXISTS \"litebus_outbox_%s_hw\" "
		 "AFTER DELETE ON \"litebus_outbox_%s\" BEGIN "
		 "UPDATE litebus_channel SET high_water = OLD.event_id "
		 "WHERE name = '%s' AND high_water < OLD.event_id; END;",
		 ch->name, check, ch->name, ch->name, ch->name, ch->name,
		 ch->name, ch->name);
	snprintf(check, sizeof check, "creating or checking table "
				      "litebus_outbox_%s",
		 ch->name);
	rc = outbox_exec(db, sql, check);
	return rc;
}

static int outbox_prepare_all(struct lb_outbox *ob,
			      struct lb_channel *const *channels,
			      int nchannels);

/* Create what is missing and prepare every statement in one transaction:
 * if anything in the file does not fit (an outbox table of another shape,
 * a planted trigger our INSERT would fire and that SQLite refuses), the
 * transaction rolls back and the file is left as it was. */
static int
outbox_create_schema(struct lb_outbox *ob, struct lb_channel *const *channels,
		     int nchannels)
{
	sqlite3 *db = ob->db;
	int rc;

	rc = outbox_exec(db, "BEGIN IMMEDIATE", "beginning schema creation");
	if (rc != LITEBUS_OK)
		return rc;
	rc = outbox_exec(
	    db,
	    "CREATE TABLE IF NOT EXISTS litebus_meta("
	    "key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	    "INSERT OR IGNORE INTO litebus_meta(key, value) "
	    "VALUES('schema_version', 1);"
	    "CREATE TABLE IF NOT EXISTS litebus_channel("
	    "name TEXT PRIMARY KEY, high_water INTEGER NOT NULL DEFAULT 0) "
	    "WITHOUT ROWID;",
	    "creating litebus_meta");
	for (int i = 0; rc == LITEBUS_OK && i < nchannels; i++)
		rc = outbox_create_channel(db, channels[i]);
	if (rc == LITEBUS_OK)
		rc = outbox_prepare_all(ob, channels, nchannels);
	if (rc == LITEBUS_OK)
		rc = outbox_exec(db, "COMMIT", "committing the schema");
	if (rc != LITEBUS_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int
outbox_configure(sqlite3 *db, const struct lb_dbname *dbn, int durability)
{
	sqlite3_stmt *st;
	int rc;

	if (!dbn->is_memory) {
		rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st,
					NULL);
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
	}
	return outbox_exec(db,
			   durability == LITEBUS_DURABILITY_FULL
			       ? "PRAGMA synchronous=FULL"
			       : "PRAGMA synchronous=NORMAL",
			   "setting durability");
}

static int
outbox_prepare_all(struct lb_outbox *ob, struct lb_channel *const *channels,
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
		rc = outbox_prepare(ob->db, "PRAGMA data_version",
				    &ob->data_version);
	for (int i = 0; rc == LITEBUS_OK && i < nchannels; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO \"litebus_outbox_%s\"(%s) "
			 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			 channels[i]->name, row_columns);
		rc = outbox_prepare(ob->db, sql, &ob->insert[i]);
		if (rc != LITEBUS_OK)
			break;
		/* Apart, so that lb_outbox_load_last_id can check each
		 * (a max() of the two would hide a bad mark below the
		 * largest id); the name is for its messages. */
		snprintf(sql, sizeof sql,
			 "SELECT (SELECT max(event_id) FROM "
			 "\"litebus_outbox_%s\"), (SELECT high_water FROM "
			 "litebus_channel WHERE name = '%s'), '%s'",
			 channels[i]->name, channels[i]->name,
			 channels[i]->name);
		rc = outbox_prepare(ob->db, sql, &ob->next_id[i]);
	}
	return rc;
}

int
lb_outbox_open(struct lb_outbox *ob, const struct lb_dbname *dbn,
	       int durability, struct lb_channel *const *channels, int nchannels)
{
	int64_t version;
	int rc;

	memset(ob, 0, sizeof *ob);
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
	sqlite3_busy_timeout(ob->db, 5000);
	if (sqlite3_db_readonly(ob->db, "main") == 1) {
		rc = lb_err_set(LITEBUS_EREADONLY,
				"opening %s: the file is read-only",
				dbn->name);
		goto fail;
	}
	rc = outbox_schema_version(ob->db, &version);
	if (rc != LITEBUS_OK)
		goto fail;
	if (version > LB_SCHEMA_VERSION) {
		rc = lb_err_set(LITEBUS_ESCHEMA,
				"opening %s: litebus schema version %lld is "
				"newer than this library's %d",
				dbn->name, (long long)version,
				LB_SCHEMA_VERSION);
		goto fail;
	}
	/* Installing an authorizer expires prepared statements, so it goes
	 * in before the statements are prepared. */
	sqlite3_set_authorizer(ob->db, outbox_authorize, ob);
	sqlite3_commit_hook(ob->db, outbox_commit_hook, ob);
	rc = outbox_create_schema(ob, channels, nchannels);
	/* WAL only once the file has proven to be ours: switching journal
	 * modes writes to the file. */
	if (rc == LITEBUS_OK)
		rc = outbox_configure(ob->db, dbn, durability);
	if (rc != LITEBUS_OK)
		goto fail;
	sqlite3_busy_timeout(ob->db, 0);
	/* Prime data_version so that our own schema work does not count. */
	{
		bool changed;
		rc = lb_outbox_changed_elsewhere(ob, &changed);
	}
	if (rc != LITEBUS_OK)
		goto fail;
	return LITEBUS_OK;
fail:
	lb_outbox_close(ob);
	return rc;
}

void
lb_outbox_close(struct lb_outbox *ob)
{
	sqlite3_stmt **fixed[] = {&ob->begin,	    &ob->commit,
				  &ob->rollback,    &ob->sp_begin,
				  &ob->sp_release,  &ob->sp_rollback,
				  &ob->data_version};

	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		sqlite3_finalize(*fixed[i]);
		*fixed[i] = NULL;
	}
	for (int i = 0; i < ob->nchannels; i++) {
		sqlite3_finalize(ob->insert[i]);
		sqlite3_finalize(ob->next_id[i]);
		sqlite3_finalize(ob->readback[i]);
		ob->insert[i] = ob->next_id[i] = ob->readback[i] = NULL;
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
		return lb_err_sqlite(ob->db, rc, "reading the largest event_id");
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

void
lb_outbox_rollback(struct lb_outbox *ob)
{
	/* A failed COMMIT or a fatal error may already have ended the
	 * transaction; ROLLBACK then has nothing to do. */
	if (!sqlite3_get_autocommit(ob->db))
		(void)outbox_step(ob->rollback);
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
		return outbox_too_big(field, len,
				      sqlite3_limit(ob->db, SQLITE_LIMIT_LENGTH,
						    -1));
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
	if (rc == SQLITE_OK && (rc = outbox_bind_text(st, 5, rec->ns)) !=
				   SQLITE_OK) {
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
			rc = lb_err_set(LITEBUS_ETOOBIG,
					"litebus_emit: the row (subject %zu, "
					"payload %zu bytes and the strings) is "
					"larger than the connection's length "
					"limit of %d bytes (SQLITE_LIMIT_LENGTH)",
					rec->subject_len, rec->payload_len,
					limit);
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
		   int64_t from_id, int (*fn)(void *, const struct lb_rec *),
		   void *arg)
{
	sqlite3_stmt *st = ob->readback[channel];
	int rc;

	if (st == NULL) {
		char sql[SQL_MAX];

		assert(lb_channel_name_ok(name));
		snprintf(sql, sizeof sql,
			 "SELECT event_id, partition_key, committed_at_ms, "
			 "length(subject), substr(subject, 1, %d), namespace, "
			 "instance_tag FROM main.\"litebus_outbox_%s\" WHERE "
			 "event_id >= ?1 ORDER BY event_id",
			 LITEBUS_SUBJECT_PREFIX, name);
		rc = outbox_prepare(ob->db, sql, &ob->readback[channel]);
		if (rc != LITEBUS_OK)
			return rc;
		st = ob->readback[channel];
	}
	rc = sqlite3_bind_int64(st, 1, from_id);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(ob->db, rc, "reading back the batch's rows");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct lb_rec rec;
		const void *prefix;
		int64_t subject_len;
		int prefix_len, frc;

		memset(&rec, 0, sizeof rec);
		rec.event_id = sqlite3_column_int64(st, 0);
		rec.partition_key = sqlite3_column_int64(st, 1);
		rec.committed_at_ms = sqlite3_column_int64(st, 2);
		subject_len = sqlite3_column_int64(st, 3);
		if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
		    subject_len < 0 || subject_len > (int64_t)UINT32_MAX) {
			sqlite3_reset(st);
			return lb_err_set(LITEBUS_ESCHEMA,
					  "reading back the batch's rows: a row "
					  "of litebus_outbox_%s is malformed",
					  name);
		}
		rec.subject_len = (uint32_t)subject_len;
		prefix = sqlite3_column_blob(st, 4);
		prefix_len = sqlite3_column_bytes(st, 4);
		if (prefix == NULL && prefix_len > 0) {
			sqlite3_reset(st);
			return lb_err_sqlite(ob->db, SQLITE_NOMEM,
					     "reading back the batch's rows");
		}
		if (prefix_len > (int)sizeof rec.subject_prefix)
			prefix_len = (int)sizeof rec.subject_prefix;
		if (prefix_len > 0)
			memcpy(rec.subject_prefix, prefix, (size_t)prefix_len);
		/* NULL text is "none" (hash 0); an allocation failure while
		 * converting is told apart by the column's type. */
		for (int col = 5; col <= 6; col++) {
			const char *t =
			    (const char *)sqlite3_column_text(st, col);
			if (t == NULL &&
			    sqlite3_column_type(st, col) != SQLITE_NULL) {
				sqlite3_reset(st);
				return lb_err_sqlite(
				    ob->db, SQLITE_NOMEM,
				    "reading back the batch's rows");
			}
			if (col == 5)
				rec.ns_hash = lb_ring_hash(t);
			else
				rec.tag_hash = lb_ring_hash(t);
		}
		frc = fn(arg, &rec);
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

void
lb_outbox_save_state(struct lb_outbox *ob)
{
	for (int i = 0; i < LB_NLIMITS; i++)
		ob->limits[i] = sqlite3_limit(ob->db, i, -1);
}

/* db_config flags litebus's guarantees depend on, and their values. */
static const struct {
	int op;
	int want;
	const char *what;
} config_flags[] = {
    {SQLITE_DBCONFIG_DEFENSIVE, 1, "SQLITE_DBCONFIG_DEFENSIVE"},
    {SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, "SQLITE_DBCONFIG_TRUSTED_SCHEMA"},
    /* The high-water triggers keep deleted ids from being reused. */
    {SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, "SQLITE_DBCONFIG_ENABLE_TRIGGER"},
    {SQLITE_DBCONFIG_WRITABLE_SCHEMA, 0, "SQLITE_DBCONFIG_WRITABLE_SCHEMA"},
    {SQLITE_DBCONFIG_RESET_DATABASE, 0, "SQLITE_DBCONFIG_RESET_DATABASE"},
};

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
	(void)sqlite3_rollback_hook(db, NULL, NULL);
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
	for (size_t i = 0; i < sizeof config_flags / sizeof config_flags[0];
	     i++) {
		int v = -1;

		if (sqlite3_db_config(db, config_flags[i].op, -1, &v) !=
			SQLITE_OK ||
		    v != config_flags[i].want) {
			(void)sqlite3_db_config(db, config_flags[i].op,
						config_flags[i].want,
						(int *)NULL);
			status = lb_err_set(LITEBUS_EMISUSE,
					    "the job changed %s; it was put "
					    "back and the job rolled back",
					    config_flags[i].what);
		}
	}
	return status;
}

int
lb_outbox_open_reader(const struct lb_dbname *dbn, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc;

	*out = NULL;
	rc = sqlite3_open_v2(dbn->name, &db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
				 dbn->extra_flags,
			     NULL);
	if (rc == SQLITE_OK)
		rc = lb_outbox_harden(db);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db, 1000);
	if (rc == SQLITE_OK && dbn->is_memory)
		/* Shared-cache readers would otherwise take table read locks
		 * that make the writer fail with SQLITE_LOCKED.  Reading
		 * uncommitted pages is safe here because a reader never asks
		 * for ids above the channel's published id, and every such
		 * row is committed (reader.c, D2). */
		rc = sqlite3_exec(db, "PRAGMA read_uncommitted=1", NULL, NULL,
				  NULL);
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
			bool by_partition, bool by_ns, bool by_tag,
			sqlite3_stmt **out)
{
	char sql[SQL_MAX];

	snprintf(sql, sizeof sql,
		 "SELECT %s FROM \"litebus_outbox_%s\" "
		 "WHERE event_id > ?1 AND event_id <= ?2%s%s%s "
		 "ORDER BY event_id LIMIT ?3",
		 row_columns, channel_name,
		 by_partition ? " AND partition_key = ?4" : "",
		 by_ns ? " AND namespace = ?5" : "",
		 by_tag ? " AND instance_tag = ?6" : "");
	return outbox_prepare(db, sql, out);
}
