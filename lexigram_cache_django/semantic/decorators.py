"""``@semantic_cached``: put a SemanticCache in front of a function that calls an LLM.

The prompt is the argument named ``prompt_arg``; the scope, if any, the argument named
``scope_arg`` (a tenant id, a user id: answers never cross it). The cache is built on the
first call, not at import time, so settings are read when they are ready.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from .cache import SemanticCache

F = TypeVar("F", bound=Callable[..., Any])


def semantic_cached(
    cache: SemanticCache | None = None,
    *,
    prompt_arg: str = "prompt",
    scope_arg: str | None = None,
    timeout: Any = DEFAULT_TIMEOUT,
    **cache_kwargs: Any,
) -> Callable[[F], F]:
    """Decorate a sync or async function: a hit returns the cached answer, a miss stores one.

    ``cache_kwargs`` (alias, threshold, namespace, embedder, ...) build the SemanticCache when
    none is given.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        if prompt_arg not in signature.parameters:
            raise TypeError(f"{func.__qualname__} has no argument named {prompt_arg!r}")
        if scope_arg is not None and scope_arg not in signature.parameters:
            raise TypeError(f"{func.__qualname__} has no argument named {scope_arg!r}")
        holder: list[SemanticCache] = [cache] if cache is not None else []
        lock = threading.Lock()

        def semantic() -> SemanticCache:
            if not holder:
                with lock:
                    if not holder:
                        holder.append(SemanticCache(**cache_kwargs))
            return holder[0]

        def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            prompt = bound.arguments[prompt_arg]
            scope = bound.arguments[scope_arg] if scope_arg is not None else ""
            return str(prompt), "" if scope is None else str(scope)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                prompt, scope = key_of(args, kwargs)
                hit = await semantic().alookup(prompt, scope)
                if hit is not None:
                    return hit.response
                answer = await func(*args, **kwargs)
                await semantic().astore(prompt, answer, scope, timeout=timeout)
                return answer

            async_wrapper.semantic_cache = semantic  # type: ignore[attr-defined]
            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prompt, scope = key_of(args, kwargs)
            hit = semantic().lookup(prompt, scope)
            if hit is not None:
                return hit.response
            answer = func(*args, **kwargs)
            semantic().store(prompt, answer, scope, timeout=timeout)
            return answer

        wrapper.semantic_cache = semantic  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate
