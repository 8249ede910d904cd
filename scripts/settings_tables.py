"""Write the option tables of docs/settings.md from lexigram_cache_django.conf.

    python scripts/settings_tables.py          # rewrite the tables in place
    python scripts/settings_tables.py --check  # exit 1 if they differ (tests/test_conf.py)

Only the text between the ``<!-- conf:NAME -->`` and ``<!-- /conf:NAME -->`` markers is
generated; the prose around the tables is written by hand.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "settings.md"
sys.path.insert(0, str(ROOT))

from lexigram_cache_django.conf import (  # noqa: E402  (after the path is set)
    ALL,
    APP_SETTINGS,
    CACHE_OPTIONS,
    Option,
)


def backends_cell(option: Option) -> str:
    """``all`` or the backend names, sorted."""
    return "all" if option.backends == ALL else ", ".join(sorted(option.backends))


def default_cell(option: Option) -> str:
    """The default, per backend where backends differ."""
    if not option.backend_defaults:
        return option.documented_default()
    return ", ".join(f"{option.documented_default(b)} ({b})" for b in sorted(option.backends))


def _table(options: Mapping[str, Option], key: str, with_backends: bool) -> str:
    head = (
        f"| {key} | backends | default | meaning |"
        if with_backends
        else f"| {key} | default | meaning |"
    )
    rule = "|---|---|---|---|" if with_backends else "|---|---|---|"
    rows = [head, rule]
    for option in options.values():
        cells = [f"`{option.name}`", default_cell(option), option.doc]
        if with_backends:
            cells.insert(1, backends_cell(option))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def tables() -> dict[str, str]:
    return {
        "options": _table(CACHE_OPTIONS, "option", True),
        "lexigram_cache": _table(APP_SETTINGS, "key", False),
    }


def render(text: str) -> str:
    """``text`` with every marked table replaced by the generated one."""
    for name, table in tables().items():
        pattern = re.compile(rf"(<!-- conf:{name} -->\n)(?:.*?\n)?(<!-- /conf:{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{DOC}: no <!-- conf:{name} --> ... <!-- /conf:{name} --> markers")
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    current = DOC.read_text()
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{DOC} is out of date: run python scripts/settings_tables.py")
            return 1
        return 0
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
