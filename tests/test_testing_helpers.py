"""lexigram_cache_django.testing, as a user's project uses it: tests/testing_project.

That project's tests exercise the helpers (fixtures, CacheTestMixin, assertions, the
fakeredis alias); here both of its runners are run in subprocesses, so a failing helper
fails this suite. Its default cache is fakeredis: this project's own backend tests stay
on real servers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lexigram_cache_django import invalidation

PROJECT = Path(__file__).resolve().parent / "testing_project"
REPO_ROOT = PROJECT.parent.parent

pytest.importorskip("fakeredis")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(PROJECT)])
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_helpers_pass_under_pytest() -> None:
    done = run("-m", "pytest")
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= 17, done.stdout


def test_the_helpers_pass_under_djangos_test_runner() -> None:
    done = run("manage.py", "test", "--noinput")
    assert done.returncode == 0, done.stdout + done.stderr
    ran = re.search(r"Ran (\d+) tests", done.stderr)
    assert ran and int(ran.group(1)) >= 9, done.stderr
    assert "\nOK" in done.stderr


def test_nothing_observes_invalidations_outside_the_helpers() -> None:
    # The invalidation hook costs nothing unless a recording is active.
    assert invalidation.observers == []


def test_our_own_suite_does_not_use_fakeredis() -> None:
    # fakeredis is for users' tests (and the testing project's); the backend is tested
    # against real redis-server processes.
    here = Path(__file__).resolve()
    users = [
        path.name
        for path in PROJECT.parent.rglob("*.py")
        if PROJECT not in path.parents and path != here and "fakeredis" in path.read_text()
    ]
    assert users == []
