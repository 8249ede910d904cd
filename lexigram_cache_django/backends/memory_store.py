"""The memory backend's store: entries in LRU order per LOCATION, shared in a process.

Values of immutable types are kept as they are; others are pickled, which isolates them
from later mutation by the caller (as LocMemCache does for every value).
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple

from ..codec import EntryMeta

_PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL
#: Types whose instances cannot be mutated, so they need no copy to stay isolated.
_IMMUTABLE: frozenset[type] = frozenset(
    {str, bytes, int, float, bool, complex, type(None), Decimal, Fraction, range}
)


class Entry(NamedTuple):
    """One stored value: the value (pickled if mutable), its expiry and metadata."""

    value: Any
    expires: float | None  # absolute UNIX time; None never expires
    pickled: bool
    meta: EntryMeta | None


class MemoryStore:
    """The data behind one LOCATION: entries in LRU order plus store-wide counters."""

    __slots__ = ("data", "evictions", "expirations", "lock")

    def __init__(self) -> None:
        self.data: OrderedDict[str, Entry] = OrderedDict()
        self.lock = threading.Lock()
        self.evictions = 0
        self.expirations = 0


_stores: dict[str, MemoryStore] = {}
_stores_lock = threading.Lock()


def get_store(name: str) -> MemoryStore:
    """The process-wide store for a LOCATION (created on first use)."""
    store = _stores.get(name)
    if store is None:
        with _stores_lock:
            store = _stores.setdefault(name, MemoryStore())
    return store


def pack(value: Any) -> tuple[Any, bool]:
    if type(value) in _IMMUTABLE:
        return value, False
    return pickle.dumps(value, _PICKLE_PROTOCOL), True


def unpack(entry: Entry) -> Any:
    return pickle.loads(entry.value) if entry.pickled else entry.value
