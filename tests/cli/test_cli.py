#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_cli.py - tests of the INSTALLED litebus tool (litebus(1)).

    test_cli.py LITEBUS CLI_WRITER TEST

LITEBUS is the binary installed by the cli_install fixture (a temporary
prefix under the build directory), CLI_WRITER the helper program that
writes files through the library in another process.  TEST names one
test below.  Every JSON output is parsed with the json module, and
compared with the tables as Python's own sqlite3 module reads them
(read-only): the schema is the documented contract (doc/schema.md).
Exit status 0 pass, 1 fail, 77 skipped.
"""
import base64
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import sqlite3
import subprocess
import threading
import sys
import tempfile
import time

DEADLINE = 60  # seconds: the bound on any one command of a test

LITEBUS, WRITER = sys.argv[1], sys.argv[2]


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def lb(*args, want=0, stdin=None):
    """Run the installed tool; check its exit status; return stdout."""
    p = subprocess.run([LITEBUS, *args], capture_output=True,
                       timeout=DEADLINE, stdin=stdin)
    if p.returncode != want:
        raise Fail("litebus %s: exit %d, wanted %d\nstdout: %s\nstderr: %s"
                   % (" ".join(args), p.returncode, want,
                      p.stdout.decode(errors="replace")[:2000],
                      p.stderr.decode(errors="replace")[:2000]))
    return p.stdout.decode()


def writer(*args):
    p = subprocess.run([WRITER, *args], capture_output=True,
                       timeout=DEADLINE)
    check(p.returncode == 0, "cli_writer %s: %s" % (args, p.stderr))
    return p.stdout.decode()


def table(db, channel, where="1"):
    """The rows of a channel's table, read by Python's sqlite3."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return con.execute(
            'SELECT event_id, partition_key, subject, event_type, namespace, '
            'instance_tag, payload, occurred_at_ms, committed_at_ms FROM '
            '"litebus_outbox_%s" WHERE %s ORDER BY event_id'
            % (channel, where)).fetchall()
    finally:
        con.close()


def sql(db, query, *params):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def as_bytes(v):
    if v is None:
        return b""
    return v.encode() if isinstance(v, str) else bytes(v)


def decoded(obj, key):
    enc = obj[key + "_encoding"]
    if enc == "utf-8":
        return obj[key].encode()
    check(enc == "base64", "%s_encoding is %r" % (key, enc))
    return base64.b64decode(obj[key], validate=True)


def json_lines(out):
    return [json.loads(line) for line in out.splitlines()]


def check_json_rows(objs, rows, channel):
    check(len(objs) == len(rows),
          "%d JSON rows, the table has %d" % (len(objs), len(rows)))
    for o, r in zip(objs, rows):
        check(o["channel"] == channel, "channel %r" % o["channel"])
        check(o["event_id"] == r[0], "event_id %r vs %r" % (o["event_id"], r[0]))
        check(o["partition_key"] == r[1], "partition_key")
        check(decoded(o, "subject") == as_bytes(r[2]),
              "subject of %d: %r vs %r" % (r[0], decoded(o, "subject"), r[2]))
        check(o["event_type"] == r[3], "event_type")
        check(o["namespace"] == r[4], "namespace %r vs %r" % (o["namespace"], r[4]))
        check(o["instance_tag"] == r[5], "instance_tag")
        check(decoded(o, "payload") == as_bytes(r[6]),
              "payload of %d: %r vs %r" % (r[0], decoded(o, "payload"), r[6]))
        check(o["occurred_at_ms"] == r[7] and o["committed_at_ms"] == r[8],
              "times")
        for k in ("subject", "payload"):
            b = as_bytes(r[2 if k == "subject" else 6])
            try:
                b.decode("utf-8")
                text = True
            except UnicodeDecodeError:
                text = False
            check(o[k + "_encoding"] == ("utf-8" if text else "base64"),
                  "%s of %d: encoding %s" % (k, r[0], o[k + "_encoding"]))


N = 40  # rows on "orders" in a filled file


def filled(tmp):
    db = os.path.join(tmp, "f.db")
    writer("fill", db, str(N))
    return db


def copy_db(src, dst):
    """A copy of a database that another connection may have left with
    a -wal (what was committed is in the pair)."""
    shutil.copy(src, dst)
    if os.path.exists(src + "-wal"):
        shutil.copy(src + "-wal", dst + "-wal")


def file_state(db):
    """Bytes of the database and its -wal: what a read-only tool must
    leave alone."""
    h = hashlib.sha256()
    for p in (db, db + "-wal"):
        if os.path.exists(p):
            with open(p, "rb") as f:
                h.update(f.read())
        h.update(b"|")
    return h.hexdigest()


# ---------------------------------------------------------------------

SUBCOMMANDS = ["tail", "stat", "channels", "consumers", "prune", "check"]


def test_version_help_and_exit_codes(tmp):
    out = lb("--version")
    check(out.startswith("litebus ") and "(library " in out and "SQLite " in out,
          "--version: %r" % out)
    out = lb("--help")
    for c in SUBCOMMANDS:
        check("  %s " % c in out, "--help does not list %s" % c)
    for code in ("0 ", "1 ", "2 ", "3 "):
        check("  " + code in out, "--help does not list exit code %s" % code)
    for c in SUBCOMMANDS:
        out = lb(c, "--help")
        check(out.startswith("usage: litebus %s" % c), "%s --help: %r" % (c, out[:80]))
        check("Exit status" in out, "%s --help lists no exit status" % c)
        lb(c, want=2)  # no DB
        lb(c, "x.db", "--no-such-option", want=2)
    man = os.path.join(os.path.dirname(LITEBUS), "..", "share", "man",
                       "man1", "litebus.1")
    with open(man) as f:
        page = f.read()
    check(".TH LITEBUS 1" in page and ".SH EXIT STATUS" in page,
          "the installed man page %s" % man)
    if shutil.which("groff"):  # groff-base: .ci/run installs it
        p = subprocess.run(["groff", "-man", "-ww", "-z", man],
                           capture_output=True, timeout=DEADLINE)
        check(p.returncode == 0 and p.stdout + p.stderr == b"",
              "litebus.1 does not format cleanly: %r" % (p.stdout + p.stderr))
    lb(want=2)
    lb("frobnicate", want=2)
    lb("tail", "x.db", "orders", "--from", "0", want=2)
    lb("tail", "x.db", "orders", "--from", "3", "--from-now", want=2)
    lb("prune", "x.db", "orders", want=2)
    lb("prune", "x.db", "orders", "--older-than", "3 weeks", want=2)
    lb("stat", "x.db", "--json", "--prometheus", want=2)
    # A file that does not exist: a runtime error, and it is not created.
    missing = os.path.join(tmp, "missing.db")
    for c in ("tail", "stat", "channels", "consumers", "prune", "check"):
        args = {"tail": [missing, "orders"],
                "prune": [missing, "orders", "--before", "5"]}.get(c, [missing])
        lb(c, *args, want=1)
        check(not os.path.exists(missing), "%s created %s" % (c, missing))


def test_tail(tmp):
    db = filled(tmp)
    rows = table(db, "orders")
    check(len(rows) == N, "the writer made %d rows" % len(rows))
    check_json_rows(json_lines(lb("tail", db, "orders", "--json")), rows, "orders")
    check_json_rows(json_lines(lb("tail", db, "COMPLETION", "--json")),
                    table(db, "completion"), "completion")
    text = lb("tail", db, "orders").splitlines()
    check(len(text) == N, "%d text lines" % len(text))
    for line, r in zip(text, rows):
        check(line.split(" ")[0] == str(r[0]), "text line %r" % line)
    check(any("payload=base64:" in t for t in text), "no base64 payload in text")
    # Filters, and where to start.
    check_json_rows(json_lines(lb("tail", db, "orders", "--json", "--partition", "7")),
                    table(db, "orders", "partition_key = 7"), "orders")
    check_json_rows(json_lines(lb("tail", db, "orders", "--json", "--namespace", "odd")),
                    table(db, "orders", "namespace = 'odd'"), "orders")
    check_json_rows(json_lines(lb("tail", db, "orders", "--json", "--tag=t0")),
                    table(db, "orders", "instance_tag = 't0'"), "orders")
    check_json_rows(json_lines(lb("tail", db, "orders", "--json", "--from", "30")),
                    table(db, "orders", "event_id >= 30"), "orders")
    check(lb("tail", db, "orders", "--from-now") == "", "--from-now printed rows")
    lb("tail", db, "no_such_channel", want=1)
    # Text columns that are not UTF-8 (another program wrote them): the
    # output is still JSON, with U+FFFD in their place.
    odd = os.path.join(tmp, "odd.db")
    copy_db(db, odd)
    con = sqlite3.connect(odd)
    con.execute("INSERT INTO litebus_outbox_orders(event_id, partition_key, "
                "event_type, namespace, occurred_at_ms, committed_at_ms) "
                "VALUES(1000, 0, 'placed', CAST(X'FF41' AS TEXT), 0, 0)")
    con.commit()
    con.close()
    last = json_lines(lb("tail", odd, "orders", "--json", "--from", "1000"))
    check(len(last) == 1 and last[0]["namespace"] == "\ufffdA",
          "non-UTF-8 namespace: %r" % last)


def test_tail_follow_across_processes(tmp):
    """A writer in another process commits a numbered sequence, is killed
    with SIGKILL in the middle and restarted; `litebus tail --follow
    --json` delivers every committed row exactly once, in order."""
    db = filled(tmp)
    before = table(db, "orders")
    # --from the next id, not --from-now: no race with the first commit.
    tail = subprocess.Popen([LITEBUS, "tail", db, "orders", "--follow", "--json",
                             "--from", str(before[-1][0] + 1)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # And a filtered one: the odd rows only.
    odd = subprocess.Popen([LITEBUS, "tail", db, "orders", "--follow", "--json",
                            "--from", str(before[-1][0] + 1), "--namespace",
                            "odd"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got, got_odd = [], []
    pending = {tail: b"", odd: b""}

    def read_until(proc, rows, pred, what):
        """Parse proc's lines until pred(); every wait has a deadline."""
        end = time.monotonic() + DEADLINE
        while not pred():
            left = end - time.monotonic()
            check(left > 0, "deadline: %s; %d rows so far" % (what, len(rows)))
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if chunk == b"":
                raise Fail("tail ended: exit %s, %s" % (
                    proc.wait(timeout=DEADLINE), proc.stderr.read()))
            pending[proc] += chunk
            *lines, pending[proc] = pending[proc].split(b"\n")
            rows.extend(json.loads(line) for line in lines)

    try:
        # The tail is following once a row committed now reaches it.
        writer("run", db, "1", "1")
        read_until(tail, got, lambda: len(got) >= 1, "the first row")
        # A writer killed in the middle of its run.
        w = subprocess.Popen([WRITER, "run", db, "2", "100000"],
                             stdout=subprocess.PIPE)
        acked = 0
        end = time.monotonic() + DEADLINE
        while acked < 150:
            check(time.monotonic() < end, "deadline: writer")
            line = w.stdout.readline()
            check(line != b"", "the writer ended early")
            acked = int(line.split()[0])
        w.send_signal(signal.SIGKILL)
        w.wait(timeout=DEADLINE)
        # Restarted: what it commits now follows what the killed one did.
        writer("run", db, str(acked + 1), "100")
        rows = table(db, "orders")[len(before):]
        last = rows[-1][0]
        read_until(tail, got, lambda: got[-1]["event_id"] >= last,
                   "row %d" % last)
        rows_odd = [r for r in rows if r[4] == "odd"]
        read_until(odd, got_odd, lambda: got_odd and
                   got_odd[-1]["event_id"] >= rows_odd[-1][0],
                   "odd row %d" % rows_odd[-1][0])
    finally:
        for p in (tail, odd):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                p.kill()
                raise
    for p, rows_p, what in ((tail, got, "tail"), (odd, got_odd, "tail --namespace")):
        check(p.returncode == 0, "%s exit %d after SIGTERM" % (what, p.returncode))
        rest = pending[p] + p.stdout.read()
        rows_p += [json.loads(line) for line in rest.splitlines()]
    # Exactly once, in order: the JSON rows are the table's rows.
    check_json_rows(got, rows, "orders")
    check_json_rows(got_odd, rows_odd, "orders")
    keys = [r[1] for r in rows]
    check(set(range(1, acked + 101)) <= set(keys),
          "an acknowledged row is missing from the table")
    print("%d rows followed (%d by the filtered tail); the killed writer had committed %d rows, "
          "%d of them acknowledged, when SIGKILL came"
          % (len(got), len(got_odd), len(rows) - 1 - 100, acked - 1))


def test_stat(tmp):
    db = filled(tmp)
    text = lb("stat", db)
    check("schema_version  2" in text and "orders" in text and "billing" in text,
          "stat text: %r" % text[:500])
    st = json.loads(lb("stat", db, "--json"))
    check(st["schema_version"] == 2, "schema_version")
    check(isinstance(st["wal_bytes"], int) and st["wal_bytes"] >= 0, "wal_bytes")
    chans = {c["name"]: c for c in st["channels"]}
    for name in ("orders", "completion", "lease_history"):
        rows = table(db, name)
        c = chans[name]
        check(c["rows"] == len(rows), "%s rows %d vs %d" % (name, c["rows"], len(rows)))
        check(c["head"] == (rows[-1][0] if rows else 0), "%s head" % name)
        check(c["oldest"] == (rows[0][0] if rows else 0), "%s oldest" % name)
        check(c["bytes"] is None or c["bytes"] > 0, "%s bytes" % name)
    cons = {(c["channel"], c["name"]): c for c in st["consumers"]}
    b = cons[("orders", "billing")]
    check(b["position"] == N // 2 and b["lag"] == N - N // 2 and not b["open"],
          "billing: %r" % b)
    check(cons[("completion", "idle")]["position"] == 0, "idle")


def test_stat_prometheus(tmp):
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        print("SKIP: python3-prometheus-client is not installed")
        sys.exit(77)
    db = filled(tmp)
    text = lb("stat", db, "--prometheus")
    families = list(text_string_to_metric_families(text))
    check(len(families) > 0, "no metrics")
    names = set()
    for fam in families:
        check(fam.name.startswith("litebus_"), "metric %s" % fam.name)
        check(fam.documentation, "metric %s has no HELP" % fam.name)
        names.add(fam.name)
        for s in fam.samples:
            check(s.value == s.value, "NaN in %s" % s.name)  # noqa
    check(len(names) == len(families), "a metric family appears twice")
    # The library's metrics and the file's own agree with the tables.
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in families for s in fam.samples}
    for name in ("orders", "completion"):
        rows = table(db, name)
        key = (("channel", name),)
        check(samples[("litebus_channel_rows", key)] == len(rows), "rows")
        check(samples[("litebus_channel_head_id", key)] == rows[-1][0], "head")
        check(samples[("litebus_channel_oldest_id", key)] == rows[0][0], "oldest")
    check(samples[("litebus_consumer_lag_ids",
                   (("channel", "orders"), ("consumer", "billing")))]
          == N - N // 2, "billing's lag")
    check(samples[("litebus_schema_version", ())] == 2, "schema version")
    # Every metric line belongs to a family with HELP and TYPE.
    for line in text.splitlines():
        check(line == "" or line.startswith("#") or line.startswith("litebus_"),
              "line %r" % line)


def test_channels(tmp):
    db = filled(tmp)
    doc = json.loads(lb("channels", db, "--json"))
    names = [c["name"] for c in doc["channels"]]
    file_names = [r[0] for r in sql(db, "SELECT name FROM litebus_channel")]
    check(sorted(n.lower() for n in names) == sorted(n.lower() for n in file_names),
          "channels %r vs %r" % (names, file_names))
    check(names[:5] == ["lease_history", "completion", "signal_delivery",
                        "stream_frame", "operator_event"], "built-in ids")
    orders = [c for c in doc["channels"] if c["name"] == "orders"][0]
    check(orders["head"] == N and orders["oldest"] == 1, "orders %r" % orders)
    text = lb("channels", db)
    check("orders" in text and "completion" in text, "text %r" % text)


def test_consumers(tmp):
    db = filled(tmp)
    doc = json.loads(lb("consumers", db, "--json"))
    cons = {(c["channel"], c["name"]): c for c in doc["consumers"]}
    check(set(cons) == {("orders", "billing"), ("completion", "idle")},
          "consumers %r" % sorted(cons))
    check(cons[("orders", "billing")]["head"] == N, "head")
    check("billing" in lb("consumers", db), "text")
    # Deleting: not while a handle is open (in another process), then yes.
    h = subprocess.Popen([WRITER, "hold", db, "completion", "idle"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        check(h.stdout.readline() == b"open\n", "hold did not open")
        lb("consumers", db, "--delete", "completion", "idle", want=1)
    finally:
        h.stdin.close()
        h.wait(timeout=DEADLINE)
    check(h.returncode == 0, "hold failed")
    lb("consumers", db, "--delete", "completion", "idle")
    lb("consumers", db, "--delete", "completion", "idle", want=1)
    lb("consumers", db, "--delete", "no_such_channel", "x", want=1)
    doc = json.loads(lb("consumers", db, "--json"))
    check([c["name"] for c in doc["consumers"]] == ["billing"], "after delete")


def test_prune(tmp):
    db = filled(tmp)
    # billing acknowledged N/2: rows above it stay.
    out = lb("prune", db, "orders", "--before", str(N + 1))
    check("pruned %d rows" % (N // 2) in out, "prune report: %r" % out)
    check("held back by consumer billing" in out, "no holder named: %r" % out)
    rows = table(db, "orders")
    check([r[0] for r in rows] == list(range(N // 2 + 1, N + 1)),
          "rows left: %r" % [r[0] for r in rows])
    check(sql(db, "SELECT pruned_through FROM litebus_pruned WHERE name = 'orders'")
          == [(N // 2,)], "pruned_through")
    lb("consumers", db, "--delete", "orders", "billing")
    # Nothing is older than an hour: nothing goes.
    out = lb("prune", db, "orders", "--older-than", "1h")
    check("pruned 0 rows" in out, "older-than 1h: %r" % out)
    out = lb("prune", db, "orders", "--older-than=0s")
    check("pruned %d rows" % (N - N // 2) in out, "older-than 0s: %r" % out)
    check(table(db, "orders") == [], "rows left after pruning all")
    # completion's consumer "idle" is at 0: it holds every row.
    n = len(table(db, "completion"))
    out = lb("prune", db, "completion", "--before", "1000")
    check("pruned 0 rows" in out and "idle" in out, "held: %r" % out)
    check(len(table(db, "completion")) == n, "completion lost rows")
    lb("check", db)


def test_check(tmp):
    db = filled(tmp)
    out = lb("check", db)
    check("PASS integrity_check" in out and "FAIL" not in out, out)
    lb("prune", db, "orders", "--before", "10")
    lb("check", db)
    # A row below the pruned prefix.
    bad = os.path.join(tmp, "bad1.db")
    copy_db(db, bad)
    con = sqlite3.connect(bad)
    con.execute("INSERT INTO litebus_outbox_orders(event_id, partition_key, "
                "event_type, occurred_at_ms, committed_at_ms) "
                "VALUES(2, 0, 'x', 0, 0)")
    con.commit()
    con.close()
    out = lb("check", bad, want=3)
    check("FAIL channel orders" in out and "pruned_through" in out, out)
    # A foreign trigger on a litebus table.
    bad = os.path.join(tmp, "bad2.db")
    copy_db(db, bad)
    con = sqlite3.connect(bad)
    con.execute("CREATE TRIGGER spy AFTER INSERT ON litebus_outbox_orders "
                "BEGIN SELECT 1; END")
    con.commit()
    con.close()
    out = lb("check", bad, want=3)
    check("FAIL trigger spy" in out, out)
    # A consumer beyond the head, and a wrong schema version.
    bad = os.path.join(tmp, "bad3.db")
    copy_db(db, bad)
    con = sqlite3.connect(bad)
    con.execute("UPDATE litebus_consumer SET position = 1000000")
    con.execute("UPDATE litebus_meta SET value = 7")
    con.commit()
    con.close()
    out = lb("check", bad, want=3)
    check("above the channel's head" in out and "FAIL schema version 7" in out, out)
    # What litebus_open itself refuses fails the check too (A5): a dropped
    # high-water trigger, a column added to a litebus table, a foreign
    # table in litebus's namespace.
    for i, sql in enumerate(["DROP TRIGGER litebus_outbox_orders_hw",
                             "ALTER TABLE litebus_consumer ADD COLUMN z",
                             "CREATE TABLE litebus_foo(x)"]):
        bad = os.path.join(tmp, "bad_lib%d.db" % i)
        copy_db(db, bad)
        con = sqlite3.connect(bad)
        con.execute(sql)
        con.commit()
        con.close()
        out = lb("check", bad, want=3)
        check("FAIL litebus refuses to open it: ESCHEMA" in out, out)
    # A file litebus 0.1 wrote, migrated by a read-write open: clean.
    v1 = os.path.join(tmp, "v1.db")
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "..", "data", "schema_v1.db"), v1)
    writer("run", v1, "1", "1")
    out = lb("check", v1)
    check("PASS schema version 2" in out and "channel orders: ids 1..5, "
          "high-water mark 2" in out, out)
    # Not a database at all: a runtime error or a failed check, not 0.
    junk = os.path.join(tmp, "junk.db")
    with open(junk, "wb") as f:
        f.write(b"not a database" * 100)
    p = subprocess.run([LITEBUS, "check", junk], capture_output=True,
                       timeout=DEADLINE)
    check(p.returncode == 1, "check of junk: exit %d" % p.returncode)


def test_check_of_a_file_in_use(tmp):
    """check reads one snapshot (A4): while a writer commits and a
    consumer's position follows the head, the head and the position it
    reads never disagree."""
    # Big enough that check takes a while between the heads and the
    # positions.
    db = os.path.join(tmp, "big.db")
    writer("fill", db, "20000")
    stop = threading.Event()

    def commit():
        first = 20001
        while not stop.is_set():
            writer("run", db, str(first), "200")
            first += 200

    def ack():
        # Acknowledges up to the head as fast as it can, as a live consumer
        # would (a test may write the table; tools must not).
        con = sqlite3.connect(db, timeout=10)
        try:
            while not stop.is_set():
                con.execute("UPDATE litebus_consumer SET position = (SELECT "
                            "max(event_id) FROM litebus_outbox_orders) "
                            "WHERE name = 'billing'")
                con.commit()
        finally:
            con.close()

    threads = [threading.Thread(target=commit), threading.Thread(target=ack)]
    for t in threads:
        t.start()
    try:
        for _ in range(10):
            p = subprocess.run([LITEBUS, "check", db], capture_output=True,
                               timeout=DEADLINE)
            check(p.returncode == 0, "check of a file in use: exit %d\n%s"
                  % (p.returncode, p.stdout.decode()))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=DEADLINE)


def test_read_only_commands_do_not_write(tmp):
    db = filled(tmp)
    h = file_state(db)
    m = os.stat(db).st_mtime_ns
    lb("tail", db, "orders", "--json")
    lb("stat", db, "--json")
    lb("channels", db)
    lb("consumers", db)
    lb("check", db)
    check(file_state(db) == h and os.stat(db).st_mtime_ns == m,
          "a read-only command changed the file")
    # A file of schema version 1: a read-write open would migrate it; the
    # read-only commands must refuse it (ESCHEMA) and leave it alone.
    v1 = os.path.join(tmp, "v1.db")
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "..", "data", "schema_v1.db"), v1)
    h = file_state(v1)
    lb("tail", v1, "completion", want=1)
    lb("stat", v1, want=1)
    lb("channels", v1, want=1)
    lb("consumers", v1, want=1)
    out = lb("check", v1, want=3)
    check("FAIL schema version 1" in out, out)
    check(file_state(v1) == h, "a read-only command migrated a version 1 file")


def test_progress_on_a_terminal_only(tmp):
    db = filled(tmp)
    # In a pipe: stderr stays empty.
    p = subprocess.run([LITEBUS, "check", db], capture_output=True,
                       timeout=DEADLINE)
    check(p.returncode == 0 and p.stderr == b"", "stderr in a pipe: %r" % p.stderr)
    p = subprocess.run([LITEBUS, "prune", db, "orders", "--before", "5"],
                       capture_output=True, timeout=DEADLINE)
    check(p.returncode == 0 and p.stderr == b"", "stderr in a pipe: %r" % p.stderr)
    # On a terminal: progress lines, and stdout unchanged.
    for args in (["check", db], ["prune", db, "orders", "--before", "10"]):
        master, slave = pty.openpty()
        try:
            p = subprocess.run([LITEBUS, *args], stdout=subprocess.PIPE,
                               stderr=slave, timeout=DEADLINE)
        finally:
            os.close(slave)
        err = b""
        try:
            while True:
                chunk = os.read(master, 4096)
                if not chunk:
                    break
                err += chunk
        except OSError:
            pass  # EIO: the terminal's other side is closed
        os.close(master)
        check(p.returncode == 0, "%s on a terminal: exit %d" % (args[0], p.returncode))
        check(b"\r" in err and args[0].encode() + b":" in err,
              "%s shows no progress on a terminal: %r" % (args[0], err))
        check(b"\r" not in p.stdout, "progress on stdout")


TESTS = {n[5:]: f for n, f in globals().items() if n.startswith("test_")}


def main():
    name = sys.argv[3]
    tmp = tempfile.mkdtemp(prefix="litebus-cli-")
    try:
        TESTS[name](tmp)
    except Fail as e:
        print("FAIL %s: %s" % (name, e))
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
