"""Cached model lookups by primary key or unique field: ``Pet.objects.cached().get(pk=1)``.

A lookup reads one cache entry per row, tagged with the row's tag (and its multi-table
parents' and ``select_related`` rows' tags), so model-signal invalidation drops it when
the row changes, after the commit. Misses go through ``get_or_set``: single flight, and
tag versions read *before* the database is, so a row read before a concurrent commit is
stored already stale. ``get_many`` reads a batch in one cache round trip and loads every
miss with one ``in_bulk`` query. Rows that do not exist are cached too (``cache_missing``):
by pk under the row's tag (an insert with that pk bumps it), by another unique field
under the model's tag (any insert bumps it).

Built on the public cache API (``caches[alias]``, ``get``/``get_many``/``get_or_set`` with
``tags=``) and pickled model instances, so it needs a serializer that pickles (the
default) or the memory backend.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.db.models import Field, IntegerField, Manager, Model, QuerySet
from django.db.models.base import ModelState

from .exceptions import CacheConfigurationError
from .lookup_checks import check_model, check_queryset, checked_cache, related_tags, shape
from .model_options import entry_for
from .querysets import InvalidatingQuerySet
from .tags import TagLike, tag_names

M = TypeVar("M", bound=Model)
_new = object.__new__

#: Stored for a row that does not exist (a ``str``: every serializer stores it natively).
ABSENT = "lexigram:absent-row"
#: Misses loaded per ``in_bulk`` (each miss nests one ``get_or_set`` call: see _Batch).
BATCH = 64
#: get_or_set attempts before a lookup handed stale results queries by itself.
_TRIES = 3
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:@+=-]{1,64}$")


class _Moved(Exception):
    """Raised inside a computation whose row's tags changed since they were read: the row
    is the answer, but it is not stored under tags it no longer has."""

    def __init__(self, row: Model | None) -> None:
        super().__init__("row changed while loading; not cached")
        self.row = row


class CachedLookup(Generic[M]):
    """Cached ``get()``/``get_many()`` over a queryset's model, database and row shape.

    Made by ``queryset.cached()`` or :func:`cached`. The queryset may use ``using()``,
    ``only()``/``defer()`` and ``select_related()`` (each shape gets its own entries);
    filters, annotations, ``values()``, slices and ``prefetch_related()`` are refused,
    since an entry keyed by one field value cannot honour them.
    """

    def __init__(
        self,
        queryset: QuerySet[M],
        *,
        cache: str | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        cache_missing: bool = True,
    ) -> None:
        model = queryset.model
        check_queryset(queryset)
        check_model(model)
        entry = entry_for(model)
        self.alias = cache or entry.cache
        self.cache = checked_cache(self.alias)
        self.queryset = queryset
        self.model = model
        self.db = queryset.db
        self.timeout = entry.timeout if timeout is DEFAULT_TIMEOUT else timeout
        self.cache_missing = cache_missing
        self._shape = shape(queryset)
        self._related = bool(queryset.query.select_related)
        self._attnames = tuple(f.attname for f in model._meta.concrete_fields)
        self._prefix = f"lexigram:row:{model._meta.label_lower}:{self.db}:{self._shape}"

    # -- keys and tags --------------------------------------------------------------

    def field(self, name: str) -> Field[Any, Any]:
        """The unique field a lookup names (``pk``, the pk's name or attname, a unique
        field or its attname, with or without ``__exact``)."""
        opts = self.model._meta
        name = name.removesuffix("__exact")
        if name == "pk":
            return opts.pk
        for field in opts.concrete_fields:
            if name in (field.name, field.attname):
                if field.primary_key or field.unique:
                    return field
                break
        raise CacheConfigurationError(
            f"cached lookups are by primary key or a unique field; {opts.label}.{name} is "
            "neither (use the ORM for other filters, or @cached for query results)"
        )

    def key(self, field: Field[Any, Any], value: Any) -> str:
        if type(value) is int:  # the common pk: always a safe key (hot in get_many)
            return f"{self._prefix}:{field.attname}={value}"
        text = str(value)
        if not _SAFE_VALUE.match(text):
            text = "h" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self._prefix}:{field.attname}={text}"

    def normalize(self, field: Field[Any, Any], value: Any) -> Any:
        """The value as the database compares it: ``"1"`` and ``1`` share an entry."""
        if isinstance(value, Model):
            value = value.pk
        target: Field[Any, Any] = getattr(field, "target_field", field)
        if type(value) is int and isinstance(target, IntegerField):
            return value  # what to_python returns for it, without the call
        return target.to_python(value)

    def row_tags(self, pk: Any) -> list[TagLike]:
        """The row's tag and its multi-table parents' (their saves change this row)."""
        models: list[type[Model]] = [self.model, *self.model._meta.get_parent_list()]
        return [(model, pk) for model in models]

    def tags_of(self, row: Model | None, field: Field[Any, Any], value: Any) -> tuple[str, ...]:
        """Tags an entry for ``value`` carries: the row's (and its ``select_related``
        rows'), or for a missing row the row tag (pk) or the model tag (other fields)."""
        if row is None:
            return tag_names(self.row_tags(value) if field.primary_key else [self.model])
        tags = self.row_tags(row.pk)
        if self._related:
            tags += related_tags(row)
        return tag_names(tags)

    # -- lookups --------------------------------------------------------------------

    def _one(self, kwargs: dict[str, Any]) -> tuple[Field[Any, Any], Any, str | None]:
        """The field, normalized value and key of a ``get()`` (key None: no row can match)."""
        if len(kwargs) != 1:
            raise TypeError(
                "cached().get() takes exactly one lookup, by primary key or a unique field"
            )
        ((name, raw),) = kwargs.items()
        field = self.field(name)
        value = self.normalize(field, raw)
        # No row has a NULL primary key or matches "= NULL".
        return field, value, None if value is None else self.key(field, value)

    def _found(self, row: Any) -> M:
        if row is None or row == ABSENT:
            raise self.model.DoesNotExist(  # type: ignore[attr-defined]
                f"{self.model._meta.object_name} matching query does not exist."
            )
        return self.restore(row)

    def get(self, **kwargs: Any) -> M:
        """One row by a unique field, like ``QuerySet.get``: one cache round trip on a hit,
        ``DoesNotExist`` for a missing row (from the cache too, with ``cache_missing``)."""
        field, value, key = self._one(kwargs)
        row = None if key is None else self.cache.get(key)
        if row is None and key is not None:
            row = self._load_one(key, field, value)
        return self._found(row)

    async def aget(self, **kwargs: Any) -> M:
        """Async ``get()``: a hit is one async cache read; a miss loads the row in a thread
        (the ORM is sync), under the same single flight and tag rules as ``get()``."""
        field, value, key = self._one(kwargs)
        row = None if key is None else await self.cache.aget(key)
        if row is None and key is not None:
            row = await sync_to_async(self._load_one)(key, field, value)
        return self._found(row)

    def _load_one(self, key: str, field: Field[Any, Any], value: Any) -> Any:
        if field.primary_key and not self._related:  # tags known before reading
            return self._get_or_load(key, field, value, self.tags_of(None, field, value))
        return self._probe_and_load(key, field, value)

    def get_many(self, id_list: Iterable[Any], field_name: str = "pk") -> dict[Any, M]:
        """Rows by pk (or a unique field), like ``in_bulk``: ``{value: row}`` without the
        missing ones. One cache round trip; misses loaded by one ``in_bulk`` per
        :data:`BATCH` misses."""
        field = self.field(field_name)
        keys = self._keys(field, id_list)
        if not keys:
            return {}
        found = self.cache.get_many(list(keys.values()))
        return self._settle_many(field, list(keys), keys, found)

    def _keys(self, field: Field[Any, Any], id_list: Iterable[Any]) -> dict[Any, str]:
        """``{normalized value: key}`` in the order asked, once each, without NULLs. One
        loop, integers inline: this is most of a batch hit's per-row work."""
        target = getattr(field, "target_field", field)
        ints = isinstance(target, IntegerField)
        prefix = f"{self._prefix}:{field.attname}="
        keys: dict[Any, str] = {}
        for raw in id_list:
            value = raw if ints and type(raw) is int else self.normalize(field, raw)
            if value is None or value in keys:
                continue
            keys[value] = f"{prefix}{value}" if type(value) is int else self.key(field, value)
        return keys

    async def aget_many(self, id_list: Iterable[Any], field_name: str = "pk") -> dict[Any, M]:
        """Async ``get_many()``: one async cache read; misses, if any, are loaded in a
        thread (one ``in_bulk`` per :data:`BATCH`, as ``get_many()``)."""
        field = self.field(field_name)
        keys = self._keys(field, id_list)
        if not keys:
            return {}
        found = await self.cache.aget_many(list(keys.values()))
        if len(found) == len(keys):
            return self._settle_many(field, list(keys), keys, found)  # no query: no thread
        return await sync_to_async(self._settle_many)(field, list(keys), keys, found)

    def _settle_many(
        self, field: Field[Any, Any], values: list[Any], keys: dict[Any, str], found: Any
    ) -> dict[Any, M]:
        """The hits restored, the misses loaded (one ``in_bulk`` per :data:`BATCH`)."""
        result: dict[Any, M] = {}
        missing: list[Any] = []
        restore, get = self.restore, found.get
        model, db = self.model, self.db
        for value, key in keys.items():
            row = get(key)
            if type(row) is dict:  # restore() inlined: this loop is a batch hit's cost
                obj = _new(model)
                state = _new(ModelState)
                state.db = db
                state.adding = False
                row["_state"] = state
                obj.__dict__ = row
                result[value] = obj
            elif row is None:
                missing.append(value)
            elif row != ABSENT:
                result[value] = restore(row)
        if not missing:
            return result
        for start in range(0, len(missing), BATCH):
            chunk = missing[start : start + BATCH]
            for value, row in _Batch(self, field, chunk, keys).run().items():
                result[value] = restore(row)
        return {value: result[value] for value in values if value in result}

    in_bulk = get_many
    ain_bulk = aget_many

    # -- loading --------------------------------------------------------------------

    def load(self, field: Field[Any, Any], values: list[Any]) -> dict[Any, M]:
        """One query for ``values`` (``in_bulk`` on the lookup's queryset)."""
        if field.primary_key:
            return self.queryset.in_bulk(values)
        return self.queryset.in_bulk(values, field_name=field.attname)

    def stored(self, row: M | None) -> Any:
        """What an entry holds: ABSENT, or the row's loaded fields as ``{attname: value}``.

        A plain dict decodes several times faster than a pickled model instance (no
        ``apps.get_model``, no ``__reduce__``); the memory backend copies a dict of
        immutable values instead of pickling it; and the dict a read returns becomes the
        instance's ``__dict__`` as it is. Rows with ``select_related`` objects are stored
        as instances, which carry them.
        """
        if row is None:
            return ABSENT
        if self._related:
            return row
        loaded = row.__dict__
        return {name: loaded[name] for name in self._attnames if name in loaded}

    def restore(self, stored: Any) -> M:
        """A model instance from an entry, as ``Model.from_db`` would leave it (like
        unpickling, without calling ``__init__``).

        The entry's dict is adopted as the instance's ``__dict__``: lexigram backends
        hand every reader its own copy (decoded, or copied by the memory backend).
        """
        if type(stored) is dict:
            obj: M = _new(self.model)
            state = _new(ModelState)
            state.db = self.db
            state.adding = False
            stored["_state"] = state
            obj.__dict__ = stored
            return obj
        if type(stored) is tuple:  # (attnames, values): an older release's entry
            return self.restore(dict(zip(*stored)))
        return stored  # type: ignore[no-any-return]

    def _get_or_load(
        self, key: str, field: Field[Any, Any], value: Any, expected: tuple[str, ...]
    ) -> Any:
        """``get_or_set`` of one row, trusting only what is fresh after the call began.

        A value computed by this call is: its tag versions and then the row were read
        after the call started. A value handed over by another thread's computation
        (single flight) may have been read before a commit whose invalidation has run
        since: it is re-read from the cache, where a stale entry reads as a miss, and
        the call tries again (then queries itself).
        """
        for _ in range(_TRIES):
            ran: list[bool] = []

            def compute(ran: list[bool] = ran) -> Any:
                ran.append(True)
                row = self.load(field, [value]).get(value)
                if self.tags_of(row, field, value) != expected:
                    raise _Moved(row)
                if row is None and not self.cache_missing:
                    raise _Moved(None)
                return self.stored(row)

            try:
                got = self.cache.get_or_set(
                    key, compute, self.timeout, tags=expected, early_refresh=False
                )
            except _Moved as moved:
                if ran:
                    return moved.row
                continue
            if ran:
                return got
            again = self.cache.get(key)
            if again is not None:
                return again
        return self.load(field, [value]).get(value)

    def _probe_and_load(self, key: str, field: Field[Any, Any], value: Any) -> Any:
        """Tags depend on the row (a unique field's pk, ``select_related`` rows): read it
        once to learn them, then load it again under ``get_or_set`` with those tags."""
        probe = self.load(field, [value]).get(value)
        return self._get_or_load(key, field, value, self.tags_of(probe, field, value))


class _Batch(Generic[M]):
    """Load a chunk of misses with one query, each stored with versions read before it.

    ``get_or_set`` reads an entry's tag versions, then calls the computation, then
    stores. To read every miss's versions before the one ``in_bulk``, the computation of
    miss *i* makes the ``get_or_set`` call of miss *i+1*; the innermost loads them all.
    Keys are nested in sorted order, so two batches in flight never wait on each other
    in a cycle. A miss another caller filled meanwhile is a hit and is skipped.
    """

    def __init__(
        self, lookup: CachedLookup[M], field: Field[Any, Any], values: list[Any], keys: Any
    ) -> None:
        self.lookup = lookup
        self.field = field
        self.keys: Mapping[Any, str] = keys
        self.values = sorted(values, key=lambda v: keys[v])
        self.expected: dict[Any, tuple[str, ...]] = {}
        known = field.primary_key and not lookup._related
        probe = {} if known else lookup.load(field, self.values)
        for value in self.values:
            row = None if known else probe.get(value)
            self.expected[value] = lookup.tags_of(row, field, value)
        self.pending: list[Any] = []
        self.uncached: list[Any] = []  # handed over by another flight, stale since
        self.loaded: dict[Any, M] = {}
        self.result: dict[Any, M] = {}

    def run(self) -> dict[Any, M]:
        self._from(0)
        for value in self.uncached:
            row = self.loaded.get(value)
            if row is not None:
                self.result[value] = row
        return self.result

    def _from(self, index: int) -> None:
        lookup = self.lookup
        while index < len(self.values):
            value = self.values[index]
            computed: list[bool] = []
            compute = self._compute(value, index, computed)
            key = self.keys[value]
            try:
                row = lookup.cache.get_or_set(
                    key, compute, lookup.timeout, tags=self.expected[value], early_refresh=False
                )
            except _Moved as moved:
                row = moved.row if computed else None
            if not computed:  # a hit, or another thread's result: trust only a fresh entry
                row = lookup.cache.get(key)
                if row is None:
                    self.uncached.append(value)
            if row is not None and row != ABSENT:
                self.result[value] = row
            if computed:
                return  # the computation went on with the next misses
            index += 1
        if self.pending or self.uncached:
            self.loaded = lookup.load(self.field, self.pending + self.uncached)

    def _compute(self, value: Any, index: int, computed: list[bool]) -> Callable[[], Any]:
        def compute() -> Any:
            computed.append(True)
            self.pending.append(value)
            self._from(index + 1)
            row = self.loaded.get(value)
            lookup = self.lookup
            if lookup.tags_of(row, self.field, value) != self.expected[value]:
                raise _Moved(row)
            if row is None and not lookup.cache_missing:
                raise _Moved(None)
            return lookup.stored(row)

        return compute


# -- how to reach it ----------------------------------------------------------------------


def cached(
    source: QuerySet[M] | Manager[M] | type[M],
    *,
    cache: str | None = None,
    timeout: Any = DEFAULT_TIMEOUT,
    cache_missing: bool = True,
) -> CachedLookup[M]:
    """Cached lookups over any model, manager or queryset: ``cached(Pet).get(pk=1)``,
    ``cached(Pet.objects.select_related("owner")).get_many([1, 2])``."""
    if isinstance(source, type):
        queryset = source._default_manager.all()
    elif isinstance(source, Manager):
        queryset = source.all()
    else:
        queryset = source
    return CachedLookup(queryset, cache=cache, timeout=timeout, cache_missing=cache_missing)


class CachedQuerySetMixin(Generic[M]):
    """Adds ``.cached()`` to a ``QuerySet`` subclass (your own, or Django's)."""

    def cached(
        self,
        *,
        cache: str | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        cache_missing: bool = True,
    ) -> CachedLookup[M]:
        """Cached ``get()``/``get_many()`` over this queryset's shape and database."""
        queryset: QuerySet[M] = self  # type: ignore[assignment]
        return CachedLookup(queryset, cache=cache, timeout=timeout, cache_missing=cache_missing)


class CachedQuerySet(CachedQuerySetMixin[M], InvalidatingQuerySet[M]):
    """:class:`InvalidatingQuerySet` with ``.cached()``: ``objects = CachedManager()``."""


class CachedManager(Manager.from_queryset(CachedQuerySet)):  # type: ignore[misc]
    """A manager whose querysets invalidate on bulk paths and have ``.cached()``."""
