/* SPDX-License-Identifier: MIT */
/*
 * stress_model.c - the randomized model check of the public contract, the
 * long run (tests/support/model.h says what runs and what is checked;
 * test_model is the short run, fuzz_ops lets libFuzzer choose the
 * sequences).
 *
 * LITEBUS_MODEL_OPS sets the operations per run (default 20000),
 * LITEBUS_MODEL_SEED the seed (default: a fixed one).  A failure prints
 * the seed and the command that reruns the same sequence.
 */
#include "fixture.h"
#include "model_check.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static const struct model_check check = {.default_seed = 14000,
					 .default_ops = 20000,
					 .program = "tests/stress_model"};

/* litebus.h, readers: "deliver every committed row exactly once, in
 * event_id order, whatever the lag"; subscribers: "received + skipped
 * equals the events published after it subscribed"; durable consumers:
 * "A new open resumes right after the last *durably* acknowledged
 * event_id" - one thread, so a seed always replays the same way. */
static void
long_random_sequences_on_one_thread_keep_the_contract(void **state)
{
	model_check_run(((struct bus_fixture *)*state)->path, &check, 1,
			LITEBUS_DURABILITY_NORMAL, 0);
}

/* The same with bursts of jobs from four threads (group commit) while a
 * reader follows. */
static void
long_random_sequences_from_four_threads_keep_the_contract(void **state)
{
	model_check_run(((struct bus_fixture *)*state)->path, &check, 4,
			LITEBUS_DURABILITY_FULL, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST_TMPDIR(
		long_random_sequences_on_one_thread_keep_the_contract),
	    FX_TEST_TMPDIR(
		long_random_sequences_from_four_threads_keep_the_contract),
	};
	return cmocka_run_group_tests_name("model_stress", tests, NULL, NULL);
}
