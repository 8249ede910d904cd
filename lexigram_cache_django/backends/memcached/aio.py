"""A small asyncio memcached client (text protocol) that fails fast and serves waiters in order.

Why not emcache (1.3.3, measured in ``docs/design.md``): with the server refusing connections
it holds each call for the whole operation timeout (1 s) instead of failing at once, and on a
healthy server with 200 tasks on 4 connections 0.6-1.3 % of calls waited the full 1 s and
failed, because a freed connection goes to the newest waiter. This client keeps to what the
backend needs:

* **One pool per (event loop, server).** Up to ``max_connections`` connections, opened on
  demand with ``loop.create_connection``; each is an ``asyncio.Protocol`` that parses the
  reply as it arrives and completes one future (no ``StreamReader``: that cost ~30 % of the
  speed). Idle connections are reused most recently used first; a task that finds none free
  queues, and freed connections (or free slots) are handed to waiters **first come, first
  served**. Pools of closed loops are forgotten.
* **One deadline per call.** Waiting for a connection, connecting and reading the reply share
  one ``timeout`` budget: the pool keeps its calls in flight in start order (= deadline
  order) and one timer, set for the oldest, fails whatever future an expired call waits on
  (``asyncio.timeout`` cost ~4.4 us a call, a ``loop.call_at`` per call ~1.5 us).
  Connecting is also bounded by ``connect_timeout``. A connect that fails (refused, or
  ``connect_timeout`` passed) fails the tasks queued behind it too: they would only try the
  same dead server.
* **A connection that may hold an unread reply is never reused.** Any exception or
  cancellation between sending and reading the whole reply closes it (``transport.abort()``),
  and so does an error reply; an idle connection the server closed meanwhile (a restart) is
  dropped at checkout instead of failing the next command.
* Writes are not flow-controlled: a command's bytes (a big value, a pipelined ``set_many``)
  sit in the transport's buffer until the socket takes them.
* **A forked child starts with no pools**: a connection shared by two processes would mix
  their replies.
* Keys and values are ``bytes``; keys are validated by the caller. Values are stored with
  flags 0 (the backend's codec already encoded them) and flags are ignored on reads.

Exceptions (defined in ``memcached.wire`` with the protocol and the reply parsers,
re-exported here; all :class:`AsyncMemcacheError`, a pymemcache ``MemcacheError``):

* :class:`MemcachedServerFailure` and its subclasses -- :class:`MemcachedConnectError`
  (also ``ConnectionError``), :class:`MemcachedTimeoutError` (also ``TimeoutError``),
  :class:`MemcachedConnectionLost` (also ``MemcacheUnexpectedCloseError``),
  :class:`MemcachedBadReply`: the server is down, stalled or broke the connection. The
  backend counts these against the server's circuit breaker and fails open.
* :class:`MemcachedClientReplyError` (also ``MemcacheClientError``): ``CLIENT_ERROR`` or
  ``ERROR``, e.g. ``incr`` of a non-numeric value; the server is fine.
* :class:`MemcachedServerReplyError` (also ``MemcacheServerError``): ``SERVER_ERROR``, e.g. a
  value over the item size or out of memory; the server answered, so not a breaker failure.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .wire import (
    AsyncMemcacheError,
    Connection,
    MemcachedBadReply,
    MemcachedClientReplyError,
    MemcachedConnectError,
    MemcachedConnectionLost,
    MemcachedServerFailure,
    MemcachedServerReplyError,
    MemcachedTimeoutError,
    Parser,
    check,
    lines_reader,
    number,
    read_line,
    read_stats,
    read_values,
    read_values_cas,
    stored,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "AsyncMemcacheError",
    "AsyncMemcachedClient",
    "MemcachedBadReply",
    "MemcachedClientReplyError",
    "MemcachedConnectError",
    "MemcachedConnectionLost",
    "MemcachedServerFailure",
    "MemcachedServerReplyError",
    "MemcachedTimeoutError",
]

DEFAULT_TIMEOUT = 1.0
DEFAULT_CONNECT_TIMEOUT = 1.0
#: Connections per (loop, server), as the backend's ``POOL_SIZE`` default. With 200 tasks on
#: one loopback server (2 cores) 8 connections were ~5 % faster than 4 and one task the same;
#: 4 keeps processes x servers x connections modest on the server side.
DEFAULT_MAX_CONNECTIONS = 4

_T = TypeVar("_T")

#: Every client in the process, so a forked child can drop what it inherited.
_clients: weakref.WeakSet[AsyncMemcachedClient] = weakref.WeakSet()


class _CallState:
    """One call's deadline state: the future it waits on, failed by the timer if it expires."""

    __slots__ = ("deadline", "expired", "finished", "waiting")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.waiting: asyncio.Future[Any] | None = None
        self.expired = False
        self.finished = False

    def expire(self) -> None:
        self.expired = True
        fut = self.waiting
        if fut is not None and not fut.done():
            fut.set_exception(TimeoutError())


class _Pool:
    """Connections to one server for one event loop; see the module docstring."""

    def __init__(self, client: AsyncMemcachedClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop
        # Calls in flight, in start order, which is deadline order (one timeout per client):
        # one timer for the oldest replaces a timer per call (call_at + cancel: ~1.5 us).
        self._inflight: deque[_CallState] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._idle: list[Connection] = []
        self._created = 0  # connections open or being opened (<= max_connections)
        # Each waiter's future gets a connection, or None: "a slot is yours, connect".
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self.closed = False

    async def acquire(self, call: _CallState) -> Connection:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            self._created -= 1
            conn.abort()
        if self._created < self._client.max_connections:
            self._created += 1
            return await self._connect(call)
        fut: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        call.waiting = fut
        try:
            conn_or_slot = await fut
        except BaseException:
            call.waiting = None
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                given = fut.result()  # handed over just as we were cancelled: pass it on
                if given is None:
                    self._free_slot()
                else:
                    self.release(given)
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise
        call.waiting = None
        if conn_or_slot is None:
            return await self._connect(call)
        return conn_or_slot

    async def _connect(self, call: _CallState) -> Connection:
        """Open a connection in a slot already counted in ``_created``.

        Bounded by ``connect_timeout`` and by what is left of the call's deadline. A connect
        that fails on its own (refused, or ``connect_timeout`` passed) fails the queued calls
        too; one cut short by the call's deadline passes its slot on.
        """
        client = self._client
        loop = asyncio.get_running_loop()
        budget = min(client.connect_timeout, call.deadline - loop.time())
        try:
            async with asyncio.timeout(budget):
                _, conn = await loop.create_connection(Connection, client.host, client.port)
        except BaseException as exc:
            self._created -= 1
            cut_short = isinstance(exc, TimeoutError) and budget < client.connect_timeout
            if isinstance(exc, OSError) and not cut_short:
                err = MemcachedConnectError(f"cannot connect to {client.server}: {exc!r}")
                self._fail_waiters(err)
                raise err from exc
            if cut_short:
                call.expired = True
            self._wake_for_slot()
            raise
        return conn

    def release(self, conn: Connection) -> None:
        """Give a clean connection back: to the oldest waiter, else to the idle list."""
        if self.closed:
            conn.abort()
            return
        if not conn.usable():  # the peer closed it as the reply came in
            self.discard(conn)
            return
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self._idle.append(conn)

    def discard(self, conn: Connection) -> None:
        """Close a connection that may hold an unread reply; its slot goes to a waiter."""
        conn.abort()
        self._free_slot()

    def _free_slot(self) -> None:
        self._created -= 1
        self._wake_for_slot()

    def _wake_for_slot(self) -> None:
        if self.closed or self._created >= self._client.max_connections:
            return
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                self._created += 1
                fut.set_result(None)
                return

    def _fail_waiters(self, exc: AsyncMemcacheError) -> None:
        waiters, self._waiters = self._waiters, deque()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(type(exc)(*exc.args))  # one instance (traceback) per task

    def track(self, call: _CallState) -> None:
        """Watch ``call``'s deadline until :meth:`untrack`."""
        self._inflight.append(call)
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(call.deadline, self._sweep)

    def untrack(self, call: _CallState) -> None:
        call.finished = True
        inflight = self._inflight
        while inflight and inflight[0].finished:
            inflight.popleft()

    def _sweep(self) -> None:
        """Expire the calls past their deadline; wake again at the oldest one left."""
        self._sweeper = None
        inflight = self._inflight
        now = self._loop.time() + 0.001  # the loop may run a timer a hair early
        while inflight:
            head = inflight[0]
            if not head.finished:
                if head.deadline > now:
                    self._sweeper = self._loop.call_at(head.deadline, self._sweep)
                    return
                head.expire()
            inflight.popleft()

    def close(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for call in self._inflight:
            call.expire()
        self._inflight.clear()
        for conn in self._idle:
            conn.abort()
        self._idle.clear()
        self._created = 0
        self._fail_waiters(MemcachedConnectionLost(f"pool for {self._client.server} closed"))


class AsyncMemcachedClient:
    """Commands for one memcached server, from any number of event loops.

    Share one instance per server in the process: it keeps one :class:`_Pool` per running
    loop. Every command raises the exceptions listed in the module docstring.
    """

    def __init__(
        self,
        host: str,
        port: int = 11211,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, not {max_connections!r}")
        self.host = host
        self.port = port
        self.server = f"{host}:{port}"
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self._pools: dict[asyncio.AbstractEventLoop, _Pool] = {}
        self._last: tuple[asyncio.AbstractEventLoop | None, _Pool | None] = (None, None)
        _clients.add(self)

    def _forget_pools(self) -> None:
        """Drop every pool without closing it (in a forked child: the sockets are the
        parent's too; the child's copies close when collected, the parent's stay open)."""
        self._pools = {}
        self._last = (None, None)

    def __repr__(self) -> str:
        return f"<AsyncMemcachedClient {self.server} pools={len(self._pools)}>"

    # -- plumbing ---------------------------------------------------------------------------

    def _pool(self) -> tuple[asyncio.AbstractEventLoop, _Pool]:
        loop = asyncio.get_running_loop()
        last_loop, last_pool = self._last
        if loop is last_loop and last_pool is not None and not last_pool.closed:
            return loop, last_pool
        pool = self._pools.get(loop)
        if pool is None or pool.closed:
            for stale in [lp for lp in self._pools if lp.is_closed()]:
                del self._pools[stale]
            pool = self._pools[loop] = _Pool(self, loop)
        self._last = (loop, pool)
        return loop, pool

    async def _call(self, payload: bytes | Sequence[bytes], parse: Parser[_T]) -> _T:
        """Send ``payload`` and parse the reply on one pooled connection, under one deadline.

        The pool's deadline sweeper fails whatever future the call is waiting on when its
        deadline passes: the pool's, or the reply's. Connecting has its own
        ``asyncio.timeout`` (rare, so its cost does not matter).
        """
        loop, pool = self._pool()
        call = _CallState(loop.time() + self.timeout)
        pool.track(call)
        try:
            conn = await pool.acquire(call)
            while not conn.usable():
                # Handed over by release() while open, it was closed by its peer before
                # this task resumed (the transport closes at once, connection_lost runs a
                # loop step later). Python 3.12's writelines() on it raises TypeError
                # (CPython gh-136234); write() drops the bytes and the call would wait
                # out its timeout. Take another.
                pool.discard(conn)
                conn = await pool.acquire(call)
            try:
                if call.expired:
                    raise TimeoutError
                transport = conn.transport
                assert transport is not None
                fut: asyncio.Future[_T] = loop.create_future()
                conn.fut, conn.parser = fut, parse
                conn.need = 0
                call.waiting = fut
                if isinstance(payload, bytes):
                    transport.write(payload)
                else:
                    transport.writelines(payload)
                result = await fut
            except BaseException:
                pool.discard(conn)
                raise
            pool.release(conn)
            return result
        except TimeoutError as exc:
            if not call.expired or isinstance(exc, MemcachedServerFailure):
                raise
            raise MemcachedTimeoutError(f"{self.server}: no reply within {self.timeout} s") from exc
        except (OSError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, MemcachedServerFailure):
                raise
            raise MemcachedConnectionLost(f"{self.server}: {exc!r}") from exc
        finally:
            pool.untrack(call)

    async def aclose(self) -> None:
        """Close the running loop's pool (queued calls fail); forget pools of closed loops."""
        loop = asyncio.get_running_loop()
        pool = self._pools.pop(loop, None)
        if pool is not None:
            pool.close()
        for stale in [lp for lp in self._pools if lp.is_closed()]:
            del self._pools[stale]
        self._last = (None, None)

    # -- commands ---------------------------------------------------------------------------

    async def get(self, key: bytes) -> bytes | None:
        values = await self._call(b"get " + key + b"\r\n", read_values)
        return values.get(key)

    async def get_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        """The values found, by key, in one ``get k1 k2 ...`` round trip."""
        keys = list(keys)
        if not keys:
            return {}
        return await self._call(b"get " + b" ".join(keys) + b"\r\n", read_values)

    async def gets(self, key: bytes) -> tuple[bytes | None, int | None]:
        """``(value, cas token)``, or ``(None, None)`` when missing."""
        values = await self._call(b"gets " + key + b"\r\n", read_values_cas)
        return values.get(key, (None, None))

    async def set(self, key: bytes, value: bytes, exptime: int = 0) -> bool:
        return await self._store(b"set", key, value, exptime)

    async def add(self, key: bytes, value: bytes, exptime: int = 0) -> bool:
        """Store only if absent: False when the key exists."""
        return await self._store(b"add", key, value, exptime)

    async def replace(self, key: bytes, value: bytes, exptime: int = 0) -> bool:
        return await self._store(b"replace", key, value, exptime)

    async def cas(self, key: bytes, value: bytes, cas: int, exptime: int = 0) -> bool:
        """Store if unchanged since ``gets``: False if changed (EXISTS) or gone (NOT_FOUND)."""
        return await self._store(b"cas", key, value, exptime, b" %d" % cas)

    async def _store(
        self, cmd: bytes, key: bytes, value: bytes, exptime: int, extra: bytes = b""
    ) -> bool:
        head = b"%b %b 0 %d %d%b\r\n" % (cmd, key, exptime, len(value), extra)
        reply = await self._call((head, value, b"\r\n"), read_line)
        return stored(reply)

    async def set_many(self, items: Mapping[bytes, bytes], exptime: int = 0) -> list[bytes]:
        """Store every item in one pipelined write; return the keys not stored."""
        if not items:
            return []
        keys = list(items)
        parts: list[bytes] = []
        for key in keys:
            value = items[key]
            parts += (b"set %b 0 %d %d\r\n" % (key, exptime, len(value)), value, b"\r\n")
        replies = await self._call(parts, lines_reader(len(keys)))
        return [k for k, r in zip(keys, replies) if r != b"STORED"]

    async def touch(self, key: bytes, exptime: int = 0) -> bool:
        reply = await self._call(b"touch %b %d\r\n" % (key, exptime), read_line)
        return check(reply, b"TOUCHED", b"NOT_FOUND")

    async def delete(self, key: bytes) -> bool:
        reply = await self._call(b"delete " + key + b"\r\n", read_line)
        return check(reply, b"DELETED", b"NOT_FOUND")

    async def delete_many(self, keys: Iterable[bytes]) -> int:
        """Delete every key in one pipelined write; return how many existed."""
        cmds = [b"delete " + key + b"\r\n" for key in keys]
        if not cmds:
            return 0
        replies = await self._call(cmds, lines_reader(len(cmds)))
        return sum(check(r, b"DELETED", b"NOT_FOUND") for r in replies)

    async def incr(self, key: bytes, delta: int = 1) -> int | None:
        """The new value, or None if the key is missing (no implicit create)."""
        return number(await self._call(b"incr %b %d\r\n" % (key, delta), read_line))

    async def decr(self, key: bytes, delta: int = 1) -> int | None:
        """The new value (memcached stops at 0), or None if the key is missing."""
        return number(await self._call(b"decr %b %d\r\n" % (key, delta), read_line))

    async def flush_all(self, delay: int = 0) -> None:
        check(await self._call(b"flush_all %d\r\n" % delay, read_line), b"OK", b"")

    async def version(self) -> str:
        reply = await self._call(b"version\r\n", read_line)
        if not reply.startswith(b"VERSION "):
            raise MemcachedBadReply(f"unexpected reply to version: {reply[:80]!r}")
        return reply[8:].strip().decode()

    async def stats(self) -> dict[str, str]:
        return await self._call(b"stats\r\n", read_stats)


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client._forget_pools()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
