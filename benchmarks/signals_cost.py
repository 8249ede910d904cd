"""What the signals cost on a get hit: one tree against another, receiver or not.

    taskset -c 1 python -m benchmarks.signals_cost --trees /work/main /work/wt-signals

Each round runs every candidate (tree x backend x receiver) in its own subprocess, in
round-robin order, and reports the median get-hit rate per candidate and the paired ratio
of each candidate to the first tree's same backend without receiver.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
import django
from django.conf import settings
backend, url, receiver, n = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
paths = {"memory": "lexigram_cache_django.backends.memory.MemoryCache",
         "redis": "lexigram_cache_django.backends.redis.RedisCache"}
conf = {"BACKEND": paths[backend], "LOCATION": url if backend == "redis" else "bench"}
settings.configure(SECRET_KEY="x", CACHES={"default": conf}, INSTALLED_APPS=[])
django.setup()
from django.core.cache import cache
heard = [0]
if receiver:
    from lexigram_cache_django.signals import cache_hit
    def on_hit(sender, **kw):
        heard[0] += 1
    cache_hit.connect(on_hit, weak=False)
cache.set("k", "value")
get = cache.get
for _ in range(n // 10):
    get("k")
best = []
for _ in range(5):
    t = time.perf_counter()
    for _ in range(n):
        get("k")
    best.append(n / (time.perf_counter() - t))
print(json.dumps({"rate": max(best), "heard": heard[0]}))
"""


def run(tree: str, backend: str, url: str, receiver: bool, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, backend, url, "1" if receiver else "0", str(n)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd="/tmp",
    ).stdout
    data = json.loads(out)
    if receiver and not data["heard"]:
        raise SystemExit(f"{tree}: the receiver heard nothing")
    return float(data["rate"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", nargs=2, required=True, help="baseline tree, candidate tree")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    base, cand = args.trees
    backends = [("memory", 200_000)] + ([("redis", 20_000)] if args.redis_url else [])
    candidates = []
    for backend, n in backends:
        candidates += [
            (base, backend, False, n),
            (cand, backend, False, n),
            (cand, backend, True, n),
        ]
    rates: dict[tuple[str, str, bool], list[float]] = {c[:3]: [] for c in candidates}
    for _ in range(args.rounds):
        for tree, backend, receiver, n in candidates:
            rates[(tree, backend, receiver)].append(run(tree, backend, args.redis_url, receiver, n))
        time.sleep(0.1)
    for tree, backend, receiver, _ in candidates:
        mine = rates[(tree, backend, receiver)]
        ref = rates[(base, backend, False)]
        ratios = [a / b for a, b in zip(mine, ref)]
        print(
            f"{backend:7} {os.path.basename(tree):12} receiver={receiver!s:5} "
            f"median {statistics.median(mine):>10,.0f} gets/s  "
            f"paired ratio {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f} max {max(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
