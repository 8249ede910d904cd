"""Per-request memo: compute a value at most once per request, forget it when the request ends.

The store lives in a ``ContextVar``, so under ASGI every request (task) has its own even
when many share a thread, and a sync view run in a worker thread by ``sync_to_async``
sees its request's store (asgiref carries the context over). ``RequestCacheMiddleware``
opens a store for each request and drops it when the response is returned; outside a
request (no store open), decorated functions are simply called. ``request_cache()``
opens a store anywhere else (a Celery task, a management command).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, overload

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from .keys import call_key
from .wrappers import FunctionWrapper

_store: ContextVar[dict[str, Any] | None] = ContextVar("lexigram_request_cache", default=None)
_MISSING = object()


@contextmanager
def request_cache() -> Iterator[dict[str, Any]]:
    """Open a fresh store for the code inside; the previous one (if any) comes back after."""
    store: dict[str, Any] = {}
    token = _store.set(store)
    try:
        yield store
    finally:
        store.clear()
        _store.reset(token)


def current_store() -> dict[str, Any] | None:
    """The open store, or None outside a request."""
    return _store.get()


class RequestCacheMiddleware:
    """Open a request cache for each request; sync and async like Django's own middleware."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        with request_cache():
            return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        with request_cache():
            response: HttpResponseBase = await self.get_response(request)
            return response


class RequestCachedFunction(FunctionWrapper):
    """A function memoized per request; what ``@cache_in_request`` returns.

    Async results are shared while still running: two tasks of one request awaiting the
    same call (``asyncio.gather``) run it once. A call that raises is not remembered.
    """

    def __init__(self, func: Callable[..., Any], key: Callable[..., str] | None) -> None:
        super().__init__(func)
        self.key_func = key

    def __repr__(self) -> str:
        return f"<cache_in_request {self.name}>"

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self.key_func is not None:
            return f"{self.name}:{self.key_func(*args, **kwargs)}"
        return call_key(self.name, self.signature, args, kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> None:
        """Forget ``f(*args, **kwargs)`` in the current request."""
        store = _store.get()
        if store is not None:
            store.pop(self._key(self._args(args), kwargs), None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = self._args(args)
        store = _store.get()
        if store is None:
            return self.func(*args, **kwargs)
        key = self._key(args, kwargs)
        if self.is_async:
            return self._acall(store, key, args, kwargs)
        value = store.get(key, _MISSING)
        if value is _MISSING:
            value = store[key] = self.func(*args, **kwargs)
        return value

    async def _acall(
        self, store: dict[str, Any], key: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        task = store.get(key)
        if task is not None and task.done() and not task.cancelled() and not task.exception():
            return task.result()  # no await: works even from another event loop
        if task is None:
            coro: Awaitable[Any] = self.func(*args, **kwargs)
            task = store[key] = asyncio.ensure_future(coro)
        try:
            # Shielded: one cancelled caller does not cancel the call the others await.
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and store.get(key) is task:
                del store[key]  # failed (or cancelled): the next call tries again
            raise


@overload
def cache_in_request(func: Callable[..., Any], /) -> RequestCachedFunction: ...
@overload
def cache_in_request(
    *, key: Callable[..., str] | None = None
) -> Callable[[Callable[..., Any]], RequestCachedFunction]: ...
def cache_in_request(
    func: Callable[..., Any] | None = None, /, *, key: Callable[..., str] | None = None
) -> RequestCachedFunction | Callable[[Callable[..., Any]], RequestCachedFunction]:
    """Remember a sync or async function's results for the rest of the current request.

    Keys come from the arguments as for ``@cached`` (model instances by model and pk), or
    from ``key(*args, **kwargs)``. Use as ``@cache_in_request`` or
    ``@cache_in_request(key=...)``; needs ``RequestCacheMiddleware`` (or
    ``request_cache()``) to remember anything.
    """
    if func is not None:
        return RequestCachedFunction(func, None)
    return lambda f: RequestCachedFunction(f, key)
