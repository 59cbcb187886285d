/* SPDX-License-Identifier: MIT */
/*
 * stats.h - the bus's counters.
 *
 * Every counter is a relaxed atomic: each is exact by itself, none orders
 * anything else, and litebus_stats_get() reads them one by one (no
 * snapshot is promised).  Writer-only counters are bumped with a relaxed
 * load and store (one writer, no read-modify-write needed); counters that
 * subscribers or readers bump use fetch_add.
 *
 * Two histograms, recorded by the writer at each transaction (writer.c)
 * and read by litebus_metrics_format (metrics.c): jobs per transaction
 * and COMMIT duration.  Each has fixed bucket bounds (below), one
 * non-cumulative counter per bucket plus one past the last bound, and a
 * sum.  Why relaxed is enough: every word has a single writer (the writer
 * thread, load + store), each word is a monotonic count that orders no
 * other memory, and the reader makes its output self-consistent from the
 * very values it loaded - the cumulative buckets and _count are sums of
 * the same loads, so _count equals the +Inf bucket and buckets never
 * decrease along `le` whatever the writer does meanwhile.  Only _sum may
 * be a few observations ahead of or behind the buckets (it is loaded
 * separately); Prometheus asks no more of a scrape.  A thread that
 * waited for a job (litebus_exec) sees the words its transaction
 * recorded: the writer stores them before it completes the job, and the
 * completion is a release that exec's wake-up acquires (jobs.c).
 */
#ifndef LB_STATS_H
#define LB_STATS_H

#include "arch.h"

#include <stddef.h>
#include <stdint.h>

/* Bucket upper bounds (inclusive, as Prometheus's `le`): jobs per
 * transaction 1, 2, 4, ..., 1024; COMMIT duration from 10 us to 10 s. */
#define LB_HIST_BATCH_N 11
#define LB_HIST_COMMIT_N 19

static inline uint64_t
lb_hist_batch_bound(size_t i)
{
	return (uint64_t)1 << i;
}

static inline uint64_t
lb_hist_commit_bound_ns(size_t i)
{
	static const uint64_t bound_ns[LB_HIST_COMMIT_N] = {
	    10000,	25000,	    50000,	100000,	    250000,
	    500000,	1000000,    2500000,	5000000,    10000000,
	    25000000,	50000000,   100000000,	250000000,  500000000,
	    1000000000, 2500000000, 5000000000, 10000000000};

	return bound_ns[i];
}

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
	/* The histograms (see the top of this file).  Writer thread only. */
	alignas(LB_CACHELINE) _Atomic uint64_t batch_jobs[LB_HIST_BATCH_N + 1];
	_Atomic uint64_t batch_jobs_sum;
	_Atomic uint64_t commit_ns[LB_HIST_COMMIT_N + 1];
	_Atomic uint64_t commit_ns_sum;
};

/* Writer-only increment: one writer, so load + store suffices. */
static inline void
lb_stat_add_w(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* Writer-only: one observation into a histogram of n buckets (bucket n
 * counts what lies above the last bound). */
static inline void
lb_hist_add_w(_Atomic uint64_t *buckets, size_t n, _Atomic uint64_t *sum,
	      uint64_t (*bound)(size_t), uint64_t v)
{
	size_t i = 0;

	while (i < n && v > bound(i))
		i++;
	lb_stat_add_w(&buckets[i], 1);
	lb_stat_add_w(sum, v);
}

/* Any-thread increment. */
static inline void
lb_stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#endif
