"""A placeholder model with no table: it gives the admin a "Cache" entry and permissions.

Django's admin lists models, and permissions belong to models; the cache pages
(``lexigram_cache_django.admin``) are neither, so this unmanaged model stands in. It has no
migrations module, so ``migrate`` creates no table, only its content type and permissions:
``view_cachepanel`` to see the pages, ``clear_cache`` to run actions (clear, invalidate,
look up or delete keys).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class CachePanel(models.Model):
    """Never queried: a name for the admin index and a holder for the permissions."""

    id = models.BigAutoField(primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [("clear_cache", _("Can clear caches and run cache actions"))]
        verbose_name = _("cache")
        verbose_name_plural = _("cache")

    def __str__(self) -> str:
        return str(_("cache"))
