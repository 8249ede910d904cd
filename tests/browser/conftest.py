"""Real Chromium (Debian's ``chromium``) driven by Playwright's sync API, against
pytest-django's ``live_server``.

Skipped, with the reason, only where the browser cannot be had and cannot be installed
(not root); as root (CI, scripts/test.sh installs it) a missing browser fails the tests.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from pytest_django.fixtures import Settings

from tests.servers import Server

LAUNCH_ARGS = [
    "--no-sandbox",  # root needs it
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Where screenshots go: LEXIGRAM_SCREENSHOTS (``docs/images`` refreshes the docs' ones),
#: else a temporary directory.
SCREENSHOTS_ENV = "LEXIGRAM_SCREENSHOTS"


def _unavailable(reason: str) -> None:
    if os.geteuid() == 0:
        pytest.fail(f"{reason}; as root scripts/test.sh installs it (ensure_browser)")
    pytest.skip(f"{reason}, and installing it needs root (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (the test dependency group)")
    path = shutil.which("chromium")
    if path is None:
        _unavailable("Debian's chromium is not installed")
    # Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls
    # while one runs; the test bodies here make them between browser steps on purpose.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=path, headless=True, args=LAUNCH_ARGS
            )
            yield launched
            launched.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def caches_with_redis(settings: Settings, redis_server: Server) -> str:
    """CACHES of the tests plus a Redis alias ``redis`` on our own server; its name."""
    settings.CACHES = {
        **settings.CACHES,
        "redis": {
            "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": f"admin{uuid.uuid4().hex[:8]}",
        },
    }
    return "redis"


def make_user(name: str, *codenames: str) -> User:
    user = User.objects.create_user(name, password="pw-" + name, is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def log_in(page: Any, base_url: str, user: User) -> None:
    page.goto(base_url + "/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw-" + user.username)
    page.click("input[type=submit]")
    page.wait_for_url(base_url + "/admin/")
