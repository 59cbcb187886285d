#!/bin/sh
# SPDX-License-Identifier: MIT
# check-abi.sh [--update] path/to/liblitebus.so
#
# Compare the ABI of a built liblitebus.so with the release baseline
# abi/<SONAME>.abi (abidw output, libabigail), and fail on any change the
# ABI policy (README.md "ABI policy", the top of include/litebus.h) does not
# allow.  Allowed: new functions (in a new symbol version node) and new
# fields at the END of the caller-allocated structs listed below, whose
# calls take their size.  Everything else fails: a removed or changed
# function, a changed member (name, offset or type) of those structs, any
# change to another type a function reaches.
#
# Two passes, because libabigail's "inserted at end" suppression hides
# every change to a suppressed struct, not only insertions at its end:
#   1. abidiff, with those structs' changes suppressed and added symbols
#      ignored: anything it still reports fails;
#   2. for each of those structs, the baseline's members (offset, name,
#      type) must be a prefix of the new members, in order, and every new
#      member must start at or beyond the baseline's size: a field put in
#      what was tail padding would read an old program's padding bytes.
#      Type ids are abidw's "hash" style, derived from the type's name, so
#      they are the same in both files.
#
# --update writes the library's ABI as the baseline (at a release, or for
# a deliberate change: see abi/README.md) instead of comparing.
# The library must carry DWARF (RelWithDebInfo, the default, or Debug).
# Exit status: 0 compatible (or baseline written), 1 incompatible (the
# report says what changed), 2 usage error, missing tool, library without
# debug information, or no baseline for its SONAME.
set -eu

update=0
if [ "${1:-}" = --update ]; then
	update=1
	shift
fi
if [ "$#" -ne 1 ]; then
	echo "usage: $0 [--update] path/to/liblitebus.so" >&2
	exit 2
fi
lib=$1
case $lib in
/*) ;;
*) lib=$(pwd)/$lib ;;
esac
cd "$(dirname "$0")/.."

# The structs whose calls take their size (litebus.h, ABI policy).
SIZED="litebus_options litebus_retention litebus_record litebus_event
litebus_filter litebus_row litebus_stats litebus_sub_stats
litebus_reader_stats litebus_consumer_info"

for tool in abidw abidiff; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "check-abi: $tool not found (Debian: abigail-tools)" >&2
		exit 2
	fi
done
if [ ! -f "$lib" ]; then
	echo "check-abi: $lib: no such file" >&2
	exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Stable output: no paths, no source locations, type ids from names; only
# what include/ declares.
abidw --no-corpus-path --no-comp-dir-path --no-show-locs \
	--drop-undefined-syms --type-id-style hash --headers-dir include \
	--out-file "$tmp/new.abi" "$lib" || {
	echo "check-abi: abidw failed on $lib" >&2
	exit 2
}
# Source paths relative to the repository, so that the baseline does not
# depend on where it was written.
root=$(pwd)
sed "s|path='$root/|path='|" "$tmp/new.abi" >"$tmp/rel.abi"
mv "$tmp/rel.abi" "$tmp/new.abi"
if ! grep -q "<class-decl name='litebus_options'" "$tmp/new.abi"; then
	echo "check-abi: $lib has no debug information (build it with -g)" >&2
	exit 2
fi
soname=$(sed -n "s/^<abi-corpus [^>]*soname='\([^']*\)'.*/\1/p" \
	"$tmp/new.abi" | head -n 1)
if [ -z "$soname" ]; then
	echo "check-abi: $lib has no SONAME" >&2
	exit 2
fi
base=abi/$soname.abi

if [ "$update" -eq 1 ]; then
	mkdir -p abi
	cp "$tmp/new.abi" "$base"
	echo "check-abi: wrote $base; commit it (abi/README.md says when)"
	exit 0
fi
if [ ! -f "$base" ]; then
	echo "check-abi: no baseline $base for SONAME $soname." >&2
	echo "  A new SONAME is a deliberate incompatible change: write its" >&2
	echo "  baseline with $0 --update (abi/README.md)." >&2
	exit 2
fi
arch() {
	sed -n "s/^<abi-corpus [^>]*architecture='\([^']*\)'.*/\1/p" "$1" |
		head -n 1
}
if [ "$(arch "$base")" != "$(arch "$tmp/new.abi")" ]; then
	echo "check-abi: skipped: $base is for $(arch "$base"), this" \
		"library is $(arch "$tmp/new.abi")"
	exit 0
fi

# Pass 1.
regex=$(printf '%s\n' $SIZED | paste -sd '|' -)
cat >"$tmp/suppr" <<EOF
[suppress_type]
  type_kind = struct
  name_regexp = ^($regex)\$
  has_data_member_inserted_at = end

# The handles are opaque (README, "ABI policy"): litebus.h only declares
# them, and their layout - and that of everything they point to inside
# the library - is the library's own.  The debug information still
# describes them, so abidiff would report every internal change.
[suppress_type]
  type_kind = struct
  name_regexp = ^(litebus|litebus_sub|litebus_reader|litebus_consumer|litebus_tx|lb_.*)\$
EOF
status=0
rc=0
abidiff --suppressions "$tmp/suppr" --no-added-syms "$base" "$tmp/new.abi" \
	>"$tmp/report" 2>&1 || rc=$?
if [ $((rc & 3)) -ne 0 ]; then
	cat "$tmp/report" >&2
	echo "check-abi: abidiff failed (status $rc)" >&2
	exit 2
fi
if [ "$rc" -ne 0 ]; then
	echo "check-abi: $lib: incompatible with $base:" >&2
	sed 's/^/  /' "$tmp/report" >&2
	status=1
fi

# Pass 2: "offset name type-id" of each member of struct $2 in file $1,
# from its first definition (every translation unit repeats it).
members() {
	awk -v want="$2" -v q="'" '
	function attr(line, key,    s) {
		s = line
		if (!sub(".*" key "=" q, "", s))
			return ""
		sub(q ".*", "", s)
		return s
	}
	done { next }
	index($0, "<class-decl name=" q want q) && $0 !~ /\/>$/ {
		inside = 1
		next
	}
	inside && /<\/class-decl>/ { done = 1; next }
	inside && /<data-member/ { off = attr($0, "layout-offset-in-bits") }
	inside && /<var-decl/ {
		print off, attr($0, "name"), attr($0, "type-id")
	}' "$1"
}
# size-in-bits of struct $2's first definition in file $1.
size_bits() {
	grep -m 1 "<class-decl name='$2' size-in-bits=" "$1" |
		sed "s/.* size-in-bits='\([0-9]*\)'.*/\1/"
}
for s in $SIZED; do
	members "$base" "$s" >"$tmp/old.$s"
	members "$tmp/new.abi" "$s" >"$tmp/new.$s"
	n=$(wc -l <"$tmp/old.$s")
	if [ "$n" -eq 0 ]; then
		echo "check-abi: $base has no struct $s" >&2
		exit 2
	fi
	if ! head -n "$n" "$tmp/new.$s" | cmp -s - "$tmp/old.$s"; then
		echo "check-abi: struct $s changed other than by adding" \
			"fields at its end (offset-in-bits name type-id):" >&2
		diff "$tmp/old.$s" "$tmp/new.$s" | sed 's/^/  /' >&2 || true
		status=1
	fi
	size=$(size_bits "$base" "$s")
	# A member named pad<N>_ names what was tail padding, so that the
	# fields after it start at the old size; the library never reads it
	# (abi/README.md).  Any other new member must start at or beyond the
	# old size.
	tail -n "+$((n + 1))" "$tmp/new.$s" | while read -r off name _type; do
		case "$name" in
		pad[0-9]*_) continue ;;
		esac
		if [ "$off" -lt "$size" ]; then
			echo "check-abi: struct $s: new field $name at bit" \
				"$off is inside the old size ($size bits):" \
				"pad up to it first" >&2
			exit 1
		fi
	done || status=1
done

if [ "$status" -eq 0 ]; then
	echo "check-abi: $lib ($soname) is compatible with $base"
fi
exit "$status"
