"""Compare two benchmark runs (``--json-out`` files): the paired ratios side by side.

Used to show that a refactoring left the ratios where they were::

    python -m benchmarks.compare before.json after.json [--tolerance 0.05]

Each row is one (scenario, op, candidate) with a paired ratio in both runs: the median
ratio before, after, and after/before. Rows outside the tolerance are marked; the exit
code is 0 either way (a report, not a gate: see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def ratios(path: Path) -> dict[tuple[str, str, str], float]:
    data: dict[str, Any] = json.loads(path.read_text())
    found: dict[tuple[str, str, str], float] = {}
    for row in data["results"]:
        ratio = row.get("ratio_median_paired")
        if ratio is not None and row["candidate"] != row["baseline"]:
            found[(row["scenario"], row["op"], row["candidate"])] = float(ratio)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args(argv)
    before, after = ratios(args.before), ratios(args.after)
    rows = [key for key in before if key in after]
    width = max((len(f"{s}: {o} / {c}") for s, o, c in rows), default=10)
    print(f"{'ratio (candidate vs baseline)':<{width}}  before   after  after/before")
    outside = 0
    for key in rows:
        b, a = before[key], after[key]
        change = a / b if b else float("nan")
        mark = "" if abs(change - 1) <= args.tolerance else "  <-- outside"
        outside += bool(mark)
        label = f"{key[0]}: {key[1]} / {key[2]}"
        print(f"{label:<{width}}  {b:5.2f}x  {a:5.2f}x  {change:6.3f}{mark}")
    print(f"{len(rows)} ratios compared, {outside} outside +-{args.tolerance:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
