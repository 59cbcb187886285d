/* SPDX-License-Identifier: MIT */
/*
 * contender_litebus.c - litebus as a contender (contender.h): one job per
 * event (bench_emit_job), litebus_exec or litebus_submit; readers are
 * litebus_reader from the start, subscribers litebus_sub.
 */
#include "bench.h"
#include "contender.h"

#include <stdio.h>
#include <stdlib.h>

struct lb_consumer {
	litebus_reader *reader; /* a reader, or */
	litebus_sub *sub;	/* a subscriber */
	litebus_event ev;	/* the last event, for its subject prefix */
};

int
contender_litebus_recv(litebus_sub *sub, litebus_event *ev,
		       struct contender_delivery *d, int timeout_ms)
{
	int rc = litebus_recv(sub, ev, timeout_ms);

	if (rc == LITEBUS_OK) {
		d->event_id = ev->event_id;
		d->key = (uint64_t)ev->partition_key;
		d->subject = ev->subject_prefix;
		d->subject_len = ev->subject_len;
	} else if (rc == LITEBUS_LAGGED) {
		d->skipped = litebus_sub_skipped(sub);
	}
	return rc;
}

bool
contender_litebus_sub_stats(const litebus_sub *sub, uint64_t *received,
			    uint64_t *skipped)
{
	litebus_sub_stats ss;

	litebus_sub_stats_get(sub, &ss);
	*received = ss.received;
	*skipped = ss.skipped;
	return true;
}

static void *
lb_open(const char *path, int durability, uint32_t ring_capacity)
{
	return bench_open_bus(path, durability, ring_capacity);
}

static int
lb_exec(void *bus, uint64_t key)
{
	return litebus_exec(bus, bench_emit_job, (void *)(uintptr_t)key);
}

static int
lb_submit(void *bus, uint64_t key, void (*done)(int, void *), void *arg)
{
	return litebus_submit(bus, bench_emit_job, (void *)(uintptr_t)key, done,
			      arg);
}

static void *
lb_attach(void *bus, enum contender_kind kind)
{
	struct lb_consumer *c = calloc(1, sizeof *c);

	if (c == NULL) {
		fprintf(stderr, "litebus-bench: out of memory\n");
		exit(2);
	}
	if (kind == CONTENDER_READER)
		bench_litebus_check(litebus_reader_open(bus, BENCH_CHANNEL_ID,
							LITEBUS_FROM_START,
							NULL, &c->reader),
				    "litebus_reader_open");
	else
		bench_litebus_check(
		    litebus_subscribe(bus, BENCH_CHANNEL_ID, &c->sub),
		    "litebus_subscribe");
	return c;
}

static int
lb_next(void *consumer, struct contender_delivery *d, int timeout_ms)
{
	struct lb_consumer *c = consumer;
	int rc;

	if (c->reader != NULL) {
		litebus_row row;

		rc = litebus_reader_next(c->reader, &row, timeout_ms);
		if (rc == LITEBUS_OK) {
			d->event_id = row.event_id;
			d->key = (uint64_t)row.partition_key;
			d->subject = row.subject;
			d->subject_len = row.subject_len;
		}
		return rc;
	}
	return contender_litebus_recv(c->sub, &c->ev, d, timeout_ms);
}

/* A litebus reader never returns LAGGED and the benchmark has always
 * reported its laps as 0: its own count (litebus_reader_stats.lags) is
 * not read here, so that the figures stay comparable. */
static uint64_t
lb_reader_lags(const void *consumer)
{
	(void)consumer;
	return 0;
}

static uint64_t
lb_reader_memory_rows(const void *consumer)
{
	const struct lb_consumer *c = consumer;
	litebus_reader_stats st;

	if (c->reader == NULL)
		return 0;
	bench_litebus_check(litebus_reader_stats_get(c->reader, &st),
			    "litebus_reader_stats_get");
	return st.memory_rows;
}

static bool
lb_sub_stats(const void *consumer, uint64_t *received, uint64_t *skipped)
{
	const struct lb_consumer *c = consumer;

	return contender_litebus_sub_stats(c->sub, received, skipped);
}

static void
lb_detach(void *consumer)
{
	struct lb_consumer *c = consumer;

	if (c == NULL)
		return;
	litebus_reader_close(c->reader);
	litebus_unsubscribe(c->sub);
	free(c);
}

static bool
lb_stats(void *bus, litebus_stats *st)
{
	bench_litebus_check(litebus_stats_get(bus, st), "litebus_stats_get");
	return true;
}

/* litebus_close ends and frees the bus; readers and subscribers may still
 * drain and be closed afterwards. */
static void
lb_end(void *bus)
{
	litebus_close(bus);
}

static void
lb_close(void *bus)
{
	(void)bus;
}

const struct contender contender_litebus = {
    .name = "litebus",
    .open = lb_open,
    .exec = lb_exec,
    .submit = lb_submit,
    .attach = lb_attach,
    .next = lb_next,
    .reader_lags = lb_reader_lags,
    .reader_memory_rows = lb_reader_memory_rows,
    .sub_stats = lb_sub_stats,
    .detach = lb_detach,
    .stats = lb_stats,
    .end = lb_end,
    .close = lb_close,
};
