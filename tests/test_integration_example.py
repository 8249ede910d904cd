"""End to end through the example project: its pages are cached until the admin changes them.

Written with lexigram_cache_django.testing, as a user's project would be: responses are
checked with ``assert_served_from_cache`` and invalidations with the ``invalidations``
fixture. The admin saves in a transaction, so these tests commit for real
(``transaction=True``): the invalidation runs on commit, as in production.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from pytest_django.fixtures import DjangoAssertNumQueries

from example_project.petclinic import views
from example_project.petclinic.models import Owner, Pet, Vaccine
from lexigram_cache_django.request_cache import request_cache
from lexigram_cache_django.testing import (
    InvalidationLog,
    assert_invalidated,
    assert_not_invalidated,
    assert_not_served_from_cache,
    assert_served_from_cache,
    count_cache_hits,
)
from lexigram_cache_django.testing.pytest_plugin import invalidations  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin(client: Client) -> Client:
    call_command("load_sample_data", stdout=StringIO())
    assert client.login(username="admin", password="admin")
    return client


def content(client: Client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content


def change_pet(client: Client, pet: Pet, **changes: object) -> None:
    """Submit the pet's admin change form with ``changes`` applied."""
    data: dict[str, object] = {
        "name": pet.name,
        "species": pet.species,
        "birth_date": pet.birth_date.isoformat() if pet.birth_date else "",
        "owner": pet.owner_id,
        "vaccines": [v.pk for v in pet.vaccines.all()],
        "_save": "Save",
    }
    data.update(changes)
    response = client.post(f"/admin/petclinic/pet/{pet.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]


def test_pages_are_cached_until_a_pet_is_edited_in_the_admin(
    admin: Client,
    invalidations: InvalidationLog,  # noqa: F811
) -> None:
    pet = Pet.objects.select_related("owner").get(
        owner__email="alice.anders@example.com", name="Biscuit"
    )
    other = Pet.objects.exclude(owner=pet.owner).first()
    assert other is not None
    urls = [
        pet.get_absolute_url(),
        pet.owner.get_absolute_url(),
        "/pets/",
        "/owners/",
        other.get_absolute_url(),
        other.owner.get_absolute_url(),
    ]
    for url in urls:
        content(admin, url)
        assert_served_from_cache(admin.get(url))

    change_pet(admin, pet, name="Biscotti")

    # The pet, its owner (extra tag), the model (lists); not the other pet or owner.
    assert_invalidated((Pet, pet.pk), (Owner, pet.owner_id), Pet)
    assert_not_invalidated((Pet, other.pk), (Owner, other.owner_id))
    for url in urls[:3]:
        assert b"Biscotti" in content(admin, url), url
    assert_not_served_from_cache(admin.get("/owners/"))  # tagged Pet: pet counts
    for url in urls[4:]:
        assert_served_from_cache(admin.get(url))


def test_moving_a_pet_to_another_owner_in_the_admin_updates_both_owners(
    admin: Client,
) -> None:
    pet = Pet.objects.select_related("owner").get(
        owner__email="alice.anders@example.com", name="Biscuit"
    )
    new_owner = Owner.objects.get(email="bruno.baptiste@example.com")
    old_page, new_page = pet.owner.get_absolute_url(), new_owner.get_absolute_url()
    assert b"Biscuit" in content(admin, old_page)
    assert b"Biscuit" not in content(admin, new_page)

    change_pet(admin, pet, owner=new_owner.pk)

    assert b"Biscuit" not in content(admin, old_page)
    assert b"Biscuit" in content(admin, new_page)
    assert new_owner.name.encode() in content(admin, pet.get_absolute_url())


def test_changing_vaccines_in_the_admin_updates_the_pet_and_its_owner(admin: Client) -> None:
    pet = Pet.objects.filter(vaccines__isnull=True).select_related("owner").first()
    assert pet is not None
    vaccine = Vaccine.objects.get(name="Bordetella")
    pet_page, owner_page = pet.get_absolute_url(), pet.owner.get_absolute_url()
    assert b"Bordetella" not in content(admin, pet_page)
    owner_before = content(admin, owner_page)

    change_pet(admin, pet, vaccines=[vaccine.pk])

    assert b"Bordetella" in content(admin, pet_page)
    assert content(admin, owner_page) != owner_before


def test_deleting_a_pet_in_the_admin(admin: Client) -> None:
    pet = Pet.objects.select_related("owner").get(
        owner__email="alice.anders@example.com", name="Biscuit"
    )
    pet_page, owner_page = pet.get_absolute_url(), pet.owner.get_absolute_url()
    assert b"Biscuit" in content(admin, owner_page)
    content(admin, pet_page)

    response = admin.post(f"/admin/petclinic/pet/{pet.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302

    assert admin.get(pet_page).status_code == 404
    assert b"Biscuit" not in content(admin, owner_page)
    assert f'href="{pet_page}"'.encode() not in content(admin, "/pets/")


def test_renaming_an_owner_updates_their_pets_pages(admin: Client) -> None:
    owner = Owner.objects.get(email="alice.anders@example.com")
    pet_page = owner.pets.first().get_absolute_url()  # type: ignore[union-attr]
    assert b"Alice Anders" in content(admin, pet_page)

    owner.name = "Alice Anders-Smith"
    owner.save()

    assert b"Alice Anders-Smith" in content(admin, pet_page)


def test_home_page_counts_and_fragment_follow_new_pets(admin: Client) -> None:
    home = content(admin, "/").decode()
    fragment = home.split('id="fragment-rendered-at">', 1)[1].split("<", 1)[0]
    assert "Pets</a> (60)" in home
    again = content(admin, "/").decode()
    assert fragment in again  # the fragment came from the cache; the page did not
    assert again != home

    owner = Owner.objects.first()
    response = admin.post(
        "/admin/petclinic/pet/add/",
        {"name": "Zebedee", "species": "rabbit", "birth_date": "", "owner": owner.pk},  # type: ignore[union-attr]
    )
    assert response.status_code == 302

    home = content(admin, "/").decode()
    assert "Pets</a> (61)" in home  # the cached counts were invalidated (model tag)
    assert "Zebedee" in home  # so was the "newest pets" fragment
    assert fragment not in home


def test_the_counts_function_is_cached_and_memoized_per_request(
    admin: Client, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    views.clinic_counts()
    with django_assert_num_queries(0):
        assert views.clinic_counts()["pet_count"] == 60

    Vaccine.objects.create(name="Leptospirosis")  # invalidates the Vaccine model tag
    assert views.clinic_counts()["vaccine_count"] == 7

    # request_cache(): what RequestCacheMiddleware opens for every request.
    with request_cache(), count_cache_hits("default") as hits:
        assert views.clinic_counts() == views.clinic_counts()
    assert hits["default"].hits == 1
