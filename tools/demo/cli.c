/* SPDX-License-Identifier: MIT */
/*
 * cli.c - litebus-demo's command line: options, their defaults and
 * limits, and the usage text.
 */
#include "demo.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: litebus-demo [--db PATH | --memory] [--seconds N] "
		"[--producers N]\n"
		"                    [--ring SLOTS] [--full] [--keep]\n"
		"       litebus-demo --help | --version\n"
		"\n"
		"Runs litebus for a few seconds with producers, readers and "
		"subscribers,\n"
		"shows live progress, then checks what every consumer "
		"received.\n"
		"\n"
		"  --db PATH      database file (default: litebus-demo.db in "
		"a new\n"
		"                 temporary directory, removed at exit)\n"
		"  --memory       private in-memory database\n"
		"  --seconds N    how long producers run (default %d)\n"
		"  --producers N  producer threads (default %d, at most %d)\n"
		"  --ring SLOTS   ring capacity, a power of two (default "
		"%u)\n"
		"  --full         durability FULL (fsync every commit)\n"
		"  --keep         keep the temporary directory\n"
		"  -h, --help     print this text and exit\n"
		"  --version      print the versions of litebus-demo, the "
		"litebus library\n"
		"                 and SQLite it runs with, and exit\n"
		"\n"
		"Exit status: 0 all checks passed, 1 a check failed, 2 usage "
		"or setup error.\n",
		DEMO_SECONDS_DEFAULT, DEMO_PRODUCERS_DEFAULT,
		DEMO_PRODUCERS_MAX, DEMO_RING_DEFAULT);
}

/* "litebus-demo 0.1.0 (library 0.1.0, SQLite 3.40.1)": the version the
 * demo was built as, then the libraries actually loaded. */
static void
print_version(void)
{
	printf("litebus-demo %s (library %s, SQLite %s)\n",
	       LITEBUS_VERSION_STRING, litebus_version_string(),
	       sqlite3_libversion());
}

static bool
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool
option_takes_value(const char *a)
{
	return strcmp(a, "--db") == 0 || strcmp(a, "--seconds") == 0 ||
	       strcmp(a, "--producers") == 0 || strcmp(a, "--ring") == 0;
}

/* Returns 0, 1 for --help or --version (printed), or 2 for a usage error
 * (printed). */
int
parse_args(int argc, char **argv, struct demo_opts *o)
{
	long v = 0;

	o->db_path = NULL;
	o->memory = o->keep = o->full = false;
	o->seconds = DEMO_SECONDS_DEFAULT;
	o->producers = DEMO_PRODUCERS_DEFAULT;
	o->ring = DEMO_RING_DEFAULT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = "";

		if (option_takes_value(a)) {
			if (i + 1 == argc) {
				fprintf(stderr,
					"litebus-demo: %s needs a value\n", a);
				return 2;
			}
			val = argv[++i];
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 1;
		} else if (strcmp(a, "--version") == 0) {
			print_version();
			return 1;
		} else if (strcmp(a, "--memory") == 0) {
			o->memory = true;
		} else if (strcmp(a, "--keep") == 0) {
			o->keep = true;
		} else if (strcmp(a, "--full") == 0) {
			o->full = true;
		} else if (strcmp(a, "--db") == 0) {
			o->db_path = val;
		} else if (strcmp(a, "--seconds") == 0 &&
			   parse_long(val, 1, 86400, &v)) {
			o->seconds = (int)v;
		} else if (strcmp(a, "--producers") == 0 &&
			   parse_long(val, 1, DEMO_PRODUCERS_MAX, &v)) {
			o->producers = (int)v;
		} else if (strcmp(a, "--ring") == 0 &&
			   parse_long(val, LITEBUS_RING_MIN, LITEBUS_RING_MAX,
				      &v)) {
			o->ring = (uint32_t)v;
		} else {
			fprintf(stderr, "litebus-demo: bad option: %s%s%s\n", a,
				val[0] != '\0' ? " " : "", val);
			usage(stderr);
			return 2;
		}
	}
	if (o->memory && o->db_path != NULL) {
		fprintf(stderr,
			"litebus-demo: --db and --memory exclude each other\n");
		return 2;
	}
	return 0;
}
