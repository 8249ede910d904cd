"""Redis Sentinel: the service's primary for writes, its replicas for reads when asked.

The commands and the choke point are :class:`~.client.RedisClient`'s; only the pools
differ. Each is one of our lean pools over redis-py's ``SentinelConnectionPool``
(``redis.sentinel`` for threads, ``redis.asyncio.sentinel`` per event loop), whose
connections ask the sentinels for the primary's (or a replica's) address each time they
connect. A failover is followed without a restart: connections to the old primary fail
(refused, reset, or ``READONLY`` once it is demoted, which redis-py turns into a connection
error), the pool's one stale-connection retry reconnects, and the new connection goes where
the sentinels now point. Until they have promoted a replica, calls fail open and fast.

One breaker per role, shared by the process: ``<location> primary`` and
``<location> replicas``. It follows the service rather than an address, so after a
failover its half-open trial reaches the new primary within ``CIRCUIT_RESET_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...failfast import breaker_for
from ...metrics import histogram_for
from .client import RedisClient, _pools_for_loop
from .locations import Topology
from .pools import AsyncPool, SyncPool

#: Pool keyword arguments that are ours or BlockingConnectionPool's, not a connection's.
_POOL_ONLY = ("timeout", "max_connections")
_sync_pools: dict[str, list[SyncPool]] = {}
_sync_lock = threading.Lock()


class _Connection(redis.sentinel.SentinelManagedConnection):
    """Asks the sentinels where to connect on first send too.

    redis-py's sentinel connections look the address up only in ``connect()``; our pools
    send on a fresh connection directly, and redis-py's ``send_packed_command`` would
    then connect to the connection's own host and port instead.
    """

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class _SSLConnection(_Connection, redis.sentinel.SentinelManagedSSLConnection):
    pass


class _AsyncConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]
        await super().send_packed_command(command, check_health)


class _AsyncSSLConnection(_AsyncConnection, redis.asyncio.sentinel.SentinelManagedSSLConnection):
    pass


def sentinel_kwargs(
    topology: Topology, kwargs: Mapping[str, Any], configured: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Connection arguments for the sentinels: our timeouts, no retries, then SENTINEL_KWARGS."""
    base: dict[str, Any] = {
        "socket_timeout": kwargs.get("socket_timeout"),
        "socket_connect_timeout": kwargs.get("socket_connect_timeout"),
        "retry": Retry(NoBackoff(), 0),  # a dead sentinel: ask the next one at once
    }
    if topology.ssl:
        base["ssl"] = True
    return {**base, **(configured or {})}


class SentinelClient(RedisClient):
    """A Sentinel service: the primary, plus one replica pool when ``replica_reads``."""

    def __init__(
        self,
        topology: Topology,
        sync_kwargs: dict[str, Any],
        async_kwargs: dict[str, Any],
        circuit: Mapping[str, Any] | None = None,
        *,
        sentinel_options: Mapping[str, Any] | None = None,
        replica_reads: bool = False,
    ) -> None:
        self.topology = topology
        self.replica_reads = replica_reads
        roles = ["primary", "replicas"] if replica_reads else ["primary"]
        self.servers = [f"{topology.display} {role}" for role in roles]
        self.names = list(self.servers)  # the display is masked already
        self._sync_kwargs = sync_kwargs
        self._async_kwargs = async_kwargs
        self._sentinel_kwargs = sentinel_kwargs(topology, sync_kwargs, sentinel_options)
        self.pools_id = (
            f"sentinel|{topology!r}|{sorted(sync_kwargs.items())!r}|"
            f"{sorted(self._sentinel_kwargs.items(), key=repr)!r}|{replica_reads}"
        )
        self.breakers = [breaker_for(name, **(circuit or {})) for name in self.names]
        pools = self._shared_sync_pools()
        self.primary = pools[0]
        self.replicas = pools[1:]

    def _connection_kwargs(self, kwargs: Mapping[str, Any], aio: bool) -> dict[str, Any]:
        made = {k: v for k, v in kwargs.items() if k not in _POOL_ONLY}
        made.update(self.topology.server_kwargs())
        # Never the connection's own address: port 1 refuses if anything skipped the lookup.
        made["host"], made["port"] = "127.0.0.1", 1
        ssl = self.topology.ssl
        if aio:
            made["connection_class"] = _AsyncSSLConnection if ssl else _AsyncConnection
        else:
            made["connection_class"] = _SSLConnection if ssl else _Connection
        return made

    def _shared_sync_pools(self) -> list[SyncPool]:
        pools = _sync_pools.get(self.pools_id)
        if pools is None:
            with _sync_lock:
                pools = _sync_pools.get(self.pools_id)
                if pools is None:
                    pools = _sync_pools[self.pools_id] = self._new_sync_pools()
        for pool, breaker in zip(pools, self.breakers):
            pool.breaker = breaker
            pool.latency = histogram_for(breaker.server)
        return pools

    def _new_sync_pools(self) -> list[SyncPool]:
        manager = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(self.topology.hosts), sentinel_kwargs=self._sentinel_kwargs
        )
        conn = self._connection_kwargs(self._sync_kwargs, False)
        size = self._sync_kwargs["max_connections"]
        pools = []
        for is_master in (True, False)[: len(self.names)]:
            redis_pool = redis.sentinel.SentinelConnectionPool(  # type: ignore[no-untyped-call]
                self.topology.service, manager, is_master=is_master, max_connections=size, **conn
            )
            pools.append(
                SyncPool(
                    self.topology.display,
                    redis_pool=redis_pool,
                    timeout=self._sync_kwargs["timeout"],
                )
            )
        return pools

    def apools(self) -> list[AsyncPool]:
        """This loop's pools (the primary's, then the replicas'), made on first use."""
        pools = _pools_for_loop(asyncio.get_running_loop())
        mine = pools.get(self.pools_id)
        if mine is None:
            manager = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
                list(self.topology.hosts), sentinel_kwargs=self._sentinel_kwargs
            )
            conn = self._connection_kwargs(self._async_kwargs, True)
            size = self._async_kwargs["max_connections"]
            mine = []
            for is_master in (True, False)[: len(self.names)]:
                redis_pool = redis.asyncio.sentinel.SentinelConnectionPool(  # type: ignore[no-untyped-call]
                    self.topology.service,
                    manager,
                    is_master=is_master,
                    max_connections=size,
                    **conn,
                )
                mine.append(
                    AsyncPool(
                        self.topology.display,
                        timeout=self._sync_kwargs["timeout"],
                        redis_pool=redis_pool,
                    )
                )
            pools[self.pools_id] = mine
            for ap, breaker in zip(mine, self.breakers):
                ap.breaker = breaker
                ap.latency = histogram_for(breaker.server)
        return mine

    def aread_pool(self) -> AsyncPool:
        pools = self.apools()
        return pools[-1]

    async def aclose(self) -> None:
        """Close this loop's connections: to the servers, and to the sentinels."""
        mine = _pools_for_loop(asyncio.get_running_loop()).pop(self.pools_id, None) or []
        for ap in mine:
            await ap.aclose()
        if mine:
            await mine[0].redis_pool.sentinel_manager.aclose()
