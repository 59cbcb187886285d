/* SPDX-License-Identifier: MIT */
/*
 * test_file_identity.c - one bus per file, whatever the name it is opened
 * by (bus.c, B4).
 *
 * Before issue 7 the registry compared canonical path strings: a hard link
 * or a bind mount gave a second bus on the same file, with its own writer
 * and its own WAL file, so every job through it failed with EIO (SQLite
 * 522) and the first bus's subscribers missed its events.  Each test opens
 * one file through two names and checks the three things that went wrong:
 * the same handle comes back, a job through one name commits, and a
 * subscriber attached through the other name sees its event.
 */
#define _GNU_SOURCE /* unshare, CLONE_NEWNS, mount */
#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ThreadSanitizer: the bind-mount child starts litebus threads after
 * fork(), which it supports once told so. */
FX_TSAN_ALLOW_FORK();

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* A job through `through` commits (no EIO) and a subscriber attached
 * through `watch` sees exactly its event.  0, or a short description of
 * what went wrong (so a forked child can report it too). */
static const char *
one_bus_check(litebus *through, litebus *watch)
{
	static char why[200];
	litebus_sub *sub;
	litebus_event ev;
	int64_t id = 0;
	int rc;

	if (through != watch)
		return "the two names gave two different handles";
	rc = litebus_subscribe(watch, LITEBUS_COMPLETION, &sub);
	if (rc != LITEBUS_OK)
		return "subscribe failed";
	rc = litebus_exec(through, fx_emit_one_job, &id);
	if (rc != 0) {
		snprintf(why, sizeof why, "exec: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
		litebus_unsubscribe(sub);
		return why;
	}
	rc = litebus_recv(sub, &ev, FX_WAIT_MS);
	litebus_unsubscribe(sub);
	if (rc != LITEBUS_OK)
		return "the subscriber did not see the event";
	if (ev.event_id != id)
		return "the subscriber saw another event";
	return NULL;
}

static void
assert_one_bus(litebus *a, litebus *b)
{
	const char *why;

	assert_ptr_equal(a, b);
	why = one_bus_check(a, b);
	if (why != NULL)
		fail_msg("through the first name: %s", why);
	why = one_bus_check(b, a);
	if (why != NULL)
		fail_msg("through the second name: %s", why);
}

/* ------------------------------------------------------------------ */
/* Aliases                                                             */

/* Contract, litebus_open(): "If the same file is already open in this
 * process - the same file, not the same name: hard links, symbolic links,
 * bind mounts and /proc/self/fd paths are compared by device and inode -
 * returns that bus and counts one more reference". */
static void
a_hard_link_to_an_open_file_returns_the_same_bus(void **state)
{
	struct bus_fixture *f = *state;
	char other[400];
	litebus *b;

	snprintf(other, sizeof other, "%s/hardlink.db", f->dir);
	assert_int_equal(link(f->path, other), 0);
	b = fx_open_path(other, NULL);
	assert_one_bus(f->bus, b);
	assert_int_equal(litebus_close(b), LITEBUS_OK);
	assert_one_bus(f->bus, f->bus); /* one open is left */
}

/* The alias opened first, the original name second. */
static void
a_file_opened_by_its_hard_link_first_is_found_by_its_first_name(void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	char first[400], second[400];
	litebus *a, *b;

	snprintf(first, sizeof first, "%s/first.db", f->dir);
	snprintf(second, sizeof second, "%s/second.db", f->dir);
	a = fx_open_path(first, NULL);
	assert_int_equal(litebus_close(a), LITEBUS_OK); /* the file exists */
	assert_int_equal(link(first, second), 0);
	a = fx_open_path(second, NULL);
	b = fx_open_path(first, NULL);
	assert_one_bus(a, b);
	assert_int_equal(litebus_close(b), LITEBUS_OK);
	assert_int_equal(litebus_close(a), LITEBUS_OK);
}

static void
a_symbolic_link_to_an_open_file_returns_the_same_bus(void **state)
{
	struct bus_fixture *f = *state;
	char other[400];
	litebus *b;

	snprintf(other, sizeof other, "%s/symlink.db", f->dir);
	assert_int_equal(symlink(f->path, other), 0);
	b = fx_open_path(other, NULL);
	assert_one_bus(f->bus, b);
	assert_int_equal(litebus_close(b), LITEBUS_OK);
}

/* Relative spellings with "." and "..", from another working directory. */
static void
relative_paths_with_dot_and_dot_dot_return_the_same_bus(void **state)
{
	struct bus_fixture *f = *state;
	char cwd[4096], sub[400];
	const char *rel[] = {"../test.db", "./../test.db", "../sub/../test.db",
			     "./.././sub/./../test.db"};
	litebus *b[4];

	snprintf(sub, sizeof sub, "%s/sub", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(sub), 0);
	for (int i = 0; i < 4; i++) {
		litebus_options o;
		int rc;

		litebus_options_init(&o);
		o.path = rel[i];
		rc = litebus_open(&o, &b[i]);
		if (rc != LITEBUS_OK) {
			assert_int_equal(chdir(cwd), 0);
			fail_msg("%s: %s", rel[i], litebus_errname(rc));
		}
	}
	assert_int_equal(chdir(cwd), 0);
	for (int i = 0; i < 4; i++) {
		assert_one_bus(f->bus, b[i]);
		assert_int_equal(litebus_close(b[i]), LITEBUS_OK);
	}
}

/* /proc/self/fd/N of a descriptor open on the file, and the same file seen
 * through /proc/self/root and /proc/self/cwd. */
static void
proc_self_paths_to_an_open_file_return_the_same_bus(void **state)
{
	struct bus_fixture *f = *state;
	char paths[3][600], cwd[4096];
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(f->dir), 0);
	snprintf(paths[0], sizeof paths[0], "/proc/self/fd/%d", fd);
	snprintf(paths[1], sizeof paths[1], "/proc/self/root%s", f->path);
	snprintf(paths[2], sizeof paths[2], "/proc/self/cwd/test.db");
	for (int i = 0; i < 3; i++) {
		litebus *b = fx_open_path(paths[i], NULL);

		if (b != f->bus) {
			assert_int_equal(chdir(cwd), 0);
			fail_msg("%s opened another bus", paths[i]);
		}
		assert_one_bus(f->bus, b);
		assert_int_equal(litebus_close(b), LITEBUS_OK);
	}
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(close(fd), 0);
}

static int
try_open(const char *path, litebus **out)
{
	litebus_options o;

	litebus_options_init(&o);
	o.ring_capacity = 8;
	o.path = path;
	return litebus_open(&o, out);
}

/* B5: SQLite's -wal follows the path.  A file renamed while open is
 * refused by its new name (the bus's connections would keep the old one),
 * and the bus's new readers are refused too (the old name no longer
 * names its file); its writer, which holds the file, goes on. */
static void
an_open_file_renamed_is_refused_by_its_new_name_and_for_new_readers(
    void **state)
{
	struct bus_fixture *f = *state;
	char moved[400];
	litebus *b = NULL;
	litebus_reader *r = NULL;
	int64_t id;

	snprintf(moved, sizeof moved, "%s/moved.db", f->dir);
	assert_int_equal(rename(f->path, moved), 0);
	assert_int_equal(try_open(moved, &b), LITEBUS_ECANTOPEN);
	assert_non_null(strstr(litebus_last_errmsg(), "no longer names"));
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_ECANTOPEN);
	assert_int_equal(litebus_exec(f->bus, fx_emit_one_job, &id), 0);
	/* Put it back for the teardown's close; the bus never noticed. */
	assert_int_equal(rename(moved, f->path), 0);
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	litebus_reader_close(r);
}

/* The attack that lost acknowledged events: the open file is renamed (or
 * deleted) and a new file is created under its old name.  Opening that
 * name would make a second bus whose -wal has the same name as the first
 * one's: refused, and the first bus's events all stay. */
static void
a_new_file_under_an_open_files_old_name_is_refused(void **state)
{
	struct bus_fixture *f = *state;
	static const char *const how[] = {"rename", "unlink"};

	for (size_t i = 0; i < 2; i++) {
		char moved[400];
		litebus *b = NULL;
		int64_t ids[3];
		int fd;

		snprintf(moved, sizeof moved, "%s/moved.db", f->dir);
		commit_events(f->bus, LITEBUS_COMPLETION, 3, ids);
		if (i == 0)
			assert_int_equal(rename(f->path, moved), 0);
		else
			assert_int_equal(link(f->path, moved) == 0 &&
						 unlink(f->path) == 0,
					 1);
		/* Empty, and absent: both are "another file". */
		assert_int_equal(try_open(f->path, &b), LITEBUS_ECANTOPEN);
		fd = open(f->path, O_CREAT | O_WRONLY, 0600);
		assert_true(fd >= 0);
		close(fd);
		if (try_open(f->path, &b) != LITEBUS_ECANTOPEN)
			fail_msg("%s: a new file under the old name opened",
				 how[i]);
		assert_non_null(strstr(litebus_last_errmsg(), "-wal"));
		assert_int_equal(unlink(f->path), 0);
		assert_int_equal(rename(moved, f->path), 0);
	}
	assert_int_equal(fx_count_rows(f->path, "completion"), 6);
}

/* The attack that left acknowledged events in an orphaned -wal: a file
 * renamed while open, a commit after the rename, a clean close.  SQLite
 * does not checkpoint a moved file on close; litebus does, so every
 * commit is in the file under its new name, and reopening it by that
 * name continues the ids. */
static void
a_file_renamed_while_open_keeps_every_commit_after_close(void **state)
{
	struct bus_fixture *f = *state;
	char moved[400], wal[420];
	int64_t before[2], after_rename[1], next[1];
	litebus *b;
	struct stat st;

	snprintf(moved, sizeof moved, "%s/moved.db", f->dir);
	commit_events(f->bus, LITEBUS_COMPLETION, 2, before);
	assert_int_equal(rename(f->path, moved), 0);
	commit_events(f->bus, LITEBUS_COMPLETION, 1, after_rename);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;
	assert_int_equal(fx_count_rows(moved, "completion"), 3);
	/* The -wal named after the old path holds nothing that could be
	 * replayed into a new file of that name. */
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	assert_true(stat(wal, &st) != 0 || st.st_size == 0);
	b = fx_open_path(moved, NULL);
	commit_events(b, LITEBUS_COMPLETION, 1, next);
	assert_true(next[0] > after_rename[0]);
	assert_int_equal(litebus_close(b), LITEBUS_OK);
	assert_int_equal(rename(moved, f->path), 0);
}

/* B5: only regular files: a FIFO, a directory, a character device (a
 * node of /dev/null's numbers, made here when allowed) and a symlink to
 * one are refused before SQLite touches them, leaving nothing behind. */
static void
files_that_are_not_regular_files_are_refused(void **state)
{
	struct bus_fixture *f = *state;
	char path[400], link_path[400], journal[420];
	litebus *b = NULL;
	int kinds = 0;

	snprintf(path, sizeof path, "%s/fifo", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(try_open(path, &b), LITEBUS_ECANTOPEN);
	kinds++;
	snprintf(path, sizeof path, "%s/dir", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_not_equal(try_open(path, &b), LITEBUS_OK);
	kinds++;
	snprintf(path, sizeof path, "%s/null", f->dir);
	if (mknod(path, S_IFCHR | 0600, makedev(1, 3)) == 0) {
		snprintf(link_path, sizeof link_path, "%s/to-null", f->dir);
		assert_int_equal(symlink(path, link_path), 0);
		assert_int_equal(try_open(path, &b), LITEBUS_ECANTOPEN);
		assert_int_equal(try_open(link_path, &b), LITEBUS_ECANTOPEN);
		snprintf(journal, sizeof journal, "%s-journal", path);
		assert_int_equal(access(journal, F_OK), -1);
		kinds += 2;
	} else {
		print_message("character device variant skipped: mknod: %s\n",
			      strerror(errno));
	}
	assert_true(kinds >= 2);
	assert_null(b);
}

/* The bind-mount variant runs in a child with its own mount namespace, so
 * the test process's view of the file system is never changed. */
enum {
	BIND_OK = 0,
	BIND_SKIPPED = 77, /* not allowed to mount here */
	BIND_MKDIR = 10,
	BIND_MOUNT,
	BIND_OPEN_FIRST,
	BIND_OPEN_SECOND,
	BIND_NOT_ONE_BUS,
	BIND_CLOSE,
};

static int
bind_mount_child(const char *dir)
{
	char real_dir[400], mnt[400], a[500], b[500];
	litebus_options o;
	litebus *x, *y;
	const char *why;

	snprintf(real_dir, sizeof real_dir, "%s/real", dir);
	snprintf(mnt, sizeof mnt, "%s/mnt", dir);
	if (mkdir(real_dir, 0700) != 0 || mkdir(mnt, 0700) != 0)
		return BIND_MKDIR;
	if (unshare(CLONE_NEWNS) != 0)
		return errno == EPERM ? BIND_SKIPPED : BIND_MOUNT;
	/* Keep the bind mount out of the parent's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount(real_dir, mnt, NULL, MS_BIND | MS_REC, NULL) != 0)
		return errno == EPERM ? BIND_SKIPPED : BIND_MOUNT;
	snprintf(a, sizeof a, "%s/test.db", real_dir);
	snprintf(b, sizeof b, "%s/test.db", mnt);
	litebus_options_init(&o);
	o.path = a;
	if (litebus_open(&o, &x) != LITEBUS_OK)
		return BIND_OPEN_FIRST;
	o.path = b;
	if (litebus_open(&o, &y) != LITEBUS_OK)
		return BIND_OPEN_SECOND;
	why = one_bus_check(x, y);
	if (why == NULL)
		why = one_bus_check(y, x);
	if (why != NULL) {
		fprintf(stderr, "bind mount: %s\n", why);
		return BIND_NOT_ONE_BUS;
	}
	if (litebus_close(y) != LITEBUS_OK || litebus_close(x) != LITEBUS_OK)
		return BIND_CLOSE;
	return BIND_OK;
}

static void
a_bind_mount_of_the_directory_gives_the_same_bus(void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(10); /* never hang the test */
		_exit(bind_mount_child(f->dir));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("the child died of signal %d (SIGALRM: it hung)",
			 WTERMSIG(status));
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == BIND_SKIPPED) {
		/* CI runs as root, where this variant must run. */
		print_message("bind-mount variant SKIPPED: this process may "
			      "not mount (EPERM)\n");
		skip();
	}
	if (WEXITSTATUS(status) != BIND_OK)
		fail_msg("bind-mount child failed check %d",
			 WEXITSTATUS(status));
}

/* A job calling exec through another name of its own bus's file is
 * refused with EDEADLK: it is the same bus, whose writer is this thread
 * (not a second writer left waiting for the first one's lock). */
static int
job_exec_through_alias(litebus_tx *tx, void *arg)
{
	int64_t id;

	(void)tx;
	return litebus_exec(arg, fx_emit_one_job, &id);
}

static void
a_job_exec_through_another_name_of_its_file_is_edeadlk(void **state)
{
	struct bus_fixture *f = *state;
	char other[400];
	litebus *b;

	snprintf(other, sizeof other, "%s/hardlink.db", f->dir);
	assert_int_equal(link(f->path, other), 0);
	b = fx_open_path(other, NULL);
	assert_int_equal(litebus_exec(f->bus, job_exec_through_alias, b),
			 LITEBUS_EDEADLK);
	assert_int_equal(litebus_close(b), LITEBUS_OK);
}

/* Once the last close has returned, another name of the file opens a new,
 * working bus (nothing of the old one is shared). */
static void
after_the_last_close_another_name_opens_a_new_bus(void **state)
{
	struct bus_fixture *f = *state;
	char other[400];
	litebus_reader *r;
	litebus *b;

	snprintf(other, sizeof other, "%s/hardlink.db", f->dir);
	assert_int_equal(link(f->path, other), 0);
	/* A reader outlives the close and keeps the old bus's memory. */
	assert_int_equal(litebus_reader_open(f->bus, LITEBUS_COMPLETION,
					     LITEBUS_FROM_START, NULL, &r),
			 LITEBUS_OK);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	b = fx_open_path(other, NULL);
	assert_one_bus(b, b);
	f->bus = b; /* the teardown closes it */
	litebus_reader_close(r);
}

/* ------------------------------------------------------------------ */
/* The file changes while it is being opened                           */

/* A VFS over the default one that does something to the file system just
 * before SQLite opens a chosen main database: the window between
 * litebus_open's two stat() calls (B4). */
enum swap_action { SWAP_NONE, SWAP_RENAME, SWAP_LINK };

static struct {
	sqlite3_vfs vfs;
	sqlite3_vfs *real;
	enum swap_action action;
	char target[600]; /* the name SQLite opens */
	char source[600]; /* renamed or linked onto target */
	int done;	  /* errno of the action + 1, or 0 if not done */
} swap;

static int
swap_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
	  int *out_flags)
{
	(void)vfs;
	/* litebus_open runs on this thread, and nothing else opens files
	 * meanwhile in these tests. */
	if (swap.action != SWAP_NONE && name != NULL &&
	    (flags & SQLITE_OPEN_MAIN_DB) != 0 &&
	    strcmp(name, swap.target) == 0) {
		int rc = swap.action == SWAP_RENAME
			     ? rename(swap.source, swap.target)
			     : link(swap.source, swap.target);

		swap.done = rc == 0 ? 1 : errno + 1;
		swap.action = SWAP_NONE;
	}
	return swap.real->xOpen(swap.real, name, file, flags, out_flags);
}

static void
swap_install(enum swap_action action, const char *source, const char *target)
{
	char *dir_real;
	const char *base = strrchr(target, '/');
	char dir[600];

	/* SQLite opens the full, symlink-free name. */
	snprintf(dir, sizeof dir, "%.*s", (int)(base - target), target);
	dir_real = realpath(dir, NULL);
	assert_non_null(dir_real);
	snprintf(swap.target, sizeof swap.target, "%s%s", dir_real, base);
	free(dir_real);
	snprintf(swap.source, sizeof swap.source, "%s", source);
	swap.real = sqlite3_vfs_find(NULL);
	assert_non_null(swap.real);
	swap.vfs = *swap.real;
	swap.vfs.zName = "litebus-test-swap";
	swap.vfs.xOpen = swap_open;
	swap.done = 0;
	swap.action = action;
	assert_int_equal(sqlite3_vfs_register(&swap.vfs, 1), SQLITE_OK);
}

static void
swap_remove(void)
{
	swap.action = SWAP_NONE;
	assert_int_equal(sqlite3_vfs_unregister(&swap.vfs), SQLITE_OK);
	assert_int_equal(sqlite3_vfs_register(swap.real, 1), SQLITE_OK);
}

/* Contract: "On failure *out is NULL"; ECANTOPEN.  The name existed
 * before, and another file was moved to it in the window. */
static void
a_file_replaced_while_it_is_being_opened_is_ecantopen(void **state)
{
	struct bus_fixture *f = *state; /* a directory, no bus */
	char other[400];
	litebus_options o;
	litebus *bus = (litebus *)&bus;
	int fd;

	fd = open(f->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(close(fd), 0);
	snprintf(other, sizeof other, "%s/other.db", f->dir);
	fd = open(other, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(close(fd), 0);

	swap_install(SWAP_RENAME, other, f->path);
	litebus_options_init(&o);
	o.path = f->path;
	int rc = litebus_open(&o, &bus);
	int done = swap.done;
	swap_remove();
	assert_int_equal(done, 1); /* the rename happened in the window */
	if (rc != LITEBUS_ECANTOPEN)
		fail_msg("open: %s, want ECANTOPEN", litebus_errname(rc));
	assert_null(bus);
	assert_non_null(strstr(litebus_last_errmsg(), "changed"));
	/* Nothing was left registered: the file opens normally now. */
	f->bus = fx_open_path(f->path, NULL);
	assert_one_bus(f->bus, f->bus);
}

/* The name did not exist before, and in the window it became (a hard link
 * to) a file this process already has open: a second bus on that file
 * would be the very fault above, so the open fails and is undone. */
static void
a_new_name_that_becomes_an_open_file_while_opening_is_ecantopen(void **state)
{
	struct bus_fixture *f = *state;
	char other[400];
	litebus_options o;
	litebus *bus = (litebus *)&bus;
	sqlite3 *db;

	/* Copy the bus's WAL into the file first, so the second connection
	 * finds the schema there and writes nothing of its own. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);

	snprintf(other, sizeof other, "%s/new.db", f->dir);
	swap_install(SWAP_LINK, f->path, other);
	litebus_options_init(&o);
	o.path = other;
	int rc = litebus_open(&o, &bus);
	int done = swap.done;
	swap_remove();
	assert_int_equal(done, 1);
	if (rc != LITEBUS_ECANTOPEN)
		fail_msg("open: %s, want ECANTOPEN", litebus_errname(rc));
	assert_null(bus);
	assert_non_null(strstr(litebus_last_errmsg(), "changed"));
	/* Now that it exists, the name finds the open bus. */
	bus = fx_open_path(other, NULL);
	assert_one_bus(f->bus, bus);
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TINY(a_hard_link_to_an_open_file_returns_the_same_bus),
	    FX_TEST_TMPDIR(a_file_opened_by_its_hard_link_first_is_found_by_its_first_name),
	    FX_TEST_TINY(a_symbolic_link_to_an_open_file_returns_the_same_bus),
	    FX_TEST_TINY(relative_paths_with_dot_and_dot_dot_return_the_same_bus),
	    FX_TEST_TINY(proc_self_paths_to_an_open_file_return_the_same_bus),
	    FX_TEST_TINY(an_open_file_renamed_is_refused_by_its_new_name_and_for_new_readers),
	    FX_TEST_TINY(a_new_file_under_an_open_files_old_name_is_refused),
	    FX_TEST_TMPDIR(files_that_are_not_regular_files_are_refused),
	    FX_TEST_TINY(a_file_renamed_while_open_keeps_every_commit_after_close),
	    FX_TEST_TMPDIR(a_bind_mount_of_the_directory_gives_the_same_bus),
	    FX_TEST_TINY(a_job_exec_through_another_name_of_its_file_is_edeadlk),
	    FX_TEST_TINY(after_the_last_close_another_name_opens_a_new_bus),
	    FX_TEST_TMPDIR(a_file_replaced_while_it_is_being_opened_is_ecantopen),
	    FX_TEST_TINY(a_new_name_that_becomes_an_open_file_while_opening_is_ecantopen),
	};

	return cmocka_run_group_tests_name("file_identity", tests, NULL, NULL);
}
