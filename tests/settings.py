"""Settings for the test suite: the example project's apps plus the library under test."""

from __future__ import annotations

import os
import tempfile

SECRET_KEY = "tests-secret-key-not-for-production"
SECRET_KEY_FALLBACKS: list[str] = []
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

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
    "lexigram_cache_django.request_cache.RequestCacheMiddleware",
]

ROOT_URLCONF = "example_project.urls"

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
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        # A file, not SQLite's in-memory database: the tests of readers racing a committing
        # writer use a connection per thread, and must see each other's commits.
        "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"lexigram-tests-{os.getpid()}.db")},
    },
    # PostgreSQL for the tests marked ``postgres`` (tests/test_lookups.py); Django connects
    # lazily, so other tests never touch it. pytest-django creates the TEST database only
    # when a collected test uses this alias, and drops it (only it) at the end.
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("LEXIGRAM_TEST_PG_NAME", "test"),
        "HOST": os.environ.get("LEXIGRAM_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("LEXIGRAM_TEST_PG_PORT", "5432"),
        "USER": os.environ.get("LEXIGRAM_TEST_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("LEXIGRAM_TEST_PG_PASSWORD", ""),
        "TEST": {"NAME": f"test_lexigram_{os.getpid()}"},
    },
}

CACHES = {
    "default": {
        "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
        "LOCATION": "tests-default",
    },
}

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
LEXIGRAM_CACHE: dict[str, object] = {
    "INVALIDATE_MODELS": ["petclinic.Owner", "petclinic.Pet", "petclinic.Vaccine"],
}
