/* SPDX-License-Identifier: MIT */
/*
 * watcher.c - noticing commits that other connections make to the file.
 *
 * A reader learns of this bus's commits from the ring.  Rows that another
 * connection commits - another process's bus, a tool - never reach the
 * ring, so without help a reader would see them only once this bus
 * published something on the channel (reader.c, D5).  One thread per file
 * bus watches for them while anyone follows a channel:
 *
 *   LITEBUS_WATCH_AUTO  inotify on the database's directory reports every
 *                       write to its -wal (SQLite appends each commit
 *                       there), plus a backstop poll every interval_ms;
 *                       without inotify, a poll every min(interval, 5) ms.
 *   LITEBUS_WATCH_POLL  a poll every interval_ms.
 *
 * A "check" reads PRAGMA data_version on the watcher's own read-only
 * connection, which changes whenever any other connection - this bus's
 * writer included - committed since the last read.  If it changed, the
 * check reads the head of every followed channel from one snapshot and
 * raises the channel's file_head (C6, in channel.c) where the table is
 * ahead of what this bus's writer committed; that wakes the channel's
 * readers, which read the rows from the table (reader.c, D8).
 * Measurements behind the choice of AUTO as the default: bench/README.md,
 * scenario "xproc".
 *
 * Threads: watcher_main on its own thread (it alone uses the connection
 * and stores file_head); lb_watcher_follow/unfollow from any thread;
 * start, stop and free from litebus_open / the last litebus_close / the
 * bus's burial.
 *
 * Invariants
 *   X1  Every commit made by another connection while a channel has
 *       followers is followed by a check that reads that channel's head
 *       from a snapshot containing it: the commit writes the -wal (an
 *       inotify event, when inotify works) and changes data_version; the
 *       watcher checks on every such event and at least every poll
 *       interval; and data_version is read before the snapshot of the
 *       heads begins, so a change it shows is in that snapshot.
 *       last_version moves to the value read only once the heads were
 *       read, so a failed check is repeated at the next wake-up.
 *   X2  A channel's followers count is raised (seq_cst) before its reader
 *       reads the table head (reader.c, D1), and the watcher loads it
 *       (seq_cst) after it read data_version.  A commit the reader's own
 *       head read did not see changes data_version after that read; the
 *       watcher's next check then sees both the change and the follower.
 *       While no channel has followers the thread sleeps on its kick
 *       eventfd alone; the first follow kicks it and it checks at once.
 *   X3  file_head is raised only to a head read from a committed snapshot
 *       (C6), and only above the channel's committed_id, loaded once the
 *       writer's commit_seq was seen even after the snapshot (writer.c,
 *       W8): then committed_id covers every row of this bus's writer in
 *       the snapshot, so only other connections' rows raise it.  Rows
 *       this bus commits wake readers through the ring alone; a raise
 *       for them would make a reader's fd readable for ring records it
 *       then skips as covered (D1), with nothing to read.
 *   X4  Checks are at least gap_ns apart: under a stream of -wal writes
 *       the watcher wakes at most once per gap, whatever the commit rate.
 *       The gap starts at LB_WATCH_MIN_GAP_NS and doubles, up to
 *       LB_WATCH_MAX_GAP_NS, after each check that found only this bus's
 *       own commits (data_version moved, commit_seq moved, nothing
 *       raised); a check that raises a file_head resets it.  So a busy
 *       writer with readers attached pays for at most one check per 2 ms,
 *       and rows of another process wait at most that long longer while
 *       this bus is busy writing.
 *   X6  A -wal write is not yet a commit: SQLite writes the frames, then
 *       (after an fsync under synchronous=FULL) publishes the commit in
 *       the -shm, which is memory-mapped and raises no inotify event.  A
 *       check that an inotify event triggered and that finds data_version
 *       unchanged is followed by more checks with growing delays (X6's
 *       constants) until data_version changes or 200 ms have passed, so
 *       a lone commit is seen within about a millisecond of becoming
 *       visible, not at the next -wal write or backstop poll.
 *   X5  Errors (a locked or missing file, out of memory) are counted and
 *       the check is repeated LB_WATCH_RETRY_MS later (and X4 apart);
 *       the thread never exits before stop, and never spins.
 */
/* inotify_init1, eventfd, poll: Linux. */
#define _GNU_SOURCE

#include "watcher.h"

#include "errors.h"
#include "wait.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

/* X4: at most one check per 200 us.  A check with followers costs a
 * data_version read plus one head read per followed channel (a few us
 * each); the gap bounds that at a few percent of one core however fast
 * the -wal is written, and adds at most 0.2 ms to the wake-up delay. */
#define LB_WATCH_MIN_GAP_NS 200000u
#define LB_WATCH_MAX_GAP_NS 2000000u
/* AUTO without inotify polls at least this often (ms). */
#define LB_WATCH_FALLBACK_MS 5u
/* X3: how long a check waits for a COMMIT of this bus's writer to end. */
#define LB_WATCH_SETTLE_NS 2000000u
/* A check that failed or could not settle is repeated after this. */
#define LB_WATCH_RETRY_NS 1000000u
/* X6: after a -wal write with no commit to show for it yet, checks
 * follow at 100 us, 200 us, 400 us ... (at most 10 ms apart) for 200 ms,
 * or until data_version changes. */
#define LB_WATCH_FOLLOW_FIRST_NS 100000u
#define LB_WATCH_FOLLOW_MAX_NS 10000000u
#define LB_WATCH_FOLLOW_FOR_NS 200000000u

struct lb_watcher {
	/* Immutable after start. */
	struct lb_watcher_config cfg;
	pthread_t thread;
	bool started;
	int kick_fd; /* eventfd: follow and stop write it */

	/* X2: channels with followers, summed; the thread sleeps on kick_fd
	 * alone while it is 0. */
	_Atomic uint32_t following;
	_Atomic uint32_t stopping;

	/* The watcher thread only. */
	int inotify_fd; /* -1: none (POLL, or inotify failed) */
	char wal_name[NAME_MAX + 1];
	sqlite3 *db;
	sqlite3_stmt *version;
	sqlite3_stmt *head[LITEBUS_MAX_CHANNELS];
	int64_t last_version;
	bool version_known;
	bool inotify_tried;
	bool retry; /* the last check must be repeated (X1, X5) */
	/* X6: follow-up checks after a -wal write: the next one's delay, and
	 * until when (0: none pending). */
	uint64_t follow_step_ns, follow_until_ns;
	uint64_t last_check_ns;
	uint64_t gap_ns;	  /* X4 */
	uint64_t last_commit_seq; /* commit_seq at the last check (X4) */

	/* Relaxed counters (lb_watcher_stats). */
	_Atomic uint64_t wakeups, checks, head_reads, raises, errors;
	_Atomic int inotify_on;
};

static void
watcher_count(_Atomic uint64_t *c)
{
	/* Relaxed: statistics, ordered by nothing. */
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void
watcher_kick(struct lb_watcher *w)
{
	uint64_t one = 1;
	ssize_t n;

	/* Fails only if the counter would overflow (it is drained on every
	 * wake-up) - then the thread has a wake-up pending anyway. */
	do
		n = write(w->kick_fd, &one, sizeof one);
	while (n < 0 && errno == EINTR);
}

static void
watcher_drain(int fd)
{
	char buf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	/* Non-blocking: read until EAGAIN. */
	do
		n = read(fd, buf, sizeof buf);
	while (n > 0 || (n < 0 && errno == EINTR));
}

/* Read the inotify queue; true if an event concerns the -wal (or the
 * queue overflowed, so any may have). */
static bool
watcher_inotify_read(struct lb_watcher *w)
{
	char buf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	bool hit = false;
	ssize_t n;

	for (;;) {
		n = read(w->inotify_fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EAGAIN: drained */
		for (const char *p = buf;
		     p + sizeof(struct inotify_event) <= buf + n;) {
			struct inotify_event ev;
			const char *name = p + sizeof ev;

			/* Copied out: the buffer is only char-aligned for
			 * the compiler. */
			memcpy(&ev, p, sizeof ev);
			if ((ev.mask & IN_Q_OVERFLOW) != 0 ||
			    (ev.len > 0 &&
			     strncmp(name, w->wal_name, ev.len) == 0 &&
			     strlen(w->wal_name) < ev.len))
				hit = true;
			p += sizeof ev + ev.len;
		}
	}
	return hit;
}

/* AUTO: watch the directory of the -wal (it may not exist yet, and SQLite
 * may delete and recreate it) for writes, creations and renames onto it.
 * Failing leaves inotify_fd at -1: the watcher polls instead. */
static void
watcher_inotify_setup(struct lb_watcher *w)
{
	const char *db_file, *wal, *slash;
	char dir[PATH_MAX];
	size_t len;
	int fd;

	w->inotify_tried = true;
	db_file = sqlite3_db_filename(w->db, "main");
	wal = db_file != NULL ? sqlite3_filename_wal(db_file) : NULL;
	if (wal == NULL || wal[0] != '/')
		return;
	slash = strrchr(wal, '/');
	len = (size_t)(slash - wal);
	if (len == 0)
		len = 1; /* the root directory */
	if (len >= sizeof dir || strlen(slash + 1) >= sizeof w->wal_name)
		return;
	memcpy(dir, wal, len);
	dir[len] = '\0';
	strcpy(w->wal_name, slash + 1);
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return;
	if (inotify_add_watch(fd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) <
	    0) {
		close(fd);
		return;
	}
	w->inotify_fd = fd;
	/* Relaxed: a statistic. */
	atomic_store_explicit(&w->inotify_on, 1, memory_order_relaxed);
}

/* The connection and statements, on first use (X5: retried after a
 * failure). */
static int
watcher_connect(struct lb_watcher *w)
{
	int rc;

	if (w->db != NULL)
		return LITEBUS_OK;
	rc = lb_outbox_open_reader(w->cfg.dbn, &w->db);
	if (rc == LITEBUS_OK)
		rc = lb_outbox_prepare_data_version(w->db, &w->version);
	if (rc != LITEBUS_OK) {
		sqlite3_finalize(w->version);
		w->version = NULL;
		sqlite3_close_v2(w->db);
		w->db = NULL;
		return rc;
	}
	if (w->cfg.mode == LITEBUS_WATCH_AUTO && !w->inotify_tried)
		watcher_inotify_setup(w);
	return LITEBUS_OK;
}

/* X3: wait, briefly, until no COMMIT of this bus's writer is under way
 * (commit_seq even: writer.c, W8); then the committed ids loaded next
 * cover every row of ours in the snapshot just read.  False if a COMMIT
 * is still under way after LB_WATCH_SETTLE_NS (a full disk's retries, a
 * slow fsync): the check is then repeated soon. */
static bool
watcher_writer_settled(const struct lb_watcher *w)
{
	uint64_t deadline = lb_mono_ns() + LB_WATCH_SETTLE_NS;

	/* seq_cst: after the snapshot's reads (see W8 for why an odd value
	 * is seen); the acquire part orders the committed_id loads after
	 * the writer's stores that precede the even step. */
	while ((atomic_load_explicit(w->cfg.commit_seq, memory_order_seq_cst) &
		1) != 0) {
		if (lb_mono_ns() >= deadline)
			return false;
		lb_sleep_ns(20000);
	}
	return true;
}

/* Read the heads of the followed channels from one snapshot and raise
 * their file_head where another connection committed more (X1, X3).
 * *settled is false if the heads could not be told apart from a COMMIT of
 * our own under way: nothing was raised, and the check must be repeated. */
static int
watcher_read_heads(struct lb_watcher *w, bool *settled, bool *raised)
{
	int64_t heads[LITEBUS_MAX_CHANNELS];
	bool want[LITEBUS_MAX_CHANNELS];
	int rc;

	for (int i = 0; i < w->cfg.nchannels; i++)
		/* X2: seq_cst, after the data_version read. */
		want[i] = atomic_load_explicit(&w->cfg.channels[i]->followers,
					       memory_order_seq_cst) > 0;
	rc = lb_outbox_read_begin(w->db);
	for (int i = 0; rc == LITEBUS_OK && i < w->cfg.nchannels; i++) {
		if (!want[i])
			continue;
		if (w->head[i] == NULL)
			rc = lb_outbox_prepare_head(
			    w->db, w->cfg.channels[i]->name, &w->head[i]);
		if (rc == LITEBUS_OK)
			rc = lb_outbox_step_int(w->db, w->head[i], &heads[i],
						"watching for commits");
	}
	if (rc == LITEBUS_OK)
		rc = lb_outbox_read_end(w->db);
	if (!sqlite3_get_autocommit(w->db))
		(void)sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
	if (rc != LITEBUS_OK)
		return rc;
	*settled = watcher_writer_settled(w);
	if (!*settled)
		return LITEBUS_OK;
	for (int i = 0; i < w->cfg.nchannels; i++) {
		struct lb_channel *ch = w->cfg.channels[i];

		/* X3: this bus's own rows come through the ring. */
		if (want[i] && heads[i] > lb_channel_committed_id(ch) &&
		    lb_channel_raise_file_head(ch, heads[i])) {
			watcher_count(&w->raises);
			*raised = true;
		}
	}
	return LITEBUS_OK;
}

/* Returns true if data_version had moved (or the check failed: it is
 * repeated anyway), false if nothing new is visible yet (X6). */
static bool
watcher_check(struct lb_watcher *w)
{
	bool settled = true, raised = false;
	uint64_t seq;
	int64_t version;
	int rc;

	w->last_check_ns = lb_mono_ns();
	watcher_count(&w->checks);
	rc = watcher_connect(w);
	if (rc == LITEBUS_OK)
		rc = lb_outbox_step_int(w->db, w->version, &version,
					"reading data_version");
	if (rc == LITEBUS_OK && w->version_known && version == w->last_version)
		return false;	/* nobody else committed (yet: X6) */
	w->follow_until_ns = 0; /* X6: it became visible */
	if (rc == LITEBUS_OK) {
		watcher_count(&w->head_reads);
		rc = watcher_read_heads(w, &settled, &raised);
	}
	if (rc != LITEBUS_OK) {
		/* X5: the thread's error text is of no use to anyone. */
		watcher_count(&w->errors);
		w->retry = true;
		return true;
	}
	w->retry = !settled;
	if (!settled)
		return true; /* X1: last_version stays; checked again soon */
	w->last_version = version; /* X1: only once the heads were read */
	w->version_known = true;
	/* X4.  Relaxed: a hint for pacing; the ordering that matters was
	 * had in watcher_writer_settled(). */
	seq = atomic_load_explicit(w->cfg.commit_seq, memory_order_relaxed);
	if (raised)
		w->gap_ns = LB_WATCH_MIN_GAP_NS;
	else if (seq != w->last_commit_seq && w->gap_ns < LB_WATCH_MAX_GAP_NS)
		w->gap_ns *= 2;
	w->last_commit_seq = seq;
	return true;
}

/* How long to sleep in ppoll(), in ns: UINT64_MAX (no timeout) without
 * followers. */
static uint64_t
watcher_timeout_ns(const struct lb_watcher *w, bool following)
{
	uint64_t ns = (uint64_t)w->cfg.interval_ms * 1000000u;

	if (!following)
		return UINT64_MAX;
	if (w->cfg.mode == LITEBUS_WATCH_AUTO && w->inotify_fd < 0 &&
	    w->inotify_tried && ns > LB_WATCH_FALLBACK_MS * 1000000ull)
		ns = LB_WATCH_FALLBACK_MS * 1000000ull;
	if (w->retry && ns > LB_WATCH_RETRY_NS)
		ns = LB_WATCH_RETRY_NS;
	if (w->follow_until_ns != 0 && ns > w->follow_step_ns)
		ns = w->follow_step_ns;
	return ns;
}

/* X6: a check found data_version where it was: if an inotify event led to
 * it, or follow-ups are under way, schedule the next one. */
static void
watcher_follow_up(struct lb_watcher *w, bool from_inotify, uint64_t now)
{
	if (w->follow_until_ns != 0 && now >= w->follow_until_ns)
		w->follow_until_ns = 0;
	if (from_inotify && w->follow_until_ns == 0 && w->version_known) {
		/* A fresh write: start over. */
		w->follow_step_ns = LB_WATCH_FOLLOW_FIRST_NS;
		w->follow_until_ns = now + LB_WATCH_FOLLOW_FOR_NS;
	} else if (w->follow_until_ns != 0 &&
		   w->follow_step_ns < LB_WATCH_FOLLOW_MAX_NS) {
		w->follow_step_ns *= 2;
	}
}

static void *
watcher_main(void *arg)
{
	struct lb_watcher *w = arg;

	/* Relaxed: the flag carries no data; stop also kicks. */
	while (atomic_load_explicit(&w->stopping, memory_order_relaxed) == 0) {
		bool following = atomic_load_explicit(&w->following,
						      memory_order_seq_cst) > 0;
		struct pollfd p[2] = {
		    {.fd = w->kick_fd, .events = POLLIN},
		    {.fd = following ? w->inotify_fd : -1, .events = POLLIN},
		};
		uint64_t tmo = watcher_timeout_ns(w, following);
		struct timespec ts = {.tv_sec = (time_t)(tmo / 1000000000u),
				      .tv_nsec = (long)(tmo % 1000000000u)};
		bool due, wal_written = false;
		int n;

		n = ppoll(p, 2, tmo == UINT64_MAX ? NULL : &ts, NULL);
		if (n < 0) {
			/* EINTR, or ENOMEM: sleep one interval, never spin
			 * (X5). */
			if (errno != EINTR)
				lb_sleep_ns((uint64_t)w->cfg.interval_ms *
					    1000000u);
			continue;
		}
		due = n == 0; /* the poll interval passed */
		if ((p[0].revents & POLLIN) != 0) {
			watcher_drain(w->kick_fd);
			due = true; /* a new follower: check at once (X2) */
		}
		if ((p[1].revents & POLLIN) != 0 && watcher_inotify_read(w))
			due = wal_written = true;
		if (!due || atomic_load_explicit(&w->following,
						 memory_order_seq_cst) == 0)
			continue;
		watcher_count(&w->wakeups);
		/* X4 */
		{
			uint64_t since = lb_mono_ns() - w->last_check_ns;

			if (since < w->gap_ns)
				lb_sleep_ns(w->gap_ns - since);
		}
		if (!watcher_check(w))
			watcher_follow_up(w, wal_written, lb_mono_ns());
	}
	return NULL;
}

int
lb_watcher_start(const struct lb_watcher_config *cfg, struct lb_watcher **out)
{
	struct lb_watcher *w;
	int err;

	*out = NULL;
	w = calloc(1, sizeof *w);
	if (w == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: out of memory");
	w->cfg = *cfg;
	w->inotify_fd = -1;
	w->gap_ns = LB_WATCH_MIN_GAP_NS;
	atomic_init(&w->following, 0);
	atomic_init(&w->stopping, 0);
	w->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->kick_fd < 0) {
		err = errno;
		free(w);
		return lb_err_set(lb_status_from_errno(err, LITEBUS_ECANTOPEN),
				  "litebus_open: the watcher's eventfd: %s",
				  strerror(err));
	}
	err = pthread_create(&w->thread, NULL, watcher_main, w);
	if (err != 0) {
		close(w->kick_fd);
		free(w);
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: starting the watcher thread: "
				  "%s",
				  strerror(err));
	}
	w->started = true;
	*out = w;
	return LITEBUS_OK;
}

void
lb_watcher_stop(struct lb_watcher *w)
{
	if (w == NULL || !w->started)
		return;
	atomic_store_explicit(&w->stopping, 1, memory_order_relaxed);
	watcher_kick(w);
	/* Joinable and not this thread: cannot fail. */
	(void)pthread_join(w->thread, NULL);
	w->started = false;
	/* The thread is gone: its connection can be closed here. */
	for (int i = 0; i < LITEBUS_MAX_CHANNELS; i++)
		sqlite3_finalize(w->head[i]);
	memset(w->head, 0, sizeof w->head);
	sqlite3_finalize(w->version);
	w->version = NULL;
	sqlite3_close_v2(w->db);
	w->db = NULL;
	if (w->inotify_fd >= 0)
		close(w->inotify_fd);
	w->inotify_fd = -1;
}

void
lb_watcher_free(struct lb_watcher *w)
{
	if (w == NULL)
		return;
	lb_watcher_stop(w);
	close(w->kick_fd);
	free(w);
}

void
lb_watcher_follow(struct lb_watcher *w, struct lb_channel *ch)
{
	/* X2: seq_cst, before the follower reads the table's head. */
	atomic_fetch_add_explicit(&ch->followers, 1, memory_order_seq_cst);
	if (w != NULL && atomic_fetch_add_explicit(&w->following, 1,
						   memory_order_seq_cst) == 0)
		watcher_kick(w);
}

void
lb_watcher_unfollow(struct lb_watcher *w, struct lb_channel *ch)
{
	/* Relaxed: a follower fewer only makes the watcher do less. */
	atomic_fetch_sub_explicit(&ch->followers, 1, memory_order_relaxed);
	if (w != NULL)
		atomic_fetch_sub_explicit(&w->following, 1,
					  memory_order_relaxed);
}

void
lb_watcher_stats_get(const struct lb_watcher *w, struct lb_watcher_stats *st)
{
	memset(st, 0, sizeof *st);
	if (w == NULL)
		return;
	st->wakeups = atomic_load_explicit(&w->wakeups, memory_order_relaxed);
	st->checks = atomic_load_explicit(&w->checks, memory_order_relaxed);
	st->head_reads =
	    atomic_load_explicit(&w->head_reads, memory_order_relaxed);
	st->raises = atomic_load_explicit(&w->raises, memory_order_relaxed);
	st->errors = atomic_load_explicit(&w->errors, memory_order_relaxed);
	st->inotify =
	    atomic_load_explicit(&w->inotify_on, memory_order_relaxed);
}
