/* SPDX-License-Identifier: MIT */
/*
 * scenario_commit.c - end to end: producers commit events while readers
 * and subscribers follow live (`commit`), and how the writer's commit
 * rate changes as consumers are added (`fanout`).
 *
 * One run: a fresh database file; P producer threads commit for a fixed
 * time, each either calling litebus_exec (one job in flight) or keeping up
 * to 256 jobs in flight with litebus_submit; every job emits one event.
 * Consumers are attached before the producers start.  When the time is
 * up the producers finish what they have in flight, the bus closes, and
 * every consumer drains until CLOSED.  The naive bus runs the same way
 * (both are contenders, contender.h), its producers committing one event
 * per call.
 *
 * Checks: every job committed; the table holds exactly the committed
 * rows; every reader saw exactly the committed events, in order, each
 * producer's in its submission order; every raw subscriber's received +
 * skipped equals the events published.
 */
#include "baseline_naive.h" /* ceiling_insert */
#include "bench.h"
#include "contender.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFLIGHT 256
/* A consumer that has not drained this long after the last commit has
 * fallen behind for good (or hangs): the run FAILs instead of hanging. */
#define DRAIN_DEADLINE_NS (60ull * 1000000000ull)

struct run_cfg {
	int producers;
	bool submit; /* up to INFLIGHT jobs in flight per producer */
	int readers; /* following live, every row */
	int subs;    /* raw subscribers, reading */
	int idle;    /* raw subscribers attached, never reading */
	int durability;
	double seconds;
};

struct run_out {
	uint64_t events;
	double ev_s;
	double jobs_per_tx;  /* litebus only */
	double deliveries_s; /* rows delivered to all readers per second */
	double tail_ms;	     /* last commit -> slowest reader's last row */
	uint64_t reader_lags;
	/* Rows readers delivered from memory / rows they delivered (live
	 * rows from memory); 0 without readers. */
	double mem_hit;
	uint64_t sub_lags;
	double sub_lost; /* skipped / (subs * events) */
	/* Process CPU seconds (every thread: producers, writer, consumers,
	 * checkpointer) from the start until the producers are done, per
	 * committed event, in microseconds. */
	double cpu_us_ev;
	bool producers_ok, table_ok, readers_ok, subs_ok;
	char why[256];
};

struct run;

struct producer {
	pthread_t thread;
	struct run *run;
	uint32_t id;
	sem_t slots; /* submit mode: free in-flight slots */
	uint64_t submitted;
	/* Bumped by done() on the writer thread, read after the slots were
	 * all taken back (sem_wait synchronizes). */
	_Atomic uint64_t committed, failed;
	int first_error;
	uint64_t t_end;
};

struct consumer {
	pthread_t thread;
	struct run *run;
	bool is_reader;
	void *handle;		    /* the contender's reader or subscriber */
	struct oracle_consumer *oc; /* what it got, for the checks */
	uint64_t delivered, lags, skipped, memory_rows;
	uint64_t t_last;
	int error;
};

struct run {
	const struct run_cfg *cfg;
	const struct contender *ops;
	void *bus;
	struct oracle *oracle; /* what committed and what was delivered */
	pthread_barrier_t start;
	_Atomic bool stop;
	struct bench_drain drain;
	struct producer *prod;
	struct consumer *cons;
	int ncons;
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

static bool
run_stopped(struct run *run)
{
	/* Relaxed: only a flag; the producer's work does not depend on
	 * anything written before it. */
	return atomic_load_explicit(&run->stop, memory_order_relaxed);
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	struct run *run = p->run;
	const struct contender *ops = run->ops;
	uint32_t seq = 0;

	pthread_barrier_wait(&run->start);
	while (!run_stopped(run)) {
		uint64_t key = BENCH_KEY(p->id, seq);
		int rc;

		if (!run->cfg->submit) {
			rc = ops->exec(run->bus, key);
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
			rc = ops->submit(run->bus, key, producer_done, p);
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

static void
consumer_got(struct consumer *c, int64_t id, uint64_t key,
	     const unsigned char *subject, size_t subject_len)
{
	bench_saw(c->oc, id, key, subject, subject_len);
	c->delivered++;
	c->t_last = bench_now_ns();
}

static void *
consumer_main(void *arg)
{
	struct consumer *c = arg;
	struct run *run = c->run;

	pthread_barrier_wait(&run->start);
	while (!bench_drain_abandoned(&run->drain)) {
		struct contender_delivery d;
		int rc;

		rc = run->ops->next(c->handle, &d, 200);
		if (rc == LITEBUS_OK)
			consumer_got(c, d.event_id, d.key, d.subject,
				     d.subject_len);
		else if (rc == LITEBUS_LAGGED) {
			c->lags++;
			c->skipped += d.skipped;
			oracle_lagged(c->oc, d.skipped);
		}
		if (rc == LITEBUS_CLOSED)
			break;
		if (rc < 0) {
			c->error = rc;
			oracle_consumer_fail(c->oc, "%s", litebus_errname(rc));
			break;
		}
	}
	c->lags += run->ops->reader_lags(c->handle);
	if (c->is_reader)
		c->memory_rows = run->ops->reader_memory_rows(c->handle);
	bench_drain_finished(&run->drain);
	return NULL;
}

/* Wait for every consumer to drain, at most DRAIN_DEADLINE_NS after t. */
static bool
run_wait_consumers(struct run *run, uint64_t t)
{
	bool all =
	    bench_drain_wait(&run->drain, run->ncons, t, DRAIN_DEADLINE_NS);

	for (int i = 0; i < run->ncons; i++)
		pthread_join(run->cons[i].thread, NULL);
	return all;
}

static void
run_once(const struct run_cfg *cfg, const struct contender *ops,
	 struct run_out *out)
{
	struct run run;
	char path[512];
	int nthreads, nactive = cfg->readers + cfg->subs;
	void **idle = NULL;
	uint64_t t0, t_prod_end = 0, t_last = 0, delivered = 0, memory_rows = 0;
	double cpu0;
	uint64_t committed[BENCH_MAXP];
	litebus_stats st;
	int64_t count, lo, hi;

	memset(out, 0, sizeof *out);
	memset(&run, 0, sizeof run);
	run.cfg = cfg;
	run.ops = ops;
	atomic_init(&run.stop, false);
	bench_drain_init(&run.drain);
	bench_db_path(path, sizeof path, ops->name);
	run.bus = ops->open(path, cfg->durability, 4096);

	run.prod = calloc((size_t)cfg->producers, sizeof *run.prod);
	run.cons = calloc((size_t)nactive + 1, sizeof *run.cons);
	idle = calloc((size_t)cfg->idle + 1, sizeof *idle);
	if (run.prod == NULL || run.cons == NULL || idle == NULL) {
		fprintf(stderr, "litebus-bench: out of memory\n");
		exit(2);
	}
	run.oracle = bench_oracle((uint32_t)cfg->producers);
	/* Attach every consumer before anything is committed. */
	for (int i = 0; i < cfg->idle; i++)
		idle[i] = ops->attach(run.bus, CONTENDER_IDLE);
	for (int i = 0; i < nactive; i++) {
		struct consumer *c = &run.cons[run.ncons++];

		c->run = &run;
		c->is_reader = i < cfg->readers;
		c->oc = bench_consumer(run.oracle, c->is_reader, i);
		c->handle = ops->attach(run.bus, c->is_reader ? CONTENDER_READER
							      : CONTENDER_SUB);
	}

	nthreads = cfg->producers + run.ncons + 1;
	pthread_barrier_init(&run.start, NULL, (unsigned)nthreads);
	for (int i = 0; i < run.ncons; i++)
		pthread_create(&run.cons[i].thread, NULL, consumer_main,
			       &run.cons[i]);
	for (int i = 0; i < cfg->producers; i++) {
		struct producer *p = &run.prod[i];

		p->run = &run;
		p->id = (uint32_t)i;
		atomic_init(&p->committed, 0);
		atomic_init(&p->failed, 0);
		sem_init(&p->slots, 0, INFLIGHT);
		pthread_create(&p->thread, NULL, producer_main, p);
	}
	pthread_barrier_wait(&run.start);
	t0 = bench_now_ns();
	cpu0 = bench_cpu_s();
	bench_sleep_ns((uint64_t)(cfg->seconds * 1e9));
	atomic_store_explicit(&run.stop, true, memory_order_relaxed);

	out->producers_ok = true;
	for (int i = 0; i < cfg->producers; i++) {
		struct producer *p = &run.prod[i];
		uint64_t failed;

		pthread_join(p->thread, NULL);
		sem_destroy(&p->slots);
		committed[i] =
		    atomic_load_explicit(&p->committed, memory_order_relaxed);
		failed = atomic_load_explicit(&p->failed, memory_order_relaxed);
		out->events += committed[i];
		if (p->t_end > t_prod_end)
			t_prod_end = p->t_end;
		if ((failed != 0 || p->first_error != 0 ||
		     committed[i] != p->submitted) &&
		    out->producers_ok) {
			out->producers_ok = false;
			snprintf(out->why, sizeof out->why,
				 "producer %d: %llu of %llu committed, first "
				 "error %d (%s)",
				 i, (unsigned long long)committed[i],
				 (unsigned long long)p->submitted,
				 p->first_error,
				 litebus_errname(p->first_error));
		}
	}
	out->ev_s = (double)out->events / bench_secs(t_prod_end - t0);
	if (out->events > 0)
		out->cpu_us_ev =
		    (bench_cpu_s() - cpu0) * 1e6 / (double)out->events;
	if (ops->stats(run.bus, &st)) {
		out->jobs_per_tx =
		    st.commits > 0 ? (double)st.jobs / (double)st.commits : 0;
		if (st.events != out->events && out->producers_ok) {
			out->producers_ok = false;
			snprintf(out->why, sizeof out->why,
				 "litebus_stats events %llu, %llu committed",
				 (unsigned long long)st.events,
				 (unsigned long long)out->events);
		}
	}
	ops->end(run.bus);

	out->readers_ok = out->subs_ok = true;
	if (!run_wait_consumers(&run, t_prod_end)) {
		out->readers_ok = out->subs_ok = false;
		snprintf(out->why, sizeof out->why,
			 "a consumer had not drained %llu s after the last "
			 "commit",
			 DRAIN_DEADLINE_NS / 1000000000ull);
	}
	oracle_commit_dense(run.oracle, 1, out->events, committed);
	for (int i = 0; i < run.ncons; i++) {
		struct consumer *c = &run.cons[i];
		char why[sizeof out->why];

		out->reader_lags += c->is_reader ? c->lags : 0;
		out->sub_lags += c->is_reader ? 0 : c->lags;
		if (c->is_reader) {
			delivered += c->delivered;
			memory_rows += c->memory_rows;
			if (c->t_last > t_last)
				t_last = c->t_last;
		} else {
			uint64_t skp = c->skipped;
			uint64_t own_rcv, own_skp;

			if (ops->sub_stats(c->handle, &own_rcv, &own_skp))
				oracle_sub_stats(c->oc, own_rcv, own_skp);
			if (out->events > 0)
				out->sub_lost += (double)skp /
						 (double)out->events /
						 (double)cfg->subs;
		}
		if (!oracle_check(run.oracle, c->oc, why, sizeof why)) {
			bool *ok =
			    c->is_reader ? &out->readers_ok : &out->subs_ok;
			if (*ok)
				snprintf(out->why, sizeof out->why, "%s", why);
			*ok = false;
		}
		ops->detach(c->handle);
	}
	for (int i = 0; i < cfg->idle; i++)
		ops->detach(idle[i]);
	if (cfg->readers > 0) {
		out->deliveries_s = (double)delivered / bench_secs(t_last - t0);
		out->mem_hit =
		    delivered > 0 ? (double)memory_rows / (double)delivered : 0;
		out->tail_ms = t_last > t_prod_end
				   ? (double)(t_last - t_prod_end) / 1e6
				   : 0;
	}
	ops->close(run.bus);
	pthread_barrier_destroy(&run.start);

	bench_table_summary(path, &count, &lo, &hi);
	out->table_ok = count == (int64_t)out->events &&
			(count == 0 || (lo == 1 && hi == count));
	if (!out->table_ok)
		snprintf(out->why, sizeof out->why,
			 "table holds %lld rows, ids %lld..%lld; %llu "
			 "committed",
			 (long long)count, (long long)lo, (long long)hi,
			 (unsigned long long)out->events);
	bench_db_remove(path);
	oracle_free(run.oracle);
	free(run.prod);
	free(run.cons);
	free(idle);
}

/* The naive bus has no asynchronous submit (contender_naive's submit
 * commits in the caller's thread), so it always runs exec: one event per
 * call, as its producers have always committed. */
static void
run_naive(const struct run_cfg *cfg, struct run_out *out)
{
	struct run_cfg c = *cfg;

	c.submit = false;
	run_once(&c, &contender_naive, out);
}

static const char *
dur_name(int durability)
{
	return durability == LITEBUS_DURABILITY_FULL ? "full" : "normal";
}

static void
add_checks(struct bench_result *r, const char *who, const struct run_out *o)
{
	char name[40];

	snprintf(name, sizeof name, "%s_committed", who);
	res_check(r, name, o->producers_ok, "%s", o->why);
	snprintf(name, sizeof name, "%s_table", who);
	res_check(r, name, o->table_ok, "%s", o->why);
	snprintf(name, sizeof name, "%s_readers_exact", who);
	res_check(r, name, o->readers_ok, "%s", o->why);
	snprintf(name, sizeof name, "%s_subs_accounted", who);
	res_check(r, name, o->subs_ok, "%s", o->why);
}

static uint64_t
ceiling_rows(void)
{
	return bench_cfg.quick ? 30000 : 200000;
}

static double
run_seconds(void)
{
	return bench_cfg.quick ? 0.12 : 0.6;
}

/* One (durability, P, S) configuration: two lines, exec and submit256,
 * sharing the naive bus and the ceiling measured in the same repetition. */
static void
commit_config(int durability, int producers, int readers)
{
	struct bench_result *r[2];
	struct run_cfg cfg = {0};

	cfg.producers = producers;
	cfg.readers = readers;
	cfg.durability = durability;
	cfg.seconds = run_seconds();
	for (int m = 0; m < 2; m++) {
		r[m] = res_new("commit");
		res_cfg(r[m], "P", "%d", producers);
		res_cfg(r[m], "mode", "%s", m ? "submit256" : "exec");
		res_cfg(r[m], "S", "%d", readers);
		res_cfg(r[m], "dur", "%s", dur_name(durability));
	}
	if (!res_selected(r[0]) && !res_selected(r[1])) {
		res_emit(r[0]);
		res_emit(r[1]);
		return;
	}
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		struct run_out naive, lb;
		double ceil;

		run_naive(&cfg, &naive);
		ceil = ceiling_insert(durability, ceiling_rows());
		for (int m = 0; m < 2; m++) {
			struct bench_result *x = r[m];

			if (!res_selected(x))
				continue;
			cfg.submit = m == 1;
			run_once(&cfg, &contender_litebus, &lb);
			res_val(x, "litebus_ev_s", 0, lb.ev_s);
			res_val(x, "naive_ev_s", 0, naive.ev_s);
			res_val(x, "ceiling_ev_s", 0, ceil);
			res_val(x, "pct_ceiling", 1, 100 * lb.ev_s / ceil);
			res_ratio(x, "x_naive", 2, lb.ev_s, naive.ev_s);
			res_val(x, "jobs_per_tx", 1, lb.jobs_per_tx);
			res_val(x, "deliveries_s", 0, lb.deliveries_s);
			/* deliveries / (S x committed): 1.0 = readers kept
			 * up over the whole run. */
			res_val(x, "keep_up", 3,
				readers > 0 ? lb.deliveries_s /
						  ((double)readers * lb.ev_s)
					    : 0);
			res_val(x, "tail_ms", 1, lb.tail_ms);
			res_val(x, "reader_lags", 0, (double)lb.reader_lags);
			res_val(x, "mem_hit", 3, lb.mem_hit);
			res_val(x, "naive_deliveries_s", 0, naive.deliveries_s);
			res_val(x, "cpu_us_ev", 2, lb.cpu_us_ev);
			res_val(x, "naive_cpu_us_ev", 2, naive.cpu_us_ev);
			add_checks(x, "litebus", &lb);
			add_checks(x, "naive", &naive);
		}
	}
	res_emit(r[0]);
	res_emit(r[1]);
}

/* ------------------------------------------------------------------ */
/* An idle bus: what waiting costs                                     */

#define IDLE_READERS 4
#define IDLE_SUBS 4
#define IDLE_WARMUP_EXECS 2000

struct idle_consumer {
	pthread_t thread;
	litebus_reader *reader; /* a reader, or */
	litebus_sub *sub;	/* a subscriber */
	_Atomic uint64_t got;	/* rows or events taken */
	int error;
};

/* Block in next/recv with no timeout until the bus closes: the cheapest a
 * waiting application can be, so that what the process spends is
 * litebus's. */
static void *
idle_consumer_main(void *arg)
{
	struct idle_consumer *c = arg;

	for (;;) {
		litebus_row row;
		litebus_event ev;
		int rc = c->reader != NULL
			     ? litebus_reader_next(c->reader, &row, -1)
			     : litebus_recv(c->sub, &ev, -1);

		if (rc == LITEBUS_CLOSED)
			break;
		if (rc < 0) {
			c->error = rc;
			break;
		}
		/* Relaxed: a counter the main thread polls. */
		if (rc == LITEBUS_OK)
			atomic_fetch_add_explicit(&c->got, 1,
						  memory_order_relaxed);
	}
	return NULL;
}

/*
 * `commit mode=idle`: a bus with IDLE_READERS readers and IDLE_SUBS raw
 * subscribers blocked in next/recv, right after a burst of
 * IDLE_WARMUP_EXECS execs (so that whatever adapts to traffic has seen
 * some), then no traffic for 10 s (1 s with --quick): the process's CPU
 * time over that window (getrusage), as CPU seconds per minute and
 * percent of one core.  The goal is 0: nothing spins or polls on a bus
 * with nothing to do.
 */
static void
commit_idle(void)
{
	struct bench_result *r = res_new("commit");
	double seconds = bench_cfg.quick ? 1.0 : 10.0;

	res_cfg(r, "mode", "idle");
	res_cfg(r, "readers", "%d", IDLE_READERS);
	res_cfg(r, "subs", "%d", IDLE_SUBS);
	res_cfg(r, "seconds", "%.0f", seconds);
	if (!res_selected(r)) {
		res_emit(r);
		return;
	}
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		struct idle_consumer c[IDLE_READERS + IDLE_SUBS];
		char path[512];
		litebus *bus;
		double cpu0, cpu;
		uint64_t t0, deadline;
		bool drained = false, ok = true;

		memset(c, 0, sizeof c);
		bench_db_path(path, sizeof path, "idle");
		bus = bench_open_bus(path, LITEBUS_DURABILITY_NORMAL, 4096);
		for (int i = 0; i < IDLE_READERS + IDLE_SUBS; i++) {
			atomic_init(&c[i].got, 0);
			if (i < IDLE_READERS)
				bench_litebus_check(
				    litebus_reader_open(bus, BENCH_CHANNEL_ID,
							LITEBUS_FROM_START,
							NULL, &c[i].reader),
				    "litebus_reader_open");
			else
				bench_litebus_check(
				    litebus_subscribe(bus, BENCH_CHANNEL_ID,
						      &c[i].sub),
				    "litebus_subscribe");
			pthread_create(&c[i].thread, NULL, idle_consumer_main,
				       &c[i]);
		}
		for (uint64_t k = 0; k < IDLE_WARMUP_EXECS; k++)
			bench_litebus_check(
			    litebus_exec(bus, bench_emit_job,
					 (void *)(uintptr_t)BENCH_KEY(0, k)),
			    "litebus_exec");
		/* Everyone has everything, so nothing is in flight. */
		deadline = bench_now_ns() + DRAIN_DEADLINE_NS;
		while (!drained && bench_now_ns() < deadline) {
			drained = true;
			for (int i = 0; i < IDLE_READERS + IDLE_SUBS; i++)
				drained =
				    drained &&
				    atomic_load_explicit(
					&c[i].got, memory_order_relaxed) ==
					IDLE_WARMUP_EXECS;
			bench_sleep_ns(1000000);
		}
		t0 = bench_now_ns();
		cpu0 = bench_cpu_s();
		bench_sleep_ns((uint64_t)(seconds * 1e9));
		cpu = bench_cpu_s() - cpu0;
		seconds = bench_secs(bench_now_ns() - t0);
		litebus_close(bus);
		for (int i = 0; i < IDLE_READERS + IDLE_SUBS; i++) {
			pthread_join(c[i].thread, NULL);
			ok = ok && c[i].error == 0;
			litebus_reader_close(c[i].reader);
			litebus_unsubscribe(c[i].sub);
		}
		bench_db_remove(path);
		res_val(r, "cpu_s_per_min", 4, cpu * 60 / seconds);
		res_val(r, "pct_core", 3, 100 * cpu / seconds);
		res_check(r, "drained", drained,
			  "the consumers had not taken the %d warm-up events "
			  "after %llu s",
			  IDLE_WARMUP_EXECS, DRAIN_DEADLINE_NS / 1000000000ull);
		res_check(r, "consumers_ok", ok,
			  "a consumer's next/recv failed");
	}
	res_emit(r);
}

void
scenario_commit(void)
{
	static const int durs[] = {LITEBUS_DURABILITY_NORMAL,
				   LITEBUS_DURABILITY_FULL};
	static const int producers[] = {1, 4, 8};
	static const int readers[] = {0, 1, 4};

	res_note("commit: P producers, each job emits one event; S readers "
		 "follow live. litebus (exec: 1 job in flight per producer; "
		 "submit256: up to 256) vs naive bus (1 tx per event) vs "
		 "ceiling (1 thread, 1024 rows/tx)");
	for (size_t d = 0; d < 2; d++)
		for (size_t p = 0; p < 3; p++)
			for (size_t s = 0; s < 3; s++)
				commit_config(durs[d], producers[p],
					      readers[s]);
	res_note("commit mode=idle: a bus with %d readers and %d "
		 "subscribers blocked in next/recv, no traffic (after %d "
		 "execs); process CPU over the window (goal 0)",
		 IDLE_READERS, IDLE_SUBS, IDLE_WARMUP_EXECS);
	commit_idle();
}

/* ------------------------------------------------------------------ */
/* fanout                                                              */

/* fanout: one S=0 run of each bus, as a value of the kind=none line. */
static void
fanout_base(struct bench_result *base, const struct run_out *lb0,
	    const struct run_out *nv0, double ceil)
{
	res_val(base, "litebus_ev_s", 0, lb0->ev_s);
	res_val(base, "x_S0", 3, 1.0);
	res_val(base, "naive_ev_s", 0, nv0->ev_s);
	res_val(base, "naive_x_S0", 3, 1.0);
	res_val(base, "ceiling_ev_s", 0, ceil);
	res_val(base, "pct_ceiling", 1, 100 * lb0->ev_s / ceil);
	res_ratio(base, "x_naive", 2, lb0->ev_s, nv0->ev_s);
	add_checks(base, "litebus", lb0);
	add_checks(base, "naive", nv0);
}

/* fanout: the line of kind k (0 idle, 1 sub, 2 reader) with S consumers,
 * against S=0 rates s0 (litebus) and n0 (naive bus). */
static void
fanout_line(struct bench_result *x, int k, int S, const struct run_out *lb,
	    const struct run_out *nv, double s0, double n0, double ceil)
{
	res_val(x, "litebus_ev_s", 0, lb->ev_s);
	res_ratio(x, "x_S0", 3, lb->ev_s, s0);
	res_val(x, "naive_ev_s", 0, nv->ev_s);
	res_ratio(x, "naive_x_S0", 3, nv->ev_s, n0);
	res_val(x, "ceiling_ev_s", 0, ceil);
	res_val(x, "pct_ceiling", 1, 100 * lb->ev_s / ceil);
	res_ratio(x, "x_naive", 2, lb->ev_s, nv->ev_s);
	if (k == 1) {
		res_val(x, "sub_lost", 4, lb->sub_lost);
		res_val(x, "sub_lags", 0, (double)lb->sub_lags);
	}
	if (k == 2) {
		res_val(x, "deliveries_s", 0, lb->deliveries_s);
		res_ratio(x, "keep_up", 3, lb->deliveries_s,
			  (double)S * lb->ev_s);
		res_val(x, "tail_ms", 1, lb->tail_ms);
		res_val(x, "mem_hit", 3, lb->mem_hit);
	}
	add_checks(x, "litebus", lb);
	add_checks(x, "naive", nv);
}

void
scenario_fanout(void)
{
	static const char *const kinds[] = {"idle", "sub", "reader"};
	static const int counts[] = {1, 4, 16, 64};
	enum { NK = 3, NS = 4 };
	struct bench_result *base, *r[NK][NS];
	struct run_cfg cfg = {0};

	res_note("fanout: P=4 submit256 normal; S consumers on the one "
		 "channel: idle (attached, never read), sub (raw subscribers "
		 "reading), reader (readers reading). x_S0 = commit rate / "
		 "rate with no consumer: the mean of the S=0 runs right "
		 "before and after that kind's lines, same repetition");
	cfg.producers = 4;
	cfg.submit = true;
	cfg.durability = LITEBUS_DURABILITY_NORMAL;
	cfg.seconds = run_seconds();
	base = res_new("fanout");
	res_cfg(base, "kind", "none");
	res_cfg(base, "S", "0");
	for (int k = 0; k < NK; k++)
		for (int s = 0; s < NS; s++) {
			r[k][s] = res_new("fanout");
			res_cfg(r[k][s], "kind", "%s", kinds[k]);
			res_cfg(r[k][s], "S", "%d", counts[s]);
		}
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		/* The S=0 rate before each kind and after the last: a kind's
		 * lines divide by the mean of the S=0 runs right before and
		 * after them.  With one S=0 run per repetition, every x_S0
		 * of the repetition moved with it (idle subscribers, which
		 * cost nothing, read 0.70-0.81 when it ran fast). */
		double lb0[NK + 1], nv0[NK + 1];
		struct run_out lb[NS], nv[NS];
		double ceil = ceiling_insert(cfg.durability, ceiling_rows());

		for (int k = 0; k <= NK; k++) {
			struct run_out l0, n0;
			struct run_cfg c0 = cfg;

			run_once(&c0, &contender_litebus, &l0);
			run_naive(&c0, &n0);
			lb0[k] = l0.ev_s;
			nv0[k] = n0.ev_s;
			fanout_base(base, &l0, &n0, ceil);
			if (k > 0)
				for (int s = 0; s < NS; s++)
					fanout_line(r[k - 1][s], k - 1,
						    counts[s], &lb[s], &nv[s],
						    (lb0[k - 1] + lb0[k]) / 2,
						    (nv0[k - 1] + nv0[k]) / 2,
						    ceil);
			if (k == NK)
				break;
			for (int s = 0; s < NS; s++) {
				struct run_cfg c = cfg;

				if (k == 0)
					c.idle = counts[s];
				else if (k == 1)
					c.subs = counts[s];
				else
					c.readers = counts[s];
				run_once(&c, &contender_litebus, &lb[s]);
				run_naive(&c, &nv[s]);
			}
		}
	}
	res_emit(base);
	for (int k = 0; k < NK; k++)
		for (int s = 0; s < NS; s++)
			res_emit(r[k][s]);
}
