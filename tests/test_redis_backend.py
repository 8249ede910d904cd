"""RedisCache beyond Django's own suite: extensions, batching, async, auth, a dead server.

Every test talks to redis-server processes started for this session on free loopback
ports (see tests/servers.py); nothing here uses the Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from redis._parsers import _HiredisParser

from lexigram_cache_django.backends.redis import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    RedisCache,
    RedisIncrError,
)
from lexigram_cache_django.backends.redis import client as redis_client
from lexigram_cache_django.backends.redis.pools import SyncPool
from lexigram_cache_django.exceptions import (
    CacheBackendError,
    CacheConfigurationError,
    CacheIncrError,
    CacheServerError,
)
from tests.servers import Server, start_redis

PASSWORD = "s3cr3t-Pa55"
_TOP_LEVEL = ("TIMEOUT", "KEY_PREFIX", "VERSION", "KEY_FUNCTION")


def make(location: Any, **options: Any) -> RedisCache:
    """A RedisCache as Django would build it; CACHES keys upper-case, the rest OPTIONS."""
    params: dict[str, Any] = {k: options.pop(k) for k in _TOP_LEVEL if k in options}
    params.setdefault("KEY_PREFIX", f"t{uuid.uuid4().hex[:10]}")
    params["OPTIONS"] = options
    return RedisCache(location, params)


def raw_client(server: Server, db: int = 0) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, db=db, password=server.password)


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT (INFO commandstats)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


@pytest.fixture
def cache(redis_server: Server) -> Iterator[RedisCache]:
    backend = make(redis_server.url)
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
    client = raw_client(redis_server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def auth_server() -> Iterator[Server]:
    server = start_redis(password=PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replica_server() -> Iterator[Server]:
    """A second, independent server: shows which server a read or a write goes to."""
    server = start_redis()
    yield server
    server.stop()


# -- configuration ---------------------------------------------------------------------------


def test_defaults_are_short_timeouts_a_bounded_pool_and_hiredis(cache: RedisCache) -> None:
    kwargs = cache._client.primary.connection_kwargs
    assert kwargs["socket_connect_timeout"] == DEFAULT_CONNECT_TIMEOUT == 0.5
    assert kwargs["socket_timeout"] == DEFAULT_SOCKET_TIMEOUT == 1.0
    assert isinstance(cache._client.primary, SyncPool)
    assert cache._client.primary.max_connections == 100
    pool = cache._client.primary
    conn = pool.acquire()
    try:
        conn.connect()
        assert isinstance(conn._parser, _HiredisParser)
    finally:
        pool.release(conn)


def test_options_reach_the_pool(redis_server: Server) -> None:
    cache = make(
        redis_server.url,
        CONNECT_TIMEOUT=0.2,
        SOCKET_TIMEOUT=0.3,
        MAX_CONNECTIONS=7,
        POOL_TIMEOUT=2,
        db=5,  # lower-case options go to redis-py as they are, as with Django's RedisCache
        retry_on_timeout=True,
    )
    kwargs = cache._client.primary.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (0.2, 0.3)
    assert (kwargs["db"], kwargs["retry_on_timeout"]) == (5, True)
    assert cache._client.primary.max_connections == 7
    assert cache._client.primary.timeout == 2.0


def test_backend_objects_with_the_same_settings_share_pools(redis_server: Server) -> None:
    """Django builds a backend object per thread; they must not each open connections."""
    first = RedisCache(redis_server.url, {"KEY_PREFIX": "x"})
    second = RedisCache(redis_server.url, {"KEY_PREFIX": "x"})
    other = RedisCache(redis_server.url, {"KEY_PREFIX": "x", "OPTIONS": {"SOCKET_TIMEOUT": 3}})
    assert first._client.primary is second._client.primary
    assert other._client.primary is not first._client.primary


@pytest.mark.parametrize(
    "location",
    ["127.0.0.1:6379", "http://:pw@example.com", "", "memcached://127.0.0.1:11211"],
)
def test_bad_locations_are_refused_with_the_password_masked(location: str) -> None:
    with pytest.raises(CacheConfigurationError) as err:
        RedisCache(location, {})
    assert "pw@" not in str(err.value)


@pytest.mark.parametrize(
    "option", ["serializer", "pool_class", "cache_config", "cache", "cache_factory"]
)
def test_django_redis_options_that_mean_something_else_are_refused(option: str) -> None:
    with pytest.raises(CacheConfigurationError, match=option):
        RedisCache("redis://127.0.0.1:1", {"OPTIONS": {option: "x.Y"}})


@pytest.mark.parametrize(
    "location",
    [
        f"redis://:{PASSWORD}@127.0.0.1:1/0",
        f"rediss://user:{PASSWORD}@127.0.0.1:1/0",
        f"unix:///tmp/redis.sock?db=1&password={PASSWORD}",
        [f"redis://:{PASSWORD}@127.0.0.1:1", f"redis://:{PASSWORD}@127.0.0.1:2"],
    ],
)
def test_repr_and_stats_mask_passwords(location: Any) -> None:
    cache = RedisCache(location, {})  # pools connect lazily: nothing listens there
    assert PASSWORD not in repr(cache)
    assert PASSWORD not in cache.location_display
    assert "***" in repr(cache)


def test_rediss_uses_tls_connections() -> None:
    cache = RedisCache("rediss://127.0.0.1:1/0", {})
    assert cache._client.primary.connection_class is redis.SSLConnection


# -- Django's API on Redis -------------------------------------------------------------------


def test_values_round_trip_and_none_is_a_value(cache: RedisCache) -> None:
    values = {"str": "text", "bytes": b"\x00\xff", "int": 42, "neg": -7, "bool": True,
              "float": 1.5, "none": None, "dict": {"a": [1, 2]}, "big": 2**70}  # fmt: skip
    for key, value in values.items():
        assert cache.set(key, value) is True
        assert cache.get(key, "missing") == value
    assert cache.get_many(list(values)) == values
    assert cache.get("never-set", "missing") == "missing"


def test_integers_are_stored_as_digits_that_redis_can_count(
    cache: RedisCache, raw: redis.Redis
) -> None:
    cache.set("n", 41)
    final = cache.make_key("n")
    assert raw.get(final) == b"41"
    raw.incrby(final, 1)  # another program counting the same key
    assert cache.get("n") == 42
    assert cache.incr("n", 8) == 50
    assert cache.decr("n", 60) == -10


def test_incr_errors(cache: RedisCache) -> None:
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    assert not cache.has_key("missing")  # the failed incr did not create it
    cache.set("text", "abc")
    with pytest.raises(RedisIncrError) as err:
        cache.incr("text")
    # Both what Django's in-memory backends raise (TypeError) and what Django's
    # RedisCache raises (redis.ResponseError).
    assert isinstance(err.value, CacheIncrError)
    assert isinstance(err.value, TypeError)
    assert isinstance(err.value, redis.ResponseError)
    assert cache.get("text") == "abc"


def test_get_or_set_then_incr_like_django(cache: RedisCache) -> None:
    """Django idiom (rate limits): create a counter with get_or_set, then incr it."""
    assert cache.get_or_set("hits", 0, 60) == 0
    assert cache.incr("hits") == 1


def test_incr_is_atomic_across_threads(redis_server: Server) -> None:
    cache = make(redis_server.url, MAX_CONNECTIONS=4)
    cache.set("n", 0)

    def work() -> None:
        for _ in range(200):
            cache.incr("n")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("n") == 1600
    assert cache._client.primary.created <= 4  # threads waited for a free connection
    cache.clear()


def test_timeouts_map_to_milliseconds(cache: RedisCache) -> None:
    cache.set("float", "v", timeout=1.5)
    assert 1000 < (cache.pttl("float") or 0) <= 1500
    cache.set("default", "v")  # TIMEOUT default 300
    assert 299 <= (cache.ttl("default") or 0) <= 300
    cache.set("forever", "v", timeout=None)
    assert cache.ttl("forever") is None
    cache.set("tiny", "v", timeout=0.0001)  # rounds up to 1 ms, never to "no expiry"
    assert cache.ttl("tiny") in (0, None) and cache.ttl("tiny") is not None


def test_zero_and_negative_timeouts_store_nothing_and_drop_the_old_value(
    cache: RedisCache,
) -> None:
    for timeout in (0, -5):
        cache.set("k", "old")
        assert cache.set("k", "new", timeout=timeout) is False
        assert cache.get("k") is None
    assert cache.add("absent", "v", timeout=0) is True  # Django: succeeds, stores nothing
    assert not cache.has_key("absent")
    cache.set("present", "v")
    assert cache.add("present", "w", timeout=0) is False
    cache.set_many({"a": 1, "b": 2}, timeout=0)
    assert cache.get_many(["a", "b"]) == {}


def test_entries_expire(cache: RedisCache) -> None:
    cache.set("short", "v", timeout=0.1)
    cache.set_many({"m1": 1, "m2": 2}, timeout=0.1)
    time.sleep(0.5)
    assert cache.get_many(["short", "m1", "m2"]) == {}


def test_touch(cache: RedisCache) -> None:
    cache.set("k", "v", timeout=100)
    assert cache.touch("k", 10) is True
    assert (cache.ttl("k") or 0) <= 10
    assert cache.touch("k", None) is True
    assert cache.ttl("k") is None
    assert cache.touch("k", None) is True  # already persistent: still "touched"
    assert cache.touch("missing", None) is False
    assert cache.touch("missing", 10) is False
    assert cache.touch("k", 0) is True
    assert not cache.has_key("k")


def test_add_and_set_flags(cache: RedisCache) -> None:
    assert cache.add("k", 1) is True
    assert cache.add("k", 2) is False
    assert cache.get("k") == 1
    assert cache.set("k", 3, nx=True) is False
    assert cache.set("new", 3, nx=True) is True
    assert cache.set("k", 4, xx=True) is True
    assert cache.set("absent", 4, xx=True) is False
    assert cache.get_many(["k", "new", "absent"]) == {"k": 4, "new": 3}


def test_batches_are_single_commands(cache: RedisCache, raw: redis.Redis) -> None:
    data = {f"k{i}": {"i": i} for i in range(50)}
    raw.config_resetstat()
    assert cache.set_many(data, timeout=60) == []
    calls = command_calls(raw)
    assert calls.get("set") == 50 and "expire" not in calls and "pexpire" not in calls
    assert all(0 < (cache.pttl(k) or 0) <= 60_000 for k in data)  # PX went with each SET

    raw.config_resetstat()
    assert cache.get_many([*data, "missing"]) == data
    calls = command_calls(raw)
    assert calls.get("mget") == 1 and "get" not in calls

    raw.config_resetstat()
    cache.delete_many(data)
    assert command_calls(raw).get("del") == 1
    assert cache.get_many(list(data)) == {}


def test_unreadable_payloads_are_misses(cache: RedisCache, raw: redis.Redis) -> None:
    cache.set("good", "v")
    raw.set(cache.make_key("forged"), b"\x90" + b"x" * 40)  # "signed pickle" with a bad MAC
    raw.set(cache.make_key("junk"), b"not an entry")
    assert cache.get("forged", "dflt") == "dflt"
    assert cache.get_many(["good", "forged", "junk"]) == {"good": "v"}
    stats = cache.stats()
    assert stats["integrity_errors"] == 2
    assert stats["errors"] == 3


def test_counters(cache: RedisCache) -> None:
    cache.set("a", 1)
    cache.set_many({"b": 2, "c": 3})
    cache.get("a")
    cache.get("zz")
    cache.get_many(["a", "b", "nope"])
    cache.delete("a")
    cache.delete("never-there")
    stats = cache.stats()
    assert (stats["sets"], stats["hits"], stats["misses"], stats["deletes"]) == (3, 3, 2, 1)
    assert stats["backend"] == "redis"


def test_store_stats_come_from_the_server(cache: RedisCache) -> None:
    cache.set("a", 1)
    stats = cache.stats()
    assert stats["entries"] >= 1
    for name in ("redis_version", "used_memory", "keyspace_hits", "keyspace_misses"):
        assert name in stats


def test_compression_and_other_serializers(redis_server: Server, raw: redis.Redis) -> None:
    compressed = make(redis_server.url, COMPRESS_MIN_BYTES=100)
    compressed.set("big", "x" * 10_000)
    assert len(raw.get(compressed.make_key("big")) or b"") < 1_000
    assert compressed.get("big") == "x" * 10_000
    as_json = make(redis_server.url, SERIALIZER="orjson")
    as_json.set("doc", {"a": [1, 2]})
    assert as_json.get("doc") == {"a": [1, 2]}
    assert compressed.get("doc") is None  # another alias, another prefix
    compressed.clear()
    as_json.clear()


def test_async_methods_do_not_hop_threads(redis_server: Server) -> None:
    seen: list[int] = []

    def key_func(key: str, prefix: str, version: int) -> str:
        seen.append(threading.get_ident())
        return f"{prefix}:{version}:{key}"

    cache = make(redis_server.url, KEY_FUNCTION=key_func)

    async def main() -> Any:
        loop_thread = threading.get_ident()
        await cache.aset("a", {"x": 1})
        await cache.aset_many({"b": 2, "c": 3})
        await cache.aincr("b")
        got = await cache.aget("a"), await cache.aget_many(["a", "b", "c", "d"])
        await cache.aclear()
        await cache.aclose()
        return loop_thread, got

    loop_thread, got = asyncio.run(main())
    assert got == ({"x": 1}, {"a": {"x": 1}, "b": 3, "c": 3})
    assert seen and set(seen) == {loop_thread}


# -- locations: replicas, databases, unix sockets ----------------------------------------


def test_writes_go_to_the_primary_and_reads_to_replicas(
    redis_server: Server, replica_server: Server
) -> None:
    for location in (
        [redis_server.url, replica_server.url],
        f"{redis_server.url},{replica_server.url}",
    ):
        cache = make(location)
        primary, replica = raw_client(redis_server), raw_client(replica_server)
        cache.set("k", "written")
        assert primary.exists(cache.make_key("k")) and not replica.exists(cache.make_key("k"))
        assert cache.get("k") is None  # read from the (independent) "replica"
        replica.set(cache.make_key("k"), b"7")
        assert cache.get("k") == 7
        assert cache.get_many(["k"]) == {"k": 7}
        cache.delete("k")
        assert replica.exists(cache.make_key("k"))  # deletes went to the primary
        replica.delete(cache.make_key("k"))


async def test_async_writes_go_to_the_primary_and_reads_to_replicas(
    redis_server: Server, replica_server: Server
) -> None:
    cache = make([redis_server.url, replica_server.url])
    replica = raw_client(replica_server)
    await cache.aset("k", "written")
    assert await cache.aget("k") is None
    replica.set(cache.make_key("k"), b"7")
    assert await cache.aget("k") == 7
    replica.delete(cache.make_key("k"))
    await cache.aclear()
    await cache.aclose()


def test_database_in_the_url(redis_server: Server) -> None:
    cache = make(f"{redis_server.url}/3")
    cache.set("k", 1)
    assert raw_client(redis_server, db=3).get(cache.make_key("k")) == b"1"
    assert not raw_client(redis_server, db=0).exists(cache.make_key("k"))
    cache.clear()


def test_unix_socket_url(tmp_path_factory: pytest.TempPathFactory) -> None:
    sock = Path(tmp_path_factory.mktemp("sock")) / "redis.sock"
    server = start_redis(extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"])
    try:
        cache = make(f"unix://{sock}?db=2")
        cache.set("k", "via unix socket")
        assert cache.get("k") == "via unix socket"
        assert raw_client(server, db=2).exists(cache.make_key("k"))
    finally:
        server.stop()


# -- clear() ---------------------------------------------------------------------------------


def test_clear_removes_only_this_prefix(redis_server: Server, raw: redis.Redis) -> None:
    mine = make(redis_server.url, KEY_PREFIX="site[1]")  # glob characters are escaped
    theirs = make(redis_server.url, KEY_PREFIX="site1")
    mine.set("a", 1)
    mine.set("a", 2, version=2)
    mine.set_many({f"k{i}": i for i in range(2500)})  # more than one SCAN/UNLINK batch
    theirs.set("a", "theirs")
    raw.set("no-prefix-at-all", b"x")
    raw.config_resetstat()
    mine.clear()
    calls = command_calls(raw)
    assert "flushdb" not in calls and "keys" not in calls and calls.get("unlink", 0) >= 3
    assert mine.get("a") is None and mine.get("a", version=2) is None
    assert mine.keys("*") == []
    assert theirs.get("a") == "theirs"
    assert raw.get("no-prefix-at-all") == b"x"
    theirs.clear()
    raw.delete("no-prefix-at-all")


def test_clear_without_a_prefix_flushes_its_database_only(redis_server: Server) -> None:
    cache = RedisCache(f"{redis_server.url}/4", {})
    elsewhere = raw_client(redis_server, db=5)
    elsewhere.set("survivor", b"1")
    cache.set("a", 1)
    raw_client(redis_server, db=4).set("someone-elses", b"1")
    cache.clear()
    assert raw_client(redis_server, db=4).dbsize() == 0
    assert elsewhere.get("survivor") == b"1"
    elsewhere.delete("survivor")


# -- django-redis's extensions ---------------------------------------------------------------


def test_ttl_pttl_expire_pexpire_persist(cache: RedisCache) -> None:
    assert cache.ttl("missing") == 0
    assert cache.pttl("missing") == 0
    cache.set("k", "v", timeout=100)
    assert 98 <= (cache.ttl("k") or 0) <= 100
    assert 98_000 <= (cache.pttl("k") or 0) <= 100_000
    assert cache.expire("k", 50) is True
    assert (cache.ttl("k") or 0) <= 50
    assert cache.pexpire("k", 1500) is True
    assert (cache.pttl("k") or 0) <= 1500
    assert cache.persist("k") is True
    assert cache.ttl("k") is None
    assert cache.persist("k") is False  # nothing to remove (Redis PERSIST semantics)
    assert cache.expire("missing", 10) is False
    assert cache.expire("k", None) is True
    assert cache.expire("k", 0) is True
    assert cache.get("k") is None


def test_keys_iter_keys_and_delete_pattern(redis_server: Server, raw: redis.Redis) -> None:
    cache = make(redis_server.url)
    other = make(redis_server.url)
    cache.set_many({f"user:{i}": i for i in range(25)})
    cache.set_many({"session:a": 1, "session:b": 2})
    cache.set("user:99", "v2", version=2)
    other.set("user:1", "not mine")
    assert sorted(cache.keys("user:*")) == sorted(f"user:{i}" for i in range(25))
    assert cache.keys("user:*", version=2) == ["user:99"]
    assert sorted(cache.iter_keys("session:*", itersize=1)) == ["session:a", "session:b"]
    assert cache.keys("nothing:*") == []
    raw.config_resetstat()
    assert cache.delete_pattern("user:*", itersize=10) == 25
    calls = command_calls(raw)
    assert "keys" not in calls and calls["scan"] >= 2 and calls["unlink"] >= 3
    assert cache.keys("user:*") == []
    assert cache.get("user:99", version=2) == "v2"
    assert sorted(cache.keys("*")) == ["session:a", "session:b"]
    assert other.get("user:1") == "not mine"
    assert cache.delete_pattern("user:*") == 0
    cache.clear()
    other.clear()


def test_keys_with_a_custom_key_function(redis_server: Server) -> None:
    def key_func(key: str, prefix: str, version: int) -> str:
        return f"CUSTOM-{prefix}-{version}-{key}"

    cache = make(redis_server.url, KEY_FUNCTION=key_func, KEY_PREFIX="kf")
    cache.set_many({"a:1": 1, "a:2": 2, "b:1": 3})
    assert sorted(cache.keys("a:*")) == ["a:1", "a:2"]
    assert cache.delete_pattern("a:*") == 2
    cache.clear()
    assert cache.keys("*") == []


def test_get_client_gives_raw_access(cache: RedisCache) -> None:
    client = cache.get_client()
    assert isinstance(client, redis.Redis)
    client.set(cache.make_key("raw"), b"5")
    assert cache.get("raw") == 5
    assert cache.get_client(write=False).get(cache.make_key("raw")) == b"5"


def test_lock_is_a_redis_key(cache: RedisCache) -> None:
    with cache.lock("job", timeout=5) as held:
        assert held.owned()
        assert cache.get_client().pttl(held.key) > 0
        assert not cache.lock("job").acquire(blocking=False)
    assert not cache.get_client().exists(held.key)


def test_client_commands_on_final_keys(cache: RedisCache) -> None:
    client = cache._client
    key = cache.make_key("p")
    assert client.add(key, b"1", 10_000) is True
    assert client.add(key, b"2", 10_000) is False
    assert client.get(key) == b"1"
    assert client.set(key, b"3", None) is True
    assert client.get(key) == b"3" and cache.ttl("p") is None
    assert client.set_many([(key, b"4"), (cache.make_key("q"), b"5")], 10_000) == []
    assert client.get_many([key, cache.make_key("q"), cache.make_key("r")]) == [
        b"4",
        b"5",
        None,
    ]
    assert client.set(key, b"6", 0) is False  # an expiry of 0 ms deletes
    assert client.get(key) is None


def test_a_tagged_read_is_one_round_trip(cache: RedisCache, raw: redis.Redis) -> None:
    cache.set("plain", 1)
    cache.set("tagged", 2, tags=["pets", "owners"])

    def commands() -> dict[str, int]:
        return {k: v for k, v in command_calls(raw).items() if "config" not in k}

    raw.config_resetstat()
    assert cache.get("plain") == 1
    assert commands() == {"get": 1}
    raw.config_resetstat()
    assert cache.get("tagged") == 2  # this process wrote it: the value and tags in one MGET
    assert commands() == {"mget": 1}
    raw.config_resetstat()
    assert cache.get_many(["plain", "tagged", "missing"]) == {"plain": 1, "tagged": 2}
    assert commands() == {"mget": 1}

    cache._tag_hints.learn(cache.make_and_validate_key("tagged"), ())  # as another process
    raw.config_resetstat()
    assert cache.get("tagged") == 2  # tags unknown: GET, then MGET of the tag records
    assert commands() == {"get": 1, "mget": 1}
    raw.config_resetstat()
    assert cache.get("tagged") == 2  # learned from that read
    assert commands() == {"mget": 1}

    cache.invalidate_tags("pets")
    assert cache.get("tagged") is None
    assert not cache.has_key("tagged")
    assert cache.has_key("plain")
    assert cache.add("tagged", 3) is True  # the stale entry counts as absent
    assert cache.get("tagged") == 3


# -- async -----------------------------------------------------------------------------------


async def test_async_api(acache: RedisCache) -> None:
    assert await acache.aset("a", {"x": 1}) is True
    assert await acache.aget("a") == {"x": 1}
    assert await acache.aget("missing", "dflt") == "dflt"
    assert await acache.aadd("a", 2) is False
    assert await acache.aadd("b", 2) is True
    assert await acache.aset("b", 9, nx=True) is False
    assert await acache.aincr("b", 3) == 5
    assert await acache.adecr("b") == 4
    with pytest.raises(ValueError):
        await acache.aincr("missing")
    with pytest.raises(RedisIncrError):
        await acache.aincr("a")
    assert await acache.ahas_key("a") and not await acache.ahas_key("missing")
    assert await acache.aset_many({"c": 1, "d": 2}, timeout=60) == []
    assert await acache.aget_many(["a", "b", "c", "d", "e"]) == {
        "a": {"x": 1},
        "b": 4,
        "c": 1,
        "d": 2,
    }
    assert await acache.atouch("c", None) is True
    assert await acache.attl("c") is None
    assert await acache.aexpire("c", 30) is True
    assert 0 < (await acache.apttl("c") or 0) <= 30_000
    assert await acache.apexpire("c", 5000) is True
    assert await acache.apersist("c") is True
    assert await acache.adelete("c") is True
    assert await acache.adelete("c") is False
    await acache.adelete_many(["d"])
    assert sorted(await acache.akeys("*")) == ["a", "b"]
    assert [k async for k in acache.aiter_keys("a*")] == ["a"]
    assert await acache.adelete_pattern("*") == 2
    with pytest.raises(ValueError):
        await acache.aincr_version("missing-version")
    await acache.aset("v", "x")
    assert await acache.aincr_version("v") == 2
    assert await acache.aget("v", version=2) == "x"
    assert await acache.aget_or_set("g", lambda: "computed", 60) == "computed"
    client = acache.aget_client()
    assert await client.get(acache.make_key("g")) is not None


async def test_hundreds_of_tasks_on_one_loop(redis_server: Server) -> None:
    name = f"lexigram-test-{uuid.uuid4().hex[:8]}"
    cache = make(redis_server.url, MAX_CONNECTIONS=8, client_name=name)
    await cache.aset("n", 0)

    async def task(i: int) -> Any:
        await cache.aset(f"k{i}", {"i": i})
        await cache.aincr("n")
        got = await cache.aget(f"k{i}")
        many = await cache.aget_many([f"k{i}", f"k{(i + 1) % 500}"])
        return got, f"k{i}" in many

    results = await asyncio.gather(*(task(i) for i in range(500)))
    assert results == [({"i": i}, True) for i in range(500)]
    assert await cache.aget("n") == 500
    clients = raw_client(redis_server).client_list()
    assert 0 < sum(1 for c in clients if c["name"] == name) <= 8  # tasks waited for slots
    assert cache.stats()["errors"] == 0
    await cache.aclear()
    await cache.aclose()


def test_each_event_loop_gets_its_own_pool(redis_server: Server) -> None:
    cache = make(redis_server.url)

    async def use(value: int) -> Any:
        await cache.aset("k", value)
        return await cache.aget("k"), asyncio.get_running_loop()

    first, loop1 = asyncio.run(use(1))
    second, loop2 = asyncio.run(use(2))  # a new loop: no "attached to a different loop"
    assert (first, second) == (1, 2)
    assert loop1 not in redis_client._loop_pools  # closed loops are forgotten
    assert loop2 in redis_client._loop_pools
    cache.clear()


async def test_aclose_closes_this_loops_connections(redis_server: Server) -> None:
    cache = make(redis_server.url)
    await cache.aset("k", 1)
    loop = asyncio.get_running_loop()
    assert cache._client.pools_id in redis_client._loop_pools[loop]
    await cache.aclose()
    assert cache._client.pools_id not in redis_client._loop_pools[loop]
    assert await cache.aget("k") == 1  # reopens on demand
    await cache.aclear()
    await cache.aclose()


# -- authentication ----------------------------------------------------------------------------


def test_password_authentication(auth_server: Server) -> None:
    cache = make(auth_server.url)
    assert f":{PASSWORD}@" in auth_server.url
    cache.set("k", "v")
    assert cache.get("k") == "v"
    assert PASSWORD not in repr(cache) and PASSWORD not in str(cache.stats())
    cache.clear()


def test_wrong_or_missing_password_fails_open_without_leaking_it(
    auth_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = f"redis://:wrong-{PASSWORD}@127.0.0.1:{auth_server.port}"
    missing = f"redis://127.0.0.1:{auth_server.port}"
    with caplog.at_level(logging.WARNING, logger="lexigram_cache_django"):
        for location in (wrong, missing):
            cache = make(location)
            assert cache.get("k", "dflt") == "dflt"
            assert cache.set("k", "v") is False
            assert cache.stats()["errors"] == 2
    assert "failed" in caplog.text
    assert PASSWORD not in caplog.text

    strict = make(wrong, FAIL_SILENTLY=False)
    with pytest.raises(CacheBackendError) as err:
        strict.get("k")
    assert PASSWORD not in str(err.value)
    assert "***" in str(err.value)
    assert isinstance(err.value.__cause__, redis.AuthenticationError)


# -- a server that goes away -------------------------------------------------------------------


def test_a_stopped_server_fails_open_fast_and_clearly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_redis(password=PASSWORD)
    cache = make(server.url)
    strict = make(server.url, FAIL_SILENTLY=False)
    cache.set("k", "v")
    assert cache.get("k") == "v"
    server.stop()

    with caplog.at_level(logging.WARNING, logger="lexigram_cache_django"):
        assert cache.get("k", "dflt") == "dflt"
        assert cache.set("k", "v") is False
        assert cache.add("k2", "v") is False
        assert cache.touch("k") is False
        assert cache.delete("k") is False
        assert cache.has_key("k") is False
        assert cache.incr("k") is None
        assert cache.get_many(["k", "k2"]) == {}
        assert cache.set_many({"a": 1, "b": 2}) == ["a", "b"]
        cache.delete_many(["a", "b"])
        cache.clear()
        assert cache.ttl("k") == 0
        assert cache.keys("*") == []
        assert cache.delete_pattern("*") == 0
        assert cache.get_or_set("g", "computed", wait_timeout=0.1) == "computed"
    assert cache.stats()["errors"] >= 14
    assert "server_error" in cache.store_stats()
    assert PASSWORD not in caplog.text

    with pytest.raises(CacheBackendError) as err:
        strict.get("k")
    message = str(err.value)
    assert "RedisCache get failed at redis://:***@127.0.0.1:" in message
    assert PASSWORD not in message
    # Refused at once (nothing listens), not a timeout: the clear, fast failure; or, once
    # those refusals opened the breaker, not sent at all.
    assert _refused_or_short_circuited(err.value.__cause__)
    assert not isinstance(err.value.__cause__, redis.TimeoutError)


async def test_a_stopped_server_fails_open_in_async_too() -> None:
    server = start_redis()
    cache = make(server.url)
    strict = make(server.url, FAIL_SILENTLY=False)
    await cache.aset("k", "v")
    server.stop()
    assert await cache.aget("k", "dflt") == "dflt"
    assert await cache.aset("k", "v") is False
    assert await cache.aadd("k", "v") is False
    assert await cache.adelete("k") is False
    assert await cache.ahas_key("k") is False
    assert await cache.aincr("k") is None
    assert await cache.aget_many(["k"]) == {}
    assert await cache.aset_many({"a": 1}) == ["a"]
    assert await cache.akeys("*") == []
    with pytest.raises(CacheBackendError) as err:
        await strict.aget("k")
    assert _refused_or_short_circuited(err.value.__cause__)
    await cache.aclose()
    await strict.aclose()


def _refused_or_short_circuited(cause: BaseException | None) -> bool:
    if isinstance(cause, CacheServerError):
        return cause.short_circuited
    return isinstance(cause, redis.ConnectionError)
