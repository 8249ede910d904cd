"""Shared fixtures: real servers started for the session, fresh caches per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import hypothesis
import pytest
from django.conf import settings
from django.core.cache import caches
from django.utils.module_loading import import_string

from lexigram_cache_django.backends.base import LexigramCache
from tests.servers import Server, start_memcached, start_redis
from tests.topology_servers import Topology, start_cluster

# Hypothesis: "ci" (scripts/test.sh sets HYPOTHESIS_PROFILE=ci) is reproducible: the same
# examples every run, and no example database, so a failure saved once cannot fail every later
# run. The deadline is generous: these run on small, shared 2-core machines.
hypothesis.settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=timedelta(seconds=2),
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.register_profile("dev", print_blob=True, deadline=timedelta(seconds=2))
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _clear_configured_caches() -> None:
    """Empty the CACHES aliases before each test: a test's rows are rolled back without
    invalidating anything, so pages and results it cached must not reach the next test."""
    for alias in settings.CACHES:
        caches[alias].clear()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    """A redis-server of our own on a free loopback port, for the whole session."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Topology]:
    """A 3-primary Redis Cluster of our own on free loopback ports, for the session."""
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[Server]:
    server = start_memcached()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def memcached_servers() -> Iterator[list[Server]]:
    """Two memcached processes, for the multi-server tests."""
    servers = [start_memcached(), start_memcached()]
    yield servers
    for server in servers:
        server.stop()


BACKENDS = ("memory", "redis", "memcached")
NETWORKED = ("redis", "memcached")

BACKEND_PATHS = {
    "memory": "lexigram_cache_django.backends.memory.MemoryCache",
    "redis": "lexigram_cache_django.backends.redis.RedisCache",
    "memcached": "lexigram_cache_django.backends.memcached.MemcachedCache",
}


def backend_config(kind: str, request: pytest.FixtureRequest, **options: Any) -> dict[str, Any]:
    """A CACHES entry for ``kind`` with a unique prefix/location, on this session's servers."""
    unique = uuid.uuid4().hex[:12]
    config: dict[str, Any] = {"BACKEND": BACKEND_PATHS[kind], "OPTIONS": options}
    if kind == "memory":
        config["LOCATION"] = f"test-{unique}"
    elif kind == "redis":
        config["LOCATION"] = request.getfixturevalue("redis_server").url
        config["KEY_PREFIX"] = f"t{unique}"
    else:
        config["LOCATION"] = request.getfixturevalue("memcached_server").address
        config["KEY_PREFIX"] = f"t{unique}"
    return config


def build_backend(config: dict[str, Any]) -> LexigramCache:
    """Instantiate a backend from a CACHES entry, as Django's cache handler does."""
    params = dict(config)
    backend_cls = import_string(params.pop("BACKEND"))
    location = params.pop("LOCATION", "")
    backend: LexigramCache = backend_cls(location, params)
    return backend


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def make_cache(
    backend_kind: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., LexigramCache]]:
    """Factory: ``make_cache(**OPTIONS)`` -> a fresh backend of the parametrized kind."""
    made: list[LexigramCache] = []

    def factory(**options: Any) -> LexigramCache:
        backend = build_backend(backend_config(backend_kind, request, **options))
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close()


@pytest.fixture
def any_cache(make_cache: Callable[..., LexigramCache]) -> LexigramCache:
    """A fresh backend of each kind (memory, redis, memcached)."""
    return make_cache()
