from __future__ import annotations

from django.db import models

from lexigram_cache_django.querysets import InvalidatingQuerySet


class Category(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    name = models.CharField(max_length=50)
    price = models.IntegerField(default=1)
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="products")

    objects = InvalidatingQuerySet.as_manager()  # update() and bulk_* invalidate too

    def __str__(self) -> str:
        return self.name

    def cache_invalidation_tags(self) -> list[tuple[type[Category], int]]:
        return [(Category, self.category_id)]
