/*
 * bus.h - the bus object: what litebus_open() builds and every handle
 * points to.
 */
#ifndef LB_BUS_H
#define LB_BUS_H

#include "channel.h"
#include "litebus.h"
#include "outbox.h"
#include "stats.h"

#include <stdbool.h>

struct lb_writer;

struct litebus {
	/* Immutable after litebus_open() returns. */
	litebus_options opts; /* .path and .channels are not kept */
	struct lb_dbname dbn;
	char *canon_path; /* registry key; NULL for in-memory */
	int nchannels;
	struct lb_channel *channels[LITEBUS_MAX_CHANNELS];
	struct lb_writer *writer;
	/* In-memory databases only: a connection held until the bus is
	 * freed, so the database outlives the writer's connection for as
	 * long as any handle (and so any reader_open) can still use it. */
	sqlite3 *mem_keeper;

	/* Memory references (B1, in bus.c): one held for all opens together,
	 * one per subscriber and per reader, one per call in progress.  The
	 * last one frees.  On its own line: every exec and submit touches
	 * it. */
	alignas(LB_CACHELINE) _Atomic uint32_t refs;
	/* Opens not yet closed, and whether the last close is under way
	 * (B2).  File buses: under the registry lock.  In-memory buses are
	 * never shared: only their one opener and closer touch these. */
	alignas(LB_CACHELINE) int open_count;
	bool closing;
	struct litebus *next_open; /* registry list, under its lock */

	struct lb_stats stats;
};

void lb_bus_ref(litebus *bus);
void lb_bus_unref(litebus *bus);

/* The channel for an id, or NULL. */
struct lb_channel *lb_bus_channel(litebus *bus, int channel);

#endif
