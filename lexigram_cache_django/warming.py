"""Cache warmers: fill an alias before readers ask, at deploy time, on a schedule, or again
after an invalidation.

A warmer is a function registered with :func:`warmer` that returns or yields ``(key,
value)`` pairs or a mapping; a value may be a callable, computed by the warmer's threads
(that is what ``concurrency`` bounds). With ``cached=`` it warms a ``@cached`` function
instead: it yields the arguments of the calls to warm (a tuple, a dict of keyword
arguments, or one value), each computed and stored under the function's own key, tags
and timeout. :func:`run` runs one in this process and returns a :class:`WarmReport`; the
Celery tasks in :mod:`lexigram_cache_django.tasks` run them in a worker, and
:func:`beat_schedule` turns each warmer's ``every`` into ``CELERY_BEAT_SCHEDULE`` entries.

Warmers live in ``warmers.py`` modules of installed apps, imported when the app registry is
ready (like ``admin.py``). A warmer with ``tags`` and ``rewarm=True`` is enqueued again after
an invalidation of any of those tags commits (:func:`tags_invalidated`, which the
invalidation module calls).

This module does not import Celery: tasks are reached by name through
:func:`lexigram_cache_django.revalidate.load_tasks`.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.checks import CheckMessage
from django.core.checks import Error as CheckError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils.module_loading import autodiscover_modules

from .backends.base import LexigramCache
from .revalidate import REFRESH_MODES, load_tasks, setting
from .tags import TagLike, tag_names

logger = logging.getLogger("lexigram_cache_django")

F = TypeVar("F", bound=Callable[..., Any])
Progress = Callable[[int, int], None]
#: Seconds between two progress reports of one run (plus one at the end).
_PROGRESS_EVERY = 0.2
#: Error messages kept in a report.
_ERRORS_KEPT = 10


@dataclass(frozen=True)
class Warmer:
    """One registered warmer; see :func:`warmer`."""

    name: str
    func: Callable[[], Any]
    alias: str = DEFAULT_CACHE_ALIAS
    every: Any = None
    timeout: Any = None
    tags: tuple[str, ...] = ()  #: tag names (see tags.tag_names)
    concurrency: int = 10
    skip_existing: bool = False
    rewarm: bool = False
    cached: Any = None


@dataclass
class WarmReport:
    """What one run did: entries written, skipped (already cached), failed; wall time."""

    name: str
    alias: str
    total: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class UnknownWarmer(LookupError):
    """No warmer of that name is registered."""


_registry: dict[str, Warmer] = {}


def warmer(
    name: str,
    *,
    alias: str = DEFAULT_CACHE_ALIAS,
    every: float | timedelta | Any = None,
    timeout: Any = None,
    tags: Iterable[TagLike] | TagLike | None = None,
    concurrency: int = 10,
    skip_existing: bool = False,
    rewarm: bool = False,
    cached: Any = None,
) -> Callable[[F], F]:
    """Register the decorated function as the warmer ``name``; the function is unchanged.

    ``timeout``: of the written entries (None: the alias's ``TIMEOUT``; ignored with
    ``cached=``, whose own timeout applies). ``tags``: tags the entries are written with,
    and what ``rewarm=True`` listens to. ``every``: seconds, a ``timedelta`` or a Celery
    schedule (``crontab``) for :func:`beat_schedule`. ``skip_existing``: leave keys that are
    already cached alone (and compute nothing for them).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if rewarm and not tags:
        raise ValueError("rewarm=True needs the tags the warmer fills")
    if cached is not None and not callable(getattr(cached, "refresh", None)):
        raise TypeError("cached= takes a @cached function")
    names = tag_names(tags)  # strings: the tags as they are stored and bumped

    def register(func: F) -> F:
        _registry[name] = Warmer(
            name,
            func,
            alias,
            every,
            timeout,
            names,
            concurrency,
            skip_existing,
            rewarm,
            cached,
        )
        return func

    return register


def registry() -> dict[str, Warmer]:
    """The registered warmers by name (a copy)."""
    return dict(_registry)


def unregister(name: str) -> None:
    _registry.pop(name, None)


def get(name: str) -> Warmer:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise UnknownWarmer(f"no warmer named {name!r} (registered: {known})") from None


def autodiscover() -> None:
    """Import ``warmers.py`` of every installed app (``LEXIGRAM_CACHE["WARMERS_AUTODISCOVER"]``)."""
    if setting("WARMERS_AUTODISCOVER", True):
        autodiscover_modules("warmers")


# -- running -------------------------------------------------------------------------------


def _items(w: Warmer) -> list[Any]:
    produced = w.func()
    if isinstance(produced, Mapping):
        return list(produced.items())
    return list(produced or ())


def _call_args(item: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(item, dict):
        return (), item
    if isinstance(item, tuple):
        return item, {}
    return (item,), {}


def _warm_one(w: Warmer, item: Any) -> bool:
    """Write one item; False when skipped as already cached."""
    cache = caches[w.alias]
    if w.cached is not None:
        args, kwargs = _call_args(item)
        if w.skip_existing and cache.has_key(w.cached.key(*args, **kwargs)):
            return False
        result = w.cached.refresh(*args, **kwargs)
        if hasattr(result, "__await__"):
            import asyncio

            asyncio.run(_await(result))
        return True
    key, value = item
    if w.skip_existing and cache.has_key(key):
        return False
    if callable(value):
        value = value()
    timeout = DEFAULT_TIMEOUT if w.timeout is None else w.timeout
    if w.tags and isinstance(cache, LexigramCache):
        cache.set(key, value, timeout, tags=list(w.tags))
    else:
        cache.set(key, value, timeout)
    return True


async def _await(result: Any) -> Any:
    return await result


def run(name: str, *, progress: Progress | None = None) -> WarmReport:
    """Run the warmer ``name`` here, with at most ``concurrency`` items in flight.

    A failing item is counted and logged, never raised; a failing warmer function (the one
    producing the items) counts as one failure. ``progress(done, total)`` is called at most
    every 0.2 s and once at the end.
    """
    w = get(name)
    report = WarmReport(name, w.alias)
    started = time.monotonic()
    try:
        items = _items(w)
    except Exception as exc:
        logger.exception("warmer %r failed to produce its items", name)
        report.failed, report.errors = 1, [f"{type(exc).__name__}: {exc}"]
        report.seconds = time.monotonic() - started
        return report
    report.total = len(items)
    lock = threading.Lock()
    last = [0.0]

    def done(written: bool | None, error: str | None = None) -> None:
        with lock:
            if error is not None:
                report.failed += 1
                if len(report.errors) < _ERRORS_KEPT:
                    report.errors.append(error)
            elif written:
                report.written += 1
            else:
                report.skipped += 1
            count = report.written + report.skipped + report.failed
            now = time.monotonic()
            if progress is not None and (now - last[0] >= _PROGRESS_EVERY or count == report.total):
                last[0] = now
                try:
                    progress(count, report.total)
                except Exception:  # a report that failed is not a cache entry that did
                    logger.exception("warmer %r: reporting progress failed", name)

    work: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for item in items:
        work.put(item)

    def worker() -> None:
        try:
            while True:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    done(_warm_one(w, item))
                except Exception as exc:
                    logger.warning("warmer %r: item %.80r failed: %s", name, item, exc)
                    done(None, f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()  # this thread's own connections

    threads = [
        threading.Thread(target=worker, name=f"warm-{name}-{i}") for i in range(w.concurrency)
    ]
    threads = threads[: max(1, min(len(threads), report.total))]
    if progress is not None and report.total == 0:
        progress(0, 0)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report.seconds = time.monotonic() - started
    logger.info(
        "warmer %r: %d written, %d skipped, %d failed in %.2fs",
        name,
        report.written,
        report.skipped,
        report.failed,
        report.seconds,
    )
    return report


def run_all(
    names: Sequence[str] | None = None, *, progress: Progress | None = None
) -> list[WarmReport]:
    """Run several warmers (default: all) one after the other."""
    return [run(name, progress=progress) for name in (names or sorted(_registry))]


# -- Celery, by name -------------------------------------------------------------------------

WARM_TASK = "lexigram_cache_django.warm"
WARM_ALL_TASK = "lexigram_cache_django.warm_all"
REFRESH_TASK = "lexigram_cache_django.refresh"

Enqueuer = Callable[[str], Any]
_enqueuer: Enqueuer | None = None


def set_enqueuer(enqueue: Enqueuer | None) -> None:
    """Called by :mod:`lexigram_cache_django.tasks` on import with its ``warm`` task."""
    global _enqueuer
    _enqueuer = enqueue


def enqueue(name: str) -> Any:
    """Enqueue the warm task for ``name``; its ``AsyncResult``. Needs Celery."""
    get(name)
    if _enqueuer is None and not load_tasks():
        raise RuntimeError("warming through Celery needs celery installed")
    assert _enqueuer is not None
    return _enqueuer(name)


def beat_schedule(prefix: str = "lexigram-warm-") -> dict[str, dict[str, Any]]:
    """``CELERY_BEAT_SCHEDULE`` entries for every warmer with ``every``.

    Warmers register when apps are ready, after settings are read: merge this into
    ``app.conf.beat_schedule`` from the project's Celery module (see docs/warming.md).
    """
    options = {"queue": q} if (q := _queue()) else {}
    entries: dict[str, dict[str, Any]] = {}
    for name, w in sorted(_registry.items()):
        if w.every is None:
            continue
        schedule = timedelta(seconds=w.every) if isinstance(w.every, int | float) else w.every
        entry: dict[str, Any] = {"task": WARM_TASK, "schedule": schedule, "args": (name,)}
        if options:
            entry["options"] = dict(options)
        entries[f"{prefix}{name}"] = entry
    return entries


def _queue() -> str | None:
    queue_name: str | None = setting("CELERY_QUEUE", None)
    return queue_name


# -- re-warm after invalidation ----------------------------------------------------------------


def tags_invalidated(names: Iterable[str], using: str | None = None) -> None:
    """Called by the invalidation module after it bumped ``names``: enqueue, after the
    commit (at once outside a transaction), every ``rewarm=True`` warmer filling one."""
    bumped = set(names)
    for name, w in sorted(_registry.items()):
        if w.rewarm and bumped.intersection(w.tags):
            if connections[using or DEFAULT_DB_ALIAS].in_atomic_block:
                transaction.on_commit(functools.partial(_rewarm, name), using=using)
            else:  # committed already (invalidation itself runs after the commit)
                _rewarm(name)


_rewarming: dict[str, bool] = {}  # warmers re-warming in a thread: run again when done?
_rewarm_lock = threading.Lock()
_rewarm_warned = False


def _rewarm(name: str) -> None:
    global _rewarm_warned
    try:
        enqueue(name)
    except Exception as exc:  # no broker, no Celery: warm in a thread instead
        if not _rewarm_warned:
            _rewarm_warned = True
            logger.warning("re-warm %r: enqueueing failed (%s); warming in threads", name, exc)
        _rewarm_in_thread(name)


def _rewarm_in_thread(name: str) -> None:
    """One thread per warmer at a time; invalidations meanwhile make it run once more."""
    with _rewarm_lock:
        if name in _rewarming:
            _rewarming[name] = True
            return
        _rewarming[name] = False

    def loop() -> None:
        while True:
            try:
                run(name)
            finally:
                with _rewarm_lock:
                    again = _rewarming.get(name, False)
                    if not again:
                        _rewarming.pop(name, None)
                    else:
                        _rewarming[name] = False
            if not again:
                return

    threading.Thread(target=loop, name=f"rewarm-{name}", daemon=True).start()


# -- settings check -------------------------------------------------------------------------


def check_warming() -> list[CheckMessage]:
    """System check of the warming and stale-while-revalidate settings."""
    errors: list[CheckMessage] = []
    from django.conf import settings

    conf = getattr(settings, "LEXIGRAM_CACHE", None) or {}
    if not isinstance(conf, dict):
        return errors  # reported by the main check (lexigram_cache.E010)

    def error(msg: str, n: int) -> None:
        errors.append(CheckError(msg, obj="settings.LEXIGRAM_CACHE", id=f"lexigram_cache.E16{n}"))

    if conf.get("SWR_REFRESH", "thread") not in REFRESH_MODES:
        error(f'LEXIGRAM_CACHE["SWR_REFRESH"] must be one of {REFRESH_MODES}.', 1)
    for option, n in (("SWR_THREADS", 2), ("SWR_CLAIM_TIMEOUT", 3)):
        value = conf.get(option)
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            error(f'LEXIGRAM_CACHE["{option}"] must be a positive number.', n)
    q = conf.get("CELERY_QUEUE")
    if q is not None and (not isinstance(q, str) or not q):
        error('LEXIGRAM_CACHE["CELERY_QUEUE"] must be a queue name (a string).', 4)
    if not isinstance(conf.get("WARMERS_AUTODISCOVER", True), bool):
        error('LEXIGRAM_CACHE["WARMERS_AUTODISCOVER"] must be True or False.', 5)
    for name, w in sorted(_registry.items()):
        if w.alias not in settings.CACHES:
            error(f"warmer {name!r} names cache {w.alias!r}, which is not in CACHES.", 6)
    return errors
