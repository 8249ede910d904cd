"""Site-wide metrics: every process's counter deltas, added up on a shared server.

A site runs many processes, and counters per process mislead. A daemon thread in each
process wakes every ``LEXIGRAM_CACHE["METRICS_INTERVAL"]`` seconds (default 10), takes the
deltas of each alias's counters since its last flush, and adds them to a per-minute
bucket on the alias's own server (or on ``METRICS_ALIAS``'s), kept for a day:

* Redis: one hash per alias and minute, ``HINCRBY`` per counter and ``EXPIRE``, in one
  pipeline;
* Memcached: one key per alias, minute and counter, ``incr`` (``add`` when it is new);
* memory (and any other alias without a server to share): buckets in this process only,
  shown as per process.

Nothing runs on the hot path of a read: the thread reads the counters the backends keep
anyway. Writes go through the target backend's choke point (its circuit breaker) and its
fail-open policy, and never raise into the application; a failed flush keeps its deltas
for the next one. The thread is started by the app's ``ready()`` and restarted in a
forked child, whose counters then start from what it inherited (no double counting).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.cache import caches

from .backends.base import LexigramCache
from .backends.tiered.core import TieredCore
from .conf import app_setting
from .exceptions import CacheServerError
from .failfast import one_operation
from .metrics import COUNTERS

logger = logging.getLogger("lexigram_cache_django")

#: Seconds a minute bucket is kept (a day, plus two minutes of slack).
RETENTION = 86_400 + 120
MINUTE = 60
#: Part of every bucket key; bump when the layout changes.
LAYOUT = "v1"

_lock = threading.Lock()
_thread: threading.Thread | None = None
_stop = threading.Event()
_pid = os.getpid()
#: Last flushed snapshot, per alias identity (counters are shared by identity).
_baselines: dict[str, dict[str, int]] = {}
#: In-process buckets of the aliases without a shared server: alias -> minute -> counts.
_local: dict[str, dict[int, dict[str, int]]] = {}


# -- settings ---------------------------------------------------------------------------------


def enabled() -> bool:
    return bool(app_setting("METRICS_ENABLED"))


def interval() -> float:
    return float(app_setting("METRICS_INTERVAL"))


def _minute(now: float | None = None) -> int:
    now = time.time() if now is None else now
    return int(now // MINUTE) * MINUTE


def bucket_key(alias: str, minute: int) -> str:
    """The key of one alias's bucket for one minute (raw: no KEY_PREFIX of the target;
    the source alias's own KEY_PREFIX keeps sites that share a server apart)."""
    prefix = str(settings.CACHES.get(alias, {}).get("KEY_PREFIX", "") or "")
    return f"lexigram:metrics:{LAYOUT}:{prefix}:{alias}:{minute}"


def target(alias: str) -> LexigramCache | None:
    """The networked backend an alias's metrics are added up on, or None (in process)."""
    name = app_setting("METRICS_ALIAS") or alias
    if name not in settings.CACHES:
        return None
    cache = caches[name]
    if isinstance(cache, TieredCore):
        cache = cache._l2
    if isinstance(cache, LexigramCache) and cache.backend_name in ("redis", "memcached"):
        return cache
    return None


# -- writing ----------------------------------------------------------------------------------


def _delta(now: Mapping[str, int], base: Mapping[str, int]) -> dict[str, int]:
    """Increments since ``base``; a counter that went down was reset, so all of it is new."""
    delta: dict[str, int] = {}
    for name, value in now.items():
        before = base.get(name, 0)
        change = value - before if value >= before else value
        if change > 0:
            delta[name] = change
    return delta


def flush_now() -> None:
    """Add every alias's deltas to its bucket now (the thread calls this; so can tests and
    the admin page). Never raises."""
    with _lock:
        minute = _minute()
        seen: set[str] = set()
        for alias in settings.CACHES:
            try:
                _flush_alias(alias, minute, seen)
            except Exception:  # a metrics flush must never break anything
                logger.debug("site metrics: flushing %r failed", alias, exc_info=True)


def _flush_alias(alias: str, minute: int, seen: set[str]) -> None:
    cache = caches[alias]
    if not isinstance(cache, LexigramCache) or cache.identity in seen:
        return
    seen.add(cache.identity)
    snapshot = cache.counters.snapshot()
    delta = _delta(snapshot, _baselines.get(cache.identity, {}))
    if not delta:
        _baselines[cache.identity] = snapshot
        return
    store = target(alias)
    if store is None:
        bucket = _local.setdefault(alias, {}).setdefault(minute, {})
        for name, n in delta.items():
            bucket[name] = bucket.get(name, 0) + n
        _prune_local(alias, minute)
    elif not _write(store, bucket_key(alias, minute), delta):
        return  # keep the baseline: these deltas go out with the next flush
    _baselines[cache.identity] = snapshot


def _prune_local(alias: str, minute: int) -> None:
    buckets = _local[alias]
    for old in [m for m in buckets if m <= minute - RETENTION]:
        del buckets[old]


def _write(store: LexigramCache, key: str, delta: Mapping[str, int]) -> bool:
    client: Any = store._client  # type: ignore[attr-defined]
    try:
        with one_operation():
            if store.backend_name == "redis":
                commands: list[tuple[Any, ...]] = [
                    ("HINCRBY", key, name, n) for name, n in delta.items()
                ]
                commands.append(("EXPIRE", key, RETENTION))
                client.send_pipeline(client.primary, commands)
            else:
                for name, n in delta.items():
                    counter = f"{key}:{name}"
                    if client.incr(counter, n) is None and not client.add(
                        counter, str(n).encode(), RETENTION
                    ):
                        client.incr(counter, n)  # another process added it first
    except CacheServerError as exc:
        try:
            store._failed("site metrics flush", exc, None)  # type: ignore[attr-defined]
        except Exception:
            pass  # FAIL_SILENTLY False raises; a background flush must not
        return False
    return True


# -- reading ----------------------------------------------------------------------------------


def _minutes(minutes: int) -> list[int]:
    if minutes < 1:
        raise ValueError(f"minutes must be at least 1, not {minutes}")
    last = _minute()
    return [last - MINUTE * i for i in range(minutes - 1, -1, -1)]


def series(alias: str, minutes: int = 60) -> list[dict[str, int]]:
    """One dict per minute, oldest first: ``{"minute": epoch seconds, "hits": ..., ...}``
    for every counter, missing minutes as zeros. Site-wide where the alias has a shared
    server, else this process's. A server that cannot be read gives zeros."""
    wanted = _minutes(minutes)
    store = target(alias) if alias in settings.CACHES else None
    found: Mapping[int, Mapping[str, int]] = {}
    if store is None:
        found = dict(_local.get(alias, {}))
    else:
        try:
            found = _read(store, alias, wanted)
        except CacheServerError as exc:
            logger.debug("site metrics: reading %r failed: %s", alias, exc)
    return [
        {"minute": m, **{name: int(found.get(m, {}).get(name, 0)) for name in COUNTERS}}
        for m in wanted
    ]


def _read(store: LexigramCache, alias: str, minutes: list[int]) -> dict[int, dict[str, int]]:
    client: Any = store._client  # type: ignore[attr-defined]
    out: dict[int, dict[str, int]] = {}
    with one_operation():
        if store.backend_name == "redis":
            replies = client.send_pipeline(
                client.primary, [("HGETALL", bucket_key(alias, m)) for m in minutes]
            )
            for m, reply in zip(minutes, replies):
                if isinstance(reply, dict) and reply:
                    out[m] = {_text(k): int(v) for k, v in reply.items()}
            return out
        keys = [f"{bucket_key(alias, m)}:{name}" for m in minutes for name in COUNTERS]
        values = client.get_many(keys, True)
        for index, raw in enumerate(values):
            if raw is not None:
                m = minutes[index // len(COUNTERS)]
                out.setdefault(m, {})[COUNTERS[index % len(COUNTERS)]] = int(raw)
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def site_totals(alias: str, minutes: int = 1440) -> dict[str, int] | None:
    """The sum of the last ``minutes`` minute buckets, site-wide; None where the alias has
    no shared server to add up on (memory, Django's backends: per process only)."""
    if alias not in settings.CACHES or target(alias) is None:
        return None
    totals = {name: 0 for name in COUNTERS}
    for bucket in series(alias, minutes):
        for name in COUNTERS:
            totals[name] += bucket[name]
    return totals


# -- the thread -------------------------------------------------------------------------------


def _run(stop: threading.Event) -> None:
    while not stop.wait(interval()):
        if enabled():  # METRICS_ENABLED may be turned off while the process runs
            flush_now()


def start() -> None:
    """Start this process's flusher thread if metrics are on and it is not running."""
    global _thread, _pid
    if not enabled():
        return
    with _lock:
        if _thread is not None and _thread.is_alive() and _pid == os.getpid():
            return
        _pid = os.getpid()
        _stop.clear()
        _thread = threading.Thread(
            target=_run, args=(_stop,), name="lexigram-site-metrics", daemon=True
        )
        _thread.start()


def stop() -> None:
    """Stop the flusher thread (tests); a last flush is the caller's to do."""
    global _thread
    _stop.set()
    thread, _thread = _thread, None
    if thread is not None and thread.is_alive() and thread is not threading.current_thread():
        thread.join(timeout=5)


def _after_fork_in_child() -> None:
    """A forked child inherits its parent's counters and none of its threads: count from
    what it inherited and start its own flusher if the parent had one."""
    global _lock, _thread, _stop
    was_running = _thread is not None
    _lock = threading.Lock()
    _stop = threading.Event()
    _thread = None
    _local.clear()
    for stats_identity, stats in _registered().items():
        _baselines[stats_identity] = stats.snapshot()
    if was_running:
        try:
            start()
        except Exception:
            logger.debug("site metrics: cannot start in the forked child", exc_info=True)


def _registered() -> dict[str, Any]:
    from .metrics import registered_stats

    return registered_stats()


def _at_exit() -> None:
    if _thread is not None:
        flush_now()


def install() -> None:
    """Called once by the app's ``ready()``: fork and exit hooks, then the thread."""
    global _installed
    if not _installed:
        _installed = True
        os.register_at_fork(after_in_child=_after_fork_in_child)
        atexit.register(_at_exit)
    start()


_installed = False
