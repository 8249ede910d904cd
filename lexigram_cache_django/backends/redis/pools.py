"""Connection pools for RedisCache's commands: lean, bounded, fork-safe.

redis-py's pools do more per checkout than a cache needs. ``BlockingConnectionPool`` takes
a queue's condition twice, records observability counters and polls the socket
(``can_read``, a system call) on every ``get_connection``: about 8 us per command on this
project's benchmark machines, where a whole loopback ``GET`` takes 35. These pools keep the
parts a cache relies on and drop the rest:

* **LIFO reuse** of idle connections: a list ``pop``/``append`` (atomic, so the common
  path takes no lock), most recently used first so idle ones can time out server-side.
* **A bound**: at most ``max_connections`` per pool. A thread beyond it waits up to
  ``timeout`` seconds for a connection to come back, and an asyncio task waits its turn in
  FIFO order. Past the wait both get ``redis.ConnectionError("No connection available.")``,
  as with ``BlockingConnectionPool``, which RedisCache treats as the server being
  unavailable (fail open).
* **One time budget per async call**: a task that queued for a connection reads its reply
  for what is left of ``socket_timeout``, so the pool wait and the reply wait together
  never exceed it (a frozen server costs a call one timeout, not two).
* **Fork safety**: a child process starts with empty pools (``os.register_at_fork``), so
  parent and child never share a socket.
* **Idle connections are checked before reuse**, as redis-py checks every one: a
  connection idle for over ``IDLE_CHECK_AFTER`` seconds may have been closed by the server
  (its ``timeout`` setting), a proxy or a restart, so it is polled once and reconnected if
  so, rather than failing the command that picks it up. A busy connection pays one clock
  read instead of a ``poll`` system call.
* **redis-py's own connections**: ``Connection``, ``SSLConnection`` or
  ``UnixDomainSocketConnection`` with hiredis parsing, AUTH, SELECT, timeouts and retries,
  built from the same ``from_url`` parsing as redis-py's pools. Each pool also keeps that
  redis-py pool (``redis_pool``) for ``get_client()``'s raw ``redis.Redis``, which opens its
  own connections when it is used.

A connection goes back to the pool whether or not its command failed. redis-py
disconnects a connection on a socket error and it reconnects on its next command; a caller
interrupted between sending and reading (any exception other than a Redis error reply)
disconnects it first, so no connection is reused with a reply left unread.

**A stale connection is retried once.** When a command fails with a connection error on a
connection that was already open, the server closed that connection since its last use
(a restart, a failover, a proxy's idle timeout), almost always before the command arrived.
The pool reconnects and sends it once more, as redis-py's own ``Redis`` retries such
errors, so a restart under load costs no failed calls. A connection that cannot be
opened fails at once (fail open, no backoff), and so does a timeout (the server may still
be working on it). A pipeline is sent again only if none of its replies had been read.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import ResponseError

from ...circuit import CircuitBreaker
from ...metrics import LatencyHistogram
from . import fake

NO_CONNECTION = "No connection available."
#: Seconds a connection may sit idle before it is polled on checkout (see the docstring).
IDLE_CHECK_AFTER = 1.0
_monotonic = time.monotonic


def _redis_pool(pool_class: Any, url: str, asynchronous: bool, **options: Any) -> Any:
    """redis-py's pool for ``url``; ``fakeredis://`` (users' unit tests) goes to fake.py."""
    if fake.is_fake(url):
        return fake.fake_pool(pool_class, url, asynchronous, **options)
    return pool_class.from_url(url, **options)


class _LostMidReply(redis.ConnectionError):
    """The connection broke after some of a pipeline's replies were read: not resent."""


def _is_connected(conn: Any) -> bool:
    """Whether a sync connection has a socket open (redis-py connects on first use)."""
    return getattr(conn, "_sock", None) is not None


def _closed_or_dirty(conn: Any) -> bool:
    """Whether an idle sync connection was closed by its peer or has a reply waiting."""
    if not _is_connected(conn):  # disconnected: connects on its next command
        return False
    try:
        return bool(conn.can_read())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return True


class SyncPool:
    """Connections to one server for threads; see the module docstring."""

    #: The server's circuit breaker, set by the client that made the pool (see client.py).
    breaker: CircuitBreaker
    #: The server's latency histogram (metrics.histogram_for), set with the breaker.
    latency: LatencyHistogram

    def __init__(self, url: str, *, redis_pool: Any = None, **options: Any) -> None:
        #: redis-py's pool for ``get_client()``, and where our connection settings come from
        #: (given for Sentinel: a ``SentinelConnectionPool``, whose connections find the
        #: service's primary or a replica when they connect).
        if redis_pool is None:
            redis_pool = _redis_pool(redis.BlockingConnectionPool, url, False, **options)
        self.redis_pool = redis_pool
        self.connection_class: type[Any] = self.redis_pool.connection_class
        self.connection_kwargs: dict[str, Any] = self.redis_pool.connection_kwargs
        self.max_connections: int = self.redis_pool.max_connections
        self.timeout: float | None = getattr(redis_pool, "timeout", options.get("timeout"))
        self.idle_check_after = IDLE_CHECK_AFTER
        self._reset()
        _sync_pools.add(self)

    def _reset(self) -> None:
        self._idle: list[tuple[Any, float]] = []  # (connection, idle since), newest last
        self._created = 0
        self._waiting = 0
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)

    @property
    def created(self) -> int:
        """Connections this pool has open or lent out (at most ``max_connections``)."""
        return self._created

    def acquire(self) -> Any:
        """An idle connection, a new one while under the bound, or one freed in time."""
        try:
            conn, idle_since = self._idle.pop()
        except IndexError:
            return self._acquire_slow()
        if _monotonic() - idle_since > self.idle_check_after and _closed_or_dirty(conn):
            conn.disconnect()  # it reconnects on its command
        return conn

    def _acquire_slow(self) -> Any:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with self._lock:
            while True:
                if self._idle:
                    return self._idle.pop()[0]  # just returned: not idle long
                if self._created < self.max_connections:
                    self._created += 1  # a slot for a new connection, made outside the lock
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise redis.ConnectionError(NO_CONNECTION)
                self._waiting += 1
                try:
                    self._returned.wait(remaining)
                finally:
                    self._waiting -= 1
        try:  # not connected yet: redis-py connects on the first command
            return self.connection_class(**self.connection_kwargs)
        except BaseException:
            with self._lock:
                self._created -= 1
                self._returned.notify()
            raise

    def release(self, conn: Any) -> None:
        self._idle.append((conn, _monotonic()))
        if self._waiting:  # read without the lock: a waiter counts itself before it checks
            with self._lock:
                self._returned.notify()

    def execute(self, *args: Any) -> Any:
        """Send one command and read its reply (a Redis error reply raises)."""
        return self._exchange(_one, args)

    def pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send every command in one write; a reply that is an error is returned, not raised."""
        result: list[Any] = self._exchange(_many, commands)
        return result

    def _exchange(self, talk: Any, work: Any) -> Any:
        conn = self.acquire()
        try:
            was_open = _is_connected(conn)
            try:
                result = talk(conn, work)
            except redis.ConnectionError as exc:
                if not was_open or isinstance(exc, _LostMidReply):
                    raise
                conn.disconnect()  # stale: closed by the server since its last use
                result = talk(conn, work)
        except ResponseError:  # the reply was read in full: the connection is clean
            self.release(conn)
            raise
        except BaseException:
            conn.disconnect()
            self.release(conn)
            raise
        self.release(conn)
        return result

    def disconnect(self) -> None:
        """Close the idle connections (lent ones close when their holders are done)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._created -= len(idle)
            self._returned.notify_all()
        for conn, _ in idle:
            conn.disconnect()
        self.redis_pool.disconnect()


class AsyncPool:
    """Connections to one server for one event loop; see the module docstring."""

    breaker: CircuitBreaker
    latency: LatencyHistogram

    def __init__(
        self, url: str, *, timeout: float | None = None, redis_pool: Any = None, **options: Any
    ) -> None:
        if redis_pool is None:
            redis_pool = _redis_pool(redis.asyncio.ConnectionPool, url, True, **options)
        self.redis_pool = redis_pool
        self.connection_class: type[Any] = self.redis_pool.connection_class
        self.connection_kwargs: dict[str, Any] = self.redis_pool.connection_kwargs
        self.max_connections: int = self.redis_pool.max_connections
        self.timeout = timeout
        self.socket_timeout: float | None = self.connection_kwargs.get("socket_timeout")
        self.idle_check_after = IDLE_CHECK_AFTER
        self._idle: list[tuple[Any, float]] = []  # (connection, idle since), newest last
        self._created = 0
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closed = False

    @property
    def created(self) -> int:
        return self._created

    async def acquire(self) -> Any:
        if self._idle:
            conn, idle_since = self._idle.pop()
            if _monotonic() - idle_since > self.idle_check_after and conn.is_connected:
                # redis-py 8 renamed can_read_destructive() to can_read().
                poll = getattr(conn, "can_read", None) or conn.can_read_destructive
                try:
                    if await poll():  # a reply nobody asked for
                        await conn.disconnect(nowait=True)
                except (redis.ConnectionError, redis.TimeoutError, OSError):
                    await conn.disconnect(nowait=True)  # closed while idle
            return conn
        if self._created < self.max_connections:
            self._created += 1
            try:  # not connected yet: redis-py connects on the first command
                return self.connection_class(**self.connection_kwargs)
            except BaseException:
                self._created -= 1
                raise
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed over as we gave up: pass it on
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise redis.ConnectionError(NO_CONNECTION) from None
            raise

    def release(self, conn: Any) -> None:
        """Hand the connection to the longest waiting task, or keep it idle."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append((conn, _monotonic()))

    async def _done(self, conn: Any, broken: bool) -> None:
        if broken or self._closed:
            await conn.disconnect(nowait=True)
            if self._closed:
                self._created -= 1
                return
        self.release(conn)

    async def execute(self, *args: Any) -> Any:
        return await self._exchange(_aone, args)

    async def pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        result: list[Any] = await self._exchange(_amany, commands)
        return result

    async def _exchange(self, talk: Any, work: Any) -> Any:
        started = _monotonic()
        conn = await self.acquire()
        # The wait for a connection and the wait for the reply share one budget
        # (socket_timeout): a task that queued for a connection reads for what is left.
        timeout = None
        budget = self.socket_timeout
        if budget is not None:
            waited = _monotonic() - started
            if waited > 0.0005:
                timeout = max(budget - waited, 0.001)
        try:
            was_open = conn.is_connected
            try:
                if was_open or budget is None:
                    result = await talk(conn, work, timeout)
                else:  # connecting: the handshake (AUTH, SELECT) shares the budget too
                    left = budget - (_monotonic() - started)
                    result = await _within(left, _connecting(conn, left, talk(conn, work, timeout)))
            except redis.ConnectionError as exc:
                if not was_open or isinstance(exc, _LostMidReply):
                    raise
                await conn.disconnect(nowait=True)  # stale: closed since its last use
                result = await talk(conn, work, timeout)
        except ResponseError:
            await self._done(conn, broken=False)
            raise
        except BaseException:
            await self._done(conn, broken=True)
            raise
        await self._done(conn, broken=False)
        return result

    async def aclose(self) -> None:
        """Close the idle connections; lent ones close when their holders are done."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._created -= len(idle)
        for conn, _ in idle:
            await conn.disconnect()
        await self.redis_pool.aclose()


# One exchange on a connection: a command and its reply, or a pipeline and all its replies.


def _one(conn: Any, args: tuple[Any, ...]) -> Any:
    conn.send_command(*args)
    return conn.read_response()


def _many(conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(conn.read_response())
        except ResponseError as exc:  # the others must still be read
            replies.append(exc)
        except redis.ConnectionError as exc:
            if replies:
                raise _LostMidReply(str(exc)) from exc
            raise
    return replies


async def _within(seconds: float, work: Any) -> Any:
    """``await work``, as redis-py's own TimeoutError once ``seconds`` have passed."""
    try:
        async with asyncio.timeout(max(seconds, 0.001)):
            return await work
    except TimeoutError as exc:
        raise redis.TimeoutError("Timeout connecting within the socket timeout") from exc


async def _connecting(conn: Any, seconds: float, work: Any) -> Any:
    """``await work`` on a connection that connects first, with its own connect and read
    timeouts cut to ``seconds`` for the while.

    ``_within``'s cancellation alone was not enough: under the fault test's 200 tasks on a
    frozen server, redis-py's handshake read (``HELLO``) sometimes ran to its own
    ``socket_timeout`` long after ``_within``'s deadline, so a call that had queued for a
    connection took two timeouts (~1 s for 0.5 s) in about half of the runs.
    """
    saved = conn.socket_timeout, conn.socket_connect_timeout
    cut = max(seconds, 0.001)
    conn.socket_timeout = cut if saved[0] is None else min(saved[0], cut)
    conn.socket_connect_timeout = cut if saved[1] is None else min(saved[1], cut)
    try:
        return await work
    finally:
        conn.socket_timeout, conn.socket_connect_timeout = saved


async def _read(conn: Any, timeout: float | None) -> Any:
    """One reply, within ``timeout`` (None: the connection's socket_timeout).

    Not ``read_response(timeout=...)``: redis-py returns None from that on expiry and
    keeps the connection, reply unread (its pub/sub polling semantics). Through the
    connection's own socket_timeout, an expiry raises TimeoutError and disconnects.
    """
    if timeout is None:
        return await conn.read_response()
    saved = conn.socket_timeout
    conn.socket_timeout = timeout
    try:
        return await conn.read_response()
    finally:
        conn.socket_timeout = saved


async def _aone(conn: Any, args: tuple[Any, ...], timeout: float | None) -> Any:
    await conn.send_command(*args)
    return await _read(conn, timeout)


async def _amany(
    conn: Any, commands: Sequence[tuple[Any, ...]], timeout: float | None
) -> list[Any]:
    await conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await _read(conn, timeout))
        except ResponseError as exc:
            replies.append(exc)
        except redis.ConnectionError as exc:
            if replies:
                raise _LostMidReply(str(exc)) from exc
            raise
    return replies


_sync_pools: weakref.WeakSet[SyncPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent's sockets belong to the parent: drop them unclosed (closing would not
    # hurt the parent, but a QUIT on them would) and start afresh.
    for pool in list(_sync_pools):
        pool._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
