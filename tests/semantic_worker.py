"""A second process for the semantic cache's cross-process tests.

Run as ``python -m tests.semantic_worker`` with ``SEMANTIC_CACHE_CONFIG`` (a CACHES entry as
JSON) and ``SEMANTIC_NAMESPACE``. Reads one JSON command a line from stdin and answers one
JSON line on stdout: ``{"op": "store"|"lookup"|"clear"|"quit", "prompt": ..., "scope": ...}``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import django
from django.conf import settings


def main() -> int:
    from tests import settings as base

    settings.configure(
        SECRET_KEY=base.SECRET_KEY,
        USE_TZ=True,
        INSTALLED_APPS=[],
        CACHES={"default": json.loads(os.environ["SEMANTIC_CACHE_CONFIG"])},
        LOGGING_CONFIG=None,
    )
    django.setup()
    from lexigram_cache_django.semantic import SemanticCache
    from lexigram_cache_django.semantic.embeddings import load_minilm

    load_minilm(torch_threads=1)
    cache = SemanticCache(namespace=os.environ["SEMANTIC_NAMESPACE"], sync_interval=0.05)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        if cmd["op"] == "store":
            cache.store(cmd["prompt"], cmd["response"], cmd.get("scope", ""))
            print(json.dumps({"stored": time.time()}), flush=True)
        elif cmd["op"] == "clear":
            cache.clear(cmd.get("scope"))
            print(json.dumps({"cleared": time.time()}), flush=True)
        elif cmd["op"] == "lookup":
            hit = cache.lookup(cmd["prompt"], cmd.get("scope", ""))
            answer = None if hit is None else [hit.response, hit.exact, hit.similarity]
            print(json.dumps({"hit": answer}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
