"""Django's ``tests/`` tree for the Django a given interpreter has installed.

Downloaded once per Django version with ``pip download`` (the sdist; wheels carry no tests),
extracted, and cached under the cache directory so that later runs work offline. A lock
file makes concurrent runs share the cache safely.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: Default cache: git-ignored ``.cache/`` at the project root; ``LEXIGRAM_SUITE_CACHE`` or
#: ``--cache-dir`` move it.
DEFAULT_CACHE_DIR = PROJECT_ROOT / ".cache" / "django-suite"
#: What the run tree needs from Django's tests/: the runner, its settings, and the cache app.
RUN_TREE_FILES = ("runtests.py", "test_sqlite.py", "urls.py")
RUN_TREE_DIRS = ("cache", "templates")


class SuiteError(Exception):
    """The suite could not be prepared (no Django, no download, unexpected sdist)."""


@dataclass(frozen=True)
class Target:
    """The interpreter under test and the Django it imports."""

    python: str
    python_version: str
    django_version: str
    django_file: str


_TARGET_PROBE = """\
import json, sys
from importlib import metadata
import django
print(json.dumps({"django_version": metadata.version("django"), "django_file": django.__file__,
                  "python_version": sys.version.split()[0]}))
"""


def probe_target(python: str) -> Target:
    """Ask ``python`` which Django it has: the version decides which sdist to fetch."""
    try:
        out = subprocess.run(
            [python, "-c", _TARGET_PROBE], check=True, capture_output=True, text=True
        ).stdout
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.strip()[-2000:]
        raise SuiteError(f"cannot import django with {python}: {detail}") from exc
    except OSError as exc:
        raise SuiteError(f"cannot run {python}: {exc}") from exc
    info = json.loads(out.strip().splitlines()[-1])
    return Target(python, info["python_version"], info["django_version"], info["django_file"])


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(target: Target) -> list[str]:
    """The target's pip when it has one, else this interpreter's (the sdist is pure data)."""
    has_pip = subprocess.run([target.python, "-m", "pip", "--version"], capture_output=True)
    if has_pip.returncode == 0:
        return [target.python, "-m", "pip"]
    return [sys.executable, "-m", "pip"]


def _download(target: Target, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    cmd = [
        *_pip(target), "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--ignore-requires-python", "-d", str(into),
        f"django=={target.django_version}",
    ]  # fmt: skip
    print(f"[django_suite] downloading Django {target.django_version}: {' '.join(cmd)}",
          file=sys.stderr, flush=True)  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SuiteError(f"pip download failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    sdists = sorted(into.glob("[dD]jango-*.tar.gz"))
    if not sdists:
        raise SuiteError(f"pip download left no Django sdist in {into}")
    return sdists[0]


def _extract_tests(sdist: Path, into: Path) -> Path:
    """Extract only ``<top>/tests/`` of the sdist; return that directory."""
    with tarfile.open(sdist, "r:gz") as archive:
        tops = {
            name.split("/")[0]
            for name in archive.getnames()
            if name.count("/") == 2 and name.endswith("/tests/runtests.py")
        }
        if len(tops) != 1:
            raise SuiteError(f"no single <top>/tests/runtests.py in {sdist}")
        prefix = f"{tops.pop()}/tests/"
        members = [
            member
            for member in archive.getmembers()
            if member.name.startswith(prefix)
            and ".." not in member.name.split("/")
            and (member.isfile() or member.isdir())
        ]
        archive.extractall(into, members=members, filter="data")
    tests_dir = into / prefix
    for needed in ("runtests.py", "test_sqlite.py", "cache/tests.py"):
        if not (tests_dir / needed).exists():
            raise SuiteError(f"the extracted tests/ lacks {needed}")
    return tests_dir


def django_tests(target: Target, cache_dir: Path, refresh: bool = False) -> Path:
    """The cached, pristine ``tests/`` of the target's Django; fetched on first use."""
    root = cache_dir / f"django-{target.django_version}"
    with _locked(cache_dir / f"django-{target.django_version}.lock"):
        marker = root / "tests-dir"
        if refresh:
            shutil.rmtree(root, ignore_errors=True)
        if marker.exists():  # relative, so that the cache survives moving the checkout
            tests_dir = root / marker.read_text().strip()
            if (tests_dir / "cache" / "tests.py").exists():
                return tests_dir
        shutil.rmtree(root, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=cache_dir) as download:
            sdist = _download(target, Path(download))
            tests_dir = _extract_tests(sdist, root / "src")
        marker.write_text(str(tests_dir.relative_to(root)))
        return tests_dir


def make_run_tree(tests_dir: Path, cache_dir: Path) -> Path:
    """A throw-away copy of the few parts of Django's tests/ that ``runtests.py`` needs.

    The copy is where the generated modules go, so the cached tree stays pristine.
    """
    runs = cache_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_root = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    tree = run_root / "tests"
    tree.mkdir()
    for name in RUN_TREE_FILES:
        shutil.copy2(tests_dir / name, tree / name)
    for name in RUN_TREE_DIRS:
        if (tests_dir / name).is_dir():
            shutil.copytree(tests_dir / name, tree / name)
    return run_root


def cache_dir_default() -> Path:
    return Path(os.environ.get("LEXIGRAM_SUITE_CACHE") or DEFAULT_CACHE_DIR)
