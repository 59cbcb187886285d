/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - durable named consumers: a reader whose position lives in
 * the database, under (channel, name).
 *
 * A consumer is a litebus_reader opened right after the stored position,
 * plus a small reference-counted `shared` state for acknowledgements.
 * Every write (create, hold, ack, release, delete) runs as a job on the
 * bus's writer, through the public litebus_exec/litebus_submit, so it is
 * group-committed with the application's work; inside, litebus's own
 * statements (outbox.h, LB_SQL_CONSUMER_*) move the row of table
 * litebus_consumer, keyed by the channel's state key
 * (lb_outbox_state_key) and the consumer's name.
 *
 * Why acks are coalesced: a consumer that acks every row must not cost a
 * transaction per ack.  ack() only raises `want` and, if no ack job of
 * this consumer is queued, queues one; that job reads `want` when it
 * runs, so any number of acks made meanwhile ride on it (and on the
 * writer's group commit with every other consumer's and job's writes).
 *
 * Why a holder in the row: "one live handle per (channel, name) per
 * file" must hold across processes, and a crashed process must not keep
 * the name forever.  The row records the holder's pid and its start time
 * (/proc/<pid>/stat, field 22), so a holder that died, or whose pid was
 * reused, is recognized and taken over.  Inside one process the registry
 * below tells whether a handle of ours is open (the row cannot: a handle
 * of an earlier, closed bus may have left our own pid behind).
 *
 * Threads: open, delete and list on any thread but the bus's writer;
 * next, fd, expired, cursor, ack, flush, stats and close on the
 * consumer's thread; ack_tx on the writer, inside a job; the jobs and
 * their done-callbacks on the writer.  The registry is under
 * registry_lock; `shared` is shared between the consumer's thread and
 * the writer (K4).
 *
 * Invariants
 *   K1  While a handle is open, the row's holder is this process (pid
 *       and start time) and the registry holds the handle's key (file
 *       identity, channel key, name); the registry entry is made before
 *       the row is claimed and dropped only after the close's release
 *       committed (or failed).  So two handles in one process never
 *       coexist, and an open never takes over a live holder.
 *   K2  The reader starts exactly at the stored position: the row is
 *       read (or created) first and the reader opened after it, except
 *       for a new name with FROM_NOW, where the reader is opened first
 *       and the row is created with the reader's starting cursor.  So
 *       every row after the durable position is delivered after a
 *       reopen, and none at or before it.
 *   K3  The position only moves forward (LB_SQL_CONSUMER_ACK) and only
 *       to ids the handle has passed (ack, ack_tx check the reader's
 *       cursor), so it never passes a row that was not delivered.
 *   K4  At most one ack job per consumer is queued and not yet started:
 *       `ack_queued` is set by ack() when it queues one and cleared by
 *       the job as it starts, before it reads `want`.  An ack that finds
 *       it set relies on that job to read its `want` (see consumer_ack
 *       for the orderings).
 *   K5  `shared` lives while the handle or any queued job of it does:
 *       one reference each, the last one frees it.
 */
#include "bus.h"
#include "errors.h"
#include "outbox.h"
#include "role.h"
#include "wait.h"
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define CONS_KEY_MAX LITEBUS_CHANNEL_NAME_MAX
#define CONS_NAME_MAX LITEBUS_CONSUMER_NAME_MAX

/* Backoff for a full queue (EAGAIN) at close, and for a locked database
 * on the short reads of stats and list. */
#define CONS_BACKOFF_MIN_NS 20000u   /* 20 us */
#define CONS_BACKOFF_MAX_NS 2000000u /* 2 ms */

/* Who holds a consumer: a process, named by its pid and start time. */
struct cons_holder {
	int64_t pid;
	int64_t start;
};

/* What identifies a consumer in this process (K1): the file by its
 * device and inode (an in-memory bus by its handle), the channel key and
 * the name. */
struct cons_key {
	dev_t dev;
	ino_t ino;
	const litebus *mem_bus; /* NULL for file buses */
	char chan[CONS_KEY_MAX + 1];
	char name[CONS_NAME_MAX + 1];
};

/* Shared by the handle and its queued jobs (K4, K5). */
struct cons_shared {
	/* K5.  Any thread. */
	_Atomic uint32_t refs;
	/* The largest id ack() accepted.  Written by the consumer's thread
	 * only, read by ack jobs on the writer (K4). */
	_Atomic int64_t want;
	/* K4: an ack job is queued and has not started. */
	_Atomic bool ack_queued;
	/* Immutable after open. */
	litebus *bus; /* an identity for lb_writer_tx_outbox */
	struct cons_key key;
	struct cons_holder me;
};

struct litebus_consumer {
	/* Immutable after open. */
	litebus *bus;
	int channel;
	struct cons_shared *sh;
	/* The consumer's thread only. */
	litebus_reader *reader;
	/* The registry list, under registry_lock (K1). */
	struct litebus_consumer *next_open;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static litebus_consumer *registry; /* K1, under registry_lock */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------------ */
/* Processes                                                           */

/* Read /proc/<pid>/stat: the state letter (field 3) and the start time
 * (field 22, clock ticks after boot).  False if it cannot be read. */
static bool
cons_proc_stat(int64_t pid, char *state, int64_t *start)
{
	char path[64], buf[1024];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof buf - 1);
	(void)close(fd); /* read-only: nothing to lose */
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* The command name (field 2) is in parentheses and may hold spaces
	 * and parentheses itself: the fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ')
		return false;
	p += 2;
	*state = *p;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (p == NULL)
			return false;
		p++;
	}
	errno = 0;
	{
		char *end;
		long long v = strtoll(p, &end, 10);

		if (errno != 0 || end == p || v < 0)
			return false;
		*start = v;
	}
	return true;
}

/* This process, as a holder.  (Not cached: a forked child is another
 * process.) */
static struct cons_holder
cons_me(void)
{
	struct cons_holder me = {(int64_t)getpid(), 0};
	char state;

	if (!cons_proc_stat(me.pid, &state, &me.start))
		me.start = 0; /* no /proc: the pid alone */
	return me;
}

/* Does the process that h names still run?  Conservative: a process that
 * exists but whose start time cannot be read (another user's, with
 * /proc's hidepid) counts as running.  Zombies do not run. */
static bool
cons_holder_runs(struct cons_holder h)
{
	int64_t start;
	char state;

	if (h.pid <= 0 || h.pid != (int64_t)(pid_t)h.pid)
		return false;
	if (kill((pid_t)h.pid, 0) != 0 && errno != EPERM)
		return false; /* ESRCH */
	if (!cons_proc_stat(h.pid, &state, &start))
		return true;
	if (state == 'Z' || state == 'X')
		return false;
	return start == h.start;
}

/* ------------------------------------------------------------------ */
/* The registry (K1)                                                   */

static void
cons_atfork_prepare(void)
{
	pthread_mutex_lock(&registry_lock);
}

static void
cons_atfork_release(void)
{
	pthread_mutex_unlock(&registry_lock);
}

static void
cons_atfork_install(void)
{
	/* The lock is never held across a call that could fork, so the
	 * handlers only keep a child from inheriting it locked by a thread
	 * that does not exist there.  A failure leaves that (unlikely) risk
	 * and nothing else: ignored. */
	(void)pthread_atfork(cons_atfork_prepare, cons_atfork_release,
			     cons_atfork_release);
}

static bool
cons_key_equal(const struct cons_key *a, const struct cons_key *b)
{
	return a->dev == b->dev && a->ino == b->ino &&
	       a->mem_bus == b->mem_bus && strcmp(a->chan, b->chan) == 0 &&
	       strcmp(a->name, b->name) == 0;
}

/* Under registry_lock. */
static bool
cons_registered_locked(const struct cons_key *k)
{
	for (const litebus_consumer *c = registry; c != NULL; c = c->next_open)
		if (cons_key_equal(&c->sh->key, k))
			return true;
	return false;
}

static bool
cons_registered(const struct cons_key *k)
{
	bool found;

	pthread_mutex_lock(&registry_lock);
	found = cons_registered_locked(k);
	pthread_mutex_unlock(&registry_lock);
	return found;
}

/* Add c unless its key is there already (false). */
static bool
cons_register(litebus_consumer *c)
{
	bool ok;

	pthread_mutex_lock(&registry_lock);
	ok = !cons_registered_locked(&c->sh->key);
	if (ok) {
		c->next_open = registry;
		registry = c;
	}
	pthread_mutex_unlock(&registry_lock);
	return ok;
}

static void
cons_unregister(litebus_consumer *c)
{
	pthread_mutex_lock(&registry_lock);
	for (litebus_consumer **p = &registry; *p != NULL;
	     p = &(*p)->next_open) {
		if (*p == c) {
			*p = c->next_open;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

/* Is the consumer whose row names holder h open somewhere now?  Our own
 * pid: only if a handle in this process has it (the row may be a left
 * over of a handle whose bus closed first). */
static bool
cons_is_held(const struct cons_key *k, struct cons_holder h,
	     struct cons_holder me)
{
	if (h.pid <= 0)
		return false;
	if (h.pid == me.pid)
		return h.start == me.start && cons_registered(k);
	return cons_holder_runs(h);
}

static void
cons_key_make(struct cons_key *k, litebus *bus, const char *chan_name,
	      const char *name)
{
	memset(k, 0, sizeof *k);
	k->dev = bus->dev;
	k->ino = bus->ino;
	k->mem_bus = bus->dbn.is_memory ? bus : NULL;
	lb_outbox_state_key(k->chan, chan_name);
	snprintf(k->name, sizeof k->name, "%s", name);
}

/* ------------------------------------------------------------------ */
/* Arguments                                                           */

/* 1..CONS_NAME_MAX bytes of well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static bool
cons_name_ok(const char *name)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t len = strnlen(name, CONS_NAME_MAX + 1);

	if (len == 0 || len > CONS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len;) {
		unsigned char b = s[i];
		size_t n;
		uint32_t cp, min;

		if (b < 0x80) {
			i++;
			continue;
		}
		if ((b & 0xE0) == 0xC0) {
			n = 1, cp = b & 0x1Fu, min = 0x80;
		} else if ((b & 0xF0) == 0xE0) {
			n = 2, cp = b & 0x0Fu, min = 0x800;
		} else if ((b & 0xF8) == 0xF0) {
			n = 3, cp = b & 0x07u, min = 0x10000;
		} else {
			return false;
		}
		if (i + n >= len)
			return false; /* truncated */
		for (size_t j = 1; j <= n; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3Fu);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}

/* The status lb_writer_tx_outbox() just refused `tx` with (its text is
 * set already): it says why only in the text, so tell the cases apart by
 * what can be seen without side effects. */
static int
cons_tx_refusal(litebus_tx *tx, const litebus *bus)
{
	if (tx == NULL)
		return LITEBUS_EINVAL;
	if (litebus_tx_db(tx) == NULL) /* not a live job on this thread */
		return lb_bus_forked(bus) ? LITEBUS_EFORKED : LITEBUS_EMISUSE;
	if (!lb_writer_is_current(bus))
		return LITEBUS_EMISUSE; /* a job of another bus */
	return LITEBUS_ESQLITE;		/* the job's transaction was lost */
}

/* ------------------------------------------------------------------ */
/* Statements, on the writer inside a job                              */

/* Bind the consumer's channel key and name to ?1 and ?2. */
static int
cons_bind_key(struct lb_outbox *ob, sqlite3_stmt *st, const struct cons_key *k)
{
	int src = sqlite3_bind_text(st, 1, k->chan, -1, SQLITE_STATIC);

	if (src == SQLITE_OK)
		src = sqlite3_bind_text(st, 2, k->name, -1, SQLITE_STATIC);
	if (src != SQLITE_OK)
		return lb_err_sqlite(ob->db, src, "binding a consumer's key");
	return LITEBUS_OK;
}

/* Step a write statement to its end and reset it.  Litebus status. */
static int
cons_step_done(struct lb_outbox *ob, sqlite3_stmt *st, const char *what)
{
	int src = lb_outbox_own_step(ob, st);
	int rc = LITEBUS_OK;

	if (src != SQLITE_DONE)
		rc = lb_err_sqlite(ob->db, src, what);
	(void)sqlite3_reset(st); /* repeats the step's error, taken above */
	(void)sqlite3_clear_bindings(st); /* always SQLITE_OK */
	return rc;
}

/* The row, if any: *found, its position and holder. */
static int
cons_sql_get(struct lb_outbox *ob, const struct cons_key *k, bool *found,
	     int64_t *position, struct cons_holder *holder)
{
	sqlite3_stmt *st;
	int rc, src;

	LB_ASSERT_ON_WRITER_THREAD();
	rc = lb_outbox_own(ob, LB_SQL_CONSUMER_GET, &st);
	if (rc == LITEBUS_OK)
		rc = cons_bind_key(ob, st, k);
	if (rc != LITEBUS_OK)
		return rc;
	*found = false;
	src = lb_outbox_own_step(ob, st);
	if (src == SQLITE_ROW) {
		*found = true;
		*position = sqlite3_column_int64(st, 0);
		holder->pid = sqlite3_column_int64(st, 1);
		holder->start = sqlite3_column_int64(st, 2);
	} else if (src != SQLITE_DONE) {
		rc = lb_err_sqlite(ob->db, src, "reading a consumer's row");
	}
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	return rc;
}

/* Run the keyed statement `which` (?1 channel key, ?2 name) with the
 * integers vals[0..n) bound to ?3, ?4, ...; `what` names it in errors. */
static int
cons_sql_keyed(struct lb_outbox *ob, enum lb_own_sql which,
	       const struct cons_key *k, const int64_t *vals, int n,
	       const char *what)
{
	sqlite3_stmt *st;
	int rc, src = SQLITE_OK;

	LB_ASSERT_ON_WRITER_THREAD();
	rc = lb_outbox_own(ob, which, &st);
	if (rc == LITEBUS_OK)
		rc = cons_bind_key(ob, st, k);
	if (rc != LITEBUS_OK)
		return rc;
	for (int i = 0; i < n && src == SQLITE_OK; i++)
		src = sqlite3_bind_int64(st, 3 + i, vals[i]);
	if (src != SQLITE_OK) {
		(void)sqlite3_clear_bindings(st);
		return lb_err_sqlite(ob->db, src, what);
	}
	return cons_step_done(ob, st, what);
}

/* Move the position forward to `position` (K3). */
static int
cons_sql_ack(struct lb_outbox *ob, const struct cons_key *k, int64_t position,
	     int64_t now_ms)
{
	const int64_t v[] = {position, now_ms};

	return cons_sql_keyed(ob, LB_SQL_CONSUMER_ACK, k, v, 2,
			      "recording a consumer's position");
}

/* HOLD or RELEASE with the holder h. */
static int
cons_sql_holder(struct lb_outbox *ob, enum lb_own_sql which,
		const struct cons_key *k, struct cons_holder h)
{
	const int64_t v[] = {h.pid, h.start};

	return cons_sql_keyed(ob, which, k, v, 2,
			      which == LB_SQL_CONSUMER_HOLD
				  ? "claiming a consumer"
				  : "releasing a consumer");
}

static int
cons_sql_insert(struct lb_outbox *ob, const struct cons_key *k,
		int64_t position, int64_t now_ms, struct cons_holder h)
{
	const int64_t v[] = {position, now_ms, h.pid, h.start};

	return cons_sql_keyed(ob, LB_SQL_CONSUMER_INSERT, k, v, 4,
			      "creating a consumer");
}

static int
cons_sql_delete(struct lb_outbox *ob, const struct cons_key *k)
{
	return cons_sql_keyed(ob, LB_SQL_CONSUMER_DELETE, k, NULL, 0,
			      "deleting a consumer");
}

/* ------------------------------------------------------------------ */
/* The shared state (K4, K5)                                           */

static void
cons_shared_ref(struct cons_shared *sh)
{
	/* Relaxed: the caller holds a reference, so the count cannot reach
	 * zero meanwhile; the acq_rel step in unref orders the uses. */
	atomic_fetch_add_explicit(&sh->refs, 1, memory_order_relaxed);
}

static void
cons_shared_unref(struct cons_shared *sh)
{
	/* acq_rel: every use by a thread dropping its reference (release)
	 * happens before the free by whoever drops the last (acquire). */
	if (atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) == 1)
		free(sh);
}

/* ------------------------------------------------------------------ */
/* Jobs                                                                */

struct cons_open_job {
	struct cons_shared *sh;
	int64_t new_position; /* for a new name */
	int64_t position;     /* out: the stored position */
};

/* Read or create the row and claim it (K1, K2).  Our own registry entry
 * is made already, so a holder that is this very process is a leftover
 * (a handle whose bus closed before it) and is taken over. */
static int
cons_open_job(litebus_tx *tx, void *arg)
{
	struct cons_open_job *j = arg;
	const struct cons_shared *sh = j->sh;
	struct cons_holder holder = {0, 0};
	struct lb_outbox *ob;
	bool found;
	int rc;

	ob = lb_writer_tx_outbox(tx, sh->bus, "litebus_consumer_open");
	if (ob == NULL)
		return cons_tx_refusal(tx, sh->bus);
	rc = cons_sql_get(ob, &sh->key, &found, &j->position, &holder);
	if (rc != LITEBUS_OK)
		return rc;
	if (!found) {
		j->position = j->new_position;
		return cons_sql_insert(ob, &sh->key, j->position,
				       lb_writer_tx_now_ms(tx), sh->me);
	}
	if (holder.pid > 0 && holder.pid != sh->me.pid &&
	    cons_holder_runs(holder))
		return lb_err_set(LITEBUS_EINUSE,
				  "litebus_consumer_open: consumer '%s' of "
				  "channel '%s' is open in process %lld",
				  sh->key.name, sh->key.chan,
				  (long long)holder.pid);
	return cons_sql_holder(ob, LB_SQL_CONSUMER_HOLD, &sh->key, sh->me);
}

/* An ack job (K4): queued by consumer_ack, at most one at a time. */
static int
cons_ack_job(litebus_tx *tx, void *arg)
{
	struct cons_shared *sh = arg;
	struct lb_outbox *ob;
	int64_t want;

	ob = lb_writer_tx_outbox(tx, sh->bus, "litebus_consumer_ack");
	if (ob == NULL)
		return cons_tx_refusal(tx, sh->bus);
	/* K4.  Acquire: pairs with the release of the exchange in
	 * litebus_consumer_ack() that found the flag set; every `want`
	 * stored before that exchange is visible to the load below.
	 * Release is not needed here (acq_rel keeps it symmetric and
	 * costs nothing more on x86 or ARM's LDAXR/STLXR). */
	atomic_exchange_explicit(&sh->ack_queued, false, memory_order_acq_rel);
	/* Relaxed: ordered by the exchange above. */
	want = atomic_load_explicit(&sh->want, memory_order_relaxed);
	return cons_sql_ack(ob, &sh->key, want, lb_writer_tx_now_ms(tx));
}

static void
cons_job_done(int status, void *arg)
{
	(void)status; /* a failed ack is written again by the next ack or
			 flush, which reports its own status */
	cons_shared_unref(arg);
}

struct cons_flush_job {
	struct cons_shared *sh;
	int64_t want;
	bool release; /* and release the holder (close) */
};

/* flush and close: write `want` (and release the holder). */
static int
cons_flush_job(litebus_tx *tx, void *arg)
{
	struct cons_flush_job *j = arg;
	struct lb_outbox *ob;
	int rc;

	ob = lb_writer_tx_outbox(tx, j->sh->bus,
				 j->release ? "litebus_consumer_close"
					    : "litebus_consumer_flush");
	if (ob == NULL)
		return cons_tx_refusal(tx, j->sh->bus);
	rc = cons_sql_ack(ob, &j->sh->key, j->want, lb_writer_tx_now_ms(tx));
	if (rc == LITEBUS_OK && j->release)
		rc = cons_sql_holder(ob, LB_SQL_CONSUMER_RELEASE, &j->sh->key,
				     j->sh->me);
	return rc;
}

/* The heap copy of a flush job that close queues on the writer thread. */
static void
cons_flush_done(int status, void *arg)
{
	struct cons_flush_job *j = arg;

	(void)status; /* nobody to tell: close returns void */
	cons_shared_unref(j->sh);
	free(j);
}

struct cons_delete_job {
	struct cons_key key;
	struct cons_holder me;
};

static int
cons_delete_job(litebus_tx *tx, void *arg)
{
	struct cons_delete_job *j = arg;
	struct cons_holder holder = {0, 0};
	struct lb_outbox *ob;
	int64_t position;
	bool found;
	int rc;

	ob = lb_writer_tx_outbox(tx, NULL, "litebus_consumer_delete");
	if (ob == NULL)
		return LITEBUS_ESQLITE; /* our own job: only a lost one */
	rc = cons_sql_get(ob, &j->key, &found, &position, &holder);
	if (rc != LITEBUS_OK)
		return rc;
	if (!found)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_delete: no consumer '%s' "
				  "on channel '%s'",
				  j->key.name, j->key.chan);
	if (cons_is_held(&j->key, holder, j->me))
		return lb_err_set(LITEBUS_EINUSE,
				  "litebus_consumer_delete: consumer '%s' of "
				  "channel '%s' is open in process %lld",
				  j->key.name, j->key.chan,
				  (long long)holder.pid);
	return cons_sql_delete(ob, &j->key);
}

/* litebus_exec, retrying a full queue (EAGAIN) with backoff for up to
 * the bus's busy timeout: close and open's undo must not give up on a
 * moment's congestion. */
static int
cons_exec(litebus *bus, litebus_job_fn fn, void *arg)
{
	uint64_t sleep_ns = CONS_BACKOFF_MIN_NS, deadline = 0;
	int rc;

	for (;;) {
		rc = litebus_exec(bus, fn, arg);
		if (rc != LITEBUS_EAGAIN)
			return rc;
		if (deadline == 0)
			deadline =
			    lb_mono_ns() +
			    (uint64_t)bus->opts.busy_timeout_ms * 1000000u;
		if (lb_mono_ns() >= deadline)
			return rc;
		lb_sleep_ns(sleep_ns);
		if (sleep_ns < CONS_BACKOFF_MAX_NS)
			sleep_ns *= 2;
	}
}

/* ------------------------------------------------------------------ */
/* Public: open, next, close                                           */

static int consumer_open(litebus *bus, int channel, const char *name,
			 int64_t start, const litebus_filter *f,
			 litebus_consumer **out);

int
litebus_consumer_open(litebus *bus, int channel, const char *name,
		      int64_t start, const litebus_filter *f,
		      litebus_consumer **out)
{
	int rc;

	if (out != NULL)
		*out = NULL;
	if (bus == NULL || name == NULL || out == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_open: NULL argument");
	if (!cons_name_ok(name))
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_open: a name is 1..%d "
				  "bytes of UTF-8",
				  CONS_NAME_MAX);
	if (start < LITEBUS_FROM_NOW)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_open: start must be >= -1");
	if (lb_bus_forked(bus)) /* F1, in bus.c */
		return lb_fork_err("litebus_consumer_open");
	if (lb_writer_is_current(bus))
		return lb_err_set(LITEBUS_EDEADLK,
				  "litebus_consumer_open called on the bus's "
				  "writer thread (creating the position is a "
				  "write)");
	if (!lb_bus_tryref(bus, "litebus_consumer_open")) /* B1 */
		return LITEBUS_ECLOSED;
	rc = lb_bus_read_only(bus) /* positions are writes */
		 ? lb_bus_readonly_err("litebus_consumer_open")
		 : consumer_open(bus, channel, name, start, f, out);
	lb_bus_unref(bus);
	return rc;
}

static int
consumer_open(litebus *bus, int channel, const char *name, int64_t start,
	      const litebus_filter *f, litebus_consumer **out)
{
	struct lb_channel *ch = lb_bus_channel(bus, channel);
	struct cons_open_job job;
	litebus_consumer *c;
	struct cons_shared *sh;
	int rc;

	if (ch == NULL)
		return lb_err_set(LITEBUS_ENOCHANNEL,
				  "litebus_consumer_open: no channel %d",
				  channel);
	(void)pthread_once(&atfork_once, cons_atfork_install);
	c = calloc(1, sizeof *c);
	sh = calloc(1, sizeof *sh);
	if (c == NULL || sh == NULL) {
		free(c);
		free(sh);
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_consumer_open: out of memory");
	}
	atomic_init(&sh->refs, 1);
	atomic_init(&sh->ack_queued, false);
	sh->bus = bus;
	cons_key_make(&sh->key, bus, ch->name, name);
	sh->me = cons_me();
	c->bus = bus;
	c->channel = channel;
	c->sh = sh;
	if (!cons_register(c)) {
		free(c);
		free(sh);
		return lb_err_set(LITEBUS_EINUSE,
				  "litebus_consumer_open: consumer '%s' of "
				  "channel '%s' is already open in this "
				  "process",
				  name, ch->name);
	}

	/* K2: a new name with FROM_NOW starts where a reader opened now
	 * starts; every other start is known before the row is read. */
	job = (struct cons_open_job){sh, start, 0};
	if (start == LITEBUS_FROM_NOW) {
		rc = litebus_reader_open(bus, channel, LITEBUS_FROM_NOW, f,
					 &c->reader);
		if (rc != LITEBUS_OK)
			goto fail;
		job.new_position = litebus_reader_cursor(c->reader);
	}
	rc = litebus_exec(bus, cons_open_job, &job);
	if (rc != LITEBUS_OK)
		goto fail;
	if (c->reader != NULL &&
	    litebus_reader_cursor(c->reader) != job.position) {
		litebus_reader_close(c->reader); /* the name existed */
		c->reader = NULL;
	}
	if (c->reader == NULL) {
		rc = litebus_reader_open(bus, channel, job.position, f,
					 &c->reader);
		if (rc != LITEBUS_OK) {
			/* Give the name back (best effort: on failure the
			 * holder is this process, which a later open here
			 * takes over). */
			char msg[LB_ERRMSG_MAX];
			int sqlite_code = lb_err_code();
			struct cons_flush_job undo = {sh, 0, true};

			snprintf(msg, sizeof msg, "%s", lb_err_msg());
			(void)cons_exec(bus, cons_flush_job, &undo);
			lb_err_restore(rc, sqlite_code, msg);
			goto fail;
		}
	}
	/* No ack below the stored position is worth a job. */
	atomic_store_explicit(&sh->want, job.position, memory_order_relaxed);
	*out = c;
	return LITEBUS_OK;

fail:
	litebus_reader_close(c->reader);
	cons_unregister(c);
	cons_shared_unref(sh);
	free(c);
	return rc;
}

int
litebus_consumer_next(litebus_consumer *c, litebus_row *row, int timeout_ms)
{
	if (c == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_next: NULL consumer");
	return litebus_reader_next(c->reader, row, timeout_ms);
}

int
litebus_consumer_expired(const litebus_consumer *c, int64_t *first,
			 int64_t *last)
{
	if (c == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_expired: NULL consumer");
	return litebus_reader_expired(c->reader, first, last);
}

int
litebus_consumer_fd(litebus_consumer *c)
{
	if (c == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_fd: NULL consumer");
	return litebus_reader_fd(c->reader);
}

int64_t
litebus_consumer_cursor(const litebus_consumer *c)
{
	return c != NULL ? litebus_reader_cursor(c->reader) : -1;
}

void
litebus_consumer_close(litebus_consumer *c)
{
	struct cons_flush_job job;

	if (c == NULL)
		return;
	if (lb_bus_forked(c->bus)) /* F1: the parent's copy; free nothing */
		return;
	/* The ack jobs queued so far run before this one (W2), and it
	 * writes `want` again anyway.  Relaxed: only this thread stores
	 * `want`. */
	job = (struct cons_flush_job){
	    c->sh, atomic_load_explicit(&c->sh->want, memory_order_relaxed),
	    true};
	if (lb_writer_is_current(c->bus)) {
		/* The writer cannot wait for itself: queue it (K5: the job
		 * takes a reference). */
		struct cons_flush_job *heap = malloc(sizeof *heap);

		if (heap != NULL) {
			*heap = job;
			cons_shared_ref(c->sh);
			if (litebus_submit(c->bus, cons_flush_job, heap,
					   cons_flush_done,
					   heap) != LITEBUS_OK) {
				cons_shared_unref(c->sh);
				free(heap);
			}
		}
	} else {
		/* ECLOSED: the bus closed first; the acks since the last
		 * durable one are lost, and the row keeps naming this
		 * process until an open here takes it over (K1). */
		(void)cons_exec(c->bus, cons_flush_job, &job);
	}
	litebus_reader_close(c->reader);
	cons_unregister(c);
	cons_shared_unref(c->sh);
	free(c);
}

/* ------------------------------------------------------------------ */
/* Public: acknowledgements                                            */

int
litebus_consumer_ack(litebus_consumer *c, int64_t event_id)
{
	struct cons_shared *sh;
	int64_t before;
	int rc;

	if (c == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_ack: NULL consumer");
	if (lb_bus_forked(c->bus)) /* F1 */
		return lb_fork_err("litebus_consumer_ack");
	if (event_id < 1 || event_id > litebus_reader_cursor(c->reader))
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_ack: event_id %lld is not "
				  "in 1..%lld, the ids this consumer has "
				  "passed",
				  (long long)event_id,
				  (long long)litebus_reader_cursor(c->reader));
	sh = c->sh;
	/* Relaxed: only this thread stores `want`. */
	before = atomic_load_explicit(&sh->want, memory_order_relaxed);
	if (event_id <= before)
		return LITEBUS_OK; /* changes nothing */
	/* Relaxed: published to the ack job by the exchange below (or by
	 * the queue's lock, for a job queued after it). */
	atomic_store_explicit(&sh->want, event_id, memory_order_relaxed);
	/*
	 * K4.  The exchange is a read-modify-write, so it and the job's
	 * clearing exchange are ordered on `ack_queued`.  If ours comes
	 * first and finds the flag set, the job's acquire reads our release
	 * (the flag's value we wrote), so the job's load of `want` sees the
	 * store above.  If the job's comes first, ours finds the flag clear
	 * and queues a new job.  Either way a job that starts after this
	 * point writes at least event_id.
	 */
	if (atomic_exchange_explicit(&sh->ack_queued, true,
				     memory_order_acq_rel))
		return LITEBUS_OK;
	cons_shared_ref(sh); /* K5: the job's reference */
	rc = litebus_submit(c->bus, cons_ack_job, sh, cons_job_done, sh);
	if (rc != LITEBUS_OK) {
		/* Not queued, so no job reads the flag: clear it (relaxed:
		 * only this thread sets it) and take the ack back. */
		atomic_store_explicit(&sh->ack_queued, false,
				      memory_order_relaxed);
		atomic_store_explicit(&sh->want, before, memory_order_relaxed);
		cons_shared_unref(sh);
	}
	return rc;
}

int
litebus_consumer_ack_tx(litebus_tx *tx, litebus_consumer *c, int64_t event_id)
{
	struct lb_outbox *ob;

	if (tx == NULL || c == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_ack_tx: NULL argument");
	ob = lb_writer_tx_outbox(tx, c->bus, "litebus_consumer_ack_tx");
	if (ob == NULL)
		return cons_tx_refusal(tx, c->bus);
	LB_ASSERT_ON_WRITER_THREAD();
	/* The reader's cursor is the consumer thread's; that thread waits
	 * for this job or leaves the consumer alone (litebus.h), and the
	 * job hand-off orders its last write before this read. */
	if (event_id < 1 || event_id > litebus_reader_cursor(c->reader))
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_ack_tx: event_id %lld is "
				  "not in 1..%lld, the ids this consumer has "
				  "passed",
				  (long long)event_id,
				  (long long)litebus_reader_cursor(c->reader));
	return cons_sql_ack(ob, &c->sh->key, event_id, lb_writer_tx_now_ms(tx));
}

int
litebus_consumer_flush(litebus_consumer *c)
{
	struct cons_flush_job job;

	if (c == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_flush: NULL consumer");
	if (lb_bus_forked(c->bus)) /* F1 */
		return lb_fork_err("litebus_consumer_flush");
	/* Relaxed: only this thread stores `want`; the queue hands the
	 * value to the writer. */
	job = (struct cons_flush_job){
	    c->sh, atomic_load_explicit(&c->sh->want, memory_order_relaxed),
	    false};
	return litebus_exec(c->bus, cons_flush_job, &job);
}

/* ------------------------------------------------------------------ */
/* Public: what the database holds                                     */

struct cons_read {
	litebus *bus;
	sqlite3 *db;
	struct cons_holder me;
	int only_channel; /* -1: every channel */
	const char *only_name;
	/* Every matching row, in the table's order (channel key, name). */
	litebus_consumer_info *rows;
	size_t count, cap;
	/* Heads read so far in this snapshot, by channel id (-1: not yet). */
	int64_t head[LITEBUS_MAX_CHANNELS];
};

/* The bus's channel whose state key is `key`, or -1. */
static int
cons_channel_of(litebus *bus, const char *key)
{
	char k[CONS_KEY_MAX + 1];

	for (int i = 0; i < bus->nchannels; i++) {
		lb_outbox_state_key(k, bus->channels[i]->name);
		if (strcmp(k, key) == 0)
			return i;
	}
	return -1;
}

static int
cons_read_row(struct cons_read *q, sqlite3_stmt *st)
{
	const unsigned char *key = sqlite3_column_text(st, 0);
	const unsigned char *name = sqlite3_column_text(st, 1);
	litebus_consumer_info info;
	struct cons_holder holder;
	struct cons_key k;
	int ch;
	int rc;

	if (key == NULL || name == NULL)
		return LITEBUS_OK; /* not a row litebus wrote */
	ch = cons_channel_of(q->bus, (const char *)key);
	if (ch < 0 || (q->only_channel >= 0 && ch != q->only_channel))
		return LITEBUS_OK;
	if (q->only_name != NULL && strcmp((const char *)name, q->only_name))
		return LITEBUS_OK;
	memset(&info, 0, sizeof info);
	snprintf(info.name, sizeof info.name, "%s", (const char *)name);
	info.channel = ch;
	info.position = sqlite3_column_int64(st, 2);
	info.acked_at_ms = sqlite3_column_int64(st, 3);
	holder.pid = sqlite3_column_int64(st, 4);
	holder.start = sqlite3_column_int64(st, 5);
	if (q->head[ch] < 0) {
		rc = lb_outbox_read_head(q->db, q->bus->channels[ch]->name,
					 &q->head[ch]);
		if (rc != LITEBUS_OK)
			return rc;
	}
	info.head = q->head[ch];
	info.lag = info.head > info.position ? info.head - info.position : 0;
	cons_key_make(&k, q->bus, q->bus->channels[ch]->name, info.name);
	info.open = cons_is_held(&k, holder, q->me);
	if (q->count == q->cap) {
		size_t cap = q->cap != 0 ? 2 * q->cap : 8;
		litebus_consumer_info *rows =
		    realloc(q->rows, cap * sizeof *rows);

		if (rows == NULL)
			return lb_err_set(LITEBUS_ENOMEM,
					  "reading consumers: out of memory");
		q->rows = rows;
		q->cap = cap;
	}
	q->rows[q->count++] = info;
	return LITEBUS_OK;
}

/* One attempt: every row in one read transaction (one snapshot, so each
 * lag is head - position of the same moment). */
static int
cons_read_once(struct cons_read *q)
{
	sqlite3_stmt *st = NULL;
	int rc, src;

	q->count = 0;
	for (int i = 0; i < LITEBUS_MAX_CHANNELS; i++)
		q->head[i] = -1;
	src = sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL);
	if (src != SQLITE_OK)
		return lb_err_sqlite(q->db, src, "reading consumers");
	rc = lb_outbox_prepare_consumers(q->db, &st);
	while (rc == LITEBUS_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
		rc = cons_read_row(q, st);
	if (rc == LITEBUS_OK && src != SQLITE_DONE)
		rc = lb_err_sqlite(q->db, src, "reading consumers");
	(void)sqlite3_finalize(st); /* repeats the step's error */
	/* Ends the read transaction; a read-only one cannot fail to. */
	(void)sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

/* Open a connection of our own and read, waiting out other connections'
 * locks for up to the bus's busy timeout. */
static int
cons_read(struct cons_read *q, const char *call)
{
	uint64_t sleep_ns = CONS_BACKOFF_MIN_NS, deadline = 0;
	int rc;

	rc = lb_bus_check_file(q->bus, call); /* B5 */
	if (rc == LITEBUS_OK)
		rc = lb_outbox_open_reader(&q->bus->dbn, &q->db);
	if (rc != LITEBUS_OK)
		return rc;
	q->me = cons_me();
	for (;;) {
		rc = cons_read_once(q);
		if (rc != LITEBUS_EBUSY)
			break;
		if (deadline == 0)
			deadline =
			    lb_mono_ns() +
			    (uint64_t)q->bus->opts.busy_timeout_ms * 1000000u;
		if (lb_mono_ns() >= deadline)
			break;
		lb_sleep_ns(sleep_ns);
		if (sleep_ns < CONS_BACKOFF_MAX_NS)
			sleep_ns *= 2;
	}
	(void)sqlite3_close_v2(q->db); /* nothing left to fail on */
	q->db = NULL;
	return rc;
}

int
litebus_consumer_stats_get(litebus_consumer *c, litebus_consumer_info *info)
{
	struct cons_read *q;
	int rc;

	if (c == NULL || info == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_stats_get: NULL argument");
	if (lb_bus_forked(c->bus)) /* F1 */
		return lb_fork_err("litebus_consumer_stats_get");
	q = calloc(1, sizeof *q);
	if (q == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_consumer_stats_get: out of memory");
	/* The reader's reference keeps the bus's memory (B1). */
	q->bus = c->bus;
	q->only_channel = c->channel;
	q->only_name = c->sh->key.name;
	rc = cons_read(q, "litebus_consumer_stats_get");
	if (rc == LITEBUS_OK && q->count == 0)
		rc = lb_err_set(LITEBUS_EINVAL,
				"litebus_consumer_stats_get: consumer '%s' "
				"is no longer in the database",
				c->sh->key.name);
	if (rc == LITEBUS_OK)
		*info = q->rows[0];
	free(q->rows);
	free(q);
	return rc;
}

static int
cons_info_cmp(const void *a, const void *b)
{
	const litebus_consumer_info *x = a, *y = b;

	if (x->channel != y->channel)
		return x->channel < y->channel ? -1 : 1;
	return strcmp(x->name, y->name);
}

int
litebus_consumer_list(litebus *bus, int channel, litebus_consumer_info *out,
		      size_t cap, size_t *count)
{
	struct cons_read *q;
	int rc;

	if (bus == NULL || count == NULL || (cap > 0 && out == NULL) ||
	    channel < -1)
		return lb_err_set(LITEBUS_EINVAL, "litebus_consumer_list: %s",
				  channel < -1 ? "channel must be >= -1"
					       : "NULL argument");
	if (lb_bus_forked(bus)) /* F1 */
		return lb_fork_err("litebus_consumer_list");
	if (!lb_bus_tryref(bus, "litebus_consumer_list")) /* B1 */
		return LITEBUS_ECLOSED;
	if (channel != -1 && lb_bus_channel(bus, channel) == NULL) {
		lb_bus_unref(bus);
		return lb_err_set(LITEBUS_ENOCHANNEL,
				  "litebus_consumer_list: no channel %d",
				  channel);
	}
	q = calloc(1, sizeof *q);
	if (q == NULL) {
		lb_bus_unref(bus);
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_consumer_list: out of memory");
	}
	q->bus = bus;
	q->only_channel = channel;
	rc = cons_read(q, "litebus_consumer_list");
	if (rc == LITEBUS_OK) {
		/* The table orders by channel key; the API by channel id. */
		if (q->count > 1)
			qsort(q->rows, q->count, sizeof *q->rows,
			      cons_info_cmp);
		if (q->count > 0 && cap > 0)
			memcpy(out, q->rows,
			       (q->count < cap ? q->count : cap) * sizeof *out);
		*count = q->count;
	}
	free(q->rows);
	free(q);
	lb_bus_unref(bus);
	return rc;
}

int
litebus_consumer_delete(litebus *bus, int channel, const char *name)
{
	struct lb_channel *ch;
	struct cons_delete_job job;
	int rc;

	if (bus == NULL || name == NULL)
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_delete: NULL argument");
	if (!cons_name_ok(name))
		return lb_err_set(LITEBUS_EINVAL,
				  "litebus_consumer_delete: a name is 1..%d "
				  "bytes of UTF-8",
				  CONS_NAME_MAX);
	if (lb_bus_forked(bus)) /* F1 */
		return lb_fork_err("litebus_consumer_delete");
	if (!lb_bus_tryref(bus, "litebus_consumer_delete")) /* B1 */
		return LITEBUS_ECLOSED;
	if (lb_bus_read_only(bus)) {
		lb_bus_unref(bus);
		return lb_bus_readonly_err("litebus_consumer_delete");
	}
	ch = lb_bus_channel(bus, channel);
	if (ch == NULL) {
		lb_bus_unref(bus);
		return lb_err_set(LITEBUS_ENOCHANNEL,
				  "litebus_consumer_delete: no channel %d",
				  channel);
	}
	cons_key_make(&job.key, bus, ch->name, name);
	job.me = cons_me();
	rc = litebus_exec(bus, cons_delete_job, &job);
	lb_bus_unref(bus);
	return rc;
}
