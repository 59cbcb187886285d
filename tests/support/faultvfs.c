/* SPDX-License-Identifier: MIT */
/*
 * faultvfs.c - see faultvfs.h.
 */
#include "faultvfs.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

struct fault_file {
	sqlite3_file base; /* must be first: SQLite sees this */
	sqlite3_file *real; /* follows this struct in the same allocation */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static sqlite3_io_methods fault_io_v1, fault_io_v2, fault_io_v3;

/* Relaxed throughout: these are counters and one-shot triggers; the test
 * reads them after joining or closing everything that calls the VFS. */
static _Atomic uint64_t calls[FAULT_KINDS];
static _Atomic uint64_t trigger_at[FAULT_KINDS]; /* 0: disarmed */
static _Atomic int trigger_err[FAULT_KINDS];
static _Atomic bool disk_full;
static _Atomic uint64_t fired;

static const char *const kind_names[FAULT_KINDS] = {
    "open", "read", "write", "sync", "truncate",
    "filesize", "lock", "shmlock", "shmmap"};

const char *
faultvfs_kind_name(enum fault_kind kind)
{
	return kind_names[kind];
}

/* Count a call of `kind`; return the error to inject, or SQLITE_OK. */
static int
fault_check(enum fault_kind kind)
{
	uint64_t n = atomic_fetch_add_explicit(&calls[kind], 1,
					       memory_order_relaxed) +
		     1;
	uint64_t at = atomic_load_explicit(&trigger_at[kind],
					   memory_order_relaxed);

	if ((kind == FAULT_WRITE || kind == FAULT_TRUNCATE) &&
	    atomic_load_explicit(&disk_full, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&fired, 1, memory_order_relaxed);
		return SQLITE_FULL;
	}
	if (at != 0 && n == at &&
	    atomic_compare_exchange_strong_explicit(&trigger_at[kind], &at, 0,
						    memory_order_relaxed,
						    memory_order_relaxed)) {
		atomic_fetch_add_explicit(&fired, 1, memory_order_relaxed);
		return atomic_load_explicit(&trigger_err[kind],
					    memory_order_relaxed);
	}
	return SQLITE_OK;
}

#define REAL(f) (((struct fault_file *)(f))->real)

static int
f_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods->xClose(REAL(f));
	return rc;
}

static int
f_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	int rc = fault_check(FAULT_READ);
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int
f_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	int rc = fault_check(FAULT_WRITE);
	return rc != SQLITE_OK
		   ? rc
		   : REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

static int
f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = fault_check(FAULT_TRUNCATE);
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
f_sync(sqlite3_file *f, int flags)
{
	int rc = fault_check(FAULT_SYNC);
	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
f_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	int rc = fault_check(FAULT_FILESIZE);
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int
f_lock(sqlite3_file *f, int lock)
{
	int rc = fault_check(FAULT_LOCK);
	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int
f_unlock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int
f_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int
f_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int
f_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int
f_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int
f_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	int rc = fault_check(FAULT_SHMMAP);
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz,
							    extend, pp);
}

static int
f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	/* Only acquiring can fail; an unlock must always go through. */
	if (flags & SQLITE_SHM_LOCK) {
		int rc = fault_check(FAULT_SHMLOCK);
		if (rc != SQLITE_OK)
			return rc;
	}
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void
f_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int
f_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int
f_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int
f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int
v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
       int *out_flags)
{
	struct fault_file *ff = (struct fault_file *)file;
	int rc;

	(void)vfs;
	ff->base.pMethods = NULL;
	rc = fault_check(FAULT_OPEN);
	if (rc != SQLITE_OK)
		return rc;
	ff->real = (sqlite3_file *)(ff + 1);
	rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
	if (rc != SQLITE_OK || ff->real->pMethods == NULL)
		return rc;
	switch (ff->real->pMethods->iVersion) {
	case 1:
		ff->base.pMethods = &fault_io_v1;
		break;
	case 2:
		ff->base.pMethods = &fault_io_v2;
		break;
	default:
		ff->base.pMethods = &fault_io_v3;
		break;
	}
	return SQLITE_OK;
}

static int
v_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync);
}

static int
v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int
v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int
v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int
v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int
v_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int
v_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xGetLastError(real_vfs, n, out);
}

static int
v_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static void
fault_build_methods(void)
{
	sqlite3_io_methods m = {0};

	m.iVersion = 1;
	m.xClose = f_close;
	m.xRead = f_read;
	m.xWrite = f_write;
	m.xTruncate = f_truncate;
	m.xSync = f_sync;
	m.xFileSize = f_file_size;
	m.xLock = f_lock;
	m.xUnlock = f_unlock;
	m.xCheckReservedLock = f_check_reserved;
	m.xFileControl = f_file_control;
	m.xSectorSize = f_sector_size;
	m.xDeviceCharacteristics = f_device_characteristics;
	fault_io_v1 = m;
	m.iVersion = 2;
	m.xShmMap = f_shm_map;
	m.xShmLock = f_shm_lock;
	m.xShmBarrier = f_shm_barrier;
	m.xShmUnmap = f_shm_unmap;
	fault_io_v2 = m;
	m.iVersion = 3;
	m.xFetch = f_fetch;
	m.xUnfetch = f_unfetch;
	fault_io_v3 = m;
}

void
faultvfs_install(void)
{
	if (real_vfs != NULL)
		return;
	real_vfs = sqlite3_vfs_find(NULL);
	fault_build_methods();
	memset(&fault_vfs, 0, sizeof fault_vfs);
	fault_vfs.iVersion = 2;
	fault_vfs.szOsFile = (int)sizeof(struct fault_file) + real_vfs->szOsFile;
	fault_vfs.mxPathname = real_vfs->mxPathname;
	fault_vfs.zName = "faultvfs";
	fault_vfs.xOpen = v_open;
	fault_vfs.xDelete = v_delete;
	fault_vfs.xAccess = v_access;
	fault_vfs.xFullPathname = v_full_pathname;
	fault_vfs.xRandomness = v_randomness;
	fault_vfs.xSleep = v_sleep;
	fault_vfs.xCurrentTime = v_current_time;
	fault_vfs.xGetLastError = v_get_last_error;
	fault_vfs.xCurrentTimeInt64 = v_current_time_int64;
	sqlite3_vfs_register(&fault_vfs, 1);
	faultvfs_reset();
}

void
faultvfs_reset(void)
{
	for (int k = 0; k < FAULT_KINDS; k++) {
		atomic_store_explicit(&calls[k], 0, memory_order_relaxed);
		atomic_store_explicit(&trigger_at[k], 0, memory_order_relaxed);
	}
	atomic_store_explicit(&disk_full, false, memory_order_relaxed);
	atomic_store_explicit(&fired, 0, memory_order_relaxed);
}

void
faultvfs_disarm(void)
{
	for (int k = 0; k < FAULT_KINDS; k++)
		atomic_store_explicit(&trigger_at[k], 0, memory_order_relaxed);
	atomic_store_explicit(&disk_full, false, memory_order_relaxed);
}

void
faultvfs_arm(enum fault_kind kind, uint64_t nth, int err)
{
	uint64_t now = atomic_load_explicit(&calls[kind], memory_order_relaxed);

	atomic_store_explicit(&trigger_err[kind], err, memory_order_relaxed);
	atomic_store_explicit(&trigger_at[kind], nth == 0 ? 0 : now + nth,
			      memory_order_relaxed);
}

void
faultvfs_set_full(bool on)
{
	atomic_store_explicit(&disk_full, on, memory_order_relaxed);
}

uint64_t
faultvfs_calls(enum fault_kind kind)
{
	return atomic_load_explicit(&calls[kind], memory_order_relaxed);
}

uint64_t
faultvfs_fired(void)
{
	return atomic_load_explicit(&fired, memory_order_relaxed);
}
