/* SPDX-License-Identifier: MIT */
/*
 * test_rowcache.c - live rows from memory: the row cache alone (images,
 * misses, no torn copy under a racing writer), and readers at the head
 * taking rows from it - the same rows, fields and order the table gives,
 * exact filters, large rows from the table, laps, gaps, re-runs of batch
 * mates, deleted rows, read-only and in-memory buses, the option.
 */
#include "fixture.h"

#include "bus.h"
#include "record.h"
#include "rowcache.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* The cache alone                                                     */

static struct lb_outbox_row
row_of(int64_t id, const char *subject, size_t subject_len, const char *type,
       const char *ns, const char *tag, const void *payload, size_t payload_len)
{
	struct lb_outbox_row o = {
	    .event_id = id,
	    .partition_key = id * 7,
	    .occurred_at_ms = id * 11,
	    .committed_at_ms = id * 13,
	    .subject = subject,
	    .subject_len = subject_len,
	    .event_type = type,
	    .event_type_len = strlen(type),
	    .ns = ns,
	    .ns_len = ns != NULL ? strlen(ns) : 0,
	    .tag = tag,
	    .tag_len = tag != NULL ? strlen(tag) : 0,
	    .payload = payload,
	    .payload_len = payload_len,
	};
	return o;
}

static void
put_row(struct lb_rowcache *c, uint64_t pos, const struct lb_outbox_row *o)
{
	uint64_t img[512];
	size_t n = lb_rowcache_image_words(c, o);

	assert_true(n > 0 && n <= 512);
	lb_rowcache_encode(o, img);
	lb_rowcache_put(c, pos, img, n);
}

static void
assert_same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	assert_int_equal(alen, blen);
	assert_true(alen == 0 || memcmp(a, b, alen) == 0);
}

static void
assert_same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL) {
		assert_null(a);
		assert_null(b);
		return;
	}
	assert_string_equal(a, b);
}

static void
assert_same_row(const struct lb_outbox_row *a, const struct lb_outbox_row *b)
{
	assert_int_equal(a->event_id, b->event_id);
	assert_int_equal(a->partition_key, b->partition_key);
	assert_int_equal(a->occurred_at_ms, b->occurred_at_ms);
	assert_int_equal(a->committed_at_ms, b->committed_at_ms);
	assert_int_equal(a->subject == NULL, b->subject == NULL);
	assert_same_bytes(a->subject, a->subject_len, b->subject,
			  b->subject_len);
	assert_same_str(a->event_type, b->event_type);
	assert_int_equal(a->event_type_len, b->event_type_len);
	assert_same_str(a->ns, b->ns);
	assert_same_str(a->tag, b->tag);
	assert_int_equal(a->payload == NULL, b->payload == NULL);
	assert_same_bytes(a->payload, a->payload_len, b->payload,
			  b->payload_len);
}

/* rowcache.h: "copy the image of the row at ring position `pos` ... and
 * decode it": every field, NULL and empty ones included, comes back. */
static void
an_image_gives_back_every_field_null_and_empty_ones_included(void **state)
{
	static const unsigned char pl[5] = {0, 1, 2, 0, 255};
	struct lb_rowcache *c = lb_rowcache_create(8, 64);
	unsigned char dst[1024] __attribute__((aligned(8)));
	struct lb_outbox_row rows[5], got;

	(void)state;
	assert_non_null(c);
	rows[0] = row_of(1, "subj", 4, "t", "ns", "tag", pl, sizeof pl);
	rows[1] = row_of(2, NULL, 0, "type", NULL, NULL, NULL, 0);
	rows[2] = row_of(3, "", 0, "", "", "", pl, 0);
	rows[3] = row_of(4, "a\0b", 3, "x", NULL, "only-tag", NULL, 0);
	rows[4] = row_of(-5, "s", 1, "y", "n", NULL, pl, 1);
	rows[4].partition_key = INT64_MIN;
	for (int i = 0; i < 5; i++)
		put_row(c, (uint64_t)i + 1, &rows[i]);
	for (int i = 0; i < 5; i++) {
		assert_true(lb_rowcache_get(c, (uint64_t)i + 1,
					    rows[i].event_id, dst, &got));
		assert_same_row(&got, &rows[i]);
	}
	lb_rowcache_free(c);
}

/* Rows up to inline_bytes are kept (one byte per string's NUL counts);
 * one byte more is not. */
static void
a_row_up_to_inline_bytes_is_kept_one_byte_more_is_not(void **state)
{
	char payload[100];
	struct lb_rowcache *c = lb_rowcache_create(8, 50);
	struct lb_outbox_row o;

	(void)state;
	memset(payload, 'p', sizeof payload);
	/* subject 4 + type "t" 1 + NUL + ns "n" 1 + NUL = 8 */
	o = row_of(1, "subj", 4, "t", "n", NULL, payload, 42);
	assert_true(lb_rowcache_image_words(c, &o) > 0);
	o.payload_len = 43;
	assert_int_equal(lb_rowcache_image_words(c, &o), 0);
	/* A length that alone exceeds the limit never wraps the sum. */
	o.payload_len = SIZE_MAX - 2;
	assert_int_equal(lb_rowcache_image_words(c, &o), 0);
	lb_rowcache_free(c);
}

/* Misses: a slot never written, a slot reused by a later position, an id
 * that is not the record's (rowcache.c, RC2). */
static void
a_slot_holding_another_position_or_id_is_a_miss(void **state)
{
	struct lb_rowcache *c = lb_rowcache_create(8, 64);
	unsigned char dst[1024] __attribute__((aligned(8)));
	struct lb_outbox_row o = row_of(7, "s", 1, "t", NULL, NULL, NULL, 0),
			     got;

	(void)state;
	assert_false(lb_rowcache_get(c, 3, 7, dst, &got)); /* never written */
	put_row(c, 3, &o);
	assert_true(lb_rowcache_get(c, 3, 7, dst, &got));
	assert_false(lb_rowcache_get(c, 3, 8, dst, &got)); /* another id */
	assert_false(lb_rowcache_get(c, 11, 7, dst, &got));
	o.event_id = 99;
	put_row(c, 11, &o); /* 11 & 7 == 3: the slot is reused */
	assert_false(lb_rowcache_get(c, 3, 7, dst, &got));
	assert_true(lb_rowcache_get(c, 11, 99, dst, &got));
	lb_rowcache_free(c);
}

/* RC3: a reader racing the writer keeps only whole rows.  The writer
 * rewrites a small cache as fast as it can with rows whose every byte is
 * derived from the position; two readers ask for the newest positions
 * (the ones being overwritten) and check every hit byte by byte. */
struct race {
	struct lb_rowcache *c;
	_Atomic uint64_t head;
	_Atomic bool stop;
};

struct race_reader {
	pthread_t t;
	struct race *race;
	uint64_t hits, misses, bad;
};

static void
race_row(uint64_t pos, struct lb_outbox_row *o, char *subject, char *payload)
{
	size_t slen = pos % 17, plen = (pos * 7) % 90;

	for (size_t i = 0; i < slen; i++)
		subject[i] = (char)('a' + (pos + i) % 26);
	for (size_t i = 0; i < plen; i++)
		payload[i] = (char)(pos * 31 + i);
	*o = row_of((int64_t)pos, subject, slen, "race", NULL,
		    pos % 3 == 0 ? NULL : "tag", payload, plen);
}

static void *
race_writer(void *arg)
{
	struct race *r = arg;
	char subject[32], payload[128];

	for (uint64_t pos = 1; pos <= 200000; pos++) {
		struct lb_outbox_row o;

		race_row(pos, &o, subject, payload);
		put_row(r->c, pos, &o);
		atomic_store_explicit(&r->head, pos, memory_order_release);
	}
	atomic_store(&r->stop, true);
	return NULL;
}

static void *
race_reader_main(void *arg)
{
	struct race_reader *rr = arg;
	struct race *r = rr->race;
	unsigned char dst[1024] __attribute__((aligned(8)));
	char subject[32], payload[128];

	while (!atomic_load(&r->stop)) {
		uint64_t head =
		    atomic_load_explicit(&r->head, memory_order_acquire);

		for (uint64_t pos = head > 4 ? head - 4 : 1; pos <= head + 1;
		     pos++) {
			struct lb_outbox_row got, want;

			if (!lb_rowcache_get(r->c, pos, (int64_t)pos, dst,
					     &got)) {
				rr->misses++;
				continue;
			}
			race_row(pos, &want, subject, payload);
			if (got.subject_len != want.subject_len ||
			    got.payload_len != want.payload_len ||
			    (want.subject_len > 0 &&
			     memcmp(got.subject, want.subject,
				    want.subject_len) != 0) ||
			    (want.payload_len > 0 &&
			     memcmp(got.payload, want.payload,
				    want.payload_len) != 0) ||
			    (got.tag == NULL) != (want.tag == NULL) ||
			    got.partition_key != want.partition_key)
				rr->bad++;
			rr->hits++;
		}
	}
	return NULL;
}

static void
a_reader_racing_the_writer_never_keeps_a_torn_row(void **state)
{
	struct race race;
	struct race_reader rd[2];
	pthread_t w;

	(void)state;
	memset(&race, 0, sizeof race);
	race.c = lb_rowcache_create(8, 128);
	assert_non_null(race.c);
	for (int i = 0; i < 2; i++) {
		memset(&rd[i], 0, sizeof rd[i]);
		rd[i].race = &race;
		assert_int_equal(
		    pthread_create(&rd[i].t, NULL, race_reader_main, &rd[i]),
		    0);
	}
	assert_int_equal(pthread_create(&w, NULL, race_writer, &race), 0);
	pthread_join(w, NULL);
	for (int i = 0; i < 2; i++) {
		pthread_join(rd[i].t, NULL);
		assert_int_equal(rd[i].bad, 0);
	}
	assert_true(rd[0].hits + rd[1].hits > 0);
	lb_rowcache_free(race.c);
}

/* ------------------------------------------------------------------ */
/* Readers at the head                                                 */

static litebus_reader_stats
reader_stats(litebus_reader *r)
{
	litebus_reader_stats st;

	assert_int_equal(litebus_reader_stats_get(r, &st), LITEBUS_OK);
	return st;
}

/* A row as delivered, copied. */
struct got_row {
	int64_t event_id, partition_key, occurred_at_ms, committed_at_ms;
	bool subject_null, ns_null, tag_null, payload_null;
	char subject[700], type[64], ns[64], tag[64];
	unsigned char payload[700];
	size_t subject_len, payload_len;
};

static void
take_row(litebus_reader *r, struct got_row *g)
{
	litebus_row row;
	int rc = litebus_reader_next(r, &row, FX_WAIT_MS);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_reader_next: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
	memset(g, 0, sizeof *g);
	g->event_id = row.event_id;
	g->partition_key = row.partition_key;
	g->occurred_at_ms = row.occurred_at_ms;
	g->committed_at_ms = row.committed_at_ms;
	g->subject_null = row.subject == NULL;
	g->ns_null = row.ns == NULL;
	g->tag_null = row.instance_tag == NULL;
	g->payload_null = row.payload == NULL;
	assert_true(row.subject_len <= sizeof g->subject);
	assert_true(row.payload_len <= sizeof g->payload);
	g->subject_len = row.subject_len;
	g->payload_len = row.payload_len;
	if (row.subject_len > 0)
		memcpy(g->subject, row.subject, row.subject_len);
	if (row.payload_len > 0)
		memcpy(g->payload, row.payload, row.payload_len);
	assert_non_null(row.event_type);
	snprintf(g->type, sizeof g->type, "%s", row.event_type);
	if (row.ns != NULL)
		snprintf(g->ns, sizeof g->ns, "%s", row.ns);
	if (row.instance_tag != NULL)
		snprintf(g->tag, sizeof g->tag, "%s", row.instance_tag);
}

static void
assert_same_got(const struct got_row *a, const struct got_row *b)
{
	assert_int_equal(a->event_id, b->event_id);
	assert_int_equal(a->partition_key, b->partition_key);
	assert_int_equal(a->occurred_at_ms, b->occurred_at_ms);
	assert_int_equal(a->committed_at_ms, b->committed_at_ms);
	assert_int_equal(a->subject_null, b->subject_null);
	assert_int_equal(a->ns_null, b->ns_null);
	assert_int_equal(a->tag_null, b->tag_null);
	assert_int_equal(a->payload_null, b->payload_null);
	assert_same_bytes(a->subject, a->subject_len, b->subject,
			  b->subject_len);
	assert_same_bytes(a->payload, a->payload_len, b->payload,
			  b->payload_len);
	assert_string_equal(a->type, b->type);
	assert_string_equal(a->ns, b->ns);
	assert_string_equal(a->tag, b->tag);
}

/* Records of every shape: NULL and empty subjects, namespaces, tags and
 * payloads, binary bytes, sizes up to `big` (beyond the inline limit). */
#define SHAPES 12
static void
shape_record(int i, size_t big, litebus_record *rec, unsigned char *buf)
{
	memset(rec, 0, sizeof *rec);
	for (size_t k = 0; k < big; k++)
		buf[k] = (unsigned char)((size_t)i * 17 + k);
	rec->partition_key = i % 3;
	rec->event_type = "success";
	rec->occurred_at_ms = 1000 + i;
	switch (i % SHAPES) {
	case 0:
		break; /* everything NULL */
	case 1:
		rec->subject = buf;
		rec->subject_len = 0; /* empty, not NULL */
		rec->payload = buf;
		rec->payload_len = 0;
		break;
	case 2:
		rec->ns = "";
		rec->instance_tag = "";
		break;
	case 3:
		rec->subject = buf;
		rec->subject_len = 5;
		rec->ns = "ns-a";
		rec->payload = buf;
		rec->payload_len = 40;
		break;
	case 4:
		rec->instance_tag = "tag-b";
		rec->payload = buf;
		rec->payload_len = big; /* from the table */
		break;
	case 5:
		rec->subject = buf;
		rec->subject_len = big; /* from the table */
		break;
	default:
		rec->subject = buf;
		rec->subject_len = (size_t)i % 9;
		rec->ns = i % 2 ? "ns-a" : "ns-b";
		rec->instance_tag = i % 4 ? "t" : NULL;
		rec->payload = buf;
		rec->payload_len = (size_t)(i * 5) % 120;
		break;
	}
}

struct shapes_job {
	int from, count;
	size_t big;
};

static int
shapes_job(litebus_tx *tx, void *arg)
{
	const struct shapes_job *j = arg;
	unsigned char buf[700];

	for (int i = j->from; i < j->from + j->count; i++) {
		litebus_record rec;
		int rc;

		shape_record(i, j->big, &rec, buf);
		rc = litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

static void
commit_shapes(litebus *bus, int from, int count, size_t big)
{
	struct shapes_job j = {from, count, big};
	int rc = litebus_exec(bus, shapes_job, &j);

	if (rc != 0)
		fail_msg("commit_shapes: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
}

/* Header, "Live rows from memory": a reader at the head takes the rows
 * from memory, "The reader's contract does not change"; every field of
 * every row equals what a reader that reads the table delivers. */
static void
a_live_reader_gets_from_memory_exactly_the_rows_the_table_gives(void **state)
{
	struct bus_fixture *f = *state; /* default rings */
	enum { N = 240, PER_JOB = 8 };
	litebus_reader *live, *late;
	litebus_reader_stats ls, ts;
	static struct got_row a, b;
	int large = 0;

	live =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	for (int i = 0; i < N; i += PER_JOB)
		commit_shapes(f->bus, i, PER_JOB, 600);
	for (int i = 0; i < N; i++)
		large += i % SHAPES == 4 || i % SHAPES == 5;
	/* Opened after the commits: its rows come from the table. */
	late = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			      NULL);
	for (int i = 0; i < N; i++) {
		take_row(live, &a);
		take_row(late, &b);
		assert_same_got(&a, &b);
	}
	fx_expect_no_row(live);
	fx_expect_no_row(late);
	ls = reader_stats(live);
	ts = reader_stats(late);
	assert_int_equal(ls.delivered, N);
	assert_int_equal(ls.memory_rows, N - large);
	assert_int_equal(ts.memory_rows, 0);
	assert_true(ts.queries > 0);
	litebus_reader_close(live);
	litebus_reader_close(late);
}

static int
bus_with_no_inline_rows(void **state)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	fx_make_dir(f);
	litebus_options_init(&f->opts);
	f->opts.path = f->path;
	f->opts.reader_inline_bytes = 0;
	fx_open(f);
	*state = f;
	return 0;
}

/* Option: "0: every row from the table". */
static void
inline_bytes_zero_reads_every_row_from_the_table(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[20];
	litebus_reader *r;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	commit_events(f->bus, LITEBUS_COMPLETION, 20, ids);
	for (int i = 0; i < 20; i++)
		fx_expect_row(r, ids[i]);
	assert_int_equal(reader_stats(r).memory_rows, 0);
	assert_true(reader_stats(r).queries > 0);
	assert_null(
	    lb_channel_rows(lb_bus_channel(f->bus, LITEBUS_COMPLETION)));
	litebus_reader_close(r);
}

static int
bus_with_a_huge_ring(void **state)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	fx_make_dir(f);
	litebus_options_init(&f->opts);
	f->opts.path = f->path;
	f->opts.ring_capacity = 1u << 17;
	fx_open(f);
	*state = f;
	return 0;
}

/* Header: "min(ring_capacity, 65536) slots": a ring of 2^17 slots gets a
 * cache of 2^16, and a reader still takes its rows from it. */
static void
the_cache_has_at_most_65536_slots_whatever_the_ring(void **state)
{
	struct bus_fixture *f = *state;
	const struct lb_rowcache *c;
	litebus_reader *r;
	int64_t ids[10];

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	c = lb_channel_rows(lb_bus_channel(f->bus, LITEBUS_COMPLETION));
	assert_non_null(c);
	assert_int_equal(c->mask + 1, LB_ROWCACHE_MAX_SLOTS);
	commit_events(f->bus, LITEBUS_COMPLETION, 10, ids);
	for (int i = 0; i < 10; i++)
		fx_expect_row(r, ids[i]);
	assert_int_equal(reader_stats(r).memory_rows, 10);
	litebus_reader_close(r);
}

/* Option bounds: 0..65536. */
static void
inline_bytes_above_65536_is_einval(void **state)
{
	struct bus_fixture *f = *state; /* tmpdir */
	litebus_options o;
	litebus *bus = NULL;

	fx_make_dir(f);
	litebus_options_init(&o);
	assert_int_equal(o.reader_inline_bytes, 192);
	o.path = f->path;
	o.reader_inline_bytes = 65537;
	assert_int_equal(litebus_open(&o, &bus), LITEBUS_EINVAL);
	assert_null(bus);
	assert_non_null(strstr(litebus_last_errmsg(), "reader_inline_bytes"));
	o.reader_inline_bytes = 65536;
	assert_int_equal(litebus_open(&o, &bus), LITEBUS_OK);
	litebus_close(bus);
}

/* Two namespaces whose filter hints (record.h: a 32-bit hash) are equal:
 * the hint lets both through, only the exact comparison tells them
 * apart.  Found by sorting 2^19 names by hash (a birthday collision is
 * all but certain among them). */
struct named_hash {
	uint32_t h;
	uint32_t i;
};

static int
named_hash_cmp(const void *x, const void *y)
{
	const struct named_hash *a = x, *b = y;

	return a->h < b->h ? -1 : a->h > b->h ? 1 : 0;
}

static void
colliding_names(char a[16], char b[16])
{
	enum { N = 1 << 19 };
	struct named_hash *v = calloc(N, sizeof *v);
	char name[16];

	assert_non_null(v);
	for (uint32_t i = 0; i < N; i++) {
		snprintf(name, sizeof name, "ns%u", i);
		v[i].h = lb_rec_hash(name);
		v[i].i = i;
	}
	qsort(v, N, sizeof *v, named_hash_cmp);
	for (uint32_t i = 1; i < N; i++) {
		if (v[i].h == v[i - 1].h) {
			snprintf(a, 16, "ns%u", v[i - 1].i);
			snprintf(b, 16, "ns%u", v[i].i);
			free(v);
			assert_int_equal(lb_rec_hash(a), lb_rec_hash(b));
			assert_string_not_equal(a, b);
			return;
		}
	}
	free(v);
	fail_msg("no two of %d names share a hash", N);
}

struct filter_job {
	const char *ns[4];
	const char *tag[4];
	int64_t key[4];
	int n;
};

static int
filter_job(litebus_tx *tx, void *arg)
{
	const struct filter_job *j = arg;

	for (int i = 0; i < j->n; i++) {
		litebus_record rec;
		int rc;

		memset(&rec, 0, sizeof rec);
		rec.event_type = "success";
		rec.partition_key = j->key[i];
		rec.ns = j->ns[i];
		rec.instance_tag = j->tag[i];
		rc = litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

/* reader.c, D9: a row from memory matches "the comparison the query
 * makes": namespace and tag equal byte for byte and not NULL, partition
 * equal - whatever the hints say.  Each filtered live reader must deliver
 * exactly what the same filter delivers from the table. */
static void
live_filters_compare_exactly_even_when_the_hints_collide(void **state)
{
	struct bus_fixture *f = *state;
	char a[16], b[16];
	litebus_filter filters[4];
	litebus_reader *live[4], *late[4];
	int delivered[4] = {0};

	colliding_names(a, b);
	memset(filters, 0, sizeof filters);
	filters[0] = (litebus_filter){.any_partition = 1, .ns = a};
	filters[1] = (litebus_filter){.any_partition = 1, .instance_tag = b};
	filters[2] = (litebus_filter){.partition_key = 2, .ns = b};
	filters[3] = (litebus_filter){.partition_key = 1};
	for (int k = 0; k < 4; k++)
		live[k] = fx_reader_open(f->bus, LITEBUS_COMPLETION,
					 LITEBUS_FROM_NOW, &filters[k]);
	for (int round = 0; round < 6; round++) {
		struct filter_job j = {
		    .ns = {a, b, NULL, round % 2 ? a : b},
		    .tag = {b, a, b, NULL},
		    .key = {1, 2, round % 3, 2},
		    .n = 4,
		};
		assert_int_equal(litebus_exec(f->bus, filter_job, &j), 0);
	}
	for (int k = 0; k < 4; k++)
		late[k] = fx_reader_open(f->bus, LITEBUS_COMPLETION,
					 LITEBUS_FROM_START, &filters[k]);
	for (int k = 0; k < 4; k++) {
		litebus_row want, got;

		while (litebus_reader_next(late[k], &want, 0) == LITEBUS_OK) {
			assert_int_equal(litebus_reader_next(live[k], &got, 0),
					 LITEBUS_OK);
			assert_int_equal(got.event_id, want.event_id);
			delivered[k]++;
		}
		fx_expect_no_row(live[k]);
		assert_true(delivered[k] > 0);
		assert_int_equal(reader_stats(live[k]).memory_rows,
				 delivered[k]);
		litebus_reader_close(live[k]);
		litebus_reader_close(late[k]);
	}
	/* a: rows 0 (ns a) and 3 on odd rounds; tag b: rows 0 and 2. */
	assert_int_equal(delivered[0], 6 + 3);
	assert_int_equal(delivered[1], 6 + 6);
}

/* A lapped reader reads the missed rows from the table, then takes rows
 * from memory again once it is back at the head; every row once, in
 * order (8-slot rings). */
static void
a_lapped_reader_returns_to_memory_once_caught_up(void **state)
{
	struct bus_fixture *f = *state; /* 8-slot rings */
	int64_t ids[100];
	litebus_reader *r;
	litebus_reader_stats st;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	commit_batch(f->bus, LITEBUS_COMPLETION, 50, ids); /* laps it */
	for (int i = 0; i < 50; i++)
		fx_expect_row(r, ids[i]);
	st = reader_stats(r);
	assert_true(st.lags > 0);
	assert_int_equal(st.memory_rows, 0);
	for (int i = 50; i < 100; i++) {
		ids[i] = fx_commit_one(f->bus, LITEBUS_COMPLETION);
		fx_expect_row(r, ids[i]);
	}
	fx_expect_no_row(r);
	st = reader_stats(r);
	assert_int_equal(st.delivered, 100);
	assert_int_equal(st.memory_rows, 50);
	litebus_reader_close(r);
}

/* A job that emits a row whose payload says how many times the job was
 * called, then (second job) one that fails: the first job's batch is
 * abandoned and it runs again (writer.c, W9).  The reader must deliver
 * the row that committed - payload "2" - never the first run's. */
struct counting_job {
	int calls;
	int64_t id;
};

static int
counting_emit_job(litebus_tx *tx, void *arg)
{
	struct counting_job *j = arg;
	litebus_record rec;
	char payload[32];

	j->calls++;
	snprintf(payload, sizeof payload, "call %d", j->calls);
	memset(&rec, 0, sizeof rec);
	rec.event_type = "success";
	rec.payload = payload;
	rec.payload_len = strlen(payload);
	return litebus_emit(tx, LITEBUS_COMPLETION, &rec, &j->id);
}

static int
failing_emit_job(litebus_tx *tx, void *arg)
{
	(void)arg;
	(void)litebus_emit(tx, LITEBUS_COMPLETION,
			   &(litebus_record){.event_type = "success"}, NULL);
	return JOB_FAILED;
}

static void
submit_done(int status, void *arg)
{
	*(int *)arg = status;
}

static void
a_batch_mate_run_again_is_delivered_as_it_committed(void **state)
{
	struct bus_fixture *f = *state;
	struct counting_job cj = {0, 0};
	int st_count = -99, st_fail = -99;
	struct fx_barrier bar;
	struct fx_exec blocker;
	litebus_reader *r;
	litebus_row row;
	pthread_t t;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	fx_barrier_init(&bar, 2);
	blocker = (struct fx_exec){f->bus, fx_block_job, &bar, -1};
	assert_int_equal(pthread_create(&t, NULL, fx_exec_main, &blocker), 0);
	fx_barrier_wait(&bar); /* the writer is inside the blocker */
	assert_int_equal(litebus_submit(f->bus, counting_emit_job, &cj,
					submit_done, &st_count),
			 LITEBUS_OK);
	assert_int_equal(litebus_submit(f->bus, failing_emit_job, NULL,
					submit_done, &st_fail),
			 LITEBUS_OK);
	fx_barrier_wait(&bar);
	pthread_join(t, NULL);
	/* Behind the two: when it returns they are settled. */
	assert_int_equal(litebus_exec(f->bus, fx_noop_job, NULL), 0);
	assert_int_equal(st_count, 0);
	assert_int_equal(st_fail, JOB_FAILED);
	assert_int_equal(cj.calls, 2);
	assert_int_equal(litebus_reader_next(r, &row, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(row.event_id, cj.id);
	assert_int_equal(row.payload_len, strlen("call 2"));
	assert_memory_equal(row.payload, "call 2", row.payload_len);
	fx_expect_no_row(r);
	assert_int_equal(reader_stats(r).memory_rows, 1);
	fx_barrier_destroy(&bar);
	litebus_reader_close(r);
}

/* Header: "a row that was committed and then deleted ... may still be
 * delivered by a reader that took it from memory; it never is EXPIRED
 * then".  A reader at the head that has not called next yet still gets
 * the deleted row; a reader opened afterwards does not. */
static void
a_row_deleted_after_commit_may_still_come_from_memory(void **state)
{
	struct bus_fixture *f = *state;
	int64_t ids[3];
	litebus_reader *live, *late;
	char sql[128];

	live =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	commit_batch(f->bus, LITEBUS_COMPLETION, 3, ids);
	snprintf(sql, sizeof sql,
		 "DELETE FROM litebus_outbox_completion WHERE event_id = %lld",
		 (long long)ids[1]);
	assert_int_equal(fx_exec_sql(f->bus, sql), 0);
	late = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_START,
			      NULL);
	for (int i = 0; i < 3; i++)
		fx_expect_row(live, ids[i]);
	fx_expect_no_row(live);
	fx_expect_row(late, ids[0]);
	fx_expect_row(late, ids[2]);
	fx_expect_no_row(late);
	litebus_reader_close(live);
	litebus_reader_close(late);
}

/* Header: "(on a read-write bus; a read-only bus publishes nothing)": a
 * read-only bus's reader reads the table and makes no cache. */
static void
a_read_only_bus_keeps_no_rows_in_memory(void **state)
{
	struct bus_fixture *f = *state;
	litebus_options o;
	litebus *ro = NULL;
	litebus_reader *r;
	int64_t ids[5];

	litebus_options_init(&o);
	o.path = f->path;
	o.read_only = 1;
	assert_int_equal(litebus_open(&o, &ro), LITEBUS_OK);
	r = fx_reader_open(ro, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	commit_events(f->bus, LITEBUS_COMPLETION, 5, ids);
	for (int i = 0; i < 5; i++)
		fx_expect_row(r, ids[i]);
	assert_int_equal(reader_stats(r).memory_rows, 0);
	assert_null(lb_channel_rows(lb_bus_channel(ro, LITEBUS_COMPLETION)));
	litebus_reader_close(r);
	litebus_close(ro);
}

/* In-memory buses keep rows the same way. */
static void
an_in_memory_bus_serves_live_rows_from_memory(void **state)
{
	struct bus_fixture *f = *state; /* in memory */
	int64_t ids[30];
	litebus_reader *r;

	r = fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	commit_events(f->bus, LITEBUS_COMPLETION, 30, ids);
	for (int i = 0; i < 30; i++)
		fx_expect_row(r, ids[i]);
	fx_expect_no_row(r);
	assert_int_equal(reader_stats(r).memory_rows, 30);
	litebus_reader_close(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		an_image_gives_back_every_field_null_and_empty_ones_included),
	    cmocka_unit_test(
		a_row_up_to_inline_bytes_is_kept_one_byte_more_is_not),
	    cmocka_unit_test(a_slot_holding_another_position_or_id_is_a_miss),
	    cmocka_unit_test(a_reader_racing_the_writer_never_keeps_a_torn_row),
	    FX_TEST_DEFAULT(
		a_live_reader_gets_from_memory_exactly_the_rows_the_table_gives),
	    FX_TEST_WITH(inline_bytes_zero_reads_every_row_from_the_table,
			 bus_with_no_inline_rows),
	    FX_TEST_TMPDIR(inline_bytes_above_65536_is_einval),
	    FX_TEST_WITH(the_cache_has_at_most_65536_slots_whatever_the_ring,
			 bus_with_a_huge_ring),
	    FX_TEST_DEFAULT(
		live_filters_compare_exactly_even_when_the_hints_collide),
	    FX_TEST_TINY(a_lapped_reader_returns_to_memory_once_caught_up),
	    FX_TEST_DEFAULT(
		a_batch_mate_run_again_is_delivered_as_it_committed),
	    FX_TEST_DEFAULT(
		a_row_deleted_after_commit_may_still_come_from_memory),
	    FX_TEST_DEFAULT(a_read_only_bus_keeps_no_rows_in_memory),
	    FX_TEST_WITH(an_in_memory_bus_serves_live_rows_from_memory,
			 bus_in_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
