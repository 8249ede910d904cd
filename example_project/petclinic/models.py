"""Owners, their pets and vaccines: enough relations (FK and M2M) to exercise a cache.

The three models are registered for model-signal invalidation in settings
(``LEXIGRAM_CACHE["INVALIDATE_MODELS"]``): any change to a row invalidates the model's tag
and the row's tag after the commit. Their managers also invalidate on the queryset paths
that send no signals (``update()``, ``bulk_create()``, ``bulk_update()``, ``delete()``),
and have cached lookups: ``Pet.objects.cached().get(pk=1)`` (docs/models.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models
from django.urls import reverse

from lexigram_cache_django.lookups import CachedQuerySet
from lexigram_cache_django.tags import TagLike


class Owner(models.Model):
    """A person who brings pets to the clinic."""

    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    city = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)

    objects = CachedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("petclinic:owner-detail", args=[self.pk])


class Vaccine(models.Model):
    """A vaccine a pet can have had; linked to pets many-to-many."""

    name = models.CharField(max_length=100, unique=True)
    interval_months = models.PositiveSmallIntegerField(
        default=12, help_text="Months between booster shots."
    )

    objects = CachedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Pet(models.Model):
    """An animal belonging to one owner, with the vaccines it has had."""

    class Species(models.TextChoices):
        DOG = "dog", "Dog"
        CAT = "cat", "Cat"
        RABBIT = "rabbit", "Rabbit"
        BIRD = "bird", "Bird"
        HAMSTER = "hamster", "Hamster"
        LIZARD = "lizard", "Lizard"

    name = models.CharField(max_length=100)
    species = models.CharField(max_length=20, choices=Species.choices)
    birth_date = models.DateField(null=True, blank=True)
    owner = models.ForeignKey(Owner, on_delete=models.CASCADE, related_name="pets")
    vaccines = models.ManyToManyField(Vaccine, related_name="pets", blank=True)

    objects = CachedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_species_display()})"

    def get_absolute_url(self) -> str:
        return reverse("petclinic:pet-detail", args=[self.pk])

    def cache_invalidation_tags(self) -> Iterable[TagLike]:
        """A pet is shown on its owner's page: a change to the pet invalidates the owner's
        row too (for a pet moved to another owner, both the old and the new owner)."""
        return [(Owner, self.owner_id)]
