/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the files of the litebus tool share: exit codes, opening
 * a file (through the library, and read-only through SQLite for what the
 * documented schema holds, doc/schema.md), messages, progress, parsing.
 */
#ifndef LITEBUS_CLI_H
#define LITEBUS_CLI_H

#include "json.h"

#include <litebus.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (litebus --help and litebus(1) list them). */
enum {
	CLI_EXIT_OK = 0,       /* done */
	CLI_EXIT_ERROR = 1,    /* a runtime error: cannot open, read, ... */
	CLI_EXIT_USAGE = 2,    /* bad command line */
	CLI_EXIT_PROBLEMS = 3, /* check: the file breaks an invariant */
};

/* The schema version this tool reads (doc/schema.md); the library it is
 * built with writes the same. */
#define CLI_SCHEMA_VERSION 2

/* What the file says about itself, read through SQLite (read-only). */
struct cli_file {
	const char *path;
	int64_t schema_version; /* litebus_meta's; -1 if unreadable */
	int nchannels;		/* rows of litebus_channel, by name */
	char names[LITEBUS_MAX_CHANNELS][LITEBUS_CHANNEL_NAME_MAX + 1];
};

/* Set by SIGINT and SIGTERM (cli_catch_signals). */
extern volatile sig_atomic_t cli_stop;
void cli_catch_signals(void);

/* "litebus: <message>" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "litebus: <what>: <litebus_last_errmsg or strerror> (<ERRNAME>)". */
void cli_lb_err(const char *what, int rc);

/* Open `path` with SQLite, read-only, with an untrusted schema; refuses
 * what is not a database.  Returns an exit code (message printed). */
int cli_db_open(const char *path, sqlite3 **db);
/* Read the channel list and the schema version of an open connection.
 * Returns an exit code: ERROR if the file has no litebus schema. */
int cli_file_read(sqlite3 *db, const char *path, struct cli_file *f);
/* Close a connection from cli_db_open; every statement was finalized, so
 * a failure is a bug of the tool: reported, and ERROR returned (else
 * rc unchanged). */
int cli_db_close(sqlite3 *db, int rc);
/* Both, closing the connection. */
int cli_file_load(const char *path, struct cli_file *f);
/* A channel name is safe to put in SQL: [A-Za-z0-9_], 1..48 bytes, not
 * starting with a digit (the library's rule). */
bool cli_name_ok(const char *name);
/* Built-in channel names (ids 0..LITEBUS_BUILTIN_CHANNELS-1). */
bool cli_is_builtin(const char *name);

/* Open the bus on an existing litebus file: read_only for everything
 * that only reads.  `channel` (NULL: none) is declared first, so that it
 * is reachable even in a file with more channels than a bus holds; it
 * must exist in the file (a read-write open would create it): an error
 * is printed otherwise.  Then the file's other channels, up to
 * LITEBUS_MAX_CHANNELS in all.  Returns an exit code. */
int cli_bus_open(const struct cli_file *f, bool read_only, const char *channel,
		 litebus **bus);
/* The channel called `name` ignoring case, or -1 (message printed). */
int cli_channel(litebus *bus, const char *name);

/* Parsing. */
bool cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* "250ms", "30s", "15m", "2h", "7d", or a number of seconds. */
bool cli_parse_duration(const char *s, int64_t *ms);
/* The value of option argv[*i] ("--opt VALUE" or "--opt=VALUE");
 * advances *i.  NULL (message printed) if there is none. */
const char *cli_optval(int argc, char **argv, int *i, const char *opt);
/* Does argv[i] name option `opt`, as "--opt" or "--opt=..."? */
bool cli_is_opt(const char *arg, const char *opt);

/* Progress on stderr, only when stderr is a terminal; at most ten
 * updates a second; cli_progress_end clears the line. */
bool cli_progress_enabled(void);
void cli_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_progress_end(void);

/* Milliseconds since the Unix epoch, and as "2026-11-30T20:38:01.123Z". */
int64_t cli_now_ms(void);
void cli_iso_time(int64_t ms, char out[32]);

/* Write b to stdout; false (message printed) if the write failed. */
bool cli_write(const struct jbuf *b);

/* The subcommands: argv[0] is the subcommand's name. */
int cli_tail(int argc, char **argv);
int cli_stat(int argc, char **argv);
int cli_channels(int argc, char **argv);
int cli_consumers(int argc, char **argv);
int cli_prune(int argc, char **argv);
int cli_check(int argc, char **argv);

#endif
