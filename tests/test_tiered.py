"""TieredCache: L1 hits, L2 fills, writes through, tags, single flight, counters."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest

from lexigram_cache_django.backends.base import LexigramCache
from tests.conftest import BACKEND_PATHS, build_backend


def tiered_config(l2: str, request: pytest.FixtureRequest, **options: Any) -> dict[str, Any]:
    unique = uuid.uuid4().hex[:10]
    if l2 == "redis":
        l2_conf = {
            "BACKEND": BACKEND_PATHS["redis"],
            "LOCATION": request.getfixturevalue("redis_server").url,
        }
    else:
        l2_conf = {
            "BACKEND": BACKEND_PATHS["memcached"],
            "LOCATION": request.getfixturevalue("memcached_server").address,
        }
    return {
        "BACKEND": "lexigram_cache_django.backends.tiered.TieredCache",
        "KEY_PREFIX": f"t{unique}",
        "OPTIONS": {
            "L1": {"BACKEND": BACKEND_PATHS["memory"], "LOCATION": f"l1-{unique}"},
            "L2": l2_conf,
            **options,
        },
    }


def wait_bus(cache: Any) -> None:
    cache.get("bus-warm-up")
    deadline = time.monotonic() + 5
    while cache.stats()["bus"] not in ("up", "off") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.stats()["bus"] in ("up", "off")


@pytest.fixture(params=["redis", "memcached"])
def tiered(request: pytest.FixtureRequest) -> LexigramCache:
    cache = build_backend(tiered_config(request.param, request))
    wait_bus(cache)
    cache.reset_stats()
    return cache


def test_reads_fill_l1_and_count_per_tier(tiered: Any) -> None:
    tiered.set("a", {"x": 1}, 60)
    assert tiered.get("a") == {"x": 1}
    stats = tiered.stats()
    assert stats["l1_hits"] == 1 and stats["l2_hits"] == 0
    tiered._l1raw.clear()  # as if another process had written it
    assert tiered.get("a") == {"x": 1}  # L2 hit, fills L1
    assert tiered.get("a") == {"x": 1}  # L1 hit
    assert tiered.get("missing") is None
    stats = tiered.stats()
    assert (stats["l1_hits"], stats["l2_hits"], stats["tier_misses"]) == (2, 1, 1)
    assert stats["hits"] == 3 and stats["misses"] == 1


def test_fill_lifetime_follows_l2(tiered: Any) -> None:
    """A copy lives no longer than the L2 entry: get_or_set's entries carry their expiry
    (both L2s); on Redis plain ones are asked PTTL; memcached ones get L1_TIMEOUT."""
    tiered.get_or_set("short", "v", 1)
    tiered._l1raw.clear()
    assert tiered.get("short") == "v"
    time.sleep(1.3)
    assert tiered.get("short") is None  # neither tier keeps it past its lifetime
    if tiered.stats()["bus"] == "up":
        tiered.set("plain", "v", 1)
        tiered._l1raw.clear()
        assert tiered.get("plain") == "v"
        time.sleep(1.2)
        assert tiered.get("plain") is None


def test_writes_update_or_drop_l1(tiered: Any) -> None:
    tiered.set("k", 1)
    assert tiered.incr("k", 5) == 6
    assert tiered.get("k") == 6
    tiered.delete("k")
    assert tiered.get("k") is None
    tiered.set_many({"a": 1, "b": 2})
    assert tiered.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    tiered.delete_many(["a"])
    assert tiered.get_many(["a", "b"]) == {"b": 2}
    assert tiered.add("b", 3) is False and tiered.get("b") == 2
    tiered.clear()
    assert tiered.get("b") is None


def test_tags_drop_l1_entries_without_asking_l2(tiered: Any) -> None:
    tiered.set("page", "html", 60, tags=["pets"])
    assert tiered.get("page") == "html"
    l1_hits = tiered.stats()["l1_hits"]
    assert l1_hits >= 1
    tiered.invalidate_tags("pets")
    assert tiered.get("page") is None
    tiered.set("page", "html2", 60, tags=["pets"])
    tiered._l1raw.clear()
    assert tiered.get("page") == "html2"  # L2 hit, copied with L1's own tag versions
    assert tiered.get("page") == "html2"  # L1
    tiered.invalidate_tags("pets")
    assert tiered.get("page") is None


def test_get_or_set_single_flight_across_threads(tiered: Any) -> None:
    calls = []

    def compute() -> str:
        calls.append(1)
        time.sleep(0.05)
        return "value"

    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(tiered.get_or_set("hot", compute, 60)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["value"] * 8 and len(calls) == 1
    assert tiered.get("hot") == "value"
    assert tiered.get_or_set("hot", compute, 60) == "value" and len(calls) == 1


def test_get_or_set_with_tags_and_locks(tiered: Any) -> None:
    assert tiered.get_or_set("t", lambda: "one", 60, tags=["x"]) == "one"
    tiered.invalidate_tags("x")
    assert tiered.get_or_set("t", lambda: "two", 60, tags=["x"]) == "two"
    lock = tiered.lock("job", timeout=5)
    with lock:
        other = tiered.lock("job", timeout=5, blocking=False)
        assert other.acquire() is False  # held, in L2
        assert (
            len(tiered._l1raw.store_stats()) and tiered._l1raw.get(tiered._key("job", None)) is None
        )


def test_xfetch_refreshes_early_from_l1(tiered: Any) -> None:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        time.sleep(0.02)
        return len(calls) * 10 + 1  # not a raw int entry: keeps its XFetch metadata

    assert tiered.get_or_set("x", lambda: str(compute()), 2) == "11"
    assert tiered.get_entry(tiered._key("x", None))[1].delta > 0  # from L1, with metadata
    time.sleep(1.5)
    # XFetch refreshes when delta * beta * -ln(U) >= the 0.5 s left, U uniform in (0, 1]:
    # with delta >= 0.02 s and beta 1e6 it fails to refresh only if U > 0.999975 (beta 1000 left
    # a 2.5 % chance of no refresh, seen once in CI).
    value = tiered.get_or_set("x", lambda: str(compute()), 2, beta=1e6)
    assert value == "21" and len(calls) == 2
    assert tiered.stats()["early_refreshes"] == 1


def test_async_api(tiered: Any) -> None:
    async def run() -> None:
        await tiered.aset("a", "1", 60)
        assert await tiered.aget("a") == "1"
        assert await tiered.aget_many(["a", "b"]) == {"a": "1"}
        await tiered.aset_many({"b": 2})
        assert await tiered.aincr("b") == 3
        assert await tiered.ahas_key("b")
        await tiered.adelete("a")
        assert await tiered.aget("a") is None
        assert await tiered.aget_or_set("c", lambda: "c", 60) == "c"
        await tiered.ainvalidate_tags("none")
        await tiered.aclear()
        assert await tiered.aget("b") is None

    asyncio.run(run())


def test_memcached_l2_has_no_bus(request: pytest.FixtureRequest) -> None:
    cache: Any = build_backend(tiered_config("memcached", request, L1_TIMEOUT=5))
    assert cache.stats()["bus"] == "off"


def test_l2_down_l1_keeps_serving_without_bus(request: pytest.FixtureRequest) -> None:
    """Memcached L2 (no bus): what L1 holds is served while L2 is unreachable."""
    config = tiered_config("memcached", request)
    cache: Any = build_backend(config)
    cache.set("kept", "v", 60)
    cache._l2.__dict__.pop("_client", None)
    dead: Any = build_backend(
        {**config["OPTIONS"]["L2"], "LOCATION": "127.0.0.1:1", "OPTIONS": {"CONNECT_TIMEOUT": 0.2}}
    )
    dead.key_prefix, dead.key_func = cache._l2.key_prefix, cache._l2.key_func
    cache.__dict__["_l2"] = dead
    assert cache.get("kept") == "v"
    assert cache.get("other") is None


def test_check_tiered() -> None:
    from lexigram_cache_django.tiered_checks import check_tiered

    memory = {"BACKEND": BACKEND_PATHS["memory"]}
    memcached = {"BACKEND": BACKEND_PATHS["memcached"], "LOCATION": "127.0.0.1:1"}
    redis_l2 = {"BACKEND": BACKEND_PATHS["redis"], "LOCATION": "redis://127.0.0.1:1"}
    assert check_tiered("t", {"OPTIONS": {"L1": memory, "L2": redis_l2, "L1_TIMEOUT": 300}}) == []
    ids = [
        m.id
        for m in check_tiered("t", {"OPTIONS": {"L1": memory, "L2": memcached, "L1_TIMEOUT": 300}})
    ]
    assert ids == ["lexigram_cache.W102"]
    ids = [
        m.id for m in check_tiered("t", {"OPTIONS": {"L1": memory, "L2": memcached, "BUS": True}})
    ]
    assert ids == ["lexigram_cache.E105"]
    ids = [m.id for m in check_tiered("t", {"OPTIONS": {"L2": "no-such-alias"}})]
    assert ids == ["lexigram_cache.E101", "lexigram_cache.E102"]


def test_forked_child_starts_its_own_bus(request: pytest.FixtureRequest) -> None:
    """A child forked from a process whose bus is up bypasses L1 until its own listener
    has subscribed, then sees the parent's changes."""
    import os

    cache: Any = build_backend(tiered_config("redis", request))
    wait_bus(cache)
    cache.set("f", "before", 60)
    parent_origin = cache._bus.origin
    read_fd, write_fd = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report with an exit code, never return into pytest
        code = 1
        try:
            os.close(read_fd)
            ok = cache._bus.origin != parent_origin and cache.stats()["bus"] == "starting"
            ok = ok and cache.get("f") == "before"  # from L2: L1 bypassed
            wait_bus(cache)
            ok = ok and cache.get("f") == "before" and cache.get("f") == "before"
            os.write(write_fd, b"1")
            os.read(go_read, 1)  # the parent changed "f"
            deadline = time.monotonic() + 2
            while cache.get("f") != "after" and time.monotonic() < deadline:
                time.sleep(0.001)
            code = 0 if ok and cache.get("f") == "after" else 1
        finally:
            os._exit(code)
    os.close(write_fd)
    assert os.read(read_fd, 1) == b"1"
    cache.set("f", "after", 60)
    os.write(go_write, b"1")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_bad_keys_warn_and_are_hashed_for_memcached(tiered: Any) -> None:
    from django.core.cache.backends.base import CacheKeyWarning

    key = "a key with spaces " + "x" * 300
    with pytest.warns(CacheKeyWarning):
        tiered.set(key, "v", 60)
    with pytest.warns(CacheKeyWarning):
        assert tiered.get(key) == "v"
    with pytest.warns(CacheKeyWarning):
        assert tiered.get_or_set(key, lambda: "other", 60) == "v"


def test_a_fill_that_read_before_a_change_is_refused(tiered: Any) -> None:
    """The sequence-stamp rule: an L2 value read before a change never lands in L1 after
    it, whether the change is this process's (another thread) or arrives on the bus."""
    from lexigram_cache_django.backends.tiered.bus import KEYS, TAGS

    tiered.set("r", "old", 60, tags=["t"])
    final, bus = tiered._key("r", None), tiered._bus
    start = bus.seq
    entry = tiered._l2.get_entry(final)
    tiered.set("r", "new", 60)  # another thread's write lands after our read
    tiered._l1raw.clear()
    tiered._fill(bus, start, final, entry, 30.0)
    assert tiered._l1raw.get(final) is None
    assert tiered.get("r") == "new"
    # A message from another process naming the key, or one of the entry's tags.
    for kind, name in ((KEYS, final), (TAGS, tiered.tag_keys(["t"])[0])):
        tiered._l1raw.clear()
        start = bus.seq
        bus.apply("\0".join(("other-process", kind, name)))
        tiered._fill(bus, start - 1, final, entry, 30.0)
        assert tiered._l1raw.get(final) is None


def test_the_l2_key_prefix_comes_first(request: pytest.FixtureRequest) -> None:
    config = tiered_config("redis", request)
    config["OPTIONS"]["L2"]["KEY_PREFIX"] = "site"
    cache: Any = build_backend(config)
    assert cache.key_prefix == f"site:{config['KEY_PREFIX']}"
    cache.set("k", "v")
    assert cache._l2raw.get_client().exists(cache._key("k", None)) == 1
    assert cache._key("k", None).startswith("site:")


# -- batches fill L1; publishes go through L2's breaker --------------------------------------


def test_get_many_fills_l1_from_one_l2_read(tiered: Any) -> None:
    tiered.set_many({"a": 1, "b": 2}, 60)
    tiered.set("c", 3, 60, tags=["tc"])
    tiered._l1raw.clear()  # as if another process had written them
    assert tiered.get_many(["a", "b", "c", "d"]) == {"a": 1, "b": 2, "c": 3}
    stats = tiered.stats()
    assert (stats["l2_hits"], stats["tier_misses"]) == (3, 1)
    assert tiered.get_many(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    assert tiered.stats()["l1_hits"] == 3  # the copies were made
    expires = tiered._l1raw._store.data[tiered._key("a", None)].expires
    assert expires is not None and 0 < expires - time.time() <= tiered.l1_timeout
    tiered.invalidate_tags("tc")  # a copied entry keeps its tags
    assert tiered.get_many(["c"]) == {}


def test_get_many_copies_live_no_longer_than_l2(tiered: Any) -> None:
    """As single reads: entries that carry their expiry (get_or_set's), and on Redis plain
    ones (one pipelined PTTL); memcached plain ones get L1_TIMEOUT."""
    tiered.get_or_set("short", "v", 1)
    if tiered.stats()["bus"] == "up":
        tiered.set("plain", "v", 1)
    tiered._l1raw.clear()
    assert tiered.get_many(["short", "plain"]).get("short") == "v"
    time.sleep(1.3)
    assert tiered.get_many(["short", "plain"]) == {}


def test_aget_many_fills_l1(tiered: Any) -> None:
    async def run() -> None:
        await tiered.aset_many({"a": 1, "b": 2}, 60)
        tiered._l1raw.clear()
        assert await tiered.aget_many(["a", "b"]) == {"a": 1, "b": 2}
        assert await tiered.aget_many(["a", "b"]) == {"a": 1, "b": 2}

    asyncio.run(run())
    assert (tiered.stats()["l2_hits"], tiered.stats()["l1_hits"]) == (2, 2)


def test_a_batch_fill_that_read_before_a_change_is_refused(tiered: Any) -> None:
    """The fill-race guard of single reads, on batches: a change landing between the L2
    read and the copy keeps the old value out of L1."""
    tiered.set_many({"x": "old", "y": "old"}, 60)
    tiered._l1raw.clear()
    l2: Any = tiered._l2
    read = l2.get_entry_many

    def read_then_change(made: list[str]) -> Any:
        entries = read(made)
        tiered.set("x", "new", 60)  # another thread's write, after our read
        tiered._l1raw.delete_many([tiered._key("x", None)])
        return entries

    l2.get_entry_many = read_then_change
    try:
        assert tiered.get_many(["x", "y"]) == {"x": "old", "y": "old"}
    finally:
        del l2.get_entry_many
    assert tiered._l1raw.get(tiered._key("x", None)) is None  # refused
    assert tiered._l1raw.get(tiered._key("y", None)) == "old"  # unchanged: kept
    assert tiered.get("x") == "new"


def test_bus_publishes_go_through_l2s_breaker(request: pytest.FixtureRequest) -> None:
    cache: Any = build_backend(tiered_config("redis", request))
    wait_bus(cache)
    bus, breaker = cache._bus, cache._l2._client.breakers[0]
    sent, errors = bus.sent, bus.publish_errors
    cache.set("k", 1, 60)
    assert bus.sent == sent + 1
    breaker.trip()
    try:
        short = breaker.short_circuited
        cache._publish(bus, "k", ["some-key"])
        assert bus.sent == sent + 1 and bus.publish_errors == errors + 1
        assert breaker.short_circuited == short + 1  # not sent: counted by the breaker
        assert cache._l2.stats()["short_circuited"] >= 1
    finally:
        breaker.reset()
    cache._publish(bus, "k", ["some-key"])
    assert bus.sent == sent + 2
