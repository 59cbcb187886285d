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
 * Paths: ack (scheduled -> litebus's done() callback, or the naive bus's
 * publish call returning: committed and acknowledged), sub (-> a raw
 * subscriber has the event), reader (-> a reader has the row).  One
 * subscriber and one reader follow live.  Percentiles come from a
 * log-bucketed histogram (hist.h: <= 3.1% high).
 *
 * Checks: every event acknowledged as committed; the subscriber's received
 * + skipped == published, in order; the reader saw exactly every event, in
 * order.
 */
#include "baseline_naive.h"
#include "bench.h"
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
	litebus_sub *sub;
	litebus_reader *reader;
	struct naive_sub nsub;
	struct naive_reader nreader;
	struct oracle_consumer *oc; /* what it got, for the checks */
	uint64_t received, skipped;
	_Atomic bool done;
};

struct lat_run {
	bool naive;
	uint64_t n;
	uint64_t t0, period_ns; /* event i is due at t0 + i * period_ns */
	litebus *bus;
	struct naive_bus nb;
	struct lat_ev *evs;
	struct oracle *oracle; /* what committed and what was delivered */
	struct hist hist[NPATHS];
	struct hist late;
	_Atomic uint64_t acked;
	uint64_t ack_failed; /* writer thread (litebus) or producer */
	_Atomic bool abandon;
	struct lat_consumer cons[2];
};

struct lat_out {
	uint64_t p50, p99, p999, max; /* per path, ns */
};

static uint64_t
lat_due(const struct lat_run *run, uint64_t seq)
{
	return run->t0 + seq * run->period_ns;
}

/* litebus done-callback, on the writer thread: committed and published. */
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

	while (!atomic_load_explicit(&run->abandon, memory_order_relaxed)) {
		int rc;

		if (run->naive) {
			struct naive_event ev;

			rc = c->path == PATH_SUB
				 ? naive_sub_recv(&c->nsub, &ev, 200)
				 : naive_reader_next(&c->nreader, &ev, 200);
			if (rc == NAIVE_OK)
				lat_got(c, ev.event_id, ev.key, ev.subject,
					ev.subject_len);
			else if (rc == NAIVE_LAGGED) {
				c->skipped += c->nsub.sub.last_skipped;
				oracle_lagged(c->oc, c->nsub.sub.last_skipped);
			}
		} else if (c->path == PATH_SUB) {
			litebus_event ev;

			rc = litebus_recv(c->sub, &ev, 200);
			if (rc == LITEBUS_OK)
				lat_got(c, ev.event_id,
					(uint64_t)ev.partition_key,
					ev.subject_prefix, ev.subject_len);
			else if (rc == LITEBUS_LAGGED) {
				c->skipped += litebus_sub_skipped(c->sub);
				oracle_lagged(c->oc,
					      litebus_sub_skipped(c->sub));
			}
		} else {
			litebus_row row;

			rc = litebus_reader_next(c->reader, &row, 200);
			if (rc == LITEBUS_OK)
				lat_got(c, row.event_id,
					(uint64_t)row.partition_key,
					row.subject, row.subject_len);
		}
		if (rc == LITEBUS_CLOSED)
			break;
		if (rc < 0) {
			oracle_consumer_fail(c->oc, "%s", litebus_errname(rc));
			break;
		}
	}
	atomic_store_explicit(&c->done, true, memory_order_release);
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

		if (now + LAT_SPIN_NS < due)
			bench_sleep_until_ns(due - LAT_SPIN_NS);
		while ((now = bench_now_ns()) < due)
			;
		hist_add(&run->late, now - due);
		if (run->naive) {
			naive_publish(&run->nb, key);
			hist_add(&run->hist[PATH_ACK], bench_now_ns() - due);
			atomic_fetch_add_explicit(&run->acked, 1,
						  memory_order_release);
		} else {
			int rc = litebus_submit(run->bus, bench_emit_job,
						(void *)(uintptr_t)key,
						lat_done, &run->evs[i]);
			if (rc != LITEBUS_OK) {
				fprintf(stderr,
					"litebus-bench: litebus_submit: %s\n",
					litebus_errname(rc));
				exit(2);
			}
		}
	}
	return NULL;
}

/* One run; fills *ok and why for each path. */
static void
lat_once(struct lat_run *run, double rate, double seconds, bool ok[NPATHS],
	 char why[NPATHS][200])
{
	char path[512];
	pthread_t producer;
	uint64_t t_end;
	bool drained = true;

	run->n = (uint64_t)(rate * seconds);
	run->period_ns = (uint64_t)(1e9 / rate);
	for (int p = 0; p < NPATHS; p++) {
		hist_init(&run->hist[p]);
		ok[p] = true;
		why[p][0] = '\0';
	}
	hist_init(&run->late);
	atomic_init(&run->acked, 0);
	atomic_init(&run->abandon, false);
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
	bench_db_path(path, sizeof path, run->naive ? "lat-naive" : "lat");
	if (run->naive)
		naive_open(&run->nb, path, LITEBUS_DURABILITY_NORMAL, 4096);
	else
		run->bus =
		    bench_open_bus(path, LITEBUS_DURABILITY_NORMAL, 4096);
	run->oracle = bench_oracle(1);
	for (int i = 0; i < 2; i++) {
		struct lat_consumer *c = &run->cons[i];

		memset(c, 0, sizeof *c);
		c->run = run;
		c->path = i == 0 ? PATH_SUB : PATH_READER;
		c->oc = bench_consumer(run->oracle, c->path == PATH_READER, i);
		atomic_init(&c->done, false);
		if (run->naive && c->path == PATH_SUB)
			naive_sub_open(&c->nsub, &run->nb);
		else if (run->naive)
			naive_reader_open(&c->nreader, &run->nb);
		else if (c->path == PATH_SUB)
			bench_litebus_check(litebus_subscribe(run->bus,
							      BENCH_CHANNEL_ID,
							      &c->sub),
					    "litebus_subscribe");
		else
			bench_litebus_check(
			    litebus_reader_open(run->bus, BENCH_CHANNEL_ID,
						LITEBUS_FROM_START, NULL,
						&c->reader),
			    "litebus_reader_open");
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
	if (run->naive)
		naive_close_ring(&run->nb);
	else
		litebus_close(run->bus);
	for (int i = 0; i < 2; i++) {
		struct lat_consumer *c = &run->cons[i];

		while (!atomic_load_explicit(&c->done, memory_order_acquire)) {
			if (bench_now_ns() - t_end > LAT_DRAIN_DEADLINE_NS) {
				atomic_store_explicit(&run->abandon, true,
						      memory_order_relaxed);
				drained = false;
				break;
			}
			bench_sleep_ns(1000000);
		}
	}
	oracle_commit_dense(run->oracle, 1, run->n, &run->n);
	for (int i = 0; i < 2; i++) {
		struct lat_consumer *c = &run->cons[i];

		pthread_join(c->thread, NULL);
		if (!drained)
			oracle_consumer_fail(c->oc, "not drained 30 s after "
						    "the last commit");
		ok[c->path] = oracle_check(run->oracle, c->oc, why[c->path],
					   200);
		if (c->sub != NULL)
			litebus_unsubscribe(c->sub);
		if (c->reader != NULL)
			litebus_reader_close(c->reader);
		if (run->naive && c->path == PATH_READER)
			naive_reader_close(&c->nreader);
	}
	if (run->ack_failed != 0) {
		ok[PATH_ACK] = false;
		snprintf(why[PATH_ACK], 200, "%llu events failed to commit",
			 (unsigned long long)run->ack_failed);
	}
	if (run->naive)
		naive_close(&run->nb);
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
		run[b]->naive = b == 1;
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
