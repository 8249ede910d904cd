# Django's admin classes are generic only in django-stubs, not at runtime:
# mypy: disable-error-code="type-arg"
"""Admin pages for editing the clinic's data (and, later, watching caches invalidate)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from .models import Owner, Pet, Vaccine


class PetInline(admin.TabularInline):
    model = Pet
    extra = 0
    fields = ["name", "species", "birth_date"]
    show_change_link = True


@admin.register(Owner)
class OwnerAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "city", "pet_count", "created"]
    list_filter = ["city"]
    search_fields = ["name", "email", "city"]
    inlines = [PetInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Owner]:
        """Count pets in the changelist query rather than one query per row."""
        owners: QuerySet[Owner] = super().get_queryset(request)
        return owners.annotate(pet_count=Count("pets"))

    @admin.display(description="Pets", ordering="pet_count")
    def pet_count(self, owner: Owner) -> int:
        return int(getattr(owner, "pet_count", 0))


@admin.register(Pet)
class PetAdmin(admin.ModelAdmin):
    list_display = ["name", "species", "birth_date", "owner"]
    list_filter = ["species", "vaccines"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__name", "owner__email"]
    autocomplete_fields = ["owner"]
    filter_horizontal = ["vaccines"]


@admin.register(Vaccine)
class VaccineAdmin(admin.ModelAdmin):
    list_display = ["name", "interval_months"]
    search_fields = ["name"]
