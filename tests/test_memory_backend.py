"""MemoryCache beyond Django's own suite: isolation, LRU/TTL, counters, threads, async."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest

from lexigram_cache_django.backends.memory import MemoryCache
from lexigram_cache_django.backends.memory_store import COPIED, HEAD_COPIED, PICKLED, RAW


def make_cache(**options: Any) -> MemoryCache:
    params: dict[str, Any] = {"OPTIONS": options}
    for name in ("TIMEOUT", "KEY_FUNCTION", "KEY_PREFIX"):
        if name in options:
            params[name] = options.pop(name)
    cache = MemoryCache(f"test-{uuid.uuid4()}", params)
    return cache


def test_mutable_values_are_isolated_from_the_caller() -> None:
    cache = make_cache()
    value = {"pets": ["Rex"]}
    cache.set("k", value)
    value["pets"].append("Tom")  # mutate after set
    got = cache.get("k")
    assert got == {"pets": ["Rex"]}
    got["pets"].append("Kit")  # mutate what get returned
    assert cache.get("k") == {"pets": ["Rex"]}


def test_immutable_values_are_stored_without_pickling() -> None:
    cache = make_cache()
    for value in ("text", b"bytes", 42, 1.5, True, None):
        cache.set("k", value)
        entry = cache._store.data[cache.make_and_validate_key("k")]
        assert entry.form == RAW
        assert cache.get("k", default="missing") == value
    cache.set("k", [1, 2])
    assert cache._store.data[cache.make_and_validate_key("k")].form == PICKLED


def test_tuples_of_immutable_values_are_stored_without_pickling() -> None:
    """A cached model row is ``(attnames, values)``: kept as it is, so a read decodes
    nothing. A tuple that reaches anything mutable is pickled, and stays isolated."""
    import datetime
    from decimal import Decimal

    cache = make_cache()

    def pickled(key: str) -> bool:
        return cache._store.data[cache.make_and_validate_key(key)].form == PICKLED

    when = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
    row = (
        ("id", "name", "born", "price", "tag"),
        (1, "Rex", when, Decimal("1.5"), uuid.UUID(int=7)),
    )
    cache.set("row", row)
    assert not pickled("row") and cache.get("row") == row
    for mutable in ((1, [2]), (1, {"a": 1}), ((1, (2, [3])),), (1, bytearray(b"x"))):
        cache.set("t", mutable)
        assert pickled("t"), mutable
    items = [1]
    cache.set("t", (0, items))
    items.append(2)
    assert cache.get("t") == (0, [1])


def test_flat_dicts_are_copied_not_pickled_and_stay_isolated() -> None:
    """A dict of str keys and immutable values is copied in and out (a cached model row
    is one); a dict reaching anything mutable, or with other keys, is pickled."""
    cache = make_cache()
    key = cache.make_and_validate_key("d")
    value = {"id": 1, "name": "Rex", "born": None, "tags": ("a", "b")}
    cache.set("d", value)
    assert cache._store.data[key].form == COPIED
    value["name"] = "Tom"  # mutate after set
    got = cache.get("d")
    assert got == {"id": 1, "name": "Rex", "born": None, "tags": ("a", "b")}
    got["name"] = "Kit"  # mutate what get returned
    assert cache.get("d")["name"] == "Rex"
    assert cache.get_many(["d"])["d"]["name"] == "Rex"
    for other in ({"a": [1]}, {1: "int key"}, {"a": {"b": 1}}):
        cache.set("d", other)
        assert cache._store.data[key].form == PICKLED, other
        assert cache.get("d") == other


def test_a_tuple_headed_by_a_flat_dict_gets_its_head_copied_and_stays_isolated() -> None:
    """``(answer, metadata...)``, a semantic cache entry's shape: the dict is copied in and
    out, the immutable rest kept; anything else reaching something mutable is pickled."""
    cache = make_cache()
    key = cache.make_and_validate_key("t")
    head = {"answer": "Django is a web framework", "tokens": 42}
    value = (head, 1.0, True, "what is django?", ("a", "b"), None)
    cache.set("t", value)
    assert cache._store.data[key].form == HEAD_COPIED
    head["answer"] = "changed"  # mutate after set
    got = cache.get("t")
    assert got == ({"answer": "Django is a web framework", "tokens": 42}, *value[1:])
    got[0]["answer"] = "mutated"  # mutate what get returned
    assert cache.get("t")[0]["answer"] == "Django is a web framework"
    assert cache.get_many(["t"])["t"][0]["answer"] == "Django is a web framework"
    assert cache.get_made(key)[0]["answer"] == "Django is a web framework"
    for other in (({"a": 1}, [2]), ({"a": [1]}, 2), ({1: "a"}, 2), ({"a": 1}, {"b": 2})):
        cache.set("t", other)
        assert cache._store.data[key].form == PICKLED, other
        assert cache.get("t") == other


def _child_reads(cache: MemoryCache, server: str, out: Any) -> None:
    from lexigram_cache_django.failfast import breaker_for

    breaker_for(server).failure()  # takes the breaker's lock
    out.put(cache.get("k"))


def test_a_forked_child_is_not_blocked_by_a_lock_held_at_the_fork() -> None:
    """A thread of the parent holds the store's lock (or a breaker's) at fork(): the child,
    which has no such thread, reads with locks of its own."""
    import multiprocessing

    from lexigram_cache_django.failfast import breaker_for

    cache = make_cache()
    cache.set("k", "v")
    server = f"fork-test-{uuid.uuid4().hex[:6]}:1"
    breaker = breaker_for(server)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with cache._store.lock, breaker._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_child_reads, args=(cache, server, out), daemon=True)
        child.start()
        try:
            assert out.get(timeout=5) == "v"
            child.join(5)
            assert child.exitcode == 0
        finally:
            if child.is_alive():
                child.kill()  # it waited on a lock forever
    finally:
        release.set()
        holder.join()
    assert breaker.allow()


def test_lru_eviction_and_counters() -> None:
    cache = make_cache(MAX_ENTRIES=4, CULL_FREQUENCY=2)
    for i in range(4):
        cache.set(f"k{i}", i)
    cache.get("k0")  # k0 becomes most recently used; k1 is now the oldest
    cache.set("k4", 4)  # full: culls 4 // 2 = 2 least recently used (k1, k2)
    assert cache.get_many(["k0", "k1", "k2", "k3", "k4"]) == {"k0": 0, "k3": 3, "k4": 4}
    stats = cache.stats()
    assert stats["evictions"] == 2
    assert stats["entries"] == 3


def test_cull_frequency_zero_empties_the_cache() -> None:
    cache = make_cache(MAX_ENTRIES=3, CULL_FREQUENCY=0)
    for i in range(4):
        cache.set(f"k{i}", i)
    assert cache.stats()["entries"] == 1
    assert cache.get("k3") == 3


def test_expiry_is_counted_and_entry_dropped() -> None:
    cache = make_cache()
    cache.set("short", "v", timeout=0.05)
    cache.set("long", "v", timeout=60)
    time.sleep(0.1)
    assert cache.get("short") is None
    assert cache.get("long") == "v"
    stats = cache.stats()
    assert stats["expirations"] == 1
    assert stats["entries"] == 1
    assert (stats["hits"], stats["misses"]) == (1, 1)


def test_counters_track_operations() -> None:
    cache = make_cache()
    cache.set("a", 1)
    cache.set_many({"b": 2, "c": 3})
    cache.get("a")
    cache.get("zz")
    cache.get_many(["a", "b", "nope"])
    cache.delete("a")
    cache.delete("never-there")
    stats = cache.stats()
    assert stats["sets"] == 3
    assert stats["hits"] == 3
    assert stats["misses"] == 2
    assert stats["deletes"] == 1
    assert stats["hit_rate"] == pytest.approx(0.6)
    assert stats["backend"] == "memory"
    cache.reset_stats()
    assert cache.stats()["hits"] == 0


def test_aliases_with_the_same_location_share_a_store() -> None:
    location = f"shared-{uuid.uuid4()}"
    first = MemoryCache(location, {})
    second = MemoryCache(location, {})
    other = MemoryCache(f"other-{uuid.uuid4()}", {})
    first.set("k", "v")
    assert second.get("k") == "v"
    assert other.get("k") is None


def test_threads_incr_exactly() -> None:
    cache = make_cache()
    cache.set("n", 0)

    def work() -> None:
        for _ in range(2000):
            cache.incr("n")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("n") == 16000
    assert cache.stats()["entries"] == 1


def test_threads_set_and_get_with_culling_keep_the_bound() -> None:
    cache = make_cache(MAX_ENTRIES=50)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(1000):
                cache.set(f"{n}-{i}", {"i": i})
                got = cache.get(f"{n}-{i}")
                assert got is None or got == {"i": i}
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.stats()["entries"] <= 50


def test_async_methods_run_on_the_calling_thread() -> None:
    """No sync_to_async hop: the key function runs on the event loop's own thread."""
    seen: list[int] = []

    def key_func(key: str, prefix: str, version: int) -> str:
        seen.append(threading.get_ident())
        return f"{prefix}:{version}:{key}"

    cache = make_cache(KEY_FUNCTION=key_func)

    async def scenario() -> Any:
        await cache.aset("a", {"x": 1})
        await cache.aset_many({"b": 2, "c": 3})
        await cache.aincr("b")
        return await cache.aget("a"), await cache.aget_many(["a", "b", "c", "d"])

    loop_thread: list[int] = []

    async def main() -> Any:
        loop_thread.append(threading.get_ident())
        return await scenario()

    got = asyncio.run(main())
    assert got == ({"x": 1}, {"a": {"x": 1}, "b": 3, "c": 3})
    assert seen and set(seen) == {loop_thread[0]}


async def test_many_tasks_share_one_cache() -> None:
    cache = make_cache()
    await asyncio.gather(*(cache.aset(f"k{i}", i) for i in range(300)))
    values = await asyncio.gather(*(cache.aget(f"k{i}") for i in range(300)))
    assert values == list(range(300))
    assert await cache.ahas_key("k1")
    await cache.adelete_many([f"k{i}" for i in range(300)])
    assert await cache.aget_many([f"k{i}" for i in range(300)]) == {}


def test_memoized_keys_follow_prefix_and_version_changes() -> None:
    cache = make_cache()
    cache.set("k", "v1")
    cache.key_prefix = "other"
    assert cache.get("k") is None
    cache.key_prefix = ""
    assert cache.get("k") == "v1"
    cache.version = 2
    assert cache.get("k") is None


def test_invalid_keys_warn_every_time() -> None:
    from django.core.cache import CacheKeyWarning

    cache = make_cache()
    for _ in range(2):  # not memoized: the warning repeats
        with pytest.warns(CacheKeyWarning):
            cache.set("key with spaces", 1)
    with pytest.warns(CacheKeyWarning):
        cache.get("x" * 300)
