"""Tags by version: invalidate every entry carrying a tag in O(1), on any backend.

A tag is a small record in the same cache holding the tag's current *version*. An entry
written with tags records the version each tag had at write time (in the entry's
metadata, so no extra key per entry); a read compares them with the current versions
and treats any mismatch, or a missing tag record, as a miss. ``invalidate_tags`` just
gives each tag a new version: one write per tag, whatever the number of entries.

Versions are random 62-bit integers, replaced (not incremented) on each invalidation.
A tag record lost to eviction or a restart therefore comes back at an unrelated value,
never at one an old entry recorded: old entries read as stale, never as fresh.

Tags can be strings, model classes (every row of the model), model instances or
``(Model, pk)`` pairs (one row). Proxy models share their concrete model's tags.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.models import Model

#: Default lifetime of a tag record, in seconds (memcached's 30-day limit). An entry
#: whose tag record expires reads as stale, so this bounds how long tagged entries live.
DEFAULT_TAG_TIMEOUT = 30 * 24 * 3600

#: Recorded for a tag whose version could not be read: no record ever holds it.
UNKNOWN_TAG_VERSION = -1

_SAFE = re.compile(r"^[A-Za-z0-9_.:\-/@+=]{1,120}$")

TagLike = str | type[Model] | Model | tuple[type[Model], Any]


def tag_name(tag: TagLike) -> str:
    """A tag's stable name: ``"pets"``, ``"model:petclinic.pet"``, ``"row:petclinic.pet:42"``."""
    if isinstance(tag, str):
        if not tag:
            raise ValueError("a tag name cannot be empty")
        return tag
    if isinstance(tag, type) and issubclass(tag, Model):
        return f"model:{_label(tag)}"
    if isinstance(tag, Model):
        if tag.pk is None:
            raise ValueError(f"cannot tag an unsaved {type(tag).__name__} (it has no pk yet)")
        return f"row:{_label(type(tag))}:{tag.pk}"
    if (
        isinstance(tag, tuple)
        and len(tag) == 2
        and isinstance(tag[0], type)
        and issubclass(tag[0], Model)
    ):
        return f"row:{_label(tag[0])}:{tag[1]}"
    raise TypeError(
        f"a tag is a string, a model class, a model instance or a (Model, pk) pair, "
        f"not {type(tag).__name__}"
    )


def tag_names(tags: Iterable[TagLike] | TagLike | None) -> tuple[str, ...]:
    """Normalize one tag or an iterable of tags to sorted, unique names."""
    if tags is None:
        return ()
    if isinstance(tags, str | Model | type) or (
        isinstance(tags, tuple) and len(tags) == 2 and isinstance(tags[0], type)
    ):
        tags = [tags]  # type: ignore[list-item]
    return tuple(sorted({tag_name(t) for t in tags}))


def tag_record_key(name: str) -> str:
    """The cache key (before prefix/version) of a tag's version record.

    Names that are long or hold characters memcached refuses are hashed.
    """
    if _SAFE.match(name):
        return f"tag:{name}"
    return f"tag:h:{hashlib.sha256(name.encode()).hexdigest()}"


def new_version() -> int:
    """A fresh tag version: random, so a lost record never reappears at an old value."""
    return secrets.randbits(62) + 1


def _label(model: type[Model]) -> str:
    concrete = model._meta.concrete_model or model
    return concrete._meta.label_lower


class TagHints:
    """Which tag records each key's entry carried when this process last saw it.

    A tagged read must compare the entry's recorded versions with the current ones, but
    the entry's tags are only known once it has been read. With a hint, a networked
    backend fetches the value and those tag records together (one ``MGET`` or
    ``get_many``). A hint is learned when this process writes or reads the key; a missing
    or outdated hint only costs a second round trip, never a wrong answer. Bounded: the
    map is emptied when it reaches ``limit`` keys.
    """

    __slots__ = ("_limit", "_map")

    def __init__(self, limit: int = 20_000) -> None:
        self._map: dict[str, tuple[str, ...]] = {}
        self._limit = limit

    def __len__(self) -> int:
        return len(self._map)

    def get(self, key: str) -> tuple[str, ...]:
        return self._map.get(key, ())

    def union(self, keys: Sequence[str]) -> list[str]:
        """The hinted tag records of several keys, each once."""
        hints = self._map
        # No tagged key seen in this process, or none of these: the common, cheap cases
        # (isdisjoint runs in C, one hash lookup per key).
        if not hints or hints.keys().isdisjoint(keys):
            return []
        return list(dict.fromkeys(name for key in keys for name in hints.get(key, ())))

    def learn(self, key: str, tag_keys: tuple[str, ...]) -> None:
        hints = self._map
        if not tag_keys:
            if key in hints:
                del hints[key]
        elif hints.get(key) != tag_keys:
            if len(hints) >= self._limit:
                hints.clear()
            hints[key] = tag_keys


_hints: dict[str, TagHints] = {}


def hints_for(identity: str) -> TagHints:
    """The shared hints of an alias identity (every thread's backend object of it)."""
    hints = _hints.get(identity)
    if hints is None:
        hints = _hints.setdefault(identity, TagHints())
    return hints


# -- reading tag records: the same rules on every networked backend ----------------------


def record_version(data: bytes | bytearray | str | None) -> int | None:
    """A tag record's version (stored as ASCII digits), or None if missing or foreign."""
    if data is None:
        return None
    try:
        return int(data)
    except ValueError:
        return None


def tag_keys_of(metas: Iterable[Any]) -> list[str]:
    """The tag record keys named by some entries' metadata, each once, in order."""
    keys: dict[str, None] = {}
    for meta in metas:
        if meta is not None:
            keys.update(dict.fromkeys(name for name, _ in meta.tags))
    return list(keys)


def is_stale(recorded: Iterable[tuple[str, int]], current: Mapping[str, int | None]) -> bool:
    """Whether any tag moved on (or lost its record) since an entry recorded its version."""
    get = current.get
    for name, version in recorded:  # noqa: SIM110  (a loop: faster than any(genexpr) here)
        if get(name) != version:
            return True
    return False
