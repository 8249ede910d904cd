"""Serializers, compression and the codec's header: what gets stored and what is refused."""

from __future__ import annotations

import os
import pickle
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from lexigram_cache_django.backends.base import build_codec
from lexigram_cache_django.codec import Codec, EntryMeta
from lexigram_cache_django.compression import make_compressor
from lexigram_cache_django.exceptions import (
    CacheConfigurationError,
    CacheDecodeError,
    CacheIntegrityError,
    CacheSerializationError,
)
from lexigram_cache_django.serializers import make_serializer
from lexigram_cache_django.serializers.pickle import DIGEST_SIZE, SignedPickleSerializer

UNPICKLED: list[str] = []


def _record(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class Exploit:
    """Unpickling this calls _record: proof that a payload was (or was not) unpickled."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_record, ("unpickled",))


@pytest.fixture(autouse=True)
def _clear_record() -> None:
    UNPICKLED.clear()


def codec(**options: Any) -> Codec:
    return build_codec(options)


# -- signed pickle ---------------------------------------------------------------------


def test_signed_pickle_round_trip() -> None:
    c = codec()
    value = {"a": [1, 2, (3, 4)], "b": {1, 2}}
    assert c.decode(c.encode(value)) == value


def test_tampered_payload_is_rejected_without_unpickling() -> None:
    c = codec()
    data = bytearray(c.encode(Exploit()))
    data[-2] ^= 0x01  # flip one bit of the pickle body
    with pytest.raises(CacheIntegrityError):
        c.decode(bytes(data))
    assert UNPICKLED == []


def test_unsigned_pickle_is_rejected_without_unpickling() -> None:
    c = codec()
    header = c.encode(["x"])[:1]
    forged = header + b"\0" * DIGEST_SIZE + pickle.dumps(Exploit())
    with pytest.raises(CacheIntegrityError):
        c.decode(forged)
    bare = header + pickle.dumps(Exploit())
    with pytest.raises(CacheIntegrityError):
        c.decode(bare)
    assert UNPICKLED == []


def test_payload_shorter_than_a_signature_is_rejected() -> None:
    c = codec()
    with pytest.raises(CacheIntegrityError):
        c.decode(c.encode(["x"])[:1] + b"abc")


def test_value_signed_with_a_fallback_key_still_reads() -> None:
    with override_settings(SECRET_KEY="old-key"):
        data = codec().encode({"v": 1})
    with override_settings(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=["old-key"]):
        assert codec().decode(data) == {"v": 1}
    with (
        override_settings(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=[]),
        pytest.raises(CacheIntegrityError),
    ):
        codec().decode(data)


def test_new_writes_are_signed_with_the_current_key() -> None:
    with override_settings(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=["old-key"]):
        data = codec().encode("fresh")
    with override_settings(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=[]):
        assert codec().decode(data) == "fresh"


@settings(max_examples=200, derandomize=True)
@given(key=st.binary(min_size=0, max_size=100), data=st.binary(max_size=300))
def test_the_signature_is_hmac_sha256(key: bytes, data: bytes) -> None:
    """The prepared-pads signer gives hmac's bytes, for short, block-sized and long keys
    (stored payloads written before it still verify)."""
    import hashlib
    import hmac

    from lexigram_cache_django.serializers.pickle import _Signer

    assert _Signer(key).sign(data) == hmac.new(key, data, hashlib.sha256).digest()


def test_a_payload_signed_with_hmac_new_still_reads() -> None:
    import hashlib
    import hmac

    from lexigram_cache_django.serializers.pickle import _derive_key

    serializer = SignedPickleSerializer({"SIGNING_KEY": "k"})
    body = pickle.dumps({"v": 1})
    signed = hmac.new(_derive_key("k"), body, hashlib.sha256).digest() + body
    assert serializer.loads(signed) == {"v": 1}


def test_unpicklable_value_raises_a_clear_error() -> None:
    with pytest.raises(CacheSerializationError, match="generator"):
        codec().encode(x for x in range(3))


# -- orjson and msgpack ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["orjson", "json", "msgpack"])
def test_json_and_msgpack_round_trip(name: str) -> None:
    c = codec(SERIALIZER=name)
    value = {"name": "Rex", "age": 3, "tags": ["a", "b"], "score": 1.5, "none": None}
    assert c.decode(c.encode(value)) == value


@pytest.mark.parametrize("name", ["orjson", "msgpack"])
@pytest.mark.parametrize(
    ("value", "type_name"), [({1, 2}, "set"), (object(), "object"), ({"k": 1j}, "dict")]
)
def test_unencodable_values_raise_cache_serialization_error(
    name: str, value: Any, type_name: str
) -> None:
    c = codec(SERIALIZER=name)
    with pytest.raises(CacheSerializationError, match=type_name) as info:
        c.encode(value)
    assert isinstance(info.value, TypeError)  # still a TypeError for existing handlers
    assert name in str(info.value)


def test_entry_from_another_serializer_is_refused() -> None:
    pickled = codec().encode({"a": 1})
    with pytest.raises(CacheDecodeError, match="serializer"):
        codec(SERIALIZER="orjson").decode(pickled)


def test_invalid_json_is_a_decode_error() -> None:
    c = codec(SERIALIZER="orjson")
    with pytest.raises(CacheDecodeError):
        c.decode(c.encode([1])[:1] + b"{not json")


def test_unknown_serializer_is_a_configuration_error() -> None:
    with pytest.raises(CacheConfigurationError, match="nope"):
        make_serializer("nope")
    with pytest.raises(CacheConfigurationError, match="not a lexigram_cache_django Serializer"):
        make_serializer("collections.OrderedDict")


def test_custom_serializer_by_dotted_path() -> None:
    c = codec(SERIALIZER="tests.test_codecs.ReprSerializer")
    assert c.decode(c.encode([1, "two"])) == [1, "two"]


class ReprSerializer(SignedPickleSerializer):
    """A third-party serializer (id 0) for the dotted-path test."""

    id = 0
    name = "repr"


# -- compression ------------------------------------------------------------------------

BIG = {"rows": [f"row {i}: the same kind of text, over and over" for i in range(400)]}


def _compressor_id(data: bytes) -> int:
    return (data[0] >> 2) & 0x3


@pytest.mark.parametrize(("name", "cid"), [("zlib", 1), ("zstd", 2), ("lz4", 3)])
def test_compression_round_trip(name: str, cid: int) -> None:
    c = codec(COMPRESS_MIN_BYTES=100, COMPRESSOR=name)
    plain = codec().encode(BIG)
    data = c.encode(BIG)
    assert _compressor_id(data) == cid
    assert len(data) < len(plain) / 5
    assert c.decode(data) == BIG


def test_values_below_the_threshold_are_not_compressed() -> None:
    c = codec(COMPRESS_MIN_BYTES=10_000)
    small = "x" * 500
    assert _compressor_id(c.encode(small)) == 0
    assert _compressor_id(c.encode(BIG)) == 1


def test_incompressible_values_are_stored_plain() -> None:
    c = codec(COMPRESS_MIN_BYTES=10)
    noise = os.urandom(4096)
    assert _compressor_id(c.encode(noise)) == 0


def test_compressed_values_read_back_after_the_threshold_changes() -> None:
    written = codec(COMPRESS_MIN_BYTES=100).encode(BIG)
    assert _compressor_id(written) == 1
    assert codec().decode(written) == BIG  # compression now off
    assert codec(COMPRESS_MIN_BYTES=10**9).decode(written) == BIG
    assert codec(COMPRESS_MIN_BYTES=100, COMPRESSOR="zstd").decode(written) == BIG


def test_corrupt_compressed_payload_is_a_decode_error() -> None:
    c = codec(SERIALIZER="msgpack", COMPRESS_MIN_BYTES=10)
    data = c.encode(BIG)
    with pytest.raises(CacheDecodeError):
        c.decode(data[:1] + b"garbage" + data[8:])


def test_unknown_compressor_is_a_configuration_error() -> None:
    with pytest.raises(CacheConfigurationError, match="brotli"):
        make_compressor("brotli")


# -- raw integers and metadata ---------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 7, -12, 2**62, 10**30])
def test_plain_ints_are_stored_as_ascii_digits(value: int) -> None:
    c = codec()
    data = c.encode(value)
    assert data == str(value).encode()
    assert c.decode(data) == value


@pytest.mark.parametrize("value", [True, False, 1.0])
def test_bools_and_floats_keep_their_type(value: Any) -> None:
    c = codec()
    decoded = c.decode(c.encode(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_foreign_bytes_are_a_decode_error() -> None:
    with pytest.raises(CacheDecodeError):
        codec().decode(b"hello")
    with pytest.raises(CacheDecodeError):
        codec().decode(b"")


def test_metadata_round_trip() -> None:
    c = codec(COMPRESS_MIN_BYTES=100)
    meta = EntryMeta(tags=(("tag:pets", 123456789), ("tag:é", -1)), delta=0.25, expires=1e9)
    data = c.encode(BIG, meta)
    assert c.decode_entry(data) == (BIG, meta)
    assert Codec.read_meta(data) == meta
    assert c.decode_entry(c.encode(5, meta)) == (5, meta)  # ints with metadata are encoded
    assert Codec.read_meta(c.encode("plain")) is None


# -- native str and bytes ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["pickle", "orjson", "msgpack"])
@pytest.mark.parametrize(
    "value", ["text", "", "snowman \u2603 and a lone surrogate \ud800", b"\x00\xff"]
)
def test_str_and_bytes_are_stored_natively(name: str, value: Any) -> None:
    c = codec(SERIALIZER=name)
    data = c.encode(value)
    assert data[0] >> 4 & 0x7 in (6, 7)  # native ids, whatever the serializer
    decoded = c.decode(data)
    assert decoded == value
    assert type(decoded) is type(value)
    assert codec(SERIALIZER="pickle").decode(data) == value  # readable by any alias


def test_native_str_needs_no_signature_but_bad_utf8_is_refused() -> None:
    c = codec()
    assert c.encode("abc") == b"\xf0abc"
    with pytest.raises(CacheDecodeError, match="UTF-8"):
        c.decode(b"\xf0\xff\xfe")


def test_str_subclasses_keep_their_type() -> None:
    from django.utils.safestring import SafeString, mark_safe

    c = codec()
    decoded = c.decode(c.encode(mark_safe("<b>bold</b>")))
    assert isinstance(decoded, SafeString)


def test_native_str_compresses_and_carries_metadata() -> None:
    c = codec(COMPRESS_MIN_BYTES=100)
    text = "repeated text " * 200
    meta = EntryMeta(tags=(("t", 5),))
    data = c.encode(text, meta)
    assert _compressor_id(data) == 1
    assert c.decode_entry(data) == (text, meta)


def test_reserved_serializer_ids_are_refused() -> None:
    class Clash(SignedPickleSerializer):
        id = 7

    with pytest.raises(CacheConfigurationError, match="reserved"):
        Codec(Clash())


# -- batches ---------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
_COMPRESSIBLE = _TEXT.map(lambda text: (text or "x") * 30)
_VALUES = st.one_of(
    _TEXT, _COMPRESSIBLE, st.integers(), st.binary(max_size=20), st.none(), st.lists(_TEXT)
)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(_TEXT, _VALUES), max_size=30), threshold=st.sampled_from([None, 8])
)
def test_encode_many_writes_what_encode_writes(values: list[Any], threshold: int | None) -> None:
    """The all-str fast path must be byte for byte the one-value path (surrogates too)."""
    c = codec() if threshold is None else codec(COMPRESS_MIN_BYTES=threshold)
    assert c.encode_many(values) == [c.encode(v) for v in values]
    meta = EntryMeta(tags=(("t", 1),))
    assert c.encode_many(values, meta) == [c.encode(v, meta) for v in values]
    assert [c.decode(d) for d in c.encode_many(values)] == values


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(_TEXT, _COMPRESSIBLE), min_size=1, max_size=30))
def test_encode_many_of_plain_strings(values: list[str]) -> None:
    c = codec(COMPRESS_MIN_BYTES=64)
    encoded = c.encode_many(values)
    assert encoded == [c.encode(v) for v in values]
    assert [c.decode(d) for d in encoded] == values


def test_encode_many_compresses_a_long_string_among_short_ones() -> None:
    c = codec(COMPRESS_MIN_BYTES=100)
    encoded = c.encode_many(["short", "repeated text " * 50, "also short"])
    assert [_compressor_id(d) for d in encoded] == [0, 1, 0]


def test_metadata_memo_gives_what_parsing_gives_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lexigram_cache_django import codec as codec_module

    monkeypatch.setattr(codec_module, "_META_MEMO", {})
    monkeypatch.setattr(codec_module, "_META_MEMO_SIZE", 3)
    c = codec()
    metas = [EntryMeta(tags=(("t", i), ("u", 7)), delta=0.5, expires=0.0) for i in range(5)]
    for meta in metas:
        data = c.encode("value", meta)
        assert c.decode_entry(data) == ("value", meta)
        assert c.decode_entry(data)[1] is c.decode_entry(data)[1]  # parsed once
        assert Codec.read_meta(data) == meta
    assert len(codec_module._META_MEMO) <= 3


def test_corrupt_metadata_is_refused_every_time_not_remembered() -> None:
    c = codec()
    data = bytearray(c.encode("value", EntryMeta(tags=(("t", 1),))))
    data[5 + 8 + 8] = 9  # the tag count no longer matches the tags that follow
    for _ in range(2):
        with pytest.raises(CacheDecodeError, match="tag count"):
            c.decode_entry(bytes(data))
