"""A small pet-clinic Django site that demonstrates lexigram_cache_django."""

try:  # the Celery app, so that shared tasks bind to it (Celery is an optional extra)
    from .celery import app as celery_app
except ImportError:  # pragma: no cover - without celery installed
    celery_app = None

__all__ = ["celery_app"]
