/* SPDX-License-Identifier: MIT */
/*
 * bus.h - the bus object: what litebus_open() builds and every handle
 * points to.
 */
#ifndef LB_BUS_H
#define LB_BUS_H

#include "channel.h"
#include "fork.h"
#include "jobs.h"
#include "litebus.h"
#include "outbox.h"
#include "stats.h"

#include <stdbool.h>
#include <sys/types.h>

struct lb_retention;
struct lb_writer;

/* The word `refs` (B1, in bus.c): a count of memory references in the low
 * bits, and two flags.  CLOSED is set by the last litebus_close() as it
 * begins; DEAD is set by the unref that takes the count to zero, in the
 * same atomic step, and the bus is then buried (B3).  lb_bus_tryref()
 * fails once either is set. */
#define LB_REFS_DEAD (1u << 31)
#define LB_REFS_CLOSED (1u << 30)
#define LB_REFS_COUNT (LB_REFS_CLOSED - 1u)

struct litebus {
	/* Immutable after litebus_open() returns, until the bus is buried
	 * (B3), which frees what they point to and clears them. */
	/* .path, .channels and .retention are not kept (the policies are
	 * copied into `retention`). */
	litebus_options opts;
	struct lb_dbname dbn;
	char *canon_path; /* the path of the first open; NULL for in-memory */
	int nchannels;
	struct lb_channel *channels[LITEBUS_MAX_CHANNELS];
	struct lb_writer *writer;
	/* Commits made by other connections (watcher.c); NULL for in-memory
	 * buses and LITEBUS_WATCH_OFF.  Stopped by the last close, freed
	 * when the bus is buried (readers unfollow until then). */
	struct lb_watcher *watcher;
	/* Retention policies and the pruner thread (retention.c). */
	struct lb_retention *retention;
	/* In-memory databases only: a connection held until the bus is
	 * buried, so the database outlives the writer's connection for as
	 * long as any handle (and so any reader_open) can still use it. */
	sqlite3 *mem_keeper;

	/* Immutable for the life of the process (they stay valid in the
	 * tombstone, B3): the registry key of a file bus (B4), and the fork
	 * generation the bus was made in (F1). */
	dev_t dev;
	ino_t ino;
	uint32_t fork_gen;

	/* Memory references and the CLOSED and DEAD flags (B1, B3).  On its
	 * own line: every exec and submit touches it. */
	alignas(LB_CACHELINE) _Atomic uint32_t refs;
	/* Opens not yet closed, and whether the last close is under way
	 * (B2).  Under the registry lock, for every bus. */
	alignas(LB_CACHELINE) int open_count;
	bool closing;
	/* The registry list (under its lock) while the bus is registered;
	 * the tombstone list once buried (B3); in a forked child, the list
	 * of files inherited from the parent (F2). */
	struct litebus *next_open;

	/* Callers -> the writer (jobs.c).  Initialized before the writer
	 * starts and finalized when the bus is buried (B3); has_jobs says
	 * whether it was.  On its own lines: every exec and submit takes its
	 * lock. */
	alignas(LB_CACHELINE) struct lb_jobq jobs;
	bool has_jobs;

	struct lb_stats stats;
	/* The writer's commit sequence (writer.c, W8), read by the watcher
	 * (X3). */
	_Atomic uint64_t commit_seq;
};

/* Was `bus` (or the subscriber or reader that points to it) made by
 * another process, i.e. inherited across fork() (F1)?  Any thread, any
 * handle (a tombstone too). */
static inline bool
lb_bus_forked(const struct litebus *bus)
{
	return lb_fork_is_inherited(bus->fork_gen);
}

/*
 * Take a reference for a call that starts on a handle (B1): false, with
 * the thread's error set to ECLOSED naming `call`, if the bus's last close
 * has begun or its memory was released.  Safe on a tombstone (B3).
 * Public entry points (exec, submit, subscribe, reader_open) use this;
 * it is an external function, so tests can interpose on it at link time.
 */
bool lb_bus_tryref(litebus *bus, const char *call);

/* Take one more reference while the caller already holds one (a call in
 * progress creating a subscriber or reader).  Never fails. */
void lb_bus_ref(litebus *bus);

/* Drop a reference; the last one buries the bus (B3).  Never call it with
 * the registry lock held: burying takes that lock. */
void lb_bus_unref(litebus *bus);

/* B5: does the bus's path still name its file?  OK, or ECANTOPEN with the
 * thread's error set (in memory: always OK).  Before opening another
 * connection by that path. */
int lb_bus_check_file(litebus *bus, const char *call);

/* A read-only bus (litebus_options.read_only): no writer, no jobs queue,
 * no retention.  Safe on a tombstone (opts stays). */
static inline bool
lb_bus_read_only(const struct litebus *bus)
{
	return bus->opts.read_only != 0;
}

/* EREADONLY, with the thread's error naming `call`. */
int lb_bus_readonly_err(const char *call);

/* A reader or consumer starts / stops following `ch` (watcher.c, X2).
 * The caller holds a reference. */
void lb_bus_follow(litebus *bus, struct lb_channel *ch);
void lb_bus_unfollow(litebus *bus, struct lb_channel *ch);

/* The channel for an id, or NULL.  The caller holds a reference. */
struct lb_channel *lb_bus_channel(litebus *bus, int channel);

#endif
