"""cache_page, cached and invalidates: Django's semantics plus tags and single flight."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import AsyncClient, Client
from hypothesis import given
from hypothesis import strategies as st
from pytest_django.fixtures import Settings

from example_project.petclinic.models import Owner, Pet
from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.decorators import cached, invalidates
from lexigram_cache_django.keys import call_key, stable_repr
from tests import views

pytestmark = pytest.mark.urls("tests.urls")


@pytest.fixture
def cache() -> LexigramCache:
    default = caches["default"]
    assert isinstance(default, LexigramCache)
    default.reset_stats()
    return default


@pytest.fixture(autouse=True)
def _fresh_views() -> Iterator[None]:
    views.renders.clear()
    views.gate.waiters = 0
    yield
    views.gate.waiters = 0


@pytest.fixture
def untagged_alias(settings: Settings) -> str:
    """A Django LocMemCache alias: no tags, no single flight."""
    settings.CACHES = {
        **settings.CACHES,
        "untagged": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"untagged-{uuid.uuid4().hex}",
        },
    }
    return "untagged"


def run_threads(n: int, target: Any) -> list[Any]:
    """Run ``target(i)`` in ``n`` threads released together; results (or errors) in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# -- cache_page: Django's semantics ---------------------------------------------------------


def test_a_page_is_rendered_once_then_served_from_the_cache(client: Client) -> None:
    first = client.get("/t/plain/")
    second = client.get("/t/plain/")

    assert first.status_code == second.status_code == 200
    assert first.content == second.content == b"plain render 1"
    assert views.renders["plain"] == 1


def test_cached_pages_get_max_age_expires_and_age(client: Client) -> None:
    first = client.get("/t/plain/")
    second = client.get("/t/plain/")

    assert first["Cache-Control"] == "max-age=60"
    assert "Expires" in first
    assert second["Cache-Control"] == "max-age=60"
    assert second["Expires"] == first["Expires"]
    assert int(second["Age"]) >= 0
    assert "Age" not in first


def test_invalidating_a_pages_tag_renders_it_again(client: Client, cache: LexigramCache) -> None:
    client.get("/t/plain/")
    cache.invalidate_tags("plain")

    assert client.get("/t/plain/").content == b"plain render 2"
    assert client.get("/t/plain/").content == b"plain render 2"


def test_tags_from_a_callable_of_the_view_arguments(client: Client, cache: LexigramCache) -> None:
    client.get("/t/slug/rex/")
    client.get("/t/slug/tom/")
    cache.invalidate_tags("slug:rex")

    assert client.get("/t/slug/rex/").content == b"rex render 2"
    assert client.get("/t/slug/tom/").content == b"tom render 1"


def test_query_strings_are_different_pages(client: Client) -> None:
    assert client.get("/t/plain/?page=1").content == b"plain render 1"
    assert client.get("/t/plain/?page=2").content == b"plain render 2"
    assert client.get("/t/plain/?page=1").content == b"plain render 1"


def test_only_get_and_head_are_cached(client: Client) -> None:
    client.get("/t/plain/")

    assert client.post("/t/plain/").content == b"plain render 2"
    assert client.head("/t/plain/").status_code == 200
    assert views.renders["plain"] == 2  # HEAD answered by the cached GET page


def test_head_first_is_cached_under_head(client: Client) -> None:
    client.head("/t/plain/")
    client.head("/t/plain/")
    assert views.renders["plain"] == 1
    assert client.get("/t/plain/").content == b"plain render 2"


def test_template_responses_are_rendered_and_cached(client: Client) -> None:
    first = client.get("/t/template/")
    second = client.get("/t/template/")

    assert first.content == second.content == b"template render 1"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/t/private/", "private"),
        ("/t/never/", "never"),
        ("/t/missing/", "missing"),
    ],
)
def test_uncacheable_responses_are_not_cached(client: Client, url: str, name: str) -> None:
    first = client.get(url)
    second = client.get(url)

    assert first.content != second.content
    assert views.renders[name] == 2


def test_streaming_responses_are_not_cached(client: Client) -> None:
    assert b"".join(client.get("/t/streaming/").streaming_content) == b"streaming render 1"  # type: ignore[attr-defined]
    assert b"".join(client.get("/t/streaming/").streaming_content) == b"streaming render 2"  # type: ignore[attr-defined]


def test_responses_setting_cookies_are_not_cached(client: Client) -> None:
    first = client.get("/t/whoami/", headers={"X-Who": "ann"})
    second = client.get("/t/whoami/", headers={"X-Who": "bob"})

    assert first.content == b"hello ann"
    assert second.content == b"hello bob"
    assert second.cookies["who"].value == "bob"


def test_pages_vary_on_the_headers_the_response_names(client: Client) -> None:
    def get(flavour: str | None) -> bytes:
        headers = {"X-Flavour": flavour} if flavour else {}
        return client.get("/t/vary/", headers=headers).content

    # The first render of a URL teaches that it varies; it is not stored (documented).
    assert get("a") == b"a render 1"
    assert get("b") == b"b render 1"
    assert get("a") == b"a render 2"
    assert get("b") == b"b render 1"
    assert get("a") == b"a render 2"
    assert get(None) == b"none render 1"
    assert get(None) == b"none render 1"


def test_requests_with_authorization_vary_on_it(client: Client) -> None:
    def get(user: str) -> bytes:
        return client.get("/t/plain/", headers={"Authorization": f"Basic {user}"}).content

    assert get("alice") == b"plain render 1"  # teaches "varies on Authorization"
    assert get("bob") == b"plain render 2"
    assert get("bob") == b"plain render 2"
    assert get("alice") == b"plain render 3"
    assert get("alice") == b"plain render 3"


def test_a_view_without_a_request_is_refused() -> None:
    with pytest.raises(TypeError, match="method_decorator"):
        views.plain(object())  # type: ignore[arg-type]


def test_an_untagged_django_cache_works_without_tags(client: Client, untagged_alias: str) -> None:
    assert client.get("/t/untagged/").content == b"untagged render 1"
    assert client.get("/t/untagged/").content == b"untagged render 1"


def test_tags_on_a_django_cache_are_refused_clearly(client: Client, untagged_alias: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="has no tags"):
        client.get("/t/untagged-with-tags/")


# -- cache_page: a hit is one read ---------------------------------------------------------


@pytest.fixture
def redis_default(settings: Settings, redis_server: Any) -> LexigramCache:
    """The default alias on our RedisCache (a fresh prefix), as a page cache."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": f"pages-{uuid.uuid4().hex}",
        },
    }
    cache = caches["default"]
    assert isinstance(cache, LexigramCache)
    return cache


def _commands(server: Any) -> dict[str, int]:
    stats = server.info("commandstats")
    return {name: int(stat["calls"]) for name, stat in stats.items()}


def test_a_page_hit_on_redis_is_one_mget(
    client: Client, redis_default: LexigramCache, redis_server: Any
) -> None:
    import redis

    server = redis.Redis.from_url(redis_server.url)
    for _ in range(3):  # rendered, then read by the full path (which learns the header list)
        assert client.get("/t/plain/").content == b"plain render 1"
    before = _commands(server)
    assert client.get("/t/plain/").content == b"plain render 1"
    after = _commands(server)

    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    delta.pop("cmdstat_info", None)
    assert delta == {"cmdstat_mget": 1}


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_one_read_hits_still_check_tags(
    client: Client, request: pytest.FixtureRequest, backend: str
) -> None:
    redis = backend == "redis"
    cache: Any = request.getfixturevalue("redis_default") if redis else caches["default"]
    for _ in range(3):
        client.get("/t/plain/")
    cache.invalidate_tags("plain")
    assert [client.get("/t/plain/").content for _ in range(3)] == [b"plain render 2"] * 3
    cache.clear()
    assert client.get("/t/plain/").content == b"plain render 3"


def test_one_read_hits_follow_a_changed_header_list(
    client: Client, redis_default: LexigramCache
) -> None:
    def get(flavour: str) -> bytes:
        return client.get("/t/vary/", headers={"X-Flavour": flavour}).content

    assert [get("a") for _ in range(4)] == [b"a render 1"] + [b"a render 2"] * 3
    assert [get("b") for _ in range(3)] == [b"b render 1"] * 3
    # Another process learns that the URL no longer varies: our remembered list is stale.
    from django.test import RequestFactory
    from django.utils.cache import _generate_cache_header_key  # type: ignore[attr-defined]

    header_key = _generate_cache_header_key("lexigram", RequestFactory().get("/t/vary/"))
    redis_default.set(header_key, [], 60)
    assert get("a") == b"a render 3"


async def test_async_one_read_hits_check_tags(redis_default: LexigramCache) -> None:
    client = AsyncClient()
    first = [(await client.get("/t/async/slug/rex/")).content for _ in range(4)]
    await redis_default.ainvalidate_tags("slug:rex")
    second = [(await client.get("/t/async/slug/rex/")).content for _ in range(3)]

    assert first == [b"async rex render 1"] * 4
    assert second == [b"async rex render 2"] * 3


def test_one_read_hits_near_expiry_are_left_to_xfetch() -> None:
    import time as clock

    from django.http import HttpResponse

    from lexigram_cache_django.codec import EntryMeta
    from lexigram_cache_django.pages import _freeze, _PageCache

    page = _PageCache(60, "default", "", None, None)
    stored = _freeze(HttpResponse("x"))
    listed: Any = ([], None)
    far = EntryMeta(delta=0.01, expires=clock.time() + 50)
    near = EntryMeta(delta=0.5, expires=clock.time() + 5)
    default = caches["default"]

    assert page.fast_page(default, ((stored, far), listed), []) is not None
    assert page.fast_page(default, ((stored, near), listed), []) is None
    assert page.fast_page(default, ((stored, far), (["HTTP_X"], None)), []) is None
    assert page.fast_page(default, (None, listed), []) is None


# -- cache_page: single flight --------------------------------------------------------------


def test_a_burst_of_20_threaded_requests_renders_the_page_once(cache: LexigramCache) -> None:
    views.gate.waiters = 19  # the render waits until the 19 others wait for it

    responses = run_threads(20, lambda i: Client().get("/t/burst/"))

    assert views.renders["burst"] == 1
    assert [r.status_code for r in responses] == [200] * 20
    assert {r.content for r in responses} == {b"burst render 1"}
    assert cache.stats()["waits"] == 19


def test_a_burst_for_an_uncacheable_page_gives_each_request_its_own(
    cache: LexigramCache,
) -> None:
    views.gate.waiters = 4
    names = ["ann", "bob", "cid", "dan", "eve"]

    responses = run_threads(5, lambda i: Client().get("/t/whoami/", headers={"X-Who": names[i]}))

    assert [r.content for r in responses] == [f"hello {n}".encode() for n in names]
    assert [r.cookies["who"].value for r in responses] == names
    assert views.renders["whoami"] == 5


def test_an_exception_in_the_render_is_not_passed_to_the_waiters(cache: LexigramCache) -> None:
    views.mallory_is_rendering.clear()
    views.gate.waiters = 4
    results: dict[str, Any] = {}

    def get(who: str) -> None:
        results[who] = Client().get("/t/picky/", headers={"X-Who": who})

    first = threading.Thread(target=get, args=("mallory",))
    first.start()
    assert views.mallory_is_rendering.wait(10)  # mallory leads the flight
    others = run_threads(4, lambda i: Client().get("/t/picky/", headers={"X-Who": f"u{i}"}))
    first.join()

    assert results["mallory"].status_code == 403
    assert [r.status_code for r in others] == [200] * 4
    assert views.renders["picky"] == 5  # the waiters rendered for themselves
    assert Client().get("/t/picky/").content == b"welcome"


async def test_a_burst_of_20_async_requests_renders_the_page_once(
    cache: LexigramCache,
) -> None:
    views.gate.waiters = 19
    client = AsyncClient()

    responses = await asyncio.gather(*(client.get("/t/async/burst/") for _ in range(20)))

    assert views.renders["async"] == 1
    assert {r.content for r in responses} == {b"async render 1"}
    assert [r.status_code for r in responses] == [200] * 20


async def test_async_views_cache_tag_and_invalidate(cache: LexigramCache) -> None:
    client = AsyncClient()
    first = await asyncio.gather(client.get("/t/async/slug/rex/"), client.get("/t/async/slug/tom/"))
    await cache.ainvalidate_tags("slug:rex")
    second = await asyncio.gather(
        client.get("/t/async/slug/rex/"), client.get("/t/async/slug/tom/")
    )

    assert [r.content for r in first] == [b"async rex render 1", b"async tom render 1"]
    assert [r.content for r in second] == [b"async rex render 2", b"async tom render 1"]


async def test_async_template_responses_and_uncacheable_async_pages() -> None:
    client = AsyncClient()
    templates = [await client.get("/t/async/template/") for _ in range(2)]
    private = [await client.get("/t/async/private/") for _ in range(2)]

    assert [r.content for r in templates] == [b"async template render 1"] * 2
    assert [r.content for r in private] == [
        b"async private render 1",
        b"async private render 2",
    ]


# -- keys -----------------------------------------------------------------------------------


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __cache_key__(self) -> tuple[int, int]:
        return (self.x, self.y)


def test_stable_repr_tells_types_apart_and_sorts_unordered_containers() -> None:
    assert len({stable_repr(v) for v in (1, 1.0, True, "1", b"1", Decimal(1))}) == 6
    assert stable_repr({"b": 1, "a": [1, (2,)]}) == stable_repr({"a": [1, (2,)], "b": 1})
    assert stable_repr({3, 1, 2}) == stable_repr({2, 3, 1})
    assert stable_repr(Pet(pk=4)) == "<petclinic.pet:4>"
    assert stable_repr(Pet) == "<model petclinic.pet>"
    assert stable_repr(Point(1, 2)) == stable_repr(Point(1, 2)) != stable_repr(Point(2, 1))
    assert stable_repr(datetime.date(2024, 1, 2)) != stable_repr(datetime.date(2024, 2, 1))


_keyable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.frozensets(st.integers() | st.text(max_size=4), max_size=4)
        | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


@given(_keyable, _keyable)
def test_stable_repr_never_collides_and_ignores_dict_order(a: Any, b: Any) -> None:
    if stable_repr(a) == stable_repr(b):
        assert a == b
    if isinstance(a, dict):
        assert stable_repr(dict(reversed(list(a.items())))) == stable_repr(a)


def test_unkeyable_arguments_are_refused_with_advice() -> None:
    with pytest.raises(TypeError, match="__cache_key__"):
        stable_repr(object())
    with pytest.raises(TypeError, match="unsaved"):
        stable_repr(Pet())


def test_call_keys_bind_defaults_and_stay_short() -> None:
    def f(a: int, b: int = 2) -> None: ...

    sig = inspect.signature(f)
    assert call_key("m.f", sig, (1,), {}) == call_key("m.f", sig, (), {"a": 1, "b": 2})
    assert call_key("m.f", sig, (1,), {}) != call_key("m.f", sig, (2,), {})
    long_key = call_key("x" * 500, sig, (1,), {})
    assert len(long_key) < 200 and " " not in long_key


# -- cached ---------------------------------------------------------------------------------


def test_cached_computes_once_per_arguments(cache: LexigramCache) -> None:
    calls: list[tuple[int, int]] = []

    @cached(timeout=60)
    def add(a: int, b: int = 10) -> int:
        calls.append((a, b))
        return a + b

    assert add(1) == add(1, 10) == add(a=1) == 11
    assert add(2) == 12
    assert calls == [(1, 10), (2, 10)]
    assert add.__name__ == "add"
    assert add.key(1) == add.key(a=1, b=10) != add.key(2)


def test_cached_none_is_a_cached_result(cache: LexigramCache) -> None:
    calls = 0

    @cached
    def nothing() -> None:
        nonlocal calls
        calls += 1

    assert nothing() is None
    assert nothing() is None
    assert calls == 1


def test_cached_invalidate_and_tags(cache: LexigramCache) -> None:
    calls: list[int] = []

    @cached(timeout=60, tags=lambda pk: [(Pet, pk)])
    def pet_name(pk: int) -> str:
        calls.append(pk)
        return f"pet {pk} #{len(calls)}"

    assert pet_name(1) == "pet 1 #1"
    assert pet_name(2) == "pet 2 #2"
    cache.invalidate_tags((Pet, 1))
    assert pet_name(1) == "pet 1 #3"
    assert pet_name(2) == "pet 2 #2"
    assert pet_name.invalidate(2) is True
    assert pet_name(2) == "pet 2 #4"


def test_cached_static_model_tags(cache: LexigramCache) -> None:
    calls = 0

    @cached(timeout=60, tags=[Pet])
    def pet_count() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert pet_count() == pet_count() == 1
    cache.invalidate_tags(Owner)
    assert pet_count() == 1
    cache.invalidate_tags(Pet)
    assert pet_count() == 2


def test_cached_key_template_and_callable(cache: LexigramCache) -> None:
    @cached(timeout=60, key="pet-name:{pet.pk}")
    def name_of(pet: Pet) -> str:
        return pet.name

    @cached(timeout=60, key=lambda a, b: f"pair:{min(a, b)}:{max(a, b)}")
    def pair(a: int, b: int) -> tuple[int, int]:
        return (a, b)

    assert name_of(Pet(pk=3, name="Rex")) == "Rex"
    assert name_of(Pet(pk=3, name="Renamed")) == "Rex"
    assert cache.get("pet-name:3") == "Rex"
    assert pair(1, 2) == pair(2, 1) == (1, 2)
    assert pair.key(2, 1) == "pair:1:2"


def test_cached_condition_returns_but_does_not_store_rejected_results(
    cache: LexigramCache,
) -> None:
    answers = iter([None, None, "found", "later"])

    @cached(timeout=60, condition=lambda result: result is not None)
    def lookup() -> str | None:
        return next(answers)

    assert lookup() is None
    assert lookup() is None
    assert lookup() == "found"
    assert lookup() == "found"


def test_cached_methods_key_on_their_instance(cache: LexigramCache) -> None:
    class Shop:
        def __init__(self, name: str) -> None:
            self.name = name
            self.calls = 0

        def __cache_key__(self) -> str:
            return self.name

        @cached(timeout=60)
        def greeting(self, who: str) -> str:
            self.calls += 1
            return f"{self.name} greets {who}"

    shop = Shop("north")
    assert shop.greeting("ann") == shop.greeting("ann") == "north greets ann"
    assert Shop("south").greeting("ann") == "south greets ann"
    assert shop.calls == 1
    assert shop.greeting.key("ann") == Shop.greeting.key(shop, "ann")
    assert shop.greeting.invalidate("ann") is True
    shop.greeting("ann")
    assert shop.calls == 2


def test_cached_model_arguments_are_keyed_by_pk(cache: LexigramCache) -> None:
    @cached(timeout=60)
    def describe(pet: Pet) -> str:
        return pet.name

    assert describe(Pet(pk=8, name="first")) == "first"
    assert describe(Pet(pk=8, name="other object, same row")) == "first"


def test_cached_threads_compute_once(cache: LexigramCache) -> None:
    calls = 0
    views.gate.waiters = 9

    @cached(timeout=60)
    def slow(x: int) -> int:
        nonlocal calls
        calls += 1
        views.gate.wait()
        return x * 2

    results = run_threads(10, lambda i: slow(21))

    assert results == [42] * 10
    assert calls == 1
    assert cache.stats()["waits"] == 9


async def test_cached_async_functions_under_gather(cache: LexigramCache) -> None:
    calls = 0

    @cached(timeout=60, tags=lambda n: [f"n:{n}"])
    async def square(n: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return n * n

    assert iscoroutinefunction(square)
    results = await asyncio.gather(*(square(n) for n in [3, 3, 4, 3, 4] * 4))
    assert results == [9, 9, 16, 9, 16] * 4
    assert calls == 2
    await cache.ainvalidate_tags("n:3")
    assert await square(3) == 9
    assert calls == 3
    assert await square.ainvalidate(4) is True
    assert await square(4) == 16
    assert calls == 4


async def test_cached_async_methods_and_condition(cache: LexigramCache) -> None:
    class Repo:
        def __cache_key__(self) -> str:
            return "repo"

        calls = 0

        @cached(timeout=60, condition=bool)
        async def find(self, name: str) -> list[str]:
            Repo.calls += 1
            return [name] if name != "ghost" else []

    repo = Repo()
    assert await repo.find("rex") == ["rex"]
    assert await repo.find("rex") == ["rex"]
    assert await repo.find("ghost") == []
    assert await repo.find("ghost") == []
    assert Repo.calls == 3


def test_cached_on_a_django_cache(untagged_alias: str) -> None:
    calls = 0

    @cached(timeout=60, cache="untagged")
    def value() -> None:
        nonlocal calls
        calls += 1

    @cached(timeout=60, cache="untagged", tags=["t"])
    def tagged() -> int:
        return 1

    value()
    value()
    assert calls == 1
    with pytest.raises(ImproperlyConfigured, match="has no tags"):
        tagged()


async def test_cached_async_on_a_django_cache(untagged_alias: str) -> None:
    calls = 0

    @cached(timeout=60, cache="untagged")
    async def value() -> int:
        nonlocal calls
        calls += 1
        return 7

    assert await value() == await value() == 7
    assert calls == 1


# -- invalidates ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_invalidates_after_the_function_and_after_the_commit(cache: LexigramCache) -> None:
    @invalidates(tags=lambda pk, name: [(Pet, pk)])
    def rename(pk: int, name: str) -> str:
        return name

    cache.set("pet-7", "old", tags=[(Pet, 7)])
    with transaction.atomic():
        assert rename(7, "new") == "new"
        assert cache.get("pet-7") == "old"  # not before the commit
    assert cache.get("pet-7") is None

    cache.set("pet-7", "old", tags=[(Pet, 7)])
    with pytest.raises(RuntimeError), transaction.atomic():
        rename(7, "rolled back")
        raise RuntimeError
    assert cache.get("pet-7") == "old"

    rename(7, "no transaction")
    assert cache.get("pet-7") is None


def test_invalidates_nothing_when_the_function_raises(cache: LexigramCache) -> None:
    @invalidates(tags=["pets"])
    def fail() -> None:
        raise ValueError

    cache.set("k", 1, tags=["pets"])
    with pytest.raises(ValueError):
        fail()
    assert cache.get("k") == 1


async def test_invalidates_async_functions(cache: LexigramCache) -> None:
    @invalidates(tags=["pets"])
    async def touch() -> str:
        return "done"

    await cache.aset("k", 1, tags=["pets"])
    assert await touch() == "done"
    assert await cache.aget("k") is None
