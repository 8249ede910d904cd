"""memory: lexigram MemoryCache vs Django's LocMemCache, sync and async API.

Both backends get their own LOCATION, TIMEOUT 300 and MAX_ENTRIES 100_000 (so culling never
kicks in). Ops call bound backend methods directly (not through ``django.core.cache.cache``)
so the proxy's per-call overhead, identical for both, does not dilute the ratios.

For an A/A noise check, point the candidate at LocMemCache itself:
``LEXIGRAM_BENCH_MEMORY_BACKEND=django.core.cache.backends.locmem.LocMemCache``; every ratio
should then be ~1.00x and the IQR column shows the harness's noise floor.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Case, Context, Op, cycling

DESCRIPTION = (
    "MemoryCache vs Django LocMemCache (goals: >=2x sync, >=15x aget/aset, >=100x aget_many)"
)

BACKEND_ENV = "LEXIGRAM_BENCH_MEMORY_BACKEND"
OURS_BACKEND = "lexigram_cache_django.backends.memory.MemoryCache"
LOCMEM_BACKEND = "django.core.cache.backends.locmem.LocMemCache"
OURS = "MemoryCache"
BASE = "LocMemCache"
PARAMS: dict[str, Any] = {"TIMEOUT": 300, "OPTIONS": {"MAX_ENTRIES": 100_000}}

POOL = 1000  # distinct keys per op, so we do not hammer one dict slot
BATCH = 100  # keys per get_many/set_many
HIT_KEYS = [f"bench:hit:{i:04d}" for i in range(POOL)]
HIT_VALUES = {k: f"value-{i:04d}" for i, k in enumerate(HIT_KEYS)}
MISS_KEYS = [f"bench:miss:{i:04d}" for i in range(POOL)]
SET_KEYS = [f"bench:set:{i:04d}" for i in range(POOL)]
ASET_KEYS = [f"bench:aset:{i:04d}" for i in range(POOL)]
STR_100 = "s" * 100
DICT_KEYS_SET = [f"bench:dict-set:{i:03d}" for i in range(100)]
DICT_KEYS_GET = [f"bench:dict-get:{i:03d}" for i in range(100)]
GET_MANY_GROUPS = [HIT_KEYS[i : i + BATCH] for i in range(0, POOL, BATCH)]
SET_MANY_GROUPS = [
    {f"bench:set-many:{i + j:04d}": f"v{j}" for j in range(BATCH)} for i in range(0, POOL, BATCH)
]
COUNTER_KEY = "bench:counter"

SYNC_GOAL = {OURS: (">=", 2.0)}
ASYNC_GOAL = {OURS: (">=", 15.0)}
ASYNC_MANY_GOAL = {OURS: (">=", 100.0)}


def big_dict() -> dict[str, str | int]:
    """~100 short str -> str/int items, ~10 KB pickled (a typical cached row/context blob)."""
    return {
        f"field_{i:03d}": (i * 1_000_003 if i % 2 else f"value-{i:03d}-" + "x" * 160)
        for i in range(100)
    }


BIG = big_dict()
assert 9_000 <= len(pickle.dumps(BIG, pickle.HIGHEST_PROTOCOL)) <= 11_000


# Op factories: applied to each candidate, one key iterator per cache (see cycling()).
op_get_hit = cycling("get", HIT_KEYS)
op_get_miss = cycling("get", MISS_KEYS)
op_set_str = cycling("set", SET_KEYS, STR_100)
op_set_dict = cycling("set", DICT_KEYS_SET, BIG)
op_get_dict = cycling("get", DICT_KEYS_GET)
op_get_many = cycling("get_many", GET_MANY_GROUPS)
op_set_many = cycling("set_many", SET_MANY_GROUPS)
op_incr = cycling("incr", [COUNTER_KEY])
op_aget_hit = cycling("aget", HIT_KEYS)
op_aset = cycling("aset", ASET_KEYS, STR_100)
op_aget_many = cycling("aget_many", GET_MANY_GROUPS)


def preload(cache: Any) -> None:
    """Untimed: the keys that 'hit' ops read must exist, the counter must be an int."""
    cache.set_many(HIT_VALUES)
    cache.set_many(dict.fromkeys(DICT_KEYS_GET, BIG))
    cache.set(COUNTER_KEY, 0)


def cases(ctx: Context) -> list[Case]:
    backend = os.environ.get(BACKEND_ENV, OURS_BACKEND)
    try:
        ours = ctx.make_cache(backend, "bench-memory-ours", **PARAMS)
    except ImportError as exc:
        ctx.skip(f"{backend} is not importable ({exc.__class__.__name__}: {exc})")
    if backend != OURS_BACKEND:
        ctx.log(f"candidate {OURS!r} overridden by ${BACKEND_ENV}={backend}")
    base = ctx.make_cache(LOCMEM_BACKEND, "bench-memory-locmem", **PARAMS)
    caches = {OURS: ours, BASE: base}
    for cache in caches.values():
        preload(cache)

    def case(
        name: str,
        factory: Callable[[Any], Op],
        goals: dict[str, tuple[str, float]] | None = None,
        note: str = "",
    ) -> Case:
        return Case(
            name=name,
            candidates={label: factory(cache) for label, cache in caches.items()},
            baseline=BASE,
            goals=goals or {},
            note=note,
        )

    def reset_counters() -> None:
        for cache in caches.values():
            cache.set(COUNTER_KEY, 0)

    incr_case = case("incr", op_incr, SYNC_GOAL)
    incr_case.setup = reset_counters

    return [
        case("get hit", op_get_hit, SYNC_GOAL),
        case("get miss", op_get_miss, SYNC_GOAL),
        case("set 100B str", op_set_str, SYNC_GOAL),
        case("set 10KB dict", op_set_dict, note="report only"),
        case("get 10KB dict", op_get_dict, note="report only"),
        case(f"get_many({BATCH})", op_get_many, SYNC_GOAL),
        case(f"set_many({BATCH})", op_set_many, SYNC_GOAL),
        incr_case,
        case("aget hit", op_aget_hit, ASYNC_GOAL),
        case("aset 100B str", op_aset, ASYNC_GOAL),
        case(f"aget_many({BATCH})", op_aget_many, ASYNC_MANY_GOAL),
    ]
