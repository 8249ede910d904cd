"""The memcached client under MemcachedCache: pymemcache per thread, our asyncio client.

Every command to a node passes one guard (``nodes._guarded``, around
pymemcache's own three command paths): the node's circuit breaker is asked first (an open
one short-circuits the call in microseconds) and told the outcome after. A refused,
reset or timed-out connection counts against the node; a reply, even an error reply,
does not. :meth:`MemcachedClient.call` then turns a failure into
:class:`~lexigram_cache_django.exceptions.CacheServerError`; a ``MemcacheClientError`` (a
command memcached refused as malformed, such as ``incr`` of a non-number) raises as it is.

pymemcache runs without a serde: values arrive already encoded by the alias's codec, so
plain ints are ASCII digits that memcached's ``incr``/``decr`` change atomically. One
server uses a pymemcache ``Client``; several use its ``HashClient`` (rendezvous hashing).
Clients are kept per thread and shared by every backend object with the same servers and
options; which nodes are failing or dead is recorded once per process (:mod:`.ring`), so
every thread hashes a key to the same node.

A forked child starts with no clients, worker threads or asyncio pools of its parent's.

Async: with one server, the ``a*`` commands use our asyncio client (:mod:`.aio`: FIFO
pools per event loop, one time budget per call, fast failure on a dead server) behind the
same breaker. Several servers (the asyncio client does not hash keys) and batch writes
(pymemcache pipelines them) run the sync command on a small pool of worker threads.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pymemcache.client.base import normalize_server_spec
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import (
    MemcacheClientError,
)

from ...circuit import CircuitBreaker
from ...exceptions import CacheServerError
from ...failfast import breaker_for
from ...metrics import histogram_for
from ...tags import new_version, record_version
from .aio import AsyncMemcachedClient
from .nodes import (
    HASH_CLIENT_ONLY,
    SERVER_ERRORS,
    BatchHashClient,
    GuardedClient,
    MemcachedIncrError,
    MemcachedUnavailableError,
    NodeShortCircuited,
    guard,
    incr_error,
    node_name,
    report,
    unavailable,
)
from .ring import ring_for
from .wire import MemcachedClientReplyError

__all__ = [
    "HASH_CLIENT_ONLY",
    "SERVER_ERRORS",
    "GuardedClient",
    "MemcachedClient",
    "MemcachedIncrError",
    "MemcachedUnavailableError",
    "aclose_async_clients",
]

_T = TypeVar("_T")


#: What :meth:`MemcachedClient.acall` returns for an answer such as NOT_FOUND.
ABSENT: Any = object()

_local = threading.local()


def _new_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="lexigram-memcached")


#: Worker threads for what has no native async path; each keeps its own clients.
_executor = _new_executor()
_async_clients: dict[Hashable, AsyncMemcachedClient] = {}


def _after_fork_in_child() -> None:
    """A forked child opens its own connections and starts its own worker threads.

    The forking thread's pymemcache clients would share their sockets with the parent
    (two processes reading each other's replies), and the executor's threads do not
    exist in the child: a call handed to them waited forever. Dropped, not closed: the
    child's copies of the sockets close when collected, the parent's stay open. The
    asyncio client's pools are dropped by :mod:`.aio` itself.
    """
    global _local, _executor
    _local = threading.local()
    _executor = _new_executor()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _offload(fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
    """Run a sync command on a worker thread (it uses that thread's own client)."""
    return asyncio.get_running_loop().run_in_executor(_executor, fn, *args)


async def aclose_async_clients() -> None:
    """Close the running loop's asyncio connections (at ASGI shutdown, or a test's end).

    Backend objects share them, so ``aclose()`` leaves them open; without this they are
    simply dropped with their loop.
    """
    for client in list(_async_clients.values()):
        await client.aclose()


class MemcachedClient:
    """The commands RemoteCache needs, on one memcached server or a hashed set of them."""

    def __init__(
        self,
        servers: list[str],
        kwargs: dict[str, Any],
        pool_size: int,
        native: bool,
        circuit: dict[str, Any] | None = None,
    ) -> None:
        self.servers = servers
        self.name = ",".join(servers)
        self.kwargs = kwargs
        self.pool_size = pool_size
        self.native = native  # our asyncio client on the running loop, else worker threads
        self.client_id: Hashable = (tuple(servers), repr(sorted(kwargs.items())), pool_size)
        #: The nodes' breakers, made here with this alias's settings (first one wins).
        self.breakers = [breaker_for(node_name(s), **(circuit or {})) for s in servers]
        #: Latency of the commands to these servers (one histogram for the node set).
        self.latency = histogram_for(self.name)
        self._aio: AsyncMemcachedClient | None = None

    # -- pymemcache clients ---------------------------------------------------------

    def pymemcache(self) -> Any:
        """This thread's pymemcache client for these servers and options."""
        try:
            return _local.clients[self.client_id]
        except AttributeError:
            _local.clients = {}
        except KeyError:
            pass
        client = _local.clients[self.client_id] = self._make_client()
        return client

    def _make_client(self) -> Any:
        kwargs = dict(self.kwargs)
        if len(self.servers) > 1:
            ring = ring_for(
                self.client_id,
                retry_attempts=kwargs.get("retry_attempts", 2),
                retry_timeout=kwargs.get("retry_timeout", 1),
                dead_timeout=kwargs.get("dead_timeout", 60),
            )
            return BatchHashClient(self.servers, ring, **kwargs)
        for name in HASH_CLIENT_ONLY:
            kwargs.pop(name, None)
        return GuardedClient(normalize_server_spec(self.servers[0]), **kwargs)

    def nodes(self) -> list[tuple[str, Any]]:
        """``(server, pymemcache Client)`` for each node, for per-server stats."""
        client = self.pymemcache()
        if isinstance(client, HashClient):
            return [(str(name), node) for name, node in client.clients.items()]
        return [(self.servers[0], client)]

    def pings(self) -> list[tuple[CircuitBreaker, Callable[[], Any]]]:
        """Each node's breaker and a ``version`` command to it (for health())."""

        def ping(node: Any) -> Any:
            try:
                return node.version()
            except SERVER_ERRORS as exc:
                raise unavailable(node_name(node.server), exc) from exc

        return [(node.breaker, functools.partial(ping, node)) for _, node in self.nodes()]

    # -- the choke points -------------------------------------------------------------

    def call(self, command: str, *args: Any) -> Any:
        """One command through this thread's client (guarded per node, see the module
        docstring): a malformed-command error raises as it is; a failing or
        short-circuited server becomes CacheServerError."""
        start = time.perf_counter()
        try:
            result = getattr(self.pymemcache(), command)(*args)
        except MemcacheClientError:
            raise
        except SERVER_ERRORS as exc:
            raise unavailable(self.name, exc) from exc
        self.latency.observe(time.perf_counter() - start)
        return result

    def _async_client(self) -> AsyncMemcachedClient:
        """The process's asyncio client for our (single) server, shared by every alias."""
        client = self._aio
        if client is None:
            client = _async_clients.get(self.client_id)
            if client is None:
                spec = normalize_server_spec(self.servers[0])
                if isinstance(spec, str):
                    raise CacheServerError("the asyncio client needs a host:port server")
                client = _async_clients.setdefault(
                    self.client_id,
                    AsyncMemcachedClient(
                        spec[0],
                        int(spec[1]),
                        timeout=self.kwargs["timeout"],
                        connect_timeout=self.kwargs["connect_timeout"],
                        max_connections=self.pool_size,
                    ),
                )
            self._aio = client
        return client

    async def acall(self, command: str, *args: Any) -> Any:
        """One asyncio command: the only place a native async command goes out, behind
        the same breaker as the sync commands to that server."""
        breaker = self.breakers[0]
        start = time.perf_counter()
        try:
            guard(breaker)
            result = await getattr(self._async_client(), command)(*args)
        except MemcachedClientReplyError:
            breaker.success()
            raise
        except NodeShortCircuited as exc:
            raise unavailable(self.name, exc) from exc
        except BaseException as exc:
            report(breaker, exc)
            if isinstance(exc, SERVER_ERRORS):
                raise unavailable(self.name, exc) from exc
            raise
        breaker.success()
        self.latency.observe(time.perf_counter() - start)
        return result

    # -- the commands of remote.ServerClient ------------------------------------------

    def get(self, key: str, primary: bool = False) -> bytes | None:
        data: bytes | None = self.call("get", key)
        return data

    async def aget(self, key: str, primary: bool = False) -> bytes | None:
        if not self.native:
            return await _offload(self.get, key)
        data: bytes | None = await self.acall("get", key.encode())
        return data

    def get_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]:
        found: dict[str, bytes] = self.call("get_many", keys)
        return list(map(found.get, keys))

    async def aget_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]:
        if not self.native:
            return await _offload(self.get_many, keys)
        found = await self.acall("get_many", [key.encode() for key in keys])
        return [found.get(key.encode()) for key in keys]

    def set(self, key: str, data: bytes, exp: int, xx: bool = False) -> bool:
        if xx:
            return bool(self.call("replace", key, data, exp, False))
        if not self.call("set", key, data, exp, False):
            raise unavailable(self.name, MemcachedUnavailableError("the value was not stored"))
        return True

    async def aset(self, key: str, data: bytes, exp: int, xx: bool = False) -> bool:
        if not self.native:
            return await _offload(self.set, key, data, exp, xx)
        if xx:
            return bool(await self.acall("replace", key.encode(), data, exp))
        if not await self.acall("set", key.encode(), data, exp):
            raise unavailable(self.name, MemcachedUnavailableError("the value was not stored"))
        return True

    def set_many(self, items: Sequence[tuple[str, bytes]], exp: int) -> list[str]:
        """All in one pipelined batch per server; returns the keys not stored."""
        return list(self.call("set_many", dict(items), exp, False))

    async def aset_many(self, items: Sequence[tuple[str, bytes]], exp: int) -> list[str]:
        if not self.native:
            return await _offload(self.set_many, items, exp)
        failed = await self.acall("set_many", {key.encode(): data for key, data in items}, exp)
        return [key.decode() for key in failed]

    def add(self, key: str, data: bytes, exp: int) -> bool:
        return bool(self.call("add", key, data, exp, False))

    async def aadd(self, key: str, data: bytes, exp: int) -> bool:
        if not self.native:
            return await _offload(self.add, key, data, exp)
        return bool(await self.acall("add", key.encode(), data, exp))

    def gets(self, key: str) -> tuple[bytes | None, Any]:
        """Value and CAS token (None, None if missing), for compare-and-swap."""
        result = self.call("gets", key)
        return (None, None) if not result else (result[0], result[1])

    async def agets(self, key: str) -> tuple[bytes | None, Any]:
        if not self.native:
            return await _offload(self.gets, key)
        value, cas = await self.acall("gets", key.encode())
        return value, cas

    def cas(self, key: str, data: bytes, token: Any, exp: int) -> bool:
        """Store only if unchanged since ``gets``; False if changed or gone."""
        return bool(self.call("cas", key, data, token, exp, False))

    async def acas(self, key: str, data: bytes, token: Any, exp: int) -> bool:
        if not self.native:
            return await _offload(self.cas, key, data, token, exp)
        return bool(await self.acall("cas", key.encode(), data, int(token), exp))

    def touch(self, key: str, exp: int) -> bool:
        return bool(self.call("touch", key, exp, False))

    async def atouch(self, key: str, exp: int) -> bool:
        if not self.native:
            return await _offload(self.touch, key, exp)
        return bool(await self.acall("touch", key.encode(), exp))

    def delete(self, key: str) -> bool:
        return bool(self.call("delete", key, False))

    async def adelete(self, key: str) -> bool:
        if not self.native:
            return await _offload(self.delete, key)
        return bool(await self.acall("delete", key.encode()))

    def delete_many(self, keys: Sequence[str]) -> None:
        self.call("delete_many", keys, False)

    async def adelete_many(self, keys: Sequence[str]) -> None:
        if not self.native:
            return await _offload(self.delete_many, keys)
        await self.acall("delete_many", [key.encode() for key in keys])
        return None

    def incr(self, key: str, delta: int) -> int | None:
        """Atomic incr (decr for a negative delta); None if the key is missing."""
        try:
            if delta < 0:
                value = self.call("decr", key, -delta, False)
            else:
                value = self.call("incr", key, delta, False)
        except MemcacheClientError as exc:
            raise incr_error(key, exc) from exc
        if value is False:  # HashClient skipping a failing node
            raise unavailable(self.name, MemcachedUnavailableError("the node is being skipped"))
        return None if value is None else int(value)

    async def aincr(self, key: str, delta: int) -> int | None:
        if not self.native:
            return await _offload(self.incr, key, delta)
        command = "decr" if delta < 0 else "incr"
        try:
            value = await self.acall(command, key.encode(), abs(delta))
        except MemcachedClientReplyError as exc:
            raise incr_error(key, exc) from exc
        return None if value is None else int(value)

    def flush(self) -> None:
        self.call("flush_all", 0, False)

    async def aflush(self) -> None:
        await _offload(self.flush)

    # -- tags and locks (no scripts: get, add and cas) -------------------------------

    def tag_versions(self, keys: Sequence[str], create: bool, exp: int) -> list[int | None]:
        versions = [record_version(data) for data in self.get_many(keys)]
        if create:
            for i, (key, version) in enumerate(zip(keys, versions)):
                if version is None:  # add: a concurrent creator's version wins, then re-read
                    fresh = new_version()
                    added = self.add(key, b"%d" % fresh, exp)
                    versions[i] = fresh if added else record_version(self.get(key))
        return versions

    async def atag_versions(self, keys: Sequence[str], create: bool, exp: int) -> list[int | None]:
        versions = [record_version(data) for data in await self.aget_many(keys)]
        if create:
            for i, (key, version) in enumerate(zip(keys, versions)):
                if version is None:
                    fresh = new_version()
                    added = await self.aadd(key, b"%d" % fresh, exp)
                    versions[i] = fresh if added else record_version(await self.aget(key))
        return versions

    # Release and extend are gets + cas: they change the lock only if it still holds our
    # token and nobody wrote it since. Release stores an already-expired item.

    def release_if(self, key: str, token: bytes) -> bool:
        return self.extend_if(key, token, -1)

    async def arelease_if(self, key: str, token: bytes) -> bool:
        return await self.aextend_if(key, token, -1)

    def extend_if(self, key: str, token: bytes, exp: int) -> bool:
        data, cas = self.gets(key)
        return data == token and self.cas(key, token, cas, exp)

    async def aextend_if(self, key: str, token: bytes, exp: int) -> bool:
        data, cas = await self.agets(key)
        return data == token and await self.acas(key, token, cas, exp)
