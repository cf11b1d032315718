#!/usr/bin/env python3
"""Compare libevent's regress run on kevent with the one on epoll, test by test.

    libevent/compare-regress.py LOG [TABLE]

LOG is the serial log of a guest that ran libevent/run-regress.sh. Prints a
kselftest-style TAP block that scripts/check.sh adds up:

    # selftests: kevent: libevent_regress
    1..N
    ok 1 - main/methods
    not ok 2 - main/foo: passes on epoll, FAILED on kevent
    ok 3 - util/usleep # SKIP flaky upstream: ...
    # Totals: pass:.. fail:.. xfail:0 xpass:0 skip:.. error:0
    KEVENT-TEST: libevent_regress exit=0|1

A test counts as passed when it passes on epoll and on kevent (a failed test
is run once more alone by the guest; passing then counts, and says so). One
that passes on epoll and fails on kevent is a failure, except for the tests
upstream knows to be flaky, which are skipped with the reason. Tests that do
not pass on epoll are skipped (there is nothing to compare with). TABLE
(default: out/libevent/regress-compare.txt next to LOG's out/) gets a table
of every test with both results.
"""
import os
import re
import sys

FLAKY = ("util/monotonic_prc_", "util/usleep", "dns/getaddrinfo_cancel_stress",
         "main/event_pending", "thread/deferred_cb_skew")
BACKENDS = ("kevent", "epoll")
NAME = "libevent_regress"


def is_flaky(test):
    return any(test == f or (f.endswith("_") and test.startswith(f)) for f in FLAKY)


class Run:
    def __init__(self):
        self.method = None
        self.status = None         # regress's exit status, as printed
        self.results = {}          # test -> OK | SKIPPED | DISABLED | FAILED | UNKNOWN
        self.retry = {}            # test -> OK | FAILED
        self.order = []
        self.seconds = None

    def set(self, test, outcome):
        if test not in self.results:
            self.order.append(test)
        self.results[test] = outcome


def parse(path):
    runs = {}
    run = None
    cur = None                      # the test whose outcome is still to come
    test_line = re.compile(r"^([A-Za-z0-9_]+/[^\s:]+): ?(.*)$")
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\r\n")
            m = re.match(r"^LIBEVENT-RUN-BEGIN (\S+)", line)
            if m:
                run = runs.setdefault(m.group(1), Run())
                cur = None
                continue
            if run is None:
                continue
            m = re.match(r"^LIBEVENT-RUN-END (\S+) regress=(\S+)", line)
            if m:
                run.status = m.group(2)
                if cur is not None:
                    run.set(cur, "UNKNOWN")
                run, cur = None, None
                continue
            m = re.match(r"^LIBEVENT-METHOD \S+ ?(.*)$", line)
            if m:
                run.method = m.group(1)
                continue
            m = re.match(r"^LIBEVENT-PROG \S+ (\S+) (OK|FAILED)$", line)
            if m:
                run.set("prog/" + m.group(1), m.group(2))
                continue
            m = re.match(r"^LIBEVENT-RETRY \S+ (\S+) (OK|FAILED)$", line)
            if m:
                run.retry[m.group(1)] = m.group(2)
                continue
            m = re.match(r"^LIBEVENT-REGRESS-TIME \S+ (\d+)", line)
            if m:
                run.seconds = int(m.group(1))
                continue
            m = test_line.match(line)
            if m:
                test, rest = m.group(1), m.group(2).replace("[forking]", "").strip()
                if cur is not None and cur != test:
                    run.set(cur, "UNKNOWN")
                cur = test
                run.set(test, "UNKNOWN")
                for word in ("OK", "SKIPPED", "DISABLED"):
                    if rest == word or rest.endswith(" " + word):
                        run.set(test, word)
                        cur = None
                continue
            if cur is None:
                continue
            stripped = line.strip()
            if stripped in ("OK", "SKIPPED"):
                run.set(cur, stripped)
                cur = None
            elif re.match(r"^\[\S+ FAILED\]$", stripped):
                if cur.endswith("/" + stripped[1:].split()[0]):
                    run.set(cur, "FAILED")
                    cur = None
    return runs


def final(run, test):
    """The outcome of @test in @run after the retry: PASS, RETRY (passed the
    second time), FAIL, SKIP, DISABLED or MISSING."""
    r = run.results.get(test)
    if r is None:
        return "MISSING"
    if r == "OK":
        return "PASS"
    if r == "SKIPPED":
        return "SKIP"
    if r == "DISABLED":
        return "DISABLED"
    if run.retry.get(test) == "OK":
        return "RETRY"
    return "FAIL"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    log = sys.argv[1]
    table_path = sys.argv[2] if len(sys.argv) > 2 else None
    runs = parse(log)
    tap, rows = [], []
    counts = {"pass": 0, "fail": 0, "skip": 0}

    def emit(ok, text, skip=None):
        n = len(tap) + 1
        if skip is not None:
            tap.append(f"ok {n} - {text} # SKIP {skip}")
            counts["skip"] += 1
        elif ok:
            tap.append(f"ok {n} - {text}")
            counts["pass"] += 1
        else:
            tap.append(f"not ok {n} - {text}")
            counts["fail"] += 1

    missing = [b for b in BACKENDS if b not in runs or runs[b].method != b
               or runs[b].status in (None, "none")]
    for b in missing:
        got = runs[b].method if b in runs else "no run"
        emit(False, f"libevent on {b}: the run did not happen or chose another backend ({got})")
    if not missing:
        k, e = runs["kevent"], runs["epoll"]
        tests = list(e.order) + [t for t in k.order if t not in e.results]
        for t in tests:
            fe, fk = final(e, t), final(k, t)
            rows.append((t, fe, fk))
            if fe == "DISABLED" and fk == "DISABLED":
                continue            # off by default: not run on either
            if fe in ("PASS", "RETRY"):
                note = " (passed on retry)" if "RETRY" in (fe, fk) else ""
                if fk in ("PASS", "RETRY"):
                    emit(True, t + note)
                elif fk in ("FAIL", "MISSING") and is_flaky(t):
                    emit(True, t, skip="flaky upstream: passes on epoll, failed twice on kevent")
                elif fk == "SKIP":
                    emit(False, f"{t}: passes on epoll, skipped on kevent")
                else:
                    emit(False, f"{t}: passes on epoll, {fk} on kevent")
            elif fe == "SKIP":
                emit(True, t, skip=f"skipped by regress on epoll (kevent: {fk})")
            else:
                why = "flaky upstream" if is_flaky(t) else "does not pass on epoll"
                emit(True, t, skip=f"{why}: epoll {fe}, kevent {fk}")

    print(f"# selftests: kevent: {NAME}")
    print(f"1..{len(tap)}")
    for line in tap:
        print(line)
    print(f"# Totals: pass:{counts['pass']} fail:{counts['fail']} xfail:0 xpass:0 "
          f"skip:{counts['skip']} error:0")
    print(f"KEVENT-TEST: {NAME} exit={1 if counts['fail'] else 0}")

    if table_path:
        with open(table_path, "w") as out:
            out.write("libevent 2.1.12 regress and test programs: kevent backend vs epoll\n")
            out.write(f"(from {log}; PASS, RETRY = passed when run again alone, FAIL, SKIP,\n"
                      " DISABLED = off by default, MISSING = no result)\n\n")
            for b in BACKENDS:
                if b not in runs:
                    out.write(f"{b}: no run\n")
                    continue
                r = runs[b]
                tally = {}
                for t in r.order:
                    tally[final(r, t)] = tally.get(final(r, t), 0) + 1
                out.write(f"{b}: method '{r.method}', regress exit {r.status}, "
                          f"{r.seconds if r.seconds is not None else '?'} s; " +
                          ", ".join(f"{v} {k}" for k, v in sorted(tally.items())) + "\n")
            out.write(f"\nTAP: pass {counts['pass']}, fail {counts['fail']}, "
                      f"skip {counts['skip']}\n\n")
            diff = [(t, fe, fk) for t, fe, fk in rows if fe != fk]
            out.write(f"Tests whose results differ ({len(diff)}):\n")
            for t, fe, fk in diff:
                out.write(f"  {t:<48} epoll {fe:<8} kevent {fk}\n")
            out.write("\nEvery test:\n")
            out.write(f"  {'test':<48} {'epoll':<9} kevent\n")
            for t, fe, fk in rows:
                out.write(f"  {t:<48} {fe:<9} {fk}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
