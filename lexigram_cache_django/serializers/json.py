"""JSON through orjson: fast, language-neutral, and safe to read from an untrusted server.

JSON has fewer types than Python: tuples come back as lists, and dict keys must be
strings. Values orjson cannot encode raise :class:`CacheSerializationError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..exceptions import CacheDecodeError, CacheSerializationError
from .base import Serializer


class OrjsonSerializer(Serializer):
    """orjson with ``OPTIONS["ORJSON_OPTIONS"]`` (an int of ``orjson.OPT_*`` flags)."""

    id = 2
    name = "orjson"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.flags = int(self.options.get("ORJSON_OPTIONS", 0))

    def dumps(self, value: Any) -> bytes:
        try:
            return orjson.dumps(value, option=self.flags)
        except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError
            raise CacheSerializationError(
                f"orjson cannot encode a value of type {type(value).__qualname__}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CacheDecodeError(f"not valid JSON: {exc}") from exc
