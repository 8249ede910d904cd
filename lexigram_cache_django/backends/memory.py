"""In-process memory backend: a drop-in for Django's LocMemCache, faster.

The store is an ``OrderedDict`` in LRU order (most recently used last) guarded by one
lock. ``MAX_ENTRIES`` and ``CULL_FREQUENCY`` behave exactly as Django documents them for
LocMemCache; aliases with the same ``LOCATION`` share one store in a process.

Speed comes from doing less, not from cleverness:

* immutable values (str, bytes, int, float, bool, None, datetimes, tuples of them) are
  stored as they are, flat dicts of them are copied, and only other values are pickled:
  each is isolated from later mutation by the caller (LocMemCache pickles everything; see
  ``memory_store``);
* made keys are memoized (see :class:`~.base.LexigramCache`);
* the ``a*`` methods call the in-memory code directly: no ``sync_to_async`` thread hop.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..codec import EntryMeta
from ..signals import cache_evicted, cache_hit, cache_miss, watch_receivers
from ..tags import new_version
from .base import LexigramCache
from .memory_keys import MemoryKeys
from .memory_locks import MemoryLocks
from .memory_store import COPIED, PICKLED, Entry, get_store
from .memory_store import pack as _pack
from .memory_store import unpack as _unpack

_MISSING = object()


class MemoryCache(MemoryLocks, LexigramCache, MemoryKeys):
    """LRU + TTL cache in this process's memory; thread-safe; native async.

    ``ttl``, ``expire``, ``persist``, ``keys``, ``delete_pattern``, ... (as on Redis) come
    from :class:`~.memory_keys.MemoryKeys`.
    """

    backend_name = "memory"

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(location, params)
        self._store = get_store(location)
        self._evicted: list[str] = []  # culled under the lock, for cache_evicted after it

    def _send_evicted(self) -> None:
        """``cache_evicted`` for what the last write culled (called after the lock)."""
        keys, self._evicted = self._evicted, []
        self.send_signal(cache_evicted, keys=keys)

    # -- internals (call with the store lock held) ---------------------------------

    def _live(self, key: str, now: float | None = None) -> Entry | None:
        """The entry for key if present and not expired; drops it if expired."""
        store = self._store
        entry = store.data.get(key)
        if entry is None:
            return None
        now = time.time() if now is None else now
        expires = entry.expires
        if expires is not None and expires <= now:
            del store.data[key]
            store.expirations += 1
            self._stats.expirations += 1
            return None
        meta = entry.meta
        if meta is not None and meta.tags and not self._tags_fresh(meta, now):
            del store.data[key]
            self._stats.stale_by_tag += 1
            return None
        return entry

    def _tags_fresh(self, meta: EntryMeta, now: float) -> bool:
        """Whether every tag still has the version the entry recorded (lock held)."""
        data = self._store.data
        for tag_key, version in meta.tags:
            record = data.get(tag_key)
            if record is None or record.value != version:
                return False
            if record.expires is not None and record.expires <= now:
                return False
            data.move_to_end(tag_key)  # a tag in use stays out of LRU culling's way
        return True

    def _versions_locked(self, keys: Sequence[str], create: bool) -> list[int | None]:
        versions: list[int | None] = []
        for tag_key in keys:
            record = self._live(tag_key)
            if record is not None:
                versions.append(record.value)
            elif create:
                version = new_version()
                self._put(tag_key, Entry(version, time.time() + self.tag_timeout, False, None))
                versions.append(version)
            else:
                versions.append(None)
        return versions

    def _meta_for(self, tags: Any) -> EntryMeta | None:
        """Metadata recording the current versions of ``tags`` (lock held)."""
        if tags is None:
            return None
        keys = self.tag_keys(tags)
        return self.tagged_meta(keys, self._versions_locked(keys, create=True)) if keys else None

    def _put(self, key: str, entry: Entry) -> None:
        data = self._store.data
        if key in data:
            data[key] = entry
            data.move_to_end(key)
            return
        if len(data) >= self._max_entries:
            self._cull()
        data[key] = entry

    def _cull(self) -> None:
        """Django's rule: drop 1/CULL_FREQUENCY of the entries, least recently used first."""
        store = self._store
        data = store.data
        if self._cull_frequency == 0:
            count = len(data)
            if cache_evicted.receivers:
                self._evicted.extend(data)
            data.clear()
        else:
            count = len(data) // self._cull_frequency
            if cache_evicted.receivers:  # the keys, for the signal sent after the lock
                self._evicted.extend(data.popitem(last=False)[0] for _ in range(count))
            else:
                for _ in range(count):
                    data.popitem(last=False)
        store.evictions += count
        self._stats.evictions += count

    # -- Django's cache API ----------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        store = self._store
        with store.lock:
            entry = store.data.get(key)
            if entry is not None:
                expires = entry.expires
                if (expires is not None and expires <= time.time()) or entry.meta is not None:
                    entry = self._live(key)  # expired, or has metadata to check
                if entry is not None:
                    store.data.move_to_end(key)
                    self._stats.hits += 1
                    form = entry.form  # memory_store.unpack(), inlined for two forms
                    if not form:
                        return entry.value
                    return entry.value.copy() if form == COPIED else _unpack(entry)
            self._stats.misses += 1
            return default

    _get_quiet = get

    def _get_signalling(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """``get`` while a receiver listens to ``cache_hit`` or ``cache_miss``: the same
        read as ``get_entry``, which signals after the lock (see :func:`_choose_get`)."""
        found = self.get_entry(self.make_and_validate_key(key, version))
        return default if found is None else found[0]

    def get_made(self, key: str, default: Any = None) -> Any:
        """``get`` of a made key, for a cache layered over this one (the tiered L1).

        A live entry without metadata is read without the store lock: one dict read and
        ``move_to_end`` are each atomic in CPython, and a concurrent delete at worst
        leaves the LRU order a step behind. Anything else takes the locked path.
        """
        store = self._store
        entry = store.data.get(key)
        if entry is not None and entry.meta is None:
            expires = entry.expires
            if expires is None or expires > time.time():
                try:
                    store.data.move_to_end(key)
                except KeyError:
                    pass
                self._stats.hits += 1
                if cache_hit.receivers:
                    self.send_signal(cache_hit, key=key)
                # memory_store.unpack(), inlined: the read of the tiered L1 and the semantic
                # exact tier, where a function call is a tenth of the hit.
                form, value = entry.form, entry.value
                if not form:
                    return value
                if form == COPIED:
                    return value.copy()
                if form == PICKLED:
                    return pickle.loads(value)
                return (value[0].copy(), *value[1:])  # HEAD_COPIED
        found = self.get_entry(key)
        return default if found is None else found[0]

    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Any = None,
    ) -> None:
        key = self.make_and_validate_key(key, version)
        stored, form = _pack(value)
        expires = self.expires_at(timeout)
        with self._store.lock:
            self._put(key, Entry(stored, expires, form, self._meta_for(tags)))
            self._stats.sets += 1
        if self._evicted:
            self._send_evicted()

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Any = None,
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        stored, form = _pack(value)
        expires = self.expires_at(timeout)
        with self._store.lock:
            if self._live(key) is not None:
                return False
            self._put(key, Entry(stored, expires, form, self._meta_for(tags)))
            self._stats.sets += 1
        if self._evicted:
            self._send_evicted()
        return True

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        expires = self.expires_at(timeout)
        with self._store.lock:
            entry = self._live(key)
            if entry is None:
                return False
            self._store.data[key] = entry._replace(expires=expires)
            self._store.data.move_to_end(key)
            return True

    def delete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        with self._store.lock:
            entry = self._store.data.pop(key, None)
            if entry is None:
                return False
            self._stats.deletes += 1
            return entry.expires is None or entry.expires > time.time()

    def has_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        with self._store.lock:
            return self._live(key) is not None

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        with self._store.lock:
            entry = self._live(key)
            if entry is None:
                raise ValueError(f"Key '{key}' not found")
            new_value = _unpack(entry) + delta
            stored, form = _pack(new_value)
            self._store.data[key] = Entry(stored, entry.expires, form, entry.meta)
            self._store.data.move_to_end(key)
        return new_value

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self.incr(key, -delta, version)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        made = self.make_key_list(keys, version)
        found: dict[Any, Any] = {}
        store = self._store
        with store.lock:
            now = time.time()
            data = store.data
            look, to_end = data.get, data.move_to_end
            for original, key in zip(keys, made):
                # _live() inlined for live entries (tuples unpacked, not read by name):
                # a batch of rows spends most of its time in this loop.
                entry = look(key)
                if entry is None:
                    continue
                _, expires, _, meta = entry
                if expires is not None and expires <= now:
                    self._live(key, now)  # drops it and counts why
                    continue
                if meta is not None and meta.tags:
                    tags = meta.tags
                    if len(tags) == 1:  # a row's entry: its row tag, checked inline
                        ((tag_key, tag_version),) = tags
                        record = look(tag_key)
                        fresh = (
                            record is not None
                            and record[0] == tag_version
                            and (record[1] is None or record[1] > now)
                        )
                        if fresh:
                            to_end(tag_key)
                    else:
                        fresh = self._tags_fresh(meta, now)
                    if not fresh:
                        self._live(key, now)  # drops it and counts why
                        continue
                to_end(key)
                found[original] = entry
            self.count_batch(made, len(found))
        if cache_hit.receivers or cache_miss.receivers:
            self.send_batch_signals(made, keys, found)
        for original, entry in found.items():
            found[original] = _unpack(entry) if entry[2] else entry[0]  # form, value
        return found

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Any = None,
    ) -> list[Any]:
        expires = self.expires_at(timeout)
        packed = [
            (self.make_and_validate_key(original, version), *_pack(value))
            for original, value in data.items()
        ]
        with self._store.lock:
            meta = self._meta_for(tags)
            for key, stored, form in packed:
                self._put(key, Entry(stored, expires, form, meta))
            self._stats.sets += len(packed)
        if self._evicted:
            self._send_evicted()
        return []

    def delete_many(  # type: ignore[override]  # the count, as on Redis
        self, keys: Iterable[Any], version: int | None = None
    ) -> int | None:
        made = [self.make_and_validate_key(k, version) for k in keys]
        if not made:
            return None  # Django's suite: None for no keys
        with self._store.lock:
            pop = self._store.data.pop
            deleted = sum(1 for key in made if pop(key, None) is not None)
            self._stats.deletes += deleted
        return deleted

    def clear(self) -> None:
        with self._store.lock:
            self._store.data.clear()

    # -- primitives for stampede protection, locks and tags -------------------------

    def get_entry(self, key: str) -> tuple[Any, EntryMeta | None] | None:
        with self._store.lock:
            entry = self._live(key)
            if entry is None:
                self._stats.misses += 1
            else:
                self._store.data.move_to_end(key)
                self._stats.hits += 1
        if entry is None:
            if cache_miss.receivers:
                self.send_signal(cache_miss, key=key)
            return None
        if cache_hit.receivers:
            self.send_signal(cache_hit, key=key)
        return _unpack(entry), entry.meta

    def set_entry(self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None) -> None:
        stored, form = _pack(value)
        expires = None if ttl is None else time.time() + ttl if ttl > 0 else -1.0
        with self._store.lock:
            self._put(key, Entry(stored, expires, form, meta))
            self._stats.sets += 1
        if self._evicted:
            self._send_evicted()

    def tag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        with self._store.lock:
            versions = self._versions_locked(keys, create)
        if self._evicted:
            self._send_evicted()
        return versions

    def invalidate_tag_keys(self, keys: Sequence[str]) -> None:
        expires = time.time() + self.tag_timeout
        with self._store.lock:
            for tag_key in keys:
                self._put(tag_key, Entry(new_version(), expires, False, None))
        if self._evicted:
            self._send_evicted()

    # -- async: the same in-memory code, no thread hop ----------------------------------

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self.get(key, default, version)

    async def aset(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Any = None,
    ) -> None:
        self.set(key, value, timeout, version, tags=tags)

    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Any = None,
    ) -> bool:
        return self.add(key, value, timeout, version, tags=tags)

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return self.touch(key, timeout, version)

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        return self.delete(key, version)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return self.has_key(key, version)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self.incr(key, delta, version)

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self.incr(key, -delta, version)

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        return self.get_many(keys, version)

    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Any = None,
    ) -> list[Any]:
        return self.set_many(data, timeout, version, tags=tags)

    async def adelete_many(  # type: ignore[override]
        self, keys: Iterable[Any], version: int | None = None
    ) -> int | None:
        return self.delete_many(keys, version)

    async def aclear(self) -> None:
        self.clear()

    # -- metrics ----------------------------------------------------------------------

    def store_stats(self) -> dict[str, Any]:
        store = self._store
        return {
            "entries": len(store.data),
            "max_entries": self._max_entries,
            "store_evictions": store.evictions,
            "store_expirations": store.expirations,
        }


def _choose_get() -> None:
    """The hottest path pays nothing for signals: ``MemoryCache.get`` is the quiet read
    while nobody listens to hits or misses, and the signalling one while somebody does."""
    listening = bool(cache_hit.receivers or cache_miss.receivers)
    MemoryCache.get = MemoryCache._get_signalling if listening else MemoryCache._get_quiet  # type: ignore[method-assign]


watch_receivers(_choose_get, cache_hit, cache_miss)
