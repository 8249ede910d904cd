"""``get_redis_connection(alias)``: django-redis's helper for raw redis-py access."""

from __future__ import annotations

import redis

from .cache import RedisCache


def get_redis_connection(alias: str = "default", write: bool = True) -> redis.Redis:
    """A ``redis.Redis`` on the pool of the ``CACHES[alias]`` RedisCache (primary when
    ``write``, else a read replica if there are any). Keys are not made: raw commands.

    Raises NotImplementedError for an alias of another backend, as django-redis does.
    """
    from django.core.cache import caches

    cache = caches[alias]
    if not isinstance(cache, RedisCache):
        raise NotImplementedError(
            f"CACHES[{alias!r}] is {type(cache).__name__}, not a RedisCache: it has no "
            "redis connection"
        )
    return cache.get_client(write=write)
