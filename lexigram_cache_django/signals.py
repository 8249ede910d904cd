"""Django signals for what the caches do: hits, misses, evictions, breakers, tags.

Every signal's ``sender`` is the class of the object that sent it (a backend class, or
:class:`~lexigram_cache_django.circuit.CircuitBreaker`); the keyword arguments are:

* ``cache_hit`` / ``cache_miss``: ``cache`` (the backend object), ``alias`` (its name in
  ``CACHES``, or None for a backend built by hand), ``key`` (the made key). One signal per
  counted hit or miss: a ``get_many`` sends one per distinct key, as ``stats()`` counts.
* ``cache_evicted``: ``cache``, ``alias``, ``keys`` (the made keys dropped to make room).
* ``tags_invalidated``: ``cache``, ``alias``, ``tags`` (the tag names, as stored).
* ``circuit_opened``: ``server`` (masked address), ``error`` (``"Type: message"`` or None),
  ``failures``; ``circuit_closed``: ``server``, ``seconds`` (how long it was not closed),
  ``short_circuited`` (calls failed open meanwhile). Sent once per outage each (the
  half-open trials and re-openings in between are in the logs only).

The per-call signals (hit, miss, evicted) cost nothing while no receiver is connected: the
backends test :func:`listening` (a list's truth value) before building any argument, and
send after releasing their locks, so a receiver may use the cache it hears about.

Layer 0: imports nothing of the package (Django only).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.dispatch import Signal
from django.utils.module_loading import import_string

__all__ = [
    "alias_for",
    "batch_outcomes",
    "cache_evicted",
    "cache_hit",
    "cache_miss",
    "circuit_closed",
    "circuit_opened",
    "listening",
    "tags_invalidated",
]

# use_caching: receivers are looked up once per sender class, not on every send (about
# 1.5 µs a send with one receiver, against 1.9 µs).
cache_hit = Signal(use_caching=True)
cache_miss = Signal(use_caching=True)
cache_evicted = Signal(use_caching=True)
tags_invalidated = Signal(use_caching=True)
circuit_opened = Signal(use_caching=True)
circuit_closed = Signal(use_caching=True)


def listening(signal: Signal) -> bool:
    """Whether ``signal`` may have a receiver: cheaper than ``Signal.has_listeners()``
    (about 10 ns against 0.3-1 µs measured here), and at worst True for a receiver just
    garbage-collected, when ``send()`` finds nobody. Hot paths inline it (``.receivers``)."""
    return bool(signal.receivers)


def alias_for(cls: type, location: Any, params: Mapping[str, Any]) -> str | None:
    """The first alias of ``settings.CACHES`` that builds a ``cls`` from ``location`` and
    ``params`` (what Django's cache handler passed), or None (a backend built by hand)."""
    for alias, config in settings.CACHES.items():
        rest = dict(config)
        backend = rest.pop("BACKEND", None)
        if rest.pop("LOCATION", "") != location or rest != params or not isinstance(backend, str):
            continue
        try:
            if import_string(backend) is cls:
                return str(alias)
        except ImportError:
            continue
    return None


def batch_outcomes(
    made: Sequence[str], keys: Sequence[Any], found: Mapping[Any, Any]
) -> Iterator[tuple[str, bool]]:
    """``(made key, hit)`` for each distinct key of a batch read, in order."""
    seen: set[str] = set()
    for original, key in zip(keys, made):
        if key not in seen:
            seen.add(key)
            yield key, original in found
