/* SPDX-License-Identifier: MIT */
/*
 * channel.c - channel -> ring; published high-water mark; waiters and
 * wake-ups.  (Names and event types are data: catalog.c.)
 *
 * The writer publishes each committed record into the ring, then, once per
 * batch, wakes the channel's sleepers.  It makes a system call only when
 * somebody actually sleeps (futex) or has armed an eventfd; otherwise a
 * wake-up costs one fence and two loads.
 *
 * Threads: lb_channel_publish/wake/close on the writer thread only; the
 * rest from any thread.
 *
 * Invariants
 *   C1  published_id is stored (release) before the ring record carrying
 *       that id is published.  A thread that has seen ring head >= p
 *       (acquire) then reads a published_id >= the event_id at p.
 *   C2  closed is set (release) after the writer's last publish.  A thread
 *       that reads closed == 1 (acquire) then sees the final head and
 *       published_id: nothing is published afterwards.
 *   C3  No lost wake-up: a sleeper increments `sleepers`, loads wake_word,
 *       then (after a seq_cst fence) checks head; the writer stores head,
 *       fences (seq_cst), then loads `sleepers` and, if non-zero, bumps
 *       wake_word and wakes.  Either the writer sees the sleeper or the
 *       sleeper sees the new head; the futex compares wake_word in the
 *       kernel, so a bump between the check and the sleep is not lost.
 *   C5  committed_id is stored (release) after the COMMIT that made the id
 *       durable returned and before published_id reaches it, and never
 *       decreases: published_id <= committed_id at every moment.  A
 *       reader asking "what is committed now" takes committed_id (or the
 *       table itself), never published_id, which may lag a large batch.
 *   C4  fd waiters.  Once the owner's idle call (lb_channel_fd_arm)
 *       has returned, its eventfd holds a count only if a record at or
 *       after the owner's position was published, or the channel closed:
 *       (a) Every write to a waiter's eventfd happens under fd_lock:
 *           by the writer (channel_wake_fds) or the owner
 *           (lb_channel_fd_arm) in the critical section that clears
 *           `armed` (1 -> 0), and only if head >= w->pos there; or by
 *           close, to every waiter.  So, under fd_lock, armed == 1 means
 *           nothing was written since the owner armed (and drained).
 *       (b) The owner drains (when armed == 0), sets armed and pos, and
 *           re-checks head and closed, all under fd_lock.  A wake-up the
 *           writer decided on earlier has then either written before
 *           the drain, or not cleared `armed` yet and compares head with
 *           the new pos.  The interleaving this rules out: the writer
 *           cleared `armed` for record p; the owner read p, found
 *           nothing more, drained and re-armed; the writer's late write
 *           then left the fd readable with nothing to read, and every
 *           later idle call saw armed == 1 and skipped the drain.  Now
 *           the writer's clear and write are one critical section, and
 *           a writer that gets there after the owner moved on finds
 *           head < pos and writes nothing.
 *       (c) No lost wake-up: the owner raises armed_fds (seq_cst) and
 *           fences before it loads head; the writer stores head, fences
 *           (lb_channel_wake), then loads armed_fds.  Either the owner
 *           sees the new head and signals itself, or the writer sees
 *           armed_fds != 0, takes fd_lock after the owner released it,
 *           and finds head >= pos.  armed_fds stays >= 1 while any
 *           waiter is armed, so the writer skips fd_lock (its fast path)
 *           only when no waiter is.
 *       (d) Clearing `armed` is the decision to write, so the eventfd is
 *           written at most once per arming, plus once at close.
 *   C6  file_head: rows committed to the table that the ring may never
 *       carry (another connection's).  Only the bus's watcher thread
 *       raises it (watcher.c), to an id it read from a committed snapshot
 *       of the table, so every id up to it was committed before the store
 *       (release; readers load it with acquire).  It never decreases.
 *       After raising it the watcher wakes exactly as lb_channel_wake()
 *       does, with file_head in place of the ring's head: a seq_cst fence,
 *       then sleepers and armed_fds.  A sleeper (lb_channel_wait) or an
 *       armed fd (lb_channel_fd_arm) that has taken file_head up to
 *       `seen` into account checks file_head > seen after its own fence,
 *       so C3's and C4 c's arguments hold for it unchanged; the fd is
 *       written under fd_lock (C4 a) when head >= pos or file_head >
 *       seen_file.  wake_word is bumped by the writer and the watcher
 *       both: an atomic add, and each bump only means "look again".
 *   C7  rows: the row cache (rowcache.c) is made at most once and lives
 *       until lb_channel_fini.  The writer puts a record's row into it
 *       (lb_channel_publish_row) before it publishes the record, at the
 *       record's position (RC1); a reader that took record p from the
 *       ring therefore finds the row at p unless the slot was reused
 *       since (RC2, RC3).  A row the writer did not put (too large, or
 *       the cache did not exist when the writer read the batch back) is
 *       a miss: the slot holds an older position.
 */
#include "channel.h"

#include "catalog.h"
#include "role.h"
#include "rowcache.h"
#include "wait.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
lb_channel_init(struct lb_channel *ch, int id, const char *name,
		uint32_t ring_capacity, int64_t published_id)
{
	memset(ch, 0, sizeof *ch);
	ch->id = id;
	snprintf(ch->name, sizeof ch->name, "%s", name);
	ch->event_types = lb_catalog_builtin_types(id);
	if (lb_ring_init(&ch->ring, ring_capacity) != 0)
		return -1;
	atomic_init(&ch->published_id, published_id);
	atomic_init(&ch->committed_id, published_id);
	atomic_init(&ch->file_head, 0);
	atomic_init(&ch->followers, 0);
	atomic_init(&ch->closed, 0);
	atomic_init(&ch->rows, NULL);
	atomic_init(&ch->wake_word, 0);
	atomic_init(&ch->sleepers, 0);
	atomic_init(&ch->armed_fds, 0);
	atomic_init(&ch->published_count, 0);
	atomic_init(&ch->sub_lags, 0);
	atomic_init(&ch->sub_skipped, 0);
	pthread_mutex_init(&ch->fd_lock, NULL);
	ch->fd_waiters = NULL;
	return 0;
}

void
lb_channel_start(struct lb_channel *ch, int64_t id)
{
	/* Relaxed: no other thread can see the channel yet.  The writer
	 * thread is created after this (pthread_create synchronizes), and
	 * every other thread learns of the bus through litebus_open's
	 * return. */
	atomic_store_explicit(&ch->published_id, id, memory_order_relaxed);
	atomic_store_explicit(&ch->committed_id, id, memory_order_relaxed);
}

void
lb_channel_fini(struct lb_channel *ch)
{
	assert(ch->fd_waiters == NULL);
	pthread_mutex_destroy(&ch->fd_lock);
	lb_ring_fini(&ch->ring);
	/* Every reader is closed (they hold the bus), so nobody uses it. */
	lb_rowcache_free(atomic_load_explicit(&ch->rows, memory_order_relaxed));
}

struct lb_rowcache *
lb_channel_enable_rows(struct lb_channel *ch, uint32_t inline_bytes)
{
	struct lb_rowcache *c = lb_channel_rows(ch), *mine, *expected = NULL;

	if (c != NULL)
		return c;
	mine = lb_rowcache_create(ch->ring.capacity < LB_ROWCACHE_MAX_SLOTS
				      ? (uint32_t)ch->ring.capacity
				      : LB_ROWCACHE_MAX_SLOTS,
				  inline_bytes);
	if (mine == NULL)
		return NULL;
	/* C7: release publishes the initialized cache to the writer's and
	 * other readers' acquire loads; acquire on failure takes the
	 * winner's. */
	if (atomic_compare_exchange_strong_explicit(&ch->rows, &expected, mine,
						    memory_order_acq_rel,
						    memory_order_acquire))
		return mine;
	lb_rowcache_free(mine);
	return expected;
}

struct lb_rowcache *
lb_channel_rows(const struct lb_channel *ch)
{
	/* Pairs with the compare and exchange in lb_channel_enable_rows. */
	return atomic_load_explicit(&ch->rows, memory_order_acquire);
}

void
lb_channel_publish_row(struct lb_channel *ch, const struct lb_rec *rec,
		       const uint64_t *img, size_t nwords)
{
	struct lb_rowcache *c;

	LB_ASSERT_ON_WRITER_THREAD();
	/* C7: the row before its record.  Only this thread publishes, so the
	 * record goes to position head + 1. */
	if (img != NULL && (c = lb_channel_rows(ch)) != NULL)
		lb_rowcache_put(c, lb_ring_head(&ch->ring) + 1, img, nwords);
	lb_channel_publish(ch, rec);
}

void
lb_channel_publish(struct lb_channel *ch, const struct lb_rec *rec)
{
	LB_ASSERT_ON_WRITER_THREAD();

	/* C1.  Pairs with the acquire in lb_channel_published_id() and, via
	 * the release store of head that follows, with lb_ring_head(). */
	atomic_store_explicit(&ch->published_id, rec->event_id,
			      memory_order_release);
	lb_ring_publish(&ch->ring, rec);
	/* A count for metrics; one writer, so load + store (stats.h). */
	atomic_store_explicit(
	    &ch->published_count,
	    atomic_load_explicit(&ch->published_count, memory_order_relaxed) +
		1,
	    memory_order_relaxed);
}

void
lb_channel_count_lap(struct lb_channel *ch, uint64_t skipped)
{
	/* Relaxed: counts for metrics that order nothing (stats.h). */
	atomic_fetch_add_explicit(&ch->sub_lags, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ch->sub_skipped, skipped,
				  memory_order_relaxed);
}

uint64_t
lb_channel_published_count(const struct lb_channel *ch)
{
	/* Relaxed: a count; see lb_channel_publish. */
	return atomic_load_explicit(&ch->published_count, memory_order_relaxed);
}

uint64_t
lb_channel_sub_lags(const struct lb_channel *ch)
{
	return atomic_load_explicit(&ch->sub_lags, memory_order_relaxed);
}

uint64_t
lb_channel_sub_skipped(const struct lb_channel *ch)
{
	return atomic_load_explicit(&ch->sub_skipped, memory_order_relaxed);
}

void
lb_channel_set_committed(struct lb_channel *ch, int64_t id)
{
	LB_ASSERT_ON_WRITER_THREAD();

	/* C5.  Relaxed load: only the writer stores it.  Release pairs with
	 * the acquire in lb_channel_committed_id(). */
	if (atomic_load_explicit(&ch->committed_id, memory_order_relaxed) < id)
		atomic_store_explicit(&ch->committed_id, id,
				      memory_order_release);
}

int64_t
lb_channel_committed_id(const struct lb_channel *ch)
{
	/* Pairs with the release store in lb_channel_set_committed(). */
	return atomic_load_explicit(&ch->committed_id, memory_order_acquire);
}

int64_t
lb_channel_published_id(const struct lb_channel *ch)
{
	/* Pairs with the release store in lb_channel_publish(). */
	return atomic_load_explicit(&ch->published_id, memory_order_acquire);
}

bool
lb_channel_is_closed(const struct lb_channel *ch)
{
	/* C2.  Pairs with the release store in lb_channel_close(). */
	return atomic_load_explicit(&ch->closed, memory_order_acquire) != 0;
}

static void
channel_eventfd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	/* An eventfd write fails only if the counter would overflow, which a
	 * count of at most one per arming plus one at close (C4 d) never
	 * does; EINTR is retried. */
	do
		n = write(fd, &one, sizeof one);
	while (n < 0 && errno == EINTR);
	assert(n == (ssize_t)sizeof one);
	(void)n;
}

static void
channel_eventfd_drain(int fd)
{
	uint64_t v;
	ssize_t n;

	/* Non-blocking: EAGAIN means the count was already 0. */
	do
		n = read(fd, &v, sizeof v);
	while (n < 0 && errno == EINTR);
	assert(n == (ssize_t)sizeof v || (n < 0 && errno == EAGAIN));
	(void)n;
}

/* Under fd_lock, with w->armed == 1: disarm and write (C4 a).  Relaxed:
 * every change of `armed` happens under fd_lock, which orders them; the
 * count is a hint for the writer's fast path, ordered by the fences of
 * C4 c, and only the increment needs them. */
static void
channel_fd_fire(struct lb_channel *ch, struct lb_fd_waiter *w)
{
	atomic_store_explicit(&w->armed, 0, memory_order_relaxed);
	atomic_fetch_sub_explicit(&ch->armed_fds, 1, memory_order_relaxed);
	channel_eventfd_signal(w->fd);
}

/* Writer, watcher (C6) or close.  Write to every armed waiter whose
 * position the ring has reached or whose seen_file file_head has passed,
 * or to all if `all` (C4 a). */
static void
channel_wake_fds(struct lb_channel *ch, bool all)
{
	uint64_t head;
	int64_t file_head;

	pthread_mutex_lock(&ch->fd_lock);
	/* Loaded under the lock, after the head stores of this batch (our
	 * own), so a waiter that re-armed for a later position while we
	 * were on the way here is compared with its new pos (C4 b). */
	head = lb_ring_head(&ch->ring);
	file_head = lb_channel_file_head(ch);
	for (struct lb_fd_waiter *w = ch->fd_waiters; w != NULL; w = w->next) {
		bool armed =
		    atomic_load_explicit(&w->armed, memory_order_relaxed) == 1;

		if (armed &&
		    (all || head >= w->pos || file_head > w->seen_file))
			channel_fd_fire(ch, w);
		else if (all)
			channel_eventfd_signal(w->fd);
	}
	pthread_mutex_unlock(&ch->fd_lock);
}

void
lb_channel_wake(struct lb_channel *ch)
{
	LB_ASSERT_ON_WRITER_THREAD();

	/* C3/C4: orders the head stores of this batch before the loads of
	 * sleepers and armed_fds.  Pairs with the fences in
	 * lb_channel_wait() and lb_channel_fd_arm(). */
	atomic_thread_fence(memory_order_seq_cst);
	/* Relaxed: the fence above orders them (C3). */
	if (atomic_load_explicit(&ch->sleepers, memory_order_relaxed) != 0) {
		/* Release pairs with the acquire load of wake_word in
		 * lb_channel_wait(). */
		atomic_fetch_add_explicit(&ch->wake_word, 1,
					  memory_order_release);
		lb_futex_wake_all(&ch->wake_word);
	}
	if (atomic_load_explicit(&ch->armed_fds, memory_order_relaxed) != 0)
		channel_wake_fds(ch, false);
}

bool
lb_channel_raise_file_head(struct lb_channel *ch, int64_t id)
{
	/* Relaxed load: the watcher is the only thread that stores it. */
	if (atomic_load_explicit(&ch->file_head, memory_order_relaxed) >= id)
		return false;
	/* C6.  Release pairs with the acquire in lb_channel_file_head(). */
	atomic_store_explicit(&ch->file_head, id, memory_order_release);
	/* C6 = C3/C4 c with file_head for head: the fence orders the store
	 * above before the loads of sleepers and armed_fds, and pairs with
	 * the fences in lb_channel_wait() and lb_channel_fd_arm(). */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&ch->sleepers, memory_order_relaxed) != 0) {
		atomic_fetch_add_explicit(&ch->wake_word, 1,
					  memory_order_release);
		lb_futex_wake_all(&ch->wake_word);
	}
	if (atomic_load_explicit(&ch->armed_fds, memory_order_relaxed) != 0)
		channel_wake_fds(ch, false);
	return true;
}

int64_t
lb_channel_file_head(const struct lb_channel *ch)
{
	/* C6: pairs with the release store in lb_channel_raise_file_head(). */
	return atomic_load_explicit(&ch->file_head, memory_order_acquire);
}

void
lb_channel_close(struct lb_channel *ch)
{
	LB_ASSERT_ON_WRITER_THREAD();

	/* C2.  Pairs with the acquire in lb_channel_is_closed(). */
	atomic_store_explicit(&ch->closed, 1, memory_order_release);
	/* C3 as in lb_channel_wake(), with `closed` in place of head: the
	 * fence pairs with the one in lb_channel_wait().  Every sleeper is
	 * woken unconditionally (close happens once), and the release bump
	 * pairs with the acquire load of wake_word there. */
	atomic_thread_fence(memory_order_seq_cst);
	atomic_fetch_add_explicit(&ch->wake_word, 1, memory_order_release);
	lb_futex_wake_all(&ch->wake_word);
	channel_wake_fds(ch, true);
}

void
lb_channel_wait(struct lb_channel *ch, uint64_t pos, int64_t seen_file,
		uint64_t deadline_ns)
{
	uint32_t word;

	/* C3.  seq_cst RMW and fence pair with the fence in
	 * lb_channel_wake(). */
	atomic_fetch_add_explicit(&ch->sleepers, 1, memory_order_seq_cst);
	/* Acquire pairs with the release bump in lb_channel_wake(): if we
	 * read the bumped word, the head check below sees the new head. */
	word = atomic_load_explicit(&ch->wake_word, memory_order_acquire);
	atomic_thread_fence(memory_order_seq_cst);
	if (lb_ring_head(&ch->ring) < pos &&
	    lb_channel_file_head(ch) <= seen_file && !lb_channel_is_closed(ch))
		lb_futex_wait(&ch->wake_word, word, deadline_ns);
	/* Relaxed: a stale count only costs the writer one needless wake
	 * system call; it orders nothing. */
	atomic_fetch_sub_explicit(&ch->sleepers, 1, memory_order_relaxed);
}

void
lb_channel_fd_register(struct lb_channel *ch, struct lb_fd_waiter *w)
{
	pthread_mutex_lock(&ch->fd_lock);
	w->prev = NULL;
	w->next = ch->fd_waiters;
	if (ch->fd_waiters != NULL)
		ch->fd_waiters->prev = w;
	ch->fd_waiters = w;
	w->registered = true;
	pthread_mutex_unlock(&ch->fd_lock);
}

void
lb_channel_fd_unregister(struct lb_channel *ch, struct lb_fd_waiter *w)
{
	if (!w->registered)
		return;
	pthread_mutex_lock(&ch->fd_lock);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		ch->fd_waiters = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	/* Relaxed: `armed` changes only under fd_lock (C4 a). */
	if (atomic_load_explicit(&w->armed, memory_order_relaxed) == 1) {
		atomic_store_explicit(&w->armed, 0, memory_order_relaxed);
		atomic_fetch_sub_explicit(&ch->armed_fds, 1,
					  memory_order_relaxed);
	}
	w->registered = false;
	pthread_mutex_unlock(&ch->fd_lock);
}

void
lb_channel_fd_arm(struct lb_channel *ch, struct lb_fd_waiter *w, uint64_t pos,
		  int64_t seen_file)
{
	pthread_mutex_lock(&ch->fd_lock);
	if (atomic_load_explicit(&w->armed, memory_order_relaxed) == 0) {
		/* C4 b: nothing was written for the old arming after this
		 * drain, since writes happen under this lock. */
		channel_eventfd_drain(w->fd);
		/* C4 c: the count goes up before the flag, so whoever clears
		 * the flag never takes it below 0.  seq_cst, with the fence
		 * below, pairs with the fence in lb_channel_wake(). */
		atomic_fetch_add_explicit(&ch->armed_fds, 1,
					  memory_order_seq_cst);
		/* Relaxed: read only under fd_lock (C4 a). */
		atomic_store_explicit(&w->armed, 1, memory_order_relaxed);
	}
	/* Still armed from an earlier call: nothing was written since (C4 a),
	 * but the owner may have read on since; the writer must compare
	 * with the new position. */
	w->pos = pos;
	w->seen_file = seen_file;
	/* C4 c: orders the increment above (or the one of the arming still
	 * in force) before the head load.  Pairs with the fence in
	 * lb_channel_wake(). */
	atomic_thread_fence(memory_order_seq_cst);
	if (lb_ring_head(&ch->ring) >= pos ||
	    lb_channel_file_head(ch) > seen_file || lb_channel_is_closed(ch))
		channel_fd_fire(ch, w);
	pthread_mutex_unlock(&ch->fd_lock);
}
