#!/bin/sh
# SPDX-License-Identifier: MIT
# check-exports.sh LIBRARY - fail if the shared library exports a dynamic
# symbol whose name does not start with litebus_.
#
# The library builds with hidden visibility and marks its API with
# LITEBUS_API, so an lb_* helper or a stray global that shows up here has
# leaked into the ABI.  Exit status: 0 clean, 1 leaked symbols (listed),
# 2 usage error or unreadable library.
set -eu

if [ "$#" -ne 1 ]; then
	echo "usage: $0 path/to/liblitebus.so" >&2
	exit 2
fi
lib=$1
if [ ! -f "$lib" ]; then
	echo "check-exports: $lib: no such file" >&2
	exit 2
fi

# Lines are "VALUE TYPE NAME".  Type A entries are symbol-version nodes
# (if a version script is ever added), not symbols; "@VERSION" suffixes
# are not part of the name.
if ! syms=$(nm -D --defined-only "$lib"); then
	echo "check-exports: nm failed on $lib" >&2
	exit 2
fi
names=$(printf '%s\n' "$syms" |
	awk 'NF >= 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }')
ours=$(printf '%s\n' "$names" | grep -c '^litebus_' || true)
leaked=$(printf '%s\n' "$names" | grep -v -e '^litebus_' -e '^$' || true)

if [ "$ours" -eq 0 ]; then
	echo "check-exports: $lib exports no litebus_ symbol at all" >&2
	exit 2
fi
if [ -n "$leaked" ]; then
	echo "check-exports: $lib exports symbols outside the litebus_ prefix:" >&2
	printf '%s\n' "$leaked" | sed 's/^/  /' >&2
	exit 1
fi
echo "check-exports: $lib: $ours symbols, all litebus_*"
