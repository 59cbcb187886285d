/* SPDX-License-Identifier: MIT */
/*
 * hist.h - a log-bucketed latency histogram (nanoseconds).
 *
 * Values below 32 have a bucket each; above, every power of two is split
 * into 32 buckets, so a bucket is at most 1/32 (3.1%) wide relative to its
 * values.  A percentile is reported as the upper edge of its bucket (never
 * above the exact maximum), i.e. at most 3.1% high.  1920 buckets cover
 * every uint64_t.  Recording is a few instructions and never allocates.
 *
 * Threads: one thread records into a histogram at a time.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>
#include <string.h>

#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t n;
	uint64_t max;
};

static inline void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof *h);
}

static inline unsigned
hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
	shift = msb - HIST_SUB_BITS;
	/* The HIST_SUB_BITS bits below the leading one pick the bucket. */
	return HIST_SUB + shift * HIST_SUB +
	       (unsigned)((v >> shift) & (HIST_SUB - 1));
}

/* The largest value that falls in bucket i. */
static inline uint64_t
hist_upper(unsigned i)
{
	unsigned shift, sub;

	if (i < HIST_SUB)
		return i;
	shift = (i - HIST_SUB) / HIST_SUB;
	sub = (i - HIST_SUB) % HIST_SUB;
	return (((uint64_t)(HIST_SUB + sub) + 1) << shift) - 1;
}

static inline void
hist_add(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

/* Add every value recorded in *from to *into (same thread as both). */
static inline void
hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->count[i] += from->count[i];
	into->n += from->n;
	if (from->max > into->max)
		into->max = from->max;
}

/* The q-quantile (0 < q <= 1): the smallest bucket edge at or above
 * ceil(q * n) recorded values; 0 for an empty histogram. */
static inline uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)(q * (double)h->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > h->n)
		rank = h->n;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= rank) {
			uint64_t u = hist_upper(i);
			return u < h->max ? u : h->max;
		}
	}
	return h->max;
}

#endif
