/*
 * outbox.h - the outbox schema and every SQL statement litebus runs.
 * Only this file and writer.c/reader.c touch SQLite.
 */
#ifndef LB_OUTBOX_H
#define LB_OUTBOX_H

#include "litebus.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define LB_SCHEMA_VERSION 1

struct lb_channel;

/* Where the database is and how to open more connections to it. */
struct lb_dbname {
	char *name;     /* passed to sqlite3_open_v2 */
	int extra_flags; /* SQLITE_OPEN_URI for in-memory databases */
	bool is_memory;
};

/* The writer's connection and its prepared statements. */
struct lb_outbox {
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *rollback;
	sqlite3_stmt *sp_begin, *sp_release, *sp_rollback;
	sqlite3_stmt *data_version;
	int nchannels;
	sqlite3_stmt *insert[LITEBUS_MAX_CHANNELS];
	sqlite3_stmt *next_id[LITEBUS_MAX_CHANNELS];
	int64_t last_data_version;
	/* Authorizer state, writer thread only. */
	bool in_job;
	bool in_emit;
	/* In-memory database: jobs may not delete outbox rows (see
	 * outbox_authorize).  Immutable after open. */
	bool is_memory;
};

/* Open the writer's connection, check and create the schema for the
 * channels, prepare the statements.  On failure everything is closed and
 * the thread's error is set; the file is unchanged unless the schema was
 * being created for the first time (then the transaction rolled back). */
int lb_outbox_open(struct lb_outbox *ob, const struct lb_dbname *dbn,
		   int durability, struct lb_channel *const *channels,
		   int nchannels);
/* (The connection's authorizer keeps `ob`: it must not move while open.) */
void lb_outbox_close(struct lb_outbox *ob);

/* Writer: the next event_id for channel i: above every id ever committed
 * (the table's max and the deletion high-water mark). */
int lb_outbox_load_next_id(struct lb_outbox *ob, int i, int64_t *next);

/* Writer: did another connection commit since our last check? */
int lb_outbox_changed_elsewhere(struct lb_outbox *ob, bool *changed);

int lb_outbox_begin(struct lb_outbox *ob);
int lb_outbox_commit(struct lb_outbox *ob);
void lb_outbox_rollback(struct lb_outbox *ob);
int lb_outbox_savepoint(struct lb_outbox *ob);
int lb_outbox_release(struct lb_outbox *ob);
int lb_outbox_rollback_to(struct lb_outbox *ob);

/* Writer, inside a job: insert one row with the given id. */
int lb_outbox_append(struct lb_outbox *ob, int channel, int64_t event_id,
		     const litebus_record *rec, int64_t occurred_at_ms,
		     int64_t committed_at_ms);

/* Open a read-only connection to the database for a reader. */
int lb_outbox_open_reader(const struct lb_dbname *dbn, sqlite3 **out);
/* Prepare a reader's range query on `channel_name` with the filter's set
 * fields.  Parameters: ?1 lower (exclusive), ?2 upper (inclusive), ?3
 * limit, then ?4 partition, ?5 namespace, ?6 tag (only those in use). */
int lb_outbox_prepare_range(sqlite3 *db, const char *channel_name,
			    bool by_partition, bool by_ns, bool by_tag,
			    sqlite3_stmt **out);

/* A reader's connection: the newest event_id committed on `channel_name`
 * as this connection sees it now (one short read transaction): the
 * table's largest event_id, or its deletion high-water mark if higher.
 * Returns a litebus status; EBUSY means SQLITE_BUSY or SQLITE_LOCKED, and
 * may be retried. */
int lb_outbox_read_head(sqlite3 *db, const char *channel_name,
			int64_t *head);

/* Apply litebus's connection settings (defensive, untrusted schema). */
int lb_outbox_harden(sqlite3 *db);

#endif
