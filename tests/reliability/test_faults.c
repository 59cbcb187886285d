/* SPDX-License-Identifier: MIT */
/*
 * test_faults.c - storage faults injected for real (tests/support/faultvfs)
 * never lose, duplicate or invent an event.
 *
 * A fixed workload (three producer threads, group-committed jobs with
 * events on two channels, every fourth job failing on purpose, a reader
 * and a subscriber following) runs once cleanly to count the VFS calls of
 * each kind, then once per injection point N: the Nth call of that kind
 * fails with the given error.  After each run, with the fault cleared:
 *   I1  every job whose litebus_exec returned 0 has all its rows, with the
 *       ids it was given, after the bus is closed and reopened;
 *   I2  no job that returned an error has any row (rows carry a token
 *       naming their job: ids of failed work are legitimately reused);
 *   I3  the reader received exactly the committed rows, in order, and the
 *       subscriber received a subsequence of them, in order, with
 *       received + skipped accounting for every published event;
 *   I4  after the fault clears, the next job commits, or the bus refuses
 *       it with a documented error; litebus_close always returns;
 *   I5  under ASan/TSan: no leak, no race (the sanitizer builds run this).
 *
 * LITEBUS_FAULT_POINTS caps the injection points per fault kind (default
 * 12, spread over the whole run; 0 = every call, as the stress label
 * does).
 */
#include "faultvfs.h"
#include "workload.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct sweep {
	enum fault_kind kind;
	int err;
	uint64_t nth;
	uint64_t calls; /* calls of the kind during the workload */
};

static void
sweep_arm(void *ctx)
{
	struct sweep *sw = ctx;

	faultvfs_reset();
	if (sw->nth != 0)
		faultvfs_arm(sw->kind, sw->nth, sw->err);
}

static void
sweep_workload_done(void *ctx)
{
	struct sweep *sw = ctx;

	sw->calls = faultvfs_calls(sw->kind);
}

static void
sweep_disarm(void *ctx)
{
	(void)ctx;
	faultvfs_disarm();
}

static void
sweep_run(struct bus_fixture *fx, struct sweep *sw, struct wl_report *rep)
{
	char label[96];
	struct wl_hooks h = {label, sweep_arm, sweep_workload_done,
			     sweep_disarm, sw};

	snprintf(label, sizeof label, "%s fault at call %llu (err %d)",
		 faultvfs_kind_name(sw->kind), (unsigned long long)sw->nth,
		 sw->err);
	wl_run(fx, &h, rep);
}

static void
sweep_kind(struct bus_fixture *fx, struct sweep *sw, uint64_t *runs,
	   uint64_t *failed_jobs)
{
	const char *env = getenv("LITEBUS_FAULT_POINTS");
	uint64_t points = env != NULL ? strtoull(env, NULL, 10) : 12;
	struct wl_report rep;
	uint64_t total, step;

	/* A clean run counts the calls of this kind. */
	sw->nth = 0;
	sweep_run(fx, sw, &rep);
	assert_int_equal(rep.open_rc, LITEBUS_OK);
	assert_int_equal(rep.heal_rc, 0);
	total = sw->calls;
	step = points == 0 || total <= points ? 1 : total / points;
	for (uint64_t nth = 1; nth <= total; nth += step) {
		sw->nth = nth;
		sweep_run(fx, sw, &rep);
		(*runs)++;
		*failed_jobs += (uint64_t)rep.failed_jobs;
	}
}

static void
one_storage_fault_anywhere_loses_and_invents_nothing(void **state)
{
	struct bus_fixture *fx = *state;
	static struct sweep sweeps[] = {
	    {FAULT_WRITE, SQLITE_IOERR_WRITE, 0, 0},
	    {FAULT_WRITE, SQLITE_FULL, 0, 0},
	    {FAULT_SYNC, SQLITE_IOERR_FSYNC, 0, 0},
	    {FAULT_TRUNCATE, SQLITE_IOERR_TRUNCATE, 0, 0},
	    {FAULT_FILESIZE, SQLITE_IOERR_FSTAT, 0, 0},
	    {FAULT_LOCK, SQLITE_BUSY, 0, 0},
	    {FAULT_SHMLOCK, SQLITE_BUSY, 0, 0},
	    {FAULT_SHMMAP, SQLITE_IOERR_SHMMAP, 0, 0},
	    {FAULT_READ, SQLITE_IOERR_READ, 0, 0},
	    {FAULT_OPEN, SQLITE_CANTOPEN, 0, 0},
	};

	for (size_t i = 0; i < sizeof sweeps / sizeof sweeps[0]; i++) {
		uint64_t runs = 0, failed = 0;
		sweep_kind(fx, &sweeps[i], &runs, &failed);
		print_message("faults: kind=%s err=%d runs=%llu "
			      "jobs_failed=%llu\n",
			      faultvfs_kind_name(sweeps[i].kind), sweeps[i].err,
			      (unsigned long long)runs,
			      (unsigned long long)failed);
	}
}

/* A disk that stays full: jobs fail with ENOSPC and nothing is written;
 * once space returns, the bus commits again. */
static void
a_full_disk_fails_jobs_with_enospc_until_space_returns(void **state)
{
	struct bus_fixture *fx = *state;
	int64_t id;
	int rc;

	fx_open(fx);
	commit_events(fx->bus, LITEBUS_COMPLETION, 3, NULL);
	faultvfs_set_full(true);
	for (int i = 0; i < 5; i++) {
		rc = litebus_exec(fx->bus, wl_heal_job, &id);
		if (rc != LITEBUS_ENOSPC)
			fail_msg("job on a full disk returned %s: %s",
				 litebus_errname(rc), litebus_last_errmsg());
	}
	faultvfs_set_full(false);
	assert_int_equal(litebus_exec(fx->bus, wl_heal_job, NULL), 0);
	assert_int_equal(litebus_close(fx->bus), LITEBUS_OK);
	fx->bus = NULL;
	assert_int_equal(fx_count_rows(fx->path, "completion"), 4);
}

static int
group_setup(void **state)
{
	(void)state;
	faultvfs_install();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(one_storage_fault_anywhere_loses_and_invents_nothing),
	    FX_TEST_TMPDIR(a_full_disk_fails_jobs_with_enospc_until_space_returns),
	};

	return cmocka_run_group_tests_name("faults", tests, group_setup, NULL);
}
