"""A callable object that stands in for a function, and binds like a method.

``@cached`` and ``@cache_in_request`` return objects (they carry ``.key()``,
``.invalidate()``...) rather than plain closures. This base gives such an object the
function's name, docstring and signature, marks it a coroutine function when the function
is one (so Django and asgiref treat it as async), and binds it to an instance when it is
looked up on one, so ``obj.method.key(x)`` keys the call ``method(obj, x)``.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .keys import function_name

_UNBOUND = object()


class FunctionWrapper:
    """Base of the decorator objects: the wrapped function, its name, async-ness, binding."""

    __name__: str  # set by functools.update_wrapper, like the rest of the function's
    __qualname__: str

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.name = function_name(func)
        self.is_async = iscoroutinefunction(func)
        self._instance: Any = _UNBOUND
        try:
            self.signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):  # builtins without a signature
            self.signature = None
        functools.update_wrapper(self, func, updated=())  # keep our own attributes
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError  # each decorator object defines what a call does

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        bound = copy.copy(self)
        bound._instance = instance
        return bound

    def _args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The call's positional arguments, with the bound instance first if any."""
        return args if self._instance is _UNBOUND else (self._instance, *args)
