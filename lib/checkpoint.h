/* SPDX-License-Identifier: MIT */
/*
 * checkpoint.h - WAL checkpoints off the commit path, and the WAL bound.
 */
#ifndef LB_CHECKPOINT_H
#define LB_CHECKPOINT_H

#include "outbox.h"
#include "stats.h"

#include <stdbool.h>
#include <stdint.h>

struct lb_ckpt;

/* Take charge of the checkpoints of the writer's connection `wdb` (a
 * file database in WAL mode), as opts->checkpoint_mode says: hook it
 * with litebus's WAL hook (replacing SQLite's auto-checkpoint), set its
 * journal_size_limit to the bound, and in background mode start the
 * checkpointer thread with its own connection.  Counters go to `stats`
 * (borrowed for the life of the checkpointer).  Called on the thread that
 * owns wdb before the writer thread starts.
 * Returns LITEBUS_OK and *out, or ENOMEM/ESQLITE/... with the thread's
 * error set (wdb keeps SQLite's own auto-checkpoint hook then). */
int lb_ckpt_start(const struct lb_dbname *dbn, sqlite3 *wdb,
		  const litebus_options *opts, struct lb_stats *stats,
		  struct lb_ckpt **out);

/* Writer thread: is a finishing checkpoint due (the WAL is past the
 * threshold and the checkpointer has copied its bulk and is idle)?
 * Always false in inline mode and for NULL. */
bool lb_ckpt_finish_due(struct lb_ckpt *ck);

/* Writer thread, between transactions (none open), after every COMMIT
 * and before the next BEGIN (idle = false), and once no job has arrived
 * for LB_CKPT_IDLE_MS while lb_ckpt_finish_due() (idle = true).
 *  - idle = false: if the last commit left the WAL at or above
 *    LITEBUS_WAL_BOUND_FACTOR x checkpoint_pages frames, run a RESTART
 *    checkpoint here, waiting up to busy_timeout_ms for readers and
 *    other checkpoints (the bound; jobs wait in the queue meanwhile).
 *  - idle = true: copy the remainder the checkpointer left (PASSIVE), so
 *    that the next transaction restarts the WAL.
 * Returns true if it ran a checkpoint.  NULL is a no-op. */
bool lb_ckpt_finish(struct lb_ckpt *ck, sqlite3 *wdb, bool idle);

#define LB_CKPT_IDLE_MS 2

/* Writer thread, after a job returned: put litebus's WAL hook back on
 * wdb.  Returns false if the job had replaced it (sqlite3_wal_hook(),
 * sqlite3_wal_autocheckpoint()): the caller fails that job.  With ck ==
 * NULL (in-memory database: no WAL) it removes any hook and returns
 * true. */
bool lb_ckpt_rehook(struct lb_ckpt *ck, sqlite3 *wdb);

/* Unhook, let a running checkpoint finish, join and close.  NULL is a
 * no-op.  Call before the writer closes its connection, so that the
 * writer's close (the last connection) can checkpoint and remove the WAL. */
void lb_ckpt_stop(struct lb_ckpt *ck, sqlite3 *wdb);

#endif
