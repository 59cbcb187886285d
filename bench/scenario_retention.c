/* SPDX-License-Identifier: MIT */
/*
 * scenario_retention.c - what keeping a bus for a year costs (issue 9):
 * retention pruning during the run (`retention`), a durable consumer that
 * acknowledges every event (`consumer`), and pruning a large backlog with
 * litebus_prune (`prune`).
 *
 * All three run one body, a live run (live_once): a fresh database file;
 * a bus opened with the configuration's options (a retention policy or
 * none); optionally a backlog of rows committed first; optionally one
 * follower (a reader, or a durable consumer that acks each row: struct
 * follower_ops) attached before the producers start; P producer threads
 * committing one event per job, by litebus_exec (one job in flight, each
 * round trip timed) or litebus_submit (up to 256 in flight), while the
 * main thread runs the configuration's `during` step (sleep for the run's
 * length, or litebus_prune the backlog).  Then the producers finish their
 * jobs in flight, the follower catches up to the last committed id and
 * settles (a consumer flushes its acks and reads its durable position),
 * the follower closes, then the bus.
 *
 * Each line compares configurations that differ in one thing, measured in
 * the same repetition (their order alternates between repetitions, except
 * in `prune`, where the prune must run first to know how long the other
 * side runs):
 *   retention  retention ON (a max_rows policy, applied every few ms, so
 *              that pruning runs all the time) vs OFF: the commit rate
 *              (x_off = on / off) and the exec round trip's p50/p99
 *              (p99_x_off = on / off: 1.0 means pruning costs nothing).
 *   consumer   no follower, a reader, a durable consumer that acks every
 *              row: the writer's commit rate with the consumer / with
 *              none (x_none), the consumer's delivery rate / the reader's
 *              (x_reader), and how many acks each ack job carried.
 *   prune      litebus_prune of a backlog of N rows (prune_batch_rows
 *              default) while one exec producer commits, vs the same
 *              producer for as long with no prune: rows/s pruned, the
 *              producer's p99 (p99_x_none = with prune / without), and a
 *              plain one-transaction DELETE of the same rows on the same
 *              file for scale (pct_delete).
 *
 * Checks: every job committed and litebus_stats counted its events; the
 * channel head (litebus_channel_head) is the last committed id; after
 * close the table holds a contiguous range of ids ending at the last
 * committed one and starting where the configuration says (id 1 without
 * pruning, above 1 with retention on, right after the backlog after
 * litebus_prune); a follower saw exactly the committed events, in order,
 * each producer's in submission order (oracle.h); a consumer's durable
 * position after litebus_consumer_flush is the last id it was delivered,
 * its lag 0.
 *
 * Threads: the main thread opens and closes everything and runs `during`;
 * producer threads commit; one follower thread reads, acks, settles and
 * closes its follower.
 */
#include "bench.h"
#include "hist.h"

#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFLIGHT 256
/* A follower that has not caught up this long after the last commit has
 * fallen behind for good (or hangs): the run FAILs instead of hanging. */
#define DRAIN_DEADLINE_NS (60ull * 1000000000ull)
/* retention ON: keep the newest RET_MAX_ROWS rows, applied every
 * RET_INTERVAL_MS: even one exec producer under a sanitizer passes
 * max_rows within a --quick run, and from then on every pass prunes. */
#define RET_MAX_ROWS 200
#define RET_INTERVAL_MS 5
#define CONSUMER_NAME "bench"

/* ------------------------------------------------------------------ */
/* Followers                                                           */

/* A follower of the "bench" channel: every committed row from id 1. */
struct follower_ops {
	const char *name; /* names it in the oracle's messages */
	/* Attach before anything is committed (exits on failure). */
	void *(*open)(litebus *bus);
	int (*next)(void *h, litebus_row *row, int timeout_ms);
	/* After each row it delivered: 0, or a litebus error. */
	int (*delivered)(void *h, int64_t event_id);
	/* Once it has delivered last_id, the last committed: does what it
	 * promises hold?  false and why if not. */
	bool (*settle)(void *h, int64_t last_id, char *why, size_t why_len);
	void (*close)(void *h);
};

static void *
reader_open(litebus *bus)
{
	litebus_reader *r = NULL;

	bench_litebus_check(litebus_reader_open(bus, BENCH_CHANNEL_ID,
						LITEBUS_FROM_START, NULL, &r),
			    "litebus_reader_open");
	return r;
}

static int
reader_next(void *h, litebus_row *row, int timeout_ms)
{
	return litebus_reader_next(h, row, timeout_ms);
}

static int
reader_delivered(void *h, int64_t event_id)
{
	(void)h;
	(void)event_id;
	return LITEBUS_OK;
}

static bool
reader_settle(void *h, int64_t last_id, char *why, size_t why_len)
{
	(void)h;
	(void)last_id;
	(void)why;
	(void)why_len;
	return true;
}

static void
reader_close(void *h)
{
	litebus_reader_close(h);
}

static const struct follower_ops follow_reader = {
    .name = "reader",
    .open = reader_open,
    .next = reader_next,
    .delivered = reader_delivered,
    .settle = reader_settle,
    .close = reader_close,
};

static void *
consumer_open(litebus *bus)
{
	litebus_consumer *c = NULL;

	bench_litebus_check(litebus_consumer_open(bus, BENCH_CHANNEL_ID,
						  CONSUMER_NAME,
						  LITEBUS_FROM_START, NULL, &c),
			    "litebus_consumer_open");
	return c;
}

static int
consumer_next(void *h, litebus_row *row, int timeout_ms)
{
	return litebus_consumer_next(h, row, timeout_ms);
}

/* Acknowledge every row as it arrives (at-least-once use). */
static int
consumer_delivered(void *h, int64_t event_id)
{
	return litebus_consumer_ack(h, event_id);
}

/* litebus.h: "litebus_consumer_flush() waits for it" - then the durable
 * position is the last row acknowledged, and the lag head - position is
 * 0 once the producers have stopped. */
static bool
consumer_settle(void *h, int64_t last_id, char *why, size_t why_len)
{
	litebus_consumer_info info;
	int rc = litebus_consumer_flush(h);

	if (rc == LITEBUS_OK)
		rc = litebus_consumer_stats_get(h, &info);
	if (rc != LITEBUS_OK) {
		snprintf(why, why_len, "flush/stats: %s (%s)",
			 litebus_errname(rc), litebus_last_errmsg());
		return false;
	}
	if (info.position != last_id || info.lag != 0) {
		snprintf(why, why_len,
			 "durable position %lld (lag %lld) after "
			 "flush, last delivered %lld",
			 (long long)info.position, (long long)info.lag,
			 (long long)last_id);
		return false;
	}
	return true;
}

static void
consumer_close(void *h)
{
	litebus_consumer_close(h);
}

static const struct follower_ops follow_consumer = {
    .name = "consumer",
    .open = consumer_open,
    .next = consumer_next,
    .delivered = consumer_delivered,
    .settle = consumer_settle,
    .close = consumer_close,
};

/* ------------------------------------------------------------------ */
/* The live run                                                        */

struct live;

struct live_cfg {
	int producers;
	bool submit; /* up to INFLIGHT jobs in flight per producer */
	const litebus_retention *retention; /* NULL: none */
	uint32_t prune_interval_ms;	    /* with retention */
	uint32_t prune_batch_rows;	    /* 0: the default */
	uint64_t backlog; /* rows committed before the producers start */
	const struct follower_ops *follow; /* NULL: none */
	/* The main thread's step while the producers commit. */
	void (*during)(struct live *run);
	double seconds;	      /* live_sleep: how long */
	int64_t prune_before; /* live_prune: litebus_prune's argument */
};

struct live_out {
	uint64_t events; /* committed by the producers (not the backlog) */
	double ev_s;
	struct hist lat; /* exec round trips (exec mode), ns */
	litebus_stats st;
	double during_s;	    /* how long `during` took */
	int64_t table_lo, table_hi; /* ids in the table after close */
	double deliveries_s;	    /* the follower's */
	double tail_ms;		    /* last commit -> its last row */
	bool committed_ok, table_ok, follower_ok;
	char why[256];
};

struct producer {
	pthread_t thread;
	struct live *run;
	uint32_t id;
	sem_t slots; /* submit mode: free in-flight slots */
	uint64_t submitted;
	/* Bumped by done() on the writer thread, read after the slots were
	 * all taken back (sem_wait synchronizes). */
	_Atomic uint64_t committed, failed;
	int first_error;
	struct hist lat;
	uint64_t t_end;
};

struct live {
	const struct live_cfg *cfg;
	litebus *bus;
	pthread_barrier_t start;
	_Atomic bool stop;
	struct producer *prod;
	/* `during`'s result. */
	double during_s;
	int during_rc;
	/* The follower (its thread owns the handle and the oracle consumer
	 * until bench_drain_finished). */
	pthread_t fthread;
	void *fh;
	struct oracle *oracle;
	struct oracle_consumer *oc;
	struct bench_drain drain;
	/* The last committed id, once known (0 before): the follower stops
	 * after delivering it. */
	_Atomic int64_t target;
	uint64_t t_last;
	bool settled;
	char settle_why[200];
};

static void
producer_done(int status, void *arg)
{
	struct producer *p = arg;

	if (status == 0)
		atomic_fetch_add_explicit(&p->committed, 1,
					  memory_order_relaxed);
	else {
		atomic_fetch_add_explicit(&p->failed, 1, memory_order_relaxed);
		if (p->first_error == 0)
			p->first_error = status;
	}
	sem_post(&p->slots);
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	struct live *run = p->run;
	uint32_t seq = 0;

	pthread_barrier_wait(&run->start);
	/* Relaxed: only a flag; the producer's work depends on nothing
	 * written before it. */
	while (!atomic_load_explicit(&run->stop, memory_order_relaxed)) {
		uint64_t key = BENCH_KEY(p->id, seq);
		int rc;

		if (!run->cfg->submit) {
			uint64_t t = bench_now_ns();

			rc = litebus_exec(run->bus, bench_emit_job,
					  (void *)(uintptr_t)key);
			hist_add(&p->lat, bench_now_ns() - t);
			if (rc != 0) {
				atomic_fetch_add_explicit(&p->failed, 1,
							  memory_order_relaxed);
				p->first_error = rc;
				break;
			}
			atomic_fetch_add_explicit(&p->committed, 1,
						  memory_order_relaxed);
		} else {
			while (sem_wait(&p->slots) != 0)
				;
			rc = litebus_submit(run->bus, bench_emit_job,
					    (void *)(uintptr_t)key,
					    producer_done, p);
			if (rc != LITEBUS_OK) {
				sem_post(&p->slots);
				p->first_error = rc;
				break;
			}
		}
		seq++;
		p->submitted++;
	}
	if (run->cfg->submit)
		for (int i = 0; i < INFLIGHT; i++) /* all jobs completed */
			while (sem_wait(&p->slots) != 0)
				;
	p->t_end = bench_now_ns();
	return NULL;
}

static void *
follower_main(void *arg)
{
	struct live *run = arg;
	const struct follower_ops *f = run->cfg->follow;
	int64_t last = 0, target = 0;
	bool done = false;

	pthread_barrier_wait(&run->start);
	while (!bench_drain_abandoned(&run->drain)) {
		litebus_row row;
		int rc;

		/* Relaxed: the value is all that is passed. */
		target =
		    atomic_load_explicit(&run->target, memory_order_relaxed);
		if (target > 0 && last >= target) {
			done = true;
			break;
		}
		rc = f->next(run->fh, &row, 200);
		if (rc == LITEBUS_TIMEOUT)
			continue;
		if (rc != LITEBUS_OK) {
			oracle_consumer_fail(run->oc, "%s_next: %s (%s)",
					     f->name, litebus_errname(rc),
					     litebus_last_errmsg());
			break;
		}
		bench_saw(run->oc, row.event_id, (uint64_t)row.partition_key,
			  row.subject, row.subject_len);
		last = row.event_id;
		run->t_last = bench_now_ns();
		rc = f->delivered(run->fh, row.event_id);
		if (rc != LITEBUS_OK) {
			oracle_consumer_fail(run->oc, "%s after %lld: %s (%s)",
					     f->name, (long long)last,
					     litebus_errname(rc),
					     litebus_last_errmsg());
			break;
		}
	}
	if (done)
		run->settled = f->settle(run->fh, last, run->settle_why,
					 sizeof run->settle_why);
	else
		snprintf(run->settle_why, sizeof run->settle_why,
			 "%s stopped at %lld of %lld", f->name, (long long)last,
			 (long long)target);
	f->close(run->fh);
	bench_drain_finished(&run->drain);
	return NULL;
}

/* `during`: let the producers run for cfg->seconds. */
static void
live_sleep(struct live *run)
{
	uint64_t t = bench_now_ns();

	bench_sleep_ns((uint64_t)(run->cfg->seconds * 1e9));
	run->during_s = bench_secs(bench_now_ns() - t);
	run->during_rc = LITEBUS_OK;
}

/* `during`: prune the backlog while the producers run. */
static void
live_prune(struct live *run)
{
	uint64_t t = bench_now_ns();

	run->during_rc =
	    litebus_prune(run->bus, BENCH_CHANNEL_ID, run->cfg->prune_before);
	run->during_s = bench_secs(bench_now_ns() - t);
}

static void live_fail(struct live_out *out, bool *ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
live_fail(struct live_out *out, bool *ok, const char *fmt, ...)
{
	va_list ap;

	if (*ok && out->committed_ok && out->table_ok && out->follower_ok) {
		va_start(ap, fmt);
		vsnprintf(out->why, sizeof out->why, fmt, ap);
		va_end(ap);
	}
	*ok = false;
}

/* The table after close: a contiguous range of ids that ends at the last
 * committed id (where it starts is the scenario's check). */
static void
live_check_table(const char *path, int64_t last_id, struct live_out *out)
{
	int64_t count, lo, hi;

	bench_table_summary(path, &count, &lo, &hi);
	out->table_lo = lo;
	out->table_hi = hi;
	if (hi != last_id || count != hi - lo + (count > 0))
		live_fail(out, &out->table_ok,
			  "table holds %lld rows, ids %lld..%lld; last "
			  "committed id %lld",
			  (long long)count, (long long)lo, (long long)hi,
			  (long long)last_id);
}

/* One live run on the database at path (created; left for the caller to
 * remove). */
static void
live_once(const struct live_cfg *cfg, const char *path, struct live_out *out)
{
	struct live run;
	litebus_options o;
	uint64_t t0, t_prod_end = 0;
	uint64_t committed[BENCH_MAXP];
	int64_t last_id, head = 0, oldest = 0;
	int nthreads, rc;

	memset(out, 0, sizeof *out);
	out->committed_ok = out->table_ok = out->follower_ok = true;
	hist_init(&out->lat);
	memset(&run, 0, sizeof run);
	run.cfg = cfg;
	atomic_init(&run.stop, false);
	atomic_init(&run.target, 0);
	bench_drain_init(&run.drain);

	bench_bus_options(&o, path, LITEBUS_DURABILITY_NORMAL, 4096);
	o.retention = cfg->retention;
	if (cfg->prune_interval_ms > 0)
		o.prune_interval_ms = cfg->prune_interval_ms;
	if (cfg->prune_batch_rows > 0)
		o.prune_batch_rows = cfg->prune_batch_rows;
	run.bus = bench_open_bus_opts(&o);
	bench_fill(run.bus, cfg->backlog);

	run.prod = calloc((size_t)cfg->producers, sizeof *run.prod);
	if (run.prod == NULL) {
		fprintf(stderr, "litebus-bench: out of memory\n");
		exit(2);
	}
	run.oracle = bench_oracle((uint32_t)cfg->producers);
	nthreads = cfg->producers + 1;
	if (cfg->follow != NULL) {
		/* The backlog would be delivered too: not combined. */
		if (cfg->backlog != 0) {
			fprintf(stderr, "litebus-bench: a follower with a "
					"backlog\n");
			exit(2);
		}
		run.oc = oracle_reader_new(run.oracle, cfg->follow->name);
		if (run.oc == NULL) {
			fprintf(stderr, "litebus-bench: out of memory\n");
			exit(2);
		}
		run.fh = cfg->follow->open(run.bus);
		nthreads++;
	}
	pthread_barrier_init(&run.start, NULL, (unsigned)nthreads);
	if (cfg->follow != NULL)
		pthread_create(&run.fthread, NULL, follower_main, &run);
	for (int i = 0; i < cfg->producers; i++) {
		struct producer *p = &run.prod[i];

		p->run = &run;
		p->id = (uint32_t)i;
		atomic_init(&p->committed, 0);
		atomic_init(&p->failed, 0);
		hist_init(&p->lat);
		sem_init(&p->slots, 0, INFLIGHT);
		pthread_create(&p->thread, NULL, producer_main, p);
	}
	pthread_barrier_wait(&run.start);
	t0 = bench_now_ns();
	cfg->during(&run);
	atomic_store_explicit(&run.stop, true, memory_order_relaxed);
	out->during_s = run.during_s;
	if (run.during_rc != LITEBUS_OK)
		live_fail(out, &out->table_ok, "during the run: %s (%s)",
			  litebus_errname(run.during_rc),
			  litebus_last_errmsg());

	for (int i = 0; i < cfg->producers; i++) {
		struct producer *p = &run.prod[i];
		uint64_t failed;

		pthread_join(p->thread, NULL);
		sem_destroy(&p->slots);
		hist_merge(&out->lat, &p->lat);
		committed[i] =
		    atomic_load_explicit(&p->committed, memory_order_relaxed);
		failed = atomic_load_explicit(&p->failed, memory_order_relaxed);
		out->events += committed[i];
		if (p->t_end > t_prod_end)
			t_prod_end = p->t_end;
		if (failed != 0 || p->first_error != 0 ||
		    committed[i] != p->submitted)
			live_fail(out, &out->committed_ok,
				  "producer %d: %llu of %llu committed, first "
				  "error %d (%s)",
				  i, (unsigned long long)committed[i],
				  (unsigned long long)p->submitted,
				  p->first_error,
				  litebus_errname(p->first_error));
	}
	out->ev_s = (double)out->events / bench_secs(t_prod_end - t0);
	last_id = (int64_t)(cfg->backlog + out->events);
	bench_litebus_check(litebus_stats_get(run.bus, &out->st),
			    "litebus_stats_get");
	if (out->st.events != cfg->backlog + out->events)
		live_fail(out, &out->committed_ok,
			  "litebus_stats events %llu, %llu committed",
			  (unsigned long long)out->st.events,
			  (unsigned long long)(cfg->backlog + out->events));
	rc = litebus_channel_head(run.bus, BENCH_CHANNEL_ID, &head, &oldest);
	if (rc != LITEBUS_OK || head != last_id)
		live_fail(out, &out->committed_ok,
			  "litebus_channel_head: %s, head %lld, last "
			  "committed %lld",
			  litebus_errname(rc), (long long)head,
			  (long long)last_id);

	if (cfg->follow != NULL) {
		bool drained;

		atomic_store_explicit(&run.target, last_id,
				      memory_order_relaxed);
		drained = bench_drain_wait(&run.drain, 1, t_prod_end,
					   DRAIN_DEADLINE_NS);
		pthread_join(run.fthread, NULL);
		oracle_commit_dense(run.oracle, 1, out->events, committed);
		if (!drained)
			oracle_consumer_fail(run.oc,
					     "not caught up %llu s after the "
					     "last commit",
					     DRAIN_DEADLINE_NS / 1000000000ull);
		if (!oracle_check(run.oracle, run.oc, out->why,
				  sizeof out->why))
			out->follower_ok = false;
		else if (!run.settled)
			live_fail(out, &out->follower_ok, "%s", run.settle_why);
		out->deliveries_s = (double)oracle_received(run.oc) /
				    bench_secs(run.t_last - t0);
		out->tail_ms = run.t_last > t_prod_end
				   ? (double)(run.t_last - t_prod_end) / 1e6
				   : 0;
	}
	litebus_close(run.bus);
	pthread_barrier_destroy(&run.start);
	live_check_table(path, last_id, out);
	oracle_free(run.oracle);
	free(run.prod);
}

static void
add_checks(struct bench_result *r, const char *side, const struct live_out *o)
{
	char name[40];

	snprintf(name, sizeof name, "%s_committed", side);
	res_check(r, name, o->committed_ok, "%s: %s", side, o->why);
	snprintf(name, sizeof name, "%s_table", side);
	res_check(r, name, o->table_ok, "%s: %s", side, o->why);
	snprintf(name, sizeof name, "%s_follower_exact", side);
	res_check(r, name, o->follower_ok, "%s: %s", side, o->why);
}

static double
us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* p50 and p99 of the exec round trips, in us; not a number in submit
 * mode (not timed). */
static double
lat_us(const struct live_out *o, bool submit, double q)
{
	return submit ? NAN : us(hist_quantile(&o->lat, q));
}

static double
live_seconds(void)
{
	return bench_cfg.quick ? 0.15 : 1.0;
}

/* The producer configurations of `retention` and `consumer`. */
static const struct {
	int producers;
	bool submit;
} live_modes[] = {{1, false}, {4, true}};
#define NMODES (sizeof live_modes / sizeof live_modes[0])

static struct bench_result *
mode_result(const char *scenario, size_t m)
{
	struct bench_result *r = res_new(scenario);

	res_cfg(r, "P", "%d", live_modes[m].producers);
	res_cfg(r, "mode", "%s", live_modes[m].submit ? "submit256" : "exec");
	return r;
}

/* ------------------------------------------------------------------ */
/* retention                                                           */

static const litebus_retention ret_policy[] = {
    {.channel = BENCH_CHANNEL, .max_rows = RET_MAX_ROWS},
    {.channel = NULL},
};

/* The two sides: retention off and on.  `prunes`: the table must have
 * lost its first rows by the end. */
static const struct {
	const char *name;
	const litebus_retention *retention;
	bool prunes;
} ret_sides[2] = {{"off", NULL, false}, {"on", ret_policy, true}};

void
scenario_retention(void)
{
	res_note("retention: retention ON (max_rows=%d, prune_interval_ms=%d: "
		 "pruning all the time) vs OFF, same producers; x_off = "
		 "commit rate on / off; exec round trip p50/p99 in us, "
		 "p99_x_off = on / off; pruned = rows gone at the end, "
		 "prune_jobs = chunks run",
		 RET_MAX_ROWS, RET_INTERVAL_MS);
	for (size_t m = 0; m < NMODES; m++) {
		struct bench_result *r = mode_result("retention", m);

		res_cfg(r, "max_rows", "%d", RET_MAX_ROWS);
		res_cfg(r, "interval_ms", "%d", RET_INTERVAL_MS);
		for (int rep = 0; rep < bench_cfg.reps; rep++) {
			static struct live_out out[2];
			const struct live_out *off = &out[0], *on = &out[1];
			bool sub = live_modes[m].submit;

			for (int k = 0; k < 2; k++) {
				int s = (k + rep) % 2;
				struct live_cfg cfg = {
				    .producers = live_modes[m].producers,
				    .submit = sub,
				    .retention = ret_sides[s].retention,
				    .prune_interval_ms = RET_INTERVAL_MS,
				    .during = live_sleep,
				    .seconds = live_seconds(),
				};
				char path[512];

				bench_db_path(path, sizeof path, "retention");
				live_once(&cfg, path, &out[s]);
				bench_db_remove(path);
				res_check(r, "pruning_as_configured",
					  (out[s].table_lo > 1) ==
					      ret_sides[s].prunes,
					  "retention %s: the table starts at "
					  "id %lld",
					  ret_sides[s].name,
					  (long long)out[s].table_lo);
				add_checks(r, ret_sides[s].name, &out[s]);
			}
			res_val(r, "on_ev_s", 0, on->ev_s);
			res_val(r, "off_ev_s", 0, off->ev_s);
			res_ratio(r, "x_off", 3, on->ev_s, off->ev_s);
			res_val(r, "on_p50_us", 1, lat_us(on, sub, 0.50));
			res_val(r, "off_p50_us", 1, lat_us(off, sub, 0.50));
			res_val(r, "on_p99_us", 1, lat_us(on, sub, 0.99));
			res_val(r, "off_p99_us", 1, lat_us(off, sub, 0.99));
			res_ratio(r, "p99_x_off", 2, lat_us(on, sub, 0.99),
				  lat_us(off, sub, 0.99));
			res_val(r, "pruned", 0, (double)(on->table_lo - 1));
			res_val(r, "retained", 0,
				(double)(on->table_hi - on->table_lo + 1));
			res_val(r, "prune_jobs", 0,
				(double)(on->st.jobs - on->events));
		}
		res_emit(r);
	}
}

/* ------------------------------------------------------------------ */
/* consumer                                                            */

/* The three sides: no follower, a reader, an acking consumer. */
enum { SIDE_NONE, SIDE_READER, SIDE_CONSUMER, NSIDES };
static const struct follower_ops *const cons_sides[NSIDES] = {
    NULL, &follow_reader, &follow_consumer};
static const char *const cons_side_name[NSIDES] = {"none", "reader",
						   "consumer"};

void
scenario_consumer(void)
{
	res_note("consumer: one durable consumer acking every row "
		 "(litebus_consumer_ack after each next) vs one reader vs "
		 "none, following live producers; x_none = writer's commit "
		 "rate with the consumer / with none; x_reader = consumer's "
		 "deliveries/s / the reader's; acks_per_job = rows acked / "
		 "ack jobs run");
	for (size_t m = 0; m < NMODES; m++) {
		struct bench_result *r = mode_result("consumer", m);

		for (int rep = 0; rep < bench_cfg.reps; rep++) {
			static struct live_out out[NSIDES];
			const struct live_out *none = &out[SIDE_NONE];
			const struct live_out *rd = &out[SIDE_READER];
			const struct live_out *cs = &out[SIDE_CONSUMER];
			uint64_t ack_jobs;

			for (int k = 0; k < NSIDES; k++) {
				int s = (k + rep) % NSIDES;
				struct live_cfg cfg = {
				    .producers = live_modes[m].producers,
				    .submit = live_modes[m].submit,
				    .follow = cons_sides[s],
				    .during = live_sleep,
				    .seconds = live_seconds(),
				};
				char path[512];

				bench_db_path(path, sizeof path, "consumer");
				live_once(&cfg, path, &out[s]);
				bench_db_remove(path);
				res_check(r, "table_from_id_1",
					  out[s].table_lo == 1,
					  "%s: the table starts at id %lld",
					  cons_side_name[s],
					  (long long)out[s].table_lo);
				add_checks(r, cons_side_name[s], &out[s]);
			}
			ack_jobs = cs->st.jobs - cs->events;
			res_val(r, "none_ev_s", 0, none->ev_s);
			res_val(r, "reader_ev_s", 0, rd->ev_s);
			res_val(r, "cons_ev_s", 0, cs->ev_s);
			res_ratio(r, "x_none", 3, cs->ev_s, none->ev_s);
			res_ratio(r, "reader_x_none", 3, rd->ev_s, none->ev_s);
			res_val(r, "reader_deliv_s", 0, rd->deliveries_s);
			res_val(r, "cons_deliv_s", 0, cs->deliveries_s);
			res_ratio(r, "x_reader", 3, cs->deliveries_s,
				  rd->deliveries_s);
			res_ratio(r, "cons_keep_up", 3, cs->deliveries_s,
				  cs->ev_s);
			res_val(r, "cons_tail_ms", 1, cs->tail_ms);
			res_val(r, "ack_jobs", 0, (double)ack_jobs);
			res_ratio(r, "acks_per_job", 1, (double)cs->events,
				  (double)ack_jobs);
		}
		res_emit(r);
	}
}

/* ------------------------------------------------------------------ */
/* prune                                                               */

/* A plain DELETE of ids 1..rows in one transaction on the closed file:
 * rows/s, for scale.  *deleted: rows it deleted. */
static double
prune_plain_delete(const char *path, uint64_t rows, int64_t *deleted)
{
	sqlite3 *db = bench_sqlite_open(path, LITEBUS_DURABILITY_NORMAL, false);
	sqlite3_stmt *st;
	uint64_t t;
	int rc;

	rc = sqlite3_prepare_v2(
	    db, "DELETE FROM \"" BENCH_TABLE "\" WHERE event_id <= ?1", -1, &st,
	    NULL);
	bench_sqlite_check(rc, db, "prepare DELETE");
	bench_sqlite_check(sqlite3_bind_int64(st, 1, (int64_t)rows), db,
			   "bind");
	t = bench_now_ns();
	bench_sqlite_check(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), db,
			   "BEGIN");
	bench_sqlite_check(sqlite3_step(st), db, "DELETE");
	*deleted = sqlite3_changes64(db);
	bench_sqlite_check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db,
			   "COMMIT");
	t = bench_now_ns() - t;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return (double)rows / bench_secs(t);
}

/* One prune configuration: prune_batch_rows = batch. */
static void
prune_config(uint64_t rows, uint32_t batch)
{
	struct bench_result *r = res_new("prune");

	res_cfg(r, "rows", "%llu", (unsigned long long)rows);
	res_cfg(r, "batch", "%u", batch);
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		struct live_cfg cfg = {
		    .producers = 1,
		    .prune_batch_rows = batch,
		    .backlog = rows,
		    .during = live_prune,
		    .prune_before = (int64_t)rows + 1,
		};
		static struct live_out with, none;
		char path[512];
		int64_t deleted = 0;
		double del_s;

		bench_db_path(path, sizeof path, "prune");
		live_once(&cfg, path, &with);
		bench_db_remove(path);
		/* The whole backlog is gone, and not one row more. */
		res_check(r, "prune_table", with.table_lo == (int64_t)rows + 1,
			  "with prune: the table starts at id %lld, not "
			  "%llu",
			  (long long)with.table_lo,
			  (unsigned long long)rows + 1);
		add_checks(r, "prune", &with);

		/* The same producer, as long as the prune took. */
		cfg.during = live_sleep;
		cfg.seconds = with.during_s;
		bench_db_path(path, sizeof path, "prune");
		live_once(&cfg, path, &none);
		res_check(r, "none_table", none.table_lo == 1,
			  "no prune: the table starts at id %lld",
			  (long long)none.table_lo);
		add_checks(r, "none", &none);
		del_s = prune_plain_delete(path, rows, &deleted);
		bench_db_remove(path);
		res_check(r, "delete_rows", deleted == (int64_t)rows,
			  "the plain DELETE deleted %lld rows",
			  (long long)deleted);

		res_val(r, "prune_s", 3, with.during_s);
		res_val(r, "prune_rows_s", 0, (double)rows / with.during_s);
		res_val(r, "delete_rows_s", 0, del_s);
		res_val(r, "pct_delete", 1,
			100 * (double)rows / with.during_s / del_s);
		/* The plain DELETE's transaction: how long it would stall
		 * every commit. */
		res_val(r, "delete_stall_ms", 1, 1e3 * (double)rows / del_s);
		res_val(r, "prune_p50_us", 1, lat_us(&with, false, 0.50));
		res_val(r, "none_p50_us", 1, lat_us(&none, false, 0.50));
		res_val(r, "prune_p99_us", 1, lat_us(&with, false, 0.99));
		res_val(r, "none_p99_us", 1, lat_us(&none, false, 0.99));
		res_ratio(r, "p99_x_none", 2, lat_us(&with, false, 0.99),
			  lat_us(&none, false, 0.99));
		res_val(r, "prune_max_us", 1, us(with.lat.max));
		res_val(r, "prune_ev_s", 0, with.ev_s);
		res_val(r, "none_ev_s", 0, none.ev_s);
		res_ratio(r, "x_none", 3, with.ev_s, none.ev_s);
		/* Jobs other than the fill's and the producer's. */
		res_val(r, "chunks", 0,
			(double)(with.st.jobs - with.events -
				 rows / BENCH_FILL_PER_JOB));
	}
	res_emit(r);
}

void
scenario_prune(void)
{
	uint64_t rows = bench_cfg.quick ? 20000 : 200000;
	litebus_options dflt;

	litebus_options_init(&dflt);
	res_note("prune: litebus_prune of a backlog of %llu rows (batch = "
		 "prune_batch_rows; %u is the default) while one exec "
		 "producer commits, vs the same producer for as long with no "
		 "prune; p99_x_none = the producer's exec p99 with prune / "
		 "without; delete_rows_s = one plain DELETE of the same rows "
		 "in one transaction (ceiling), which would stall every "
		 "commit for delete_stall_ms",
		 (unsigned long long)rows, dflt.prune_batch_rows);
	prune_config(rows, dflt.prune_batch_rows);
	prune_config(rows, 100);
}
