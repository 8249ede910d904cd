"""RedisCache over fakeredis (``fake_redis()`` in settings): the Redis API with no server.

These test the fakeredis alias as users' tests would use it; the backend itself is tested
against real redis-server processes in the main suite.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import override_settings

from lexigram_cache_django.backends.redis import RedisCache
from lexigram_cache_django.backends.redis.connection import get_redis_connection
from lexigram_cache_django.testing import fake_redis

pytestmark = pytest.mark.usefixtures("lexigram_caches")


@pytest.fixture
def cache() -> RedisCache:
    backend = caches["default"]
    assert isinstance(backend, RedisCache)
    return backend


def test_plain_api_with_expiry(cache: RedisCache) -> None:
    cache.set("a", {"x": 1}, 30)
    cache.set("b", 2, None)
    assert cache.get("a") == {"x": 1}
    assert cache.ttl("a") == 30
    assert cache.ttl("b") is None
    assert cache.expire("b", 10)
    assert 0 < (cache.pttl("b") or 0) <= 10_000
    assert cache.persist("b")
    assert cache.incr("b", 3) == 5
    assert sorted(cache.keys("*")) == ["a", "b"]
    assert cache.delete_pattern("a*") == 1
    assert cache.get("a") is None


def test_tags_invalidate(cache: RedisCache) -> None:
    cache.set_with_tags("page:1", "one", tags=["pets"])
    cache.set_with_tags("page:2", "two", tags=["owners"])
    cache.invalidate_tags("pets")
    assert cache.get("page:1") is None
    assert cache.get("page:2") == "two"


def test_locks_run_their_lua_scripts(cache: RedisCache) -> None:
    lock = cache.lock("job", timeout=5, blocking=False)
    assert lock.acquire()
    assert not cache.lock("job", timeout=5, blocking=False).acquire()
    lock.extend(5)
    lock.release()
    assert cache.lock("job", timeout=5, blocking=False).acquire()


def test_data_structure_commands(cache: RedisCache) -> None:
    cache.hset("h", "f", [1, 2])
    assert cache.hgetall("h") == {"f": [1, 2]}
    assert cache.sadd("s", "a", "b") == 2
    assert cache.smembers("s") == {"a", "b"}
    cache.zadd("z", {"low": 1.0, "high": 2.0})
    assert cache.zrange("z", 0, -1) == ["low", "high"]


def test_the_raw_client_talks_to_the_same_fake_server(cache: RedisCache) -> None:
    raw = get_redis_connection("default")
    raw.set("raw", b"1")
    assert raw.ping()
    assert cache.get_client().get("raw") == b"1"
    cache.set("made", 1)
    assert raw.exists(cache.make_key("made")) == 1


async def test_async_sees_what_sync_wrote(cache: RedisCache) -> None:
    cache.set("shared", 1)
    assert await cache.aget("shared") == 1
    await cache.aset("from-async", 2, 30)
    assert cache.get("from-async") == 2
    assert await cache.attl("from-async") == 30
    async with cache.lock("alock", timeout=5):
        assert not await cache.lock("alock", timeout=5, blocking=False).aacquire()
    await cache.ainvalidate_tags("x")


def test_servers_are_shared_by_name_and_split_by_db() -> None:
    aliases = {"same": fake_redis("testing-project"), "db1": fake_redis("testing-project", 1)}
    with override_settings(CACHES={**caches.settings, **aliases}):
        caches["default"].set("k", "v")
        assert caches["same"].get("k") == "v"
        assert caches["db1"].get("k") is None
