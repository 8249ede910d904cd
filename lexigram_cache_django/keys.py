"""Stable cache keys from function arguments.

A key must be the same in every process and on every run, so it cannot use ``hash()``
(randomized per process for strings) or ``repr()`` of arbitrary objects (memory
addresses). :func:`stable_repr` writes a canonical text for the values that have one,
and refuses the rest with a message saying how to key them instead.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import inspect
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.db.models import Model
from django.utils.functional import Promise

#: Longest readable part of a function key; the rest is a hash, so keys stay memcached-safe.
_MAX_NAME = 120

_SCALARS: tuple[type, ...] = (
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    Decimal,
    Fraction,
    uuid.UUID,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    type(None),
)


def stable_repr(value: Any) -> str:
    """A canonical text for ``value``, equal for equal arguments in any process.

    Model instances are keyed by model and pk (``<petclinic.pet:42>``), model classes by
    label, containers recursively (sets and dicts sorted). An object may define
    ``__cache_key__()`` returning a key-able value. Anything else raises ``TypeError``.
    """
    if isinstance(value, enum.Enum):
        return f"{_qualname(type(value))}.{value.name}"
    if isinstance(value, _SCALARS):
        # The type name keeps 1, 1.0, True, "1" and b"1" apart.
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, Model):
        if value.pk is None:
            raise TypeError(f"cannot key an unsaved {type(value).__name__} (it has no pk yet)")
        concrete = value._meta.concrete_model or type(value)
        return f"<{concrete._meta.label_lower}:{value.pk!r}>"
    if isinstance(value, type):
        if issubclass(value, Model):
            return f"<model {value._meta.label_lower}>"
        return f"<class {_qualname(value)}>"
    key_method = getattr(value, "__cache_key__", None)
    if key_method is not None and callable(key_method):
        return f"{_qualname(type(value))}({stable_repr(key_method())})"
    if isinstance(value, Promise):  # lazy translation strings
        return stable_repr(str(value))
    if isinstance(value, list | tuple):
        inner = ",".join(stable_repr(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, set | frozenset):
        return "set{" + ",".join(sorted(stable_repr(v) for v in value)) + "}"
    if isinstance(value, Mapping):
        items = sorted(f"{stable_repr(k)}={stable_repr(v)}" for k, v in value.items())
        return "dict{" + ",".join(items) + "}"
    raise TypeError(
        f"cannot make a stable cache key from a {type(value).__name__}: pass key=..., "
        f"or give the class a __cache_key__() method returning something that can be keyed"
    )


def function_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, the readable part of its keys."""
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", "?")
    return f"{module}.{qualname}"


def call_key(
    name: str,
    signature: inspect.Signature | None,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> str:
    """The key of one call of the function called ``name``.

    With the function's signature, arguments are bound and defaults applied first, so
    ``f(1)``, ``f(x=1)`` and ``f(1, y=<default>)`` share a key.
    """
    if signature is not None:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        text = stable_repr(list(bound.arguments.items()))
    else:
        text = stable_repr([list(args), dict(kwargs)])
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    if len(name) > _MAX_NAME:
        name = name[: _MAX_NAME - 17] + "~" + hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"lexigram:fn:{_safe(name)}:{digest}"


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _safe(name: str) -> str:
    """Keep only characters memcached accepts in keys (no spaces or control characters)."""
    return "".join(ch if 32 < ord(ch) < 127 else "_" for ch in name)
