"""Celery tasks: warm one warmer, warm them all, refresh one stale entry.

The only module of the package that imports Celery. Task names are stable (beat entries
and other services name them): ``lexigram_cache_django.warm``, ``lexigram_cache_django.
warm_all`` and ``lexigram_cache_django.refresh``. They are ``shared_task``s, bound to the
project's Celery app; its ``autodiscover_tasks()`` finds this module. Importing it also
tells :mod:`.revalidate` and :mod:`.warming` how to enqueue, so they never import Celery.
"""

from __future__ import annotations

from typing import Any

from celery import current_app, shared_task

from . import revalidate, warming
from .refreshers import run_message


@shared_task(name=warming.WARM_TASK, bind=True)
def warm(self: Any, name: str) -> dict[str, Any]:
    """Run one warmer in the worker; progress as ``PROGRESS`` with ``{"done", "total"}``."""

    task_id = self.request.id  # progress is reported from the warmer's threads

    def progress(done: int, total: int) -> None:
        self.update_state(task_id=task_id, state="PROGRESS", meta={"done": done, "total": total})

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


def _enqueue_refresh(message: dict[str, Any], app: Any = None) -> None:
    """Publish with ``app`` (the reader thread's current app), or raise at once: the caller
    then refreshes in a thread.

    ``retry=False`` alone still spends ~6 s in kombu's reconnection on a dead Redis broker;
    one connection attempt first makes a dead broker fail in milliseconds.
    """
    app = app or current_app._get_current_object()
    task = app.tasks[warming.REFRESH_TASK]
    if app.conf.task_always_eager:
        task.apply_async((message,), **_options())
        return
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=_CONNECT_TIMEOUT
        )
        task.apply_async((message,), retry=False, producer=producer, **_options())


def _current_app() -> Any:
    return current_app._get_current_object()


#: Seconds one connection attempt to the broker may take before the refresh runs locally.
_CONNECT_TIMEOUT = 2.0


revalidate.set_enqueuer(_enqueue_refresh, _current_app)
warming.set_enqueuer(_warm)
