/* SPDX-License-Identifier: MIT */
/*
 * retention.c - retention policies, the pruner thread, litebus_prune and
 * litebus_channel_head.
 *
 * Pruning deletes a channel's oldest rows.  It is litebus's own work that
 * writes, so it runs as jobs through the public litebus_exec on the bus:
 * queued behind the application's jobs, group-committed with them, never
 * inside another transaction.  Each job deletes at most prune_batch_rows
 * rows (one "chunk"), so that a large backlog is pruned by many short
 * transactions between the application's jobs, never by one long one that
 * would stall every commit behind it.  A retention policy is applied by a
 * thread per bus, the pruner, every prune_interval_ms; litebus_prune runs
 * the same chunks on its caller's thread.
 *
 * The module is wired like the writer, by a config its owner hands it;
 * bus.c keeps the public entry points litebus_prune and
 * litebus_channel_head, with their argument and reference checks.
 *
 * Threads: the pruner thread (retention_main) and litebus_prune's and
 * litebus_channel_head's callers run litebus_exec and short reads; the
 * chunk jobs (retention_chunk_job) run on the writer thread; litebus_open
 * and the last litebus_close start and stop the pruner.
 *
 * Invariants
 *   P1  Pruning removes a prefix of the channel: one chunk deletes every
 *       row with event_id <= bound, where bound is at most the id of a
 *       row the chunk's scan found (so ids above the newest row are never
 *       "pruned" in advance), and raises litebus_pruned.pruned_through to
 *       bound in the same job, hence the same transaction (forward only).
 *       A reader that finds rows missing below pruned_through knows they
 *       were pruned (reader.c, D7); a job's own DELETE raises nothing and
 *       reports nothing.
 *   P2  bound is the smallest of: the chunk's newest scanned row; the
 *       policy's bound (the larger of the age bound - the last row before
 *       the first one committed at or after now - max_age_ms - and the
 *       count bound, head - max_rows), or before_event_id - 1 for
 *       litebus_prune; and, unless the policy is hard, the smallest
 *       position of the channel's durable consumers (their acknowledged
 *       rows may go, the rest stay).
 *   P3  A pass over a channel runs chunks until one ends below its scan
 *       (bound < its newest row, or fewer rows than prune_batch_rows):
 *       nothing more may go.  Each chunk is a separate litebus_exec, so
 *       the application's jobs queued meanwhile run in between.
 *   P4  The pruner thread starts after the writer and is joined before
 *       lb_writer_stop (it runs jobs); between chunks and while it sleeps
 *       it checks `stopping`, so a close waits at most for one chunk.  A
 *       failed chunk is counted (stats prune_errors) and the policy is
 *       tried again at the next pass; the thread itself never fails.
 *   P5  Between two chunks of litebus_prune, if the application ran or
 *       queued jobs during the last chunk, the next chunk waits half the
 *       time the last one took (retention_yield): the application's jobs
 *       commit without a chunk in their batch meanwhile.  The pruner
 *       thread's chunks never wait: a policy must keep up with inserts.
 */
#include "retention.h"

#include "catalog.h"
#include "channel.h"
#include "errors.h"
#include "outbox.h"
#include "role.h"
#include "wait.h"
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Backoff while another connection holds a lock (litebus_channel_head). */
#define HEAD_BACKOFF_MIN_NS 20000u   /* 20 us */
#define HEAD_BACKOFF_MAX_NS 2000000u /* 2 ms */

/* One channel's policy, copied at open. */
struct lb_policy {
	int64_t max_age_ms; /* 0: no age limit */
	int64_t max_rows;   /* 0: no count limit */
	bool hard;
};

struct lb_retention {
	/* Immutable after lb_retention_new. */
	struct lb_retention_config cfg; /* .opts is not kept */
	struct lb_policy policy[LITEBUS_MAX_CHANNELS];
	bool any; /* some policy has a limit: the pruner runs */
	uint32_t batch_rows;
	uint32_t interval_ms;

	/* `stopping` is under `lock`; `cond` (monotonic clock) wakes the
	 * pruner for it.  has_lock: lock and cond were initialized. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool has_lock;
	bool stopping;
	/* Written only by lb_retention_start/stop (litebus_open, the last
	 * litebus_close), which never overlap. */
	bool started;
	pthread_t thread;
};

static bool
policy_has_limit(const struct lb_policy *p)
{
	return p->max_age_ms > 0 || p->max_rows > 0;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

static bool
retention_channel_known(const litebus_options *o, const char *name)
{
	for (int b = 0; b < LITEBUS_BUILTIN_CHANNELS; b++)
		if (strcasecmp(name, lb_catalog_builtin_name(b)) == 0)
			return true;
	for (const char *const *c = o->channels; c != NULL && *c != NULL; c++)
		if (strcasecmp(name, *c) == 0)
			return true;
	return false;
}

int
lb_retention_check_options(const litebus_options *o)
{
	if (o->prune_batch_rows < 1 || o->prune_batch_rows > 1000000)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: prune_batch_rows %u is not in "
				  "[1, 1000000]",
				  o->prune_batch_rows);
	if (o->prune_interval_ms < 1)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: prune_interval_ms must be "
				  ">= 1");
	for (const litebus_retention *p = o->retention;
	     p != NULL && p->channel != NULL; p++) {
		if (!retention_channel_known(o, p->channel))
			return lb_err_set(LITEBUS_EINVAL,
					  "litebus_open: retention policy for "
					  "'%.64s': no such channel (neither "
					  "built in nor in options.channels)",
					  p->channel);
		if (p->max_age_ms < 0)
			return lb_err_set(LITEBUS_EINVAL,
					  "litebus_open: retention policy for "
					  "'%s': max_age_ms %lld is negative",
					  p->channel, (long long)p->max_age_ms);
		if (p->max_rows < 0)
			return lb_err_set(LITEBUS_EINVAL,
					  "litebus_open: retention policy for "
					  "'%s': max_rows %lld is negative",
					  p->channel, (long long)p->max_rows);
		for (const litebus_retention *q = o->retention; q != p; q++)
			if (strcasecmp(q->channel, p->channel) == 0)
				return lb_err_set(
				    LITEBUS_EINVAL,
				    "litebus_open: two retention policies for "
				    "channel '%s' (names are compared ignoring "
				    "case)",
				    p->channel);
	}
	return LITEBUS_OK;
}

int
lb_retention_new(const struct lb_retention_config *cfg,
		 struct lb_retention **out)
{
	struct lb_retention *rt = calloc(1, sizeof *rt);
	const litebus_options *o = cfg->opts;
	pthread_condattr_t attr;
	int err;

	*out = NULL;
	if (rt == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: out of memory");
	rt->cfg = *cfg;
	rt->cfg.opts = NULL; /* borrowed for this call only */
	rt->batch_rows = o->prune_batch_rows;
	rt->interval_ms = o->prune_interval_ms;
	/* Checked by lb_retention_check_options: each names one channel. */
	for (const litebus_retention *p = o->retention;
	     p != NULL && p->channel != NULL; p++) {
		for (int i = 0; i < cfg->nchannels; i++) {
			if (strcasecmp(cfg->channels[i]->name, p->channel) != 0)
				continue;
			rt->policy[i] = (struct lb_policy){
			    .max_age_ms = p->max_age_ms,
			    .max_rows = p->max_rows,
			    .hard = p->hard != 0,
			};
			if (policy_has_limit(&rt->policy[i]))
				rt->any = true;
		}
	}
	err = pthread_condattr_init(&attr);
	if (err == 0) {
		err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		if (err == 0)
			err = pthread_cond_init(&rt->cond, &attr);
		(void)pthread_condattr_destroy(&attr); /* cannot fail */
	}
	if (err == 0) {
		err = pthread_mutex_init(&rt->lock, NULL);
		if (err != 0)
			(void)pthread_cond_destroy(&rt->cond);
	}
	if (err != 0) {
		free(rt);
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: the pruner's lock: %s",
				  strerror(err));
	}
	rt->has_lock = true;
	*out = rt;
	return LITEBUS_OK;
}

/* ------------------------------------------------------------------ */
/* One chunk: a job on the writer thread (P1, P2)                      */

struct prune_chunk {
	const struct lb_retention *rt;
	const char *call; /* the public function, for messages */
	int channel;
	const struct lb_policy *policy; /* NULL: litebus_prune */
	int64_t through;		/* litebus_prune: before_event_id - 1 */
	uint32_t batch_rows;
	/* Out, valid once the job returned OK. */
	int64_t deleted;
	bool more; /* the chunk deleted all it scanned, a full chunk (P3) */
};

/* What the scan found: the oldest rows, at most batch_rows. */
struct prune_scan {
	int64_t count, first, last;
	int64_t age_bound; /* last row before the first young one; 0: none */
};

static int
chunk_scan(struct lb_outbox *ob, const struct prune_chunk *c, const char *name,
	   int64_t cutoff_ms, struct prune_scan *s)
{
	sqlite3_stmt *st;
	bool young = false;
	int rc, src;

	*s = (struct prune_scan){0};
	rc = lb_outbox_own_chan(ob, LB_SQL_PRUNE_SCAN, c->channel, name, &st);
	if (rc != LITEBUS_OK)
		return rc;
	src = sqlite3_bind_int64(st, 1, (sqlite3_int64)c->batch_rows);
	if (src != SQLITE_OK)
		return lb_err_sqlite(ob->db, src, "pruning: binding the scan");
	while ((src = lb_outbox_own_step(ob, st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int64_t at_ms = sqlite3_column_int64(st, 1);

		if (s->count++ == 0)
			s->first = id;
		s->last = id;
		if (!young && at_ms >= cutoff_ms)
			young = true;
		if (!young)
			s->age_bound = id;
	}
	/* Its result repeats the step's, taken below. */
	(void)sqlite3_reset(st);
	if (src != SQLITE_DONE)
		return lb_err_sqlite(ob->db, src,
				     "pruning: scanning the oldest "
				     "rows");
	return LITEBUS_OK;
}

/* P2: lower *bound to the slowest durable consumer's position, if any. */
static int
chunk_consumer_floor(struct lb_outbox *ob, const char *key, int64_t *bound)
{
	sqlite3_stmt *st;
	int rc, src;

	rc = lb_outbox_own(ob, LB_SQL_CONSUMER_FLOOR, &st);
	if (rc != LITEBUS_OK)
		return rc;
	src = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (src == SQLITE_OK) {
		src = lb_outbox_own_step(ob, st);
		if (src == SQLITE_ROW) {
			int64_t pos = sqlite3_column_int64(st, 0);

			if (pos < *bound)
				*bound = pos;
			src = SQLITE_DONE;
		}
	}
	(void)sqlite3_reset(st); /* repeats the step's result */
	if (src != SQLITE_DONE)
		return lb_err_sqlite(ob->db, src,
				     "pruning: reading the consumers' floor");
	return LITEBUS_OK;
}

/* P1: delete the prefix and raise pruned_through in one transaction. */
static int
chunk_delete(struct lb_outbox *ob, const struct prune_chunk *c,
	     const char *name, const char *key, int64_t bound, int64_t *deleted)
{
	sqlite3_stmt *st;
	int rc, src;

	rc = lb_outbox_own_chan(ob, LB_SQL_PRUNE_DELETE, c->channel, name, &st);
	if (rc != LITEBUS_OK)
		return rc;
	src = sqlite3_bind_int64(st, 1, bound);
	if (src == SQLITE_OK)
		src = lb_outbox_own_step(ob, st);
	(void)sqlite3_reset(st); /* repeats the step's result */
	if (src != SQLITE_DONE)
		return lb_err_sqlite(ob->db, src, "pruning: deleting rows");
	*deleted = sqlite3_changes(ob->db);

	rc = lb_outbox_own(ob, LB_SQL_PRUNED_SET, &st);
	if (rc != LITEBUS_OK)
		return rc;
	src = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (src == SQLITE_OK)
		src = sqlite3_bind_int64(st, 2, bound);
	if (src == SQLITE_OK)
		src = lb_outbox_own_step(ob, st);
	(void)sqlite3_reset(st);
	if (src != SQLITE_DONE)
		return lb_err_sqlite(ob->db, src,
				     "pruning: recording the pruned prefix");
	return LITEBUS_OK;
}

/* The policy's bound (P2), before the scan and the consumers limit it;
 * INT64_MIN: the policy prunes nothing. */
static int
chunk_policy_bound(struct lb_outbox *ob, const struct prune_chunk *c,
		   const struct prune_scan *s, int64_t *bound)
{
	const struct lb_policy *p = c->policy;
	int rc;

	*bound = INT64_MIN;
	if (p->max_age_ms > 0 && s->age_bound != 0)
		*bound = s->age_bound;
	if (p->max_rows > 0) {
		int64_t head;

		/* The largest id ever committed on the channel, this
		 * transaction's rows included. */
		rc = lb_outbox_load_last_id(ob, c->channel, &head);
		if (rc != LITEBUS_OK)
			return rc;
		if (head - p->max_rows > *bound)
			*bound = head - p->max_rows;
	}
	return LITEBUS_OK;
}

static int
retention_chunk_job(litebus_tx *tx, void *arg)
{
	struct prune_chunk *c = arg;
	const char *name = c->rt->cfg.channels[c->channel]->name;
	char key[LITEBUS_CHANNEL_NAME_MAX + 1];
	struct prune_scan scan;
	struct lb_outbox *ob;
	int64_t bound, cutoff_ms = INT64_MIN;
	int rc;

	LB_ASSERT_ON_WRITER_THREAD();
	c->deleted = 0;
	c->more = false;
	ob = lb_writer_tx_outbox(tx, c->rt->cfg.bus, c->call);
	if (ob == NULL)
		return LITEBUS_EMISUSE; /* our own job: cannot happen */
	lb_outbox_state_key(key, name);
	if (c->policy != NULL && c->policy->max_age_ms > 0)
		cutoff_ms = lb_writer_tx_now_ms(tx) - c->policy->max_age_ms;
	rc = chunk_scan(ob, c, name, cutoff_ms, &scan);
	if (rc != LITEBUS_OK || scan.count == 0)
		return rc;
	if (c->policy != NULL)
		rc = chunk_policy_bound(ob, c, &scan, &bound);
	else
		bound = c->through;
	if (rc == LITEBUS_OK && bound > scan.last)
		bound = scan.last;
	if (rc == LITEBUS_OK && (c->policy == NULL || !c->policy->hard))
		rc = chunk_consumer_floor(ob, key, &bound);
	if (rc != LITEBUS_OK || bound < scan.first)
		return rc;
	rc = chunk_delete(ob, c, name, key, bound, &c->deleted);
	if (rc != LITEBUS_OK)
		return rc;
	c->more = bound == scan.last && scan.count == c->batch_rows;
	return LITEBUS_OK;
}

/* P5: after a chunk of litebus_prune with more to come, if the
 * application ran jobs while it ran (or has jobs queued), pause for half
 * the time the chunk took before queueing the next one.  Otherwise an application that keeps one
 * job in flight (exec) finds a chunk ahead of almost every job it
 * queues: the next chunk is queued the moment the last one commits.
 * The prune keeps about two thirds of the time, and alone it never
 * pauses.  bench "prune": the producer's exec p50 during a 200k-row
 * prune went from 3 ms (a chunk ahead of every job) to 40-100 us. */
static void
retention_yield(struct lb_retention *rt, uint64_t chunk_ns, uint64_t jobs0)
{
	/* Relaxed: counters and a gauge (stats.h); a stale value only
	 * pauses when it need not, or not when it could. */
	uint64_t jobs = atomic_load_explicit(&rt->cfg.stats->jobs,
					     memory_order_relaxed);
	uint64_t queued = atomic_load_explicit(&rt->cfg.stats->queued,
					       memory_order_relaxed);

	/* jobs0 was read before the chunk was queued: the chunk itself is
	 * one of the jobs run since. */
	if (jobs - jobs0 > 1 || queued > 0)
		lb_sleep_ns(chunk_ns / 2);
}

/* Run one chunk through the bus's job queue; count it once committed;
 * then make room for the application's jobs (P5). */
static int
retention_run_chunk(struct lb_retention *rt, struct prune_chunk *c)
{
	uint64_t t0 = lb_mono_ns();
	/* Relaxed: a counter (stats.h). */
	uint64_t jobs0 = atomic_load_explicit(&rt->cfg.stats->jobs,
					      memory_order_relaxed);
	int rc = litebus_exec(rt->cfg.bus, retention_chunk_job, c);

	if (rc == LITEBUS_OK && c->deleted > 0) {
		lb_stat_add(&rt->cfg.stats->prune_chunks, 1);
		lb_stat_add(&rt->cfg.stats->pruned_rows, (uint64_t)c->deleted);
	}
	/* Only litebus_prune's chunks pause: a retention policy must keep
	 * up with the inserts of a writer that never idles, and a pause
	 * would put its next chunk behind the whole queue again. */
	if (rc == LITEBUS_OK && c->more && c->policy == NULL)
		retention_yield(rt, lb_mono_ns() - t0, jobs0);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The pruner thread (P3, P4)                                          */

static bool
retention_is_stopping(struct lb_retention *rt)
{
	bool stopping;

	pthread_mutex_lock(&rt->lock);
	stopping = rt->stopping;
	pthread_mutex_unlock(&rt->lock);
	return stopping;
}

/* Apply every policy once.  Errors are counted, not returned (P4). */
static void
retention_pass(struct lb_retention *rt)
{
	struct lb_stats *stats = rt->cfg.stats;

	lb_stat_add(&stats->prune_passes, 1);
	for (int i = 0; i < rt->cfg.nchannels; i++) {
		struct prune_chunk c = {
		    .rt = rt,
		    .call = "litebus retention",
		    .channel = i,
		    .policy = &rt->policy[i],
		    .batch_rows = rt->batch_rows,
		};
		int rc;

		if (!policy_has_limit(&rt->policy[i]))
			continue;
		do {
			if (retention_is_stopping(rt))
				return;
			rc = retention_run_chunk(rt, &c);
		} while (rc == LITEBUS_OK && c.more);
		if (rc == LITEBUS_ECLOSED)
			return; /* the last close has begun */
		if (rc != LITEBUS_OK) {
			lb_stat_add(&stats->prune_errors, 1);
			atomic_store_explicit(&stats->prune_last_error, rc,
					      memory_order_relaxed);
		}
	}
}

static void
retention_deadline(struct timespec *ts, uint32_t ms)
{
	/* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer. */
	(void)clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000u);
	ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *
retention_main(void *arg)
{
	struct lb_retention *rt = arg;

	pthread_mutex_lock(&rt->lock);
	while (!rt->stopping) {
		struct timespec until;
		int err = 0;

		retention_deadline(&until, rt->interval_ms);
		while (!rt->stopping && err != ETIMEDOUT)
			err = pthread_cond_timedwait(&rt->cond, &rt->lock,
						     &until);
		if (rt->stopping)
			break;
		pthread_mutex_unlock(&rt->lock);
		retention_pass(rt);
		pthread_mutex_lock(&rt->lock);
	}
	pthread_mutex_unlock(&rt->lock);
	return NULL;
}

int
lb_retention_start(struct lb_retention *rt)
{
	int err;

	if (!rt->any)
		return LITEBUS_OK;
	err = pthread_create(&rt->thread, NULL, retention_main, rt);
	if (err != 0)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: starting the pruner thread: "
				  "%s",
				  strerror(err));
	rt->started = true;
	return LITEBUS_OK;
}

void
lb_retention_stop(struct lb_retention *rt)
{
	if (rt == NULL || !rt->started)
		return;
	LB_ASSERT_NOT_WRITER_OF(rt->cfg.bus);
	pthread_mutex_lock(&rt->lock);
	rt->stopping = true;
	pthread_cond_signal(&rt->cond);
	pthread_mutex_unlock(&rt->lock);
	/* Cannot fail: the thread is joinable and not this one. */
	(void)pthread_join(rt->thread, NULL);
	rt->started = false;
}

void
lb_retention_free(struct lb_retention *rt)
{
	if (rt == NULL)
		return;
	assert(!rt->started);
	if (rt->has_lock) {
		(void)pthread_cond_destroy(&rt->cond);
		(void)pthread_mutex_destroy(&rt->lock);
	}
	free(rt);
}

/* ------------------------------------------------------------------ */
/* litebus_prune and litebus_channel_head (bus.c's entry points)       */

int
lb_retention_prune(struct lb_retention *rt, int channel,
		   int64_t before_event_id)
{
	struct prune_chunk c = {
	    .rt = rt,
	    .call = "litebus_prune",
	    .channel = channel,
	    .through = before_event_id - 1,
	    .batch_rows = rt->batch_rows,
	};
	int rc;

	assert(channel >= 0 && channel < rt->cfg.nchannels);
	assert(before_event_id >= 1);
	LB_ASSERT_NOT_WRITER_OF(rt->cfg.bus);
	do
		rc = retention_run_chunk(rt, &c);
	while (rc == LITEBUS_OK && c.more);
	return rc;
}

/* The head and the oldest row in one read transaction, so that the two
 * agree (oldest <= head, or oldest == 0). */
static int
head_read(sqlite3 *db, const char *name, int64_t *head, int64_t *oldest)
{
	int rc, src;

	src = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (src != SQLITE_OK)
		return lb_err_sqlite(db, src, "litebus_channel_head: BEGIN");
	rc = lb_outbox_read_head(db, name, head);
	if (rc == LITEBUS_OK)
		rc = lb_outbox_read_oldest(db, name, oldest);
	src = sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == LITEBUS_OK && src != SQLITE_OK)
		rc = lb_err_sqlite(db, src,
				   "litebus_channel_head: ending the "
				   "read");
	return rc;
}

int
lb_retention_read_head(const struct lb_dbname *dbn, const char *name,
		       uint32_t busy_timeout_ms, bool on_writer, int64_t *head,
		       int64_t *oldest)
{
	uint64_t deadline_ns = 0, sleep_ns = HEAD_BACKOFF_MIN_NS;
	sqlite3 *db = NULL;
	int64_t h = 0, o = 0;
	int rc;

	*head = *oldest = 0;
	rc = lb_outbox_open_reader(dbn, &db);
	/* Another connection's lock (a COMMIT in progress, an in-memory
	 * writer's spill) is waited out for busy_timeout_ms, with backoff;
	 * never on the writer thread, whose own lock it may be. */
	while (rc == LITEBUS_OK) {
		uint64_t now;

		rc = head_read(db, name, &h, &o);
		if (rc != LITEBUS_EBUSY || on_writer)
			break;
		now = lb_mono_ns();
		if (deadline_ns == 0)
			deadline_ns =
			    now + (uint64_t)busy_timeout_ms * 1000000u;
		if (now >= deadline_ns)
			break;
		lb_sleep_ns(sleep_ns < deadline_ns - now ? sleep_ns
							 : deadline_ns - now);
		if (sleep_ns < HEAD_BACKOFF_MAX_NS)
			sleep_ns *= 2;
		rc = LITEBUS_OK;
	}
	/* A read-only connection with no statement left: cannot fail. */
	(void)sqlite3_close_v2(db);
	if (rc != LITEBUS_OK)
		return rc;
	/* o == 0: no row retained (never any, or every one pruned or
	 * deleted).  Not head + 1, which does not exist for INT64_MAX. */
	*head = h;
	*oldest = o;
	return LITEBUS_OK;
}
