"""Bus publishes through the L2 backend's own choke point: its breaker, its fail policy.

A publish is a Redis command like any other: while L2's breaker is open it is not sent
(short-circuited in microseconds, not a timeout per write), a failure counts towards
opening the breaker and goes through L2's ``_failed`` (counted, logged quietly, raised
when ``FAIL_SILENTLY`` is False). A publish that did not go out leaves other processes'
L1 copies to their own bus: if Redis is down their listeners lose it too and bypass L1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ...exceptions import CacheServerError
from ..base import LexigramCache

Send = Callable[[str, str], bool]
ASend = Callable[[str, str], Awaitable[bool]]


def senders(l2: LexigramCache) -> tuple[Send | None, ASend | None]:
    """``PUBLISH`` through ``l2``'s client, or ``(None, None)`` when it has no such
    choke point (then the bus publishes on its own client)."""
    if not callable(getattr(getattr(l2, "_client", None), "send", None)):
        return None, None
    backend: Any = l2

    def send(channel: str, payload: str) -> bool:
        client = backend._client  # looked up per call: it is built lazily
        try:
            client.send(client.primary, "PUBLISH", channel, payload)
        except CacheServerError as exc:
            return bool(backend._failed("publish", exc, False))
        return True

    async def asend(channel: str, payload: str) -> bool:
        client = backend._client
        try:
            await client.asend(client.aprimary(), "PUBLISH", channel, payload)
        except CacheServerError as exc:
            return bool(backend._failed("publish", exc, False))
        return True

    return send, asend
