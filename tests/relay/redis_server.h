/* SPDX-License-Identifier: MIT */
/*
 * redis_server.h - a private redis-server for one test: 127.0.0.1, a free
 * port, a temporary directory, append-only file with appendfsync always
 * (so that SIGKILL loses nothing it confirmed), never the system service;
 * plus the checks the relay tests share: the stream against the outbox.
 *
 * Threads: one test thread per server.
 */
#ifndef LB_TEST_REDIS_SERVER_H
#define LB_TEST_REDIS_SERVER_H

#include "litebus.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct redis_server {
	char dir[256];	      /* temporary directory (made by start) */
	int port;	      /* chosen by the first start, kept after */
	pid_t pid;	      /* 0 when not running */
	const char *password; /* requirepass, or NULL */
};

/* Start (or restart, same dir and port) the server and wait until it
 * answers PING (deadline FX_WAIT_MS).  Fails the test if it cannot. */
void redis_server_start(struct redis_server *s);
/* Send `sig` and reap it (SIGKILL: a crash; SIGTERM: a clean stop). */
void redis_server_stop(struct redis_server *s, int sig);
/* Stop it if running and remove its directory. */
void redis_server_cleanup(struct redis_server *s);
/* A port on 127.0.0.1 nobody listens on now. */
int redis_free_port(void);

/* An admin connection (AUTH with s->password); fails the test if none. */
redisContext *redis_admin(const struct redis_server *s);
/* A command on the admin connection whose reply must not be an error. */
void redis_ok(redisContext *c, const char *cmd);

/* Wait for `pid` to exit, at most timeout_ms (then SIGKILL it and fail
 * the test, naming `what`); its wait status. */
int wait_exit(pid_t pid, int timeout_ms, const char *what);

/* A watchdog thread for the test program: if no call re-arms it within
 * `seconds`, it prints `what` (the running test) and aborts, so that a
 * hang shows where it was instead of a bare ctest timeout.  Any thread. */
void watchdog_arm(int seconds, const char *what);

/* The stream's last generated id (its ms part), 0 if there is no such
 * key, -1 on an error. */
int64_t redis_stream_last(redisContext *c, const char *key);
/* Wait (XREAD BLOCK, no sleeps) until the stream's last id is >= id.
 * True if it is within timeout_ms. */
bool redis_stream_wait(redisContext *c, const char *key, int64_t id,
		       int timeout_ms);

/*
 * The check every relay test ends with: the stream `key` holds exactly
 * the rows committed on `channel` of `bus` (read with a reader from the
 * start), each once, in order, entry id "<event_id>-0", with the row's
 * fields.  Fails the test otherwise.  Returns the number of rows.
 */
uint64_t check_stream(litebus *bus, int channel, redisContext *c,
		      const char *key);

/* The job the tests commit with: `n` rows on `channel` whose fields vary
 * with a counter (binary subject and payload, NULL and set namespace and
 * tag).  arg points at struct relay_rows. */
struct relay_rows {
	int channel;
	int n;
};
int relay_rows_job(litebus_tx *tx, void *arg);
/* Commit `rows` rows in jobs of 1..16 rows (random sizes).  A job
 * refused with LITEBUS_EBUSY (another process - a relay writing its
 * acks - held the write lock for the whole busy timeout) committed
 * nothing and is run again.  commit_rows_rc returns LITEBUS_OK or the
 * first other error (then fewer rows were committed) and asserts nothing,
 * for threads other than the test's (cmocka's asserts must run on the
 * test's thread); commit_rows fails the test on an error. */
void commit_rows(litebus *bus, int channel, int rows);
int commit_rows_rc(litebus *bus, int channel, int rows);

#endif
