"""The memory backend's ttl/expire/persist/keys/delete_pattern answer as RedisCache's do.

Each test body runs on both backends (a real redis-server for Redis), so the memory
backend is checked against Redis's answers, not against a description of them.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from lexigram_cache_django.backends.patterns import glob_regex
from tests.conftest import backend_config, build_backend
from tests.servers import Server

KINDS = ("memory", "redis")
Maker = Callable[..., Any]


@pytest.fixture(params=KINDS)
def make(request: pytest.FixtureRequest) -> Iterator[Maker]:
    """``make(KEY_PREFIX=..., VERSION=..., TIMEOUT=...)``: a fresh backend of each kind."""
    made: list[Any] = []

    def factory(**params: Any) -> Any:
        config = backend_config(request.param, request)
        config["KEY_PREFIX"] = params.pop("KEY_PREFIX", "p") + uuid.uuid4().hex[:8]
        config.update(params)
        backend = build_backend(config)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.clear()
        backend.close()


def test_ttl_and_pttl_conventions(make: Maker) -> None:
    cache = make()
    assert cache.ttl("missing") == 0 and cache.pttl("missing") == 0
    cache.set("forever", 1, None)
    assert cache.ttl("forever") is None and cache.pttl("forever") is None
    cache.set("k", 1, 100)
    assert 99 <= cache.ttl("k") <= 100
    assert 98_000 < cache.pttl("k") <= 100_000
    cache.set("v2", 1, 50, version=2)
    assert cache.ttl("v2") == 0  # another version
    assert 49 <= cache.ttl("v2", version=2) <= 50


def test_expire_pexpire_and_persist(make: Maker) -> None:
    cache = make(TIMEOUT=120)
    cache.set("k", 1, None)
    assert cache.expire("k", 30) is True
    assert 29 <= cache.ttl("k") <= 30
    assert cache.expire("k", None) is True
    assert cache.ttl("k") is None
    assert cache.pexpire("k", 5000) is True
    assert 4000 < cache.pttl("k") <= 5000
    assert cache.pexpire("k", DEFAULT_TIMEOUT) is True  # the alias's TIMEOUT
    assert 119 <= cache.ttl("k") <= 120
    assert cache.persist("k") is True
    assert cache.ttl("k") is None
    assert cache.persist("k") is False  # had no timeout
    assert cache.persist("missing") is False
    assert cache.expire("missing", 10) is False
    assert cache.pexpire("missing", 10) is False
    assert cache.pexpire("k", 0) is True  # <= 0 deletes, as Redis PEXPIRE
    assert cache.get("k") is None and cache.ttl("k") == 0
    cache.set("k", 1)
    assert cache.expire("k", 0) is True  # Django's meaning: expired now
    assert cache.get("k") is None


def test_expire_at_and_pexpire_at(make: Maker) -> None:
    cache = make()
    cache.set("k", 1, None)
    soon = time.time() + 100
    assert cache.expire_at("k", int(soon)) is True
    assert 98 <= cache.ttl("k") <= 100
    assert cache.expire_at("k", datetime.datetime.fromtimestamp(soon + 50)) is True
    assert 148 <= cache.ttl("k") <= 150
    assert cache.pexpire_at("k", int((soon + 200) * 1000)) is True
    assert 298 <= cache.ttl("k") <= 300
    assert cache.expire_at("missing", int(soon)) is False
    assert cache.expire_at("k", int(time.time()) - 10) is True  # in the past: deleted
    assert cache.get("k") is None
    with pytest.raises(TypeError):
        cache.expire_at("k", "tomorrow")


async def test_async_twins(make: Maker) -> None:
    cache = make()
    await cache.aset("a", 1, 60)
    await cache.aset("b", 2, None)
    assert 59 <= await cache.attl("a") <= 60
    assert 58_000 < await cache.apttl("a") <= 60_000
    assert await cache.attl("b") is None
    assert await cache.aexpire("b", 30) is True
    assert await cache.apexpire("b", 20_000) is True
    assert 18 <= await cache.attl("b") <= 20
    assert await cache.apersist("b") is True
    assert await cache.aexpire_at("b", int(time.time()) + 40) is True
    assert await cache.apexpire_at("b", int(time.time() * 1000) + 40_000) is True
    assert 38 <= await cache.attl("b") <= 40
    assert sorted(await cache.akeys("*")) == ["a", "b"]
    assert sorted([k async for k in cache.aiter_keys("?")]) == ["a", "b"]
    assert await cache.adelete_pattern("a*") == 1
    assert await cache.akeys("*") == ["b"]


PATTERN_CASES: list[tuple[str, set[str]]] = [
    ("user:*", {"user:1", "user:2", "user:ab", "user:a"}),
    ("user:?", {"user:1", "user:2", "user:a"}),
    ("user:[12]", {"user:1", "user:2"}),
    ("user:[^1]", {"user:2", "user:a"}),
    ("user:[a-b]*", {"user:ab", "user:a"}),
    ("lit\\*", {"lit*"}),
    ("*b*", {"user:ab"}),
    ("nothing*", set()),
]
KEYS = ("user:1", "user:2", "user:ab", "user:a", "lit*", "litx", "other")


@pytest.mark.parametrize(("pattern", "expected"), PATTERN_CASES)
def test_keys_match_redis_glob(make: Maker, pattern: str, expected: set[str]) -> None:
    cache = make(KEY_PREFIX="site[1]")  # a prefix with glob characters matches literally
    for key in KEYS:
        cache.set(key, key)
    cache.set("user:v2", 1, version=2)
    assert set(cache.keys(pattern)) == expected
    assert set(cache.iter_keys(pattern, itersize=2)) == expected


def test_versions_prefixes_and_delete_pattern(make: Maker) -> None:
    one, two = make(KEY_PREFIX="one"), make(KEY_PREFIX="two")
    for i in range(25):
        one.set(f"user:{i}", i)
    one.set("user:0", "v2", version=2)
    two.set("user:0", "other alias")
    assert len(one.keys("user:*")) == 25
    assert one.keys("user:*", version=2) == ["user:0"]
    assert two.keys("*") == ["user:0"]
    assert one.delete_pattern("user:1*") == 11  # 1, 10-19
    assert one.delete_pattern("user:*", version=2) == 1
    assert one.get("user:0", version=2) is None and one.get("user:0") == 0
    assert one.delete_pattern("user:*", itersize=5) == 14
    assert one.delete_pattern("user:*") == 0
    assert two.get("user:0") == "other alias"


def test_expired_keys_are_not_listed(make: Maker) -> None:
    cache = make()
    cache.set("gone", 1, 0)  # Django: stores nothing
    cache.set("here", 1, 60)
    assert cache.keys("*") == ["here"]


def test_delete_many_counts(make: Maker) -> None:
    cache = make()
    cache.set_many({"a": 1, "b": 2})
    assert cache.delete_many(["a", "b", "c"]) == 2
    assert cache.delete_many([]) is None


GLOB_EDGES: list[tuple[str, str]] = [
    ("a[", "a["),
    ("a[", "a"),
    ("a[]", "a]"),
    ("a[]", "a"),
    ("a\\", "a\\"),
    ("a\\", "a"),
    ("[\\]]", "]"),
    ("[]]", "]"),
    ("a.b", "axb"),
    ("x\ny", "x\ny"),
    ("[z-a]", "m"),
    ("[a-]", "-"),
    ("[^]", "x"),
    ("**", ""),
    ("?", ""),
]


@pytest.mark.parametrize(("pattern", "key"), GLOB_EDGES)
def test_glob_regex_agrees_with_redis(redis_server: Server, pattern: str, key: str) -> None:
    """Odd patterns: our translation says what redis-server's SCAN MATCH says."""
    raw = redis.Redis(host=redis_server.host, port=redis_server.port)
    space = f"g{uuid.uuid4().hex}:"
    try:
        raw.set(space + key, 1)
        redis_says = bool(list(raw.scan_iter(match=space + pattern, count=1000)))
        assert bool(glob_regex(space + pattern).fullmatch(space + key)) is redis_says
    finally:
        raw.delete(space + key)
        raw.close()
