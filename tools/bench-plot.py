#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench-plot.py - plot litebus-bench --json output with gnuplot.

usage: tools/bench-plot.py [--png] BENCH.json [OUTDIR]

Writes one SVG file (PNG with --png) per scenario found in the JSON into
OUTDIR (default: the JSON file's directory; created if it does not
exist), and prints their paths:
  commit.svg   committed events/s vs producers, S=4 readers, for normal
               and full durability: litebus (submit256 and exec), the naive
               bus and the ceiling, medians with min..max bars.
  cpu.svg      (commit) process CPU microseconds per committed event vs
               producers, S=4, litebus exec/submit256 and the naive bus;
               the idle bus's CPU (commit mode=idle) in the title.
  latency.svg  latency percentiles (p50, p99, p99.9, max) at 1k and 10k
               events/s for each path (ack, sub, reader): litebus vs naive.
  ring.svg     delivered records/s per subscriber vs subscribers, max mode,
               256 and 4096 slots, litebus vs the ring baseline.
  fanout.svg   commit rate with S consumers / with none (x_S0) vs S, for
               idle, sub and reader consumers: litebus vs the naive bus;
               and the share of the readers' rows taken from memory
               (mem_hit, right axis).
  ratios.svg   catchup, retention, consumer and prune as ratios against
               their baselines in the same run (1.0 = parity).
  xproc.svg    cross-process reader latency p50/p99 per watch mode at 100
               and 1000 events/s (inproc = the same-process baseline).

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
set multiplot layout 1,%(ndur)d title "litebus-bench commit: committed events/s vs producers (S=4 readers following live)\nceiling: 1 thread, 1024 rows/tx; submit256: 256 jobs in flight per producer; exec: 1; naive: 1 tx per event\nmedians, bars = min..max over repetitions; shared 2-core machine: compare ratios"
set logscale y
set format y "%%.0s%%c"
set xlabel "producers (P)"
set ylabel "committed events/s"
set xrange [0.5:8.5]
set xtics (1, 4, 8)
set grid ytics
set key below horizontal font ",9" maxrows 2 height 1
set bmargin 6.5
do for [d in "%(durs)s"] {
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


def write_cpu_data(results, tmp, dur):
    """One row per P: CPU us per event, median/min/max, S=4 readers."""
    path = os.path.join(tmp, "cpu-%s.dat" % dur)
    rows = []
    for p in (1, 4, 8):
        sub = find(results, "commit", P=p, mode="submit256", S=4, dur=dur)
        exe = find(results, "commit", P=p, mode="exec", S=4, dur=dur)
        if not sub or not exe:
            continue
        vals = [metric(sub[0], "cpu_us_ev"), metric(exe[0], "cpu_us_ev"),
                metric(exe[0], "naive_cpu_us_ev")]
        if any(v is None for v in vals):
            continue
        rows.append("%d %s" % (p, " ".join("%g %g %g" % v for v in vals)))
    with open(path, "w") as f:
        f.write("# P  submit256(med min max) exec(...) naive(...)\n")
        f.write("\n".join(rows) + "\n")
    return len(rows)


def idle_title(results):
    idle = find(results, "commit", mode="idle")
    v = metric(idle[0], "pct_core") if idle else None
    if v is None:
        return "idle bus: not measured"
    return ("idle bus (%s readers, %s subscribers, %s s): %.3f%% of a core"
            % (idle[0]["config"].get("readers"),
               idle[0]["config"].get("subs"),
               idle[0]["config"].get("seconds"), v[0]))


def write_ring_data(results, tmp):
    n = 0
    for slots in (256, 4096):
        lines = ["# S litebus_deliv_s base_deliv_s"]
        for r in sorted(find(results, "ring", mode="max", slots=slots),
                        key=lambda r: int(r["config"]["S"])):
            a = metric(r, "litebus_deliv_s")
            b = metric(r, "base_deliv_s")
            if a is None or b is None:
                continue
            lines.append("%s %g %g" % (r["config"]["S"], a[0], b[0]))
            n += 1
        with open(os.path.join(tmp, "ring-%d.dat" % slots), "w") as f:
            f.write("\n".join(lines) + "\n")
    return n


def write_fanout_data(results, tmp):
    n = 0
    for kind in ("idle", "sub", "reader"):
        lines = ["# S litebus_x_S0 naive_x_S0 mem_hit"]
        for r in sorted(find(results, "fanout", kind=kind),
                        key=lambda r: int(r["config"]["S"])):
            a = metric(r, "x_S0")
            b = metric(r, "naive_x_S0")
            h = metric(r, "mem_hit")  # readers only, newer runs only
            lines.append("%s %s %s %s" % (r["config"]["S"],
                                          "%g" % a[0] if a else "NaN",
                                          "%g" % b[0] if b else "NaN",
                                          "%g" % h[0] if h else "NaN"))
            n += 1
        with open(os.path.join(tmp, "fanout-%s.dat" % kind), "w") as f:
            f.write("\n".join(lines) + "\n")
    return n


def write_ratio_data(results, tmp):
    """One bar per (scenario, configuration, ratio): label, median, min,
    max.  Ratios where 1.0 means "as good as the baseline"."""
    bars = []

    def add(label, r, name, scale=1.0):
        v = metric(r, name)
        if v is not None:
            bars.append((label, v[0] * scale, v[1] * scale, v[2] * scale))

    for r in find(results, "catchup"):
        add("catchup\\n%% of SELECT", r, "pct_select", 0.01)
    for r in find(results, "retention"):
        add("retention P=%s\\nx off" % r["config"]["P"], r, "x_off")
    for r in find(results, "consumer"):
        add("consumer P=%s\\nx none" % r["config"]["P"], r, "x_none")
        add("consumer P=%s\\nx reader" % r["config"]["P"], r, "x_reader")
    for r in find(results, "prune"):
        add("prune b=%s\\n%% of DELETE" % r["config"]["batch"], r,
            "pct_delete", 0.01)
        add("prune b=%s\\nproducer x none" % r["config"]["batch"], r,
            "x_none")
    with open(os.path.join(tmp, "ratios.dat"), "w") as f:
        f.write("# label median min max\n")
        for i, b in enumerate(bars):
            f.write('%d "%s" %g %g %g\n' % ((i,) + b))
    return len(bars)


def write_xproc_data(results, tmp):
    n = 0
    for rate in (100, 1000):
        lines = ["# x mode p50_us p99_us"]
        for i, mode in enumerate(("inproc", "auto", "poll1", "poll5")):
            r = find(results, "xproc", kind="latency", mode=mode, rate=rate)
            a = metric(r[0], "p50_us") if r else None
            b = metric(r[0], "p99_us") if r else None
            lines.append("%d %s %s %s" % (i, mode,
                                          "%g" % a[0] if a else "NaN",
                                          "%g" % b[0] if b else "NaN"))
            n += 1 if a else 0
        with open(os.path.join(tmp, "xproc-%d.dat" % rate), "w") as f:
            f.write("\n".join(lines) + "\n")
    return n


def xproc_title(results):
    parts = []
    for r in find(results, "xproc", kind="idle"):
        v = metric(r, "pct_core")
        if v is not None:
            parts.append("%s %.3f%%" % (r["config"].get("mode"), v[0]))
    return "idle watcher, % of a core: " + (", ".join(parts) or "-")


GNUPLOT_CPU = r"""
%(terminal)s
set output '%(out)s'
set multiplot layout 1,%(ndur)d title "litebus-bench commit: process CPU per committed event (all threads), S=4 readers\n%(idle)s\nmedians, bars = min..max; shared 2-core machine"
set logscale y
set xlabel "producers (P)"
set ylabel "CPU microseconds per event"
set xrange [0.5:8.5]
set xtics (1, 4, 8)
set grid ytics
set key below horizontal font ",9" maxrows 1 height 1
set bmargin 5.5
do for [d in "%(durs)s"] {
  f = sprintf('%(tmp)s/cpu-%%s.dat', d)
  set title sprintf("durability %%s", d)
  plot f using 1:2:3:4 with yerrorlines lw 2 lc rgb "#1f77b4" title "litebus submit256", \
       f using 1:5:6:7 with yerrorlines lw 2 lc rgb "#2ca02c" title "litebus exec", \
       f using 1:8:9:10 with yerrorlines lw 2 lc rgb "#d62728" title "naive bus"
}
unset multiplot
"""

GNUPLOT_RING = r"""
%(terminal)s
set output '%(out)s'
set multiplot layout 1,2 title "litebus-bench ring (max mode): records/s delivered to each subscriber\nlitebus's ring vs the mutex+condvar ring baseline; medians; shared 2-core machine"
set logscale y
set format y "%%.0s%%c"
set xlabel "subscribers (S)"
set ylabel "delivered records/s per subscriber"
set xrange [0.5:4.5]
set xtics (1, 2, 4)
set grid ytics
set key below horizontal font ",9"
do for [slots in "256 4096"] {
  f = sprintf('%(tmp)s/ring-%%s.dat', slots)
  set title sprintf("%%s slots", slots)
  plot f using 1:2 with linespoints lw 2 lc rgb "#1f77b4" title "litebus", \
       f using 1:3 with linespoints lw 2 dt 2 lc rgb "#d62728" title "baseline"
}
unset multiplot
"""

GNUPLOT_FANOUT = r"""
%(terminal)s
set output '%(out)s'
set title "litebus-bench fanout: commit rate with S consumers / with none (x_S0), P=4 submit256 normal\nsolid = litebus, dashed = naive bus, dots = readers' rows from memory (right axis); medians; shared 2-core machine"
set logscale x 2
set xlabel "consumers (S)"
set ylabel "x_S0"
set y2label "rows from memory / rows delivered"
set xrange [0.8:80]
set yrange [0:1.3]
set y2range [0:1.3]
set y2tics 0.25
set xtics (1, 4, 16, 64)
set grid ytics
set key below horizontal font ",9" maxrows 3
plot '%(tmp)s/fanout-idle.dat' using 1:2 with linespoints lw 2 lc rgb "#7f7f7f" title "idle (litebus)", \
     '%(tmp)s/fanout-idle.dat' using 1:3 with linespoints lw 2 dt 2 lc rgb "#7f7f7f" title "idle (naive)", \
     '%(tmp)s/fanout-sub.dat' using 1:2 with linespoints lw 2 lc rgb "#2ca02c" title "sub (litebus)", \
     '%(tmp)s/fanout-sub.dat' using 1:3 with linespoints lw 2 dt 2 lc rgb "#2ca02c" title "sub (naive)", \
     '%(tmp)s/fanout-reader.dat' using 1:2 with linespoints lw 2 lc rgb "#d62728" title "reader (litebus)", \
     '%(tmp)s/fanout-reader.dat' using 1:3 with linespoints lw 2 dt 2 lc rgb "#d62728" title "reader (naive)", \
     '%(tmp)s/fanout-reader.dat' using 1:4 axes x1y2 with points pt 7 ps 1 lc rgb "#d62728" title "reader rows from memory (litebus)"
"""

GNUPLOT_RATIOS = r"""
%(terminal)s
set output '%(out)s'
set title "litebus-bench catchup, retention, consumer, prune: ratios against the baseline of the same run\n1.0 = parity; medians, bars = min..max; shared 2-core machine"
set style fill solid 0.6 border -1
set boxwidth 0.6
set yrange [0:*]
set grid ytics
set ylabel "ratio"
set xtics rotate by -35 font ",8"
set bmargin 7
unset key
plot '%(tmp)s/ratios.dat' using 1:3:xtic(2) with boxes lc rgb "#1f77b4", \
     '' using 1:3:4:5 with yerrorbars lc rgb "black" pt -1, \
     1 with lines dt 2 lc rgb "#555555"
"""

GNUPLOT_XPROC = r"""
%(terminal)s
set output '%(out)s'
set multiplot layout 1,2 title "litebus-bench xproc: a reader in another process, latency from the writer's exec returning (us, log scale)\n%(idle)s; shared 2-core machine"
set logscale y
set ylabel "latency (us; 0 drawn as 1)"
set xrange [-0.5:3.5]
set grid ytics
set key below horizontal font ",9"
do for [rate in "100 1000"] {
  f = sprintf('%(tmp)s/xproc-%%s.dat', rate)
  set title sprintf("%%s events/s", rate)
  plot f using 1:($3 > 0 ? $3 : 1):xtic(2) with linespoints lw 2 lc rgb "#1f77b4" title "p50", \
       f using 1:($4 > 0 ? $4 : 1) with linespoints lw 2 lc rgb "#d62728" title "p99"
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
        # A panel per durability that has data (--only may leave one).
        durs = [d for d in ("normal", "full")
                if write_commit_data(results, tmp, d)[1] > 0]
        cpu_durs = [d for d in ("normal", "full")
                    if write_cpu_data(results, tmp, d) > 0]
        n, ncpu = len(durs), len(cpu_durs)
        has_latency = bool(find(results, "latency"))
        if has_latency:
            for rate in (1000, 10000):
                write_latency_data(results, tmp, rate)
        plots = [
            ("commit", GNUPLOT_COMMIT, n,
             {"durs": " ".join(durs), "ndur": n}),
            ("cpu", GNUPLOT_CPU, ncpu,
             {"idle": idle_title(results), "durs": " ".join(cpu_durs),
              "ndur": ncpu}),
            ("latency", GNUPLOT_LATENCY, int(has_latency), {}),
            ("ring", GNUPLOT_RING, write_ring_data(results, tmp), {}),
            ("fanout", GNUPLOT_FANOUT, write_fanout_data(results, tmp), {}),
            ("ratios", GNUPLOT_RATIOS, write_ratio_data(results, tmp), {}),
            ("xproc", GNUPLOT_XPROC, write_xproc_data(results, tmp),
             {"idle": xproc_title(results)}),
        ]
        if not any(count for _, _, count, _ in plots):
            raise PlotError("no results to plot in %s" % argv[1], 1)
        make_outdir(outdir)
        for base, script, count, extra in plots:
            if count == 0:
                continue
            name = base + "." + fmt
            args = {"out": os.path.join(tmp, name), "tmp": tmp,
                    "terminal": TERMINALS[fmt]}
            args.update(extra)
            made.append(gnuplot(script % args, tmp, name, outdir))
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
