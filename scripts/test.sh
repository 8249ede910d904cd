#!/usr/bin/env bash
# Set up and run every check: ruff (lint + format), mypy, pytest, and Django's own cache
# test suite against each backend. Installs redis-server and memcached with apt-get when
# they are missing and we run as root. Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

set -e
ensure_debian_packages "redis-server:redis-server" "memcached:memcached"
ensure_venv all --group dev
set +e

PY=.venv/bin/python
SUITE=../shared/tools/django_cache_suite.sh
[ -x "$SUITE" ] || SUITE="${DJANGO_CACHE_SUITE:-$SUITE}"
failed=()

step() {
    local name=$1
    shift
    printf '\n==> %s\n' "$name"
    if "$@"; then
        printf '<== %s: ok\n' "$name"
    else
        printf '<== %s: FAILED\n' "$name"
        failed+=("$name")
    fi
}

conformance() {
    local name=$1
    shift
    if [ ! -f "$SUITE" ]; then
        printf '\n==> %s: FAILED (Django cache suite not found at %s)\n' "$name" "$SUITE"
        failed+=("$name")
        return
    fi
    step "$name" bash "$SUITE" --python "$PY" --pythonpath . --verbosity 1 "$@"
}

step "ruff check" .venv/bin/ruff check .
step "ruff format --check" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy
step "pytest" "$PY" -m pytest -q -rf -p no:cacheprovider "$@"

MEMORY=lexigram_cache_django.backends.memory.MemoryCache
conformance "django suite: memory/base" --backend "$MEMORY" --flavor base
conformance "django suite: memory/locmem" --backend "$MEMORY" --flavor locmem --skip-internals

if [ -d lexigram_cache_django/backends/redis ]; then
    REDIS=lexigram_cache_django.backends.redis.RedisCache
    conformance "django suite: redis/redis" --backend "$REDIS" --flavor redis --skip-internals
    conformance "django suite: redis/base" --backend "$REDIS" --flavor base --server redis \
        --location "redis://127.0.0.1:{port}" --exclude-aliases cull,zero_cull \
        --incr-decr-error "${REDIS_INCR_ERROR:-lexigram_cache_django.exceptions.CacheIncrError}"
fi
if [ -d lexigram_cache_django/backends/memcached ]; then
    MEMCACHED=lexigram_cache_django.backends.memcached.MemcachedCache
    conformance "django suite: memcached/memcached" --backend "$MEMCACHED" --flavor memcached \
        --skip-internals
fi

printf '\n'
if [ ${#failed[@]} -ne 0 ]; then
    printf 'FAILED steps: %s\n' "$(IFS=,; echo "${failed[*]}")"
    exit 1
fi
printf 'All checks passed.\n'
