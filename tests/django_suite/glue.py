"""The test module that points Django's cache test classes at the backend under test.

Copied into the run tree as ``cache/tests_lexigram.py`` and imported there by Django's
``runtests.py``; its configuration is ``config.json`` at the root of the run tree. It subclasses
one of Django's test classes (the flavour) and wraps it in ``override_settings(CACHES=...)``
built by Django's own ``caches_setting_for_tests``, so the class body runs unchanged against
our ``BACKEND``. Method-level ``override_settings(CACHES=...)`` naming Django's backend are
re-pointed too: without that, those tests would silently test Django's backend.
Standard library and Django only.
"""

from __future__ import annotations

import importlib
import json
import sys
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.test import TestCase, override_settings
from django.utils.module_loading import import_string

#: run root/config.json, written by the runner; this file is run root/tests/cache/<glue>.py.
CONFIG_FILE = Path(__file__).resolve().parents[2] / "config.json"

# The module, never its classes: names bound here are collected, and Django's own test
# classes must not run as well.
djtests: Any = importlib.import_module(f"{__package__}.tests")

CONFIG: dict[str, Any] = json.loads(CONFIG_FILE.read_text())
FLAVOR: str = CONFIG["flavor"]
TARGET: dict[str, Any] = CONFIG["params"]  # BACKEND, LOCATION, OPTIONS, other top-level keys

#: The Django backends the flavour's method-level overrides name, to be replaced by ours.
DJANGO_BACKENDS = {
    "base": set(),
    "locmem": {"django.core.cache.backends.locmem.LocMemCache"},
    "redis": {"django.core.cache.backends.redis.RedisCache"},
    "memcached": {"django.core.cache.backends.memcached.PyMemcacheCache"},
}[FLAVOR]

#: Methods known (Django 4.2 - 6.1) to carry a method-level override naming Django's
#: backend. One that exists but is not re-pointed means Django changed how it decorates:
#: refuse to run rather than test Django's backend.
EXPECTED_REPOINTS = {
    "base": set(),
    "locmem": {"test_multiple_caches", "test_lru_get", "test_lru_set", "test_lru_incr"},
    "redis": {"test_redis_pool_options"},
    "memcached": {"test_pymemcache_options"},
}[FLAVOR]


def _with_target_options(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the target's OPTIONS underneath its own, merged key by key.

    Django's helpers let an alias' OPTIONS (cull's MAX_ENTRIES) replace the base OPTIONS
    wholesale, which would drop the backend's own options.
    """
    options = dict(TARGET.get("OPTIONS") or {})
    options.update(params.get("OPTIONS") or {})
    merged = dict(params)
    if options:
        merged["OPTIONS"] = options
    else:
        merged.pop("OPTIONS", None)
    return merged


def target_caches(exclude: set[str]) -> dict[str, dict[str, Any]]:
    setting: dict[str, dict[str, Any]] = djtests.caches_setting_for_tests(
        base=TARGET, exclude=exclude
    )
    return {alias: _with_target_options(params) for alias, params in setting.items()}


def _repoint(caches_setting: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Aliases on Django's backend (or on no BACKEND) -> the same aliases on ours."""
    out = {}
    for alias, params in caches_setting.items():
        if params.get("BACKEND") is None or params["BACKEND"] in DJANGO_BACKENDS:
            merged = {**TARGET, **params, "BACKEND": TARGET["BACKEND"]}
            out[alias] = _with_target_options(merged)
        else:
            out[alias] = params
    return out


def _override_decorators(func: Callable[..., Any]) -> Iterator[override_settings]:
    """The ``override_settings`` around a test method, through stacked decorators too
    (``cache.tests.retry``): they live in the wrappers' closures."""
    seen: set[int] = set()
    stack: list[Any] = [func]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        for cell in getattr(current, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, override_settings):
                yield value
            elif callable(value) and hasattr(value, "__code__"):
                stack.append(value)
        stack.append(getattr(current, "__wrapped__", None))


def repoint_method_overrides(cls: type) -> list[str]:
    """Re-point each method-level ``override_settings(CACHES=...)``; return the methods."""
    repointed: set[int] = set()
    changed = []
    for name in dir(cls):
        if not name.startswith("test"):
            continue
        for decorator in _override_decorators(getattr(cls, name)):
            if "CACHES" not in decorator.options:
                continue
            if id(decorator) not in repointed:  # one instance can serve several methods
                repointed.add(id(decorator))
                caches_setting = _repoint(decorator.options["CACHES"])
                decorator.options = {**decorator.options, "CACHES": caches_setting}
            changed.append(name)
    return changed


def _locmem_set_up(self: Any) -> None:
    """LocMemCacheTests.setUp shares ``_cache``/``_expire_info`` between aliases; only a
    backend with those attributes can take that, any other errors in every test."""
    if all(hasattr(cache, attr) for attr in ("_cache", "_expire_info")):
        djtests.LocMemCacheTests.setUp(self)
    else:
        super(djtests.LocMemCacheTests, self).setUp()


def _build_class() -> type:
    # Django's Redis and Memcached classes are skipUnless(configured): unskip them.
    unskip: dict[str, Any] = {"__unittest_skip__": False, "__unittest_skip_why__": ""}
    if FLAVOR == "base":
        return type("LexigramBaseCacheTests", (djtests.BaseCacheTests, TestCase), {})
    if FLAVOR == "locmem":
        body: dict[str, Any] = {"setUp": _locmem_set_up}
        return type("LexigramLocMemCacheTests", (djtests.LocMemCacheTests,), body)
    if FLAVOR == "redis":
        return type("LexigramRedisCacheTests", (djtests.RedisCacheTests,), unskip)
    if FLAVOR == "memcached":
        body = {**unskip, "base_params": TARGET}
        return type("LexigramPyMemcacheCacheTests", (djtests.PyMemcacheCacheTests,), body)
    raise ValueError(f"unknown flavour {FLAVOR!r}")


def _default_exclude() -> set[str]:
    """Django's own choice per flavour: the servers cannot cull."""
    if FLAVOR == "redis":
        return set(djtests.redis_excluded_caches)
    if FLAVOR == "memcached":
        return set(djtests.memcached_excluded_caches)
    return set()


def _configure(test_class: type) -> type:
    if CONFIG.get("incr_decr_error"):
        test_class.incr_decr_type_error = import_string(CONFIG["incr_decr_error"])  # type: ignore[attr-defined]
    repointed = repoint_method_overrides(test_class)
    missed = sorted(
        name for name in EXPECTED_REPOINTS if hasattr(test_class, name) and name not in repointed
    )
    if missed:
        raise ImportError(f"could not re-point the method-level CACHES of {', '.join(missed)}")
    print(
        f"[django_suite glue] {test_class.__name__}: CACHES on {TARGET['BACKEND']} for the class"
        f" and for {', '.join(sorted(set(repointed))) or 'no methods'}",
        file=sys.stderr,
    )
    if CONFIG.get("skip_internals"):
        skip = unittest.skip("implementation-internal test (--skip-internals)")
        for name in CONFIG["internals"]:
            if hasattr(test_class, name):
                setattr(test_class, name, skip(getattr(test_class, name)))
    exclude = CONFIG["exclude"]
    aliases = set(exclude) if exclude is not None else _default_exclude()
    configured: type = override_settings(CACHES=target_caches(aliases))(test_class)
    return configured


TEST_CLASS = _configure(_build_class())
