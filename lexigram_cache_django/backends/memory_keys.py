"""The memory backend's django-redis extensions: ``ttl``, ``expire``, ``keys``, ...

Same names, arguments and answers as on :class:`~.redis.RedisCache`, so code written
for them runs its unit tests in-process:

* ``ttl``/``pttl``: seconds (rounded, as Redis's ``TTL``) / milliseconds left; ``None`` if
  the key never expires; ``0`` if it does not exist;
* ``expire_at``/``pexpire_at``: at a UNIX time (seconds / milliseconds) or a datetime;
* ``expire(key, timeout)``: Django's timeout meaning (``None``: never, ``<= 0``: delete);
  ``pexpire(key, ms)``: milliseconds (``DEFAULT_TIMEOUT``: the alias's TIMEOUT);
  ``persist``: True only if the key had a timeout (Redis ``PERSIST``);
* ``keys``/``iter_keys``/``delete_pattern``: Redis's glob dialect (:mod:`.patterns`) over
  keys in Django key space, under this alias's prefix and version; keys come back as
  given. Every live key counts, tag records and locks included, as on Redis.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from .patterns import glob_escape, glob_regex, key_unmaker

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..metrics import CacheStats

    class _MemoryHost(Protocol):
        _store: Any  # memory.MemoryStore (not imported: memory.py imports this module)
        _stats: CacheStats
        key_prefix: str
        version: int
        key_func: Callable[..., Any]

        def _live(self, key: str, now: float | None = None) -> Any: ...

        def make_and_validate_key(self, key: Any, version: int | None = None) -> str: ...

        def touch(
            self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
        ) -> bool: ...

        def expires_at(self, timeout: Any = DEFAULT_TIMEOUT) -> float | None: ...

    _Host = _MemoryHost
else:
    _Host = object


def _seconds(when: int | float | datetime.datetime, scale: int) -> float:
    """An absolute expiry as UNIX seconds: whole seconds (``scale`` 1) or milliseconds
    (1000) as Redis's EXPIREAT/PEXPIREAT take them, or a datetime."""
    if isinstance(when, datetime.datetime):
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, int | float):
        raise TypeError(f"expire_at needs a UNIX time or a datetime, not {when!r}")
    return int(when) / scale


class MemoryKeys(_Host):
    """``ttl``, ``pttl``, ``expire``, ``pexpire``, ``expire_at``, ``pexpire_at``,
    ``persist``, ``keys``, ``iter_keys``, ``delete_pattern`` and their async twins, for
    :class:`~.memory.MemoryCache`."""

    def _left(self, key: Any, version: int | None, scale: int) -> int | None:
        made = self.make_and_validate_key(key, version)
        with self._store.lock:
            entry = self._live(made)
        if entry is None:
            return 0
        expires: float | None = entry.expires
        if expires is None:
            return None
        return max(0, round((expires - time.time()) * scale))

    def ttl(self, key: Any, version: int | None = None) -> int | None:
        """Seconds left; None if the key never expires; 0 if it does not exist."""
        return self._left(key, version, 1)

    async def attl(self, key: Any, version: int | None = None) -> int | None:
        return self._left(key, version, 1)

    def pttl(self, key: Any, version: int | None = None) -> int | None:
        """Milliseconds left; None if the key never expires; 0 if it does not exist."""
        return self._left(key, version, 1000)

    async def apttl(self, key: Any, version: int | None = None) -> int | None:
        return self._left(key, version, 1000)

    def expire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """Set a key's timeout with Django's meaning (None: never expires, <= 0: delete)."""
        return self.touch(key, timeout, version)

    async def aexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        return self.touch(key, timeout, version)

    def pexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """Set a key's timeout in milliseconds (``<= 0`` deletes it, as Redis ``PEXPIRE``)."""
        made = self.make_and_validate_key(key, version)
        if timeout is DEFAULT_TIMEOUT:
            drop, expires = False, self.expires_at(DEFAULT_TIMEOUT)
        else:
            drop, expires = int(timeout) <= 0, time.time() + int(timeout) / 1000
        with self._store.lock:
            entry = self._live(made)
            if entry is None:
                return False
            if drop:
                del self._store.data[made]
                self._stats.deletes += 1
            else:
                self._store.data[made] = entry._replace(expires=expires)
            return True

    async def apexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        return self.pexpire(key, timeout, version)

    def _expire_at(self, key: Any, at: float, version: int | None) -> bool:
        made = self.make_and_validate_key(key, version)
        with self._store.lock:
            entry = self._live(made)
            if entry is None:
                return False
            if at <= time.time():  # in the past: deleted, as Redis EXPIREAT
                del self._store.data[made]
                self._stats.deletes += 1
            else:
                self._store.data[made] = entry._replace(expires=at)
            return True

    def expire_at(
        self, key: Any, when: int | float | datetime.datetime, version: int | None = None
    ) -> bool:
        """Expire ``key`` at ``when`` (UNIX seconds or a datetime); False if it is absent."""
        return self._expire_at(key, _seconds(when, 1), version)

    async def aexpire_at(
        self, key: Any, when: int | float | datetime.datetime, version: int | None = None
    ) -> bool:
        return self.expire_at(key, when, version)

    def pexpire_at(
        self, key: Any, when: int | float | datetime.datetime, version: int | None = None
    ) -> bool:
        """Expire ``key`` at ``when``: UNIX milliseconds or a datetime."""
        return self._expire_at(key, _seconds(when, 1000), version)

    async def apexpire_at(
        self, key: Any, when: int | float | datetime.datetime, version: int | None = None
    ) -> bool:
        return self.pexpire_at(key, when, version)

    def persist(self, key: Any, version: int | None = None) -> bool:
        """Remove a key's timeout; True if it had one (Redis ``PERSIST``)."""
        made = self.make_and_validate_key(key, version)
        with self._store.lock:
            entry = self._live(made)
            if entry is None or entry.expires is None:
                return False
            self._store.data[made] = entry._replace(expires=None)
            return True

    async def apersist(self, key: Any, version: int | None = None) -> bool:
        return self.persist(key, version)

    # -- patterns ----------------------------------------------------------------------

    def _matching(self, search: str, version: int | None) -> list[str]:
        """This alias's live stored keys matching ``search`` (Django key space)."""
        version = self.version if version is None else version
        regex = glob_regex(str(self.key_func(search, glob_escape(self.key_prefix), version)))
        now = time.time()
        with self._store.lock:
            found = [
                key
                for key, entry in self._store.data.items()
                if (entry.expires is None or entry.expires > now) and regex.fullmatch(key)
            ]
        return found

    def keys(self, search: str, version: int | None = None) -> list[str]:
        """Keys matching a glob pattern in Django key space (``"user:*"``)."""
        return list(self.iter_keys(search, version=version))

    async def akeys(self, search: str, version: int | None = None) -> list[str]:
        return self.keys(search, version)

    def iter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> Iterator[str]:
        """Like :meth:`keys`, lazily (``itersize`` is accepted for Redis's signature)."""
        version = self.version if version is None else version
        unmake = key_unmaker(self.key_func, self.key_prefix, version)
        for key in self._matching(search, version):
            yield unmake(key)

    async def aiter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> AsyncIterator[str]:
        for key in self.iter_keys(search, itersize, version):
            yield key

    def delete_pattern(
        self, pattern: str, version: int | None = None, itersize: int | None = None
    ) -> int:
        """Delete the keys matching a pattern in Django key space; returns how many."""
        found = self._matching(pattern, version)
        with self._store.lock:
            pop = self._store.data.pop
            deleted = sum(1 for key in found if pop(key, None) is not None)
            self._stats.deletes += deleted
        return deleted

    async def adelete_pattern(
        self, pattern: str, version: int | None = None, itersize: int | None = None
    ) -> int:
        return self.delete_pattern(pattern, version, itersize)
