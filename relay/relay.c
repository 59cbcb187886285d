/* SPDX-License-Identifier: MIT */
/*
 * relay.c - ship each committed row of some channels to a Redis stream,
 * exactly once and in event_id order (include/litebus_relay.h).
 *
 * One thread per channel.  It reads the channel with a durable consumer,
 * collects up to `window` rows into a batch, sends the batch as
 * MULTI, XADD <key> <event_id>-0 ..., ..., EXEC in one write, reads the
 * replies, and acknowledges the batch's last id on the consumer.  Each
 * (re)connection first reads the stream's last generated id (XINFO
 * STREAM): rows at or below it are in the stream already and are passed
 * over, whether they come from the consumer (a relay killed between EXEC
 * and its ack) or from the batch in flight when the connection broke.
 *
 * Why MULTI/EXEC: Redis refuses an XADD whose id is not above the
 * stream's last id, so one refused entry followed by an accepted one
 * would be a hole for ever.  Redis refuses a whole transaction when a
 * command is refused while it is queued (out of memory, loading,
 * read-only replica, no permission), and runs all of it otherwise, so a
 * batch lands entirely or not at all.  An entry refused at run time as
 * "equal or smaller than the target stream top item" is one a previous
 * connection or relay already added (the ids are contiguous runs of the
 * channel's rows, each run applied in order: the top being at or above
 * an id of ours means that id's entry is there), and counts as shipped.
 *
 * Threads: litebus_relay_start/stats_get/wait/stop on the caller's
 * threads (not the bus's writer); chan_main on each channel's thread.
 * Shared state: `stopping` and each chan's `st`, `oldest_ms`, `live_fd`
 * under r->lock, with r->cond signalled whenever a position or a state
 * changes.  Everything else of a chan (the consumer, the Redis context,
 * the batch, top, acked, backoff) belongs to its thread alone between
 * start and the join in stop.
 *
 * Invariants
 *   Y1  Entries reach the stream in event_id order, each once: a batch
 *       holds consecutive rows of the consumer (ascending ids), only rows
 *       above the stream's last id as read on this connection, and the
 *       next batch is sent only after the previous one was confirmed.
 *   Y2  The consumer is acknowledged only up to an id known to be in the
 *       stream (confirmed by EXEC, or at or below the stream's last id),
 *       so a restart never skips a row that is not in the stream.
 *   Y3  st.position only grows, and is always an id in the stream (or
 *       the durable position at start, every row at or below which was
 *       acknowledged under Y2).
 *   Y4  A batch survives a broken connection: it is resent on the next
 *       connection, minus the rows that the stream already holds.
 *   Y5  Never a busy loop: a thread waits in poll() for rows, in the
 *       socket for replies (up to io_timeout_ms), or on r->cond for its
 *       backoff; every failed attempt doubles the backoff.
 *   Y6  No signal reaches the application: the channel threads block
 *       SIGPIPE (hiredis writes with write(2)), so a dead connection is
 *       an error return, never the end of the process.
 */
/* The real functions below take the names the header makes macros of. */
#define LITEBUS_RELAY_BUILDING_ 1
#include "litebus_relay.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A batch also ends when its commands reach this many bytes. */
#define BATCH_BYTES_MAX (4u << 20)

/* Outcome of one step of a channel's loop. */
enum step { STEP_OK, STEP_RETRY, STEP_STOP };

struct entry {
	int64_t id;
	int64_t committed_at_ms;
	char *cmd; /* RESP-formatted XADD (redisFormatCommandArgv) */
	size_t len;
};

struct chan {
	struct litebus_relay *r;
	int index;
	int channel;
	char *key; /* "<prefix>:<channel name>" */
	size_t key_len;
	litebus_consumer *c;
	pthread_t thread;
	bool started;

	/* The channel's thread only (see Threads). */
	redisContext *ctx;
	struct entry *batch;
	size_t n, bytes;
	int64_t top;   /* stream's last id as this connection knows it */
	int64_t acked; /* highest id passed to litebus_consumer_ack() */
	uint32_t backoff_ms;
	bool connected_once;

	/* Under r->lock. */
	int live_fd; /* the connection's socket while connected, else -1:
			stop shuts it down to end a wait for a reply */
	litebus_relay_stats st;
	int64_t oldest_ms; /* committed_at_ms of batch[0], 0 when empty */
};

struct litebus_relay {
	litebus *bus;
	litebus_relay_options o; /* strings point at the copies below */
	char *host, *password, *prefix, *consumer;
	int stop_fd; /* eventfd, readable once stop began; never read */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	bool stopping;	     /* under lock */
	int nchan;
	struct chan *chans;
};

/* ------------------------------------------------------------------ */
/* Clocks and small helpers                                            */

static int64_t
now_ms(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval
ms_tv(uint32_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

static char *
dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);

	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

static bool
is_stopping(struct litebus_relay *r)
{
	bool s;

	pthread_mutex_lock(&r->lock);
	s = r->stopping;
	pthread_mutex_unlock(&r->lock);
	return s;
}

static void
set_state(struct chan *ch, int state)
{
	struct litebus_relay *r = ch->r;

	pthread_mutex_lock(&r->lock);
	if (ch->st.state != LITEBUS_RELAY_STOPPED)
		ch->st.state = state;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Record an error (printf-style) in the channel's stats. */
__attribute__((format(printf, 2, 3))) static void
record_error(struct chan *ch, const char *fmt, ...)
{
	struct litebus_relay *r = ch->r;
	char msg[LITEBUS_RELAY_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&r->lock);
	ch->st.errors++;
	ch->st.last_error_ms = now_ms(CLOCK_REALTIME);
	memcpy(ch->st.last_error, msg, sizeof msg);
	pthread_mutex_unlock(&r->lock);
}

/* A permanent error, or the end: this channel stops for good. */
static void
stop_channel(struct chan *ch)
{
	struct litebus_relay *r = ch->r;

	pthread_mutex_lock(&r->lock);
	ch->st.state = LITEBUS_RELAY_STOPPED;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Y5: wait the current backoff (or until stop), then double it. */
static void
backoff(struct chan *ch)
{
	struct litebus_relay *r = ch->r;
	struct timespec dl;
	int64_t until;

	set_state(ch, LITEBUS_RELAY_BACKOFF);
	until = now_ms(CLOCK_MONOTONIC) + ch->backoff_ms;
	dl.tv_sec = (time_t)(until / 1000);
	dl.tv_nsec = (long)(until % 1000) * 1000000;
	pthread_mutex_lock(&r->lock);
	while (!r->stopping &&
	       pthread_cond_timedwait(&r->cond, &r->lock, &dl) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&r->lock);
	ch->backoff_ms = ch->backoff_ms >= r->o.backoff_max_ms / 2
			     ? r->o.backoff_max_ms
			     : ch->backoff_ms * 2;
}

/* ------------------------------------------------------------------ */
/* The batch                                                           */

static void
batch_publish_oldest(struct chan *ch)
{
	pthread_mutex_lock(&ch->r->lock);
	ch->oldest_ms = ch->n > 0 ? ch->batch[0].committed_at_ms : 0;
	pthread_mutex_unlock(&ch->r->lock);
}

/* Drop the first k entries of the batch. */
static void
batch_drop(struct chan *ch, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		ch->bytes -= ch->batch[i].len;
		redisFreeCommand(ch->batch[i].cmd);
	}
	memmove(ch->batch, ch->batch + k, (ch->n - k) * sizeof ch->batch[0]);
	ch->n -= k;
	batch_publish_oldest(ch);
}

/* Format row as XADD and append it to the batch.  0 or -1 (no memory). */
static int
batch_add(struct chan *ch, const litebus_row *row)
{
	const litebus_relay_options *o = &ch->r->o;
	char id[32], pk[24], occ[24], com[24], maxlen[24];
	const char *argv[24];
	size_t len[24];
	int argc = 0, n;
	char *cmd = NULL;

#define ARG(p, l)                                                              \
	do {                                                                   \
		argv[argc] = (p);                                              \
		len[argc] = (l);                                               \
		argc++;                                                        \
	} while (0)
#define ARGS(s) ARG((s), strlen(s))
	ARGS("XADD");
	ARG(ch->key, ch->key_len);
	if (o->maxlen > 0) {
		(void)snprintf(maxlen, sizeof maxlen, "%" PRId64, o->maxlen);
		ARGS("MAXLEN");
		ARGS("~");
		ARGS(maxlen);
	}
	(void)snprintf(id, sizeof id, "%" PRId64 "-0", row->event_id);
	(void)snprintf(pk, sizeof pk, "%" PRId64, row->partition_key);
	(void)snprintf(occ, sizeof occ, "%" PRId64, row->occurred_at_ms);
	(void)snprintf(com, sizeof com, "%" PRId64, row->committed_at_ms);
	ARGS(id);
	ARGS("partition_key");
	ARGS(pk);
	ARGS("subject");
	ARG(row->subject != NULL ? (const char *)row->subject : "",
	    row->subject_len);
	ARGS("event_type");
	ARGS(row->event_type);
	if (row->ns != NULL) {
		ARGS("namespace");
		ARGS(row->ns);
	}
	if (row->instance_tag != NULL) {
		ARGS("instance_tag");
		ARGS(row->instance_tag);
	}
	ARGS("payload");
	ARG(row->payload != NULL ? (const char *)row->payload : "",
	    row->payload_len);
	ARGS("occurred_at_ms");
	ARGS(occ);
	ARGS("committed_at_ms");
	ARGS(com);
#undef ARGS
#undef ARG
	n = redisFormatCommandArgv(&cmd, argc, argv, len);
	if (n < 0)
		return -1;
	ch->batch[ch->n].id = row->event_id;
	ch->batch[ch->n].committed_at_ms = row->committed_at_ms;
	ch->batch[ch->n].cmd = cmd;
	ch->batch[ch->n].len = (size_t)n;
	ch->n++;
	ch->bytes += (size_t)n;
	if (ch->n == 1)
		batch_publish_oldest(ch);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Progress                                                            */

/* Y3: every id up to `id` is in the stream. */
static void
advance(struct chan *ch, int64_t id, uint64_t relayed, uint64_t skipped)
{
	struct litebus_relay *r = ch->r;

	pthread_mutex_lock(&r->lock);
	if (id > ch->st.position)
		ch->st.position = id;
	ch->st.relayed += relayed;
	ch->st.skipped += skipped;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (id > ch->top)
		ch->top = id;
}

/* Y2: acknowledge up to `id`.  STEP_STOP when the bus is gone. */
static enum step
ack(struct chan *ch, int64_t id)
{
	int rc;

	if (id <= ch->acked)
		return STEP_OK;
	rc = litebus_consumer_ack(ch->c, id);
	if (rc == LITEBUS_OK) {
		ch->acked = id;
		return STEP_OK;
	}
	if (rc == LITEBUS_EAGAIN)
		return STEP_OK; /* the next ack covers it */
	record_error(ch, "acknowledging %" PRId64 " on the consumer: %s", id,
		     litebus_strerror(rc));
	return rc == LITEBUS_ECLOSED || rc == LITEBUS_EFORKED ? STEP_STOP
							      : STEP_OK;
}

/* ------------------------------------------------------------------ */
/* Redis                                                               */

/* Errors that no retry can cure (see the header's "Failures"). */
static bool
permanent_error(const char *msg)
{
	static const char *const prefixes[] = {
	    "WRONGTYPE",
	    "ERR unknown command",
	    "ERR unknown subcommand",
	    "ERR DB index is out of range",
	    "ERR invalid DB index",
	};

	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
		if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static void
disconnect(struct chan *ch)
{
	if (ch->ctx != NULL) {
		/* Before the close: stop never shuts down a closed (or
		 * reused) descriptor. */
		pthread_mutex_lock(&ch->r->lock);
		ch->live_fd = -1;
		pthread_mutex_unlock(&ch->r->lock);
		redisFree(ch->ctx);
		ch->ctx = NULL;
	}
}

/* The connection failed (ctx->err): record it and drop the connection. */
static enum step
io_failed(struct chan *ch, const char *what)
{
	record_error(ch, "%s:%d: %s: %s", ch->r->o.host, ch->r->o.port, what,
		     ch->ctx->errstr[0] != '\0' ? ch->ctx->errstr
						: "connection lost");
	disconnect(ch);
	return STEP_RETRY;
}

/* An error reply: record it; STEP_STOP if permanent, else STEP_RETRY. */
static enum step
reply_failed(struct chan *ch, const char *what, const redisReply *rep)
{
	record_error(ch, "%s: %.*s", what, (int)rep->len, rep->str);
	if (permanent_error(rep->str)) {
		disconnect(ch);
		return STEP_STOP;
	}
	disconnect(ch);
	return STEP_RETRY;
}

/* Parse "<ms>-<seq>" into ms; -1 if it is not a stream id. */
static int64_t
parse_id(const char *s, size_t len)
{
	int64_t v = 0;
	size_t i = 0;

	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0 || i >= len || s[i] != '-')
		return -1;
	return v;
}

/* One command, waited for.  The reply, or NULL on a connection error. */
static redisReply *
command(struct chan *ch, int argc, const char **argv)
{
	size_t len[8];

	for (int i = 0; i < argc; i++)
		len[i] = strlen(argv[i]);
	return redisCommandArgv(ch->ctx, argc, argv, len);
}

/* Connect, AUTH, SELECT, and read the stream's last id into ch->top. */
static enum step
connect_redis(struct chan *ch)
{
	struct litebus_relay *r = ch->r;
	const litebus_relay_options *o = &r->o;
	redisReply *rep;
	int64_t last = 0;
	char db[16];

	set_state(ch, LITEBUS_RELAY_CONNECTING);
	if (ch->connected_once) {
		pthread_mutex_lock(&r->lock);
		ch->st.reconnects++;
		pthread_mutex_unlock(&r->lock);
	}
	ch->connected_once = true;
	ch->ctx = redisConnectWithTimeout(o->host, o->port,
					  ms_tv(o->connect_timeout_ms));
	if (ch->ctx == NULL) {
		record_error(ch, "%s:%d: out of memory", o->host, o->port);
		return STEP_RETRY;
	}
	if (ch->ctx->err != 0)
		return io_failed(ch, "connect");
	if (redisSetTimeout(ch->ctx, ms_tv(o->io_timeout_ms)) != REDIS_OK ||
	    redisEnableKeepAlive(ch->ctx) != REDIS_OK)
		return io_failed(ch, "socket options");
	pthread_mutex_lock(&r->lock);
	ch->live_fd = ch->ctx->fd;
	if (r->stopping)
		(void)shutdown(ch->live_fd, SHUT_RDWR); /* stop came first */
	pthread_mutex_unlock(&r->lock);

	if (o->password != NULL) {
		const char *argv[] = {"AUTH", o->password};

		rep = command(ch, 2, argv);
		if (rep == NULL)
			return io_failed(ch, "AUTH");
		if (rep->type == REDIS_REPLY_ERROR) {
			enum step s = reply_failed(ch, "AUTH", rep);
			freeReplyObject(rep);
			/* A password is fixed on the server: retry. */
			return s == STEP_STOP ? STEP_STOP : STEP_RETRY;
		}
		freeReplyObject(rep);
	}
	if (o->db != 0) {
		const char *argv[] = {"SELECT", db};

		(void)snprintf(db, sizeof db, "%d", o->db);
		rep = command(ch, 2, argv);
		if (rep == NULL)
			return io_failed(ch, "SELECT");
		if (rep->type == REDIS_REPLY_ERROR) {
			enum step s = reply_failed(ch, "SELECT", rep);
			freeReplyObject(rep);
			return s;
		}
		freeReplyObject(rep);
	}

	{
		const char *argv[] = {"XINFO", "STREAM", ch->key};

		rep = command(ch, 3, argv);
	}
	if (rep == NULL)
		return io_failed(ch, "XINFO STREAM");
	if (rep->type == REDIS_REPLY_ERROR) {
		enum step s;

		if (strncmp(rep->str, "ERR no such key", 15) == 0) {
			freeReplyObject(rep);
			last = 0; /* a new stream */
			goto have_last;
		}
		s = reply_failed(ch, "XINFO STREAM", rep);
		freeReplyObject(rep);
		return s;
	}
	last = -1;
	if (rep->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i + 1 < rep->elements; i += 2) {
			const redisReply *k = rep->element[i];
			const redisReply *v = rep->element[i + 1];

			if (k->type == REDIS_REPLY_STRING &&
			    strcmp(k->str, "last-generated-id") == 0 &&
			    v->type == REDIS_REPLY_STRING)
				last = parse_id(v->str, v->len);
		}
	}
	freeReplyObject(rep);
	if (last < 0) {
		record_error(ch,
			     "XINFO STREAM %s: no last-generated-id in "
			     "the reply",
			     ch->key);
		disconnect(ch);
		return STEP_STOP;
	}

have_last:
	pthread_mutex_lock(&r->lock);
	if (last < ch->st.position) {
		/* Redis lost entries it had confirmed (no persistence, or
		 * appendfsync everysec and a crash).  They cannot be put
		 * back (ids only grow); say so and go on after them. */
		ch->st.errors++;
		ch->st.last_error_ms = now_ms(CLOCK_REALTIME);
		(void)snprintf(ch->st.last_error, sizeof ch->st.last_error,
			       "the stream %s ends at %" PRId64
			       " but Redis had confirmed entries up to %" PRId64
			       ": Redis lost them (check its persistence)",
			       ch->key, last, ch->st.position);
	}
	pthread_mutex_unlock(&r->lock);
	ch->top = last;
	/* Y4: what the stream holds of the batch is shipped. */
	{
		size_t k = 0;

		while (k < ch->n && ch->batch[k].id <= last)
			k++;
		if (k > 0) {
			int64_t id = ch->batch[k - 1].id;

			batch_drop(ch, k);
			advance(ch, id, 0, k);
			if (ack(ch, id) == STEP_STOP)
				return STEP_STOP;
		}
	}
	set_state(ch, LITEBUS_RELAY_STREAMING);
	return STEP_OK;
}

/* Send the batch as one MULTI/EXEC and process the replies. */
static enum step
send_batch(struct chan *ch)
{
	redisReply *rep = NULL;
	size_t n = ch->n;
	int64_t last = ch->batch[n - 1].id;
	uint64_t added = 0, present = 0;
	char queued_err[LITEBUS_RELAY_ERROR_MAX] = "";
	enum step s;

	if (redisAppendCommand(ch->ctx, "MULTI") != REDIS_OK)
		return io_failed(ch, "MULTI");
	for (size_t i = 0; i < n; i++)
		if (redisAppendFormattedCommand(ch->ctx, ch->batch[i].cmd,
						ch->batch[i].len) != REDIS_OK)
			return io_failed(ch, "XADD");
	if (redisAppendCommand(ch->ctx, "EXEC") != REDIS_OK)
		return io_failed(ch, "EXEC");

	/* MULTI, then QUEUED per XADD (or the reason it was refused). */
	for (size_t i = 0; i <= n; i++) {
		if (redisGetReply(ch->ctx, (void **)&rep) != REDIS_OK)
			return io_failed(ch, i == 0 ? "MULTI" : "XADD");
		if (rep->type == REDIS_REPLY_ERROR && queued_err[0] == '\0')
			(void)snprintf(queued_err, sizeof queued_err, "%.*s",
				       (int)rep->len, rep->str);
		freeReplyObject(rep);
	}
	if (redisGetReply(ch->ctx, (void **)&rep) != REDIS_OK)
		return io_failed(ch, "EXEC");
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
		/* Refused as a whole (EXECABORT, OOM, ...): nothing of it was
		 * applied.  The first queued refusal tells why. */
		if (queued_err[0] != '\0') {
			bool perm = permanent_error(queued_err);

			record_error(ch, "XADD %s: %s", ch->key, queued_err);
			freeReplyObject(rep);
			disconnect(ch);
			return perm ? STEP_STOP : STEP_RETRY;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			s = reply_failed(ch, "EXEC", rep);
			freeReplyObject(rep);
			return s;
		}
		record_error(ch, "EXEC: unexpected reply (type %d)", rep->type);
		freeReplyObject(rep);
		disconnect(ch);
		return STEP_RETRY;
	}
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = rep->element[i];

		if (e->type == REDIS_REPLY_STRING) {
			added++;
		} else if (e->type == REDIS_REPLY_ERROR &&
			   strstr(e->str, "equal or smaller") != NULL) {
			present++; /* added before: see the file comment */
		} else {
			/* Y1 would break if a later entry went in after this
			 * one stayed out: stop, loudly. */
			record_error(
			    ch,
			    "XADD %s %" PRId64 "-0: %.*s; the channel "
			    "stops here",
			    ch->key, ch->batch[i].id,
			    e->type == REDIS_REPLY_ERROR ? (int)e->len : 17,
			    e->type == REDIS_REPLY_ERROR ? e->str
							 : "unexpected reply");
			if (i > 0) {
				int64_t id = ch->batch[i - 1].id;

				batch_drop(ch, i);
				advance(ch, id, added, present);
				(void)ack(ch, id);
			}
			freeReplyObject(rep);
			disconnect(ch);
			return STEP_STOP;
		}
	}
	freeReplyObject(rep);
	batch_drop(ch, n);
	advance(ch, last, added, present);
	ch->backoff_ms = ch->r->o.backoff_min_ms;
	return ack(ch, last);
}

/* ------------------------------------------------------------------ */
/* Reading the channel                                                 */

/* Fill the batch with what the consumer has now; when the batch is
 * empty and nothing is there, wait for rows (or stop). */
static enum step
fill_batch(struct chan *ch, bool wait)
{
	struct litebus_relay *r = ch->r;
	int64_t passed = 0;
	uint64_t skipped = 0;
	litebus_row row;
	int rc;

	for (;;) {
		if (ch->n >= r->o.window || ch->bytes >= BATCH_BYTES_MAX)
			break;
		rc = litebus_consumer_next(ch->c, &row, 0);
		if (rc == LITEBUS_OK) {
			if (row.event_id <= ch->top) {
				/* In the stream already (a restart). */
				passed = row.event_id;
				skipped++;
				continue;
			}
			if (batch_add(ch, &row) != 0) {
				record_error(ch, "out of memory");
				return STEP_RETRY;
			}
			continue;
		}
		if (rc == LITEBUS_EXPIRED) {
			int64_t first = 0, last = 0;

			(void)litebus_consumer_expired(ch->c, &first, &last);
			record_error(ch,
				     "event_ids %" PRId64 "..%" PRId64
				     " were pruned (hard retention) before "
				     "they were relayed",
				     first, last);
			pthread_mutex_lock(&r->lock);
			ch->st.expired += (uint64_t)(last - first + 1);
			pthread_mutex_unlock(&r->lock);
			if (ch->n == 0)
				passed = last;
			continue;
		}
		if (rc == LITEBUS_TIMEOUT) {
			struct pollfd p[2];
			int fd;

			if (!wait || ch->n > 0 || skipped > 0 || passed > 0)
				break;
			fd = litebus_consumer_fd(ch->c);
			if (fd < 0) {
				record_error(ch, "litebus_consumer_fd: %s",
					     litebus_strerror(fd));
				return STEP_RETRY;
			}
			p[0].fd = fd;
			p[0].events = POLLIN;
			p[1].fd = r->stop_fd;
			p[1].events = POLLIN;
			if (poll(p, 2, -1) < 0 && errno != EINTR) {
				record_error(ch, "poll: %s", strerror(errno));
				return STEP_RETRY;
			}
			if (p[1].revents != 0)
				return STEP_STOP;
			continue;
		}
		if (rc == LITEBUS_CLOSED) {
			record_error(ch, "the bus closed");
			return STEP_STOP;
		}
		record_error(ch, "reading the channel: %s: %s",
			     litebus_strerror(rc), litebus_last_errmsg());
		return rc == LITEBUS_EFORKED ? STEP_STOP : STEP_RETRY;
	}
	if (passed > 0 && ch->n == 0) {
		/* Only rows the stream holds: the position moves past them. */
		advance(ch, passed, 0, skipped);
		return ack(ch, passed);
	}
	if (skipped > 0) {
		pthread_mutex_lock(&r->lock);
		ch->st.skipped += skipped;
		pthread_mutex_unlock(&r->lock);
	}
	return STEP_OK;
}

static void *
chan_main(void *arg)
{
	struct chan *ch = arg;
	struct litebus_relay *r = ch->r;
	enum step s = STEP_OK;

	sigset_t no_pipe;

	/* Y6: a write to a connection Redis closed (or stop shut down)
	 * fails with EPIPE, instead of SIGPIPE killing the process.  The
	 * signal is thread-directed, so blocking it here is enough; it stays
	 * pending on this thread and dies with it. */
	sigemptyset(&no_pipe);
	sigaddset(&no_pipe, SIGPIPE);
	(void)pthread_sigmask(SIG_BLOCK, &no_pipe, NULL);
	ch->backoff_ms = r->o.backoff_min_ms;
	while (!is_stopping(r)) {
		if (ch->ctx == NULL) {
			s = connect_redis(ch);
			if (s == STEP_STOP)
				break;
			if (s == STEP_RETRY) {
				/* Read what waits, without waiting, so that
				 * lag_ms tells how old it is. */
				if (ch->n == 0 &&
				    fill_batch(ch, false) == STEP_STOP)
					break;
				backoff(ch);
				continue;
			}
		}
		if (ch->n == 0) {
			s = fill_batch(ch, true);
			if (s == STEP_STOP)
				break;
			if (s == STEP_RETRY) {
				backoff(ch);
				continue;
			}
		}
		if (ch->n > 0 && ch->ctx != NULL) {
			s = send_batch(ch);
			if (s == STEP_STOP)
				break;
			if (s == STEP_RETRY)
				backoff(ch);
		}
	}
	if (is_stopping(r)) {
		pthread_mutex_lock(&r->lock);
		(void)snprintf(ch->st.last_error, sizeof ch->st.last_error,
			       "stopped by litebus_relay_stop()");
		pthread_mutex_unlock(&r->lock);
	}
	disconnect(ch);
	batch_drop(ch, ch->n);
	stop_channel(ch);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */

static void
relay_options_init(litebus_relay_options *o)
{
	if (o == NULL)
		return;
	memset(o, 0, sizeof *o);
	o->host = "127.0.0.1";
	o->port = 6379;
	o->prefix = "litebus";
	o->consumer = "relay";
	o->window = 1024;
	o->connect_timeout_ms = 2000;
	o->io_timeout_ms = 5000;
	o->backoff_min_ms = 100;
	o->backoff_max_ms = 5000;
}

static bool
options_valid(const litebus_relay_options *o)
{
	return o->host != NULL && o->host[0] != '\0' && o->port > 0 &&
	       o->port <= 65535 && o->db >= 0 && o->prefix != NULL &&
	       o->prefix[0] != '\0' &&
	       strlen(o->prefix) <= LITEBUS_RELAY_PREFIX_MAX &&
	       o->maxlen >= 0 && o->consumer != NULL &&
	       o->consumer[0] != '\0' &&
	       strlen(o->consumer) <= LITEBUS_CONSUMER_NAME_MAX &&
	       o->window >= 1 && o->window <= 65536 &&
	       o->connect_timeout_ms >= 1 && o->io_timeout_ms >= 1 &&
	       o->backoff_min_ms >= 1 && o->backoff_min_ms <= o->backoff_max_ms;
}

static void
relay_free(struct litebus_relay *r)
{
	for (int i = 0; i < r->nchan; i++) {
		litebus_consumer_close(r->chans[i].c);
		free(r->chans[i].key);
		free(r->chans[i].batch);
	}
	free(r->chans);
	if (r->stop_fd >= 0)
		(void)close(r->stop_fd);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r->host);
	free(r->password);
	free(r->prefix);
	free(r->consumer);
	free(r);
}

static void
relay_stop_threads(struct litebus_relay *r)
{
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->cond);
	/* Ends a wait for a reply at once (the thread sees an I/O error,
	 * then `stopping`): what was sent and not confirmed is found in
	 * the stream by the next start (Y2, Y4).  Failure only means the
	 * socket is not connected any more. */
	for (int i = 0; i < r->nchan; i++)
		if (r->chans[i].live_fd >= 0)
			(void)shutdown(r->chans[i].live_fd, SHUT_RDWR);
	pthread_mutex_unlock(&r->lock);
	/* Wakes the threads in poll(); an eventfd stays readable. */
	if (eventfd_write(r->stop_fd, 1) != 0)
		abort(); /* cannot fail on an eventfd below its maximum */
	for (int i = 0; i < r->nchan; i++)
		if (r->chans[i].started)
			(void)pthread_join(r->chans[i].thread, NULL);
}

static int
relay_start(litebus *bus, const char *const *channels,
	    const litebus_relay_options *opts, litebus_relay **out)
{
	litebus_relay_options o;
	struct litebus_relay *r;
	pthread_condattr_t ca;
	int n = 0, rc;

	if (out != NULL)
		*out = NULL;
	if (opts == NULL)
		relay_options_init(&o);
	else
		o = *opts;
	if (bus == NULL || channels == NULL || out == NULL ||
	    channels[0] == NULL || !options_valid(&o))
		return LITEBUS_EINVAL;
	while (channels[n] != NULL)
		n++;
	if (n > LITEBUS_MAX_CHANNELS)
		return LITEBUS_EINVAL;

	r = calloc(1, sizeof *r);
	if (r == NULL)
		return LITEBUS_ENOMEM;
	r->bus = bus;
	r->stop_fd = -1;
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r);
		return LITEBUS_ENOMEM;
	}
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&r->cond, &ca) != 0) {
		pthread_mutex_destroy(&r->lock);
		free(r);
		return LITEBUS_ENOMEM;
	}
	(void)pthread_condattr_destroy(&ca);
	r->host = dup_str(o.host);
	r->prefix = dup_str(o.prefix);
	r->consumer = dup_str(o.consumer);
	r->password = o.password != NULL ? dup_str(o.password) : NULL;
	r->chans = calloc((size_t)n, sizeof *r->chans);
	r->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (r->host == NULL || r->prefix == NULL || r->consumer == NULL ||
	    (o.password != NULL && r->password == NULL) || r->chans == NULL ||
	    r->stop_fd < 0) {
		rc = LITEBUS_ENOMEM;
		goto fail;
	}
	o.host = r->host;
	o.prefix = r->prefix;
	o.consumer = r->consumer;
	o.password = r->password;
	r->o = o;

	for (int i = 0; i < n; i++) {
		struct chan *ch = &r->chans[i];
		const char *name;
		int id = litebus_channel_id(bus, channels[i]);

		r->nchan = i + 1;
		ch->r = r;
		ch->index = i;
		ch->live_fd = -1;
		if (id < 0) {
			rc = id;
			goto fail;
		}
		for (int j = 0; j < i; j++)
			if (r->chans[j].channel == id) {
				rc = LITEBUS_EINVAL;
				goto fail;
			}
		ch->channel = id;
		name = litebus_channel_name(bus, id);
		if (name == NULL) {
			rc = LITEBUS_ECLOSED;
			goto fail;
		}
		(void)snprintf(ch->st.channel, sizeof ch->st.channel, "%s",
			       name);
		ch->key_len = strlen(o.prefix) + 1 + strlen(name);
		ch->key = malloc(ch->key_len + 1);
		ch->batch = calloc(o.window, sizeof *ch->batch);
		if (ch->key == NULL || ch->batch == NULL) {
			rc = LITEBUS_ENOMEM;
			goto fail;
		}
		(void)snprintf(ch->key, ch->key_len + 1, "%s:%s", o.prefix,
			       name);
		rc = litebus_consumer_open(bus, id, o.consumer,
					   LITEBUS_FROM_START, NULL, &ch->c);
		if (rc != LITEBUS_OK) {
			ch->c = NULL;
			goto fail;
		}
		/* Y3: the durable position's rows are in the stream. */
		ch->acked = litebus_consumer_cursor(ch->c);
		ch->top = ch->acked;
		ch->st.position = ch->acked;
		ch->st.state = LITEBUS_RELAY_CONNECTING;
	}
	for (int i = 0; i < n; i++) {
		struct chan *ch = &r->chans[i];

		if (pthread_create(&ch->thread, NULL, chan_main, ch) != 0) {
			rc = LITEBUS_ENOMEM;
			relay_stop_threads(r);
			goto fail;
		}
		ch->started = true;
	}
	*out = r;
	return LITEBUS_OK;

fail:
	relay_free(r);
	return rc;
}

int
litebus_relay_channel_count(const litebus_relay *r)
{
	return r == NULL ? LITEBUS_EINVAL : r->nchan;
}

static int
relay_stats_get(litebus_relay *r, int index, litebus_relay_stats *st)
{
	struct chan *ch;
	int64_t head = 0, oldest = 0, now;

	if (r == NULL || st == NULL || index < 0 || index >= r->nchan)
		return LITEBUS_EINVAL;
	ch = &r->chans[index];
	/* Outside the lock: a read of the file. */
	if (litebus_channel_head(r->bus, ch->channel, &head, &oldest) !=
	    LITEBUS_OK)
		head = -1;
	now = now_ms(CLOCK_REALTIME);
	pthread_mutex_lock(&r->lock);
	if (head >= 0)
		ch->st.head = head;
	ch->st.lag_events =
	    ch->st.head > ch->st.position ? ch->st.head - ch->st.position : 0;
	ch->st.lag_ms =
	    ch->oldest_ms > 0 && now > ch->oldest_ms ? now - ch->oldest_ms : 0;
	*st = ch->st;
	pthread_mutex_unlock(&r->lock);
	return LITEBUS_OK;
}

int
litebus_relay_wait(litebus_relay *r, int index, int64_t event_id,
		   int timeout_ms)
{
	struct chan *ch;
	struct timespec dl;
	int rc = LITEBUS_OK;

	if (r == NULL || index < 0 || index >= r->nchan || timeout_ms < -1)
		return LITEBUS_EINVAL;
	ch = &r->chans[index];
	if (timeout_ms >= 0) {
		int64_t until = now_ms(CLOCK_MONOTONIC) + timeout_ms;

		dl.tv_sec = (time_t)(until / 1000);
		dl.tv_nsec = (long)(until % 1000) * 1000000;
	}
	pthread_mutex_lock(&r->lock);
	while (ch->st.position < event_id) {
		if (ch->st.state == LITEBUS_RELAY_STOPPED) {
			rc = LITEBUS_CLOSED;
			break;
		}
		if (timeout_ms < 0) {
			pthread_cond_wait(&r->cond, &r->lock);
		} else if (pthread_cond_timedwait(&r->cond, &r->lock, &dl) ==
			   ETIMEDOUT) {
			rc = ch->st.position >= event_id ? LITEBUS_OK
							 : LITEBUS_TIMEOUT;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void
litebus_relay_stop(litebus_relay *r)
{
	if (r == NULL)
		return;
	relay_stop_threads(r);
	relay_free(r); /* closes the consumers: their acks become durable */
}

/* ------------------------------------------------------------------ */
/* The ABI (litebus_relay.h, "ABI"; litebus.h's policy, lib/abi.c A1-A5) */

/* The smallest size any header has given: the end of the first field. */
#define RELAY_ABI_MIN(type, first)                                             \
	(offsetof(type, first) + sizeof(((type *)0)->first))

/* A caller's input struct of `size` bytes over `own`, which holds the
 * defaults of the fields the caller may lack; EINVAL if bytes this library
 * does not know are set. */
static int
relay_abi_in(void *own, size_t own_size, const void *user, size_t size)
{
	const unsigned char *u = user;

	if (size > own_size)
		for (size_t i = own_size; i < size; i++)
			if (u[i] != 0)
				return LITEBUS_EINVAL;
	memcpy(own, user, size < own_size ? size : own_size);
	return LITEBUS_OK;
}

/* `own` into a caller's output struct of `size` bytes; what this library
 * does not know is set to 0. */
static void
relay_abi_out(void *user, size_t size, const void *own, size_t own_size)
{
	memcpy(user, own, size < own_size ? size : own_size);
	if (size > own_size)
		memset((unsigned char *)user + own_size, 0, size - own_size);
}

void
litebus_relay_options_init_sized(litebus_relay_options *o, size_t o_size)
{
	litebus_relay_options own;

	if (o == NULL || o_size < RELAY_ABI_MIN(litebus_relay_options, host))
		return;
	relay_options_init(&own);
	relay_abi_out(o, o_size, &own, sizeof own);
}

int
litebus_relay_start_sized(litebus *bus, const char *const *channels,
			  const litebus_relay_options *o, size_t o_size,
			  litebus_relay **out)
{
	litebus_relay_options own;

	if (out != NULL)
		*out = NULL;
	if (o == NULL)
		return relay_start(bus, channels, NULL, out);
	if (o_size < RELAY_ABI_MIN(litebus_relay_options, host))
		return LITEBUS_EINVAL;
	relay_options_init(&own);
	if (relay_abi_in(&own, sizeof own, o, o_size) != LITEBUS_OK)
		return LITEBUS_EINVAL;
	return relay_start(bus, channels, &own, out);
}

int
litebus_relay_stats_get_sized(litebus_relay *r, int index,
			      litebus_relay_stats *st, size_t st_size)
{
	litebus_relay_stats own;
	int rc;

	if (st == NULL || st_size < RELAY_ABI_MIN(litebus_relay_stats, channel))
		return LITEBUS_EINVAL;
	rc = relay_stats_get(r, index, &own);
	if (rc == LITEBUS_OK)
		relay_abi_out(st, st_size, &own, sizeof own);
	return rc;
}
