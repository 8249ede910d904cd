"""circuit: the breaker's cost per guarded call, vs a bare call and vs pybreaker's ``call()``.

The choke point's healthy path is ``if breaker.allow(): result = send(); breaker.success()``;
``breaker`` is measured doing exactly that around a no-op ``send``, ``bare`` calls the no-op
alone, and ``pybreaker`` (if installed; it is not a dependency) runs ``cb.call(send)``. The
``ns/call`` rows subtract the bare call, so they are what the breaker adds (goal: <= 200 ns
for allow + success together). ``breaker (open)`` is a short-circuited call: what a request
pays per cache call while a server is down.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Case, Context, Op, Result

DESCRIPTION = "CircuitBreaker allow()+success() vs a bare call and pybreaker (goal <= 200 ns)"

BARE = "bare call"
OURS = "breaker"
OPEN = "breaker (open)"
PYBREAKER = "pybreaker"
GOAL_NS = 200.0


def _send() -> int:
    return 1


def _guarded(breaker: Any) -> Op:
    allow, success, send = breaker.allow, breaker.success, _send

    def op() -> int | None:
        if allow():
            result = send()
            success()
            return result
        return None

    return op


def run(ctx: Context) -> list[Result]:
    from lexigram_cache_django.circuit import CircuitBreaker

    closed = CircuitBreaker("bench")
    opened = CircuitBreaker("bench-open", failures=1, reset_timeout=1e9)
    opened.failure(OSError("down"))
    candidates: dict[str, Op] = {BARE: _send, OURS: _guarded(closed), OPEN: _guarded(opened)}
    try:
        import pybreaker
    except ImportError:
        ctx.log("pybreaker not installed: compared with a bare call only")
    else:
        cb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=1)
        call = cb.call
        candidates[PYBREAKER] = lambda: call(_send)
    case = Case(
        name="guarded no-op call",
        candidates=candidates,
        baseline=BARE,
        note="ops/s of the whole guarded call; ratios < 1 are the overhead",
    )
    results = ctx.measure(case)
    by_name = {r.candidate: r for r in results}
    if BARE not in by_name:  # filtered out with -k
        return results
    bare_ns = 1e9 / by_name[BARE].median
    for res in list(results):
        if res.candidate == BARE:
            continue
        added = 1e9 / res.median - bare_ns
        goal = f" (goal <= {GOAL_NS:g} ns: {'PASS' if added <= GOAL_NS else 'MISS'})"
        if res.candidate == OURS:
            ctx.log(f"allow()+success() add {added:.0f} ns a call{goal}")
        results.append(
            Result(
                scenario=ctx.scenario,
                op="added per call",
                candidate=res.candidate,
                baseline=BARE,
                median=added,
                unit="ns",
                note=f"{1e9 / res.median:.0f} ns guarded vs {bare_ns:.0f} ns bare"
                + (goal if res.candidate == OURS else ""),
            )
        )
    return results
