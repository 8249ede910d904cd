"""Per-alias counters, cheap enough to keep on every call.

Django builds one backend object per thread per alias, so counters live in a
process-wide registry keyed by the alias's identity (backend class, location, key prefix
and version); every thread's object of one alias shares the same :class:`CacheStats`.
Increments are plain attribute updates: exact where the backend holds a lock (memory),
and at worst off by a rare lost increment under heavy thread contention elsewhere.
"""

from __future__ import annotations

import threading

COUNTERS: tuple[str, ...] = (
    "hits",
    "misses",
    "sets",
    "deletes",
    "evictions",
    "expirations",
    "errors",
    "short_circuited",
    "integrity_errors",
    # stampede protection (get_or_set)
    "computations",
    "waits",
    "lock_timeouts",
    "early_refreshes",
    # tags
    "tag_invalidations",
    "stale_by_tag",
)


class CacheStats:
    """Counters for one alias. Read with :meth:`snapshot`, zero with :meth:`reset`."""

    __slots__ = COUNTERS

    hits: int
    misses: int
    sets: int
    deletes: int
    evictions: int
    expirations: int
    errors: int
    short_circuited: int
    integrity_errors: int
    computations: int
    waits: int
    lock_timeouts: int
    early_refreshes: int
    tag_invalidations: int
    stale_by_tag: int

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


_registry: dict[str, CacheStats] = {}
_registry_lock = threading.Lock()


def stats_for(identity: str) -> CacheStats:
    """The shared counters for an alias identity (created on first use)."""
    stats = _registry.get(identity)
    if stats is None:
        with _registry_lock:
            stats = _registry.setdefault(identity, CacheStats())
    return stats


def all_stats() -> list[CacheStats]:
    """Every alias identity's counters in this process (no lock: a forked child reads
    them in its first moments, when another thread's lock may be held for ever)."""
    return list(_registry.values())
