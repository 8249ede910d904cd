"""The admin's Cache pages in real Chromium against a live server."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.cache import caches
from django.core.management import call_command

from lexigram_cache_django import site_metrics
from lexigram_cache_django.admin.charts import ops_of
from tests.browser.conftest import log_in, make_user

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BASE = "/admin/lexigram_cache_django/cachepanel/"


def traffic(alias: str, hits: int, misses: int) -> None:
    cache = caches[alias]
    cache.set("warm", "x", 300)
    for _ in range(hits):
        cache.get("warm")
    for i in range(misses):
        cache.get(f"cold-{i}")
    site_metrics.flush_now()


def stats_json() -> dict[str, Any]:
    out = io.StringIO()
    call_command("cache", "stats", "--json", stdout=out)
    return {entry["alias"]: entry for entry in json.loads(out.getvalue())["aliases"]}


def cells(page: Any, alias: str) -> dict[str, str]:
    row = page.locator(f'tr[data-alias="{alias}"]')
    names = row.locator("[data-field]").evaluate_all("els => els.map(e => e.dataset.field)")
    return {name: row.locator(f'[data-field="{name}"]').inner_text().strip() for name in names}


def test_viewer_opens_cache_from_the_index_and_sees_the_command_s_figures(
    live_server: Any, page: Any, caches_with_redis: str, shots: Path
) -> None:
    alias = caches_with_redis
    traffic(alias, hits=7, misses=3)
    traffic("default", hits=2, misses=1)
    log_in(page, live_server.url, make_user("viewer", "view_cachepanel"))
    page.locator(f'#content-main a[href="{BASE}"]').first.click()
    page.wait_for_url(live_server.url + BASE)
    assert page.locator("#cache-aliases").is_visible()
    shown = {a: cells(page, a) for a in ("default", alias)}
    told = stats_json()  # the same moment: reading the page made no cache traffic
    for name, row in shown.items():
        entry = told[name]
        counted = entry["site"] or entry["process"]
        assert row["backend"] == entry["backend"]
        assert row["location"] == entry["location"]
        for field in ("hits", "misses", "errors"):
            assert row[field] == str(counted[field]), (name, field)
    assert told[alias]["site_scope"] == "site"
    assert shown[alias]["hits"] == "7"
    assert shown[alias]["misses"] == "3"
    assert shown[alias]["hour_ratio"] == "70.0%"
    assert shown[alias]["status"] == "up"
    assert shown[alias]["entries"] == str(told[alias]["server"]["entries"])
    page.screenshot(path=str(shots / "admin-list.png"))


def test_alias_page_charts_the_traffic_and_refreshes_live(
    live_server: Any, page: Any, caches_with_redis: str, shots: Path
) -> None:
    alias = caches_with_redis
    traffic(alias, hits=40, misses=10)
    log_in(page, live_server.url, make_user("viewer", "view_cachepanel"))
    page.goto(f"{live_server.url}{BASE}{alias}/")
    points = page.locator("#chart-ops-hour circle.point")
    values = [float(v) for v in points.evaluate_all("els => els.map(e => e.dataset.value)")]
    expected = sum(ops_of(row) for row in site_metrics.series(alias, minutes=60))
    assert expected >= 51  # 40 hits, 10 misses, 1 set
    assert sum(values) == expected
    ratios = page.locator("#chart-ratio-hour circle.point")
    assert ratios.count() >= 1  # one per minute the traffic fell in (one, unless it straddled)
    assert page.locator('[data-figure="hour_ratio"]').inner_text() == "80.0%"
    assert page.locator('[data-figure="hits"]').first.inner_text() == "40"
    page.screenshot(path=str(shots / "admin-alias.png"), full_page=True)

    traffic(alias, hits=10, misses=0)  # the page fetches its JSON every 5 s
    page.wait_for_function("document.querySelector('[data-refreshed]') !== null", timeout=20_000)
    page.wait_for_function(
        "document.querySelector('[data-figure=\"hits\"]').textContent === '50'", timeout=20_000
    )
    # The refreshed charts are SVG again (parsed as SVG, drawn at their size), not text.
    refreshed = page.evaluate(
        """() => {
            const svg = document.getElementById("chart-ops-hour");
            return [svg instanceof SVGSVGElement, svg.getBoundingClientRect().height,
                    svg.querySelectorAll("circle.point").length];
        }"""
    )
    assert refreshed[0] is True
    assert refreshed[1] > 100
    assert refreshed[2] >= 1

    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(c) for c in background[background.index("(") + 1 : -1].split(",")[:3]]
    assert max(channels) < 80, background  # the admin's dark theme, and our page with it
    page.screenshot(path=str(shots / "admin-alias-dark.png"))


def test_clear_with_confirmation_empties_the_alias(
    live_server: Any, page: Any, caches_with_redis: str, shots: Path
) -> None:
    alias = caches_with_redis
    cache = caches[alias]
    cache.set_many({"a": 1, "b": 2, "c": 3})
    log_in(page, live_server.url, make_user("actor", "view_cachepanel", "clear_cache"))
    page.goto(f"{live_server.url}{BASE}{alias}/")
    page.click("#clear-link")
    page.wait_for_url(f"{live_server.url}{BASE}{alias}/clear/")
    assert cache.get("a") == 1  # the confirmation page changes nothing
    page.screenshot(path=str(shots / "admin-clear-confirm.png"))
    page.click("#confirm-button")
    page.wait_for_url(f"{live_server.url}{BASE}{alias}/")
    assert "Cleared cache alias" in page.locator(".messagelist").inner_text()
    assert cache.get_many(["a", "b", "c"]) == {}
    entry = LogEntry.objects.get()
    assert (entry.user.username, entry.object_id) == ("actor", alias)


def test_staff_without_permission_gets_403_and_no_link(live_server: Any, page: Any) -> None:
    log_in(page, live_server.url, make_user("nobody"))
    assert page.locator(f'a[href="{BASE}"]').count() == 0
    response = page.goto(live_server.url + BASE)
    assert response.status == 403
    assert page.goto(f"{live_server.url}{BASE}default/").status == 403


def test_anonymous_user_is_sent_to_the_login_page(live_server: Any, page: Any) -> None:
    page.goto(f"{live_server.url}{BASE}default/")
    assert page.url.startswith(f"{live_server.url}/admin/login/?next=")
    assert page.locator("#id_username").is_visible()


def test_action_post_without_csrf_token_is_refused(live_server: Any, page: Any) -> None:
    caches["default"].set("kept", 1)
    log_in(page, live_server.url, make_user("actor", "view_cachepanel", "clear_cache"))
    page.goto(f"{live_server.url}{BASE}default/")
    status = page.evaluate(
        """async (url) => {
            const body = new FormData();
            body.append("confirmed", "yes");
            const response = await fetch(url, {method: "POST", body, credentials: "same-origin"});
            return response.status;
        }""",
        f"{BASE}default/clear/",
    )
    assert status == 403
    assert caches["default"].get("kept") == 1
    assert not LogEntry.objects.exists()


def test_a_cached_script_renders_as_text(
    live_server: Any, page: Any, caches_with_redis: str, shots: Path
) -> None:
    alias = caches_with_redis
    caches[alias].set("evil", "<script>alert(1)</script>", 300)
    dialogs: list[str] = []

    def opened(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", opened)
    log_in(page, live_server.url, make_user("actor", "view_cachepanel", "clear_cache"))
    page.goto(f"{live_server.url}{BASE}{alias}/")
    page.fill("#lookup-key", "evil")
    page.click("#lookup-form input[type=submit]")
    page.wait_for_url(f"{live_server.url}{BASE}{alias}/key/")
    assert "<script>alert(1)</script>" in page.locator("#key-preview").inner_text()
    assert page.locator("#key-preview script").count() == 0
    page.screenshot(path=str(shots / "admin-key.png"))
    assert dialogs == []
