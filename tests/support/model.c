/* SPDX-License-Identifier: MIT */
/*
 * model.c - see model.h.
 *
 * Invariants of the model
 *   M1  The model holds an event only once its job was acknowledged
 *       (exec returned 0 or done(0) ran): what a consumer got that the
 *       model lacks at a check, after every producer has been joined, was
 *       never committed.
 *   M2  Deliveries are checked at quiescent points (no job running):
 *       then every commit with an id up to a reader's cursor is in the
 *       model, so "exactly the committed rows up to the cursor" is exact.
 *   M3  A consumer's model position moves only when litebus says the ack
 *       is durable: flush returned OK, close returned, or the ack_tx job
 *       was acknowledged.
 *
 * Threads: the driving thread owns everything; burst threads append to
 * the model under m->lock, and done-callbacks (writer thread) too.
 */
#define _XOPEN_SOURCE 700
#include "model.h"

#include "litebus.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define M_CH 3
#define M_READERS 4
#define M_SUBS 2
#define M_CONS 2
#define M_MAX_EMIT 4
#define M_JOB_FAILED (-1000)

static const char *const m_chan_names[M_CH] = {"completion", "signal_delivery",
					       "m_custom"};
static const char *const m_extra[] = {"m_custom", NULL};
static const char *const m_strs[3] = {NULL, "a", "b"};

struct mev {
	int64_t id, pkey;
	uint8_t ns, tag; /* index into m_strs */
	uint32_t seq;	 /* the payload: unique per emit */
};

struct mlist {
	struct mev *v;
	size_t n, cap;
};

struct mrange {
	int64_t first, last;
};

/* A reader or a consumer's deliveries since its last check. */
struct mlog {
	int ch;
	int64_t start; /* checked up to here */
	struct mlist got;
	struct mrange exp[8];
	size_t nexp;
	bool filtered;
	int64_t pkey; /* -1: any */
	uint8_t ns, tag;
	bool closed; /* CLOSED was returned */
};

struct mreader {
	litebus_reader *r;
	struct mlog log;
};

struct msub {
	litebus_sub *s;
	int ch;
	size_t base; /* committed events on ch when it subscribed */
	uint64_t received, skipped;
	int64_t last_id;
};

struct mcons {
	litebus_consumer *c;
	int ch;
	bool exists;
	int64_t pos;   /* M3 */
	int64_t acked; /* acked on the handle, maybe not durable yet */
	struct mlog log;
};

struct model {
	struct model_config cfg;
	char path[512];
	litebus *bus;
	int chan_id[M_CH];
	pthread_mutex_t lock; /* guards ev, mine, seq */
	struct mlist ev[M_CH];
	bool sorted[M_CH];
	int64_t pruned_below[M_CH];
	int64_t mine; /* committed rows of the table "mine" */
	uint32_t seq;
	struct mreader rd[M_READERS];
	struct msub sub[M_SUBS];
	struct mcons cons[M_CONS];
	uint64_t ops;
	char err[512];
	bool failed;
};

struct mjob {
	struct model *m;
	int n;
	uint8_t ch[M_MAX_EMIT], ns[M_MAX_EMIT], tag[M_MAX_EMIT];
	int64_t pkey[M_MAX_EMIT], ids[M_MAX_EMIT];
	uint32_t seq[M_MAX_EMIT];
	bool fail, undo, table;
	int status;
	/* submit: done ran (guarded by the burst's mutex) */
	struct mburst *burst;
};

static void mfail(struct model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
mfail(struct model *m, const char *fmt, ...)
{
	va_list ap;

	if (m->failed)
		return;
	m->failed = true;
	va_start(ap, fmt);
	vsnprintf(m->err, sizeof m->err, fmt, ap);
	va_end(ap);
}

static void
mlist_add(struct mlist *l, const struct mev *e)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		if (l->v == NULL)
			abort();
	}
	l->v[l->n++] = *e;
}

static int
mev_cmp(const void *a, const void *b)
{
	const struct mev *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Sort the committed events of ch by id (M2: called when quiescent). */
static void
model_sort(struct model *m, int ch)
{
	if (!m->sorted[ch]) {
		if (m->ev[ch].n > 1)
			qsort(m->ev[ch].v, m->ev[ch].n, sizeof(struct mev),
			      mev_cmp);
		m->sorted[ch] = true;
	}
}

static int64_t
model_max_id(struct model *m, int ch)
{
	model_sort(m, ch);
	return m->ev[ch].n ? m->ev[ch].v[m->ev[ch].n - 1].id : 0;
}

/* Index of the first event of ch with id > after. */
static size_t
model_after(struct model *m, int ch, int64_t after)
{
	size_t lo = 0, hi;

	model_sort(m, ch);
	hi = m->ev[ch].n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->ev[ch].v[mid].id <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---------------------------------------------------------------- */
/* Jobs                                                              */

static int
m_sql(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int
m_job_fn(litebus_tx *tx, void *arg)
{
	struct mjob *j = arg;
	sqlite3 *db = litebus_tx_db(tx);
	int rc;

	/* A job may be called more than once: reset what it records. */
	for (int i = 0; i < j->n; i++)
		j->ids[i] = 0;
	if (j->table && m_sql(db, "INSERT INTO mine(v) VALUES(1)") != SQLITE_OK)
		return M_JOB_FAILED - 1;
	for (int i = 0; i < j->n; i++) {
		struct model *m = j->m;
		litebus_record rec = {0};
		uint32_t payload = j->seq[i];

		rec.partition_key = j->pkey[i];
		rec.event_type = j->ch[i] == 0 ? "success" : "e";
		rec.ns = m_strs[j->ns[i]];
		rec.instance_tag = m_strs[j->tag[i]];
		rec.payload = &payload;
		rec.payload_len = sizeof payload;
		rc = litebus_emit(tx, m->chan_id[j->ch[i]], &rec, &j->ids[i]);
		if (rc != LITEBUS_OK)
			return rc;
		if (j->undo && i == 0) {
			uint32_t never = UINT32_MAX;
			if (m_sql(db, "SAVEPOINT own") != SQLITE_OK)
				return M_JOB_FAILED - 2;
			rec.payload = &never;
			rc = litebus_emit(tx, m->chan_id[j->ch[i]], &rec, NULL);
			if (rc != LITEBUS_OK)
				return rc;
			if (m_sql(db, "ROLLBACK TO own") != SQLITE_OK ||
			    m_sql(db, "RELEASE own") != SQLITE_OK)
				return M_JOB_FAILED - 3;
		}
	}
	return j->fail ? M_JOB_FAILED : 0;
}

/* M1: the job was acknowledged; into the model with it. */
static void
m_job_settled(struct mjob *j, int status)
{
	struct model *m = j->m;

	j->status = status;
	pthread_mutex_lock(&m->lock);
	if (status == 0 && !j->fail) {
		for (int i = 0; i < j->n; i++) {
			struct mev e = {j->ids[i], j->pkey[i], j->ns[i],
					j->tag[i], j->seq[i]};
			mlist_add(&m->ev[j->ch[i]], &e);
			m->sorted[j->ch[i]] = false;
		}
		m->mine += j->table;
	} else if (status != (j->fail ? M_JOB_FAILED : 0)) {
		mfail(m, "a job returned %d (%s: %s), expected %d", status,
		      litebus_errname(status), litebus_last_errmsg(),
		      j->fail ? M_JOB_FAILED : 0);
	}
	pthread_mutex_unlock(&m->lock);
}

static void
m_job_make(struct model *m, struct mjob *j, uint8_t a, uint8_t b, uint8_t c)
{
	memset(j, 0, sizeof *j);
	j->m = m;
	j->n = 1 + a % M_MAX_EMIT;
	for (int i = 0; i < j->n; i++) {
		uint8_t x = (uint8_t)(b >> (2 * i)) ^ (uint8_t)(c * (i + 1));
		j->ch[i] = (uint8_t)(x % M_CH);
		j->pkey[i] = (x >> 2) % 4;
		j->ns[i] = (uint8_t)((x >> 4) % 3);
		j->tag[i] = (uint8_t)((x >> 6) % 3);
	}
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < j->n; i++)
		j->seq[i] = ++m->seq;
	pthread_mutex_unlock(&m->lock);
	j->fail = c % 7 == 0;
	j->undo = c % 5 == 1;
	j->table = (a & 0x40) != 0;
}

struct mburst {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending; /* submitted jobs whose done has not run */
};

static void
m_job_done(int status, void *arg)
{
	struct mjob *j = arg;
	struct mburst *b = j->burst;

	m_job_settled(j, status);
	pthread_mutex_lock(&b->lock);
	b->pending--;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/* Run jobs[0..n): exec or submit by the job's own bit. */
static void
m_run_jobs(struct model *m, struct mjob *jobs, int n, struct mburst *b)
{
	for (int i = 0; i < n; i++) {
		struct mjob *j = &jobs[i];
		if (j->seq[0] % 2 == 0) {
			m_job_settled(j, litebus_exec(m->bus, m_job_fn, j));
			continue;
		}
		j->burst = b;
		pthread_mutex_lock(&b->lock);
		b->pending++;
		pthread_mutex_unlock(&b->lock);
		int rc = litebus_submit(m->bus, m_job_fn, j, m_job_done, j);
		if (rc != LITEBUS_OK) {
			pthread_mutex_lock(&b->lock);
			b->pending--;
			pthread_mutex_unlock(&b->lock);
			pthread_mutex_lock(&m->lock);
			mfail(m, "litebus_submit: %s", litebus_errname(rc));
			pthread_mutex_unlock(&m->lock);
		}
	}
}

/* Wait until every submitted job of b has settled (deadline 30 s). */
static void
m_burst_wait(struct model *m, struct mburst *b)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&b->lock);
	while (b->pending > 0)
		if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) != 0)
			break;
	if (b->pending > 0)
		mfail(m, "%d submitted jobs not done after 30 s", b->pending);
	pthread_mutex_unlock(&b->lock);
}

struct mthread {
	struct model *m;
	struct mjob *jobs;
	int n;
	struct mburst *b;
};

static void *
m_producer_main(void *arg)
{
	struct mthread *t = arg;
	m_run_jobs(t->m, t->jobs, t->n, t->b);
	return NULL;
}

struct mfollow {
	struct model *m;
	struct mreader *rd;
	atomic_bool stop;
};

static void m_reader_take(struct model *m, struct mreader *rd, int max,
			  int timeout_ms);

static void *
m_follower_main(void *arg)
{
	struct mfollow *f = arg;

	/* Pairs with the release store in m_op_burst: stop is a flag
	 * only, the data it guards is joined. */
	while (!atomic_load_explicit(&f->stop, memory_order_acquire) &&
	       f->rd->r != NULL)
		m_reader_take(f->m, f->rd, 8, 5);
	return NULL;
}

/* ---------------------------------------------------------------- */
/* Logs: readers' and consumers' deliveries                          */

static bool
m_matches(const struct mlog *l, const struct mev *e)
{
	if (!l->filtered)
		return true;
	if (l->pkey >= 0 && e->pkey != l->pkey)
		return false;
	if (l->ns != 0 && e->ns != l->ns)
		return false;
	if (l->tag != 0 && e->tag != l->tag)
		return false;
	return true;
}

static uint8_t
m_str_index(const char *s)
{
	if (s == NULL)
		return 0;
	if (strcmp(s, "a") == 0)
		return 1;
	if (strcmp(s, "b") == 0)
		return 2;
	return 3;
}

/* Record one row (or one EXPIRED range) in the log. */
static void
m_log_row(struct mlog *l, const litebus_row *row)
{
	struct mev e = {row->event_id, row->partition_key, m_str_index(row->ns),
			m_str_index(row->instance_tag), UINT32_MAX - 1};

	if (row->payload_len == sizeof(uint32_t))
		memcpy(&e.seq, row->payload, sizeof e.seq);
	mlist_add(&l->got, &e);
}

/* M2: check the deliveries in l since l->start against the model, up
 * to `cursor` (everything committed if l->closed).  Then start anew
 * from the cursor. */
static void
m_log_check(struct model *m, struct mlog *l, int64_t cursor, const char *who)
{
	size_t i = model_after(m, l->ch, l->start), k = 0;
	const struct mlist *ev = &m->ev[l->ch];

	for (; i < ev->n && (l->closed || ev->v[i].id <= cursor); i++) {
		const struct mev *e = &ev->v[i];
		bool expired = false;

		if (!m_matches(l, e))
			continue;
		for (size_t x = 0; x < l->nexp; x++)
			expired |=
			    e->id >= l->exp[x].first && e->id <= l->exp[x].last;
		if (k < l->got.n && l->got.v[k].id == e->id) {
			const struct mev *g = &l->got.v[k];
			if (g->pkey != e->pkey || g->ns != e->ns ||
			    g->tag != e->tag || g->seq != e->seq)
				mfail(m,
				      "%s on %s: id %lld delivered with "
				      "other fields than committed "
				      "(payload %u, committed %u)",
				      who, m_chan_names[l->ch],
				      (long long)e->id, g->seq, e->seq);
			k++;
		} else if (!expired) {
			mfail(m,
			      "%s on %s: committed id %lld (after %lld) "
			      "not delivered; got %lld instead",
			      who, m_chan_names[l->ch], (long long)e->id,
			      (long long)l->start,
			      k < l->got.n ? (long long)l->got.v[k].id : -1LL);
			return;
		}
	}
	if (k < l->got.n)
		mfail(m,
		      "%s on %s: delivered id %lld (payload %u), which was "
		      "never committed, was filtered out, or came out of "
		      "order (checked after %lld up to %lld)",
		      who, m_chan_names[l->ch], (long long)l->got.v[k].id,
		      l->got.v[k].seq, (long long)l->start, (long long)cursor);
	for (size_t x = 0; x < l->nexp; x++)
		if (l->exp[x].first <= l->start ||
		    l->exp[x].last >= m->pruned_below[l->ch])
			mfail(m,
			      "%s on %s: EXPIRED %lld..%lld, but only ids "
			      "below %lld were pruned (after %lld)",
			      who, m_chan_names[l->ch],
			      (long long)l->exp[x].first,
			      (long long)l->exp[x].last,
			      (long long)m->pruned_below[l->ch],
			      (long long)l->start);
	l->got.n = 0;
	l->nexp = 0;
	if (cursor > l->start)
		l->start = cursor;
}

/* Take up to max rows (0: until nothing is waiting) from a reader. */
static void
m_reader_take(struct model *m, struct mreader *rd, int max, int timeout_ms)
{
	litebus_row row;

	for (int n = 0; max == 0 || n < max; n++) {
		int rc = litebus_reader_next(rd->r, &row, timeout_ms);
		if (rc == LITEBUS_OK) {
			m_log_row(&rd->log, &row);
		} else if (rc == LITEBUS_EXPIRED) {
			struct mrange x;
			litebus_reader_expired(rd->r, &x.first, &x.last);
			if (rd->log.nexp < 8)
				rd->log.exp[rd->log.nexp++] = x;
		} else if (rc == LITEBUS_CLOSED) {
			rd->log.closed = true;
			return;
		} else if (rc == LITEBUS_TIMEOUT) {
			return;
		} else {
			pthread_mutex_lock(&m->lock);
			mfail(m, "litebus_reader_next: %s: %s",
			      litebus_errname(rc), litebus_last_errmsg());
			pthread_mutex_unlock(&m->lock);
			return;
		}
	}
}

static void
m_reader_check(struct model *m, struct mreader *rd)
{
	char who[32];

	snprintf(who, sizeof who, "reader %d", (int)(rd - m->rd));
	m_log_check(m, &rd->log, litebus_reader_cursor(rd->r), who);
}

/* ---------------------------------------------------------------- */
/* Operations                                                        */

static void
m_op_job(struct model *m, uint8_t a, uint8_t b, uint8_t c)
{
	struct mjob j;
	struct mburst bu = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			    0};

	m_job_make(m, &j, a, b, c);
	m_run_jobs(m, &j, 1, &bu);
	m_burst_wait(m, &bu);
}

static void
m_op_burst(struct model *m, uint8_t a, uint8_t b, uint8_t c)
{
	int threads = m->cfg.threads > 1 ? m->cfg.threads : 1;
	int per = 1 + a % 8;
	struct mjob *jobs = calloc((size_t)(threads * per), sizeof *jobs);
	struct mthread t[16];
	pthread_t tid[16], fid;
	struct mburst bu = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			    0};
	struct mfollow f;
	bool follow;

	if (jobs == NULL)
		abort();
	if (threads > 16)
		threads = 16;
	for (int i = 0; i < threads * per; i++)
		m_job_make(m, &jobs[i], (uint8_t)(a + i), (uint8_t)(b * 31 + i),
			   (uint8_t)(c + 3 * i));
	f.m = m;
	f.rd = &m->rd[b % M_READERS];
	atomic_init(&f.stop, false);
	follow = threads > 1 && f.rd->r != NULL;
	if (follow && pthread_create(&fid, NULL, m_follower_main, &f) != 0)
		abort();
	if (threads == 1) {
		m_run_jobs(m, jobs, per, &bu);
	} else {
		for (int i = 0; i < threads; i++) {
			t[i] = (struct mthread){m, jobs + i * per, per, &bu};
			if (pthread_create(&tid[i], NULL, m_producer_main,
					   &t[i]) != 0)
				abort();
		}
		for (int i = 0; i < threads; i++)
			pthread_join(tid[i], NULL);
	}
	m_burst_wait(m, &bu);
	if (follow) {
		/* Pairs with the acquire in m_follower_main. */
		atomic_store_explicit(&f.stop, true, memory_order_release);
		pthread_join(fid, NULL);
	}
	free(jobs);
}

static void
m_op_reader_open(struct model *m, uint8_t a, uint8_t b, uint8_t c)
{
	struct mreader *rd = &m->rd[a % M_READERS];
	int ch = b % M_CH;
	litebus_filter f = {0};
	int64_t after;
	int rc;

	if (rd->r != NULL)
		return;
	memset(&rd->log, 0, sizeof rd->log);
	rd->log.ch = ch;
	rd->log.pkey = -1;
	if (c & 1) {
		rd->log.filtered = true;
		f.any_partition = (c & 2) != 0;
		if (!f.any_partition)
			rd->log.pkey = f.partition_key = (c >> 2) % 4;
		rd->log.ns = (uint8_t)((c >> 4) % 3);
		rd->log.tag = (uint8_t)((c >> 6) % 3);
		f.ns = m_strs[rd->log.ns];
		f.instance_tag = m_strs[rd->log.tag];
	}
	switch ((b >> 2) % 3) {
	case 0:
		after = LITEBUS_FROM_START;
		break;
	case 1:
		after = LITEBUS_FROM_NOW;
		break;
	default: {
		size_t n = m->ev[ch].n;
		model_sort(m, ch);
		after = n ? m->ev[ch].v[(size_t)a * 7 % n].id : 0;
		break;
	}
	}
	rc = litebus_reader_open(m->bus, m->chan_id[ch], after,
				 rd->log.filtered ? &f : NULL, &rd->r);
	if (rc != LITEBUS_OK) {
		rd->r = NULL;
		mfail(m, "litebus_reader_open(%s, %lld): %s", m_chan_names[ch],
		      (long long)after, litebus_errname(rc));
		return;
	}
	rd->log.start = litebus_reader_cursor(rd->r);
	if (after == LITEBUS_FROM_NOW) {
		/* FROM_NOW: after every acknowledged commit (quiescent). */
		if (rd->log.start < model_max_id(m, ch))
			mfail(m,
			      "FROM_NOW reader on %s starts at %lld, below "
			      "the acknowledged id %lld",
			      m_chan_names[ch], (long long)rd->log.start,
			      (long long)model_max_id(m, ch));
	} else if (rd->log.start != (after < 0 ? 0 : after)) {
		mfail(m, "reader opened after %lld has cursor %lld",
		      (long long)after, (long long)rd->log.start);
	}
}

static void
m_op_reader_next(struct model *m, uint8_t a, uint8_t b)
{
	struct mreader *rd = &m->rd[a % M_READERS];

	if (rd->r == NULL)
		return;
	/* Slow (a few rows) or fast (until nothing is waiting). */
	m_reader_take(m, rd, b % 4 == 0 ? 0 : 1 + b % 16, 0);
	if (b & 0x80)
		m_reader_check(m, rd);
}

static void
m_reader_close(struct model *m, struct mreader *rd)
{
	if (rd->r == NULL)
		return;
	m_reader_check(m, rd);
	litebus_reader_close(rd->r);
	rd->r = NULL;
	free(rd->log.got.v);
	memset(&rd->log, 0, sizeof rd->log);
}

static void
m_op_sub(struct model *m, uint8_t a, uint8_t b)
{
	struct msub *s = &m->sub[a % M_SUBS];
	int ch = b % M_CH;
	int rc;

	if (s->s != NULL)
		return;
	rc = litebus_subscribe(m->bus, m->chan_id[ch], &s->s);
	if (rc != LITEBUS_OK) {
		s->s = NULL;
		mfail(m, "litebus_subscribe: %s", litebus_errname(rc));
		return;
	}
	s->ch = ch;
	s->base = m->ev[ch].n; /* quiescent: everything is published */
	s->received = s->skipped = 0;
	s->last_id = 0;
}

/* Take up to max events (0: until nothing is waiting). */
static void
m_sub_drain(struct model *m, struct msub *s, int max)
{
	litebus_event ev;

	model_sort(m, s->ch);
	for (int n = 0; max == 0 || n < max; n++) {
		int rc = litebus_recv(s->s, &ev, 0);
		if (rc == LITEBUS_LAGGED) {
			s->skipped += litebus_sub_skipped(s->s);
			continue;
		}
		if (rc == LITEBUS_TIMEOUT || rc == LITEBUS_CLOSED)
			return;
		if (rc != LITEBUS_OK) {
			mfail(m, "litebus_recv: %s", litebus_errname(rc));
			return;
		}
		/* The next event after received + skipped of those
		 * committed since subscribing. */
		size_t k = s->base + s->received + s->skipped;
		if (k >= m->ev[s->ch].n ||
		    m->ev[s->ch].v[k].id != ev.event_id ||
		    m->ev[s->ch].v[k].pkey != ev.partition_key) {
			mfail(m,
			      "subscriber on %s: got id %lld after %llu "
			      "received and %llu skipped; the next "
			      "committed is %lld",
			      m_chan_names[s->ch], (long long)ev.event_id,
			      (unsigned long long)s->received,
			      (unsigned long long)s->skipped,
			      k < m->ev[s->ch].n
				  ? (long long)m->ev[s->ch].v[k].id
				  : -1LL);
			return;
		}
		s->received++;
	}
}

static void
m_sub_close(struct model *m, struct msub *s)
{
	litebus_sub_stats st;

	if (s->s == NULL)
		return;
	m_sub_drain(m, s, 0);
	if (litebus_sub_stats_get(s->s, &st) != LITEBUS_OK ||
	    st.received != s->received || st.skipped != s->skipped)
		mfail(m, "subscriber stats %llu + %llu, counted %llu + %llu",
		      (unsigned long long)st.received,
		      (unsigned long long)st.skipped,
		      (unsigned long long)s->received,
		      (unsigned long long)s->skipped);
	if (s->base + s->received + s->skipped != m->ev[s->ch].n)
		mfail(m,
		      "subscriber on %s: received %llu + skipped %llu, "
		      "but %zu were published since it subscribed",
		      m_chan_names[s->ch], (unsigned long long)s->received,
		      (unsigned long long)s->skipped, m->ev[s->ch].n - s->base);
	litebus_unsubscribe(s->s);
	s->s = NULL;
}

static const char *
m_cons_name(int k)
{
	return k == 0 ? "k0" : "k1";
}

static void
m_op_cons_open(struct model *m, uint8_t a, uint8_t b)
{
	int k = a % M_CONS;
	struct mcons *c = &m->cons[k];
	int64_t start = b & 1 ? LITEBUS_FROM_NOW : LITEBUS_FROM_START;
	int rc;

	if (c->c != NULL)
		return;
	c->ch = k == 0 ? 0 : 2;
	rc = litebus_consumer_open(m->bus, m->chan_id[c->ch], m_cons_name(k),
				   start, NULL, &c->c);
	if (rc != LITEBUS_OK) {
		c->c = NULL;
		mfail(m, "litebus_consumer_open(%s): %s: %s", m_cons_name(k),
		      litebus_errname(rc), litebus_last_errmsg());
		return;
	}
	memset(&c->log, 0, sizeof c->log);
	c->log.ch = c->ch;
	c->log.pkey = -1;
	c->log.start = litebus_consumer_cursor(c->c);
	if (!c->exists) {
		c->pos = start == LITEBUS_FROM_NOW ? c->log.start : 0;
		if (start == LITEBUS_FROM_NOW &&
		    c->log.start < model_max_id(m, c->ch))
			mfail(m, "new consumer FROM_NOW at %lld, below %lld",
			      (long long)c->log.start,
			      (long long)model_max_id(m, c->ch));
		c->exists = true;
	}
	/* A reopened consumer resumes right after its durable position. */
	if (c->log.start != c->pos)
		mfail(m,
		      "consumer %s opened at %lld; its durable position is "
		      "%lld",
		      m_cons_name(k), (long long)c->log.start,
		      (long long)c->pos);
	c->acked = c->pos;
}

static void
m_op_cons_next(struct model *m, uint8_t a, uint8_t b)
{
	struct mcons *c = &m->cons[a % M_CONS];
	litebus_row row;

	if (c->c == NULL)
		return;
	for (int n = 0; n < 1 + b % 16; n++) {
		int rc = litebus_consumer_next(c->c, &row, 0);
		if (rc == LITEBUS_EXPIRED) {
			struct mrange x;
			litebus_consumer_expired(c->c, &x.first, &x.last);
			if (c->log.nexp < 8)
				c->log.exp[c->log.nexp++] = x;
			continue;
		}
		if (rc == LITEBUS_TIMEOUT)
			break;
		if (rc != LITEBUS_OK) {
			mfail(m, "litebus_consumer_next: %s",
			      litebus_errname(rc));
			return;
		}
		m_log_row(&c->log, &row);
		if (b & 0x40) {
			rc = litebus_consumer_ack(c->c, row.event_id);
			if (rc != LITEBUS_OK)
				mfail(m, "litebus_consumer_ack: %s",
				      litebus_errname(rc));
			if (row.event_id > c->acked)
				c->acked = row.event_id;
		}
	}
	if (b & 0x80) {
		char who[32];
		snprintf(who, sizeof who, "consumer %s",
			 m_cons_name((int)(c - m->cons)));
		m_log_check(m, &c->log, litebus_consumer_cursor(c->c), who);
	}
}

struct m_acktx {
	struct model *m;
	litebus_consumer *c;
	int64_t id;
};

static int
m_acktx_fn(litebus_tx *tx, void *arg)
{
	struct m_acktx *a = arg;

	if (m_sql(litebus_tx_db(tx), "INSERT INTO mine(v) VALUES(2)") !=
	    SQLITE_OK)
		return M_JOB_FAILED;
	return litebus_consumer_ack_tx(tx, a->c, a->id);
}

static void
m_op_cons_acktx(struct model *m, uint8_t a)
{
	struct mcons *c = &m->cons[a % M_CONS];
	struct m_acktx x;
	int rc;

	if (c->c == NULL || litebus_consumer_cursor(c->c) < 1)
		return;
	x = (struct m_acktx){m, c->c, litebus_consumer_cursor(c->c)};
	rc = litebus_exec(m->bus, m_acktx_fn, &x);
	if (rc != 0) {
		mfail(m, "ack_tx job: %s: %s", litebus_errname(rc),
		      litebus_last_errmsg());
		return;
	}
	m->mine++;
	/* M3: the position committed with the job (it never moves back). */
	if (x.id > c->pos)
		c->pos = x.id;
	if (x.id > c->acked)
		c->acked = x.id;
}

static void
m_op_cons_flush(struct model *m, uint8_t a)
{
	struct mcons *c = &m->cons[a % M_CONS];
	litebus_consumer_info info;
	int rc;

	if (c->c == NULL)
		return;
	rc = litebus_consumer_flush(c->c);
	if (rc != LITEBUS_OK) {
		mfail(m, "litebus_consumer_flush: %s", litebus_errname(rc));
		return;
	}
	c->pos = c->acked; /* M3 */
	rc = litebus_consumer_stats_get(c->c, &info);
	if (rc != LITEBUS_OK || info.position != c->pos)
		mfail(m, "consumer %s: position %lld after flush, acked %lld",
		      m_cons_name((int)(c - m->cons)),
		      rc == LITEBUS_OK ? (long long)info.position : -1LL,
		      (long long)c->pos);
}

static void
m_cons_close(struct model *m, struct mcons *c)
{
	char who[32];

	if (c->c == NULL)
		return;
	snprintf(who, sizeof who, "consumer %s",
		 m_cons_name((int)(c - m->cons)));
	m_log_check(m, &c->log, litebus_consumer_cursor(c->c), who);
	litebus_consumer_close(c->c);
	c->c = NULL;
	c->pos = c->acked; /* M3: close makes pending acks durable */
	free(c->log.got.v);
	memset(&c->log, 0, sizeof c->log);
}

static void
m_op_prune(struct model *m, uint8_t a, uint8_t b)
{
	int ch = a % M_CH;
	int64_t max = model_max_id(m, ch), head, oldest;
	int64_t before = 1 + max * b / 255;
	int rc;

	rc = litebus_prune(m->bus, m->chan_id[ch], before);
	if (rc != LITEBUS_OK) {
		mfail(m, "litebus_prune: %s", litebus_errname(rc));
		return;
	}
	rc = litebus_channel_head(m->bus, m->chan_id[ch], &head, &oldest);
	if (rc != LITEBUS_OK) {
		mfail(m, "litebus_channel_head: %s", litebus_errname(rc));
		return;
	}
	if (head < max)
		mfail(m, "%s: head %lld below the committed id %lld",
		      m_chan_names[ch], (long long)head, (long long)max);
	int64_t gone = oldest == 0 ? head + 1 : oldest;
	if (gone > m->pruned_below[ch])
		m->pruned_below[ch] = gone;
	/* Never a row a consumer has not acknowledged.  An ack may be
	 * durable before flush says so: up to c->acked may go. */
	for (int k = 0; k < M_CONS; k++) {
		struct mcons *c = &m->cons[k];
		size_t i;
		if (!c->exists || c->ch != ch)
			continue;
		i = model_after(m, ch, c->acked);
		if (i < m->ev[ch].n && m->ev[ch].v[i].id < gone)
			mfail(m,
			      "prune removed %s id %lld; consumer %s is at "
			      "%lld",
			      m_chan_names[ch], (long long)m->ev[ch].v[i].id,
			      m_cons_name(k), (long long)c->acked);
	}
}

static int
m_count_fn(litebus_tx *tx, void *arg)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(litebus_tx_db(tx), "SELECT count(*) FROM mine",
			       -1, &st, NULL) != SQLITE_OK)
		return M_JOB_FAILED;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*(int64_t *)arg = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : M_JOB_FAILED;
}

static void
m_op_table_check(struct model *m)
{
	int64_t n = -1;
	int rc = litebus_exec(m->bus, m_count_fn, &n);

	if (rc != 0 || n != m->mine)
		mfail(m,
		      "table mine has %lld rows (%s); committed jobs wrote "
		      "%lld",
		      (long long)n, litebus_errname(rc), (long long)m->mine);
}

static int
m_open(struct model *m)
{
	litebus_options o;
	int rc;

	litebus_options_init(&o);
	o.path = m->path;
	o.ring_capacity = 8;
	o.reader_batch = 4;
	o.durability = m->cfg.durability;
	o.channels = m_extra;
	o.checkpoint_pages = 16;
	rc = litebus_open(&o, &m->bus);
	if (rc != LITEBUS_OK) {
		m->bus = NULL;
		mfail(m, "litebus_open: %s: %s", litebus_errname(rc),
		      litebus_last_errmsg());
		return -1;
	}
	for (int c = 0; c < M_CH; c++)
		m->chan_id[c] = litebus_channel_id(m->bus, m_chan_names[c]);
	return 0;
}

/* Close the bus with readers left open: they drain and say CLOSED. */
static void
m_op_reopen(struct model *m)
{
	int rc;

	for (int k = 0; k < M_CONS; k++)
		m_cons_close(m, &m->cons[k]);
	for (int s = 0; s < M_SUBS; s++)
		m_sub_close(m, &m->sub[s]);
	rc = litebus_close(m->bus);
	m->bus = NULL;
	if (rc != LITEBUS_OK)
		mfail(m, "litebus_close: %s", litebus_errname(rc));
	for (int r = 0; r < M_READERS; r++) {
		struct mreader *rd = &m->rd[r];
		if (rd->r == NULL)
			continue;
		m_reader_take(m, rd, 0, 0);
		if (!rd->log.closed)
			mfail(m, "reader %d: no CLOSED after its bus closed",
			      r);
		model_sort(m, rd->log.ch);
		m_reader_close(m, rd);
	}
	m_open(m);
}

static void
m_op_double_open(struct model *m)
{
	litebus_options o;
	litebus *again = NULL;
	int rc;

	litebus_options_init(&o);
	o.path = m->path;
	o.channels = m_extra;
	rc = litebus_open(&o, &again);
	if (rc != LITEBUS_OK || again != m->bus)
		mfail(m, "a second open of the same file: %s, %s handle",
		      litebus_errname(rc),
		      again == m->bus ? "the same" : "another");
	if (rc == LITEBUS_OK && litebus_close(again) != LITEBUS_OK)
		mfail(m, "closing the second open failed");
}

/* ---------------------------------------------------------------- */

enum {
	OP_BURST = 0,
	OP_READER_OPEN,
	OP_READER_NEXT,
	OP_READER_CLOSE,
	OP_SUB,
	OP_SUB_DRAIN,
	OP_UNSUB,
	OP_CONS_OPEN,
	OP_CONS_NEXT,
	OP_CONS_ACKTX,
	OP_CONS_FLUSH,
	OP_CONS_CLOSE,
	OP_PRUNE,
	OP_REOPEN,
	OP_DOUBLE_OPEN,
	OP_TABLE_CHECK,
	OP_JOB, /* and every kind above */
	OP_KINDS = 20
};

static void
m_step(struct model *m, const uint8_t *op)
{
	uint8_t a = op[1], b = op[2], c = op[3];

	switch (op[0] % OP_KINDS) {
	case OP_BURST:
		m_op_burst(m, a, b, c);
		break;
	case OP_READER_OPEN:
		m_op_reader_open(m, a, b, c);
		break;
	case OP_READER_NEXT:
		m_op_reader_next(m, a, b);
		break;
	case OP_READER_CLOSE:
		m_reader_close(m, &m->rd[a % M_READERS]);
		break;
	case OP_SUB:
		m_op_sub(m, a, b);
		break;
	case OP_SUB_DRAIN:
		if (m->sub[a % M_SUBS].s != NULL)
			m_sub_drain(m, &m->sub[a % M_SUBS], 1 + b % 8);
		break;
	case OP_UNSUB:
		m_sub_close(m, &m->sub[a % M_SUBS]);
		break;
	case OP_CONS_OPEN:
		m_op_cons_open(m, a, b);
		break;
	case OP_CONS_NEXT:
		m_op_cons_next(m, a, b);
		break;
	case OP_CONS_ACKTX:
		m_op_cons_acktx(m, a);
		break;
	case OP_CONS_FLUSH:
		m_op_cons_flush(m, a);
		break;
	case OP_CONS_CLOSE:
		m_cons_close(m, &m->cons[a % M_CONS]);
		break;
	case OP_PRUNE:
		/* Rarely, so that most rows stay to be read. */
		if (c % 4 == 0)
			m_op_prune(m, a, b);
		break;
	case OP_REOPEN:
		if (c % 4 == 0)
			m_op_reopen(m);
		break;
	case OP_DOUBLE_OPEN:
		m_op_double_open(m);
		break;
	case OP_TABLE_CHECK:
		m_op_table_check(m);
		break;
	default:
		m_op_job(m, a, b, c);
		break;
	}
}

static int
m_create_fn(litebus_tx *tx, void *arg)
{
	(void)arg;
	return m_sql(litebus_tx_db(tx),
		     "CREATE TABLE IF NOT EXISTS mine("
		     "id INTEGER PRIMARY KEY, v INTEGER)") == SQLITE_OK
		   ? 0
		   : M_JOB_FAILED;
}

struct model *
model_new(const struct model_config *cfg)
{
	struct model *m = calloc(1, sizeof *m);
	char p[600];

	if (m == NULL)
		return NULL;
	m->cfg = *cfg;
	snprintf(m->path, sizeof m->path, "%s", cfg->path);
	m->cfg.path = m->path;
	pthread_mutex_init(&m->lock, NULL);
	unlink(m->path);
	snprintf(p, sizeof p, "%s-wal", m->path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", m->path);
	unlink(p);
	if (m_open(m) != 0 || litebus_exec(m->bus, m_create_fn, NULL) != 0) {
		fprintf(stderr, "model_new: %s\n", m->err);
		model_free(m);
		return NULL;
	}
	return m;
}

int
model_run(struct model *m, const uint8_t *ops, size_t len)
{
	for (size_t i = 0; i + MODEL_OP_BYTES <= len && !m->failed;
	     i += MODEL_OP_BYTES) {
		if (m->bus == NULL)
			break;
		m_step(m, ops + i);
		m->ops++;
	}
	return m->failed ? -1 : 0;
}

int
model_finish(struct model *m)
{
	if (m->bus == NULL || m->failed)
		return m->failed ? -1 : 0;
	/* Everything open is checked once more, then closed; the reopened
	 * bus must still hold every committed row not pruned. */
	for (int r = 0; r < M_READERS; r++)
		if (m->rd[r].r != NULL) {
			m_reader_take(m, &m->rd[r], 0, 0);
			m_reader_close(m, &m->rd[r]);
		}
	m_op_reopen(m);
	if (m->bus == NULL)
		return -1;
	for (int ch = 0; ch < M_CH && !m->failed; ch++) {
		struct mreader *rd = &m->rd[0];
		m_op_reader_open(m, 0, (uint8_t)ch, 0); /* from the start */
		if (rd->r == NULL)
			break;
		m_reader_take(m, rd, 0, 0);
		rd->log.closed = true; /* all of it, not up to the cursor */
		m_reader_close(m, rd);
	}
	m_op_table_check(m);
	return m->failed ? -1 : 0;
}

const char *
model_error(const struct model *m)
{
	return m->err;
}

uint64_t
model_ops(const struct model *m)
{
	return m->ops;
}

void
model_free(struct model *m)
{
	if (m == NULL)
		return;
	for (int k = 0; k < M_CONS; k++)
		if (m->cons[k].c != NULL)
			litebus_consumer_close(m->cons[k].c);
	for (int s = 0; s < M_SUBS; s++)
		if (m->sub[s].s != NULL)
			litebus_unsubscribe(m->sub[s].s);
	for (int r = 0; r < M_READERS; r++) {
		if (m->rd[r].r != NULL)
			litebus_reader_close(m->rd[r].r);
		free(m->rd[r].log.got.v);
	}
	for (int k = 0; k < M_CONS; k++)
		free(m->cons[k].log.got.v);
	if (m->bus != NULL)
		litebus_close(m->bus);
	for (int c = 0; c < M_CH; c++)
		free(m->ev[c].v);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
