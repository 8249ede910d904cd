"""Health: the django-health-check plugin and the JSON view, each alias reported, a stopped
server turning it red; the HEALTH_CACHES setting's system check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import Client, modify_settings, override_settings
from django.urls import include, path
from health_check import HealthCheck
from health_check.views import HealthCheckView

from lexigram_cache_django.contrib.health_check import CacheHealth, cache_checks
from tests.conftest import BACKEND_PATHS
from tests.servers import Server, start_memcached, start_redis


class PerTestChecks(HealthCheckView):
    """A project lists ``cache_checks()`` once, in its URLconf; the tests change CACHES."""

    check_options: dict[str, Any] = {}

    def get_checks(self) -> Iterator[HealthCheck]:
        self.checks = cache_checks(**self.check_options)
        checks: Iterator[HealthCheck] = super().get_checks()
        return checks


urlpatterns = [
    path("ht/", PerTestChecks.as_view()),
    path("ht-lenient/", PerTestChecks.as_view(check_options={"degraded_ok": True})),
    path("cache-health/", include("lexigram_cache_django.contrib.health")),
]


@pytest.fixture
def servers() -> Iterator[dict[str, Server]]:
    """A Redis and two memcached of our own: these tests kill them."""
    started = {"redis": start_redis(), "mc1": start_memcached(), "mc2": start_memcached()}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def site(servers: dict[str, Server]) -> Iterator[Client]:
    caches = {
        "default": {"BACKEND": BACKEND_PATHS["memory"], "LOCATION": "health-default"},
        "redis": {
            "BACKEND": BACKEND_PATHS["redis"],
            "LOCATION": servers["redis"].url,
            "OPTIONS": {"CIRCUIT_FAILURES": 1, "SOCKET_TIMEOUT": 0.5},
        },
        "mc": {
            "BACKEND": BACKEND_PATHS["memcached"],
            "LOCATION": [servers["mc1"].address, servers["mc2"].address],
            "OPTIONS": {"SOCKET_TIMEOUT": 0.5},
        },
        "django": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "tiered": {
            "BACKEND": "lexigram_cache_django.backends.tiered.TieredCache",
            "OPTIONS": {"L1": {"BACKEND": BACKEND_PATHS["memory"]}, "L2": "redis"},
        },
    }
    with (
        override_settings(CACHES=caches, ROOT_URLCONF="tests.test_health_check"),
        modify_settings(INSTALLED_APPS={"append": "health_check"}),
    ):
        yield Client()


def plugin(client: Client, url: str = "/ht/") -> tuple[int, dict[str, str]]:
    response = client.get(url, HTTP_ACCEPT="application/json")
    return response.status_code, json.loads(response.content)


def test_plugin_reports_each_alias(site: Client, servers: dict[str, Server]) -> None:
    status, body = plugin(site)
    assert status == 200, body
    assert body == {
        "CacheHealth(alias='default')": "OK",
        "CacheHealth(alias='redis')": "OK",
        "CacheHealth(alias='mc')": "OK",
        "CacheHealth(alias='django')": "OK",
        "CacheHealth(alias='tiered')": "OK",
    }


def test_a_stopped_redis_turns_the_plugin_red(site: Client, servers: dict[str, Server]) -> None:
    servers["redis"].kill()
    status, body = plugin(site)
    assert status == 500
    assert body["CacheHealth(alias='redis')"].startswith("Unavailable: cache 'redis' is down")
    assert servers["redis"].address in body["CacheHealth(alias='redis')"]
    assert body["CacheHealth(alias='tiered')"].startswith("Unavailable")  # its L2 is down
    assert body["CacheHealth(alias='mc')"] == "OK"
    assert body["CacheHealth(alias='default')"] == "OK"


def test_one_memcached_node_down_is_degraded(site: Client, servers: dict[str, Server]) -> None:
    servers["mc2"].kill()
    status, body = plugin(site)
    assert status == 500  # django-health-check 4.x: a warning is a 500 too
    assert body["CacheHealth(alias='mc')"].startswith("Warning: cache 'mc' is degraded")
    status, body = plugin(site, "/ht-lenient/")
    assert status == 200 and body["CacheHealth(alias='mc')"] == "OK"
    servers["mc1"].kill()
    status, body = plugin(site, "/ht-lenient/")
    assert status == 500 and "is down" in body["CacheHealth(alias='mc')"]


def test_unknown_alias_is_unavailable(site: Client) -> None:
    check = CacheHealth(alias="nope")
    with pytest.raises(Exception, match="not in CACHES"):
        check.run()


def test_secrets_stay_out_of_labels() -> None:
    assert CacheHealth(alias="a", degraded_ok=True).labels == {"check": "CacheHealth", "alias": "a"}


# -- the JSON view ---------------------------------------------------------------------------


def view(client: Client, url: str = "/cache-health/") -> tuple[int, dict[str, Any]]:
    response = client.get(url)
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, json.loads(response.content)


def test_view_reports_each_alias(site: Client, servers: dict[str, Server]) -> None:
    status, body = view(site)
    assert status == 200 and body["status"] == "up"
    assert set(body["caches"]) == {"default", "redis", "mc", "django", "tiered"}
    redis = body["caches"]["redis"]
    assert redis["backend"] == "redis" and redis["status"] == "up"
    assert redis["servers"][0]["state"] == "closed" and redis["servers"][0]["ping_ms"] >= 0
    assert len(body["caches"]["mc"]["servers"]) == 2
    (l2,) = body["caches"]["tiered"]["servers"]  # its L2's server, the redis alias's
    assert l2["server"] == redis["servers"][0]["server"] and l2["state"] == "closed"
    assert body["caches"]["django"] == {
        "alias": "django",
        "backend": "LocMemCache",
        "status": "up",
        "probe_ms": body["caches"]["django"]["probe_ms"],
    }


def test_view_is_503_when_a_server_is_down(site: Client, servers: dict[str, Server]) -> None:
    servers["redis"].kill()
    status, body = view(site)
    assert status == 503 and body["status"] == "down"
    assert body["caches"]["redis"]["status"] == "down"
    assert body["caches"]["redis"]["servers"][0]["error"]
    status, body = view(site, "/cache-health/mc/")
    assert status == 200 and list(body["caches"]) == ["mc"]
    status, body = view(site, "/cache-health/?alias=default&alias=mc")
    assert status == 200 and list(body["caches"]) == ["default", "mc"]
    servers["mc1"].kill()
    status, body = view(site, "/cache-health/mc/")
    assert status == 200 and body["status"] == "degraded"  # one node of two still serves


def test_view_refuses_writes(site: Client) -> None:
    assert site.post("/cache-health/").status_code == 405


def test_health_caches_setting(site: Client) -> None:
    with override_settings(LEXIGRAM_CACHE={"HEALTH_CACHES": ["mc"]}):
        _, body = view(site)
        assert list(body["caches"]) == ["mc"]
        assert [options["alias"] for _, options in cache_checks()] == ["mc"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["redsi"], "'redsi', which is not in CACHES"), ("redis", "must be a list or a tuple")],
)
def test_health_caches_check(site: Client, value: Any, expected: str) -> None:
    with override_settings(LEXIGRAM_CACHE={"HEALTH_CACHES": value}):
        found = [m for m in run_checks() if m.id == "lexigram_cache.E020"]
    assert len(found) == 1 and expected in found[0].msg and found[0].hint
