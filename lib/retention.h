/* SPDX-License-Identifier: MIT */
/*
 * retention.h - retention policies, the pruner thread, litebus_prune and
 * litebus_channel_head.
 */
#ifndef LB_RETENTION_H
#define LB_RETENTION_H

#include "channel.h"
#include "litebus.h"
#include "outbox.h"
#include "stats.h"

#include <stdbool.h>
#include <stdint.h>

struct lb_retention;

/* What the pruner works with, handed to it by its owner (bus.c).  Every
 * pointer is borrowed and must stay valid until lb_retention_free(),
 * except opts (read by lb_retention_new only). */
struct lb_retention_config {
	litebus *bus;		     /* where pruning jobs run (litebus_exec) */
	const litebus_options *opts; /* retention, prune_batch_rows, ... */
	struct lb_channel *const *channels; /* channel id -> channel */
	int nchannels;
	struct lb_stats *stats;
};

/* Check o->retention, o->prune_batch_rows and o->prune_interval_ms for
 * litebus_open (EINVAL with the thread's error set): every policy names a
 * channel of the open (built-in or in o->channels, ignoring case) at most
 * once, and no limit is negative.  o->channels must already be valid. */
int lb_retention_check_options(const litebus_options *o);

/* A bus's retention: its policies, copied from cfg->opts->retention and
 * resolved to channel ids, and its pruner thread (not started yet).
 * litebus_open's thread. */
int lb_retention_new(const struct lb_retention_config *cfg,
		     struct lb_retention **out);

/* Start the pruner thread if some policy has a limit; after the writer
 * started.  Returns OK, or ENOMEM if the thread could not start. */
int lb_retention_start(struct lb_retention *rt);

/* Wake the pruner thread, let its current pruning job end, and join it.
 * Before lb_writer_stop (the pruner runs jobs through litebus_exec).
 * Idempotent; NULL and a pruner that never started are no-ops.  Not on
 * the bus's writer thread. */
void lb_retention_stop(struct lb_retention *rt);

/* Free (after lb_retention_stop).  NULL is a no-op. */
void lb_retention_free(struct lb_retention *rt);

/* litebus_prune, once its arguments were checked and the caller holds a
 * reference to the bus: prune `channel` below before_event_id (>= 1) in
 * chunks, each a job.  Not on the writer thread.  Litebus status. */
int lb_retention_prune(struct lb_retention *rt, int channel,
		       int64_t before_event_id);

/* litebus_channel_head's read, on a new read connection to `dbn` (B5
 * checked by the caller): the channel's head and oldest retained id, in
 * one read transaction, waiting out other connections' locks for
 * busy_timeout_ms unless on_writer.  Litebus status. */
int lb_retention_read_head(const struct lb_dbname *dbn, const char *name,
			   uint32_t busy_timeout_ms, bool on_writer,
			   int64_t *head, int64_t *oldest);

#endif
