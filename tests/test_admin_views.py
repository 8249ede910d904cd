"""The admin's Cache pages without a browser: permissions, methods, CSRF, actions, escaping."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from lexigram_cache_django import operations, site_metrics
from lexigram_cache_django.admin.charts import bucketed, line_chart
from lexigram_cache_django.admin.panel import CachePanelAdmin
from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.models import CachePanel
from tests.servers import Server, free_port

pytestmark = pytest.mark.django_db

BASE = "/admin/lexigram_cache_django/cachepanel/"
READ_URLS = ("", "default/", "default/data.json")
POST_URLS = ("default/invalidate/", "default/key/", "default/delete-key/")


def make_user(name: str, *perms: str, staff: bool = True) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def client_for(user: User | None, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def viewer() -> Client:
    return client_for(make_user("viewer", "view_cachepanel"))


@pytest.fixture
def actor() -> Client:
    return client_for(make_user("actor", "view_cachepanel", "clear_cache"))


def test_permissions_exist_and_the_model_has_no_add_change_delete() -> None:
    codenames = set(
        Permission.objects.filter(content_type__app_label="lexigram_cache_django").values_list(
            "codename", flat=True
        )
    )
    assert codenames == {"view_cachepanel", "clear_cache"}
    assert CachePanel._meta.managed is False


def test_index_lists_cache_for_viewers_only(viewer: Client) -> None:
    index = viewer.get("/admin/").content.decode()
    assert f'href="{BASE}"' in index
    nobody = client_for(make_user("nobody"))
    page = nobody.get("/admin/")
    assert page.status_code == 200
    assert BASE not in page.content.decode()


@pytest.mark.parametrize("url", (*READ_URLS, "default/clear/"))
def test_anonymous_is_sent_to_login(url: str) -> None:
    response = Client().get(BASE + url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", READ_URLS)
def test_staff_without_permission_gets_403(url: str) -> None:
    assert client_for(make_user("nobody")).get(BASE + url).status_code == 403


@pytest.mark.parametrize("url", READ_URLS)
def test_viewer_reads(viewer: Client, url: str) -> None:
    assert viewer.get(BASE + url).status_code == 200


@pytest.mark.parametrize("url", READ_URLS)
def test_read_views_refuse_post(actor: Client, url: str) -> None:
    assert actor.post(BASE + url).status_code == 405


@pytest.mark.parametrize("url", POST_URLS)
def test_action_views_refuse_get(actor: Client, url: str) -> None:
    assert actor.get(BASE + url).status_code == 405


@pytest.mark.parametrize("url", (*READ_URLS, *POST_URLS, "default/clear/"))
def test_other_methods_are_405(actor: Client, url: str) -> None:
    assert actor.put(BASE + url).status_code == 405
    assert actor.delete(BASE + url).status_code == 405


@pytest.mark.parametrize("url", (*POST_URLS, "default/clear/"))
def test_viewer_cannot_act(viewer: Client, url: str) -> None:
    caches["default"].set("kept", 1)
    assert (
        viewer.post(BASE + url, {"key": "kept", "tags": "t", "confirmed": "yes"}).status_code == 403
    )
    assert viewer.get(BASE + "default/clear/").status_code == 403
    assert caches["default"].get("kept") == 1
    assert not LogEntry.objects.exists()


def test_actions_hidden_from_viewer(viewer: Client, actor: Client) -> None:
    assert 'id="cache-actions"' not in viewer.get(BASE + "default/").content.decode()
    assert 'id="cache-actions"' in actor.get(BASE + "default/").content.decode()


def test_superuser_has_both() -> None:
    boss = client_for(User.objects.create_superuser("boss", password="pw"))
    assert 'id="cache-actions"' in boss.get(BASE + "default/").content.decode()
    assert boss.get(BASE + "default/clear/").status_code == 200


def test_unknown_alias_is_404(actor: Client) -> None:
    assert actor.get(BASE + "nope/").status_code == 404
    assert actor.get(BASE + "nope/data.json").status_code == 404
    assert actor.post(BASE + "nope/clear/").status_code == 404


@pytest.mark.parametrize("url", (*POST_URLS, "default/clear/"))
def test_post_without_csrf_token_is_refused(url: str) -> None:
    user = make_user("actor", "view_cachepanel", "clear_cache")
    client = client_for(user, enforce_csrf_checks=True)
    caches["default"].set("kept", 1)
    response = client.post(BASE + url, {"key": "kept", "confirmed": "yes"})
    assert response.status_code == 403
    assert b"CSRF" in response.content
    assert caches["default"].get("kept") == 1


def test_clear_asks_then_clears_and_logs(actor: Client) -> None:
    cache = caches["default"]
    cache.set_many({"a": 1, "b": 2})
    confirm = actor.get(BASE + "default/clear/")
    assert confirm.status_code == 200
    assert b'id="confirm-form"' in confirm.content
    assert cache.get("a") == 1  # asking changes nothing
    done = actor.post(BASE + "default/clear/", {"confirmed": "yes"})
    assert done.status_code == 302
    assert done["Location"] == BASE + "default/"
    assert cache.get_many(["a", "b"]) == {}
    entry = LogEntry.objects.get()
    assert entry.user.username == "actor"
    assert entry.object_id == "default"
    assert "Cleared cache alias default" in entry.change_message
    assert entry.get_admin_url() == BASE + "default/"  # "Recent actions" links the alias page


def lexigram(alias: str) -> LexigramCache:
    cache = caches[alias]
    assert isinstance(cache, LexigramCache)
    return cache


def test_invalidate_tags_after_confirmation(actor: Client) -> None:
    cache = lexigram("default")
    cache.set_with_tags("page", "html", tags=["menu"])
    first = actor.post(BASE + "default/invalidate/", {"tags": "menu"})
    assert first.status_code == 200
    assert b'name="confirmed" value="yes"' in first.content
    assert cache.get("page") == "html"
    done = actor.post(BASE + "default/invalidate/", {"tags": "menu", "confirmed": "yes"})
    assert done.status_code == 302
    assert cache.get("page") is None
    assert "menu" in LogEntry.objects.get().change_message


def test_invalidate_a_model(actor: Client) -> None:
    done = actor.post(
        BASE + "default/invalidate/", {"model": "petclinic.Owner", "pks": "1", "confirmed": "yes"}
    )
    assert done.status_code == 302
    assert LogEntry.objects.count() == 1
    bad = actor.post(BASE + "default/invalidate/", {"model": "no.Such", "confirmed": "yes"})
    assert bad.status_code == 302
    assert LogEntry.objects.count() == 1  # nothing done, nothing logged


def test_delete_key_after_confirmation(actor: Client) -> None:
    cache = caches["default"]
    cache.set("doomed", 1)
    ask = actor.post(BASE + "default/delete-key/", {"key": "doomed"})
    assert ask.status_code == 200
    assert cache.get("doomed") == 1
    actor.post(BASE + "default/delete-key/", {"key": "doomed", "confirmed": "yes"})
    assert cache.get("doomed") is None
    assert "doomed" in LogEntry.objects.get().change_message


def test_lookup_escapes_the_value_and_is_logged(actor: Client) -> None:
    caches["default"].set("xss", "<script>alert(1)</script>", 300)
    page = actor.post(BASE + "default/key/", {"key": "xss"}).content.decode()
    preview = re.search(r'<pre id="key-preview"[^>]*>(.*?)</pre>', page, re.S)
    assert preview is not None
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview.group(1)
    assert "<script>alert(1)" not in page
    assert LogEntry.objects.get().change_message.startswith("Looked up key")


def test_lookup_shows_tags_and_whether_they_are_current(actor: Client) -> None:
    cache = lexigram("default")
    cache.set_with_tags("menu-page", "html", tags=["menu", "footer"])
    cache.invalidate_tags("footer")
    page = actor.post(BASE + "default/key/", {"key": "menu-page"}).content.decode()
    tags = re.search(r'<table class="lexigram-table" id="key-tags">(.*?)</table>', page, re.S)
    assert tags is not None
    rows = dict(
        re.findall(
            r"<tr><td>(\w+)</td>.*?<td>(yes|<strong>no: stale</strong>)</td></tr>", tags.group(1)
        )
    )
    assert rows == {"menu": "yes", "footer": "<strong>no: stale</strong>"}


def test_list_shows_the_same_figures_as_operations(viewer: Client) -> None:
    cache = lexigram("default")
    cache.reset_stats()  # counters are per process and outlive a test
    cache.set("k", 1)
    for _ in range(3):
        cache.get("k")
    cache.get("missing")
    stats = operations.alias_stats("default")
    counted = stats["site"] or stats["process"]
    page = viewer.get(BASE).content.decode()
    row = re.search(r'<tr data-alias="default">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = dict(re.findall(r'data-field="(\w+)">(.*?)</td>', row.group(1), re.S))
    assert cells["hits"] == str(counted["hits"]) == "3"
    assert cells["misses"] == str(counted["misses"]) == "1"
    assert stats["backend"] in cells["backend"]


def test_json_endpoint_has_figures_and_charts(viewer: Client) -> None:
    cache = caches["default"]
    cache.set("k", 1)
    cache.get("k")
    site_metrics.flush_now()
    data = viewer.get(BASE + "default/data.json").json()
    assert data["alias"] == "default"
    assert data["figures"]["hits"] == str(operations.alias_stats("default")["process"]["hits"])
    assert set(data["charts"]) == {"ratio_hour", "ops_hour"}
    day = viewer.get(BASE + "default/data.json?day=1").json()
    assert set(day["charts"]) == {"ratio_hour", "ops_hour", "ratio_day", "ops_day"}
    assert "<svg" in data["charts"]["ops_hour"]


def test_chart_points_are_the_series() -> None:
    now = 1_700_000_000.0
    minute = int(now // 60) * 60
    rows = [{"minute": minute - 120, "hits": 3, "misses": 1}, {"minute": minute, "hits": 2}]
    hour = bucketed(rows, 60, 1, now)
    assert len(hour) == 60
    assert hour[-1]["minute"] == minute
    assert hour[-3]["hits"] == 3
    day = bucketed(rows, 1440, 15, now)
    assert sum(r.get("hits", 0) for r in day) == 5
    svg = str(
        line_chart(
            [(r["minute"], float(r.get("hits", 0))) for r in hour], chart_id="c", title="<t>"
        )
    )
    assert svg.count("<circle") == 2
    assert "&lt;t&gt;" in svg and "<t>" not in svg


def test_admin_class_is_the_registered_one() -> None:
    from django.contrib import admin

    assert isinstance(admin.site._registry[CachePanel], CachePanelAdmin)
    assert reverse("admin:lexigram_cache_django_cachepanel_changelist") == BASE


@pytest.fixture
def more_aliases(settings: Settings, redis_server: Server, memcached_server: Server) -> None:
    """Every kind of alias the list shows: ours on each server, tiered, Django's LocMem,
    and a Redis alias whose server is not there."""
    unique = uuid.uuid4().hex[:8]
    redis_entry = {
        "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
        "LOCATION": redis_server.url,
        "KEY_PREFIX": f"r{unique}",
    }
    settings.CACHES = {
        **settings.CACHES,
        "redis": redis_entry,
        "memcached": {
            "BACKEND": "lexigram_cache_django.backends.memcached.MemcachedCache",
            "LOCATION": memcached_server.address,
            "KEY_PREFIX": f"m{unique}",
        },
        "tiered": {
            "BACKEND": "lexigram_cache_django.backends.tiered.TieredCache",
            "OPTIONS": {
                "L1": {"BACKEND": "lexigram_cache_django.backends.memory.MemoryCache"},
                "L2": {**redis_entry, "KEY_PREFIX": f"t{unique}"},
            },
        },
        "django": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "gone": {
            "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
            "LOCATION": f"redis://:secret@127.0.0.1:{free_port()}",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        },
    }


@pytest.mark.redis
@pytest.mark.memcached
def test_every_kind_of_alias_is_listed_and_has_a_page(viewer: Client, more_aliases: None) -> None:
    for alias in ("redis", "memcached", "tiered", "django", "gone"):
        caches[alias].set("k", 1)
        caches[alias].get("k")
    listing = viewer.get(BASE).content.decode()
    for alias in ("default", "redis", "memcached", "tiered", "django", "gone"):
        assert f'<tr data-alias="{alias}">' in listing
    assert "secret" not in listing  # locations are masked
    gone = re.search(r'<tr data-alias="gone">(.*?)</tr>', listing, re.S)
    assert gone is not None and "lexigram-status-down" in gone.group(1)

    redis_page = viewer.get(BASE + "redis/").content.decode()
    for field in ("redis_version", "maxmemory_policy", "used_memory_peak", "keyspace.db0.keys"):
        assert field in redis_page
    memcached_page = viewer.get(BASE + "memcached/").content.decode()
    assert "limit_maxbytes" in memcached_page and "get_hits" in memcached_page
    tiered_page = viewer.get(BASE + "tiered/").content.decode()
    assert "Tier L1" in tiered_page and "Tier L2" in tiered_page
    assert viewer.get(BASE + "django/").status_code == 200
    gone_page = viewer.get(BASE + "gone/").content.decode()
    assert "secret" not in gone_page
    breakers = re.search(
        r'<table class="lexigram-table" id="cache-breakers">(.*?)</table>', gone_page, re.S
    )
    assert breakers is not None and "Connection refused" in breakers.group(1)  # last error


def test_demo_traffic_stays_on_loopback() -> None:
    with pytest.raises(CommandError, match="not a loopback address"):
        call_command("demo_traffic", base_url="http://192.0.2.1:8000", requests=1)


@pytest.mark.redis
@pytest.mark.memcached
def test_an_open_breaker_is_shown(viewer: Client, more_aliases: None) -> None:
    gone = caches["gone"]
    for i in range(10):  # connection refused each time: the breaker opens after CIRCUIT_FAILURES
        gone.get(f"k{i}")
    assert operations.alias_health("gone")["status"] == "breaker_open"
    listing = viewer.get(BASE).content.decode()
    row = re.search(r'<tr data-alias="gone">(.*?)</tr>', listing, re.S)
    assert row is not None
    assert "lexigram-status-breaker_open" in row.group(1) and "breaker open" in row.group(1)
    page = viewer.get(BASE + "gone/").content.decode()
    assert "<td>open</td>" in page
