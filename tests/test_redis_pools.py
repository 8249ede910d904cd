"""The lean connection pools behind RedisCache: bound, waiting, fork safety, clean reuse.

Every test talks to a real redis-server started for the session (tests/servers.py).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
import uuid
from typing import Any

import pytest
import redis

from lexigram_cache_django.backends.redis.pools import NO_CONNECTION, AsyncPool, SyncPool

from .servers import Server

pytestmark = pytest.mark.redis


def clients_named(server: Server, name: str) -> int:
    """Connections the server has open under CLIENT SETNAME ``name``."""
    raw = redis.Redis(host=server.host, port=server.port)
    try:
        return sum(1 for c in raw.client_list() if c["name"] == name)
    finally:
        raw.close()


def test_reuses_one_connection_for_sequential_commands(redis_server: Server) -> None:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    pool = SyncPool(redis_server.url, max_connections=5, timeout=1.0, client_name=name)
    for i in range(50):
        pool.execute("SET", f"pool:{name}:{i}", i)
    assert pool.created == 1
    assert clients_named(redis_server, name) == 1
    pool.disconnect()
    assert pool.created == 0


def test_threads_beyond_the_bound_wait_for_a_connection(redis_server: Server) -> None:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    pool = SyncPool(redis_server.url, max_connections=2, timeout=5.0, client_name=name)
    results: list[Any] = []

    def work() -> None:
        # A blocking command holds its connection for 50 ms, so 8 threads contend for 2.
        results.append(pool.execute("BLPOP", f"pool:{name}:never", 0.05))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [None] * 8
    assert pool.created == 2
    assert clients_named(redis_server, name) <= 2
    pool.disconnect()


def test_a_full_pool_raises_connection_error_after_its_timeout(redis_server: Server) -> None:
    pool = SyncPool(redis_server.url, max_connections=1, timeout=0.2)
    held = pool.acquire()
    try:
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError, match=NO_CONNECTION):
            pool.execute("PING")
        assert 0.15 <= time.monotonic() - started < 2.0
    finally:
        pool.release(held)
    assert pool.execute("PING") == b"PONG"  # the released connection serves again


def test_an_interrupted_command_does_not_leave_its_reply_for_the_next(
    redis_server: Server,
) -> None:
    """A reply left unread on a reused connection would answer the next command wrongly."""
    pool = SyncPool(redis_server.url, max_connections=1, timeout=1.0)
    pool.execute("SET", "pool:interrupt", "first")
    conn = pool.acquire()
    pool.release(conn)

    def read_raises(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # e.g. Ctrl-C between sending and reading

    conn.read_response = read_raises
    with pytest.raises(KeyboardInterrupt):
        pool.execute("GET", "pool:interrupt")
    del conn.read_response  # the class's method again
    assert pool.execute("SET", "pool:interrupt", "second") == b"OK"  # not the old b"first"
    assert pool.execute("GET", "pool:interrupt") == b"second"
    pool.execute("DEL", "pool:interrupt")


def test_redis_error_replies_raise_and_keep_the_connection(redis_server: Server) -> None:
    pool = SyncPool(redis_server.url, max_connections=1, timeout=1.0)
    pool.execute("SET", "pool:str", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        pool.execute("LPUSH", "pool:str", "y")
    assert pool.pipeline([("GET", "pool:str"), ("LPUSH", "pool:str", "y"), ("DEL", "pool:str")])[
        0
    ] == (b"x")
    assert pool.created == 1


def _child_uses_pool(pool: SyncPool, key: str, queue: Any) -> None:
    try:
        pool.execute("SET", key, os.getpid())
        queue.put((pool.created, pool.execute("GET", key)))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        queue.put(repr(exc))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connections(redis_server: Server) -> None:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    pool = SyncPool(redis_server.url, max_connections=3, timeout=1.0, client_name=name)
    pool.execute("PING")
    assert pool.created == 1
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_uses_pool, args=(pool, f"pool:{name}", queue))
    child.start()
    created_in_child, value = queue.get(timeout=10)
    child.join(10)
    assert child.exitcode == 0
    assert created_in_child == 1  # a fresh pool: the parent's socket was not inherited
    assert int(value) == child.pid
    assert pool.execute("PING") == b"PONG"  # the parent's connection is unharmed
    assert pool.created == 1
    pool.execute("DEL", f"pool:{name}")


async def test_tasks_beyond_the_bound_wait_their_turn(redis_server: Server) -> None:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    pool = AsyncPool(redis_server.url, timeout=5.0, max_connections=3, client_name=name)
    order: list[int] = []

    async def work(i: int) -> Any:
        reply = await pool.execute("BLPOP", f"pool:{name}:never", 0.02)
        order.append(i)
        return reply

    assert await asyncio.gather(*(work(i) for i in range(30))) == [None] * 30
    assert pool.created == 3
    assert clients_named(redis_server, name) <= 3
    await pool.aclose()


async def test_a_full_async_pool_raises_connection_error_after_its_timeout(
    redis_server: Server,
) -> None:
    pool = AsyncPool(redis_server.url, timeout=0.2, max_connections=1)
    held = await pool.acquire()
    with pytest.raises(redis.ConnectionError, match=NO_CONNECTION):
        await pool.execute("PING")
    pool.release(held)
    assert await pool.execute("PING") == b"PONG"
    await pool.aclose()


async def test_a_cancelled_waiter_does_not_lose_a_connection(redis_server: Server) -> None:
    pool = AsyncPool(redis_server.url, timeout=5.0, max_connections=1)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.execute("PING"))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    pool.release(held)
    assert await asyncio.wait_for(pool.execute("PING"), 2) == b"PONG"
    assert pool.created == 1
    await pool.aclose()


async def test_a_cancelled_command_disconnects_its_connection(redis_server: Server) -> None:
    """Cancelled mid-reply, the connection must not serve the next command stale data."""
    pool = AsyncPool(redis_server.url, timeout=5.0, max_connections=1)
    await pool.execute("SET", "pool:acancel", "first")
    task = asyncio.create_task(pool.execute("BLPOP", "pool:never", 1))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pool.execute("GET", "pool:acancel") == b"first"
    await pool.execute("DEL", "pool:acancel")
    await pool.aclose()


def kill_clients_named(server: Server, name: str) -> None:
    raw = redis.Redis(host=server.host, port=server.port)
    try:
        for client in raw.client_list():
            if client["name"] == name:
                raw.client_kill_filter(_id=client["id"])
    finally:
        raw.close()


def test_an_idle_connection_closed_by_the_server_is_replaced_quietly(
    redis_server: Server,
) -> None:
    """Server ``timeout``, a proxy or a restart closing an idle connection is no error."""
    name = f"pool-{uuid.uuid4().hex[:8]}"
    pool = SyncPool(redis_server.url, max_connections=1, timeout=1.0, client_name=name)
    pool.idle_check_after = 0.0  # every checkout counts as "idle for a while"
    pool.execute("SET", f"pool:{name}", "v")
    kill_clients_named(redis_server, name)
    assert pool.execute("GET", f"pool:{name}") == b"v"
    assert pool.created == 1
    pool.execute("DEL", f"pool:{name}")
    pool.disconnect()


async def test_an_idle_async_connection_closed_by_the_server_is_replaced_quietly(
    redis_server: Server,
) -> None:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    pool = AsyncPool(redis_server.url, timeout=1.0, max_connections=1, client_name=name)
    pool.idle_check_after = 0.0
    await pool.execute("SET", f"pool:{name}", "v")
    kill_clients_named(redis_server, name)
    await asyncio.sleep(0.05)  # let the close reach the client's transport
    assert await pool.execute("GET", f"pool:{name}") == b"v"
    assert pool.created == 1
    await pool.execute("DEL", f"pool:{name}")
    await pool.aclose()


def test_connections_closed_under_load_are_retried_once_on_a_fresh_socket(
    redis_server: Server,
) -> None:
    """A restart or failover closes busy connections: their next commands still succeed."""
    name = f"pool-{uuid.uuid4().hex[:8]}"
    pool = SyncPool(redis_server.url, max_connections=3, timeout=1.0, client_name=name)
    pool.idle_check_after = float("inf")  # only the retry can save these commands
    held = [pool.acquire() for _ in range(3)]
    for conn in held:
        conn.send_command("PING")
        assert conn.read_response() == b"PONG"
    for conn in held:
        pool.release(conn)
    kill_clients_named(redis_server, name)
    assert [pool.execute("SET", f"pool:{name}:{i}", i) for i in range(3)] == [b"OK"] * 3
    kill_clients_named(redis_server, name)
    assert pool.pipeline([("GET", f"pool:{name}:1"), ("DEL", f"pool:{name}:1")]) == [b"1", 1]
    assert pool.created == 3
    pool.disconnect()


async def test_async_connections_closed_under_load_are_retried_once(redis_server: Server) -> None:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    pool = AsyncPool(redis_server.url, timeout=1.0, max_connections=2, client_name=name)
    pool.idle_check_after = float("inf")
    assert list(await asyncio.gather(pool.execute("PING"), pool.execute("PING"))) == [b"PONG"] * 2
    kill_clients_named(redis_server, name)
    await asyncio.sleep(0.05)
    assert await pool.execute("SET", f"pool:{name}", "v") == b"OK"
    kill_clients_named(redis_server, name)
    await asyncio.sleep(0.05)
    assert await pool.pipeline([("GET", f"pool:{name}"), ("DEL", f"pool:{name}")]) == [b"v", 1]
    await pool.aclose()


def test_a_backend_rides_out_its_connections_being_closed(redis_server: Server) -> None:
    from lexigram_cache_django.backends.redis import RedisCache

    name = f"pool-{uuid.uuid4().hex[:8]}"
    cache = RedisCache(redis_server.url, {"KEY_PREFIX": name, "OPTIONS": {"client_name": name}})
    cache.set_many({"a": 1, "b": "two"})
    kill_clients_named(redis_server, name)
    assert cache.get_many(["a", "b"]) == {"a": 1, "b": "two"}
    kill_clients_named(redis_server, name)
    assert cache.set("c", 3) is True
    assert cache.stats()["errors"] == 0
    cache.clear()


def test_a_dead_server_still_fails_at_once_without_retries() -> None:
    from .servers import start_redis

    server = start_redis()
    pool = SyncPool(server.url, max_connections=1, timeout=1.0, socket_connect_timeout=0.5)
    pool.idle_check_after = float("inf")
    assert pool.execute("PING") == b"PONG"
    server.stop()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        pool.execute("PING")  # stale socket, then a refused reconnect: no further tries
    assert time.monotonic() - started < 1.0
