/* SPDX-License-Identifier: MIT */
/*
 * main.c - the litebus command-line tool: dispatch, --help, --version,
 * and what every subcommand shares (opening a file, messages, progress,
 * parsing).
 *
 * The tool uses the public library (liblitebus) for everything litebus
 * defines - readers, channel heads, consumers, pruning, metrics - and
 * reads the documented schema (doc/schema.md) with SQLite, read-only,
 * for what the library does not report (the channel list of a file, row
 * counts and sizes, the schema version, the checks of `litebus check`).
 * It never writes to litebus's tables itself: the subcommands that change
 * a file (prune, consumers --delete) do it through the library.
 *
 * Invariants
 *   T1  Subcommands that only read open the bus with options.read_only
 *       and SQLite connections with SQLITE_OPEN_READONLY: a tool pointed
 *       at a server's file never writes to it.
 *   T2  A file is never created: every subcommand first reads the file's
 *       litebus schema through a read-only connection (which cannot
 *       create it) and fails if there is none.
 *   T3  Names read from the file reach SQL only after cli_name_ok().
 *   T4  Progress goes to stderr, and only when stderr is a terminal;
 *       stdout carries results only.
 *
 * Threads: one (the main thread); signal handlers only set cli_stop.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t cli_stop;

static const char *const builtin_names[LITEBUS_BUILTIN_CHANNELS] = {
    "lease_history", "completion", "signal_delivery", "stream_frame",
    "operator_event"};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: litebus COMMAND DB [ARGS...]\n"
		"       litebus COMMAND --help\n"
		"       litebus --help | --version\n"
		"\n"
		"Inspect and administer a litebus database file, also while "
		"a server has it\nopen.  Commands that only read open the "
		"file read-only.\n"
		"\n"
		"Commands:\n"
		"  tail DB CHANNEL    print a channel's rows; --follow keeps "
		"printing new ones\n"
		"  stat DB            heads, sizes, consumers' lag, WAL size "
		"(--json, --prometheus)\n"
		"  channels DB        list the channels the file holds\n"
		"  consumers DB       list durable consumers; --delete "
		"CHANNEL NAME removes one\n"
		"  prune DB CHANNEL   delete old rows (--before ID | "
		"--older-than DURATION);\n"
		"                     never rows a durable consumer still "
		"needs\n"
		"  check DB           SQLite's integrity check and litebus's "
		"invariants\n"
#ifdef LITEBUS_CLI_RELAY
		"  relay DB           ship channels to Redis Streams, exactly "
		"once, in order\n"
#endif
		"\n"
		"Exit status:\n"
		"  0  success\n"
		"  1  runtime error (cannot open or read the file, the "
		"library failed)\n"
		"  2  usage error\n"
		"  3  check: the file breaks an invariant\n"
		"\n"
		"See litebus(1), and doc/schema.md for the tables.\n");
}

static void
print_version(void)
{
	printf("litebus %s (library %s, SQLite %s)\n", LITEBUS_VERSION_STRING,
	       litebus_version_string(), sqlite3_libversion());
}

#ifdef LITEBUS_CLI_RELAY
/* tools/cli/relay.c, built with the Redis relay (LITEBUS_RELAY). */
int cli_relay(int argc, char **argv);
#endif

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
	    {"tail", cli_tail},		{"stat", cli_stat},
	    {"channels", cli_channels}, {"consumers", cli_consumers},
	    {"prune", cli_prune},	{"check", cli_check},
#ifdef LITEBUS_CLI_RELAY
	    {"relay", cli_relay},
#endif
	};

	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		print_version();
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			int rc = cmds[i].fn(argc - 1, argv + 1);

			/* A failed printf leaves the error flag set. */
			if ((fflush(stdout) != 0 || ferror(stdout)) &&
			    rc == CLI_EXIT_OK) {
				cli_err("writing the output: %s",
					strerror(errno));
				rc = CLI_EXIT_ERROR;
			}
			return rc;
		}
	cli_err("unknown command '%s' (litebus --help lists them)", argv[1]);
	return CLI_EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Messages, signals                                                   */

void
cli_err(const char *fmt, ...)
{
	va_list ap;

	cli_progress_end();
	fputs("litebus: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
cli_lb_err(const char *what, int rc)
{
	const char *msg = litebus_last_errmsg();

	if (msg[0] == '\0')
		msg = litebus_strerror(rc);
	cli_err("%s: %s (%s)", what, msg, litebus_errname(rc));
}

static void
on_signal(int sig)
{
	(void)sig;
	cli_stop = 1;
}

void
cli_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking call returns, and the loop sees
	 * cli_stop.  The readers wait in bounded slices anyway. */
	if (sigaction(SIGINT, &sa, NULL) != 0 ||
	    sigaction(SIGTERM, &sa, NULL) != 0)
		cli_err("sigaction: %s (Ctrl-C will not stop cleanly)",
			strerror(errno));
}

/* ------------------------------------------------------------------ */
/* The file, through SQLite (read-only)                                 */

bool
cli_name_ok(const char *name)
{
	size_t n = 0;

	if (name == NULL || name[0] == '\0' ||
	    (name[0] >= '0' && name[0] <= '9'))
		return false;
	for (const char *p = name; *p != '\0'; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return n <= LITEBUS_CHANNEL_NAME_MAX;
}

bool
cli_is_builtin(const char *name)
{
	for (int i = 0; i < LITEBUS_BUILTIN_CHANNELS; i++)
		if (strcasecmp(name, builtin_names[i]) == 0)
			return true;
	return false;
}

int
cli_db_open(const char *path, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc;

	*out = NULL;
	/* T1, T2: read-only, never created. */
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		cli_err("%s: %s", path,
			db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return CLI_EXIT_ERROR;
	}
	/* The file is untrusted: its triggers and views must not run
	 * functions with side effects through our queries. */
	if (sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0,
			      (int *)NULL) != SQLITE_OK ||
	    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL) !=
		SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK) {
		cli_err("%s: configuring the connection: %s", path,
			sqlite3_errmsg(db));
		sqlite3_close(db);
		return CLI_EXIT_ERROR;
	}
	*out = db;
	return CLI_EXIT_OK;
}

/* Reading litebus's tables failed: a file without them is not litebus's;
 * anything else (a read-only directory where SQLite must create the
 * -wal and -shm, a lock, I/O) is said as SQLite says it. */
static int
cli_schema_error(sqlite3 *db, const char *path)
{
	int code = sqlite3_extended_errcode(db);

	if (code == SQLITE_ERROR)
		cli_err("%s: not a litebus file (%s)", path,
			sqlite3_errmsg(db));
	else if (code == SQLITE_READONLY_DIRECTORY ||
		 code == SQLITE_READONLY_CANTINIT)
		cli_err("%s: cannot read it: %s (SQLite must create %s-wal "
			"and %s-shm beside it unless a writer has the file "
			"open; see litebus(1), READ-ONLY ACCESS)",
			path, sqlite3_errmsg(db), path, path);
	else
		cli_err("%s: cannot read it: %s", path, sqlite3_errmsg(db));
	return CLI_EXIT_ERROR;
}

int
cli_file_read(sqlite3 *db, const char *path, struct cli_file *f)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(f, 0, sizeof *f);
	f->path = path;
	f->schema_version = -1;
	rc = sqlite3_prepare_v2(
	    db,
	    "SELECT value FROM main.litebus_meta WHERE key = "
	    "'schema_version'",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return cli_schema_error(db, path);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER)
		f->schema_version = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		cli_err("%s: reading litebus_meta: %s", path,
			sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return CLI_EXIT_ERROR;
	}
	sqlite3_finalize(st);

	rc = sqlite3_prepare_v2(db,
				"SELECT name FROM main.litebus_channel "
				"ORDER BY name",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return cli_schema_error(db, path);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		if (name == NULL || !cli_name_ok(name)) {
			/* T3: never used in SQL; `check` reports it. */
			continue;
		}
		if (f->nchannels == LITEBUS_MAX_CHANNELS) {
			cli_err("%s: more than %d channels, the most one "
				"bus holds: listings show the first %d "
				"(built-in, then by name); name any other "
				"one to tail it",
				path, LITEBUS_MAX_CHANNELS,
				LITEBUS_MAX_CHANNELS);
			break;
		}
		snprintf(f->names[f->nchannels], sizeof f->names[0], "%s",
			 name);
		f->nchannels++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		cli_err("%s: reading litebus_channel: %s", path,
			sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return CLI_EXIT_ERROR;
	}
	sqlite3_finalize(st);
	return CLI_EXIT_OK;
}

int
cli_db_close(sqlite3 *db, int rc)
{
	if (sqlite3_close(db) != SQLITE_OK) {
		cli_err("closing the database: %s", sqlite3_errmsg(db));
		return CLI_EXIT_ERROR;
	}
	return rc;
}

int
cli_file_load(const char *path, struct cli_file *f)
{
	sqlite3 *db;
	int rc = cli_db_open(path, &db);

	if (rc != CLI_EXIT_OK)
		return rc;
	rc = cli_file_read(db, path, f);
	return cli_db_close(db, rc);
}

/* ------------------------------------------------------------------ */
/* The file, through the library                                       */

/* Does the file have a table for channel `name` (ignoring case, as
 * SQLite's table names do)?  An exit code; *has set on OK. */
static int
cli_file_has_channel(const char *path, const char *name, bool *has)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int rc = cli_db_open(path, &db), src;

	*has = false;
	if (rc != CLI_EXIT_OK)
		return rc;
	src = sqlite3_prepare_v2(db,
				 "SELECT 1 FROM main.sqlite_schema WHERE "
				 "type = 'table' AND lower(name) = "
				 "lower('litebus_outbox_' || ?1)",
				 -1, &st, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (src == SQLITE_OK) {
		src = sqlite3_step(st);
		*has = src == SQLITE_ROW;
		if (src == SQLITE_ROW || src == SQLITE_DONE)
			src = SQLITE_OK;
	}
	if (src != SQLITE_OK) {
		cli_err("%s: %s", path, sqlite3_errmsg(db));
		rc = CLI_EXIT_ERROR;
	}
	sqlite3_finalize(st);
	return cli_db_close(db, rc);
}

int
cli_bus_open(const struct cli_file *f, bool read_only, const char *channel,
	     litebus **bus)
{
	const char *extra[LITEBUS_MAX_CHANNELS + 1];
	litebus_options o;
	int n = 0, rc;

	*bus = NULL;
	if (channel != NULL && !cli_is_builtin(channel)) {
		bool has;

		if (!cli_name_ok(channel)) {
			cli_err("%s: '%s' is not a channel name", f->path,
				channel);
			return CLI_EXIT_ERROR;
		}
		rc = cli_file_has_channel(f->path, channel, &has);
		if (rc != CLI_EXIT_OK)
			return rc;
		if (!has) {
			cli_err("%s: no channel '%s' (litebus channels %s "
				"lists them)",
				f->path, channel, f->path);
			return CLI_EXIT_ERROR;
		}
		extra[n++] = channel;
	}
	/* The file's other channels, so that each is reachable by name: a
	 * read-only bus has them anyway (up to the limit), a read-write one
	 * only those it is told about. */
	for (int i = 0; i < f->nchannels; i++)
		if (!cli_is_builtin(f->names[i]) &&
		    (channel == NULL ||
		     strcasecmp(f->names[i], channel) != 0) &&
		    n < LITEBUS_MAX_CHANNELS - LITEBUS_BUILTIN_CHANNELS)
			extra[n++] = f->names[i];
	extra[n] = NULL;
	litebus_options_init(&o);
	o.path = f->path;
	o.channels = extra;
	o.read_only = read_only ? 1 : 0; /* T1 */
	/* No checkpoints or pruning of our own beyond what is asked. */
	o.checkpoint_mode = LITEBUS_CHECKPOINT_INLINE;
	rc = litebus_open(&o, bus);
	if (rc != LITEBUS_OK) {
		cli_lb_err(f->path, rc);
		*bus = NULL;
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

int
cli_channel(litebus *bus, const char *name)
{
	int id = litebus_channel_id(bus, name);
	int n;

	if (id >= 0)
		return id;
	n = litebus_channel_count(bus);
	for (int i = 0; i < n; i++) {
		const char *c = litebus_channel_name(bus, i);

		if (c != NULL && strcasecmp(c, name) == 0)
			return i;
	}
	cli_err("no channel named '%s' (litebus channels DB lists them)", name);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

bool
cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool
cli_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = {{"ms", 1},	     {"s", 1000},     {"m", 60000},
		     {"h", 3600000}, {"d", 86400000}, {"", 1000}};
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0 || s[0] == '-' || s[0] == '+')
		return false;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(end, units[i].suffix) == 0) {
			if (v > INT64_MAX / units[i].ms)
				return false;
			*ms = (int64_t)v * units[i].ms;
			return true;
		}
	return false;
}

bool
cli_is_opt(const char *arg, const char *opt)
{
	size_t n = strlen(opt);

	return strncmp(arg, opt, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

const char *
cli_optval(int argc, char **argv, int *i, const char *opt)
{
	const char *eq = strchr(argv[*i], '=');

	if (eq != NULL)
		return eq + 1;
	if (*i + 1 >= argc) {
		cli_err("%s needs a value", opt);
		return NULL;
	}
	(*i)++;
	return argv[*i];
}

/* ------------------------------------------------------------------ */
/* Progress, time, output                                              */

static int progress_state = -1; /* -1 unknown, 0 off, 1 on */
static int64_t progress_last_ms;
static bool progress_shown;

bool
cli_progress_enabled(void)
{
	if (progress_state < 0)
		progress_state = isatty(STDERR_FILENO) == 1 ? 1 : 0; /* T4 */
	return progress_state == 1;
}

void
cli_progress(const char *fmt, ...)
{
	va_list ap;
	int64_t now;

	if (!cli_progress_enabled())
		return;
	now = cli_now_ms();
	if (progress_shown && now - progress_last_ms < 100)
		return;
	progress_last_ms = now;
	fputs("\r", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\033[K", stderr); /* clear the rest of the line */
	fflush(stderr);
	progress_shown = true;
}

void
cli_progress_end(void)
{
	if (!progress_shown)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	progress_shown = false;
}

int64_t
cli_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
cli_iso_time(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)secs * 1000);
	struct tm tm;

	if (gmtime_r(&secs, &tm) == NULL ||
	    strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(out, 32, "@%lld", (long long)ms);
		return;
	}
	snprintf(out + strlen(out), 32 - strlen(out), ".%03dZ", frac);
}

bool
cli_write(const struct jbuf *b)
{
	if (b->failed) {
		cli_err("out of memory formatting the output");
		return false;
	}
	if (b->len > 0 && fwrite(b->data, 1, b->len, stdout) != b->len) {
		cli_err("writing the output: %s", strerror(errno));
		return false;
	}
	return true;
}
