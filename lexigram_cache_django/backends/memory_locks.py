"""The memory backend's lock protocol (``locks.py``): a token under the lock's key.

Each call is one step under the store's lock, so "add if absent", "delete if mine" and
"extend if mine" are atomic, as the Redis backend's scripts are.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from .memory_store import RAW, Entry

if TYPE_CHECKING:

    class _MemoryHost(Protocol):
        _store: Any  # memory_store.MemoryStore
        _evicted: list[str]

        def _live(self, key: str, now: float | None = None) -> Any: ...

        def _put(self, key: str, entry: Entry) -> None: ...

        def _send_evicted(self) -> None: ...

    _Host = _MemoryHost
else:
    _Host = object


class MemoryLocks(_Host):
    """``lock_add``/``lock_release``/``lock_extend``/``lock_owner`` for :class:`MemoryCache`."""

    def lock_add(self, key: str, token: str, ttl: float | None) -> bool | None:
        expires = None if ttl is None else time.time() + ttl
        with self._store.lock:
            if self._live(key) is not None:
                return False
            self._put(key, Entry(token, expires, RAW, None))
        if self._evicted:
            self._send_evicted()
        return True

    def lock_release(self, key: str, token: str) -> bool:
        with self._store.lock:
            entry = self._live(key)
            if entry is None or entry.value != token:
                return False
            del self._store.data[key]
            return True

    def lock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        expires = None if ttl is None else time.time() + ttl
        with self._store.lock:
            entry = self._live(key)
            if entry is None or entry.value != token:
                return False
            self._store.data[key] = entry._replace(expires=expires)
            return True

    def lock_owner(self, key: str) -> str | None:
        with self._store.lock:
            entry = self._live(key)
            return None if entry is None else str(entry.value)
