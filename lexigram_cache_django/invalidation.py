"""Model-signal invalidation: a saved, deleted or re-linked row invalidates its tags on commit.

For every *registered* model, a change invalidates the model's tag (``Pet``: lists of
pets), the row's tag (``(Pet, 42)``: pages showing that pet) and any extra tags the model
declares (a pet's owner). Models are registered by ``LEXIGRAM_CACHE["INVALIDATE_MODELS"]``
(``"app_label.Model"`` strings), :func:`register` or the :func:`register_model` class
decorator; extra tags come from ``register(..., extra_tags=callable)`` or a
``cache_invalidation_tags()`` method on the model.

Covered: ``post_save`` (with the *old* row's extra tags too, so moving a pet to another
owner invalidates both owners), ``post_delete``, ``m2m_changed`` (both sides, including
``clear()``), and, through :class:`InvalidatingQuerySet`, the queryset paths that send no
signals: ``update()``, ``bulk_create()``, ``bulk_update()`` and ``delete()``.

Invalidation runs on ``transaction.on_commit`` of the database that was written: until
the commit, readers see the old row and may cache it, and the invalidation after the
commit makes that entry stale. Outside a transaction it runs at once; a rolled-back
transaction invalidates nothing. All the changes of one transaction share one flush, so
a loop saving 1,000 rows costs one ``invalidate_tags`` call per cache at commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, signals
from django.db.models.fields.related import ManyToManyField

from .backends.base import LexigramCache
from .conf import app_setting
from .exceptions import CacheConfigurationError
from .failfast import one_operation
from .model_options import model_entries
from .tags import TagLike, tag_names
from .warming import tags_invalidated

logger = logging.getLogger("lexigram_cache_django")

M = TypeVar("M", bound=Model)
ExtraTags = Callable[[Any], Iterable[TagLike] | TagLike | None]

#: Name of the optional model method returning extra tags to invalidate with a row.
TAGS_METHOD = "cache_invalidation_tags"
#: Rows per ``pk__in`` query when the queryset paths load rows (SQLite's variable limit).
_CHUNK = 500


@dataclass(frozen=True)
class Change:
    """What made tags stale: shown to :data:`observers` (e.g. ``lexigram_cache_django.testing``).

    ``action``: ``created``, ``saved``, ``deleted``, ``m2m post_add`` (``post_remove``,
    ``post_clear``), or a queryset path (``update``, ``bulk_update``, ``bulk_create``,
    ``delete``); ``instance`` is None for the queryset paths.
    """

    action: str
    model: type[Model]
    instance: Model | None = None


#: An observer gets the tags just invalidated and, for each change that asked for some of
#: them, ``(its tags, the Change)``; a direct ``invalidate_now`` has no changes.
Observer = Callable[[tuple[str, ...], tuple[tuple[tuple[str, ...], Change], ...]], None]
#: Called after every invalidation, once the caches were told: the testing helpers'
#: ``invalidations`` fixture appends here. Empty in production (then no change is kept).
observers: list[Observer] = []


# -- which caches ------------------------------------------------------------------------


def invalidation_aliases() -> tuple[str, ...]:
    """Cache aliases that model changes invalidate.

    ``LEXIGRAM_CACHE["INVALIDATE_CACHES"]`` if set (each must be a lexigram backend);
    otherwise every alias in ``CACHES`` whose backend is a lexigram backend.
    """
    configured = app_setting("INVALIDATE_CACHES")
    if configured is None:
        return tuple(alias for alias in settings.CACHES if isinstance(caches[alias], LexigramCache))
    if isinstance(configured, str) or not isinstance(configured, list | tuple):
        raise CacheConfigurationError(
            'LEXIGRAM_CACHE["INVALIDATE_CACHES"] must be a list of cache aliases.'
        )
    for alias in configured:
        if alias not in settings.CACHES:
            raise CacheConfigurationError(
                f'LEXIGRAM_CACHE["INVALIDATE_CACHES"] names {alias!r}, which is not in CACHES.'
            )
        if not isinstance(caches[alias], LexigramCache):
            raise CacheConfigurationError(
                f'LEXIGRAM_CACHE["INVALIDATE_CACHES"] names {alias!r}, whose backend '
                f"{type(caches[alias]).__name__} has no tags; list only lexigram backends."
            )
    return tuple(configured)


def _tag_caches(aliases: Sequence[str] | None) -> list[tuple[str, LexigramCache]]:
    found: list[tuple[str, LexigramCache]] = []
    for alias in invalidation_aliases() if aliases is None else aliases:
        cache = caches[alias]
        if not isinstance(cache, LexigramCache):
            raise CacheConfigurationError(
                f"cache {alias!r} ({type(cache).__name__}) has no tags to invalidate"
            )
        found.append((alias, cache))
    return found


def invalidate_now(
    tags: Iterable[TagLike] | TagLike | None,
    aliases: Sequence[str] | None = None,
    *,
    changes: Sequence[tuple[tuple[str, ...], Change]] = (),
) -> None:
    """Invalidate ``tags`` in ``aliases`` (default: :func:`invalidation_aliases`) now.

    Every alias is attempted; the first error (a backend with ``FAIL_SILENTLY`` False)
    is raised after the others were invalidated.
    """
    names = tag_names(tags)
    if not names:
        return
    error: Exception | None = None
    for alias, cache in _tag_caches(aliases):
        try:
            with one_operation():
                cache.invalidate_tags(*names)
        except Exception as exc:
            logger.error("invalidating %s in cache %r failed: %s", names, alias, exc)
            error = error or exc
    tags_invalidated(names)  # re-warm the warmers that fill these tags (rewarm=True)
    _observed(names, changes)
    if error is not None:
        raise error


async def ainvalidate_now(
    tags: Iterable[TagLike] | TagLike | None, aliases: Sequence[str] | None = None
) -> None:
    """Async :func:`invalidate_now`, through the backends' async API."""
    names = tag_names(tags)
    if not names:
        return
    error: Exception | None = None
    for alias, cache in _tag_caches(aliases):
        try:
            with one_operation():
                await cache.ainvalidate_tags(*names)
        except Exception as exc:
            logger.error("invalidating %s in cache %r failed: %s", names, alias, exc)
            error = error or exc
    _observed(names, ())
    if error is not None:
        raise error


def _observed(names: Sequence[str], changes: Sequence[tuple[tuple[str, ...], Change]]) -> None:
    for observer in tuple(observers):
        observer(tuple(names), tuple(changes))


# -- after commit ------------------------------------------------------------------------


class _Batch:
    """Tags collected during one transaction for one set of aliases."""

    __slots__ = ("aliases", "changes", "flushed", "names")

    def __init__(self, aliases: tuple[str, ...] | None) -> None:
        self.aliases = aliases
        self.names: set[str] = set()
        self.changes: list[tuple[tuple[str, ...], Change]] = []  # kept only for observers
        self.flushed = False

    def flush(self) -> None:
        if self.flushed:
            return
        self.flushed = True
        invalidate_now(sorted(self.names), self.aliases, changes=self.changes)


class _Flush:
    """The on_commit callback of one change; the first to run flushes the whole batch.

    Each change registers its own callback (so savepoint rollbacks and Django's
    ``captureOnCommitCallbacks`` see every change) but the callbacks of a transaction
    share a batch, so the cache is called once. A change rolled back to a savepoint may
    leave its tags in the batch: that over-invalidates, which is harmless.
    """

    __slots__ = ("batch",)

    def __init__(self, batch: _Batch) -> None:
        self.batch = batch

    def __call__(self) -> None:
        self.batch.flush()


def invalidate_on_commit(
    tags: Iterable[TagLike] | TagLike | None,
    *,
    using: str | None = None,
    aliases: Sequence[str] | None = None,
    change: Change | None = None,
) -> None:
    """Invalidate ``tags`` when the current transaction on ``using`` commits.

    Outside a transaction (autocommit: the change is already committed) it runs at once;
    if the transaction rolls back, nothing is invalidated. ``change``: what caused it,
    for :data:`observers`.
    """
    names = tag_names(tags)  # resolved now: instances may change before the commit
    if not names:
        return
    key = None if aliases is None else tuple(aliases)
    caused = [(tuple(names), change)] if change is not None and observers else []
    connection = connections[using or DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:
        invalidate_now(names, key, changes=caused)
        return
    pending = getattr(connection, "run_on_commit", None)
    batch: _Batch | None = None
    if pending:
        last = pending[-1][1]
        if isinstance(last, _Flush) and not last.batch.flushed and last.batch.aliases == key:
            batch = last.batch
    if batch is None:
        batch = _Batch(key)
    batch.names.update(names)
    batch.changes += caused
    connection.on_commit(_Flush(batch))


# -- registry ----------------------------------------------------------------------------


@dataclass
class Registration:
    """A registered (concrete) model and the callables giving its extra tags."""

    model: type[Model]
    extra: list[ExtraTags] = field(default_factory=list)

    def has_extra(self) -> bool:
        return bool(self.extra) or callable(getattr(self.model, TAGS_METHOD, None))


_registry: dict[type[Model], Registration] = {}
_connected = False


def _concrete(model: type[Model]) -> type[Model]:
    return model._meta.concrete_model or model


def registration(model: type[Model]) -> Registration | None:
    """The registration covering ``model`` (a proxy shares its concrete model's)."""
    return _registry.get(_concrete(model))


def is_registered(model: type[Model]) -> bool:
    return registration(model) is not None


def _covered(model: type[Model]) -> bool:
    """Whether saving ``model`` changes a registered model's rows (its own, or a
    multi-table parent's)."""
    return is_registered(model) or any(map(is_registered, model._meta.get_parent_list()))


def register(model: type[M], *, extra_tags: ExtraTags | None = None) -> type[M]:
    """Invalidate ``model``'s tags, row tags and ``extra_tags(instance)`` on every change.

    Registering twice adds the extra tags of both calls. Works before and after the app
    registry is ready (signals are connected in ``AppConfig.ready()``, or at once after).
    """
    concrete = _concrete(model)
    entry = _registry.setdefault(concrete, Registration(concrete))
    if extra_tags is not None and extra_tags not in entry.extra:
        entry.extra.append(extra_tags)
    if _connected:
        _connect_model_family(concrete)
    return model


@overload
def register_model(model: type[M], /) -> type[M]: ...
@overload
def register_model(*, extra_tags: ExtraTags | None = None) -> Callable[[type[M]], type[M]]: ...
def register_model(
    model: type[M] | None = None, /, *, extra_tags: ExtraTags | None = None
) -> type[M] | Callable[[type[M]], type[M]]:
    """Class decorator form of :func:`register`: ``@register_model`` or
    ``@register_model(extra_tags=lambda pet: [(Owner, pet.owner_id)])``."""
    if model is not None:
        return register(model)

    def decorator(cls: type[M]) -> type[M]:
        return register(cls, extra_tags=extra_tags)

    return decorator


def unregister(model: type[Model]) -> None:
    """Stop invalidating ``model`` (and its proxies) on changes."""
    if _registry.pop(_concrete(model), None) is None:
        return
    for candidate in apps.get_models():
        if not _covered(candidate):
            for signal in (signals.pre_save, signals.post_save, signals.post_delete):
                signal.disconnect(sender=candidate, dispatch_uid=_uid(candidate))


def connect() -> None:
    """Register the models of ``INVALIDATE_MODELS`` and connect every registered model.

    Called by ``AppConfig.ready()``.
    """
    global _connected
    for entry in model_entries():  # entries are strings or dicts: see model_options
        register(entry.model)
    _connected = True
    for model in list(_registry):
        _connect_model_family(model)


def _uid(model: type[Model]) -> str:
    return f"lexigram-invalidation:{model.__module__}.{model.__qualname__}"


def _connect_model_family(concrete: type[Model]) -> None:
    """Connect the save/delete receivers for ``concrete``, its proxies and MTI children,
    and ``m2m_changed`` for every many-to-many relation touching a registered model.

    Receivers are connected per sender, not globally: a model with a ``post_delete``
    receiver loses Django's fast delete, so unregistered models keep theirs.
    """
    for model in apps.get_models():
        if _concrete(model) is concrete or concrete in model._meta.get_parent_list():
            uid = _uid(model)  # the same uid again is a no-op
            signals.pre_save.connect(_pre_save, sender=model, dispatch_uid=uid, weak=False)
            signals.post_save.connect(_post_save, sender=model, dispatch_uid=uid, weak=False)
            signals.post_delete.connect(_post_delete, sender=model, dispatch_uid=uid, weak=False)
        for m2m in model._meta.local_many_to_many:
            if not isinstance(m2m, ManyToManyField):
                continue
            through = m2m.remote_field.through
            if isinstance(through, type) and (
                is_registered(model) or is_registered(m2m.related_model)
            ):
                signals.m2m_changed.connect(
                    _m2m_changed, sender=through, dispatch_uid=_uid(through), weak=False
                )


# -- tags of a row -----------------------------------------------------------------------


def row_tags(instance: Model) -> list[TagLike]:
    """The model and row tags of ``instance``, and of each registered multi-table parent
    (a child's save changes its parents' rows too)."""
    model = type(instance)
    tags: list[TagLike] = [model, (model, instance.pk)]
    for parent in model._meta.get_parent_list():
        if is_registered(parent):
            tags += [parent, (parent, instance.pk)]
    return tags


def extra_tags(instance: Model) -> list[TagLike]:
    """Extra tags declared for ``instance``: registered callables and the model method."""
    found: list[TagLike] = []
    entry = registration(type(instance))
    callables: list[ExtraTags] = list(entry.extra) if entry is not None else []
    method = getattr(instance, TAGS_METHOD, None)
    if callable(method):
        callables.append(lambda _obj: method())
    for func in callables:
        for tag in _as_list(func(instance)):
            if not (isinstance(tag, tuple) and tag[1] is None):  # a null foreign key
                found.append(tag)
    return found


def instance_tags(instance: Model) -> list[TagLike]:
    return row_tags(instance) + extra_tags(instance)


def _as_list(tags: Iterable[TagLike] | TagLike | None) -> list[TagLike]:
    if tags is None:
        return []
    if isinstance(tags, str | Model | type) or (
        isinstance(tags, tuple) and len(tags) == 2 and isinstance(tags[0], type)
    ):
        return [tags]  # type: ignore[list-item]
    return list(tags)


def has_extra_tags(model: type[Model]) -> bool:
    entry = registration(model)
    return (entry is not None and entry.has_extra()) or callable(getattr(model, TAGS_METHOD, None))


def rows_of(model: type[Model], using: str, pks: Sequence[Any]) -> Iterator[Model]:
    """Fresh rows by pk, in chunks."""
    manager = model._base_manager.using(using)
    for start in range(0, len(pks), _CHUNK):
        yield from manager.filter(pk__in=pks[start : start + _CHUNK])


# -- signal receivers --------------------------------------------------------------------

#: Attribute holding the old row's extra tags between pre_save and post_save.
_OLD_TAGS = "_lexigram_old_tags"
#: Attribute holding the pks a pre_clear saw, until post_clear.
_CLEARED = "_lexigram_cleared_pks"


def _pre_save(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    """Remember the extra tags of the row as stored, before the save changes it."""
    if instance.pk is None or not has_extra_tags(sender):
        return
    old = sender._base_manager.using(using).filter(pk=instance.pk).first()
    if old is not None:
        setattr(instance, _OLD_TAGS, extra_tags(old))


def _post_save(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    tags = instance_tags(instance)
    old = instance.__dict__.pop(_OLD_TAGS, None)
    if old:
        tags += old
    action = "created" if kwargs.get("created") else "saved"
    invalidate_on_commit(tags, using=using, change=Change(action, sender, instance))


def _post_delete(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    change = Change("deleted", sender, instance)
    invalidate_on_commit(instance_tags(instance), using=using, change=change)


def _m2m_changed(
    sender: type[Model],
    instance: Model,
    action: str,
    reverse: bool,
    model: type[Model],
    pk_set: set[Any] | None,
    using: str,
    **kwargs: Any,
) -> None:
    """Both sides of the relation changed: ``instance`` and the rows in ``pk_set``."""
    if action == "pre_clear":
        cleared = instance.__dict__.setdefault(_CLEARED, {})
        cleared[sender] = _related_pks(sender, instance, model, reverse, using)
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        pks = sorted(instance.__dict__.get(_CLEARED, {}).pop(sender, []), key=repr)
    else:
        pks = sorted(pk_set or (), key=repr)
    tags: list[TagLike] = []
    if is_registered(type(instance)):
        tags += instance_tags(instance)
    if is_registered(model):
        tags.append(model)
        tags += [(model, pk) for pk in pks]
        if has_extra_tags(model) and pks:
            for row in rows_of(model, using, pks):
                tags += extra_tags(row)
    change = Change(f"m2m {action}", type(instance), instance)
    invalidate_on_commit(tags, using=using, change=change)


def _related_pks(
    through: type[Model], instance: Model, model: type[Model], reverse: bool, using: str
) -> list[Any]:
    """The pks ``instance`` is linked to through ``through`` (before a ``clear()``)."""
    owner = model if reverse else type(instance)
    for m2m in owner._meta.many_to_many:
        if isinstance(m2m, ManyToManyField) and m2m.remote_field.through is through:
            source, target = m2m.m2m_field_name(), m2m.m2m_reverse_field_name()
            if reverse:
                source, target = target, source
            links = through._base_manager.using(using).filter(**{source: instance.pk})
            return list(links.values_list(target, flat=True))
    return []
