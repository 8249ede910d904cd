"""What a background refresh recomputes: ``@cached`` calls and ``cache_page`` pages.

:mod:`.revalidate` decides *when* to refresh (a stale read) and makes sure it happens once;
this module knows *what* one refresh is, in this process (a callable) or in a Celery worker
(a JSON-able message for the task ``lexigram_cache_django.refresh``, whose body is
:func:`run_message`). A function is found in the worker by name: ``@cached(...,
stale_while_revalidate=...)`` registers it, and the message names its module, imported if
needed. A page is re-requested through the whole middleware stack with the request headers
it varies on (a page varying on ``Cookie`` sends the cookie through the broker) while
:func:`forcing` tells ``cache_page`` to re-render instead of reading.
"""

from __future__ import annotations

import contextvars
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest

from .compute import NotStored, Tags, resolve_tags
from .revalidate import Policy, Refresh, run_refresh, store_now


def store_result(
    cache: BaseCache,
    key: str,
    compute: Callable[[], Any],
    timeout: Any,
    version: int | None,
    tags: Tags,
    swr: Policy | None,
) -> Any:
    """Store what ``compute`` returns (wrapped if ``swr``); a rejected result (``NotStored``)
    is returned, not stored."""
    try:
        if swr is not None:
            return swr.store(cache, key, compute, version, tags)
        return store_now(cache, key, compute, timeout, version, tags)
    except NotStored as skip:
        return skip.value


class Refreshing:
    """``refresh()`` for ``CachedFunction``: recompute one call and store it now.

    Used by warmers and by the background refresh; kept here so the decorator module
    stays about decorating.
    """

    if TYPE_CHECKING:
        func: Callable[..., Any]
        name: str
        is_async: bool
        tags: Any
        timeout: Any
        version: int | None
        cache_alias: str
        swr: Policy | None

        def _args(self, args: tuple[Any, ...]) -> tuple[Any, ...]: ...
        def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str: ...
        def _cache(self) -> BaseCache: ...
        def _checked(self, value: Any) -> Any: ...
        def _compute(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any]: ...

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Compute ``f(*args, **kwargs)`` now and store it whatever is cached; returns the
        value (an awaitable for an async function)."""
        return self._refresh(self._args(args), kwargs)

    def _refresh(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.is_async:
            return self._arefresh(args, kwargs)
        return self._store(args, kwargs, self._compute(args, kwargs))

    async def _arefresh(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        value = await self.func(*args, **kwargs)
        return self._store(args, kwargs, lambda: self._checked(value))

    def _store(self, args: tuple[Any, ...], kwargs: dict[str, Any], compute: Any) -> Any:
        tags, key = resolve_tags(self.tags, *args, **kwargs), self._key(args, kwargs)
        return store_result(self._cache(), key, compute, self.timeout, self.version, tags, self.swr)

    def _job(self, args: tuple[Any, ...], kwargs: dict[str, Any], stale: Any = None) -> Refresh:
        """The background refresh of one call (a task message, or a thread's callable)."""
        message = function_message(self.func.__module__, self.name, args, kwargs)
        return Refresh(self.cache_alias, lambda: self._refresh(args, kwargs), message)


# -- what the refresh task runs ---------------------------------------------------------------


class Refreshable(Protocol):
    """A ``@cached`` function with SWR, as far as the refresh task needs it."""

    def refresh(self, *args: Any, **kwargs: Any) -> Any: ...


_functions: dict[str, Refreshable] = {}
_forced: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "lexigram_swr_forced", default=frozenset()
)


def register_function(name: str, function: Refreshable) -> None:
    """Make ``function`` reachable by name from a worker (``@cached`` does this)."""
    _functions[name] = function


def function_message(
    module: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    return {"kind": "function", "module": module, "name": name, "args": args, "kwargs": kwargs}


def page_message(
    key: str, path: str, host: str, secure: bool, headers: dict[str, str]
) -> dict[str, Any]:
    return {
        "kind": "page",
        "key": key,
        "path": path,
        "host": host,
        "secure": secure,
        "headers": headers,
    }


@contextmanager
def forcing(key: str) -> Iterator[None]:
    """While active, ``cache_page`` re-renders ``key`` instead of reading it."""
    token = _forced.set(_forced.get() | {key})
    try:
        yield
    finally:
        _forced.reset(token)


def forced(key: str) -> bool:
    return key in _forced.get()


def run_message(message: dict[str, Any]) -> bool:
    """The body of the ``lexigram_cache_django.refresh`` task: False if it failed (logged,
    counted, and its claim released, so a later stale read tries again)."""
    alias, claim, token = message["alias"], message.get("claim"), message.get("token")
    kind = message.get("kind")
    if kind == "function":
        args, kwargs = tuple(message["args"]), dict(message["kwargs"])
        return run_refresh(alias, lambda: _function(message).refresh(*args, **kwargs), claim, token)
    if kind == "page":
        return run_refresh(alias, lambda: _render_page(message), claim, token)
    return run_refresh(alias, lambda: _unknown(kind), claim, token)


def _function(message: dict[str, Any]) -> Refreshable:
    function = _functions.get(message["name"])
    if function is None:
        importlib.import_module(message["module"])  # registers its @cached functions
        function = _functions.get(message["name"])
    if function is None:
        raise LookupError(f"no @cached function {message['name']!r} with stale_while_revalidate")
    return function


def _unknown(kind: Any) -> None:
    raise ValueError(f"unknown refresh kind {kind!r}")


def _render_page(message: dict[str, Any]) -> None:
    """Re-request the page through the whole middleware stack, forcing a re-render."""
    from django.test import Client

    client = Client(HTTP_HOST=message["host"], raise_request_exception=True)
    with forcing(message["key"]):
        response = client.get(message["path"], headers=message["headers"], secure=message["secure"])
    if response.status_code != 200:
        raise RuntimeError(f"refreshing {message['path']} answered {response.status_code}")


def page_fetch(
    policy: Policy,
    alias: str,
    cache: BaseCache,
    request: HttpRequest,
    key: str,
    render: Callable[[], Any],
    tags: Tags,
) -> Any:
    """``cache_page``'s read with SWR: the frozen page, stale or fresh (or re-rendered when
    a refresh task forces ``key``)."""
    if forced(key):
        return policy.store(cache, key, render, None, tags)

    def job(stale: Any) -> Refresh:
        headers = dict(stale[2]) if isinstance(stale, tuple | list) and len(stale) == 4 else {}
        vary = [h.strip() for h in headers.get("Vary", "").split(",") if h.strip()]
        forwarded = {h: request.headers[h] for h in vary if h in request.headers}
        message = page_message(
            key, request.get_full_path(), request.get_host(), request.is_secure(), forwarded
        )
        return Refresh(alias, lambda: policy.store(caches[alias], key, render, None, tags), message)

    return policy.read(cache, key, render, job, None, tags)
