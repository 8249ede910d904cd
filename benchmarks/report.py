"""The benchmarks' text table: one block per op, baseline row first, goals and verdicts.

Split from :mod:`benchmarks.harness` (which re-exports ``format_table``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.harness import Result


def _fmt_value(res: Result) -> str:
    text = f"{res.median:,.0f}" if res.median >= 100 else f"{res.median:,.2f}"
    return text if res.unit == "ops/s" else f"{text} {res.unit}"


def _fmt_ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 100 else f"{value:.0f}x"


def format_table(results: Sequence[Result]) -> str:
    """Render results as an aligned text table, one block per op, baseline row first."""
    if not results:
        return "(no results)"
    baselines = {r.baseline for r in results}
    ratio_head = (
        f"ratio vs {next(iter(baselines))} (median paired)"
        if len(baselines) == 1
        else "ratio vs baseline (median paired)"
    )
    units = {r.unit for r in results}
    value_head = "median ops/s" if units == {"ops/s"} else "median"
    rows: list[tuple[str, ...]] = [
        ("op", "candidate", value_head, ratio_head, "IQR of ratios", "goal")
    ]
    last_op = None
    for res in results:
        op = res.op if res.op != last_op else ""
        last_op = res.op
        if res.is_baseline:
            ratio, iqr = "1.00x (baseline)", ""
        elif res.ratio is None:
            ratio, iqr = "-", ""
        else:
            ratio = _fmt_ratio(res.ratio)
            iqr = (
                f"{_fmt_ratio(res.ratio_p25)}-{_fmt_ratio(res.ratio_p75)}"
                if res.ratio_p25 is not None and res.ratio_p75 is not None
                else ""
            )
        goal = ""
        if res.goal is not None and res.verdict is not None:
            goal = f"goal {res.goal}  {res.verdict}"
            if res.borderline:
                goal += " (borderline)"
        rows.append((op, res.candidate, _fmt_value(res), ratio, iqr, goal))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2}  # numbers right-aligned
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def profile_report(op: Callable[[], object], calls: int, sort: str, lines: int) -> str:
    """cProfile of ``calls`` calls of ``op``: the table a scenario logs when asked to
    (``LEXIGRAM_BENCH_PROFILE=1``), to see where a measured call's time goes."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        op()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(lines)
    return out.getvalue()
