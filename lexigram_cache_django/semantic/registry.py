"""The process's SemanticCache objects, so ``stats()``/``manage.py cache stats``/the admin can
show the semantic counters of an alias without knowing where the caches were built.

Weak references only: a cache that its owner drops leaves the registry with it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Protocol

from .. import operations


class Counted(Protocol):
    """What the registry needs of a SemanticCache (no import of cache.py: no cycle)."""

    alias: str
    namespace: str

    def counters(self) -> tuple[int, int, int, float]: ...


_lock = threading.Lock()
_caches: weakref.WeakSet[Counted] = weakref.WeakSet()


def register(cache: Counted) -> None:
    with _lock:
        _caches.add(cache)


def semantic_caches(alias: str | None = None) -> list[Counted]:
    """The live SemanticCache objects of this process (of one alias if given)."""
    with _lock:
        found = list(_caches)
    return [c for c in found if alias is None or c.alias == alias]


def stats_for_alias(alias: str) -> dict[str, Any] | None:
    """The semantic counters of every SemanticCache on ``alias`` in this process, summed.

    None when no SemanticCache uses the alias. Keys: ``exact_hits``, ``semantic_hits``,
    ``misses``, ``lookups``, ``hit_rate`` and ``mean_similarity`` (of vector hits; None when
    there are none), ``namespaces`` (sorted), ``caches`` (how many objects were summed).
    """
    parts = [c.counters() for c in semantic_caches(alias)]
    if not parts:
        return None
    exact = sum(p[0] for p in parts)
    semantic = sum(p[1] for p in parts)
    misses = sum(p[2] for p in parts)
    similarity = sum(p[3] for p in parts)
    lookups = exact + semantic + misses
    return {
        "exact_hits": exact,
        "semantic_hits": semantic,
        "misses": misses,
        "lookups": lookups,
        "hit_rate": (exact + semantic) / lookups if lookups else None,
        "mean_similarity": similarity / semantic if semantic else None,
        "namespaces": sorted({c.namespace for c in semantic_caches(alias)}),
        "caches": len(parts),
    }


# ``manage.py cache stats``, its JSON and the admin's alias page show these figures under
# ``features["semantic"]`` (for the SemanticCache objects of the process that asks).
operations.add_stats_source("semantic", stats_for_alias)
