"""Helpers for testing a project that uses lexigram-cache-django (see docs/testing.md).

* :func:`clear_caches`: empty every alias and zero its counters.
* :class:`InvalidationLog` and :func:`assert_invalidated` / :func:`assert_not_invalidated`:
  which tags model changes invalidated (after commit) and which change caused each.
* :func:`count_cache_hits`: hits and misses per alias inside a ``with`` block.
* :func:`assert_served_from_cache`: the response was built from a stored page.
* :func:`flush_pending_invalidations`: run the invalidations fixtures queued on commit
  inside a Django ``TestCase``, so they do not join the test's own batch.
* :func:`fake_redis`: a ``CACHES`` entry for RedisCache over fakeredis (no server).
* :class:`CacheTestMixin` for unittest/Django ``TestCase``; fixtures in
  :mod:`lexigram_cache_django.testing.pytest_plugin` (opt in with ``-p``).
"""

from __future__ import annotations

from .assertions import (
    assert_invalidated,
    assert_not_invalidated,
    assert_not_served_from_cache,
    assert_served_from_cache,
    served_from_cache,
)
from .caches import clear_caches, fake_redis
from .cases import CacheTestMixin
from .hits import CacheHits, HitCounts, count_cache_hits
from .recorder import Invalidation, InvalidationLog, flush_pending_invalidations

__all__ = [
    "CacheHits",
    "CacheTestMixin",
    "HitCounts",
    "Invalidation",
    "InvalidationLog",
    "assert_invalidated",
    "assert_not_invalidated",
    "assert_not_served_from_cache",
    "assert_served_from_cache",
    "clear_caches",
    "count_cache_hits",
    "fake_redis",
    "flush_pending_invalidations",
    "served_from_cache",
]
