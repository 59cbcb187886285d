/*
 * checkpoint.h - WAL checkpoints off the commit path.
 */
#ifndef LB_CHECKPOINT_H
#define LB_CHECKPOINT_H

#include "outbox.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct lb_ckpt;

/* Start the checkpointer with its own connection to the database and hook
 * it to the writer's connection `wdb` (turning off SQLite's inline
 * auto-checkpoint there).  `count` is bumped (relaxed) per checkpoint. */
int lb_ckpt_start(const struct lb_dbname *dbn, sqlite3 *wdb, uint32_t pages,
		  _Atomic uint64_t *count, struct lb_ckpt **out);

/* Writer thread: is a finishing checkpoint due (the WAL is past the
 * threshold and the checkpointer has copied its bulk and is idle)? */
bool lb_ckpt_finish_due(struct lb_ckpt *ck);

/* Writer thread, between batches (no transaction open).  If a finish is
 * due, copy the rest of the WAL here so that the next transaction can
 * restart the WAL from the top: a WAL that never restarts grows without
 * bound.  The writer calls this with idle = true once no job has arrived
 * for LB_CKPT_IDLE_MS, and with idle = false after every batch, when it
 * runs only if the WAL has reached LB_CKPT_FORCE_FACTOR x the threshold
 * (jobs never stop).
 * Returns true if it ran a checkpoint. */
bool lb_ckpt_finish(struct lb_ckpt *ck, sqlite3 *wdb, bool idle);

#define LB_CKPT_IDLE_MS 2
/* Under unbroken load the writer finishes once the WAL holds this many
 * times checkpoint_pages.  Measured with litebus-bench latency (10k
 * events/s, submit->reader p99): 4x 655 us, 8x 385 us, 16x 336 us; 8x
 * keeps the WAL at 32 MB with the default threshold. */
#define LB_CKPT_FORCE_FACTOR 8

/* Writer thread, after a job: put litebus's WAL hook back on `wdb`.
 * Returns false if the job had replaced it.  NULL is a no-op (true). */
bool lb_ckpt_rehook(struct lb_ckpt *ck, sqlite3 *wdb);

/* Unhook, let a running checkpoint finish, join and close.  NULL is a
 * no-op.  Call before the writer closes its connection, so that the
 * writer's close (the last connection) can checkpoint and remove the WAL. */
void lb_ckpt_stop(struct lb_ckpt *ck, sqlite3 *wdb);

#endif
