#!/usr/bin/env bash
# Set up and run every check: ruff (lint + format), mypy, pytest, and Django's own cache
# test suite against each backend (tests/django_suite). Installs redis-server and memcached
# with apt-get when they are missing and we run as root. Exits non-zero if anything failed.
# The last line is "N passed, N failed": pytest's and Django's suite's tests, plus one failed
# for each other step that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

set -e
ensure_debian_packages "redis-server:redis-server" "memcached:memcached"
ensure_browser # chromium, for the admin's browser tests (tests/browser)
ensure_venv all --group dev
set +e

PY=.venv/bin/python
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}" # reproducible examples, no database
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
failed=()
passed_tests=0
failed_tests=0

# Add the totals a step printed to the closing counts; a failed step that printed no failure
# (ruff, mypy, a crash) counts as one.
count() {
    local status=$1 log=$2 line n p=0 f=0
    if line=$(grep -E '^CONFORMANCE passed=' "$log" | tail -n 1) && [ -n "$line" ]; then
        p=$(sed -E 's/.* passed=([0-9]+).*/\1/' <<<"$line")
        f=$(( $(sed -E 's/.* failed=([0-9]+).*/\1/' <<<"$line") + $(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line") ))
    elif line=$(grep -E '^=*[ ]*[0-9]+ (passed|failed|errors?|skipped|deselected).* in [0-9.]+s' "$log" | tail -n 1) && [ -n "$line" ]; then
        for n in $(grep -oE '[0-9]+ passed' <<<"$line" | cut -d' ' -f1); do p=$((p + n)); done
        for n in $(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | cut -d' ' -f1); do f=$((f + n)); done
    fi
    [ "$status" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed_tests=$((passed_tests + p))
    failed_tests=$((failed_tests + f))
}

step() {
    local name=$1 log status
    shift
    log="$LOGS/${#failed[@]}-$RANDOM.log"
    printf '\n==> %s\n' "$name"
    "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    count "$status" "$log"
    if [ "$status" -eq 0 ]; then
        printf '<== %s: ok\n' "$name"
    else
        printf '<== %s: FAILED\n' "$name"
        failed+=("$name")
    fi
}

suite() {
    local name=$1
    shift
    step "$name" "$PY" -m tests.django_suite --python "$PY" --pythonpath . --verbosity 1 "$@"
}

step "ruff check" .venv/bin/ruff check .
step "ruff format --check" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy
step "pytest" "$PY" -m pytest -q -rf -p no:cacheprovider "$@"

MEMORY=lexigram_cache_django.backends.memory.MemoryCache
REDIS=lexigram_cache_django.backends.redis.RedisCache
MEMCACHED=lexigram_cache_django.backends.memcached.MemcachedCache
suite "django suite: memory/base" --backend "$MEMORY" --flavor base
suite "django suite: memory/locmem" --backend "$MEMORY" --flavor locmem --skip-internals
suite "django suite: redis/redis" --backend "$REDIS" --flavor redis --skip-internals
suite "django suite: redis/base" --backend "$REDIS" --flavor base --server redis \
    --location "redis://127.0.0.1:{port}" --exclude-aliases cull,zero_cull \
    --incr-decr-error "${REDIS_INCR_ERROR:-lexigram_cache_django.exceptions.CacheIncrError}"
suite "django suite: memcached/memcached" --backend "$MEMCACHED" --flavor memcached \
    --skip-internals
TIERED=lexigram_cache_django.backends.tiered.TieredCache
L1='{"BACKEND": "'$MEMORY'", "LOCATION": "suite-l1"}'
suite "django suite: tiered(memory+redis)/base" --backend "$TIERED" --flavor base \
    --server redis --exclude-aliases cull,zero_cull \
    --options '{"L1": '"$L1"', "L2": {"BACKEND": "'$REDIS'", "LOCATION": "redis://127.0.0.1:{port}/0"}}'
suite "django suite: tiered(memory+memcached)/base" --backend "$TIERED" --flavor base \
    --server memcached --exclude-aliases cull,zero_cull \
    --options '{"L1": '"$L1"', "L2": {"BACKEND": "'$MEMCACHED'", "LOCATION": "127.0.0.1:{port}"}}'

printf '\n'
if [ ${#failed[@]} -ne 0 ]; then
    printf 'FAILED steps: %s\n' "$(IFS=,; echo "${failed[*]}")"
else
    printf 'All checks passed.\n'
fi
printf '%d passed, %d failed\n' "$passed_tests" "$failed_tests"
[ ${#failed[@]} -eq 0 ]
