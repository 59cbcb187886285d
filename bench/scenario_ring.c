/* SPDX-License-Identifier: MIT */
/*
 * scenario_ring.c - the broadcast ring alone, litebus's against the ring
 * baseline (baseline_ring.h).
 *
 * One publisher (the main thread) and S subscriber threads.  litebus's
 * side is a channel of an in-memory bus whose writer stays idle: the
 * publisher stands in for the writer and calls lb_channel_publish() per
 * record and lb_channel_wake() per burst of up to 64 records (the writer
 * wakes once per batch), while the subscribers use the public API
 * (litebus_recv), so lap handling and sleeping are the library's own.  The
 * baseline publishes the same bursts under its lock.  Records are
 * litebus's 56-byte ring records; ids are the positions 1..N.
 *
 * mode=max publishes as fast as it can for a fixed time (0.3 s; 0.05 s
 * with --quick), reading the clock once per burst: publish rate, each
 * subscriber's delivered rate (mean over subscribers), the fraction of
 * records lost to laps, and lags.  mode=paced offers rising fixed rates
 * (open loop, 1M to 50M records/s, 0.1 s each) and reports the highest
 * rate at which no subscriber lost anything and the publisher kept the
 * pace (>= 95%), and the fraction lost at 10M records/s.
 *
 * Both rings are tables of operations (struct ring_ops), so that one
 * publisher loop and one subscriber loop serve both.
 *
 * Checks (the shared oracle, tests/support/oracle.h): every subscriber
 * saw ids in order, each LAGGED skipped exactly what it reported, records
 * intact (key and subject agree), and received + skipped == published.
 */
#include "baseline_ring.h"
#include "bench.h"
#include "contender.h"

#include "bus.h"
#include "channel.h"
#include "role.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING_BURST 64
#define RING_MAX_SUBS 8
#define RING_DRAIN_DEADLINE_NS (30ull * 1000000000ull)

struct ring_run;

struct ring_sub {
	pthread_t thread;
	struct ring_run *run;
	litebus_sub *sub;	    /* litebus's ring, or */
	struct bring_sub bsub;	    /* the baseline's */
	litebus_event ev;	    /* litebus's last event */
	struct bring_rec rec;	    /* the baseline's last record */
	struct oracle_consumer *oc; /* what it got, for the checks */
	uint64_t received, lags, skipped, t_last;
};

/* One burst's records in each ring's format.  Both are filled for either
 * ring, so that the publisher does the same work in both runs (as it
 * always has: the figures stay comparable). */
struct ring_burst {
	struct lb_rec lrec[RING_BURST];
	struct bring_rec brec[RING_BURST];
};

/* A ring under test. */
struct ring_ops {
	const char *name; /* "litebus", "base": the figures' prefix */
	/* A ring of run->capacity slots. */
	void (*open)(struct ring_run *run);
	void (*subscribe)(struct ring_run *run, struct ring_sub *s);
	/* As contender.h's next: OK (*d), LAGGED (d->skipped), TIMEOUT,
	 * CLOSED, or a negative error. */
	int (*recv)(struct ring_sub *s, struct contender_delivery *d,
		    int timeout_ms);
	/* The subscriber's own count of what it received and skipped;
	 * false if the ring keeps none. */
	bool (*sub_stats)(struct ring_sub *s, uint64_t *received,
			  uint64_t *skipped);
	void (*unsubscribe)(struct ring_sub *s);
	/* Publish the burst's first n records and wake the subscribers. */
	void (*publish)(struct ring_run *run, const struct ring_burst *b,
			size_t n);
	/* No more records: the subscribers drain, then see CLOSED. */
	void (*close)(struct ring_run *run);
	/* After every subscriber has been joined and unsubscribed. */
	void (*fini)(struct ring_run *run);
};

struct ring_run {
	const struct ring_ops *ops;
	uint32_t capacity;
	int nsubs;
	uint64_t records; /* paced: to publish; max: published */
	double rate;	  /* records/s offered; 0: as fast as possible */
	double seconds;	  /* max: publish for this long */
	litebus *bus;
	struct lb_channel *ch;
	struct bring ring;
	struct oracle *oracle; /* what was published and delivered */
	pthread_barrier_t start;
	struct bench_drain drain;
	struct ring_sub subs[RING_MAX_SUBS];
};

struct ring_out {
	double pub_s;	/* achieved publish rate */
	double deliv_s; /* mean over subscribers */
	double lost;	/* skipped / (S * N) */
	uint64_t lags;
	bool ok;
	char why[200];
};

/* ------------------------------------------------------------------ */
/* litebus's ring: a channel of an idle in-memory bus                  */

static void
lbring_open(struct ring_run *run)
{
	run->bus =
	    bench_open_bus(NULL, LITEBUS_DURABILITY_NORMAL, run->capacity);
	run->ch = lb_bus_channel(run->bus, BENCH_CHANNEL_ID);
}

static void
lbring_subscribe(struct ring_run *run, struct ring_sub *s)
{
	bench_litebus_check(
	    litebus_subscribe(run->bus, BENCH_CHANNEL_ID, &s->sub),
	    "litebus_subscribe");
}

static int
lbring_recv(struct ring_sub *s, struct contender_delivery *d, int timeout_ms)
{
	return contender_litebus_recv(s->sub, &s->ev, d, timeout_ms);
}

static bool
lbring_sub_stats(struct ring_sub *s, uint64_t *received, uint64_t *skipped)
{
	return contender_litebus_sub_stats(s->sub, received, skipped);
}

static void
lbring_unsubscribe(struct ring_sub *s)
{
	litebus_unsubscribe(s->sub);
}

/* The publisher stands in for the writer (it holds the writer role, see
 * ring_once): one publish per record, one wake-up per burst. */
static void
lbring_publish(struct ring_run *run, const struct ring_burst *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lb_channel_publish(run->ch, &b->lrec[i]);
	lb_channel_wake(run->ch);
}

/* The bus's writer closes its channels as it exits. */
static void
lbring_close(struct ring_run *run)
{
	litebus_close(run->bus);
}

static void
lbring_fini(struct ring_run *run)
{
	(void)run;
}

static const struct ring_ops ring_litebus = {
    .name = "litebus",
    .open = lbring_open,
    .subscribe = lbring_subscribe,
    .recv = lbring_recv,
    .sub_stats = lbring_sub_stats,
    .unsubscribe = lbring_unsubscribe,
    .publish = lbring_publish,
    .close = lbring_close,
    .fini = lbring_fini,
};

/* ------------------------------------------------------------------ */
/* The ring baseline (baseline_ring.h)                                 */

static void
bring_ops_open(struct ring_run *run)
{
	if (bring_init(&run->ring, run->capacity) != 0) {
		fprintf(stderr, "litebus-bench: out of memory\n");
		exit(2);
	}
}

static void
bring_ops_subscribe(struct ring_run *run, struct ring_sub *s)
{
	bring_sub_init(&s->bsub, &run->ring);
}

static int
bring_ops_recv(struct ring_sub *s, struct contender_delivery *d, int timeout_ms)
{
	switch (bring_recv(&s->bsub, &s->rec, timeout_ms)) {
	case BRING_OK:
		d->event_id = s->rec.event_id;
		d->key = (uint64_t)s->rec.partition_key;
		d->subject = s->rec.subject_prefix;
		d->subject_len = s->rec.subject_len;
		return LITEBUS_OK;
	case BRING_LAGGED:
		d->skipped = s->bsub.last_skipped;
		return LITEBUS_LAGGED;
	case BRING_TIMEOUT:
		return LITEBUS_TIMEOUT;
	case BRING_CLOSED:
		break;
	}
	return LITEBUS_CLOSED;
}

static bool
bring_ops_sub_stats(struct ring_sub *s, uint64_t *received, uint64_t *skipped)
{
	(void)s;
	(void)received;
	(void)skipped;
	return false;
}

static void
bring_ops_unsubscribe(struct ring_sub *s)
{
	(void)s;
}

static void
bring_ops_publish(struct ring_run *run, const struct ring_burst *b, size_t n)
{
	bring_publish(&run->ring, b->brec, n);
}

static void
bring_ops_close(struct ring_run *run)
{
	bring_close(&run->ring);
}

static void
bring_ops_fini(struct ring_run *run)
{
	bring_fini(&run->ring);
}

static const struct ring_ops ring_base = {
    .name = "base",
    .open = bring_ops_open,
    .subscribe = bring_ops_subscribe,
    .recv = bring_ops_recv,
    .sub_stats = bring_ops_sub_stats,
    .unsubscribe = bring_ops_unsubscribe,
    .publish = bring_ops_publish,
    .close = bring_ops_close,
    .fini = bring_ops_fini,
};

/* ------------------------------------------------------------------ */
/* One run                                                             */

static void *
ring_sub_main(void *arg)
{
	struct ring_sub *s = arg;
	struct ring_run *run = s->run;

	pthread_barrier_wait(&run->start);
	while (!bench_drain_abandoned(&run->drain)) {
		struct contender_delivery d;
		int rc;

		rc = run->ops->recv(s, &d, 200);
		if (rc == LITEBUS_OK) {
			bench_saw(s->oc, d.event_id, d.key, d.subject,
				  d.subject_len);
			s->received++;
			s->t_last = bench_now_ns();
		} else if (rc == LITEBUS_LAGGED) {
			s->lags++;
			s->skipped += d.skipped;
			oracle_lagged(s->oc, d.skipped);
		} else if (rc == LITEBUS_CLOSED) {
			break;
		} else if (rc != LITEBUS_TIMEOUT) {
			oracle_consumer_fail(s->oc, "%s_recv: %s",
					     run->ops->name,
					     litebus_errname(rc));
			break;
		}
	}
	bench_drain_finished(&run->drain);
	return NULL;
}

/* Records for positions first..first+n-1 (ids = positions). */
static void
ring_fill(struct ring_burst *b, uint64_t first, size_t n)
{
	struct lb_rec *lrec = b->lrec;
	struct bring_rec *brec = b->brec;

	for (size_t i = 0; i < n; i++) {
		uint64_t id = first + i, key = BENCH_KEY(0, id - 1);
		unsigned char subj[BENCH_SUBJECT_LEN];

		bench_subject(subj, key);
		memset(&lrec[i], 0, sizeof lrec[i]);
		lrec[i].event_id = (int64_t)id;
		lrec[i].partition_key = (int64_t)key;
		lrec[i].subject_len = BENCH_SUBJECT_LEN;
		memcpy(lrec[i].subject_prefix, subj, BENCH_SUBJECT_LEN);
		memset(&brec[i], 0, sizeof brec[i]);
		brec[i].event_id = (int64_t)id;
		brec[i].partition_key = (int64_t)key;
		brec[i].subject_len = BENCH_SUBJECT_LEN;
		memcpy(brec[i].subject_prefix, subj, BENCH_SUBJECT_LEN);
	}
}

/* Who the publisher plays the writer for (role.h): an identity of its
 * own, never a bus, so that litebus takes it for no bus's writer thread. */
static const char ring_publisher_role = 0;

static void
ring_once(struct ring_run *run, struct ring_out *out)
{
	struct ring_burst burst;
	uint64_t t0, t_end, pos = 0, n = run->records;
	uint64_t max_ns = (uint64_t)(run->seconds * 1e9);
	bool drained;

	memset(out, 0, sizeof *out);
	bench_drain_init(&run->drain);
	run->ops->open(run);
	pthread_barrier_init(&run->start, NULL, (unsigned)run->nsubs + 1);
	run->oracle = bench_oracle(1);
	for (int i = 0; i < run->nsubs; i++) {
		struct ring_sub *s = &run->subs[i];

		memset(s, 0, sizeof *s);
		s->run = run;
		s->oc = bench_consumer(run->oracle, false, i);
		run->ops->subscribe(run, s);
		pthread_create(&s->thread, NULL, ring_sub_main, s);
	}
	/* This thread publishes as the writer would: writer-only calls
	 * assert the role in Debug builds. */
	lb_role_set_writer(&ring_publisher_role);
	pthread_barrier_wait(&run->start);
	t0 = bench_now_ns();
	for (;;) {
		uint64_t due, now = bench_now_ns();
		size_t k;

		if (run->rate > 0) { /* open loop: what is due by now */
			if (pos >= n)
				break;
			due = (uint64_t)((double)(now - t0) * run->rate / 1e9);
			if (due <= pos)
				continue;
			if (due > n)
				due = n;
		} else { /* as fast as possible, for max_ns */
			if (now - t0 >= max_ns)
				break;
			due = pos + RING_BURST;
		}
		if (due - pos > RING_BURST)
			due = pos + RING_BURST;
		k = (size_t)(due - pos);
		ring_fill(&burst, pos + 1, k);
		run->ops->publish(run, &burst, k);
		pos = due;
	}
	t_end = bench_now_ns();
	lb_role_set_writer(NULL);
	n = run->records = pos;
	out->pub_s = (double)n / bench_secs(t_end - t0);
	/* No more records: the subscribers drain, then see CLOSED. */
	run->ops->close(run);
	drained = bench_drain_wait(&run->drain, run->nsubs, t_end,
				   RING_DRAIN_DEADLINE_NS);
	out->ok = drained;
	if (!drained)
		snprintf(out->why, sizeof out->why,
			 "a subscriber had not drained 30 s after the last "
			 "publish");
	/* The oracle is checked once no subscriber records any more. */
	for (int i = 0; i < run->nsubs; i++)
		pthread_join(run->subs[i].thread, NULL);
	oracle_commit_dense(run->oracle, 1, n, &n);
	for (int i = 0; i < run->nsubs; i++) {
		struct ring_sub *s = &run->subs[i];
		uint64_t own_rcv, own_skp;
		char why[sizeof out->why];

		if (s->t_last > t0)
			out->deliv_s += (double)s->received /
					bench_secs(s->t_last - t0) /
					(double)run->nsubs;
		out->lost +=
		    (double)s->skipped / (double)n / (double)run->nsubs;
		out->lags += s->lags;
		if (run->ops->sub_stats(s, &own_rcv, &own_skp))
			oracle_sub_stats(s->oc, own_rcv, own_skp);
		run->ops->unsubscribe(s);
		if (!oracle_check(run->oracle, s->oc, why, sizeof why) &&
		    out->ok) {
			out->ok = false;
			snprintf(out->why, sizeof out->why, "%s", why);
		}
	}
	oracle_free(run->oracle);
	pthread_barrier_destroy(&run->start);
	run->ops->fini(run);
}

static void
ring_max(uint32_t capacity, int nsubs, double seconds)
{
	struct bench_result *r = res_new("ring");
	struct ring_run *run = calloc(1, sizeof *run);

	res_cfg(r, "mode", "max");
	res_cfg(r, "slots", "%u", capacity);
	res_cfg(r, "S", "%d", nsubs);
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		struct ring_out lb, base;

		run->capacity = capacity;
		run->nsubs = nsubs;
		run->seconds = seconds;
		run->rate = 0;
		run->ops = &ring_litebus;
		ring_once(run, &lb);
		run->ops = &ring_base;
		ring_once(run, &base);
		res_val(r, "litebus_pub_s", 0, lb.pub_s);
		res_val(r, "litebus_deliv_s", 0, lb.deliv_s);
		res_val(r, "litebus_lost", 4, lb.lost);
		res_val(r, "litebus_lags", 0, (double)lb.lags);
		res_val(r, "base_pub_s", 0, base.pub_s);
		res_val(r, "base_deliv_s", 0, base.deliv_s);
		res_val(r, "base_lost", 4, base.lost);
		res_val(r, "base_lags", 0, (double)base.lags);
		res_ratio(r, "x_base", 2, lb.deliv_s, base.deliv_s);
		res_check(r, "litebus_exact", lb.ok, "%s", lb.why);
		res_check(r, "base_exact", base.ok, "%s", base.why);
	}
	res_emit(r);
	free(run);
}

static void
ring_paced(uint32_t capacity, int nsubs, double seconds)
{
	static const double rates[] = {1e6, 2e6, 5e6, 1e7, 2e7, 5e7};
	static const struct ring_ops *const rings[2] = {&ring_litebus,
							&ring_base};
	struct bench_result *r = res_new("ring");
	struct ring_run *run = calloc(1, sizeof *run);

	res_cfg(r, "mode", "paced");
	res_cfg(r, "slots", "%u", capacity);
	res_cfg(r, "S", "%d", nsubs);
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		double best[2] = {0, 0}, lost10[2] = {0, 0};

		/* Every rate, even after a loss: on a shared machine a
		 * descheduled subscriber can lose records at a low rate and
		 * none at a higher one. */
		for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
			for (int b = 0; b < 2; b++) {
				struct ring_out o;
				char check[40];

				run->capacity = capacity;
				run->nsubs = nsubs;
				run->rate = rates[i];
				run->records = (uint64_t)(rates[i] * seconds);
				run->ops = rings[b];
				ring_once(run, &o);
				snprintf(check, sizeof check, "%s_exact",
					 rings[b]->name);
				res_check(r, check, o.ok, "at %.0f/s: %s",
					  rates[i], o.why);
				if (getenv("LITEBUS_BENCH_DEBUG") != NULL)
					fprintf(
					    stderr,
					    "ring paced S=%d %s rate=%.0f "
					    "pub_s=%.0f lost=%.4f lags=%llu\n",
					    nsubs, rings[b]->name, rates[i],
					    o.pub_s, o.lost,
					    (unsigned long long)o.lags);
				if (o.lost == 0 && o.pub_s >= 0.95 * rates[i])
					best[b] = rates[i];
				if (rates[i] == 1e7)
					lost10[b] = o.lost;
			}
		}
		res_val(r, "litebus_lossless_rec_s", 0, best[0]);
		res_val(r, "base_lossless_rec_s", 0, best[1]);
		res_ratio(r, "x_base", 2, best[0], best[1]);
		res_val(r, "litebus_lost_at_10M", 4, lost10[0]);
		res_val(r, "base_lost_at_10M", 4, lost10[1]);
	}
	res_emit(r);
	free(run);
}

void
scenario_ring(void)
{
	static const uint32_t caps[] = {256, 4096};
	static const int subs[] = {1, 2, 4};
	double max_s = bench_cfg.quick ? 0.05 : 0.3;
	double paced_s = bench_cfg.quick ? 0.02 : 0.1;

	res_note("ring: one publisher, S subscribers; litebus's ring + "
		 "litebus_recv vs mutex+condvar ring (base); 56-byte records; "
		 "deliv_s = per subscriber; paced: highest offered rate (1M.."
		 "50M/s) with no loss");
	for (size_t c = 0; c < 2; c++)
		for (size_t s = 0; s < 3; s++)
			ring_max(caps[c], subs[s], max_s);
	for (size_t s = 0; s < 3; s++)
		ring_paced(4096, subs[s], paced_s);
}
