/* SPDX-License-Identifier: MIT */
/*
 * outbox.h - the outbox schema and every SQL statement litebus runs.
 *
 * Return convention: every lb_outbox_* call that returns int returns a
 * litebus status (LITEBUS_OK or a negative LITEBUS_E*, with the thread's
 * error text set), except the six transaction-control calls below, which
 * return raw SQLite result codes and say so.
 */
#ifndef LB_OUTBOX_H
#define LB_OUTBOX_H

#include "catalog.h"
#include "litebus.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* The schema this library writes, and the oldest it migrates from (O6). */
#define LB_SCHEMA_VERSION 2
#define LB_SCHEMA_VERSION_OLDEST 1

/* SQLITE_LIMIT_LENGTH (0) .. SQLITE_LIMIT_WORKER_THREADS (11). */
#define LB_NLIMITS (SQLITE_LIMIT_WORKER_THREADS + 1)
/* The boolean sqlite3_db_config() flags (outbox.c, config_flags). */
#define LB_NCONFIG 16

struct lb_rec;

/* Where the database is and how to open more connections to it. */
struct lb_dbname {
	char *name;	 /* passed to sqlite3_open_v2 */
	int extra_flags; /* SQLITE_OPEN_URI for in-memory databases */
	bool is_memory;
};

/*
 * litebus's own statements on its state tables (schema version 2), and for
 * pruning outbox rows.  The SQL text lives in outbox.c; consumer.c and
 * retention.c bind them, step them with lb_outbox_own_step() inside a
 * job (a litebus job or the application's, for litebus_consumer_ack_tx)
 * on the writer thread, and reset them.  Parameters and columns:
 */
enum lb_own_sql {
	LB_SQL_CONSUMER_GET,	 /* ?1 channel ?2 name -> position,
				    holder_pid, holder_start */
	LB_SQL_CONSUMER_INSERT,	 /* ?1 channel ?2 name ?3 position
				    ?4 acked_at_ms ?5 holder_pid
				    ?6 holder_start */
	LB_SQL_CONSUMER_HOLD,	 /* ?1 channel ?2 name ?3 pid ?4 start */
	LB_SQL_CONSUMER_RELEASE, /* ?1 channel ?2 name ?3 pid ?4 start:
				    clears the holder if it is that one */
	LB_SQL_CONSUMER_ACK,	 /* ?1 channel ?2 name ?3 position
				    ?4 acked_at_ms: moves forward only */
	LB_SQL_CONSUMER_DELETE,	 /* ?1 channel ?2 name */
	LB_SQL_CONSUMER_FLOOR,	 /* ?1 channel -> the smallest position */
	LB_SQL_PRUNED_GET,	 /* ?1 channel -> pruned_through */
	LB_SQL_PRUNED_SET,	 /* ?1 channel ?2 through: forward only */
	LB_OWN_SQL_COUNT
};
/* Per channel (the statement names the channel's table). */
enum lb_own_chan_sql {
	LB_SQL_PRUNE_SCAN,   /* ?1 limit -> event_id, committed_at_ms, the
				oldest rows first */
	LB_SQL_PRUNE_DELETE, /* ?1 through: deletes event_id <= through */
	LB_OWN_CHAN_SQL_COUNT
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
	/* Prepared on first use by lb_outbox_readback. */
	sqlite3_stmt *readback[LITEBUS_MAX_CHANNELS];
	/* Prepared on first use by lb_outbox_own / lb_outbox_own_chan. */
	sqlite3_stmt *own[LB_OWN_SQL_COUNT];
	sqlite3_stmt *own_chan[LB_OWN_CHAN_SQL_COUNT][LITEBUS_MAX_CHANNELS];
	/* sqlite3_limit() values after open, put back after every job. */
	int limits[LB_NLIMITS];
	int64_t last_data_version;
	/* Authorizer state, writer thread only. */
	bool in_job;
	bool in_emit;
	bool in_own;   /* lb_outbox_own_step() runs litebus's own statement */
	bool txn_lost; /* the rollback hook fired during the job */
	bool job_ddl;  /* the job prepared DDL */
	/* sqlite3_db_config() flags after open, and how many objects are in
	 * litebus's namespace: both checked after every job. */
	int config[LB_NCONFIG];
	int64_t ours;
	/* In-memory database.  Immutable after open. */
	bool is_memory;
};

/* Open the writer's connection; refuse a file that is not litebus's
 * (EFOREIGN: another application's application_id, or a database of the
 * application's own unless `adopt`) or whose litebus objects are not
 * exactly litebus's (ESCHEMA); create what is missing for the channels,
 * mark the file with LITEBUS_APPLICATION_ID, prepare the statements, and
 * only then switch to WAL (outbox.c, O1-O5).  `adopt` is
 * litebus_options.adopt.  On failure everything is closed and the
 * thread's error is set; the file is unchanged (the checks and the
 * schema share one transaction, which rolled back). */
int lb_outbox_open(struct lb_outbox *ob, const struct lb_dbname *dbn,
		   int durability, const struct lb_chan_spec *chans,
		   int nchannels, bool adopt);
/* (The connection's authorizer keeps `ob`: it must not move while open.) */
void lb_outbox_close(struct lb_outbox *ob);

/* Writer: the largest event_id ever committed on channel i (the table's
 * largest and the deletion high-water mark; 0 if none).  ESCHEMA if the
 * file holds something else than a non-negative integer there. */
int lb_outbox_load_last_id(struct lb_outbox *ob, int i, int64_t *last);

/* Writer: did another connection commit since our last check? */
int lb_outbox_changed_elsewhere(struct lb_outbox *ob, bool *changed);

/*
 * Transaction control, writer only.  These six return the raw SQLite
 * result code (SQLITE_OK, SQLITE_BUSY, ...), and set no error text: the
 * caller decides what the code means (retry a BUSY, treat the batch's
 * transaction as lost, fail one job) and turns it into a litebus status
 * with lb_err_sqlite().  Callers keep these codes in variables named
 * `src`, litebus statuses in `rc`.
 */
int lb_outbox_begin(struct lb_outbox *ob);
int lb_outbox_commit(struct lb_outbox *ob);
/* SQLITE_OK when no transaction was open. */
int lb_outbox_rollback(struct lb_outbox *ob);
int lb_outbox_savepoint(struct lb_outbox *ob);
int lb_outbox_release(struct lb_outbox *ob);
/* Roll back to the job's savepoint and release it. */
int lb_outbox_rollback_to(struct lb_outbox *ob);

/* Writer, inside a job: insert one row with the given id. */
int lb_outbox_append(struct lb_outbox *ob, int channel, int64_t event_id,
		     const litebus_record *rec, int64_t occurred_at_ms,
		     int64_t committed_at_ms);

/* Writer, inside the batch's transaction, after its last job: call
 * fn(arg, rec, row) for every row of `channel` (table name `name`) with
 * event_id >= from_id, in event_id order, with the row as the table holds
 * it (its pointers valid during the call) and the ring record made from
 * it.  What is published is derived from this (writer.c, W1).  fn returns
 * a litebus status; a non-OK one stops the scan and is returned. */
struct lb_outbox_row;
int lb_outbox_readback(struct lb_outbox *ob, int channel, const char *name,
		       int64_t from_id,
		       int (*fn)(void *, const struct lb_rec *,
				 const struct lb_outbox_row *),
		       void *arg);

/* Writer, right after open: remember the connection state that
 * lb_outbox_after_job puts back, and install the rollback hook. */
int lb_outbox_save_state(struct lb_outbox *ob);
/* Writer, right before a job runs: in_job, and forget the last job's
 * loss and DDL. */
void lb_outbox_job_begin(struct lb_outbox *ob);
/* Writer: did SQLite roll back the batch's whole transaction while the
 * job ran (even if the job then opened a transaction of its own)? */
bool lb_outbox_job_lost(const struct lb_outbox *ob);
/* Writer, after every job returns (before its RELEASE or ROLLBACK TO):
 * reset the statements the job left running and put back the connection
 * state a job may change through the C API (header, "What a job may
 * do").  Returns OK, or EMISUSE with the thread's error set when the job
 * changed something that may already have broken a guarantee inside its
 * savepoint (litebus's commit hook, defensive mode, triggers, ...): the
 * job must then be rolled back. */
int lb_outbox_after_job(struct lb_outbox *ob);

/* A read-only bus's open (litebus.h, "Read-only buses"): check, with a
 * read-only connection and without writing anything, that the file is a
 * litebus file of exactly LB_SCHEMA_VERSION whose litebus objects are all
 * litebus's (O2, O3), and list its channels as the file spells them: the
 * built-in ones, then `want` (NULL-terminated, may be NULL; each must be
 * in the file: ENOCHANNEL), then the file's others ordered by name, up to
 * LITEBUS_MAX_CHANNELS in all.
 * Fills names[0..*n-1].  Litebus status; ECANTOPEN for a missing file,
 * EFOREIGN for a file that is not litebus's, ESCHEMA for another schema
 * version or foreign litebus_* objects. */
int lb_outbox_inspect_readonly(
    const struct lb_dbname *dbn, const char *const *want,
    char names[LITEBUS_MAX_CHANNELS][LITEBUS_CHANNEL_NAME_MAX + 1], int *n);

/* Open a read-only connection to the database for a reader. */
int lb_outbox_open_reader(const struct lb_dbname *dbn, sqlite3 **out);
/* A reader's range query: the rows with after < event_id <= upto, in
 * event_id order, at most `limit`, that match the filter's set fields. */
struct lb_range {
	int64_t after, upto;
	uint32_t limit;
	bool by_partition;
	int64_t partition_key;
	const char *ns;	 /* NULL: any namespace */
	const char *tag; /* NULL: any instance tag */
};

/* Prepare the range query on channel_name's table in main for the
 * filter fields that `shape` sets (its bounds and values are bound later,
 * by lb_outbox_bind_range with a range of the same shape).  Returns a
 * litebus status (EBUSY: the schema is locked; may be retried). */
int lb_outbox_prepare_range(sqlite3 *db, const char *channel_name,
			    const struct lb_range *shape, sqlite3_stmt **out);
/* Bind `q` to a statement from lb_outbox_prepare_range with its shape.
 * The strings are bound SQLITE_STATIC: they must outlive the query.
 * Returns a litebus status. */
int lb_outbox_bind_range(sqlite3 *db, sqlite3_stmt *st,
			 const struct lb_range *q);

/* One row of the range query, as the table holds it.  The pointers point
 * into SQLite's memory and stay valid until the statement is stepped,
 * reset or finalized.  NULL subject, ns, tag or payload: SQL NULL (an
 * empty BLOB may come back as NULL too, with length 0); event_type is
 * never NULL ("" if the file holds NULL there). */
struct lb_outbox_row {
	int64_t event_id, partition_key, occurred_at_ms, committed_at_ms;
	const void *subject;
	size_t subject_len;
	const char *event_type;
	size_t event_type_len;
	const char *ns;
	size_t ns_len;
	const char *tag;
	size_t tag_len;
	const void *payload;
	size_t payload_len;
};

/* Decode the current row (after SQLITE_ROW) of a range query.  Returns OK,
 * or ENOMEM (SQLite could not allocate a conversion) with the thread's
 * error set: never a NULL in place of the data. */
int lb_outbox_range_row(sqlite3 *db, sqlite3_stmt *st,
			struct lb_outbox_row *row);

/* A reader's connection: the newest event_id committed on `channel_name`
 * as this connection sees it now (one short read transaction): the
 * table's largest event_id, or its deletion high-water mark if higher.
 * Returns a litebus status; EBUSY means SQLITE_BUSY or SQLITE_LOCKED, and
 * may be retried. */
int lb_outbox_read_head(sqlite3 *db, const char *channel_name, int64_t *head);
/* The same read as a statement to keep (the watcher's), and PRAGMA
 * data_version; step either with lb_outbox_step_int.  Litebus statuses. */
int lb_outbox_prepare_head(sqlite3 *db, const char *channel_name,
			   sqlite3_stmt **out);
int lb_outbox_prepare_data_version(sqlite3 *db, sqlite3_stmt **out);
/* Step a statement that returns one integer, then reset it.  Litebus
 * status; EBUSY for SQLITE_BUSY/LOCKED (may be retried). */
int lb_outbox_step_int(sqlite3 *db, sqlite3_stmt *st, int64_t *out,
		       const char *what);
/* Begin and end a read transaction on a reader's connection (several
 * reads from one snapshot).  Litebus statuses. */
int lb_outbox_read_begin(sqlite3 *db);
/* A reader's connection: litebus_meta's schema_version (0 if none). */
int lb_outbox_read_schema_version(sqlite3 *db, int64_t *version);
int lb_outbox_read_end(sqlite3 *db);

/* Writer: litebus's own statement `which` (prepared on first use;
 * borrowed: reset it after use, never finalize it).  Litebus status. */
int lb_outbox_own(struct lb_outbox *ob, enum lb_own_sql which,
		  sqlite3_stmt **st);
/* Writer: the same for channel `channel`, whose table is named after
 * `name` (valid). */
int lb_outbox_own_chan(struct lb_outbox *ob, enum lb_own_chan_sql which,
		       int channel, const char *name, sqlite3_stmt **st);
/* Writer: step an own statement (the authorizer lets it write litebus's
 * state tables inside a job).  Raw SQLite code. */
int lb_outbox_own_step(struct lb_outbox *ob, sqlite3_stmt *st);

/* The key a channel has in litebus_consumer and litebus_pruned: its name
 * in lower case (channel names are unique ignoring case), so that every
 * spelling of a channel finds one row. */
void lb_outbox_state_key(char out[LITEBUS_CHANNEL_NAME_MAX + 1],
			 const char *name);

/* A reader's connection, one short read each (litebus statuses; EBUSY may
 * be retried): the largest event_id pruned from the channel's prefix (0:
 * none), and the oldest event_id its table holds (0: empty). */
int lb_outbox_read_pruned(sqlite3 *db, const char *channel_name,
			  int64_t *through);
int lb_outbox_read_oldest(sqlite3 *db, const char *channel_name,
			  int64_t *oldest);
/* Every durable consumer, ordered by channel key and name: columns
 * channel, name, position, acked_at_ms, holder_pid, holder_start. */
int lb_outbox_prepare_consumers(sqlite3 *db, sqlite3_stmt **out);

/* Apply litebus's connection settings (defensive, untrusted schema). */
int lb_outbox_harden(sqlite3 *db);

#endif
