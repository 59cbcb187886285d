/* SPDX-License-Identifier: MIT */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include "fixture.h"

#include "channel.h" /* fx_channel_publish_one */
#include "wait.h"    /* the library's clocks: include it from here only */

#include <errno.h>
#include <ctype.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

uint64_t
fx_now_ms(void)
{
	return lb_mono_ns() / 1000000u;
}

uint64_t
fx_mono_ns(void)
{
	return lb_mono_ns();
}

int64_t
fx_wall_ms(void)
{
	return lb_wall_ms();
}

struct timespec
fx_realtime_in(int ms)
{
	int64_t at = lb_wall_ms() + ms;
	struct timespec ts;

	ts.tv_sec = (time_t)(at / 1000);
	ts.tv_nsec = (long)(at % 1000) * 1000000L;
	return ts;
}

void
fx_make_dir(struct bus_fixture *f)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof f->dir, "%s/litebus-test-XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/test.db", f->dir);
}

static int
fx_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void
fx_remove_dir(struct bus_fixture *f)
{
	if (f->dir[0] != '\0')
		nftw(f->dir, fx_rm, 16, FTW_DEPTH | FTW_PHYS);
	f->dir[0] = '\0';
}

void
fx_open(struct bus_fixture *f)
{
	f->opts.path = f->path;
	int rc = litebus_open(&f->opts, &f->bus);
	if (rc != LITEBUS_OK)
		fail_msg("litebus_open(%s): %s: %s", f->path,
			 litebus_errname(rc), litebus_last_errmsg());
}

void
fx_options_tiny(litebus_options *o)
{
	litebus_options_init(o);
	o->ring_capacity = 8;
}

int
fx_open_at(const char *path, const litebus_options *base, litebus **out)
{
	litebus_options o;

	if (base != NULL)
		o = *base;
	else
		fx_options_tiny(&o);
	o.path = path;
	return litebus_open(&o, out);
}

litebus *
fx_open_path(const char *path, const litebus_options *base)
{
	litebus *bus = NULL;
	int rc = fx_open_at(path, base, &bus);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_open(%s): %s: %s",
			 path != NULL ? path : "(memory)", litebus_errname(rc),
			 litebus_last_errmsg());
	return bus;
}

static int
fx_setup(void **state, uint32_t ring)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	fx_make_dir(f);
	litebus_options_init(&f->opts);
	f->opts.ring_capacity = ring;
	fx_open(f);
	*state = f;
	return 0;
}

int
bus_with_tiny_rings(void **state)
{
	return fx_setup(state, 8);
}

int
bus_with_default_rings(void **state)
{
	return fx_setup(state, 4096);
}

int
tmpdir_setup(void **state)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	fx_make_dir(f);
	litebus_options_init(&f->opts);
	*state = f;
	return 0;
}

int
bus_in_memory(void **state)
{
	struct bus_fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	litebus_options_init(&f->opts);
	assert_null(f->opts.path);
	assert_int_equal(litebus_open(&f->opts, &f->bus), LITEBUS_OK);
	*state = f;
	return 0;
}

int
bus_teardown(void **state)
{
	struct bus_fixture *f = *state;

	if (f->bus != NULL)
		assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	fx_remove_dir(f);
	free(f);
	return 0;
}

const char *
fx_event_type(int channel)
{
	switch (channel) {
	case LITEBUS_LEASE_HISTORY:
		return "acquired";
	case LITEBUS_COMPLETION:
		return "success";
	case LITEBUS_OPERATOR_EVENT:
		return "replayed";
	default:
		return "event";
	}
}

int
fx_emit_job(litebus_tx *tx, void *arg)
{
	static struct fx_emit one = {.channel = LITEBUS_COMPLETION};
	struct fx_emit *e = arg != NULL ? arg : &one;
	int count = e->count > 0 ? e->count : 1;

	for (int i = 0; i < count; i++) {
		litebus_record rec = {0};
		char ns[24];
		int k = (int)(e->partition_key + i);

		rec.partition_key = e->partition_key;
		rec.event_type = e->event_type != NULL
				     ? e->event_type
				     : fx_event_type(e->channel);
		rec.subject = e->subject;
		rec.subject_len = e->subject != NULL ? strlen(e->subject) : 0;
		rec.ns = e->ns;
		rec.payload = e->payload;
		rec.payload_len = e->payload_len;
		if (e->numbered) {
			snprintf(ns, sizeof ns, "ns%d", k % 2);
			rec.partition_key = k;
			rec.ns = ns;
			rec.payload = &k;
			rec.payload_len = sizeof k;
		}
		int rc = litebus_emit(tx, e->channel, &rec,
				      e->ids != NULL ? &e->ids[i] : NULL);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return e->fail ? JOB_FAILED : 0;
}

int
fx_emit_one_job(litebus_tx *tx, void *arg)
{
	struct fx_emit e = {.channel = LITEBUS_COMPLETION, .ids = arg};

	return fx_emit_job(tx, &e);
}

int
fx_noop_job(litebus_tx *tx, void *arg)
{
	(void)tx;
	(void)arg;
	return 0;
}

int
fx_block_job(litebus_tx *tx, void *arg)
{
	struct fx_barrier *b = arg;

	(void)tx;
	fx_barrier_wait(b); /* the writer is busy: the test queues a batch */
	fx_barrier_wait(b);
	return 0;
}

void *
fx_exec_main(void *arg)
{
	struct fx_exec *x = arg;

	x->rc = litebus_exec(x->bus, x->fn, x->arg);
	return NULL;
}

void *
fx_closer_main(void *arg)
{
	struct fx_closer *c = arg;

	c->rc = litebus_close(c->bus);
	return NULL;
}

void
fx_commit(litebus *bus, struct fx_emit *e)
{
	int rc = litebus_exec(bus, fx_emit_job, e);

	if (rc != 0)
		fail_msg("exec of %d event(s) on channel %d: %d (%s) %s",
			 e->count > 0 ? e->count : 1, e->channel, rc,
			 litebus_errname(rc), litebus_last_errmsg());
}

int64_t
fx_commit_one(litebus *bus, int channel)
{
	int64_t id = 0;
	struct fx_emit e = {.channel = channel, .ids = &id};

	fx_commit(bus, &e);
	return id;
}

void
commit_events(litebus *bus, int channel, int count, int64_t *ids)
{
	for (int i = 0; i < count; i++) {
		struct fx_emit e = {.channel = channel,
				    .subject = "subject",
				    .partition_key = i,
				    .numbered = true,
				    .ids = ids != NULL ? &ids[i] : NULL};
		int rc = litebus_exec(bus, fx_emit_job, &e);
		if (rc != 0)
			fail_msg("commit_events: exec: %d %s", rc,
				 litebus_last_errmsg());
	}
}

void
commit_batch(litebus *bus, int channel, int count, int64_t *ids)
{
	struct fx_emit e = {.channel = channel,
			    .count = count,
			    .subject = "subject",
			    .numbered = true,
			    .ids = ids};
	int rc = litebus_exec(bus, fx_emit_job, &e);

	if (rc != 0)
		fail_msg("commit_batch: exec: %d %s", rc,
			 litebus_last_errmsg());
}

int64_t
fx_file_len(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0) {
		assert_int_equal(errno, ENOENT);
		return 0;
	}
	return (int64_t)sb.st_size;
}

int64_t
fx_count_rows(const char *path, const char *channel_name)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[200];
	int64_t n = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM litebus_outbox_%s",
		 channel_name);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

size_t
fx_outbox_ids(const char *path, const char *channel_name, int64_t *ids,
	      size_t cap)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[200];
	size_t n = 0;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	snprintf(sql, sizeof sql,
		 "SELECT event_id FROM litebus_outbox_%s ORDER BY event_id",
		 channel_name);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		assert_true(n < cap);
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

bool
fx_msg_has_number(const char *msg, unsigned long long n)
{
	char digits[32];
	size_t len;

	snprintf(digits, sizeof digits, "%llu", n);
	len = strlen(digits);
	for (const char *p = strstr(msg, digits); p != NULL;
	     p = strstr(p + 1, digits)) {
		bool starts = p == msg || !isdigit((unsigned char)p[-1]);
		if (starts && !isdigit((unsigned char)p[len]))
			return true;
	}
	return false;
}

bool
fx_fd_readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int n = poll(&p, 1, timeout_ms);

	assert_true(n >= 0);
	return n == 1 && (p.revents & POLLIN) != 0;
}

bool
fx_fd_wait(int fd, int ep, int wait_ms)
{
	if (ep < 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		return poll(&p, 1, wait_ms) == 1 && (p.revents & POLLIN) != 0;
	} else {
		struct epoll_event ev;

		return epoll_wait(ep, &ev, 1, wait_ms) == 1 &&
		       (ev.events & EPOLLIN) != 0;
	}
}

int
fx_epoll_watch(int fd)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		close(ep);
		ep = -1;
	}
	return ep;
}

void
fx_channel_publish_one(struct lb_channel *ch)
{
	struct lb_rec rec;

	memset(&rec, 0, sizeof rec);
	rec.event_id = lb_channel_published_id(ch) + 1;
	lb_channel_publish(ch, &rec);
}

void
fx_barrier_init(struct fx_barrier *b, unsigned count)
{
	pthread_barrier_init(&b->b, NULL, count);
}

void
fx_barrier_wait(struct fx_barrier *b)
{
	pthread_barrier_wait(&b->b);
}

void
fx_barrier_destroy(struct fx_barrier *b)
{
	pthread_barrier_destroy(&b->b);
}

litebus_reader *
fx_reader_open(litebus *bus, int channel, int64_t after,
	       const litebus_filter *filter)
{
	litebus_reader *r = NULL;
	int rc = litebus_reader_open(bus, channel, after, filter, &r);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_reader_open: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
	return r;
}

void
fx_expect_row(litebus_reader *r, int64_t id)
{
	litebus_row row;
	int rc = litebus_reader_next(r, &row, FX_WAIT_MS);

	if (rc != LITEBUS_OK)
		fail_msg("expected row %lld, got %s%s%s", (long long)id,
			 litebus_errname(rc), rc < 0 ? ": " : "",
			 rc < 0 ? litebus_last_errmsg() : "");
	if (row.event_id != id)
		fail_msg("expected row %lld, got row %lld", (long long)id,
			 (long long)row.event_id);
}

void
fx_expect_no_row(litebus_reader *r)
{
	litebus_row row;
	int rc = litebus_reader_next(r, &row, 0);

	if (rc != LITEBUS_TIMEOUT)
		fail_msg("expected no row (TIMEOUT), got %s (row %lld)",
			 litebus_errname(rc),
			 rc == LITEBUS_OK ? (long long)row.event_id : -1LL);
}

sqlite3 *
fx_sql_open(const char *path, int flags)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK)
		fail_msg("opening %s: %s", path, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_busy_timeout(db, FX_WAIT_MS), SQLITE_OK);
	return db;
}

void
fx_sql_run(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		char msg[300];
		snprintf(msg, sizeof msg, "%s", err != NULL ? err : "?");
		sqlite3_free(err);
		fail_msg("%s: %s", sql, msg);
	}
}

int64_t
fx_sql_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) != SQLITE_ROW)
		fail_msg("%s: no row: %s", sql, sqlite3_errmsg(db));
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

void
fx_sql_run_at(const char *path, const char *sql)
{
	sqlite3 *db = fx_sql_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);

	fx_sql_run(db, sql);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

int64_t
fx_sql_int_at(const char *path, const char *sql)
{
	sqlite3 *db = fx_sql_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	int64_t v = fx_sql_int(db, sql);

	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return v;
}

int
fx_counting_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	(void)frames;
	(*(int *)arg)++;
	return SQLITE_OK;
}

int
fx_sql_job(litebus_tx *tx, void *sql)
{
	return sqlite3_exec(litebus_tx_db(tx), sql, NULL, NULL, NULL) ==
		       SQLITE_OK
		   ? 0
		   : JOB_FAILED;
}

int
fx_exec_sql(litebus *bus, const char *sql)
{
	/* fx_sql_job only reads the string. */
	return litebus_exec(bus, fx_sql_job, (void *)(uintptr_t)sql);
}
