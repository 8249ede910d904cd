"""A JSON health endpoint for every cache alias, for projects without django-health-check.

    # urls.py
    path("health/cache/", include("lexigram_cache_django.contrib.health")),

``GET health/cache/`` answers ``{"status": ..., "caches": {alias: report}}`` with HTTP 200
while every alias is ``up`` or ``degraded`` (still serving) and 503 when one is ``down``;
``GET health/cache/<alias>/`` reports one alias. A report is the backend's ``health()``
(each server's ping and breaker, addresses masked); an alias of another backend is probed
with a set and a get. The aliases reported are ``LEXIGRAM_CACHE["HEALTH_CACHES"]`` (every
alias of ``CACHES`` by default); ``?alias=a&alias=b`` narrows them.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import InvalidCacheBackendError, caches
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

from ..backends.base import LexigramCache
from ..conf import app_setting, mask_location

__all__ = ["STATUS_CODES", "alias_health", "health_aliases", "health_view", "urlpatterns"]

#: HTTP status per overall status: a degraded cache still serves (fails over, fails open).
STATUS_CODES = {"up": 200, "degraded": 200, "down": 503}
_RANK = {"up": 0, "degraded": 1, "down": 2}


def health_aliases() -> list[str]:
    """``LEXIGRAM_CACHE["HEALTH_CACHES"]``, or every alias of ``CACHES``."""
    configured = app_setting("HEALTH_CACHES")
    return [str(a) for a in (settings.CACHES if configured is None else configured)]


def alias_health(alias: str) -> dict[str, Any]:
    """One alias's report (``status`` up/degraded/down, ``servers``...); never raises."""
    try:
        cache = caches[alias]
    except InvalidCacheBackendError:
        return {"alias": alias, "status": "down", "error": "not in CACHES"}
    except Exception as exc:  # a backend that cannot be built
        return {"alias": alias, "status": "down", "error": mask_location(_describe(exc))}
    if isinstance(cache, LexigramCache):
        return {"alias": alias, **cache.health()}
    return {"alias": alias, **_probe(cache)}


def _probe(cache: Any) -> dict[str, Any]:
    """Another backend: a set and a get of a key of its own, timed."""
    key = f"lexigram-health:{uuid.uuid4().hex}"
    started = time.monotonic()
    try:
        cache.set(key, "ok", 10)
        ok = cache.get(key) == "ok"
        cache.delete(key)
    except Exception as exc:
        return {"backend": type(cache).__name__, "status": "down", "error": _describe(exc)}
    status = "up" if ok else "down"
    ms = round((time.monotonic() - started) * 1000, 3)
    return {"backend": type(cache).__name__, "status": status, "probe_ms": ms}


def _describe(exc: BaseException) -> str:
    return mask_location(f"{type(exc).__name__}: {exc}")[:200]


def overall(reports: dict[str, dict[str, Any]]) -> str:
    """The worst status of the reports (``up`` when there are none)."""
    return max((r["status"] for r in reports.values()), key=_RANK.__getitem__, default="up")


@require_safe
def health_view(request: HttpRequest, alias: str | None = None) -> JsonResponse:
    """Every configured alias (or ``alias``, or ``?alias=``): 200 unless one is down."""
    aliases = [alias] if alias else request.GET.getlist("alias") or health_aliases()
    reports = {name: alias_health(name) for name in aliases}
    status = overall(reports)
    response = JsonResponse({"status": status, "caches": reports}, status=STATUS_CODES[status])
    add_never_cache_headers(response)
    return response


app_name = "lexigram_cache_health"
urlpatterns = [
    path("", health_view, name="all"),
    path("<str:alias>/", health_view, name="alias"),
]
