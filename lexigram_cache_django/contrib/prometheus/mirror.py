"""Multiprocess mode: each process copies its counters into prometheus-client's files.

With ``PROMETHEUS_MULTIPROC_DIR`` set, a scrape reaches one process of the site, and
prometheus-client's ``MultiProcessCollector`` reads only the files that its ``Counter`` and
``Gauge`` objects write; a custom collector there would report that one process. So every
process runs a :class:`Mirror`: a daemon thread that, every ``PROMETHEUS_INTERVAL`` seconds
(and at exit, and before a scrape served by this process), adds each counter's growth since
the last copy to a prometheus-client ``Counter`` of the same name and sets each gauge. The
files then add up across processes: counters by sum, gauges by their family's
``multiprocess_mode`` (``livesum`` entries, ``livemax`` breaker states). The latency
histograms go into a prometheus-client ``Histogram`` with the same bucket bounds: each
bucket's growth is added to that bucket's value (prometheus-client's ``Histogram`` has only
``observe``, so this reaches its per-bucket values, ``_buckets`` and ``_sum``; checked on
prometheus-client 0.20-0.26). Cost: one pass over
the aliases per interval, off the cache's hot path; data up to one interval old.

After a fork the child starts from the counts it inherited (they belong to the parent, which
copies them itself) and restarts its thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from ...conf import app_setting
from ...failfast import breakers
from ...metrics import LATENCY_BOUNDS, histograms, registered_stats
from .collector import (
    FAMILIES,
    LATENCY,
    LATENCY_DOC,
    LATENCY_LABELS,
    BreakerBase,
    Family,
    LatencyBase,
    StatsBase,
    latency_samples,
    samples,
)

__all__ = ["Mirror", "multiprocess_dir"]

logger = logging.getLogger("lexigram_cache_django.prometheus")


def multiprocess_dir() -> str | None:
    """prometheus-client's multiprocess directory, if this process is in that mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get(
        "prometheus_multiproc_dir"  # noqa: SIM112  # prometheus-client's deprecated spelling
    )


class Mirror:
    """Copies :func:`~.collector.samples` into prometheus-client metric objects."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, Any] = {}
        self._last: dict[tuple[str, tuple[str, ...]], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats_base: StatsBase = {}
        self._breaker_base: BreakerBase = {}
        self._latency_base: LatencyBase = {}
        self._latency: Any = None
        self._latency_last: dict[tuple[str, str], tuple[list[int], float]] = {}
        self.interval = 5.0

    def _metric(self, family: Family) -> Any:
        metric = self._metrics.get(family.name)
        if metric is None:
            # registry=None: in multiprocess mode the files are what counts, and the
            # default registry may already hold a CacheCollector under these names.
            if family.kind == "counter":
                metric = Counter(family.name, family.doc, family.labels, registry=None)
            else:
                metric = Gauge(
                    family.name,
                    family.doc,
                    family.labels,
                    registry=None,
                    multiprocess_mode=family.multiprocess_mode,  # type: ignore[arg-type]
                )
            self._metrics[family.name] = metric
        return metric

    def copy(self) -> None:
        """One pass: counters grow by what they grew since the last pass; gauges are set.
        A counter found lower than last time was reset (``reset_stats()``): it grows by
        its whole value, as Prometheus counters never go down."""
        values = samples(self._stats_base, self._breaker_base)
        with self._lock:
            for family in FAMILIES:
                metric = self._metric(family)
                for labels, value in values[family.name]:
                    child = metric.labels(*labels)
                    if family.kind == "gauge":
                        child.set(value)
                        continue
                    key = (family.name, labels)
                    last = self._last.get(key, 0.0)
                    grown = value - last if value >= last else value
                    self._last[key] = value
                    if grown > 0:
                        child.inc(grown)
            self._copy_latency()

    def _copy_latency(self) -> None:
        """Add each histogram bucket's growth since the last pass (a reset histogram: all
        of it) to the multiprocess Histogram's bucket."""
        if self._latency is None:
            self._latency = Histogram(
                LATENCY, LATENCY_DOC, LATENCY_LABELS, registry=None, buckets=LATENCY_BOUNDS
            )
        for labels, _hist, counts, total in latency_samples(self._latency_base):
            last_counts, last_total = self._latency_last.get(labels, ([0] * len(counts), 0.0))
            reset = any(c < last for c, last in zip(counts, last_counts))
            grown = counts if reset else [c - last for c, last in zip(counts, last_counts)]
            self._latency_last[labels] = (counts, total)
            if not any(grown):
                continue
            child = self._latency.labels(*labels)
            for bucket, count in zip(child._buckets, grown):
                if count > 0:
                    bucket.inc(count)
            child._sum.inc(total if reset else max(total - last_total, 0.0))

    def baseline(self) -> None:
        """Count from now on: what the counters hold now is the parent's (after a fork),
        copied by the parent. Reads attributes only: no lock, no cache object built."""
        self._stats_base = {stats: stats.snapshot() for stats in registered_stats().values()}
        self._breaker_base = {b: (b.times_opened, b.short_circuited) for b in breakers()}
        self._latency_base = {h: (list(h.counts), h.sum) for h in histograms().values()}
        self._metrics = {}
        self._last = {}
        self._latency = None
        self._latency_last = {}

    def start(self) -> None:
        """Start the copying thread (idempotent), with a last copy at exit."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.interval = float(app_setting("PROMETHEUS_INTERVAL"))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="lexigram-prometheus-mirror", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.interval):
            self.copy_logged()

    def copy_logged(self) -> None:
        try:
            self.copy()
        except Exception:  # a thread must not die of one bad pass
            logger.exception("copying cache metrics for prometheus failed")

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._thread = None
        self.baseline()
        self.start()


MIRROR = Mirror()
_hooks_installed = False


def start_mirror() -> Mirror:
    """Start this process's mirror, once; forks restart it, exit copies a last time."""
    global _hooks_installed
    if not _hooks_installed:
        _hooks_installed = True
        atexit.register(MIRROR.copy_logged)
        os.register_at_fork(after_in_child=_after_fork_in_child)
    MIRROR.start()
    return MIRROR


def _after_fork_in_child() -> None:
    if MIRROR._thread is not None:  # only a process that mirrored restarts it
        MIRROR.after_fork()
