/* SPDX-License-Identifier: MIT */
/*
 * consumers.c - the demo's readers and subscribers: a fast reader per
 * channel, a slow one that stalls so its ring laps it, a subscriber
 * blocking in litebus_recv() and one sleeping in poll() on its fd.  Each
 * runs on its own thread until LITEBUS_CLOSED and records what it got in
 * its channel's oracle.
 */
#include "demo.h"

#include <assert.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Consumers                                                           */

/* Record one delivered event.  Consumer thread. */
static void
consumer_saw(struct consumer *c, int64_t event_id, int64_t partition_key)
{
	oracle_saw(c->oc, event_id, (uint64_t)partition_key);
	if (partition_key < 0)
		oracle_consumer_fail(c->oc,
				     "id %" PRId64 " is an event of order %" PRId64
				     ", which was aborted",
				     event_id, -partition_key);
}

bool
consumer_is_reader(const struct consumer *c)
{
	return c->kind == FAST_READER || c->kind == SLOW_READER;
}

/* A litebus call of consumer c failed with status rc: report it; the
 * consumer then ends.  Consumer thread (litebus_last_errmsg is per
 * thread). */
static void
consumer_failed(struct consumer *c, const char *call, int rc)
{
	c->failed = true;
	oracle_consumer_fail(c->oc, "ended by an error: %s: %s", call,
			     litebus_errname(rc));
	demo_error(c->d, "%s: %s: %s: %s", c->name, call, litebus_errname(rc),
		   litebus_last_errmsg());
}

/* The consumer's last act, on its own thread: keep its final counters,
 * close its reader or subscriber, and tell main it has drained. */
static void
consumer_finish(struct consumer *c)
{
	struct demo *d = c->d;
	int rc;

	if (consumer_is_reader(c)) {
		rc = litebus_reader_stats_get(c->reader, &c->rstats);
		litebus_reader_close(c->reader);
		c->reader = NULL;
	} else {
		rc = litebus_sub_stats_get(c->sub, &c->sstats);
		litebus_unsubscribe(c->sub);
		c->sub = NULL;
	}
	if (rc != LITEBUS_OK)
		consumer_failed(c, "reading its counters", rc);
	pthread_mutex_lock(&d->lock);
	d->drained++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* The slow reader stalls DEMO_STALL_MS once per DEMO_STALL_PERIOD_MS
 * while producers run, long enough for its ring to lap it. */
static void
reader_maybe_stall(struct consumer *c, uint64_t *next_stall_ms)
{
	uint64_t now;

	if (c->kind != SLOW_READER || demo_stopping(c->d))
		return;
	now = mono_ms();
	if (now < *next_stall_ms)
		return;
	sleep_ms(DEMO_STALL_MS);
	*next_stall_ms = now + DEMO_STALL_PERIOD_MS;
}

static void *
reader_main(void *arg)
{
	struct consumer *c = arg;
	uint64_t next_stall_ms = mono_ms() + DEMO_STALL_PERIOD_MS;
	litebus_reader_stats st;
	litebus_row row;
	int rc;

	for (;;) {
		rc = litebus_reader_next(c->reader, &row, DEMO_WAIT_MS);
		if (rc == LITEBUS_CLOSED)
			break;
		if (rc == LITEBUS_OK) {
			consumer_saw(c, row.event_id, row.partition_key);
		} else if (rc != LITEBUS_TIMEOUT && rc != LITEBUS_EBUSY) {
			/* EBUSY leaves the cursor unchanged: just retry. */
			consumer_failed(c, "litebus_reader_next", rc);
			break;
		}
		atomic_store_explicit(&c->cursor,
				      litebus_reader_cursor(c->reader),
				      memory_order_relaxed);
		if (litebus_reader_stats_get(c->reader, &st) == LITEBUS_OK)
			atomic_store_explicit(&c->laps, st.lags,
					      memory_order_relaxed);
		reader_maybe_stall(c, &next_stall_ms);
	}
	consumer_finish(c);
	return NULL;
}

/*
 * Take events, and count lags, until litebus_recv() has none for
 * timeout_ms.  Returns LITEBUS_TIMEOUT then (which also makes the
 * subscriber's fd unreadable until the next publish), LITEBUS_CLOSED, or
 * a negative error.  Subscriber thread.
 */
static int
sub_take(struct consumer *c, int timeout_ms)
{
	litebus_event ev;
	int rc;

	for (;;) {
		rc = litebus_recv(c->sub, &ev, timeout_ms);
		if (rc == LITEBUS_OK) {
			consumer_saw(c, ev.event_id, ev.partition_key);
			atomic_store_explicit(&c->cursor, ev.event_id,
					      memory_order_relaxed);
		} else if (rc == LITEBUS_LAGGED) {
			oracle_lagged(c->oc, litebus_sub_skipped(c->sub));
			atomic_fetch_add_explicit(&c->laps, 1,
						  memory_order_relaxed);
		} else {
			return rc;
		}
	}
}

/* A subscriber that blocks in litebus_recv(). */
static void *
recv_sub_main(void *arg)
{
	struct consumer *c = arg;
	int rc;

	do
		rc = sub_take(c, DEMO_WAIT_MS);
	while (rc == LITEBUS_TIMEOUT);
	if (rc != LITEBUS_CLOSED)
		consumer_failed(c, "litebus_recv", rc);
	consumer_finish(c);
	return NULL;
}

/* A subscriber that sleeps in poll() on its fd, then drains it. */
static void *
poll_sub_main(void *arg)
{
	struct consumer *c = arg;
	struct pollfd pfd;
	int n, rc;

	pfd.fd = litebus_sub_fd(c->sub);
	pfd.events = POLLIN;
	if (pfd.fd < 0) {
		consumer_failed(c, "litebus_sub_fd", pfd.fd);
		consumer_finish(c);
		return NULL;
	}
	for (;;) {
		n = poll(&pfd, 1, DEMO_WAIT_MS);
		if (n < 0 && errno != EINTR) {
			c->failed = true;
			oracle_consumer_fail(c->oc, "ended by an error: poll");
			demo_error(c->d, "%s: poll: %s", c->name,
				   strerror(errno));
			break;
		}
		if (n <= 0)
			continue;
		rc = sub_take(c, 0);
		if (rc == LITEBUS_CLOSED)
			break;
		if (rc != LITEBUS_TIMEOUT) {
			consumer_failed(c, "litebus_recv", rc);
			break;
		}
	}
	consumer_finish(c);
	return NULL;
}


/* The thread of consumer `arg`. */
void *
consumer_main(void *arg)
{
	struct consumer *c = arg;

	switch (c->kind) {
	case FAST_READER:
	case SLOW_READER:
		return reader_main(c);
	case RECV_SUB:
		return recv_sub_main(c);
	case POLL_SUB:
		return poll_sub_main(c);
	}
	return NULL;
}

static int
demo_add_consumer(struct demo *d, enum consumer_kind kind, int ch,
		  const char *label)
{
	static const char *const kinds[] = {"fast", "slow", "recv", "poll"};
	struct consumer *c = &d->cons[d->ncons];
	char name[sizeof c->name];
	bool is_reader;
	int rc;

	assert(d->ncons < (int)(sizeof d->cons / sizeof d->cons[0]));
	memset(c, 0, sizeof *c);
	c->d = d;
	c->kind = kind;
	c->ch = ch;
	is_reader = consumer_is_reader(c);
	/* Through a local buffer: GCC's -Wrestrict cannot tell c->name
	 * from d->chan[ch].name.  It is sized for the longest name. */
	snprintf(name, sizeof name, "%s %s (%s)", is_reader ? "reader" : "sub",
		 d->chan[ch].name, kinds[kind]);
	memcpy(c->name, name, sizeof name);
	snprintf(c->label, sizeof c->label, "%s", label);
	c->oc = is_reader ? oracle_reader_new(d->oracle[ch], c->name)
			  : oracle_subscriber_new(d->oracle[ch], c->name);
	if (c->oc == NULL) {
		fprintf(stderr, "litebus-demo: out of memory\n");
		return -1;
	}
	if (is_reader)
		rc = litebus_reader_open(d->bus, d->chan[ch].id,
					 LITEBUS_FROM_NOW, NULL, &c->reader);
	else
		rc = litebus_subscribe(d->bus, d->chan[ch].id, &c->sub);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "litebus-demo: %s: %s: %s\n", c->name,
			litebus_errname(rc), litebus_last_errmsg());
		return -1;
	}
	if (is_reader) {
		/* Nothing is committed before the producers start, so a
		 * reader's cursor now is the channel's newest event_id. */
		d->chan[ch].base = litebus_reader_cursor(c->reader);
	}
	atomic_init(&c->cursor, d->chan[ch].base);
	atomic_init(&c->laps, 0);
	d->ncons++;
	return 0;
}

/* Open every consumer before the first order, so each sees them all. */
int
demo_open_consumers(struct demo *d)
{
	static const struct {
		enum consumer_kind kind;
		int ch;
		const char *label;
	} plan[] = {
	    {FAST_READER, CH_LEASE, "lease"},
	    {FAST_READER, CH_COMPLETION, "compl"},
	    {FAST_READER, CH_OPERATOR, "oper"},
	    {FAST_READER, CH_AUDIT, "audit"},
	    {SLOW_READER, CH_LEASE, "slow"},
	    {RECV_SUB, CH_COMPLETION, "recv"},
	    {POLL_SUB, CH_AUDIT, "poll"},
	};

	for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
		if (demo_add_consumer(d, plan[i].kind, plan[i].ch,
				      plan[i].label) != 0)
			return -1;
	return 0;
}
