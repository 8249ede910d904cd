"""A sick server costs a caller at most one timeout, then microseconds (issue 12).

Real servers started by the fixtures are killed (SIGKILL), restarted on the same port,
frozen (SIGSTOP: accepts, never answers) and thawed while 16 threads, or 200 asyncio
tasks, keep calling the cache. Per phase: no exception reaches a caller, no wrong value
is read, and the latencies stay within the bounds the circuit breaker and the
stop-after-the-first-failure rule give. Loopback only; every loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import itertools
import logging
import os
import statistics
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lexigram_cache_django.backends.base import LexigramCache
from tests.conftest import build_backend
from tests.servers import Server, start_memcached, start_redis

pytestmark = pytest.mark.slow

HEARTBEAT = 0.005  # the stall probe's sleep
STALL = 0.002  # oversleeps up to this are scheduling noise, not stalls
CONNECT_TIMEOUT = 0.25
SOCKET_TIMEOUT = 0.5
RESET_TIMEOUT = 0.5  # default 1.0; shorter here so "first hit within 2 s" has margin
OPTIONS = {
    "CONNECT_TIMEOUT": CONNECT_TIMEOUT,
    "SOCKET_TIMEOUT": SOCKET_TIMEOUT,
    "CIRCUIT_FAILURES": 5,
    "CIRCUIT_RESET_TIMEOUT": RESET_TIMEOUT,
    "STAMPEDE_WAIT_TIMEOUT": SOCKET_TIMEOUT,
}


@dataclass
class Call:
    phase: str
    op: str
    started: float
    seconds: float
    hit: bool = False
    error: str = ""
    wrong: str = ""


@dataclass
class Recorder:
    """What every worker saw, and the value each key may hold."""

    phase: str = "healthy"
    calls: list[Call] = field(default_factory=list)
    written: dict[str, set[str]] = field(default_factory=dict)
    #: (woke at, how late): a heartbeat's oversleeps, i.e. time nobody here could run
    #: (the process descheduled, or the event loop busy). Billed to the calls they hit.
    stalls: list[tuple[float, float]] = field(default_factory=list)
    stop: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def check(self, key: str, value: Any) -> str:
        if value is None or value in self.written.get(key, ()):
            return ""
        return f"{key} read {value!r}, never written"


def _described(exc: BaseException) -> str:
    """The error and where it was raised (the innermost frames), for the report."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{type(exc).__name__}: {exc} at {where}"


def _server(kind: str) -> Server:
    return start_redis() if kind == "redis" else start_memcached()


def _cache(kind: str, server: Server, **extra: Any) -> LexigramCache:
    backend = {
        "redis": "lexigram_cache_django.backends.redis.RedisCache",
        "memcached": "lexigram_cache_django.backends.memcached.MemcachedCache",
    }[kind]
    return build_backend(
        {
            "BACKEND": backend,
            "LOCATION": server.url,
            "KEY_PREFIX": f"faults-{time.monotonic_ns()}",
            "OPTIONS": {**OPTIONS, **extra},
        }
    )


def _ops(cache: LexigramCache, rec: Recorder, worker: int) -> Iterator[tuple[str, Any]]:
    """Endless (name, zero-argument callable returning (hit, wrong)) for one worker."""
    counter = itertools.count()
    key = f"w{worker}"

    def written(value: str) -> str:
        rec.written.setdefault(key, set()).add(value)
        return value

    def op_set() -> tuple[bool, str]:
        cache.set(key, written(f"{worker}:{next(counter)}"), 30)
        return False, ""

    def op_get() -> tuple[bool, str]:
        value = cache.get(key)
        return value is not None, rec.check(key, value)

    def op_get_or_set() -> tuple[bool, str]:
        value = cache.get_or_set(key, lambda: written(f"{worker}:{next(counter)}"), 30)
        return False, "" if value in rec.written[key] else f"get_or_set gave {value!r}"

    def op_get_many() -> tuple[bool, str]:
        found = cache.get_many([key, f"{key}-other"])
        return bool(found), rec.check(key, found.get(key))

    def op_delete() -> tuple[bool, str]:
        cache.delete(f"{key}-other")
        return False, ""

    for op in itertools.cycle([op_set, op_get, op_get_or_set, op_get, op_get_many, op_delete]):
        yield op.__name__[3:], op


def _async_ops(cache: LexigramCache, rec: Recorder, worker: int) -> Iterator[tuple[str, Any]]:
    counter = itertools.count()
    key = f"a{worker}"

    def written(value: str) -> str:
        rec.written.setdefault(key, set()).add(value)
        return value

    async def op_set() -> tuple[bool, str]:
        await cache.aset(key, written(f"{worker}:{next(counter)}"), 30)
        return False, ""

    async def op_get() -> tuple[bool, str]:
        value = await cache.aget(key)
        return value is not None, rec.check(key, value)

    async def op_get_or_set() -> tuple[bool, str]:
        value = await cache.aget_or_set(key, lambda: written(f"{worker}:{next(counter)}"), 30)
        return False, "" if value in rec.written[key] else f"aget_or_set gave {value!r}"

    async def op_get_many() -> tuple[bool, str]:
        found = await cache.aget_many([key, f"{key}-other"])
        return bool(found), rec.check(key, found.get(key))

    for op in itertools.cycle([op_set, op_get, op_get_or_set, op_get, op_get_many]):
        yield op.__name__[3:], op


# -- the phases ---------------------------------------------------------------------------

PHASES: list[tuple[str, float]] = [
    ("healthy", 1.0),
    ("killed", 2.0),
    ("restarted", 2.5),
    ("frozen", 2.5),
    ("thawed", 2.0),
]


def _drive_phases(server: Server, rec: Recorder, marks: dict[str, float]) -> None:
    for phase, seconds in PHASES:
        if phase == "killed":
            server.kill()
        elif phase == "restarted":
            server.restart()
        elif phase == "frozen":
            server.freeze()
        elif phase == "thawed":
            server.thaw()
        marks[phase] = time.monotonic()
        rec.phase = phase
        time.sleep(seconds)
    rec.stop = True


def _run_threads(cache: LexigramCache, server: Server) -> tuple[Recorder, dict[str, float]]:
    rec, marks = Recorder(), dict[str, float]()

    def work(worker: int) -> None:
        for name, op in _ops(cache, rec, worker):
            if rec.stop:
                return
            phase, started = rec.phase, time.monotonic()
            hit, wrong, error = False, "", ""
            try:
                hit, wrong = op()
            except Exception as exc:  # the point: none may escape
                error = _described(exc)
            rec.record(Call(phase, name, started, time.monotonic() - started, hit, error, wrong))
            time.sleep(0.001)

    def heartbeat() -> None:
        while not rec.stop:
            due = time.monotonic() + HEARTBEAT
            time.sleep(HEARTBEAT)
            woke = time.monotonic()
            if woke - due > STALL:
                rec.stalls.append((woke, woke - due))

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(16)]
    threads.append(threading.Thread(target=heartbeat, daemon=True))
    for thread in threads:
        thread.start()
    _drive_phases(server, rec, marks)
    for thread in threads:
        thread.join(timeout=10)
    return rec, marks


def _run_tasks(cache: LexigramCache, server: Server) -> tuple[Recorder, dict[str, float]]:
    rec, marks = Recorder(), dict[str, float]()

    async def work(worker: int) -> None:
        for name, op in _async_ops(cache, rec, worker):
            if rec.stop:
                return
            phase, started = rec.phase, time.monotonic()
            hit, wrong, error = False, "", ""
            try:
                hit, wrong = await op()
            except Exception as exc:
                error = _described(exc)
            rec.record(Call(phase, name, started, time.monotonic() - started, hit, error, wrong))
            await asyncio.sleep(0.02)  # 200 tasks, ~10k calls/s: the loop is not the queue

    async def heartbeat() -> None:
        while not rec.stop:
            due = time.monotonic() + HEARTBEAT
            await asyncio.sleep(HEARTBEAT)
            woke = time.monotonic()
            if woke - due > STALL:
                rec.stalls.append((woke, woke - due))

    async def main() -> None:
        driver = threading.Thread(target=_drive_phases, args=(server, rec, marks), daemon=True)
        tasks = [asyncio.create_task(work(i)) for i in range(200)]
        tasks.append(asyncio.create_task(heartbeat()))
        driver.start()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=sum(s for _, s in PHASES) + 10)
        driver.join(timeout=10)
        await cache.aclose()

    asyncio.run(main())
    return rec, marks


class Stalls:
    """The heartbeat's stalls, indexed once after the run: how much fell inside a call."""

    def __init__(self, stalls: list[tuple[float, float]]) -> None:
        ordered = sorted(stalls)
        self.woke = [woke for woke, _ in ordered]
        self.sums = list(itertools.accumulate((late for _, late in ordered), initial=0.0))

    def inside(self, started: float, seconds: float) -> float:
        lo = bisect.bisect_right(self.woke, started)
        hi = bisect.bisect_right(self.woke, started + seconds + HEARTBEAT)
        return self.sums[hi] - self.sums[lo]


def _p(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(rec: Recorder, marks: dict[str, float]) -> dict[str, Any]:
    """Per phase: calls, errors, wrong values, p50/p99/max (ms), and the first hit."""
    out: dict[str, Any] = {}
    stalls = Stalls(rec.stalls)
    for phase, _ in PHASES:
        calls = [c for c in rec.calls if c.phase == phase]
        lat = [c.seconds for c in calls]
        settled = [
            c.seconds - stalls.inside(c.started, c.seconds)  # its own time, as max_own_ms
            for c in calls
            if c.started > marks[phase] + SOCKET_TIMEOUT * 1.2
        ]
        hits = [c.started + c.seconds - marks[phase] for c in calls if c.hit]
        out[phase] = {
            "calls": len(calls),
            "errors": [c.error for c in calls if c.error][:3],
            "wrong": [c.wrong for c in calls if c.wrong][:3],
            "p50_ms": round(statistics.median(lat) * 1000, 2) if lat else None,
            "p99_ms": round(_p(lat, 0.99) * 1000, 2),
            "max_ms": round(max(lat, default=0) * 1000, 1),
            # A call's own wait: its time less the stalls inside it (see Stalls).
            "max_own_ms": round(
                max((c.seconds - stalls.inside(c.started, c.seconds) for c in calls), default=0)
                * 1000,
                1,
            ),
            "max_stall_ms": round(
                max((late for woke, late in rec.stalls if _in(phase, woke, marks)), default=0)
                * 1000,
                1,
            ),
            "settled_p99_ms": round(_p(settled, 0.99) * 1000, 2),
            "first_hit_s": round(min(hits), 3) if hits else None,
            "slowest": sorted(((round(c.seconds * 1000), c.op) for c in calls), reverse=True)[:3],
        }
    return out


def _in(phase: str, when: float, marks: dict[str, float]) -> bool:
    names = [name for name, _ in PHASES]
    after = names.index(phase) + 1
    end = marks[names[after]] if after < len(names) else float("inf")
    return marks[phase] <= when < end


def _assert_bounds(report: dict[str, Any], *, tasks: bool = False) -> None:
    # With 200 tasks on one loop a call also waits its turn on the loop (the healthy
    # phase's p99 measures that queue); threads have no such queue.
    queue_ms = report["healthy"]["p99_ms"] if tasks else 0.0
    for phase, figures in report.items():
        assert not figures["errors"], (phase, figures)
        assert not figures["wrong"], (phase, figures)
        assert figures["calls"] > 0, (phase, figures)
        # No call waits for two socket timeouts, whatever the phase: one timeout plus at
        # most half of one more for scheduling (16 threads on 2 cores share them with the
        # other test leg: a 598 ms call for a 500 ms timeout was seen), well below two.
        # Stalls the heartbeat saw inside a call are not the call's (the other test leg
        # once froze this process for ~450 ms, and a 940 ms get held 440 ms of them).
        assert figures["max_own_ms"] <= SOCKET_TIMEOUT * 1500 + queue_ms, (phase, figures)
    killed, frozen = report["killed"], report["frozen"]
    assert killed["p99_ms"] <= CONNECT_TIMEOUT * 1100, killed
    # Breaker open: no socket touched, microseconds (with tasks: no slower than healthy).
    limit = max(5.0, queue_ms)
    assert killed["settled_p99_ms"] < limit, killed
    assert frozen["settled_p99_ms"] < limit, frozen
    assert report["restarted"]["first_hit_s"] is not None, report["restarted"]
    assert report["restarted"]["first_hit_s"] <= 2.0, report["restarted"]
    assert report["thawed"]["first_hit_s"] is not None, report["thawed"]


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_threads_survive_kill_restart_freeze_thaw(kind: str, capsys: Any) -> None:
    server = _server(kind)
    try:
        cache = _cache(kind, server)
        report = _report(*_run_threads(cache, server))
    finally:
        server.thaw()
        server.stop()
    with capsys.disabled():
        print(f"\n{kind} sync (16 threads): {report}")
    _assert_bounds(report)


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_tasks_survive_kill_restart_freeze_thaw(kind: str, capsys: Any) -> None:
    server = _server(kind)
    try:
        cache = _cache(kind, server)
        report = _report(*_run_tasks(cache, server))
    finally:
        server.thaw()
        server.stop()
    with capsys.disabled():
        print(f"\n{kind} async (200 tasks): {report}")
    _assert_bounds(report, tasks=True)


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_an_outage_writes_a_few_log_lines_not_one_per_call(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """10 s of a dead server under 16 threads: fewer than 20 lines, not thousands."""
    server = _server(kind)
    cache = _cache(kind, server)
    calls = 0
    stop = time.monotonic() + 10.0

    def work(worker: int) -> None:
        nonlocal calls
        while time.monotonic() < stop:
            cache.get(f"k{worker}")
            cache.set(f"k{worker}", worker)
            calls += 2

    try:
        cache.set("warm", 1)
        server.kill()
        with caplog.at_level(logging.DEBUG, logger="lexigram_cache_django"):
            threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=20)
    finally:
        server.stop()
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    print(f"\n{kind}: {calls} calls in a 10 s outage, {len(lines)} log lines")
    assert calls > 10_000  # full load: the breaker made calls cheap
    assert 1 <= len(lines) < 20, [r.getMessage() for r in lines]
    assert any("open" in r.getMessage() for r in lines)


def test_compound_operations_stop_after_the_first_failure() -> None:
    """A frozen server: get_or_set costs one timeout (read), not three (read, lock, write),
    even before the breaker has seen enough failures to open."""
    server = start_redis()
    cache = _cache("redis", server, CIRCUIT_FAILURES=100)
    try:
        cache.set("k", "v")
        server.freeze()
        started = time.monotonic()
        assert cache.get_or_set("cold", lambda: "computed") == "computed"
        assert time.monotonic() - started <= SOCKET_TIMEOUT * 1.1
        started = time.monotonic()
        assert cache.get_or_set("cold", lambda: "again", tags=["t"]) == "again"
        assert time.monotonic() - started <= SOCKET_TIMEOUT * 1.1
    finally:
        server.thaw()
        server.stop()


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_health_reports_each_servers_breaker_and_ping(kind: str) -> None:
    server = _server(kind)
    cache = _cache(kind, server)
    try:
        healthy = cache.health()
        assert healthy["status"] == "up", healthy
        (line,) = healthy["servers"]
        assert line["state"] == "closed" and line["ping_ms"] is not None and not line["error"]
        server.kill()
        for _ in range(10):
            cache.get("k")  # enough failures to open the breaker
        started = time.monotonic()
        down = cache.health()
        assert time.monotonic() - started < 2.0
        assert down["status"] == "down", down
        (line,) = down["servers"]
        assert line["state"] == "open" and line["ping_ms"] is None and line["last_error"]
        assert line["short_circuited"] > 0
    finally:
        server.stop()
    assert cache.health()["status"] == "down"


def test_memory_health_is_always_up() -> None:
    cache = build_backend(
        {"BACKEND": "lexigram_cache_django.backends.memory.MemoryCache", "LOCATION": "h"}
    )
    assert cache.health() == {"backend": "memory", "status": "up", "servers": []}


@pytest.mark.django_db
def test_a_page_with_a_frozen_server_costs_one_timeout_then_nothing(client: Any) -> None:
    """The example project's cached owner list on Redis: healthy, then frozen."""
    import json

    from django.core.cache import caches
    from django.core.management import call_command
    from django.test import override_settings
    from django.urls import reverse

    from example_project.cache_config import cache_settings_from_env

    call_command("load_sample_data", stdout=open(os.devnull, "w"))  # noqa: SIM115
    server = start_redis()
    environ = {
        "CACHE_BACKEND": "redis",
        "CACHE_LOCATION": server.url,
        "CACHE_OPTIONS": json.dumps(OPTIONS),
    }
    url = reverse("petclinic:owner-list")

    def request() -> float:
        started = time.monotonic()
        assert client.get(url).status_code == 200
        return time.monotonic() - started

    try:
        with override_settings(CACHES=cache_settings_from_env(environ)):
            renders = []
            for _ in range(5):  # a healthy miss: render and store
                caches["default"].clear()
                renders.append(request())
            healthy = statistics.median(renders)
            server.freeze()
            first = request()
            gc.collect()  # not the test's garbage billed to the next request
            following = [request() for _ in range(10)]
    finally:
        server.thaw()
        server.stop()
    print(
        f"\npage: healthy miss {healthy * 1000:.1f} ms, frozen first {first * 1000:.1f} ms, "
        f"then max {max(following) * 1000:.1f} ms"
    )
    assert first <= healthy + SOCKET_TIMEOUT * 1.1
    assert max(following) <= healthy + 0.005
