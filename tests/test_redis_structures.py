"""django-redis's data-structure API on RedisCache: hashes, sets, sorted sets, expiry, locks.

On redis-servers of our own (tests/servers.py). Each group checks the django-redis return
shapes, that keys carry the alias's prefix and version (read back with a raw client), that
values round-trip through the alias's codec, the async twins, and what a dead server gives.
"""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.test import override_settings

from lexigram_cache_django.backends.redis import RedisCache, get_redis_connection
from lexigram_cache_django.exceptions import CacheBackendError, CacheConfigurationError
from lexigram_cache_django.locks import LockError
from tests.servers import Server, start_redis


def make(location: str, version: int = 1, **options: Any) -> RedisCache:
    params: dict[str, Any] = {
        "KEY_PREFIX": f"s{uuid.uuid4().hex[:10]}",
        "VERSION": version,
        "OPTIONS": options,
    }
    return RedisCache(location, params)


@pytest.fixture(params=["pickle", "orjson"])
def cache(request: pytest.FixtureRequest, redis_server: Server) -> Iterator[RedisCache]:
    backend = make(redis_server.url, SERIALIZER=request.param)
    yield backend
    backend.clear()


@pytest.fixture
async def acache(redis_server: Server) -> AsyncIterator[RedisCache]:
    backend = make(redis_server.url)
    yield backend
    await backend.aclear()
    await backend.aclose()


@pytest.fixture
def raw(redis_server: Server) -> Iterator[redis.Redis]:
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()


# -- hashes ------------------------------------------------------------------------------


def test_hashes(cache: RedisCache, raw: redis.Redis) -> None:
    assert cache.hset("h", "a", {"x": [1, 2]}) == 1
    assert cache.hset("h", "a", {"x": [3]}) == 0  # updated, not added
    assert cache.hset("h", "n", 5) == 1
    assert cache.hsetnx("h", "n", 9) is False
    assert cache.hsetnx("h", "s", "text") is True
    assert cache.hget("h", "a") == {"x": [3]}
    assert cache.hget("h", "missing") is None
    assert cache.hgetall("h") == {"a": {"x": [3]}, "n": 5, "s": "text"}
    assert cache.hgetall("nothing") == {}
    assert cache.hmget("h", "n", "missing", "s") == [5, None, "text"]
    assert cache.hmget("h", ["n", "s"]) == [5, "text"]  # redis-py's list form
    assert cache.hlen("h") == 3
    assert sorted(cache.hkeys("h")) == ["a", "n", "s"]
    assert cache.hexists("h", "n") is True
    assert cache.hexists("h", "zz") is False
    assert cache.hincrby("h", "n", 10) == 15
    assert cache.hincrby("h", "fresh") == 1
    assert cache.hget("h", "n") == 15  # still a plain int through the codec
    with pytest.raises(redis.ResponseError):
        cache.hincrby("h", "a")  # not an integer
    assert cache.hdel("h", "a", "fresh", "missing") == 2
    assert raw.type(cache.make_key("h")) == b"hash"  # the hash is a key of the alias


def test_hash_versions_and_prefixes_are_separate(redis_server: Server) -> None:
    one, two = make(redis_server.url), make(redis_server.url)
    try:
        one.hset("h", "f", 1)
        one.hset("h", "f", 2, version=2)
        assert one.hget("h", "f") == 1
        assert one.hget("h", "f", version=2) == 2
        assert one.hlen("h", version=3) == 0
        assert two.hget("h", "f") is None  # another prefix
        one.clear()
        assert one.hget("h", "f", version=2) is None  # clear() reaches every version
    finally:
        one.clear()
        two.clear()


async def test_hashes_async(acache: RedisCache) -> None:
    assert await acache.ahset("h", "a", [1]) == 1
    assert await acache.ahsetnx("h", "a", [2]) is False
    assert await acache.ahget("h", "a") == [1]
    assert await acache.ahgetall("h") == {"a": [1]}
    assert await acache.ahmget("h", "a", "b") == [[1], None]
    assert await acache.ahlen("h") == 1
    assert await acache.ahkeys("h") == ["a"]
    assert await acache.ahexists("h", "a") is True
    assert await acache.ahincrby("h", "c", 3) == 3
    assert await acache.ahdel("h", "a") == 1


# -- sets --------------------------------------------------------------------------------


def test_sets(cache: RedisCache) -> None:
    assert cache.sadd("s", "a", "b", 3, ("t", 1) if cache.codec.serializer.name == "pickle" else 4)
    assert cache.sadd("s", "a") == 0
    assert cache.scard("s") == 4
    assert cache.sismember("s", 3) is True
    assert cache.sismember("s", "zz") is False
    assert cache.smismember("s", "a", "zz", 3) == [True, False, True]
    members = cache.smembers("s")
    assert {"a", "b", 3} <= members and len(members) == 4
    assert cache.srem("s", "b", "zz") == 1
    assert cache.srandmember("s") in members
    assert set(cache.srandmember("s", 2)) <= members
    assert isinstance(cache.srandmember("s", 2), list)
    assert cache.srandmember("empty") is None
    assert cache.srandmember("empty", 2) == []
    popped = cache.spop("s")
    assert popped in members and cache.scard("s") == 2
    assert isinstance(cache.spop("s", 5), set)
    assert cache.scard("s") == 0
    assert cache.spop("s") is None
    assert cache.spop("s", 2) == set()
    assert cache.smembers("nothing") == set()


def test_set_algebra_and_store_forms(cache: RedisCache) -> None:
    cache.sadd("x", 1, 2, 3)
    cache.sadd("y", 2, 3, 4)
    assert cache.sdiff("x", "y") == {1}
    assert cache.sinter("x", "y") == {2, 3}
    assert cache.sunion("x", "y") == {1, 2, 3, 4}
    assert cache.sdiffstore("d", "x", "y") == 1 and cache.smembers("d") == {1}
    assert cache.sinterstore("i", "x", "y") == 2 and cache.smembers("i") == {2, 3}
    assert cache.sunionstore("u", "x", "y") == 4 and cache.smembers("u") == {1, 2, 3, 4}
    assert cache.smove("x", "y", 1) is True
    assert cache.smove("x", "y", 99) is False
    assert cache.smembers("y") == {1, 2, 3, 4}
    # versions: sdiffstore takes django-redis's two; the rest one for every key
    cache.sadd("x", 7, version=2)
    assert cache.sdiffstore("d2", "x", version_dest=3, version_keys=2) == 1
    assert cache.smembers("d2", version=3) == {7}
    assert cache.sunion("x", "y", version=2) == {7}


def test_sscan(cache: RedisCache) -> None:
    names = {f"user:{i}" for i in range(30)} | {"other"}
    cache.sadd("big", *names)
    assert cache.sscan("big") == names
    assert set(cache.sscan_iter("big", count=5)) == names
    assert cache.sscan("big", match="user:1*") == {f"user:{i}" for i in (1, *range(10, 20))}


def test_sscan_match_with_compression_is_refused(redis_server: Server) -> None:
    cache = make(redis_server.url, COMPRESSOR="zlib", COMPRESS_MIN_BYTES=10)
    with pytest.raises(ValueError, match="compression"):
        cache.sscan("s", match="a*")


def test_members_refuse_encryption(redis_server: Server) -> None:
    cache = make(redis_server.url, ENCRYPTION_KEY="k" * 32)
    with pytest.raises(CacheConfigurationError, match="encrypted"):
        cache.sadd("s", "a")
    cache.hset("h", "f", "secret")  # hash values are values: they may be encrypted
    assert cache.hget("h", "f") == "secret"
    cache.clear()


async def test_sets_async(acache: RedisCache) -> None:
    assert await acache.asadd("s", 1, 2, 3) == 3
    assert await acache.asadd("t", 3, 4) == 2
    assert await acache.asrem("s", 1) == 1
    assert await acache.asmembers("s") == {2, 3}
    assert await acache.asismember("s", 2) is True
    assert await acache.asmismember("s", 2, 9) == [True, False]
    assert await acache.ascard("s") == 2
    assert await acache.asrandmember("s") in {2, 3}
    assert await acache.asdiff("s", "t") == {2}
    assert await acache.asinter("s", "t") == {3}
    assert await acache.asunion("s", "t") == {2, 3, 4}
    assert await acache.asdiffstore("d", "s", "t") == 1
    assert await acache.asinterstore("i", "s", "t") == 1
    assert await acache.asunionstore("u", "s", "t") == 3
    assert await acache.asmove("s", "t", 2) is True
    assert await acache.asscan("t") == {2, 3, 4}
    assert {m async for m in acache.asscan_iter("u", count=1)} == {2, 3, 4}
    assert await acache.aspop("s") == 3
    assert await acache.aspop("s") is None


# -- sorted sets ---------------------------------------------------------------------------


def test_sorted_sets(cache: RedisCache) -> None:
    assert cache.zadd("z", {"a": 1, "b": 2, "c": 3.5}) == 3
    assert cache.zcard("z") == 3
    assert cache.zscore("z", "c") == 3.5
    assert cache.zscore("z", "zz") is None
    assert cache.zmscore("z", ["a", "zz", "b"]) == [1.0, None, 2.0]
    assert cache.zrank("z", "a") == 0 and cache.zrevrank("z", "a") == 2
    assert cache.zrank("z", "zz") is None
    assert cache.zcount("z", 1, 2) == 2
    assert cache.zcount("z", "(1", "+inf") == 2
    assert cache.zrange("z", 0, -1) == ["a", "b", "c"]
    assert cache.zrange("z", 0, 0, desc=True, withscores=True) == [("c", 3.5)]
    assert cache.zrevrange("z", 0, 1) == ["c", "b"]
    assert cache.zrange("z", 0, -1, withscores=True, score_cast_func=int) == [
        ("a", 1),
        ("b", 2),
        ("c", 3),
    ]
    assert cache.zrangebyscore("z", 2, "+inf") == ["b", "c"]
    assert cache.zrangebyscore("z", "-inf", "+inf", start=1, num=1) == ["b"]
    assert cache.zrangebyscore("z", 1, 2, withscores=True) == [("a", 1.0), ("b", 2.0)]
    assert cache.zrevrangebyscore("z", "+inf", 2) == ["c", "b"]
    assert cache.zrevrangebyscore("z", 10, 0, start=0, num=2, withscores=True) == [
        ("c", 3.5),
        ("b", 2.0),
    ]
    with pytest.raises(ValueError):
        cache.zrangebyscore("z", 0, 1, start=1)
    assert cache.zincrby("z", 2, "a") == 3.0
    assert cache.zrem("z", "a", "zz") == 1
    assert cache.zpopmin("z") == ("b", 2.0)
    assert cache.zpopmax("z") == ("c", 3.5)
    assert cache.zpopmin("z") is None
    assert cache.zpopmax("z", 2) == []


def test_zadd_flags(cache: RedisCache) -> None:
    cache.zadd("z", {"a": 5})
    assert cache.zadd("z", {"a": 1, "b": 1}, nx=True) == 1  # only b is new
    assert cache.zscore("z", "a") == 5.0
    assert cache.zadd("z", {"a": 7, "c": 1}, xx=True) == 0  # c skipped, a updated
    assert cache.zscore("z", "a") == 7.0 and cache.zscore("z", "c") is None
    assert cache.zadd("z", {"a": 6, "b": 2}, gt=True, ch=True) == 1  # b raised, a not
    assert cache.zadd("z", {"a": 6}, lt=True, ch=True) == 1
    assert cache.zadd("z", {"a": 4}, incr=True) == 10.0
    assert cache.zadd("z", {"new": 1}, incr=True, xx=True) is None
    for bad in ({"nx": True, "xx": True}, {"gt": True, "lt": True}, {"nx": True, "gt": True}):
        with pytest.raises(ValueError):
            cache.zadd("z", {"a": 1}, **bad)


def test_sorted_set_removal_by_range_and_versions(cache: RedisCache, raw: redis.Redis) -> None:
    cache.zadd("z", {f"m{i}": i for i in range(10)})
    assert cache.zremrangebyscore("z", 0, 2) == 3
    assert cache.zremrangebyrank("z", 0, 1) == 2
    assert cache.zrange("z", 0, -1) == ["m5", "m6", "m7", "m8", "m9"]
    cache.zadd("z", {"v2": 1}, version=2)
    assert cache.zrange("z", 0, -1, version=2) == ["v2"]
    assert raw.type(cache.make_key("z", version=2)) == b"zset"
    members = [{"tuple": [1, 2]}, 7, "s"]
    cache.zadd("objs", {repr(m): i for i, m in enumerate(members)})
    assert cache.zrange("objs", 0, -1) == [repr(m) for m in members]


async def test_sorted_sets_async(acache: RedisCache) -> None:
    assert await acache.azadd("z", {"a": 1, "b": 2}) == 2
    assert await acache.azcard("z") == 2
    assert await acache.azcount("z", 0, 1) == 1
    assert await acache.azincrby("z", 1, "a") == 2.0
    assert await acache.azrange("z", 0, -1, withscores=True) == [("a", 2.0), ("b", 2.0)]
    assert await acache.azrevrange("z", 0, 0) == ["b"]
    assert await acache.azrangebyscore("z", 2, 2) == ["a", "b"]
    assert await acache.azrevrangebyscore("z", 2, 2, start=0, num=1) == ["b"]
    assert await acache.azrank("z", "b") == 1
    assert await acache.azrevrank("z", "b") == 0
    assert await acache.azscore("z", "a") == 2.0
    assert await acache.azmscore("z", ["a", "x"]) == [2.0, None]
    assert await acache.azadd("z", {"c": 5, "d": 6}) == 2
    assert await acache.azremrangebyscore("z", 6, 6) == 1
    assert await acache.azremrangebyrank("z", 0, 0) == 1
    assert await acache.azrem("z", "b") == 1
    assert await acache.azpopmax("z", 1) == [("c", 5.0)]
    assert await acache.azpopmin("z") is None


# -- expiry, delete_many, locks, get_redis_connection ---------------------------------------


def test_expire_at_pexpire_at_and_pexpire(redis_server: Server) -> None:
    cache = RedisCache(redis_server.url, {"KEY_PREFIX": f"e{uuid.uuid4().hex}", "TIMEOUT": 120})
    try:
        cache.set("k", 1, None)
        soon = time.time() + 100
        assert cache.expire_at("k", int(soon)) is True
        assert 90 <= (cache.ttl("k") or 0) <= 100
        assert cache.expire_at("k", datetime.datetime.fromtimestamp(soon + 50)) is True
        assert 140 <= (cache.ttl("k") or 0) <= 150
        assert cache.pexpire_at("k", int((soon + 200) * 1000)) is True
        assert 290 <= (cache.ttl("k") or 0) <= 300
        assert cache.pexpire_at("k", datetime.datetime.fromtimestamp(soon)) is True
        assert 90 <= (cache.ttl("k") or 0) <= 100
        assert cache.expire_at("missing", int(soon)) is False
        assert cache.pexpire("k", 5000) is True
        assert 4000 < (cache.pttl("k") or 0) <= 5000
        assert cache.pexpire("k", DEFAULT_TIMEOUT) is True  # the alias's TIMEOUT, 120 s
        assert 110_000 < (cache.pttl("k") or 0) <= 120_000
        with pytest.raises(TypeError):
            cache.expire_at("k", "tomorrow")  # type: ignore[arg-type]
    finally:
        cache.clear()


async def test_expiry_async(acache: RedisCache) -> None:
    await acache.aset("k", 1, None)
    soon = time.time() + 100
    assert await acache.aexpire_at("k", datetime.datetime.fromtimestamp(soon)) is True
    assert 90 <= (await acache.attl("k") or 0) <= 100
    assert await acache.apexpire_at("k", int(soon * 1000) + 50_000) is True
    assert 140 <= (await acache.attl("k") or 0) <= 150
    assert await acache.apexpire("k", 3000) is True
    assert 2000 < (await acache.apttl("k") or 0) <= 3000


async def test_delete_many_counts(acache: RedisCache) -> None:
    acache.set_many({"a": 1, "b": 2, "c": 3})
    assert acache.delete_many(["a", "b", "missing"]) == 2
    assert acache.delete_many([]) is None  # as Django's suite wants
    assert await acache.adelete_many(["c", "a"]) == 1
    assert await acache.adelete_many([]) is None


def test_lock_takes_redis_py_arguments(redis_server: Server) -> None:
    cache = make(redis_server.url)
    shared = cache.lock("job", timeout=5, sleep=0.01, blocking=False, blocking_timeout=None)
    assert shared.acquire()
    seen: list[Any] = []
    other = threading.Thread(target=lambda: seen.append(shared.token))
    other.start()
    other.join()
    assert seen == [None]  # thread_local (the default): the token is this thread's
    errors: list[Exception] = []

    def release_elsewhere() -> None:
        try:
            shared.release()
        except LockError as exc:
            errors.append(exc)

    thread = threading.Thread(target=release_elsewhere)
    thread.start()
    thread.join()
    assert len(errors) == 1  # another thread does not hold it
    assert shared.locked() and shared.owned()
    shared.release()
    handed = cache.lock("job2", timeout=5, thread_local=False)
    assert handed.acquire()
    thread = threading.Thread(target=handed.release)
    thread.start()
    thread.join()
    assert not handed.locked()  # released by the other thread
    cache.clear()


def test_get_redis_connection(redis_server: Server) -> None:
    redis_alias = {
        "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
        "LOCATION": redis_server.url,
        "KEY_PREFIX": "grc",
    }
    memory_alias = {"BACKEND": "lexigram_cache_django.backends.memory.MemoryCache"}
    with override_settings(CACHES={"default": redis_alias, "mem": memory_alias}):
        try:
            conn = get_redis_connection("default")
            assert isinstance(conn, redis.Redis)
            cache = caches["default"]
            assert isinstance(cache, RedisCache)
            cache.hset("h", "f", 1)
            assert conn.hget(cache.make_key("h"), "f") == b"1"
            assert isinstance(get_redis_connection("default", write=False), redis.Redis)
            with pytest.raises(NotImplementedError):
                get_redis_connection("mem")
        finally:
            caches["default"].clear()


# -- a dead server: fail-open defaults, or the error with FAIL_SILENTLY off ---------------

#: (call, default) for every command group: reads answer "nothing there", writes "nothing
#: changed".
FAIL_OPEN: list[tuple[str, tuple[Any, ...], dict[str, Any], Any]] = [
    ("hset", ("h", "f", 1), {}, 0),
    ("hsetnx", ("h", "f", 1), {}, False),
    ("hget", ("h", "f"), {}, None),
    ("hgetall", ("h",), {}, {}),
    ("hmget", ("h", "a", "b"), {}, [None, None]),
    ("hdel", ("h", "f"), {}, 0),
    ("hlen", ("h",), {}, 0),
    ("hkeys", ("h",), {}, []),
    ("hexists", ("h", "f"), {}, False),
    ("hincrby", ("h", "f"), {}, None),
    ("sadd", ("s", 1), {}, 0),
    ("srem", ("s", 1), {}, 0),
    ("smembers", ("s",), {}, set()),
    ("sismember", ("s", 1), {}, False),
    ("smismember", ("s", 1, 2), {}, [False, False]),
    ("scard", ("s",), {}, 0),
    ("spop", ("s",), {}, None),
    ("spop", ("s", 2), {}, set()),
    ("srandmember", ("s",), {}, None),
    ("srandmember", ("s", 2), {}, []),
    ("smove", ("s", "t", 1), {}, False),
    ("sdiff", ("s", "t"), {}, set()),
    ("sinter", ("s", "t"), {}, set()),
    ("sunion", ("s", "t"), {}, set()),
    ("sdiffstore", ("d", "s", "t"), {}, 0),
    ("sinterstore", ("d", "s", "t"), {}, 0),
    ("sunionstore", ("d", "s", "t"), {}, 0),
    ("sscan", ("s",), {}, set()),
    ("zadd", ("z", {"a": 1}), {}, 0),
    ("zadd", ("z", {"a": 1}), {"incr": True}, None),
    ("zrange", ("z", 0, -1), {}, []),
    ("zrevrange", ("z", 0, -1), {}, []),
    ("zrangebyscore", ("z", 0, 1), {}, []),
    ("zrevrangebyscore", ("z", 1, 0), {}, []),
    ("zrank", ("z", "a"), {}, None),
    ("zrevrank", ("z", "a"), {}, None),
    ("zrem", ("z", "a"), {}, 0),
    ("zscore", ("z", "a"), {}, None),
    ("zmscore", ("z", ["a"]), {}, [None]),
    ("zcount", ("z", 0, 1), {}, 0),
    ("zincrby", ("z", 1, "a"), {}, None),
    ("zpopmin", ("z",), {}, None),
    ("zpopmax", ("z", 2), {}, []),
    ("zremrangebyscore", ("z", 0, 1), {}, 0),
    ("zremrangebyrank", ("z", 0, 1), {}, 0),
    ("zcard", ("z",), {}, 0),
    ("expire_at", ("k", 2_000_000_000), {}, False),
    ("pexpire_at", ("k", 2_000_000_000_000), {}, False),
    ("pexpire", ("k", 1000), {}, False),
    ("delete_many", (["a", "b"],), {}, 0),
]


@pytest.fixture(scope="module")
def dead_server() -> Iterator[Server]:
    server = start_redis()
    server.kill()
    yield server
    server.stop()


@pytest.mark.parametrize(("name", "args", "kwargs", "default"), FAIL_OPEN)
def test_dead_server_fails_open_with_the_groups_default(
    dead_server: Server, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], default: Any
) -> None:
    cache = make(dead_server.url)
    result = getattr(cache, name)(*args, **kwargs)
    assert result == default and type(result) is type(default)
    assert cache.counters.errors >= 1


@pytest.mark.parametrize(("name", "args", "kwargs", "default"), FAIL_OPEN)
async def test_dead_server_fails_open_async(
    dead_server: Server, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], default: Any
) -> None:
    cache = make(dead_server.url)
    try:
        result = await getattr(cache, "a" + name)(*args, **kwargs)
    finally:
        await cache.aclose()
    assert result == default and type(result) is type(default)


def test_dead_server_iterators_yield_nothing(dead_server: Server) -> None:
    cache = make(dead_server.url)
    assert list(cache.sscan_iter("s")) == []


def test_dead_server_opens_the_breaker_so_later_calls_send_nothing(dead_server: Server) -> None:
    """The commands share the backend's breaker: after a few refusals they short-circuit."""
    cache = make(dead_server.url)
    for _ in range(10):
        assert cache.smembers("s") == set()
        assert cache.zadd("z", {"a": 1}) == 0
    assert cache.counters.short_circuited >= 1
    assert cache.health()["status"] != "up"


def test_killed_server_with_fail_silently_off_raises(redis_server: Server) -> None:
    server = start_redis()
    cache = make(server.url, FAIL_SILENTLY=False)
    try:
        assert cache.sadd("s", 1) == 1
        server.kill()
        with pytest.raises(CacheBackendError):
            cache.smembers("s")
        with pytest.raises(CacheBackendError):
            cache.zadd("z", {"a": 1})
    finally:
        server.stop()


def test_unreadable_values_and_members_are_left_out_and_counted(
    cache: RedisCache, raw: redis.Redis
) -> None:
    """Written by another program: logged and counted, as ``get`` treats such an entry."""
    cache.hset("h", "ok", "fine")
    raw.hset(cache.make_key("h"), "alien", b"\xff\xfenot ours")
    cache.sadd("s", "ok")
    raw.sadd(cache.make_key("s"), b"\xff\xfenot ours")
    cache.zadd("z", {"ok": 1})
    raw.zadd(cache.make_key("z"), {b"\xff\xfenot ours": 2})
    errors = cache.counters.errors
    assert cache.hget("h", "alien") is None
    assert cache.hgetall("h") == {"ok": "fine"}
    assert cache.hmget("h", "ok", "alien") == ["fine", None]
    assert cache.smembers("s") == {"ok"}
    assert cache.sscan("s") == {"ok"}
    assert cache.zrange("z", 0, -1) == ["ok"]
    assert cache.zrange("z", 0, -1, withscores=True) == [("ok", 1.0)]
    assert cache.zpopmax("z") is None  # the unreadable one was popped
    assert cache.counters.errors == errors + 8
