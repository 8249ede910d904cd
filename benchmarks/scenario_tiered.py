"""tiered: TieredCache (memory L1 over Redis L2) vs our RedisCache, same server, same run.

An L1 hit should cost a dictionary lookup, not a round trip: goal >= 20x a Redis ``get``
through RedisCache, sync and async. A miss in both tiers costs the L1 lookup plus the
same L2 read: goal at most 1.1x a plain RedisCache miss (ratio >= 0.91 in ops/s).
The tiered alias's bus is up (its listener subscribed) before anything is measured, so
the L1 is in use exactly as in production.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Case, Context, Result, cycling
from benchmarks.servers import start_redis, wait_for_bus

DESCRIPTION = (
    "TieredCache vs RedisCache (goals: L1 hit get/aget >= 20x, miss >= 0.91x, i.e. <= 1.1x cost)"
)

REDIS = "RedisCache"
TIERED = "TieredCache"
POOL = 1000
HIT_KEYS = [f"bench:hit:{i:04d}" for i in range(POOL)]
MISS_KEYS = [f"bench:miss:{i:04d}" for i in range(POOL)]
VALUES = {k: f"value-{i:04d}" for i, k in enumerate(HIT_KEYS)}
TIMEOUT = 300

op_get = cycling("get", HIT_KEYS)
op_aget = cycling("aget", HIT_KEYS)
op_miss = cycling("get", MISS_KEYS)
op_amiss = cycling("aget", MISS_KEYS)


def run(ctx: Context) -> list[Result]:
    try:
        import redis  # noqa: F401
    except ImportError:
        ctx.skip("redis-py is not installed")
    url = start_redis(ctx)
    ours = ctx.make_cache(
        "lexigram_cache_django.backends.redis.RedisCache", url, TIMEOUT=TIMEOUT, KEY_PREFIX="r"
    )
    tiered: Any = ctx.make_cache(
        "lexigram_cache_django.backends.tiered.TieredCache",
        TIMEOUT=TIMEOUT,
        KEY_PREFIX="t",
        OPTIONS={
            "L1": {
                "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
                "LOCATION": "bench-tiered-l1",
                "OPTIONS": {"MAX_ENTRIES": 10 * POOL},
            },
            "L2": {"BACKEND": "lexigram_cache_django.backends.redis.RedisCache", "LOCATION": url},
        },
    )
    ctx.add_cleanup(lambda: ctx.run_async(ours.aclose()))
    ctx.log(f"tiered bus: {wait_for_bus(tiered)}")
    ours.set_many(VALUES)
    tiered.set_many(VALUES)  # set_many fills L1 too
    caches = {REDIS: ours, TIERED: tiered}

    def case(name: str, factory: Any, goal: tuple[str, float]) -> Case:
        return Case(
            name=name,
            candidates={label: factory(cache) for label, cache in caches.items()},
            baseline=REDIS,
            goals={TIERED: goal},
        )

    results = ctx.measure_all(
        [
            case("get hit (L1 for tiered)", op_get, (">=", 20.0)),
            case("aget hit (L1 for tiered)", op_aget, (">=", 20.0)),
            case("get miss (both tiers)", op_miss, (">=", 0.91)),
            case("aget miss (both tiers)", op_amiss, (">=", 0.91)),
        ]
    )
    stats = tiered.stats()
    ctx.log(
        f"tiered: l1_hits {stats['l1_hits']}, l2_hits {stats['l2_hits']},"
        f" misses {stats['tier_misses']}"
    )
    return results
