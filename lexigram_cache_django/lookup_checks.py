"""What a queryset, model and alias must be for cached lookups, and a row's related tags.

The refusals of :mod:`.lookups`, each with the reason: an entry keyed by one field value
cannot honour filters or slices; a model whose changes are not invalidated, or an alias
they do not reach, would serve rows older than the database.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable

from .backends.base import LexigramCache
from .exceptions import CacheConfigurationError
from .invalidation import invalidation_aliases, is_registered
from .tags import TagLike

#: Aliases found fit for lookups (cleared when CACHES or LEXIGRAM_CACHE change): the check
#: walks every alias, several times what a hit costs.
_fit_aliases: set[str] = set()


def checked_cache(alias: str) -> LexigramCache:
    """``caches[alias]``, if it is a lexigram backend that model changes invalidate."""
    if alias not in _fit_aliases:
        if alias not in settings.CACHES:
            raise CacheConfigurationError(f"cached lookups: {alias!r} is not in CACHES")
        if not isinstance(caches[alias], LexigramCache):
            raise CacheConfigurationError(
                f"cached lookups need a lexigram backend (tags); cache {alias!r} is "
                f"a {type(caches[alias]).__name__}"
            )
        if alias not in invalidation_aliases():
            raise CacheConfigurationError(
                f"cache {alias!r} is not in LEXIGRAM_CACHE['INVALIDATE_CACHES']: model "
                "changes would not invalidate the lookups cached there"
            )
        _fit_aliases.add(alias)
    backend = caches[alias]
    assert isinstance(backend, LexigramCache)
    return backend


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CACHES", "LEXIGRAM_CACHE"):
        _fit_aliases.clear()


setting_changed.connect(_settings_changed, dispatch_uid="lexigram-lookups-aliases")


def check_queryset(queryset: QuerySet[Any]) -> None:
    query = queryset.query
    problems = []
    if query.where:
        problems.append("filters (a manager whose get_queryset() filters counts)")
    if query.is_sliced:
        problems.append("a slice")
    if query.annotations or query.extra:
        problems.append("annotations or extra()")
    if queryset._iterable_class is not ModelIterable:
        problems.append("values()/values_list()")
    if queryset._prefetch_related_lookups:  # type: ignore[attr-defined]
        problems.append("prefetch_related() (related lists are not tagged per row)")
    if query.select_for_update:
        problems.append("select_for_update()")
    if problems:
        raise CacheConfigurationError(
            f"cached() over a {queryset.model._meta.label} queryset with "
            f"{', '.join(problems)}: entries are keyed by one field value, so only "
            "using(), only()/defer() and select_related() are allowed"
        )


def check_model(model: type[Model]) -> None:
    for candidate in (model, *model._meta.get_parent_list()):
        if not is_registered(candidate):
            raise CacheConfigurationError(
                f"cached lookups of {model._meta.label} need {candidate._meta.label} "
                'registered for invalidation (LEXIGRAM_CACHE["INVALIDATE_MODELS"] or '
                "register()): its changes are what keep the entries right"
            )


def shape(queryset: QuerySet[Any]) -> str:
    """What rows look like: the deferred fields and the ``select_related`` tree."""
    names, defer = queryset.query.deferred_loading
    related = queryset.query.select_related
    if not names and not related:
        return "full"
    text = f"{'defer' if defer else 'only'}:{sorted(names)}:{_tree(related)}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _tree(related: Any) -> str:
    if isinstance(related, dict):
        return "{" + ",".join(f"{k}:{_tree(v)}" for k, v in sorted(related.items())) + "}"
    return repr(related)


def related_tags(row: Model) -> list[TagLike]:
    """Row tags of the rows ``select_related`` loaded into ``row``, recursively; the
    model tag of a reverse one-to-one that was empty (creating one changes the answer)."""
    tags: list[TagLike] = []
    for name, obj in row._state.fields_cache.items():
        if obj is None:
            field = _field_named(type(row), name)
            if field is not None and field.auto_created and not field.concrete:
                related = field.related_model
                check_model(related)
                tags.append(related)
            continue
        check_model(type(obj))
        tags += [(model, obj.pk) for model in (type(obj), *type(obj)._meta.get_parent_list())]
        tags += related_tags(obj)
    return tags


def _field_named(model: type[Model], name: str) -> Any:
    for field in model._meta.get_fields():
        cache_name = getattr(field, "cache_name", None) or getattr(field, "name", None)
        accessor = getattr(field, "get_accessor_name", None)
        if name in (cache_name, accessor() if callable(accessor) else None):
            return field
    return None
