/* SPDX-License-Identifier: MIT */
/*
 * cli_writer.c - the other process of the litebus tool's tests
 * (test_cli.py): a writer on the public API that fills a file with rows
 * of every shape, commits a numbered sequence while the tool follows it
 * (and is killed with SIGKILL in the middle), or holds a durable consumer
 * open.
 *
 *   cli_writer fill DB N          N rows on "orders", N/2 on completion;
 *                                 consumer "billing" of orders acked at
 *                                 N/2, "idle" of completion at 0
 *   cli_writer run DB FIRST N     rows k = FIRST.., one job each, all
 *                                 submitted at once, on "orders"; prints
 *                                 "k event_id" once each job committed
 *   cli_writer hold DB CH NAME    opens consumer NAME of CH, prints
 *                                 "open", closes it at EOF on stdin
 *
 * Exit status 0, or 1 with a message on stderr.
 */
#include <litebus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const extra_channels[] = {"orders", NULL};

struct row_spec {
	int channel;
	long long k;
};

/* Subjects and payloads of every shape the tool must print faithfully:
 * text with quotes, escapes and non-ASCII; bytes that are not UTF-8;
 * empty; NUL bytes; U+2028. */
static int
emit_one(litebus_tx *tx, void *arg)
{
	const struct row_spec *s = arg;
	char subject[64], payload[128];
	litebus_record rec;
	size_t plen;

	memset(&rec, 0, sizeof rec);
	snprintf(subject, sizeof subject, "s-%lld", s->k);
	switch (s->k % 5) {
	case 0:
		plen = (size_t)snprintf(payload, sizeof payload,
					"{\"k\":%lld,\"t\":\"a\\\"b\"}\n\ttab",
					s->k);
		break;
	case 1: /* not UTF-8 */
		plen = (size_t)snprintf(payload, sizeof payload,
					"\xff\xfe bin %lld \xc0\x80", s->k);
		break;
	case 2:
		plen = (size_t)snprintf(payload, sizeof payload,
					"\xc3\xa9\xe6\xbc\xa2 %lld "
					"\xe2\x80\xa8 end",
					s->k);
		break;
	case 3:
		plen = 0;
		break;
	default: /* NUL bytes inside */
		memcpy(payload, "a\0b\0", 4);
		plen = 4;
		subject[0] = '\0'; /* an empty subject, NUL inside */
		memcpy(subject, "\0x", 2);
		rec.subject_len = 2;
		break;
	}
	rec.partition_key = s->k;
	rec.subject = subject;
	if (rec.subject_len == 0)
		rec.subject_len = strlen(subject);
	rec.event_type =
	    s->channel == LITEBUS_COMPLETION ? "success" : "placed";
	rec.ns = s->k % 2 ? "odd" : NULL;
	rec.instance_tag = s->k % 3 == 0 ? "t0" : "t1";
	rec.payload = plen ? payload : NULL;
	rec.payload_len = plen;
	return litebus_emit(tx, s->channel, &rec, NULL);
}

static int
open_bus(const char *path, litebus **bus)
{
	litebus_options o;
	int rc;

	litebus_options_init(&o);
	o.path = path;
	o.channels = extra_channels;
	rc = litebus_open(&o, bus);
	if (rc != LITEBUS_OK)
		fprintf(stderr, "cli_writer: open %s: %s\n", path,
			litebus_last_errmsg());
	return rc;
}

static int
consumer_at(litebus *bus, int ch, const char *name, long long at)
{
	litebus_consumer *c;
	litebus_row row;
	int rc =
	    litebus_consumer_open(bus, ch, name, LITEBUS_FROM_START, NULL, &c);

	while (rc == LITEBUS_OK && at > 0) {
		rc = litebus_consumer_next(c, &row, 5000);
		if (rc == LITEBUS_OK && row.event_id >= at)
			rc = litebus_consumer_ack(c, row.event_id);
		if (rc == LITEBUS_OK && row.event_id >= at)
			break;
	}
	if (rc == LITEBUS_OK)
		rc = litebus_consumer_flush(c);
	litebus_consumer_close(c);
	return rc;
}

static int
fill(const char *path, long long n)
{
	litebus *bus;
	int rc = open_bus(path, &bus), orders;

	if (rc != LITEBUS_OK)
		return 1;
	orders = litebus_channel_id(bus, "orders");
	for (long long k = 1; k <= n && rc == LITEBUS_OK; k++) {
		struct row_spec s = {orders, k};

		rc = litebus_exec(bus, emit_one, &s);
		if (rc == LITEBUS_OK && k % 2 == 0) {
			s.channel = LITEBUS_COMPLETION;
			rc = litebus_exec(bus, emit_one, &s);
		}
	}
	if (rc == LITEBUS_OK)
		rc = consumer_at(bus, orders, "billing", n / 2);
	if (rc == LITEBUS_OK)
		rc = consumer_at(bus, LITEBUS_COMPLETION, "idle", 0);
	if (rc != LITEBUS_OK)
		fprintf(stderr, "cli_writer fill: %d %s\n", rc,
			litebus_last_errmsg());
	litebus_close(bus);
	return rc == LITEBUS_OK ? 0 : 1;
}

struct seq_job {
	int channel;
	long long k;
	int64_t id;
};

static int
emit_seq(litebus_tx *tx, void *arg)
{
	struct seq_job *j = arg;
	char payload[32];
	litebus_record rec;

	memset(&rec, 0, sizeof rec);
	snprintf(payload, sizeof payload, "row %lld", j->k);
	rec.partition_key = j->k;
	rec.event_type = "placed";
	rec.ns = j->k % 2 ? "odd" : "even";
	rec.payload = payload;
	rec.payload_len = strlen(payload);
	j->id = 0; /* a job may be called more than once */
	return litebus_emit(tx, j->channel, &rec, &j->id);
}

/* Done-callback, writer thread: the job committed (status 0). */
static void
seq_done(int status, void *arg)
{
	const struct seq_job *j = arg;

	if (status == 0) {
		printf("%lld %lld\n", j->k, (long long)j->id);
		fflush(stdout);
	} else {
		fprintf(stderr, "cli_writer run: job %lld: %d\n", j->k, status);
	}
}

static int
nothing(litebus_tx *tx, void *arg)
{
	(void)tx;
	(void)arg;
	return 0;
}

/* Every job is submitted at once, so the writer commits batches back to
 * back and a SIGKILL lands anywhere in one, not between two execs. */
static int
run(const char *path, long long first, long long n)
{
	struct seq_job *jobs = calloc((size_t)n, sizeof *jobs);
	litebus *bus;
	int rc, orders;

	if (jobs == NULL || open_bus(path, &bus) != LITEBUS_OK) {
		free(jobs);
		return 1;
	}
	orders = litebus_channel_id(bus, "orders");
	rc = LITEBUS_OK;
	for (long long i = 0; i < n && rc == LITEBUS_OK; i++) {
		jobs[i].channel = orders;
		jobs[i].k = first + i;
		rc =
		    litebus_submit(bus, emit_seq, &jobs[i], seq_done, &jobs[i]);
	}
	/* Jobs run in order: when this one has committed, all have. */
	if (rc == LITEBUS_OK)
		rc = litebus_exec(bus, nothing, NULL);
	if (rc != LITEBUS_OK)
		fprintf(stderr, "cli_writer run: %d %s\n", rc,
			litebus_last_errmsg());
	litebus_close(bus);
	free(jobs);
	return rc == LITEBUS_OK ? 0 : 1;
}

static int
hold(const char *path, const char *channel, const char *name)
{
	litebus *bus;
	litebus_consumer *c;
	int rc = open_bus(path, &bus), ch;

	if (rc != LITEBUS_OK)
		return 1;
	ch = litebus_channel_id(bus, channel);
	rc = litebus_consumer_open(bus, ch, name, LITEBUS_FROM_START, NULL, &c);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "cli_writer hold: %s\n", litebus_last_errmsg());
		litebus_close(bus);
		return 1;
	}
	printf("open\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	litebus_consumer_close(c);
	litebus_close(bus);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "fill") == 0)
		return fill(argv[2], atoll(argv[3]));
	if (argc == 5 && strcmp(argv[1], "run") == 0)
		return run(argv[2], atoll(argv[3]), atoll(argv[4]));
	if (argc == 5 && strcmp(argv[1], "hold") == 0)
		return hold(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: cli_writer fill DB N | run DB FIRST N | "
			"hold DB CHANNEL NAME\n");
	return 2;
}
