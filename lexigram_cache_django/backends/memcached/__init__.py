"""Memcached backend: ``BACKEND = "lexigram_cache_django.backends.memcached.MemcachedCache"``.

``cache.py`` is the Django backend (memcached's rules over :class:`~..remote.RemoteCache`);
``client.py`` the pymemcache/emcache clients and the one choke point every command passes.
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
    aclose_emcache_clients,
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
    "aclose_emcache_clients",
]
