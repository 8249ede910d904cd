"""Decorators: tagged, single-flight ``cache_page``; ``cached`` functions; ``invalidates``.

All of them compute through the backend's ``get_or_set``, so a value is computed once per
key across threads, asyncio tasks and processes, and the versions of its tags are read
*before* computing: an invalidation that lands while a page renders makes the stored page
stale instead of being lost. On Django's own backends (no tags, no single flight) they
work without tags and refuse ``tags=`` with ``ImproperlyConfigured``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction
from django.core.cache import DEFAULT_CACHE_ALIAS
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from .compute import (
    NotStored,
    TagsArg,
    aget_or_compute,
    get_cache,
    get_or_compute,
    resolve_tags,
)
from .invalidation import ainvalidate_now, invalidate_on_commit
from .keys import call_key
from .pages import cache_page
from .refreshers import Refreshing, register_function
from .revalidate import Policy
from .revalidate import policy as swr_policy
from .wrappers import FunctionWrapper

__all__ = ["CachedFunction", "cache_page", "cached", "invalidates"]

F = TypeVar("F", bound=Callable[..., Any])
# -- cached ----------------------------------------------------------------------------


class CachedFunction(FunctionWrapper, Refreshing):
    """A function or method whose results are cached; what ``@cached`` returns.

    ``f.key(*args, **kwargs)`` is the cache key of a call, ``f.invalidate(...)`` (or
    ``await f.ainvalidate(...)``) deletes its entry. On a method, ``obj.method.key(x)``
    binds ``obj`` as Python binds methods.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        timeout: Any,
        tags: TagsArg,
        key: str | Callable[..., str] | None,
        cache: str,
        version: int | None,
        condition: Callable[[Any], bool] | None,
        swr: Policy | None = None,
    ) -> None:
        super().__init__(func)
        self.timeout = timeout
        self.tags = tags
        self.key_spec = key
        self.cache_alias = cache
        self.version = version
        self.condition = condition
        self.swr = swr
        if swr is not None:  # a refresh task finds it by name
            register_function(self.name, self)

    def __repr__(self) -> str:
        return f"<cached {self.name}>"

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        spec = self.key_spec
        if spec is None:
            return call_key(self.name, self.signature, args, kwargs)
        if isinstance(spec, str):
            if self.signature is None:
                return spec.format(*args, **kwargs)
            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return spec.format(**bound.arguments)
        return spec(*args, **kwargs)

    def key(self, *args: Any, **kwargs: Any) -> str:
        """The cache key of ``f(*args, **kwargs)``."""
        return self._key(self._args(args), kwargs)

    def _cache(self) -> BaseCache:
        return get_cache(self.cache_alias, tagged=self.tags is not None, what=f"@cached {self}")

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Forget the cached result of ``f(*args, **kwargs)``."""
        return bool(self._cache().delete(self.key(*args, **kwargs), version=self.version))

    async def ainvalidate(self, *args: Any, **kwargs: Any) -> bool:
        cache = self._cache()
        return bool(await cache.adelete(self.key(*args, **kwargs), version=self.version))

    def _checked(self, value: Any) -> Any:
        if self.condition is not None and not self.condition(value):
            raise NotStored(None, value)  # returned to every caller, not cached
        return value

    def _compute(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any]:
        return lambda: self._checked(self.func(*args, **kwargs))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return self._acall(self._args(args), kwargs)
        args = self._args(args)
        cache, key = self._cache(), self._key(args, kwargs)
        tags, compute = resolve_tags(self.tags, *args, **kwargs), self._compute(args, kwargs)
        try:
            if self.swr is not None:
                job = functools.partial(self._job, args, kwargs)
                return self.swr.read(cache, key, compute, job, self.version, tags)
            return get_or_compute(cache, key, compute, self.timeout, self.version, tags)
        except NotStored as skip:
            return skip.value

    async def _acall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cache, key = self._cache(), self._key(args, kwargs)
        tags = resolve_tags(self.tags, *args, **kwargs)

        async def compute() -> Any:
            return self._checked(await self.func(*args, **kwargs))

        try:
            if self.swr is not None:
                job = functools.partial(self._job, args, kwargs)
                return await self.swr.aread(cache, key, compute, job, self.version, tags)
            return await aget_or_compute(cache, key, compute, self.timeout, self.version, tags)
        except NotStored as skip:
            return skip.value


@overload
def cached(timeout: Callable[..., Any], /) -> CachedFunction: ...
@overload
def cached(
    timeout: Any = DEFAULT_TIMEOUT,
    *,
    tags: TagsArg = None,
    key: str | Callable[..., str] | None = None,
    cache: str = DEFAULT_CACHE_ALIAS,
    version: int | None = None,
    condition: Callable[[Any], bool] | None = None,
    stale_while_revalidate: float | None = None,
    refresh: str | None = None,
) -> Callable[[Callable[..., Any]], CachedFunction]: ...
def cached(
    timeout: Any = DEFAULT_TIMEOUT,
    *,
    tags: TagsArg = None,
    key: str | Callable[..., str] | None = None,
    cache: str = DEFAULT_CACHE_ALIAS,
    version: int | None = None,
    condition: Callable[[Any], bool] | None = None,
    stale_while_revalidate: float | None = None,
    refresh: str | None = None,
) -> CachedFunction | Callable[[Callable[..., Any]], CachedFunction]:
    """Cache a sync or async function's results, computed once per key (single flight).

    ``key``: None (from the function's name and arguments: model instances by model and
    pk), a format string over the arguments (``"pet:{pet.pk}"``) or a callable of them.
    ``tags``: tags, or a callable of the arguments returning them. ``condition``: a
    predicate on the result; a result it rejects is returned but not cached (callers
    that waited for it get it too). ``None`` results are cached like any other.
    ``stale_while_revalidate``: seconds after ``timeout`` during which a read returns the
    stale value at once and one background refresh (``refresh="thread"`` or ``"celery"``)
    recomputes it (:mod:`.revalidate`). ``f.refresh(...)`` recomputes one call now.
    """
    swr = swr_policy(timeout, stale_while_revalidate, refresh)
    if callable(timeout) and not isinstance(timeout, int | float):
        return CachedFunction(
            timeout,
            timeout=DEFAULT_TIMEOUT,
            tags=None,
            key=None,
            cache=DEFAULT_CACHE_ALIAS,
            version=None,
            condition=None,
        )

    def decorator(func: Callable[..., Any]) -> CachedFunction:
        return CachedFunction(
            func,
            timeout=timeout,
            tags=tags,
            key=key,
            cache=cache,
            version=version,
            condition=condition,
            swr=swr,
        )

    return decorator


# -- invalidates -----------------------------------------------------------------------


def invalidates(
    tags: TagsArg,
    *,
    using: str | None = None,
    aliases: Sequence[str] | None = None,
) -> Callable[[F], F]:
    """Invalidate ``tags`` after the decorated function returns (not if it raises).

    ``tags``: tags, or a callable of the function's arguments returning them. For a sync
    function the invalidation waits for the commit of the current transaction on
    database ``using`` (at once outside a transaction); an async function cannot hold a
    transaction open, so it is invalidated at once. ``aliases``: caches to invalidate
    (default ``LEXIGRAM_CACHE["INVALIDATE_CACHES"]``, see :mod:`.invalidation`).
    """

    def decorator(func: F) -> F:
        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                result = await func(*args, **kwargs)
                await ainvalidate_now(resolve_tags(tags, *args, **kwargs), aliases)
                return result

            return cast(F, awrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            invalidate_on_commit(resolve_tags(tags, *args, **kwargs), using=using, aliases=aliases)
            return result

        return cast(F, wrapper)

    return decorator
