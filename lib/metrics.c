/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - litebus_metrics_format: the bus's counters and what the file
 * holds, as one JSON object or as Prometheus text exposition (0.0.4).
 *
 * Two kinds of figures.  Counters this process keeps (litebus_stats, the
 * per-channel counts in channel.c, the histograms in stats.h) are read
 * with relaxed loads, each exact by itself.  Figures only the file knows
 * (each channel's head and oldest id, the schema version, the durable
 * consumers) are read on connections of our own, never the writer's, so
 * the call works with or without a writer (a read-only bus has none: its
 * counters are zero and the file's figures are what matter) and never
 * waits for jobs.  The whole text is built in memory first, so a failure
 * leaves the caller nothing half-written.
 *
 * Why two formats from one description: the family table below (names,
 * types, help) is walked once per call, and each sample is written by
 * the format's emitter, so a metric cannot exist in one format and not in
 * the other, and the JSON keys are the Prometheus names.
 *
 * JSON shape: {"<name>": <number>} for a metric without labels;
 * {"<name>": [{"channel": "...", ["consumer": "...",] "value": <n>}, ...]}
 * for a labelled one; {"<name>": {"buckets": [{"le": <bound>, "count":
 * <cumulative>}, ...], "count": <n>, "sum": <s>}} for a histogram (the
 * +Inf bucket is "count").
 *
 * Threads: any thread, including the bus's writer (inside a job: the file
 * reads then do not wait out locks, which may be the writer's own).
 *
 * Invariants
 *   M1  Every family is written once, in one piece: # HELP and # TYPE
 *       first, then its samples (Prometheus), or one key (JSON).
 *   M2  Every string that comes from outside litebus's code (channel
 *       names as the file spells them, consumer names) is escaped for
 *       its format, and the output is well-formed UTF-8: a byte sequence
 *       that is not becomes U+FFFD.  Numbers are printed as integers or
 *       from fixed decimal strings, never with the locale-dependent %f/%g.
 *   M3  A histogram is self-consistent: each bucket word is loaded once,
 *       the cumulative counts and _count are sums of those loads, so
 *       buckets never decrease along `le` and le="+Inf" equals _count
 *       (stats.h says why relaxed loads suffice).
 *   M4  Heads, oldest ids and the schema version come from one read
 *       transaction (one snapshot); consumers from litebus_consumer_list's
 *       own snapshot, in which each lag is head - position.
 *   M5  On any status but OK, *text is NULL and *len 0.
 */
#include "bus.h"
#include "errors.h"
#include "outbox.h"
#include "stats.h"
#include "wait.h"
#include "watcher.h"
#include "writer.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MET_CALL "litebus_metrics_format"
/* Backoff while another connection holds a lock (as litebus_channel_head). */
#define MET_BACKOFF_MIN_NS 20000u   /* 20 us */
#define MET_BACKOFF_MAX_NS 2000000u /* 2 ms */

/* ------------------------------------------------------------------ */
/* What is reported                                                     */

struct met_chan {
	const char *name; /* the bus's, lives as long as the bus */
	uint64_t published, sub_lags, sub_skipped;
	int64_t head, oldest;
};

struct met_snap {
	litebus_stats st;
	uint64_t ckpt_forced, ckpt_held, ckpt_errors, pruned_rows;
	struct lb_watcher_stats watch; /* zeros without a watcher */
	uint64_t batch_jobs[LB_HIST_BATCH_N + 1], batch_jobs_sum;
	uint64_t commit_ns[LB_HIST_COMMIT_N + 1], commit_ns_sum;
	int nchannels;
	struct met_chan ch[LITEBUS_MAX_CHANNELS];
	int64_t wal_bytes;
	int64_t schema_version;
	litebus_consumer_info *cons;
	size_t ncons;
};

/* Relaxed: counters that order nothing (stats.h). */
static uint64_t
met_load(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void
met_read_counters(litebus *bus, struct met_snap *m)
{
	const struct lb_stats *s = &bus->stats;

	m->ckpt_forced = met_load(&s->ckpt_forced);
	m->ckpt_held = met_load(&s->ckpt_held);
	m->ckpt_errors = met_load(&s->ckpt_errors);
	m->pruned_rows = met_load(&s->pruned_rows);
	lb_watcher_stats_get(bus->watcher, &m->watch);
	/* M3: each bucket loaded once; the emitters derive the rest. */
	for (size_t i = 0; i <= LB_HIST_BATCH_N; i++)
		m->batch_jobs[i] = met_load(&s->batch_jobs[i]);
	m->batch_jobs_sum = met_load(&s->batch_jobs_sum);
	for (size_t i = 0; i <= LB_HIST_COMMIT_N; i++)
		m->commit_ns[i] = met_load(&s->commit_ns[i]);
	m->commit_ns_sum = met_load(&s->commit_ns_sum);
	m->nchannels = bus->nchannels;
	for (int i = 0; i < bus->nchannels; i++) {
		const struct lb_channel *ch = bus->channels[i];

		m->ch[i].name = ch->name;
		m->ch[i].published = lb_channel_published_count(ch);
		m->ch[i].sub_lags = lb_channel_sub_lags(ch);
		m->ch[i].sub_skipped = lb_channel_sub_skipped(ch);
	}
}

/* M4: one read transaction for the version and every channel's range. */
static int
met_read_file_once(sqlite3 *db, struct met_snap *m)
{
	int rc, src;

	rc = lb_outbox_read_begin(db);
	if (rc != LITEBUS_OK)
		return rc;
	rc = lb_outbox_read_schema_version(db, &m->schema_version);
	for (int i = 0; rc == LITEBUS_OK && i < m->nchannels; i++) {
		/* The reads litebus_channel_head makes (retention.c). */
		rc = lb_outbox_read_head(db, m->ch[i].name, &m->ch[i].head);
		if (rc == LITEBUS_OK)
			rc = lb_outbox_read_oldest(db, m->ch[i].name,
						   &m->ch[i].oldest);
	}
	/* A read transaction: ending it loses nothing. */
	src = lb_outbox_read_end(db);
	if (rc == LITEBUS_OK)
		rc = src;
	if (!sqlite3_get_autocommit(db))
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* The -wal file's size in bytes, 0 if there is none (in memory, or no
 * connection has it open). */
static int
met_wal_size(sqlite3 *db, bool is_memory, int64_t *bytes)
{
	const char *wal;
	struct stat sb;

	*bytes = 0;
	if (is_memory)
		return LITEBUS_OK;
	wal = sqlite3_filename_wal(sqlite3_db_filename(db, "main"));
	if (wal == NULL || wal[0] == '\0')
		return LITEBUS_OK;
	if (stat(wal, &sb) != 0) {
		if (errno == ENOENT)
			return LITEBUS_OK;
		return lb_err_set(LITEBUS_EIO, MET_CALL ": stat %s: %s", wal,
				  strerror(errno));
	}
	*bytes = (int64_t)sb.st_size;
	return LITEBUS_OK;
}

/* The file's figures on a connection of our own, waiting out other
 * connections' locks for busy_timeout_ms, except on the writer thread,
 * where the lock may be the writer's own. */
static int
met_read_file(litebus *bus, struct met_snap *m)
{
	uint64_t deadline_ns = 0, sleep_ns = MET_BACKOFF_MIN_NS;
	bool on_writer = lb_writer_is_current(bus);
	sqlite3 *db = NULL;
	int rc;

	rc = lb_bus_check_file(bus, MET_CALL); /* B5 */
	if (rc == LITEBUS_OK)
		rc = lb_outbox_open_reader(&bus->dbn, &db);
	while (rc == LITEBUS_OK) {
		uint64_t now;

		rc = met_read_file_once(db, m);
		if (rc != LITEBUS_EBUSY || on_writer)
			break;
		now = lb_mono_ns();
		if (deadline_ns == 0)
			deadline_ns =
			    now +
			    (uint64_t)bus->opts.busy_timeout_ms * 1000000u;
		if (now >= deadline_ns)
			break;
		lb_sleep_ns(sleep_ns < deadline_ns - now ? sleep_ns
							 : deadline_ns - now);
		if (sleep_ns < MET_BACKOFF_MAX_NS)
			sleep_ns *= 2;
		rc = LITEBUS_OK;
	}
	if (rc == LITEBUS_OK)
		rc = met_wal_size(db, bus->dbn.is_memory, &m->wal_bytes);
	/* A read-only connection with no statement left: cannot fail. */
	(void)sqlite3_close_v2(db);
	return rc;
}

/* Every durable consumer, through litebus_consumer_list (M4): its
 * snapshot gives position, head and lag of one moment. */
static int
met_read_consumers(litebus *bus, struct met_snap *m)
{
	size_t cap = 16, count = 0;

	for (;;) {
		litebus_consumer_info *rows = malloc(cap * sizeof *rows);
		int rc;

		if (rows == NULL)
			return lb_err_set(LITEBUS_ENOMEM,
					  MET_CALL ": out of memory");
		rc = litebus_consumer_list(bus, -1, rows, cap, &count);
		if (rc != LITEBUS_OK || count <= cap) {
			if (rc != LITEBUS_OK)
				free(rows);
			else
				m->cons = rows, m->ncons = count;
			return rc;
		}
		/* More than fit: consumers were added meanwhile. */
		free(rows);
		cap = count + 16;
	}
}

/* ------------------------------------------------------------------ */
/* Text                                                                 */

struct met_out {
	int format;
	char *buf;
	size_t len, cap;
	bool oom;
	/* JSON: no key written yet in the object / no item in the array. */
	bool first_key, first_item;
};

static void
out_reserve(struct met_out *o, size_t more)
{
	size_t cap;
	char *p;

	if (o->oom || o->len + more < o->cap)
		return;
	cap = o->cap != 0 ? o->cap : 4096;
	while (cap <= o->len + more)
		cap *= 2;
	p = realloc(o->buf, cap);
	if (p == NULL) {
		o->oom = true;
		return;
	}
	o->buf = p;
	o->cap = cap;
}

static void
out_bytes(struct met_out *o, const char *s, size_t n)
{
	out_reserve(o, n);
	if (o->oom)
		return;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void
out_str(struct met_out *o, const char *s)
{
	out_bytes(o, s, strlen(s));
}

static void out_fmt(struct met_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out_fmt(struct met_out *o, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	/* Only our own short formats of integers and names come here. */
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	assert(n >= 0 && (size_t)n < sizeof tmp);
	if (n > 0)
		out_bytes(o, tmp, (size_t)n);
}

/* The length of the well-formed UTF-8 sequence at s[0..len), or 0 if it
 * is not one (the rules of consumer names: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static size_t
utf8_seq_len(const unsigned char *s, size_t len)
{
	size_t n;
	uint32_t cp, min;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0)
		n = 1, cp = s[0] & 0x1Fu, min = 0x80;
	else if ((s[0] & 0xF0) == 0xE0)
		n = 2, cp = s[0] & 0x0Fu, min = 0x800;
	else if ((s[0] & 0xF8) == 0xF0)
		n = 3, cp = s[0] & 0x07u, min = 0x10000;
	else
		return 0;
	if (n >= len)
		return 0;
	for (size_t j = 1; j <= n; j++) {
		if ((s[j] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[j] & 0x3Fu);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n + 1;
}

/* A string, escaped for the format (M2): JSON's string escapes, or the
 * exposition format's for label values (backslash, double quote, line
 * feed; everything else as it is). */
static void
out_escaped(struct met_out *o, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len = strlen(str);

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(s + i, len - i);
		unsigned char c = s[i];

		if (n == 0) {
			out_str(o, "\xEF\xBF\xBD"); /* U+FFFD */
			i++;
			continue;
		}
		if (n > 1) {
			out_bytes(o, (const char *)s + i, n);
			i += n;
			continue;
		}
		i++;
		if (c == '\\')
			out_str(o, "\\\\");
		else if (c == '"')
			out_str(o, "\\\"");
		else if (c == '\n')
			out_str(o, "\\n");
		else if (o->format == LITEBUS_METRICS_JSON && c < 0x20)
			out_fmt(o, "\\u%04x", c);
		else
			out_bytes(o, (const char *)&c, 1);
	}
}

/* Families.  Names follow Prometheus's conventions: litebus_ prefix,
 * base units in the name (_seconds, _bytes), _total on counters. */
enum met_kind { MET_COUNTER, MET_GAUGE, MET_HISTOGRAM };

struct met_family {
	const char *name;
	enum met_kind kind;
	const char *help;
};

static const char *const met_type_name[] = {"counter", "gauge", "histogram"};

/* Begin a family (M1).  `labelled`: JSON array of labelled samples. */
static void
out_family(struct met_out *o, const struct met_family *f, bool labelled)
{
	if (o->format == LITEBUS_METRICS_PROMETHEUS) {
		/* Our help texts have no backslash or line feed to escape. */
		out_fmt(o, "# HELP %s ", f->name);
		out_str(o, f->help);
		out_fmt(o, "\n# TYPE %s %s\n", f->name, met_type_name[f->kind]);
		return;
	}
	out_str(o, o->first_key ? "\n\"" : ",\n\"");
	o->first_key = false;
	out_str(o, f->name);
	out_str(o, labelled ? "\": [" : "\": ");
	o->first_item = true;
}

static void
out_family_end(struct met_out *o, bool labelled)
{
	if (o->format == LITEBUS_METRICS_JSON && labelled)
		out_str(o, "]");
}

/* A metric without labels. */
static void
out_scalar(struct met_out *o, const struct met_family *f, const char *value)
{
	out_family(o, f, false);
	if (o->format == LITEBUS_METRICS_PROMETHEUS)
		out_fmt(o, "%s %s\n", f->name, value);
	else
		out_str(o, value);
}

/* One sample of a labelled family: channel, and consumer if not NULL. */
static void
out_labelled(struct met_out *o, const struct met_family *f, const char *chan,
	     const char *consumer, const char *value)
{
	if (o->format == LITEBUS_METRICS_PROMETHEUS) {
		out_str(o, f->name);
		out_str(o, "{channel=\"");
		out_escaped(o, chan);
		if (consumer != NULL) {
			out_str(o, "\",consumer=\"");
			out_escaped(o, consumer);
		}
		out_fmt(o, "\"} %s\n", value);
		return;
	}
	out_str(o, o->first_item ? "\n  {\"channel\": \""
				 : ",\n  {\"channel\": \"");
	o->first_item = false;
	out_escaped(o, chan);
	if (consumer != NULL) {
		out_str(o, "\", \"consumer\": \"");
		out_escaped(o, consumer);
	}
	out_fmt(o, "\", \"value\": %s}", value);
}

struct met_hist {
	const uint64_t *buckets; /* n + 1 words, not cumulative */
	size_t n;
	const char *const *le; /* n bounds, as decimal text */
	const char *sum;
};

static void
out_histogram(struct met_out *o, const struct met_family *f,
	      const struct met_hist *h)
{
	uint64_t cum = 0;

	out_family(o, f, false);
	if (o->format == LITEBUS_METRICS_JSON)
		out_str(o, "{\"buckets\": [");
	for (size_t i = 0; i < h->n; i++) {
		cum += h->buckets[i];
		if (o->format == LITEBUS_METRICS_PROMETHEUS)
			out_fmt(o, "%s_bucket{le=\"%s\"} %" PRIu64 "\n",
				f->name, h->le[i], cum);
		else
			out_fmt(o, "%s{\"le\": %s, \"count\": %" PRIu64 "}",
				i == 0 ? "" : ", ", h->le[i], cum);
	}
	cum += h->buckets[h->n]; /* M3: +Inf and _count are this sum */
	if (o->format == LITEBUS_METRICS_PROMETHEUS) {
		out_fmt(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", f->name,
			cum);
		out_fmt(o, "%s_sum %s\n", f->name, h->sum);
		out_fmt(o, "%s_count %" PRIu64 "\n", f->name, cum);
	} else {
		out_fmt(o, "], \"count\": %" PRIu64 ", \"sum\": %s}", cum,
			h->sum);
	}
}

/* Integers as text, locale-free (M2). */
struct met_num {
	char s[32];
};

static struct met_num
num_u(uint64_t v)
{
	struct met_num n;

	snprintf(n.s, sizeof n.s, "%" PRIu64, v);
	return n;
}

static struct met_num
num_i(int64_t v)
{
	struct met_num n;

	snprintf(n.s, sizeof n.s, "%" PRId64, v);
	return n;
}

/* Nanoseconds as seconds with nine decimals. */
static struct met_num
num_seconds(uint64_t ns)
{
	struct met_num n;

	snprintf(n.s, sizeof n.s, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u,
		 ns % 1000000000u);
	return n;
}

/* Milliseconds since the epoch as seconds with three decimals (0 for a
 * negative value, which litebus never writes). */
static struct met_num
num_ms_seconds(int64_t ms)
{
	struct met_num n;

	if (ms < 0)
		ms = 0;
	snprintf(n.s, sizeof n.s, "%" PRId64 ".%03" PRId64, ms / 1000,
		 ms % 1000);
	return n;
}

/* The buckets' bounds as text (stats.h has them as numbers; a test checks
 * that the two agree). */
static const char *const met_batch_le[LB_HIST_BATCH_N] = {
    "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024"};
static const char *const met_commit_le[LB_HIST_COMMIT_N] = {
    "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001",
    "0.0025",  "0.005",	   "0.01",    "0.025",	"0.05",	   "0.1",    "0.25",
    "0.5",     "1",	   "2.5",     "5",	"10"};

/* Every family, in output order.  The header's "Metrics export" list is
 * this table. */
enum {
	F_BATCHES,
	F_COMMITS,
	F_JOBS,
	F_JOBS_FAILED,
	F_EVENTS,
	F_BUSY_RETRIES,
	F_SUB_LAGS,
	F_SUB_SKIPPED,
	F_READER_LAGS,
	F_CHECKPOINTS,
	F_CKPT_FORCED,
	F_CKPT_HELD,
	F_CKPT_ERRORS,
	F_PRUNED_ROWS,
	F_WATCH_CHECKS,
	F_WATCH_RAISES,
	F_WATCH_ERRORS,
	F_QUEUED,
	F_BATCH_JOBS,
	F_COMMIT_SECONDS,
	F_WAL_BYTES,
	F_SCHEMA_VERSION,
	F_CH_PUBLISHED,
	F_CH_HEAD,
	F_CH_OLDEST,
	F_CH_SUB_LAGS,
	F_CH_SUB_SKIPPED,
	F_CONS_POSITION,
	F_CONS_LAG,
	F_CONS_ACKED,
	F_CONS_OPEN,
	F_COUNT
};

static const struct met_family met_families[F_COUNT] = {
    [F_BATCHES] = {"litebus_batches_total", MET_COUNTER,
		   "Transactions the writer began."},
    [F_COMMITS] = {"litebus_commits_total", MET_COUNTER,
		   "Transactions the writer committed."},
    [F_JOBS] = {"litebus_jobs_total", MET_COUNTER,
		"Jobs run, committed or not."},
    [F_JOBS_FAILED] = {"litebus_jobs_failed_total", MET_COUNTER,
		       "Jobs rolled back, or failed with their transaction."},
    [F_EVENTS] = {"litebus_events_total", MET_COUNTER,
		  "Events committed and published by this bus."},
    [F_BUSY_RETRIES] = {"litebus_busy_retries_total", MET_COUNTER,
			"Waits for another connection's lock."},
    [F_SUB_LAGS] = {"litebus_subscriber_lags_total", MET_COUNTER,
		    "LAGGED returned to subscribers (all channels)."},
    [F_SUB_SKIPPED] = {"litebus_subscriber_skipped_events_total", MET_COUNTER,
		       "Events subscribers lost to those laps."},
    [F_READER_LAGS] = {"litebus_reader_lags_total", MET_COUNTER,
		       "Times a reader was lapped and read from the table."},
    [F_CHECKPOINTS] = {"litebus_checkpoints_total", MET_COUNTER,
		       "Background WAL checkpoints run."},
    [F_CKPT_FORCED] = {"litebus_checkpoints_forced_total", MET_COUNTER,
		       "RESTART checkpoints that brought the WAL back under "
		       "its bound."},
    [F_CKPT_HELD] = {"litebus_checkpoints_held_total", MET_COUNTER,
		     "RESTART checkpoints that gave up: another connection's "
		     "reader held the WAL."},
    [F_CKPT_ERRORS] = {"litebus_checkpoint_errors_total", MET_COUNTER,
		       "Checkpoints that failed with an error other than "
		       "busy."},
    [F_WATCH_CHECKS] =
	{"litebus_watcher_checks_total", MET_COUNTER,
	 "Times the watcher read PRAGMA data_version to look for "
	 "commits made by other connections."},
    [F_WATCH_RAISES] =
	{"litebus_watcher_wakeups_total", MET_COUNTER,
	 "Times the watcher found rows another connection "
	 "committed on a followed channel and woke its readers."},
    [F_WATCH_ERRORS] = {"litebus_watcher_errors_total", MET_COUNTER,
			"Watcher checks that failed (retried)."},
    [F_PRUNED_ROWS] = {"litebus_pruned_rows_total", MET_COUNTER,
		       "Outbox rows deleted by retention and litebus_prune."},
    [F_QUEUED] = {"litebus_queued_jobs", MET_GAUGE,
		  "Jobs waiting for the writer now."},
    [F_BATCH_JOBS] = {"litebus_batch_jobs", MET_HISTOGRAM,
		      "Jobs per transaction the writer began."},
    [F_COMMIT_SECONDS] = {"litebus_commit_duration_seconds", MET_HISTOGRAM,
			  "Time COMMIT took, waits for other connections' "
			  "locks included."},
    [F_WAL_BYTES] = {"litebus_wal_size_bytes", MET_GAUGE,
		     "Size of the -wal file (0 in memory, or when there is "
		     "none)."},
    [F_SCHEMA_VERSION] = {"litebus_schema_version", MET_GAUGE,
			  "litebus schema version of the file."},
    [F_CH_PUBLISHED] = {"litebus_channel_published_events_total", MET_COUNTER,
			"Events this bus published on the channel."},
    [F_CH_HEAD] = {"litebus_channel_head_id", MET_GAUGE,
		   "Largest event_id committed on the channel, by any "
		   "connection (litebus_channel_head)."},
    [F_CH_OLDEST] = {"litebus_channel_oldest_id", MET_GAUGE,
		     "Oldest event_id the channel retains (0: none)."},
    [F_CH_SUB_LAGS] = {"litebus_channel_subscriber_lags_total", MET_COUNTER,
		       "LAGGED returned to the channel's subscribers."},
    [F_CH_SUB_SKIPPED] = {"litebus_channel_subscriber_skipped_events_total",
			  MET_COUNTER,
			  "Events the channel's subscribers lost to laps."},
    [F_CONS_POSITION] = {"litebus_consumer_position_id", MET_GAUGE,
			 "Last event_id the durable consumer acknowledged "
			 "durably (0: none)."},
    [F_CONS_LAG] = {"litebus_consumer_lag_ids", MET_GAUGE,
		    "Channel head minus the consumer's position, in "
		    "event_ids."},
    [F_CONS_ACKED] = {"litebus_consumer_last_ack_timestamp_seconds", MET_GAUGE,
		      "When the consumer's position last moved (its creation "
		      "before that), Unix time."},
    [F_CONS_OPEN] = {"litebus_consumer_open", MET_GAUGE,
		     "1 while a handle is open on the consumer, in any "
		     "process."},
};

static void
met_write(struct met_out *o, const struct met_snap *m)
{
	const struct met_family *F = met_families;
	const litebus_stats *st = &m->st;
	struct met_num sum;
	struct met_hist h;

	if (o->format == LITEBUS_METRICS_JSON)
		out_str(o, "{");
	o->first_key = true;
	out_scalar(o, &F[F_BATCHES], num_u(st->batches).s);
	out_scalar(o, &F[F_COMMITS], num_u(st->commits).s);
	out_scalar(o, &F[F_JOBS], num_u(st->jobs).s);
	out_scalar(o, &F[F_JOBS_FAILED], num_u(st->jobs_failed).s);
	out_scalar(o, &F[F_EVENTS], num_u(st->events).s);
	out_scalar(o, &F[F_BUSY_RETRIES], num_u(st->busy_retries).s);
	out_scalar(o, &F[F_SUB_LAGS], num_u(st->sub_lags).s);
	out_scalar(o, &F[F_SUB_SKIPPED], num_u(st->sub_skipped).s);
	out_scalar(o, &F[F_READER_LAGS], num_u(st->reader_lags).s);
	out_scalar(o, &F[F_CHECKPOINTS], num_u(st->checkpoints).s);
	out_scalar(o, &F[F_CKPT_FORCED], num_u(m->ckpt_forced).s);
	out_scalar(o, &F[F_CKPT_HELD], num_u(m->ckpt_held).s);
	out_scalar(o, &F[F_CKPT_ERRORS], num_u(m->ckpt_errors).s);
	out_scalar(o, &F[F_PRUNED_ROWS], num_u(m->pruned_rows).s);
	out_scalar(o, &F[F_WATCH_CHECKS], num_u(m->watch.checks).s);
	out_scalar(o, &F[F_WATCH_RAISES], num_u(m->watch.raises).s);
	out_scalar(o, &F[F_WATCH_ERRORS], num_u(m->watch.errors).s);
	out_scalar(o, &F[F_QUEUED], num_u(st->queued).s);

	sum = num_u(m->batch_jobs_sum);
	h = (struct met_hist){m->batch_jobs, LB_HIST_BATCH_N, met_batch_le,
			      sum.s};
	out_histogram(o, &F[F_BATCH_JOBS], &h);
	sum = num_seconds(m->commit_ns_sum);
	h = (struct met_hist){m->commit_ns, LB_HIST_COMMIT_N, met_commit_le,
			      sum.s};
	out_histogram(o, &F[F_COMMIT_SECONDS], &h);

	out_scalar(o, &F[F_WAL_BYTES], num_i(m->wal_bytes).s);
	out_scalar(o, &F[F_SCHEMA_VERSION], num_i(m->schema_version).s);

	for (int f = F_CH_PUBLISHED; f <= F_CH_SUB_SKIPPED; f++) {
		out_family(o, &F[f], true);
		for (int i = 0; i < m->nchannels; i++) {
			const struct met_chan *c = &m->ch[i];
			struct met_num v =
			    f == F_CH_PUBLISHED	 ? num_u(c->published)
			    : f == F_CH_HEAD	 ? num_i(c->head)
			    : f == F_CH_OLDEST	 ? num_i(c->oldest)
			    : f == F_CH_SUB_LAGS ? num_u(c->sub_lags)
						 : num_u(c->sub_skipped);

			out_labelled(o, &F[f], c->name, NULL, v.s);
		}
		out_family_end(o, true);
	}
	for (int f = F_CONS_POSITION; f <= F_CONS_OPEN; f++) {
		out_family(o, &F[f], true);
		for (size_t i = 0; i < m->ncons; i++) {
			const litebus_consumer_info *c = &m->cons[i];
			struct met_num v =
			    f == F_CONS_POSITION ? num_i(c->position)
			    : f == F_CONS_LAG	 ? num_i(c->lag)
			    : f == F_CONS_ACKED ? num_ms_seconds(c->acked_at_ms)
						: num_i(c->open != 0);

			out_labelled(o, &F[f], m->ch[c->channel].name, c->name,
				     v.s);
		}
		out_family_end(o, true);
	}
	if (o->format == LITEBUS_METRICS_JSON)
		out_str(o, "\n}\n");
}

/* ------------------------------------------------------------------ */
/* Public                                                               */

int
litebus_metrics_format(litebus *bus, int format, char **text, size_t *len)
{
	struct met_out o = {.format = format};
	struct met_snap *m;
	int rc;

	if (text != NULL)
		*text = NULL; /* M5 */
	if (len != NULL)
		*len = 0;
	if (bus == NULL || text == NULL)
		return lb_err_set(LITEBUS_EINVAL, MET_CALL ": NULL argument");
	if (format != LITEBUS_METRICS_JSON &&
	    format != LITEBUS_METRICS_PROMETHEUS)
		return lb_err_set(LITEBUS_EINVAL,
				  MET_CALL ": unknown format %d", format);
	if (lb_bus_forked(bus)) /* F1 */
		return lb_fork_err(MET_CALL);
	if (!lb_bus_tryref(bus, MET_CALL)) /* B1: keeps channel names */
		return LITEBUS_ECLOSED;
	m = calloc(1, sizeof *m);
	if (m == NULL) {
		lb_bus_unref(bus);
		return lb_err_set(LITEBUS_ENOMEM, MET_CALL ": out of memory");
	}
	rc = litebus_stats_get(bus, &m->st);
	if (rc == LITEBUS_OK) {
		met_read_counters(bus, m);
		rc = met_read_file(bus, m);
	}
	if (rc == LITEBUS_OK)
		rc = met_read_consumers(bus, m);
	if (rc == LITEBUS_OK) {
		met_write(&o, m);
		if (o.oom)
			rc = lb_err_set(LITEBUS_ENOMEM,
					MET_CALL ": out of memory");
	}
	free(m->cons);
	free(m);
	lb_bus_unref(bus);
	if (rc != LITEBUS_OK) {
		free(o.buf);
		return rc;
	}
	*text = o.buf;
	if (len != NULL)
		*len = o.len;
	return LITEBUS_OK;
}

void
litebus_free(void *p)
{
	free(p);
}
