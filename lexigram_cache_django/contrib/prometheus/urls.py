"""``path("metrics", include("lexigram_cache_django.contrib.prometheus.urls"))``."""

from __future__ import annotations

from django.urls import path

from .views import metrics_view

urlpatterns = [path("", metrics_view, name="lexigram-cache-metrics")]
