#!/bin/sh
# SPDX-License-Identifier: MIT
# check-install.sh [BUILD_DIR] - install the build into a temporary prefix
# and build a small program against the installed copy, as a user would:
#
#   pkg-config --cflags --libs litebus                   shared library
#   pkg-config --static --cflags --libs litebus          the same, with the
#                                                        private dependencies
#   pkg-config --cflags --libs litebus-static            liblitebus.a
#   pkg-config --static --cflags --libs litebus-static
#   -I.../include/litebus .../liblitebus.a -lsqlite3 -lpthread (no pkg-config)
#
# The program calls SQLite itself (so the flags must give -lsqlite3), runs a
# job on an in-memory bus, and defines a function named like one of
# litebus's internal ones (lb_ring_init): with liblitebus.a that links only
# because the archive keeps lb_* local.  Each program must run and print
# "ok"; the static ones must not need liblitebus.so.  Also checks the files
# under share/doc/litebus and that no flag contains "//".
# Environment: CC (default cc), PKG_CONFIG (default pkg-config).
# Exit status: 0 passed, 1 a check failed.
set -eu

build=${1:-build}
cc=${CC:-cc}
pkgconfig=${PKG_CONFIG:-pkg-config}
here=$(cd "$(dirname "$0")" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() {
	echo "check-install: $*" >&2
	exit 1
}

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
	{ cat "$tmp/install.log" >&2; fail "cmake --install failed"; }

for f in share/doc/litebus/LICENSE share/doc/litebus/README.md \
	include/litebus/litebus.h; do
	[ -f "$prefix/$f" ] || fail "not installed: $f"
done
pc=$(find "$prefix" -name litebus.pc)
[ -n "$pc" ] || fail "not installed: litebus.pc"
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
libdir=$($pkgconfig --variable=libdir litebus)
"$here/check-exports.sh" "$libdir/liblitebus.a"

cat >"$tmp/prog.c" <<'PROG'
#include <litebus.h>
#include <sqlite3.h>
#include <stdio.h>

/* Same name as an internal function of litebus: must not clash. */
int lb_ring_init(void);
int
lb_ring_init(void)
{
	return 7;
}

static int
count_row(void *arg, int ncol, char **val, char **name)
{
	(void)ncol, (void)val, (void)name;
	++*(int *)arg;
	return 0;
}

static int
job(litebus_tx *tx, void *arg)
{
	sqlite3 *db = litebus_tx_db(tx);

	if (sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (42);",
	    NULL, NULL, NULL) != SQLITE_OK)
		return -1000;
	return sqlite3_exec(db, "SELECT x FROM t WHERE x = 42", count_row, arg,
	    NULL) == SQLITE_OK ? 0 : -1001;
}

int
main(void)
{
	litebus_options o;
	litebus *bus;
	int rows = 0, rc;

	litebus_options_init(&o);
	o.path = ":memory:";
	rc = litebus_open(&o, &bus);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "litebus_open: %s\n", litebus_strerror(rc));
		return 1;
	}
	rc = litebus_exec(bus, job, &rows);
	litebus_close(bus);
	if (rc != 0 || rows != 1 || lb_ring_init() != 7) {
		fprintf(stderr, "job: %d, rows %d\n", rc, rows);
		return 1;
	}
	if (litebus_version_number() != LITEBUS_VERSION_NUMBER) {
		fprintf(stderr, "header and library versions differ\n");
		return 1;
	}
	puts("ok");
	return 0;
}
PROG

# try NAME SHARED|STATIC FLAGS...: build, check liblitebus.so is (not)
# needed, run.
try() {
	name=$1 kind=$2
	shift 2
	case "$*" in
	*//*) fail "$name: flags contain //: $*" ;;
	esac
	# Word splitting of the flags is intended (no path has spaces here).
	$cc -std=c11 -Wall -Werror -o "$tmp/$name" "$tmp/prog.c" "$@" \
		-Wl,-rpath,"$libdir" || fail "$name: does not link: $*"
	needs=$(LC_ALL=C readelf -d "$tmp/$name" | grep -c 'NEEDED.*liblitebus' ||
		true)
	if [ "$kind" = shared ] && [ "$needs" -eq 0 ]; then
		fail "$name: does not use liblitebus.so"
	fi
	if [ "$kind" = static ] && [ "$needs" -ne 0 ]; then
		fail "$name: uses liblitebus.so, not liblitebus.a"
	fi
	out=$("$tmp/$name") || fail "$name: the program failed: $out"
	[ "$out" = ok ] || fail "$name: printed '$out'"
	echo "check-install: $name: ok ($*)"
}

# shellcheck disable=SC2046
try pkgconfig shared $($pkgconfig --cflags --libs litebus)
# shellcheck disable=SC2046
try pkgconfig-static-flags shared $($pkgconfig --static --cflags --libs litebus)
# shellcheck disable=SC2046
try pkgconfig-static-lib static $($pkgconfig --cflags --libs litebus-static)
# shellcheck disable=SC2046
try pkgconfig-static-lib-static-flags static \
	$($pkgconfig --static --cflags --libs litebus-static)
try archive static -I"$prefix/include/litebus" "$libdir/liblitebus.a" \
	-lsqlite3 -lpthread
echo "check-install: $build installs, and programs build against it"
