"""MemcachedCache: Django's cache API on memcached, a drop-in for ``PyMemcacheCache``.

Django's API, tags, locks and the fail-open policy come from
:class:`~..remote.RemoteCache`; this module holds only memcached's own rules: Django's
memcached timeouts (0 expires at once, over 30 days is an absolute time), the key rules
memcached enforces, values compressed to fit its item size, ``clear()`` as ``flush_all``,
and per-server figures from ``stats``. Memcached cannot list keys, so ``keys``,
``iter_keys`` and ``delete_pattern`` raise ``NotImplementedError``.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, NoReturn

import pymemcache
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    InvalidCacheKey,
    memcache_key_warnings,
)

from ... import conf
from ...codec import Codec, EntryMeta
from ...compression import Compressor, make_compressor
from ...exceptions import CacheConfigurationError, CacheServerError
from ..remote import RemoteCache
from .client import MemcachedClient

#: Memcached reads an expiry above 30 days as an absolute UNIX time (Django's rule).
MAX_RELATIVE_EXPIRY = 60 * 60 * 24 * 30
#: Largest encoded value sent by default: memcached's default item size (1 MiB, ``-I``) less
#: room for the key (<= 250 bytes) and the item header.
DEFAULT_MAX_ITEM_BYTES: int = conf.value({}, "MAX_ITEM_BYTES", "memcached")
DEFAULT_CONNECT_TIMEOUT: float = conf.value({}, "CONNECT_TIMEOUT", "memcached")
DEFAULT_SOCKET_TIMEOUT: float = conf.value({}, "SOCKET_TIMEOUT", "memcached")
#: asyncio connections per server per event loop.
DEFAULT_POOL_SIZE: int = conf.value({}, "POOL_SIZE", "memcached")

_NO_ENUMERATION = (
    "memcached cannot enumerate keys (it has no KEYS or SCAN command), so MemcachedCache "
    "cannot {what}; use tags (invalidate_tags) or a new key version instead"
)


class ValueTooLargeError(CacheServerError):
    """An encoded value is larger than memcached's item size even after compression."""

    def __init__(self, message: str) -> None:
        super().__init__(message, answered=True)  # as memcached would: SERVER_ERROR


def client_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """pymemcache arguments: our defaults, then OPTIONS' lower-case keys as given."""
    kwargs: dict[str, Any] = {
        "connect_timeout": conf.value(opts, "CONNECT_TIMEOUT", "memcached"),
        "timeout": conf.value(opts, "SOCKET_TIMEOUT", "memcached"),
        "no_delay": conf.value(opts, "NO_DELAY", "memcached"),
        "allow_unicode_keys": True,
        "default_noreply": False,
    }
    kwargs.update((k, v) for k, v in opts.items() if k.islower())
    for name, hint in conf.REFUSED_CLIENT_OPTIONS["memcached"].items():
        if name in kwargs:
            raise CacheConfigurationError(f"MemcachedCache OPTIONS[{name!r}]: {hint}")
    # Errors must reach us to be counted, logged and, with FAIL_SILENTLY False, raised.
    kwargs["ignore_exc"] = False
    return kwargs


def choose_async_client(choice: Any, servers: list[str]) -> str:
    """OPTIONS["ASYNC_CLIENT"]: our asyncio client (one host:port server) or worker threads."""
    single_tcp = len(servers) == 1 and not servers[0].startswith(("unix:", "/"))
    if choice is None:
        return "asyncio" if single_tcp else "thread"
    if choice == "asyncio" and not single_tcp:
        raise CacheConfigurationError(
            "OPTIONS['ASYNC_CLIENT'] 'asyncio' needs a single host:port server: with several, "
            "it would send keys to other servers than the sync client's hashing does"
        )
    return str(choice)


class MemcachedCache(RemoteCache):
    """Django's cache API on memcached, via pymemcache (sync) and our asyncio client."""

    backend_name = "memcached"
    #: Django's memcached tests read ``cache._lib.exceptions.MemcacheClientError``.
    _lib = pymemcache

    def __init__(self, server: str | list[str] | tuple[str, ...], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._servers: list[str] = (
            re.split("[;,]", server) if isinstance(server, str) else list(server)
        )
        opts = self._options
        self.max_item_bytes: int = self.option("MAX_ITEM_BYTES")
        native = choose_async_client(self.option("ASYNC_CLIENT"), self._servers) == "asyncio"
        pool_size: int = self.option("POOL_SIZE")
        self._client: MemcachedClient = MemcachedClient(
            self._servers, client_kwargs(opts), pool_size, native, self.circuit_options()
        )
        self._large_compressor: Compressor | None = None

    def get_client(self) -> Any:
        """This thread's pymemcache client (``Client`` or ``HashClient``), for raw commands."""
        return self._client.pymemcache()

    def close(self, **kwargs: Any) -> None:
        """Keep connections: they are per thread and shared by this alias's backend objects."""

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to close (see close)."""

    # -- keys and timeouts: memcached's rules ------------------------------------------

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

    def _expiry(self, timeout: Any) -> int:
        return self.get_backend_timeout(timeout)

    def _seconds_expiry(self, ttl: float | None) -> int:
        """Memcached expiry for a lifetime in seconds (None: never); rounds up, never to 0."""
        if ttl is None:
            return 0
        return self.get_backend_timeout(math.ceil(ttl) if ttl > 0 else -1)

    def _lock_expiry(self, ttl: float | None) -> int:
        """At least ``ttl``: memcached's clock ticks whole seconds, so an expiry of N seconds
        can come up to a second early; a lock must never end before its timeout."""
        if ttl is None:
            return 0
        return self.get_backend_timeout(math.ceil(ttl) + 1)

    def _entry_expiry(self, ttl: float | None, meta: EntryMeta | None) -> int:
        """An entry whose metadata holds its exact expiry (get_or_set's) gets a second of
        slack on the server, as locks do; readers honour the metadata's expiry, so the
        entry still expires on time, and XFetch can refresh it before it vanishes."""
        if meta is not None and meta.expires:
            return self._lock_expiry(ttl)
        return self._seconds_expiry(ttl)

    def _clear_server(self) -> None:
        self._client.flush()

    async def _aclear_server(self) -> None:
        await self._client.aflush()

    # -- values that must fit an item ----------------------------------------------------

    def _encode(self, value: Any, meta: EntryMeta | None) -> bytes:
        data = self.codec.encode(value, meta)
        if len(data) > self.max_item_bytes:
            data = self._compress_to_fit(data)
        return data

    def _encode_batch(
        self, made: list[str], values: list[Any], meta: EntryMeta | None
    ) -> tuple[list[tuple[str, bytes]], list[str]]:
        payloads = self.codec.encode_many(values, meta)
        limit = self.max_item_bytes
        if not payloads or max(map(len, payloads)) <= limit:
            return list(zip(made, payloads)), []
        items: list[tuple[str, bytes]] = []
        rejected: list[str] = []
        for key, payload in zip(made, payloads):
            try:
                items.append(
                    (key, self._compress_to_fit(payload) if len(payload) > limit else payload)
                )
            except ValueTooLargeError as exc:
                rejected.append(key)
                self._failed("set_many", exc, None)
        return items, rejected

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
        servers: dict[str, Any] = {}
        entries = 0
        for name, node in self._client.nodes():
            try:
                raw = node.stats()
            except Exception as exc:  # a stats page must not fail because a server is down
                servers[name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            figures = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in raw.items()}
            servers[name] = {field: figures.get(field) for field in _STAT_FIELDS}
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
