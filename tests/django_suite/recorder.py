"""A ``DiscoverRunner`` that records each test's outcome as JSON.

Copied into the run tree as ``suite_recorder.py`` and named by the generated settings'
``TEST_RUNNER``; it runs inside the interpreter under test and writes ``result.json`` at
the root of the run tree. The runner reads the JSON back
rather than parsing unittest's text output, whose format is not a contract. Standard
library and Django only.
"""

from __future__ import annotations

import json
import sys
import traceback
import unittest
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import django
from django.test.runner import DiscoverRunner

#: When one test reports twice (a failing subtest, then a pass), the worse outcome stays.
RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
#: run root/result.json; this file is run root/tests/<recorder>.py.
RESULT_FILE = Path(__file__).resolve().parents[1] / "result.json"

ErrInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for test in suite:
            yield from _iter_tests(test)
    else:
        yield suite


class RecordingResult(unittest.TextTestResult):
    """unittest's text result, plus ``outcomes``: test id -> status and detail."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, dict[str, str | None]] = {}

    def _mark(self, test: unittest.TestCase, status: str, detail: str | None = None) -> None:
        current = self.outcomes.get(test.id())
        if current is None or RANK[status] > RANK[str(current["status"])]:
            self.outcomes[test.id()] = {"status": status, "detail": detail}
        elif detail and current.get("detail") is None:
            current["detail"] = detail

    @staticmethod
    def _format(err: ErrInfo) -> str:
        try:
            return "".join(traceback.format_exception(err[1]))[-4000:]
        except Exception as exc:  # a broken __repr__ must not lose the outcome
            return repr(exc)

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._mark(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._mark(test, "failed", self._format(err))

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._mark(test, "error", self._format(err))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._mark(test, "skipped", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._mark(test, "passed", "expected failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._mark(test, "failed", "unexpected success")

    def addSubTest(
        self, test: unittest.TestCase, subtest: unittest.TestCase, err: Any | None
    ) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            status = "failed" if issubclass(err[0], test.failureException) else "error"
            self._mark(test, status, f"{subtest.id()}\n{self._format(err)}")


class RecordingRunner(DiscoverRunner):
    """Django's runner; writes the outcomes to ``RESULT_FILE`` at the end."""

    def get_resultclass(self) -> type[unittest.TextTestResult] | None:
        return RecordingResult

    def run_suite(self, suite: unittest.TestSuite, **kwargs: Any) -> unittest.TextTestResult:
        collected = [test.id() for test in _iter_tests(suite)]
        result = super().run_suite(suite, **kwargs)
        outcomes = dict(getattr(result, "outcomes", {}))
        for test_id in collected:  # a failing setUpClass reports the class, not its tests
            outcomes.setdefault(
                test_id, {"status": "error", "detail": "never ran (class or module setup failed?)"}
            )
        data = {
            "django_version": django.get_version(),
            "django_file": django.__file__,
            "python": sys.version.split()[0],
            "collected": collected,
            "tests_run": result.testsRun,
            "outcomes": outcomes,
        }
        RESULT_FILE.write_text(json.dumps(data, indent=1, sort_keys=True))
        return result
