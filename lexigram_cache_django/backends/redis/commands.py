"""How cache operations become Redis commands, and replies and errors become results.

Shared by every topology's client (:mod:`.client` for standalone servers and Sentinel,
:mod:`.cluster` for Redis Cluster): the server errors that fail a call open, the one
``CacheServerError`` a failing server becomes (reported to its breaker), and the small
command builders and reply readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from ...circuit import CircuitBreaker
from ...exceptions import CacheIncrError, CacheServerError
from ...failfast import server_failed

#: Errors that mean "the server cannot serve us now", not "this command is wrong".
SERVER_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # refused, reset, auth failed, pool exhausted
    redis.exceptions.TimeoutError,
    BusyLoadingError,
    ReadOnlyError,  # a replica answered a write (failover in progress)
    ClusterDownError,
    TryAgainError,
    OutOfMemoryError,
)
#: Keys per SCAN step and per UNLINK batch (clear, delete_pattern, keys).
SCAN_COUNT = 1000


class RedisIncrError(CacheIncrError, ResponseError):
    """``incr``/``decr`` of a value Redis cannot increment.

    A :class:`~lexigram_cache_django.exceptions.CacheIncrError` (a ``TypeError``, as on
    Django's in-memory backends) and a ``redis.ResponseError`` (what Django's RedisCache
    raises), so code written for either keeps working.
    """


def unavailable(breaker: CircuitBreaker, exc: Exception) -> CacheServerError:
    """The one error a failing server becomes, reported to its breaker.

    An error reply (loading, read-only, out of memory: ``answered``) means the server is
    up, so it does not count towards opening the breaker; a refused, reset or timed-out
    connection does, and the server is not asked again within the same operation.
    """
    answered = isinstance(exc, ResponseError)
    if answered:
        breaker.success()
    else:
        server_failed(breaker, exc, isinstance(exc, redis.exceptions.TimeoutError))
    message = f"{type(exc).__name__}: {exc}"
    return CacheServerError(message, server=breaker.server, answered=answered)


def short_circuited(breaker: CircuitBreaker) -> CacheServerError:
    """A command not sent: the breaker is open, or the server failed in this operation."""
    return CacheServerError(
        f"not sent: {breaker.server} is failing (circuit {breaker.state.value})",
        server=breaker.server,
        short_circuited=True,
    )


def _set_args(key: str, data: bytes, px: int | None, xx: bool = False) -> tuple[Any, ...]:
    args: tuple[Any, ...] = ("SET", key, data) if px is None else ("SET", key, data, "PX", px)
    return (*args, "XX") if xx else args


def _set_commands(items: Sequence[tuple[str, bytes]], px: int | None) -> list[tuple[Any, ...]]:
    if px is None:
        return [("SET", key, data) for key, data in items]
    return [("SET", key, data, "PX", px) for key, data in items]


def _not_stored(items: Sequence[tuple[str, bytes]], replies: Sequence[Any]) -> list[str]:
    """The keys of a pipelined write whose reply was a server error (a bad one raises)."""
    failed: list[str] = []
    for (key, _), reply in zip(items, replies):
        if isinstance(reply, Exception):
            if not isinstance(reply, SERVER_ERRORS):
                raise reply
            failed.append(key)
    return failed


def _persist_if_exists(key: str) -> list[tuple[Any, ...]]:
    """PERSIST answers 0 for a key without expiry: EXISTS in the same transaction tells."""
    return [("MULTI",), ("EXISTS", key), ("PERSIST", key), ("EXEC",)]


def _existed(replies: Sequence[Any]) -> bool:
    executed = replies[-1]
    if isinstance(executed, Exception):
        raise executed
    return bool(executed[0])


def _px_arg(px: int | None) -> Any:
    return "" if px is None else px


def _incr_error(key: str, exc: ResponseError) -> RedisIncrError:
    return RedisIncrError(f"cannot increment key {key!r}: {exc}")
