"""What every lexigram backend shares: options, keys, codec, timeouts, counters, errors.

Each backend (memory, Redis, Memcached, tiered) subclasses :class:`LexigramCache` and
implements Django's cache API directly, the way Django's own backends do, using the
helpers here. Features that work over any backend (stampede-protected ``get_or_set``,
tags, locks) are built on the same helpers in their own modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.dispatch import Signal

from .. import conf, signals, stampede
from ..codec import Codec, EntryMeta
from ..conf import mask_location
from ..exceptions import CacheDecodeError, CacheIntegrityError
from ..failfast import one_operation
from ..locks import CacheLock
from ..metrics import CacheStats, stats_for
from ..signals import cache_hit, cache_miss
from ..stampede import StampedeOptions
from ..tags import (
    TagHints,
    TagLike,
    hints_for,
)
from .keymemo import MemoizedKeys
from .tagging import TagOperations

logger = logging.getLogger("lexigram_cache_django")


class LexigramCache(MemoizedKeys, TagOperations):
    """Base class of every lexigram backend.

    Subclasses set ``backend_name`` and implement Django's API. This class gives them:
    memoized key making (the same keys and warnings as Django's, without re-validating a
    hot key on every call), the alias's codec, Django's timeout rules, per-alias
    counters, and one place that decides what a server error or a bad payload becomes.
    """

    backend_name: ClassVar[str] = "base"

    def __init__(self, location: Any, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._location = location
        self._params = params  # as Django passed them: what alias_name looks up
        self._options: dict[str, Any] = dict(params.get("OPTIONS") or {})
        self.fail_silently: bool = self.option("FAIL_SILENTLY")
        self._key_memo = {}
        self._default_key_memo = {}
        self._stats: CacheStats = stats_for(self.identity)
        self._tag_hints: TagHints = hints_for(self.identity)
        self._codec_instance: Codec | None = None

    if TYPE_CHECKING:
        # Every backend implements these with ``tags=``; declared here so code typed
        # against LexigramCache (or a backend chosen at run time) type-checks.
        def set(
            self,
            key: Any,
            value: Any,
            timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None,
            *,
            tags: Iterable[TagLike] | TagLike | None = None,
        ) -> Any: ...

        def add(
            self,
            key: Any,
            value: Any,
            timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None,
            *,
            tags: Iterable[TagLike] | TagLike | None = None,
        ) -> bool: ...

        def set_many(
            self,
            data: Mapping[Any, Any],
            timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None,
            *,
            tags: Iterable[TagLike] | TagLike | None = None,
        ) -> list[Any]: ...

        async def aset(
            self,
            key: Any,
            value: Any,
            timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None,
            *,
            tags: Iterable[TagLike] | TagLike | None = None,
        ) -> Any: ...

        async def aadd(
            self,
            key: Any,
            value: Any,
            timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None,
            *,
            tags: Iterable[TagLike] | TagLike | None = None,
        ) -> bool: ...

        async def aset_many(
            self,
            data: Mapping[Any, Any],
            timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None,
            *,
            tags: Iterable[TagLike] | TagLike | None = None,
        ) -> list[Any]: ...

    def option(self, name: str) -> Any:
        """An OPTIONS value checked against its declaration in :mod:`~..conf` (or its
        default for this backend); a bad one raises CacheConfigurationError."""
        backend = self.backend_name if self.backend_name in conf.BACKENDS else None
        return conf.value(self._options, name, backend)

    # -- identity ------------------------------------------------------------------

    @property
    def identity(self) -> str:
        """What makes two backend objects the same cache (shared counters)."""
        cls = type(self)
        return (
            f"{cls.__module__}.{cls.__qualname__}|{self._location}|{self.key_prefix}|{self.version}"
        )

    @property
    def counters(self) -> CacheStats:
        """This alias's counters, shared by every backend object of it (see ``stats()``)."""
        return self._stats

    @property
    def location_display(self) -> str:
        """LOCATION with any password masked."""
        return mask_location(self._location)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location_display!r}>"

    def count_batch(
        self,
        made: Sequence[str],
        hits: int,
        keys: Sequence[Any] = (),
        found: Mapping[Any, Any] | None = None,
    ) -> None:
        """Hits and misses of a batch read: each distinct key once (a batch may name one
        twice), the same on every backend. With the caller's ``keys`` and what was
        ``found``, also the per-key signals, while a receiver listens."""
        requested = len(made) if hits == len(made) else len(set(made))
        self._stats.hits += hits
        self._stats.misses += max(requested - hits, 0)
        if (cache_hit.receivers or cache_miss.receivers) and found is not None:
            self.send_batch_signals(made, keys, found)

    # -- signals (sent only while a receiver listens: see ..signals) ---------------

    @cached_property
    def alias_name(self) -> str | None:
        """This backend's alias in ``settings.CACHES`` (None if built by hand)."""
        return signals.alias_for(type(self), self._location, self._params)

    def send_signal(self, signal: Signal, **kwargs: Any) -> None:
        """Send ``signal`` from this alias (``cache``, ``alias`` and ``kwargs``)."""
        signal.send(type(self), cache=self, alias=self.alias_name, **kwargs)

    def send_batch_signals(
        self, made: Sequence[str], keys: Sequence[Any], found: Mapping[Any, Any]
    ) -> None:
        """One ``cache_hit`` or ``cache_miss`` per distinct key of a batch read."""
        for key, hit in signals.batch_outcomes(made, keys, found):
            self.send_signal(cache_hit if hit else cache_miss, key=key)

    # -- timeouts ------------------------------------------------------------------

    def ttl_seconds(self, timeout: Any = DEFAULT_TIMEOUT) -> float | None:
        """Relative lifetime for ``timeout`` under Django's rules.

        ``None``: never expires. A value <= 0: already expired (the caller deletes
        instead of writing). Otherwise seconds, as a float.
        """
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        return float(timeout) if timeout > 0 else 0.0

    def expires_at(self, timeout: Any = DEFAULT_TIMEOUT) -> float | None:
        """Absolute UNIX expiry for ``timeout`` (None: never; <= now: expired)."""
        ttl = self.ttl_seconds(timeout)
        if ttl is None:
            return None
        return time.time() + ttl if ttl > 0 else -1.0

    # -- codec ---------------------------------------------------------------------

    @property
    def codec(self) -> Codec:
        """The alias's codec, built on first use (settings must be configured by then)."""
        codec = self._codec_instance
        if codec is None:
            codec = self._codec_instance = build_codec(self._options)
        return codec

    # -- errors --------------------------------------------------------------------

    def discard_undecodable(self, key: str, exc: CacheDecodeError) -> None:
        """A stored payload could not be read: count it, log it once, treat it as a miss."""
        self._stats.errors += 1
        if isinstance(exc, CacheIntegrityError):
            self._stats.integrity_errors += 1
        logger.warning("%r: discarded unreadable entry %r: %s", self, key, exc)

    # -- stampede-protected get_or_set and locks ------------------------------------

    @cached_property
    def stampede_options(self) -> StampedeOptions:
        """STAMPEDE_LOCK_TIMEOUT, STAMPEDE_WAIT_TIMEOUT, XFETCH_BETA, TTL_JITTER."""
        return StampedeOptions(
            lock_timeout=self.option("STAMPEDE_LOCK_TIMEOUT"),
            wait_timeout=self.option("STAMPEDE_WAIT_TIMEOUT"),
            beta=self.option("XFETCH_BETA"),
            jitter=self.option("TTL_JITTER"),
        )

    def get_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        early_refresh: bool = True,
        beta: float | None = None,
        lock_timeout: float | None = None,
        wait_timeout: float | None = None,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> Any:
        """Django's ``get_or_set``, computing a missing value once across threads and
        processes, with XFetch early refresh (see :mod:`lexigram_cache_django.stampede`)."""
        opts = self.stampede_options.override(beta, lock_timeout, wait_timeout, early_refresh)
        with one_operation():  # read, lock, write: a server that failed is not asked again
            return stampede.get_or_set(
                self, key, default, timeout, version, opts, self.tag_keys(tags)
            )

    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        early_refresh: bool = True,
        beta: float | None = None,
        lock_timeout: float | None = None,
        wait_timeout: float | None = None,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> Any:
        """Async ``get_or_set``; ``default`` may be a value, a callable or an async callable."""
        opts = self.stampede_options.override(beta, lock_timeout, wait_timeout, early_refresh)
        with one_operation():
            return await stampede.aget_or_set(
                self, key, default, timeout, version, opts, self.tag_keys(tags)
            )

    def lock(
        self,
        name: str,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        auto_renewal: bool = False,
        version: int | None = None,
        thread_local: bool = True,
    ) -> CacheLock:
        """A lock shared by every process using this cache (names follow redis-py's Lock).

        Use as ``with cache.lock("name", timeout=10):`` or ``async with``. Takes
        django-redis's ``lock()`` keywords (``timeout``, ``sleep``, ``blocking``,
        ``blocking_timeout``, ``thread_local``, ``version``) besides ``auto_renewal``.
        """
        return CacheLock(
            self,
            name,
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            auto_renewal=auto_renewal,
            version=version,
            thread_local=thread_local,
        )

    # -- versions (tags: see tagging.TagOperations) ------------------------------------

    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Django's ``incr_version``, keeping the entry's tags (Django's re-``set`` drops them)."""
        with one_operation():
            return self._incr_version(key, delta, version)

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        with one_operation():
            return await self._aincr_version(key, delta, version)

    def _incr_version(self, key: Any, delta: int, version: int | None) -> int:
        version = self.version if version is None else version
        old = self.make_and_validate_key(key, version)
        entry = self.get_entry(old)
        if entry is None:
            raise ValueError(f"Key '{key}' not found")
        value, meta = entry
        ttl = self.ttl_seconds(DEFAULT_TIMEOUT)  # as Django: the moved entry gets the default
        if meta is not None:
            expires = 0.0 if ttl is None else time.time() + ttl
            meta = EntryMeta(meta.tags, meta.delta, expires)
        self.set_entry(self.make_and_validate_key(key, version + delta), value, ttl, meta)
        self.delete(key, version=version)
        return version + delta

    async def _aincr_version(self, key: Any, delta: int, version: int | None) -> int:
        version = self.version if version is None else version
        old = self.make_and_validate_key(key, version)
        entry = await self.aget_entry(old)
        if entry is None:
            raise ValueError(f"Key '{key}' not found")
        value, meta = entry
        ttl = self.ttl_seconds(DEFAULT_TIMEOUT)
        if meta is not None:
            meta = EntryMeta(meta.tags, meta.delta, 0.0 if ttl is None else time.time() + ttl)
        await self.aset_entry(self.make_and_validate_key(key, version + delta), value, ttl, meta)
        await self.adelete(key, version=version)
        return version + delta

    async def adecr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await self.aincr_version(key, -delta, version)

    # -- primitives for the features over backends ----------------------------------
    #
    # Stampede protection, locks and tags need a few operations Django's API does not
    # have. Keys here are final (made and validated). Each backend implements the sync
    # ones; the async twins default to calling them, which is right for memory and is
    # overridden by the networked backends.

    def get_entry(self, key: str) -> tuple[Any, EntryMeta | None] | None:
        """``(value, meta)`` for a live entry, or None on a miss."""
        raise NotImplementedError

    def set_entry(self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None) -> None:
        """Write ``value`` with its metadata for ``ttl`` seconds (None: no expiry)."""
        raise NotImplementedError

    def lock_add(self, key: str, token: str, ttl: float | None) -> bool | None:
        """Store ``token`` under ``key`` for ``ttl`` seconds (None: no expiry) only if absent;
        None if the server could not be asked."""
        raise NotImplementedError

    def lock_release(self, key: str, token: str) -> bool:
        """Delete ``key`` only if it still holds ``token``; True if it did."""
        raise NotImplementedError

    def lock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        """Reset ``key``'s lifetime to ``ttl`` only if it still holds ``token``."""
        raise NotImplementedError

    def lock_owner(self, key: str) -> str | None:
        """The token stored under ``key``, or None."""
        raise NotImplementedError

    def tag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        """Current versions of tag records; with ``create``, missing ones are created."""
        raise NotImplementedError

    def invalidate_tag_keys(self, keys: Sequence[str]) -> None:
        """Give each tag record a new version."""
        raise NotImplementedError

    async def atag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        return self.tag_versions(keys, create)

    async def ainvalidate_tag_keys(self, keys: Sequence[str]) -> None:
        self.invalidate_tag_keys(keys)

    async def aget_entry(self, key: str) -> tuple[Any, EntryMeta | None] | None:
        return self.get_entry(key)

    async def aset_entry(
        self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None
    ) -> None:
        self.set_entry(key, value, ttl, meta)

    async def alock_add(self, key: str, token: str, ttl: float | None) -> bool | None:
        return self.lock_add(key, token, ttl)

    async def alock_release(self, key: str, token: str) -> bool:
        return self.lock_release(key, token)

    async def alock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        return self.lock_extend(key, token, ttl)

    async def alock_owner(self, key: str) -> str | None:
        return self.lock_owner(key)

    # -- metrics -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters of this alias plus what the backend knows about its store."""
        data: dict[str, Any] = {
            "backend": self.backend_name,
            "location": self.location_display,
        }
        data.update(self._stats.snapshot())
        data["hit_rate"] = self._stats.hit_rate()
        data.update(self.store_stats())
        return data

    def breakers(self) -> list[Any]:
        """The circuit breakers of this alias's servers (none in process)."""
        return []

    def health(self) -> dict[str, Any]:
        """``{"status": "up" | "degraded" | "down", "servers": [...]}``: each server's
        breaker state, last error and ping latency (an in-process store is always up)."""
        return {"backend": self.backend_name, "status": "up", "servers": []}

    def store_stats(self) -> dict[str, Any]:
        """Backend-specific figures (entries, memory, server info). Override."""
        return {}

    def reset_stats(self) -> None:
        self._stats.reset()


def build_codec(options: Mapping[str, Any]) -> Codec:
    """The codec ``OPTIONS`` describe (see :meth:`Codec.from_options`)."""
    return Codec.from_options(options)
