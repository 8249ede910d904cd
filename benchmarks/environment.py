"""The benchmarks' environment: Django settings, CPU pinning, server processes, ports.

Split from :mod:`benchmarks.harness` (which re-exports every name here): what a run needs
around the timing, not the timing itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

#: A candidate operation: a zero-argument callable, either sync or returning an awaitable
#: (``async def`` functions and ``lambda: cache.aget(k)`` both work).
Op = Callable[[], Any]

#: Hard lifetime of any server we start (enforced by coreutils ``timeout``), in seconds, so a
#: crashed or SIGKILLed harness cannot leave servers behind for long.
SERVER_MAX_LIFETIME_S = 900

#: Minimal Django settings used for every scenario. Scenarios build their cache backends
#: directly (``Context.make_cache``) so they never depend on ``settings.CACHES``. If a future
#: scenario truly needs more (e.g. a database), extend this dict -- settings can only be
#: configured once per process, before any scenario runs.
BASE_SETTINGS: dict[str, Any] = {
    "SECRET_KEY": "lexigram-benchmarks-not-a-secret",
    "USE_TZ": True,
    # The models scenario's app and models (its invalidation is connected at setup; the
    # other scenarios never touch a model).
    "INSTALLED_APPS": ["lexigram_cache_django", "example_project.petclinic"],
    "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    "LOGGING_CONFIG": None,
    # Django connects lazily: only the models scenario opens these. It creates (and drops)
    # its own database on the server, never touching the one named here.
    "DATABASES": {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "postgres": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("LEXIGRAM_BENCH_PG_NAME", "test"),
            "HOST": os.environ.get("LEXIGRAM_BENCH_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("LEXIGRAM_BENCH_PG_PORT", "5432"),
            "USER": os.environ.get("LEXIGRAM_BENCH_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("LEXIGRAM_BENCH_PG_PASSWORD", ""),
            "TEST": {"NAME": f"lexigram_bench_{os.getpid()}"},
        },
    },
    "LEXIGRAM_CACHE": {
        "INVALIDATE_MODELS": ["petclinic.Owner", "petclinic.Pet", "petclinic.Vaccine"]
    },
    "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
}


def configure_django(**overrides: Any) -> None:
    """Configure minimal Django settings once, so backends can be constructed without a project."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    settings.configure(**{**BASE_SETTINGS, **overrides})
    django.setup()


def pin_current_process(cpu: int | None = None) -> int:
    """Pin every thread of this process to ``cpu`` (default: the last allowed CPU).

    ``sched_setaffinity(0, ...)`` only affects the calling thread on Linux, so all existing
    threads are pinned explicitly; threads created later inherit the affinity of their creator.
    """
    allowed = sorted(os.sched_getaffinity(0))
    target = allowed[-1] if cpu is None else cpu
    if target not in allowed:
        raise ValueError(f"CPU {target} is not in this process's allowed set {allowed}")
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(tid, {target})
    return target


def pinned_argv(argv: Sequence[str], cpu: int | None) -> list[str]:
    """Prefix ``argv`` with ``taskset -c cpu`` (no-op when not pinning)."""
    if cpu is None:
        return list(argv)
    taskset = shutil.which("taskset")
    if taskset is None:
        # A forked child inherits our affinity anyway; taskset just makes it explicit.
        return list(argv)
    return [taskset, "-c", str(cpu), *argv]


def start_pinned_process(
    argv: Sequence[str],
    cpu: int | None,
    *,
    max_lifetime_s: float = SERVER_MAX_LIFETIME_S,
    **popen_kwargs: Any,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` pinned to ``cpu`` and killed by ``timeout`` after ``max_lifetime_s``."""
    cmd = list(argv)
    timeout_bin = shutil.which("timeout")
    if timeout_bin is not None:
        cmd = [timeout_bin, "-k", "5", f"{max_lifetime_s:g}", *cmd]
    popen_kwargs.setdefault("stdout", subprocess.DEVNULL)
    popen_kwargs.setdefault("stderr", subprocess.DEVNULL)
    popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(pinned_argv(cmd, cpu), **popen_kwargs)


def cycle_of(items: Sequence[Any]) -> Callable[[], Any]:
    """An endless ``next()`` over ``items``: each op walks its own pool of keys."""
    return itertools.cycle(items).__next__


def cycling(method: str, items: Sequence[Any], *extra: Any) -> Callable[[Any], Op]:
    """An op factory: ``target.<method>(next item, *extra)``, cycling through ``items``.

    Applied to each candidate it makes a fresh closure with its own iterator and the
    method bound once, so attribute lookup is not part of what is compared.
    """

    def factory(target: Any) -> Op:
        call, nxt = getattr(target, method), cycle_of(items)
        return lambda: call(nxt(), *extra)

    return factory


def free_loopback_port() -> int:
    """Return a TCP port that is currently free on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until ``host:port`` accepts TCP connections, or raise ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                msg = f"{host}:{port} not accepting connections after {timeout}s"
                raise TimeoutError(msg) from exc
            time.sleep(0.05)


def _stop_process(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace_s)
