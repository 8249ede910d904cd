"""How a networked backend reads and writes entries over its per-server client.

The half of :class:`~.remote.RemoteCache` that Django's API is built on: the client
protocol, the fail-open policy, reading an entry with its tag records in one round trip,
writing one with its tag versions. Where a call goes::

    cache.get("k")                         RemoteCache.get (remote.py)
      make_and_validate_key                  the key memo (base.py)
      _read_entry(key)                       value + hinted tag records in one read
        client.get / client.get_many         backends/<server>/client.py
          client.execute(...)                the one choke point: a failing server
            pool / pymemcache -> socket      becomes CacheServerError there
      _settle(...)                           decode, exact expiry, tag check (tags.py)
      counters                               hits / misses
    CacheServerError -> _failed(op, exc, default): counted, logged, default returned
                                              (raised instead when FAIL_SILENTLY is False)

Each server package (``redis/``, ``memcached/``) supplies a client with the small set of
commands below (:class:`ServerClient`) and the few rules that are its own: how a Django
timeout becomes a server expiry, how values must be encoded to fit, how ``clear()``
finds this alias's keys. Everything else, and every sync method's async twin (right
below it), is here once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Protocol, TypeVar

from ..circuit import CircuitBreaker
from ..codec import PLAIN_STR_HEADER, EntryMeta
from ..exceptions import CacheBackendError, CacheDecodeError, CacheServerError
from ..protocols import Entry
from ..signals import cache_hit, cache_miss
from ..tags import TagLike, is_stale, record_version, tag_keys_of
from .base import LexigramCache

logger = logging.getLogger("lexigram_cache_django")
_T = TypeVar("_T")
_first = itemgetter(0)  # a tag's record key, from its (key, version) pair
#: At most one failure WARNING per alias per this many seconds.
QUIET_SECONDS = 60.0
_last_warning: dict[str, tuple[float, int]] = {}  # identity -> (when logged, silenced since)
_warning_lock = threading.Lock()


def _server_health(breaker: CircuitBreaker, ping: Callable[[], Any]) -> dict[str, Any]:
    """One server's line of ``health()``: a timed ping, then its breaker's snapshot."""
    started = time.monotonic()
    error = None
    try:
        ping()
    except CacheServerError as exc:
        error = str(exc)
    latency = None if error else round((time.monotonic() - started) * 1000, 3)
    snap = breaker.snapshot()
    return {
        "server": snap.server,
        "state": snap.state.value,
        "ping_ms": latency,
        "error": error,
        "consecutive_failures": snap.consecutive_failures,
        "last_error": None if snap.last_error is None else str(snap.last_error),
        "short_circuited": snap.short_circuited,
        "opened_at": snap.opened_at,
    }


def _quiet_warning(cache: LexigramCache, operation: str, default: Any, exc: Exception) -> None:
    now = time.monotonic()
    with _warning_lock:
        logged, silenced = _last_warning.get(cache.identity, (-QUIET_SECONDS, 0))
        if now - logged < QUIET_SECONDS:
            _last_warning[cache.identity] = (logged, silenced + 1)
            return
        _last_warning[cache.identity] = (now, 0)
    more = f" ({silenced} more failed open since the last such line)" if silenced else ""
    logger.warning("%r: %s failed, returning %r: %s%s", cache, operation, default, exc, more)


class ServerClient(Protocol):
    """The commands RemoteCache sends, on made keys and encoded bytes.

    ``exp`` is the server's own expiry, made by the cache's ``_expiry`` hooks (Redis: PX
    milliseconds or None; memcached: its exptime). ``primary``: read from the primary,
    never a replica (tag records and locks must not lag). Every method raises
    :class:`~lexigram_cache_django.exceptions.CacheServerError` when the server fails.
    """

    def get(self, key: str, primary: bool = False) -> bytes | None: ...
    def get_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]: ...
    def set(self, key: str, data: bytes, exp: Any, xx: bool = False) -> bool: ...
    def set_many(self, items: Sequence[tuple[str, bytes]], exp: Any) -> list[str]: ...
    def add(self, key: str, data: bytes, exp: Any) -> bool: ...
    def gets(self, key: str) -> tuple[bytes | None, Any]: ...
    def cas(self, key: str, data: bytes, token: Any, exp: Any) -> bool: ...
    def touch(self, key: str, exp: Any) -> bool: ...
    def delete(self, key: str) -> bool: ...
    def delete_many(self, keys: Sequence[str]) -> int | None: ...
    def incr(self, key: str, delta: int) -> int | None: ...
    def tag_versions(self, keys: Sequence[str], create: bool, exp: Any) -> list[int | None]: ...
    def release_if(self, key: str, token: bytes) -> bool: ...
    def pings(self) -> list[tuple[CircuitBreaker, Callable[[], Any]]]: ...
    def extend_if(self, key: str, token: bytes, exp: Any) -> bool: ...
    async def aget(self, key: str, primary: bool = False) -> bytes | None: ...
    async def aget_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]: ...
    async def aset(self, key: str, data: bytes, exp: Any, xx: bool = False) -> bool: ...
    async def aset_many(self, items: Sequence[tuple[str, bytes]], exp: Any) -> list[str]: ...
    async def aadd(self, key: str, data: bytes, exp: Any) -> bool: ...
    async def agets(self, key: str) -> tuple[bytes | None, Any]: ...
    async def acas(self, key: str, data: bytes, token: Any, exp: Any) -> bool: ...
    async def atouch(self, key: str, exp: Any) -> bool: ...
    async def adelete(self, key: str) -> bool: ...
    async def adelete_many(self, keys: Sequence[str]) -> int | None: ...
    async def aincr(self, key: str, delta: int) -> int | None: ...
    async def atag_versions(
        self, keys: Sequence[str], create: bool, exp: Any
    ) -> list[int | None]: ...
    async def arelease_if(self, key: str, token: bytes) -> bool: ...
    async def aextend_if(self, key: str, token: bytes, exp: Any) -> bool: ...


class RemoteEntries(LexigramCache):
    """Entries on a server: decode, tags, expiry, counters and the fail-open policy."""

    _client: ServerClient

    # -- what each server decides (overridden by the server packages) ----------------

    def _expiry(self, timeout: Any) -> Any:
        """The server expiry for a Django ``timeout`` (DEFAULT_TIMEOUT, None, seconds)."""
        raise NotImplementedError

    def _seconds_expiry(self, ttl: float | None) -> Any:
        """The server expiry for a lifetime in seconds (None: never; <= 0: expired)."""
        raise NotImplementedError

    def _entry_expiry(self, ttl: float | None, meta: EntryMeta | None) -> Any:
        """The server expiry of an entry written by ``get_or_set``."""
        return self._seconds_expiry(ttl)

    def _lock_expiry(self, ttl: float | None) -> Any:
        """The server expiry of a lock: never shorter than ``ttl``."""
        return self._seconds_expiry(ttl)

    def _encode(self, value: Any, meta: EntryMeta | None) -> bytes:
        """One value as the bytes to store (memcached also makes them fit its item size)."""
        return self.codec.encode(value, meta)

    def _encode_batch(
        self, made: list[str], values: list[Any], meta: EntryMeta | None
    ) -> tuple[list[tuple[str, bytes]], list[str]]:
        """``(key, bytes)`` pairs to store, and the keys whose values cannot be stored."""
        return list(zip(made, self.codec.encode_many(values, meta))), []

    def _clear_server(self) -> None:
        """Remove this alias's entries (Redis: its prefix; memcached: everything)."""
        raise NotImplementedError

    async def _aclear_server(self) -> None:
        raise NotImplementedError

    def circuit_options(self) -> dict[str, Any]:
        """Keyword arguments of this alias's circuit breakers (CIRCUIT_* options)."""
        return {
            "failures": self.option("CIRCUIT_FAILURES"),
            "reset_timeout": self.option("CIRCUIT_RESET_TIMEOUT"),
            "open_on_timeout": self.option("CIRCUIT_OPEN_ON_TIMEOUT"),
        }

    def breakers(self) -> list[CircuitBreaker]:
        """This alias's servers' circuit breakers (primary first), without asking them."""
        return [breaker for breaker, _ in self._client.pings()]

    def health(self) -> dict[str, Any]:
        """Each server's breaker (state, consecutive failures, last error, calls
        short-circuited) and a ping through the choke point; never raises.

        ``status``: ``down`` when the primary (or every memcached node) cannot be used,
        ``degraded`` when some server cannot or a breaker is not closed, else ``up``.
        """
        servers = [_server_health(b, ping) for b, ping in self._client.pings()]
        broken = [s for s in servers if s["ping_ms"] is None]
        if (
            not servers
            or len(broken) == len(servers)
            or (broken and broken[0] is servers[0] and self.backend_name == "redis")
        ):
            status = "down"
        elif broken or any(s["state"] != "closed" for s in servers):
            status = "degraded"
        else:
            status = "up"
        return {"backend": self.backend_name, "status": status, "servers": servers}

    # -- the fail-open policy, in one place ------------------------------------------

    def _failed(self, operation: str, exc: CacheServerError, default: _T) -> _T:
        """A server could not serve ``operation``: count it, then raise or log and default.

        Logs are quiet: a short-circuited call (breaker open) only at DEBUG, since the
        breaker says when it opens and closes; other failures at most one WARNING a
        minute per alias, saying how many were not logged.
        """
        stats = self._stats
        stats.errors += 1
        if exc.short_circuited:
            stats.short_circuited += 1
        if not self.fail_silently:
            raise CacheBackendError(
                f"{type(self).__name__} {operation} failed at {self.location_display}: {exc}"
            ) from (exc.__cause__ or exc)  # the client library's own error, as before
        if exc.short_circuited:
            logger.debug("%r: %s failed open: %s", self, operation, exc)
        else:
            _quiet_warning(self, operation, default, exc)
        return default

    def _failed_write(self, operation: str, key: str, exc: CacheServerError) -> bool:
        """A failed write leaves no old value behind (Django's rule), when the server is
        still answering: one that timed out is not asked again in the same call."""
        if exc.answered:
            try:
                self._client.delete(key)
            except CacheServerError:
                pass
        return self._failed(operation, exc, False)

    async def _afailed_write(self, operation: str, key: str, exc: CacheServerError) -> bool:
        if exc.answered:
            try:
                await self._client.adelete(key)
            except CacheServerError:
                pass
        return self._failed(operation, exc, False)

    def _counted(self, stored: bool) -> bool:
        if stored:
            self._stats.sets += 1
        return stored

    # -- reading entries: decode, exact expiry, tags, counters ------------------------

    def _live(self, key: str, data: bytes | None) -> Entry | None:
        """A stored payload as a live entry: None if absent, unreadable (logged) or past
        the exact expiry its metadata records (memcached keeps such items a second)."""
        if data is None:
            return None
        try:
            entry = self.codec.decode_entry(data)
        except CacheDecodeError as exc:
            self.discard_undecodable(key, exc)
            return None
        meta = entry[1]
        if meta is not None and meta.expires and meta.expires <= time.time():
            return None
        return entry

    def _tags_to_fetch(
        self, key: str, entry: Entry | None, hint: tuple[str, ...], records: Mapping[str, Any]
    ) -> list[str]:
        """Keep ``key``'s tag hint current; the tag records its entry needs not yet read."""
        meta = None if entry is None else entry[1]
        if meta is None or not meta.tags:
            if hint:
                self._tag_hints.learn(key, ())
            return []
        names = tuple(map(_first, meta.tags))
        if names == hint:  # the common case: every record came with the value
            return []
        self._tag_hints.learn(key, names)
        return [name for name in names if name not in records]

    def _settle(
        self, key: str, entry: Entry | None, records: Mapping[str, int | None], count: bool
    ) -> Any:
        """Drop an entry its tags made stale, and count the read (and signal it)."""
        meta = None if entry is None else entry[1]
        if meta is not None and meta.tags and is_stale(meta.tags, records):
            self._stats.stale_by_tag += 1
            entry = None
        if count:
            if entry is None:
                self._stats.misses += 1
                if cache_miss.receivers:
                    self.send_signal(cache_miss, key=key)
            else:
                self._stats.hits += 1
                if cache_hit.receivers:
                    self.send_signal(cache_hit, key=key)
        return entry

    def _read_entry(self, key: str, count: bool = True, primary: bool = False) -> Entry | None:
        """One entry and (from the key's hint) its tag records in one read; ``primary``
        reads it from the primary even when there are replicas (``has_key``)."""
        hint = self._tag_hints.get(key)
        records: dict[str, int | None] = {}
        if hint:
            data, *versions = self._client.get_many((key, *hint), primary=True)
            records = dict(zip(hint, map(record_version, versions)))
        else:
            data = self._client.get(key, primary)
        entry = self._live(key, data)
        missing = self._tags_to_fetch(key, entry, hint, records)
        if missing:
            records.update(self._records(missing))
        return self._settle(key, entry, records, count)  # type: ignore[no-any-return]

    async def _aread_entry(
        self, key: str, count: bool = True, primary: bool = False
    ) -> Entry | None:
        hint = self._tag_hints.get(key)
        records: dict[str, int | None] = {}
        if hint:
            data, *versions = await self._client.aget_many((key, *hint), primary=True)
            records = dict(zip(hint, map(record_version, versions)))
        else:
            data = await self._client.aget(key, primary)
        entry = self._live(key, data)
        missing = self._tags_to_fetch(key, entry, hint, records)
        if missing:
            records.update(await self._arecords(missing))
        return self._settle(key, entry, records, count)  # type: ignore[no-any-return]

    def _records(self, tag_keys: Sequence[str]) -> dict[str, int | None]:
        replies = self._client.get_many(tag_keys, primary=True)
        return dict(zip(tag_keys, map(record_version, replies)))

    async def _arecords(self, tag_keys: Sequence[str]) -> dict[str, int | None]:
        replies = await self._client.aget_many(tag_keys, primary=True)
        return dict(zip(tag_keys, map(record_version, replies)))

    def _decode_batch(
        self, made: Sequence[str], keys: Sequence[Any], replies: Sequence[bytes | None]
    ) -> tuple[dict[Any, Any], list[tuple[str, Any, EntryMeta]]]:
        """Replies as ``{caller's key: value}``, plus the tagged ones to check. Hot: one
        loop, and plain strings decoded inline without a call."""
        codec = self.codec
        decode = codec.decode_entry
        # With encryption on, a plain-str payload was not written by us: only the codec
        # may judge it (it refuses unencrypted entries).
        plain = PLAIN_STR_HEADER if codec.encryptor is None else -1
        found: dict[Any, Any] = {}
        tagged: list[tuple[str, Any, EntryMeta]] = []
        now = 0.0
        for key, original, data in zip(made, keys, replies):
            if data is None:
                continue
            if data[0] == plain:
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
            if meta is not None:
                if meta.expires and meta.expires <= (now or (now := time.time())):
                    continue
                if meta.tags:
                    tagged.append((key, original, meta))
            found[original] = value
        return found, tagged

    def _batch_records(
        self, tagged: list[tuple[str, Any, EntryMeta]], records: dict[str, int | None]
    ) -> list[str]:
        """Learn the tagged entries' hints; the tag records they need not yet read."""
        learn = self._tag_hints.learn
        needed: dict[str, None] = {}
        for key, _, meta in tagged:  # one loop: hot for batches of rows (one tag each)
            tags = meta.tags
            names = (tags[0][0],) if len(tags) == 1 else tuple(map(_first, tags))
            learn(key, names)
            for name in names:
                if name not in records:
                    needed[name] = None
        return list(needed)

    def _drop_stale(
        self,
        found: dict[Any, Any],
        tagged: list[tuple[str, Any, EntryMeta]],
        records: Mapping[str, int | None],
    ) -> None:
        for _, original, meta in tagged:
            if is_stale(meta.tags, records):
                found.pop(original, None)
                self._stats.stale_by_tag += 1

    @staticmethod
    def _split(made: list[str], hinted: list[str], replies: list[Any]) -> dict[str, int | None]:
        """The hinted tag records fetched after the values in one read."""
        return dict(zip(hinted, map(record_version, replies[len(made) :])))

    # -- writing entries --------------------------------------------------------------

    def _meta_for(self, tags: Iterable[TagLike] | TagLike | None) -> EntryMeta | None:
        keys = self.tag_keys(tags) if tags is not None else ()
        if not keys:
            return None
        return self.tagged_meta(keys, self._client.tag_versions(keys, True, self._tag_exp()))

    async def _ameta_for(self, tags: Iterable[TagLike] | TagLike | None) -> EntryMeta | None:
        keys = self.tag_keys(tags) if tags is not None else ()
        if not keys:
            return None
        versions = await self._client.atag_versions(keys, True, self._tag_exp())
        return self.tagged_meta(keys, versions)

    def _tag_exp(self) -> Any:
        return self._seconds_expiry(self.tag_timeout)

    def _tags_of(self, data: bytes) -> EntryMeta | None:
        """The metadata of a stored payload if it names tags; None for anything else
        (untagged, a raw integer, a lock token, or bytes we cannot read: never replaced)."""
        try:
            meta = self.codec.read_meta(data)
        except CacheDecodeError:
            return None
        return meta if meta is not None and meta.tags else None

    def _add_unless_live(self, key: str, data: bytes, exp: Any) -> bool:
        """``add`` that also replaces an entry its tags made stale (it reads as absent)."""
        client = self._client
        if client.add(key, data, exp):
            return True
        old, token = client.gets(key)
        if old is None:  # expired meanwhile
            return client.add(key, data, exp)
        meta = self._tags_of(old)
        if meta is None or not is_stale(meta.tags, self._records(tag_keys_of((meta,)))):
            return False
        return client.cas(key, data, token, exp)

    async def _aadd_unless_live(self, key: str, data: bytes, exp: Any) -> bool:
        client = self._client
        if await client.aadd(key, data, exp):
            return True
        old, token = await client.agets(key)
        if old is None:
            return await client.aadd(key, data, exp)
        meta = self._tags_of(old)
        if meta is None or not is_stale(meta.tags, await self._arecords(tag_keys_of((meta,)))):
            return False
        return await client.acas(key, data, token, exp)

    def _set_many_result(
        self, originals: list[Any], made: list[str], failed: list[str], stored: int
    ) -> list[Any]:
        """Django's set_many result: the caller's keys that were not stored (logged)."""
        self._stats.sets += stored - len(failed)
        if not failed:
            return []
        logger.warning("%r: set_many stored %d of %d keys", self, stored - len(failed), stored)
        owners = dict(zip(made, originals))
        return [owners[key] for key in failed]
