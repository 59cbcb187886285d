/* SPDX-License-Identifier: MIT */
/*
 * stat.c - `litebus stat DB` and `litebus channels DB`: what a file holds,
 * on a read-only bus (heads, consumers, metrics) and a read-only SQLite
 * connection (row counts, sizes, the schema version; doc/schema.md).
 *
 * Invariants
 *   S1  Only reads: the bus is read-only and the connection
 *       SQLITE_OPEN_READONLY (main.c, T1).
 *   S2  --json prints one JSON document; --prometheus prints the
 *       library's litebus_metrics_format() text unchanged, so a file
 *       scraped with the tool and a server's /metrics agree, followed by
 *       two families only the file gives: litebus_channel_rows and
 *       litebus_channel_size_bytes.
 *
 * Threads: the main thread only.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void
stat_usage(FILE *f)
{
	fprintf(f,
		"usage: litebus stat DB [--json | --prometheus]\n"
		"\n"
		"Per channel: the head (high-water mark), the oldest retained "
		"id, the row\ncount and the approximate size on disk (table "
		"and index pages); per durable\nconsumer: its position and "
		"lag; the -wal file's size; the schema version.\nThe file is "
		"opened read-only.\n"
		"\n"
		"  --json         one JSON document\n"
		"  --prometheus   Prometheus text exposition format (0.0.4), "
		"the same text as\n"
		"                 litebus_metrics_format() gives a server's "
		"/metrics, then\n"
		"                 litebus_channel_rows and "
		"litebus_channel_size_bytes\n"
		"\n"
		"Exit status: 0 done, 1 runtime error, 2 usage error.\n");
}

static void
channels_usage(FILE *f)
{
	fprintf(f, "usage: litebus channels DB [--json]\n"
		   "\n"
		   "List the channels the file holds, with their id on a "
		   "read-only bus, head\n(high-water mark) and oldest retained "
		   "event id.\n"
		   "\n"
		   "  --json   one JSON document\n"
		   "\n"
		   "Exit status: 0 done, 1 runtime error, 2 usage error.\n");
}

/* Parse "DB [flags]"; flags[i] is set when option names[i] is given.
 * Returns an exit code, or -1 after --help. */
static int
parse_db_flags(int argc, char **argv, void (*usage)(FILE *),
	       const char *const *names, bool *flags, const char **db)
{
	*db = NULL;
	for (int i = 1; i < argc; i++) {
		bool known = false;

		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return -1;
		}
		for (int k = 0; names[k] != NULL; k++)
			if (strcmp(argv[i], names[k]) == 0) {
				flags[k] = true;
				known = true;
			}
		if (known)
			continue;
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			cli_err("%s: unknown option '%s'", argv[0], argv[i]);
			return CLI_EXIT_USAGE;
		}
		if (*db != NULL) {
			cli_err("%s: unexpected argument '%s'", argv[0],
				argv[i]);
			return CLI_EXIT_USAGE;
		}
		*db = argv[i];
	}
	if (*db == NULL) {
		cli_err("%s needs DB (litebus %s --help)", argv[0], argv[0]);
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

/* Rows and bytes of a channel's table (and its index), read directly.
 * bytes is -1 if SQLite has no dbstat table. */
static int
channel_size(sqlite3 *db, const char *name, int64_t *rows, int64_t *bytes)
{
	char sql[160];
	sqlite3_stmt *st = NULL;
	int rc;

	*rows = 0;
	*bytes = -1;
	if (!cli_name_ok(name)) /* T3 */
		return CLI_EXIT_ERROR;
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM main.\"litebus_outbox_%s\"", name);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*rows = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK) {
		cli_err("counting the rows of %s: %s", name,
			sqlite3_errmsg(db));
		return CLI_EXIT_ERROR;
	}
	/* dbstat's aggregate mode: one row per table or index, its pages
	 * summed.  Optional (SQLITE_ENABLE_DBSTAT_VTAB). */
	rc = sqlite3_prepare_v2(
	    db,
	    "SELECT coalesce(sum(pgsize), 0) FROM dbstat('main', 1) "
	    "WHERE name IN (SELECT name FROM main.sqlite_schema "
	    "WHERE tbl_name = ?1 COLLATE NOCASE)",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return CLI_EXIT_OK; /* no dbstat: size unknown */
	snprintf(sql, sizeof sql, "litebus_outbox_%s", name);
	if (sqlite3_bind_text(st, 1, sql, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		*bytes = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return CLI_EXIT_OK;
}

/* Size of "<path>-wal", 0 if there is none. */
static int
wal_bytes(const char *path, int64_t *bytes)
{
	char wal[4096];
	struct stat sb;
	int n = snprintf(wal, sizeof wal, "%s-wal", path);

	*bytes = 0;
	if (n < 0 || (size_t)n >= sizeof wal) {
		cli_err("%s: path too long", path);
		return CLI_EXIT_ERROR;
	}
	if (stat(wal, &sb) == 0) {
		*bytes = (int64_t)sb.st_size;
		return CLI_EXIT_OK;
	}
	if (errno == ENOENT)
		return CLI_EXIT_OK;
	cli_err("%s: %s", wal, strerror(errno));
	return CLI_EXIT_ERROR;
}

/* Every durable consumer of the bus; the caller frees *out. */
static int
consumers_get(litebus *bus, litebus_consumer_info **out, size_t *n)
{
	litebus_consumer_info *v = NULL;
	size_t count = 0;
	int rc;

	*out = NULL;
	*n = 0;
	for (;;) {
		size_t cap = count;

		rc = litebus_consumer_list(bus, -1, v, cap, &count);
		if (rc != LITEBUS_OK) {
			cli_lb_err("listing consumers", rc);
			free(v);
			return CLI_EXIT_ERROR;
		}
		if (count <= cap)
			break;
		/* More than room for (or they grew meanwhile): again. */
		free(v);
		v = calloc(count, sizeof *v);
		if (v == NULL) {
			cli_err("out of memory");
			return CLI_EXIT_ERROR;
		}
	}
	*out = v;
	*n = count;
	return CLI_EXIT_OK;
}

/* The library's metrics, then what only the file tells (row counts and
 * sizes per channel), as two more gauge families (S2). */
static int
stat_prometheus(litebus *bus, sqlite3 *db)
{
	char *text = NULL;
	size_t len = 0;
	struct jbuf b;
	int n = litebus_channel_count(bus), rc;

	if (n < 0) {
		cli_lb_err("counting channels", n);
		return CLI_EXIT_ERROR;
	}
	rc = litebus_metrics_format(bus, LITEBUS_METRICS_PROMETHEUS, &text,
				    &len);
	if (rc != LITEBUS_OK) {
		cli_lb_err("formatting the metrics", rc);
		return CLI_EXIT_ERROR;
	}
	jbuf_init(&b);
	jbuf_add(&b, text, len);
	litebus_free(text);
	rc = CLI_EXIT_OK;
	for (int k = 0; k < 2 && rc == CLI_EXIT_OK; k++) {
		jbuf_adds(&b, k == 0
				  ? "# HELP litebus_channel_rows Rows the "
				    "channel's table holds (litebus stat).\n"
				    "# TYPE litebus_channel_rows gauge\n"
				  : "# HELP litebus_channel_size_bytes Pages "
				    "of the channel's table and index "
				    "(litebus stat).\n"
				    "# TYPE litebus_channel_size_bytes "
				    "gauge\n");
		for (int i = 0; i < n && rc == CLI_EXIT_OK; i++) {
			const char *name = litebus_channel_name(bus, i);
			int64_t rows = 0, bytes = -1;

			rc = channel_size(db, name, &rows, &bytes);
			if (rc != CLI_EXIT_OK || (k == 1 && bytes < 0))
				continue; /* no dbstat: no sample */
			/* Channel names are [A-Za-z0-9_]: no label
			 * escaping is needed (T3). */
			jbuf_addf(&b, "%s{channel=\"%s\"} %lld\n",
				  k == 0 ? "litebus_channel_rows"
					 : "litebus_channel_size_bytes",
				  name, (long long)(k == 0 ? rows : bytes));
		}
	}
	if (rc == CLI_EXIT_OK && !cli_write(&b))
		rc = CLI_EXIT_ERROR;
	jbuf_free(&b);
	return rc;
}

static int
stat_report(litebus *bus, sqlite3 *db, const struct cli_file *f, bool json)
{
	litebus_consumer_info *cons = NULL;
	size_t ncons = 0;
	int64_t wal = 0;
	struct jbuf b;
	int n = litebus_channel_count(bus);
	int rc;

	if (n < 0) {
		cli_lb_err("counting channels", n);
		return CLI_EXIT_ERROR;
	}
	rc = wal_bytes(f->path, &wal);
	if (rc == CLI_EXIT_OK)
		rc = consumers_get(bus, &cons, &ncons);
	if (rc != CLI_EXIT_OK)
		return rc;
	jbuf_init(&b);
	if (json) {
		jbuf_adds(&b, "{\"file\":");
		json_cstring(&b, f->path);
		jbuf_addf(&b,
			  ",\"schema_version\":%lld,\"wal_bytes\":%lld,"
			  "\"channels\":[",
			  (long long)f->schema_version, (long long)wal);
	} else {
		jbuf_addf(&b,
			  "file            %s\nschema_version  %lld\n"
			  "wal_bytes       %lld\n\n"
			  "%-24s %12s %12s %12s %12s\n",
			  f->path, (long long)f->schema_version, (long long)wal,
			  "CHANNEL", "HEAD", "OLDEST", "ROWS", "BYTES");
	}
	for (int i = 0; i < n && rc == CLI_EXIT_OK; i++) {
		const char *name = litebus_channel_name(bus, i);
		int64_t head = 0, oldest = 0, rows = 0, bytes = -1;
		int lrc;

		cli_progress("stat: channel %d of %d", i + 1, n);
		lrc = litebus_channel_head(bus, i, &head, &oldest);
		if (lrc != LITEBUS_OK) {
			cli_lb_err(name != NULL ? name : "channel head", lrc);
			rc = CLI_EXIT_ERROR;
			break;
		}
		rc = channel_size(db, name, &rows, &bytes);
		if (rc != CLI_EXIT_OK)
			break;
		if (json) {
			jbuf_adds(&b, i == 0 ? "{\"name\":" : ",{\"name\":");
			json_cstring(&b, name);
			jbuf_addf(&b,
				  ",\"id\":%d,\"head\":%lld,\"oldest\":%lld,"
				  "\"rows\":%lld,\"bytes\":",
				  i, (long long)head, (long long)oldest,
				  (long long)rows);
			if (bytes < 0)
				jbuf_adds(&b, "null}");
			else
				jbuf_addf(&b, "%lld}", (long long)bytes);
		} else {
			jbuf_addf(&b, "%-24s %12lld %12lld %12lld ", name,
				  (long long)head, (long long)oldest,
				  (long long)rows);
			if (bytes < 0)
				jbuf_addf(&b, "%12s\n", "?");
			else
				jbuf_addf(&b, "%12lld\n", (long long)bytes);
		}
	}
	cli_progress_end();
	if (json)
		jbuf_adds(&b, "],\"consumers\":[");
	else if (ncons > 0)
		jbuf_addf(&b, "\n%-24s %-24s %12s %12s %5s %s\n", "CONSUMER",
			  "CHANNEL", "POSITION", "LAG", "OPEN", "ACKED_AT");
	for (size_t i = 0; i < ncons && rc == CLI_EXIT_OK; i++) {
		const litebus_consumer_info *c = &cons[i];
		const char *chan = litebus_channel_name(bus, c->channel);
		char when[32];

		if (json) {
			jbuf_adds(&b, i == 0 ? "{\"name\":" : ",{\"name\":");
			json_cstring(&b, c->name);
			jbuf_adds(&b, ",\"channel\":");
			json_cstring(&b, chan);
			jbuf_addf(&b,
				  ",\"position\":%lld,\"head\":%lld,"
				  "\"lag\":%lld,\"acked_at_ms\":%lld,"
				  "\"open\":%s}",
				  (long long)c->position, (long long)c->head,
				  (long long)c->lag, (long long)c->acked_at_ms,
				  c->open ? "true" : "false");
		} else {
			cli_iso_time(c->acked_at_ms, when);
			jbuf_addf(&b, "%-24s %-24s %12lld %12lld %5s %s\n",
				  c->name, chan != NULL ? chan : "?",
				  (long long)c->position, (long long)c->lag,
				  c->open ? "yes" : "no", when);
		}
	}
	if (json)
		jbuf_adds(&b, "]}\n");
	if (rc == CLI_EXIT_OK && !cli_write(&b))
		rc = CLI_EXIT_ERROR;
	jbuf_free(&b);
	free(cons);
	return rc;
}

int
cli_stat(int argc, char **argv)
{
	static const char *const names[] = {"--json", "--prometheus", NULL};
	bool flags[2] = {false, false};
	struct cli_file f;
	const char *path;
	litebus *bus = NULL;
	sqlite3 *db = NULL;
	int rc;

	rc = parse_db_flags(argc, argv, stat_usage, names, flags, &path);
	if (rc != CLI_EXIT_OK)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (flags[0] && flags[1]) {
		cli_err("stat: --json and --prometheus exclude each other");
		return CLI_EXIT_USAGE;
	}
	rc = cli_db_open(path, &db);
	if (rc == CLI_EXIT_OK)
		rc = cli_file_read(db, path, &f);
	if (rc == CLI_EXIT_OK)
		rc = cli_bus_open(&f, true, NULL, &bus);
	if (rc == CLI_EXIT_OK)
		rc = flags[1] ? stat_prometheus(bus, db)
			      : stat_report(bus, db, &f, flags[0]);
	litebus_close(bus);
	return cli_db_close(db, rc);
}

int
cli_channels(int argc, char **argv)
{
	static const char *const names[] = {"--json", NULL};
	bool json = false;
	struct cli_file f;
	const char *path;
	litebus *bus = NULL;
	struct jbuf b;
	int rc, n;

	rc = parse_db_flags(argc, argv, channels_usage, names, &json, &path);
	if (rc != CLI_EXIT_OK)
		return rc < 0 ? CLI_EXIT_OK : rc;
	rc = cli_file_load(path, &f);
	if (rc == CLI_EXIT_OK)
		rc = cli_bus_open(&f, true, NULL, &bus);
	if (rc != CLI_EXIT_OK)
		return rc;
	n = litebus_channel_count(bus);
	if (n < 0) {
		cli_lb_err("counting channels", n);
		litebus_close(bus);
		return CLI_EXIT_ERROR;
	}
	jbuf_init(&b);
	jbuf_adds(&b, json ? "{\"channels\":["
			   : "  ID CHANNEL                          HEAD "
			     "      OLDEST\n");
	for (int i = 0; i < n; i++) {
		const char *name = litebus_channel_name(bus, i);
		int64_t head = 0, oldest = 0;
		int lrc = litebus_channel_head(bus, i, &head, &oldest);

		if (lrc != LITEBUS_OK) {
			cli_lb_err(name != NULL ? name : "channel head", lrc);
			rc = CLI_EXIT_ERROR;
			break;
		}
		if (json) {
			jbuf_addf(
			    &b, "%s{\"id\":%d,\"name\":", i == 0 ? "" : ",", i);
			json_cstring(&b, name);
			jbuf_addf(&b, ",\"head\":%lld,\"oldest\":%lld}",
				  (long long)head, (long long)oldest);
		} else {
			jbuf_addf(&b, "%4d %-24s %12lld %12lld\n", i, name,
				  (long long)head, (long long)oldest);
		}
	}
	if (json)
		jbuf_adds(&b, "]}\n");
	if (rc == CLI_EXIT_OK && !cli_write(&b))
		rc = CLI_EXIT_ERROR;
	jbuf_free(&b);
	litebus_close(bus);
	return rc;
}
