"""memcached: lexigram MemcachedCache vs raw pymemcache and Django's PyMemcacheCache.

One throw-away memcached on a free loopback port, pinned to the benchmark's CPU, serves
every candidate in the same run (each under its own key prefix). Sync ops are divided by
the raw client doing the bare command: pymemcache's own ``Client`` class with exactly our
connection settings, storing and returning plain bytes (no codec): what a pymemcache
user gets (ours runs on a subclass with a cheaper key check). Async ops are divided by
Django's ``PyMemcacheCache``, whose ``a*`` methods are ``sync_to_async`` wrappers: that is
what the issue's goal compares. Both of our async paths are measured: emcache on the loop (the
default with one server) and ``ASYNC_CLIENT="thread"`` (worker threads), plus raw emcache
for reference.

``pymemcache+codec`` (batch ops) is the raw client plus our codec's per-value work and
nothing else: the floor for anything storing this codec's payloads. The default codec is
signed pickle (about 1.5 us per value each way); to see the backend with a cheaper one, set
``LEXIGRAM_BENCH_MEMCACHED_SERIALIZER=orjson`` (or ``msgpack``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

from benchmarks.harness import Case, Context, Op, Result, cycle_of, cycling
from benchmarks.servers import start_memcached

DESCRIPTION = (
    "MemcachedCache vs raw pymemcache / Django PyMemcacheCache (goals vs raw: >=0.85x "
    "get/set/incr/delete/get_many/set_many; aget >=3x PyMemcacheCache.aget)"
)

OURS = "MemcachedCache"
OURS_THREAD = "MemcachedCache[thread]"
RAW = "pymemcache"
FLOOR = "pymemcache+codec"
DJANGO = "PyMemcacheCache"
RAW_ASYNC = "emcache"
OURS_BACKEND = "lexigram_cache_django.backends.memcached.MemcachedCache"
DJANGO_BACKEND = "django.core.cache.backends.memcached.PyMemcacheCache"
TIMEOUT = 300
SERIALIZER_ENV = "LEXIGRAM_BENCH_MEMCACHED_SERIALIZER"

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

SYNC_GOAL = {OURS: (">=", 0.85)}
AGET_GOAL = {OURS: (">=", 3.0)}


def _raw(keys: list[str]) -> list[str]:
    return [f"raw:{k}" for k in keys]


class Raw:
    """The bare commands: pymemcache (sync), emcache (async), keys under ``raw:``."""

    def __init__(self, sync: Any, asyn: Any, codec: Any) -> None:
        self.sync = sync
        self.asyn = asyn
        self.codec = codec

    def op_get_hit(self) -> Op:
        get, nxt = self.sync.get, cycle_of(_raw(HIT_KEYS))
        return lambda: get(nxt())

    def op_set(self) -> Op:
        set_, nxt, value = self.sync.set, cycle_of(_raw(SET_KEYS)), STR_100.encode()
        return lambda: set_(nxt(), value, TIMEOUT, noreply=False)

    def op_incr(self) -> Op:
        incr, key = self.sync.incr, f"raw:{COUNTER_KEY}"
        return lambda: incr(key, 1, noreply=False)

    def op_delete(self) -> Op:
        delete, nxt = self.sync.delete, cycle_of(_raw(DEL_KEYS))
        return lambda: delete(nxt(), noreply=False)

    def op_get_many(self) -> Op:
        get_many, nxt = self.sync.get_many, cycle_of([_raw(g) for g in GET_MANY_GROUPS])
        return lambda: get_many(nxt())

    def op_set_many(self) -> Op:
        groups = [{f"raw:{k}": v.encode() for k, v in g.items()} for g in SET_MANY_GROUPS]
        set_many, nxt = self.sync.set_many, cycle_of(groups)
        return lambda: set_many(nxt(), TIMEOUT, noreply=False)

    def op_aget(self) -> Op:
        aget, nxt = self.asyn.get, cycle_of([k.encode() for k in _raw(HIT_KEYS)])
        return lambda: aget(nxt())

    def op_aset(self) -> Op:
        aset, nxt, value = (
            self.asyn.set,
            cycle_of([k.encode() for k in _raw(ASET_KEYS)]),
            b"s" * 100,
        )
        return lambda: aset(nxt(), value, exptime=TIMEOUT)

    def op_aget_many(self) -> Op:
        groups = [[k.encode() for k in _raw(g)] for g in GET_MANY_GROUPS]
        aget_many, nxt = self.asyn.get_many, cycle_of(groups)
        return lambda: aget_many(nxt())

    # The floor: bare commands on keys holding our payloads, plus only the codec's work.

    def op_floor_get_many(self) -> Op:
        get_many, decode = self.sync.get_many, self.codec.decode_entry
        groups = [[f"floor:{k}" for k in g] for g in GET_MANY_GROUPS]
        nxt = cycle_of(groups)
        return lambda: {k: decode(v)[0] for k, v in get_many(nxt()).items()}

    def op_floor_set_many(self) -> Op:
        set_many, encode, nxt = self.sync.set_many, self.codec.encode, cycle_of(SET_MANY_GROUPS)
        return lambda: set_many(
            {f"floor:{k}": encode(v) for k, v in nxt().items()}, TIMEOUT, noreply=False
        )


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


def run(ctx: Context) -> list[Result]:
    try:
        import pymemcache  # noqa: F401
    except ImportError:
        ctx.skip("pymemcache is not installed (pip install 'lexigram-cache-django[memcached]')")
    emcache_installed = find_spec("emcache") is not None
    location = start_memcached(ctx)
    host, port = location.rsplit(":", 1)
    ctx.log(f"memcached on {location}; emcache {'installed' if emcache_installed else 'missing'}")

    from pymemcache.client.base import Client, normalize_server_spec

    from lexigram_cache_django.backends.memcached import aclose_async_clients
    from lexigram_cache_django.backends.memcached.client import HASH_CLIENT_ONLY

    options = {"SERIALIZER": os.environ.get(SERIALIZER_ENV, "pickle")}
    ctx.log(f"our codec: {options['SERIALIZER']}")
    ours = ctx.make_cache(
        OURS_BACKEND, location, TIMEOUT=TIMEOUT, KEY_PREFIX="ours", OPTIONS=options
    )
    ctx.add_cleanup(lambda: ctx.run_async(aclose_async_clients()))
    thread = ctx.make_cache(
        OURS_BACKEND,
        location,
        TIMEOUT=TIMEOUT,
        KEY_PREFIX="ours",
        OPTIONS={**options, "ASYNC_CLIENT": "thread"},
    )
    django = ctx.make_cache(DJANGO_BACKEND, location, TIMEOUT=TIMEOUT, KEY_PREFIX="dj")
    # pymemcache's own Client class with exactly our connection settings.
    raw_kwargs = {k: v for k, v in ours._client.kwargs.items() if k not in HASH_CLIENT_ONLY}
    sync_raw = Client(normalize_server_spec(location), **raw_kwargs)
    ctx.add_cleanup(sync_raw.close)
    async_raw = None
    if emcache_installed:
        import emcache

        address = emcache.MemcachedHostAddress(host, int(port))
        async_raw = ctx.run_async(emcache.create_client([address], timeout=1.0))
        ctx.run_async(async_raw.get(b"warm-up"))  # connect now, while the loop runs
        ctx.add_cleanup(lambda: ctx.run_async(async_raw.close()))
    raw = Raw(sync_raw, async_raw, ours.codec)

    for cache in (ours, django):
        cache.set_many(HIT_VALUES, TIMEOUT)
        cache.set(COUNTER_KEY, 0)
    sync_raw.set_many({f"raw:{k}": v.encode() for k, v in HIT_VALUES.items()}, TIMEOUT)
    sync_raw.set_many({f"floor:{k}": ours.codec.encode(v) for k, v in HIT_VALUES.items()})
    sync_raw.set(f"raw:{COUNTER_KEY}", b"0", TIMEOUT)

    def sync_case(
        name: str, factory: Callable[[Any], Op], raw_op: Op, floor: Op | None = None
    ) -> Case:
        candidates = {RAW: raw_op}
        if floor is not None:
            candidates[FLOOR] = floor
        candidates[OURS] = factory(ours)
        candidates[DJANGO] = factory(django)
        return Case(name=name, candidates=candidates, baseline=RAW, goals=SYNC_GOAL)

    def async_case(
        name: str, factory: Callable[[Any], Op], raw_op: Op | None, goals: dict[str, Any]
    ) -> Case:
        candidates = {DJANGO: factory(django), OURS: factory(ours), OURS_THREAD: factory(thread)}
        if raw_op is not None:
            candidates[RAW_ASYNC] = raw_op
        return Case(name=name, candidates=candidates, baseline=DJANGO, goals=goals)

    cases = [
        sync_case("get hit (10B str)", op_get_hit, raw.op_get_hit()),
        sync_case("set 100B str", op_set, raw.op_set()),
        sync_case("incr", op_incr, raw.op_incr()),
        sync_case("delete (absent key)", op_delete, raw.op_delete()),
        sync_case(f"get_many({BATCH})", op_get_many, raw.op_get_many(), raw.op_floor_get_many()),
        sync_case(f"set_many({BATCH})", op_set_many, raw.op_set_many(), raw.op_floor_set_many()),
        async_case("aget hit (10B str)", op_aget, async_raw and raw.op_aget(), AGET_GOAL),
        async_case("aset 100B str", op_aset, async_raw and raw.op_aset(), {}),
        async_case(f"aget_many({BATCH})", op_aget_many, async_raw and raw.op_aget_many(), {}),
    ]
    return ctx.measure_all(cases)
