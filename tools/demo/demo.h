/* SPDX-License-Identifier: MIT */
/*
 * demo.h - what the parts of litebus-demo share: its settings, the run's
 * state (struct demo), consumers, orders, and the calls each file offers
 * the others.  main.c says what the demo does and how its threads work.
 *
 *   main.c       setup, the run, shutdown
 *   cli.c        the command line
 *   orders.c     the jobs, and the producer threads that run them
 *   consumers.c  readers and subscribers, each on its thread
 *   progress.c   the live progress line and error messages
 *   verify.c     counting the tables, the checks (tests/support/oracle.h)
 *                and the closing summary
 */
#ifndef LITEBUS_DEMO_H
#define LITEBUS_DEMO_H

#include "litebus.h"
#include "oracle.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

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

static inline uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void
sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static inline bool
demo_stopping(struct demo *d)
{
	return atomic_load_explicit(&d->stop, memory_order_relaxed);
}

static inline void
demo_request_stop(struct demo *d)
{
	atomic_store_explicit(&d->stop, true, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* What each file gives the others                                     */

/* cli.c: returns 0, 1 for --help or --version, or 2 for a usage error
 * (printed). */
int parse_args(int argc, char **argv, struct demo_opts *o);

/* orders.c: the jobs and the producer threads. */
struct producer_arg {
	struct demo *d;
	int index;
};
void order_job_init(struct order_job *j, struct demo *d, int producer,
		    int64_t order_no);
int setup_job(litebus_tx *tx, void *arg);
void *producer_main(void *arg);

/* consumers.c: open every consumer before the first order; the thread
 * of each. */
int demo_open_consumers(struct demo *d);
void *consumer_main(void *arg);
bool consumer_is_reader(const struct consumer *c);

/* progress.c: the terminal. */
void demo_end_status_line(struct demo *d);
void demo_error(struct demo *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *demo_run(struct demo *d, const sigset_t *sigs);

/* verify.c: count the tables, through the bus (a last job: for an
 * in-memory database) or a connection of our own after close; then
 * check and print the summary. */
int demo_count_through_bus(struct demo *d, struct table_counts *tc);
int demo_count_through_file(struct demo *d, struct table_counts *tc);
int demo_summary(struct demo *d, const litebus_stats *st,
		 const struct table_counts *tc, bool have_tc);

#endif
