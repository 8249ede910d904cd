"""Settings for the example project.

Everything that differs between machines comes from environment variables, so the demo
runs with no configuration at all and other cache backends can be switched in without
editing this file. The variables are listed in ``docs/example_project.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

from example_project.cache_config import cache_settings_from_env

BASE_DIR = Path(__file__).resolve().parent


def env_bool(name: str, default: bool) -> bool:
    """Read a yes/no environment variable ("1", "true", "yes", "on" mean yes)."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str) -> list[str]:
    """Read a comma-separated environment variable as a list, ignoring blanks."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


# SECURITY WARNING: the default key below is public; it exists only so that the demo runs
# out of the box. Set DJANGO_SECRET_KEY for anything reachable by other people.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    "django-insecure-example-project-demo-key-DO-NOT-USE-IN-PRODUCTION",
)
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS")

# On by default because this is a local demo (the admin's CSS is served by runserver).
DEBUG = env_bool("DJANGO_DEBUG", default=True)

ALLOWED_HOSTS = ["127.0.0.1", "localhost", *env_list("DJANGO_ALLOWED_HOSTS")]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "lexigram_cache_django",
    "example_project.petclinic",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Per-request memo for @cache_in_request functions, dropped when the request ends.
    "lexigram_cache_django.request_cache.RequestCacheMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DATABASE_PATH") or BASE_DIR / "db.sqlite3",
    },
}

# CACHE_BACKEND, CACHE_LOCATION, CACHE_TIMEOUT, CACHE_KEY_PREFIX, CACHE_OPTIONS and
# CACHE_L2_BACKEND choose the cache; the default is lexigram's in-process memory cache.
CACHES = cache_settings_from_env(os.environ)

# Celery runs tasks inline unless a broker is configured, so the demo needs no worker.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "").strip() or None
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True

# Settings for lexigram_cache_django itself (docs/settings.md). A change to a row of these
# models invalidates, after the commit, every cached page, fragment and function result
# tagged with the model or the row, in every lexigram cache alias.
LEXIGRAM_CACHE: dict[str, object] = {
    "INVALIDATE_MODELS": ["petclinic.Owner", "petclinic.Pet", "petclinic.Vaccine"],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "simple": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "simple"},
    },
    "loggers": {
        "lexigram_cache_django": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
