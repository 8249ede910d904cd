"""MemcachedCache on real memcached processes: multi-server, dead nodes, large values, keys.

Django's own memcached test suite runs against the backend through scripts/test.sh; these
tests cover what it does not: several servers, a node going down, values over memcached's
item size, fail-open, both async paths (our asyncio client and worker threads), and the primitives
stampede protection and tags build on.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.cache.backends.base import InvalidCacheKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError

from lexigram_cache_django.backends import memcached as mc
from lexigram_cache_django.backends.memcached import MemcachedCache, MemcachedIncrError
from lexigram_cache_django.backends.memcached import client as mc_client
from lexigram_cache_django.exceptions import CacheBackendError, CacheIncrError
from tests.servers import Server, start_memcached

pytestmark = pytest.mark.memcached

ASYNC_CLIENTS = ["thread", "asyncio"]


def make(location: Any, **options: Any) -> MemcachedCache:
    params = {"KEY_PREFIX": f"t{uuid.uuid4().hex[:10]}", "OPTIONS": options}
    return MemcachedCache(location, params)


def raw_client(server: Server) -> Client:
    return Client(("127.0.0.1", server.port), default_noreply=False)


@pytest.fixture
def cache(memcached_server: Server) -> MemcachedCache:
    return make(memcached_server.address)


@pytest.fixture(params=ASYNC_CLIENTS)
async def async_cache(
    request: pytest.FixtureRequest, memcached_server: Server
) -> AsyncIterator[MemcachedCache]:
    yield make(memcached_server.address, ASYNC_CLIENT=request.param)
    await mc.aclose_async_clients()  # they belong to this test's event loop


@pytest.fixture
def two_fresh_servers() -> Iterator[list[Server]]:
    """Two servers of this test's own: it may stop one."""
    servers = [start_memcached(), start_memcached()]
    yield servers
    for server in servers:
        server.stop()


# -- Django's API and memcached's rules ---------------------------------------------------------


def test_round_trip_of_values_and_raw_integers(cache: MemcachedCache) -> None:
    cache.set("s", "text")
    cache.set("d", {"a": [1, 2]})
    cache.set("n", 41)
    assert cache.get_many(["s", "d", "n", "missing"]) == {"s": "text", "d": {"a": [1, 2]}, "n": 41}
    # Plain ints are stored as ASCII digits, so memcached's own incr works on them.
    assert cache.get_client().get(cache.make_key("n")) == b"41"
    assert cache.incr("n") == 42
    assert cache.decr("n", 50) == 0  # memcached's decr stops at 0, as Django's backend does
    assert cache.incr("n", -1) == 0


def test_incr_errors(cache: MemcachedCache) -> None:
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    for value in ("text", -5, 2**70):
        cache.set("bad", value)
        with pytest.raises(MemcachedIncrError) as raised:
            cache.incr("bad")
        assert isinstance(raised.value, CacheIncrError)
        assert isinstance(raised.value, MemcacheClientError)  # what Django's tests expect


def test_set_many_delete_many_touch_add(cache: MemcachedCache) -> None:
    data = {f"k{i}": i for i in range(50)}
    assert cache.set_many(data) == []
    assert cache.get_many(list(data)) == data
    assert cache.add("k1", "other") is False
    assert cache.add("new", "v") is True
    assert cache.touch("k1", 100) is True
    assert cache.touch("absent", 100) is False
    cache.delete_many(list(data))
    assert cache.get_many(list(data)) == {}
    assert cache.delete("new") is True
    assert cache.delete("new") is False


@pytest.mark.parametrize(
    "key", ["a" * 251, "with space", "tab\tkey", "nl\nkey", "del\x7fkey"], ids=repr
)
def test_invalid_keys_raise_every_time(cache: MemcachedCache, key: str) -> None:
    for _ in range(2):  # never memoized: the second call raises too
        for call in (
            lambda: cache.get(key),
            lambda: cache.set(key, 1),
            lambda: cache.get_many([key, "ok"]),
            lambda: cache.set_many({key: 1}),
            lambda: cache.delete_many([key]),
            lambda: cache.incr(key),
        ):
            with pytest.raises(InvalidCacheKey, match="memcached"):
                call()


def test_unicode_keys_work(cache: MemcachedCache) -> None:
    cache.set("ключ-Iñtërnâtiônàlizætiøn", "value")
    assert cache.get("ключ-Iñtërnâtiônàlizætiøn") == "value"


def test_timeouts_follow_djangos_memcached_rules(cache: MemcachedCache) -> None:
    assert cache.get_backend_timeout(None) == 0
    assert cache.get_backend_timeout(0) == -1
    assert cache.get_backend_timeout(60) == 60
    month_and_a_day = 31 * 24 * 3600
    assert cache.get_backend_timeout(month_and_a_day) > 1_000_000_000  # absolute time
    cache.set("far", "v", month_and_a_day)
    cache.set("zero", "v", 0)
    assert cache.get("far") == "v"
    assert cache.get("zero") is None


def test_enumeration_is_refused_with_the_reason(cache: MemcachedCache) -> None:
    for call in (cache.keys, cache.iter_keys, cache.delete_pattern):
        with pytest.raises(NotImplementedError, match="cannot enumerate keys"):
            call("*")


def test_unsupported_serde_option_is_refused(memcached_server: Server) -> None:
    with pytest.raises(Exception, match="SERIALIZER"):
        make(memcached_server.address, serde=object())


# -- large values ----------------------------------------------------------------------------------


def test_a_large_compressible_value_is_compressed_to_fit(cache: MemcachedCache) -> None:
    big = "a" * (2 * 1024 * 1024)  # 2 MiB: over memcached's 1 MiB item size
    cache.set("big", big)
    assert cache.get("big") == big
    assert len(cache.get_client().get(cache.make_key("big"))) < 100_000


def test_an_incompressible_value_over_the_item_size_fails_cleanly(cache: MemcachedCache) -> None:
    noise = os.urandom(1_200_000)  # random: zlib cannot shrink it
    cache.set("k", "old")
    errors = cache.stats()["errors"]
    assert cache.set("k", noise) is False
    assert cache.get("k") is None  # the old value is gone, as Django's backend ensures
    assert cache.stats()["errors"] == errors + 1
    assert cache.set_many({"k": noise, "small": 1}) == ["k"]
    assert cache.get("small") == 1  # nothing else broke
    strict = make(cache._servers[0], FAIL_SILENTLY=False)
    with pytest.raises(CacheBackendError, match="after compression"):
        strict.set("k", noise)


def test_max_item_bytes_follows_the_server(memcached_server: Server) -> None:
    server = start_memcached(item_size="2m")
    try:
        cache = make(server.address, MAX_ITEM_BYTES=2 * 1024 * 1024 - 512)
        noise = os.urandom(1_500_000)
        cache.set("k", noise)
        assert cache.get("k") == noise
    finally:
        server.stop()


# -- several servers --------------------------------------------------------------------------


def test_keys_spread_over_both_servers_and_read_back(memcached_servers: list[Server]) -> None:
    cache = make([s.address for s in memcached_servers])
    data = {f"key-{i}": i for i in range(200)}
    assert cache.set_many(data) == []
    assert cache.get_many(list(data)) == data
    assert all(cache.get(k) == v for k, v in list(data.items())[:20])
    made = [cache.make_key(k) for k in data]
    per_server = [len(raw_client(s).get_many(made)) for s in memcached_servers]
    assert sum(per_server) == len(data) and min(per_server) > 40  # both hold a share
    stats = cache.store_stats()
    assert stats["entries"] >= len(data) and len(stats["servers"]) == 2
    cache.delete_many(list(data))
    assert cache.get_many(list(data)) == {}
    assert sum(len(raw_client(s).get_many(made)) for s in memcached_servers) == 0


def test_location_string_with_separators(memcached_servers: list[Server]) -> None:
    cache = make(";".join(s.address for s in memcached_servers))
    assert cache._servers == [s.address for s in memcached_servers]
    cache.set("x", 1)
    assert cache.get("x") == 1


def quick_to_drop(servers: list[Server]) -> MemcachedCache:
    """Retry a failing node once at once, then mark it dead for an hour: no sleeping."""
    return make(
        [s.address for s in servers],
        retry_attempts=1,
        retry_timeout=0,
        dead_timeout=3600,
        CONNECT_TIMEOUT=0.5,
        SOCKET_TIMEOUT=0.5,
    )


def test_a_dead_node_is_skipped_and_the_other_keeps_serving(
    two_fresh_servers: list[Server],
) -> None:
    cache = quick_to_drop(two_fresh_servers)
    data = {f"key-{i}": i for i in range(100)}
    cache.set_many(data)
    made = {k: cache.make_key(k) for k in data}
    survivor, victim = two_fresh_servers
    on_survivor = set(raw_client(survivor).get_many(list(made.values())))
    kept = {k: v for k, v in data.items() if made[k] in on_survivor}
    assert 0 < len(kept) < len(data)

    victim.stop()
    # Every batch serves the survivor's keys from the first call on: the dead node's keys
    # read as misses (its breaker sees the failures), and once its retries are used up
    # pymemcache drops it from the ring.
    results = [cache.get_many(list(data)) for _ in range(6)]
    assert results == [kept] * 6
    for key, value in kept.items():
        assert cache.get(key) == value
    # The dead node's keys now live on the survivor.
    cache.set_many(data)
    assert cache.get_many(list(data)) == data
    assert cache.incr("key-1") == 2
    assert cache.store_stats()["servers"][victim.address].get("error")
    errors = cache.stats()["errors"]
    survivor.stop()  # every node failing: the batch fails open, counted once
    assert cache.get_many(list(data)) == {}
    assert cache.stats()["errors"] == errors + 1


async def test_a_dead_node_is_skipped_by_the_async_methods_too(
    two_fresh_servers: list[Server],
) -> None:
    cache = quick_to_drop(two_fresh_servers)
    data = {f"key-{i}": i for i in range(60)}
    await cache.aset_many(data)
    assert await cache.aget_many(list(data)) == data
    two_fresh_servers[1].stop()
    # Each of the async methods' worker threads has its own pymemcache client; each one's
    # batches serve the live node's keys from the first call on (BatchHashClient.get_many
    # fails per node), where pymemcache's HashClient emptied the whole batch until every
    # thread's client had dropped the node (7 to 13 empty results in a row).
    results = [await cache.aget_many(list(data)) for _ in range(30)]
    assert all(0 < len(found) < len(data) for found in results), [len(r) for r in results]
    await cache.aset_many(data)
    assert await cache.aget_many(list(data)) == data


def test_every_thread_hashes_a_key_to_the_same_node_once_one_is_dead(
    two_fresh_servers: list[Server],
) -> None:
    """A dead node is dead for the process: a thread that never talked to it writes and
    reads its keys on the survivor, as the thread that found it dead does."""
    cache = quick_to_drop(two_fresh_servers)
    data = {f"key-{i}": i for i in range(60)}
    two_fresh_servers[1].stop()
    for _ in range(4):  # fail, retry, fail: marked dead
        cache.get_many(list(data))

    def in_a_new_thread(fn: Any) -> Any:
        with ThreadPoolExecutor(max_workers=1) as pool:  # a thread with no client yet
            return pool.submit(fn).result()

    assert in_a_new_thread(lambda: cache.set_many(data)) == []
    assert in_a_new_thread(lambda: cache.get_many(list(data))) == data
    assert cache.get_many(list(data)) == data


def test_a_dead_node_comes_back_for_every_thread_after_dead_timeout(
    two_fresh_servers: list[Server],
) -> None:
    cache = make(
        [s.address for s in two_fresh_servers],
        retry_attempts=0,  # dead at the first failure
        dead_timeout=0.3,
        CONNECT_TIMEOUT=0.5,
        SOCKET_TIMEOUT=0.5,
        CIRCUIT_RESET_TIMEOUT=0.1,
    )
    victim = two_fresh_servers[1]
    data = {f"key-{i}": i for i in range(60)}
    victim.stop()
    cache.get_many(list(data))
    ring = cache._client.pymemcache().ring
    assert list(ring.dead) == [victim.address]
    victim.restart()
    time.sleep(0.5)  # past dead_timeout and the breaker's reset timeout
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(cache.set_many, data).result() == []
    assert ring.dead == {}
    on_victim = raw_client(victim).get_many([cache.make_key(k) for k in data])
    assert 0 < len(on_victim) < len(data)  # the victim holds its share again
    assert cache.get_many(list(data)) == data


def _connections(servers: list[Server]) -> int:
    return sum(int(raw_client(s).stats()[b"total_connections"]) for s in servers)


def _child_reads(cache: MemcachedCache, keys: list[str], out: Any) -> None:
    try:
        sync = cache.get_many(keys)
        both = asyncio.run(asyncio.wait_for(cache.aget_many(keys), 3))  # worker threads
        single = MemcachedCache(cache._servers[0], {"KEY_PREFIX": cache.key_prefix})
        asyncio.run(asyncio.wait_for(single.aget("k"), 3))  # the asyncio client
        out.put((sync, both, ""))
    except BaseException as exc:
        out.put(({}, {}, repr(exc)))


def test_a_forked_child_opens_its_own_connections_and_threads(
    memcached_servers: list[Server],
) -> None:
    """gunicorn's --preload forks after the master used the cache: the child must not read
    through the parent's sockets, nor hand async calls to worker threads it does not have
    (a call to them waited forever)."""
    cache = make([s.address for s in memcached_servers])
    data = {f"fork-{i}": i for i in range(20)}
    cache.set_many(data)
    assert asyncio.run(cache.aget_many(list(data))) == data  # worker threads started
    single = MemcachedCache(memcached_servers[0].address, {"KEY_PREFIX": cache.key_prefix})
    asyncio.run(single.aget("k"))  # an asyncio pool made
    before = _connections(memcached_servers)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(cache, list(data), out))
    child.start()
    sync, both, error = out.get(timeout=20)
    child.join(10)
    assert error == "" and child.exitcode == 0
    assert sync == data and both == data
    # The child connected to each server itself: sync, each worker thread, the asyncio pool.
    assert _connections(memcached_servers) - before >= len(memcached_servers) + 1
    assert cache.get_many(list(data)) == data  # the parent's connections are unharmed
    assert asyncio.run(cache.aget_many(list(data))) == data


def test_the_asyncio_client_is_refused_for_several_servers(memcached_servers: list[Server]) -> None:
    with pytest.raises(Exception, match="single host:port server"):
        make([s.address for s in memcached_servers], ASYNC_CLIENT="asyncio")


# -- fail-open ------------------------------------------------------------------------------


def test_a_down_server_fails_open_or_raises() -> None:
    server = start_memcached()
    address = server.address
    server.stop()
    cache = make(address, CONNECT_TIMEOUT=0.2, SOCKET_TIMEOUT=0.2)
    assert cache.get("k", "default") == "default"
    assert cache.set("k", 1) is False
    assert cache.add("k", 1) is False
    assert cache.delete("k") is False
    assert cache.get_many(["a", "b"]) == {}
    assert cache.set_many({"a": 1}) == ["a"]
    assert cache.incr("n") is None
    assert cache.store_stats()["servers"][address]["error"]
    assert cache.stats()["errors"] >= 6
    strict = make(address, FAIL_SILENTLY=False, CONNECT_TIMEOUT=0.2)
    with pytest.raises(CacheBackendError, match="get failed"):
        strict.get("k")


@pytest.mark.parametrize("choice", ASYNC_CLIENTS)
async def test_a_down_server_fails_open_in_async(choice: str) -> None:
    server = start_memcached()
    address = server.address
    server.stop()
    cache = make(address, ASYNC_CLIENT=choice, CONNECT_TIMEOUT=0.2, SOCKET_TIMEOUT=0.2)
    assert await cache.aget("k", "default") == "default"
    assert await cache.aset("k", 1) is False
    assert await cache.aget_many(["a"]) == {}
    strict = make(address, ASYNC_CLIENT=choice, FAIL_SILENTLY=False, SOCKET_TIMEOUT=0.2)
    with pytest.raises(CacheBackendError):
        await strict.aget("k")
    await mc.aclose_async_clients()


# -- async ------------------------------------------------------------------------------------


async def test_async_api(async_cache: MemcachedCache) -> None:
    cache = async_cache
    await cache.aset("a", {"x": 1})
    assert await cache.aget("a") == {"x": 1}
    assert await cache.aget("missing", "d") == "d"
    assert await cache.aadd("a", 2) is False
    assert await cache.aadd("b", 2) is True
    assert await cache.aincr("b", 5) == 7
    assert await cache.adecr("b") == 6
    with pytest.raises(ValueError):
        await cache.aincr("nope")
    cache.set("text", "t")
    with pytest.raises(MemcachedIncrError):
        await cache.aincr("text")
    assert await cache.atouch("a", 60) is True
    assert await cache.atouch("nope", 60) is False
    assert await cache.ahas_key("a") is True
    assert await cache.aset_many({"m1": 1, "m2": 2}) == []
    assert await cache.aget_many(["m1", "m2", "m3"]) == {"m1": 1, "m2": 2}
    await cache.adelete_many(["m1", "m2"])
    assert await cache.aget_many(["m1", "m2"]) == {}
    assert await cache.adelete("a") is True
    assert await cache.adelete("a") is False
    assert cache.get("b") == 6  # the sync client sees what the async one wrote
    assert await cache.aget_or_set("gos", lambda: "computed") == "computed"
    assert cache.get("gos") == "computed"


async def test_async_large_value(async_cache: MemcachedCache) -> None:
    big = "b" * (1536 * 1024)
    await async_cache.aset("big", big)
    assert await async_cache.aget("big") == big
    noise = os.urandom(1_200_000)
    assert await async_cache.aset("big", noise) is False
    assert await async_cache.aget("big") is None


# -- primitives for locks and tags ---------------------------------------------------------


def test_lock_primitives_release_only_for_the_owner(cache: MemcachedCache) -> None:
    key = cache.make_and_validate_key("lock:x")
    assert cache.lock_add(key, "me", 10)
    assert not cache.lock_add(key, "you", 10)
    assert cache.lock_owner(key) == "me"
    assert not cache.lock_release(key, "you")
    assert cache.lock_extend(key, "me", 20)
    assert not cache.lock_extend(key, "you", 20)
    assert cache.lock_release(key, "me")
    assert cache.lock_owner(key) is None
    assert cache.lock_add(key, "you", 10)


async def test_async_lock_primitives(async_cache: MemcachedCache) -> None:
    cache = async_cache
    key = cache.make_and_validate_key("alock:x")
    assert await cache.alock_add(key, "me", 10)
    assert not await cache.alock_add(key, "you", 10)
    assert not await cache.alock_release(key, "you")
    assert await cache.alock_extend(key, "me", 20)
    assert await cache.alock_owner(key) == "me"
    assert await cache.alock_release(key, "me")
    assert await cache.alock_owner(key) is None


def test_tagged_entries_go_stale_on_invalidation(cache: MemcachedCache) -> None:
    cache.set("a", 1, tags=["t"])
    cache.set_many({"b": 2, "c": 3}, tags=["t", "u"])
    cache.set("d", 4)
    assert cache.get_many(["a", "b", "c", "d"]) == {"a": 1, "b": 2, "c": 3, "d": 4}
    cache.invalidate_tags("t")
    assert cache.get_many(["a", "b", "c", "d"]) == {"d": 4}
    assert cache.get("a") is None and not cache.has_key("b")
    assert cache.add("a", "again", tags=["t"]) is True  # a stale entry reads as absent
    assert cache.get("a") == "again"
    assert cache.stats()["stale_by_tag"] >= 4


async def test_async_tags(async_cache: MemcachedCache) -> None:
    cache = async_cache
    await cache.aset("a", 1, tags=["t"])
    assert await cache.aget("a") == 1
    await cache.ainvalidate_tags("t")
    assert await cache.aget("a") is None
    assert await cache.aadd("a", 2, tags=["t"]) is True
    assert await cache.aget_many(["a"]) == {"a": 2}


async def test_closed_async_clients_are_replaced(memcached_server: Server) -> None:
    cache = make(memcached_server.address, ASYNC_CLIENT="asyncio")
    await cache.aset("k", 1)
    await mc.aclose_async_clients()
    assert await cache.aget("k") == 1  # a new client for this loop, not the closed one
    await mc.aclose_async_clients()


def test_get_or_set_entries_expire_on_time_and_outlive_it_on_the_server(
    cache: MemcachedCache,
) -> None:
    """memcached may drop an entry up to a second early: entries with an exact expiry get a
    second of slack on the server (so XFetch can refresh them before they vanish), and
    readers honour the exact expiry."""
    assert cache.get_or_set("k", lambda: "v", 1) == "v"
    cache.set("plain", "v", 1)
    client = cache.get_client()

    def server_ttl(key: str) -> int:
        reply = client.raw_command(f"mg {cache.make_and_validate_key(key)} t".encode(), b"\r\n")
        return int(reply.split(b" t")[1])

    assert server_ttl("k") == 2  # one second of slack
    assert server_ttl("plain") == 1  # plain set keeps Django's timeout
    time.sleep(1.1)
    assert cache.get("k") is None  # past its exact expiry, whatever the server does
    assert cache.get_many(["k"]) == {}
    assert cache.get_or_set("k", lambda: "again", 60) == "again"


# -- the key check behind every command --------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(
    key=st.one_of(
        st.text(st.characters(codec=None, exclude_categories=()), max_size=260),
        st.text(alphabet=" \t\r\n\x00\x0b\x0c\x7f\xa0\u2028az:", max_size=20),
        st.text(min_size=240, max_size=260),
        st.binary(max_size=30),
    ),
    unicode_keys=st.booleans(),
)
def test_the_fast_key_check_agrees_with_pymemcaches(key: Any, unicode_keys: bool) -> None:
    """Same bytes for every key pymemcache accepts; the same refusal for every other."""
    ours = mc_client.GuardedClient(("127.0.0.1", 1), allow_unicode_keys=unicode_keys)
    theirs = Client(("127.0.0.1", 1), allow_unicode_keys=unicode_keys)
    try:
        expected = theirs.check_key(key, b"")
    except Exception:  # e.g. MemcacheIllegalInputError, or UnicodeEncodeError (lone surrogate)
        with pytest.raises(Exception):  # noqa: B017 - a refusal too, whatever its type
            ours.check_key(key, b"")
    else:
        assert ours.check_key(key, b"") == expected
