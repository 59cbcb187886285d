/* SPDX-License-Identifier: MIT */
/*
 * tail.c - `litebus tail DB CHANNEL`: a channel's rows, one line (or one
 * JSON object) each, through a litebus reader on a read-only bus.
 *
 * Without --follow it prints the rows committed up to the channel's head
 * when it started, then exits; with --follow it keeps printing rows as
 * they are committed - by any process (the library's watcher wakes the
 * reader for commits made elsewhere) - until SIGINT or SIGTERM.
 *
 * Invariants
 *   L1  Every row the reader returns is printed once, in the reader's
 *       order (event_id order; the library delivers each committed row
 *       once).  Rows lost to pruning before they were read are reported
 *       on stderr with their range, never skipped silently.
 *   L2  A JSON line holds bytes as a string only if they are valid UTF-8;
 *       otherwise base64, and the field "<name>_encoding" says which.
 *   L3  While following, stdout is flushed whenever the reader has
 *       caught up, so a pipe sees each row within one wait slice.
 *
 * Threads: the main thread only.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How long one wait lasts while following: the bound on noticing Ctrl-C. */
#define TAIL_WAIT_MS 200

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: litebus tail DB CHANNEL [--from ID | --from-now] "
		"[--follow]\n"
		"                    [--partition K] [--namespace NS] [--tag "
		"T] [--json]\n"
		"\n"
		"Print CHANNEL's rows in event_id order, one per line.  The "
		"file is opened\nread-only; a server may have it open and "
		"keep committing.\n"
		"\n"
		"  --from ID        start with event_id ID (default: the "
		"oldest row)\n"
		"  --from-now       start after the newest committed row\n"
		"  --follow, -f     keep printing rows as they are committed, "
		"by any process,\n"
		"                   until interrupted (SIGINT or SIGTERM: exit "
		"status 0)\n"
		"  --partition K    only rows with partition_key K\n"
		"  --namespace NS   only rows whose namespace is NS\n"
		"  --tag T          only rows whose instance_tag is T\n"
		"  --json           one JSON object per line, every column; "
		"subject and\n"
		"                   payload as text if valid UTF-8, else "
		"base64, and\n"
		"                   subject_encoding/payload_encoding say "
		"which (\"utf-8\"\n"
		"                   or \"base64\")\n"
		"\n"
		"Without --follow, prints the rows committed up to the "
		"channel's head as it\nwas when tail started, then exits.  "
		"Rows pruned before tail read them are\nreported on stderr "
		"with their range.\n"
		"\n"
		"Exit status: 0 done, 1 runtime error, 2 usage error.\n");
}

/* A bytes field of the JSON object (L2). */
static void
json_bytes(struct jbuf *b, const char *key, const void *p, size_t n)
{
	bool text = utf8_valid(p, n);

	jbuf_addf(b, ",\"%s\":", key);
	if (text) {
		json_string(b, p, n);
	} else {
		jbuf_add(b, "\"", 1);
		base64_add(b, p, n);
		jbuf_add(b, "\"", 1);
	}
	jbuf_addf(b, ",\"%s_encoding\":\"%s\"", key, text ? "utf-8" : "base64");
}

static void
row_json(struct jbuf *b, const char *channel, const litebus_row *row)
{
	jbuf_adds(b, "{\"channel\":");
	json_cstring(b, channel);
	jbuf_addf(b, ",\"event_id\":%lld,\"partition_key\":%lld",
		  (long long)row->event_id, (long long)row->partition_key);
	jbuf_adds(b, ",\"event_type\":");
	json_cstring(b, row->event_type);
	jbuf_adds(b, ",\"namespace\":");
	json_cstring(b, row->ns);
	jbuf_adds(b, ",\"instance_tag\":");
	json_cstring(b, row->instance_tag);
	json_bytes(b, "subject", row->subject, row->subject_len);
	json_bytes(b, "payload", row->payload, row->payload_len);
	jbuf_addf(b, ",\"occurred_at_ms\":%lld,\"committed_at_ms\":%lld}\n",
		  (long long)row->occurred_at_ms,
		  (long long)row->committed_at_ms);
}

/* One line: id, commit time, type, key, ns and tag if set, subject and
 * payload as JSON strings when they are text, base64:... otherwise. */
static void
row_text(struct jbuf *b, const litebus_row *row)
{
	char when[32];

	cli_iso_time(row->committed_at_ms, when);
	jbuf_addf(b, "%lld %s ", (long long)row->event_id, when);
	jbuf_adds(b, row->event_type);
	jbuf_addf(b, " key=%lld", (long long)row->partition_key);
	if (row->ns != NULL) {
		jbuf_adds(b, " ns=");
		json_cstring(b, row->ns);
	}
	if (row->instance_tag != NULL) {
		jbuf_adds(b, " tag=");
		json_cstring(b, row->instance_tag);
	}
	for (int i = 0; i < 2; i++) {
		const void *p = i == 0 ? row->subject : row->payload;
		size_t n = i == 0 ? row->subject_len : row->payload_len;

		jbuf_adds(b, i == 0 ? " subject=" : " payload=");
		if (utf8_valid(p, n)) {
			json_string(b, p, n);
		} else {
			jbuf_adds(b, "base64:");
			base64_add(b, p, n);
		}
	}
	jbuf_add(b, "\n", 1);
}

struct tail_args {
	const char *db, *channel;
	int64_t from; /* first id to print; 0: the oldest */
	bool from_now, follow, json;
	bool by_partition;
	litebus_filter filter;
};

static int
parse(int argc, char **argv, struct tail_args *a)
{
	int npos = 0;

	memset(a, 0, sizeof *a);
	a->filter.any_partition = 1;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *v;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout);
			return -1;
		} else if (cli_is_opt(arg, "--from")) {
			if ((v = cli_optval(argc, argv, &i, "--from")) == NULL)
				return CLI_EXIT_USAGE;
			if (!cli_parse_i64(v, 1, INT64_MAX, &a->from)) {
				cli_err("--from: '%s' is not an event id (1 "
					"or more)",
					v);
				return CLI_EXIT_USAGE;
			}
		} else if (strcmp(arg, "--from-now") == 0) {
			a->from_now = true;
		} else if (strcmp(arg, "--follow") == 0 ||
			   strcmp(arg, "-f") == 0) {
			a->follow = true;
		} else if (strcmp(arg, "--json") == 0) {
			a->json = true;
		} else if (cli_is_opt(arg, "--partition")) {
			if ((v = cli_optval(argc, argv, &i, "--partition")) ==
			    NULL)
				return CLI_EXIT_USAGE;
			if (!cli_parse_i64(v, INT64_MIN, INT64_MAX,
					   &a->filter.partition_key)) {
				cli_err("--partition: '%s' is not an integer",
					v);
				return CLI_EXIT_USAGE;
			}
			a->filter.any_partition = 0;
		} else if (cli_is_opt(arg, "--namespace")) {
			if ((v = cli_optval(argc, argv, &i, "--namespace")) ==
			    NULL)
				return CLI_EXIT_USAGE;
			a->filter.ns = v;
		} else if (cli_is_opt(arg, "--tag")) {
			if ((v = cli_optval(argc, argv, &i, "--tag")) == NULL)
				return CLI_EXIT_USAGE;
			a->filter.instance_tag = v;
		} else if (arg[0] == '-' && arg[1] != '\0') {
			cli_err("tail: unknown option '%s'", arg);
			return CLI_EXIT_USAGE;
		} else if (npos == 0) {
			a->db = arg;
			npos++;
		} else if (npos == 1) {
			a->channel = arg;
			npos++;
		} else {
			cli_err("tail: unexpected argument '%s'", arg);
			return CLI_EXIT_USAGE;
		}
	}
	if (npos != 2) {
		cli_err("tail needs DB and CHANNEL (litebus tail --help)");
		return CLI_EXIT_USAGE;
	}
	if (a->from != 0 && a->from_now) {
		cli_err("tail: --from and --from-now exclude each other");
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

/* Read and print until caught up with `stop_at` (not following) or until
 * interrupted (following). */
static int
tail_loop(const struct tail_args *a, const char *channel, litebus_reader *r,
	  int64_t stop_at)
{
	struct jbuf out;
	litebus_row row;
	int rc, exit_code = CLI_EXIT_OK;

	jbuf_init(&out);
	for (;;) {
		if (cli_stop)
			break;
		rc = litebus_reader_next(r, &row, 0);
		if (rc == LITEBUS_TIMEOUT) {
			if (!a->follow)
				break; /* caught up with the table */
			/* L3: caught up: let the pipe see what we have. */
			if (fflush(stdout) != 0) {
				cli_err("writing the output: %s",
					strerror(errno));
				exit_code = CLI_EXIT_ERROR;
				break;
			}
			rc = litebus_reader_next(r, &row, TAIL_WAIT_MS);
			if (rc == LITEBUS_TIMEOUT)
				continue;
		}
		if (rc == LITEBUS_OK) {
			if (!a->follow && row.event_id > stop_at)
				break;
			jbuf_reset(&out);
			if (a->json)
				row_json(&out, channel, &row);
			else
				row_text(&out, &row);
			if (!cli_write(&out)) {
				exit_code = CLI_EXIT_ERROR;
				break;
			}
		} else if (rc == LITEBUS_EXPIRED) {
			int64_t first = 0, last = 0;

			(void)litebus_reader_expired(r, &first, &last);
			cli_err("rows %lld..%lld of %s were pruned before "
				"they were read",
				(long long)first, (long long)last, channel);
		} else if (rc == LITEBUS_CLOSED) {
			break;
		} else if (rc == LITEBUS_EBUSY) {
			continue; /* the cursor is unchanged: retry */
		} else {
			cli_lb_err("reading", rc);
			exit_code = CLI_EXIT_ERROR;
			break;
		}
	}
	jbuf_free(&out);
	return exit_code;
}

int
cli_tail(int argc, char **argv)
{
	struct tail_args a;
	struct cli_file f;
	litebus *bus = NULL;
	litebus_reader *r = NULL;
	int64_t head = 0, oldest = 0, after;
	int rc, ch;

	rc = parse(argc, argv, &a);
	if (rc != CLI_EXIT_OK)
		return rc < 0 ? CLI_EXIT_OK : rc;
	rc = cli_file_load(a.db, &f);
	if (rc == CLI_EXIT_OK)
		rc = cli_bus_open(&f, true, a.channel, &bus);
	if (rc != CLI_EXIT_OK)
		return rc;
	ch = cli_channel(bus, a.channel);
	if (ch < 0) {
		litebus_close(bus);
		return CLI_EXIT_ERROR;
	}
	after = a.from_now   ? LITEBUS_FROM_NOW
		: a.from > 0 ? a.from - 1
			     : LITEBUS_FROM_START;
	cli_catch_signals();
	rc = litebus_reader_open(bus, ch, after, &a.filter, &r);
	if (rc != LITEBUS_OK) {
		cli_lb_err("opening a reader", rc);
		litebus_close(bus);
		return CLI_EXIT_ERROR;
	}
	/* Not following: what was committed when the reader opened (it
	 * attached first, so nothing up to here is missed). */
	if (!a.follow) {
		rc = litebus_channel_head(bus, ch, &head, &oldest);
		if (rc != LITEBUS_OK) {
			cli_lb_err("reading the channel head", rc);
			litebus_reader_close(r);
			litebus_close(bus);
			return CLI_EXIT_ERROR;
		}
	}
	rc = tail_loop(&a, litebus_channel_name(bus, ch), r, head);
	litebus_reader_close(r);
	litebus_close(bus);
	return rc;
}
