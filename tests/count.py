"""Counts test cases in a meson testlog.json.

Each meson test is a Check suite ("NN%: Checks: C, Failures: F, Errors: E") or a runner that
prints "N passed, M failed" (or
node --test's TAP summary "# pass N" / "# fail M"). A test that printed neither counts as one case. A test that failed
without reporting a failed case (a crash, a timeout) adds one failure so it is never hidden.
"""
import json
import re
import sys

CHECK = re.compile(r"^\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)", re.M)
PLAIN = re.compile(r"^(?:\w+: )?(\d+) passed, (\d+) failed", re.M)
TAP_PASS = re.compile(r"^# pass (\d+)$", re.M)
TAP_FAIL = re.compile(r"^# fail (\d+)$", re.M)


def sums(pattern, out):
    """Sums (passed, failed) over every match of a two-group pattern, or None if none."""
    found = [tuple(map(int, m.groups()[:2])) for m in pattern.finditer(out)]
    if not found:
        return None
    return sum(p for p, _ in found), sum(f for _, f in found)


def tap_sums(out):
    passes = [int(m.group(1)) for m in TAP_PASS.finditer(out)]
    fails = [int(m.group(1)) for m in TAP_FAIL.finditer(out)]
    if not passes and not fails:
        return None
    return sum(passes), sum(fails)


def check_sums(out):
    found = [tuple(map(int, m.groups())) for m in CHECK.finditer(out)]
    if not found:
        return None
    return sum(c - f - e for c, f, e in found), sum(f + e for _, f, e in found)


def count(test):
    out = test.get("stdout") or ""
    ok = test.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
    # A runner may print both a TAP summary and the plain line: the plain line wins, so no
    # case is counted twice.
    result = sums(PLAIN, out) or tap_sums(out) or check_sums(out)
    if result is None:
        return (1, 0) if ok else (0, 1)
    passed, failed = result
    if not ok and failed == 0:
        failed = 1
    return passed, failed


def main(path):
    passed = failed = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    p, fl = count(json.loads(line))
                    passed += p
                    failed += fl
    except OSError:
        failed += 1
    print(passed, failed)


if __name__ == "__main__":
    main(sys.argv[1])
