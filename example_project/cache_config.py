"""Build Django's ``CACHES`` setting from environment variables.

The example project reads its cache configuration from the environment so that the same
code can be run against every backend (memory, Redis, Memcached, tiered, or Django's own
LocMemCache for comparison) without editing files. See ``docs/example_project.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

#: Short names accepted by ``CACHE_BACKEND`` / ``CACHE_L2_BACKEND`` and their classes.
BACKENDS: dict[str, str] = {
    "memory": "lexigram_cache_django.backends.memory.MemoryCache",
    "redis": "lexigram_cache_django.backends.redis.RedisCache",
    "memcached": "lexigram_cache_django.backends.memcached.MemcachedCache",
    "tiered": "lexigram_cache_django.backends.tiered.TieredCache",
    "locmem": "django.core.cache.backends.locmem.LocMemCache",
}

#: ``LOCATION`` used when ``CACHE_LOCATION`` is not set.
DEFAULT_LOCATIONS: dict[str, str] = {
    "memory": "example-project",
    "locmem": "example-project",
    "redis": "redis://127.0.0.1:6379/1",
    "memcached": "127.0.0.1:11211",
}

#: Backends whose ``LOCATION`` may list several servers, comma separated.
MULTI_SERVER_BACKENDS = frozenset({"redis", "memcached"})

#: ``LOCATION`` of the in-process first level of the tiered cache.
TIERED_L1_LOCATION = "example-project-l1"


def cache_settings_from_env(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Return a ``CACHES`` dict described by ``CACHE_*`` variables in ``environ``.

    ``CACHE_BACKEND=tiered`` yields three aliases: ``default`` (the tiered cache),
    ``local`` (its in-process L1) and ``shared`` (its L2, chosen by ``CACHE_L2_BACKEND``
    and located by ``CACHE_LOCATION``). Every other value yields only ``default``.
    ``CACHE_OPTIONS`` is merged into the ``OPTIONS`` of ``default``.
    """
    name = _backend_name(environ.get("CACHE_BACKEND", ""), default="memory")
    location = environ.get("CACHE_LOCATION", "").strip()
    common: dict[str, Any] = {
        "TIMEOUT": _parse_timeout(environ.get("CACHE_TIMEOUT", "300")),
        "KEY_PREFIX": environ.get("CACHE_KEY_PREFIX", "example"),
    }
    options = _parse_options(environ.get("CACHE_OPTIONS", ""))

    if name != "tiered":
        return {"default": _alias(name, location, common, options)}

    l2_name = _backend_name(environ.get("CACHE_L2_BACKEND", ""), default="redis")
    if l2_name == "tiered":
        raise ImproperlyConfigured("CACHE_L2_BACKEND cannot be 'tiered'.")
    return {
        "default": {
            "BACKEND": BACKENDS["tiered"],
            **common,
            "OPTIONS": {"L1": "local", "L2": "shared", **options},
        },
        "local": _alias("memory", TIERED_L1_LOCATION, common, {}),
        "shared": _alias(l2_name, location, common, {}),
    }


def _backend_name(value: str, *, default: str) -> str:
    """Normalise a backend name: short names are case-insensitive, dotted paths are kept."""
    value = value.strip()
    if not value:
        return default
    if "." in value:
        return value
    name = value.lower()
    if name not in BACKENDS:
        choices = ", ".join(sorted(BACKENDS))
        raise ImproperlyConfigured(
            f"Unknown cache backend {value!r}: use one of {choices} or a dotted class path."
        )
    return name


def _alias(
    name: str, location: str, common: Mapping[str, Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    """One ``CACHES`` entry for a short backend name or a dotted class path."""
    location = location or DEFAULT_LOCATIONS.get(name, "")
    return {
        "BACKEND": BACKENDS.get(name, name),
        "LOCATION": _split_location(location) if name in MULTI_SERVER_BACKENDS else location,
        **common,
        "OPTIONS": dict(options),
    }


def _split_location(location: str) -> str | list[str]:
    """A comma-separated server list becomes a list; a single server stays a string."""
    servers = [server.strip() for server in location.split(",") if server.strip()]
    return servers[0] if len(servers) == 1 else servers


def _parse_timeout(value: str) -> int | None:
    """Seconds as an integer; ``none`` means "never expire", as Django's ``TIMEOUT=None``."""
    value = value.strip()
    if value.lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"CACHE_TIMEOUT must be an integer or 'none', not {value!r}."
        ) from None


def _parse_options(value: str) -> dict[str, Any]:
    """``CACHE_OPTIONS`` is a JSON object; anything else is a configuration error."""
    if not value.strip():
        return {}
    try:
        options = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"CACHE_OPTIONS is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise ImproperlyConfigured("CACHE_OPTIONS must be a JSON object.")
    return options
