"""redis: lexigram RedisCache vs raw redis-py, Django's RedisCache and django-redis.

One throw-away redis-server on a free loopback port, pinned to the benchmark's CPU, serves
every candidate in the same run (each in its own key namespace). The baseline is the raw
client doing the bare command: ``redis.Redis`` (sync) and ``redis.asyncio.Redis`` (async)
on the same pool settings as ours, with hiredis; it returns bytes and decodes nothing.
Django's RedisCache and django-redis run with their defaults; their ``a*`` methods are
Django's ``sync_to_async`` wrappers, which is what their users get.

``redis-py+codec`` (batch ops only) is the raw client plus our codec's per-value work and
nothing else: the floor for any backend that stores this codec's payloads, so the gap
between it and RedisCache is the backend's own overhead.

After each op, extra rows give RedisCache's paired ratio against Django's RedisCache and
django-redis, from the same rounds.

``LEXIGRAM_BENCH_REDIS_SERIALIZER=orjson`` (or msgpack) runs RedisCache, and the floor, with
another serializer than the default signed pickle.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Case, Context, Op, Result, cycle_of, cycling, paired_stats, quartiles
from benchmarks.servers import start_redis

DESCRIPTION = (
    "RedisCache vs raw redis-py / Django RedisCache / django-redis (goals vs raw: >=0.9x "
    "get/set/incr/delete, >=0.85x get_many/set_many, >=0.8x aget/aset/aget_many)"
)

OURS = "RedisCache"
RAW = "redis-py"
FLOOR = "redis-py+codec"
DJANGO = "DjangoRedisCache"
DJANGO_REDIS = "django-redis"
OURS_BACKEND = "lexigram_cache_django.backends.redis.RedisCache"
SERIALIZER_ENV = "LEXIGRAM_BENCH_REDIS_SERIALIZER"
TIMEOUT = 300

POOL = 1000
BATCH = 100
HIT_KEYS = [f"bench:hit:{i:04d}" for i in range(POOL)]
HIT_VALUES = {k: f"value-{i:04d}" for i, k in enumerate(HIT_KEYS)}
SET_KEYS = [f"bench:set:{i:04d}" for i in range(POOL)]
ASET_KEYS = [f"bench:aset:{i:04d}" for i in range(POOL)]
DEL_KEYS = [f"bench:del:{i:04d}" for i in range(POOL)]
STR_100 = "s" * 100
GET_MANY_GROUPS = [HIT_KEYS[i : i + BATCH] for i in range(0, POOL, BATCH)]
SET_MANY_GROUPS = [
    {f"bench:set-many:{i + j:04d}": f"v{j}" for j in range(BATCH)} for i in range(0, POOL, BATCH)
]
COUNTER_KEY = "bench:counter"

SYNC_GOAL = {OURS: (">=", 0.9)}
BATCH_GOAL = {OURS: (">=", 0.85)}
ASYNC_GOAL = {OURS: (">=", 0.8)}


class Raw:
    """The bare commands on redis-py, keys under ``raw:``, values as plain bytes."""

    def __init__(self, sync: Any, asyn: Any, codec: Any) -> None:
        self.sync = sync
        self.asyn = asyn
        self.codec = codec

    def op_get_hit(self) -> Op:
        get, nxt = self.sync.get, cycle_of([f"raw:{k}" for k in HIT_KEYS])
        return lambda: get(nxt())

    def op_set(self) -> Op:
        set_, nxt, value = self.sync.set, cycle_of([f"raw:{k}" for k in SET_KEYS]), STR_100.encode()
        return lambda: set_(nxt(), value, px=TIMEOUT * 1000)

    def op_incr(self) -> Op:
        incrby = self.sync.incrby
        return lambda: incrby(f"raw:{COUNTER_KEY}", 1)

    def op_delete(self) -> Op:
        delete, nxt = self.sync.delete, cycle_of([f"raw:{k}" for k in DEL_KEYS])
        return lambda: delete(nxt())

    def op_get_many(self) -> Op:
        mget, nxt = self.sync.mget, cycle_of([[f"raw:{k}" for k in g] for g in GET_MANY_GROUPS])
        return lambda: mget(nxt())

    def op_set_many(self) -> Op:
        pipeline = self.sync.pipeline
        groups = [{f"raw:{k}": v.encode() for k, v in g.items()} for g in SET_MANY_GROUPS]
        nxt = cycle_of(groups)

        def run() -> Any:
            pipe = pipeline(transaction=False)
            for key, value in nxt().items():
                pipe.set(key, value, px=TIMEOUT * 1000)
            return pipe.execute()

        return run

    def op_aget(self) -> Op:
        aget, nxt = self.asyn.get, cycle_of([f"raw:{k}" for k in HIT_KEYS])
        return lambda: aget(nxt())

    def op_aset(self) -> Op:
        aset, nxt, value = (
            self.asyn.set,
            cycle_of([f"raw:{k}" for k in ASET_KEYS]),
            STR_100.encode(),
        )
        return lambda: aset(nxt(), value, px=TIMEOUT * 1000)

    def op_aget_many(self) -> Op:
        amget, nxt = self.asyn.mget, cycle_of([[f"raw:{k}" for k in g] for g in GET_MANY_GROUPS])
        return lambda: amget(nxt())

    # The floor: raw commands on keys holding our payloads, plus only the codec's work.

    def op_floor_get_many(self) -> Op:
        mget, decode = self.sync.mget, self.codec.decode_entry
        groups = [[f"floor:{k}" for k in g] for g in GET_MANY_GROUPS]
        nxt = cycle_of(list(zip(groups, GET_MANY_GROUPS)))

        def run() -> dict[str, Any]:
            made, originals = nxt()
            replies = mget(made)
            return {k: decode(v)[0] for k, v in zip(originals, replies) if v is not None}

        return run

    def op_floor_set_many(self) -> Op:
        pipeline, encode = self.sync.pipeline, self.codec.encode
        nxt = cycle_of(SET_MANY_GROUPS)

        def run() -> Any:
            pipe = pipeline(transaction=False)
            for key, value in nxt().items():
                pipe.set(f"floor:{key}", encode(value), px=TIMEOUT * 1000)
            return pipe.execute()

        return run

    def op_floor_aget_many(self) -> Op:
        amget, decode = self.asyn.mget, self.codec.decode_entry
        groups = [[f"floor:{k}" for k in g] for g in GET_MANY_GROUPS]
        nxt = cycle_of(list(zip(groups, GET_MANY_GROUPS)))

        async def run() -> dict[str, Any]:
            made, originals = nxt()
            replies = await amget(made)
            return {k: decode(v)[0] for k, v in zip(originals, replies) if v is not None}

        return run


# Op factories: applied to each candidate, one key iterator per cache (see cycling()).
op_get_hit = cycling("get", HIT_KEYS)
op_set = cycling("set", SET_KEYS, STR_100)
op_incr = cycling("incr", [COUNTER_KEY])
op_delete = cycling("delete", DEL_KEYS)
op_get_many = cycling("get_many", GET_MANY_GROUPS)
op_set_many = cycling("set_many", SET_MANY_GROUPS)
op_aget = cycling("aget", HIT_KEYS)
op_aset = cycling("aset", ASET_KEYS, STR_100)
op_aget_many = cycling("aget_many", GET_MANY_GROUPS)


def _cross_rows(results: list[Result], other: str) -> list[Result]:
    """RedisCache's paired ratio vs ``other`` (same rounds), as extra table rows."""
    by_name = {r.candidate: r for r in results}
    ours, theirs = by_name.get(OURS), by_name.get(other)
    if ours is None or theirs is None:
        return []
    ratios, ratio = paired_stats(ours.samples, theirs.samples)
    p25, p75 = quartiles(ratios)
    return [
        Result(
            scenario=ours.scenario,
            op=ours.op,
            candidate=f"{OURS} / {other}",
            baseline=other,
            median=statistics.median(ours.samples),
            ratio=ratio,
            ratio_p25=p25,
            ratio_p75=p75,
            ratios=ratios,
            batch=ours.batch,
            note="same-run paired ratio",
        )
    ]


def run(ctx: Context) -> list[Result]:
    try:
        import redis
        import redis.asyncio
    except ImportError:
        ctx.skip("redis-py is not installed (pip install 'lexigram-cache-django[redis]')")
    url = start_redis(ctx)  # free loopback port, pinned to our CPU, stopped at the end
    ctx.log(f"redis-server on {url}, hiredis: {redis.utils.HIREDIS_AVAILABLE}")

    serializer = os.environ.get(SERIALIZER_ENV, "pickle")
    ours = ctx.make_cache(
        OURS_BACKEND, url, TIMEOUT=TIMEOUT, KEY_PREFIX="ours", OPTIONS={"SERIALIZER": serializer}
    )
    ctx.log(f"RedisCache serializer: {serializer}")
    ctx.add_cleanup(lambda: ctx.run_async(ours.aclose()))
    # The raw clients get exactly our pool settings (sync: blocking pool; async: plain pool).
    sync_pool = redis.BlockingConnectionPool.from_url(url, **ours._client._sync_kwargs)
    async_pool = redis.asyncio.ConnectionPool.from_url(url, **ours._client._async_kwargs)
    raw = Raw(
        redis.Redis(connection_pool=sync_pool),
        redis.asyncio.Redis(connection_pool=async_pool),
        ours.codec,
    )
    ctx.add_cleanup(sync_pool.disconnect)
    ctx.add_cleanup(lambda: ctx.run_async(async_pool.aclose()))

    caches: dict[str, Any] = {OURS: ours}
    caches[DJANGO] = ctx.make_cache(
        "django.core.cache.backends.redis.RedisCache", url, TIMEOUT=TIMEOUT, KEY_PREFIX="dj"
    )
    try:
        caches[DJANGO_REDIS] = ctx.make_cache(
            "django_redis.cache.RedisCache", url, TIMEOUT=TIMEOUT, KEY_PREFIX="djr"
        )
    except ImportError:
        ctx.log("django-redis not installed: its column is left out")

    for cache in caches.values():
        cache.set_many(HIT_VALUES)
        cache.set(COUNTER_KEY, 0)
    raw.sync.mset({f"raw:{k}": v.encode() for k, v in HIT_VALUES.items()})
    raw.sync.mset({f"floor:{k}": ours.codec.encode(v) for k, v in HIT_VALUES.items()})
    raw.sync.set(f"raw:{COUNTER_KEY}", 0)

    def case(
        name: str,
        factory: Callable[[Any], Op],
        raw_op: Op,
        goals: dict[str, tuple[str, float]],
        floor_op: Op | None = None,
    ) -> Case:
        candidates = {RAW: raw_op}
        if floor_op is not None:
            candidates[FLOOR] = floor_op
        candidates.update({label: factory(cache) for label, cache in caches.items()})
        return Case(name=name, candidates=candidates, baseline=RAW, goals=goals)

    cases = [
        case("get hit (10B str)", op_get_hit, raw.op_get_hit(), SYNC_GOAL),
        case("set 100B str", op_set, raw.op_set(), SYNC_GOAL),
        case("incr", op_incr, raw.op_incr(), SYNC_GOAL),
        case("delete (absent key)", op_delete, raw.op_delete(), SYNC_GOAL),
        case(
            f"get_many({BATCH})", op_get_many, raw.op_get_many(), BATCH_GOAL,
            raw.op_floor_get_many(),
        ),
        case(
            f"set_many({BATCH})", op_set_many, raw.op_set_many(), BATCH_GOAL,
            raw.op_floor_set_many(),
        ),
        case("aget hit (10B str)", op_aget, raw.op_aget(), ASYNC_GOAL),
        case("aset 100B str", op_aset, raw.op_aset(), ASYNC_GOAL),
        case(
            f"aget_many({BATCH})", op_aget_many, raw.op_aget_many(), ASYNC_GOAL,
            raw.op_floor_aget_many(),
        ),
    ]  # fmt: skip

    results: list[Result] = []
    for c in cases:
        rows = ctx.measure(c)
        results.extend(rows)
        for other in (DJANGO, DJANGO_REDIS):
            results.extend(_cross_rows(rows, other))
    return results
