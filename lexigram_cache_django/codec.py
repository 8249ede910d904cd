"""The codec: a value (plus optional entry metadata) to the bytes a server stores.

Layout of an encoded entry::

    header (1 byte) [meta length (4 bytes, big-endian) + meta] payload

The header byte::

    bit 7      always 1: marks an encoded entry (raw integers never start with it)
    bits 4-6   serializer id (0 custom, 1 signed pickle, 2 orjson, 3 msgpack,
               6 native bytes, 7 native UTF-8 str)
    bits 2-3   compressor id (0 none, 1 zlib, 2 zstd, 3 lz4)
    bit 1      metadata present (tag versions, XFetch compute time and expiry)
    bit 0      payload encrypted (``OPTIONS["ENCRYPTION_KEY"]``, see ``encryption.py``)

Plain ``int`` values (not ``bool``) with no metadata are stored as ASCII digits, so Redis
``INCRBY`` and memcached ``incr`` work on them atomically. Plain ``str`` and ``bytes``
(not subclasses such as Django's ``SafeString``, which keep their type through the
serializer) are stored natively under ids 7 and 6 whatever the alias's serializer:
decoding them runs no code, so they need neither pickle nor a signature, and the
commonest cached values cost a UTF-8 decode instead of an HMAC check.

With ``ENCRYPTION_KEY`` set, every payload except raw integers (which must stay
``INCR``-able) is encrypted after compression; the header and metadata stay in the clear
but are authenticated, and an alias with a key reads unencrypted entries as misses.

Because the compressor id is in the header, entries written before ``COMPRESS_MIN_BYTES``
or ``COMPRESSOR`` changed still read back.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .compression import Compressor, decompressor_for, make_compressor
from .encryption import Encryptor
from .exceptions import CacheConfigurationError, CacheDecodeError, CacheDecryptionError
from .serializers import DEFAULT_SERIALIZER, make_serializer
from .serializers.base import Serializer

_MARK = 0x80
_META = 0x02
_ENC = 0x01
_SID_BYTES = 6 << 4
_SID_STR = 7 << 4
_PLAIN_STR = _MARK | _SID_STR  # header of an uncompressed str without metadata
#: First byte of a plain ``str`` entry (no compression, no metadata): batch readers may
#: decode ``data[1:]`` as UTF-8 ("surrogatepass") without a call per value.
PLAIN_STR_HEADER = _PLAIN_STR
_PLAIN_STR_PREFIX = bytes((_PLAIN_STR,))
_ONLY_STR = {str}
_META_LEN = struct.Struct(">I")
_META_HEAD = struct.Struct(">ddH")


class EntryMeta(NamedTuple):
    """What an entry knows about itself besides its value.

    ``tags``: ``(tag key, version)`` pairs seen when the entry was written; the entry is
    stale once any tag's current version differs. ``delta``: seconds the value took to
    compute (XFetch). ``expires``: absolute UNIX time the entry expires (0: never).
    """

    tags: tuple[tuple[str, int], ...] = ()
    delta: float = 0.0
    expires: float = 0.0


def pack_meta(meta: EntryMeta) -> bytes:
    """``delta, expires, tag count`` then ``key NUL version NUL key NUL version`` in UTF-8.

    One decode and one split read the tags back, several times cheaper than a struct
    call per field on the hot path of every tagged read. Tag keys cannot contain NUL.
    """
    head = _META_HEAD.pack(meta.delta, meta.expires, len(meta.tags))
    if not meta.tags:
        return head
    for name, _ in meta.tags:
        if "\0" in name:
            raise ValueError(f"a tag key cannot contain NUL: {name!r}")
    return head + "\0".join(f"{name}\0{version}" for name, version in meta.tags).encode()


#: Metadata already parsed, by its bytes. Entries written together (one set_many, or the
#: same tags at the same versions) carry the same bytes, and EntryMeta is immutable, so a
#: tagged read skips the parse. Cleared wholesale when full.
_META_MEMO: dict[bytes, EntryMeta] = {}
_META_MEMO_SIZE = 4096


def unpack_meta_memoized(data: bytes) -> EntryMeta:
    """:func:`unpack_meta`, remembering the result for the same bytes."""
    meta = _META_MEMO.get(data)
    if meta is None:
        meta = unpack_meta(data)
        if len(_META_MEMO) >= _META_MEMO_SIZE:
            _META_MEMO.clear()
        _META_MEMO[data] = meta
    return meta


def unpack_meta(data: bytes | memoryview) -> EntryMeta:
    try:
        delta, expires, count = _META_HEAD.unpack_from(data, 0)
        if not count:
            return EntryMeta((), delta, expires)
        parts = bytes(data[_META_HEAD.size :]).decode().split("\0")
        tags = tuple(zip(parts[0::2], map(int, parts[1::2])))
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise CacheDecodeError(f"corrupt entry metadata: {exc}") from exc
    if len(tags) != count or len(parts) != 2 * count:
        raise CacheDecodeError("corrupt entry metadata: tag count does not match")
    return EntryMeta(tags, delta, expires)


class Codec:
    """Serializer + optional compression + header; one instance per cache alias."""

    __slots__ = ("_sid", "compress_min_bytes", "compressor", "encryptor", "serializer")

    def __init__(
        self,
        serializer: Serializer,
        compressor: Compressor | None = None,
        compress_min_bytes: int | None = None,
        encryptor: Encryptor | None = None,
    ) -> None:
        if serializer.id in (6, 7):
            raise CacheConfigurationError(
                f"serializer ids 6 and 7 are reserved for native bytes/str; "
                f"{type(serializer).__qualname__}.id must be 0-5"
            )
        self.serializer = serializer
        self.compressor = compressor
        self.compress_min_bytes = compress_min_bytes if compressor is not None else None
        self._sid = (serializer.id & 0x7) << 4
        self.encryptor = encryptor

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Codec:
        """The codec an alias's ``OPTIONS`` describe: SERIALIZER, COMPRESSOR,
        COMPRESS_MIN_BYTES, COMPRESS_LEVEL, ENCRYPTION_KEY, ENCRYPTION_KEY_FALLBACKS."""
        serializer = make_serializer(options.get("SERIALIZER", DEFAULT_SERIALIZER), options)
        min_bytes = options.get("COMPRESS_MIN_BYTES")
        compressor = None
        if min_bytes is not None:
            compressor = make_compressor(
                str(options.get("COMPRESSOR", "zlib")), options.get("COMPRESS_LEVEL")
            )
            min_bytes = int(min_bytes)
        key = options.get("ENCRYPTION_KEY")
        encryptor = None
        if key is not None:
            encryptor = Encryptor(key, options.get("ENCRYPTION_KEY_FALLBACKS") or ())
        elif options.get("ENCRYPTION_KEY_FALLBACKS"):
            raise CacheConfigurationError(
                "ENCRYPTION_KEY_FALLBACKS is set without ENCRYPTION_KEY: set the new key too"
            )
        return cls(serializer, compressor, min_bytes, encryptor)

    def encode(self, value: Any, meta: EntryMeta | None = None) -> bytes:
        """Encode for storage; raises CacheSerializationError for unencodable values."""
        kind = type(value)
        if kind is str:
            data: bytes = value.encode("utf-8", "surrogatepass")
            header = _MARK | _SID_STR
        elif kind is bytes:
            data = value
            header = _MARK | _SID_BYTES
        elif kind is int and meta is None:
            return b"%d" % value
        else:
            data = self.serializer.dumps(value)
            header = _MARK | self._sid
        limit = self.compress_min_bytes
        if limit is not None and len(data) >= limit:
            assert self.compressor is not None
            packed = self.compressor.compress(data)
            if len(packed) < len(data):
                data = packed
                header |= self.compressor.id << 2
        encryptor = self.encryptor
        if meta is None:
            if encryptor is None:
                return bytes((header,)) + data
            head = bytes((header | _ENC,))
            return head + encryptor.encrypt(data, head)
        m = pack_meta(meta)
        if encryptor is None:
            return b"".join((bytes((header | _META,)), _META_LEN.pack(len(m)), m, data))
        head = b"".join((bytes((header | _META | _ENC,)), _META_LEN.pack(len(m)), m))
        return head + encryptor.encrypt(data, head)

    def encode_many(self, values: Sequence[Any], meta: EntryMeta | None = None) -> list[bytes]:
        """:meth:`encode` of each value, in order.

        A batch of plain ``str`` values that none of them needs compressing (the
        commonest ``set_many``) is encoded by C-level passes instead of a call per value:
        the UTF-8 bytes behind the plain-str header, as :meth:`encode` writes them.
        """
        if (
            meta is None
            and self.encryptor is None
            and values
            and set(map(type, values)) == _ONLY_STR
        ):
            try:
                data = list(map(str.encode, values))
            except UnicodeEncodeError:  # a lone surrogate: encode() writes it "surrogatepass"
                pass
            else:
                limit = self.compress_min_bytes
                if limit is None or max(map(len, data)) < limit:
                    return list(map(_PLAIN_STR_PREFIX.__add__, data))
        encode = self.encode
        return [encode(value, meta) for value in values]

    @staticmethod
    def compress_encoded(data: bytes, compressor: Compressor) -> bytes:
        """Compress an encoded entry's payload whatever ``COMPRESS_MIN_BYTES`` says.

        For backends with a size limit (memcached's item size): the header records the
        compressor, so any reader decodes the result. Raw integers, entries already
        compressed or encrypted (ciphertext does not shrink), and payloads that do not shrink
        come back unchanged.
        """
        if not data or data[0] < _MARK or data[0] & 0x0D:
            return data
        header = data[0]
        start = 5 + _META_LEN.unpack_from(data, 1)[0] if header & _META else 1
        packed = compressor.compress(data[start:])
        if len(packed) >= len(data) - start:
            return data
        return b"".join((bytes((header | compressor.id << 2,)), data[1:start], packed))

    def decode(self, data: bytes) -> Any:
        """Decode a stored entry, ignoring metadata (callers that need it use decode_entry)."""
        return self.decode_entry(data)[0]

    def decode_entry(self, data: bytes | bytearray | memoryview) -> tuple[Any, EntryMeta | None]:
        """Decode to ``(value, meta)``; raises CacheDecodeError / CacheIntegrityError."""
        if not data:
            raise CacheDecodeError("empty payload")
        header = data[0]
        if header == _PLAIN_STR:  # the commonest case, decoded without further ado
            if self.encryptor is not None:
                raise CacheDecryptionError("unencrypted entry read by an alias that encrypts")
            try:
                return bytes(data[1:]).decode("utf-8", "surrogatepass"), None
            except UnicodeDecodeError as exc:
                raise CacheDecodeError(f"invalid UTF-8 in a str entry: {exc}") from exc
        if header < _MARK:
            try:
                return int(data), None
            except ValueError:
                raise CacheDecodeError(
                    "payload is neither an encoded entry nor an integer"
                ) from None
        sid = header & 0x70
        if sid != self._sid and sid != _SID_STR and sid != _SID_BYTES:
            raise CacheDecodeError(
                f"entry was written by serializer id {(header >> 4) & 0x7}, this alias uses "
                f"{self.serializer.name} (id {self.serializer.id})"
            )
        # Slices of bytes are bytes (one copy); a bytearray or memoryview is copied once.
        view = data if isinstance(data, bytes) else memoryview(data)
        pos = 1
        meta = None
        if header & _META:
            try:
                (length,) = _META_LEN.unpack_from(view, 1)
            except struct.error as exc:
                raise CacheDecodeError("truncated entry metadata") from exc
            meta = unpack_meta_memoized(bytes(view[5 : 5 + length]))
            pos = 5 + length
        body = bytes(view[pos:])
        encryptor = self.encryptor
        if header & _ENC:
            if encryptor is None:
                raise CacheDecodeError("encrypted entry read by an alias without ENCRYPTION_KEY")
            body = encryptor.decrypt(body, bytes(view[:pos]))
        elif encryptor is not None:
            raise CacheDecryptionError("unencrypted entry read by an alias that encrypts")
        cid = (header >> 2) & 0x3
        if cid:
            body = decompressor_for(cid).decompress(body)
        if sid == _SID_STR:
            try:
                return body.decode("utf-8", "surrogatepass"), meta
            except UnicodeDecodeError as exc:
                raise CacheDecodeError(f"invalid UTF-8 in a str entry: {exc}") from exc
        if sid == _SID_BYTES:
            return body, meta
        return self.serializer.loads(body), meta

    @staticmethod
    def read_meta(data: bytes) -> EntryMeta | None:
        """Metadata only, without deserializing the value (cheap staleness checks)."""
        if not data or data[0] < _MARK or not data[0] & _META:
            return None
        (length,) = _META_LEN.unpack_from(data, 1)
        return unpack_meta_memoized(data[5 : 5 + length])
