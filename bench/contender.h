/* SPDX-License-Identifier: MIT */
/*
 * contender.h - the buses that the end-to-end scenarios (commit, fanout,
 * latency) measure, each as a table of operations, so that a scenario runs
 * one body for every contender and never asks which bus it measures.
 *
 * A contender is a bus that commits events with one key each (bench.h's
 * row) and hands them to consumers: readers (every committed event, in
 * order) and raw subscribers (what the ring still holds; LAGGED when
 * lapped).  Two instances: contender_litebus (contender_litebus.c) and
 * contender_naive (baseline_naive.c).
 *
 * Life of one run: open; attach every consumer; producers call exec or
 * submit; stats; end (consumers drain, then see CLOSED); detach every
 * consumer; close.  Setup failures exit the program (a benchmark cannot go
 * on), as everywhere in litebus-bench.
 *
 * Handles are void *: each contender has its own bus and consumer types.
 *
 * Threads: exec and submit from any thread; one consumer by one thread at
 * a time; the rest from the thread that opened the bus.
 */
#ifndef BENCH_CONTENDER_H
#define BENCH_CONTENDER_H

#include "litebus.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum contender_kind {
	CONTENDER_READER, /* every committed event, in order */
	CONTENDER_SUB,	  /* raw subscriber, reading */
	CONTENDER_IDLE	  /* raw subscriber attached, never reading */
};

/* What one consumer's next call returned. */
struct contender_delivery {
	int64_t event_id;
	uint64_t key;
	/* The full subject (readers' rows) or its prefix (ring events),
	 * subject_len the full length; valid until the consumer's next
	 * call. */
	const unsigned char *subject;
	size_t subject_len;
	uint64_t skipped; /* after LITEBUS_LAGGED: events the lap skipped */
};

struct contender {
	const char *name; /* "litebus", "naive"; names its database file */

	/* A bus on a fresh database file at path with the "bench" channel
	 * (or table) and rings of ring_capacity slots. */
	void *(*open)(const char *path, int durability, uint32_t ring_capacity);
	/* Commit one event with this key and publish it; returns once it
	 * is committed: 0, or a litebus error. */
	int (*exec)(void *bus, uint64_t key);
	/* Hand over one event with this key; done(status, arg) runs once
	 * it is committed and published (status 0) or has failed, on any
	 * thread, possibly before submit returns.  Returns LITEBUS_OK, or
	 * an error and done never runs. */
	int (*submit)(void *bus, uint64_t key, void (*done)(int, void *),
		      void *arg);

	/* Attach a consumer; what it delivers starts with the next event
	 * committed.  NULL for a consumer that needs nothing attached. */
	void *(*attach)(void *bus, enum contender_kind kind);
	/* The consumer's next event: LITEBUS_OK (*d filled), LAGGED
	 * (d->skipped), TIMEOUT after timeout_ms, CLOSED once the bus has
	 * ended and everything was delivered, or a negative error. */
	int (*next)(void *consumer, struct contender_delivery *d,
		    int timeout_ms);
	/* Laps a reader recovered from without returning LAGGED. */
	uint64_t (*reader_lags)(const void *consumer);
	/* Rows a reader delivered from memory rather than from the table
	 * (litebus_reader_stats.memory_rows); 0 for a contender that has no
	 * such thing. */
	uint64_t (*reader_memory_rows)(const void *consumer);
	/* A subscriber's own count of what it received and skipped, to
	 * compare with the caller's; false if the contender keeps none. */
	bool (*sub_stats)(const void *consumer, uint64_t *received,
			  uint64_t *skipped);
	/* Free a consumer (NULL: nothing); after end or before. */
	void (*detach)(void *consumer);

	/* The bus's own counters; false if the contender keeps none. */
	bool (*stats)(void *bus, litebus_stats *st);
	/* No more events: consumers drain, then see CLOSED. */
	void (*end)(void *bus);
	/* Free the bus, after end and after every consumer is detached. */
	void (*close)(void *bus);
};

extern const struct contender contender_litebus;
extern const struct contender contender_naive;

/* contender_litebus's subscriber steps, also used by the ring scenario's
 * subscribers: litebus_recv into *ev, as a delivery (d->subject points
 * into *ev); and litebus_sub_stats_get as received and skipped. */
int contender_litebus_recv(litebus_sub *sub, litebus_event *ev,
			   struct contender_delivery *d, int timeout_ms);
bool contender_litebus_sub_stats(const litebus_sub *sub, uint64_t *received,
				 uint64_t *skipped);

#endif
