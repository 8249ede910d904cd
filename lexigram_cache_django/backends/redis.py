"""Redis backend: Django's cache API plus django-redis's extensions, sync and native async.

A drop-in for ``django.core.cache.backends.redis.RedisCache`` (same ``LOCATION`` forms: a
URL, or a list or ``,``/``;``-separated string of URLs, primary first and read replicas
after) on redis-py, with hiredis when installed.

Why it looks the way it does:

* **One round trip per call, and nothing else on the hot path.** Commands go straight to
  a pooled connection (``send_command`` + ``read_response``) instead of through
  ``redis.Redis``'s per-command retry and observability layers, which cost more than our
  whole key/codec/counter overhead, and the pools are our own lean ones
  (:mod:`.redis_pools`), not redis-py's. ``get_many`` is one ``MGET``, ``set_many`` one
  pipelined write of ``SET ... PX`` commands, ``delete_many`` one ``DEL``.
* **Native async.** The ``a*`` methods talk to Redis through ``redis.asyncio`` pools, one
  per running event loop (connections cannot cross loops), with no ``sync_to_async``
  thread hop.
* **Fail open.** A server that cannot answer (refused, timed out, loading, read-only,
  out of memory) goes through :meth:`~.base.LexigramCache.backend_error`: logged,
  counted, and the call returns its default (or raises ``CacheBackendError`` with the
  password masked when ``FAIL_SILENTLY`` is False). A bad command is a bug and raises.
  Timeouts are short by default so a dead server cannot hold a request for long.
* **Small primitives on final keys** (``_get_raw``, ``_set_raw``, ``_add_raw``, their
  batch forms and async twins) raise redis-py errors as they are; locks, stampede
  protection and tags build on them.
* **Tags cost nothing until used.** An untagged entry is read with one ``GET``; an entry
  whose metadata names tags costs one more ``MGET`` of the tag records (on the primary,
  so an invalidation is never missed because a replica lags).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import redis
import redis.asyncio
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from ..codec import PLAIN_STR_HEADER, EntryMeta
from ..exceptions import CacheConfigurationError, CacheDecodeError, CacheIncrError
from ..tags import UNKNOWN_TAG_VERSION, TagLike, new_version
from .base import LexigramCache, mask_location
from .redis_pools import AsyncPool, SyncPool

#: Connect fast or fail: on loopback or a LAN a healthy server accepts in well under a
#: millisecond, so 0.5 s only ever expires for a dead or unreachable host.
DEFAULT_CONNECT_TIMEOUT = 0.5
#: Longest wait for a reply. Cache commands take microseconds; 1 s bounds what a stalled
#: server (swapping, a slow Lua script, a long fork) can add to a request.
DEFAULT_SOCKET_TIMEOUT = 1.0
#: Connections per server per process (per event loop for the async pools).
DEFAULT_MAX_CONNECTIONS = 100
#: Keys per SCAN step and per UNLINK batch (clear, delete_pattern, keys).
SCAN_COUNT = 1000

_SCHEMES = ("redis", "rediss", "unix")
#: Options Django's RedisCache takes that mean something else (or nothing) here.
_UNSUPPORTED = {
    "serializer": "use SERIALIZER (a lexigram serializer name or dotted path)",
    "pool_class": "this backend manages its own pools; pass connection options instead",
    "cache_config": "redis-py's client-side caching lives in redis-py's pools, which this "
    "backend's commands do not use; put a MemoryCache in front (two aliases) instead",
    "cache": "redis-py's client-side caching is not supported (see cache_config)",
    "cache_factory": "redis-py's client-side caching is not supported (see cache_config)",
}
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

Entry = tuple[Any, EntryMeta | None]


class RedisIncrError(CacheIncrError, ResponseError):
    """``incr``/``decr`` of a value Redis cannot increment.

    A :class:`~lexigram_cache_django.exceptions.CacheIncrError` (a ``TypeError``, as on
    Django's in-memory backends) and a ``redis.ResponseError`` (what Django's RedisCache
    raises), so code written for either keeps working.
    """


class _Script(NamedTuple):
    source: str
    sha: str


def _script(source: str) -> _Script:
    return _Script(source, hashlib.sha1(source.encode()).hexdigest())


#: INCRBY only if the key exists, in one atomic step (Django: a missing key is ValueError).
_INCR = _script(
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "return redis.call('INCRBY', KEYS[1], ARGV[1]) end return false"
)
#: 0 if absent, 1 if present without metadata, else the payload (its tags need a check).
#: Reads only the header byte server-side: bit 7 marks an encoded entry, bit 1 metadata.
_HAS_KEY = _script(
    "local v = redis.call('GET', KEYS[1]) if not v then return 0 end "
    "local h = string.byte(v, 1) or 0 "
    "if h >= 128 and bit.band(h, 2) == 2 then return v end return 1"
)
#: Replace a key only if it still holds the payload we read (ARGV[3]: '' persist, '0' drop).
_REPLACE = _script(
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "if ARGV[3] == '0' then redis.call('DEL', KEYS[1]) "
    "elseif ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) "
    "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return 1"
)
#: Tag records' versions, creating the missing ones (ARGV[1]: PX, ARGV[i + 1]: fresh one).
_TAG_VERSIONS = _script(
    "local out = {} for i, key in ipairs(KEYS) do "
    "local v = redis.call('GET', key) "
    "if not v then v = ARGV[i + 1] redis.call('SET', key, v, 'PX', ARGV[1]) end "
    "out[i] = v end return out"
)
#: Delete / re-time a lock only while it still holds our token.
_LOCK_RELEASE = _script(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_LOCK_EXTEND = _script(
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "if ARGV[2] == '' then redis.call('PERSIST', KEYS[1]) return 1 end "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2])"
)

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """Escape SCAN MATCH wildcards, so a KEY_PREFIX like ``site[1]`` matches literally."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


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
                "or unix:// URL"
            )
    return servers


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _version(data: Any) -> int | None:
    """A tag record's version (ASCII digits), or None if missing or foreign."""
    if data is None:
        return None
    try:
        return int(data)
    except ValueError:
        return None


def _tag_keys_of(metas: Iterable[EntryMeta | None]) -> list[str]:
    keys: dict[str, None] = {}
    for meta in metas:
        if meta is not None:
            keys.update(dict.fromkeys(name for name, _ in meta.tags))
    return list(keys)


_NOT_FETCHED: Any = object()


def _fresh_by(meta: EntryMeta, records: Mapping[str, int | None] | None) -> bool | None:
    """Whether ``records`` show the entry's tags unchanged; None if a tag was not fetched."""
    if records is None:
        return None
    for name, version in meta.tags:
        current = records.get(name, _NOT_FETCHED)
        if current is _NOT_FETCHED:
            return None
        if current != version:
            return False
    return True


def _is_stale(meta: EntryMeta, records: Mapping[str, int | None]) -> bool:
    return any(records.get(name) != version for name, version in meta.tags)


# -- talking to a pooled connection ----------------------------------------------------
#
def _eval(pool: SyncPool, script: _Script, keys: Sequence[str], *args: Any) -> Any:
    try:
        return pool.execute("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:  # first use on this server (or after SCRIPT FLUSH)
        return pool.execute("EVAL", script.source, len(keys), *keys, *args)


async def _aeval(ap: AsyncPool, script: _Script, keys: Sequence[str], *args: Any) -> Any:
    try:
        return await ap.execute("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await ap.execute("EVAL", script.source, len(keys), *keys, *args)


def _set_args(key: str, data: bytes, px: int | None, xx: bool = False) -> tuple[Any, ...]:
    args: tuple[Any, ...] = ("SET", key, data) if px is None else ("SET", key, data, "PX", px)
    return (*args, "XX") if xx else args


def _set_many_commands(items: Sequence[tuple[str, bytes]], px: int | None) -> list[tuple[Any, ...]]:
    if px is None:
        return [("SET", key, data) for key, data in items]
    return [("SET", key, data, "PX", px) for key, data in items]


def _persist_if_exists(key: str) -> list[tuple[Any, ...]]:
    return [("MULTI",), ("EXISTS", key), ("PERSIST", key), ("EXEC",)]


def _existed(replies: Sequence[Any]) -> bool:
    """EXISTS's answer from the EXEC reply of _persist_if_exists."""
    executed = replies[-1]
    if isinstance(executed, Exception):
        raise executed
    return bool(executed[0])


def _errors(replies: Sequence[Any]) -> list[Any]:
    """Per reply of a pipelined write: None, or the error it got."""
    return [r if isinstance(r, Exception) else None for r in replies]


# -- pools shared by every backend object of the same servers and options -----------------
#
# Django builds one backend object per thread (and per async context) for each alias, so
# pools live here, keyed by servers + options, not on the objects.

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


class RedisCache(LexigramCache):
    """Redis through redis-py: Django's API, django-redis's extensions, sync and async."""

    backend_name = "redis"
    known_options = LexigramCache.known_options | {
        "CONNECT_TIMEOUT",
        "SOCKET_TIMEOUT",
        "MAX_CONNECTIONS",
        "POOL_TIMEOUT",
    }

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._servers = split_servers(server)
        self._sync_kwargs, self._async_kwargs = self._pool_options()
        self._pools_id = f"{'|'.join(self._servers)}|{sorted(self._sync_kwargs.items())!r}"
        pools = [self._sync_pool(i) for i in range(len(self._servers))]
        self._primary = pools[0]
        self._replicas = pools[1:]
        self._clients: dict[int, redis.Redis] = {}
        self._default_px = milliseconds(self.ttl_seconds(DEFAULT_TIMEOUT))

    def _pool_options(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Pool keyword arguments from OPTIONS; lower-case keys go to redis-py as they are."""
        opts = self._options
        for name, hint in _UNSUPPORTED.items():
            if name in opts:
                raise CacheConfigurationError(f"RedisCache OPTIONS[{name!r}]: {hint}")
        socket_timeout = _seconds(opts.get("SOCKET_TIMEOUT", DEFAULT_SOCKET_TIMEOUT))
        kwargs: dict[str, Any] = {
            "socket_connect_timeout": _seconds(
                opts.get("CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)
            ),
            "socket_timeout": socket_timeout,
            "max_connections": int(opts.get("MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)),
        }
        kwargs.update((k, v) for k, v in opts.items() if k.islower())
        # The sync pool blocks up to POOL_TIMEOUT for a free connection (threads); async
        # tasks wait their turn for one of the same number per event loop.
        pool_timeout = _seconds(opts.get("POOL_TIMEOUT", socket_timeout))
        return {**kwargs, "timeout": pool_timeout}, kwargs

    def _sync_pool(self, index: int) -> SyncPool:
        pool_id = f"{self._servers[index]}|{self._pools_id}"
        pool = _sync_pools.get(pool_id)
        if pool is None:
            with _sync_pools_lock:
                pool = _sync_pools.get(pool_id)
                if pool is None:
                    pool = SyncPool(self._servers[index], **self._sync_kwargs)
                    _sync_pools[pool_id] = pool
        return pool

    def _read_pool(self) -> SyncPool:
        """A replica if there are any (as Django's RedisCache does), else the primary."""
        replicas = self._replicas
        return random.choice(replicas) if replicas else self._primary

    def _apools(self) -> list[AsyncPool]:
        """This loop's pools for our servers, primary first, created on first use."""
        pools = _pools_for_loop(asyncio.get_running_loop())
        mine = pools.get(self._pools_id)
        if mine is None:
            timeout = self._sync_kwargs["timeout"]  # POOL_TIMEOUT, as for threads
            mine = pools[self._pools_id] = [
                AsyncPool(url, timeout=timeout, **self._async_kwargs) for url in self._servers
            ]
        return mine

    def _aprimary(self) -> AsyncPool:
        return self._apools()[0]

    def _aread_pool(self) -> AsyncPool:
        pools = self._apools()
        return pools[0] if len(pools) == 1 else random.choice(pools[1:])

    def _px(self, timeout: Any) -> int | None:
        if timeout is DEFAULT_TIMEOUT:
            return self._default_px
        return milliseconds(self.ttl_seconds(timeout))

    @property
    def _tag_px(self) -> int | None:
        return milliseconds(self.tag_timeout)

    # -- reading entries (decode, check tags, count) ------------------------------------

    def _decode(self, key: str, data: bytes) -> Entry | None:
        try:
            return self.codec.decode_entry(data)
        except CacheDecodeError as exc:
            self.discard_undecodable(key, exc)
            return None

    def _entry(
        self, key: str, data: bytes | None, records: dict[str, int | None] | None = None
    ) -> Entry | None:
        """A GET reply as a live entry, or None (missing, unreadable, stale by tag).

        ``records``: tag versions fetched with the value (from the key's hint); a tag not
        among them costs one more MGET.
        """
        if data is not None:
            try:
                entry = self.codec.decode_entry(data)
            except CacheDecodeError as exc:
                self.discard_undecodable(key, exc)
            else:
                meta = entry[1]
                if meta is None or not meta.tags:
                    self._tag_hints.learn(key, ())
                    self._stats.hits += 1
                    return entry
                fresh = _fresh_by(meta, records)
                if fresh is None:  # the hint did not cover every tag: fetch the rest
                    fresh = self._fresh({key: entry}, records)
                elif not fresh:
                    self._stats.stale_by_tag += 1
                if fresh:
                    self._stats.hits += 1
                    return entry
        self._stats.misses += 1
        return None

    async def _aentry(
        self, key: str, data: bytes | None, records: dict[str, int | None] | None = None
    ) -> Entry | None:
        if data is not None:
            try:
                entry = self.codec.decode_entry(data)
            except CacheDecodeError as exc:
                self.discard_undecodable(key, exc)
            else:
                meta = entry[1]
                if meta is None or not meta.tags:
                    self._tag_hints.learn(key, ())
                    self._stats.hits += 1
                    return entry
                fresh = _fresh_by(meta, records)
                if fresh is None:
                    fresh = await self._afresh({key: entry}, records)
                elif not fresh:
                    self._stats.stale_by_tag += 1
                if fresh:
                    self._stats.hits += 1
                    return entry
        self._stats.misses += 1
        return None

    def _read_hinted(self, keys: Sequence[str]) -> tuple[list[Any], dict[str, int | None] | None]:
        """MGET of ``keys`` plus their hinted tag records, in one round trip.

        Without hints this is a plain GET/MGET on a read replica; with them it reads the
        primary (tag records are never read from a lagging replica).
        """
        hinted = self._tag_hints.get(keys[0]) if len(keys) == 1 else self._tag_hints.union(keys)
        if not hinted:
            if len(keys) == 1:
                return [self._read_pool().execute("GET", keys[0])], None
            return self._read_pool().execute("MGET", *keys), None
        replies = self._primary.execute("MGET", *keys, *hinted)
        n = len(keys)
        return replies[:n], dict(zip(hinted, map(_version, replies[n:])))

    async def _aread_hinted(
        self, keys: Sequence[str]
    ) -> tuple[list[Any], dict[str, int | None] | None]:
        hinted = self._tag_hints.get(keys[0]) if len(keys) == 1 else self._tag_hints.union(keys)
        if not hinted:
            if len(keys) == 1:
                return [await self._aread_pool().execute("GET", keys[0])], None
            return await self._aread_pool().execute("MGET", *keys), None
        replies = await self._aprimary().execute("MGET", *keys, *hinted)
        n = len(keys)
        return replies[:n], dict(zip(hinted, map(_version, replies[n:])))

    def _decode_many(
        self, made: Sequence[str], keys: Sequence[Any], replies: Sequence[Any]
    ) -> tuple[dict[Any, Any], dict[str, Entry]]:
        """MGET replies as ``{caller's key: value}``, plus the tagged entries to check."""
        decode = self.codec.decode_entry
        found: dict[Any, Any] = {}
        tagged: dict[str, Entry] = {}
        for key, original, data in zip(made, keys, replies):
            if data is None:
                continue
            if data[0] == PLAIN_STR_HEADER:  # the commonest value, without a call
                try:
                    found[original] = data[1:].decode()
                    continue
                except UnicodeDecodeError:
                    pass  # lone surrogates (decode_entry allows them) or invalid: reported
            try:
                value, meta = decode(data)
            except CacheDecodeError as exc:
                self.discard_undecodable(key, exc)
                continue
            if meta is None or not meta.tags:
                found[original] = value
            else:
                tagged[key] = (value, meta)
        return found, tagged

    def _found(
        self,
        made: Sequence[str],
        keys: Sequence[Any],
        found: dict[Any, Any],
        fresh: Mapping[str, Entry],
    ) -> dict[Any, Any]:
        """Merge the tagged entries that are still fresh; count hits and misses."""
        if fresh:
            owners = dict(zip(made, keys))
            for key, (value, _) in fresh.items():
                found[owners[key]] = value
        self.count_batch(made, len(found))
        return found

    def _drop_stale(self, entries: dict[str, Entry], records: Mapping[str, int | None]) -> None:
        for key, (_, meta) in list(entries.items()):
            if meta is not None and meta.tags and _is_stale(meta, records):
                del entries[key]
                self._stats.stale_by_tag += 1

    def _records_to_fetch(
        self, entries: dict[str, Entry], records: dict[str, int | None]
    ) -> list[str]:
        """Learn each entry's tags as its key's hint; the tag records not yet in hand."""
        learn = self._tag_hints.learn
        for key, (_, meta) in entries.items():
            learn(key, tuple(name for name, _ in meta.tags) if meta else ())
        return [k for k in _tag_keys_of(m for _, m in entries.values()) if k not in records]

    def _fresh(
        self, entries: dict[str, Entry], records: dict[str, int | None] | None = None
    ) -> bool:
        """Drop entries whose tags moved on; True if any remain.

        Tag records not in ``records`` (fetched with the values, from the hints) cost one
        more MGET.
        """
        records = {} if records is None else records
        missing = self._records_to_fetch(entries, records)
        if missing:
            records.update(self._tag_records(missing))
        self._drop_stale(entries, records)
        return bool(entries)

    async def _afresh(
        self, entries: dict[str, Entry], records: dict[str, int | None] | None = None
    ) -> bool:
        records = {} if records is None else records
        missing = self._records_to_fetch(entries, records)
        if missing:
            records.update(await self._atag_records(missing))
        self._drop_stale(entries, records)
        return bool(entries)

    def _tag_records(self, tag_keys: Sequence[str]) -> dict[str, int | None]:
        replies = self._primary.execute("MGET", *tag_keys)
        return dict(zip(tag_keys, map(_version, replies)))

    async def _atag_records(self, tag_keys: Sequence[str]) -> dict[str, int | None]:
        replies = await self._aprimary().execute("MGET", *tag_keys)
        return dict(zip(tag_keys, map(_version, replies)))

    # -- writing entries ------------------------------------------------------------------

    def _meta_for(self, tags: Iterable[TagLike] | TagLike | None) -> EntryMeta | None:
        keys = self.tag_keys(tags) if tags is not None else ()
        return self.tagged_meta(keys, self._tag_versions_raw(keys)) if keys else None

    async def _ameta_for(self, tags: Iterable[TagLike] | TagLike | None) -> EntryMeta | None:
        keys = self.tag_keys(tags) if tags is not None else ()
        return self.tagged_meta(keys, await self._atag_versions_raw(keys)) if keys else None

    def _set_many_failed(self, originals: list[Any], errors: Sequence[Any]) -> list[Any]:
        """Django's set_many result: the keys not stored (a bad command raises)."""
        error = next((e for e in errors if e is not None), None)
        if error is None:
            self._stats.sets += len(errors)
            return []
        if not isinstance(error, SERVER_ERRORS):
            raise error
        failed = [k for k, e in zip(originals, errors) if e is not None]
        self._stats.sets += len(errors) - len(failed)
        result: list[Any] = self.backend_error("set_many", error, failed)
        return result

    def _counted(self, stored: bool) -> bool:
        if stored:
            self._stats.sets += 1
        return stored

    # -- primitives on final keys (redis-py errors propagate) --------------------------

    def _get_raw(self, key: str) -> bytes | None:
        data: bytes | None = self._read_pool().execute("GET", key)
        return data

    def _set_raw(self, key: str, data: bytes, ttl: float | None, *, xx: bool = False) -> bool:
        """Write with Django's timeout meaning (None: no expiry, <= 0: delete instead)."""
        return self._set_px(key, data, milliseconds(ttl), xx)

    def _add_raw(self, key: str, data: bytes, ttl: float | None) -> bool:
        """``SET NX PX``: True if the key was absent and now holds ``data``."""
        return self._add_px(key, data, milliseconds(ttl))

    def _set_px(self, key: str, data: bytes, px: int | None, xx: bool = False) -> bool:
        if px == 0:  # Django: a timeout <= 0 stores nothing and drops the old value
            deleted = self._primary.execute("DEL", key)
            return xx and bool(deleted)
        return self._primary.execute(*_set_args(key, data, px, xx)) is not None

    def _add_px(self, key: str, data: bytes, px: int | None) -> bool:
        if px == 0:
            return not self._primary.execute("EXISTS", key)
        return self._primary.execute(*_set_args(key, data, px), "NX") is not None

    def _add_unless_live(self, key: str, data: bytes, px: int | None) -> bool:
        """``add`` that also replaces an entry its tags made stale (it reads as absent)."""
        if self._add_px(key, data, px):
            return True
        old = self._primary.execute("GET", key)
        if old is None:  # expired meanwhile
            return self._add_px(key, data, px)
        meta = self._tags_of(old)
        if meta is None or self._fresh({key: (None, meta)}):
            return False
        return bool(_eval(self._primary, _REPLACE, [key], old, data, "" if px is None else px))

    def _tags_of(self, data: bytes) -> EntryMeta | None:
        """The metadata of a stored payload if it names tags; None for anything else
        (untagged, a raw integer, a lock token, or bytes we cannot read: never replaced)."""
        try:
            meta = self.codec.read_meta(data)
        except CacheDecodeError:
            return None
        return meta if meta is not None and meta.tags else None

    def _get_many_raw(self, keys: Sequence[str]) -> list[bytes | None]:
        """One ``MGET``; replies in the order of ``keys``."""
        replies: list[bytes | None] = self._read_pool().execute("MGET", *keys)
        return replies

    def _set_many_raw(self, items: Sequence[tuple[str, bytes]], ttl: float | None) -> list[Any]:
        """One pipelined write of ``SET`` commands; per key, None or the error it got."""
        return self._set_many_px(items, milliseconds(ttl))

    def _set_many_px(self, items: Sequence[tuple[str, bytes]], px: int | None) -> list[Any]:
        if px == 0:
            self._primary.execute("DEL", *(key for key, _ in items))
            return [None] * len(items)
        return _errors(self._primary.pipeline(_set_many_commands(items, px)))

    def _tag_versions_raw(self, keys: Sequence[str], create: bool = True) -> list[int | None]:
        if not create:
            return [_version(r) for r in self._primary.execute("MGET", *keys)]
        fresh = [new_version() for _ in keys]
        replies = _eval(self._primary, _TAG_VERSIONS, keys, self._tag_px, *fresh)
        return [_version(r) for r in replies]

    async def _aget_raw(self, key: str) -> bytes | None:
        data: bytes | None = await self._aread_pool().execute("GET", key)
        return data

    async def _aset_raw(
        self, key: str, data: bytes, ttl: float | None, *, xx: bool = False
    ) -> bool:
        return await self._aset_px(key, data, milliseconds(ttl), xx)

    async def _aadd_raw(self, key: str, data: bytes, ttl: float | None) -> bool:
        return await self._aadd_px(key, data, milliseconds(ttl))

    async def _aset_px(self, key: str, data: bytes, px: int | None, xx: bool = False) -> bool:
        if px == 0:
            deleted = await self._aprimary().execute("DEL", key)
            return xx and bool(deleted)
        return await self._aprimary().execute(*_set_args(key, data, px, xx)) is not None

    async def _aadd_px(self, key: str, data: bytes, px: int | None) -> bool:
        if px == 0:
            return not await self._aprimary().execute("EXISTS", key)
        return await self._aprimary().execute(*_set_args(key, data, px), "NX") is not None

    async def _aadd_unless_live(self, key: str, data: bytes, px: int | None) -> bool:
        if await self._aadd_px(key, data, px):
            return True
        ap = self._aprimary()
        old = await ap.execute("GET", key)
        if old is None:
            return await self._aadd_px(key, data, px)
        meta = self._tags_of(old)
        if meta is None or await self._afresh({key: (None, meta)}):
            return False
        return bool(await _aeval(ap, _REPLACE, [key], old, data, "" if px is None else px))

    async def _aget_many_raw(self, keys: Sequence[str]) -> list[bytes | None]:
        replies: list[bytes | None] = await self._aread_pool().execute("MGET", *keys)
        return replies

    async def _aset_many_raw(
        self, items: Sequence[tuple[str, bytes]], ttl: float | None
    ) -> list[Any]:
        return await self._aset_many_px(items, milliseconds(ttl))

    async def _aset_many_px(self, items: Sequence[tuple[str, bytes]], px: int | None) -> list[Any]:
        ap = self._aprimary()
        if px == 0:
            await ap.execute("DEL", *(key for key, _ in items))
            return [None] * len(items)
        return _errors(await ap.pipeline(_set_many_commands(items, px)))

    async def _atag_versions_raw(
        self, keys: Sequence[str], create: bool = True
    ) -> list[int | None]:
        ap = self._aprimary()
        if not create:
            return [_version(r) for r in await ap.execute("MGET", *keys)]
        fresh = [new_version() for _ in keys]
        replies = await _aeval(ap, _TAG_VERSIONS, keys, self._tag_px, *fresh)
        return [_version(r) for r in replies]

    # -- Django's cache API --------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            (data,), records = self._read_hinted((key,))
            entry = self._entry(key, data, records)
        except SERVER_ERRORS as exc:
            return self.backend_error("get", exc, default)
        return default if entry is None else entry[0]

    def set(  # type: ignore[override]  # True/False like django-redis, not None
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        """Store ``value``; True if stored. ``nx``: only if absent (as ``add``), ``xx``:
        only if present (django-redis's flags); ``tags``: see :mod:`~..tags`."""
        key = self.make_and_validate_key(key, version)
        try:
            meta = self._meta_for(tags)
            self._learn_tags((key,), meta)
            data = self.codec.encode(value, meta)
            px = self._px(timeout)
            stored = self._add_unless_live(key, data, px) if nx else self._set_px(key, data, px, xx)
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("set", exc, False)
            return result
        return self._counted(stored)

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
            meta = self._meta_for(tags)
            self._learn_tags((key,), meta)
            data = self.codec.encode(value, meta)
            added = self._add_unless_live(key, data, self._px(timeout))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("add", exc, False)
            return result
        return self._counted(added)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        px = self._px(timeout)
        try:
            if px is None:  # PERSIST answers 0 for a key that had no expiry: ask EXISTS too
                return _existed(self._primary.pipeline(_persist_if_exists(key)))
            if px == 0:
                return bool(self._primary.execute("DEL", key))
            return bool(self._primary.execute("PEXPIRE", key, px))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("touch", exc, False)
            return result

    def delete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            deleted = bool(self._primary.execute("DEL", key))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("delete", exc, False)
            return result
        if deleted:
            self._stats.deletes += 1
        return deleted

    def has_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            found = _eval(self._primary, _HAS_KEY, [key])
            if not isinstance(found, bytes):
                return bool(found)
            entry = self._decode(key, found)  # has tags: are they current?
            return entry is not None and self._fresh({key: entry})
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("has_key", exc, False)
            return result

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Atomic ``INCRBY`` of a stored integer; ValueError if the key is missing.

        When the server is unreachable and FAIL_SILENTLY is on, returns None (as
        django-redis does with IGNORE_EXCEPTIONS): there is no meaningful default count.
        """
        key = self.make_and_validate_key(key, version)
        try:
            value = _eval(self._primary, _INCR, [key], delta)
        except SERVER_ERRORS as exc:
            return self.backend_error("incr", exc, None)
        except ResponseError as exc:
            raise RedisIncrError(f"cannot increment key {key!r}: {exc}") from exc
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
            replies, records = self._read_hinted(made)
            found, tagged = self._decode_many(made, keys, replies)
            if tagged:
                self._fresh(tagged, records)
        except SERVER_ERRORS as exc:
            result: dict[Any, Any] = self.backend_error("get_many", exc, {})
            return result
        return self._found(made, keys, found, tagged)

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> list[Any]:
        """One pipelined write; returns the keys that could not be stored (Django's API)."""
        if not data:
            return []
        originals = list(data)
        try:
            meta = self._meta_for(tags)
            made = self.make_key_list(originals, version)
            items = list(zip(made, self.codec.encode_many(list(data.values()), meta)))
            self._learn_tags(made, meta)
            errors = self._set_many_px(items, self._px(timeout))
        except SERVER_ERRORS as exc:
            result: list[Any] = self.backend_error("set_many", exc, originals)
            return result
        return self._set_many_failed(originals, errors)

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self.make_and_validate_key(k, version) for k in keys]
        if not made:
            return
        try:
            self._stats.deletes += self._primary.execute("DEL", *made)
        except SERVER_ERRORS as exc:
            self.backend_error("delete_many", exc)

    def clear(self) -> None:
        """Remove this alias's keys only: SCAN + UNLINK of its KEY_PREFIX.

        Without a KEY_PREFIX the alias owns the whole database, and it is flushed
        (``FLUSHDB``), as Django's RedisCache always does.
        """
        try:
            if self.key_prefix:
                self._unlink_matching(self._alias_pattern(), SCAN_COUNT)
            else:
                self._primary.execute("FLUSHDB")
        except SERVER_ERRORS as exc:
            self.backend_error("clear", exc)

    # -- async: the same commands through redis.asyncio, on the running loop --------------

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            (data,), records = await self._aread_hinted((key,))
            entry = await self._aentry(key, data, records)
        except SERVER_ERRORS as exc:
            return self.backend_error("get", exc, default)
        return default if entry is None else entry[0]

    async def aset(  # type: ignore[override]  # True/False like set()
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            meta = await self._ameta_for(tags)
            self._learn_tags((key,), meta)
            data = self.codec.encode(value, meta)
            px = self._px(timeout)
            if nx:
                stored = await self._aadd_unless_live(key, data, px)
            else:
                stored = await self._aset_px(key, data, px, xx)
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("set", exc, False)
            return result
        return self._counted(stored)

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
            meta = await self._ameta_for(tags)
            self._learn_tags((key,), meta)
            data = self.codec.encode(value, meta)
            added = await self._aadd_unless_live(key, data, self._px(timeout))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("add", exc, False)
            return result
        return self._counted(added)

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        px = self._px(timeout)
        try:
            ap = self._aprimary()
            if px is None:
                return _existed(await ap.pipeline(_persist_if_exists(key)))
            if px == 0:
                return bool(await ap.execute("DEL", key))
            return bool(await ap.execute("PEXPIRE", key, px))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("touch", exc, False)
            return result

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            deleted = bool(await self._aprimary().execute("DEL", key))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("delete", exc, False)
            return result
        if deleted:
            self._stats.deletes += 1
        return deleted

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            found = await _aeval(self._aprimary(), _HAS_KEY, [key])
            if not isinstance(found, bytes):
                return bool(found)
            entry = self._decode(key, found)
            return entry is not None and await self._afresh({key: entry})
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("has_key", exc, False)
            return result

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            value = await _aeval(self._aprimary(), _INCR, [key], delta)
        except SERVER_ERRORS as exc:
            return self.backend_error("incr", exc, None)
        except ResponseError as exc:
            raise RedisIncrError(f"cannot increment key {key!r}: {exc}") from exc
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
            replies, records = await self._aread_hinted(made)
            found, tagged = self._decode_many(made, keys, replies)
            if tagged:
                await self._afresh(tagged, records)
        except SERVER_ERRORS as exc:
            result: dict[Any, Any] = self.backend_error("get_many", exc, {})
            return result
        return self._found(made, keys, found, tagged)

    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> list[Any]:
        if not data:
            return []
        originals = list(data)
        try:
            meta = await self._ameta_for(tags)
            made = self.make_key_list(originals, version)
            items = list(zip(made, self.codec.encode_many(list(data.values()), meta)))
            self._learn_tags(made, meta)
            errors = await self._aset_many_px(items, self._px(timeout))
        except SERVER_ERRORS as exc:
            result: list[Any] = self.backend_error("set_many", exc, originals)
            return result
        return self._set_many_failed(originals, errors)

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self.make_and_validate_key(k, version) for k in keys]
        if not made:
            return
        try:
            self._stats.deletes += await self._aprimary().execute("DEL", *made)
        except SERVER_ERRORS as exc:
            self.backend_error("delete_many", exc)

    async def aclear(self) -> None:
        try:
            if self.key_prefix:
                await self._aunlink_matching(self._alias_pattern(), SCAN_COUNT)
            else:
                await self._aprimary().execute("FLUSHDB")
        except SERVER_ERRORS as exc:
            self.backend_error("clear", exc)

    async def aclose(self, **kwargs: Any) -> None:
        """Close this event loop's connections to our servers (sync pools stay open)."""
        mine = _loop_pools.get(asyncio.get_running_loop(), {}).pop(self._pools_id, None)
        for ap in mine or ():
            await ap.aclose()

    # -- django-redis's extensions ---------------------------------------------------------

    def get_client(self, key: Any = None, *, write: bool = True) -> redis.Redis:
        """A ``redis.Redis`` for raw commands (keys are not made), on redis-py's own pool.

        That pool has this alias's settings and bound, and opens its own connections on
        first use (the backend's commands go through the leaner ``SyncPool``).
        """
        pool = (self._primary if write else self._read_pool()).redis_pool
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = redis.Redis(connection_pool=pool)
        return client

    def aget_client(self, *, write: bool = True) -> redis.asyncio.Redis:
        """A ``redis.asyncio.Redis`` on this loop's pool (call from inside the loop)."""
        ap = self._aprimary() if write else self._aread_pool()
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
            left = int(self._read_pool().execute(command, key))
        except SERVER_ERRORS as exc:
            return self.backend_error(command.lower(), exc, 0)  # type: ignore[no-any-return]
        return None if left == -1 else max(left, 0)

    def expire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """Set a key's timeout with Django's meaning (None: never expires, <= 0: delete)."""
        return self.touch(key, timeout, version)

    def pexpire(self, key: Any, timeout: int, version: int | None = None) -> bool:
        """Set a key's timeout in milliseconds."""
        key = self.make_and_validate_key(key, version)
        try:
            return bool(self._primary.execute("PEXPIRE", key, int(timeout)))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("pexpire", exc, False)
            return result

    def persist(self, key: Any, version: int | None = None) -> bool:
        """Remove a key's timeout; True if it had one (Redis ``PERSIST``)."""
        key = self.make_and_validate_key(key, version)
        try:
            return bool(self._primary.execute("PERSIST", key))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("persist", exc, False)
            return result

    def keys(self, search: str, version: int | None = None) -> list[str]:
        """Keys matching a glob pattern in Django key space (``"user:*"``), via SCAN."""
        return list(dict.fromkeys(self.iter_keys(search, version=version)))

    def iter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> Iterator[str]:
        """Like :meth:`keys`, lazily; SCAN may yield a key twice if the db is rehashing."""
        unmake = self._key_unmaker(version)
        pattern = self._pattern(search, version)
        try:
            for raw in self._scan(self._read_pool(), pattern, itersize or SCAN_COUNT):
                yield unmake(raw)
        except SERVER_ERRORS as exc:
            self.backend_error("iter_keys", exc)

    def delete_pattern(
        self, pattern: str, version: int | None = None, itersize: int | None = None
    ) -> int:
        """Delete the keys matching a pattern in Django key space; returns how many."""
        try:
            deleted = self._unlink_matching(self._pattern(pattern, version), itersize or SCAN_COUNT)
        except SERVER_ERRORS as exc:
            result: int = self.backend_error("delete_pattern", exc, 0)
            return result
        self._stats.deletes += deleted
        return deleted

    async def attl(self, key: Any, version: int | None = None) -> int | None:
        return await self._aremaining("TTL", key, version)

    async def apttl(self, key: Any, version: int | None = None) -> int | None:
        return await self._aremaining("PTTL", key, version)

    async def _aremaining(self, command: str, key: Any, version: int | None) -> int | None:
        key = self.make_and_validate_key(key, version)
        try:
            left = int(await self._aread_pool().execute(command, key))
        except SERVER_ERRORS as exc:
            return self.backend_error(command.lower(), exc, 0)  # type: ignore[no-any-return]
        return None if left == -1 else max(left, 0)

    async def aexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        return await self.atouch(key, timeout, version)

    async def apexpire(self, key: Any, timeout: int, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            return bool(await self._aprimary().execute("PEXPIRE", key, int(timeout)))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("pexpire", exc, False)
            return result

    async def apersist(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            return bool(await self._aprimary().execute("PERSIST", key))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("persist", exc, False)
            return result

    async def akeys(self, search: str, version: int | None = None) -> list[str]:
        return list(dict.fromkeys([k async for k in self.aiter_keys(search, version=version)]))

    async def aiter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> AsyncIterator[str]:
        unmake = self._key_unmaker(version)
        pattern = self._pattern(search, version)
        try:
            async for raw in self._ascan(self._aread_pool(), pattern, itersize or SCAN_COUNT):
                yield unmake(raw)
        except SERVER_ERRORS as exc:
            self.backend_error("iter_keys", exc)

    async def adelete_pattern(
        self, pattern: str, version: int | None = None, itersize: int | None = None
    ) -> int:
        try:
            deleted = await self._aunlink_matching(
                self._pattern(pattern, version), itersize or SCAN_COUNT
            )
        except SERVER_ERRORS as exc:
            result: int = self.backend_error("delete_pattern", exc, 0)
            return result
        self._stats.deletes += deleted
        return deleted

    # -- patterns and SCAN -----------------------------------------------------------------

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
        head, sep, tail = str(self.key_func("\x00", self.key_prefix, version)).partition("\x00")

        def unmake(raw: bytes) -> str:
            key = raw.decode(errors="replace")
            if sep and key.startswith(head) and key.endswith(tail):
                return key[len(head) : len(key) - len(tail)]
            return key

        return unmake

    @staticmethod
    def _scan(pool: SyncPool, pattern: str, count: int) -> Iterator[bytes]:
        cursor: Any = 0
        while True:
            cursor, found = pool.execute("SCAN", cursor, "MATCH", pattern, "COUNT", count)
            yield from found
            if int(cursor) == 0:
                return

    @staticmethod
    async def _ascan(ap: AsyncPool, pattern: str, count: int) -> AsyncIterator[bytes]:
        cursor: Any = 0
        while True:
            cursor, found = await ap.execute("SCAN", cursor, "MATCH", pattern, "COUNT", count)
            for key in found:
                yield key
            if int(cursor) == 0:
                return

    def _unlink_matching(self, pattern: str, count: int) -> int:
        """SCAN the primary and UNLINK what matches, ``count`` keys per command."""
        deleted = 0
        batch: list[bytes] = []
        for key in self._scan(self._primary, pattern, count):
            batch.append(key)
            if len(batch) >= count:
                deleted += self._primary.execute("UNLINK", *batch)
                batch = []
        if batch:
            deleted += self._primary.execute("UNLINK", *batch)
        return deleted

    async def _aunlink_matching(self, pattern: str, count: int) -> int:
        ap = self._aprimary()
        deleted = 0
        batch: list[bytes] = []
        async for key in self._ascan(ap, pattern, count):
            batch.append(key)
            if len(batch) >= count:
                deleted += await ap.execute("UNLINK", *batch)
                batch = []
        if batch:
            deleted += await ap.execute("UNLINK", *batch)
        return deleted

    # -- primitives for stampede protection, locks and tags ----------------------------

    def _get_entry(self, key: str) -> Entry | None:
        try:
            (data,), records = self._read_hinted((key,))
            return self._entry(key, data, records)
        except SERVER_ERRORS as exc:
            return self.backend_error("get", exc, None)  # type: ignore[no-any-return]

    def _set_entry(self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None) -> None:
        self._learn_tags((key,), meta)
        data = self.codec.encode(value, meta)
        try:
            self._counted(self._set_raw(key, data, ttl))
        except SERVER_ERRORS as exc:
            self.backend_error("set", exc)

    def _lock_add(self, key: str, token: str, ttl: float | None) -> bool:
        try:
            return self._add_raw(key, token.encode(), ttl)
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("lock", exc, False)
            return result

    def _lock_release(self, key: str, token: str) -> bool:
        try:
            return bool(_eval(self._primary, _LOCK_RELEASE, [key], token))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("lock release", exc, False)
            return result

    def _lock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        px = milliseconds(ttl)
        try:
            return bool(_eval(self._primary, _LOCK_EXTEND, [key], token, "" if px is None else px))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("lock extend", exc, False)
            return result

    def _lock_owner(self, key: str) -> str | None:
        try:
            data = self._primary.execute("GET", key)
        except SERVER_ERRORS as exc:
            return self.backend_error("lock owner", exc, None)  # type: ignore[no-any-return]
        return None if data is None else bytes(data).decode(errors="replace")

    def _tag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        try:
            return self._tag_versions_raw(keys, create)
        except SERVER_ERRORS as exc:
            failed = [UNKNOWN_TAG_VERSION if create else None] * len(keys)
            return list(self.backend_error("tag versions", exc, failed))

    def _tags_invalidate(self, keys: Sequence[str]) -> None:
        records = [(key, b"%d" % new_version()) for key in keys]
        try:
            error = next((e for e in self._set_many_px(records, self._tag_px) if e), None)
            if error is not None:
                raise error
        except SERVER_ERRORS as exc:
            self.backend_error("invalidate tags", exc)

    async def _aget_entry(self, key: str) -> Entry | None:
        try:
            (data,), records = await self._aread_hinted((key,))
            return await self._aentry(key, data, records)
        except SERVER_ERRORS as exc:
            return self.backend_error("get", exc, None)  # type: ignore[no-any-return]

    async def _aset_entry(
        self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None
    ) -> None:
        self._learn_tags((key,), meta)
        data = self.codec.encode(value, meta)
        try:
            self._counted(await self._aset_raw(key, data, ttl))
        except SERVER_ERRORS as exc:
            self.backend_error("set", exc)

    async def _alock_add(self, key: str, token: str, ttl: float | None) -> bool:
        try:
            return await self._aadd_raw(key, token.encode(), ttl)
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("lock", exc, False)
            return result

    async def _alock_release(self, key: str, token: str) -> bool:
        try:
            return bool(await _aeval(self._aprimary(), _LOCK_RELEASE, [key], token))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("lock release", exc, False)
            return result

    async def _alock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        px = "" if ttl is None else milliseconds(ttl)
        try:
            return bool(await _aeval(self._aprimary(), _LOCK_EXTEND, [key], token, px))
        except SERVER_ERRORS as exc:
            result: bool = self.backend_error("lock extend", exc, False)
            return result

    async def _alock_owner(self, key: str) -> str | None:
        try:
            data = await self._aprimary().execute("GET", key)
        except SERVER_ERRORS as exc:
            return self.backend_error("lock owner", exc, None)  # type: ignore[no-any-return]
        return None if data is None else bytes(data).decode(errors="replace")

    async def _atag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        try:
            return await self._atag_versions_raw(keys, create)
        except SERVER_ERRORS as exc:
            failed = [UNKNOWN_TAG_VERSION if create else None] * len(keys)
            return list(self.backend_error("tag versions", exc, failed))

    async def _atags_invalidate(self, keys: Sequence[str]) -> None:
        records = [(key, b"%d" % new_version()) for key in keys]
        try:
            errors = await self._aset_many_px(records, self._tag_px)
            error = next((e for e in errors if e), None)
            if error is not None:
                raise error
        except SERVER_ERRORS as exc:
            self.backend_error("invalidate tags", exc)

    # -- metrics -------------------------------------------------------------------------

    def store_stats(self) -> dict[str, Any]:
        """Server figures from INFO and DBSIZE; never raises (a down server is reported)."""
        try:
            client = self.get_client()
            info = client.info()
            entries = client.dbsize()
        except redis.exceptions.RedisError as exc:
            return {"server_error": f"{type(exc).__name__}: {exc}"}
        data: dict[str, Any] = {"entries": entries}
        for name in (
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
        ):
            if name in info:
                data[name] = info[name]
        return data
