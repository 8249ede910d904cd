"""manage.py check reports bad cache settings with an id, a hint, and never a traceback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import CheckMessage
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from lexigram_cache_django import conf
from lexigram_cache_django.checks import check_caches

MEMORY = "lexigram_cache_django.backends.memory.MemoryCache"
REDIS = "lexigram_cache_django.backends.redis.RedisCache"
MEMCACHED = "lexigram_cache_django.backends.memcached.MemcachedCache"
LOCATIONS = {MEMORY: "checks", REDIS: "redis://127.0.0.1:1/0", MEMCACHED: "127.0.0.1:1"}
ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cretPassw0rd"


def messages(
    options: Any = None, backend: str = MEMORY, location: Any = None, **extra: Any
) -> list[CheckMessage]:
    """The check's messages for one alias; each must carry an id and a hint."""
    entry: dict[str, Any] = {"BACKEND": backend, "LOCATION": location or LOCATIONS[backend]}
    if options is not None:
        entry["OPTIONS"] = options
    with override_settings(CACHES={"default": entry}, **extra):
        found = check_caches()
    for message in found:
        assert message.id and message.id.startswith("lexigram_cache."), message
        assert message.hint, message
        assert SECRET not in f"{message.msg} {message.hint}"
    return found


def problems(options: Any = None, backend: str = MEMORY, **extra: Any) -> list[str]:
    return [f"{m.id}: {m.msg} {m.hint}" for m in messages(options, backend, **extra)]


def only(options: Any, backend: str = MEMORY, **extra: Any) -> str:
    found = problems(options, backend, **extra)
    assert len(found) == 1, found
    return found[0]


def test_a_valid_configuration_has_no_problems() -> None:
    assert problems({"MAX_ENTRIES": 100, "TTL_JITTER": 0.1, "XFETCH_BETA": 1}) == []
    assert problems({"SERIALIZER": "msgpack", "COMPRESS_MIN_BYTES": 1024}, REDIS) == []
    assert problems({"SOCKET_TIMEOUT": 0.5, "no_delay": True}, MEMCACHED) == []
    assert problems({"max_connections": 10, "health_check_interval": 5}, REDIS) == []
    assert problems({"ASYNC_CLIENT": "thread", "retry_attempts": 2}, MEMCACHED) == []
    assert problems(None) == []


def test_options_not_a_dict_is_e001() -> None:
    found = only(["MAX_ENTRIES", 10])
    assert found.startswith("lexigram_cache.E001") and "not list" in found


def test_a_misspelled_option_gets_a_suggestion() -> None:
    found = only({"TTL_JITER": 0.1})
    assert found.startswith("lexigram_cache.E002") and "'TTL_JITER'" in found
    assert "Did you mean 'TTL_JITTER'?" in found


def test_options_of_another_backend_are_refused() -> None:
    found = only({"SOCKET_TIMEOUT": 1.0}, MEMORY)
    assert found.startswith("lexigram_cache.E002")
    assert "SOCKET_TIMEOUT is not an option of the memory backend" in found
    assert "memcached, redis" in found


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        ({"TTL_JITTER": 1.5}, "E004", "TTL_JITTER must be between 0.0 and 0.99"),
        ({"MAX_ENTRIES": "many"}, "E003", "MAX_ENTRIES must be an integer, not str"),
        ({"STAMPEDE_WAIT_TIMEOUT": -1}, "E004", "STAMPEDE_WAIT_TIMEOUT must be >= 0.0"),
        ({"FAIL_SILENTLY": "yes"}, "E003", "FAIL_SILENTLY must be True or False, not str"),
        ({"FAIL_SILENTLY": 0}, "E003", "FAIL_SILENTLY must be True or False, not int"),
        ({"COMPRESS_MIN_BYTES": True}, "E003", "COMPRESS_MIN_BYTES must be an integer or None"),
        ({"XFETCH_BETA": float("nan")}, "E004", "XFETCH_BETA must be >= 0.0"),
        ({"TAG_TIMEOUT": None}, "E003", "TAG_TIMEOUT must not be None"),
    ],
)
def test_bad_values_are_reported(options: dict[str, Any], code: str, message: str) -> None:
    found = only(options)
    assert found.startswith(f"lexigram_cache.{code}") and message in found, found


@pytest.mark.parametrize("backend", [REDIS, MEMCACHED])
def test_numbers_given_as_strings_are_reported_without_a_traceback(backend: str) -> None:
    fast = only({"SOCKET_TIMEOUT": "fast"}, backend)
    assert fast.startswith("lexigram_cache.E003") and "SOCKET_TIMEOUT must be a number" in fast
    quoted = only({"SOCKET_TIMEOUT": "1.0"}, backend)
    assert "Write the number without quotes: SOCKET_TIMEOUT: 1.0, not '1.0'." in quoted


def test_networked_ranges_and_choices() -> None:
    assert only({"MAX_CONNECTIONS": 0}, REDIS).startswith("lexigram_cache.E004")
    assert only({"POOL_TIMEOUT": -1}, REDIS).startswith("lexigram_cache.E004")
    found = only({"ASYNC_CLIENT": "gevent"}, MEMCACHED)
    assert found.startswith("lexigram_cache.E004") and "'asyncio', 'thread'" in found


def test_an_unloadable_serializer_or_compressor_is_reported() -> None:
    found = only({"SERIALIZER": "yaml"}, REDIS)
    assert found.startswith("lexigram_cache.E005") and "'yaml'" in found
    found = only({"COMPRESS_MIN_BYTES": 10, "COMPRESSOR": "brotli"}, REDIS)
    assert found.startswith("lexigram_cache.E005") and "'brotli'" in found


@pytest.mark.parametrize(
    ("backend", "option", "suggestion"),
    [
        (REDIS, "max_conections", "max_connections"),
        (REDIS, "health_check_intervall", "health_check_interval"),
        (REDIS, "retry_attemps", None),
        (MEMCACHED, "retry_attemps", "retry_attempts"),
        (MEMCACHED, "max_conections", None),
    ],
)
def test_client_option_typos_are_checked_against_the_real_signature(
    backend: str, option: str, suggestion: str | None
) -> None:
    found = only({option: 1}, backend)
    assert found.startswith("lexigram_cache.E006") and repr(option) in found
    if suggestion:
        assert f"Did you mean {suggestion!r}?" in found


def test_a_client_option_only_the_sync_redis_pool_takes_is_reported() -> None:
    found = only({"queue_class": list}, REDIS)
    assert found.startswith("lexigram_cache.E006") and "redis.asyncio" in found


def test_ssl_options_are_accepted_for_rediss_only() -> None:
    options = {"ssl_cert_reqs": "none"}
    assert only(options, REDIS).startswith("lexigram_cache.E006")
    assert messages(options, REDIS, "rediss://127.0.0.1:1/0") == []


@pytest.mark.parametrize(
    ("backend", "option"),
    [(REDIS, name) for name in conf.REFUSED_CLIENT_OPTIONS["redis"]]
    + [(MEMCACHED, name) for name in conf.REFUSED_CLIENT_OPTIONS["memcached"]],
)
def test_client_options_the_backend_refuses_are_e007(backend: str, option: str) -> None:
    found = only({option: "x.Y"}, backend)
    kind = "redis" if backend == REDIS else "memcached"
    assert found.startswith("lexigram_cache.E007")
    assert conf.REFUSED_CLIENT_OPTIONS[kind][option] in found


def test_lower_case_options_on_the_memory_backend_are_a_warning() -> None:
    (found,) = messages({"max_entries": 10})
    assert found.id == "lexigram_cache.W002" and not found.is_serious()


@pytest.mark.parametrize("option", sorted(conf.DJANGO_REDIS_OPTIONS))
def test_django_redis_option_names_get_our_equivalent(option: str) -> None:
    found = only({option: "x"}, REDIS)
    assert found.startswith("lexigram_cache.E008")
    assert conf.DJANGO_REDIS_OPTIONS[option] in found


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("IGNORE_EXCEPTIONS", "FAIL_SILENTLY"),
        ("SOCKET_CONNECT_TIMEOUT", "CONNECT_TIMEOUT"),
        ("CONNECTION_POOL_KWARGS", "MAX_CONNECTIONS"),
    ],
)
def test_django_redis_hints_name_our_option(option: str, expected: str) -> None:
    assert expected in only({option: 1}, REDIS)


def test_django_redis_serializer_and_compressor_paths_are_translated() -> None:
    path = "django_redis.serializers.json.JSONSerializer"
    found = only({"SERIALIZER": path}, REDIS)
    assert found.startswith("lexigram_cache.E008") and "SERIALIZER='json'" in found
    path = "django_redis.compressors.zstd.ZStdCompressor"
    found = only({"COMPRESSOR": path, "COMPRESS_MIN_BYTES": 100}, REDIS)
    assert found.startswith("lexigram_cache.E008") and "COMPRESSOR='zstd'" in found


@pytest.mark.parametrize(
    ("backend", "location", "words"),
    [
        (REDIS, f"redis:/:{SECRET}@127.0.0.1:6379/0", "Two slashes"),
        (REDIS, f"redis://:{SECRET}@127.0.0.1:99999/0", "between 1 and 65535"),
        (REDIS, f"redis://u:{SECRET}@127.0.0.1:port/0", "between 1 and 65535"),
        (REDIS, f"redis://:{SECRET}@127.0.0.1:0", "between 1 and 65535"),
        (REDIS, f"http://:{SECRET}@example.com", "redis://host:6379/0"),
        (REDIS, f"redis+sentinel://:{SECRET}@h1:26379,h2:26379", "service"),
        (REDIS, f"redis+cluster://:{SECRET}@h1:7000,h2:notaport/0", "bad host"),
        (REDIS, f"redis://127.0.0.1:6379/0,127.0.0.1:{SECRET}@x", "redis://"),
        (REDIS, f"redis://:{SECRET}@h/zero", "database"),
        (REDIS, "unix://", "socket path"),
        (REDIS, f"[redis://:{SECRET}@h:1, 'redis://h:70000']", "redis://"),
        (REDIS, ["redis://h:1", f"rediss://u:{SECRET}@h:65536/1"], "65535"),
        (REDIS, " ; ", "LOCATION is empty"),
        (MEMCACHED, "127.0.0.1:0", "between 1 and 65535"),
        (MEMCACHED, "127.0.0.1:11211,127.0.0.1:big", "between 1 and 65535"),
        (MEMCACHED, f"memcached://u:{SECRET}@127.0.0.1:11211", "host:port"),
        (MEMCACHED, "::1:11211", "IPv6"),
        (MEMCACHED, "unix:", "socket path"),
        (MEMCACHED, ":11211", "no host"),
        (REDIS, 6379, "string or a list"),
    ],
)
def test_bad_locations_are_e009_with_the_password_masked(
    backend: str, location: Any, words: str
) -> None:
    found = [m for m in messages({}, backend, location) if m.id == "lexigram_cache.E009"]
    assert found, messages({}, backend, location)
    assert any(words in f"{m.msg} {m.hint}" for m in found), found


@pytest.mark.parametrize(
    ("backend", "location"),
    [
        (REDIS, "redis://127.0.0.1:6379/0"),
        (REDIS, "redis://:pw@[::1]:6379"),
        (REDIS, "rediss://u:pw@h:6380/1?password=x"),
        (REDIS, "redis://h1:6379;redis://h2:6379, redis://h3"),
        (REDIS, "unix:///tmp/redis.sock?db=1&password=pw"),
        (MEMCACHED, "127.0.0.1:11211;[::1]:11211,unix:/tmp/mc.sock"),
        (MEMCACHED, ["h1", "/tmp/mc.sock"]),
    ],
)
def test_good_locations_pass(backend: str, location: Any) -> None:
    assert messages({}, backend, location) == []


def test_lexigram_cache_setting_keys_are_checked() -> None:
    found = only({}, LEXIGRAM_CACHE={"INVALIDATE_MODEL": ["petclinic.Pet"]})
    assert found.startswith("lexigram_cache.E011") and "unknown key 'INVALIDATE_MODEL'" in found
    assert "Did you mean 'INVALIDATE_MODELS'?" in found
    assert only({}, LEXIGRAM_CACHE=["INVALIDATE_MODELS"]).startswith("lexigram_cache.E010")


def test_invalidate_caches_must_name_lexigram_aliases_of_caches() -> None:
    found = only({}, LEXIGRAM_CACHE={"INVALIDATE_CACHES": ["defualt"]})
    assert found.startswith("lexigram_cache.E012") and "'defualt'" in found
    assert "Did you mean 'default'?" in found
    found = only({}, LEXIGRAM_CACHE={"INVALIDATE_CACHES": "default"})
    assert found.startswith("lexigram_cache.E012") and "list or a tuple" in found
    caches = {
        "default": {"BACKEND": MEMORY, "LOCATION": "a"},
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    with override_settings(CACHES=caches, LEXIGRAM_CACHE={"INVALIDATE_CACHES": ["locmem"]}):
        (message,) = check_caches()
    assert message.id == "lexigram_cache.E012" and "has no tags" in message.msg and message.hint


def test_invalidate_models_must_be_installed_models() -> None:
    found = problems({}, LEXIGRAM_CACHE={"INVALIDATE_MODELS": ["petclinic.Pett", "nolabel", 3]})
    assert len(found) == 3 and all(f.startswith("lexigram_cache.E013") for f in found), found
    assert "Did you mean 'petclinic.Pet'?" in found[0]
    found = problems({}, LEXIGRAM_CACHE={"INVALIDATE_MODELS": "petclinic.Pet"})
    assert len(found) == 1 and found[0].startswith("lexigram_cache.E013"), found


def test_e014_reports_what_the_backend_constructor_refuses() -> None:
    location = "127.0.0.1:1,127.0.0.1:2"
    found = messages({"ASYNC_CLIENT": "asyncio"}, MEMCACHED, location)
    (message,) = found
    assert message.id == "lexigram_cache.E014" and "single host:port server" in message.msg


# -- the app missing from INSTALLED_APPS --------------------------------------------------------


def _without_the_app() -> list[str]:
    from django.conf import settings

    return [app for app in settings.INSTALLED_APPS if app != conf.APP_NAME]


def test_the_app_missing_is_w001_when_lexigram_cache_is_set() -> None:
    setting = {"INVALIDATE_MODELS": ["petclinic.Pet"]}
    with override_settings(INSTALLED_APPS=_without_the_app(), LEXIGRAM_CACHE=setting):
        (found,) = conf.check_app_installed()
        out, err = io.StringIO(), io.StringIO()
        call_command("check", stdout=out, stderr=err)
    assert found.id == "lexigram_cache.W001" and found.hint and not found.is_serious()
    assert "lexigram_cache.W001" in err.getvalue()
    with override_settings(LEXIGRAM_CACHE=setting):
        assert conf.check_app_installed() == []  # installed
    with override_settings(INSTALLED_APPS=_without_the_app(), LEXIGRAM_CACHE={}):
        assert conf.check_app_installed() == []  # nothing needs it


# -- never a traceback, never a password ------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"BACKEND": REDIS, "LOCATION": f"redis:/:{SECRET}@127.0.0.1:6379/0"},
        {"BACKEND": REDIS, "LOCATION": None, "OPTIONS": ("a", "b")},
        {"BACKEND": REDIS, "LOCATION": [1, None], "OPTIONS": {1: 2, "SOCKET_TIMEOUT": "x"}},
        {"BACKEND": MEMCACHED, "LOCATION": object(), "OPTIONS": {"POOL_SIZE": []}},
        {"BACKEND": MEMCACHED, "LOCATION": "h:1,h:2", "OPTIONS": {"ASYNC_CLIENT": "asyncio"}},
        {"BACKEND": MEMORY, "OPTIONS": "MAX_ENTRIES=3"},
        {"BACKEND": REDIS, "LOCATION": "redis://[::1", "OPTIONS": {"password": SECRET}},
    ],
)
def test_no_exception_escapes_manage_py_check(entry: dict[str, Any]) -> None:
    caches = {"default": {"BACKEND": MEMORY, "LOCATION": "ok"}, "bad": entry}
    with override_settings(CACHES=caches):
        found = check_caches()
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("check", stdout=out, stderr=err)
        except SystemCheckError as exc:
            text = str(exc)
        else:
            text = out.getvalue() + err.getvalue()
    assert found and all(m.hint for m in found)
    assert SECRET not in text and SECRET not in repr([(m.msg, m.hint) for m in found])


def test_manage_py_check_fails_on_a_bad_option() -> None:
    result = _manage_py_check(CACHE_OPTIONS='{"TTL_JITER": 0.1}')
    assert result.returncode != 0
    assert "lexigram_cache.E002" in result.stderr
    assert "Did you mean 'TTL_JITTER'?" in result.stderr


def test_manage_py_check_masks_a_bad_location_and_shows_no_traceback() -> None:
    location = f"redis:/:{SECRET}@127.0.0.1:6379/0"
    result = _manage_py_check(CACHE_BACKEND="redis", CACHE_LOCATION=location)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "lexigram_cache.E009" in output
    assert SECRET not in output
    assert "Traceback" not in output


def _settings_module(tmp_path: Path, body: str) -> str:
    """A settings module: the example project's settings, then ``body``."""
    (tmp_path / "check_settings.py").write_text(
        f"from example_project.settings import *  # noqa: F403\n{body}\n"
    )
    return "check_settings"


def test_manage_py_check_reports_bad_lexigram_cache_entries_instead_of_a_traceback(
    tmp_path: Path,
) -> None:
    body = 'LEXIGRAM_CACHE = {"INVALIDATE_MODELS": ["petclinic.Pett"], "INVALIDATE_CACHES": ["x"]}'
    result = _manage_py_check(
        DJANGO_SETTINGS_MODULE=_settings_module(tmp_path, body), PYTHONPATH=str(tmp_path)
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert "lexigram_cache.E012" in output and "lexigram_cache.E013" in output
    assert "Did you mean 'petclinic.Pet'?" in output


def test_manage_py_check_warns_when_the_app_is_not_installed(tmp_path: Path) -> None:
    body = 'INSTALLED_APPS = [a for a in INSTALLED_APPS if a != "lexigram_cache_django"]'
    result = _manage_py_check(
        DJANGO_SETTINGS_MODULE=_settings_module(tmp_path, body), PYTHONPATH=str(tmp_path)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output
    assert "lexigram_cache.W001" in output


def _manage_py_check(**environ: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_PATH=":memory:")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    extra_path = environ.pop("PYTHONPATH", "")
    env.update(environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(ROOT), extra_path, os.environ.get("PYTHONPATH", "")] if p
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
