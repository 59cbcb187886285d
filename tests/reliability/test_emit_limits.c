/* SPDX-License-Identifier: MIT */
/*
 * test_emit_limits.c - litebus_emit() against SQLite's length limit.
 *
 * Issue 7, class 2 ("Unchecked SQLite results replace data"): a job
 * lowered SQLITE_LIMIT_LENGTH on litebus_tx_db(tx) and emitted a larger
 * payload; the ignored sqlite3_bind_* result left the parameter NULL, and
 * the committed row's payload was NULL while emit, the job and exec all
 * returned OK.  A subject over SQLite's default limit did the same, and
 * subscribers reported a subject_len the row did not have.
 *
 * The contract under test (include/litebus.h, litebus_emit): "ETOOBIG (a
 * field, or the whole row, is larger than the connection's
 * SQLITE_LIMIT_LENGTH; the message names the field, its size and the
 * limit) ... After an error nothing was appended; the job may go on or
 * return non-zero."  And ("What a job may do"): limits "set with
 * sqlite3_limit()" are "Put back when the job returns".
 *
 * Every test checks the stored rows through a separate connection, and
 * what subscribers and readers see, not only the status codes.
 */
#include "fixture.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The custom channel declared by the fixture (ids follow the built-ins). */
#define CUSTOM LITEBUS_BUILTIN_CHANNELS
/* The lowered SQLITE_LIMIT_LENGTH most tests use, and a size over it. */
#define LOW_LIMIT 1000
#define BIG_LEN 2000
/* Room for a copy of litebus_last_errmsg(). */
#define MSG_MAX 512
/* What a job returns to roll itself back (not a litebus status). */
/* An event_id emit must leave alone when it fails. */
#define ID_UNTOUCHED (-77)

static const char *const extra_channels[] = {"custom", NULL};

/* The small event a job emits after a refused one. */
static const char small_subject[] = "small-subject";
static const char small_payload[] = "small";

/* A bus on a fresh file with 8-slot rings and one custom channel. */
static int
bus_with_a_custom_channel(void **state)
{
	struct bus_fixture *f;

	tmpdir_setup(state);
	f = *state;
	f->opts.ring_capacity = 8;
	f->opts.channels = extra_channels;
	fx_open(f);
	return 0;
}

/* A heap string of `len` copies of `c`, NUL-terminated. */
static char *
long_string(size_t len, char c)
{
	char *s = malloc(len + 1);

	assert_non_null(s);
	memset(s, c, len);
	s[len] = '\0';
	return s;
}

/* The message of an ETOOBIG names the field, its size and the limit. */
static void
assert_names(const char *msg, const char *field, unsigned long long size,
	     unsigned long long limit)
{
	if (strstr(msg, field) == NULL || !fx_msg_has_number(msg, size) ||
	    !fx_msg_has_number(msg, limit))
		fail_msg("ETOOBIG message should name '%s', its size %llu and "
			 "the limit %llu: \"%s\"",
			 field, size, limit, msg);
}

/* ------------------------------------------------------------------ */
/* What the file holds, through a separate connection                  */

static sqlite3 *
open_plain(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	return db;
}

/* Assert that the row `id` of `channel_name` holds exactly these bytes
 * (NULL: the column is NULL). */
static void
assert_stored(const char *path, const char *channel_name, int64_t id,
	      const void *subject, size_t subject_len, const void *payload,
	      size_t payload_len)
{
	sqlite3 *db = open_plain(path);
	sqlite3_stmt *st;
	char sql[200];

	snprintf(sql, sizeof sql,
		 "SELECT subject, payload FROM \"litebus_outbox_%s\" "
		 "WHERE event_id = ?1",
		 channel_name);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_bind_int64(st, 1, id), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	for (int col = 0; col < 2; col++) {
		const void *want = col == 0 ? subject : payload;
		size_t want_len = col == 0 ? subject_len : payload_len;
		const void *got = sqlite3_column_blob(st, col);
		size_t got_len = (size_t)sqlite3_column_bytes(st, col);

		if (want == NULL) {
			assert_int_equal(sqlite3_column_type(st, col),
					 SQLITE_NULL);
			continue;
		}
		assert_int_equal(sqlite3_column_type(st, col), SQLITE_BLOB);
		assert_int_equal(got_len, want_len);
		if (want_len > 0)
			assert_memory_equal(got, want, want_len);
	}
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* ------------------------------------------------------------------ */
/* One job: maybe lower the limit, emit a refused record, maybe a small
 * one after it                                                        */

struct refused_job {
	int channel;
	int limit;	    /* SQLITE_LIMIT_LENGTH to set first; < 0 keeps */
	litebus_record big; /* the record emit must refuse */
	int big_rc;	    /* what emit returned for it */
	char big_msg[MSG_MAX];
	int64_t big_id;	 /* must stay ID_UNTOUCHED */
	bool then_small; /* emit a small event afterwards */
	int small_rc;
	int64_t small_id;
	bool return_big_rc; /* the job returns emit's status */
};

static void
small_record(int channel, litebus_record *rec)
{
	memset(rec, 0, sizeof *rec);
	rec->partition_key = 42;
	rec->event_type = fx_event_type(channel);
	rec->subject = small_subject;
	rec->subject_len = sizeof small_subject - 1;
	rec->payload = small_payload;
	rec->payload_len = sizeof small_payload - 1;
}

static int
refused_job_fn(litebus_tx *tx, void *arg)
{
	struct refused_job *j = arg;
	litebus_record small;

	if (j->limit >= 0)
		sqlite3_limit(litebus_tx_db(tx), SQLITE_LIMIT_LENGTH, j->limit);
	j->big_id = ID_UNTOUCHED;
	j->big_rc = litebus_emit(tx, j->channel, &j->big, &j->big_id);
	snprintf(j->big_msg, sizeof j->big_msg, "%s", litebus_last_errmsg());
	if (j->return_big_rc)
		return j->big_rc;
	if (j->then_small) {
		small_record(j->channel, &small);
		j->small_rc =
		    litebus_emit(tx, j->channel, &small, &j->small_id);
	}
	return 0;
}

/* Subscriber and reader attached before the job, so that they see
 * whatever it publishes. */
struct watchers {
	litebus_sub *sub;
	litebus_reader *reader;
};

static void
watch_from(struct bus_fixture *f, int channel, int64_t from, struct watchers *w)
{
	assert_int_equal(litebus_subscribe(f->bus, channel, &w->sub),
			 LITEBUS_OK);
	assert_int_equal(
	    litebus_reader_open(f->bus, channel, from, NULL, &w->reader),
	    LITEBUS_OK);
}

/* Attached before the job; the reader reads the whole table. */
static void
watch(struct bus_fixture *f, int channel, struct watchers *w)
{
	watch_from(f, channel, LITEBUS_FROM_START, w);
}

static void
unwatch(struct watchers *w)
{
	litebus_unsubscribe(w->sub);
	litebus_reader_close(w->reader);
}

/* The subscriber and the reader see exactly the small event `id`, with
 * its subject and payload, and nothing else. */
static void
assert_watchers_see_only_the_small_event(struct watchers *w, int64_t id)
{
	litebus_event ev;
	litebus_row row;

	assert_int_equal(litebus_recv(w->sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(ev.event_id, id);
	assert_int_equal(ev.subject_len, sizeof small_subject - 1);
	assert_memory_equal(ev.subject_prefix, small_subject,
			    sizeof small_subject - 1);
	assert_int_equal(litebus_recv(w->sub, &ev, 0), LITEBUS_TIMEOUT);

	assert_int_equal(litebus_reader_next(w->reader, &row, FX_WAIT_MS),
			 LITEBUS_OK);
	assert_int_equal(row.event_id, id);
	assert_int_equal(row.subject_len, sizeof small_subject - 1);
	assert_memory_equal(row.subject, small_subject, row.subject_len);
	assert_int_equal(row.payload_len, sizeof small_payload - 1);
	assert_memory_equal(row.payload, small_payload, row.payload_len);
	assert_int_equal(litebus_reader_next(w->reader, &row, 0),
			 LITEBUS_TIMEOUT);
}

/*
 * The scenario of the issue for one field: the job lowers the limit to
 * LOW_LIMIT, emits a record whose `field` is BIG_LEN bytes (ETOOBIG, the
 * message names it, its size and the limit; nothing appended), then emits
 * a small event and returns 0.  exec returns 0 and exactly that small row
 * exists, whole; subscribers and readers see only it.
 */
static void
refuse_one_field_and_go_on(struct bus_fixture *f, int channel,
			   const litebus_record *big, const char *field,
			   size_t size)
{
	const char *name = litebus_channel_name(f->bus, channel);
	struct refused_job j = {0};
	struct watchers w;

	assert_non_null(name);
	j.channel = channel;
	j.limit = LOW_LIMIT;
	j.big = *big;
	j.then_small = true;
	watch(f, channel, &w);

	assert_int_equal(litebus_exec(f->bus, refused_job_fn, &j), 0);

	assert_int_equal(j.big_rc, LITEBUS_ETOOBIG);
	assert_names(j.big_msg, field, size, LOW_LIMIT);
	assert_int_equal(j.big_id, ID_UNTOUCHED);
	assert_int_equal(j.small_rc, LITEBUS_OK);
	assert_int_equal(fx_count_rows(f->path, name), 1);
	assert_stored(f->path, name, j.small_id, small_subject,
		      sizeof small_subject - 1, small_payload,
		      sizeof small_payload - 1);
	assert_watchers_see_only_the_small_event(&w, j.small_id);
	unwatch(&w);
}

/* ------------------------------------------------------------------ */
/* One field over a lowered limit, field by field                      */

/* Contract, litebus_emit(): "ETOOBIG (a field ... is larger than the
 * connection's SQLITE_LIMIT_LENGTH; the message names the field, its size
 * and the limit) ... After an error nothing was appended; the job may go
 * on". */
static void
a_subject_over_a_lowered_limit_is_refused_by_name_and_the_job_goes_on(
    void **state)
{
	struct bus_fixture *f = *state;
	char *subject = long_string(BIG_LEN, 's');
	litebus_record big = {0};

	big.event_type = "success";
	big.subject = subject;
	big.subject_len = BIG_LEN;
	refuse_one_field_and_go_on(f, LITEBUS_COMPLETION, &big, "subject",
				   BIG_LEN);
	free(subject);
}

/* Contract, litebus_emit(): as above; the issue's own failing input (a
 * 2000-byte payload under a limit of 1000 was committed as NULL). */
static void
a_payload_over_a_lowered_limit_is_refused_by_name_and_the_job_goes_on(
    void **state)
{
	struct bus_fixture *f = *state;
	char *payload = long_string(BIG_LEN, 'p');
	litebus_record big = {0};

	big.event_type = "success";
	big.payload = payload;
	big.payload_len = BIG_LEN;
	refuse_one_field_and_go_on(f, LITEBUS_COMPLETION, &big, "payload",
				   BIG_LEN);
	free(payload);
}

/* Contract, litebus_emit(): as above, for event_type on a channel that
 * takes any event type (a custom one). */
static void
an_event_type_over_a_lowered_limit_is_refused_by_name_on_a_custom_channel(
    void **state)
{
	struct bus_fixture *f = *state;
	char *type = long_string(BIG_LEN, 't');
	litebus_record big = {0};

	big.event_type = type;
	refuse_one_field_and_go_on(f, CUSTOM, &big, "event_type", BIG_LEN);
	free(type);
}

/* Contract, litebus_emit(): as above, for event_type on the built-in
 * channel that takes "any non-empty event type". */
static void
an_event_type_over_a_lowered_limit_is_refused_by_name_on_signal_delivery(
    void **state)
{
	struct bus_fixture *f = *state;
	char *type = long_string(BIG_LEN, 't');
	litebus_record big = {0};

	big.event_type = type;
	refuse_one_field_and_go_on(f, LITEBUS_SIGNAL_DELIVERY, &big,
				   "event_type", BIG_LEN);
	free(type);
}

/* Contract, litebus_emit(): as above, for the namespace (rec.ns). */
static void
a_namespace_over_a_lowered_limit_is_refused_by_name_and_the_job_goes_on(
    void **state)
{
	struct bus_fixture *f = *state;
	char *ns = long_string(BIG_LEN, 'n');
	litebus_record big = {0};

	big.event_type = "success";
	big.ns = ns;
	refuse_one_field_and_go_on(f, LITEBUS_COMPLETION, &big, "namespace",
				   BIG_LEN);
	free(ns);
}

/* Contract, litebus_emit(): as above, for instance_tag. */
static void
an_instance_tag_over_a_lowered_limit_is_refused_by_name_and_the_job_goes_on(
    void **state)
{
	struct bus_fixture *f = *state;
	char *tag = long_string(BIG_LEN, 'i');
	litebus_record big = {0};

	big.event_type = "success";
	big.instance_tag = tag;
	refuse_one_field_and_go_on(f, LITEBUS_COMPLETION, &big, "instance_tag",
				   BIG_LEN);
	free(tag);
}

/* Contract, litebus_emit(): as above, on an in-memory bus (its readers
 * share the writer's cache): the refused payload leaves nothing behind,
 * and the reader and subscriber see only the job's small event. */
static void
an_in_memory_bus_refuses_a_payload_over_a_lowered_limit_the_same_way(
    void **state)
{
	char *payload = long_string(BIG_LEN, 'p');
	struct bus_fixture mem = {0};
	struct refused_job j = {0};
	struct watchers w;

	(void)state;
	litebus_options_init(&mem.opts);
	mem.opts.ring_capacity = 8;
	assert_int_equal(litebus_open(&mem.opts, &mem.bus), LITEBUS_OK);
	watch(&mem, LITEBUS_COMPLETION, &w);
	j.channel = LITEBUS_COMPLETION;
	j.limit = LOW_LIMIT;
	j.big.event_type = "success";
	j.big.payload = payload;
	j.big.payload_len = BIG_LEN;
	j.then_small = true;
	assert_int_equal(litebus_exec(mem.bus, refused_job_fn, &j), 0);
	assert_int_equal(j.big_rc, LITEBUS_ETOOBIG);
	assert_names(j.big_msg, "payload", BIG_LEN, LOW_LIMIT);
	assert_int_equal(j.small_rc, LITEBUS_OK);
	assert_watchers_see_only_the_small_event(&w, j.small_id);
	unwatch(&w);
	assert_int_equal(litebus_close(mem.bus), LITEBUS_OK);
	free(payload);
}

/* ------------------------------------------------------------------ */
/* Boundaries                                                          */

enum field { F_SUBJECT, F_PAYLOAD, F_EVENT_TYPE, F_NS, F_TAG, F_COUNT };

static const char *const field_names[F_COUNT] = {
    "subject", "payload", "event_type", "namespace", "instance_tag"};

/* A record on CUSTOM whose `field` is `len` bytes and whose other fields
 * are as small as they can be.  *buf must be freed. */
static void
record_with(enum field field, size_t len, litebus_record *rec, char **buf)
{
	*buf = long_string(len, 'x');
	memset(rec, 0, sizeof *rec);
	rec->event_type = "e";
	switch (field) {
	case F_SUBJECT:
		rec->subject = *buf;
		rec->subject_len = len;
		break;
	case F_PAYLOAD:
		rec->payload = *buf;
		rec->payload_len = len;
		break;
	case F_EVENT_TYPE:
		rec->event_type = *buf;
		break;
	case F_NS:
		rec->ns = *buf;
		break;
	case F_TAG:
		rec->instance_tag = *buf;
		break;
	case F_COUNT:
		fail_msg("no such field");
	}
}

/* Contract, litebus_emit(): "ETOOBIG (a field ... is larger than the
 * connection's SQLITE_LIMIT_LENGTH; the message names the field, its size
 * and the limit)".  One byte over the limit is enough, for every field;
 * nothing is appended each time. */
static void
each_field_one_byte_over_the_limit_is_refused_by_name(void **state)
{
	struct bus_fixture *f = *state;

	for (int fld = 0; fld < F_COUNT; fld++) {
		struct refused_job j = {0};
		char *buf;

		j.channel = CUSTOM;
		j.limit = LOW_LIMIT;
		record_with((enum field)fld, LOW_LIMIT + 1, &j.big, &buf);
		assert_int_equal(litebus_exec(f->bus, refused_job_fn, &j), 0);
		if (j.big_rc != LITEBUS_ETOOBIG)
			fail_msg("%s of %d bytes under a limit of %d: emit "
				 "returned %s",
				 field_names[fld], LOW_LIMIT + 1, LOW_LIMIT,
				 litebus_errname(j.big_rc));
		assert_names(j.big_msg, field_names[fld], LOW_LIMIT + 1,
			     LOW_LIMIT);
		assert_int_equal(j.big_id, ID_UNTOUCHED);
		free(buf);
	}
	assert_int_equal(fx_count_rows(f->path, "custom"), 0);
}

/* Contract, litebus_emit(): "ETOOBIG (a field, or the whole row, is
 * larger than the connection's SQLITE_LIMIT_LENGTH".  SQLite applies the
 * limit to the stored record, which holds the field plus a header and
 * the other columns: a field exactly at the limit is not larger than it,
 * but its row is - refused as the row, with the limit in the message,
 * nothing appended.  (No field can be stored at exactly the limit; the
 * largest row that fits is the next test.) */
static void
each_field_exactly_at_the_limit_is_refused_as_the_row_around_it(void **state)
{
	struct bus_fixture *f = *state;

	for (int fld = 0; fld < F_COUNT; fld++) {
		struct refused_job j = {0};
		char *buf;

		j.channel = CUSTOM;
		j.limit = LOW_LIMIT;
		record_with((enum field)fld, LOW_LIMIT, &j.big, &buf);
		assert_int_equal(litebus_exec(f->bus, refused_job_fn, &j), 0);
		if (j.big_rc != LITEBUS_ETOOBIG)
			fail_msg("%s of exactly %d bytes under a limit of %d: "
				 "emit returned %s",
				 field_names[fld], LOW_LIMIT, LOW_LIMIT,
				 litebus_errname(j.big_rc));
		if (strstr(j.big_msg, "row") == NULL ||
		    !fx_msg_has_number(j.big_msg, LOW_LIMIT))
			fail_msg("%s at the limit: the message should name the "
				 "row and the limit: \"%s\"",
				 field_names[fld], j.big_msg);
		assert_int_equal(j.big_id, ID_UNTOUCHED);
		free(buf);
	}
	assert_int_equal(fx_count_rows(f->path, "custom"), 0);
}

/* The bytes SQLite's record adds to the payload of a CUSTOM row with
 * event_type "e", partition_key 0, occurred_at_ms 1, no subject,
 * namespace or tag, a payload of 128..8191 bytes and a committed_at_ms
 * of 6 bytes (any wall clock between 1974 and 6429).  The header: its
 * own size, then one serial type per column (event_id is the rowid and
 * stored as NULL; the payload's type, 2*len+12, takes two bytes): 11
 * bytes.  The body besides the payload: "e" and committed_at_ms, 7. */
#define FIT_OVERHEAD (11 + 7)

struct fit_job {
	size_t payload_len;
	int rc;
	char msg[MSG_MAX];
	int64_t id;
};

static int
fit_job_fn(litebus_tx *tx, void *arg)
{
	struct fit_job *j = arg;
	char *payload = long_string(j->payload_len, 'f');
	litebus_record rec = {0};

	sqlite3_limit(litebus_tx_db(tx), SQLITE_LIMIT_LENGTH, LOW_LIMIT);
	rec.event_type = "e";
	rec.occurred_at_ms = 1;
	rec.payload = payload;
	rec.payload_len = j->payload_len;
	j->id = ID_UNTOUCHED;
	j->rc = litebus_emit(tx, CUSTOM, &rec, &j->id);
	snprintf(j->msg, sizeof j->msg, "%s", litebus_last_errmsg());
	free(payload);
	return 0;
}

/* Contract, litebus_emit(): ETOOBIG only when "a field, or the whole row,
 * is larger than the connection's SQLITE_LIMIT_LENGTH": a row exactly at
 * the limit is stored whole; one byte more is refused and nothing is
 * appended. */
static void
a_row_exactly_at_the_limit_is_stored_whole_and_one_byte_more_is_refused(
    void **state)
{
	struct bus_fixture *f = *state;
	const size_t fits = LOW_LIMIT - FIT_OVERHEAD;
	struct fit_job at = {fits, -1, "", 0}, over = {fits + 1, -1, "", 0};
	char *want = long_string(fits, 'f');

	assert_int_equal(litebus_exec(f->bus, fit_job_fn, &at), 0);
	if (at.rc != LITEBUS_OK)
		fail_msg("a row of exactly the limit (%d bytes) was refused: "
			 "%s: %s",
			 LOW_LIMIT, litebus_errname(at.rc), at.msg);
	assert_stored(f->path, "custom", at.id, NULL, 0, want, fits);

	assert_int_equal(litebus_exec(f->bus, fit_job_fn, &over), 0);
	assert_int_equal(over.rc, LITEBUS_ETOOBIG);
	assert_int_equal(over.id, ID_UNTOUCHED);
	if (strstr(over.msg, "row") == NULL ||
	    !fx_msg_has_number(over.msg, LOW_LIMIT))
		fail_msg("the message should name the row and the limit: "
			 "\"%s\"",
			 over.msg);
	assert_int_equal(fx_count_rows(f->path, "custom"), 1);
	free(want);
}

/* Contract, litebus_emit(): "ETOOBIG (... or the whole row, is larger
 * than the connection's SQLITE_LIMIT_LENGTH ...) ... After an error
 * nothing was appended".  Two fields of 60% of the limit each: both pass
 * on their own, their row does not. */
static void
a_row_over_the_limit_of_fields_under_it_is_refused_and_nothing_appended(
    void **state)
{
	struct bus_fixture *f = *state;
	const size_t part = LOW_LIMIT * 6 / 10;
	char *a = long_string(part, 'a'), *b = long_string(part, 'b');
	litebus_record recs[2];
	const char *what[2] = {"subject and payload", "namespace and tag"};

	memset(recs, 0, sizeof recs);
	recs[0].event_type = "e";
	recs[0].subject = a;
	recs[0].subject_len = part;
	recs[0].payload = b;
	recs[0].payload_len = part;
	recs[1].event_type = "e";
	recs[1].ns = a;
	recs[1].instance_tag = b;
	for (int i = 0; i < 2; i++) {
		struct refused_job j = {0};
		struct watchers w;

		j.channel = CUSTOM;
		j.limit = LOW_LIMIT;
		j.big = recs[i];
		j.then_small = true;
		watch_from(f, CUSTOM, LITEBUS_FROM_NOW, &w);
		assert_int_equal(litebus_exec(f->bus, refused_job_fn, &j), 0);
		if (j.big_rc != LITEBUS_ETOOBIG)
			fail_msg("%s of %zu bytes each under a limit of %d: "
				 "emit returned %s",
				 what[i], part, LOW_LIMIT,
				 litebus_errname(j.big_rc));
		if (strstr(j.big_msg, "row") == NULL ||
		    !fx_msg_has_number(j.big_msg, LOW_LIMIT))
			fail_msg("%s: the message should name the row and the "
				 "limit: \"%s\"",
				 what[i], j.big_msg);
		assert_int_equal(j.big_id, ID_UNTOUCHED);
		assert_int_equal(j.small_rc, LITEBUS_OK);
		assert_int_equal(fx_count_rows(f->path, "custom"), i + 1);
		assert_watchers_see_only_the_small_event(&w, j.small_id);
		unwatch(&w);
	}
	free(a);
	free(b);
}

/* Contract, litebus_emit(): ETOOBIG when "a field ... is larger than the
 * connection's SQLITE_LIMIT_LENGTH" - also SQLite's default limit of
 * 1,000,000,000 bytes, with no job lowering anything.  The lengths claim
 * far more than the 16 bytes behind the pointers: emit must refuse before
 * reading them (ASan would report the read), and a length that does not
 * fit litebus_event.subject_len (2^32 + 5) never reaches a subscriber as
 * 5. */
static void
lengths_over_the_default_limit_are_refused_before_the_bytes_are_read(
    void **state)
{
	struct bus_fixture *f = *state;
	static const unsigned char tiny[16] = "0123456789abcde";
	const unsigned long long lens[] = {1000000001ull, (1ull << 32) + 5,
					   (unsigned long long)SIZE_MAX};
	struct watchers w;

	watch(f, LITEBUS_COMPLETION, &w);
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		for (int fld = F_SUBJECT; fld <= F_PAYLOAD; fld++) {
			struct refused_job j = {0};

			if ((unsigned long long)(size_t)lens[i] != lens[i])
				continue; /* a 32-bit size_t */
			j.channel = LITEBUS_COMPLETION;
			j.limit = -1;
			j.big.event_type = "success";
			if (fld == F_SUBJECT) {
				j.big.subject = tiny;
				j.big.subject_len = (size_t)lens[i];
			} else {
				j.big.payload = tiny;
				j.big.payload_len = (size_t)lens[i];
			}
			assert_int_equal(
			    litebus_exec(f->bus, refused_job_fn, &j), 0);
			if (j.big_rc != LITEBUS_ETOOBIG)
				fail_msg("%s_len %llu: emit returned %s",
					 field_names[fld], lens[i],
					 litebus_errname(j.big_rc));
			assert_names(j.big_msg, field_names[fld], lens[i],
				     1000000000ull);
			assert_int_equal(j.big_id, ID_UNTOUCHED);
		}
	}
	{
		/* The job goes on: a small event commits alone. */
		struct refused_job j = {0};

		j.channel = LITEBUS_COMPLETION;
		j.limit = -1;
		j.big.event_type = "success";
		j.big.subject = tiny;
		j.big.subject_len = (size_t)1000000001ull;
		j.then_small = true;
		assert_int_equal(litebus_exec(f->bus, refused_job_fn, &j), 0);
		assert_int_equal(j.big_rc, LITEBUS_ETOOBIG);
		assert_int_equal(j.small_rc, LITEBUS_OK);
		assert_int_equal(fx_count_rows(f->path, "completion"), 1);
		assert_watchers_see_only_the_small_event(&w, j.small_id);
	}
	unwatch(&w);
}

/* ------------------------------------------------------------------ */
/* The job decides                                                     */

/* Contract, litebus_emit(): "After an error nothing was appended; the job
 * may go on or return non-zero."  A job that passes ETOOBIG on fails with
 * it; the caller gets the status and the message that names the field;
 * nothing commits. */
static void
a_job_that_returns_etoobig_fails_with_it_and_its_message(void **state)
{
	struct bus_fixture *f = *state;
	char *payload = long_string(BIG_LEN, 'p');
	struct refused_job j = {0};
	struct watchers w;
	litebus_event ev;
	litebus_row row;

	watch(f, LITEBUS_COMPLETION, &w);
	j.channel = LITEBUS_COMPLETION;
	j.limit = LOW_LIMIT;
	j.big.event_type = "success";
	j.big.payload = payload;
	j.big.payload_len = BIG_LEN;
	j.return_big_rc = true;
	assert_int_equal(litebus_exec(f->bus, refused_job_fn, &j),
			 LITEBUS_ETOOBIG);
	assert_names(litebus_last_errmsg(), "payload", BIG_LEN, LOW_LIMIT);
	assert_int_equal(fx_count_rows(f->path, "completion"), 0);
	assert_int_equal(litebus_recv(w.sub, &ev, 0), LITEBUS_TIMEOUT);
	assert_int_equal(litebus_reader_next(w.reader, &row, 0),
			 LITEBUS_TIMEOUT);
	unwatch(&w);
	free(payload);
}

struct limit_probe {
	int lower_to; /* < 0: only look */
	int seen;     /* SQLITE_LIMIT_LENGTH when the job started */
	int emit_rc;
	int64_t id;
	int ret;
};

/* Look at the limit, maybe lower it, emit a BIG_LEN payload. */
static int
limit_probe_fn(litebus_tx *tx, void *arg)
{
	struct limit_probe *p = arg;
	sqlite3 *db = litebus_tx_db(tx);
	char *payload = long_string(BIG_LEN, 'q');
	litebus_record rec = {0};

	p->seen = sqlite3_limit(db, SQLITE_LIMIT_LENGTH, -1);
	if (p->lower_to >= 0)
		sqlite3_limit(db, SQLITE_LIMIT_LENGTH, p->lower_to);
	rec.event_type = "success";
	rec.payload = payload;
	rec.payload_len = BIG_LEN;
	p->emit_rc = litebus_emit(tx, LITEBUS_COMPLETION, &rec, &p->id);
	free(payload);
	return p->ret;
}

/* Contract, "What a job may do": "Put back when the job returns: ...
 * limits set with sqlite3_limit()".  The job after the one that lowered
 * the limit sees the original again, and its large event commits. */
static void
the_next_job_sees_the_original_length_limit_again(void **state)
{
	struct bus_fixture *f = *state;
	struct limit_probe before = {-1, 0, -1, 0, 0};
	struct limit_probe lowering = {LOW_LIMIT, 0, -1, 0, 0};
	struct limit_probe after = {-1, 0, -1, 0, 0};

	assert_int_equal(litebus_exec(f->bus, limit_probe_fn, &before), 0);
	assert_int_equal(before.emit_rc, LITEBUS_OK);
	assert_true(before.seen > BIG_LEN);
	assert_int_equal(litebus_exec(f->bus, limit_probe_fn, &lowering), 0);
	assert_int_equal(lowering.seen, before.seen);
	assert_int_equal(lowering.emit_rc, LITEBUS_ETOOBIG);
	assert_int_equal(litebus_exec(f->bus, limit_probe_fn, &after), 0);
	assert_int_equal(after.seen, before.seen);
	assert_int_equal(after.emit_rc, LITEBUS_OK);
	assert_int_equal(fx_count_rows(f->path, "completion"), 2);
}

/* Contract, "What a job may do": limits are "Put back when the job
 * returns", and a failing job "is rolled back alone".  The job leaves the
 * limit lowered and fails: nothing of it commits, and the limit is back
 * for the next job. */
static void
a_failing_job_that_leaves_the_limit_lowered_commits_nothing_and_the_limit_is_back(
    void **state)
{
	struct bus_fixture *f = *state;
	struct limit_probe before = {-1, 0, -1, 0, 0};
	struct limit_probe failing = {LOW_LIMIT, 0, -1, 0, JOB_FAILED};
	struct limit_probe after = {-1, 0, -1, 0, 0};
	struct watchers w;
	litebus_event ev;
	litebus_row row;

	assert_int_equal(litebus_exec(f->bus, limit_probe_fn, &before), 0);
	watch(f, LITEBUS_COMPLETION, &w);
	assert_int_equal(litebus_reader_next(w.reader, &row, FX_WAIT_MS),
			 LITEBUS_OK); /* before's event */
	assert_int_equal(litebus_exec(f->bus, limit_probe_fn, &failing),
			 JOB_FAILED);
	assert_int_equal(failing.emit_rc, LITEBUS_ETOOBIG);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
	assert_int_equal(litebus_recv(w.sub, &ev, 0), LITEBUS_TIMEOUT);
	assert_int_equal(litebus_reader_next(w.reader, &row, 0),
			 LITEBUS_TIMEOUT);

	assert_int_equal(litebus_exec(f->bus, limit_probe_fn, &after), 0);
	assert_int_equal(after.seen, before.seen);
	assert_int_equal(after.emit_rc, LITEBUS_OK);
	assert_int_equal(litebus_recv(w.sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(ev.event_id, after.id);
	assert_int_equal(litebus_reader_next(w.reader, &row, FX_WAIT_MS),
			 LITEBUS_OK);
	assert_int_equal(row.event_id, after.id);
	assert_int_equal(row.payload_len, BIG_LEN);
	unwatch(&w);
}

static void
probe_done(int status, void *arg)
{
	*(int *)arg = status;
}

/* Contract, "What a job may do": limits are "Put back when the job
 * returns" - also between two jobs of one batch, where no transaction
 * ends in between. */
static void
a_job_in_the_same_batch_sees_the_original_length_limit(void **state)
{
	struct bus_fixture *f = *state;
	struct limit_probe lowering = {LOW_LIMIT, 0, -1, 0, 0};
	struct limit_probe after = {-1, 0, -1, 0, 0};
	int lowering_status = -99, after_status = -99;
	struct fx_exec blocker;
	struct fx_barrier b;
	litebus_stats st0, st1;
	pthread_t t;

	fx_barrier_init(&b, 2);
	blocker = (struct fx_exec){f->bus, fx_block_job, &b, -1};
	assert_int_equal(pthread_create(&t, NULL, fx_exec_main, &blocker), 0);
	fx_barrier_wait(&b); /* the writer is inside fx_block_job */
	assert_int_equal(litebus_stats_get(f->bus, &st0), LITEBUS_OK);
	assert_int_equal(litebus_submit(f->bus, limit_probe_fn, &lowering,
					probe_done, &lowering_status),
			 LITEBUS_OK);
	assert_int_equal(litebus_submit(f->bus, limit_probe_fn, &after,
					probe_done, &after_status),
			 LITEBUS_OK);
	fx_barrier_wait(&b); /* release: the two form the next batch */
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(blocker.rc, 0);
	/* exec queues behind the two, so when it returns they are done. */
	assert_int_equal(litebus_exec(f->bus, fx_noop_job, NULL), 0);
	assert_int_equal(litebus_stats_get(f->bus, &st1), LITEBUS_OK);
	fx_barrier_destroy(&b);

	/* The blocker's commit may or may not be counted in st0; the two
	 * probes then shared one transaction (the no-op may join them). */
	assert_in_range(st1.commits - st0.commits, 1, 3);
	assert_int_equal(lowering_status, 0);
	assert_int_equal(lowering.emit_rc, LITEBUS_ETOOBIG);
	assert_int_equal(after_status, 0);
	assert_int_equal(after.seen, lowering.seen);
	assert_int_equal(after.emit_rc, LITEBUS_OK);
	assert_int_equal(fx_count_rows(f->path, "completion"), 1);
	{
		char *want = long_string(BIG_LEN, 'q');
		assert_stored(f->path, "completion", after.id, NULL, 0, want,
			      BIG_LEN);
		free(want);
	}
}

/* ------------------------------------------------------------------ */
/* What subscribers and readers see is what was emitted                 */

struct subjects_job {
	const unsigned char *bytes;
	size_t lens[8];
	bool null_subject[8];
	int count;
	int64_t ids[8];
};

static int
subjects_job_fn(litebus_tx *tx, void *arg)
{
	struct subjects_job *j = arg;

	for (int i = 0; i < j->count; i++) {
		litebus_record rec = {0};
		int rc;

		rec.event_type = "success";
		rec.partition_key = i;
		rec.subject = j->null_subject[i] ? NULL : j->bytes;
		rec.subject_len = j->lens[i];
		rc = litebus_emit(tx, LITEBUS_COMPLETION, &rec, &j->ids[i]);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

/* Contract, litebus_event: "subject_len: length of the full subject" and
 * subject_prefix holds "The first min(subject_len, LITEBUS_SUBJECT_PREFIX)
 * bytes of the subject; the rest of the array is zero"; litebus_row gives
 * the subject as emitted.  Binary subjects (with zero bytes) of 0, 1, 15,
 * 16, 17 and 1000 bytes and a NULL subject. */
static void
subscribers_and_readers_see_the_subject_that_was_emitted(void **state)
{
	struct bus_fixture *f = *state;
	unsigned char bytes[1000];
	struct subjects_job j = {0};
	const size_t lens[] = {0, 1, 15, 16, 17, 1000};
	struct watchers w;

	for (size_t i = 0; i < sizeof bytes; i++)
		bytes[i] = (unsigned char)(i * 7); /* zero every 256 */
	j.bytes = bytes;
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
		j.lens[j.count++] = lens[i];
	j.null_subject[j.count] = true;
	j.lens[j.count++] = 0;
	watch(f, LITEBUS_COMPLETION, &w);
	assert_int_equal(litebus_exec(f->bus, subjects_job_fn, &j), 0);

	for (int i = 0; i < j.count; i++) {
		size_t len = j.lens[i];
		size_t pre =
		    len < LITEBUS_SUBJECT_PREFIX ? len : LITEBUS_SUBJECT_PREFIX;
		unsigned char want_prefix[LITEBUS_SUBJECT_PREFIX] = {0};
		litebus_event ev;
		litebus_row row;

		memcpy(want_prefix, bytes, pre);
		assert_int_equal(litebus_recv(w.sub, &ev, FX_WAIT_MS),
				 LITEBUS_OK);
		assert_int_equal(ev.event_id, j.ids[i]);
		assert_int_equal(ev.subject_len, len);
		assert_memory_equal(ev.subject_prefix, want_prefix,
				    sizeof want_prefix);

		assert_int_equal(
		    litebus_reader_next(w.reader, &row, FX_WAIT_MS),
		    LITEBUS_OK);
		assert_int_equal(row.event_id, j.ids[i]);
		assert_int_equal(row.subject_len, len);
		if (len > 0)
			assert_memory_equal(row.subject, bytes, len);
		if (j.null_subject[i])
			assert_null(row.subject);
		assert_stored(f->path, "completion", j.ids[i],
			      j.null_subject[i] ? NULL : bytes, len, NULL, 0);
	}
	unwatch(&w);
}

struct emit_then_lower {
	int64_t id;
	int rc;
};

static int
emit_then_lower_fn(litebus_tx *tx, void *arg)
{
	struct emit_then_lower *j = arg;
	char *subject = long_string(BIG_LEN / 2, 's');
	char *payload = long_string(BIG_LEN, 'p');
	litebus_record rec = {0};

	rec.event_type = "success";
	rec.subject = subject;
	rec.subject_len = BIG_LEN / 2;
	rec.payload = payload;
	rec.payload_len = BIG_LEN;
	j->rc = litebus_emit(tx, LITEBUS_COMPLETION, &rec, &j->id);
	/* Lowered after the row is in: it must not shape what litebus
	 * reads back and publishes. */
	sqlite3_limit(litebus_tx_db(tx), SQLITE_LIMIT_LENGTH, 10);
	free(subject);
	free(payload);
	return 0;
}

/* Contract, "What a job may do": "What is published is what commits",
 * and limits are "Put back when the job returns".  A job that lowers the
 * limit after emitting a large event: the row commits whole, and the
 * subscriber and reader see its full subject length and payload. */
static void
an_event_emitted_before_the_job_lowers_the_limit_is_published_whole(
    void **state)
{
	struct bus_fixture *f = *state;
	struct emit_then_lower j = {0, -1};
	char *subject = long_string(BIG_LEN / 2, 's');
	char *payload = long_string(BIG_LEN, 'p');
	struct watchers w;
	litebus_event ev;
	litebus_row row;

	watch(f, LITEBUS_COMPLETION, &w);
	assert_int_equal(litebus_exec(f->bus, emit_then_lower_fn, &j), 0);
	assert_int_equal(j.rc, LITEBUS_OK);
	assert_stored(f->path, "completion", j.id, subject, BIG_LEN / 2,
		      payload, BIG_LEN);
	assert_int_equal(litebus_recv(w.sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(ev.event_id, j.id);
	assert_int_equal(ev.subject_len, BIG_LEN / 2);
	assert_memory_equal(ev.subject_prefix, subject, LITEBUS_SUBJECT_PREFIX);
	assert_int_equal(litebus_reader_next(w.reader, &row, FX_WAIT_MS),
			 LITEBUS_OK);
	assert_int_equal(row.event_id, j.id);
	assert_int_equal(row.subject_len, BIG_LEN / 2);
	assert_memory_equal(row.subject, subject, BIG_LEN / 2);
	assert_int_equal(row.payload_len, BIG_LEN);
	assert_memory_equal(row.payload, payload, BIG_LEN);
	unwatch(&w);
	free(subject);
	free(payload);
}

/* ------------------------------------------------------------------ */
/* Other limits the job may lower                                      */

struct other_limit_job {
	int limit_id;
	int value;
	int rc;
	char msg[MSG_MAX];
	int64_t id;
};

static int
other_limit_job_fn(litebus_tx *tx, void *arg)
{
	struct other_limit_job *j = arg;
	sqlite3 *db = litebus_tx_db(tx);
	litebus_record rec;

	/* A schema change expires every prepared statement, litebus's
	 * INSERT included: it is prepared again under the job's limit. */
	if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS app_t(x)", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "DROP TABLE app_t", NULL, NULL, NULL) != SQLITE_OK)
		return JOB_FAILED;
	sqlite3_limit(db, j->limit_id, j->value);
	small_record(LITEBUS_COMPLETION, &rec);
	j->id = ID_UNTOUCHED;
	j->rc = litebus_emit(tx, LITEBUS_COMPLETION, &rec, &j->id);
	snprintf(j->msg, sizeof j->msg, "%s", litebus_last_errmsg());
	return 0;
}

/* Contract, litebus_emit(): "After an error nothing was appended"; what
 * commits is what was emitted.  A job that lowers another limit
 * litebus's own INSERT depends on (the SQL length, the number of
 * parameters) and forces it to be prepared again: emit either stores the
 * row whole or fails with nothing appended - and its message does not
 * blame a field or the length limit the job never lowered.  The next job
 * emits normally. */
static void
a_job_that_lowers_another_limit_never_gets_a_wrong_row(void **state)
{
	struct bus_fixture *f = *state;
	const struct {
		int id;
		int value;
		const char *name;
	} limits[] = {
	    {SQLITE_LIMIT_SQL_LENGTH, 10, "SQLITE_LIMIT_SQL_LENGTH"},
	    {SQLITE_LIMIT_VARIABLE_NUMBER, 1, "SQLITE_LIMIT_VARIABLE_NUMBER"},
	    {SQLITE_LIMIT_COLUMN, 1, "SQLITE_LIMIT_COLUMN"},
	};
	int64_t rows = 0;

	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		struct other_limit_job j = {limits[i].id, limits[i].value, -1,
					    "", 0};
		struct refused_job next = {0};

		assert_int_equal(litebus_exec(f->bus, other_limit_job_fn, &j),
				 0);
		if (j.rc == LITEBUS_OK) {
			rows++;
			assert_stored(f->path, "completion", j.id,
				      small_subject, sizeof small_subject - 1,
				      small_payload, sizeof small_payload - 1);
		} else {
			assert_true(j.rc < 0);
			assert_int_equal(j.id, ID_UNTOUCHED);
			if (strstr(j.msg, "larger than") != NULL)
				fail_msg("%s lowered: emit blamed the size of "
					 "the row: \"%s\"",
					 limits[i].name, j.msg);
		}
		assert_int_equal(fx_count_rows(f->path, "completion"), rows);

		/* The next job: limits are back, emit works. */
		next.channel = LITEBUS_COMPLETION;
		next.limit = -1;
		small_record(LITEBUS_COMPLETION, &next.big);
		assert_int_equal(litebus_exec(f->bus, refused_job_fn, &next),
				 0);
		assert_int_equal(next.big_rc, LITEBUS_OK);
		rows++;
		assert_int_equal(fx_count_rows(f->path, "completion"), rows);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) FX_TEST_WITH(fn, bus_with_a_custom_channel)
	    T(a_subject_over_a_lowered_limit_is_refused_by_name_and_the_job_goes_on),
	    T(a_payload_over_a_lowered_limit_is_refused_by_name_and_the_job_goes_on),
	    T(an_event_type_over_a_lowered_limit_is_refused_by_name_on_a_custom_channel),
	    T(an_event_type_over_a_lowered_limit_is_refused_by_name_on_signal_delivery),
	    T(a_namespace_over_a_lowered_limit_is_refused_by_name_and_the_job_goes_on),
	    T(an_instance_tag_over_a_lowered_limit_is_refused_by_name_and_the_job_goes_on),
	    T(an_in_memory_bus_refuses_a_payload_over_a_lowered_limit_the_same_way),
	    T(each_field_one_byte_over_the_limit_is_refused_by_name),
	    T(each_field_exactly_at_the_limit_is_refused_as_the_row_around_it),
	    T(a_row_exactly_at_the_limit_is_stored_whole_and_one_byte_more_is_refused),
	    T(a_row_over_the_limit_of_fields_under_it_is_refused_and_nothing_appended),
	    T(lengths_over_the_default_limit_are_refused_before_the_bytes_are_read),
	    T(a_job_that_returns_etoobig_fails_with_it_and_its_message),
	    T(the_next_job_sees_the_original_length_limit_again),
	    T(a_failing_job_that_leaves_the_limit_lowered_commits_nothing_and_the_limit_is_back),
	    T(a_job_in_the_same_batch_sees_the_original_length_limit),
	    T(subscribers_and_readers_see_the_subject_that_was_emitted),
	    T(an_event_emitted_before_the_job_lowers_the_limit_is_published_whole),
	    T(a_job_that_lowers_another_limit_never_gets_a_wrong_row),
#undef T
	};

	return cmocka_run_group_tests_name("emit_limits", tests, NULL, NULL);
}
