/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what the scenarios of litebus-bench share: clocks, the
 * temporary directory, the one row shape every contender writes, the
 * consumers' checks (through tests/support/oracle.h), and the report (one
 * human line and one JSON object per configuration).
 *
 * Threads: the report and the temporary directory belong to the main
 * thread; clocks may be used from any thread, and a consumer's checks by
 * its own thread (see oracle.h).
 */
#ifndef BENCH_H
#define BENCH_H

#include "litebus.h"
#include "oracle.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Run-wide settings (set by main, read-only afterwards)               */

struct bench_settings {
	bool quick;	       /* --quick: every scenario briefly, for CI */
	int reps;	       /* repetitions per configuration (medians) */
	const char *json_path; /* --json FILE, or NULL */
	/* --only K=V[,K=V...]: run only configurations whose K, where they
	 * have one, equals V (several --only: any may match a key).  For
	 * measuring one line again without the rest of its scenario. */
	int nonly;
	char only_key[16][24];
	char only_val[16][48];
};
extern struct bench_settings bench_cfg;

/* ------------------------------------------------------------------ */
/* CPU time                                                            */

/* This process's CPU time so far (user + system, every thread), in
 * seconds (getrusage RUSAGE_SELF). */
double bench_cpu_s(void);

/* ------------------------------------------------------------------ */
/* Clocks                                                              */

uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC */
void bench_sleep_ns(uint64_t ns);
/* Sleep until the monotonic time t_ns (absolute). */
void bench_sleep_until_ns(uint64_t t_ns);
/* Lower this thread's timer slack to 1 ns (Linux), so that timed sleeps
 * in the latency scenario end on time.  Best effort. */
void bench_tight_timer_slack(void);
static inline double
bench_secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* ------------------------------------------------------------------ */
/* Draining: consumers finish after the last commit or publish         */

/*
 * Consumer threads count themselves out as they return; the main thread
 * waits for all of them, but not forever: one that has not finished
 * deadline_ns after the last commit has fallen behind for good (or
 * hangs), and the run FAILs instead of hanging.
 */
struct bench_drain {
	_Atomic int finished; /* consumer threads that are done */
	_Atomic bool abandon; /* past the deadline: consumers give up */
};

void bench_drain_init(struct bench_drain *d);
/* A consumer thread, last: done (release: what it wrote is visible to the
 * waiter). */
void bench_drain_finished(struct bench_drain *d);
/* A consumer thread, between calls: has the waiter given up on it? */
bool bench_drain_abandoned(struct bench_drain *d);
/* Wait until n consumers are done, polling every millisecond, at most
 * deadline_ns after t_ns.  True if they all are (acquire); false past the
 * deadline, after telling them to give up (they still return: join
 * them). */
bool bench_drain_wait(struct bench_drain *d, int n, uint64_t t_ns,
		      uint64_t deadline_ns);

/* ------------------------------------------------------------------ */
/* Temporary directory: created on first use, removed at exit          */

/* A fresh database path "<dir>/<tag>-<n>.db" (nothing is created). */
void bench_db_path(char *buf, size_t len, const char *tag);
/* Remove a database and its -wal/-shm/-journal files. */
void bench_db_remove(const char *path);
/* Remove the directory (it must be empty of our files). */
void bench_dir_remove(void);

/* ------------------------------------------------------------------ */
/* The row every contender writes (litebus, the naive bus, ceilings)   */

/* litebus's extra channel; its table is "litebus_outbox_bench". */
#define BENCH_CHANNEL "bench"
#define BENCH_TABLE "litebus_outbox_bench"
#define BENCH_EVENT_TYPE "created"
#define BENCH_NS "bench"
#define BENCH_SUBJECT_LEN 8
#define BENCH_PAYLOAD_LEN 64
#define BENCH_MAXP 64

/* An event's key: which producer sent it and its sequence number there.
 * It travels as the partition_key, and big-endian as the subject (so a
 * raw subscriber sees it in subject_prefix too). */
#define BENCH_KEY(p, seq) ORACLE_KEY(p, seq)
#define BENCH_KEY_SEQ(k) ORACLE_KEY_SEQ(k)

extern const unsigned char bench_payload[BENCH_PAYLOAD_LEN];
void bench_subject(unsigned char out[BENCH_SUBJECT_LEN], uint64_t key);
/* Fill *rec for key; subj must live as long as rec is used. */
void bench_record(litebus_record *rec, unsigned char subj[BENCH_SUBJECT_LEN],
		  uint64_t key);

/* The outbox table and index exactly as lib/outbox.c creates them for a
 * channel named "bench" (plus the high-water table and trigger), and the
 * INSERT the naive bus and the ceiling run: ?1 partition_key, ?2 subject,
 * ?3 payload, ?4 occurred_at_ms, ?5 committed_at_ms.  The naive bus lets
 * SQLite pick event_id (rowid); the ceiling binds ?6 = event_id. */
extern const char bench_schema_sql[];
extern const char bench_insert_sql[];
extern const char bench_insert_id_sql[];
extern const char bench_row_columns[];

/* Open a connection on path in WAL with synchronous NORMAL/FULL per
 * durability; exits the program on failure (a benchmark cannot go on). */
struct sqlite3;
struct sqlite3 *bench_sqlite_open(const char *path, int durability,
				  bool create_schema);
/* Exit with a message if rc is not OK/ROW/DONE. */
void bench_sqlite_check(int rc, struct sqlite3 *db, const char *what);
/* count(*), min and max event_id of the bench table (fresh connection). */
void bench_table_summary(const char *path, int64_t *count, int64_t *min_id,
			 int64_t *max_id);

int64_t bench_wall_ms(void);

/* litebus's channel "bench": the first extra channel. */
#define BENCH_CHANNEL_ID LITEBUS_BUILTIN_CHANNELS
/* Open a bus on path (NULL: in memory) with the "bench" channel; exits
 * on failure. */
litebus *bench_open_bus(const char *path, int durability,
			uint32_t ring_capacity);
/* The options bench_open_bus uses (channel "bench" only), to change some
 * before bench_open_bus_opts (which exits on failure, like it). */
void bench_bus_options(litebus_options *o, const char *path, int durability,
		       uint32_t ring_capacity);
litebus *bench_open_bus_opts(const litebus_options *o);
/* Commit `rows` (a multiple of BENCH_FILL_PER_JOB) events on "bench" in
 * jobs of BENCH_FILL_PER_JOB, keys BENCH_KEY(0, 0..rows-1); exits on
 * failure. */
#define BENCH_FILL_PER_JOB 1000u
void bench_fill(litebus *bus, uint64_t rows);
/* A job that emits one event: arg is (void *)(uintptr_t)key. */
int bench_emit_job(litebus_tx *tx, void *arg);
/* Exit with litebus's message for a failed call. */
void bench_litebus_check(int rc, const char *what);

/* ------------------------------------------------------------------ */
/* Consumer checks (tests/support/oracle.h)                            */

/*
 * Events carry ids 1, 2, 3, ... (a fresh database or ring) and keys
 * BENCH_KEY(p, seq) with seq = 0, 1, 2, ... per producer.  After a run,
 * oracle_commit_dense(o, 1, N, committed) says what committed, and
 * oracle_check() whether a consumer got it: a reader every id in order
 * and each producer's events in submission order, a raw subscriber the
 * same but for what each LAGGED skipped, exactly.
 */
/* An oracle for one run of nprod producers; exits if memory runs out. */
struct oracle *bench_oracle(uint32_t nprod);
/* Its reader or subscriber number i ("reader 3"); exits likewise. */
struct oracle_consumer *bench_consumer(struct oracle *o, bool is_reader, int i);
/* One delivered event, and its subject checked against its key; subject
 * is the full subject (rows) or the prefix (ring events), subject_len
 * the full length. */
void bench_saw(struct oracle_consumer *c, int64_t id, uint64_t key,
	       const unsigned char *subject, size_t subject_len);

/* ------------------------------------------------------------------ */
/* Report                                                              */

struct bench_result;

/* A configuration's result; config keys in the order given. */
struct bench_result *res_new(const char *scenario);
void res_cfg(struct bench_result *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One repetition's value of a metric (call once per repetition).  prec is
 * the number of decimals in the human table. */
void res_val(struct bench_result *r, const char *name, int prec, double v);
/* A ratio a/b as a metric, skipped when b == 0. */
void res_ratio(struct bench_result *r, const char *name, int prec, double a,
	       double b);
/* A check; the configuration FAILs if any call for it failed. */
void res_check(struct bench_result *r, const char *name, bool pass,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Does r's configuration pass the --only filters?  A scenario asks before
 * running a configuration, after its res_cfg calls. */
bool res_selected(const struct bench_result *r);
/* Print the human line (medians) and the JSON object; frees r.  An
 * unselected r (res_selected) is only freed. */
void res_emit(struct bench_result *r);
/* A comment line in the human table ("# ..."). */
void res_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void report_open(void);
/* Returns the number of configurations that FAILed. */
int report_close(void);

/* Median of the n values that are numbers; NAN if none is. */
double bench_median(const double *v, int n);

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */

void scenario_ring(void);
void scenario_commit(void);
void scenario_latency(void);
void scenario_catchup(void);
void scenario_fanout(void);
void scenario_retention(void);
void scenario_consumer(void);
void scenario_prune(void);
void scenario_xproc(void);

#endif
