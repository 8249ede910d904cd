#!/usr/bin/env bash
# Set up and run the benchmarks (python -m benchmarks). Arguments are passed on:
# scenario names (memory, redis, memcached, ...), --quick, --rounds N, --json-out FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_debian_packages "redis-server:redis-server" "memcached:memcached" "taskset:util-linux"
ensure_venv all --group dev
exec .venv/bin/python -m benchmarks "$@"
