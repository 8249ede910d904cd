"""The Lua scripts RedisCache runs where one command must check and change atomically.

Each is sent as ``EVALSHA`` and falls back to ``EVAL`` once per server (first use, or
after ``SCRIPT FLUSH``): see :meth:`~.client.RedisClient.eval`.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple


class Script(NamedTuple):
    """A script's source and the SHA-1 that ``EVALSHA`` names it by."""

    source: str
    sha: str


def script(source: str) -> Script:
    return Script(source, hashlib.sha1(source.encode()).hexdigest())


#: INCRBY only if the key exists, in one atomic step (Django: a missing key is ValueError).
INCR = script(
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "return redis.call('INCRBY', KEYS[1], ARGV[1]) end return false"
)
#: Replace a key only if it still holds the payload we read (ARGV[3]: '' persist, '0' drop).
REPLACE = script(
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "if ARGV[3] == '0' then redis.call('DEL', KEYS[1]) "
    "elseif ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) "
    "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return 1"
)
#: Tag records' versions, creating the missing ones (ARGV[1]: PX, ARGV[i + 1]: fresh one).
TAG_VERSIONS = script(
    "local out = {} for i, key in ipairs(KEYS) do "
    "local v = redis.call('GET', key) "
    "if not v then v = ARGV[i + 1] redis.call('SET', key, v, 'PX', ARGV[1]) end "
    "out[i] = v end return out"
)
#: Delete / re-time a lock only while it still holds our token.
LOCK_RELEASE = script(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
LOCK_EXTEND = script(
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "if ARGV[2] == '' then redis.call('PERSIST', KEYS[1]) return 1 end "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2])"
)
