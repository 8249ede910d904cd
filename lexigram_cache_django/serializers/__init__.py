"""Serializers, chosen per alias by ``OPTIONS["SERIALIZER"]``.

A short name (``"pickle"``, ``"orjson"``/``"json"``, ``"msgpack"``) or the dotted path of
a :class:`~lexigram_cache_django.serializers.base.Serializer` subclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.module_loading import import_string

from ..exceptions import CacheConfigurationError
from .base import Serializer

BUILTIN_SERIALIZERS: dict[str, str] = {
    "pickle": "lexigram_cache_django.serializers.pickle.SignedPickleSerializer",
    "orjson": "lexigram_cache_django.serializers.json.OrjsonSerializer",
    "json": "lexigram_cache_django.serializers.json.OrjsonSerializer",
    "msgpack": "lexigram_cache_django.serializers.msgpack.MsgpackSerializer",
}

DEFAULT_SERIALIZER = "pickle"

__all__ = ["BUILTIN_SERIALIZERS", "Serializer", "get_serializer_class", "make_serializer"]


def get_serializer_class(name_or_path: str | type[Serializer]) -> type[Serializer]:
    """Resolve a short name, dotted path or class; raise a clear configuration error."""
    if isinstance(name_or_path, type):
        cls = name_or_path
    else:
        path = BUILTIN_SERIALIZERS.get(str(name_or_path).lower(), str(name_or_path))
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise CacheConfigurationError(
                f"SERIALIZER {name_or_path!r} cannot be imported ({exc}). Use one of "
                f"{sorted(BUILTIN_SERIALIZERS)} or a dotted path to a Serializer subclass; "
                "orjson and msgpack need their extras installed."
            ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Serializer)):
        raise CacheConfigurationError(
            f"SERIALIZER {name_or_path!r} is not a lexigram_cache_django Serializer subclass"
        )
    return cls


def make_serializer(
    name_or_path: str | type[Serializer], options: Mapping[str, Any] | None = None
) -> Serializer:
    """Instantiate the serializer an alias asks for."""
    return get_serializer_class(name_or_path)(options)
