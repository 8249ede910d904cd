"""The example project: its sample data, pages, admin and env-driven cache settings."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from example_project.cache_config import BACKENDS, cache_settings_from_env
from example_project.petclinic.models import Owner, Pet, Vaccine

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_sample_data() -> str:
    out = StringIO()
    call_command("load_sample_data", stdout=out)
    return out.getvalue()


@pytest.fixture
def sample_data(db: None) -> None:
    load_sample_data()


# --- load_sample_data ------------------------------------------------------------------


@pytest.mark.django_db
def test_load_sample_data_creates_owners_pets_vaccines_and_admin() -> None:
    output = load_sample_data()

    assert Owner.objects.count() == 20
    assert Pet.objects.count() == 60
    assert Vaccine.objects.count() == 6
    assert Pet.vaccines.through.objects.exists()
    assert Pet.objects.filter(birth_date__isnull=True).exists()
    admin = get_user_model()._default_manager.get(username="admin")
    assert admin.is_superuser
    assert admin.is_staff
    assert admin.check_password("admin")
    assert "password 'admin'" in output


@pytest.mark.django_db
def test_load_sample_data_is_idempotent() -> None:
    load_sample_data()
    first = sorted(Pet.objects.values_list("owner__email", "name", "species", "birth_date"))
    output = load_sample_data()

    assert sorted(Pet.objects.values_list("owner__email", "name", "species", "birth_date")) == (
        first
    )
    assert Owner.objects.count() == 20
    assert Vaccine.objects.count() == 6
    assert get_user_model()._default_manager.count() == 1
    assert "(0 new rows)" in output
    assert "not creating the demo admin" in output


@pytest.mark.django_db
def test_load_sample_data_leaves_an_existing_superuser_alone() -> None:
    get_user_model()._default_manager.create_superuser("boss", "boss@example.com", "pw")
    load_sample_data()

    assert not get_user_model()._default_manager.filter(username="admin").exists()


# --- pages -----------------------------------------------------------------------------


@pytest.mark.usefixtures("sample_data")
def test_index_links_to_the_lists(client: Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert reverse("petclinic:owner-list") == "/owners/"
    assert reverse("petclinic:pet-list") == "/pets/"
    assert b'href="/owners/"' in response.content
    assert b'href="/pets/"' in response.content


@pytest.mark.usefixtures("sample_data")
def test_owner_list_shows_every_owner(client: Client) -> None:
    response = client.get("/owners/")

    assert response.status_code == 200
    for owner in Owner.objects.all():
        assert owner.name in response.text
        assert owner.get_absolute_url() in response.text


@pytest.mark.usefixtures("sample_data")
def test_owner_detail_shows_the_owner_and_their_pets(client: Client) -> None:
    owner = Owner.objects.get(email="alice.anders@example.com")

    response = client.get(f"/owners/{owner.pk}/")

    assert response.status_code == 200
    assert "Alice Anders" in response.text
    assert owner.pets.count() == 3
    for pet in owner.pets.all():
        assert pet.name in response.text
        assert pet.get_absolute_url() in response.text


@pytest.mark.usefixtures("sample_data")
def test_pet_list_shows_every_pet(client: Client) -> None:
    response = client.get("/pets/")

    assert response.status_code == 200
    for pet in Pet.objects.select_related("owner"):
        assert pet.get_absolute_url() in response.text
        assert pet.owner.get_absolute_url() in response.text


@pytest.mark.usefixtures("sample_data")
def test_pet_detail_shows_species_owner_and_vaccines(client: Client) -> None:
    pet = Pet.objects.filter(vaccines__isnull=False).select_related("owner").first()
    assert pet is not None

    response = client.get(f"/pets/{pet.pk}/")

    assert response.status_code == 200
    assert pet.name in response.text
    assert pet.get_species_display() in response.text
    assert pet.owner.name in response.text
    for vaccine in pet.vaccines.all():
        assert vaccine.name in response.text


@pytest.mark.parametrize("url", ["/", "/owners/", "/pets/"])
@pytest.mark.django_db
def test_pages_work_on_an_empty_database(client: Client, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 200


@pytest.mark.parametrize("url", ["/owners/999999/", "/pets/999999/"])
@pytest.mark.django_db
def test_missing_pk_is_404(client: Client, url: str) -> None:
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("url", ["/", "/owners/", "/pets/"])
@pytest.mark.django_db
def test_footer_shows_render_time_with_microseconds(client: Client, url: str) -> None:
    response = client.get(url)

    assert "Rendered at" in response.text
    rendered = response.text.split('<time id="rendered-at">', 1)[1].split("</time>", 1)[0]
    # e.g. "2025-01-31 12:34:56.123456 UTC"
    date_part, time_part, _tz = rendered.split(" ")
    assert len(date_part) == 10
    assert len(time_part.split(".")[1]) == 6


# --- admin -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["pet", "owner", "vaccine"])
@pytest.mark.usefixtures("sample_data")
def test_admin_changelist_loads_for_the_demo_admin(client: Client, model: str) -> None:
    assert client.login(username="admin", password="admin")

    response = client.get(f"/admin/petclinic/{model}/")

    assert response.status_code == 200


@pytest.mark.usefixtures("sample_data")
def test_admin_pet_search_and_change_page(client: Client) -> None:
    client.login(username="admin", password="admin")
    pet = Pet.objects.get(owner__email="alice.anders@example.com", name="Biscuit")

    search = client.get("/admin/petclinic/pet/", {"q": "Biscuit"})
    change = client.get(f"/admin/petclinic/pet/{pet.pk}/change/")

    assert search.status_code == 200
    assert "Biscuit" in search.text
    assert change.status_code == 200


@pytest.mark.django_db
def test_admin_requires_login(client: Client) -> None:
    response = client.get("/admin/petclinic/pet/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    call_command("makemigrations", "petclinic", "--check", "--dry-run", stdout=StringIO())


# --- cache_settings_from_env -----------------------------------------------------------


def test_default_is_lexigram_memory_cache() -> None:
    assert cache_settings_from_env({}) == {
        "default": {
            "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
            "LOCATION": "example-project",
            "TIMEOUT": 300,
            "KEY_PREFIX": "example",
            "OPTIONS": {},
        }
    }


@pytest.mark.parametrize(
    ("name", "backend", "location"),
    [
        ("memory", "lexigram_cache_django.backends.memory.MemoryCache", "example-project"),
        ("redis", "lexigram_cache_django.backends.redis.RedisCache", "redis://127.0.0.1:6379/1"),
        ("memcached", "lexigram_cache_django.backends.memcached.MemcachedCache", "127.0.0.1:11211"),
        ("locmem", "django.core.cache.backends.locmem.LocMemCache", "example-project"),
        ("REDIS", "lexigram_cache_django.backends.redis.RedisCache", "redis://127.0.0.1:6379/1"),
    ],
)
def test_short_backend_names(name: str, backend: str, location: str) -> None:
    caches = cache_settings_from_env({"CACHE_BACKEND": name})

    assert list(caches) == ["default"]
    assert caches["default"]["BACKEND"] == backend
    assert caches["default"]["LOCATION"] == location


def test_dotted_backend_path_is_used_as_is() -> None:
    caches = cache_settings_from_env(
        {
            "CACHE_BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "CACHE_LOCATION": "/tmp/example-cache",
        }
    )

    assert caches["default"]["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert caches["default"]["LOCATION"] == "/tmp/example-cache"


def test_dotted_backend_path_without_location() -> None:
    caches = cache_settings_from_env(
        {"CACHE_BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    )

    assert caches["default"]["LOCATION"] == ""


def test_timeout_prefix_location_and_options_from_env() -> None:
    caches = cache_settings_from_env(
        {
            "CACHE_BACKEND": "redis",
            "CACHE_LOCATION": "redis://cache.internal:6380/2",
            "CACHE_TIMEOUT": "60",
            "CACHE_KEY_PREFIX": "demo",
            "CACHE_OPTIONS": '{"socket_timeout": 0.5, "fail_open": true}',
        }
    )

    assert caches["default"] == {
        "BACKEND": BACKENDS["redis"],
        "LOCATION": "redis://cache.internal:6380/2",
        "TIMEOUT": 60,
        "KEY_PREFIX": "demo",
        "OPTIONS": {"socket_timeout": 0.5, "fail_open": True},
    }


@pytest.mark.parametrize("name", ["redis", "memcached"])
def test_comma_separated_locations_become_a_list(name: str) -> None:
    caches = cache_settings_from_env(
        {"CACHE_BACKEND": name, "CACHE_LOCATION": "10.0.0.1:1, 10.0.0.2:2,"}
    )

    assert caches["default"]["LOCATION"] == ["10.0.0.1:1", "10.0.0.2:2"]


def test_timeout_none_means_never_expire() -> None:
    assert cache_settings_from_env({"CACHE_TIMEOUT": "None"})["default"]["TIMEOUT"] is None


def test_tiered_defaults_to_memory_l1_and_redis_l2() -> None:
    caches = cache_settings_from_env({"CACHE_BACKEND": "tiered"})

    assert caches == {
        "default": {
            "BACKEND": "lexigram_cache_django.backends.tiered.TieredCache",
            "TIMEOUT": 300,
            "KEY_PREFIX": "example",
            "OPTIONS": {"L1": "local", "L2": "shared"},
        },
        "local": {
            "BACKEND": BACKENDS["memory"],
            "LOCATION": "example-project-l1",
            "TIMEOUT": 300,
            "KEY_PREFIX": "example",
            "OPTIONS": {},
        },
        "shared": {
            "BACKEND": BACKENDS["redis"],
            "LOCATION": "redis://127.0.0.1:6379/1",
            "TIMEOUT": 300,
            "KEY_PREFIX": "example",
            "OPTIONS": {},
        },
    }


def test_tiered_l2_backend_location_and_options() -> None:
    caches = cache_settings_from_env(
        {
            "CACHE_BACKEND": "tiered",
            "CACHE_L2_BACKEND": "memcached",
            "CACHE_LOCATION": "10.0.0.1:11211,10.0.0.2:11211",
            "CACHE_OPTIONS": '{"L1_TIMEOUT": 5}',
        }
    )

    assert caches["default"]["OPTIONS"] == {"L1": "local", "L2": "shared", "L1_TIMEOUT": 5}
    assert caches["shared"]["BACKEND"] == BACKENDS["memcached"]
    assert caches["shared"]["LOCATION"] == ["10.0.0.1:11211", "10.0.0.2:11211"]
    assert caches["local"]["BACKEND"] == BACKENDS["memory"]


@pytest.mark.parametrize(
    "environ",
    [
        {"CACHE_BACKEND": "mongodb"},
        {"CACHE_BACKEND": "tiered", "CACHE_L2_BACKEND": "tiered"},
        {"CACHE_BACKEND": "tiered", "CACHE_L2_BACKEND": "nope"},
        {"CACHE_TIMEOUT": "five minutes"},
        {"CACHE_OPTIONS": "{not json"},
        {"CACHE_OPTIONS": "[1, 2]"},
    ],
)
def test_bad_values_are_configuration_errors(environ: dict[str, str]) -> None:
    with pytest.raises(ImproperlyConfigured):
        cache_settings_from_env(environ)


# --- the project's own settings --------------------------------------------------------


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py in a child process with the example settings and a clean env."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CACHE_", "DJANGO_", "CELERY_", "DATABASE_"))
    }
    environ.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_example_settings_pass_django_checks(tmp_path: Path) -> None:
    script = (
        "from django.conf import settings as s; "
        "print(s.CACHES['default']['BACKEND'], s.DEBUG, s.CELERY_TASK_ALWAYS_EAGER, "
        "s.SECRET_KEY_FALLBACKS, s.ALLOWED_HOSTS)"
    )
    check = run_manage("check", DATABASE_PATH=str(tmp_path / "db.sqlite3"))
    shell = run_manage(
        "shell",
        "-v0",
        "-c",
        script,
        DATABASE_PATH=str(tmp_path / "db.sqlite3"),
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY_FALLBACKS="old1, old2",
        DJANGO_ALLOWED_HOSTS="demo.example.com",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )

    assert check.returncode == 0, check.stderr
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip().split(maxsplit=3) == [
        "lexigram_cache_django.backends.memory.MemoryCache",
        "False",
        "False",
        "['old1', 'old2'] ['127.0.0.1', 'localhost', 'demo.example.com']",
    ]
