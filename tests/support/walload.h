/* SPDX-License-Identifier: MIT */
/*
 * walload.h - the WAL-load harness: a load that never pauses, and a
 * monitor that measures the -wal file against the WAL bound.
 *
 * Contract, litebus_options.checkpoint_mode: "The WAL bound, in both modes
 * and whatever the load: the -wal file stays below LITEBUS_WAL_BOUND_FACTOR
 * x checkpoint_pages pages plus the pages of one batch's transaction."
 *
 * Producers commit events of payload_len bytes back to back (exec, or
 * submit with up to 2048 jobs in flight each); live readers follow every
 * row (ids 1, 2, 3, ...), a lagging reader stays 64 events behind so that
 * it is lapped and reads from the table, and scanners are other
 * connections reading the whole table again and again.  A monitor thread
 * stat()s the -wal file about every millisecond; the largest size it saw,
 * and a last sample taken after the load, must not exceed
 *
 *   (FACTOR x checkpoint_pages + pages of the largest batch)
 *       x (page_size + 24) + 32 bytes
 *
 * (a WAL frame is a 24-byte header and one page; the file starts with a
 * 32-byte header).  The pages of a batch are bounded from what the batch
 * held.  The load must also have written target_bounds bounds' worth, so
 * that a test cannot pass by writing too little.
 *
 * Used by tests/reliability/test_wal_bound.c (small checkpoint_pages, a
 * second or two) and tests/stress/stress_wal_bound.c (the defaults).
 * Failures in the threads are recorded (the first one wins) and reported
 * by wal_load_finish() on the test's thread.
 */
#ifndef LB_TEST_WALLOAD_H
#define LB_TEST_WALLOAD_H

#include "fixture.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAL_LOAD_MAX_THREADS 8
#define WAL_LOAD_MAX_PAYLOAD (160u * 1024u)

struct wal_load {
	/* Set by the test, after wal_load_init() gave the defaults (in
	 * brackets), before wal_load_bound() or wal_load_run(). */
	struct bus_fixture *f; /* its bus is open */
	int producers;	       /* [1] */
	bool submit;	       /* producers submit; otherwise exec */
	int readers;	       /* live readers, litebus_reader_next(-1) */
	bool lagging_reader;   /* one more reader, lapped on purpose */
	int scanners;	       /* external connections scanning the table */
	size_t payload_len;    /* [4096] at most WAL_LOAD_MAX_PAYLOAD */
	uint64_t load_ms;      /* [1500] how long the load runs at least */
	uint64_t grace_ms;     /* [FX_WAIT_MS] at most this much longer, until
				* the target is written */
	unsigned target_bounds; /* [4] bounds' worth the load must write */
	/* [false] What counts as written: the payloads committed; if true,
	 * also at least one page per commit (small events), and the message
	 * on a short load says "wrote ... to the WAL". */
	bool count_commit_pages;

	/* Computed by wal_load_bound(). */
	uint32_t page_size;
	uint64_t batch_pages; /* of the largest batch the load can make */
	uint64_t bound;	      /* bytes */
	char wal_path[320];

	/* Shared with the threads. */
	_Atomic bool stop_load;
	_Atomic bool stop_monitor;
	_Atomic uint64_t committed; /* events committed */
	/* Monitor phase: samples count toward wal_max[phase].  Acquire
	 * load in the monitor pairs with the release store in the test, so
	 * a sample read in phase 1 was taken after the switch. */
	_Atomic int phase;
	_Atomic int64_t wal_max[2];
	_Atomic uint64_t samples;
	sem_t inflight; /* submit: free slots */

	/* The first failure seen by a thread, reported by the test. */
	pthread_mutex_t lock;
	char failure[256];
	uint64_t lagging_lags; /* written by the lagging reader */
	uint64_t delivered[WAL_LOAD_MAX_THREADS + 1];
	uint64_t commits_at_close; /* litebus_stats.commits, by finish */
};

struct wal_producer_arg {
	struct wal_load *l;
	struct fx_barrier *start;
};

struct wal_reader_arg {
	struct wal_load *l;
	litebus_reader *r;
	bool lagging;
	int index;
};

/* The threads of one load, between wal_load_start and wal_load_finish. */
struct wal_threads {
	pthread_t monitor, prod[WAL_LOAD_MAX_THREADS],
	    read[WAL_LOAD_MAX_THREADS + 1], scan[WAL_LOAD_MAX_THREADS];
	struct wal_producer_arg pa;
	struct wal_reader_arg ra[WAL_LOAD_MAX_THREADS + 1];
	int nread;
	struct fx_barrier start;
};

/* The page size of the database at `path`, read through a read-only
 * connection. */
uint32_t wal_page_size(const char *path);

/* Zero `l`, give it the defaults and the bus fixture `f`. */
void wal_load_init(struct wal_load *l, struct bus_fixture *f);
/* Compute the bound for the load's largest possible batch: one job per
 * producer with exec (each waits for its own), max_batch with submit. */
void wal_load_bound(struct wal_load *l);
/* Open the readers, start every thread; the producers begin together. */
void wal_load_start(struct wal_load *l, struct wal_threads *t);
/* Stop the producers, take the last sample, close the bus (every job
 * submitted has then completed), let the readers drain and join them;
 * fails the test with the first failure a thread recorded. */
void wal_load_finish(struct wal_load *l, struct wal_threads *t);
/* The checks every load ends with, on the samples of monitor `phase`;
 * `what` names the load in the line printed. */
void wal_load_check(struct wal_load *l, int phase, const char *what);
/* bound, start, run for load_ms (and until the target is written, at
 * most grace_ms more), finish, check phase 0. */
void wal_load_run(struct wal_load *l, const char *what);

/* For a test that drives the load itself: record a failure (the first
 * one wins) and stop the load; has the load been stopped; the size of
 * the -wal file now (0 if there is none). */
void wal_load_fail(struct wal_load *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool wal_load_stopped(struct wal_load *l);
int64_t wal_load_len(struct wal_load *l);

#endif
