"""Counts test cases in a meson testlog.json.

Each meson test is a Check suite ("NN%: Checks: C, Failures: F, Errors: E") or a runner that
prints "N passed, M failed" (or
node --test's TAP summary "# pass N" / "# fail M"). A test that printed neither counts as one case. A test that failed
without reporting a failed case (a crash, a timeout) adds one failure so it is never hidden.

With --failures FILE it also writes one line per failed test to FILE: the test's name, its
result, and the first lines that name a failed case ("not ok", Check's failure lines), so that
the end of a long CI log still says what failed.
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


FAILED_CASE = re.compile(r"^\s*(?:not ok \d+ - .*|.*:[EF]:.*)$", re.M)


def describe_failure(test, limit=5):
    """One line for a failed test: its name, its result and up to `limit` failed cases."""
    out = (test.get("stdout") or "") + (test.get("stderr") or "")
    cases = [m.group(0).strip() for m in FAILED_CASE.finditer(out)][:limit]
    line = f"{test.get('name')}: {test.get('result')} after {test.get('duration', 0):.0f}s"
    return line + "".join(f"\n    {c}" for c in cases)


def main(path, failures_path=None):
    passed = failed = 0
    failures = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    test = json.loads(line)
                    p, fl = count(test)
                    passed += p
                    failed += fl
                    if fl:
                        failures.append(describe_failure(test))
    except OSError:
        failed += 1
        failures.append(f"{path}: unreadable")
    if failures_path:
        with open(failures_path, "w", encoding="utf-8") as out:
            out.writelines(f + "\n" for f in failures)
    print(passed, failed)


if __name__ == "__main__":
    args = sys.argv[1:]
    failures_file = None
    if len(args) == 3 and args[1] == "--failures":
        failures_file = args[2]
    main(args[0], failures_file)
