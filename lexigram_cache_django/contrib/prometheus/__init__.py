"""Prometheus metrics for every cache alias: ``pip install lexigram-cache-django[prometheus]``.

    INSTALLED_APPS = [..., "lexigram_cache_django.contrib.prometheus"]
    # urls.py
    path("metrics", include("lexigram_cache_django.contrib.prometheus.urls")),

Families (``alias`` label on each; see ``docs/metrics.md``): ``lexigram_cache_operations_total
{alias,op,result}``, ``lexigram_cache_evictions_total``, ``..._errors_total``,
``..._short_circuited_total``, ``..._stampede_events_total{event}``,
``..._tag_invalidations_total``, ``lexigram_cache_entries``,
``lexigram_cache_circuit_state{server,state}`` and the breakers' counters.

One process: a :class:`~.collector.CacheCollector` on prometheus-client's default registry,
read at scrape time. ``PROMETHEUS_MULTIPROC_DIR`` set: each process mirrors its counters
into prometheus-client's files instead (:mod:`.mirror`), and the view aggregates them.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry

from .collector import FAMILIES, CacheCollector, Family, samples
from .mirror import MIRROR, multiprocess_dir, start_mirror

__all__ = [
    "FAMILIES",
    "MIRROR",
    "CacheCollector",
    "Family",
    "install",
    "multiprocess_dir",
    "samples",
]

_installed: dict[int, CacheCollector] = {}


def install(registry: CollectorRegistry = REGISTRY) -> CacheCollector | None:
    """Export this process's caches (idempotent): the collector on ``registry``, or in
    multiprocess mode the mirror thread (returns None then)."""
    if multiprocess_dir():
        start_mirror()
        return None
    collector = _installed.get(id(registry))
    if collector is None:
        collector = _installed[id(registry)] = CacheCollector()
        registry.register(collector)
    return collector
