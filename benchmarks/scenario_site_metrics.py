"""site_metrics: get-hit throughput with the site-wide metrics flusher on vs off.

The flusher never touches a ``get``: its whole cost is a thread that wakes every
``METRICS_INTERVAL`` seconds, reads the alias's counters and writes their deltas (one Redis
pipeline; a dict update for memory). To make that cost visible at all, "on" runs it every
50 ms (200 times the default of 10 s), with hits to flush at every wake-up. The thread runs in both
states (a long-lived thread, as in a real process); ``METRICS_ENABLED`` switches flushing on
and off. The states cannot coexist in one process, so this scenario drives the harness'
runner itself: each round takes one ~100 ms sample per state (so each "on" sample spans
about two flushes), the state switched untimed between samples and the starting state
alternating round by round; the ratio is paired per round, as everywhere else.
Goal: "on" >= 0.98x "off".

A second case prices what the choke point adds on every networked call, always on:
``LatencyHistogram.observe`` (one ``bisect`` and two additions) against a bare call.
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any

from benchmarks.harness import (
    BASE_SETTINGS,
    Case,
    Context,
    Goal,
    Result,
    _Runner,
    paired_stats,
    quartiles,
)
from benchmarks.servers import start_redis

DESCRIPTION = "get hit with site-wide metrics flushing every 50 ms vs off (goal >= 0.98x)"

OFF = "metrics off"
ON = "flush every 50 ms"
STRESS_INTERVAL = 0.05
SAMPLE_NS = 100_000_000
GOAL = 0.98


_state: list[Any] = []


def _clear_state() -> None:
    while _state:
        _state.pop().disable()


def _set_state(state: str) -> None:
    """Flushing on or off (METRICS_ENABLED), the flusher thread itself running in both: a
    long-lived thread, as in a real process, whose wake-ups both states pay."""
    from django.test import override_settings

    _clear_state()
    app = {**BASE_SETTINGS["LEXIGRAM_CACHE"], "METRICS_INTERVAL": STRESS_INTERVAL,
           "METRICS_ENABLED": state == ON}  # fmt: skip
    override = override_settings(LEXIGRAM_CACHE=app)
    override.enable()
    _state.append(override)


def _measure(ctx: Context, alias: str) -> list[Result]:
    from django.core.cache import caches

    op_name = f"get hit ({alias})"
    if not ctx.selected(op_name):
        return []
    cache = caches[alias]
    cache.set("hot", "x" * 100, None)
    get = cache.get
    runners = {state: _Runner(lambda: get("hot"), ctx.loop) for state in (OFF, ON)}
    sample_ns = SAMPLE_NS if not ctx.quick else SAMPLE_NS // 2
    for state, runner in runners.items():
        _set_state(state)
        runner.calibrate(sample_ns)
    runners[ON].n = runners[OFF].n  # the same batch for both: a pure paired comparison
    samples: dict[str, list[float]] = {OFF: [], ON: []}
    gc.collect()
    for rnd in range(ctx.rounds):
        order = (OFF, ON) if rnd % 2 == 0 else (ON, OFF)
        for state in order:
            _set_state(state)
            runner = runners[state]
            samples[state].append(runner.n * 1e9 / runner.time_batch(runner.n))
    _set_state(OFF)
    ratios, ratio = paired_stats(samples[ON], samples[OFF])
    p25, p75 = quartiles(ratios)
    note = f"{ctx.rounds} rounds of ~{sample_ns / 1e6:.0f} ms; flushes: {_flushes(alias)}"
    return [
        Result(ctx.scenario, op_name, OFF, OFF, statistics.median(samples[OFF]),
               samples=samples[OFF], batch=runners[OFF].n, note=note),
        Result(ctx.scenario, op_name, ON, OFF, statistics.median(samples[ON]), ratio=ratio,
               ratio_p25=p25, ratio_p75=p75, goal=Goal(">=", GOAL), samples=samples[ON],
               ratios=ratios, batch=runners[ON].n, note=note),
    ]  # fmt: skip


def _flushes(alias: str) -> str:
    """How many minute buckets hold hits (evidence the "on" state really flushed)."""
    from lexigram_cache_django import site_metrics

    hits = sum(m["hits"] for m in site_metrics.series(alias, 5))
    return f"{hits} hits recorded site-wide or in process"


def _observe_case() -> Case:
    from lexigram_cache_django.metrics import LatencyHistogram

    hist = LatencyHistogram()
    observe = hist.observe
    clock = time.perf_counter

    def bare() -> float:
        return clock() - clock()

    def timed() -> None:
        start = clock()
        observe(clock() - start)

    return Case(
        name="choke point: perf_counter x2 (+ observe)",
        candidates={"bare": bare, "with observe": timed},
        baseline="bare",
        note="what timing adds per networked command (a Redis get is ~30-60 us)",
    )


def run(ctx: Context) -> list[Result]:
    from django.test import override_settings

    url = start_redis(ctx)
    ctx.log(f"redis-server on {url}")
    caches_setting = {
        **BASE_SETTINGS["CACHES"],
        "bench_memory": {
            "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
            "LOCATION": "bench-site-metrics",
        },
        "bench_redis": {
            "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "bench-sm",
        },
    }
    from lexigram_cache_django import site_metrics

    override = override_settings(CACHES=caches_setting)
    override.enable()
    ctx.add_cleanup(override.disable)
    ctx.add_cleanup(_clear_state)
    _set_state(ON)
    site_metrics.stop()
    site_metrics.start()  # re-reads METRICS_INTERVAL: wakes every 50 ms from now on
    ctx.add_cleanup(site_metrics.stop)
    results: list[Result] = []
    for alias in ("bench_memory", "bench_redis"):
        results += _measure(ctx, alias)
    results += ctx.measure(_observe_case())
    return results
