"""Redis backend: ``BACKEND = "lexigram_cache_django.backends.redis.RedisCache"``.

``cache.py`` is the Django backend (Redis's rules and django-redis's extensions over
:class:`~..remote.RemoteCache`); ``client.py`` the servers, routing and the one choke
point every command passes; ``pools.py`` our lean connection pools; ``scripts.py`` the
Lua scripts; ``commands.py``, ``hashes.py``, ``sets.py``, ``sorted_sets.py`` django-redis's
data-structure commands; ``connection.py`` ``get_redis_connection``.
"""

from ..patterns import glob_escape
from .cache import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SOCKET_TIMEOUT,
    RedisCache,
    milliseconds,
    split_servers,
)
from .client import SERVER_ERRORS, RedisClient, RedisIncrError
from .connection import get_redis_connection

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_SOCKET_TIMEOUT",
    "SERVER_ERRORS",
    "RedisCache",
    "RedisClient",
    "RedisIncrError",
    "get_redis_connection",
    "glob_escape",
    "milliseconds",
    "split_servers",
]
