"""The Redis client under RedisCache: servers, routing, and the one place commands go out.

Every command the backend sends passes :meth:`RedisClient.send` (or ``asend`` for
``redis.asyncio``): that is where a failing server becomes
:class:`~lexigram_cache_django.exceptions.CacheServerError` (refused, reset, timed out,
loading, read-only, out of memory). A bad command is a bug and raises as redis-py raised
it. Routing: writes, tag records and locks go to the primary; plain reads to a random
replica when there are any (as Django's RedisCache does).

Pools are shared by every backend object with the same servers and options: Django
builds a backend object per thread (and per async context), and connections must
outlive them. Async pools are per running event loop (connections cannot cross loops).
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from ...circuit import CircuitBreaker
from ...conf import mask_location
from ...exceptions import CacheIncrError, CacheServerError
from ...failfast import breaker_for, failed_in_operation, server_failed
from ...metrics import histogram_for
from ...tags import new_version, record_version
from . import scripts
from .pools import AsyncPool, SyncPool
from .scripts import Script

#: Errors that mean "the server cannot serve us now", not "this command is wrong".
SERVER_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # refused, reset, auth failed, pool exhausted
    redis.exceptions.TimeoutError,
    BusyLoadingError,
    ReadOnlyError,  # a replica answered a write (failover in progress)
    ClusterDownError,
    TryAgainError,
    OutOfMemoryError,
)
#: Keys per SCAN step and per UNLINK batch (clear, delete_pattern, keys).
SCAN_COUNT = 1000


class RedisIncrError(CacheIncrError, ResponseError):
    """``incr``/``decr`` of a value Redis cannot increment.

    A :class:`~lexigram_cache_django.exceptions.CacheIncrError` (a ``TypeError``, as on
    Django's in-memory backends) and a ``redis.ResponseError`` (what Django's RedisCache
    raises), so code written for either keeps working.
    """


def unavailable(breaker: CircuitBreaker, exc: Exception) -> CacheServerError:
    """The one error a failing server becomes, reported to its breaker.

    An error reply (loading, read-only, out of memory: ``answered``) means the server is
    up, so it does not count towards opening the breaker; a refused, reset or timed-out
    connection does, and the server is not asked again within the same operation.
    """
    answered = isinstance(exc, ResponseError)
    if answered:
        breaker.success()
    else:
        server_failed(breaker, exc, isinstance(exc, redis.exceptions.TimeoutError))
    message = f"{type(exc).__name__}: {exc}"
    return CacheServerError(message, server=breaker.server, answered=answered)


def short_circuited(breaker: CircuitBreaker) -> CacheServerError:
    """A command not sent: the breaker is open, or the server failed in this operation."""
    return CacheServerError(
        f"not sent: {breaker.server} is failing (circuit {breaker.state.value})",
        server=breaker.server,
        short_circuited=True,
    )


def _set_args(key: str, data: bytes, px: int | None, xx: bool = False) -> tuple[Any, ...]:
    args: tuple[Any, ...] = ("SET", key, data) if px is None else ("SET", key, data, "PX", px)
    return (*args, "XX") if xx else args


def _set_commands(items: Sequence[tuple[str, bytes]], px: int | None) -> list[tuple[Any, ...]]:
    if px is None:
        return [("SET", key, data) for key, data in items]
    return [("SET", key, data, "PX", px) for key, data in items]


def _not_stored(items: Sequence[tuple[str, bytes]], replies: Sequence[Any]) -> list[str]:
    """The keys of a pipelined write whose reply was a server error (a bad one raises)."""
    failed: list[str] = []
    for (key, _), reply in zip(items, replies):
        if isinstance(reply, Exception):
            if not isinstance(reply, SERVER_ERRORS):
                raise reply
            failed.append(key)
    return failed


def _persist_if_exists(key: str) -> list[tuple[Any, ...]]:
    """PERSIST answers 0 for a key without expiry: EXISTS in the same transaction tells."""
    return [("MULTI",), ("EXISTS", key), ("PERSIST", key), ("EXEC",)]


def _existed(replies: Sequence[Any]) -> bool:
    executed = replies[-1]
    if isinstance(executed, Exception):
        raise executed
    return bool(executed[0])


def _px_arg(px: int | None) -> Any:
    return "" if px is None else px


def _incr_error(key: str, exc: ResponseError) -> RedisIncrError:
    return RedisIncrError(f"cannot increment key {key!r}: {exc}")


# -- pools shared by every backend object of the same servers and options ---------------

_sync_pools: dict[str, SyncPool] = {}
_sync_pools_lock = threading.Lock()
_loop_pools: dict[asyncio.AbstractEventLoop, dict[str, list[AsyncPool]]] = {}


def _pools_for_loop(loop: asyncio.AbstractEventLoop) -> dict[str, list[AsyncPool]]:
    pools = _loop_pools.get(loop)
    if pools is None:
        # A new loop: forget the pools of loops that have closed (their connections
        # cannot be used again and are released with them).
        for old in [old for old in _loop_pools if old.is_closed()]:
            _loop_pools.pop(old, None)
        pools = _loop_pools[loop] = {}
    return pools


class RedisClient:
    """One primary and its read replicas, with the commands RemoteCache needs."""

    def __init__(
        self,
        servers: list[str],
        sync_kwargs: dict[str, Any],
        async_kwargs: dict[str, Any],
        circuit: Mapping[str, Any] | None = None,
    ) -> None:
        self.servers = servers
        self.names = [mask_location(url) for url in servers]
        self._sync_kwargs = sync_kwargs
        self._async_kwargs = async_kwargs
        self.pools_id = f"{'|'.join(servers)}|{sorted(sync_kwargs.items())!r}"
        pools = [self._sync_pool(i) for i in range(len(servers))]
        self.primary = pools[0]
        self.replicas = pools[1:]
        #: One breaker per server, shared by the process; each pool carries its server's.
        self.breakers = [breaker_for(name, **(circuit or {})) for name in self.names]
        for pool, breaker in zip(pools, self.breakers):
            pool.breaker = breaker
            pool.latency = histogram_for(breaker.server)

    def _sync_pool(self, index: int) -> SyncPool:
        pool_id = f"{self.servers[index]}|{self.pools_id}"
        pool = _sync_pools.get(pool_id)
        if pool is None:
            with _sync_pools_lock:
                pool = _sync_pools.get(pool_id)
                if pool is None:
                    pool = SyncPool(self.servers[index], **self._sync_kwargs)
                    _sync_pools[pool_id] = pool
        return pool

    def read_pool(self) -> SyncPool:
        """A replica if there are any, else the primary."""
        replicas = self.replicas
        return random.choice(replicas) if replicas else self.primary

    def apools(self) -> list[AsyncPool]:
        """This loop's pools for our servers, primary first, created on first use."""
        pools = _pools_for_loop(asyncio.get_running_loop())
        mine = pools.get(self.pools_id)
        if mine is None:
            timeout = self._sync_kwargs["timeout"]  # POOL_TIMEOUT, as for threads
            mine = pools[self.pools_id] = [
                AsyncPool(url, timeout=timeout, **self._async_kwargs) for url in self.servers
            ]
            for ap, breaker in zip(mine, self.breakers):
                ap.breaker = breaker
                ap.latency = histogram_for(breaker.server)
        return mine

    def aprimary(self) -> AsyncPool:
        return self.apools()[0]

    def aread_pool(self) -> AsyncPool:
        pools = self.apools()
        return pools[0] if len(pools) == 1 else random.choice(pools[1:])

    async def aclose(self) -> None:
        """Close this event loop's connections to our servers (sync pools stay open)."""
        mine = _loop_pools.get(asyncio.get_running_loop(), {}).pop(self.pools_id, None)
        for ap in mine or ():
            await ap.aclose()

    # -- the choke point ---------------------------------------------------------------

    def send(self, pool: SyncPool, *args: Any) -> Any:
        """One command to one server: the only place a sync command goes out.

        The server's breaker is asked first (an open one short-circuits the call in
        microseconds) and told the outcome after; a failing server becomes
        CacheServerError; a bad command raises as redis-py raised it.
        """
        breaker = pool.breaker
        if failed_in_operation(breaker.server) or not breaker.allow():
            raise short_circuited(breaker)
        start = time.perf_counter()
        try:
            result = pool.execute(*args)
        except SERVER_ERRORS as exc:
            raise unavailable(breaker, exc) from exc
        except BaseException:
            breaker.abandon()  # no outcome (a bad command, an interrupt)
            raise
        breaker.success()
        pool.latency.observe(time.perf_counter() - start)
        return result

    def send_pipeline(self, pool: SyncPool, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one write; an error reply is returned in its place."""
        breaker = pool.breaker
        if failed_in_operation(breaker.server) or not breaker.allow():
            raise short_circuited(breaker)
        start = time.perf_counter()
        try:
            result = pool.pipeline(commands)
        except SERVER_ERRORS as exc:
            raise unavailable(breaker, exc) from exc
        except BaseException:
            breaker.abandon()
            raise
        breaker.success()
        pool.latency.observe(time.perf_counter() - start)
        return result

    async def asend(self, ap: AsyncPool, *args: Any) -> Any:
        breaker = ap.breaker
        if failed_in_operation(breaker.server) or not breaker.allow():
            raise short_circuited(breaker)
        start = time.perf_counter()
        try:
            result = await ap.execute(*args)
        except SERVER_ERRORS as exc:
            raise unavailable(breaker, exc) from exc
        except BaseException:
            breaker.abandon()  # cancelled: no outcome
            raise
        breaker.success()
        ap.latency.observe(time.perf_counter() - start)
        return result

    async def asend_pipeline(self, ap: AsyncPool, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        breaker = ap.breaker
        if failed_in_operation(breaker.server) or not breaker.allow():
            raise short_circuited(breaker)
        start = time.perf_counter()
        try:
            result = await ap.pipeline(commands)
        except SERVER_ERRORS as exc:
            raise unavailable(breaker, exc) from exc
        except BaseException:
            breaker.abandon()
            raise
        breaker.success()
        ap.latency.observe(time.perf_counter() - start)
        return result

    def eval(self, script: Script, keys: Sequence[str], *args: Any) -> Any:
        """A Lua script on the primary: EVALSHA, or EVAL the first time a server sees it."""
        try:
            return self.send(self.primary, "EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.send(self.primary, "EVAL", script.source, len(keys), *keys, *args)

    async def aeval(self, script: Script, keys: Sequence[str], *args: Any) -> Any:
        ap = self.aprimary()
        try:
            return await self.asend(ap, "EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.asend(ap, "EVAL", script.source, len(keys), *keys, *args)

    # -- the commands of remote.ServerClient -----------------------------------------

    def get(self, key: str, primary: bool = False) -> bytes | None:
        pool = self.primary if primary or not self.replicas else self.read_pool()
        data: bytes | None = self.send(pool, "GET", key)
        return data

    async def aget(self, key: str, primary: bool = False) -> bytes | None:
        data: bytes | None = await self.asend(
            self.aprimary() if primary else self.aread_pool(), "GET", key
        )
        return data

    def get_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]:
        pool = self.primary if primary or not self.replicas else self.read_pool()
        replies: list[bytes | None] = self.send(pool, "MGET", *keys)
        return replies

    async def aget_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]:
        ap = self.aprimary() if primary else self.aread_pool()
        replies: list[bytes | None] = await self.asend(ap, "MGET", *keys)
        return replies

    def set(self, key: str, data: bytes, exp: int | None, xx: bool = False) -> bool:
        if exp == 0:  # Django: a timeout <= 0 stores nothing and drops the old value
            deleted = self.send(self.primary, "DEL", key)
            return xx and bool(deleted)
        return self.send(self.primary, *_set_args(key, data, exp, xx)) is not None

    async def aset(self, key: str, data: bytes, exp: int | None, xx: bool = False) -> bool:
        if exp == 0:
            deleted = await self.asend(self.aprimary(), "DEL", key)
            return xx and bool(deleted)
        return await self.asend(self.aprimary(), *_set_args(key, data, exp, xx)) is not None

    def set_many(self, items: Sequence[tuple[str, bytes]], exp: int | None) -> list[str]:
        if exp == 0:
            self.send(self.primary, "DEL", *(key for key, _ in items))
            return []
        return _not_stored(items, self.send_pipeline(self.primary, _set_commands(items, exp)))

    async def aset_many(self, items: Sequence[tuple[str, bytes]], exp: int | None) -> list[str]:
        ap = self.aprimary()
        if exp == 0:
            await self.asend(ap, "DEL", *(key for key, _ in items))
            return []
        return _not_stored(items, await self.asend_pipeline(ap, _set_commands(items, exp)))

    def add(self, key: str, data: bytes, exp: int | None) -> bool:
        if exp == 0:
            return not self.send(self.primary, "EXISTS", key)
        return self.send(self.primary, *_set_args(key, data, exp), "NX") is not None

    async def aadd(self, key: str, data: bytes, exp: int | None) -> bool:
        if exp == 0:
            return not await self.asend(self.aprimary(), "EXISTS", key)
        return await self.asend(self.aprimary(), *_set_args(key, data, exp), "NX") is not None

    def gets(self, key: str) -> tuple[bytes | None, Any]:
        """The value and the token ``cas`` compares: on Redis, the value itself."""
        data = self.send(self.primary, "GET", key)
        return data, data

    async def agets(self, key: str) -> tuple[bytes | None, Any]:
        data = await self.asend(self.aprimary(), "GET", key)
        return data, data

    def cas(self, key: str, data: bytes, token: Any, exp: int | None) -> bool:
        return bool(self.eval(scripts.REPLACE, [key], token, data, _px_arg(exp)))

    async def acas(self, key: str, data: bytes, token: Any, exp: int | None) -> bool:
        return bool(await self.aeval(scripts.REPLACE, [key], token, data, _px_arg(exp)))

    def touch(self, key: str, exp: int | None) -> bool:
        if exp is None:
            return _existed(self.send_pipeline(self.primary, _persist_if_exists(key)))
        if exp == 0:
            return bool(self.send(self.primary, "DEL", key))
        return bool(self.send(self.primary, "PEXPIRE", key, exp))

    async def atouch(self, key: str, exp: int | None) -> bool:
        ap = self.aprimary()
        if exp is None:
            return _existed(await self.asend_pipeline(ap, _persist_if_exists(key)))
        if exp == 0:
            return bool(await self.asend(ap, "DEL", key))
        return bool(await self.asend(ap, "PEXPIRE", key, exp))

    def delete(self, key: str) -> bool:
        return bool(self.send(self.primary, "DEL", key))

    async def adelete(self, key: str) -> bool:
        return bool(await self.asend(self.aprimary(), "DEL", key))

    def delete_many(self, keys: Sequence[str]) -> int:
        return int(self.send(self.primary, "DEL", *keys))

    async def adelete_many(self, keys: Sequence[str]) -> int:
        return int(await self.asend(self.aprimary(), "DEL", *keys))

    def incr(self, key: str, delta: int) -> int | None:
        try:
            value: int | None = self.eval(scripts.INCR, [key], delta)
        except ResponseError as exc:
            raise _incr_error(key, exc) from exc
        return value

    async def aincr(self, key: str, delta: int) -> int | None:
        try:
            value: int | None = await self.aeval(scripts.INCR, [key], delta)
        except ResponseError as exc:
            raise _incr_error(key, exc) from exc
        return value

    def tag_versions(self, keys: Sequence[str], create: bool, exp: int | None) -> list[int | None]:
        if not create:
            return [record_version(r) for r in self.send(self.primary, "MGET", *keys)]
        fresh = [new_version() for _ in keys]
        return [record_version(r) for r in self.eval(scripts.TAG_VERSIONS, keys, exp, *fresh)]

    async def atag_versions(
        self, keys: Sequence[str], create: bool, exp: int | None
    ) -> list[int | None]:
        if not create:
            return [record_version(r) for r in await self.asend(self.aprimary(), "MGET", *keys)]
        fresh = [new_version() for _ in keys]
        replies = await self.aeval(scripts.TAG_VERSIONS, keys, exp, *fresh)
        return [record_version(r) for r in replies]

    def release_if(self, key: str, token: bytes) -> bool:
        return bool(self.eval(scripts.LOCK_RELEASE, [key], token))

    async def arelease_if(self, key: str, token: bytes) -> bool:
        return bool(await self.aeval(scripts.LOCK_RELEASE, [key], token))

    def extend_if(self, key: str, token: bytes, exp: int | None) -> bool:
        return bool(self.eval(scripts.LOCK_EXTEND, [key], token, _px_arg(exp)))

    async def aextend_if(self, key: str, token: bytes, exp: int | None) -> bool:
        return bool(await self.aeval(scripts.LOCK_EXTEND, [key], token, _px_arg(exp)))

    def pings(self) -> list[tuple[CircuitBreaker, Callable[[], Any]]]:
        """Each server's breaker and a PING through the choke point (for health())."""
        pools = [self.primary, *self.replicas]
        return [(pool.breaker, functools.partial(self.send, pool, "PING")) for pool in pools]

    # -- SCAN, for clear / keys / delete_pattern -------------------------------------

    def scan(self, pool: SyncPool, pattern: str, count: int = SCAN_COUNT) -> Iterator[bytes]:
        cursor: Any = 0
        while True:
            cursor, found = self.send(pool, "SCAN", cursor, "MATCH", pattern, "COUNT", count)
            yield from found
            if int(cursor) == 0:
                return

    async def ascan(
        self, ap: AsyncPool, pattern: str, count: int = SCAN_COUNT
    ) -> AsyncIterator[bytes]:
        cursor: Any = 0
        while True:
            cursor, found = await self.asend(ap, "SCAN", cursor, "MATCH", pattern, "COUNT", count)
            for key in found:
                yield key
            if int(cursor) == 0:
                return

    def unlink_matching(self, pattern: str, count: int = SCAN_COUNT) -> int:
        """SCAN the primary and UNLINK what matches, ``count`` keys per command."""
        deleted = 0
        batch: list[bytes] = []
        for key in self.scan(self.primary, pattern, count):
            batch.append(key)
            if len(batch) >= count:
                deleted += self.send(self.primary, "UNLINK", *batch)
                batch = []
        if batch:
            deleted += self.send(self.primary, "UNLINK", *batch)
        return deleted

    async def aunlink_matching(self, pattern: str, count: int = SCAN_COUNT) -> int:
        ap = self.aprimary()
        deleted = 0
        batch: list[bytes] = []
        async for key in self.ascan(ap, pattern, count):
            batch.append(key)
            if len(batch) >= count:
                deleted += await self.asend(ap, "UNLINK", *batch)
                batch = []
        if batch:
            deleted += await self.asend(ap, "UNLINK", *batch)
        return deleted
