/* SPDX-License-Identifier: MIT */
/*
 * admin.c - `litebus consumers`, `litebus prune` and `litebus check`.
 *
 * consumers and prune change a file only through the library
 * (litebus_consumer_delete, litebus_prune on a read-write bus), so a
 * server's bus and the tool's serialize on SQLite's write lock and every
 * guarantee of the library holds (pruning never passes a durable
 * consumer's position, readers get EXPIRED for what they had not read).
 * check reads the file through SQLite only, read-only, so that it works on
 * a file the library would refuse to open.
 *
 * Invariants
 *   A1  Listing opens read-only (main.c, T1); only --delete and prune
 *       open read-write, and only a file that already has the litebus
 *       schema (T2).
 *   A2  prune reports the rows it removed as counted in the table before
 *       and after (rows another pruner removed meanwhile are counted too,
 *       and the report says "about" only if rows appeared).
 *   A3  check's exit status is 3 if and only if it printed a FAIL line;
 *       WARN lines (things a healthy file may show) do not change it.  A
 *       file without litebus's schema, or one it cannot read, is 1.
 *   A4  check reads everything it compares from one snapshot (one read
 *       transaction), so a server writing meanwhile cannot make a
 *       consumer's position look above the head, or the pruned prefix
 *       above it.
 *   A5  check also opens the file read-only through the library: a file
 *       litebus_open refuses (outbox.c, O2 and O3) fails the check.
 *       Prune and --delete open read-write only channels that exist.
 *
 * Threads: the main thread only.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* consumers                                                            */

static void
consumers_usage(FILE *f)
{
	fprintf(f, "usage: litebus consumers DB [--json]\n"
		   "       litebus consumers DB --delete CHANNEL NAME\n"
		   "\n"
		   "List the durable consumers: channel, name, acknowledged "
		   "position, the\nchannel's head, lag (head - position), "
		   "whether a handle is open on it (in\nany process), and when "
		   "its position last moved.  Opens the file read-only.\n"
		   "\n"
		   "  --json                  one JSON document\n"
		   "  --delete CHANNEL NAME   forget consumer NAME of CHANNEL: "
		   "it no longer holds\n"
		   "                          back pruning (opens the file "
		   "read-write; fails\n"
		   "                          while a handle is open on it)\n"
		   "\n"
		   "Exit status: 0 done, 1 runtime error (no such consumer, "
		   "in use), 2 usage\nerror.\n");
}

int
cli_consumers(int argc, char **argv)
{
	const char *path = NULL, *del_channel = NULL, *del_name = NULL;
	litebus_consumer_info *v = NULL;
	size_t count = 0;
	bool json = false;
	struct cli_file f;
	litebus *bus = NULL;
	struct jbuf b;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			consumers_usage(stdout);
			return CLI_EXIT_OK;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--delete") == 0) {
			if (i + 2 >= argc) {
				cli_err("--delete needs CHANNEL and NAME");
				return CLI_EXIT_USAGE;
			}
			del_channel = argv[++i];
			del_name = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			cli_err("consumers: unknown option '%s'", argv[i]);
			return CLI_EXIT_USAGE;
		} else if (path == NULL) {
			path = argv[i];
		} else {
			cli_err("consumers: unexpected argument '%s'", argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (path == NULL) {
		cli_err("consumers needs DB (litebus consumers --help)");
		return CLI_EXIT_USAGE;
	}
	if (del_channel != NULL && json) {
		cli_err("consumers: --json lists; it does not go with "
			"--delete");
		return CLI_EXIT_USAGE;
	}
	rc = cli_file_load(path, &f);
	if (rc == CLI_EXIT_OK)
		rc = cli_bus_open(&f, del_channel == NULL, del_channel,
				  &bus); /* A1 */
	if (rc != CLI_EXIT_OK)
		return rc;

	if (del_channel != NULL) {
		int ch = cli_channel(bus, del_channel);

		if (ch < 0) {
			litebus_close(bus);
			return CLI_EXIT_ERROR;
		}
		rc = litebus_consumer_delete(bus, ch, del_name);
		if (rc != LITEBUS_OK) {
			cli_lb_err("deleting the consumer", rc);
			rc = CLI_EXIT_ERROR;
		} else {
			printf("deleted consumer %s of %s\n", del_name,
			       litebus_channel_name(bus, ch));
			rc = CLI_EXIT_OK;
		}
		rc = litebus_close(bus) == LITEBUS_OK ? rc : CLI_EXIT_ERROR;
		return rc;
	}

	for (;;) {
		size_t cap = count;

		rc = litebus_consumer_list(bus, -1, v, cap, &count);
		if (rc != LITEBUS_OK) {
			cli_lb_err("listing consumers", rc);
			free(v);
			litebus_close(bus);
			return CLI_EXIT_ERROR;
		}
		if (count <= cap)
			break;
		free(v);
		v = calloc(count, sizeof *v);
		if (v == NULL) {
			cli_err("out of memory");
			litebus_close(bus);
			return CLI_EXIT_ERROR;
		}
	}
	jbuf_init(&b);
	if (json)
		jbuf_adds(&b, "{\"consumers\":[");
	else
		jbuf_addf(&b, "%-24s %-24s %12s %12s %12s %5s %s\n", "CHANNEL",
			  "CONSUMER", "POSITION", "HEAD", "LAG", "OPEN",
			  "ACKED_AT");
	for (size_t i = 0; i < count; i++) {
		const char *chan = litebus_channel_name(bus, v[i].channel);
		char when[32];

		if (json) {
			jbuf_adds(&b,
				  i == 0 ? "{\"channel\":" : ",{\"channel\":");
			json_cstring(&b, chan);
			jbuf_adds(&b, ",\"name\":");
			json_cstring(&b, v[i].name);
			jbuf_addf(&b,
				  ",\"position\":%lld,\"head\":%lld,"
				  "\"lag\":%lld,\"acked_at_ms\":%lld,"
				  "\"open\":%s}",
				  (long long)v[i].position,
				  (long long)v[i].head, (long long)v[i].lag,
				  (long long)v[i].acked_at_ms,
				  v[i].open ? "true" : "false");
		} else {
			cli_iso_time(v[i].acked_at_ms, when);
			jbuf_addf(&b,
				  "%-24s %-24s %12lld %12lld %12lld %5s %s\n",
				  chan != NULL ? chan : "?", v[i].name,
				  (long long)v[i].position,
				  (long long)v[i].head, (long long)v[i].lag,
				  v[i].open ? "yes" : "no", when);
		}
	}
	if (json)
		jbuf_adds(&b, "]}\n");
	rc = cli_write(&b) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
	jbuf_free(&b);
	free(v);
	litebus_close(bus);
	return rc;
}

/* ------------------------------------------------------------------ */
/* prune                                                                */

static void
prune_usage(FILE *f)
{
	fprintf(f,
		"usage: litebus prune DB CHANNEL (--before ID | --older-than "
		"DURATION)\n"
		"\n"
		"Delete CHANNEL's oldest rows through the library "
		"(litebus_prune): a prefix\nof the channel, in short "
		"transactions, never a row a durable consumer has\nnot "
		"acknowledged.  Reports the rows removed, and the consumers "
		"that held\nrows back.  Opens the file read-write; a server "
		"may have it open.\n"
		"\n"
		"  --before ID              rows with event_id < ID\n"
		"  --older-than DURATION    rows committed longer ago than "
		"DURATION: a number\n"
		"                           with ms, s, m, h or d (seconds "
		"if none), e.g. 7d;\n"
		"                           the prefix up to the first row "
		"that is newer\n"
		"\n"
		"Exit status: 0 done (also when consumers held rows back), "
		"1 runtime error,\n2 usage error.\n");
}

/* Rows of the channel's table with event_id < before (or all: 0). */
static int
count_below(sqlite3 *db, const char *name, int64_t before, int64_t *n)
{
	char sql[160];
	sqlite3_stmt *st = NULL;
	int rc;

	if (!cli_name_ok(name))
		return CLI_EXIT_ERROR; /* T3 */
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM main.\"litebus_outbox_%s\" "
		 "WHERE event_id < ?1",
		 name);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, before);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*n = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK) {
		cli_err("counting rows of %s: %s", name, sqlite3_errmsg(db));
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

/* --older-than: the first row committed at or after cutoff_ms, in id
 * order (pruning removes a prefix: rows after it stay even if older);
 * *before = that id, or head + 1 if every row is older. */
static int
first_newer(sqlite3 *db, const char *name, int64_t cutoff_ms, int64_t head,
	    int64_t *before)
{
	char sql[200];
	sqlite3_stmt *st = NULL;
	int rc;

	if (!cli_name_ok(name))
		return CLI_EXIT_ERROR; /* T3 */
	snprintf(sql, sizeof sql,
		 "SELECT event_id FROM main.\"litebus_outbox_%s\" "
		 "WHERE committed_at_ms >= ?1 ORDER BY event_id LIMIT 1",
		 name);
	*before = head + 1;
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, cutoff_ms);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*before = sqlite3_column_int64(st, 0);
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK) {
		cli_err("reading %s: %s", name, sqlite3_errmsg(db));
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

/* Prune below `before`, in steps when progress is shown. */
static int
prune_run(litebus *bus, int ch, int64_t oldest, int64_t before)
{
	/* Ids per litebus_prune call while showing progress. */
	const int64_t step = 10000;
	int64_t from = oldest > 0 ? oldest : 1, at = from;
	int rc;

	if (!cli_progress_enabled()) {
		rc = litebus_prune(bus, ch, before);
		if (rc != LITEBUS_OK) {
			cli_lb_err("pruning", rc);
			return CLI_EXIT_ERROR;
		}
		return CLI_EXIT_OK;
	}
	while (at < before && !cli_stop) {
		int64_t to = before - at > step ? at + step : before;
		int64_t head = 0, now_oldest = 0;

		cli_progress("prune: %lld of %lld ids", (long long)(at - from),
			     (long long)(before - from));
		rc = litebus_prune(bus, ch, to);
		if (rc == LITEBUS_OK)
			rc = litebus_channel_head(bus, ch, &head, &now_oldest);
		if (rc != LITEBUS_OK) {
			cli_lb_err("pruning", rc);
			return CLI_EXIT_ERROR;
		}
		if (now_oldest != 0 && now_oldest < to)
			break; /* held back by a consumer: nothing more goes */
		at = to;
	}
	cli_progress_end();
	return CLI_EXIT_OK;
}

/* Name the consumers of `ch` whose position is below before - 1. */
static void
prune_report_holders(litebus *bus, int ch, int64_t before)
{
	litebus_consumer_info v[16];
	size_t count = 0;
	int rc = litebus_consumer_list(bus, ch, v, 16, &count);

	if (rc != LITEBUS_OK) {
		cli_lb_err("listing consumers", rc);
		return;
	}
	for (size_t i = 0; i < count && i < 16; i++)
		if (v[i].position < before - 1)
			printf("held back by consumer %s at position %lld\n",
			       v[i].name, (long long)v[i].position);
	if (count > 16)
		printf("(and %zu more consumers: litebus consumers DB)\n",
		       count - 16);
}

int
cli_prune(int argc, char **argv)
{
	const char *path = NULL, *chan = NULL, *v;
	int64_t before = 0, older_ms = -1, head = 0, oldest = 0;
	int64_t rows_below = 0, rows_left = 0;
	struct cli_file f;
	litebus *bus = NULL;
	sqlite3 *db = NULL;
	int rc, ch;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			prune_usage(stdout);
			return CLI_EXIT_OK;
		} else if (cli_is_opt(argv[i], "--before")) {
			if ((v = cli_optval(argc, argv, &i, "--before")) ==
			    NULL)
				return CLI_EXIT_USAGE;
			if (!cli_parse_i64(v, 1, INT64_MAX, &before)) {
				cli_err("--before: '%s' is not an event id "
					"(1 or more)",
					v);
				return CLI_EXIT_USAGE;
			}
		} else if (cli_is_opt(argv[i], "--older-than")) {
			if ((v = cli_optval(argc, argv, &i, "--older-than")) ==
			    NULL)
				return CLI_EXIT_USAGE;
			if (!cli_parse_duration(v, &older_ms)) {
				cli_err("--older-than: '%s' is not a duration "
					"(such as 500ms, 30s, 15m, 2h, 7d)",
					v);
				return CLI_EXIT_USAGE;
			}
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			cli_err("prune: unknown option '%s'", argv[i]);
			return CLI_EXIT_USAGE;
		} else if (path == NULL) {
			path = argv[i];
		} else if (chan == NULL) {
			chan = argv[i];
		} else {
			cli_err("prune: unexpected argument '%s'", argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (path == NULL || chan == NULL) {
		cli_err("prune needs DB and CHANNEL (litebus prune --help)");
		return CLI_EXIT_USAGE;
	}
	if ((before > 0) == (older_ms >= 0)) {
		cli_err("prune needs exactly one of --before and --older-than");
		return CLI_EXIT_USAGE;
	}

	rc = cli_db_open(path, &db);
	if (rc == CLI_EXIT_OK)
		rc = cli_file_read(db, path, &f);
	if (rc == CLI_EXIT_OK)
		rc = cli_bus_open(&f, false, chan, &bus); /* A1 */
	if (rc != CLI_EXIT_OK)
		return cli_db_close(db, rc);
	cli_catch_signals();
	ch = cli_channel(bus, chan);
	if (ch < 0) {
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	chan = litebus_channel_name(bus, ch);
	rc = litebus_channel_head(bus, ch, &head, &oldest);
	if (rc != LITEBUS_OK) {
		cli_lb_err("reading the channel head", rc);
		rc = CLI_EXIT_ERROR;
		goto out;
	}
	rc = CLI_EXIT_OK;
	if (older_ms >= 0)
		rc = first_newer(db, chan, cli_now_ms() - older_ms, head,
				 &before);
	if (rc == CLI_EXIT_OK)
		rc = count_below(db, chan, before, &rows_below);
	if (rc == CLI_EXIT_OK && before > 1 && rows_below > 0)
		rc = prune_run(bus, ch, oldest, before);
	if (rc == CLI_EXIT_OK)
		rc = count_below(db, chan, before, &rows_left);
	if (rc == CLI_EXIT_OK)
		rc = litebus_channel_head(bus, ch, &head, &oldest) == LITEBUS_OK
			 ? CLI_EXIT_OK
			 : CLI_EXIT_ERROR;
	if (rc != CLI_EXIT_OK)
		goto out;
	/* A2 */
	printf("pruned %lld rows of %s with event_id < %lld; %lld such rows "
	       "remain; oldest retained: %lld, head: %lld\n",
	       (long long)(rows_below > rows_left ? rows_below - rows_left : 0),
	       chan, (long long)before, (long long)rows_left, (long long)oldest,
	       (long long)head);
	if (rows_left > 0)
		prune_report_holders(bus, ch, before);
	if (cli_stop)
		printf("interrupted\n");
out:
	if (litebus_close(bus) != LITEBUS_OK && rc == CLI_EXIT_OK)
		rc = CLI_EXIT_ERROR;
	return cli_db_close(db, rc);
}

/* ------------------------------------------------------------------ */
/* check                                                                */

static void
check_usage(FILE *f)
{
	fprintf(f,
		"usage: litebus check DB\n"
		"\n"
		"Check the file, read-only, and print one line per check: "
		"PASS, WARN or\nFAIL.  SQLite's PRAGMA integrity_check, then "
		"litebus's own invariants\n(doc/schema.md):\n"
		"  - the file is a litebus file (application_id, UTF-8) of "
		"schema version %d;\n"
		"  - every outbox table has its litebus_channel row, with a "
		"high-water mark\n"
		"    that is an integer >= 0, and every row an outbox table;\n"
		"  - event ids are >= 1 and the pruned prefix is gone: no row "
		"at or below\n"
		"    litebus_pruned.pruned_through, which is never above the "
		"high-water mark;\n"
		"  - consumer positions are never above their channel's head "
		"(the larger of\n"
		"    the newest id and the high-water mark);\n"
		"  - no foreign triggers, indexes or views on litebus tables;\n"
		"  - WARN: rows whose committed_at_ms goes back in event_id "
		"order (a clock\n"
		"    stepped back; allowed).\n"
		"\n"
		"Exit status: 0 every check passed, 1 runtime error (cannot "
		"open or read the\nfile), 2 usage error, 3 the file breaks an "
		"invariant (a FAIL line).\n",
		CLI_SCHEMA_VERSION);
}

struct check {
	sqlite3 *db;
	int failures, warnings;
	int64_t t0;
};

static void check_line(struct check *c, const char *status, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));

static void
check_line(struct check *c, const char *status, const char *fmt, ...)
{
	va_list ap;

	cli_progress_end();
	if (strcmp(status, "FAIL") == 0)
		c->failures++;
	else if (strcmp(status, "WARN") == 0)
		c->warnings++;
	printf("%s ", status);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int
check_progress(void *arg)
{
	struct check *c = arg;

	cli_progress("check: integrity_check, %llds",
		     (long long)((cli_now_ms() - c->t0) / 1000));
	return cli_stop ? 1 : 0;
}

/* Run `sql` (one integer column expected in the first row); false and a
 * message on error. */
static bool
check_int(struct check *c, const char *sql, int64_t bind, int64_t *out,
	  bool *is_null)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);

	*out = 0;
	if (is_null != NULL)
		*is_null = true;
	if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) > 0)
		rc = sqlite3_bind_int64(st, 1, bind);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			if (is_null != NULL)
				*is_null =
				    sqlite3_column_type(st, 0) == SQLITE_NULL;
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK) {
		check_line(c, "FAIL", "reading: %s (%s)", sqlite3_errmsg(c->db),
			   sql);
		return false;
	}
	return true;
}

static int
check_integrity(struct check *c)
{
	sqlite3_stmt *st = NULL;
	int rc, lines = 0;
	bool ok = false;

	c->t0 = cli_now_ms();
	if (cli_progress_enabled())
		sqlite3_progress_handler(c->db, 100000, check_progress, c);
	rc = sqlite3_prepare_v2(c->db, "PRAGMA main.integrity_check(100)", -1,
				&st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		if (t != NULL && strcmp(t, "ok") == 0 && lines == 0)
			ok = true;
		else
			check_line(c, "FAIL", "integrity_check: %s",
				   t != NULL ? t : "?");
		lines++;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	sqlite3_progress_handler(c->db, 0, NULL, NULL);
	if (rc != SQLITE_DONE) {
		check_line(c, "FAIL", "integrity_check could not run: %s",
			   cli_stop ? "interrupted" : sqlite3_errmsg(c->db));
		return CLI_EXIT_OK;
	}
	if (ok)
		check_line(c, "PASS", "integrity_check");
	return CLI_EXIT_OK;
}

static void
check_identity(struct check *c, const struct cli_file *f)
{
	int64_t v = 0;
	sqlite3_stmt *st = NULL;
	char enc[16] = "?";

	if (check_int(c, "PRAGMA main.application_id", 0, &v, NULL)) {
		if ((uint32_t)(v & 0xffffffff) ==
		    (uint32_t)LITEBUS_APPLICATION_ID)
			check_line(c, "PASS", "application_id is 0x%08X",
				   (unsigned)LITEBUS_APPLICATION_ID);
		else
			check_line(c, "FAIL",
				   "application_id is 0x%08X, not litebus's "
				   "0x%08X",
				   (unsigned)(v & 0xffffffff),
				   (unsigned)LITEBUS_APPLICATION_ID);
	}
	if (sqlite3_prepare_v2(c->db, "PRAGMA main.encoding", -1, &st, NULL) ==
		SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(enc, sizeof enc, "%s",
			 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	check_line(c, strcmp(enc, "UTF-8") == 0 ? "PASS" : "FAIL",
		   "text encoding is %s", enc);
	if (f->schema_version == CLI_SCHEMA_VERSION)
		check_line(c, "PASS", "schema version %lld",
			   (long long)f->schema_version);
	else
		check_line(c, "FAIL",
			   "schema version %lld; this tool knows version %d",
			   (long long)f->schema_version, CLI_SCHEMA_VERSION);
}

/* Every litebus_channel row has a valid name and an integer high-water
 * mark >= 0; every outbox table has a row; no foreign objects. */
static void
check_catalog(struct check *c)
{
	sqlite3_stmt *st = NULL;
	int rc, bad = 0;

	rc = sqlite3_prepare_v2(
	    c->db,
	    "SELECT name, typeof(high_water), high_water FROM "
	    "main.litebus_channel ORDER BY name",
	    -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *type = (const char *)sqlite3_column_text(st, 1);

		if (name == NULL || !cli_name_ok(name)) {
			check_line(c, "FAIL",
				   "litebus_channel has a row whose name is "
				   "not a channel name");
			bad++;
		} else if (type == NULL || strcmp(type, "integer") != 0 ||
			   sqlite3_column_int64(st, 2) < 0) {
			check_line(c, "FAIL",
				   "channel %s: high_water is not an integer "
				   ">= 0",
				   name);
			bad++;
		}
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		check_line(c, "FAIL", "reading litebus_channel: %s",
			   sqlite3_errmsg(c->db));
		return;
	}

	/* Outbox tables without a channel row. */
	rc = sqlite3_prepare_v2(
	    c->db,
	    "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND "
	    "lower(name) LIKE 'litebus\\_outbox\\_%' ESCAPE '\\' AND "
	    "lower(substr(name, 16)) NOT IN (SELECT lower(name) FROM "
	    "main.litebus_channel)",
	    -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		check_line(c, "FAIL", "table %s has no litebus_channel row",
			   (const char *)sqlite3_column_text(st, 0));
		bad++;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		check_line(c, "FAIL", "reading sqlite_schema: %s",
			   sqlite3_errmsg(c->db));
		return;
	}
	if (bad == 0)
		check_line(c, "PASS",
			   "channels: every table has its row, "
			   "every high-water mark is an integer "
			   ">= 0");

	/* Foreign objects: triggers, indexes and views on litebus tables
	 * or named litebus_*, other than each channel's index and
	 * high-water trigger (their SQL as litebus writes it), and SQLite's
	 * own automatic indexes. */
	bad = 0;
	rc = sqlite3_prepare_v2(
	    c->db,
	    "SELECT type, name, tbl_name, sql FROM main.sqlite_schema "
	    "WHERE type IN ('trigger', 'index', 'view') AND "
	    "(lower(tbl_name) LIKE 'litebus\\_%' ESCAPE '\\' OR "
	    "lower(name) LIKE 'litebus\\_%' ESCAPE '\\') ORDER BY name",
	    -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *tbl = (const char *)sqlite3_column_text(st, 2);
		const char *sql = (const char *)sqlite3_column_text(st, 3);
		const char *ch;
		char want[512];
		bool ours = false;

		rc = SQLITE_OK;
		if (type == NULL || name == NULL || tbl == NULL)
			continue;
		if (strncmp(name, "sqlite_autoindex_", 17) == 0)
			continue;
		ch = strncasecmp(tbl, "litebus_outbox_", 15) == 0 ? tbl + 15
								  : NULL;
		if (ch != NULL && cli_name_ok(ch) &&
		    strcmp(type, "index") == 0) {
			snprintf(want, sizeof want,
				 "CREATE INDEX \"litebus_outbox_%s_partition\" "
				 "ON \"litebus_outbox_%s\"(partition_key, "
				 "event_id)",
				 ch, ch);
			ours = sql != NULL && strcmp(sql, want) == 0;
		} else if (ch != NULL && cli_name_ok(ch) &&
			   strcmp(type, "trigger") == 0) {
			snprintf(want, sizeof want,
				 "CREATE TRIGGER \"litebus_outbox_%s_hw\" "
				 "AFTER DELETE ON \"litebus_outbox_%s\" BEGIN "
				 "UPDATE litebus_channel SET high_water = "
				 "OLD.event_id WHERE name = '%s' AND "
				 "high_water < OLD.event_id; END",
				 ch, ch, ch);
			ours = sql != NULL && strcmp(sql, want) == 0;
		}
		if (!ours) {
			check_line(c, "FAIL",
				   "%s %s on %s is not litebus's (foreign "
				   "objects on litebus tables are refused)",
				   type, name, tbl);
			bad++;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		check_line(c, "FAIL", "reading sqlite_schema: %s",
			   sqlite3_errmsg(c->db));
		return;
	}
	if (bad == 0)
		check_line(c, "PASS",
			   "no foreign triggers, indexes or views on litebus "
			   "tables");
}

/* Per channel: ids >= 1, the pruned prefix is gone and not above the
 * high-water mark, committed_at_ms in id order (WARN). */
static void
check_channel(struct check *c, const char *name, int i, int n,
	      int64_t *head_out)
{
	char sql[400];
	int64_t min_id = 0, max_id = 0, hw = 0, through = 0, below = 0,
		backwards = 0;
	bool null_min, null_through;

	*head_out = -1;
	snprintf(sql, sizeof sql,
		 "SELECT min(event_id) FROM main.\"litebus_outbox_%s\"", name);
	if (!check_int(c, sql, 0, &min_id, &null_min))
		return;
	snprintf(sql, sizeof sql,
		 "SELECT max(event_id) FROM main.\"litebus_outbox_%s\"", name);
	if (!check_int(c, sql, 0, &max_id, NULL))
		return;
	snprintf(sql, sizeof sql,
		 "SELECT high_water FROM main.litebus_channel WHERE name = "
		 "'%s'",
		 name);
	if (!check_int(c, sql, 0, &hw, NULL))
		return;
	snprintf(sql, sizeof sql,
		 "SELECT pruned_through FROM main.litebus_pruned WHERE name "
		 "= lower('%s')",
		 name);
	if (!check_int(c, sql, 0, &through, &null_through))
		return;
	*head_out = max_id > hw ? max_id : hw;
	if (!null_min && min_id < 1) {
		check_line(c, "FAIL", "channel %s: event_id %lld is below 1",
			   name, (long long)min_id);
		return;
	}
	if (!null_through) {
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM main.\"litebus_outbox_%s\" "
			 "WHERE event_id <= ?1",
			 name);
		if (!check_int(c, sql, through, &below, NULL))
			return;
		if (below > 0) {
			check_line(c, "FAIL",
				   "channel %s: %lld rows at or below "
				   "pruned_through %lld (pruning removes a "
				   "prefix)",
				   name, (long long)below, (long long)through);
			return;
		}
		if (through > *head_out) {
			check_line(c, "FAIL",
				   "channel %s: pruned_through %lld is above "
				   "the head %lld",
				   name, (long long)through,
				   (long long)*head_out);
			return;
		}
	}
	cli_progress("check: channel %d of %d (%s)", i + 1, n, name);
	/* Rows whose commit time is earlier than the row before them. */
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM (SELECT committed_at_ms < lag("
		 "committed_at_ms) OVER (ORDER BY event_id) AS back FROM "
		 "main.\"litebus_outbox_%s\") WHERE back",
		 name);
	if (!check_int(c, sql, 0, &backwards, NULL))
		return;
	if (backwards > 0)
		check_line(c, "WARN",
			   "channel %s: %lld rows were committed earlier than "
			   "the row before them (the clock stepped back)",
			   name, (long long)backwards);
	check_line(c, "PASS",
		   "channel %s: ids %lld..%lld, high-water mark %lld, pruned "
		   "through %lld",
		   name, (long long)(null_min ? 0 : min_id), (long long)max_id,
		   (long long)hw, (long long)through);
}

/* Consumer positions are integers >= 0, on a channel of the file, never
 * above its head. */
static void
check_consumers(struct check *c, const struct cli_file *f, const int64_t *heads)
{
	sqlite3_stmt *st = NULL;
	int rc, bad = 0, n = 0;

	rc = sqlite3_prepare_v2(c->db,
				"SELECT channel, name, typeof(position), "
				"position FROM main.litebus_consumer "
				"ORDER BY channel, name",
				-1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *chan = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *type = (const char *)sqlite3_column_text(st, 2);
		int64_t pos = sqlite3_column_int64(st, 3);
		int k = -1;

		rc = SQLITE_OK;
		n++;
		for (int i = 0; chan != NULL && i < f->nchannels; i++)
			if (strcasecmp(chan, f->names[i]) == 0)
				k = i;
		if (chan == NULL || name == NULL || k < 0) {
			check_line(c, "FAIL",
				   "consumer %s: channel %s is not in the file",
				   name != NULL ? name : "?",
				   chan != NULL ? chan : "?");
			bad++;
		} else if (type == NULL || strcmp(type, "integer") != 0 ||
			   pos < 0) {
			check_line(c, "FAIL",
				   "consumer %s of %s: position is not an "
				   "integer >= 0",
				   name, chan);
			bad++;
		} else if (heads[k] >= 0 && pos > heads[k]) {
			check_line(c, "FAIL",
				   "consumer %s of %s: position %lld is above "
				   "the channel's head %lld",
				   name, chan, (long long)pos,
				   (long long)heads[k]);
			bad++;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		check_line(c, "FAIL", "reading litebus_consumer: %s",
			   sqlite3_errmsg(c->db));
		return;
	}
	if (bad == 0)
		check_line(c, "PASS",
			   "%d consumers, every position within its "
			   "channel's head",
			   n);
}

/* A5: what litebus_open itself refuses (ESCHEMA for objects litebus did
 * not make or of another shape, a dropped high-water trigger, foreign
 * tables in its namespace, ...; outbox.c's O2 and O3) is a failure of
 * the file, whatever the checks above found.  A read-only open writes
 * nothing. */
static void
check_library_accepts(struct check *c, const char *path)
{
	litebus_options o;
	litebus *bus = NULL;
	int rc;

	litebus_options_init(&o);
	o.path = path;
	o.read_only = 1;
	o.watch = LITEBUS_WATCH_OFF;
	rc = litebus_open(&o, &bus);
	if (rc == LITEBUS_OK) {
		check_line(c, "ok", "litebus opens it");
		(void)litebus_close(bus);
		return;
	}
	check_line(c, "FAIL", "litebus refuses to open it: %s (%s)",
		   litebus_errname(rc), litebus_last_errmsg());
}

int
cli_check(int argc, char **argv)
{
	const char *path = NULL;
	struct cli_file f;
	struct check c;
	int64_t heads[LITEBUS_MAX_CHANNELS];
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			check_usage(stdout);
			return CLI_EXIT_OK;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			cli_err("check: unknown option '%s'", argv[i]);
			return CLI_EXIT_USAGE;
		} else if (path == NULL) {
			path = argv[i];
		} else {
			cli_err("check: unexpected argument '%s'", argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (path == NULL) {
		cli_err("check needs DB (litebus check --help)");
		return CLI_EXIT_USAGE;
	}
	memset(&c, 0, sizeof c);
	rc = cli_db_open(path, &c.db);
	if (rc != CLI_EXIT_OK)
		return rc;
	cli_catch_signals();
	/* A4: every read from one snapshot, so that a server committing,
	 * acknowledging and pruning meanwhile cannot make the heads, the
	 * positions and the pruned prefix disagree. */
	if (sqlite3_exec(c.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		cli_err("%s: %s", path, sqlite3_errmsg(c.db));
		return cli_db_close(c.db, CLI_EXIT_ERROR);
	}
	check_integrity(&c);
	if (cli_file_read(c.db, path, &f) != CLI_EXIT_OK) {
		/* Not a litebus file (or unreadable): nothing to check. */
		cli_progress_end();
		return cli_db_close(c.db, CLI_EXIT_ERROR);
	}
	check_identity(&c, &f);
	check_catalog(&c);
	for (int i = 0; i < f.nchannels && !cli_stop; i++)
		check_channel(&c, f.names[i], i, f.nchannels, &heads[i]);
	check_consumers(&c, &f, heads);
	cli_progress_end();
	/* A read transaction: ending it loses nothing. */
	(void)sqlite3_exec(c.db, "COMMIT", NULL, NULL, NULL);
	if (cli_db_close(c.db, CLI_EXIT_OK) != CLI_EXIT_OK)
		return CLI_EXIT_ERROR;
	check_library_accepts(&c, path);
	if (cli_stop) {
		printf("interrupted\n");
		return CLI_EXIT_ERROR;
	}
	printf("%s: %d failed, %d warnings\n", c.failures ? "FAIL" : "ok",
	       c.failures, c.warnings);
	return c.failures > 0 ? CLI_EXIT_PROBLEMS : CLI_EXIT_OK; /* A3 */
}
