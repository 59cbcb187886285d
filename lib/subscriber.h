/* SPDX-License-Identifier: MIT */
/*
 * subscriber.h - a cursor into one channel's ring: lap detection,
 * wake-ups, eventfd.  Readers (reader.c) embed one.
 */
#ifndef LB_SUBSCRIBER_H
#define LB_SUBSCRIBER_H

#include "channel.h"
#include "litebus.h"
#include "ring.h"

#include <stdint.h>

struct litebus;

struct litebus_sub {
	struct litebus *bus; /* holds a reference (B1) */
	struct lb_channel *ch;
	uint64_t pos; /* next ring position to read */
	uint64_t last_skipped;
	/* The channel's file_head this handle has taken into account (C6);
	 * its waits end when file_head rises above it.  INT64_MAX for a
	 * plain subscriber (the ring is all it reads); readers set it. */
	int64_t seen_file;
	litebus_sub_stats stats;
	struct lb_fd_waiter fdw; /* fdw.fd < 0 until an fd is asked for */
};

/* What lb_sub_poll() found. */
enum lb_poll { LB_POLL_EMPTY, LB_POLL_OK, LB_POLL_LAGGED };

/* Attach to the ring at its current head (S1); takes a bus reference. */
void lb_sub_init(struct litebus_sub *s, struct litebus *bus,
		 struct lb_channel *ch);
void lb_sub_fini(struct litebus_sub *s);

/* Take the next record without blocking.  LB_POLL_LAGGED sets
 * s->last_skipped and moves the cursor past the lost records. */
enum lb_poll lb_sub_poll(struct litebus_sub *s, struct lb_rec *rec);

/* Sleep until a record may be available, the channel closed, or the
 * deadline passed.  May return early. */
void lb_sub_wait(struct litebus_sub *s, uint64_t deadline_ns);

/*
 * The tail of every blocking call on a subscriber (litebus_recv and
 * litebus_reader_next), once it found nothing to return.  Returns
 * LITEBUS_CLOSED if the caller saw the channel closed before it looked
 * (`closed`, C2: it then saw everything ever published); LITEBUS_TIMEOUT,
 * with the fd armed (S4), if timeout_ms is 0 or the deadline has passed;
 * otherwise it sleeps until a record may be available, the channel
 * closes, or the deadline passes, and returns LITEBUS_OK: look again.
 * *deadline_ns starts at 0; the first sleep sets it from timeout_ms.
 * Blocking: up to timeout_ms in all.
 */
int lb_sub_block(struct litebus_sub *s, bool closed, int timeout_ms,
		 uint64_t *deadline_ns);

/* Nothing is left to read: if an fd exists, arm it (it turns unreadable
 * until a record at s->pos is published or the channel closes: C4). */
void lb_sub_idle(struct litebus_sub *s);

/* The rules every wait of litebus_recv() and litebus_reader_next() obeys
 * (litebus.h): timeout_ms below -1 is EINVAL; a timeout other than 0 on
 * the writer thread of the handle's own bus is EDEADLK (the writer would
 * wait for itself).  Returns OK or that status, with the thread's error
 * text set; `fn` names the public call. */
int lb_sub_check_timeout(const struct litebus_sub *s, int timeout_ms,
			 const char *fn);

/* Create the eventfd if needed; returns it or a negative status. */
int lb_sub_fd(struct litebus_sub *s);

#endif
