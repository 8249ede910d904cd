"""Empty caches between tests, and a server-less Redis alias for settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import caches

from ..backends.base import LexigramCache
from ..failfast import breakers


def clear_caches(*aliases: str) -> None:
    """``clear()`` every alias of ``CACHES`` (or those named) and zero its counters.

    Circuit breakers are closed again too, so a test that made a server fail does not
    leave the next one short-circuited.
    """
    for alias in aliases or tuple(settings.CACHES):
        cache = caches[alias]
        cache.clear()
        if isinstance(cache, LexigramCache):
            cache.counters.reset()
    for breaker in breakers():
        breaker.reset()


def fake_redis(name: str = "tests", db: int = 0, **options: Any) -> dict[str, Any]:
    """A ``CACHES`` entry: our RedisCache over fakeredis (``pip install ...[testing]``).

    Aliases with the same ``name`` share one in-process server (sync and async); ``db``
    is the database number; ``options`` become ``OPTIONS`` (``SERIALIZER``, ...). Add
    ``KEY_PREFIX`` or ``TIMEOUT`` to the returned dict as for any alias.
    """
    return {
        "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
        "LOCATION": f"fakeredis://{name}/{int(db)}",
        "OPTIONS": dict(options),
    }
