"""The serializer interface: a value to bytes and back, nothing else.

Compression, the header byte and raw integers are the codec's job
(:mod:`lexigram_cache_django.codec`), so a serializer stays a few lines.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar


class Serializer(ABC):
    """Turns values into bytes and back.

    ``id`` is recorded in each payload's header byte (3 bits), so a reader can tell that
    an entry was written with another serializer and treat it as a miss instead of
    mis-decoding it. Built-ins use 1-3; third-party serializers keep the default 0.
    """

    id: ClassVar[int] = 0
    name: ClassVar[str] = "custom"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: Mapping[str, Any] = options or {}

    @abstractmethod
    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raise :class:`CacheSerializationError` if it cannot be."""

    @abstractmethod
    def loads(self, data: bytes) -> Any:
        """Decode bytes written by :meth:`dumps`; raise :class:`CacheDecodeError` if not."""
