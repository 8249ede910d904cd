"""What differs per flavour: the default server, and the tests that probe Django's internals.

A flavour names the Django test class body that is run: ``base`` (``BaseCacheTests``, what
every backend runs), ``locmem`` (``LocMemCacheTests``), ``redis`` (``RedisCacheTests``),
``memcached`` (``PyMemcacheCacheTests``).
"""

from __future__ import annotations

FLAVORS = ("base", "locmem", "redis", "memcached")

#: The server a flavour starts unless ``--server`` or ``--location`` says otherwise.
DEFAULT_SERVER = {"redis": "redis", "memcached": "memcached"}
DEFAULT_LOCATION = {"redis": "redis://127.0.0.1:{port}", "memcached": "127.0.0.1:{port}"}

#: Tests that inspect private attributes of Django's own backend classes, not observable
#: cache behaviour; ``--skip-internals`` skips them. Names a Django version lacks are ignored.
INTERNALS: dict[str, tuple[str, ...]] = {
    "base": (),
    "locmem": (
        "test_locking_on_pickle",  # cache._lock
        "test_incr_decr_timeout",  # cache._expire_info
    ),
    "redis": (
        "test_incr_write_connection",  # mocks django's RedisCacheClient.get_client
        "test_cache_client_class",  # cache._class is RedisCacheClient
        "test_get_backend_timeout_method",  # RedisCache.get_backend_timeout returns seconds
        "test_get_connection_pool_index",  # cache._cache._get_connection_pool_index
        "test_get_connection_pool",  # cache._cache._get_connection_pool
        "test_get_client",  # cache._cache.get_client()
        "test_serializer_dumps",  # cache._cache._serializer
        "test_redis_pool_options",  # cache._cache._get_connection_pool().connection_kwargs
        "test_client_driver_info",  # cache._cache.get_client().client_info() (Django >= 6.1)
    ),
    "memcached": (
        "test_location_multiple_servers",  # cache._servers
        "test_close",  # mocks cache._class.disconnect_all
        "test_set_many_returns_failing_keys",  # mocks cache._class.set_multi
        "test_pymemcache_highest_pickle_version",  # cache._cache.default_kwargs / .clients
        "test_pymemcache_options",  # cache._cache.default_kwargs
    ),
}
