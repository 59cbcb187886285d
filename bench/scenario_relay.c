/* SPDX-License-Identifier: MIT */
/*
 * scenario_relay.c - the Redis Streams relay (include/litebus_relay.h):
 * does it keep up with litebus's commit rate, and how long from a
 * commit to its entry being visible in Redis?
 *
 * A redis-server of the benchmark's own (127.0.0.1, a free port, a
 * temporary directory; aof=no: no persistence, aof=always: append-only
 * file with appendfsync always, the setting the relay's guarantee asks
 * for).  Per configuration, five phases on fresh database files, T =
 * 3 s (0.5 s with --quick):
 *
 *  submit256   the baseline, in the same run: one producer keeps 256 jobs
 *              in flight (litebus_submit, one event per job) for T
 *              seconds, no relay: commit rate C0 (submit256_ev_s).
 *  throughput  the same load with the relay running in this process
 *              (default options: window 1024): the commit rate C1 while
 *              it runs (commit_ev_s), the time until the relay has the
 *              last row in Redis, and from it the relay's rate R = rows /
 *              that time (relay_ev_s); relay_vs_submit256 = R / C0 (the
 *              issue's goal: >= 0.8), relay_vs_commit = R / C1 (1.00:
 *              the relay kept pace with what was committed while it
 *              ran), and the largest lag seen while committing
 *              (max_lag_events, sampled every 10 ms: bounded when the
 *              relay keeps up).  On a machine with few cores the relay
 *              and Redis take CPU from the producer and the writer, so
 *              C1 < C0.
 *  catchup     the relay alone on a backlog (50,000 rows, 200,000
 *              without --quick) committed before it starts: its capacity
 *              (catchup_ev_s, and catchup_vs_submit256 = that / C0).
 *  ceiling     the same rows as XADDs formatted ahead of time, sent by a
 *              plain hiredis client in MULTI/EXEC batches of the same
 *              window, one in flight: what Redis and the connection take
 *              with no litebus at all (ceiling_ev_s; catchup_vs_ceiling).
 *  latency     one exec per 2 ms for T seconds, the relay running, and a
 *              client in XREAD BLOCK on the stream: latency = when the
 *              client got the entry - when litebus_exec returned (its
 *              COMMIT was done then); p50 and p99 (lat_p50_us,
 *              lat_p99_us).
 *
 * Checks: after each relay phase, XLEN equals the rows committed and the
 * stream's last id is the channel's head (the tests in tests/relay check
 * every field).
 */
#define _DEFAULT_SOURCE /* mkdtemp */

#include "bench.h"
#include "hist.h"
#include "litebus_relay.h"

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

void scenario_relay(void); /* registered in litebus-bench.c */

#define INFLIGHT 256
#define KEY "litebus:" BENCH_CHANNEL
#define LAT_PERIOD_NS 2000000ull

struct redis {
	char dir[64];
	int port;
	pid_t pid;
};

static int
free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	(void)close(fd);
	return port;
}

static redisContext *
redis_connect(int port)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

	if (c != NULL && c->err != 0) {
		redisFree(c);
		c = NULL;
	}
	return c;
}

static void
redis_stop(struct redis *r)
{
	char cmd[128];
	int st;

	if (r->pid > 0) {
		(void)kill(r->pid, SIGKILL);
		(void)waitpid(r->pid, &st, 0);
		r->pid = 0;
	}
	(void)snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "litebus-bench: could not remove %s\n", r->dir);
}

/* Start redis-server; false if there is none or it does not answer. */
static bool
redis_start(struct redis *r, bool aof)
{
	char port[16];
	const char *argv[] = {"redis-server",
			      "--port",
			      port,
			      "--bind",
			      "127.0.0.1",
			      "--dir",
			      r->dir,
			      "--save",
			      "",
			      "--appendonly",
			      aof ? "yes" : "no",
			      "--appendfsync",
			      "always",
			      "--maxmemory-policy",
			      "noeviction",
			      "--logfile",
			      "redis.log",
			      NULL};

	(void)snprintf(r->dir, sizeof r->dir,
		       "/tmp/litebus-bench-redis-XXXXXX");
	if (mkdtemp(r->dir) == NULL)
		return false;
	r->port = free_port();
	(void)snprintf(port, sizeof port, "%d", r->port);
	if (r->port < 0 || posix_spawnp(&r->pid, "redis-server", NULL, NULL,
					(char *const *)argv, environ) != 0) {
		r->pid = 0;
		redis_stop(r);
		return false;
	}
	for (int i = 0; i < 500; i++) { /* up to 5 s */
		redisContext *c = redis_connect(r->port);

		if (c != NULL) {
			redisFree(c);
			return true;
		}
		bench_sleep_ns(10000000);
	}
	redis_stop(r);
	return false;
}

/* ------------------------------------------------------------------ */

static void
submit_done(int status, void *arg)
{
	(void)status;
	sem_post(arg);
}

/* submit256 for `secs`: returns the events committed. */
static uint64_t
submit_for(litebus *bus, double secs, litebus_relay *relay, int64_t *max_lag)
{
	sem_t slots;
	uint64_t n = 0, t_end = bench_now_ns() + (uint64_t)(secs * 1e9);
	uint64_t next_sample = 0;

	if (sem_init(&slots, 0, INFLIGHT) != 0)
		abort();
	while (bench_now_ns() < t_end) {
		sem_wait(&slots);
		bench_litebus_check(
		    litebus_submit(bus, bench_emit_job,
				   (void *)(uintptr_t)BENCH_KEY(0, n),
				   submit_done, &slots),
		    "litebus_submit");
		n++;
		if (relay != NULL && bench_now_ns() >= next_sample) {
			litebus_relay_stats st;

			next_sample = bench_now_ns() + 10000000;
			if (litebus_relay_stats_get(relay, 0, &st) ==
				LITEBUS_OK &&
			    st.lag_events > *max_lag)
				*max_lag = st.lag_events;
		}
	}
	for (int i = 0; i < INFLIGHT; i++)
		sem_wait(&slots);
	sem_destroy(&slots);
	return n;
}

static void
check_stream(struct bench_result *res, int port, litebus *bus, uint64_t rows)
{
	redisContext *c = redis_connect(port);
	redisReply *len = NULL, *info = NULL;
	int64_t head = 0, oldest = 0, last = -1;

	bench_litebus_check(
	    litebus_channel_head(bus, BENCH_CHANNEL_ID, &head, &oldest),
	    "litebus_channel_head");
	if (c != NULL) {
		len = redisCommand(c, "XLEN %s", KEY);
		info = redisCommand(c, "XINFO STREAM %s", KEY);
	}
	if (info != NULL && info->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i + 1 < info->elements; i += 2)
			if (strcmp(info->element[i]->str,
				   "last-generated-id") == 0)
				last = strtoll(info->element[i + 1]->str, NULL,
					       10);
	res_check(res, "stream",
		  len != NULL && len->type == REDIS_REPLY_INTEGER &&
		      (uint64_t)len->integer == rows && last == head,
		  "XLEN %lld of %llu rows, last id %lld, head %lld",
		  len != NULL ? len->integer : -1LL, (unsigned long long)rows,
		  (long long)last, (long long)head);
	if (len != NULL)
		freeReplyObject(len);
	if (info != NULL)
		freeReplyObject(info);
	if (c != NULL) {
		redisFree(c);
	}
}

static litebus_relay *
relay_start(litebus *bus, int port, uint32_t window)
{
	static const char *const ch[] = {BENCH_CHANNEL, NULL};
	litebus_relay_options o;
	litebus_relay *r;

	litebus_relay_options_init(&o);
	o.port = port;
	if (window > 0)
		o.window = window;
	bench_litebus_check(litebus_relay_start(bus, ch, &o, &r),
			    "litebus_relay_start");
	return r;
}

static char bus_path[512]; /* the current bus's file */

static litebus *
fresh_bus(void)
{
	bench_db_path(bus_path, sizeof bus_path, "relay");
	return bench_open_bus(bus_path, LITEBUS_DURABILITY_NORMAL, 4096);
}

static void
close_bus(litebus *bus)
{
	bench_litebus_check(litebus_close(bus), "litebus_close");
	bench_db_remove(bus_path);
}

static void
redis_del(int port)
{
	redisContext *c = redis_connect(port);
	redisReply *r = c != NULL ? redisCommand(c, "DEL %s", KEY) : NULL;

	if (r != NULL)
		freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
}

/* The latency phase's watcher: XREAD BLOCK, one timestamp per entry. */
struct watch {
	int port;
	uint64_t rows;
	uint64_t *seen_ns; /* [event_id] */
	bool ok;
};

static void *
watch_main(void *arg)
{
	struct watch *w = arg;
	redisContext *c = redis_connect(w->port);
	char last[48] = "0-0";
	uint64_t got = 0;

	w->ok = false;
	if (c == NULL)
		return NULL;
	while (got < w->rows) {
		redisReply *r = redisCommand(
		    c, "XREAD COUNT 1000 BLOCK 10000 STREAMS %s %s", KEY, last);
		uint64_t now = bench_now_ns();

		if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
			if (r != NULL)
				freeReplyObject(r);
			break; /* an error, or 10 s without an entry */
		}
		for (size_t i = 0; i < r->element[0]->element[1]->elements;
		     i++) {
			const char *id = r->element[0]
					     ->element[1]
					     ->element[i]
					     ->element[0]
					     ->str;
			int64_t ev = strtoll(id, NULL, 10);

			if (ev >= 1 && (uint64_t)ev <= w->rows)
				w->seen_ns[ev] = now;
			(void)snprintf(last, sizeof last, "%s", id);
			got++;
		}
		freeReplyObject(r);
	}
	w->ok = got == w->rows;
	redisFree(c);
	return NULL;
}

static int
emit_id_job(litebus_tx *tx, void *arg)
{
	unsigned char subject[BENCH_SUBJECT_LEN];
	litebus_record rec;

	bench_record(&rec, subject, 0);
	return litebus_emit(tx, BENCH_CHANNEL_ID, &rec, arg);
}

/* The ceiling: the same entries (the bench row's fields, ids 1..rows),
 * formatted ahead of time, sent by a plain hiredis client in MULTI/EXEC
 * batches of `window`, one batch in flight, as fast as Redis takes them:
 * what Redis and the connection allow, with no litebus at all.  Rows per
 * second, or 0 on an error. */
static double
ceiling_rate(int port, uint64_t rows, uint32_t window)
{
	redisContext *c = redis_connect(port);
	unsigned char subject[BENCH_SUBJECT_LEN];
	uint64_t t0;
	bool ok = c != NULL;

	if (window == 0)
		window = 1024; /* the relay's default */
	bench_subject(subject, 0);
	t0 = bench_now_ns();
	for (uint64_t first = 1; ok && first <= rows; first += window) {
		uint64_t n =
		    rows - first + 1 < window ? rows - first + 1 : window;
		redisReply *rep;

		ok = redisAppendCommand(c, "MULTI") == REDIS_OK;
		for (uint64_t id = first; ok && id < first + n; id++) {
			char eid[32], pk[24], ts[24];
			const char *argv[] = {"XADD",
					      KEY,
					      eid,
					      "partition_key",
					      pk,
					      "subject",
					      (const char *)subject,
					      "event_type",
					      BENCH_EVENT_TYPE,
					      "namespace",
					      BENCH_NS,
					      "payload",
					      (const char *)bench_payload,
					      "occurred_at_ms",
					      ts,
					      "committed_at_ms",
					      ts};
			size_t len[17];

			(void)snprintf(eid, sizeof eid, "%llu-0",
				       (unsigned long long)id);
			(void)snprintf(pk, sizeof pk, "%llu",
				       (unsigned long long)id);
			(void)snprintf(ts, sizeof ts, "%lld",
				       (long long)bench_wall_ms());
			for (int a = 0; a < 17; a++)
				len[a] = strlen(argv[a]);
			len[6] = BENCH_SUBJECT_LEN;
			len[12] = BENCH_PAYLOAD_LEN;
			ok = redisAppendCommandArgv(c, 17, argv, len) ==
			     REDIS_OK;
		}
		ok = ok && redisAppendCommand(c, "EXEC") == REDIS_OK;
		for (uint64_t k = 0; ok && k < n + 2; k++) {
			ok = redisGetReply(c, (void **)&rep) == REDIS_OK &&
			     rep->type != REDIS_REPLY_ERROR;
			if (rep != NULL)
				freeReplyObject(rep);
		}
	}
	if (c != NULL)
		redisFree(c);
	redis_del(port);
	return ok ? (double)rows / bench_secs(bench_now_ns() - t0) : 0;
}

static void
relay_config(bool aof, uint32_t window)
{
	double secs = bench_cfg.quick ? 0.5 : 3.0;
	struct bench_result *res = res_new("relay");
	struct redis rs;

	res_cfg(res, "aof", "%s", aof ? "always" : "no");
	if (window > 0)
		res_cfg(res, "window", "%u", window);
	else
		res_cfg(res, "window", "%s", "default");
	if (!redis_start(&rs, aof)) {
		res_note("relay: redis-server not found or did not start; "
			 "skipped");
		res_check(res, "redis", false, "no redis-server");
		res_emit(res);
		return;
	}
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		litebus *bus;
		litebus_relay *relay;
		uint64_t n, t0, t_commit, t_relay, lat_rows;
		int64_t max_lag = 0, head = 0, oldest = 0;
		double c0, c1, rr;
		uint64_t *commit_ns, *seen_ns;
		struct watch w;
		pthread_t th;
		struct hist h;
		uint64_t backlog = bench_cfg.quick ? 50000 : 200000;
		double catchup, ceiling;

		/* submit256, no relay. */
		bus = fresh_bus();
		t0 = bench_now_ns();
		n = submit_for(bus, secs, NULL, NULL);
		c0 = (double)n / bench_secs(bench_now_ns() - t0);
		close_bus(bus);

		/* The same with the relay. */
		bus = fresh_bus();
		relay = relay_start(bus, rs.port, window);
		t0 = bench_now_ns();
		n = submit_for(bus, secs, relay, &max_lag);
		t_commit = bench_now_ns() - t0;
		bench_litebus_check(
		    litebus_channel_head(bus, BENCH_CHANNEL_ID, &head, &oldest),
		    "litebus_channel_head");
		if (litebus_relay_wait(relay, 0, head, 60000) != LITEBUS_OK)
			res_check(res, "caught_up", false,
				  "the relay did not catch up in 60 s");
		t_relay = bench_now_ns() - t0;
		c1 = (double)n / bench_secs(t_commit);
		rr = (double)n / bench_secs(t_relay);
		litebus_relay_stop(relay);
		check_stream(res, rs.port, bus, n);
		close_bus(bus);
		res_val(res, "submit256_ev_s", 0, c0);
		res_val(res, "commit_ev_s", 0, c1);
		res_val(res, "relay_ev_s", 0, rr);
		res_ratio(res, "relay_vs_submit256", 2, rr, c0);
		res_ratio(res, "relay_vs_commit", 2, rr, c1);
		res_val(res, "max_lag_events", 0, (double)max_lag);

		/* Catch-up: the relay alone, on a backlog. */
		redis_del(rs.port);
		bus = fresh_bus();
		bench_fill(bus, backlog);
		t0 = bench_now_ns();
		relay = relay_start(bus, rs.port, window);
		if (litebus_relay_wait(relay, 0, (int64_t)backlog, 60000) !=
		    LITEBUS_OK)
			res_check(res, "caught_up", false,
				  "the relay did not catch up in 60 s");
		catchup = (double)backlog / bench_secs(bench_now_ns() - t0);
		res_val(res, "catchup_ev_s", 0, catchup);
		res_ratio(res, "catchup_vs_submit256", 2, catchup, c0);
		litebus_relay_stop(relay);
		check_stream(res, rs.port, bus, backlog);
		close_bus(bus);
		redis_del(rs.port);
		ceiling = ceiling_rate(rs.port, backlog, window);
		res_check(res, "ceiling", ceiling > 0,
			  "the ceiling's client failed");
		res_val(res, "ceiling_ev_s", 0, ceiling);
		res_ratio(res, "catchup_vs_ceiling", 2, catchup, ceiling);

		/* Latency: one exec per 2 ms. */
		redis_del(rs.port);
		lat_rows = (uint64_t)(secs * 1e9 / (double)LAT_PERIOD_NS);
		commit_ns = calloc(lat_rows + 1, sizeof *commit_ns);
		seen_ns = calloc(lat_rows + 1, sizeof *seen_ns);
		if (commit_ns == NULL || seen_ns == NULL)
			abort();
		bus = fresh_bus();
		relay = relay_start(bus, rs.port, window);
		w.port = rs.port;
		w.rows = lat_rows;
		w.seen_ns = seen_ns;
		if (pthread_create(&th, NULL, watch_main, &w) != 0)
			abort();
		t0 = bench_now_ns();
		for (uint64_t i = 0; i < lat_rows; i++) {
			int64_t id = 0;

			bench_sleep_until_ns(t0 + i * LAT_PERIOD_NS);
			bench_litebus_check(litebus_exec(bus, emit_id_job, &id),
					    "litebus_exec");
			if (id >= 1 && (uint64_t)id <= lat_rows)
				commit_ns[id] = bench_now_ns();
		}
		pthread_join(th, NULL);
		litebus_relay_stop(relay);
		check_stream(res, rs.port, bus, lat_rows);
		close_bus(bus);
		hist_init(&h);
		for (uint64_t i = 1; i <= lat_rows; i++)
			hist_add(&h, seen_ns[i] > commit_ns[i]
					 ? seen_ns[i] - commit_ns[i]
					 : 0);
		res_check(res, "latency_rows", w.ok,
			  "the XREAD client did not get every entry");
		res_val(res, "lat_p50_us", 0,
			(double)hist_quantile(&h, 0.5) / 1e3);
		res_val(res, "lat_p99_us", 0,
			(double)hist_quantile(&h, 0.99) / 1e3);
		free(commit_ns);
		free(seen_ns);
		redis_del(rs.port);
	}
	redis_stop(&rs);
	res_emit(res);
}

void
scenario_relay(void)
{
	res_note("relay: submit256 without the relay (baseline), then with "
		 "it (relay_ev_s = rows / time until the relay had the last "
		 "in Redis; goal relay_vs_submit256 >= 0.8), then commit -> "
		 "entry visible to an XREAD BLOCK client, one exec per 2 ms");
	relay_config(false, 0);
	relay_config(true, 0);
	/* With appendfsync always a batch costs an fsync: larger ones. */
	relay_config(true, 4096);
}
