/* SPDX-License-Identifier: MIT */
/*
 * bus.c - litebus_open/close; owns and wires the rest.
 *
 * A bus is one database file, its channels (rings) and its writer thread.
 * Opening a file that this process already has open returns the same bus
 * (so a wake-up is never split between two handles, and the file never
 * gets two writers, two WAL files through two names, or two views of its
 * locks): file buses are kept in a registry keyed by the file's device
 * and inode, not by any of its names.
 *
 * A handle must stay valid memory for the life of the process (litebus.h:
 * a call that starts after the last close returns ECLOSED), so the
 * struct litebus is never freed: when its last reference goes, everything
 * it owns is freed and the struct stays behind as a small tombstone.
 *
 * Threads: any thread may open and close; the registry, the list of files
 * inherited across fork() and the tombstones are under `registry_lock`.
 * The last litebus_close() of a bus must not run on its own writer (it
 * joins that thread), nor may an open of its file wait for that close
 * there: both return EDEADLK instead.  A bus with a retention policy
 * has a pruner thread (retention.c): started after the writer, stopped
 * and joined by the last close before the writer is (it runs jobs).
 *
 * Invariants
 *   B1  `refs` counts one reference for all opens together (dropped by the
 *       close that ends the last open, after the writer has been joined),
 *       one per live subscriber and reader, and one per exec, submit,
 *       subscribe, reader_open, stats or channel lookup in progress, taken
 *       with lb_bus_tryref() before the call touches anything the bus
 *       owns.  tryref fails once CLOSED (set as the last close begins) or
 *       DEAD is set, so a call that starts after the last close returned -
 *       or was preempted before its tryref and resumes then - gets ECLOSED
 *       and touches only the tombstone (B3).  A call that took its
 *       reference keeps the bus's channels and writer alive to its end.
 *   B2  A file bus is registered from its open until it is buried (B3).
 *       While open_count > 0 an open of its file shares it.  While its last
 *       close runs (`closing`: from the last close's start until the writer
 *       has been joined) an open of the file waits for it (registry_cond)
 *       rather than start a second writer on the file; on the writer
 *       thread of that bus it returns EDEADLK instead, since the close is
 *       waiting for that very thread.  Once closed (open_count == 0, not
 *       closing) it stays registered only while readers may still hold
 *       connections to its file: opens skip it, and fork() counts its file
 *       as open (F2).  open_count and closing change only under
 *       registry_lock, for in-memory buses (never registered) too.
 *   B3  The unref that takes the count to zero sets DEAD in the same atomic
 *       step and buries the bus: unregisters it, frees the writer, the
 *       channels and their rings, the names and mem_keeper, clears those
 *       pointers, and puts the struct on `tombstones`, where it stays
 *       reachable (LeakSanitizer) and is never reused.  What a call may
 *       read without a reference - refs, fork_gen, dev, ino, and under the
 *       lock open_count and closing - stays valid in a tombstone; a buried
 *       bus has open_count 0, so closing it again returns ECLOSED.
 *   B5  A registered bus's path still names its file, and no other file
 *       is opened by that path while it is registered (bus_check_names,
 *       lb_bus_check_file): SQLite's -wal and -shm follow the path.
 *   B4  The registry key is the file's (st_dev, st_ino), read by stat()
 *       before the bus is made (if the file exists) and again after its
 *       writer has opened it; the two must agree, or the open fails with
 *       ECANTOPEN and is undone.  An open bus keeps its writer's
 *       connection open on the file (from lb_writer_start until its writer
 *       exits during the last close), so while a registered bus can be
 *       shared no other file can have its device and inode.  A closing bus
 *       may already have closed it; an open that matches one only waits
 *       for the close to end and then looks again.  At most one registered
 *       bus per identity is open or closing.
 *
 * fork()
 *   F1  lb_fork_generation is raised by the atfork child handler; a bus
 *       records the generation it was made in (fork_gen), and every public
 *       call on a bus, subscriber or reader whose bus is from an older
 *       generation returns EFORKED before it touches a lock, a thread or a
 *       SQLite connection (lb_bus_forked()).  The child frees nothing of
 *       an inherited handle: that memory is the parent's copy.
 *   F2  The child handler moves every registered bus (open, closing or
 *       closed with readers) to `inherited` and empties the registry.
 *       litebus_open of a file whose identity is inherited returns EFORKED
 *       without opening it: SQLite's per-process lock bookkeeping for it
 *       was copied mid-use.  Grandchildren inherit the list as well.
 *   F3  The prepare handler holds registry_lock across fork(), so the
 *       registry is copied whole, never mid-change.  The child handler
 *       releases it (the forking thread took it and is the child's only
 *       thread) and re-initializes registry_cond, whose waiters were
 *       parent threads that do not exist in the child.
 *   F4  The prepare handler also holds SQLite's process-wide mutexes, so
 *       the child never inherits one that a parent thread held inside
 *       SQLite (bus_sqlite_mutexes).
 */
/* realpath() is an X/Open interface. */
#define _XOPEN_SOURCE 700

#include "bus.h"

#include "catalog.h"
#include "errors.h"
#include "jobs.h"
#include "memvfs.h"
#include "retention.h"
#include "role.h"
#include "watcher.h"
#include "writer.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t registry_cond = PTHREAD_COND_INITIALIZER;
static litebus *registry;   /* B2, under registry_lock */
static litebus *inherited;  /* F2, under registry_lock */
static litebus *tombstones; /* B3, under registry_lock; never walked */
static _Atomic uint32_t memory_db_counter;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_rc; /* written once under atfork_once */

void
litebus_options_init(litebus_options *o)
{
	if (o == NULL)
		return;
	memset(o, 0, sizeof *o);
	o->path = NULL;
	o->ring_capacity = 4096;
	o->durability = LITEBUS_DURABILITY_NORMAL;
	o->max_batch = 256;
	o->channels = NULL;
	o->busy_timeout_ms = 5000;
	o->max_queue = 1u << 20;
	o->reader_batch = 256;
	o->checkpoint_mode = LITEBUS_CHECKPOINT_BACKGROUND;
	o->checkpoint_pages = 1000;
	o->retention = NULL;
	o->prune_batch_rows = 1000;
	o->prune_interval_ms = 1000;
	o->read_only = 0;
	o->watch = LITEBUS_WATCH_AUTO;
	o->watch_interval_ms = 1000;
	o->reader_inline_bytes = 192;
}

/* ------------------------------------------------------------------ */
/* fork()                                                              */

/* F3: the registry is copied whole. */
/*
 * F4: SQLite's process-wide mutexes, in the order SQLite itself nests
 * them: OPEN holds the VFS mutexes, the PRNG and MAIN while it opens a
 * shared btree; the unix VFS holds VFS1 (its temporary-directory mutex)
 * while it names a temporary file, and that calls sqlite3_randomness,
 * which takes the PRNG (seen in Debian's SQLite 3.40 by disassembly: a
 * job whose statement journal spills to a temporary file does it on the
 * writer thread); PRNG holds MAIN in sqlite3_vfs_find; the page-cache
 * group (LRU) holds PMEM, which gives way to MEM; MEM holds nothing.
 * (This list had PRNG before VFS1, so a fork() while the writer named a
 * temporary file could deadlock the forking thread against it.)  SQLite
 * installs no fork handlers: a thread of the parent inside sqlite3_malloc at
 * the fork would leave MEM locked forever in the child, and the child's
 * litebus_open would hang there.  Holding them all across fork() gives the
 * child consistent, unlocked copies.  Taking them in this order cannot deadlock
 * with a thread that takes them in SQLite's order; the application's own APP1-3
 * mutexes are left alone.
 */
static const int sqlite_static_mutexes[] = {
    SQLITE_MUTEX_STATIC_OPEN, SQLITE_MUTEX_STATIC_VFS1,
    SQLITE_MUTEX_STATIC_VFS2, SQLITE_MUTEX_STATIC_VFS3,
    SQLITE_MUTEX_STATIC_PRNG, SQLITE_MUTEX_STATIC_MAIN,
    SQLITE_MUTEX_STATIC_LRU,  SQLITE_MUTEX_STATIC_PMEM,
    SQLITE_MUTEX_STATIC_MEM};
#define NSTATIC (sizeof sqlite_static_mutexes / sizeof sqlite_static_mutexes[0])

static void
bus_sqlite_mutexes(bool enter)
{
	for (size_t k = 0; k < NSTATIC; k++) {
		/* Leave in the reverse order of entering. */
		size_t i = enter ? k : NSTATIC - 1 - k;
		sqlite3_mutex *m =
		    sqlite3_mutex_alloc(sqlite_static_mutexes[i]);

		/* NULL: SQLite was built without mutexes (or failed to set
		 * them up), and then there is nothing to hold. */
		if (m == NULL)
			continue;
		if (enter)
			sqlite3_mutex_enter(m);
		else
			sqlite3_mutex_leave(m);
	}
}

static void
bus_atfork_prepare(void)
{
	pthread_mutex_lock(&registry_lock);
	bus_sqlite_mutexes(true); /* F4 */
}

static void
bus_atfork_parent(void)
{
	bus_sqlite_mutexes(false);
	pthread_mutex_unlock(&registry_lock);
}

/* Runs in the child's only thread, before fork() returns there. */
static void
bus_atfork_child(void)
{
	lb_fork_child(); /* F1 */
	/* F2: every file the parent had registered, the ones it had itself
	 * inherited included. */
	if (registry != NULL) {
		litebus *tail = registry;

		while (tail->next_open != NULL)
			tail = tail->next_open;
		tail->next_open = inherited;
		inherited = registry;
		registry = NULL;
	}
	/* F3.  Waiters on the copied condition variable were threads of
	 * the parent; a broadcast in the child must not wait for them. */
	registry_cond = (pthread_cond_t)PTHREAD_COND_INITIALIZER;
	/* F4: this thread entered them in the parent; the copies are its. */
	bus_sqlite_mutexes(false);
	pthread_mutex_unlock(&registry_lock);
}

static void
bus_atfork_register(void)
{
	atfork_rc = pthread_atfork(bus_atfork_prepare, bus_atfork_parent,
				   bus_atfork_child);
}

/* Register the fork handlers once, before the first bus exists. */
static int
bus_atfork_once(void)
{
	int rc = pthread_once(&atfork_once, bus_atfork_register);

	if (rc == 0)
		rc = atfork_rc; /* pthread_once synchronizes with the write */
	if (rc != 0)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: registering the fork "
				  "handlers: %s",
				  strerror(rc));
	return LITEBUS_OK;
}

/* F2.  Under registry_lock. */
static bool
bus_is_inherited(dev_t dev, ino_t ino)
{
	for (const litebus *b = inherited; b != NULL; b = b->next_open)
		if (b->dev == dev && b->ino == ino)
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* References and tombstones                                           */

bool
lb_bus_tryref(litebus *bus, const char *call)
{
	uint32_t old = atomic_load_explicit(&bus->refs, memory_order_relaxed);

	/* Relaxed: success means the count was >= 1 and DEAD unset when we
	 * raised it, so the unref that sets DEAD (B3) comes later in refs'
	 * modification order and needs our own unref first, whose release
	 * orders our uses before the bury.  What the call then reads
	 * (writer, channels) was immutable before the caller had the handle.
	 * Failure reads nothing but this word. */
	do {
		if ((old & (LB_REFS_DEAD | LB_REFS_CLOSED)) != 0) {
			lb_err_set(LITEBUS_ECLOSED, "%s: the bus is closed",
				   call);
			return false;
		}
		assert((old & LB_REFS_COUNT) < LB_REFS_COUNT);
	} while (!atomic_compare_exchange_weak_explicit(
	    &bus->refs, &old, old + 1, memory_order_relaxed,
	    memory_order_relaxed));
	return true;
}

void
lb_bus_ref(litebus *bus)
{
	/* Relaxed: the caller holds a reference (B1), so the count cannot
	 * reach zero concurrently; the acq_rel step in lb_bus_unref orders
	 * the uses. */
	uint32_t old =
	    atomic_fetch_add_explicit(&bus->refs, 1, memory_order_relaxed);

	assert((old & LB_REFS_COUNT) > 0 && (old & LB_REFS_DEAD) == 0);
	(void)old;
}

/* Free everything the bus owns and clear the pointers; the struct itself
 * stays.  Safe on a partly built bus. */
static void
bus_release(litebus *bus)
{
	lb_retention_free(bus->retention); /* stopped before the writer */
	bus->retention = NULL;
	lb_watcher_free(bus->watcher); /* stopped by the last close */
	bus->watcher = NULL;
	lb_writer_free(bus->writer);
	bus->writer = NULL;
	if (bus->has_jobs) {
		lb_jobq_fini(&bus->jobs);
		bus->has_jobs = false;
	}
	/* close_v2 on an in-memory database with no statements of ours
	 * cannot fail, and there is nothing to do if it did. */
	(void)sqlite3_close_v2(bus->mem_keeper);
	bus->mem_keeper = NULL;
	for (int i = 0; i < bus->nchannels; i++) {
		if (bus->channels[i] != NULL) {
			lb_channel_fini(bus->channels[i]);
			free(bus->channels[i]);
			bus->channels[i] = NULL;
		}
	}
	bus->nchannels = 0;
	free(bus->dbn.name);
	bus->dbn.name = NULL;
	free(bus->canon_path);
	bus->canon_path = NULL;
}

/* B3.  Any thread, without registry_lock. */
static void
bus_bury(litebus *bus)
{
	bool is_file = bus->canon_path != NULL;

	/* Freed before it leaves the registry: a closed bus is only ever
	 * matched there by its dev and ino, which stay (B2, B3). */
	bus_release(bus);
	pthread_mutex_lock(&registry_lock);
	if (is_file) {
		for (litebus **p = &registry; *p != NULL;
		     p = &(*p)->next_open) {
			if (*p == bus) {
				*p = bus->next_open;
				break;
			}
		}
	}
	bus->next_open = tombstones;
	tombstones = bus;
	pthread_mutex_unlock(&registry_lock);
}

void
lb_bus_unref(litebus *bus)
{
	uint32_t old = atomic_load_explicit(&bus->refs, memory_order_relaxed);
	uint32_t next;

	/* B3: the step that takes the count to zero sets DEAD in the same
	 * CAS, so no tryref can slip in between.  acq_rel: every use of the
	 * bus by a thread dropping a reference (release) happens before the
	 * bury by whoever drops the last one (acquire; the earlier unrefs
	 * are in its release sequence). */
	do {
		assert((old & LB_REFS_COUNT) > 0 && (old & LB_REFS_DEAD) == 0);
		next = (old & LB_REFS_COUNT) == 1
			   ? (old & ~LB_REFS_COUNT) | LB_REFS_DEAD
			   : old - 1;
	} while (!atomic_compare_exchange_weak_explicit(&bus->refs, &old, next,
							memory_order_acq_rel,
							memory_order_relaxed));
	if ((next & LB_REFS_DEAD) != 0)
		bus_bury(bus);
}

int
lb_bus_readonly_err(const char *call)
{
	return lb_err_set(LITEBUS_EREADONLY,
			  "%s: the bus was opened read-only "
			  "(litebus_options.read_only)",
			  call);
}

void
lb_bus_follow(litebus *bus, struct lb_channel *ch)
{
	lb_watcher_follow(bus->watcher, ch);
}

void
lb_bus_unfollow(litebus *bus, struct lb_channel *ch)
{
	lb_watcher_unfollow(bus->watcher, ch);
}

struct lb_channel *
lb_bus_channel(litebus *bus, int channel)
{
	if (channel < 0 || channel >= bus->nchannels)
		return NULL;
	return bus->channels[channel];
}

static int
bus_channel_index(const litebus *bus, const char *name)
{
	for (int i = 0; i < bus->nchannels; i++)
		if (strcmp(bus->channels[i]->name, name) == 0)
			return i;
	return -1;
}
static bool
bus_is_memory_path(const char *path)
{
	return path == NULL || strcmp(path, ":memory:") == 0;
}

/* The canonical form of a path that may not exist yet: the real path of
 * its directory, then its last component. */
static int
bus_canonical_path(const char *path, char **out)
{
	char *copy, *base, *real, *slash;
	const char *dir;
	size_t len;

	*out = NULL;
	if (path[0] == '\0')
		return lb_err_set(LITEBUS_EINVAL, "litebus_open: empty path");
	real = realpath(path, NULL);
	if (real != NULL) {
		*out = real;
		return LITEBUS_OK;
	}
	if (errno != ENOENT)
		return lb_err_set(
		    errno == ENOMEM ? LITEBUS_ENOMEM : LITEBUS_ECANTOPEN,
		    "litebus_open: %s: %s", path, strerror(errno));
	copy = strdup(path);
	if (copy == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: out of memory");
	slash = strrchr(copy, '/');
	if (slash == NULL) {
		dir = ".";
		base = copy;
	} else {
		*slash = '\0';
		dir = slash == copy ? "/" : copy;
		base = slash + 1;
	}
	if (base[0] == '\0') {
		free(copy);
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: %s names a directory", path);
	}
	real = realpath(dir, NULL);
	if (real == NULL) {
		int e = errno;
		free(copy);
		return lb_err_set(
		    e == ENOMEM ? LITEBUS_ENOMEM : LITEBUS_ECANTOPEN,
		    "litebus_open: directory of %s: %s", path, strerror(e));
	}
	len = strlen(real) + strlen(base) + 2;
	*out = malloc(len);
	if (*out != NULL)
		snprintf(*out, len, "%s%s%s", real,
			 strcmp(real, "/") == 0 ? "" : "/", base);
	free(real);
	free(copy);
	return *out != NULL
		   ? LITEBUS_OK
		   : lb_err_set(LITEBUS_ENOMEM, "litebus_open: out of memory");
}

/* Channel "x" has an index litebus_outbox_x_partition, which shares
 * SQLite's namespace with tables: a channel named "x_partition" (any
 * case) next to "x", built-in or declared, would collide with it. */
static int
bus_check_index_clash(const litebus_options *o, const char *name)
{
	static const char suffix[] = "_partition";
	size_t n = strlen(name), k = sizeof suffix - 1;
	char prefix[LITEBUS_CHANNEL_NAME_MAX + 1];
	bool clash = false;

	if (n <= k || strcasecmp(name + n - k, suffix) != 0)
		return LITEBUS_OK;
	memcpy(prefix, name, n - k);
	prefix[n - k] = '\0';
	for (int b = 0; b < LITEBUS_BUILTIN_CHANNELS; b++)
		if (strcasecmp(prefix, lb_catalog_builtin_name(b)) == 0)
			clash = true;
	for (const char *const *d = o->channels; d != NULL && *d != NULL; d++)
		if (strcasecmp(prefix, *d) == 0)
			clash = true;
	if (!clash)
		return LITEBUS_OK;
	return lb_err_set(LITEBUS_EINVAL,
			  "litebus_open: channel '%s' would share its table's "
			  "name with the index of channel '%s' "
			  "(litebus_outbox_%s_partition)",
			  name, prefix, prefix);
}

static int
bus_check_options(const litebus_options *o, int *nextra)
{
	uint32_t cap = o->ring_capacity;
	int n = 0, rc;

	if (cap < LITEBUS_RING_MIN || cap > LITEBUS_RING_MAX ||
	    (cap & (cap - 1)) != 0)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: ring_capacity %u is not a "
				  "power of two in [%u, %u]",
				  cap, LITEBUS_RING_MIN, LITEBUS_RING_MAX);
	if (o->durability != LITEBUS_DURABILITY_NORMAL &&
	    o->durability != LITEBUS_DURABILITY_FULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: unknown durability %d",
				  o->durability);
	if (o->max_batch < 1 || o->max_batch > 65536)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: max_batch %u is not in "
				  "[1, 65536]",
				  o->max_batch);
	if (o->max_queue < 1)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: max_queue must be >= 1");
	if (o->reader_batch < 1 || o->reader_batch > 65536)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: reader_batch %u is not in "
				  "[1, 65536]",
				  o->reader_batch);
	if (o->checkpoint_mode != LITEBUS_CHECKPOINT_BACKGROUND &&
	    o->checkpoint_mode != LITEBUS_CHECKPOINT_INLINE)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: unknown checkpoint_mode %d",
				  o->checkpoint_mode);
	if (o->checkpoint_pages < 1)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: checkpoint_pages must be "
				  ">= 1");
	if (o->watch != LITEBUS_WATCH_AUTO && o->watch != LITEBUS_WATCH_POLL &&
	    o->watch != LITEBUS_WATCH_OFF)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: unknown watch mode %d",
				  o->watch);
	if (o->reader_inline_bytes > 65536)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: reader_inline_bytes %u is "
				  "not in [0, 65536]",
				  o->reader_inline_bytes);
	if (o->watch_interval_ms < 1 || o->watch_interval_ms > 60000)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: watch_interval_ms %u is not "
				  "in [1, 60000]",
				  o->watch_interval_ms);
	if (o->read_only && bus_is_memory_path(o->path))
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: an in-memory database cannot "
				  "be opened read-only (it would be a new, "
				  "empty one)");
	if (o->read_only && o->retention != NULL &&
	    o->retention[0].channel != NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_open: a read-only bus cannot apply "
				  "a retention policy (pruning writes)");
	for (const char *const *c = o->channels; c != NULL && *c != NULL;
	     c++, n++) {
		if (!lb_catalog_name_ok(*c))
			return lb_err_set(
			    LITEBUS_EINVAL,
			    "litebus_open: invalid channel name '%.64s': use "
			    "1 to %d letters, digits or underscores, not "
			    "starting with a digit",
			    *c, LITEBUS_CHANNEL_NAME_MAX);
		if (n + LITEBUS_BUILTIN_CHANNELS >= LITEBUS_MAX_CHANNELS)
			return lb_err_set(LITEBUS_EINVAL,
					  "litebus_open: more than %d "
					  "channels",
					  LITEBUS_MAX_CHANNELS);
		/* Ignoring case: each channel has a table named after it, and
		 * SQLite table names ignore case, so "Orders" and "orders"
		 * would share one table (outbox.c). */
		for (int b = 0; b < LITEBUS_BUILTIN_CHANNELS; b++)
			if (strcasecmp(*c, lb_catalog_builtin_name(b)) == 0)
				return lb_err_set(LITEBUS_EINVAL,
						  "litebus_open: channel '%s' "
						  "is built in",
						  *c);
		for (const char *const *d = o->channels; d != c; d++)
			if (strcasecmp(*c, *d) == 0)
				return lb_err_set(LITEBUS_EINVAL,
						  "litebus_open: channel '%s' "
						  "declared twice (names are "
						  "compared ignoring case)",
						  *c);
		rc = bus_check_index_clash(o, *c);
		if (rc != LITEBUS_OK)
			return rc;
	}
	/* After the channels: policies name them. */
	rc = lb_retention_check_options(o);
	if (rc != LITEBUS_OK)
		return rc;
	*nextra = n;
	return LITEBUS_OK;
}

static int
bus_make_dbname(litebus *bus, const char *path)
{
	if (bus_is_memory_path(path)) {
		uint32_t n;
		char buf[128];

		/* SQLite's memdb VFS, one store shared by name between the
		 * bus's connections (the leading '/' makes it shared), under
		 * memvfs.c, which gives it the locks of a rollback-journal
		 * file.  Unlike a shared-cache database, whose table locks
		 * fail at once with SQLITE_LOCKED (a job's own CREATE TABLE
		 * beside a reader failed so), every conflict is SQLITE_BUSY,
		 * which both sides wait out: the writer's COMMIT waits for
		 * readers in the middle of a read (writer.c, writer_retry),
		 * readers wait for a COMMIT (reader.c, D6), not for a job -
		 * unless, as with a file, its transaction outgrows the
		 * writer's page cache, whose spill takes the exclusive lock
		 * until COMMIT.  Readers see committed transactions only. */
		const char *vfs = lb_memvfs_name();

		if (vfs == NULL)
			return LITEBUS_ECANTOPEN;
		/* Relaxed: a counter that only makes names unique. */
		n = atomic_fetch_add_explicit(&memory_db_counter, 1,
					      memory_order_relaxed);
		snprintf(buf, sizeof buf, "file:/litebus-mem-%ld-%u-%p?vfs=%s",
			 (long)getpid(), n, (void *)bus, vfs);
		bus->dbn.name = strdup(buf);
		bus->dbn.extra_flags = SQLITE_OPEN_URI;
		bus->dbn.is_memory = true;
	} else {
		bus->dbn.name = strdup(bus->canon_path);
		bus->dbn.extra_flags = 0;
		bus->dbn.is_memory = false;
	}
	if (bus->dbn.name == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: out of memory");
	return LITEBUS_OK;
}

/* The bus's channels: names[i] for channel i. */
static int
bus_make_channels(litebus *bus, const char *const *names, int n,
		  uint32_t ring_capacity)
{
	bus->nchannels = n;
	for (int i = 0; i < bus->nchannels; i++) {
		const char *name = names[i];
		struct lb_channel *ch = aligned_alloc(
		    LB_CACHELINE, (sizeof *ch + LB_CACHELINE - 1) &
				      ~(size_t)(LB_CACHELINE - 1));

		bus->channels[i] = ch;
		if (ch == NULL ||
		    lb_channel_init(ch, i, name, ring_capacity, 0) != 0) {
			free(ch);
			bus->channels[i] = NULL;
			return lb_err_set(LITEBUS_ENOMEM,
					  "litebus_open: allocating the ring "
					  "of channel %s",
					  name);
		}
	}
	return LITEBUS_OK;
}

/* An already open bus may be shared if it has every channel asked for.
 * Under registry_lock. */
static int
bus_share(litebus *bus, const litebus_options *o)
{
	for (const char *const *c = o->channels; c != NULL && *c != NULL; c++)
		if (bus_channel_index(bus, *c) < 0)
			return lb_err_set(LITEBUS_EINVAL,
					  "litebus_open: %s is already open "
					  "in this process without channel "
					  "'%s'",
					  bus->canon_path, *c);
	bus->open_count++;
	return LITEBUS_OK;
}

/* The channels of a read-write bus: the built-in ones, then the
 * options'. */
static int
bus_make_rw_channels(litebus *bus, const litebus_options *o, int nextra)
{
	const char *names[LITEBUS_MAX_CHANNELS];
	int n = LITEBUS_BUILTIN_CHANNELS + nextra;

	for (int i = 0; i < n; i++)
		names[i] = i < LITEBUS_BUILTIN_CHANNELS
			       ? lb_catalog_builtin_name(i)
			       : o->channels[i - LITEBUS_BUILTIN_CHANNELS];
	return bus_make_channels(bus, names, n, o->ring_capacity);
}

/* The channels of a read-only bus: what the file holds (outbox.c).  Its
 * rings are never published to: the smallest size will do. */
static int
bus_make_ro_channels(litebus *bus, const litebus_options *o)
{
	char names[LITEBUS_MAX_CHANNELS][LITEBUS_CHANNEL_NAME_MAX + 1];
	const char *ptrs[LITEBUS_MAX_CHANNELS];
	int n, rc;

	rc = lb_outbox_inspect_readonly(&bus->dbn, o->channels, names, &n);
	if (rc != LITEBUS_OK)
		return rc;
	for (int i = 0; i < n; i++)
		ptrs[i] = names[i];
	return bus_make_channels(bus, ptrs, n, LITEBUS_RING_MIN);
}

/* The watcher of a file bus (watcher.c), unless the options turn it
 * off. */
static int
bus_start_watcher(litebus *bus)
{
	if (bus->dbn.is_memory || bus->opts.watch == LITEBUS_WATCH_OFF)
		return LITEBUS_OK;
	return lb_watcher_start(
	    &(struct lb_watcher_config){
		.dbn = &bus->dbn,
		.channels = bus->channels,
		.nchannels = bus->nchannels,
		.mode = bus->opts.watch,
		.interval_ms = bus->opts.watch_interval_ms,
		.commit_seq = &bus->commit_seq,
	    },
	    &bus->watcher);
}

/* A read-only bus has no writer: its last close closes the channels (C2)
 * in the writer's stead, after the watcher stopped. */
static void
bus_close_ro_channels(litebus *bus)
{
	const void *role = lb_role_writer();

	/* This thread may be another bus's writer: it gets that role
	 * back. */
	lb_role_set_writer(bus);
	for (int i = 0; i < bus->nchannels; i++)
		lb_channel_close(bus->channels[i]);
	lb_role_set_writer(role);
}

/* Build a bus and start its writer (none for a read-only bus) and its
 * watcher; takes ownership of canon (NULL for in-memory).  Does not
 * register it. */
static int
bus_create(const litebus_options *o, int nextra, char *canon, litebus **out)
{
	/* struct litebus has cache-line-aligned members: calloc's 16-byte
	 * alignment would not do. */
	size_t len = (sizeof(struct litebus) + LB_CACHELINE - 1) &
		     ~(size_t)(LB_CACHELINE - 1);
	litebus *bus = aligned_alloc(LB_CACHELINE, len);
	int rc;

	*out = NULL;
	if (bus == NULL) {
		free(canon);
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: out of memory");
	}
	memset(bus, 0, len);
	bus->opts = *o;
	bus->opts.path = NULL;
	bus->opts.channels = NULL;
	bus->opts.retention = NULL; /* copied into bus->retention */
	bus->canon_path = canon;
	bus->fork_gen = lb_fork_now(); /* F1 */
	atomic_init(&bus->refs, 1);
	atomic_init(&bus->commit_seq, 0);
	bus->open_count = 1;
	rc = bus_make_dbname(bus, o->path);
	if (rc == LITEBUS_OK)
		rc = o->read_only ? bus_make_ro_channels(bus, o)
				  : bus_make_rw_channels(bus, o, nextra);
	if (rc == LITEBUS_OK && o->read_only)
		rc = bus_start_watcher(bus);
	if (rc != LITEBUS_OK)
		goto fail;
	if (o->read_only) {
		*out = bus;
		return LITEBUS_OK;
	}
	rc = lb_jobq_init(&bus->jobs, o->max_queue, &bus->stats.queued);
	if (rc != LITEBUS_OK)
		goto fail;
	bus->has_jobs = true;
	rc = lb_writer_start(
	    &(struct lb_writer_config){
		.owner = bus,
		.dbn = &bus->dbn,
		.opts = &bus->opts,
		.channels = bus->channels,
		.nchannels = bus->nchannels,
		.stats = &bus->stats,
		.jobs = &bus->jobs,
		.fork_gen = bus->fork_gen,
		.commit_seq = &bus->commit_seq,
	    },
	    &bus->writer);
	if (rc == LITEBUS_OK && bus->dbn.is_memory)
		rc = lb_outbox_open_reader(&bus->dbn, &bus->mem_keeper);
	if (rc == LITEBUS_OK && bus->dbn.is_memory) {
		/* A memdb store stops growing at 1 GiB by default (then
		 * SQLITE_FULL); an in-memory bus is bounded by memory only,
		 * as a shared-cache one was.  The limit is the store's, so
		 * setting it on any of its connections will do. */
		sqlite3_int64 limit = INT64_MAX;
		int src = sqlite3_file_control(bus->mem_keeper, "main",
					       SQLITE_FCNTL_SIZE_LIMIT, &limit);

		if (src != SQLITE_OK)
			rc = lb_err_sqlite(bus->mem_keeper, src,
					   "litebus_open: lifting the size "
					   "limit of the in-memory database");
	}
	/* The pruner runs jobs: after the writer (retention.c, P4). */
	if (rc == LITEBUS_OK)
		rc = lb_retention_new(
		    &(struct lb_retention_config){
			.bus = bus,
			.opts = o,
			.channels = bus->channels,
			.nchannels = bus->nchannels,
			.stats = &bus->stats,
		    },
		    &bus->retention);
	if (rc == LITEBUS_OK)
		rc = lb_retention_start(bus->retention);
	if (rc == LITEBUS_OK)
		rc = bus_start_watcher(bus);
	if (rc != LITEBUS_OK) {
		lb_retention_stop(bus->retention);
		if (bus->writer != NULL)
			lb_writer_stop(bus->writer);
		goto fail;
	}
	*out = bus;
	return LITEBUS_OK;
fail:
	/* Nobody else ever saw this bus: free it whole. */
	bus_release(bus);
	free(bus);
	return rc;
}

/* The file's identity (B4).  *exists is false, with OK, if there is no
 * file at `path` yet. */
static int
bus_identity(const char *path, struct stat *st, bool *exists)
{
	*exists = false;
	if (stat(path, st) == 0) {
		*exists = true;
		return LITEBUS_OK;
	}
	if (errno == ENOENT)
		return LITEBUS_OK;
	return lb_err_set(errno == ENOMEM ? LITEBUS_ENOMEM : LITEBUS_ECANTOPEN,
			  "litebus_open: %s: %s", path, strerror(errno));
}

/* The registered bus of this identity and mode (read-only or not) that
 * is open or closing (B2, B4), or NULL.  Under registry_lock. */
static litebus *
bus_registered(dev_t dev, ino_t ino, bool read_only)
{
	for (litebus *b = registry; b != NULL; b = b->next_open)
		if (b->dev == dev && b->ino == ino &&
		    lb_bus_read_only(b) == read_only &&
		    (b->open_count > 0 || b->closing))
			return b;
	return NULL;
}

/* B5: SQLite names a database's -wal and -shm after the path it was
 * opened by.  So a registered bus must still be reachable by its own path
 * (renamed away, its readers would open whatever took the name), and no
 * other file may be opened by a path a registered bus uses (deleted or
 * renamed, then replaced: both would share one -wal, and committed
 * events would be lost).  `b` is the bus of this identity or NULL; `st`
 * the file at `canon`, or NULL if there is none.  Under registry_lock. */
static int
bus_check_names(litebus *b, const char *canon, const struct stat *st)
{
	if (b != NULL) {
		struct stat now;

		if (stat(b->canon_path, &now) != 0 || now.st_dev != b->dev ||
		    now.st_ino != b->ino)
			return lb_err_set(LITEBUS_ECANTOPEN,
					  "litebus_open: %s is open in this "
					  "process as %s, which no longer "
					  "names it (renamed or deleted while "
					  "open); SQLite's -wal follows the "
					  "name, so it was not opened again",
					  canon, b->canon_path);
		return LITEBUS_OK;
	}
	for (litebus *o = registry; o != NULL; o = o->next_open) {
		if (o->open_count <= 0 && !o->closing)
			continue;
		if (strcmp(o->canon_path, canon) != 0)
			continue;
		if (st == NULL || st->st_dev != o->dev || st->st_ino != o->ino)
			return lb_err_set(LITEBUS_ECANTOPEN,
					  "litebus_open: this process has %s "
					  "open as another file, which was "
					  "renamed or deleted since; the two "
					  "would share one -wal, so the new "
					  "one was not opened",
					  canon);
	}
	return LITEBUS_OK;
}

int
lb_bus_check_file(litebus *bus, const char *call)
{
	struct stat now;

	if (bus->canon_path == NULL) /* in memory */
		return LITEBUS_OK;
	if (stat(bus->canon_path, &now) == 0 && now.st_dev == bus->dev &&
	    now.st_ino == bus->ino)
		return LITEBUS_OK;
	return lb_err_set(LITEBUS_ECANTOPEN,
			  "%s: %s no longer names the bus's file (renamed or "
			  "deleted while open); a new connection would open "
			  "something else",
			  call, bus->canon_path);
}

/* litebus_open of a file, under registry_lock (held across the whole open,
 * so that two threads opening one file end up sharing one bus: B2).
 * Takes ownership of canon. */
static int
bus_open_file(const litebus_options *o, int nextra, char *canon, litebus **out)
{
	struct stat before, after;
	bool existed, exists;
	litebus *b, *bus;
	int rc;

again:
	rc = bus_identity(canon, &before, &existed);
	if (rc != LITEBUS_OK)
		goto out_free;
	if (existed && bus_is_inherited(before.st_dev, before.st_ino)) {
		rc = lb_err_set(LITEBUS_EFORKED,
				"litebus_open: %s was open in the parent "
				"process when this process was forked, and "
				"SQLite's lock bookkeeping for it was copied "
				"mid-use; the file was not opened.  Open "
				"litebus after fork() in each process that "
				"uses it (or exec())",
				canon);
		goto out_free;
	}
	/* B5: only regular files.  SQLite would write a character device
	 * (a symlink to /dev/null), and leave a -journal beside it. */
	if (existed && !S_ISREG(before.st_mode)) {
		rc =
		    lb_err_set(LITEBUS_ECANTOPEN,
			       "litebus_open: %s is not a regular file", canon);
		goto out_free;
	}
	if (!existed && o->read_only) {
		rc = lb_err_set(LITEBUS_ECANTOPEN,
				"litebus_open: %s does not exist (a read-only "
				"open does not create it)",
				canon);
		goto out_free;
	}
	b = existed ? bus_registered(before.st_dev, before.st_ino,
				     o->read_only != 0)
		    : NULL;
	rc = bus_check_names(b, canon, existed ? &before : NULL);
	if (rc != LITEBUS_OK)
		goto out_free;
	if (b != NULL && b->closing) {
		if (lb_writer_is_current(b)) {
			/* B2: that close is waiting for this very thread. */
			rc = lb_err_set(LITEBUS_EDEADLK,
					"litebus_open: %s is being closed, and "
					"this is its writer thread (a job or a "
					"done-callback): the close waits for "
					"it",
					canon);
			goto out_free;
		}
		/* B2: let its writer finish before opening anew. */
		pthread_cond_wait(&registry_cond, &registry_lock);
		goto again;
	}
	if (b != NULL) {
		rc = bus_share(b, o);
		if (rc == LITEBUS_OK)
			*out = b;
		goto out_free;
	}

	rc = bus_create(o, nextra, canon, &bus);
	if (rc != LITEBUS_OK)
		return rc; /* canon is freed */
	/* B4: the file the writer opened.  A path that did not exist may
	 * have been a dangling symlink through which SQLite created the
	 * file: stat follows it, as every later open of either name will. */
	rc = bus_identity(bus->canon_path, &after, &exists);
	if (rc == LITEBUS_OK && !exists)
		rc = lb_err_set(LITEBUS_ECANTOPEN,
				"litebus_open: %s vanished while it was being "
				"opened",
				bus->canon_path);
	else if (rc == LITEBUS_OK && existed &&
		 (after.st_dev != before.st_dev ||
		  after.st_ino != before.st_ino))
		rc = lb_err_set(LITEBUS_ECANTOPEN,
				"litebus_open: %s: the file changed while it "
				"was being opened (another file was moved to "
				"its name)",
				bus->canon_path);
	else if (rc == LITEBUS_OK && !existed &&
		 bus_is_inherited(after.st_dev, after.st_ino))
		rc = lb_err_set(LITEBUS_EFORKED,
				"litebus_open: %s became, while it was being "
				"opened, a file that was open in the parent "
				"process when this process was forked",
				bus->canon_path);
	else if (rc == LITEBUS_OK && !existed &&
		 bus_registered(after.st_dev, after.st_ino,
				o->read_only != 0) != NULL)
		rc = lb_err_set(LITEBUS_ECANTOPEN,
				"litebus_open: %s: the file changed while it "
				"was being opened (it is now a file this "
				"process already has open)",
				bus->canon_path);
	if (rc != LITEBUS_OK) {
		/* Undo: nobody else has seen this bus; its writer ran no
		 * job but perhaps the pruner's. */
		lb_watcher_stop(bus->watcher);
		lb_retention_stop(bus->retention);
		lb_writer_stop(bus->writer);
		bus_release(bus);
		free(bus);
		return rc;
	}
	bus->dev = after.st_dev;
	bus->ino = after.st_ino;
	bus->next_open = registry;
	registry = bus;
	*out = bus;
	return LITEBUS_OK;
out_free:
	free(canon);
	return rc;
}

int
litebus_open(const litebus_options *o, litebus **out)
{
	litebus_options defaults;
	char *canon = NULL;
	int nextra = 0, rc;

	if (out == NULL)
		return lb_err_set(LITEBUS_EINVAL, "litebus_open: NULL out");
	*out = NULL;
	rc = bus_atfork_once();
	if (rc != LITEBUS_OK)
		return rc;
	if (o == NULL) {
		litebus_options_init(&defaults);
		o = &defaults;
	}
	rc = bus_check_options(o, &nextra);
	if (rc != LITEBUS_OK)
		return rc;
	if (bus_is_memory_path(o->path))
		return bus_create(o, nextra, NULL, out);

	rc = bus_canonical_path(o->path, &canon);
	if (rc != LITEBUS_OK)
		return rc;
	pthread_mutex_lock(&registry_lock);
	rc = bus_open_file(o, nextra, canon, out);
	pthread_mutex_unlock(&registry_lock);
	return rc;
}

int
litebus_close(litebus *bus)
{
	if (bus == NULL)
		return LITEBUS_OK;
	if (lb_bus_forked(bus))
		return lb_fork_err("litebus_close");
	pthread_mutex_lock(&registry_lock);
	if (bus->open_count == 0) {
		pthread_mutex_unlock(&registry_lock);
		return lb_err_set(LITEBUS_ECLOSED,
				  "litebus_close: every open of this bus "
				  "was already closed");
	}
	if (bus->open_count > 1) {
		/* Not the last: nothing waits, on any thread. */
		bus->open_count--;
		pthread_mutex_unlock(&registry_lock);
		return LITEBUS_OK;
	}
	if (lb_writer_is_current(bus)) {
		pthread_mutex_unlock(&registry_lock);
		return lb_err_set(LITEBUS_EDEADLK,
				  "litebus_close: the last close of a bus "
				  "called on its own writer thread (from a "
				  "job or a done-callback) would wait for "
				  "itself");
	}
	bus->open_count = 0;
	bus->closing = true; /* B2 */
	/* B1: calls that start from here on get ECLOSED.  Relaxed: the flag
	 * publishes no data; a call that misses it is refused by the
	 * job queue's own `closing` (jobs.c, J1) or finds its channel closed.
	 */
	atomic_fetch_or_explicit(&bus->refs, LB_REFS_CLOSED,
				 memory_order_relaxed);
	pthread_mutex_unlock(&registry_lock);
	/* The pruner runs jobs: it stops while the writer still takes them
	 * (retention.c, P4); its exec calls get ECLOSED from here on. */
	lb_retention_stop(bus->retention);
	lb_writer_stop(bus->writer);
	/* After the writer: its last publishes still wake readers through
	 * the ring; rows committed elsewhere from here on are not waited
	 * for (readers report CLOSED once they drained the ring). */
	lb_watcher_stop(bus->watcher);
	if (lb_bus_read_only(bus))
		bus_close_ro_channels(bus);
	pthread_mutex_lock(&registry_lock);
	bus->closing = false; /* B2: closed, registered until buried */
	pthread_cond_broadcast(&registry_cond);
	pthread_mutex_unlock(&registry_lock);
	lb_bus_unref(bus); /* the opens' reference (B1) */
	return LITEBUS_OK;
}

/* ------------------------------------------------------------------ */
/* Public: queueing jobs                                               */

int
litebus_exec(litebus *bus, litebus_job_fn fn, void *arg)
{
	struct lb_job j;
	int rc;

	if (bus == NULL || fn == NULL)
		return lb_err_set(LITEBUS_EINVAL, "litebus_exec: NULL %s",
				  bus == NULL ? "bus" : "job function");
	if (lb_bus_forked(bus)) /* F1 */
		return lb_fork_err("litebus_exec");
	if (lb_writer_is_current(bus))
		return lb_err_set(LITEBUS_EDEADLK,
				  "litebus_exec called on the bus's writer "
				  "thread (from a job or a done-callback); "
				  "use litebus_submit");
	/* Built before the reference is taken: test_close_lifetime parks a
	 * call right here, through the link seam, to preempt it there. */
	lb_job_init_exec(&j, fn, arg);
	if (!lb_bus_tryref(bus, "litebus_exec")) /* B1: keeps the bus */
		return LITEBUS_ECLOSED;
	if (lb_bus_read_only(bus)) {
		lb_bus_unref(bus);
		return lb_bus_readonly_err("litebus_exec");
	}
	rc = lb_jobq_push(&bus->jobs, &j);
	if (rc == LITEBUS_OK)
		rc = lb_job_wait(&j);
	lb_bus_unref(bus);
	return rc;
}

int
litebus_submit(litebus *bus, litebus_job_fn fn, void *arg, litebus_done_fn done,
	       void *done_arg)
{
	struct lb_job *j;
	int rc;

	if (bus == NULL || fn == NULL)
		return lb_err_set(LITEBUS_EINVAL, "litebus_submit: NULL %s",
				  bus == NULL ? "bus" : "job function");
	if (lb_bus_forked(bus)) /* F1 */
		return lb_fork_err("litebus_submit");
	j = lb_job_new_submit(fn, arg, done, done_arg);
	if (j == NULL)
		return lb_err_set(LITEBUS_ENOMEM, "allocating a job");
	if (!lb_bus_tryref(bus, "litebus_submit")) { /* B1: keeps the bus */
		lb_job_free(j);
		return LITEBUS_ECLOSED;
	}
	if (lb_bus_read_only(bus)) {
		lb_bus_unref(bus);
		lb_job_free(j);
		return lb_bus_readonly_err("litebus_submit");
	}
	rc = lb_jobq_push(&bus->jobs, j);
	lb_bus_unref(bus);
	if (rc != LITEBUS_OK)
		lb_job_free(j);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Public: the channel head, and pruning (retention.c)                 */

int
litebus_prune(litebus *bus, int channel, int64_t before_event_id)
{
	int rc;

	if (bus == NULL || before_event_id < 1)
		return lb_err_set(LITEBUS_EINVAL, "litebus_prune: %s",
				  bus == NULL ? "NULL bus"
					      : "before_event_id must be >= 1");
	if (lb_bus_forked(bus)) /* F1 */
		return lb_fork_err("litebus_prune");
	if (lb_writer_is_current(bus))
		return lb_err_set(LITEBUS_EDEADLK,
				  "litebus_prune called on the bus's writer "
				  "thread (from a job or a done-callback): it "
				  "waits for pruning jobs of its own");
	if (!lb_bus_tryref(bus, "litebus_prune")) /* B1: keeps the bus */
		return LITEBUS_ECLOSED;
	if (lb_bus_read_only(bus))
		rc = lb_bus_readonly_err("litebus_prune");
	else if (lb_bus_channel(bus, channel) == NULL)
		rc = lb_err_set(LITEBUS_ENOCHANNEL,
				"litebus_prune: no channel %d", channel);
	else
		rc = lb_retention_prune(bus->retention, channel,
					before_event_id);
	lb_bus_unref(bus);
	return rc;
}

int
litebus_channel_head(litebus *bus, int channel, int64_t *head, int64_t *oldest)
{
	struct lb_channel *ch;
	int rc;

	if (head != NULL)
		*head = 0;
	if (oldest != NULL)
		*oldest = 0;
	if (bus == NULL || head == NULL || oldest == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_channel_head: NULL argument");
	if (lb_bus_forked(bus)) /* F1 */
		return lb_fork_err("litebus_channel_head");
	if (!lb_bus_tryref(bus, "litebus_channel_head")) /* B1 */
		return LITEBUS_ECLOSED;
	ch = lb_bus_channel(bus, channel);
	if (ch == NULL)
		rc = lb_err_set(LITEBUS_ENOCHANNEL,
				"litebus_channel_head: no channel %d", channel);
	else /* B5: the path must still name the bus's file */
		rc = lb_bus_check_file(bus, "litebus_channel_head");
	if (rc == LITEBUS_OK)
		rc = lb_retention_read_head(
		    &bus->dbn, ch->name, bus->opts.busy_timeout_ms,
		    lb_writer_is_current(bus), head, oldest);
	lb_bus_unref(bus);
	return rc;
}

int
litebus_channel_id(litebus *bus, const char *name)
{
	int id;

	if (bus == NULL || name == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_channel_id: NULL argument");
	if (lb_bus_forked(bus))
		return lb_fork_err("litebus_channel_id");
	if (!lb_bus_tryref(bus, "litebus_channel_id"))
		return LITEBUS_ECLOSED;
	id = bus_channel_index(bus, name);
	lb_bus_unref(bus);
	if (id < 0)
		return lb_err_set(LITEBUS_ENOCHANNEL,
				  "no channel named '%.64s'", name);
	return id;
}

const char *
litebus_channel_name(litebus *bus, int channel)
{
	struct lb_channel *ch;
	const char *name;

	if (bus == NULL)
		return NULL;
	if (lb_bus_forked(bus)) {
		lb_fork_err("litebus_channel_name");
		return NULL;
	}
	if (!lb_bus_tryref(bus, "litebus_channel_name"))
		return NULL;
	ch = lb_bus_channel(bus, channel);
	name = ch != NULL ? ch->name : NULL;
	/* The name lives as long as the bus (litebus.h); if this unref is
	 * the last, the caller's own close ended the bus meanwhile. */
	lb_bus_unref(bus);
	return name;
}

int
litebus_channel_count(litebus *bus)
{
	int n;

	if (bus == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_channel_count: NULL bus");
	if (lb_bus_forked(bus))
		return lb_fork_err("litebus_channel_count");
	if (!lb_bus_tryref(bus, "litebus_channel_count"))
		return LITEBUS_ECLOSED;
	n = bus->nchannels;
	lb_bus_unref(bus);
	return n;
}

int
litebus_stats_get(litebus *bus, litebus_stats *st)
{
	const struct lb_stats *s;

	if (bus == NULL || st == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_stats_get: NULL argument");
	if (lb_bus_forked(bus))
		return lb_fork_err("litebus_stats_get");
	if (!lb_bus_tryref(bus, "litebus_stats_get"))
		return LITEBUS_ECLOSED;
	s = &bus->stats;
	/* Relaxed: counters, no ordering (stats.h). */
	st->batches = atomic_load_explicit(&s->batches, memory_order_relaxed);
	st->commits = atomic_load_explicit(&s->commits, memory_order_relaxed);
	st->jobs = atomic_load_explicit(&s->jobs, memory_order_relaxed);
	st->jobs_failed =
	    atomic_load_explicit(&s->jobs_failed, memory_order_relaxed);
	st->events = atomic_load_explicit(&s->events, memory_order_relaxed);
	st->busy_retries =
	    atomic_load_explicit(&s->busy_retries, memory_order_relaxed);
	st->sub_lags = atomic_load_explicit(&s->sub_lags, memory_order_relaxed);
	st->sub_skipped =
	    atomic_load_explicit(&s->sub_skipped, memory_order_relaxed);
	st->reader_lags =
	    atomic_load_explicit(&s->reader_lags, memory_order_relaxed);
	st->checkpoints =
	    atomic_load_explicit(&s->checkpoints, memory_order_relaxed);
	st->queued = atomic_load_explicit(&s->queued, memory_order_relaxed);
	lb_bus_unref(bus);
	return LITEBUS_OK;
}
