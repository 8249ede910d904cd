"""CLI: ``python -m benchmarks [scenario ...] [--rounds N] [--quick] [--json-out FILE]``.

Discovers ``benchmarks/scenario_*.py``, pins itself to one CPU, runs the requested scenarios
(default: all) one after another in this process and prints one table per scenario.
Exit code: 0, or 1 with ``--strict`` when a goal is missed or a scenario was skipped, or 2 when
a scenario crashed or the command line is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks import harness
from benchmarks.harness import Context, Result, SkipScenario

PREFIX = "scenario_"


def discover() -> list[str]:
    """Scenario names (``scenario_<name>.py`` -> ``<name>``), sorted, without importing them."""
    path = [str(Path(__file__).resolve().parent)]
    return sorted(
        m.name.removeprefix(PREFIX) for m in pkgutil.iter_modules(path) if m.name.startswith(PREFIX)
    )


def describe(module: ModuleType) -> str:
    desc = getattr(module, "DESCRIPTION", None)
    if isinstance(desc, str) and desc:
        return desc
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


def parse_args(argv: list[str] | None, available: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Pinned, interleaved, paired-ratio cache benchmarks.",
    )
    p.add_argument("scenarios", nargs="*", help=f"scenarios to run (default: all of {available})")
    p.add_argument("--rounds", type=int, help=f"rounds per op (default {harness.DEFAULT_ROUNDS})")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{harness.QUICK_ROUNDS} rounds of {harness.QUICK_SAMPLE_MS:g} ms samples (smoke run)",
    )
    p.add_argument("--sample-ms", type=float, help="target duration of one sample batch")
    p.add_argument("-k", dest="op_filter", help="only ops whose name contains this substring")
    p.add_argument("--json-out", type=Path, help="write all results (with raw samples) as JSON")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if any goal is missed or any requested scenario is skipped",
    )
    p.add_argument("--cpu", type=int, help="CPU to pin to (default: the last allowed CPU)")
    p.add_argument("--no-pin", action="store_true", help="do not pin (numbers get noisier)")
    p.add_argument("--list", action="store_true", help="list scenarios and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be >= 1")
    unknown = [s for s in args.scenarios if s not in available]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; available: {', '.join(available)}")
    return args


def run_scenario(name: str, ctx: Context) -> list[Result]:
    """Import and run one scenario; ``SkipScenario``/``ImportError`` propagate as skips."""
    try:
        module = importlib.import_module(f"benchmarks.{PREFIX}{name}")
    except ImportError as exc:
        print(f"\n== {name}", flush=True)
        raise SkipScenario(f"cannot import scenario module: {exc}") from exc
    print(f"\n== {name}: {describe(module)}", flush=True)
    if hasattr(module, "run"):
        results: list[Result] = module.run(ctx)
        return results
    if hasattr(module, "cases"):
        return ctx.measure_all(module.cases(ctx))
    raise TypeError(f"scenario module {module.__name__} defines neither cases() nor run()")


def main(argv: list[str] | None = None) -> int:
    available = discover()
    args = parse_args(argv, available)
    if args.list:
        for name in available:
            print(name)
        return 0
    selected = args.scenarios or available

    cpu = None if args.no_pin else harness.pin_current_process(args.cpu)
    rounds = args.rounds or (harness.QUICK_ROUNDS if args.quick else harness.DEFAULT_ROUNDS)
    sample_ms = args.sample_ms or (
        harness.QUICK_SAMPLE_MS if args.quick else harness.DEFAULT_SAMPLE_MS
    )
    harness.configure_django()
    import django

    print(
        f"python {platform.python_version()}  django {django.get_version()}  "
        f"cpu {'unpinned' if cpu is None else f'pinned to {cpu}'} of {os.cpu_count()}  "
        f"rounds {rounds}  sample ~{sample_ms:g} ms  "
        f"loadavg {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    all_results: list[Result] = []
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    t_run = time.perf_counter()
    try:
        for name in selected:
            ctx = Context(
                scenario=name,
                rounds=rounds,
                sample_ns=int(sample_ms * 1e6),
                quick=args.quick,
                cpu=cpu,
                loop=loop,
                op_filter=args.op_filter,
                verbose=not args.quiet,
            )
            gc.collect()
            t0 = time.perf_counter()
            try:
                results = run_scenario(name, ctx)
            except SkipScenario as exc:
                skipped[name] = str(exc)
                print(f"SKIPPED {name}: {exc}", flush=True)
                continue
            except Exception:
                errors[name] = traceback.format_exc()
                print(f"\n== {name}: ERROR\n{errors[name]}", file=sys.stderr, flush=True)
                continue
            finally:
                ctx.close()
            all_results.extend(results)
            print(harness.format_table(results))
            print(f"({name}: {time.perf_counter() - t0:.1f}s)", flush=True)
    finally:
        # Clients that keep background tasks on the loop (emcache) would otherwise be
        # destroyed pending, with a warning per task.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)

    verdicts = [r.verdict for r in all_results if r.verdict is not None]
    misses = [f"{r.scenario}/{r.op}/{r.candidate}" for r in all_results if r.verdict == "MISS"]
    miss_list = ", ".join(misses[:5]) + (", ..." if len(misses) > 5 else "")
    print(
        f"\ngoals: {verdicts.count('PASS')} PASS, {len(misses)} MISS"
        f"{f'  ({miss_list})' if misses else ''}; "
        f"scenarios: {len(selected) - len(skipped) - len(errors)} run, "
        f"{len(skipped)} skipped, {len(errors)} errored; "
        f"total {time.perf_counter() - t_run:.1f}s"
    )

    if args.json_out is not None:
        payload: dict[str, Any] = {
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "django": django.get_version(),
            "platform": platform.platform(),
            "cpu_pinned": cpu,
            "cpu_count": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "rounds": rounds,
            "sample_ms": sample_ms,
            "scenarios": selected,
            "skipped": skipped,
            "errors": errors,
            "results": [r.to_json() for r in all_results],
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json_out}")

    if errors:
        return 2
    if args.strict and (misses or skipped):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
