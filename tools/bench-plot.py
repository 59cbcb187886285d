#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench-plot.py - plot litebus-bench --json output with gnuplot.

usage: tools/bench-plot.py [--png] BENCH.json [OUTDIR]

Writes two SVG files (PNG with --png) into OUTDIR (default: the JSON
file's directory):
  commit.svg   committed events/s vs producers, S=4 readers, for normal
               and full durability: litebus (submit256 and exec), the naive
               bus and the ceiling, medians with min..max bars.
  latency.svg  latency percentiles (p50, p99, p99.9, max) at 1k and 10k
               events/s for each path (ack, sub, reader): litebus vs naive.

Needs only the Python standard library and gnuplot (apt-get install
gnuplot-nox).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile


def load(path):
    with open(path) as f:
        return json.load(f)


def metric(obj, name):
    m = obj["metrics"].get(name)
    if m is None or m["median"] is None:
        return None
    return m["median"], m["min"], m["max"]


def find(results, scenario, **cfg):
    out = []
    for r in results:
        if r["scenario"] != scenario:
            continue
        if all(str(r["config"].get(k)) == str(v) for k, v in cfg.items()):
            out.append(r)
    return out


def write_commit_data(results, tmp, dur):
    """One row per P: median/min/max of each series."""
    path = os.path.join(tmp, "commit-%s.dat" % dur)
    rows = []
    for p in (1, 4, 8):
        sub = find(results, "commit", P=p, mode="submit256", S=4, dur=dur)
        exe = find(results, "commit", P=p, mode="exec", S=4, dur=dur)
        if not sub or not exe:
            continue
        vals = [metric(sub[0], "litebus_ev_s"), metric(exe[0], "litebus_ev_s"),
                metric(sub[0], "naive_ev_s"), metric(sub[0], "ceiling_ev_s")]
        if any(v is None for v in vals):
            continue
        rows.append("%d %s" % (p, " ".join("%g %g %g" % v for v in vals)))
    with open(path, "w") as f:
        f.write("# P  submit256(med min max) exec(...) naive(...) ceiling(...)\n")
        f.write("\n".join(rows) + "\n")
    return path, len(rows)


def write_latency_data(results, tmp, rate):
    path = os.path.join(tmp, "latency-%s.dat" % rate)
    lines = ["# x label " + " ".join(
        "%s_%s" % (impl, p) for p in ("ack", "sub", "reader")
        for impl in ("litebus", "naive"))]
    n = 0
    for x, (label, key) in enumerate((("p50", "p50"), ("p99", "p99"),
                                      ("p99.9", "p999"), ("max", "max"))):
        cols = []
        for p in ("ack", "sub", "reader"):
            r = find(results, "latency", rate=rate, path=p)
            for impl in ("litebus", "naive"):
                v = metric(r[0], "%s_%s_us" % (impl, key)) if r else None
                cols.append("%g" % v[0] if v else "NaN")
        lines.append("%d %s %s" % (x, label, " ".join(cols)))
        n += 1
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


GNUPLOT_COMMIT = r"""
%(terminal)s
set output '%(out)s'
set multiplot layout 1,2 title "litebus-bench commit: committed events/s vs producers (S=4 readers following live)\nceiling: 1 thread, 1024 rows/tx; submit256: 256 jobs in flight per producer; exec: 1; naive: 1 tx per event\nmedians, bars = min..max over repetitions; shared 2-core machine: compare ratios"
set logscale y
set format y "%%.0s%%c"
set xlabel "producers (P)"
set ylabel "committed events/s"
set xrange [0.5:8.5]
set xtics (1, 4, 8)
set grid ytics
set key below horizontal font ",9" maxrows 2 height 1
set bmargin 6.5
do for [d in "normal full"] {
  f = sprintf('%(tmp)s/commit-%%s.dat', d)
  set title sprintf("durability %%s", d)
  plot f using 1:11:12:13 with yerrorlines lw 2 dt 2 lc rgb "#555555" title "ceiling", \
       f using 1:2:3:4 with yerrorlines lw 2 lc rgb "#1f77b4" title "litebus submit256", \
       f using 1:5:6:7 with yerrorlines lw 2 lc rgb "#2ca02c" title "litebus exec", \
       f using 1:8:9:10 with yerrorlines lw 2 lc rgb "#d62728" title "naive bus"
}
unset multiplot
"""

GNUPLOT_LATENCY = r"""
%(terminal)s
set output '%(out)s'
set multiplot layout 1,2 title "litebus-bench latency from scheduled submit (open loop), microseconds, log scale\nsolid = litebus, dashed = naive bus; medians over repetitions; shared 2-core machine"
set logscale y
set ylabel "latency (us)"
set xrange [-0.3:3.3]
set grid ytics
set key below horizontal font ",9" maxrows 2 height 1
set bmargin 6.5
do for [rate in "1000 10000"] {
  f = sprintf('%(tmp)s/latency-%%s.dat', rate)
  set title sprintf("%%s events/s", rate)
  plot f using 1:3:xtic(2) with linespoints lw 2 lc rgb "#1f77b4" title "ack (litebus)", \
       f using 1:4 with linespoints lw 2 dt 2 lc rgb "#1f77b4" title "ack (naive)", \
       f using 1:5 with linespoints lw 2 lc rgb "#2ca02c" title "sub (litebus)", \
       f using 1:6 with linespoints lw 2 dt 2 lc rgb "#2ca02c" title "sub (naive)", \
       f using 1:7 with linespoints lw 2 lc rgb "#d62728" title "reader (litebus)", \
       f using 1:8 with linespoints lw 2 dt 2 lc rgb "#d62728" title "reader (naive)"
}
unset multiplot
"""


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


TERMINALS = {
    "svg": 'set terminal svg size 1000,480 dynamic font "sans,11" '
           'background "white"',
    "png": 'set terminal pngcairo size 1000,480 font "sans,10" '
           'background "white"',
}


def main(argv):
    fmt = "svg"
    if len(argv) > 1 and argv[1] == "--png":
        fmt = "png"
        argv = argv[:1] + argv[2:]
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write(__doc__)
        return 2
    results = load(argv[1])
    outdir = argv[2] if len(argv) > 2 else (os.path.dirname(argv[1]) or ".")
    if shutil.which("gnuplot") is None:
        sys.stderr.write("bench-plot: gnuplot not found "
                         "(apt-get install gnuplot-nox)\n")
        return 1
    tmp = tempfile.mkdtemp(prefix="bench-plot-")
    try:
        made = []
        n = sum(write_commit_data(results, tmp, d)[1] for d in ("normal", "full"))
        if n > 0:
            out = os.path.join(outdir, "commit." + fmt)
            gnuplot(GNUPLOT_COMMIT % {"out": out, "tmp": tmp,
                                      "terminal": TERMINALS[fmt]})
            made.append(out)
        if find(results, "latency"):
            for rate in (1000, 10000):
                write_latency_data(results, tmp, rate)
            out = os.path.join(outdir, "latency." + fmt)
            gnuplot(GNUPLOT_LATENCY % {"out": out, "tmp": tmp,
                                       "terminal": TERMINALS[fmt]})
            made.append(out)
        for m in made:
            print(m)
        if not made:
            sys.stderr.write("bench-plot: no commit or latency results in %s\n"
                             % argv[1])
            return 1
    finally:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
