/*
 * reader.c - cursor-resume readers: catch-up from the outbox, then the
 * ring.
 *
 * A reader delivers every committed row of one channel that matches its
 * filter, exactly once, in event_id order, whatever the lag.  It owns a
 * subscriber (attached before anything is read from the table) and a
 * read-only connection.  The ring tells it which ids have been committed
 * since it last looked and lets it skip rows its filter rejects without
 * touching SQLite; the rows themselves always come from the table, in
 * batches of reader_batch rows per short read transaction (a read
 * transaction left open would stop checkpoints and let the WAL grow).
 *
 * Threads: one thread at a time per reader; the writer runs concurrently.
 *
 * State: every matching row with event_id <= cursor has been returned
 * (rows that do not match count as passed); every id in (cursor, upper]
 * is known to be committed; need_sql says whether that range may hold a
 * matching row.
 *
 * Invariants
 *   D1  The subscriber attaches before `upper` is first read from the
 *       channel's published id, so every record published after that read
 *       reaches the subscriber (S1) or is counted as lost by a LAGGED, and
 *       every record published before it has id <= upper (C1).
 *   D2  A query never asks for ids above `upper`, and upper never exceeds
 *       the channel's published id, so every row read is committed: with
 *       WAL the read sees every commit that finished before it began, and
 *       an in-memory reader (read_uncommitted) cannot see a rolled-back
 *       row, whose id is above every published one (writer.c, W4).
 *   D3  On LAGGED, upper becomes the published id (loaded after the lap
 *       was detected) and need_sql is set: the lost records all have ids
 *       <= that, so the table supplies them.
 *   D4  cursor only grows, and only to an id that was returned or to the
 *       end of a range the table (or the ring, for filtered records) has
 *       proven holds nothing more to return.
 *   D5  The ring proves a range holds nothing matching only if it carried
 *       every id in it: this bus's writer hands out dense ids per channel
 *       (rolled-back ids are handed out again; pruning never moves the
 *       counter), so a record whose id is not upper + 1 sends the range
 *       to the table.  Rows another process commits to the same file
 *       reach the ring of no bus here and are found that way - once this
 *       bus next publishes on the channel.
 */
#include "bus.h"
#include "errors.h"
#include "outbox.h"
#include "subscriber.h"
#include "wait.h"

#include <stdlib.h>
#include <string.h>

#define NO_OFF SIZE_MAX

/* A buffered row; pointers are offsets into the arena until delivery (the
 * arena may move while it grows). */
struct reader_row {
	int64_t event_id, partition_key, occurred_at_ms, committed_at_ms;
	size_t subject_off, subject_len, type_off, ns_off, tag_off;
	size_t payload_off, payload_len;
};

struct litebus_reader {
	struct litebus_sub sub; /* holds the bus reference */
	sqlite3 *db;
	sqlite3_stmt *range;

	/* Filter (immutable after open). */
	bool by_partition;
	int64_t partition_key;
	char *ns, *tag;
	uint32_t ns_hash, tag_hash;

	int64_t cursor; /* D4 */
	int64_t upper;	/* D2 */
	bool need_sql;
	uint32_t batch;

	/* The last query's rows, delivered from `next`. */
	struct reader_row *rows;
	size_t count, next;
	int64_t end_cursor; /* cursor once the buffer is consumed */
	unsigned char *arena;
	size_t arena_len, arena_cap;

	litebus_reader_stats stats;
};

static bool
reader_rec_may_match(const litebus_reader *r, const struct lb_rec *rec)
{
	if (r->by_partition && rec->partition_key != r->partition_key)
		return false;
	if (r->ns != NULL && rec->ns_hash != r->ns_hash)
		return false;
	if (r->tag != NULL && rec->tag_hash != r->tag_hash)
		return false;
	return true; /* equal hashes: the query decides */
}

/* Take what the ring has (at most one ring's worth per call).  Returns
 * true if anything was taken. */
static bool
reader_drain_ring(litebus_reader *r)
{
	const uint64_t bound = r->sub.ch->ring.capacity;
	struct lb_rec rec;
	uint64_t n = 0;

	for (; n < bound; n++) {
		enum lb_poll p = lb_sub_poll(&r->sub, &rec);

		if (p == LB_POLL_EMPTY)
			break;
		if (p == LB_POLL_LAGGED) {
			/* D3 */
			int64_t pub = lb_channel_published_id(r->sub.ch);
			if (pub > r->upper)
				r->upper = pub;
			r->need_sql = true;
			r->stats.lags++;
			lb_stat_add(&r->sub.bus->stats.reader_lags, 1);
			continue;
		}
		if (rec.event_id <= r->upper)
			continue; /* already covered by (cursor, upper] */
		/* D5: this writer's ids are dense on a channel, so a gap
		 * holds rows the ring never carried (another writer's): only
		 * the table can say whether they match. */
		if (rec.event_id != r->upper + 1 ||
		    reader_rec_may_match(r, &rec))
			r->need_sql = true;
		r->upper = rec.event_id;
	}
	return n > 0;
}

static int
reader_arena_put(litebus_reader *r, const void *p, size_t len, bool nul,
		 size_t *off)
{
	size_t need = len + (nul ? 1 : 0);

	if (p == NULL) {
		*off = NO_OFF;
		return LITEBUS_OK;
	}
	if (r->arena_len + need > r->arena_cap) {
		size_t cap = r->arena_cap != 0 ? r->arena_cap : 4096;
		unsigned char *a;

		while (cap < r->arena_len + need)
			cap *= 2;
		a = realloc(r->arena, cap);
		if (a == NULL)
			return lb_err_set(LITEBUS_ENOMEM,
					  "litebus_reader_next: out of memory");
		r->arena = a;
		r->arena_cap = cap;
	}
	memcpy(r->arena + r->arena_len, p, len);
	if (nul)
		r->arena[r->arena_len + len] = '\0';
	*off = r->arena_len;
	r->arena_len += need;
	return LITEBUS_OK;
}

static int
reader_copy_row(litebus_reader *r, sqlite3_stmt *st, struct reader_row *row)
{
	int rc;

	row->event_id = sqlite3_column_int64(st, 0);
	row->partition_key = sqlite3_column_int64(st, 1);
	row->occurred_at_ms = sqlite3_column_int64(st, 7);
	row->committed_at_ms = sqlite3_column_int64(st, 8);
	/* Per SQLite's rules, fetch the pointer first, then the length. */
	{
		const void *p = sqlite3_column_blob(st, 2);
		row->subject_len = (size_t)sqlite3_column_bytes(st, 2);
		if (p == NULL)
			row->subject_len = 0;
		rc = reader_arena_put(r, p, row->subject_len, false,
				      &row->subject_off);
	}
	if (rc == LITEBUS_OK) {
		const unsigned char *t = sqlite3_column_text(st, 3);
		rc = reader_arena_put(r, t != NULL ? t : (const unsigned char *)"",
				      (size_t)sqlite3_column_bytes(st, 3), true,
				      &row->type_off);
	}
	if (rc == LITEBUS_OK) {
		const unsigned char *t = sqlite3_column_text(st, 4);
		rc = reader_arena_put(r, t, (size_t)sqlite3_column_bytes(st, 4),
				      true, &row->ns_off);
	}
	if (rc == LITEBUS_OK) {
		const unsigned char *t = sqlite3_column_text(st, 5);
		rc = reader_arena_put(r, t, (size_t)sqlite3_column_bytes(st, 5),
				      true, &row->tag_off);
	}
	if (rc == LITEBUS_OK) {
		const void *p = sqlite3_column_blob(st, 6);
		row->payload_len = (size_t)sqlite3_column_bytes(st, 6);
		if (p == NULL)
			row->payload_len = 0;
		rc = reader_arena_put(r, p, row->payload_len, false,
				      &row->payload_off);
	}
	return rc;
}

/* One catch-up query over (cursor, upper].  On error the buffer is empty
 * and cursor/upper/need_sql are unchanged, so the call can be retried. */
static int
reader_query(litebus_reader *r)
{
	sqlite3_stmt *st = r->range;
	size_t n = 0;
	int rc;

	r->count = r->next = 0;
	r->arena_len = 0;
	sqlite3_bind_int64(st, 1, r->cursor);
	sqlite3_bind_int64(st, 2, r->upper);
	sqlite3_bind_int64(st, 3, r->batch);
	if (r->by_partition)
		sqlite3_bind_int64(st, 4, r->partition_key);
	if (r->ns != NULL)
		sqlite3_bind_text(st, 5, r->ns, -1, SQLITE_STATIC);
	if (r->tag != NULL)
		sqlite3_bind_text(st, 6, r->tag, -1, SQLITE_STATIC);
	r->stats.queries++;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int crc = reader_copy_row(r, st, &r->rows[n]);
		if (crc != LITEBUS_OK) {
			sqlite3_reset(st);
			r->arena_len = 0;
			return crc;
		}
		n++;
	}
	/* Reset ends the read transaction at once. */
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		r->arena_len = 0;
		return lb_err_sqlite(r->db, rc, "litebus_reader_next: reading "
						"the outbox");
	}
	r->count = n;
	if (n < r->batch) {
		r->end_cursor = r->upper; /* the range is exhausted */
		r->need_sql = false;
	} else {
		r->end_cursor = r->rows[n - 1].event_id;
	}
	if (n == 0)
		r->cursor = r->end_cursor;
	return LITEBUS_OK;
}

static void
reader_deliver(litebus_reader *r, litebus_row *out)
{
	const struct reader_row *row = &r->rows[r->next++];
	const unsigned char *a = r->arena;

	out->event_id = row->event_id;
	out->partition_key = row->partition_key;
	out->subject = row->subject_off == NO_OFF ? NULL : a + row->subject_off;
	out->subject_len = row->subject_len;
	out->event_type = (const char *)a + row->type_off;
	out->ns = row->ns_off == NO_OFF ? NULL : (const char *)a + row->ns_off;
	out->instance_tag =
	    row->tag_off == NO_OFF ? NULL : (const char *)a + row->tag_off;
	out->payload = row->payload_off == NO_OFF ? NULL : a + row->payload_off;
	out->payload_len = row->payload_len;
	out->occurred_at_ms = row->occurred_at_ms;
	out->committed_at_ms = row->committed_at_ms;
	/* D4 */
	r->cursor = r->next == r->count ? r->end_cursor : row->event_id;
	r->stats.delivered++;
}

static int reader_open(litebus *bus, int channel, int64_t after_event_id,
		       const litebus_filter *f, litebus_reader **out);

int
litebus_reader_open(litebus *bus, int channel, int64_t after_event_id,
		    const litebus_filter *f, litebus_reader **out)
{
	int rc;

	if (out != NULL)
		*out = NULL;
	if (bus == NULL || out == NULL || after_event_id < LITEBUS_FROM_NOW)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_reader_open: %s",
				  after_event_id < LITEBUS_FROM_NOW
				      ? "after_event_id must be >= -1"
				      : "NULL argument");
	if (lb_bus_forked(bus)) /* F1, in bus.c */
		return lb_bus_err_forked("litebus_reader_open");
	if (!lb_bus_tryref(bus, "litebus_reader_open")) /* B1: keeps the bus */
		return LITEBUS_ECLOSED;
	rc = reader_open(bus, channel, after_event_id, f, out);
	lb_bus_unref(bus);
	return rc;
}

static int
reader_open(litebus *bus, int channel, int64_t after_event_id,
	    const litebus_filter *f, litebus_reader **out)
{
	struct lb_channel *ch;
	litebus_reader *r;
	int rc;

	ch = lb_bus_channel(bus, channel);
	if (ch == NULL)
		return lb_err_set(LITEBUS_ENOCHANNEL,
				  "litebus_reader_open: no channel %d",
				  channel);
	if (lb_channel_is_closed(ch))
		return lb_err_set(LITEBUS_ECLOSED,
				  "litebus_reader_open: the bus is closed");
	r = calloc(1, sizeof *r);
	if (r == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_reader_open: out of memory");
	r->batch = bus->opts.reader_batch;
	r->rows = malloc(r->batch * sizeof *r->rows);
	if (f != NULL) {
		r->by_partition = f->any_partition == 0;
		r->partition_key = f->partition_key;
		if (f->ns != NULL)
			r->ns = strdup(f->ns);
		if (f->instance_tag != NULL)
			r->tag = strdup(f->instance_tag);
		r->ns_hash = lb_ring_hash(f->ns);
		r->tag_hash = lb_ring_hash(f->instance_tag);
	}
	if (r->rows == NULL || (f != NULL && f->ns != NULL && r->ns == NULL) ||
	    (f != NULL && f->instance_tag != NULL && r->tag == NULL)) {
		free(r->rows);
		free(r->ns);
		free(r->tag);
		free(r);
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_reader_open: out of memory");
	}
	/* D1: attach first, then learn what was committed before. */
	lb_sub_init(&r->sub, bus, ch);
	r->upper = lb_channel_published_id(ch);
	if (after_event_id == LITEBUS_FROM_NOW)
		r->cursor = r->upper;
	else
		r->cursor = after_event_id;
	if (r->cursor > r->upper)
		r->upper = r->cursor;
	r->need_sql = r->upper > r->cursor;

	rc = lb_outbox_open_reader(&bus->dbn, &r->db);
	if (rc == LITEBUS_OK)
		rc = lb_outbox_prepare_range(r->db, ch->name, r->by_partition,
					     r->ns != NULL, r->tag != NULL,
					     &r->range);
	if (rc != LITEBUS_OK) {
		litebus_reader_close(r);
		return rc;
	}
	*out = r;
	return LITEBUS_OK;
}

int
litebus_reader_next(litebus_reader *r, litebus_row *row, int timeout_ms)
{
	uint64_t deadline = 0;
	int rc;

	if (r == NULL || row == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_reader_next: NULL argument");
	if (lb_bus_forked(r->sub.bus)) /* F1, in bus.c */
		return lb_bus_err_forked("litebus_reader_next");
	for (;;) {
		bool closed, progress;

		if (r->next < r->count) {
			reader_deliver(r, row);
			return LITEBUS_OK;
		}
		/* Seen before the ring is drained: if closed, the drain
		 * below sees everything ever published (C2). */
		closed = lb_channel_is_closed(r->sub.ch);
		progress = reader_drain_ring(r);
		if (r->upper > r->cursor) {
			if (r->need_sql) {
				rc = reader_query(r);
				if (rc != LITEBUS_OK)
					return rc;
			} else {
				r->cursor = r->upper; /* all filtered out */
			}
			continue;
		}
		if (progress)
			continue;
		if (closed)
			return LITEBUS_CLOSED;
		if (timeout_ms == 0) {
			lb_sub_idle(&r->sub);
			return LITEBUS_TIMEOUT;
		}
		if (deadline == 0)
			deadline = lb_deadline_ns(timeout_ms);
		else if (lb_mono_ns() >= deadline) {
			lb_sub_idle(&r->sub);
			return LITEBUS_TIMEOUT;
		}
		lb_sub_wait(&r->sub, deadline);
	}
}

int64_t
litebus_reader_cursor(const litebus_reader *r)
{
	return r != NULL ? r->cursor : -1;
}

int
litebus_reader_fd(litebus_reader *r)
{
	if (r == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_reader_fd: NULL reader");
	if (lb_bus_forked(r->sub.bus)) /* F1, in bus.c */
		return lb_bus_err_forked("litebus_reader_fd");
	return lb_sub_fd(&r->sub);
}

int
litebus_reader_stats_get(const litebus_reader *r, litebus_reader_stats *st)
{
	if (r == NULL || st == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_reader_stats_get: NULL argument");
	*st = r->stats;
	return LITEBUS_OK;
}

void
litebus_reader_close(litebus_reader *r)
{
	if (r == NULL)
		return;
	if (lb_bus_forked(r->sub.bus)) /* F1: the parent's copy; free nothing */
		return;
	sqlite3_finalize(r->range);
	sqlite3_close_v2(r->db);
	lb_sub_fini(&r->sub);
	free(r->rows);
	free(r->arena);
	free(r->ns);
	free(r->tag);
	free(r);
}
