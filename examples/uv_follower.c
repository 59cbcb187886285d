/* SPDX-License-Identifier: MIT */
/*
 * uv_follower.c - follow a litebus channel from a libuv event loop.
 *
 *   uv_follower [--rows N] [--ring SLOTS] [--db PATH]
 *
 * A litebus_reader's fd (litebus_reader_fd()) goes into the loop as a
 * uv_poll_t.  When libuv says it is readable, the callback takes rows
 * with litebus_reader_next(r, &row, 0) - never blocking the loop - until
 * the reader returns LITEBUS_TIMEOUT: then the fd has turned unreadable
 * and libuv will call again after the next commit.  (The fd is level-
 * triggered in effect, so taking fewer rows and returning is fine too:
 * the callback caps each turn at ROWS_PER_TURN so other handles get the
 * loop as well.)
 *
 * A producer thread (uv_thread_t) commits N rows "tick 1" .. "tick N"
 * with litebus_exec(), one job per ROWS_PER_JOB rows.  The follower
 * checks every row: partition_key 1 .. N in order, each exactly once,
 * event_ids increasing.  With a small ring (--ring 8, the default here)
 * the producer laps the follower whenever the loop is slow to run; the
 * reader then re-reads the missed rows from the outbox table by itself.
 *
 * Shutdown order matters: the fd belongs to the reader and
 * litebus_reader_close() closes it, so the uv_poll_t is stopped and
 * closed first, and the reader is closed in the handle's close callback,
 * once libuv no longer watches the fd.
 *
 * Jobs and done-callbacks run on litebus's writer thread: never touch
 * the loop from there (use uv_async_send() if a done-callback must wake
 * the loop).  This example needs neither: the loop learns about commits
 * through the reader's fd only.
 *
 * Threads: main (the loop), the producer, litebus's own.
 * Exit status: 0 every row checked out, 1 a check or call failed, 2 usage.
 */
/* uv.h uses POSIX types (pthread_rwlock_t) that strict C11 hides. */
#define _POSIX_C_SOURCE 200809L

#include <litebus.h>
#include <uv.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS_PER_JOB 50
#define ROWS_PER_TURN 1000
#define DEADLINE_MS 20000 /* give up rather than hang a test */

struct follower {
	litebus *bus;
	int channel;
	long rows;
	litebus_reader *reader;
	uv_poll_t poll;
	uv_timer_t deadline;
	long seen;	 /* rows checked so far */
	int64_t last_id; /* event_id of the last row */
	uint64_t turns;	 /* poll callbacks */
	uint64_t lags;	 /* laps, read from the reader's stats at the end */
	int failed;
	int producer_status;
};

/* ---- the producer: a plain thread that commits jobs ---------------- */

struct tick_job {
	int channel;
	long first, count;
};

/* Runs on litebus's writer thread, inside a transaction. */
static int
emit_ticks(litebus_tx *tx, void *arg)
{
	const struct tick_job *j = arg;

	for (long i = 0; i < j->count; i++) {
		char payload[32];
		int n =
		    snprintf(payload, sizeof payload, "tick %ld", j->first + i);
		litebus_record rec = {.partition_key = j->first + i,
				      .event_type = "tick",
				      .payload = payload,
				      .payload_len = (size_t)n};
		int rc = litebus_emit(tx, j->channel, &rec, NULL);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

static void
producer_main(void *arg)
{
	struct follower *f = arg;

	for (long next = 1; next <= f->rows; next += ROWS_PER_JOB) {
		struct tick_job j = {f->channel, next, ROWS_PER_JOB};
		if (j.count > f->rows - next + 1)
			j.count = f->rows - next + 1;
		int rc = litebus_exec(f->bus, emit_ticks, &j);
		if (rc != 0) {
			fprintf(stderr, "uv_follower: producer: %s: %s\n",
				litebus_errname(rc), litebus_last_errmsg());
			/* Read by main after uv_thread_join(). */
			f->producer_status = 1;
			return;
		}
	}
}

/* ---- the follower: callbacks on the loop's thread ------------------- */

static void
on_poll_closed(uv_handle_t *h)
{
	struct follower *f = h->data;
	litebus_reader_stats st;

	/* libuv no longer watches the fd: now the reader may close it. */
	if (litebus_reader_stats_get(f->reader, &st) == LITEBUS_OK)
		f->lags = st.lags;
	litebus_reader_close(f->reader);
	f->reader = NULL;
}

/* Stop following: close both handles; uv_run() then returns. */
static void
finish(struct follower *f, bool failed)
{
	if (failed)
		f->failed = 1;
	if (!uv_is_closing((uv_handle_t *)&f->poll)) {
		uv_poll_stop(&f->poll);
		uv_close((uv_handle_t *)&f->poll, on_poll_closed);
	}
	if (!uv_is_closing((uv_handle_t *)&f->deadline)) {
		uv_timer_stop(&f->deadline);
		uv_close((uv_handle_t *)&f->deadline, NULL);
	}
}

static bool
check_row(struct follower *f, const litebus_row *row)
{
	long want = f->seen + 1;
	char expect[32];
	int n = snprintf(expect, sizeof expect, "tick %ld", want);

	if (row->partition_key != want || row->payload_len != (size_t)n ||
	    memcmp(row->payload, expect, (size_t)n) != 0 ||
	    row->event_id <= f->last_id) {
		fprintf(stderr,
			"uv_follower: row %ld: got event_id %" PRId64
			" partition_key %" PRId64
			" (a gap, a duplicate or out of order)\n",
			want, row->event_id, row->partition_key);
		return false;
	}
	f->seen = want;
	f->last_id = row->event_id;
	return true;
}

static void
on_readable(uv_poll_t *h, int status, int events)
{
	struct follower *f = h->data;
	litebus_row row;

	(void)events;
	f->turns++;
	if (status < 0) {
		fprintf(stderr, "uv_follower: poll: %s\n", uv_strerror(status));
		finish(f, true);
		return;
	}
	for (int i = 0; i < ROWS_PER_TURN; i++) {
		int rc = litebus_reader_next(f->reader, &row, 0);
		if (rc == LITEBUS_TIMEOUT)
			return; /* drained: wait for the next commit */
		if (rc != LITEBUS_OK) {
			/* CLOSED cannot happen before we finish: the bus
			 * closes after the loop.  EXPIRED: nothing prunes. */
			fprintf(stderr, "uv_follower: reader: %s: %s\n",
				litebus_errname(rc), litebus_last_errmsg());
			finish(f, true);
			return;
		}
		if (!check_row(f, &row)) {
			finish(f, true);
			return;
		}
		if (f->seen == f->rows) {
			finish(f, false);
			return;
		}
	}
	/* ROWS_PER_TURN taken: let other handles run; the fd is still
	 * readable, so libuv calls again on the next turn. */
}

static void
on_deadline(uv_timer_t *t)
{
	struct follower *f = t->data;

	fprintf(stderr, "uv_follower: only %ld of %ld rows after %d ms\n",
		f->seen, f->rows, DEADLINE_MS);
	finish(f, true);
}

static int
parse_args(int argc, char **argv, long *rows, long *ring, const char **db)
{
	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		long n = v ? strtol(v, &end, 10) : -1;
		bool num_ok = v && *v && *end == '\0' && n > 0;
		if (strcmp(argv[i], "--rows") == 0 && num_ok)
			*rows = n;
		else if (strcmp(argv[i], "--ring") == 0 && num_ok &&
			 n <= (long)LITEBUS_RING_MAX)
			*ring = n;
		else if (strcmp(argv[i], "--db") == 0 && v)
			*db = v;
		else {
			fprintf(stderr, "usage: uv_follower [--rows N] [--ring "
					"SLOTS] [--db PATH]\n");
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const char *const channels[] = {"ticks", NULL};
	struct follower f = {.rows = 20000};
	long ring = 8;
	const char *db = NULL;
	litebus_options o;
	uv_loop_t *loop = uv_default_loop();
	uv_thread_t producer;
	int rc, fd;

	if (parse_args(argc, argv, &f.rows, &ring, &db) != 0)
		return 2;

	litebus_options_init(&o);
	o.path = db; /* NULL: in memory */
	o.ring_capacity = (uint32_t)ring;
	o.channels = channels;
	rc = litebus_open(&o, &f.bus);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "uv_follower: litebus_open: %s: %s\n",
			litebus_errname(rc), litebus_last_errmsg());
		return rc == LITEBUS_EINVAL ? 2 : 1;
	}
	f.channel = litebus_channel_id(f.bus, "ticks");
	rc = f.channel;
	if (rc >= 0)
		rc = litebus_reader_open(f.bus, f.channel, LITEBUS_FROM_START,
					 NULL, &f.reader);
	fd = rc >= 0 ? litebus_reader_fd(f.reader) : rc;
	if (fd < 0) {
		fprintf(stderr, "uv_follower: reader: %s: %s\n",
			litebus_errname(fd), litebus_last_errmsg());
		litebus_reader_close(f.reader);
		litebus_close(f.bus);
		return 1;
	}

	/* uv_poll_init() takes the fd as it is (litebus made it non-blocking
	 * already); the handle never reads it: litebus_reader_next() does. */
	if ((rc = uv_poll_init(loop, &f.poll, fd)) != 0 ||
	    (rc = uv_poll_start(&f.poll, UV_READABLE, on_readable)) != 0 ||
	    (rc = uv_timer_init(loop, &f.deadline)) != 0 ||
	    (rc = uv_timer_start(&f.deadline, on_deadline, DEADLINE_MS, 0)) !=
		0) {
		fprintf(stderr, "uv_follower: libuv: %s\n", uv_strerror(rc));
		return 1;
	}
	f.poll.data = &f;
	f.deadline.data = &f;

	if ((rc = uv_thread_create(&producer, producer_main, &f)) != 0) {
		fprintf(stderr, "uv_follower: thread: %s\n", uv_strerror(rc));
		return 1;
	}
	rc = uv_run(loop, UV_RUN_DEFAULT);
	uv_thread_join(&producer);
	if (rc != 0 || f.producer_status != 0)
		f.failed = 1;
	if (uv_loop_close(loop) != 0)
		f.failed = 1;
	if (litebus_close(f.bus) != LITEBUS_OK)
		f.failed = 1;

	if (f.failed) {
		fprintf(stderr, "uv_follower: FAILED after %ld rows\n", f.seen);
		return 1;
	}
	printf("uv_follower: %ld rows, in order, each exactly once, in %" PRIu64
	       " poll callbacks; lapped %" PRIu64 " times (ring %ld slots)\n",
	       f.seen, f.turns, f.lags, ring);
	return 0;
}
