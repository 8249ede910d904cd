"""The asyncio memcached client against real memcached processes (and a few fake servers).

Short timeouts keep the fault tests fast; every server here is started (and signalled) by
this module only, on a free loopback port.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymemcache.exceptions import MemcacheClientError, MemcacheError

from lexigram_cache_django.backends.memcached.aio import (
    AsyncMemcachedClient,
    MemcachedClientReplyError,
    MemcachedConnectError,
    MemcachedServerFailure,
    MemcachedServerReplyError,
    MemcachedTimeoutError,
)
from lexigram_cache_django.backends.memcached.wire import Connection, read_values
from tests.servers import Server, free_port, start_memcached

pytestmark = pytest.mark.memcached

TIMEOUT = 0.5
CONNECT_TIMEOUT = 0.25


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A memcached of this module's own (flush_all must not touch other tests' data)."""
    srv = start_memcached()
    yield srv
    srv.stop()


def make_client(port: int, **kw: float) -> AsyncMemcachedClient:
    options: dict[str, float] = {"timeout": TIMEOUT, "connect_timeout": CONNECT_TIMEOUT, **kw}
    return AsyncMemcachedClient(
        "127.0.0.1",
        port,
        timeout=options["timeout"],
        connect_timeout=options["connect_timeout"],
        max_connections=int(options.get("max_connections", 4)),
    )


@pytest.fixture
async def client(server: Server) -> AsyncIterator[AsyncMemcachedClient]:
    c = make_client(server.port)
    yield c
    await c.aclose()


def k(name: str, request: pytest.FixtureRequest) -> bytes:
    return f"{request.node.name[:40]}:{name}".encode()


# -- commands -------------------------------------------------------------------------------


async def test_get_set_add_replace_delete(
    client: AsyncMemcachedClient, request: pytest.FixtureRequest
) -> None:
    a, b = k("a", request), k("b", request)
    assert await client.get(a) is None
    assert await client.set(a, b"1", 60) is True
    assert await client.get(a) == b"1"
    assert await client.add(a, b"2") is False
    assert await client.add(b, b"2") is True
    assert await client.replace(k("none", request), b"x") is False
    assert await client.replace(b, b"3") is True
    assert await client.get(b) == b"3"
    assert await client.delete(a) is True
    assert await client.delete(a) is False
    assert await client.get(a) is None
    assert await client.set(a, b"") is True
    assert await client.get(a) == b""


async def test_get_many_and_set_many(
    client: AsyncMemcachedClient, request: pytest.FixtureRequest
) -> None:
    items = {k(f"m{i}", request): f"value {i}".encode() for i in range(100)}
    assert await client.set_many(items, 60) == []
    missing = k("missing", request)
    got = await client.get_many([*items, missing])
    assert got == items
    assert await client.get_many([]) == {}
    assert await client.set_many({}) == []


async def test_set_many_reports_what_was_not_stored(
    client: AsyncMemcachedClient, request: pytest.FixtureRequest
) -> None:
    big = b"x" * (2 * 1024 * 1024)  # over memcached's 1 MiB item size: SERVER_ERROR
    a, too_big, b = k("a", request), k("big", request), k("b", request)
    assert await client.set_many({a: b"1", too_big: big, b: b"2"}) == [too_big]
    assert await client.get_many([a, too_big, b]) == {a: b"1", b: b"2"}
    with pytest.raises(MemcachedServerReplyError):
        await client.set(too_big, big)
    assert await client.get(a) == b"1"  # the next call is unaffected


async def test_big_values(client: AsyncMemcachedClient, request: pytest.FixtureRequest) -> None:
    value = os.urandom(900 * 1024)
    key, small = k("big", request), k("small", request)
    assert await client.set(key, value) is True
    assert await client.get(key) == value
    await client.set(small, b"s")
    assert await client.get_many([small, key]) == {small: b"s", key: value}
    assert await client.set_many({key: value[::-1], small: b"t"}) == []
    assert await client.get(key) == value[::-1]


async def test_gets_and_cas_conflict(
    client: AsyncMemcachedClient, request: pytest.FixtureRequest
) -> None:
    key = k("c", request)
    assert await client.gets(key) == (None, None)
    assert await client.cas(key, b"x", 12345) is False  # NOT_FOUND
    await client.set(key, b"v1")
    value, token = await client.gets(key)
    assert value == b"v1" and isinstance(token, int)
    await client.set(key, b"v2")  # someone else writes: the token is stale
    assert await client.cas(key, b"mine", token) is False
    assert await client.get(key) == b"v2"
    value, token = await client.gets(key)
    assert token is not None
    assert await client.cas(key, b"mine", token, 60) is True
    assert await client.get(key) == b"mine"


async def test_touch(client: AsyncMemcachedClient, request: pytest.FixtureRequest) -> None:
    key = k("t", request)
    assert await client.touch(key, 10) is False
    await client.set(key, b"v")
    assert await client.touch(key, 10) is True


async def test_incr_decr(client: AsyncMemcachedClient, request: pytest.FixtureRequest) -> None:
    key, text = k("n", request), k("text", request)
    assert await client.incr(key, 1) is None
    await client.set(key, b"10")
    assert await client.incr(key, 5) == 15
    assert await client.decr(key, 3) == 12
    assert await client.decr(key, 100) == 0  # memcached stops at zero
    await client.set(text, b"abc")
    with pytest.raises(MemcachedClientReplyError) as info:
        await client.incr(text, 1)
    assert isinstance(info.value, MemcacheClientError)
    assert not isinstance(info.value, MemcachedServerFailure)
    assert await client.incr(key, 1) == 1  # the client goes on working


async def test_delete_many(client: AsyncMemcachedClient, request: pytest.FixtureRequest) -> None:
    keys = [k(f"d{i}", request) for i in range(10)]
    await client.set_many({key: b"v" for key in keys[:6]})
    assert await client.delete_many(keys) == 6
    assert await client.get_many(keys) == {}
    assert await client.delete_many([]) == 0


async def test_version_stats_flush_all(client: AsyncMemcachedClient) -> None:
    assert (await client.version())[0].isdigit()
    stats = await client.stats()
    assert "curr_connections" in stats and "version" in stats
    await client.set(b"flush-me", b"v")
    await client.flush_all()
    assert await client.get(b"flush-me") is None


# -- pool behaviour ------------------------------------------------------------------------


async def test_waiters_are_served_first_come_first_served(server: Server) -> None:
    client = make_client(server.port, max_connections=1)
    order: list[int] = []

    async def call(i: int) -> None:
        await client.get(b"fifo")
        order.append(i)

    try:
        await asyncio.gather(*(call(i) for i in range(50)))
    finally:
        await client.aclose()
    assert order == list(range(50))


async def test_200_tasks_on_a_healthy_server_none_slower_than_100ms(server: Server) -> None:
    client = make_client(server.port, timeout=1.0)
    latencies: list[float] = []
    keys = [f"h{i}".encode() for i in range(200)]
    await client.set_many(dict.fromkeys(keys, b"v" * 100))

    async def worker(i: int) -> None:
        for n in range(25):
            t0 = time.perf_counter()
            if n % 3 == 0:
                await client.set(keys[i], b"w" * 100)
            else:
                assert await client.get(keys[(i + n) % 200]) is not None
            latencies.append(time.perf_counter() - t0)

    try:
        await asyncio.gather(*(worker(i) for i in range(200)))
    finally:
        await client.aclose()
    latencies.sort()
    p99, worst = latencies[int(len(latencies) * 0.99)], latencies[-1]
    print(f"healthy, 200 tasks: {len(latencies)} calls, p99 {p99 * 1e3:.1f} ms, ", end="")
    print(f"max {worst * 1e3:.1f} ms")
    assert worst < 0.1


def test_pools_per_event_loop_and_closed_loops_are_forgotten(server: Server) -> None:
    client = make_client(server.port)

    async def use() -> bytes | None:
        await client.set(b"loops", b"v")
        return await client.get(b"loops")

    assert asyncio.run(use()) == b"v"
    assert asyncio.run(use()) == b"v"  # a new loop: a new pool; the old loop's is dropped
    assert len(client._pools) == 1


async def test_an_idle_connection_closed_by_the_server_is_not_used() -> None:
    """A fake server that answers one command per connection, then closes it (a restart)."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readline()
        writer.write(b"END\r\n")
        await writer.drain()
        writer.close()

    fake = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = fake.sockets[0].getsockname()[1]
    client = make_client(port)
    try:
        assert await client.get(b"a") is None
        await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
        assert await client.get(b"a") is None
        assert connections == 2
    finally:
        await client.aclose()
        fake.close()


async def test_a_connection_closed_after_its_handover_to_a_waiter_is_not_written_to(
    server: Server,
) -> None:
    """A finished call hands its connection to the oldest waiter while it is open; it may
    close before that task resumes (the transport closes at once, ``connection_lost`` a
    loop step later). The waiter takes another: on Python 3.12 writing to it raised
    ``TypeError`` (CPython gh-136234); on 3.11 the bytes were dropped and the call timed out.
    """
    client = make_client(server.port, max_connections=1)
    try:
        await client.set(b"handover", b"v")
        _, pool = client._pool()
        (conn,) = pool._idle

        async def first() -> bytes | None:
            value = await client.get(b"handover")  # its connection now the waiter's
            assert conn.transport is not None
            conn.transport.close()  # closed before the waiter resumes
            return value

        started = time.perf_counter()
        results = await asyncio.gather(first(), client.set(b"handover", b"w"))
        assert list(results) == [b"v", True]
        assert time.perf_counter() - started < TIMEOUT / 2  # no timeout waited out
        assert await client.get(b"handover") == b"w"
    finally:
        await client.aclose()


async def test_cancelled_mid_reply_the_connection_is_closed_not_reused() -> None:
    """A fake server: the first connection sends half a reply and stalls; later ones answer."""
    connections: list[asyncio.StreamReader] = []
    stalled = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(reader)
        first = len(connections) == 1
        while line := await reader.readline():
            if first:
                writer.write(b"VALUE a 0 10\r\nabc")
                stalled.set()
            else:
                assert line == b"get a\r\n"
                writer.write(b"END\r\n")
            await writer.drain()
        writer.close()

    fake = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = fake.sockets[0].getsockname()[1]
    client = make_client(port, max_connections=1)
    try:
        task = asyncio.create_task(client.get(b"a"))
        await stalled.wait()
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await client.get(b"a") is None  # a new connection, not the half-read one
        assert len(connections) == 2
        await asyncio.sleep(0.05)
        assert connections[0].at_eof()  # the first was closed by the client
    finally:
        await client.aclose()
        fake.close()


# -- faults ----------------------------------------------------------------------------------


async def _timed_calls(
    make_call: Callable[[int], Awaitable[object]], tasks: int, calls: int
) -> tuple[list[float], list[BaseException]]:
    latencies: list[float] = []
    errors: list[BaseException] = []

    async def worker(i: int) -> None:
        for n in range(calls):
            t0 = time.perf_counter()
            try:
                await make_call(i * calls + n)
            except Exception as exc:
                errors.append(exc)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return latencies, errors


async def test_refused_port_every_call_fails_within_connect_timeout() -> None:
    client = make_client(free_port(), connect_timeout=CONNECT_TIMEOUT)
    try:
        latencies, errors = await _timed_calls(
            lambda n: client.get(b"k") if n % 2 else client.set(b"k", b"v"), 200, 3
        )
    finally:
        await client.aclose()
    assert len(errors) == 600
    assert all(isinstance(e, MemcachedConnectError) for e in errors)
    assert all(isinstance(e, MemcachedServerFailure | ConnectionError) for e in errors)
    print(f"refused: max {max(latencies) * 1e3:.1f} ms")
    assert max(latencies) < CONNECT_TIMEOUT


async def test_frozen_server_every_call_returns_within_its_timeout() -> None:
    frozen = start_memcached()
    client = make_client(frozen.port, timeout=0.5)
    try:
        await client.set_many({b"a": b"1", b"b": b"2"})
        frozen.freeze()
        try:
            latencies, errors = await _timed_calls(
                lambda n: client.get(b"a") if n % 2 else client.set(b"b", b"3"), 200, 1
            )
        finally:
            frozen.thaw()
        assert len(errors) == 200
        assert all(isinstance(e, MemcachedTimeoutError) for e in errors)
        assert all(isinstance(e, TimeoutError | MemcacheError) for e in errors)
        print(f"frozen: max {max(latencies) * 1e3:.1f} ms (timeout 500 ms)")
        assert max(latencies) < 1.1 * 0.5
        assert await client.get(b"a") == b"1"  # thawed: fresh connections work
    finally:
        await client.aclose()
        frozen.stop()


async def test_connect_timeout_fails_the_call_and_the_queue_behind_it() -> None:
    """A listener whose backlog is full drops SYNs: connecting hangs (loopback only)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    await asyncio.sleep(0.05)
    client = make_client(port, timeout=1.0, connect_timeout=0.2)
    try:
        latencies, errors = await _timed_calls(lambda n: client.get(b"k"), 200, 1)
    finally:
        await client.aclose()
        for sock in [*fillers, listener]:
            sock.close()
    assert len(errors) == 200
    assert all(isinstance(e, MemcachedConnectError) for e in errors)
    print(f"connect timeout 200 ms: max {max(latencies) * 1e3:.1f} ms")
    assert max(latencies) < 1.1 * 0.2 + 0.05


# -- the incremental parser, whatever the chunk boundaries ----------------------------------

values_st = st.dictionaries(
    st.binary(min_size=1, max_size=12).map(lambda b: b.hex().encode()),
    st.binary(max_size=3000),
    max_size=8,
)


@settings(derandomize=True, database=None, max_examples=150, deadline=None)
@given(values=values_st, cuts=st.lists(st.integers(min_value=0, max_value=30000), max_size=12))
def test_reply_parsed_the_same_however_it_is_split(
    values: dict[bytes, bytes], cuts: list[int]
) -> None:
    reply = b"".join(
        b"VALUE %b 0 %d\r\n%b\r\n" % (key, len(value), value) for key, value in values.items()
    )
    reply += b"END\r\n"
    bounds = sorted({0, len(reply), *(c for c in cuts if c < len(reply))})
    loop = asyncio.new_event_loop()
    try:
        conn = Connection()
        fut: asyncio.Future[dict[bytes, bytes]] = loop.create_future()
        conn.fut, conn.parser = fut, read_values
        for start, stop in itertools.pairwise(bounds):
            assert not fut.done()
            conn.data_received(reply[start:stop])
        assert fut.done() and fut.result() == values
        assert conn.buf == b"" and not conn.lost
    finally:
        loop.close()


def test_error_reply_fails_the_call() -> None:
    loop = asyncio.new_event_loop()
    try:
        conn = Connection()
        fut: asyncio.Future[dict[bytes, bytes]] = loop.create_future()
        conn.fut, conn.parser = fut, read_values
        conn.data_received(b"SERVER_ERROR out of memory\r\n")
        assert isinstance(fut.exception(), MemcachedServerReplyError)
    finally:
        loop.close()


async def test_a_stalled_call_times_out_while_calls_after_it_complete() -> None:
    """The pool's one deadline timer: the oldest call stalls, later ones finish meanwhile."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if b"stall" not in line:  # a stalled request is never answered
                writer.write(b"END\r\n")
                await writer.drain()
        writer.close()

    fake = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = fake.sockets[0].getsockname()[1]
    client = make_client(port, timeout=0.3, max_connections=2)
    try:
        t0 = time.perf_counter()
        stalled = asyncio.create_task(client.get(b"stall"))
        await asyncio.sleep(0.02)
        for _ in range(50):  # all on the second connection
            assert await client.get(b"b") is None
        with pytest.raises(MemcachedTimeoutError):
            await stalled
        assert 0.3 <= time.perf_counter() - t0 < 0.33
        await asyncio.sleep(0.4)  # idle: the timer has nothing left to watch
        assert await client.get(b"c") is None
        t1 = time.perf_counter()
        with pytest.raises(MemcachedTimeoutError):  # the timer is set again
            await client.get(b"stall-again")
        assert 0.3 <= time.perf_counter() - t1 < 0.33
    finally:
        await client.aclose()
        fake.close()
