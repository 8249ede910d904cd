"""Plain function views: list and detail pages for owners and pets.

They are deliberately uncached; the footer of every page shows when it was rendered, so
once caching is added it is visible whether a response came from the cache.
"""

from __future__ import annotations

from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from .models import Owner, Pet, Vaccine


def index(request: HttpRequest) -> HttpResponse:
    """Landing page linking to the lists, with counts so an empty database is obvious."""
    context = {
        "owner_count": Owner.objects.count(),
        "pet_count": Pet.objects.count(),
        "vaccine_count": Vaccine.objects.count(),
    }
    return render(request, "petclinic/index.html", context)


def owner_list(request: HttpRequest) -> HttpResponse:
    """All owners with how many pets each has."""
    owners = Owner.objects.annotate(pet_count=Count("pets"))
    return render(request, "petclinic/owner_list.html", {"owners": owners})


def owner_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One owner and their pets, each with its vaccines."""
    pets = Pet.objects.prefetch_related("vaccines")
    owner = get_object_or_404(
        Owner.objects.prefetch_related(Prefetch("pets", queryset=pets)), pk=pk
    )
    return render(request, "petclinic/owner_detail.html", {"owner": owner})


def pet_list(request: HttpRequest) -> HttpResponse:
    """All pets with their owners."""
    pets = Pet.objects.select_related("owner")
    return render(request, "petclinic/pet_list.html", {"pets": pets})


def pet_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One pet with its owner and vaccines."""
    pet = get_object_or_404(Pet.objects.select_related("owner").prefetch_related("vaccines"), pk=pk)
    return render(request, "petclinic/pet_detail.html", {"pet": pet})
