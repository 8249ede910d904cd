"""Server-rendered SVG charts: no chart library, no JavaScript, no CDN.

Each chart is a list of points (minute, value) drawn as a polyline with one ``<circle>`` per
minute that had traffic, carrying ``data-minute``/``data-value`` and a ``<title>`` tooltip.
Colours come from CSS classes (``static/lexigram_cache_django/admin/cache.css``) that use
the admin's own variables, so the charts follow its light and dark themes. Every text
in the markup is escaped; the numbers are formatted by this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

WIDTH, HEIGHT = 600, 160
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 8, 8, 20
OPS_FIELDS = ("hits", "misses", "sets", "deletes")


def ops_of(row: Mapping[str, Any]) -> int:
    """Operations in one minute's bucket: reads (hits + misses) plus writes and deletes."""
    return sum(int(row.get(name) or 0) for name in OPS_FIELDS)


def ratio_of(row: Mapping[str, Any]) -> float | None:
    """The hit ratio of one bucket, None when it had no reads."""
    hits, misses = int(row.get("hits") or 0), int(row.get("misses") or 0)
    return hits / (hits + misses) if hits + misses else None


def bucketed(
    series: Sequence[Mapping[str, Any]], minutes: int, step: int, now: float
) -> list[dict[str, Any]]:
    """``series`` (sparse minute rows) as ``minutes // step`` consecutive buckets of ``step``
    minutes ending at ``now``'s minute, each the sum of its rows (empty ones are zeros)."""
    end = int(now // 60) * 60
    start = end - (minutes - 1) * 60
    first = start - (start // 60 % step) * 60 if step > 1 else start
    buckets: dict[int, dict[str, Any]] = {}
    for row in series:
        minute = int(row.get("minute") or 0)
        if minute < first or minute > end:
            continue
        slot = first + ((minute - first) // (60 * step)) * 60 * step
        bucket = buckets.setdefault(slot, {"minute": slot})
        for name, value in row.items():
            if name != "minute" and isinstance(value, int | float):
                bucket[name] = bucket.get(name, 0) + value
    return [buckets.get(slot, {"minute": slot}) for slot in range(first, end + 1, 60 * step)]


def _label(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M")


def line_chart(
    points: Sequence[tuple[int, float | None]],
    *,
    chart_id: str,
    title: str,
    y_max: float | None = None,
    percent: bool = False,
) -> SafeString:
    """An SVG line chart of ``points`` (epoch minute, value or None for a gap)."""
    values = [v for _, v in points if v is not None]
    top = y_max if y_max is not None else max([*values, 1.0])
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    count = max(len(points) - 1, 1)

    def xy(index: int, value: float) -> tuple[float, float]:
        x = PAD_LEFT + inner_w * index / count
        y = PAD_TOP + inner_h * (1 - (value / top if top else 0))
        return round(x, 1), round(y, 1)

    def fmt(value: float) -> str:
        return f"{value * 100:.0f}%" if percent else f"{value:,.0f}"

    parts = [
        # xmlns: the live refresh parses this markup as SVG (DOMParser, image/svg+xml).
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lexigram-chart" '
        f'id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" preserveAspectRatio="none">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        _, y = xy(0, top * fraction)
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text class="axis" x="{PAD_LEFT - 4}" y="{y + 4}" text-anchor="end">'
            f"{escape(fmt(top * fraction))}</text>"
        )
    if points:
        for index in (0, len(points) // 2, len(points) - 1):
            x, _ = xy(index, 0)
            anchor = "start" if index == 0 else "end" if index == len(points) - 1 else "middle"
            parts.append(
                f'<text class="axis" x="{x}" y="{HEIGHT - 4}" text-anchor="{anchor}">'
                f"{escape(_label(points[index][0]))}</text>"
            )
    segment: list[str] = []
    segments: list[list[str]] = []
    dots: list[str] = []
    for index, (minute, value) in enumerate(points):
        if value is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        x, y = xy(index, value)
        segment.append(f"{x},{y}")
        if value:
            dots.append(
                f'<circle class="point" cx="{x}" cy="{y}" r="2.5" data-minute="{minute}" '
                f'data-value="{value:g}"><title>{escape(_label(minute))} UTC: '
                f"{escape(fmt(value))}</title></circle>"
            )
    if segment:
        segments.append(segment)
    parts.extend(
        f'<polyline class="line" points="{" ".join(seg)}"/>' for seg in segments if len(seg) > 1
    )
    parts.extend(dots)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text is escaped above


def charts_for(
    series: Sequence[Mapping[str, Any]], now: float, *, day: bool = True
) -> dict[str, SafeString]:
    """The alias page's charts from minute rows: the last hour's two, and with ``day``
    (``series`` then covers a day) the last day's two."""
    hour = bucketed(series, 60, 1, now)
    charts = {
        "ratio_hour": line_chart(
            [(r["minute"], ratio_of(r)) for r in hour],
            chart_id="chart-ratio-hour",
            title=_("Hit ratio per minute, last hour"),
            y_max=1.0,
            percent=True,
        ),
        "ops_hour": line_chart(
            [(r["minute"], float(ops_of(r))) for r in hour],
            chart_id="chart-ops-hour",
            title=_("Operations per minute, last hour"),
        ),
    }
    if not day:
        return charts
    days = bucketed(series, 1440, 15, now)
    charts["ratio_day"] = line_chart(
        [(r["minute"], ratio_of(r)) for r in days],
        chart_id="chart-ratio-day",
        title=_("Hit ratio per 15 minutes, last day"),
        y_max=1.0,
        percent=True,
    )
    charts["ops_day"] = line_chart(
        [(r["minute"], ops_of(r) / 15) for r in days],
        chart_id="chart-ops-day",
        title=_("Operations per minute (15-minute average), last day"),
    )
    return charts
