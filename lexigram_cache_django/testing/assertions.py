"""Assertions: served from the cache, tags invalidated or not."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..pages import FROM_CACHE
from ..tags import TagLike
from .recorder import active_log


def served_from_cache(response: Any) -> bool:
    """Whether ``response`` was built from a stored page instead of rendered for it.

    Our ``cache_page`` marks such responses (``lexigram_from_cache``). For Django's own
    cache middleware (``FetchFromCacheMiddleware``), a GET or HEAD that it answered left
    ``request._cache_update_cache`` False; the test client keeps that request on the
    response (``wsgi_request`` / ``asgi_request``).
    """
    if getattr(response, FROM_CACHE, False):
        return True
    request = getattr(response, "wsgi_request", None) or getattr(response, "asgi_request", None)
    return (
        request is not None
        and request.method in ("GET", "HEAD")
        and getattr(request, "_cache_update_cache", None) is False
    )


def assert_served_from_cache(response: Any) -> None:
    if not served_from_cache(response):
        raise AssertionError(
            f"{_describe(response)} was rendered, not served from the cache "
            "(is the view wrapped in cache_page? did an invalidation make it stale?)"
        )


def assert_not_served_from_cache(response: Any) -> None:
    if served_from_cache(response):
        raise AssertionError(f"{_describe(response)} was served from the cache")


def _describe(response: Any) -> str:
    request = getattr(response, "wsgi_request", None) or getattr(response, "asgi_request", None)
    where = f" for {request.method} {request.get_full_path()}" if request is not None else ""
    return f"the response{where} (status {getattr(response, 'status_code', '?')})"


def assert_invalidated(*tags: TagLike | Iterable[TagLike]) -> None:
    """Each of ``tags`` was invalidated since the current recording started.

    Tags as anywhere else: a model, ``(Model, pk)``, an instance, a string. Reads the
    innermost active :class:`~.recorder.InvalidationLog` (the ``invalidations`` fixture,
    :class:`~.cases.CacheTestMixin`, or your own ``with InvalidationLog():``).
    """
    active_log().assert_invalidated(*tags)


def assert_not_invalidated(*tags: TagLike | Iterable[TagLike]) -> None:
    """None of ``tags`` was invalidated since the current recording started."""
    active_log().assert_not_invalidated(*tags)
