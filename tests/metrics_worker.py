"""One process of the site-wide metrics test: ``python -m tests.metrics_worker ALIAS HITS MISSES``.

Django is set up from ``tests.ops_settings`` (so the app's ready() starts the metrics
flusher thread). The worker makes HITS reads of a key it wrote and MISSES reads of keys
nobody wrote, prints ``done``, then stays alive (its flusher keeps running) until its stdin
closes; only then does it exit.
"""

from __future__ import annotations

import sys
import uuid


def main() -> None:
    import django

    django.setup()
    from django.core.cache import caches

    alias, hits, misses = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cache = caches[alias]
    key = f"present-{uuid.uuid4().hex}"
    cache.set(key, "value", 600)
    for _ in range(hits):
        assert cache.get(key) == "value"
    for i in range(misses):
        assert cache.get(f"absent-{uuid.uuid4().hex}-{i}") is None
    print("done", flush=True)
    sys.stdin.read()  # until the test closes our stdin


if __name__ == "__main__":
    main()
