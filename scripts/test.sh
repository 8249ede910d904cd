#!/usr/bin/env bash
# Set up and run every check: ruff (lint + format), mypy, and then two legs, each with pytest
# and Django's own cache test suite against each backend (tests/django_suite):
#   - Python 3.11 with Django 5.2 LTS (.venv), and
#   - Python 3.12 with Django 6.1 (.venv312; Django 6.x needs Python >= 3.12).
# The legs run side by side, the 3.12 leg suites first so that the two pytest runs barely
# overlap (LEXIGRAM_LEGS=sequential runs them one after the other); the 3.12 leg's output
# is printed after the 3.11 leg's. Installs redis-server and memcached with
# apt-get when they are missing and we run as root. Exits non-zero if anything failed.
# The last line is "N passed, N failed": pytest's and Django's suite's tests of both legs,
# plus one failed for each other step that failed. Arguments go to both pytest runs.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

set -e
ensure_debian_packages "redis-server:redis-server" "memcached:memcached"
ensure_browser # chromium, for the admin's browser tests (tests/browser)
ensure_venv all --group dev
PY312=$(find_python312) || die "Python 3.12 not found for the Django 6.1 leg (set PYTHON312=/path/to/python3.12)"
ensure_venv_at .venv312 "$PY312" all --group dev "Django>=6.1,<6.2"
set +e

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
    log=$(mktemp -p "$LOGS" step.XXXXXX)
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

# suite PYTHON LEG NAME ARGS...: one run of Django's cache suite, by tests/django_suite.
suite() {
    local py=$1 leg=$2 name=$3
    shift 3
    step "django suite [$leg]: $name" "$py" -m tests.django_suite --python "$py" --pythonpath . \
        --verbosity 1 "$@"
}

step "ruff check" .venv/bin/ruff check .
step "ruff format --check" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy

MEMORY=lexigram_cache_django.backends.memory.MemoryCache
REDIS=lexigram_cache_django.backends.redis.RedisCache
MEMCACHED=lexigram_cache_django.backends.memcached.MemcachedCache
TIERED=lexigram_cache_django.backends.tiered.TieredCache
L1='{"BACKEND": "'$MEMORY'", "LOCATION": "suite-l1"}'

# suites LABEL PYTHON: Django's cache suite on every backend.
suites() {
    local leg=$1 py=$2
    suite "$py" "$leg" "memory/base" --backend "$MEMORY" --flavor base
    suite "$py" "$leg" "memory/locmem" --backend "$MEMORY" --flavor locmem --skip-internals
    suite "$py" "$leg" "redis/redis" --backend "$REDIS" --flavor redis --skip-internals
    # Sentinel (primary + replica + 1 sentinel) and a 3-primary Cluster: ~20-30 s each on a
    # loaded 2-core machine (the standalone redis/redis run: ~15 s).
    suite "$py" "$leg" "redis(sentinel)/redis" --backend "$REDIS" --flavor redis \
        --skip-internals --server sentinel
    suite "$py" "$leg" "redis(cluster)/redis" --backend "$REDIS" --flavor redis \
        --skip-internals --server cluster
    # Users' server-less Redis (docs/testing.md): the same suite over fakeredis, no server.
    suite "$py" "$leg" "redis(fakeredis)/redis" --backend "$REDIS" --flavor redis \
        --skip-internals --location "fakeredis://django-suite/0"
    suite "$py" "$leg" "redis/base" --backend "$REDIS" --flavor base --server redis \
        --location "redis://127.0.0.1:{port}" --exclude-aliases cull,zero_cull \
        --incr-decr-error "${REDIS_INCR_ERROR:-lexigram_cache_django.exceptions.CacheIncrError}"
    suite "$py" "$leg" "memcached/memcached" --backend "$MEMCACHED" --flavor memcached \
        --skip-internals
    suite "$py" "$leg" "tiered(memory+redis)/base" --backend "$TIERED" --flavor base \
        --server redis --exclude-aliases cull,zero_cull \
        --options '{"L1": '"$L1"', "L2": {"BACKEND": "'$REDIS'", "LOCATION": "redis://127.0.0.1:{port}/0"}}'
    suite "$py" "$leg" "tiered(memory+memcached)/base" --backend "$TIERED" --flavor base \
        --server memcached --exclude-aliases cull,zero_cull \
        --options '{"L1": '"$L1"', "L2": {"BACKEND": "'$MEMCACHED'", "LOCATION": "127.0.0.1:{port}"}}'
}

# leg ORDER LABEL PYTHON PYTEST-ARGS...: pytest and Django's cache suites, pytest first or
# last (ORDER tests-first | suites-first). Side by side, one leg runs pytest while the other
# runs the suites, which mostly wait on their own sleeps: the timing-bound fault tests then
# do not share both cores with another pytest run.
leg() {
    local order=$1 leg=$2 py=$3
    shift 3
    [ "$order" = suites-first ] && suites "$leg" "$py"
    step "pytest [$leg]" "$py" -m pytest -q -rf -p no:cacheprovider "$@"
    [ "$order" = tests-first ] && suites "$leg" "$py"
    return 0
}

py_leg() { printf 'Python %s, Django %s' "$("$1" -c 'import sys; print(sys.version.split()[0])')" \
    "$("$1" -c 'import django; print(django.__version__)')"; }
LEG311="$(py_leg .venv/bin/python)"
LEG312="$(py_leg .venv312/bin/python)"

if [ "${LEXIGRAM_LEGS:-parallel}" = sequential ]; then
    leg tests-first "$LEG311" .venv/bin/python "$@"
    leg tests-first "$LEG312" .venv312/bin/python "$@"
else
    # The 3.12 leg in a subshell beside this one: its output to a file, its counts to another.
    (
        failed=() passed_tests=0 failed_tests=0
        leg suites-first "$LEG312" .venv312/bin/python "$@"
        printf '%s\n' "$passed_tests" "$failed_tests" "${failed[@]}" >"$LOGS/leg312.counts"
    ) >"$LOGS/leg312.out" 2>&1 &
    leg312=$!
    leg tests-first "$LEG311" .venv/bin/python "$@"
    wait "$leg312"
    printf '\n==== the %s leg (it ran beside the one above) ====\n' "$LEG312"
    cat "$LOGS/leg312.out"
    if [ -f "$LOGS/leg312.counts" ]; then
        mapfile -t counts <"$LOGS/leg312.counts"
        passed_tests=$((passed_tests + counts[0]))
        failed_tests=$((failed_tests + counts[1]))
        failed+=("${counts[@]:2}")
    else
        failed+=("the $LEG312 leg (it ended without its counts)")
        failed_tests=$((failed_tests + 1))
    fi
fi

printf '\n'
if [ ${#failed[@]} -ne 0 ]; then
    printf 'FAILED steps: %s\n' "$(IFS=,; echo "${failed[*]}")"
else
    printf 'All checks passed.\n'
fi
printf '%d passed, %d failed\n' "$passed_tests" "$failed_tests"
[ ${#failed[@]} -eq 0 ]
