"""``INSTALLED_APPS`` entry: exports the caches when Django starts, in every process."""

from __future__ import annotations

from django.apps import AppConfig


class PrometheusConfig(AppConfig):
    name = "lexigram_cache_django.contrib.prometheus"
    label = "lexigram_cache_prometheus"
    verbose_name = "Cache metrics for Prometheus"

    def ready(self) -> None:
        from . import install

        install()
