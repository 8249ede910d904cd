"""Benchmark harness: pinned, round-robin interleaved, paired-ratio timing of cache backends.

Why it is built this way (see ``docs/benchmarks.md`` for the long form):

* The project's speed goals are *ratios* against Django's built-in backends and raw clients
  measured **in the same run**, because absolute numbers on shared 2-core VMs drift by tens of
  percent from minute to minute.
* The process (and any server it starts) is pinned to one CPU so the scheduler cannot migrate
  it mid-sample and a loopback server competes for the same core as it would in a fair test.
* Candidates are interleaved round-robin (A, B, A, B, ...) so slow drift (thermal, a noisy
  neighbour, another job) hits every candidate equally; a ratio is computed **per round** from
  samples taken milliseconds apart, and the median of those paired ratios is reported.
* Each sample is a batch of ``n`` calls, with ``n`` calibrated so a sample lasts ~10 ms: long
  enough that timer resolution and loop overhead vanish, short enough for many rounds.
* The garbage collector is disabled during a timed batch (and collected before each scenario
  and case) so a collection triggered by one candidate's garbage is not billed to another.

A scenario module (``benchmarks/scenario_<name>.py``) provides ``cases(ctx) -> Iterable[Case]``
(or, for measurements that are not ops/s, ``run(ctx) -> list[Result]``); see ``__init__.py``.
Settings, pinning and server processes are in :mod:`benchmarks.environment`, the text table
in :mod:`benchmarks.report`; every name is re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import ipaddress
import itertools
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from benchmarks.environment import (
    BASE_SETTINGS,
    SERVER_MAX_LIFETIME_S,
    Op,
    _stop_process,
    configure_django,
    cycle_of,
    cycling,
    free_loopback_port,
    pin_current_process,
    pinned_argv,
    start_pinned_process,
    wait_for_port,
)
from benchmarks.report import format_table

#: Scenarios import these from here (environment and report names included).
__all__ = [
    "BASE_SETTINGS",
    "DEFAULT_ROUNDS",
    "DEFAULT_SAMPLE_MS",
    "GOAL_OPS",
    "MAX_BATCH",
    "MAX_SERVERS_PER_SCENARIO",
    "QUICK_ROUNDS",
    "QUICK_SAMPLE_MS",
    "SERVER_MAX_LIFETIME_S",
    "Case",
    "Context",
    "Goal",
    "Op",
    "Result",
    "SkipScenario",
    "_stop_process",
    "configure_django",
    "cycle_of",
    "cycling",
    "format_table",
    "free_loopback_port",
    "paired_stats",
    "pin_current_process",
    "pinned_argv",
    "quartiles",
    "start_pinned_process",
    "wait_for_port",
]

DEFAULT_ROUNDS = 41
QUICK_ROUNDS = 9
DEFAULT_SAMPLE_MS = 10.0
QUICK_SAMPLE_MS = 5.0
#: Upper bound on calls per sample, so a broken (no-op) candidate cannot spin forever.
MAX_BATCH = 5_000_000
#: Servers a single scenario may start (they are all stopped when the scenario ends).
MAX_SERVERS_PER_SCENARIO = 4
GOAL_OPS = (">=", "<=")


class SkipScenario(Exception):
    """Raised by a scenario that cannot run here (missing module, server binary, ...)."""


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """A target for a candidate's median paired ratio vs the baseline, e.g. ``>= 2.0``."""

    op: str
    target: float

    def __post_init__(self) -> None:
        if self.op not in GOAL_OPS:
            raise ValueError(f"goal operator must be one of {GOAL_OPS}, not {self.op!r}")

    def met(self, ratio: float) -> bool:
        return ratio >= self.target if self.op == ">=" else ratio <= self.target

    def __str__(self) -> str:
        return f"{self.op}{float(self.target)!r}x"


@dataclass
class Case:
    """One operation measured on several candidates.

    ``candidates`` maps a display name to a zero-argument op (sync, or returning an awaitable).
    ``baseline`` names the candidate every other one is divided by, round by round.
    ``goals`` maps a candidate name to ``(op, target)`` such as ``(">=", 2.0)``; a miss is
    reported, never raised. ``setup``/``teardown`` run once around the case (untimed).
    """

    name: str
    candidates: dict[str, Op]
    baseline: str
    goals: dict[str, tuple[str, float]] = field(default_factory=dict)
    setup: Callable[[], object] | None = None
    teardown: Callable[[], object] | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.baseline not in self.candidates:
            raise ValueError(f"case {self.name!r}: baseline {self.baseline!r} not a candidate")
        for name, (op, target) in self.goals.items():
            if name not in self.candidates:
                raise ValueError(f"case {self.name!r}: goal for unknown candidate {name!r}")
            Goal(op, target)  # validate early


@dataclass
class Result:
    """One row of output: a candidate's median speed on one op and its paired ratio."""

    scenario: str
    op: str
    candidate: str
    baseline: str
    median: float
    unit: str = "ops/s"
    ratio: float | None = None
    ratio_p25: float | None = None
    ratio_p75: float | None = None
    goal: Goal | None = None
    samples: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    batch: int = 0
    note: str = ""

    @property
    def is_baseline(self) -> bool:
        return self.candidate == self.baseline

    @property
    def verdict(self) -> str | None:
        if self.goal is None or self.ratio is None:
            return None
        return "PASS" if self.goal.met(self.ratio) else "MISS"

    @property
    def borderline(self) -> bool:
        """True when the goal lies inside the paired ratios' interquartile range."""
        if self.goal is None or self.ratio_p25 is None or self.ratio_p75 is None:
            return False
        return self.ratio_p25 <= self.goal.target <= self.ratio_p75

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "op": self.op,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "median": self.median,
            "unit": self.unit,
            "ratio_median_paired": self.ratio,
            "ratio_p25": self.ratio_p25,
            "ratio_p75": self.ratio_p75,
            "goal": str(self.goal) if self.goal else None,
            "verdict": self.verdict,
            "borderline": self.borderline,
            "batch": self.batch,
            "samples": self.samples,
            "ratios": self.ratios,
            "note": self.note,
        }


def paired_stats(values: Sequence[float], base: Sequence[float]) -> tuple[list[float], float]:
    """Per-round ratios ``values[i] / base[i]`` and their median."""
    ratios = [v / b for v, b in zip(values, base, strict=True) if b > 0]
    return ratios, statistics.median(ratios) if ratios else float("nan")


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def _time_sync(op: Op, n: int) -> int:
    repeat = itertools.repeat
    clock = time.perf_counter_ns
    t0 = clock()
    for _ in repeat(None, n):
        op()
    return clock() - t0


async def _time_async(op: Op, n: int) -> int:
    # One coroutine awaits the op n times: the event loop is entered once per sample, not per
    # call, so loop start-up is not billed to the op.
    repeat = itertools.repeat
    clock = time.perf_counter_ns
    t0 = clock()
    for _ in repeat(None, n):
        await op()
    return clock() - t0


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw


class _Runner:
    """Times batches of one candidate's op; figures out once whether it is async."""

    def __init__(self, op: Op, loop: asyncio.AbstractEventLoop) -> None:
        self.op = op
        self.loop = loop
        self.is_async = inspect.iscoroutinefunction(op)
        self.n = 1

    def probe(self) -> None:
        """Call the op once (untimed) to detect ``lambda: coro()`` style async ops."""
        if self.is_async:
            self.loop.run_until_complete(_await(self.op()))
            return
        res = self.op()
        if inspect.isawaitable(res):
            self.is_async = True
            self.loop.run_until_complete(_await(res))

    def time_batch(self, n: int) -> int:
        """Run ``n`` calls with the GC disabled; return elapsed nanoseconds (>= 1)."""
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            if self.is_async:
                ns = self.loop.run_until_complete(_time_async(self.op, n))
            else:
                ns = _time_sync(self.op, n)
        finally:
            if gc_was_enabled:
                gc.enable()
        return max(int(ns), 1)

    def calibrate(self, target_ns: int) -> None:
        """Pick ``n`` so one batch takes ~``target_ns``; doubles as warm-up."""
        self.probe()
        n = 1
        elapsed = self.time_batch(n)
        while elapsed < target_ns // 4 and n < MAX_BATCH:
            growth = max(2, min(10, (target_ns // 4) // elapsed))
            n = min(MAX_BATCH, n * growth)
            elapsed = self.time_batch(n)
        self.n = max(1, min(MAX_BATCH, round(n * target_ns / elapsed)))
        self.time_batch(self.n)  # warm-up at the final batch size (caches, allocator, JIT-less)


# --------------------------------------------------------------------------------------------
# Context handed to scenarios
# --------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What a scenario gets: run parameters, the shared event loop, and helpers.

    Everything registered through ``add_cleanup``/``make_cache``/``start_server`` is released
    when the scenario ends, even if it fails.
    """

    scenario: str
    rounds: int
    sample_ns: int
    quick: bool
    cpu: int | None
    loop: asyncio.AbstractEventLoop
    op_filter: str | None = None
    verbose: bool = True
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _servers: int = 0

    # -- lifecycle -------------------------------------------------------------------------
    def add_cleanup(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` when the scenario ends (LIFO)."""
        self._stack.callback(fn, *args, **kwargs)

    def close(self) -> None:
        self._stack.close()

    @staticmethod
    def skip(reason: str) -> NoReturn:
        """Skip the whole scenario with a reason that is printed to the user."""
        raise SkipScenario(reason)

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"  [{self.scenario}] {msg}", file=sys.stderr, flush=True)

    # -- helpers ---------------------------------------------------------------------------
    def run_async(self, aw: Awaitable[Any]) -> Any:
        """Run ``aw`` on the loop used for timing (async clients are bound to their loop)."""
        return self.loop.run_until_complete(_await(aw))

    def make_cache(self, backend: str, location: str = "", **params: Any) -> Any:
        """Instantiate a Django cache backend by dotted path, closed when the scenario ends.

        ``params`` are the usual CACHES keys (``TIMEOUT``, ``OPTIONS``, ``KEY_PREFIX``...).
        Raises ``ImportError`` if the backend cannot be imported, so callers can skip.
        """
        from django.utils.module_loading import import_string

        cls = import_string(backend)
        cache = cls(location, params)
        self.add_cleanup(cache.close)
        return cache

    def start_server(
        self,
        argv: Sequence[str],
        *,
        port: int,
        host: str = "127.0.0.1",
        ready_timeout: float = 10.0,
        max_lifetime_s: float = SERVER_MAX_LIFETIME_S,
    ) -> subprocess.Popen[bytes]:
        """Start a loopback server pinned to our CPU; wait until it listens; stop it at the end.

        The caller must make ``argv`` bind to ``host`` (e.g. ``--bind 127.0.0.1``); ``host`` has
        to be a loopback address. Use ``free_loopback_port()`` to choose ``port``.
        """
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"benchmark servers must listen on loopback only, not {host}")
        if self._servers >= MAX_SERVERS_PER_SCENARIO:
            raise RuntimeError(f"at most {MAX_SERVERS_PER_SCENARIO} servers per scenario")
        if shutil.which(argv[0]) is None:
            self.skip(f"{argv[0]} not found on PATH")
        proc = start_pinned_process(argv, self.cpu, max_lifetime_s=max_lifetime_s)
        self._servers += 1
        self.add_cleanup(_stop_process, proc)
        try:
            wait_for_port(host, port, ready_timeout)
        except TimeoutError:
            if proc.poll() is not None:
                self.skip(f"{argv[0]} exited with code {proc.returncode} before listening")
            raise
        return proc

    # -- measurement -----------------------------------------------------------------------
    def selected(self, case_name: str) -> bool:
        return self.op_filter is None or self.op_filter.lower() in case_name.lower()

    def measure(self, case: Case) -> list[Result]:
        """Calibrate, warm up and time every candidate of ``case``, interleaved round-robin."""
        if not self.selected(case.name):
            return []
        gc.collect()
        t_start = time.perf_counter()
        if case.setup is not None:
            case.setup()
        try:
            runners = {name: _Runner(op, self.loop) for name, op in case.candidates.items()}
            for runner in runners.values():
                runner.calibrate(self.sample_ns)
            names = list(runners)
            samples: dict[str, list[float]] = {name: [] for name in names}
            for rnd in range(self.rounds):
                # Rotate who goes first each round so no candidate always follows the same one.
                k = rnd % len(names)
                for name in names[k:] + names[:k]:
                    runner = runners[name]
                    ns = runner.time_batch(runner.n)
                    samples[name].append(runner.n * 1e9 / ns)
        finally:
            if case.teardown is not None:
                case.teardown()
        self.log(f"{case.name}: {time.perf_counter() - t_start:.1f}s")

        results = []
        base = samples[case.baseline]
        # Baseline row first, then the others in the order the scenario listed them.
        for name in sorted(names, key=lambda n: n != case.baseline):
            res = Result(
                scenario=self.scenario,
                op=case.name,
                candidate=name,
                baseline=case.baseline,
                median=statistics.median(samples[name]),
                samples=samples[name],
                batch=runners[name].n,
                note=case.note,
            )
            if name != case.baseline:
                res.ratios, res.ratio = paired_stats(samples[name], base)
                res.ratio_p25, res.ratio_p75 = quartiles(res.ratios)
                if name in case.goals:
                    res.goal = Goal(*case.goals[name])
            results.append(res)
        return results

    def measure_all(self, cases: Iterable[Case]) -> list[Result]:
        out: list[Result] = []
        for case in cases:
            out.extend(self.measure(case))
        return out
