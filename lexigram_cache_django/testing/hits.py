"""Hits and misses per alias inside a ``with`` block, from the per-alias counters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches

from ..backends.base import LexigramCache


@dataclass(frozen=True)
class HitCounts:
    """What one alias counted since the block started."""

    hits: int
    misses: int
    sets: int

    @property
    def total(self) -> int:
        return self.hits + self.misses


class CacheHits:
    """Live differences of each lexigram alias's counters since the block started.

    ``hits["default"].hits``; read inside the block or after it (then frozen at its end).
    Counters are per alias and process-wide: another thread using the alias counts too.
    """

    def __init__(self, aliases: tuple[str, ...]) -> None:
        self._start: dict[str, dict[str, int]] = {}
        self._end: dict[str, dict[str, int]] | None = None
        for alias in aliases:
            cache = caches[alias]
            if not isinstance(cache, LexigramCache):
                raise TypeError(
                    f"cache {alias!r} ({type(cache).__name__}) keeps no counters: "
                    "count_cache_hits needs a lexigram backend"
                )
            self._start[alias] = cache.counters.snapshot()

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(self._start)

    def _now(self, alias: str) -> dict[str, int]:
        if self._end is not None:
            return self._end[alias]
        cache = caches[alias]
        assert isinstance(cache, LexigramCache)
        return cache.counters.snapshot()

    def __getitem__(self, alias: str) -> HitCounts:
        if alias not in self._start:
            raise KeyError(f"{alias!r} is not counted here (counted: {', '.join(self._start)})")
        now, start = self._now(alias), self._start[alias]
        return HitCounts(*(now[name] - start[name] for name in ("hits", "misses", "sets")))

    def stop(self) -> None:
        self._end = {alias: self._now(alias) for alias in self._start}

    def __repr__(self) -> str:
        return f"CacheHits({ {alias: self[alias] for alias in self._start} })"


@contextmanager
def count_cache_hits(*aliases: str) -> Iterator[CacheHits]:
    """Count hits and misses of ``aliases`` (default: every lexigram alias) in the block."""
    if not aliases:
        aliases = tuple(a for a in settings.CACHES if isinstance(caches[a], LexigramCache))
    counted = CacheHits(aliases)
    try:
        yield counted
    finally:
        counted.stop()
