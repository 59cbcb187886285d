#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-includes.sh - the include graph of lib/ has no cycle, and the
# layering rules of README "Repository layout" hold:
#   - outbox (storage) includes nothing that carries a ring or a futex word
#     (ring.h, channel.h, subscriber.h, wait.h);
#   - writer never includes bus.h (it is handed an lb_writer_config).
# A module x is lib/x.c with lib/x.h; an edge x -> y means x.c or x.h
# includes y.h.  Uses tsort(1) (coreutils) to find cycles.
set -euo pipefail

cd "$(dirname "$0")/../lib"

edges=$(for f in *.c *.h; do
	mod=${f%.*}
	grep -o '^#include "[a-z_]*\.h"' "$f" | sed 's/.*"\(.*\)\.h"/\1/' |
		while read -r dep; do
			[ "$dep" = "$mod" ] || [ "$dep" = litebus ] || echo "$mod $dep"
		done
done | sort -u)

status=0
if ! tsort <<<"$edges" >/dev/null 2>/tmp/check-includes.$$; then
	echo "lib/ include graph has a cycle:" >&2
	cat /tmp/check-includes.$$ >&2
	status=1
fi
rm -f /tmp/check-includes.$$

forbid() { # module dep why
	if grep -qx "$1 $2" <<<"$edges"; then
		echo "lib/$1 includes $2.h: $3" >&2
		status=1
	fi
}
for dep in ring channel subscriber wait; do
	forbid outbox "$dep" "storage must not know about rings or wake-ups"
done
forbid writer bus "the writer is wired by its config, not its owner's struct"

[ $status -eq 0 ] && echo "lib/ include graph: no cycle, layering holds"
exit $status
