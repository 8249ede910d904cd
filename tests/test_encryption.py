"""Values encrypted at rest: round trips, rotation, tampering and wrong keys read as misses."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from pymemcache.client.base import Client as MemcacheClient
from redis import Redis

from lexigram_cache_django.backends.base import LexigramCache, build_codec
from lexigram_cache_django.codec import EntryMeta
from lexigram_cache_django.encryption import OVERHEAD
from lexigram_cache_django.exceptions import (
    CacheConfigurationError,
    CacheDecodeError,
    CacheDecryptionError,
)
from tests.conftest import BACKENDS, NETWORKED, backend_config, build_backend

OLD = "old-" + "k" * 40
NEW = "new-" + "n" * 40
VALUES: list[Any] = ["ann@example.com", b"\x00bytes", {"email": "ann@example.com"}, [1, 2.5], 7]


# -- the codec ----------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["pickle", "orjson", "msgpack"])
@pytest.mark.parametrize("compress", [None, 16])
def test_codec_round_trips_with_every_serializer_and_compression(
    serializer: str, compress: int | None
) -> None:
    codec = build_codec(
        {"SERIALIZER": serializer, "COMPRESS_MIN_BYTES": compress, "ENCRYPTION_KEY": NEW}
    )
    meta = EntryMeta((("tag:t", 5),), 0.5, 123.0)
    for value in [*VALUES[:2], {"email": "ann@example.com" * 20}, [1, 2.5]]:
        for m in (None, meta):
            data = codec.encode(value, m)
            assert data[0] & 0x01  # the encrypted bit
            assert b"ann@example.com" not in data
            decoded, got = codec.decode_entry(data)
            assert decoded == value and got == m
            if m is not None:
                assert codec.read_meta(data) == m  # metadata stays readable


def test_raw_integers_stay_plaintext_for_incr() -> None:
    codec = build_codec({"ENCRYPTION_KEY": NEW})
    assert codec.encode(42) == b"42"
    assert codec.decode(b"42") == 42
    tagged = codec.encode(42, EntryMeta((("tag:t", 1),)))
    assert tagged[0] & 0x01  # an int with tags is an ordinary (encrypted) entry


def test_encrypt_after_compress_and_overhead() -> None:
    plain = build_codec({"COMPRESS_MIN_BYTES": 64})
    enc = build_codec({"COMPRESS_MIN_BYTES": 64, "ENCRYPTION_KEY": NEW})
    value = "x" * 10_000
    assert len(enc.encode(value)) == len(plain.encode(value)) + OVERHEAD
    assert (enc.encode(value)[0] >> 2) & 0x3 == 1  # zlib recorded in the header


def test_tampering_anywhere_is_a_decryption_error() -> None:
    codec = build_codec({"ENCRYPTION_KEY": NEW})
    data = codec.encode({"a": 1}, EntryMeta((("tag:t", 5),)))
    for i in range(len(data)):
        tampered = bytearray(data)
        tampered[i] ^= 0x04
        with pytest.raises(CacheDecodeError):
            codec.decode_entry(bytes(tampered))
    with pytest.raises(CacheDecryptionError):
        codec.decode(data[:-1])


def test_rotation_and_wrong_keys() -> None:
    old = build_codec({"ENCRYPTION_KEY": OLD})
    rotated = build_codec({"ENCRYPTION_KEY": NEW, "ENCRYPTION_KEY_FALLBACKS": [OLD]})
    new_only = build_codec({"ENCRYPTION_KEY": NEW})
    written = old.encode("secret")
    assert rotated.decode(written) == "secret"
    with pytest.raises(CacheDecryptionError):
        new_only.decode(written)
    with pytest.raises(CacheDecryptionError):
        old.decode(rotated.encode("x"))  # new writes use the new key


def test_plaintext_and_encrypted_entries_do_not_mix() -> None:
    plain = build_codec({})
    enc = build_codec({"ENCRYPTION_KEY": NEW})
    for value in ("s", {"a": 1}):
        with pytest.raises(CacheDecryptionError, match="unencrypted"):
            enc.decode(plain.encode(value))
        with pytest.raises(CacheDecodeError, match="without ENCRYPTION_KEY"):
            plain.decode(enc.encode(value))


@pytest.mark.parametrize(
    "options",
    [
        {"ENCRYPTION_KEY": "short"},
        {"ENCRYPTION_KEY": 12345},
        {"ENCRYPTION_KEY": NEW, "ENCRYPTION_KEY_FALLBACKS": OLD},
        {"ENCRYPTION_KEY": NEW, "ENCRYPTION_KEY_FALLBACKS": ["short"]},
        {"ENCRYPTION_KEY_FALLBACKS": [OLD]},
    ],
)
def test_bad_key_options_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(CacheConfigurationError, match="ENCRYPTION_KEY"):
        build_codec(options)


def test_the_system_check_reports_a_bad_key() -> None:
    from lexigram_cache_django.checks import check_alias

    path = "lexigram_cache_django.backends.redis.RedisCache"
    good = {
        "BACKEND": path,
        "LOCATION": "redis://127.0.0.1:6379/0",
        "OPTIONS": {"ENCRYPTION_KEY": NEW, "ENCRYPTION_KEY_FALLBACKS": []},
    }
    assert check_alias("x", good) == []
    bad = check_alias("x", {**good, "OPTIONS": {"ENCRYPTION_KEY": "short"}})
    assert [p.id for p in bad] == ["lexigram_cache.E005"]


# -- end to end, through the backends' public API -------------------------------------------


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``make(**OPTIONS)``: backends of one kind sharing one store (same LOCATION/prefix)."""
    made: list[LexigramCache] = []
    base: dict[str, dict[str, Any]] = {}

    def make(kind: str, **options: Any) -> LexigramCache:
        if kind not in base:
            base[kind] = backend_config(kind, request)
        backend = build_backend({**base[kind], "OPTIONS": options})
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.mark.parametrize("kind", BACKENDS)
def test_public_api_round_trips(kind: str, pair: Any) -> None:
    cache: LexigramCache = pair(kind, ENCRYPTION_KEY=NEW, COMPRESS_MIN_BYTES=100)
    for i, value in enumerate(VALUES):
        cache.set(f"k{i}", value, 60)
        assert cache.get(f"k{i}") == value
    assert cache.get_many([f"k{i}" for i in range(len(VALUES))]) == {
        f"k{i}": v for i, v in enumerate(VALUES)
    }
    cache.set_many({"a": "x" * 500, "b": "y"}, 60, tags=["t"])
    assert cache.get_many(["a", "b"]) == {"a": "x" * 500, "b": "y"}
    cache.invalidate_tags("t")
    assert cache.get_many(["a", "b"]) == {}
    assert cache.get_or_set("g", lambda: {"pii": True}, 60, tags=["t"]) == {"pii": True}
    assert cache.get("g") == {"pii": True}
    cache.set("n", 1, 60)
    assert cache.incr("n", 5) == 6  # raw ints stay incr-able


def _raw(kind: str, request: pytest.FixtureRequest) -> Any:
    if kind == "redis":
        return Redis.from_url(request.getfixturevalue("redis_server").url)
    host, port = request.getfixturevalue("memcached_server").address.rsplit(":", 1)
    return MemcacheClient((host, int(port)))


@pytest.mark.parametrize("kind", NETWORKED)
def test_stored_bytes_are_ciphertext_and_tampering_reads_as_a_miss(
    kind: str, pair: Any, request: pytest.FixtureRequest
) -> None:
    cache: LexigramCache = pair(kind, ENCRYPTION_KEY=NEW)
    raw = _raw(kind, request)
    cache.set("pii", {"email": "ann@example.com"}, 60)
    cache.set("s", "ann@example.com", 60)
    for name in ("pii", "s"):
        key = cache.make_key(name)
        stored = raw.get(key)
        assert b"ann@example" not in stored
        tampered = bytearray(stored)
        tampered[-3] ^= 0x01
        raw.set(key, bytes(tampered))
    before = cache.stats()["integrity_errors"]
    assert cache.get("pii") is None
    assert cache.get("s", "default") == "default"
    assert cache.get_many(["pii", "s"]) == {}
    assert cache.stats()["integrity_errors"] >= before + 2
    raw.close()


@pytest.mark.parametrize("kind", NETWORKED)
def test_key_rotation_through_the_backends(kind: str, pair: Any) -> None:
    old: LexigramCache = pair(kind, ENCRYPTION_KEY=OLD)
    old.set("a", {"v": 1}, 60)
    old.set_many({"b": "two", "c": [3]}, 60)
    rotated: LexigramCache = pair(kind, ENCRYPTION_KEY=NEW, ENCRYPTION_KEY_FALLBACKS=[OLD])
    assert rotated.get("a") == {"v": 1}
    assert rotated.get_many(["a", "b", "c"]) == {"a": {"v": 1}, "b": "two", "c": [3]}
    stranger: LexigramCache = pair(kind, ENCRYPTION_KEY="z" * 40)
    assert stranger.get("a") is None
    assert stranger.get_many(["a", "b", "c"]) == {}
    plain: LexigramCache = pair(kind)
    assert plain.get("a") is None  # an alias without the key never sees the values
    rotated.set("d", "new", 60)
    assert old.get("d") is None  # new writes use the new key
    assert pair(kind, ENCRYPTION_KEY=NEW).get("d") == "new"


def test_memory_keeps_objects_in_process(pair: Any) -> None:
    """The memory backend never serializes to a server: nothing is at rest outside the
    process, so the key is validated but values are not encrypted."""
    cache: LexigramCache = pair("memory", ENCRYPTION_KEY=secrets.token_urlsafe(32))
    cache.set("a", {"v": 1}, 60, tags=["t"])
    assert cache.get("a") == {"v": 1}
    assert cache.codec.encryptor is not None
