"""``doctor``: every system check, then a live look at each server."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.core import checks

from ..backends.base import LexigramCache
from ..backends.tiered.core import TieredCore
from ..exceptions import CacheDecodeError, CacheServerError
from .common import aliases, cache_of
from .health import alias_health


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of :func:`doctor`: ``level`` is ``"error"``, ``"warning"`` or ``"info"``."""

    level: str
    code: str
    message: str
    alias: str | None = None
    hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Seconds of clock difference with a server above which doctor warns (expiry and XFetch
#: use absolute times written by one host and read by another).
CLOCK_SKEW_WARNING = 2.0
#: Entries sampled per Redis alias to see whether this process can read what is stored.
DOCTOR_SAMPLE = 50


def doctor() -> list[Finding]:
    """Every system check, then what only a live look shows, alias by alias."""
    findings: list[Finding] = []
    for message in checks.run_checks(include_deployment_checks=False):
        level = "error" if message.level >= checks.ERROR else "warning"
        if message.level < checks.WARNING:
            level = "info"
        findings.append(
            Finding(level, message.id or "check", message.msg, None, message.hint or "")
        )
    for alias in aliases():
        findings.extend(_live_findings(alias))
    return findings


def _live_findings(alias: str) -> list[Finding]:
    cache = cache_of(alias)
    health = alias_health(alias)
    if health["status"] in ("down", "breaker_open"):
        return [
            Finding(
                "error",
                "lexigram_cache.D001",
                f"cache {alias!r} at {health['location']} is not reachable: {health['error']}",
                alias,
                "Start the server or fix LOCATION; reads fail open until it answers.",
            )
        ]
    found = [
        Finding("info", "lexigram_cache.D000", f"cache {alias!r} is {health['status']}", alias)
    ]
    if not isinstance(cache, LexigramCache) or isinstance(cache, TieredCore):
        return found
    if cache.backend_name == "redis":
        found += _redis_findings(alias, cache, health)
    elif cache.backend_name == "memcached":
        found += _memcached_findings(alias, cache)
    return found


def _redis_findings(alias: str, cache: Any, health: dict[str, Any]) -> list[Finding]:
    found: list[Finding] = []
    client: Any = cache._client
    if health.get("eviction_policy") == "noeviction":
        found.append(
            Finding(
                "warning",
                "lexigram_cache.D002",
                f"Redis of {alias!r} has maxmemory-policy noeviction: once full, writes fail.",
                alias,
                "Use allkeys-lru (or allkeys-lfu) for a server that holds a cache.",
            )
        )
    try:
        seconds, micros = client.send(client.primary, "TIME")
        found += _skew(alias, int(seconds) + int(micros) / 1e6)
        pattern = cache._alias_pattern()
        sample = list(itertools.islice(client.scan(client.primary, pattern), DOCTOR_SAMPLE))
        raws = client.get_many([k.decode(errors="replace") for k in sample], True) if sample else []
    except CacheServerError as exc:
        return [*found, Finding("error", "lexigram_cache.D001", f"{alias!r}: {exc}", alias)]
    found += _readability(alias, cache, [r for r in raws if r])
    return found


def _memcached_findings(alias: str, cache: LexigramCache) -> list[Finding]:
    found: list[Finding] = []
    client: Any = cache._client  # type: ignore[attr-defined]
    limit = cache.option("MAX_ITEM_BYTES")
    for name, node in client.nodes():
        try:
            settings_stats = node.stats("settings")
            general = node.stats()
        except Exception as exc:
            found.append(Finding("error", "lexigram_cache.D001", f"{alias!r} {name}: {exc}", alias))
            continue
        item_max = _stat(settings_stats, "item_size_max")
        if item_max is not None and limit is not None and int(limit) > int(item_max):
            found.append(
                Finding(
                    "warning",
                    "lexigram_cache.D003",
                    f"{alias!r}: MAX_ITEM_BYTES is {limit} but memcached {name} stores items "
                    f"of at most {item_max} bytes.",
                    alias,
                    f"Set OPTIONS['MAX_ITEM_BYTES'] <= {item_max} or start memcached with -I.",
                )
            )
        server_time = _stat(general, "time")
        if server_time is not None:
            found += _skew(alias, float(server_time), tolerance=1.0)
    return found


def _stat(stats: dict[Any, Any], name: str) -> Any:
    for key, value in stats.items():
        if (key.decode() if isinstance(key, bytes) else str(key)) == name:
            return value.decode() if isinstance(value, bytes) else value
    return None


def _skew(alias: str, server_time: float, tolerance: float = 0.0) -> list[Finding]:
    skew = time.time() - server_time
    if abs(skew) <= CLOCK_SKEW_WARNING + tolerance:
        return []
    return [
        Finding(
            "warning",
            "lexigram_cache.D004",
            f"{alias!r}: this host's clock is {skew:+.1f}s off the server's.",
            alias,
            "Run NTP on both; entry expiry and early refresh use absolute times.",
        )
    ]


def _readability(alias: str, cache: LexigramCache, raws: Sequence[bytes]) -> list[Finding]:
    encoded = [bytes(r) for r in raws if r and r[0] >= 0x80]
    failures: dict[str, int] = {}
    for raw in encoded:
        try:
            cache.codec.decode_entry(raw)
        except CacheDecodeError as exc:
            reason = type(exc).__name__
            failures[reason] = failures.get(reason, 0) + 1
        except Exception as exc:  # a serializer's own error on foreign bytes
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
    if not failures:
        return []
    total = sum(failures.values())
    reasons = ", ".join(f"{n} {name}" for name, n in sorted(failures.items()))
    return [
        Finding(
            "warning",
            "lexigram_cache.D005",
            f"{alias!r}: {total} of {len(encoded)} sampled entries cannot be read with this "
            f"alias's SERIALIZER / SECRET_KEY / ENCRYPTION_KEY ({reasons}).",
            alias,
            "They read as misses. Add the old key to SECRET_KEY_FALLBACKS, restore the "
            "serializer, or clear the alias.",
        )
    ]
