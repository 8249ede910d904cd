"""requests: a cached page hit through Django's full request handler, per cache_page.

Every candidate is one URL of one URLconf served by the same in-process
``django.core.handlers.wsgi.WSGIHandler`` (URL resolution, request and response objects,
middleware chain: none configured, the same for all), on one throw-away redis-server:

* ``django cache_page/RedisCache``: ``django.views.decorators.cache.cache_page`` on
  Django's ``django.core.cache.backends.redis.RedisCache`` (the baseline);
* ``django cache_page/django-redis``: the same decorator on django-redis;
* ``lexigram cache_page/RedisCache``: ``lexigram_cache_django.decorators.cache_page``
  with ``tags=`` on our RedisCache;
* ``lexigram cache_page/tiered``: the same on TieredCache (memory L1 over that Redis).

Goals: ours on Redis >= 2x Django's, tiered >= 3x; ours on Redis vs django-redis (>= 1.3x)
is an extra row. ``LEXIGRAM_BENCH_PROFILE=1`` prints a cProfile of 2,000 hits of ours.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import types
from typing import Any

from benchmarks.harness import Case, Context, Result, paired_stats, quartiles
from benchmarks.report import profile_report
from benchmarks.servers import start_redis, wait_for_bus

DESCRIPTION = (
    "page hit through Django's handler: lexigram cache_page (Redis, tiered) vs Django's "
    "cache_page (RedisCache, django-redis); goals >= 2x and >= 3x Django's"
)

DJ = "django cache_page/RedisCache"
DJR = "django cache_page/django-redis"
OURS = "lexigram cache_page/RedisCache"
TIERED = "lexigram cache_page/tiered"
BODY = "<html><body>" + "pet clinic " * 200 + "</body></html>"


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def run(ctx: Context) -> list[Result]:
    try:
        import django_redis  # type: ignore[import-untyped]  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        ctx.skip("redis-py and django-redis are needed")
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.test.utils import override_settings
    from django.urls import path
    from django.views.decorators.cache import cache_page as django_cache_page

    from lexigram_cache_django.decorators import cache_page

    url = start_redis(ctx)
    l1 = {"BACKEND": "lexigram_cache_django.backends.memory.MemoryCache", "LOCATION": "req-l1"}
    caches_setting = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "dj": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url},
        "djr": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url, "KEY_PREFIX": "djr"},
        "ours": {
            "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "ours",
        },
        "tiered": {
            "BACKEND": "lexigram_cache_django.backends.tiered.TieredCache",
            "KEY_PREFIX": "tiered",
            "OPTIONS": {"L1": l1, "L2": {**caches_setting_l2(url)}},
        },
    }

    def view(request: Any) -> HttpResponse:
        return HttpResponse(BODY)

    urls = types.ModuleType("lexigram_bench_request_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("dj/", django_cache_page(300, cache="dj")(view)),
        path("djr/", django_cache_page(300, cache="djr")(view)),
        path("ours/", cache_page(300, cache="ours", tags=["pages"])(view)),
        path("tiered/", cache_page(300, cache="tiered", tags=["pages"])(view)),
    ]
    sys.modules[urls.__name__] = urls
    override = override_settings(
        CACHES=caches_setting, ROOT_URLCONF=urls.__name__, ALLOWED_HOSTS=["testserver"]
    )
    override.enable()
    ctx.add_cleanup(override.disable)
    from django.core.cache import caches

    tiered: Any = caches["tiered"]
    wait_for_bus(tiered)
    handler = WSGIHandler()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        assert status.startswith("200"), status
        return None

    def op(page: str) -> Any:
        def hit() -> Any:
            environ = _environ(page)
            return b"".join(handler(environ, start_response))

        hit()
        hit()  # stored, then served from the cache
        return hit

    case = Case(
        name="cached page hit",
        candidates={DJ: op("/dj/"), DJR: op("/djr/"), OURS: op("/ours/"), TIERED: op("/tiered/")},
        baseline=DJ,
        goals={OURS: (">=", 2.0), TIERED: (">=", 3.0)},
    )
    results = ctx.measure(case)
    results.extend(_versus(results, OURS, DJR, 1.3))
    ctx.log(f"tiered: { ({k: v for k, v in tiered.stats().items() if k not in ('l1', 'l2')}) }")
    if os.environ.get("LEXIGRAM_BENCH_PROFILE"):
        for name in (OURS, TIERED):
            ctx.log(f"profile of 2,000 hits, {name}:")
            ctx.log(profile_report(case.candidates[name], 2000, "cumulative", 22))
    return results


def caches_setting_l2(url: str) -> dict[str, Any]:
    return {"BACKEND": "lexigram_cache_django.backends.redis.RedisCache", "LOCATION": url}


def _versus(results: list[Result], ours: str, other: str, goal: float) -> list[Result]:
    from benchmarks.harness import Goal

    by_name = {r.candidate: r for r in results}
    mine, theirs = by_name[ours], by_name[other]
    ratios, ratio = paired_stats(mine.samples, theirs.samples)
    p25, p75 = quartiles(ratios)
    return [
        Result(
            scenario=mine.scenario,
            op=mine.op,
            candidate=f"{ours} / {other}",
            baseline=other,
            median=statistics.median(mine.samples),
            ratio=ratio,
            ratio_p25=p25,
            ratio_p75=p75,
            ratios=ratios,
            batch=mine.batch,
            goal=Goal(">=", goal),
            note="same-run paired ratio",
        )
    ]
