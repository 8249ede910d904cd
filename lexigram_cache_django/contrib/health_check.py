"""A django-health-check (4.x) check per cache alias: ``pip install lexigram-cache-django[health]``.

    # urls.py
    from health_check.views import HealthCheckView
    from lexigram_cache_django.contrib.health_check import cache_checks

    checks = [*cache_checks(), "health_check.checks.Database"]
    path("health/", HealthCheckView.as_view(checks=checks))

``cache_checks()`` lists one :class:`CacheHealth` per alias of
``LEXIGRAM_CACHE["HEALTH_CACHES"]`` (every alias of ``CACHES`` by default), so the page shows
each alias on its own line. A check reads the alias's ``health()`` (a ping through each
server's choke point, its breaker's state): ``down`` raises ``ServiceUnavailable``,
``degraded`` raises ``ServiceWarning`` (django-health-check 4.x answers 500 for both) unless
``degraded_ok=True``. Messages name servers by their masked addresses only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from health_check import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from .health import alias_health, health_aliases

__all__ = ["CacheHealth", "cache_checks"]


@dataclasses.dataclass
class CacheHealth(HealthCheck):
    """One alias: red when it is down (its primary, or every node, does not answer)."""

    alias: str = "default"
    #: Pass a degraded alias (a replica or one memcached node down, a breaker not closed).
    degraded_ok: bool = dataclasses.field(default=False, repr=False)

    def run(self) -> None:  # a sync check: django-health-check runs it in an executor
        report = alias_health(self.alias)
        status = report["status"]
        if status == "up" or (status == "degraded" and self.degraded_ok):
            return
        detail = _detail(report)
        if status == "down":
            raise ServiceUnavailable(f"cache {self.alias!r} is down{detail}")
        raise ServiceWarning(f"cache {self.alias!r} is degraded{detail}")


def _detail(report: dict[str, Any]) -> str:
    """The failing servers and their errors (masked), or the report's own error."""
    if report.get("error"):
        return f": {report['error']}"
    bad = [
        f"{s['server']} {s['state']}" + (f" ({s['error'] or s['last_error']})" if s.get("error")
                                         or s.get("last_error") else "")
        for s in report.get("servers", ())
        if s.get("ping_ms") is None or s.get("state") != "closed"
    ]  # fmt: skip
    return f": {'; '.join(bad)}" if bad else ""


def cache_checks(
    aliases: list[str] | None = None, **options: Any
) -> list[tuple[type[CacheHealth], dict[str, Any]]]:
    """``HealthCheckView(checks=...)`` entries: one :class:`CacheHealth` per alias
    (``aliases``, or ``HEALTH_CACHES``), each with ``options`` (``degraded_ok=True``)."""
    return [(CacheHealth, {"alias": a, **options}) for a in aliases or health_aliases()]
