"""MessagePack: compact, fast and safe to read from an untrusted server.

Like JSON it has no tuple or set; tuples come back as lists. Values msgpack cannot encode
raise :class:`CacheSerializationError`.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ..exceptions import CacheDecodeError, CacheSerializationError
from .base import Serializer


class MsgpackSerializer(Serializer):
    """msgpack with binary/str kept apart and non-string map keys allowed."""

    id = 3
    name = "msgpack"

    def dumps(self, value: Any) -> bytes:
        try:
            data: bytes = msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise CacheSerializationError(
                f"msgpack cannot encode a value of type {type(value).__qualname__}: {exc}"
            ) from exc
        return data

    def loads(self, data: bytes) -> Any:
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise CacheDecodeError(f"not valid msgpack: {exc}") from exc
