"""What the signals cost on a get hit: one tree against another, receiver or not.

    taskset -c 1 python -m benchmarks.signals_cost --trees /work/main /work/wt-signals

Every candidate (tree x backend x receiver) runs in its own long-lived process; each round
asks each candidate in turn for one short timed batch (~50 ms), so load on a shared machine
falls on all of them alike. Reports the median get-hit rate per candidate and the paired ratio
of each candidate to the first tree's same backend without receiver.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
import django
from django.conf import settings
backend, url, receiver, n = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
paths = {"memory": "lexigram_cache_django.backends.memory.MemoryCache",
         "redis": "lexigram_cache_django.backends.redis.RedisCache"}
conf = {"BACKEND": paths[backend], "LOCATION": url if backend == "redis" else "bench"}
if backend == "redis":  # a loaded machine must not trip the breaker on a slow reply
    conf["OPTIONS"] = {"SOCKET_TIMEOUT": 10, "CIRCUIT_OPEN_ON_TIMEOUT": False}
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
print("ready", flush=True)
for line in sys.stdin:  # one timed batch per line, so candidates interleave finely
    t = time.perf_counter()
    for _ in range(n):
        get("k")
    rate = n / (time.perf_counter() - t)
    assert get("k") == "value", "not a hit: is the server up?"
    print(json.dumps({"rate": rate, "heard": heard[0]}), flush=True)
"""


class Child:
    """A candidate in its own process, timing one batch of gets per request."""

    def __init__(self, tree: str, backend: str, url: str, receiver: bool, n: int) -> None:
        self.receiver = receiver
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, backend, url, "1" if receiver else "0", str(n)],
            env={**os.environ, "PYTHONPATH": tree},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd="/tmp",
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def batch(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        data = json.loads(self.proc.stdout.readline())
        if self.receiver and not data["heard"]:
            raise SystemExit("the receiver heard nothing")
        return float(data["rate"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", nargs=2, required=True, help="baseline tree, candidate tree")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    base, cand = args.trees
    backends = [("memory", 50_000)] + ([("redis", 3_000)] if args.redis_url else [])
    candidates = []
    for backend, n in backends:
        candidates += [
            (base, backend, False, n),
            (cand, backend, False, n),
            (cand, backend, True, n),
        ]
    rates: dict[tuple[str, str, bool], list[float]] = {c[:3]: [] for c in candidates}
    children = {c[:3]: Child(c[0], c[1], args.redis_url, c[2], c[3]) for c in candidates}
    for _ in range(args.rounds):
        for key, child in children.items():
            rates[key].append(child.batch())
    for child in children.values():
        child.close()
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
