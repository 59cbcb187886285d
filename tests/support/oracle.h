/* SPDX-License-Identifier: MIT */
/*
 * oracle.h - the one "exactly once, in order" oracle of the tests, the
 * benchmark and the demo.
 *
 * One oracle describes one channel.  Producers record what committed on
 * it; each consumer records what it was delivered; after the run the
 * oracle says, for each consumer, whether it got what litebus promises,
 * and if not, a sentence that names the consumer and the event id:
 *
 *   reader       exactly the committed ids, in id order: no gap, no
 *                duplicate, nothing that was not committed.
 *   subscriber   an in-order subsequence of the committed ids in which
 *                each LAGGED skipped exactly the events it reported:
 *                after k received and s skipped events, the next one
 *                received is committed id number k + s + 1; at the end
 *                received + skipped == every event committed (the
 *                subscriber attached before the first of them).
 *
 * Committed ids are taken in id order, which on one channel is also the
 * order of publication.  Two things may be checked as well:
 *   keys         with cfg.match_keys, every id is delivered with the key
 *                it was committed with (the consumer keeps every key).
 *   producers    with cfg.producers = P > 0, keys are ORACLE_KEY(p, seq)
 *                with p < P and seq counting up in producer p's
 *                submission order; a reader gets each producer's
 *                committed seqs in that order, all of them, a subscriber
 *                an in-order subset of them.
 *
 * Memory: a consumer's ids and each producer's seqs are kept as runs of
 * consecutive values, so a reader of ids 1..N costs a few bytes whatever
 * N is.  Commits recorded with oracle_commit() cost 16 bytes each; a
 * producer that does not learn its ids describes them all at once with
 * oracle_commit_dense().  cfg.reserve entries are allocated up front, so
 * that recording within them never calls malloc (a test that fails
 * allocations can run the oracle beside it).  Running out of memory while
 * recording fails the run with a message, not the process.
 *
 * Threads: oracle_new(), oracle_consumer_new(), oracle_commit_dense(),
 * the checks and oracle_free() belong to one thread, with no recording
 * under way.  Recording needs no lock: oracle_commit() is called by one
 * thread at a time per log (give each recording thread its own log; the
 * writer thread counts as one, for done-callbacks), and oracle_saw() and
 * the other consumer calls by one thread at a time per consumer.  Logs
 * and consumers of one oracle may record concurrently.
 *
 * Uses no part of litebus: it links into tests, bench and tools alike.
 */
#ifndef LB_ORACLE_H
#define LB_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A key that names a producer and its submission sequence number. */
#define ORACLE_KEY(producer, seq) (((uint64_t)(producer) << 32) | (uint32_t)(seq))
#define ORACLE_KEY_PRODUCER(k) ((uint32_t)((k) >> 32))
#define ORACLE_KEY_SEQ(k) ((uint32_t)((k)&0xffffffffu))

struct oracle;
struct oracle_consumer;

struct oracle_config {
	const char *channel; /* its name, for messages (copied) */
	int logs;	     /* commit logs, numbered 0..logs-1 */
	uint32_t producers;  /* > 0: check per-producer order (see above) */
	bool match_keys;     /* each id comes with its committed key */
	size_t reserve; /* commits per log and deliveries per consumer
			   recorded without allocating */
};

/* A new oracle, or NULL if memory ran out.  The caller frees it with
 * oracle_free(), which frees its consumers too.  NULL is a no-op there. */
struct oracle *oracle_new(const struct oracle_config *cfg);
void oracle_free(struct oracle *o);

/* ---- what committed ---- */

/* Event `id` committed with `key`; `log` is the recording thread's. */
void oracle_commit(struct oracle *o, int log, int64_t id, uint64_t key);
/* For producers that never learn their ids: ids first_id .. first_id +
 * count - 1 committed, and producer p's seqs 0 .. per_producer[p] - 1
 * (per_producer has cfg.producers entries; NULL if that is 0), with no
 * telling which id carries which key. */
void oracle_commit_dense(struct oracle *o, int64_t first_id, uint64_t count,
			 const uint64_t *per_producer);
/* Events committed so far, all logs. */
uint64_t oracle_committed(const struct oracle *o);

/* ---- what a consumer got ---- */

/* A consumer named `name` (copied; messages start with it), or NULL if
 * memory ran out.  Owned by the oracle. */
struct oracle_consumer *oracle_reader_new(struct oracle *o, const char *name);
struct oracle_consumer *oracle_subscriber_new(struct oracle *o,
					      const char *name);

/* Delivered: event `id` with `key` (from the row or the event). */
void oracle_saw(struct oracle_consumer *c, int64_t id, uint64_t key);
/* LITEBUS_LAGGED: `skipped` events were lost (litebus_sub_skipped()). */
void oracle_lagged(struct oracle_consumer *c, uint64_t skipped);
/* The subscriber's own counters at the end (litebus_sub_stats_get());
 * the check compares them with what was recorded. */
void oracle_sub_stats(struct oracle_consumer *c, uint64_t received,
		      uint64_t skipped);
/* Something the caller found wrong (an error, a damaged payload): the
 * consumer fails its check with this message (the first one is kept). */
void oracle_consumer_fail(struct oracle_consumer *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Events delivered and events skipped so far. */
uint64_t oracle_received(const struct oracle_consumer *c);
uint64_t oracle_skipped(const struct oracle_consumer *c);

/* ---- the verdict ---- */

/* Check c against everything committed.  Returns true if it passed;
 * otherwise false and, in why, a sentence naming c and the first id that
 * is wrong.  Call once recording has ended (threads joined). */
bool oracle_check(struct oracle *o, const struct oracle_consumer *c,
		  char *why, size_t why_len);

#endif
