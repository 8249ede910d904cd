"""Cache warmers of the pet clinic, found by lexigram_cache_django when apps are ready.

``manage.py cache warm --all`` runs them in process; ``celery -A example_project beat``
runs them on their ``every`` schedule, and a change to a pet re-warms the species counts
after the commit (``rewarm=True``), so the next reader finds them computed.
"""

from __future__ import annotations

from lexigram_cache_django.warming import warmer

from . import views
from .models import Pet


@warmer("clinic-counts", cached=views.shared_clinic_counts, every=600)
def clinic_counts() -> list[tuple[()]]:
    """The home page's counts: one call, no arguments."""
    return [()]


@warmer("species-counts", cached=views.species_counts, every=300, tags=[Pet], rewarm=True)
def species_counts() -> list[tuple[()]]:
    """The species page's counts."""
    return [()]
