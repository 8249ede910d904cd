"""The helpers under pytest: fixtures from lexigram_cache_django.testing.pytest_plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from lexigram_cache_django.invalidation import ainvalidate_now, invalidate_now
from lexigram_cache_django.testing import (
    InvalidationLog,
    assert_invalidated,
    assert_not_invalidated,
    assert_not_served_from_cache,
    assert_served_from_cache,
    flush_pending_invalidations,
)
from shop.models import Category, Product

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("lexigram_caches")]


@pytest.fixture
def novel() -> Product:
    product = Product.objects.create(name="novel", category=Category.objects.create(name="b"))
    flush_pending_invalidations()
    return product


def test_served_from_cache(client: Client, novel: Product) -> None:
    assert_not_served_from_cache(client.get(f"/products/{novel.pk}/"))
    assert_served_from_cache(client.get(f"/products/{novel.pk}/"))
    with pytest.raises(AssertionError, match="rendered, not served from the cache"):
        assert_served_from_cache(client.get("/products/"))


def test_served_from_djangos_own_cache_middleware(client: Client) -> None:
    assert_not_served_from_cache(client.get("/about/"))
    assert_served_from_cache(client.get("/about/"))
    assert_not_served_from_cache(client.post("/about/"))


def test_invalidations_after_commit(
    invalidations: InvalidationLog,
    django_capture_on_commit_callbacks: Callable[..., Any],
    novel: Product,
) -> None:
    invalidations.clear()
    other = Product.objects.create(name="other", category=novel.category)
    flush_pending_invalidations()
    invalidations.clear()
    with django_capture_on_commit_callbacks(execute=True):
        Product.objects.filter(pk=novel.pk).update(price=5)
    assert_invalidated(Product, (Product, novel.pk), (Category, novel.category_id))
    assert_not_invalidated((Product, other.pk))
    assert [c.action for c in invalidations.changes_for(Product)] == ["update"]


def test_direct_invalidation_is_recorded_without_a_change(
    invalidations: InvalidationLog,
) -> None:
    invalidate_now(["menu"])
    assert_invalidated("menu")
    assert invalidations.changes_for("menu") == []


async def test_async_invalidation_is_recorded(invalidations: InvalidationLog) -> None:
    await ainvalidate_now(["menu", "prices"])
    assert_invalidated("menu", "prices")
    assert_not_invalidated("stock")


def test_cache_hits(cache_hits: Callable[..., Any], client: Client, novel: Product) -> None:
    client.get("/products/")
    with cache_hits("default") as hits:
        client.get("/products/")
        assert hits["default"].hits > 0
    assert hits["default"].misses == 0
    with pytest.raises(KeyError, match="not counted here"):
        hits["local"]


def test_the_caches_start_empty_one() -> None:
    assert cache.get("left-over") is None
    cache.set("left-over", 1)


def test_the_caches_start_empty_two() -> None:
    assert cache.get("left-over") is None
    cache.set("left-over", 2)


def test_the_counters_start_at_zero() -> None:
    assert cache.counters.snapshot()["sets"] == 0  # type: ignore[attr-defined]
    cache.set("left-over", 3)


def test_asserting_without_a_recording_says_how_to_start_one() -> None:
    with pytest.raises(RuntimeError, match="invalidations` pytest fixture"):
        assert_invalidated(Product)
