/* SPDX-License-Identifier: MIT */
/*
 * test_alloc.c - allocation failures: ENOMEM reaches the caller, and
 * nothing is lost, invented or leaked.
 *
 * Two sweeps over the workload of tests/support/workload.c (which checks
 * invariants I1..I4 after each run; ASan checks leaks):
 *   - SQLite's allocator is replaced (SQLITE_CONFIG_MALLOC) by one that
 *     fails the Nth allocation;
 *   - litebus's own allocations fail at N: this program is linked with
 *     -Wl,--wrap=malloc (and calloc, realloc, aligned_alloc, strdup), so
 *     the library's calls reach the __wrap_ functions below.  lib/ has no
 *     test hooks.
 * LITEBUS_FAULT_POINTS caps the injection points per sweep (default 12;
 * 0 = every allocation).
 */
#include "workload.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- litebus's allocations, through the link seam ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
char *__wrap_strdup(const char *s);

/* Relaxed: counters and a one-shot trigger, read after the run. */
static _Atomic uint64_t lb_allocs, lb_fail_at;
static _Atomic bool lb_counting;

static bool
lb_alloc_fails(void)
{
	if (!atomic_load_explicit(&lb_counting, memory_order_relaxed))
		return false;
	uint64_t n = atomic_fetch_add_explicit(&lb_allocs, 1,
					       memory_order_relaxed) +
		     1;
	uint64_t at = atomic_load_explicit(&lb_fail_at, memory_order_relaxed);
	return at != 0 && n == at;
}

void *
__wrap_malloc(size_t n)
{
	return lb_alloc_fails() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t m)
{
	return lb_alloc_fails() ? NULL : __real_calloc(n, m);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return lb_alloc_fails() ? NULL : __real_realloc(p, n);
}

void *
__wrap_aligned_alloc(size_t a, size_t n)
{
	return lb_alloc_fails() ? NULL : __real_aligned_alloc(a, n);
}

char *
__wrap_strdup(const char *s)
{
	return lb_alloc_fails() ? NULL : __real_strdup(s);
}

/* ---- SQLite's allocations, through SQLITE_CONFIG_MALLOC ---- */

static sqlite3_mem_methods sq_real;
static _Atomic uint64_t sq_allocs, sq_fail_at;

static bool
sq_alloc_fails(void)
{
	uint64_t n = atomic_fetch_add_explicit(&sq_allocs, 1,
					       memory_order_relaxed) +
		     1;
	uint64_t at = atomic_load_explicit(&sq_fail_at, memory_order_relaxed);
	return at != 0 && n == at;
}

static void *
sq_malloc(int n)
{
	return sq_alloc_fails() ? NULL : sq_real.xMalloc(n);
}

static void *
sq_realloc(void *p, int n)
{
	return sq_alloc_fails() ? NULL : sq_real.xRealloc(p, n);
}

static void
sq_install(void)
{
	sqlite3_mem_methods m;

	assert_int_equal(sqlite3_shutdown(), SQLITE_OK);
	assert_int_equal(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_real),
			 SQLITE_OK);
	m = sq_real;
	m.xMalloc = sq_malloc;
	m.xRealloc = sq_realloc;
	assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &m), SQLITE_OK);
	assert_int_equal(sqlite3_initialize(), SQLITE_OK);
}

/* ---- the sweeps ---- */

struct alloc_sweep {
	bool sqlite_side;
	uint64_t nth;
	uint64_t count; /* allocations during the workload */
};

static void
as_arm(void *ctx)
{
	struct alloc_sweep *s = ctx;

	if (s->sqlite_side) {
		atomic_store_explicit(&sq_allocs, 0, memory_order_relaxed);
		atomic_store_explicit(&sq_fail_at, s->nth,
				      memory_order_relaxed);
	} else {
		atomic_store_explicit(&lb_allocs, 0, memory_order_relaxed);
		atomic_store_explicit(&lb_fail_at, s->nth,
				      memory_order_relaxed);
		atomic_store_explicit(&lb_counting, true,
				      memory_order_relaxed);
	}
}

static void
as_done(void *ctx)
{
	struct alloc_sweep *s = ctx;

	s->count = atomic_load_explicit(s->sqlite_side ? &sq_allocs : &lb_allocs,
					memory_order_relaxed);
}

static void
as_disarm(void *ctx)
{
	(void)ctx;
	atomic_store_explicit(&sq_fail_at, 0, memory_order_relaxed);
	atomic_store_explicit(&lb_fail_at, 0, memory_order_relaxed);
	atomic_store_explicit(&lb_counting, false, memory_order_relaxed);
}

static void
alloc_sweep(struct bus_fixture *fx, bool sqlite_side)
{
	const char *env = getenv("LITEBUS_FAULT_POINTS");
	uint64_t points = env != NULL ? strtoull(env, NULL, 10) : 12;
	struct alloc_sweep s = {sqlite_side, 0, 0};
	char label[96];
	struct wl_hooks h = {label, as_arm, as_done, as_disarm, &s};
	struct wl_report rep;
	uint64_t total, step, runs = 0, failed = 0;

	snprintf(label, sizeof label, "clean run");
	wl_run(fx, &h, &rep);
	assert_int_equal(rep.open_rc, LITEBUS_OK);
	total = s.count;
	step = points == 0 || total <= points ? 1 : total / points;
	for (uint64_t nth = 1; nth <= total; nth += step) {
		s.nth = nth;
		snprintf(label, sizeof label, "%s allocation %llu failing",
			 sqlite_side ? "SQLite" : "litebus",
			 (unsigned long long)nth);
		wl_run(fx, &h, &rep);
		runs++;
		failed += (uint64_t)rep.failed_jobs;
	}
	as_disarm(&s);
	print_message("alloc: %s allocations=%llu runs=%llu jobs_failed=%llu\n",
		      sqlite_side ? "sqlite" : "litebus",
		      (unsigned long long)total, (unsigned long long)runs,
		      (unsigned long long)failed);
}

static void
a_failing_sqlite_allocation_loses_and_invents_nothing(void **state)
{
	alloc_sweep(*state, true);
}

static void
a_failing_litebus_allocation_loses_and_invents_nothing(void **state)
{
	alloc_sweep(*state, false);
}

static int
group_setup(void **state)
{
	(void)state;
	sq_install();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(a_failing_sqlite_allocation_loses_and_invents_nothing),
	    FX_TEST_TMPDIR(a_failing_litebus_allocation_loses_and_invents_nothing),
	};

	return cmocka_run_group_tests_name("alloc", tests, group_setup, NULL);
}
