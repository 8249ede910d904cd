"""Model-signal invalidation: pages and values showing a row change when its transaction commits.

The page tests drive the example project's tagged pages with Django's test client. They
run with real commits (``transaction=True``) so ``on_commit`` callbacks really run; the
footer of every page holds its render time, so equal bytes mean "served from the cache".
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import caches
from django.db import connection, transaction
from django.test import Client
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks, Settings

from example_project.petclinic.models import Owner, Pet, Vaccine
from lexigram_cache_django import invalidation
from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.backends.memory import MemoryCache
from lexigram_cache_django.exceptions import CacheConfigurationError
from lexigram_cache_django.tags import tag_names

transactional = pytest.mark.django_db(transaction=True)


@dataclass
class Clinic:
    ann: Owner
    bob: Owner
    rex: Pet
    tom: Pet
    kit: Pet
    rabies: Vaccine
    parvo: Vaccine


def make_clinic() -> Clinic:
    ann = Owner.objects.create(name="Ann Archer", email="ann@example.com", city="Lyon")
    bob = Owner.objects.create(name="Bob Baker", email="bob@example.com", city="Osaka")
    rabies = Vaccine.objects.create(name="Rabies", interval_months=36)
    parvo = Vaccine.objects.create(name="Parvovirus", interval_months=36)
    rex = Pet.objects.create(name="Rex", species="dog", owner=ann)
    tom = Pet.objects.create(name="Tom", species="cat", owner=ann)
    kit = Pet.objects.create(name="Kit", species="cat", owner=bob)
    rex.vaccines.add(rabies)
    return Clinic(ann, bob, rex, tom, kit, rabies, parvo)


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    return make_clinic()


@pytest.fixture
def cache() -> LexigramCache:
    default = caches["default"]
    assert isinstance(default, LexigramCache)
    return default


class Pages:
    """GET pages through the test client; ``cached(url)`` says whether it came from cache."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.last: dict[str, bytes] = {}

    def get(self, url: str) -> str:
        response = self.client.get(url)
        self.last[url] = response.content
        return f"{response.status_code} {response.content.decode()}"

    def cached(self, url: str) -> bool:
        """Whether ``url`` is served with exactly the bytes we saw last (same render)."""
        previous = self.last[url]
        return self.client.get(url).content == previous


@pytest.fixture
def pages(client: Client) -> Pages:
    return Pages(client)


def url(obj: Owner | Pet) -> str:
    return obj.get_absolute_url()


# -- through the pages: save, update, m2m, delete, rollback ----------------------------------


@transactional
def test_a_saved_row_changes_its_pages_after_the_commit_not_before(
    clinic: Clinic, pages: Pages
) -> None:
    rex, ann = url(clinic.rex), url(clinic.ann)
    assert "Rex" in pages.get(rex)
    pages.get(ann)
    pages.get("/pets/")
    assert pages.cached(rex)

    with transaction.atomic():
        clinic.rex.name = "Rexy"
        clinic.rex.save()
        # Committed data is still the old row: the page must still be the cached one.
        assert pages.cached(rex)
        assert pages.cached(ann)

    page = pages.get(rex)
    assert "Rexy" in page
    assert "Rexy" in pages.get(ann)  # the pet's extra tag: its owner's row
    assert "Rexy" in pages.get("/pets/")  # the model tag
    assert pages.cached(rex)


@transactional
def test_queryset_update_through_the_manager(clinic: Clinic, pages: Pages) -> None:
    rex, tom = url(clinic.rex), url(clinic.tom)
    pages.get(rex)
    pages.get(tom)

    with transaction.atomic():
        Pet.objects.filter(pk=clinic.rex.pk).update(name="Rexy")
        assert pages.cached(rex)

    assert "Rexy" in pages.get(rex)
    assert pages.cached(tom)  # another row of the same model: untouched


@transactional
def test_m2m_changes_on_both_sides_and_clear(clinic: Clinic, pages: Pages) -> None:
    rex, tom, ann = url(clinic.rex), url(clinic.tom), url(clinic.ann)
    assert "Parvovirus" not in pages.get(rex)

    with transaction.atomic():
        clinic.rex.vaccines.add(clinic.parvo)
        assert pages.cached(rex)
    assert "Parvovirus" in pages.get(rex)

    pages.get(tom)
    pages.get(ann)
    clinic.parvo.pets.add(clinic.tom)  # the reverse side, outside a transaction: at once
    assert "Parvovirus" in pages.get(tom)
    assert not pages.cached(ann)  # tom's extra tag, loaded for the reverse side

    pages.get(rex)
    with transaction.atomic():
        clinic.rex.vaccines.clear()
        assert pages.cached(rex)
    assert "Rabies" not in pages.get(rex)

    pages.get(tom)
    clinic.parvo.pets.clear()  # reverse clear: the pks are read before the rows go
    assert "Parvovirus" not in pages.get(tom)


@transactional
def test_a_deleted_row_disappears_after_the_commit(clinic: Clinic, pages: Pages) -> None:
    rex, ann = url(clinic.rex), url(clinic.ann)
    pages.get(rex)
    assert "Rex" in pages.get(ann)

    with transaction.atomic():
        clinic.rex.delete()
        assert pages.cached(rex)

    assert pages.get(rex).startswith("404")
    assert "Rex" not in pages.get(ann)


@transactional
def test_queryset_delete_through_the_manager(clinic: Clinic, pages: Pages) -> None:
    kit, bob = url(clinic.kit), url(clinic.bob)
    pages.get(kit)
    pages.get(bob)
    pages.get("/owners/")

    with transaction.atomic():
        Owner.objects.filter(pk=clinic.bob.pk).delete()  # cascades to kit
        assert pages.cached(kit)

    assert pages.get(kit).startswith("404")
    assert pages.get(bob).startswith("404")
    assert "Bob Baker" not in pages.get("/owners/")


@transactional
def test_a_rolled_back_change_leaves_the_cache_alone(
    clinic: Clinic, pages: Pages, cache: LexigramCache
) -> None:
    rex, ann = url(clinic.rex), url(clinic.ann)
    pages.get(rex)
    pages.get(ann)
    before = cache.stats()["tag_invalidations"]

    with pytest.raises(RuntimeError), transaction.atomic():
        clinic.rex.name = "Never"
        clinic.rex.save()
        clinic.rex.vaccines.add(clinic.parvo)
        Pet.objects.filter(pk=clinic.tom.pk).update(name="Never")
        raise RuntimeError("roll back")

    assert pages.cached(rex)
    assert pages.cached(ann)
    assert cache.stats()["tag_invalidations"] == before


@transactional
def test_without_a_transaction_it_invalidates_at_once(clinic: Clinic, pages: Pages) -> None:
    rex = url(clinic.rex)
    pages.get(rex)
    clinic.rex.name = "Rexy"
    clinic.rex.save()
    assert "Rexy" in pages.get(rex)


@transactional
def test_moving_a_pet_invalidates_the_old_and_the_new_owner(clinic: Clinic, pages: Pages) -> None:
    ann, bob = url(clinic.ann), url(clinic.bob)
    assert "Rex" in pages.get(ann)
    assert "Rex" not in pages.get(bob)

    with transaction.atomic():
        clinic.rex.owner = clinic.bob
        clinic.rex.save()

    assert "Rex" not in pages.get(ann)
    assert "Rex" in pages.get(bob)

    with transaction.atomic():  # the same move through the queryset path
        Pet.objects.filter(pk=clinic.rex.pk).update(owner=clinic.ann)
    assert "Rex" in pages.get(ann)
    assert "Rex" not in pages.get(bob)


@transactional
def test_bulk_create_and_bulk_update_through_the_manager(clinic: Clinic, pages: Pages) -> None:
    rex, tom, ann, bob = url(clinic.rex), url(clinic.tom), url(clinic.ann), url(clinic.bob)
    for page in (rex, tom, ann, bob, "/pets/"):
        pages.get(page)

    with transaction.atomic():
        Pet.objects.bulk_create([Pet(name="Newt", species="lizard", owner=clinic.bob)])
        assert pages.cached("/pets/")
    assert "Newt" in pages.get("/pets/")
    assert "Newt" in pages.get(bob)
    assert pages.cached(rex)

    clinic.rex.name, clinic.tom.owner = "Rexy", clinic.bob
    with transaction.atomic():
        Pet.objects.bulk_update([clinic.rex, clinic.tom], ["name", "owner"])
        assert pages.cached(rex)
    assert "Rexy" in pages.get(rex)
    assert "Tom" not in pages.get(ann)  # the old owner, read before the update
    assert "Tom" in pages.get(bob)


# -- the on_commit machinery ------------------------------------------------------------------


class CountingCache(MemoryCache):
    """A memory cache that records its ``invalidate_tags`` calls."""

    calls: ClassVar[list[tuple[str, ...]]] = []

    def invalidate_tags(self, *tags: Any) -> None:
        CountingCache.calls.append(tuple(tags))
        super().invalidate_tags(*tags)


@pytest.fixture
def counting(settings: Settings) -> Iterator[list[tuple[str, ...]]]:
    settings.CACHES = {
        **settings.CACHES,
        "counting": {
            "BACKEND": "tests.test_invalidation.CountingCache",
            "LOCATION": f"counting-{uuid.uuid4().hex}",
        },
    }
    CountingCache.calls.clear()
    yield CountingCache.calls
    CountingCache.calls.clear()


@transactional
def test_one_transaction_calls_each_cache_once(
    clinic: Clinic, counting: list[tuple[str, ...]]
) -> None:
    with transaction.atomic():
        for pet in Pet.objects.all():
            pet.name += "!"
            pet.save()
        Owner.objects.filter(pk=clinic.ann.pk).update(city="Paris")
        assert counting == []

    assert len(counting) == 1
    (names,) = counting
    for pet in (clinic.rex, clinic.tom, clinic.kit):
        assert f"row:petclinic.pet:{pet.pk}" in names
    assert {"model:petclinic.pet", "model:petclinic.owner"} <= set(names)
    assert f"row:petclinic.owner:{clinic.ann.pk}" in names


@transactional
def test_savepoint_rollbacks_never_lose_a_committed_change(
    clinic: Clinic, cache: LexigramCache
) -> None:
    def tagged(pet: Pet) -> str:
        key = f"pet-{pet.pk}"
        cache.set(key, pet.name, tags=[pet])
        return key

    rex, tom = tagged(clinic.rex), tagged(clinic.tom)
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            clinic.rex.save()
            raise RuntimeError  # rex's change and its callback are rolled back
        clinic.tom.save()  # committed: must be invalidated
    assert cache.get(rex) == "Rex"
    assert cache.get(tom) is None

    tom = tagged(clinic.tom)
    with transaction.atomic():
        clinic.tom.save()
        with pytest.raises(RuntimeError), transaction.atomic():
            clinic.rex.save()
            raise RuntimeError
    assert cache.get(tom) is None
    # rex's rolled-back tags shared tom's flush: over-invalidation is allowed.


@pytest.mark.django_db
def test_captured_callbacks_flush_changes_made_before_the_capture_block(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    cache: LexigramCache,
) -> None:
    clinic = make_clinic()  # inside the test's transaction: callbacks registered, not run
    cache.set("rex", "Rex", tags=[clinic.rex])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        clinic.rex.name = "Rexy"
        clinic.rex.save()
    assert callbacks
    assert cache.get("rex") is None


@transactional
def test_invalidate_on_commit_and_now_helpers(cache: LexigramCache) -> None:
    cache.set("a", 1, tags=["a"])
    with transaction.atomic():
        invalidation.invalidate_on_commit(["a"])
        assert cache.get("a") == 1
    assert cache.get("a") is None
    cache.set("b", 1, tags=["b"])
    invalidation.invalidate_now("b")
    assert cache.get("b") is None


# -- registry and settings --------------------------------------------------------------------


@transactional
def test_unregistered_models_invalidate_nothing(cache: LexigramCache) -> None:
    cache.set("groups", "all", tags=[Group])
    Group.objects.create(name="staff")
    assert cache.get("groups") == "all"


@transactional
def test_register_with_extra_tags_then_unregister(cache: LexigramCache) -> None:
    group = Group.objects.create(name="staff")
    invalidation.register(Group, extra_tags=lambda g: [f"group-name:{g.name}"])
    try:
        cache.set("by-name", 1, tags=["group-name:staff"])
        cache.set("row", 1, tags=[group])
        cache.set("perms", 1, tags=[Permission])
        group.name = "admins"
        group.save()
        assert cache.get("by-name") is None  # the old row's extra tag
        assert cache.get("row") is None

        cache.set("by-name", 1, tags=["group-name:admins"])
        permission = Permission.objects.first()
        assert permission is not None
        group.permissions.add(permission)
        assert cache.get("by-name") is None  # m2m change of a registered model
        assert cache.get("perms") == 1  # Permission is not registered
    finally:
        invalidation.unregister(Group)
    cache.set("row", 1, tags=[group])
    group.save()
    assert cache.get("row") == 1


def test_tags_of_a_row_include_declared_extras() -> None:
    pet = Pet(pk=5, owner_id=9, name="Rex")
    assert tag_names(invalidation.instance_tags(pet)) == (
        "model:petclinic.pet",
        "row:petclinic.owner:9",
        "row:petclinic.pet:5",
    )
    assert invalidation.is_registered(Owner)
    assert not invalidation.is_registered(Group)


def test_register_model_decorator_forms() -> None:
    try:
        assert invalidation.register_model(Group) is Group
        assert invalidation.is_registered(Group)
        decorate = invalidation.register_model(extra_tags=lambda g: ["groups"])
        assert decorate(Group) is Group
        entry = invalidation.registration(Group)
        assert entry is not None and len(entry.extra) == 1
    finally:
        invalidation.unregister(Group)


@pytest.mark.parametrize(
    "value",
    [["petclinic.Nope"], ["not-a-label"], "petclinic.Pet"],
)
def test_bad_invalidate_models_setting(settings: Settings, value: Any) -> None:
    settings.LEXIGRAM_CACHE = {"INVALIDATE_MODELS": value}
    with pytest.raises(CacheConfigurationError, match="INVALIDATE_MODELS"):
        invalidation.connect()


def test_invalidate_caches_setting(settings: Settings) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "other": {"BACKEND": "lexigram_cache_django.backends.memory.MemoryCache"},
        "django": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    assert invalidation.invalidation_aliases() == ("default", "other")

    settings.LEXIGRAM_CACHE = {"INVALIDATE_CACHES": ["other"]}
    for alias in ("default", "other"):
        cast(LexigramCache, caches[alias]).set("k", 1, tags=["t"])
    invalidation.invalidate_now("t")
    assert caches["default"].get("k") == 1
    assert caches["other"].get("k") is None

    for bad in (["django"], ["missing"], "other"):
        settings.LEXIGRAM_CACHE = {"INVALIDATE_CACHES": bad}
        with pytest.raises(CacheConfigurationError, match="INVALIDATE_CACHES"):
            invalidation.invalidation_aliases()


# -- races: a reader caching while a writer commits -------------------------------------------


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start ``target`` in a thread with its own database connection (closed at the end)."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(target())
        except BaseException as exc:
            result.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def read_name(pk: int) -> str:
    return Pet.objects.get(pk=pk).name


@transactional
def test_a_reader_storing_the_old_row_after_the_commit_stores_a_stale_entry(
    clinic: Clinic, cache: LexigramCache
) -> None:
    pk = clinic.rex.pk
    read_old, committed = threading.Event(), threading.Event()

    def compute() -> str:
        name = read_name(pk)
        read_old.set()
        committed.wait(10)  # hold the old value until the writer has committed
        return name

    thread, result = in_thread(lambda: cache.get_or_set("name", compute, 60, tags=[(Pet, pk)]))
    read_old.wait(10)
    with transaction.atomic():
        Pet.objects.filter(pk=pk).update(name="Rexy")
    committed.set()
    thread.join()

    assert result == ["Rex"]  # it began before the commit: the old value is its answer
    assert cache.get("name") is None  # but it is not readable after the commit
    assert cache.get_or_set("name", lambda: read_name(pk), 60, tags=[(Pet, pk)]) == "Rexy"


@transactional
def test_a_reader_caching_during_the_writers_transaction_is_invalidated_by_the_commit(
    clinic: Clinic, cache: LexigramCache
) -> None:
    pk = clinic.rex.pk
    with transaction.atomic():
        clinic.rex.name = "Rexy"
        clinic.rex.save()
        thread, result = in_thread(
            lambda: cache.get_or_set("name", lambda: read_name(pk), 60, tags=[(Pet, pk)])
        )
        thread.join()
        assert result == ["Rex"]  # another connection sees the committed row
        assert cache.get("name") == "Rex"
    assert cache.get("name") is None
    assert cache.get_or_set("name", lambda: read_name(pk), 60, tags=[(Pet, pk)]) == "Rexy"


@transactional
def test_readers_racing_a_committing_writer_never_leave_an_old_value(
    clinic: Clinic, cache: LexigramCache
) -> None:
    pk = clinic.rex.pk
    Pet.objects.filter(pk=pk).update(name="0")
    stop = threading.Event()

    def reader() -> int:
        reads = 0
        while not stop.is_set():
            cache.get_or_set("name", lambda: read_name(pk), 60, tags=[(Pet, pk)])
            reads += 1
        return reads

    readers = [in_thread(reader) for _ in range(3)]
    try:
        for version in range(1, 41):
            with transaction.atomic():
                pet = Pet.objects.get(pk=pk)
                pet.name = str(version)
                pet.save()
            seen = cache.get("name")
            assert seen in (None, str(version)), f"after commit {version}: {seen!r}"
    finally:
        stop.set()
        for thread, _ in readers:
            thread.join()
    assert all(isinstance(result[0], int) for _, result in readers)
    assert cache.get_or_set("name", lambda: read_name(pk), 60, tags=[(Pet, pk)]) == "40"
