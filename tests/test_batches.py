"""get_many / set_many on every backend: what the batch fast paths must not change.

The batch paths decode plain strings inline, make keys through a memo and encode all-str
batches in one pass; these tests pin the results to what one-key calls give, for the
values those shortcuts treat specially and the ones they hand back to the general path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.exceptions import CacheSerializationError

MIXED: dict[str, Any] = {
    "plain": "text",
    "empty": "",
    "unicode": "snowman \u2603 and \U0001f600",
    "surrogate": "a lone surrogate \ud800 in it",
    "digits": "12345",  # a str, not an int, though it looks like one
    "int": 42,
    "negative": -7,
    "bool": True,
    "float": 1.5,
    "bytes": b"\x00\xff raw",
    "dict": {"a": [1, 2, {"b": None}]},
    "none": None,
}


@pytest.fixture
def cache(make_cache: Callable[..., LexigramCache]) -> LexigramCache:
    return make_cache()


def test_set_many_then_get_many_round_trips_every_kind_of_value(cache: LexigramCache) -> None:
    assert cache.set_many(MIXED) == []
    got = cache.get_many([*MIXED, "absent"])
    assert got == MIXED
    for key, value in MIXED.items():  # one-key reads agree, types included
        assert cache.get(key, "default") == value
        assert type(cache.get(key)) is type(value)


@pytest.mark.parametrize(
    "values",
    [
        {f"s{i}": f"value-{i}" for i in range(100)},  # the all-str batch
        {f"s{i}": f"v\ud800{i}" for i in range(10)},  # all str, none valid strict UTF-8
        {**{f"s{i}": f"value-{i}" for i in range(50)}, "odd": 3, "more": [1]},
    ],
    ids=["all-str", "all-surrogates", "mostly-str"],
)
def test_batches_of_strings_round_trip(cache: LexigramCache, values: dict[str, Any]) -> None:
    assert cache.set_many(values) == []
    assert cache.get_many(list(values)) == values
    assert cache.get_many(reversed(list(values))) == values  # any iterable, any order


async def test_async_batches_agree_with_sync(cache: LexigramCache) -> None:
    assert await cache.aset_many(MIXED) == []
    assert await cache.aget_many([*MIXED, "absent"]) == MIXED
    assert cache.get_many(list(MIXED)) == MIXED


def test_get_many_takes_generators_duplicates_and_versions(cache: LexigramCache) -> None:
    cache.set_many({"a": 1, "b": 2})
    cache.set("a", "v2", version=2)
    assert cache.get_many(k for k in ("a", "b", "c")) == {"a": 1, "b": 2}
    assert cache.get_many(["a", "a", "b"]) == {"a": 1, "b": 2}
    assert cache.get_many(["a", "b"], version=2) == {"a": "v2"}
    assert cache.get_many([]) == {}
    assert cache.get_many(iter([])) == {}


def test_get_many_counts_distinct_hits_and_misses(cache: LexigramCache) -> None:
    cache.set_many({"a": "x", "b": "y"})
    before = cache.stats()
    cache.get_many(["a", "b", "a"])  # a key named twice is one hit, not a miss
    cache.get_many(["a", "missing", "missing"])
    after = cache.stats()
    assert after["hits"] - before["hits"] == 3
    assert after["misses"] - before["misses"] == 1


def test_set_many_reports_nothing_failed_and_overwrites(cache: LexigramCache) -> None:
    assert cache.set_many({"k": "old", "n": 1}) == []
    assert cache.set_many({"k": "new", "n": "one"}) == []
    assert cache.get_many(["k", "n"]) == {"k": "new", "n": "one"}
    cache.set_many({"counter": 10})
    assert cache.incr("counter", 5) == 15  # ints written by set_many stay incr-able


def test_set_many_with_an_unserializable_value_stores_nothing_of_it(
    make_cache: Callable[..., LexigramCache], backend_kind: str
) -> None:
    if backend_kind == "memory":
        pytest.skip("the memory backend keeps Python objects (as LocMemCache): no serializer")
    cache = make_cache(SERIALIZER="orjson")
    with pytest.raises(CacheSerializationError, match="object"):
        cache.set_many({"good": "text", "bad": object()})
    assert cache.get("bad") is None
