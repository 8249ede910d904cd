"""System checks of a tiered alias's OPTIONS: ``check_tiered(alias, config)``.

Registered by ``checks.py`` for every alias whose backend is ``TieredCache``. It reports
what would otherwise fail at first use (a missing or unknown tier, a tier that is not a
lexigram backend, a bus over memcached) and warns when, without a bus, another process's
change can stay unseen for long: L1 copies then live up to ``L1_TIMEOUT``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.utils.module_loading import import_string

#: Without a bus, an L1 copy may be this stale (seconds) before the check warns.
LONG_L1_TIMEOUT = 60.0


def _backend_of(spec: Any) -> tuple[type | None, str | None]:
    """The tier's backend class, or an error message."""
    if isinstance(spec, str):
        conf = settings.CACHES.get(spec)
        if conf is None:
            return None, f"names no CACHES alias {spec!r}"
    elif isinstance(spec, dict):
        conf = spec
    else:
        return None, "must be a CACHES alias name or a CACHES-style dict"
    try:
        return import_string(conf["BACKEND"]), None
    except (ImportError, KeyError) as exc:
        return None, f"has no importable BACKEND ({exc})"


def check_tiered(alias: str, config: dict[str, Any]) -> list[CheckMessage]:
    """Errors and warnings for one tiered alias (``config`` is its CACHES entry)."""
    opts = config.get("OPTIONS") or {}
    found: list[CheckMessage] = []
    names: dict[str, str] = {}
    for tier in ("L1", "L2"):
        spec = opts.get(tier)
        if not spec:
            found.append(
                Error(
                    f"CACHES[{alias!r}] OPTIONS[{tier!r}] is required",
                    hint='e.g. "L1": "local" (a MemoryCache alias), "L2": "shared" (Redis)',
                    id="lexigram_cache.E101",
                )
            )
            continue
        cls, problem = _backend_of(spec)
        if problem is not None or cls is None:
            found.append(
                Error(f"CACHES[{alias!r}] OPTIONS[{tier!r}] {problem}", id="lexigram_cache.E102")
            )
            continue
        names[tier] = str(getattr(cls, "backend_name", ""))
        if names[tier] in ("", "base", "tiered"):
            found.append(
                Error(
                    f"CACHES[{alias!r}] OPTIONS[{tier!r}] must be a lexigram memory, Redis or "
                    f"Memcached backend, not {cls.__module__}.{cls.__qualname__}",
                    id="lexigram_cache.E103",
                )
            )
    if names.get("L1") not in (None, "memory"):
        found.append(
            Warning(
                f"CACHES[{alias!r}] L1 is a {names['L1']} backend: L1 is meant to be "
                "in-process (MemoryCache)",
                id="lexigram_cache.W101",
            )
        )
    timeout = opts.get("L1_TIMEOUT", 30)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        found.append(
            Error(
                f"CACHES[{alias!r}] OPTIONS['L1_TIMEOUT'] must be a number > 0, not {timeout!r}",
                id="lexigram_cache.E104",
            )
        )
        return found
    redis_l2 = names.get("L2") == "redis"
    bus = opts.get("BUS", redis_l2)
    if bus and names.get("L2") not in (None, "redis"):
        found.append(
            Error(
                f"CACHES[{alias!r}] OPTIONS['BUS'] needs a Redis L2 (pub/sub)",
                hint="With Memcached there is no bus: L1 copies live at most L1_TIMEOUT.",
                id="lexigram_cache.E105",
            )
        )
    elif not bus and timeout > LONG_L1_TIMEOUT:
        found.append(
            Warning(
                f"CACHES[{alias!r}] has no invalidation bus and L1_TIMEOUT={timeout:g}s: "
                "another process's change can stay unseen that long",
                hint=f"Use a Redis L2 with BUS on, or L1_TIMEOUT <= {LONG_L1_TIMEOUT:g}.",
                id="lexigram_cache.W102",
            )
        )
    return found
