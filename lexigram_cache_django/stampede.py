"""Stampede protection for ``get_or_set``: compute a missing value once, not once per caller.

Django's ``get_or_set`` runs the callable in every caller that misses, so a hot key that
expires under load is computed by every request at once. Here:

* **in a process**, the first caller of a key computes and every other caller waits for
  its result (threads wait on an event; asyncio tasks await one shared, shielded task, so
  a cancelled waiter never cancels the computation);
* **across processes**, the computing caller first takes a short lock with the backend's
  own add-if-absent (Redis ``SET NX PX``, memcached ``add``). A caller that cannot get it
  polls for the value with backoff until ``wait_timeout``, then computes itself rather
  than fail. A crashed computer's lock simply expires after ``lock_timeout``;
* **before expiry**, XFetch (Vattani et al., VLDB 2015) lets one caller recompute early
  with a probability that rises as expiry nears (``now - delta * beta * ln(rand) >=
  expiry``, delta = how long the value took to compute), while the others keep the
  current value. Entries written here carry delta and expiry in their metadata, in the
  same payload, so reading them costs no extra round trip.

If the computation raises, every waiting caller gets the exception and nothing is cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH

from .codec import EntryMeta
from .locks import new_token
from .protocols import StampedeStore

logger = logging.getLogger("lexigram_cache_django")

#: Poll interval bounds (seconds) while another process computes a value.
_POLL_FIRST = 0.002
_POLL_MAX = 0.05


@dataclass(frozen=True, slots=True)
class StampedeOptions:
    """Per-alias settings, from ``OPTIONS`` (per-call keyword arguments override them)."""

    #: Seconds the cross-process compute lock lives (a crashed computer's lock expires).
    lock_timeout: float = 10.0
    #: Seconds a caller waits for another's computation before computing itself.
    wait_timeout: float = 10.0
    #: XFetch's beta: > 1 refreshes earlier, 0 turns early refresh off.
    beta: float = 1.0
    #: Expiries spread by +- this fraction, so keys written together expire apart.
    jitter: float = 0.0

    def override(
        self,
        beta: float | None,
        lock_timeout: float | None,
        wait_timeout: float | None,
        early_refresh: bool,
    ) -> StampedeOptions:
        if beta is None and lock_timeout is None and wait_timeout is None and early_refresh:
            return self
        return StampedeOptions(
            lock_timeout=self.lock_timeout if lock_timeout is None else lock_timeout,
            wait_timeout=self.wait_timeout if wait_timeout is None else wait_timeout,
            beta=0.0 if not early_refresh else self.beta if beta is None else beta,
            jitter=self.jitter,
        )


def aux_key(key: str, suffix: str) -> str:
    """A companion key of ``key`` (its lock), kept within memcached's 250 characters."""
    aux = f"{key}:{suffix}"
    if len(aux) > MEMCACHE_MAX_KEY_LENGTH:
        aux = f"lexigram:{hashlib.sha256(aux.encode()).hexdigest()}:{suffix}"
    return aux


def jittered(ttl: float | None, jitter: float) -> float | None:
    """Spread expiries by +-``jitter`` (a fraction) so keys written together expire apart."""
    if ttl is None or ttl <= 0 or jitter <= 0:
        return ttl
    return ttl * random.uniform(1.0 - jitter, 1.0 + jitter)


def should_refresh_early(meta: EntryMeta | None, beta: float, now: float | None = None) -> bool:
    """XFetch: recompute before expiry with a probability rising towards it."""
    if beta <= 0 or meta is None or meta.expires <= 0 or meta.delta <= 0:
        return False
    now = time.time() if now is None else now
    # 1 - random() is in (0, 1], so the log is finite and <= 0.
    return now - meta.delta * beta * math.log(1.0 - random.random()) >= meta.expires


def as_callable(default: Any) -> Callable[[], Any]:
    """Django accepts a value or a callable as ``default``."""
    if callable(default):
        return default  # type: ignore[no-any-return]
    return lambda: default


# -- sync ------------------------------------------------------------------------------


class _Flight:
    """One in-process computation of one key, and the callers waiting for it."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


_flights: dict[str, _Flight] = {}
_flights_lock = threading.Lock()


class Job(NamedTuple):
    """One ``get_or_set`` call: what to compute, and how to store it."""

    key: str
    compute: Callable[[], Any]
    timeout: Any
    opts: StampedeOptions
    tag_keys: tuple[str, ...] = ()


def _write_plan(
    cache: StampedeStore, job: Job, value: Any, delta: float, versions: list[int | None]
) -> tuple[float | None, EntryMeta | None] | None:
    """Count a computation; the (ttl, meta) to store it with, or None if not to store."""
    cache.counters.computations += 1
    ttl = jittered(cache.ttl_seconds(job.timeout), job.opts.jitter)
    if ttl is not None and ttl <= 0:
        return None  # timeout <= 0: Django stores nothing, the caller still gets the value
    if type(value) is int and not job.tag_keys:
        # Stored raw, so incr()/decr() keep working on it (get_or_set(key, 0) then incr
        # is Django's counter idiom); such a value gives up XFetch early refresh.
        return ttl, None
    tags = cache.tagged_meta(job.tag_keys, versions).tags if job.tag_keys else ()
    return ttl, EntryMeta(tags, delta, 0.0 if ttl is None else time.time() + ttl)


def _compute(cache: StampedeStore, job: Job) -> Any:
    """Compute without storing: the server just failed, so a write would only wait too."""
    cache.counters.computations += 1
    return job.compute()


async def _acompute(cache: StampedeStore, job: Job) -> Any:
    cache.counters.computations += 1
    return await _call(job.compute)


def _compute_and_store(cache: StampedeStore, job: Job) -> Any:
    # Tag versions are read before computing: an invalidation that lands while we
    # compute makes what we store stale, instead of being lost.
    versions = cache.tag_versions(job.tag_keys, create=True) if job.tag_keys else []
    started = time.monotonic()
    value = job.compute()
    plan = _write_plan(cache, job, value, time.monotonic() - started, versions)
    if plan is not None:
        cache.set_entry(job.key, value, *plan)
    return value


def get_or_set(
    cache: StampedeStore,
    key: Any,
    default: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    opts: StampedeOptions = StampedeOptions(),
    tag_keys: tuple[str, ...] = (),
) -> Any:
    """The body of ``LexigramCache.get_or_set``."""
    job = Job(
        cache.make_and_validate_key(key, version),
        as_callable(default),
        timeout,
        opts,
        tag_keys,
    )
    entry = cache.get_entry(job.key)
    if entry is not None:
        value, meta = entry
        if should_refresh_early(meta, job.opts.beta):
            return _refresh_early(cache, job, value)
        return value
    return _compute_once(cache, job)


def _compute_once(cache: StampedeStore, job: Job) -> Any:
    flight_key = f"{cache.identity}|{job.key}"
    with _flights_lock:
        flight = _flights.get(flight_key)
        leader = flight is None
        if flight is None:
            flight = _flights[flight_key] = _Flight()
    if not leader:
        cache.counters.waits += 1
        if flight.done.wait(job.opts.wait_timeout):
            if flight.error is not None:
                raise flight.error
            return flight.value
        cache.counters.lock_timeouts += 1
        return _compute_and_store(cache, job)
    try:
        flight.value = _lead(cache, job)
        return flight.value
    except BaseException as exc:
        flight.error = exc
        raise
    finally:
        with _flights_lock:
            _flights.pop(flight_key, None)
        flight.done.set()


def _lead(cache: StampedeStore, job: Job) -> Any:
    """Compute under the cross-process lock, or wait for the process that holds it."""
    lock_key = aux_key(job.key, "lexigram-lock")
    token = new_token()
    deadline = time.monotonic() + job.opts.wait_timeout
    delay = _POLL_FIRST
    while True:
        taken = cache.lock_add(lock_key, token, job.opts.lock_timeout)
        if taken:
            try:
                entry = cache.get_entry(job.key)  # written while we waited for the lock?
                if entry is not None:
                    return entry[0]
                return _compute_and_store(cache, job)
            finally:
                cache.lock_release(lock_key, token)
        if taken is None:  # the server failed (fail-open): nobody else can be
            return _compute(cache, job)  # computing it for us, and storing would fail too
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            cache.counters.lock_timeouts += 1
            return _compute_and_store(cache, job)
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX)
        entry = cache.get_entry(job.key)
        if entry is not None:
            cache.counters.waits += 1
            return entry[0]


def _refresh_early(cache: StampedeStore, job: Job, current: Any) -> Any:
    """One caller recomputes before expiry; everyone else keeps the current value."""
    flight_key = f"{cache.identity}|{job.key}"
    with _flights_lock:
        if flight_key in _flights:
            return current
        flight = _flights[flight_key] = _Flight()
    flight.value = current
    try:
        lock_key = aux_key(job.key, "lexigram-lock")
        token = new_token()
        if not cache.lock_add(lock_key, token, job.opts.lock_timeout):
            return current
        try:
            flight.value = _compute_and_store(cache, job)
            cache.counters.early_refreshes += 1
        except Exception:
            logger.exception(
                "%r: early refresh of %r failed; kept the current value", cache, job.key
            )
        finally:
            cache.lock_release(lock_key, token)
        return flight.value
    finally:
        with _flights_lock:
            _flights.pop(flight_key, None)
        flight.done.set()


# -- async -----------------------------------------------------------------------------

_task_flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[Any]]]
_task_flights = weakref.WeakKeyDictionary()


async def _call(compute: Callable[[], Any]) -> Any:
    """Run a sync or async callable (``aget_or_set`` accepts both)."""
    result = compute()
    if inspect.isawaitable(result):
        result = await result
    return result


async def _acompute_and_store(cache: StampedeStore, job: Job) -> Any:
    versions = await cache.atag_versions(job.tag_keys, create=True) if job.tag_keys else []
    started = time.monotonic()
    value = await _call(job.compute)
    plan = _write_plan(cache, job, value, time.monotonic() - started, versions)
    if plan is not None:
        await cache.aset_entry(job.key, value, *plan)
    return value


def _task_for(key: str, start: Callable[[], Any]) -> tuple[asyncio.Task[Any], bool]:
    """The running task computing ``key`` on this loop, started by ``start()`` if none."""
    loop = asyncio.get_running_loop()
    flights = _task_flights.get(loop)
    if flights is None:
        flights = _task_flights[loop] = {}
    task = flights.get(key)
    if task is not None:
        return task, False
    task = loop.create_task(start())
    flights[key] = task

    def finished(t: asyncio.Task[Any], flights: dict[str, asyncio.Task[Any]] = flights) -> None:
        if flights.get(key) is t:
            del flights[key]
        if not t.cancelled():
            t.exception()  # retrieved: no "exception was never retrieved" noise

    task.add_done_callback(finished)
    return task, True


async def aget_or_set(
    cache: StampedeStore,
    key: Any,
    default: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    opts: StampedeOptions = StampedeOptions(),
    tag_keys: tuple[str, ...] = (),
) -> Any:
    """The body of ``LexigramCache.aget_or_set``."""
    job = Job(
        cache.make_and_validate_key(key, version),
        as_callable(default),
        timeout,
        opts,
        tag_keys,
    )
    entry = await cache.aget_entry(job.key)
    if entry is not None:
        value, meta = entry
        if should_refresh_early(meta, job.opts.beta):
            return await _arefresh_early(cache, job, value)
        return value
    task, leader = _task_for(f"{cache.identity}|{job.key}", lambda: _alead(cache, job))
    if leader:
        return await asyncio.shield(task)
    cache.counters.waits += 1
    try:
        return await asyncio.wait_for(asyncio.shield(task), job.opts.wait_timeout)
    except TimeoutError:
        if task.done():
            raise
        cache.counters.lock_timeouts += 1
        return await _acompute_and_store(cache, job)


async def _alead(cache: StampedeStore, job: Job) -> Any:
    lock_key = aux_key(job.key, "lexigram-lock")
    token = new_token()
    deadline = time.monotonic() + job.opts.wait_timeout
    delay = _POLL_FIRST
    while True:
        taken = await cache.alock_add(lock_key, token, job.opts.lock_timeout)
        if taken:
            try:
                entry = await cache.aget_entry(job.key)
                if entry is not None:
                    return entry[0]
                return await _acompute_and_store(cache, job)
            finally:
                await cache.alock_release(lock_key, token)
        if taken is None:  # the server failed: compute, don't wait, don't store
            return await _acompute(cache, job)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            cache.counters.lock_timeouts += 1
            return await _acompute_and_store(cache, job)
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX)
        entry = await cache.aget_entry(job.key)
        if entry is not None:
            cache.counters.waits += 1
            return entry[0]


async def _arefresh_early(cache: StampedeStore, job: Job, current: Any) -> Any:
    flight_key = f"{cache.identity}|{job.key}"
    flights = _task_flights.get(asyncio.get_running_loop())
    if flights is not None and flight_key in flights:
        return current

    async def refresh() -> Any:
        lock_key = aux_key(job.key, "lexigram-lock")
        token = new_token()
        if not await cache.alock_add(lock_key, token, job.opts.lock_timeout):
            return current
        try:
            value = await _acompute_and_store(cache, job)
            cache.counters.early_refreshes += 1
            return value
        except Exception:
            logger.exception(
                "%r: early refresh of %r failed; kept the current value", cache, job.key
            )
            return current
        finally:
            await cache.alock_release(lock_key, token)

    task, _ = _task_for(flight_key, refresh)
    return await asyncio.shield(task)
