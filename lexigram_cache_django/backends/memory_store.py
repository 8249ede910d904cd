"""The memory backend's store: entries in LRU order per LOCATION, shared in a process.

Values are isolated from later mutation by the caller (as LocMemCache does for every
value by pickling it), in the cheapest way that isolates them:

* RAW: immutable values, and tuples of them, are kept as they are;
* COPIED: a dict of str keys and such values is copied on the way in and on the way out
  (a shallow copy is a whole copy there: ~0.06 µs against ~0.6 µs to unpickle it; a
  cached model row, ``lookups.py``, is such a dict);
* HEAD_COPIED: a tuple of such a dict and then immutable values (a value with its
  metadata, as a semantic cache entry is) gets a copy of its head: ~0.16 µs against ~0.55;
* PICKLED: anything else.
"""

from __future__ import annotations

import datetime
import os
import pickle
import threading
import uuid
from collections import OrderedDict
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple

from ..codec import EntryMeta

_PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL
#: Types whose instances cannot be mutated, so they need no copy to stay isolated.
_IMMUTABLE: frozenset[type] = frozenset(
    {str, bytes, int, float, bool, complex, type(None), Decimal, Fraction, range}
    | {datetime.date, datetime.datetime, datetime.time, datetime.timedelta, uuid.UUID}
)
#: Nesting depth of tuples kept as they are (deeper ones are pickled).
_TUPLE_DEPTH = 3


class Entry(NamedTuple):
    """One stored value: the value (as ``form`` says), its expiry and metadata."""

    value: Any
    expires: float | None  # absolute UNIX time; None never expires
    form: int  # RAW, PICKLED, COPIED or HEAD_COPIED
    meta: EntryMeta | None


RAW, PICKLED, COPIED, HEAD_COPIED = 0, 1, 2, 3


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


def _after_fork_in_child() -> None:
    """A lock some thread held at fork() stays held in the child, which has no such thread:
    its first read of that store would wait forever. The entries are whole (each change
    is one dict operation under the GIL), so the child keeps them with new locks."""
    global _stores_lock
    _stores_lock = threading.Lock()
    for store in list(_stores.values()):
        store.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def pack(value: Any) -> tuple[Any, int]:
    """``(what to store, its form)``; see the module docstring."""
    kind = type(value)
    if kind in _IMMUTABLE or (kind is tuple and _immutable_tuple(value, _TUPLE_DEPTH)):
        return value, RAW
    if kind is dict and _flat_dict(value):
        return value.copy(), COPIED
    if kind is tuple and _dict_headed(value):
        return (value[0].copy(), *value[1:]), HEAD_COPIED
    return pickle.dumps(value, _PICKLE_PROTOCOL), PICKLED


def _flat_dict(value: dict[Any, Any]) -> bool:
    """Whether a shallow copy of the dict is a whole copy (str keys, immutable values)."""
    immutable = _IMMUTABLE
    for key, item in value.items():
        if type(key) is not str:
            return False
        kind = type(item)
        if kind in immutable or (kind is tuple and _immutable_tuple(item, _TUPLE_DEPTH)):
            continue
        return False
    return True


def _dict_headed(value: tuple[Any, ...]) -> bool:
    """Whether the tuple is a flat dict followed by immutable values."""
    return (
        bool(value)
        and type(value[0]) is dict
        and _flat_dict(value[0])
        and _immutable_tuple(value[1:], _TUPLE_DEPTH)
    )


def _immutable_tuple(value: tuple[Any, ...], depth: int) -> bool:
    """Whether nothing reachable from the tuple can be mutated (exact types only: a
    subclass may carry mutable state)."""
    for item in value:
        kind = type(item)
        if kind in _IMMUTABLE:
            continue
        if kind is tuple and depth > 1 and _immutable_tuple(item, depth - 1):
            continue
        return False
    return True


def unpack(entry: Entry) -> Any:
    """The value for a reader: its own copy where it could be mutated. The memory
    backend's hot reads inline this."""
    form, value = entry.form, entry.value
    if not form:
        return value
    if form == COPIED:
        return value.copy()
    if form == PICKLED:
        return pickle.loads(value)
    return (value[0].copy(), *value[1:])  # HEAD_COPIED
