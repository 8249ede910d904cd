"""Compute-through-the-cache, shared by the decorators and ``{% cache_tagged %}``.

Every Django integration stores through the backend's ``get_or_set`` (single flight, tag
versions read before computing); on Django's own backends, which have neither, through a
plain get-compute-set. ``_NotStored`` lets a computation hand its result back without
caching it (an uncacheable response), to every caller of the same flight.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from .backends.base import LexigramCache
from .exceptions import CacheConfigurationError
from .tags import TagLike

Tags = Iterable[TagLike] | TagLike | None
#: Tags, or a callable of the decorated function's arguments returning them.
TagsArg = Tags | Callable[..., Tags]

_MISSING = object()


class NotStored(Exception):
    """Raised inside a computation to hand its result back without caching it.

    Every caller waiting on the same single flight receives this same exception;
    ``owner`` tells the caller that computed it from the others.
    """

    def __init__(self, owner: object, value: Any, retry: bool = False) -> None:
        super().__init__("result not cached")
        self.owner = owner
        self.value = value
        self.retry = retry

    def own_result(self) -> Any:
        """For the caller that computed it: its response, or its view's exception."""
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def get_cache(alias: str, *, tagged: bool, what: str) -> BaseCache:
    """``caches[alias]``, refusing ``tags=`` on a backend that has no tags."""
    cache = caches[alias]
    if tagged and not isinstance(cache, LexigramCache):
        raise CacheConfigurationError(
            f"{what} was given tags, but cache {alias!r} is a {type(cache).__name__}, which "
            f"has no tags: use a lexigram backend for it, or drop tags=."
        )
    return cache


def resolve_tags(spec: TagsArg, *args: Any, **kwargs: Any) -> Tags:
    """Static tags as they are; a callable (not a model class) called with the arguments."""
    if callable(spec) and not isinstance(spec, type):
        return spec(*args, **kwargs)
    return spec


def get_or_compute(
    cache: BaseCache,
    key: str,
    compute: Callable[[], Any],
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    tags: Tags = None,
) -> Any:
    """``get_or_set`` with single flight and tags on lexigram backends; a plain
    get-compute-set on Django's (a cached ``None`` is a hit on both)."""
    if isinstance(cache, LexigramCache):
        if tags is None:
            return cache.get_or_set(key, compute, timeout, version)
        return cache.get_or_set(key, compute, timeout, version, tags=tags)
    value = cache.get(key, _MISSING, version=version)
    if value is _MISSING:
        value = compute()
        cache.set(key, value, timeout, version=version)
    return value


async def aget_or_compute(
    cache: BaseCache,
    key: str,
    compute: Callable[[], Awaitable[Any]],
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    tags: Tags = None,
) -> Any:
    """Async :func:`get_or_compute`; ``compute`` is an async callable."""
    if isinstance(cache, LexigramCache):
        if tags is None:
            return await cache.aget_or_set(key, compute, timeout, version)
        return await cache.aget_or_set(key, compute, timeout, version, tags=tags)
    value = await cache.aget(key, _MISSING, version=version)
    if value is _MISSING:
        value = await compute()
        await cache.aset(key, value, timeout, version=version)
    return value
