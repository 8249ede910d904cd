"""Django app configuration for lexigram_cache_django."""

from __future__ import annotations

import logging

from django.apps import AppConfig

logger = logging.getLogger("lexigram_cache_django")


class LexigramCacheConfig(AppConfig):
    name = "lexigram_cache_django"
    verbose_name = "Lexigram cache"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Model-signal invalidation: INVALIDATE_MODELS plus models registered in code.
        from . import checks, invalidation, write_through  # noqa: F401  (checks registers itself)
        from .exceptions import CacheConfigurationError

        try:
            invalidation.connect()
            write_through.connect()  # after: a commit's invalidation runs before its refill
        except CacheConfigurationError as exc:
            # Raised here it would be a traceback before `manage.py check` could say which
            # entry is wrong (lexigram_cache.E013); say it loudly and let the check report it.
            logger.error("model-signal invalidation is off: %s", exc)
