"""``fakeredis://`` LOCATIONs: RedisCache over fakeredis, in-process, for users' unit tests.

``LOCATION="fakeredis://tests/0"`` builds the same RedisCache, pools and commands as
``redis://``, but each connection is fakeredis's (``FakeRedisConnection`` for threads,
``FakeAsyncRedisConnection`` for ``redis.asyncio``): redis-py packs every command and
fakeredis answers it in memory, so tags, locks, Lua scripts (with ``fakeredis[lua]``),
``ttl``, ``delete_pattern`` and the data-structure commands run without a server.
Connections with the same host and port share one fakeredis server (sync and async
alike); the path picks the database as in ``redis://``. Never used by this project's
own backend tests, which run on real servers. See docs/testing.md for what it does not cover.
"""

from __future__ import annotations

from typing import Any

SCHEME = "fakeredis"


def is_fake(url: str) -> bool:
    return url.partition("://")[0].lower() == SCHEME


def fake_pool(pool_class: Any, url: str, asynchronous: bool, **options: Any) -> Any:
    """redis-py's ``pool_class.from_url`` for a ``fakeredis://`` URL, fake connections."""
    try:
        import fakeredis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "LOCATION 'fakeredis://...' needs fakeredis: pip install "
            "'lexigram-cache-django[testing]'"
        ) from exc
    connection_class = (
        fakeredis.FakeAsyncRedisConnection if asynchronous else fakeredis.FakeRedisConnection
    )
    rest = url.partition("://")[2]
    options.pop("parser_class", None)  # fakeredis parses its own replies
    return pool_class.from_url(f"redis://{rest}", connection_class=connection_class, **options)
