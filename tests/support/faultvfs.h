/* SPDX-License-Identifier: MIT */
/*
 * faultvfs.h - a fault-injecting SQLite VFS for tests.
 *
 * faultvfs_install() registers a VFS over the default one ("unix") and
 * makes it the default, so every connection litebus opens goes through it.
 * It passes every call through, counting calls per kind, and can make the
 * Nth call of a kind fail with a chosen SQLite error, or fail every write
 * with SQLITE_FULL until cleared (a full disk).
 *
 * Thread-safety: counters and arming are atomics; SQLite calls the VFS from
 * the writer, reader and checkpointer threads at once.
 */
#ifndef LB_TEST_FAULTVFS_H
#define LB_TEST_FAULTVFS_H

#include <stdbool.h>
#include <stdint.h>

enum fault_kind {
	FAULT_OPEN,
	FAULT_READ,
	FAULT_WRITE,
	FAULT_SYNC,
	FAULT_TRUNCATE,
	FAULT_FILESIZE,
	FAULT_LOCK,
	FAULT_SHMLOCK,
	FAULT_SHMMAP,
	FAULT_KINDS
};

/* Register and make default.  Idempotent. */
void faultvfs_install(void);
/* Disarm everything and zero the counters. */
void faultvfs_reset(void);
/* Disarm everything (the fault clears); the counters go on. */
void faultvfs_disarm(void);
/* Make the nth call of `kind` from now on (1 = the next) fail with
 * `err` (an SQLite result code such as SQLITE_IOERR_WRITE, SQLITE_FULL,
 * SQLITE_BUSY, SQLITE_CANTOPEN).  One fault per kind may be armed. */
void faultvfs_arm(enum fault_kind kind, uint64_t nth, int err);
/* While on, every xWrite and xTruncate fails with SQLITE_FULL. */
void faultvfs_set_full(bool on);
/* Calls of `kind` since the last reset. */
uint64_t faultvfs_calls(enum fault_kind kind);
/* Faults injected since the last reset. */
uint64_t faultvfs_fired(void);
const char *faultvfs_kind_name(enum fault_kind kind);

#endif
