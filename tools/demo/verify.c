/* SPDX-License-Identifier: MIT */
/*
 * verify.c - what the demo checks at the end and the summary it prints:
 * the tables counted through SQLite, the bus's counters, and every
 * consumer against what committed on its channel, by the shared oracle
 * (tests/support/oracle.h).  Main thread, after every consumer ended.
 */
#include "demo.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <string.h>

/* Count this run's rows in db.  Returns 0, or -1 (printed). */
static int
count_tables(struct demo *d, sqlite3 *db, struct table_counts *tc)
{
	char sql[256];
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_OK;

	/* The per-channel table name is litebus's schema, not its API: a
	 * demo may peek, an application should use a reader. */
	for (int i = 0; i <= CH_COUNT && rc == SQLITE_OK; i++) {
		if (i < CH_COUNT)
			snprintf(sql, sizeof sql,
				 "SELECT count(*), coalesce(sum(partition_key "
				 "< 0), 0) FROM \"litebus_outbox_%s\" WHERE "
				 "event_id > ?1",
				 d->chan[i].name);
		else
			snprintf(sql, sizeof sql,
				 "SELECT count(*), 0 FROM orders WHERE run = "
				 "?1");
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		if (rc != SQLITE_OK)
			break;
		sqlite3_bind_int64(st, 1,
				   i < CH_COUNT ? d->chan[i].base : d->run_id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			rc = SQLITE_OK;
			if (i < CH_COUNT) {
				tc->rows[i] = sqlite3_column_int64(st, 0);
				tc->aborted[i] = sqlite3_column_int64(st, 1);
			} else {
				tc->orders = sqlite3_column_int64(st, 0);
			}
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (rc != SQLITE_OK) {
		fprintf(stderr, "litebus-demo: counting rows: %s\n",
			sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

struct count_job {
	struct demo *d;
	struct table_counts *tc;
};

/* An in-memory database can only be seen through the bus: count in a
 * last job, on the writer's connection. */
static int
count_job_run(litebus_tx *tx, void *arg)
{
	struct count_job *cj = arg;

	return count_tables(cj->d, litebus_tx_db(tx), cj->tc) == 0
		   ? 0
		   : DEMO_JOB_SQLERR;
}

int
demo_count_through_bus(struct demo *d, struct table_counts *tc)
{
	struct count_job cj = {d, tc};

	return litebus_exec(d->bus, count_job_run, &cj);
}

/* Count through a connection of our own, after the bus has closed. */
int
demo_count_through_file(struct demo *d, struct table_counts *tc)
{
	sqlite3 *db = NULL;
	int rc;

	/* Read-write, although it only reads: as the last connection to
	 * close, it checkpoints the WAL and removes it. */
	rc = sqlite3_open_v2(d->path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "litebus-demo: opening %s: %s\n", d->path,
			db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	rc = count_tables(d, db, tc);
	sqlite3_close(db);
	return rc;
}


/* ------------------------------------------------------------------ */
/* The summary                                                         */

struct verdict {
	int passed, failed;
};

__attribute__((format(printf, 3, 4))) static void
check(struct verdict *v, bool ok, const char *fmt, ...)
{
	va_list ap;

	fputs("  ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": %s\n", ok ? "PASS" : "FAIL");
	if (ok)
		v->passed++;
	else
		v->failed++;
}

static void
print_channel_table(struct demo *d, const struct table_counts *tc, bool have_tc)
{
	printf("\nevents per channel: committed (ids from litebus_emit in "
	       "committed jobs),\nin the outbox table (%s), delivered to "
	       "each consumer\n",
	       d->o.memory ? "counted in a last job: in-memory database"
			   : "separate connection");
	printf("  %-15s %10s %10s  %s\n", "channel", "committed", "table",
	       "delivered");
	for (int ch = 0; ch < CH_COUNT; ch++) {
		printf("  %-15s %10" PRIu64, d->chan[ch].name,
		       oracle_committed(d->oracle[ch]));
		if (have_tc)
			printf(" %10" PRId64, tc->rows[ch]);
		else
			printf(" %10s", "?");
		printf(" ");
		for (int i = 0; i < d->ncons; i++) {
			const struct consumer *c = &d->cons[i];

			if (c->ch != ch)
				continue;
			printf(" %s %" PRIu64, c->label, oracle_received(c->oc));
			if (!consumer_is_reader(c))
				printf("+%" PRIu64 " skipped",
				       oracle_skipped(c->oc));
		}
		printf("\n");
	}
}

static void
print_consumers(struct demo *d)
{
	printf("\nconsumers\n");
	for (int i = 0; i < d->ncons; i++) {
		const struct consumer *c = &d->cons[i];

		if (consumer_is_reader(c))
			printf("  %-28s %9" PRIu64 " rows, lapped %" PRIu64
			       " times, %" PRIu64 " catch-up queries\n",
			       c->name, c->rstats.delivered, c->rstats.lags,
			       c->rstats.queries);
		else
			printf("  %-28s %9" PRIu64 " received, %" PRIu64
			       " skipped in %" PRIu64 " lags\n",
			       c->name, c->sstats.received, c->sstats.skipped,
			       c->sstats.lags);
	}
}

static void
check_reader(struct verdict *v, struct demo *d, const struct consumer *c)
{
	char why[320];
	bool ok = oracle_check(d->oracle[c->ch], c->oc, why, sizeof why);

	check(v, ok, "%s: %" PRIu64 " rows, exactly once, in order", c->name,
	      oracle_received(c->oc));
	if (!ok)
		printf("    %s\n", why);
}

static void
check_sub(struct verdict *v, struct demo *d, const struct consumer *c)
{
	uint64_t published = oracle_committed(d->oracle[c->ch]);
	const litebus_sub_stats *ss = &c->sstats;
	char why[320];
	bool ok;

	check(v, ss->received + ss->skipped == published,
	      "%s: %" PRIu64 " received + %" PRIu64 " skipped == %" PRIu64
	      " published",
	      c->name, ss->received, ss->skipped, published);
	oracle_sub_stats(c->oc, ss->received, ss->skipped);
	ok = oracle_check(d->oracle[c->ch], c->oc, why, sizeof why);
	check(v, ok,
	      "%s: every event received was committed, in order, and each "
	      "lag skipped what it reported",
	      c->name);
	if (!ok)
		printf("    %s\n", why);
}

/* Print the closing summary.  Returns the number of failed checks. */
int
demo_summary(struct demo *d, const litebus_stats *st,
	     const struct table_counts *tc, bool have_tc)
{
	struct verdict v = {0, 0};
	uint64_t ok = atomic_load_explicit(&d->jobs_ok, memory_order_relaxed);
	uint64_t aborted =
	    atomic_load_explicit(&d->jobs_aborted, memory_order_relaxed);
	uint64_t errors =
	    atomic_load_explicit(&d->errors, memory_order_relaxed);
	uint64_t committed_events = 0;

	for (int ch = 0; ch < CH_COUNT; ch++)
		committed_events += oracle_committed(d->oracle[ch]);
	printf("\njobs: %" PRIu64 " committed, %" PRIu64
	       " aborted on purpose (every %dth order)\n",
	       ok, aborted, DEMO_ABORT_EVERY);
	print_channel_table(d, tc, have_tc);
	print_consumers(d);
	printf("\nbus stats (litebus_stats_get)\n");
	printf("  %" PRIu64 " batches, %" PRIu64 " commits, %.2f jobs per "
	       "batch\n",
	       st->batches, st->commits,
	       st->batches != 0 ? (double)st->jobs / (double)st->batches : 0.0);
	printf("  %" PRIu64 " jobs (%" PRIu64 " failed), %" PRIu64
	       " events, %" PRIu64 " busy retries, %" PRIu64 " checkpoints\n",
	       st->jobs, st->jobs_failed, st->events, st->busy_retries,
	       st->checkpoints);
	printf("  %" PRIu64 " subscriber lags (%" PRIu64 " skipped), %" PRIu64
	       " reader lags\n",
	       st->sub_lags, st->sub_skipped, st->reader_lags);

	printf("\nchecks\n");
	check(&v, errors == 0, "unexpected errors: %" PRIu64, errors);
	check(&v, ok > 0 && aborted > 0,
	      "jobs committed (%" PRIu64 ") and aborted (%" PRIu64
	      ") both happened",
	      ok, aborted);
	for (int ch = 0; ch < CH_COUNT; ch++) {
		if (!have_tc) {
			check(&v, false, "table %s: could not be counted",
			      d->chan[ch].name);
			continue;
		}
		uint64_t committed = oracle_committed(d->oracle[ch]);

		check(&v,
		      (uint64_t)tc->rows[ch] == committed &&
			  tc->aborted[ch] == 0,
		      "table %s: %" PRId64 " rows == %" PRIu64
		      " committed, %" PRId64 " of aborted jobs",
		      d->chan[ch].name, tc->rows[ch], committed,
		      tc->aborted[ch]);
	}
	if (have_tc)
		check(&v, (uint64_t)tc->orders == ok,
		      "table orders: %" PRId64 " rows == %" PRIu64
		      " committed jobs",
		      tc->orders, ok);
	check(&v, st->events == committed_events,
	      "bus stats: %" PRIu64 " events published == %" PRIu64
	      " committed",
	      st->events, committed_events);
	for (int i = 0; i < d->ncons; i++) {
		if (consumer_is_reader(&d->cons[i]))
			check_reader(&v, d, &d->cons[i]);
		else
			check_sub(&v, d, &d->cons[i]);
	}
	if (v.failed == 0)
		printf("\nall %d checks passed\n", v.passed);
	else
		printf("\n%d of %d checks FAILED\n", v.failed,
		       v.passed + v.failed);
	return v.failed;
}

/* ------------------------------------------------------------------ */
