"""Prometheus: a scrape parsed with prometheus-client's parser has the expected series and
values after known traffic, on memory, Redis and Memcached; breakers; the /metrics view;
multiprocess mode across real processes (and a fork); PROMETHEUS_INTERVAL's check."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.checks import run_checks
from django.test import Client, override_settings
from django.urls import include, path
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.contrib.prometheus import CacheCollector, install
from tests.conftest import BACKEND_PATHS, backend_config
from tests.servers import Server, start_memcached, start_redis

ROOT = Path(__file__).resolve().parent.parent
urlpatterns = [path("metrics", include("lexigram_cache_django.contrib.prometheus.urls"))]

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Series:
    """``{(sample name, sorted labels): value}`` of a text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    return series[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def aliased(backend_kind: str, request: pytest.FixtureRequest) -> Iterator[LexigramCache]:
    config = backend_config(backend_kind, request)
    with override_settings(CACHES={"default": {"BACKEND": BACKEND_PATHS["memory"]}, "m": config}):
        cache = caches["m"]
        assert isinstance(cache, LexigramCache)
        yield cache
        cache.clear()


def test_scrape_after_known_traffic(aliased: LexigramCache) -> None:
    registry = CollectorRegistry()
    assert isinstance(install(registry), CacheCollector)
    assert install(registry) is install(registry)  # once per registry
    aliased.set_many({"a": 1, "b": 2})
    for key in ("a", "a", "b", "x", "y"):
        aliased.get(key)
    aliased.get_many(["a", "z"])
    aliased.delete("a")
    aliased.invalidate_tags("t1", "t2")
    series = parse(generate_latest(registry).decode())
    ops = "lexigram_cache_operations_total"
    assert value(series, ops, alias="m", op="get", result="hit") == 4
    assert value(series, ops, alias="m", op="get", result="miss") == 3  # x, y, z
    assert value(series, ops, alias="m", op="set", result="ok") == 2
    assert value(series, ops, alias="m", op="delete", result="ok") == 1
    assert value(series, "lexigram_cache_tag_invalidations_total", alias="m") == 2
    assert value(series, "lexigram_cache_errors_total", alias="m") == 0
    stampede = "lexigram_cache_stampede_events_total"
    assert value(series, stampede, alias="m", event="computation") == 0
    aliased.get_or_set("c", 3)
    series = parse(generate_latest(registry).decode())
    assert value(series, stampede, alias="m", event="computation") == 1
    assert value(series, ops, alias="m", op="set", result="ok") == 3
    assert value(series, ops, alias="default", op="get", result="hit") == 0
    breakers = [k for k in series if k[0] == "lexigram_cache_circuit_state" and k[1][0][1] == "m"]
    if aliased.backend_name == "memory":
        assert value(series, "lexigram_cache_entries", alias="m") == 4  # b, c, 2 tag records
        assert breakers == []
    else:
        (server,) = {dict(labels)["server"] for _, labels in breakers}
        state = "lexigram_cache_circuit_state"
        assert value(series, state, alias="m", server=server, state="closed") == 1
        assert value(series, state, alias="m", server=server, state="open") == 0
        # Command latency: a histogram per server; five more one-command reads add five
        # (the site-wide metrics thread may flush in between: at most a command or two more).
        latency = "lexigram_cache_command_duration_seconds"
        before = value(series, latency + "_count", alias="m", server=server)
        for _ in range(5):
            aliased.get("b")
        series = parse(generate_latest(registry).decode())
        count = value(series, latency + "_count", alias="m", server=server)
        assert 5 <= count - before <= 7
        assert value(series, latency + "_bucket", alias="m", server=server, le="+Inf") == count
        assert value(series, latency + "_bucket", alias="m", server=server, le="10.0") <= count
        assert value(series, latency + "_sum", alias="m", server=server) > 0


@pytest.fixture(params=["redis", "memcached"])
def own_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    server = start_redis() if request.param == "redis" else start_memcached()
    yield server
    server.stop()


def test_breaker_state_and_errors(own_server: Server) -> None:
    config = {
        "BACKEND": BACKEND_PATHS[own_server.kind],
        "LOCATION": own_server.url,
        "OPTIONS": {"CIRCUIT_FAILURES": 1, "CIRCUIT_RESET_TIMEOUT": 60},
    }
    registry = CollectorRegistry()
    install(registry)
    with override_settings(CACHES={"default": {"BACKEND": BACKEND_PATHS["memory"]}, "b": config}):
        cache = caches["b"]
        assert isinstance(cache, LexigramCache)
        own_server.kill()
        for _ in range(3):
            cache.get("k")  # the first fails and opens the breaker; two short-circuited
        series = parse(generate_latest(registry).decode())
        (server,) = {b.server for b in cache.breakers()}
        state = "lexigram_cache_circuit_state"
        assert value(series, state, alias="b", server=server, state="open") == 1
        assert value(series, state, alias="b", server=server, state="closed") == 0
        assert value(series, "lexigram_cache_circuit_opened_total", alias="b", server=server) == 1
        short = "lexigram_cache_circuit_short_circuited_total"
        assert value(series, short, alias="b", server=server) == 2
        assert value(series, "lexigram_cache_errors_total", alias="b") == 3
        assert value(series, "lexigram_cache_short_circuited_total", alias="b") == 2
        assert value(series, "lexigram_cache_operations_total", alias="b", op="get",
                     result="miss") == 0  # fmt: skip


def test_metrics_view(aliased: LexigramCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    aliased.set("a", 1)
    aliased.get("a")
    with override_settings(ROOT_URLCONF="tests.test_prometheus"):
        response = Client().get("/metrics")
    assert response.status_code == 200
    series = parse(response.content.decode())
    ops = "lexigram_cache_operations_total"
    assert value(series, ops, alias="m", op="get", result="hit") == 1
    assert any(name.startswith("python_") for name, _ in series)  # the default registry's


@pytest.mark.parametrize(
    ("value_", "expected"), [(0.01, "must be between"), ("5", "must be a number")]
)
def test_prometheus_interval_check(value_: Any, expected: str) -> None:
    with override_settings(LEXIGRAM_CACHE={"PROMETHEUS_INTERVAL": value_}):
        found = [m for m in run_checks() if m.id == "lexigram_cache.E021"]
    assert len(found) == 1 and expected in found[0].msg and found[0].hint


# -- multiprocess mode: real processes, one scrape ------------------------------------------

SETUP = """
import os, sys
import django
from django.conf import settings
settings.configure(
    SECRET_KEY="x",
    INSTALLED_APPS=["lexigram_cache_django", "lexigram_cache_django.contrib.prometheus"],
    CACHES={"shared": {"BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
                       "LOCATION": os.environ["REDIS_URL"], "KEY_PREFIX": os.environ["PREFIX"]}},
    LEXIGRAM_CACHE={"PROMETHEUS_INTERVAL": 0.2},
    ROOT_URLCONF="lexigram_cache_django.contrib.prometheus.urls",
    ALLOWED_HOSTS=["*"],
)
django.setup()
from django.core.cache import caches
cache = caches["shared"]
def traffic(hits, misses):
    cache.set("k", "v")
    for _ in range(hits):
        assert cache.get("k") == "v"
    for i in range(misses):
        assert cache.get(f"missing-{i}") is None
"""

TRAFFIC = """
traffic(100, 50)
if sys.argv[1] == "stay":  # copied by the thread, not at exit: stay until told
    print("ready", flush=True)
    sys.stdin.read()
elif sys.argv[1] == "fork":  # the child must not copy again what it inherited
    pid = os.fork()
    if pid == 0:
        traffic(7, 3)
        sys.exit(0)  # a normal exit: its last copy at exit
    os.waitpid(pid, 0)
"""

SCRAPE = """
from django.test import Client
response = Client().get("/")
assert response.status_code == 200, response.status_code
sys.stdout.write(response.content.decode())
"""


def test_multiprocess_mode(redis_server: Server, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "REDIS_URL": redis_server.url,
        "PREFIX": f"mp{os.getpid()}{time.monotonic_ns()}",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def child(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        script = textwrap.dedent(SETUP) + textwrap.dedent(code)
        return subprocess.Popen(
            [sys.executable, "-c", script, *args], env=env, text=True, cwd=str(tmp_path), **kwargs
        )

    staying = child(TRAFFIC, "stay", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert staying.stdout is not None and staying.stdout.readline() == "ready\n"
        forking = child(TRAFFIC, "fork")
        assert forking.wait(timeout=60) == 0
        ops = "lexigram_cache_operations_total"
        expected = {"hit": 100 + 100 + 7, "miss": 50 + 50 + 3}
        deadline = time.monotonic() + 20  # the staying process copies every 0.2 s
        while True:
            scrape = child(SCRAPE, stdout=subprocess.PIPE)
            out, _ = scrape.communicate(timeout=60)
            assert scrape.returncode == 0
            series = parse(out)
            got = {
                result: value(series, ops, alias="shared", op="get", result=result)
                for result in expected
            }
            if got == expected or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert got == expected  # the sum of three processes, the inherited counts once
        assert value(series, ops, alias="shared", op="set", result="ok") == 3
        state = [k for k in series if k[0] == "lexigram_cache_circuit_state"]
        assert state and all("pid" not in dict(labels) for _, labels in state)
        # Latency histograms add up across the processes too: at least one command per
        # operation above (a set and 150 reads each, 11 more in the child), buckets cumulative.
        latency = "lexigram_cache_command_duration_seconds"
        (server,) = {
            dict(labels)["server"] for name, labels in series if name == latency + "_count"
        }
        count = value(series, latency + "_count", alias="shared", server=server)
        assert count >= 2 * 151 + 11
        assert value(series, latency + "_bucket", alias="shared", server=server, le="+Inf") == count
        assert value(series, latency + "_sum", alias="shared", server=server) > 0
    finally:
        staying.communicate(timeout=60)
    assert staying.returncode == 0
