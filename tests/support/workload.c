/* SPDX-License-Identifier: MIT */
/*
 * workload.c - see workload.h.
 */
#include "workload.h"
#include "oracle.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define PRODUCERS 3
#define JOBS 10
#define EV_PER_JOB 3
#define MAX_ROWS (PRODUCERS * JOBS * EV_PER_JOB + 16)
/* The oracle's log of the main thread (the heal job). */
#define MAIN_LOG PRODUCERS

/* The oracle's key of a row: the token of its job (-1 for the heal job),
 * which rows carry as payload and as partition_key. */
static uint64_t
token_key(int64_t token)
{
	return (uint64_t)token;
}

struct job {
	int token; /* producer * 1000 + index */
	int fail;
	int status;
	int64_t ids[EV_PER_JOB];
	int channel[EV_PER_JOB];
};

static int
job_fn(litebus_tx *tx, void *arg)
{
	struct job *j = arg;

	for (int i = 0; i < EV_PER_JOB; i++) {
		litebus_record rec = {0};
		j->channel[i] = i == 2 ? LITEBUS_LEASE_HISTORY
				       : LITEBUS_COMPLETION;
		rec.partition_key = j->token;
		rec.event_type = fx_event_type(j->channel[i]);
		rec.payload = &j->token;
		rec.payload_len = sizeof j->token;
		int rc = litebus_emit(tx, j->channel[i], &rec, &j->ids[i]);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return j->fail ? JOB_FAILED : 0;
}

struct producer {
	litebus *bus;
	struct oracle *oracle; /* I3: this producer records in log `index` */
	int index;
	struct job jobs[JOBS];
};

static void *
producer_main(void *p)
{
	struct producer *pr = p;

	for (int i = 0; i < JOBS; i++) {
		struct job *j = &pr->jobs[i];

		j->status = litebus_exec(pr->bus, job_fn, j);
		for (int e = 0; j->status == 0 && e < EV_PER_JOB; e++)
			if (j->channel[e] == LITEBUS_COMPLETION)
				oracle_commit(pr->oracle, pr->index, j->ids[e],
					      token_key(j->token));
	}
	return NULL;
}

struct follower {
	litebus *bus;
	struct oracle_consumer *reader, *sub; /* what r and s delivered */
	int reader_rc, sub_rc;
	litebus_reader *r;
	litebus_sub *s;
};

/* Follow until CLOSED; retry transient errors (the cursor is unchanged). */
static void *
follower_main(void *p)
{
	struct follower *f = p;
	litebus_row row;
	litebus_event ev;
	bool rdone = false, sdone = false;
	int errors = 0;

	while (!rdone || !sdone) {
		if (!rdone) {
			int rc = litebus_reader_next(f->r, &row, 5);
			if (rc == LITEBUS_OK) {
				int token = 0;

				if (row.payload_len == sizeof token)
					memcpy(&token, row.payload,
					       sizeof token);
				else
					oracle_consumer_fail(
					    f->reader,
					    "id %lld has a payload of %zu "
					    "bytes",
					    (long long)row.event_id,
					    row.payload_len);
				oracle_saw(f->reader, row.event_id,
					   token_key(token));
			} else if (rc == LITEBUS_CLOSED) {
				rdone = true;
			} else if (rc < 0 && ++errors > 10000) {
				f->reader_rc = rc;
				rdone = true;
			}
		}
		if (!sdone) {
			int rc = litebus_recv(f->s, &ev, 0);
			if (rc == LITEBUS_OK)
				oracle_saw(f->sub, ev.event_id,
					   token_key(ev.partition_key));
			else if (rc == LITEBUS_LAGGED)
				oracle_lagged(f->sub,
					      litebus_sub_skipped(f->s));
			else if (rc == LITEBUS_CLOSED)
				sdone = true;
			else if (rc < 0)
				f->sub_rc = rc;
		}
	}
	return NULL;
}

bool
wl_documented_error(int rc)
{
	return rc == JOB_FAILED || rc == LITEBUS_ESQLITE ||
	       rc == LITEBUS_EBUSY || rc == LITEBUS_ENOSPC ||
	       rc == LITEBUS_EIO || rc == LITEBUS_ENOMEM ||
	       rc == LITEBUS_ECANTOPEN || rc == LITEBUS_ENOTDB ||
	       rc == LITEBUS_EREADONLY;
}

struct table_row {
	int64_t id;
	int token;
};

static size_t
read_table(const char *path, const char *chan, struct table_row *rows)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[160];
	size_t n = 0;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	snprintf(sql, sizeof sql,
		 "SELECT event_id, payload FROM litebus_outbox_%s ORDER BY "
		 "event_id",
		 chan);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && n < MAX_ROWS) {
		rows[n].id = sqlite3_column_int64(st, 0);
		assert_int_equal(sqlite3_column_bytes(st, 1), sizeof(int));
		memcpy(&rows[n].token, sqlite3_column_blob(st, 1), sizeof(int));
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

int
wl_heal_job(litebus_tx *tx, void *arg)
{
	litebus_record rec = {0};

	rec.partition_key = -1;
	rec.event_type = "success";
	rec.payload = &(int){-1};
	rec.payload_len = sizeof(int);
	return litebus_emit(tx, LITEBUS_COMPLETION, &rec, arg);
}

/* I3: the reader and the subscriber against what committed; so is the
 * table, read back after the run, as one more reader. */
static void
check_consumers(struct oracle *o, const struct follower *fol,
		const struct table_row *rows, size_t n, const char *label)
{
	struct oracle_consumer *table =
	    oracle_reader_new(o, "table litebus_outbox_completion");
	char why[256];

	assert_non_null(table);
	for (size_t i = 0; i < n; i++)
		oracle_saw(table, rows[i].id, token_key(rows[i].token));
	if (!oracle_check(o, table, why, sizeof why))
		fail_msg("%s: %s", label, why);
	if (!oracle_check(o, fol->reader, why, sizeof why))
		fail_msg("%s: %s", label, why);
	if (!oracle_check(o, fol->sub, why, sizeof why))
		fail_msg("%s: %s", label, why);
}

void
wl_run(struct bus_fixture *fx, const struct wl_hooks *h,
       struct wl_report *rep)
{
	static struct producer prod[PRODUCERS];
	static struct follower fol;
	static struct table_row rows[MAX_ROWS], lrows[MAX_ROWS];
	/* I3 on the completion channel; everything it records is reserved
	 * now, so that an allocation sweep never reaches it. */
	const struct oracle_config ocfg = {
	    .channel = "completion",
	    .logs = PRODUCERS + 1, /* one per producer, then main's */
	    .match_keys = true,
	    .reserve = MAX_ROWS,
	};
	struct oracle *orc = oracle_new(&ocfg);
	litebus_options o;
	litebus *bus = NULL;
	pthread_t pt[PRODUCERS], ft;
	const char *label = h->label;
	int64_t heal_id = 0;

	assert_non_null(orc);
	memset(&fol, 0, sizeof fol);
	fol.reader = oracle_reader_new(orc, "reader");
	fol.sub = oracle_subscriber_new(orc, "subscriber");
	assert_non_null(fol.reader);
	assert_non_null(fol.sub);
	fx_remove_dir(fx);
	fx_make_dir(fx);
	h->arm(h->ctx);
	litebus_options_init(&o);
	o.path = fx->path;
	o.ring_capacity = 8; /* the subscriber and reader lag */
	o.durability = LITEBUS_DURABILITY_FULL;
	o.max_batch = 8;
	o.busy_timeout_ms = 50;
	memset(rep, 0, sizeof *rep);
	rep->open_rc = litebus_open(&o, &bus);
	if (rep->open_rc != LITEBUS_OK) {
		if (!wl_documented_error(rep->open_rc))
			fail_msg("%s: open returned %s: %s", label,
				 litebus_errname(rep->open_rc),
				 litebus_last_errmsg());
		h->disarm(h->ctx);
		oracle_free(orc);
		return;
	}
	fol.bus = bus;
	/* The follower attaches before any job; a fault may refuse it. */
	int rrc = litebus_reader_open(bus, LITEBUS_COMPLETION, 0, NULL, &fol.r);
	if (rrc != LITEBUS_OK) {
		if (!wl_documented_error(rrc))
			fail_msg("%s: reader_open returned %s", label,
				 litebus_errname(rrc));
		h->disarm(h->ctx);
		assert_int_equal(litebus_reader_open(bus, LITEBUS_COMPLETION, 0,
						     NULL, &fol.r),
				 LITEBUS_OK);
	}
	int src = litebus_subscribe(bus, LITEBUS_COMPLETION, &fol.s);
	if (src != LITEBUS_OK) {
		if (!wl_documented_error(src))
			fail_msg("%s: subscribe returned %s", label,
				 litebus_errname(src));
		h->disarm(h->ctx);
		assert_int_equal(litebus_subscribe(bus, LITEBUS_COMPLETION,
						   &fol.s),
				 LITEBUS_OK);
	}
	assert_int_equal(pthread_create(&ft, NULL, follower_main, &fol), 0);
	for (int p = 0; p < PRODUCERS; p++) {
		prod[p].bus = bus;
		prod[p].oracle = orc;
		prod[p].index = p;
		for (int i = 0; i < JOBS; i++)
			prod[p].jobs[i] = (struct job){
			    .token = p * 1000 + i, .fail = i % 4 == 3,
			    .status = -99999};
		assert_int_equal(
		    pthread_create(&pt[p], NULL, producer_main, &prod[p]), 0);
	}
	for (int p = 0; p < PRODUCERS; p++)
		pthread_join(pt[p], NULL);
	if (h->workload_done != NULL)
		h->workload_done(h->ctx);
	/* I4: the fault clears; the next job commits or is refused with a
	 * documented error. */
	h->disarm(h->ctx);
	rep->heal_rc = litebus_exec(bus, wl_heal_job, &heal_id);
	if (rep->heal_rc != 0 && !wl_documented_error(rep->heal_rc))
		fail_msg("%s: job after the fault returned %s", label,
			 litebus_errname(rep->heal_rc));
	if (rep->heal_rc == 0)
		oracle_commit(orc, MAIN_LOG, heal_id, token_key(-1));
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	pthread_join(ft, NULL);
	litebus_sub_stats sst;
	assert_int_equal(litebus_sub_stats_get(fol.s, &sst), LITEBUS_OK);
	oracle_sub_stats(fol.sub, sst.received, sst.skipped);
	litebus_unsubscribe(fol.s);
	litebus_reader_close(fol.r);
	if (fol.reader_rc != 0)
		fail_msg("%s: the reader kept failing: %s", label,
			 litebus_errname(fol.reader_rc));

	/* Reopen without faults and read what is durable. */
	size_t n = read_table(fx->path, "completion", rows);
	size_t nl = read_table(fx->path, "lease_history", lrows);
	bool heal_row = false;
	for (size_t i = 0; i < n; i++)
		if (rows[i].token == -1)
			heal_row = true;
	if ((rep->heal_rc == 0) != heal_row)
		fail_msg("%s: heal job returned %d but its row is %s", label,
			 rep->heal_rc, heal_row ? "there" : "missing");

	for (int p = 0; p < PRODUCERS; p++) {
		for (int i = 0; i < JOBS; i++) {
			struct job *j = &prod[p].jobs[i];
			size_t found = 0;
			if (j->status != 0 && !wl_documented_error(j->status))
				fail_msg("%s: job %d returned undocumented %d",
					 label, j->token, j->status);
			for (size_t r = 0; r < n; r++)
				if (rows[r].token == j->token)
					found++;
			for (size_t r = 0; r < nl; r++)
				if (lrows[r].token == j->token)
					found++;
			if (j->status == 0) {
				rep->ok_jobs++;
				/* I1: all rows, with the ids handed out. */
				if (found != EV_PER_JOB)
					fail_msg("%s: committed job %d has %zu "
						 "of %d rows",
						 label, j->token, found,
						 EV_PER_JOB);
				for (int e = 0; e < EV_PER_JOB; e++) {
					struct table_row *t =
					    j->channel[e] == LITEBUS_COMPLETION
						? rows
						: lrows;
					size_t tn = j->channel[e] ==
							    LITEBUS_COMPLETION
							? n
							: nl;
					bool ok = false;
					for (size_t r = 0; r < tn; r++)
						if (t[r].id == j->ids[e] &&
						    t[r].token == j->token)
							ok = true;
					if (!ok)
						fail_msg("%s: job %d event id "
							 "%lld missing",
							 label, j->token,
							 (long long)j->ids[e]);
				}
			} else {
				rep->failed_jobs++;
				/* I2: nothing of a failed job. */
				if (found != 0)
					fail_msg("%s: job %d failed (%s) but "
						 "%zu rows exist",
						 label, j->token,
						 litebus_errname(j->status),
						 found);
			}
		}
	}
	/* I3: the reader got exactly the committed rows, in order, the
	 * subscriber an in-order subsequence with received + skipped ==
	 * every committed event. */
	check_consumers(orc, &fol, rows, n, label);
	oracle_free(orc);
}

