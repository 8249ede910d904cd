"""pytest fixtures for projects that use lexigram-cache-django (opt in, see docs/testing.md).

Load with ``pytest -p lexigram_cache_django.testing.pytest_plugin``, or
``pytest_plugins = ["lexigram_cache_django.testing.pytest_plugin"]`` in your root
conftest.py. Not registered as an automatic (``pytest11``) plugin: it would load into
every test run of every project that installs the package, this one's included, and its
fixtures clear caches, which nobody should get without asking. Needs pytest-django (or
Django settings configured some other way) before a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from .caches import clear_caches
from .hits import CacheHits, count_cache_hits
from .recorder import InvalidationLog


@pytest.fixture
def lexigram_caches() -> Iterator[None]:
    """Every alias of ``CACHES`` cleared, counters zeroed, before and after the test."""
    clear_caches()
    yield
    clear_caches()


@pytest.fixture
def invalidations() -> Iterator[InvalidationLog]:
    """The tags invalidated during the test (after commit), with the changes behind them.

    ``assert_invalidated``/``assert_not_invalidated`` read it; inside a ``django_db``
    test (a transaction rolled back at the end) invalidations run only under
    ``django_capture_on_commit_callbacks(execute=True)``.
    """
    with InvalidationLog() as log:
        yield log


@pytest.fixture
def cache_hits() -> Callable[..., AbstractContextManager[CacheHits]]:
    """``with cache_hits() as hits: ...; hits["default"].hits`` (aliases optional)."""
    return count_cache_hits
