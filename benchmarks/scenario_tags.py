"""tags: invalidation cost against the number of tagged keys, and a tagged read's cost.

* ``invalidate_tags`` on a tag carried by 100 keys vs one carried by 100,000 keys, on
  every backend. Tags by version make both one write per tag; goal: the 100,000-key tag
  within 1.5x of the 100-key one (ops/s ratio >= 0.67).
* ``get`` of a tagged entry vs ``get`` of a plain one, same value size. The tag check
  rides on the value's round trip; goal on Redis: the tagged get takes <= 1.3x the plain
  get's time (ops/s ratio >= 0.77), and on Memcached. Memory's in-process check is
  reported only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from importlib.util import find_spec
from typing import Any

from benchmarks.harness import Case, Context
from benchmarks.servers import start_memcached, start_redis

DESCRIPTION = "invalidate_tags cost vs tagged keys (100 vs 100,000); tagged get vs plain get"

SMALL, LARGE = 100, 100_000
POOL = 1000
INVALIDATION_GOAL = (">=", 1 / 1.5)
TAGGED_GET_GOAL = (">=", 1 / 1.3)


def _backends(ctx: Context) -> list[tuple[str, str, str]]:
    found = [("memory", "lexigram_cache_django.backends.memory.MemoryCache", "tags-bench")]
    if find_spec("lexigram_cache_django.backends.redis") is not None:
        found.append(("redis", "lexigram_cache_django.backends.redis.RedisCache", start_redis(ctx)))
    if find_spec("lexigram_cache_django.backends.memcached") is not None:
        found.append(
            (
                "memcached",
                "lexigram_cache_django.backends.memcached.MemcachedCache",
                start_memcached(ctx),
            )
        )
    return found


def _fill(cache: Any, prefix: str, count: int, tag: str) -> None:
    """Write ``count`` entries carrying ``tag``, in batches."""
    for start in range(0, count, 1000):
        batch = {f"{prefix}:{i}": i for i in range(start, min(start + 1000, count))}
        cache.set_many(batch, timeout=3600, tags=[tag])


def _cases_for(ctx: Context, label: str, cache: Any, large: int) -> list[Case]:
    ctx.log(f"{label}: writing {SMALL} and {large:,} tagged entries")
    _fill(cache, "small", SMALL, "small-tag")
    _fill(cache, "large", large, "large-tag")
    invalidate = cache.invalidate_tags
    plain_keys = [f"plain:{i}" for i in range(POOL)]
    tagged_keys = [f"tagged:{i}" for i in range(POOL)]
    cache.set_many({k: "v" * 100 for k in plain_keys}, timeout=3600)
    cache.set_many(
        {k: "v" * 100 for k in tagged_keys}, timeout=3600, tags=["read-tag", "other-tag"]
    )
    get = cache.get
    plain = itertools.cycle(plain_keys).__next__
    tagged = itertools.cycle(tagged_keys).__next__
    assert get(tagged()) == "v" * 100, "tagged entries must read back"
    return [
        Case(
            name=f"{label}: invalidate_tags",
            candidates={
                f"tag on {SMALL} keys": lambda: invalidate("small-tag"),
                f"tag on {large:,} keys": lambda: invalidate("large-tag"),
            },
            baseline=f"tag on {SMALL} keys",
            goals={f"tag on {large:,} keys": INVALIDATION_GOAL},
        ),
        Case(
            name=f"{label}: get (2 tags) vs plain get",
            candidates={"plain get": lambda: get(plain()), "tagged get": lambda: get(tagged())},
            baseline="plain get",
            # The goal is the networked backends' (a round trip to hide the check in);
            # memory's in-process check is reported only.
            goals={"tagged get": TAGGED_GET_GOAL} if label != "memory" else {},
        ),
    ]


def cases(ctx: Context) -> Iterable[Case]:
    large = 10_000 if ctx.quick else LARGE
    out: list[Case] = []
    for label, path, location in _backends(ctx):
        options = {"MAX_ENTRIES": 2 * large + 10_000}
        cache = ctx.make_cache(path, location, TIMEOUT=3600, OPTIONS=options)
        out.extend(_cases_for(ctx, label, cache, large))
    return out
