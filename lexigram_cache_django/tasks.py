"""Celery tasks: warm one warmer, warm them all, refresh one stale entry.

The only module of the package that imports Celery. Task names are stable (beat entries
and other services name them): ``lexigram_cache_django.warm``, ``lexigram_cache_django.
warm_all`` and ``lexigram_cache_django.refresh``. They are ``shared_task``s, bound to the
project's Celery app; its ``autodiscover_tasks()`` finds this module. Importing it also
tells :mod:`.revalidate` and :mod:`.warming` how to enqueue, so they never import Celery.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import revalidate, warming
from .refreshers import run_message


@shared_task(name=warming.WARM_TASK, bind=True)
def warm(self: Any, name: str) -> dict[str, Any]:
    """Run one warmer in the worker; progress as ``PROGRESS`` with ``{"done", "total"}``."""

    def progress(done: int, total: int) -> None:
        self.update_state(state="PROGRESS", meta={"done": done, "total": total})

    return warming.run(name, progress=progress).as_dict()


@shared_task(name=warming.WARM_ALL_TASK)
def warm_all(names: list[str] | None = None) -> dict[str, str]:
    """Enqueue one ``warm`` task per warmer (default: all), so workers run them in
    parallel; returns their task ids by warmer name."""
    return {name: _warm(name).id for name in names or sorted(warming.registry())}


@shared_task(name=warming.REFRESH_TASK, ignore_result=True)
def refresh(message: dict[str, Any]) -> bool:
    """Recompute one stale entry (a ``@cached`` call or a page); see :mod:`.refreshers`."""
    return run_message(message)


def _options() -> dict[str, Any]:
    queue = revalidate.setting("CELERY_QUEUE", None)
    return {"queue": queue} if queue else {}


def _warm(name: str) -> Any:
    return warm.apply_async((name,), **_options())


def _enqueue_refresh(message: dict[str, Any]) -> None:
    # retry=False: a dead broker fails at once, and the refresh then runs in a thread.
    refresh.apply_async((message,), retry=False, **_options())


revalidate.set_enqueuer(_enqueue_refresh)
warming.set_enqueuer(_warm)
