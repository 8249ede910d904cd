"""The memcached client under MemcachedCache: pymemcache per thread, emcache per loop.

Every sync command passes :meth:`MemcachedClient.call`, the one place where a failing
server (refused, reset, timed out, ``SERVER_ERROR``, a ``HashClient`` node being skipped)
becomes :class:`~lexigram_cache_django.exceptions.CacheServerError`. A
``MemcacheClientError`` (a command memcached refused as malformed, such as ``incr`` of a
non-number) is not a server failure and raises as it is.

pymemcache runs without a serde: values arrive already encoded by the alias's codec, so
plain ints are ASCII digits that memcached's ``incr``/``decr`` change atomically. One
server uses pymemcache's ``Client``; several use its ``HashClient`` (rendezvous hashing;
a failing node is retried, then skipped until ``dead_timeout``). Clients are kept per
thread and shared by every backend object with the same servers and options.

Async: with one server and emcache installed, the ``a*`` commands use emcache on the
running loop. Several servers (emcache would route keys differently), batch writes
(pymemcache pipelines them; emcache needs a round trip per key) and installs without
emcache run the sync command on a small pool of worker threads.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.core.cache.backends.base import MEMCACHE_MAX_KEY_LENGTH
from pymemcache.client.base import Client, normalize_server_spec
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheClientError, MemcacheError, MemcacheServerError

from ...exceptions import CacheIncrError, CacheServerError
from ...tags import new_version, record_version

_T = TypeVar("_T")


def _load_emcache() -> Any:
    try:
        return importlib.import_module("emcache")
    except ImportError:  # optional: without it the a* commands use worker threads
        return None


emcache: Any = _load_emcache()

#: pymemcache arguments that only HashClient takes (dropped for a single server).
HASH_CLIENT_ONLY = frozenset(
    {
        "hasher",
        "retry_attempts",
        "retry_timeout",
        "dead_timeout",
        "use_pooling",
        "max_pool_size",
        "pool_idle_timeout",
        "lock_generator",
    }
)


class MemcachedUnavailableError(MemcacheError):
    """The server did not do what was asked (HashClient skipping a failing node, NOT_STORED)."""


class MemcachedIncrError(CacheIncrError, MemcacheClientError):
    """incr/decr of a value memcached cannot count: not an integer, negative, or >= 2**64.

    Also a pymemcache ``MemcacheClientError``, which is what Django's PyMemcacheCache raises.
    """


#: Errors of a failing server or connection: fail-open territory.
SERVER_ERRORS: tuple[type[Exception], ...] = (MemcacheError, OSError)
if emcache is not None:
    SERVER_ERRORS += (emcache.CommandError, emcache.ClusterNoAvailableNodes)
#: Of those, the ones where the server did answer (so it is worth asking again).
_ANSWERED = (MemcacheServerError, MemcachedUnavailableError)


def unavailable(server: str, exc: Exception) -> CacheServerError:
    return CacheServerError(
        f"{type(exc).__name__}: {exc}", server=server, answered=isinstance(exc, _ANSWERED)
    )


def incr_error(key: str, exc: Exception) -> MemcachedIncrError:
    return MemcachedIncrError(
        f"cannot incr/decr {key!r}: memcached counts only integers from 0 to 2**64-1 ({exc})"
    )


class FastKeyClient(Client):
    """pymemcache's Client with a cheaper check of keys that cannot be unsafe.

    pymemcache checks every key of every command in Python (encode, split on whitespace,
    length and NUL tests): about 0.5 us a key, a sixth of a 100-key ``get_many``. A
    ``str`` key with no space whose characters are all printable holds no whitespace,
    NUL or control character, so encoding it and checking its length is the whole check.
    Any other key gets pymemcache's own.
    """

    def check_key(self, key: Any, key_prefix: bytes) -> bytes:
        if (
            type(key) is str
            and not key_prefix
            and " " not in key
            and key.isprintable()
            and (self.allow_unicode_keys or key.isascii())
        ):
            data = key.encode()
            if len(data) <= MEMCACHE_MAX_KEY_LENGTH:
                return data
        checked: bytes = super().check_key(key, key_prefix)
        return checked


class BatchHashClient(HashClient):
    """HashClient whose delete_many sends one pipelined batch per server.

    pymemcache's HashClient.delete_many makes one round trip per key.
    """

    client_class = FastKeyClient

    def delete_many(self, keys: Iterable[str], *args: Any, **kwargs: Any) -> bool:
        batches: dict[Any, list[str]] = defaultdict(list)
        for key in keys:
            client = self._get_client(key)
            if client is not None:
                batches[client.server].append(key)
        for server, batch in batches.items():
            client = self.clients[self._make_client_key(server)]
            self._safely_run_func(client, client.delete_many, False, batch, *args, **kwargs)
        return True

    delete_multi = delete_many


#: What :meth:`MemcachedClient.acall` returns for an answer such as NOT_FOUND.
ABSENT: Any = object()

_local = threading.local()
#: Worker threads for what has no native async path; each keeps its own clients.
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lexigram-memcached")
_emcache_clients: dict[tuple[asyncio.AbstractEventLoop, Hashable], Any] = {}


def _offload(fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
    """Run a sync command on a worker thread (it uses that thread's own client)."""
    return asyncio.get_running_loop().run_in_executor(_executor, fn, *args)


async def aclose_emcache_clients() -> None:
    """Close the emcache clients of the running loop (at ASGI shutdown, or a test's end).

    Backend objects share them, so ``aclose()`` leaves them open; without this they are
    simply dropped with their loop.
    """
    loop = asyncio.get_running_loop()
    for key in [k for k in _emcache_clients if k[0] is loop]:
        await _emcache_clients.pop(key).close()


class MemcachedClient:
    """The commands RemoteCache needs, on one memcached server or a hashed set of them."""

    def __init__(
        self, servers: list[str], kwargs: dict[str, Any], pool_size: int, native: bool
    ) -> None:
        self.servers = servers
        self.name = ",".join(servers)
        self.kwargs = kwargs
        self.pool_size = pool_size
        self.native = native  # emcache on the running loop, else worker threads
        self.client_id: Hashable = (tuple(servers), repr(sorted(kwargs.items())), pool_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emcache_client: Any = None

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
            return BatchHashClient(self.servers, **kwargs)
        for name in HASH_CLIENT_ONLY:
            kwargs.pop(name, None)
        return FastKeyClient(normalize_server_spec(self.servers[0]), **kwargs)

    def nodes(self) -> list[tuple[str, Any]]:
        """``(server, pymemcache Client)`` for each node, for per-server stats."""
        client = self.pymemcache()
        if isinstance(client, HashClient):
            return [(str(name), node) for name, node in client.clients.items()]
        return [(self.servers[0], client)]

    # -- the choke point ------------------------------------------------------------

    def call(self, command: str, *args: Any) -> Any:
        """One command through this thread's client: the only place a sync command goes
        out. A malformed-command error raises as it is; a failing server becomes
        CacheServerError."""
        try:
            return getattr(self.pymemcache(), command)(*args)
        except MemcacheClientError:
            raise
        except SERVER_ERRORS as exc:
            raise unavailable(self.name, exc) from exc

    async def _emc(self) -> Any:
        """The emcache client for the running loop (clients are bound to their loop)."""
        client = self._emcache_client
        loop = asyncio.get_running_loop()
        if self._loop is loop and not client.closed:
            return client
        key = (loop, self.client_id)
        client = _emcache_clients.get(key)
        if client is None:
            for stale in [k for k in _emcache_clients if k[0].is_closed()]:
                del _emcache_clients[stale]
            try:
                new = await emcache.create_client(
                    [self._emcache_address()],
                    timeout=self.kwargs["timeout"],
                    connection_timeout=self.kwargs["connect_timeout"],
                    max_connections=self.pool_size,
                )
            except SERVER_ERRORS as exc:
                raise unavailable(self.name, exc) from exc
            client = _emcache_clients.setdefault(key, new)
            if client is not new:
                await new.close()
        self._loop, self._emcache_client = loop, client
        return client

    def _emcache_address(self) -> Any:
        spec = normalize_server_spec(self.servers[0])
        if isinstance(spec, str):
            return emcache.MemcachedUnixSocketPath(spec)
        return emcache.MemcachedHostAddress(spec[0], int(spec[1]))

    async def acall(self, command: str, *args: Any, absent: Any = (), **kwargs: Any) -> Any:
        """One emcache command: the only place a native async command goes out.

        ``absent``: emcache exception classes that are an answer, not a failure (a
        ``NOT_FOUND`` or ``NOT_STORED``), turned into :data:`ABSENT` (emcache's storage
        commands return None on success).
        """
        client = await self._emc()
        try:
            return await getattr(client, command)(*args, **kwargs)
        except absent:
            return ABSENT
        except SERVER_ERRORS as exc:
            raise unavailable(self.name, exc) from exc

    # -- the commands of remote.ServerClient ------------------------------------------

    def get(self, key: str, primary: bool = False) -> bytes | None:
        data: bytes | None = self.call("get", key)
        return data

    async def aget(self, key: str, primary: bool = False) -> bytes | None:
        if not self.native:
            return await _offload(self.get, key)
        item = await self.acall("get", key.encode())
        return None if item is None else item.value

    def get_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]:
        found: dict[str, bytes] = self.call("get_many", keys)
        return list(map(found.get, keys))

    async def aget_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]:
        if not self.native:
            return await _offload(self.get_many, keys)
        items = await self.acall("get_many", [key.encode() for key in keys])
        by_key = {k.decode(): item.value for k, item in items.items()}
        return list(map(by_key.get, keys))

    def set(self, key: str, data: bytes, exp: int, xx: bool = False) -> bool:
        if xx:
            return bool(self.call("replace", key, data, exp, False))
        if not self.call("set", key, data, exp, False):
            raise unavailable(self.name, MemcachedUnavailableError("the value was not stored"))
        return True

    async def aset(self, key: str, data: bytes, exp: int, xx: bool = False) -> bool:
        if not self.native or xx:
            return await _offload(self.set, key, data, exp, xx)
        await self.acall("set", key.encode(), data, exptime=exp)
        return True

    def set_many(self, items: Sequence[tuple[str, bytes]], exp: int) -> list[str]:
        """All in one pipelined batch per server; returns the keys not stored."""
        return list(self.call("set_many", dict(items), exp, False))

    async def aset_many(self, items: Sequence[tuple[str, bytes]], exp: int) -> list[str]:
        # pymemcache pipelines the batch; emcache would make one round trip per key.
        return await _offload(self.set_many, items, exp)

    def add(self, key: str, data: bytes, exp: int) -> bool:
        return bool(self.call("add", key, data, exp, False))

    async def aadd(self, key: str, data: bytes, exp: int) -> bool:
        if not self.native:
            return await _offload(self.add, key, data, exp)
        absent = emcache.NotStoredStorageCommandError
        return await self.acall("add", key.encode(), data, exptime=exp, absent=absent) is not ABSENT

    def gets(self, key: str) -> tuple[bytes | None, Any]:
        """Value and CAS token (None, None if missing), for compare-and-swap."""
        result = self.call("gets", key)
        return (None, None) if not result else (result[0], result[1])

    async def agets(self, key: str) -> tuple[bytes | None, Any]:
        if not self.native:
            return await _offload(self.gets, key)
        item = await self.acall("gets", key.encode())
        return (None, None) if item is None else (item.value, item.cas)

    def cas(self, key: str, data: bytes, token: Any, exp: int) -> bool:
        """Store only if unchanged since ``gets``; False if changed or gone."""
        return bool(self.call("cas", key, data, token, exp, False))

    async def acas(self, key: str, data: bytes, token: Any, exp: int) -> bool:
        if not self.native:
            return await _offload(self.cas, key, data, token, exp)
        absent = emcache.StorageCommandError  # EXISTS (changed) or NOT_FOUND (gone)
        args = (key.encode(), data, int(token))
        return await self.acall("cas", *args, exptime=exp, absent=absent) is not ABSENT

    def touch(self, key: str, exp: int) -> bool:
        return bool(self.call("touch", key, exp, False))

    async def atouch(self, key: str, exp: int) -> bool:
        if not self.native:
            return await _offload(self.touch, key, exp)
        absent = emcache.NotFoundCommandError
        return await self.acall("touch", key.encode(), exp, absent=absent) is not ABSENT

    def delete(self, key: str) -> bool:
        return bool(self.call("delete", key, False))

    async def adelete(self, key: str) -> bool:
        if not self.native:
            return await _offload(self.delete, key)
        absent = emcache.NotFoundCommandError
        return await self.acall("delete", key.encode(), absent=absent) is not ABSENT

    def delete_many(self, keys: Sequence[str]) -> None:
        self.call("delete_many", keys, False)

    async def adelete_many(self, keys: Sequence[str]) -> None:
        await _offload(self.delete_many, keys)

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
        command = "decrement" if delta < 0 else "increment"
        try:
            value = await self.acall(
                command, key.encode(), abs(delta), absent=emcache.NotFoundCommandError
            )
        except ValueError as exc:  # emcache parses the CLIENT_ERROR line as a number
            raise incr_error(key, exc) from exc
        return None if value is ABSENT else int(value)

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
