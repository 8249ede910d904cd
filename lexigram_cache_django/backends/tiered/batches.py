"""Batch reads of the tiered cache: L1 first, the rest in one L2 read that fills L1.

A batch's L2 hits are read as entries (``get_entry_many``: value, tags, lifetime), so
they go into L1 like a single read's, under the same fill-race guard: the bus sequence
is taken before the L2 read, and an entry whose key or tags changed since is not kept.
Lifetimes an entry does not carry (Redis keeps them as PX) come from one pipelined
``PTTL``; L2s that cannot say (memcached) bound the copy by ``L1_TIMEOUT``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ...exceptions import CacheServerError
from ...protocols import Entry


def _known(tiered: Any, entries: Mapping[str, Entry]) -> tuple[dict[str, float | None], list[str]]:
    ttls: dict[str, float | None] = {}
    unknown = []
    now = time.time()
    for final, (_, meta) in entries.items():
        if meta is not None and meta.expires:
            ttls[final] = tiered._l1_ttl(meta.expires - now)
        else:
            unknown.append(final)
    return ttls, unknown


def _from_pttl(tiered: Any, ttls: dict[str, float | None], finals: list[str], replies: Any) -> None:
    for final, left in zip(finals, replies):
        if isinstance(left, int) and not isinstance(left, bool):
            ttls[final] = (
                tiered.l1_timeout
                if left == -1
                else (tiered._l1_ttl(left / 1000) if left > 0 else None)
            )


def remaining_many(tiered: Any, entries: Mapping[str, Entry]) -> dict[str, float | None]:
    """Seconds each L2 entry has left, capped by L1_TIMEOUT (absent or None: no fill)."""
    ttls, unknown = _known(tiered, entries)
    if not unknown:
        return ttls
    client: Any = getattr(tiered._l2, "_client", None)
    if not callable(getattr(client, "send_pipeline", None)):
        ttls.update(dict.fromkeys(unknown, tiered.l1_timeout))
        return ttls
    try:
        replies = client.send_pipeline(client.primary, [("PTTL", f) for f in unknown])
    except CacheServerError:
        return ttls  # L2 failing: those are not copied
    _from_pttl(tiered, ttls, unknown, replies)
    return ttls


async def aremaining_many(tiered: Any, entries: Mapping[str, Entry]) -> dict[str, float | None]:
    ttls, unknown = _known(tiered, entries)
    if not unknown:
        return ttls
    client: Any = getattr(tiered._l2, "_client", None)
    if not callable(getattr(client, "asend_pipeline", None)):
        ttls.update(dict.fromkeys(unknown, tiered.l1_timeout))
        return ttls
    try:
        replies = await client.asend_pipeline(client.aprimary(), [("PTTL", f) for f in unknown])
    except CacheServerError:
        return ttls
    _from_pttl(tiered, ttls, unknown, replies)
    return ttls
