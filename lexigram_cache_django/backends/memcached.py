"""Memcached backend over pymemcache: a drop-in for Django's ``PyMemcacheCache``.

Values go through the alias's codec and pymemcache runs without a serde, so plain ints are
stored as ASCII digits that memcached's ``incr``/``decr`` change atomically. One server uses
pymemcache's ``Client``; several use its ``HashClient`` (rendezvous hashing; a node that
fails is retried, then marked dead and skipped until ``dead_timeout`` has passed).

Clients are kept per thread and shared by every backend object with the same LOCATION and
options: Django builds a backend object per thread (and under ASGI one per request), and a
connection should outlive them. ``close()`` therefore leaves connections open.

Async: with one server and emcache installed, the ``a*`` methods use emcache on the running
loop (no thread hop). Several servers (emcache would route keys differently from the sync
client), batch writes (pymemcache pipelines them; emcache needs a round trip per key), and
installs without emcache run the sync primitive on a small pool of worker threads.

Memcached cannot list keys, so ``keys``, ``iter_keys`` and ``delete_pattern`` raise
``NotImplementedError``.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from typing import Any, NoReturn, TypeVar

import pymemcache
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    MEMCACHE_MAX_KEY_LENGTH,
    InvalidCacheKey,
    memcache_key_warnings,
)
from pymemcache.client.base import Client, normalize_server_spec
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheClientError, MemcacheError

from ..codec import PLAIN_STR_HEADER, Codec, EntryMeta
from ..compression import Compressor, make_compressor
from ..exceptions import CacheConfigurationError, CacheDecodeError, CacheIncrError
from ..tags import UNKNOWN_TAG_VERSION, TagLike, new_version
from .base import LexigramCache

_T = TypeVar("_T")
Entry = tuple[Any, EntryMeta | None]
_first = itemgetter(0)  # a tag's record key, from its (key, version) pair


def _load_emcache() -> Any:
    try:
        return importlib.import_module("emcache")
    except ImportError:  # optional: without it the a* methods use worker threads
        return None


_emcache: Any = _load_emcache()

#: Memcached reads an expiry above 30 days as an absolute UNIX time (Django's rule).
MAX_RELATIVE_EXPIRY = 60 * 60 * 24 * 30
#: Largest encoded value sent by default: memcached's default item size (1 MiB, ``-I``) less
#: room for the key (<= 250 bytes) and the item header.
DEFAULT_MAX_ITEM_BYTES = 1024 * 1024 - 512
DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_SOCKET_TIMEOUT = 1.0
#: emcache connections per server per event loop.
DEFAULT_POOL_SIZE = 4
#: pymemcache arguments that only HashClient takes (dropped for a single server).
_HASH_CLIENT_ONLY = frozenset(
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


_NO_ENUMERATION = (
    "memcached cannot enumerate keys (it has no KEYS or SCAN command), so MemcachedCache "
    "cannot {what}; use tags (invalidate_tags) or a new key version instead"
)


class MemcachedUnavailableError(MemcacheError):
    """The server did not do what was asked (HashClient skipping a failing node, NOT_STORED)."""


class ValueTooLargeError(MemcacheError):
    """An encoded value is larger than memcached's item size even after compression."""


class MemcachedIncrError(CacheIncrError, MemcacheClientError):
    """incr/decr of a value memcached cannot count: not an integer, negative, or >= 2**64.

    Also a pymemcache ``MemcacheClientError``, which is what Django's PyMemcacheCache raises.
    """


#: Errors of a failing server or connection: fail-open territory (see backend_error).
SERVER_ERRORS: tuple[type[Exception], ...] = (MemcacheError, OSError)
if _emcache is not None:
    SERVER_ERRORS += (_emcache.CommandError, _emcache.ClusterNoAvailableNodes)

_local = threading.local()
#: Worker threads for what has no native async path; each keeps its own clients.
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lexigram-memcached")
_emcache_clients: dict[tuple[asyncio.AbstractEventLoop, Hashable], Any] = {}


def _offload(fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
    """Run a sync primitive on a worker thread (it uses that thread's own client)."""
    return asyncio.get_running_loop().run_in_executor(_executor, fn, *args)


async def aclose_emcache_clients() -> None:
    """Close the emcache clients of the running loop (at ASGI shutdown, or a test's end).

    Backend objects share them, so ``aclose()`` leaves them open; without this they are
    simply dropped with their loop.
    """
    loop = asyncio.get_running_loop()
    for key in [k for k in _emcache_clients if k[0] is loop]:
        await _emcache_clients.pop(key).close()


def _version(data: bytes | None) -> int | None:
    """A tag record's version (stored as ASCII digits), or None if missing or foreign."""
    if data is None:
        return None
    try:
        return int(data)
    except ValueError:
        return None


class _Client(Client):
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


class _HashClient(HashClient):
    """HashClient whose delete_many sends one pipelined batch per server.

    pymemcache's HashClient.delete_many makes one round trip per key.
    """

    client_class = _Client

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


class MemcachedCache(LexigramCache):
    """Django's cache API on memcached, via pymemcache (sync) and emcache (async)."""

    backend_name = "memcached"
    known_options = LexigramCache.known_options | {
        "CONNECT_TIMEOUT",
        "SOCKET_TIMEOUT",
        "NO_DELAY",
        "POOL_SIZE",
        "MAX_ITEM_BYTES",
        "ASYNC_CLIENT",
    }
    #: Django's memcached tests read ``cache._lib.exceptions.MemcacheClientError``.
    _lib = pymemcache

    def __init__(self, server: str | list[str] | tuple[str, ...], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._servers: list[str] = (
            re.split("[;,]", server) if isinstance(server, str) else list(server)
        )
        opts = self._options
        self.max_item_bytes = int(opts.get("MAX_ITEM_BYTES", DEFAULT_MAX_ITEM_BYTES))
        self._client_kwargs = self._make_client_kwargs()
        self._client_id: Hashable = (
            tuple(self._servers),
            repr(sorted(self._client_kwargs.items())),
            opts.get("POOL_SIZE", DEFAULT_POOL_SIZE),
        )
        self._native = self._choose_async_client() == "emcache"
        self._emcache_loop: asyncio.AbstractEventLoop | None = None
        self._emcache_client: Any = None
        self._large_compressor: Compressor | None = None

    def _make_client_kwargs(self) -> dict[str, Any]:
        """pymemcache arguments: our defaults, then OPTIONS' lower-case keys as given."""
        opts = self._options
        kwargs: dict[str, Any] = {
            "connect_timeout": opts.get("CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
            "timeout": opts.get("SOCKET_TIMEOUT", DEFAULT_SOCKET_TIMEOUT),
            "no_delay": bool(opts.get("NO_DELAY", True)),
            "allow_unicode_keys": True,
            "default_noreply": False,
        }
        kwargs.update((k, v) for k, v in opts.items() if k.islower())
        for name in ("serde", "serializer", "deserializer"):
            if name in kwargs:
                raise CacheConfigurationError(
                    f"OPTIONS[{name!r}] is not supported by MemcachedCache: values are encoded "
                    "by the alias's codec; use OPTIONS['SERIALIZER'] instead"
                )
        # Errors must reach us to be counted, logged and, with FAIL_SILENTLY False, raised.
        kwargs["ignore_exc"] = False
        return kwargs

    def _choose_async_client(self) -> str:
        choice = self._options.get("ASYNC_CLIENT")
        if choice is None:
            return "emcache" if _emcache is not None and len(self._servers) == 1 else "thread"
        if choice not in ("emcache", "thread"):
            raise CacheConfigurationError(
                f"OPTIONS['ASYNC_CLIENT'] must be 'emcache' or 'thread', not {choice!r}"
            )
        if choice == "emcache" and _emcache is None:
            raise CacheConfigurationError(
                "OPTIONS['ASYNC_CLIENT'] is 'emcache' but emcache is not installed"
            )
        if choice == "emcache" and len(self._servers) > 1:
            raise CacheConfigurationError(
                "OPTIONS['ASYNC_CLIENT'] 'emcache' needs a single server: with several, emcache "
                "would send keys to other servers than the sync client does"
            )
        return str(choice)

    # -- clients -------------------------------------------------------------------

    @property
    def _cache(self) -> Any:
        """This thread's pymemcache client for this LOCATION and options."""
        try:
            return _local.clients[self._client_id]
        except AttributeError:
            _local.clients = {}
        except KeyError:
            pass
        client = _local.clients[self._client_id] = self._make_client()
        return client

    def _make_client(self) -> Any:
        kwargs = dict(self._client_kwargs)
        if len(self._servers) > 1:
            return _HashClient(self._servers, **kwargs)
        for name in _HASH_CLIENT_ONLY:
            kwargs.pop(name, None)
        return _Client(normalize_server_spec(self._servers[0]), **kwargs)

    def get_client(self) -> Any:
        """This thread's pymemcache client (``Client`` or ``HashClient``), for raw commands."""
        return self._cache

    def _bound_client(self) -> Any:
        """This object's emcache client if it belongs to the running loop and is open."""
        client = self._emcache_client
        if self._emcache_loop is asyncio.get_running_loop() and not client.closed:
            return client
        return None

    async def _native_client(self) -> Any:
        """The emcache client for the running loop (clients are bound to their loop)."""
        loop = asyncio.get_running_loop()
        key = (loop, self._client_id)
        client = _emcache_clients.get(key)
        if client is None:
            for stale in [k for k in _emcache_clients if k[0].is_closed()]:
                del _emcache_clients[stale]
            new = await _emcache.create_client(
                [self._emcache_address()],
                timeout=self._client_kwargs["timeout"],
                connection_timeout=self._client_kwargs["connect_timeout"],
                max_connections=int(self._options.get("POOL_SIZE", DEFAULT_POOL_SIZE)),
            )
            client = _emcache_clients.setdefault(key, new)
            if client is not new:
                await new.close()
        self._emcache_loop, self._emcache_client = loop, client
        return client

    def _emcache_address(self) -> Any:
        spec = normalize_server_spec(self._servers[0])
        if isinstance(spec, str):
            return _emcache.MemcachedUnixSocketPath(spec)
        return _emcache.MemcachedHostAddress(spec[0], int(spec[1]))

    # -- primitives on made keys (raise server errors; features build on these) ----

    def _get_raw(self, key: str) -> bytes | None:
        data: bytes | None = self._cache.get(key)
        return data

    def _get_many_raw(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = self._cache.get_many(keys)
        return found

    def _set_raw(self, key: str, data: bytes, exptime: int) -> None:
        if not self._cache.set(key, data, exptime, noreply=False):
            raise MemcachedUnavailableError("the server did not store the value")

    def _set_many_raw(self, data: Mapping[str, bytes], exptime: int) -> list[str]:
        """Store all in one pipelined batch per server; returns the keys not stored."""
        return list(self._cache.set_many(data, exptime, noreply=False))

    def _add_raw(self, key: str, data: bytes, exptime: int) -> bool:
        """Store only if absent (atomic on the server): what locks are built on."""
        return bool(self._cache.add(key, data, exptime, noreply=False))

    def _touch_raw(self, key: str, exptime: int) -> bool:
        return bool(self._cache.touch(key, exptime, noreply=False))

    def _delete_raw(self, key: str) -> bool:
        return bool(self._cache.delete(key, noreply=False))

    def _delete_many_raw(self, keys: Sequence[str]) -> None:
        self._cache.delete_many(keys, noreply=False)

    def _incr_raw(self, key: str, delta: int) -> int | None:
        """Atomic incr (decr for a negative delta); None if the key is missing."""
        if delta < 0:
            value = self._cache.decr(key, -delta, noreply=False)
        else:
            value = self._cache.incr(key, delta, noreply=False)
        if value is False:  # HashClient skipping a failing node
            raise MemcachedUnavailableError("the server is being skipped after failures")
        return None if value is None else int(value)

    def _gets_raw(self, key: str) -> tuple[bytes | None, Any]:
        """Value and CAS token (None, None if missing), for compare-and-swap."""
        result = self._cache.gets(key)
        return (None, None) if not result else (result[0], result[1])

    def _cas_raw(self, key: str, data: bytes, cas: Any, exptime: int) -> bool:
        """Store only if unchanged since ``gets``; False if changed or gone."""
        return bool(self._cache.cas(key, data, cas, exptime, noreply=False))

    def _flush_raw(self) -> None:
        self._cache.flush_all(noreply=False)

    # -- async twins ---------------------------------------------------------------

    async def _aget_raw(self, key: str) -> bytes | None:
        if not self._native:
            return await _offload(self._get_raw, key)
        client = self._bound_client() or await self._native_client()
        item = await client.get(key.encode())
        return None if item is None else item.value

    async def _aget_many_raw(self, keys: Sequence[str]) -> dict[str, bytes]:
        if not self._native:
            return await _offload(self._get_many_raw, keys)
        by_bytes = {key.encode(): key for key in keys}
        client = self._bound_client() or await self._native_client()
        items = await client.get_many(list(by_bytes))
        return {by_bytes[k]: item.value for k, item in items.items()}

    async def _aset_raw(self, key: str, data: bytes, exptime: int) -> None:
        if not self._native:
            return await _offload(self._set_raw, key, data, exptime)
        client = self._bound_client() or await self._native_client()
        await client.set(key.encode(), data, exptime=exptime)
        return None

    async def _aset_many_raw(self, data: Mapping[str, bytes], exptime: int) -> list[str]:
        # pymemcache pipelines the batch; emcache would make one round trip per key.
        return await _offload(self._set_many_raw, data, exptime)

    async def _aadd_raw(self, key: str, data: bytes, exptime: int) -> bool:
        if not self._native:
            return await _offload(self._add_raw, key, data, exptime)
        client = self._bound_client() or await self._native_client()
        try:
            await client.add(key.encode(), data, exptime=exptime)
        except _emcache.NotStoredStorageCommandError:
            return False
        return True

    async def _atouch_raw(self, key: str, exptime: int) -> bool:
        if not self._native:
            return await _offload(self._touch_raw, key, exptime)
        client = self._bound_client() or await self._native_client()
        try:
            await client.touch(key.encode(), exptime)
        except _emcache.NotFoundCommandError:
            return False
        return True

    async def _adelete_raw(self, key: str) -> bool:
        if not self._native:
            return await _offload(self._delete_raw, key)
        client = self._bound_client() or await self._native_client()
        try:
            await client.delete(key.encode())
        except _emcache.NotFoundCommandError:
            return False
        return True

    async def _adelete_many_raw(self, keys: Sequence[str]) -> None:
        await _offload(self._delete_many_raw, keys)

    async def _aincr_raw(self, key: str, delta: int) -> int | None:
        if not self._native:
            return await _offload(self._incr_raw, key, delta)
        client = self._bound_client() or await self._native_client()
        try:
            if delta < 0:
                value = await client.decrement(key.encode(), -delta)
            else:
                value = await client.increment(key.encode(), delta)
        except _emcache.NotFoundCommandError:
            return None
        except ValueError as exc:  # emcache parses the CLIENT_ERROR line as a number
            raise MemcacheClientError("cannot increment or decrement non-numeric value") from exc
        return int(value)

    async def _agets_raw(self, key: str) -> tuple[bytes | None, Any]:
        if not self._native:
            return await _offload(self._gets_raw, key)
        client = self._bound_client() or await self._native_client()
        item = await client.gets(key.encode())
        return (None, None) if item is None else (item.value, item.cas)

    async def _acas_raw(self, key: str, data: bytes, cas: Any, exptime: int) -> bool:
        if not self._native:
            return await _offload(self._cas_raw, key, data, cas, exptime)
        client = self._bound_client() or await self._native_client()
        try:
            await client.cas(key.encode(), data, int(cas), exptime=exptime)
        except _emcache.StorageCommandError:  # EXISTS (changed) or NOT_FOUND (gone)
            return False
        return True

    # -- keys, timeouts, values --------------------------------------------------------

    def validate_key(self, key: str) -> None:
        """Memcached refuses such keys, so raise (as Django's memcached backends do)."""
        for warning in memcache_key_warnings(key):
            raise InvalidCacheKey(warning)

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> int:
        """Django's memcached rules: None never expires, 0 expires at once, > 30 days absolute."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return 0  # memcached's "never expire"
        if int(timeout) == 0:
            timeout = -1  # a negative expiry makes memcached drop the item immediately
        if timeout > MAX_RELATIVE_EXPIRY:
            timeout += int(time.time())
        return int(timeout)

    def _exptime(self, ttl: float | None) -> int:
        """Memcached expiry for a lifetime in seconds (None: never); rounds up, never to 0."""
        if ttl is None:
            return 0
        return self.get_backend_timeout(math.ceil(ttl) if ttl > 0 else -1)

    def _lock_exptime(self, ttl: float | None) -> int:
        """At least ``ttl``: memcached's clock ticks whole seconds, so an expiry of N seconds
        can come up to a second early; a lock must never end before its timeout."""
        if ttl is None:
            return 0
        return self.get_backend_timeout(math.ceil(ttl) + 1)

    def _entry_exptime(self, ttl: float | None, meta: EntryMeta | None) -> int:
        """An entry whose metadata holds its exact expiry (get_or_set's) gets a second of
        slack on the server, as locks do; readers honour the metadata's expiry, so the
        entry still expires on time, and XFetch can refresh it before it vanishes."""
        if meta is not None and meta.expires:
            return self._lock_exptime(ttl)
        return self._exptime(ttl)

    def _encode(self, value: Any, meta: EntryMeta | None = None) -> bytes:
        data = self.codec.encode(value, meta)
        if len(data) > self.max_item_bytes:
            data = self._compress_to_fit(data)
        return data

    def _compress_to_fit(self, data: bytes) -> bytes:
        """Compress an oversized entry whatever COMPRESS_MIN_BYTES says; raise if still too big.

        The header records the compressor, so any reader decodes it.
        """
        data = Codec.compress_encoded(data, self._compressor_for_large_values())
        if len(data) > self.max_item_bytes:
            raise ValueTooLargeError(
                f"value is {len(data)} bytes after compression, over memcached's item size "
                f"(OPTIONS['MAX_ITEM_BYTES'] = {self.max_item_bytes}; the server's -I must match)"
            )
        return data

    def _compressor_for_large_values(self) -> Compressor:
        comp = self._large_compressor or self.codec.compressor
        if comp is None:
            opts = self._options
            comp = make_compressor(str(opts.get("COMPRESSOR", "zlib")), opts.get("COMPRESS_LEVEL"))
        self._large_compressor = comp
        return comp

    def _decode(self, key: str, data: bytes) -> Entry | None:
        """``(value, meta)``, or None (counted and logged) for an unreadable payload, or one
        past the exact expiry its metadata records."""
        try:
            entry = self.codec.decode_entry(data)
        except CacheDecodeError as exc:
            self.discard_undecodable(key, exc)
            return None
        meta = entry[1]
        if meta is not None and meta.expires and meta.expires <= time.time():
            return None
        return entry

    def _decode_found(
        self, found: Mapping[str, bytes], made: Sequence[str], keys: Sequence[Any]
    ) -> tuple[dict[Any, Any], list[tuple[Any, EntryMeta]]]:
        """Values under the caller's keys, and the tagged ones to check (one loop: hot)."""
        decode = self.codec.decode_entry
        hints = self._tag_hints
        learn = hints.learn
        values: dict[Any, Any] = {}
        tagged: list[tuple[Any, EntryMeta]] = []
        for key, original in zip(made, keys):
            data = found.get(key)
            if data is None:
                continue
            if data[0] == PLAIN_STR_HEADER:  # the commonest value, without a call
                try:
                    values[original] = data[1:].decode()
                    if hints:
                        learn(key, ())
                    continue
                except UnicodeDecodeError:
                    pass  # lone surrogates (decode_entry allows them) or invalid: reported
            try:
                value, meta = decode(data)
            except CacheDecodeError as exc:
                self.discard_undecodable(key, exc)
                continue
            if meta is not None and meta.expires and meta.expires <= time.time():
                continue  # past the exact expiry its metadata records
            values[original] = value
            if meta is not None and meta.tags:
                tagged.append((original, meta))
                learn(key, tuple(name for name, _ in meta.tags))
            elif hints:
                learn(key, ())
        return values, tagged

    def _discard(self, key: str) -> None:
        """After a failed set (Django's rule): never leave the old value behind."""
        try:
            self._delete_raw(key)
        except SERVER_ERRORS:
            pass

    def _incr_error(self, key: str, exc: Exception) -> MemcachedIncrError:
        return MemcachedIncrError(
            f"cannot incr/decr {key!r}: memcached counts only integers from 0 to 2**64-1 ({exc})"
        )

    # -- tags: an entry's recorded versions are checked against the tag records -------

    @staticmethod
    def _is_stale(meta: EntryMeta, records: Mapping[str, bytes]) -> bool:
        """Whether a tag moved on (or its record is gone) since the entry was written."""
        return any(_version(records.get(name)) != version for name, version in meta.tags)

    def _drop_stale(
        self,
        values: dict[Any, Any],
        tagged: Iterable[tuple[Any, EntryMeta]],
        records: Mapping[str, bytes],
    ) -> None:
        for original, meta in tagged:
            if self._is_stale(meta, records):
                del values[original]
                self._stats.stale_by_tag += 1

    def _read_hinted(self, keys: list[str]) -> tuple[dict[str, bytes], set[str]]:
        """``keys`` and their hinted tag records in one ``get_many``; and which were hinted."""
        hinted = self._tag_hints.union(keys)
        if not hinted:
            if len(keys) == 1:
                data = self._get_raw(keys[0])
                return ({} if data is None else {keys[0]: data}), set()
            return self._get_many_raw(keys), set()
        return self._get_many_raw(keys + hinted), set(hinted)

    async def _aread_hinted(self, keys: list[str]) -> tuple[dict[str, bytes], set[str]]:
        hinted = self._tag_hints.union(keys)
        if not hinted:
            if len(keys) == 1:
                data = await self._aget_raw(keys[0])
                return ({} if data is None else {keys[0]: data}), set()
            return await self._aget_many_raw(keys), set()
        return await self._aget_many_raw(keys + hinted), set(hinted)

    @staticmethod
    def _unfetched(tagged: Iterable[tuple[Any, EntryMeta]], hinted: set[str]) -> list[str]:
        """Tag records the entries need that were not fetched with them."""
        return [
            name
            for name in dict.fromkeys(n for _, meta in tagged for n, _ in meta.tags)
            if name not in hinted
        ]

    def _count(self, requested: int, found: int) -> None:
        self._stats.hits += found
        self._stats.misses += requested - found

    def _versions_from(
        self, keys: Sequence[str], records: Mapping[str, bytes]
    ) -> tuple[list[int | None], dict[str, int]]:
        """Versions found, and fresh ones to add-if-absent for the missing records."""
        versions = [_version(records.get(key)) for key in keys]
        fresh = {key: new_version() for key, v in zip(keys, versions) if v is None}
        return versions, fresh

    def _meta_for_tags(self, tags: Iterable[TagLike] | TagLike | None) -> EntryMeta | None:
        keys = self.tag_keys(tags)
        return self.tagged_meta(keys, self._tag_versions_raw(keys)) if keys else None

    async def _ameta_for_tags(self, tags: Iterable[TagLike] | TagLike | None) -> EntryMeta | None:
        keys = self.tag_keys(tags)
        return self.tagged_meta(keys, await self._atag_versions_raw(keys)) if keys else None

    def _tag_versions_raw(self, keys: Sequence[str], create: bool = True) -> list[int | None]:
        versions, fresh = self._versions_from(keys, self._get_many_raw(keys))
        if create and fresh:
            exptime = self._exptime(self.tag_timeout)
            for i, key in enumerate(keys):
                if key in fresh:  # add: a concurrent creator's version wins, then re-read
                    added = self._add_raw(key, b"%d" % fresh[key], exptime)
                    versions[i] = fresh[key] if added else _version(self._get_raw(key))
        return versions

    async def _atag_versions_raw(
        self, keys: Sequence[str], create: bool = True
    ) -> list[int | None]:
        versions, fresh = self._versions_from(keys, await self._aget_many_raw(keys))
        if create and fresh:
            exptime = self._exptime(self.tag_timeout)
            for i, key in enumerate(keys):
                if key in fresh:
                    added = await self._aadd_raw(key, b"%d" % fresh[key], exptime)
                    versions[i] = fresh[key] if added else _version(await self._aget_raw(key))
        return versions

    def _add_unless_live(self, key: str, data: bytes, exptime: int) -> bool:
        """``add`` that also replaces an entry its tags made stale (it reads as absent)."""
        if self._add_raw(key, data, exptime):
            return True
        old, cas = self._gets_raw(key)
        if old is None:
            return self._add_raw(key, data, exptime)  # expired meanwhile
        meta = self.codec.read_meta(old)
        if meta is None or not meta.tags:
            return False
        records = self._get_many_raw([name for name, _ in meta.tags])
        return self._is_stale(meta, records) and self._cas_raw(key, data, cas, exptime)

    async def _aadd_unless_live(self, key: str, data: bytes, exptime: int) -> bool:
        if await self._aadd_raw(key, data, exptime):
            return True
        old, cas = await self._agets_raw(key)
        if old is None:
            return await self._aadd_raw(key, data, exptime)
        meta = self.codec.read_meta(old)
        if meta is None or not meta.tags:
            return False
        records = await self._aget_many_raw([name for name, _ in meta.tags])
        return self._is_stale(meta, records) and await self._acas_raw(key, data, cas, exptime)

    # -- Django's cache API ----------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        entry = self._get_entry(self.make_and_validate_key(key, version))
        return default if entry is None else entry[0]

    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            meta = self._meta_for_tags(tags) if tags is not None else None
            self._learn_tags((key,), meta)
            self._set_raw(key, self._encode(value, meta), self.get_backend_timeout(timeout))
        except SERVER_ERRORS as exc:
            if not isinstance(exc, OSError):  # the server answered: drop the old value
                self._discard(key)
            return self.backend_error("set", exc, False)
        self._stats.sets += 1
        return None

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            meta = self._meta_for_tags(tags) if tags is not None else None
            self._learn_tags((key,), meta)
            added = self._add_unless_live(
                key, self._encode(value, meta), self.get_backend_timeout(timeout)
            )
        except SERVER_ERRORS as exc:
            return bool(self.backend_error("add", exc, False))
        if added:
            self._stats.sets += 1
        return added

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            return self._touch_raw(key, self.get_backend_timeout(timeout))
        except SERVER_ERRORS as exc:
            return bool(self.backend_error("touch", exc, False))

    def delete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            deleted = self._delete_raw(key)
        except SERVER_ERRORS as exc:
            return bool(self.backend_error("delete", exc, False))
        if deleted:
            self._stats.deletes += 1
        return deleted

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._get_entry(self.make_and_validate_key(key, version)) is not None

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            value = self._incr_raw(key, delta)
        except MemcacheClientError as exc:
            raise self._incr_error(key, exc) from exc
        except SERVER_ERRORS as exc:
            return self.backend_error("incr", exc, None)
        if value is None:
            raise ValueError(f"Key '{key}' not found")
        return value

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self.incr(key, -delta, version)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        if not keys:
            return {}
        made = self.make_key_list(keys, version)
        try:
            found, hinted = self._read_hinted(made)
            values, tagged = self._decode_found(found, made, keys)
            if tagged:
                missing = self._unfetched(tagged, hinted)
                if missing:
                    found.update(self._get_many_raw(missing))
                self._drop_stale(values, tagged, found)
        except SERVER_ERRORS as exc:
            return dict(self.backend_error("get_many", exc, {}))
        self.count_batch(made, len(values))
        return values

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> list[Any]:
        try:
            meta = self._meta_for_tags(tags) if tags is not None else None
            made, encoded, too_large = self._encode_many(data, version, meta)
            self._learn_tags(encoded, meta)
            failed = self._set_many_raw(encoded, self.get_backend_timeout(timeout))
        except SERVER_ERRORS as exc:
            return list(self.backend_error("set_many", exc, list(data)))
        return self._finish_set_many(made, data, encoded, failed, too_large)

    def _encode_many(
        self, data: Mapping[Any, Any], version: int | None, meta: EntryMeta | None
    ) -> tuple[list[str], dict[str, bytes], dict[str, ValueTooLargeError]]:
        """Made keys (in ``data``'s order), payloads, and the values too large to store."""
        made = self.make_key_list(list(data), version)
        payloads = self.codec.encode_many(list(data.values()), meta)
        too_large: dict[str, ValueTooLargeError] = {}
        limit = self.max_item_bytes
        if payloads and max(map(len, payloads)) > limit:
            for i, payload in enumerate(payloads):
                if len(payload) > limit:
                    try:
                        payloads[i] = self._compress_to_fit(payload)
                    except ValueTooLargeError as exc:
                        too_large[made[i]] = exc
        encoded = dict(zip(made, payloads))
        for key in too_large:
            del encoded[key]
        return made, encoded, too_large

    def _finish_set_many(
        self,
        made: list[str],
        data: Mapping[Any, Any],
        encoded: dict[str, bytes],
        failed: list[str],
        too_large: dict[str, ValueTooLargeError],
    ) -> list[Any]:
        """Count, then report oversized values (their old entries removed) as failed keys."""
        self._stats.sets += len(encoded) - len(failed)
        if too_large:
            for key in too_large:
                self._discard(key)
            failed = failed + list(too_large)
            self.backend_error("set_many", next(iter(too_large.values())), None)
        if not failed:
            return []
        owners = dict(zip(made, data))
        return [owners[key] for key in failed]

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self.make_and_validate_key(key, version) for key in keys]
        try:
            if made:
                self._delete_many_raw(made)
        except SERVER_ERRORS as exc:
            self.backend_error("delete_many", exc, None)

    def clear(self) -> None:
        try:
            self._flush_raw()
        except SERVER_ERRORS as exc:
            self.backend_error("clear", exc, None)

    def close(self, **kwargs: Any) -> None:
        """Keep connections: they are per thread and shared by this alias's backend objects."""

    # -- async: emcache on the running loop, or a worker thread --------------------

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        entry = await self._aget_entry(self.make_and_validate_key(key, version))
        return default if entry is None else entry[0]

    async def aset(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            meta = await self._ameta_for_tags(tags) if tags is not None else None
            self._learn_tags((key,), meta)
            await self._aset_raw(key, self._encode(value, meta), self.get_backend_timeout(timeout))
        except SERVER_ERRORS as exc:
            if not isinstance(exc, OSError):  # the server answered: drop the old value
                try:
                    await self._adelete_raw(key)
                except SERVER_ERRORS:
                    pass
            return self.backend_error("set", exc, False)
        self._stats.sets += 1
        return None

    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            meta = await self._ameta_for_tags(tags) if tags is not None else None
            self._learn_tags((key,), meta)
            added = await self._aadd_unless_live(
                key, self._encode(value, meta), self.get_backend_timeout(timeout)
            )
        except SERVER_ERRORS as exc:
            return bool(self.backend_error("add", exc, False))
        if added:
            self._stats.sets += 1
        return added

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            return await self._atouch_raw(key, self.get_backend_timeout(timeout))
        except SERVER_ERRORS as exc:
            return bool(self.backend_error("touch", exc, False))

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            deleted = await self._adelete_raw(key)
        except SERVER_ERRORS as exc:
            return bool(self.backend_error("delete", exc, False))
        if deleted:
            self._stats.deletes += 1
        return deleted

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await self._aget_entry(self.make_and_validate_key(key, version)) is not None

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            value = await self._aincr_raw(key, delta)
        except MemcacheClientError as exc:
            raise self._incr_error(key, exc) from exc
        except SERVER_ERRORS as exc:
            return self.backend_error("incr", exc, None)
        if value is None:
            raise ValueError(f"Key '{key}' not found")
        return value

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return await self.aincr(key, -delta, version)

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        if not keys:
            return {}
        made = self.make_key_list(keys, version)
        try:
            found, hinted = await self._aread_hinted(made)
            values, tagged = self._decode_found(found, made, keys)
            if tagged:
                missing = self._unfetched(tagged, hinted)
                if missing:
                    found.update(await self._aget_many_raw(missing))
                self._drop_stale(values, tagged, found)
        except SERVER_ERRORS as exc:
            return dict(self.backend_error("get_many", exc, {}))
        self.count_batch(made, len(values))
        return values

    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> list[Any]:
        try:
            meta = await self._ameta_for_tags(tags) if tags is not None else None
            made, encoded, too_large = self._encode_many(data, version, meta)
            self._learn_tags(encoded, meta)
            failed = await self._aset_many_raw(encoded, self.get_backend_timeout(timeout))
        except SERVER_ERRORS as exc:
            return list(self.backend_error("set_many", exc, list(data)))
        if too_large:  # _finish_set_many deletes their old entries: keep that off the loop
            return await _offload(self._finish_set_many, made, data, encoded, failed, too_large)
        return self._finish_set_many(made, data, encoded, failed, too_large)

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self.make_and_validate_key(key, version) for key in keys]
        try:
            if made:
                await self._adelete_many_raw(made)
        except SERVER_ERRORS as exc:
            self.backend_error("delete_many", exc, None)

    async def aclear(self) -> None:
        await _offload(self.clear)

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to close (see close)."""

    # -- primitives for stampede protection, locks and tags ----------------------------

    def _get_entry(self, key: str) -> Entry | None:
        try:
            hint = self._tag_hints.get(key)
            if hint:  # the entry and its tag records in one get_many
                found = self._get_many_raw([key, *hint])
            else:
                data = self._get_raw(key)
                found = {} if data is None else {key: data}
            entry, missing = self._entry_in(key, hint, found)
            if missing:
                found = {**found, **self._get_many_raw(missing)}
            entry = self._unless_stale(entry, found)
        except SERVER_ERRORS as exc:
            return self.backend_error("get", exc, None)  # type: ignore[no-any-return]
        self._count(1, entry is not None)
        return entry

    async def _aget_entry(self, key: str) -> Entry | None:
        try:
            hint = self._tag_hints.get(key)
            if hint:
                found = await self._aget_many_raw([key, *hint])
            else:
                data = await self._aget_raw(key)
                found = {} if data is None else {key: data}
            entry, missing = self._entry_in(key, hint, found)
            if missing:
                found = {**found, **await self._aget_many_raw(missing)}
            entry = self._unless_stale(entry, found)
        except SERVER_ERRORS as exc:
            return self.backend_error("get", exc, None)  # type: ignore[no-any-return]
        self._count(1, entry is not None)
        return entry

    def _entry_in(
        self, key: str, hint: tuple[str, ...], found: Mapping[str, bytes]
    ) -> tuple[Entry | None, list[str]]:
        """The live entry under ``key`` in ``found``, and the tag records it needs that the
        read (its key's ``hint``) did not fetch. Keeps the hint up to date."""
        data = found.get(key)
        entry = None if data is None else self._decode(key, data)
        if entry is None:
            return None, []
        meta = entry[1]
        if meta is None or not meta.tags:
            if hint:
                self._tag_hints.learn(key, ())
            return entry, []
        names = tuple(map(_first, meta.tags))
        if names == hint:  # the common case: everything needed came with the value
            return entry, []
        self._tag_hints.learn(key, names)
        return entry, [name for name in names if name not in hint]

    def _unless_stale(self, entry: Entry | None, records: Mapping[str, bytes]) -> Entry | None:
        meta = None if entry is None else entry[1]
        if meta is not None and meta.tags and self._is_stale(meta, records):
            self._stats.stale_by_tag += 1
            return None
        return entry

    def _set_entry(self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None) -> None:
        self._learn_tags((key,), meta)
        try:
            self._set_raw(key, self._encode(value, meta), self._entry_exptime(ttl, meta))
        except SERVER_ERRORS as exc:
            self.backend_error("set", exc)
            return
        self._stats.sets += 1

    async def _aset_entry(
        self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None
    ) -> None:
        self._learn_tags((key,), meta)
        try:
            await self._aset_raw(key, self._encode(value, meta), self._entry_exptime(ttl, meta))
        except SERVER_ERRORS as exc:
            self.backend_error("set", exc)
            return
        self._stats.sets += 1

    def _lock_add(self, key: str, token: str, ttl: float | None) -> bool:
        try:
            return self._add_raw(key, token.encode(), self._lock_exptime(ttl))
        except SERVER_ERRORS as exc:
            return bool(self.backend_error("lock", exc, False))

    async def _alock_add(self, key: str, token: str, ttl: float | None) -> bool:
        try:
            return await self._aadd_raw(key, token.encode(), self._lock_exptime(ttl))
        except SERVER_ERRORS as exc:
            return bool(self.backend_error("lock", exc, False))

    # Release and extend are gets + cas: they change the lock only if it still holds our
    # token and nobody wrote it since. Release stores an already-expired item.

    def _lock_release(self, key: str, token: str) -> bool:
        return self._lock_swap(key, token, -1, "lock release")

    def _lock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        return self._lock_swap(key, token, self._lock_exptime(ttl), "lock extend")

    def _lock_swap(self, key: str, token: str, exptime: int, operation: str) -> bool:
        try:
            data, cas = self._gets_raw(key)
            owned = data == token.encode()
            return owned and self._cas_raw(key, token.encode(), cas, exptime)
        except SERVER_ERRORS as exc:
            return bool(self.backend_error(operation, exc, False))

    async def _alock_release(self, key: str, token: str) -> bool:
        return await self._alock_swap(key, token, -1, "lock release")

    async def _alock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        return await self._alock_swap(key, token, self._lock_exptime(ttl), "lock extend")

    async def _alock_swap(self, key: str, token: str, exptime: int, operation: str) -> bool:
        try:
            data, cas = await self._agets_raw(key)
            owned = data == token.encode()
            return owned and await self._acas_raw(key, token.encode(), cas, exptime)
        except SERVER_ERRORS as exc:
            return bool(self.backend_error(operation, exc, False))

    def _lock_owner(self, key: str) -> str | None:
        try:
            data = self._get_raw(key)
        except SERVER_ERRORS as exc:
            return self.backend_error("lock owner", exc, None)  # type: ignore[no-any-return]
        return None if data is None else data.decode(errors="replace")

    async def _alock_owner(self, key: str) -> str | None:
        try:
            data = await self._aget_raw(key)
        except SERVER_ERRORS as exc:
            return self.backend_error("lock owner", exc, None)  # type: ignore[no-any-return]
        return None if data is None else data.decode(errors="replace")

    def _tag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        try:
            return self._tag_versions_raw(keys, create)
        except SERVER_ERRORS as exc:
            failed = [UNKNOWN_TAG_VERSION if create else None] * len(keys)
            return list(self.backend_error("tag versions", exc, failed))

    async def _atag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        try:
            return await self._atag_versions_raw(keys, create)
        except SERVER_ERRORS as exc:
            failed = [UNKNOWN_TAG_VERSION if create else None] * len(keys)
            return list(self.backend_error("tag versions", exc, failed))

    def _tags_invalidate(self, keys: Sequence[str]) -> None:
        records = {key: b"%d" % new_version() for key in keys}
        try:
            self._set_many_raw(records, self._exptime(self.tag_timeout))
        except SERVER_ERRORS as exc:
            self.backend_error("invalidate tags", exc)

    async def _atags_invalidate(self, keys: Sequence[str]) -> None:
        records = {key: b"%d" % new_version() for key in keys}
        try:
            await self._aset_many_raw(records, self._exptime(self.tag_timeout))
        except SERVER_ERRORS as exc:
            self.backend_error("invalidate tags", exc)

    # -- what memcached cannot do ----------------------------------------------------

    def keys(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(_NO_ENUMERATION.format(what="list keys"))

    def iter_keys(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(_NO_ENUMERATION.format(what="iterate over keys"))

    def delete_pattern(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(_NO_ENUMERATION.format(what="delete keys by pattern"))

    # -- metrics ---------------------------------------------------------------------

    def store_stats(self) -> dict[str, Any]:
        """Per-server figures from memcached's ``stats``; a server that is down is reported."""
        client = self._cache
        if isinstance(client, HashClient):
            nodes = list(client.clients.items())
        else:
            nodes = [(self._servers[0], client)]
        servers: dict[str, Any] = {}
        entries = 0
        for name, node in nodes:
            try:
                raw = node.stats()
            except Exception as exc:  # a stats page must not fail because a server is down
                servers[str(name)] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            figures = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in raw.items()}
            servers[str(name)] = {field: figures.get(field) for field in _STAT_FIELDS}
            entries += int(figures.get("curr_items") or 0)
        return {"entries": entries, "servers": servers}


_STAT_FIELDS = (
    "version",
    "uptime",
    "curr_items",
    "bytes",
    "limit_maxbytes",
    "get_hits",
    "get_misses",
    "evictions",
    "curr_connections",
)
