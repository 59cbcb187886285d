/* SPDX-License-Identifier: MIT */
/*
 * make_schema_v1.c - writes tests/data/schema_v1.db, a database made by
 * litebus 0.1 (schema version 1), for tests/unit/test_retention.c's
 * migration test.  Not built by the project: it is compiled against the
 * 0.1 sources (commit 44b7008), as tests/data/README.md says.
 *
 * Contents: 5 events on "completion" (ids 1-5), 3 on "stream_frame"
 * (ids 1-3) and 4 on the custom channel "orders" (ids 1-4, id 2 deleted
 * by a job afterwards, so the high-water mark matters nowhere but is
 * exercised), each with subject "s<i>", payload "p<i>" and
 * partition_key i.
 */
#include "litebus.h"

#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct emit {
	int channel;
	const char *type;
	int count;
};

static int
emit_job(litebus_tx *tx, void *arg)
{
	const struct emit *e = arg;

	for (int i = 1; i <= e->count; i++) {
		char subject[16], payload[16];
		litebus_record rec = {0};
		int rc;

		snprintf(subject, sizeof subject, "s%d", i);
		snprintf(payload, sizeof payload, "p%d", i);
		rec.partition_key = i;
		rec.subject = subject;
		rec.subject_len = strlen(subject);
		rec.event_type = e->type;
		rec.payload = payload;
		rec.payload_len = strlen(payload);
		rec.occurred_at_ms = 1000 + i;
		rc = litebus_emit(tx, e->channel, &rec, NULL);
		if (rc != LITEBUS_OK)
			return rc;
	}
	return 0;
}

static int
delete_job(litebus_tx *tx, void *arg)
{
	(void)arg;
	return sqlite3_exec(litebus_tx_db(tx),
			    "DELETE FROM litebus_outbox_orders "
			    "WHERE event_id = 2",
			    NULL, NULL, NULL) == SQLITE_OK
		   ? 0
		   : -1;
}

int
main(int argc, char **argv)
{
	static const char *const channels[] = {"orders", NULL};
	litebus_options o;
	litebus *bus;
	int orders;

	if (argc != 2) {
		fprintf(stderr, "usage: %s out.db\n", argv[0]);
		return 2;
	}
	litebus_options_init(&o);
	o.path = argv[1];
	o.channels = channels;
	if (litebus_open(&o, &bus) != LITEBUS_OK) {
		fprintf(stderr, "open: %s\n", litebus_last_errmsg());
		return 1;
	}
	orders = litebus_channel_id(bus, "orders");
	if (litebus_exec(bus, emit_job,
			 &(struct emit){LITEBUS_COMPLETION, "success", 5}) !=
		LITEBUS_OK ||
	    litebus_exec(bus, emit_job,
			 &(struct emit){LITEBUS_STREAM_FRAME, "frame", 3}) !=
		LITEBUS_OK ||
	    litebus_exec(bus, emit_job, &(struct emit){orders, "placed", 4}) !=
		LITEBUS_OK ||
	    litebus_exec(bus, delete_job, NULL) != LITEBUS_OK) {
		fprintf(stderr, "exec: %s\n", litebus_last_errmsg());
		return 1;
	}
	return litebus_close(bus) == LITEBUS_OK ? 0 : 1;
}
