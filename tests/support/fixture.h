/* SPDX-License-Identifier: MIT */
/*
 * fixture.h - the shared test harness: a bus on a fresh temporary
 * database, the registration macros, the one "emit N events" job, the
 * library's clocks, start barriers, and a plain SQLite connection beside
 * the bus.
 *
 * Nothing in the tests synchronizes by sleeping: threads start on a
 * barrier and every wait has a generous deadline and a message.
 */
#ifndef LB_TEST_FIXTURE_H
#define LB_TEST_FIXTURE_H

#include "litebus.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A generous deadline for anything that should happen "soon". */
#define FX_WAIT_MS 10000

/* What a test job returns to fail on purpose (the bus rolls it back and
 * hands the value to the caller); no litebus status has this value. */
#define JOB_FAILED (-1000)

struct bus_fixture {
	char dir[256];	/* temporary directory, removed at teardown */
	char path[300]; /* dir/test.db */
	litebus *bus;
	litebus_options opts;
};

/* cmocka setups: a bus on dir/test.db with 8-slot rings, or default
 * rings; and the teardown that closes it and removes the directory. */
int bus_with_tiny_rings(void **state);
int bus_with_default_rings(void **state);
int bus_teardown(void **state);

/* A fresh temporary directory only (no bus); teardown removes it. */
int tmpdir_setup(void **state);

/* Registration in a cmocka group: the test with one of the setups above
 * (or a test program's own setup) and bus_teardown. */
#define FX_TEST_TINY(fn)                                                       \
	cmocka_unit_test_setup_teardown(fn, bus_with_tiny_rings, bus_teardown)
#define FX_TEST_DEFAULT(fn)                                                    \
	cmocka_unit_test_setup_teardown(fn, bus_with_default_rings,          \
					bus_teardown)
#define FX_TEST_TMPDIR(fn)                                                     \
	cmocka_unit_test_setup_teardown(fn, tmpdir_setup, bus_teardown)
#define FX_TEST_WITH(fn, setup)                                                \
	cmocka_unit_test_setup_teardown(fn, setup, bus_teardown)

/* An in-memory bus (opts.path NULL) with default options. */
int bus_in_memory(void **state);

/* Make a temporary directory into f->dir and set f->path. */
void fx_make_dir(struct bus_fixture *f);
/* Remove f->dir and everything in it. */
void fx_remove_dir(struct bus_fixture *f);
/* Open (or reopen) f->bus on f->path with f->opts. */
void fx_open(struct bus_fixture *f);

/* Default options with 8-slot rings (as bus_with_tiny_rings). */
void fx_options_tiny(litebus_options *o);
/* Open a bus on `path` (NULL: in memory) with `base` options (NULL:
 * fx_options_tiny) and return litebus_open's status; fails no test, so a
 * forked child may call it. */
int fx_open_at(const char *path, const litebus_options *base,
	       litebus **out);
/* The same, failing the test with the error if the bus does not open. */
litebus *fx_open_path(const char *path, const litebus_options *base);

/*
 * FX_TSAN_ALLOW_FORK() defines __tsan_default_options() to return
 * "die_after_fork=0" in a ThreadSanitizer build (and nothing otherwise):
 * a program whose forked children start litebus threads puts it once at
 * file scope.  It is a macro, not part of fixture.c, because the hook
 * may be defined only once per program and must not change the programs
 * that do not fork.  FX_TSAN is defined in a ThreadSanitizer build.
 */
#if defined(__SANITIZE_THREAD__)
#define FX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FX_TSAN 1
#endif
#endif
#ifdef FX_TSAN
#define FX_TSAN_ALLOW_FORK()                                                   \
	const char *__tsan_default_options(void);                              \
	const char *__tsan_default_options(void)                               \
	{                                                                      \
		return "die_after_fork=0";                                     \
	}                                                                      \
	struct fx_tsan_allow_fork_semicolon
#else
#define FX_TSAN_ALLOW_FORK() struct fx_tsan_allow_fork_semicolon
#endif

/*
 * The "emit N events" job.  fx_emit_job(tx, e) emits e->count events on
 * e->channel; an emit error ends the job with that status.  It returns
 * JOB_FAILED if e->fail (the bus rolls the job back, so the ids written
 * to e->ids[] die with it), else 0.  fx_emit_job(tx, NULL) emits one
 * "success" event on LITEBUS_COMPLETION.  The job writes nothing but
 * e->ids[], so one struct with ids == NULL may serve many jobs at once.
 */
struct fx_emit {
	int channel;		/* a built-in or custom channel id */
	int count;		/* events in the job; 0 emits one */
	const char *event_type; /* NULL: fx_event_type(channel) */
	const char *subject;	/* NUL-terminated; NULL: none */
	const char *ns;		/* namespace; NULL: none */
	const void *payload;	/* NULL: none */
	size_t payload_len;
	int64_t partition_key; /* of every event (see numbered) */
	/* Event i gets partition_key k = partition_key + i, namespace
	 * "ns<k % 2>" and the int k as payload (ns and payload are unused). */
	bool numbered;
	int64_t *ids; /* NULL, or room for count event_ids */
	bool fail;    /* return JOB_FAILED after emitting */
};
int fx_emit_job(litebus_tx *tx, void *arg);
/* One "success" event on LITEBUS_COMPLETION; its event_id goes to
 * *(int64_t *)arg unless arg is NULL. */
int fx_emit_one_job(litebus_tx *tx, void *arg);

/* A job that does nothing and returns 0. */
int fx_noop_job(litebus_tx *tx, void *arg);
/* A job that runs `arg` (a NUL-terminated SQL string) on litebus_tx_db():
 * 0, or JOB_FAILED if sqlite3_exec failed. */
int fx_sql_job(litebus_tx *tx, void *sql);
/* Run `sql` as one job (litebus_exec with fx_sql_job); its status. */
int fx_exec_sql(litebus *bus, const char *sql);
/* A job that holds the writer: it waits twice on the fx_barrier `arg`
 * (of 2), so the test knows the writer is inside the job after its first
 * wait and lets the job return with its second; returns 0. */
int fx_block_job(litebus_tx *tx, void *arg);

/* A thread that runs one litebus_exec: start fx_exec_main(&x) with
 * pthread_create; x.rc holds exec's result once the thread is joined. */
struct fx_exec {
	litebus *bus;
	litebus_job_fn fn;
	void *arg;
	int rc;
};
void *fx_exec_main(void *arg);

/* A thread that runs one litebus_close: c.rc holds its result once the
 * thread is joined. */
struct fx_closer {
	litebus *bus;
	int rc;
};
void *fx_closer_main(void *arg);

/* Exec fx_emit_job(e); the job must return 0 or the test fails with the
 * status and the bus's message. */
void fx_commit(litebus *bus, struct fx_emit *e);
/* One event on `channel` in a job of its own; returns its event_id. */
int64_t fx_commit_one(litebus *bus, int channel);

/* Commit `count` numbered events (subject "subject", partition_key = i,
 * namespace "ns<i%2>") on `channel`, one job each, storing their ids in
 * ids[] if not NULL.  Event type is fx_event_type(channel). */
void commit_events(litebus *bus, int channel, int count, int64_t *ids);

/* The same events in one job (one transaction). */
void commit_batch(litebus *bus, int channel, int count, int64_t *ids);

/* A valid event type for a built-in or custom channel. */
const char *fx_event_type(int channel);

/* Size of the file at `path` in bytes; 0 if there is none. */
int64_t fx_file_len(const char *path);

/* Number of rows in the channel's outbox table, read through a separate
 * connection. */
int64_t fx_count_rows(const char *path, const char *channel_name);

/* The event_ids of the channel's outbox table in order, read through a
 * read-only connection of its own, into ids[]; the count.  Fails the test
 * if there are more than cap. */
size_t fx_outbox_ids(const char *path, const char *channel_name,
		     int64_t *ids, size_t cap);

/* Does `msg` contain `n` as a whole decimal number? */
bool fx_msg_has_number(const char *msg, unsigned long long n);

/* Is `fd` readable within timeout_ms (0 polls)?  Fails the test if poll()
 * fails, so only for the test's own thread. */
bool fx_fd_readable(int fd, int timeout_ms);
/* Wait until `fd` is readable or wait_ms pass, level-triggered: through
 * the epoll instance `ep` (which watches fd for EPOLLIN) if ep >= 0, else
 * with poll().  False on an error too: any thread may call it. */
bool fx_fd_wait(int fd, int ep, int wait_ms);
/* A new epoll instance watching `fd` for EPOLLIN (level-triggered), or
 * -1 on an error; the caller closes it. */
int fx_epoll_watch(int fd);

/* The writer's side of one record on an internal channel (channel.h):
 * publish a zeroed record whose event_id follows the last published. */
struct lb_channel;
void fx_channel_publish_one(struct lb_channel *ch);

/* The library's clocks (lib/wait.h; the one place tests include it).
 * fx_now_ms and fx_mono_ns: monotonic; fx_wall_ms: the wall clock that
 * committed_at_ms comes from; fx_realtime_in(ms): an absolute
 * CLOCK_REALTIME time ms from now, for pthread and semaphore timedwaits. */
uint64_t fx_now_ms(void);
uint64_t fx_mono_ns(void);
int64_t fx_wall_ms(void);
struct timespec fx_realtime_in(int ms);

/* Open a reader (fails the test with the error if it cannot). */
litebus_reader *fx_reader_open(litebus *bus, int channel, int64_t after,
			       const litebus_filter *filter);
/* The reader's next row must arrive within FX_WAIT_MS and carry `id`. */
void fx_expect_row(litebus_reader *r, int64_t id);
/* Nothing more is waiting: next(0) returns TIMEOUT. */
void fx_expect_no_row(litebus_reader *r);

/* A reusable start barrier. */
struct fx_barrier {
	pthread_barrier_t b;
};
void fx_barrier_init(struct fx_barrier *b, unsigned count);
void fx_barrier_wait(struct fx_barrier *b);
void fx_barrier_destroy(struct fx_barrier *b);

/*
 * A plain SQLite connection beside the bus (another process's view).
 * Each helper fails the test with SQLite's message on an error.
 * fx_sql_open opens `path` with `flags` (SQLITE_OPEN_*) and a busy
 * timeout of FX_WAIT_MS (the bus's writer or checkpointer may hold a lock
 * for a moment); fx_sql_run runs `sql`; fx_sql_int returns the single
 * integer `sql` selects.  The _at variants open `path` (read-write,
 * created if missing) in a connection of their own and close it afterwards
 * (as the last connection, it checkpoints and removes a WAL).
 */
sqlite3 *fx_sql_open(const char *path, int flags);
void fx_sql_run(sqlite3 *db, const char *sql);
int64_t fx_sql_int(sqlite3 *db, const char *sql);
void fx_sql_run_at(const char *path, const char *sql);
int64_t fx_sql_int_at(const char *path, const char *sql);
/* A WAL hook (sqlite3_wal_hook) that counts its calls in *(int *)arg. */
int fx_counting_wal_hook(void *arg, sqlite3 *db, const char *name,
			 int frames);

#endif
