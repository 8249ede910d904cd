"""The reading process of the tiered coherence tests: ``python -m tests.tiered_worker CONFIG``.

It configures Django with one tiered alias (JSON on argv) and answers commands, one JSON
list a line on stdin, with one JSON line on stdout:

* ``["warm", key]``: read ``key`` twice (the second read is served by L1 when the bus is
  up), answer the value and the tier counters;
* ``["check", key, expected, t_done, timeout, pause]``: read ``key`` until it equals
  ``expected`` (sleeping ``pause`` seconds between reads, 0: spin), then a few more
  times; answer the delay after ``t_done`` (the writer's time.time() when its change
  returned), how many reads returned something else first, and whether any read after
  the first fresh one went back to an old value.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def main() -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="tests-secret-key-not-for-production",
        CACHES={"default": json.loads(sys.argv[1])},
        INSTALLED_APPS=["lexigram_cache_django"],
    )
    django.setup()
    from django.core.cache import caches

    cache: Any = caches["default"]
    cache.get("warm-up")  # starts the bus listener
    deadline = time.monotonic() + 10
    while cache.stats()["bus"] != "up" and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps({"ready": cache.stats()["bus"]}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command[0] == "warm":
            first = cache.get(command[1])
            second = cache.get(command[1])
            stats = cache.stats()
            reply: dict[str, Any] = {
                "value": first,
                "again": second,
                "l1_hits": stats["l1_hits"],
                "bus": stats["bus"],
            }
        elif command[0] == "check":
            _, key, expected, t_done, timeout, pause = command
            give_up = time.monotonic() + timeout
            old_reads = 0
            while True:
                value = cache.get(key)
                now = time.time()
                if value == expected:
                    break
                old_reads += 1
                if time.monotonic() > give_up:
                    break
                if pause:
                    time.sleep(pause)
            regressed = any(cache.get(key) != expected for _ in range(3))
            reply = {
                "delay": now - t_done,
                "old_reads": old_reads,
                "fresh": value == expected,
                "regressed": regressed,
                "bus": cache.stats()["bus"],
            }
        else:
            reply = {"stats": {k: v for k, v in cache.stats().items() if k not in ("l1", "l2")}}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
