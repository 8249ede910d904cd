"""The ``/metrics`` view: prometheus-client's Django view, current in multiprocess mode.

In multiprocess mode the process that serves the scrape first copies its own counters (the
others copy theirs every ``PROMETHEUS_INTERVAL``), then reads every process's files.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.django import PrometheusDjangoView

from . import MIRROR, install, multiprocess_dir

__all__ = ["MetricsView", "metrics_view"]


class MetricsView(PrometheusDjangoView):
    """Every metric of the default registry (ours included), or, with
    ``PROMETHEUS_MULTIPROC_DIR`` set, every process's, decided per request."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        path = multiprocess_dir()
        install()
        if path:
            MIRROR.copy_logged()
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=path)  # type: ignore[no-untyped-call]
        else:
            self.registry = REGISTRY
        response: HttpResponse = super().get(request, *args, **kwargs)  # type: ignore[no-untyped-call]
        return response


metrics_view = MetricsView.as_view()
