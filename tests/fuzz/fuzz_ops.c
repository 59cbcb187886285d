/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ops.c - libFuzzer target: the input is a sequence of API
 * operations, decoded by the model check's decoder (tests/support/model.h,
 * MODEL_OP_BYTES bytes each), run on one thread against a fresh database
 * and checked against the model after every operation.  libFuzzer then
 * explores sequences of operations, not only file contents (fuzz_open).
 *
 * A broken promise aborts with the model's sentence; the input file
 * reruns it (fuzz_ops crash-file).  Built only with clang
 * (-DLITEBUS_FUZZ=ON); CI runs it for a bounded number of executions.
 */
#define _XOPEN_SOURCE 700
#include "litebus.h"
#include "model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Most operations per input: keeps each execution short. */
#define FUZZ_MAX_OPS 64

/* tmpfs: the model does not depend on fsyncs, and they cost. */
static char dir[] = "/dev/shm/litebus-fuzz-ops-XXXXXX";
static char path[128];

static void
remove_dir(void)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	char p[160];

	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", path, sfx[i]);
		unlink(p);
	}
	rmdir(dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model_config cfg;
	struct model *m;

	if (path[0] == '\0') {
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(path, sizeof path, "%s/ops.db", dir);
		atexit(remove_dir);
	}
	if (size > FUZZ_MAX_OPS * MODEL_OP_BYTES)
		size = FUZZ_MAX_OPS * MODEL_OP_BYTES;
	cfg = (struct model_config){path, 1, LITEBUS_DURABILITY_NORMAL};
	m = model_new(&cfg);
	if (m == NULL)
		abort();
	if (model_run(m, data, size) != 0 || model_finish(m) != 0) {
		fprintf(stderr, "fuzz_ops: broken after %llu operations: %s\n",
			(unsigned long long)model_ops(m), model_error(m));
		abort();
	}
	model_free(m);
	return 0;
}
