/* SPDX-License-Identifier: MIT */
/*
 * memvfs.c - in-memory databases: SQLite's memdb VFS with the locks of a
 * rollback-journal file.
 *
 * memdb keeps a database in memory, shared by name between the
 * connections of a process, but its locks are coarser than a file's: it
 * refuses every new reader (SHARED) while a writer holds RESERVED, that
 * is for the writer's whole transaction, so an in-memory bus's readers
 * would stall for every job.  This VFS passes every call through to memdb
 * except the three lock calls, which it answers from a table of lock
 * states kept per database name, with the rules of a rollback-journal
 * file (M1-M3).  The journal lives in the writer's memory (memdb opens
 * every database with journal_mode=MEMORY), and the writer changes the
 * stored pages only under EXCLUSIVE: at COMMIT, or when its page cache
 * spills.  So a reader sees committed transactions only, and waits only
 * for a COMMIT, never for a job.
 *
 * memdb's own lock counters are never touched (its xLock/xUnlock are not
 * called); no other memdb call reads them.
 *
 * Threads: any.  The lock table is under `lock`; the pages are under
 * memdb's own mutex.  Across fork(), `lock` is held (pthread_atfork), so
 * the child's copy is consistent and unlocked.
 *
 * Invariants (per database name, under `lock`)
 *   M1  shared counts the files holding SHARED or more; reserved is true
 *       while one file holds RESERVED or more; pending is true while one
 *       file holds PENDING or EXCLUSIVE.  A file's `level` is what it
 *       holds.
 *   M2  SHARED is refused while pending: a writer waiting for EXCLUSIVE
 *       is not starved by new readers.  RESERVED is refused while another
 *       file holds it (one writer at a time).  EXCLUSIVE is granted only
 *       when shared == 1 (the asker itself); until then the asker keeps
 *       PENDING and gets SQLITE_BUSY, and retries.
 *   M3  So while a file holds EXCLUSIVE - the only time SQLite writes the
 *       database in rollback-journal mode - no other file holds SHARED:
 *       a read transaction sees one committed state from start to end.
 */
#include "memvfs.h"

#include "errors.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MEMVFS_NAME "litebus-memdb"

/* One database's lock state (M1). */
struct memvfs_lock {
	char *name;
	int refs; /* open main-database files of this name */
	int shared;
	bool reserved;
	bool pending;
	struct memvfs_lock *next;
};

/* A main-database file: ours, followed by memdb's in the same block. */
struct memvfs_file {
	sqlite3_file base; /* first: what SQLite sees */
	struct memvfs_lock *lk;
	int level; /* SQLITE_LOCK_*, M1 */
	sqlite3_file *real;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct memvfs_lock *locks; /* under lock */

/* Set once by memvfs_init (pthread_once), immutable afterwards. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
static sqlite3_vfs *memdb;
static sqlite3_vfs vfs;
static sqlite3_io_methods io;

static sqlite3_file *
memvfs_real(sqlite3_file *f)
{
	return ((struct memvfs_file *)f)->real;
}

/* Drop one file's reference to lk; the last one frees it.  Under lock. */
static void
memvfs_lock_put(struct memvfs_lock *lk)
{
	if (--lk->refs > 0)
		return;
	for (struct memvfs_lock **p = &locks; *p != NULL; p = &(*p)->next) {
		if (*p == lk) {
			*p = lk->next;
			break;
		}
	}
	free(lk->name);
	free(lk);
}

/* The lock state for `name`, with one more reference; NULL if out of
 * memory.  Under lock. */
static struct memvfs_lock *
memvfs_lock_get(const char *name)
{
	struct memvfs_lock *lk;

	for (lk = locks; lk != NULL; lk = lk->next)
		if (strcmp(lk->name, name) == 0)
			break;
	if (lk == NULL) {
		lk = calloc(1, sizeof *lk);
		if (lk == NULL)
			return NULL;
		lk->name = strdup(name);
		if (lk->name == NULL) {
			free(lk);
			return NULL;
		}
		lk->next = locks;
		locks = lk;
	}
	lk->refs++;
	return lk;
}

/* ------------------------------------------------------------------ */
/* Locks (M1-M3)                                                       */

static int
memvfs_lock(sqlite3_file *f, int level)
{
	struct memvfs_file *m = (struct memvfs_file *)f;
	struct memvfs_lock *lk = m->lk;
	int rc = SQLITE_OK;

	if (level <= m->level)
		return SQLITE_OK;
	pthread_mutex_lock(&lock);
	switch (level) {
	case SQLITE_LOCK_SHARED:
		if (lk->pending)
			rc = SQLITE_BUSY; /* M2: a writer waits to commit */
		else
			lk->shared++;
		break;
	case SQLITE_LOCK_RESERVED:
		if (lk->reserved)
			rc = SQLITE_BUSY;
		else
			lk->reserved = true;
		break;
	default: /* PENDING, on the way to EXCLUSIVE */
		if (m->level < SQLITE_LOCK_PENDING) {
			if (lk->pending) {
				rc = SQLITE_BUSY;
				break;
			}
			lk->pending = true;
			m->level = SQLITE_LOCK_PENDING;
		}
		if (level == SQLITE_LOCK_EXCLUSIVE && lk->shared > 1)
			rc = SQLITE_BUSY; /* M2: readers still reading */
		break;
	}
	if (rc == SQLITE_OK)
		m->level = level;
	pthread_mutex_unlock(&lock);
	return rc;
}

static int
memvfs_unlock(sqlite3_file *f, int level)
{
	struct memvfs_file *m = (struct memvfs_file *)f;
	struct memvfs_lock *lk = m->lk;

	if (level >= m->level)
		return SQLITE_OK;
	pthread_mutex_lock(&lock);
	if (m->level >= SQLITE_LOCK_PENDING)
		lk->pending = false;
	if (m->level >= SQLITE_LOCK_RESERVED && level < SQLITE_LOCK_RESERVED)
		lk->reserved = false;
	if (m->level >= SQLITE_LOCK_SHARED && level < SQLITE_LOCK_SHARED)
		lk->shared--;
	m->level = level;
	pthread_mutex_unlock(&lock);
	return SQLITE_OK;
}

static int
memvfs_check_reserved(sqlite3_file *f, int *out)
{
	struct memvfs_file *m = (struct memvfs_file *)f;

	pthread_mutex_lock(&lock);
	*out = m->lk->reserved || m->lk->pending;
	pthread_mutex_unlock(&lock);
	return SQLITE_OK;
}

/* ------------------------------------------------------------------ */
/* Everything else: memdb's                                            */

static int
memvfs_close(sqlite3_file *f)
{
	struct memvfs_file *m = (struct memvfs_file *)f;
	int rc;

	(void)memvfs_unlock(f, SQLITE_LOCK_NONE);
	rc = m->real->pMethods->xClose(m->real);
	pthread_mutex_lock(&lock);
	memvfs_lock_put(m->lk);
	pthread_mutex_unlock(&lock);
	return rc;
}

static int
memvfs_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	return memvfs_real(f)->pMethods->xRead(memvfs_real(f), buf, n, off);
}

static int
memvfs_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	return memvfs_real(f)->pMethods->xWrite(memvfs_real(f), buf, n, off);
}

static int
memvfs_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return memvfs_real(f)->pMethods->xTruncate(memvfs_real(f), size);
}

static int
memvfs_sync(sqlite3_file *f, int flags)
{
	return memvfs_real(f)->pMethods->xSync(memvfs_real(f), flags);
}

static int
memvfs_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return memvfs_real(f)->pMethods->xFileSize(memvfs_real(f), size);
}

static int
memvfs_file_control(sqlite3_file *f, int op, void *arg)
{
	return memvfs_real(f)->pMethods->xFileControl(memvfs_real(f), op, arg);
}

static int
memvfs_sector_size(sqlite3_file *f)
{
	const sqlite3_io_methods *rm = memvfs_real(f)->pMethods;

	/* memdb may leave it out; SQLite's default then applies. */
	return rm->xSectorSize != NULL ? rm->xSectorSize(memvfs_real(f)) : 4096;
}

static int
memvfs_device_characteristics(sqlite3_file *f)
{
	const sqlite3_io_methods *rm = memvfs_real(f)->pMethods;

	return rm->xDeviceCharacteristics != NULL
		   ? rm->xDeviceCharacteristics(memvfs_real(f))
		   : 0;
}

static int
memvfs_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	const sqlite3_io_methods *rm = memvfs_real(f)->pMethods;

	if (rm->iVersion < 3 || rm->xFetch == NULL) {
		*pp = NULL; /* no mapping: SQLite reads instead */
		return SQLITE_OK;
	}
	return rm->xFetch(memvfs_real(f), off, n, pp);
}

static int
memvfs_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	const sqlite3_io_methods *rm = memvfs_real(f)->pMethods;

	if (rm->iVersion < 3 || rm->xUnfetch == NULL)
		return SQLITE_OK;
	return rm->xUnfetch(memvfs_real(f), off, p);
}

static int
memvfs_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags,
	    int *out_flags)
{
	struct memvfs_file *m = (struct memvfs_file *)f;
	struct memvfs_lock *lk;
	int rc;

	(void)v;
	/* Temporary files are memdb's own (private stores); SQLite sized
	 * every file of this VFS to hold one of memdb's. */
	if ((flags & SQLITE_OPEN_MAIN_DB) == 0 || name == NULL)
		return memdb->xOpen(memdb, name, f, flags, out_flags);
	memset(m, 0, sizeof *m);
	m->real = (sqlite3_file *)(m + 1);
	pthread_mutex_lock(&lock);
	lk = memvfs_lock_get(name);
	pthread_mutex_unlock(&lock);
	if (lk == NULL)
		return SQLITE_NOMEM;
	rc = memdb->xOpen(memdb, name, m->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		/* base.pMethods stays NULL: SQLite will not call xClose. */
		pthread_mutex_lock(&lock);
		memvfs_lock_put(lk);
		pthread_mutex_unlock(&lock);
		return rc;
	}
	m->lk = lk;
	m->level = SQLITE_LOCK_NONE;
	m->base.pMethods = &io;
	return SQLITE_OK;
}

static int
memvfs_delete(sqlite3_vfs *v, const char *name, int sync)
{
	(void)v;
	/* memdb has no files to delete (and may leave this out). */
	if (memdb->xDelete == NULL)
		return SQLITE_IOERR_DELETE;
	return memdb->xDelete(memdb, name, sync);
}

static int
memvfs_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	(void)v;
	return memdb->xAccess(memdb, name, flags, out);
}

static int
memvfs_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
	(void)v;
	return memdb->xFullPathname(memdb, name, n, out);
}

static int
memvfs_randomness(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return memdb->xRandomness(memdb, n, out);
}

static int
memvfs_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return memdb->xSleep(memdb, us);
}

static int
memvfs_current_time(sqlite3_vfs *v, double *t)
{
	sqlite3_int64 ms;
	int rc;

	(void)v;
	if (memdb->xCurrentTime != NULL)
		return memdb->xCurrentTime(memdb, t);
	rc = memdb->xCurrentTimeInt64(memdb, &ms);
	*t = (double)ms / 86400000.0;
	return rc;
}

static int
memvfs_last_error(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return memdb->xGetLastError(memdb, n, out);
}

static int
memvfs_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *t)
{
	(void)v;
	return memdb->xCurrentTimeInt64(memdb, t);
}

/* fork(): the child gets the lock table as it was, and `lock` must not be
 * copied while another thread holds it (litebus_open of an in-memory
 * database works in the child). */
static void
memvfs_fork_prepare(void)
{
	pthread_mutex_lock(&lock);
}

static void
memvfs_fork_done(void)
{
	pthread_mutex_unlock(&lock);
}

static void
memvfs_init(void)
{
	if (pthread_atfork(memvfs_fork_prepare, memvfs_fork_done,
			   memvfs_fork_done) != 0) {
		init_rc = SQLITE_NOMEM;
		return;
	}
	memdb = sqlite3_vfs_find("memdb");
	if (memdb == NULL || memdb->iVersion < 2) {
		init_rc = SQLITE_ERROR;
		return;
	}
	io.iVersion = 3;
	io.xClose = memvfs_close;
	io.xRead = memvfs_read;
	io.xWrite = memvfs_write;
	io.xTruncate = memvfs_truncate;
	io.xSync = memvfs_sync;
	io.xFileSize = memvfs_file_size;
	io.xLock = memvfs_lock;
	io.xUnlock = memvfs_unlock;
	io.xCheckReservedLock = memvfs_check_reserved;
	io.xFileControl = memvfs_file_control;
	io.xSectorSize = memvfs_sector_size;
	io.xDeviceCharacteristics = memvfs_device_characteristics;
	/* No xShm*: memdb has no WAL, and neither do we. */
	io.xFetch = memvfs_fetch;
	io.xUnfetch = memvfs_unfetch;

	vfs.iVersion = 2;
	vfs.szOsFile = (int)sizeof(struct memvfs_file) + memdb->szOsFile;
	vfs.mxPathname = memdb->mxPathname;
	vfs.zName = MEMVFS_NAME;
	vfs.xOpen = memvfs_open;
	vfs.xDelete = memvfs_delete;
	vfs.xAccess = memvfs_access;
	vfs.xFullPathname = memvfs_full_pathname;
	vfs.xRandomness = memvfs_randomness;
	vfs.xSleep = memvfs_sleep;
	vfs.xCurrentTime = memvfs_current_time;
	vfs.xGetLastError = memvfs_last_error;
	vfs.xCurrentTimeInt64 = memvfs_current_time_int64;
	init_rc = sqlite3_vfs_register(&vfs, 0);
}

const char *
lb_memvfs_name(void)
{
	pthread_once(&init_once, memvfs_init);
	if (init_rc != SQLITE_OK && memdb != NULL) {
		lb_err_set(LITEBUS_ECANTOPEN,
			   "litebus_open: registering the in-memory VFS "
			   "failed (%s)",
			   sqlite3_errstr(init_rc));
		return NULL;
	}
	if (init_rc != SQLITE_OK) {
		lb_err_set(LITEBUS_ECANTOPEN,
			   "litebus_open: in-memory databases need SQLite's "
			   "memdb VFS (SQLite 3.36 or newer, built without "
			   "SQLITE_OMIT_DESERIALIZE); this SQLite (%s) has "
			   "none",
			   sqlite3_libversion());
		return NULL;
	}
	return MEMVFS_NAME;
}
