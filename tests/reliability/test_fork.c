/* SPDX-License-Identifier: MIT */
/*
 * test_fork.c - what survives fork() (litebus.h, "fork()"; bus.c, F1-F3).
 *
 * Before issue 7 the process-wide registry knew nothing of fork(): a child
 * that opened a file its parent had open got the parent's handle back, and
 * litebus_exec on it blocked forever, since no writer thread exists in the
 * child.  Prefork servers and daemon(3) do exactly this.
 *
 * Every child here calls alarm(10), so a hang kills it with SIGALRM, and
 * exits with _exit(): 0 when every check passed, otherwise the number of
 * the first check that failed (its reason goes to stderr).  The parent
 * reports that number; cmocka assertions are used in the parent only.
 *
 * A child inherits the memory of every lock held at the fork by a thread
 * that does not exist in the child: litebus's own (which the atfork
 * handlers take care of, bus.c F3), but also SQLite's global mutexes and
 * the sanitizers' allocators (ASan's does not lock itself across fork()).
 * So the parent forks only once its other threads are asleep (quiesce()),
 * its buses use inline checkpoints (no background checkpointer), and the
 * thread that churns the registry lock across forks allocates nothing.
 */
#define _GNU_SOURCE /* syscall(SYS_gettid) */
#include "fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ThreadSanitizer: children here start litebus threads after fork(),
 * which it supports once told so. */
FX_TSAN_ALLOW_FORK();

/* ------------------------------------------------------------------ */
/* Children                                                            */

/* In a child: on failure, say why and exit with `code` (>= 10). */
#define CHILD_CHECK(cond, code)                                                \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(                                               \
			    stderr,                                            \
			    "child check %d failed: %s (last error: %s)\n",    \
			    (code), #cond, litebus_last_errmsg());             \
			_exit(code);                                           \
		}                                                              \
	} while (0)

/* The state letter of thread `tid` of this process, or 0. */
static char
thread_state(long tid)
{
	char p[64], buf[256], *end;
	FILE *fp;
	char st = 0;

	snprintf(p, sizeof p, "/proc/self/task/%ld/stat", tid);
	fp = fopen(p, "r");
	if (fp == NULL)
		return 0;
	if (fgets(buf, sizeof buf, fp) != NULL) {
		end = strrchr(buf, ')');
		if (end != NULL && end[1] == ' ')
			st = end[2];
	}
	fclose(fp);
	return st;
}

/* Wait (up to FX_WAIT_MS) until every other thread of this process is
 * asleep, so none is inside malloc or SQLite at the fork that follows. */
static void
quiesce(void)
{
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
	long self = (long)syscall(SYS_gettid);
	bool quiet = false;

	while (!quiet && fx_now_ms() < deadline) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;

		if (d == NULL)
			return;
		quiet = true;
		while (quiet && (e = readdir(d)) != NULL) {
			long tid = strtol(e->d_name, NULL, 10);

			if (tid > 0 && tid != self && thread_state(tid) != 'S')
				quiet = false;
		}
		closedir(d);
		if (!quiet)
			sched_yield();
	}
}

/* Fork once the other threads are asleep; the child runs fn(arg) under
 * alarm(10) and exits with its result. */
static pid_t
fork_child(int (*fn)(void *), void *arg)
{
	pid_t pid;

	quiesce();
	pid = fork();

	if (pid == 0) {
		alarm(10); /* a hang ends in SIGALRM, never hangs the test */
		_exit(fn(arg));
	}
	return pid;
}

/* A child's wait status as text, or NULL if it exited with 0. */
static const char *
child_failure(int status)
{
	static char why[160];

	if (WIFSIGNALED(status)) {
		snprintf(why, sizeof why, "the child died of signal %d%s",
			 WTERMSIG(status),
			 WTERMSIG(status) == SIGALRM
			     ? " (SIGALRM: it hung for 10 s)"
			     : "");
		return why;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(why, sizeof why,
			 "the child failed check %d (its stderr says why)",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return why;
	}
	return NULL;
}

static void
assert_child_ok(pid_t pid)
{
	int status;
	const char *why;

	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	why = child_failure(status);
	if (why != NULL)
		fail_msg("%s", why);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* A bus on `path` as the fixture's: 8-slot rings, inline checkpoints. */
static int
open_at(const char *path, litebus **out)
{
	litebus_options o;

	fx_options_tiny(&o);
	o.checkpoint_mode = LITEBUS_CHECKPOINT_INLINE;
	return fx_open_at(path, &o, out);
}

/* The fixture's bus, reopened with inline checkpoints. */
static int
fork_fixture(void **state)
{
	struct bus_fixture *f;

	tmpdir_setup(state);
	f = *state;
	f->opts.ring_capacity = 8;
	f->opts.checkpoint_mode = LITEBUS_CHECKPOINT_INLINE;
	fx_open(f);
	return 0;
}

/* A job commits and a subscriber sees its event: 0, or a check number. */
static int
bus_works(litebus *bus, int code)
{
	litebus_sub *sub;
	litebus_event ev;
	int64_t id = 0;

	if (litebus_subscribe(bus, LITEBUS_COMPLETION, &sub) != LITEBUS_OK)
		return code;
	if (litebus_exec(bus, fx_emit_one_job, &id) != 0 ||
	    litebus_recv(sub, &ev, FX_WAIT_MS) != LITEBUS_OK ||
	    ev.event_id != id) {
		litebus_unsubscribe(sub);
		return code + 1;
	}
	litebus_unsubscribe(sub);
	return 0;
}

static void
assert_bus_works(litebus *bus)
{
	int rc = bus_works(bus, 1);

	if (rc != 0)
		fail_msg("the bus does not work (%d): %s", rc,
			 litebus_last_errmsg());
}

/* What a file and its companions look like on disk. */
struct file_state {
	bool exists[4];
	struct stat st[4];
};

static const char *const suffixes[4] = {"", "-wal", "-shm", "-journal"};

static void
file_state_read(const char *path, struct file_state *s)
{
	char p[600];

	memset(s, 0, sizeof *s);
	for (int i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
		s->exists[i] = stat(p, &s->st[i]) == 0;
	}
}

static bool
file_state_equal(const struct file_state *a, const struct file_state *b)
{
	for (int i = 0; i < 4; i++) {
		if (a->exists[i] != b->exists[i])
			return false;
		if (!a->exists[i])
			continue;
		if (a->st[i].st_ino != b->st[i].st_ino ||
		    a->st[i].st_size != b->st[i].st_size ||
		    a->st[i].st_mtim.tv_sec != b->st[i].st_mtim.tv_sec ||
		    a->st[i].st_mtim.tv_nsec != b->st[i].st_mtim.tv_nsec)
			return false;
	}
	return true;
}

static bool
errmsg_mentions_fork(void)
{
	return strstr(litebus_last_errmsg(), "fork") != NULL;
}

/* ------------------------------------------------------------------ */
/* The failing input                                           */

struct open_in_child {
	const char *path;
	const char *alias;
};

static int
child_opens_the_parents_file(void *arg)
{
	struct open_in_child *a = arg;
	struct file_state before, after;
	litebus *bus = (litebus *)&bus;

	file_state_read(a->path, &before);
	CHILD_CHECK(open_at(a->path, &bus) == LITEBUS_EFORKED, 10);
	CHILD_CHECK(bus == NULL, 11);
	CHILD_CHECK(errmsg_mentions_fork(), 12);
	/* By another name: the file is what counts (B4). */
	bus = (litebus *)&bus;
	CHILD_CHECK(open_at(a->alias, &bus) == LITEBUS_EFORKED, 13);
	CHILD_CHECK(bus == NULL, 14);
	file_state_read(a->path, &after);
	CHILD_CHECK(file_state_equal(&before, &after), 15);
	return 0;
}

/* Contract, "fork()": "litebus_open() ... for a file the parent had open
 * it returns LITEBUS_EFORKED, file untouched". */
static void
a_child_opening_a_file_its_parent_has_open_gets_eforked_file_untouched(
    void **state)
{
	struct bus_fixture *f = *state;
	char alias[400];
	struct open_in_child a = {f->path, alias};

	snprintf(alias, sizeof alias, "%s/alias.db", f->dir);
	assert_int_equal(link(f->path, alias), 0);
	commit_events(f->bus, LITEBUS_COMPLETION, 3, NULL); /* a WAL */
	assert_child_ok(fork_child(child_opens_the_parents_file, &a));
	assert_bus_works(f->bus);
}

/* ------------------------------------------------------------------ */
/* Inherited handles                                                   */

struct inherited {
	litebus *bus;
	litebus_sub *sub;
	litebus_reader *reader;
};

/* Every call on inherited handles; `base` spaces the check numbers. */
static int
check_inherited(const struct inherited *h, int base)
{
	litebus_sub *sub = (litebus_sub *)&sub;
	litebus_reader *r = (litebus_reader *)&r;
	litebus_stats st;
	litebus_sub_stats sst;
	litebus_event ev;
	litebus_row row;
	int64_t id;

	CHILD_CHECK(litebus_exec(h->bus, fx_emit_one_job, &id) == LITEBUS_EFORKED,
		    base + 0);
	CHILD_CHECK(errmsg_mentions_fork(), base + 1);
	CHILD_CHECK(litebus_submit(h->bus, fx_noop_job, NULL, NULL, NULL) ==
			LITEBUS_EFORKED,
		    base + 2);
	CHILD_CHECK(litebus_subscribe(h->bus, LITEBUS_COMPLETION, &sub) ==
			LITEBUS_EFORKED,
		    base + 3);
	CHILD_CHECK(sub == NULL, base + 4);
	CHILD_CHECK(litebus_reader_open(h->bus, LITEBUS_COMPLETION,
					LITEBUS_FROM_START, NULL,
					&r) == LITEBUS_EFORKED,
		    base + 5);
	CHILD_CHECK(r == NULL, base + 6);
	CHILD_CHECK(litebus_channel_id(h->bus, "completion") == LITEBUS_EFORKED,
		    base + 7);
	CHILD_CHECK(litebus_channel_count(h->bus) == LITEBUS_EFORKED, base + 8);
	CHILD_CHECK(litebus_channel_name(h->bus, 0) == NULL, base + 9);
	CHILD_CHECK(litebus_stats_get(h->bus, &st) == LITEBUS_EFORKED,
		    base + 10);
	/* Waiting forever would be a hang: it returns at once. */
	CHILD_CHECK(litebus_recv(h->sub, &ev, -1) == LITEBUS_EFORKED,
		    base + 11);
	CHILD_CHECK(litebus_recv(h->sub, &ev, 0) == LITEBUS_EFORKED, base + 12);
	CHILD_CHECK(litebus_sub_fd(h->sub) == LITEBUS_EFORKED, base + 13);
	CHILD_CHECK(litebus_sub_stats_get(h->sub, &sst) == LITEBUS_EFORKED,
		    base + 14);
	CHILD_CHECK(litebus_reader_next(h->reader, &row, -1) == LITEBUS_EFORKED,
		    base + 15);
	CHILD_CHECK(litebus_reader_fd(h->reader) == LITEBUS_EFORKED, base + 16);
	/* "free nothing": the handles are still the parent's memory, so the
	 * calls after these still find them (ASan would report a use after
	 * free otherwise). */
	litebus_unsubscribe(h->sub);
	litebus_reader_close(h->reader);
	CHILD_CHECK(litebus_recv(h->sub, &ev, -1) == LITEBUS_EFORKED,
		    base + 17);
	CHILD_CHECK(litebus_reader_next(h->reader, &row, -1) == LITEBUS_EFORKED,
		    base + 18);
	CHILD_CHECK(litebus_close(h->bus) == LITEBUS_EFORKED, base + 19);
	CHILD_CHECK(litebus_close(h->bus) == LITEBUS_EFORKED, base + 20);
	return 0;
}

static int
child_uses_inherited_handles(void *arg)
{
	const struct inherited *h = arg;
	int rc = check_inherited(&h[0], 10);

	return rc != 0 ? rc : check_inherited(&h[1], 40);
}

static void
inherited_open(litebus *bus, struct inherited *h)
{
	h->bus = bus;
	assert_int_equal(litebus_subscribe(bus, LITEBUS_COMPLETION, &h->sub),
			 LITEBUS_OK);
	assert_true(litebus_sub_fd(h->sub) >= 0);
	assert_int_equal(litebus_reader_open(bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_NOW, NULL,
					     &h->reader),
			 LITEBUS_OK);
	assert_true(litebus_reader_fd(h->reader) >= 0);
}

/* The parent's handles were not touched by the child. */
static void
inherited_still_work_in_the_parent(struct inherited *h)
{
	litebus_event ev;
	litebus_row row;
	int64_t id = 0;

	assert_int_equal(litebus_exec(h->bus, fx_emit_one_job, &id), 0);
	assert_int_equal(litebus_recv(h->sub, &ev, FX_WAIT_MS), LITEBUS_OK);
	assert_int_equal(ev.event_id, id);
	assert_int_equal(litebus_reader_next(h->reader, &row, FX_WAIT_MS),
			 LITEBUS_OK);
	assert_int_equal(row.event_id, id);
	litebus_unsubscribe(h->sub);
	litebus_reader_close(h->reader);
}

/* Contract, "fork()": "every call on a bus, subscriber or reader inherited
 * from the parent returns LITEBUS_EFORKED at once (never blocks);
 * litebus_close() returns EFORKED too, and litebus_unsubscribe()/
 * litebus_reader_close() free nothing (the memory is the parent's
 * copy)."  A file bus and an in-memory bus. */
static void
every_call_on_an_inherited_handle_returns_eforked_at_once(void **state)
{
	struct bus_fixture *f = *state;
	struct inherited h[2];
	litebus *mem;
	litebus_options o;

	litebus_options_init(&o);
	assert_int_equal(litebus_open(&o, &mem), LITEBUS_OK);
	inherited_open(f->bus, &h[0]);
	inherited_open(mem, &h[1]);
	assert_child_ok(fork_child(child_uses_inherited_handles, h));
	inherited_still_work_in_the_parent(&h[0]);
	inherited_still_work_in_the_parent(&h[1]);
	assert_int_equal(litebus_close(mem), LITEBUS_OK);
}

/* ------------------------------------------------------------------ */
/* New buses in the child                                              */

static int
child_opens_new_buses(void *arg)
{
	const char *dir = arg;
	char path[400];
	litebus *a, *b, *mem;
	int rc;

	snprintf(path, sizeof path, "%s/child.db", dir);
	CHILD_CHECK(open_at(path, &a) == LITEBUS_OK, 10);
	CHILD_CHECK(open_at(path, &b) == LITEBUS_OK, 11);
	CHILD_CHECK(a == b, 12); /* the child's own registry works */
	rc = bus_works(a, 13);
	CHILD_CHECK(rc == 0, rc != 0 ? rc : 13);
	CHILD_CHECK(litebus_close(b) == LITEBUS_OK, 15);
	CHILD_CHECK(litebus_close(a) == LITEBUS_OK, 16);
	CHILD_CHECK(litebus_open(NULL, &mem) == LITEBUS_OK, 17);
	rc = bus_works(mem, 18);
	CHILD_CHECK(rc == 0, rc != 0 ? rc : 18);
	CHILD_CHECK(litebus_close(mem) == LITEBUS_OK, 20);
	return 0;
}

/* Contract, "fork()": "litebus_open() in the child gives a new, working
 * bus for an in-memory database or for a file the parent did not have
 * open at the fork". */
static void
a_child_opens_other_files_and_in_memory_buses_normally(void **state)
{
	struct bus_fixture *f = *state;
	char path[400];
	litebus *bus;

	assert_child_ok(fork_child(child_opens_new_buses, f->dir));
	assert_bus_works(f->bus);
	/* What the child committed is in the file. */
	snprintf(path, sizeof path, "%s/child.db", f->dir);
	assert_int_equal(fx_count_rows(path, "completion"), 1);
	assert_int_equal(open_at(path, &bus), LITEBUS_OK);
	assert_bus_works(bus);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

struct generations {
	const char *dir;
	const char *grandparent_path;
	litebus *grandparent_bus;
	litebus *child_bus;
	char child_path[400];
};

static int
grandchild_main(void *arg)
{
	struct generations *g = arg;
	char path[400];
	litebus *bus;
	int64_t id;
	int rc;

	CHILD_CHECK(open_at(g->grandparent_path, &bus) == LITEBUS_EFORKED, 30);
	CHILD_CHECK(open_at(g->child_path, &bus) == LITEBUS_EFORKED, 31);
	CHILD_CHECK(litebus_exec(g->grandparent_bus, fx_emit_one_job, &id) ==
			LITEBUS_EFORKED,
		    32);
	CHILD_CHECK(litebus_exec(g->child_bus, fx_emit_one_job, &id) ==
			LITEBUS_EFORKED,
		    33);
	snprintf(path, sizeof path, "%s/grandchild.db", g->dir);
	CHILD_CHECK(open_at(path, &bus) == LITEBUS_OK, 34);
	rc = bus_works(bus, 35);
	CHILD_CHECK(rc == 0, rc != 0 ? rc : 35);
	CHILD_CHECK(litebus_close(bus) == LITEBUS_OK, 37);
	return 0;
}

static int
child_forks_again(void *arg)
{
	struct generations *g = arg;
	int status, rc;
	pid_t pid;

	snprintf(g->child_path, sizeof g->child_path, "%s/child.db", g->dir);
	CHILD_CHECK(open_at(g->child_path, &g->child_bus) == LITEBUS_OK, 10);
	pid = fork_child(grandchild_main, g);
	CHILD_CHECK(pid > 0, 11);
	CHILD_CHECK(waitpid(pid, &status, 0) == pid, 12);
	if (child_failure(status) != NULL) {
		fprintf(stderr, "grandchild: %s\n", child_failure(status));
		return WIFEXITED(status) ? WEXITSTATUS(status) : 13;
	}
	/* The grandchild left the child's bus alone. */
	rc = bus_works(g->child_bus, 14);
	CHILD_CHECK(rc == 0, rc != 0 ? rc : 14);
	CHILD_CHECK(litebus_close(g->child_bus) == LITEBUS_OK, 16);
	return 0;
}

/* daemon(3) and prefork servers fork twice: a grandchild inherits the
 * files of both generations before it. */
static void
a_grandchild_inherits_the_files_of_every_generation_before_it(void **state)
{
	struct bus_fixture *f = *state;
	struct generations g = {f->dir, f->path, f->bus, NULL, ""};

	assert_child_ok(fork_child(child_forks_again, &g));
	assert_bus_works(f->bus);
}

/* ------------------------------------------------------------------ */
/* Forks from inside litebus                                           */

struct job_fork {
	litebus *bus;
	const char *path;
	int status; /* the child's wait status */
	int waited; /* waitpid's result == pid */
	litebus_tx *tx; /* the forking job's, inherited by the child */
};

static int
child_of_a_job(void *arg)
{
	struct job_fork *j = arg;
	litebus *bus;
	int64_t id;
	int rc;

	/* This thread is a copy of the writer: the inherited bus says
	 * EFORKED, not EDEADLK, and nothing waits. */
	CHILD_CHECK(litebus_exec(j->bus, fx_emit_one_job, &id) == LITEBUS_EFORKED,
		    10);
	CHILD_CHECK(litebus_submit(j->bus, fx_noop_job, NULL, NULL, NULL) ==
			LITEBUS_EFORKED,
		    11);
	CHILD_CHECK(litebus_close(j->bus) == LITEBUS_EFORKED, 12);
	/* The inherited transaction is the parent's: nothing may be written
	 * into its WAL from here. */
	{
		litebus_record rec = {0};

		rec.event_type = "success";
		CHILD_CHECK(litebus_emit(j->tx, LITEBUS_COMPLETION, &rec,
					 &id) == LITEBUS_EFORKED,
			    20);
		CHILD_CHECK(litebus_tx_db(j->tx) == NULL, 21);
	}
	/* The parent was inside a transaction on the file. */
	CHILD_CHECK(open_at(j->path, &bus) == LITEBUS_EFORKED, 13);
	CHILD_CHECK(litebus_open(NULL, &bus) == LITEBUS_OK, 14);
	rc = bus_works(bus, 15);
	CHILD_CHECK(rc == 0, rc != 0 ? rc : 15);
	CHILD_CHECK(litebus_close(bus) == LITEBUS_OK, 17);
	return 0;
}

static int
job_that_forks(litebus_tx *tx, void *arg)
{
	struct job_fork *j = arg;
	pid_t pid;

	j->tx = tx;
	pid = fork_child(child_of_a_job, j);
	if (pid < 0)
		return -1000;
	j->waited = waitpid(pid, &j->status, 0) == pid;
	return 0;
}

/* A job (on the writer thread, inside a transaction) that forks. */
static void
a_child_forked_by_a_job_gets_eforked_and_can_open_new_buses(void **state)
{
	struct bus_fixture *f = *state;
	struct job_fork j = {f->bus, f->path, 0, 0, NULL};
	const char *why;

	assert_int_equal(litebus_exec(f->bus, job_that_forks, &j), 0);
	assert_true(j.waited);
	why = child_failure(j.status);
	if (why != NULL)
		fail_msg("%s", why);
	assert_bus_works(f->bus);
}

/* ------------------------------------------------------------------ */
/* Forks while other threads are inside SQLite                         */

#if defined(__SANITIZE_ADDRESS__) || defined(FX_TSAN)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif

#ifndef TEST_SANITIZED
struct busy {
	litebus *bus;
	atomic_int stop;
};

static void *
busy_producer(void *arg)
{
	struct busy *b = arg;
	int64_t id;

	while (!atomic_load_explicit(&b->stop, memory_order_relaxed))
		(void)litebus_exec(b->bus, fx_emit_one_job, &id);
	return NULL;
}

static int
child_opens_while_parent_was_busy(void *arg)
{
	const char *path = arg;
	litebus *mem, *file;
	int rc;

	CHILD_CHECK(litebus_open(NULL, &mem) == LITEBUS_OK, 10);
	rc = bus_works(mem, 11);
	CHILD_CHECK(rc == 0, rc != 0 ? rc : 11);
	CHILD_CHECK(litebus_close(mem) == LITEBUS_OK, 13);
	CHILD_CHECK(open_at(path, &file) == LITEBUS_OK, 14);
	rc = bus_works(file, 15);
	CHILD_CHECK(rc == 0, rc != 0 ? rc : 15);
	CHILD_CHECK(litebus_close(file) == LITEBUS_OK, 17);
	return 0;
}
#endif

/* Contract, "fork()": the child's litebus_open "gives a new, working bus"
 * and never blocks - also when, at the fork, other threads of the parent
 * were inside SQLite (holding its process-wide mutexes: F4 in bus.c).
 * Sanitizer runtimes' own allocators are not fork-safe under load, so
 * this one runs in plain builds only. */
static void
a_child_forked_while_threads_commit_opens_new_buses_without_hanging(
    void **state)
{
#ifdef TEST_SANITIZED
	(void)state;
	skip();
#else
	struct bus_fixture *f = *state;
	struct busy b = {f->bus, 0};
	pthread_t th[2];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, busy_producer, &b),
				 0);
	for (int round = 0; round < 20; round++) {
		char path[400];
		pid_t pid;

		snprintf(path, sizeof path, "%s/busy-%d.db", f->dir, round);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			alarm(10);
			_exit(child_opens_while_parent_was_busy(path));
		}
		assert_child_ok(pid);
	}
	atomic_store_explicit(&b.stop, 1, memory_order_relaxed);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_bus_works(f->bus);
#endif
}

/* ------------------------------------------------------------------ */
/* Files still open through readers                                    */

struct reader_child {
	const char *path;
	litebus_reader *reader;
	bool expect_forked;
};

static int
child_opens_a_file_a_reader_holds(void *arg)
{
	struct reader_child *c = arg;
	litebus *bus;
	litebus_row row;
	int rc;

	if (c->expect_forked) {
		CHILD_CHECK(open_at(c->path, &bus) == LITEBUS_EFORKED, 10);
		CHILD_CHECK(litebus_reader_next(c->reader, &row, -1) ==
				LITEBUS_EFORKED,
			    11);
		return 0;
	}
	CHILD_CHECK(open_at(c->path, &bus) == LITEBUS_OK, 12);
	rc = bus_works(bus, 13);
	CHILD_CHECK(rc == 0, rc != 0 ? rc : 13);
	CHILD_CHECK(litebus_close(bus) == LITEBUS_OK, 15);
	return 0;
}

/* A reader outliving the bus keeps a connection to the file, so the file
 * is still "open in the parent" (bus.c, B2/F2); once the reader is closed
 * the bus is gone and the child may open the file. */
static void
a_file_still_read_by_a_reader_of_a_closed_bus_is_eforked_in_the_child(
    void **state)
{
	struct bus_fixture *f = *state;
	struct reader_child c = {f->path, NULL, true};
	litebus_row row;
	int64_t id;

	commit_events(f->bus, LITEBUS_COMPLETION, 1, &id);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL,
					     &c.reader),
			 LITEBUS_OK);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	assert_child_ok(fork_child(child_opens_a_file_a_reader_holds, &c));
	assert_int_equal(litebus_reader_next(c.reader, &row, FX_WAIT_MS),
			 LITEBUS_OK);
	assert_int_equal(row.event_id, id);
	assert_int_equal(litebus_reader_next(c.reader, &row, FX_WAIT_MS),
			 LITEBUS_CLOSED);
	litebus_reader_close(c.reader);

	c.reader = NULL;
	c.expect_forked = false;
	assert_child_ok(fork_child(child_opens_a_file_a_reader_holds, &c));
}

/* ------------------------------------------------------------------ */
/* Forks while other threads use the registry (F3)                     */

struct churn {
	litebus *tombstone; /* a bus whose last close has returned */
	_Atomic int stop;
	_Atomic int bad; /* first unexpected status, or 0 */
	_Atomic long rounds;
};

/* Takes and releases the registry lock all the time (a close of a closed
 * bus looks at its open count under that lock) and allocates nothing. */
static void *
churn_main(void *arg)
{
	struct churn *c = arg;

	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		int rc = litebus_close(c->tombstone);

		if (rc != LITEBUS_ECLOSED) {
			atomic_store_explicit(&c->bad, rc,
					      memory_order_relaxed);
			break;
		}
		atomic_fetch_add_explicit(&c->rounds, 1, memory_order_relaxed);
	}
	return NULL;
}

struct churn_child {
	const char *dir;
	const char *path;
};

static int
child_of_a_busy_registry(void *arg)
{
	struct churn_child *c = arg;
	char path[400];
	litebus *bus;

	CHILD_CHECK(open_at(c->path, &bus) == LITEBUS_EFORKED, 10);
	snprintf(path, sizeof path, "%s/fresh-%ld.db", c->dir, (long)getpid());
	CHILD_CHECK(open_at(path, &bus) == LITEBUS_OK, 11);
	CHILD_CHECK(litebus_exec(bus, fx_noop_job, NULL) == 0, 12);
	CHILD_CHECK(litebus_close(bus) == LITEBUS_OK, 13);
	return 0;
}

/* F3: "the registry is copied whole, never mid-change", and the child's
 * registry lock is free. */
static void
forks_while_another_thread_takes_the_registry_lock_leave_it_usable(void **state)
{
	struct bus_fixture *f = *state;
	struct churn c = {NULL, 0, 0, 0};
	struct churn_child cc = {f->dir, f->path};
	uint64_t deadline = fx_now_ms() + FX_WAIT_MS;
	const char *why = NULL;
	char path[400];
	pthread_t t;

	snprintf(path, sizeof path, "%s/closed.db", f->dir);
	assert_int_equal(open_at(path, &c.tombstone), LITEBUS_OK);
	assert_int_equal(litebus_close(c.tombstone), LITEBUS_OK);
	quiesce();
	assert_int_equal(pthread_create(&t, NULL, churn_main, &c), 0);
	/* Let it get going. */
	while (atomic_load_explicit(&c.rounds, memory_order_relaxed) < 100 &&
	       fx_now_ms() < deadline)
		sched_yield();
	for (int i = 0; i < 20 && why == NULL; i++) {
		/* Not fork_child(): the churning thread never sleeps. */
		pid_t pid = fork();
		int status;

		if (pid == 0) {
			alarm(10);
			_exit(child_of_a_busy_registry(&cc));
		}

		if (pid < 0 || waitpid(pid, &status, 0) != pid)
			why = "fork or waitpid failed";
		else
			why = child_failure(status);
	}
	/* Stopped before any failure is reported: it uses this frame. */
	atomic_store_explicit(&c.stop, 1, memory_order_relaxed);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (why != NULL)
		fail_msg("%s", why);
	assert_int_equal(atomic_load(&c.bad), 0);
	assert_true(atomic_load(&c.rounds) >= 100);
	assert_bus_works(f->bus);
}

/* A thread of the parent waits on the registry (an open of a file whose
 * last close is under way) at the fork.  In the child that waiter does
 * not exist: a close that wakes the registry's waiters must not wait for
 * it, and the file of the closing bus is inherited. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open; /* under lock */
};

static int
job_waits_for_gate(litebus_tx *tx, void *arg)
{
	struct gate *g = arg;
	struct timespec until;

	(void)tx;
	/* Asleep, not spinning, so that quiesce() sees it settled. */
	until = fx_realtime_in(FX_WAIT_MS);
	pthread_mutex_lock(&g->lock);
	while (!g->open &&
	       pthread_cond_timedwait(&g->cond, &g->lock, &until) == 0)
		;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static void
gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

struct opener {
	const char *path;
	litebus *bus;
	int rc;
	_Atomic long tid;
};

static void *
opener_main(void *arg)
{
	struct opener *o = arg;

	atomic_store(&o->tid, (long)syscall(SYS_gettid));
	o->rc = open_at(o->path, &o->bus);
	return NULL;
}

static int
child_with_a_phantom_waiter(void *arg)
{
	struct churn_child *c = arg;
	char path[400];
	litebus *bus;

	snprintf(path, sizeof path, "%s/fresh.db", c->dir);
	CHILD_CHECK(open_at(path, &bus) == LITEBUS_OK, 10);
	/* The last close wakes the registry's waiters. */
	CHILD_CHECK(litebus_close(bus) == LITEBUS_OK, 11);
	/* The parent's closing bus: inherited, not waited for. */
	CHILD_CHECK(open_at(c->path, &bus) == LITEBUS_EFORKED, 12);
	return 0;
}

static void
a_fork_while_a_thread_waits_for_a_closing_bus_leaves_no_phantom_waiter(
    void **state)
{
	struct bus_fixture *f = *state;
	struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			 false};
	struct fx_closer cl = {f->bus, 1};
	struct opener op = {f->path, NULL, 1, 0};
	struct churn_child cc = {f->dir, f->path};
	const char *why = NULL;
	bool started = false;
	uint64_t deadline;
	litebus_stats st;
	pthread_t tc, to;

	/* The writer is held by a job, so the last close stays under way. */
	assert_int_equal(
	    litebus_submit(f->bus, job_waits_for_gate, &g, NULL, NULL),
	    LITEBUS_OK);
	assert_int_equal(pthread_create(&tc, NULL, fx_closer_main, &cl), 0);
	/* From here on no assertion until both threads are joined: they use
	 * this frame. */
	deadline = fx_now_ms() + FX_WAIT_MS;
	while (litebus_stats_get(f->bus, &st) != LITEBUS_ECLOSED &&
	       fx_now_ms() < deadline)
		sched_yield(); /* until the close has begun */
	if (litebus_stats_get(f->bus, &st) != LITEBUS_ECLOSED)
		why = "the last close did not begin";
	started =
	    why == NULL && pthread_create(&to, NULL, opener_main, &op) == 0;
	while (started &&
	       (atomic_load(&op.tid) == 0 ||
		thread_state(atomic_load(&op.tid)) != 'S') &&
	       fx_now_ms() < deadline)
		sched_yield(); /* until the opener waits */
	if (started) {
		pid_t pid = fork_child(child_with_a_phantom_waiter, &cc);
		int status;

		if (pid < 0 || waitpid(pid, &status, 0) != pid)
			why = "fork or waitpid failed";
		else
			why = child_failure(status);
	}

	gate_open(&g);
	assert_int_equal(pthread_join(tc, NULL), 0);
	if (started)
		assert_int_equal(pthread_join(to, NULL), 0);
	if (why != NULL)
		fail_msg("%s", why);
	assert_true(started);
	assert_int_equal(cl.rc, LITEBUS_OK);
	assert_int_equal(op.rc, LITEBUS_OK); /* a new bus, after the close */
	assert_ptr_not_equal(op.bus, f->bus);
	f->bus = op.bus;
	assert_bus_works(f->bus);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_WITH(a_child_forked_while_threads_commit_opens_new_buses_without_hanging, fork_fixture),
	    FX_TEST_WITH(a_child_opening_a_file_its_parent_has_open_gets_eforked_file_untouched, fork_fixture),
	    FX_TEST_WITH(every_call_on_an_inherited_handle_returns_eforked_at_once, fork_fixture),
	    FX_TEST_WITH(a_child_opens_other_files_and_in_memory_buses_normally, fork_fixture),
	    FX_TEST_WITH(a_grandchild_inherits_the_files_of_every_generation_before_it, fork_fixture),
	    FX_TEST_WITH(a_child_forked_by_a_job_gets_eforked_and_can_open_new_buses, fork_fixture),
	    FX_TEST_WITH(a_file_still_read_by_a_reader_of_a_closed_bus_is_eforked_in_the_child, fork_fixture),
	    FX_TEST_WITH(forks_while_another_thread_takes_the_registry_lock_leave_it_usable, fork_fixture),
	    FX_TEST_WITH(a_fork_while_a_thread_waits_for_a_closing_bus_leaves_no_phantom_waiter, fork_fixture),
	};

	return cmocka_run_group_tests_name("fork", tests, NULL, NULL);
}
