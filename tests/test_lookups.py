"""Cached model lookups and write-through, on a real database (SQLite and PostgreSQL) and
a real cache (memory and Redis).

Every test runs with real commits (``transaction=True``) so ``on_commit`` callbacks run.
The PostgreSQL cases are marked ``postgres`` and skipped, with the reason, when the
server of ``DATABASES["postgres"]`` is unreachable.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.core.cache import caches
from django.db import connections, transaction
from django.db.models import Count
from pytest_django.fixtures import DjangoAssertNumQueries, Settings

from example_project.petclinic.models import Owner, Pet, Vaccine
from lexigram_cache_django import write_through
from lexigram_cache_django.decorators import cached
from lexigram_cache_django.exceptions import CacheConfigurationError
from lexigram_cache_django.lookups import ABSENT, CachedLookup
from lexigram_cache_django.lookups import cached as cached_lookup


def _postgres_reason() -> str | None:
    """Why the PostgreSQL cases cannot run here, or None if they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (it is in the test dependency group)"
    conf: dict[str, Any] = dict(django_settings.DATABASES["postgres"])
    try:
        psycopg.connect(
            host=conf["HOST"],
            port=conf["PORT"],
            user=conf["USER"],
            password=conf["PASSWORD"] or None,
            dbname=conf["NAME"],
            connect_timeout=2,
        ).close()
    except Exception as exc:
        return f"PostgreSQL at {conf['HOST']}:{conf['PORT']} is unreachable: {exc}"
    return None


PG_SKIP = _postgres_reason()
#: Databases the tests may use: PostgreSQL only when reachable, so pytest-django never
#: tries to create its test database on a machine without one.
DATABASES = ["default"] if PG_SKIP else ["default", "postgres"]
DB_PARAMS = [
    pytest.param("default", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[pytest.mark.postgres, pytest.mark.skipif(PG_SKIP is not None, reason=str(PG_SKIP))],
    ),
]
pytestmark = pytest.mark.django_db(transaction=True, databases=DATABASES)


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest) -> str:
    alias: str = request.param
    return alias


@pytest.fixture(params=["memory", "redis", "memcached"])
def alias(request: pytest.FixtureRequest, settings: Settings) -> str:
    """A cache alias: the test settings' memory cache, or one on this session's Redis or
    memcached."""
    if request.param == "memory":
        return "default"
    if request.param == "redis":
        backend, location = "redis.RedisCache", request.getfixturevalue("redis_server").url
    else:
        backend = "memcached.MemcachedCache"
        location = request.getfixturevalue("memcached_server").address
    settings.CACHES = {
        **settings.CACHES,
        request.param: {
            "BACKEND": f"lexigram_cache_django.backends.{backend}",
            "LOCATION": location,
            "KEY_PREFIX": f"t{uuid.uuid4().hex[:12]}",
        },
    }
    return str(request.param)


@pytest.fixture
def wt(settings: Settings) -> Iterator[None]:
    """Pet and Owner with write-through, the other entries as in the test settings."""
    settings.LEXIGRAM_CACHE = {
        "INVALIDATE_MODELS": [
            {"model": "petclinic.Owner", "write_through": True},
            {"model": "petclinic.Pet", "write_through": True},
            {"model": "petclinic.Vaccine", "write_through": True},
        ]
    }
    write_through.connect()
    yield


Queries = Callable[..., Any]


@pytest.fixture
def queries(django_assert_num_queries: DjangoAssertNumQueries) -> Queries:
    """``with queries(n, db):`` asserts ``n`` queries on database ``db``."""

    def check(n: int, using: str) -> Any:
        return django_assert_num_queries(n, connection=connections[using])

    return check


def make_pets(db: str, count: int = 3) -> tuple[Owner, list[Pet]]:
    ann = Owner.objects.using(db).create(name="Ann", email="ann@example.com", city="Lyon")
    pets = [
        Pet.objects.using(db).create(name=f"pet{i}", species="dog", owner=ann) for i in range(count)
    ]
    return ann, pets


def lookup(db: str, alias: str, **kwargs: Any) -> CachedLookup[Pet]:
    return Pet.objects.using(db).cached(cache=alias, **kwargs)


# -- hits cost no query ---------------------------------------------------------------------


def test_get_hits_after_the_first_call_with_zero_queries(
    db: str, alias: str, queries: Queries
) -> None:
    _, (rex, *_) = make_pets(db)
    with queries(1, db):
        assert lookup(db, alias).get(pk=rex.pk).name == "pet0"
    with queries(0, db):
        got = lookup(db, alias).get(pk=rex.pk)
        assert got == rex and got.name == "pet0" and got._state.db == db
        assert lookup(db, alias).get(id=str(rex.pk)).name == "pet0"  # same entry: normalized
        assert lookup(db, alias).get(pk__exact=rex.pk).name == "pet0"


def test_get_many_is_one_round_trip_and_one_query_for_the_misses(
    db: str, alias: str, queries: Queries
) -> None:
    _, pets = make_pets(db, 5)
    pks = [p.pk for p in pets]
    with queries(1, db):
        assert set(lookup(db, alias).get_many(pks[:2])) == set(pks[:2])
    with queries(1, db):  # three misses, one in_bulk
        found = lookup(db, alias).get_many([*pks, 999_999])
    assert list(found) == pks and [p.name for p in found.values()] == [p.name for p in pets]
    with queries(0, db):
        assert lookup(db, alias).get_many([*pks, 999_999, None]) == found  # absent ones too
        with pytest.raises(Pet.DoesNotExist):
            lookup(db, alias).get(pk=None)
        assert lookup(db, alias).in_bulk([str(pks[0])]) == {pks[0]: pets[0]}
        with pytest.raises(Pet.DoesNotExist):
            lookup(db, alias).get(pk=999_999)


def test_a_batch_hit_on_redis_is_one_mget_with_its_tag_checks(
    db: str, request: pytest.FixtureRequest, settings: Settings
) -> None:
    import redis

    server = request.getfixturevalue("redis_server")
    settings.CACHES = {
        **settings.CACHES,
        "redis": {
            "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": f"t{uuid.uuid4().hex[:12]}",
        },
    }
    _, pets = make_pets(db, 5)
    pks = [p.pk for p in pets]
    lookup(db, "redis").get_many(pks)  # loaded and stored
    lookup(db, "redis").get_many(pks)  # read: the entries' tags are learned
    Pet.objects.using(db).filter(pk=pks[0]).update(name="Rexy")  # one row tag moves on
    client = redis.Redis.from_url(server.url)
    before = client.info("commandstats")
    found = lookup(db, "redis").get_many(pks[1:])
    after = client.info("commandstats")

    assert [p.name for p in found.values()] == ["pet1", "pet2", "pet3", "pet4"]
    calls = {k: after[k]["calls"] - before.get(k, {"calls": 0})["calls"] for k in after}
    # The entries and their row tag records in one read; nothing else (INFO is ours).
    assert {k: n for k, n in calls.items() if n and k != "cmdstat_info"} == {"cmdstat_mget": 1}
    assert lookup(db, "redis").get(pk=pks[0]).name == "Rexy"


def test_missing_rows_and_unique_fields(db: str, alias: str, queries: Queries) -> None:
    owners = Owner.objects.using(db)
    with pytest.raises(Owner.DoesNotExist):
        owners.cached(cache=alias).get(email="zed@example.com")
    with queries(0, db), pytest.raises(Owner.DoesNotExist):
        owners.cached(cache=alias).get(email="zed@example.com")  # cached as missing
    zed = owners.create(name="Zed", email="zed@example.com", city="Oslo")  # bumps the model tag
    assert owners.cached(cache=alias).get(email="zed@example.com") == zed
    with queries(0, db):
        assert owners.cached(cache=alias).get(email="zed@example.com").name == "Zed"
        assert owners.cached(cache=alias).get_many(["zed@example.com"], "email") == {
            "zed@example.com": zed
        }
    with pytest.raises(Owner.DoesNotExist):
        owners.cached(cache=alias, cache_missing=False).get(email="nobody@example.com")
    assert caches[alias].get_many([]) == {}  # nothing else to see: the miss was not stored


# -- async lookups ---------------------------------------------------------------------------


def _rename(db: str, pk: int, name: str) -> None:
    pet = Pet.objects.using(db).get(pk=pk)
    pet.name = name
    pet.save(using=db)  # autocommit: the invalidation runs at once


def _delete_behind_the_orms_back(db: str, pks: list[int]) -> None:
    """Rows gone with no signal sent: what a lookup still returns came from the cache."""
    table = connections[db].ops.quote_name(Pet._meta.db_table)
    with connections[db].cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(pks))})", pks)


@pytest.fixture
async def thread_connections() -> AsyncIterator[None]:
    """Close the connections the ORM opened in sync_to_async's thread (the test database
    could not be dropped while they are open)."""
    yield
    await sync_to_async(connections.close_all)()


async def test_async_lookups_hit_the_cache_and_follow_commits(
    db: str, alias: str, thread_connections: None
) -> None:
    _, pets = await sync_to_async(make_pets)(db, 3)
    pks = [p.pk for p in pets]
    cache = lookup(db, alias)
    assert (await cache.aget(pk=pks[0])).name == "pet0"
    found = await cache.aget_many([*pks, 999_999])
    assert list(found) == pks and [p.name for p in found.values()] == ["pet0", "pet1", "pet2"]
    assert (await cache.ain_bulk([str(pks[1])])) == {pks[1]: pets[1]}

    await sync_to_async(_rename)(db, pks[0], "Rexy")
    assert (await cache.aget(pk=pks[0])).name == "Rexy"
    assert (await cache.aget_many(pks))[pks[0]].name == "Rexy"

    await sync_to_async(_delete_behind_the_orms_back)(db, pks)
    hits = await cache.aget_many([*pks, 999_999])
    assert [p.name for p in hits.values()] == ["Rexy", "pet1", "pet2"]
    got = await cache.aget(pk=pks[2])
    assert got == pets[2] and got._state.db == db and not got._state.adding
    with pytest.raises(Pet.DoesNotExist):
        await cache.aget(pk=999_999)  # cached as missing
    with pytest.raises(Pet.DoesNotExist):
        await cache.aget(pk=None)


async def test_async_lookups_by_a_unique_field(
    db: str, alias: str, thread_connections: None
) -> None:
    owners = Owner.objects.using(db)
    zed = await sync_to_async(owners.create)(name="Zed", email="zed@example.com", city="Oslo")
    cache = owners.cached(cache=alias)
    assert await cache.aget(email="zed@example.com") == zed
    assert await cache.aget_many(["zed@example.com", "nobody@example.com"], "email") == {
        "zed@example.com": zed
    }
    with pytest.raises(Owner.DoesNotExist):
        await cache.aget(email="nobody@example.com")


# -- changes make the next lookup fresh -------------------------------------------------------


def test_save_delete_update_and_m2m_make_the_next_lookup_fresh(
    db: str, alias: str, queries: Queries
) -> None:
    _, (rex, tom, _kit) = make_pets(db)
    rabies = Vaccine.objects.using(db).create(name="Rabies")
    cache = lookup(db, alias)
    cache.get_many([rex.pk, tom.pk])

    with transaction.atomic(using=db):
        rex.name = "Rexy"
        rex.save(using=db)
        assert cache.get(pk=rex.pk).name == "pet0"  # not committed: still the old row
    assert cache.get(pk=rex.pk).name == "Rexy"

    Pet.objects.using(db).filter(pk=tom.pk).update(name="Tommy")
    assert cache.get(pk=tom.pk).name == "Tommy"

    cache.get(pk=rex.pk)
    rex.vaccines.add(rabies)
    with queries(1, db):  # the m2m change dropped the row's entry
        cache.get(pk=rex.pk)

    tom.delete()
    with pytest.raises(Pet.DoesNotExist):
        cache.get(pk=tom.pk)
    assert cache.get_many([rex.pk, tom.pk]).keys() == {rex.pk}


def test_a_rolled_back_save_leaves_the_cache_alone(db: str, alias: str, queries: Queries) -> None:
    _, (rex, *_) = make_pets(db)
    cache = lookup(db, alias)
    cache.get(pk=rex.pk)
    with pytest.raises(RuntimeError), transaction.atomic(using=db):
        rex.name = "Rolled back"
        rex.save(using=db)
        raise RuntimeError
    with queries(0, db):
        assert cache.get(pk=rex.pk).name == "pet0"


# -- shapes, databases, refusals ----------------------------------------------------------------


def test_select_related_entries_follow_the_related_row(
    db: str, alias: str, queries: Queries
) -> None:
    ann, (rex, *_) = make_pets(db)
    with_owner = Pet.objects.using(db).select_related("owner").cached(cache=alias)
    with queries(2, db):  # a probe to learn the owner's tag, then the load under it
        assert with_owner.get(pk=rex.pk).owner.name == "Ann"
    with queries(0, db):
        assert with_owner.get(pk=rex.pk).owner.name == "Ann"
        assert with_owner.get_many([rex.pk])[rex.pk].owner.name == "Ann"
    Owner.objects.using(db).filter(pk=ann.pk).update(name="Annie")
    assert with_owner.get(pk=rex.pk).owner.name == "Annie"
    assert lookup(db, alias).get(pk=rex.pk).name == "pet0"  # its own entry (another shape)


def test_deferred_fields_get_their_own_entries(db: str, alias: str, queries: Queries) -> None:
    _, (rex, *_) = make_pets(db)
    names = Pet.objects.using(db).only("name").cached(cache=alias)
    names.get(pk=rex.pk)
    with queries(0, db):
        got = names.get(pk=rex.pk)
        assert got.name == "pet0"
        assert got.get_deferred_fields() == {"species", "birth_date", "owner_id"}
    assert names.key(names.field("pk"), 1) != lookup(db, alias).key(names.field("pk"), 1)


def test_restored_rows_are_independent_and_old_entries_still_read(
    db: str, alias: str, queries: Queries
) -> None:
    """A row's dict becomes the instance's ``__dict__``: two reads are two objects that do
    not share state; an entry of the previous form, ``(attnames, values)``, still reads."""
    _, (rex, tom, *_) = make_pets(db)
    pets = lookup(db, alias)
    pets.get_many([rex.pk, tom.pk])
    with queries(0, db):
        first, second = pets.get(pk=rex.pk), pets.get(pk=rex.pk)
        first.name = "changed"
        first._state.adding = True
        assert second.name == "pet0" and second._state.adding is False
        assert pets.get_many([rex.pk])[rex.pk].name == "pet0"
    key = pets.key(pets.field("pk"), tom.pk)
    old = (
        ("id", "name", "species", "birth_date", "owner_id"),
        (tom.pk, "old form", "cat", None, tom.owner_id),
    )
    pets.cache.set(key, old, tags=pets.tags_of(tom, pets.field("pk"), tom.pk))
    with queries(0, db):
        got = pets.get(pk=tom.pk)
        assert (got.name, got.species, got._state.db, got._state.adding) == (
            "old form",
            "cat",
            db,
            False,
        )
        assert pets.get_many([tom.pk])[tom.pk].name == "old form"


def test_the_database_alias_is_in_the_key() -> None:
    a = Pet.objects.using("default").cached()
    b = Pet.objects.using("postgres").cached()
    assert a.key(a.field("pk"), 1) != b.key(b.field("pk"), 1)


def test_refusals_name_the_problem() -> None:
    with pytest.raises(CacheConfigurationError, match="filters"):
        Pet.objects.filter(species="dog").cached()
    with pytest.raises(CacheConfigurationError, match="prefetch_related"):
        Pet.objects.prefetch_related("vaccines").cached()
    with pytest.raises(CacheConfigurationError, match="registered for invalidation"):
        cached_lookup(Group)
    with pytest.raises(CacheConfigurationError, match="unique field"):
        Pet.objects.cached().get(name="Rex")
    with pytest.raises(TypeError, match="exactly one lookup"):
        Pet.objects.cached().get(name="Rex", species="dog")
    with pytest.raises(CacheConfigurationError, match="values"):
        cached_lookup(Pet.objects.values_list("pk", flat=True))  # type: ignore[type-var]
    with pytest.raises(CacheConfigurationError, match="annotations"):
        cached_lookup(Pet.objects.annotate(n=Count("vaccines")))
    with pytest.raises(CacheConfigurationError, match="not in CACHES"):
        Pet.objects.cached(cache="nope")


def test_the_cached_function_reaches_any_manager(db: str, alias: str) -> None:
    _, (rex, *_) = make_pets(db)
    assert cached_lookup(Pet._base_manager.db_manager(db), cache=alias).get(pk=rex.pk) == rex
    assert cached_lookup(Pet, cache=alias).get_many([rex.pk]) == (
        {rex.pk: rex} if db == "default" else {}
    )


# -- write-through ----------------------------------------------------------------------------


def test_write_through_stores_the_committed_row(
    db: str, alias: str, wt: None, queries: Queries, settings: Settings
) -> None:
    entries = settings.LEXIGRAM_CACHE["INVALIDATE_MODELS"]
    settings.LEXIGRAM_CACHE = {"INVALIDATE_MODELS": [{**e, "cache": alias} for e in entries]}
    _, (rex, tom, _kit) = make_pets(db)
    cache = lookup(db, alias)
    with queries(0, db):  # the creates were written through
        assert cache.get(pk=rex.pk).name == "pet0"

    with transaction.atomic(using=db):
        rex.name = "Rexy"
        rex.save(using=db)
        tom.name = "Tommy"
        tom.save(using=db)
        with queries(0, db):
            assert cache.get(pk=rex.pk).name == "pet0"  # not committed yet
    with queries(0, db):
        assert cache.get_many([rex.pk, tom.pk]) == {rex.pk: rex, tom.pk: tom}
        assert cache.get(pk=rex.pk).name == "Rexy"
        assert cache.get(pk=tom.pk).name == "Tommy"

    with pytest.raises(RuntimeError), transaction.atomic(using=db):
        rex.name = "Rolled back"
        rex.save(using=db)
        raise RuntimeError
    with queries(0, db):
        assert cache.get(pk=rex.pk).name == "Rexy"

    pk = rex.pk
    rex.delete()  # deletes only drop
    with queries(1, db), pytest.raises(Pet.DoesNotExist):
        cache.get(pk=pk)


def test_write_through_stores_what_the_database_holds(db: str, wt: None, queries: Queries) -> None:
    """The saved object holds an F() expression; the cache gets the committed value."""
    from django.db.models import F

    rabies = Vaccine.objects.using(db).create(name="Rabies", interval_months=12)
    with transaction.atomic(using=db):
        rabies.interval_months = F("interval_months") + 1
        rabies.save(using=db)
    with queries(0, db):  # write-through fills the lookups by pk
        assert Vaccine.objects.using(db).cached().get(pk=rabies.pk).interval_months == 13
    with queries(2, db):  # by another unique field: a probe, then the load
        assert Vaccine.objects.using(db).cached().get(name="Rabies").interval_months == 13


# -- concurrent readers -------------------------------------------------------------------------


def in_thread(
    target: Callable[[], Any], db: str, name: str | None = None
) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(target())
        except BaseException as exc:
            result.append(exc)
        finally:
            connections[db].close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, result


@pytest.mark.parametrize("write", ["invalidate", "write_through"])
def test_concurrent_readers_never_see_a_value_older_than_the_last_commit(
    db: str, alias: str, write: str, request: pytest.FixtureRequest
) -> None:
    if write == "write_through":
        request.getfixturevalue("wt")
    _, (rex, *_) = make_pets(db, 1)
    pk = rex.pk
    stop = threading.Event()

    def reader() -> int:
        reads = 0
        while not stop.is_set():
            cache = lookup(db, alias)
            cache.get(pk=pk)
            cache.get_many([pk])
            reads += 1
        return reads

    readers = [in_thread(reader, db) for _ in range(2)]
    try:
        for version in range(1, 31):
            with transaction.atomic(using=db):
                pet = Pet.objects.using(db).get(pk=pk)
                pet.name = str(version)
                pet.save(using=db)
            # The commit's callbacks have run: no lookup may return an older row.
            seen = lookup(db, alias).get(pk=pk).name
            assert seen == str(version), f"after commit {version}: {seen!r}"
            assert lookup(db, alias).get_many([pk])[pk].name == str(version)
    finally:
        stop.set()
        for thread, _ in readers:
            thread.join()
    assert all(isinstance(result[0], int) and result[0] > 0 for _, result in readers), readers
    assert lookup(db, alias).get(pk=pk).name == "30"


# -- cached querysets: @cached over a list, with model tags and pagination --------------------


@cached(300, tags=[Pet], key="pets:{species}:page:{page}:{per_page}")
def pets_page(species: str, page: int = 1, per_page: int = 2) -> list[Pet]:
    start = (page - 1) * per_page
    return list(Pet.objects.filter(species=species).order_by("pk")[start : start + per_page])


def test_cached_queryset_pages_follow_the_model_tag(queries: Queries) -> None:
    _, pets = make_pets("default", 3)
    assert pets_page("dog", 1) == pets[:2]
    assert pets_page("dog", 2) == pets[2:]
    with queries(0, "default"):
        assert pets_page("dog", 1) == pets[:2]
        assert pets_page("dog", 2) == pets[2:]
    Pet.objects.create(name="new", species="dog", owner=pets[0].owner)
    with queries(1, "default"):
        assert [p.name for p in pets_page("dog", 2)] == ["pet2", "new"]
    assert pets_page.key("dog", 1) != pets_page.key("dog", 2)


def test_absent_marker_is_a_plain_string() -> None:
    assert isinstance(ABSENT, str)


@pytest.mark.parametrize("batch", [False, True], ids=["get", "get_many"])
def test_a_flight_begun_before_the_commit_is_not_handed_to_a_later_caller(
    db: str, alias: str, batch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single flight shares one computation among callers; one that read the row before a
    commit must not answer a caller that arrived after the commit's invalidation."""
    _, (rex, *_) = make_pets(db, 1)
    pk = rex.pk
    read_old, release = threading.Event(), threading.Event()
    real_load = CachedLookup.load

    def slow_load(self: CachedLookup[Any], field: Any, values: list[Any]) -> Any:
        rows = real_load(self, field, values)
        if threading.current_thread().name == "early-reader":
            read_old.set()
            release.wait(10)  # hold the old row until the writer committed
        return rows

    monkeypatch.setattr(CachedLookup, "load", slow_load)

    def read() -> str:
        if batch:
            return lookup(db, alias).get_many([pk])[pk].name
        return lookup(db, alias).get(pk=pk).name

    early, early_result = in_thread(read, db, "early-reader")
    assert read_old.wait(10)
    Pet.objects.using(db).filter(pk=pk).update(name="new")  # committed and invalidated
    threading.Timer(0.3, release.set).start()  # let the early reader finish while we wait
    assert read() == "new"
    early.join()
    assert early_result == ["pet0"]  # it began before the commit: the old row is its answer
    assert read() == "new"
