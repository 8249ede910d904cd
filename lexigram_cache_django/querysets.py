"""``InvalidatingQuerySet``: the queryset paths that send no per-row signals, invalidated.

``update()``, ``bulk_create()``, ``bulk_update()`` and queryset ``delete()`` bypass
``post_save``/``post_delete``; this queryset invalidates the tags they touch, after
commit, like the signal receivers of :mod:`.invalidation` do for single rows.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from typing import Any, TypeVar

from django.apps import apps
from django.db.models import Model, QuerySet

from .invalidation import (
    Change,
    extra_tags,
    has_extra_tags,
    instance_tags,
    invalidate_on_commit,
    rows_of,
)
from .tags import TagLike

M = TypeVar("M", bound=Model)

_in_bulk_update: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lexigram_in_bulk_update", default=False
)


class InvalidatingQuerySet(QuerySet[M]):
    """A ``QuerySet`` that invalidates on ``update()``, ``bulk_create()``,
    ``bulk_update()`` and ``delete()``: ``objects = InvalidatingQuerySet.as_manager()``.

    These paths send no per-row signals, so here the model tag is invalidated, plus the
    row tags (and extra tags, old and new) of the rows touched, found by one extra
    ``SELECT`` of their pks before the write (three queries in all for models with extra
    tags). A row that starts to match ``update()``'s filter between that ``SELECT`` and
    the ``UPDATE`` gets only the model tag. Subclass it instead of ``QuerySet`` to add
    your own methods.
    """

    def update(self, **kwargs: Any) -> int:
        if self.query.is_sliced or _in_bulk_update.get():
            return super().update(**kwargs)  # sliced: Django raises its error
        using = self.db
        pks = list(self.order_by().values_list("pk", flat=True))
        extra = has_extra_tags(self.model)
        tags: list[TagLike] = [self.model]
        tags += [(self.model, pk) for pk in pks]
        if extra:
            tags += [tag for row in rows_of(self.model, using, pks) for tag in extra_tags(row)]
        count = super().update(**kwargs)
        if extra:
            tags += [tag for row in rows_of(self.model, using, pks) for tag in extra_tags(row)]
        invalidate_on_commit(tags, using=using, change=Change("update", self.model))
        return count

    update.alters_data = True  # type: ignore[attr-defined]

    def bulk_update(
        self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        objs = list(objs)
        using = self.db
        tags: list[TagLike] = [self.model]
        if has_extra_tags(self.model):
            pks = [obj.pk for obj in objs]
            tags += [tag for row in rows_of(self.model, using, pks) for tag in extra_tags(row)]
        token = _in_bulk_update.set(True)  # Django's bulk_update calls update(): once is enough
        try:
            count = super().bulk_update(objs, fields, batch_size)
        finally:
            _in_bulk_update.reset(token)
        for obj in objs:
            tags += instance_tags(obj)
        invalidate_on_commit(tags, using=using, change=Change("bulk_update", self.model))
        return count

    bulk_update.alters_data = True  # type: ignore[attr-defined]

    def bulk_create(self, objs: Iterable[M], *args: Any, **kwargs: Any) -> list[M]:
        created = super().bulk_create(objs, *args, **kwargs)
        tags: list[TagLike] = [self.model]
        for obj in created:
            if obj.pk is not None:  # backends that cannot return pks leave them unset
                tags += instance_tags(obj)
        invalidate_on_commit(tags, using=self.db, change=Change("bulk_create", self.model))
        return created

    bulk_create.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> tuple[int, dict[str, int]]:
        """Rows of registered models also get ``post_delete`` (Django skips its fast path
        for models with receivers); here every model the delete reached gets its tag."""
        using = self.db
        result = super().delete()
        tags: list[TagLike] = [self.model]
        tags += [apps.get_model(label) for label in result[1]]
        invalidate_on_commit(tags, using=using, change=Change("delete", self.model))
        return result

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]
