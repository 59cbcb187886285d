/* SPDX-License-Identifier: MIT */
/*
 * powervfs.h - a power-loss SQLite VFS for tests: record what one run
 * wrote and synced, then build the disk as a power cut at any point of
 * that run would have left it.
 *
 * A power cut keeps every write that an xSync of its file made durable
 * and, of the writes since that file's last xSync (pending writes), an
 * arbitrary subset of 512-byte sectors: a disk may reorder, drop or tear
 * them.  The -shm file lives in memory (xShmMap), never synced: after a
 * cut it is gone, empty or garbage.
 *
 * How it is cheap: the process never dies.  powervfs_install() puts a
 * pass-through VFS over the default one; between powervfs_record_start()
 * and powervfs_record_stop() every xWrite, xTruncate, xSync and xDelete of
 * one database's files (the database, "-wal", "-shm") is appended to an
 * in-memory trace, data included, in the order the calls were made.  The
 * run goes on normally.  Afterwards a replay walks the trace once:
 * powervfs_replay_image(r, at, ...) writes to real files the disk after a
 * cut made when the first `at` calls of the trace had happened, with the
 * durable image of each file kept up to date incrementally - so thousands
 * of cuts cost one run of litebus plus a file copy each, and the test
 * then opens the image through litebus_open like any file.
 *
 * Invariants
 *   P1  The trace is a linearization of the calls: one mutex orders the
 *       appends, and SQLite's own locks order the calls on one file.
 *   P2  A file's durable image after trace position p is the result of
 *       every write and truncate of that file before its last xSync
 *       before p, applied in trace order (a delete empties it).
 *   P3  A cut image is each file's durable image with a subset of its
 *       pending writes (all of them, none, or a random subset of their
 *       sectors, in trace order) applied over it.
 *   P4  powervfs_mark() is the trace position after every call that
 *       happened before it: a cut at `at` >= mark happened after
 *       whatever the caller saw before taking the mark.
 *
 * Threads: recording is thread-safe (SQLite calls the VFS from the
 * writer, checkpointer and reader threads at once); marks may be taken
 * from any thread.  Replays belong to one thread, with recording stopped.
 */
#ifndef LB_TEST_POWERVFS_H
#define LB_TEST_POWERVFS_H

#include <stddef.h>
#include <stdint.h>

/* What happens to the pending (unsynced) writes at a cut. */
enum powervfs_cut {
	POWERVFS_DROP, /* all lost */
	POWERVFS_KEEP, /* all reached the disk (the process's own view) */
	POWERVFS_TEAR, /* each 512-byte sector of each pending write, and
			  each pending truncate, kept or lost at random */
	POWERVFS_CUT_KINDS
};

/* What is left of the -shm file. */
enum powervfs_shm {
	POWERVFS_SHM_GONE,    /* no file */
	POWERVFS_SHM_EMPTY,   /* a file of 0 bytes */
	POWERVFS_SHM_GARBAGE, /* 32 KiB of random bytes */
	POWERVFS_SHM_KINDS
};

/* Register the VFS over the current default and make it the default.
 * Idempotent. */
void powervfs_install(void);

/* Start recording calls on `db_path` (made absolute; it and its -wal and
 * -shm), dropping any earlier trace.  The initial image of the database
 * and -wal is read from the disk now and counts as durable.  No
 * connection may have the files open. */
void powervfs_record_start(const char *db_path);
/* Stop recording; the trace stays for replays. */
void powervfs_record_stop(void);
/* The trace position now (P4).  Any thread. */
size_t powervfs_mark(void);

/* The recorded trace: calls in it, and how many were xSync calls. */
size_t powervfs_trace_len(void);
size_t powervfs_trace_syncs(void);

struct powervfs_replay;
/* A replay of the recorded trace; NULL if memory ran out. */
struct powervfs_replay *powervfs_replay_new(void);
void powervfs_replay_free(struct powervfs_replay *r);

/* What one cut left behind, for the test's figures and messages. */
struct powervfs_cut_info {
	size_t pending_writes; /* unsynced writes and truncates, all files */
	size_t torn_files;     /* files that got some but not all of theirs */
	size_t sectors_kept;   /* pending sectors that reached the disk */
	size_t sectors_lost;   /* pending sectors that did not */
};

/*
 * Write the disk after a cut at trace position `at` (0 .. trace length;
 * non-decreasing from one call to the next on a replay) to `db_path`,
 * `db_path`-wal and `db_path`-shm, replacing whatever was there (new
 * inodes), with `cut` deciding the pending writes (random choices from
 * `seed`) and `shm` the -shm file.  Returns 0, or -1 with errno (I/O,
 * memory, `at` out of order).  *info (if not NULL) says what was kept.
 */
int powervfs_replay_image(struct powervfs_replay *r, size_t at,
			  enum powervfs_cut cut, enum powervfs_shm shm,
			  uint64_t seed, const char *db_path,
			  struct powervfs_cut_info *info);

const char *powervfs_cut_name(enum powervfs_cut cut);
const char *powervfs_shm_name(enum powervfs_shm shm);

#endif
