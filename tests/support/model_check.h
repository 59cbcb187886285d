/* SPDX-License-Identifier: MIT */
/*
 * model_check.h - one run of the randomized model check (model.h) as a
 * cmocka test: operations from a seeded generator, the database on tmpfs
 * where there is one, and a failure that prints the seed and the command
 * that replays it.  test_model (short) and stress_model (long) differ only
 * in their defaults.
 *
 * LITEBUS_MODEL_SEED and LITEBUS_MODEL_OPS override the defaults.
 */
#ifndef LB_TEST_MODEL_CHECK_H
#define LB_TEST_MODEL_CHECK_H

#include <stddef.h>
#include <stdint.h>

struct model_check {
	uint64_t default_seed;
	size_t default_ops;
	const char *program; /* for the rerun line, e.g. "tests/test_model" */
};

/* Run the model check with `threads` producers (<= 1: one thread, so a
 * seed always replays the same way); the seed is the configured one plus
 * seed_offset.  fallback_path is the database when /dev/shm cannot be
 * used.  Fails the calling cmocka test on a broken promise. */
void model_check_run(const char *fallback_path, const struct model_check *c,
		     int threads, int durability, uint64_t seed_offset);

#endif
