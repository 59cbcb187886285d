/* SPDX-License-Identifier: MIT */
/*
 * model.h - a randomized model check of litebus's public contract: a
 * decoder that turns bytes into a sequence of legal API operations, an
 * executor that runs them on a real bus, and a simple model of what
 * committed that every observation is checked against.  test_model
 * (unit), stress_model (stress) and fuzz_ops (libFuzzer) share it.
 *
 * Operations (4 bytes each: kind, then three argument bytes): jobs that
 * emit on random channels with random keys, namespaces and tags, fail on
 * purpose, undo an emit with their own savepoint, write their own table;
 * bursts of such jobs from several threads at once (exec and submit: group
 * commit) while a reader follows; readers opened from the start, from a
 * committed id or from now, with random filters, read a few rows at a
 * time (slow) or to the end (fast), checked, closed; subscribers
 * subscribed, drained, unsubscribed; durable consumers opened, read,
 * acknowledged (ack, flush, ack_tx in a job), closed and reopened;
 * litebus_prune; closing and reopening the bus (readers left open across
 * the close drain and report CLOSED); a second open of the same file; a
 * count of the application's own table.
 *
 * What is checked (the model is updated only when a job is
 * acknowledged):
 *   readers     exactly the committed rows matching the filter after the
 *               start, in id order, no gap, no duplicate, each with its
 *               committed fields, except ranges reported EXPIRED, which
 *               lie below what was pruned; FROM_NOW starts at or after
 *               every acknowledged commit; CLOSED only after everything.
 *   subscribers in order, each LAGGED skipping exactly what it reports:
 *               received + skipped = published since subscribing.
 *   consumers   a reopened consumer resumes right after its durable
 *               position (acks made durable by flush, close or ack_tx);
 *               delivery as a reader's; pruning never removes a row a
 *               consumer has not acknowledged.
 *   jobs        a failed job leaves nothing (its own table, its events);
 *               emits undone by a savepoint are never delivered.
 *
 * Threads: one model is driven by one thread; bursts start and join
 * their own threads.  Uses only the public API (and SQLite), so the
 * fuzz target links it without the test fixture.
 */
#ifndef LB_TEST_MODEL_H
#define LB_TEST_MODEL_H

#include <stddef.h>
#include <stdint.h>

struct model_config {
	const char *path; /* database file (removed first, with -wal/-shm) */
	int threads;	  /* producers in a burst; <= 1: all on the
			     calling thread, so a byte string always runs
			     the same way */
	int durability;	  /* LITEBUS_DURABILITY_* */
};

struct model;

/* A model with its bus open on cfg->path, or NULL (the reason on
 * stderr). */
struct model *model_new(const struct model_config *cfg);
/* Decode ops[0..len) into operations and run them; stops at the first
 * broken promise.  Returns 0, or -1 (model_error() says what). */
int model_run(struct model *m, const uint8_t *ops, size_t len);
/* Check and close everything, then reopen the file and check that every
 * committed row is there.  Returns 0 or -1. */
int model_finish(struct model *m);
/* The first broken promise, or "" if none. */
const char *model_error(const struct model *m);
/* Operations executed so far. */
uint64_t model_ops(const struct model *m);
/* Close whatever is still open and free. */
void model_free(struct model *m);

/* Bytes per operation. */
#define MODEL_OP_BYTES 4

#endif
