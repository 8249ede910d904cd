"""The semantic cache's entries: what is stored per answer, and the hit a lookup returns.

An entry is stored as the tuple its exact hit is, ``(response, 1.0, True, prompt, model,
cost, scope, created, id)``, under ``blake2b(scope, normalized prompt)``; see ``cache.py``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, NamedTuple

RESPONSE, SIMILARITY, EXACT, PROMPT, MODEL, COST, SCOPE, CREATED, ID = range(9)
ENTRY_FIELDS = 9


class SemanticHit(NamedTuple):
    """A cached answer and how it was found.

    A named tuple: the exact tier builds it with one ``tuple.__new__`` (a third of a
    slotted dataclass's ``__init__``, on a path that costs ~2 µs in all).
    """

    response: Any
    similarity: float
    exact: bool
    prompt: str
    model: str | None = None
    cost: float | None = None
    scope: str = ""
    created: float = 0.0
    #: The entry's number in the namespace's log (unique across processes).
    entry_id: int = 0


#: ``new_hit(SemanticHit, entry)``: a stored entry is the exact hit's tuple (no Python
#: ``__new__`` call: the exact tier's hot path).
new_hit = tuple.__new__


def normalize_prompt(prompt: str) -> str:
    """What the exact tier compares: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> frozenset[str]:
    """The numbers a prompt names ("3.5", "2024", "1,000"): embeddings barely see them."""
    return frozenset(_NUMBER.findall(text))


def entry_digest(scope: str, normalized: str) -> str:
    """128 bits of blake2b: ~1.5x faster than sha256 here, and collisions stay out of reach."""
    return hashlib.blake2b(f"{scope}\x00{normalized}".encode(), digest_size=16).hexdigest()


def as_entry(value: Any, scope: str) -> Sequence[Any] | None:
    """``value`` if it is an entry of ``scope`` (a tuple, or the list a serializer made)."""
    if not isinstance(value, (tuple, list)):
        return None
    entry: Sequence[Any] = value
    if len(entry) != ENTRY_FIELDS or entry[SCOPE] != scope or type(entry[ID]) is not int:
        return None
    return entry
