"""Per-alias counters, cheap enough to keep on every call.

Django builds one backend object per thread per alias, so counters live in a
process-wide registry keyed by the alias's identity (backend class, location, key prefix
and version); every thread's object of one alias shares the same :class:`CacheStats`.
Increments are plain attribute updates: exact where the backend holds a lock (memory),
and at worst off by a rare lost increment under heavy thread contention elsewhere.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

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


# -- latency histograms ---------------------------------------------------------------------

#: Upper bounds (seconds) of the latency buckets, fixed so that histograms of every process
#: and server can be added up (and exposed as Prometheus ``le`` buckets). Roughly x1.5 apart
#: from 50 us to 10 s; a last, unbounded bucket catches the rest.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.00005, 0.000075, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075,
    0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class LatencyHistogram:
    """Counts of call durations in :data:`LATENCY_BOUNDS` buckets, kept at a client's
    choke point: one ``bisect`` and two additions per call (no lock: a rare lost count
    under contention is the price of staying off the hot path's critical section)."""

    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * (len(LATENCY_BOUNDS) + 1)
        self.total = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.total += 1
        self.sum += seconds

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts to this one (a view over several servers)."""
        for i, count in enumerate(other.counts):
            self.counts[i] += count
        self.total += other.total
        self.sum += other.sum

    def percentile(self, q: float) -> float | None:
        """The ``q``-quantile (0 < q <= 1) in seconds, interpolated within its bucket; None
        before any observation. Accurate to a bucket's width (about +-25 %)."""
        if not 0.0 < q <= 1.0:
            raise ValueError(f"q must be in (0, 1], not {q!r}")
        total = sum(self.counts)
        if not total:
            return None
        rank = q * total
        seen = 0
        for i, count in enumerate(self.counts):
            if count and seen + count >= rank:
                low = LATENCY_BOUNDS[i - 1] if i else 0.0
                high = LATENCY_BOUNDS[i] if i < len(LATENCY_BOUNDS) else low * 2
                return low + (high - low) * (rank - seen) / count
            seen += count
        return LATENCY_BOUNDS[-1]

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` pairs, the last bound ``inf``
        (Prometheus' ``le`` buckets)."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*LATENCY_BOUNDS, float("inf")), self.counts):
            running += count
            out.append((bound, running))
        return out

    def reset(self) -> None:
        self.counts = [0] * (len(LATENCY_BOUNDS) + 1)
        self.total = 0
        self.sum = 0.0


_histograms: dict[str, LatencyHistogram] = {}


def histogram_for(server: str) -> LatencyHistogram:
    """The process-wide latency histogram of one server (created on first use)."""
    found = _histograms.get(server)
    if found is None:
        with _registry_lock:
            found = _histograms.setdefault(server, LatencyHistogram())
    return found


def histograms() -> dict[str, LatencyHistogram]:
    """Every server's histogram, by server name (for exporters)."""
    return dict(_histograms)


def registered_stats() -> dict[str, CacheStats]:
    """Every alias identity's counters in this process (for the site-wide flusher)."""
    return dict(_registry)
