"""Tiered cache: an in-process L1 (memory) over a shared L2 (Redis or Memcached).

::

    get(k) ──> bus up? ──yes──> L1 hit ───────────────────────────────> value
                 │ no            │ miss
                 └──────────────>┴──> L2 get_entry ──hit──> fill L1 ──> value
                                           │ (lifetime: entry expiry, PTTL, or
                                           │  L1_TIMEOUT, whichever is shortest)
                                           └─miss──> default

    set/add/delete/incr/touch/set_many/delete_many/clear/invalidate_tags/incr_version
        ──> L2 (the truth) ──> publish made keys / tag keys on the bus (Redis L2)
                          ──> this process's L1: updated (set, add) or dropped

    other processes: bus listener ──> drop the keys / bump L1 tag versions

The tiers are other ``CACHES`` aliases (``OPTIONS["L1"]``, ``OPTIONS["L2"]``), reached
only through ``django.core.cache.caches``, or inline ``CACHES``-style dicts. Each is
copied and given this alias's ``KEY_PREFIX``, ``VERSION`` and ``KEY_FUNCTION``, so both
tiers and the bus see the same made keys and tag record keys. Locks and the
cross-process half of ``get_or_set``'s single flight live in L2; tag versions too (an L1
entry records L1's own tag versions, bumped by invalidations, so an L1 read never asks
L2). See :mod:`.tiered_bus` for why a fill can never resurrect an invalidated value.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ...codec import EntryMeta
from ...metrics import stats_for
from ...protocols import Entry
from ...signals import cache_hit, cache_miss
from ...tags import TagLike
from ..base import LexigramCache
from ..keymemo import MemoizedKeys
from .bus import KEYS, TAGS, Bus, bus_for
from .publish import ASend, Send, senders

_MISSING = object()
DEFAULT_L1_TIMEOUT = 30.0
DEFAULT_CHANNEL = "lexigram-cache:tiered"


class TierCounters:
    """Where reads were served, per tiered alias identity (shared by its threads)."""

    __slots__ = ("l2_hits", "misses")  # L1 hits: the alias's hits minus l2_hits

    def __init__(self) -> None:
        self.l2_hits = self.misses = 0


_tier_counters: dict[str, TierCounters] = {}
_tier_lock = threading.Lock()


def _counters_for(identity: str) -> TierCounters:
    with _tier_lock:
        return _tier_counters.setdefault(identity, TierCounters())


def _declared_prefix(spec: Any) -> str:
    """The KEY_PREFIX a tier is configured with (an alias's, or an inline dict's)."""
    conf = settings.CACHES.get(spec, {}) if isinstance(spec, str) else spec
    return str(conf.get("KEY_PREFIX", "")) if isinstance(conf, Mapping) else ""


def _raw_key(key: Any, key_prefix: str, version: Any) -> str:
    """KEY_FUNCTION of the tier copies addressed by made keys (the bus, fills, PTTL)."""
    return str(key)


def portable(made: str) -> str:
    """A made key every tier accepts: one memcached would refuse (too long, spaces,
    control characters) is hashed, so the tiered alias warns as Django's backends do
    (from its own key check) instead of raising from a memcached L2."""
    if len(made) <= MEMCACHE_MAX_KEY_LENGTH and " " not in made and made.isprintable():
        return made
    return "lexigram:tiered:" + hashlib.sha256(made.encode()).hexdigest()


class _PortableKeys:
    """The tiers' KEY_FUNCTION: this alias's, then :func:`portable`."""

    __slots__ = ("func",)

    def __init__(self, func: Any) -> None:
        self.func = func

    def __call__(self, key: Any, key_prefix: str, version: Any) -> str:
        return portable(self.func(key, key_prefix, version))


class TieredCore(LexigramCache):
    """The tiers, the bus, fills and the primitives; Django's API is in :mod:`.cache`."""

    backend_name = "tiered"

    def __init__(self, location: Any, params: dict[str, Any]) -> None:
        super().__init__(location, params)
        opts = self._options
        for name in ("L1", "L2"):
            if not opts.get(name):
                raise ImproperlyConfigured(f"TieredCache needs OPTIONS[{name!r}]")
        self.l1_timeout = float(self.option("L1_TIMEOUT"))
        # The L2 alias's own KEY_PREFIX goes first, so this alias's keys stay inside the
        # L2's namespace (and clear() never flushes a database the L2 alias shares).
        l2_prefix = _declared_prefix(opts["L2"])
        if l2_prefix and l2_prefix != self.key_prefix:
            self.key_prefix = f"{l2_prefix}:{self.key_prefix}" if self.key_prefix else l2_prefix
            self._stats = stats_for(self.identity)
        self._tiers = _counters_for(self.identity)
        self._finals: dict[Any, str] = {}

    @property
    def identity(self) -> str:
        return f"{super().identity}|{self._options.get('L1')!r}|{self._options.get('L2')!r}"

    # -- key settings: the tiers follow this alias's, even when changed later -----------

    def _retune(self, name: str, value: Any) -> None:
        self._finals = {}
        for tier in ("_l1", "_l2"):
            built = self.__dict__.get(tier)
            if built is not None:
                setattr(built, name, _PortableKeys(value) if name == "key_func" else value)

    @property
    def key_prefix(self) -> str:
        return self._key_prefix

    @key_prefix.setter
    def key_prefix(self, value: str) -> None:
        MemoizedKeys.key_prefix.fset(self, value)  # type: ignore[attr-defined]
        self._retune("key_prefix", value)

    @property
    def version(self) -> int:
        return self._version

    @version.setter
    def version(self, value: int) -> None:
        MemoizedKeys.version.fset(self, value)  # type: ignore[attr-defined]
        self._retune("version", value)

    @property
    def key_func(self) -> Any:
        return self._key_func

    @key_func.setter
    def key_func(self, value: Any) -> None:
        MemoizedKeys.key_func.fset(self, value)  # type: ignore[attr-defined]
        self._retune("key_func", value)

    # -- the tiers and the bus, built on first use --------------------------------------

    def _tier(self, spec: Any) -> LexigramCache:
        if isinstance(spec, str):
            tier = copy.copy(caches[spec])
        elif isinstance(spec, Mapping):
            params = dict(spec)
            tier = import_string(params.pop("BACKEND"))(params.pop("LOCATION", ""), params)
        else:
            raise ImproperlyConfigured(f"TieredCache tier must be an alias or a dict: {spec!r}")
        if not isinstance(tier, LexigramCache) or isinstance(tier, TieredCore):
            raise ImproperlyConfigured(f"TieredCache tiers must be lexigram backends: {spec!r}")
        tier.key_prefix = self.key_prefix
        tier.version = self.version
        tier.key_func = _PortableKeys(self.key_func)
        return tier

    @cached_property
    def _l1(self) -> LexigramCache:
        return self._tier(self._options["L1"])

    @cached_property
    def _l1raw(self) -> LexigramCache:
        """The same L1 store, addressed by made keys (what the bus and fills use)."""
        tier = copy.copy(self._l1)
        tier.key_func = _raw_key
        return tier

    @cached_property
    def _l1get(self) -> Any:
        """L1's read of a made key: the memory backend's lock-free ``get_made``."""
        raw = self._l1raw
        return getattr(raw, "get_made", raw.get)

    @cached_property
    def _l2(self) -> LexigramCache:
        return self._tier(self._options["L2"])

    @cached_property
    def _l2raw(self) -> LexigramCache:
        """L2 addressed by made keys (its ``pttl``)."""
        tier = copy.copy(self._l2)
        tier.key_func = _raw_key
        return tier

    @cached_property
    def _bus(self) -> Bus:
        l2 = self._l2
        use_bus = self.option("BUS")
        if use_bus is None:
            use_bus = l2.backend_name == "redis"
        channel = str(self.option("INVALIDATION_CHANNEL"))
        if use_bus and l2.backend_name != "redis":
            raise ImproperlyConfigured("TieredCache BUS needs a Redis L2")
        client = getattr(l2, "get_client", None) if use_bus else None
        aclient = getattr(l2, "aget_client", None) if use_bus else None
        where = l2.location_display if use_bus else f"local:{l2.identity}"
        bus = bus_for(where, channel, client, aclient)
        bus.attach(self._l1raw)
        return bus

    def _serving(self) -> Bus | None:
        """The bus if L1 may be used now (else reads go to L2 and L1 is left alone)."""
        bus = self._bus
        if bus.up:
            return bus
        bus.ensure_listening()
        return None

    @cached_property
    def _senders(self) -> tuple[Send | None, ASend | None]:
        return senders(self._l2)

    def _publish(self, bus: Bus, kind: str, names: Sequence[str]) -> None:
        bus.publish(kind, names, self._senders[0])

    async def _apublish(self, bus: Bus, kind: str, names: Sequence[str]) -> None:
        await bus.apublish(kind, names, self._senders[1])

    # -- L1 lifetimes and fills ---------------------------------------------------------

    def _l1_ttl(self, ttl: float | None) -> float:
        return self.l1_timeout if ttl is None else min(ttl, self.l1_timeout)

    def _remaining(self, final: str, meta: EntryMeta | None) -> float | None:
        """Seconds the L2 entry has left (capped by L1_TIMEOUT); None: do not fill."""
        if meta is not None and meta.expires:
            return self._l1_ttl(meta.expires - time.time())
        pttl = getattr(self._l2raw, "pttl", None)
        if pttl is None:  # memcached cannot say: L1_TIMEOUT bounds the copy
            return self.l1_timeout
        left = pttl(final)
        return self.l1_timeout if left is None else (self._l1_ttl(left / 1000) if left else None)

    async def _aremaining(self, final: str, meta: EntryMeta | None) -> float | None:
        apttl = getattr(self._l2raw, "apttl", None)
        if (meta is not None and meta.expires) or apttl is None:
            return self._remaining(final, meta)
        left = await apttl(final)
        return self.l1_timeout if left is None else (self._l1_ttl(left / 1000) if left else None)

    def _fill(self, bus: Bus, start: int, final: str, entry: Entry, ttl: float | None) -> None:
        """Copy an L2 entry into L1 unless something it names changed since ``start``."""
        if ttl is None or ttl <= 0:
            return
        value, meta = entry
        names = [final, *(name for name, _ in meta.tags)] if meta is not None else [final]
        l1 = self._l1raw
        with bus.lock:
            if not bus.fresh(start, names):
                return
            if meta is not None and meta.tags:
                keys = names[1:]
                versions = l1.tag_versions(keys, create=True)
                meta = l1.tagged_meta(keys, versions)._replace(
                    delta=meta.delta, expires=meta.expires
                )
            l1.set_entry(final, value, ttl, meta)

    def _changed(
        self,
        bus: Bus,
        finals: Sequence[str],
        start: int,
        fills: Mapping[str, Any] | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        tags: Any = None,
    ) -> None:
        """After an L2 write: update (``fills``) or drop this process's L1 copies, and
        stamp the keys so fills of other threads that read before the write are refused."""
        l1 = self._l1raw
        ttl = self.ttl_seconds(timeout)
        tag_keys = self.tag_keys(tags) if tags is not None else ()
        with bus.lock:
            fresh = bool(fills) and (ttl is None or ttl > 0) and bus.fresh(start, tag_keys)
            meta = None
            if fresh and tag_keys:
                meta = l1.tagged_meta(tag_keys, l1.tag_versions(tag_keys, create=True))
            for final in finals:
                if fresh and fills is not None and final in fills and bus.fresh(start, (final,)):
                    l1.set_entry(final, fills[final], self._l1_ttl(ttl), meta)
                else:
                    l1.delete_many((final,))
            bus.stamp(finals)

    def _key(self, key: Any, version: int | None) -> str:
        """The made key both tiers use; warns (Django's CacheKeyWarning) as Django does.

        Keys that made cleanly are remembered (version None only), so a hot key costs
        one dict lookup; a bad key is made, and warns, on every call."""
        if version is None:
            try:
                return self._finals[key]
            except (KeyError, TypeError):
                pass
        made = super().make_and_validate_key(key, version)
        final = portable(made)
        if version is None and final is made:
            finals = self._finals
            if len(finals) >= 4096:
                finals.clear()
            try:
                finals[key] = final
            except TypeError:
                pass
        return final

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str:
        """What stampede protection and locks see: the same made keys as every read."""
        return self._key(key, version)

    def tag_keys(self, tags: Iterable[TagLike] | TagLike | None) -> tuple[str, ...]:
        return tuple(map(portable, super().tag_keys(tags)))

    # -- reads ---------------------------------------------------------------------------

    def get_entry(self, key: str, bus: Bus | None = None, l1_checked: bool = False) -> Entry | None:
        if not l1_checked:
            bus = self._serving()
            if bus is not None:
                entry = self._l1raw.get_entry(key)
                if entry is not None:
                    self._stats.hits += 1
                    if cache_hit.receivers:
                        self.send_signal(cache_hit, key=key)
                    return entry
        start = bus.seq if bus is not None else 0
        entry = self._l2.get_entry(key)
        if entry is None:
            self._tiers.misses += 1
            self._stats.misses += 1
            if cache_miss.receivers:
                self.send_signal(cache_miss, key=key)
            return None
        self._tiers.l2_hits += 1
        self._stats.hits += 1
        if cache_hit.receivers:
            self.send_signal(cache_hit, key=key)
        if bus is not None:
            self._fill(bus, start, key, entry, self._remaining(key, entry[1]))
        return entry

    async def aget_entry(
        self, key: str, bus: Bus | None = None, l1_checked: bool = False
    ) -> Entry | None:
        if not l1_checked:
            bus = self._serving()
            if bus is not None:
                entry = self._l1raw.get_entry(key)
                if entry is not None:
                    self._stats.hits += 1
                    if cache_hit.receivers:
                        self.send_signal(cache_hit, key=key)
                    return entry
        start = bus.seq if bus is not None else 0
        entry = await self._l2.aget_entry(key)
        if entry is None:
            self._tiers.misses += 1
            self._stats.misses += 1
            if cache_miss.receivers:
                self.send_signal(cache_miss, key=key)
            return None
        self._tiers.l2_hits += 1
        self._stats.hits += 1
        if cache_hit.receivers:
            self.send_signal(cache_hit, key=key)
        if bus is not None:
            self._fill(bus, start, key, entry, await self._aremaining(key, entry[1]))
        return entry

    # -- primitives: entries, tags and locks (locks and tag versions live in L2) --------

    def set_entry(self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None) -> None:
        bus = self._bus
        start = bus.seq
        self._l2.set_entry(key, value, ttl, meta)
        self._publish(bus, KEYS, (key,))
        self._after_entry(bus, key, start, value, ttl, meta)

    async def aset_entry(
        self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None
    ) -> None:
        bus = self._bus
        start = bus.seq
        await self._l2.aset_entry(key, value, ttl, meta)
        await self._apublish(bus, KEYS, (key,))
        self._after_entry(bus, key, start, value, ttl, meta)

    def _after_entry(
        self, bus: Bus, key: str, start: int, value: Any, ttl: float | None, meta: EntryMeta | None
    ) -> None:
        """A computed value goes into L1 too, unless tagged: its L2 tag versions were
        read before the computation, and L1's must not be read after it."""
        with bus.lock:
            if meta is None or not meta.tags:
                if (ttl is not None and ttl <= 0) or not bus.fresh(start, (key,)):
                    self._l1raw.delete_many((key,))
                else:
                    self._l1raw.set_entry(key, value, self._l1_ttl(ttl), meta)
            else:
                self._l1raw.delete_many((key,))
            bus.stamp((key,))

    def tag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        return self._l2.tag_versions(keys, create)

    async def atag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        return await self._l2.atag_versions(keys, create)

    def invalidate_tag_keys(self, keys: Sequence[str]) -> None:
        self._l2.invalidate_tag_keys(keys)
        self._publish(self._bus, TAGS, keys)
        self._tags_changed(keys)

    async def ainvalidate_tag_keys(self, keys: Sequence[str]) -> None:
        await self._l2.ainvalidate_tag_keys(keys)
        await self._apublish(self._bus, TAGS, keys)
        self._tags_changed(keys)

    def _tags_changed(self, keys: Sequence[str]) -> None:
        bus = self._bus
        with bus.lock:
            bus.stamp(keys)
            self._l1raw.invalidate_tag_keys(keys)

    def lock_add(self, key: str, token: str, ttl: float | None) -> bool | None:
        return self._l2.lock_add(key, token, ttl)

    def lock_release(self, key: str, token: str) -> bool:
        return self._l2.lock_release(key, token)

    def lock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        return self._l2.lock_extend(key, token, ttl)

    def lock_owner(self, key: str) -> str | None:
        return self._l2.lock_owner(key)

    async def alock_add(self, key: str, token: str, ttl: float | None) -> bool | None:
        return await self._l2.alock_add(key, token, ttl)

    async def alock_release(self, key: str, token: str) -> bool:
        return await self._l2.alock_release(key, token)

    async def alock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        return await self._l2.alock_extend(key, token, ttl)

    async def alock_owner(self, key: str) -> str | None:
        return await self._l2.alock_owner(key)

    # -- metrics ---------------------------------------------------------------------------

    def store_stats(self) -> dict[str, Any]:
        tiers = self._tiers
        data: dict[str, Any] = {
            "l1_hits": self._stats.hits - tiers.l2_hits,
            "l2_hits": tiers.l2_hits,
            "tier_misses": tiers.misses,
            "l1_timeout": self.l1_timeout,
        }
        data.update(self._bus.stats())
        data["l1"] = self._l1.stats()
        data["l2"] = self._l2.stats()
        return data

    def breakers(self) -> list[Any]:
        return self._l2.breakers()

    def health(self) -> dict[str, Any]:
        """L2's servers (L1 is in process): down when L2 is."""
        return {**self._l2.health(), "backend": self.backend_name}

    def reset_stats(self) -> None:
        super().reset_stats()
        self._tiers.l2_hits = self._tiers.misses = 0
