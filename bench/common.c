/* SPDX-License-Identifier: MIT */
/*
 * common.c - clocks, draining consumers, the temporary directory, the row
 * shape, consumer checks and the report of litebus-bench (see bench.h).
 */
#include "bench.h"
#include "wait.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct bench_settings bench_cfg = {false, 3, NULL, 0, {{0}}, {{0}}};

double
bench_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0) {
		fprintf(stderr, "litebus-bench: getrusage: %s\n",
			strerror(errno));
		exit(2);
	}
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ */
/* Clocks                                                              */

/* The library's own clocks (lib/wait.c), so that the benchmark and
 * litebus time events on the same clock. */
uint64_t
bench_now_ns(void)
{
	return lb_mono_ns();
}

int64_t
bench_wall_ms(void)
{
	return lb_wall_ms();
}

void
bench_sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000u),
			      (long)(ns % 1000000000u)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void
bench_sleep_until_ns(uint64_t t_ns)
{
	struct timespec ts = {(time_t)(t_ns / 1000000000u),
			      (long)(t_ns % 1000000000u)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

void
bench_tight_timer_slack(void)
{
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
}

/* ------------------------------------------------------------------ */
/* Draining                                                            */

void
bench_drain_init(struct bench_drain *d)
{
	atomic_init(&d->finished, 0);
	atomic_init(&d->abandon, false);
}

void
bench_drain_finished(struct bench_drain *d)
{
	/* Release pairs with the acquire in bench_drain_wait(); the
	 * increments form a release sequence, so seeing the last one shows
	 * every consumer's writes. */
	atomic_fetch_add_explicit(&d->finished, 1, memory_order_release);
}

bool
bench_drain_abandoned(struct bench_drain *d)
{
	/* Relaxed: only a flag; nothing written before it is read after. */
	return atomic_load_explicit(&d->abandon, memory_order_relaxed);
}

bool
bench_drain_wait(struct bench_drain *d, int n, uint64_t t_ns,
		 uint64_t deadline_ns)
{
	while (atomic_load_explicit(&d->finished, memory_order_acquire) < n) {
		if (bench_now_ns() - t_ns > deadline_ns) {
			atomic_store_explicit(&d->abandon, true,
					      memory_order_relaxed);
			return false;
		}
		bench_sleep_ns(1000000);
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Temporary directory                                                 */

static char bench_dir[512];
static unsigned bench_db_counter;

static const char *
bench_dir_get(void)
{
	const char *tmp;

	if (bench_dir[0] != '\0')
		return bench_dir;
	tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	snprintf(bench_dir, sizeof bench_dir, "%s/litebus-bench-XXXXXX", tmp);
	if (mkdtemp(bench_dir) == NULL) {
		fprintf(stderr, "litebus-bench: mkdtemp %s: %s\n", bench_dir,
			strerror(errno));
		exit(2);
	}
	return bench_dir;
}

void
bench_db_path(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "%s/%s-%u.db", bench_dir_get(), tag,
		 bench_db_counter++);
}

void
bench_db_remove(const char *path)
{
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
	char p[600];

	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", path, suffix[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			fprintf(stderr, "litebus-bench: unlink %s: %s\n", p,
				strerror(errno));
	}
}

void
bench_dir_remove(void)
{
	if (bench_dir[0] == '\0')
		return;
	if (rmdir(bench_dir) != 0)
		fprintf(stderr, "litebus-bench: rmdir %s: %s\n", bench_dir,
			strerror(errno));
	bench_dir[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* Row shape                                                           */

const unsigned char bench_payload[BENCH_PAYLOAD_LEN] = {
    'p',  'a',	'y',  'l',  'o',  'a',	'd',  ':',  0x01, 0x02, 0x03,
    0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
    0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24,
    0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38};

void
bench_subject(unsigned char out[BENCH_SUBJECT_LEN], uint64_t key)
{
	for (int i = BENCH_SUBJECT_LEN - 1; i >= 0; i--) {
		out[i] = (unsigned char)(key & 0xffu);
		key >>= 8;
	}
}

void
bench_record(litebus_record *rec, unsigned char subj[BENCH_SUBJECT_LEN],
	     uint64_t key)
{
	bench_subject(subj, key);
	memset(rec, 0, sizeof *rec);
	rec->partition_key = (int64_t)key;
	rec->subject = subj;
	rec->subject_len = BENCH_SUBJECT_LEN;
	rec->event_type = BENCH_EVENT_TYPE;
	rec->ns = BENCH_NS;
	rec->instance_tag = NULL;
	rec->payload = bench_payload;
	rec->payload_len = BENCH_PAYLOAD_LEN;
	rec->occurred_at_ms = 0; /* now */
}

/* lib/outbox.c, outbox_create_schema() and outbox_create_channel(), for a
 * channel named "bench" (not built in: CHECK(event_type <> '')). */
const char bench_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS litebus_channel("
    "name TEXT PRIMARY KEY, high_water INTEGER NOT NULL DEFAULT 0) "
    "WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS \"litebus_outbox_bench\"("
    "event_id INTEGER PRIMARY KEY, "
    "partition_key INTEGER NOT NULL, "
    "subject BLOB, "
    "event_type TEXT NOT NULL CHECK(event_type <> ''), "
    "namespace TEXT, "
    "instance_tag TEXT, "
    "payload BLOB, "
    "occurred_at_ms INTEGER NOT NULL, "
    "committed_at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS \"litebus_outbox_bench_partition\" "
    "ON \"litebus_outbox_bench\"(partition_key, event_id);"
    "INSERT OR IGNORE INTO litebus_channel(name, high_water) "
    "VALUES('bench', 0);"
    "CREATE TRIGGER IF NOT EXISTS \"litebus_outbox_bench_hw\" "
    "AFTER DELETE ON \"litebus_outbox_bench\" BEGIN "
    "UPDATE litebus_channel SET high_water = OLD.event_id "
    "WHERE name = 'bench' AND high_water < OLD.event_id; END;";

const char bench_row_columns[] =
    "event_id, partition_key, subject, event_type, namespace, instance_tag, "
    "payload, occurred_at_ms, committed_at_ms";

const char bench_insert_sql[] =
    "INSERT INTO \"litebus_outbox_bench\"(partition_key, subject, "
    "event_type, namespace, instance_tag, payload, occurred_at_ms, "
    "committed_at_ms) VALUES(?1, ?2, 'created', 'bench', NULL, ?3, ?4, ?5)";

const char bench_insert_id_sql[] =
    "INSERT INTO \"litebus_outbox_bench\"(event_id, partition_key, subject, "
    "event_type, namespace, instance_tag, payload, occurred_at_ms, "
    "committed_at_ms) VALUES(?6, ?1, ?2, 'created', 'bench', NULL, ?3, ?4, "
    "?5)";

void
bench_sqlite_check(int rc, sqlite3 *db, const char *what)
{
	if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE)
		return;
	fprintf(stderr, "litebus-bench: %s: %s (%d)\n", what,
		db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
	exit(2);
}

sqlite3 *
bench_sqlite_open(const char *path, int durability, bool create_schema)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX,
			     NULL);
	bench_sqlite_check(rc, db, "open");
	sqlite3_busy_timeout(db, 5000);
	bench_sqlite_check(
	    sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), db,
	    "journal_mode=WAL");
	bench_sqlite_check(sqlite3_exec(db,
					durability == LITEBUS_DURABILITY_FULL
					    ? "PRAGMA synchronous=FULL"
					    : "PRAGMA synchronous=NORMAL",
					NULL, NULL, NULL),
			   db, "synchronous");
	if (create_schema)
		bench_sqlite_check(
		    sqlite3_exec(db, bench_schema_sql, NULL, NULL, NULL), db,
		    "schema");
	return db;
}

void
bench_table_summary(const char *path, int64_t *count, int64_t *min_id,
		    int64_t *max_id)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	bench_sqlite_check(rc, db, "open (summary)");
	sqlite3_busy_timeout(db, 5000);
	rc = sqlite3_prepare_v2(db,
				"SELECT count(*), coalesce(min(event_id), 0), "
				"coalesce(max(event_id), 0) FROM "
				"\"litebus_outbox_bench\"",
				-1, &st, NULL);
	bench_sqlite_check(rc, db, "summary");
	rc = sqlite3_step(st);
	bench_sqlite_check(rc, db, "summary");
	*count = sqlite3_column_int64(st, 0);
	*min_id = sqlite3_column_int64(st, 1);
	*max_id = sqlite3_column_int64(st, 2);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* ------------------------------------------------------------------ */
/* litebus                                                             */

void
bench_litebus_check(int rc, const char *what)
{
	if (rc >= 0)
		return;
	fprintf(stderr, "litebus-bench: %s: %s (%s)\n", what,
		litebus_errname(rc), litebus_last_errmsg());
	exit(2);
}

void
bench_bus_options(litebus_options *o, const char *path, int durability,
		  uint32_t ring_capacity)
{
	static const char *const channels[] = {BENCH_CHANNEL, NULL};

	litebus_options_init(o);
	o->path = path;
	o->durability = durability;
	o->ring_capacity = ring_capacity;
	o->channels = channels;
	/* LITEBUS_BENCH_WATCH=off|poll: measure what the watcher costs
	 * (bench/README.md); default: the library's default. */
	{
		const char *w = getenv("LITEBUS_BENCH_WATCH");

		if (w != NULL && strcmp(w, "off") == 0)
			o->watch = LITEBUS_WATCH_OFF;
		else if (w != NULL && strcmp(w, "poll") == 0)
			o->watch = LITEBUS_WATCH_POLL;
	}
}

litebus *
bench_open_bus_opts(const litebus_options *o)
{
	litebus *bus = NULL;

	bench_litebus_check(litebus_open(o, &bus), "litebus_open");
	if (litebus_channel_id(bus, BENCH_CHANNEL) != BENCH_CHANNEL_ID) {
		fprintf(stderr, "litebus-bench: channel %s is not id %d\n",
			BENCH_CHANNEL, BENCH_CHANNEL_ID);
		exit(2);
	}
	return bus;
}

litebus *
bench_open_bus(const char *path, int durability, uint32_t ring_capacity)
{
	litebus_options o;

	bench_bus_options(&o, path, durability, ring_capacity);
	return bench_open_bus_opts(&o);
}

int
bench_emit_job(litebus_tx *tx, void *arg)
{
	unsigned char subject[BENCH_SUBJECT_LEN];
	litebus_record rec;

	bench_record(&rec, subject, (uint64_t)(uintptr_t)arg);
	return litebus_emit(tx, BENCH_CHANNEL_ID, &rec, NULL);
}

/* One job of bench_fill: BENCH_FILL_PER_JOB events from key seq `arg`. */
static int
bench_fill_job(litebus_tx *tx, void *arg)
{
	uint64_t first = (uint64_t)(uintptr_t)arg;
	unsigned char subject[BENCH_SUBJECT_LEN];
	litebus_record rec;

	for (uint64_t i = first; i < first + BENCH_FILL_PER_JOB; i++) {
		int rc;

		bench_record(&rec, subject, BENCH_KEY(0, i));
		rc = litebus_emit(tx, BENCH_CHANNEL_ID, &rec, NULL);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

void
bench_fill(litebus *bus, uint64_t rows)
{
	for (uint64_t i = 0; i < rows; i += BENCH_FILL_PER_JOB)
		bench_litebus_check(
		    litebus_exec(bus, bench_fill_job, (void *)(uintptr_t)i),
		    "filling the outbox");
}

/* ------------------------------------------------------------------ */
/* Consumer checks                                                     */

static void
bench_out_of_memory(void)
{
	fprintf(stderr, "litebus-bench: out of memory\n");
	exit(2);
}

struct oracle *
bench_oracle(uint32_t nprod)
{
	const struct oracle_config cfg = {.channel = BENCH_CHANNEL,
					  .producers = nprod};
	struct oracle *o = oracle_new(&cfg);

	if (o == NULL)
		bench_out_of_memory();
	return o;
}

struct oracle_consumer *
bench_consumer(struct oracle *o, bool is_reader, int i)
{
	struct oracle_consumer *c;
	char name[32];

	snprintf(name, sizeof name, "%s %d",
		 is_reader ? "reader" : "subscriber", i);
	c = is_reader ? oracle_reader_new(o, name)
		      : oracle_subscriber_new(o, name);
	if (c == NULL)
		bench_out_of_memory();
	return c;
}

void
bench_saw(struct oracle_consumer *c, int64_t id, uint64_t key,
	  const unsigned char *subject, size_t subject_len)
{
	unsigned char want[BENCH_SUBJECT_LEN];

	oracle_saw(c, id, key);
	bench_subject(want, key);
	if (subject_len != BENCH_SUBJECT_LEN || subject == NULL ||
	    memcmp(subject, want, BENCH_SUBJECT_LEN) != 0)
		oracle_consumer_fail(c,
				     "event %lld: subject does not match its "
				     "key",
				     (long long)id);
}

/* ------------------------------------------------------------------ */
/* Report                                                              */

#define RES_MAX_KV 12
#define RES_MAX_METRICS 48
#define RES_MAX_CHECKS 12
#define RES_MAX_REPS 32

struct res_metric {
	char name[40];
	int prec;
	int n;
	double v[RES_MAX_REPS];
};

struct res_check_entry {
	char name[40];
	bool pass;
	char why[200];
};

struct bench_result {
	char scenario[24];
	int nkv;
	char key[RES_MAX_KV][24];
	char val[RES_MAX_KV][48];
	int nm;
	struct res_metric m[RES_MAX_METRICS];
	int nc;
	struct res_check_entry c[RES_MAX_CHECKS];
};

static FILE *report_json;
static int report_json_count;
static int report_failed;

void
report_open(void)
{
	if (bench_cfg.json_path == NULL)
		return;
	report_json = fopen(bench_cfg.json_path, "w");
	if (report_json == NULL) {
		fprintf(stderr, "litebus-bench: %s: %s\n", bench_cfg.json_path,
			strerror(errno));
		exit(2);
	}
	fputs("[\n", report_json);
}

int
report_close(void)
{
	if (report_json != NULL) {
		fputs("\n]\n", report_json);
		fclose(report_json);
		report_json = NULL;
	}
	return report_failed;
}

struct bench_result *
res_new(const char *scenario)
{
	struct bench_result *r = calloc(1, sizeof *r);

	if (r == NULL) {
		fprintf(stderr, "litebus-bench: out of memory\n");
		exit(2);
	}
	snprintf(r->scenario, sizeof r->scenario, "%s", scenario);
	return r;
}

void
res_cfg(struct bench_result *r, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (r->nkv >= RES_MAX_KV)
		return;
	snprintf(r->key[r->nkv], sizeof r->key[0], "%s", key);
	va_start(ap, fmt);
	vsnprintf(r->val[r->nkv], sizeof r->val[0], fmt, ap);
	va_end(ap);
	r->nkv++;
}

void
res_val(struct bench_result *r, const char *name, int prec, double v)
{
	struct res_metric *m = NULL;

	for (int i = 0; i < r->nm; i++)
		if (strcmp(r->m[i].name, name) == 0)
			m = &r->m[i];
	if (m == NULL) {
		if (r->nm >= RES_MAX_METRICS)
			return;
		m = &r->m[r->nm++];
		snprintf(m->name, sizeof m->name, "%s", name);
		m->prec = prec;
	}
	if (m->n < RES_MAX_REPS)
		m->v[m->n++] = v;
}

void
res_ratio(struct bench_result *r, const char *name, int prec, double a,
	  double b)
{
	/* Not a number when b == 0: the column stays, the median skips it. */
	res_val(r, name, prec, b != 0 ? a / b : NAN);
}

void
res_check(struct bench_result *r, const char *name, bool pass, const char *fmt,
	  ...)
{
	struct res_check_entry *c = NULL;
	va_list ap;

	for (int i = 0; i < r->nc; i++)
		if (strcmp(r->c[i].name, name) == 0)
			c = &r->c[i];
	if (c == NULL) {
		if (r->nc >= RES_MAX_CHECKS)
			return;
		c = &r->c[r->nc++];
		snprintf(c->name, sizeof c->name, "%s", name);
		c->pass = true;
	}
	if (pass || !c->pass)
		return;
	c->pass = false;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof c->why, fmt, ap);
	va_end(ap);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
bench_median(const double *v, int n)
{
	double s[RES_MAX_REPS];
	int k = 0;

	for (int i = 0; i < n && i < RES_MAX_REPS; i++)
		if (!isnan(v[i]))
			s[k++] = v[i];
	n = k;
	if (n == 0)
		return NAN;
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void
metric_minmax(const struct res_metric *m, double *lo, double *hi)
{
	*lo = *hi = NAN;
	for (int i = 0; i < m->n; i++) {
		if (isnan(m->v[i]))
			continue;
		if (isnan(*lo) || m->v[i] < *lo)
			*lo = m->v[i];
		if (isnan(*hi) || m->v[i] > *hi)
			*hi = m->v[i];
	}
}

/* Is s a JSON number as printed by us (digits, sign, dot, exponent)? */
static bool
is_number(const char *s)
{
	char *end;

	if (s[0] == '\0')
		return false;
	(void)strtod(s, &end);
	return *end == '\0' && strspn(s, "0123456789.-+eE") == strlen(s);
}

static void
json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void
json_number(FILE *f, double v)
{
	if (!isfinite(v))
		fputs("null", f);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.6g", v);
}

static void
res_json(const struct bench_result *r, bool pass)
{
	FILE *f = report_json;

	if (f == NULL)
		return;
	if (report_json_count++ > 0)
		fputs(",\n", f);
	fputs("{\"scenario\":", f);
	json_string(f, r->scenario);
	fputs(",\"config\":{", f);
	for (int i = 0; i < r->nkv; i++) {
		if (i > 0)
			fputc(',', f);
		json_string(f, r->key[i]);
		fputc(':', f);
		if (is_number(r->val[i]))
			fputs(r->val[i], f);
		else
			json_string(f, r->val[i]);
	}
	fprintf(f, "},\"reps\":%d,\"metrics\":{", bench_cfg.reps);
	for (int i = 0; i < r->nm; i++) {
		const struct res_metric *m = &r->m[i];
		double lo, hi;

		metric_minmax(m, &lo, &hi);
		if (i > 0)
			fputc(',', f);
		json_string(f, m->name);
		fputs(":{\"median\":", f);
		json_number(f, bench_median(m->v, m->n));
		fputs(",\"min\":", f);
		json_number(f, lo);
		fputs(",\"max\":", f);
		json_number(f, hi);
		fputs(",\"values\":[", f);
		for (int k = 0; k < m->n; k++) {
			if (k > 0)
				fputc(',', f);
			json_number(f, m->v[k]);
		}
		fputs("]}", f);
	}
	fputs("},\"checks\":{", f);
	for (int i = 0; i < r->nc; i++) {
		if (i > 0)
			fputc(',', f);
		json_string(f, r->c[i].name);
		fputc(':', f);
		json_string(f, r->c[i].pass ? "PASS" : "FAIL");
	}
	fputs("},\"failures\":[", f);
	for (int i = 0, k = 0; i < r->nc; i++) {
		char buf[260];
		if (r->c[i].pass)
			continue;
		snprintf(buf, sizeof buf, "%s: %s", r->c[i].name, r->c[i].why);
		if (k++ > 0)
			fputc(',', f);
		json_string(f, buf);
	}
	fputs("],\"check\":", f);
	json_string(f, pass ? "PASS" : "FAIL");
	fputc('}', f);
	fflush(f);
}

bool
res_selected(const struct bench_result *r)
{
	for (int i = 0; i < r->nkv; i++) {
		bool keyed = false, match = false;

		for (int k = 0; k < bench_cfg.nonly; k++) {
			if (strcmp(bench_cfg.only_key[k], r->key[i]) != 0)
				continue;
			keyed = true;
			match = match ||
				strcmp(bench_cfg.only_val[k], r->val[i]) == 0;
		}
		if (keyed && !match)
			return false;
	}
	return true;
}

void
res_emit(struct bench_result *r)
{
	bool pass = true;

	if (!res_selected(r)) {
		free(r);
		return;
	}

	for (int i = 0; i < r->nc; i++)
		pass = pass && r->c[i].pass;
	printf("%s", r->scenario);
	for (int i = 0; i < r->nkv; i++)
		printf(" %s=%s", r->key[i], r->val[i]);
	for (int i = 0; i < r->nm; i++) {
		double med = bench_median(r->m[i].v, r->m[i].n);

		if (isnan(med))
			printf(" %s=-", r->m[i].name);
		else
			printf(" %s=%.*f", r->m[i].name, r->m[i].prec, med);
	}
	printf(" check=%s\n", pass ? "PASS" : "FAIL");
	for (int i = 0; i < r->nc; i++)
		if (!r->c[i].pass)
			printf("#   FAIL %s: %s\n", r->c[i].name, r->c[i].why);
	fflush(stdout);
	res_json(r, pass);
	if (!pass)
		report_failed++;
	free(r);
}

void
res_note(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}
