"""Views for the decorator tests: they count their renders and touch no database."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from typing import cast

from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template import engines
from django.template.response import TemplateResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import cache_control, never_cache

from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.decorators import cache_page
from lexigram_cache_django.request_cache import cache_in_request

renders: Counter[str] = Counter()
_lock = threading.Lock()


def count(name: str) -> int:
    with _lock:
        renders[name] += 1
        return renders[name]


class Gate:
    """Holds a render until ``waiters`` other requests wait on its single flight.

    The point is to prove that the requests really overlapped; the bound only keeps a
    broken build from hanging (the assertions do not depend on it).
    """

    waiters = 0
    bound = 10.0

    def reached(self) -> bool:
        cache = cast(LexigramCache, caches["default"])
        return int(cache.stats()["waits"]) >= self.waiters

    def wait(self) -> None:
        deadline = time.monotonic() + self.bound
        while time.monotonic() < deadline:
            if self.reached():
                return
            time.sleep(0.002)

    async def await_(self) -> None:
        deadline = time.monotonic() + self.bound
        while time.monotonic() < deadline:
            if self.reached():
                return
            await asyncio.sleep(0.002)


gate = Gate()


@cache_page(60, tags=["plain"])
def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"plain render {count('plain')}")


@cache_page(60, tags=["burst", "pages"])
def burst(request: HttpRequest) -> HttpResponse:
    n = count("burst")
    gate.wait()
    return HttpResponse(f"burst render {n}")


@cache_page(60, tags=lambda request, slug: [f"slug:{slug}"])
def by_slug(request: HttpRequest, slug: str) -> HttpResponse:
    return HttpResponse(f"{slug} render {count('slug:' + slug)}")


@cache_page(60, tags=["template"])
def template(request: HttpRequest) -> TemplateResponse:
    n = count("template")
    page = engines["django"].from_string("template render {{ n }}")
    return TemplateResponse(request, page, {"n": n})


@cache_page(60)
@cache_control(private=True)
def private(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"private render {count('private')}")


@cache_page(60)
@never_cache
def never(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"never render {count('never')}")


@cache_page(60)
def missing(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"missing render {count('missing')}", status=404)


@cache_page(60)
def streaming(request: HttpRequest) -> StreamingHttpResponse:
    n = count("streaming")
    return StreamingHttpResponse(iter([b"streaming render ", str(n).encode()]))


@cache_page(60, tags=["whoami"])
def whoami(request: HttpRequest) -> HttpResponse:
    """Sets a cookie for the caller: never cached, never handed to another request."""
    who = request.headers.get("X-Who", "?")
    count("whoami")
    gate.wait()
    response = HttpResponse(f"hello {who}")
    response.set_cookie("who", who)
    return response


mallory_is_rendering = threading.Event()


@cache_page(60, tags=["picky"])
def picky(request: HttpRequest) -> HttpResponse:
    """Refuses one caller; a refusal is that caller's alone, not its waiters'."""
    count("picky")
    if request.headers.get("X-Who") == "mallory":
        mallory_is_rendering.set()
        gate.wait()
        raise PermissionDenied
    return HttpResponse("welcome")


@cache_page(60, tags=["vary"])
def vary(request: HttpRequest) -> HttpResponse:
    flavour = request.headers.get("X-Flavour", "none")
    response = HttpResponse(f"{flavour} render {count('vary:' + flavour)}")
    patch_vary_headers(response, ["X-Flavour"])
    return response


@cache_page(60, cache="untagged")
def untagged(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"untagged render {count('untagged')}")


@cache_page(60, cache="untagged", tags=["nope"])
def untagged_with_tags(request: HttpRequest) -> HttpResponse:
    return HttpResponse("never reached")


@cache_page(60, tags=["async"])
async def async_burst(request: HttpRequest) -> HttpResponse:
    n = count("async")
    await gate.await_()
    return HttpResponse(f"async render {n}")


@cache_page(60, tags=lambda request, slug: [f"slug:{slug}"])
async def async_by_slug(request: HttpRequest, slug: str) -> HttpResponse:
    await asyncio.sleep(0)
    return HttpResponse(f"async {slug} render {count('async-slug:' + slug)}")


@cache_page(60, tags=["async-template"])
async def async_template(request: HttpRequest) -> TemplateResponse:
    n = count("async-template")
    page = engines["django"].from_string("async template render {{ n }}")
    return TemplateResponse(request, page, {"n": n})


@cache_page(60, tags=["async-private"])
@cache_control(private=True)
async def async_private(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"async private render {count('async-private')}")


# -- request cache ---------------------------------------------------------------------------

calls: Counter[str] = Counter()


@cache_in_request
def request_token(kind: str) -> str:
    """A value that differs on every computation, so reuse is visible."""
    calls[kind] += 1
    return f"{kind}-{uuid.uuid4().hex[:8]}"


@cache_in_request
async def arequest_token(kind: str) -> str:
    calls[kind] += 1
    await asyncio.sleep(0.01)  # let the other calls of the request arrive meanwhile
    return f"{kind}-{uuid.uuid4().hex[:8]}"


def twice(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"{request_token('sync')} {request_token('sync')}")


async def atwice(request: HttpRequest) -> HttpResponse:
    first, second = await asyncio.gather(arequest_token("async"), arequest_token("async"))
    third = await arequest_token("async")
    return HttpResponse(f"{first} {second} {third}")
