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

from ...exceptions import CacheServerError
from .commands import _not_stored

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


# -- per-slot batches: command builders and reply readers (see cluster.py) ----------


def mget_command(keys: list[str]) -> tuple[Any, ...]:
    return ("MGET", *keys) if len(keys) > 1 else ("GET", keys[0])


def del_command(keys: list[str]) -> tuple[Any, ...]:
    return ("DEL", *keys)


def set_command(keys: list[str]) -> tuple[Any, ...]:
    return ("SET", *keys)


def per_key(plan: dict[str, Any], values: dict[str, bytes], px: tuple[Any, ...]) -> Any:
    """SET is one key a command: split each slot's command into one SET per key."""
    split = {}
    for name, (commands, indices) in plan.items():
        cmds: list[tuple[Any, ...]] = []
        idx: list[list[int]] = []
        for command, group_indices in zip(commands, indices):
            for key, i in zip(command[1:], group_indices):
                cmds.append(("SET", key, values[key], *px))
                idx.append([i])
        split[name] = (cmds, idx)
    return split


def unstored(items: Sequence[tuple[str, bytes]], plan: Any, out: Any) -> list[str]:
    failed: list[str] = []
    for name, (commands, indices) in plan.items():
        replies = out[name]
        if isinstance(replies, CacheServerError):
            if len(out) == 1:
                raise replies
            failed += [items[i][0] for idx in indices for i in idx]
            continue
        keyed = [(items[idx[0]][0], b"") for idx in indices]
        if commands and commands[0][0] == "DEL":
            continue
        failed += _not_stored(keyed, replies)
    return failed


def deleted(plan: Any, out: Any) -> int:
    total = 0
    failure = None
    for name in plan:
        replies = out[name]
        if isinstance(replies, CacheServerError):
            failure = replies
            continue
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
            total += int(reply)
    if failure is not None and total == 0:
        raise failure
    return total


def flat(size: int, plan: Any, out: Any) -> list[Any]:
    """Replies of per-slot scripts returning one value per key, in key order."""
    results: list[Any] = [None] * size
    for name, (_, indices) in plan.items():
        replies = out[name]
        if isinstance(replies, CacheServerError):
            raise replies
        for idx, reply in zip(indices, replies):
            if isinstance(reply, Exception):
                raise reply
            for i, value in zip(idx, reply):
                results[i] = value
    return results


def gather(size: int, plan: dict[str, Any], out: dict[str, Any], every_node: bool) -> list[Any]:
    """Replies in key order (a failed node's keys get its error, or it raises when
    ``every_node`` is needed or no node answered)."""
    failures = [r for r in out.values() if isinstance(r, CacheServerError)]
    if failures and (every_node or len(failures) == len(out)):
        raise failures[0]
    results: list[Any] = [None] * size
    for name, (commands, indices) in plan.items():
        replies = out[name]
        if isinstance(replies, CacheServerError):
            continue  # that node's keys read as misses
        for command, idx, reply in zip(commands, indices, replies):
            if isinstance(reply, Exception):
                raise reply  # a bad command: a bug, as on one server
            if command[0] == "MGET":
                for i, value in zip(idx, reply):
                    results[i] = value
            else:
                for i in idx:
                    results[i] = reply
    return results
