"""Redis's glob patterns for ``keys``/``iter_keys``/``delete_pattern`` on any backend.

Redis matches ``SCAN MATCH`` patterns with its own glob (``*``, ``?``, ``[abc]``,
``[^a-z]``, ``\\`` escaping the next character), not :mod:`fnmatch`'s (no escapes,
``[!...]``): :func:`glob_regex` translates that dialect, so the memory backend matches
exactly what Redis would. :func:`key_unmaker` turns a stored key back into the key the
caller passed, when ``KEY_FUNCTION`` keeps it verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """Escape glob wildcards, so a KEY_PREFIX like ``site[1]`` matches literally."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A compiled regex matching whole keys as Redis's glob ``pattern`` does."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            items: list[str] = []
            while i < n and pattern[i] != "]":
                if pattern[i] == "\\" and i + 1 < n:
                    i += 1
                    items.append(re.escape(pattern[i]))
                elif n - i >= 3 and pattern[i + 1] == "-":  # a range; Redis swaps z-a
                    low, high = sorted((pattern[i], pattern[i + 2]))
                    items.append(f"{re.escape(low)}-{re.escape(high)}")
                    i += 2
                else:
                    items.append(re.escape(pattern[i]))
                i += 1
            # Redis: an unclosed class runs to the end of the pattern; an empty one
            # matches nothing (or, negated, any one character).
            body = "".join(items)
            if not body:
                out.append("." if negate else "(?!)")
            else:
                out.append(f"[{'^' if negate else ''}{body}]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def key_unmaker(key_func: Callable[..., Any], prefix: str, version: Any) -> Callable[[str], str]:
    """Final key -> the key the user passed, when KEY_FUNCTION keeps it verbatim."""
    head, sep, tail = str(key_func("\x00", prefix, version)).partition("\x00")

    def unmake(key: str) -> str:
        if sep and key.startswith(head) and key.endswith(tail):
            return key[len(head) : len(key) - len(tail)]
        return key

    return unmake
