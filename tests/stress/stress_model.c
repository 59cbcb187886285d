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
#include "model.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static uint64_t
env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	return v != NULL && v[0] != '\0' ? strtoull(v, NULL, 0) : dflt;
}

static uint64_t
splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void
run_model(struct bus_fixture *f, int threads, int durability,
	  uint64_t seed_offset)
{
	uint64_t seed = env_u64("LITEBUS_MODEL_SEED", 14000) + seed_offset;
	size_t nops = (size_t)env_u64("LITEBUS_MODEL_OPS", 20000);
	size_t len = nops * MODEL_OP_BYTES;
	uint8_t *ops = malloc(len + 8);
	struct model_config cfg = {f->path, threads, durability};
	char shm[64] = "/dev/shm/litebus-model-XXXXXX", path[96];
	struct model *m;
	uint64_t s = seed;
	int rc;

	assert_non_null(ops);
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = splitmix(&s);
		memcpy(ops + i, &v, 8);
	}
	/* On tmpfs where there is one: fsyncs cost nothing there, and the
	 * contract checked here does not depend on them. */
	if (mkdtemp(shm) != NULL) {
		snprintf(path, sizeof path, "%s/model.db", shm);
		cfg.path = path;
	}
	m = model_new(&cfg);
	assert_non_null(m);
	rc = model_run(m, ops, len);
	if (rc == 0)
		rc = model_finish(m);
	printf("model check: %" PRIu64 " operations, %d threads, seed %" PRIu64
	       "\n",
	       model_ops(m), threads, seed);
	if (rc != 0)
		fail_msg("model check failed after %" PRIu64 " operations: %s\n"
			 "rerun: LITEBUS_MODEL_SEED=%" PRIu64
			 " LITEBUS_MODEL_OPS=%zu %s",
			 model_ops(m), model_error(m), seed - seed_offset, nops,
			 "tests/stress_model");
	model_free(m);
	free(ops);
	if (cfg.path == path) {
		char p[128];
		static const char *const sfx[] = {"", "-wal", "-shm"};
		for (int i = 0; i < 3; i++) {
			snprintf(p, sizeof p, "%s%s", path, sfx[i]);
			unlink(p);
		}
		rmdir(shm);
	}
}

/* litebus.h, readers: "deliver every committed row exactly once, in
 * event_id order, whatever the lag"; subscribers: "received + skipped
 * equals the events published after it subscribed"; durable consumers:
 * "A new open resumes right after the last *durably* acknowledged
 * event_id" - one thread, so a seed always replays the same way. */
static void
long_random_sequences_on_one_thread_keep_the_contract(void **state)
{
	run_model(*state, 1, LITEBUS_DURABILITY_NORMAL, 0);
}

/* The same with bursts of jobs from four threads (group commit) while a
 * reader follows. */
static void
long_random_sequences_from_four_threads_keep_the_contract(void **state)
{
	run_model(*state, 4, LITEBUS_DURABILITY_FULL, 1);
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
