/*
 * fuzz_open.c - libFuzzer target: open a mutated database file with
 * litebus, read every channel with a reader, commit one job, close.
 *
 * Whatever the bytes, litebus must not crash, leak or hang: it either
 * refuses the file with an error status or works on it.  Seed the corpus
 * with a real litebus database (fuzz_seed writes one), so mutations land
 * in meaningful structures.
 *
 * Built only with clang (-DLITEBUS_FUZZ=ON); CI runs a bounded number of
 * iterations.
 */
#define _XOPEN_SOURCE 700
#include "litebus.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/litebus-fuzz-XXXXXX";
static char path[128];

static int
job(litebus_tx *tx, void *arg)
{
	litebus_record rec = {0};

	(void)arg;
	rec.event_type = "success";
	rec.payload = "fuzz";
	rec.payload_len = 4;
	return litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL);
}

static void
remove_files(void)
{
	char p[160];

	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	litebus_options o;
	litebus *bus;
	FILE *fp;

	if (path[0] == '\0') {
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(path, sizeof path, "%s/fuzz.db", dir);
	}
	fp = fopen(path, "wb");
	if (fp == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, fp) != size)
		abort();
	fclose(fp);

	litebus_options_init(&o);
	o.path = path;
	o.ring_capacity = 8;
	o.busy_timeout_ms = 10;
	if (litebus_open(&o, &bus) == LITEBUS_OK) {
		for (int c = 0; c < LITEBUS_BUILTIN_CHANNELS; c++) {
			litebus_reader *r;
			litebus_row row;
			if (litebus_reader_open(bus, c, LITEBUS_FROM_START, NULL,
						&r) != LITEBUS_OK)
				continue;
			for (int i = 0; i < 5000; i++)
				if (litebus_reader_next(r, &row, 0) !=
				    LITEBUS_OK)
					break;
			litebus_reader_close(r);
		}
		(void)litebus_exec(bus, job, NULL);
		if (litebus_close(bus) != LITEBUS_OK)
			abort();
	}
	remove_files();
	return 0;
}
