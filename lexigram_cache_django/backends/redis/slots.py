"""Redis Cluster's slot map: which primary serves each of the 16384 hash slots.

Loaded from ``CLUSTER SLOTS`` (asked of any node that answers), shared by every backend
object of the same LOCATION and options in the process, and corrected one slot at a time by
``MOVED`` replies; a correction also marks the map ``stale`` so the next command reloads it
whole (a resharding moves many slots at once). Reads of ``slots`` take no lock.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from redis.crc import key_slot

SLOTS = 16384


def slot_of(key: str) -> int:
    """A key's hash slot (``{hash tag}`` aware)."""
    return key_slot(key.encode())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SlotMap:
    """Slot -> ``host:port`` of its primary; ``primaries`` in a stable order."""

    def __init__(self) -> None:
        self.slots: list[str | None] = [None] * SLOTS
        self.primaries: list[str] = []
        self.stale = True  # nothing loaded yet
        self.lock = threading.Lock()

    def load(self, reply: Sequence[Any], asked: str) -> None:
        """Take a ``CLUSTER SLOTS`` reply (``asked``: the node that gave it)."""
        slots: list[str | None] = [None] * SLOTS
        primaries: dict[str, None] = {}
        asked_host = asked.rpartition(":")[0]
        for entry in reply:
            start, end, node = int(entry[0]), int(entry[1]), entry[2]
            host = _text(node[0]) or asked_host  # '' means "the node you asked"
            name = f"{host}:{int(node[1])}"
            primaries[name] = None
            slots[start : end + 1] = [name] * (end - start + 1)
        with self.lock:
            self.slots = slots
            self.primaries = sorted(primaries)
            self.stale = False

    def moved(self, slot: int, name: str) -> None:
        """A ``MOVED`` reply: use the new owner now, reload the whole map next."""
        self.slots[slot] = name
        self.stale = True


def group(
    slots: list[str | None], keys: Sequence[str]
) -> tuple[dict[str, dict[int, list[int]]], list[int]]:
    """Key indices by node, then by slot; and the indices whose slot has no known node."""
    by_node: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    unknown: list[int] = []
    for index, key in enumerate(keys):
        slot = key_slot(key.encode())
        name = slots[slot]
        if name is None:
            unknown.append(index)
        else:
            by_node[name][slot].append(index)
    return by_node, unknown


def node_url(name: str, ssl: bool) -> str:
    """A node's URL without credentials (also its breaker's name)."""
    host, _, port = name.rpartition(":")
    if ":" in host:
        host = f"[{host}]"
    return f"{'rediss' if ssl else 'redis'}://{host}:{port}/0"
