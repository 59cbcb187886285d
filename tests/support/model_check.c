/* SPDX-License-Identifier: MIT */
/*
 * model_check.c - see model_check.h.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp */

#include "model_check.h"

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

void
model_check_run(const char *fallback_path, const struct model_check *c,
		int threads, int durability, uint64_t seed_offset)
{
	uint64_t seed =
	    env_u64("LITEBUS_MODEL_SEED", c->default_seed) + seed_offset;
	size_t nops = (size_t)env_u64("LITEBUS_MODEL_OPS", c->default_ops);
	size_t len = nops * MODEL_OP_BYTES;
	uint8_t *ops = malloc(len + 8);
	struct model_config cfg = {fallback_path, threads, durability};
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
			 c->program);
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
