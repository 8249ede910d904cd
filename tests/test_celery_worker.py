"""A real Celery worker (celery.contrib.testing) over a Redis broker and result backend that
the fixtures start: warm tasks with progress, stale reads refreshed once by the worker, a
dead broker falling back to threads, and 2 processes x 32 threads on one stale hot key."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from django.core.cache import caches
from pytest_django.fixtures import Settings

from lexigram_cache_django import revalidate, tasks, warming
from tests import swr_load
from tests.servers import Server, start_redis

pytestmark = [pytest.mark.redis, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def broker() -> Iterator[Server]:
    server = start_redis()
    yield server
    server.stop()


def _app(name: str, broker_url: str, backend_url: str | None = None) -> Celery:
    app = Celery(name, set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        result_backend=backend_url,
        task_always_eager=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=False,
    )
    return app


def _restore_default_app() -> None:
    import example_project

    if example_project.celery_app is not None:
        example_project.celery_app.set_current()
        example_project.celery_app.set_default()


@pytest.fixture(scope="module")
def worker_app(broker: Server) -> Iterator[Celery]:
    import celery.contrib.testing.tasks  # noqa: F401  (registers celery.ping)

    app = _app("lexigram-tests", f"{broker.url}/0", f"{broker.url}/1")
    app.set_current()
    app.set_default()
    try:
        with start_worker(app, pool="solo", perform_ping_check=True, shutdown_timeout=10):
            yield app
    finally:
        _restore_default_app()


@pytest.fixture
def swr_alias(settings: Settings, broker: Server) -> dict[str, Any]:
    config = {
        "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
        "LOCATION": f"{broker.url}/2",
        "KEY_PREFIX": f"w{uuid.uuid4().hex[:10]}",
    }
    settings.CACHES = {**settings.CACHES, "swr": config}
    revalidate.counters.reset()
    revalidate._memo.clear()
    return config


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "computations"
    monkeypatch.setenv("LEXIGRAM_SWR_LOG", str(path))
    return path


def _lines(log: Path, prefix: str) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.startswith(prefix)]


def test_warm_task_fills_the_alias_and_reports_progress(
    worker_app: Celery, swr_alias: dict[str, Any]
) -> None:
    def slow(i: int) -> Callable[[], int]:
        def compute() -> int:
            time.sleep(0.05)
            return i

        return compute

    @warming.warmer("slow", alias="swr", concurrency=1)
    def items() -> dict[str, Any]:
        return {f"slow:{i}": slow(i) for i in range(12)}

    try:
        result = tasks.warm.delay("slow")
        progress: list[dict[str, int]] = []
        while not result.ready():
            # State and info in one read: result.state, then result.info, can see
            # PROGRESS and then the final report.
            meta = result.backend.get_task_meta(result.id)
            if meta["status"] == "PROGRESS":
                progress.append(meta["result"])
            time.sleep(0.02)
        report = result.get(timeout=10)
    finally:
        warming.unregister("slow")
    assert (report["written"], report["failed"], report["total"]) == (12, 0, 12), report["errors"]
    assert progress and all(p["total"] == 12 and 0 < p["done"] <= 12 for p in progress)
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
    assert caches["swr"].get("slow:7") == 7


def test_a_stale_read_enqueues_one_refresh_that_the_worker_runs(
    worker_app: Celery, swr_alias: dict[str, Any], log: Path
) -> None:
    seeded = swr_load.quick(1)
    time.sleep(0.35)
    reads, values = [], []
    for _ in range(50):
        started = time.perf_counter()
        values.append(swr_load.quick(1))
        reads.append(time.perf_counter() - started)
    assert values[0] == seeded  # stale, served at once; the worker may be done by the end
    assert max(reads) < 0.1
    eventually(lambda: swr_load.quick(1) != seeded)
    _, thread, _ = swr_load.quick(1)
    assert thread != "MainThread" and not thread.startswith("lexigram-swr")  # the worker's
    assert len(_lines(log, "quick 1")) == 2  # the seed and one refresh
    assert revalidate.counters.enqueued == 1
    assert revalidate.counters.enqueue_failures == 0


def test_with_the_broker_stopped_stale_reads_return_and_refresh_in_a_thread(
    worker_app: Celery, swr_alias: dict[str, Any], log: Path
) -> None:
    dead = start_redis()
    app = _app("dead-broker", f"{dead.url}/0")
    app.set_current()
    try:
        seeded = swr_load.quick(2)
        dead.stop()
        time.sleep(0.35)
        started = time.perf_counter()
        assert swr_load.quick(2) == seeded
        assert time.perf_counter() - started < 0.05
        eventually(lambda: swr_load.quick(2) != seeded)
        _, thread, _ = swr_load.quick(2)
        assert thread.startswith("lexigram-swr")  # the fallback thread
        assert revalidate.counters.enqueue_failures == 1
    finally:
        dead.stop()
        worker_app.set_current()


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def test_2_processes_x_32_threads_on_a_stale_hot_key_refresh_once_per_window(
    worker_app: Celery, swr_alias: dict[str, Any], broker: Server, tmp_path: Path, log: Path
) -> None:
    ready, go = tmp_path / "ready", tmp_path / "go"
    reads = 100
    outs = [tmp_path / f"out{i}.json" for i in range(2)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEXIGRAM_SWR_COMPUTE": "0.5"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.swr_load",
                json.dumps(swr_alias),
                json.dumps(
                    {
                        "broker": f"{broker.url}/0",
                        "ready": str(ready),
                        "go": str(go),
                        "out": str(out),
                        "reads": reads,
                    }
                ),
            ],
            cwd=ROOT,
            env=env,
        )
        for out in outs
    ]
    try:
        eventually(lambda: ready.exists() and len(ready.read_text().split()) == 2, 30)
        os.environ["LEXIGRAM_SWR_COMPUTE"] = "1.5"
        swr_load.hot()  # the first value, computed here
        f1 = time.time() + 3.0
        log.write_text("")
        # Two stale windows: the second starts after window 1's refresh (1.5 s) and the 3 s
        # its new value is fresh.
        windows = [f1 + 0.2, f1 + 5.2]
        # Written whole, then renamed: a reader polling for the file never reads it empty.
        (tmp_path / "go.tmp").write_text(json.dumps({"windows": windows}))
        os.replace(tmp_path / "go.tmp", go)
        assert [p.wait(timeout=60) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        os.environ.pop("LEXIGRAM_SWR_COMPUTE", None)
    results = [json.loads(out.read_text()) for out in outs]
    computed = _lines(log, "compute")
    assert len(computed) == 2, computed  # one refresh per stale window, for 64 readers
    assert all(line.split()[1] == str(os.getpid()) for line in computed)  # by the worker
    assert sum(r["counters"]["enqueued"] for r in results) == 2
    assert sum(r["counters"]["enqueue_failures"] for r in results) == 0
    figures = []
    for r in results:
        for w in r["windows"]:
            figures.append(
                (
                    statistics.median(w["fresh"]),
                    statistics.median(w["stale"]),
                    _p99(w["fresh"]),
                    _p99(w["stale"]),
                    max(w["stale"]),
                    w["stale_reads"],
                )
            )
    print(f"\n{len(results)} processes x {swr_load.THREADS} threads x {reads} reads a window (ms):")
    print("fresh p50 / stale p50 / fresh p99 / stale p99 / stale max / reads served stale")
    for *ms, stale_reads in figures:
        print("  " + " / ".join(f"{v * 1e3:.3f}" for v in ms) + f" / {stale_reads}")
    for _, _, fresh_p99, stale_p99, _, _ in figures:
        assert stale_p99 <= 2 * fresh_p99, (fresh_p99, stale_p99)
