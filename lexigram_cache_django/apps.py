"""Django app configuration for lexigram_cache_django."""

from __future__ import annotations

from django.apps import AppConfig


class LexigramCacheConfig(AppConfig):
    name = "lexigram_cache_django"
    verbose_name = "Lexigram cache"
    default_auto_field = "django.db.models.BigAutoField"
