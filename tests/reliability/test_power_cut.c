/* SPDX-License-Identifier: MIT */
/*
 * test_power_cut.c - the durability promises under simulated power loss,
 * the fast sweep: one recorded run per durability and checkpoint mode, 
 * 60 cut points each (tests/support/powercut.h says what is
 * recorded and checked; stress_power_cut runs thousands).
 *
 * LITEBUS_POWER_CUTS sets the cut points per test (default 60);
 * LITEBUS_POWER_SEED the seed (default: a fixed one; a failure prints
 * the seed and the trace position).
 */
#include "fixture.h"
#include "powercut.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static size_t
env_size(const char *name, size_t dflt)
{
	const char *v = getenv(name);
	return v != NULL && v[0] != '\0' ? (size_t)strtoull(v, NULL, 0) : dflt;
}

static void
sweep(int durability, int checkpoint_mode)
{
	struct powercut_config cfg = {
	    .durability = durability,
	    .checkpoint_mode = checkpoint_mode,
	    .producers = 3,
	    .jobs = 16,
	    .cuts = env_size("LITEBUS_POWER_CUTS", 60),
	    .seed = env_size("LITEBUS_POWER_SEED", 14),
	};
	struct powercut_result res;

	if (cfg.cuts == 0)
		cfg.cuts = 1;
	printf("power cut sweep: %s durability, %s checkpoints, seed %" PRIu64
	       " (rerun: LITEBUS_POWER_SEED=%" PRIu64 ")\n",
	       durability == LITEBUS_DURABILITY_FULL ? "full" : "normal",
	       checkpoint_mode == LITEBUS_CHECKPOINT_INLINE ? "inline"
							    : "background",
	       cfg.seed, cfg.seed);
	powercut_run(&cfg, &res);
	printf("power cut sweep: %zu cut points over a trace of %zu VFS calls "
	       "(%zu syncs), %zu of them tore a file, %zu lost acknowledged "
	       "jobs; %zu jobs committed\n",
	       res.cuts, res.trace_len, res.syncs, res.torn, res.lost_jobs,
	       res.committed);
}

/* litebus.h, LITEBUS_DURABILITY_FULL: "every COMMIT is fsynced before any
 * job of its batch is acknowledged or any of its events is published:
 * nothing acknowledged is lost, even after a power cut." */
static void
full_durability_loses_nothing_acknowledged_at_any_cut(void **state)
{
	(void)state;
	sweep(LITEBUS_DURABILITY_FULL, LITEBUS_CHECKPOINT_BACKGROUND);
}

/* The same with SQLite's own checkpoints inside the commits. */
static void
full_durability_with_inline_checkpoints_loses_nothing_acknowledged(void **state)
{
	(void)state;
	sweep(LITEBUS_DURABILITY_FULL, LITEBUS_CHECKPOINT_INLINE);
}

/* litebus.h, LITEBUS_DURABILITY_NORMAL: "After a power cut or OS crash
 * the last commits may be lost, but the database is never corrupt and
 * what survives is a prefix of the commit order." */
static void
normal_durability_keeps_a_prefix_of_the_commit_order_at_any_cut(void **state)
{
	(void)state;
	sweep(LITEBUS_DURABILITY_NORMAL, LITEBUS_CHECKPOINT_BACKGROUND);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		full_durability_loses_nothing_acknowledged_at_any_cut),
	    cmocka_unit_test(
		full_durability_with_inline_checkpoints_loses_nothing_acknowledged),
	    cmocka_unit_test(
		normal_durability_keeps_a_prefix_of_the_commit_order_at_any_cut),
	};
	return cmocka_run_group_tests_name("power_cut", tests, NULL, NULL);
}
