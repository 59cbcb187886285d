/* SPDX-License-Identifier: MIT */
/*
 * fuzz_seed.c - write a small litebus database to argv[1], as a seed for
 * fuzz_open's corpus: a few events on every built-in channel.
 */
#include "litebus.h"

#include <stdio.h>
#include <string.h>

static int
job(litebus_tx *tx, void *arg)
{
	static const char *const types[LITEBUS_BUILTIN_CHANNELS] = {
	    "acquired", "success", "signal", "frame", "replayed"};
	(void)arg;
	for (int c = 0; c < LITEBUS_BUILTIN_CHANNELS; c++) {
		for (int i = 0; i < 20; i++) {
			litebus_record rec = {0};
			rec.partition_key = i % 3;
			rec.subject = "exec-0001";
			rec.subject_len = 9;
			rec.event_type = types[c];
			rec.ns = i % 2 ? "ns-a" : NULL;
			rec.payload = "{\"k\":1}";
			rec.payload_len = 7;
			int rc = litebus_emit(tx, c, &rec, NULL);
			if (rc != LITEBUS_OK)
				return rc;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	litebus_options o;
	litebus *bus;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_seed PATH\n");
		return 2;
	}
	litebus_options_init(&o);
	o.path = argv[1];
	rc = litebus_open(&o, &bus);
	if (rc == LITEBUS_OK)
		rc = litebus_exec(bus, job, NULL);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "fuzz_seed: %s\n", litebus_last_errmsg());
		return 1;
	}
	return litebus_close(bus) == LITEBUS_OK ? 0 : 1;
}
