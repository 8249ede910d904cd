"""Record the tags model changes invalidate, with the change behind each.

Recording hooks :data:`lexigram_cache_django.invalidation.observers`: an entry is made
when the caches were told, that is after the commit (in a Django ``TestCase``, only
inside ``captureOnCommitCallbacks(execute=True)`` or :func:`flush_pending_invalidations`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from django.db import DEFAULT_DB_ALIAS, connections

from .. import invalidation
from ..invalidation import Change
from ..tags import TagLike, tag_names


@dataclass(frozen=True)
class Invalidation:
    """One flush: the tags invalidated, and ``(tags, Change)`` for each model change."""

    tags: tuple[str, ...]
    changes: tuple[tuple[tuple[str, ...], Change], ...]


#: Active logs, innermost last: what the module-level assertions read.
_active: list[InvalidationLog] = []


class InvalidationLog:
    """Every invalidation while started (``with InvalidationLog() as log:``)."""

    def __init__(self) -> None:
        self.entries: list[Invalidation] = []

    def _observe(
        self, names: tuple[str, ...], changes: tuple[tuple[tuple[str, ...], Change], ...]
    ) -> None:
        self.entries.append(Invalidation(names, changes))

    def start(self) -> InvalidationLog:
        invalidation.observers.append(self._observe)
        _active.append(self)
        return self

    def stop(self) -> None:
        if self._observe in invalidation.observers:
            invalidation.observers.remove(self._observe)
        if self in _active:
            _active.remove(self)

    def __enter__(self) -> InvalidationLog:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def clear(self) -> None:
        """Forget what was recorded so far (e.g. after creating fixtures)."""
        self.entries.clear()

    @property
    def tags(self) -> set[str]:
        """Every tag name invalidated since the log started (or was cleared)."""
        return {name for entry in self.entries for name in entry.tags}

    def changes_for(self, tag: TagLike) -> list[Change]:
        """The model changes that asked for ``tag`` (a model, ``(Model, pk)``, a name...)."""
        (name,) = tag_names(tag)
        return [
            change for entry in self.entries for names, change in entry.changes if name in names
        ]

    def describe(self) -> str:
        if not self.entries:
            return "nothing was invalidated"
        lines = []
        for entry in self.entries:
            causes = ", ".join(
                f"{c.action} {c.model.__name__}"
                + (f" pk={c.instance.pk!r}" if c.instance is not None else "")
                for _, c in entry.changes
            )
            lines.append(f"  {', '.join(entry.tags)}" + (f"  <- {causes}" if causes else ""))
        return "invalidated:\n" + "\n".join(lines)

    def assert_invalidated(self, *tags: TagLike | Iterable[TagLike]) -> None:
        missing = [name for name in _names(tags) if name not in self.tags]
        if missing:
            raise AssertionError(f"not invalidated: {', '.join(missing)}; {self.describe()}")

    def assert_not_invalidated(self, *tags: TagLike | Iterable[TagLike]) -> None:
        found = [name for name in _names(tags) if name in self.tags]
        if found:
            names = ", ".join(found)
            raise AssertionError(f"invalidated, unexpectedly: {names}; {self.describe()}")


def _names(tags: tuple[TagLike | Iterable[TagLike], ...]) -> list[str]:
    names: list[str] = []
    for tag in tags:
        names += tag_names(tag)
    if not names:
        raise ValueError("name at least one tag")
    return names


def active_log() -> InvalidationLog:
    if not _active:
        raise RuntimeError(
            "no invalidations are being recorded: use the `invalidations` pytest fixture, "
            "CacheTestMixin, or `with InvalidationLog():`"
        )
    return _active[-1]


def flush_pending_invalidations(using: str | None = None) -> int:
    """Invalidate now what changes so far queued for the commit on ``using``.

    In a Django ``TestCase`` nothing commits: the rows made in ``setUp`` (or
    ``setUpTestData``) queue invalidations that would join the test's own batch and be
    flushed by its first ``captureOnCommitCallbacks(execute=True)``. Calling this after
    creating fixtures does what their commit would have done in production. Returns the
    number of batches flushed.
    """
    flushed = 0
    for entry in connections[using or DEFAULT_DB_ALIAS].run_on_commit:
        callback = entry[1]  # (savepoint ids, callback, robust)
        batch = getattr(callback, "batch", None)
        if isinstance(callback, invalidation._Flush) and batch is not None and not batch.flushed:
            batch.flush()  # the callback stays queued, now a no-op
            flushed += 1
    return flushed
