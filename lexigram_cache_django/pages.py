"""Tagged, single-flight ``cache_page`` for sync and async views.

A page hit is one round trip: each ``@cache_page`` remembers the Vary header list it last
read for a URL, so the page under that list and the list itself are read together
(``get_entry_pair``); the page is served only if the list read is the one remembered.
Otherwise (first request for a URL in this process, a changed list, a miss, an entry
close enough to expiry that XFetch might refresh it) the request takes the full path:
read the list, then ``get_or_set`` the page under single flight.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import cache as django_cache
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

from .backends.base import LexigramCache
from .codec import EntryMeta
from .compute import NotStored, TagsArg, aget_or_compute, get_cache, get_or_compute, resolve_tags
from .failfast import one_operation
from .refreshers import page_fetch
from .revalidate import Policy, value_of
from .revalidate import policy as swr_policy

F = TypeVar("F", bound=Callable[..., Any])
#: Django's own key makers (private; the same in 5.2 to 6.1): the keys must be Django's,
#: since ``learn_cache_key`` writes them.
_header_key: Callable[[str, HttpRequest], str] = django_cache._generate_cache_header_key  # type: ignore[attr-defined]
_page_key: Callable[[HttpRequest, str, list[str], str], str] = django_cache._generate_cache_key  # type: ignore[attr-defined]
#: Header lists remembered per ``@cache_page`` (URLs; the memo is emptied when full).
MEMO_SIZE = 4096
#: A fast-path hit is served only while XFetch's chance of refreshing it is below
#: e**-30: closer to expiry, ``get_or_set`` decides (and refreshes early).
_XFETCH_MARGIN = 30.0
Entry = tuple[Any, EntryMeta | None]


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
        #: The header list last read per header key (plain dict operations: thread-safe).
        self.headers: dict[str, list[str]] = {}

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
        header_key = _header_key(self.key_prefix, request)
        headerlist = cache.get(header_key)
        if headerlist is None:
            return learn_cache_key(request, HttpResponse(), self.timeout, self.key_prefix, cache)
        if isinstance(headerlist, list) and isinstance(cache, LexigramCache):
            if len(self.headers) >= MEMO_SIZE:
                self.headers.clear()
            self.headers[header_key] = headerlist
        return _page_key(request, method, headerlist, self.key_prefix)

    def fast_keys(
        self, cache: BaseCache, request: HttpRequest
    ) -> tuple[str, str, list[str]] | None:
        """The made keys of the page and of its header list, if a one-read hit is worth
        trying (a GET of a URL whose header list this process has read before)."""
        if request.method != "GET" or self.swr is not None or not isinstance(cache, LexigramCache):
            return None
        header_key = _header_key(self.key_prefix, request)
        headerlist = self.headers.get(header_key)
        if headerlist is None:
            return None
        key = _page_key(request, "GET", headerlist, self.key_prefix)
        made = cache.make_and_validate_key
        return made(key), made(header_key), headerlist

    def fast_page(
        self, cache: BaseCache, pair: tuple[Entry | None, Entry | None], headerlist: list[str]
    ) -> HttpResponse | None:
        """The page of a one-read hit, or None: take the full path."""
        entry, listed = pair
        if listed is None or listed[0] != headerlist:
            return None  # the URL's header list changed (or expired): relearn it
        if entry is None:
            return None
        value, meta = entry
        if meta is not None and meta.expires > 0 and meta.delta > 0:
            beta = cast(LexigramCache, cache).stampede_options.beta
            if meta.expires - time.time() <= meta.delta * beta * _XFETCH_MARGIN:
                return None
        return _thaw(value)

    def hit(self, cache: BaseCache, request: HttpRequest) -> HttpResponse | None:
        """A page hit in one read, when possible (sync views)."""
        keys = self.fast_keys(cache, request)
        if keys is None:
            return None
        key, header_key, headerlist = keys
        read = getattr(cache, "get_entry_pair", None)
        if read is not None:
            pair = read(key, header_key)
        else:  # in-process backends: two reads cost next to nothing
            pair = (cache.get_entry(key), cache.get_entry(header_key))  # type: ignore[attr-defined]
        return self.fast_page(cache, pair, headerlist)

    async def ahit(self, cache: BaseCache, request: HttpRequest) -> HttpResponse | None:
        keys = self.fast_keys(cache, request)
        if keys is None:
            return None
        key, header_key, headerlist = keys
        read = getattr(cache, "aget_entry_pair", None)
        if read is not None:
            pair = await read(key, header_key)
        else:
            pair = (await cache.aget_entry(key), await cache.aget_entry(header_key))  # type: ignore[attr-defined]
        return self.fast_page(cache, pair, headerlist)

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
            if (fast := page.hit(cache, request)) is not None:
                return fast
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
            if (fast := await page.ahit(cache, request)) is not None:
                return fast
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
