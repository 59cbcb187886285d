#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench-plot.py - plot litebus-bench --json output with gnuplot.

usage: tools/bench-plot.py [--png] BENCH.json [OUTDIR]

Writes two SVG files (PNG with --png) into OUTDIR (default: the JSON
file's directory; created if it does not exist), and prints their paths:
  commit.svg   committed events/s vs producers, S=4 readers, for normal
               and full durability: litebus (submit256 and exec), the naive
               bus and the ceiling, medians with min..max bars.
  latency.svg  latency percentiles (p50, p99, p99.9, max) at 1k and 10k
               events/s for each path (ack, sub, reader): litebus vs naive.

Needs only the Python standard library and gnuplot (on Debian:
apt-get install gnuplot-nox).  Image bytes only ever go to files: gnuplot
draws into a temporary directory and its standard output is captured, and
the finished files are then moved into OUTDIR.

Exit status: 0 plots written; 1 nothing to plot, or gnuplot failed;
2 usage error, unreadable JSON, gnuplot not installed, or OUTDIR cannot be
created.
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


class PlotError(Exception):
    """A failure to report in one line, with the exit status to use."""

    def __init__(self, msg, status):
        super().__init__(msg)
        self.status = status


def gnuplot(script, tmp, name, outdir):
    """Run gnuplot on `script`, which draws into tmp/name, then move the
    file to outdir/name.  gnuplot's standard output is captured, never
    passed through: if it could not open its output file it would write
    the image there instead, and image bytes do not belong on a terminal.
    Returns the final path."""
    drawn = os.path.join(tmp, name)
    try:
        proc = subprocess.run(["gnuplot"], input=script.encode(),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    except OSError as e:
        raise PlotError("cannot run gnuplot: %s" % e.strerror, 2)
    err = proc.stderr.decode(errors="replace").strip()
    detail = ":\n" + err if err else ""
    if proc.returncode != 0:
        raise PlotError("gnuplot failed drawing %s (exit status %d)%s"
                        % (name, proc.returncode, detail), 1)
    if not os.path.isfile(drawn) or os.path.getsize(drawn) == 0:
        raise PlotError("gnuplot exited without drawing %s%s"
                        % (name, detail), 1)
    out = os.path.join(outdir, name)
    try:
        shutil.move(drawn, out)
    except OSError as e:
        raise PlotError("cannot write %s: %s" % (out, e.strerror), 2)
    return out


def make_outdir(outdir):
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise PlotError("output folder %s exists and is not a folder"
                        % outdir, 2)
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise PlotError("cannot create output folder %s: %s"
                        % (outdir, e.strerror), 2)
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise PlotError("cannot write into output folder %s" % outdir, 2)


TERMINALS = {
    "svg": 'set terminal svg size 1000,480 dynamic font "sans,11" '
           'background "white"',
    "png": 'set terminal pngcairo size 1000,480 font "sans,10" '
           'background "white"',
}


def plot(argv):
    fmt = "svg"
    if len(argv) > 1 and argv[1] == "--png":
        fmt = "png"
        argv = argv[:1] + argv[2:]
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        sys.stdout.write(__doc__)
        return 0
    if len(argv) < 2 or len(argv) > 3 or argv[1].startswith("-"):
        sys.stderr.write(__doc__)
        return 2
    try:
        results = load(argv[1])
    except OSError as e:
        raise PlotError("cannot read %s: %s" % (argv[1], e.strerror), 2)
    except ValueError as e:
        raise PlotError("%s is not litebus-bench --json output: %s"
                        % (argv[1], e), 2)
    if not isinstance(results, list):
        raise PlotError("%s is not litebus-bench --json output "
                        "(expected a JSON array)" % argv[1], 2)
    outdir = argv[2] if len(argv) > 2 else (os.path.dirname(argv[1]) or ".")
    if shutil.which("gnuplot") is None:
        raise PlotError("gnuplot not found; it draws the plots "
                        "(on Debian: apt-get install gnuplot-nox)", 2)
    tmp = tempfile.mkdtemp(prefix="bench-plot-")
    try:
        made = []
        n = sum(write_commit_data(results, tmp, d)[1] for d in ("normal", "full"))
        has_latency = bool(find(results, "latency"))
        if n == 0 and not has_latency:
            raise PlotError("no commit or latency results in %s" % argv[1], 1)
        make_outdir(outdir)
        if n > 0:
            name = "commit." + fmt
            made.append(gnuplot(GNUPLOT_COMMIT % {
                "out": os.path.join(tmp, name), "tmp": tmp,
                "terminal": TERMINALS[fmt]}, tmp, name, outdir))
        if has_latency:
            for rate in (1000, 10000):
                write_latency_data(results, tmp, rate)
            name = "latency." + fmt
            made.append(gnuplot(GNUPLOT_LATENCY % {
                "out": os.path.join(tmp, name), "tmp": tmp,
                "terminal": TERMINALS[fmt]}, tmp, name, outdir))
        for m in made:
            print(m)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv):
    try:
        return plot(argv)
    except PlotError as e:
        sys.stderr.write("bench-plot: %s\n" % e)
        return e.status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
