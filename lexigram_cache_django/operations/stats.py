"""``alias_stats``: counters per process and site-wide, latency, server figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.cache.backends.base import BaseCache

from .. import site_metrics
from ..backends.base import LexigramCache
from ..backends.tiered.core import TieredCore
from ..metrics import LatencyHistogram, histograms
from .common import backend_name, cache_of, location_of, ms, ratio


def server_names(cache: BaseCache) -> list[str]:
    """The servers whose latency histograms belong to ``cache`` (tiered: its L2's)."""
    if isinstance(cache, TieredCore):
        return server_names(cache._l2)
    client = getattr(cache, "_client", None)
    names = getattr(client, "names", None)
    if names is not None:
        return list(names)
    name = getattr(client, "name", None)
    return [name] if isinstance(name, str) else []


def latency_of(cache: BaseCache) -> LatencyHistogram:
    """This process's command latency to the alias's servers, merged."""
    merged = LatencyHistogram()
    known = histograms()
    for name in server_names(cache):
        if name in known:
            merged.merge(known[name])
    return merged


def _server_figures(cache: BaseCache, store: dict[str, Any]) -> dict[str, Any] | None:
    """What the server itself says, labelled by where it comes from."""
    if isinstance(cache, TieredCore):
        return None
    name = backend_name(cache)
    if name == "redis":
        return {"source": "redis INFO", **store}
    if name == "memcached":
        return {"source": "memcached stats", **store}
    if name == "memory":
        return {"source": "memory store (this process)", **store}
    return _django_server_figures(cache)


def _django_server_figures(cache: BaseCache) -> dict[str, Any] | None:
    """Figures Django's own backends can give (entries of LocMem, INFO, memcached stats)."""
    try:
        inner: Any = getattr(cache, "_cache", None)
        if isinstance(inner, dict):
            return {"source": "locmem (this process)", "entries": len(inner)}
        if hasattr(inner, "get_client"):  # django.core.cache.backends.redis
            info = inner.get_client(write=False).info()
            keep = ("redis_version", "used_memory", "maxmemory", "maxmemory_policy")
            return {"source": "redis INFO", **{k: info.get(k) for k in keep}}
        if hasattr(inner, "get_stats"):  # pymemcache / pylibmc clients
            return {"source": "memcached stats", "servers": repr(inner.get_stats())[:500]}
    except Exception as exc:  # a stats page must not fail because a server is down
        return {"source": "server", "server_error": f"{type(exc).__name__}: {exc}"}
    return None


#: Per-alias figures of features that live above this layer, by name: the semantic cache
#: (a leaf, which this module may not import) adds its counters here when it is imported.
#: Each source returns None when it has nothing for the alias.
STATS_SOURCES: dict[str, Callable[[str], dict[str, Any] | None]] = {}


def add_stats_source(name: str, source: Callable[[str], dict[str, Any] | None]) -> None:
    """Show ``source(alias)`` under ``features[name]`` of :func:`alias_stats`."""
    STATS_SOURCES[name] = source


def _features(alias: str) -> dict[str, Any]:
    found = {name: source(alias) for name, source in list(STATS_SOURCES.items())}
    return {name: figures for name, figures in found.items() if figures is not None}


def alias_stats(alias: str) -> dict[str, Any]:
    """One alias's entry of ``cache stats --json`` (docs/operations.md has the schema)."""
    cache = cache_of(alias)
    data: dict[str, Any] = {
        "alias": alias,
        "backend": backend_name(cache),
        "location": location_of(alias),
        "lexigram": isinstance(cache, LexigramCache),
        "process": None,
        "site": None,
        "site_scope": None,
        "hit_ratio": None,
        "latency": None,
        "server": None,
        "tiers": None,
        "features": _features(alias),
    }
    if not isinstance(cache, LexigramCache):
        data["server"] = _django_server_figures(cache)
        return data
    counters = cache.counters.snapshot()
    data["process"] = {**counters, "hit_ratio": ratio(counters["hits"], counters["misses"])}
    site = site_metrics.site_totals(alias)
    if site is not None:
        data["site"] = {**site, "hit_ratio": ratio(site["hits"], site["misses"])}
        data["site_scope"] = "site"
        data["hit_ratio"] = data["site"]["hit_ratio"]
    else:
        data["site_scope"] = "process"
        data["hit_ratio"] = data["process"]["hit_ratio"]
    hist = latency_of(cache)
    data["latency"] = {
        "count": hist.total,
        "p50_ms": ms(hist.percentile(0.5)),
        "p99_ms": ms(hist.percentile(0.99)),
        "scope": "process",
    }
    store = cache.store_stats()
    if isinstance(cache, TieredCore):
        data["tiers"] = {key: value for key, value in store.items() if key not in ("l1", "l2")} | {
            "l1": _tier_brief(store.get("l1")),
            "l2": _tier_brief(store.get("l2")),
        }
    else:
        data["server"] = _server_figures(cache, store)
    return data


def _tier_brief(stats: Any) -> dict[str, Any] | None:
    if not isinstance(stats, dict):
        return None
    keep = ("backend", "location", "hits", "misses", "sets", "errors", "entries", "hit_rate")
    return {key: stats.get(key) for key in keep}
