/*
 * bus.c - litebus_open/close; owns and wires the rest.
 *
 * A bus is one database file, its channels (rings) and its writer thread.
 * Opening a file that this process already has open returns the same bus
 * (so a wake-up is never split between two handles): open buses are kept
 * in a registry keyed by the canonical path.
 *
 * Threads: any thread may open and close; the registry is under
 * `registry_lock`.  litebus_close() must not run on the bus's own writer.
 *
 * Invariants
 *   B1  `refs` counts one reference for all opens together (dropped by the
 *       close that ends the last open, after the writer has been joined),
 *       one per live subscriber and reader, and one per exec, submit,
 *       subscribe or reader_open in progress (taken as the call's first
 *       act, so a call that started before the last close returned finds
 *       the bus alive; one that starts after it is the caller's bug, as
 *       the overlap table in litebus.h says).  The bus's memory is freed
 *       by whoever drops the last reference, so a handle that outlives
 *       litebus_close() still points to valid channels.
 *   B2  A file bus is in the registry from its open until its last close
 *       has joined the writer; while that close runs, `closing` is set and
 *       an open of the same file waits for it (registry_cond) rather than
 *       start a second writer on the file.  open_count and closing change
 *       only under registry_lock.
 */
/* realpath() is an X/Open interface. */
#define _XOPEN_SOURCE 700

#include "bus.h"

#include "errors.h"
#include "memvfs.h"
#include "writer.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t registry_cond = PTHREAD_COND_INITIALIZER;
static litebus *registry; /* under registry_lock */
static _Atomic uint32_t memory_db_counter;

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
}

void
lb_bus_ref(litebus *bus)
{
	/* Relaxed: a reference is taken while another is held (a handle's,
	 * or the opens' during a call that started before the last close
	 * returned: B1), so the count cannot reach zero concurrently; the
	 * acq_rel decrement in lb_bus_unref orders the uses. */
	atomic_fetch_add_explicit(&bus->refs, 1, memory_order_relaxed);
}

static void
bus_free(litebus *bus)
{
	lb_writer_free(bus->writer);
	sqlite3_close_v2(bus->mem_keeper);
	for (int i = 0; i < bus->nchannels; i++) {
		if (bus->channels[i] != NULL) {
			lb_channel_fini(bus->channels[i]);
			free(bus->channels[i]);
		}
	}
	free(bus->dbn.name);
	free(bus->canon_path);
	free(bus);
}

void
lb_bus_unref(litebus *bus)
{
	/* acq_rel: every use of the bus by the thread dropping a reference
	 * happens before the free by whoever drops the last one. */
	if (atomic_fetch_sub_explicit(&bus->refs, 1, memory_order_acq_rel) ==
	    1)
		bus_free(bus);
}

struct lb_channel *
lb_bus_channel(litebus *bus, int channel)
{
	if (channel < 0 || channel >= bus->nchannels)
		return NULL;
	return bus->channels[channel];
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
		return lb_err_set(errno == ENOMEM ? LITEBUS_ENOMEM
						  : LITEBUS_ECANTOPEN,
				  "litebus_open: %s: %s", path,
				  strerror(errno));
	copy = strdup(path);
	if (copy == NULL)
		return lb_err_set(LITEBUS_ENOMEM, "litebus_open: out of memory");
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
		return lb_err_set(e == ENOMEM ? LITEBUS_ENOMEM
					      : LITEBUS_ECANTOPEN,
				  "litebus_open: directory of %s: %s", path,
				  strerror(e));
	}
	len = strlen(real) + strlen(base) + 2;
	*out = malloc(len);
	if (*out != NULL)
		snprintf(*out, len, "%s%s%s", real,
			 strcmp(real, "/") == 0 ? "" : "/", base);
	free(real);
	free(copy);
	return *out != NULL ? LITEBUS_OK
			    : lb_err_set(LITEBUS_ENOMEM,
					 "litebus_open: out of memory");
}

static int
bus_check_options(const litebus_options *o, int *nextra)
{
	uint32_t cap = o->ring_capacity;
	int n = 0;

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
	for (const char *const *c = o->channels; c != NULL && *c != NULL;
	     c++, n++) {
		if (!lb_channel_name_ok(*c))
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
			if (strcasecmp(*c, lb_channel_builtin_name(b)) == 0)
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
	}
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
		return lb_err_set(LITEBUS_ENOMEM, "litebus_open: out of memory");
	return LITEBUS_OK;
}

static int
bus_make_channels(litebus *bus, const litebus_options *o, int nextra)
{
	bus->nchannels = LITEBUS_BUILTIN_CHANNELS + nextra;
	for (int i = 0; i < bus->nchannels; i++) {
		const char *name = i < LITEBUS_BUILTIN_CHANNELS
				       ? lb_channel_builtin_name(i)
				       : o->channels[i - LITEBUS_BUILTIN_CHANNELS];
		struct lb_channel *ch =
		    aligned_alloc(LB_CACHELINE, (sizeof *ch + LB_CACHELINE - 1) &
						    ~(size_t)(LB_CACHELINE - 1));

		bus->channels[i] = ch;
		if (ch == NULL ||
		    lb_channel_init(ch, i, name, o->ring_capacity, 0) != 0) {
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

/* An already open bus may be shared if it has every channel asked for. */
static int
bus_share(litebus *bus, const litebus_options *o)
{
	for (const char *const *c = o->channels; c != NULL && *c != NULL;
	     c++)
		if (litebus_channel_id(bus, *c) < 0)
			return lb_err_set(LITEBUS_EINVAL,
					  "litebus_open: %s is already open "
					  "in this process without channel "
					  "'%s'",
					  bus->canon_path, *c);
	bus->open_count++;
	return LITEBUS_OK;
}

static int
bus_create(const litebus_options *o, int nextra, char *canon, litebus **out)
{
	/* struct litebus has cache-line-aligned members: calloc's 16-byte
	 * alignment would not do. */
	size_t len = (sizeof(struct litebus) + LB_CACHELINE - 1) &
		     ~(size_t)(LB_CACHELINE - 1);
	litebus *bus = aligned_alloc(LB_CACHELINE, len);
	int rc;

	if (bus != NULL)
		memset(bus, 0, len);
	if (bus == NULL) {
		free(canon);
		return lb_err_set(LITEBUS_ENOMEM, "litebus_open: out of memory");
	}
	bus->opts = *o;
	bus->opts.path = NULL;
	bus->opts.channels = NULL;
	bus->canon_path = canon;
	atomic_init(&bus->refs, 1);
	bus->open_count = 1;
	rc = bus_make_dbname(bus, o->path);
	if (rc == LITEBUS_OK)
		rc = bus_make_channels(bus, o, nextra);
	if (rc != LITEBUS_OK)
		goto fail;
	rc = lb_writer_start(bus, &bus->writer);
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
	if (rc != LITEBUS_OK) {
		if (bus->writer != NULL)
			lb_writer_stop(bus->writer);
		goto fail;
	}
	*out = bus;
	return LITEBUS_OK;
fail:
	bus_free(bus);
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
	/* Held across the whole open, so two threads opening one file end
	 * up sharing one bus (B2). */
	pthread_mutex_lock(&registry_lock);
again:
	for (litebus *b = registry; b != NULL; b = b->next_open) {
		if (strcmp(b->canon_path, canon) != 0)
			continue;
		if (b->closing) {
			/* B2: let its writer finish before opening anew. */
			pthread_cond_wait(&registry_cond, &registry_lock);
			goto again;
		}
		rc = bus_share(b, o);
		pthread_mutex_unlock(&registry_lock);
		free(canon);
		if (rc == LITEBUS_OK)
			*out = b;
		return rc;
	}
	rc = bus_create(o, nextra, canon, out);
	if (rc == LITEBUS_OK) {
		/* A path that did not exist may be a dangling symlink through
		 * which SQLite has just created the file.  Key the bus by the
		 * file's real path, now that there is one, as every later open
		 * of the existing file will (B2). */
		char *real = realpath((*out)->canon_path, NULL);

		if (real != NULL) {
			free((*out)->canon_path);
			(*out)->canon_path = real;
		}
		(*out)->next_open = registry;
		registry = *out;
	}
	pthread_mutex_unlock(&registry_lock);
	return rc;
}

int
litebus_close(litebus *bus)
{
	if (bus == NULL)
		return LITEBUS_OK;
	if (lb_writer_is_current(bus))
		return lb_err_set(LITEBUS_EDEADLK,
				  "litebus_close called on the bus's own "
				  "writer thread (from a job or a "
				  "done-callback)");
	if (bus->canon_path == NULL) { /* in-memory: never shared */
		bus->open_count--;
		lb_writer_stop(bus->writer);
		lb_bus_unref(bus);
		return LITEBUS_OK;
	}
	pthread_mutex_lock(&registry_lock);
	if (--bus->open_count > 0) {
		pthread_mutex_unlock(&registry_lock);
		return LITEBUS_OK;
	}
	bus->closing = true; /* B2 */
	pthread_mutex_unlock(&registry_lock);
	lb_writer_stop(bus->writer);
	pthread_mutex_lock(&registry_lock);
	for (litebus **p = &registry; *p != NULL; p = &(*p)->next_open) {
		if (*p == bus) {
			*p = bus->next_open;
			break;
		}
	}
	pthread_cond_broadcast(&registry_cond);
	pthread_mutex_unlock(&registry_lock);
	lb_bus_unref(bus);
	return LITEBUS_OK;
}

int
litebus_channel_id(litebus *bus, const char *name)
{
	if (bus == NULL || name == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_channel_id: NULL argument");
	for (int i = 0; i < bus->nchannels; i++)
		if (strcmp(bus->channels[i]->name, name) == 0)
			return i;
	return lb_err_set(LITEBUS_ENOCHANNEL, "no channel named '%.64s'",
			  name);
}

const char *
litebus_channel_name(litebus *bus, int channel)
{
	struct lb_channel *ch;

	if (bus == NULL)
		return NULL;
	ch = lb_bus_channel(bus, channel);
	return ch != NULL ? ch->name : NULL;
}

int
litebus_channel_count(litebus *bus)
{
	if (bus == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_channel_count: NULL bus");
	return bus->nchannels;
}

int
litebus_stats_get(litebus *bus, litebus_stats *st)
{
	const struct lb_stats *s;

	if (bus == NULL || st == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_stats_get: NULL argument");
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
	return LITEBUS_OK;
}
