/* SPDX-License-Identifier: MIT */
/*
 * scenario_catchup.c - a reader that starts N events behind (1,000,000;
 * 100,000 with --quick): rows/s until it has caught up, against the plain
 * SELECT loop it wraps (ceiling.c, ceiling_select).
 *
 * The rows are committed through litebus (jobs of 1000 events), the bus
 * is closed and reopened (the WAL is checkpointed away, as after a
 * restart), then each repetition runs a fresh reader from the start and
 * the plain loop, in alternating order, on the same warm file.
 *
 * Checks: the reader returned exactly ids 1..N in order with every
 * producer's keys in order; the plain loop read N rows in order.
 */
#include "baseline_naive.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

static void
catchup_fill(const char *path, uint64_t rows)
{
	litebus *bus = bench_open_bus(path, LITEBUS_DURABILITY_NORMAL, 4096);

	bench_fill(bus, rows);
	litebus_close(bus);
}

/* Rows/s of one reader from the start to the last row; *ok, why. */
static double
catchup_reader(litebus *bus, uint64_t rows, uint64_t *queries, bool *ok,
	       char *why, size_t why_len)
{
	litebus_reader *r;
	litebus_reader_stats st;
	litebus_row row;
	struct oracle *o = bench_oracle(1);
	struct oracle_consumer *c = bench_consumer(o, true, 0);
	uint64_t t0, t1, seen, committed = rows;
	bool failed = false;

	t0 = bench_now_ns();
	bench_litebus_check(litebus_reader_open(bus, BENCH_CHANNEL_ID,
						LITEBUS_FROM_START, NULL, &r),
			    "litebus_reader_open");
	while (oracle_received(c) < rows) {
		int rc = litebus_reader_next(r, &row, 5000);

		if (rc != LITEBUS_OK) {
			oracle_consumer_fail(
			    c, "litebus_reader_next: %s after %llu rows",
			    litebus_errname(rc),
			    (unsigned long long)oracle_received(c));
			failed = true;
			break;
		}
		bench_saw(c, row.event_id, (uint64_t)row.partition_key,
			  row.subject, row.subject_len);
	}
	t1 = bench_now_ns();
	/* Nothing more may come: the reader is at the end. */
	if (!failed && litebus_reader_next(r, &row, 0) != LITEBUS_TIMEOUT)
		oracle_consumer_fail(c, "a row after the last one (id %lld)",
				     (long long)row.event_id);
	oracle_commit_dense(o, 1, rows, &committed);
	litebus_reader_stats_get(r, &st);
	*queries = st.queries;
	litebus_reader_close(r);
	*ok = oracle_check(o, c, why, why_len);
	seen = oracle_received(c);
	oracle_free(o);
	return (double)seen / bench_secs(t1 - t0);
}

void
scenario_catchup(void)
{
	uint64_t rows = bench_cfg.quick ? 100000 : 1000000;
	struct bench_result *r = res_new("catchup");
	char path[512];
	litebus *bus;

	res_note("catchup: a reader opened %llu events behind, rows/s until "
		 "caught up, vs the plain SELECT ... WHERE event_id > ? LIMIT "
		 "256 loop (ceiling)",
		 (unsigned long long)rows);
	bench_db_path(path, sizeof path, "catchup");
	catchup_fill(path, rows);
	bus = bench_open_bus(path, LITEBUS_DURABILITY_NORMAL, 4096);
	res_cfg(r, "rows", "%llu", (unsigned long long)rows);
	res_cfg(r, "batch", "256");
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		double lb = 0, sel = 0;
		uint64_t queries = 0, count;
		bool ok = false, in_order;
		char why[200];

		for (int k = 0; k < 2; k++) {
			if ((k + rep) % 2 == 0)
				lb = catchup_reader(bus, rows, &queries, &ok,
						    why, sizeof why);
			else
				sel = ceiling_select(path, &count, &in_order);
		}
		res_val(r, "litebus_rows_s", 0, lb);
		res_val(r, "select_rows_s", 0, sel);
		res_val(r, "pct_select", 1, 100 * lb / sel);
		res_val(r, "reader_queries", 0, (double)queries);
		res_check(r, "litebus_exact", ok, "%s", why);
		res_check(r, "select_exact", count == rows && in_order,
			  "plain loop read %llu rows%s",
			  (unsigned long long)count,
			  in_order ? "" : ", not in order");
	}
	res_emit(r);
	litebus_close(bus);
	bench_db_remove(path);
}
