"""The admin's "Cache" section: per-alias figures, charts, server info and actions.

Registered on ``django.contrib.admin.site`` by the admin's autodiscovery (this module is
the app's ``admin``); projects with their own ``AdminSite`` register
:class:`CachePanelAdmin` for :class:`~lexigram_cache_django.models.CachePanel` on it. The
pages live under the model's changelist URL, so no URLconf change is needed.
"""

from __future__ import annotations

from django.contrib import admin

from ..models import CachePanel
from .panel import CachePanelAdmin

__all__ = ["CachePanelAdmin"]

admin.site.register(CachePanel, CachePanelAdmin)
