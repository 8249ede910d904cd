"""stampede: computations per cold-key burst and per TTL window, ours vs Django's built-ins.

Two measurements, neither of them ops/s:

* **Cold key burst.** N threads (each with its own backend object, as Django gives each
  thread) and N asyncio tasks call ``get_or_set`` on one cold key whose computation takes
  ``COMPUTE_S``. Reported: computations per burst (goal for ours: exactly 1) and wall time.
* **Hot key under steady load.** Threads request one key continuously for several TTL
  windows. Reported: recomputations per TTL window (goal <= 1.5) and requests that waited
  on a miss after the first window (goal ~0: XFetch refreshes before expiry). A request
  that misses either computes or waits for the computation in flight, so the misses are
  the waits plus the computations that were not early refreshes, counted from snapshots
  taken while no computation runs (an early refresh counts when it finishes). For Django's
  backends, which neither wait nor refresh early, every computation is a miss.

Backends: memory vs LocMemCache always; Redis and Memcached (ours vs Django's) when the
backends import and the servers are installed (each started on a free loopback port,
pinned to the benchmark's CPU).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

from benchmarks.harness import Context, Result
from benchmarks.servers import start_memcached, start_redis

DESCRIPTION = "get_or_set under a cold-key burst and a hot key's expiry, ours vs Django's"

COMPUTE_S = 0.05
#: Per-task compute time in the async burst: Django's aget_or_set runs a sync callable on
#: the event loop, so its 200 computations run one after another.
TASK_COMPUTE_S = 0.005


class Computation:
    """A slow computation that counts its calls (thread-safe)."""

    def __init__(self, seconds: float = COMPUTE_S) -> None:
        self.seconds = seconds
        self.calls = 0
        self.running = 0
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.calls += 1

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
            self.running += 1
        try:
            time.sleep(self.seconds)
            return "value"
        finally:
            with self._lock:
                self.running -= 1


def _pairs(ctx: Context) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(label, ours path, django path, location, params) for every backend we can run."""
    pairs = [
        (
            "memory",
            "lexigram_cache_django.backends.memory.MemoryCache",
            "django.core.cache.backends.locmem.LocMemCache",
            "",
            {"OPTIONS": {"MAX_ENTRIES": 100_000}},
        )
    ]
    if find_spec("lexigram_cache_django.backends.redis") is None:
        ctx.log("redis skipped: lexigram_cache_django.backends.redis not found")
    else:
        pairs.append(
            (
                "redis",
                "lexigram_cache_django.backends.redis.RedisCache",
                "django.core.cache.backends.redis.RedisCache",
                start_redis(ctx),
                {},
            )
        )
    if find_spec("lexigram_cache_django.backends.memcached") is None:
        ctx.log("memcached skipped: lexigram_cache_django.backends.memcached not found")
    else:
        pairs.append(
            (
                "memcached",
                "lexigram_cache_django.backends.memcached.MemcachedCache",
                "django.core.cache.backends.memcached.PyMemcacheCache",
                start_memcached(ctx),
                {},
            )
        )
    return pairs


def _factory(ctx: Context, path: str, location: str, params: dict[str, Any]) -> Callable[[], Any]:
    """Makes one backend object per thread, sharing a location and a fresh prefix."""
    prefix = uuid.uuid4().hex[:8]
    loc = location or f"stampede-{prefix}"
    return lambda: ctx.make_cache(path, loc, KEY_PREFIX=prefix, TIMEOUT=300, **params)


def cold_burst_threads(make: Callable[[], Any], n: int) -> tuple[int, float]:
    caches = [make() for _ in range(n)]
    compute = Computation()
    key = f"cold-{uuid.uuid4().hex}"
    barrier = threading.Barrier(n + 1)

    def work(cache: Any) -> None:
        barrier.wait()
        cache.get_or_set(key, compute, 60)

    threads = [threading.Thread(target=work, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return compute.calls, time.perf_counter() - started


def cold_burst_tasks(ctx: Context, make: Callable[[], Any], n: int) -> tuple[int, float]:
    cache = make()
    compute = Computation(seconds=TASK_COMPUTE_S)
    key = f"cold-{uuid.uuid4().hex}"

    async def slow() -> str:
        compute.count()
        await asyncio.sleep(TASK_COMPUTE_S)
        return "value"

    async def burst() -> float:
        started = time.perf_counter()
        # Django's aget_or_set calls default() without awaiting it: give it the sync one.
        ours = hasattr(cache, "stampede_options")
        await asyncio.gather(
            *(cache.aget_or_set(key, slow if ours else compute, 60) for _ in range(n))
        )
        return time.perf_counter() - started

    wall = ctx.run_async(burst())
    return compute.calls, wall


def hot_key(make: Callable[[], Any], ttl: float, windows: int, threads: int) -> dict[str, float]:
    """Steady load on one key; count computations and requests that waited on a miss."""
    compute = Computation()
    key = f"hot-{uuid.uuid4().hex}"
    caches = [make() for _ in range(threads)]
    stats = getattr(caches[0], "_stats", None)  # ours: counters shared by the alias

    def snapshot() -> tuple[int, int, int]:
        """(computations, early refreshes, waits), taken while no computation runs."""
        while True:
            with compute._lock:
                if not compute.running:
                    if stats is None:
                        return compute.calls, 0, 0
                    return compute.calls, stats.early_refreshes, stats.waits
            time.sleep(0.001)

    deadline = time.monotonic() + ttl * windows
    requests = 0
    guard = threading.Lock()

    def work(cache: Any) -> None:
        nonlocal requests
        while time.monotonic() < deadline:
            cache.get_or_set(key, compute, ttl)
            with guard:
                requests += 1
            time.sleep(0.002)

    workers = [threading.Thread(target=work, args=(c,)) for c in caches]
    for t in workers:
        t.start()
    time.sleep(ttl)  # the first window: the cold start's misses are expected
    warm = snapshot()
    for t in workers:
        t.join()
    end = snapshot()
    computed, early, waits = (b - a for a, b in zip(warm, end))
    return {
        "per_window": compute.calls / windows,
        "missed": float(waits + computed - early),
        "requests": float(requests),
    }


def run(ctx: Context) -> list[Result]:
    rounds = 2 if ctx.quick else 5
    n_threads, n_tasks = 32, 200
    ttl, windows, load_threads = (1.0, 3, 4) if ctx.quick else (2.0, 5, 8)
    results: list[Result] = []
    for label, ours_path, django_path, location, params in _pairs(ctx):
        makers = {
            "ours": _factory(ctx, ours_path, location, params),
            "django": _factory(ctx, django_path, location, params),
        }
        names = {"ours": f"{label}: lexigram", "django": f"{label}: Django"}
        burst: dict[str, dict[str, list[float]]] = {
            who: {"tc": [], "tw": [], "ac": [], "aw": []} for who in makers
        }
        for _ in range(rounds):  # interleaved: ours, Django, ours, Django, ...
            for who, make in makers.items():
                calls, wall = cold_burst_threads(make, n_threads)
                burst[who]["tc"].append(calls)
                burst[who]["tw"].append(wall * 1000)
                calls, wall = cold_burst_tasks(ctx, make, n_tasks)
                burst[who]["ac"].append(calls)
                burst[who]["aw"].append(wall * 1000)
        for op, unit, field in (
            (f"{n_threads} threads, cold key: computations", "calls", "tc"),
            (f"{n_threads} threads, cold key: wall time", "ms", "tw"),
            (f"{n_tasks} tasks, cold key: computations", "calls", "ac"),
            (f"{n_tasks} tasks, cold key: wall time", "ms", "aw"),
        ):
            for who in ("django", "ours"):
                values = burst[who][field]
                results.append(
                    Result(
                        scenario=ctx.scenario,
                        op=f"{label}: {op}",
                        candidate=names[who],
                        baseline=names["django"],
                        median=statistics.median(values),
                        unit=unit,
                        samples=values,
                        note="goal for lexigram: 1 computation" if unit == "calls" else "",
                    )
                )
        for who in ("django", "ours"):
            hot = hot_key(makers[who], ttl, windows, load_threads)
            ctx.log(f"{names[who]} hot key: {hot}")
            for op, unit, value in (
                (
                    f"hot key, {windows} TTL windows: recomputations per window",
                    "calls",
                    "per_window",
                ),
                ("hot key: requests that waited on a miss after warm-up", "requests", "missed"),
            ):
                results.append(
                    Result(
                        scenario=ctx.scenario,
                        op=f"{label}: {op}",
                        candidate=names[who],
                        baseline=names["django"],
                        median=hot[value],
                        unit=unit,
                        note=f"of {hot['requests']:.0f} requests",
                    )
                )
    return results
