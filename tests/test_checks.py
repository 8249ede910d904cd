"""manage.py check reports bad cache settings with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from lexigram_cache_django.checks import check_caches

MEMORY = "lexigram_cache_django.backends.memory.MemoryCache"
REDIS = "lexigram_cache_django.backends.redis.RedisCache"
MEMCACHED = "lexigram_cache_django.backends.memcached.MemcachedCache"
ROOT = Path(__file__).resolve().parent.parent


def problems(options: dict[str, Any], backend: str = MEMORY, **extra: Any) -> list[str]:
    caches = {"default": {"BACKEND": backend, "LOCATION": "checks", "OPTIONS": options}}
    with override_settings(CACHES=caches, **extra):
        return [f"{m.id}: {m.msg} {m.hint or ''}" for m in check_caches()]


def test_a_valid_configuration_has_no_problems() -> None:
    assert problems({"MAX_ENTRIES": 100, "TTL_JITTER": 0.1, "XFETCH_BETA": 1}) == []
    assert problems({"SERIALIZER": "msgpack", "COMPRESS_MIN_BYTES": 1024}, REDIS) == []
    assert problems({"SOCKET_TIMEOUT": 0.5, "no_delay": True}, MEMCACHED) == []


def test_a_misspelled_option_gets_a_suggestion() -> None:
    (found,) = problems({"TTL_JITER": 0.1})
    assert "lexigram_cache.E002" in found and "'TTL_JITER'" in found
    assert "Did you mean 'TTL_JITTER'?" in found


def test_options_of_another_backend_are_refused() -> None:
    (found,) = problems({"SOCKET_TIMEOUT": 1.0}, MEMORY)
    assert "unknown option 'SOCKET_TIMEOUT' for MemoryCache" in found


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"TTL_JITTER": 1.5}, "TTL_JITTER must be between 0.0 and 0.99"),
        ({"MAX_ENTRIES": "many"}, "MAX_ENTRIES must be int, not str"),
        ({"STAMPEDE_WAIT_TIMEOUT": -1}, "STAMPEDE_WAIT_TIMEOUT must be >= 0.0"),
        ({"FAIL_SILENTLY": "yes"}, "FAIL_SILENTLY must be True or False"),
        ({"COMPRESS_MIN_BYTES": True}, "COMPRESS_MIN_BYTES must be int, not bool"),
    ],
)
def test_bad_values_are_reported(options: dict[str, Any], message: str) -> None:
    found = problems(options)
    assert any(message in line for line in found), found


def test_an_unloadable_serializer_or_compressor_is_reported() -> None:
    (found,) = problems({"SERIALIZER": "yaml"}, REDIS)
    assert "lexigram_cache.E005" in found and "'yaml'" in found
    (found,) = problems({"COMPRESS_MIN_BYTES": 10, "COMPRESSOR": "brotli"}, REDIS)
    assert "'brotli'" in found


def test_lexigram_cache_setting_keys_are_checked() -> None:
    found = problems({}, LEXIGRAM_CACHE={"INVALIDATE_MODEL": ["petclinic.Pet"]})
    assert len(found) == 1
    assert "unknown key 'INVALIDATE_MODEL'" in found[0]
    assert "Did you mean 'INVALIDATE_MODELS'?" in found[0]


def test_other_backends_are_left_to_django() -> None:
    assert problems({"ANYTHING": 1}, "django.core.cache.backends.locmem.LocMemCache") == []


def test_manage_py_check_fails_on_a_bad_option() -> None:
    env = dict(os.environ, CACHE_OPTIONS='{"TTL_JITER": 0.1}', DATABASE_PATH=":memory:")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "lexigram_cache.E002" in result.stderr
    assert "Did you mean 'TTL_JITTER'?" in result.stderr
