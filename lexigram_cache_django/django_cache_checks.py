"""Django's own cache checks, run so that a bad lexigram alias is reported, not raised.

Django's cache checks build every alias (``caches[alias]``); a lexigram backend refuses a
bad entry in its constructor, which there would be a traceback before our own check
(:mod:`.checks`) could say which entry is wrong. Installed by the app's ``ready()``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import caches

from .checks import _lexigram_backend


def _guarded(check: Callable[..., Any]) -> Callable[..., Any]:
    """``check`` run with a stand-in for lexigram aliases that cannot be built.

    Django's cache checks build every alias (``caches[alias]``); a lexigram backend
    refuses a bad entry in its constructor, which there would be a traceback. The
    stand-in is a ``DummyCache`` for the duration of the check; ours reports the entry.
    """

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> Any:
        from django.core.cache.backends.dummy import DummyCache

        stand_ins = []
        for alias, config in dict(getattr(settings, "CACHES", {})).items():
            if isinstance(config, dict) and _lexigram_backend(config) is not None:
                try:
                    caches[alias]
                except Exception:
                    caches[alias] = DummyCache("", {})
                    stand_ins.append(alias)
        try:
            return check(*args, **kwargs)
        finally:
            for alias in stand_ins:
                del caches[alias]

    run.lexigram_guarded = True  # type: ignore[attr-defined]
    return run


def guard_django_cache_checks() -> None:
    """Replace Django's cache checks in the registry by their guarded versions (idempotent)."""
    from django.core.checks import caches as django_checks
    from django.core.checks.registry import registry

    for checks, deploy in ((registry.registered_checks, False), (registry.deployment_checks, True)):
        for check in list(checks):
            if getattr(check, "__module__", "") != django_checks.__name__:
                continue
            if (
                getattr(check, "lexigram_guarded", False)
                or getattr(check, "__name__", "") == "check_default_cache_is_configured"
            ):
                continue
            checks.discard(check)
            registry.register(_guarded(check), *getattr(check, "tags", ()), deploy=deploy)
