"""The wire half of ``memcached_async``: its exceptions, the connection protocol, reply parsers.

Kept apart so the client module holds only pooling and commands. A :class:`Connection` is an
``asyncio.Protocol`` carrying at most one command (or pipeline) at a time: ``fut`` is the
reply's future and ``parser`` a pure function of the receive buffer that returns
``(result, bytes used)`` or raises :class:`Incomplete` until the whole reply is there, so
a reply is parsed once when complete (a big value: once its length has arrived). Anything
unexpected (an error reply, extra bytes, garbage) fails the call, and the caller closes the
connection. Stdlib asyncio and pymemcache's exception classes only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from pymemcache.exceptions import (
    MemcacheClientError,
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownError,
)

_T = TypeVar("_T")


class AsyncMemcacheError(MemcacheError):
    """Base of every error this client raises."""


class MemcachedServerFailure(AsyncMemcacheError):
    """The server is down, stalled or broke the connection: a breaker failure; fail open."""


class MemcachedConnectError(MemcachedServerFailure, ConnectionError):
    """No connection could be opened (refused, unreachable, or ``connect_timeout`` passed)."""


class MemcachedTimeoutError(MemcachedServerFailure, TimeoutError):
    """The call's ``timeout`` passed (waiting for a connection, connecting or reading)."""


class MemcachedConnectionLost(MemcachedServerFailure, MemcacheUnexpectedCloseError):
    """The connection broke or was closed in the middle of a command."""


class MemcachedBadReply(MemcachedServerFailure, MemcacheUnknownError):
    """A reply this client cannot parse (not memcached, or out of step)."""


class MemcachedClientReplyError(AsyncMemcacheError, MemcacheClientError):
    """``CLIENT_ERROR`` / ``ERROR``: the request was refused (e.g. incr of a non-number)."""


class MemcachedServerReplyError(AsyncMemcacheError, MemcacheServerError):
    """``SERVER_ERROR``: the server answered but could not do it (too large, out of memory)."""


class Incomplete(Exception):
    """Raised by a parser: the reply is not all here; try again at ``need`` bytes."""

    def __init__(self, need: int) -> None:
        self.need = need


#: A reply parser: ``(result, bytes used)`` from the start of the buffer, or ``Incomplete``.
Parser = Callable[[bytearray], tuple[_T, int]]


class Connection(asyncio.Protocol):
    """One connection; it parses replies as data arrives and completes the caller's future.

    At most one command (or pipeline) is in flight on it: ``fut`` is its reply's future.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = 0  # don't parse again before the buffer holds this many bytes
        self.parser: Parser[Any] | None = None
        self.fut: asyncio.Future[Any] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if len(buf) < self.need:
            return
        fut, parser = self.fut, self.parser
        if fut is None or parser is None:  # nothing asked: out of step
            self.abort()
            return
        try:
            result, used = parser(buf)
        except Incomplete as inc:
            self.need = inc.need
            return
        except Exception as exc:  # an error reply or garbage: fail the call, drop the conn
            self.fut = self.parser = None
            if not fut.done():
                fut.set_exception(exc)
            return
        if used == len(buf):
            buf.clear()
        else:  # more than one reply: out of step
            self.abort()
        self.fut = self.parser = None
        self.need = 0
        if not fut.done():
            fut.set_result(result)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_exception(MemcachedConnectionLost(f"connection lost mid-reply: {exc!r}"))

    def usable(self) -> bool:
        """False if the peer closed it while idle (a restart) or it was closed."""
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def abort(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()


# -- reply parsing: pure functions of the buffer (``Incomplete`` until the reply is whole) --


def _line(buf: bytearray, pos: int = 0) -> tuple[bytes, int]:
    """The line at ``pos`` (without CRLF) and where the next one starts."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete(len(buf) + 1)
    return bytes(buf[pos:end]), end + 2


def _raise_error_reply(line: bytes) -> None:
    text = line.decode("utf-8", "replace").strip()
    if line.startswith(b"SERVER_ERROR"):
        raise MemcachedServerReplyError(text)
    if line.startswith((b"CLIENT_ERROR", b"ERROR")):
        raise MemcachedClientReplyError(text)
    raise MemcachedBadReply(f"unexpected reply: {line[:80]!r}")


def read_line(buf: bytearray) -> tuple[bytes, int]:
    line, pos = _line(buf)
    if line[:1] in b"CSE" and line.startswith((b"CLIENT_ERROR", b"SERVER_ERROR", b"ERROR")):
        _raise_error_reply(line)
    return line, pos


def _values(buf: bytearray, with_cas: bool) -> tuple[dict[bytes, tuple[bytes, int]], int]:
    found: dict[bytes, tuple[bytes, int]] = {}
    pos = 0
    while True:
        line, pos = _line(buf, pos)
        if line == b"END":
            return found, pos
        parts = line.split()
        if len(parts) < (5 if with_cas else 4) or parts[0] != b"VALUE":
            _raise_error_reply(line)
        stop = pos + int(parts[3])
        if len(buf) < stop + 2:
            raise Incomplete(stop + 2)
        found[parts[1]] = (bytes(buf[pos:stop]), int(parts[4]) if with_cas else 0)
        pos = stop + 2


def read_values(buf: bytearray) -> tuple[dict[bytes, bytes], int]:
    found: dict[bytes, bytes] = {}
    pos = 0
    while True:  # _values inlined without cas: the hot path of get and get_many
        line, pos = _line(buf, pos)
        if line == b"END":
            return found, pos
        parts = line.split()
        if len(parts) < 4 or parts[0] != b"VALUE":
            _raise_error_reply(line)
        stop = pos + int(parts[3])
        if len(buf) < stop + 2:
            raise Incomplete(stop + 2)
        found[parts[1]] = bytes(buf[pos:stop])
        pos = stop + 2


def read_values_cas(buf: bytearray) -> tuple[dict[bytes, tuple[bytes, int]], int]:
    return _values(buf, with_cas=True)


def read_stats(buf: bytearray) -> tuple[dict[str, str], int]:
    stats: dict[str, str] = {}
    pos = 0
    while True:
        line, pos = _line(buf, pos)
        if line == b"END":
            return stats, pos
        parts = line.decode("utf-8", "replace").split(" ", 2)
        if len(parts) != 3 or parts[0] != "STAT":
            _raise_error_reply(line)
        stats[parts[1]] = parts[2].strip()


def lines_reader(n: int) -> Parser[list[bytes]]:
    """Read the ``n`` one-line replies of a pipeline, in order (error lines included)."""

    def read(buf: bytearray) -> tuple[list[bytes], int]:
        lines = []
        pos = 0
        for _ in range(n):
            line, pos = _line(buf, pos)
            lines.append(line)
        return lines, pos

    return read


def stored(reply: bytes) -> bool:
    if reply == b"STORED":
        return True
    if reply in (b"NOT_STORED", b"EXISTS", b"NOT_FOUND"):
        return False
    raise MemcachedBadReply(f"unexpected reply to a store command: {reply[:80]!r}")


def check(reply: bytes, yes: bytes, no: bytes) -> bool:
    if reply == yes:
        return True
    if reply == no:
        return False
    raise MemcachedBadReply(f"unexpected reply: {reply[:80]!r}")


def number(reply: bytes) -> int | None:
    if reply == b"NOT_FOUND":
        return None
    try:
        return int(reply)
    except ValueError:
        raise MemcachedBadReply(f"unexpected reply to incr/decr: {reply[:80]!r}") from None
