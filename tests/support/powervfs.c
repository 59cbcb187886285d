/* SPDX-License-Identifier: MIT */
/*
 * powervfs.c - see powervfs.h (invariants P1..P4 there).
 *
 * A VFS of its own rather than a mode of faultvfs.c: faultvfs answers
 * "what if this call fails" and keeps no data; this one keeps the data of
 * every write and never fails a call.  It stacks over whatever VFS is the
 * default when it is installed (faultvfs included).
 *
 * Threads: the VFS methods run on any thread SQLite calls them from; the
 * trace is guarded by trace_lock.  Replays run on one thread after
 * powervfs_record_stop().
 */
#define _XOPEN_SOURCE 700
#include "powervfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PV_SECTOR 512
#define PV_SHM_GARBAGE_LEN 32768

enum pv_which { PV_DB, PV_WAL, PV_FILES, PV_OTHER = -1 };
enum pv_kind { PV_WRITE, PV_TRUNCATE, PV_SYNC, PV_DELETE };

struct pv_op {
	unsigned char kind;  /* enum pv_kind */
	unsigned char which; /* enum pv_which */
	int64_t off;	     /* write: offset; truncate: new size */
	size_t len;	     /* write: bytes in data */
	unsigned char *data; /* write: a copy of the bytes */
};

struct pv_buf {
	unsigned char *data;
	size_t size, cap;
};

struct pv_file {
	sqlite3_file base;  /* must be first: SQLite sees this */
	sqlite3_file *real; /* follows this struct in the same allocation */
	int which;	    /* enum pv_which, fixed at open */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs power_vfs;
static sqlite3_io_methods pv_io_v1, pv_io_v2, pv_io_v3;

/* Guarded by trace_lock (P1). */
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static bool recording;
static char names[PV_FILES][PATH_MAX + 8];
static struct pv_op *ops;
static size_t nops, capops, nsyncs;
static struct pv_buf initial[PV_FILES];

static void *
pv_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (q == NULL)
		abort(); /* a test harness out of memory cannot go on */
	return q;
}

static void
pv_buf_reserve(struct pv_buf *b, size_t n)
{
	if (n <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 65536;
	while (cap < n)
		cap *= 2;
	b->data = pv_xrealloc(b->data, cap);
	b->cap = cap;
}

/* Write bytes at off, growing with zeros past the end (a hole). */
static void
pv_buf_write(struct pv_buf *b, int64_t off, const unsigned char *p, size_t n)
{
	size_t end = (size_t)off + n;

	pv_buf_reserve(b, end);
	if ((size_t)off > b->size)
		memset(b->data + b->size, 0, (size_t)off - b->size);
	memcpy(b->data + off, p, n);
	if (end > b->size)
		b->size = end;
}

static void
pv_buf_truncate(struct pv_buf *b, int64_t size)
{
	if ((size_t)size > b->size) {
		pv_buf_reserve(b, (size_t)size);
		memset(b->data + b->size, 0, (size_t)size - b->size);
	}
	b->size = (size_t)size;
}

static void
pv_buf_copy(struct pv_buf *dst, const struct pv_buf *src)
{
	pv_buf_reserve(dst, src->size);
	if (src->size > 0)
		memcpy(dst->data, src->data, src->size);
	dst->size = src->size;
}

static void
pv_record(enum pv_kind kind, int which, int64_t off, const void *data,
	  size_t len)
{
	if (which < 0)
		return;
	pthread_mutex_lock(&trace_lock);
	if (recording) {
		struct pv_op *op;

		if (nops == capops) {
			capops = capops ? capops * 2 : 4096;
			ops = pv_xrealloc(ops, capops * sizeof *ops);
		}
		op = &ops[nops++];
		op->kind = (unsigned char)kind;
		op->which = (unsigned char)which;
		op->off = off;
		op->len = len;
		op->data = NULL;
		if (kind == PV_WRITE) {
			op->data = pv_xrealloc(NULL, len ? len : 1);
			memcpy(op->data, data, len);
		}
		if (kind == PV_SYNC)
			nsyncs++;
	}
	pthread_mutex_unlock(&trace_lock);
}

static int
pv_which_of(const char *name)
{
	int which = PV_OTHER;

	if (name == NULL)
		return PV_OTHER;
	pthread_mutex_lock(&trace_lock);
	for (int i = 0; i < PV_FILES; i++)
		if (names[i][0] != '\0' && strcmp(name, names[i]) == 0)
			which = i;
	pthread_mutex_unlock(&trace_lock);
	return which;
}

#define REAL(f) (((struct pv_file *)(f))->real)
#define WHICH(f) (((struct pv_file *)(f))->which)

static int
f_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int
f_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int
f_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	int rc = REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);

	/* Recorded only once it happened: a failed write changed nothing
	 * we could model. */
	if (rc == SQLITE_OK)
		pv_record(PV_WRITE, WHICH(f), off, buf, (size_t)amt);
	return rc;
}

static int
f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = REAL(f)->pMethods->xTruncate(REAL(f), size);

	if (rc == SQLITE_OK)
		pv_record(PV_TRUNCATE, WHICH(f), size, NULL, 0);
	return rc;
}

static int
f_sync(sqlite3_file *f, int flags)
{
	int rc = REAL(f)->pMethods->xSync(REAL(f), flags);

	if (rc == SQLITE_OK)
		pv_record(PV_SYNC, WHICH(f), 0, NULL, 0);
	return rc;
}

static int
f_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int
f_lock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xLock(REAL(f), lock);
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
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int
f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
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
	struct pv_file *pf = (struct pv_file *)file;
	int rc;

	(void)vfs;
	pf->base.pMethods = NULL;
	pf->real = (sqlite3_file *)(pf + 1);
	pf->which = pv_which_of(name);
	rc = real_vfs->xOpen(real_vfs, name, pf->real, flags, out_flags);
	if (rc != SQLITE_OK || pf->real->pMethods == NULL)
		return rc;
	switch (pf->real->pMethods->iVersion) {
	case 1:
		pf->base.pMethods = &pv_io_v1;
		break;
	case 2:
		pf->base.pMethods = &pv_io_v2;
		break;
	default:
		pf->base.pMethods = &pv_io_v3;
		break;
	}
	return SQLITE_OK;
}

static int
v_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	int rc;

	(void)vfs;
	rc = real_vfs->xDelete(real_vfs, name, sync);
	if (rc == SQLITE_OK)
		pv_record(PV_DELETE, pv_which_of(name), 0, NULL, 0);
	return rc;
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
pv_build_methods(void)
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
	pv_io_v1 = m;
	m.iVersion = 2;
	m.xShmMap = f_shm_map;
	m.xShmLock = f_shm_lock;
	m.xShmBarrier = f_shm_barrier;
	m.xShmUnmap = f_shm_unmap;
	pv_io_v2 = m;
	m.iVersion = 3;
	m.xFetch = f_fetch;
	m.xUnfetch = f_unfetch;
	pv_io_v3 = m;
}

void
powervfs_install(void)
{
	if (real_vfs != NULL)
		return;
	real_vfs = sqlite3_vfs_find(NULL);
	pv_build_methods();
	memset(&power_vfs, 0, sizeof power_vfs);
	power_vfs.iVersion = 2;
	power_vfs.szOsFile = (int)sizeof(struct pv_file) + real_vfs->szOsFile;
	power_vfs.mxPathname = real_vfs->mxPathname;
	power_vfs.zName = "powervfs";
	power_vfs.xOpen = v_open;
	power_vfs.xDelete = v_delete;
	power_vfs.xAccess = v_access;
	power_vfs.xFullPathname = v_full_pathname;
	power_vfs.xRandomness = v_randomness;
	power_vfs.xSleep = v_sleep;
	power_vfs.xCurrentTime = v_current_time;
	power_vfs.xGetLastError = v_get_last_error;
	power_vfs.xCurrentTimeInt64 = v_current_time_int64;
	if (sqlite3_vfs_register(&power_vfs, 1) != SQLITE_OK)
		abort();
}

/* The whole file at `path` into b (empty if there is none). */
static void
pv_read_file(const char *path, struct pv_buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	b->size = 0;
	if (fd < 0)
		return;
	for (;;) {
		pv_buf_reserve(b, b->size + 65536);
		n = read(fd, b->data + b->size, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		b->size += (size_t)n;
	}
	if (n < 0)
		abort();
	close(fd);
}

static void
pv_trace_clear(void)
{
	for (size_t i = 0; i < nops; i++)
		free(ops[i].data);
	free(ops);
	ops = NULL;
	nops = capops = nsyncs = 0;
}

void
powervfs_record_start(const char *db_path)
{
	char abs[PATH_MAX];

	/* SQLite names files by their full path (xFullPathname of the
	 * unix VFS: the directory resolved, the name kept). */
	if (real_vfs->xFullPathname(real_vfs, db_path, (int)sizeof abs, abs) !=
	    SQLITE_OK)
		abort();
	pthread_mutex_lock(&trace_lock);
	pv_trace_clear();
	snprintf(names[PV_DB], sizeof names[PV_DB], "%s", abs);
	snprintf(names[PV_WAL], sizeof names[PV_WAL], "%s-wal", abs);
	pv_read_file(names[PV_DB], &initial[PV_DB]);
	pv_read_file(names[PV_WAL], &initial[PV_WAL]);
	recording = true;
	pthread_mutex_unlock(&trace_lock);
}

void
powervfs_record_stop(void)
{
	pthread_mutex_lock(&trace_lock);
	recording = false;
	pthread_mutex_unlock(&trace_lock);
}

size_t
powervfs_mark(void)
{
	size_t n;

	pthread_mutex_lock(&trace_lock);
	n = nops;
	pthread_mutex_unlock(&trace_lock);
	return n;
}

size_t
powervfs_trace_len(void)
{
	return powervfs_mark();
}

size_t
powervfs_trace_syncs(void)
{
	size_t n;

	pthread_mutex_lock(&trace_lock);
	n = nsyncs;
	pthread_mutex_unlock(&trace_lock);
	return n;
}

/* ---------------------------------------------------------------- */
/* Replay                                                            */

struct powervfs_replay {
	size_t pos;			 /* ops [0, pos) are accounted for */
	struct pv_buf durable[PV_FILES]; /* P2 */
	size_t *pending[PV_FILES];	 /* op indices since the last sync */
	size_t npending[PV_FILES], cappending[PV_FILES];
	struct pv_buf scratch;
	uint64_t rng;
};

struct powervfs_replay *
powervfs_replay_new(void)
{
	struct powervfs_replay *r = calloc(1, sizeof *r);

	if (r == NULL)
		return NULL;
	for (int i = 0; i < PV_FILES; i++)
		pv_buf_copy(&r->durable[i], &initial[i]);
	return r;
}

void
powervfs_replay_free(struct powervfs_replay *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < PV_FILES; i++) {
		free(r->durable[i].data);
		free(r->pending[i]);
	}
	free(r->scratch.data);
	free(r);
}

static void
pv_apply(struct pv_buf *b, const struct pv_op *op)
{
	if (op->kind == PV_WRITE)
		pv_buf_write(b, op->off, op->data, op->len);
	else if (op->kind == PV_TRUNCATE)
		pv_buf_truncate(b, op->off);
}

/* Account for ops [r->pos, at): P2. */
static void
pv_advance(struct powervfs_replay *r, size_t at)
{
	for (; r->pos < at; r->pos++) {
		const struct pv_op *op = &ops[r->pos];
		int w = op->which;

		switch (op->kind) {
		case PV_WRITE:
		case PV_TRUNCATE:
			if (r->npending[w] == r->cappending[w]) {
				r->cappending[w] = r->cappending[w]
						       ? r->cappending[w] * 2
						       : 256;
				r->pending[w] = pv_xrealloc(r->pending[w],
							    r->cappending[w] *
								sizeof(size_t));
			}
			r->pending[w][r->npending[w]++] = r->pos;
			break;
		case PV_SYNC:
			for (size_t i = 0; i < r->npending[w]; i++)
				pv_apply(&r->durable[w],
					 &ops[r->pending[w][i]]);
			r->npending[w] = 0;
			break;
		case PV_DELETE:
			/* An unlink reaches the disk as it happens: the
			 * harsher choice, since SQLite deletes a -wal only
			 * once its content is synced into the database. */
			r->durable[w].size = 0;
			r->npending[w] = 0;
			break;
		}
	}
}

static uint64_t
pv_rand(struct powervfs_replay *r)
{
	/* splitmix64 */
	uint64_t z = (r->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Replace `path` with a new file holding b[0..len). */
static int
pv_write_file(const char *path, const unsigned char *p, size_t len)
{
	int fd;

	if (unlink(path) != 0 && errno != ENOENT)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return close(fd);
}

/* P3: the durable image of file w with this cut's share of its pending
 * writes, into r->scratch. */
static void
pv_cut_file(struct powervfs_replay *r, int w, enum powervfs_cut cut,
	    struct powervfs_cut_info *info)
{
	size_t kept = 0, lost = 0;

	pv_buf_copy(&r->scratch, &r->durable[w]);
	for (size_t i = 0; i < r->npending[w]; i++) {
		const struct pv_op *op = &ops[r->pending[w][i]];

		if (cut == POWERVFS_KEEP) {
			pv_apply(&r->scratch, op);
			kept++;
		} else if (cut == POWERVFS_DROP) {
			lost++;
		} else if (op->kind == PV_TRUNCATE) {
			if (pv_rand(r) & 1) {
				pv_apply(&r->scratch, op);
				kept++;
			} else {
				lost++;
			}
		} else {
			/* Sector by sector, each kept or lost on its own. */
			int64_t off = op->off, end = op->off + (int64_t)op->len;
			while (off < end) {
				int64_t next =
				    (off / PV_SECTOR + 1) * PV_SECTOR;
				if (next > end)
					next = end;
				if (pv_rand(r) & 1) {
					pv_buf_write(&r->scratch, off,
						     op->data + (off - op->off),
						     (size_t)(next - off));
					kept++;
				} else {
					lost++;
				}
				off = next;
			}
		}
	}
	info->pending_writes += r->npending[w];
	info->sectors_kept += kept;
	info->sectors_lost += lost;
	if (kept > 0 && lost > 0)
		info->torn_files++;
}

int
powervfs_replay_image(struct powervfs_replay *r, size_t at,
		      enum powervfs_cut cut, enum powervfs_shm shm,
		      uint64_t seed, const char *db_path,
		      struct powervfs_cut_info *info)
{
	struct powervfs_cut_info local = {0};
	char path[PATH_MAX + 8];

	if (at < r->pos || at > nops) {
		errno = EINVAL;
		return -1;
	}
	pv_advance(r, at);
	r->rng = seed;
	for (int w = 0; w < PV_FILES; w++) {
		pv_cut_file(r, w, cut, &local);
		snprintf(path, sizeof path, "%s%s", db_path,
			 w == PV_WAL ? "-wal" : "");
		if (w == PV_WAL && r->scratch.size == 0) {
			/* A -wal of no bytes is the same as none. */
			if (unlink(path) != 0 && errno != ENOENT)
				return -1;
			continue;
		}
		if (pv_write_file(path, r->scratch.data, r->scratch.size) != 0)
			return -1;
	}
	snprintf(path, sizeof path, "%s-shm", db_path);
	if (shm == POWERVFS_SHM_GONE) {
		if (unlink(path) != 0 && errno != ENOENT)
			return -1;
	} else {
		size_t len =
		    shm == POWERVFS_SHM_GARBAGE ? PV_SHM_GARBAGE_LEN : 0;

		pv_buf_reserve(&r->scratch, PV_SHM_GARBAGE_LEN);
		for (size_t i = 0; i < len; i += 8) {
			uint64_t v = pv_rand(r);
			memcpy(r->scratch.data + i, &v, 8);
		}
		if (pv_write_file(path, r->scratch.data, len) != 0)
			return -1;
	}
	if (info != NULL)
		*info = local;
	return 0;
}

const char *
powervfs_cut_name(enum powervfs_cut cut)
{
	static const char *const n[] = {"drop", "keep", "tear"};
	return (unsigned)cut < POWERVFS_CUT_KINDS ? n[cut] : "?";
}

const char *
powervfs_shm_name(enum powervfs_shm shm)
{
	static const char *const n[] = {"gone", "empty", "garbage"};
	return (unsigned)shm < POWERVFS_SHM_KINDS ? n[shm] : "?";
}
