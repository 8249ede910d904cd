"""``LEXIGRAM_CACHE["INVALIDATE_MODELS"]`` entries: which models, and how each is cached.

An entry is an ``"app_label.Model"`` string (invalidation only, as before) or a dict::

    {"model": "petclinic.Pet", "write_through": True, "cache": "default", "timeout": 600}

``write_through`` (default False): a committed save stores the row as read back after
the commit instead of only invalidating it. ``cache`` (default ``"default"``) and
``timeout`` (default: the alias's) are what :mod:`~lexigram_cache_django.lookups` uses
for the model's cached lookups when a call does not say.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.signals import setting_changed
from django.db.models import Model

from .conf import app_setting
from .exceptions import CacheConfigurationError

_SETTING = 'LEXIGRAM_CACHE["INVALIDATE_MODELS"]'
_ENTRY_KEYS = frozenset({"model", "write_through", "cache", "timeout"})


@dataclass(frozen=True)
class ModelEntry:
    """One INVALIDATE_MODELS entry, resolved."""

    model: type[Model]
    write_through: bool = False
    cache: str = DEFAULT_CACHE_ALIAS
    timeout: Any = DEFAULT_TIMEOUT


def _concrete(model: type[Model]) -> type[Model]:
    return model._meta.concrete_model or model


def _resolve(label: Any) -> type[Model]:
    if not isinstance(label, str):
        raise CacheConfigurationError(
            f'{_SETTING}: {label!r} is neither an "app_label.Model" string nor a dict.'
        )
    try:
        return apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise CacheConfigurationError(f"{_SETTING}: {label!r} is not a model ({exc}).") from None


def _entry(item: Any) -> ModelEntry:
    if not isinstance(item, dict):
        return ModelEntry(_resolve(item))
    unknown = set(item) - _ENTRY_KEYS
    if unknown or "model" not in item:
        raise CacheConfigurationError(
            f'{_SETTING}: a dict entry needs "model" and may have {sorted(_ENTRY_KEYS)}; '
            f"got {sorted(map(str, item))}."
        )
    write_through = item.get("write_through", False)
    cache = item.get("cache", DEFAULT_CACHE_ALIAS)
    timeout = item.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(write_through, bool):
        raise CacheConfigurationError(f'{_SETTING}: "write_through" must be True or False.')
    if not isinstance(cache, str) or cache not in settings.CACHES:
        raise CacheConfigurationError(f'{_SETTING}: "cache" {cache!r} is not a CACHES alias.')
    if (timeout is not DEFAULT_TIMEOUT and timeout is not None) and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float)
    ):
        raise CacheConfigurationError(f'{_SETTING}: "timeout" must be seconds or None.')
    return ModelEntry(_resolve(item["model"]), write_through, cache, timeout)


@functools.cache
def model_entries() -> tuple[ModelEntry, ...]:
    """Every INVALIDATE_MODELS entry (memoized; dropped when the setting changes)."""
    items = app_setting("INVALIDATE_MODELS")
    if isinstance(items, str) or not isinstance(items, list | tuple):
        raise CacheConfigurationError(
            f'{_SETTING} must be a list of "app_label.Model" strings or dicts.'
        )
    return tuple(_entry(item) for item in items)


@functools.cache
def _by_model() -> dict[type[Model], ModelEntry]:
    return {_concrete(entry.model): entry for entry in model_entries()}


def entry_for(model: type[Model]) -> ModelEntry:
    """The settings of ``model`` (a proxy shares its concrete model's); defaults if the
    model is not listed (registered in code, or not at all)."""
    found = _by_model().get(_concrete(model))
    return found if found is not None else ModelEntry(model)


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in ("LEXIGRAM_CACHE", "CACHES"):
        model_entries.cache_clear()
        _by_model.cache_clear()


setting_changed.connect(_reset, dispatch_uid="lexigram-model-options")
