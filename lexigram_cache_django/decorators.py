"""Decorators: tagged, single-flight ``cache_page``; ``cached`` functions; ``invalidates``.

All of them compute through the backend's ``get_or_set``, so a value is computed once per
key across threads, asyncio tasks and processes, and the versions of its tags are read
*before* computing: an invalidation that lands while a page renders makes the stored page
stale instead of being lost. On Django's own backends (no tags, no single flight) they
work without tags and refuse ``tags=`` with ``ImproperlyConfigured``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import (
    get_cache_key,
    get_max_age,
    has_vary_header,
    learn_cache_key,
    patch_cache_control,
    patch_response_headers,
    patch_vary_headers,
)
from django.utils.http import parse_http_date_safe

from .compute import (
    NotStored,
    TagsArg,
    aget_or_compute,
    get_cache,
    get_or_compute,
    resolve_tags,
)
from .failfast import one_operation
from .invalidation import ainvalidate_now, invalidate_on_commit
from .keys import call_key
from .refreshers import Refreshing, page_fetch, register_function
from .revalidate import Policy, value_of
from .revalidate import policy as swr_policy
from .wrappers import FunctionWrapper

F = TypeVar("F", bound=Callable[..., Any])
# -- cache_page ------------------------------------------------------------------------

#: Marks a stored page: (marker, status, headers, content). A tuple of plain values, so
#: any serializer that handles bytes can store it, and every caller builds its own
#: response object from it (waiters of a single flight never share one).
_PAGE = "lexigram-page-1"
#: Set (True) on a response built from a stored page rather than rendered by this request:
#: what ``lexigram_cache_django.testing.assert_served_from_cache`` reads.
FROM_CACHE = "lexigram_from_cache"


def _freeze(response: HttpResponse) -> tuple[Any, ...]:
    return (_PAGE, response.status_code, list(response.items()), response.content)


def _thaw(page: Any) -> HttpResponse | None:
    if not (isinstance(page, list | tuple) and len(page) == 4 and page[0] == _PAGE):
        return None
    _, status, headers, content = page
    response = HttpResponse(content, status=status)
    setattr(response, FROM_CACHE, True)
    for name, value in headers:
        response.headers[name] = value
    # Django's CacheMiddleware: estimate the Age of the copy served from cache.
    max_age = get_max_age(response)
    expires = parse_http_date_safe(response.headers.get("Expires", ""))
    if max_age is not None and expires is not None:
        response.headers["Age"] = str(max(0, max_age - (expires - int(time.time()))))
    return response


class _Render:
    """The response rendered by this request, if it rendered one (the flight's leader)."""

    __slots__ = ("response",)

    def __init__(self) -> None:
        self.response: HttpResponseBase | None = None


class _PageCache:
    """What one ``@cache_page(...)`` needs per request."""

    def __init__(
        self, timeout: float, alias: str, key_prefix: str, tags: TagsArg, swr: Policy | None
    ) -> None:
        self.timeout = timeout
        self.swr = swr
        self.alias = alias
        # Our entries are tuples, not the response objects Django's cache middleware
        # stores; a prefix of our own keeps the two from reading each other's entries.
        self.key_prefix = f"lexigram.{key_prefix}" if key_prefix else "lexigram"
        self.tags = tags

    def cache(self) -> BaseCache:
        return get_cache(self.alias, tagged=self.tags is not None, what="cache_page")

    def fetch(
        self, cache: BaseCache, request: HttpRequest, key: str, render: Any, tags: Any
    ) -> Any:
        """The stored page: single flight, plus stale-while-revalidate if asked for."""
        if self.swr is None:
            return get_or_compute(cache, key, render, self.timeout, tags=tags)
        return page_fetch(self.swr, self.alias, cache, request, key, render, tags)

    def flight_key(self, cache: BaseCache, request: HttpRequest) -> str:
        """The page's key under the Vary headers learned so far.

        For a URL seen for the first time, Django has no header list yet; we learn "no
        Vary" (what an empty response says) so that the first burst shares one key. If
        the rendered page does vary, storing is skipped and the key relearned.
        """
        method = request.method or "GET"
        key = get_cache_key(request, self.key_prefix, method, cache=cache)
        if key is None:
            key = learn_cache_key(request, HttpResponse(), self.timeout, self.key_prefix, cache)
        return key

    def get_head_from_get(self, cache: BaseCache, request: HttpRequest) -> str | None:
        """A HEAD request may be answered by the cached GET page (as Django does)."""
        if request.method != "HEAD":
            return None
        return get_cache_key(request, self.key_prefix, "GET", cache=cache)

    def store(
        self,
        cache: BaseCache,
        request: HttpRequest,
        response: HttpResponseBase,
        key: str,
        state: _Render,
    ) -> tuple[Any, ...]:
        """Inside the single flight: the page to store, or raise ``NotStored``."""
        state.response = response
        if not isinstance(response, HttpResponse) or not self.cacheable(response):
            raise NotStored(state, response)
        cache_control = response.get("Cache-Control", "").lower()
        patch_response_headers(response, int(self.timeout))
        if self.swr is not None:  # RFC 5861: downstream caches may serve it stale too
            patch_cache_control(response, stale_while_revalidate=int(self.swr.stale))
        # As Django: a response to an authorized request varies on Authorization unless
        # it says it is public (RFC 9111, section 3.5).
        if request.headers.get("Authorization") and "public" not in cache_control:
            patch_vary_headers(response, ("Authorization",))
        learned = learn_cache_key(request, response, self.timeout, self.key_prefix, cache)
        if learned != key:  # the page varies on headers we did not know: relearned now
            raise NotStored(state, response, retry=True)
        return _freeze(response)

    @staticmethod
    def cacheable(response: HttpResponse) -> bool:
        """Django's rules, plus: a response that sets any cookie is never cached."""
        if response.streaming or response.status_code != 200 or response.cookies:
            return False
        cache_control = response.get("Cache-Control", "").lower()
        if any(word in cache_control for word in ("private", "no-cache", "no-store")):
            return False
        return not has_vary_header(response, "*")


def _check_request(request: Any) -> None:
    if not hasattr(request, "META"):
        raise TypeError(
            "cache_page didn't receive an HttpRequest. If you are decorating a method, "
            "wrap the decorator in django.utils.decorators.method_decorator."
        )


def cache_page(
    timeout: float | None,
    *,
    cache: str | None = None,
    key_prefix: str | None = None,
    tags: TagsArg = None,
    stale_while_revalidate: float | None = None,
    refresh: str | None = None,
) -> Callable[[F], F]:
    """Django's ``cache_page`` with tags and single flight, for sync and async views.

    ``tags``: tags, or a callable of ``(request, *args, **kwargs)`` returning them, e.g.
    ``tags=lambda request, pk: [(Pet, pk)]``. A burst of requests for a page that is not
    cached renders the view once; the others get the same page. A response that must not
    be cached (not 200, streaming, ``private``/``no-cache``/``no-store``, ``Vary: *``, any
    cookie), or an exception the view raised, goes to its own requester only; requests
    that waited for it render the view themselves. ``timeout`` wins over the response's
    ``max-age``, as in Django; ``None`` means ``CACHE_MIDDLEWARE_SECONDS``.
    ``stale_while_revalidate``/``refresh``: as for :func:`cached` (sync views only).
    """
    seconds = float(settings.CACHE_MIDDLEWARE_SECONDS if timeout is None else timeout)
    swr = swr_policy(seconds, stale_while_revalidate, refresh)
    page = _PageCache(seconds, cache or DEFAULT_CACHE_ALIAS, key_prefix or "", tags, swr)

    def decorator(view: F) -> F:
        if iscoroutinefunction(view):
            if swr is not None:
                raise ImproperlyConfigured("stale_while_revalidate needs a sync view")
            return cast(F, _async_page_view(view, page))
        return cast(F, _sync_page_view(view, page))

    return decorator


def _sync_page_view(view: Callable[..., Any], page: _PageCache) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        _check_request(request)
        if request.method not in ("GET", "HEAD") or page.timeout <= 0:
            return cast(HttpResponseBase, view(request, *args, **kwargs))
        with one_operation():  # a server that failed is not asked again for this page
            cache = page.cache()
            tags = resolve_tags(page.tags, request, *args, **kwargs)
            head_key = page.get_head_from_get(cache, request)
            if head_key is not None and (hit := _thaw(value_of(cache.get(head_key)))) is not None:
                return hit
            for attempt in (1, 2):
                key = page.flight_key(cache, request)
                state = _Render()

                def render(key: str = key, state: _Render = state) -> tuple[Any, ...]:
                    try:
                        response = view(request, *args, **kwargs)
                        if callable(getattr(response, "render", None)):
                            response.render()  # TemplateResponse: the page is what is stored
                    except Exception as exc:  # e.g. PermissionDenied: this request's alone
                        raise NotStored(state, exc) from exc
                    return page.store(cache, request, response, key, state)

                try:
                    stored = page.fetch(cache, request, key, render, tags)
                except NotStored as skip:
                    if skip.owner is state:
                        return cast(HttpResponseBase, skip.own_result())
                    if skip.retry and attempt == 1:
                        continue
                    return cast(HttpResponseBase, view(request, *args, **kwargs))
                if state.response is not None:
                    return state.response
                response = _thaw(stored)
                if response is not None:
                    return response
                cache.delete(key)  # not a page of ours: drop it and render
            return cast(HttpResponseBase, view(request, *args, **kwargs))

    return wrapper


def _async_page_view(view: Callable[..., Any], page: _PageCache) -> Callable[..., Any]:
    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        _check_request(request)
        if request.method not in ("GET", "HEAD") or page.timeout <= 0:
            return cast(HttpResponseBase, await view(request, *args, **kwargs))
        with one_operation():  # a server that failed is not asked again for this page
            cache = page.cache()
            tags = resolve_tags(page.tags, request, *args, **kwargs)
            # The Vary header list is read and learned with the sync API, as Django's own
            # cache_page does for async views; the page itself goes through the async API.
            head_key = page.get_head_from_get(cache, request)
            if head_key is not None and (hit := _thaw(await cache.aget(head_key))) is not None:
                return hit
            for attempt in (1, 2):
                key = page.flight_key(cache, request)
                state = _Render()

                async def render(key: str = key, state: _Render = state) -> tuple[Any, ...]:
                    try:
                        response = await view(request, *args, **kwargs)
                        if callable(getattr(response, "render", None)):
                            await sync_to_async(response.render)()  # templates may query the DB
                    except Exception as exc:
                        raise NotStored(state, exc) from exc
                    return page.store(cache, request, response, key, state)

                try:
                    stored = await aget_or_compute(cache, key, render, page.timeout, tags=tags)
                except NotStored as skip:
                    if skip.owner is state:
                        return cast(HttpResponseBase, skip.own_result())
                    if skip.retry and attempt == 1:
                        continue
                    return cast(HttpResponseBase, await view(request, *args, **kwargs))
                if state.response is not None:
                    return state.response
                response = _thaw(stored)
                if response is not None:
                    return response
                await cache.adelete(key)
            return cast(HttpResponseBase, await view(request, *args, **kwargs))

    return wrapper


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
