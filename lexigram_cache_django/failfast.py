"""Failing fast: one circuit breaker per server per process, and one failure per operation.

The networked clients' choke points (``backends/redis/client.py``,
``backends/memcached/client.py``) ask :func:`breaker_for` a server's breaker before each
command, and :func:`failed_in_operation` whether the server already failed to answer
within the current compound operation (``one_operation()``: a ``get_or_set``, a page
render, an invalidation). Breakers log through one listener: a line when one opens, one
when it closes, a summary a minute while it stays open.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .circuit import (
    DEFAULT_FAILURES,
    DEFAULT_RESET_TIMEOUT,
    DEFAULT_TRIAL_TIMEOUT,
    CircuitBreaker,
    CircuitEvent,
)
from .signals import circuit_closed, circuit_opened

# -- one breaker per server per process, with quiet logs --------------------------------------

_logger = logging.getLogger("lexigram_cache_django.circuit")
_LEVELS = {"opened": logging.WARNING, "summary": logging.WARNING, "closed": logging.INFO}
_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """New locks for the child: one held at fork() by a thread the child does not have
    would block every call to that server. The breakers keep their state."""
    global _breakers_lock
    _breakers_lock = threading.Lock()
    for breaker in list(_breakers.values()):
        breaker.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _log_event(event: CircuitEvent) -> None:
    """One line when a breaker opens, one when it closes, a summary a minute while open;
    the half-open trials and re-openings in between only at DEBUG."""
    _logger.log(_LEVELS.get(event.kind, logging.DEBUG), "%s", event.message())


def _signal_event(event: CircuitEvent) -> None:
    """``circuit_opened`` when a closed breaker opens, ``circuit_closed`` when it closes:
    once per outage each (trials and re-openings are only logged). A receiver that
    raises is logged, never raised into the cache call that moved the breaker."""
    if event.kind == "opened":
        error = None if event.error is None else str(event.error)
        replies = circuit_opened.send_robust(
            CircuitBreaker, server=event.server, error=error, failures=event.failures
        )
    elif event.kind == "closed":
        replies = circuit_closed.send_robust(
            CircuitBreaker, server=event.server, seconds=event.seconds, short_circuited=event.count
        )
    else:
        return
    for receiver, reply in replies:  # a breaker's listeners must not raise into a call
        if isinstance(reply, Exception):
            _logger.error("circuit signal receiver %r raised %r", receiver, reply)


_open_on_timeout: dict[str, bool] = {}


def breaker_for(
    server: str,
    *,
    failures: int = DEFAULT_FAILURES,
    reset_timeout: float = DEFAULT_RESET_TIMEOUT,
    trial_timeout: float = DEFAULT_TRIAL_TIMEOUT,
    open_on_timeout: bool = True,
) -> CircuitBreaker:
    """The process's breaker for ``server`` (a masked address), made on first use.

    Shared by every alias, thread and event loop that talks to that server, so the first
    alias to use a server decides its settings.
    """
    breaker = _breakers.get(server)
    if breaker is None:
        with _breakers_lock:
            breaker = _breakers.get(server)
            if breaker is None:
                breaker = CircuitBreaker(
                    server,
                    failures=failures,
                    reset_timeout=reset_timeout,
                    trial_timeout=trial_timeout,
                    listeners=[_log_event, _signal_event],
                )
                _breakers[server] = breaker
                _open_on_timeout[server] = open_on_timeout
    return breaker


def server_failed(breaker: CircuitBreaker, exc: BaseException, timed_out: bool) -> None:
    """Report a failure to answer: a timeout opens the breaker at once (unless the
    server's first alias set CIRCUIT_OPEN_ON_TIMEOUT False); and within the current
    operation the server is not asked again."""
    if timed_out and _open_on_timeout.get(breaker.server, True):
        breaker.trip(exc)
    else:
        breaker.failure(exc)
    note_failure(breaker.server)


def breakers() -> list[CircuitBreaker]:
    """Every breaker of this process (for health pages and tests)."""
    return list(_breakers.values())


# -- compound operations stop after the first failure -------------------------------------------

_failed_servers: ContextVar[set[str] | None] = ContextVar("lexigram_failed_servers", default=None)


@contextmanager
def one_operation() -> Iterator[None]:
    """Within the block, a server that has just failed to answer is not asked again.

    A ``get_or_set`` reads, locks and writes; a ``cache_page`` render reads and writes
    several keys. Once one of those calls timed out, the rest would each wait the same
    timeout before the breaker has seen enough failures to open: inside this scope they
    fail at once instead. Nested scopes share the outermost one; a task started inside
    (asyncio copies the context) shares it too.
    """
    if _failed_servers.get() is not None:
        yield
        return
    token = _failed_servers.set(set())
    try:
        yield
    finally:
        _failed_servers.reset(token)


def failed_in_operation(server: str) -> bool:
    """Whether ``server`` already failed to answer within the current operation."""
    failed = _failed_servers.get()
    return failed is not None and server in failed


def note_failure(server: str) -> None:
    """Record that ``server`` failed to answer, for the rest of the current operation."""
    failed = _failed_servers.get()
    if failed is not None:
        failed.add(server)
