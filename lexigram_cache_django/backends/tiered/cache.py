"""Django's cache API on the tiered cache, each sync method with its async twin below it.

Reads: L1 (while the bus is up), then L2, filling L1. Writes: L2, then the bus, then
this process's L1 (see :mod:`.core` for the picture).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ...signals import cache_hit, cache_miss
from ...tags import TagLike
from .batches import aremaining_many, remaining_many
from .bus import CLEAR, KEYS, Bus
from .core import _MISSING, TieredCore


class TieredCache(TieredCore):
    """L1 memory over L2 Redis/Memcached, kept coherent across processes."""

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        final, bus = self._key(key, version), cast(Bus | None, self._bus)
        assert bus is not None
        if bus.up:
            value = self._l1get(final, _MISSING)
            if value is not _MISSING:
                self._stats.hits += 1
                if cache_hit.receivers:
                    self.send_signal(cache_hit, key=final)
                return value
        else:
            bus.ensure_listening()
            bus = None
        entry = self.get_entry(final, bus, l1_checked=True)
        return default if entry is None else entry[0]

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        final, bus = self._key(key, version), cast(Bus | None, self._bus)
        assert bus is not None
        if bus.up:
            value = self._l1get(final, _MISSING)
            if value is not _MISSING:
                self._stats.hits += 1
                if cache_hit.receivers:
                    self.send_signal(cache_hit, key=final)
                return value
        else:
            bus.ensure_listening()
            bus = None
        entry = await self.aget_entry(final, bus, l1_checked=True)
        return default if entry is None else entry[0]

    def has_key(self, key: Any, version: int | None = None) -> bool:
        final = self._key(key, version)
        if self._serving() is not None and self._l1raw.has_key(final):
            return True
        return self._l2.has_key(key, version)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        final = self._key(key, version)
        if self._serving() is not None and self._l1raw.has_key(final):
            return True
        return await self._l2.ahas_key(key, version)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        """L1 first, the rest in one L2 read; its hits fill L1 (see :mod:`.batches`)."""
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        finals, bus = self._final_map(keys, version), self._serving()
        found = self._l1_many(finals) if bus is not None else {}
        rest = {f: k for f, k in finals.items() if k not in found} if found else finals
        from_l2: dict[Any, Any] = {}
        if rest:
            read = getattr(self._l2, "get_entry_many", None)
            if bus is None or read is None:
                from_l2 = self._l2.get_many(list(rest.values()), version)
            else:
                start = bus.seq
                entries = read(list(rest))
                from_l2 = {rest[f]: entry[0] for f, entry in entries.items()}
                ttls = remaining_many(self, entries)
                for final, entry in entries.items():
                    self._fill(bus, start, final, entry, ttls.get(final))
        self._count_many(keys, found, from_l2, version)
        found.update(from_l2)
        return found

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        finals, bus = self._final_map(keys, version), self._serving()
        found = self._l1_many(finals) if bus is not None else {}
        rest = {f: k for f, k in finals.items() if k not in found} if found else finals
        from_l2: dict[Any, Any] = {}
        if rest:
            read = getattr(self._l2, "aget_entry_many", None)
            if bus is None or read is None:
                from_l2 = await self._l2.aget_many(list(rest.values()), version)
            else:
                start = bus.seq
                entries = await read(list(rest))
                from_l2 = {rest[f]: entry[0] for f, entry in entries.items()}
                ttls = await aremaining_many(self, entries)
                for final, entry in entries.items():
                    self._fill(bus, start, final, entry, ttls.get(final))
        self._count_many(keys, found, from_l2, version)
        found.update(from_l2)
        return found

    def _final_map(self, keys: Sequence[Any], version: int | None) -> dict[str, Any]:
        return dict(zip([self._key(k, version) for k in keys], keys))

    def _l1_many(self, finals: Mapping[str, Any]) -> dict[Any, Any]:
        return {finals[f]: v for f, v in self._l1raw.get_many(list(finals)).items()}

    def _count_many(
        self,
        keys: Sequence[Any],
        l1: Mapping[Any, Any],
        l2: Mapping[Any, Any],
        version: int | None,
    ) -> None:
        distinct = len(set(keys))
        self._tiers.l2_hits += len(l2)
        self._tiers.misses += max(distinct - len(l1) - len(l2), 0)
        self._stats.hits += len(l1) + len(l2)
        self._stats.misses += max(distinct - len(l1) - len(l2), 0)
        if cache_hit.receivers or cache_miss.receivers:
            made = [self._key(k, version) for k in keys]
            self.send_batch_signals(made, keys, {**l1, **l2})

    # -- writes: L2, then the bus, then this process's L1 ------------------------------

    def set(  # type: ignore[override]
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> bool:
        final, bus = self._key(key, version), self._bus
        start = bus.seq
        stored = bool(self._l2.set(key, value, timeout, version, tags=tags))
        self._publish(bus, KEYS, (final,))
        self._changed(bus, (final,), start, {final: value} if stored else None, timeout, tags)
        return stored

    async def aset(  # type: ignore[override]
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> bool:
        final, bus = self._key(key, version), self._bus
        start = bus.seq
        stored = bool(await self._l2.aset(key, value, timeout, version, tags=tags))
        await self._apublish(bus, KEYS, (final,))
        self._changed(bus, (final,), start, {final: value} if stored else None, timeout, tags)
        return stored

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> bool:
        final, bus = self._key(key, version), self._bus
        start = bus.seq
        added = self._l2.add(key, value, timeout, version, tags=tags)
        if added:
            self._publish(bus, KEYS, (final,))
        self._changed(bus, (final,), start, {final: value} if added else None, timeout, tags)
        return added

    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> bool:
        final, bus = self._key(key, version), self._bus
        start = bus.seq
        added = await self._l2.aadd(key, value, timeout, version, tags=tags)
        if added:
            await self._apublish(bus, KEYS, (final,))
        self._changed(bus, (final,), start, {final: value} if added else None, timeout, tags)
        return added

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> list[Any]:
        bus = self._bus
        start = bus.seq
        failed = self._l2.set_many(data, timeout, version, tags=tags)
        fills = self._fills(data, failed, version)
        self._publish(bus, KEYS, list(fills))
        self._changed(bus, list(fills), start, fills, timeout, tags)
        return failed

    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> list[Any]:
        bus = self._bus
        start = bus.seq
        failed = await self._l2.aset_many(data, timeout, version, tags=tags)
        fills = self._fills(data, failed, version)
        await self._apublish(bus, KEYS, list(fills))
        self._changed(bus, list(fills), start, fills, timeout, tags)
        return failed

    def _fills(
        self, data: Mapping[Any, Any], failed: list[Any], version: int | None
    ) -> dict[str, Any]:
        not_stored = set(failed)
        return {self._key(k, version): v for k, v in data.items() if k not in not_stored}

    def delete(self, key: Any, version: int | None = None) -> bool:
        return bool(self._drop_after((key,), version, self._l2.delete(key, version)))

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        final, bus = self._key(key, version), self._bus
        deleted = await self._l2.adelete(key, version)
        await self._apublish(bus, KEYS, (final,))
        self._changed(bus, (final,), bus.seq)
        return deleted

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        keys = list(keys)
        self._l2.delete_many(keys, version)
        self._drop_after(keys, version, None)

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        keys, bus = list(keys), self._bus
        await self._l2.adelete_many(keys, version)
        finals = [self._key(k, version) for k in keys]
        await self._apublish(bus, KEYS, finals)
        self._changed(bus, finals, bus.seq)

    def _drop_after(self, keys: Sequence[Any], version: int | None, result: Any) -> Any:
        """The L2 change is done: tell the other processes, drop our own copies."""
        finals, bus = [self._key(k, version) for k in keys], self._bus
        self._publish(bus, KEYS, finals)
        self._changed(bus, finals, bus.seq)
        return result

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return cast(bool, self._drop_after((key,), version, self._l2.touch(key, timeout, version)))

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        touched = await self._l2.atouch(key, timeout, version)
        final, bus = self._key(key, version), self._bus
        await self._apublish(bus, KEYS, (final,))
        self._changed(bus, (final,), bus.seq)
        return touched

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        try:
            return self._drop_after((key,), version, self._l2.incr(key, delta, version))
        except ValueError:
            self._drop_after((key,), version, None)
            raise

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        final, bus = self._key(key, version), self._bus
        try:
            return await self._l2.aincr(key, delta, version)
        finally:
            await self._apublish(bus, KEYS, (final,))
            self._changed(bus, (final,), bus.seq)

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self.incr(key, -delta, version)

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return await self.aincr(key, -delta, version)

    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """L2 moves the entry with its L2 tag versions; both keys drop from every L1."""
        version = self.version if version is None else version
        moved = self._l2.incr_version(key, delta, version)
        self._drop_after((key,), version, None)
        self._drop_after((key,), moved, None)
        return moved

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        version = self.version if version is None else version
        moved = await self._l2.aincr_version(key, delta, version)
        bus = self._bus
        finals = [self._key(key, version), self._key(key, moved)]
        await self._apublish(bus, KEYS, finals)
        self._changed(bus, finals, bus.seq)
        return moved

    def clear(self) -> None:
        self._l2.clear()
        bus = self._bus
        self._publish(bus, CLEAR, ())
        with bus.lock:
            bus.reset()

    async def aclear(self) -> None:
        await self._l2.aclear()
        bus = self._bus
        await self._apublish(bus, CLEAR, ())
        with bus.lock:
            bus.reset()

    def close(self, **kwargs: Any) -> None:
        self._l2.close(**kwargs)

    async def aclose(self, **kwargs: Any) -> None:
        await self._l2.aclose(**kwargs)
