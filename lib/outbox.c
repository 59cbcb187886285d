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

/* Writer connection authorizer.  Inside a job it refuses what would break
 * the batch: ending or starting the transaction, touching litebus's
 * savepoints, writing the outbox except through litebus_emit(), changing
 * litebus's own tables.  Deleting outbox rows (pruning) stays allowed.
 * Runs at prepare time, on the writer thread. */
static int
outbox_authorize(void *arg, int action, const char *a1, const char *a2,
		 const char *dbname, const char *trigger)
{
	const struct lb_outbox *ob = arg;

	(void)dbname;
	/* Only litebus's own triggers (the high-water marks) are exempt:
	 * a trigger of the application's is held to the same rules as the
	 * job that fires it. */
	if (!ob->in_job ||
	    (trigger != NULL && strncasecmp(trigger, "litebus_", 8) == 0))
		return SQLITE_OK;
	switch (action) {
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_CREATE_TEMP_TRIGGER:
		/* a1 is the trigger, a2 its table. */
		if ((a1 != NULL && strncasecmp(a1, "litebus_", 8) == 0) ||
		    (a2 != NULL && strncasecmp(a2, "litebus_", 8) == 0))
			return SQLITE_DENY;
		return SQLITE_OK;
	case SQLITE_TRANSACTION:
		return SQLITE_DENY;
	case SQLITE_SAVEPOINT:
		if (a2 != NULL && strncasecmp(a2, "litebus", 7) == 0)
			return SQLITE_DENY;
		return SQLITE_OK;
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
		if (!ob->in_emit && a1 != NULL &&
		    strncasecmp(a1, "litebus_", 8) == 0)
			return SQLITE_DENY;
		return SQLITE_OK;
	case SQLITE_DELETE:
		if (a1 == NULL || strncasecmp(a1, "litebus_", 8) != 0)
			return SQLITE_OK;
		/* Pruning outbox rows is allowed on file databases.  Readers
		 * of an in-memory database read uncommitted pages (outbox.c,
		 * lb_outbox_open_reader): they would see a DELETE that later
		 * rolls back and skip rows that then come back. */
		if (strncasecmp(a1, "litebus_outbox_", 15) == 0 &&
		    !ob->is_memory)
			return SQLITE_OK;
		return SQLITE_DENY;
	case SQLITE_DROP_TABLE:
	case SQLITE_DROP_INDEX:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_ALTER_TABLE:
		if (a1 != NULL && strncasecmp(a1, "litebus_", 8) == 0)
			return SQLITE_DENY;
		if (a2 != NULL && action == SQLITE_ALTER_TABLE &&
		    strncasecmp(a2, "litebus_", 8) == 0)
			return SQLITE_DENY;
		return SQLITE_OK;
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
		snprintf(sql, sizeof sql,
			 "SELECT max(coalesce((SELECT max(event_id) FROM "
			 "\"litebus_outbox_%s\"), 0), coalesce((SELECT "
			 "high_water FROM litebus_channel WHERE name = '%s'), "
			 "0))",
			 channels[i]->name, channels[i]->name);
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
		ob->insert[i] = ob->next_id[i] = NULL;
	}
	/* close_v2: a user statement left unfinalized by a job must not keep
	 * the connection (and the file lock) alive forever. */
	sqlite3_close_v2(ob->db);
	ob->db = NULL;
}

int
lb_outbox_load_next_id(struct lb_outbox *ob, int i, int64_t *next)
{
	sqlite3_stmt *st = ob->next_id[i];
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return lb_err_sqlite(ob->db, rc, "reading the largest event_id");
	}
	*next = sqlite3_column_int64(st, 0) + 1;
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

int
lb_outbox_append(struct lb_outbox *ob, int channel, int64_t event_id,
		 const litebus_record *rec, int64_t occurred_at_ms,
		 int64_t committed_at_ms)
{
	sqlite3_stmt *st = ob->insert[channel];
	int rc;

	/* SQLITE_STATIC: rec is borrowed for the duration of the call, and
	 * the statement is reset before we return. */
	sqlite3_bind_int64(st, 1, event_id);
	sqlite3_bind_int64(st, 2, rec->partition_key);
	if (rec->subject != NULL)
		sqlite3_bind_blob64(st, 3, rec->subject, rec->subject_len,
				    SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_text(st, 4, rec->event_type, -1, SQLITE_STATIC);
	if (rec->ns != NULL)
		sqlite3_bind_text(st, 5, rec->ns, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	if (rec->instance_tag != NULL)
		sqlite3_bind_text(st, 6, rec->instance_tag, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 6);
	if (rec->payload != NULL)
		sqlite3_bind_blob64(st, 7, rec->payload, rec->payload_len,
				    SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_int64(st, 8, occurred_at_ms);
	sqlite3_bind_int64(st, 9, committed_at_ms);
	ob->in_emit = true;
	rc = sqlite3_step(st);
	ob->in_emit = false;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return lb_err_sqlite(ob->db, rc, "appending to the outbox");
	return LITEBUS_OK;
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
			bool by_partition, bool by_ns, bool by_tag,
			sqlite3_stmt **out)
{
	char sql[SQL_MAX];

	/* main.: a reader's connection has no other schema, but the name
	 * should not depend on that. */
	snprintf(sql, sizeof sql,
		 "SELECT %s FROM main.\"litebus_outbox_%s\" "
		 "WHERE event_id > ?1 AND event_id <= ?2%s%s%s "
		 "ORDER BY event_id LIMIT ?3",
		 row_columns, channel_name,
		 by_partition ? " AND partition_key = ?4" : "",
		 by_ns ? " AND namespace = ?5" : "",
		 by_tag ? " AND instance_tag = ?6" : "");
	return outbox_prepare(db, sql, out);
}

int
lb_outbox_read_head(sqlite3 *db, const char *channel_name, int64_t *head)
{
	char sql[SQL_MAX];
	sqlite3_stmt *st = NULL;
	int rc;

	/* The same expression as the writer's next_id (above): the largest
	 * id the table holds, or its deletion high-water mark if higher. */
	snprintf(sql, sizeof sql,
		 "SELECT max(coalesce((SELECT max(event_id) FROM "
		 "main.\"litebus_outbox_%s\"), 0), coalesce((SELECT "
		 "high_water FROM main.litebus_channel WHERE name = '%s'), 0))",
		 channel_name, channel_name);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*head = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	/* Finalizing ends the read transaction at once. */
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return lb_err_sqlite(db, rc, "reading the newest event_id");
	return LITEBUS_OK;
}
