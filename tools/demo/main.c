/*
 * litebus-demo - a live demonstration of litebus, checked as it runs.
 *
 * Producer threads place "orders".  Each order is one job: it inserts a
 * row into the application's own table `orders` and, in the same
 * transaction, emits events on three built-in channels and on the
 * user-declared channel `audit`.  Every tenth job fails on purpose after
 * emitting, so the bus rolls back its row and its events together.
 * Consumers run meanwhile: a fast reader per channel, one reader that
 * stalls on purpose so that its ring laps it, a subscriber blocking in
 * litebus_recv() and one sleeping in poll() on litebus_sub_fd().
 *
 * At the end the demo closes the bus, lets every consumer drain to
 * LITEBUS_CLOSED, and checks the library's promises against what it saw:
 *   - every reader got exactly the events of the committed jobs of its
 *     channel (as litebus_emit() numbered them), once each, in event_id
 *     order, and nothing of an aborted job;
 *   - every subscriber's received + skipped equals what was published,
 *     and what it received was committed, in order;
 *   - the outbox tables and `orders`, counted through a separate SQLite
 *     connection, hold exactly the committed events and jobs.
 *
 * Exit status: 0 if every check passed, 1 if one failed or something went
 * wrong while running, 2 for a usage or setup error.
 *
 * Threads: main (setup, the progress line, shutdown, the summary), the
 * producers, one thread per consumer, and the bus's writer thread, which
 * runs the jobs and the done-callbacks of submitted jobs.  SIGINT and
 * SIGTERM are blocked in every thread; main takes them with
 * sigtimedwait() between two refreshes of the progress line.
 */
#include "litebus.h"
#include "oracle.h"

#include <sqlite3.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define DEMO_RING_DEFAULT 256u
#define DEMO_SECONDS_DEFAULT 5
#define DEMO_PRODUCERS_DEFAULT 4
#define DEMO_PRODUCERS_MAX 64
#define DEMO_REFRESH_MS 250
/* Consumers wake at least this often, so that a lost wake-up would show
 * as a hang of the watchdog below rather than of the whole demo. */
#define DEMO_WAIT_MS 100
/* How long consumers may take to reach LITEBUS_CLOSED after close. */
#define DEMO_DRAIN_DEADLINE_MS 60000
/* Submitted jobs whose done-callback has not run yet, all producers. */
#define DEMO_INFLIGHT_MAX 64
/* Every DEMO_ABORT_EVERY-th order's job fails after emitting. */
#define DEMO_ABORT_EVERY 10
/* The slow reader stalls this long, once per period, while producers
 * run; it reads at full speed otherwise, and after they stop. */
#define DEMO_STALL_MS 300
#define DEMO_STALL_PERIOD_MS 700
/* A job's own failures: not litebus status codes (see litebus_job_fn). */
#define DEMO_JOB_ABORTED (-1000)
#define DEMO_JOB_SQLERR (-1001)
/* Most events one job emits. */
#define DEMO_EMITS_MAX 5

/* The channels the demo uses, as indexes into demo.chan[]. */
enum { CH_LEASE, CH_COMPLETION, CH_OPERATOR, CH_AUDIT, CH_COUNT };

static const char *const user_channels[] = {"audit", NULL};

struct demo_opts {
	const char *db_path; /* NULL: a fresh temporary directory */
	bool memory;
	bool keep;
	bool full;
	int seconds;
	int producers;
	uint32_t ring;
};

enum consumer_kind { FAST_READER, SLOW_READER, RECV_SUB, POLL_SUB };

struct demo;

struct consumer {
	struct demo *d;
	enum consumer_kind kind;
	int ch;	       /* index into demo.chan[] */
	/* As printed in the summary: "reader <channel> (fast)". */
	char name[sizeof "reader " + LITEBUS_CHANNEL_NAME_MAX + sizeof " (fast)"];
	char label[8]; /* as printed on the progress line */
	/* Open until the consumer's thread ends (it closes them). */
	litebus_reader *reader; /* readers */
	litebus_sub *sub;	/* subscribers */
	pthread_t thread;
	bool started;

	/* The consumer's thread while it runs; main after the join. */
	litebus_reader_stats rstats; /* final counters, readers */
	litebus_sub_stats sstats;    /* final counters, subscribers */
	struct oracle_consumer *oc; /* what it got; owned by the oracle */
	bool failed;		    /* an error ended it early */

	/* Progress, written by the consumer, read by the progress line.
	 * Relaxed: each is a number shown as is; nothing else is published
	 * with it. */
	_Atomic int64_t cursor; /* reader cursor, or last event_id */
	_Atomic uint64_t laps;	/* reader lags, or subscriber LAGGEDs */
};

/* What the tables hold for this run, counted through one connection. */
struct table_counts {
	int64_t rows[CH_COUNT];	   /* outbox rows above the channel's base */
	int64_t aborted[CH_COUNT]; /* of them, rows of aborted jobs */
	int64_t orders;		   /* orders rows of this run */
};

struct demo {
	/* Immutable once the producers and consumers have started. */
	struct demo_opts o;
	litebus *bus;
	char dir[4096];	 /* our temporary directory, or "" */
	char path[4200]; /* the database file, or "" for in-memory */
	int64_t run_id;	 /* orders.run of this run: its start, in ms */
	struct {
		int id; /* the bus's channel id */
		/* A copy: the bus's string dies with the bus. */
		char name[LITEBUS_CHANNEL_NAME_MAX + 1];
		int64_t base; /* published event_id before the run */
	} chan[CH_COUNT];

	/* Relaxed: a flag that only asks threads to stop; nothing is
	 * published with it. */
	_Atomic bool stop;
	/* Relaxed: counters and an order number generator. */
	_Atomic int64_t next_order;
	_Atomic uint64_t jobs_ok, jobs_aborted, errors;

	/* What committed on each channel, for the checks: producer i
	 * records in log i, the writer thread (done-callbacks) in log
	 * o.producers. */
	struct oracle *oracle[CH_COUNT];

	/* `lock` guards inflight and drained; `cond` is signalled when
	 * inflight reaches 0 and when a consumer ends. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned inflight;
	int drained; /* consumer threads that have ended */

	/* `out_lock` serializes terminal output; status_shown says a
	 * progress line without its newline is on the screen. */
	pthread_mutex_t out_lock;
	bool status_shown;

	struct consumer cons[8];
	int ncons, nstarted; /* opened, and with a running thread */
	pthread_t producer[DEMO_PRODUCERS_MAX];
	int nproducers;
};

/* One order: the job's argument, and its results once it completed. */
struct order_job {
	struct demo *d;
	int64_t order_no;
	int producer;
	bool doomed; /* fails on purpose after emitting */
	/* Written by the job on the writer thread; read by whoever sees the
	 * job complete (litebus_exec's return, or the done-callback). */
	size_t nemits;
	struct {
		int ch;
		int64_t id;
	} emits[DEMO_EMITS_MAX];
	char sqlerr[160]; /* SQLite's message, for DEMO_JOB_SQLERR */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static bool
demo_stopping(struct demo *d)
{
	return atomic_load_explicit(&d->stop, memory_order_relaxed);
}

static void
demo_request_stop(struct demo *d)
{
	atomic_store_explicit(&d->stop, true, memory_order_relaxed);
}

/* End the progress line, if one is shown.  Caller holds out_lock. */
static void
demo_end_status_line(struct demo *d)
{
	if (d->status_shown) {
		fputc('\n', stdout);
		fflush(stdout);
		d->status_shown = false;
	}
}

/*
 * Report something that should not have happened: it fails the run and
 * stops the producers.  Any thread.
 */
__attribute__((format(printf, 2, 3))) static void
demo_error(struct demo *d, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add_explicit(&d->errors, 1, memory_order_relaxed);
	demo_request_stop(d);
	pthread_mutex_lock(&d->out_lock);
	demo_end_status_line(d);
	fputs("litebus-demo: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&d->out_lock);
}

/* ------------------------------------------------------------------ */
/* Jobs                                                                */

/* Runs on the writer thread, inside the bus's transaction: creates the
 * application's table if this database does not have it yet. */
static int
setup_job(litebus_tx *tx, void *arg)
{
	struct order_job *j = arg;
	sqlite3 *db = litebus_tx_db(tx);
	int rc;

	rc = sqlite3_exec(db,
			  "CREATE TABLE IF NOT EXISTS orders("
			  "run INTEGER NOT NULL, order_no INTEGER NOT NULL, "
			  "producer INTEGER NOT NULL, item TEXT NOT NULL, "
			  "qty INTEGER NOT NULL, PRIMARY KEY(run, order_no))",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(j->sqlerr, sizeof j->sqlerr, "%s", sqlite3_errmsg(db));
		return DEMO_JOB_SQLERR;
	}
	return 0;
}

static int
order_insert(sqlite3 *db, struct order_job *j)
{
	static const char *const items[] = {"widget", "gadget", "gizmo",
					    "doohickey"};
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db,
				"INSERT INTO orders(run, order_no, producer, "
				"item, qty) VALUES(?1, ?2, ?3, ?4, ?5)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, j->d->run_id);
		sqlite3_bind_int64(st, 2, j->order_no);
		sqlite3_bind_int(st, 3, j->producer);
		sqlite3_bind_text(st, 4, items[j->order_no % 4], -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, 1 + j->order_no % 5);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		snprintf(j->sqlerr, sizeof j->sqlerr, "inserting order: %s",
			 sqlite3_errmsg(db));
		rc = DEMO_JOB_SQLERR;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Emit one event and remember its id.  Returns a litebus status. */
static int
order_emit(litebus_tx *tx, struct order_job *j, int ch, const char *type,
	   litebus_record *rec)
{
	int64_t id;
	int rc;

	assert(j->nemits < DEMO_EMITS_MAX);
	rec->event_type = type;
	rc = litebus_emit(tx, j->d->chan[ch].id, rec, &id);
	if (rc == LITEBUS_OK) {
		j->emits[j->nemits].ch = ch;
		j->emits[j->nemits].id = id;
		j->nemits++;
	}
	return rc;
}

/*
 * The job of one order, on the writer thread.  Returns 0 to commit,
 * DEMO_JOB_ABORTED for a doomed order (after it wrote and emitted
 * everything: the bus rolls all of it back), DEMO_JOB_SQLERR, or the
 * litebus status of a failed emit.
 */
static int
order_job_run(litebus_tx *tx, void *arg)
{
	struct order_job *j = arg;
	char subject[32], payload[96];
	litebus_record rec;
	int rc;

	j->nemits = 0;
	rc = order_insert(litebus_tx_db(tx), j);
	if (rc != SQLITE_OK)
		return rc;
	snprintf(subject, sizeof subject, "order-%" PRId64, j->order_no);
	snprintf(payload, sizeof payload,
		 "{\"order\":%" PRId64 ",\"producer\":%d}", j->order_no,
		 j->producer);
	memset(&rec, 0, sizeof rec);
	/* Events of a doomed order carry a negative key, so any consumer
	 * can tell if one ever escaped its rollback. */
	rec.partition_key = j->doomed ? -j->order_no : j->order_no;
	rec.subject = subject;
	rec.subject_len = strlen(subject);
	rec.payload = payload;
	rec.payload_len = strlen(payload);
	rec.ns = "shop";

	rc = order_emit(tx, j, CH_LEASE, "acquired", &rec);
	if (rc == LITEBUS_OK && j->order_no % 3 == 0)
		rc = order_emit(tx, j, CH_LEASE, "renewed", &rec);
	if (rc == LITEBUS_OK)
		rc = order_emit(tx, j, CH_COMPLETION,
				j->order_no % 7 == 0 ? "failed" : "success",
				&rec);
	if (rc == LITEBUS_OK && j->order_no % 16 == 0)
		rc = order_emit(tx, j, CH_OPERATOR, "priority_changed", &rec);
	if (rc == LITEBUS_OK)
		rc = order_emit(tx, j, CH_AUDIT, "order_placed", &rec);
	if (rc != LITEBUS_OK)
		return rc;
	return j->doomed ? DEMO_JOB_ABORTED : 0;
}

/*
 * Account for a job whose fate is settled: `status` is what litebus_exec
 * returned or what the done-callback received.  A committed job's ids
 * are recorded in the oracles' `log`, the calling thread's.
 * litebus_last_errmsg() must describe `status` (true after litebus_exec
 * and inside a done-callback).  Any thread.
 */
static void
order_finish(struct order_job *j, int status, int log)
{
	struct demo *d = j->d;

	if (status == 0) {
		for (size_t i = 0; i < j->nemits; i++)
			oracle_commit(d->oracle[j->emits[i].ch], log,
				      j->emits[i].id,
				      (uint64_t)j->order_no);
		atomic_fetch_add_explicit(&d->jobs_ok, 1, memory_order_relaxed);
	} else if (status == DEMO_JOB_ABORTED) {
		atomic_fetch_add_explicit(&d->jobs_aborted, 1,
					  memory_order_relaxed);
	} else if (status == DEMO_JOB_SQLERR) {
		demo_error(d, "order %" PRId64 ": %s", j->order_no, j->sqlerr);
	} else {
		demo_error(d, "order %" PRId64 ": %s: %s", j->order_no,
			   litebus_errname(status), litebus_last_errmsg());
	}
}

/* The done-callback of a submitted order, on the writer thread.  Takes
 * ownership of the job (allocated by produce_submit). */
static void
order_job_done(int status, void *arg)
{
	struct order_job *j = arg;
	struct demo *d = j->d;

	order_finish(j, status, d->o.producers); /* the writer's log */
	free(j);
	pthread_mutex_lock(&d->lock);
	if (--d->inflight == 0)
		pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void
order_job_init(struct order_job *j, struct demo *d, int producer,
	       int64_t order_no)
{
	memset(j, 0, sizeof *j);
	j->d = d;
	j->producer = producer;
	j->order_no = order_no;
	j->doomed = order_no % DEMO_ABORT_EVERY == 0;
}

/* ------------------------------------------------------------------ */
/* Producers                                                           */

struct producer_arg {
	struct demo *d;
	int index;
};

static struct producer_arg producer_args[DEMO_PRODUCERS_MAX];

static void
produce_exec(struct demo *d, int producer, int64_t order_no)
{
	struct order_job j;

	order_job_init(&j, d, producer, order_no);
	order_finish(&j, litebus_exec(d->bus, order_job_run, &j), producer);
}

/* Submit an order if fewer than DEMO_INFLIGHT_MAX are in flight.
 * Returns false if it did not (the caller then uses exec). */
static bool
produce_submit(struct demo *d, int producer, int64_t order_no)
{
	struct order_job *j;
	int rc;

	pthread_mutex_lock(&d->lock);
	if (d->inflight >= DEMO_INFLIGHT_MAX) {
		pthread_mutex_unlock(&d->lock);
		return false;
	}
	d->inflight++;
	pthread_mutex_unlock(&d->lock);

	j = malloc(sizeof *j);
	if (j == NULL) {
		demo_error(d, "out of memory allocating a job");
		rc = LITEBUS_ENOMEM;
	} else {
		order_job_init(j, d, producer, order_no);
		/* On success the bus borrows j until order_job_done, which
		 * frees it. */
		rc =
		    litebus_submit(d->bus, order_job_run, j, order_job_done, j);
		if (rc != LITEBUS_OK) {
			demo_error(d, "litebus_submit: %s: %s",
				   litebus_errname(rc), litebus_last_errmsg());
			free(j);
		}
	}
	if (rc != LITEBUS_OK) {
		pthread_mutex_lock(&d->lock);
		if (--d->inflight == 0)
			pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
	return true;
}

/* Odd orders are submitted, even ones executed, until asked to stop. */
static void *
producer_main(void *arg)
{
	const struct producer_arg *pa = arg;
	struct demo *d = pa->d;

	while (!demo_stopping(d)) {
		int64_t order_no =
		    1 + atomic_fetch_add_explicit(&d->next_order, 1,
						  memory_order_relaxed);

		if (order_no % 2 == 0 ||
		    !produce_submit(d, pa->index, order_no))
			produce_exec(d, pa->index, order_no);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Consumers                                                           */

/* Record one delivered event.  Consumer thread. */
static void
consumer_saw(struct consumer *c, int64_t event_id, int64_t partition_key)
{
	oracle_saw(c->oc, event_id, (uint64_t)partition_key);
	if (partition_key < 0)
		oracle_consumer_fail(c->oc,
				     "id %" PRId64 " is an event of order %" PRId64
				     ", which was aborted",
				     event_id, -partition_key);
}

static bool
consumer_is_reader(const struct consumer *c)
{
	return c->kind == FAST_READER || c->kind == SLOW_READER;
}

/* A litebus call of consumer c failed with status rc: report it; the
 * consumer then ends.  Consumer thread (litebus_last_errmsg is per
 * thread). */
static void
consumer_failed(struct consumer *c, const char *call, int rc)
{
	c->failed = true;
	oracle_consumer_fail(c->oc, "ended by an error: %s: %s", call,
			     litebus_errname(rc));
	demo_error(c->d, "%s: %s: %s: %s", c->name, call, litebus_errname(rc),
		   litebus_last_errmsg());
}

/* The consumer's last act, on its own thread: keep its final counters,
 * close its reader or subscriber, and tell main it has drained. */
static void
consumer_finish(struct consumer *c)
{
	struct demo *d = c->d;
	int rc;

	if (consumer_is_reader(c)) {
		rc = litebus_reader_stats_get(c->reader, &c->rstats);
		litebus_reader_close(c->reader);
		c->reader = NULL;
	} else {
		rc = litebus_sub_stats_get(c->sub, &c->sstats);
		litebus_unsubscribe(c->sub);
		c->sub = NULL;
	}
	if (rc != LITEBUS_OK)
		consumer_failed(c, "reading its counters", rc);
	pthread_mutex_lock(&d->lock);
	d->drained++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* The slow reader stalls DEMO_STALL_MS once per DEMO_STALL_PERIOD_MS
 * while producers run, long enough for its ring to lap it. */
static void
reader_maybe_stall(struct consumer *c, uint64_t *next_stall_ms)
{
	uint64_t now;

	if (c->kind != SLOW_READER || demo_stopping(c->d))
		return;
	now = mono_ms();
	if (now < *next_stall_ms)
		return;
	sleep_ms(DEMO_STALL_MS);
	*next_stall_ms = now + DEMO_STALL_PERIOD_MS;
}

static void *
reader_main(void *arg)
{
	struct consumer *c = arg;
	uint64_t next_stall_ms = mono_ms() + DEMO_STALL_PERIOD_MS;
	litebus_reader_stats st;
	litebus_row row;
	int rc;

	for (;;) {
		rc = litebus_reader_next(c->reader, &row, DEMO_WAIT_MS);
		if (rc == LITEBUS_CLOSED)
			break;
		if (rc == LITEBUS_OK) {
			consumer_saw(c, row.event_id, row.partition_key);
		} else if (rc != LITEBUS_TIMEOUT && rc != LITEBUS_EBUSY) {
			/* EBUSY leaves the cursor unchanged: just retry. */
			consumer_failed(c, "litebus_reader_next", rc);
			break;
		}
		atomic_store_explicit(&c->cursor,
				      litebus_reader_cursor(c->reader),
				      memory_order_relaxed);
		if (litebus_reader_stats_get(c->reader, &st) == LITEBUS_OK)
			atomic_store_explicit(&c->laps, st.lags,
					      memory_order_relaxed);
		reader_maybe_stall(c, &next_stall_ms);
	}
	consumer_finish(c);
	return NULL;
}

/*
 * Take events, and count lags, until litebus_recv() has none for
 * timeout_ms.  Returns LITEBUS_TIMEOUT then (which also makes the
 * subscriber's fd unreadable until the next publish), LITEBUS_CLOSED, or
 * a negative error.  Subscriber thread.
 */
static int
sub_take(struct consumer *c, int timeout_ms)
{
	litebus_event ev;
	int rc;

	for (;;) {
		rc = litebus_recv(c->sub, &ev, timeout_ms);
		if (rc == LITEBUS_OK) {
			consumer_saw(c, ev.event_id, ev.partition_key);
			atomic_store_explicit(&c->cursor, ev.event_id,
					      memory_order_relaxed);
		} else if (rc == LITEBUS_LAGGED) {
			oracle_lagged(c->oc, litebus_sub_skipped(c->sub));
			atomic_fetch_add_explicit(&c->laps, 1,
						  memory_order_relaxed);
		} else {
			return rc;
		}
	}
}

/* A subscriber that blocks in litebus_recv(). */
static void *
recv_sub_main(void *arg)
{
	struct consumer *c = arg;
	int rc;

	do
		rc = sub_take(c, DEMO_WAIT_MS);
	while (rc == LITEBUS_TIMEOUT);
	if (rc != LITEBUS_CLOSED)
		consumer_failed(c, "litebus_recv", rc);
	consumer_finish(c);
	return NULL;
}

/* A subscriber that sleeps in poll() on its fd, then drains it. */
static void *
poll_sub_main(void *arg)
{
	struct consumer *c = arg;
	struct pollfd pfd;
	int n, rc;

	pfd.fd = litebus_sub_fd(c->sub);
	pfd.events = POLLIN;
	if (pfd.fd < 0) {
		consumer_failed(c, "litebus_sub_fd", pfd.fd);
		consumer_finish(c);
		return NULL;
	}
	for (;;) {
		n = poll(&pfd, 1, DEMO_WAIT_MS);
		if (n < 0 && errno != EINTR) {
			c->failed = true;
			oracle_consumer_fail(c->oc, "ended by an error: poll");
			demo_error(c->d, "%s: poll: %s", c->name,
				   strerror(errno));
			break;
		}
		if (n <= 0)
			continue;
		rc = sub_take(c, 0);
		if (rc == LITEBUS_CLOSED)
			break;
		if (rc != LITEBUS_TIMEOUT) {
			consumer_failed(c, "litebus_recv", rc);
			break;
		}
	}
	consumer_finish(c);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: litebus-demo [--db PATH | --memory] [--seconds N] "
		"[--producers N]\n"
		"                    [--ring SLOTS] [--full] [--keep]\n"
		"\n"
		"Runs litebus for a few seconds with producers, readers and "
		"subscribers,\n"
		"shows live progress, then checks what every consumer "
		"received.\n"
		"\n"
		"  --db PATH      database file (default: litebus-demo.db in "
		"a new\n"
		"                 temporary directory, removed at exit)\n"
		"  --memory       private in-memory database\n"
		"  --seconds N    how long producers run (default %d)\n"
		"  --producers N  producer threads (default %d, at most %d)\n"
		"  --ring SLOTS   ring capacity, a power of two (default "
		"%u)\n"
		"  --full         durability FULL (fsync every commit)\n"
		"  --keep         keep the temporary directory\n"
		"\n"
		"Exit status: 0 all checks passed, 1 a check failed, 2 usage "
		"or setup error.\n",
		DEMO_SECONDS_DEFAULT, DEMO_PRODUCERS_DEFAULT,
		DEMO_PRODUCERS_MAX, DEMO_RING_DEFAULT);
}

static bool
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool
option_takes_value(const char *a)
{
	return strcmp(a, "--db") == 0 || strcmp(a, "--seconds") == 0 ||
	       strcmp(a, "--producers") == 0 || strcmp(a, "--ring") == 0;
}

/* Returns 0, 1 for --help, or 2 for a usage error (printed). */
static int
parse_args(int argc, char **argv, struct demo_opts *o)
{
	long v = 0;

	o->db_path = NULL;
	o->memory = o->keep = o->full = false;
	o->seconds = DEMO_SECONDS_DEFAULT;
	o->producers = DEMO_PRODUCERS_DEFAULT;
	o->ring = DEMO_RING_DEFAULT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = "";

		if (option_takes_value(a)) {
			if (i + 1 == argc) {
				fprintf(stderr,
					"litebus-demo: %s needs a value\n", a);
				return 2;
			}
			val = argv[++i];
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 1;
		} else if (strcmp(a, "--memory") == 0) {
			o->memory = true;
		} else if (strcmp(a, "--keep") == 0) {
			o->keep = true;
		} else if (strcmp(a, "--full") == 0) {
			o->full = true;
		} else if (strcmp(a, "--db") == 0) {
			o->db_path = val;
		} else if (strcmp(a, "--seconds") == 0 &&
			   parse_long(val, 1, 86400, &v)) {
			o->seconds = (int)v;
		} else if (strcmp(a, "--producers") == 0 &&
			   parse_long(val, 1, DEMO_PRODUCERS_MAX, &v)) {
			o->producers = (int)v;
		} else if (strcmp(a, "--ring") == 0 &&
			   parse_long(val, LITEBUS_RING_MIN, LITEBUS_RING_MAX,
				      &v)) {
			o->ring = (uint32_t)v;
		} else {
			fprintf(stderr, "litebus-demo: bad option: %s%s%s\n", a,
				val[0] != '\0' ? " " : "", val);
			usage(stderr);
			return 2;
		}
	}
	if (o->memory && o->db_path != NULL) {
		fprintf(stderr,
			"litebus-demo: --db and --memory exclude each other\n");
		return 2;
	}
	return 0;
}

/* Choose the database: --db, --memory, or a new temporary directory. */
static int
demo_choose_path(struct demo *d)
{
	const char *tmp = getenv("TMPDIR");

	if (d->o.memory)
		return 0;
	if (d->o.db_path != NULL) {
		snprintf(d->path, sizeof d->path, "%s", d->o.db_path);
		return 0;
	}
	snprintf(d->dir, sizeof d->dir, "%s/litebus-demo.XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(d->dir) == NULL) {
		fprintf(stderr, "litebus-demo: mkdtemp %s: %s\n", d->dir,
			strerror(errno));
		d->dir[0] = '\0';
		return -1;
	}
	snprintf(d->path, sizeof d->path, "%s/litebus-demo.db", d->dir);
	return 0;
}

/* Remove the temporary directory we made, unless --keep. */
static void
demo_remove_dir(struct demo *d)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
	char p[4300];

	if (d->dir[0] == '\0' || d->o.keep)
		return;
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		snprintf(p, sizeof p, "%s%s", d->path, suffixes[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			fprintf(stderr, "litebus-demo: unlink %s: %s\n", p,
				strerror(errno));
	}
	if (rmdir(d->dir) != 0)
		fprintf(stderr, "litebus-demo: rmdir %s: %s\n", d->dir,
			strerror(errno));
}

static int
demo_open_bus(struct demo *d)
{
	litebus_options o;
	struct order_job setup;
	int rc;

	litebus_options_init(&o);
	o.path = d->o.memory ? NULL : d->path;
	o.ring_capacity = d->o.ring;
	o.durability =
	    d->o.full ? LITEBUS_DURABILITY_FULL : LITEBUS_DURABILITY_NORMAL;
	o.channels = user_channels;
	rc = litebus_open(&o, &d->bus);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "litebus-demo: litebus_open: %s: %s\n",
			litebus_errname(rc), litebus_last_errmsg());
		return -1;
	}
	d->chan[CH_LEASE].id = LITEBUS_LEASE_HISTORY;
	d->chan[CH_COMPLETION].id = LITEBUS_COMPLETION;
	d->chan[CH_OPERATOR].id = LITEBUS_OPERATOR_EVENT;
	d->chan[CH_AUDIT].id = litebus_channel_id(d->bus, "audit");
	if (d->chan[CH_AUDIT].id < 0) {
		fprintf(stderr, "litebus-demo: litebus_channel_id: %s: %s\n",
			litebus_errname(d->chan[CH_AUDIT].id),
			litebus_last_errmsg());
		return -1;
	}
	for (int i = 0; i < CH_COUNT; i++) {
		const char *name = litebus_channel_name(d->bus, d->chan[i].id);
		size_t len = strlen(name);

		assert(len < sizeof d->chan[i].name);
		memcpy(d->chan[i].name, name, len + 1);
	}
	for (int i = 0; i < CH_COUNT; i++) {
		const struct oracle_config ocfg = {
		    .channel = d->chan[i].name,
		    .logs = d->o.producers + 1, /* producers, then the writer */
		};

		d->oracle[i] = oracle_new(&ocfg);
		if (d->oracle[i] == NULL) {
			fprintf(stderr, "litebus-demo: out of memory\n");
			return -1;
		}
	}

	order_job_init(&setup, d, 0, 0);
	rc = litebus_exec(d->bus, setup_job, &setup);
	if (rc != 0) {
		fprintf(stderr, "litebus-demo: creating table orders: %s\n",
			rc == DEMO_JOB_SQLERR ? setup.sqlerr
					      : litebus_last_errmsg());
		return -1;
	}
	return 0;
}

static int
demo_add_consumer(struct demo *d, enum consumer_kind kind, int ch,
		  const char *label)
{
	static const char *const kinds[] = {"fast", "slow", "recv", "poll"};
	struct consumer *c = &d->cons[d->ncons];
	char name[sizeof c->name];
	bool is_reader;
	int rc;

	assert(d->ncons < (int)(sizeof d->cons / sizeof d->cons[0]));
	memset(c, 0, sizeof *c);
	c->d = d;
	c->kind = kind;
	c->ch = ch;
	is_reader = consumer_is_reader(c);
	/* Through a local buffer: GCC's -Wrestrict cannot tell c->name
	 * from d->chan[ch].name.  It is sized for the longest name. */
	snprintf(name, sizeof name, "%s %s (%s)", is_reader ? "reader" : "sub",
		 d->chan[ch].name, kinds[kind]);
	memcpy(c->name, name, sizeof name);
	snprintf(c->label, sizeof c->label, "%s", label);
	c->oc = is_reader ? oracle_reader_new(d->oracle[ch], c->name)
			  : oracle_subscriber_new(d->oracle[ch], c->name);
	if (c->oc == NULL) {
		fprintf(stderr, "litebus-demo: out of memory\n");
		return -1;
	}
	if (is_reader)
		rc = litebus_reader_open(d->bus, d->chan[ch].id,
					 LITEBUS_FROM_NOW, NULL, &c->reader);
	else
		rc = litebus_subscribe(d->bus, d->chan[ch].id, &c->sub);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "litebus-demo: %s: %s: %s\n", c->name,
			litebus_errname(rc), litebus_last_errmsg());
		return -1;
	}
	if (is_reader) {
		/* Nothing is committed before the producers start, so a
		 * reader's cursor now is the channel's newest event_id. */
		d->chan[ch].base = litebus_reader_cursor(c->reader);
	}
	atomic_init(&c->cursor, d->chan[ch].base);
	atomic_init(&c->laps, 0);
	d->ncons++;
	return 0;
}

/* Open every consumer before the first order, so each sees them all. */
static int
demo_open_consumers(struct demo *d)
{
	static const struct {
		enum consumer_kind kind;
		int ch;
		const char *label;
	} plan[] = {
	    {FAST_READER, CH_LEASE, "lease"},
	    {FAST_READER, CH_COMPLETION, "compl"},
	    {FAST_READER, CH_OPERATOR, "oper"},
	    {FAST_READER, CH_AUDIT, "audit"},
	    {SLOW_READER, CH_LEASE, "slow"},
	    {RECV_SUB, CH_COMPLETION, "recv"},
	    {POLL_SUB, CH_AUDIT, "poll"},
	};

	for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
		if (demo_add_consumer(d, plan[i].kind, plan[i].ch,
				      plan[i].label) != 0)
			return -1;
	return 0;
}

static int
demo_start_threads(struct demo *d)
{
	static void *(*const mains[])(void *) = {
	    [FAST_READER] = reader_main,
	    [SLOW_READER] = reader_main,
	    [RECV_SUB] = recv_sub_main,
	    [POLL_SUB] = poll_sub_main,
	};
	int rc;

	for (int i = 0; i < d->ncons; i++) {
		struct consumer *c = &d->cons[i];

		rc = pthread_create(&c->thread, NULL, mains[c->kind], c);
		if (rc != 0) {
			fprintf(stderr, "litebus-demo: pthread_create: %s\n",
				strerror(rc));
			return -1;
		}
		c->started = true;
		d->nstarted++;
	}
	for (int i = 0; i < d->o.producers; i++) {
		producer_args[i].d = d;
		producer_args[i].index = i;
		rc = pthread_create(&d->producer[i], NULL, producer_main,
				    &producer_args[i]);
		if (rc != 0) {
			fprintf(stderr, "litebus-demo: pthread_create: %s\n",
				strerror(rc));
			return -1;
		}
		d->nproducers++;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The progress line                                                   */

struct progress {
	uint64_t start_ms, last_ms, last_events;
	bool tty;
	unsigned refreshes;
};

static void
progress_print(struct demo *d, struct progress *p, uint64_t now_ms)
{
	litebus_stats st;
	char line[512];
	size_t n, width = sizeof line - 1;
	double rate = 0;
	struct winsize ws;

	if (litebus_stats_get(d->bus, &st) != LITEBUS_OK) {
		demo_error(d, "litebus_stats_get: %s", litebus_last_errmsg());
		return;
	}
	if (now_ms > p->last_ms)
		rate = (double)(st.events - p->last_events) * 1000.0 /
		       (double)(now_ms - p->last_ms);
	p->last_ms = now_ms;
	p->last_events = st.events;

	n = (size_t)snprintf(
	    line, sizeof line,
	    "%5.1fs %6.0f ev/s  jobs %" PRIu64 " ok %" PRIu64
	    " aborted  subs lag %" PRIu64 " skip %" PRIu64 "  readers",
	    (double)(now_ms - p->start_ms) / 1000.0, rate,
	    atomic_load_explicit(&d->jobs_ok, memory_order_relaxed),
	    atomic_load_explicit(&d->jobs_aborted, memory_order_relaxed),
	    st.sub_lags, st.sub_skipped);
	for (int i = 0; i < d->ncons && n < sizeof line; i++) {
		const struct consumer *c = &d->cons[i];

		if (!consumer_is_reader(c))
			continue;
		n += (size_t)snprintf(
		    line + n, sizeof line - n, " %s %" PRId64 "/%" PRIu64,
		    c->label,
		    atomic_load_explicit(&c->cursor, memory_order_relaxed),
		    atomic_load_explicit(&c->laps, memory_order_relaxed));
	}
	if (p->tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 &&
	    ws.ws_col > 1 && (size_t)ws.ws_col - 1 < width)
		width = (size_t)ws.ws_col - 1;

	pthread_mutex_lock(&d->out_lock);
	if (p->tty) {
		/* Rewrite the line in place; clear what a longer line left. */
		printf("\r%.*s\033[K", (int)width, line);
		d->status_shown = true;
	} else if (p->refreshes % (1000 / DEMO_REFRESH_MS) == 0) {
		printf("%s\n", line);
	}
	fflush(stdout);
	pthread_mutex_unlock(&d->out_lock);
	p->refreshes++;
}

/*
 * Show progress until the time is up, a signal arrives or an error
 * stopped the run.  Main thread, with SIGINT and SIGTERM blocked.
 * Returns why it stopped.
 */
static const char *
demo_run(struct demo *d, const sigset_t *sigs)
{
	struct progress p;
	uint64_t end_ms;

	memset(&p, 0, sizeof p);
	p.start_ms = p.last_ms = mono_ms();
	p.tty = isatty(STDOUT_FILENO) == 1;
	end_ms = p.start_ms + (uint64_t)d->o.seconds * 1000u;
	for (;;) {
		uint64_t now = mono_ms(), wait_ms;
		struct timespec ts;
		int sig;

		if (demo_stopping(d))
			return "stopped by an error";
		if (now >= end_ms)
			break;
		wait_ms = end_ms - now < DEMO_REFRESH_MS ? end_ms - now
							 : DEMO_REFRESH_MS;
		ts.tv_sec = (time_t)(wait_ms / 1000);
		ts.tv_nsec = (long)(wait_ms % 1000) * 1000000;
		sig = sigtimedwait(sigs, NULL, &ts);
		if (sig > 0) {
			progress_print(d, &p, mono_ms());
			return sig == SIGINT ? "interrupted (SIGINT)"
					     : "terminated (SIGTERM)";
		}
		progress_print(d, &p, mono_ms());
	}
	return "time is up";
}

/* ------------------------------------------------------------------ */
/* Shutdown                                                            */

/* Wait until every submitted order's done-callback has run. */
static void
demo_wait_inflight(struct demo *d)
{
	pthread_mutex_lock(&d->lock);
	while (d->inflight > 0)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

/* Wait for the consumers to reach LITEBUS_CLOSED and join them.  Returns
 * -1 if one did not within DEMO_DRAIN_DEADLINE_MS: it is left running. */
static int
demo_join_consumers(struct demo *d)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += DEMO_DRAIN_DEADLINE_MS / 1000;
	pthread_mutex_lock(&d->lock);
	while (d->drained < d->nstarted && rc == 0)
		rc = pthread_cond_timedwait(&d->cond, &d->lock, &deadline);
	pthread_mutex_unlock(&d->lock);
	if (rc != 0) {
		fprintf(stderr,
			"litebus-demo: a consumer did not reach LITEBUS_CLOSED "
			"within %d s after litebus_close: FAIL\n",
			DEMO_DRAIN_DEADLINE_MS / 1000);
		return -1;
	}
	for (int i = 0; i < d->ncons; i++) {
		if (d->cons[i].started)
			pthread_join(d->cons[i].thread, NULL);
		d->cons[i].started = false;
	}
	return 0;
}

/* Count this run's rows in db.  Returns 0, or -1 (printed). */
static int
count_tables(struct demo *d, sqlite3 *db, struct table_counts *tc)
{
	char sql[256];
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_OK;

	/* The per-channel table name is litebus's schema, not its API: a
	 * demo may peek, an application should use a reader. */
	for (int i = 0; i <= CH_COUNT && rc == SQLITE_OK; i++) {
		if (i < CH_COUNT)
			snprintf(sql, sizeof sql,
				 "SELECT count(*), coalesce(sum(partition_key "
				 "< 0), 0) FROM \"litebus_outbox_%s\" WHERE "
				 "event_id > ?1",
				 d->chan[i].name);
		else
			snprintf(sql, sizeof sql,
				 "SELECT count(*), 0 FROM orders WHERE run = "
				 "?1");
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		if (rc != SQLITE_OK)
			break;
		sqlite3_bind_int64(st, 1,
				   i < CH_COUNT ? d->chan[i].base : d->run_id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			rc = SQLITE_OK;
			if (i < CH_COUNT) {
				tc->rows[i] = sqlite3_column_int64(st, 0);
				tc->aborted[i] = sqlite3_column_int64(st, 1);
			} else {
				tc->orders = sqlite3_column_int64(st, 0);
			}
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (rc != SQLITE_OK) {
		fprintf(stderr, "litebus-demo: counting rows: %s\n",
			sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

struct count_job {
	struct demo *d;
	struct table_counts *tc;
};

/* An in-memory database can only be seen through the bus: count in a
 * last job, on the writer's connection. */
static int
count_job_run(litebus_tx *tx, void *arg)
{
	struct count_job *cj = arg;

	return count_tables(cj->d, litebus_tx_db(tx), cj->tc) == 0
		   ? 0
		   : DEMO_JOB_SQLERR;
}

/* Count through a connection of our own, after the bus has closed. */
static int
count_tables_file(struct demo *d, struct table_counts *tc)
{
	sqlite3 *db = NULL;
	int rc;

	/* Read-write, although it only reads: as the last connection to
	 * close, it checkpoints the WAL and removes it. */
	rc = sqlite3_open_v2(d->path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "litebus-demo: opening %s: %s\n", d->path,
			db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	rc = count_tables(d, db, tc);
	sqlite3_close(db);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The summary                                                         */

struct verdict {
	int passed, failed;
};

__attribute__((format(printf, 3, 4))) static void
check(struct verdict *v, bool ok, const char *fmt, ...)
{
	va_list ap;

	fputs("  ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": %s\n", ok ? "PASS" : "FAIL");
	if (ok)
		v->passed++;
	else
		v->failed++;
}

static void
print_channel_table(struct demo *d, const struct table_counts *tc, bool have_tc)
{
	printf("\nevents per channel: committed (ids from litebus_emit in "
	       "committed jobs),\nin the outbox table (%s), delivered to "
	       "each consumer\n",
	       d->o.memory ? "counted in a last job: in-memory database"
			   : "separate connection");
	printf("  %-15s %10s %10s  %s\n", "channel", "committed", "table",
	       "delivered");
	for (int ch = 0; ch < CH_COUNT; ch++) {
		printf("  %-15s %10" PRIu64, d->chan[ch].name,
		       oracle_committed(d->oracle[ch]));
		if (have_tc)
			printf(" %10" PRId64, tc->rows[ch]);
		else
			printf(" %10s", "?");
		printf(" ");
		for (int i = 0; i < d->ncons; i++) {
			const struct consumer *c = &d->cons[i];

			if (c->ch != ch)
				continue;
			printf(" %s %" PRIu64, c->label, oracle_received(c->oc));
			if (!consumer_is_reader(c))
				printf("+%" PRIu64 " skipped",
				       oracle_skipped(c->oc));
		}
		printf("\n");
	}
}

static void
print_consumers(struct demo *d)
{
	printf("\nconsumers\n");
	for (int i = 0; i < d->ncons; i++) {
		const struct consumer *c = &d->cons[i];

		if (consumer_is_reader(c))
			printf("  %-28s %9" PRIu64 " rows, lapped %" PRIu64
			       " times, %" PRIu64 " catch-up queries\n",
			       c->name, c->rstats.delivered, c->rstats.lags,
			       c->rstats.queries);
		else
			printf("  %-28s %9" PRIu64 " received, %" PRIu64
			       " skipped in %" PRIu64 " lags\n",
			       c->name, c->sstats.received, c->sstats.skipped,
			       c->sstats.lags);
	}
}

static void
check_reader(struct verdict *v, struct demo *d, const struct consumer *c)
{
	char why[320];
	bool ok = oracle_check(d->oracle[c->ch], c->oc, why, sizeof why);

	check(v, ok, "%s: %" PRIu64 " rows, exactly once, in order", c->name,
	      oracle_received(c->oc));
	if (!ok)
		printf("    %s\n", why);
}

static void
check_sub(struct verdict *v, struct demo *d, const struct consumer *c)
{
	uint64_t published = oracle_committed(d->oracle[c->ch]);
	const litebus_sub_stats *ss = &c->sstats;
	char why[320];
	bool ok;

	check(v, ss->received + ss->skipped == published,
	      "%s: %" PRIu64 " received + %" PRIu64 " skipped == %" PRIu64
	      " published",
	      c->name, ss->received, ss->skipped, published);
	oracle_sub_stats(c->oc, ss->received, ss->skipped);
	ok = oracle_check(d->oracle[c->ch], c->oc, why, sizeof why);
	check(v, ok,
	      "%s: every event received was committed, in order, and each "
	      "lag skipped what it reported",
	      c->name);
	if (!ok)
		printf("    %s\n", why);
}

/* Print the closing summary.  Returns the number of failed checks. */
static int
demo_summary(struct demo *d, const litebus_stats *st,
	     const struct table_counts *tc, bool have_tc)
{
	struct verdict v = {0, 0};
	uint64_t ok = atomic_load_explicit(&d->jobs_ok, memory_order_relaxed);
	uint64_t aborted =
	    atomic_load_explicit(&d->jobs_aborted, memory_order_relaxed);
	uint64_t errors =
	    atomic_load_explicit(&d->errors, memory_order_relaxed);
	uint64_t committed_events = 0;

	for (int ch = 0; ch < CH_COUNT; ch++)
		committed_events += oracle_committed(d->oracle[ch]);
	printf("\njobs: %" PRIu64 " committed, %" PRIu64
	       " aborted on purpose (every %dth order)\n",
	       ok, aborted, DEMO_ABORT_EVERY);
	print_channel_table(d, tc, have_tc);
	print_consumers(d);
	printf("\nbus stats (litebus_stats_get)\n");
	printf("  %" PRIu64 " batches, %" PRIu64 " commits, %.2f jobs per "
	       "batch\n",
	       st->batches, st->commits,
	       st->batches != 0 ? (double)st->jobs / (double)st->batches : 0.0);
	printf("  %" PRIu64 " jobs (%" PRIu64 " failed), %" PRIu64
	       " events, %" PRIu64 " busy retries, %" PRIu64 " checkpoints\n",
	       st->jobs, st->jobs_failed, st->events, st->busy_retries,
	       st->checkpoints);
	printf("  %" PRIu64 " subscriber lags (%" PRIu64 " skipped), %" PRIu64
	       " reader lags\n",
	       st->sub_lags, st->sub_skipped, st->reader_lags);

	printf("\nchecks\n");
	check(&v, errors == 0, "unexpected errors: %" PRIu64, errors);
	check(&v, ok > 0 && aborted > 0,
	      "jobs committed (%" PRIu64 ") and aborted (%" PRIu64
	      ") both happened",
	      ok, aborted);
	for (int ch = 0; ch < CH_COUNT; ch++) {
		if (!have_tc) {
			check(&v, false, "table %s: could not be counted",
			      d->chan[ch].name);
			continue;
		}
		uint64_t committed = oracle_committed(d->oracle[ch]);

		check(&v,
		      (uint64_t)tc->rows[ch] == committed &&
			  tc->aborted[ch] == 0,
		      "table %s: %" PRId64 " rows == %" PRIu64
		      " committed, %" PRId64 " of aborted jobs",
		      d->chan[ch].name, tc->rows[ch], committed,
		      tc->aborted[ch]);
	}
	if (have_tc)
		check(&v, (uint64_t)tc->orders == ok,
		      "table orders: %" PRId64 " rows == %" PRIu64
		      " committed jobs",
		      tc->orders, ok);
	check(&v, st->events == committed_events,
	      "bus stats: %" PRIu64 " events published == %" PRIu64
	      " committed",
	      st->events, committed_events);
	for (int i = 0; i < d->ncons; i++) {
		if (consumer_is_reader(&d->cons[i]))
			check_reader(&v, d, &d->cons[i]);
		else
			check_sub(&v, d, &d->cons[i]);
	}
	if (v.failed == 0)
		printf("\nall %d checks passed\n", v.passed);
	else
		printf("\n%d of %d checks FAILED\n", v.failed,
		       v.passed + v.failed);
	return v.failed;
}

/* ------------------------------------------------------------------ */

static void
demo_free(struct demo *d)
{
	for (int i = 0; i < d->ncons; i++) {
		litebus_reader_close(d->cons[i].reader);
		litebus_unsubscribe(d->cons[i].sub);
	}
	for (int ch = 0; ch < CH_COUNT; ch++)
		oracle_free(d->oracle[ch]); /* and its consumers */
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->out_lock);
	free(d);
}

static struct demo *
demo_new(const struct demo_opts *o)
{
	struct demo *d = calloc(1, sizeof *d);
	pthread_condattr_t ca;

	if (d == NULL)
		return NULL;
	d->o = *o;
	d->run_id = wall_ms();
	atomic_init(&d->stop, false);
	atomic_init(&d->next_order, 0);
	atomic_init(&d->jobs_ok, 0);
	atomic_init(&d->jobs_aborted, 0);
	atomic_init(&d->errors, 0);
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->out_lock, NULL);
	/* Monotonic, for the drain deadline in demo_join_consumers(). */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cond, &ca);
	pthread_condattr_destroy(&ca);
	return d;
}

static void
print_banner(struct demo *d)
{
	printf("litebus-demo %d.%d.%d: %d producers for %d s, rings of %u "
	       "slots, durability %s\n",
	       LITEBUS_VERSION_MAJOR, LITEBUS_VERSION_MINOR,
	       LITEBUS_VERSION_PATCH, d->o.producers, d->o.seconds, d->o.ring,
	       d->o.full ? "FULL" : "NORMAL");
	if (d->o.memory)
		printf("database: in memory\n");
	else
		printf("database: %s%s\n", d->path,
		       d->dir[0] == '\0' || d->o.keep
			   ? ""
			   : " (removed at exit; --keep keeps it)");
	printf("jobs: odd orders litebus_submit, even ones litebus_exec; "
	       "each inserts into\n      `orders` and emits on lease_history, "
	       "completion, operator_event, audit;\n      every %dth fails "
	       "after emitting and is rolled back\n",
	       DEMO_ABORT_EVERY);
	printf("consumers: a fast reader per channel, a slow reader on "
	       "lease_history\n           (stalls %d ms every %d ms), "
	       "subscribers on completion (recv)\n           and audit "
	       "(poll on litebus_sub_fd); readers shown as cursor/laps\n",
	       DEMO_STALL_MS, DEMO_STALL_PERIOD_MS);
	printf("Ctrl-C stops early\n\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct demo_opts o;
	struct demo *d;
	struct table_counts tc;
	litebus_stats st;
	sigset_t sigs;
	const char *why;
	bool have_tc = false;
	int rc, failed;

	rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc == 1 ? 0 : 2;
	if (litebus_version_number() != LITEBUS_VERSION_NUMBER) {
		fprintf(stderr,
			"litebus-demo: built against litebus %d, running "
			"with %d\n",
			LITEBUS_VERSION_NUMBER, litebus_version_number());
		return 2;
	}
	/* Blocked before any thread exists (the bus's writer included), so
	 * only main's sigtimedwait() ever takes them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	d = demo_new(&o);
	if (d == NULL) {
		fprintf(stderr, "litebus-demo: out of memory\n");
		return 2;
	}
	if (demo_choose_path(d) != 0) {
		demo_free(d);
		return 2;
	}
	print_banner(d);
	if (demo_open_bus(d) != 0 || demo_open_consumers(d) != 0 ||
	    demo_start_threads(d) != 0) {
		/* Nothing was committed yet: stop and release in order. */
		demo_request_stop(d);
		for (int i = 0; i < d->nproducers; i++)
			pthread_join(d->producer[i], NULL);
		demo_wait_inflight(d);
		litebus_close(d->bus);
		if (demo_join_consumers(d) == 0) {
			demo_remove_dir(d);
			demo_free(d);
		}
		return 2;
	}

	why = demo_run(d, &sigs);
	demo_request_stop(d);
	/* Further signals stay blocked, and are discarded at exit: a second
	 * SIGINT (`timeout -s INT` sends two) must not cut the drain short.
	 * demo_join_consumers() bounds how long the drain may take. */
	pthread_mutex_lock(&d->out_lock);
	demo_end_status_line(d);
	printf("%s: stopping producers, closing the bus, draining "
	       "consumers\n",
	       why);
	fflush(stdout);
	pthread_mutex_unlock(&d->out_lock);

	for (int i = 0; i < d->nproducers; i++)
		pthread_join(d->producer[i], NULL);
	demo_wait_inflight(d);
	/* Every job has completed: the counters are final. */
	if (d->o.memory) {
		struct count_job cj = {d, &tc};

		rc = litebus_exec(d->bus, count_job_run, &cj);
		have_tc = rc == 0;
		if (rc != 0 && rc != DEMO_JOB_SQLERR)
			demo_error(d, "counting rows: %s",
				   litebus_last_errmsg());
	}
	rc = litebus_stats_get(d->bus, &st);
	if (rc != LITEBUS_OK) {
		demo_error(d, "litebus_stats_get: %s", litebus_last_errmsg());
		memset(&st, 0, sizeof st);
	}
	rc = litebus_close(d->bus);
	if (rc != LITEBUS_OK)
		demo_error(d, "litebus_close: %s: %s", litebus_errname(rc),
			   litebus_last_errmsg());
	if (demo_join_consumers(d) != 0)
		return 1;
	if (!d->o.memory)
		have_tc = count_tables_file(d, &tc) == 0;

	failed = demo_summary(d, &st, &tc, have_tc);
	demo_remove_dir(d);
	demo_free(d);
	return failed == 0 ? 0 : 1;
}
