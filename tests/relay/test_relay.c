/* SPDX-License-Identifier: MIT */
/*
 * test_relay.c - the Redis Streams relay (include/litebus_relay.h)
 * against a real redis-server of the test's own (redis_server.h), end to
 * end.  Every test ends with check_stream(): the stream holds exactly the
 * committed rows, each once, in order, with the right fields.
 *
 * The relay runs in this process for most tests, and in child processes
 * (this program again, with --relay-child) where it is SIGKILLed.
 * LITEBUS_RELAY_KILL_ROUNDS sets how many times (default 4; the stress
 * label runs 20).
 */
#include "fixture.h"
#include "litebus_relay.h"
#include "redis_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

FX_TSAN_ALLOW_FORK();

extern char **environ;

static const char *const channels[] = {"orders", "audit", NULL};
#define KEY "litebus:orders"

/* A child process of the running test (relay or redis_consumer), 0 when
 * none: teardown kills it if a failed test left it running. */
static pid_t live_child;

struct relay_fixture {
	struct bus_fixture f; /* first: bus_teardown frees it */
	struct redis_server rs;
	int ch;
};

static void
open_bus(struct relay_fixture *t, const litebus_retention *ret)
{
	fx_make_dir(&t->f);
	litebus_options_init(&t->f.opts);
	t->f.opts.path = t->f.path;
	t->f.opts.channels = channels;
	t->f.opts.retention = ret;
	t->f.opts.prune_interval_ms = 20;
	fx_open(&t->f);
	t->ch = litebus_channel_id(t->f.bus, "orders");
	assert_true(t->ch >= 0);
}

static int
setup(void **state)
{
	struct relay_fixture *t = calloc(1, sizeof *t);

	/* The test in progress is the last "[ RUN ]" line of the output. */
	watchdog_arm(240, "test_relay");
	assert_non_null(t);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct relay_fixture *t = *state;
	int st;

	if (live_child != 0) {
		(void)kill(live_child, SIGKILL);
		(void)waitpid(live_child, &st, 0);
		live_child = 0;
	}
	redis_server_cleanup(&t->rs);
	if (t->f.bus != NULL)
		assert_int_equal(litebus_close(t->f.bus), LITEBUS_OK);
	if (t->f.dir[0] != '\0')
		fx_remove_dir(&t->f);
	free(t);
	return 0;
}

static void
relay_options(litebus_relay_options *o, const struct redis_server *rs)
{
	litebus_relay_options_init(o);
	o->port = rs->port;
	o->password = rs->password;
	o->backoff_min_ms = 20;
	o->backoff_max_ms = 200;
}

static int64_t
head_of(litebus *bus, int ch)
{
	int64_t head, oldest;

	assert_int_equal(litebus_channel_head(bus, ch, &head, &oldest),
			 LITEBUS_OK);
	return head;
}

static void
wait_relayed(litebus_relay *r, int64_t id)
{
	litebus_relay_stats st;
	int rc = litebus_relay_wait(r, 0, id, 4 * FX_WAIT_MS);

	if (rc != LITEBUS_OK) {
		assert_int_equal(litebus_relay_stats_get(r, 0, &st),
				 LITEBUS_OK);
		fail_msg("the relay did not reach %" PRId64 " (%s): position "
			 "%" PRId64 ", state %d, last error: %s",
			 id, litebus_errname(rc), st.position, st.state,
			 st.last_error);
	}
}

/* Header, "What it does": "every committed row becomes exactly one entry
 * of the stream "<prefix>:<channel>" ... with entry id "<event_id>-0"
 * and these fields ... Entries are added in event_id order." */
static void
steady_load_reaches_the_stream_exactly_once_in_order(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_relay *r;
	redisContext *c;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	commit_rows(t->f.bus, t->ch, 500); /* before the relay starts */
	relay_options(&o, &t->rs);
	o.window = 64; /* many batches */
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	/* Header, litebus_relay_start: "EINUSE (a relay with this consumer
	 * name runs already on this file)". */
	{
		litebus_relay *second = NULL;

		assert_int_equal(
		    litebus_relay_start(t->f.bus, channels, &o, &second),
		    LITEBUS_EINUSE);
		assert_null(second);
	}
	commit_rows(t->f.bus, t->ch, 3000); /* while it runs */
	wait_relayed(r, head_of(t->f.bus, t->ch));
	assert_int_equal(litebus_relay_stats_get(r, 0, &st), LITEBUS_OK);
	assert_string_equal(st.channel, "orders");
	assert_int_equal(st.state, LITEBUS_RELAY_STREAMING);
	assert_int_equal(st.relayed, 3500);
	assert_int_equal(st.lag_events, 0);
	assert_int_equal(st.lag_ms, 0);
	assert_int_equal(st.reconnects, 0);
	litebus_relay_stop(r);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 3500);

	/* A restart relays only what is new (its durable consumer). */
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	commit_rows(t->f.bus, t->ch, 100);
	wait_relayed(r, head_of(t->f.bus, t->ch));
	assert_int_equal(litebus_relay_stats_get(r, 0, &st), LITEBUS_OK);
	assert_int_equal(st.relayed, 100);
	litebus_relay_stop(r);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 3600);
	redisFree(c);
}

/* Header, litebus_relay_options.maxlen: "> 0: every XADD trims with
 * MAXLEN ~ maxlen (approximately: Redis keeps at least maxlen entries,
 * trimming whole nodes)"; and "that id survives trimming". */
static void
maxlen_trims_the_stream_and_keeps_its_newest_entries(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay *r;
	redisContext *c;
	redisReply *all;
	int64_t head;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	redis_ok(c, "CONFIG SET stream-node-max-entries 10");
	relay_options(&o, &t->rs);
	o.maxlen = 50;
	o.window = 32;
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	commit_rows(t->f.bus, t->ch, 1000);
	head = head_of(t->f.bus, t->ch);
	wait_relayed(r, head);
	litebus_relay_stop(r);
	assert_int_equal(redis_stream_last(c, KEY), head);
	all = redisCommand(c, "XRANGE %s - +", KEY);
	assert_non_null(all);
	if (all->elements < 50 || all->elements > 100)
		fail_msg("MAXLEN ~ 50 left %zu entries", all->elements);
	/* The newest ones, contiguous up to the head. */
	for (size_t i = 0; i < all->elements; i++)
		assert_int_equal(
		    strtoll(all->element[i]->element[0]->str, NULL, 10),
		    head - (int64_t)(all->elements - 1 - i));
	freeReplyObject(all);
	redisFree(c);
}

/* Header: "at every (re)connection the relay reads the stream's last
 * generated id (XINFO STREAM) and resumes after the larger of the two.
 * A relay killed after XADD and before its ack therefore neither
 * duplicates nor skips." */
static void
durable_position_behind_the_stream_neither_duplicates_nor_skips(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_relay *r;
	redisContext *c;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	commit_rows(t->f.bus, t->ch, 300);
	relay_options(&o, &t->rs);
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	wait_relayed(r, head_of(t->f.bus, t->ch));
	litebus_relay_stop(r);
	/* As if the acks of rows 101..300 had been lost with a crash: the
	 * stream is ahead of the durable position. */
	{
		litebus_consumer *cons;

		assert_int_equal(
		    litebus_consumer_delete(t->f.bus, t->ch, "relay"),
		    LITEBUS_OK);
		assert_int_equal(litebus_consumer_open(t->f.bus, t->ch, "relay",
						       100, NULL, &cons),
				 LITEBUS_OK);
		litebus_consumer_close(cons);
	}
	commit_rows(t->f.bus, t->ch, 50);
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	wait_relayed(r, head_of(t->f.bus, t->ch));
	assert_int_equal(litebus_relay_stats_get(r, 0, &st), LITEBUS_OK);
	assert_int_equal(st.relayed, 50);
	assert_int_equal(st.skipped, 200);
	litebus_relay_stop(r);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 350);
	redisFree(c);
}

/* ------------------------------------------------------------------ */
/* The relay in a process of its own, SIGKILLed                        */

static int
relay_child_main(const char *db, int port)
{
	litebus_options bo;
	litebus_relay_options o;
	litebus_relay *r;
	litebus *bus;
	sigset_t set;
	int sig, rc;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return 3;
	litebus_options_init(&bo);
	bo.path = db;
	bo.channels = channels;
	rc = litebus_open(&bo, &bus);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "relay child: open: %s\n", litebus_errname(rc));
		return 3;
	}
	litebus_relay_options_init(&o);
	o.port = port;
	o.window = 32;
	o.backoff_min_ms = 20;
	o.backoff_max_ms = 200;
	rc = litebus_relay_start(bus, channels, &o, &r);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "relay child: start: %s\n",
			litebus_errname(rc));
		return 3;
	}
	if (sigwait(&set, &sig) != 0)
		return 3;
	litebus_relay_stop(r);
	return litebus_close(bus) == LITEBUS_OK ? 0 : 3;
}

static pid_t
spawn_relay(const char *db, int port)
{
	char p[16], out[400];
	const char *argv[] = {"/proc/self/exe", "--relay-child", db, p, NULL};
	posix_spawn_file_actions_t fa;
	pid_t pid;

	(void)snprintf(p, sizeof p, "%d", port);
	(void)snprintf(out, sizeof out, "%s-relay.out", db);
	spawn_output_to(&fa, out);
	assert_int_equal(posix_spawn(&pid, "/proc/self/exe", &fa, NULL,
				     (char *const *)argv, environ),
			 0);
	assert_int_equal(posix_spawn_file_actions_destroy(&fa), 0);
	live_child = pid;
	return pid;
}

static void
reap(pid_t pid, int sig, bool want_clean)
{
	int st;

	assert_int_equal(kill(pid, sig), 0);
	st = wait_exit(pid, FX_WAIT_MS, "the relay process");
	live_child = 0;
	if (want_clean && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		fail_msg("the relay process failed (status 0x%x)", st);
}

struct committer {
	litebus *bus;
	int ch;
	atomic_bool stop; /* set by the test, read by the thread */
	int rows;	  /* committed, read after the join */
	int rc;		  /* the first error, read after the join */
};

static void *
committer_main(void *arg)
{
	struct committer *cm = arg;

	/* Acquire: pairs with the release store of the test thread. */
	while (!atomic_load_explicit(&cm->stop, memory_order_acquire)) {
		/* No cmocka assert off the test's thread: the error is
		 * checked after the join. */
		cm->rc = commit_rows_rc(cm->bus, cm->ch, 7);
		if (cm->rc != LITEBUS_OK)
			break;
		cm->rows += 7;
	}
	return NULL;
}

static int
kill_rounds(void)
{
	const char *s = getenv("LITEBUS_RELAY_KILL_ROUNDS");

	return s != NULL ? atoi(s) : 4;
}

/* Header: "A relay killed after XADD and before its ack therefore
 * neither duplicates nor skips, and neither does one whose connection
 * broke with a batch in flight." */
static void
relay_sigkilled_at_random_moments_loses_and_repeats_nothing(void **state)
{
	struct relay_fixture *t = *state;
	struct committer cm;
	pthread_t th;
	redisContext *c;
	unsigned seed = (unsigned)time(NULL);
	int rounds = kill_rounds();
	pid_t pid;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	print_message("relay SIGKILL rounds: %d (seed %u)\n", rounds, seed);
	memset(&cm, 0, sizeof cm);
	cm.bus = t->f.bus;
	cm.ch = t->ch;
	atomic_init(&cm.stop, false);
	assert_int_equal(pthread_create(&th, NULL, committer_main, &cm), 0);
	for (int i = 0; i < rounds; i++) {
		int64_t at = redis_stream_last(c, KEY);
		struct timespec ts = {0, (long)(rand_r(&seed) % 20) * 1000000};

		pid = spawn_relay(t->f.path, t->rs.port);
		/* Kill it while it is shipping: once it made progress,
		 * after a random 0..19 ms more. */
		if (!redis_stream_wait(c, KEY, at + 1, 4 * FX_WAIT_MS))
			fail_msg("round %d: the relay made no progress", i);
		(void)nanosleep(&ts, NULL); /* the moment of the crash */
		reap(pid, SIGKILL, false);
	}
	/* Release: pairs with the acquire in committer_main. */
	atomic_store_explicit(&cm.stop, true, memory_order_release);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(cm.rc, LITEBUS_OK);
	pid = spawn_relay(t->f.path, t->rs.port);
	if (!redis_stream_wait(c, KEY, head_of(t->f.bus, t->ch),
			       4 * FX_WAIT_MS))
		fail_msg("the last relay did not catch up");
	reap(pid, SIGTERM, true);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY),
			 (uint64_t)cm.rows);
	redisFree(c);
}

/* ------------------------------------------------------------------ */
/* Redis failing                                                       */

/* Header, "Failures": "Redis down, restarting, slow, paused, refusing
 * ...: the channel's thread reconnects with exponential backoff ...
 * and loses nothing." */
static void
redis_sigkilled_and_restarted_mid_stream_loses_nothing(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_relay *r;
	redisContext *c;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	relay_options(&o, &t->rs);
	o.window = 16;
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	for (int round = 0; round < 3; round++) {
		int64_t at;

		commit_rows(t->f.bus, t->ch, 400);
		c = redis_admin(&t->rs);
		at = redis_stream_last(c, KEY);
		/* Mid-stream: after the relay moved, before it caught up
		 * (it may have; the crash is then between batches). */
		if (at < head_of(t->f.bus, t->ch))
			assert_true(
			    redis_stream_wait(c, KEY, at + 1, FX_WAIT_MS));
		redisFree(c);
		redis_server_stop(&t->rs, SIGKILL);
		commit_rows(t->f.bus, t->ch, 100); /* while it is down */
		redis_server_start(&t->rs);
	}
	wait_relayed(r, head_of(t->f.bus, t->ch));
	assert_int_equal(litebus_relay_stats_get(r, 0, &st), LITEBUS_OK);
	assert_true(st.reconnects >= 3);
	assert_true(st.errors >= 3);
	assert_int_equal(st.state, LITEBUS_RELAY_STREAMING);
	litebus_relay_stop(r);
	c = redis_admin(&t->rs);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 1500);
	redisFree(c);
}

/* Header, "Failures": "slow, paused": replies that take longer than
 * io_timeout_ms drop the connection; the batch is resent minus what the
 * stream holds (Y4 in relay.c). */
static void
redis_paused_for_seconds_loses_and_repeats_nothing(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_relay *r;
	redisContext *c;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	relay_options(&o, &t->rs);
	o.io_timeout_ms = 300; /* the pause outlasts it: reconnects */
	o.window = 8;
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	commit_rows(t->f.bus, t->ch, 200);
	wait_relayed(r, head_of(t->f.bus, t->ch));
	redis_ok(c, "CLIENT PAUSE 2000 ALL");
	commit_rows(t->f.bus, t->ch, 300); /* during the pause */
	wait_relayed(r, head_of(t->f.bus, t->ch));
	assert_int_equal(litebus_relay_stats_get(r, 0, &st), LITEBUS_OK);
	assert_true(st.reconnects >= 1); /* the pause was noticed */
	assert_non_null(strstr(st.last_error, "127.0.0.1"));
	litebus_relay_stop(r);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 500);
	redisFree(c);
}

/* Header, litebus_relay_stop: "a batch waiting for its reply is
 * abandoned: the next start finds in the stream what of it Redis
 * applied". */
static void
stop_does_not_wait_for_a_paused_redis_and_the_restart_loses_nothing(
    void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_relay *r;
	redisContext *c;
	struct timespec t0, t1;
	double secs;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	relay_options(&o, &t->rs);
	o.io_timeout_ms = 20000; /* longer than the test's patience */
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	commit_rows(t->f.bus, t->ch, 100);
	wait_relayed(r, head_of(t->f.bus, t->ch));
	redis_ok(c, "CLIENT PAUSE 3000 WRITE");
	commit_rows(t->f.bus, t->ch, 50);
	/* Until the relay holds a batch (sent, or about to be). */
	for (int i = 0;; i++) {
		assert_int_equal(litebus_relay_stats_get(r, 0, &st),
				 LITEBUS_OK);
		if (st.lag_ms > 0)
			break;
		if (i > FX_WAIT_MS)
			fail_msg("the relay did not read the new rows");
		assert_int_equal(litebus_relay_wait(r, 0, INT64_MAX, 1),
				 LITEBUS_TIMEOUT);
	}
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
	litebus_relay_stop(r);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t1), 0);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (secs > 1.5)
		fail_msg("litebus_relay_stop took %.2f s", secs);
	redis_ok(c, "CLIENT UNPAUSE");
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	wait_relayed(r, head_of(t->f.bus, t->ch));
	litebus_relay_stop(r);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 150);
	redisFree(c);
}

static int
big_rows_job(litebus_tx *tx, void *arg)
{
	static unsigned char payload[256 * 1024];
	litebus_record rec;
	int ch = *(const int *)arg;

	memset(&rec, 0, sizeof rec);
	rec.event_type = "big";
	rec.payload = payload;
	rec.payload_len = sizeof payload;
	for (int i = 0; i < 16; i++) {
		int rc;

		payload[0] = (unsigned char)i;
		rc = litebus_emit(tx, ch, &rec, NULL);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

/* Header, "Threads": "Those threads block SIGPIPE, so a connection Redis
 * closed is an error, not the end of the process": Redis drops the
 * relay's connection, then the relay writes a 4 MiB batch into it. */
static void
a_connection_redis_closed_is_an_error_not_a_sigpipe(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_relay *r;
	redisContext *c;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	relay_options(&o, &t->rs);
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	for (int round = 0; round < 3; round++) {
		commit_rows(t->f.bus, t->ch, 10);
		wait_relayed(r, head_of(t->f.bus, t->ch));
		/* Every connection but this one: the relay's two. */
		redis_ok(c, "CLIENT KILL TYPE normal SKIPME yes");
		assert_int_equal(litebus_exec(t->f.bus, big_rows_job, &t->ch),
				 LITEBUS_OK);
		wait_relayed(r, head_of(t->f.bus, t->ch));
	}
	assert_int_equal(litebus_relay_stats_get(r, 0, &st), LITEBUS_OK);
	assert_true(st.reconnects >= 3);
	litebus_relay_stop(r);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 3 * (10 + 16));
	redisFree(c);
}

/* Header, "Failures": "A wrong password is not permanent: it is reported
 * and retried, so that a password changed on the server is picked up
 * without a restart." and "it never spins". */
static void
wrong_password_is_reported_retried_with_backoff_then_caught_up(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_relay *r;
	redisContext *c;
	struct timespec t0, t1;
	double secs;

	open_bus(t, NULL);
	t->rs.password = "right";
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	commit_rows(t->f.bus, t->ch, 200);
	relay_options(&o, &t->rs);
	o.password = "wrong";
	o.backoff_min_ms = 10;
	o.backoff_max_ms = 80;
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	/* Until it has failed a few times (a deadline, not a sleep). */
	for (int i = 0;; i++) {
		assert_int_equal(litebus_relay_stats_get(r, 0, &st),
				 LITEBUS_OK);
		if (st.errors >= 5)
			break;
		if (i > FX_WAIT_MS)
			fail_msg("the relay did not retry (errors %" PRIu64 ")",
				 st.errors);
		assert_int_equal(litebus_relay_wait(r, 0, INT64_MAX, 1),
				 LITEBUS_TIMEOUT);
	}
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t1), 0);
	assert_int_equal(litebus_relay_stats_get(r, 0, &st), LITEBUS_OK);
	assert_non_null(strstr(st.last_error, "AUTH"));
	assert_non_null(strstr(st.last_error, "WRONGPASS"));
	assert_int_not_equal(st.state, LITEBUS_RELAY_STOPPED);
	assert_int_equal(st.position, 0);
	assert_int_equal(redis_stream_last(c, KEY), 0);
	/* Backoff 10, 20, 40, 80, 80 ms: 4 attempts take >= 70 ms. */
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs >= 0.070);
	assert_true(st.reconnects <= 2 + (uint64_t)(secs / 0.010));

	redis_ok(c, "CONFIG SET requirepass wrong");
	wait_relayed(r, head_of(t->f.bus, t->ch));
	litebus_relay_stop(r);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 200);
	redisFree(c);
}

/* Header: "Each batch of XADDs is sent as one MULTI/EXEC transaction, so
 * Redis applies all of it or none of it: a refusal in the middle of a
 * batch (out of memory, a failover) cannot leave a hole", and "Failures":
 * out of memory is retried. */
static void
out_of_memory_is_retried_and_leaves_no_hole(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_relay *r;
	redisContext *c;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	relay_options(&o, &t->rs);
	o.window = 16;
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	commit_rows(t->f.bus, t->ch, 100);
	wait_relayed(r, head_of(t->f.bus, t->ch));
	redis_ok(c, "CONFIG SET maxmemory 1"); /* every write refused */
	commit_rows(t->f.bus, t->ch, 200);
	for (int i = 0;; i++) {
		assert_int_equal(litebus_relay_stats_get(r, 0, &st),
				 LITEBUS_OK);
		if (strstr(st.last_error, "OOM") != NULL)
			break;
		if (i > FX_WAIT_MS)
			fail_msg("no OOM reported: %s", st.last_error);
		assert_int_equal(litebus_relay_wait(r, 0, INT64_MAX, 1),
				 LITEBUS_TIMEOUT);
	}
	assert_int_not_equal(st.state, LITEBUS_RELAY_STOPPED);
	assert_int_equal(redis_stream_last(c, KEY), 100); /* nothing more */
	redis_ok(c, "CONFIG SET maxmemory 0");
	wait_relayed(r, head_of(t->f.bus, t->ch));
	litebus_relay_stop(r);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 300);
	redisFree(c);
}

/* Header, "Failures": "Permanent errors stop that channel alone, with
 * state LITEBUS_RELAY_STOPPED and the reason in last_error: the key holds
 * another type (WRONGTYPE)". */
static void
wrong_type_at_the_key_stops_that_channel_with_a_clear_message(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_relay *r;
	redisContext *c;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	redis_ok(c, "SET litebus:orders not-a-stream");
	commit_rows(t->f.bus, t->ch, 10);
	relay_options(&o, &t->rs);
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	assert_int_equal(litebus_relay_wait(r, 0, 1, 4 * FX_WAIT_MS),
			 LITEBUS_CLOSED);
	assert_int_equal(litebus_relay_stats_get(r, 0, &st), LITEBUS_OK);
	assert_int_equal(st.state, LITEBUS_RELAY_STOPPED);
	assert_non_null(strstr(st.last_error, "WRONGTYPE"));
	/* The other channel goes on. */
	assert_int_equal(litebus_relay_stats_get(r, 1, &st), LITEBUS_OK);
	assert_int_not_equal(st.state, LITEBUS_RELAY_STOPPED);
	litebus_relay_stop(r);
	redisFree(c);
}

/* Header, "What the guarantee rests on": "rows are not pruned before
 * they are shipped: the relay's consumer holds back retention". */
static void
retention_while_redis_is_down_prunes_nothing_unshipped(void **state)
{
	struct relay_fixture *t = *state;
	static const litebus_retention ret[] = {
	    {"orders", 0, 10, 0}, {"audit", 0, 10, 0}, {NULL, 0, 0, 0}};
	static const char *const only_orders[] = {"orders", NULL};
	litebus_relay_options o;
	litebus_relay_stats st;
	litebus_consumer *keep;
	litebus_relay *r;
	redisContext *c;
	int64_t head, oldest;
	int audit;

	open_bus(t, ret); /* retention every 20 ms, newest 10 rows */
	audit = litebus_channel_id(t->f.bus, "audit");
	t->rs.port = redis_free_port(); /* nobody listens: Redis is down */
	relay_options(&o, &t->rs);
	assert_int_equal(litebus_relay_start(t->f.bus, only_orders, &o, &r),
			 LITEBUS_OK);
	commit_rows(t->f.bus, t->ch, 300);
	commit_rows(t->f.bus, audit, 300);
	/* Retention runs: "audit", which nobody relays, is cut to its
	 * newest rows.  (Polled: retention runs on a timer.) */
	for (int i = 0;; i++) {
		struct timespec ts = {0, 5 * 1000 * 1000};

		assert_int_equal(
		    litebus_channel_head(t->f.bus, audit, &head, &oldest),
		    LITEBUS_OK);
		if (oldest > 1)
			break;
		if (i * 5 > FX_WAIT_MS)
			fail_msg("retention did not run");
		(void)nanosleep(&ts, NULL);
	}
	/* A pass more (retention's own rule, deterministically). */
	assert_int_equal(litebus_prune(t->f.bus, t->ch, 301), LITEBUS_OK);
	assert_int_equal(litebus_channel_head(t->f.bus, t->ch, &head, &oldest),
			 LITEBUS_OK);
	assert_int_equal(oldest, 1); /* nothing unshipped was pruned */
	/* Between two attempts it reads what waits, so lag_ms tells how
	 * old the oldest unshipped row is (a deadline, not a sleep). */
	for (int i = 0;; i++) {
		assert_int_equal(litebus_relay_stats_get(r, 0, &st),
				 LITEBUS_OK);
		if (st.lag_ms > 0)
			break;
		if (i > FX_WAIT_MS)
			fail_msg("lag_ms stays 0 with 300 rows unshipped");
		assert_int_equal(litebus_relay_wait(r, 0, INT64_MAX, 1),
				 LITEBUS_TIMEOUT);
	}
	assert_int_equal(st.lag_events, 300);
	assert_true(st.errors >= 1);
	assert_non_null(strstr(st.last_error, "onnect"));

	/* Once shipped, retention may prune them; a consumer of the test
	 * keeps them for check_stream. */
	assert_int_equal(
	    litebus_consumer_open(t->f.bus, t->ch, "keep", 0, NULL, &keep),
	    LITEBUS_OK);
	redis_server_start(&t->rs); /* on the port the relay tries */
	c = redis_admin(&t->rs);
	wait_relayed(r, head);
	litebus_relay_stop(r);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 300);
	litebus_consumer_close(keep);
	redisFree(c);
}

/* ------------------------------------------------------------------ */
/* The other side: examples/redis_consumer                             */

static pid_t
spawn_consumer(const char *log, int port, const char *idle_exit)
{
	char p[16], out[420];
	const char *argv[] = {
	    LB_REDIS_CONSUMER, "--stream", KEY,		 "--log", log,
	    "--port",	       p,	   "--block-ms", "100",	  "--idle-exit",
	    idle_exit,	       NULL};
	posix_spawn_file_actions_t fa;
	pid_t pid;

	(void)snprintf(p, sizeof p, "%d", port);
	(void)snprintf(out, sizeof out, "%s.out", log);
	spawn_output_to(&fa, out);
	assert_int_equal(posix_spawn(&pid, LB_REDIS_CONSUMER, &fa, NULL,
				     (char *const *)argv, environ),
			 0);
	assert_int_equal(posix_spawn_file_actions_destroy(&fa), 0);
	live_child = pid;
	return pid;
}

/* examples/redis_consumer.c: "processes every event exactly once, across
 * its own crashes and restarts" by remembering the last entry id it
 * handled (XREAD BLOCK ... STREAMS key <last id>). */
static void
remote_consumer_killed_and_restarted_handles_each_entry_once(void **state)
{
	struct relay_fixture *t = *state;
	litebus_relay_options o;
	litebus_relay *r;
	redisContext *c;
	redisReply *all;
	char log[400], line[256];
	unsigned seed = (unsigned)time(NULL) ^ 0x5bd1e995u;
	size_t at = 0;
	FILE *f;
	int st;
	pid_t pid;

	open_bus(t, NULL);
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	(void)snprintf(log, sizeof log, "%s/handled.log", t->f.dir);
	relay_options(&o, &t->rs);
	assert_int_equal(litebus_relay_start(t->f.bus, channels, &o, &r),
			 LITEBUS_OK);
	for (int round = 0; round < 4; round++) {
		struct timespec ts = {0, (long)(rand_r(&seed) % 30) * 1000000};

		pid = spawn_consumer(log, t->rs.port, "-1");
		commit_rows(t->f.bus, t->ch, 500); /* while it reads */
		(void)nanosleep(&ts, NULL);	   /* the moment of the crash */
		reap(pid, SIGKILL, false);
	}
	wait_relayed(r, head_of(t->f.bus, t->ch));
	litebus_relay_stop(r);
	pid = spawn_consumer(log, t->rs.port, "300");
	st = wait_exit(pid, 4 * FX_WAIT_MS, "redis_consumer");
	live_child = 0;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 2000);

	/* The log names every entry of the stream once, in order. */
	all = redisCommand(c, "XRANGE %s - +", KEY);
	assert_non_null(all);
	assert_int_equal(all->elements, 2000);
	f = fopen(log, "r");
	assert_non_null(f);
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, " ")] = '\0';
		if (at >= all->elements)
			fail_msg("the log has %s after the last entry", line);
		if (strcmp(line, all->element[at]->element[0]->str) != 0)
			fail_msg("line %zu of the log is %s, the entry is %s",
				 at + 1, line,
				 all->element[at]->element[0]->str);
		at++;
	}
	assert_int_equal(fclose(f), 0);
	assert_int_equal(at, all->elements);
	freeReplyObject(all);
	redisFree(c);
}

/* litebus_relay.h, "ABI": older and newer programs' structs are read and
 * written up to their own size only; an older one's missing options take
 * their defaults, a newer one's unknown bytes must be 0.  No Redis is
 * needed: the relay connects on its own threads (port 1: refused). */
static void
relay_structs_follow_the_abi_policy_for_older_and_newer_programs(void **state)
{
	struct relay_fixture *t = *state;
	enum { EXTRA = 16 };
	size_t o_old = offsetof(litebus_relay_options, maxlen);
	size_t s_old = offsetof(litebus_relay_stats, relayed);
	size_t o_new = sizeof(litebus_relay_options) + EXTRA;
	size_t s_new = sizeof(litebus_relay_stats) + EXTRA;
	unsigned char ob[sizeof(litebus_relay_options) + EXTRA];
	unsigned char sb[sizeof(litebus_relay_stats) + EXTRA];
	litebus_relay_options *o = (litebus_relay_options *)(void *)ob;
	litebus_relay_stats *st = (litebus_relay_stats *)(void *)sb;
	const char *one[] = {"orders", NULL};
	litebus_relay *r = NULL;

	open_bus(t, NULL);
	/* An older program: nothing past its size is written or read. */
	memset(ob, 0xaa, sizeof ob);
	litebus_relay_options_init_sized(o, o_old);
	for (size_t i = o_old; i < sizeof ob; i++)
		assert_int_equal(ob[i], 0xaa);
	assert_string_equal(o->host, "127.0.0.1");
	o->port = 1;
	assert_int_equal(litebus_relay_start_sized(t->f.bus, one, o, o_old, &r),
			 LITEBUS_OK);
	memset(sb, 0xaa, sizeof sb);
	assert_int_equal(litebus_relay_stats_get_sized(r, 0, st, s_old),
			 LITEBUS_OK);
	assert_string_equal(st->channel, "orders");
	for (size_t i = s_old; i < sizeof sb; i++)
		assert_int_equal(sb[i], 0xaa);
	/* A newer program: unknown output bytes are zeroed. */
	assert_int_equal(litebus_relay_stats_get_sized(r, 0, st, s_new),
			 LITEBUS_OK);
	for (size_t i = sizeof(litebus_relay_stats); i < s_new; i++)
		assert_int_equal(sb[i], 0);
	litebus_relay_stop(r);
	r = NULL;

	memset(ob, 0xaa, sizeof ob);
	litebus_relay_options_init_sized(o, o_new);
	for (size_t i = sizeof(litebus_relay_options); i < o_new; i++)
		assert_int_equal(ob[i], 0);
	o->port = 1;
	/* ... and an option this library does not know is refused. */
	ob[o_new - 1] = 1;
	assert_int_equal(litebus_relay_start_sized(t->f.bus, one, o, o_new, &r),
			 LITEBUS_EINVAL);
	assert_null(r);
	ob[o_new - 1] = 0;
	assert_int_equal(litebus_relay_start_sized(t->f.bus, one, o, o_new, &r),
			 LITEBUS_OK);
	litebus_relay_stop(r);
	r = NULL;

	/* Smaller than any header ever had. */
	memset(ob, 0xaa, sizeof ob);
	litebus_relay_options_init_sized(o, 1);
	assert_int_equal(ob[0], 0xaa);
	assert_int_equal(litebus_relay_start_sized(t->f.bus, one, o, 1, &r),
			 LITEBUS_EINVAL);
	assert_null(r);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		steady_load_reaches_the_stream_exactly_once_in_order, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		maxlen_trims_the_stream_and_keeps_its_newest_entries, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		durable_position_behind_the_stream_neither_duplicates_nor_skips,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		relay_sigkilled_at_random_moments_loses_and_repeats_nothing,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		redis_sigkilled_and_restarted_mid_stream_loses_nothing, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		redis_paused_for_seconds_loses_and_repeats_nothing, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		stop_does_not_wait_for_a_paused_redis_and_the_restart_loses_nothing,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_connection_redis_closed_is_an_error_not_a_sigpipe, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		wrong_password_is_reported_retried_with_backoff_then_caught_up,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		out_of_memory_is_retried_and_leaves_no_hole, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		wrong_type_at_the_key_stops_that_channel_with_a_clear_message,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		retention_while_redis_is_down_prunes_nothing_unshipped, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		remote_consumer_killed_and_restarted_handles_each_entry_once,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		relay_structs_follow_the_abi_policy_for_older_and_newer_programs,
		setup, teardown),
	};

	if (argc == 4 && strcmp(argv[1], "--relay-child") == 0)
		return relay_child_main(argv[2], atoi(argv[3]));
	if (argc == 2)
		cmocka_set_test_filter(argv[1]); /* one test, by name */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
