"""Function views: list and detail pages for owners and pets, cached with tags.

The footer of every page shows when it was rendered, so it is visible whether a response
came from the cache. Each cached page is tagged with what it shows; the models are
registered for invalidation (settings), so saving a pet in the admin invalidates, after
the commit, exactly the pages that showed it:

* the pet's page (its row tag) and its owner's page (``Pet.cache_invalidation_tags``);
* the two lists (model tags), and the home page's counts and "newest pets" fragment.
"""

from __future__ import annotations

from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from lexigram_cache_django.decorators import cache_page, cached
from lexigram_cache_django.request_cache import cache_in_request

from .models import Owner, Pet, Vaccine

PAGE_TIMEOUT = 300


@cached(timeout=PAGE_TIMEOUT, tags=[Owner, Pet, Vaccine])
def shared_clinic_counts() -> dict[str, int]:
    """Row counts, recomputed only after one of the three tables changed (a warmer
    fills them ahead of the first reader: ``warmers.py``)."""
    return {
        "owner_count": Owner.objects.count(),
        "pet_count": Pet.objects.count(),
        "vaccine_count": Vaccine.objects.count(),
    }


#: Asked twice in one request: the shared cache is read once.
clinic_counts = cache_in_request(shared_clinic_counts)


@cached(timeout=60, stale_while_revalidate=600, refresh="celery")
def species_counts() -> list[tuple[str, int]]:
    """Pets per species: fresh for a minute, then served stale for ten more minutes while
    one Celery task (inline in eager mode) recomputes it in the background."""
    rows = Pet.objects.values_list("species").annotate(n=Count("pk")).order_by("species")
    labels = dict(Pet.Species.choices)
    return [(labels.get(species, species), n) for species, n in rows]


def index(request: HttpRequest) -> HttpResponse:
    """Landing page (not cached as a whole) with cached counts and a cached fragment."""
    context = {
        **clinic_counts(),
        # Lazy: only evaluated when the "newest pets" fragment is not in the cache.
        "newest_pets": Pet.objects.select_related("owner").order_by("-pk")[:5],
        "newest_pets_tags": [Pet, Owner],
    }
    return render(request, "petclinic/index.html", context)


@cache_page(PAGE_TIMEOUT, tags=[Owner, Pet])
def owner_list(request: HttpRequest) -> HttpResponse:
    """All owners with how many pets each has: changes with any owner or pet."""
    owners = Owner.objects.annotate(pet_count=Count("pets"))
    return render(request, "petclinic/owner_list.html", {"owners": owners})


@cache_page(PAGE_TIMEOUT, tags=lambda request, pk: [(Owner, pk), Vaccine])
def owner_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One owner and their pets, each with its vaccines.

    A change to one of the pets invalidates the owner's row tag (the pet's extra tag).
    """
    pets = Pet.objects.prefetch_related("vaccines")
    owner = get_object_or_404(
        Owner.objects.prefetch_related(Prefetch("pets", queryset=pets)), pk=pk
    )
    return render(request, "petclinic/owner_detail.html", {"owner": owner})


@cache_page(PAGE_TIMEOUT, tags=[Pet, Owner])
def pet_list(request: HttpRequest) -> HttpResponse:
    """All pets with their owners."""
    pets = Pet.objects.select_related("owner")
    return render(request, "petclinic/pet_list.html", {"pets": pets})


@cache_page(PAGE_TIMEOUT, tags=lambda request, pk: [(Pet, pk), Owner, Vaccine])
def pet_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One pet with its owner and vaccines (owner and vaccine names: their model tags)."""
    pet = get_object_or_404(Pet.objects.select_related("owner").prefetch_related("vaccines"), pk=pk)
    return render(request, "petclinic/pet_detail.html", {"pet": pet})


@cache_page(30, stale_while_revalidate=300)
def species(request: HttpRequest) -> HttpResponse:
    """Pets per species. Stale-while-revalidate twice: the page is fresh for 30 s, then
    served at once for 5 more minutes while a background thread re-renders it."""
    return render(request, "petclinic/species.html", {"rows": species_counts()})
