"""Human output of ``manage.py cache``: aligned plain-text tables over operations' dicts.

Kept apart from the command so that its handlers stay a few lines each. Nothing here adds
colour: the command's ``self.style`` does, and only when writing to a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..metrics import COUNTERS

#: JSON schema version of ``--json`` output (docs/operations.md); bump on breaking change.
SCHEMA_VERSION = 1

#: Counters ``cache stats`` shows, in order, with their labels.
STAT_ROWS: tuple[tuple[str, str], ...] = (
    ("hits", "hits"),
    ("misses", "misses"),
    ("hit_ratio", "hit ratio"),
    ("sets", "sets"),
    ("deletes", "deletes"),
    ("evictions", "evictions"),
    ("expirations", "expirations"),
    ("errors", "errors"),
    ("short_circuited", "short-circuited"),
    ("tag_invalidations", "tag invalidations"),
    ("stale_by_tag", "stale by tag"),
    *((name, name.replace("_", " ")) for name in COUNTERS[8:13]),
)


def cell(value: Any) -> str:
    """One value as a table cell: ``-`` for unknown, ratios as percentages."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Rows aligned under headers: text left, numbers right."""
    text = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    numeric = [
        all(_is_number(row[i]) for row in rows if row[i] is not None) and bool(rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in text)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}%"


def size(n: Any) -> str:
    """Bytes as a short human size."""
    if not isinstance(n, int | float) or isinstance(n, bool):
        return cell(n)
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


# -- stats -------------------------------------------------------------------------------------


def stats_lines(entry: dict[str, Any]) -> list[str]:
    """One alias's stats: counters per process and site-wide side by side, then latency,
    then the server's own figures, each labelled."""
    head = f"{entry['alias']}  ({entry['backend']}, {entry['location'] or '-'})"
    if not entry["lexigram"]:
        lines = [head, "  not a lexigram backend: no counters are kept"]
        return lines + _server_lines(entry.get("server"))
    process, site = entry["process"], entry["site"]
    site_label = "site (24 h)" if site is not None else "site"
    rows: list[list[Any]] = []
    for name, label in STAT_ROWS:
        mine = process.get(name)
        theirs = None if site is None else site.get(name)
        if name == "hit_ratio":
            rows.append([label, percent(mine), percent(theirs) if site is not None else "-"])
        else:
            rows.append([label, mine, theirs])
    lines = [head]
    lines += ["  " + row for row in table(["counter", "this process", site_label], rows)]
    if site is None:
        lines.append("  site-wide: not kept for this backend (per process only)")
    latency = entry.get("latency") or {}
    if latency.get("count"):
        lines.append(
            f"  latency (this process, {latency['count']} commands): "
            f"p50 {cell(latency['p50_ms'])} ms, p99 {cell(latency['p99_ms'])} ms"
        )
    tiers = entry.get("tiers")
    if tiers:
        lines.append(
            "  tiers: "
            + ", ".join(f"{k} {cell(v)}" for k, v in tiers.items() if not isinstance(v, dict))
        )
    for name, figures in (entry.get("features") or {}).items():
        lines.append(f"  {name}: " + ", ".join(f"{k} {cell(v)}" for k, v in figures.items()))
    return lines + _server_lines(entry.get("server"))


def _server_lines(server: dict[str, Any] | None) -> list[str]:
    if not server:
        return []
    source = server.get("source", "server")
    lines = [f"  server ({source}):"]
    for key, value in server.items():
        if key == "source":
            continue
        if isinstance(value, dict):
            for name, figures in value.items():
                shown = ", ".join(f"{k} {cell(v)}" for k, v in (figures or {}).items())
                lines.append(f"    {name}: {shown}")
        else:
            lines.append(f"    {key}: {cell(value)}")
    return lines


# -- health ------------------------------------------------------------------------------------


def health_rows(entries: Sequence[dict[str, Any]]) -> list[str]:
    rows: list[list[Any]] = []
    for e in entries:
        memory = (
            f"{size(e['memory_used'])} / {size(e['memory_limit'])}"
            if e.get("memory_used") is not None
            else "-"
        )
        rows.append(
            [
                e["alias"],
                e["backend"],
                e["status"],
                e["ping_ms"],
                e["breaker"],
                e["version"],
                memory,
                e["eviction_policy"],
            ]
        )
    headers = ["alias", "backend", "status", "ping ms", "breaker", "version", "memory", "policy"]
    lines = table(headers, rows)
    for e in entries:
        if e.get("error"):
            lines.append(f"{e['alias']}: {e['error']}")
    return lines


# -- get ---------------------------------------------------------------------------------------


def inspect_lines(info: dict[str, Any]) -> list[str]:
    if not info["found"]:
        lines = [f"{info['key']!r}: not found in {info['alias']!r}"]
        return lines + ([f"error: {info['error']}"] if info.get("error") else [])
    ttl = info["ttl_seconds"]
    ttl_text = (
        ("never expires" if ttl is None else f"{ttl:.1f}s") if info["ttl_known"] else "unknown"
    )
    encoding = info.get("encoding") or {}
    rows = [
        ["key", info["key"]],
        ["type", info["type"]],
        ["value", info["value_preview"]],
        ["ttl", ttl_text],
        ["size", size(info["size_bytes"]) if info["size_bytes"] is not None else "-"],
        ["format", encoding.get("format")],
        ["serializer", encoding.get("serializer")],
        ["compression", encoding.get("compression") or "none"],
    ]
    if "encrypted" in encoding:
        rows.append(["encrypted", encoding["encrypted"]])
    lines = table(["field", "value"], rows)
    for tag in info["tags"]:
        state = "current" if tag["current"] else "STALE (invalidated)"
        lines.append(f"tag {tag['tag']}: {state}")
    if info.get("error"):
        lines.append(f"error: {info['error']}")
    return lines


# -- doctor ------------------------------------------------------------------------------------


def finding_lines(findings: Sequence[Any]) -> list[str]:
    rows = [[f.level, f.code, f.alias or "", f.message] for f in findings]
    lines = table(["level", "id", "alias", "message"], rows)
    for f in findings:
        if f.hint and f.level != "info":
            lines.append(f"{f.code}: hint: {f.hint}")
    return lines
