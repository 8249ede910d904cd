"""Stale-while-revalidate without a worker: refresh="thread", and Celery in eager mode."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from lexigram_cache_django import refreshers, revalidate
from lexigram_cache_django.decorators import cache_page, cached

pytestmark = pytest.mark.urls("tests.test_revalidate")

calls: dict[str, int] = {"thread": 0, "celery": 0, "page": 0}


@cached(timeout=0.3, stale_while_revalidate=30, refresh="thread")
def by_thread() -> int:
    calls["thread"] += 1
    return calls["thread"]


@cached(timeout=0.3, stale_while_revalidate=30, refresh="celery")
def by_celery(n: int) -> tuple[int, int]:
    calls["celery"] += 1
    return n, calls["celery"]


@cache_page(0.3, stale_while_revalidate=30, refresh="thread")
def page(request: HttpRequest) -> HttpResponse:
    calls["page"] += 1
    return HttpResponse(f"render {calls['page']}")


@cache_page(0.3, stale_while_revalidate=30, refresh="celery")
def celery_page(request: HttpRequest) -> HttpResponse:
    calls["page"] += 1
    return HttpResponse(f"render {calls['page']}")


urlpatterns = [path("swr/page/", page), path("swr/celery-page/", celery_page)]


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    for name in calls:
        calls[name] = 0
    revalidate.counters.reset()
    revalidate._memo.clear()
    yield
    revalidate.set_enqueuer(None)
    revalidate.load_tasks()  # importing again is a no-op: register the real enqueuer
    _reset_enqueuer()


def _reset_enqueuer() -> None:
    import lexigram_cache_django.tasks as tasks

    revalidate.set_enqueuer(tasks._enqueue_refresh, tasks._current_app)
    revalidate._broken = False


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_fresh_then_stale_served_at_once_and_refreshed_once_in_a_thread() -> None:
    assert by_thread() == 1
    assert by_thread() == 1  # fresh: no refresh
    time.sleep(0.35)
    started = time.perf_counter()
    stale = [by_thread() for _ in range(50)]
    assert time.perf_counter() - started < 0.5
    assert set(stale) <= {1, 2} and stale[0] == 1
    eventually(lambda: by_thread() == 2)
    assert calls["thread"] == 2  # one refresh for the whole burst
    assert revalidate.counters.refreshed == 1 and revalidate.counters.claimed == 1


def _child_reads_stale(out: Any) -> None:
    try:
        time.sleep(0.35)  # stale again, in the child's copy of the memory store
        first = by_thread()
        # No more reads: each stale read after the 1 s recheck would submit again, and a
        # second submit starts a thread that also runs the first.
        eventually(lambda: calls["thread"] == 3, 3)
        out.put((first, by_thread(), ""))
    except BaseException as exc:
        out.put((0, 0, repr(exc)))


def test_a_forked_child_refreshes_in_threads_of_its_own() -> None:
    """gunicorn --preload forks after the master used the cache: a refresh handed to the
    parent's pool threads, which the child does not have, never ran."""
    assert by_thread() == 1
    time.sleep(0.35)
    by_thread()  # stale: refreshed in the pool, which now has a thread
    eventually(lambda: by_thread() == 2)
    time.sleep(0.05)  # that thread idle at the fork, as a master's is
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_reads_stale, args=(out,))
    child.start()
    first, then, error = out.get(timeout=20)
    child.join(10)
    assert error == "" and child.exitcode == 0
    assert (first, then) == (2, 3)  # the stale value served, then the child's refresh


def test_32_threads_on_a_stale_key_refresh_once() -> None:
    by_thread()
    time.sleep(0.35)
    barrier = threading.Barrier(32)
    seen: list[int] = []

    def read() -> None:
        barrier.wait()
        seen.append(by_thread())

    threads = [threading.Thread(target=read) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 32
    eventually(lambda: revalidate.counters.refreshed == 1)
    time.sleep(0.1)
    assert calls["thread"] == 2


def test_after_the_stale_window_it_is_a_miss() -> None:
    @cached(timeout=0.1, stale_while_revalidate=0.2, refresh="thread")
    def short() -> float:
        calls["thread"] += 1
        return time.time()

    first = short()
    time.sleep(0.4)  # past fresh + stale: computed by the reader, not served stale
    assert short() != first
    assert calls["thread"] == 2


@cached(timeout=1.0, stale_while_revalidate=30, refresh="celery")
def by_celery_slowly(n: int) -> tuple[int, int]:
    calls["celery"] += 1
    return n, calls["celery"]


def test_celery_refresh_in_eager_mode() -> None:
    # A 1 s fresh window, not 0.3 s: on a loaded machine the refreshed value must not
    # turn stale again (a second enqueue) before the check below reads it.
    assert by_celery_slowly(7) == (7, 1)
    time.sleep(1.05)
    assert by_celery_slowly(7) == (7, 1)
    eventually(lambda: by_celery_slowly(7) == (7, 2))
    # Eager: the refresh runs inside apply_async, in the pool thread, and is counted as
    # enqueued when apply_async returns, just after the new value is readable.
    eventually(lambda: revalidate.counters.enqueued == 1)
    assert revalidate.counters.enqueue_failures == 0


def test_broken_enqueueing_falls_back_to_a_thread_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(message: dict[str, Any], app: Any) -> None:
        raise ConnectionError("broker down")

    revalidate.set_enqueuer(broken)
    by_celery(1), by_celery(2)
    time.sleep(0.35)
    with caplog.at_level(logging.WARNING, "lexigram_cache_django"):
        assert by_celery(1) == (1, 1)
        eventually(lambda: by_celery(1)[1] == 3)
        assert by_celery(2) == (2, 2)
        eventually(lambda: by_celery(2)[1] == 4)
    assert revalidate.counters.enqueue_failures == 2
    assert revalidate.counters.refreshed == 2
    warnings = [r for r in caplog.records if "enqueueing a refresh failed" in r.message]
    assert len(warnings) == 1


def test_a_failed_refresh_releases_its_claim_and_keeps_the_stale_value() -> None:
    state = {"fail": True, "n": 0}

    @cached(timeout=0.2, stale_while_revalidate=30, refresh="thread")
    def flaky() -> int:
        state["n"] += 1
        if state["n"] > 1 and state["fail"]:
            raise RuntimeError("backend for the value is down")
        return state["n"]

    assert flaky() == 1
    time.sleep(0.25)
    assert flaky() == 1
    eventually(lambda: revalidate.counters.failed == 1)
    state["fail"] = False
    eventually(lambda: flaky() > 1)


def test_refresh_recomputes_now_and_the_key_is_unchanged() -> None:
    assert by_thread() == 1
    assert by_thread.refresh() == 2
    assert by_thread() == 2
    stored = caches["default"].get(by_thread.key())
    assert revalidate.unwrap(stored) is not None


def test_page_served_stale_then_re_rendered_in_a_thread() -> None:
    client = Client()
    first = client.get("/swr/page/")
    assert first.content == b"render 1"
    assert "stale-while-revalidate=30" in first["Cache-Control"]
    assert client.get("/swr/page/").content == b"render 1"
    time.sleep(0.35)
    assert client.get("/swr/page/").content == b"render 1"  # stale, at once
    eventually(lambda: client.get("/swr/page/").content == b"render 2")
    assert calls["page"] == 2


def test_page_refresh_through_celery_eager_re_requests_the_page() -> None:
    client = Client()
    assert client.get("/swr/celery-page/").content == b"render 1"
    time.sleep(0.35)
    assert client.get("/swr/celery-page/").content == b"render 1"
    eventually(lambda: client.get("/swr/celery-page/").content == b"render 2")
    assert revalidate.counters.enqueued == 1 and calls["page"] == 2


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="refresh"):
        cached(timeout=5, stale_while_revalidate=5, refresh="fork")
    with pytest.raises(ValueError, match="needs stale_while_revalidate"):
        cached(timeout=5, refresh="thread")
    with pytest.raises(ValueError, match="finite timeout"):
        cached(timeout=None, stale_while_revalidate=5)


async def test_async_cached_function_with_swr() -> None:
    n = {"v": 0}

    @cached(timeout=0.2, stale_while_revalidate=30)
    async def aval() -> int:
        n["v"] += 1
        return n["v"]

    assert await aval() == 1
    await asyncio.sleep(0.25)
    assert await aval() == 1
    deadline = time.monotonic() + 5
    while await aval() != 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def test_the_task_message_names_the_function() -> None:
    message = refreshers.function_message("m", "m.f", (1,), {"x": 2})
    assert message == {
        "kind": "function",
        "module": "m",
        "name": "m.f",
        "args": (1,),
        "kwargs": {"x": 2},
    }
