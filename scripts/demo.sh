#!/usr/bin/env bash
# Set up and run the example project on http://127.0.0.1:8000/ with the embedded
# defaults: our memory cache backend, SQLite, Celery in eager mode. No server needed.
# Environment variables (CACHE_BACKEND, CACHE_LOCATION, ...) switch backends:
# see docs/example_project.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv all
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py load_sample_data
if [ "${DEMO_TRAFFIC:-1}" != 0 ]; then
    # Browse the site in the background so the admin's Cache page has numbers to show.
    .venv/bin/python manage.py demo_traffic --base-url "http://${DEMO_ADDR:-127.0.0.1:8000}" &
fi
echo "==> serving on http://127.0.0.1:8000/ (admin: /admin/, user admin / password admin;"
echo "    the cache figures: /admin/lexigram_cache_django/cachepanel/)"
exec .venv/bin/python manage.py runserver "${DEMO_ADDR:-127.0.0.1:8000}"
