"""Stale-while-revalidate (RFC 5861) for ``@cached`` and ``cache_page``.

An entry is *fresh* for ``timeout`` seconds, then *stale* for ``stale_while_revalidate``
more: a stale read returns the stored value at once and starts one refresh in the
background; after both windows it is a miss (computed by the reader, single flight).

How an entry knows it is stale: it is stored for ``timeout + stale_while_revalidate``
seconds as the small tuple ``(marker, fresh_until, value)`` (see :func:`wrap`). The
codec's ``EntryMeta`` is left alone: its ``expires`` is the end of the whole entry, which
every backend already honours, and the tuple works on Django's own backends too.

One refresh per key per stale window, across processes: the first reader to see a stale
entry takes a claim ``<key>:lexigram-swr:<fresh_until>`` with the backend's add-if-absent
(the lock primitive under ``cache.lock``). The claim names the *generation* it refreshes and
is kept after a successful refresh (it expires by itself), so a late reader of the old
generation can never start a second refresh; a failed refresh releases it, so a later
reader retries. Within a process a memo lets only the first thread even try the claim: the
other readers pay a dict lookup, nothing more.

Claims and refreshes run on a small pool of background threads, never in the reader.
``refresh="celery"`` enqueues the task ``lexigram_cache_django.refresh`` (registered by
:mod:`lexigram_cache_django.tasks`, the package's only Celery import); if enqueueing fails
(broker down, arguments the serializer refuses) the refresh runs in the thread instead, the
failure is counted in :data:`counters` and logged once until enqueueing works again.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.db import connections

from .backends.base import LexigramCache
from .compute import Tags
from .locks import new_token
from .stampede import aux_key

logger = logging.getLogger("lexigram_cache_django")

_MARK = "lexigram-swr-1"
REFRESH_MODES = ("thread", "celery")
#: Seconds before a process asks again for a claim it saw held by someone else.
_RECHECK = 1.0
_MEMO_MAX = 10_000


@dataclass
class RefreshCounters:
    """What the background refreshes did in this process (read by tests and stats)."""

    claimed: int = 0
    refreshed: int = 0
    failed: int = 0
    enqueued: int = 0
    enqueue_failures: int = 0

    def snapshot(self) -> dict[str, int]:
        return dict(self.__dict__)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


counters = RefreshCounters()


def wrap(value: Any, fresh_for: float) -> tuple[str, float, Any]:
    """What is stored: the value and the UNIX time it stops being fresh."""
    return (_MARK, time.time() + fresh_for, value)


def unwrap(stored: Any) -> tuple[Any, float] | None:
    """(value, fresh_until) of a stored wrapper, None for anything else."""
    if type(stored) is tuple and len(stored) == 3 and stored[0] == _MARK:
        return stored[2], stored[1]
    return None


def value_of(stored: Any) -> Any:
    """The value inside a wrapper, or ``stored`` itself (an entry written without SWR)."""
    unwrapped = unwrap(stored)
    return stored if unwrapped is None else unwrapped[0]


# -- settings ----------------------------------------------------------------------------


def setting(name: str, default: Any) -> Any:
    """``LEXIGRAM_CACHE[name]``, read when needed (settings may change in tests)."""
    from django.conf import settings

    return (getattr(settings, "LEXIGRAM_CACHE", None) or {}).get(name, default)


class Refresh(NamedTuple):
    """How to refresh one entry: in this process (``run``) or by a task (``message``)."""

    alias: str
    run: Callable[[], Any]
    #: JSON-able arguments of ``lexigram_cache_django.refresh``; None: threads only.
    message: dict[str, Any] | None


@dataclass(frozen=True)
class Policy:
    """``timeout`` fresh seconds (or the alias's default), then ``stale`` stale seconds."""

    timeout: Any
    stale: float
    #: "thread" or "celery"; None: ``LEXIGRAM_CACHE["SWR_REFRESH"]`` (default "thread").
    refresh: str | None

    def fresh_seconds(self, cache: BaseCache) -> float:
        timeout = cache.default_timeout if self.timeout is DEFAULT_TIMEOUT else self.timeout
        if timeout is None:
            raise ValueError("stale_while_revalidate needs a finite timeout")
        return float(timeout)

    def read(
        self,
        cache: BaseCache,
        key: str,
        compute: Callable[[], Any],
        refresh: Callable[[Any], Refresh],
        version: int | None = None,
        tags: Tags = None,
    ) -> Any:
        """The value of ``key``: computed on a miss, revalidated in the background if stale."""
        fresh = self.fresh_seconds(cache)
        if isinstance(cache, LexigramCache):
            stored = cache.get_or_set(
                key,
                lambda: wrap(compute(), fresh),
                fresh + self.stale,
                version,
                early_refresh=False,  # the stale window does XFetch's job, off the reader
                tags=tags,
            )
        else:
            stored = cache.get(key, _MISSING, version=version)
            if stored is _MISSING:
                stored = wrap(compute(), fresh)
                cache.set(key, stored, fresh + self.stale, version=version)
        return self._served(cache, key, version, stored, refresh)

    async def aread(
        self,
        cache: BaseCache,
        key: str,
        compute: Callable[[], Awaitable[Any]],
        refresh: Callable[[Any], Refresh],
        version: int | None = None,
        tags: Tags = None,
    ) -> Any:
        """Async :meth:`read`; ``compute`` is an async callable."""
        fresh = self.fresh_seconds(cache)

        async def wrapped() -> Any:
            return wrap(await compute(), fresh)

        if isinstance(cache, LexigramCache):
            stored = await cache.aget_or_set(
                key, wrapped, fresh + self.stale, version, early_refresh=False, tags=tags
            )
        else:
            stored = await cache.aget(key, _MISSING, version=version)
            if stored is _MISSING:
                stored = await wrapped()
                await cache.aset(key, stored, fresh + self.stale, version=version)
        return self._served(cache, key, version, stored, refresh)

    def _served(
        self,
        cache: BaseCache,
        key: str,
        version: int | None,
        stored: Any,
        refresh: Callable[[Any], Refresh],
    ) -> Any:
        unwrapped = unwrap(stored)
        if unwrapped is None:
            return stored
        value, fresh_until = unwrapped
        if time.time() >= fresh_until:
            revalidate(cache, key, version, fresh_until, self, lambda: refresh(value))
        return value

    def store(
        self,
        cache: BaseCache,
        key: str,
        compute: Callable[[], Any],
        version: int | None = None,
        tags: Tags = None,
    ) -> Any:
        """Recompute and store now, fresh again (the refresh itself)."""
        fresh = self.fresh_seconds(cache)
        return store_now(cache, key, compute, fresh + self.stale, version, tags, fresh)


def store_now(
    cache: BaseCache,
    key: str,
    compute: Callable[[], Any],
    timeout: Any,
    version: int | None = None,
    tags: Tags = None,
    fresh: float | None = None,
) -> Any:
    """Compute and store ``key`` whatever it holds (a refresh, a warm-up), wrapped as
    fresh for ``fresh`` seconds if given. Tag versions are read before computing, as in
    ``get_or_set``: an invalidation during the computation makes the result stale instead
    of being lost."""
    if not isinstance(cache, LexigramCache):
        value = compute()
        cache.set(key, value if fresh is None else wrap(value, fresh), timeout, version=version)
        return value
    tag_keys = cache.tag_keys(tags)
    versions = cache.tag_versions(tag_keys, create=True) if tag_keys else []
    value = compute()
    ttl = cache.ttl_seconds(timeout)
    if ttl is None or ttl > 0:
        meta = cache.tagged_meta(tag_keys, versions) if tag_keys else None
        stored = value if fresh is None else wrap(value, fresh)
        cache.set_entry(cache.make_and_validate_key(key, version), stored, ttl, meta)
    return value


_MISSING = object()


def policy(
    timeout: Any, stale_while_revalidate: float | None, refresh: str | None
) -> Policy | None:
    """The policy of a decorator's arguments, or None without ``stale_while_revalidate``."""
    if not stale_while_revalidate:
        if refresh is not None:
            raise ValueError("refresh= needs stale_while_revalidate=")
        return None
    if stale_while_revalidate < 0:
        raise ValueError("stale_while_revalidate must be positive")
    if timeout is None:
        raise ValueError("stale_while_revalidate needs a finite timeout, not None")
    if refresh is not None and refresh not in REFRESH_MODES:
        raise ValueError(f"refresh must be one of {REFRESH_MODES}, not {refresh!r}")
    return Policy(timeout, float(stale_while_revalidate), refresh)


# -- claims and dispatch -------------------------------------------------------------------

_memo: dict[str, float] = {}
_memo_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                workers = int(setting("SWR_THREADS", 4))
                _pool = ThreadPoolExecutor(workers, thread_name_prefix="lexigram-swr")
    return _pool


def _after_fork_in_child() -> None:
    """A forked child (gunicorn ``--preload``) has none of its parent's pool threads: a
    refresh handed to them would never run, and the memo would keep it from being asked
    again for a while. The child starts a pool of its own on first use."""
    global _pool, _pool_lock, _memo_lock
    _pool, _pool_lock, _memo_lock = None, threading.Lock(), threading.Lock()
    _memo.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def revalidate(
    cache: BaseCache,
    key: str,
    version: int | None,
    fresh_until: float,
    policy: Policy,
    refresh: Callable[[], Refresh],
) -> None:
    """Start the one refresh of this stale generation, unless this process already tried."""
    made = cache.make_and_validate_key(key, version)
    claim = aux_key(made, f"lexigram-swr:{fresh_until!r}")
    memo_key = f"{cache.identity}|{claim}" if isinstance(cache, LexigramCache) else claim
    now = time.monotonic()
    with _memo_lock:
        if _memo.get(memo_key, 0.0) > now:
            return
        if len(_memo) >= _MEMO_MAX:
            _memo.clear()
        _memo[memo_key] = now + _RECHECK
    job = refresh()
    # The reader's Celery app (thread-local in Celery), for the pool thread to publish with.
    context = _capture() if _capture is not None else None
    _executor().submit(_claim_and_refresh, job, claim, policy, memo_key, context)


def _claim_ttl(policy: Policy) -> float:
    return max(1.0, min(policy.stale, float(setting("SWR_CLAIM_TIMEOUT", 60))))


def _claim_and_refresh(
    job: Refresh, claim: str, policy: Policy, memo_key: str, context: Any = None
) -> None:
    try:
        cache = caches[job.alias]
        token = new_token()
        if isinstance(cache, LexigramCache):
            taken = cache.lock_add(claim, token, _claim_ttl(policy))
        else:
            taken = cache.add(claim, token, _claim_ttl(policy))
        if not taken:  # refreshed by someone else, or the server is down (already logged)
            return
        counters.claimed += 1
        mode = policy.refresh or setting("SWR_REFRESH", "thread")
        if mode == "celery" and job.message is not None:
            message = {**job.message, "alias": job.alias, "claim": claim, "token": token}
            if _enqueue(message, context):
                return
        if not run_refresh(job.alias, job.run, claim, token):
            with _memo_lock:  # the claim was released: this process may try again
                _memo.pop(memo_key, None)
    except Exception:
        logger.exception("stale-while-revalidate: refresh of %s failed", claim)
    finally:
        connections.close_all()  # this pool thread's own connections


def run_refresh(alias: str, run: Callable[[], Any], claim: str | None, token: str | None) -> bool:
    """Run one refresh; on failure release its claim, so a later reader tries again."""
    try:
        result = run()
        if inspect.isawaitable(result):
            asyncio.run(_awaited(result))
    except Exception:
        counters.failed += 1
        logger.exception("stale-while-revalidate: refresh in cache %r failed", alias)
        if claim is not None and token is not None:
            release(alias, claim, token)
        return False
    counters.refreshed += 1
    return True


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


def release(alias: str, claim: str, token: str) -> None:
    cache = caches[alias]
    if isinstance(cache, LexigramCache):
        cache.lock_release(claim, token)
    elif cache.get(claim) == token:
        cache.delete(claim)


# -- Celery, without importing it ----------------------------------------------------------

Enqueuer = Callable[[dict[str, Any], Any], None]
_enqueuer: Enqueuer | None = None
_capture: Callable[[], Any] | None = None
_broken = False


def set_enqueuer(enqueue: Enqueuer | None, capture: Callable[[], Any] | None = None) -> None:
    """Called by :mod:`lexigram_cache_django.tasks` on import: ``enqueue(message, context)``
    publishes the refresh task; ``capture()``, called in the reader's thread, returns the
    context (Celery's current app) that the pool thread publishes with."""
    global _enqueuer, _capture
    _enqueuer, _capture = enqueue, capture


def load_tasks() -> bool:
    """Import the tasks module by name (the one module that imports Celery), if possible.

    By name, not by an import statement: nothing in the package may import a leaf, and
    Celery stays an optional dependency.
    """
    try:
        importlib.import_module(f"{__package__}.tasks")
    except ImportError as exc:
        logger.debug("lexigram_cache_django.tasks unavailable: %s", exc)
        return False
    return True


def _enqueue(message: dict[str, Any], context: Any = None) -> bool:
    global _broken
    try:
        if _enqueuer is None and not load_tasks():
            raise RuntimeError("Celery is not installed")
        assert _enqueuer is not None
        _enqueuer(message, context)
    except Exception as exc:
        counters.enqueue_failures += 1
        if not _broken:
            _broken = True
            logger.warning(
                "stale-while-revalidate: enqueueing a refresh failed (%s: %s); refreshing "
                "in a thread until enqueueing works again",
                type(exc).__name__,
                exc,
            )
        return False
    counters.enqueued += 1
    if _broken:
        _broken = False
        logger.info("stale-while-revalidate: enqueueing refreshes works again")
    return True
