/*
 * fixture.h - test fixtures: a bus on a fresh temporary database, start
 * barriers, deadlines, and helpers that commit events.
 *
 * Nothing in the tests synchronizes by sleeping: threads start on a
 * barrier and every wait has a generous deadline and a message.
 */
#ifndef LB_TEST_FIXTURE_H
#define LB_TEST_FIXTURE_H

#include "litebus.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* A generous deadline for anything that should happen "soon". */
#define FX_WAIT_MS 10000

struct bus_fixture {
	char dir[256];	/* temporary directory, removed at teardown */
	char path[300]; /* dir/test.db */
	litebus *bus;
	litebus_options opts;
};

/* cmocka setups: a bus on dir/test.db with 8-slot rings, or default
 * rings; and the teardown that closes it and removes the directory. */
int bus_with_tiny_rings(void **state);
int bus_with_default_rings(void **state);
int bus_teardown(void **state);

/* A fresh temporary directory only (no bus); teardown removes it. */
int tmpdir_setup(void **state);

/* Make a temporary directory into f->dir and set f->path. */
void fx_make_dir(struct bus_fixture *f);
/* Remove f->dir and everything in it. */
void fx_remove_dir(struct bus_fixture *f);
/* Open (or reopen) f->bus on f->path with f->opts. */
void fx_open(struct bus_fixture *f);

/* Commit `count` events on `channel`, one job each (exec), storing their
 * ids in ids[] if not NULL.  Event type is valid for built-in channels;
 * partition_key = i, namespace "ns<i%2>". */
void commit_events(litebus *bus, int channel, int count, int64_t *ids);

/* Commit one job emitting `count` events (one transaction). */
void commit_batch(litebus *bus, int channel, int count, int64_t *ids);

/* A valid event type for a built-in or custom channel. */
const char *fx_event_type(int channel);

/* Number of rows in the channel's outbox table, read through a separate
 * connection. */
int64_t fx_count_rows(const char *path, const char *channel_name);

uint64_t fx_now_ms(void);

/* Open a reader (fails the test with the error if it cannot). */
litebus_reader *fx_reader_open(litebus *bus, int channel, int64_t after,
			       const litebus_filter *filter);
/* The reader's next row must arrive within FX_WAIT_MS and carry `id`. */
void fx_expect_row(litebus_reader *r, int64_t id);
/* Nothing more is waiting: next(0) returns TIMEOUT. */
void fx_expect_no_row(litebus_reader *r);

/* A reusable start barrier. */
struct fx_barrier {
	pthread_barrier_t b;
};
void fx_barrier_init(struct fx_barrier *b, unsigned count);
void fx_barrier_wait(struct fx_barrier *b);
void fx_barrier_destroy(struct fx_barrier *b);

#endif
