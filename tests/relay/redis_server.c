/* SPDX-License-Identifier: MIT */
/*
 * redis_server.c - see redis_server.h.
 *
 * Threads: the test's thread (commit_rows may be called from a committing
 * thread of the test; it uses only the bus and a per-call seed).
 *
 * Invariants
 *   S1  A started server is ours: spawned by us (never the system
 *       service), on 127.0.0.1 and a port it did not share, with its
 *       files in s->dir; s->pid != 0 exactly while it runs, and stop
 *       reaps it.
 */
#include "redis_server.h"
#include "fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
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

#ifndef LB_REDIS_SERVER
#define LB_REDIS_SERVER "redis-server"
#endif

extern char **environ;

int
redis_free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	assert_int_equal(close(fd), 0);
	return port;
}

static redisContext *
try_connect(const struct redis_server *s)
{
	struct timeval tv = {1, 0}, io = {FX_WAIT_MS / 1000, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);

	/* Every reply has a deadline too: a stalled server fails the test
	 * instead of hanging it. */
	if (c == NULL || c->err != 0 || redisSetTimeout(c, io) != REDIS_OK) {
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	if (s->password != NULL) {
		redisReply *r = redisCommand(c, "AUTH %s", s->password);

		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			if (r != NULL)
				freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	return c;
}

static bool
answers_ping(const struct redis_server *s)
{
	redisContext *c = try_connect(s);
	redisReply *r;
	bool ok;

	if (c == NULL)
		return false;
	r = redisCommand(c, "PING");
	ok = r != NULL && r->type == REDIS_REPLY_STATUS;
	if (r != NULL)
		freeReplyObject(r);
	redisFree(c);
	return ok;
}

/* Spawn once; true if it answers within the deadline. */
static bool
spawn_once(struct redis_server *s)
{
	char port[16], log[300];
	const char *argv[32];
	int argc = 0, st;
	pid_t pid;

	(void)snprintf(port, sizeof port, "%d", s->port);
	(void)snprintf(log, sizeof log, "%s/redis.log", s->dir);
	argv[argc++] = LB_REDIS_SERVER;
	argv[argc++] = "--port";
	argv[argc++] = port;
	argv[argc++] = "--bind";
	argv[argc++] = "127.0.0.1";
	argv[argc++] = "--dir";
	argv[argc++] = s->dir;
	argv[argc++] = "--logfile";
	argv[argc++] = log;
	argv[argc++] = "--daemonize";
	argv[argc++] = "no";
	argv[argc++] = "--save";
	argv[argc++] = "";
	argv[argc++] = "--appendonly";
	argv[argc++] = "yes";
	argv[argc++] = "--appendfsync";
	argv[argc++] = "always";
	argv[argc++] = "--maxmemory-policy";
	argv[argc++] = "noeviction";
	if (s->password != NULL) {
		argv[argc++] = "--requirepass";
		argv[argc++] = s->password;
	}
	argv[argc] = NULL;
	if (posix_spawnp(&pid, LB_REDIS_SERVER, NULL, NULL, (char *const *)argv,
			 environ) != 0)
		fail_msg("cannot run %s: %s", LB_REDIS_SERVER, strerror(errno));
	s->pid = pid;
	for (int i = 0; i < FX_WAIT_MS / 10; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		if (answers_ping(s))
			return true;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			s->pid = 0; /* exited: the port was taken meanwhile? */
			return false;
		}
		/* Polls a process that gives no other sign of readiness. */
		(void)nanosleep(&ts, NULL);
	}
	redis_server_stop(s, SIGKILL);
	return false;
}

void
redis_server_start(struct redis_server *s)
{
	assert_int_equal(s->pid, 0);
	if (s->dir[0] == '\0') {
		(void)snprintf(s->dir, sizeof s->dir,
			       "/tmp/litebus-redis-XXXXXX");
		assert_non_null(mkdtemp(s->dir));
		for (int tries = 0; s->port == 0 && tries < 5; tries++) {
			s->port = redis_free_port();
			if (spawn_once(s))
				return;
			s->port = 0;
		}
		if (s->port == 0)
			fail_msg(
			    "redis-server did not start (see %s/redis.log)",
			    s->dir);
	}
	/* A restart keeps its port, so that the relay finds it again; so
	 * does a first start on a port the test chose. */
	if (!spawn_once(s))
		fail_msg("redis-server did not restart on port %d (see "
			 "%s/redis.log)",
			 s->port, s->dir);
}

void
redis_server_stop(struct redis_server *s, int sig)
{
	int st;

	if (s->pid == 0)
		return;
	assert_int_equal(kill(s->pid, sig), 0);
	assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
	s->pid = 0;
}

void
redis_server_cleanup(struct redis_server *s)
{
	char cmd[300];

	if (s->pid != 0)
		redis_server_stop(s, SIGKILL);
	if (s->dir[0] != '\0') {
		(void)snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", s->dir);
		s->dir[0] = '\0';
	}
}

redisContext *
redis_admin(const struct redis_server *s)
{
	redisContext *c = try_connect(s);

	if (c == NULL)
		fail_msg("no admin connection to redis on port %d", s->port);
	return c;
}

void
redis_ok(redisContext *c, const char *cmd)
{
	redisReply *r = redisCommand(c, cmd);

	if (r == NULL)
		fail_msg("%s: %s", cmd, c->errstr);
	if (r->type == REDIS_REPLY_ERROR)
		fail_msg("%s: %s", cmd, r->str);
	freeReplyObject(r);
}

static int64_t
id_ms(const char *s)
{
	return strtoll(s, NULL, 10);
}

int64_t
redis_stream_last(redisContext *c, const char *key)
{
	redisReply *r = redisCommand(c, "XINFO STREAM %s", key);
	int64_t last = -1;

	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "ERR no such key", 15) == 0)
		last = 0;
	if (r->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i + 1 < r->elements; i += 2)
			if (strcmp(r->element[i]->str, "last-generated-id") ==
			    0)
				last = id_ms(r->element[i + 1]->str);
	freeReplyObject(r);
	return last;
}

bool
redis_stream_wait(redisContext *c, const char *key, int64_t id, int timeout_ms)
{
	struct timespec t0, t;
	int64_t last;

	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
	for (;;) {
		redisReply *r;
		char after[32];

		last = redis_stream_last(c, key);
		if (last >= id)
			return true;
		assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t), 0);
		if ((t.tv_sec - t0.tv_sec) * 1000 +
			(t.tv_nsec - t0.tv_nsec) / 1000000 >
		    timeout_ms)
			return false;
		/* Blocks until an entry after `last` arrives (or 100 ms:
		 * then the stream is read again, as it may not exist yet). */
		(void)snprintf(after, sizeof after, "%" PRId64 "-0",
			       last < 0 ? 0 : last);
		r = redisCommand(c, "XREAD COUNT 1 BLOCK 100 STREAMS %s %s",
				 key, after);
		if (r == NULL)
			fail_msg("XREAD: %s", c->errstr);
		freeReplyObject(r);
	}
}

int
wait_exit(pid_t pid, int timeout_ms, const char *what)
{
	int st;

	for (int waited = 0;; waited++) {
		struct timespec ts = {0, 1000 * 1000};
		pid_t got = waitpid(pid, &st, WNOHANG);

		assert_true(got == 0 || got == pid);
		if (got == pid)
			return st;
		if (waited >= timeout_ms) {
			(void)kill(pid, SIGKILL);
			(void)waitpid(pid, &st, 0);
			fail_msg("%s (pid %d) did not exit within %d ms", what,
				 (int)pid, timeout_ms);
		}
		/* A parent learns of an exit through SIGCHLD or waitpid
		 * only; a handler would be process-wide: a 1 ms poll with a
		 * deadline. */
		(void)nanosleep(&ts, NULL);
	}
}

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static time_t wd_deadline; /* under wd_lock; CLOCK_REALTIME seconds */
static const char *wd_what;
static bool wd_started;

static void *
watchdog_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wd_lock);
	for (;;) {
		struct timespec dl = {wd_deadline, 0};

		if (pthread_cond_timedwait(&wd_cond, &wd_lock, &dl) ==
			ETIMEDOUT &&
		    time(NULL) >= wd_deadline) {
			fprintf(stderr,
				"watchdog: no progress for the deadline in "
				"%s: aborting\n",
				wd_what);
			abort();
		}
	}
	return NULL;
}

void
watchdog_arm(int seconds, const char *what)
{
	pthread_t th;

	pthread_mutex_lock(&wd_lock);
	wd_deadline = time(NULL) + seconds;
	wd_what = what;
	if (!wd_started) {
		wd_started = true;
		assert_int_equal(pthread_create(&th, NULL, watchdog_main, NULL),
				 0);
		assert_int_equal(pthread_detach(th), 0);
	}
	pthread_cond_signal(&wd_cond);
	pthread_mutex_unlock(&wd_lock);
}

/* ------------------------------------------------------------------ */

static const redisReply *
field(const redisReply *fv, const char *name)
{
	for (size_t i = 0; i + 1 < fv->elements; i += 2)
		if (strcmp(fv->element[i]->str, name) == 0)
			return fv->element[i + 1];
	return NULL;
}

static void
check_int(const redisReply *fv, const char *name, int64_t want, int64_t id)
{
	const redisReply *v = field(fv, name);

	if (v == NULL)
		fail_msg("entry %" PRId64 ": no field %s", id, name);
	if (strtoll(v->str, NULL, 10) != want)
		fail_msg("entry %" PRId64 ": %s is %s, the row has %" PRId64,
			 id, name, v->str, want);
}

static void
check_bytes(const redisReply *fv, const char *name, const void *want,
	    size_t len, int64_t id)
{
	const redisReply *v = field(fv, name);

	if (want == NULL && len == 0 &&
	    (strcmp(name, "namespace") == 0 ||
	     strcmp(name, "instance_tag") == 0)) {
		if (v != NULL)
			fail_msg("entry %" PRId64 ": %s present for NULL", id,
				 name);
		return;
	}
	if (v == NULL)
		fail_msg("entry %" PRId64 ": no field %s", id, name);
	if (v->len != len || (len > 0 && memcmp(v->str, want, len) != 0))
		fail_msg("entry %" PRId64 ": field %s differs from the row", id,
			 name);
}

uint64_t
check_stream(litebus *bus, int channel, redisContext *c, const char *key)
{
	litebus_reader *rd;
	litebus_row row;
	char start[40] = "-";
	redisReply *page = NULL;
	size_t at = 0;
	uint64_t n = 0;
	int rc;

	assert_int_equal(
	    litebus_reader_open(bus, channel, LITEBUS_FROM_START, NULL, &rd),
	    LITEBUS_OK);
	while ((rc = litebus_reader_next(rd, &row, 0)) == LITEBUS_OK) {
		const redisReply *e, *fv;
		char want[32];

		if (page == NULL || at == page->elements) {
			if (page != NULL)
				freeReplyObject(page);
			page = redisCommand(c, "XRANGE %s %s + COUNT 1000", key,
					    start);
			if (page == NULL)
				fail_msg("XRANGE: %s", c->errstr);
			if (page->type != REDIS_REPLY_ARRAY)
				fail_msg("XRANGE %s: %s", key,
					 page->type == REDIS_REPLY_ERROR
					     ? page->str
					     : "not an array");
			at = 0;
			if (page->elements == 0)
				fail_msg("row %" PRId64 " (the %" PRIu64
					 "th) is not in the stream",
					 row.event_id, n + 1);
		}
		e = page->element[at++];
		fv = e->element[1];
		(void)snprintf(want, sizeof want, "%" PRId64 "-0",
			       row.event_id);
		if (strcmp(e->element[0]->str, want) != 0)
			fail_msg("the stream has %s where row %s belongs (a "
				 "duplicate, a gap or a reordering)",
				 e->element[0]->str, want);
		(void)snprintf(start, sizeof start, "(%s", want);
		check_int(fv, "partition_key", row.partition_key, row.event_id);
		check_bytes(fv, "subject", row.subject, row.subject_len,
			    row.event_id);
		check_bytes(fv, "event_type", row.event_type,
			    strlen(row.event_type), row.event_id);
		check_bytes(fv, "namespace", row.ns,
			    row.ns != NULL ? strlen(row.ns) : 0, row.event_id);
		check_bytes(fv, "instance_tag", row.instance_tag,
			    row.instance_tag != NULL ? strlen(row.instance_tag)
						     : 0,
			    row.event_id);
		check_bytes(fv, "payload", row.payload, row.payload_len,
			    row.event_id);
		check_int(fv, "occurred_at_ms", row.occurred_at_ms,
			  row.event_id);
		check_int(fv, "committed_at_ms", row.committed_at_ms,
			  row.event_id);
		assert_int_equal(
		    fv->elements,
		    2 * (6 + (row.ns != NULL) + (row.instance_tag != NULL)));
		n++;
	}
	assert_int_equal(rc, LITEBUS_TIMEOUT);
	litebus_reader_close(rd);
	/* Nothing after the last row. */
	if (page == NULL || at == page->elements) {
		if (page != NULL)
			freeReplyObject(page);
		page = redisCommand(c, "XRANGE %s %s + COUNT 1", key, start);
		assert_non_null(page);
		at = 0;
	}
	if (page->type == REDIS_REPLY_ARRAY && at < page->elements)
		fail_msg("the stream has %s after the last committed row",
			 page->element[at]->element[0]->str);
	freeReplyObject(page);
	return n;
}

/* ------------------------------------------------------------------ */

static _Atomic uint64_t row_counter; /* varies the fields; any thread */

int
relay_rows_job(litebus_tx *tx, void *arg)
{
	const struct relay_rows *w = arg;

	for (int i = 0; i < w->n; i++) {
		/* Relaxed: only a source of variety. */
		uint64_t k = atomic_fetch_add_explicit(&row_counter, 1,
						       memory_order_relaxed);
		unsigned char subject[12], payload[96];
		litebus_record rec;
		int rc;

		for (size_t j = 0; j < sizeof subject; j++)
			subject[j] = (unsigned char)(k >> (j % 8) * 8);
		for (size_t j = 0; j < sizeof payload; j++)
			payload[j] = (unsigned char)(k * 31 + j); /* has 0s */
		memset(&rec, 0, sizeof rec);
		rec.partition_key = (int64_t)(k % 1000) - 500;
		rec.subject = subject;
		rec.subject_len = k % 4 == 0 ? 0 : sizeof subject;
		rec.event_type = k % 2 ? "created" : "paid";
		rec.ns = k % 3 == 0 ? NULL : (k % 3 == 1 ? "shop" : "");
		rec.instance_tag = k % 5 == 0 ? "tag-5" : NULL;
		rec.payload = payload;
		rec.payload_len = k % 7 == 0 ? 0 : (size_t)(k % sizeof payload);
		rec.occurred_at_ms = k % 2 ? 0 : 1700000000000 + (int64_t)k;
		rc = litebus_emit(tx, w->channel, &rec, NULL);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

int
commit_rows_rc(litebus *bus, int channel, int rows)
{
	unsigned seed = (unsigned)rows * 2654435761u;

	while (rows > 0) {
		struct relay_rows w = {channel, 1 + (int)(rand_r(&seed) % 16)};
		int rc;

		if (w.n > rows)
			w.n = rows;
		rc = litebus_exec(bus, relay_rows_job, &w);
		if (rc == LITEBUS_EBUSY)
			continue; /* nothing committed: again */
		if (rc != LITEBUS_OK)
			return rc;
		rows -= w.n;
	}
	return LITEBUS_OK;
}

void
commit_rows(litebus *bus, int channel, int rows)
{
	assert_int_equal(commit_rows_rc(bus, channel, rows), LITEBUS_OK);
}
