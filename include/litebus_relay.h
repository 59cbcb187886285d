/* SPDX-License-Identifier: MIT */
/*
 * litebus_relay.h - relay committed events of a litebus file to Redis
 * Streams (or Valkey), exactly once and in order.
 *
 * An optional component: liblitebus_relay links liblitebus and hiredis;
 * liblitebus itself never does.  Build it with the CMake option
 * LITEBUS_RELAY (on by default when pkg-config finds hiredis).
 *
 * What it does
 * ------------
 * For each configured channel, every committed row becomes exactly one
 * entry of the stream "<prefix>:<channel>" (channel as named in the bus),
 * with entry id "<event_id>-0" and these fields, in this order:
 *   partition_key    decimal integer
 *   subject          the subject's bytes (may be empty)
 *   event_type       text
 *   namespace        text; absent when the row has none (NULL)
 *   instance_tag     text; absent when the row has none (NULL)
 *   payload          the payload's bytes (may be empty)
 *   occurred_at_ms   decimal integer, ms since the Unix epoch
 *   committed_at_ms  decimal integer, ms since the Unix epoch
 * Entries are added in event_id order.  A remote consumer remembers the
 * last entry id it handled and reads after it (XREAD BLOCK ms STREAMS key
 * id): it then sees every event once, in order.
 *
 * Why exactly once without a deduplication table: Redis refuses an XADD
 * whose id is not above the stream's last generated id, and that id
 * survives trimming.  The relay's progress is a durable consumer of each
 * channel (litebus_consumer_open(), name options.consumer), acknowledged
 * after Redis confirmed the entries; at every (re)connection the relay
 * reads the stream's last generated id (XINFO STREAM) and resumes after
 * the larger of the two.  A relay killed after XADD and before its ack
 * therefore neither duplicates nor skips, and neither does one whose
 * connection broke with a batch in flight.  Each batch of XADDs is sent
 * as one MULTI/EXEC transaction, so Redis applies all of it or none of
 * it: a refusal in the middle of a batch (out of memory, a failover)
 * cannot leave a hole that a later entry would make permanent.
 *
 * What the guarantee rests on (see README, "Scaling out"):
 *  - Redis must not lose entries it confirmed: persistence with
 *    appendonly yes and appendfsync always (everysec may lose the last
 *    second after a crash of the Redis host; the relay then carries on
 *    after the stream's new last id, and those entries are missing), and
 *    maxmemory-policy noeviction (an evicted stream is a lost stream);
 *  - nothing else writes to the relay's streams, and one relay per
 *    (file, consumer name) runs at a time (the durable consumer enforces
 *    this: a second relay gets LITEBUS_EINUSE);
 *  - rows are not pruned before they are shipped: the relay's consumer
 *    holds back retention, except retention with `hard` set (the relay
 *    then counts the lost rows in `expired` and says so in last_error).
 *
 * Failures
 * --------
 * Redis down, restarting, slow, paused, refusing (a wrong password, out
 * of memory, loading, read-only replica): the channel's thread reconnects
 * with exponential backoff (backoff_min_ms doubling up to backoff_max_ms),
 * records the state, the error and the reconnects in its stats, and loses
 * nothing; it never spins.  Permanent errors stop that channel alone, with
 * state LITEBUS_RELAY_STOPPED and the reason in last_error: the key holds
 * another type (WRONGTYPE), the server does not know streams (no XADD or
 * XINFO), the database index does not exist, or the bus closed.
 * A wrong password is not permanent: it is reported and retried, so that a
 * password changed on the server is picked up without a restart.
 *
 * Threads: one thread per channel, each with its own Redis connection
 * and its own durable consumer; the calls below may be made from any
 * thread except the bus's writer (a job or a done-callback).  Those
 * threads block SIGPIPE, so a connection Redis closed is an error, not
 * the end of the process; the application's own threads are untouched.
 */
#ifndef LITEBUS_RELAY_H
#define LITEBUS_RELAY_H

#include <litebus.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct litebus_relay litebus_relay;

/* Longest stream key prefix, in bytes, without the terminating NUL. */
#define LITEBUS_RELAY_PREFIX_MAX 128
/* Room for last_error in litebus_relay_stats, NUL included. */
#define LITEBUS_RELAY_ERROR_MAX 256

typedef struct litebus_relay_options {
	/* Redis server: host name or address, and TCP port.  Defaults
	 * "127.0.0.1" and 6379. */
	const char *host;
	int port;
	/* AUTH password (requirepass or the default user's); NULL: none.
	 * Default NULL. */
	const char *password;
	/* SELECT this database index first (>= 0).  Default 0. */
	int db;
	/* Streams are named "<prefix>:<channel>"; 1..LITEBUS_RELAY_PREFIX_MAX
	 * bytes.  Default "litebus". */
	const char *prefix;
	/* > 0: every XADD trims with MAXLEN ~ maxlen (approximately: Redis
	 * keeps at least maxlen entries, trimming whole nodes); 0: never
	 * trim.  Default 0. */
	int64_t maxlen;
	/* The durable consumer that holds the relay's position in each
	 * channel: 1..LITEBUS_CONSUMER_NAME_MAX bytes.  Default "relay". */
	const char *consumer;
	/* Most XADDs in flight per channel: rows are sent in batches of at
	 * most `window` rows (and about 4 MiB), one MULTI/EXEC each, one
	 * batch in flight at a time.  Larger batches mean fewer round trips
	 * and, with appendfsync always, fewer fsyncs per row; but Redis runs
	 * each EXEC without serving other clients (about 2 us per entry).
	 * 1..65536; default 1024. */
	uint32_t window;
	/* Connecting, and each reply, may take this long before the
	 * connection is dropped and made again (ms, >= 1).  Defaults 2000
	 * and 5000. */
	uint32_t connect_timeout_ms;
	uint32_t io_timeout_ms;
	/* Backoff between failed attempts: starts at backoff_min_ms and
	 * doubles up to backoff_max_ms (ms, 1 <= min <= max).  Defaults 100
	 * and 5000. */
	uint32_t backoff_min_ms;
	uint32_t backoff_max_ms;
} litebus_relay_options;

/* States of one channel's relay (litebus_relay_stats.state). */
#define LITEBUS_RELAY_CONNECTING                                               \
	0			  /* connecting, or reading the stream's       \
				     last id */
#define LITEBUS_RELAY_STREAMING 1 /* connected: shipping, or caught up */
#define LITEBUS_RELAY_BACKOFF 2	  /* an error; waiting to reconnect */
#define LITEBUS_RELAY_STOPPED                                                  \
	3 /* stopped for good (a permanent                                     \
	     error, the bus closed, or                                         \
	     litebus_relay_stop): see last_error */

typedef struct litebus_relay_stats {
	/* The channel's name, as the bus spells it. */
	char channel[LITEBUS_CHANNEL_NAME_MAX + 1];
	int state; /* LITEBUS_RELAY_* */
	/* Entries this relay added to the stream since start. */
	uint64_t relayed;
	/* Rows found in the stream already (after a restart or a broken
	 * connection) and not added again. */
	uint64_t skipped;
	/* Rows lost to hard retention before they were relayed. */
	uint64_t expired;
	/* The largest event_id known to be in the stream (entry id
	 * "<position>-0"), or the relay's durable position if larger; 0 at
	 * first. */
	int64_t position;
	/* litebus_channel_head() when the stats were taken, and head -
	 * position (>= 0): events committed and not yet known to be in the
	 * stream. */
	int64_t head;
	int64_t lag_events;
	/* How long ago the oldest row that the relay has read and Redis has
	 * not confirmed was committed, in ms; 0 when there is none. */
	int64_t lag_ms;
	/* Connection attempts after the first (each follows an error, so
	 * reconnects <= errors), and errors met. */
	uint64_t reconnects;
	uint64_t errors;
	/* When the last error happened (ms since the Unix epoch, 0: none)
	 * and what it was, such as "127.0.0.1:6379: Connection refused" or
	 * "AUTH: WRONGPASS invalid username-password pair ...". */
	int64_t last_error_ms;
	char last_error[LITEBUS_RELAY_ERROR_MAX];
} litebus_relay_stats;

/*
 * ABI: as in litebus.h ("ABI policy"), litebus_relay_options and
 * litebus_relay_stats only grow at the end, and every call that takes one
 * also takes its size: the usual names below are macros that pass sizeof
 * as this header lays the struct out.  Fields an older program's struct
 * lacks take their defaults (litebus_relay_options_init()'s); bytes a
 * newer program's struct has beyond this library's must be 0 in what it
 * passes in (else LITEBUS_EINVAL) and are set to 0 in what it gets back;
 * nothing beyond the size passed is read or written.  A size smaller
 * than the struct's first field is LITEBUS_EINVAL (options_init: a
 * no-op).
 */

/*
 * litebus_relay_options_init - fill *o with the defaults above.
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API void litebus_relay_options_init_sized(litebus_relay_options *o,
						  size_t o_size);
#ifndef LITEBUS_RELAY_BUILDING_
#define litebus_relay_options_init(o)                                          \
	litebus_relay_options_init_sized((o), sizeof(litebus_relay_options))
#endif

/*
 * litebus_relay_start - relay `channels` (names, NULL-terminated, at
 * least one, each once) of `bus` to Redis: open each channel's durable
 * consumer (created at LITEBUS_FROM_START if new: every retained row is
 * relayed) and start one thread per channel.  o == NULL means defaults.
 * Connecting to Redis happens on those threads, so an unreachable server
 * is not an error here: see the stats.
 * Returns LITEBUS_OK and *out; EINVAL (NULL, no channel, a channel named
 * twice, bad options), ENOCHANNEL, EINUSE (a relay with this consumer
 * name runs already on this file), EREADONLY, ENOMEM, ECLOSED, EDEADLK,
 * or what litebus_consumer_open() returns.  Nothing is left running on
 * failure.  The relay borrows `bus` until litebus_relay_stop() returned;
 * it copies `channels` and *o.
 * Thread-safety: any thread but the bus's writer.
 * Blocking: opens the consumers (a write transaction each).
 */
LITEBUS_API int litebus_relay_start_sized(litebus *bus,
					  const char *const *channels,
					  const litebus_relay_options *o,
					  size_t o_size, litebus_relay **out);
#ifndef LITEBUS_RELAY_BUILDING_
#define litebus_relay_start(bus, channels, o, out)                             \
	litebus_relay_start_sized((bus), (channels), (o),                      \
				  sizeof(litebus_relay_options), (out))
#endif

/*
 * litebus_relay_channel_count - how many channels `r` relays (their
 * indexes are 0..count-1, in the order given to litebus_relay_start), or
 * EINVAL for NULL.
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API int litebus_relay_channel_count(const litebus_relay *r);

/*
 * litebus_relay_stats_get - the counters and state of channel `index`.
 * Returns OK; EINVAL (NULL, index out of range).  head and lag_events
 * come from litebus_channel_head(); if that read fails they are those of
 * the previous call (0 at first).
 * Thread-safety: any thread.  Blocking: a short read of the file.
 */
LITEBUS_API int litebus_relay_stats_get_sized(litebus_relay *r, int index,
					      litebus_relay_stats *st,
					      size_t st_size);
#ifndef LITEBUS_RELAY_BUILDING_
#define litebus_relay_stats_get(r, index, st)                                  \
	litebus_relay_stats_get_sized((r), (index), (st),                      \
				      sizeof(litebus_relay_stats))
#endif

/*
 * litebus_relay_wait - wait until channel `index` has every event_id up
 * to event_id in the stream (position >= event_id), or has stopped.
 * Returns OK (reached), TIMEOUT (not within timeout_ms; -1 waits
 * forever), CLOSED (the channel stopped before reaching it: see its
 * stats), EINVAL.
 * Thread-safety: any thread.  Blocking: up to timeout_ms.
 */
LITEBUS_API int litebus_relay_wait(litebus_relay *r, int index,
				   int64_t event_id, int timeout_ms);

/*
 * litebus_relay_stop - stop every channel's thread (a batch waiting for
 * its reply is abandoned: the next start finds in the stream what of it
 * Redis applied), make the consumers' acks durable, close the consumers
 * and free `r`.  NULL is a no-op.  What was read but not confirmed is
 * relayed by the next start.
 * Thread-safety: any thread but the bus's writer; once per relay.
 * Blocking: up to connect_timeout_ms (a connection attempt under way is
 * not interrupted), and one write transaction.
 */
LITEBUS_API void litebus_relay_stop(litebus_relay *r);

#ifdef __cplusplus
}
#endif

#endif /* LITEBUS_RELAY_H */
