"""Compressors for large values: zlib always, zstd and lz4 when installed.

Each compressor has a 2-bit ``id`` written into the payload's header byte, so a reader
always knows how an entry was written, whatever the alias's settings are today.
Decompression is bounded (``MAX_DECOMPRESSED_BYTES``) so a corrupt or hostile payload
cannot balloon into gigabytes of memory.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from typing import ClassVar

from django.utils.module_loading import import_string

from .exceptions import CacheConfigurationError, CacheDecodeError

#: Upper bound for one decompressed value (memcached's default item size is 1 MiB; Redis
#: strings can hold 512 MiB, so this is generous but finite).
MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024


class Compressor(ABC):
    """Bytes to smaller bytes and back."""

    id: ClassVar[int]
    name: ClassVar[str]

    @abstractmethod
    def compress(self, data: bytes) -> bytes: ...

    @abstractmethod
    def decompress(self, data: bytes) -> bytes: ...


class ZlibCompressor(Compressor):
    id = 1
    name = "zlib"

    def __init__(self, level: int = 6) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, self.level)

    def decompress(self, data: bytes) -> bytes:
        d = zlib.decompressobj()
        try:
            out = d.decompress(data, MAX_DECOMPRESSED_BYTES)
        except zlib.error as exc:
            raise CacheDecodeError(f"corrupt zlib payload: {exc}") from exc
        if d.unconsumed_tail:
            raise CacheDecodeError("zlib payload exceeds MAX_DECOMPRESSED_BYTES")
        return out


class ZstdCompressor(Compressor):
    id = 2
    name = "zstd"

    def __init__(self, level: int = 3) -> None:
        import zstandard

        self._c = zstandard.ZstdCompressor(level=level)
        self._d = zstandard.ZstdDecompressor()
        self._error = zstandard.ZstdError

    def compress(self, data: bytes) -> bytes:
        out: bytes = self._c.compress(data)
        return out

    def decompress(self, data: bytes) -> bytes:
        try:
            out: bytes = self._d.decompress(data, max_output_size=MAX_DECOMPRESSED_BYTES)
        except self._error as exc:
            raise CacheDecodeError(f"corrupt zstd payload: {exc}") from exc
        return out


class Lz4Compressor(Compressor):
    id = 3
    name = "lz4"

    def __init__(self, level: int = 0) -> None:
        import lz4.frame

        self._frame = lz4.frame
        self.level = level

    def compress(self, data: bytes) -> bytes:
        out: bytes = self._frame.compress(data, compression_level=self.level)
        return out

    def decompress(self, data: bytes) -> bytes:
        try:
            out: bytes = self._frame.decompress(data)
        except RuntimeError as exc:
            raise CacheDecodeError(f"corrupt lz4 payload: {exc}") from exc
        if len(out) > MAX_DECOMPRESSED_BYTES:
            raise CacheDecodeError("lz4 payload exceeds MAX_DECOMPRESSED_BYTES")
        return out


BUILTIN_COMPRESSORS: dict[str, type[Compressor]] = {
    "zlib": ZlibCompressor,
    "zstd": ZstdCompressor,
    "lz4": Lz4Compressor,
}

_BY_ID: dict[int, type[Compressor]] = {c.id: c for c in BUILTIN_COMPRESSORS.values()}
_decompressors: dict[int, Compressor] = {}


def make_compressor(name_or_path: str, level: int | None = None) -> Compressor:
    """Build the compressor ``OPTIONS["COMPRESSOR"]`` names, with a clear error if absent."""
    cls: type[Compressor] | None = BUILTIN_COMPRESSORS.get(name_or_path.lower())
    try:
        if cls is None:
            cls = import_string(name_or_path)
        assert cls is not None
        return cls() if level is None else cls(level)  # type: ignore[call-arg]
    except ImportError as exc:
        raise CacheConfigurationError(
            f"COMPRESSOR {name_or_path!r} is not available ({exc}); zlib is always available, "
            "zstd needs 'zstandard' and lz4 needs 'lz4' installed"
        ) from exc


def decompressor_for(compressor_id: int) -> Compressor:
    """The compressor that reads payloads with ``compressor_id`` in their header."""
    comp = _decompressors.get(compressor_id)
    if comp is None:
        cls = _BY_ID.get(compressor_id)
        if cls is None:
            raise CacheDecodeError(f"unknown compressor id {compressor_id} in header")
        try:
            comp = cls()
        except ImportError as exc:
            raise CacheDecodeError(
                f"entry was compressed with {cls.name}, which is not installed here"
            ) from exc
        _decompressors[compressor_id] = comp
    return comp
