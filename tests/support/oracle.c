/* SPDX-License-Identifier: MIT */
/*
 * oracle.c - see oracle.h.
 *
 * Recording appends to per-thread structures only (a log per recording
 * thread, a consumer per consuming thread), so it takes no lock and the
 * threads share no cache line.  Everything is compared at check time:
 * the logs are merged into one array sorted by id (built once, on the
 * first check), and each consumer's runs are walked against it.
 */
#include "oracle.h"

#include <inttypes.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values first, first + 1, ..., first + count - 1, delivered after
 * `skipped_before` events were reported lost (ids only). */
struct run {
	int64_t first;
	uint64_t count;
	uint64_t skipped_before;
};

struct runs {
	struct run *v;
	size_t n, cap;
};

struct commit {
	int64_t id;
	uint64_t key;
	bool keyed; /* false: from oracle_commit_dense(), key unknown */
};

/* One recording thread's commits; its own cache line. */
struct commit_log {
	alignas(64) struct commit *v;
	size_t n, cap;
	bool out_of_memory;
};

struct oracle_consumer {
	struct oracle_consumer *next; /* the oracle's list */
	char name[96];
	bool is_reader;
	bool match_keys;
	uint32_t producers;
	struct runs ids;
	uint64_t pending_skip; /* skipped since the last delivery */
	uint64_t received, skipped;
	uint64_t *keys; /* keys[i]: of the i-th delivery (match_keys) */
	size_t keys_cap;
	struct runs *seqs; /* per producer: its seqs, as delivered */
	bool has_stats;
	uint64_t stats_received, stats_skipped;
	bool failed;
	char why[256];
};

struct oracle {
	char channel[64];
	struct oracle_config cfg;
	struct commit_log *logs;
	int64_t dense_first;
	uint64_t dense_count;
	uint64_t *dense_per_producer;
	struct oracle_consumer *consumers;

	/* Built by the first check. */
	bool built, build_ok;
	char build_why[200];
	struct commit *all; /* every commit, by id */
	size_t nall;
	struct runs *cseqs; /* per producer: its committed seqs */
};

/* ------------------------------------------------------------------ */
/* Growing arrays                                                      */

static bool
grow(void **v, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap != 0 ? *cap : 16;
	void *p;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	p = realloc(*v, n * size);
	if (p == NULL)
		return false;
	*v = p;
	*cap = n;
	return true;
}

/* Append value to r, extending the last run if it follows it.  Returns
 * false if memory ran out. */
static bool
runs_add(struct runs *r, int64_t value, uint64_t skipped_before)
{
	struct run *last = r->n > 0 ? &r->v[r->n - 1] : NULL;

	if (last != NULL && skipped_before == 0 &&
	    value == last->first + (int64_t)last->count) {
		last->count++;
		return true;
	}
	if (!grow((void **)&r->v, &r->cap, r->n + 1, sizeof *r->v))
		return false;
	r->v[r->n++] = (struct run){value, 1, skipped_before};
	return true;
}

/* ------------------------------------------------------------------ */
/* The oracle and what committed                                       */

struct oracle *
oracle_new(const struct oracle_config *cfg)
{
	struct oracle *o = calloc(1, sizeof *o);

	if (o == NULL)
		return NULL;
	o->cfg = *cfg;
	snprintf(o->channel, sizeof o->channel, "%s",
		 cfg->channel != NULL ? cfg->channel : "?");
	o->cfg.channel = o->channel;
	o->logs = aligned_alloc(alignof(struct commit_log),
				(size_t)(cfg->logs > 0 ? cfg->logs : 1) *
				    sizeof *o->logs);
	if (o->logs == NULL) {
		free(o);
		return NULL;
	}
	memset(o->logs, 0, (size_t)cfg->logs * sizeof *o->logs);
	for (int i = 0; i < cfg->logs; i++)
		if (!grow((void **)&o->logs[i].v, &o->logs[i].cap,
			  cfg->reserve, sizeof(struct commit))) {
			o->cfg.logs = i;
			oracle_free(o);
			return NULL;
		}
	return o;
}

static void
consumer_free(struct oracle_consumer *c)
{
	free(c->ids.v);
	free(c->keys);
	for (uint32_t p = 0; c->seqs != NULL && p < c->producers; p++)
		free(c->seqs[p].v);
	free(c->seqs);
	free(c);
}

void
oracle_free(struct oracle *o)
{
	if (o == NULL)
		return;
	while (o->consumers != NULL) {
		struct oracle_consumer *c = o->consumers;

		o->consumers = c->next;
		consumer_free(c);
	}
	for (int i = 0; i < o->cfg.logs; i++)
		free(o->logs[i].v);
	free(o->logs);
	free(o->dense_per_producer);
	free(o->all);
	for (uint32_t p = 0; o->cseqs != NULL && p < o->cfg.producers; p++)
		free(o->cseqs[p].v);
	free(o->cseqs);
	free(o);
}

void
oracle_commit(struct oracle *o, int log, int64_t id, uint64_t key)
{
	struct commit_log *l = &o->logs[log];

	if (!grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v)) {
		l->out_of_memory = true;
		return;
	}
	l->v[l->n++] = (struct commit){id, key, true};
}

void
oracle_commit_dense(struct oracle *o, int64_t first_id, uint64_t count,
		    const uint64_t *per_producer)
{
	o->dense_first = first_id;
	o->dense_count = count;
	if (o->cfg.producers == 0 || per_producer == NULL)
		return;
	free(o->dense_per_producer);
	o->dense_per_producer =
	    malloc(o->cfg.producers * sizeof *o->dense_per_producer);
	if (o->dense_per_producer != NULL)
		memcpy(o->dense_per_producer, per_producer,
		       o->cfg.producers * sizeof *per_producer);
}

uint64_t
oracle_committed(const struct oracle *o)
{
	uint64_t n = o->dense_count;

	for (int i = 0; i < o->cfg.logs; i++)
		n += o->logs[i].n;
	return n;
}

/* ------------------------------------------------------------------ */
/* Consumers                                                           */

static struct oracle_consumer *
consumer_new(struct oracle *o, const char *name, bool is_reader)
{
	struct oracle_consumer *c = calloc(1, sizeof *c);
	size_t reserve = o->cfg.reserve;
	bool ok;

	if (c == NULL)
		return NULL;
	snprintf(c->name, sizeof c->name, "%s", name);
	c->is_reader = is_reader;
	c->match_keys = o->cfg.match_keys;
	c->producers = o->cfg.producers;
	ok = grow((void **)&c->ids.v, &c->ids.cap, reserve, sizeof(struct run));
	if (ok && c->match_keys)
		ok = grow((void **)&c->keys, &c->keys_cap, reserve,
			  sizeof *c->keys);
	if (ok && c->producers > 0) {
		c->seqs = calloc(c->producers, sizeof *c->seqs);
		ok = c->seqs != NULL;
		for (uint32_t p = 0; ok && p < c->producers; p++)
			ok = grow((void **)&c->seqs[p].v, &c->seqs[p].cap,
				  reserve, sizeof(struct run));
	}
	if (!ok) {
		consumer_free(c);
		return NULL;
	}
	c->next = o->consumers;
	o->consumers = c;
	return c;
}

struct oracle_consumer *
oracle_reader_new(struct oracle *o, const char *name)
{
	return consumer_new(o, name, true);
}

struct oracle_consumer *
oracle_subscriber_new(struct oracle *o, const char *name)
{
	return consumer_new(o, name, false);
}

void
oracle_consumer_fail(struct oracle_consumer *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->failed)
		return;
	c->failed = true;
	n = snprintf(c->why, sizeof c->why, "%s: ", c->name);
	if (n < 0 || (size_t)n >= sizeof c->why)
		return;
	va_start(ap, fmt);
	vsnprintf(c->why + n, sizeof c->why - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Per-producer order, as each event arrives: a producer's seqs only go
 * up.  Whether they are the committed ones is checked at the end. */
static void
consumer_saw_seq(struct oracle_consumer *c, int64_t id, uint64_t key)
{
	uint32_t p = ORACLE_KEY_PRODUCER(key), seq = ORACLE_KEY_SEQ(key);
	struct runs *s;
	struct run *last;

	if (p >= c->producers) {
		oracle_consumer_fail(c,
				     "id %" PRId64 " carries a key of producer "
				     "%" PRIu32 "; there are %" PRIu32,
				     id, p, c->producers);
		return;
	}
	s = &c->seqs[p];
	last = s->n > 0 ? &s->v[s->n - 1] : NULL;
	if (last != NULL && seq < last->first + (int64_t)last->count) {
		oracle_consumer_fail(
		    c,
		    "id %" PRId64 " is producer %" PRIu32 "'s seq %" PRIu32
		    ", after its seq %" PRId64
		    " (repeated or out of submission order)",
		    id, p, seq, last->first + (int64_t)last->count - 1);
		return;
	}
	if (!runs_add(s, seq, 0))
		oracle_consumer_fail(c, "out of memory recording seqs");
}

void
oracle_saw(struct oracle_consumer *c, int64_t id, uint64_t key)
{
	if (!c->failed) {
		if (!runs_add(&c->ids, id, c->pending_skip))
			oracle_consumer_fail(c, "out of memory recording ids");
		if (c->match_keys) {
			if (grow((void **)&c->keys, &c->keys_cap,
				 c->received + 1, sizeof *c->keys))
				c->keys[c->received] = key;
			else
				oracle_consumer_fail(
				    c, "out of memory recording keys");
		}
		if (c->producers > 0)
			consumer_saw_seq(c, id, key);
	}
	c->pending_skip = 0;
	c->received++;
}

void
oracle_lagged(struct oracle_consumer *c, uint64_t skipped)
{
	c->pending_skip += skipped;
	c->skipped += skipped;
}

void
oracle_sub_stats(struct oracle_consumer *c, uint64_t received,
		 uint64_t skipped)
{
	c->has_stats = true;
	c->stats_received = received;
	c->stats_skipped = skipped;
}

uint64_t
oracle_received(const struct oracle_consumer *c)
{
	return c->received;
}

uint64_t
oracle_skipped(const struct oracle_consumer *c)
{
	return c->skipped;
}

/* ------------------------------------------------------------------ */
/* Checks                                                              */

static int
commit_cmp(const void *a, const void *b)
{
	const struct commit *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

__attribute__((format(printf, 2, 3))) static bool
build_fail(struct oracle *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->build_why, sizeof o->build_why, fmt, ap);
	va_end(ap);
	return false;
}

/* Each producer's committed seqs, from the commits in id order: they
 * must go up (a producer's jobs commit in the order it submitted them). */
static bool
build_seqs(struct oracle *o)
{
	uint32_t np = o->cfg.producers;
	int64_t *last_id = calloc(np, sizeof *last_id);
	bool ok;

	o->cseqs = calloc(np, sizeof *o->cseqs);
	ok = o->cseqs != NULL && last_id != NULL;
	for (uint32_t p = 0; ok && o->dense_per_producer != NULL && p < np;
	     p++)
		if (o->dense_per_producer[p] > 0) {
			ok = runs_add(&o->cseqs[p], 0, 0);
			if (ok)
				o->cseqs[p].v[0].count =
				    o->dense_per_producer[p];
		}
	if (!ok)
		build_fail(o, "out of memory");
	for (size_t i = 0; ok && i < o->nall; i++) {
		const struct commit *e = &o->all[i];
		uint32_t p = ORACLE_KEY_PRODUCER(e->key);
		uint32_t seq = ORACLE_KEY_SEQ(e->key);
		const struct run *last;

		if (!e->keyed)
			continue;
		if (p >= np) {
			ok = build_fail(o,
					"id %" PRId64 " committed with a key of "
					"producer %" PRIu32 "; there are %" PRIu32,
					e->id, p, np);
			break;
		}
		last = o->cseqs[p].n > 0 ? &o->cseqs[p].v[o->cseqs[p].n - 1]
					 : NULL;
		if (last != NULL && seq < last->first + (int64_t)last->count) {
			ok = build_fail(o,
					"producer %" PRIu32 "'s seq %" PRIu32
					" committed as id %" PRId64
					", after a later seq as id %" PRId64,
					p, seq, e->id, last_id[p]);
			break;
		}
		last_id[p] = e->id;
		ok = runs_add(&o->cseqs[p], seq, 0);
		if (!ok)
			build_fail(o, "out of memory");
	}
	free(last_id);
	return ok;
}

/* Merge the logs into one array by id (once). */
static bool
oracle_build(struct oracle *o)
{
	size_t n = 0;

	if (o->built)
		return o->build_ok;
	o->built = true;
	for (int i = 0; i < o->cfg.logs; i++) {
		if (o->logs[i].out_of_memory)
			return build_fail(o, "commit log %d ran out of memory",
					  i);
		n += o->logs[i].n;
	}
	if (o->dense_count > 0 && o->cfg.producers > 0 &&
	    o->dense_per_producer == NULL)
		return build_fail(o, "out of memory");
	n += (size_t)o->dense_count;
	o->all = malloc((n > 0 ? n : 1) * sizeof *o->all);
	if (o->all == NULL)
		return build_fail(o, "out of memory");
	for (int i = 0; i < o->cfg.logs; i++) {
		if (o->logs[i].n == 0)
			continue; /* v may be NULL */
		memcpy(o->all + o->nall, o->logs[i].v,
		       o->logs[i].n * sizeof *o->all);
		o->nall += o->logs[i].n;
	}
	for (uint64_t i = 0; i < o->dense_count; i++)
		o->all[o->nall++] =
		    (struct commit){o->dense_first + (int64_t)i, 0, false};
	qsort(o->all, o->nall, sizeof *o->all, commit_cmp);
	for (size_t i = 1; i < o->nall; i++)
		if (o->all[i].id == o->all[i - 1].id)
			return build_fail(o, "id %" PRId64 " committed twice",
					  o->all[i].id);
	if (o->cfg.producers > 0 && !build_seqs(o))
		return false;
	o->build_ok = true;
	return true;
}

static const char *
key_str(const struct oracle *o, uint64_t key, char *buf, size_t len)
{
	if (o->cfg.producers > 0)
		snprintf(buf, len, "producer %" PRIu32 " seq %" PRIu32,
			 ORACLE_KEY_PRODUCER(key), ORACLE_KEY_SEQ(key));
	else
		snprintf(buf, len, "%" PRId64, (int64_t)key);
	return buf;
}

__attribute__((format(printf, 4, 5))) static bool
verdict(const struct oracle_consumer *c, char *why, size_t why_len,
	const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(why, why_len, "%s: ", c->name);

	if (n >= 0 && (size_t)n < why_len) {
		va_start(ap, fmt);
		vsnprintf(why + n, why_len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* A delivered id that is not committed id number k + 1. */
static bool
wrong_id(const struct oracle *o, const struct oracle_consumer *c, int64_t id,
	 size_t k, uint64_t received, uint64_t skipped, char *why,
	 size_t why_len)
{
	if (k >= o->nall)
		return verdict(c, why, why_len,
			       "id %" PRId64 " delivered after every one of "
			       "the %zu committed ids (received %" PRIu64
			       ", skipped %" PRIu64 " before it)",
			       id, o->nall, received, skipped);
	if (!c->is_reader)
		return verdict(c, why, why_len,
			       "id %" PRId64 " delivered after %" PRIu64
			       " received + %" PRIu64
			       " skipped, where committed id %" PRId64
			       " was next",
			       id, received, skipped, o->all[k].id);
	return verdict(c, why, why_len,
		       "id %" PRId64 " delivered where id %" PRId64
		       " was committed next (%s)",
		       id, o->all[k].id,
		       id > o->all[k].id
			   ? "gap"
			   : "repeated, out of order or never committed");
}

/* The ids, against the committed ones, position by position. */
static bool
check_ids(const struct oracle *o, const struct oracle_consumer *c, char *why,
	  size_t why_len)
{
	size_t k = 0;
	uint64_t i = 0, skipped = 0;
	char a[48], b[48];

	for (size_t r = 0; r < c->ids.n; r++) {
		const struct run *run = &c->ids.v[r];

		if (run->skipped_before > 0 && c->is_reader)
			return verdict(c, why, why_len,
				       "a reader was told it LAGGED (%" PRIu64
				       " skipped) before id %" PRId64,
				       run->skipped_before, run->first);
		k += (size_t)run->skipped_before;
		skipped += run->skipped_before;
		for (uint64_t j = 0; j < run->count; j++, k++, i++) {
			int64_t id = run->first + (int64_t)j;

			if (k >= o->nall || o->all[k].id != id)
				return wrong_id(o, c, id, k, i, skipped, why,
						why_len);
			if (c->match_keys && o->all[k].keyed &&
			    c->keys[i] != o->all[k].key)
				return verdict(
				    c, why, why_len,
				    "id %" PRId64 " delivered with key %s, "
				    "committed with key %s",
				    id, key_str(o, c->keys[i], a, sizeof a),
				    key_str(o, o->all[k].key, b, sizeof b));
		}
	}
	if (c->is_reader && c->pending_skip > 0)
		return verdict(c, why, why_len,
			       "a reader was told it LAGGED (%" PRIu64
			       " skipped) after its last row",
			       c->pending_skip);
	k += (size_t)c->pending_skip;
	if (c->is_reader && k < o->nall)
		return verdict(c, why, why_len,
			       "delivered %" PRIu64 " of %zu committed ids; "
			       "id %" PRId64 " never came",
			       c->received, o->nall, o->all[k].id);
	if (k != o->nall)
		return verdict(c, why, why_len,
			       "received %" PRIu64 " + skipped %" PRIu64
			       " != %zu published",
			       c->received, c->skipped, o->nall);
	return true;
}

/* Producer p's seqs as delivered, against its committed ones: each run
 * delivered lies inside a committed run (seqs only go up: checked as they
 * arrived), and a reader got them all. */
static bool
check_producer(const struct oracle *o, const struct oracle_consumer *c,
	       uint32_t p, char *why, size_t why_len)
{
	const struct runs *got = &c->seqs[p], *want = &o->cseqs[p];
	size_t w = 0;
	uint64_t ngot = 0, nwant = 0;

	for (size_t r = 0; r < got->n; r++) {
		const struct run *g = &got->v[r];

		while (w < want->n &&
		       want->v[w].first + (int64_t)want->v[w].count <= g->first)
			w++;
		if (w == want->n || g->first < want->v[w].first ||
		    g->first + (int64_t)g->count >
			want->v[w].first + (int64_t)want->v[w].count) {
			int64_t bad = w < want->n && g->first >= want->v[w].first
					  ? want->v[w].first +
						(int64_t)want->v[w].count
					  : g->first;
			return verdict(c, why, why_len,
				       "producer %" PRIu32 "'s seq %" PRId64
				       " delivered, but it did not commit it",
				       p, bad);
		}
		ngot += g->count;
	}
	for (size_t r = 0; r < want->n; r++)
		nwant += want->v[r].count;
	if (c->is_reader && ngot != nwant) {
		/* The first committed seq that did not come. */
		int64_t miss = want->v[0].first;
		size_t g = 0;

		for (w = 0; w < want->n; w++) {
			int64_t s = want->v[w].first;
			int64_t end = s + (int64_t)want->v[w].count;

			for (; s < end; s++) {
				while (g < got->n &&
				       got->v[g].first +
					       (int64_t)got->v[g].count <=
					   s)
					g++;
				if (g == got->n || got->v[g].first > s)
					break;
			}
			if (s < end) {
				miss = s;
				break;
			}
		}
		return verdict(c, why, why_len,
			       "producer %" PRIu32 ": %" PRIu64 " of its %" PRIu64
			       " committed events delivered; seq %" PRId64
			       " never came",
			       p, ngot, nwant, miss);
	}
	return true;
}

bool
oracle_check(struct oracle *o, const struct oracle_consumer *c, char *why,
	     size_t why_len)
{
	if (!oracle_build(o))
		return verdict(c, why, why_len,
			       "the committed events of channel %s cannot be "
			       "checked: %s",
			       o->channel, o->build_why);
	if (c->failed) {
		snprintf(why, why_len, "%s", c->why);
		return false;
	}
	if (!check_ids(o, c, why, why_len))
		return false;
	for (uint32_t p = 0; p < c->producers; p++)
		if (!check_producer(o, c, p, why, why_len))
			return false;
	if (c->has_stats && (c->stats_received != c->received ||
			     c->stats_skipped != c->skipped))
		return verdict(c, why, why_len,
			       "litebus_sub_stats_get says %" PRIu64
			       " received + %" PRIu64 " skipped; counted %" PRIu64
			       " + %" PRIu64,
			       c->stats_received, c->stats_skipped,
			       c->received, c->skipped);
	snprintf(why, why_len, "%s: ok", c->name);
	return true;
}
