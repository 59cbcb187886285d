/*
 * retention.h - retention policies, the pruner thread, litebus_prune and
 * litebus_channel_head.
 */
#ifndef LB_RETENTION_H
#define LB_RETENTION_H

#include "litebus.h"

struct litebus;
struct lb_retention;

/* Check o->retention, o->prune_batch_rows and o->prune_interval_ms for
 * litebus_open (EINVAL with the thread's error set): every policy names a
 * channel of the open (built-in or in o->channels, ignoring case) at most
 * once, and no limit is negative.  o->channels must already be valid. */
int lb_retention_check_options(const litebus_options *o);

/* A bus's retention: its policies, copied from o->retention and resolved
 * to the bus's channel ids, and its pruner thread (not started yet).
 * `bus` is borrowed until lb_retention_free (its channels must exist).
 * Any thread; litebus_open's. */
int lb_retention_new(struct litebus *bus, const litebus_options *o,
		     struct lb_retention **out);

/* Start the pruner thread if some policy has a limit; after the writer
 * started.  Returns OK or ENOMEM/EAGAIN-like failures as ENOMEM. */
int lb_retention_start(struct lb_retention *rt);

/* Wake the pruner thread, let its current pruning job end, and join it.
 * Before lb_writer_stop (the pruner runs jobs through litebus_exec).
 * Idempotent; NULL and a pruner that never started are no-ops.  Not on
 * the bus's writer thread. */
void lb_retention_stop(struct lb_retention *rt);

/* Free (after lb_retention_stop).  NULL is a no-op. */
void lb_retention_free(struct lb_retention *rt);

#endif
