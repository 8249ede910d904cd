"""What the cache pages show, gathered from ``operations`` and ``site_metrics``.

Kept apart from the views so the list, the alias page and the JSON endpoint show the same
figures, computed the same way, as ``manage.py cache stats --json`` (both read
``operations.alias_stats``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from django.core.cache import caches
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import operations, site_metrics
from ..backends.base import LexigramCache
from .charts import charts_for, ratio_of

#: Shown for a figure nobody knows (an en dash).
DASH = "\u2013"

#: Counters shown on the alias page, in order, with their labels.
COUNTER_LABELS: tuple[tuple[str, str], ...] = (
    ("hits", gettext_noop("Hits")),
    ("misses", gettext_noop("Misses")),
    ("sets", gettext_noop("Sets")),
    ("deletes", gettext_noop("Deletes")),
    ("evictions", gettext_noop("Evictions")),
    ("expirations", gettext_noop("Expirations")),
    ("errors", gettext_noop("Errors")),
    ("short_circuited", gettext_noop("Short-circuited calls")),
    ("tag_invalidations", gettext_noop("Tag invalidations")),
    ("stale_by_tag", gettext_noop("Stale by tag")),
    ("computations", gettext_noop("Computations (get_or_set)")),
    ("waits", gettext_noop("Waits for another computation")),
    ("lock_timeouts", gettext_noop("Lock timeouts")),
    ("early_refreshes", gettext_noop("Early refreshes")),
)

STATUS_LABELS = {
    "up": gettext_noop("up"),
    "degraded": gettext_noop("degraded"),
    "down": gettext_noop("down"),
    "breaker_open": gettext_noop("breaker open"),
}


def hour_ratio(series: list[dict[str, Any]]) -> float | None:
    """The hit ratio over the rows of ``series`` (None when nothing was read)."""
    total = {"hits": sum(int(r.get("hits") or 0) for r in series)}
    total["misses"] = sum(int(r.get("misses") or 0) for r in series)
    return ratio_of(total)


def percent(value: Any) -> str:
    return DASH if value is None else f"{float(value) * 100:.1f}%"


def number(value: Any) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def totals(stats: Mapping[str, Any]) -> Mapping[str, Any]:
    """The counters to show: site-wide totals when the alias has them, else this process's
    (the same choice as ``stats["hit_ratio"]``); empty for Django's own backends."""
    for scope in ("site", "process"):
        if isinstance(stats.get(scope), Mapping):
            return stats[scope]  # type: ignore[no-any-return]
    return {}


def server_of(stats: Mapping[str, Any]) -> Mapping[str, Any]:
    server = stats.get("server")
    return server if isinstance(server, Mapping) else {}


def memory_of(stats: Mapping[str, Any], health: Mapping[str, Any]) -> str | None:
    """Memory used (and the limit) where the server tells."""
    used, limit = health.get("memory_used"), health.get("memory_limit")
    if used is None:
        return None
    shown = filesizeformat(used)
    return f"{shown} / {filesizeformat(limit)}" if limit else str(shown)


def alias_row(alias: str) -> dict[str, Any]:
    """One row of the alias list."""
    stats = operations.alias_stats(alias)
    health = operations.alias_health(alias)
    counted = totals(stats)
    ratio = hour_ratio(site_metrics.series(alias, minutes=60))
    return {
        "alias": alias,
        "backend": stats.get("backend", ""),
        "location": stats.get("location", ""),
        "status": health.get("status", "down"),
        "status_label": _(STATUS_LABELS.get(str(health.get("status")), "down")),
        "hour_ratio": ratio,
        "hour_ratio_display": percent(ratio),
        "hits": counted.get("hits"),
        "misses": counted.get("misses"),
        "errors": counted.get("errors"),
        "entries": server_of(stats).get("entries"),
        "memory": memory_of(stats, health),
        "scope": _(_SCOPES.get(str(stats.get("site_scope")), gettext_noop("not counted"))),
    }


_SCOPES = {"site": gettext_noop("site-wide"), "process": gettext_noop("this process")}


def flat(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested mapping as (dotted name, shown value) rows, for the server-info tables."""
    rows: list[tuple[str, str]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping):
                rows.extend(flat(value, name + "."))
            elif isinstance(value, list | tuple) and value and isinstance(value[0], Mapping):
                for i, item in enumerate(value):
                    rows.extend(flat(item, f"{name}[{i}]."))
            else:
                rows.append((name, number(value)))
    return rows


def alias_page(alias: str, now: float | None = None, *, day: bool = True) -> dict[str, Any]:
    """Everything the alias page and its JSON endpoint show; without ``day``, only the
    last hour's charts (a day's series is 1,440 buckets to read: the live refresh asks for
    it once a minute, not every few seconds)."""
    now = time.time() if now is None else now
    stats = operations.alias_stats(alias)
    health = operations.alias_health(alias)
    counted = totals(stats)
    rows = site_metrics.series(alias, minutes=1440 if day else 60)
    hour = [r for r in rows if int(r.get("minute") or 0) > now - 3600]
    figures: dict[str, str] = {
        "status": str(_(STATUS_LABELS.get(str(health.get("status")), "down"))),
        "hour_ratio": percent(hour_ratio(hour)),
        "hit_ratio": percent(stats.get("hit_ratio", stats.get("hit_rate"))),
    }
    for name, _label in COUNTER_LABELS:
        figures[name] = number(counted.get(name))
    latency = stats.get("latency") or {}
    figures["p50"] = _ms(latency.get("p50_ms"))
    figures["p99"] = _ms(latency.get("p99_ms"))
    return {
        "alias": alias,
        "stats": stats,
        "health": health,
        "figures": figures,
        "counters": [(name, _(label), figures[name]) for name, label in COUNTER_LABELS],
        "charts": charts_for(rows, now, day=day),
        "breakers": _breakers(health),
        "server_rows": flat({**server_of(stats), **redis_extras(alias)}),
        "health_rows": flat({k: v for k, v in health.items() if k not in _SHOWN_ELSEWHERE}),
        "tiers": _tiers(stats),
        "features": [
            (name, flat(dict(figures))) for name, figures in (stats.get("features") or {}).items()
        ],
    }


def _ms(value: Any) -> str:
    return DASH if value is None else f"{float(value):.2f} ms"


def _breakers(health: Mapping[str, Any]) -> list[dict[str, Any]]:
    servers = health.get("servers") or []
    return [dict(s) for s in servers if isinstance(s, Mapping)]


_SHOWN_ELSEWHERE = ("servers", "alias", "backend", "location", "status")


def _tiers(stats: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per-tier tables of a tiered alias: L1, L2, and the tiering's own figures."""
    tiers = stats.get("tiers")
    if not isinstance(tiers, Mapping):
        return []
    shown = [(name.upper(), flat(tiers[name])) for name in ("l1", "l2") if tiers.get(name)]
    rest = {k: v for k, v in tiers.items() if k not in ("l1", "l2")}
    return [*shown, (_("tiering"), flat(rest))]


#: Redis INFO fields the page shows besides ``operations.alias_stats``'s.
REDIS_EXTRA_FIELDS = (
    "used_memory_peak",
    "used_memory_peak_human",
    "maxmemory_human",
    "mem_fragmentation_ratio",
    "role",
)


def redis_extras(alias: str) -> dict[str, Any]:
    """Peak memory and the keyspace (``INFO``'s ``dbN`` lines) of a Redis alias, which
    ``alias_stats`` leaves out; empty for other backends or a server that cannot answer."""
    cache = caches[alias]
    if not isinstance(cache, LexigramCache) or cache.backend_name != "redis":
        return {}
    get_client = getattr(cache, "get_client", None)
    if get_client is None:
        return {}
    try:
        info = get_client(write=False).info()
    except Exception:  # a stats page must not fail because a server is down
        return {}
    extras: dict[str, Any] = {name: info[name] for name in REDIS_EXTRA_FIELDS if name in info}
    keyspace = {name: info[name] for name in sorted(info) if re.fullmatch(r"db\d+", name)}
    if keyspace:
        extras["keyspace"] = keyspace
    return extras
