/* SPDX-License-Identifier: MIT */
/*
 * subscriber.c - ring cursor, lap detection, wake-ups, eventfd.
 *
 * A subscriber reads its channel's ring at its own position.  The writer
 * never looks at it.  If the writer has overwritten the slot the
 * subscriber wants, the subscriber has been lapped: it reports LAGGED with
 * the exact number of records it lost and resumes half a ring behind the
 * head.  Resuming at the oldest slot instead (what tokio's broadcast does)
 * would put it on the very slot the writer overwrites next, so it would
 * lag again at once ("lag thrash").
 *
 * Threads: one thread at a time per subscriber; the writer publishes
 * concurrently.
 *
 * Invariants
 *   S1  pos - 1 <= head at all times; a new subscriber starts at head + 1
 *       and so sees exactly the records published after it attached.
 *   S2  Every position below pos was either returned (received) or
 *       counted in a LAGGED (skipped), once: for a subscriber attached at
 *       p0, received + skipped == pos - p0.
 *   S3  After a lap, pos = max(old pos + 1, head - capacity/2 + 1).
 *   S4  The fd, once made, is armed (lb_sub_idle) for position pos only
 *       when a call is about to return TIMEOUT, and only a call that
 *       finds nothing arms it; so after TIMEOUT it is readable only once
 *       a record at pos or later is published, or the channel closes
 *       (C4).
 *   S5  Every wait obeys lb_sub_check_timeout(): below -1 is EINVAL, and
 *       a non-zero timeout on the writer thread of the subscriber's own
 *       bus is EDEADLK, before anything is read.
 */
#include "subscriber.h"

#include "bus.h"
#include "errors.h"
#include "wait.h"
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

void
lb_sub_init(struct litebus_sub *s, struct litebus *bus, struct lb_channel *ch)
{
	memset(s, 0, sizeof *s);
	lb_bus_ref(bus);
	s->bus = bus;
	s->ch = ch;
	s->pos = lb_ring_head(&ch->ring) + 1; /* S1 */
	s->seen_file = INT64_MAX;
	s->fdw.fd = -1;
	s->fdw.seen_file = INT64_MAX;
	atomic_init(&s->fdw.armed, 0);
}

void
lb_sub_fini(struct litebus_sub *s)
{
	if (s->fdw.fd >= 0) {
		lb_channel_fd_unregister(s->ch, &s->fdw);
		close(s->fdw.fd);
		s->fdw.fd = -1;
	}
	lb_bus_unref(s->bus);
}

enum lb_poll
lb_sub_poll(struct litebus_sub *s, struct lb_rec *rec)
{
	const struct lb_ring *r = &s->ch->ring;
	uint64_t head = lb_ring_head(r), resume;

	if (s->pos > head)
		return LB_POLL_EMPTY;
	if (head - s->pos < r->capacity && lb_ring_read(r, s->pos, rec)) {
		s->pos++;
		return LB_POLL_OK;
	}
	/* Lapped: slot pos holds a newer position or is being rewritten
	 * (R3).  Resume half a ring behind the newest head (S3). */
	head = lb_ring_head(r);
	resume = head + 1 - r->capacity / 2;
	if (head + 1 < r->capacity / 2 || resume <= s->pos)
		resume = s->pos + 1;
	s->last_skipped = resume - s->pos; /* exact by R2 */
	s->pos = resume;
	return LB_POLL_LAGGED;
}

void
lb_sub_wait(struct litebus_sub *s, uint64_t deadline_ns)
{
	lb_channel_wait(s->ch, s->pos, s->seen_file, deadline_ns);
}

void
lb_sub_idle(struct litebus_sub *s)
{
	if (s->fdw.fd >= 0)
		lb_channel_fd_arm(s->ch, &s->fdw, s->pos, s->seen_file);
}

int
lb_sub_block(struct litebus_sub *s, bool closed, int timeout_ms,
	     uint64_t *deadline_ns)
{
	if (closed)
		return LITEBUS_CLOSED;
	if (timeout_ms == 0) {
		lb_sub_idle(s);
		return LITEBUS_TIMEOUT;
	}
	if (*deadline_ns == 0)
		*deadline_ns = lb_deadline_ns(timeout_ms);
	else if (lb_mono_ns() >= *deadline_ns) {
		lb_sub_idle(s);
		return LITEBUS_TIMEOUT;
	}
	lb_sub_wait(s, *deadline_ns);
	return LITEBUS_OK;
}

int
lb_sub_check_timeout(const struct litebus_sub *s, int timeout_ms,
		     const char *fn)
{
	if (timeout_ms < -1)
		return lb_err_set(LITEBUS_EINVAL,
				  "%s: timeout_ms %d is below -1 (-1 waits "
				  "forever, 0 never waits)",
				  fn, timeout_ms);
	/* Jobs and done-callbacks run on the writer: a wait there would
	 * hold up the very commit it waits for. */
	if (timeout_ms != 0 && lb_writer_is_current(s->bus))
		return lb_err_set(LITEBUS_EDEADLK,
				  "%s: a timeout of %d ms on the bus's writer "
				  "thread (in a job or a done-callback) would "
				  "wait for the writer itself; use 0",
				  fn, timeout_ms);
	return LITEBUS_OK;
}

int
lb_sub_fd(struct litebus_sub *s)
{
	int fd;

	if (s->fdw.fd >= 0)
		return s->fdw.fd;
	/* Starts readable (count 1): records may be waiting.  The first
	 * recv that finds none arms it (lb_sub_idle). */
	fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		/* E2 (errors.c): out of descriptors is EMFILE. */
		return lb_err_set(lb_status_from_errno(err, LITEBUS_ENOMEM),
				  "eventfd: %s", strerror(err));
	}
	s->fdw.fd = fd;
	lb_channel_fd_register(s->ch, &s->fdw);
	return fd;
}

/* ------------------------------------------------------------------ */
/* Public                                                              */

int
litebus_subscribe(litebus *bus, int channel, litebus_sub **out)
{
	struct lb_channel *ch;
	litebus_sub *s;

	if (out != NULL)
		*out = NULL;
	if (bus == NULL || out == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_subscribe: NULL argument");
	if (lb_bus_forked(bus)) /* F1, in bus.c */
		return lb_fork_err("litebus_subscribe");
	if (!lb_bus_tryref(bus, "litebus_subscribe")) /* B1: keeps the bus */
		return LITEBUS_ECLOSED;
	if (lb_bus_read_only(bus)) { /* its rings are never published to */
		lb_bus_unref(bus);
		return lb_bus_readonly_err("litebus_subscribe");
	}
	ch = lb_bus_channel(bus, channel);
	if (ch == NULL) {
		lb_bus_unref(bus);
		return lb_err_set(LITEBUS_ENOCHANNEL,
				  "litebus_subscribe: no channel %d", channel);
	}
	if (lb_channel_is_closed(ch)) {
		lb_bus_unref(bus);
		return lb_err_set(LITEBUS_ECLOSED,
				  "litebus_subscribe: the bus is closed");
	}
	s = malloc(sizeof *s);
	if (s == NULL) {
		lb_bus_unref(bus);
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_subscribe: out of memory");
	}
	lb_sub_init(s, bus, ch); /* the subscriber's own reference */
	lb_bus_unref(bus);
	*out = s;
	return LITEBUS_OK;
}

static void
sub_event_from_rec(litebus_event *ev, const struct lb_rec *rec, int channel)
{
	ev->event_id = rec->event_id;
	ev->partition_key = rec->partition_key;
	ev->channel = channel;
	ev->subject_len = rec->subject_len;
	ev->committed_at_ms = rec->committed_at_ms;
	memcpy(ev->subject_prefix, rec->subject_prefix,
	       sizeof ev->subject_prefix);
}

int
litebus_recv(litebus_sub *s, litebus_event *ev, int timeout_ms)
{
	uint64_t deadline = 0;
	struct lb_rec rec;
	int rc;

	if (s == NULL || ev == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_recv: NULL argument");
	if (lb_bus_forked(s->bus)) /* F1, in bus.c */
		return lb_fork_err("litebus_recv");
	rc = lb_sub_check_timeout(s, timeout_ms, "litebus_recv");
	if (rc != LITEBUS_OK)
		return rc;
	for (;;) {
		bool closed = lb_channel_is_closed(s->ch);

		/* After seeing closed (C2), this poll sees the final head. */
		switch (lb_sub_poll(s, &rec)) {
		case LB_POLL_OK:
			sub_event_from_rec(ev, &rec, s->ch->id);
			s->stats.received++;
			return LITEBUS_OK;
		case LB_POLL_LAGGED:
			s->stats.lags++;
			s->stats.skipped += s->last_skipped;
			lb_stat_add(&s->bus->stats.sub_lags, 1);
			lb_stat_add(&s->bus->stats.sub_skipped,
				    s->last_skipped);
			lb_channel_count_lap(s->ch, s->last_skipped);
			return LITEBUS_LAGGED;
		case LB_POLL_EMPTY:
			break;
		}
		rc = lb_sub_block(s, closed, timeout_ms, &deadline);
		if (rc != LITEBUS_OK)
			return rc;
	}
}

uint64_t
litebus_sub_skipped(const litebus_sub *s)
{
	return s != NULL ? s->last_skipped : 0;
}

int
litebus_sub_fd(litebus_sub *s)
{
	if (s == NULL)
		return lb_err_set(LITEBUS_EINVAL, "litebus_sub_fd: NULL sub");
	if (lb_bus_forked(s->bus)) /* F1, in bus.c */
		return lb_fork_err("litebus_sub_fd");
	return lb_sub_fd(s);
}

int
litebus_sub_stats_get(const litebus_sub *s, litebus_sub_stats *st)
{
	if (s == NULL || st == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_sub_stats_get: NULL argument");
	if (lb_bus_forked(s->bus)) /* F1, in bus.c */
		return lb_fork_err("litebus_sub_stats_get");
	*st = s->stats;
	return LITEBUS_OK;
}

void
litebus_unsubscribe(litebus_sub *s)
{
	if (s == NULL)
		return;
	if (lb_bus_forked(s->bus)) /* F1: the parent's copy; free nothing */
		return;
	lb_sub_fini(s);
	free(s);
}
