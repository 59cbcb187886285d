/* SPDX-License-Identifier: MIT */
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
 * (rows that do not match count as passed), or reported lost with
 * LITEBUS_EXPIRED (D7); every id in (cursor, upper] is known to be
 * committed; need_sql says whether that range may hold a matching row;
 * while it does, the ring carried every id in (cursor, sql_from) and
 * none of them can match.
 *
 * Invariants
 *   D1  The subscriber attaches (S1) before anything else is read: the
 *       channel's published id, its committed id (C5) and the table's
 *       head (largest event_id or deletion high-water mark) through the
 *       reader's own connection.  Every record published after the
 *       attach reaches the subscriber or is counted in a LAGGED; every
 *       record published before it has an id <= the published id read
 *       afterwards (C1).  upper starts at the largest of the three, so
 *       it covers everything committed, by this process or any other,
 *       before the table was read; FROM_NOW puts the cursor there.  upper
 *       may therefore exceed the published id: ring records with ids <=
 *       upper are already covered and are skipped.
 *   D2  Every row a query returns is committed: a reader's connection
 *       sees committed transactions only (a WAL snapshot for files; for
 *       in-memory databases, a rollback-journal file's locks: memvfs.c,
 *       M3).  A query never asks for ids
 *       above upper, and every id <= upper was committed before upper
 *       was raised to it (D1, D3, D5; by C5, R1 or the table itself), so
 *       the query's snapshot, which begins later, holds every row <=
 *       upper there will ever be: a short page proves (cursor, upper]
 *       exhausted.
 *   D3  On LAGGED, upper becomes at least the published id (loaded after
 *       the lap was detected) and need_sql is set: the lost records all
 *       have ids <= that, so the table supplies them.
 *   D4  cursor only grows, and only to an id that was returned or to the
 *       end of a range the table (or the ring, for filtered records) has
 *       proven holds nothing more to return.
 *   D5  The ring proves a range holds nothing matching only if it carried
 *       every id in it.  Ids on the ring may have gaps: ids a job handed
 *       out and then rolled back to its own savepoint, rows deleted
 *       before COMMIT, rows another process committed to the same file
 *       (which reach the ring of no bus here).  So a record whose id is
 *       not upper + 1 sends the whole range to the table; for the rows of
 *       another process, that happens once this bus next publishes on the
 *       channel.
 *   D6  Another connection's lock (SQLITE_BUSY, or SQLITE_LOCKED) never
 *       fails a call at once: the statement is retried from the start,
 *       with backoff, for max(busy_timeout_ms, timeout_ms) after the
 *       first refusal (forever with timeout -1), and only then is EBUSY
 *       returned, with cursor, upper and need_sql unchanged.  On the
 *       writer thread nothing is waited for: the lock may be the
 *       writer's own (an in-memory bus's job whose transaction outgrew
 *       the page cache holds the exclusive lock until it ends).
 *   D7  Rows are pruned only as a prefix of the channel, and pruning
 *       raises litebus_pruned.pruned_through (P) to its bound in the
 *       same transaction (retention.c, P1).  When a query's page leaves
 *       ids [lo, hi] unaccounted for - lo = max(sql_from, cursor + 1), hi
 *       = its first row - 1, or upper for an empty page - the reader
 *       reads P (a separate short read, only then: a reader whose pages
 *       start where they should pays nothing) and, if P >= lo, returns
 *       LITEBUS_EXPIRED once with the range [cursor + 1, end], end =
 *       min(P, hi), moves cursor to end and keeps the page for the next
 *       call.  Why that is exact: let S1 be the query's snapshot and S2
 *       the later one that read P.  An id in [lo, end] that was
 *       committed and matches would have been in S1's page (D2: every
 *       row <= upper there will ever be was committed before S1), so it
 *       had been deleted before S1; ids <= end <= P are gone for good
 *       in S2 and no row <= P can appear later (ids are never reused),
 *       so moving cursor to end keeps D4.  An id in (end, hi] absent
 *       from S1 was not pruned before S1: that prune's bound would be
 *       <= P(S1) <= P(S2), and end would cover it.  So no row the reader
 *       could still have read is in the range, and every row it lost is;
 *       ids in [cursor + 1, lo) are ones the ring carried and the filter
 *       rejects (nothing lost), and ids never committed are included,
 *       since the table no longer tells them apart.  Rows of a page are
 *       all above P(S1) (a prefix is gone), so only the gap below the
 *       first row can hold pruned ids.  A job's own DELETE raises no P:
 *       its gaps are never reported.
 *   D8  Rows another connection committed never reach this bus's ring.
 *       The bus's watcher (watcher.c) raises the channel's file_head to
 *       the table's head when it finds such rows (C6, in channel.c); every
 *       id up to file_head was committed before it was raised.  Each call
 *       takes file_head after draining the ring: above upper, it extends
 *       (cursor, upper] with need_sql set, as a LAGGED does (D3), so D2
 *       still holds and the table supplies the rows; ring records at or
 *       below the new upper are skipped as covered (D1).  upper then
 *       becomes the subscriber's seen_file, so a wait ends, and the fd
 *       turns readable, only once the watcher raises file_head above
 *       what the reader covers.  The reader counts as one of the
 *       channel's followers from open to close, which is what makes the
 *       watcher look at the channel at all.
 *   D9  Live rows from memory.  A ring record at position p whose id is
 *       upper + 1, taken while need_sql is false, is decided from the
 *       channel's row cache if slot p still holds its row (rowcache.c,
 *       RC1: the row as the table held it at the COMMIT that published
 *       p): buffered if the row matches the filter - the comparison the
 *       query makes: partition_key equal, namespace and instance_tag
 *       equal byte for byte and not NULL - and passed otherwise; upper
 *       becomes its id.  So while need_sql stays false the buffer holds
 *       exactly the matching committed rows of (cursor, upper], in id
 *       order, and end_cursor = upper (D4).  A miss, a gap (D5), a lap
 *       (D3) or file_head (D8) sets need_sql: the buffer ends at
 *       sql_from - 1, where the table takes over once the buffer is
 *       consumed (D2, D7 unchanged: their ranges start at or above
 *       sql_from).  Later records extend upper as before, up to the
 *       first contiguous one whose row memory holds: the drain puts that
 *       record back on its cursor (sub.pos--; re-reading a position is
 *       safe: a lap is detected as for any read, S3) and stops, and the
 *       next call queries (cursor, upper] before it drains again, so a
 *       large row costs one query for itself, not for the rows after it.
 *       The one difference from the table: a row deleted after its
 *       COMMIT may still be delivered from memory (it was committed;
 *       nothing is lost, so D7 reports nothing for it).  The ring is
 *       drained only into an empty buffer and stops when the buffer is
 *       full, leaving the rest on the ring.  need_sql over an empty
 *       range (upper <= cursor) is cleared before a drain: it holds
 *       nothing.
 */
#include "bus.h"
#include "errors.h"
#include "outbox.h"
#include "rowcache.h"
#include "subscriber.h"
#include "wait.h"
#include "writer.h"

#include <stdlib.h>
#include <string.h>

#define NO_OFF SIZE_MAX

/* Backoff while another connection holds a lock (D6): short first, since
 * a COMMIT holds the exclusive lock only briefly. */
#define READER_BACKOFF_MIN_NS 20000u   /* 20 us */
#define READER_BACKOFF_MAX_NS 2000000u /* 2 ms */

/* A buffered row; pointers are offsets into the arena until delivery (the
 * arena may move while it grows). */
struct reader_row {
	int64_t event_id, partition_key, occurred_at_ms, committed_at_ms;
	size_t subject_off, subject_len, type_off, ns_off, tag_off;
	size_t payload_off, payload_len;
	bool from_memory; /* D9 */
};

struct litebus_reader {
	struct litebus_sub sub; /* holds the bus reference */
	sqlite3 *db;
	sqlite3_stmt *range;

	/* Filter (immutable after open). */
	bool by_partition;
	int64_t partition_key;
	char *ns, *tag;
	size_t ns_len, tag_len;
	uint32_t ns_hash, tag_hash;

	/* The channel's row cache (D9), or NULL: every row from the table. */
	const struct lb_rowcache *rowcache;

	int64_t cursor; /* D4 */
	int64_t upper;	/* D2 */
	bool need_sql;
	int64_t sql_from; /* D7: meaningful while need_sql */
	uint32_t batch;

	/* The last query's rows, delivered from `next`. */
	struct reader_row *rows;
	size_t count, next;
	int64_t end_cursor; /* cursor once the buffer is consumed */
	unsigned char *arena;
	size_t arena_len, arena_cap;

	/* D7: an EXPIRED to return before the page, and the latest range. */
	bool expired_pending;
	int64_t expired_first, expired_last;

	litebus_reader_stats stats;
};

/* ------------------------------------------------------------------ */
/* Waiting out other connections' locks (D6)                           */

struct reader_busy {
	uint64_t wait_ns;     /* UINT64_MAX: forever */
	uint64_t deadline_ns; /* 0 until the first refusal */
	uint64_t sleep_ns;
	bool on_writer;
};

static void
reader_busy_init(struct reader_busy *b, const litebus_reader *r, int timeout_ms)
{
	uint64_t busy_ms = r->sub.bus->opts.busy_timeout_ms;

	if (timeout_ms < 0)
		b->wait_ns = UINT64_MAX;
	else
		b->wait_ns =
		    ((uint64_t)timeout_ms > busy_ms ? (uint64_t)timeout_ms
						    : busy_ms) *
		    1000000u;
	b->deadline_ns = 0;
	b->sleep_ns = READER_BACKOFF_MIN_NS;
	b->on_writer = lb_writer_is_current(r->sub.bus);
}

/* A call refused with `status` (its error text set): sleep and return
 * true to try again, or false to give up with that status. */
static bool
reader_busy_retry(struct reader_busy *b, int status)
{
	uint64_t now, left;

	if (status != LITEBUS_EBUSY || b->on_writer)
		return false;
	now = lb_mono_ns();
	if (b->deadline_ns == 0)
		b->deadline_ns =
		    b->wait_ns == UINT64_MAX ? UINT64_MAX : now + b->wait_ns;
	if (now >= b->deadline_ns)
		return false;
	left = b->deadline_ns - now;
	lb_sleep_ns(b->sleep_ns < left ? b->sleep_ns : left);
	if (b->sleep_ns < READER_BACKOFF_MAX_NS)
		b->sleep_ns *= 2;
	return true;
}

/* ------------------------------------------------------------------ */
/* The ring                                                            */

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

/* The id after `id`: the cursor may stand at INT64_MAX (the last id). */
static int64_t
reader_after(int64_t id)
{
	return id < INT64_MAX ? id + 1 : INT64_MAX;
}

/* Ids above upper may hold a matching row: the table must be asked.
 * Until now (cursor, upper] held none (D7's sql_from). */
static void
reader_need_sql(litebus_reader *r)
{
	if (!r->need_sql)
		r->sql_from = reader_after(r->upper);
	r->need_sql = true;
}

/* Room for `len` more bytes in the arena (the buffer's offsets stay
 * valid: the arena may move). */
static int
reader_arena_room(litebus_reader *r, size_t len)
{
	size_t cap;
	unsigned char *a;

	if (r->arena_cap - r->arena_len >= len)
		return LITEBUS_OK;
	cap = r->arena_cap != 0 ? r->arena_cap : 4096;
	while (cap - r->arena_len < len)
		cap *= 2;
	a = realloc(r->arena, cap);
	if (a == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_reader_next: out of memory");
	r->arena = a;
	r->arena_cap = cap;
	return LITEBUS_OK;
}

/* The filter as the range query applies it (D9): partition_key = ?,
 * namespace = ?, instance_tag = ? (binary comparison; NULL never
 * matches). */
static bool
reader_row_matches(const litebus_reader *r, const struct lb_outbox_row *o)
{
	if (r->by_partition && o->partition_key != r->partition_key)
		return false;
	if (r->ns != NULL && (o->ns == NULL || o->ns_len != r->ns_len ||
			      memcmp(o->ns, r->ns, r->ns_len) != 0))
		return false;
	if (r->tag != NULL && (o->tag == NULL || o->tag_len != r->tag_len ||
			       memcmp(o->tag, r->tag, r->tag_len) != 0))
		return false;
	return true;
}

static size_t
reader_off(const litebus_reader *r, const void *p)
{
	return p == NULL ? NO_OFF
			 : (size_t)((const unsigned char *)p - r->arena);
}

/* D9: decide the record at ring position pos from the row cache.  Returns
 * 1 if its row was buffered, 0 if it does not match, -1 on a miss (the
 * table must be asked). */
static int
reader_from_memory(litebus_reader *r, uint64_t pos, const struct lb_rec *rec)
{
	size_t room = (size_t)r->rowcache->img_words * sizeof(uint64_t);
	struct lb_outbox_row o;
	struct reader_row *row;
	size_t off;

	/* Images are copied as whole words: keep them word-aligned. */
	r->arena_len = (r->arena_len + 7) & ~(size_t)7;
	if (reader_arena_room(r, room) != LITEBUS_OK)
		return -1; /* the table path reports the shortage, if any */
	off = r->arena_len;
	if (!lb_rowcache_get(r->rowcache, pos, rec->event_id, r->arena + off,
			     &o))
		return -1;
	if (!reader_row_matches(r, &o))
		return 0;
	row = &r->rows[r->count++];
	row->event_id = o.event_id;
	row->partition_key = o.partition_key;
	row->occurred_at_ms = o.occurred_at_ms;
	row->committed_at_ms = o.committed_at_ms;
	row->subject_off = reader_off(r, o.subject);
	row->subject_len = o.subject_len;
	row->type_off = reader_off(r, o.event_type);
	row->ns_off = reader_off(r, o.ns);
	row->tag_off = reader_off(r, o.tag);
	row->payload_off = reader_off(r, o.payload);
	row->payload_len = o.payload_len;
	row->from_memory = true;
	r->arena_len =
	    off + lb_rowcache_image_words(r->rowcache, &o) * sizeof(uint64_t);
	return 1;
}

/* Take what the ring has (at most one ring's worth per call, and no more
 * than fills the buffer: D9) into the empty buffer.  Returns true if
 * anything was taken. */
static bool
reader_drain_ring(litebus_reader *r)
{
	const uint64_t bound = r->sub.ch->ring.capacity;
	struct lb_rec rec;
	uint64_t n = 0;

	r->count = r->next = 0;
	r->arena_len = 0;
	if (r->upper <= r->cursor)
		r->need_sql = false; /* an empty range holds nothing */
	for (; n < bound && r->count < r->batch; n++) {
		enum lb_poll p = lb_sub_poll(&r->sub, &rec);

		if (p == LB_POLL_EMPTY)
			break;
		if (p == LB_POLL_LAGGED) {
			/* D3 */
			int64_t pub = lb_channel_published_id(r->sub.ch);

			reader_need_sql(r);
			if (pub > r->upper)
				r->upper = pub;
			r->stats.lags++;
			lb_stat_add(&r->sub.bus->stats.reader_lags, 1);
			continue;
		}
		if (rec.event_id <= r->upper)
			continue; /* already covered by (cursor, upper] (D1) */
		if (rec.event_id == r->upper + 1 &&
		    !reader_rec_may_match(r, &rec)) {
			r->upper = rec.event_id; /* the hints rule it out */
			continue;
		}
		if (rec.event_id == r->upper + 1 && r->rowcache != NULL) {
			if (!r->need_sql) {
				/* D9 */
				if (reader_from_memory(r, r->sub.pos - 1,
						       &rec) >= 0) {
					r->upper = rec.event_id;
					continue;
				}
			} else if (lb_rowcache_has(r->rowcache,
						   r->sub.pos - 1)) {
				/* D9: end the table's range before a row
				 * memory holds; the record is read again
				 * (from memory) once the table has supplied
				 * the range. */
				r->sub.pos--;
				break;
			}
		}
		/* D5: a gap holds ids the ring never carried; only the table
		 * can say whether rows with them exist and match.  D9: so
		 * does a row memory does not hold. */
		reader_need_sql(r);
		r->upper = rec.event_id;
	}
	return n > 0;
}

/* D8: what the watcher found committed by other connections.  Returns
 * true if it extended (cursor, upper]. */
static bool
reader_take_file_head(litebus_reader *r)
{
	int64_t fh = lb_channel_file_head(r->sub.ch);
	bool extended = fh > r->upper;

	if (extended) {
		reader_need_sql(r);
		r->upper = fh;
	}
	/* Everything up to upper is covered already: a raise to an id at
	 * or below it (the watcher saw this bus's own rows before the
	 * writer stored committed_id, X3) must not end a wait or make the
	 * fd readable with nothing new to read. */
	r->sub.seen_file = r->upper;
	return extended;
}

/* ------------------------------------------------------------------ */
/* The table                                                           */

static int
reader_arena_put(litebus_reader *r, const void *p, size_t len, bool nul,
		 size_t *off)
{
	size_t need = len + (nul ? 1 : 0);
	int rc;

	if (p == NULL) {
		*off = NO_OFF;
		return LITEBUS_OK;
	}
	rc = reader_arena_room(r, need);
	if (rc != LITEBUS_OK)
		return rc;
	memcpy(r->arena + r->arena_len, p, len);
	if (nul)
		r->arena[r->arena_len + len] = '\0';
	*off = r->arena_len;
	r->arena_len += need;
	return LITEBUS_OK;
}

/* Copy the current row of the range query into the buffer. */
static int
reader_copy_row(litebus_reader *r, sqlite3_stmt *st, struct reader_row *row)
{
	struct lb_outbox_row o;
	int rc;

	rc = lb_outbox_range_row(r->db, st, &o);
	if (rc != LITEBUS_OK)
		return rc;
	row->event_id = o.event_id;
	row->partition_key = o.partition_key;
	row->occurred_at_ms = o.occurred_at_ms;
	row->committed_at_ms = o.committed_at_ms;
	row->subject_len = o.subject_len;
	row->payload_len = o.payload_len;
	row->from_memory = false;
	rc = reader_arena_put(r, o.subject, o.subject_len, false,
			      &row->subject_off);
	if (rc == LITEBUS_OK)
		rc = reader_arena_put(r, o.event_type, o.event_type_len, true,
				      &row->type_off);
	if (rc == LITEBUS_OK)
		rc = reader_arena_put(r, o.ns, o.ns_len, true, &row->ns_off);
	if (rc == LITEBUS_OK)
		rc = reader_arena_put(r, o.tag, o.tag_len, true, &row->tag_off);
	if (rc == LITEBUS_OK)
		rc = reader_arena_put(r, o.payload, o.payload_len, false,
				      &row->payload_off);
	return rc;
}

/* The query for (cursor, upper] with the reader's filter. */
static struct lb_range
reader_range(const litebus_reader *r)
{
	return (struct lb_range){
	    .after = r->cursor,
	    .upto = r->upper,
	    .limit = r->batch,
	    .by_partition = r->by_partition,
	    .partition_key = r->partition_key,
	    .ns = r->ns, /* live as long as the reader (SQLITE_STATIC) */
	    .tag = r->tag,
	};
}

/* One attempt at a page of (cursor, upper].  Returns OK with *count rows
 * buffered, or a status (EBUSY for another connection's lock) with the
 * statement reset and nothing kept. */
static int
reader_query_once(litebus_reader *r, size_t *count)
{
	sqlite3_stmt *st = r->range;
	struct lb_range range;
	size_t n = 0;
	int rc, status;

	r->arena_len = 0;
	*count = 0;
	range = reader_range(r);
	status = lb_outbox_bind_range(r->db, st, &range);
	if (status != LITEBUS_OK)
		return status;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		status = reader_copy_row(r, st, &r->rows[n]);
		if (status != LITEBUS_OK)
			break;
		n++;
	}
	if (status == LITEBUS_OK && rc != SQLITE_DONE)
		status = lb_err_sqlite(r->db, rc,
				       "litebus_reader_next: reading the "
				       "outbox");
	/* Ends the read transaction at once.  Its result repeats the step's
	 * error, already taken above. */
	(void)sqlite3_reset(st);
	if (status != LITEBUS_OK) {
		r->arena_len = 0;
		return status;
	}
	*count = n;
	return LITEBUS_OK;
}

/* D7: a page of n rows left ids unaccounted for below its first row (or
 * in all of (cursor, upper]): were they pruned?  Reads pruned_through,
 * waiting out locks (D6).  *expired_end is where the lost range ends, or
 * 0 if nothing was lost. */
static int
reader_check_pruned(litebus_reader *r, size_t n, int timeout_ms,
		    int64_t *expired_end)
{
	int64_t lo = r->sql_from > reader_after(r->cursor)
			 ? r->sql_from
			 : reader_after(r->cursor);
	int64_t hi = n > 0 ? r->rows[0].event_id - 1 : r->upper;
	struct reader_busy busy;
	int64_t through;
	int rc;

	*expired_end = 0;
	if (hi < lo)
		return LITEBUS_OK; /* the page starts where it should */
	reader_busy_init(&busy, r, timeout_ms);
	do
		rc = lb_outbox_read_pruned(r->db, r->sub.ch->name, &through);
	while (rc != LITEBUS_OK && reader_busy_retry(&busy, rc));
	if (rc != LITEBUS_OK || through < lo)
		return rc;
	*expired_end = through < hi ? through : hi;
	return LITEBUS_OK;
}

/* One catch-up query over (cursor, upper], waiting out other connections'
 * locks (D6), and D7's check.  On error the buffer is empty and
 * cursor/upper/need_sql are unchanged, so the call can be retried. */
static int
reader_query(litebus_reader *r, int timeout_ms)
{
	struct reader_busy busy;
	int64_t expired_end;
	size_t n;
	int rc;

	r->count = r->next = 0;
	r->stats.queries++; /* retries after a lock included */
	reader_busy_init(&busy, r, timeout_ms);
	do
		rc = reader_query_once(r, &n);
	while (rc != LITEBUS_OK && reader_busy_retry(&busy, rc));
	if (rc == LITEBUS_OK)
		rc = reader_check_pruned(r, n, timeout_ms, &expired_end);
	if (rc != LITEBUS_OK) {
		r->arena_len = 0;
		return rc;
	}
	if (expired_end != 0) {
		/* D7.  With an empty page the rest of (cursor, upper] is
		 * proven empty too (need_sql becomes false below): the next
		 * call moves cursor on to upper. */
		r->expired_first = r->cursor + 1;
		r->expired_last = expired_end;
		r->expired_pending = true;
		r->cursor = expired_end;
	}
	r->count = n;
	if (n < r->batch) {
		r->end_cursor = r->upper; /* the range is exhausted (D2) */
		r->need_sql = false;
	} else {
		r->end_cursor = r->rows[n - 1].event_id;
	}
	if (n == 0 && !r->expired_pending)
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
	if (row->from_memory)
		r->stats.memory_rows++;
}

/* ------------------------------------------------------------------ */
/* Public                                                              */

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
		return lb_err_set(LITEBUS_EINVAL, "litebus_reader_open: %s",
				  after_event_id < LITEBUS_FROM_NOW
				      ? "after_event_id must be >= -1"
				      : "NULL argument");
	if (lb_bus_forked(bus)) /* F1, in bus.c */
		return lb_fork_err("litebus_reader_open");
	if (!lb_bus_tryref(bus, "litebus_reader_open")) /* B1: keeps the bus */
		return LITEBUS_ECLOSED;
	rc = reader_open(bus, channel, after_event_id, f, out);
	lb_bus_unref(bus);
	return rc;
}

/* Open the connection and the range statement, and read the table's head
 * (D1), waiting out other connections' locks as a call with timeout 0
 * would (D6). */
static int
reader_open_table(litebus_reader *r, int64_t *table_head)
{
	struct lb_channel *ch = r->sub.ch;
	struct reader_busy busy;
	struct lb_range range;
	int rc;

	/* B5: the path must still name the bus's file, or the connection
	 * below would read another database. */
	rc = lb_bus_check_file(r->sub.bus, "litebus_reader_open");
	if (rc == LITEBUS_OK)
		rc = lb_outbox_open_reader(&r->sub.bus->dbn, &r->db);
	if (rc != LITEBUS_OK)
		return rc;
	/* Preparing reads the schema, which may be locked too. */
	reader_busy_init(&busy, r, 0);
	range = reader_range(r);
	do
		rc =
		    lb_outbox_prepare_range(r->db, ch->name, &range, &r->range);
	while (rc != LITEBUS_OK && reader_busy_retry(&busy, rc));
	if (rc != LITEBUS_OK)
		return rc;
	reader_busy_init(&busy, r, 0);
	do
		rc = lb_outbox_read_head(r->db, ch->name, table_head);
	while (rc != LITEBUS_OK && reader_busy_retry(&busy, rc));
	return rc;
}

static int
reader_open(litebus *bus, int channel, int64_t after_event_id,
	    const litebus_filter *f, litebus_reader **out)
{
	struct lb_channel *ch;
	litebus_reader *r;
	int64_t now, table_head = 0, id;
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
		if (f->ns != NULL) {
			r->ns = strdup(f->ns);
			r->ns_len = strlen(f->ns);
		}
		if (f->instance_tag != NULL) {
			r->tag = strdup(f->instance_tag);
			r->tag_len = strlen(f->instance_tag);
		}
		r->ns_hash = lb_rec_hash(f->ns);
		r->tag_hash = lb_rec_hash(f->instance_tag);
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
	/* D1: attach first, then learn what was committed before; D8: a
	 * follower from here on, so the watcher reports later commits made
	 * elsewhere. */
	lb_sub_init(&r->sub, bus, ch);
	r->sub.seen_file = lb_channel_file_head(ch);
	/* D9: a read-only bus publishes nothing, so it keeps no rows. */
	if (bus->opts.reader_inline_bytes > 0 && !bus->opts.read_only)
		r->rowcache =
		    lb_channel_enable_rows(ch, bus->opts.reader_inline_bytes);
	lb_bus_follow(bus, ch);
	now = lb_channel_published_id(ch);
	id = lb_channel_committed_id(ch);
	if (id > now)
		now = id;
	rc = reader_open_table(r, &table_head);
	if (rc != LITEBUS_OK) {
		litebus_reader_close(r);
		return rc;
	}
	if (table_head > now)
		now = table_head;
	r->cursor = after_event_id == LITEBUS_FROM_NOW ? now : after_event_id;
	r->upper = r->cursor > now ? r->cursor : now;
	r->need_sql = r->upper > r->cursor;
	r->sql_from = reader_after(r->cursor); /* nothing known yet (D7) */
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
		return lb_fork_err("litebus_reader_next");
	rc = lb_sub_check_timeout(&r->sub, timeout_ms, "litebus_reader_next");
	if (rc != LITEBUS_OK)
		return rc;
	for (;;) {
		bool closed, progress;

		if (r->expired_pending) { /* D7: once, before the page */
			r->expired_pending = false;
			return LITEBUS_EXPIRED;
		}
		if (r->next < r->count) {
			reader_deliver(r, row);
			return LITEBUS_OK;
		}
		if (r->need_sql && r->upper > r->cursor) {
			/* The table's range first: a miss ended the drain
			 * before rows memory holds (D9). */
			rc = reader_query(r, timeout_ms);
			if (rc != LITEBUS_OK)
				return rc;
			continue;
		}
		/* Seen before the ring is drained: if closed, the drain
		 * below sees everything ever published (C2). */
		closed = lb_channel_is_closed(r->sub.ch);
		progress = reader_drain_ring(r);
		if (reader_take_file_head(r)) /* D8 */
			progress = true;
		if (r->count > 0) {
			/* D9: rows from memory first; the table, if asked,
			 * starts after them. */
			r->end_cursor =
			    r->need_sql ? r->sql_from - 1 : r->upper;
			continue;
		}
		if (r->upper > r->cursor) {
			if (!r->need_sql)
				r->cursor = r->upper; /* all filtered out */
			continue;		      /* else the query above */
		}
		if (progress)
			continue;
		rc = lb_sub_block(&r->sub, closed, timeout_ms, &deadline);
		if (rc != LITEBUS_OK)
			return rc;
	}
}

int
litebus_reader_expired(const litebus_reader *r, int64_t *first, int64_t *last)
{
	if (first != NULL)
		*first = 0;
	if (last != NULL)
		*last = 0;
	if (r == NULL || first == NULL || last == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_reader_expired: NULL argument");
	*first = r->expired_first;
	*last = r->expired_last;
	return LITEBUS_OK;
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
		return lb_fork_err("litebus_reader_fd");
	return lb_sub_fd(&r->sub);
}

int
litebus_reader_stats_get(const litebus_reader *r, litebus_reader_stats *st)
{
	if (r == NULL || st == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_reader_stats_get: NULL argument");
	if (lb_bus_forked(r->sub.bus)) /* F1, in bus.c */
		return lb_fork_err("litebus_reader_stats_get");
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
	lb_bus_unfollow(r->sub.bus, r->sub.ch);
	lb_sub_fini(&r->sub);
	free(r->rows);
	free(r->arena);
	free(r->ns);
	free(r->tag);
	free(r);
}
