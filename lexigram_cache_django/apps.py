"""Django app configuration for lexigram_cache_django."""

from __future__ import annotations

import logging
from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Tags, register

logger = logging.getLogger("lexigram_cache_django")


class LexigramCacheConfig(AppConfig):
    name = "lexigram_cache_django"
    verbose_name = "Lexigram cache"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Model-signal invalidation: INVALIDATE_MODELS plus models registered in code.
        from . import checks, invalidation, warming, write_through  # noqa: F401  (checks: itself)
        from .django_cache_checks import guard_django_cache_checks

        guard_django_cache_checks()  # a bad lexigram alias: our E-message, not a traceback
        from .exceptions import CacheConfigurationError

        try:
            invalidation.connect()
            write_through.connect()  # after: a commit's invalidation runs before its refill
        except CacheConfigurationError as exc:
            # Raised here it would be a traceback before `manage.py check` could say which
            # entry is wrong (lexigram_cache.E013); say it loudly and let the check report it.
            logger.error("model-signal invalidation is off: %s", exc)
        warming.autodiscover()  # warmers.py of every installed app, like admin.py
        from . import site_metrics

        site_metrics.install()  # the flusher thread of site-wide metrics (docs/metrics.md)
        if "SEMANTIC" in (getattr(settings, "LEXIGRAM_CACHE", None) or {}):
            # The semantic cache is an optional leaf: its checks register themselves when
            # it is configured (importing it needs the semantic extra only then).
            semantic_checks = import_module("lexigram_cache_django.semantic.checks")
            register(semantic_checks.check_semantic, Tags.caches)
