#!/bin/sh
# SPDX-License-Identifier: MIT
# check-exports.sh LIBRARY - fail if the library makes a symbol global whose
# name does not start with litebus_.
#
# For liblitebus.so: the dynamic symbols.  The library builds with hidden
# visibility and marks its API with LITEBUS_API, so an lb_* helper or a
# stray global that shows up here has leaked into the ABI; every litebus_*
# must also carry a symbol version (lib/litebus.map).
# For liblitebus.a: the global symbols the archive defines.  Its one object
# is linked with -r and its hidden symbols made local (CMakeLists.txt), so
# an lb_* here could clash with an application's own names.
# Exit status: 0 clean, 1 leaked or unversioned symbols (listed), 2 usage
# error or unreadable library.
set -eu

if [ "$#" -ne 1 ]; then
	echo "usage: $0 path/to/liblitebus.so|liblitebus.a" >&2
	exit 2
fi
lib=$1
if [ ! -f "$lib" ]; then
	echo "check-exports: $lib: no such file" >&2
	exit 2
fi

case $lib in
*.a) kind=static ;;
*) kind=shared ;;
esac

# Lines are "VALUE TYPE NAME" (an archive adds "member:" headers and blank
# lines, which have fewer fields).  Type A entries are symbol-version nodes,
# not symbols.  NAME@VERSION or NAME@@VERSION carries the version.
if [ "$kind" = static ]; then
	syms=$(nm -g --defined-only "$lib") || {
		echo "check-exports: nm failed on $lib" >&2
		exit 2
	}
else
	syms=$(nm -D --defined-only "$lib") || {
		echo "check-exports: nm failed on $lib" >&2
		exit 2
	}
fi
versioned=$(printf '%s\n' "$syms" | awk 'NF >= 3 && $2 != "A" { print $3 }')
names=$(printf '%s\n' "$versioned" | sed 's/@.*//')
ours=$(printf '%s\n' "$names" | grep -c '^litebus_' || true)
leaked=$(printf '%s\n' "$names" | grep -v -e '^litebus_' -e '^$' || true)
unversioned=
if [ "$kind" = shared ]; then
	unversioned=$(printf '%s\n' "$versioned" |
		grep '^litebus_' | grep -v '@' || true)
fi

if [ "$ours" -eq 0 ]; then
	echo "check-exports: $lib exports no litebus_ symbol at all" >&2
	exit 2
fi
status=0
if [ -n "$leaked" ]; then
	echo "check-exports: $lib exports symbols outside the litebus_ prefix:" >&2
	printf '%s\n' "$leaked" | sed 's/^/  /' >&2
	status=1
fi
if [ -n "$unversioned" ]; then
	echo "check-exports: $lib exports symbols without a version (lib/litebus.map):" >&2
	printf '%s\n' "$unversioned" | sed 's/^/  /' >&2
	status=1
fi
if [ "$status" -eq 0 ]; then
	if [ "$kind" = shared ]; then
		echo "check-exports: $lib: $ours symbols, all litebus_*, all versioned"
	else
		echo "check-exports: $lib: $ours global symbols, all litebus_*"
	fi
fi
exit "$status"
