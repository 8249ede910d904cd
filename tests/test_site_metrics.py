"""Site-wide metrics (site_metrics.py) and latency histograms (metrics.py), on real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from lexigram_cache_django import site_metrics
from lexigram_cache_django.metrics import LATENCY_BOUNDS, LatencyHistogram, histogram_for
from tests.conftest import backend_config
from tests.servers import start_redis

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = {
    "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
    "LOCATION": "tests-default",
}


@pytest.fixture
def alias(backend_kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    config = backend_config(backend_kind, request)
    with override_settings(CACHES={"default": DEFAULT, "c": config}):
        site_metrics.flush_now()  # earlier tests' deltas out of the way
        yield "c"


def lexigram(alias: str) -> Any:
    return caches[alias]


def totals(alias: str) -> dict[str, int]:
    found = site_metrics.site_totals(alias, minutes=5)
    assert found is not None
    return found


def hits_and_misses(alias: str, hits: int, misses: int) -> None:
    cache = caches[alias]
    cache.set("present", 1, 600)
    for _ in range(hits):
        cache.get("present")
    for i in range(misses):
        cache.get(f"absent-{i}")


# -- histograms --------------------------------------------------------------------------------


def test_histogram_percentiles_fall_in_the_right_bucket() -> None:
    hist = LatencyHistogram()
    assert hist.percentile(0.5) is None
    for _ in range(90):
        hist.observe(0.0004)  # bucket (0.0003, 0.0005]
    for _ in range(10):
        hist.observe(0.02)  # bucket (0.015, 0.02]
    p50 = hist.percentile(0.5)
    p99 = hist.percentile(0.99)
    assert p50 is not None and 0.0003 < p50 <= 0.0005
    assert p99 is not None and 0.015 < p99 <= 0.02
    assert hist.total == 100 and hist.sum == pytest.approx(90 * 0.0004 + 10 * 0.02)
    with pytest.raises(ValueError):
        hist.percentile(0)


def test_histogram_cumulative_buckets_are_prometheus_shaped() -> None:
    hist = LatencyHistogram()
    for seconds in (0.00001, 0.001, 0.001, 3.0, 99.0):
        hist.observe(seconds)
    buckets = hist.cumulative()
    bounds = [b for b, _ in buckets]
    counts = [c for _, c in buckets]
    assert bounds == [*LATENCY_BOUNDS, float("inf")]
    assert counts == sorted(counts) and counts[-1] == 5
    assert dict(buckets)[0.001] == 3  # le="0.001" includes 0.001
    other = LatencyHistogram()
    other.observe(0.001)
    hist.merge(other)
    assert hist.total == 6 and dict(hist.cumulative())[0.001] == 4


def test_choke_points_feed_the_server_histogram(alias: str, backend_kind: str) -> None:
    if backend_kind == "memory":
        pytest.skip("no network choke point")
    client = lexigram(alias)._client
    name = client.names[0] if backend_kind == "redis" else client.name
    before = histogram_for(name).total
    for _ in range(5):
        caches[alias].get("x")
    assert histogram_for(name).total - before >= 5


# -- flushing ----------------------------------------------------------------------------------


def test_flush_adds_deltas_once(alias: str, backend_kind: str) -> None:
    if backend_kind == "memory":
        assert site_metrics.site_totals(alias) is None  # per process only
    start = site_metrics.series(alias, 5)
    hits_and_misses(alias, 30, 12)
    site_metrics.flush_now()
    site_metrics.flush_now()  # nothing new: nothing added
    end = site_metrics.series(alias, 5)
    gained = {k: sum(m[k] for m in end) - sum(m[k] for m in start) for k in ("hits", "misses")}
    assert gained == {"hits": 30, "misses": 12}
    assert [m["minute"] for m in end] == sorted(m["minute"] for m in end)
    assert all(m["minute"] % 60 == 0 for m in end) and len(end) == 5


def test_a_reset_counter_is_not_lost(alias: str, backend_kind: str) -> None:
    if backend_kind == "memory":
        pytest.skip("same logic; the networked backends show it site-wide")
    before = totals(alias)["hits"]
    hits_and_misses(alias, 10, 0)
    site_metrics.flush_now()
    lexigram(alias).reset_stats()
    hits_and_misses(alias, 4, 0)
    site_metrics.flush_now()
    assert totals(alias)["hits"] - before == 14


def test_metrics_alias_collects_a_memory_alias(redis_server: Any, request: Any) -> None:
    shared = backend_config("redis", request)
    mem = backend_config("memory", request)
    with override_settings(
        CACHES={"default": DEFAULT, "mem": mem, "shared": shared},
        LEXIGRAM_CACHE={"METRICS_ALIAS": "shared"},
    ):
        site_metrics.flush_now()
        base = site_metrics.site_totals("mem", 5)
        assert base is not None
        hits_and_misses("mem", 6, 2)
        site_metrics.flush_now()
        after = site_metrics.site_totals("mem", 5)
        assert after is not None and after["hits"] - base["hits"] == 6
        client = lexigram("shared")._client
        now = int(time.time() // 60) * 60
        keys = [site_metrics.bucket_key("mem", m) for m in (now, now - 60)]
        assert client.send(client.primary, "EXISTS", *keys)  # on the METRICS_ALIAS server


def test_a_dead_server_never_raises_and_keeps_its_deltas(request: Any) -> None:
    server = start_redis()
    config = {"BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
              "LOCATION": server.url, "OPTIONS": {"FAIL_SILENTLY": False}}  # fmt: skip
    try:
        with override_settings(CACHES={"default": DEFAULT, "r": config}):
            site_metrics.flush_now()
            hits_and_misses("r", 9, 3)
            server.kill()
            site_metrics.flush_now()  # FAIL_SILENTLY False: still no exception here
            assert site_metrics.series("r", 2)[-1]["hits"] == 0  # unreadable: zeros
            server.restart()
            time.sleep(lexigram("r").option("CIRCUIT_RESET_TIMEOUT"))  # let the breaker probe
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and totals("r")["hits"] < 9:
                site_metrics.flush_now()
                time.sleep(0.1)
            assert totals("r")["hits"] == 9
            assert totals("r")["misses"] == 3
    finally:
        server.stop()


def test_a_forked_child_counts_only_its_own(alias: str, backend_kind: str) -> None:
    if backend_kind == "memory":
        pytest.skip("per process: nothing to add up across a fork")
    before = totals(alias)["hits"]
    hits_and_misses(alias, 3, 0)  # not flushed yet when the child is forked
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            hits_and_misses(alias, 5, 0)
            site_metrics.flush_now()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    site_metrics.flush_now()
    assert totals(alias)["hits"] - before == 8  # 3 + 5: the parent's 3 are not counted twice


def test_the_thread_flushes_by_itself(alias: str, backend_kind: str) -> None:
    if backend_kind == "memory":
        pytest.skip("checked site-wide")
    with override_settings(LEXIGRAM_CACHE={"METRICS_INTERVAL": 0.05}):
        site_metrics.stop()
        site_metrics.start()
        try:
            before = totals(alias)["hits"]
            hits_and_misses(alias, 11, 0)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and totals(alias)["hits"] - before < 11:
                time.sleep(0.05)
            assert totals(alias)["hits"] - before == 11
        finally:
            site_metrics.stop()
    site_metrics.start()


# -- two real processes ------------------------------------------------------------------------


def test_two_processes_add_up_in_a_third(redis_server: Any, request: Any) -> None:
    config = backend_config("redis", request)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.ops_settings",
        "LEXIGRAM_OPS_CACHES": json.dumps({"default": DEFAULT, "r": config}),
        "LEXIGRAM_OPS_APP": json.dumps({"METRICS_INTERVAL": 0.5}),
        "PYTHONPATH": str(ROOT),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.metrics_worker", "r", "1000", "500"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "done"
        site: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a flush comes within one METRICS_INTERVAL
            done = subprocess.run(
                [sys.executable, "-m", "django", "cache", "stats", "r", "--json"],
                env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            site = json.loads(done.stdout)["aliases"][0]["site"]
            if site["hits"] >= 2000 and site["misses"] >= 1000:
                break
            time.sleep(0.2)
        assert (site["hits"], site["misses"], site["sets"]) == (2000, 1000, 2)
        assert site["hit_ratio"] == pytest.approx(2 / 3)
        with override_settings(CACHES={"default": DEFAULT, "r": config}):
            minutes = site_metrics.series("r", 10)
        assert sum(m["hits"] for m in minutes) == 2000
        assert sum(m["misses"] for m in minutes) == 1000
    finally:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait(timeout=30)


# -- system checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "code", "text"),
    [
        ({"METRICS_INTERVAL": 0}, "E030", "METRICS_INTERVAL must be between"),
        ({"METRICS_ENABLED": "yes"}, "E030", "METRICS_ENABLED must be True or False"),
        ({"METRICS_ALIAS": "nope"}, "E031", "'nope' is not in CACHES"),
        ({"METRICS_ALIAS": "default"}, "E031", "not a lexigram Redis or Memcached"),
    ],
)
def test_metrics_settings_are_checked(app: dict[str, Any], code: str, text: str) -> None:
    from lexigram_cache_django.checks import check_app_settings

    with override_settings(LEXIGRAM_CACHE=app):
        found = check_app_settings()
    assert [m.id for m in found] == [f"lexigram_cache.{code}"]
    assert text in found[0].msg and found[0].hint


def test_metrics_alias_on_redis_passes_the_checks(redis_server: Any, request: Any) -> None:
    from lexigram_cache_django.checks import check_app_settings

    shared = backend_config("redis", request)
    with override_settings(
        CACHES={"default": DEFAULT, "shared": shared}, LEXIGRAM_CACHE={"METRICS_ALIAS": "shared"}
    ):
        assert check_app_settings() == []


async def test_async_choke_points_feed_the_histogram(alias: str, backend_kind: str) -> None:
    if backend_kind == "memory":
        pytest.skip("no network choke point")
    cache = lexigram(alias)
    client = cache._client
    name = client.names[0] if backend_kind == "redis" else client.name
    before = histogram_for(name).total
    await cache.aset("a", 1, 60)
    await cache.aget("a")
    await cache.aget_many(["a", "b"])
    assert histogram_for(name).total - before >= 3
