# Django's admin classes are generic only in django-stubs, not at runtime:
# mypy: disable-error-code="type-arg"
"""The ModelAdmin that serves the cache pages instead of a changelist and change forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from . import views


class CachePanelAdmin(admin.ModelAdmin):
    """No rows to add, change or delete: viewing needs ``view_cachepanel``, actions
    ``clear_cache`` (superusers have both)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}")

    def has_action_permission(self, request: HttpRequest) -> bool:
        """Whether the user may clear, invalidate, look up or delete keys."""
        return views.can_act(request)

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"

        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            def bound(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                return view(self, request, *args, **kwargs)

            return self.admin_site.admin_view(bound)

        return [
            # Named like a changelist and a change form, so the index, the sidebar, the
            # breadcrumbs and the admin log's links find them.
            path("", wrap(views.alias_list), name=f"{prefix}_changelist"),
            path("<str:alias>/", wrap(views.alias_detail), name=f"{prefix}_change"),
            path("<str:alias>/data.json", wrap(views.alias_data), name=f"{prefix}_data"),
            path("<str:alias>/clear/", wrap(views.clear), name=f"{prefix}_clear"),
            path("<str:alias>/invalidate/", wrap(views.invalidate), name=f"{prefix}_invalidate"),
            path("<str:alias>/key/", wrap(views.lookup_key), name=f"{prefix}_key"),
            path("<str:alias>/delete-key/", wrap(views.delete_key), name=f"{prefix}_delete_key"),
        ]
