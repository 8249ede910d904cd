"""Memcached backend: ``BACKEND = "lexigram_cache_django.backends.memcached.MemcachedCache"``.

``cache.py`` is the Django backend (memcached's rules over :class:`~..remote.RemoteCache`);
``client.py`` the pymemcache clients and the guard every command passes; ``aio.py`` and
``wire.py`` our asyncio client.
"""

from .cache import (
    DEFAULT_MAX_ITEM_BYTES,
    MAX_RELATIVE_EXPIRY,
    MemcachedCache,
    ValueTooLargeError,
)
from .client import (
    SERVER_ERRORS,
    MemcachedClient,
    MemcachedIncrError,
    MemcachedUnavailableError,
    aclose_async_clients,
)

__all__ = [
    "DEFAULT_MAX_ITEM_BYTES",
    "MAX_RELATIVE_EXPIRY",
    "SERVER_ERRORS",
    "MemcachedCache",
    "MemcachedClient",
    "MemcachedIncrError",
    "MemcachedUnavailableError",
    "ValueTooLargeError",
    "aclose_async_clients",
]
