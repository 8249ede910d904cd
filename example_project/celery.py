"""The example project's Celery app (eager unless ``CELERY_BROKER_URL`` is set).

``celery -A example_project worker`` runs the warm and refresh tasks of
``lexigram_cache_django.tasks``; ``celery -A example_project beat`` runs each warmer's
``every`` schedule, handed to the scheduler below when beat starts (warmers register once
apps are ready, after settings were read, so ``CELERY_BEAT_SCHEDULE`` cannot list them).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@beat_init.connect
def add_warmer_schedule(sender: Any = None, **kwargs: Any) -> None:
    """Hand the warmers' entries to the running scheduler (beat's own file, or
    django-celery-beat's ``DatabaseScheduler``, which stores them as ``PeriodicTask`` rows)."""
    from lexigram_cache_django import warming

    sender.scheduler.update_from_dict(warming.beat_schedule())
