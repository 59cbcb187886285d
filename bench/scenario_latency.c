/* SPDX-License-Identifier: MIT */
/*
 * scenario_latency.c - latency at a fixed offered load, litebus against
 * the naive bus.
 *
 * One producer offers events on an open-loop schedule: event i is due at
 * t0 + i / rate, whenever the previous one finished, so a stall shows up
 * as the latency of every event it delays (no coordinated omission).
 * Every latency is measured from the event's scheduled time, so it also
 * holds the producer's own lateness (reported as sched_late_p99_us; the
 * producer sleeps with 1 ns timer slack, then spins the last 30 us).
 *
 * Paths: ack (scheduled -> the contender's done() callback: litebus's on
 * its writer thread, the naive bus's as its publish call returns;
 * committed and acknowledged), sub (-> a raw
 * subscriber has the event), reader (-> a reader has the row).  One
 * subscriber and one reader follow live.  Percentiles come from a
 * log-bucketed histogram (hist.h: <= 3.1% high).
 *
 * Checks: every event acknowledged as committed; the subscriber's received
 * + skipped == published, in order; the reader saw exactly every event, in
 * order.
 */
#include "bench.h"
#include "contender.h"
#include "hist.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAT_SPIN_NS 30000u
#define LAT_DRAIN_DEADLINE_NS (30ull * 1000000000ull)

enum { PATH_ACK, PATH_SUB, PATH_READER, NPATHS };
static const char *const path_name[NPATHS] = {"ack", "sub", "reader"};

struct lat_run;

struct lat_ev {
	struct lat_run *run;
	uint64_t seq;
};

struct lat_consumer {
	pthread_t thread;
	struct lat_run *run;
	int path;
	void *handle;		    /* the contender's subscriber or reader */
	struct oracle_consumer *oc; /* what it got, for the checks */
	uint64_t received, skipped;
};

struct lat_run {
	const struct contender *ops;
	uint64_t n;
	uint64_t t0, period_ns; /* event i is due at t0 + i * period_ns */
	void *bus;
	struct lat_ev *evs;
	struct oracle *oracle; /* what committed and what was delivered */
	struct hist hist[NPATHS];
	struct hist late;
	_Atomic uint64_t acked;
	uint64_t ack_failed; /* in lat_done() */
	struct bench_drain drain;
	struct lat_consumer cons[2];
	double mem_hit; /* the reader's rows from memory / its rows */
};

struct lat_out {
	uint64_t p50, p99, p999, max; /* per path, ns */
};

static uint64_t
lat_due(const struct lat_run *run, uint64_t seq)
{
	return run->t0 + seq * run->period_ns;
}

/* The contender's done-callback (litebus: on its writer thread):
 * committed and published. */
static void
lat_done(int status, void *arg)
{
	struct lat_ev *ev = arg;
	struct lat_run *run = ev->run;

	hist_add(&run->hist[PATH_ACK], bench_now_ns() - lat_due(run, ev->seq));
	if (status != 0)
		run->ack_failed++;
	/* Release pairs with the acquire in lat_once(): the histogram is
	 * complete once every ack is counted. */
	atomic_fetch_add_explicit(&run->acked, 1, memory_order_release);
}

static void
lat_got(struct lat_consumer *c, int64_t id, uint64_t key,
	const unsigned char *subject, size_t subject_len)
{
	uint64_t now = bench_now_ns();

	hist_add(&c->run->hist[c->path],
		 now - lat_due(c->run, BENCH_KEY_SEQ(key)));
	bench_saw(c->oc, id, key, subject, subject_len);
	c->received++;
}

static void *
lat_consumer_main(void *arg)
{
	struct lat_consumer *c = arg;
	struct lat_run *run = c->run;

	while (!bench_drain_abandoned(&run->drain)) {
		struct contender_delivery d;
		int rc;

		rc = run->ops->next(c->handle, &d, 200);
		if (rc == LITEBUS_OK)
			lat_got(c, d.event_id, d.key, d.subject, d.subject_len);
		else if (rc == LITEBUS_LAGGED) {
			c->skipped += d.skipped;
			oracle_lagged(c->oc, d.skipped);
		}
		if (rc == LITEBUS_CLOSED)
			break;
		if (rc < 0) {
			oracle_consumer_fail(c->oc, "%s", litebus_errname(rc));
			break;
		}
	}
	bench_drain_finished(&run->drain);
	return NULL;
}

static void *
lat_producer_main(void *arg)
{
	struct lat_run *run = arg;

	bench_tight_timer_slack();
	for (uint64_t i = 0; i < run->n; i++) {
		uint64_t due = lat_due(run, i), now = bench_now_ns();
		uint64_t key = BENCH_KEY(0, i);
		int rc;

		if (now + LAT_SPIN_NS < due)
			bench_sleep_until_ns(due - LAT_SPIN_NS);
		while ((now = bench_now_ns()) < due)
			;
		hist_add(&run->late, now - due);
		rc = run->ops->submit(run->bus, key, lat_done, &run->evs[i]);
		if (rc != LITEBUS_OK) {
			fprintf(stderr, "litebus-bench: %s submit: %s\n",
				run->ops->name, litebus_errname(rc));
			exit(2);
		}
	}
	return NULL;
}

/* One run; fills *ok and why for each path. */
static void
lat_once(struct lat_run *run, double rate, double seconds, bool ok[NPATHS],
	 char why[NPATHS][200])
{
	char path[512], tag[32];
	pthread_t producer;
	uint64_t t_end;
	bool drained;

	run->n = (uint64_t)(rate * seconds);
	run->period_ns = (uint64_t)(1e9 / rate);
	for (int p = 0; p < NPATHS; p++) {
		hist_init(&run->hist[p]);
		ok[p] = true;
		why[p][0] = '\0';
	}
	hist_init(&run->late);
	atomic_init(&run->acked, 0);
	bench_drain_init(&run->drain);
	run->ack_failed = 0;
	run->evs = calloc(run->n, sizeof *run->evs);
	if (run->evs == NULL) {
		fprintf(stderr, "litebus-bench: out of memory\n");
		exit(2);
	}
	for (uint64_t i = 0; i < run->n; i++) {
		run->evs[i].run = run;
		run->evs[i].seq = i;
	}
	snprintf(tag, sizeof tag, "lat-%s", run->ops->name);
	bench_db_path(path, sizeof path, tag);
	run->bus = run->ops->open(path, LITEBUS_DURABILITY_NORMAL, 4096);
	run->oracle = bench_oracle(1);
	for (int i = 0; i < 2; i++) {
		struct lat_consumer *c = &run->cons[i];

		memset(c, 0, sizeof *c);
		c->run = run;
		c->path = i == 0 ? PATH_SUB : PATH_READER;
		c->oc = bench_consumer(run->oracle, c->path == PATH_READER, i);
		c->handle = run->ops->attach(run->bus, c->path == PATH_SUB
							   ? CONTENDER_SUB
							   : CONTENDER_READER);
		pthread_create(&c->thread, NULL, lat_consumer_main, c);
	}
	/* The schedule starts shortly after every thread exists. */
	run->t0 = bench_now_ns() + 20000000u;
	pthread_create(&producer, NULL, lat_producer_main, run);
	pthread_join(producer, NULL);
	/* Pairs with the release in lat_done(). */
	while (atomic_load_explicit(&run->acked, memory_order_acquire) < run->n)
		bench_sleep_ns(1000000);
	t_end = bench_now_ns();
	run->ops->end(run->bus);
	drained =
	    bench_drain_wait(&run->drain, 2, t_end, LAT_DRAIN_DEADLINE_NS);
	/* The oracle is checked once no consumer records any more. */
	for (int i = 0; i < 2; i++)
		pthread_join(run->cons[i].thread, NULL);
	oracle_commit_dense(run->oracle, 1, run->n, &run->n);
	for (int i = 0; i < 2; i++) {
		struct lat_consumer *c = &run->cons[i];

		if (!drained)
			oracle_consumer_fail(c->oc, "not drained 30 s after "
						    "the last commit");
		ok[c->path] =
		    oracle_check(run->oracle, c->oc, why[c->path], 200);
		if (c->path == PATH_READER)
			run->mem_hit =
			    run->n > 0 ? (double)run->ops->reader_memory_rows(
					     c->handle) /
					     (double)run->n
				       : 0;
		run->ops->detach(c->handle);
	}
	if (run->ack_failed != 0) {
		ok[PATH_ACK] = false;
		snprintf(why[PATH_ACK], 200, "%llu events failed to commit",
			 (unsigned long long)run->ack_failed);
	}
	run->ops->close(run->bus);
	bench_db_remove(path);
	oracle_free(run->oracle);
	free(run->evs);
	run->evs = NULL;
}

static double
us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

void
scenario_latency(void)
{
	static const double rates[] = {1000, 10000};
	double seconds = bench_cfg.quick ? 0.5 : 3.0;
	struct lat_run *run[2];

	res_note("latency: one producer, open-loop schedule, latencies from "
		 "each event's scheduled time, in us; ack = committed and "
		 "acknowledged, sub = raw subscriber has it, reader = reader "
		 "has the row; x_naive_pNN = naive / litebus");
	for (int b = 0; b < 2; b++) {
		run[b] = calloc(1, sizeof *run[b]);
		if (run[b] == NULL)
			exit(2);
		run[b]->ops = b == 0 ? &contender_litebus : &contender_naive;
	}
	for (size_t ri = 0; ri < 2; ri++) {
		struct bench_result *r[NPATHS];

		for (int p = 0; p < NPATHS; p++) {
			r[p] = res_new("latency");
			res_cfg(r[p], "rate", "%.0f", rates[ri]);
			res_cfg(r[p], "path", "%s", path_name[p]);
		}
		for (int rep = 0; rep < bench_cfg.reps; rep++) {
			bool ok[2][NPATHS];
			char why[2][NPATHS][200];

			for (int b = 0; b < 2; b++)
				lat_once(run[b], rates[ri], seconds, ok[b],
					 why[b]);
			for (int p = 0; p < NPATHS; p++) {
				const struct hist *lh = &run[0]->hist[p];
				const struct hist *nh = &run[1]->hist[p];
				struct bench_result *x = r[p];
				double l50 = us(hist_quantile(lh, 0.50));
				double l99 = us(hist_quantile(lh, 0.99));
				double n50 = us(hist_quantile(nh, 0.50));
				double n99 = us(hist_quantile(nh, 0.99));

				res_val(x, "litebus_p50_us", 1, l50);
				res_val(x, "litebus_p99_us", 1, l99);
				res_val(x, "litebus_p999_us", 1,
					us(hist_quantile(lh, 0.999)));
				res_val(x, "litebus_max_us", 1, us(lh->max));
				res_val(x, "naive_p50_us", 1, n50);
				res_val(x, "naive_p99_us", 1, n99);
				res_val(x, "naive_p999_us", 1,
					us(hist_quantile(nh, 0.999)));
				res_val(x, "naive_max_us", 1, us(nh->max));
				res_ratio(x, "x_naive_p50", 2, n50, l50);
				res_ratio(x, "x_naive_p99", 2, n99, l99);
				res_val(x, "samples", 0, (double)lh->n);
				if (p == PATH_READER)
					res_val(x, "mem_hit", 3,
						run[0]->mem_hit);
				if (p == PATH_ACK)
					res_val(x, "sched_late_p99_us", 1,
						us(hist_quantile(&run[0]->late,
								 0.99)));
				res_check(x, "litebus_exact", ok[0][p], "%s",
					  why[0][p]);
				res_check(x, "naive_exact", ok[1][p], "%s",
					  why[1][p]);
			}
		}
		for (int p = 0; p < NPATHS; p++)
			res_emit(r[p]);
	}
	free(run[0]);
	free(run[1]);
}
