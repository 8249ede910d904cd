"""Worker processes for the cross-process tests: ``python -m tests.workers JOB CONFIG ...``.

Each worker configures Django with one CACHES alias given as JSON, waits for a shared start
time so all workers collide, and appends what it did to a file (O_APPEND writes of one line
are atomic), which the test then reads.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from lexigram_cache_django.backends.base import LexigramCache


def _setup(config: dict[str, Any]) -> Any:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="tests-secret-key-not-for-production",
        CACHES={"default": config},
        INSTALLED_APPS=["lexigram_cache_django"],
    )
    django.setup()
    from django.core.cache import caches

    return caches["default"]


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _wait_until(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def stampede(config: dict[str, Any], args: dict[str, Any]) -> None:
    """N threads call get_or_set on one cold key; each computation appends a line."""
    from django.core.cache import caches

    cache = _setup(config)
    log = args["log"]

    def compute() -> str:
        _append(log, f"compute {os.getpid()}")
        if args.get("crash"):
            os._exit(17)  # die holding the lock, as a killed process would
        time.sleep(args.get("compute_seconds", 0.3))
        return "value"

    results: list[Any] = []

    def call() -> None:
        # one backend object per thread, as in Django
        thread_cache = cast("LexigramCache", caches["default"])
        results.append(
            thread_cache.get_or_set(
                args["key"],
                compute,
                timeout=60,
                lock_timeout=args.get("lock_timeout"),
                wait_timeout=args.get("wait_timeout"),
            )
        )

    _wait_until(args["start_at"])
    threads = [threading.Thread(target=call) for _ in range(args.get("threads", 8))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    del cache
    _append(log, "results " + json.dumps(results))


def lock(config: dict[str, Any], args: dict[str, Any]) -> None:
    """Take a named lock repeatedly; record each critical section as start/end times."""
    cache = _setup(config)
    _wait_until(args["start_at"])
    for _ in range(args.get("rounds", 5)):
        with cache.lock(
            args["name"],
            timeout=args.get("timeout", 5),
            blocking_timeout=30,
            auto_renewal=args.get("auto_renewal", False),
        ):
            began = time.time()
            time.sleep(args.get("hold", 0.05))
            _append(args["log"], f"{os.getpid()} {began!r} {time.time()!r}")


def hold_lock(config: dict[str, Any], args: dict[str, Any]) -> None:
    """Hold a lock longer than its timeout (auto-renewal on), then report."""
    cache = _setup(config)
    with cache.lock(args["name"], timeout=args["timeout"], auto_renewal=True):
        _append(args["log"], "acquired")
        time.sleep(args["hold"])
        _append(args["log"], "releasing")
    _append(args["log"], "released")


JOBS = {"stampede": stampede, "lock": lock, "hold_lock": hold_lock}

if __name__ == "__main__":
    JOBS[sys.argv[1]](json.loads(sys.argv[2]), json.loads(sys.argv[3]))
