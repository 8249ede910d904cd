"""Shared fixtures: real servers started for the session, fresh caches per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import Server, start_memcached, start_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    """A redis-server of our own on a free loopback port, for the whole session."""
    server = start_redis()
    yield server
    server.stop()


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
