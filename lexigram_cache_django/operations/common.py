"""What every operation shares: errors, resolving an alias, small formatting."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache

from ..backends.base import LexigramCache
from ..conf import mask_location


class OperationError(Exception):
    """An operation that cannot be done as asked (unknown alias, model, bad input)."""


class CannotEnumerate(OperationError, NotImplementedError):
    """The backend cannot list its keys (memcached has no SCAN)."""


def aliases() -> list[str]:
    """Every alias in ``settings.CACHES``, in settings order."""
    return list(settings.CACHES)


def cache_of(alias: str) -> BaseCache:
    """The alias's backend; an unknown alias is an OperationError naming the known ones."""
    if alias not in settings.CACHES:
        known = ", ".join(settings.CACHES) or "none"
        raise OperationError(f"unknown cache alias {alias!r} (configured: {known})")
    cache: BaseCache = caches[alias]
    return cache


def backend_name(cache: BaseCache) -> str:
    """``memory``/``redis``/... for ours, the dotted class for any other backend."""
    if isinstance(cache, LexigramCache):
        return cache.backend_name
    cls = type(cache)
    return f"{cls.__module__}.{cls.__qualname__}"


def location_of(alias: str) -> str:
    """LOCATION as it may be shown: passwords masked."""
    return mask_location(settings.CACHES[alias].get("LOCATION", ""))


def ratio(hits: int, misses: int) -> float | None:
    return hits / (hits + misses) if hits + misses else None


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
