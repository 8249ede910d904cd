"""Locks shared by every process that uses a cache: ``cache.lock(name)``.

A lock is a key written with the backend's add-if-absent (Redis ``SET NX PX``, memcached
``add``, the memory store for one process) holding a random owner token. Only the owner
can release or extend it (Lua compare-and-delete on Redis, ``gets``/``cas`` on memcached),
so a holder that outlived its timeout cannot release a lock someone else now holds.
Waiting sleeps with exponential backoff capped at ``sleep``: no busy spinning.

Names follow redis-py's ``Lock``: ``timeout``, ``sleep``, ``blocking``,
``blocking_timeout``, ``acquire``, ``release``, ``reacquire``, ``extend``, ``locked``,
``owned``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
import time
from types import TracebackType

from .exceptions import LexigramCacheError
from .protocols import LockStore

logger = logging.getLogger("lexigram_cache_django")

_FIRST_SLEEP = 0.001


def new_token() -> str:
    """An owner token for a lock: unique, and says which process took it."""
    return f"{os.getpid()}:{secrets.token_hex(8)}"


class LockError(LexigramCacheError):
    """A lock could not be acquired, or was released while not held."""


class LockNotOwnedError(LockError):
    """Release or extend of a lock that expired or that another owner now holds."""


class CacheLock:
    """A named lock in a cache; a sync and an async context manager.

    ``timeout``: seconds the lock lives unless released or renewed (None: until released;
    risky if the holder dies). ``auto_renewal``: while held, reset the lifetime to
    ``timeout`` every ``timeout / 3`` seconds, so a long critical section keeps the lock
    and a crashed holder still loses it within ``timeout``. ``thread_local`` (redis-py's
    default, True): the owner token is kept per thread, so a lock object shared by threads
    is held only by the thread that acquired it; False lets one thread acquire and
    another release.
    """

    def __init__(
        self,
        cache: LockStore,
        name: str,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        auto_renewal: bool = False,
        version: int | None = None,
        thread_local: bool = True,
    ) -> None:
        if auto_renewal and not timeout:
            raise ValueError("auto_renewal needs a timeout to renew")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (or None for no expiry)")
        self.cache = cache
        self.name = name
        self.key = cache.make_and_validate_key(f"lock:{name}", version)
        self.timeout = timeout
        self.sleep = sleep
        self.blocking = blocking
        self.blocking_timeout = blocking_timeout
        self.auto_renewal = auto_renewal
        self.thread_local = thread_local
        self._local: threading.local | None = threading.local() if thread_local else None
        self._token: str | None = None
        self._stop_renewal: threading.Event | None = None
        self._renewal_task: asyncio.Task[None] | None = None

    @property
    def token(self) -> str | None:
        """This owner's token while held (per thread with ``thread_local``), else None."""
        if self._local is None:
            return self._token
        token: str | None = getattr(self._local, "token", None)
        return token

    @token.setter
    def token(self, value: str | None) -> None:
        if self._local is None:
            self._token = value
        else:
            self._local.token = value

    def __repr__(self) -> str:
        return f"<CacheLock {self.name!r} on {self.cache!r}>"

    def _deadline(self, blocking_timeout: float | None) -> float | None:
        wait = self.blocking_timeout if blocking_timeout is None else blocking_timeout
        return None if wait is None else time.monotonic() + wait

    @staticmethod
    def _pause(delay: float, cap: float, deadline: float | None) -> float | None:
        """How long to sleep before the next try, or None when the deadline has passed."""
        pause = min(delay, cap)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            pause = min(pause, remaining)
        return pause

    # -- sync ------------------------------------------------------------------------

    def acquire(
        self,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        token: str | None = None,
    ) -> bool:
        """Take the lock; with ``blocking``, wait up to ``blocking_timeout`` (None: forever)."""
        blocking = self.blocking if blocking is None else blocking
        token = token or new_token()
        deadline = self._deadline(blocking_timeout)
        delay = _FIRST_SLEEP
        while True:
            taken = self.cache.lock_add(self.key, token, self.timeout)
            if taken:
                self.token = token
                if self.auto_renewal:
                    self._start_renewal()
                return True
            if not blocking or taken is None:  # None: the server failed; don't wait on it
                return False
            pause = self._pause(delay, self.sleep, deadline)
            if pause is None:
                self.cache.counters.lock_timeouts += 1
                return False
            time.sleep(pause)
            delay *= 2

    def release(self) -> None:
        """Release the lock; LockNotOwnedError if it expired or changed hands meanwhile."""
        token = self.token
        if token is None:
            raise LockError(f"cannot release {self!r}: it is not held")
        self.token = None
        self._stop_renewal_thread()
        if not self.cache.lock_release(self.key, token):
            raise LockNotOwnedError(f"{self!r} expired or is held by another owner")

    def reacquire(self) -> bool:
        """Reset the lock's lifetime to ``timeout``; LockNotOwnedError if no longer ours."""
        return self.extend(self.timeout)

    def extend(self, additional_time: float | None = None) -> bool:
        """Set the remaining lifetime to ``additional_time`` (default: ``timeout``).

        Unlike redis-py, the time replaces the remaining lifetime instead of adding to it
        (the portable operation on every backend).
        """
        if self.token is None:
            raise LockError(f"cannot extend {self!r}: it is not held")
        ttl = self.timeout if additional_time is None else additional_time
        if not self.cache.lock_extend(self.key, self.token, ttl):
            raise LockNotOwnedError(f"{self!r} expired or is held by another owner")
        return True

    def locked(self) -> bool:
        """Whether anyone holds the lock."""
        return self.cache.lock_owner(self.key) is not None

    def owned(self) -> bool:
        """Whether this object holds the lock."""
        return self.token is not None and self.cache.lock_owner(self.key) == self.token

    def __enter__(self) -> CacheLock:
        if not self.acquire():
            raise LockError(f"could not acquire {self!r} within {self.blocking_timeout}s")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _start_renewal(self) -> None:
        stop = self._stop_renewal = threading.Event()
        interval = (self.timeout or 0) / 3
        key, token, ttl, cache = self.key, self.token, self.timeout, self.cache

        def renew() -> None:
            while not stop.wait(interval):
                assert token is not None and ttl is not None
                try:
                    if not cache.lock_extend(key, token, ttl):
                        logger.warning("%r: lost the lock %r before renewing it", cache, key)
                        return
                except Exception:
                    logger.exception("%r: renewing lock %r failed", cache, key)

        threading.Thread(target=renew, name=f"lock-renewal:{self.name}", daemon=True).start()

    def _stop_renewal_thread(self) -> None:
        if self._stop_renewal is not None:
            self._stop_renewal.set()
            self._stop_renewal = None

    # -- async -----------------------------------------------------------------------

    async def aacquire(
        self,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        token: str | None = None,
    ) -> bool:
        blocking = self.blocking if blocking is None else blocking
        token = token or new_token()
        deadline = self._deadline(blocking_timeout)
        delay = _FIRST_SLEEP
        while True:
            taken = await self.cache.alock_add(self.key, token, self.timeout)
            if taken:
                self.token = token
                if self.auto_renewal:
                    self._renewal_task = asyncio.get_running_loop().create_task(self._arenew())
                return True
            if not blocking or taken is None:
                return False
            pause = self._pause(delay, self.sleep, deadline)
            if pause is None:
                self.cache.counters.lock_timeouts += 1
                return False
            await asyncio.sleep(pause)
            delay *= 2

    async def arelease(self) -> None:
        token = self.token
        if token is None:
            raise LockError(f"cannot release {self!r}: it is not held")
        self.token = None
        if self._renewal_task is not None:
            self._renewal_task.cancel()
            self._renewal_task = None
        if not await self.cache.alock_release(self.key, token):
            raise LockNotOwnedError(f"{self!r} expired or is held by another owner")

    async def aextend(self, additional_time: float | None = None) -> bool:
        if self.token is None:
            raise LockError(f"cannot extend {self!r}: it is not held")
        ttl = self.timeout if additional_time is None else additional_time
        if not await self.cache.alock_extend(self.key, self.token, ttl):
            raise LockNotOwnedError(f"{self!r} expired or is held by another owner")
        return True

    async def alocked(self) -> bool:
        return await self.cache.alock_owner(self.key) is not None

    async def aowned(self) -> bool:
        return self.token is not None and await self.cache.alock_owner(self.key) == self.token

    async def _arenew(self) -> None:
        assert self.timeout is not None
        while True:
            await asyncio.sleep(self.timeout / 3)
            token = self.token
            if token is None:
                return
            try:
                if not await self.cache.alock_extend(self.key, token, self.timeout):
                    logger.warning("%r: lost the lock %r before renewing it", self.cache, self.key)
                    return
            except Exception:
                logger.exception("%r: renewing lock %r failed", self.cache, self.key)

    async def __aenter__(self) -> CacheLock:
        if not await self.aacquire():
            raise LockError(f"could not acquire {self!r} within {self.blocking_timeout}s")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.arelease()
