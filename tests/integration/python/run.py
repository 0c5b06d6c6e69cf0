"""Runs the stomp.py integration tests and prints "N passed, M failed" as the last line.

Usage: /usr/bin/python3 tests/integration/python/run.py  (STOMPWS_BIN names the broker binary)
On a failure the tail of that test's broker log is printed.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class Result(unittest.TextTestResult):
    def _log(self, test):
        test.failed = True
        broker = getattr(test, "broker", None)
        log = None
        try:
            log = broker.log_tail() if broker is not None else None
        except Exception as e:  # noqa: BLE001
            log = "(could not read the broker log: %s)" % e
        if log:
            self.stream.write("\n%s\n" % log)
            self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._log(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._log(test)


def main():
    suite = unittest.defaultTestLoader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=Result)
    result = runner.run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    sys.stdout.write("%d passed, %d failed%s\n" % (passed, failed, ", %d skipped" % skipped if skipped else ""))
    sys.stdout.flush()
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
