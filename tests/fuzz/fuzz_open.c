/* SPDX-License-Identifier: MIT */
/*
 * fuzz_open.c - libFuzzer target: open a mutated database file with
 * litebus, read every channel with a reader, commit one job, close.
 *
 * Whatever the bytes, litebus must not crash, leak or hang: it either
 * refuses the file with one of litebus_open's documented errors, leaving
 * its bytes as they were ("On failure ... the file was not modified"), or
 * works on it.  Seed the corpus with a real litebus database (fuzz_seed
 * writes one, marked with LITEBUS_APPLICATION_ID), so mutations land in
 * meaningful structures.
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

/* litebus_open's errors for a file it cannot or will not use. */
static int
documented_open_error(int rc)
{
	return rc == LITEBUS_ENOTDB || rc == LITEBUS_ESQLITE ||
	       rc == LITEBUS_ESCHEMA || rc == LITEBUS_EFOREIGN ||
	       rc == LITEBUS_EIO || rc == LITEBUS_ECANTOPEN ||
	       rc == LITEBUS_EREADONLY || rc == LITEBUS_EBUSY ||
	       rc == LITEBUS_ENOMEM;
}

/* Are the file's bytes exactly data[0..size)? */
static int
file_is(const uint8_t *data, size_t size)
{
	FILE *fp = fopen(path, "rb");
	unsigned char buf[4096];
	size_t off = 0, n;
	int same = 1;

	if (fp == NULL)
		abort();
	while (same && (n = fread(buf, 1, sizeof buf, fp)) > 0) {
		same = off + n <= size && memcmp(buf, data + off, n) == 0;
		off += n;
	}
	fclose(fp);
	return same && off == size;
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
	int rc;

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
	rc = litebus_open(&o, &bus);
	if (rc != LITEBUS_OK) {
		if (!documented_open_error(rc) || bus != NULL) {
			fprintf(stderr, "fuzz_open: litebus_open: %s: %s\n",
				litebus_errname(rc), litebus_last_errmsg());
			abort();
		}
		if (!file_is(data, size)) {
			fprintf(stderr,
				"fuzz_open: %s, but the file changed: %s\n",
				litebus_errname(rc), litebus_last_errmsg());
			abort();
		}
	} else {
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
