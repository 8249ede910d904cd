"""System checks: bad cache settings are reported by ``manage.py check``, not at 3 a.m.

Every alias whose backend is a lexigram backend is checked: unknown UPPER_CASE options
(typos, with a suggestion), option values of the wrong type or range, a serializer or
compressor that cannot be loaded; and the ``LEXIGRAM_CACHE`` setting's keys.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.utils.module_loading import import_string

from .exceptions import CacheConfigurationError

LEXIGRAM_CACHE_KEYS = frozenset({"INVALIDATE_MODELS", "INVALIDATE_CACHES"})

#: option -> (accepted types, lowest allowed value, highest allowed value or None)
_NUMBERS: dict[str, tuple[tuple[type, ...], float, float | None]] = {
    "STAMPEDE_LOCK_TIMEOUT": ((int, float), 0.001, None),
    "STAMPEDE_WAIT_TIMEOUT": ((int, float), 0.0, None),
    "XFETCH_BETA": ((int, float), 0.0, None),
    "TTL_JITTER": ((int, float), 0.0, 0.99),
    "TAG_TIMEOUT": ((int, float), 1.0, None),
    "COMPRESS_MIN_BYTES": ((int,), 0, None),
    "MAX_ENTRIES": ((int,), 1, None),
    "CULL_FREQUENCY": ((int,), 0, None),
    "CONNECT_TIMEOUT": ((int, float), 0.001, None),
    "SOCKET_TIMEOUT": ((int, float), 0.001, None),
    "POOL_TIMEOUT": ((int, float), 0.0, None),
    "MAX_CONNECTIONS": ((int,), 1, None),
    "POOL_SIZE": ((int,), 1, None),
    "MAX_ITEM_BYTES": ((int,), 1024, None),
}


def _error(alias: str, msg: str, hint: str | None, id: str) -> Error:
    return Error(f"CACHES[{alias!r}]: {msg}", hint=hint, obj="settings.CACHES", id=id)


def check_alias(alias: str, config: dict[str, Any]) -> list[CheckMessage]:
    """The problems of one CACHES entry (empty if it is not a lexigram backend)."""
    from .backends.base import LexigramCache, build_codec

    try:
        backend = import_string(config.get("BACKEND", ""))
    except ImportError:
        return []  # Django reports unloadable backends itself, on first use
    if not (isinstance(backend, type) and issubclass(backend, LexigramCache)):
        return []
    options: dict[str, Any] = config.get("OPTIONS") or {}
    if not isinstance(options, dict):
        return [_error(alias, "OPTIONS must be a dict.", None, "lexigram_cache.E001")]
    problems: list[CheckMessage] = []
    for name, value in options.items():
        if not isinstance(name, str) or name != name.upper():
            continue  # lower-case keys go to the client library as they are
        if name not in backend.known_options:
            close = difflib.get_close_matches(name, backend.known_options, n=1)
            problems.append(
                _error(
                    alias,
                    f"unknown option {name!r} for {backend.__name__}.",
                    f"Did you mean {close[0]!r}?" if close else "See docs/settings.md.",
                    "lexigram_cache.E002",
                )
            )
        elif name in _NUMBERS:
            types, low, high = _NUMBERS[name]
            if isinstance(value, bool) or not isinstance(value, types):
                kinds = " or ".join(t.__name__ for t in types)
                problems.append(
                    _error(
                        alias,
                        f"{name} must be {kinds}, not {type(value).__name__}.",
                        None,
                        "lexigram_cache.E003",
                    )
                )
            elif not low <= float(options[name]) <= (high if high is not None else float("inf")):
                bounds = f">= {low}" if high is None else f"between {low} and {high}"
                problems.append(
                    _error(
                        alias,
                        f"{name} must be {bounds}, not {value!r}.",
                        None,
                        "lexigram_cache.E004",
                    )
                )
    if "FAIL_SILENTLY" in options and not isinstance(options["FAIL_SILENTLY"], bool):
        message = "FAIL_SILENTLY must be True or False."
        problems.append(_error(alias, message, None, "lexigram_cache.E003"))
    if not any(p.id in ("lexigram_cache.E003", "lexigram_cache.E004") for p in problems):
        try:
            build_codec(options)
        except CacheConfigurationError as exc:
            problems.append(_error(alias, str(exc), None, "lexigram_cache.E005"))
    return problems


@register(Tags.caches)
def check_caches(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every lexigram alias in CACHES, and the LEXIGRAM_CACHE setting."""
    problems: list[CheckMessage] = []
    for alias, config in getattr(settings, "CACHES", {}).items():
        problems.extend(check_alias(alias, config))
    app_settings = getattr(settings, "LEXIGRAM_CACHE", {})
    if not isinstance(app_settings, dict):
        problems.append(Error("LEXIGRAM_CACHE must be a dict.", id="lexigram_cache.E010"))
        return problems
    for key in app_settings:
        if key not in LEXIGRAM_CACHE_KEYS:
            close = difflib.get_close_matches(str(key), LEXIGRAM_CACHE_KEYS, n=1)
            problems.append(
                Error(
                    f"LEXIGRAM_CACHE: unknown key {key!r}.",
                    hint=f"Did you mean {close[0]!r}?" if close else "See docs/settings.md.",
                    obj="settings.LEXIGRAM_CACHE",
                    id="lexigram_cache.E011",
                )
            )
    return problems
