# Django's admin classes are generic only in django-stubs, not at runtime:
# mypy: disable-error-code="type-arg"
"""The cache pages' views; each takes the :class:`CachePanelAdmin` first.

Reading needs the view permission; every action (clear, invalidate, look up, delete) needs
``clear_cache``, is a POST (CSRF-checked by ``admin_view``), the destructive ones after a
confirmation page, and each is written to the admin log with the user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.apps import apps
from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from .. import operations
from ..models import CachePanel
from . import figures

Panel = ModelAdmin  # the CachePanelAdmin (not imported: it imports these views)

#: The permission every action needs (view needs ``view_cachepanel``).
ACTION_PERMISSION = "lexigram_cache_django.clear_cache"

TEMPLATES = "lexigram_cache_django/admin/"

_View = TypeVar("_View", bound=Callable[..., HttpResponse])


def allow(*methods: str) -> Callable[[_View], _View]:
    """Answer 405 to other methods (Django's ``require_http_methods`` for views that take
    the ModelAdmin before the request)."""

    def decorate(view: _View) -> _View:
        def checked(panel: Panel, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            return view(panel, request, *args, **kwargs)

        checked.__doc__ = view.__doc__
        return checked  # type: ignore[return-value]

    return decorate


def _context(panel: Panel, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        **panel.admin_site.each_context(request),
        "opts": panel.opts,
        "app_label": panel.opts.app_label,
        "has_action_permission": can_act(request),
    }
    context.update(extra)
    return context


def can_act(request: HttpRequest) -> bool:
    """Whether the user may clear, invalidate, look up or delete keys."""
    return request.user.has_perm(ACTION_PERMISSION)


def _can_view(panel: Panel, request: HttpRequest) -> None:
    if not panel.has_view_permission(request):
        raise PermissionDenied


def _can_act(panel: Panel, request: HttpRequest, alias: str) -> None:
    _can_view(panel, request)
    if not can_act(request):
        raise PermissionDenied
    _known(alias)


def _known(alias: str) -> None:
    if alias not in operations.aliases():
        raise Http404(_("No cache alias %(alias)r.") % {"alias": alias})


def _url(panel: Panel, name: str, alias: str) -> str:
    info = panel.opts.app_label, panel.opts.model_name
    return reverse(f"{panel.admin_site.name}:{info[0]}_{info[1]}_{name}", kwargs={"alias": alias})


def log_action(request: HttpRequest, alias: str, message: str) -> None:
    """One admin-log row for an action on ``alias``, with the user who ran it."""
    LogEntry.objects.create(
        user_id=request.user.pk or 0,  # admin_view lets only logged-in staff in
        content_type=ContentType.objects.get_for_model(CachePanel, for_concrete_model=False),
        object_id=alias,
        object_repr=alias[:200],
        action_flag=CHANGE,
        change_message=message,
    )


@allow("GET")
def alias_list(panel: Panel, request: HttpRequest) -> HttpResponse:
    _can_view(panel, request)
    rows = [figures.alias_row(alias) for alias in operations.aliases()]
    for row in rows:
        row["url"] = _url(panel, "change", row["alias"])
    context = _context(panel, request, title=_("Cache"), rows=rows)
    return TemplateResponse(request, TEMPLATES + "alias_list.html", context)


@allow("GET")
def alias_detail(panel: Panel, request: HttpRequest, alias: str) -> HttpResponse:
    _can_view(panel, request)
    _known(alias)
    page = figures.alias_page(alias)
    context = _context(
        panel,
        request,
        title=_("Cache alias %(alias)s") % {"alias": alias},
        data_url=_url(panel, "data", alias),
        clear_url=_url(panel, "clear", alias),
        invalidate_url=_url(panel, "invalidate", alias),
        key_url=_url(panel, "key", alias),
        delete_key_url=_url(panel, "delete_key", alias),
        models=_model_choices(),
        **page,
    )
    return TemplateResponse(request, TEMPLATES + "alias_detail.html", context)


@allow("GET")
def alias_data(panel: Panel, request: HttpRequest, alias: str) -> JsonResponse:
    """The live refresh: the alias page's figures and charts (SVG markup) as JSON; the
    last day's charts only with ``?day=1``."""
    _can_view(panel, request)
    _known(alias)
    page = figures.alias_page(alias, day=request.GET.get("day") == "1")
    return JsonResponse(
        {
            "alias": alias,
            "status": page["health"].get("status"),
            "figures": page["figures"],
            "charts": {name: str(svg) for name, svg in page["charts"].items()},
        }
    )


@allow("GET", "POST")
def clear(panel: Panel, request: HttpRequest, alias: str) -> HttpResponse:
    """GET: the confirmation page; POST: clear the alias (prefix-safe, as ``clear()``)."""
    _can_act(panel, request, alias)
    if request.method == "POST":
        removed = operations.clear_alias(alias)
        if removed is None:
            message = _("Cleared cache alias %(alias)s.") % {"alias": alias}
        else:
            message = _("Cleared cache alias %(alias)s (%(count)d keys).") % {
                "alias": alias,
                "count": removed,
            }
        log_action(request, alias, message)
        messages.success(request, message)
        return redirect(_url(panel, "change", alias))
    context = _context(
        panel,
        request,
        title=_("Clear cache alias %(alias)s?") % {"alias": alias},
        alias=alias,
        action_url=_url(panel, "clear", alias),
        back_url=_url(panel, "change", alias),
        question=_("Every entry of cache alias %(alias)s will be removed.") % {"alias": alias},
        fields=[],
        button=_("Yes, clear it"),
    )
    return TemplateResponse(request, TEMPLATES + "confirm.html", context)


def _model_choices() -> list[str]:
    return sorted(f"{m._meta.app_label}.{m.__name__}" for m in apps.get_models() if m._meta.managed)


def _tags_of(request: HttpRequest) -> list[str]:
    text = request.POST.get("tags", "")
    return [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]


@allow("POST")
def invalidate(panel: Panel, request: HttpRequest, alias: str) -> HttpResponse:
    """Invalidate tags, or a model (optionally some primary keys), after confirmation."""
    _can_act(panel, request, alias)
    tags = _tags_of(request)
    model_label = request.POST.get("model", "").strip()
    pks = [p.strip() for p in request.POST.get("pks", "").split(",") if p.strip()]
    if model_label:
        try:
            apps.get_model(model_label)
        except (LookupError, ValueError):
            messages.error(request, _("No model %(model)r.") % {"model": model_label})
            return redirect(_url(panel, "change", alias))
    if not tags and not model_label:
        messages.error(request, _("Name one or more tags, or a model."))
        return redirect(_url(panel, "change", alias))
    if request.POST.get("confirmed") == "yes":
        try:
            done = operations.invalidate(alias=alias, tags=tags, model=model_label or None, pks=pks)
        except operations.OperationError as exc:
            messages.error(request, str(exc))
            return redirect(_url(panel, "change", alias))
        message = _("Invalidated on %(alias)s: %(tags)s.") % {
            "alias": alias,
            "tags": ", ".join(done) or figures.DASH,
        }
        log_action(request, alias, message)
        messages.success(request, message)
        return redirect(_url(panel, "change", alias))
    what = ", ".join(tags) if tags else model_label + (f" ({', '.join(pks)})" if pks else "")
    context = _context(
        panel,
        request,
        title=_("Invalidate on cache alias %(alias)s?") % {"alias": alias},
        alias=alias,
        action_url=_url(panel, "invalidate", alias),
        back_url=_url(panel, "change", alias),
        question=_("Entries tagged with %(what)s will be stale at once.") % {"what": what},
        fields=[("tags", ", ".join(tags)), ("model", model_label), ("pks", ", ".join(pks))],
        button=_("Yes, invalidate"),
    )
    return TemplateResponse(request, TEMPLATES + "confirm.html", context)


_KEY_SHOWN_ELSEWHERE = ("value_preview", "tags", "alias", "key")


@allow("POST")
def lookup_key(panel: Panel, request: HttpRequest, alias: str) -> HttpResponse:
    """Show one key: remaining TTL, size, tags and whether they are current, a preview."""
    _can_act(panel, request, alias)
    key = request.POST.get("key", "")
    if not key:
        messages.error(request, _("Name a key to look up."))
        return redirect(_url(panel, "change", alias))
    found = operations.inspect_key(alias, key)
    log_action(request, alias, _("Looked up key %(key)r.") % {"key": key})
    shown = {name: value for name, value in found.items() if name not in _KEY_SHOWN_ELSEWHERE}
    context = _context(
        panel,
        request,
        title=_("Key %(key)s on %(alias)s") % {"key": key, "alias": alias},
        alias=alias,
        key=key,
        found=found,
        rows=figures.flat(shown),
        tags=found.get("tags") or [],
        preview=found.get("value_preview"),
        back_url=_url(panel, "change", alias),
        delete_key_url=_url(panel, "delete_key", alias),
    )
    return TemplateResponse(request, TEMPLATES + "key.html", context)


@allow("POST")
def delete_key(panel: Panel, request: HttpRequest, alias: str) -> HttpResponse:
    """Delete one key, after confirmation."""
    _can_act(panel, request, alias)
    key = request.POST.get("key", "")
    if not key:
        messages.error(request, _("Name a key to delete."))
        return redirect(_url(panel, "change", alias))
    if request.POST.get("confirmed") == "yes":
        removed = operations.delete_keys(alias, [key])
        message = _("Deleted key %(key)r from %(alias)s (%(count)d removed).") % {
            "key": key,
            "alias": alias,
            "count": removed,
        }
        log_action(request, alias, message)
        messages.success(request, message)
        return redirect(_url(panel, "change", alias))
    context = _context(
        panel,
        request,
        title=_("Delete key %(key)s?") % {"key": key},
        alias=alias,
        action_url=_url(panel, "delete_key", alias),
        back_url=_url(panel, "change", alias),
        question=_("Key %(key)s will be removed from cache alias %(alias)s.")
        % {"key": key, "alias": alias},
        fields=[("key", key)],
        button=_("Yes, delete it"),
    )
    return TemplateResponse(request, TEMPLATES + "confirm.html", context)
