/* SPDX-License-Identifier: MIT */
/*
 * baseline_ring.c - mutex + condvar broadcast ring (see baseline_ring.h).
 */
#include "baseline_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int
bring_init(struct bring *r, uint32_t capacity)
{
	r->slots = calloc(capacity, sizeof *r->slots);
	if (r->slots == NULL)
		return -1;
	r->capacity = capacity;
	r->mask = capacity - 1u;
	r->head = 0;
	r->waiters = 0;
	r->closed = false;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	return 0;
}

void
bring_fini(struct bring *r)
{
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r->slots);
	r->slots = NULL;
}

void
bring_publish(struct bring *r, const struct bring_rec *recs, size_t n)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < n; i++)
		r->slots[++r->head & r->mask] = recs[i];
	if (r->waiters > 0)
		pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void
bring_close(struct bring *r)
{
	pthread_mutex_lock(&r->lock);
	r->closed = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void
bring_sub_init(struct bring_sub *s, struct bring *r)
{
	s->ring = r;
	pthread_mutex_lock(&r->lock);
	s->pos = r->head + 1;
	pthread_mutex_unlock(&r->lock);
	s->received = s->lags = s->skipped = s->last_skipped = 0;
}

enum bring_status
bring_recv(struct bring_sub *s, struct bring_rec *out, int timeout_ms)
{
	struct bring *r = s->ring;
	struct timespec deadline;
	enum bring_status st;

	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&r->lock);
	while (s->pos > r->head && !r->closed) {
		int rc;

		r->waiters++;
		if (timeout_ms < 0)
			rc = pthread_cond_wait(&r->cond, &r->lock);
		else
			rc = pthread_cond_timedwait(&r->cond, &r->lock,
						    &deadline);
		r->waiters--;
		if (rc == ETIMEDOUT && s->pos > r->head && !r->closed) {
			pthread_mutex_unlock(&r->lock);
			return BRING_TIMEOUT;
		}
	}
	if (s->pos > r->head) {
		st = BRING_CLOSED;
	} else if (r->head - s->pos >= r->capacity) {
		/* Overwritten: resume at the oldest record still here. */
		uint64_t oldest = r->head - r->capacity + 1;

		s->last_skipped = oldest - s->pos;
		s->skipped += s->last_skipped;
		s->lags++;
		s->pos = oldest;
		st = BRING_LAGGED;
	} else {
		*out = r->slots[s->pos & r->mask];
		s->pos++;
		s->received++;
		st = BRING_OK;
	}
	pthread_mutex_unlock(&r->lock);
	return st;
}
