/* SPDX-License-Identifier: MIT */
/*
 * watcher.h - one thread per file bus that notices commits made by other
 * connections to the file and wakes the readers of the channels that
 * moved (litebus.h, "Commits made elsewhere").
 */
#ifndef LB_WATCHER_H
#define LB_WATCHER_H

#include "channel.h"
#include "outbox.h"

#include <stdint.h>

struct lb_watcher;

struct lb_watcher_config {
	const struct lb_dbname *dbn;	    /* a file; borrowed for the life of
					       the watcher */
	struct lb_channel *const *channels; /* borrowed likewise */
	int nchannels;
	int mode;	      /* LITEBUS_WATCH_AUTO or _POLL */
	uint32_t interval_ms; /* litebus_options.watch_interval_ms */
	/* The bus writer's commit sequence (writer.c, W8; stays 0 on a
	 * read-only bus). */
	const _Atomic uint64_t *commit_seq;
};

/* What the watcher did, for tests, the benchmark and metrics.  Relaxed
 * counters: each is exact by itself. */
struct lb_watcher_stats {
	uint64_t wakeups;    /* times the thread woke with followers */
	uint64_t checks;     /* data_version reads */
	uint64_t head_reads; /* checks that found data_version changed and
				read the followed channels' heads */
	uint64_t raises;     /* file_head raises (channels x checks) */
	uint64_t errors;     /* failed checks (retried at the next wake) */
	int inotify;	     /* 1 while inotify reports -wal writes */
};

/* Start the thread (it sleeps until a channel has followers).  OK, or
 * ENOMEM / a system error with the thread's error text set. */
int lb_watcher_start(const struct lb_watcher_config *cfg,
		     struct lb_watcher **out);
/* Stop and join the thread (not from the thread itself); NULL is a
 * no-op.  The memory stays until lb_watcher_free: followers may still
 * call lb_watcher_unfollow. */
void lb_watcher_stop(struct lb_watcher *w);
void lb_watcher_free(struct lb_watcher *w);

/* Any thread: a reader or consumer starts / stops following `ch` (X2).
 * w may be NULL (no watcher: in memory, or LITEBUS_WATCH_OFF). */
void lb_watcher_follow(struct lb_watcher *w, struct lb_channel *ch);
void lb_watcher_unfollow(struct lb_watcher *w, struct lb_channel *ch);

void lb_watcher_stats_get(const struct lb_watcher *w,
			  struct lb_watcher_stats *st);

#endif
