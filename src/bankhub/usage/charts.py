"""Server-drawn SVG charts of a usage series: no JavaScript, no inline styles, no build step.

``render(series)`` returns a ``Chart``: ``svg`` (markup to put in a page as it is: every text
in it is XML-escaped) and ``table`` (the same numbers as rows, the accessible alternative)::

    chart = charts.render(await series.api_calls(session, [app.id], start, end, "hour"))
    {{ chart.svg | safe }}  and  {{ chart.table.html() | safe }}  (or build the table from
    chart.table.columns and chart.table.rows, which are plain text for Jinja to escape)

The SVG scales to its container (``viewBox``, ``width="100%"``) and stays legible 360 px wide.
Colours and fonts are presentation attributes (``fill``, ``stroke``, ``font-size``), which a
strict CSP (``style-src 'self'``) allows; there is no ``style`` attribute and no ``<style>``
element. Every element also has a class (``bankhub-chart``, ``axis``, ``grid``, ``series-N``,
``legend``, ``empty``, and ``ink`` on what is drawn in black), so the static stylesheet
``STYLESHEET`` (or the page's own) can restyle it, as it does for a dark page. The output
depends on its input only: the same series always gives the same bytes.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from bankhub.usage.series import Series

#: a stylesheet for the classes the charts carry; serve it as a static file
STYLESHEET: Final = Path(__file__).parent / "static" / "charts.css"

Kind = Literal["bars", "lines"]

#: colours by key where a key has a meaning (green is good, vermilion is bad); Okabe-Ito
#: colours (readable with the common colour-vision deficiencies) otherwise, in key order
KEY_COLORS: Final[Mapping[str, str]] = {
    "2xx": "#009E73",
    "3xx": "#56B4E9",
    "4xx": "#E69F00",
    "5xx": "#D55E00",
    "success": "#009E73",
    "failed": "#D55E00",
    "cancelled": "#E69F00",
    "abandoned": "#8C8C8C",
    "delivered": "#009E73",
    "pending": "#8C8C8C",
    "new": "#0072B2",
    "active": "#009E73",
}
PALETTE: Final = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#8C6D00",
    "#000000",
    "#8C8C8C",
    "#6A3D9A",
    "#B15928",
    "#1B7837",
)
NO_DATA: Final = "No data for this period"
_COLOR = re.compile(r"#[0-9A-Fa-f]{3}(?:[0-9A-Fa-f]{3})?")
#: characters XML 1.0 does not allow, even escaped
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FONT = 11
#: a rough average glyph width at ``_FONT``, for laying out the legend without a font engine
_CHAR = 6.2
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: label every Nth bucket, N from these (hours: 1 h .. 2 weeks; days: 1 day .. a year)
_HOUR_STEPS = (1, 2, 3, 6, 12, 24, 48, 72, 168, 336)
_DAY_STEPS = (1, 2, 7, 14, 28, 56, 91, 182, 364)


@dataclass(frozen=True, slots=True)
class Table:
    """The chart's numbers as a table: plain text cells (escape them when writing HTML)."""

    caption: str
    columns: list[str]
    rows: list[list[str]]

    def html(self) -> str:
        """An escaped ``<table>`` with a caption, column headers and row headers."""
        head = "".join(f'<th scope="col">{_text(c)}</th>' for c in self.columns)
        body = "".join(
            "<tr>"
            + f'<th scope="row">{_text(row[0])}</th>'
            + "".join(f"<td>{_text(cell)}</td>" for cell in row[1:])
            + "</tr>"
            for row in self.rows
        )
        return (
            f'<table class="bankhub-chart-table"><caption>{_text(self.caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )


@dataclass(frozen=True, slots=True)
class Chart:
    svg: str
    table: Table
    #: nothing to draw: every count is zero (the SVG says so)
    empty: bool


def render(
    series: Series,
    *,
    kind: Kind = "bars",
    chart_id: str | None = None,
    title: str | None = None,
    description: str | None = None,
    colors: Mapping[str, str] | None = None,
    width: int = 360,
    height: int = 220,
) -> Chart:
    """Draw ``series`` as stacked bars or as one line per key.

    ``chart_id`` prefixes the ids of the ``<title>``/``<desc>`` (give each chart on a page its
    own); ``title`` and ``description`` replace the series' title and the generated summary;
    ``colors`` maps keys to ``#rgb``/``#rrggbb`` colours. ``width``/``height`` set the
    ``viewBox``: the drawing scales to its container either way.
    """
    if kind not in ("bars", "lines"):
        raise ValueError(f"kind must be 'bars' or 'lines', not {kind!r}")
    if width < 200 or height < 120:
        raise ValueError("a chart needs a viewBox of at least 200 x 120")
    name = title if title is not None else series.title
    ident = _ident(chart_id or f"chart-{series.name}")
    palette = _colors(series.keys, colors or {})
    table = _table(series, name)
    empty = series.total == 0
    summary = description if description is not None else _summary(series, kind, empty)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc" class="bankhub-chart" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" '
        f'font-size="{_FONT}" fill="#222222">',
        f'<title id="{ident}-title">{_text(name)}</title>',
        f'<desc id="{ident}-desc">{_text(summary)}</desc>',
    ]
    rows = _legend_rows(series, width, empty)
    box = _Box(left=46.0, top=8.0, right=width - 10.0, bottom=height - 34.0 - _ROW * len(rows))
    if box.height < 40:
        raise ValueError("the chart is too small for its legend; give it more height")
    top = _nice_top(_largest(series, kind))
    out += _grid(box, top, empty)
    if empty:
        out.append(
            f'<text class="empty" x="{_n((box.left + box.right) / 2)}" '
            f'y="{_n((box.top + box.bottom) / 2)}" text-anchor="middle" '
            f'dominant-baseline="middle" font-size="{_FONT + 2}" fill="#555555">'
            f"{_text(NO_DATA)}</text>"
        )
    elif kind == "bars":
        out += _bars(series, palette, box, top)
    else:
        out += _lines(series, palette, box, top)
    out += _x_labels(series, box)
    out += _legend(rows, palette, box.bottom + 32)
    out.append("</svg>")
    return Chart(svg="".join(out), table=table, empty=empty)


@dataclass(frozen=True, slots=True)
class _Box:
    """The plot area in viewBox units."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


def _text(value: object) -> str:
    """XML-escaped text, without the control characters XML cannot carry at all."""
    return html.escape(_NOT_XML.sub("", str(value)), quote=True)


def _n(value: float) -> str:
    """A coordinate: one decimal at most, always written the same way."""
    text = f"{value:.1f}"
    text = text.removesuffix(".0")
    return "0" if text == "-0" else text


def _ink(color: str) -> str:
    """`` ink`` on what is drawn in black, which a dark page's stylesheet must lighten."""
    return " ink" if color.lower() in ("#000", "#000000") else ""


def _ident(value: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_-]", "-", value)[:60]
    return ident if ident[:1].isalpha() else f"c-{ident}"


def _colors(keys: Sequence[str], given: Mapping[str, str]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for i, key in enumerate(keys):
        color = given.get(key) or KEY_COLORS.get(key) or PALETTE[i % len(PALETTE)]
        if not _COLOR.fullmatch(color):
            raise ValueError(f"colour of {key[:40]!r} must be #rgb or #rrggbb, not {color[:40]!r}")
        chosen[key] = color
    return chosen


def _count(value: int) -> str:
    return f"{value:,}"


def _short(value: float) -> str:
    """An axis label: 950, 1.2k, 35k, 1.5M."""
    if value >= 1_000_000:
        text, unit = f"{value / 1_000_000:.1f}", "M"
    elif value >= 10_000:
        text, unit = f"{value / 1000:.0f}", "k"
    elif value >= 1000:
        text, unit = f"{value / 1000:.1f}", "k"
    else:
        return f"{value:.0f}"
    return text.removesuffix(".0") + unit


def _when(start: datetime, bucket: str) -> str:
    return start.strftime("%Y-%m-%d %H:%M") if bucket == "hour" else start.strftime("%Y-%m-%d")


def _table(series: Series, name: str) -> Table:
    per = "hour" if series.bucket == "hour" else "day"
    columns = [f"{per.capitalize()} (UTC)", *(series.label(k) for k in series.keys), "Total"]
    rows = [
        [
            _when(b.start, series.bucket),
            *(_count(b.counts[k]) for k in series.keys),
            _count(b.total),
        ]
        for b in series.buckets
    ]
    return Table(caption=f"{name}, per {per} (UTC)", columns=columns, rows=rows)


def _summary(series: Series, kind: Kind, empty: bool) -> str:
    per = "hour" if series.bucket == "hour" else "day"
    span = f"from {_when(series.start, series.bucket)} to {_when(series.end, series.bucket)} UTC"
    if empty:
        return f"{NO_DATA}: no {series.title.lower()} {span}."
    shape = "Stacked bars" if kind == "bars" else "Lines"
    totals = "; ".join(f"{series.label(k)}: {_count(n)}" for k, n in series.totals().items())
    return f"{shape} of {series.title.lower()} per {per}, {span}. Totals: {totals}."


def _largest(series: Series, kind: Kind) -> int:
    if kind == "bars":
        return max((b.total for b in series.buckets), default=0)
    return max((n for b in series.buckets for n in b.counts.values()), default=0)


def _nice_top(largest: int) -> int:
    """The top of the y axis: a round number at or above ``largest`` (4 or 5 grid steps)."""
    return _step(largest) * max(1, math.ceil(largest / _step(largest)))


def _step(largest: int) -> int:
    if largest <= 4:
        return 1
    raw = largest / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return int(factor * magnitude)
    return int(10 * magnitude)  # pragma: no cover - the loop always returns


def _grid(box: _Box, top: int, empty: bool) -> list[str]:
    out = [
        f'<g class="axis" stroke="#767676" stroke-width="1">'
        f'<line x1="{_n(box.left)}" y1="{_n(box.bottom)}" x2="{_n(box.right)}" '
        f'y2="{_n(box.bottom)}"/>'
        f'<line x1="{_n(box.left)}" y1="{_n(box.top)}" x2="{_n(box.left)}" '
        f'y2="{_n(box.bottom)}"/></g>'
    ]
    if empty:
        return out
    step = _step(top)
    lines: list[str] = []
    labels: list[str] = []
    value = 0
    while value <= top:
        y = box.bottom - value / top * box.height
        if value:
            lines.append(
                f'<line x1="{_n(box.left)}" y1="{_n(y)}" x2="{_n(box.right)}" y2="{_n(y)}"/>'
            )
        labels.append(
            f'<text x="{_n(box.left - 5)}" y="{_n(y)}" text-anchor="end" '
            f'dominant-baseline="middle">{_short(value)}</text>'
        )
        value += step
    out.insert(0, f'<g class="grid" stroke="#E0E0E0" stroke-width="1">{"".join(lines)}</g>')
    out.append(f'<g class="axis-labels y" fill="#444444">{"".join(labels)}</g>')
    return out


def _tip(series: Series, key: str, start: datetime, value: int) -> str:
    when = _when(start, series.bucket)
    return f"<title>{_text(f'{series.label(key)}, {when} UTC: {_count(value)}')}</title>"


def _bars(series: Series, palette: Mapping[str, str], box: _Box, top: int) -> list[str]:
    slot = box.width / len(series.buckets)
    gap = slot * 0.15 if slot >= 3 else 0.0
    groups: dict[str, list[str]] = {key: [] for key in series.keys}
    for i, bucket in enumerate(series.buckets):
        base = box.bottom
        x = box.left + i * slot + gap / 2
        for key in series.keys:
            value = bucket.counts[key]
            if not value:
                continue
            h = value / top * box.height
            groups[key].append(
                f'<rect x="{_n(x)}" y="{_n(base - h)}" width="{_n(max(slot - gap, 0.1))}" '
                f'height="{_n(h)}">{_tip(series, key, bucket.start, value)}</rect>'
            )
            base -= h
    return [
        f'<g class="series series-{i}{_ink(palette[key])}" data-key="{_text(key)}" '
        f'fill="{palette[key]}">'
        f"{''.join(groups[key])}</g>"
        for i, key in enumerate(series.keys)
    ]


def _lines(series: Series, palette: Mapping[str, str], box: _Box, top: int) -> list[str]:
    slot = box.width / len(series.buckets)
    dots = len(series.buckets) <= 60
    out: list[str] = []
    for i, key in enumerate(series.keys):
        points = [
            (box.left + (j + 0.5) * slot, box.bottom - b.counts[key] / top * box.height)
            for j, b in enumerate(series.buckets)
        ]
        color = palette[key]
        path = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        parts = [
            f'<g class="series series-{i}{_ink(color)}" data-key="{_text(key)}">'
            f'<polyline fill="none" stroke="{color}" stroke-width="2" '
            f'stroke-linejoin="round" points="{path}"/>'
        ]
        if dots:
            parts += [
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="2.5" fill="{color}">'
                f"{_tip(series, key, b.start, b.counts[key])}</circle>"
                for (x, y), b in zip(points, series.buckets, strict=True)
            ]
        parts.append("</g>")
        out.append("".join(parts))
    return out


def _label_step(series: Series, room: float) -> int:
    """Label every Nth bucket so that labels (about 40 units wide) do not overlap."""
    fits = max(1, int(room // 44))
    steps = _HOUR_STEPS if series.bucket == "hour" else _DAY_STEPS
    for step in steps:
        if math.ceil(len(series.buckets) / step) <= fits:
            return step
    return math.ceil(len(series.buckets) / fits)


def _x_labels(series: Series, box: _Box) -> list[str]:
    if not series.buckets:
        return []
    slot = box.width / len(series.buckets)
    step = _label_step(series, box.width)
    seconds = 3600 if series.bucket == "hour" else 86400
    # weekly labels fall on Mondays (the epoch, 1970-01-01, was a Thursday)
    monday = (4 * 86400 // seconds) if (step * seconds) % (7 * 86400) == 0 else 0
    out = ['<g class="axis-labels x" fill="#444444" text-anchor="middle">']
    last_day: tuple[int, int, int] | None = None
    for i, bucket in enumerate(series.buckets):
        number = int(bucket.start.timestamp()) // seconds
        if (number - monday) % step:
            continue
        x = box.left + i * slot + (slot / 2 if step == 1 else 0)
        start = bucket.start
        day = (start.year, start.month, start.day)
        date = f"{start.day} {_MONTHS[start.month - 1]}"
        if series.bucket == "hour":
            first = start.strftime("%H:%M")
            second = date if day != last_day else ""
        else:
            first = date
            second = str(start.year) if last_day is None or last_day[0] != start.year else ""
        last_day = day
        out.append(f'<text x="{_n(x)}" y="{_n(box.bottom + 13)}">{first}</text>')
        if second:
            out.append(f'<text x="{_n(x)}" y="{_n(box.bottom + 25)}">{second}</text>')
        out.append(
            f'<line x1="{_n(x)}" y1="{_n(box.bottom)}" x2="{_n(x)}" y2="{_n(box.bottom + 3)}" '
            f'stroke="#767676"/>'
        )
    # left of the first label (which may be centred on the axis itself)
    out.append(
        f'<text x="{_n(box.left - 24)}" y="{_n(box.bottom + 13)}" text-anchor="end">UTC</text>'
    )
    out.append("</g>")
    return out


_ROW = 16.0


def _legend_rows(series: Series, width: int, empty: bool) -> list[list[tuple[float, str, str]]]:
    """The legend's items, ``(x, key, text)``, wrapped into rows that fit ``width``."""
    if empty or not series.keys:
        return []
    totals = series.totals()
    rows: list[list[tuple[float, str, str]]] = [[]]
    x = 10.0
    for key in series.keys:
        label = series.label(key)
        if len(label) > 40:
            label = label[:39] + "\u2026"
        text = f"{label} ({_count(totals[key])})"
        size = 14 + len(text) * _CHAR + 12
        if rows[-1] and x + size > width - 6:
            rows.append([])
            x = 10.0
        rows[-1].append((x, key, text))
        x += size
    return rows


def _legend(
    rows: list[list[tuple[float, str, str]]], palette: Mapping[str, str], top: float
) -> list[str]:
    if not rows:
        return []
    out = ['<g class="legend">']
    for r, row in enumerate(rows):
        y = top + r * _ROW
        for x, key, text in row:
            out.append(
                f'<g class="legend-item{_ink(palette[key])}" data-key="{_text(key)}">'
                f'<rect x="{_n(x)}" y="{_n(y)}" width="10" height="10" fill="{palette[key]}"/>'
                f'<text x="{_n(x + 14)}" y="{_n(y + 5)}" dominant-baseline="middle">'
                f"{_text(text)}</text></g>"
            )
    out.append("</g>")
    return out
