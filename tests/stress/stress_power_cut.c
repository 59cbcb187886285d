/* SPDX-License-Identifier: MIT */
/*
 * stress_power_cut.c - the power-cut sweep at size: thousands of cut
 * points over longer recorded runs (tests/support/powercut.h says what is
 * recorded and checked; test_power_cut is the fast variant).
 *
 * LITEBUS_POWER_CUTS sets the cut points per durability mode (default
 * 2000; 0 tries every trace position with each of drop, keep and tear),
 * LITEBUS_POWER_JOBS the jobs per producer (default 40),
 * LITEBUS_POWER_SEED the seed (default 1401; a failure prints the seed and
 * the trace position; the same seed makes the same choices, over a
 * recorded run that threads make similar rather than identical).
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
sweep(int durability, int checkpoint_mode, uint64_t seed_offset)
{
	struct powercut_config cfg = {
	    .durability = durability,
	    .checkpoint_mode = checkpoint_mode,
	    .producers = 4,
	    .jobs = (int)env_size("LITEBUS_POWER_JOBS", 40),
	    .cuts = env_size("LITEBUS_POWER_CUTS", 2000),
	    .seed = env_size("LITEBUS_POWER_SEED", 1401) + seed_offset,
	};
	struct powercut_result res;

	printf("power cut sweep: %s durability, %s checkpoints, seed %" PRIu64
	       "\n",
	       durability == LITEBUS_DURABILITY_FULL ? "full" : "normal",
	       checkpoint_mode == LITEBUS_CHECKPOINT_INLINE ? "inline"
							    : "background",
	       cfg.seed);
	powercut_run(&cfg, &res);
	printf("power cut sweep: %zu cut points over a trace of %zu VFS calls "
	       "(%zu syncs), %zu of them tore a file, %zu lost acknowledged "
	       "jobs; %zu jobs committed\n",
	       res.cuts, res.trace_len, res.syncs, res.torn, res.lost_jobs,
	       res.committed);
}

/* litebus.h, LITEBUS_DURABILITY_FULL: "nothing acknowledged is lost,
 * even after a power cut." */
static void
full_durability_loses_nothing_acknowledged_at_thousands_of_cuts(void **state)
{
	(void)state;
	sweep(LITEBUS_DURABILITY_FULL, LITEBUS_CHECKPOINT_BACKGROUND, 0);
}

/* litebus.h, LITEBUS_DURABILITY_NORMAL: "the database is never corrupt
 * and what survives is a prefix of the commit order." */
static void
normal_durability_keeps_a_prefix_at_thousands_of_cuts(void **state)
{
	(void)state;
	sweep(LITEBUS_DURABILITY_NORMAL, LITEBUS_CHECKPOINT_INLINE, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		full_durability_loses_nothing_acknowledged_at_thousands_of_cuts),
	    cmocka_unit_test(
		normal_durability_keeps_a_prefix_at_thousands_of_cuts),
	};
	return cmocka_run_group_tests_name("power_cut_stress", tests, NULL,
					   NULL);
}
