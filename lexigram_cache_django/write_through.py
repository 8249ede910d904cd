"""Write-through on commit: a committed save refills the row's cached lookup.

For models whose ``INVALIDATE_MODELS`` entry says ``"write_through": True``, a save
still invalidates its tags after the commit (:mod:`~lexigram_cache_django.invalidation`),
and then the saved rows are read back and stored for :meth:`CachedLookup.get` by pk, so
the next reader hits instead of querying. Deletes, ``update()`` and the bulk paths only
invalidate, as for every registered model; a rolled-back transaction does neither.

Why read back instead of storing the saved object: the object can hold what the
database changed on the way (``F()`` expressions, ``db_default``, triggers), and, more
to the point, two transactions saving one row may run their ``on_commit`` callbacks in
either order. The refill goes through ``get_or_set``, which reads the row's tag version
*before* the database: whichever refill reads an older row stores it already stale,
since the later commit's invalidation bumps the tag after that commit. So once a
commit's callbacks have run, no reader sees a value older than that commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import connections
from django.db.models import Model, signals

from .invalidation import _Flush
from .lookups import CachedLookup
from .model_options import entry_for, model_entries

logger = logging.getLogger("lexigram_cache_django")


class _Refill:
    """The write-through rows saved in one transaction on one database, by model."""

    __slots__ = ("done", "pks", "using")

    def __init__(self, using: str) -> None:
        self.using = using
        self.pks: dict[type[Model], set[Any]] = {}
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        for model, pks in self.pks.items():
            refill(model, pks, using=self.using)


class _FlushThenRefill(_Flush):
    """Invalidation's on_commit callback, followed by the refill of the same transaction.

    Riding on the invalidation callback (it *is* one, so invalidation keeps batching the
    transaction into it) orders the two: the first callback to run invalidates every
    tag of the transaction, then reads the saved rows back. A separate callback could
    run before a later save's invalidation, and store a row that is then dropped.
    """

    __slots__ = ("refill",)

    def __init__(self, flush: _Flush, refill: _Refill) -> None:
        super().__init__(flush.batch)
        self.refill = refill

    def __call__(self) -> None:
        super().__call__()
        self.refill()


def refill(model: type[Model], pks: Iterable[Any], *, using: str) -> None:
    """Read ``pks`` back from ``using`` and store them for cached lookups by pk.

    Errors are logged, never raised: the commit already happened, and an entry that was
    not stored is only a miss later.
    """
    try:
        CachedLookup(model._base_manager.using(using)).get_many(sorted(pks, key=repr))
    except Exception:
        logger.exception("write-through of %s %s failed", model._meta.label, sorted(pks))


def _post_save(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    if not entry_for(sender).write_through:
        return
    connection = connections[using]
    model = sender._meta.concrete_model or sender
    if not connection.in_atomic_block:
        refill(model, [instance.pk], using=using)  # autocommit: invalidated already
        return
    pending: list[Any] = connection.run_on_commit
    batch: _Refill | None = None
    for entry in reversed(pending[-8:]):  # a loop of saves: look at the last few only
        callback = entry[1]
        if isinstance(callback, _FlushThenRefill) and not callback.refill.done:
            batch = callback.refill
            break
    if batch is None:
        batch = _Refill(using)
    batch.pks.setdefault(model, set()).add(instance.pk)
    # A pk added by a savepoint later rolled back is only read back: harmless.
    last = pending[-1][1] if pending else None
    if isinstance(last, _Flush) and not isinstance(last, _FlushThenRefill):
        # The invalidation receiver just registered it for this save: wrap it.
        pending[-1] = (pending[-1][0], _FlushThenRefill(last, batch), *pending[-1][2:])
    else:  # invalidation not connected before us: refill on a callback of our own
        connection.on_commit(batch)


def _uid(model: type[Model]) -> str:
    return f"lexigram-write-through:{model._meta.label}"


def connect() -> None:
    """Connect ``post_save`` for the write-through models (after ``invalidation.connect``,
    so each commit's invalidation runs before its refill)."""
    for entry in model_entries():
        if entry.write_through:
            signals.post_save.connect(
                _post_save, sender=entry.model, dispatch_uid=_uid(entry.model), weak=False
            )
