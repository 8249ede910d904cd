"""Per-request memo: once per request, separate per request (also under ASGI), then gone."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client

from example_project.petclinic.models import Pet
from lexigram_cache_django.request_cache import (
    RequestCacheMiddleware,
    cache_in_request,
    current_store,
    request_cache,
)
from tests import views

pytestmark = pytest.mark.urls("tests.urls")


@pytest.fixture(autouse=True)
def _fresh_calls() -> Iterator[None]:
    views.calls.clear()
    yield
    views.calls.clear()


def test_outside_a_request_nothing_is_remembered() -> None:
    assert current_store() is None
    assert views.request_token("x") != views.request_token("x")
    assert views.calls["x"] == 2


def test_inside_request_cache_each_call_is_computed_once() -> None:
    with request_cache() as store:
        first = views.request_token("x")
        assert views.request_token("x") == first
        assert views.request_token("y") != first
        assert views.calls == {"x": 1, "y": 1}
        assert len(store) == 2
        with request_cache():  # a nested store starts empty and leaves the outer intact
            assert views.request_token("x") != first
        assert views.request_token("x") == first
        views.request_token.invalidate("x")
        assert views.request_token("x") != first
    assert current_store() is None


def test_the_middleware_remembers_within_a_request_and_forgets_after(client: Client) -> None:
    one = client.get("/t/request-cache/").content.split()
    two = client.get("/t/request-cache/").content.split()

    assert one[0] == one[1]
    assert two[0] == two[1]
    assert one[0] != two[0]
    assert views.calls["sync"] == 2
    assert current_store() is None


def test_threads_serving_requests_have_their_own_stores() -> None:
    barrier = threading.Barrier(8)
    results: list[tuple[str, str]] = []

    def request() -> None:
        with request_cache():
            barrier.wait()
            first = views.request_token("t")
            barrier.wait()
            results.append((first, views.request_token("t")))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert all(a == b for a, b in results)
    assert len({a for a, _ in results}) == 8


async def test_async_requests_under_gather_each_get_their_own_memo() -> None:
    client = AsyncClient()

    responses = await asyncio.gather(*(client.get("/t/async/request-cache/") for _ in range(6)))

    tokens = [r.content.decode().split() for r in responses]
    assert all(len(set(three)) == 1 for three in tokens)  # once per request, even concurrently
    assert len({three[0] for three in tokens}) == 6  # and never shared between requests
    assert views.calls["async"] == 6


async def test_async_functions_share_one_running_call() -> None:
    with request_cache():
        results = await asyncio.gather(*(views.arequest_token("a") for _ in range(5)))
        assert len(set(results)) == 1
        assert await views.arequest_token("a") == results[0]
    assert views.calls["a"] == 1
    assert iscoroutinefunction(views.arequest_token)


async def test_a_failed_async_call_is_not_remembered() -> None:
    attempts = 0

    @cache_in_request
    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first try fails")
        return "ok"

    with request_cache():
        with pytest.raises(RuntimeError):
            await flaky()
        assert await flaky() == "ok"
        assert await flaky() == "ok"
    assert attempts == 2


def test_a_failed_sync_call_is_not_remembered() -> None:
    attempts = 0

    @cache_in_request
    def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError
        return "ok"

    with request_cache():
        with pytest.raises(RuntimeError):
            flaky()
        assert flaky() == flaky() == "ok"
    assert attempts == 2


def test_model_arguments_methods_and_custom_keys() -> None:
    class Service:
        def __init__(self) -> None:
            self.calls = 0

        def __cache_key__(self) -> str:
            return "service"

        @cache_in_request
        def describe(self, pet: Pet) -> str:
            self.calls += 1
            return pet.name

    @cache_in_request(key=lambda text: text.lower())
    def shout(text: str) -> str:
        return text.upper()

    service = Service()
    with request_cache():
        assert service.describe(Pet(pk=1, name="Rex")) == "Rex"
        assert service.describe(Pet(pk=1, name="same row")) == "Rex"
        assert service.describe(Pet(pk=2, name="Tom")) == "Tom"
        assert shout("Hi") == "HI"
        assert shout("hi") == "HI"  # the same key
    assert service.calls == 2


def test_a_contextvar_copy_sees_the_same_store() -> None:
    """What asgiref does when it runs a sync view in a thread for an async request."""
    with request_cache():
        first = views.request_token("ctx")
        seen: list[Any] = []
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=lambda: seen.append(context.run(views.request_token, "ctx"))
        )
        thread.start()
        thread.join()
        assert seen == [first]


def test_the_middleware_is_sync_and_async_capable() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(current_store() is not None))

    async def aview(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(current_store() is not None))

    sync_middleware = RequestCacheMiddleware(view)
    async_middleware = RequestCacheMiddleware(aview)

    assert RequestCacheMiddleware.sync_capable and RequestCacheMiddleware.async_capable
    assert not iscoroutinefunction(sync_middleware)
    assert iscoroutinefunction(async_middleware)
    assert sync_middleware(HttpRequest()).content == b"True"
    assert asyncio.run(async_middleware(HttpRequest())).content == b"True"
    assert current_store() is None
