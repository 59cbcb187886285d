/* SPDX-License-Identifier: MIT */
/*
 * test_server_fds.c - what a server author relies on about descriptors
 * (issue 13, item 6): an edge-triggered epoll loop that drains each
 * reader and subscriber until LITEBUS_TIMEOUT is woken again by the next
 * commit; running out of descriptors is LITEBUS_EMFILE from every call
 * that opens one; and what a reader costs in descriptors and memory, the
 * figures litebus.h gives under litebus_reader_open().
 */
#define _GNU_SOURCE /* RLIMIT_NOFILE with getrlimit, in a test */
#include "fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

FX_TSAN_ALLOW_FORK();

/* ------------------------------------------------------------------ */
/* EPOLLET                                                             */

/* One edge-triggered epoll set watching one fd. */
static int
epoll_et(int fd)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	assert_true(ep >= 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	return ep;
}

static bool
epoll_woken(int ep, int wait_ms)
{
	struct epoll_event ev;
	int n = epoll_wait(ep, &ev, 1, wait_ms);

	assert_true(n >= 0);
	return n == 1;
}

/* Reads a reader with timeout 0 until TIMEOUT; returns the rows read. */
static int
drain_reader(litebus_reader *r, int64_t *last)
{
	litebus_row row;
	int rc, n = 0;

	while ((rc = litebus_reader_next(r, &row, 0)) == LITEBUS_OK) {
		assert_true(row.event_id > *last);
		*last = row.event_id;
		n++;
	}
	assert_int_equal(rc, LITEBUS_TIMEOUT);
	return n;
}

/* litebus_sub_fd(), which litebus_reader_fd() is like: "With EPOLLET,
 * call litebus_recv() until it returns LITEBUS_TIMEOUT (or CLOSED) after
 * each wake-up: the fd turns readable again only after a call found
 * nothing."  Three rounds of commits (more than the 8-slot ring holds,
 * so the reader also reads from the table); each round must wake the
 * edge-triggered loop once it drained the previous one. */
static void
an_edge_triggered_loop_that_drains_a_reader_until_timeout_is_woken_by_each_commit(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_reader *r =
	    fx_reader_open(f->bus, LITEBUS_COMPLETION, LITEBUS_FROM_NOW, NULL);
	int fd = litebus_reader_fd(r), ep;
	int64_t last = 0;

	assert_true(fd >= 0);
	ep = epoll_et(fd);
	/* The fd starts readable: the first wake-up drains nothing. */
	assert_true(epoll_woken(ep, FX_WAIT_MS));
	assert_int_equal(drain_reader(r, &last), 0);

	for (int round = 1; round <= 3; round++) {
		int got = 0;

		commit_batch(f->bus, LITEBUS_COMPLETION, 5 * round, NULL);
		while (got < 5 * round) {
			if (!epoll_woken(ep, FX_WAIT_MS))
				fail_msg("round %d: no edge after %d of %d "
					 "rows",
					 round, got, 5 * round);
			got += drain_reader(r, &last);
		}
		assert_int_equal(got, 5 * round);
		/* Drained: no edge is pending until the next commit. */
		assert_false(epoll_woken(ep, 0));
	}
	assert_int_equal(close(ep), 0);
	litebus_reader_close(r);
}

/* The same sentence, for a subscriber and litebus_recv(). */
static void
an_edge_triggered_loop_that_drains_a_subscriber_until_timeout_is_woken_by_each_commit(
    void **state)
{
	struct bus_fixture *f = *state;
	litebus_sub *sub = NULL;
	litebus_event ev;
	int fd, ep, rc;

	assert_int_equal(litebus_subscribe(f->bus, LITEBUS_COMPLETION, &sub),
			 LITEBUS_OK);
	fd = litebus_sub_fd(sub);
	assert_true(fd >= 0);
	ep = epoll_et(fd);
	assert_true(epoll_woken(ep, FX_WAIT_MS));
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_TIMEOUT);

	for (int round = 1; round <= 3; round++) {
		int got = 0;

		commit_batch(f->bus, LITEBUS_COMPLETION, 3, NULL);
		while (got < 3) {
			if (!epoll_woken(ep, FX_WAIT_MS))
				fail_msg("round %d: no edge after %d of 3",
					 round, got);
			while ((rc = litebus_recv(sub, &ev, 0)) == LITEBUS_OK)
				got++;
			assert_int_equal(rc, LITEBUS_TIMEOUT);
		}
		assert_int_equal(got, 3);
		assert_false(epoll_woken(ep, 0));
	}
	assert_int_equal(close(ep), 0);
	litebus_unsubscribe(sub);
}

/* ------------------------------------------------------------------ */
/* Out of descriptors                                                  */

/* In a child: a failed check prints and exits 1 (cmocka's asserts
 * belong to the parent). */
#define CHILD_CHECK(cond)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr,                                        \
				"child, line %d: %s (last error: %s)\n",       \
				__LINE__, #cond, litebus_last_errmsg());       \
			_exit(1);                                              \
		}                                                              \
	} while (0)

/* Every descriptor the process may still open, filled with /dev/null;
 * returns how many (they are fds[0..n-1]). */
static int
fill_descriptors(int *fds, int cap)
{
	int n = 0, fd;

	while (n < cap && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		fds[n++] = fd;
	CHILD_CHECK(n < cap && errno == EMFILE);
	return n;
}

static void
free_descriptors(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		CHILD_CHECK(close(fds[i]) == 0);
}

static void
emfile_child(const char *dir)
{
	struct rlimit lim = {256, 256};
	char path[300], other[300];
	int fds[256], n;
	litebus *bus = NULL, *bus2 = NULL;
	litebus_reader *r = NULL, *r2 = NULL;
	litebus_consumer *c = NULL, *held = NULL;
	litebus_sub *sub = NULL;
	int64_t head, oldest;

	snprintf(path, sizeof path, "%s/test.db", dir);
	snprintf(other, sizeof other, "%s/other.db", dir);
	CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0);
	CHILD_CHECK(fx_open_at(path, NULL, &bus) == LITEBUS_OK);
	CHILD_CHECK(litebus_reader_open(bus, LITEBUS_COMPLETION,
					LITEBUS_FROM_START, NULL,
					&r) == LITEBUS_OK);
	CHILD_CHECK(litebus_subscribe(bus, LITEBUS_COMPLETION, &sub) ==
		    LITEBUS_OK);
	CHILD_CHECK(litebus_consumer_open(bus, LITEBUS_COMPLETION, "held",
					  LITEBUS_FROM_START, NULL,
					  &held) == LITEBUS_OK);

	n = fill_descriptors(fds, 256);
	CHILD_CHECK(fx_open_at(other, NULL, &bus2) == LITEBUS_EMFILE);
	CHILD_CHECK(bus2 == NULL);
	CHILD_CHECK(litebus_reader_open(bus, LITEBUS_COMPLETION,
					LITEBUS_FROM_START, NULL,
					&r2) == LITEBUS_EMFILE);
	CHILD_CHECK(r2 == NULL);
	CHILD_CHECK(litebus_consumer_open(bus, LITEBUS_COMPLETION, "c",
					  LITEBUS_FROM_START, NULL,
					  &c) == LITEBUS_EMFILE);
	CHILD_CHECK(c == NULL);
	CHILD_CHECK(litebus_sub_fd(sub) == LITEBUS_EMFILE);
	CHILD_CHECK(litebus_reader_fd(r) == LITEBUS_EMFILE);
	CHILD_CHECK(litebus_consumer_fd(held) == LITEBUS_EMFILE);
	CHILD_CHECK(strstr(litebus_last_errmsg(), "eventfd") != NULL);
	CHILD_CHECK(litebus_channel_head(bus, LITEBUS_COMPLETION, &head,
					 &oldest) == LITEBUS_EMFILE);

	/* Nothing was changed: with descriptors free again, all work. */
	free_descriptors(fds, n);
	CHILD_CHECK(litebus_sub_fd(sub) >= 0);
	CHILD_CHECK(litebus_reader_fd(r) >= 0);
	CHILD_CHECK(litebus_consumer_fd(held) >= 0);
	CHILD_CHECK(litebus_consumer_open(bus, LITEBUS_COMPLETION, "c",
					  LITEBUS_FROM_START, NULL,
					  &c) == LITEBUS_OK);
	CHILD_CHECK(litebus_reader_open(bus, LITEBUS_COMPLETION,
					LITEBUS_FROM_START, NULL,
					&r2) == LITEBUS_OK);
	CHILD_CHECK(fx_open_at(other, NULL, &bus2) == LITEBUS_OK);
	CHILD_CHECK(litebus_channel_head(bus, LITEBUS_COMPLETION, &head,
					 &oldest) == LITEBUS_OK);
	litebus_consumer_close(c);
	litebus_consumer_close(held);
	litebus_reader_close(r2);
	litebus_reader_close(r);
	litebus_unsubscribe(sub);
	CHILD_CHECK(litebus_close(bus2) == LITEBUS_OK);
	CHILD_CHECK(litebus_close(bus) == LITEBUS_OK);
	_exit(0);
}

/* litebus.h, "Status codes": "Running out of file descriptors ... is
 * LITEBUS_EMFILE wherever it is the cause, never ECANTOPEN, EIO or
 * ENOMEM ... Nothing was opened or changed then, and the call may be
 * retried once descriptors are free".  In a child whose RLIMIT_NOFILE
 * is lowered to 256 and then used up. */
static void
every_call_that_opens_a_descriptor_reports_emfile_when_none_is_left(
    void **state)
{
	struct bus_fixture *f = *state;
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		emfile_child(f->dir);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ------------------------------------------------------------------ */
/* The cost of a reader                                                */

/* The descriptors a reader can hold: on the database file, its -wal or
 * -shm, and eventfds.  Other threads of the bus (the checkpointer, the
 * watcher) and of the test harness may open other files meanwhile. */
static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char target[512];
	int n = 0;

	CHILD_CHECK(d != NULL);
	while ((e = readdir(d)) != NULL) {
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		len =
		    readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
		if (len < 0)
			continue; /* the directory's own fd, closed meanwhile */
		target[len] = '\0';
		if (strstr(target, "/test.db") != NULL ||
		    strcmp(target, "anon_inode:[eventfd]") == 0)
			n++;
	}
	CHILD_CHECK(closedir(d) == 0);
	return n;
}

/* Resident set size, KiB. */
static long
rss_kib(void)
{
	long pages_total, pages_rss;
	FILE *fp = fopen("/proc/self/statm", "r");

	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%ld %ld", &pages_total, &pages_rss), 2);
	assert_int_equal(fclose(fp), 0);
	return pages_rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Sanitizers change memory and speed: fewer readers, no memory bound. */
#if defined(FX_TSAN) || defined(__SANITIZE_ADDRESS__)
#define COST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COST_SANITIZED 1
#endif
#endif
#ifdef COST_SANITIZED
#define COST_READERS 100
#else
#define COST_READERS 1000
#endif
/* Readers that catch up over a large table, and its size. */
/* The bus's own background connections (the watcher's, opened on its
 * first use; the checkpointer's) may open meanwhile: 2 descriptors
 * each, on top of what the readers hold. */
#define COST_SLACK 4
#define COST_CATCHUP_READERS 20
#ifdef COST_SANITIZED
#define COST_CATCHUP_ROWS 2000
#else
#define COST_CATCHUP_ROWS 20000
#endif

/* Opens n readers from the start, reads each to TIMEOUT, makes its fd. */
static void
open_caught_up(litebus *bus, litebus_reader **r, int n)
{
	litebus_row row;
	int rc;

	for (int i = 0; i < n; i++) {
		CHILD_CHECK(litebus_reader_open(bus, LITEBUS_COMPLETION,
						LITEBUS_FROM_START, NULL,
						&r[i]) == LITEBUS_OK);
		while ((rc = litebus_reader_next(r[i], &row, 0)) == LITEBUS_OK)
			;
		CHILD_CHECK(rc == LITEBUS_TIMEOUT);
		CHILD_CHECK(litebus_reader_fd(r[i]) >= 0);
	}
}

static void
close_all(litebus_reader **r, int n)
{
	for (int i = 0; i < n; i++)
		litebus_reader_close(r[i]);
}

static void
cost_child(const char *dir)
{
	struct rlimit lim;
	char path[300];
	litebus *bus = NULL;
	litebus_reader **r, *first = NULL;
	long rss0, rss1;
	int fds0, fds1;

	snprintf(path, sizeof path, "%s/test.db", dir);
	CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &lim) == 0);
	if (lim.rlim_max != RLIM_INFINITY &&
	    lim.rlim_max < 4 * COST_READERS + 64) {
		printf("reader cost: skipped (RLIMIT_NOFILE hard limit %llu)\n",
		       (unsigned long long)lim.rlim_max);
		fflush(stdout);
		_exit(0);
	}
	lim.rlim_cur = 4 * COST_READERS + 64;
	CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0);
	CHILD_CHECK(fx_open_at(path, NULL, &bus) == LITEBUS_OK);
	commit_events(bus, LITEBUS_COMPLETION, 10, NULL);
	r = calloc(COST_READERS, sizeof *r);
	CHILD_CHECK(r != NULL);
	/* The first reader of a bus also starts its watcher (an inotify fd
	 * and an eventfd, once per bus): opened before the count. */
	CHILD_CHECK(litebus_reader_open(bus, LITEBUS_COMPLETION,
					LITEBUS_FROM_NOW, NULL,
					&first) == LITEBUS_OK);

	fds0 = count_fds();
	rss0 = rss_kib();
	open_caught_up(bus, r, COST_READERS);
	fds1 = count_fds();
	rss1 = rss_kib();
	printf("reader cost: readers=%d fds_per_reader=%.2f "
	       "rss_kib_per_reader=%.1f\n",
	       COST_READERS, (double)(fds1 - fds0) / COST_READERS,
	       (double)(rss1 - rss0) / COST_READERS);
	fflush(stdout);
	CHILD_CHECK(fds1 - fds0 <= 3 * COST_READERS + COST_SLACK);
#ifndef COST_SANITIZED
	CHILD_CHECK(rss1 - rss0 < 200L * COST_READERS);
#endif

	/* Closed readers leave at most their database descriptor, which
	 * the next readers reuse: open/close cycles do not add up. */
	close_all(r, COST_READERS);
	CHILD_CHECK(count_fds() - fds0 <= COST_READERS + COST_SLACK);
	for (int round = 0; round < 2; round++) {
		open_caught_up(bus, r, COST_READERS / 5);
		close_all(r, COST_READERS / 5);
		CHILD_CHECK(count_fds() - fds0 <= COST_READERS + COST_SLACK);
	}

	litebus_reader_close(first);
	free(r);
	CHILD_CHECK(litebus_close(bus) == LITEBUS_OK);
	/* The bus's close closes every descriptor the readers left. */
	CHILD_CHECK(count_fds() < fds0);
	_exit(0);
}

/* A long catch-up fills the reader's page cache, which it keeps: in a
 * process of its own, so that no memory freed before is reused. */
static void
catchup_child(const char *dir)
{
	char path[300];
	litebus *bus = NULL;
	litebus_reader *r[COST_CATCHUP_READERS], *first = NULL;
	long rss0, rss1;

	snprintf(path, sizeof path, "%s/test.db", dir);
	CHILD_CHECK(fx_open_at(path, NULL, &bus) == LITEBUS_OK);
	for (int k = 0; k < COST_CATCHUP_ROWS / 1000; k++)
		commit_batch(bus, LITEBUS_COMPLETION, 1000, NULL);
	CHILD_CHECK(litebus_reader_open(bus, LITEBUS_COMPLETION,
					LITEBUS_FROM_NOW, NULL,
					&first) == LITEBUS_OK);
	rss0 = rss_kib();
	open_caught_up(bus, r, COST_CATCHUP_READERS);
	rss1 = rss_kib();
	printf("reader cost: readers=%d after_catching_up_rows=%d "
	       "rss_kib_per_reader=%.1f\n",
	       COST_CATCHUP_READERS, COST_CATCHUP_ROWS,
	       (double)(rss1 - rss0) / COST_CATCHUP_READERS);
	fflush(stdout);
#ifndef COST_SANITIZED
	CHILD_CHECK(rss1 - rss0 < 2600L * COST_CATCHUP_READERS);
#endif
	close_all(r, COST_CATCHUP_READERS);
	litebus_reader_close(first);
	CHILD_CHECK(litebus_close(bus) == LITEBUS_OK);
	_exit(0);
}

static void
run_child(void (*child)(const char *), const char *dir)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child(dir);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* litebus_reader_open(), "What a reader costs": "3 file descriptors
 * while open", "about 130 KiB of memory when caught up on a small table",
 * and "the count stays at one per reader at the peak, plus two per reader
 * open now: open/close cycles do not add up" - measured by counting
 * /proc/self/fd and the resident set around 1000 readers, in a child
 * (its own descriptor limit). */
static void
a_reader_costs_three_descriptors_and_the_memory_the_header_states(void **state)
{
	struct bus_fixture *f = *state;

	run_child(cost_child, f->dir);
}

/* litebus_reader_open(), "What a reader costs": "growing with what its
 * catch-up reads up to about 2 MiB more: its page cache ... kept until it
 * closes". */
static void
a_reader_that_caught_up_a_long_backlog_keeps_its_page_cache(void **state)
{
	struct bus_fixture *f = *state;

	run_child(catchup_child, f->dir);
}

int
main(void)
{
	/* The catch-up test runs last, after this process's fork handlers
	 * have run (the EMFILE test forks): its child's writer names
	 * temporary files (the statement journals of its big jobs spill),
	 * taking SQLite's VFS1 and then PRNG, the order in which lib/bus.c
	 * F4 now takes them too.  With PRNG before VFS1 there, ThreadSanitizer
	 * reported the inversion in the child. */
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(
		an_edge_triggered_loop_that_drains_a_reader_until_timeout_is_woken_by_each_commit),
	    FX_TEST_TINY(
		an_edge_triggered_loop_that_drains_a_subscriber_until_timeout_is_woken_by_each_commit),
	    FX_TEST_TMPDIR(
		every_call_that_opens_a_descriptor_reports_emfile_when_none_is_left),
	    FX_TEST_TMPDIR(
		a_reader_costs_three_descriptors_and_the_memory_the_header_states),
	    FX_TEST_TMPDIR(
		a_reader_that_caught_up_a_long_backlog_keeps_its_page_cache),
	};

	return cmocka_run_group_tests_name("server_fds", tests, NULL, NULL);
}
