"""The helpers under Django's test runner: ``python manage.py test``."""

from __future__ import annotations

from django.core.cache import cache
from django.test import TestCase

from lexigram_cache_django.testing import CacheTestMixin, InvalidationLog
from shop.models import Category, Product


class ProductFixtures(CacheTestMixin, TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.books = Category.objects.create(name="books")
        self.toys = Category.objects.create(name="toys")
        self.novel = Product.objects.create(name="novel", category=self.books)
        self.robot = Product.objects.create(name="robot", category=self.toys)
        self.flush_fixture_invalidations()  # as if setUp's rows had been committed

    def page(self, product: Product) -> str:
        return f"/products/{product.pk}/"


class PageCacheTests(ProductFixtures):
    def test_the_second_request_is_served_from_the_cache(self) -> None:
        self.assertNotServedFromCache(self.client.get(self.page(self.novel)))
        self.assertServedFromCache(self.client.get(self.page(self.novel)))

    def test_a_save_invalidates_its_page_and_category_not_the_other_page(self) -> None:
        self.client.get(self.page(self.novel))
        self.client.get(self.page(self.robot))
        with self.captureOnCommitCallbacks(execute=True):
            self.novel.price = 2
            self.novel.save()

        self.assertInvalidated((Product, self.novel.pk), Product, (Category, self.books.pk))
        self.assertNotInvalidated((Product, self.robot.pk), (Category, self.toys.pk))
        (change,) = self.invalidations.changes_for((Product, self.novel.pk))
        self.assertEqual((change.action, change.instance), ("saved", self.novel))
        fresh = self.client.get(self.page(self.novel))
        self.assertNotServedFromCache(fresh)
        self.assertEqual(fresh.content, b"novel: 2")
        self.assertServedFromCache(self.client.get(self.page(self.robot)))

    def test_hits_and_misses_are_counted_per_alias(self) -> None:
        with self.count_cache_hits("default", "local") as first:
            self.client.get(self.page(self.novel))
        with self.count_cache_hits("default", "local") as second:
            self.client.get(self.page(self.novel))
        self.assertGreater(first["default"].misses, 0)
        self.assertEqual((second["default"].misses, second["local"].total), (0, 0))
        self.assertGreater(second["default"].hits, 0)

    def test_nothing_is_recorded_before_the_commit(self) -> None:
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            self.novel.delete()
        self.assertNotInvalidated(Product)
        for callback in callbacks:
            callback()
        self.assertInvalidated(Product, (Category, self.books.pk))


class WithoutFlushingFixtures(CacheTestMixin, TestCase):
    """The surprise docs/testing.md describes: setUp's rows join the test's first batch."""

    def setUp(self) -> None:
        super().setUp()
        self.books = Category.objects.create(name="books")
        self.novel = Product.objects.create(name="novel", category=self.books)
        self.atlas = Product.objects.create(name="atlas", category=self.books)

    def test_the_first_execute_flushes_setups_changes_too(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            self.novel.price = 3
            self.novel.save()
        self.assertInvalidated((Product, self.atlas.pk))  # created in setUp, flushed now
        (entry,) = self.invalidations.entries  # one batch for the whole transaction
        self.assertEqual(
            [c.action for _, c in entry.changes], ["created", "created", "created", "saved"]
        )


class EveryTestStartsEmpty(CacheTestMixin, TestCase):
    """Either test fails if the other ran first and the caches were not cleared."""

    def test_one(self) -> None:
        self.assertIsNone(cache.get("left-over"))
        cache.set("left-over", 1)

    def test_two(self) -> None:
        self.assertIsNone(cache.get("left-over"))
        cache.set("left-over", 2)

    def test_counters_start_at_zero(self) -> None:
        self.assertEqual(cache.counters.snapshot()["sets"], 0)  # type: ignore[attr-defined]
        cache.set("left-over", 3)


class AssertionMessages(CacheTestMixin, TestCase):
    def test_a_failed_assertion_says_what_was_invalidated(self) -> None:
        with InvalidationLog() as log, self.captureOnCommitCallbacks(execute=True):
            Category.objects.create(name="games")
        with self.assertRaisesMessage(AssertionError, "not invalidated: model:shop.product"):
            log.assert_invalidated(Product)
        with self.assertRaisesMessage(AssertionError, "created Category pk="):
            log.assert_invalidated(Product)
        with self.assertRaisesMessage(AssertionError, "unexpectedly: model:shop.category"):
            log.assert_not_invalidated(Category)
