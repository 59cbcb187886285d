/* SPDX-License-Identifier: MIT */
/*
 * stats.h - the bus's counters.
 *
 * Every counter is a relaxed atomic: each is exact by itself, none orders
 * anything else, and litebus_stats_get() reads them one by one (no
 * snapshot is promised).  Writer-only counters are bumped with a relaxed
 * load and store (one writer, no read-modify-write needed); counters that
 * subscribers or readers bump use fetch_add.
 */
#ifndef LB_STATS_H
#define LB_STATS_H

#include "arch.h"

#include <stdint.h>

struct lb_stats {
	/* Writer thread only. */
	alignas(LB_CACHELINE) _Atomic uint64_t batches;
	_Atomic uint64_t commits;
	_Atomic uint64_t jobs;
	_Atomic uint64_t jobs_failed;
	_Atomic uint64_t events;
	_Atomic uint64_t busy_retries;
	/* Subscribers and readers (fetch_add), on their own line. */
	alignas(LB_CACHELINE) _Atomic uint64_t sub_lags;
	_Atomic uint64_t sub_skipped;
	_Atomic uint64_t reader_lags;
	/* The checkpointer thread (fetch_add). */
	alignas(LB_CACHELINE) _Atomic uint64_t checkpoints;
	/* The WAL bound (checkpoint.c), writer thread only: RESTART
	 * checkpoints that brought the WAL back under the bound, and those
	 * that gave up after busy_timeout_ms (another connection's read
	 * transaction held the WAL beyond it). */
	_Atomic uint64_t ckpt_forced;
	_Atomic uint64_t ckpt_held;
	/* Checkpoints, on any thread, that failed with anything but
	 * SQLITE_BUSY (fetch_add), and the extended code of the latest. */
	_Atomic uint64_t ckpt_errors;
	_Atomic int ckpt_last_error;
	/* Pruning (retention.c), internal (litebus_stats does not show
	 * them): the pruning jobs that committed having deleted rows (one
	 * transaction each, or a share of one with the application's jobs)
	 * and the rows they deleted, counted by the thread that ran
	 * litebus_exec (the pruner or litebus_prune's caller: fetch_add);
	 * the pruner's passes over the policies, and its pruning jobs that
	 * failed (retried at the next pass), with the status of the
	 * latest. */
	_Atomic uint64_t prune_chunks;
	_Atomic uint64_t pruned_rows;
	_Atomic uint64_t prune_passes;
	_Atomic uint64_t prune_errors;
	_Atomic int prune_last_error;
	/* Mirror of the writer's queue length, stored under its lock. */
	_Atomic uint64_t queued;
};

/* Writer-only increment: one writer, so load + store suffices. */
static inline void
lb_stat_add_w(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* Any-thread increment. */
static inline void
lb_stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#endif
