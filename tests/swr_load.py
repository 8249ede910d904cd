"""Functions the Celery worker tests refresh, and the reader processes of the load test.

``python -m tests.swr_load CONFIG ARGS``: configure Django with the ``swr`` alias, a Celery
app on the test broker, then in each stale window the test names 32 threads read the stale
hot key, each read next to a fresh hit of another key (the baseline, timed under the same
load); latencies and values go to a JSON file. Every
computation of ``hot`` appends a line to ``$LEXIGRAM_SWR_LOG``: the test counts them.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from lexigram_cache_django.decorators import cached

THREADS = 32


def _log(line: str) -> None:
    path = os.environ.get("LEXIGRAM_SWR_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


@cached(timeout=3.0, stale_while_revalidate=60, refresh="celery", cache="swr", key="hot")
def hot() -> str:
    _log(f"compute {os.getpid()} {threading.current_thread().name}")
    time.sleep(float(os.environ.get("LEXIGRAM_SWR_COMPUTE", "0.5")))
    return f"v{time.time():.6f}"


@cached(timeout=600, stale_while_revalidate=60, refresh="celery", cache="swr", key="fresh")
def fresh() -> str:
    return "fresh"


@cached(timeout=0.3, stale_while_revalidate=60, refresh="celery", cache="swr", key="quick:{n}")
def quick(n: int) -> tuple[int, str, int]:
    """For the single-process worker tests: which thread computed it, and when."""
    _log(f"quick {n} {os.getpid()} {threading.current_thread().name}")
    return n, threading.current_thread().name, time.monotonic_ns()


def _wait_until(at: float) -> None:
    if (delay := at - time.time()) > 0:
        time.sleep(delay)


def _burst(reads: int) -> tuple[list[float], list[float], list[str]]:
    """Each thread alternates a fresh hit and a read of the hot key, so the two are timed
    under the same contention (64 threads on 2 cores: most of a p99 is waiting for the GIL)."""
    fresh_latencies: list[float] = []
    hot_latencies: list[float] = []
    values: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def run() -> None:
        mine_fresh: list[float] = []
        mine_hot: list[float] = []
        seen: list[str] = []
        fresh()  # this thread's backend object and connection, made before timing
        barrier.wait()
        for _ in range(reads):
            started = time.perf_counter()
            fresh()
            middle = time.perf_counter()
            seen.append(hot())
            mine_hot.append(time.perf_counter() - middle)
            mine_fresh.append(middle - started)
        with lock:
            fresh_latencies.extend(mine_fresh)
            hot_latencies.extend(mine_hot)
            values.extend(seen)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return fresh_latencies, hot_latencies, values


def main(config: dict[str, Any], args: dict[str, Any]) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="tests-secret-key-not-for-production",
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
            "swr": config,
        },
        INSTALLED_APPS=["lexigram_cache_django"],
    )
    django.setup()
    from celery import Celery

    app = Celery("swr-load", set_as_current=True)
    app.conf.update(broker_url=args["broker"], task_ignore_result=True)
    app.set_default()
    import lexigram_cache_django.tasks  # noqa: F401  (registers the enqueuer)
    from lexigram_cache_django import revalidate

    fresh()  # connections made before anything is timed: the cache's and the broker's
    app.send_task("celery.ping", retry=False)
    with open(args["ready"], "a") as f:
        f.write(f"{os.getpid()}\n")
    while not os.path.exists(args["go"]):
        time.sleep(0.01)
    with open(args["go"]) as f:
        plan = json.load(f)
    result: dict[str, Any] = {"pid": os.getpid(), "windows": []}
    for stale_at in plan["windows"]:
        _wait_until(stale_at)
        baseline, latencies, values = _burst(args["reads"])
        result["windows"].append(
            {"fresh": baseline, "stale": latencies, "stale_reads": values.count(values[0])}
        )
    time.sleep(0.5)  # let the background claim/enqueue threads finish
    result["counters"] = revalidate.counters.snapshot()
    with open(args["out"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    # Through the module's real name: the worker finds ``tests.swr_load.hot``, not __main__'s.
    from tests import swr_load

    swr_load.main(json.loads(sys.argv[1]), json.loads(sys.argv[2]))
