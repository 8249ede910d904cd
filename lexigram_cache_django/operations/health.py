"""``alias_health``: status, ping, breaker, version, memory, eviction policy."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.core.cache.backends.base import BaseCache

from ..backends.base import LexigramCache
from ..backends.tiered.core import TieredCore
from ..failfast import one_operation
from .common import backend_name, cache_of, location_of, ms

_STATUS_ORDER = ("up", "degraded", "breaker_open", "down")


def alias_health(alias: str) -> dict[str, Any]:
    """``status`` (up / degraded / breaker_open / down), ping, breaker, version, memory."""
    cache = cache_of(alias)
    data: dict[str, Any] = {
        "alias": alias,
        "backend": backend_name(cache),
        "location": location_of(alias),
        "status": "up",
        "ping_ms": None,
        "breaker": None,
        "version": None,
        "memory_used": None,
        "memory_limit": None,
        "eviction_policy": None,
        "servers": [],
        "error": None,
    }
    if not isinstance(cache, LexigramCache):
        return _django_health(cache, data)
    probe = cache._l2 if isinstance(cache, TieredCore) else cache
    with one_operation():
        health = probe.health()
    servers = health.get("servers", [])
    data["servers"] = servers
    status = health["status"]
    if servers:
        first = servers[0]
        data["ping_ms"] = first.get("ping_ms")
        data["breaker"] = first.get("state")
        data["error"] = first.get("error")
        broken = [s for s in servers if s.get("ping_ms") is None]
        if status == "down" and broken and all(s.get("state") == "open" for s in broken):
            status = "breaker_open"
    data["status"] = status
    if status in ("up", "degraded"):
        data.update(_memory_figures(probe))
    return data


def _memory_figures(cache: LexigramCache) -> dict[str, Any]:
    store = cache.store_stats()
    name = cache.backend_name
    if name == "redis":
        return {
            "version": store.get("redis_version"),
            "memory_used": store.get("used_memory"),
            "memory_limit": store.get("maxmemory") or None,
            "eviction_policy": store.get("maxmemory_policy"),
        }
    if name == "memcached":
        nodes = [n for n in store.get("servers", {}).values() if "error" not in n]
        versions = sorted({str(n.get("version")) for n in nodes})
        return {
            "version": ", ".join(versions) or None,
            "memory_used": sum(int(n.get("bytes") or 0) for n in nodes),
            "memory_limit": sum(int(n.get("limit_maxbytes") or 0) for n in nodes) or None,
            "eviction_policy": "lru",
        }
    if name == "memory":
        return {
            "memory_used": None,
            "memory_limit": None,
            "eviction_policy": f"lru (MAX_ENTRIES {store.get('max_entries')})",
        }
    return {}


def _django_health(cache: BaseCache, data: dict[str, Any]) -> dict[str, Any]:
    """Django's own backends: one read of a key nobody writes, timed."""
    start = time.perf_counter()
    try:
        cache.get("lexigram-cache:health-probe")
    except Exception as exc:
        data["status"] = "down"
        data["error"] = f"{type(exc).__name__}: {exc}"
    else:
        data["ping_ms"] = ms(time.perf_counter() - start)
    return data


def worst_status(statuses: Sequence[str]) -> str:
    """The worst of several health statuses (``up`` if none)."""
    return max(statuses, key=_STATUS_ORDER.index, default="up")
