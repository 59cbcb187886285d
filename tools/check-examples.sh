#!/bin/sh
# SPDX-License-Identifier: MIT
# check-examples.sh [BUILD_DIR] - install the build into a temporary
# prefix, check what is installed besides the library (docs, man page,
# the demo), then build examples/ against the installed copy four ways
# and run every example of every build, briefly, with its own check:
#
#   make PC=litebus           pkg-config, liblitebus.so
#   make PC=litebus-static    pkg-config, liblitebus.a
#   cmake                     find_package(litebus), litebus::litebus
#   cmake -DLITEBUS_EXAMPLES_STATIC=ON         litebus::litebus_static
#
# Runs (each exits 0 only when the data checked out):
#   consume_ack                  durable consumers across SIGKILL
#   uv_follower --rows 20000     libuv follower, every row once, in order
#   epoll_server --clients 2 and two epoll_clients (one stalls): both get
#     every row once, in order; the server must report that the stalled
#     client was paused (reader fd disarmed) and lapped by the ring.
#   redis_consumer --help        built every way (hiredis); it runs against
#     a real Redis in tests/relay (test_relay), not here.
# Environment: CC (default cc), PKG_CONFIG (default pkg-config).
# Needs: cmake, make, pkg-config, libuv1-dev, libhiredis-dev, groff (man
# page check).
# Exit status: 0 passed, 1 a check failed.
set -eu

build=${1:-build}
cc=${CC:-cc}
pkgconfig=${PKG_CONFIG:-pkg-config}
repo=$(cd "$(dirname "$0")/.." && pwd)
examples=$repo/examples
ROWS=20000

tmp=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
prefix=$tmp/prefix

fail() {
	echo "check-examples: $*" >&2
	exit 1
}

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
	{ cat "$tmp/install.log" >&2; fail "cmake --install failed"; }

# ---- what is installed besides the library ---------------------------
for f in share/doc/litebus/README.md share/doc/litebus/LICENSE \
	share/doc/litebus/CHANGELOG.md share/man/man3/litebus.3 \
	bin/litebus-demo; do
	[ -f "$prefix/$f" ] || fail "not installed: $f"
done
# The man page must format without a warning.
man_err=$(groff -man -ww -z "$prefix/share/man/man3/litebus.3" 2>&1) ||
	fail "litebus.3 does not format: $man_err"
[ -z "$man_err" ] || fail "litebus.3: $man_err"
# The installed demo finds the installed library by itself (its RPATH).
version=$(env -u LD_LIBRARY_PATH "$prefix/bin/litebus-demo" --version) ||
	fail "the installed litebus-demo does not run"
case "$version" in
"litebus-demo "*) ;;
*) fail "litebus-demo --version printed '$version'" ;;
esac
echo "check-examples: docs, litebus.3 and bin/litebus-demo installed ($version)"

pc=$(find "$prefix" -name litebus.pc)
[ -n "$pc" ] || fail "not installed: litebus.pc"
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
libdir=$($pkgconfig --variable=libdir litebus)

# ---- build four ways ---------------------------------------------------
for kind in shared static; do
	pcname=litebus
	[ "$kind" = static ] && pcname=litebus-static
	out=$tmp/make-$kind
	mkdir -p "$out"
	make -s -C "$examples" OUT="$out" PC="$pcname" CC="$cc" \
		PKG_CONFIG="$pkgconfig" CFLAGS="-O2 -Werror" \
		LDFLAGS="-Wl,-rpath,$libdir" >"$tmp/make-$kind.log" 2>&1 ||
		{ cat "$tmp/make-$kind.log" >&2; fail "make PC=$pcname failed"; }

	static=OFF
	[ "$kind" = static ] && static=ON
	out=$tmp/cmake-$kind
	{ cmake -S "$examples" -B "$out" -DCMAKE_PREFIX_PATH="$prefix" \
		-DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="-Werror" \
		-DLITEBUS_EXAMPLES_STATIC="$static" \
		-DLITEBUS_EXAMPLES_REQUIRE_UV=ON \
		-DLITEBUS_EXAMPLES_REQUIRE_HIREDIS=ON &&
		cmake --build "$out" -j2; } >"$tmp/cmake-$kind.log" 2>&1 ||
		{ cat "$tmp/cmake-$kind.log" >&2; fail "cmake ($kind) failed"; }
done
echo "check-examples: built with pkg-config and find_package, shared and static"

# ---- run ---------------------------------------------------------------
# linkage DIR KIND: the litebus programs use liblitebus.so iff KIND=shared.
linkage() {
	for p in epoll_server consume_ack uv_follower; do
		needs=$(LC_ALL=C readelf -d "$1/$p" | grep -c 'NEEDED.*liblitebus' ||
			true)
		if [ "$2" = shared ] && [ "$needs" -eq 0 ]; then
			fail "$1/$p does not use liblitebus.so"
		fi
		if [ "$2" = static ] && [ "$needs" -ne 0 ]; then
			fail "$1/$p uses liblitebus.so, not liblitebus.a"
		fi
	done
}

# epoll DIR: a server, a fast client and a stalled one.
epoll() {
	log=$1/server.out
	: >"$log" # exists before the loop below reads it
	"$1/epoll_server" --port 0 --rows $ROWS --clients 2 --sndbuf 4096 \
		>"$log" 2>&1 &
	server_pid=$!
	port=
	i=0
	while [ $i -lt 100 ]; do # up to 10 s for the server to listen
		port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$log")
		[ -n "$port" ] && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	[ -n "$port" ] || { cat "$log" >&2; fail "$1: epoll_server did not listen"; }
	"$1/epoll_client" --port "$port" --rows $ROWS >"$1/fast.out" 2>&1 &
	fast=$!
	slow_rc=0
	"$1/epoll_client" --port "$port" --rows $ROWS --stall-ms 300 \
		--rcvbuf 4096 >"$1/slow.out" 2>&1 || slow_rc=$?
	fast_rc=0
	wait "$fast" || fast_rc=$?
	server_rc=0
	wait "$server_pid" || server_rc=$?
	server_pid=
	cat "$1/fast.out" "$1/slow.out" "$log"
	[ $fast_rc -eq 0 ] || fail "$1: the fast epoll_client failed"
	[ $slow_rc -eq 0 ] || fail "$1: the stalled epoll_client failed"
	[ $server_rc -eq 0 ] || fail "$1: epoll_server failed"
	# The back-pressure path ran: some client was paused and lapped.
	grep -Eq 'paused [1-9][0-9]* times, lapped [1-9][0-9]* times' "$log" ||
		fail "$1: no client was both paused and lapped"
}

for way in make-shared make-static cmake-shared cmake-static; do
	dir=$tmp/$way
	echo "check-examples: $way"
	linkage "$dir" "${way#*-}"
	mkdir "$dir/consume"
	"$dir/consume_ack" --db "$dir/consume/shop.db" ||
		fail "$way: consume_ack failed"
	"$dir/uv_follower" --rows $ROWS || fail "$way: uv_follower failed"
	"$dir/redis_consumer" --help 2>/dev/null ||
		fail "$way: redis_consumer was not built or does not run"
	epoll "$dir"
done
echo "check-examples: every example builds against the installed copy four ways, and runs"
