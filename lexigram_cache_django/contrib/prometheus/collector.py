"""The cache's counters and breakers as Prometheus metric families, read at scrape time.

:data:`FAMILIES` declares every family once (name, type, help, labels, how multiprocess
mode aggregates it); :func:`samples` reads the values from each alias's counters and
breakers; :class:`CacheCollector` turns them into prometheus-client families for a
registry. A new family is one :class:`Family` line plus its values in :func:`samples`. The
command latency histograms (``metrics.LatencyHistogram``, kept per server at each client's
choke point) are one histogram family, :data:`LATENCY`, read by :func:`latency_samples`.

Nothing here runs on a cache call: the collector reads the counters the backends keep
anyway, when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ...backends.base import LexigramCache
from ...circuit import CircuitBreaker
from ...metrics import LATENCY_BOUNDS, CacheStats, LatencyHistogram, histograms

__all__ = [
    "FAMILIES",
    "LATENCY",
    "CacheCollector",
    "Family",
    "latency_samples",
    "lexigram_aliases",
    "samples",
]


@dataclass(frozen=True)
class Family:
    """One metric family. ``name`` is without ``_total`` (prometheus-client adds it)."""

    name: str
    kind: str  # "counter" or "gauge"
    doc: str
    labels: tuple[str, ...]
    #: prometheus-client's Gauge ``multiprocess_mode`` (gauges only): how the values of
    #: several processes combine.
    multiprocess_mode: str = "livesum"


FAMILIES: tuple[Family, ...] = (
    Family("lexigram_cache_operations", "counter",
           "Cache operations by result (get: hit/miss; set, delete: ok).",
           ("alias", "op", "result")),
    Family("lexigram_cache_evictions", "counter", "Entries dropped to make room.", ("alias",)),
    Family("lexigram_cache_expirations", "counter", "Entries found expired on read.", ("alias",)),
    Family("lexigram_cache_errors", "counter",
           "Server errors and unreadable payloads (fail-open).", ("alias",)),
    Family("lexigram_cache_short_circuited", "counter",
           "Calls not sent: the server's breaker was open or it failed within the operation.",
           ("alias",)),
    Family("lexigram_cache_integrity_errors", "counter",
           "Payloads whose signature did not verify.", ("alias",)),
    Family("lexigram_cache_stampede_events", "counter",
           "get_or_set: computations, waits, lock timeouts, early (XFetch) refreshes.",
           ("alias", "event")),
    Family("lexigram_cache_tag_invalidations", "counter", "Tags invalidated.", ("alias",)),
    Family("lexigram_cache_stale_by_tag", "counter",
           "Entries read as misses because a tag was invalidated.", ("alias",)),
    Family("lexigram_cache_entries", "gauge",
           "Entries in the in-process store (memory backends).", ("alias",), "livesum"),
    Family("lexigram_cache_circuit_state", "gauge",
           "1 for the state each server's breaker is in (closed, open, half-open).",
           ("alias", "server", "state"), "livemax"),
    Family("lexigram_cache_circuit_opened", "counter",
           "Times the server's breaker opened.", ("alias", "server")),
    Family("lexigram_cache_circuit_short_circuited", "counter",
           "Calls the server's breaker short-circuited.", ("alias", "server")),
)  # fmt: skip

_OPERATIONS = (("get", "hit", "hits"), ("get", "miss", "misses"), ("set", "ok", "sets"),
               ("delete", "ok", "deletes"))  # fmt: skip
_SINGLE = {
    "lexigram_cache_evictions": "evictions",
    "lexigram_cache_expirations": "expirations",
    "lexigram_cache_errors": "errors",
    "lexigram_cache_short_circuited": "short_circuited",
    "lexigram_cache_integrity_errors": "integrity_errors",
    "lexigram_cache_tag_invalidations": "tag_invalidations",
    "lexigram_cache_stale_by_tag": "stale_by_tag",
}
_STAMPEDE = (("computation", "computations"), ("wait", "waits"),
             ("lock_timeout", "lock_timeouts"), ("early_refresh", "early_refreshes"))  # fmt: skip
_STATES = ("closed", "open", "half-open")

Samples = dict[str, list[tuple[tuple[str, ...], float]]]


def lexigram_aliases() -> Iterator[tuple[str, LexigramCache]]:
    """``(alias, backend)`` for every lexigram alias of ``CACHES`` (this thread's objects)."""
    for alias in settings.CACHES:
        cache = caches[alias]
        if isinstance(cache, LexigramCache):
            yield str(alias), cache


#: Counts to leave out, per counters object and per breaker (what a forked child inherited).
StatsBase = Mapping[CacheStats, Mapping[str, int]]
BreakerBase = Mapping[CircuitBreaker, tuple[int, int]]


def samples(
    stats_base: StatsBase | None = None, breaker_base: BreakerBase | None = None
) -> Samples:
    """Every family's ``(label values, value)`` pairs, read from counters and breakers
    (less the bases, if given)."""
    found: Samples = {family.name: [] for family in FAMILIES}
    for alias, cache in lexigram_aliases():
        counts = cache.counters.snapshot()
        base = (stats_base or {}).get(cache.counters)
        if base:
            counts = {name: value - base.get(name, 0) for name, value in counts.items()}
        for op, result, counter in _OPERATIONS:
            found["lexigram_cache_operations"].append(((alias, op, result), counts[counter]))
        for name, counter in _SINGLE.items():
            found[name].append(((alias,), counts[counter]))
        for event, counter in _STAMPEDE:
            found["lexigram_cache_stampede_events"].append(((alias, event), counts[counter]))
        if cache.backend_name == "memory":
            entries = cache.store_stats().get("entries", 0)
            found["lexigram_cache_entries"].append(((alias,), entries))
        for breaker in cache.breakers():
            snap = breaker.snapshot()
            for state in _STATES:
                value = 1.0 if snap.state.value == state else 0.0
                found["lexigram_cache_circuit_state"].append(((alias, snap.server, state), value))
            opened, short = (breaker_base or {}).get(breaker, (0, 0))
            server = (alias, snap.server)
            found["lexigram_cache_circuit_opened"].append((server, snap.times_opened - opened))
            found["lexigram_cache_circuit_short_circuited"].append(
                (server, snap.short_circuited - short)
            )
    return found


#: The histogram family: seconds per command (or pipeline) sent to each server of an alias.
LATENCY = "lexigram_cache_command_duration_seconds"
LATENCY_DOC = "Seconds per command (or pipeline) at the client's choke point, by server."
LATENCY_LABELS = ("alias", "server")
#: Per histogram, what to leave out (a forked child's inheritance): (bucket counts, sum).
LatencyBase = Mapping[LatencyHistogram, tuple[list[int], float]]
LatencySample = tuple[tuple[str, str], LatencyHistogram, list[int], float]


def latency_samples(base: LatencyBase | None = None) -> list[LatencySample]:
    """``((alias, server), histogram, bucket counts, sum)`` for each server of each alias
    that has sent a command (counts per bucket, not cumulative; less ``base``)."""
    found: list[LatencySample] = []
    known = histograms()
    for alias, cache in lexigram_aliases():
        for breaker in cache.breakers():
            hist = known.get(breaker.server)
            if hist is None:
                continue
            counts, total = list(hist.counts), hist.sum
            inherited = (base or {}).get(hist)
            if inherited:
                counts = [c - b for c, b in zip(counts, inherited[0])]
                total -= inherited[1]
            found.append(((alias, breaker.server), hist, counts, total))
    return found


def _latency_family() -> HistogramMetricFamily:
    return HistogramMetricFamily(LATENCY, LATENCY_DOC, labels=LATENCY_LABELS)


def _family(family: Family) -> CounterMetricFamily | GaugeMetricFamily:
    if family.kind == "counter":
        return CounterMetricFamily(family.name, family.doc, labels=family.labels)
    return GaugeMetricFamily(family.name, family.doc, labels=family.labels)


class CacheCollector(Collector):
    """A prometheus-client collector of every lexigram alias of this process.

    Register it on a registry (:func:`~.install` does, on the default one, outside
    multiprocess mode); each scrape reads the counters, nothing is kept.
    """

    def describe(self) -> Iterable[Metric]:
        """The families without values: registering touches no cache."""
        return [*(_family(family) for family in FAMILIES), _latency_family()]

    def collect(self) -> Iterable[Metric]:
        values = samples()
        for family in FAMILIES:
            metric = _family(family)
            for labels, value in values[family.name]:
                metric.add_metric(list(labels), value)
            yield metric
        latency = _latency_family()
        bounds = [*(str(b) for b in LATENCY_BOUNDS), "+Inf"]
        for labels, _hist, counts, total in latency_samples():
            running, buckets = 0, []
            for bound, count in zip(bounds, counts):
                running += count
                buckets.append((bound, float(running)))
            latency.add_metric(list(labels), buckets, total)
        yield latency


def family(name: str) -> Family:
    """The declaration of family ``name``."""
    for declared in FAMILIES:
        if declared.name == name:
            return declared
    raise KeyError(name)
