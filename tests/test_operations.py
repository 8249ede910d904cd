"""operations.py against real servers: memory, Redis, Memcached, and Django's own backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from lexigram_cache_django import operations, site_metrics
from lexigram_cache_django.operations import CannotEnumerate, OperationError
from tests.conftest import backend_config
from tests.servers import start_memcached, start_redis

DEFAULT = {
    "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
    "LOCATION": "tests-default",
}


@pytest.fixture
def alias(backend_kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """CACHES with alias "c" of the parametrized kind, on this session's servers."""
    config = backend_config(backend_kind, request)
    with override_settings(CACHES={"default": DEFAULT, "c": config}):
        yield "c"
        caches["c"].clear()


def lexigram(alias: str) -> Any:
    """``caches[alias]`` typed loosely: the extensions (tags=, invalidate_tags) are ours."""
    return caches[alias]


def configure(**entries: dict[str, Any]) -> Any:
    return override_settings(CACHES={"default": DEFAULT, **entries})


# -- aliases, stats ----------------------------------------------------------------------------


def test_aliases_lists_every_configured_alias(alias: str) -> None:
    assert operations.aliases() == ["default", "c"]


def test_unknown_alias_is_a_clear_error(alias: str) -> None:
    with pytest.raises(OperationError, match=r"unknown cache alias 'nope'.*default, c"):
        operations.alias_stats("nope")


def test_stats_counts_this_process_and_labels_the_server(alias: str, backend_kind: str) -> None:
    cache = caches[alias]
    cache.set("k", "v", 60)
    cache.get("k")
    cache.get("k")
    cache.get("missing")
    stats = operations.alias_stats(alias)
    assert stats["backend"] == backend_kind
    assert stats["process"]["hits"] == 2
    assert stats["process"]["misses"] == 1
    assert stats["process"]["sets"] == 1
    assert stats["process"]["hit_ratio"] == pytest.approx(2 / 3)
    server = stats["server"]
    if backend_kind == "memory":
        assert stats["site"] is None and stats["site_scope"] == "process"
        assert server["source"] == "memory store (this process)"
        assert server["entries"] == 1
        assert stats["latency"]["count"] == 0
    else:
        assert stats["site_scope"] == "site"
        assert stats["latency"]["count"] >= 4
        assert stats["latency"]["p50_ms"] > 0
        assert stats["latency"]["p99_ms"] >= stats["latency"]["p50_ms"]
        label = {"redis": "redis INFO", "memcached": "memcached stats"}[backend_kind]
        assert server["source"] == label
        assert server["entries"] >= 1


def test_site_totals_in_stats_after_a_flush(alias: str, backend_kind: str) -> None:
    if backend_kind == "memory":
        pytest.skip("memory is per process")
    cache = caches[alias]
    before = operations.alias_stats(alias)["site"]["hits"]
    cache.set("k", 1, 60)
    for _ in range(7):
        cache.get("k")
    site_metrics.flush_now()
    after = operations.alias_stats(alias)["site"]
    assert after["hits"] - before == 7


def test_stats_mask_the_password(redis_server: Any) -> None:
    secret = start_redis(password="s3cret-pw")
    try:
        with configure(c={"BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
                          "LOCATION": secret.url}):  # fmt: skip
            stats = operations.alias_stats("c")
            health = operations.alias_health("c")
        assert "s3cret-pw" not in repr(stats) and "s3cret-pw" not in repr(health)
        assert health["status"] == "up"
    finally:
        secret.stop()


def test_django_own_backends_give_what_can_be_known() -> None:
    locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ops-lm"}
    with configure(lm=locmem):
        caches["lm"].set("a", 1)
        stats = operations.alias_stats("lm")
        assert stats["lexigram"] is False and stats["process"] is None
        assert stats["server"] == {"source": "locmem (this process)", "entries": 1}
        assert operations.alias_health("lm")["status"] == "up"
        assert operations.inspect_key("lm", "a")["found"] is True
        with pytest.raises(CannotEnumerate):
            operations.list_keys("lm", "*")


# -- health ------------------------------------------------------------------------------------


def test_health_up_with_server_figures(alias: str, backend_kind: str) -> None:
    health = operations.alias_health(alias)
    assert health["status"] == "up"
    if backend_kind == "memory":
        assert health["servers"] == []
        return
    assert health["ping_ms"] is not None and health["breaker"] == "closed"
    assert health["version"]
    assert health["memory_used"] is not None and health["memory_used"] >= 0
    if backend_kind == "memcached":
        assert health["memory_limit"] == 64 << 20  # memcached -m 64
    assert health["eviction_policy"] in ("noeviction", "lru")


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_health_of_a_stopped_server_is_down(kind: str) -> None:
    server = start_redis() if kind == "redis" else start_memcached()
    path = {
        "redis": "lexigram_cache_django.backends.redis.RedisCache",
        "memcached": "lexigram_cache_django.backends.memcached.MemcachedCache",
    }[kind]
    try:
        with configure(c={"BACKEND": path, "LOCATION": server.url}):
            assert operations.alias_health("c")["status"] == "up"
            server.stop()
            first = operations.alias_health("c")
            assert first["status"] in ("down", "breaker_open")
            assert first["error"] or first["breaker"] == "open"
            assert operations.worst_status(["up", first["status"]]) == first["status"]
    finally:
        server.stop()


# -- get (inspect) -----------------------------------------------------------------------------


def test_inspect_value_ttl_size_and_tags(alias: str, backend_kind: str) -> None:
    cache = lexigram(alias)
    cache.set("k", {"n": 1, "text": "x" * 500}, 120, tags=["pets", "owners"])
    info = operations.inspect_key(alias, "k")
    assert info["found"] is True and info["type"] == "dict"
    assert info["value_preview"].startswith("{'n': 1, 'text': 'xxx")
    assert len(info["value_preview"]) <= operations.PREVIEW_CHARS
    assert info["ttl_known"] is True
    assert 0 < info["ttl_seconds"] <= 120
    assert {t["tag"] for t in info["tags"]} == {"pets", "owners"}
    assert all(t["current"] for t in info["tags"]) and info["stale_by_tag"] is False
    if backend_kind == "memory":  # a flat dict: copied, not pickled (memory_store)
        assert info["encoding"]["serializer"] == "copy"
    else:
        assert info["size_bytes"] > 0
        assert info["encoding"]["serializer"] == "pickle"
        assert info["encoding"]["has_meta"] is True
    cache.invalidate_tags("pets")
    stale = operations.inspect_key(alias, "k")
    assert stale["stale_by_tag"] is True
    assert {t["tag"]: t["current"] for t in stale["tags"]} == {"pets": False, "owners": True}


def test_inspect_compressed_and_native_entries(backend_kind: str, request: Any) -> None:
    if backend_kind == "memory":
        pytest.skip("memory stores Python objects, not bytes")
    config = backend_config(backend_kind, request, COMPRESS_MIN_BYTES=64)
    with configure(c=config):
        caches["c"].set("big", "y" * 5000, 60)
        info = operations.inspect_key("c", "big")
        assert info["encoding"]["serializer"] == "str"
        assert info["encoding"]["compression"] == "zlib"
        assert info["size_bytes"] < 5000
        assert info["value_preview"].startswith("'yyyy")
        assert operations.inspect_key("c", "absent")["found"] is False


# -- delete, keys, clear ------------------------------------------------------------------------


def test_delete_keys_counts_the_existing_ones(alias: str) -> None:
    cache = caches[alias]
    cache.set_many({"a": 1, "b": 2})
    assert operations.delete_keys(alias, ["a", "b", "never"]) == 2
    assert cache.get("a") is None


def test_list_keys_or_a_clear_refusal(alias: str, backend_kind: str) -> None:
    cache = caches[alias]
    cache.set_many({"user:1": 1, "user:2": 2, "other": 3})
    if backend_kind == "memcached":
        with pytest.raises(CannotEnumerate, match="memcached cannot list its keys"):
            operations.list_keys(alias, "user:*")
        return
    assert sorted(operations.list_keys(alias, "user:*")) == ["user:1", "user:2"]
    assert len(operations.list_keys(alias, "*", limit=2)) == 2
    with pytest.raises(OperationError, match="limit"):
        operations.list_keys(alias, "*", limit=0)


def test_clear_is_prefix_safe_and_reports_progress(redis_server: Any, request: Any) -> None:
    mine = backend_config("redis", request)
    theirs = backend_config("redis", request)
    with configure(c=mine, other=theirs):
        caches["c"].set_many({f"k{i}": i for i in range(1200)})
        caches["other"].set("kept", 1)
        seen: list[int] = []
        removed = operations.clear_alias("c", progress=seen.append)
        assert removed == 1200
        assert seen and seen[-1] == 1200 and seen == sorted(seen)
        assert caches["c"].get("k5") is None
        assert caches["other"].get("kept") == 1
        caches["other"].clear()


def test_clear_memory_and_memcached(alias: str, backend_kind: str) -> None:
    caches[alias].set_many({"a": 1, "b": 2})
    removed = operations.clear_alias(alias)
    assert caches[alias].get("a") is None
    if backend_kind == "memory":
        assert removed == 2
    elif backend_kind == "memcached":
        assert removed is None  # flush_all cannot count


# -- invalidate --------------------------------------------------------------------------------


def test_invalidate_string_tags(alias: str) -> None:
    cache = lexigram(alias)
    cache.set("k", 1, 60, tags=["menu"])
    assert operations.invalidate(alias=alias, tags=["menu"]) == ["menu"]
    assert cache.get("k") is None


@pytest.mark.django_db
def test_invalidate_model_and_rows_uses_model_invalidation_tags(alias: str) -> None:
    from example_project.petclinic.models import Pet

    cache = lexigram(alias)
    cache.set("all-pets", 1, 60, tags=[Pet])
    cache.set("pet-3", 1, 60, tags=[(Pet, 3)])
    cache.set("pet-4", 1, 60, tags=[(Pet, 4)])
    names = operations.invalidate(alias=alias, model="petclinic.Pet", pks=["3"])
    assert "row:petclinic.pet:3" in names
    assert cache.get("pet-3") is None
    assert cache.get("pet-4") == 1 and cache.get("all-pets") == 1
    assert operations.invalidate(alias=alias, model="petclinic.Pet") == ["model:petclinic.pet"]
    assert cache.get("all-pets") is None


def test_invalidate_refuses_bad_input(alias: str) -> None:
    with pytest.raises(OperationError, match="unknown model"):
        operations.invalidate(alias=alias, model="nope.Nothing")
    with pytest.raises(OperationError, match="--pk needs --model"):
        operations.invalidate(alias=alias, pks=["1"])
    with pytest.raises(OperationError, match="at least one tag"):
        operations.invalidate(alias=alias)


# -- doctor ------------------------------------------------------------------------------------


def _codes(findings: list[operations.Finding], alias: str) -> set[str]:
    return {f.code for f in findings if f.alias == alias}


def test_doctor_warns_on_noeviction_and_not_on_lru(redis_server: Any) -> None:
    lru = start_redis(extra_args=["--maxmemory-policy", "allkeys-lru"])
    path = "lexigram_cache_django.backends.redis.RedisCache"
    try:
        with configure(
            plain={"BACKEND": path, "LOCATION": redis_server.url, "KEY_PREFIX": "doc1"},
            lru={"BACKEND": path, "LOCATION": lru.url},
        ):
            findings = operations.doctor()
        assert "lexigram_cache.D002" in _codes(findings, "plain")
        assert "lexigram_cache.D002" not in _codes(findings, "lru")
        assert "lexigram_cache.D004" not in _codes(findings, "plain")  # same host's clock
    finally:
        lru.stop()


def test_doctor_reports_an_unreachable_server() -> None:
    server = start_redis()
    server.stop()
    path = "lexigram_cache_django.backends.redis.RedisCache"
    with configure(gone={"BACKEND": path, "LOCATION": server.url}):
        findings = operations.doctor()
    [finding] = [f for f in findings if f.alias == "gone"]
    assert finding.level == "error" and finding.code == "lexigram_cache.D001"


def test_doctor_memcached_item_size_vs_max_item_bytes() -> None:
    small = start_memcached(item_size="1m")
    path = "lexigram_cache_django.backends.memcached.MemcachedCache"
    try:
        with configure(
            big={"BACKEND": path, "LOCATION": small.url, "OPTIONS": {"MAX_ITEM_BYTES": 4 << 20}},
            fits={"BACKEND": path, "LOCATION": small.url, "OPTIONS": {"MAX_ITEM_BYTES": 1 << 20}},
        ):
            findings = operations.doctor()
        assert "lexigram_cache.D003" in _codes(findings, "big")
        assert "lexigram_cache.D003" not in _codes(findings, "fits")
    finally:
        small.stop()


def test_doctor_finds_entries_this_alias_cannot_read(redis_server: Any) -> None:
    path = "lexigram_cache_django.backends.redis.RedisCache"
    shared = {"BACKEND": path, "LOCATION": redis_server.url, "KEY_PREFIX": "doc-ser"}
    with configure(reader=shared, writer={**shared, "OPTIONS": {"SERIALIZER": "json"}}):
        caches["writer"].set_many({f"k{i}": {"i": i} for i in range(5)})
        findings = operations.doctor()
        caches["reader"].clear()
    unreadable = [f for f in findings if f.code == "lexigram_cache.D005" and f.alias == "reader"]
    assert unreadable and "5 of 5" in unreadable[0].message
    assert "lexigram_cache.D005" not in _codes(findings, "writer")


def test_doctor_includes_system_checks() -> None:
    with configure(bad={"BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
                        "LOCATION": "x", "OPTIONS": {"MAX_ENTRIES": "many"}}):  # fmt: skip
        findings = operations.doctor()
    assert any(f.code == "lexigram_cache.E003" and f.level == "error" for f in findings)


# -- tiered ------------------------------------------------------------------------------------


def test_tiered_alias_stats_and_health(redis_server: Any, request: Any) -> None:
    l2 = backend_config("redis", request)
    tiered = {
        "BACKEND": "lexigram_cache_django.backends.tiered.TieredCache",
        "KEY_PREFIX": l2.pop("KEY_PREFIX"),
        "OPTIONS": {
            "L1": {
                "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
                "LOCATION": "ops-l1",
            },
            "L2": l2,
        },
    }
    with configure(t=tiered):
        cache = caches["t"]
        cache.set("k", 1, 60)
        cache.get("k")
        cache.get("k")
        stats = operations.alias_stats("t")
        assert stats["backend"] == "tiered"
        tiers = stats["tiers"]
        assert tiers["l1_hits"] + tiers["l2_hits"] == 2 == stats["process"]["hits"]
        assert tiers["l2"]["backend"] == "redis"
        assert stats["site_scope"] == "site"  # added up on its L2's server
        assert stats["latency"]["count"] > 0  # its L2's commands
        health = operations.alias_health("t")
        assert health["status"] == "up" and health["version"]
        cache.clear()


def test_health_says_breaker_open_once_the_breaker_opened() -> None:
    server = start_redis()
    path = "lexigram_cache_django.backends.redis.RedisCache"
    try:
        with configure(c={"BACKEND": path, "LOCATION": server.url}):
            server.stop()
            for _ in range(10):  # CIRCUIT_FAILURES (5) refused connections open it
                caches["c"].get("k")
            health = operations.alias_health("c")
            assert health["breaker"] == "open"
            assert health["status"] == "breaker_open"
    finally:
        server.stop()
