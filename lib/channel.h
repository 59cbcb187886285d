/* SPDX-License-Identifier: MIT */
/*
 * channel.h - a named channel: its ring, its published high-water mark,
 * and the wake-ups of those waiting on it.
 */
#ifndef LB_CHANNEL_H
#define LB_CHANNEL_H

#include "arch.h"
#include "litebus.h"
#include "ring.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lb_rowcache;

/* A file-descriptor waiter (embedded in a subscriber).  While `armed`, the
 * writer owes it one write to `fd` once the ring's head reaches `pos`, or
 * at close (C4, in channel.c). */
struct lb_fd_waiter {
	/* 1 while armed.  Read and changed only under the channel's fd_lock
	 * (relaxed atomics; the lock orders them): set by the owner; cleared
	 * by whoever sends the wake-up (owner or writer), in the same
	 * critical section as its eventfd write (C4).  The writer's unlocked
	 * fast path looks at armed_fds instead. */
	_Atomic uint32_t armed;
	/* The ring position the owner waits for: the write is owed only once
	 * head >= pos.  Under fd_lock (written by the owner, read by the
	 * writer). */
	uint64_t pos;
	/* The file_head the owner has taken into account (C6): the write is
	 * owed too once file_head > seen_file.  INT64_MAX for subscribers,
	 * which do not follow file_head.  Under fd_lock, like pos. */
	int64_t seen_file;
	int fd; /* eventfd, owned by the embedding subscriber */
	bool registered;
	struct lb_fd_waiter *prev, *next; /* under the channel's fd_lock */
};

struct lb_channel {
	/* Immutable after lb_channel_init(). */
	int id;
	char name[LITEBUS_CHANNEL_NAME_MAX + 1];
	const char *const *event_types; /* NULL: any non-empty type */

	struct lb_ring ring;

	/* The largest event_id published (C1, in channel.c).  Written by
	 * the writer only, before the ring record that carries it. */
	alignas(LB_CACHELINE) _Atomic int64_t published_id;
	/* The largest event_id whose COMMIT has returned (C5, in channel.c).
	 * Written by the writer only, right after COMMIT and before any
	 * record of the batch is published, so it may run ahead of
	 * published_id. */
	_Atomic int64_t committed_id;
	/* The largest event_id the bus's watcher found committed in the
	 * table above committed_id (C6, in channel.c): rows another
	 * connection committed.  Written by the watcher thread only. */
	_Atomic int64_t file_head;
	/* Readers and consumers open on the channel: the watcher reads the
	 * table heads of these channels only (watcher.c, X2). */
	_Atomic uint32_t followers;
	/* 1 once the writer has published its last record (C2). */
	_Atomic uint32_t closed;
	/* The published records' rows, for readers at the head (C7,
	 * rowcache.c): NULL until lb_channel_enable_rows() makes it, then
	 * fixed until lb_channel_fini() frees it.  Set once (compare and
	 * exchange, acq_rel) by any thread; loaded with acquire. */
	_Atomic(struct lb_rowcache *) rows;
	/* Records this bus published on the channel (metrics).  Written by
	 * the writer only (load + store), read with relaxed loads: a count
	 * that orders nothing. */
	_Atomic uint64_t published_count;

	/* Sleepers (C3).  On their own line: subscribers write them. */
	alignas(LB_CACHELINE) _Atomic uint32_t wake_word;
	_Atomic uint32_t sleepers;
	_Atomic uint32_t armed_fds;
	pthread_mutex_t fd_lock;
	struct lb_fd_waiter *fd_waiters; /* under fd_lock */
	/* LAGGED returned by this channel's subscribers, and the records
	 * those laps skipped (metrics).  Any subscriber's thread
	 * (fetch_add), relaxed: counts that order nothing. */
	_Atomic uint64_t sub_lags;
	_Atomic uint64_t sub_skipped;
};

/* 0, or -1 if out of memory.  published_id and committed_id start at
 * `published_id`. */
int lb_channel_init(struct lb_channel *ch, int id, const char *name,
		    uint32_t ring_capacity, int64_t published_id);
/* The writer, once it has read the newest committed id from the table,
 * before its thread starts and before the bus is handed out: set
 * published_id and committed_id to `id`, so "from now" means after it. */
void lb_channel_start(struct lb_channel *ch, int64_t id);
void lb_channel_fini(struct lb_channel *ch);

/* Writer thread: publish one committed record (R1: after COMMIT). */
void lb_channel_publish(struct lb_channel *ch, const struct lb_rec *rec);
/* Writer thread: the same, with the image of its row (rowcache.h; NULL:
 * none) for the channel's row cache, if it has one (C7). */
void lb_channel_publish_row(struct lb_channel *ch, const struct lb_rec *rec,
			    const uint64_t *img, size_t nwords);

/* Any thread: the channel's row cache, made on first call for rows of up
 * to inline_bytes (>= 1) bytes of variable part (C7).  NULL if out of
 * memory: readers then read every row from the table.  Later calls return
 * the cache the first made, whatever their inline_bytes. */
struct lb_rowcache *lb_channel_enable_rows(struct lb_channel *ch,
					   uint32_t inline_bytes);
/* Any thread: the row cache, or NULL if none was made yet; acquire. */
struct lb_rowcache *lb_channel_rows(const struct lb_channel *ch);
/* Writer thread: after a batch's records are published, wake whoever
 * sleeps on the channel or has an armed fd. */
void lb_channel_wake(struct lb_channel *ch);
/* Writer thread, once, after its last publish: mark closed and wake all. */
void lb_channel_close(struct lb_channel *ch);

/* Writer thread: the batch's COMMIT returned; `id` is the channel's
 * newest committed event_id (C5). */
void lb_channel_set_committed(struct lb_channel *ch, int64_t id);
/* Any thread.  Largest committed event_id known to this process (C5). */
int64_t lb_channel_committed_id(const struct lb_channel *ch);

/* A subscriber's thread: it returned LAGGED, `skipped` records lost. */
void lb_channel_count_lap(struct lb_channel *ch, uint64_t skipped);
/* Any thread: the metrics counters (relaxed, each exact by itself). */
uint64_t lb_channel_published_count(const struct lb_channel *ch);
uint64_t lb_channel_sub_lags(const struct lb_channel *ch);
uint64_t lb_channel_sub_skipped(const struct lb_channel *ch);

/* Any thread.  Largest published event_id; acquire. */
int64_t lb_channel_published_id(const struct lb_channel *ch);
bool lb_channel_is_closed(const struct lb_channel *ch);

/* The watcher thread: rows up to `id` were found committed in the table
 * (by another connection, or by this bus's writer before it set
 * committed_id).  Raises file_head if `id` is above it and wakes whoever
 * waits on the channel (C6).  Returns true if it raised it. */
bool lb_channel_raise_file_head(struct lb_channel *ch, int64_t id);
/* Any thread.  file_head (C6); acquire. */
int64_t lb_channel_file_head(const struct lb_channel *ch);

/* Any thread: sleep until the ring's head reaches `pos`, file_head rises
 * above `seen_file` (C6; INT64_MAX: never), the channel closes, or the
 * deadline passes.  May return early; callers re-check. */
void lb_channel_wait(struct lb_channel *ch, uint64_t pos, int64_t seen_file,
		     uint64_t deadline_ns);

/* fd waiters: register/unregister (any thread, takes fd_lock). */
void lb_channel_fd_register(struct lb_channel *ch, struct lb_fd_waiter *w);
void lb_channel_fd_unregister(struct lb_channel *ch, struct lb_fd_waiter *w);
/* Arm `w` after its owner found nothing to read at ring position `pos`
 * and had taken file_head up to `seen_file` into account: under fd_lock,
 * drain the eventfd (unless still armed from an earlier call), arm it,
 * then re-check; if the ring reached `pos`, file_head rose above
 * `seen_file` or the channel closed meanwhile, make the fd readable
 * again (C4, C6).  On return the fd is readable only if one of those
 * happened.  Owner's thread. */
void lb_channel_fd_arm(struct lb_channel *ch, struct lb_fd_waiter *w,
		       uint64_t pos, int64_t seen_file);

#endif
