"""Settings of the testing project: a fakeredis default cache and a memory cache."""

from lexigram_cache_django.testing import fake_redis

SECRET_KEY = "testing-project-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = ["django.contrib.contenttypes", "lexigram_cache_django", "shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {
    "default": fake_redis("testing-project"),
    "local": {"BACKEND": "lexigram_cache_django.backends.memory.MemoryCache"},
}
LEXIGRAM_CACHE = {"INVALIDATE_MODELS": ["shop.Category", "shop.Product"]}
ROOT_URLCONF = "shop_site.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
