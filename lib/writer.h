/* SPDX-License-Identifier: MIT */
/*
 * writer.h - the writer thread: jobs in, transactions, publish.
 */
#ifndef LB_WRITER_H
#define LB_WRITER_H

#include "channel.h"
#include "jobs.h"
#include "litebus.h"
#include "outbox.h"
#include "stats.h"

#include <stdbool.h>
#include <stdint.h>

struct litebus;
struct lb_writer;

/* Everything a writer works with, handed to it by its owner (bus.c).
 * Every pointer is borrowed and must stay valid until lb_writer_free(). */
struct lb_writer_config {
	/* Whose writer this is: compared by lb_writer_is_current(), never
	 * dereferenced. */
	const struct litebus *owner;
	const struct lb_dbname *dbn;
	/* durability, adopt, busy_timeout_ms, max_batch, checkpoint_*. */
	const litebus_options *opts;
	struct lb_channel *const *channels; /* channel id -> channel */
	int nchannels;
	struct lb_stats *stats;
	struct lb_jobq *jobs; /* the writer takes jobs from here */
	uint32_t fork_gen;    /* the owner's (fork.h) */
	/* W8: odd while a COMMIT of the writer is under way and its
	 * committed ids are not stored yet (watcher.c, X3). */
	_Atomic uint64_t *commit_seq;
};

/* Open the write connection (schema, statements), read the channels'
 * next event ids and start each channel there (lb_channel_start), and
 * start the writer thread.  On failure nothing is left open and the
 * thread's error is set.  Not on a writer thread. */
int lb_writer_start(const struct lb_writer_config *cfg, struct lb_writer **out);

/* Close the job queue, let the queued jobs run, publish, close every
 * channel and join the thread.  Not on the writer thread.  NULL: no-op. */
void lb_writer_stop(struct lb_writer *w);
void lb_writer_free(struct lb_writer *w);

/* For litebus's own statements inside a job (consumer.c, retention.c):
 * the writer's outbox, if `tx` runs a job on this thread, of `owner`'s
 * writer (NULL: any), and the job's transaction is still alive.
 * Otherwise NULL with the thread's error set (EINVAL, EFORKED, EMISUSE,
 * ESQLITE), `call` naming the public function. */
struct lb_outbox *lb_writer_tx_outbox(litebus_tx *tx,
				      const struct litebus *owner,
				      const char *call);
/* The time the running batch began (ms since the Unix epoch): what
 * committed_at_ms says of its rows.  Writer thread, inside a job. */
int64_t lb_writer_tx_now_ms(litebus_tx *tx);

/* Is the calling thread the writer of `owner`?  Any thread. */
bool lb_writer_is_current(const struct litebus *owner);

#endif
