/* SPDX-License-Identifier: MIT */
/*
 * litebus.h - an in-process event bus with a durable SQLite outbox.
 *
 * One bus per SQLite database file.  Any thread hands the bus a *job*; one
 * dedicated writer thread runs every job inside a SQLite transaction, so
 * all writes are serialized by construction.  A job writes the caller's own
 * tables through litebus_tx_db() and appends events with litebus_emit() to
 * per-channel outbox tables, in the same transaction.  Several waiting jobs
 * share one transaction (group commit), each inside its own SAVEPOINT, so a
 * failing job is rolled back alone.
 *
 * Only after COMMIT returns does the writer publish one small record per
 * event (a litebus_event) into the channel's lock-free broadcast ring.
 * Subscribers (litebus_sub) read the ring at their own cursor; the writer
 * never waits for them.  A subscriber that falls a whole ring behind is told
 * it LAGGED and by how much.  Readers (litebus_reader) combine the ring with
 * the outbox table: they deliver every committed row exactly once, in
 * event_id order, whatever the lag, re-reading the table when the ring
 * cannot prove continuity.  A rolled-back job publishes nothing.
 *
 * Threads and ownership
 * ---------------------
 *  - litebus_open() returns a bus handle; it is shared by every thread.
 *    Opening the same file again in the same process returns the same
 *    handle with its reference count raised; each open is paired with one
 *    litebus_close().  In-memory databases are never shared.
 *  - Jobs and done-callbacks run on the writer thread.  From there,
 *    litebus_exec() and litebus_close() return LITEBUS_EDEADLK (they would
 *    wait for the writer itself); litebus_submit() is allowed.  A job may
 *    take as long as it likes, but the writer runs nothing else meanwhile.
 *    litebus does not detect waits across buses: a job of bus A that
 *    calls litebus_exec() (or litebus_close()) on bus B while a job of B
 *    does the same on A deadlocks both writers.  Use litebus_submit()
 *    between buses.
 *  - A litebus_tx is valid only inside the job it was passed to.
 *  - A litebus_sub or litebus_reader is used by one thread at a time.  It
 *    keeps the bus's memory alive: it may outlive litebus_close(), keeps
 *    returning what was committed, then LITEBUS_CLOSED, and must still be
 *    closed with litebus_unsubscribe() / litebus_reader_close().
 *  - Pointers returned inside litebus_row stay valid until the next call
 *    on the same reader.
 *  - From the writer thread, every call that would wait for the writer
 *    itself returns LITEBUS_EDEADLK instead: litebus_exec(), the last
 *    litebus_close(), litebus_open() of the bus's file while its last
 *    close is under way, and litebus_recv()/litebus_reader_next() with a
 *    timeout other than 0 on a subscriber or reader of the same bus.
 *
 * What a job may do on litebus_tx_db()
 * ------------------------------------
 * The connection is litebus's; a job borrows it inside a transaction.
 *  - Allowed: read anything; write, create, alter and drop the
 *    application's own tables, indexes, views and triggers (names not
 *    starting with "litebus_", not on litebus_* tables); its own
 *    SAVEPOINTs with ROLLBACK TO and RELEASE; deleting outbox rows
 *    (pruning); PRAGMA user_version and every PRAGMA
 *    that only reads; registering SQL functions and collations (they stay
 *    for the life of the bus); keeping prepared statements across jobs.
 *  - What is published is what commits.  Before COMMIT the writer reads
 *    the batch's new outbox rows back from the tables and publishes
 *    exactly those, after COMMIT.  An event whose row the job undoes (a
 *    ROLLBACK TO of its own savepoint, a DELETE) is never published, and
 *    its event_id is never handed out twice once published.  Event ids
 *    that are handed out and then undone leave gaps.
 *  - Refused (the statement fails to prepare with SQLITE_AUTH, so the job
 *    sees an error and decides): BEGIN, COMMIT, ROLLBACK, END; savepoints
 *    named litebus*; ATTACH, DETACH; VACUUM; writing litebus_* tables
 *    except through litebus_emit() (deleting outbox rows excepted);
 *    creating, altering or dropping anything named litebus_* or any index
 *    or trigger on a litebus_* table, temporary ones included (a job
 *    that moves an object into that namespace with ALTER TABLE ... RENAME
 *    TO fails with LITEBUS_EMISUSE and is rolled back); after SQLite has
 *    rolled the whole transaction back under the job, everything but
 *    reads; and
 *    every PRAGMA that changes the connection or the file (synchronous,
 *    journal_mode, locking_mode, query_only, foreign_keys, trusted_schema,
 *    wal_autocheckpoint, application_id, ...), except user_version.
 *  - Put back when the job returns: statements the job left in progress
 *    are reset (a stepped INSERT ... RETURNING keeps its effect); limits
 *    set with sqlite3_limit(); the busy handler, the progress handler and
 *    trace callbacks; the commit, rollback, update and WAL hooks;
 *    extended result codes.  A job that replaced litebus's commit,
 *    rollback or WAL hook, or changed any boolean sqlite3_db_config()
 *    flag (SQLITE_DBCONFIG_DEFENSIVE, _ENABLE_FKEY, _ENABLE_TRIGGER, ...),
 *    fails with LITEBUS_EMISUSE and is rolled back (the setting is put
 *    back).
 *  - SQL functions and collations a job registers may shadow SQLite's
 *    built-in ones in the job's own SQL; litebus's own statements call
 *    no SQL function, so what it publishes and the ids it hands out do
 *    not depend on them.
 *  - Never (litebus cannot detect it, or only after the job returned,
 *    when the harm is done; every guarantee is void): sqlite3_close(),
 *    sqlite3_set_authorizer(), removing or replacing litebus's hooks and
 *    then running SQL, changing a sqlite3_db_config() flag even if the
 *    job puts it back before it returns, sqlite3_blob_open() for writing
 *    on litebus's tables (the authorizer does not see blob writes),
 *    stepping, resetting or finalizing statements the
 *    job did not prepare (sqlite3_next_stmt() finds litebus's),
 *    sqlite3_backup_*() or sqlite3_deserialize() into litebus's
 *    connection, SQLITE_DBCONFIG_MAINDBNAME, stepping in a later job a
 *    DDL statement prepared in an earlier one (litebus checks its
 *    namespace after the job that prepares DDL), ROLLBACK TO or RELEASE
 *    of a savepoint the job did not open in the same call (jobs of a
 *    batch may share one transaction without savepoints between them, so
 *    it may be another job's, left open), keeping the connection
 *    (or a function that uses it) past the job, or using it from another
 *    thread.
 *  - A job may be *called* more than once, and commits at most once.  When
 *    a job fails (it returns non-zero, or litebus fails it), or a
 *    statement of one job makes SQLite roll back the whole transaction
 *    (INSERT OR ROLLBACK, RAISE(ROLLBACK), an I/O error or a full disk), that
 *    job fails with its own status, and the jobs of its batch that ran
 *    before it and had succeeded may be run again in a new transaction.  A
 *    job must therefore keep its effects inside the transaction, or reset
 *    what it records elsewhere (ids from litebus_emit(), counters) at the
 *    start of each call.
 *
 * fork()
 * ------
 * Threads and SQLite connections do not survive fork().  In the child,
 * every call on a bus, subscriber or reader inherited from the parent
 * that returns a status returns LITEBUS_EFORKED at once (never blocks;
 * litebus_sub_skipped() and litebus_reader_cursor() still read the
 * copied value); litebus_close() returns
 * EFORKED too, and litebus_unsubscribe()/litebus_reader_close() free
 * nothing (the memory is the parent's copy).  litebus_open() in the child
 * gives a new, working bus for an in-memory database or for a file the
 * parent did not have open at the fork; for a file the parent had open it
 * returns LITEBUS_EFORKED, file untouched, because SQLite's per-process
 * lock bookkeeping for that file was copied mid-use.  litebus holds
 * SQLite's process-wide mutexes across fork(), so a child never inherits
 * one that another thread held.  A job that forks: its litebus_tx is
 * inherited too, and litebus_emit() on it returns EFORKED,
 * litebus_tx_db() NULL.  litebus sees forks made through fork() (and
 * daemon(3)), not those made without fork handlers (vfork(), _Fork(), a
 * raw clone()).  Open litebus after fork() in each process that uses it
 * (or exec()).
 *
 * Which calls may overlap ("-" may overlap, "X" the caller serializes them,
 * "C" may overlap: the call returns LITEBUS_ECLOSED or LITEBUS_CLOSED if
 * the close got there first; "(r)" means on the same sub/reader).  A bus
 * handle stays valid memory for the life of the process, so every call on
 * it made during or after its last litebus_close() - even one that starts
 * afterwards - returns LITEBUS_ECLOSED (or, for litebus_channel_name(),
 * NULL); a closed handle costs about 1 KiB that is never freed.  Handles
 * of subscribers and readers are freed by their own close calls and must
 * not be used after them.
 *
 *                   exec/submit  recv/next(r)  unsubscribe/reader_close(r)  close
 *  exec/submit           -            -                  -                   C
 *  recv/next(r)          -            X                  X                   C
 *  unsubscribe/
 *   reader_close(r)      -            X                  X                   -
 *  close                 C            C                  -                   X
 *
 * ABI policy
 * ----------
 * A program built against this header keeps working, unrebuilt, with any
 * later liblitebus.so of the same SONAME.  What may change and how:
 *  - Handles (litebus, litebus_sub, ...) are opaque: their layout is the
 *    library's own.
 *  - Plain-data structs the caller allocates (litebus_options,
 *    litebus_retention, litebus_record, litebus_event, litebus_filter,
 *    litebus_row, litebus_stats, litebus_sub_stats, litebus_reader_stats,
 *    litebus_consumer_info) only ever grow at the end, and every call that
 *    takes one also takes its size: the usual call names are macros that
 *    pass sizeof as this header lays the struct out (litebus_open(o, out)
 *    is litebus_open_sized(o, sizeof(litebus_options),
 *    sizeof(litebus_retention), out)).  The library never reads or
 *    writes a byte beyond that size - for arrays (the retention list,
 *    litebus_consumer_list's out[]) the entries are that size apart.
 *    From an older header, fields the struct lacks take their defaults
 *    (litebus_options_init()'s; 0 for every other struct - a field added
 *    later means "as before" when it is 0) and results the struct has no
 *    room for are not written.  From a newer header on an older library,
 *    bytes the library does not know must be 0 in what the program
 *    passes in, or the call fails with LITEBUS_EINVAL (an option is never
 *    silently ignored), and are set to 0 in what it fills in.  A size
 *    smaller than the struct's first field is EINVAL.  Later fields are
 *    added whole, never into what was padding, so each release's struct
 *    is a prefix of the next.  The _sized functions are the exported
 *    symbols; take their address, not the macro's.
 *  - Functions are only added, each in the symbol version of the release
 *    that added it (LITEBUS_0.1, ...), never removed or changed; status
 *    codes and constants only added (new codes at the end of
 *    LITEBUS_ERRORS); callbacks keep their types.
 *  - SONAME: liblitebus.so.<major>.  While the major version is 0 the
 *    SONAME is liblitebus.so.0 and the rules above hold across every
 *    0.x.y release from the first made under this policy (the release
 *    after 0.1.0; 0.1.0 binaries predate it and must be rebuilt - they
 *    fail to load, since litebus_open and the other struct-taking calls
 *    are no longer symbols).  A change the rules do not allow bumps the
 *    major version, and with it the SONAME, 0 to 1 included.  The source
 *    API is not frozen while the major version is 0: a minor release may
 *    deprecate or rename a macro or a default (the CMake package accepts
 *    0.N.x for a request of 0.N only), never in a way that changes what
 *    an already built program does.  CI compares the exported ABI with
 *    the release's baseline (abi/, tools/check-abi.sh).
 *
 * Status codes
 * ------------
 * Every fallible call returns int: LITEBUS_OK (0), a positive status when a
 * call has more than one normal outcome (LITEBUS_LAGGED, LITEBUS_TIMEOUT,
 * LITEBUS_CLOSED, LITEBUS_EXPIRED), or a negative LITEBUS_E* error.  litebus_last_errmsg()
 * describes the last error returned to the calling thread.  Later
 * releases may add codes (at the end of LITEBUS_ERRORS): treat a negative
 * status you do not know as an error, and a positive one as a call that
 * did not deliver.
 * Running out of file descriptors - the process's RLIMIT_NOFILE (EMFILE)
 * or the system's limit (ENFILE) - is LITEBUS_EMFILE wherever it is the
 * cause, never ECANTOPEN, EIO or ENOMEM: from litebus_open(),
 * litebus_reader_open(), litebus_consumer_open(), litebus_sub_fd(),
 * litebus_reader_fd(), litebus_consumer_fd(), and the calls that open a
 * connection of their own (litebus_channel_head(), litebus_consumer_list(),
 * litebus_metrics_format()).  Nothing was opened or changed then, and the
 * call may be retried once descriptors are free; what each handle costs
 * is under litebus_reader_open().
 */
#ifndef LITEBUS_H
#define LITEBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LITEBUS_VERSION_MAJOR 0
#define LITEBUS_VERSION_MINOR 1
#define LITEBUS_VERSION_PATCH 0
#define LITEBUS_VERSION_NUMBER                                                 \
	(LITEBUS_VERSION_MAJOR * 10000 + LITEBUS_VERSION_MINOR * 100 +         \
	 LITEBUS_VERSION_PATCH)
/* The same version as a string literal, "MAJOR.MINOR.PATCH" ("0.1.0"). */
#define LITEBUS_VERSION_STR_(x) #x
#define LITEBUS_VERSION_XSTR_(x) LITEBUS_VERSION_STR_(x)
#define LITEBUS_VERSION_STRING                                                 \
	LITEBUS_VERSION_XSTR_(LITEBUS_VERSION_MAJOR) "."                       \
	LITEBUS_VERSION_XSTR_(LITEBUS_VERSION_MINOR) "."                       \
	LITEBUS_VERSION_XSTR_(LITEBUS_VERSION_PATCH)

/*
 * LITEBUS_API marks every public declaration, and may be defined before
 * this header is included.  The definition applies to the code compiled
 * with it:
 *   - Building litebus as its own library (CMake, liblitebus.so/.a): leave
 *     it alone.  litebus builds with hidden visibility, so the mark is what
 *     exports each function; defined empty there, liblitebus.so would
 *     export nothing.
 *   - Compiling litebus's sources into a shared object of your own: define
 *     it empty and compile with -fvisibility=hidden, and every litebus_*
 *     stays hidden inside your object.
 *   - Linking the installed liblitebus.a into a shared object of your own:
 *     the archive's functions were compiled with default visibility, and
 *     your definition of LITEBUS_API does not change that (empty: no
 *     effect; visibility("hidden"): hides only the functions you call).
 *     Link with -Wl,--exclude-libs,liblitebus.a instead (GNU ld, gold and
 *     lld), and your object exports none of them.
 */
#ifndef LITEBUS_API
#if defined(_WIN32)
#define LITEBUS_API
#elif defined(__GNUC__)
#define LITEBUS_API __attribute__((visibility("default")))
#else
#define LITEBUS_API
#endif
#endif

typedef struct sqlite3 sqlite3;

typedef struct litebus litebus;
typedef struct litebus_tx litebus_tx;
typedef struct litebus_sub litebus_sub;
typedef struct litebus_reader litebus_reader;
typedef struct litebus_consumer litebus_consumer;

/*
 * The one list of status codes.  Values never change once released; new
 * codes go at the end.  X(name, value, message).
 */
#define LITEBUS_ERRORS(X)                                                      \
	X(OK, 0, "success")                                                    \
	X(LAGGED, 1, "the subscriber was lapped by the ring; records were "    \
		     "skipped (see litebus_sub_skipped)")                      \
	X(TIMEOUT, 2, "timed out")                                             \
	X(CLOSED, 3, "the bus is closed and everything committed was "         \
		     "delivered")                                              \
	X(EINVAL, -1, "invalid argument")                                      \
	X(ENOMEM, -2, "out of memory")                                         \
	X(ESQLITE, -3, "the database reported an error")                       \
	X(EBUSY, -4, "the database stayed locked by another connection for "   \
		     "the whole busy timeout")                                 \
	X(ECLOSED, -5, "the bus is closed")                                    \
	X(EDEADLK, -6, "the call would deadlock: it was made on the writer "   \
		       "thread (from a job or a done-callback)")               \
	X(ENOCHANNEL, -7, "no such channel")                                   \
	X(ENOTDB, -8, "the file is not a SQLite database, or it is corrupt")   \
	X(ESCHEMA, -9, "the database has a litebus schema newer than this "    \
		       "library")                                              \
	X(EREADONLY, -10, "the database file or its directory is read-only")  \
	X(EMISUSE, -11, "called outside a job or from the wrong thread")       \
	X(EEVENTTYPE, -12, "event type not allowed on this channel")           \
	X(EAGAIN, -13, "too many jobs queued; retry later")                    \
	X(ENOSPC, -14, "the database or the disk is full")                     \
	X(EIO, -15, "disk I/O error")                                          \
	X(ECANTOPEN, -16, "unable to open the database file")                  \
	X(ETOOBIG, -17, "a string or blob is larger than the connection's "    \
			"length limit")                                        \
	X(EFOREIGN, -18, "the file belongs to another application, or is an "  \
			 "existing database litebus was not told to adopt")    \
	X(EFORKED, -19, "the handle was made by another process (inherited "   \
			"across fork()), or the file was open in the parent "  \
			"when this process was forked")                         \
	X(EXPIRED, 4, "rows this reader had not read yet were pruned; "        \
		      "litebus_reader_expired() tells which")                  \
	X(EINUSE, -20, "the durable consumer is already open (in this "        \
		       "process or another)")                                  \
	X(EMFILE, -21, "out of file descriptors: the process's limit "         \
		       "(RLIMIT_NOFILE, EMFILE) or the system's (ENFILE)")

enum litebus_status {
#define LITEBUS_ENUM_(name, value, msg) LITEBUS_##name = value,
	LITEBUS_ERRORS(LITEBUS_ENUM_)
#undef LITEBUS_ENUM_
};

/*
 * litebus_strerror - a fixed English description of a status code.
 * Returns a static string, never NULL ("unknown status" for values that are
 * not litebus codes, such as a job's own return value).
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API const char *litebus_strerror(int status);

/*
 * litebus_errname - the code's name without prefix ("EINVAL", "OK").
 * Returns a static string, never NULL ("?" for unknown values).
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API const char *litebus_errname(int status);

/*
 * litebus_last_errmsg - what went wrong in the last litebus call on this
 * thread that returned a negative status: the litebus message, followed by
 * SQLite's message where SQLite was the cause.  Returns thread-local memory
 * valid until the next litebus call on this thread; never NULL ("" if the
 * thread saw no error yet).  Inside a done-callback it describes that job's
 * status.
 * Thread-safety: any thread (per-thread state).  Blocking: never.
 */
LITEBUS_API const char *litebus_last_errmsg(void);

/*
 * litebus_last_sqlite_code - SQLite's extended result code behind the last
 * negative status returned to this thread, or 0 if SQLite was not involved.
 * Thread-safety: any thread (per-thread state).  Blocking: never.
 */
LITEBUS_API int litebus_last_sqlite_code(void);

/*
 * litebus_version_number - LITEBUS_VERSION_NUMBER of the library actually
 * loaded, to compare with the header the program was compiled against.
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API int litebus_version_number(void);

/*
 * litebus_version_string - the version of the library actually loaded as
 * "MAJOR.MINOR.PATCH", such as "0.1.0": LITEBUS_VERSION_STRING of the
 * library, made of the same numbers as litebus_version_number().  Returns
 * a static string, never NULL; the caller must not free it.
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API const char *litebus_version_string(void);

/* ---------------------------------------------------------------- */
/* Channels                                                          */

/* Built-in channels; their ids are fixed.  Channels declared in
 * litebus_options.channels get ids LITEBUS_BUILTIN_CHANNELS, ... in the
 * order of that list, at every open: ids are positions, not stored in the
 * file.  Reopening with the channels in another order renumbers them, and
 * a channel the file holds but the options do not declare cannot be
 * reached through this bus.  Look ids up by name (litebus_channel_id())
 * rather than keeping them across opens. */
enum litebus_builtin_channel {
	LITEBUS_LEASE_HISTORY = 0,   /* acquired renewed reclaimed revoked */
	LITEBUS_COMPLETION = 1,      /* success failed cancelled expired skipped */
	LITEBUS_SIGNAL_DELIVERY = 2, /* any non-empty event type */
	LITEBUS_STREAM_FRAME = 3,    /* any non-empty event type */
	LITEBUS_OPERATOR_EVENT = 4   /* priority_changed replayed
					flow_cancel_requested */
};
#define LITEBUS_BUILTIN_CHANNELS 5
/* Longest channel name, in bytes, without the terminating NUL. */
#define LITEBUS_CHANNEL_NAME_MAX 48
/* Most channels a bus can have, built-in ones included. */
#define LITEBUS_MAX_CHANNELS 64

/* ---------------------------------------------------------------- */
/* Opening and closing                                               */

/*
 * Durability of a committed job (PRAGMA synchronous in WAL mode):
 *  NORMAL: a commit is not fsynced.  After a *process* crash nothing
 *          acknowledged is lost (the WAL is in the OS page cache).  After a
 *          power cut or OS crash the last commits may be lost, but the
 *          database is never corrupt and what survives is a prefix of the
 *          commit order.
 *  FULL:   every COMMIT is fsynced before any job of its batch is
 *          acknowledged or any of its events is published: nothing
 *          acknowledged is lost, even after a power cut.  Group commit
 *          shares one fsync among every job of a batch.
 */
#define LITEBUS_DURABILITY_NORMAL 0
#define LITEBUS_DURABILITY_FULL 1

/* PRAGMA application_id of every litebus database file ("LBUS"). */
#define LITEBUS_APPLICATION_ID 0x4C425553

/* Cursor values for litebus_reader_open(). */
#define LITEBUS_FROM_START 0
#define LITEBUS_FROM_NOW (-1)

/* Bounds of litebus_options.ring_capacity. */
#define LITEBUS_RING_MIN 8u
#define LITEBUS_RING_MAX (1u << 24)

typedef struct litebus_options {
	/* Database file, created if missing.  NULL or ":memory:" gives a
	 * private in-memory database, shared by the bus and its readers and
	 * gone when the last of them closes (SQLite 3.36 or newer: it uses
	 * the memdb VFS).  Default NULL. */
	const char *path;
	/* Slots in each channel's ring: a power of two in
	 * [LITEBUS_RING_MIN, LITEBUS_RING_MAX].  Default 4096.  One batch
	 * publishes up to max_batch x (events per job) records at once; a
	 * ring at least twice that lets a subscriber that reads between
	 * batches keep up without LAGGED.  Each slot is 64 bytes. */
	uint32_t ring_capacity;
	/* LITEBUS_DURABILITY_NORMAL (default) or LITEBUS_DURABILITY_FULL. */
	int durability;
	/* Most jobs in one transaction, >= 1 (1 disables group commit).
	 * Default 256. */
	uint32_t max_batch;
	/* Extra channel names, NULL-terminated; NULL for none.  A name is
	 * 1..LITEBUS_CHANNEL_NAME_MAX of [A-Za-z0-9_], must not start with a
	 * digit and must differ from every other channel name, ignoring case
	 * (SQLite's table names ignore case); "<name>_partition" next to a
	 * channel "<name>" is refused too (it is that channel's index).
	 * Borrowed for the duration of litebus_open(). */
	const char *const *channels;
	/* How long the writer retries, with backoff, while another
	 * connection holds the database's write lock, before the batch fails
	 * with LITEBUS_EBUSY.  Milliseconds; default 5000. */
	uint32_t busy_timeout_ms;
	/* Most jobs waiting for the writer; beyond it exec/submit return
	 * LITEBUS_EAGAIN.  Default 1048576. */
	uint32_t max_queue;
	/* Rows a reader fetches per catch-up query (1..65536).  Default 256. */
	uint32_t reader_batch;
	/* Where WAL checkpoints run (file databases):
	 * LITEBUS_CHECKPOINT_BACKGROUND (default): a litebus thread with its
	 *   own connection copies the WAL back (PASSIVE checkpoints) once a
	 *   commit leaves it with checkpoint_pages pages, so no commit waits
	 *   for that.  The writer then copies the small remainder itself in
	 *   the first idle gap (2 ms without jobs) so the WAL can restart.
	 * LITEBUS_CHECKPOINT_INLINE: SQLite's auto-checkpoint, inside the
	 *   commit that crosses checkpoint_pages.
	 * The WAL bound, in both modes and whatever the load: the -wal file
	 * stays below LITEBUS_WAL_BOUND_FACTOR x checkpoint_pages pages plus
	 * the pages of one batch's transaction.  When a commit leaves the WAL
	 * at or above LITEBUS_WAL_BOUND_FACTOR x checkpoint_pages pages, the
	 * writer runs no further job until a RESTART checkpoint has copied it
	 * back (back-pressure: jobs wait in the queue meanwhile); litebus's
	 * own readers keep their read transactions short and never hold it
	 * off for long, and the file is truncated back to the bound when the
	 * WAL restarts.  Only a read transaction that another connection (not
	 * litebus's) keeps open longer than busy_timeout_ms can hold the WAL
	 * beyond the bound (as can other connections' readers that keep
	 * re-reading without pause); the writer then goes on and retries
	 * once the WAL has grown by another checkpoint_pages pages.  With
	 * the defaults (1000 pages of 4 KiB): 32 MiB plus one batch. */
	int checkpoint_mode;
	/* WAL size in pages that triggers a checkpoint, >= 1.  Default 1000. */
	uint32_t checkpoint_pages;
	/* Non-zero: litebus_open() may add litebus's tables to an existing
	 * SQLite database of the application's own (PRAGMA application_id 0,
	 * tables of its own, no litebus schema yet), and then marks it with
	 * LITEBUS_APPLICATION_ID.  Default 0: such a file is refused with
	 * LITEBUS_EFOREIGN and left unchanged.  A file whose application_id
	 * is another application's is always refused. */
	int adopt;
	/* Retention policies (see "Retention" below), one per channel,
	 * ended by an entry whose channel is NULL; NULL for none (default:
	 * nothing is ever pruned but by litebus_prune()).  Copied by
	 * litebus_open(). */
	const struct litebus_retention *retention;
	/* Most rows one pruning transaction deletes (1..1000000): pruning a
	 * large backlog runs as many short transactions between the
	 * application's jobs, never one long one.  Default 1000. */
	uint32_t prune_batch_rows;
	/* How often retention is applied, in milliseconds (>= 1).  Default
	 * 1000. */
	uint32_t prune_interval_ms;
	/* Non-zero: open an existing litebus file for reading only - for
	 * tools and for followers in another process (see "Read-only
	 * buses" below).  Default 0. */
	int read_only;
	/* How the bus notices commits that other connections make to the
	 * file (another process's bus, a tool): LITEBUS_WATCH_AUTO
	 * (default), LITEBUS_WATCH_POLL or LITEBUS_WATCH_OFF; see "Commits
	 * made elsewhere" below.  Ignored for in-memory databases. */
	int watch;
	/* LITEBUS_WATCH_POLL: how often PRAGMA data_version is read, in
	 * milliseconds (1..60000).  LITEBUS_WATCH_AUTO: the backstop poll
	 * behind inotify.  Default 1000. */
	uint32_t watch_interval_ms;
	/* Not used: it names what was the struct's tail padding, so that no
	 * later field reads an older program's padding bytes (ABI policy
	 * above).  Never read; leave it 0. */
	uint32_t pad0_;
	/* Live rows from memory: the largest row, in bytes, that readers
	 * and consumers at the head of a channel take from memory instead of
	 * reading it from the table (0..65536; 0: every row from the table).
	 * A row's size here is its subject, event type, namespace, instance
	 * tag and payload lengths, plus one byte for each of the three
	 * strings that is not NULL.  Default 192.  See "Live rows from
	 * memory" below: what it costs (per channel that has had a reader,
	 * min(ring_capacity, 65536) slots of 64 + this, rounded up to a
	 * multiple of 64, bytes: 1 MiB with the defaults) and what it
	 * changes. */
	uint32_t reader_inline_bytes;
} litebus_options;

/* See litebus_options.watch. */
#define LITEBUS_WATCH_AUTO 0
#define LITEBUS_WATCH_POLL 1
#define LITEBUS_WATCH_OFF 2

/*
 * Commits made elsewhere
 * ----------------------
 * Readers and durable consumers deliver every committed row of their
 * channel, whoever committed it: this bus, or any other connection to the
 * same file - another process's bus (read-write), a job of a bus that
 * shares nothing with this one, or a tool.  Rows this bus commits wake
 * them through the ring, as always.  Rows committed elsewhere are noticed
 * by one watcher thread per bus (file databases only), which runs only
 * while at least one reader or consumer is open on the bus:
 *  - LITEBUS_WATCH_AUTO: inotify(7) on the file's directory reports every
 *    write to its -wal file; the watcher then reads PRAGMA data_version
 *    and, if another connection committed, each watched channel's head,
 *    and wakes the readers of the channels that moved.  Typical delay
 *    from the other process's COMMIT to the reader holding the row: well
 *    under 1 ms (figures in bench/README.md, scenario "xproc").  As a
 *    backstop (a file system without inotify, a full inotify queue) it
 *    also polls every watch_interval_ms; if inotify cannot be used at
 *    all (fs.inotify.max_user_instances - often 128 per user - used up,
 *    or no inotify) it polls every min(watch_interval_ms, 5) ms instead.
 *    The watcher holds an inotify instance, an eventfd and a read-only
 *    SQLite connection from its first follower until the bus closes.
 *  - LITEBUS_WATCH_POLL: polls PRAGMA data_version every
 *    watch_interval_ms (about 2 us a poll), for file systems where
 *    inotify is not reliable.
 *  - LITEBUS_WATCH_OFF: no watcher.  Rows committed elsewhere are still
 *    delivered, exactly once and in order, but only once this bus
 *    publishes something on the channel or the reader is reopened.
 * Subscribers (litebus_sub) see only this bus's own commits: the ring
 * carries what this bus's writer published, nothing else.
 *
 * Read-only buses
 * ---------------
 * With options.read_only the bus never writes to the file: no writer
 * thread, no schema change, no migration, no checkpoint, no retention.
 * The file must exist and be a litebus file of the current schema version
 * (an older one is ESCHEMA until a read-write open has migrated it; a
 * missing file is ECANTOPEN; anything else as for a read-write open).
 * The bus has every channel the file holds: the built-in ones (ids as
 * usual), then those named in options.channels (in that order; each
 * must exist in the file: ENOCHANNEL otherwise), then the file's others
 * in order of their names - litebus_channel_count()/_name() list them.
 * A bus holds at most LITEBUS_MAX_CHANNELS: of a file with more (several
 * read-write opens may each declare others), the ones beyond are left out
 * unless options.channels names them.
 * Readers, litebus_channel_head(), litebus_consumer_list(),
 * litebus_stats_get() and litebus_metrics_format() work; litebus_exec(),
 * litebus_submit(), litebus_prune(), litebus_subscribe() (nothing is ever
 * published), litebus_consumer_open() (positions are writes) and
 * litebus_consumer_delete() return LITEBUS_EREADONLY.
 * SQLite's WAL mode needs two files beside the database for any reader:
 * "<db>-wal" and "<db>-shm".  While a writer has the file open they exist,
 * and a read-only bus needs only read access to them and to the database
 * (SQLite maps a -shm it cannot write read-only).  When nobody has the
 * file open they usually do not exist and SQLite creates them: in a
 * directory the process cannot write, litebus_open then fails with
 * LITEBUS_EREADONLY (SQLite's SQLITE_READONLY_DIRECTORY; copy the file
 * elsewhere to read it); in a writable one SQLite leaves them behind,
 * empty, owned by the process's user - open read-only as the user that
 * owns the database, or a later writer of another user may be refused
 * the -shm.  (Checked by hand as an unprivileged user, 2026-11-30; the
 * test suite runs as root, which no permission stops.)
 *
 * Live rows from memory
 * ---------------------
 * A reader (and a durable consumer, which reads through one) at the head
 * of its channel takes the rows the bus's writer just committed from
 * memory instead of querying the table: after COMMIT the writer copies
 * each row, as it read it back from the table inside the committing
 * transaction, into a slot beside its ring record, and a reader whose
 * next id is exactly that record's copies the row from there.  Everything
 * else comes from the table as before: rows larger than
 * options.reader_inline_bytes, rows whose slot the ring has reused since
 * (a reader more than ring_capacity records behind), the missed rows
 * after a lap, rows after a gap in the ids (a job's undone emit), and
 * rows other connections committed.  The reader's contract does not
 * change - every committed row that matches its filter, exactly once, in
 * event_id order, nothing uncommitted - with one exception to "rows
 * deleted before a reader reaches them are not delivered": a row that
 * was committed and then deleted (a job's DELETE, pruning) may still be
 * delivered by a reader that took it from memory; it never is EXPIRED
 * then, since nothing was lost.  litebus_reader_stats.memory_rows counts
 * the rows a reader delivered from memory.
 * Cost: per channel on which a reader or consumer has opened (on a
 * read-write bus; a read-only bus publishes nothing), min(ring_capacity,
 * 65536) slots of (64 + reader_inline_bytes) bytes rounded up to a
 * multiple of 64 - with the defaults 4096 x 256 bytes = 1 MiB; at most
 * 16 MiB at the default size, whatever the ring - allocated and zeroed
 * at that first open and freed when the bus closes; if it cannot be
 * allocated, readers read every row from the table.  With fewer slots
 * than the ring, rows more than 65536 records behind the head come from
 * the table.  The writer copies each row it commits
 * on such a channel once (a few hundred nanoseconds), whether or not a
 * reader takes it; a reader copies each row it takes once, as it copies
 * a row it reads from the table.
 */

/*
 * Retention: a per-channel policy, applied by a litebus thread every
 * prune_interval_ms, off the commit path: it deletes the channel's oldest
 * rows in transactions of at most prune_batch_rows rows each, queued
 * behind the application's jobs like any job.  A row is pruned when it is
 * older than max_age_ms (by committed_at_ms) or outside the newest
 * max_rows event_ids, whichever prunes more - but never a row that a
 * durable consumer of the channel has not acknowledged, unless `hard` is
 * set: then the limits win, and a consumer whose unacknowledged rows were
 * pruned is told so by LITEBUS_EXPIRED on its next read.  Pruning only ever
 * removes a prefix of the channel (every row at or below some event_id);
 * event_ids are never reused.  Readers and consumers that had not read a
 * pruned row get LITEBUS_EXPIRED with the exact range of ids (see
 * litebus_reader_next()); nothing is skipped silently.
 */
typedef struct litebus_retention {
	const char *channel; /* channel name (compared ignoring case, at
				most one policy per channel); NULL ends
				the list */
	int64_t max_age_ms;  /* > 0: prune rows committed longer ago; 0: no
				age limit */
	int64_t max_rows;    /* > 0: keep the newest max_rows event_ids; 0:
				no count limit */
	int hard;	     /* non-zero: prune even rows that durable
				consumers have not acknowledged */
} litebus_retention;

/* See litebus_options.checkpoint_mode. */
#define LITEBUS_WAL_BOUND_FACTOR 8

#define LITEBUS_CHECKPOINT_BACKGROUND 0
#define LITEBUS_CHECKPOINT_INLINE 1

/*
 * litebus_options_init - fill *o with the defaults documented above.
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API void litebus_options_init_sized(litebus_options *o, size_t size);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_options_init(o)                                                \
	litebus_options_init_sized((o), sizeof(litebus_options))
#else
void litebus_options_init(litebus_options *o);
#endif

/*
 * litebus_open - open or create the database, switch it to WAL, create or
 * migrate the litebus schema, create one ring per channel and start the
 * writer thread.  o == NULL means defaults (an in-memory database).
 *
 * Which files it opens: a new or empty file; a litebus file (PRAGMA
 * application_id LITEBUS_APPLICATION_ID, or 0 with litebus's schema from
 * an older version, which is then marked); an existing database of the
 * application's own only with options.adopt.  Every object whose name
 * starts with "litebus_", and every index, trigger or view on a litebus_*
 * table, must be exactly what litebus creates.
 *
 * Returns LITEBUS_OK and *out, or: EINVAL (bad option or channel name),
 * ENOMEM, ECANTOPEN, EREADONLY, ENOTDB (not SQLite, corrupt), ESCHEMA (a
 * newer litebus schema, or litebus_* objects that litebus did not create
 * or of another shape), EFOREIGN (another application's file, or one of
 * the application's own without options.adopt), EFORKED (see fork()
 * above), EDEADLK (see the writer thread above), EBUSY, ESQLITE, EMFILE
 * (out of file descriptors).  On
 * failure *out is NULL and the file was not modified beyond what SQLite
 * does to open it.
 *
 * If the same file is already open in this process - the same file, not
 * the same name: hard links, symbolic links, bind mounts and
 * /proc/self/fd paths are compared by device and inode - returns that bus
 * and counts one more reference; the options of this call must then name
 * only channels the open bus has (EINVAL otherwise) and are otherwise
 * ignored.  Its connections keep using the path of the first open, and
 * SQLite names the -wal after it: so while a bus is open, litebus_open
 * refuses with ECANTOPEN to open it by another name once that first path
 * (with symbolic links resolved) no longer names it (renamed or
 * deleted), and to open another file by that path; litebus_reader_open
 * then refuses too.  If the file was renamed while open, the last close
 * copies the WAL into it (SQLite would not), so nothing committed stays
 * behind in a -wal named after the old path.  Only regular files are
 * opened (ECANTOPEN for devices, FIFOs, directories).
 * The caller owns one reference to *out and releases it with
 * litebus_close().  litebus_open copies everything it keeps from *o.
 * Thread-safety: any thread.  Blocking: opens files and runs schema SQL.
 */
LITEBUS_API int litebus_open_sized(const litebus_options *o,
				   size_t options_size, size_t retention_size,
				   litebus **out);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_open(o, out)                                                   \
	litebus_open_sized((o), sizeof(litebus_options),                       \
			   sizeof(litebus_retention), (out))
#else
int litebus_open(const litebus_options *o, litebus **out);
#endif

/*
 * litebus_close - release one reference taken by litebus_open().  When the
 * last is released: new jobs are refused with ECLOSED, the jobs already
 * queued run and commit, their events are published, the writer thread is
 * joined, and every subscriber and reader then drains what was committed
 * and reports LITEBUS_CLOSED.  Subscribers and readers that outlive the bus
 * stay safe to use and must still be closed.
 *
 * Returns LITEBUS_OK; OK for NULL (no-op); ECLOSED if every open of this
 * handle was already closed (nothing happens); EDEADLK when the last
 * reference would be released on the writer thread (from a job or a
 * done-callback: nothing happens); EFORKED in a forked child.
 * Thread-safety: any thread; the last close not on the writer.
 * Blocking: until the queued jobs have committed and the writer has
 * exited.
 */
LITEBUS_API int litebus_close(litebus *bus);

/*
 * litebus_channel_id - the id of the channel called `name`.
 * Returns the id (>= 0), or EINVAL (NULL argument), ENOCHANNEL, ECLOSED
 * (after the last close) or EFORKED.
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API int litebus_channel_id(litebus *bus, const char *name);

/*
 * litebus_channel_name - the name of channel `channel`, or NULL if there is
 * no such channel, the bus is closed or inherited across fork().  The
 * string lives as long as the bus's memory (until the last close and the
 * close of its last subscriber and reader).
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API const char *litebus_channel_name(litebus *bus, int channel);

/*
 * litebus_channel_count - how many channels the bus has (ids 0..count-1),
 * or EINVAL for NULL, ECLOSED after the last close, EFORKED.
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API int litebus_channel_count(litebus *bus);

/* ---------------------------------------------------------------- */
/* Jobs                                                              */

/*
 * A job runs on the writer thread inside a transaction (its own SAVEPOINT
 * within the batch's transaction).  Return 0 to commit, anything else to
 * roll the job back: that value reaches the submitter unchanged (so pick
 * values that are not litebus status codes, e.g. <= -1000, if the caller
 * must tell them apart).  The job must not BEGIN, COMMIT, ROLLBACK or
 * RELEASE litebus's savepoints (they are refused by an authorizer) nor
 * write outbox tables except through litebus_emit().  It may delete
 * outbox rows (pruning); rows deleted before a reader reaches them are not
 * delivered (unless the reader already took them from memory: "Live rows
 * from memory").  It may call litebus_emit(), litebus_submit(), and SQLite on
 * litebus_tx_db() as "What a job may do" above says.  Statements it
 * prepares on litebus_tx_db() may be kept and reused by later jobs of the
 * same bus; finalize them (from a job) before the bus's last close:
 * litebus closes its connection with sqlite3_close_v2(), which keeps a
 * connection with unfinalized statements, and their memory, until they
 * are finalized - and after the close nothing can finalize them.  A job written in C++ must not let an
 * exception escape it: it would unwind through litebus's C frames on
 * the writer thread (undefined behaviour; the bus cannot recover).
 */
typedef int (*litebus_job_fn)(litebus_tx *tx, void *arg);

/* Called once per submitted job on the writer thread after the job's fate
 * is settled: 0 when it committed (its events are already published), the
 * job's own non-zero return value, or a negative litebus status if the
 * batch failed (e.g. ESQLITE, EBUSY, ENOSPC).  Must not block for long: the
 * writer runs no other job meanwhile. */
typedef void (*litebus_done_fn)(int status, void *arg);

/*
 * litebus_exec - run fn(tx, arg) as a job and wait until its transaction
 * has committed and its events are published.
 * Returns 0 once committed; fn's non-zero return value if fn rolled back;
 * ECLOSED after close; EDEADLK on the writer thread (a job or a callback
 * calling exec); EAGAIN if max_queue jobs are waiting; EINVAL for NULL;
 * EFORKED in a forked child; or
 * the batch's error (ESQLITE, EBUSY, ENOSPC, EIO, ENOMEM) with nothing of
 * the job committed or published.
 * Borrows arg until it returns.
 * Thread-safety: any thread except the writer.
 * Blocking: until the job's batch has committed.  While the machine has a
 * CPU to spare (no more runnable threads than CPUs + 1, sampled from
 * /proc/loadavg every 2 ms), the caller first spins up to 200 us -
 * learned from recent waits, and by at most CPUs - 1 callers at once -
 * before it sleeps, and the writer spins the same way for the next job
 * after a batch: on a virtual machine a futex wake-up of a thread on an
 * idle CPU costs more than that (bench/README.md, "Issue 12").  An idle
 * bus spins once after its last job, never again.
 */
LITEBUS_API int litebus_exec(litebus *bus, litebus_job_fn fn, void *arg);

/*
 * litebus_submit - queue fn(tx, arg) as a job and return at once.  On
 * LITEBUS_OK, done(status, done_arg) will be called exactly once on the
 * writer thread (done may be NULL), even if the bus closes meanwhile: jobs
 * queued before close still run.  On an error return (EINVAL, ECLOSED,
 * EAGAIN, ENOMEM, EFORKED) neither fn nor done will ever be called.
 * The bus borrows arg and done_arg until done has returned; with done ==
 * NULL, until fn has returned for the last time (a job may be called
 * more than once, see above), which the caller can only learn by other
 * means - pass a done callback when arg must be freed.
 * Thread-safety: any thread, including the writer (a job or a callback
 * may submit further jobs).  Blocking: never.
 */
LITEBUS_API int litebus_submit(litebus *bus, litebus_job_fn fn, void *arg,
			       litebus_done_fn done, void *done_arg);

/*
 * litebus_tx_db - the writer's connection, inside a transaction, for the
 * job's own statements.  Valid only during the job; NULL for a tx that is
 * not running a job or when called from another thread.  Do not close it.
 * Thread-safety: the writer thread, inside the job.  Blocking: never.
 */
LITEBUS_API sqlite3 *litebus_tx_db(litebus_tx *tx);

typedef struct litebus_record {
	int64_t partition_key;
	const void *subject; /* may be NULL (then subject_len must be 0) */
	size_t subject_len;  /* bytes */
	const char *event_type; /* required; validated on built-in channels */
	const char *ns;           /* namespace; NULL = none */
	const char *instance_tag; /* NULL = none */
	const void *payload; /* may be NULL (then payload_len must be 0) */
	size_t payload_len;  /* bytes */
	int64_t occurred_at_ms; /* ms since the Unix epoch; 0 = now */
} litebus_record;

/*
 * litebus_emit - append one event to `channel`'s outbox table in the job's
 * transaction, and queue it for publication after COMMIT.
 * Returns LITEBUS_OK and, if event_id != NULL, the row's event_id: larger
 * than every event_id ever committed or published on this channel, even
 * deleted ones.  The event is published after COMMIT if, and only if,
 * its row is still in the table when the batch commits (see "What a job
 * may do" above).
 * Errors: EMISUSE (outside a job or off the writer thread), ENOCHANNEL,
 * EINVAL (NULL rec or event_type, empty event_type, NULL pointer with
 * non-zero length), EEVENTTYPE (type not allowed on a built-in channel),
 * ETOOBIG (a field, or the whole row, is larger than the connection's
 * SQLITE_LIMIT_LENGTH; the message names the field, its size and the
 * limit), ENOSPC (a full disk, or the channel's event_ids are exhausted:
 * the next would exceed INT64_MAX), ESCHEMA (the row was not stored: a
 * trigger ignored it), ESQLITE/EIO/ENOMEM.  After an error nothing was
 * appended; the job may go on or return non-zero.
 * Borrows rec and everything it points to for the duration of the call.
 * Thread-safety: the writer thread, inside the job.  Blocking: SQLite I/O.
 */
LITEBUS_API int litebus_emit_sized(litebus_tx *tx, int channel,
				   const litebus_record *rec, size_t rec_size,
				   int64_t *event_id);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_emit(tx, channel, rec, event_id)                               \
	litebus_emit_sized((tx), (channel), (rec), sizeof(litebus_record),     \
			   (event_id))
#else
int litebus_emit(litebus_tx *tx, int channel, const litebus_record *rec,
		 int64_t *event_id);
#endif

/* ---------------------------------------------------------------- */
/* Subscribers: the raw ring                                         */

#define LITEBUS_SUBJECT_PREFIX 16

/* One published event as the ring carries it. */
typedef struct litebus_event {
	int64_t event_id;
	int64_t partition_key;
	int channel;
	uint32_t subject_len;    /* length of the full subject, bytes */
	int64_t committed_at_ms; /* when the writer began the batch's
				    transaction, ms since the Unix epoch */
	/* The first min(subject_len, LITEBUS_SUBJECT_PREFIX) bytes of the
	 * subject; the rest of the array is zero. */
	unsigned char subject_prefix[LITEBUS_SUBJECT_PREFIX];
} litebus_event;

/*
 * litebus_subscribe - attach a subscriber to `channel`'s ring.  It sees
 * every event published after this call returns, in commit order.
 * Returns OK and *out; EINVAL, ENOCHANNEL, ENOMEM, ECLOSED (bus closed).
 * The caller owns *out and frees it with litebus_unsubscribe().
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API int litebus_subscribe(litebus *bus, int channel, litebus_sub **out);

/*
 * litebus_recv - take the next event.
 * Returns:
 *  OK       *ev is the next event in commit order.
 *  LAGGED   the ring overwrote events before this subscriber read them;
 *           *ev is untouched.  litebus_sub_skipped() tells exactly how many
 *           were skipped; the next call continues with the event right
 *           after them, with half a ring of headroom.  Read the outbox (or
 *           use a litebus_reader) to get the skipped events.
 *  TIMEOUT  nothing arrived within timeout_ms: 0 never waits, -1 waits
 *           forever, a positive value waits up to that many milliseconds.
 *  CLOSED   the bus has closed and every event published was returned.
 *  EINVAL   NULL argument, or timeout_ms below -1.
 *  EDEADLK  timeout_ms != 0 on the writer thread of the subscriber's bus.
 *  EFORKED  the subscriber was inherited across fork().
 * Thread-safety: one thread at a time per subscriber.
 * Blocking: up to timeout_ms; sleeps without spinning.
 */
LITEBUS_API int litebus_recv_sized(litebus_sub *sub, litebus_event *ev,
				   size_t ev_size, int timeout_ms);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_recv(sub, ev, timeout_ms)                                      \
	litebus_recv_sized((sub), (ev), sizeof(litebus_event), (timeout_ms))
#else
int litebus_recv(litebus_sub *sub, litebus_event *ev, int timeout_ms);
#endif

/*
 * litebus_sub_skipped - how many events the last LAGGED skipped (0 before
 * any lag).  Thread-safety: the subscriber's thread.  Blocking: never.
 */
LITEBUS_API uint64_t litebus_sub_skipped(const litebus_sub *sub);

/*
 * litebus_sub_fd - a file descriptor that is readable while events (or the
 * CLOSED status) may be waiting for this subscriber, for poll/epoll.  It is
 * level-triggered in effect: it becomes unreadable only when a
 * litebus_recv() call finds nothing to return, and readable again when an
 * event is published.  After litebus_recv() returned TIMEOUT, the fd is
 * readable only once something was published or the bus closed: an
 * epoll loop never spins on it through a quiet period.  It is an eventfd,
 * made with O_CLOEXEC and O_NONBLOCK; do not read, write or close it.
 * Created on the first call and owned by the subscriber: it is closed by
 * litebus_unsubscribe(), so remove it from an epoll set first.  With
 * EPOLLET, call litebus_recv() until it returns LITEBUS_TIMEOUT (or
 * CLOSED) after each wake-up: the fd turns readable again only after a
 * call found nothing.
 * Returns the fd (>= 0), or EINVAL, EMFILE (out of file descriptors) or
 * ENOMEM (no fd could be made); a later call tries again.
 * Thread-safety: the subscriber's thread.  Blocking: never.
 */
LITEBUS_API int litebus_sub_fd(litebus_sub *sub);

/*
 * litebus_unsubscribe - detach and free.  NULL is a no-op.
 * Thread-safety: the subscriber's thread, not during recv.  Blocking: never.
 */
LITEBUS_API void litebus_unsubscribe(litebus_sub *sub);

/* ---------------------------------------------------------------- */
/* Readers: every committed row, exactly once                        */

typedef struct litebus_filter {
	int64_t partition_key; /* used when any_partition == 0 */
	int any_partition;     /* non-zero: every partition */
	const char *ns;        /* NULL: any namespace */
	const char *instance_tag; /* NULL: any tag */
} litebus_filter;

typedef struct litebus_row {
	int64_t event_id, partition_key;
	/* subject and payload: NULL, with length 0, both for a NULL and
	 * for an empty one (a reader cannot tell them apart); otherwise
	 * subject_len / payload_len bytes, which may contain NULs. */
	const void *subject;
	size_t subject_len;
	/* event_type: never NULL.  ns, instance_tag: NULL when the event
	 * had none; "" when it had an empty one. */
	const char *event_type, *ns, *instance_tag;
	const void *payload;
	size_t payload_len;
	int64_t occurred_at_ms, committed_at_ms;
} litebus_row;

/*
 * litebus_reader_open - tail `channel` from a cursor: LITEBUS_FROM_START,
 * strictly after after_event_id (> 0), or LITEBUS_FROM_NOW: after the
 * newest event committed on the channel, by any connection, before this
 * call returns - read from the table, not from what has been published so
 * far (the table's newest event_id, or its deletion high-water mark if
 * higher).  f == NULL delivers
 * every row; otherwise only rows matching every set field of *f (copied).
 * The reader attaches to the ring before it reads the table, so nothing
 * committed in between is missed.
 * Returns OK and *out; EINVAL (NULL, after_event_id < -1), ENOCHANNEL,
 * ENOMEM, ECLOSED, EFORKED, EMFILE (out of file descriptors),
 * ECANTOPEN/ESQLITE/EBUSY (its read connection could not open or read).
 * The caller owns *out and frees it with litebus_reader_close().
 *
 * What a reader costs (measured by tests/reliability/test_server_fds.c,
 * x86-64, SQLite 3.40, 1000 readers of one file bus): its own SQLite
 * connection, so
 *  - 3 file descriptors while open: the database file and its -wal, and
 *    the eventfd once litebus_reader_fd() made it (the -shm mapping is
 *    shared by every connection of the process).  The first reader of a
 *    bus also starts its watcher (2 more, once per bus).  When a reader
 *    closes, SQLite keeps its database descriptor open - closing it
 *    would drop the process's POSIX locks on the file - and gives it to
 *    the next connection that opens the file; they are all closed with
 *    the bus.  So the count stays at one per reader at the peak, plus two
 *    per reader open now: open/close cycles do not add up.
 *  - about 130 KiB of memory when caught up on a small table (SQLite's
 *    per-connection lookaside and schema), growing with what its catch-up
 *    reads up to about 2 MiB more: its page cache (SQLite's default
 *    cache_size, 2000 KiB), kept until it closes (1.1 MiB measured after
 *    reading 20000 rows).
 *  - a few milliseconds to open (a connection, its schema, a read).
 * Fan-out to thousands of clients: do not give each client a reader.
 * Open one reader per channel (and filter) in the server and fan its rows
 * out in the application: keep the recent rows in a buffer of your own,
 * and a cursor (event_id) per client into it.  A client that falls
 * behind the buffer gets a reader of its own at its cursor
 * (litebus_reader_open(bus, channel, cursor, ...)) until it has caught
 * up, then back to the shared stream; cap how many such readers run at
 * once and let the other laggards wait their turn.  Readers then number
 * the channels plus the lagging clients, not the clients, and RLIMIT_NOFILE
 * must allow 3 descriptors for each of them on top of the clients'
 * sockets.
 * Thread-safety: any thread.  Blocking: opens a read-only connection.
 */
LITEBUS_API int litebus_reader_open_sized(litebus *bus, int channel,
					  int64_t after_event_id,
					  const litebus_filter *f,
					  size_t f_size, litebus_reader **out);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_reader_open(bus, channel, after_event_id, f, out)              \
	litebus_reader_open_sized((bus), (channel), (after_event_id), (f),     \
				  sizeof(litebus_filter), (out))
#else
int litebus_reader_open(litebus *bus, int channel, int64_t after_event_id,
			const litebus_filter *f, litebus_reader **out);
#endif

/*
 * litebus_reader_next - take the next row of a reader, in event_id order.
 *
 * On LITEBUS_OK, *row describes the row.  Its pointers point into memory
 * owned by `r` and stay valid until the next call on `r`; copy them to
 * keep them longer.  Returns LITEBUS_TIMEOUT if nothing arrived within
 * timeout_ms (0 never waits for a commit but may read up to reader_batch
 * rows from the table; -1 waits forever; a positive value waits up to
 * that many milliseconds) and LITEBUS_CLOSED once the bus has closed and
 * every committed row has been delivered.  Being lapped by the ring is
 * not an error: the missed rows are read from the outbox, and no event is
 * skipped or repeated.  Returns LITEBUS_EXPIRED when rows the reader had
 * not read yet were pruned (retention, litebus_prune()): *row is
 * untouched, litebus_reader_expired() gives the exact range of event_ids
 * lost, the cursor moves to the end of that range, and the next call
 * continues with the oldest retained row.  EXPIRED is returned once per
 * loss, never silently skipped; a reader opened with a cursor below the
 * oldest retained row gets it on its first call.  Errors: EINVAL (NULL,
 * timeout_ms below -1),
 * EDEADLK (timeout_ms != 0 on the writer thread of the reader's bus),
 * EFORKED, ESQLITE, ENOMEM, EBUSY (another connection kept the table
 * locked for busy_timeout_ms, or for timeout_ms if that is longer; with
 * -1 the reader keeps retrying; the cursor is unchanged and the call may
 * be retried).
 * Thread-safety: one thread at a time per reader.
 * Blocking: up to timeout_ms.
 */
LITEBUS_API int litebus_reader_next_sized(litebus_reader *r, litebus_row *row,
					  size_t row_size, int timeout_ms);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_reader_next(r, row, timeout_ms)                                \
	litebus_reader_next_sized((r), (row), sizeof(litebus_row), (timeout_ms))
#else
int litebus_reader_next(litebus_reader *r, litebus_row *row, int timeout_ms);
#endif

/*
 * litebus_reader_cursor - the event_id up to which every matching row has
 * been returned (rows that did not match the filter count as passed).
 * Reopening with this value resumes with no gap and no duplicate.
 * Returns -1 for NULL.  Thread-safety: the reader's thread.  Blocking: never.
 */
LITEBUS_API int64_t litebus_reader_cursor(const litebus_reader *r);

/*
 * litebus_reader_fd - like litebus_sub_fd(): readable while rows (or
 * CLOSED) may be waiting; unreadable only after litebus_reader_next()
 * returned TIMEOUT.  Owned by the reader.  With EPOLLET, call
 * litebus_reader_next() (timeout 0) until it returns LITEBUS_TIMEOUT or
 * CLOSED after each wake-up: OK and EXPIRED do not end the drain.
 * Returns the fd, or EINVAL / EMFILE / ENOMEM.
 * Thread-safety: the reader's thread.  Blocking: never.
 */
LITEBUS_API int litebus_reader_fd(litebus_reader *r);

/*
 * litebus_reader_close - close the read connection and free.  NULL is a
 * no-op.  Thread-safety: the reader's thread.  Blocking: never.
 */
LITEBUS_API void litebus_reader_close(litebus_reader *r);

/*
 * litebus_reader_expired - after litebus_reader_next() returned
 * LITEBUS_EXPIRED: the event_ids first..last (inclusive) that were pruned
 * before the reader read them.  Every id in the range that was committed
 * and matched the filter is lost to this reader; ids in it that were
 * never committed (a job's undone emit) or did not match are included,
 * since the table no longer tells them apart.  Before any EXPIRED, 0 and 0.
 * Returns OK, or EINVAL for NULL.
 * Thread-safety: the reader's thread.  Blocking: never.
 */
LITEBUS_API int litebus_reader_expired(const litebus_reader *r, int64_t *first,
				       int64_t *last);

/* ---------------------------------------------------------------- */
/* The channel head, and pruning                                     */

/*
 * litebus_channel_head - the channel's range as the database holds it
 * now.  *head is the channel's high-water mark: the largest event_id a
 * committed transaction handed out on the channel, by this bus or any
 * other connection to the file - including ids whose rows were deleted
 * since, pruned, or deleted by the job that emitted them (no id up to head
 * is ever handed out again).  *oldest is the oldest event_id whose row is
 * still retained, or 0 when no row is: the rows that may be read have ids
 * in oldest..head (ids a job undid leave gaps).  A channel that never
 * committed anything gives 0 and 0; one whose every row was pruned gives
 * head > 0 and oldest 0.  A consumer's lag is head - its position; a
 * consumer can pass ids that carry no row by acknowledging its cursor
 * (litebus_consumer_cursor()).
 * Returns OK; EINVAL (NULL), ENOCHANNEL, ECLOSED, EFORKED, or
 * ECANTOPEN/EBUSY/ESQLITE (the read failed).
 * Thread-safety: any thread.  Blocking: a short read on a connection of
 * its own (not the writer's; never waits for jobs).
 */
LITEBUS_API int litebus_channel_head(litebus *bus, int channel, int64_t *head,
				     int64_t *oldest);

/*
 * litebus_prune - delete `channel`'s rows with event_id < before_event_id,
 * as retention does (oldest first, prune_batch_rows per transaction,
 * queued behind the application's jobs), but never past a durable
 * consumer's acknowledged position: rows a consumer still needs stay, and
 * the call prunes what it may.  litebus_channel_head() then tells how far
 * it got; litebus_consumer_delete() releases a consumer that holds rows
 * for good.  Readers that had not read a pruned row get LITEBUS_EXPIRED.
 * Rows a job deletes itself are not "pruned": readers do not see them and
 * are not told, so prune with this call, not with DELETE.
 * Returns OK once done; EINVAL (NULL, before_event_id < 1), ENOCHANNEL,
 * ECLOSED, EDEADLK (on the writer thread), EFORKED, or the error of a
 * pruning transaction (ESQLITE, EBUSY, ...): what earlier transactions of
 * the call pruned stays pruned.
 * Thread-safety: any thread but the writer.  Blocking: until done.
 */
LITEBUS_API int litebus_prune(litebus *bus, int channel,
			      int64_t before_event_id);

/* ---------------------------------------------------------------- */
/* Durable consumers                                                 */

/*
 * A durable consumer is a reader whose position lives in the database,
 * under (channel, name), and survives closes, crashes and restarts:
 *
 *   open -> next ... ack ... next ... ack -> close -> open -> ...
 *
 * Delivery is a reader's: every committed row matching the filter, exactly
 * once per open, in event_id order, whatever the lag (LITEBUS_EXPIRED if
 * rows it had not acknowledged were pruned with a hard retention limit).
 * A new open resumes right after the last *durably* acknowledged
 * event_id, so rows delivered but not yet acknowledged durably are
 * delivered again:
 *  - at least once: process the row, then litebus_consumer_ack().  An ack
 *    becomes durable with a later commit of the writer (acks of many
 *    consumers and many rows share one transaction, and a consumer that
 *    acks every row costs no transaction of its own);
 *    litebus_consumer_flush() waits for it.  A crash between the effect
 *    and the durable ack redelivers the row.
 *  - exactly-once effects: write the row's effects in a job and move the
 *    position in the same transaction with litebus_consumer_ack_tx().
 *    Either both commit or neither does.  Example (error handling cut):
 *
 *      struct work { litebus_consumer *c; const litebus_row *row; };
 *
 *      static int apply(litebus_tx *tx, void *arg) {
 *          struct work *w = arg;
 *          sqlite3_stmt *st;
 *          sqlite3_prepare_v2(litebus_tx_db(tx),
 *              "INSERT INTO totals(k, n) VALUES(?1, 1) "
 *              "ON CONFLICT(k) DO UPDATE SET n = n + 1", -1, &st, NULL);
 *          sqlite3_bind_int64(st, 1, w->row->partition_key);
 *          int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1000;
 *          sqlite3_finalize(st);
 *          if (rc == 0)
 *              rc = litebus_consumer_ack_tx(tx, w->c, w->row->event_id);
 *          return rc;        // non-zero rolls back the effect AND the ack
 *      }
 *
 *      litebus_consumer *c;
 *      litebus_consumer_open(bus, LITEBUS_COMPLETION, "totals",
 *                            LITEBUS_FROM_START, NULL, &c);
 *      litebus_row row;
 *      while (litebus_consumer_next(c, &row, -1) == LITEBUS_OK) {
 *          struct work w = { c, &row };
 *          litebus_exec(bus, apply, &w);   // effect + position, atomically
 *      }
 *
 * One live handle per (channel, name) per database file, across every
 * process on the machine: a second open returns LITEBUS_EINUSE until the
 * first is closed or its process has exited.  Consumers hold back
 * retention (see litebus_retention) until deleted.
 */

/* Longest consumer name, in bytes, without the terminating NUL. */
#define LITEBUS_CONSUMER_NAME_MAX 64

/*
 * litebus_consumer_open - open the durable consumer `name` of `channel`.
 * If the name is new on this channel it is created, starting at `start`:
 * LITEBUS_FROM_START, LITEBUS_FROM_NOW (after the newest committed row), or
 * an event_id to start after; otherwise `start` is ignored and delivery
 * resumes right after the last durably acknowledged event_id.  `name` is
 * 1..LITEBUS_CONSUMER_NAME_MAX bytes of UTF-8 without NUL (copied); `f`
 * as for litebus_reader_open() (copied; not stored in the database).
 * Returns OK and *out; EINVAL (NULL, bad name, start < -1), ENOCHANNEL,
 * EINUSE (already open), ENOMEM, ECLOSED, EDEADLK (on the writer thread:
 * creating the position is a write), EFORKED, EMFILE (out of file
 * descriptors), or a storage error.
 * The caller owns *out and frees it with litebus_consumer_close().
 * Thread-safety: any thread but the writer.  Blocking: one write
 * transaction (queued as a job) and opening a read connection.
 */
LITEBUS_API int litebus_consumer_open_sized(litebus *bus, int channel,
					    const char *name, int64_t start,
					    const litebus_filter *f,
					    size_t f_size,
					    litebus_consumer **out);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_consumer_open(bus, channel, name, start, f, out)               \
	litebus_consumer_open_sized((bus), (channel), (name), (start), (f),    \
				    sizeof(litebus_filter), (out))
#else
int litebus_consumer_open(litebus *bus, int channel, const char *name,
			  int64_t start, const litebus_filter *f,
			  litebus_consumer **out);
#endif

/*
 * litebus_consumer_next - as litebus_reader_next(), for a consumer.
 * Thread-safety: one thread at a time per consumer.
 * Blocking: up to timeout_ms.
 */
LITEBUS_API int litebus_consumer_next_sized(litebus_consumer *c,
					    litebus_row *row, size_t row_size,
					    int timeout_ms);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_consumer_next(c, row, timeout_ms)                              \
	litebus_consumer_next_sized((c), (row), sizeof(litebus_row),           \
				    (timeout_ms))
#else
int litebus_consumer_next(litebus_consumer *c, litebus_row *row,
			  int timeout_ms);
#endif

/*
 * litebus_consumer_expired - as litebus_reader_expired().
 */
LITEBUS_API int litebus_consumer_expired(const litebus_consumer *c,
					 int64_t *first, int64_t *last);

/*
 * litebus_consumer_fd - as litebus_reader_fd().
 */
LITEBUS_API int litebus_consumer_fd(litebus_consumer *c);

/*
 * litebus_consumer_ack - acknowledge every row up to and including
 * event_id: the consumer's position moves there, durably once the writer
 * commits it (soon, batched with other work; litebus_consumer_flush()
 * waits for it).  event_id must not be beyond what this handle has passed
 * (litebus_consumer_cursor()); an id at or below the position acknowledged
 * so far changes nothing.
 * If the transaction that was to record it fails, the next ack or flush
 * records it (flush reports such a failure).
 * Returns OK; EINVAL (NULL, event_id < 1 or beyond the cursor), ECLOSED
 * (the bus is closed: the ack is not recorded), EAGAIN (the writer's
 * queue is full: the ack is not recorded; retry), EFORKED.
 * Thread-safety: the consumer's thread.  Blocking: never.
 */
LITEBUS_API int litebus_consumer_ack(litebus_consumer *c, int64_t event_id);

/*
 * litebus_consumer_ack_tx - inside a job: move the consumer's position to
 * event_id in the job's own transaction, so that it commits if and only if
 * the job commits.  Same rules for event_id as litebus_consumer_ack().
 * Returns OK; EINVAL; EMISUSE (outside a job, or the consumer belongs to
 * another bus); or a storage error (the job should then fail).
 * Thread-safety: the writer thread, inside a job, while the consumer's
 * thread waits for that job (litebus_exec) or does not use the consumer.
 * Blocking: SQLite I/O.
 */
LITEBUS_API int litebus_consumer_ack_tx(litebus_tx *tx, litebus_consumer *c,
					int64_t event_id);

/*
 * litebus_consumer_flush - wait until every ack made on this handle so
 * far is durable.
 * Returns OK; ECLOSED; EDEADLK (on the writer thread); EFORKED; or the
 * error of the transaction that failed to record it.
 * Thread-safety: the consumer's thread, not the writer.
 * Blocking: until the writer has committed the position.
 */
LITEBUS_API int litebus_consumer_flush(litebus_consumer *c);

/*
 * litebus_consumer_cursor - as litebus_reader_cursor(): the event_id up to
 * which this handle has passed every matching row (-1 for NULL).
 */
LITEBUS_API int64_t litebus_consumer_cursor(const litebus_consumer *c);

/*
 * litebus_consumer_close - make pending acks durable (as flush, but on the
 * writer thread it only queues them), release the name for the next open,
 * and free.  NULL is a no-op.  Acks that could not be recorded (the bus
 * closed first) are lost: the rows are delivered again after reopening;
 * the name then stays held by this process (other processes get
 * LITEBUS_EINUSE) until an open in this process takes it over or the
 * process exits, so close consumers before their bus.
 * Thread-safety: the consumer's thread.  Blocking: as flush.
 */
LITEBUS_API void litebus_consumer_close(litebus_consumer *c);

/* One durable consumer, as the database holds it. */
typedef struct litebus_consumer_info {
	char name[LITEBUS_CONSUMER_NAME_MAX + 1];
	int channel;
	int64_t position;    /* last durably acknowledged event_id (0: none) */
	int64_t head;	     /* litebus_channel_head() of its channel */
	int64_t lag;	     /* head - position, >= 0 */
	int64_t acked_at_ms; /* when the position last moved, ms since the
				Unix epoch; its creation time before that */
	int open;	     /* non-zero while a handle is open on it (in any
				process) */
} litebus_consumer_info;

/*
 * litebus_consumer_stats_get - this consumer's durable position and lag,
 * read from the database now.  Returns OK, EINVAL, ENOMEM, EFORKED or a
 * storage error.  Thread-safety: the consumer's thread.  Blocking: a short read.
 */
LITEBUS_API int litebus_consumer_stats_get_sized(litebus_consumer *c,
						 litebus_consumer_info *info,
						 size_t info_size);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_consumer_stats_get(c, info)                                    \
	litebus_consumer_stats_get_sized((c), (info),                          \
					 sizeof(litebus_consumer_info))
#else
int litebus_consumer_stats_get(litebus_consumer *c,
			       litebus_consumer_info *info);
#endif

/*
 * litebus_consumer_list - the durable consumers of `channel` (or of every
 * channel of the bus with channel == -1), ordered by channel and name:
 * up to `cap` of them into out[] and the total in *count (so cap == 0
 * with out == NULL counts them).
 * Returns OK; EINVAL (NULL, channel < -1), ENOCHANNEL, ECLOSED, ENOMEM,
 * EFORKED, or a storage error.
 * Thread-safety: any thread.  Blocking: a short read.
 */
LITEBUS_API int litebus_consumer_list_sized(litebus *bus, int channel,
					    litebus_consumer_info *out,
					    size_t cap, size_t info_size,
					    size_t *count);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_consumer_list(bus, channel, out, cap, count)                   \
	litebus_consumer_list_sized((bus), (channel), (out), (cap),            \
				    sizeof(litebus_consumer_info), (count))
#else
int litebus_consumer_list(litebus *bus, int channel, litebus_consumer_info *out,
			  size_t cap, size_t *count);
#endif

/*
 * litebus_consumer_delete - forget the durable consumer `name` of
 * `channel`: its position is removed and it no longer holds back
 * retention.  Returns OK; ENOCHANNEL; EINVAL (no such consumer, or bad
 * name); EINUSE (a handle is open on it); ECLOSED; EDEADLK (on the writer
 * thread); EFORKED; or a storage error.
 * Thread-safety: any thread but the writer.  Blocking: one write
 * transaction.
 */
LITEBUS_API int litebus_consumer_delete(litebus *bus, int channel,
					const char *name);

/* ---------------------------------------------------------------- */
/* Statistics                                                        */

/* Counters since open.  Each is exact by itself; they are read one by one,
 * not as a single snapshot. */
typedef struct litebus_stats {
	uint64_t batches;      /* transactions the writer began */
	uint64_t commits;      /* transactions committed */
	uint64_t jobs;         /* jobs run (committed or not) */
	uint64_t jobs_failed;  /* jobs rolled back or failed with their batch */
	uint64_t events;       /* events committed and published */
	uint64_t busy_retries; /* waits for another connection's lock */
	uint64_t sub_lags;     /* LAGGED returned, all subscribers */
	uint64_t sub_skipped;  /* events skipped by those lags */
	uint64_t reader_lags;  /* times a reader fell back to the table */
	uint64_t checkpoints;  /* background WAL checkpoints run */
	uint64_t queued;       /* jobs waiting for the writer now (a gauge) */
} litebus_stats;

/*
 * litebus_stats_get - copy the bus's counters into *st.
 * Returns OK, or EINVAL for NULL, ECLOSED after the last close, EFORKED.
 * Thread-safety: any thread.  Blocking: never.
 */
LITEBUS_API int litebus_stats_get_sized(litebus *bus, litebus_stats *st,
					size_t st_size);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_stats_get(bus, st)                                             \
	litebus_stats_get_sized((bus), (st), sizeof(litebus_stats))
#else
int litebus_stats_get(litebus *bus, litebus_stats *st);
#endif

/* Per-subscriber counters. */
typedef struct litebus_sub_stats {
	uint64_t received; /* events returned with OK */
	uint64_t lags;     /* LAGGED returned */
	uint64_t skipped;  /* events skipped by all lags */
} litebus_sub_stats;

/*
 * litebus_sub_stats_get - copy this subscriber's counters.  For any
 * subscriber, received + skipped equals the events published after it
 * subscribed and that it has consumed up to now.
 * Returns OK or EINVAL.  Thread-safety: the subscriber's thread.
 * Blocking: never.
 */
LITEBUS_API int litebus_sub_stats_get_sized(const litebus_sub *sub,
					    litebus_sub_stats *st,
					    size_t st_size);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_sub_stats_get(sub, st)                                         \
	litebus_sub_stats_get_sized((sub), (st), sizeof(litebus_sub_stats))
#else
int litebus_sub_stats_get(const litebus_sub *sub, litebus_sub_stats *st);
#endif

typedef struct litebus_reader_stats {
	uint64_t delivered; /* rows returned with OK */
	uint64_t lags;      /* times the ring lapped this reader and it read
			       the missed rows from the table */
	uint64_t queries;   /* catch-up queries run on the outbox */
	/* rows of `delivered` taken from memory, not from the table (see
	 * "Live rows from memory") */
	uint64_t memory_rows;
} litebus_reader_stats;

/*
 * litebus_reader_stats_get - copy this reader's counters.
 * Returns OK or EINVAL.  Thread-safety: the reader's thread.
 * Blocking: never.
 */
LITEBUS_API int litebus_reader_stats_get_sized(const litebus_reader *r,
					       litebus_reader_stats *st,
					       size_t st_size);
#ifndef LITEBUS_BUILDING_LIBRARY_
#define litebus_reader_stats_get(r, st)                                        \
	litebus_reader_stats_get_sized((r), (st), sizeof(litebus_reader_stats))
#else
int litebus_reader_stats_get(const litebus_reader *r,
			     litebus_reader_stats *st);
#endif

/* ---------------------------------------------------------------- */
/* Metrics export                                                    */

#define LITEBUS_METRICS_JSON 0	     /* one JSON object */
#define LITEBUS_METRICS_PROMETHEUS 1 /* Prometheus text exposition format
					0.0.4, for a /metrics endpoint */

/*
 * litebus_metrics_format - the bus's statistics and what the file holds,
 * as text: the counters of litebus_stats; per channel the events
 * published by this bus, head and oldest id (litebus_channel_head), and
 * subscriber laps; histograms of jobs per batch and of commit duration;
 * the -wal file's size; checkpoints run; per durable consumer its
 * position and lag; the schema version.  Every metric is named and
 * described in the output itself (Prometheus # HELP and # TYPE lines;
 * the JSON keys are the same names).  Units: seconds and bytes, as
 * Prometheus's conventions ask; ids and counts are plain numbers.
 * *text is NUL-terminated, *len (if not NULL) its length without the NUL;
 * the caller owns *text and frees it with litebus_free().
 *
 * The metrics (c counter, g gauge, h histogram; labels in braces):
 *   litebus_batches_total, _commits_total, _jobs_total,
 *   _jobs_failed_total, _events_total, _busy_retries_total,
 *   _subscriber_lags_total, _subscriber_skipped_events_total,
 *   _reader_lags_total, _checkpoints_total (c): litebus_stats's fields;
 *   litebus_queued_jobs (g): litebus_stats.queued.
 *   litebus_checkpoints_forced_total, _checkpoints_held_total,
 *   _checkpoint_errors_total (c): RESTART checkpoints of the WAL bound
 *   that succeeded / gave up; checkpoints that failed.
 *   litebus_pruned_rows_total (c): rows retention and litebus_prune
 *   deleted.
 *   litebus_watcher_checks_total, _watcher_wakeups_total,
 *   _watcher_errors_total (c): the watcher of "Commits made elsewhere":
 *   data_version reads, times it found another connection's rows and
 *   woke readers, failed checks (retried).  0 without a watcher.
 *   litebus_batch_jobs (h): jobs per transaction begun (buckets 1, 2, 4,
 *   ..., 1024; _count is litebus_stats.batches).
 *   litebus_commit_duration_seconds (h): how long each COMMIT took,
 *   waits for other connections' locks included (buckets 10 us .. 10 s;
 *   _count is litebus_stats.commits).
 *   litebus_wal_size_bytes (g): the -wal file's size (0 in memory or
 *   when there is none); litebus_schema_version (g).
 *   litebus_channel_published_events_total{channel} (c): events this
 *   bus published; litebus_channel_head_id{channel},
 *   litebus_channel_oldest_id{channel} (g): as litebus_channel_head();
 *   litebus_channel_subscriber_lags_total{channel},
 *   litebus_channel_subscriber_skipped_events_total{channel} (c).
 *   litebus_consumer_position_id{channel,consumer},
 *   litebus_consumer_lag_ids{channel,consumer} (head - position),
 *   litebus_consumer_last_ack_timestamp_seconds{channel,consumer},
 *   litebus_consumer_open{channel,consumer} (g): as
 *   litebus_consumer_list().
 * On a bus that runs no writer (options.read_only) the writer's
 * counters and the histograms are 0; the file's figures are read all
 * the same.
 * Prometheus label values are escaped as the format asks (backslash,
 * double quote, line feed); JSON strings as JSON asks.  Bytes of a name
 * that are not well-formed UTF-8 come out as U+FFFD.  JSON shape: one
 * object; a metric without labels is a number, a labelled one an array
 * of {"channel": ..., ["consumer": ...,] "value": ...}, a histogram
 * {"buckets": [{"le": bound, "count": cumulative}, ...], "count": n,
 * "sum": s}.  Heads, oldest ids and the schema version are one snapshot
 * of the file; the consumers another (each lag is of one moment).
 * Returns OK; EINVAL (NULL, unknown format), ENOMEM, ECLOSED, EFORKED, or
 * a storage error (reading heads and consumers from the file; EIO if the
 * -wal file cannot be examined).
 * Thread-safety: any thread.  Blocking: short reads on a connection of
 * its own (never waits for jobs).
 */
LITEBUS_API int litebus_metrics_format(litebus *bus, int format, char **text,
				       size_t *len);

/* litebus_free - free memory that litebus allocated for the caller
 * (litebus_metrics_format's text).  NULL is a no-op.  Any thread. */
LITEBUS_API void litebus_free(void *p);

#ifdef __cplusplus
}
#endif

#endif /* LITEBUS_H */
