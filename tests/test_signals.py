"""Signals: each sent with the right arguments on memory, Redis and Memcached (and tiered),
one per counted hit or miss, never built while no receiver listens."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.dispatch import Signal
from django.test import override_settings

from lexigram_cache_django import signals
from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.circuit import CircuitBreaker
from tests.conftest import BACKEND_PATHS, backend_config
from tests.servers import Server, start_memcached, start_redis
from tests.test_tiered import tiered_config, wait_bus

Heard = list[dict[str, Any]]


@pytest.fixture
def listen() -> Iterator[Callable[[Signal], Heard]]:
    """``listen(signal)`` -> the list each sending appends its arguments to."""
    connected: list[tuple[Signal, Callable[..., None]]] = []

    def connect(signal: Signal) -> Heard:
        heard: Heard = []

        def receiver(sender: Any, **kwargs: Any) -> None:
            kwargs.pop("signal")
            heard.append({"sender": sender, **kwargs})

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return heard

    yield connect
    for signal, receiver in connected:
        signal.disconnect(receiver)


@pytest.fixture
def aliased(backend_kind: str, request: pytest.FixtureRequest) -> Iterator[LexigramCache]:
    """A backend of each kind configured as the alias "sig" (so signals name it)."""
    config = backend_config(backend_kind, request)
    with override_settings(CACHES={"default": {"BACKEND": BACKEND_PATHS["memory"]}, "sig": config}):
        cache = caches["sig"]
        assert isinstance(cache, LexigramCache)
        yield cache
        cache.clear()


def test_hits_and_misses(aliased: LexigramCache, listen: Callable[[Signal], Heard]) -> None:
    hits, misses = listen(signals.cache_hit), listen(signals.cache_miss)
    aliased.set("a", {"v": 1})
    before = aliased.counters.snapshot()
    assert aliased.get("a") == {"v": 1}
    assert aliased.get("nope") is None
    assert aliased.get_many(["a", "b", "a"]) == {"a": {"v": 1}}
    assert aliased.get_or_set("a", "other") == {"v": 1}
    made = aliased.make_key
    assert [h["key"] for h in hits] == [made("a")] * 3
    assert [m["key"] for m in misses] == [made("nope"), made("b")]
    for heard in (*hits, *misses):
        assert heard["sender"] is type(aliased)
        assert heard["cache"] is aliased
        assert heard["alias"] == "sig"
    after = aliased.counters.snapshot()
    assert after["hits"] - before["hits"] == len(hits)  # one signal per counted read
    assert after["misses"] - before["misses"] == len(misses)


async def test_async_hits_and_misses(
    aliased: LexigramCache, listen: Callable[[Signal], Heard]
) -> None:
    hits, misses = listen(signals.cache_hit), listen(signals.cache_miss)
    await aliased.aset("a", "x")
    assert await aliased.aget("a") == "x"
    assert await aliased.aget("b") is None
    assert await aliased.aget_many(["a", "c"]) == {"a": "x"}
    assert [h["key"] for h in hits] == [aliased.make_key("a")] * 2
    assert [m["key"] for m in misses] == [aliased.make_key("b"), aliased.make_key("c")]


def test_no_receiver_no_work(aliased: LexigramCache, listen: Callable[[Signal], Heard]) -> None:
    """Without a receiver of the per-call signals nothing is built: the alias, which
    every sending looks up once per backend object, is never looked up."""
    invalidated = listen(signals.tags_invalidated)  # a receiver elsewhere changes nothing
    aliased.set("a", 1)
    aliased.get("a")
    aliased.get("nope")
    aliased.get_many(["a", "b"])
    aliased.get_or_set("c", 3)
    assert "alias_name" not in aliased.__dict__
    assert aliased.counters.hits >= 2 and aliased.counters.misses >= 2
    aliased.invalidate_tags("t")
    assert len(invalidated) == 1 and "alias_name" in aliased.__dict__


def test_tags_invalidated(aliased: LexigramCache, listen: Callable[[Signal], Heard]) -> None:
    heard = listen(signals.tags_invalidated)
    aliased.set("a", 1, tags=["pets", "owners"])
    aliased.invalidate_tags("pets", ["owners", "pets"])
    aliased.invalidate_tags()  # nothing to invalidate: no signal
    assert heard == [
        {"sender": type(aliased), "cache": aliased, "alias": "sig", "tags": ("owners", "pets")}
    ]
    assert aliased.get("a") is None


def test_receiver_may_use_the_cache(
    aliased: LexigramCache, listen: Callable[[Signal], Heard]
) -> None:
    """Signals are sent after the memory store's lock is released: no deadlock."""
    seen: list[Any] = []

    def receiver(sender: Any, cache: LexigramCache, key: str, **kwargs: Any) -> None:
        seen.append(cache.get_many(["other"]))  # reads the same store; no signal loop
        cache.set("other", key)

    signals.cache_hit.connect(receiver, weak=False)
    try:
        aliased.set("a", 1)
        assert aliased.get("a") == 1
    finally:
        signals.cache_hit.disconnect(receiver)
    assert seen == [{}]
    assert aliased.get("other") == aliased.make_key("a")


@pytest.mark.parametrize("backend_kind", ["memory"])
def test_evicted_on_memory(aliased: LexigramCache, listen: Callable[[Signal], Heard]) -> None:
    heard = listen(signals.cache_evicted)
    with override_settings(
        CACHES={
            "default": {"BACKEND": BACKEND_PATHS["memory"]},
            "small": {
                "BACKEND": BACKEND_PATHS["memory"],
                "LOCATION": f"small-{id(heard)}",
                "OPTIONS": {"MAX_ENTRIES": 3, "CULL_FREQUENCY": 3},
            },
        }
    ):
        cache = caches["small"]
        assert isinstance(cache, LexigramCache)
        for key in ("a", "b", "c"):
            cache.set(key, key)
        cache.get("a")  # b is now the least recently used
        assert heard == []
        cache.set("d", "d")  # full: cull len // 3 = 1 entry
        cache.add("e", "e")  # full again
        assert heard == [
            {"sender": type(cache), "cache": cache, "alias": "small", "keys": [cache.make_key(k)]}
            for k in ("b", "c")
        ]
        assert cache.counters.evictions == 2
        cache.set_many({"f": 1})
        assert heard[-1]["keys"] == [cache.make_key("a")]


def test_tiered_hits_and_misses(
    request: pytest.FixtureRequest, listen: Callable[[Signal], Heard]
) -> None:
    config = tiered_config("redis", request)
    with override_settings(CACHES={"default": {"BACKEND": BACKEND_PATHS["memory"]}, "t": config}):
        cache = caches["t"]
        assert isinstance(cache, LexigramCache)
        wait_bus(cache)
        hits, misses = listen(signals.cache_hit), listen(signals.cache_miss)
        cache.set("a", 1)
        assert cache.get("a") == 1  # L1
        assert cache.get_entry(cache.make_and_validate_key("a")) is not None  # L1, primitive
        assert cache.get("b") is None
        assert cache.get_many(["a", "c"]) == {"a": 1}
        mine = [h for h in hits if h["alias"] == "t"]
        assert [h["key"] for h in mine] == [cache.make_and_validate_key("a")] * 3
        assert [m["key"] for m in misses if m["alias"] == "t"] == [
            cache.make_and_validate_key(k) for k in ("b", "c")
        ]
        assert all(h["sender"] is type(cache) for h in mine)
        cache.clear()


# -- breakers: a server of our own per test, so its breaker is fresh ----------------------


@pytest.fixture(params=["redis", "memcached"])
def own_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    server = start_redis() if request.param == "redis" else start_memcached()
    yield server
    server.stop()


def test_circuit_opened_and_closed(own_server: Server, listen: Callable[[Signal], Heard]) -> None:
    opened, closed = listen(signals.circuit_opened), listen(signals.circuit_closed)
    config = {
        "BACKEND": BACKEND_PATHS[own_server.kind],
        "LOCATION": own_server.url,
        "OPTIONS": {"CIRCUIT_FAILURES": 2, "CIRCUIT_RESET_TIMEOUT": 0.2},
    }
    with override_settings(CACHES={"default": {"BACKEND": BACKEND_PATHS["memory"]}, "c": config}):
        cache = caches["c"]
        assert isinstance(cache, LexigramCache)
        cache.set("a", 1)
        (breaker,) = cache.breakers()
        own_server.kill()
        for _ in range(4):
            assert cache.get("a") is None  # fails open; opens after 2 failures
        assert breaker.state.value == "open"
        assert len(opened) == 1 and closed == []
        assert opened[0]["sender"] is CircuitBreaker
        assert opened[0]["server"] == breaker.server
        assert opened[0]["failures"] == 2
        assert opened[0]["error"]
        own_server.restart()
        deadline = time.monotonic() + 10
        while breaker.state.value != "closed" and time.monotonic() < deadline:
            time.sleep(0.05)
            cache.get("a")  # the trial after the reset timeout closes it
        assert len(closed) == 1 and len(opened) == 1
        assert closed[0]["server"] == breaker.server
        assert closed[0]["seconds"] > 0
        assert closed[0]["short_circuited"] >= 1


def test_raising_circuit_receiver_is_logged_not_raised(
    own_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    def receiver(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.circuit_opened.connect(receiver, weak=False)
    config = {
        "BACKEND": BACKEND_PATHS[own_server.kind],
        "LOCATION": own_server.url,
        "OPTIONS": {"CIRCUIT_FAILURES": 1},
    }
    try:
        with override_settings(
            CACHES={"default": {"BACKEND": BACKEND_PATHS["memory"]}, "c": config}
        ):
            cache = caches["c"]
            assert isinstance(cache, LexigramCache)
            own_server.kill()
            assert cache.get("a") is None
            assert cache.breakers()[0].state.value == "open"
    finally:
        signals.circuit_opened.disconnect(receiver)
    assert "receiver bug" in caplog.text


def test_memory_get_is_swapped_only_while_listened_to() -> None:
    """The memory backend's hottest read is the signal-free one unless a receiver of hits
    or misses is connected (any other signal's receiver changes nothing)."""
    from lexigram_cache_django.backends.memory import MemoryCache

    def receiver(sender: Any, **kwargs: Any) -> None:
        pass

    assert MemoryCache.get is MemoryCache._get_quiet
    signals.tags_invalidated.connect(receiver)
    assert MemoryCache.get is MemoryCache._get_quiet
    signals.cache_miss.connect(receiver)
    assert MemoryCache.get is MemoryCache._get_signalling
    signals.cache_miss.disconnect(receiver)
    signals.tags_invalidated.disconnect(receiver)
    assert MemoryCache.get is MemoryCache._get_quiet
