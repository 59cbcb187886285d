/* SPDX-License-Identifier: MIT */
/*
 * litebus-demo - a live demonstration of litebus, checked as it runs.
 * (main.c: setup, the run and shutdown; demo.h lists the other files.)
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
#include "demo.h"

#include <assert.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Setup                                                               */

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const user_channels[] = {"audit", NULL};

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
demo_start_threads(struct demo *d)
{
	static struct producer_arg producer_args[DEMO_PRODUCERS_MAX];
	int rc;

	for (int i = 0; i < d->ncons; i++) {
		struct consumer *c = &d->cons[i];

		rc = pthread_create(&c->thread, NULL, consumer_main, c);
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
		rc = demo_count_through_bus(d, &tc);
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
		have_tc = demo_count_through_file(d, &tc) == 0;

	failed = demo_summary(d, &st, &tc, have_tc);
	demo_remove_dir(d);
	demo_free(d);
	return failed == 0 ? 0 : 1;
}

