"""unittest / Django ``TestCase`` helpers: a mixin with the pytest fixtures' behaviour."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from ..tags import TagLike
from .assertions import assert_not_served_from_cache, assert_served_from_cache
from .caches import clear_caches
from .hits import CacheHits, count_cache_hits
from .recorder import InvalidationLog, flush_pending_invalidations


class CacheTestMixin:
    """Empty caches and zeroed counters around each test, invalidations recorded.

    Put it before ``TestCase``: ``class PetTests(CacheTestMixin, TestCase)``. In the
    test, ``self.invalidations`` is the :class:`InvalidationLog`; call
    :meth:`flush_fixture_invalidations` at the end of ``setUp`` so the rows it made do not
    join the test's first on-commit batch (see docs/testing.md).
    """

    invalidations: InvalidationLog

    def setUp(self) -> None:
        clear_caches()
        self.invalidations = InvalidationLog().start()
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        self.invalidations.stop()
        clear_caches()

    def flush_fixture_invalidations(self, using: str | None = None) -> None:
        """Invalidate what the fixtures queued for commit, then forget it (see the class)."""
        flush_pending_invalidations(using)
        self.invalidations.clear()

    def count_cache_hits(self, *aliases: str) -> AbstractContextManager[CacheHits]:
        return count_cache_hits(*aliases)

    def assertInvalidated(self, *tags: TagLike | Iterable[TagLike]) -> None:
        self.invalidations.assert_invalidated(*tags)

    def assertNotInvalidated(self, *tags: TagLike | Iterable[TagLike]) -> None:
        self.invalidations.assert_not_invalidated(*tags)

    def assertServedFromCache(self, response: Any) -> None:
        assert_served_from_cache(response)

    def assertNotServedFromCache(self, response: Any) -> None:
        assert_not_served_from_cache(response)
