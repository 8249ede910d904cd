"""RedisCache: Django's cache API on Redis, plus django-redis's extensions, sync and async.

A drop-in for ``django.core.cache.backends.redis.RedisCache`` (same ``LOCATION`` forms: a
URL, or a list or ``,``/``;``-separated string of URLs, primary first and read replicas
after) on redis-py, with hiredis when installed. Django's API, tags, locks and the
fail-open policy come from :class:`~..remote.RemoteCache`; this module holds only what is
Redis's own: LOCATION and pool options, Django timeouts as ``PX`` milliseconds, ``clear()``
by prefix with SCAN + UNLINK, the django-redis extensions (``ttl``, ``persist``,
``keys``, ``delete_pattern``, ``get_client``, ...) and server figures from ``INFO``;
the data-structure commands are mixins (:mod:`.structures`).

Why it is fast: commands go straight to a pooled connection (``send_command`` +
``read_response``) through our lean pools (:mod:`.pools`) instead of ``redis.Redis``'s
per-command retry and observability layers; ``get_many`` is one ``MGET``, ``set_many``
one pipelined write, ``delete_many`` one ``DEL``; the ``a*`` methods use ``redis.asyncio``
pools of the running loop, with no thread hop.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import redis
import redis.asyncio
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ... import conf
from ...conf import mask_location
from ...exceptions import CacheConfigurationError, CacheServerError
from ..patterns import glob_escape, key_unmaker
from ..remote import RemoteCache
from . import locations
from .client import SCAN_COUNT, RedisClient
from .hashes import HashCommands
from .sets import SetCommands
from .sorted_sets import SortedSetCommands

#: Defaults (see conf.py for why): connect fast or fail (a healthy server accepts in well
#: under a millisecond); 1 s bounds what a stalled server can add to a call.
DEFAULT_CONNECT_TIMEOUT: float = conf.value({}, "CONNECT_TIMEOUT", "redis")
DEFAULT_SOCKET_TIMEOUT: float = conf.value({}, "SOCKET_TIMEOUT", "redis")
DEFAULT_MAX_CONNECTIONS: int = conf.value({}, "MAX_CONNECTIONS", "redis")

_SCHEMES = ("redis", "rediss", "unix", "fakeredis")  # fakeredis: see fake.py
#: No CLIENT SETINFO on connect: a round trip less per new connection, and a frozen server
#: cannot hold a new connection for two extra reply timeouts (redis-py 8 names it
#: driver_info; before, lib_name and lib_version).
_NO_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.connection.AbstractConnection.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


def milliseconds(ttl: float | None) -> int | None:
    """Seconds (as from ``ttl_seconds``) to PX: None persists, 0 means "do not store"."""
    if ttl is None:
        return None
    if ttl <= 0:
        return 0
    return max(1, int(ttl * 1000))


def split_servers(location: Any) -> list[str]:
    """LOCATION as Django's RedisCache reads it, checked: a list of redis URLs."""
    if isinstance(location, str):
        servers = [s.strip() for s in re.split("[;,]", location)]
    else:
        servers = [str(s).strip() for s in location or ()]
    servers = [s for s in servers if s]
    if not servers:
        raise CacheConfigurationError(
            "RedisCache needs a LOCATION such as 'redis://127.0.0.1:6379/0'"
        )
    for url in servers:
        scheme, sep, _ = url.partition("://")
        if not sep or scheme.lower() not in _SCHEMES:
            raise CacheConfigurationError(
                f"RedisCache LOCATION {mask_location(url)!r} is not a redis://, rediss:// "
                "or unix:// URL (or fakeredis:// in tests)"
            )
    return servers


def pool_options(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sync and async pool keyword arguments from OPTIONS; lower-case keys go to redis-py
    as they are."""
    for name, hint in conf.REFUSED_CLIENT_OPTIONS["redis"].items():
        if name in opts:
            raise CacheConfigurationError(f"RedisCache OPTIONS[{name!r}]: {hint}")
    socket_timeout = conf.value(opts, "SOCKET_TIMEOUT", "redis")
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": conf.value(opts, "CONNECT_TIMEOUT", "redis"),
        "socket_timeout": socket_timeout,
        "max_connections": conf.value(opts, "MAX_CONNECTIONS", "redis"),
        **_NO_SETINFO,
    }
    kwargs.update((k, v) for k, v in opts.items() if k.islower())
    # The sync pool blocks up to POOL_TIMEOUT for a free connection (threads); async
    # tasks wait their turn for one of the same number per event loop.
    pool_timeout = conf.value(opts, "POOL_TIMEOUT", "redis")
    return {**kwargs, "timeout": socket_timeout if pool_timeout is None else pool_timeout}, kwargs


def make_client(location: Any, opts: dict[str, Any], circuit: dict[str, Any]) -> RedisClient:
    """The client LOCATION names: servers, a Sentinel service or a Cluster."""
    sentinels = conf.value(opts, "SENTINELS", "redis")
    if not locations.is_topology(location, opts):
        return RedisClient(split_servers(location), *pool_options(opts), circuit)
    if not isinstance(location, str):
        raise CacheConfigurationError(
            "RedisCache: a Sentinel or Cluster LOCATION is one string, not a list"
        )
    topology = locations.parse(location, sentinels)
    if topology.kind == "cluster":
        from .cluster import ClusterClient

        return ClusterClient(topology, *pool_options(opts), circuit)
    from .sentinel import SentinelClient

    return SentinelClient(
        topology,
        *pool_options(opts),
        circuit,
        sentinel_options=conf.value(opts, "SENTINEL_KWARGS", "redis"),
        replica_reads=conf.value(opts, "READ_FROM_REPLICAS", "redis"),
    )


class RedisCache(RemoteCache, HashCommands, SetCommands, SortedSetCommands):
    """Redis through redis-py: Django's API, django-redis's extensions, sync and async.

    The hash, set and sorted-set commands (and ``expire_at``, ``pexpire_at``,
    ``pexpire``) come from the mixins in :mod:`.hashes`, :mod:`.sets`,
    :mod:`.sorted_sets` and :mod:`.structures`.
    """

    backend_name = "redis"

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._client: RedisClient = make_client(server, self._options, self.circuit_options())
        self._clients: dict[int, redis.Redis] = {}
        self._default_px = milliseconds(self.ttl_seconds(DEFAULT_TIMEOUT))

    # -- Redis's rules for RemoteCache -------------------------------------------------

    def _expiry(self, timeout: Any) -> int | None:
        if timeout is DEFAULT_TIMEOUT:
            return self._default_px
        return milliseconds(self.ttl_seconds(timeout))

    def _seconds_expiry(self, ttl: float | None) -> int | None:
        return milliseconds(ttl)

    def _clear_server(self) -> None:
        """Remove this alias's keys only: SCAN + UNLINK of its KEY_PREFIX.

        Without a KEY_PREFIX the alias owns the whole database, and it is flushed
        (``FLUSHDB``), as Django's RedisCache always does.
        """
        if self.key_prefix:
            self._client.unlink_matching(self._alias_pattern())
        else:
            for pool in self._client.primaries():
                self._client.send(pool, "FLUSHDB")

    async def _aclear_server(self) -> None:
        if self.key_prefix:
            await self._client.aunlink_matching(self._alias_pattern())
        else:
            for ap in await self._client.aprimaries():
                await self._client.asend(ap, "FLUSHDB")

    async def aclose(self, **kwargs: Any) -> None:
        """Close this event loop's connections to our servers (sync pools stay open)."""
        await self._client.aclose()

    # -- django-redis's extensions ---------------------------------------------------

    def get_client(self, key: Any = None, *, write: bool = True) -> redis.Redis:
        """A ``redis.Redis`` for raw commands (keys are not made), on redis-py's own pool.

        That pool has this alias's settings and bound, and opens its own connections on
        first use (the backend's commands go through the leaner ``SyncPool``).
        """
        raw = getattr(self._client, "raw_client", None)
        if raw is not None:  # Cluster: a redis.cluster.RedisCluster
            return raw()  # type: ignore[no-any-return]
        pool = (self._client.primary if write else self._client.read_pool()).redis_pool
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = redis.Redis(connection_pool=pool)
        return client

    def aget_client(self, *, write: bool = True) -> redis.asyncio.Redis:
        """A ``redis.asyncio.Redis`` on this loop's pool (call from inside the loop)."""
        raw = getattr(self._client, "araw_client", None)
        if raw is not None:  # Cluster: a redis.asyncio.cluster.RedisCluster
            return raw()  # type: ignore[no-any-return]
        ap = self._client.aprimary() if write else self._client.aread_pool()
        return redis.asyncio.Redis(connection_pool=ap.redis_pool)

    def ttl(self, key: Any, version: int | None = None) -> int | None:
        """Seconds left; None if the key never expires; 0 if it does not exist."""
        return self._remaining("TTL", key, version)

    def pttl(self, key: Any, version: int | None = None) -> int | None:
        """Milliseconds left; None if the key never expires; 0 if it does not exist."""
        return self._remaining("PTTL", key, version)

    def _remaining(self, command: str, key: Any, version: int | None) -> int | None:
        key = self.make_and_validate_key(key, version)
        try:
            left = int(self._client.send(self._client.key_pool(key, False), command, key))
        except CacheServerError as exc:
            return self._failed(command.lower(), exc, 0)
        return None if left == -1 else max(left, 0)

    async def attl(self, key: Any, version: int | None = None) -> int | None:
        return await self._aremaining("TTL", key, version)

    async def apttl(self, key: Any, version: int | None = None) -> int | None:
        return await self._aremaining("PTTL", key, version)

    async def _aremaining(self, command: str, key: Any, version: int | None) -> int | None:
        key = self.make_and_validate_key(key, version)
        try:
            pool = await self._client.akey_pool(key, False)
            left = int(await self._client.asend(pool, command, key))
        except CacheServerError as exc:
            return self._failed(command.lower(), exc, 0)
        return None if left == -1 else max(left, 0)

    def expire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """Set a key's timeout with Django's meaning (None: never expires, <= 0: delete)."""
        return self.touch(key, timeout, version)

    async def aexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        return await self.atouch(key, timeout, version)

    def persist(self, key: Any, version: int | None = None) -> bool:
        """Remove a key's timeout; True if it had one (Redis ``PERSIST``)."""
        return self._on_primary("PERSIST", key, version)

    async def apersist(self, key: Any, version: int | None = None) -> bool:
        return await self._aon_primary("PERSIST", key, version)

    def _on_primary(self, command: str, key: Any, version: int | None, *args: Any) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            return bool(self._client.send(self._client.key_pool(key), command, key, *args))
        except CacheServerError as exc:
            return self._failed(command.lower(), exc, False)

    async def _aon_primary(self, command: str, key: Any, version: int | None, *args: Any) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            pool = await self._client.akey_pool(key)
            return bool(await self._client.asend(pool, command, key, *args))
        except CacheServerError as exc:
            return self._failed(command.lower(), exc, False)

    def keys(self, search: str, version: int | None = None) -> list[str]:
        """Keys matching a glob pattern in Django key space (``"user:*"``), via SCAN."""
        return list(dict.fromkeys(self.iter_keys(search, version=version)))

    async def akeys(self, search: str, version: int | None = None) -> list[str]:
        return list(dict.fromkeys([k async for k in self.aiter_keys(search, version=version)]))

    def iter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> Iterator[str]:
        """Like :meth:`keys`, lazily; SCAN may yield a key twice if the db is rehashing."""
        unmake = self._key_unmaker(version)
        pattern = self._pattern(search, version)
        client = self._client
        try:
            for pool in client.scan_pools():
                for raw in client.scan(pool, pattern, itersize or SCAN_COUNT):
                    yield unmake(raw)
        except CacheServerError as exc:
            self._failed("iter_keys", exc, None)

    async def aiter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> AsyncIterator[str]:
        unmake = self._key_unmaker(version)
        pattern = self._pattern(search, version)
        client = self._client
        try:
            for ap in await client.ascan_pools():
                async for raw in client.ascan(ap, pattern, itersize or SCAN_COUNT):
                    yield unmake(raw)
        except CacheServerError as exc:
            self._failed("iter_keys", exc, None)

    def delete_pattern(
        self, pattern: str, version: int | None = None, itersize: int | None = None
    ) -> int:
        """Delete the keys matching a pattern in Django key space; returns how many."""
        try:
            deleted = self._client.unlink_matching(
                self._pattern(pattern, version), itersize or SCAN_COUNT
            )
        except CacheServerError as exc:
            return self._failed("delete_pattern", exc, 0)
        self._stats.deletes += deleted
        return deleted

    async def adelete_pattern(
        self, pattern: str, version: int | None = None, itersize: int | None = None
    ) -> int:
        try:
            deleted = await self._client.aunlink_matching(
                self._pattern(pattern, version), itersize or SCAN_COUNT
            )
        except CacheServerError as exc:
            return self._failed("delete_pattern", exc, 0)
        self._stats.deletes += deleted
        return deleted

    # -- patterns ----------------------------------------------------------------------

    def _pattern(self, search: str, version: int | None) -> str:
        """A pattern in Django key space made into a SCAN pattern (prefix and version)."""
        version = self.version if version is None else version
        pattern: str = self.key_func(search, glob_escape(self.key_prefix), version)
        return pattern

    def _alias_pattern(self) -> str:
        """Every key of this alias, whatever its version (what ``clear()`` removes)."""
        pattern: str = self.key_func("*", glob_escape(self.key_prefix), "*")
        return pattern

    def _key_unmaker(self, version: int | None) -> Callable[[bytes], str]:
        """Final key -> the key the user passed, when KEY_FUNCTION keeps it verbatim."""
        version = self.version if version is None else version
        unmake = key_unmaker(self.key_func, self.key_prefix, version)
        return lambda raw: unmake(raw.decode(errors="replace"))

    def health(self) -> dict[str, Any]:
        """As on every networked backend; on Cluster no node is "the primary": one dead
        node of several makes the alias ``degraded``, not ``down``."""
        report = super().health()
        servers = report["servers"]
        if (
            report["status"] == "down"
            and hasattr(self._client, "raw_client")
            and any(s["ping_ms"] is not None for s in servers)
        ):
            report["status"] = "degraded"
        return report

    # -- metrics -----------------------------------------------------------------------

    def store_stats(self) -> dict[str, Any]:
        """Server figures from INFO and DBSIZE; never raises (a down server is reported)."""
        try:
            client = self.get_client()
            info = client.info()
            entries = client.dbsize()
        except redis.exceptions.RedisError as exc:
            return {"server_error": f"{type(exc).__name__}: {exc}"}
        data: dict[str, Any] = {"entries": entries}
        for name in _INFO_FIELDS:
            if name in info:
                data[name] = info[name]
        return data


_INFO_FIELDS = (
    "redis_version",
    "uptime_in_seconds",
    "connected_clients",
    "used_memory",
    "used_memory_human",
    "maxmemory",
    "maxmemory_policy",
    "keyspace_hits",
    "keyspace_misses",
    "evicted_keys",
    "expired_keys",
    "total_commands_processed",
)
