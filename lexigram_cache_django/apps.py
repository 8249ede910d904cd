"""Django app configuration for lexigram_cache_django."""

from __future__ import annotations

from django.apps import AppConfig


class LexigramCacheConfig(AppConfig):
    name = "lexigram_cache_django"
    verbose_name = "Lexigram cache"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Model-signal invalidation: INVALIDATE_MODELS plus models registered in code.
        from . import checks, invalidation, warming  # noqa: F401  (checks registers itself)

        invalidation.connect()
        warming.autodiscover()  # warmers.py of every installed app, like admin.py
